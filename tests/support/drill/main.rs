//! The drill: the immutable-backup workflow against a local object-locked store and the
//! Kubernetes API stand-in, then the comprehensive attack, then recovery — each step timed.
//!
//! Run it with `tests/drill.sh` (which installs and starts the store and builds the binaries).
//! Today it covers: install, bucket validation, an immutable profile, a backup of an application's
//! volume data into the cluster's repository, retention maintenance, the attack (the tool retires
//! the backup, then delete markers, garbage overwrites, version deletions and lock shortening),
//! and the restore as of the backup's time, verified byte for byte. Backups by policy, manifests,
//! DR and the k10restore chart join as those commands land.

#[path = "../apiserver/mod.rs"]
mod apiserver;
#[path = "../s3.rs"]
#[allow(dead_code)]
mod s3;
#[path = "../tree.rs"]
#[allow(dead_code)]
mod tree;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::sync::Arc;
use std::time::Instant;

use aws_sdk_s3::primitives::DateTime as S3Time;
use aws_sdk_s3::types::{ObjectLockRetention, ObjectLockRetentionMode};
use bytes::Bytes;
use k10::objectstore::lock::ProtectionPeriod;
use k10::objectstore::maintenance::record_writer;
use k10::objectstore::s3::S3Storage;
use k10::objectstore::storage::{Storage, VersionedStorage};
use k10::objectstore::{Credentials, Location, ObjectStore};
use k10::repo::{layout, new_password, ReadOnly, Repo};

struct Drill {
    started: Instant,
    step: usize,
    kubeconfig: PathBuf,
    binary: PathBuf,
    env: &'static s3::S3Env,
}

impl Drill {
    fn step(&mut self, what: &str) -> Instant {
        self.step += 1;
        println!("\n[{:>2}] {what}", self.step);
        Instant::now()
    }

    fn done(&self, since: Instant) {
        println!("     ({:.2} s)", since.elapsed().as_secs_f64());
    }

    /// Runs `kubectl k10 …` as a user would, printing its output indented; fails on a non-zero exit
    /// unless `expect_failure`.
    fn k10(&self, args: &[&str], expect_failure: bool) -> Result<String, String> {
        println!("     $ kubectl k10 {}", args.join(" "));
        let out = Command::new(&self.binary)
            .args(args)
            .env("KUBECONFIG", &self.kubeconfig)
            .env("AWS_ACCESS_KEY_ID", &self.env.access_key)
            .env("AWS_SECRET_ACCESS_KEY", &self.env.secret_key)
            .env("RUST_BACKTRACE", "0")
            .output()
            .map_err(|e| format!("cannot run {}: {e}", self.binary.display()))?;
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        for line in text.lines() {
            println!("       {line}");
        }
        match (out.status.success(), expect_failure) {
            (true, false) | (false, true) => Ok(text),
            (true, true) => Err(format!("`kubectl k10 {}` should have failed", args.join(" "))),
            (false, false) => Err(format!("`kubectl k10 {}` failed", args.join(" "))),
        }
    }
}

fn binary() -> PathBuf {
    // target/<profile>/examples/drill → target/<profile>/kubectl-k10
    let exe = std::env::current_exe().expect("own path");
    exe.parent().and_then(Path::parent).map(|d| d.join("kubectl-k10")).expect("target dir")
}

