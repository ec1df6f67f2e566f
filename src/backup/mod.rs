//! A policy run: for each selected namespace, the volumes' data (through data mover Jobs) and the
//! manifests (through API discovery) into the namespace's repository, then a RestorePoint, then
//! the policy's retention. A failed run leaves no RestorePoint and forgets what it wrote.

pub mod capture;
pub mod cleanup;
pub mod retention;
pub mod signals;
pub mod snapshots;

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use chrono::{SecondsFormat, Utc};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, PersistentVolumeClaim, Pod, Secret};
use k8s_openapi::ByteString;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Api, DeleteParams, ListParams, ObjectMeta, PostParams};

use crate::api::{
    ContentRef, NamespacedName, Policy, Profile, RestorePoint, RestorePointContent, RestorePointContentSpec,
    RestorePointSpec, SnapshotRef, APP_LABEL, APP_NAMESPACE_KEY, K10_NAMESPACE, POLICY_LABEL,
};
use crate::catalog::{self, CatalogError};
use crate::datamover::{self, Target};
use crate::k8s::jobs::{JobError, Mount, ProductJob};
use crate::k8s::{Cluster, K8sError};
use crate::objectstore::s3::S3Storage;
use crate::objectstore::storage::StorageError;
use crate::repo::{self, layout, Repo, RepoError, Writable};

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("policy {0:?} exports to no profile: add an export action with exportParameters.profile")]
    NoProfile(String),
    #[error("policy {policy:?} selects no namespace: give --namespaces or a --selector that matches")]
    NothingSelected { policy: String },
    #[error("namespace {0:?} not found")]
    NamespaceNotFound(String),
    #[error("profile {0:?} is not immutable, and the policy requires immutable backups")]
    NotImmutable(String),
    #[error("backup of namespace {namespace:?} failed: {source}; no restore point was created")]
    Namespace {
        namespace: String,
        #[source]
        source: Box<BackupError>,
    },
    #[error("{} of {total} namespaces failed: {}", .failures.len(), .failures.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Partial {
        total: usize,
        failures: Vec<BackupError>,
        /// The namespaces that were protected.
        runs: Vec<NamespaceRun>,
    },
    #[error("the repository at {repository} is being created by another run ({holder}, claim {claim} since {since}); run again in a few minutes (a claim older than 10 minutes is taken over)")]
    BeingCreated {
        repository: String,
        claim: String,
        holder: String,
        since: String,
    },
    #[error("the repository at {repository} has a config behind a delete marker while its other files are visible: someone hid it (k10 never deletes one), and a second config would make the repository unreadable. Restore from a point in time before that; to back up again, copy the config's newest genuine version back over it (or use another bucket)")]
    ConfigHidden { repository: String },
    #[error("restore point {name} exists already: another pod of this run's Job recorded it, but it cannot be read back; list restore points with `kubectl k10 restorepoint list`")]
    AlreadyRecorded { name: String },
    #[error("the run's Job {name} is gone (or was replaced by another of the same name): this pod's run is not needed any more")]
    JobGone { name: String },
    #[error(transparent)]
    Job(#[from] JobError),
    #[error(transparent)]
    Snapshot(#[from] snapshots::SnapshotError),
    #[error(transparent)]
    Repo(#[from] RepoError),
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error(transparent)]
    K8s(#[from] K8sError),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

pub type Result<T, E = BackupError> = std::result::Result<T, E>;

/// What a run wrote to a namespace's repository, before it is recorded.
struct Written {
    snapshots: Vec<(SnapshotRef, repo::Snapshot)>,
    manifests: usize,
    signals: Vec<crate::api::VolumeSignals>,
    suspicious: Option<String>,
}

/// What one namespace's run produced.
#[derive(Debug, Clone)]
pub struct NamespaceRun {
    pub namespace: String,
    pub restore_point: String,
    pub volumes: usize,
    pub manifests: usize,
    pub files: u64,
    pub bytes: u64,
    pub uploaded: u64,
    pub end_time: String,
    /// Restore points retired by the policy's retention after this run.
    pub retired: Vec<String>,
    /// Why the restore point looks like the application's data was encrypted (see [`signals`]).
    pub suspicious: Option<String>,
}

/// How long one data mover Job may take.
const JOB_TIMEOUT: Duration = Duration::from_secs(6 * 3600);

/// The namespaces a policy selects: names listed with `k10.kasten.io/appNamespace In (…)`, and
/// namespaces matching its labels.
pub async fn selected_namespaces(cluster: &Cluster, policy: &Policy) -> Result<Vec<String>> {
    let selector = &policy.spec.selector;
    // Namespaces named one by one (`appNamespace In [...]` alone) are taken as named: one that
    // does not exist fails its backup visibly instead of dropping out of the selection.
    if let [only] = selector.match_expressions.as_slice() {
        if selector.match_labels.is_empty() && only.key == APP_NAMESPACE_KEY && only.operator == "In" {
            let mut names = only.values.clone();
            names.sort();
            names.dedup();
            return Ok(names);
        }
    }
    let namespaces: Api<Namespace> = Api::all(cluster.client.clone());
    let list = namespaces
        .list(&ListParams::default().labels(&namespace_selector(selector)))
        .await
        .map_err(|e| cluster.err(e, "list namespaces"))?;
    let mut names: Vec<String> = list.items.into_iter().filter_map(|n| n.metadata.name).collect();
    names.sort();
    Ok(names)
}

/// A policy's selector as a label selector over namespaces: every requirement must hold, and
/// K10's `k10.kasten.io/appNamespace` is the namespace's name (`kubernetes.io/metadata.name`).
fn namespace_selector(selector: &crate::api::LabelSelector) -> String {
    let key = |k: &str| if k == APP_NAMESPACE_KEY { "kubernetes.io/metadata.name".to_string() } else { k.to_string() };
    let mut parts: Vec<String> = selector.match_labels.iter().map(|(k, v)| format!("{}={v}", key(k))).collect();
    for e in &selector.match_expressions {
        parts.push(match e.operator.as_str() {
            "In" => format!("{} in ({})", key(&e.key), e.values.join(",")),
            "NotIn" => format!("{} notin ({})", key(&e.key), e.values.join(",")),
            "Exists" => key(&e.key),
            _ => format!("!{}", key(&e.key)),
        });
    }
    parts.join(",")
}

/// The Secret (in kasten-io) holding a namespace repository's password; created on first use.
pub fn password_secret_name(namespace_uid: &str) -> String {
    format!("k10-repo-{namespace_uid}")
}

/// A namespace repository's password, read from its Secret (None when the Secret or its key is
/// missing).
pub async fn repository_password(cluster: &Cluster, name: &str) -> Result<Option<String>> {
    Ok(read_password_secret(cluster, name).await?.filter(|p| !p.is_empty()))
}

async fn read_password_secret(cluster: &Cluster, name: &str) -> Result<Option<String>> {
    let secrets: Api<Secret> = Api::namespaced(cluster.client.clone(), K10_NAMESPACE);
    let secret = secrets
        .get_opt(name)
        .await
        .map_err(|e| cluster.err(e, format!("read Secret {K10_NAMESPACE}/{name}")))?;
    Ok(secret.map(|s| {
        s.data
            .and_then(|d| d.get("password").map(|b| String::from_utf8_lossy(&b.0).into_owned()))
            .unwrap_or_default()
    }))
}

/// Reads the repository's password, or creates its Secret with a new random one. Of two runs
/// creating it at once, one wins and the other reads the winner's.
pub async fn claim_repository_password(cluster: &Cluster, name: &str) -> Result<String> {
    let missing = || K8sError::NotFound {
        what: format!("key `password` in Secret {K10_NAMESPACE}/{name}"),
    };
    if let Some(password) = read_password_secret(cluster, name).await? {
        if password.is_empty() {
            return Err(missing().into());
        }
        return Ok(password);
    }
    let password = repo::new_password();
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            namespace: Some(K10_NAMESPACE.into()),
            labels: Some(crate::k8s::managed_by()),
            ..Default::default()
        },
        data: Some(BTreeMap::from([("password".into(), ByteString(password.clone().into_bytes()))])),
        ..Default::default()
    };
    let secrets: Api<Secret> = Api::namespaced(cluster.client.clone(), K10_NAMESPACE);
    match secrets.create(&PostParams::default(), &secret).await {
        Ok(_) => Ok(password),
        Err(kube::Error::Api(s)) if s.code == 409 => {
            let password = read_password_secret(cluster, name).await?.filter(|p| !p.is_empty()).ok_or_else(missing)?;
            Ok(password)
        }
        Err(e) => Err(cluster.err(e, format!("create Secret {K10_NAMESPACE}/{name}")).into()),
    }
}

/// How long a run waits for another run to create a repository.
const INIT_WAIT: std::time::Duration = std::time::Duration::from_secs(120);
/// A claim to create a repository older than this was left by a run that died: another run may
/// take it over. Far longer than a creation takes, so that clock skew cannot make two runs
/// create the repository at once.
const STALE_CLAIM: chrono::Duration = chrono::Duration::minutes(10);

/// How a run came to hold its repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opened {
    /// It existed.
    Existing,
    /// This run created it (it won the claim).
    Created,
    /// Another run was creating it; this one waited and opened it.
    AfterWaiting,
}

