//! Faults survived: the data mover backs up and restores through a proxy that throttles 10% of
//! requests (`503 SlowDown`) and cuts off another 10% after forwarding them; a restore costs few
//! requests (side by side with restic's for the same snapshot); a restore into a volume too small
//! for it says so, and the next attempt after growing the volume fetches only what is missing.

mod support;

use std::path::Path;
use std::process::Command;

use aws_sdk_s3::types::ObjectLockRetentionMode;
use k10::repo::Repo;
use support::cli::{binary, K10};
use support::faults::FaultProxy;
use support::s3::{self, Retention};
use support::tree;

const PASSWORD: &str = "fault-test-password";
const REPOSITORY: &str = "k10/faults/repos/vol/";

struct Setup {
    bucket: String,
    proxy: FaultProxy,
    dir: tempfile::TempDir,
}

impl Setup {
    async fn new(mib: usize) -> Setup {
        let env = s3::env();
        let bucket = s3::unique_bucket("faults");
        env.create_locked_bucket(&bucket, Some((ObjectLockRetentionMode::Compliance, Retention::Days(40)))).await;
        Repo::init(env.storage(&bucket, Some(7)), REPOSITORY, PASSWORD).await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        tree::mixed(&dir.path().join("data"), mib);
        Setup {
            bucket,
            proxy: FaultProxy::start(&env.endpoint),
            dir,
        }
    }

    fn data(&self) -> std::path::PathBuf {
        self.dir.path().join("data")
    }

    fn target_args(&self) -> Vec<String> {
        let env = s3::env();
        [
            "--repository", REPOSITORY, "--bucket", &self.bucket, "--region", &env.region, "--endpoint", &self.proxy.endpoint,
            "--protection-days", "7",
        ]
        .map(String::from)
        .to_vec()
    }

    fn mover(&self) -> K10 {
        let env = s3::env();
        K10::default()
            .with_env("AWS_ACCESS_KEY_ID", &env.access_key)
            .with_env("AWS_SECRET_ACCESS_KEY", &env.secret_key)
            .with_env("K10_REPO_PASSWORD", PASSWORD)
    }

    /// `datamover backup` of the data; returns its JSON line.
    fn backup(&self) -> serde_json::Value {
        let mut args = vec!["datamover".to_string(), "backup".into(), "--path".into(), self.data().display().to_string()];
        args.extend(self.target_args());
        let run = self.mover().run(&args.iter().map(String::as_str).collect::<Vec<_>>()).ok();
        serde_json::from_str(run.stdout.trim()).unwrap()
    }

