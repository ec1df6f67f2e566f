//! Tests of the stand-in's CSI snapshot controller (tests/support/apiserver, "CSI snapshots"):
//! VolumeSnapshots copy a claim's directory, claims restored from one start as that copy,
//! through `kubectl` (v1.32; `KUBECTL` overrides `/usr/bin/kubectl`) and the `kube` client.

mod support;

use k8s_openapi::api::core::v1::{Event, Namespace, PersistentVolumeClaim};
use k8s_openapi::api::storage::v1::StorageClass;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, ListParams, PostParams};
use serde_json::{json, Value};
use std::io::Write;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};
use support::apiserver::{
    ApiServer, ApiServerOptions, SNAPSHOTS_DIR, STANDARD_PROVISIONER, VOLUME_SNAPSHOT_CRDS,
};
use support::tree;

/// How long a snapshot may take to become ready (the stand-in takes it within the create).
const READY_TIMEOUT: Duration = Duration::from_secs(5);
/// A fixed mtime, to see it survive the copies.
const OLD_MTIME: u64 = 1_600_000_000;

// ---------------------------------------------------------------------------------------------
// Helpers.

/// Runs kubectl against one server, with its own discovery cache.
struct Kubectl {
    kubeconfig: PathBuf,
    cache: tempfile::TempDir,
}

impl Kubectl {
    fn new(server: &ApiServer) -> Kubectl {
        Kubectl {
            kubeconfig: server.kubeconfig_path().to_path_buf(),
            cache: tempfile::tempdir().expect("tempdir"),
        }
    }

    /// Runs kubectl; returns (success, stdout, stderr).
    fn run(&self, args: &[&str], stdin: Option<&str>) -> (bool, String, String) {
        let program = std::env::var("KUBECTL").unwrap_or_else(|_| "/usr/bin/kubectl".into());
        let mut child = Command::new(&program)
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--cache-dir")
            .arg(self.cache.path())
            .args(args)
            .env_remove("KUBECONFIG")
            .env("HOME", self.cache.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
        if let Some(text) = stdin {
            child
                .stdin
                .take()
                .expect("stdin")
                .write_all(text.as_bytes())
                .expect("write stdin");
        }
        drop(child.stdin.take());
        let output = child.wait_with_output().expect("kubectl runs");
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    }

    #[track_caller]
    fn ok(&self, args: &[&str]) -> String {
        let (ok, stdout, stderr) = self.run(args, None);
        assert!(ok, "kubectl {args:?} failed:\n{stdout}\n{stderr}");
        stdout
    }

    #[track_caller]
    fn apply(&self, manifest: &str) -> String {
        let (ok, stdout, stderr) = self.run(&["apply", "-f", "-"], Some(manifest));
        assert!(ok, "kubectl apply failed:\n{stdout}\n{stderr}\n{manifest}");
        stdout
    }

    #[track_caller]
    fn json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.extend_from_slice(&["-o", "json"]);
        serde_json::from_str(&self.ok(&all)).expect("kubectl prints JSON")
    }

    /// Polls a VolumeSnapshot until its status says ready or failed; panics after READY_TIMEOUT.
    #[track_caller]
    fn snapshot_outcome(&self, namespace: &str, name: &str) -> Value {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let snapshot = self.json(&["get", "volumesnapshot", name, "-n", namespace]);
            let status = &snapshot["status"];
            if status["readyToUse"] == true || status["error"]["message"].is_string() {
                return snapshot;
            }
            assert!(
                Instant::now() < deadline,
                "VolumeSnapshot {namespace}/{name} has no outcome after {READY_TIMEOUT:?}: {snapshot}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn set_mtime(path: &Path, secs: u64) {
    let time = SystemTime::UNIX_EPOCH + Duration::from_secs(secs);
    std::fs::File::open(path)
        .expect("open to set mtime")
        .set_times(std::fs::FileTimes::new().set_modified(time))
        .expect("set mtime");
}

fn mtime(path: &Path) -> SystemTime {
    std::fs::symlink_metadata(path)
        .expect("metadata")
        .modified()
        .expect("mtime")
}

fn mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path)
        .expect("metadata")
        .permissions()
        .mode()
        & 0o7777
}

