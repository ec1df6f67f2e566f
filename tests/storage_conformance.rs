//! One conformance suite for every storage implementation (Kopia's blobtesting is the model):
//! in memory (plain and locked), S3 on SeaweedFS, and the point-in-time view over each.

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::stream::{self, StreamExt, TryStreamExt};
use k10::objectstore::lock::ProtectionPeriod;
use k10::objectstore::memory::MemoryStorage;
use k10::objectstore::pit::PointInTime;
use k10::objectstore::s3::S3Storage;
use k10::objectstore::storage::{Storage, StorageError, Time, VersionedStorage};
use k10::objectstore::{Credentials, Location, ObjectStore};
use support::s3::{self, Retention};

/// The store under test and how long to wait so that two writes get distinct store times
/// (S3's LastModified has a one-second resolution).
struct Subject {
    store: Arc<dyn VersionedStorage>,
    tick: Duration,
    locked: bool,
}

type Expected = BTreeMap<String, &'static [u8]>;

/// Every read a view must answer as `expected` says: list, stat, get, ranges, and NotFound.
async fn check_reads(view: &dyn Storage, prefix: &str, expected: &Expected) {
    let listed = view.list(prefix).await.unwrap();
    let keys: Vec<&str> = listed.iter().map(|o| o.key.as_str()).collect();
    let want: Vec<&str> = expected.keys().map(String::as_str).collect();
    assert_eq!(keys, want, "list of {} under {prefix}", view.describe());
    for o in &listed {
        assert_eq!(o.size, expected[&o.key].len() as u64, "size of {}", o.key);
    }
    for (key, data) in expected {
        assert_eq!(&view.get(key, None).await.unwrap()[..], *data, "content of {key} in {}", view.describe());
        assert_eq!(view.stat(key).await.unwrap().size, data.len() as u64);
        if data.len() >= 3 {
            assert_eq!(&view.get(key, Some(1..3)).await.unwrap()[..], &data[1..3], "range of {key}");
        }
        assert!(view.get(key, Some(0..0)).await.unwrap().is_empty());
    }
    let missing = format!("{prefix}no-such-key");
    assert!(view.get(&missing, None).await.unwrap_err().is_not_found());
    assert!(view.stat(&missing).await.unwrap_err().is_not_found());
}

/// The newest store time among all versions under `prefix`.
async fn store_time(store: &dyn VersionedStorage, prefix: &str) -> Time {
    store.list_versions(prefix).await.unwrap().iter().map(|v| v.last_modified).max().unwrap()
}

async fn put(store: &dyn VersionedStorage, key: &str, data: &'static [u8]) -> String {
    store.put(key, Bytes::from_static(data)).await.unwrap()
}

