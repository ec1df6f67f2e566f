//! A restored volume's data, and its check by `restorepoint verify`.
//!
//! Where the claim's StorageClass has a VolumeSnapshotClass, the data mover runs in `kasten-io`:
//! it writes a staging claim there, a snapshot of it is handed over to the application's
//! namespace ([`snapshots::moved`]), and the claim is created from that snapshot; a check reads a
//! snapshot clone of the restored claim in `kasten-io`. No key reaches the application's
//! namespace. Otherwise the claim is created empty and filled (or checked) by a data mover beside
//! it, with the keys in a Secret its Job owns for the run.

use std::time::Duration;

use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use kube::api::{Api, DeleteParams, DynamicObject, ApiResource, PostParams};
use serde_json::json;

use super::{restore_object, Existing, Opened, Outcome};
use crate::api::{SnapshotRef, K10_NAMESPACE};
use crate::backup::capture::CapturedObject;
use crate::backup::{cleanup, snapshots};
use crate::k8s::{Cluster, K8sError};
use crate::repo::{ReadOnly, Repo};

/// How long a restore waits for a claim made from a handed-over snapshot to bind before it
/// removes the snapshot (a claim whose class binds on first use waits for its workload).
const HANDOVER_PATIENCE: Duration = Duration::from_secs(120);

/// The captured claim, if readable.
pub(super) async fn captured_claim(repo: &Repo<ReadOnly>, manifests: &str, o: &CapturedObject) -> Option<PersistentVolumeClaim> {
    let doc = repo.read_document(manifests, &o.path).await.ok()?;
    serde_json::from_slice(&doc).ok()
}

/// The VolumeSnapshotClass that serves the captured claim's StorageClass on this cluster, if any.
pub(super) async fn snapshot_class(cluster: &Cluster, claim: &PersistentVolumeClaim) -> Result<Option<String>, K8sError> {
    Ok(snapshots::class_for(cluster, claim).await?.ok())
}

/// Restores a claim with its data through `kasten-io`: returns the claim's outcome, its data's,
/// and the handed-over snapshot to remove once the claim is bound.
#[allow(clippy::too_many_arguments)]
pub(super) async fn restore_staged(
    cluster: &Cluster,
    opened: &Opened,
    o: &CapturedObject,
    claim: &PersistentVolumeClaim,
    snap: &SnapshotRef,
    index: usize,
    class: &str,
    target: &str,
    existing: Existing,
    progress: &(dyn Fn(&str) + Sync),
) -> (Outcome, Outcome, Option<String>) {
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(cluster.client.clone(), target);
    match claims.get_opt(&o.name).await {
        Ok(Some(_)) if existing == Existing::Skip => return (Outcome::Skipped, Outcome::Skipped, None),
        Ok(_) => {}
        Err(e) => {
            let e = cluster.err(e, format!("read PersistentVolumeClaim {target}/{}", o.name)).to_string();
            return (Outcome::Failed(e.clone()), Outcome::Failed(e), None);
        }
    }
    let failed = |why: String| (Outcome::Failed(format!("not created: its data could not be restored: {why}")), Outcome::Failed(why), None);
    let name = unique_name("restore", snap, index);
    let mut labels = cleanup::labels(target, None);
    labels.insert(cleanup::RESTORES_CLAIM_LABEL.into(), o.name.clone());
    let mut job = opened.data_mover("restore", K10_NAMESPACE, &snap.id, index, &name);
    job.name = name.clone();
    job.labels = labels.clone();
    let suspended = match job.create_suspended(cluster).await {
        Ok(s) => s,
        Err(e) => return failed(e.to_string()),
    };
    // The staging claim: the captured one's class and size, owned by the data mover.
    let spec = claim.spec.clone().unwrap_or_default();
    let size = spec
        .resources
        .as_ref()
        .and_then(|r| r.requests.as_ref())
        .and_then(|r| r.get("storage"))
        .map(|q| q.0.clone())
        .unwrap_or_else(|| "1Gi".into());
    let staging: PersistentVolumeClaim = serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": K10_NAMESPACE, "labels": labels, "ownerReferences": [suspended.owner()]},
        "spec": {"storageClassName": spec.storage_class_name, "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": size}}},
    }))
    .expect("a valid PersistentVolumeClaim");
    let staging_claims: Api<PersistentVolumeClaim> = Api::namespaced(cluster.client.clone(), K10_NAMESPACE);
    if let Err(e) = staging_claims.create(&PostParams::default(), &staging).await {
        suspended.remove().await;
        return failed(cluster.err(e, format!("create PersistentVolumeClaim {K10_NAMESPACE}/{name}")).to_string());
    }
    let written = suspended.finish(progress).await;
    let handed = match written {
        Ok(_) => {
            progress(&format!("handing the data over to {target} as a CSI snapshot (class {class})"));
            snapshots::moved(cluster, K10_NAMESPACE, &name, &name, class, target, (Some(suspended.owner()), None), &labels)
                .await
                .map_err(|e| e.to_string())
        }
        Err(e) => Err(e.to_string()),
    };
    suspended.remove().await;
    if let Err(why) = handed {
        return failed(why);
    }
    match restore_object(cluster, &opened.repo, &opened.manifests, o, target, existing, Some(&name)).await {
        outcome @ (Outcome::Created | Outcome::Replaced) => (outcome, Outcome::Created, Some(name)),
        other => {
            let _ = snapshots_in(cluster, target).delete(&name, &DeleteParams::default()).await;
            let why = "its claim could not be created".to_string();
            (other, Outcome::Failed(why), None)
        }
    }
}