/// A volume's content: an empty file, a 0600 file, symlinks, a 0750 directory with an old mtime.
fn fill_volume(dir: &Path) {
    std::fs::write(dir.join("hello.txt"), "hello\n").unwrap();
    std::fs::write(dir.join("empty"), b"").unwrap();
    std::fs::write(dir.join("private"), "secret\n").unwrap();
    std::fs::set_permissions(dir.join("private"), std::fs::Permissions::from_mode(0o600)).unwrap();
    symlink("hello.txt", dir.join("link-to-hello")).unwrap();
    symlink("/nonexistent/target", dir.join("dangling")).unwrap();
    std::fs::create_dir_all(dir.join("sub/deeper")).unwrap();
    std::fs::write(dir.join("sub/deeper/data.bin"), tree::noise(3, 100_000)).unwrap();
    set_mtime(&dir.join("hello.txt"), OLD_MTIME);
    set_mtime(&dir.join("sub/deeper/data.bin"), OLD_MTIME + 1);
    std::fs::set_permissions(dir.join("sub"), std::fs::Permissions::from_mode(0o750)).unwrap();
    set_mtime(&dir.join("sub"), OLD_MTIME + 2);
}

fn snapshot_dir(server: &ApiServer, uid: &str) -> PathBuf {
    server.volumes_root().join(SNAPSHOTS_DIR).join(uid)
}

fn snapshot_manifest(namespace: &str, name: &str, class: &str, claim: &str) -> String {
    format!(
        "apiVersion: snapshot.storage.k8s.io/v1
kind: VolumeSnapshot
metadata: {{name: {name}, namespace: {namespace}}}
spec:
  volumeSnapshotClassName: {class}
  source: {{persistentVolumeClaimName: {claim}}}
"
    )
}

fn restored_claim_manifest(namespace: &str, name: &str, snapshot: &str) -> String {
    format!(
        "apiVersion: v1
kind: PersistentVolumeClaim
metadata: {{name: {name}, namespace: {namespace}}}
spec:
  accessModes: [ReadWriteOnce]
  resources: {{requests: {{storage: 1Gi}}}}
  dataSource: {{apiGroup: snapshot.storage.k8s.io, kind: VolumeSnapshot, name: {snapshot}}}
"
    )
}

// ---------------------------------------------------------------------------------------------
// Through kubectl.

