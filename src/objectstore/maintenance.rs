//! Retention maintenance: keeps every object still in use under a prefix locked far enough ahead.
//!
//! Rule: every version of every key whose newest entry is not a delete marker has its lock read
//! from the store; a lock that ends before `now + P + 10 days` is extended to `now + P + 20 days`.
//! Locks are never shortened; keys behind delete markers are left to expire. Run at least every
//! 2 days, this keeps every object in use restorable for P days after any attack.
//!
//! What it believes: only the store's own answer, the lock of each version as the store reports
//! it. Nothing k10 (or anyone with its credentials) wrote to the bucket decides what to skip:
//! records of earlier runs, markers of the writers' periods, or the write time of a version that
//! anyone could have written with a short lock. Earlier versions of such records (ledgers and
//! writer markers under `k10/<cluster>/maintenance/`) are ignored.
//!
//! Every version of a live key, not only the newest: k10 writes each key once, so a key with
//! several versions was overwritten by someone else. Its older versions may be the genuine ones
//! that point-in-time views fall back to (a content address that does not match), and they must
//! not expire while restore points made after the overwrite still need them.
//!
//! Cost: one version listing (1 request per 1,000 versions), one lock read per version, and two
//! more requests (read, extend) per version whose lock is extended: O(versions) per run, as for
//! Kopia's blob retention, with the extension itself only every ~10 days per version.

use std::sync::Arc;

use chrono::Duration;
use futures::stream::{self, StreamExt};

use super::lock::ProtectionPeriod;
use super::storage::{Result, StorageError, Time, Version, VersionedStorage};

/// Extend when a lock ends sooner than now + P + this many days.
pub const EXTEND_WITHIN_DAYS: i64 = 10;
/// Concurrent lock reads and extensions.
const PARALLEL: usize = 32;

/// What one run found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Versions whose lock was extended.
    pub extended: usize,
    /// Versions whose lock, as the store reports it, already reaches far enough.
    pub skipped: usize,
    /// Versions whose lock could not be read or extended, with the store's reason.
    pub failed: Vec<(String, String)>,
    /// Requests sent to the store (listing pages are counted as one per 1,000 versions).
    pub requests: usize,
    /// The earliest end among the locks of the versions kept (after this run), if any.
    pub horizon: Option<Time>,
}

/// Runs maintenance over the versions in use under `prefix`.
pub async fn run(store: Arc<dyn VersionedStorage>, prefix: &str, period: ProtectionPeriod) -> Result<Report> {
    run_at(store, prefix, period, chrono::Utc::now()).await
}

/// [`run`] with the current time given (tests move a store's clock ahead).
pub async fn run_at(store: Arc<dyn VersionedStorage>, prefix: &str, period: ProtectionPeriod, now: Time) -> Result<Report> {
    let mut report = Report::default();
    let versions = store.list_versions(prefix).await?;
    report.requests += versions.len() / 1000 + 1;
    let needed = now + Duration::days(i64::from(period.days()) + EXTEND_WITHIN_DAYS);
    let target = now + Duration::days(i64::from(period.lock_days()));

    let results: Vec<(Version, Outcome)> = stream::iter(in_use(&versions))
        .map(|v| {
            let store = store.clone();
            async move {
                let outcome = keep(store.as_ref(), &v, needed, target).await;
                (v, outcome)
            }
        })
        .buffer_unordered(PARALLEL)
        .collect()
        .await;
    for (v, outcome) in results {
        match outcome {
            Outcome::LongEnough(until) => {
                report.requests += 1;
                report.skipped += 1;
                report.horizon = Some(report.horizon.map_or(until, |h| h.min(until)));
            }
            Outcome::Extended => {
                report.requests += 3;
                report.extended += 1;
                report.horizon = Some(report.horizon.map_or(target, |h| h.min(target)));
            }
            Outcome::Failed(requests, e) => {
                report.requests += requests;
                report.failed.push((format!("{} (version {})", v.key, v.version_id), e.to_string()));
            }
        }
    }
    report.failed.sort();
    Ok(report)
}

