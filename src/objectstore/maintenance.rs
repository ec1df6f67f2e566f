//! Retention maintenance: keeps every object still current under a prefix locked far enough ahead.
//!
//! Rule: an object whose lock ends before `now + P + 10 days` is extended to `now + P + 20 days`;
//! locks are never shortened; objects behind delete markers are left to expire. Run at least every
//! 2 days, this keeps every current object restorable for P days after any attack.
//!
//! Cost: one version listing (1 request per 1,000 versions), then 2 requests (read + extend) per
//! object that needs extending, and one ledger write. No HEAD per object to decide what to skip: the
//! lower bound of each object's lock is known from
//! - its write: the product locks every write until write time + P + 20 days, and the store's
//!   `LastModified` is that write time; the smallest P any writer or ledger recorded is used (with
//!   no record at all, nothing is assumed and every object is checked);
//!   (every writer records its P with [`record_writer`] before writing, so a period raised later
//!   never over-estimates older locks);
//! - the newest ledger: each run records (as a locked object under the ledger prefix) the smallest
//!   lock it left on every object it covered, which are the objects written up to its listing.
//!
//! A ledger's claim is capped at its own write time + P + 20 days, so a forged ledger cannot make
//! maintenance skip objects for longer than an honest run could have locked them.

use std::sync::Arc;

use bytes::Bytes;
use chrono::Duration;
use futures::stream::{self, StreamExt};
use serde::{Deserialize, Serialize};

use super::lock::{ProtectionPeriod, LOCK_MARGIN_DAYS};
use super::storage::{current_at, Result, StorageError, Time, VersionedStorage};

/// Extend when a lock ends sooner than now + P + this many days.
pub const EXTEND_WITHIN_DAYS: i64 = 10;
/// How far a writer's clock may lag the store's without maintenance over-estimating its locks.
const CLOCK_SKEW_DAYS: i64 = 1;
/// Concurrent extensions.
const PARALLEL: usize = 16;

/// What one run found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    pub extended: usize,
    pub skipped: usize,
    /// Objects whose lock could not be extended, with the store's reason.
    pub failed: Vec<(String, String)>,
    /// Requests sent to the store (listing pages are counted as one per 1,000 versions).
    pub requests: usize,
}

/// The record a run leaves behind.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Ledger {
    /// Every object covered (current at the run's listing, not failed) is locked at least until this.
    until: Time,
    /// The newest `LastModified` among the covered objects.
    covered_through: Time,
    protection_days: u32,
    failed: Vec<String>,
}

/// Runs maintenance over the current objects under `prefix`, using and extending the ledgers under
/// `ledger_prefix` (which must not be inside `prefix`).
pub async fn run(
    store: Arc<dyn VersionedStorage>,
    prefix: &str,
    ledger_prefix: &str,
    period: ProtectionPeriod,
) -> Result<Report> {
    run_at(store, prefix, ledger_prefix, period, chrono::Utc::now()).await
}

/// [`run`] with the current time given (tests move a store's clock ahead).
pub async fn run_at(
    store: Arc<dyn VersionedStorage>,
    prefix: &str,
    ledger_prefix: &str,
    period: ProtectionPeriod,
    now: Time,
) -> Result<Report> {
    let mut report = Report::default();
    let (ledger, min_days) = newest_ledger(store.as_ref(), ledger_prefix, period, &mut report).await?;

    let versions = store.list_versions(prefix).await?;
    report.requests += versions.len() / 1000 + 1;
    let objects = current_at(&versions, now + Duration::days(3650));
    let needed = now + Duration::days(i64::from(period.days()) + EXTEND_WITHIN_DAYS);
    let target = now + Duration::days(i64::from(period.lock_days()));
    // Writers lock by their own clock, LastModified is the store's: allow a day of skew.
    let from_write = min_days.map(|d| Duration::days(i64::from(d + LOCK_MARGIN_DAYS) - CLOCK_SKEW_DAYS));

    let mut todo = Vec::new();
    let mut covered_min = target;
    for o in &objects {
        let mut bound = o.last_modified + from_write.unwrap_or_default();
        if let Some(l) = &ledger {
            if o.last_modified <= l.covered_through && !l.failed.contains(&o.key) {
                bound = bound.max(l.until);
            }
        }
        if bound >= needed {
            report.skipped += 1;
            covered_min = covered_min.min(bound);
        } else {
            todo.push(o.clone());
        }
    }

    let results: Vec<(String, std::result::Result<(), StorageError>)> = stream::iter(todo)
        .map(|o| {
            let store = store.clone();
            async move {
                let r = store.extend_lock(&o.key, &o.version_id, target).await;
                (o.key, r)
            }
        })
        .buffer_unordered(PARALLEL)
        .collect()
        .await;
    for (key, result) in results {
        report.requests += 2;
        match result {
            Ok(()) => report.extended += 1,
            // Its lock already ends later than we would set it: nothing to do.
            Err(StorageError::WouldShorten { .. }) => report.skipped += 1,
            Err(e) => report.failed.push((key, e.to_string())),
        }
    }
    report.failed.sort();

    if let Some(covered_through) = objects.iter().map(|o| o.last_modified).max() {
        let record = Ledger {
            until: covered_min,
            covered_through,
            protection_days: period.days(),
            failed: report.failed.iter().map(|(k, _)| k.clone()).collect(),
        };
        let key = ledger_key(ledger_prefix, now, period);
        let body = serde_json::to_vec(&record).expect("a ledger serializes");
        report.requests += 1;
        if let Err(e) = store.put(&key, Bytes::from(body)).await {
            report.failed.push((key, e.to_string()));
        }
    }
    Ok(report)
}

