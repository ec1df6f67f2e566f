//! What an interrupted policy run leaves, and its removal by the next run of the namespace.
//!
//! Most of what a run makes goes with an owner: a data mover Job in `kasten-io` is owned by the
//! run's control Job, and the mover's Secret, snapshot copy and clone claim by the mover Job, so
//! deleting the control Job (or its TTL) removes them. Kubernetes cannot give the rest an owner
//! (owners never cross namespaces, and cluster-scoped objects cannot have namespaced ones):
//! * the VolumeSnapshot cut in the application's namespace and its VolumeSnapshotContents, and a
//!   snapshot a restore handed over there (it goes once the claim made from it is bound);
//! * a data mover Job and its Secret beside a volume that has no snapshot class;
//! * repository snapshots the run wrote but no restore point refers to.
//!
//! Each carries the run's labels (tags in the repository): the control Job's uid, or none for a
//! run from the command line. A run is over when its control Job is gone or finished; a command
//! line run's objects are left for [`CLI_RUN_PATIENCE`] (nothing tells that such a run ended).

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use chrono::Utc;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, ListParams, PropagationPolicy};

use crate::api::{RestorePointContent, K10_NAMESPACE};
use crate::k8s::{Cluster, K8sError};
use crate::repo::{Repo, Writable};

pub use crate::k8s::MANAGED_BY_KEY as MANAGED_BY;
/// The uid of the control Job whose run made an object (absent for a command-line run).
pub const CONTROL_JOB_LABEL: &str = "k10.kasten.io/control-job";
/// The application namespace an object serves (for objects outside it).
pub const NAMESPACE_LABEL: &str = "k10.kasten.io/namespace";
/// On a snapshot a restore handed over to an application's namespace: the claim made from it.
/// The snapshot goes once that claim is bound (by the restore, or by the next backup).
pub const RESTORES_CLAIM_LABEL: &str = "k10.kasten.io/restores-claim";
/// The repository tag of the control Job's uid.
pub const CONTROL_TAG: &str = "control=";

/// How long objects of a command-line run may stay before they are taken for leftovers (the run
/// may still be going: its data movers have up to six hours each).
pub const CLI_RUN_PATIENCE: Duration = Duration::from_secs(24 * 3600);

/// The labels of what a run makes for `namespace`.
pub fn labels(namespace: &str, control_job_uid: Option<&str>) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::from([(MANAGED_BY.to_string(), "k10".to_string()), (NAMESPACE_LABEL.to_string(), namespace.to_string())]);
    if let Some(uid) = control_job_uid {
        labels.insert(CONTROL_JOB_LABEL.into(), uid.into());
    }
    labels
}

/// Which runs are over: control Jobs of kasten-io that still run.
struct Runs {
    running: HashMap<String, bool>,
}

impl Runs {
    async fn read(cluster: &Cluster) -> Result<Runs, K8sError> {
        let jobs: Api<Job> = Api::namespaced(cluster.client.clone(), K10_NAMESPACE);
        let list = jobs
            .list(&ListParams::default())
            .await
            .map_err(|e| cluster.err(e, format!("list Jobs in {K10_NAMESPACE}")))?;
        let running = list
            .items
            .into_iter()
            .filter_map(|j| {
                let finished = j
                    .status
                    .as_ref()
                    .and_then(|s| s.conditions.as_ref())
                    .is_some_and(|c| c.iter().any(|c| (c.type_ == "Complete" || c.type_ == "Failed") && c.status == "True"));
                Some((j.metadata.uid?, !finished))
            })
            .collect();
        Ok(Runs { running })
    }

    /// Whether the run that made an object (by its labels and age) is over.
    fn over(&self, control_job: Option<&str>, age: Option<Duration>) -> bool {
        match control_job {
            Some(uid) => !self.running.get(uid).copied().unwrap_or(false),
            None => age.is_some_and(|a| a > CLI_RUN_PATIENCE),
        }
    }
}

fn age(meta: &kube::api::ObjectMeta) -> Option<Duration> {
    let created = meta.creation_timestamp.as_ref()?.0.as_second();
    u64::try_from(Utc::now().timestamp() - created).ok().map(Duration::from_secs)
}

fn snapshot_api(kind: &str, plural: &str) -> ApiResource {
    ApiResource {
        group: "snapshot.storage.k8s.io".into(),
        version: "v1".into(),
        api_version: "snapshot.storage.k8s.io/v1".into(),
        kind: kind.into(),
        plural: plural.into(),
    }
}

