//! Restoring an application from a restore point, as it was when the backup took place.
//!
//! The repository is always opened as of the restore point's end time (the store's clock), so
//! whatever was deleted, overwritten or retired since does not matter. Resources are recreated in
//! dependency order with server-set fields stripped; each volume gets its data (see [`volumes`])
//! before the workloads that mount it are created.

pub mod strip;
pub mod volumes;

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, ObjectMeta, PostParams};

use crate::api::{RestorePointContent, K10_NAMESPACE};
use crate::backup::capture::CapturedObject;
use crate::backup::{repository_password, BackupError};
use crate::catalog::{self, CatalogError};
use crate::datamover::{self, Target};
use crate::objectstore::Credentials;
use crate::k8s::jobs::{JobError, Mount, ProductJob};
use crate::k8s::{Cluster, K8sError};
use crate::repo::{ReadOnly, Repo, RepoError};

#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    #[error("the restore point's profile {name:?} no longer exists in {namespace}; create a profile named {name:?} on the same bucket (a plain one is enough) and retry")]
    ProfileMissing { name: String, namespace: String },
    #[error("the repository password Secret {K10_NAMESPACE}/{0} is missing; restore the catalog with `kubectl-k10 dr restore` (it brings the repository passwords back)")]
    PasswordMissing(String),
    #[error("the restore point has no manifests snapshot: it is not restorable")]
    NoManifests,
    #[error("the restore point's end time {0:?} is not a valid time")]
    BadEndTime(String),
    #[error(transparent)]
    Repo(#[from] RepoError),
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error(transparent)]
    K8s(#[from] K8sError),
    #[error(transparent)]
    Backup(#[from] BackupError),
    #[error(transparent)]
    Job(#[from] JobError),
}

pub type Result<T, E = RestoreError> = std::result::Result<T, E>;

/// What to do with an object that already exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Existing {
    /// Leave it, and say so.
    #[default]
    Skip,
    /// Delete it and create the restored one.
    Replace,
}

#[derive(Debug, Clone, Default)]
pub struct Options {
    pub target_namespace: Option<String>,
    /// Kinds (or plural resource names) to restore; empty: all.
    pub include: Vec<String>,
    /// Kinds (or plural resource names) not to restore.
    pub exclude: Vec<String>,
    pub existing: Existing,
    /// The data movers' memory limit in bytes (None: the default).
    pub mover_memory_limit: Option<u64>,
}

/// One object's outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Created,
    Replaced,
    /// It existed and `--existing skip` left it.
    Skipped,
    Failed(String),
}

#[derive(Debug, Clone, Default)]
pub struct Report {
    pub namespace: String,
    /// `Kind/name` (or `volume data of <claim>`) and what happened, in the order of the restore.
    pub steps: Vec<(String, Outcome)>,
}

impl Report {
    pub fn failed(&self) -> usize {
        self.steps
            .iter()
            .filter(|(_, o)| matches!(o, Outcome::Failed(_)))
            .count()
    }
}

/// Restore order: lower first. Workloads and custom resources come after the volumes are filled.
fn priority(o: &CapturedObject) -> u8 {
    match (o.group.as_str(), o.plural.as_str()) {
        ("", "persistentvolumeclaims") => 0,
        ("", "secrets") => 1,
        ("", "configmaps") => 2,
        ("", "serviceaccounts") => 3,
        ("rbac.authorization.k8s.io", "roles") => 4,
        ("rbac.authorization.k8s.io", "rolebindings") => 5,
        ("", "services") => 6,
        ("", "limitranges") | ("", "resourcequotas") => 6,
        _ => 10,
    }
}

/// Priorities up to this are restored before the volume data.
const BEFORE_DATA: u8 = 6;
const JOB_TIMEOUT: Duration = Duration::from_secs(6 * 3600);

fn wanted(o: &CapturedObject, options: &Options) -> bool {
    let matches = |list: &[String]| {
        list.iter()
            .any(|k| k.eq_ignore_ascii_case(&o.kind) || k.eq_ignore_ascii_case(&o.plural))
    };
    (options.include.is_empty() || matches(&options.include)) && !matches(&options.exclude)
}

