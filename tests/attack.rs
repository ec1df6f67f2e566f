//! The attack test on the real object-locked store: back up, then attack with full credentials,
//! then go back in time and restore byte for byte; stock restic agrees the data is intact.

mod support;

use std::sync::Arc;

use aws_sdk_s3::types::ObjectLockRetentionMode;
use bytes::Bytes;
use k10::objectstore::lock::ProtectionPeriod;
use k10::objectstore::maintenance;
use k10::objectstore::pit::PointInTime;
use k10::objectstore::s3::S3Storage;
use k10::objectstore::storage::{Storage, VersionedStorage};
use k10::objectstore::{Credentials, Location, ObjectStore};
use k10::repo::{ReadOnly, Repo, RepoError};
use support::restic;
use support::s3::{self, Retention};
use support::tree;

const PREFIX: &str = "k10/attack-cluster/repos/ns-uid/";

#[tokio::test(flavor = "multi_thread")]
async fn turn_back_the_clock_after_a_full_credentials_attack() {
    let env = s3::env();
    let bucket = s3::unique_bucket("attack");
    env.create_locked_bucket(&bucket, Some((ObjectLockRetentionMode::Compliance, Retention::Days(21))))
        .await;
    let location = Location {
        endpoint: Some(env.endpoint.clone()),
        region: env.region.clone(),
        bucket: bucket.clone(),
        skip_ssl_verify: false,
    };
    let credentials = Credentials {
        access_key_id: env.access_key.clone(),
        secret_access_key: env.secret_key.clone(),
    };
    let store = Arc::new(S3Storage::new(
        ObjectStore::connect(&location, &credentials).unwrap(),
        Some(ProtectionPeriod::from_days(1).unwrap()),
    ));
    let before_first_backup = chrono::Utc::now() - chrono::Duration::seconds(5);

    let src = tempfile::tempdir().unwrap();
    tree::mixed(src.path(), 50);
    let repo = Repo::init(store.clone(), PREFIX, "the-repository-password").await.unwrap();
    let started = std::time::Instant::now();
    let snap = repo.backup_dir(src.path(), &["app=attack".into()]).await.unwrap();
    println!("backed up {} files, {} bytes in {:?}", snap.files, snap.bytes, started.elapsed());
    let t1 = repo.stored_at(&snap.id).await.unwrap();
    // Store times have one-second resolution: what follows happens in a later second.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;

    // Retention maintenance (under a longer period) extends every lock: the view as of T1 must
    // not lose anything to it (SeaweedFS moves LastModified on lock changes).
    let report = maintenance::run(store.clone(), PREFIX, ProtectionPeriod::from_days(30).unwrap())
        .await
        .unwrap();
    assert!(report.extended >= 5 && report.failed.is_empty(), "{report:?}");

    // The attack, with the same full credentials. The tool retires the snapshot...
    repo.forget(&snap.id).await.unwrap();
    assert!(repo.snapshots().await.unwrap().is_empty());
    // ...every object gets a delete marker, then every key a garbage overwrite...
    let objects = store.list(PREFIX).await.unwrap();
    assert!(objects.len() >= 5, "{objects:?}");
    for o in &objects {
        store.delete(&o.key).await.unwrap();
    }
    for o in &objects {
        store.put(&o.key, Bytes::from_static(b"encrypted by ransomware")).await.unwrap();
    }
    // ...and deleting the versions themselves is refused by the store.
    let client = env.client();
    let versions = store.list_versions(PREFIX).await.unwrap();
    let mut refused = 0;
    for v in versions.iter().filter(|v| !v.delete_marker) {
        let deleted = client
            .delete_object()
            .bucket(&bucket)
            .key(&v.key)
            .version_id(&v.version_id)
            .bypass_governance_retention(true)
            .send()
            .await;
        assert!(deleted.is_err(), "the store deleted locked version {} of {}", v.version_id, v.key);
        refused += 1;
    }
    println!("{refused} version deletions refused by the store");
    let err = Repo::open(store.clone(), PREFIX, "the-repository-password").await.unwrap_err();
    println!("the live repository after the attack: {err}");

    // Turn back the clock: the repository as of T1 restores byte for byte.
    let view = Repo::<ReadOnly>::open_at(store.clone(), PREFIX, t1, "the-repository-password").await.unwrap();
    let ids: Vec<String> = view.snapshots().await.unwrap().into_iter().map(|s| s.id).collect();
    assert_eq!(ids, vec![snap.id.clone()]);
    let dest = tempfile::tempdir().unwrap();
    let started = std::time::Instant::now();
    view.restore(&snap.id, &dest.path().join("restored")).await.unwrap();
    let (files, bytes) = tree::assert_same(src.path(), &dest.path().join("restored"));
    println!("restored {files} files, {bytes} bytes identical in {:?}", started.elapsed());
    assert!(bytes >= 50 * 1024 * 1024);

    // Stock restic, on a copy of the repository as of T1, finds no errors and restores the same tree.
    let copy = tempfile::tempdir().unwrap();
    let pit = PointInTime::new(store.clone(), PREFIX, t1).await.unwrap();
    restic::copy_repository(&pit, PREFIX, copy.path()).await;
    restic::check(copy.path(), "the-repository-password");
    let by_restic = tempfile::tempdir().unwrap();
    restic::restic(copy.path(), "the-repository-password", &["restore", &snap.id, "--target", by_restic.path().to_str().unwrap()]);
    tree::assert_same(src.path(), by_restic.path());

    // Before the first backup there was no repository.
    let err = Repo::<ReadOnly>::open_at(store.clone(), PREFIX, before_first_backup, "the-repository-password")
        .await
        .unwrap_err();
    assert!(matches!(err, RepoError::NoRepository { .. }), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn writes_carry_their_own_compliance_lock() {
    let env = s3::env();
    let bucket = s3::unique_bucket("perobject");
    // The bucket's default is 30 days; the profile's P = 5 gives each object 25 days.
    env.create_locked_bucket(&bucket, Some((ObjectLockRetentionMode::Compliance, Retention::Days(30))))
        .await;
    let location = Location {
        endpoint: Some(env.endpoint.clone()),
        region: env.region.clone(),
        bucket: bucket.clone(),
        skip_ssl_verify: false,
    };
    let credentials = Credentials {
        access_key_id: env.access_key.clone(),
        secret_access_key: env.secret_key.clone(),
    };
    let store = S3Storage::new(
        ObjectStore::connect(&location, &credentials).unwrap(),
        Some(ProtectionPeriod::from_days(5).unwrap()),
    );
    let written = chrono::Utc::now();
    let version = store.put("k10/x/object", Bytes::from_static(b"data")).await.unwrap();
    let retention = env
        .client()
        .get_object_retention()
        .bucket(&bucket)
        .key("k10/x/object")
        .version_id(&version)
        .send()
        .await
        .unwrap()
        .retention
        .unwrap();
    assert_eq!(retention.mode(), Some(&ObjectLockRetentionMode::Compliance));
    let until = retention.retain_until_date().unwrap().secs();
    let expected = (written + chrono::Duration::days(25)).timestamp();
    assert!((until - expected).abs() < 60, "retain-until {until}, expected about {expected}");
    // The store refuses deleting it and shortening it.
    let client = env.client();
    assert!(client
        .delete_object()
        .bucket(&bucket)
        .key("k10/x/object")
        .version_id(&version)
        .send()
        .await
        .is_err());
    let err = store
        .extend_lock("k10/x/object", &version, written + chrono::Duration::days(2))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("refusing to shorten"), "{err}");
}
