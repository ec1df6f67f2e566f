//! The worst-case drill: the immutable-backup workflow, the comprehensive breach it guards
//! against, and the recovery — every step printed with its timing, ending with the figures a user
//! plans with. `tests/drill.sh` runs it (the README's main command); `tests/drill.rs` runs it and
//! its variants with less data.
//!
//! 1. Protect: install, Validate Bucket, an immutable profile (30 days), an application whose
//!    volume a Job fills with sample data (`kubectl-k10 datamover sample`), a policy and an
//!    immutable DR policy, their runs, retention maintenance.
//! 2. Ransomware inside the application encrypts its volume (`kubectl-k10 datamover
//!    drill-encrypt`: every file rewritten with random bytes as NAME.locked); the next scheduled
//!    run backs that up and marks its restore point suspicious; the DR policy runs.
//! 3. Attack with every credential: the tool retires every restore point through its own commands
//!    (and DR records the empty catalog); the cluster loses the application namespace, its restore
//!    points, the policies, the profile and their Secrets; the object store gets a delete marker
//!    and a garbage overwrite on every object, and refuses every attempt to delete a version or to
//!    shorten a lock (the drill counts the refusals).
//! 4. Recover: a new installation, the passphrase Secret, a plain profile on the same bucket,
//!    `kubectl k10 incident` (the attack's first write, checked against the drill's clock, and the
//!    point in time to recover to), the k10restore chart's Job (rendered with the Helm SDK) as of
//!    that time, `restore --last-clean` (the restore point from before the encryption); then every
//!    file is compared byte for byte with the data from before the encryption
//!    (digests taken in the cluster by `kubectl-k10 datamover digest`) and every manifest field by
//!    field.
//!
//! Targets: [`Target::Local`] starts nothing itself but uses the local SeaweedFS (`tests/s3env.sh`)
//! and two Kubernetes API stand-ins (the source cluster, and the new one). [`Target::Real`] uses a
//! cluster from a kubeconfig and an existing object-locked bucket; since the attack destroys, it
//! refuses to start unless `destroy` names the namespace and bucket ("NAMESPACE/BUCKET"), the
//! namespace must not exist, and the cluster must not have a DR policy of its own. There the drill
//! touches only what it creates: the namespace, its restore points, the profiles `drill-immutable`
//! and `drill-recovery`, the policy named after the namespace, the DR policy and their Secrets;
//! and in the bucket only the keys of that namespace's repository and the catalog.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use aws_sdk_s3::primitives::DateTime as S3Time;
use aws_sdk_s3::types::{ObjectLockRetention, ObjectLockRetentionMode};
use bytes::Bytes;
use k10::api::K10_NAMESPACE;
use k10::datamover::tree::TreeDigest;
use k10::k8s::jobs::{Mount, ProductJob};
use k10::objectstore::storage::{Storage, VersionedStorage};

use super::apiserver::{ApiServer, ApiServerOptions};
use super::{helm, s3};

const IMMUTABLE_PROFILE: &str = "drill-immutable";
const RECOVERY_PROFILE: &str = "drill-recovery";
const GARBAGE: &[u8] = b"your data is encrypted; pay up";

/// The application without its workload (which starts once its volume holds data).
const APP: &str = r#"
apiVersion: v1
kind: Namespace
metadata: {name: NS, labels: {pod-security.kubernetes.io/enforce: baseline}}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: settings, namespace: NS}
data: {mode: production}
---
apiVersion: v1
kind: Secret
metadata: {name: creds, namespace: NS}
stringData: {password: hunter2}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: NS}
spec: {selector: {app: web}, ports: [{port: 80}]}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: data, namespace: NS}
spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}
"#;

const WORKLOAD: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: NS}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, image: nginx, volumeMounts: [{name: data, mountPath: /usr/share/nginx/html, readOnly: true}]}]
      volumes: [{name: data, persistentVolumeClaim: {claimName: data}}]
"#;

/// The application after the restore: a pod of a non-root user (as the sample's owner of
/// `sub/deeper`), restricted as Pod Security's strictest level requires, writes to its volume.
const APP_WRITES: &str = r#"
apiVersion: batch/v1
kind: Job
metadata: {name: app-writes, namespace: NS}
spec:
  backoffLimit: 0
  ttlSecondsAfterFinished: 3600
  template:
    spec:
      restartPolicy: Never
      securityContext: {runAsUser: UID, runAsGroup: GID, runAsNonRoot: true, seccompProfile: {type: RuntimeDefault}}
      containers:
      - name: app
        image: IMAGE
        command: [kubectl-k10, datamover, writable, --path, /data/sub/deeper]
        securityContext: {allowPrivilegeEscalation: false, capabilities: {drop: [ALL]}}
        volumeMounts: [{name: data, mountPath: /data}]
      volumes: [{name: data, persistentVolumeClaim: {claimName: data}}]
"#;

/// The Pod Security levels the drill's namespaces enforce: the product's own pods the strictest.
const KASTEN_IO_LEVEL: &str = "pod-security.kubernetes.io/enforce=restricted";

/// Where the drill runs.
#[derive(Debug, Clone)]
pub enum Target {
    /// The local SeaweedFS (buckets made by the drill) and two Kubernetes API stand-ins.
    Local,
    Real(Real),
}

/// An existing cluster and object-locked bucket.
#[derive(Debug, Clone)]
pub struct Real {
    /// The source cluster (None: kubectl's default, `KUBECONFIG` or `~/.kube/config`).
    pub kubeconfig: Option<PathBuf>,
    /// The cluster to recover into (None: the source cluster, once the attack has emptied it).
    pub recovery_kubeconfig: Option<PathBuf>,
    pub bucket: String,
    pub endpoint: Option<String>,
    pub region: String,
    pub skip_ssl_verify: bool,
    pub access_key: String,
    pub secret_key: String,
    /// What the user allows the attack to destroy: "NAMESPACE/BUCKET".
    pub destroy: Option<String>,
}

/// Which point in time the recovery asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecoverTo {
    /// Between the last good DR run and the attack's: the catalog comes back.
    BeforeAttack,
    /// After the tool's attack (DR recorded the empty catalog), before the cluster's and the
    /// store's: the empty catalog comes back, with a warning naming an earlier time.
    AfterRetirement,
    /// After the attack: the catalog is gone, and the drill fails saying to choose an earlier time.
    AfterAttack,
}

#[derive(Debug, Clone)]
pub struct Options {
    pub target: Target,
    pub namespace: String,
    pub mib: usize,
    pub recover_to: RecoverTo,
    /// Whether the new installation gets the DR passphrase Secret (without it, recovery is refused).
    pub passphrase_on_recovery: bool,
}

