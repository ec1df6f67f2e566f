//! `kubectl k10 restore`: an application from a restore point, as it was when the backup ran.

use std::collections::BTreeMap;

use anyhow::bail;

use super::output::Progress;
use super::restorepoint::find_content;
use super::GlobalArgs;
use crate::api::K10_NAMESPACE;
use crate::k8s::jobs::ProductJob;
use crate::restore::{self, Existing, Options, Outcome};

#[derive(Debug, clap::Args)]
pub struct RestoreArgs {
    /// The RestorePoint (in -n) or RestorePointContent to restore.
    #[arg(required_unless_present = "last_clean")]
    pub restore_point: Option<String>,
    /// Restore the newest restore point of the namespace (-n) made before its first suspicious
    /// one (one whose data looked encrypted; see `restorepoint list`), or the newest if none is.
    #[arg(long, conflicts_with = "restore_point")]
    pub last_clean: bool,
    /// Restore into this namespace instead of the original one.
    #[arg(long)]
    pub target_namespace: Option<String>,
    /// Only these kinds (or resource names), comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub include: Vec<String>,
    /// Not these kinds (or resource names), comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub exclude: Vec<String>,
    /// What to do with objects that already exist.
    #[arg(long, value_enum, default_value_t = Existing::Skip)]
    pub existing: Existing,
    /// The data movers' memory limit (a quantity such as 512Mi; default 1Gi, README "Resources").
    #[arg(long, value_parser = crate::k8s::jobs::parse_mover_memory)]
    pub mover_memory_limit: Option<u64>,
    /// Restore here and wait for the result (otherwise a Job in kasten-io runs it).
    #[arg(long)]
    pub wait: bool,
}

pub async fn run(global: &GlobalArgs, args: RestoreArgs) -> anyhow::Result<()> {
    let cluster = global.cluster().connect().await?;
    let content = match &args.restore_point {
        Some(name) => find_content(&cluster, name).await?,
        None => last_clean(&cluster).await?,
    };
    if !args.wait {
        let mut job_args = vec![
            "restore".to_string(),
            content.metadata.name.clone().unwrap_or_default(),
            "--wait".into(),
            "--existing".into(),
            format!("{:?}", args.existing).to_lowercase(),
        ];
        if let Some(t) = &args.target_namespace {
            job_args.extend(["--target-namespace".into(), t.clone()]);
        }
        if !args.include.is_empty() {
            job_args.extend(["--include".into(), args.include.join(",")]);
        }
        if !args.exclude.is_empty() {
            job_args.extend(["--exclude".into(), args.exclude.join(",")]);
        }
        if let Some(limit) = args.mover_memory_limit {
            job_args.extend(["--mover-memory-limit".into(), limit.to_string()]);
        }
        let job = ProductJob {
            namespace: K10_NAMESPACE.into(),
            name: format!("k10-restore-{}", chrono::Utc::now().format("%Y%m%d%H%M%S")),
            args: job_args,
            secret_env: BTreeMap::new(),
            mount: None,
            node_name: None,
            labels: crate::k8s::managed_by(),
            timeout: std::time::Duration::from_secs(24 * 3600),
            owner: None,
            memory_limit: None,
        };
        job.start(&cluster).await?;
        println!("restore is running in Job {K10_NAMESPACE}/{0}; follow it with `kubectl logs -f job/{0} -n {K10_NAMESPACE}`", job.name);
        return Ok(());
    }
    let options = Options {
        target_namespace: args.target_namespace,
        include: args.include,
        exclude: args.exclude,
        existing: args.existing,
        mover_memory_limit: args.mover_memory_limit,
    };
    let progress = Progress::new();
    let started = std::time::Instant::now();
    let report = restore::restore(&cluster, &content, &options, &|line| progress.step(line)).await;
    progress.finish();
    let report = report?;
    let print = |what: &str, outcome: &Outcome| {
        let (mark, text) = match outcome {
            Outcome::Created => ("created ", String::new()),
            Outcome::Replaced => ("replaced", String::new()),
            Outcome::Skipped => ("skipped ", " (exists; --existing replace overwrites it)".to_string()),
            Outcome::Failed(why) => ("FAILED  ", format!(": {why}")),
        };
        println!("{mark} {what}{text}");
    };
    for (what, outcome) in &report.steps {
        print(what, outcome);
    }
    let failed = report.failed();
    if failed > 0 {
        bail!("restore into namespace {} finished with {failed} failure(s) (listed above)", report.namespace);
    }
    println!(
        "restored {} into namespace {} in {:.1} s",
        content.spec.restore_point_ref.name,
        report.namespace,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// The last clean restore point of the namespace (-n), saying which it is and why.
async fn last_clean(cluster: &crate::k8s::Cluster) -> anyhow::Result<crate::api::RestorePointContent> {
    let ns = &cluster.namespace;
    let contents: Vec<_> = super::restorepoint::contents(cluster).await?.into_iter().filter(|c| &c.spec.source_namespace == ns).collect();
    let judged = crate::backup::signals::judge(&contents);
    let Some(clean) = judged.last_clean else {
        match judged.first_suspicious {
            Some(first) => bail!(
                "namespace {ns} has no restore point before its first suspicious one, {} ({}): every restore point may hold encrypted data; pick one by name after looking at them with `kubectl k10 restorepoint get`",
                first.spec.restore_point_ref.name,
                first.spec.end_time
            ),
            None => bail!("namespace {ns} has no restore points; list them all with `kubectl k10 restorepoint list -A`"),
        }
    };
    match judged.first_suspicious {
        Some(first) => eprintln!(
            "note: restoring {} ({}), the newest restore point of {ns} before the first suspicious one, {} ({}: {})",
            clean.spec.restore_point_ref.name,
            clean.spec.end_time,
            first.spec.restore_point_ref.name,
            first.spec.end_time,
            first.spec.suspicious.as_deref().unwrap_or_default()
        ),
        None => eprintln!("note: no restore point of {ns} is suspicious: restoring the newest, {} ({})", clean.spec.restore_point_ref.name, clean.spec.end_time),
    }
    Ok(clean.clone())
}
