//! Repository benchmark against the peer, on the same data and the same SeaweedFS, in one run:
//!
//! - first backup, no-change and small-change re-backup throughput (k10 reading only files whose
//!   size or mtime changed, as its data movers do): k10 (rustic_core on object-locked S3) vs
//!   restic 0.14 backing up to S3 on the same server;
//! - opening a point-in-time view over 10,000 objects with 3 versions each (time, requests);
//! - restore throughput: k10 (as of the backup's time) vs `restic restore` of the same data;
//! - requests per GiB for the first backup and the restore (restic's counted by a proxy);
//! - a maintenance pass over the same objects (requests per object), when every lock needs
//!   extending and in the steady state.
//!
//! Run: `tests/s3env.sh start && cargo bench --bench repository` (K10_BENCH_MIB sets the data size).
//! It prints figures; it asserts nothing about speed.

#[path = "../tests/support/s3.rs"]
#[allow(dead_code)]
mod s3;
#[path = "../tests/support/faults.rs"]
#[allow(dead_code)]
mod faults;
#[path = "../tests/support/tree.rs"]
#[allow(dead_code)]
mod tree;

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_s3::types::ObjectLockRetentionMode;
use bytes::Bytes;
use futures::stream::{self, StreamExt, TryStreamExt};
use k10::objectstore::lock::ProtectionPeriod;
use k10::objectstore::maintenance;
use k10::objectstore::pit::PointInTime;
use k10::objectstore::s3::S3Storage;
use k10::objectstore::storage::Storage;
use k10::objectstore::{Credentials, Location, ObjectStore};
use k10::repo::Repo;

/// The counting proxy both k10 and restic go through (so that both pay the same hop).
static PROXY: std::sync::OnceLock<faults::FaultProxy> = std::sync::OnceLock::new();

fn proxy() -> &'static faults::FaultProxy {
    PROXY.get_or_init(|| faults::FaultProxy::start(&s3::env().endpoint))
}

fn storage(bucket: &str, days: Option<u32>) -> Arc<S3Storage> {
    let env = s3::env();
    let location = Location {
        endpoint: Some(proxy().endpoint.clone()),
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
        days.map(|d| ProtectionPeriod::from_days(d).unwrap()),
    ))
}

fn mib_per_s(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / (1024.0 * 1024.0) / d.as_secs_f64()
}

