//! The point-in-time view: a versioned store as it was at time T, strictly read-only.
//!
//! Built once from the version listing. For each key, the candidates are its versions with
//! `LastModified ≤ T`, newest first, down to the newest delete marker at or before T (the key is
//! absent if that marker comes first). A read goes to the newest candidate by version id, so
//! later overwrites, delete markers and attacks do not matter. Every write or delete is refused
//! with [`StorageError::ReadOnly`]: never a silent success.
//!
//! What the view does not believe (see `docs/threat-model.md`):
//! - versions written by a multipart upload: k10 never writes one, and on AWS such a version's
//!   `LastModified` is when its upload *started*, so an attacker can date a version before T;
//! - with [`PointInTime::with_content_addresses`], a version of a content-addressed key whose
//!   content does not hash to its name: the view falls back to the next older candidate, never
//!   into the data. Verified content is kept in a small cache, so that the ranged reads that follow
//!   a verification cost no further request.
//!
//! Every version passed over is named by [`PointInTime::skipped`].

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::ops::Range;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;
use sha2::{Digest, Sha256};
use tokio::sync::OnceCell;

use super::storage::{slice, ObjectInfo, Result, Storage, StorageError, Time, VersionedStorage};

/// The SHA-256 (lowercase hex) that a key's content must have, for content-addressed keys.
pub type ContentAddress = fn(&str) -> Option<&str>;

/// Verified content kept for ranged reads, at most this many bytes.
const CACHE_BYTES: usize = 64 << 20;
/// Only objects up to this size are kept: indexes and tree packs, which are read in many small
/// ranges. Data packs (16 MiB) are read once per run of nearby blobs, and a restore keeping them
/// here would hold four more packs than it reads at once.
const CACHE_ENTRY_BYTES: usize = 8 << 20;

#[derive(Debug)]
pub struct PointInTime {
    inner: Arc<dyn VersionedStorage>,
    at: Time,
    prefix: String,
    /// Key → the candidate versions as of T, newest first (never empty).
    objects: BTreeMap<String, Vec<ObjectInfo>>,
    content_address: Option<ContentAddress>,
    /// Key → the newest candidate whose content matches its address (None: no candidate does).
    verified: Mutex<HashMap<String, Arc<OnceCell<Option<String>>>>>,
    cache: Mutex<Cache>,
    skipped: Mutex<Vec<String>>,
}

/// Verified contents, oldest evicted first.
#[derive(Debug, Default)]
struct Cache {
    entries: HashMap<String, Bytes>,
    order: VecDeque<String>,
    bytes: usize,
}

impl Cache {
    fn get(&self, key: &str) -> Option<Bytes> {
        self.entries.get(key).cloned()
    }

    fn put(&mut self, key: &str, data: Bytes) {
        if data.len() > CACHE_ENTRY_BYTES || self.entries.contains_key(key) {
            return;
        }
        while self.bytes + data.len() > CACHE_BYTES {
            let Some(old) = self.order.pop_front() else { break };
            if let Some(d) = self.entries.remove(&old) {
                self.bytes -= d.len();
            }
        }
        self.bytes += data.len();
        self.order.push_back(key.to_string());
        self.entries.insert(key.to_string(), data);
    }
}

impl PointInTime {
    /// Lists every version under `prefix` and fixes the view at `at`.
    pub async fn new(inner: Arc<dyn VersionedStorage>, prefix: &str, at: Time) -> Result<PointInTime> {
        let versions = inner.list_versions(prefix).await?;
        Ok(PointInTime::from_versions(inner, prefix, at, &versions))
    }

    /// The view from a version listing already made (`list_versions` of `prefix`, or of a
    /// prefix of it: keys outside `prefix` are left out): many views of one listing cost no
    /// further listing.
    pub fn from_versions(inner: Arc<dyn VersionedStorage>, prefix: &str, at: Time, versions: &[super::storage::Version]) -> PointInTime {
        let mut objects: BTreeMap<String, Vec<ObjectInfo>> = BTreeMap::new();
        let mut skipped = Vec::new();
        let mut closed: Option<&str> = None;
        for v in versions.iter().filter(|v| v.last_modified <= at && v.key.starts_with(prefix)) {
            // Within a key, versions come newest first: stop at its newest delete marker.
            if closed == Some(v.key.as_str()) {
                continue;
            }
            if v.delete_marker {
                closed = Some(v.key.as_str());
                continue;
            }
            if v.multipart {
                skipped.push(format!(
                    "{} version {}: written by a multipart upload, which k10 never does (its time cannot be trusted)",
                    v.key, v.version_id
                ));
                continue;
            }
            objects.entry(v.key.clone()).or_default().push(ObjectInfo {
                key: v.key.clone(),
                size: v.size,
                version_id: v.version_id.clone(),
                last_modified: v.last_modified,
            });
        }
        PointInTime {
            inner,
            at,
            prefix: prefix.to_string(),
            objects,
            content_address: None,
            verified: Mutex::default(),
            cache: Mutex::default(),
            skipped: Mutex::new(skipped),
        }
    }

    /// Checks every read of a content-addressed key (those for which `address` names a digest)
    /// against its address, falling back to older versions that match.
    pub fn with_content_addresses(mut self, address: ContentAddress) -> PointInTime {
        self.content_address = Some(address);
        self
    }

