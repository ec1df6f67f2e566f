//! `kubectl k10 policy …`: backup policies exporting applications to a location profile.

use std::collections::BTreeMap;

use anyhow::{bail, Context};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use tabled::Tabled;

use super::output::{self, Format, OutputArgs};
use super::GlobalArgs;
use crate::api::{LabelSelector, Policy, Retention, APP_NAMESPACE_KEY, K10_NAMESPACE};
use crate::backup::{self, retention};
use crate::catalog::policies::{self, NewPolicy};
use crate::catalog;
use crate::k8s::jobs::ProductJob;
use crate::k8s::Cluster;

#[derive(Debug, clap::Subcommand)]
pub enum PolicyCommand {
    /// Create a policy that backs up namespaces and exports them to a profile.
    Create {
        name: String,
        /// The namespaces to protect, comma-separated.
        #[arg(long, value_delimiter = ',', required_unless_present = "selector", conflicts_with = "selector")]
        namespaces: Vec<String>,
        /// Protect every namespace with these labels (k=v[,k=v]).
        #[arg(long)]
        selector: Option<String>,
        /// The location profile backups are exported to.
        #[arg(long)]
        profile: String,
        /// @hourly, @daily, @weekly, @monthly, @yearly, a cron expression, or @onDemand.
        #[arg(long, default_value = "@onDemand")]
        frequency: String,
        /// How many restore points to keep, e.g. hourly=24,daily=7,weekly=4,monthly=12,yearly=7.
        #[arg(long)]
        retention: Option<String>,
        /// Refuse a profile without Object Lock immutability.
        #[arg(long)]
        require_immutable: bool,
    },
    /// List policies.
    List {
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Show a policy.
    Get {
        name: String,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Delete a policy (its restore points stay).
    Delete { name: String },
    /// Run a policy now: through a RunAction that the controller runs and this command follows,
    /// or (`--wait`, or no controller running) here.
    Run {
        name: String,
        /// Run here, in this process, and wait for the result (also where no controller runs).
        #[arg(long)]
        wait: bool,
        /// Refuse to run if the policy's profile is not immutable.
        #[arg(long)]
        require_immutable: bool,
        /// The Job this run is in (set by the product's Jobs from their pod's labels): its pods
        /// make one restore point per namespace between them.
        #[arg(long, env = crate::k8s::jobs::ENV_JOB_NAME, hide = true)]
        job_name: Option<String>,
        #[arg(long, env = crate::k8s::jobs::ENV_JOB_UID, hide = true)]
        job_uid: Option<String>,
    },
}

pub async fn run(global: &GlobalArgs, cmd: PolicyCommand) -> anyhow::Result<()> {
    let mut cluster = global.cluster().connect().await?;
    if !cluster.namespace_given {
        cluster.namespace = K10_NAMESPACE.to_string();
    }
    match cmd {
        PolicyCommand::Create {
            name,
            namespaces,
            selector,
            profile,
            frequency,
            retention,
            require_immutable,
        } => {
            let retention = retention
                .as_deref()
                .map(retention::parse)
                .transpose()
                .map_err(anyhow::Error::msg)?
                .unwrap_or_default();
            create(&cluster, &name, namespaces, selector, &profile, &frequency, retention, require_immutable).await
        }
        PolicyCommand::List { output } => list(&cluster, output.format).await,
        PolicyCommand::Get { name, output } => get(&cluster, &name, output.format).await,
        PolicyCommand::Delete { name } => delete(&cluster, &name).await,
        PolicyCommand::Run {
            name,
            wait,
            require_immutable,
            job_name,
            job_uid,
        } => {
            let job = job_name.zip(job_uid).filter(|(n, u)| !n.is_empty() && !u.is_empty()).map(|(name, uid)| backup::RunJob { name, uid });
            run_now(&cluster, &name, wait, require_immutable, job).await
        }
    }
}

fn policies(cluster: &Cluster) -> Api<Policy> {
    Api::namespaced(cluster.client.clone(), &cluster.namespace)
}

#[allow(clippy::too_many_arguments)]
async fn create(
    cluster: &Cluster,
    name: &str,
    namespaces: Vec<String>,
    selector: Option<String>,
    profile: &str,
    frequency: &str,
    retention: Retention,
    require_immutable: bool,
) -> anyhow::Result<()> {
    let mut labels = BTreeMap::new();
    for pair in selector.iter().flat_map(|s| s.split(',')).filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').with_context(|| format!("invalid selector {pair:?}: use key=value"))?;
        labels.insert(k.trim().to_string(), v.trim().to_string());
    }
    let new = NewPolicy {
        name: name.into(),
        namespaces,
        labels,
        profile: profile.into(),
        frequency: frequency.into(),
        retention,
        require_immutable,
    };
    let (_, schedule) = policies::create_policy(cluster, new).await?;
    if schedule.is_scheduled() {
        println!("policy {name:?} created: the controller runs it {frequency} (`kubectl get policy {name} -n {} -o yaml` shows its next run)", cluster.namespace);
    } else {
        println!("policy {name:?} created: runs on demand (`kubectl k10 policy run {name}`)");
    }
    for w in super::dr::warnings(cluster).await? {
        super::output::line_to_stderr(&format!("warning: {w}"));
    }
    Ok(())
}

#[derive(Tabled)]
struct Row {
    #[tabled(rename = "NAME")]
    name: String,
    #[tabled(rename = "FREQUENCY")]
    frequency: String,
    #[tabled(rename = "NAMESPACES")]
    namespaces: String,
    #[tabled(rename = "PROFILE")]
    profile: String,
    #[tabled(rename = "RETENTION")]
    retention: String,
    #[tabled(rename = "LAST RUN")]
    last_run: String,
}

fn selector_text(selector: &LabelSelector) -> String {
    let mut parts: Vec<String> = selector
        .match_expressions
        .iter()
        .filter(|e| e.key == APP_NAMESPACE_KEY)
        .flat_map(|e| e.values.clone())
        .collect();
    parts.extend(selector.match_labels.iter().map(|(k, v)| format!("{k}={v}")));
    parts.join(",")
}

fn retention_text(r: &Retention) -> String {
    let parts: Vec<String> = [("hourly", r.hourly), ("daily", r.daily), ("weekly", r.weekly), ("monthly", r.monthly), ("yearly", r.yearly)]
        .iter()
        .filter_map(|(k, v)| v.map(|n| format!("{k}={n}")))
        .collect();
    if parts.is_empty() {
        "keep all".into()
    } else {
        parts.join(",")
    }
}

async fn list(cluster: &Cluster, format: Format) -> anyhow::Result<()> {
    let mut items = policies(cluster)
        .list(&ListParams::default())
        .await
        .map_err(|e| catalog::not_installed(cluster.err(e, "list policies"), "Policy"))?
        .items;
    items.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    if output::print_structured(format, &output::list_of(&items))? {
        return Ok(());
    }
    let rows = items
        .iter()
        .map(|p| Row {
            name: p.metadata.name.clone().unwrap_or_default(),
            frequency: p.spec.frequency.clone(),
            namespaces: selector_text(&p.spec.selector),
            profile: p.export_profile().map(|r| r.name.clone()).unwrap_or_else(|| "-".into()),
            retention: retention_text(&p.spec.retention),
            last_run: p
                .status
                .as_ref()
                .and_then(|s| s.last_run_time.clone().map(|t| format!("{t} {}", s.last_run_result.clone().unwrap_or_default())))
                .unwrap_or_else(|| "-".into()),
        })
        .collect();
    output::print_table(rows, &format!("No policies found in namespace {}.", cluster.namespace));
    Ok(())
}

async fn get_policy(cluster: &Cluster, name: &str) -> anyhow::Result<Policy> {
    policies(cluster)
        .get_opt(name)
        .await
        .map_err(|e| catalog::not_installed(cluster.err(e, format!("read policy {name:?}")), "Policy"))?
        .with_context(|| format!("policy {name:?} not found in namespace {}; list policies with `kubectl k10 policy list`", cluster.namespace))
}

async fn get(cluster: &Cluster, name: &str, format: Format) -> anyhow::Result<()> {
    let p = get_policy(cluster, name).await?;
    if output::print_structured(format, &p)? {
        return Ok(());
    }
    let status = p.status.clone().unwrap_or_default();
    output::print_card(&[
        ("Name", name.to_string()),
        ("Namespace", cluster.namespace.clone()),
        ("Frequency", p.spec.frequency.clone()),
        ("Namespaces", selector_text(&p.spec.selector)),
        ("Profile", p.export_profile().map(|r| r.name.clone()).unwrap_or_else(|| "-".into())),
        ("Retention", retention_text(&p.spec.retention)),
        ("Last Run", status.last_run_time.unwrap_or_else(|| "never".into())),
        ("Last Result", status.last_run_result.unwrap_or_else(|| "-".into())),
    ]);
    Ok(())
}

async fn delete(cluster: &Cluster, name: &str) -> anyhow::Result<()> {
    get_policy(cluster, name).await?;
    policies(cluster)
        .delete(name, &DeleteParams::default())
        .await
        .map_err(|e| cluster.err(e, format!("delete policy {name:?}")))?;
    println!("policy {name:?} deleted (its restore points stay)");
    Ok(())
}

async fn run_now(cluster: &Cluster, name: &str, wait: bool, require_immutable: bool, job: Option<backup::RunJob>) -> anyhow::Result<()> {
    let policy = get_policy(cluster, name).await?;
    if !wait {
        if let Some(leader) = crate::controller::leader::live_leader(cluster, K10_NAMESPACE).await? {
            return follow_run_action(cluster, name, &leader).await;
        }
        let job = ProductJob {
            namespace: cluster.namespace.clone(),
            name: format!("k10-policy-run-{name}-{}", chrono::Utc::now().format("%Y%m%d%H%M%S")),
            args: vec!["policy".into(), "run".into(), name.into(), "--wait".into()],
            secret_env: BTreeMap::new(),
            mount: None,
            node_name: None,
            labels: crate::k8s::managed_by(),
            timeout: std::time::Duration::from_secs(24 * 3600),
            owner: None,
            memory_limit: None,
        };
        job.start(cluster).await?;
        println!("no controller is running (no live Lease {K10_NAMESPACE}/{}): policy {name:?} is running in Job {}/{}; follow it with `kubectl logs -f job/{} -n {}`", crate::controller::leader::LEASE_NAME, job.namespace, job.name, job.name, job.namespace);
        return Ok(());
    }
    let started = std::time::Instant::now();
    let progress = output::Progress::new();
    let result = backup::run_policy(cluster, &policy, require_immutable, job.as_ref(), &|line| progress.step(line)).await;
    progress.finish();
    let runs: &[backup::NamespaceRun] = match &result {
        Ok(runs) => runs,
        Err(backup::BackupError::Partial { runs, .. }) => runs,
        Err(_) => &[],
    };
    let patch = serde_json::json!({"status": {
        "lastRunTime": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "lastRunResult": if result.is_ok() { "Succeeded" } else { "Failed" },
        "lastRunDurationSeconds": (started.elapsed().as_secs_f64() * 10.0).round() / 10.0,
        "lastRunBytes": runs.iter().map(|r| r.uploaded).sum::<u64>(),
        "lastRestorePoints": runs.iter().map(|r| format!("{}/{}", r.namespace, r.restore_point)).collect::<Vec<_>>(),
    }});
    if let Err(e) = policies(cluster).patch_status(name, &PatchParams::default(), &Patch::Merge(&patch)).await {
        super::output::line_to_stderr(&format!("warning: could not record the run in policy {name:?}'s status: {}", cluster.err(e, "patch policy status")));
    }
    let (runs, failed) = match result {
        Ok(runs) => (runs, None),
        Err(backup::BackupError::Partial { total, failures, runs }) => {
            let e = backup::BackupError::Partial { total, failures, runs: Vec::new() };
            (runs, Some(e))
        }
        Err(e) => return Err(e.into()),
    };
    for run in &runs {
        println!(
            "namespace {}: restore point {} ({} volumes, {} manifests, {} files, {} bytes, {} bytes uploaded; end {})",
            run.namespace, run.restore_point, run.volumes, run.manifests, run.files, run.bytes, run.uploaded, run.end_time
        );
        if let Some(why) = &run.suspicious {
            super::output::line_to_stderr(&format!("warning: {}", backup::signals::warning(&run.namespace, &run.restore_point, why)));
        }
    }
    if let Some(e) = failed {
        return Err(e.into());
    }
    println!("policy {name:?} run succeeded in {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}

/// Hands the run to the controller: a RunAction, followed until it ends.
async fn follow_run_action(cluster: &Cluster, policy: &str, leader: &str) -> anyhow::Result<()> {
    use crate::api::{RunAction, RunActionSpec, Subject, STATE_COMPLETE, STATE_FAILED};
    let api: Api<RunAction> = Api::all(cluster.client.clone());
    let mut action = RunAction::new("", RunActionSpec {
        subject: Subject { kind: "Policy".into(), name: policy.into(), namespace: K10_NAMESPACE.into() },
    });
    action.metadata.name = None;
    action.metadata.generate_name = Some(format!("run-{}-", policy.chars().take(40).collect::<String>()));
    let made = api
        .create(&PostParams::default(), &action)
        .await
        .map_err(|e| catalog::not_installed(cluster.err(e, "create a RunAction"), "RunAction"))?;
    let name = made.metadata.name.clone().unwrap_or_default();
    println!("policy {policy:?}: RunAction {name} created; the controller ({leader}) runs it (`kubectl get runaction {name} -o yaml`)");
    let started = std::time::Instant::now();
    let ended = |r: Option<&RunAction>| r.and_then(|r| r.status.as_ref()).and_then(|s| s.state.as_deref()).is_some_and(|s| s == STATE_COMPLETE || s == STATE_FAILED);
    let done = kube::runtime::wait::await_condition(api, &name, ended)
        .await
        .with_context(|| format!("following RunAction {name}"))?
        .with_context(|| format!("RunAction {name} was deleted before it ended"))?;
    let status = done.status.unwrap_or_default();
    if status.state.as_deref() == Some(STATE_FAILED) {
        bail!("RunAction {name} failed: {}", status.error.map(|e| e.message).unwrap_or_default());
    }
    for point in &status.restore_points {
        println!("restore point {point}");
    }
    println!("policy {policy:?} run succeeded in {:.1} s (Job {}/{})", started.elapsed().as_secs_f64(), K10_NAMESPACE, status.job.unwrap_or_default());
    Ok(())
}
