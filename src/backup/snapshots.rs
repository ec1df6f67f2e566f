//! CSI VolumeSnapshots: when a VolumeSnapshotClass exists for a volume's CSI driver, the data
//! mover reads a clone of a fresh snapshot instead of the live volume, so the backup is a
//! consistent point in time, the application keeps its volume to itself, and the mover runs in
//! `kasten-io` (the snapshot is exposed there), so no key reaches the application's namespace.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use k8s_openapi::api::storage::v1::StorageClass;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};

use crate::api::K10_NAMESPACE;
use serde_json::json;

use crate::k8s::{Cluster, K8sError};

const GROUP: &str = "snapshot.storage.k8s.io";
const READY_TIMEOUT: Duration = Duration::from_secs(600);

fn resource(kind: &str, plural: &str) -> ApiResource {
    ApiResource {
        group: GROUP.into(),
        version: "v1".into(),
        api_version: format!("{GROUP}/v1"),
        kind: kind.into(),
        plural: plural.into(),
    }
}

/// A snapshot and the claim cloned from it; removed by [`Clone::remove`].
#[derive(Debug, Clone)]
pub struct Clone {
    pub namespace: String,
    pub snapshot: String,
    pub claim: String,
}

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("VolumeSnapshot {namespace}/{name} of claim {claim} did not become ready: {reason}")]
    NotReady {
        namespace: String,
        name: String,
        claim: String,
        reason: String,
    },
    #[error(transparent)]
    K8s(#[from] K8sError),
}

/// The VolumeSnapshotClass for the claim's CSI driver; else why its live volume is read.
///
/// A claim's `storageClassName` is final once it exists (the API server fills in the default
/// class when the claim is created): a claim without one, or with `""` (bound statically to a
/// PersistentVolume made by hand), has no provisioner and no snapshot class, and neither has a
/// claim whose StorageClass was deleted since. None of them fails the backup.
pub async fn class_for(cluster: &Cluster, pvc: &PersistentVolumeClaim) -> Result<Result<String, String>, K8sError> {
    let name = pvc.spec.as_ref().and_then(|s| s.storage_class_name.clone());
    let provisioner = match name.as_deref() {
        None => return Ok(Err("the claim has no StorageClass".into())),
        Some("") => return Ok(Err("the claim is bound statically (storageClassName \"\")".into())),
        Some(name) => {
            let classes: Api<StorageClass> = Api::all(cluster.client.clone());
            match classes.get_opt(name).await.map_err(|e| cluster.err(e, format!("read StorageClass {name}")))? {
                Some(class) => class.provisioner,
                None => return Ok(Err(format!("its StorageClass {name:?} no longer exists"))),
            }
        }
    };
    let snapshot_classes: Api<DynamicObject> =
        Api::all_with(cluster.client.clone(), &resource("VolumeSnapshotClass", "volumesnapshotclasses"));
    let list = match snapshot_classes.list(&ListParams::default()).await {
        Ok(list) => list,
        Err(kube::Error::Api(s)) if s.code == 404 => return Ok(Err("the cluster serves no CSI snapshots".into())),
        Err(e) => return Err(cluster.err(e, "list VolumeSnapshotClasses")),
    };
    Ok(list
        .items
        .into_iter()
        .find(|c| c.data["driver"].as_str() == Some(provisioner.as_str()))
        .and_then(|c| c.metadata.name)
        .ok_or_else(|| format!("no VolumeSnapshotClass for its driver {provisioner}")))
}

/// The clone claim [`clone_in_kasten_io`] makes under `name`.
pub fn clone_claim_name(name: &str) -> String {
    format!("{name}-clone")
}

