//! Disaster recovery end to end: the catalog exported through an immutable DR policy, the
//! comprehensive attack, and the recovery into a new cluster as of a point in time.

mod support;

use std::process::Command;

use bytes::Bytes;
use k10::objectstore::storage::Storage;
use support::apiserver::{ApiServer, ApiServerOptions};
use support::app::Fixture;
use support::cli::{binary, K10};
use support::tree;

fn kubectl(kubeconfig: &std::path::Path, args: &[&str]) -> String {
    let out = Command::new("kubectl").arg("--kubeconfig").arg(kubeconfig).args(args).output().unwrap();
    assert!(out.status.success(), "kubectl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn store_time(run: &str) -> chrono::DateTime<chrono::Utc> {
    // "… stored at 2026-11-30T04:50:06Z in …"
    let t = run.split("stored at ").nth(1).unwrap().split_whitespace().next().unwrap();
    chrono::DateTime::parse_from_rfc3339(t).unwrap().to_utc()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_catalog_comes_back_as_of_a_point_in_time_and_the_app_with_it() {
    let f = Fixture::new().await;
    std::fs::write(f.volume("data").join("one.bin"), tree::noise(3, 3 * 1024 * 1024)).unwrap();
    f.kubectl(&["create", "secret", "generic", "k10-dr-secret", "-n", "kasten-io", "--from-literal", "key=correct horse battery staple"]);
    f.k10.run(&["policy", "create", "shop", "--namespaces", "shop", "--profile", "immutable", "--frequency", "@hourly"]).ok();
    let enabled = f.k10.run(&["dr", "enable", "--profile", "immutable", "--frequency", "@hourly"]).ok();
    assert!(enabled.stdout.contains(&format!("cluster ID: {}", f.server.default_namespace_uid())), "{}", enabled.stdout);

    // Run 1, DR T1; run 2, the first restore point retired; DR T2.
    f.k10.run(&["policy", "run", "shop", "--wait"]).ok();
    let first = f.contents()[0].clone();
    let first_name = first["metadata"]["name"].as_str().unwrap().to_string();
    let volumes = f.save_volumes("volumes-at-run-1");
    let t1 = store_time(&f.k10.run(&["dr", "run"]).ok().stdout);
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    std::fs::write(f.volume("data").join("two.bin"), b"written after the first backup").unwrap();
    f.k10.run(&["policy", "run", "shop", "--wait"]).ok();
    let rp1 = first["spec"]["restorePointRef"]["name"].as_str().unwrap().to_string();
    f.k10.run(&["restorepoint", "retire", &rp1, "-n", "shop"]).ok();
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let t2 = store_time(&f.k10.run(&["dr", "run"]).ok().stdout);
    let status = f.k10.run(&["dr", "status"]).ok().stdout;
    println!("{status}");
    assert!(status.contains("Cluster ID:") && status.contains("immutable, protection period 30 days"), "{status}");
    let source_id = f.server.default_namespace_uid();

    // The attack: the whole catalog deleted, every object of the bucket hidden and overwritten.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    for kind in ["restorepoints.apps.kio.kasten.io", "policies.config.kio.kasten.io", "profiles.config.kio.kasten.io"] {
        f.kubectl(&["delete", kind, "--all", "-A"]);
    }
    f.kubectl(&["delete", "restorepointcontents.apps.kio.kasten.io", "--all"]);
    f.kubectl(&["delete", "secrets", "--all", "-n", "kasten-io"]);
    f.kubectl(&["delete", "namespace", "shop"]);
    let store = f.storage();
    let objects = store.list("k10/").await.unwrap();
    for o in &objects {
        store.delete(&o.key).await.unwrap();
        store.put(&o.key, Bytes::from_static(b"gone")).await.unwrap();
    }

    // A new cluster: another cluster ID, only the passphrase Secret and a plain profile.
    let dir = tempfile::tempdir().unwrap();
    let new = ApiServer::start_in_background(ApiServerOptions {
        k10_binary: Some(binary()),
        volumes_root: dir.path().join("volumes"),
        default_namespace_uid: Some("0a1b2c3d-0000-4000-8000-00000000c0de".into()),
        ..Default::default()
    });
    let k10 = K10::new(new.kubeconfig_path())
        .with_env("AWS_ACCESS_KEY_ID", &f.s3.access_key)
        .with_env("AWS_SECRET_ACCESS_KEY", &f.s3.secret_key);
    k10.run(&["install"]).ok();
    let k10 = k10.acting_as_service_account(&new);
    kubectl(new.kubeconfig_path(), &["create", "secret", "generic", "k10-dr-secret", "-n", "kasten-io", "--from-literal", "key=correct horse battery staple"]);
    // The platform team's grant of its custom resources to k10 comes with the new cluster.
    let grant = dir.path().join("widgets-for-k10.yaml");
    std::fs::write(&grant, support::app::WIDGETS_FOR_K10).unwrap();
    kubectl(new.kubeconfig_path(), &["apply", "-f", grant.to_str().unwrap()]);
    k10.run(&["profile", "create", "recovery", "--bucket", &f.bucket, "--endpoint", &f.s3.endpoint]).ok();

    // The k10restore chart, rendered by the Helm SDK with a point in time between T1 and T2; its
    // Job runs through the stand-in kubelet. The first restore point is back, although retired later.
    let between = (t1 + (t2 - t1) / 2).to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
    let docs = support::helm::template(
        "charts/k10restore",
        "kasten-io",
        &[("sourceClusterID", source_id.as_str()), ("profile.name", "recovery"), ("pointInTime", between.as_str())],
    )
    .unwrap();
    let manifest = docs.iter().map(|d| serde_yaml::to_string(d).unwrap()).collect::<Vec<_>>().join("---\n");
    let path = dir.path().join("k10restore.yaml");
    std::fs::write(&path, manifest).unwrap();
    kubectl(new.kubeconfig_path(), &["apply", "-f", path.to_str().unwrap()]);
    kubectl(new.kubeconfig_path(), &["wait", "--for=condition=complete", "--timeout=120s", "job/k10-restore", "-n", "kasten-io"]);
    println!("{}", kubectl(new.kubeconfig_path(), &["logs", "job/k10-restore", "-n", "kasten-io"]));
    let contents = kubectl(new.kubeconfig_path(), &["get", "restorepointcontents.apps.kio.kasten.io", "-o", "name"]);
    assert!(contents.contains(&first_name), "{contents}");
    assert_eq!(contents.lines().count(), 1, "only the first run existed at T1: {contents}");
    let profiles = kubectl(new.kubeconfig_path(), &["get", "profiles.config.kio.kasten.io", "-n", "kasten-io", "-o", "name"]);
    assert!(profiles.contains("immutable") && profiles.contains("recovery"), "{profiles}");
    // The application, from the recovered restore point, byte for byte.
    let restored = k10.run(&["restore", &first_name, "--wait"]).ok();
    println!("{}", restored.stdout);
    let (files, bytes) = tree::assert_same(&volumes.join("data"), &new.volumes_root().join("shop").join("data"));
    println!("recovered: {files} files, {bytes} bytes identical");

    // Without a point in time: the newest DR snapshot (T2): both runs' points, the first retired.
    let dir2 = tempfile::tempdir().unwrap();
    let newest = ApiServer::start_in_background(ApiServerOptions {
        k10_binary: Some(binary()),
        volumes_root: dir2.path().join("volumes"),
        default_namespace_uid: Some("0a1b2c3d-0000-4000-8000-0000000c0de2".into()),
        ..Default::default()
    });
    let k10b = K10::new(newest.kubeconfig_path())
        .with_env("AWS_ACCESS_KEY_ID", &f.s3.access_key)
        .with_env("AWS_SECRET_ACCESS_KEY", &f.s3.secret_key);
    k10b.run(&["install"]).ok();
    let k10b = k10b.acting_as_service_account(&newest);
    kubectl(newest.kubeconfig_path(), &["create", "secret", "generic", "k10-dr-secret", "-n", "kasten-io", "--from-literal", "key=correct horse battery staple"]);
    k10b.run(&["profile", "create", "recovery", "--bucket", &f.bucket, "--endpoint", &f.s3.endpoint]).ok();
    k10b.run(&["dr", "restore", "--source-cluster-id", &source_id, "--profile", "recovery"]).ok();
    let contents = kubectl(newest.kubeconfig_path(), &["get", "restorepointcontents.apps.kio.kasten.io", "-o", "name"]);
    assert_eq!(contents.lines().count(), 1, "at T2 only the second run's point existed: {contents}");
    assert!(!contents.contains(&first_name), "{contents}");

    // Refusals, each with its message, and nothing changed.
    let catalog = || {
        kubectl(newest.kubeconfig_path(), &["get", "restorepointcontents.apps.kio.kasten.io,profiles.config.kio.kasten.io,policies.config.kio.kasten.io,secrets", "-A", "-o", "name"])
    };
    let before_refusals = catalog();
    let refuse = |args: &[&str], msg: &str| {
        let mut all = vec!["dr", "restore", "--profile", "recovery"];
        all.extend_from_slice(args);
        k10b.run(&all).fails_with(&[msg]);
    };
    let future = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    refuse(&["--source-cluster-id", &source_id, "--point-in-time", &future], "is in the future");
    let old = (chrono::Utc::now() - chrono::Duration::days(45)).to_rfc3339();
    // Before every DR snapshot: nothing written after that time decides anything about it.
    refuse(&["--source-cluster-id", &source_id, "--point-in-time", &old], "no DR snapshot at or before");
    refuse(&["--source-cluster-id", &source_id, "--point-in-time", "yesterday"], "malformed point in time");
    refuse(&["--source-cluster-id", "no-such-cluster"], &format!("cluster IDs found: {source_id}"));
    let before = (t1 - chrono::Duration::minutes(10)).to_rfc3339();
    refuse(&["--source-cluster-id", &source_id, "--point-in-time", &before], "no DR snapshot at or before");
    kubectl(newest.kubeconfig_path(), &["delete", "secret", "k10-dr-secret", "-n", "kasten-io"]);
    kubectl(newest.kubeconfig_path(), &["create", "secret", "generic", "k10-dr-secret", "-n", "kasten-io", "--from-literal", "key=wrong"]);
    refuse(&["--source-cluster-id", &source_id], "wrong DR passphrase");
    assert_eq!(before_refusals, catalog(), "a refused restore changed the catalog");
}

#[tokio::test(flavor = "multi_thread")]
async fn dr_enable_status_and_recommendations() {
    let f = Fixture::new().await;
    // Without the passphrase Secret, enabling is refused with how to create it.
    f.k10
        .run(&["dr", "enable", "--profile", "immutable"])
        .fails_with(&["the DR passphrase Secret kasten-io/k10-dr-secret with key `key` is missing", "kubectl create secret generic k10-dr-secret"]);
    let status = f.k10.run(&["dr", "status"]).ok().stdout;
    assert!(status.contains("not enabled") && status.contains(&f.server.default_namespace_uid()), "{status}");
    assert!(status.contains("warning: disaster recovery is not enabled"), "{status}");

    // A weak passphrase is refused, saying what is required, and enables nothing.
    f.kubectl(&["create", "secret", "generic", "k10-dr-secret", "-n", "kasten-io", "--from-literal", "key=hunter2hunter2hunter2"]);
    f.k10.run(&["profile", "create", "plain", "--bucket", &f.bucket, "--endpoint", &f.s3.endpoint]).ok();
    let weak = f.k10.run(&["dr", "enable", "--profile", "plain", "--frequency", "@daily"]);
    let weak = weak.fails_with(&["the DR passphrase in Secret kasten-io/k10-dr-secret is too weak", "guess the passphrase offline", "at least 16 characters"]);
    assert!(!weak.stderr.contains("hunter2"), "{}", weak.stderr);
    assert!(f.k10.run(&["dr", "status"]).ok().stdout.contains("not enabled"));
    f.kubectl(&["delete", "secret", "k10-dr-secret", "-n", "kasten-io"]);

    // A DR policy on a plain profile that runs less often than an immutable policy: both warned.
    f.kubectl(&["create", "secret", "generic", "k10-dr-secret", "-n", "kasten-io", "--from-literal", "key=s3cret-passphrase"]);
    f.k10.run(&["dr", "enable", "--profile", "plain", "--frequency", "@daily"]).ok();
    let created = f.k10.run(&["policy", "create", "hourly", "--namespaces", "shop", "--profile", "immutable", "--frequency", "@hourly"]).ok();
    assert!(created.stderr.contains("warning: the DR policy runs @daily but policy \"hourly\" exports to an immutable profile @hourly"), "{}", created.stderr);
    let status = f.k10.run(&["dr", "status"]).ok().stdout;
    println!("{status}");
    assert!(status.contains("DR Profile:") && status.contains("plain (NOT immutable)"), "{status}");
    assert!(status.contains("warning: the DR profile \"plain\" is not immutable"), "{status}");
    assert!(status.contains("Last DR Runs:") && status.contains("none yet"), "{status}");
    f.k10.run(&["dr", "run"]).ok();
    let status = f.k10.run(&["dr", "status"]).ok().stdout;
    assert!(!status.contains("none yet"), "{status}");
    assert!(status.lines().any(|l| l.starts_with("DR Snapshots:") && l.ends_with(" 1")), "{status}");
    // The passphrase never reaches the bucket.
    let store = f.storage();
    for o in store.list("k10/").await.unwrap() {
        let data = store.get(&o.key, None).await.unwrap();
        assert!(!data.windows(17).any(|w| w == b"s3cret-passphrase"), "the passphrase is in {}", o.key);
    }
    // --skip-resource leaves those out; an unknown one is refused.
    f.k10
        .run(&["dr", "restore", "--source-cluster-id", "x", "--profile", "plain", "--skip-resource", "bogus"])
        .fails_with(&["unknown --skip-resource \"bogus\""]);
}
