//! The worst-case drill: the immutable-backup workflow on a local object-locked store and the
//! Kubernetes API stand-in, the comprehensive breach the workflow guards against, and the
//! recovery — every step printed with its timing. `tests/drill.sh` runs it (the README's main
//! command); `tests/drill.rs` runs it with less data.
//!
//! 1. Protect: install, Validate Bucket (a bucket without Object Lock is refused), an immutable
//!    profile (30 days), an application with data, a policy and an immutable DR policy, runs.
//! 2. Attack with every credential: the tool retires every restore point through its own
//!    commands (and runs DR again); the cluster loses the application namespace, every restore
//!    point, policy, profile and Secret; the object store gets a delete marker and a garbage
//!    overwrite on every object, and its refusals to delete versions or shorten locks are shown.
//! 3. Recover: a new cluster, the passphrase Secret, a plain profile on the same bucket, the
//!    k10restore chart's Job with a point in time before the attack, the application restore,
//!    and a byte-for-byte check of every file and every manifest.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use aws_sdk_s3::primitives::DateTime as S3Time;
use aws_sdk_s3::types::{ObjectLockRetention, ObjectLockRetentionMode};
use bytes::Bytes;
use k10::objectstore::storage::{Storage, VersionedStorage};

use super::apiserver::{ApiServer, ApiServerOptions};
use super::{helm, s3, tree};

const PASSPHRASE: &str = "correct horse battery staple";

const APP: &str = r#"
apiVersion: v1
kind: Namespace
metadata: {name: shop}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: settings, namespace: shop}
data: {mode: production}
---
apiVersion: v1
kind: Secret
metadata: {name: creds, namespace: shop}
stringData: {password: hunter2}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec: {selector: {app: web}, ports: [{port: 80}]}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: data, namespace: shop}
spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, image: nginx, volumeMounts: [{name: data, mountPath: /usr/share/nginx/html}]}]
      volumes: [{name: data, persistentVolumeClaim: {claimName: data}}]
"#;

/// What the drill verified at the end (the program prints it; the test checks it).
#[derive(Debug, Clone)]
#[allow(dead_code)]
pub struct Summary {
    pub files: usize,
    pub bytes: u64,
    pub manifests: usize,
    pub recovery_seconds: f64,
}

struct Cluster {
    server: ApiServer,
    binary: PathBuf,
    env: &'static s3::S3Env,
}

impl Cluster {
    fn start(binary: &Path, volumes: PathBuf, uid: Option<&str>, env: &'static s3::S3Env) -> Result<Cluster, String> {
        let server = ApiServer::try_start_in_background(ApiServerOptions {
            k10_binary: Some(binary.to_path_buf()),
            volumes_root: volumes,
            default_namespace_uid: uid.map(str::to_string),
            ..Default::default()
        })
        .map_err(|e| format!("cannot start the Kubernetes API stand-in: {e}"))?;
        Ok(Cluster {
            server,
            binary: binary.to_path_buf(),
            env,
        })
    }

    fn show(&self, prompt: &str, out: &std::process::Output) -> String {
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        println!("     $ {prompt}");
        for line in text.lines() {
            println!("       {line}");
        }
        text
    }