/// A name for what a restore or a check makes in kasten-io: two of them at once (a restore and a
/// verify of one restore point) never collide there.
fn unique_name(verb: &str, snap: &SnapshotRef, index: usize) -> String {
    format!("k10-{verb}-{}-{index}-{}", snap.id.get(..12).unwrap_or(&snap.id), &crate::repo::new_password()[..4])
}

fn snapshots_in(cluster: &Cluster, namespace: &str) -> Api<DynamicObject> {
    let resource = ApiResource {
        group: "snapshot.storage.k8s.io".into(),
        version: "v1".into(),
        api_version: "snapshot.storage.k8s.io/v1".into(),
        kind: "VolumeSnapshot".into(),
        plural: "volumesnapshots".into(),
    };
    Api::namespaced_with(cluster.client.clone(), namespace, &resource)
}

/// Removes each handed-over snapshot once its claim is bound: the claim has its own copy then.
/// One whose claim waits longer (it binds on first use) stays, labelled, for the next backup of
/// the namespace to remove.
pub(super) async fn hand_over(cluster: &Cluster, target: &str, handed: &[(String, String)], progress: &(dyn Fn(&str) + Sync)) {
    let deadline = tokio::time::Instant::now() + HANDOVER_PATIENCE;
    for (claim, snapshot) in handed {
        loop {
            match cleanup::claim_settled(cluster, target, claim).await {
                Ok(true) => {
                    let _ = snapshots_in(cluster, target).delete(snapshot, &DeleteParams::default()).await;
                    break;
                }
                Ok(false) if tokio::time::Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(500)).await,
                _ => {
                    progress(&format!(
                        "claim {claim} is not bound yet: its VolumeSnapshot {target}/{snapshot} stays until it is (the next backup of {target} removes it then)"
                    ));
                    break;
                }
            }
        }
    }
}

/// Compares a restored volume with its snapshot in the cluster: from a snapshot clone in
/// `kasten-io` where the claim's class has CSI snapshots, else beside the claim.
pub(super) async fn verify(
    cluster: &Cluster,
    opened: &Opened,
    namespace: &str,
    snap: &SnapshotRef,
    index: usize,
    claim: &str,
    progress: &(dyn Fn(&str) + Sync),
) -> Result<(), String> {
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(cluster.client.clone(), namespace);
    let pvc = claims
        .get(claim)
        .await
        .map_err(|e| cluster.err(e, format!("read PersistentVolumeClaim {namespace}/{claim}")).to_string())?;
    let class = snapshot_class(cluster, &pvc).await.map_err(|e| e.to_string())?;
    let Some(class) = class else {
        return opened.data_mover("verify", namespace, &snap.id, index, claim).run_reporting(cluster, progress).await.map(|_| ()).map_err(|e| e.to_string());
    };
    let name = unique_name("verify", snap, index);
    let mut job = opened.data_mover("verify", K10_NAMESPACE, &snap.id, index, &snapshots::clone_claim_name(&name));
    job.name = name.clone();
    job.labels = cleanup::labels(namespace, None);
    let suspended = job.create_suspended(cluster).await.map_err(|e| e.to_string())?;
    if let Err(e) = snapshots::clone_in_kasten_io(cluster, &pvc, &name, &class, suspended.owner(), &job.labels).await {
        suspended.remove().await;
        return Err(e.to_string());
    }
    suspended.run(progress).await.map(|_| ()).map_err(|e| e.to_string())
}