/// A snapshot of claim `claim` in `from`, cut and moved to `to` under the same `name`: its
/// handle imported by a new VolumeSnapshotContent (`deletionPolicy: Delete`) bound to a new
/// VolumeSnapshot in `to`, the original let go at once (its content set to `Retain`, then both
/// deleted). From then on the snapshot's life is that of the copy in `to`: deleting it removes
/// the snapshot on the storage system. This is how a data mover reads in `kasten-io` what was
/// cut in an application's namespace, and how a restore hands over what it wrote in `kasten-io`
/// (as K10's and Velero's data movers do).
///
/// `owners` are the owners of the snapshot in `from` and of its copy in `to`, where Kubernetes
/// allows one (the same namespace); everything also carries `labels` (a run's, see
/// [`crate::backup::cleanup`]), by which the next run removes what a killed one left. Returns the
/// snapshot's `restoreSize`, if the driver reported one.
#[allow(clippy::too_many_arguments)]
pub async fn moved(
    cluster: &Cluster,
    from: &str,
    claim: &str,
    name: &str,
    class: &str,
    to: &str,
    owners: (Option<&OwnerReference>, Option<&OwnerReference>),
    labels: &BTreeMap<String, String>,
) -> Result<Option<String>, SnapshotError> {
    let owner_list = |o: Option<&OwnerReference>| o.map(|o| json!([o])).unwrap_or(json!([]));
    let source = snapshots_in(cluster, from);
    let original = Clone {
        namespace: from.to_string(),
        snapshot: name.to_string(),
        claim: String::new(),
    };
    let snapshot = dynamic(json!({
        "apiVersion": format!("{GROUP}/v1"),
        "kind": "VolumeSnapshot",
        "metadata": {"name": name, "namespace": from, "labels": labels, "ownerReferences": owner_list(owners.0)},
        "spec": {"volumeSnapshotClassName": class, "source": {"persistentVolumeClaimName": claim}},
    }));
    source
        .create(&PostParams::default(), &snapshot)
        .await
        .map_err(|e| cluster.err(e, format!("create VolumeSnapshot {from}/{name}")))?;
    let status = match ready(cluster, &source, from, name, claim).await {
        Ok(status) => status,
        Err(e) => {
            original.remove(cluster).await;
            return Err(e);
        }
    };
    let imported_name = content_name(name, to);
    let expose = async {
        let original_content = status["boundVolumeSnapshotContentName"].as_str().unwrap_or_default().to_string();
        let contents = contents(cluster);
        let content = contents
            .get(&original_content)
            .await
            .map_err(|e| cluster.err(e, format!("read VolumeSnapshotContent {original_content}")))?;
        let handle = content.data["status"]["snapshotHandle"].as_str().unwrap_or_default().to_string();
        let imported = dynamic(json!({
            "apiVersion": format!("{GROUP}/v1"),
            "kind": "VolumeSnapshotContent",
            "metadata": {"name": imported_name, "labels": labels},
            "spec": {
                "deletionPolicy": "Delete",
                "driver": content.data["spec"]["driver"],
                "volumeSnapshotClassName": class,
                "source": {"snapshotHandle": handle},
                "volumeSnapshotRef": {"apiVersion": format!("{GROUP}/v1"), "kind": "VolumeSnapshot", "namespace": to, "name": name},
            },
        }));
        contents
            .create(&PostParams::default(), &imported)
            .await
            .map_err(|e| cluster.err(e, format!("create VolumeSnapshotContent {imported_name}")))?;
        let target = snapshots_in(cluster, to);
        let copy = dynamic(json!({
            "apiVersion": format!("{GROUP}/v1"),
            "kind": "VolumeSnapshot",
            "metadata": {"name": name, "namespace": to, "labels": labels, "ownerReferences": owner_list(owners.1)},
            "spec": {"volumeSnapshotClassName": class, "source": {"volumeSnapshotContentName": imported_name}},
        }));
        target
            .create(&PostParams::default(), &copy)
            .await
            .map_err(|e| cluster.err(e, format!("create VolumeSnapshot {to}/{name}")))?;
        ready(cluster, &target, to, name, claim).await?;
        // The original goes, without its data: the copy holds the snapshot now.
        let retain = json!({"metadata": {"labels": labels}, "spec": {"deletionPolicy": "Retain"}});
        contents
            .patch(&original_content, &PatchParams::default(), &Patch::Merge(&retain))
            .await
            .map_err(|e| cluster.err(e, format!("set VolumeSnapshotContent {original_content} to Retain")))?;
        source
            .delete(name, &DeleteParams::default())
            .await
            .map_err(|e| cluster.err(e, format!("delete VolumeSnapshot {from}/{name}")))?;
        match contents.delete(&original_content, &DeleteParams::default()).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
            Err(e) => Err(SnapshotError::from(cluster.err(e, format!("delete VolumeSnapshotContent {original_content}")))),
        }
    };
    if let Err(e) = expose.await {
        // What an owner does not take with it: the original, the copy and the imported content.
        original.remove(cluster).await;
        let _ = snapshots_in(cluster, to).delete(name, &DeleteParams::default()).await;
        let _ = contents(cluster).delete(&imported_name, &DeleteParams::default()).await;
        return Err(e);
    }
    Ok(status["restoreSize"].as_str().map(str::to_string))
}