/// Records that a writer locks its writes for `period` + 20 days, once per period (a marker
/// object `writer-p<days>.json` under the ledger prefix). Call it before writing to a repository.
pub async fn record_writer(store: &dyn VersionedStorage, ledger_prefix: &str, period: ProtectionPeriod) -> Result<()> {
    let known = store.list(ledger_prefix).await?;
    if known.iter().any(|o| ledger_days(&o.key) == Some(period.days())) {
        return Ok(());
    }
    let key = format!("{ledger_prefix}writer-p{}.json", period.days());
    store.put(&key, Bytes::from_static(b"{}")).await?;
    Ok(())
}

/// The newest readable ledger (its claim capped at its write time + P + 20 days) and the smallest
/// protection period any writer or ledger recorded in its key (none: nothing is known about how
/// writes were locked). Reads one ledger, not all.
async fn newest_ledger(
    store: &dyn VersionedStorage,
    ledger_prefix: &str,
    period: ProtectionPeriod,
    report: &mut Report,
) -> Result<(Option<Ledger>, Option<u32>)> {
    let mut ledgers = store.list(ledger_prefix).await?;
    report.requests += ledgers.len() / 1000 + 1;
    ledgers.sort_by_key(|o| o.last_modified);
    // Without any record of a writer's period, nothing is assumed about how writes were locked.
    let min_days = ledgers
        .iter()
        .filter_map(|o| ledger_days(&o.key))
        .min()
        .map(|recorded| recorded.min(period.days()));
    for info in ledgers.iter().rev().filter(|o| !o.key[ledger_prefix.len()..].starts_with("writer-")) {
        report.requests += 1;
        let parsed = store
            .get(&info.key, None)
            .await
            .ok()
            .and_then(|data| serde_json::from_slice::<Ledger>(&data).ok());
        let Some(mut ledger) = parsed else {
            tracing::warn!(key = %info.key, "ignoring an unreadable maintenance ledger");
            continue;
        };
        let cap = info.last_modified + Duration::days(i64::from(ledger.protection_days + LOCK_MARGIN_DAYS));
        ledger.until = ledger.until.min(cap);
        return Ok((Some(ledger), min_days));
    }
    Ok((None, min_days))
}

/// A ledger's key ends in `-p<days>.json`.
fn ledger_key(ledger_prefix: &str, now: Time, period: ProtectionPeriod) -> String {
    format!("{ledger_prefix}{}-p{}.json", now.format("%Y%m%dT%H%M%S%.6fZ"), period.days())
}