/// Opens the repository under `prefix`, or creates it. Exactly one run creates it: the one that
/// wins the claim on it through the API server (a [`claim`](crate::k8s::claim)). Two runs
/// creating it at once would write two `config` versions, and under the locks the newer would
/// make the repository unopenable for the protection period. Others wait for it, at most
/// [`INIT_WAIT`]; they never create it themselves.
pub async fn open_or_create(
    cluster: &Cluster,
    store: std::sync::Arc<dyn crate::objectstore::storage::VersionedStorage>,
    prefix: &str,
    password: &str,
) -> Result<(Repo<repo::Writable>, Opened)> {
    use crate::k8s::claim::{self, Claim};
    let claim_name = format!("k10-repository-init-{}", &sha256_hex(prefix.as_bytes())[..16]);
    let holder = format!("{}-{}", std::process::id(), &repo::new_password()[..8]);
    let deadline = tokio::time::Instant::now() + INIT_WAIT;
    let mut waited = false;
    loop {
        match Repo::open(store.clone(), prefix, password).await {
            Ok(repo) => return Ok((repo, if waited { Opened::AfterWaiting } else { Opened::Existing })),
            Err(RepoError::NoRepository { .. }) => {}
            Err(e) => return Err(e.into()),
        }
        // A config that ever existed is only hidden (k10 never deletes one). While any file of
        // that repository is still visible, a second config would make the repository
        // unreadable for as long as both are locked. (Everything hidden, as a drill's clean-up
        // leaves it, is a fresh start: views before then still read the old repository.)
        // A config that appeared since the open above was written by a run that holds the claim:
        // open it on the next turn.
        let config = format!("{prefix}config");
        let had_config = store.list_versions(&config).await?.iter().any(|v| v.key == config && !v.delete_marker);
        let visible = store.list(prefix).await?;
        if had_config && visible.iter().any(|o| o.key == config) {
            if tokio::time::Instant::now() >= deadline {
                return Err(RepoError::NoRepository { location: prefix.to_string() }.into());
            }
            waited = true;
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            continue;
        }
        if had_config && !visible.is_empty() {
            return Err(BackupError::ConfigHidden { repository: prefix.to_string() });
        }
        let held = match claim::claim(cluster, &claim_name, &holder, STALE_CLAIM).await? {
            Claim::Won(version) => {
                let created = Repo::init(store.clone(), prefix, password).await;
                claim::release(cluster, &claim_name, &version).await;
                match created {
                    Ok(repo) => return Ok((repo, Opened::Created)),
                    // Created by a run that held the claim before us: open it.
                    Err(RepoError::AlreadyExists { .. }) => continue,
                    Err(e) => return Err(e.into()),
                }
            }
            Claim::Held { holder, since } => (holder, since),
        };
        if tokio::time::Instant::now() >= deadline {
            return Err(BackupError::BeingCreated {
                repository: prefix.to_string(),
                claim: format!("{K10_NAMESPACE}/{claim_name}"),
                holder: held.0,
                since: held.1,
            });
        }
        waited = true;
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
}

fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(data).iter().map(|b| format!("{b:02x}")).collect()
}