/// Removes what interrupted runs left for `namespace` in the cluster; returns what it removed
/// (`Kind namespace/name`). Best effort per object: one that cannot be removed now is tried
/// again by the next run.
pub async fn in_cluster(cluster: &Cluster, namespace: &str) -> Result<Vec<String>, K8sError> {
    let runs = Runs::read(cluster).await?;
    let ours = ListParams::default().labels(&format!("{MANAGED_BY}=k10"));
    let for_namespace = ListParams::default().labels(&format!("{MANAGED_BY}=k10,{NAMESPACE_LABEL}={namespace}"));
    let mut cleaned = Vec::new();
    let left = |meta: &kube::api::ObjectMeta| {
        let control = meta.labels.as_ref().and_then(|l| l.get(CONTROL_JOB_LABEL)).map(String::as_str);
        runs.over(control, age(meta))
    };
    let background = DeleteParams {
        propagation_policy: Some(PropagationPolicy::Background),
        ..Default::default()
    };

    // Data mover Jobs (and their Secrets) beside live volumes, and in kasten-io those of
    // command-line runs (a control Job's go with it).
    for (ns, params) in [(namespace, &ours), (K10_NAMESPACE, &for_namespace)] {
        let jobs: Api<Job> = Api::namespaced(cluster.client.clone(), ns);
        for job in jobs.list(params).await.map_err(|e| cluster.err(e, format!("list Jobs in {ns}")))?.items {
            let is_mover = job.metadata.labels.as_ref().is_some_and(|l| l.contains_key(NAMESPACE_LABEL));
            if is_mover && left(&job.metadata) {
                let name = job.metadata.name.clone().unwrap_or_default();
                if jobs.delete(&name, &background).await.is_ok() {
                    cleaned.push(format!("Job {ns}/{name}"));
                }
                let secrets: Api<Secret> = Api::namespaced(cluster.client.clone(), ns);
                if secrets.delete(&format!("{name}-env"), &DeleteParams::default()).await.is_ok() {
                    cleaned.push(format!("Secret {ns}/{name}-env"));
                }
            }
        }
    }

    // The snapshot cut in the application's namespace, and the contents of the run's snapshots.
    let snapshots: Api<DynamicObject> = Api::namespaced_with(cluster.client.clone(), namespace, &snapshot_api("VolumeSnapshot", "volumesnapshots"));
    match snapshots.list(&ours).await {
        Ok(list) => {
            for s in list.items {
                let restores = s.metadata.labels.as_ref().and_then(|l| l.get(RESTORES_CLAIM_LABEL));
                let over = match restores {
                    Some(claim) => claim_settled(cluster, namespace, claim).await?,
                    None => left(&s.metadata),
                };
                if !over {
                    continue;
                }
                let name = s.metadata.name.clone().unwrap_or_default();
                if snapshots.delete(&name, &DeleteParams::default()).await.is_ok() {
                    cleaned.push(format!("VolumeSnapshot {namespace}/{name}"));
                }
            }
        }
        Err(kube::Error::Api(s)) if s.code == 404 => return Ok(cleaned),
        Err(e) => return Err(cluster.err(e, format!("list VolumeSnapshots in {namespace}"))),
    }
    let contents: Api<DynamicObject> = Api::all_with(cluster.client.clone(), &snapshot_api("VolumeSnapshotContent", "volumesnapshotcontents"));
    let list = contents.list(&for_namespace).await.map_err(|e| cluster.err(e, "list VolumeSnapshotContents"))?;
    for c in list.items.into_iter().filter(|c| left(&c.metadata)) {
        // A content whose snapshot is still there goes with that snapshot.
        let reference = &c.data["spec"]["volumeSnapshotRef"];
        if let (Some(ns), Some(snapshot)) = (reference["namespace"].as_str(), reference["name"].as_str()) {
            let snapshots: Api<DynamicObject> = Api::namespaced_with(cluster.client.clone(), ns, &snapshot_api("VolumeSnapshot", "volumesnapshots"));
            if matches!(snapshots.get_opt(snapshot).await, Ok(Some(_)) | Err(_)) {
                continue;
            }
        }
        let name = c.metadata.name.clone().unwrap_or_default();
        if contents.delete(&name, &DeleteParams::default()).await.is_ok() {
            cleaned.push(format!("VolumeSnapshotContent {name}"));
        }
    }
    Ok(cleaned)
}

/// Whether the claim is bound (or gone: nothing waits for a snapshot to fill it any more).
pub async fn claim_settled(cluster: &Cluster, namespace: &str, claim: &str) -> Result<bool, K8sError> {
    let claims: Api<k8s_openapi::api::core::v1::PersistentVolumeClaim> = Api::namespaced(cluster.client.clone(), namespace);
    let found = claims
        .get_opt(claim)
        .await
        .map_err(|e| cluster.err(e, format!("read PersistentVolumeClaim {namespace}/{claim}")))?;
    Ok(found.is_none_or(|c| c.status.and_then(|s| s.phase).as_deref() == Some("Bound")))
}

/// Forgets (delete markers only: every version stays locked) the snapshots of `repo` that no
/// restore point refers to and whose run is over; returns their ids. Only the repository of this
/// namespace's incarnation is touched (its path has the namespace's uid): a recovery cluster's
/// runs never reach the snapshots of the cluster they replace.
pub async fn in_repository(cluster: &Cluster, repo: &Repo<Writable>, repository: &str) -> Result<Vec<String>, crate::backup::BackupError> {
    let runs = Runs::read(cluster).await?;
    let contents: Api<RestorePointContent> = Api::all(cluster.client.clone());
    let list = contents
        .list(&ListParams::default())
        .await
        .map_err(|e| cluster.err(e, "list RestorePointContents"))?;
    let referenced: std::collections::HashSet<String> = list
        .items
        .iter()
        .filter(|c| c.spec.repository == repository)
        .flat_map(|c| c.spec.snapshots.iter().map(|s| s.id.clone()))
        .collect();
    let mut forgotten = Vec::new();
    for snap in repo.snapshots().await? {
        if referenced.contains(&snap.id) {
            continue;
        }
        let control = snap.tags.iter().find_map(|t| t.strip_prefix(CONTROL_TAG));
        let age = u64::try_from((Utc::now() - snap.time).num_seconds()).ok().map(Duration::from_secs);
        if runs.over(control, age) {
            repo.forget(&snap.id).await?;
            forgotten.push(snap.id);
        }
    }
    Ok(forgotten)
}
