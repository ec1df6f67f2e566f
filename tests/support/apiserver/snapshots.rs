//! The stand-in CSI snapshot controller and driver: a VolumeSnapshot copies its claim's local
//! directory, a claim restored from a VolumeSnapshot starts as a copy of that copy. What the
//! external-snapshotter, the CSI external-provisioner and the driver do on a real cluster.

use super::now_rfc3339;
use super::store::{State, WriteOpts};
use serde_json::{json, Value};
use std::io;
use std::path::{Path, PathBuf};

/// The group of the snapshot API (served only once its CRDs are applied).
pub const GROUP: &str = "snapshot.storage.k8s.io";
/// Where snapshot directories live, under the volumes root (`<root>/.snapshots/<uid>`).
/// Not a valid namespace name, so it never collides with a claim's directory.
pub const SNAPSHOTS_DIR: &str = ".snapshots";
/// The annotation that marks a default VolumeSnapshotClass.
const DEFAULT_CLASS_ANNOTATION: &str = "snapshot.storage.kubernetes.io/is-default-class";

/// Minimal v1 CustomResourceDefinitions of the snapshot API (VolumeSnapshotClass,
/// VolumeSnapshot, VolumeSnapshotContent), with schemas that keep every field, as a
/// multi-document YAML for `kubectl apply -f -`.
pub const VOLUME_SNAPSHOT_CRDS: &str = r#"apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: volumesnapshotclasses.snapshot.storage.k8s.io
spec:
  group: snapshot.storage.k8s.io
  names:
    kind: VolumeSnapshotClass
    listKind: VolumeSnapshotClassList
    plural: volumesnapshotclasses
    singular: volumesnapshotclass
    shortNames: [vsclass, vsclasses]
  scope: Cluster
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        x-kubernetes-preserve-unknown-fields: true
---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: volumesnapshots.snapshot.storage.k8s.io
spec:
  group: snapshot.storage.k8s.io
  names:
    kind: VolumeSnapshot
    listKind: VolumeSnapshotList
    plural: volumesnapshots
    singular: volumesnapshot
    shortNames: [vs]
  scope: Namespaced
  versions:
  - name: v1
    served: true
    storage: true
    subresources:
      status: {}
    schema:
      openAPIV3Schema:
        type: object
        x-kubernetes-preserve-unknown-fields: true
---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: volumesnapshotcontents.snapshot.storage.k8s.io
spec:
  group: snapshot.storage.k8s.io
  names:
    kind: VolumeSnapshotContent
    listKind: VolumeSnapshotContentList
    plural: volumesnapshotcontents
    singular: volumesnapshotcontent
    shortNames: [vsc, vscs]
  scope: Cluster
  versions:
  - name: v1
    served: true
    storage: true
    subresources:
      status: {}
    schema:
      openAPIV3Schema:
        type: object
        x-kubernetes-preserve-unknown-fields: true
"#;

/// The directory that holds the data of the VolumeSnapshot with this uid.
pub fn snapshot_dir(volumes_root: &Path, uid: &str) -> PathBuf {
    volumes_root.join(SNAPSHOTS_DIR).join(uid)
}

fn internal() -> WriteOpts {
    WriteOpts {
        internal: true,
        ..WriteOpts::default()
    }
}

/// The provisioner of a StorageClass, if the class exists.
pub fn provisioner_of(state: &State, class: &str) -> Option<String> {
    state
        .get_object("storage.k8s.io", "storageclasses", "", class)
        .and_then(|sc| sc["provisioner"].as_str())
        .map(str::to_string)
}

/// The name of the default StorageClass, if one is marked so.
pub fn default_storage_class(state: &State) -> Option<String> {
    state
        .objects
        .iter()
        .find(|(k, sc)| {
            k.group == "storage.k8s.io"
                && k.plural == "storageclasses"
                && sc["metadata"]["annotations"]["storageclass.kubernetes.io/is-default-class"]
                    == "true"
        })
        .map(|(k, _)| k.name.clone())
}

/// What a snapshot is taken from, once every check passed.
struct Source {
    dir: PathBuf,
    claim: Value,
    class: Value,
    driver: String,
}

