//! The adversary who has read our source: 90 simulated days of backups and retention maintenance
//! (every 2 days) on the in-memory store with a movable clock, while an attacker holding the
//! bucket's keys writes, right before and right after every run, every kind of record k10 ever
//! kept beside a repository (maintenance ledgers, writer markers, anything under the maintenance
//! prefix, with any values) and overwrites repository files with short-locked copies and garbage.
//!
//! What must hold at every moment: each version k10 still needs — every version of a live key,
//! and what each restore point of the last P days reads — stays locked at least P days ahead
//! (a restore point made at T: until T + P at least). Nothing panics.

use std::sync::Arc;

use bytes::Bytes;
use chrono::Duration;
use k10::objectstore::lock::ProtectionPeriod;
use k10::objectstore::maintenance;
use k10::objectstore::memory::MemoryStorage;
use k10::objectstore::storage::{Storage, Time, VersionedStorage};
use sha2::{Digest, Sha256};

const P: i64 = 30;
const REPO: &str = "k10/cluster/repos/ns-uid/";
const MAINTENANCE: &str = "k10/cluster/maintenance/repos/ns-uid/";

/// A restore point: when it was made and the versions it reads.
struct RestorePoint {
    at: Time,
    needs: Vec<(String, String)>,
}

fn hex(data: &[u8]) -> String {
    Sha256::digest(data).iter().map(|b| format!("{b:02x}")).collect()
}

/// Writes a content-addressed file as k10 does (locked P + 20 days by the store's settings).
async fn write_file(store: &MemoryStorage, dir: &str, data: Vec<u8>) -> (String, String) {
    let id = hex(&data);
    let key = match dir {
        "data" => format!("{REPO}data/{}/{id}", &id[..2]),
        _ => format!("{REPO}{dir}/{id}"),
    };
    let version = store.put(&key, Bytes::from(data)).await.unwrap();
    (key, version)
}

/// Every record an attacker could leave for maintenance to find, with values chosen to lie.
fn forged_records(now: Time) -> Vec<(String, Vec<u8>)> {
    let far = "9999-12-31T23:59:59Z";
    let mut out = Vec::new();
    for (i, days) in [0u64, 1, 30, 9999, u64::from(u32::MAX) - 1, u64::from(u32::MAX), u64::MAX].iter().enumerate() {
        let ledger = format!(
            r#"{{"until":"{far}","coveredThrough":"{far}","protectionDays":{days},"failed":[]}}"#
        );
        out.push((format!("{MAINTENANCE}{}-p{days}.json", now.format("%Y%m%dT%H%M%S%.6fZ")), ledger.into_bytes()));
        out.push((format!("{MAINTENANCE}writer-p{days}.json"), b"{}".to_vec()));
        out.push((format!("{MAINTENANCE}forged-{i}.json"), format!(r#"{{"until":"{now}","protectionDays":{days}}}"#).into_bytes()));
    }
    out.push((format!("{MAINTENANCE}garbage.json"), vec![0xff; 64]));
    // And beside the repository's own files, where maintenance does look.
    out.push((format!("{REPO}maintenance/ledger-p{}.json", u32::MAX), format!(r#"{{"until":"{far}","protectionDays":{}}}"#, u32::MAX).into_bytes()));
    out.push((format!("{REPO}locks/{}", "0".repeat(64)), b"{}".to_vec()));
    out.push((format!("{MAINTENANCE}-p.json"), b"not json".to_vec()));
    out
}

#[tokio::test]
async fn forged_records_never_let_a_needed_lock_run_short() {
    let store = Arc::new(MemoryStorage::locked(Duration::days(P + 20)));
    let period = ProtectionPeriod::from_days(P as u32).unwrap();
    let mut genuine: Vec<(String, String)> = Vec::new();
    let mut points: Vec<RestorePoint> = Vec::new();
    let mut seed = 7u64;
    let mut next = move || {
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        seed >> 33
    };

    for day in 0..90i64 {
        // k10's daily backup: two new packs and a snapshot that reads every pack so far (dedup).
        let mut needs = Vec::new();
        for n in 0..2 {
            let pack = write_file(&store, "data", format!("pack {day}/{n}").repeat(50).into_bytes()).await;
            genuine.push(pack);
        }
        needs.extend(genuine.iter().filter(|(k, _)| k.contains("/data/")).cloned());
        let snapshot = write_file(&store, "snapshots", format!("snapshot of day {day}").into_bytes()).await;
        genuine.push(snapshot.clone());
        needs.push(snapshot);
        points.push(RestorePoint { at: store.now(), needs });
        // Retention: snapshots older than 7 days are forgotten (a delete marker; the data stays).
        for p in points.iter().filter(|p| store.now() - p.at > Duration::days(7)) {
            let key = &p.needs.last().unwrap().0;
            if store.stat(key).await.is_ok() {
                store.delete(key).await.unwrap();
            }
        }

        // The attacker, right before the run: forged records, a pack re-uploaded with a one-day
        // lock, another overwritten with unlocked garbage, a snapshot retired.
        let attack = |store: Arc<MemoryStorage>, pick: u64| {
            let genuine = genuine.clone();
            async move {
                let now = store.now();
                for (key, data) in forged_records(now) {
                    store.put_with_lock(&key, Bytes::from(data), None);
                }
                let (key, version) = &genuine[pick as usize % genuine.len()];
                if key.contains("/data/") {
                    let same = store.get_version(key, version, None).await.unwrap();
                    store.put_with_lock(key, same, Some(now + Duration::days(1)));
                    store.put_with_lock(key, Bytes::from_static(b"encrypted by ransomware"), None);
                } else if store.stat(key).await.is_ok() {
                    store.delete(key).await.unwrap();
                }
            }
        };
        attack(store.clone(), next()).await;
        if day % 2 == 0 {
            check(&store, &genuine, &points, "before maintenance").await;
            let report = maintenance::run_at(store.clone(), REPO, period, store.now()).await.unwrap();
            assert!(report.failed.is_empty(), "day {day}: {report:?}");
            attack(store.clone(), next()).await;
            check(&store, &genuine, &points, "after maintenance").await;
        }
        store.advance_clock(Duration::days(1));
        check(&store, &genuine, &points, "a day later").await;
    }
}

/// Every genuine version of a live key is locked at least P days ahead, and every restore point
/// of the last P days can be read until its own time + P.
async fn check(store: &MemoryStorage, genuine: &[(String, String)], points: &[RestorePoint], when: &str) {
    let now = store.now();
    let day = |t: Time| (t - now).num_hours() as f64 / 24.0;
    for (key, version) in genuine {
        let live = store.stat(key).await.is_ok();
        let until = store.lock_until(key, version).await.unwrap().expect("every k10 write is locked");
        if live {
            assert!(until >= now + Duration::days(P), "{when}: {key} in use but locked only {:.1} days ahead", day(until));
        }
    }
    for p in points.iter().filter(|p| now - p.at <= Duration::days(P)) {
        for (key, version) in &p.needs {
            let until = store.lock_until(key, version).await.unwrap().unwrap();
            assert!(
                until >= p.at + Duration::days(P),
                "{when}: the restore point of {} needs {key} until {}, locked only until {until}",
                p.at,
                p.at + Duration::days(P)
            );
        }
    }
}
