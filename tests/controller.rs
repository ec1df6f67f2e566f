//! The controller: K10's own YAML applied with kubectl, and nothing else, gets validated and run on
//! schedule; RunActions run on demand; two replicas share one Lease; `/metrics` tells the
//! protection horizon. The controller runs as a process against the API stand-in, as the `k10`
//! ServiceAccount (under the RBAC `install` grants), the way its Deployment's pods run it.

mod support;

use std::io::{Read, Write};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use chrono::{Timelike, Utc};
use support::app::Fixture;
use support::tree;

/// A controller replica: a `kubectl-k10 controller` process.
struct Replica {
    child: Child,
    port: u16,
    log: std::path::PathBuf,
}

impl Replica {
    fn start(f: &Fixture, identity: &str, extra: &[&str]) -> Replica {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let address = format!("127.0.0.1:{port}");
        let mut args = vec!["controller", "--identity", identity, "--metrics-address", &address, "--lease-duration", "4s"];
        args.extend(extra);
        let log = f.dir.path().join(format!("{identity}.log"));
        let child = f
            .k10
            .command(&args)
            .env("K10_LOG", "k10=info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        Replica { child, port, log }
    }

    fn scrape(&self) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", self.port)) {
                s.write_all(b"GET /metrics HTTP/1.1\r\nHost: controller\r\n\r\n").unwrap();
                let mut out = String::new();
                s.read_to_string(&mut out).unwrap();
                assert!(out.starts_with("HTTP/1.1 200"), "{out}");
                return out.split("\r\n\r\n").nth(1).unwrap_or_default().to_string();
            }
            assert!(Instant::now() < deadline, "no metrics on port {}: {}", self.port, self.log());
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The value of one series (`name{label="value"}`, or a bare name).
    fn metric(&self, series: &str) -> Option<f64> {
        self.scrape().lines().find_map(|l| l.strip_prefix(series).and_then(|rest| rest.strip_prefix(' ')).map(|v| v.trim().parse().unwrap()))
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits for `what` to hold, up to `seconds`.
fn eventually<T>(seconds: u64, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out after {seconds} s waiting for {what}");
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn policy(f: &Fixture, name: &str) -> serde_json::Value {
    f.json(&["get", "policies.config.kio.kasten.io", name, "-n", "kasten-io"])
}

fn events_of(f: &Fixture, name: &str) -> Vec<(String, String)> {
    f.json(&["get", "events", "-n", "kasten-io"])["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["involvedObject"]["name"] == name)
        .map(|e| (e["reason"].as_str().unwrap_or_default().to_string(), e["message"].as_str().unwrap_or_default().to_string()))
        .collect()
}

fn jobs_of(f: &Fixture, policy: &str) -> Vec<serde_json::Value> {
    f.json(&["get", "jobs", "-n", "kasten-io", "-l", &format!("k10.kasten.io/policy={policy}")])["items"].as_array().unwrap().clone()
}

/// K10's documented Profile and Policy shape, for kubectl.
fn k10_yaml(f: &Fixture, minutes: &[u32]) -> String {
    let minutes: Vec<String> = minutes.iter().map(u32::to_string).collect();
    format!(
        r#"apiVersion: v1
kind: Secret
metadata: {{name: k10-s3-secret, namespace: kasten-io}}
type: secrets.kanister.io/aws
stringData:
  aws_access_key_id: {access}
  aws_secret_access_key: {secret}
---
apiVersion: config.kio.kasten.io/v1alpha1
kind: Profile
metadata: {{name: s3-immutable, namespace: kasten-io}}
spec:
  type: Location
  locationSpec:
    type: ObjectStore
    credential:
      secretType: AwsAccessKey
      secret: {{apiVersion: v1, kind: Secret, name: k10-s3-secret, namespace: kasten-io}}
    objectStore:
      objectStoreType: S3
      name: {bucket}
      region: us-east-1
      endpoint: {endpoint}
      protectionPeriod: 720h
---
apiVersion: config.kio.kasten.io/v1alpha1
kind: Policy
metadata: {{name: shop-backup, namespace: kasten-io}}
spec:
  comment: Hourly backup of the shop, exported to the immutable bucket
  frequency: "@hourly"
  subFrequency:
    minutes: [{minutes}]
  retention: {{hourly: 24, daily: 7}}
  selector:
    matchExpressions:
    - key: k10.kasten.io/appNamespace
      operator: In
      values: [shop]
  actions:
  - action: backup
    backupParameters:
      filters: {{}}
  - action: export
    exportParameters:
      frequency: "@hourly"
      profile: {{name: s3-immutable, namespace: kasten-io}}
      exportData: {{enabled: true}}
    retention: {{hourly: 24}}
"#,
        access = f.s3.access_key,
        secret = f.s3.secret_key,
        bucket = f.bucket,
        endpoint = f.s3.endpoint,
        minutes = minutes.join(", "),
    )
}

/// The next minute marks, at least 15 s away.
fn next_minutes(n: u32) -> Vec<u32> {
    let first = Utc::now() + chrono::Duration::seconds(75);
    (0..n).map(|i| (first.minute() + i) % 60).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn k10s_own_yaml_applied_with_kubectl_validates_and_runs_on_schedule() {
    let f = Fixture::new().await;
    tree::small(&f.volume("data"));
    let minutes = next_minutes(1);
    f.kubectl_apply(&k10_yaml(&f, &minutes));
    // A paused twin on the same schedule, a policy refused for a subFrequency @hourly cannot take,
    // and a profile whose key is wrong.
    let paused = k10_yaml(&f, &minutes).split("---\n").nth(2).unwrap().replace("name: shop-backup", "name: paused-backup").replace("spec:\n  comment", "spec:\n  paused: true\n  comment");
    let invalid = k10_yaml(&f, &minutes).split("---\n").nth(2).unwrap().replace("name: shop-backup", "name: bad-backup").replace("subFrequency:\n", "subFrequency:\n    hours: [3]\n");
    f.kubectl_apply(&format!(
        "{paused}---\n{invalid}---\napiVersion: v1\nkind: Secret\nmetadata: {{name: wrong-key, namespace: kasten-io}}\ntype: secrets.kanister.io/aws\nstringData: {{aws_access_key_id: {}, aws_secret_access_key: not-the-key}}\n---\n{}",
        f.s3.access_key,
        k10_yaml(&f, &minutes).split("---\n").nth(1).unwrap().replace("name: s3-immutable", "name: wrong-key-profile").replace("name: k10-s3-secret", "name: wrong-key")
    ));
    // K10's fields the product does not implement are kept, not pruned.
    let applied = policy(&f, "shop-backup");
    assert_eq!(applied["spec"]["actions"][0]["backupParameters"], serde_json::json!({"filters": {}}), "{applied}");
    assert_eq!(applied["spec"]["subFrequency"]["minutes"], serde_json::json!(minutes));

    let controller = Replica::start(&f, "controller-a", &[]);
    // Profiles: validated against their buckets, with the checks and an Event.
    let profile = eventually(60, "the profile's validation", || {
        let p = f.json(&["get", "profiles.config.kio.kasten.io", "s3-immutable", "-n", "kasten-io"]);
        p["status"]["validation"].as_str().is_some().then_some(p)
    });
    assert_eq!(profile["status"]["validation"], "Success", "{profile}");
    assert!(profile["status"]["checks"].as_array().unwrap().iter().any(|c| c["name"] == "Object lock enabled" && c["result"] == "Passed"), "{profile}");
    let wrong = eventually(60, "the wrong key's validation", || {
        let p = f.json(&["get", "profiles.config.kio.kasten.io", "wrong-key-profile", "-n", "kasten-io"]);
        p["status"]["validation"].as_str().is_some().then_some(p)
    });
    assert_eq!(wrong["status"]["validation"], "Failed", "{wrong}");
    assert!(events_of(&f, "wrong-key-profile").iter().any(|(r, _)| r == "ValidationFailed"));

    // Policies: validated into their status, with what they ignore and when they run next.
    let status = eventually(30, "the policy's validation", || {
        let p = policy(&f, "shop-backup");
        p["status"]["nextRunTime"].as_str().is_some().then(|| p["status"].clone())
    });
    assert_eq!(status["validation"], "Success", "{status}");
    assert_eq!(status["ignored"], serde_json::json!(["spec.actions[0].backupParameters", "spec.actions[1].retention"]), "{status}");
    assert!(status["nextRunTime"].as_str().unwrap().contains(&format!(":{:02}:00Z", minutes[0])), "{status}");
    let bad = eventually(30, "the invalid policy's validation", || policy(&f, "bad-backup")["status"]["validation"].as_str().map(str::to_string));
    assert_eq!(bad, "Failed");
    assert!(policy(&f, "bad-backup")["status"]["errors"][0].as_str().unwrap().contains("hours does not apply to @hourly"));
    assert!(policy(&f, "paused-backup")["status"]["nextRunTime"].is_null());

    // At the due minute the controller runs it: a restore point, and Events that say so.
    eventually(200, "a restore point made on schedule", || (f.contents().len() == 1).then_some(()));
    let done = eventually(60, "the run recorded in the policy's status", || {
        let s = policy(&f, "shop-backup")["status"].clone();
        (s["lastRunResult"] == "Succeeded").then_some(s)
    });
    assert_eq!(done["lastRestorePoints"].as_array().unwrap().len(), 1, "{done}");
    let reasons: Vec<String> = eventually(30, "the run's Events", || {
        let e = events_of(&f, "shop-backup");
        e.iter().any(|(r, _)| r == "RunSucceeded").then_some(e.into_iter().map(|(r, _)| r).collect())
    });
    for want in ["Validated", "Scheduled", "RunSucceeded"] {
        assert!(reasons.iter().any(|r| r == want), "no {want} Event: {reasons:?}");
    }
    assert_eq!(jobs_of(&f, "shop-backup").len(), 1, "one Job for one due time");
    // Its own run is not mistaken for a previous one still going (the Job's watch event may come
    // before the policy's new status).
    assert!(!events_of(&f, "shop-backup").iter().any(|(r, _)| r == "Skipped"), "{:?}", events_of(&f, "shop-backup"));
    // The paused and the invalid policy did not run; their skipped due time is an Event.
    assert!(jobs_of(&f, "paused-backup").is_empty());
    assert!(jobs_of(&f, "bad-backup").is_empty());
    assert!(events_of(&f, "paused-backup").iter().any(|(r, m)| r == "Skipped" && m.contains("paused")), "{:?}", events_of(&f, "paused-backup"));

    // Metrics say the same.
    let m = controller.scrape();
    for line in [
        "k10_controller_leader 1",
        "k10_policy_last_run_success{policy=\"shop-backup\"} 1",
        "k10_policy_valid{policy=\"bad-backup\"} 0",
        "k10_policy_paused{policy=\"paused-backup\"} 1",
        "k10_profile_valid{profile=\"s3-immutable\"} 1",
        "k10_profile_valid{profile=\"wrong-key-profile\"} 0",
    ] {
        assert!(m.lines().any(|l| l == line), "no {line:?} in\n{m}");
    }
    assert!(controller.metric("k10_policy_last_run_bytes{policy=\"shop-backup\"}").unwrap() > 0.0, "{m}");

    // On demand: K10's RunAction, created with kubectl, runs the policy and names its restore point.
    let path = f.dir.path().join("run.yaml");
    std::fs::write(&path, "apiVersion: actions.kio.kasten.io/v1alpha1\nkind: RunAction\nmetadata: {generateName: run-shop-}\nspec:\n  subject: {kind: Policy, name: shop-backup, namespace: kasten-io}\n").unwrap();
    let created = f.kubectl(&["create", "-f", path.to_str().unwrap(), "-o", "name"]);
    let name = created.trim().rsplit('/').next().unwrap().to_string();
    let run = eventually(120, "the RunAction to end", || {
        let r = f.json(&["get", "runactions.actions.kio.kasten.io", &name]);
        matches!(r["status"]["state"].as_str(), Some("Complete" | "Failed")).then_some(r)
    });
    assert_eq!(run["status"]["state"], "Complete", "{run}");
    let points = run["status"]["restorePoints"].as_array().unwrap();
    assert_eq!(points.len(), 1, "{run}");
    let point = points[0].as_str().unwrap().strip_prefix("shop/").unwrap();
    f.kubectl(&["get", "restorepoints.apps.kio.kasten.io", point, "-n", "shop"]);
    // A RunAction on a policy that does not exist fails with the reason.
    std::fs::write(&path, "apiVersion: actions.kio.kasten.io/v1alpha1\nkind: RunAction\nmetadata: {name: run-nothing}\nspec:\n  subject: {kind: Policy, name: nothing, namespace: kasten-io}\n").unwrap();
    f.kubectl(&["create", "-f", path.to_str().unwrap()]);
    let failed = eventually(30, "the bad RunAction to fail", || {
        let r = f.json(&["get", "runactions.actions.kio.kasten.io", "run-nothing"]);
        r["status"]["state"].as_str().is_some().then_some(r)
    });
    assert_eq!(failed["status"]["state"], "Failed");
    assert!(failed["status"]["error"]["message"].as_str().unwrap().contains("policy \"nothing\" not found"), "{failed}");

    // The plugin hands `policy run` to the running controller, says so, and follows it.
    let out = f.k10.run(&["policy", "run", "shop-backup"]).ok().stdout;
    assert!(out.contains("RunAction run-shop-backup-") && out.contains("the controller (controller-a) runs it"), "{out}");
    assert!(out.lines().any(|l| l.starts_with("restore point shop/shop-backup-")), "{out}");
    assert_eq!(f.contents().len(), 3);
    assert!(!controller.log().contains("panicked"), "{}", controller.log());
}

#[tokio::test(flavor = "multi_thread")]
async fn two_replicas_one_leads_and_the_other_takes_over_without_running_a_due_time_twice() {
    let f = Fixture::new().await;
    tree::small(&f.volume("data"));
    f.k10.run(&["policy", "create", "every-minute", "--namespaces", "shop", "--profile", "immutable", "--frequency", "* * * * *"]).ok();
    let a = Replica::start(&f, "replica-a", &[]);
    let holder = || f.json(&["get", "leases.coordination.k8s.io", "k10-controller", "-n", "kasten-io"])["spec"]["holderIdentity"].as_str().map(str::to_string);
    eventually(20, "replica-a to lead", || (holder().as_deref() == Some("replica-a")).then_some(()));
    let b = Replica::start(&f, "replica-b", &[]);
    assert_eq!(b.metric("k10_controller_leader"), Some(0.0), "{}", b.scrape());
    assert_eq!(a.metric("k10_controller_leader"), Some(1.0));

    // The leader runs the policy at least once, then dies without a word (SIGKILL).
    eventually(150, "a scheduled run by replica-a", || (!jobs_of(&f, "every-minute").is_empty()).then_some(()));
    drop(a);
    let killed = Instant::now();
    eventually(30, "replica-b to take over", || (holder().as_deref() == Some("replica-b")).then_some(()));
    let took = killed.elapsed();
    assert!(took <= Duration::from_secs(4 + 4), "took over after {took:?}, the Lease lasts 4 s");
    assert_eq!(b.metric("k10_controller_leader"), Some(1.0));
    let lease = f.json(&["get", "leases.coordination.k8s.io", "k10-controller", "-n", "kasten-io"]);
    assert!(lease["spec"]["leaseTransitions"].as_i64().unwrap() >= 1, "{lease}");

    // The new leader keeps the schedule: at least one more run, and never two Jobs for one due time.
    let before = jobs_of(&f, "every-minute").len();
    eventually(150, "a scheduled run by replica-b", || (jobs_of(&f, "every-minute").len() > before).then_some(()));
    let jobs = jobs_of(&f, "every-minute");
    let mut names: Vec<&str> = jobs.iter().map(|j| j["metadata"]["name"].as_str().unwrap()).collect();
    let count = names.len();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), count);
    eprintln!("took over in {took:?}; Jobs: {names:?}");
    assert!(!b.log().contains("panicked"), "{}", b.log());
}

/// The protection horizon: how far ahead the earliest lock of what k10 still needs ends. An object
/// whose lock runs out soon (maintenance did not run) pulls it below P; a maintenance run
/// extends that lock and the horizon is back above P.
#[tokio::test(flavor = "multi_thread")]
async fn the_protection_horizon_drops_below_p_without_maintenance_and_recovers_with_it() {
    let f = Fixture::new().await;
    tree::small(&f.volume("data"));
    f.k10.run(&["policy", "create", "p", "--namespaces", "shop", "--profile", "immutable"]).ok();
    f.k10.run(&["policy", "run", "p", "--wait"]).ok();
    let controller = Replica::start(&f, "controller-h", &["--horizon-every", "1s", "--maintenance-frequency", "off"]);
    let horizon = || controller.metric("k10_protection_horizon_days{profile=\"immutable\"}");
    assert_eq!(eventually(30, "the period metric", || controller.metric("k10_protection_period_days{profile=\"immutable\"}")), 30.0);
    let fresh = eventually(30, "the horizon metric", horizon);
    // Freshly written: locked for P + 20 days.
    assert!((49.0..=50.0).contains(&fresh), "horizon {fresh}");

    // An object of the repository whose lock ends in 2 days (as after 48 days without maintenance).
    let repository = f.contents()[0]["spec"]["repository"].as_str().unwrap().to_string();
    let until = Utc::now() + chrono::Duration::days(2);
    f.s3.client()
        .put_object()
        .bucket(&f.bucket)
        .key(format!("{repository}data/00/aging"))
        .body(b"old pack".to_vec().into())
        .object_lock_mode(aws_sdk_s3::types::ObjectLockMode::Compliance)
        .object_lock_retain_until_date(aws_sdk_s3::primitives::DateTime::from_secs(until.timestamp()))
        .send()
        .await
        .unwrap();
    let low = eventually(30, "the horizon to drop", || horizon().filter(|h| *h < 30.0));
    assert!((1.9..=2.0).contains(&low), "horizon {low}");

    // The controller's maintenance, due every minute now, extends it: the horizon is back above P.
    drop(controller);
    let controller = Replica::start(&f, "controller-h", &["--horizon-every", "1s", "--maintenance-frequency", "* * * * *"]);
    let horizon = || controller.metric("k10_protection_horizon_days{profile=\"immutable\"}");
    let back = eventually(150, "the horizon to recover", || horizon().filter(|h| *h >= 30.0));
    assert!(back >= 30.0 + 9.0, "maintenance extends to P + 20 days: {back}");
    assert_eq!(eventually(30, "the maintenance metric", || controller.metric("k10_maintenance_last_run_success")), 1.0);
    let jobs = f.json(&["get", "jobs", "-n", "kasten-io", "-l", "k10.kasten.io/maintenance=true"]);
    assert!(jobs["items"][0]["metadata"]["name"].as_str().unwrap().starts_with("k10-maintenance-"), "{jobs}");
}

/// After a DR restore on a new installation, the restored policies (the DR policy too) run on
/// their schedule again: the controller needs nothing but the Policy objects.
#[tokio::test(flavor = "multi_thread")]
async fn after_a_dr_restore_the_restored_policies_run_on_schedule_with_no_command() {
    use support::apiserver::{ApiServer, ApiServerOptions};
    use support::cli::{binary, K10};
    let f = Fixture::new().await;
    tree::small(&f.volume("data"));
    f.kubectl(&["create", "secret", "generic", "k10-dr-secret", "-n", "kasten-io", "--from-literal", "key=correct horse battery staple"]);
    f.k10.run(&["policy", "create", "shop", "--namespaces", "shop", "--profile", "immutable", "--frequency", "* * * * *"]).ok();
    f.k10.run(&["dr", "enable", "--profile", "immutable", "--frequency", "* * * * *"]).ok();
    f.k10.run(&["dr", "run"]).ok();

    // A new cluster: install, the passphrase, a profile on the bucket, the DR restore.
    let dir = tempfile::tempdir().unwrap();
    let new = ApiServer::start_in_background(ApiServerOptions {
        k10_binary: Some(binary()),
        volumes_root: dir.path().join("volumes"),
        default_namespace_uid: Some("0a1b2c3d-0000-4000-8000-0000000ca11e".into()),
        ..Default::default()
    });
    let kubectl = |args: &[&str]| {
        let out = std::process::Command::new("kubectl").arg("--kubeconfig").arg(new.kubeconfig_path()).args(args).output().unwrap();
        assert!(out.status.success(), "kubectl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let admin = K10::new(new.kubeconfig_path()).with_env("AWS_ACCESS_KEY_ID", &f.s3.access_key).with_env("AWS_SECRET_ACCESS_KEY", &f.s3.secret_key);
    admin.run(&["install"]).ok();
    let k10 = admin.acting_as_service_account(&new);
    kubectl(&["create", "secret", "generic", "k10-dr-secret", "-n", "kasten-io", "--from-literal", "key=correct horse battery staple"]);
    k10.run(&["profile", "create", "recovery", "--bucket", &f.bucket, "--endpoint", &f.s3.endpoint]).ok();
    k10.run(&["dr", "restore", "--source-cluster-id", &f.server.default_namespace_uid(), "--profile", "recovery"]).ok();
    // The application's namespace is back too (as a restore would bring it).
    kubectl(&["create", "namespace", "shop"]);
    let claim = dir.path().join("claim.yaml");
    std::fs::write(&claim, "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {name: data, namespace: shop}\nspec:\n  accessModes: [ReadWriteOnce]\n  resources: {requests: {storage: 1Gi}}\n").unwrap();
    kubectl(&["apply", "-f", claim.to_str().unwrap()]);
    tree::small(&new.volumes_root().join("shop").join("data"));

    // The controller on the new cluster, and no other command.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let address = format!("127.0.0.1:{port}");
    let log = dir.path().join("controller.log");
    let mut controller = k10
        .command(&["controller", "--identity", "new-cluster", "--metrics-address", &address, "--lease-duration", "4s"])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let succeeded = |policy: &str| {
        let jobs = kubectl(&["get", "jobs", "-n", "kasten-io", "-l", &format!("k10.kasten.io/policy={policy}"), "-o", "json"]);
        let jobs: serde_json::Value = serde_json::from_str(&jobs).unwrap();
        jobs["items"].as_array().unwrap().iter().any(|j| j["status"]["succeeded"] == 1)
    };
    let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        eventually(200, "both restored policies to run", || (succeeded("shop") && succeeded(k10::dr::DR_POLICY)).then_some(()))
    }));
    let _ = controller.kill();
    let _ = controller.wait();
    if ran.is_err() {
        panic!("the restored policies did not run; controller log:\n{}", std::fs::read_to_string(&log).unwrap_or_default());
    }
    // The shop's run made a restore point in the new cluster; the DR run a snapshot under its ID.
    let points = kubectl(&["get", "restorepoints.apps.kio.kasten.io", "-n", "shop", "-o", "name"]);
    assert!(points.lines().any(|l| l.contains("shop-")), "{points}");
    use k10::objectstore::storage::Storage;
    let written = f.storage().list(&k10::repo::layout::cluster_root("0a1b2c3d-0000-4000-8000-0000000ca11e")).await.unwrap();
    assert!(written.iter().any(|o| o.key.contains("/catalog/")), "no DR snapshot of the new cluster: {written:?}");
}
