//! A sample application for end-to-end tests: a namespace `shop` with a Deployment, a
//! StatefulSet with a claim template, a ConfigMap, a Secret, a Service, a custom resource and two
//! volumes, on the API stand-in, protected by an immutable profile on SeaweedFS.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use aws_sdk_s3::types::ObjectLockRetentionMode;
use k10::objectstore::lock::ProtectionPeriod;
use k10::objectstore::s3::S3Storage;
use k10::objectstore::{Credentials, Location, ObjectStore};

use super::apiserver::{ApiServer, ApiServerOptions};
use super::cli::{binary, K10};
use super::s3::{self, Retention, S3Env};
use super::tree;

pub struct Fixture {
    pub server: ApiServer,
    pub k10: K10,
    pub s3: &'static S3Env,
    pub bucket: String,
    pub dir: tempfile::TempDir,
}

const APP: &str = r#"
apiVersion: v1
kind: ConfigMap
metadata: {name: settings, namespace: shop}
data: {mode: "production"}
---
apiVersion: v1
kind: Secret
metadata: {name: creds, namespace: shop}
stringData: {password: "hunter2"}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec:
  selector: {app: web}
  ports: [{port: 80}]
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: data, namespace: shop}
spec:
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 1Gi}}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: www-db-0, namespace: shop, labels: {app: db}}
spec:
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 1Gi}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, image: nginx, volumeMounts: [{name: data, mountPath: /usr/share/nginx/html}]}]
      volumes: [{name: data, persistentVolumeClaim: {claimName: data}}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db, namespace: shop}
spec:
  serviceName: db
  replicas: 1
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec:
      containers: [{name: db, image: postgres, volumeMounts: [{name: www, mountPath: /var/lib/data}]}]
  volumeClaimTemplates:
  - metadata: {name: www}
    spec:
      accessModes: [ReadWriteOnce]
      resources: {requests: {storage: 1Gi}}
---
apiVersion: example.com/v1
kind: Widget
metadata: {name: w1, namespace: shop}
spec: {size: 3}
"#;

const CRD: &str = r#"
apiVersion: v1
kind: Namespace
metadata: {name: shop}
---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.example.com}
spec:
  group: example.com
  names: {kind: Widget, plural: widgets, singular: widget, listKind: WidgetList}
  scope: Namespaced
  versions:
  - name: v1
    served: true
    storage: true
    schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}
"#;

/// What the Widget operator's chart would grant k10 (aggregated into k10-custom-resources).
pub const WIDGETS_FOR_K10: &str = r#"
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: widgets-for-k10
  labels: {k10.kasten.io/aggregate-to-k10: "true"}
rules:
- apiGroups: [example.com]
  resources: [widgets]
  verbs: [get, list, create, delete]
"#;

