//! `kubectl k10 maintenance run`: retention maintenance of every repository of the immutable
//! profiles (run it at least every 2 days; the controller does, daily by default).

use anyhow::bail;
use kube::api::ListParams;
use tabled::Tabled;

use super::output;
use super::GlobalArgs;
use crate::api::K10_NAMESPACE;
use crate::catalog;
use crate::objectstore::maintenance;
use crate::objectstore::storage::VersionedStorage;
use crate::repo::layout;

#[derive(Debug, clap::Subcommand)]
pub enum MaintenanceCommand {
    /// Extend the locks of every object still current in the repositories of the immutable
    /// profiles (or of one profile), so that each stays restorable for the protection period.
    Run {
        /// Only this profile.
        #[arg(long, value_name = "NAME")]
        profile: Option<String>,
    },
}

#[derive(Tabled)]
struct Row {
    #[tabled(rename = "PROFILE")]
    profile: String,
    #[tabled(rename = "REPOSITORY")]
    repository: String,
    #[tabled(rename = "EXTENDED")]
    extended: usize,
    #[tabled(rename = "SKIPPED")]
    skipped: usize,
    #[tabled(rename = "FAILED")]
    failed: usize,
    #[tabled(rename = "REQUESTS")]
    requests: usize,
    /// The earliest end among the locks kept: how far ahead the repository is protected.
    #[tabled(rename = "LOCKED UNTIL")]
    horizon: String,
}

pub async fn run(global: &GlobalArgs, cmd: MaintenanceCommand) -> anyhow::Result<()> {
    let MaintenanceCommand::Run { profile } = cmd;
    let mut cluster = global.cluster().connect().await?;
    if !cluster.namespace_given {
        cluster.namespace = K10_NAMESPACE.to_string();
    }
    let cluster_id = catalog::cluster_id(&cluster).await?;
    let profiles = match &profile {
        Some(name) => {
            let p = catalog::get_profile(&cluster, name).await?;
            if catalog::period_of(&p)?.is_none() {
                return Err(catalog::CatalogError::NotImmutable(name.clone()).into());
            }
            vec![p]
        }
        None => {
            let all = catalog::profiles(&cluster)
                .list(&ListParams::default())
                .await
                .map_err(|e| catalog::not_installed(cluster.err(e, "list profiles"), "Profile"))?
                .items;
            let mut immutable = Vec::new();
            for p in all {
                if catalog::period_of(&p)?.is_some() {
                    immutable.push(p);
                }
            }
            immutable
        }
    };
    if profiles.is_empty() {
        println!("No immutable profiles in namespace {}: nothing to maintain.", cluster.namespace);
        return Ok(());
    }

    let mut rows = Vec::new();
    let mut failures = Vec::new();
    for profile in &profiles {
        let name = profile.metadata.name.clone().unwrap_or_default();
        let period = catalog::period_of(profile)?.expect("only immutable profiles are maintained");
        let storage = catalog::profile_storage(&cluster, profile).await?;
        let repositories = maintenance::repositories(storage.as_ref(), &layout::cluster_root(&cluster_id)).await?;
        for repository in repositories {
            let store: std::sync::Arc<dyn VersionedStorage> = storage.clone();
            // One repository's failure does not stop the others.
            let report = match maintenance::run(store, &repository, period).await {
                Ok(report) => report,
                Err(e) => {
                    failures.push(format!("{repository}: {e}"));
                    continue;
                }
            };
            for (key, why) in &report.failed {
                failures.push(format!("{key}: {why}"));
            }
            rows.push(Row {
                profile: name.clone(),
                repository,
                extended: report.extended,
                skipped: report.skipped,
                failed: report.failed.len(),
                requests: report.requests,
                horizon: report
                    .horizon
                    .map_or_else(|| "-".into(), |h| h.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
            });
        }
    }
    output::print_table(rows, &format!("No repositories of cluster {cluster_id} in the immutable profiles' buckets."));
    if !failures.is_empty() {
        for f in &failures {
            eprintln!("failed: {f}");
        }
        bail!("could not extend the lock of {} object(s) (listed above); fix the store's lock configuration or permissions and run again", failures.len());
    }
    Ok(())
}
