//! CSI VolumeSnapshots: when a VolumeSnapshotClass exists for a volume's CSI driver, the data
//! mover reads a clone of a fresh snapshot instead of the live volume, so the backup is a
//! consistent point in time and the application keeps its volume to itself.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use k8s_openapi::api::storage::v1::StorageClass;
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

/// The VolumeSnapshotClass for the claim's CSI driver, if the cluster has snapshots and one.
async fn class_for(cluster: &Cluster, pvc: &PersistentVolumeClaim) -> Result<Option<String>, K8sError> {
    let classes: Api<StorageClass> = Api::all(cluster.client.clone());
    let storage_class = match pvc.spec.as_ref().and_then(|s| s.storage_class_name.clone()) {
        Some(name) => classes.get_opt(&name).await.map_err(|e| cluster.err(e, format!("read StorageClass {name}")))?,
        None => classes
            .list(&ListParams::default())
            .await
            .map_err(|e| cluster.err(e, "list StorageClasses"))?
            .items
            .into_iter()
            .find(|c| {
                c.metadata
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get("storageclass.kubernetes.io/is-default-class"))
                    .is_some_and(|v| v == "true")
            }),
    };
    let Some(provisioner) = storage_class.map(|c| c.provisioner) else {
        return Ok(None);
    };
    let snapshot_classes: Api<DynamicObject> =
        Api::all_with(cluster.client.clone(), &resource("VolumeSnapshotClass", "volumesnapshotclasses"));
    let list = match snapshot_classes.list(&ListParams::default()).await {
        Ok(list) => list,
        // No snapshot API in this cluster.
        Err(kube::Error::Api(s)) if s.code == 404 => return Ok(None),
        Err(e) => return Err(cluster.err(e, "list VolumeSnapshotClasses")),
    };
    Ok(list
        .items
        .into_iter()
        .find(|c| c.data["driver"].as_str() == Some(provisioner.as_str()))
        .and_then(|c| c.metadata.name))
}

/// Snapshots the claim and clones it, when its driver has a VolumeSnapshotClass.
pub async fn clone_of(cluster: &Cluster, pvc: &PersistentVolumeClaim, name: &str) -> Result<Option<Clone>, SnapshotError> {
    let Some(class) = class_for(cluster, pvc).await? else {
        return Ok(None);
    };
    let namespace = pvc.metadata.namespace.clone().unwrap_or_default();
    let claim = pvc.metadata.name.clone().unwrap_or_default();
    let labels = json!({"app.kubernetes.io/managed-by": "k10"});
    let snapshots: Api<DynamicObject> =
        Api::namespaced_with(cluster.client.clone(), &namespace, &resource("VolumeSnapshot", "volumesnapshots"));
    let snapshot: DynamicObject = serde_json::from_value(json!({
        "apiVersion": format!("{GROUP}/v1"),
        "kind": "VolumeSnapshot",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
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
        claim: format!("{name}-clone"),
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
        "metadata": {"name": clone.claim, "namespace": namespace, "labels": labels},
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
    Ok(Some(clone))
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