/// The earliest end among the locks of the versions in use under `prefix`, read from the store
/// without changing anything (a version without a lock ends `now`). `None` when nothing is in
/// use. Cost: the version listing and one lock read per version.
pub async fn horizon(store: Arc<dyn VersionedStorage>, prefix: &str, now: Time) -> Result<Option<Time>> {
    let versions = store.list_versions(prefix).await?;
    let locks: Vec<Result<Option<Time>>> = stream::iter(in_use(&versions))
        .map(|v| {
            let store = store.clone();
            async move { store.lock_until(&v.key, &v.version_id).await }
        })
        .buffer_unordered(PARALLEL)
        .collect()
        .await;
    let mut earliest: Option<Time> = None;
    for lock in locks {
        let until = lock?.unwrap_or(now);
        earliest = Some(earliest.map_or(until, |e| e.min(until)));
    }
    Ok(earliest)
}

/// The repositories under a cluster's root: every prefix that ever held a restic `config` (a
/// delete marker on a config must not take its repository out of maintenance).
pub async fn repositories(store: &dyn VersionedStorage, cluster_root: &str) -> Result<Vec<String>> {
    let mut repositories: Vec<String> = store
        .list_versions(cluster_root)
        .await?
        .into_iter()
        .filter(|v| !v.delete_marker)
        .filter_map(|v| v.key.strip_suffix("config").map(str::to_string))
        .filter(|prefix| prefix.ends_with('/') && !prefix.contains("/maintenance/"))
        .collect();
    repositories.dedup();
    Ok(repositories)
}

enum Outcome {
    LongEnough(Time),
    Extended,
    Failed(usize, StorageError),
}

/// Reads the lock of one version from the store and extends it if it ends too soon.
async fn keep(store: &dyn VersionedStorage, v: &Version, needed: Time, target: Time) -> Outcome {
    match store.lock_until(&v.key, &v.version_id).await {
        Ok(Some(until)) if until >= needed => Outcome::LongEnough(until),
        Ok(_) => match store.extend_lock(&v.key, &v.version_id, target).await {
            Ok(()) => Outcome::Extended,
            // Extended further meanwhile (another run): the store's lock is longer still.
            Err(StorageError::WouldShorten { current, .. }) => Outcome::LongEnough(current),
            Err(e) => Outcome::Failed(3, e),
        },
        Err(e) => Outcome::Failed(1, e),
    }
}