/// The Job a run happens in, as its pod knows it (the Job controller's `job-name` and
/// `controller-uid` labels, through the downward API).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunJob {
    pub name: String,
    pub uid: String,
}

impl RunJob {
    /// The restore point names of this Job's run: the same for every pod of the Job, so a pod
    /// that replaces one (a node lost, a pod deleted) finds what an earlier pod recorded, and two
    /// pods of one Job running at once record one restore point per namespace, never two.
    async fn restore_point_base(&self, cluster: &Cluster, policy: &str) -> Result<String> {
        let jobs: Api<k8s_openapi::api::batch::v1::Job> = Api::namespaced(cluster.client.clone(), K10_NAMESPACE);
        let job = jobs.get_opt(&self.name).await.map_err(|e| cluster.err(e, format!("read the run's Job {K10_NAMESPACE}/{}", self.name)))?;
        let created = job
            .filter(|j| j.metadata.uid.as_deref() == Some(self.uid.as_str()))
            .and_then(|j| j.metadata.creation_timestamp)
            .ok_or_else(|| BackupError::JobGone { name: self.name.clone() })?;
        let created = chrono::DateTime::from_timestamp(created.0.as_second(), 0).unwrap_or_default();
        Ok(restore_point_name(policy, created, &self.uid))
    }
}

/// The name of the restore points (one per namespace) that the run in a Job makes: from the
/// policy, the Job's creation time and its uid.
pub fn restore_point_name(policy: &str, job_created: chrono::DateTime<chrono::Utc>, job_uid: &str) -> String {
    let uid: String = job_uid.chars().filter(char::is_ascii_hexdigit).take(4).collect();
    format!("{policy}-{}-{uid}", job_created.format("%Y%m%d%H%M%S"))
}

/// Runs a policy now: every selected namespace, then retention. In a Job (`job`), the run is
/// idempotent per Job: a namespace whose restore point this Job already recorded is not backed
/// up again.
pub async fn run_policy(
    cluster: &Cluster,
    policy: &Policy,
    require_immutable: bool,
    job: Option<&RunJob>,
    progress: &(dyn Fn(&str) + Sync),
) -> Result<Vec<NamespaceRun>> {
    let policy_name = policy.metadata.name.clone().unwrap_or_default();
    let profile_ref = policy
        .export_profile()
        .ok_or_else(|| BackupError::NoProfile(policy_name.clone()))?;
    let mut k10 = cluster.clone();
    k10.namespace = profile_ref.namespace.clone();
    let profile = catalog::get_profile(&k10, &profile_ref.name).await?;
    let period = catalog::period_of(&profile)?;
    if require_immutable && period.is_none() {
        return Err(BackupError::NotImmutable(profile_ref.name.clone()));
    }
    let namespaces = selected_namespaces(cluster, policy).await?;
    if namespaces.is_empty() {
        return Err(BackupError::NothingSelected { policy: policy_name });
    }
    let point_base = match job {
        Some(job) => Some(job.restore_point_base(cluster, &policy_name).await?),
        None => None,
    };
    let cluster_id = catalog::cluster_id(cluster).await?;
    let storage = catalog::profile_storage(cluster, &profile).await?;
    let credentials = catalog::profile_credentials(cluster, &profile).await?;
    // Each namespace on its own: one that fails does not keep the others from being protected.
    // Up to `parallel` at once (each in its own repository); results in selection order.
    let total = namespaces.len();
    let parallel = parallel_namespaces(policy);
    let (point_base, storage, credentials, cluster_id, policy_name, profile) = (&point_base, &storage, &credentials, &cluster_id, &policy_name, &profile);
    let outcomes: Vec<(String, Result<NamespaceRun>)> = futures::stream::iter(namespaces)
        .map(|namespace| async move {
            progress(&format!("namespace {namespace}: starting"));
            let run = NamespaceBackup {
                cluster,
                policy,
                policy_name,
                profile,
                storage,
                credentials,
                cluster_id,
                namespace: &namespace,
                point_name: point_base.clone(),
                job,
                progress,
            };
            let outcome = match run.run().await {
                Ok(mut done) => {
                    match apply_retention(cluster, policy, &namespace).await {
                        Ok(retired) => done.retired = retired,
                        Err(e) => progress(&format!("namespace {namespace}: retention not applied: {e}")),
                    }
                    for retired in &done.retired {
                        progress(&format!("namespace {namespace}: retired restore point {retired}"));
                    }
                    if let Some(why) = &done.suspicious {
                        let message = signals::warning(&namespace, &done.restore_point, why);
                        crate::k8s::events::publish(cluster, policy, "k10", "Warning", "SuspiciousRestorePoint", &message).await;
                    }
                    Ok(done)
                }
                Err(e) => Err(e),
            };
            (namespace, outcome)
        })
        .buffered(parallel)
        .collect()
        .await;
    let mut runs = Vec::new();
    let mut failures = Vec::new();
    for (namespace, outcome) in outcomes {
        match outcome {
            Ok(done) => runs.push(done),
            Err(source) => failures.push(BackupError::Namespace {
                namespace,
                source: Box::new(source),
            }),
        }
    }
    if failures.is_empty() {
        Ok(runs)
    } else {
        Err(BackupError::Partial { total, failures, runs })
    }
}