/// A restore point opened for reading: its repository as of its end time, its manifest index,
/// and what its data mover Jobs need.
struct Opened {
    repo: Repo<ReadOnly>,
    /// The manifests snapshot.
    manifests: String,
    index: serde_json::Value,
    target: Target,
    credentials: Credentials,
    end_time: String,
    /// The data movers' memory limit (None: the default).
    mover_memory: Option<u64>,
}

async fn open(cluster: &Cluster, content: &RestorePointContent, progress: &(dyn Fn(&str) + Sync)) -> Result<Opened> {
    let spec = &content.spec;
    let mut k10 = cluster.clone();
    k10.namespace = spec.profile.namespace.clone();
    let profile = match catalog::get_profile(&k10, &spec.profile.name).await {
        Ok(p) => p,
        Err(CatalogError::ProfileNotFound { name, namespace }) => {
            return Err(RestoreError::ProfileMissing { name, namespace })
        }
        Err(e) => return Err(e.into()),
    };
    let password = repository_password(cluster, &spec.password_secret)
        .await?
        .ok_or_else(|| RestoreError::PasswordMissing(spec.password_secret.clone()))?;
    let end = chrono::DateTime::parse_from_rfc3339(&spec.end_time)
        .map_err(|_| RestoreError::BadEndTime(spec.end_time.clone()))?
        .to_utc();
    let storage = catalog::profile_storage(cluster, &profile).await?;
    progress(&format!("opening {} as of {}", spec.repository, spec.end_time));
    let repo = Repo::<ReadOnly>::open_at(storage, &spec.repository, end, &password).await?;
    let manifests = spec
        .snapshots
        .iter()
        .find(|s| s.kind == "manifests")
        .ok_or(RestoreError::NoManifests)?
        .id
        .clone();
    let index: serde_json::Value = serde_json::from_slice(&repo.read_document(&manifests, "index.json").await?)
        .map_err(|e| RepoError::Engine {
            op: "read",
            location: repo.location().to_string(),
            message: format!("index.json is not JSON: {e}"),
        })?;
    for skipped in repo.skipped() {
        progress(&format!("warning: passed over {skipped}"));
    }
    let os = profile.object_store();
    Ok(Opened {
        repo,
        manifests,
        index,
        target: Target {
            repository: spec.repository.clone(),
            bucket: os.name.clone(),
            region: os.region.clone(),
            endpoint: os.endpoint.clone(),
            skip_ssl_verify: os.skip_ssl_verify,
            protection_days: None,
        },
        credentials: catalog::profile_credentials(cluster, &profile).await?,
        end_time: spec.end_time.clone(),
        mover_memory: None,
    })
}

impl Opened {
    fn objects(&self) -> Vec<CapturedObject> {
        serde_json::from_value(self.index["objects"].clone()).unwrap_or_default()
    }

    /// A data mover Job (`restore` or `verify`) of one volume snapshot, mounting `claim`.
    fn data_mover(&self, verb: &str, namespace: &str, snapshot: &str, index: usize, claim: &str) -> ProductJob {
        let mut args = vec![
            "datamover".to_string(),
            verb.into(),
            "--path".into(),
            "/data".into(),
            "--snapshot".into(),
            snapshot.into(),
            "--as-of".into(),
            self.end_time.clone(),
        ];
        args.extend(self.target.args());
        ProductJob {
            namespace: namespace.to_string(),
            name: format!("k10-{verb}-{}-{index}", snapshot.get(..12).unwrap_or(snapshot)),
            args,
            secret_env: BTreeMap::from([
                (datamover::ENV_ACCESS_KEY.into(), self.credentials.access_key_id.clone()),
                (datamover::ENV_SECRET_KEY.into(), self.credentials.secret_access_key.clone()),
                (datamover::ENV_KEY.into(), self.repo.key().to_secret()),
            ]),
            mount: Some(Mount {
                claim: claim.to_string(),
                path: "/data".into(),
                read_only: verb != "restore",
            }),
            node_name: None,
            labels: crate::k8s::managed_by(),
            timeout: JOB_TIMEOUT,
            owner: None,
            memory_limit: self.mover_memory,
        }
    }
}

/// Restores the application of `content` into its namespace (or the target namespace).
pub async fn restore(
    cluster: &Cluster,
    content: &RestorePointContent,
    options: &Options,
    progress: &(dyn Fn(&str) + Sync),
) -> Result<Report> {
    let mut opened = open(cluster, content, progress).await?;
    opened.mover_memory = options.mover_memory_limit;
    restore_opened(cluster, content, &opened, options, progress).await
}