impl Options {
    pub fn local(mib: usize) -> Options {
        Options {
            target: Target::Local,
            namespace: "shop".into(),
            mib,
            recover_to: RecoverTo::BeforeAttack,
            passphrase_on_recovery: true,
        }
    }
}

/// Why the drill did not get to the end.
#[derive(Debug)]
pub enum DrillError {
    /// Refused before anything was created (e.g. the attack was not allowed).
    Refused(String),
    Failed(String),
}

impl std::fmt::Display for DrillError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DrillError::Refused(m) => write!(f, "refused: {m}"),
            DrillError::Failed(m) => f.write_str(m),
        }
    }
}

impl From<String> for DrillError {
    fn from(m: String) -> DrillError {
        DrillError::Failed(m)
    }
}

impl From<&str> for DrillError {
    fn from(m: &str) -> DrillError {
        DrillError::Failed(m.to_string())
    }
}

/// What the drill verified and measured (the program prints it; the tests check it).
#[derive(Debug, Clone)]
#[allow(dead_code)]
pub struct Summary {
    /// What the backup captured.
    pub logical_bytes: u64,
    pub files: u64,
    pub bytes: u64,
    pub manifests: usize,
    /// Restore points retired by the attacker that the recovered catalog brought back.
    pub restore_points_recovered: usize,
    pub backup_seconds: f64,
    pub stored_bytes: u64,
    pub recovery_seconds: f64,
}

/// The attack is allowed only on the namespace and bucket the user named.
pub fn check_allowed(target: &Target, namespace: &str) -> Result<(), DrillError> {
    let Target::Real(real) = target else {
        return Ok(());
    };
    let wanted = format!("{namespace}/{}", real.bucket);
    match &real.destroy {
        Some(given) if *given == wanted => Ok(()),
        Some(given) => Err(DrillError::Refused(format!(
            "--destroy {given} does not name what this drill would destroy ({wanted}); nothing was done"
        ))),
        None => Err(DrillError::Refused(format!(
            "the drill attacks what it protects: it deletes namespace {namespace:?} and its backups' catalog, and hides every k10 object of this cluster's namespace and catalog in bucket {:?} behind delete markers and garbage overwrites (locked versions survive, and stay billed until their locks expire). To allow it, pass --destroy {wanted}; nothing was done",
            real.bucket
        ))),
    }
}

struct Cluster {
    _server: Option<ApiServer>,
    kubeconfig: Option<PathBuf>,
    /// Once k10 is installed on the stand-in, `kubectl k10` acts as `kasten-io/k10` under the
    /// RBAC install granted (kubectl, the drill's admin, keeps `kubeconfig`).
    k10_kubeconfig: std::sync::OnceLock<PathBuf>,
    binary: PathBuf,
    access_key: String,
    secret_key: String,
}

impl Cluster {
    fn standin(binary: &Path, volumes: PathBuf, uid: Option<&str>, keys: (&str, &str)) -> Result<Cluster, String> {
        let server = ApiServer::try_start_in_background(ApiServerOptions {
            k10_binary: Some(binary.to_path_buf()),
            volumes_root: volumes,
            default_namespace_uid: uid.map(str::to_string),
            ..Default::default()
        })
        .map_err(|e| format!("cannot start the Kubernetes API stand-in: {e}"))?;
        Ok(Cluster {
            kubeconfig: Some(server.kubeconfig_path().to_path_buf()),
            k10_kubeconfig: Default::default(),
            _server: Some(server),
            binary: binary.to_path_buf(),
            access_key: keys.0.to_string(),
            secret_key: keys.1.to_string(),
        })
    }

    fn existing(binary: &Path, kubeconfig: Option<PathBuf>, keys: (&str, &str)) -> Cluster {
        Cluster {
            _server: None,
            kubeconfig,
            k10_kubeconfig: Default::default(),
            binary: binary.to_path_buf(),
            access_key: keys.0.to_string(),
            secret_key: keys.1.to_string(),
        }
    }

    fn describe(&self) -> String {
        match (&self._server, &self.kubeconfig) {
            (Some(s), _) => format!("the Kubernetes API stand-in at {}", s.url()),
            (None, Some(k)) => format!("the cluster of {}", k.display()),
            (None, None) => "kubectl's current cluster".into(),
        }
    }

    async fn api(&self) -> Result<k10::k8s::Cluster, String> {
        k10::k8s::ClusterOptions {
            kubeconfig: self.kubeconfig.clone(),
            ..Default::default()
        }
        .connect()
        .await
        .map_err(|e| e.to_string())
    }

    fn command(&self, program: &Path) -> Command {
        let mut c = Command::new(program);
        if let Some(k) = &self.kubeconfig {
            c.env("KUBECONFIG", k);
        }
        c
    }

    /// `kubectl k10 install` as the cluster's admin; on the stand-in, every later `kubectl k10`
    /// acts as `kasten-io/k10`.
    fn install_k10(&self) -> Result<String, String> {
        let out = self.k10(&["install"], false)?;
        if let Some(server) = &self._server {
            let kubeconfig = server
                .service_account_kubeconfig(K10_NAMESPACE, "k10")
                .map_err(|e| format!("cannot write kasten-io/k10's kubeconfig: {e}"))?;
            println!("     (from now on `kubectl k10` acts as the ServiceAccount kasten-io/k10)");
            let _ = self.k10_kubeconfig.set(kubeconfig);
        }
        Ok(out)
    }

    /// `kubectl k10 …`: must succeed, or must fail when `refused`. Its stdout and stderr are shown
    /// interleaved, as on a terminal.
    fn k10(&self, args: &[&str], refused: bool) -> Result<String, String> {
        use std::io::Read;
        let fail = |e: std::io::Error| format!("cannot run {}: {e}", self.binary.display());
        let (mut reader, writer) = std::io::pipe().map_err(fail)?;
        let mut command = self.command(&self.binary);
        if let Some(k) = self.k10_kubeconfig.get() {
            command.env("KUBECONFIG", k);
        }
        let mut child = command
            .args(args)
            .env("AWS_ACCESS_KEY_ID", &self.access_key)
            .env("AWS_SECRET_ACCESS_KEY", &self.secret_key)
            .env("RUST_BACKTRACE", "0")
            .stdout(writer.try_clone().map_err(fail)?)
            .stderr(writer)
            .spawn()
            .map_err(fail)?;
        // The Command keeps its copies of the pipe's writer: the read below ends only once they are gone.
        drop(command);
        let mut text = String::new();
        reader.read_to_string(&mut text).map_err(fail)?;
        let status = child.wait().map_err(fail)?;
        println!("     $ kubectl k10 {}", args.join(" "));
        for line in text.lines() {
            println!("       {line}");
        }
        match (status.success(), refused) {
            (true, false) | (false, true) => Ok(text),
            (true, true) => Err(format!("`kubectl k10 {}` should have been refused", args.join(" "))),
            (false, false) => Err(format!("`kubectl k10 {}` failed", args.join(" "))),
        }
    }