/// How many namespaces of a policy run are protected at once, unless the policy's annotation
/// [`PARALLEL_NAMESPACES_ANNOTATION`] says otherwise (1 to 32).
pub const DEFAULT_PARALLEL_NAMESPACES: usize = 3;
pub const PARALLEL_NAMESPACES_ANNOTATION: &str = "k10.kasten.io/parallel-namespaces";

/// How many volumes of one namespace are backed up at once, unless the policy's annotation
/// [`PARALLEL_VOLUMES_ANNOTATION`] says otherwise (1 to 16).
pub const DEFAULT_PARALLEL_VOLUMES: usize = 2;
pub const PARALLEL_VOLUMES_ANNOTATION: &str = "k10.kasten.io/parallel-volumes";

fn parallel_volumes(policy: &Policy) -> usize {
    policy
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(PARALLEL_VOLUMES_ANNOTATION))
        .and_then(|v| v.trim().parse::<usize>().ok())
        .map_or(DEFAULT_PARALLEL_VOLUMES, |n| n.clamp(1, 16))
}

/// The memory limit of the policy's data movers, from its annotation
/// [`crate::k8s::jobs::MOVER_MEMORY_ANNOTATION`] (None: the default; an error names a bad value).
pub fn mover_memory_limit(policy: &Policy) -> std::result::Result<Option<u64>, String> {
    policy
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(crate::k8s::jobs::MOVER_MEMORY_ANNOTATION))
        .map(|v| crate::k8s::jobs::parse_mover_memory(v).map_err(|e| format!("annotation {}: {e}", crate::k8s::jobs::MOVER_MEMORY_ANNOTATION)))
        .transpose()
}

fn parallel_namespaces(policy: &Policy) -> usize {
    policy
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(PARALLEL_NAMESPACES_ANNOTATION))
        .and_then(|v| v.trim().parse::<usize>().ok())
        .map_or(DEFAULT_PARALLEL_NAMESPACES, |n| n.clamp(1, 32))
}

struct NamespaceBackup<'a> {
    cluster: &'a Cluster,
    policy: &'a Policy,
    policy_name: &'a str,
    profile: &'a Profile,
    storage: &'a std::sync::Arc<S3Storage>,
    credentials: &'a crate::objectstore::Credentials,
    cluster_id: &'a str,
    namespace: &'a str,
    /// The restore point's name when the run's Job decides it; else the run's own id.
    point_name: Option<String>,
    /// The run's control Job, when it runs in one.
    job: Option<&'a RunJob>,
    progress: &'a (dyn Fn(&str) + Sync),
}