    fn restore_args(&self, snapshot: &str, into: &Path) -> Vec<String> {
        let now = (chrono::Utc::now() + chrono::Duration::seconds(2)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let mut args = ["datamover", "restore", "--snapshot", snapshot, "--as-of", &now, "--path"].map(String::from).to_vec();
        args.push(into.display().to_string());
        args.extend(self.target_args());
        args
    }

    /// `datamover restore` into `into`; returns its JSON line.
    fn restore(&self, snapshot: &str, into: &Path) -> serde_json::Value {
        let args = self.restore_args(snapshot, into);
        let run = self.mover().run(&args.iter().map(String::as_str).collect::<Vec<_>>()).ok();
        serde_json::from_str(run.stdout.trim()).unwrap()
    }

    /// `restic restore` of the same snapshot through the proxy (no lock files: a read only).
    fn restic_restore(&self, snapshot: &str, into: &Path) {
        let env = s3::env();
        let repo = format!("s3:{}/{}/{}", self.proxy.endpoint, self.bucket, REPOSITORY.trim_end_matches('/'));
        let out = Command::new("restic")
            .args(["--no-cache", "--no-lock", "-r", &repo, "restore", snapshot, "--target"])
            .arg(into)
            .env("RESTIC_PASSWORD", PASSWORD)
            .env("AWS_ACCESS_KEY_ID", &env.access_key)
            .env("AWS_SECRET_ACCESS_KEY", &env.secret_key)
            .output()
            .expect("restic is installed (tests/setup.sh)");
        assert!(out.status.success(), "restic restore: {}", String::from_utf8_lossy(&out.stderr));
    }
}

fn store(line: &serde_json::Value) -> String {
    let s = &line["store"];
    format!("{} requests, {} retried ({} throttled)", s["requests"], s["retried"], s["throttled"])
}

#[tokio::test(flavor = "multi_thread")]
async fn backup_and_restore_survive_a_throttling_and_cutting_store() {
    let s = Setup::new(200).await;
    s.proxy.faults(0.10, 0.10);
    let before = s.proxy.counts();
    let backup = s.backup();
    let snapshot = backup["snapshot"].as_str().unwrap().to_string();
    println!("backup through 10% throttling + 10% cut off: proxy saw {}; k10: {}", s.proxy.counts() - before, store(&backup));
    assert!(backup["store"]["retried"].as_u64().unwrap() > 0, "no fault reached the backup: {backup}");

    let before = s.proxy.counts();
    let restored = s.dir.path().join("restored");
    let line = s.restore(&snapshot, &restored);
    println!("restore through the same faults: proxy saw {}; k10: {}", s.proxy.counts() - before, store(&line));
    let (files, bytes) = tree::assert_same(&s.data(), &restored);
    println!("restored {files} files, {bytes} bytes, identical");

    // Requests for one restore of the same snapshot, k10 and restic, on a healthy store.
    s.proxy.faults(0.0, 0.0);
    let before = s.proxy.counts();
    s.restore(&snapshot, &s.dir.path().join("k10-clean"));
    let k10 = (s.proxy.counts() - before).requests;
    let before = s.proxy.counts();
    let by_restic = s.dir.path().join("restic");
    s.restic_restore(&snapshot, &by_restic);
    let restic = (s.proxy.counts() - before).requests;
    tree::assert_same(&s.data(), &by_restic);
    println!("restore of {} MiB: k10 {k10} requests, restic {restic} requests ({:.2}x)", bytes >> 20, k10 as f64 / restic as f64);
    assert!(k10 <= 2 * restic, "k10 sent {k10} requests where restic sent {restic}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_volume_is_named_and_the_next_attempt_fetches_only_what_is_missing() {
    let s = Setup::new(48).await;
    let snapshot = s.backup()["snapshot"].as_str().unwrap().to_string();
    // A volume of 24 MiB (a tmpfs in a mount namespace of its own), restored into, found full,
    // grown to 128 MiB, restored into again; then a full restore elsewhere for comparison.
    let volume = s.dir.path().join("volume");
    std::fs::create_dir(&volume).unwrap();
    let restore = |into: &Path| {
        let quoted: Vec<String> = s.restore_args(&snapshot, into).iter().map(|a| format!("'{a}'")).collect();
        format!("'{}' {}", binary().display(), quoted.join(" "))
    };
    let script = format!(
        "set -u\nmount -t tmpfs -o size=24m k10-small '{v}'\n{first}; echo \"first attempt: exit $?\" >&2\n\
         mount -o remount,size=128m '{v}'\n\
         {second} > '{v}.second.json' && echo \"second attempt: ok\" >&2 && '{bin}' datamover digest --path '{v}/restored' > '{v}.digest'",
        v = volume.display(),
        first = restore(&volume.join("restored")),
        second = restore(&volume.join("restored")),
        bin = binary().display(),
    );
    let env = s3::env();
    let counts_before = s.proxy.counts();
    // As root, a mount namespace is enough; otherwise a user namespace maps us to root in it
    // (and files cannot be given to other owners there).
    let root = uid() == 0;
    let namespaces: &[&str] = if root { &["--mount", "--propagation", "private"] } else { &["--user", "--map-root-user", "--mount"] };
    let out = Command::new("unshare")
        .args(namespaces)
        .args(["sh", "-c", &script])
        .env("AWS_ACCESS_KEY_ID", &env.access_key)
        .env("AWS_SECRET_ACCESS_KEY", &env.secret_key)
        .env("K10_REPO_PASSWORD", PASSWORD)
        .output()
        .expect("unshare (util-linux) runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{}\n{stderr}", String::from_utf8_lossy(&out.stdout));
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("first attempt: exit 1"), "{stderr}");
    assert!(stderr.contains("is full: the restore needs"), "{stderr}");
    assert!(stderr.contains(&format!("volume {}", volume.join("restored").display())), "the volume is not named: {stderr}");
    for word in ["panic", "damaged", "RUST_BACKTRACE"] {
        assert!(!stderr.contains(word), "{word}: {stderr}");
    }
    assert!(stderr.contains("second attempt: ok"), "{stderr}");
    let second: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(s.dir.path().join("volume.second.json")).unwrap()).unwrap();
    let digest: k10::datamover::tree::TreeDigest =
        serde_json::from_str(&std::fs::read_to_string(s.dir.path().join("volume.digest")).unwrap()).unwrap();
    let mut differences = tree::read(&s.data()).differences(&digest);
    if !root {
        differences.retain(|d| !d.contains("owner"));
    }
    assert!(differences.is_empty(), "the resumed restore differs: {differences:?}");

