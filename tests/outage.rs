//! A store outage is an outage: during a restore from a point in time, a store that stops
//! answering makes the restore fail with an error that says the store or the network failed,
//! never that the data is damaged or gone; what it wrote stays, and the next attempt completes it.

mod support;

use std::ops::Range;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use k10::objectstore::memory::MemoryStorage;
use k10::objectstore::storage::{ObjectInfo, Result, Storage, StorageError, Time, Version, VersionedStorage};
use k10::repo::{ReadOnly, Repo, RepoError};
use support::tree;

const PREFIX: &str = "k10/cluster/repos/ns-uid/";

/// A store that answers `reads_left` more reads, then fails every request as an unreachable one.
#[derive(Debug)]
struct Faulty {
    inner: Arc<MemoryStorage>,
    reads_left: AtomicI64,
}

impl Faulty {
    fn check(&self, op: &'static str, key: &str) -> Result<()> {
        if self.reads_left.fetch_sub(1, Ordering::SeqCst) > 0 {
            return Ok(());
        }
        Err(StorageError::Unavailable {
            op,
            key: key.to_string(),
            store: "faulty".into(),
            reason: "cannot connect: connection reset by peer".into(),
            throttled: false,
        })
    }
}

#[async_trait]
impl Storage for Faulty {
    fn describe(&self) -> String {
        "faulty".into()
    }
    async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>> {
        self.check("list", prefix)?;
        self.inner.list(prefix).await
    }
    async fn get(&self, key: &str, range: Option<Range<u64>>) -> Result<Bytes> {
        self.check("read", key)?;
        self.inner.get(key, range).await
    }
    async fn stat(&self, key: &str) -> Result<ObjectInfo> {
        self.check("stat", key)?;
        self.inner.stat(key).await
    }
    async fn put(&self, key: &str, data: Bytes) -> Result<String> {
        self.check("write", key)?;
        self.inner.put(key, data).await
    }
    async fn delete(&self, key: &str) -> Result<()> {
        self.check("delete", key)?;
        self.inner.delete(key).await
    }
}

#[async_trait]
impl VersionedStorage for Faulty {
    async fn list_versions(&self, prefix: &str) -> Result<Vec<Version>> {
        self.check("list versions", prefix)?;
        self.inner.list_versions(prefix).await
    }
    async fn get_version(&self, key: &str, version_id: &str, range: Option<Range<u64>>) -> Result<Bytes> {
        self.check("read", key)?;
        self.inner.get_version(key, version_id, range).await
    }
    async fn lock_until(&self, key: &str, version_id: &str) -> Result<Option<Time>> {
        self.inner.lock_until(key, version_id).await
    }
    async fn extend_lock(&self, key: &str, version_id: &str, until: Time) -> Result<()> {
        self.inner.extend_lock(key, version_id, until).await
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_outage_during_a_restore_is_reported_as_one() {
    let inner = Arc::new(MemoryStorage::locked(chrono::Duration::days(50)));
    let repo = Repo::init(inner.clone(), PREFIX, "pw").await.unwrap();
    let src = tempfile::tempdir().unwrap();
    tree::mixed(src.path(), 30);
    let snap = repo.backup_dir(src.path(), &[]).await.unwrap();
    let docs = repo.backup_documents(vec![("a.json".into(), Bytes::from_static(b"{}"))], &[]).await.unwrap();
    let at = chrono::Utc::now();

    // The store fails at every point of the restore in turn: right away, while opening, while
    // reading the index, and while reading the data.
    let mut outages = 0;
    let mut during_data = false;
    for reads in 0..=12 {
        let faulty = Arc::new(Faulty {
            inner: inner.clone(),
            reads_left: AtomicI64::new(reads),
        });
        let dest = tempfile::tempdir().unwrap();
        let target = dest.path().join("restored");
        let mut restored = false;
        let result = async {
            let view = Repo::<ReadOnly>::open_at(faulty.clone(), PREFIX, at, "pw").await?;
            view.restore(&snap.id, &target).await?;
            restored = true;
            view.read_document(&docs.id, "a.json").await
        }
        .await;
        match result {
            Ok(_) => assert!(reads >= 10, "{reads} reads cannot restore everything"),
            Err(e) => {
                outages += 1;
                let message = e.to_string();
                println!("after {reads} reads (restored: {restored}): {message}");
                during_data |= message.contains("/data/");
                assert!(matches!(&e, RepoError::Storage(s) if s.is_outage()), "after {reads} reads: {e:?}");
                assert!(message.contains("the store or the network is failing"), "{message}");
                for word in ["damaged", "gone", "forged", "wrong password"] {
                    assert!(!message.contains(word), "an outage reads as {word:?}: {message}");
                }
                // What the interrupted restore wrote stays, and the next attempt completes it.
                if !restored {
                    let view = Repo::<ReadOnly>::open_at(inner.clone(), PREFIX, at, "pw").await.unwrap();
                    view.restore(&snap.id, &target).await.unwrap();
                    tree::assert_same(src.path(), &target);
                }
            }
        }
    }
    assert!(outages >= 10, "the store failed during {outages} restores only");
    assert!(during_data, "no outage while the data itself was read");
}