/// The checks the snapshot controller and the driver make before cutting a snapshot.
fn source_of(state: &State, snapshot: &Value) -> Result<Source, String> {
    let namespace = snapshot["metadata"]["namespace"].as_str().unwrap_or("");
    let name = snapshot["metadata"]["name"].as_str().unwrap_or("");
    let source = &snapshot["spec"]["source"];
    let claim_name = match source["persistentVolumeClaimName"].as_str() {
        Some(c) if !c.is_empty() => c,
        _ => {
            return Err(format!(
            "VolumeSnapshot {namespace}/{name}: spec.source.persistentVolumeClaimName is required"
        ))
        }
    };
    let claim = state
        .get_object("", "persistentvolumeclaims", namespace, claim_name)
        .cloned()
        .ok_or_else(|| {
            format!(
                "failed to get input parameters to create snapshot {name}: \
                 PersistentVolumeClaim {namespace}/{claim_name} not found"
            )
        })?;
    if claim["status"]["phase"] != "Bound" {
        return Err(format!(
            "failed to get input parameters to create snapshot {name}: \
             the PersistentVolumeClaim {namespace}/{claim_name} is not yet bound to a volume (phase {})",
            claim["status"]["phase"].as_str().unwrap_or("unknown")
        ));
    }
    let storage_class = claim["spec"]["storageClassName"]
        .as_str()
        .map(str::to_string)
        .or_else(|| default_storage_class(state))
        .ok_or_else(|| {
            format!(
                "cannot snapshot PersistentVolumeClaim {namespace}/{claim_name}: it has no \
                 storageClassName and the cluster has no default StorageClass"
            )
        })?;
    let provisioner = provisioner_of(state, &storage_class).ok_or_else(|| {
        format!(
            "cannot snapshot PersistentVolumeClaim {namespace}/{claim_name}: \
             its StorageClass {storage_class:?} does not exist"
        )
    })?;
    let class = match snapshot["spec"]["volumeSnapshotClassName"].as_str() {
        Some(class_name) if !class_name.is_empty() => state
            .get_object(GROUP, "volumesnapshotclasses", "", class_name)
            .cloned()
            .ok_or_else(|| {
                format!(
                    "failed to get input parameters to create snapshot {name}: \
                     VolumeSnapshotClass {class_name:?} not found"
                )
            })?,
        _ => {
            let defaults: Vec<&Value> = state
                .objects
                .iter()
                .filter(|(k, c)| {
                    k.group == GROUP
                        && k.plural == "volumesnapshotclasses"
                        && c["metadata"]["annotations"][DEFAULT_CLASS_ANNOTATION] == "true"
                        && c["driver"].as_str() == Some(provisioner.as_str())
                })
                .map(|(_, c)| c)
                .collect();
            match defaults.as_slice() {
                [one] => (*one).clone(),
                [] => {
                    return Err(format!(
                        "failed to get input parameters to create snapshot {name}: \
                         spec.volumeSnapshotClassName is not set and there is no default \
                         VolumeSnapshotClass for driver {provisioner:?}"
                    ))
                }
                _ => {
                    return Err(format!(
                        "failed to get input parameters to create snapshot {name}: \
                         spec.volumeSnapshotClassName is not set and there are {} default \
                         VolumeSnapshotClasses for driver {provisioner:?}",
                        defaults.len()
                    ))
                }
            }
        }
    };
    let class_name = class["metadata"]["name"].as_str().unwrap_or("");
    let driver = class["driver"].as_str().unwrap_or("");
    if driver != provisioner {
        return Err(format!(
            "failed to take snapshot {name}: the driver of VolumeSnapshotClass {class_name:?} \
             ({driver:?}) does not match the provisioner ({provisioner:?}) of StorageClass \
             {storage_class:?} of PersistentVolumeClaim {namespace}/{claim_name}"
        ));
    }
    Ok(Source {
        dir: state.volumes_root.join(namespace).join(claim_name),
        driver: driver.to_string(),
        claim,
        class,
    })
}