async fn restore_opened(
    cluster: &Cluster,
    content: &RestorePointContent,
    opened: &Opened,
    options: &Options,
    progress: &(dyn Fn(&str) + Sync),
) -> Result<Report> {
    let spec = &content.spec;
    let (repo, manifests, index) = (&opened.repo, opened.manifests.as_str(), &opened.index);
    let mut objects = opened.objects();
    objects.retain(|o| wanted(o, options));
    objects.sort_by_key(priority);
    let target = options.target_namespace.clone().unwrap_or_else(|| spec.source_namespace.clone());
    let mut report = Report {
        namespace: target.clone(),
        ..Default::default()
    };

    // The namespace, then the CRDs the custom resources need.
    ensure_namespace(cluster, repo, manifests, &target).await?;
    for crd in index["crds"].as_array().into_iter().flatten().filter_map(|c| c.as_str()) {
        let group = crd.split_once('.').map(|(_, g)| g).unwrap_or_default();
        if !objects.iter().any(|o| o.group == group) {
            continue;
        }
        let doc = repo.read_document(manifests, &format!("crds/{crd}.json")).await?;
        let outcome = ensure_crd(cluster, &doc).await;
        report.steps.push((format!("CustomResourceDefinition/{crd}"), outcome));
    }

    let (early, late): (Vec<_>, Vec<_>) = objects.into_iter().partition(|o| priority(o) <= BEFORE_DATA);
    let mut restored_claims = Vec::new();
    // Claims whose class has CSI snapshots come with their data, through kasten-io.
    let mut staged = BTreeMap::new();
    for o in &early {
        if o.plural == "persistentvolumeclaims" && o.group.is_empty() {
            if let Some(claim) = volumes::captured_claim(repo, manifests, o).await {
                if let Some(class) = volumes::snapshot_class(cluster, &claim).await? {
                    staged.insert(o.name.clone(), (o, claim, class));
                    continue;
                }
            }
        }
        progress(&format!("restoring {}/{}", o.kind, o.name));
        let outcome = restore_object(cluster, repo, manifests, o, &target, options.existing, None).await;
        if o.plural == "persistentvolumeclaims" && matches!(outcome, Outcome::Created | Outcome::Replaced) {
            restored_claims.push(o.name.clone());
        }
        report.steps.push((format!("{}/{}", o.kind, o.name), outcome));
    }

    // Volume data, before anything mounts it.
    let mut handed = Vec::new();
    for (i, snap) in spec.snapshots.iter().filter(|s| s.kind == "volume").enumerate() {
        let claim = snap.pvc.clone().unwrap_or_default();
        if let Some((o, captured, class)) = staged.remove(&claim) {
            progress(&format!("volume {claim}: restoring data in {K10_NAMESPACE} (its class has CSI snapshots: no key reaches {target})"));
            let (made, data, snapshot) = volumes::restore_staged(cluster, opened, o, &captured, snap, i, &class, &target, options.existing, &|doing| {
                progress(&format!("volume {claim}: {doing}"))
            })
            .await;
            report.steps.push((format!("{}/{}", o.kind, o.name), made));
            report.steps.push((format!("volume data of {claim}"), data));
            handed.extend(snapshot.map(|s| (claim.clone(), s)));
            continue;
        }
        if !restored_claims.contains(&claim) {
            report.steps.push((format!("volume data of {claim}"), Outcome::Skipped));
            continue;
        }
        progress(&format!("volume {claim}: restoring data beside it in {target} (the store's keys are exposed to {target} for the run)"));
        let job = opened.data_mover("restore", &target, &snap.id, i, &claim);
        match job.run_reporting(cluster, &|doing| progress(&format!("volume {claim}: {doing}"))).await {
            Ok(_) => report.steps.push((format!("volume data of {claim}"), Outcome::Created)),
            Err(e) => report.steps.push((format!("volume data of {claim}"), Outcome::Failed(e.to_string()))),
        }
    }

    for (o, _, _) in staged.into_values() {
        let outcome = restore_object(cluster, repo, manifests, o, &target, options.existing, None).await;
        report.steps.push((format!("{}/{}", o.kind, o.name), outcome));
    }

    // Workloads and everything else, once their volumes are filled; a workload whose volume could
    // not be filled is not started on empty data.
    let failed_claims: Vec<String> = report
        .steps
        .iter()
        .filter(|(_, o)| matches!(o, Outcome::Failed(_)))
        .filter_map(|(what, _)| what.strip_prefix("volume data of ").map(str::to_string))
        .collect();
    for o in &late {
        progress(&format!("restoring {}/{}", o.kind, o.name));
        if !failed_claims.is_empty() {
            let doc: serde_json::Value = match repo.read_document(manifests, &o.path).await {
                Ok(d) => serde_json::from_slice(&d).unwrap_or_default(),
                Err(_) => serde_json::Value::Null,
            };
            if let Some(claim) = failed_claims.iter().find(|c| mounts(&doc, &o.name, c)) {
                let why = format!("not created: the data of its volume {claim} could not be restored");
                report.steps.push((format!("{}/{}", o.kind, o.name), Outcome::Failed(why)));
                continue;
            }
        }
        let outcome = restore_object(cluster, repo, manifests, o, &target, options.existing, None).await;
        report.steps.push((format!("{}/{}", o.kind, o.name), outcome));
    }
    volumes::hand_over(cluster, &target, &handed, progress).await;
    Ok(report)
}