fn ledger_days(key: &str) -> Option<u32> {
    key.strip_suffix(".json")?.rsplit_once("-p")?.1.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objectstore::memory::MemoryStorage;
    use crate::objectstore::storage::Storage;

    fn period(days: u32) -> ProtectionPeriod {
        ProtectionPeriod::from_days(days).unwrap()
    }

    /// P = 30: the product locks writes for 50 days.
    async fn store_with(keys: &[&str]) -> (Arc<MemoryStorage>, Vec<String>) {
        let store = Arc::new(MemoryStorage::locked(Duration::days(50)));
        record_writer(store.as_ref(), "ledger/", period(30)).await.unwrap();
        let mut versions = Vec::new();
        for k in keys {
            versions.push(store.put(k, Bytes::from_static(b"x")).await.unwrap());
        }
        (store, versions)
    }

    async fn maintain(store: &Arc<MemoryStorage>) -> Report {
        run_at(store.clone(), "repo/", "ledger/", period(30), store.now()).await.unwrap()
    }

    #[tokio::test]
    async fn fresh_writes_are_skipped_old_ones_extended_then_skipped() {
        let (store, versions) = store_with(&["repo/a", "repo/b"]).await;
        // Just written: locked 50 days ahead, more than the 40 needed.
        let first = maintain(&store).await;
        assert_eq!((first.extended, first.skipped, first.failed.len()), (0, 2, 0));

        // 15 days later the locks end in 35 days (< 40): both are extended to now + 50.
        store.advance_clock(Duration::days(15));
        let second = maintain(&store).await;
        assert_eq!((second.extended, second.skipped), (2, 0), "{second:?}");
        let until = store.lock_until("repo/a", &versions[0]).await.unwrap().unwrap();
        assert!((until - (store.now() + Duration::days(50))).num_seconds().abs() < 5);

        // Right after, nothing needs extending, and no lock is read to know it (the ledger says so).
        let third = maintain(&store).await;
        assert_eq!((third.extended, third.skipped), (0, 2), "{third:?}");
        assert!(third.requests <= 4, "{third:?}");

        // A new object written now is covered by its own write.
        store.put("repo/c", Bytes::from_static(b"y")).await.unwrap();
        let fourth = maintain(&store).await;
        assert_eq!((fourth.extended, fourth.skipped), (0, 3), "{fourth:?}");
    }

    #[tokio::test]
    async fn never_extends_objects_behind_delete_markers() {
        let (store, versions) = store_with(&["repo/gone", "repo/kept"]).await;
        store.delete("repo/gone").await.unwrap();
        let before = store.lock_until("repo/gone", &versions[0]).await.unwrap();
        store.advance_clock(Duration::days(15));
        let report = maintain(&store).await;
        assert_eq!((report.extended, report.skipped), (1, 0));
        assert_eq!(store.lock_until("repo/gone", &versions[0]).await.unwrap(), before);
    }

    #[tokio::test]
    async fn never_shortens_a_lock() {
        // Locks of 400 days: far beyond what maintenance would set; nothing is touched.
        let store = Arc::new(MemoryStorage::locked(Duration::days(400)));
        let v = store.put("repo/long", Bytes::from_static(b"x")).await.unwrap();
        let before = store.lock_until("repo/long", &v).await.unwrap();
        store.advance_clock(Duration::days(15));
        // No writer record: the lock is read, found longer than needed, and left alone.
        let report = maintain(&Arc::clone(&store)).await;
        assert_eq!((report.extended, report.skipped, report.failed.len()), (0, 1, 0), "{report:?}");
        assert_eq!(store.lock_until("repo/long", &v).await.unwrap(), before);
    }

    #[tokio::test]
    async fn a_forged_ledger_cannot_promise_more_than_an_honest_run() {
        let (store, _) = store_with(&["repo/a"]).await;
        // Forged claims: an unbounded lock, and a huge writer period.
        store.put("ledger/writer-p9999.json", Bytes::from_static(b"{}")).await.unwrap();
        let forged = serde_json::json!({
            "until": "2999-01-01T00:00:00Z", "coveredThrough": "2999-01-01T00:00:00Z",
            "protectionDays": 30, "failed": []
        });
        store.put("ledger/forged-p30.json", Bytes::from(forged.to_string())).await.unwrap();
        store.advance_clock(Duration::days(15));
        let report = maintain(&store).await;
        assert_eq!(report.extended, 1, "{report:?}");
    }

    #[tokio::test]
    async fn a_raised_period_does_not_overestimate_older_locks() {
        // Written with P = 1 (locked 21 days), recorded; maintenance now runs with P = 30.
        let store = Arc::new(MemoryStorage::locked(Duration::days(21)));
        record_writer(store.as_ref(), "ledger/", period(1)).await.unwrap();
        record_writer(store.as_ref(), "ledger/", period(1)).await.unwrap();
        assert_eq!(store.list("ledger/").await.unwrap().len(), 1, "one marker per period");
        let v = store.put("repo/a", Bytes::from_static(b"x")).await.unwrap();
        let report = maintain(&store).await;
        assert_eq!(report.extended, 1, "{report:?}");
        let until = store.lock_until("repo/a", &v).await.unwrap().unwrap();
        assert!(until >= store.now() + Duration::days(49));
    }
}