/// Where a run's snapshot is read: cut in the application's namespace, [`moved`] to
/// `kasten-io` and cloned into a claim there, which the data mover reads. The copy and the clone
/// are owned by the data mover Job `owner`: the cluster removes both with that Job.
pub async fn clone_in_kasten_io(
    cluster: &Cluster,
    pvc: &PersistentVolumeClaim,
    name: &str,
    class: &str,
    owner: &OwnerReference,
    labels: &BTreeMap<String, String>,
) -> Result<Clone, SnapshotError> {
    let namespace = pvc.metadata.namespace.clone().unwrap_or_default();
    let claim = pvc.metadata.name.clone().unwrap_or_default();
    let restore_size = moved(cluster, &namespace, &claim, name, class, K10_NAMESPACE, (None, Some(owner)), labels).await?;
    let spec = pvc.spec.clone().unwrap_or_default();
    let size = restore_size.or_else(|| {
        spec.resources
            .as_ref()
            .and_then(|r| r.requests.as_ref())
            .and_then(|r| r.get("storage"))
            .map(|q| q.0.clone())
    });
    let clone = Clone {
        namespace: K10_NAMESPACE.into(),
        snapshot: name.to_string(),
        claim: clone_claim_name(name),
    };
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(cluster.client.clone(), K10_NAMESPACE);
    let clone_pvc: PersistentVolumeClaim = serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": clone.claim, "namespace": K10_NAMESPACE, "labels": labels, "ownerReferences": [owner]},
        "spec": {
            "storageClassName": spec.storage_class_name,
            "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": size.unwrap_or_else(|| "1Gi".into())}},
            "dataSource": {"apiGroup": GROUP, "kind": "VolumeSnapshot", "name": name},
        },
    }))
    .expect("a valid PersistentVolumeClaim");
    if let Err(e) = claims.create(&PostParams::default(), &clone_pvc).await {
        clone.remove(cluster).await;
        return Err(cluster.err(e, format!("create PersistentVolumeClaim {K10_NAMESPACE}/{}", clone.claim)).into());
    }
    Ok(clone)
}

/// The name of the content that imports a snapshot into `namespace` (contents are
/// cluster-scoped: the namespace keeps two namespaces' runs apart).
pub fn content_name(snapshot: &str, namespace: &str) -> String {
    let name = format!("{snapshot}-{namespace}");
    name.chars().take(253).collect()
}

fn snapshots_in(cluster: &Cluster, namespace: &str) -> Api<DynamicObject> {
    Api::namespaced_with(cluster.client.clone(), namespace, &resource("VolumeSnapshot", "volumesnapshots"))
}

fn contents(cluster: &Cluster) -> Api<DynamicObject> {
    Api::all_with(cluster.client.clone(), &resource("VolumeSnapshotContent", "volumesnapshotcontents"))
}

fn dynamic(value: serde_json::Value) -> DynamicObject {
    serde_json::from_value(value).expect("a valid object")
}

/// Waits until the snapshot is ready; returns its status.
async fn ready(cluster: &Cluster, api: &Api<DynamicObject>, namespace: &str, name: &str, claim: &str) -> Result<serde_json::Value, SnapshotError> {
    let deadline = tokio::time::Instant::now() + READY_TIMEOUT;
    loop {
        let s = api
            .get(name)
            .await
            .map_err(|e| cluster.err(e, format!("read VolumeSnapshot {namespace}/{name}")))?;
        let status = s.data.get("status").cloned().unwrap_or_default();
        if status["readyToUse"] == json!(true) {
            return Ok(status);
        }
        let error = status["error"]["message"].as_str().map(str::to_string);
        if error.is_some() || tokio::time::Instant::now() >= deadline {
            return Err(SnapshotError::NotReady {
                namespace: namespace.to_string(),
                name: name.to_string(),
                claim: claim.to_string(),
                reason: error.unwrap_or_else(|| format!("not ready after {} s", READY_TIMEOUT.as_secs())),
            });
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

impl Clone {
    /// Deletes the clone claim and the snapshot (best effort: both are the product's own).
    pub async fn remove(&self, cluster: &Cluster) {
        if !self.claim.is_empty() {
            let claims: Api<PersistentVolumeClaim> = Api::namespaced(cluster.client.clone(), &self.namespace);
            let _ = claims.delete(&self.claim, &DeleteParams::default()).await;
        }
        let _ = snapshots_in(cluster, &self.namespace).delete(&self.snapshot, &DeleteParams::default()).await;
    }
}