#[test]
fn kubectl_snapshot_restore_mismatch_and_delete() {
    let server = ApiServer::start_in_background(ApiServerOptions::default());
    let kubectl = Kubectl::new(&server);

    // The seeded default class names the stand-in's CSI driver.
    let standard = kubectl.json(&["get", "storageclass", "standard"]);
    assert_eq!(standard["provisioner"], STANDARD_PROVISIONER);

    // No snapshot API until its CRDs are applied.
    let (ok, _, stderr) = kubectl.run(&["get", "volumesnapshots", "-A"], None);
    assert!(!ok, "the snapshot API is not built in");
    assert!(
        stderr.contains("the server doesn't have a resource type"),
        "{stderr}"
    );
    kubectl.apply(VOLUME_SNAPSHOT_CRDS);
    kubectl.apply(&format!(
        "apiVersion: snapshot.storage.k8s.io/v1
kind: VolumeSnapshotClass
metadata: {{name: standin-snapclass}}
driver: {STANDARD_PROVISIONER}
deletionPolicy: Delete
---
apiVersion: snapshot.storage.k8s.io/v1
kind: VolumeSnapshotClass
metadata: {{name: other-driver}}
driver: other.csi.example.com
deletionPolicy: Delete
---
apiVersion: v1
kind: Namespace
metadata: {{name: app}}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {{name: data, namespace: app}}
spec: {{accessModes: [ReadWriteOnce], resources: {{requests: {{storage: 1Gi}}}}}}
"
    ));
    let volume = server.volumes_root().join("app").join("data");
    fill_volume(&volume);
    let at_snapshot = tree::read(&volume);

    // A snapshot with the matching class is ready at once, its data beside the volumes.
    kubectl.apply(&snapshot_manifest(
        "app",
        "snap",
        "standin-snapclass",
        "data",
    ));
    let snap = kubectl.snapshot_outcome("app", "snap");
    let uid = snap["metadata"]["uid"].as_str().expect("uid").to_string();
    let status = &snap["status"];
    assert_eq!(status["readyToUse"], true, "{snap}");
    assert_eq!(status["restoreSize"], "1Gi");
    assert!(status["creationTime"].is_string(), "{snap}");
    assert!(status.get("error").is_none(), "{snap}");
    let content_name = format!("snapcontent-{uid}");
    assert_eq!(
        status["boundVolumeSnapshotContentName"],
        content_name.as_str()
    );
    let snap_dir = snapshot_dir(&server, &uid);
    assert!(
        snap_dir.is_dir(),
        "the snapshot's data is in {}",
        snap_dir.display()
    );
    let content = kubectl.json(&["get", "volumesnapshotcontent", &content_name]);
    assert_eq!(content["spec"]["driver"], STANDARD_PROVISIONER);
    assert_eq!(content["spec"]["deletionPolicy"], "Delete");
    assert_eq!(
        content["spec"]["volumeSnapshotClassName"],
        "standin-snapclass"
    );
    assert_eq!(content["spec"]["volumeSnapshotRef"]["name"], "snap");
    assert_eq!(content["spec"]["volumeSnapshotRef"]["uid"], uid.as_str());
    let pv = kubectl.json(&["get", "pvc", "data", "-n", "app"])["spec"]["volumeName"].clone();
    assert_eq!(content["spec"]["source"]["volumeHandle"], pv);
    assert_eq!(content["status"]["readyToUse"], true);
    assert_eq!(content["status"]["restoreSize"], 1u64 << 30);

    // The application goes on writing after the snapshot.
    std::fs::write(volume.join("hello.txt"), "changed after the snapshot\n").unwrap();
    std::fs::remove_file(volume.join("empty")).unwrap();
    std::fs::write(volume.join("new.txt"), "new").unwrap();
    std::fs::set_permissions(
        volume.join("private"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    std::fs::remove_file(volume.join("link-to-hello")).unwrap();
    symlink("new.txt", volume.join("link-to-hello")).unwrap();
    assert_ne!(tree::read(&volume), at_snapshot);

    // A claim restored from the snapshot holds the data as it was when the snapshot was taken.
    kubectl.apply(&restored_claim_manifest("app", "restored", "snap"));
    let restored_claim = kubectl.json(&["get", "pvc", "restored", "-n", "app"]);
    assert_eq!(
        restored_claim["status"]["phase"], "Bound",
        "{restored_claim}"
    );
    assert_eq!(
        restored_claim["spec"]["dataSourceRef"]["name"], "snap",
        "dataSourceRef defaults to dataSource"
    );
    let restored = server.volumes_root().join("app").join("restored");
    assert_eq!(tree::read(&restored), at_snapshot);
    assert_eq!(std::fs::read(restored.join("empty")).unwrap(), b"");
    assert_eq!(mode(&restored.join("private")), 0o600);
    assert_eq!(
        std::fs::read_link(restored.join("link-to-hello")).unwrap(),
        Path::new("hello.txt")
    );
    assert_eq!(mode(&restored.join("sub")), 0o750);
    assert_eq!(
        mtime(&restored.join("sub")),
        SystemTime::UNIX_EPOCH + Duration::from_secs(OLD_MTIME + 2),
        "directory mtimes are kept"
    );
    assert_eq!(
        mtime(&restored.join("hello.txt")),
        SystemTime::UNIX_EPOCH + Duration::from_secs(OLD_MTIME)
    );
    // The restored volume is its own: writing to it changes neither the snapshot nor the source.
    std::fs::write(restored.join("hello.txt"), "written to the restored volume").unwrap();
    assert_eq!(tree::read(&snap_dir), at_snapshot);

    // A class of another driver: not ready, and the error says why.
    kubectl.apply(&snapshot_manifest(
        "app",
        "mismatched",
        "other-driver",
        "data",
    ));
    let bad = kubectl.snapshot_outcome("app", "mismatched");
    assert_eq!(bad["status"]["readyToUse"], false, "{bad}");
    let message = bad["status"]["error"]["message"].as_str().expect("message");
    assert!(
        message.contains("other.csi.example.com") && message.contains(STANDARD_PROVISIONER),
        "the error names the driver and the provisioner: {message}"
    );
    assert!(bad["status"]["error"]["time"].is_string(), "{bad}");
    assert!(bad["status"]
        .get("boundVolumeSnapshotContentName")
        .is_none());
    let bad_uid = bad["metadata"]["uid"].as_str().unwrap();
    assert!(!snapshot_dir(&server, bad_uid).exists());

    // A claim restored from a snapshot that is not ready stays Pending, empty.
    kubectl.apply(&restored_claim_manifest("app", "waiting", "mismatched"));
    let waiting = kubectl.json(&["get", "pvc", "waiting", "-n", "app"]);
    assert_eq!(waiting["status"]["phase"], "Pending", "{waiting}");
    assert!(waiting["spec"].get("volumeName").is_none(), "{waiting}");
    let waiting_dir = server.volumes_root().join("app").join("waiting");
    assert!(waiting_dir.is_dir());
    assert_eq!(std::fs::read_dir(&waiting_dir).unwrap().count(), 0);
    let events = kubectl.json(&[
        "get",
        "events",
        "-n",
        "app",
        "--field-selector",
        "involvedObject.name=waiting",
    ]);
    let event = &events["items"][0];
    assert_eq!(event["reason"], "ProvisioningFailed", "{events}");
    assert!(
        event["message"]
            .as_str()
            .unwrap_or("")
            .contains("mismatched"),
        "{events}"
    );

    // A missing source claim and a missing class.
    kubectl.apply(&snapshot_manifest(
        "app",
        "no-claim",
        "standin-snapclass",
        "nope",
    ));
    let no_claim = kubectl.snapshot_outcome("app", "no-claim");
    assert_eq!(no_claim["status"]["readyToUse"], false);
    assert!(
        no_claim["status"]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("app/nope not found"),
        "{no_claim}"
    );
    kubectl.apply(&snapshot_manifest(
        "app",
        "no-class",
        "missing-class",
        "data",
    ));
    let no_class = kubectl.snapshot_outcome("app", "no-class");
    assert_eq!(no_class["status"]["readyToUse"], false);
    assert!(
        no_class["status"]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("\"missing-class\" not found"),
        "{no_class}"
    );

    // Deleting the snapshot removes its data and its content; the restored claim keeps its own.
    kubectl.ok(&["delete", "volumesnapshot", "snap", "-n", "app"]);
    assert!(!snap_dir.exists(), "the snapshot's directory went with it");
    let (found, _, _) = kubectl.run(&["get", "volumesnapshotcontent", &content_name], None);
    assert!(!found, "the VolumeSnapshotContent went with its snapshot");
    assert_eq!(
        std::fs::read_to_string(restored.join("hello.txt")).unwrap(),
        "written to the restored volume"
    );

    // Deleting the namespace removes the snapshots it still has.
    kubectl.apply(&snapshot_manifest(
        "app",
        "snap2",
        "standin-snapclass",
        "data",
    ));
    let snap2 = kubectl.snapshot_outcome("app", "snap2");
    assert_eq!(snap2["status"]["readyToUse"], true, "{snap2}");
    let snap2_dir = snapshot_dir(&server, snap2["metadata"]["uid"].as_str().unwrap());
    assert_eq!(
        tree::read(&snap2_dir),
        tree::read(&volume),
        "a later snapshot sees the change"
    );
    kubectl.ok(&["delete", "namespace", "app"]);
    assert!(!snap2_dir.exists(), "snapshot data goes with its namespace");
    assert_eq!(
        std::fs::read_dir(server.volumes_root().join(SNAPSHOTS_DIR))
            .unwrap()
            .count(),
        0,
        "no snapshot directory is left"
    );
    let contents = kubectl.json(&["get", "volumesnapshotcontents"]);
    assert_eq!(contents["items"], json!([]), "{contents}");
}

// ---------------------------------------------------------------------------------------------
// Through kube, as the product reads the snapshot API.

fn snapshot_api(kind: &str, plural: &str) -> ApiResource {
    ApiResource {
        group: "snapshot.storage.k8s.io".into(),
        version: "v1".into(),
        api_version: "snapshot.storage.k8s.io/v1".into(),
        kind: kind.into(),
        plural: plural.into(),
    }
}

fn dynamic(value: Value) -> DynamicObject {
    serde_json::from_value(value).expect("a valid object")
}

/// Polls until the snapshot has an outcome; returns its status.
async fn outcome(snapshots: &Api<DynamicObject>, name: &str) -> Value {
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        let snapshot = snapshots.get(name).await.expect("get VolumeSnapshot");
        let status = snapshot.data.get("status").cloned().unwrap_or(Value::Null);
        if status["readyToUse"] == true || status["error"]["message"].is_string() {
            return status;
        }
        assert!(Instant::now() < deadline, "{name}: no outcome: {status}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn create_claim(claims: &Api<PersistentVolumeClaim>, name: &str, spec: Value) {
    let claim: PersistentVolumeClaim =
        serde_json::from_value(json!({"metadata": {"name": name}, "spec": spec})).unwrap();
    claims
        .create(&PostParams::default(), &claim)
        .await
        .expect("create claim");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kube_default_class_storage_classes_and_crd_removal() {
    let server = ApiServer::start(ApiServerOptions::default())
        .await
        .expect("stand-in starts");
    let client = server.client().await;
    let classes: Api<DynamicObject> = Api::all_with(
        client.clone(),
        &snapshot_api("VolumeSnapshotClass", "volumesnapshotclasses"),
    );
    match classes.list(&ListParams::default()).await {
        Err(kube::Error::Api(s)) => assert_eq!(s.code, 404, "no snapshot API yet"),
        other => panic!("listing VolumeSnapshotClasses without their CRD: {other:?}"),
    }

    // The CRDs, from the same YAML tests give kubectl.
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for doc in VOLUME_SNAPSHOT_CRDS.split("\n---\n") {
        let crd: CustomResourceDefinition = serde_yaml::from_str(doc).expect("a CRD");
        crds.create(&PostParams::default(), &crd)
            .await
            .expect("create CRD");
    }
    assert!(classes
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .is_empty());

    // A default VolumeSnapshotClass for the standard driver; a StorageClass of another driver.
    classes
        .create(
            &PostParams::default(),
            &dynamic(json!({
                "apiVersion": "snapshot.storage.k8s.io/v1",
                "kind": "VolumeSnapshotClass",
                "metadata": {"name": "default-snapclass",
                    "annotations": {"snapshot.storage.kubernetes.io/is-default-class": "true"}},
                "driver": STANDARD_PROVISIONER,
                "deletionPolicy": "Retain",
            })),
        )
        .await
        .unwrap();
    let storage_classes: Api<StorageClass> = Api::all(client.clone());
    let fast: StorageClass = serde_json::from_value(json!({
        "metadata": {"name": "fast"},
        "provisioner": "fast.csi.example.com",
    }))
    .unwrap();
    storage_classes
        .create(&PostParams::default(), &fast)
        .await
        .unwrap();

    let namespaces: Api<Namespace> = Api::all(client.clone());
    for ns in ["one", "two"] {
        let obj: Namespace = serde_json::from_value(json!({"metadata": {"name": ns}})).unwrap();
        namespaces
            .create(&PostParams::default(), &obj)
            .await
            .unwrap();
    }
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), "one");
    let request =
        json!({"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "256Mi"}}});
    create_claim(&claims, "db", request.clone()).await;
    let mut fast_spec = request.clone();
    fast_spec["storageClassName"] = json!("fast");
    create_claim(&claims, "cache", fast_spec).await;
    let db_dir = server.volumes_root().join("one").join("db");
    std::fs::write(db_dir.join("table"), "rows").unwrap();

    // Without a class name, the default class of the claim's driver is used.
    let snapshots: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        "one",
        &snapshot_api("VolumeSnapshot", "volumesnapshots"),
    );
    let snapshot = |name: &str, claim: &str| {
        dynamic(json!({
            "apiVersion": "snapshot.storage.k8s.io/v1",
            "kind": "VolumeSnapshot",
            "metadata": {"name": name},
            "spec": {"source": {"persistentVolumeClaimName": claim}},
        }))
    };
    let created = snapshots
        .create(&PostParams::default(), &snapshot("db-snap", "db"))
        .await
        .unwrap();
    assert!(
        created.data.get("status").is_none(),
        "the create response has no status yet"
    );
    let status = outcome(&snapshots, "db-snap").await;
    assert_eq!(status["readyToUse"], true, "{status}");
    assert_eq!(status["restoreSize"], "256Mi");
    let contents: Api<DynamicObject> = Api::all_with(
        client.clone(),
        &snapshot_api("VolumeSnapshotContent", "volumesnapshotcontents"),
    );
    let content = contents
        .get(status["boundVolumeSnapshotContentName"].as_str().unwrap())
        .await
        .unwrap();
    assert_eq!(content.data["spec"]["deletionPolicy"], "Retain");
    assert_eq!(
        content.data["spec"]["volumeSnapshotClassName"],
        "default-snapclass"
    );
    assert_eq!(content.data["status"]["restoreSize"], 256u64 << 20);

    // A claim of another driver has no default class, and the named one does not match it.
    snapshots
        .create(&PostParams::default(), &snapshot("cache-snap", "cache"))
        .await
        .unwrap();
    let status = outcome(&snapshots, "cache-snap").await;
    assert_eq!(status["readyToUse"], false);
    let message = status["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("no default VolumeSnapshotClass")
            && message.contains("fast.csi.example.com"),
        "{message}"
    );
    let mut named = snapshot("cache-snap-named", "cache");
    named.data["spec"]["volumeSnapshotClassName"] = json!("default-snapclass");
    snapshots
        .create(&PostParams::default(), &named)
        .await
        .unwrap();
    let status = outcome(&snapshots, "cache-snap-named").await;
    assert_eq!(status["readyToUse"], false);
    let message = status["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("fast.csi.example.com") && message.contains(STANDARD_PROVISIONER),
        "{message}"
    );

    // A restore through dataSourceRef alone; dataSource is defaulted from it.
    create_claim(
        &claims,
        "db-restored",
        json!({
            "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": "256Mi"}},
            "dataSourceRef": {"apiGroup": "snapshot.storage.k8s.io", "kind": "VolumeSnapshot", "name": "db-snap"},
        }),
    )
    .await;
    let restored = claims.get("db-restored").await.unwrap();
    assert_eq!(
        restored.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Bound")
    );
    let spec = restored.spec.unwrap();
    assert_eq!(spec.data_source.map(|d| d.name).as_deref(), Some("db-snap"));
    assert!(spec.volume_name.is_some());
    let restored_dir = server.volumes_root().join("one").join("db-restored");
    assert_eq!(
        std::fs::read_to_string(restored_dir.join("table")).unwrap(),
        "rows"
    );

    // A restore from a snapshot that does not exist waits, with an event saying why.
    create_claim(
        &claims,
        "orphan",
        json!({
            "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": "1Gi"}},
            "dataSource": {"apiGroup": "snapshot.storage.k8s.io", "kind": "VolumeSnapshot", "name": "nothing"},
        }),
    )
    .await;
    let orphan = claims.get("orphan").await.unwrap();
    assert_eq!(
        orphan.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Pending")
    );
    let events: Api<Event> = Api::namespaced(client.clone(), "one");
    let events = events
        .list(&ListParams::default().fields("involvedObject.name=orphan"))
        .await
        .unwrap();
    let message = events.items[0].message.clone().unwrap_or_default();
    assert!(message.contains("nothing not found"), "{message}");

    // A snapshot of a Pending claim fails.
    snapshots
        .create(&PostParams::default(), &snapshot("orphan-snap", "orphan"))
        .await
        .unwrap();
    let status = outcome(&snapshots, "orphan-snap").await;
    assert_eq!(status["readyToUse"], false);
    assert!(
        status["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not yet bound"),
        "{status}"
    );

    // A snapshot in another namespace; deleting the VolumeSnapshot CRD removes every snapshot.
    let claims_two: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), "two");
    create_claim(&claims_two, "logs", request.clone()).await;
    let snapshots_two: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        "two",
        &snapshot_api("VolumeSnapshot", "volumesnapshots"),
    );
    snapshots_two
        .create(&PostParams::default(), &snapshot("logs-snap", "logs"))
        .await
        .unwrap();
    assert_eq!(
        outcome(&snapshots_two, "logs-snap").await["readyToUse"],
        true
    );
    let root = server.volumes_root().join(SNAPSHOTS_DIR);
    assert_eq!(
        std::fs::read_dir(&root).unwrap().count(),
        2,
        "db-snap and logs-snap"
    );
    crds.delete(
        "volumesnapshots.snapshot.storage.k8s.io",
        &DeleteParams::default(),
    )
    .await
    .unwrap();
    // Their class says Retain: the contents and the data outlive the snapshots...
    assert_eq!(std::fs::read_dir(&root).unwrap().count(), 2);
    let left = contents.list(&ListParams::default()).await.unwrap().items;
    assert_eq!(left.len(), 2, "Retain keeps the contents");
    // ...and deleting a content with Retain leaves the data; with Delete it goes.
    let (first, second) = (left[0].metadata.name.clone().unwrap(), left[1].metadata.name.clone().unwrap());
    contents.delete(&first, &DeleteParams::default()).await.unwrap();
    assert_eq!(std::fs::read_dir(&root).unwrap().count(), 2);
    contents
        .patch(&second, &kube::api::PatchParams::default(), &kube::api::Patch::Merge(json!({"spec": {"deletionPolicy": "Delete"}})))
        .await
        .unwrap();
    contents.delete(&second, &DeleteParams::default()).await.unwrap();
    assert_eq!(std::fs::read_dir(&root).unwrap().count(), 1);
    // Restored claims keep their data.
    assert_eq!(
        std::fs::read_to_string(restored_dir.join("table")).unwrap(),
        "rows"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kube_a_snapshot_rebound_into_another_namespace_is_cloned_there() {
    let server = ApiServer::start(ApiServerOptions::default()).await.expect("stand-in starts");
    let client = server.client().await;
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for doc in VOLUME_SNAPSHOT_CRDS.split("\n---\n") {
        let crd: CustomResourceDefinition = serde_yaml::from_str(doc).expect("a CRD");
        crds.create(&PostParams::default(), &crd).await.expect("create CRD");
    }
    let classes: Api<DynamicObject> = Api::all_with(client.clone(), &snapshot_api("VolumeSnapshotClass", "volumesnapshotclasses"));
    classes
        .create(
            &PostParams::default(),
            &dynamic(json!({"apiVersion": "snapshot.storage.k8s.io/v1", "kind": "VolumeSnapshotClass",
                "metadata": {"name": "csi"}, "driver": STANDARD_PROVISIONER, "deletionPolicy": "Delete"})),
        )
        .await
        .unwrap();
    let namespaces: Api<Namespace> = Api::all(client.clone());
    for ns in ["app", "movers"] {
        namespaces.create(&PostParams::default(), &serde_json::from_value(json!({"metadata": {"name": ns}})).unwrap()).await.unwrap();
    }
    let request = json!({"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}});
    create_claim(&Api::namespaced(client.clone(), "app"), "db", request.clone()).await;
    std::fs::write(server.volumes_root().join("app").join("db").join("table"), "rows").unwrap();

    // A snapshot in the application's namespace, and its content.
    let app_snapshots: Api<DynamicObject> = Api::namespaced_with(client.clone(), "app", &snapshot_api("VolumeSnapshot", "volumesnapshots"));
    app_snapshots
        .create(
            &PostParams::default(),
            &dynamic(json!({"apiVersion": "snapshot.storage.k8s.io/v1", "kind": "VolumeSnapshot", "metadata": {"name": "s"},
                "spec": {"volumeSnapshotClassName": "csi", "source": {"persistentVolumeClaimName": "db"}}})),
        )
        .await
        .unwrap();
    let status = outcome(&app_snapshots, "s").await;
    let contents: Api<DynamicObject> = Api::all_with(client.clone(), &snapshot_api("VolumeSnapshotContent", "volumesnapshotcontents"));
    let original = contents.get(status["boundVolumeSnapshotContentName"].as_str().unwrap()).await.unwrap();
    let handle = original.data["status"]["snapshotHandle"].as_str().unwrap().to_string();

    // The same handle imported for a snapshot in another namespace.
    let content = |name: &str, ns: &str, snapshot: &str, handle: &str| {
        dynamic(json!({"apiVersion": "snapshot.storage.k8s.io/v1", "kind": "VolumeSnapshotContent", "metadata": {"name": name},
            "spec": {"deletionPolicy": "Delete", "driver": STANDARD_PROVISIONER, "source": {"snapshotHandle": handle},
                "volumeSnapshotRef": {"namespace": ns, "name": snapshot}}}))
    };
    contents.create(&PostParams::default(), &content("imported", "movers", "s", &handle)).await.unwrap();
    assert_eq!(contents.get("imported").await.unwrap().data["status"]["readyToUse"], true);
    let mover_snapshots: Api<DynamicObject> = Api::namespaced_with(client.clone(), "movers", &snapshot_api("VolumeSnapshot", "volumesnapshots"));
    let bound = |name: &str, content: &str| {
        dynamic(json!({"apiVersion": "snapshot.storage.k8s.io/v1", "kind": "VolumeSnapshot", "metadata": {"name": name},
            "spec": {"source": {"volumeSnapshotContentName": content}}}))
    };
    mover_snapshots.create(&PostParams::default(), &bound("s", "imported")).await.unwrap();
    let status = outcome(&mover_snapshots, "s").await;
    assert_eq!(status["readyToUse"], true, "{status}");
    assert_eq!(status["boundVolumeSnapshotContentName"], "imported");

    // A content that names another snapshot, or a handle the driver lacks, does not bind.
    mover_snapshots.create(&PostParams::default(), &bound("thief", "imported")).await.unwrap();
    let status = outcome(&mover_snapshots, "thief").await;
    assert!(status["error"]["message"].as_str().unwrap().contains("is bound to the VolumeSnapshot movers/s, not to movers/thief"), "{status}");
    contents.create(&PostParams::default(), &content("nothing", "movers", "n", "no-such-handle")).await.unwrap();
    assert_eq!(contents.get("nothing").await.unwrap().data["status"]["readyToUse"], false);
    mover_snapshots.create(&PostParams::default(), &bound("n", "nothing")).await.unwrap();
    let status = outcome(&mover_snapshots, "n").await;
    assert!(status["error"]["message"].as_str().unwrap().contains("no-such-handle"), "{status}");

    // The original is let go without its data (Retain, then delete), as a data mover does.
    contents
        .patch(original.metadata.name.as_deref().unwrap(), &kube::api::PatchParams::default(), &kube::api::Patch::Merge(json!({"spec": {"deletionPolicy": "Retain"}})))
        .await
        .unwrap();
    app_snapshots.delete("s", &DeleteParams::default()).await.unwrap();
    contents.delete(original.metadata.name.as_deref().unwrap(), &DeleteParams::default()).await.unwrap();
    let data = server.volumes_root().join(SNAPSHOTS_DIR).join(&handle);
    assert!(data.is_dir(), "the data outlives the original's Retain content");

    // A claim in the other namespace starts as the snapshot.
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), "movers");
    let mut spec = request.clone();
    spec["dataSource"] = json!({"apiGroup": "snapshot.storage.k8s.io", "kind": "VolumeSnapshot", "name": "s"});
    create_claim(&claims, "clone", spec).await;
    assert_eq!(claims.get("clone").await.unwrap().status.unwrap().phase.as_deref(), Some("Bound"));
    assert_eq!(std::fs::read_to_string(server.volumes_root().join("movers").join("clone").join("table")).unwrap(), "rows");

    // Deleting that snapshot deletes its content (Delete) and the data.
    mover_snapshots.delete("s", &DeleteParams::default()).await.unwrap();
    assert!(contents.get_opt("imported").await.unwrap().is_none());
    assert!(!data.exists(), "the data went with the last content");
}
