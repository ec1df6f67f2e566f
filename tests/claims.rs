//! Racing first runs: exactly one creates a repository (a second `config` would make it
//! unopenable under the locks), through a claim on the API server. The stand-in keeps the two
//! guarantees the claim stands on: create is atomic (409 for the loser), and a replace with a stale
//! resourceVersion is refused (409).

mod support;

use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use k10::backup::{open_or_create, Opened};
use k10::k8s::{Cluster, ClusterOptions};
use k10::objectstore::memory::MemoryStorage;
use k10::objectstore::storage::{ObjectInfo, Result as StoreResult, Storage, Time, Version, VersionedStorage};
use support::apiserver::{ApiServer, ApiServerOptions};

const PREFIX: &str = "k10/cluster/catalog/";
const RACERS: usize = 4;

async fn cluster(server: &ApiServer) -> Cluster {
    let out = std::process::Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(server.kubeconfig_path())
        .args(["create", "namespace", "kasten-io"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    ClusterOptions {
        kubeconfig: Some(server.kubeconfig_path().to_path_buf()),
        ..Default::default()
    }
    .connect()
    .await
    .unwrap()
}

/// The claim's name, as the product derives it from the repository's prefix.
fn claim_name() -> String {
    use sha2::Digest;
    let hex: String = sha2::Sha256::digest(PREFIX.as_bytes()).iter().map(|b| format!("{b:02x}")).collect();
    format!("k10-repository-init-{}", &hex[..16])
}

/// Starts the racers; they all find no repository and a claim held by someone else.
fn race(cluster: &Cluster, store: &Arc<MemoryStorage>) -> Vec<tokio::task::JoinHandle<Opened>> {
    (0..RACERS)
        .map(|_| {
            let (cluster, store) = (cluster.clone(), store.clone());
            tokio::spawn(async move {
                let (_, opened) = open_or_create(&cluster, store, PREFIX, "the passphrase").await.unwrap();
                opened
            })
        })
        .collect()
}

/// Exactly one racer created the repository; with `all_waited`, every other one waited for it
/// (else a late one may also have found it made).
async fn outcome(racers: Vec<tokio::task::JoinHandle<Opened>>, store: &MemoryStorage, all_waited: bool) {
    let mut paths = Vec::new();
    for r in racers {
        paths.push(r.await.unwrap());
    }
    assert_eq!(paths.iter().filter(|p| **p == Opened::Created).count(), 1, "{paths:?}");
    if all_waited {
        assert_eq!(paths.iter().filter(|p| **p == Opened::AfterWaiting).count(), RACERS - 1, "{paths:?}");
    }
    let configs = store.list_versions(&format!("{PREFIX}config")).await.unwrap();
    assert_eq!(configs.len(), 1, "{configs:?}");
    assert_eq!(store.list(&format!("{PREFIX}keys/")).await.unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn racing_runs_wait_for_the_one_that_wins_the_claim() {
    let server = ApiServer::start_in_background(ApiServerOptions::default());
    let cluster = cluster(&server).await;
    let store = Arc::new(MemoryStorage::new());
    // Another run holds the claim: every racer finds it held and waits.
    let claim = claim_name();
    let kubectl = |args: &[&str]| {
        let out = std::process::Command::new("kubectl").arg("--kubeconfig").arg(server.kubeconfig_path()).args(args).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    };
    kubectl(&["create", "configmap", &claim, "-n", "kasten-io", "--from-literal", "holder=another run"]);
    let racers = race(&cluster, &store);
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    assert!(store.list(PREFIX).await.unwrap().is_empty(), "nobody creates while another run holds the claim");
    // That run gives up without creating anything: the racers meet at the claim.
    kubectl(&["delete", "configmap", &claim, "-n", "kasten-io"]);
    outcome(racers, &store, true).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_claim_left_by_a_dead_run_is_taken_over_by_exactly_one() {
    let server = ApiServer::start_in_background(ApiServerOptions::default());
    let cluster = cluster(&server).await;
    let store = Arc::new(MemoryStorage::new());
    // Left an hour ago by a run that died before creating the repository.
    let claim = claim_name();
    let an_hour_ago = (chrono::Utc::now() - chrono::Duration::hours(1)).to_rfc3339();
    let manifest = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {claim}\n  namespace: kasten-io\n  annotations: {{k10.kasten.io/taken-over-at: '{an_hour_ago}'}}\ndata: {{holder: dead}}\n"
    );
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("claim.yaml"), manifest).unwrap();
    let out = std::process::Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(server.kubeconfig_path())
        .args(["create", "-f"])
        .arg(dir.path().join("claim.yaml"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    outcome(race(&cluster, &store), &store, false).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hidden_config_is_never_replaced_by_a_second_one() {
    let server = ApiServer::start_in_background(ApiServerOptions::default());
    let cluster = cluster(&server).await;
    let store = Arc::new(MemoryStorage::new());
    let (_, first) = open_or_create(&cluster, store.clone(), PREFIX, "the passphrase").await.unwrap();
    assert_eq!(first, Opened::Created);
    // Someone hides the config behind a delete marker.
    store.delete(&format!("{PREFIX}config")).await.unwrap();
    let err = open_or_create(&cluster, store.clone(), PREFIX, "the passphrase").await.unwrap_err();
    assert!(err.to_string().contains("has a config behind a delete marker"), "{err}");
    let configs: Vec<_> = store.list_versions(&format!("{PREFIX}config")).await.unwrap().into_iter().filter(|v| !v.delete_marker).collect();
    assert_eq!(configs.len(), 1, "{configs:?}");
    // With every file of it hidden (a drill's clean-up), the prefix starts afresh.
    for o in store.list(PREFIX).await.unwrap() {
        store.delete(&o.key).await.unwrap();
    }
    let (_, again) = open_or_create(&cluster, store.clone(), PREFIX, "the passphrase").await.unwrap();
    assert_eq!(again, Opened::Created);
}

/// A store on which another run's new repository lands at the worst moment: after this run's
/// open found none, before it looks for a hidden config.
#[derive(Debug)]
struct WinnerLandsLate {
    inner: Arc<MemoryStorage>,
    landed: tokio::sync::OnceCell<()>,
}

#[async_trait::async_trait]
impl Storage for WinnerLandsLate {
    fn describe(&self) -> String {
        self.inner.describe()
    }
    async fn list(&self, prefix: &str) -> StoreResult<Vec<ObjectInfo>> {
        self.inner.list(prefix).await
    }
    async fn get(&self, key: &str, range: Option<Range<u64>>) -> StoreResult<Bytes> {
        self.inner.get(key, range).await
    }
    async fn stat(&self, key: &str) -> StoreResult<ObjectInfo> {
        self.inner.stat(key).await
    }
    async fn put(&self, key: &str, data: Bytes) -> StoreResult<String> {
        self.inner.put(key, data).await
    }
    async fn delete(&self, key: &str) -> StoreResult<()> {
        self.inner.delete(key).await
    }
}

#[async_trait::async_trait]
impl VersionedStorage for WinnerLandsLate {
    async fn list_versions(&self, prefix: &str) -> StoreResult<Vec<Version>> {
        if prefix == format!("{PREFIX}config") {
            self.landed
                .get_or_init(|| async {
                    k10::repo::Repo::init(self.inner.clone(), PREFIX, "the passphrase").await.unwrap();
                })
                .await;
        }
        self.inner.list_versions(prefix).await
    }
    async fn get_version(&self, key: &str, version_id: &str, range: Option<Range<u64>>) -> StoreResult<Bytes> {
        self.inner.get_version(key, version_id, range).await
    }
    async fn lock_until(&self, key: &str, version_id: &str) -> StoreResult<Option<Time>> {
        self.inner.lock_until(key, version_id).await
    }
    async fn extend_lock(&self, key: &str, version_id: &str, until: Time) -> StoreResult<()> {
        self.inner.extend_lock(key, version_id, until).await
    }
}

/// The config that appears between a run's open and its look for a hidden one is the winner's,
/// not a hidden one: the run opens it (CI once failed this race as "someone hid it").
#[tokio::test(flavor = "multi_thread")]
async fn a_config_that_lands_after_the_open_is_opened_not_called_hidden() {
    let server = ApiServer::start_in_background(ApiServerOptions::default());
    let cluster = cluster(&server).await;
    let inner = Arc::new(MemoryStorage::new());
    let store = Arc::new(WinnerLandsLate { inner: inner.clone(), landed: Default::default() });
    let (_, opened) = open_or_create(&cluster, store, PREFIX, "the passphrase").await.unwrap();
    assert_eq!(opened, Opened::AfterWaiting);
    let configs = inner.list_versions(&format!("{PREFIX}config")).await.unwrap();
    assert_eq!(configs.len(), 1, "{configs:?}");
}
