//! `kubectl k10 dr …`: disaster recovery of k10's own catalog.

use anyhow::bail;
use kube::api::{Api, ListParams};

use super::output;
use super::GlobalArgs;
use crate::api::{Policy, Profile, K10_NAMESPACE};
use crate::catalog;
use crate::dr::{self, DEFAULT_PASSPHRASE_SECRET, DR_POLICY, PASSPHRASE_ANNOTATION};
use crate::k8s::Cluster;
use crate::repo::{layout, parse_point_in_time, ReadOnly, Repo};

#[derive(Debug, clap::Subcommand)]
pub enum DrCommand {
    /// Enable disaster recovery: the DR policy backs up the catalog through a profile.
    Enable {
        /// The (immutable) profile the catalog goes to.
        #[arg(long)]
        profile: String,
        #[arg(long, default_value = "@hourly")]
        frequency: String,
        /// The Secret in kasten-io holding the passphrase (key `key`).
        #[arg(long, default_value = DEFAULT_PASSPHRASE_SECRET)]
        passphrase_secret: String,
    },
    /// Back up the catalog now.
    Run {
        /// Accepted for symmetry with `policy run`; a DR run always completes before returning.
        #[arg(long)]
        wait: bool,
    },
    /// The cluster ID (keep it: recovery needs it), the DR profile, the last DR runs, warnings.
    Status,
    /// Recreate the catalog of a cluster as of a point in time (run by the k10restore chart).
    Restore {
        /// The source cluster's ID (the UID of its `default` namespace).
        #[arg(long)]
        source_cluster_id: String,
        /// A profile of this installation on the bucket holding the catalog (need not be immutable).
        #[arg(long)]
        profile: String,
        /// RFC 3339; the newest DR snapshot at or before it is used (default: the newest).
        #[arg(long)]
        point_in_time: Option<String>,
        /// Do not recreate these: profiles, policies, secrets (comma-separated).
        #[arg(long, value_delimiter = ',')]
        skip_resource: Vec<String>,
        #[arg(long, default_value = DEFAULT_PASSPHRASE_SECRET)]
        passphrase_secret: String,
    },
}

async fn connect(global: &GlobalArgs) -> anyhow::Result<Cluster> {
    let mut cluster = global.cluster().connect().await?;
    cluster.namespace = K10_NAMESPACE.into();
    Ok(cluster)
}

/// The recommendations checked against the current catalog.
pub async fn warnings(cluster: &Cluster) -> anyhow::Result<Vec<String>> {
    let policies: Api<Policy> = Api::namespaced(cluster.client.clone(), K10_NAMESPACE);
    let profiles: Api<Profile> = Api::namespaced(cluster.client.clone(), K10_NAMESPACE);
    let policies = policies.list(&ListParams::default()).await.map_err(|e| cluster.err(e, "list policies"))?.items;
    let profiles = profiles.list(&ListParams::default()).await.map_err(|e| cluster.err(e, "list profiles"))?.items;
    Ok(dr::warnings(&policies, &profiles))
}