impl NamespaceBackup<'_> {
    async fn run(&self) -> Result<NamespaceRun> {
        let (cluster, ns) = (self.cluster, self.namespace);
        let namespaces: Api<Namespace> = Api::all(cluster.client.clone());
        let ns_obj = namespaces
            .get_opt(ns)
            .await
            .map_err(|e| cluster.err(e, format!("read namespace {ns}")))?
            .ok_or_else(|| BackupError::NamespaceNotFound(ns.to_string()))?;
        let uid = ns_obj.metadata.uid.clone().unwrap_or_default();
        let start = Utc::now();
        // This attempt's id (its data mover Jobs, clones and snapshot tags): unique even for two
        // runs of one policy in the same second, or two pods of one Job.
        let run_id = format!("{}-{}-{}", self.policy_name, start.format("%Y%m%d%H%M%S"), &repo::new_password()[..4]);
        let point = self.point_name.clone().unwrap_or_else(|| run_id.clone());
        if let Some(done) = self.recorded(&point).await? {
            (self.progress)(&format!("namespace {ns}: restore point {point} was already recorded by an earlier pod of this run's Job"));
            return Ok(done);
        }
        // What an interrupted run left for this namespace goes first.
        match cleanup::in_cluster(cluster, ns).await {
            Ok(cleaned) if !cleaned.is_empty() => {
                (self.progress)(&format!("namespace {ns}: removed what an interrupted run left: {}", cleaned.join(", ")))
            }
            Ok(_) => {}
            Err(e) => (self.progress)(&format!("namespace {ns}: could not look for what an interrupted run left: {e}")),
        }
        let repository = layout::app_repository(self.cluster_id, &uid);
        let secret_name = password_secret_name(&uid);
        let password = claim_repository_password(cluster, &secret_name).await?;
        let store: std::sync::Arc<dyn crate::objectstore::storage::VersionedStorage> = self.storage.clone();
        let (repo, opened) = open_or_create(cluster, store, &repository, &password).await?;
        match opened {
            Opened::Created => (self.progress)(&format!("namespace {ns}: created its repository {repository}")),
            Opened::AfterWaiting => (self.progress)(&format!("namespace {ns}: waited for another run to create its repository")),
            Opened::Existing => match cleanup::in_repository(cluster, &repo, &repository).await {
                Ok(forgotten) if !forgotten.is_empty() => (self.progress)(&format!(
                    "namespace {ns}: forgot {} repository snapshot(s) of interrupted runs that no restore point refers to (delete markers; their versions stay locked): {}",
                    forgotten.len(),
                    forgotten.iter().map(|id| &id[..8.min(id.len())]).collect::<Vec<_>>().join(", ")
                )),
                Ok(_) => {}
                Err(e) => (self.progress)(&format!("namespace {ns}: could not look for snapshots of interrupted runs: {e}")),
            },
        }
        let outcome = match self.write(&repo, &run_id, &repository).await {
            Ok(written) => self.record(&repo, &point, &repository, &secret_name, &uid, start, written).await,
            Err(e) => Err(e),
        };
        if outcome.is_err() {
            // No restore point refers to what this run wrote: forget it (delete markers only).
            self.forget_run(&repo, &run_id).await;
        }
        match outcome {
            // Another pod of this Job recorded the run first: that restore point is the run's.
            Err(BackupError::AlreadyRecorded { .. }) => match self.recorded(&point).await? {
                Some(done) => {
                    (self.progress)(&format!("namespace {ns}: another pod of this run's Job recorded restore point {point} first; this pod's copy was forgotten"));
                    Ok(done)
                }
                None => Err(BackupError::AlreadyRecorded { name: point }),
            },
            other => other,
        }
    }

    /// The run of this namespace recorded under `point` (by an earlier pod of the same Job).
    async fn recorded(&self, point: &str) -> Result<Option<NamespaceRun>> {
        if self.point_name.is_none() {
            return Ok(None);
        }
        let (cluster, ns) = (self.cluster, self.namespace);
        let contents: Api<RestorePointContent> = Api::all(cluster.client.clone());
        let name = format!("{ns}-{point}");
        let Some(content) = contents.get_opt(&name).await.map_err(|e| cluster.err(e, format!("read RestorePointContent {name}")))? else {
            return Ok(None);
        };
        let spec = content.spec;
        Ok(Some(NamespaceRun {
            namespace: ns.to_string(),
            restore_point: point.to_string(),
            volumes: spec.snapshots.iter().filter(|s| s.kind == "volume").count(),
            manifests: 0,
            files: spec.files,
            bytes: spec.logical_bytes,
            uploaded: spec.uploaded_bytes,
            end_time: spec.end_time,
            retired: Vec::new(),
            suspicious: spec.suspicious,
        }))
    }

    /// Backs up the volumes, then the manifests.
    async fn write(&self, repo: &Repo<Writable>, run_id: &str, repository: &str) -> Result<Written> {
        let (cluster, ns) = (self.cluster, self.namespace);
        let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(cluster.client.clone(), ns);
        let pods: Api<Pod> = Api::namespaced(cluster.client.clone(), ns);
        let claims = pvcs
            .list(&ListParams::default())
            .await
            .map_err(|e| cluster.err(e, format!("list PersistentVolumeClaims in {ns}")))?
            .items;
        let pod_list = pods
            .list(&ListParams::default())
            .await
            .map_err(|e| cluster.err(e, format!("list Pods in {ns}")))?
            .items;
        let os = self.profile.object_store();
        let target = Target {
            repository: repository.to_string(),
            bucket: os.name.clone(),
            region: os.region.clone(),
            endpoint: os.endpoint.clone(),
            skip_ssl_verify: os.skip_ssl_verify,
            protection_days: self.storage.protection().map(|p| p.days()),
        };
        let mut written = Vec::new();
        let control_uid = self.job.map(|j| j.uid.as_str());
        let labels = cleanup::labels(ns, control_uid);
        let control_tag = control_uid.map(|uid| format!("{}{uid}", cleanup::CONTROL_TAG));
        let mover_memory = mover_memory_limit(self.policy).unwrap_or_else(|e| {
            (self.progress)(&format!("namespace {ns}: warning: {e}; data movers get the default limit"));
            None
        });
        // Data movers get the master key: none of them derives it from the password again.
        let mover_key = repo.key().to_secret();
        let (target, labels, control_tag, pod_list, total, mover_key) = (&target, &labels, &control_tag, &pod_list, claims.len(), &mover_key);
        // The volumes' data movers run side by side (each on its volume's node, or on any for a
        // snapshot's clone), up to the policy's bound; every one is waited for, then the first
        // failure, if any, fails the namespace.
        let outcomes: Vec<Result<()>> = futures::stream::iter(claims.iter().enumerate())
            .map(|(i, pvc)| async move {
                let claim = pvc.metadata.name.clone().unwrap_or_default();
                // A clone of a fresh CSI snapshot where the driver has a VolumeSnapshotClass; else the
                // live volume, read-only, on the node where a pod mounts it.
                let snapshot_name = job_name("k10-snap", run_id, i);
                let class = snapshots::class_for(cluster, pvc).await?;
                // A snapshot's clone is read in kasten-io, where the store's keys are anyway; a live
                // volume only beside it, so the keys go to the application's namespace for the run.
                let (mount, node_name, source, why, mover_ns) = match &class {
                    Ok(_) => (snapshots::clone_claim_name(&snapshot_name), None, "snapshot", String::new(), K10_NAMESPACE),
                    Err(why) => (claim.clone(), node_of(pod_list, &claim), "live", format!(": {why}"), ns),
                };
                (self.progress)(&format!("namespace {ns}: volume {claim} ({}/{total}, from the {source} volume{why})", i + 1));
                if mover_ns == ns {
                    (self.progress)(&format!(
                        "namespace {ns}: volume {claim}: its data mover runs in {ns}, beside the live volume: the store's keys and the repository key are exposed to {ns} for the run, in a Secret its Job owns and removes"
                    ));
                } else {
                    (self.progress)(&format!("namespace {ns}: volume {claim}: its data mover reads the snapshot's clone in {K10_NAMESPACE}; no key reaches {ns}"));
                }
                let mut args = vec!["datamover".to_string(), "backup".into(), "--path".into(), "/data".into()];
                args.extend(target.args());
                let tags = [format!("run={run_id}"), format!("pvc={claim}"), "kind=volume".into(), format!("source={source}")];
                for tag in tags.into_iter().chain(control_tag.clone()) {
                    args.extend(["--tag".into(), tag]);
                }
                // Each claim's snapshots are a series (by uid: a claim deleted and made again under its
                // name starts a new one): unchanged files are not read again.
                if let Some(claim_uid) = pvc.metadata.uid.as_deref().filter(|u| !u.is_empty()) {
                    args.extend(["--tag".into(), format!("pvc-uid={claim_uid}")]);
                    for tag in [format!("pvc-uid={claim_uid}"), "kind=volume".into()] {
                        args.extend(["--series".into(), tag]);
                    }
                }
                // In kasten-io, the control Job owns its data movers: killing the run removes them.
                let owner = self.job.filter(|_| mover_ns == K10_NAMESPACE).map(|j| OwnerReference {
                    api_version: "batch/v1".into(),
                    kind: "Job".into(),
                    name: j.name.clone(),
                    uid: j.uid.clone(),
                    ..Default::default()
                });
                let job = ProductJob {
                    namespace: mover_ns.to_string(),
                    name: job_name("k10-backup", run_id, i),
                    args,
                    secret_env: BTreeMap::from([
                        (datamover::ENV_ACCESS_KEY.into(), self.credentials.access_key_id.clone()),
                        (datamover::ENV_SECRET_KEY.into(), self.credentials.secret_access_key.clone()),
                        (datamover::ENV_KEY.into(), mover_key.clone()),
                    ]),
                    mount: Some(Mount {
                        claim: mount,
                        path: "/data".into(),
                        read_only: true,
                    }),
                    node_name,
                    labels: labels.clone(),
                    timeout: JOB_TIMEOUT,
                    owner,
                    memory_limit: mover_memory,
                };
                // The Job first, suspended: the snapshot and its clone are its own from the start.
                let suspended = job.create_suspended(cluster).await?;
                let clone = match &class {
                    Ok(class) => match snapshots::clone_in_kasten_io(cluster, pvc, &snapshot_name, class, suspended.owner(), labels).await {
                        Ok(clone) => Some(clone),
                        Err(e) => {
                            suspended.remove().await;
                            return Err(e.into());
                        }
                    },
                    Err(_) => None,
                };
                let result = suspended.run(&|doing| (self.progress)(&format!("namespace {ns}: volume {claim}: {doing}"))).await;
                if let Some(c) = &clone {
                    c.remove(cluster).await;
                }
                result.map(|_| ()).map_err(BackupError::from)
            })
            .buffer_unordered(parallel_volumes(self.policy))
            .collect()
            .await;
        outcomes.into_iter().collect::<Result<Vec<()>>>()?;
        let run_tag = format!("run={run_id}");
        let all = repo.snapshots().await?;
        for snap in all.iter().cloned() {
            if snap.tags.contains(&run_tag) {
                let pvc = snap.tags.iter().find_map(|t| t.strip_prefix("pvc=").map(str::to_string));
                written.push((
                    SnapshotRef {
                        id: snap.id.clone(),
                        kind: "volume".into(),
                        pvc,
                    },
                    snap,
                ));
            }
        }
        // Exactly one snapshot per claim of the namespace.
        let mut got: Vec<&str> = written.iter().filter_map(|(r, _)| r.pvc.as_deref()).collect();
        let mut want: Vec<&str> = claims.iter().filter_map(|c| c.metadata.name.as_deref()).collect();
        got.sort_unstable();
        want.sort_unstable();
        if got != want {
            return Err(BackupError::Repo(RepoError::Engine {
                op: "backup",
                location: repo.location().to_string(),
                message: format!("run {run_id} has volume snapshots of {got:?}, expected one of each of {want:?}"),
            }));
        }

        let thresholds = signals::Thresholds::of(self.policy).unwrap_or_else(|e| {
            (self.progress)(&format!("namespace {ns}: warning: {e}; the default thresholds apply"));
            signals::Thresholds::default()
        });
        let volumes = written.iter().filter_map(|(r, s)| Some((r.pvc.as_deref()?, s)));
        let (volume_signals, suspicious) = signals::of_run(volumes, &all, &thresholds);

        (self.progress)(&format!("namespace {ns}: manifests"));
        let capture = capture::capture(cluster, ns).await?;
        if !capture.forbidden.is_empty() {
            (self.progress)(&format!(
                "namespace {ns}: warning: not captured, k10 may not list them: {}; grant get and list on them with a ClusterRole labelled {}=true (see the README's RBAC section)",
                capture.forbidden.join(", "),
                crate::k8s::rbac::AGGREGATE_LABEL
            ));
        }
        let count = capture.objects.len();
        let mut documents = capture.documents;
        // The namespace's own labels and annotations, for a restore that recreates it.
        let namespaces: Api<Namespace> = Api::all(cluster.client.clone());
        if let Some(ns_obj) = namespaces.get_opt(ns).await.map_err(|e| cluster.err(e, format!("read namespace {ns}")))? {
            let meta = serde_json::json!({"labels": ns_obj.metadata.labels, "annotations": ns_obj.metadata.annotations});
            documents.push(("namespace.json".into(), Bytes::from(serde_json::to_vec_pretty(&meta).expect("json"))));
        }
        let index = serde_json::json!({
            "namespace": ns,
            "objects": capture.objects,
            "crds": capture.crds,
            "notCaptured": capture.forbidden,
            "volumes": written.iter().map(|(r, _)| r).collect::<Vec<_>>(),
        });
        documents.push(("index.json".into(), Bytes::from(serde_json::to_vec_pretty(&index).expect("json"))));
        let snap = repo
            .backup_documents(documents, &[vec![run_tag, "kind=manifests".into()], control_tag.iter().cloned().collect()].concat())
            .await?;
        written.push((
            SnapshotRef {
                id: snap.id.clone(),
                kind: "manifests".into(),
                pvc: None,
            },
            snap,
        ));
        Ok(Written {
            snapshots: written,
            manifests: count,
            signals: volume_signals,
            suspicious,
        })
    }

    /// Creates the RestorePointContent and the RestorePoint.
    #[allow(clippy::too_many_arguments)]
    async fn record(
        &self,
        repo: &Repo<Writable>,
        run_id: &str,
        repository: &str,
        secret_name: &str,
        uid: &str,
        start: chrono::DateTime<Utc>,
        written: Written,
    ) -> Result<NamespaceRun> {
        let (cluster, ns) = (self.cluster, self.namespace);
        let Written { snapshots, manifests, signals: volume_signals, suspicious } = written;
        // The store's time of the last snapshot: what a view must reach to see all of them.
        let manifest_id = &snapshots.last().expect("the manifests snapshot").0.id;
        let end = repo.stored_at(manifest_id).await?;
        let end_time = end.to_rfc3339_opts(SecondsFormat::AutoSi, true);
        let name = run_id.to_string();
        let content_name = format!("{ns}-{run_id}");
        let profile_ref = self.policy.export_profile().expect("checked by run_policy").clone();
        let period = self.storage.protection();
        let labels = BTreeMap::from([
            (POLICY_LABEL.to_string(), self.policy_name.to_string()),
            (APP_LABEL.to_string(), ns.to_string()),
        ]);
        let content = RestorePointContent {
            metadata: ObjectMeta {
                name: Some(content_name.clone()),
                labels: Some(labels.clone()),
                ..Default::default()
            },
            spec: RestorePointContentSpec {
                restore_point_ref: NamespacedName {
                    name: name.clone(),
                    namespace: ns.to_string(),
                },
                policy: NamespacedName {
                    name: self.policy_name.to_string(),
                    namespace: self.policy.metadata.namespace.clone().unwrap_or_else(|| K10_NAMESPACE.into()),
                },
                profile: profile_ref,
                repository: repository.to_string(),
                password_secret: secret_name.to_string(),
                snapshots: snapshots.iter().map(|(r, _)| r.clone()).collect(),
                source_namespace: ns.to_string(),
                source_namespace_uid: uid.to_string(),
                start_time: start.to_rfc3339_opts(SecondsFormat::Secs, true),
                end_time: end_time.clone(),
                logical_bytes: snapshots.iter().map(|(_, s)| s.bytes).sum(),
                uploaded_bytes: snapshots.iter().map(|(_, s)| s.bytes_added).sum(),
                files: snapshots.iter().map(|(_, s)| s.files).sum(),
                immutable: period.is_some(),
                protection_period_days: period.map(|p| p.days()),
                signals: volume_signals,
                suspicious: suspicious.clone(),
            },
        };
        let contents: Api<RestorePointContent> = Api::all(cluster.client.clone());
        match contents.create(&PostParams::default(), &content).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 409 => return Err(BackupError::AlreadyRecorded { name }),
            Err(e) => return Err(catalog::not_installed(cluster.err(e, "create RestorePointContent"), "RestorePointContent").into()),
        }
        let point = RestorePoint {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: Some(ns.to_string()),
                labels: Some(labels),
                ..Default::default()
            },
            spec: RestorePointSpec {
                restore_point_content_ref: ContentRef { name: content_name.clone() },
            },
        };
        let points: Api<RestorePoint> = Api::namespaced(cluster.client.clone(), ns);
        if let Err(e) = points.create(&PostParams::default(), &point).await {
            let _ = contents.delete(&content_name, &DeleteParams::default()).await;
            return Err(cluster.err(e, format!("create RestorePoint {ns}/{name}")).into());
        }
        let spec = &content.spec;
        Ok(NamespaceRun {
            namespace: ns.to_string(),
            restore_point: name,
            volumes: snapshots.len() - 1,
            manifests,
            files: spec.files,
            bytes: spec.logical_bytes,
            uploaded: spec.uploaded_bytes,
            end_time,
            retired: Vec::new(),
            suspicious,
        })
    }

    /// Forgets the snapshots a failed run wrote (delete markers only).
    async fn forget_run(&self, repo: &Repo<Writable>, run_id: &str) {
        let tag = format!("run={run_id}");
        match repo.snapshots().await {
            Ok(snaps) => {
                for s in snaps.into_iter().filter(|s| s.tags.contains(&tag)) {
                    if let Err(e) = repo.forget(&s.id).await {
                        tracing::warn!(snapshot = %s.id, "could not forget a snapshot of failed run {run_id}: {e}");
                    }
                }
            }
            Err(e) => tracing::warn!("could not list the snapshots of failed run {run_id} to forget them: {e}"),
        }
    }
}