/// Whether a captured workload mounts `claim`: a `claimName` anywhere in it, or a StatefulSet
/// claim template that produces it (`<template>-<statefulset>-<ordinal>`).
fn mounts(doc: &serde_json::Value, name: &str, claim: &str) -> bool {
    fn claim_names(v: &serde_json::Value, out: &mut Vec<String>) {
        match v {
            serde_json::Value::Object(map) => {
                for (k, v) in map {
                    match (k.as_str(), v.as_str()) {
                        ("claimName", Some(c)) => out.push(c.to_string()),
                        _ => claim_names(v, out),
                    }
                }
            }
            serde_json::Value::Array(items) => items.iter().for_each(|i| claim_names(i, out)),
            _ => {}
        }
    }
    let mut names = Vec::new();
    claim_names(doc, &mut names);
    let templates = doc["spec"]["volumeClaimTemplates"].as_array().cloned().unwrap_or_default();
    names.iter().any(|n| n == claim)
        || templates.iter().filter_map(|t| t["metadata"]["name"].as_str()).any(|t| {
            claim
                .strip_prefix(&format!("{t}-{name}-"))
                .is_some_and(|ordinal| ordinal.bytes().all(|b| b.is_ascii_digit()))
        })
}

async fn ensure_namespace(cluster: &Cluster, repo: &Repo<ReadOnly>, manifests: &str, name: &str) -> Result<()> {
    let api: Api<Namespace> = Api::all(cluster.client.clone());
    if api
        .get_opt(name)
        .await
        .map_err(|e| cluster.err(e, format!("read namespace {name}")))?
        .is_some()
    {
        return Ok(());
    }
    let meta: serde_json::Value = match repo.read_document(manifests, "namespace.json").await {
        Ok(doc) => serde_json::from_slice(&doc).unwrap_or_default(),
        Err(_) => serde_json::Value::Null,
    };
    let mut labels: BTreeMap<String, String> = serde_json::from_value(meta["labels"].clone()).unwrap_or_default();
    labels.insert("kubernetes.io/metadata.name".into(), name.into());
    let ns = Namespace {
        metadata: ObjectMeta {
            name: Some(name.into()),
            labels: Some(labels),
            annotations: serde_json::from_value(meta["annotations"].clone()).ok(),
            ..Default::default()
        },
        ..Default::default()
    };
    api.create(&PostParams::default(), &ns)
        .await
        .map_err(|e| cluster.err(e, format!("create namespace {name}")))?;
    Ok(())
}

