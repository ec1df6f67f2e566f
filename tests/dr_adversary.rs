//! DR restore against an attacker who has read the source, on SeaweedFS with Object Lock:
//! - every time k10 prints, passed back as `--point-in-time`, brings back the snapshot it names;
//! - a forged newest DR snapshot makes a restore without a time fall back to the newest that
//!   reads, with a warning naming what it skipped;
//! - key files, a config and snapshots forged after T never stop the restore as of T;
//! - with every key behind a delete marker, a wrong cluster ID lists those in the bucket's history;
//! - a store outage (a proxy that drops connections) says so, never "gone" or "damaged".

mod support;

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use k10::objectstore::memory::MemoryStorage;
use k10::objectstore::storage::{Storage, VersionedStorage};
use k10::repo::Repo;
use sha2::Digest;
use support::apiserver::{ApiServer, ApiServerOptions};
use support::app::Fixture;
use support::cli::{binary, K10};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const PASSPHRASE: &str = "correct horse battery staple";

/// The store time `dr run` printed.
fn stored_at(run: &str) -> String {
    run.split("stored at ").nth(1).unwrap().split_whitespace().next().unwrap().to_string()
}

fn sha256_hex(data: &[u8]) -> String {
    sha2::Sha256::digest(data).iter().map(|b| format!("{b:02x}")).collect()
}

/// A TCP proxy in front of the store that forwards `budget` more requests, then drops every
/// connection (an outage in the middle of whatever is running).
struct Proxy {
    endpoint: String,
    budget: Arc<AtomicI64>,
}