/// The node where a pod of the namespace mounts the claim.
fn node_of(pods: &[Pod], claim: &str) -> Option<String> {
    pods.iter()
        .filter(|p| {
            p.spec.as_ref().is_some_and(|s| {
                s.volumes
                    .iter()
                    .flatten()
                    .any(|v| v.persistent_volume_claim.as_ref().is_some_and(|c| c.claim_name == claim))
            })
        })
        .find_map(|p| p.spec.as_ref().and_then(|s| s.node_name.clone()))
}

/// A Job name: `<prefix>-<run id>-<index>`, within Kubernetes' 63 characters; a long policy name
/// is cut, but the run id's time and random suffix (its end) are kept.
fn job_name(prefix: &str, run_id: &str, index: usize) -> String {
    let suffix = format!("-{index}");
    let room = 63 - prefix.len() - 1 - suffix.len();
    let id = if run_id.len() > room { &run_id[run_id.len() - room..] } else { run_id };
    format!("{prefix}-{}{suffix}", id.trim_start_matches('-'))
}

/// Applies the policy's retention in one namespace: returns the retired restore points.
pub async fn apply_retention(cluster: &Cluster, policy: &Policy, namespace: &str) -> Result<Vec<String>> {
    let policy_name = policy.metadata.name.clone().unwrap_or_default();
    let points: Api<RestorePoint> = Api::namespaced(cluster.client.clone(), namespace);
    let contents: Api<RestorePointContent> = Api::all(cluster.client.clone());
    let list = points
        .list(&ListParams::default().labels(&format!("{POLICY_LABEL}={policy_name}")))
        .await
        .map_err(|e| cluster.err(e, format!("list restore points in {namespace}")))?
        .items;
    let mut dated = Vec::new();
    for rp in list {
        let content_name = &rp.spec.restore_point_content_ref.name;
        if let Some(c) = contents
            .get_opt(content_name)
            .await
            .map_err(|e| cluster.err(e, format!("read RestorePointContent {content_name}")))?
        {
            if let Ok(t) = chrono::DateTime::parse_from_rfc3339(&c.spec.end_time) {
                dated.push((rp.metadata.name.clone().unwrap_or_default(), t.to_utc()));
            }
        }
    }
    let times: Vec<_> = dated.iter().map(|(_, t)| *t).collect();
    let mut retired = Vec::new();
    for i in retention::to_retire(&policy.spec.retention, &times) {
        retire(cluster, namespace, &dated[i].0).await?;
        retired.push(dated[i].0.clone());
    }
    Ok(retired)
}

