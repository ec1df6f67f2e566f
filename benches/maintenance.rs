//! Retention maintenance at scale, on the in-memory store: 1,000,000 objects (K10_BENCH_OBJECTS
//! sets the count), in the steady state (every lock still reaches far enough: one lock read per
//! object) and when every lock needs extending (a read and an extension per object). Prints the
//! requests the pass sent and its time; asserts nothing about speed. The in-memory store answers
//! in microseconds, so the time is maintenance's own cost; on S3 each request adds its latency
//! (divided by maintenance's 32 requests in flight).
//!
//! Run: `cargo bench --bench maintenance`.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use chrono::Duration;
use k10::objectstore::lock::ProtectionPeriod;
use k10::objectstore::maintenance;
use k10::objectstore::memory::MemoryStorage;
use k10::objectstore::storage::{Storage, VersionedStorage};

const PREFIX: &str = "k10/cluster/repos/namespace/";

#[tokio::main]
async fn main() {
    let objects: usize = std::env::var("K10_BENCH_OBJECTS").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000);
    let period = ProtectionPeriod::from_days(30).unwrap();
    let store = Arc::new(MemoryStorage::locked(Duration::days(i64::from(period.lock_days()))));
    let started = Instant::now();
    for i in 0..objects {
        store.put(&format!("{PREFIX}data/{:02x}/{i:064x}", i % 256), Bytes::from_static(b"pack")).await.unwrap();
    }
    println!("maintenance bench: {objects} objects written to the in-memory store in {:.1} s", started.elapsed().as_secs_f64());

    let pass = |label: &'static str, now| {
        let store: Arc<dyn VersionedStorage> = store.clone();
        async move {
            let started = Instant::now();
            let report = maintenance::run_at(store, PREFIX, period, now).await.unwrap();
            let seconds = started.elapsed().as_secs_f64();
            assert!(report.failed.is_empty(), "{:?}", &report.failed[..report.failed.len().min(3)]);
            println!(
                "{label:<34} {:>9} extended {:>9} skipped {:>10} requests ({:.2} per object) in {:>6.1} s ({:>8.0} objects/s)",
                report.extended,
                report.skipped,
                report.requests,
                report.requests as f64 / objects as f64,
                seconds,
                objects as f64 / seconds
            );
            report
        }
    };
    // Fresh writes are locked P + 20 days ahead: nothing to extend.
    let steady = pass("steady state (nothing to extend)", store.now()).await;
    assert_eq!(steady.extended, 0);
    // Eleven days on, every lock ends within P + 10 days: all are extended.
    store.advance_clock(Duration::days(11));
    let all = pass("11 days later (everything extended)", store.now()).await;
    assert_eq!(all.extended, objects);
    let again = pass("right after (steady again)", store.now()).await;
    assert_eq!(again.extended, 0);
}