fn expect(pairs: &[(&str, &'static [u8])], prefix: &str) -> Expected {
    pairs.iter().map(|(k, v)| (format!("{prefix}{k}"), *v)).collect()
}

async fn pit(s: &Subject, prefix: &str, at: Time) -> PointInTime {
    PointInTime::new(s.store.clone(), prefix, at).await.unwrap()
}

/// Overwrites, delete markers, a key deleted and re-created: the live store and the views as of
/// each phase.
async fn history(s: &Subject, prefix: &str) {
    let p = |k: &str| format!("{prefix}{k}");
    let store = s.store.as_ref();
    let before = chrono::Utc::now() - chrono::Duration::hours(1);

    put(store, &p("a"), b"a-one").await;
    put(store, &p("b"), b"b-one").await;
    put(store, &p("c"), b"c-one").await;
    put(store, &p("dir/d"), b"").await;
    let t1 = store_time(store, prefix).await;
    tokio::time::sleep(s.tick).await;

    put(store, &p("a"), b"a-two").await;
    store.delete(&p("b")).await.unwrap();
    let t2 = store_time(store, prefix).await;
    tokio::time::sleep(s.tick).await;

    put(store, &p("b"), b"b-three").await;
    store.delete(&p("c")).await.unwrap();
    let t3 = store_time(store, prefix).await;
    assert!(t1 < t2 && t2 < t3, "store times must increase: {t1} {t2} {t3}");

    let at_t1 = expect(&[("a", b"a-one"), ("b", b"b-one"), ("c", b"c-one"), ("dir/d", b"")], prefix);
    let at_t2 = expect(&[("a", b"a-two"), ("c", b"c-one"), ("dir/d", b"")], prefix);
    let at_t3 = expect(&[("a", b"a-two"), ("b", b"b-three"), ("dir/d", b"")], prefix);

    check_reads(store, prefix, &at_t3).await;
    check_reads(&pit(s, prefix, t1).await, prefix, &at_t1).await;
    check_reads(&pit(s, prefix, t2).await, prefix, &at_t2).await;
    check_reads(&pit(s, prefix, t3).await, prefix, &at_t3).await;
    check_reads(&pit(s, prefix, before).await, prefix, &Expected::new()).await;
    // A sub-prefix of the view.
    let sub = expect(&[("dir/d", b"")], prefix);
    check_reads(&pit(s, prefix, t1).await, &p("dir/"), &sub).await;

    // Versions: newest first within a key, delete markers included.
    let versions = store.list_versions(&p("b")).await.unwrap();
    let markers: Vec<bool> = versions.iter().map(|v| v.delete_marker).collect();
    assert_eq!(markers, vec![false, true, false], "b: re-created, deleted, created");
}

/// Writes through a point-in-time view are refused, never silently accepted; nothing changes.
async fn views_are_read_only(s: &Subject, prefix: &str) {
    let key = format!("{prefix}k");
    put(s.store.as_ref(), &key, b"keep").await;
    let view = pit(s, prefix, chrono::Utc::now() + chrono::Duration::hours(1)).await;
    let err = view.put(&key, Bytes::from_static(b"overwrite")).await.unwrap_err();
    assert!(matches!(err, StorageError::ReadOnly { op: "write", .. }), "{err}");
    assert!(err.to_string().contains("is read-only: write"), "{err}");
    let err = view.delete(&key).await.unwrap_err();
    assert!(matches!(err, StorageError::ReadOnly { op: "delete", .. }), "{err}");
    assert_eq!(&s.store.get(&key, None).await.unwrap()[..], b"keep");
    assert_eq!(s.store.list_versions(&key).await.unwrap().len(), 1);
}

/// More than 1,000 keys with several versions each: listing and views page correctly.
async fn paging(s: &Subject, prefix: &str) {
    const KEYS: usize = 1_050;
    const VERSIONS: usize = 3;
    let store = s.store.clone();
    let writes: Vec<(String, usize)> = (0..VERSIONS)
        .flat_map(|v| (0..KEYS).map(move |k| (format!("{prefix}key-{k:05}"), v)))
        .collect();
    // Versions of one key are written in order: one round per version.
    for round in writes.chunks(KEYS) {
        stream::iter(round.iter().cloned())
            .map(|(key, v)| {
                let store = store.clone();
                async move { store.put(&key, Bytes::from(format!("{key}@{v}"))).await }
            })
            .buffer_unordered(32)
            .try_collect::<Vec<_>>()
            .await
            .unwrap();
    }
    let versions = store.list_versions(prefix).await.unwrap();
    assert_eq!(versions.len(), KEYS * VERSIONS);
    let listed = store.list(prefix).await.unwrap();
    assert_eq!(listed.len(), KEYS);
    let view = pit(s, prefix, chrono::Utc::now() + chrono::Duration::hours(1)).await;
    let seen = view.list(prefix).await.unwrap();
    assert_eq!(seen.len(), KEYS);
    for k in [0, 999, 1_000, KEYS - 1] {
        let key = format!("{prefix}key-{k:05}");
        assert_eq!(view.get(&key, None).await.unwrap(), Bytes::from(format!("{key}@{}", VERSIONS - 1)));
    }
}

/// Locks: every write is locked for the configured time; extending works, shortening is refused.
async fn locks(s: &Subject, prefix: &str, lock_days: i64) {
    let key = format!("{prefix}locked");
    let version = put(s.store.as_ref(), &key, b"x").await;
    let until = s.store.lock_until(&key, &version).await.unwrap();
    if !s.locked {
        assert_eq!(until, None);
        return;
    }
    let until = until.expect("an immutable store locks every write");
    let expected = chrono::Utc::now() + chrono::Duration::days(lock_days);
    assert!((until - expected).num_seconds().abs() < 120, "lock until {until}, expected about {expected}");
    let err = s.store.extend_lock(&key, &version, until - chrono::Duration::days(1)).await.unwrap_err();
    assert!(matches!(err, StorageError::WouldShorten { .. }), "{err}");
    let later = until + chrono::Duration::days(3);
    s.store.extend_lock(&key, &version, later).await.unwrap();
    let now_until = s.store.lock_until(&key, &version).await.unwrap().unwrap();
    assert!((now_until - later).num_seconds().abs() < 2, "{now_until} vs {later}");
}

/// The time `stat` gives a version is the time views compare with: a view as of it includes the
/// version (an end time taken from `stat` must never exclude its own snapshot).
async fn stat_dates_as_views_do(s: &Subject, prefix: &str) {
    let key = format!("{prefix}snapshot");
    let version = put(s.store.as_ref(), &key, b"s").await;
    let stat = s.store.stat(&key).await.unwrap();
    assert_eq!(stat.version_id, version);
    let listed = s.store.list_versions(&key).await.unwrap();
    assert_eq!(stat.last_modified, listed[0].last_modified, "stat and the version listing date {key} alike");
    let view = pit(s, prefix, stat.last_modified).await;
    assert_eq!(view.stat(&key).await.unwrap().version_id, version, "a view as of the stat time includes the version");
}

async fn conformance(s: Subject, lock_days: i64) {
    let run = format!("{:x}/", chrono::Utc::now().timestamp_micros());
    stat_dates_as_views_do(&s, &format!("stat/{run}")).await;
    history(&s, &format!("history/{run}")).await;
    views_are_read_only(&s, &format!("readonly/{run}")).await;
    locks(&s, &format!("locks/{run}"), lock_days).await;
    paging(&s, &format!("paging/{run}")).await;
}

#[tokio::test]
async fn memory() {
    let store = Arc::new(MemoryStorage::new());
    conformance(Subject { store, tick: Duration::ZERO, locked: false }, 0).await;
}

#[tokio::test]
async fn memory_locked() {
    let store = Arc::new(MemoryStorage::locked(chrono::Duration::days(21)));
    conformance(Subject { store, tick: Duration::ZERO, locked: true }, 21).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn s3_immutable() {
    let env = s3::env();
    let bucket = s3::unique_bucket("conformance");
    env.create_locked_bucket(
        &bucket,
        Some((aws_sdk_s3::types::ObjectLockRetentionMode::Compliance, Retention::Days(21))),
    )
    .await;
    let location = Location {
        endpoint: Some(env.endpoint.clone()),
        region: env.region.clone(),
        bucket,
        skip_ssl_verify: false,
    };
    let credentials = Credentials {
        access_key_id: env.access_key.clone(),
        secret_access_key: env.secret_key.clone(),
    };
    let store = ObjectStore::connect(&location, &credentials).unwrap();
    let period = ProtectionPeriod::from_days(1).unwrap();
    let store = Arc::new(S3Storage::new(store, Some(period)));
    conformance(Subject { store, tick: Duration::from_millis(1100), locked: true }, 21).await;
}