fn restic(repo: &str, args: &[&str]) -> Duration {
    let env = s3::env();
    let start = Instant::now();
    let out = Command::new("restic")
        .args(["--no-cache", "-q", "-r", repo])
        .args(args)
        .env("RESTIC_PASSWORD", "bench")
        .env("AWS_ACCESS_KEY_ID", &env.access_key)
        .env("AWS_SECRET_ACCESS_KEY", &env.secret_key)
        .output()
        .expect("restic is installed (tests/setup.sh)");
    assert!(out.status.success(), "restic {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    start.elapsed()
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let env = s3::env();
    let mib: usize = std::env::var("K10_BENCH_MIB").ok().and_then(|v| v.parse().ok()).unwrap_or(200);
    let data = tempfile::tempdir().unwrap();
    tree::mixed(data.path(), mib);
    let total: u64 = tree::read(data.path()).bytes;
    println!(
        "data: {} MiB in mixed file sizes; SeaweedFS at {}, k10 and restic both through a counting proxy",
        total / (1 << 20),
        env.endpoint
    );

    // k10: an object-locked bucket, every write carrying its own COMPLIANCE lock.
    let locked = s3::unique_bucket("bench-k10");
    env.create_locked_bucket(&locked, Some((ObjectLockRetentionMode::Compliance, s3::Retention::Days(21))))
        .await;
    let store = storage(&locked, Some(1));
    let repo = Repo::init(store.clone(), "k10/bench/repos/app/", "bench").await.unwrap();
    let start = Instant::now();
    let before = store.requests();
    // A volume's series, as the data movers back it up: the first run reads everything, later
    // ones only files whose size or mtime changed.
    let series = ["pvc-uid=bench".to_string(), "kind=volume".to_string()];
    let week = k10::repo::FULL_READ_EVERY;
    repo.backup_dir_in_series(data.path(), &series, &series, week).await.unwrap();
    let k10_first = start.elapsed();
    let k10_backup_requests = store.requests() - before;
    let start = Instant::now();
    repo.backup_dir_in_series(data.path(), &series, &series, week).await.unwrap();
    let k10_again = start.elapsed();

    // restic: a plain bucket on the same server (restic's lock files must be deletable).
    let plain = s3::unique_bucket("bench-restic");
    env.create_plain_bucket(&plain).await;
    // Through the same proxy, which only counts (no faults): restic's requests beside k10's.
    let counter = proxy();
    let restic_repo = format!("s3:{}/{plain}/restic", counter.endpoint);
    restic(&restic_repo, &["init"]);
    let path = data.path().to_str().unwrap();
    let before = counter.counts();
    let restic_first = restic(&restic_repo, &["backup", path]);
    let restic_backup_requests = (counter.counts() - before).requests;
    let restic_again = restic(&restic_repo, &["backup", path]);

    // A small change: one new small file and 4 MiB rewritten in the largest file.
    let largest = std::fs::read_dir(data.path())
        .unwrap()
        .flatten()
        .filter(|e| e.file_type().unwrap().is_file())
        .max_by_key(|e| e.metadata().unwrap().len())
        .unwrap()
        .path();
    let file = std::fs::OpenOptions::new().write(true).open(&largest).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&file, &tree::noise(99, 4 << 20), 0).unwrap();
    drop(file);
    std::fs::write(data.path().join("small-change.txt"), b"one more line").unwrap();
    let start = Instant::now();
    let latest = repo.backup_dir_in_series(data.path(), &series, &series, week).await.unwrap();
    let k10_small = start.elapsed();
    let restic_small = restic(&restic_repo, &["backup", path]);

    println!();
    println!("{:<28} {:>10} {:>12} {:>10}", "backup", "k10", "restic 0.14", "k10/restic");
    for (name, k, r) in [
        ("first (MiB/s)", k10_first, restic_first),
        ("no change (MiB/s)", k10_again, restic_again),
        ("small change (MiB/s)", k10_small, restic_small),
    ] {
        let (kt, rt) = (mib_per_s(total, k), mib_per_s(total, r));
        println!("{name:<28} {kt:>10.1} {rt:>12.1} {:>10.2}", kt / rt);
    }
    println!(
        "{:<28} {:>10.2} {:>12.2}",
        "seconds (first, no change, small)",
        k10_first.as_secs_f64(),
        restic_first.as_secs_f64()
    );
    println!("{:<28} {:>10.2} {:>12.2}", "", k10_again.as_secs_f64(), restic_again.as_secs_f64());
    println!("{:<28} {:>10.2} {:>12.2}", "", k10_small.as_secs_f64(), restic_small.as_secs_f64());

    // Restore: k10 opens the repository as of the backup's time; restic restores its latest.
    // Both restore their latest snapshot (after the small change).
    let at = repo.stored_at(&latest.id).await.unwrap();
    let restore_store = storage(&locked, None);
    let start = Instant::now();
    let view = k10::repo::Repo::<k10::repo::ReadOnly>::open_at(restore_store.clone(), "k10/bench/repos/app/", at, "bench")
        .await
        .unwrap();
    let out = tempfile::tempdir().unwrap();
    view.restore(&latest.id, &out.path().join("k10")).await.unwrap();
    let k10_restore = start.elapsed();
    let k10_restore_requests = restore_store.requests();
    let target = out.path().join("restic");
    let before = counter.counts();
    let restic_restore = restic(&restic_repo, &["restore", "latest", "--target", target.to_str().unwrap()]);
    let restic_restore_requests = (counter.counts() - before).requests;
    let (kt, rt) = (mib_per_s(total, k10_restore), mib_per_s(total, restic_restore));
    println!("{:<28} {kt:>10.1} {rt:>12.1} {:>10.2}", "restore (MiB/s)", kt / rt);
    let gib = total as f64 / (1u64 << 30) as f64;
    for (name, k, r) in [
        ("backup requests per GiB", k10_backup_requests, restic_backup_requests),
        ("restore requests per GiB", k10_restore_requests, restic_restore_requests),
    ] {
        let (k, r) = (k as f64 / gib, r as f64 / gib);
        println!("{name:<28} {k:>10.0} {r:>12.0} {:>10.2}", k / r);
    }

    // 10,000 objects with 3 versions each, written with P = 1 (21-day locks).
    const KEYS: usize = 10_000;
    let prefix = "k10/bench/repos/versions/";
    let writer = storage(&locked, Some(1));
    let start = Instant::now();
    for round in 0..3 {
        stream::iter(0..KEYS)
            .map(|i| {
                let writer = writer.clone();
                async move { writer.put(&format!("{prefix}{i:05}"), Bytes::from(format!("{i}-{round}"))).await }
            })
            .buffer_unordered(64)
            .try_collect::<Vec<_>>()
            .await
            .unwrap();
    }
    println!();
    println!("wrote {} versions in {:.1} s", KEYS * 3, start.elapsed().as_secs_f64());

    let reader = storage(&locked, None);
    let start = Instant::now();
    let view = PointInTime::new(reader.clone(), prefix, chrono::Utc::now()).await.unwrap();
    let open = start.elapsed();
    let seen = view.list(prefix).await.unwrap().len();
    println!(
        "point-in-time view over {KEYS} objects x 3 versions: {:.2} s, {} requests ({seen} objects current)",
        open.as_secs_f64(),
        reader.requests()
    );

    let maintainer = storage(&locked, Some(30));
    let period = ProtectionPeriod::from_days(30).unwrap();
    for pass in ["every lock short (P raised 1 -> 30)", "steady state, right after"] {
        let before = maintainer.requests();
        let start = Instant::now();
        let report = maintenance::run(maintainer.clone(), prefix, period).await.unwrap();
        let requests = maintainer.requests() - before;
        println!(
            "maintenance, {pass}: {:.2} s, extended {}, skipped {}, failed {}, {requests} requests = {:.3} per version kept \
             (every version of a live key: 3 per key here)",
            start.elapsed().as_secs_f64(),
            report.extended,
            report.skipped,
            report.failed.len(),
            requests as f64 / (report.extended + report.skipped).max(1) as f64
        );
    }
}