/// After a VolumeSnapshot is stored: cut it at once (copy the claim's directory) and write its
/// status, or write why it cannot be cut. Also creates its VolumeSnapshotContent when that
/// resource is served.
pub fn take(state: &mut State, snapshot: &Value) {
    let namespace = snapshot["metadata"]["namespace"]
        .as_str()
        .unwrap_or("")
        .to_string();
    let name = snapshot["metadata"]["name"]
        .as_str()
        .unwrap_or("")
        .to_string();
    let uid = snapshot["metadata"]["uid"]
        .as_str()
        .unwrap_or("")
        .to_string();
    let now = now_rfc3339();
    if let Some(content) = snapshot["spec"]["source"]["volumeSnapshotContentName"].as_str() {
        let status = match bind_pre_provisioned(state, snapshot, content) {
            Ok(()) => json!({"boundVolumeSnapshotContentName": content, "creationTime": now, "readyToUse": true}),
            Err(message) => json!({"readyToUse": false, "error": {"message": message, "time": now}}),
        };
        state.set_status(GROUP, "volumesnapshots", &namespace, &name, status);
        return;
    }
    let result = source_of(state, snapshot).and_then(|source| {
        let dir = snapshot_dir(&state.volumes_root, &uid);
        let copied = std::fs::create_dir_all(dir.parent().unwrap_or(&dir))
            .and_then(|()| remove_tree(&dir))
            .and_then(|()| copy_tree(&source.dir, &dir));
        match copied {
            Ok(()) => Ok(source),
            Err(err) => {
                let _ = remove_tree(&dir);
                Err(format!(
                    "failed to take snapshot {name}: cannot copy {}: {err}",
                    source.dir.display()
                ))
            }
        }
    });
    let status = match result {
        Ok(source) => {
            let content_name = format!("snapcontent-{uid}");
            let restore_size = source.claim["spec"]["resources"]["requests"]["storage"]
                .as_str()
                .or_else(|| source.claim["status"]["capacity"]["storage"].as_str())
                .map(str::to_string);
            create_content(
                state,
                snapshot,
                &source,
                &content_name,
                restore_size.as_deref(),
            );
            let mut status = json!({
                "boundVolumeSnapshotContentName": content_name,
                "creationTime": now,
                "readyToUse": true,
            });
            if let Some(size) = restore_size {
                status["restoreSize"] = json!(size);
            }
            status
        }
        Err(message) => json!({
            "readyToUse": false,
            "error": {"message": message, "time": now},
        }),
    };
    state.set_status(GROUP, "volumesnapshots", &namespace, &name, status);
}

/// The VolumeSnapshotContent the snapshot controller creates, if its resource is served.
fn create_content(
    state: &mut State,
    snapshot: &Value,
    source: &Source,
    content_name: &str,
    restore_size: Option<&str>,
) {
    let Some(res) = state.find_resource(GROUP, "volumesnapshotcontents") else {
        return;
    };
    let uid = snapshot["metadata"]["uid"].as_str().unwrap_or("");
    let creation_nanos = chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default();
    let mut status = json!({
        "creationTime": creation_nanos,
        "readyToUse": true,
        "snapshotHandle": uid,
    });
    if let Some(bytes) = restore_size.and_then(quantity_bytes) {
        status["restoreSize"] = json!(bytes);
    }
    let content = json!({
        "metadata": {"name": content_name},
        "spec": {
            "deletionPolicy": source.class["deletionPolicy"].as_str().unwrap_or("Delete"),
            "driver": source.driver,
            "source": {"volumeHandle": source.claim["spec"]["volumeName"].clone()},
            "volumeSnapshotClassName": source.class["metadata"]["name"].clone(),
            "volumeSnapshotRef": {
                "apiVersion": format!("{GROUP}/v1"),
                "kind": "VolumeSnapshot",
                "name": snapshot["metadata"]["name"].clone(),
                "namespace": snapshot["metadata"]["namespace"].clone(),
                "uid": uid,
                "resourceVersion": snapshot["metadata"]["resourceVersion"].clone(),
            },
        },
        "status": status,
    });
    if let Err(err) = state.create(&res, None, content, &internal()) {
        eprintln!(
            "k8s stand-in: cannot create VolumeSnapshotContent {content_name}: {}",
            err.message
        );
    }
}

/// A VolumeSnapshot that names an existing VolumeSnapshotContent (`spec.source.
/// volumeSnapshotContentName`) binds to it when that content's `volumeSnapshotRef` names this
/// snapshot and the driver has its handle; the content's status is filled in.
fn bind_pre_provisioned(state: &mut State, snapshot: &Value, content_name: &str) -> Result<(), String> {
    let namespace = snapshot["metadata"]["namespace"].as_str().unwrap_or("");
    let name = snapshot["metadata"]["name"].as_str().unwrap_or("");
    let content = state
        .get_object(GROUP, "volumesnapshotcontents", "", content_name)
        .cloned()
        .ok_or_else(|| format!("VolumeSnapshotContent {content_name} not found"))?;
    let reference = &content["spec"]["volumeSnapshotRef"];
    if reference["namespace"] != namespace || reference["name"] != name {
        return Err(format!(
            "VolumeSnapshotContent {content_name} is bound to the VolumeSnapshot {}/{}, not to {namespace}/{name}",
            reference["namespace"].as_str().unwrap_or(""),
            reference["name"].as_str().unwrap_or("")
        ));
    }
    let handle = handle_of_content(&content).ok_or_else(|| format!("VolumeSnapshotContent {content_name} has no snapshot handle"))?;
    if !snapshot_dir(&state.volumes_root, &handle).is_dir() {
        return Err(format!("the driver has no snapshot {handle:?} (VolumeSnapshotContent {content_name})"));
    }
    let mut status = content["status"].clone();
    if !status.is_object() {
        status = json!({});
    }
    status["snapshotHandle"] = json!(handle);
    status["readyToUse"] = json!(true);
    status["creationTime"] = json!(chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default());
    state.set_status(GROUP, "volumesnapshotcontents", "", content_name, status);
    Ok(())
}

