//! Retention maintenance against the real object-locked store.

mod support;

use std::sync::Arc;

use aws_sdk_s3::types::ObjectLockRetentionMode;
use bytes::Bytes;
use k10::objectstore::lock::ProtectionPeriod;
use k10::objectstore::maintenance;
use k10::objectstore::s3::S3Storage;
use k10::objectstore::storage::{Storage, VersionedStorage};
use k10::objectstore::{Credentials, Location, ObjectStore};
use support::s3::{self, Retention};

fn storage(bucket: &str, days: u32) -> Arc<S3Storage> {
    let env = s3::env();
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
    Arc::new(S3Storage::new(
        ObjectStore::connect(&location, &credentials).unwrap(),
        Some(ProtectionPeriod::from_days(days).unwrap()),
    ))
}

const REPO: &str = "k10/c/repos/u/";

#[tokio::test(flavor = "multi_thread")]
async fn extends_current_objects_then_skips_and_leaves_deleted_ones() {
    let env = s3::env();
    let bucket = s3::unique_bucket("maint");
    env.create_locked_bucket(&bucket, Some((ObjectLockRetentionMode::Compliance, Retention::Days(60))))
        .await;
    // Written by a profile with P = 1 (locks of 21 days)...
    let old = storage(&bucket, 1);
    let mut versions = Vec::new();
    for i in 0..1200 {
        let key = format!("{REPO}data/{i:04}");
        versions.push((key.clone(), old.put(&key, Bytes::from(vec![i as u8; 100])).await.unwrap()));
    }
    let (gone_key, gone_version) = versions.pop().unwrap();
    old.delete(&gone_key).await.unwrap();
    let gone_lock = old.lock_until(&gone_key, &gone_version).await.unwrap();

    // ...maintained under P = 30: every current object must reach now + 40 days.
    let period = ProtectionPeriod::from_days(30).unwrap();
    let store = storage(&bucket, 30);
    let first = maintenance::run(store.clone(), REPO, period).await.unwrap();
    println!("first run: {first:?}");
    assert_eq!((first.extended, first.skipped, first.failed.len()), (1199, 0, 0));
    let needed = chrono::Utc::now() + chrono::Duration::days(40);
    for (key, version) in &versions {
        let until = store.lock_until(key, version).await.unwrap().unwrap();
        assert!(until >= needed, "{key} locked only until {until}");
    }
    // The object behind a delete marker kept its lock.
    assert_eq!(store.lock_until(&gone_key, &gone_version).await.unwrap(), gone_lock);

    // Right after: nothing to extend, known from one lock read per object (the store's answer,
    // not a record anyone with the keys could have written).
    let second = maintenance::run(store.clone(), REPO, period).await.unwrap();
    println!("second run: {second:?}");
    assert_eq!((second.extended, second.skipped, second.failed.len()), (0, 1199, 0));
    assert_eq!(second.requests, 1199 + 2, "{second:?}");
    assert!(second.horizon.is_some_and(|h| h >= needed), "{second:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_store_refusal_is_reported_per_object() {
    let env = s3::env();
    let bucket = s3::unique_bucket("nolock");
    env.create_plain_bucket(&bucket).await;
    // A bucket without object lock: extending a lock is refused by the store.
    let writer = storage(&bucket, 1);
    let plain = Arc::new(S3Storage::new(
        ObjectStore::connect(
            &Location {
                endpoint: Some(env.endpoint.clone()),
                region: env.region.clone(),
                bucket: bucket.clone(),
                skip_ssl_verify: false,
            },
            &Credentials {
                access_key_id: env.access_key.clone(),
                secret_access_key: env.secret_key.clone(),
            },
        )
        .unwrap(),
        None,
    ));
    plain.put(&format!("{REPO}config"), Bytes::from_static(b"x")).await.unwrap();
    let report = maintenance::run(writer, REPO, ProtectionPeriod::from_days(30).unwrap())
        .await
        .unwrap();
    println!("{report:?}");
    assert_eq!(report.extended, 0);
    let failed: Vec<&str> = report.failed.iter().map(|(k, _)| k.as_str()).collect();
    assert!(failed.iter().any(|k| k.starts_with(&format!("{REPO}config (version "))), "{failed:?}");
    assert!(report.failed.iter().all(|(_, why)| why.contains("refused")), "{report:?}");
}

/// `kubectl k10 maintenance run` over the repositories of the immutable profiles.
#[tokio::test(flavor = "multi_thread")]
async fn the_maintenance_command() {
    use support::apiserver::{ApiServer, ApiServerOptions, DEFAULT_NAMESPACE_UID};
    use support::cli::K10;

    let env = s3::env();
    let dir = tempfile::tempdir().unwrap();
    let server = ApiServer::start_in_background(ApiServerOptions {
        volumes_root: dir.path().join("volumes"),
        ..Default::default()
    });
    let k10 = K10::new(server.kubeconfig_path())
        .with_env("AWS_ACCESS_KEY_ID", &env.access_key)
        .with_env("AWS_SECRET_ACCESS_KEY", &env.secret_key);
    k10.run(&["install"]).ok();
    let k10 = k10.acting_as_service_account(&server);
    let bucket = s3::unique_bucket("maintcli");
    env.create_locked_bucket(&bucket, Some((ObjectLockRetentionMode::Compliance, Retention::Days(60))))
        .await;
    k10.run(&["profile", "create", "locked", "--bucket", &bucket, "--endpoint", &env.endpoint, "--immutable", "--protection-period", "30d"])
        .ok();
    // Nothing to maintain yet.
    let out = k10.run(&["maintenance", "run"]).ok().stdout;
    assert!(out.contains("No repositories of cluster"), "{out}");

    // A repository of this cluster written with 21-day locks (P = 1).
    let repo = format!("k10/{DEFAULT_NAMESPACE_UID}/repos/app-uid/");
    let writer = storage(&bucket, 1);
    for key in ["config", "keys/k1", "data/ab/pack1", "snapshots/s1"] {
        writer.put(&format!("{repo}{key}"), Bytes::from_static(b"x")).await.unwrap();
    }
    let first = k10.run(&["maintenance", "run", "--profile", "locked"]).ok().stdout;
    println!("{first}");
    let row = first.lines().find(|l| l.contains(&repo)).expect("a row per repository");
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(cells[2..5], ["4", "0", "0"], "extended, skipped, failed: {row}");
    let second = k10.run(&["maintenance", "run"]).ok().stdout;
    let row = second.lines().find(|l| l.contains(&repo)).unwrap();
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(cells[2..5], ["0", "4", "0"], "{row}");

    // A plain profile has nothing to maintain; a profile on a bucket that lost its lock fails.
    k10.run(&["profile", "create", "plain", "--bucket", &bucket, "--endpoint", &env.endpoint]).ok();
    k10.run(&["maintenance", "run", "--profile", "plain"]).fails_with(&["profile \"plain\" is not immutable"]);
    let unlocked = s3::unique_bucket("unlocked");
    env.create_plain_bucket(&unlocked).await;
    // A bucket without object lock (a locked writer could not even write there).
    env.client()
        .put_object()
        .bucket(&unlocked)
        .key(format!("{repo}config"))
        .body(aws_sdk_s3::primitives::ByteStream::from_static(b"x"))
        .send()
        .await
        .unwrap();
    let manifest = format!(
        "apiVersion: config.kio.kasten.io/v1alpha1\nkind: Profile\nmetadata: {{name: broken, namespace: kasten-io}}\n\
         spec:\n  type: Location\n  locationSpec:\n    type: ObjectStore\n    objectStore: {{objectStoreType: S3, name: {unlocked}, region: us-east-1, endpoint: '{}', protectionPeriod: 720h}}\n\
         \x20   credential:\n      secretType: AwsAccessKey\n      secret: {{apiVersion: v1, kind: Secret, name: k10-profile-locked-credentials, namespace: kasten-io}}\n",
        env.endpoint
    );
    let path = dir.path().join("broken.yaml");
    std::fs::write(&path, manifest).unwrap();
    let applied = std::process::Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(server.kubeconfig_path())
        .args(["apply", "-f"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(applied.status.success(), "{}", String::from_utf8_lossy(&applied.stderr));
    k10.run(&["maintenance", "run", "--profile", "broken"])
        .fails_with(&[&format!("failed: {repo}config"), "could not extend the lock of"]);
}