/// Retires a restore point: its snapshots are forgotten (delete markers; the locked data stays
/// restorable through a point-in-time view), then the RestorePoint and its content are removed.
pub async fn retire(cluster: &Cluster, namespace: &str, name: &str) -> Result<()> {
    let points: Api<RestorePoint> = Api::namespaced(cluster.client.clone(), namespace);
    let contents: Api<RestorePointContent> = Api::all(cluster.client.clone());
    let rp = points
        .get_opt(name)
        .await
        .map_err(|e| catalog::not_installed(cluster.err(e, "read restore points"), "RestorePoint"))?
        .ok_or_else(|| K8sError::NotFound {
            what: format!("restore point {namespace}/{name}"),
        })?;
    let content_name = rp.spec.restore_point_content_ref.name.clone();
    if let Some(content) = contents
        .get_opt(&content_name)
        .await
        .map_err(|e| cluster.err(e, format!("read RestorePointContent {content_name}")))?
    {
        let spec = &content.spec;
        let mut k10 = cluster.clone();
        k10.namespace = spec.profile.namespace.clone();
        let profile = catalog::get_profile(&k10, &spec.profile.name).await?;
        let storage = catalog::profile_storage(cluster, &profile).await?;
        let password = repository_password(cluster, &spec.password_secret)
            .await?
            .ok_or_else(|| K8sError::NotFound {
                what: format!("repository password Secret {K10_NAMESPACE}/{}", spec.password_secret),
            })?;
        let repo = Repo::open(storage, &spec.repository, &password).await?;
        let live: Vec<String> = repo.snapshots().await?.into_iter().map(|s| s.id).collect();
        for s in &spec.snapshots {
            if live.contains(&s.id) {
                repo.forget(&s.id).await?;
            }
        }
        contents
            .delete(&content_name, &DeleteParams::default())
            .await
            .map_err(|e| cluster.err(e, format!("delete RestorePointContent {content_name}")))?;
    }
    points
        .delete(name, &DeleteParams::default())
        .await
        .map_err(|e| cluster.err(e, format!("delete RestorePoint {namespace}/{name}")))?;
    Ok(())
}
