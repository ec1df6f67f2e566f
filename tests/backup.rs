//! Backup policies end to end: the built binary, the API stand-in with its kubelet running the
//! data mover Jobs, and SeaweedFS with Object Lock.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use k10::objectstore::pit::PointInTime;
use k10::objectstore::storage::VersionedStorage;
use k10::repo::{ReadOnly, Repo};
use support::app::{fill, Fixture};
use support::{restic, tree};

#[tokio::test(flavor = "multi_thread")]
async fn policy_runs_capture_manifests_and_volumes() {
    let f = Fixture::new().await;
    fill(&f.volume("data"), &f.volume("www-db-0"));
    f.k10
        .run(&["policy", "create", "shop-backup", "--namespaces", "shop", "--profile", "immutable", "--retention", "hourly=2", "--require-immutable"])
        .ok();
    let list = f.k10.run(&["policy", "list"]).ok().stdout;
    assert!(list.contains("shop-backup") && list.contains("@onDemand") && list.contains("hourly=2"), "{list}");

    // A leader-election lease: state of the moment, never captured.
    f.kubectl_apply("apiVersion: coordination.k8s.io/v1\nkind: Lease\nmetadata: {name: web-leader, namespace: shop}\nspec: {holderIdentity: web-0}\n");

    // First run: one restore point.
    let run = f.k10.run(&["policy", "run", "shop-backup", "--wait"]).ok();
    println!("{}", run.all());
    assert!(run.stdout.contains("namespace shop: restore point shop-backup-"), "{}", run.stdout);
    let points = f.json(&["get", "restorepoints.apps.kio.kasten.io", "-n", "shop"]);
    assert_eq!(points["items"].as_array().unwrap().len(), 1);
    let contents = f.contents();
    let first = &contents[0]["spec"];
    assert_eq!(first["immutable"], true);
    assert_eq!(first["protectionPeriodDays"], 30);
    assert_eq!(first["snapshots"].as_array().unwrap().len(), 3, "two volumes and the manifests");

    // The repository holds every captured manifest and every file.
    let repository = first["repository"].as_str().unwrap().to_string();
    let password = f.password(first["passwordSecret"].as_str().unwrap());
    let store = f.storage();
    let end = chrono::DateTime::parse_from_rfc3339(first["endTime"].as_str().unwrap()).unwrap().to_utc();
    let repo = Repo::<ReadOnly>::open_at(store.clone(), &repository, end, &password).await.unwrap();
    let snaps = first["snapshots"].as_array().unwrap();
    let manifests = snaps.iter().find(|s| s["kind"] == "manifests").unwrap()["id"].as_str().unwrap();
    let index: serde_json::Value =
        serde_json::from_slice(&repo.read_document(manifests, "index.json").await.unwrap()).unwrap();
    let captured: Vec<String> = index["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| format!("{}/{}", o["kind"].as_str().unwrap(), o["name"].as_str().unwrap()))
        .collect();
    for want in [
        "ConfigMap/settings",
        "Secret/creds",
        "Service/web",
        "PersistentVolumeClaim/data",
        "PersistentVolumeClaim/www-db-0",
        "Deployment/web",
        "StatefulSet/db",
        "Widget/w1",
    ] {
        assert!(captured.contains(&want.to_string()), "{want} not captured: {captured:?}");
    }
    for regenerated in ["ConfigMap/kube-root-ca.crt", "ServiceAccount/default", "Lease/web-leader"] {
        assert!(!captured.contains(&regenerated.to_string()), "{regenerated} captured");
    }
    assert_eq!(index["crds"], serde_json::json!(["widgets.example.com"]));
    let widget: serde_json::Value = serde_json::from_slice(
        &repo.read_document(manifests, "manifests/example.com/v1/widgets/w1.json").await.unwrap(),
    )
    .unwrap();
    assert_eq!(widget["spec"]["size"], 3);
    for (claim, snap) in snaps.iter().filter(|s| s["kind"] == "volume").map(|s| (s["pvc"].as_str().unwrap(), s["id"].as_str().unwrap())) {
        let out = f.dir.path().join(format!("restored-{claim}"));
        repo.restore(snap, &out).await.unwrap();
        tree::assert_same(&f.volume(claim), &out);
    }
    // Stock restic agrees.
    let copy = tempfile::tempdir().unwrap();
    let view = PointInTime::new(store.clone(), &repository, end).await.unwrap();
    restic::copy_repository(&view, &repository, copy.path()).await;
    restic::check(copy.path(), &password);

    // No change: almost nothing uploaded. One file changed: about that file.
    let second = f.k10.run(&["policy", "run", "shop-backup", "--wait"]).ok();
    let uploaded = |c: &serde_json::Value| c["spec"]["uploadedBytes"].as_u64().unwrap();
    let contents = f.contents();
    println!("uploaded: first {} bytes, no change {} bytes", uploaded(&contents[0]), uploaded(&contents[1]));
    assert!(uploaded(&contents[1]) < 256 * 1024, "{}", second.stdout);
    std::fs::write(f.volume("data").join("changed.bin"), tree::noise(9, 4 * 1024 * 1024)).unwrap();
    f.k10.run(&["policy", "run", "shop-backup", "--wait"]).ok();

    // Retention hourly=2: the third run retired the first; its data stays readable as of its time.
    let contents = f.contents();
    assert_eq!(contents.len(), 2, "the oldest restore point was retired");
    let third = uploaded(&contents[1]);
    println!("uploaded after changing a 4 MiB file: {third} bytes");
    assert!((4 * 1024 * 1024..5 * 1024 * 1024).contains(&third), "{third}");
    let live = Repo::open(store.clone(), &repository, &password).await.unwrap();
    let live_ids: Vec<String> = live.snapshots().await.unwrap().into_iter().map(|s| s.id).collect();
    assert!(!live_ids.contains(&manifests.to_string()), "the retired snapshot is forgotten");
    let old = Repo::<ReadOnly>::open_at(store.clone(), &repository, end, &password).await.unwrap();
    let data_snap = snaps.iter().find(|s| s["pvc"] == "data").unwrap()["id"].as_str().unwrap();
    let out = f.dir.path().join("retired-data");
    old.restore(data_snap, &out).await.unwrap();
    tree::assert_same(&tree_without(&f.volume("data"), "changed.bin", f.dir.path()), &out);

    // Listing and retiring through the CLI.
    let table = f.k10.run(&["restorepoint", "list", "-n", "shop"]).ok().stdout;
    println!("{table}");
    assert!(table.contains("shop-backup") && table.contains("immutable") && table.contains("yes"), "{table}");
    let all = f.k10.run(&["restorepoint", "list", "-A"]).ok().stdout;
    assert_eq!(all.lines().count(), 3, "{all}");
    let name = contents[0]["spec"]["restorePointRef"]["name"].as_str().unwrap();
    let card = f.k10.run(&["restorepoint", "get", name, "-n", "shop"]).ok().stdout;
    assert!(card.contains("Protected Until:") && card.contains("volume data"), "{card}");
    f.k10.run(&["restorepoint", "retire", name, "-n", "shop"]).ok();
    assert_eq!(f.contents().len(), 1);
    f.k10.run(&["restorepoint", "get", name, "-n", "shop"]).fails_with(&["not found"]);
}

/// A copy of `dir` without one file (what the volume looked like before it was added).
fn tree_without(dir: &Path, file: &str, scratch: &Path) -> PathBuf {
    let copy = scratch.join("before-change");
    let status = Command::new("cp").arg("-a").arg(dir).arg(&copy).status().unwrap();
    assert!(status.success());
    std::fs::remove_file(copy.join(file)).unwrap();
    copy
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_run_leaves_no_restore_point_and_the_next_succeeds() {
    let f = Fixture::new().await;
    std::fs::write(f.volume("data").join("big.bin"), tree::noise(1, 60 * 1024 * 1024)).unwrap();
    std::fs::write(f.volume("www-db-0").join("big.bin"), tree::noise(2, 60 * 1024 * 1024)).unwrap();
    f.k10.run(&["policy", "create", "p", "--namespaces", "shop", "--profile", "immutable"]).ok();

    // A node failure mid-run: the second data mover's pod is deleted while it runs.
    let kubeconfig = f.server.kubeconfig_path().to_path_buf();
    let killer = std::thread::spawn(move || {
        for _ in 0..600 {
            let out = Command::new("kubectl")
                .arg("--kubeconfig")
                .arg(&kubeconfig)
                .args(["get", "pods", "-n", "shop", "-o", "name"])
                .output()
                .unwrap();
            let pods = String::from_utf8_lossy(&out.stdout).into_owned();
            if let Some(pod) = pods.lines().find(|p| p.contains("-1-")) {
                Command::new("kubectl").arg("--kubeconfig").arg(&kubeconfig).args(["delete", "-n", "shop", pod]).output().unwrap();
                return true;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        false
    });
    let failed = f.k10.run(&["policy", "run", "p", "--wait"]);
    assert!(killer.join().unwrap(), "the second data mover never ran");
    failed.fails_with(&["backup of namespace \"shop\" failed", "no restore point was created"]);
    assert!(f.contents().is_empty(), "a failed run left a restore point");
    let points = f.json(&["get", "restorepoints.apps.kio.kasten.io", "-n", "shop"]);
    assert!(points["items"].as_array().unwrap().is_empty());
    // What the failed run wrote is forgotten: the repository lists no snapshot.
    let uid = f.json(&["get", "namespace", "shop"])["metadata"]["uid"].as_str().unwrap().to_string();
    let repository = format!("k10/{}/repos/{uid}/", f.server.default_namespace_uid());
    let password = f.password(&format!("k10-repo-{uid}"));
    let repo = Repo::open(f.storage(), &repository, &password).await.unwrap();
    assert!(repo.snapshots().await.unwrap().is_empty());

    f.k10.run(&["policy", "run", "p", "--wait"]).ok();
    assert_eq!(f.contents().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_policies_are_refused() {
    let f = Fixture::new().await;
    f.k10
        .run(&["policy", "create", "p", "--namespaces", "shop", "--profile", "nope"])
        .fails_with(&["profile \"nope\" not found"]);
    f.k10
        .run(&["policy", "create", "p", "--namespaces", "shop,ghost", "--profile", "immutable"])
        .fails_with(&["namespace \"ghost\" not found"]);
    f.k10
        .run(&["profile", "create", "plain", "--bucket", &f.bucket, "--endpoint", &f.s3.endpoint])
        .ok();
    f.k10
        .run(&["policy", "create", "p", "--namespaces", "shop", "--profile", "plain", "--require-immutable"])
        .fails_with(&["profile \"plain\" is not immutable"]);
    f.k10
        .run(&["policy", "create", "p", "--namespaces", "shop", "--profile", "immutable", "--frequency", "every tuesday"])
        .fails_with(&["invalid frequency"]);
    f.k10
        .run(&["policy", "create", "p", "--namespaces", "shop", "--profile", "immutable", "--retention", "hourly=x"])
        .fails_with(&["not a whole number"]);
    assert!(f.json(&["get", "policies.config.kio.kasten.io", "-n", "kasten-io"])["items"].as_array().unwrap().is_empty());

    // A scheduled policy is the Policy alone: the controller (install's Deployment) runs it.
    let out = f.k10
        .run(&["policy", "create", "hourly", "--namespaces", "shop", "--profile", "immutable", "--frequency", "@hourly", "--require-immutable"])
        .ok()
        .stdout;
    assert!(out.contains("the controller runs it @hourly"), "{out}");
    let hourly = f.json(&["get", "policies.config.kio.kasten.io", "hourly", "-n", "kasten-io"]);
    assert_eq!(hourly["spec"]["frequency"], "@hourly");
    assert_eq!(hourly["metadata"]["annotations"]["k10.kasten.io/require-immutable"], "true");
    let controller = f.json(&["get", "deployment", "k10-controller", "-n", "kasten-io"]);
    let pod = &controller["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    assert_eq!(container["command"], serde_json::json!(["kubectl-k10"]));
    // It also runs retention maintenance, daily.
    assert_eq!(container["args"], serde_json::json!(["controller", "--maintenance-frequency", "@daily", "--maintenance-timeout", "21600s"]));
    // It uses the API as the k10 ServiceAccount, as a non-root user.
    assert_eq!(pod["serviceAccountName"], "k10");
    assert_eq!(container["securityContext"]["runAsNonRoot"], true);
    assert_eq!(container["securityContext"]["capabilities"]["drop"], serde_json::json!(["ALL"]));
    f.k10.run(&["policy", "delete", "hourly"]).ok();
    let cronjobs = f.kubectl(&["get", "cronjobs", "-n", "kasten-io", "-o", "name"]);
    assert_eq!(cronjobs.trim(), "", "no CronJob: the controller schedules");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_control_pod_replaced_mid_run_makes_one_restore_point() {
    let f = Fixture::new().await;
    std::fs::write(f.volume("data").join("big.bin"), tree::noise(3, 40 * 1024 * 1024)).unwrap();
    f.k10.run(&["policy", "create", "p", "--namespaces", "shop", "--profile", "immutable"]).ok();
    let out = f.k10.run(&["policy", "run", "p"]).ok().stdout;
    let job = out.split("Job kasten-io/").nth(1).unwrap().split(';').next().unwrap().to_string();

    // Once its first data mover runs, the control pod is force-deleted: its process runs on, and
    // the Job controller starts a second pod of the same Job at once.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    let control = loop {
        assert!(std::time::Instant::now() < deadline, "the run never started a data mover");
        let movers = f.json(&["get", "jobs", "-n", "shop"])["items"].as_array().unwrap().len();
        let pods = f.json(&["get", "pods", "-n", "kasten-io", "-l", &format!("job-name={job}")]);
        if let (true, Some(pod)) = (movers > 0, pods["items"].as_array().unwrap().first()) {
            break pod["metadata"]["name"].as_str().unwrap().to_string();
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    f.kubectl(&["delete", "pod", &control, "-n", "kasten-io", "--force", "--grace-period=0"]);
    f.kubectl(&["wait", "--for=condition=complete", "--timeout=180s", &format!("job/{job}"), "-n", "kasten-io"]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(180);
    while f.server.orphans_running() > 0 {
        assert!(std::time::Instant::now() < deadline, "the replaced pod's process never ended");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let pods = f.json(&["get", "pods", "-n", "kasten-io", "-l", &format!("job-name={job}")]);
    let replacement = pods["items"][0]["metadata"]["name"].as_str().unwrap().to_string();
    assert_ne!(replacement, control, "the Job controller made a second pod");
    let log = f.kubectl(&["logs", &replacement, "-n", "kasten-io"]);

    // Two pods ran the Job; it has one restore point, and the repository holds only its snapshots.
    assert_eq!(f.contents().len(), 1, "{log}");
    let content = &f.contents()[0];
    let uid = f.json(&["get", "namespace", "shop"])["metadata"]["uid"].as_str().unwrap().to_string();
    let repository = format!("k10/{}/repos/{uid}/", f.server.default_namespace_uid());
    let repo = Repo::open(f.storage(), &repository, &f.password(&format!("k10-repo-{uid}"))).await.unwrap();
    let mut live: Vec<String> = repo.snapshots().await.unwrap().into_iter().map(|s| s.id).collect();
    let mut recorded: Vec<String> = content["spec"]["snapshots"].as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap().to_string()).collect();
    live.sort();
    recorded.sort();
    assert_eq!(live, recorded, "the losing pod's snapshots are forgotten");
    // The restore point is named for the Job, whichever pod recorded it; the replacement says so
    // when the first pod was first.
    let name = content["spec"]["restorePointRef"]["name"].as_str().unwrap();
    assert!(name.starts_with("p-"), "{name}");
    assert!(log.contains(&format!("restore point {name}")), "{log}");
}

/// Every change to a Secret in `scope` (`-n NS` or `-A`) while `during` runs, as a watcher sees
/// it.
fn secret_events(f: &Fixture, scope: &[&str], during: impl FnOnce()) -> Vec<serde_json::Value> {
    let mut watch = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(f.server.kubeconfig_path())
        .args(["get", "secrets", "--watch-only", "--output-watch-events", "-o", "json"])
        .args(scope)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(500));
    during();
    std::thread::sleep(std::time::Duration::from_millis(500));
    watch.kill().unwrap();
    let mut seen = String::new();
    std::io::Read::read_to_string(watch.stdout.as_mut().unwrap(), &mut seen).unwrap();
    watch.wait().unwrap();
    serde_json::Deserializer::from_str(&seen).into_iter().map(Result::unwrap).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_data_movers_secret_is_owned_by_its_job_from_the_moment_it_exists() {
    let f = Fixture::new().await;
    tree::small(&f.volume("data"));
    f.k10.run(&["policy", "create", "p", "--namespaces", "shop", "--profile", "immutable"]).ok();
    let mut out = String::new();
    let events = secret_events(&f, &["-n", "shop"], || out = f.k10.run(&["policy", "run", "p", "--wait"]).ok().stderr);
    // Without a snapshot class the data movers read the live volumes beside them, and say that
    // the keys are exposed to the namespace for the run.
    assert!(out.contains("the store's keys and the repository key are exposed to shop for the run"), "{out}");
    let movers: Vec<&serde_json::Value> = events.iter().filter(|e| e["object"]["metadata"]["name"].as_str().unwrap_or("").starts_with("k10-backup-")).collect();
    assert!(movers.iter().any(|e| e["type"] == "ADDED"), "the run's data mover Secrets were not seen: {events:?}");
    for e in &movers {
        let owners = &e["object"]["metadata"]["ownerReferences"];
        assert_eq!(owners[0]["kind"], "Job", "a data mover's Secret without its Job as owner ({}): {e}", e["type"]);
        assert!(e["object"]["metadata"]["name"].as_str().unwrap().starts_with(owners[0]["name"].as_str().unwrap()), "{e}");
    }
    let left = f.kubectl(&["get", "secrets,jobs", "-n", "shop", "-o", "name"]);
    assert!(!left.contains("k10-backup-"), "{left}");
    assert_eq!(f.contents().len(), 1);
}

/// With a snapshot class, backup, verify and restore run their data movers in kasten-io: no
/// Secret holding the store's keys or a repository password exists anywhere else, at any moment
/// (a watcher of every namespace's Secrets sees every change).
#[tokio::test(flavor = "multi_thread")]
async fn with_a_snapshot_class_no_key_leaves_kasten_io() {
    let f = Fixture::new().await;
    tree::small(&f.volume("data"));
    let original = f.save_volumes("original");
    f.add_snapshot_class();
    f.k10.run(&["policy", "create", "p", "--namespaces", "shop", "--profile", "immutable"]).ok();
    let (mut backup, mut verify, mut restore) = (String::new(), String::new(), String::new());
    let events = secret_events(&f, &["-A"], || {
        backup = f.k10.run(&["policy", "run", "p", "--wait"]).ok().stderr;
        let point = f.contents()[0]["metadata"]["name"].as_str().unwrap().to_string();
        verify = f.k10.run(&["restorepoint", "verify", &point]).ok().all();
        f.kubectl(&["delete", "namespace", "shop"]);
        restore = f.k10.run(&["restore", &point, "--wait"]).ok().all();
        // The watcher sees what happens: this canary too.
        f.kubectl(&["create", "secret", "generic", "canary", "-n", "default", "--from-literal=k=v"]);
        std::thread::sleep(std::time::Duration::from_millis(300));
    });
    assert!(backup.contains("volume data: its data mover reads the snapshot's clone in kasten-io; no key reaches shop"), "{backup}");
    assert!(restore.contains("volume data: restoring data in kasten-io (its class has CSI snapshots: no key reaches shop)"), "{restore}");
    assert!(events.iter().any(|e| e["object"]["metadata"]["name"] == "canary"), "{events:?}");
    let keys = [k10::datamover::ENV_ACCESS_KEY, k10::datamover::ENV_SECRET_KEY, k10::datamover::ENV_KEY, k10::datamover::ENV_PASSWORD];
    for e in events.iter().filter(|e| e["object"]["metadata"]["namespace"] != "kasten-io") {
        let data = e["object"]["data"].as_object().cloned().unwrap_or_default();
        assert!(keys.iter().all(|k| !data.contains_key(*k)), "a Secret with the store's keys outside kasten-io: {e}");
        assert!(!e["object"]["metadata"]["name"].as_str().unwrap().starts_with("k10-"), "{e}");
    }
    // Verify compared every volume, from snapshot clones in kasten-io; the restore is whole.
    assert!(verify.contains("manifests and 2 volumes restored identical"), "{verify}");
    tree::assert_same(&original.join("data"), &f.volume("data"));
    // Nothing of the three is left: no data mover, snapshot, clone or content.
    assert_eq!(made_by_k10(&f), Vec::<String>::new());
    let jobs = f.kubectl(&["get", "jobs", "-n", "shop", "-o", "name"]);
    assert!(jobs.trim().is_empty(), "no data mover ran in the application's namespace: {jobs}");
}

/// What the product's runs made in the cluster (`kind/name`, sorted): data mover Jobs and
/// Secrets, snapshots and clones, in the application's namespace and in kasten-io, and every
/// VolumeSnapshotContent.
fn made_by_k10(f: &Fixture) -> Vec<String> {
    let mut made = Vec::new();
    for ns in ["shop", "kasten-io"] {
        let out = f.kubectl(&["get", "jobs,secrets,persistentvolumeclaims,volumesnapshots.snapshot.storage.k8s.io", "-n", ns, "-l", "app.kubernetes.io/managed-by=k10", "-o", "name"]);
        made.extend(out.lines().filter(|l| ["/k10-backup-", "/k10-snap-", "/k10-restore-", "/k10-verify-"].iter().any(|p| l.contains(p))).map(|l| format!("{ns}/{l}")));
    }
    made.extend(f.kubectl(&["get", "volumesnapshotcontents.snapshot.storage.k8s.io", "-o", "name"]).lines().map(str::to_string));
    made.sort();
    made
}

/// A background run killed (its control Job deleted, as `kubectl delete job` or an operator's
/// cleanup does) at each step of a volume's backup from a CSI snapshot. The cluster removes what
/// the control Job owns at once; the next run removes the rest, forgets the snapshots no restore
/// point refers to, and says so. Each kill is exact: the stand-in holds the run's next request
/// until its process is dead.
#[tokio::test(flavor = "multi_thread")]
async fn a_run_killed_at_each_step_leaves_nothing_after_the_next_run() {
    let f = Fixture::new().await;
    tree::small(&f.volume("data"));
    f.add_snapshot_class();
    f.k10.run(&["policy", "create", "p", "--namespaces", "shop", "--profile", "immutable"]).ok();
    f.k10.run(&["policy", "run", "p", "--wait"]).ok();
    let spec = f.contents()[0]["spec"].clone();
    let password = f.password(spec["passwordSecret"].as_str().unwrap());
    let steps = [
        ("after its data mover's Job", "POST", "/api/v1/namespaces/kasten-io/secrets"),
        ("after the data mover's Secret", "PATCH", "/apis/batch/v1/namespaces/kasten-io/jobs/k10-backup-"),
        ("after the snapshot", "DELETE", "/apis/snapshot.storage.k8s.io/v1/namespaces/shop/volumesnapshots/"),
        ("before the restore point", "POST", "/apis/apps.kio.kasten.io/v1alpha1/restorepointcontents"),
    ];
    for (step, method, path) in steps {
        let hold = f.server.hold(method, path);
        let out = f.k10.run(&["policy", "run", "p"]).ok().stdout;
        let job = out.split("Job kasten-io/").nth(1).unwrap().split(';').next().unwrap().to_string();
        hold.reached(std::time::Duration::from_secs(120)).await;
        f.kubectl(&["delete", "job", &job, "-n", "kasten-io", "--wait=false"]);
        // Its pods (and their processes) go with it; only then is the held request let go.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while !f.kubectl(&["get", "pods", "-n", "kasten-io", "-l", &format!("job-name={job}"), "-o", "name"]).trim().is_empty() {
            assert!(std::time::Instant::now() < deadline, "{step}: the control pod stayed");
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
        hold.release();
        let left = made_by_k10(&f);
        match step {
            // The data mover, its Secret, snapshot copy and clone went with the control Job...
            "after its data mover's Job" | "after the data mover's Secret" | "before the restore point" => {
                assert_eq!(left, Vec::<String>::new(), "{step}")
            }
            // ...but nothing can own the snapshot cut in the application's namespace.
            _ => assert!(left.iter().any(|l| l.starts_with("shop/volumesnapshot")) && left.len() == 2, "{step}: {left:?}"),
        }

        // The next run cleans up, says what it removed, and protects the namespace.
        let next = f.k10.run(&["policy", "run", "p", "--wait"]).ok();
        for thing in left.iter().filter_map(|l| l.rsplit('/').next()) {
            assert!(next.stderr.contains(thing), "{step}: the next run did not say it removed {thing}:\n{}", next.stderr);
        }
        assert_eq!(made_by_k10(&f), Vec::<String>::new(), "{step}: left behind after the next run");
        let repo = Repo::open(f.storage(), spec["repository"].as_str().unwrap(), &password).await.unwrap();
        let mut live: Vec<String> = repo.snapshots().await.unwrap().into_iter().map(|s| s.id).collect();
        let mut recorded: Vec<String> = f
            .contents()
            .iter()
            .flat_map(|c| c["spec"]["snapshots"].as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap().to_string()).collect::<Vec<_>>())
            .collect();
        live.sort();
        recorded.sort();
        assert_eq!(live, recorded, "{step}: the repository holds only snapshots of restore points");
        if step == "before the restore point" {
            assert!(next.stderr.contains("forgot 3 repository snapshot(s) of interrupted runs"), "{}", next.stderr);
        }
    }
    assert_eq!(f.contents().len(), 1 + steps.len(), "one restore point per finished run");
}

#[tokio::test(flavor = "multi_thread")]
async fn crds_rbac_and_background_runs_work_with_kubectl() {
    let f = Fixture::new().await;
    std::fs::write(f.volume("data").join("a.txt"), b"a").unwrap();
    // install applied the ServiceAccount and the RBAC the commands need.
    f.kubectl(&["get", "serviceaccount", "k10", "-n", "kasten-io"]);
    let role = f.json(&["get", "role", "k10", "-n", "kasten-io"]);
    let rules = role["rules"].as_array().unwrap();
    assert!(rules.iter().any(|r| r["resources"] == serde_json::json!(["pods/log"]) && r["verbs"] == serde_json::json!(["get"])));
    let binding = f.json(&["get", "clusterrolebinding", "k10"]);
    assert_eq!(binding["subjects"][0]["name"], "k10");
    // A Policy written by hand with K10's field names is read by the product.
    f.kubectl_apply(
        r#"
apiVersion: config.kio.kasten.io/v1alpha1
kind: Policy
metadata: {name: by-hand, namespace: kasten-io}
spec:
  frequency: "@onDemand"
  retention: {daily: 7}
  selector:
    matchExpressions:
    - {key: k10.kasten.io/appNamespace, operator: In, values: [shop]}
  actions:
  - action: backup
  - action: export
    exportParameters:
      frequency: "@onDemand"
      profile: {name: immutable, namespace: kasten-io}
      exportData: {enabled: true}
"#,
    );
    let list = f.k10.run(&["policy", "list"]).ok().stdout;
    assert!(list.contains("by-hand") && list.contains("daily=7"), "{list}");
    // A policy selecting namespaces by label.
    f.kubectl(&["label", "namespace", "shop", "tier=gold"]);
    f.k10.run(&["policy", "create", "gold", "--selector", "tier=gold", "--profile", "immutable"]).ok();
    let gold = f.k10.run(&["policy", "list"]).ok().stdout;
    assert!(gold.lines().any(|l| l.starts_with(" gold") && l.contains("tier=gold")), "{gold}");
    let run = f.k10.run(&["policy", "run", "gold", "--wait"]).ok().stdout;
    assert!(run.contains("namespace shop: restore point gold-"), "{run}");
    f.k10.run(&["policy", "create", "none", "--selector", "tier=platinum", "--profile", "immutable"]).ok();
    f.k10.run(&["policy", "run", "none", "--wait"]).fails_with(&["policy \"none\" selects no namespace"]);
    // A namespace that fails does not keep the others from being protected.
    f.kubectl(&["create", "namespace", "gone"]);
    f.k10.run(&["policy", "create", "two", "--namespaces", "shop,gone", "--profile", "immutable"]).ok();
    f.kubectl(&["delete", "namespace", "gone"]);
    let partial = f.k10.run(&["policy", "run", "two", "--wait"]);
    let partial = partial.fails_with(&["1 of 2 namespaces failed", "namespace \"gone\" not found"]);
    assert!(partial.stdout.contains("namespace shop: restore point two-"), "{}", partial.stdout);
    let runs_before = f.contents().len();

    // Without --wait, a Job in kasten-io runs the policy (here through the stand-in kubelet).
    let out = f.k10.run(&["policy", "run", "by-hand"]).ok().stdout;
    let job = out.split("Job kasten-io/").nth(1).unwrap().split(';').next().unwrap().to_string();
    f.kubectl(&["wait", "--for=condition=complete", "--timeout=120s", &format!("job/{job}"), "-n", "kasten-io"]);
    assert_eq!(f.contents().len(), runs_before + 1);
    let policy = f.json(&["get", "policies.config.kio.kasten.io", "by-hand", "-n", "kasten-io"]);
    assert_eq!(policy["status"]["lastRunResult"], "Succeeded");
}

#[tokio::test(flavor = "multi_thread")]
async fn volumes_with_a_snapshot_class_are_read_from_a_csi_snapshot_clone() {
    let f = Fixture::new().await;
    tree::small(&f.volume("data"));
    f.add_snapshot_class();
    f.k10.run(&["policy", "create", "p", "--namespaces", "shop", "--profile", "immutable"]).ok();
    let run = f.k10.run(&["policy", "run", "p", "--wait"]).ok();
    assert!(run.stderr.contains("volume data (1/2, from the snapshot volume)"), "{}", run.stderr);

    // The volume snapshots in the repository say where they were read from.
    let spec = f.contents()[0]["spec"].clone();
    let password = f.password(spec["passwordSecret"].as_str().unwrap());
    let repo = Repo::open(f.storage(), spec["repository"].as_str().unwrap(), &password).await.unwrap();
    let snapshots = repo.snapshots().await.unwrap();
    let volumes: Vec<_> = snapshots.iter().filter(|s| s.tags.contains(&"kind=volume".to_string())).collect();
    assert_eq!(volumes.len(), 2);
    assert!(volumes.iter().all(|s| s.tags.contains(&"source=snapshot".to_string())), "{volumes:?}");
    let data = volumes.iter().find(|s| s.tags.contains(&"pvc=data".to_string())).unwrap();
    let out = f.dir.path().join("from-snapshot");
    repo.read_only().restore(&data.id, &out).await.unwrap();
    tree::assert_same(&f.volume("data"), &out);

    // The snapshots and their clones are gone; the application's claims are untouched.
    let snaps = f.json(&["get", "volumesnapshots.snapshot.storage.k8s.io", "-n", "shop"]);
    assert!(snaps["items"].as_array().unwrap().is_empty(), "{snaps}");
    let claims = f.kubectl(&["get", "pvc", "-n", "shop", "-o", "name"]);
    assert_eq!(claims.lines().count(), 2, "{claims}");
}

#[tokio::test(flavor = "multi_thread")]
async fn two_first_runs_at_once_share_one_repository() {
    let f = Fixture::new().await;
    std::fs::write(f.volume("data").join("one.bin"), tree::noise(5, 2 * 1024 * 1024)).unwrap();
    for p in ["first", "second"] {
        f.k10.run(&["policy", "create", p, "--namespaces", "shop", "--profile", "immutable"]).ok();
    }
    // Both runs find no repository and no password Secret at the same moment.
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| f.k10.run(&["policy", "run", "first", "--wait"]));
        let b = s.spawn(|| f.k10.run(&["policy", "run", "second", "--wait"]));
        (a.join().unwrap(), b.join().unwrap())
    });
    let (a, b) = (a.ok(), b.ok());
    // Which path each took: exactly one created the repository, the other waited for it.
    let created = |r: &support::cli::Run| r.stderr.contains("namespace shop: created its repository");
    let waited = |r: &support::cli::Run| r.stderr.contains("namespace shop: waited for another run to create its repository");
    assert!(created(&a) != created(&b), "exactly one run creates the repository:\n{}\n{}", a.stderr, b.stderr);
    assert!(!(waited(&a) && waited(&b)), "{}\n{}", a.stderr, b.stderr);
    // (Whether they met at the claim depends on timing: tests/claims.rs makes them meet.)

    // One password, one repository with one config, and both runs' snapshots in it.
    let contents = f.contents();
    assert_eq!(contents.len(), 2);
    let spec = |i: usize| &contents[i]["spec"];
    assert_eq!(spec(0)["repository"], spec(1)["repository"]);
    assert_eq!(spec(0)["passwordSecret"], spec(1)["passwordSecret"]);
    let repository = spec(0)["repository"].as_str().unwrap().to_string();
    let configs = f.storage().list_versions(&format!("{repository}config")).await.unwrap();
    assert_eq!(configs.len(), 1, "the repository was created twice: {configs:?}");
    let password = f.password(spec(0)["passwordSecret"].as_str().unwrap());
    let repo = Repo::open(f.storage(), &repository, &password).await.unwrap();
    let ids: Vec<String> = repo.snapshots().await.unwrap().into_iter().map(|s| s.id).collect();
    for i in 0..2 {
        for snap in spec(i)["snapshots"].as_array().unwrap() {
            assert!(ids.contains(&snap["id"].as_str().unwrap().to_string()), "{snap} is not in the repository");
        }
    }
}

/// Claims without a usable StorageClass — bound statically (`""`), without one, or whose class
/// was deleted — are read from the live volume (the run says why), never fail the run, and come
/// back with their data and their class as it was.
#[tokio::test(flavor = "multi_thread")]
async fn claims_without_a_usable_class_are_read_live_and_come_back_as_they_were() {
    let f = Fixture::new().await;
    use support::apiserver::STANDARD_PROVISIONER;
    // The cluster has CSI snapshots, so each claim's class is looked up.
    f.add_snapshot_class();
    // No default class any more: a claim created without one keeps none.
    f.kubectl(&["annotate", "storageclass", "standard", "storageclass.kubernetes.io/is-default-class-"]);
    f.kubectl_apply(&format!(
        "apiVersion: storage.k8s.io/v1\nkind: StorageClass\nmetadata: {{name: retired}}\nprovisioner: {STANDARD_PROVISIONER}\n"
    ));
    f.kubectl(&["create", "namespace", "static"]);
    // The volume a claim of class "" binds to: made by hand.
    let volume_by_hand = |name: &str| {
        f.kubectl_apply(&format!(
            "apiVersion: v1\nkind: PersistentVolume\nmetadata: {{name: {name}}}\nspec:\n  capacity: {{storage: 1Gi}}\n  accessModes: [ReadWriteOnce]\n  persistentVolumeReclaimPolicy: Retain\n  storageClassName: \"\"\n  hostPath: {{path: /srv/{name}}}\n"
        ))
    };
    volume_by_hand("by-hand-1");
    let claim = |name: &str, class: Option<&str>| {
        let class = class.map(|c| format!("  storageClassName: \"{c}\"\n")).unwrap_or_default();
        format!(
            "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {{name: {name}, namespace: static}}\nspec:\n{class}  accessModes: [ReadWriteOnce]\n  resources: {{requests: {{storage: 1Gi}}}}\n---\n"
        )
    };
    f.kubectl_apply(&[claim("bound-by-hand", Some("")), claim("no-class", None), claim("class-gone", Some("retired"))].concat());
    f.kubectl(&["delete", "storageclass", "retired"]);
    let volumes = f.server.volumes_root().join("static");
    for (i, name) in ["bound-by-hand", "no-class", "class-gone"].iter().enumerate() {
        std::fs::write(volumes.join(name).join("data.bin"), tree::noise(i as u64, 64 * 1024)).unwrap();
    }
    let classes = || {
        let claims = f.json(&["get", "pvc", "-n", "static"]);
        let mut out: Vec<(String, serde_json::Value)> = claims["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| (c["metadata"]["name"].as_str().unwrap().to_string(), c["spec"]["storageClassName"].clone()))
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    };
    let before = classes();
    assert_eq!(
        before,
        [
            ("bound-by-hand".to_string(), serde_json::json!("")),
            ("class-gone".to_string(), serde_json::json!("retired")),
            ("no-class".to_string(), serde_json::Value::Null),
        ]
    );

    f.k10.run(&["policy", "create", "static", "--namespaces", "static", "--profile", "immutable"]).ok();
    let run = f.k10.run(&["policy", "run", "static", "--wait"]).ok();
    for why in [
        "volume bound-by-hand (",
        "from the live volume: the claim is bound statically (storageClassName \"\"))",
        "volume no-class (",
        "from the live volume: the claim has no StorageClass)",
        "volume class-gone (",
        "from the live volume: its StorageClass \"retired\" no longer exists)",
    ] {
        assert!(run.stderr.contains(why), "{why:?} in:\n{}", run.stderr);
    }
    let saved = f.dir.path().join("static-volumes");
    assert!(Command::new("cp").arg("-a").arg(&volumes).arg(&saved).status().unwrap().success());

    // The namespace is lost, and restored: each claim with its data and its class as it was.
    f.kubectl(&["delete", "namespace", "static"]);
    let content = f
        .contents()
        .into_iter()
        .find(|c| c["spec"]["sourceNamespace"] == "static")
        .expect("a restore point of static");
    let name = content["metadata"]["name"].as_str().unwrap().to_string();
    // No volume for the statically bound claim: its data cannot be restored, and the restore
    // says so within a minute (not after hours of waiting).
    let started = std::time::Instant::now();
    let failed = f.k10.run(&["restore", &name, "--wait"]);
    let failed = failed.fails_with(&["cannot be scheduled", "unbound immediate PersistentVolumeClaims", "needs a PersistentVolume"]);
    println!("{}\n(after {:?})", failed.stderr, started.elapsed());
    assert!(started.elapsed() < std::time::Duration::from_secs(60), "{:?}", started.elapsed());
    // While it waited, the progress said what the pod was waiting for.
    assert!(failed.stderr.contains(": pod k10-restore-") && failed.stderr.contains("pending: not scheduled yet (0/1 nodes are available"), "{}", failed.stderr);
    // With a volume made for it, the restore brings everything back.
    f.kubectl(&["delete", "namespace", "static"]);
    volume_by_hand("by-hand-2");
    f.k10.run(&["restore", &name, "--wait"]).ok();
    assert_eq!(classes(), before);
    for claim in ["bound-by-hand", "no-class", "class-gone"] {
        tree::assert_same(&saved.join(claim), &volumes.join(claim));
    }
}

/// A second policy run reads only what changed on each volume: its volume snapshots are
/// `read=changed`, take every unchanged file from the first run's unread, and restore the volume
/// as it is now.
#[tokio::test(flavor = "multi_thread")]
async fn a_second_run_reads_only_what_changed() {
    let f = Fixture::new().await;
    fill(&f.volume("data"), &f.volume("www-db-0"));
    f.k10.run(&["policy", "create", "p", "--namespaces", "shop", "--profile", "immutable"]).ok();
    f.k10.run(&["policy", "run", "p", "--wait"]).ok();
    std::fs::write(f.volume("data").join("new.txt"), b"written after the first run").unwrap();
    f.k10.run(&["policy", "run", "p", "--wait"]).ok();

    let spec = f.contents()[0]["spec"].clone();
    let password = f.password(spec["passwordSecret"].as_str().unwrap());
    let repo = Repo::open(f.storage(), spec["repository"].as_str().unwrap(), &password).await.unwrap();
    let volumes: Vec<_> = repo.snapshots().await.unwrap().into_iter().filter(|s| s.tags.contains(&"kind=volume".to_string())).collect();
    let (full, changed): (Vec<_>, Vec<_>) = volumes.into_iter().partition(|s| s.tags.contains(&"read=full".to_string()));
    assert_eq!((full.len(), changed.len()), (2, 2), "full: {full:?}\nchanged: {changed:?}");
    for s in &changed {
        let data = s.tags.contains(&"pvc=data".to_string());
        let expected_unread = if data { s.files - 1 } else { s.files };
        println!("{}: {} files, {} unread", if data { "data" } else { "www-db-0" }, s.files, s.files_unread);
        assert_eq!(s.files_unread, expected_unread, "{s:?}");
        if data {
            let out = f.dir.path().join("second-run");
            repo.read_only().restore(&s.id, &out).await.unwrap();
            tree::assert_same(&f.volume("data"), &out);
        }
    }
}