pub async fn run(global: &GlobalArgs, cmd: DrCommand) -> anyhow::Result<()> {
    let cluster = connect(global).await?;
    match cmd {
        DrCommand::Enable {
            profile,
            frequency,
            passphrase_secret,
        } => {
            dr::enable(&cluster, &profile, &frequency, &passphrase_secret).await?;
            println!("disaster recovery enabled: the catalog goes to profile {profile:?} {frequency}");
            println!("cluster ID: {} (keep it with the passphrase: recovery needs both)", catalog::cluster_id(&cluster).await?);
            for w in warnings(&cluster).await? {
                super::output::line_to_stderr(&format!("warning: {w}"));
            }
            Ok(())
        }
        DrCommand::Run { .. } => {
            let started = std::time::Instant::now();
            let result = dr::run(&cluster).await;
            // The DR policy's status records the run, as a policy run's does.
            let patch = serde_json::json!({"status": {
                "lastRunTime": dr::rfc3339(chrono::Utc::now()),
                "lastRunResult": if result.is_ok() { "Succeeded" } else { "Failed" },
                "lastRunDurationSeconds": (started.elapsed().as_secs_f64() * 10.0).round() / 10.0,
            }});
            let policies: Api<Policy> = Api::namespaced(cluster.client.clone(), K10_NAMESPACE);
            if let Err(e) = policies.patch_status(DR_POLICY, &kube::api::PatchParams::default(), &kube::api::Patch::Merge(&patch)).await {
                output::line_to_stderr(&format!("warning: could not record the run in the DR policy's status: {}", cluster.err(e, "patch policy status")));
            }
            let r = result?;
            match r.opened {
                crate::backup::Opened::Created => println!("created the catalog repository"),
                crate::backup::Opened::AfterWaiting => println!("waited for another DR run to create the catalog repository"),
                crate::backup::Opened::Existing => {}
            }
            println!(
                "DR run: catalog snapshot {} ({} profiles, {} policies, {} restore points, {} secrets) stored at {} in {:.1} s",
                &r.snapshot[..12],
                r.profiles,
                r.policies,
                r.restore_points,
                r.secrets,
                dr::rfc3339(r.stored_at),
                started.elapsed().as_secs_f64()
            );
            Ok(())
        }
        DrCommand::Status => status(&cluster).await,
        DrCommand::Restore {
            source_cluster_id,
            profile,
            point_in_time,
            skip_resource,
            passphrase_secret,
        } => {
            for s in &skip_resource {
                if !["profiles", "policies", "secrets"].contains(&s.as_str()) {
                    bail!("unknown --skip-resource {s:?}: use profiles, policies or secrets");
                }
            }
            let point_in_time = point_in_time.as_deref().map(parse_point_in_time).transpose()?;
            let report = dr::restore(
                &cluster,
                &dr::RestoreOptions {
                    source_cluster_id: source_cluster_id.clone(),
                    profile,
                    point_in_time,
                    skip: skip_resource,
                    passphrase_secret,
                },
            )
            .await?;
            for c in &report.created {
                println!("created  {c}");
            }
            for s in &report.skipped {
                println!("skipped  {s}");
            }
            for w in &report.warnings {
                super::output::line_to_stderr(&format!("warning: {w}"));
            }
            println!(
                "catalog of cluster {source_cluster_id} restored as of its DR snapshot stored at {} ({} objects created)",
                report.snapshot_time,
                report.created.len()
            );
            Ok(())
        }
    }
}

async fn status(cluster: &Cluster) -> anyhow::Result<()> {
    let cluster_id = catalog::cluster_id(cluster).await?;
    let api: Api<Policy> = Api::namespaced(cluster.client.clone(), K10_NAMESPACE);
    let policy = api.get_opt(DR_POLICY).await.map_err(|e| catalog::not_installed(cluster.err(e, "read the DR policy"), "Policy"))?;
    let mut fields = vec![("Cluster ID", cluster_id.clone())];
    match &policy {
        None => fields.push(("Disaster Recovery", "not enabled".into())),
        Some(p) => {
            let profile_name = p.export_profile().map(|r| r.name.clone()).unwrap_or_default();
            let profile = catalog::get_profile(cluster, &profile_name).await?;
            let immutability = match catalog::period_of(&profile)? {
                Some(period) => format!("immutable, protection period {period}"),
                None => "NOT immutable".into(),
            };
            fields.push(("Disaster Recovery", format!("enabled, {}", p.spec.frequency)));
            fields.push(("DR Profile", format!("{profile_name} ({immutability})")));
            let storage = catalog::profile_storage(cluster, &profile).await?;
            let times = dr::snapshot_times(storage.as_ref(), &cluster_id).await?;
            let last: Vec<String> = times.iter().rev().take(5).map(|t| dr::rfc3339(*t)).collect();
            fields.push(("Last DR Runs", if last.is_empty() { "none yet".into() } else { last.join(", ") }));
            // Reading the catalog needs the passphrase; its absence is a warning of its own.
            let secret = p.metadata.annotations.as_ref().and_then(|a| a.get(PASSPHRASE_ANNOTATION).cloned()).unwrap_or_else(|| DEFAULT_PASSPHRASE_SECRET.into());
            if let Ok(pass) = dr::passphrase(cluster, &secret).await {
                if let Some(newest) = times.last() {
                    if let Ok(repo) = Repo::<ReadOnly>::open_at(storage.clone(), &layout::catalog_repository(&cluster_id), *newest, &pass).await {
                        fields.push(("DR Snapshots", repo.snapshots().await.map(|s| s.len().to_string()).unwrap_or_default()));
                    }
                }
            }
        }
    }
    output::print_card(&fields);
    for w in warnings(cluster).await? {
        println!("warning: {w}");
    }
    Ok(())
}