    pub fn at(&self) -> Time {
        self.at
    }

    /// The versions the view passed over, and why.
    pub fn skipped(&self) -> Vec<String> {
        self.skipped.lock().unwrap().clone()
    }

    fn read_only(&self, op: &'static str, key: &str) -> StorageError {
        StorageError::ReadOnly {
            op,
            key: key.to_string(),
            store: self.describe(),
        }
    }

    fn candidates(&self, key: &str) -> Result<&Vec<ObjectInfo>> {
        self.objects.get(key).ok_or_else(|| StorageError::NotFound {
            key: key.to_string(),
            store: self.describe(),
        })
    }

    /// The newest candidate of `key` whose content hashes to `digest` (its content is cached).
    /// The content, when this call is the one that read it, goes into `fetched` too (the cache
    /// may have evicted it before the caller looks).
    async fn verified_version(&self, key: &str, digest: &str, fetched: &Mutex<Option<Bytes>>) -> Result<String> {
        let cell = self.verified.lock().unwrap().entry(key.to_string()).or_default().clone();
        let found = cell
            .get_or_try_init(|| async {
                for candidate in self.candidates(key)? {
                    let data = match self.inner.get_version(key, &candidate.version_id, None).await {
                        Ok(data) => data,
                        Err(e) if e.is_outage() => return Err(e),
                        // Gone since the listing, or refused: not this version.
                        Err(e) => {
                            self.skipped.lock().unwrap().push(format!("{key} version {}: unreadable ({e})", candidate.version_id));
                            continue;
                        }
                    };
                    let actual = Sha256::digest(&data);
                    if hex(&actual) == digest {
                        *fetched.lock().unwrap() = Some(data.clone());
                        self.cache.lock().unwrap().put(key, data);
                        return Ok(Some(candidate.version_id.clone()));
                    }
                    self.skipped.lock().unwrap().push(format!(
                        "{key} version {} (stored {}): its content does not match its name (forged or damaged)",
                        candidate.version_id,
                        candidate.last_modified.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
                    ));
                }
                Ok::<_, StorageError>(None)
            })
            .await?;
        found.clone().ok_or_else(|| StorageError::Unverified {
            key: key.to_string(),
            store: self.describe(),
            skipped: self.objects.get(key).map_or(0, Vec::len),
        })
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[async_trait]
impl Storage for PointInTime {
    fn describe(&self) -> String {
        format!(
            "{} as of {}",
            self.inner.describe(),
            self.at.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
        )
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>> {
        if !prefix.starts_with(&self.prefix) && !self.prefix.starts_with(prefix) {
            return Err(StorageError::Refused {
                op: "list",
                key: prefix.to_string(),
                store: self.describe(),
                reason: format!("the view covers only keys under {:?}", self.prefix),
            });
        }
        Ok(self
            .objects
            .range(prefix.to_string()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(_, versions)| versions[0].clone())
            .collect())
    }

    async fn get(&self, key: &str, range: Option<Range<u64>>) -> Result<Bytes> {
        let Some(digest) = self.content_address.and_then(|address| address(key)) else {
            let newest = &self.candidates(key)?[0];
            return self.inner.get_version(key, &newest.version_id, range).await;
        };
        let fetched = Mutex::new(None);
        let version_id = self.verified_version(key, digest, &fetched).await?;
        let cached = fetched.into_inner().unwrap().or_else(|| self.cache.lock().unwrap().get(key));
        match cached {
            Some(data) => slice(data, range, key, &self.describe()),
            None => self.inner.get_version(key, &version_id, range).await,
        }
    }

    /// For a content-addressed key, the version that matches its address (so that a time taken
    /// from it is the genuine write's).
    async fn stat(&self, key: &str) -> Result<ObjectInfo> {
        let candidates = self.candidates(key)?;
        let Some(digest) = self.content_address.and_then(|address| address(key)) else {
            return Ok(candidates[0].clone());
        };
        let version_id = self.verified_version(key, digest, &Mutex::new(None)).await?;
        Ok(candidates.iter().find(|c| c.version_id == version_id).cloned().unwrap_or_else(|| candidates[0].clone()))
    }

    async fn put(&self, key: &str, _data: Bytes) -> Result<String> {
        Err(self.read_only("write", key))
    }

    async fn delete(&self, key: &str) -> Result<()> {
        Err(self.read_only("delete", key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cache_keeps_the_newest_within_its_bound() {
        let mut cache = Cache::default();
        let tree_pack = Bytes::from(vec![0u8; CACHE_ENTRY_BYTES]);
        for i in 0..CACHE_BYTES / CACHE_ENTRY_BYTES {
            cache.put(&format!("t{i}"), tree_pack.clone());
        }
        assert_eq!(cache.bytes, CACHE_BYTES);
        cache.put("small", Bytes::from_static(b"x"));
        assert!(cache.get("t0").is_none(), "the oldest goes first");
        assert_eq!(cache.get("t1").map(|d| d.len()), Some(CACHE_ENTRY_BYTES));
        assert_eq!(cache.bytes, CACHE_BYTES - CACHE_ENTRY_BYTES + 1);
        // A data pack: not kept, nothing evicted for it.
        cache.put("data-pack", Bytes::from(vec![0u8; CACHE_ENTRY_BYTES + 1]));
        assert!(cache.get("data-pack").is_none() && cache.get("t1").is_some());
    }
}