impl Proxy {
    async fn start(upstream: &str) -> Proxy {
        let upstream = upstream.trim_start_matches("http://").to_string();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let budget = Arc::new(AtomicI64::new(i64::MAX));
        let b = budget.clone();
        tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else { return };
                let (budget, upstream) = (b.clone(), upstream.clone());
                tokio::spawn(async move {
                    if budget.load(Ordering::SeqCst) <= 0 {
                        return;
                    }
                    let Ok(server) = tokio::net::TcpStream::connect(&upstream).await else { return };
                    let (mut cr, mut cw) = client.into_split();
                    let (mut sr, mut sw) = server.into_split();
                    let up = async {
                        let mut buf = vec![0u8; 64 * 1024];
                        loop {
                            let n = cr.read(&mut buf).await.unwrap_or(0);
                            let requests = buf[..n].windows(11).filter(|w| w == b" HTTP/1.1\r\n").count() as i64;
                            if n == 0 || budget.fetch_sub(requests, Ordering::SeqCst) - requests < 0 {
                                return;
                            }
                            if sw.write_all(&buf[..n]).await.is_err() {
                                return;
                            }
                        }
                    };
                    let down = async {
                        let mut buf = vec![0u8; 64 * 1024];
                        loop {
                            let n = sr.read(&mut buf).await.unwrap_or(0);
                            if n == 0 || budget.load(Ordering::SeqCst) < 0 || cw.write_all(&buf[..n]).await.is_err() {
                                return;
                            }
                        }
                    };
                    tokio::select! { _ = up => {}, _ = down => {} }
                });
            }
        });
        Proxy { endpoint, budget }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_catalog_of_t_comes_back_whatever_was_forged_after_t() {
    let f = Fixture::new().await;
    f.kubectl(&["create", "secret", "generic", "k10-dr-secret", "-n", "kasten-io", "--from-literal", &format!("key={PASSPHRASE}")]);
    f.k10.run(&["policy", "create", "shop", "--namespaces", "shop", "--profile", "immutable"]).ok();
    f.k10.run(&["policy", "run", "shop", "--wait"]).ok();
    f.k10.run(&["dr", "enable", "--profile", "immutable"]).ok();
    // Two first DR runs at once (a scheduled one and a manual one): one creates the catalog
    // repository, and it has one config.
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| f.k10.run(&["dr", "run"]).ok().stdout);
        let b = s.spawn(|| f.k10.run(&["dr", "run"]).ok().stdout);
        (a.join().unwrap(), b.join().unwrap())
    });
    let created = [&a, &b].iter().filter(|o| o.contains("created the catalog repository")).count();
    assert_eq!(created, 1, "{a}\n{b}");
    let source_id = f.server.default_namespace_uid();
    let configs = f.storage().list_versions(&format!("k10/{source_id}/catalog/config")).await.unwrap();
    assert_eq!(configs.len(), 1, "{configs:?}");
    let (mut x1, mut x2) = (stored_at(&a), stored_at(&b));
    let time = |t: &str| chrono::DateTime::parse_from_rfc3339(t).unwrap();
    if time(&x2) < time(&x1) {
        std::mem::swap(&mut x1, &mut x2);
    }
    let status = f.k10.run(&["dr", "status"]).ok().stdout;
    let newest = status.lines().find_map(|l| l.split("Last DR Runs:").nth(1)).unwrap().trim().split(", ").next().unwrap().to_string();
    assert_eq!(newest, x2, "{status}");

    // A new installation: the passphrase and a plain profile on the bucket.
    let dir = tempfile::tempdir().unwrap();
    let new = ApiServer::start_in_background(ApiServerOptions {
        k10_binary: Some(binary()),
        volumes_root: dir.path().join("volumes"),
        default_namespace_uid: Some("0a1b2c3d-0000-4000-8000-0000000adv01".into()),
        ..Default::default()
    });
    let k10 = K10::new(new.kubeconfig_path())
        .with_env("AWS_ACCESS_KEY_ID", &f.s3.access_key)
        .with_env("AWS_SECRET_ACCESS_KEY", &f.s3.secret_key);
    k10.run(&["install"]).ok();
    let k10 = k10.acting_as_service_account(&new);
    let kubectl = |args: &[&str]| {
        let out = std::process::Command::new("kubectl").arg("--kubeconfig").arg(new.kubeconfig_path()).args(args).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    };
    kubectl(&["create", "secret", "generic", "k10-dr-secret", "-n", "kasten-io", "--from-literal", &format!("key={PASSPHRASE}")]);
    k10.run(&["profile", "create", "recovery", "--bucket", &f.bucket, "--endpoint", &f.s3.endpoint]).ok();
    let restore = |extra: &[&str]| {
        let mut args = vec!["dr", "restore", "--source-cluster-id", source_id.as_str(), "--profile", "recovery"];
        args.extend_from_slice(extra);
        k10.run(&args)
    };

    // Every printed time, passed back, brings back the snapshot it names.
    for (printed, by) in [(&x1, "dr run"), (&x2, "dr run"), (&newest, "dr status")] {
        let out = restore(&["--point-in-time", printed]).ok();
        assert!(out.stdout.contains(&format!("DR snapshot stored at {printed} ")), "{by} printed {printed}:\n{}", out.stdout);
    }

    // A forged newest DR snapshot: named by its hash, so only reading it shows it is not one.
    let store = f.storage();
    let catalog = format!("k10/{source_id}/catalog/");
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let garbage = b"a snapshot that is not one".to_vec();
    store.put(&format!("{catalog}snapshots/{}", sha256_hex(&garbage)), Bytes::from(garbage)).await.unwrap();
    let out = restore(&[]).ok();
    assert!(out.stdout.contains(&format!("DR snapshot stored at {x2} ")), "{}", out.stdout);
    assert!(out.stderr.contains("warning: skipped the DR snapshot stored at"), "{}", out.stderr);

    // Then the keys (the genuine one hidden, one of the attacker's added), the config and
    // snapshots forged after T.
    let attacker = Arc::new(MemoryStorage::new());
    Repo::init(attacker.clone(), "x/", "the attacker's password").await.unwrap();
    let key = attacker.list("x/keys/").await.unwrap().remove(0);
    let key_data = attacker.get(&key.key, None).await.unwrap();
    for genuine in store.list(&format!("{catalog}keys/")).await.unwrap() {
        store.delete(&genuine.key).await.unwrap();
    }
    store.put(&format!("{catalog}keys/{}", sha256_hex(&key_data)), key_data).await.unwrap();
    store.put(&format!("{catalog}config"), Bytes::from_static(b"forged config")).await.unwrap();
    store.put(&format!("{catalog}snapshots/{}", "ab".repeat(32)), Bytes::from_static(b"forged")).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let out = restore(&["--point-in-time", &x2]).ok();
    assert!(out.stdout.contains(&format!("DR snapshot stored at {x2} ")), "{}", out.stdout);
    let out = restore(&[]).ok();
    assert!(out.stdout.contains(&format!("DR snapshot stored at {x2} ")), "{}", out.stdout);
    assert!(out.stderr.matches("warning: skipped the DR snapshot stored at").count() >= 2, "{}", out.stderr);

    // Every key behind a delete marker: a wrong cluster ID still lists the bucket's.
    for o in store.list("k10/").await.unwrap() {
        store.delete(&o.key).await.unwrap();
    }
    k10.run(&["dr", "restore", "--source-cluster-id", "no-such-cluster", "--profile", "recovery"])
        .fails_with(&[&format!("cluster IDs found: {source_id}")]);
    // ...and the catalog of T still comes back.
    restore(&["--point-in-time", &x2]).ok();

    // The store goes away in the middle of a restore: an outage, not an attack.
    let proxy = Proxy::start(&f.s3.endpoint).await;
    k10.run(&["profile", "create", "flaky", "--bucket", &f.bucket, "--endpoint", &proxy.endpoint]).ok();
    // A store that stays away is retried for the patience (here 3 s), then named as the cause.
    let impatient = k10.clone().with_env("K10_STORE_PATIENCE", "3s");
    for budget in [1, 3, 6, 10] {
        proxy.budget.store(budget, Ordering::SeqCst);
        let args = ["dr", "restore", "--source-cluster-id", source_id.as_str(), "--profile", "flaky", "--point-in-time", x2.as_str()];
        let out = impatient.run(&args).fails_with(&["the store or the network is failing", "gave up after"]);
        println!("after {budget} requests: {}", out.stderr.trim());
        for word in ["gone", "damaged", "wrong DR passphrase", "no DR snapshot"] {
            assert!(!out.stderr.contains(word), "an outage reads as {word:?}: {}", out.stderr);
        }
        proxy.budget.store(i64::MAX, Ordering::SeqCst);
    }
}