/// Creates a CRD if the cluster lacks it, and waits until it is established.
async fn ensure_crd(cluster: &Cluster, doc: &[u8]) -> Outcome {
    let Ok(mut crd) = serde_json::from_slice::<CustomResourceDefinition>(doc) else {
        return Outcome::Failed("the captured CRD is not readable".into());
    };
    let name = crd.metadata.name.clone().unwrap_or_default();
    let api: Api<CustomResourceDefinition> = Api::all(cluster.client.clone());
    match api.get_opt(&name).await {
        Ok(Some(_)) => return Outcome::Skipped,
        Ok(None) => {}
        Err(e) => return Outcome::Failed(cluster.err(e, format!("read CRD {name}")).to_string()),
    }
    crd.metadata = ObjectMeta {
        name: Some(name.clone()),
        labels: crd.metadata.labels.take(),
        annotations: crd.metadata.annotations.take(),
        ..Default::default()
    };
    crd.status = None;
    if let Err(e) = api.create(&PostParams::default(), &crd).await {
        return Outcome::Failed(cluster.err(e, format!("create CRD {name}")).to_string());
    }
    for _ in 0..100 {
        if let Ok(Some(c)) = api.get_opt(&name).await {
            let established = c
                .status
                .and_then(|s| s.conditions)
                .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Established" && c.status == "True"));
            if established {
                return Outcome::Created;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Outcome::Failed(format!("CRD {name} was not established within 10 s"))
}

async fn restore_object(
    cluster: &Cluster,
    repo: &Repo<ReadOnly>,
    manifests: &str,
    o: &CapturedObject,
    namespace: &str,
    existing: Existing,
    from_snapshot: Option<&str>,
) -> Outcome {
    let doc = match repo.read_document(manifests, &o.path).await {
        Ok(doc) => doc,
        Err(e) => return Outcome::Failed(e.to_string()),
    };
    let Ok(mut value) = serde_json::from_slice::<serde_json::Value>(&doc) else {
        return Outcome::Failed(format!("{} is not JSON", o.path));
    };
    strip::server_fields(&mut value, &o.group, &o.plural, namespace);
    if let Some(snapshot) = from_snapshot {
        let source = serde_json::json!({"apiGroup": "snapshot.storage.k8s.io", "kind": "VolumeSnapshot", "name": snapshot});
        value["spec"]["dataSource"] = source.clone();
        value["spec"]["dataSourceRef"] = source;
    }
    let Ok(obj) = serde_json::from_value::<DynamicObject>(value) else {
        return Outcome::Failed(format!("{} is not a Kubernetes object", o.path));
    };
    let (group, version) = match o.api_version.split_once('/') {
        Some((g, v)) => (g.to_string(), v.to_string()),
        None => (String::new(), o.api_version.clone()),
    };
    let resource = ApiResource {
        group,
        version,
        api_version: o.api_version.clone(),
        kind: o.kind.clone(),
        plural: o.plural.clone(),
    };
    let api: Api<DynamicObject> = Api::namespaced_with(cluster.client.clone(), namespace, &resource);
    match api.create(&PostParams::default(), &obj).await {
        Ok(_) => Outcome::Created,
        Err(kube::Error::Api(s)) if s.code == 409 => match existing {
            Existing::Skip => Outcome::Skipped,
            Existing::Replace => {
                if let Err(e) = api.delete(&o.name, &DeleteParams::default()).await {
                    return Outcome::Failed(cluster.err(e, format!("delete {}/{}", o.kind, o.name)).to_string());
                }
                for _ in 0..100 {
                    match api.create(&PostParams::default(), &obj).await {
                        Ok(_) => return Outcome::Replaced,
                        Err(kube::Error::Api(s)) if s.code == 409 => tokio::time::sleep(Duration::from_millis(100)).await,
                        Err(e) => return Outcome::Failed(cluster.err(e, format!("create {}/{}", o.kind, o.name)).to_string()),
                    }
                }
                Outcome::Failed(format!("{}/{} was still being deleted after 10 s", o.kind, o.name))
            }
        },
        Err(kube::Error::Api(s)) if s.code == 403 => {
            let advice = if o.group == "rbac.authorization.k8s.io" {
                "k10 never writes RBAC objects: restore them with a cluster administrator's credentials (`kubectl k10 restore … --include Role,RoleBinding --wait`)".to_string()
            } else {
                format!(
                    "grant k10 create and delete on {} with a ClusterRole labelled {}=true (README: RBAC), then restore again",
                    crate::backup::capture::full_name(&o.group, &o.plural),
                    crate::k8s::rbac::AGGREGATE_LABEL
                )
            };
            Outcome::Failed(format!("{}; {advice}", cluster.err(kube::Error::Api(s), format!("create {}/{}", o.kind, o.name))))
        }
        Err(e) => Outcome::Failed(cluster.err(e, format!("create {}/{}", o.kind, o.name)).to_string()),
    }
}

/// What `restorepoint verify` found.
#[derive(Debug, Clone, Default)]
pub struct Verification {
    pub namespace: String,
    pub manifests: usize,
    pub volumes: usize,
    pub differences: Vec<String>,
}

/// Restores a restore point into a throw-away namespace, compares every restored manifest and
/// file with the repository, and deletes the namespace again.
pub async fn verify(
    cluster: &Cluster,
    content: &RestorePointContent,
    progress: &(dyn Fn(&str) + Sync),
) -> Result<Verification> {
    let namespace = format!("k10-verify-{}", chrono::Utc::now().format("%Y%m%d%H%M%S"));
    let options = Options {
        target_namespace: Some(namespace.clone()),
        ..Default::default()
    };
    let result = verify_in(cluster, content, &options, progress).await;
    progress(&format!("deleting namespace {namespace}"));
    let namespaces: Api<Namespace> = Api::all(cluster.client.clone());
    let _ = namespaces.delete(&namespace, &DeleteParams::default()).await;
    let mut verification = result?;
    verification.namespace = namespace;
    Ok(verification)
}

async fn verify_in(
    cluster: &Cluster,
    content: &RestorePointContent,
    options: &Options,
    progress: &(dyn Fn(&str) + Sync),
) -> Result<Verification> {
    let namespace = options.target_namespace.clone().expect("verify restores into its own namespace");
    let mut opened = open(cluster, content, progress).await?;
    opened.mover_memory = options.mover_memory_limit;
    let report = restore_opened(cluster, content, &opened, options, progress).await?;
    let mut v = Verification::default();
    for (what, outcome) in &report.steps {
        match outcome {
            Outcome::Failed(why) => v.differences.push(format!("{what}: restore failed: {why}")),
            Outcome::Skipped if !what.starts_with("CustomResourceDefinition/") => {
                v.differences.push(format!("{what}: already existed in the throw-away namespace"))
            }
            _ => {}
        }
    }
    let spec = &content.spec;
    let (repo, manifests) = (&opened.repo, opened.manifests.as_str());

    // Every manifest, as restored, equals the captured one once server-set fields are stripped.
    progress("comparing manifests");
    for o in &opened.objects() {
        let mut captured: serde_json::Value =
            serde_json::from_slice(&repo.read_document(manifests, &o.path).await?).unwrap_or_default();
        strip::server_fields(&mut captured, &o.group, &o.plural, &namespace);
        let (group, version) = match o.api_version.split_once('/') {
            Some((g, v)) => (g.to_string(), v.to_string()),
            None => (String::new(), o.api_version.clone()),
        };
        let resource = ApiResource {
            group,
            version,
            api_version: o.api_version.clone(),
            kind: o.kind.clone(),
            plural: o.plural.clone(),
        };
        let api: Api<DynamicObject> = Api::namespaced_with(cluster.client.clone(), &namespace, &resource);
        match api.get_opt(&o.name).await {
            Ok(Some(obj)) => {
                let mut restored = serde_json::to_value(&obj).unwrap_or_default();
                strip::server_fields(&mut restored, &o.group, &o.plural, &namespace);
                if restored == captured {
                    v.manifests += 1;
                } else {
                    v.differences.push(format!("{}/{}: the restored manifest differs from the captured one", o.kind, o.name));
                }
            }
            Ok(None) => v.differences.push(format!("{}/{}: not restored", o.kind, o.name)),
            Err(e) => v.differences.push(cluster.err(e, format!("read {}/{}", o.kind, o.name)).to_string()),
        }
    }

    // Every volume, as restored, equals its snapshot file by file (compared in the cluster).
    for (i, snap) in spec.snapshots.iter().filter(|s| s.kind == "volume").enumerate() {
        let claim = snap.pvc.clone().unwrap_or_default();
        progress(&format!("comparing volume {claim}"));
        match volumes::verify(cluster, &opened, &namespace, snap, i, &claim, &|doing| progress(&format!("volume {claim}: {doing}"))).await {
            Ok(()) => v.volumes += 1,
            Err(e) => v.differences.push(format!("volume {claim}: {e}")),
        }
    }
    Ok(v)
}
