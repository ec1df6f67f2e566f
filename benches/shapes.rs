//! The data mover against restic, process against process, on data sets of several shapes: for
//! each, `kubectl-k10 datamover backup` (first, no change, small change) and `datamover restore`
//! into an object-locked bucket, and restic 0.14 into a plain bucket on the same SeaweedFS, in
//! the same run. Printed per step: seconds, peak RSS of the process (`VmHWM`), and bytes
//! stored in the bucket after the first backup.
//!
//! Shapes: `random` (64 MiB files of random bytes), `text` (64 MiB files of log-like text),
//! `small` (100,000 files), `mix` (the drill's sample: large, medium and many small files, one in
//! five compressible, documents, symlinks). Sizes: `K10_BENCH_MIB` (default 200); with
//! `K10_BENCH_LARGE=1` each shape is also run at 2 GiB. `K10_BENCH_SHAPES=random,mix` picks shapes.
//!
//! Run: `tests/s3env.sh start && cargo bench --bench shapes`. It prints figures; it asserts
//! nothing about speed.

#[path = "../tests/support/s3.rs"]
#[allow(dead_code)]
mod s3;

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use aws_sdk_s3::types::ObjectLockRetentionMode;
use k10::datamover::tree;
use k10::objectstore::s3::S3Storage;
use k10::objectstore::storage::Storage;
use k10::objectstore::{Credentials, Location, ObjectStore};

const PASSWORD: &str = "bench-password";

/// One process run: its wall time, peak RSS, and standard output.
struct Measured {
    seconds: f64,
    rss_mib: f64,
    stdout: String,
}

/// The high-water mark of a running process's resident set (`VmHWM`), in KiB.
fn peak_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|l| l.strip_prefix("VmHWM:"))?.trim().trim_end_matches("kB").trim().parse().ok()
}

/// Runs a command to its end, reading its peak RSS from `/proc/<pid>/status` every 10 ms. (Not
/// `wait4`'s `ru_maxrss`: Linux starts a spawned child's from its parent's own peak, which here
/// is the data generator's.)
fn measure(command: &mut Command) -> Measured {
    let stdout_file = tempfile::NamedTempFile::new().unwrap();
    let stderr_file = tempfile::NamedTempFile::new().unwrap();
    let start = Instant::now();
    let mut child = command
        .stdout(stdout_file.reopen().unwrap())
        .stderr(stderr_file.reopen().unwrap())
        .spawn()
        .expect("the command starts");
    let mut peak = 0;
    let status = loop {
        peak = peak.max(peak_kib(child.id()).unwrap_or(0));
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    };
    let seconds = start.elapsed().as_secs_f64();
    let stderr = std::fs::read_to_string(stderr_file.path()).unwrap_or_default();
    assert!(status.success(), "{command:?} failed: {stderr}");
    Measured {
        seconds,
        rss_mib: peak as f64 / 1024.0,
        stdout: std::fs::read_to_string(stdout_file.path()).unwrap(),
    }
}

fn storage(bucket: &str) -> S3Storage {
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
    S3Storage::new(ObjectStore::connect(&location, &credentials).unwrap(), None)
}

async fn stored(bucket: &str, prefix: &str) -> u64 {
    storage(bucket).list(prefix).await.unwrap().iter().map(|o| o.size).sum()
}

/// Writes a shape of about `mib` MiB into `root`.
fn make(shape: &str, root: &Path, mib: usize) {
    std::fs::create_dir_all(root).unwrap();
    let big = |text: bool| {
        for i in 0..(mib / 64).max(1) {
            let size = (64usize << 20).min(mib << 20);
            let data = if text {
                let mut out = Vec::with_capacity(size);
                let mut n = 0u64;
                while out.len() < size {
                    out.extend_from_slice(format!("2026-12-04T10:{:02}:{:02}Z INFO request {n} served in {} ms from 10.0.{}.{}\n", n % 60, n % 59, n % 997, n % 255, n % 254).as_bytes());
                    n += 1;
                }
                out.truncate(size);
                out
            } else {
                // Odd seeds: `noise` makes seeds odd, so 2 and 3 would give the same bytes.
                tree::noise(2 * i as u64 + 1, size)
            };
            std::fs::write(root.join(format!("big-{i}.{}", if text { "log" } else { "bin" })), data).unwrap();
        }
    };
    match shape {
        "random" => big(false),
        "text" => big(true),
        "small" => {
            let each = ((mib << 20) / 100_000).max(64);
            for i in 0..100_000u64 {
                let dir = root.join(format!("d{:03}", i % 500));
                std::fs::create_dir_all(&dir).unwrap();
                let data = if i % 2 == 0 { tree::noise(i + 7, each) } else { format!("record {i}\n").repeat(each / 8 + 1).into_bytes()[..each].to_vec() };
                std::fs::write(dir.join(format!("f{i}.dat")), data).unwrap();
            }
        }
        _ => tree::sample(root, mib).unwrap(),
    }
}

/// A small change: one new file, and 4 MiB (or all, if smaller) rewritten in the largest file.
fn change(root: &Path) {
    let mut largest = (0, root.to_path_buf());
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let t = e.file_type().unwrap();
            if t.is_dir() {
                stack.push(e.path());
            } else if t.is_file() && e.metadata().unwrap().len() > largest.0 {
                largest = (e.metadata().unwrap().len(), e.path());
            }
        }
    }
    let file = std::fs::OpenOptions::new().write(true).open(&largest.1).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&file, &tree::noise(99, (4usize << 20).min(largest.0 as usize)), 0).unwrap();
    std::fs::write(root.join("small-change.txt"), b"one more line").unwrap();
}