    /// `kubectl k10 … -o json`, parsed (the command is shown, its output is not).
    fn k10_json(&self, args: &[&str]) -> Result<serde_json::Value, String> {
        let mut command = self.command(&self.binary);
        if let Some(k) = self.k10_kubeconfig.get() {
            command.env("KUBECONFIG", k);
        }
        let out = command
            .args(args)
            .args(["-o", "json"])
            .env("AWS_ACCESS_KEY_ID", &self.access_key)
            .env("AWS_SECRET_ACCESS_KEY", &self.secret_key)
            .output()
            .map_err(|e| format!("cannot run {}: {e}", self.binary.display()))?;
        println!("     $ kubectl k10 {} -o json", args.join(" "));
        if !out.status.success() {
            return Err(format!("`kubectl k10 {}` failed: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()));
        }
        serde_json::from_slice(&out.stdout).map_err(|e| format!("`kubectl k10 {}` printed no JSON: {e}", args.join(" ")))
    }

    /// `kubectl …`; shown unless `quiet`.
    fn kubectl(&self, args: &[&str], quiet: bool) -> Result<String, String> {
        let out = self
            .command(Path::new("kubectl"))
            .args(args)
            .output()
            .map_err(|e| format!("cannot run kubectl: {e}"))?;
        if !quiet {
            println!("     $ kubectl {}", args.join(" "));
            let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
            for line in text.lines() {
                println!("       {line}");
            }
        }
        if !out.status.success() {
            return Err(format!("`kubectl {}` failed: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    fn json(&self, args: &[&str]) -> Result<serde_json::Value, String> {
        let mut all = args.to_vec();
        all.extend(["-o", "json"]);
        serde_json::from_str(&self.kubectl(&all, true)?).map_err(|e| format!("kubectl {args:?}: {e}"))
    }

    /// Whether objects exist; a resource type the cluster does not serve has none. Any other
    /// failure is an error: a check that cannot be made never passes.
    fn exists(&self, args: &[&str]) -> Result<bool, String> {
        let mut all = args.to_vec();
        all.extend(["--ignore-not-found", "-o", "name"]);
        match self.kubectl(&all, true) {
            Ok(out) => Ok(!out.trim().is_empty()),
            Err(e) if e.contains("the server doesn't have a resource type") => Ok(false),
            Err(e) => Err(format!("cannot check {}: {e}", self.describe())),
        }
    }

    /// Creates the DR passphrase Secret through the API (never on a command line).
    async fn create_passphrase_secret(&self, passphrase: &str) -> Result<(), String> {
        use k8s_openapi::api::core::v1::Secret;
        let api = self.api().await?;
        let secret = Secret {
            metadata: kube::api::ObjectMeta {
                name: Some(k10::dr::DEFAULT_PASSPHRASE_SECRET.into()),
                namespace: Some("kasten-io".into()),
                ..Default::default()
            },
            string_data: Some(BTreeMap::from([("key".to_string(), passphrase.to_string())])),
            ..Default::default()
        };
        kube::Api::<Secret>::namespaced(api.client.clone(), "kasten-io")
            .create(&kube::api::PostParams::default(), &secret)
            .await
            .map_err(|e| format!("cannot create Secret kasten-io/{}: {e}", k10::dr::DEFAULT_PASSPHRASE_SECRET))?;
        println!("     secret/{} created (the passphrase stays with the drill)", k10::dr::DEFAULT_PASSPHRASE_SECRET);
        Ok(())
    }

    /// Refuses a cluster where the drill could touch what is not its own: its namespace, or any
    /// k10 catalog (a DR run would export it, and the recovery copy it).
    fn preflight(&self, namespace: &str) -> Result<(), DrillError> {
        let refuse = |what: String| DrillError::Refused(format!("{}: {what}; nothing was done", self.describe()));
        if self.exists(&["get", "namespace", namespace])? {
            return Err(refuse(format!("namespace {namespace:?} exists, and the drill creates and destroys its namespace: choose another with --namespace")));
        }
        let catalog = [
            ("profiles.config.kio.kasten.io", true),
            ("policies.config.kio.kasten.io", true),
            ("restorepointcontents.apps.kio.kasten.io", false),
        ];
        for (kind, namespaced) in catalog {
            let args: &[&str] = if namespaced { &["get", kind, "-n", "kasten-io"] } else { &["get", kind] };
            if self.exists(args)? {
                return Err(refuse(format!("it holds k10 {kind} of its own, which the drill's DR runs would export and its recovery copy: run the drill on a cluster without a k10 catalog")));
            }
        }
        if self.exists(&["get", "secret", k10::dr::DEFAULT_PASSPHRASE_SECRET, "-n", "kasten-io"])? {
            return Err(refuse(format!("Secret kasten-io/{} exists, and the drill sets its own DR passphrase", k10::dr::DEFAULT_PASSPHRASE_SECRET)));
        }
        Ok(())
    }

    /// `kubectl apply -f` of a file written into `dir`; returns the file.
    fn apply(&self, yaml: &str, dir: &Path) -> Result<PathBuf, String> {
        let path = dir.join(format!("apply-{}.yaml", rand_suffix()));
        std::fs::write(&path, yaml).map_err(|e| e.to_string())?;
        self.kubectl(&["apply", "-f", path.to_str().unwrap_or_default()], false).map(|_| path)
    }

    fn uid(&self, namespace: &str) -> Result<String, String> {
        Ok(self.kubectl(&["get", "namespace", namespace, "-o", "jsonpath={.metadata.uid}"], true)?.trim().to_string())
    }

    /// The restore point contents of a namespace (by its UID: contents outlive namespaces), by name.
    fn contents_of(&self, namespace_uid: &str) -> Result<BTreeMap<String, serde_json::Value>, String> {
        let list = self.json(&["get", "restorepointcontents.apps.kio.kasten.io"])?;
        Ok(list["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|c| c["spec"]["sourceNamespaceUid"] == namespace_uid)
            .map(|c| (c["metadata"]["name"].as_str().unwrap_or_default().to_string(), c.clone()))
            .collect())
    }

    /// The node of the pods that mount the application's volume, where a ReadWriteOnce volume
    /// can be mounted again.
    fn volume_node(&self, namespace: &str) -> Result<Option<String>, String> {
        Ok(self.json(&["get", "pods", "-n", namespace])?["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| p["spec"]["volumes"].as_array().is_some_and(|v| v.iter().any(|v| v["persistentVolumeClaim"]["claimName"] == "data")))
            .find_map(|p| p["spec"]["nodeName"].as_str().map(str::to_string)))
    }

    /// Runs `kubectl-k10 <args>` in a Job that mounts the application's volume; returns its output.
    async fn volume_job(&self, namespace: &str, what: &str, args: &[&str], read_only: bool) -> Result<String, String> {
        let api = self.api().await?;
        let node = self.volume_node(namespace)?;
        let job = ProductJob {
            namespace: namespace.to_string(),
            name: format!("drill-{what}-{}", rand_suffix()),
            args: args.iter().map(|a| a.to_string()).collect(),
            secret_env: BTreeMap::new(),
            mount: Some(Mount {
                claim: "data".into(),
                path: "/data".into(),
                read_only,
            }),
            node_name: node,
            labels: BTreeMap::from([("app.kubernetes.io/part-of".to_string(), "k10-drill".to_string())]),
            timeout: Duration::from_secs(900),
            owner: None,
            memory_limit: None,
        };
        println!("     job {namespace}/{}: kubectl-k10 {}", job.name, args.join(" "));
        job.run(&api).await.map_err(|e| e.to_string())
    }

    async fn digest(&self, namespace: &str) -> Result<TreeDigest, String> {
        let log = self.volume_job(namespace, "digest", &["datamover", "digest", "--path", "/data"], true).await?;
        let line = log.lines().rev().find(|l| l.starts_with('{')).ok_or_else(|| format!("the digest Job printed no digest: {log}"))?;
        serde_json::from_str(line).map_err(|e| format!("the digest Job's output does not parse: {e}"))
    }

    /// Waits for a Job to complete; its failure is an error with its log.
    fn wait_job(&self, namespace: &str, name: &str) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(600);
        loop {
            let job = self.json(&["get", "job", name, "-n", namespace])?;
            let is = |kind: &str| job["status"]["conditions"].as_array().into_iter().flatten().any(|c| c["type"] == kind && c["status"] == "True");
            if is("Complete") {
                return Ok(());
            }
            if is("Failed") {
                let log = self.kubectl(&["logs", &format!("job/{name}"), "-n", namespace], false).unwrap_or_default();
                let last = log.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("no output").trim();
                return Err(format!("the Job {namespace}/{name} failed: {last}"));
            }
            if Instant::now() > deadline {
                return Err(format!("the Job {namespace}/{name} did not finish in 600 s"));
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// The application's manifests, stripped of what the server sets, by kind/name.
    fn manifests(&self, namespace: &str) -> Result<BTreeMap<String, serde_json::Value>, String> {
        let list = self.json(&["get", "configmaps,secrets,services,persistentvolumeclaims,deployments.apps", "-n", namespace])?;
        let mut out = BTreeMap::new();
        for mut item in list["items"].as_array().cloned().unwrap_or_default() {
            let kind = item["kind"].as_str().unwrap_or_default().to_string();
            let name = item["metadata"]["name"].as_str().unwrap_or_default().to_string();
            // What the cluster makes in every namespace, and the drill's own passing objects.
            if name == "kube-root-ca.crt" || name.starts_with("drill-") || item["type"] == "kubernetes.io/service-account-token" {
                continue;
            }
            let (group, plural) = match kind.as_str() {
                "Deployment" => ("apps", "deployments"),
                "PersistentVolumeClaim" => ("", "persistentvolumeclaims"),
                "Service" => ("", "services"),
                "Secret" => ("", "secrets"),
                _ => ("", "configmaps"),
            };
            k10::restore::strip::server_fields(&mut item, group, plural, namespace);
            out.insert(format!("{kind}/{name}"), item);
        }
        Ok(out)
    }

    /// Deletes what the drill made in this cluster: the namespace, its restore points and their
    /// contents, the policy and the DR policy, the profiles and the Secrets
    /// they use, and the objects of the k10restore chart (`chart`, when it was applied).
    fn delete_drill_objects(&self, namespace: &str, namespace_uid: Option<&str>, chart: Option<&Path>) -> Result<(), String> {
        let delete = |kind: &str, name: &str, ns: Option<&str>| -> Result<(), String> {
            let mut get = vec!["get", kind, name];
            if let Some(ns) = ns {
                get.extend(["-n", ns]);
            }
            if self.exists(&get)? {
                get[0] = "delete";
                self.kubectl(&get, false)?;
            }
            Ok(())
        };
        delete("namespace", namespace, None)?;
        if let Some(uid) = namespace_uid {
            for name in self.contents_of(uid)?.keys() {
                delete("restorepointcontents.apps.kio.kasten.io", name, None)?;
            }
        }
        for policy in [namespace, k10::dr::DR_POLICY] {
            delete("policies.config.kio.kasten.io", policy, Some("kasten-io"))?;
        }
        let mut secrets = vec![k10::dr::DEFAULT_PASSPHRASE_SECRET.to_string()];
        secrets.extend(namespace_uid.map(k10::backup::password_secret_name));
        for profile in [IMMUTABLE_PROFILE, RECOVERY_PROFILE] {
            if self.exists(&["get", "profiles.config.kio.kasten.io", profile, "-n", "kasten-io"])? {
                let p = self.json(&["get", "profiles.config.kio.kasten.io", profile, "-n", "kasten-io"])?;
                if let Some(s) = p["spec"]["locationSpec"]["credential"]["secret"]["name"].as_str() {
                    secrets.push(s.to_string());
                }
                delete("profiles.config.kio.kasten.io", profile, Some("kasten-io"))?;
            }
        }
        for s in &secrets {
            delete("secret", s, Some("kasten-io"))?;
        }
        if let Some(chart) = chart {
            self.kubectl(&["delete", "--ignore-not-found", "-f", chart.to_str().unwrap_or_default()], false)?;
        }
        Ok(())
    }
}

fn rand_suffix() -> String {
    let mut b = [0u8; 4];
    getrandom::fill(&mut b).unwrap_or_default();
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// "… stored at 2026-11-30T04:50:06Z in …" of `kubectl k10 dr run`.
fn stored_at(run: &str) -> Result<chrono::DateTime<chrono::Utc>, String> {
    let t = run.split("stored at ").nth(1).and_then(|r| r.split_whitespace().next()).ok_or("`dr run` printed no store time")?;
    chrono::DateTime::parse_from_rfc3339(t).map(|t| t.to_utc()).map_err(|e| format!("`dr run` store time {t}: {e}"))
}

/// A store time with all its precision (what `incident` prints and `--point-in-time` takes).
fn dr_time(t: chrono::DateTime<chrono::Utc>) -> String {
    k10::dr::rfc3339(t)
}

fn secs(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

struct Steps {
    n: usize,
    since: Instant,
}

impl Steps {
    fn start(&mut self, what: &str) {
        self.n += 1;
        self.since = Instant::now();
        println!("\n[{:>2}] {what}", self.n);
    }
    fn done(&self) {
        println!("     ({:.2} s)", self.since.elapsed().as_secs_f64());
    }
}

/// The bucket the drill protects into, and how to reach it.
struct Bucket {
    name: String,
    endpoint: Option<String>,
    region: String,
    skip_ssl_verify: bool,
    store: k10::objectstore::ObjectStore,
}

impl Bucket {
    fn connect(name: &str, endpoint: Option<String>, region: &str, skip_ssl_verify: bool, keys: (&str, &str)) -> Result<Bucket, String> {
        let location = k10::objectstore::Location {
            endpoint: endpoint.clone(),
            region: region.to_string(),
            bucket: name.to_string(),
            skip_ssl_verify,
        };
        let credentials = k10::objectstore::Credentials {
            access_key_id: keys.0.to_string(),
            secret_access_key: keys.1.to_string(),
        };
        let store = k10::objectstore::ObjectStore::connect(&location, &credentials).map_err(|e| e.to_string())?;
        Ok(Bucket {
            name: name.to_string(),
            endpoint,
            region: region.to_string(),
            skip_ssl_verify,
            store,
        })
    }

    fn storage(&self) -> k10::objectstore::s3::S3Storage {
        k10::objectstore::s3::S3Storage::new(self.store.clone(), None)
    }

    /// `--bucket … [--endpoint …] [--region …] [--skip-ssl-verify]` for `profile create|validate`.
    fn args(&self) -> Vec<String> {
        let mut a = vec!["--bucket".to_string(), self.name.clone(), "--region".into(), self.region.clone()];
        if let Some(e) = &self.endpoint {
            a.extend(["--endpoint".into(), e.clone()]);
        }
        if self.skip_ssl_verify {
            a.push("--skip-ssl-verify".into());
        }
        a
    }
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// What the drill works on, checked before anything is written.
struct Setup {
    source: Cluster,
    /// The cluster to recover into (None: a new stand-in, made when the recovery starts).
    recovery: Option<Cluster>,
    bucket: Bucket,
    /// Versions in the bucket from before this drill, which its attack leaves alone.
    earlier_versions: HashSet<(String, String)>,
    /// When this drill began (what an earlier drill did to the bucket is before it).
    began: chrono::DateTime<chrono::Utc>,
}

/// What the drill made so far, for the clean-up of a real target.
#[derive(Default)]
struct Made {
    cluster_id: Option<String>,
    namespace_uid: Option<String>,
    /// The applied k10restore chart.
    chart: Option<PathBuf>,
}

/// The prefixes of the bucket the drill writes to and attacks.
fn drill_prefixes(cluster_id: &str, namespace_uid: Option<&str>) -> Vec<String> {
    let root = k10::repo::layout::cluster_root(cluster_id);
    let mut prefixes = vec![k10::repo::layout::catalog_repository(cluster_id), format!("{root}maintenance/catalog/")];
    if let Some(uid) = namespace_uid {
        prefixes.extend([k10::repo::layout::app_repository(cluster_id, uid), format!("{root}maintenance/repos/{uid}/")]);
    }
    prefixes
}

pub async fn run(binary: &Path, options: &Options) -> Result<Summary, DrillError> {
    check_allowed(&options.target, &options.namespace)?;
    let began = Instant::now();
    let began_at = chrono::Utc::now();
    let work = tempfile::tempdir().map_err(|e| e.to_string())?;
    let setup = match &options.target {
        Target::Local => {
            let env = s3::env();
            let keys = (env.access_key.as_str(), env.secret_key.as_str());
            Setup {
                source: Cluster::standin(binary, work.path().join("source-volumes"), None, keys)?,
                recovery: None,
                bucket: Bucket::connect(&s3::unique_bucket("drill"), Some(env.endpoint.clone()), &env.region, false, keys)?,
                earlier_versions: HashSet::new(),
                began: began_at,
            }
        }
        Target::Real(real) => {
            let keys = (real.access_key.as_str(), real.secret_key.as_str());
            let source = Cluster::existing(binary, real.kubeconfig.clone(), keys);
            source.preflight(&options.namespace)?;
            let recovery = match &real.recovery_kubeconfig {
                Some(k) => {
                    let c = Cluster::existing(binary, Some(k.clone()), keys);
                    c.preflight(&options.namespace)?;
                    c
                }
                None => Cluster::existing(binary, real.kubeconfig.clone(), keys),
            };
            let bucket = Bucket::connect(&real.bucket, real.endpoint.clone(), &real.region, real.skip_ssl_verify, keys)?;
            let cluster_id = source.uid("default")?;
            let store = bucket.storage();
            let mut earlier_versions = HashSet::new();
            for prefix in drill_prefixes(&cluster_id, None) {
                if !store.list(&prefix).await.map_err(|e| e.to_string())?.is_empty() {
                    return Err(DrillError::Refused(format!("bucket {:?} holds a k10 catalog of this cluster under {prefix}, which the drill would attack: use another bucket; nothing was done", bucket.name)));
                }
                let versions = store.list_versions(&prefix).await.map_err(|e| e.to_string())?;
                earlier_versions.extend(versions.into_iter().map(|v| (v.key, v.version_id)));
            }
            Setup {
                source,
                recovery: Some(recovery),
                bucket,
                earlier_versions,
                began: began_at,
            }
        }
    };
    let mut made = Made::default();
    let mut result = drill(binary, options, &setup, &mut made, work.path()).await;
    if let Target::Real(_) = options.target {
        if let Err(e) = clean_up(&setup, &made, &options.namespace).await {
            println!("     clean-up incomplete: {e}");
            if result.is_ok() {
                result = Err(format!("the drill passed, but its clean-up failed: {e}").into());
            }
        }
    }
    let summary = result?;
    println!(
        "\nbackup: {:.1} MiB at {:.1} MiB/s; stored after dedup and compression: {:.1} MiB ({:.0}%)",
        mib(summary.logical_bytes),
        mib(summary.logical_bytes) / summary.backup_seconds,
        mib(summary.stored_bytes),
        100.0 * summary.stored_bytes as f64 / summary.logical_bytes.max(1) as f64
    );
    println!("recovery time (RTO): {:.1} s; drill {:.1} s", summary.recovery_seconds, began.elapsed().as_secs_f64());
    println!("recovered: {} files, {} bytes, {} manifests identical", summary.files, summary.bytes, summary.manifests);
    Ok(summary)
}

/// Removes what the drill made on a real target, whether it passed or not: its objects in both
/// clusters, and delete markers over its keys in the bucket (locked versions stay until their
/// locks expire; nothing is shortened).
async fn clean_up(setup: &Setup, made: &Made, namespace: &str) -> Result<(), String> {
    println!("\n[--] CLEAN UP: what the drill made in the cluster(s), and delete markers over its keys in the bucket");
    let uid = made.namespace_uid.as_deref();
    let mut first_error = None;
    let recovery = setup.recovery.as_ref().filter(|r| r.kubeconfig != setup.source.kubeconfig);
    if let Err(e) = setup.source.delete_drill_objects(namespace, uid, if recovery.is_none() { made.chart.as_deref() } else { None }) {
        first_error.get_or_insert(e);
    }
    if let Some(r) = recovery {
        if let Err(e) = r.delete_drill_objects(namespace, uid, made.chart.as_deref()) {
            first_error.get_or_insert(e);
        }
    }
    if let Some(cluster_id) = &made.cluster_id {
        let store = setup.bucket.storage();
        let mut marked = 0;
        for prefix in drill_prefixes(cluster_id, uid) {
            for o in store.list(&prefix).await.map_err(|e| e.to_string())? {
                store.delete(&o.key).await.map_err(|e| e.to_string())?;
                marked += 1;
            }
        }
        println!("     {marked} keys hidden behind delete markers");
    }
    first_error.map_or(Ok(()), Err)
}

async fn drill(binary: &Path, options: &Options, setup: &Setup, made: &mut Made, work: &Path) -> Result<Summary, DrillError> {
    let ns = options.namespace.as_str();
    let (source, bucket) = (&setup.source, &setup.bucket);
    let keys = (source.access_key.clone(), source.secret_key.clone());
    let passphrase = format!("drill-{}{}", rand_suffix(), rand_suffix());
    let mut s = Steps { n: 0, since: Instant::now() };
    println!(
        "k10 drill: {} MiB in namespace {ns}; object store {} bucket {}; Kubernetes: {}",
        options.mib,
        bucket.endpoint.as_deref().unwrap_or("AWS S3"),
        bucket.name,
        source.describe()
    );

    s.start("PROTECT: install k10 (kasten-io enforcing Pod Security restricted, the application's namespace baseline)");
    source.install_k10()?;
    source.kubectl(&["label", "namespace", K10_NAMESPACE, KASTEN_IO_LEVEL, "--overwrite"], false)?;
    s.done();

    if let Target::Local = options.target {
        s.start("Buckets: one with Object Lock (COMPLIANCE, 60-day default retention), one without");
        let env = s3::env();
        env.create_locked_bucket(&bucket.name, Some((ObjectLockRetentionMode::Compliance, s3::Retention::Days(60)))).await;
        let plain = s3::unique_bucket("drill-plain");
        env.create_plain_bucket(&plain).await;
        println!("     locked: {}\n     plain:  {plain}", bucket.name);
        s.done();
        s.start("Validate Bucket: the bucket without Object Lock is refused, the locked one passes");
        source.k10(&["profile", "validate", "--bucket", &plain, "--endpoint", &env.endpoint], true)?;
    } else {
        s.start("Validate Bucket: the bucket must have Object Lock with a COMPLIANCE default retention of >= 21 days");
    }
    source.k10(&[&["profile", "validate"][..], &strs(&bucket.args())].concat(), false)?;
    s.done();

    s.start("An immutable profile with a 30-day protection period");
    let bucket_args = bucket.args();
    let create = [&["profile", "create", IMMUTABLE_PROFILE][..], &strs(&bucket_args), &["--immutable", "--protection-period", "30d"]].concat();
    source.k10(&create, false)?;
    source.k10(&["profile", "get", IMMUTABLE_PROFILE], false)?;
    s.done();

    s.start(&format!("The application: namespace {ns}, a Job writes {} MiB of sample data into its volume", options.mib));
    source.apply(&APP.replace("NS", ns), work)?;
    let mib_arg = options.mib.to_string();
    source.volume_job(ns, "sample", &["datamover", "sample", "--path", "/data", "--mib", &mib_arg], false).await?;
    let original = source.digest(ns).await?;
    println!("     the volume: {} files, {} bytes", original.files, original.bytes);
    source.apply(&WORKLOAD.replace("NS", ns), work)?;
    let original_manifests = source.manifests(ns)?;
    let cluster_id = source.uid("default")?;
    let namespace_uid = source.uid(ns)?;
    made.cluster_id = Some(cluster_id.clone());
    made.namespace_uid = Some(namespace_uid.clone());
    s.done();

    s.start("A backup policy and an immutable DR policy (passphrase in kasten-io/k10-dr-secret)");
    source.create_passphrase_secret(&passphrase).await?;
    source.k10(&["policy", "create", ns, "--namespaces", ns, "--profile", IMMUTABLE_PROFILE, "--frequency", "@hourly", "--retention", "hourly=24,daily=7", "--require-immutable"], false)?;
    source.k10(&["dr", "enable", "--profile", IMMUTABLE_PROFILE, "--frequency", "@hourly"], false)?;
    s.done();

    s.start("Run the policy, then the DR policy, then retention maintenance");
    let backup_began = Instant::now();
    source.k10(&["policy", "run", ns, "--wait"], false)?;
    let backup_seconds = backup_began.elapsed().as_secs_f64();
    source.k10(&["dr", "run"], false)?;
    source.k10(&["maintenance", "run", "--profile", IMMUTABLE_PROFILE], false)?;
    source.k10(&["restorepoint", "list", "-n", ns], false)?;
    let contents = source.contents_of(&namespace_uid)?;
    if contents.is_empty() {
        return Err("the policy run made no restore point".into());
    }
    let logical: u64 = contents.values().filter_map(|c| c["spec"]["logicalBytes"].as_u64()).sum();
    let uploaded: u64 = contents.values().filter_map(|c| c["spec"]["uploadedBytes"].as_u64()).sum();
    let repository = k10::repo::layout::app_repository(&cluster_id, &namespace_uid);
    let store = bucket.storage();
    let stored: u64 = store.list(&repository).await.map_err(|e| e.to_string())?.iter().map(|o| o.size).sum();
    println!(
        "     backup: {:.1} MiB in {backup_seconds:.1} s ({:.1} MiB/s), {:.1} MiB uploaded; stored after dedup and compression: {:.1} MiB ({:.0}% of the data)",
        mib(logical),
        mib(logical) / backup_seconds,
        mib(uploaded),
        mib(stored),
        100.0 * stored as f64 / logical.max(1) as f64
    );
    s.done();

    s.start("ATTACK, the application: ransomware inside it encrypts its volume (every file rewritten with random bytes as NAME.locked)");
    source.volume_job(ns, "ransomware", &["datamover", "drill-encrypt", "--path", "/data", "--destroy-data"], false).await?;
    s.done();
    s.start("The next scheduled run backs the encrypted data up (a schedule's Job runs `policy run --wait`), then the DR policy runs");
    source.k10(&["policy", "run", ns, "--wait"], false)?;
    let contents = source.contents_of(&namespace_uid)?;
    let (clean, marked): (Vec<&serde_json::Value>, Vec<&serde_json::Value>) = contents.values().partition(|c| c["spec"]["suspicious"].is_null());
    let [marked] = marked[..] else {
        return Err(format!("the restore point of the encrypted data was not marked suspicious (exactly one should be): {} of {} are", marked.len(), contents.len()).into());
    };
    let rp_name = |c: &serde_json::Value| c["spec"]["restorePointRef"]["name"].as_str().unwrap_or_default().to_string();
    let last_clean = clean.iter().map(|c| rp_name(c)).max().ok_or("no restore point from before the encryption")?;
    println!("     restore point {} is suspicious: {}", rp_name(marked), marked["spec"]["suspicious"].as_str().unwrap_or_default());
    let good_dr = stored_at(&source.k10(&["dr", "run"], false)?)?;
    source.k10(&["restorepoint", "list", "-n", ns], false)?;
    s.done();
    // The point in time to recover to: after the good DR run (store time), before the attack.
    let point_in_time = good_dr + chrono::Duration::seconds(1);
    tokio::time::sleep(Duration::from_millis(2100)).await;

    s.start("ATTACK, the tool: retire every restore point through k10 itself, then let DR record the empty catalog");
    let attack_began = chrono::Utc::now();
    for c in contents.values() {
        let rp = c["spec"]["restorePointRef"]["name"].as_str().unwrap_or_default();
        source.k10(&["restorepoint", "retire", rp, "-n", ns], false)?;
    }
    let first_retired = chrono::Utc::now();
    let attack_dr = stored_at(&source.k10(&["dr", "run"], false)?)?;
    // Store times have whole seconds: the rest of the attack comes after a point in time just
    // after this DR run.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    s.done();

    s.start(&format!("ATTACK, the cluster: delete namespace {ns}, its restore points, the policies, the profile and their Secrets"));
    source.delete_drill_objects(ns, Some(&namespace_uid), None)?;
    s.done();

    s.start("ATTACK, the object store: a delete marker and a garbage overwrite on every object; delete every version, shorten every lock");
    let mut genuine = Vec::new();
    let mut objects = Vec::new();
    for prefix in drill_prefixes(&cluster_id, Some(&namespace_uid)) {
        let versions = store.list_versions(&prefix).await.map_err(|e| e.to_string())?;
        // Only what this drill wrote: earlier versions are none of its business.
        genuine.extend(versions.into_iter().filter(|v| !v.delete_marker && !setup.earlier_versions.contains(&(v.key.clone(), v.version_id.clone()))));
        objects.extend(store.list(&prefix).await.map_err(|e| e.to_string())?);
    }
    for o in &objects {
        store.delete(&o.key).await.map_err(|e| e.to_string())?;
        store.put(&o.key, Bytes::from_static(GARBAGE)).await.map_err(|e| e.to_string())?;
    }
    println!("     {} objects hidden behind delete markers and overwritten with garbage", objects.len());
    // When the attack's last write reached the store, by the store's clock.
    let attacked = match objects.last() {
        Some(o) => store.stat(&o.key).await.map_err(|e| e.to_string())?.last_modified,
        None => chrono::Utc::now(),
    };
    let client = &bucket.store.client;
    let (mut deletes, mut shortens) = (0, 0);
    for v in &genuine {
        let del = client.delete_object().bucket(&bucket.name).key(&v.key).version_id(&v.version_id).bypass_governance_retention(true).send().await;
        deletes += usize::from(del.is_err());
        let retention = ObjectLockRetention::builder()
            .mode(ObjectLockRetentionMode::Compliance)
            .retain_until_date(S3Time::from_secs(chrono::Utc::now().timestamp() + 60))
            .build();
        let shorten = client.put_object_retention().bucket(&bucket.name).key(&v.key).version_id(&v.version_id).bypass_governance_retention(true).retention(retention).send().await;
        shortens += usize::from(shorten.is_err());
    }
    println!("     the store refused {deletes}/{} version deletions and {shortens}/{} lock shortenings", genuine.len(), genuine.len());
    if deletes != genuine.len() || shortens != genuine.len() {
        return Err("the store let the attacker destroy locked data: its buckets do not enforce COMPLIANCE locks".into());
    }
    s.done();

    let recovery = Instant::now();
    s.start("RECOVER: a new installation; the passphrase Secret; a plain profile on the same bucket");
    let standin;
    let target = match &setup.recovery {
        Some(existing) => existing,
        None => {
            standin = Cluster::standin(binary, work.join("target-volumes"), Some("9e1f0c2a-5d4b-4c3a-8f7e-6d5c4b3a2f10"), (&keys.0, &keys.1))?;
            &standin
        }
    };
    println!("     the new installation: {}", target.describe());
    target.install_k10()?;
    target.kubectl(&["label", "namespace", K10_NAMESPACE, KASTEN_IO_LEVEL, "--overwrite"], false)?;
    if options.passphrase_on_recovery {
        target.create_passphrase_secret(&passphrase).await?;
    } else {
        println!("     (the passphrase Secret is left out)");
    }
    target.k10(&[&["profile", "create", RECOVERY_PROFILE][..], &strs(&bucket.args())].concat(), false)?;
    s.done();

    let mut incident_time = None;
    if options.passphrase_on_recovery {
        s.start("RECOVER: `kubectl k10 incident` reads the bucket's history: when the attack began, and the time to recover to");
        // What an earlier drill on the same bucket did is no sign of this one's attack.
        let since = dr_time(setup.began);
        let incident = ["incident", "--source-cluster-id", cluster_id.as_str(), "--profile", RECOVERY_PROFILE, "--since", since.as_str()];
        target.k10(&incident, false)?;
        let t = target.k10_json(&incident)?;
        let time = |v: &serde_json::Value| chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap_or_default()).map(|t| t.to_utc()).map_err(|e| format!("incident printed {v} for a time: {e}"));
        let first = time(&t["verdict"]["firstSign"]["time"])?;
        if first < attack_began - chrono::Duration::seconds(1) || first > first_retired + chrono::Duration::seconds(1) {
            return Err(format!("incident names {} as the attack's first write, but the attack began at {} (its first writes were done by {})", secs(first), secs(attack_began), secs(first_retired)).into());
        }
        let pit = time(&t["verdict"]["pointInTime"])?;
        if pit < good_dr || pit >= first {
            return Err(format!("incident recommends {} which is not between the last good DR run ({}) and the attack ({})", dr_time(pit), dr_time(good_dr), dr_time(first)).into());
        }
        let named = t["verdict"]["lastClean"].as_array().into_iter().flatten().find(|c| c["namespace"] == ns).and_then(|c| c["restorePoint"].as_str()).unwrap_or_default().to_string();
        if named != last_clean {
            return Err(format!("incident names {named:?} as the last clean restore point of {ns}, not {last_clean}").into());
        }
        println!(
            "     the attack's first write: {} ({} after it began by the drill's clock); recover to {}, the last good DR run; last clean restore point of {ns}: {named}",
            dr_time(first),
            format_args!("{:.2} s", (first - attack_began).num_milliseconds() as f64 / 1000.0),
            dr_time(pit)
        );
        incident_time = Some(pit);
        s.done();
    }

    let (pit, why) = match options.recover_to {
        RecoverTo::BeforeAttack => match incident_time {
            Some(t) => (t, format!("the time `incident` recommends: the last good DR run ({}), before the attack", dr_time(good_dr))),
            None => (point_in_time, format!("between the good DR run ({}) and the attack's ({})", secs(good_dr), secs(attack_dr))),
        },
        RecoverTo::AfterRetirement => (attack_dr + chrono::Duration::seconds(1), format!("just after the attack's DR run ({}), before the cluster and the store were attacked", secs(attack_dr))),
        RecoverTo::AfterAttack => (attacked + chrono::Duration::seconds(1), format!("just after the attack's last write ({})", secs(attacked))),
    };
    // A point in time is refused while it is still in the future.
    while chrono::Utc::now() <= pit {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let pit = if incident_time.is_some() && options.recover_to == RecoverTo::BeforeAttack { dr_time(pit) } else { secs(pit) };
    s.start(&format!("RECOVER: the k10restore chart's Job turns back the clock to {pit}, {why}"));
    println!("     helm install k10-restore charts/k10restore -n kasten-io --set sourceClusterID={cluster_id} --set profile.name={RECOVERY_PROFILE} --set pointInTime={pit}");
    let docs = helm::template("charts/k10restore", "kasten-io", &[("sourceClusterID", cluster_id.as_str()), ("profile.name", RECOVERY_PROFILE), ("pointInTime", pit.as_str())])?;
    let manifest = docs.iter().map(|d| serde_yaml::to_string(d).unwrap_or_default()).collect::<Vec<_>>().join("---\n");
    made.chart = Some(target.apply(&manifest, work)?);
    target.wait_job("kasten-io", "k10-restore")?;
    let log = target.kubectl(&["logs", "job/k10-restore", "-n", "kasten-io"], false)?;
    let recovered = target.contents_of(&namespace_uid)?;
    if recovered.keys().ne(contents.keys()) {
        let warnings: Vec<&str> = log.lines().filter(|l| l.starts_with("warning:")).collect();
        return Err(format!(
            "the recovered catalog holds restore points {:?} of {ns}, not the retired {:?}{}",
            recovered.keys(),
            contents.keys(),
            warnings.iter().map(|w| format!("\n{w}")).collect::<String>()
        )
        .into());
    }
    println!("     {} restore point(s) retired by the attacker are back", recovered.len());
    s.done();

    s.start("RECOVER: restore the application from its last clean restore point, from before the encryption");
    target.k10(&["restorepoint", "list", "-A"], false)?;
    target.k10(&["restore", "--last-clean", "-n", ns, "--wait"], false)?;
    s.done();
    let recovery_seconds = recovery.elapsed().as_secs_f64();

    s.start("VERIFY: every file byte for byte (content, modes, owners, symlinks, mtimes, extended attributes) and every manifest");
    let restored_manifests = target.manifests(ns)?;
    if restored_manifests != original_manifests {
        let differing: Vec<_> = original_manifests.keys().chain(restored_manifests.keys()).filter(|k| original_manifests.get(*k) != restored_manifests.get(*k)).collect();
        return Err(format!("restored manifests differ: {differing:?}").into());
    }
    let restored = target.digest(ns).await?;
    let differences = original.differences(&restored);
    if !differences.is_empty() {
        return Err(format!("the restored volume differs from the original in {} entries: {}", differences.len(), differences.join("; ")).into());
    }
    s.done();

    let (uid, gid) = k10::datamover::tree::SAMPLE_OWNERS[0];
    s.start(&format!("VERIFY: the application, running as user {uid}:{gid} (non-root), writes to its restored volume"));
    let mut app = APP_WRITES.replace("NS", ns).replace("UID", &uid.to_string()).replace("GID", &gid.to_string()).replace("IMAGE", &k10::k8s::jobs::image());
    if let Some(node) = target.volume_node(ns)? {
        app = app.replace("restartPolicy: Never", &format!("restartPolicy: Never\n      nodeName: {node}"));
    }
    target.apply(&app, work)?;
    target.wait_job(ns, "app-writes")?;
    target.kubectl(&["logs", "job/app-writes", "-n", ns], false)?;
    s.done();

    Ok(Summary {
        logical_bytes: logical,
        files: restored.files,
        bytes: restored.bytes,
        manifests: restored_manifests.len(),
        restore_points_recovered: recovered.len(),
        backup_seconds,
        stored_bytes: stored,
        recovery_seconds,
    })
}