    // The second attempt fetched only what the first could not write.
    let both = (s.proxy.counts() - counts_before).requests;
    let whole = s.restore(&snapshot, &s.dir.path().join("whole"));
    let (kept, written, all) = (second["kept"].as_u64().unwrap(), second["written"].as_u64().unwrap(), whole["written"].as_u64().unwrap());
    println!(
        "second attempt: {kept} bytes kept, {written} fetched and written, {} requests; a whole restore: {all} bytes, {} requests; both attempts: {both} requests",
        second["store"]["requests"], whole["store"]["requests"]
    );
    assert!(kept > 0 && written + kept == all, "kept {kept} + written {written} != {all}");
}

/// This process's user id (from /proc, without unsafe code).
fn uid() -> u32 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_policy_run_rides_out_an_api_server_that_fails_for_20_seconds() {
    let f = support::app::Fixture::new().await;
    support::app::fill(&f.volume("data"), &f.volume("www-db-0"));
    f.k10.run(&["policy", "create", "shop-backup", "--namespaces", "shop", "--profile", "immutable"]).ok();
    // The first read of a data mover's Job (the list its watch starts with) is where the API
    // server starts failing: every request answered with a 500 for 20 seconds (its storage
    // failing), while the mover's pod goes on, as on a real node. The watch resumes after it.
    let first_wait = f.server.hold("GET", "/apis/batch/v1/namespaces/shop/jobs?metadata.name%3Dk10-backup");
    let k10 = f.k10.clone();
    let run = std::thread::spawn(move || k10.run(&["policy", "run", "shop-backup", "--wait"]));
    first_wait.reached(std::time::Duration::from_secs(120)).await;
    let started = std::time::Instant::now();
    f.server.unavailable_for(std::time::Duration::from_secs(20), 500);
    first_wait.release();
    let out = run.join().unwrap();
    println!("{}", out.all());
    let out = out.ok();
    assert!(started.elapsed() >= std::time::Duration::from_secs(20), "the run ended during the outage");
    assert!(out.stderr.contains("the Kubernetes API failed (HTTP 500"), "no retry was reported:\n{}", out.stderr);
    let contents = f.contents();
    assert_eq!(contents.len(), 1, "one restore point");
    // The restore point is whole: its volumes come back identical.
    let volumes = f.save_volumes("before");
    let content = contents[0]["metadata"]["name"].as_str().unwrap().to_string();
    f.k10.run(&["restore", &content, "-n", "shop", "--target-namespace", "shop-copy", "--wait"]).ok();
    for claim in ["data", "www-db-0"] {
        tree::assert_same(&volumes.join(claim), &f.server.volumes_root().join("shop-copy").join(claim));
    }
}