struct Row {
    step: &'static str,
    k10: Measured,
    restic: Measured,
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let env = s3::env();
    let binary = env!("CARGO_BIN_EXE_kubectl-k10");
    let shapes: Vec<String> = std::env::var("K10_BENCH_SHAPES").unwrap_or_else(|_| "random,text,small,mix".into()).split(',').map(str::to_string).collect();
    let mut sizes = vec![std::env::var("K10_BENCH_MIB").ok().and_then(|v| v.parse().ok()).unwrap_or(200usize)];
    if std::env::var("K10_BENCH_LARGE").is_ok_and(|v| v == "1") {
        sizes.push(2048);
    }
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!("k10 datamover (release) vs restic 0.14, process against process; SeaweedFS at {}; {cpus} CPUs", env.endpoint);
    for mib in sizes {
        for shape in &shapes {
            let work = tempfile::tempdir().unwrap();
            let data = work.path().join("data");
            make(shape, &data, mib);
            let digest = tree::digest(&data).unwrap();

            let locked = s3::unique_bucket("shapes-k10");
            env.create_locked_bucket(&locked, Some((ObjectLockRetentionMode::Compliance, s3::Retention::Days(21)))).await;
            let prefix = "k10/bench/repos/vol/";
            // The data mover gets the repository's master key, as the product's Jobs give it;
            // restic its password (its key derivation is part of its run).
            let key = k10::repo::Repo::init(std::sync::Arc::new(storage(&locked)), prefix, PASSWORD).await.unwrap().key().to_secret();
            let k10 = |args: &[&str]| {
                let mut c = Command::new(binary);
                c.args(["datamover"])
                    .args(args)
                    .args(["--repository", prefix, "--bucket", &locked, "--region", &env.region, "--endpoint", &env.endpoint, "--protection-days", "1"])
                    .env("AWS_ACCESS_KEY_ID", &env.access_key)
                    .env("AWS_SECRET_ACCESS_KEY", &env.secret_key)
                    .env("K10_REPO_KEY", &key);
                c
            };
            let backup = ["backup", "--path", data.to_str().unwrap(), "--tag", "pvc-uid=bench", "--series", "pvc-uid=bench", "--series", "kind=volume"];
            let plain = s3::unique_bucket("shapes-restic");
            env.create_plain_bucket(&plain).await;
            let restic_repo = format!("s3:{}/{plain}/restic", env.endpoint);
            let restic = |args: &[&str]| {
                let mut c = Command::new("restic");
                c.args(["--no-cache", "-q", "-r", &restic_repo])
                    .args(args)
                    .env("RESTIC_PASSWORD", PASSWORD)
                    .env("AWS_ACCESS_KEY_ID", &env.access_key)
                    .env("AWS_SECRET_ACCESS_KEY", &env.secret_key);
                c
            };
            measure(&mut restic(&["init"]));
            let path = data.to_str().unwrap();

            let mut rows = Vec::new();
            let first = measure(&mut k10(&backup));
            let restic_first = measure(&mut restic(&["backup", path]));
            let (k10_stored, restic_stored) = (stored(&locked, prefix).await, stored(&plain, "restic/").await);
            rows.push(Row { step: "first backup", k10: first, restic: restic_first });
            rows.push(Row { step: "no-change re-backup", k10: measure(&mut k10(&backup)), restic: measure(&mut restic(&["backup", path])) });
            change(&data);
            let changed_digest = tree::digest(&data).unwrap();
            let k10_small = measure(&mut k10(&backup));
            let snapshot = serde_json::from_str::<serde_json::Value>(k10_small.stdout.lines().rfind(|l| l.starts_with('{')).unwrap()).unwrap()["snapshot"].as_str().unwrap().to_string();
            rows.push(Row { step: "small-change re-backup", k10: k10_small, restic: measure(&mut restic(&["backup", path])) });
            tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
            let as_of = k10::dr::rfc3339(chrono::Utc::now());
            let k10_out = work.path().join("k10-restored");
            let k10_restore = measure(&mut k10(&["restore", "--path", k10_out.to_str().unwrap(), "--snapshot", &snapshot, "--as-of", &as_of]));
            let restic_out = work.path().join("restic-restored");
            let restic_restore = measure(&mut restic(&["restore", "latest", "--target", restic_out.to_str().unwrap()]));
            rows.push(Row { step: "restore", k10: k10_restore, restic: restic_restore });
            assert!(changed_digest.differences(&tree::digest(&k10_out).unwrap()).is_empty(), "k10's restore differs");

            println!(
                "\n{shape} at {} MiB ({} files): stored after the first backup: k10 {:.1} MiB, restic {:.1} MiB ({:.2}x)",
                digest.bytes >> 20,
                digest.files,
                k10_stored as f64 / 1048576.0,
                restic_stored as f64 / 1048576.0,
                k10_stored as f64 / restic_stored.max(1) as f64
            );
            println!("  {:<24} {:>9} {:>9} {:>7}   {:>9} {:>9} {:>7}", "step", "k10 s", "restic s", "ratio", "k10 RSS", "restic", "ratio");
            for r in &rows {
                println!(
                    "  {:<24} {:>9.2} {:>9.2} {:>7.2}   {:>6.0} MiB {:>5.0} MiB {:>6.2}",
                    r.step,
                    r.k10.seconds,
                    r.restic.seconds,
                    r.k10.seconds / r.restic.seconds,
                    r.k10.rss_mib,
                    r.restic.rss_mib,
                    r.k10.rss_mib / r.restic.rss_mib
                );
            }
        }
    }
}
