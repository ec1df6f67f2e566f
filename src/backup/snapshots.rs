//! CSI VolumeSnapshots: when a VolumeSnapshotClass exists for a volume's CSI driver, the data
//! mover reads a clone of a fresh snapshot instead of the live volume, so the backup is a
//! consistent point in time and the application keeps its volume to itself.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use k8s_openapi::api::storage::v1::StorageClass;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, ListParams, PostParams};
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

/// The clone claim [`clone_of`] makes under `name`.
pub fn clone_claim_name(name: &str) -> String {
    format!("{name}-clone")
}

/// Snapshots the claim with the VolumeSnapshotClass `class` and clones the snapshot into a new
/// claim, both owned by `owner` (the data mover Job that reads the clone): whatever happens to
/// the run, the cluster removes them with that Job.
pub async fn clone_of(cluster: &Cluster, pvc: &PersistentVolumeClaim, name: &str, class: &str, owner: &OwnerReference) -> Result<Clone, SnapshotError> {
    let namespace = pvc.metadata.namespace.clone().unwrap_or_default();
    let claim = pvc.metadata.name.clone().unwrap_or_default();
    let labels = json!({"app.kubernetes.io/managed-by": "k10"});
    let owners = json!([owner]);
    let snapshots: Api<DynamicObject> =
        Api::namespaced_with(cluster.client.clone(), &namespace, &resource("VolumeSnapshot", "volumesnapshots"));
    let snapshot: DynamicObject = serde_json::from_value(json!({
        "apiVersion": format!("{GROUP}/v1"),
        "kind": "VolumeSnapshot",
        "metadata": {"name": name, "namespace": namespace, "labels": labels, "ownerReferences": owners},
        "spec": {"volumeSnapshotClassName": class, "source": {"persistentVolumeClaimName": claim}},
    }))
    .expect("a valid VolumeSnapshot");
    snapshots
        .create(&PostParams::default(), &snapshot)
        .await
        .map_err(|e| cluster.err(e, format!("create VolumeSnapshot {namespace}/{name}")))?;
    let clone = Clone {
        namespace: namespace.clone(),
        snapshot: name.to_string(),
        claim: clone_claim_name(name),
    };
    let deadline = tokio::time::Instant::now() + READY_TIMEOUT;
    let restore_size = loop {
        let s = snapshots
            .get(name)
            .await
            .map_err(|e| cluster.err(e, format!("read VolumeSnapshot {namespace}/{name}")))?;
        let status = s.data.get("status").cloned().unwrap_or_default();
        if status["readyToUse"] == json!(true) {
            break status["restoreSize"].as_str().map(str::to_string);
        }
        let error = status["error"]["message"].as_str().map(str::to_string);
        if error.is_some() || tokio::time::Instant::now() >= deadline {
            clone.remove(cluster).await;
            return Err(SnapshotError::NotReady {
                namespace,
                name: name.to_string(),
                claim,
                reason: error.unwrap_or_else(|| format!("not ready after {} s", READY_TIMEOUT.as_secs())),
            });
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let spec = pvc.spec.clone().unwrap_or_default();
    let size = restore_size.or_else(|| {
        spec.resources
            .as_ref()
            .and_then(|r| r.requests.as_ref())
            .and_then(|r| r.get("storage"))
            .map(|q| q.0.clone())
    });
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(cluster.client.clone(), &namespace);
    let clone_pvc: PersistentVolumeClaim = serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": clone.claim, "namespace": namespace, "labels": labels, "ownerReferences": owners},
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
        return Err(cluster.err(e, format!("create PersistentVolumeClaim {namespace}/{}", clone.claim)).into());
    }
    Ok(clone)
}

impl Clone {
    /// Deletes the clone claim and the snapshot (best effort: both are the product's own).
    pub async fn remove(&self, cluster: &Cluster) {
        let claims: Api<PersistentVolumeClaim> = Api::namespaced(cluster.client.clone(), &self.namespace);
        let _ = claims.delete(&self.claim, &DeleteParams::default()).await;
        let snapshots: Api<DynamicObject> =
            Api::namespaced_with(cluster.client.clone(), &self.namespace, &resource("VolumeSnapshot", "volumesnapshots"));
        let _ = snapshots.delete(&self.snapshot, &DeleteParams::default()).await;
    }
}

/// Labels of the objects this module creates.
pub fn labels() -> BTreeMap<String, String> {
    BTreeMap::from([("app.kubernetes.io/managed-by".into(), "k10".into())])
}