fn storage(env: &s3::S3Env, bucket: &str, period: Option<ProtectionPeriod>) -> Arc<S3Storage> {
    let location = Location {
        endpoint: Some(env.endpoint.clone()),
        region: env.region.clone(),
        bucket: bucket.to_string(),
        skip_ssl_verify: false,
    };
    let credentials = Credentials {
        access_key_id: env.access_key.clone(),
        secret_access_key: env.secret_key.clone(),
    };
    Arc::new(S3Storage::new(ObjectStore::connect(&location, &credentials).expect("valid endpoint"), period))
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("\ndrill FAILED: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), String> {
    let mib: usize = std::env::var("K10_DRILL_MIB").ok().and_then(|v| v.parse().ok()).unwrap_or(64);
    let work = tempfile::tempdir().map_err(|e| e.to_string())?;
    let env = s3::env();
    let server = apiserver::ApiServer::start(apiserver::ApiServerOptions {
        k10_binary: Some(binary()),
        volumes_root: work.path().join("volumes"),
        ..Default::default()
    })
    .await
    .map_err(|e| format!("cannot start the Kubernetes API stand-in: {e}"))?;
    let mut d = Drill {
        started: Instant::now(),
        step: 0,
        kubeconfig: server.kubeconfig_path().to_path_buf(),
        binary: binary(),
        env,
    };
    println!("k10 drill: object store {} (SeaweedFS, Object Lock), Kubernetes API stand-in {}", env.endpoint, server.url());

    let t = d.step("Install k10 (CRDs, kasten-io namespace)");
    d.k10(&["install"], false)?;
    d.done(t);

    let t = d.step("Create buckets: one with Object Lock (COMPLIANCE, 60-day default retention), one without");
    let bucket = s3::unique_bucket("drill");
    env.create_locked_bucket(&bucket, Some((ObjectLockRetentionMode::Compliance, s3::Retention::Days(60))))
        .await;
    let plain = s3::unique_bucket("drill-plain");
    env.create_plain_bucket(&plain).await;
    println!("     locked: {bucket}\n     plain:  {plain}");
    d.done(t);

    let t = d.step("Validate Bucket: the bucket without Object Lock is refused");
    d.k10(&["profile", "validate", "--bucket", &plain, "--endpoint", &env.endpoint], true)?;
    d.done(t);

    let t = d.step("Create an immutable profile with a 30-day protection period");
    d.k10(
        &["profile", "create", "immutable", "--bucket", &bucket, "--endpoint", &env.endpoint, "--immutable", "--protection-period", "30d"],
        false,
    )?;
    d.k10(&["profile", "get", "immutable"], false)?;
    d.done(t);

    let t = d.step(&format!("Application data: {mib} MiB in files of mixed sizes, an empty file, symlinks, modes"));
    let app = work.path().join("app-data");
    tree::mixed(&app, mib);
    d.done(t);

    let t = d.step("Back up the application's volume into the cluster's repository (every object COMPLIANCE-locked for 50 days)");
    let cluster_id = server.default_namespace_uid();
    let repository = layout::app_repository(&cluster_id, "drill-app-namespace-uid");
    let ledgers = layout::maintenance_ledgers(&repository).expect("a k10 layout");
    let period = ProtectionPeriod::from_days(30).map_err(|e| e.to_string())?;
    let store = storage(env, &bucket, Some(period));
    record_writer(store.as_ref(), &ledgers, period).await.map_err(|e| e.to_string())?;
    let password = new_password();
    let repo = Repo::init(store.clone(), &repository, &password).await.map_err(|e| e.to_string())?;
    let snap = repo.backup_dir(&app, &["app=drill".into()]).await.map_err(|e| e.to_string())?;
    let backed_up_at = repo.stored_at(&snap.id).await.map_err(|e| e.to_string())?;
    println!(
        "     snapshot {} : {} files, {} bytes; stored at {} (the store's clock)",
        &snap.id[..12],
        snap.files,
        snap.bytes,
        backed_up_at.to_rfc3339()
    );
    d.done(t);

    let t = d.step("Retention maintenance");
    d.k10(&["maintenance", "run"], false)?;
    d.done(t);
    // Store times have one-second resolution: the attack starts in a later second.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;

    let t = d.step("ATTACK with full credentials: the tool retires the backup; every object gets a delete marker, then a garbage overwrite");
    repo.forget(&snap.id).await.map_err(|e| e.to_string())?;
    let objects = store.list(&repository).await.map_err(|e| e.to_string())?;
    for o in &objects {
        store.delete(&o.key).await.map_err(|e| e.to_string())?;
    }
    for o in &objects {
        store.put(&o.key, Bytes::from_static(b"your files are encrypted; pay up")).await.map_err(|e| e.to_string())?;
    }
    println!("     retired snapshot {}; {} objects hidden and overwritten", &snap.id[..12], objects.len());
    d.done(t);

    let t = d.step("ATTACK: delete every locked version, shorten every lock (the store must refuse)");
    let client = env.client();
    let versions = store.list_versions(&repository).await.map_err(|e| e.to_string())?;
    let (mut refused_deletes, mut refused_shortens) = (0, 0);
    for v in versions.iter().filter(|v| !v.delete_marker && v.size > 40) {
        let del = client.delete_object().bucket(&bucket).key(&v.key).version_id(&v.version_id).bypass_governance_retention(true).send().await;
        if del.is_err() {
            refused_deletes += 1;
        }
        let shorten = client
            .put_object_retention()
            .bucket(&bucket)
            .key(&v.key)
            .version_id(&v.version_id)
            .bypass_governance_retention(true)
            .retention(
                ObjectLockRetention::builder()
                    .mode(ObjectLockRetentionMode::Compliance)
                    .retain_until_date(S3Time::from_secs(chrono::Utc::now().timestamp() + 60))
                    .build(),
            )
            .send()
            .await;
        if shorten.is_err() {
            refused_shortens += 1;
        }
    }
    let genuine = versions.iter().filter(|v| !v.delete_marker && v.size > 40).count();
    println!("     the store refused {refused_deletes}/{genuine} version deletions and {refused_shortens}/{genuine} lock shortenings");
    if refused_deletes != genuine || refused_shortens != genuine {
        return Err("the store let the attacker destroy locked data".into());
    }
    match Repo::open(store.clone(), &repository, &password).await {
        Ok(_) => return Err("the live repository should be unreadable after the attack".into()),
        Err(e) => println!("     the live repository is now unusable: {e}"),
    }
    d.done(t);

    let recovery = Instant::now();
    let t = d.step(&format!("RECOVER: open the repository as of {} and restore", backed_up_at.to_rfc3339()));
    let view = Repo::<ReadOnly>::open_at(store.clone(), &repository, backed_up_at, &password)
        .await
        .map_err(|e| e.to_string())?;
    let restored = work.path().join("restored");
    view.restore(&snap.id, &restored).await.map_err(|e| e.to_string())?;
    d.done(t);

    let t = d.step("Verify every file byte for byte (content, modes, symlinks, mtimes)");
    let result = std::panic::catch_unwind(|| tree::assert_same(&app, &restored));
    let (files, bytes) = result.map_err(|_| "the restored data differs from the original".to_string())?;
    d.done(t);

    println!(
        "\nrecovered: {files} files, {bytes} bytes identical (recovery time {:.1} s; drill {:.1} s)",
        recovery.elapsed().as_secs_f64(),
        d.started.elapsed().as_secs_f64()
    );
    Ok(())
}