/// The whole cycle through a store that throttles 10% of requests and cuts off 10% after
/// forwarding them: a policy run (movers included), a restore, `restorepoint verify`,
/// maintenance, a DR run and `dr restore` on a new installation all succeed.
#[tokio::test(flavor = "multi_thread")]
async fn the_whole_cycle_goes_through_a_throttling_and_cutting_store() {
    let f = support::app::Fixture::new().await;
    tree::mixed(&f.volume("data"), 24);
    tree::small(&f.volume("www-db-0"));
    let volumes = f.save_volumes("before");
    let proxy = FaultProxy::start(&f.s3.endpoint);
    f.kubectl(&["create", "secret", "generic", "k10-dr-secret", "-n", "kasten-io", "--from-literal", "key=correct horse battery staple"]);
    f.k10
        .run(&["profile", "create", "flaky", "--bucket", &f.bucket, "--endpoint", &proxy.endpoint, "--immutable", "--protection-period", "30d"])
        .ok();
    f.k10.run(&["policy", "create", "shop-backup", "--namespaces", "shop", "--profile", "flaky"]).ok();
    f.k10.run(&["dr", "enable", "--profile", "flaky", "--frequency", "@hourly"]).ok();

    proxy.faults(0.10, 0.10);
    let mut retried = 0;
    let mut step = |what: &str, args: &[&str]| {
        let before = proxy.counts();
        let out = f.k10.run(args).ok();
        let note = out.stderr.lines().find(|l| l.starts_with("note: the object store needed retries")).unwrap_or("(no retries)").to_string();
        println!("{what}: proxy saw {}; {note}", proxy.counts() - before);
        retried += (proxy.counts() - before).throttled + (proxy.counts() - before).cut;
        out
    };
    step("policy run", &["policy", "run", "shop-backup", "--wait"]);
    let point = f.contents()[0]["metadata"]["name"].as_str().unwrap().to_string();
    step("restore", &["restore", &point, "-n", "shop", "--target-namespace", "shop-copy", "--wait"]);
    for claim in ["data", "www-db-0"] {
        let (files, bytes) = tree::assert_same(&volumes.join(claim), &f.server.volumes_root().join("shop-copy").join(claim));
        println!("volume {claim}: {files} files, {bytes} bytes identical");
    }
    step("restorepoint verify", &["restorepoint", "verify", &point, "-n", "shop"]);
    step("maintenance", &["maintenance", "run", "--profile", "flaky"]);
    let dr = step("dr run", &["dr", "run"]);
    assert!(dr.stdout.contains("stored at"), "{}", dr.stdout);

    // A new installation recovers the catalog through the same faults.
    let dir = tempfile::tempdir().unwrap();
    let new = support::apiserver::ApiServer::start_in_background(support::apiserver::ApiServerOptions {
        k10_binary: Some(binary()),
        volumes_root: dir.path().join("volumes"),
        default_namespace_uid: Some("0a1b2c3d-0000-4000-8000-0000000fa017".into()),
        ..Default::default()
    });
    let admin = K10::new(new.kubeconfig_path())
        .with_env("AWS_ACCESS_KEY_ID", &f.s3.access_key)
        .with_env("AWS_SECRET_ACCESS_KEY", &f.s3.secret_key);
    admin.run(&["install"]).ok();
    let kubectl = |args: &[&str]| {
        let out = Command::new("kubectl").arg("--kubeconfig").arg(new.kubeconfig_path()).args(args).output().unwrap();
        assert!(out.status.success(), "kubectl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    kubectl(&["create", "secret", "generic", "k10-dr-secret", "-n", "kasten-io", "--from-literal", "key=correct horse battery staple"]);
    let k10 = admin.acting_as_service_account(&new);
    proxy.faults(0.0, 0.0);
    k10.run(&["profile", "create", "recovery", "--bucket", &f.bucket, "--endpoint", &proxy.endpoint]).ok();
    proxy.faults(0.10, 0.10);
    let source = f.server.default_namespace_uid();
    let before = proxy.counts();
    let out = k10.run(&["dr", "restore", "--source-cluster-id", &source, "--profile", "recovery"]).ok();
    println!("dr restore: proxy saw {}; {}", proxy.counts() - before, out.stderr.lines().last().unwrap_or_default());
    let contents = kubectl(&["get", "restorepointcontents.apps.kio.kasten.io", "-o", "name"]);
    assert!(contents.contains(&point), "the restore point did not come back: {contents}");
    println!("faults injected over the whole cycle: {retried}");
    assert!(retried > 10, "too few faults reached the cycle to show anything: {retried}");
}