impl Fixture {
    pub async fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let server = ApiServer::start_in_background(ApiServerOptions {
            k10_binary: Some(binary()),
            volumes_root: dir.path().join("volumes"),
            ..Default::default()
        });
        let s3 = s3::env();
        let admin = K10::new(server.kubeconfig_path())
            .with_env("AWS_ACCESS_KEY_ID", &s3.access_key)
            .with_env("AWS_SECRET_ACCESS_KEY", &s3.secret_key);
        // A cluster admin installs k10; from then on every command acts as k10's own
        // ServiceAccount, under the RBAC install granted it (the stand-in enforces it).
        admin.run(&["install"]).ok();
        let k10 = admin.acting_as_service_account(&server);
        let bucket = s3::unique_bucket("backup");
        s3.create_locked_bucket(&bucket, Some((ObjectLockRetentionMode::Compliance, Retention::Days(60))))
            .await;
        k10.run(&["profile", "create", "immutable", "--bucket", &bucket, "--endpoint", &s3.endpoint, "--immutable", "--protection-period", "30d"])
            .ok();
        let f = Fixture { server, k10, s3, bucket, dir };
        f.kubectl_apply(CRD);
        f.kubectl_apply(WIDGETS_FOR_K10);
        f.kubectl(&["wait", "--for=condition=established", "crd/widgets.example.com"]);
        f.kubectl_apply(APP);
        f
    }

    /// Serves CSI snapshots and a VolumeSnapshotClass for the volumes' driver: from now on the
    /// product reads volumes from snapshot clones, in kasten-io.
    pub fn add_snapshot_class(&self) {
        use super::apiserver::{STANDARD_PROVISIONER, VOLUME_SNAPSHOT_CRDS};
        self.kubectl_apply(VOLUME_SNAPSHOT_CRDS);
        self.kubectl(&["wait", "--for=condition=established", "crd/volumesnapshotclasses.snapshot.storage.k8s.io"]);
        self.kubectl_apply(&format!(
            "apiVersion: snapshot.storage.k8s.io/v1\nkind: VolumeSnapshotClass\nmetadata: {{name: csi}}\ndriver: {STANDARD_PROVISIONER}\ndeletionPolicy: Delete\n"
        ));
    }

    pub fn kubectl(&self, args: &[&str]) -> String {
        let out = Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(self.server.kubeconfig_path())
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "kubectl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn kubectl_apply(&self, yaml: &str) {
        let path = self.dir.path().join("apply.yaml");
        std::fs::write(&path, yaml).unwrap();
        self.kubectl(&["apply", "-f", path.to_str().unwrap()]);
    }

    pub fn volume(&self, claim: &str) -> PathBuf {
        self.server.volumes_root().join("shop").join(claim)
    }

    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut all = args.to_vec();
        all.extend(["-o", "json"]);
        serde_json::from_str(&self.kubectl(&all)).unwrap()
    }

    pub fn storage(&self) -> Arc<S3Storage> {
        let location = Location {
            endpoint: Some(self.s3.endpoint.clone()),
            region: self.s3.region.clone(),
            bucket: self.bucket.clone(),
            skip_ssl_verify: false,
        };
        let credentials = Credentials {
            access_key_id: self.s3.access_key.clone(),
            secret_access_key: self.s3.secret_key.clone(),
        };
        Arc::new(S3Storage::new(
            ObjectStore::connect(&location, &credentials).unwrap(),
            Some(ProtectionPeriod::from_days(30).unwrap()),
        ))
    }

    /// The namespace's volume directories, copied aside (a deleted namespace loses them).
    pub fn save_volumes(&self, name: &str) -> PathBuf {
        let copy = self.dir.path().join(name);
        let status = Command::new("cp").arg("-a").arg(self.server.volumes_root().join("shop")).arg(&copy).status().unwrap();
        assert!(status.success());
        copy
    }

    /// The restore point contents, oldest first.
    pub fn contents(&self) -> Vec<serde_json::Value> {
        let mut items: Vec<serde_json::Value> = self.json(&["get", "restorepointcontents.apps.kio.kasten.io"])["items"]
            .as_array()
            .unwrap()
            .clone();
        items.sort_by_key(|c| c["spec"]["endTime"].as_str().unwrap().to_string());
        items
    }

    pub fn password(&self, secret: &str) -> String {
        let s = self.json(&["get", "secret", secret, "-n", "kasten-io"]);
        let b64 = s["data"]["password"].as_str().unwrap();
        let out = Command::new("base64").arg("-d").stdin(std::process::Stdio::piped()).stdout(std::process::Stdio::piped()).spawn().unwrap();
        use std::io::Write;
        out.stdin.as_ref().unwrap().write_all(b64.as_bytes()).unwrap();
        String::from_utf8(out.wait_with_output().unwrap().stdout).unwrap()
    }
}

/// Application data: the big file, thousands of small ones, an empty file, a symlink, modes.
pub fn fill(data: &Path, www: &Path) {
    tree::small(data);
    std::fs::write(data.join("big.bin"), tree::noise(42, 100 * 1024 * 1024)).unwrap();
    let many = www.join("many");
    std::fs::create_dir_all(&many).unwrap();
    for i in 0..3000 {
        std::fs::write(many.join(format!("f{i:04}.txt")), format!("row {i}\n").repeat(i % 7 + 1)).unwrap();
    }
    std::fs::write(www.join("empty"), b"").unwrap();
}