    /// `kubectl k10 …`: must succeed, or must fail when `refused`. Its stdout and stderr are shown
    /// interleaved, as on a terminal.
    fn k10(&self, args: &[&str], refused: bool) -> Result<String, String> {
        use std::io::Read;
        let fail = |e: std::io::Error| format!("cannot run {}: {e}", self.binary.display());
        let (mut reader, writer) = std::io::pipe().map_err(fail)?;
        let mut child = Command::new(&self.binary)
            .args(args)
            .env("KUBECONFIG", self.server.kubeconfig_path())
            .env("AWS_ACCESS_KEY_ID", &self.env.access_key)
            .env("AWS_SECRET_ACCESS_KEY", &self.env.secret_key)
            .env("RUST_BACKTRACE", "0")
            .stdout(writer.try_clone().map_err(fail)?)
            .stderr(writer)
            .spawn()
            .map_err(fail)?;
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

    fn kubectl(&self, args: &[&str], quiet: bool) -> Result<String, String> {
        let out = Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(self.server.kubeconfig_path())
            .args(args)
            .output()
            .map_err(|e| format!("cannot run kubectl: {e}"))?;
        let text = if quiet {
            String::from_utf8_lossy(&out.stdout).into_owned()
        } else {
            self.show(&format!("kubectl {}", args.join(" ")), &out)
        };
        if !out.status.success() {
            return Err(format!("`kubectl {}` failed: {}", args.join(" "), String::from_utf8_lossy(&out.stderr)));
        }
        Ok(text)
    }

    fn apply(&self, yaml: &str, dir: &Path) -> Result<(), String> {
        let path = dir.join(format!("apply-{}.yaml", rand_suffix()));
        std::fs::write(&path, yaml).map_err(|e| e.to_string())?;
        self.kubectl(&["apply", "-f", path.to_str().unwrap()], false).map(|_| ())
    }

    fn volume(&self, ns: &str, claim: &str) -> PathBuf {
        self.server.volumes_root().join(ns).join(claim)
    }
}

fn rand_suffix() -> String {
    format!("{:x}", chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default())
}

/// The application's manifests, stripped of what the server sets, by kind/name.
fn manifests(c: &Cluster) -> Result<BTreeMap<String, serde_json::Value>, String> {
    let text = c.kubectl(&["get", "configmaps,secrets,services,persistentvolumeclaims,deployments.apps", "-n", "shop", "-o", "json"], true)?;
    let list: serde_json::Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
    let mut out = BTreeMap::new();
    for mut item in list["items"].as_array().cloned().unwrap_or_default() {
        let kind = item["kind"].as_str().unwrap_or_default().to_string();
        let name = item["metadata"]["name"].as_str().unwrap_or_default().to_string();
        if name == "kube-root-ca.crt" {
            continue;
        }
        let (group, plural) = match kind.as_str() {
            "Deployment" => ("apps", "deployments"),
            "PersistentVolumeClaim" => ("", "persistentvolumeclaims"),
            "Service" => ("", "services"),
            other => ("", if other == "Secret" { "secrets" } else { "configmaps" }),
        };
        k10::restore::strip::server_fields(&mut item, group, plural, "shop");
        out.insert(format!("{kind}/{name}"), item);
    }
    Ok(out)
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

pub async fn run(binary: &Path, mib: usize) -> Result<Summary, String> {
    let began = Instant::now();
    let env = s3::env();
    let work = tempfile::tempdir().map_err(|e| e.to_string())?;
    let source = Cluster::start(binary, work.path().join("source-volumes"), None, env)?;
    let mut s = Steps { n: 0, since: Instant::now() };
    println!(
        "k10 drill: object store {} (SeaweedFS, Object Lock), Kubernetes API stand-in {}",
        env.endpoint,
        source.server.url()
    );

    s.start("PROTECT: install k10");
    source.k10(&["install"], false)?;
    s.done();

    s.start("Buckets: one with Object Lock (COMPLIANCE, 60-day default retention), one without");
    let bucket = s3::unique_bucket("drill");
    env.create_locked_bucket(&bucket, Some((ObjectLockRetentionMode::Compliance, s3::Retention::Days(60)))).await;
    let plain = s3::unique_bucket("drill-plain");
    env.create_plain_bucket(&plain).await;
    println!("     locked: {bucket}\n     plain:  {plain}");
    s.done();

    s.start("Validate Bucket: the bucket without Object Lock is refused");
    source.k10(&["profile", "validate", "--bucket", &plain, "--endpoint", &env.endpoint], true)?;
    s.done();

    s.start("An immutable profile with a 30-day protection period");
    source.k10(&["profile", "create", "immutable", "--bucket", &bucket, "--endpoint", &env.endpoint, "--immutable", "--protection-period", "30d"], false)?;
    source.k10(&["profile", "get", "immutable"], false)?;
    s.done();

    s.start(&format!("The application: namespace shop, {mib} MiB of data in its volume"));
    source.apply(APP, work.path())?;
    tree::mixed(&source.volume("shop", "data"), mib);
    s.done();

    s.start("A backup policy and an immutable DR policy (passphrase in kasten-io/k10-dr-secret)");
    source.kubectl(&["create", "secret", "generic", "k10-dr-secret", "-n", "kasten-io", "--from-literal", &format!("key={PASSPHRASE}")], false)?;
    source.k10(&["policy", "create", "shop", "--namespaces", "shop", "--profile", "immutable", "--frequency", "@hourly", "--retention", "hourly=24,daily=7", "--require-immutable"], false)?;
    source.k10(&["dr", "enable", "--profile", "immutable", "--frequency", "@hourly"], false)?;
    s.done();

    s.start("Run the policy, then the DR policy");
    source.k10(&["policy", "run", "shop", "--wait"], false)?;
    source.k10(&["dr", "run"], false)?;
    source.k10(&["maintenance", "run"], false)?;
    source.k10(&["restorepoint", "list", "-A"], false)?;
    let cluster_id = source.server.default_namespace_uid();
    let original_volume = work.path().join("original-volume");
    let cp = Command::new("cp").arg("-a").arg(source.volume("shop", "data")).arg(&original_volume).status();
    if !cp.is_ok_and(|s| s.success()) {
        return Err("cannot copy the original volume aside".into());
    }
    let original_manifests = manifests(&source)?;
    s.done();
    // The chosen point in time: after the last good DR run, before the attack.
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let point_in_time = chrono::Utc::now();
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    println!("\n     point in time to recover to: {} (cluster ID {cluster_id})", point_in_time.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));

    s.start("ATTACK, the tool: retire every restore point through k10 itself, then let DR record the empty catalog");
    let listed = source.kubectl(&["get", "restorepoints.apps.kio.kasten.io", "-n", "shop", "-o", "name"], true)?;
    for rp in listed.lines().filter_map(|l| l.rsplit('/').next()) {
        source.k10(&["restorepoint", "retire", rp, "-n", "shop"], false)?;
    }
    source.k10(&["dr", "run"], false)?;
    s.done();

    s.start("ATTACK, the cluster: delete the application, every restore point, policy, profile and Secret");
    source.kubectl(&["delete", "namespace", "shop"], false)?;
    for kind in ["restorepoints.apps.kio.kasten.io", "policies.config.kio.kasten.io", "profiles.config.kio.kasten.io"] {
        source.kubectl(&["delete", kind, "--all", "-A"], false)?;
    }
    source.kubectl(&["delete", "restorepointcontents.apps.kio.kasten.io", "--all"], false)?;
    source.kubectl(&["delete", "secrets", "--all", "-n", "kasten-io"], false)?;
    s.done();

    s.start("ATTACK, the object store: a delete marker and a garbage overwrite on every object; delete every version, shorten every lock");
    let store = storage(env, &bucket);
    let objects = store.list("k10/").await.map_err(|e| e.to_string())?;
    for o in &objects {
        store.delete(&o.key).await.map_err(|e| e.to_string())?;
        store.put(&o.key, Bytes::from_static(b"your data is encrypted; pay up")).await.map_err(|e| e.to_string())?;
    }
    println!("     {} objects hidden behind delete markers and overwritten with garbage", objects.len());
    let client = env.client();
    let versions = store.list_versions("k10/").await.map_err(|e| e.to_string())?;
    let genuine: Vec<_> = versions.iter().filter(|v| !v.delete_marker && v.size != 30).collect();
    let (mut deletes, mut shortens) = (0, 0);
    for v in &genuine {
        let del = client.delete_object().bucket(&bucket).key(&v.key).version_id(&v.version_id).bypass_governance_retention(true).send().await;
        deletes += usize::from(del.is_err());
        let retention = ObjectLockRetention::builder()
            .mode(ObjectLockRetentionMode::Compliance)
            .retain_until_date(S3Time::from_secs(chrono::Utc::now().timestamp() + 60))
            .build();
        let shorten = client.put_object_retention().bucket(&bucket).key(&v.key).version_id(&v.version_id).bypass_governance_retention(true).retention(retention).send().await;
        shortens += usize::from(shorten.is_err());
    }
    println!("     the store refused {deletes}/{} version deletions and {shortens}/{} lock shortenings", genuine.len(), genuine.len());
    if deletes != genuine.len() || shortens != genuine.len() {
        return Err("the store let the attacker destroy locked data".into());
    }
    s.done();

    let recovery = Instant::now();
    s.start("RECOVER: a new cluster; the passphrase Secret; a plain profile on the same bucket");
    let target = Cluster::start(binary, work.path().join("target-volumes"), Some("9e1f0c2a-5d4b-4c3a-8f7e-6d5c4b3a2f10"), env)?;
    target.k10(&["install"], false)?;
    target.kubectl(&["create", "secret", "generic", "k10-dr-secret", "-n", "kasten-io", "--from-literal", &format!("key={PASSPHRASE}")], false)?;
    target.k10(&["profile", "create", "recovery", "--bucket", &bucket, "--endpoint", &env.endpoint], false)?;
    s.done();

    s.start("RECOVER: the k10restore chart's Job turns back the clock (rendered with the Helm SDK, run in the cluster)");
    let pit = point_in_time.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    println!("     helm install k10-restore charts/k10restore -n kasten-io --set sourceClusterID={cluster_id} --set profile.name=recovery --set pointInTime={pit}");
    let docs = helm::template("charts/k10restore", "kasten-io", &[("sourceClusterID", cluster_id.as_str()), ("profile.name", "recovery"), ("pointInTime", pit.as_str())])?;
    let manifest = docs.iter().map(|d| serde_yaml::to_string(d).unwrap_or_default()).collect::<Vec<_>>().join("---\n");
    target.apply(&manifest, work.path())?;
    target.kubectl(&["wait", "--for=condition=complete", "--timeout=300s", "job/k10-restore", "-n", "kasten-io"], false)?;
    target.kubectl(&["logs", "job/k10-restore", "-n", "kasten-io"], false)?;
    target.k10(&["restorepoint", "list", "-A"], false)?;
    s.done();

    s.start("RECOVER: restore the application from its recovered restore point");
    let contents = target.kubectl(&["get", "restorepointcontents.apps.kio.kasten.io", "-o", "name"], true)?;
    let content = contents.lines().next().and_then(|l| l.rsplit('/').next()).ok_or("no restore point was recovered")?.to_string();
    target.k10(&["restore", &content, "--wait"], false)?;
    s.done();
    let recovery_seconds = recovery.elapsed().as_secs_f64();

    s.start("VERIFY: every file byte for byte (content, modes, symlinks, mtimes) and every manifest");
    let restored_volume = target.volume("shop", "data");
    let (files, bytes) = std::panic::catch_unwind(|| tree::assert_same(&original_volume, &restored_volume))
        .map_err(|_| "the restored data differs from the original".to_string())?;
    let restored_manifests = manifests(&target)?;
    if restored_manifests != original_manifests {
        let differing: Vec<_> = original_manifests.keys().filter(|k| original_manifests.get(*k) != restored_manifests.get(*k)).collect();
        return Err(format!("restored manifests differ: {differing:?}"));
    }
    s.done();
    println!(
        "\nrecovery time (RTO): {recovery_seconds:.1} s; drill {:.1} s",
        began.elapsed().as_secs_f64()
    );
    println!("recovered: {files} files, {bytes} bytes, {} manifests identical", restored_manifests.len());
    Ok(Summary {
        files,
        bytes,
        manifests: restored_manifests.len(),
        recovery_seconds,
    })
}

fn storage(env: &s3::S3Env, bucket: &str) -> std::sync::Arc<k10::objectstore::s3::S3Storage> {
    let location = k10::objectstore::Location {
        endpoint: Some(env.endpoint.clone()),
        region: env.region.clone(),
        bucket: bucket.to_string(),
        skip_ssl_verify: false,
    };
    let credentials = k10::objectstore::Credentials {
        access_key_id: env.access_key.clone(),
        secret_access_key: env.secret_key.clone(),
    };
    let store = k10::objectstore::ObjectStore::connect(&location, &credentials).expect("a valid endpoint");
    std::sync::Arc::new(k10::objectstore::s3::S3Storage::new(store, None))
}