/// Every version (not delete markers) of every key whose newest entry is not a delete marker.
/// `versions` is in `list_versions` order: keys ascending, newest first within a key.
pub fn in_use(versions: &[Version]) -> Vec<Version> {
    let mut out = Vec::new();
    let mut live_key: Option<&str> = None;
    let mut last_key: Option<&str> = None;
    for v in versions {
        if last_key != Some(v.key.as_str()) {
            last_key = Some(v.key.as_str());
            live_key = (!v.delete_marker).then_some(v.key.as_str());
        }
        if live_key == Some(v.key.as_str()) && !v.delete_marker {
            out.push(v.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objectstore::memory::MemoryStorage;
    use crate::objectstore::storage::Storage;
    use bytes::Bytes;

    fn period(days: u32) -> ProtectionPeriod {
        ProtectionPeriod::from_days(days).unwrap()
    }

    async fn maintain(store: &Arc<MemoryStorage>) -> Report {
        run_at(store.clone(), "repo/", period(30), store.now()).await.unwrap()
    }

    #[tokio::test]
    async fn fresh_writes_are_skipped_old_ones_extended_then_skipped() {
        // P = 30: the product locks writes for 50 days.
        let store = Arc::new(MemoryStorage::locked(Duration::days(50)));
        let a = store.put("repo/a", Bytes::from_static(b"x")).await.unwrap();
        store.put("repo/b", Bytes::from_static(b"x")).await.unwrap();
        // Just written: locked 50 days ahead, more than the 40 needed.
        let first = maintain(&store).await;
        assert_eq!((first.extended, first.skipped, first.failed.len()), (0, 2, 0));

        // 15 days later the locks end in 35 days (< 40): both are extended to now + 50.
        store.advance_clock(Duration::days(15));
        let second = maintain(&store).await;
        assert_eq!((second.extended, second.skipped), (2, 0), "{second:?}");
        let until = store.lock_until("repo/a", &a).await.unwrap().unwrap();
        assert!((until - (store.now() + Duration::days(50))).num_seconds().abs() < 5);
        assert_eq!(second.horizon.map(|h| (h - until).num_seconds().abs() < 5), Some(true), "{second:?}");

        // Right after, nothing needs extending: one lock read per object tells.
        let third = maintain(&store).await;
        assert_eq!((third.extended, third.skipped, third.requests), (0, 2, 3), "{third:?}");
    }

    #[tokio::test]
    async fn never_extends_keys_behind_delete_markers() {
        let store = Arc::new(MemoryStorage::locked(Duration::days(50)));
        let gone = store.put("repo/gone", Bytes::from_static(b"x")).await.unwrap();
        store.put("repo/kept", Bytes::from_static(b"x")).await.unwrap();
        store.delete("repo/gone").await.unwrap();
        let before = store.lock_until("repo/gone", &gone).await.unwrap();
        store.advance_clock(Duration::days(15));
        let report = maintain(&store).await;
        assert_eq!((report.extended, report.skipped), (1, 0));
        assert_eq!(store.lock_until("repo/gone", &gone).await.unwrap(), before);
    }

    #[tokio::test]
    async fn never_shortens_a_lock() {
        // Locks of 400 days: far beyond what maintenance would set; nothing is touched.
        let store = Arc::new(MemoryStorage::locked(Duration::days(400)));
        let v = store.put("repo/long", Bytes::from_static(b"x")).await.unwrap();
        let before = store.lock_until("repo/long", &v).await.unwrap();
        store.advance_clock(Duration::days(15));
        let report = maintain(&store).await;
        assert_eq!((report.extended, report.skipped, report.failed.len()), (0, 1, 0), "{report:?}");
        assert_eq!(store.lock_until("repo/long", &v).await.unwrap(), before);
    }

    #[tokio::test]
    async fn every_version_of_an_overwritten_key_is_kept() {
        let store = Arc::new(MemoryStorage::locked(Duration::days(50)));
        let genuine = store.put("repo/pack", Bytes::from_static(b"genuine")).await.unwrap();
        store.advance_clock(Duration::days(5));
        // Overwritten by someone else, with a lock of one day.
        let forged = store.put_with_lock("repo/pack", Bytes::from_static(b"garbage"), Some(store.now() + Duration::days(1)));
        store.advance_clock(Duration::days(10));
        let report = maintain(&store).await;
        assert_eq!((report.extended, report.skipped), (2, 0), "{report:?}");
        for v in [&genuine, &forged] {
            assert!(store.lock_until("repo/pack", v).await.unwrap().unwrap() >= store.now() + Duration::days(49));
        }
    }

    #[test]
    fn in_use_takes_every_version_of_live_keys_only() {
        let v = |key: &str, id: &str, dm: bool| Version {
            key: key.into(),
            version_id: id.into(),
            last_modified: Time::default(),
            size: 0,
            delete_marker: dm,
            multipart: false,
        };
        let versions = [
            v("a", "a3", false),
            v("a", "a2", true),
            v("a", "a1", false),
            v("b", "b2", true),
            v("b", "b1", false),
            v("c", "c1", false),
        ];
        let ids: Vec<String> = in_use(&versions).into_iter().map(|v| v.version_id).collect();
        assert_eq!(ids, ["a3", "a1", "c1"]);
    }
}