/// The driver's handle of a content: what it was created with, or what the driver reported.
fn handle_of_content(content: &Value) -> Option<String> {
    content["spec"]["source"]["snapshotHandle"]
        .as_str()
        .or_else(|| content["status"]["snapshotHandle"].as_str())
        .map(str::to_string)
}

/// After a VolumeSnapshotContent is created with a handle (pre-provisioned): its status says
/// whether the driver has that snapshot.
pub fn content_created(state: &mut State, content: &Value) {
    let Some(handle) = content["spec"]["source"]["snapshotHandle"].as_str() else {
        return;
    };
    if content["status"].is_object() {
        return;
    }
    let name = content["metadata"]["name"].as_str().unwrap_or("");
    let ready = snapshot_dir(&state.volumes_root, handle).is_dir();
    state.set_status(GROUP, "volumesnapshotcontents", "", name, json!({"snapshotHandle": handle, "readyToUse": ready}));
}

/// After a VolumeSnapshot is deleted: its bound VolumeSnapshotContent goes with it when the
/// content's `deletionPolicy` is `Delete` (and then the snapshot's data); with `Retain` both
/// stay. Without the content resource served, the data goes.
pub fn after_delete(state: &mut State, snapshot: &Value) {
    let Some(res) = state.find_resource(GROUP, "volumesnapshotcontents") else {
        let uid = snapshot["metadata"]["uid"].as_str().unwrap_or("");
        if !uid.is_empty() {
            remove_data(state, uid);
        }
        return;
    };
    let Some(content) = snapshot["status"]["boundVolumeSnapshotContentName"].as_str() else {
        return;
    };
    let policy = state
        .get_object(GROUP, "volumesnapshotcontents", "", content)
        .map(|c| c["spec"]["deletionPolicy"].as_str().unwrap_or("Delete").to_string());
    if policy.as_deref() == Some("Delete") {
        let _ = state.delete(&res, None, content, &Default::default());
    }
}

/// After a VolumeSnapshotContent is deleted: with `deletionPolicy: Delete` the driver deletes
/// the snapshot (its data); with `Retain` the data stays.
pub fn content_deleted(state: &mut State, content: &Value) {
    if content["spec"]["deletionPolicy"].as_str().unwrap_or("Delete") != "Delete" {
        return;
    }
    if let Some(handle) = handle_of_content(content) {
        remove_data(state, &handle);
    }
}

fn remove_data(state: &State, handle: &str) {
    let dir = snapshot_dir(&state.volumes_root, handle);
    if let Err(err) = remove_tree(&dir) {
        eprintln!("k8s stand-in: cannot remove snapshot directory {}: {err}", dir.display());
    }
}

/// The data directory of a VolumeSnapshot: its bound content's handle (where contents are
/// served), else its own uid.
fn data_of(state: &State, snapshot: &Value) -> Result<PathBuf, String> {
    let uid = snapshot["metadata"]["uid"].as_str().unwrap_or("");
    if state.find_resource(GROUP, "volumesnapshotcontents").is_none() {
        return Ok(snapshot_dir(&state.volumes_root, uid));
    }
    let content = snapshot["status"]["boundVolumeSnapshotContentName"].as_str().unwrap_or("");
    state
        .get_object(GROUP, "volumesnapshotcontents", "", content)
        .and_then(handle_of_content)
        .map(|handle| snapshot_dir(&state.volumes_root, &handle))
        .ok_or_else(|| format!("VolumeSnapshotContent {content:?} of the snapshot is gone"))
}

