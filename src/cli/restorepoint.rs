//! `kubectl k10 restorepoint …`: the restore points of applications.

use anyhow::Context;
use kube::api::{Api, ListParams};
use tabled::Tabled;

use super::output::{self, Format, OutputArgs};
use super::GlobalArgs;
use crate::api::{RestorePoint, RestorePointContent};
use crate::backup::{self, signals};
use crate::catalog;
use crate::k8s::Cluster;

#[derive(Debug, clap::Subcommand)]
pub enum RestorePointCommand {
    /// List restore points of a namespace (-n), or of every namespace (-A), including those whose
    /// namespace is gone.
    List {
        /// All namespaces (from the cluster-scoped RestorePointContents).
        #[arg(short = 'A', long)]
        all_namespaces: bool,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Show a restore point.
    Get {
        name: String,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Check that a restore point restores: restore it into a throw-away namespace, compare every
    /// manifest and file with the repository, report, and delete the namespace.
    Verify { name: String },
    /// Retire a restore point: its snapshots are forgotten (delete markers; locked data stays
    /// restorable as of its time) and the RestorePoint removed.
    Retire { name: String },
}

#[derive(Tabled)]
struct Row {
    #[tabled(rename = "NAME")]
    name: String,
    #[tabled(rename = "NAMESPACE")]
    namespace: String,
    #[tabled(rename = "POLICY")]
    policy: String,
    #[tabled(rename = "PROFILE")]
    profile: String,
    #[tabled(rename = "CREATED")]
    created: String,
    #[tabled(rename = "SIZE")]
    size: String,
    #[tabled(rename = "IMMUTABLE")]
    immutable: String,
    #[tabled(rename = "PROTECTED UNTIL")]
    protected_until: String,
    #[tabled(rename = "SUSPICIOUS")]
    suspicious: String,
}

/// Bytes for people: 1.5 MiB.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

/// When a restore point's protection ends: its time + the protection period.
fn protected_until(c: &RestorePointContent) -> String {
    match (c.spec.protection_period_days, chrono::DateTime::parse_from_rfc3339(&c.spec.end_time)) {
        (Some(days), Ok(end)) => (end + chrono::Duration::days(i64::from(days)))
            .to_utc()
            .format("%Y-%m-%dT%H:%M:%SZ")
            .to_string(),
        _ => "-".into(),
    }
}

fn row(c: &RestorePointContent) -> Row {
    Row {
        name: c.spec.restore_point_ref.name.clone(),
        namespace: c.spec.source_namespace.clone(),
        policy: c.spec.policy.name.clone(),
        profile: c.spec.profile.name.clone(),
        created: c.spec.end_time.chars().take(19).collect::<String>() + "Z",
        size: human_bytes(c.spec.logical_bytes),
        immutable: if c.spec.immutable { "yes" } else { "no" }.into(),
        protected_until: protected_until(c),
        suspicious: if c.spec.suspicious.is_some() { "yes" } else { "-" }.into(),
    }
}

pub async fn run(global: &GlobalArgs, cmd: RestorePointCommand) -> anyhow::Result<()> {
    let cluster = global.cluster().connect().await?;
    match cmd {
        RestorePointCommand::List { all_namespaces, output } => list(&cluster, all_namespaces, output.format).await,
        RestorePointCommand::Get { name, output } => get(&cluster, &name, output.format).await,
        RestorePointCommand::Verify { name } => {
            let content = find_content(&cluster, &name).await?;
            let progress = super::output::Progress::new();
            let result = crate::restore::verify(&cluster, &content, &|line| progress.step(line)).await;
            progress.finish();
            let v = result?;
            for d in &v.differences {
                println!("differs: {d}");
            }
            if !v.differences.is_empty() {
                anyhow::bail!("restore point {name} did not verify: {} difference(s) (listed above)", v.differences.len());
            }
            println!(
                "verified {name}: {} manifests and {} volumes restored identical (in namespace {}, now deleted)",
                v.manifests, v.volumes, v.namespace
            );
            Ok(())
        }
        RestorePointCommand::Retire { name } => {
            backup::retire(&cluster, &cluster.namespace, &name).await?;
            println!("restore point {}/{name} retired (its data stays restorable as of its time)", cluster.namespace);
            Ok(())
        }
    }
}

pub async fn contents(cluster: &Cluster) -> anyhow::Result<Vec<RestorePointContent>> {
    let api: Api<RestorePointContent> = Api::all(cluster.client.clone());
    let mut items = api
        .list(&ListParams::default())
        .await
        .map_err(|e| catalog::not_installed(cluster.err(e, "list restore points"), "RestorePointContent"))?
        .items;
    items.sort_by(|a, b| (&a.spec.source_namespace, &a.spec.end_time).cmp(&(&b.spec.source_namespace, &b.spec.end_time)));
    Ok(items)
}

async fn list(cluster: &Cluster, all: bool, format: Format) -> anyhow::Result<()> {
    let mut items = contents(cluster).await?;
    if !all {
        items.retain(|c| c.spec.source_namespace == cluster.namespace);
    }
    if output::print_structured(format, &output::list_of(&items))? {
        return Ok(());
    }
    let empty = if all {
        "No restore points found.".to_string()
    } else {
        format!("No restore points found in namespace {}.", cluster.namespace)
    };
    output::print_table(items.iter().map(row).collect(), &empty);
    let mut namespaces: Vec<&str> = items.iter().map(|c| c.spec.source_namespace.as_str()).collect();
    namespaces.dedup();
    for ns in namespaces {
        let of_ns: Vec<RestorePointContent> = items.iter().filter(|c| c.spec.source_namespace == ns).cloned().collect();
        if let Some(line) = judgement(ns, &of_ns) {
            println!("{line}");
        }
    }
    Ok(())
}

/// What a namespace's suspicious restore points mean for a restore, in one line (None when no
/// restore point is suspicious).
fn judgement(ns: &str, contents: &[RestorePointContent]) -> Option<String> {
    let judged = signals::judge(contents);
    let first = judged.first_suspicious?;
    let name = |c: &RestorePointContent| format!("{} ({})", c.spec.restore_point_ref.name, c.spec.end_time);
    let clean = match judged.last_clean {
        Some(c) => format!("the last clean one is {}: `kubectl k10 restore --last-clean -n {ns}` restores it", name(c)),
        None => "no restore point before it is left".into(),
    };
    Some(format!(
        "namespace {ns}: restore point {} is the first suspicious one: {}; {clean}",
        name(first),
        first.spec.suspicious.as_deref().unwrap_or_default()
    ))
}

/// A restore point's content, by the RestorePoint's name in the namespace, or by the content's own name.
pub async fn find_content(cluster: &Cluster, name: &str) -> anyhow::Result<RestorePointContent> {
    let points: Api<RestorePoint> = Api::namespaced(cluster.client.clone(), &cluster.namespace);
    let api: Api<RestorePointContent> = Api::all(cluster.client.clone());
    let content_name = match points
        .get_opt(name)
        .await
        .map_err(|e| catalog::not_installed(cluster.err(e, "read restore points"), "RestorePoint"))?
    {
        Some(rp) => rp.spec.restore_point_content_ref.name,
        None => name.to_string(),
    };
    api.get_opt(&content_name)
        .await
        .map_err(|e| cluster.err(e, format!("read RestorePointContent {content_name}")))?
        .with_context(|| {
            format!(
                "restore point {name:?} not found in namespace {} (nor a RestorePointContent of that name); list them with `kubectl k10 restorepoint list -A`",
                cluster.namespace
            )
        })
}

async fn get(cluster: &Cluster, name: &str, format: Format) -> anyhow::Result<()> {
    let c = find_content(cluster, name).await?;
    if output::print_structured(format, &c)? {
        return Ok(());
    }
    let s = &c.spec;
    let mut fields = vec![
        ("Name", s.restore_point_ref.name.clone()),
        ("Namespace", format!("{} (uid {})", s.source_namespace, s.source_namespace_uid)),
        ("Content", c.metadata.name.clone().unwrap_or_default()),
        ("Policy", s.policy.name.clone()),
        ("Profile", s.profile.name.clone()),
        ("Repository", s.repository.clone()),
        ("Started", s.start_time.clone()),
        ("Ended", format!("{} (the store's clock)", s.end_time)),
        ("Size", format!("{} in {} files ({} uploaded)", human_bytes(s.logical_bytes), s.files, human_bytes(s.uploaded_bytes))),
        ("Immutable", if s.immutable { "yes".into() } else { "no".into() }),
        ("Protected Until", protected_until(&c)),
        ("Suspicious", s.suspicious.clone().unwrap_or_else(|| "no".into())),
    ];
    for snap in &s.snapshots {
        let what = match &snap.pvc {
            Some(pvc) => format!("volume {pvc}"),
            None => snap.kind.clone(),
        };
        fields.push(("Snapshot", format!("{} ({what})", &snap.id[..snap.id.len().min(12)])));
    }
    output::print_card(&fields);
    Ok(())
}