/// A claim's data source, if it names a VolumeSnapshot: `Ok` with the snapshot's directory when
/// the snapshot is ready, `Err` with the reason the claim must wait otherwise. `None` when the
/// claim has no VolumeSnapshot data source.
pub fn claim_source(state: &State, claim: &Value) -> Option<Result<PathBuf, String>> {
    let spec = &claim["spec"];
    let reference = [&spec["dataSourceRef"], &spec["dataSource"]]
        .into_iter()
        .find(|r| r["kind"] == "VolumeSnapshot" && r["apiGroup"] == GROUP)?;
    let namespace = claim["metadata"]["namespace"].as_str().unwrap_or("");
    let name = reference["name"].as_str().unwrap_or("");
    if let Some(other) = reference["namespace"].as_str() {
        if other != namespace {
            return Some(Err(format!(
                "cross-namespace data sources (VolumeSnapshot {other}/{name}) are not modelled by the stand-in"
            )));
        }
    }
    let Some(snapshot) = state.get_object(GROUP, "volumesnapshots", namespace, name) else {
        return Some(Err(format!(
            "error getting handle for DataSource Type VolumeSnapshot by Name {name}: \
             VolumeSnapshot {namespace}/{name} not found"
        )));
    };
    if snapshot["status"]["readyToUse"] != true {
        return Some(Err(format!(
            "error getting handle for DataSource Type VolumeSnapshot by Name {name}: \
             snapshot {name} is not Ready"
        )));
    }
    let dir = match data_of(state, snapshot) {
        Ok(dir) => dir,
        Err(why) => return Some(Err(format!("error getting handle for DataSource Type VolumeSnapshot by Name {name}: {why}"))),
    };
    if !dir.is_dir() {
        return Some(Err(format!(
            "the data of VolumeSnapshot {namespace}/{name} is gone ({} is missing)",
            dir.display()
        )));
    }
    Some(Ok(dir))
}

/// The byte count of a resource quantity (`1Gi`, `500M`, `1073741824`), if it is a simple one.
fn quantity_bytes(q: &str) -> Option<i64> {
    let q = q.trim();
    let split = q
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(q.len());
    let (number, suffix) = q.split_at(split);
    let factor: f64 = match suffix {
        "" => 1.0,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024f64,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        _ => return None,
    };
    let value: f64 = number.parse().ok()?;
    Some((value * factor).ceil() as i64)
}

/// Removes a directory tree; a missing one is fine.
pub fn remove_tree(dir: &Path) -> io::Result<()> {
    match std::fs::remove_dir_all(dir) {
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

/// Copies the directory `src` to `dst` (which must not exist): regular files with their
/// contents, modes, owners, mtimes and extended attributes, directories with their modes,
/// owners, mtimes and extended attributes, symlinks with their targets and owners (a CSI snapshot is the volume's filesystem as it was). Owners
/// are kept where this process may give files away (as root). Other file types (sockets,
/// FIFOs, devices) are skipped; hard links become copies.
pub fn copy_tree(src: &Path, dst: &Path) -> io::Result<()> {
    let meta = std::fs::symlink_metadata(src)?;
    if !meta.is_dir() {
        return Err(io::Error::new(
            io::ErrorKind::NotADirectory,
            format!("{} is not a directory", src.display()),
        ));
    }
    std::fs::create_dir(dst)?;
    for entry in std::fs::read_dir(src)? {
        let entry = entry?;
        let from = entry.path();
        let to = dst.join(entry.file_name());
        let kind = entry.file_type()?;
        if kind.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(&from)?, &to)?;
            keep_owner(&from, &to)?;
        } else if kind.is_dir() {
            copy_tree(&from, &to)?;
        } else if kind.is_file() {
            // Copies the contents and the permission bits.
            std::fs::copy(&from, &to)?;
            keep_owner(&from, &to)?;
            let modified = std::fs::symlink_metadata(&from)?.modified()?;
            set_mtime(&to, modified)?;
        }
    }
    keep_owner(src, dst)?;
    // The directory's own mtime and mode last: copying into it moved the mtime, and a read-only
    // mode would have refused the copies.
    set_mtime(dst, meta.modified()?)?;
    std::fs::set_permissions(dst, meta.permissions())?;
    Ok(())
}

/// Gives `to` the owner of `from` (not following symlinks), where this process may, and the
/// extended attributes of a file or directory.
fn keep_owner(from: &Path, to: &Path) -> io::Result<()> {
    if !std::fs::symlink_metadata(from)?.file_type().is_symlink() {
        for name in xattr::list(from).into_iter().flatten() {
            if let Some(value) = xattr::get(from, &name)? {
                xattr::set(to, &name, &value)?;
            }
        }
    }
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::symlink_metadata(from)?;
    match std::os::unix::fs::lchown(to, Some(meta.uid()), Some(meta.gid())) {
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => Ok(()),
        other => other,
    }
}

fn set_mtime(path: &Path, modified: std::time::SystemTime) -> io::Result<()> {
    // Changing the times needs ownership, not write access: a read-only handle does (and is all
    // a directory or a read-only file allows); a write-only file needs a write handle.
    let file = std::fs::File::open(path)
        .or_else(|_| std::fs::OpenOptions::new().write(true).open(path))?;
    file.set_times(std::fs::FileTimes::new().set_modified(modified))
}
