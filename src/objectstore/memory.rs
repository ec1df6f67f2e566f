//! An in-memory versioned store with S3's semantics: versions, delete markers, and COMPLIANCE locks
//! that refuse deleting a locked version and shortening a lock. Its clock is strictly increasing so
//! every write has its own time, like a store's `LastModified`.

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::Mutex;

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{Duration, Utc};

use super::storage::{slice, ObjectInfo, Result, Storage, StorageError, Time, Version, VersionedStorage};

#[derive(Debug, Clone)]
struct Entry {
    version_id: String,
    last_modified: Time,
    /// `None` for a delete marker.
    data: Option<Bytes>,
    lock_until: Option<Time>,
    multipart: bool,
}

#[derive(Debug, Default)]
struct State {
    /// Versions of each key, oldest first.
    keys: BTreeMap<String, Vec<Entry>>,
    clock: Option<Time>,
    /// Added to the wall clock: lets tests move the store days ahead.
    offset: Duration,
    next_version: u64,
}

impl State {
    fn now(&self) -> Time {
        Utc::now() + self.offset
    }
}

/// See the module docs.
#[derive(Debug, Default)]
pub struct MemoryStorage {
    state: Mutex<State>,
    /// Lock each written version for this long (an immutable profile's P + 20 days).
    lock_for: Option<Duration>,
}

impl MemoryStorage {
    pub fn new() -> MemoryStorage {
        MemoryStorage::default()
    }

    /// A store whose writes are locked in COMPLIANCE mode for `lock_for`.
    pub fn locked(lock_for: Duration) -> MemoryStorage {
        MemoryStorage {
            lock_for: Some(lock_for),
            ..Default::default()
        }
    }

    /// Moves the store's clock ahead (its `LastModified` times and lock expiry), for tests.
    pub fn advance_clock(&self, by: Duration) {
        self.state.lock().unwrap().offset += by;
    }

    /// The store's current time.
    pub fn now(&self) -> Time {
        self.state.lock().unwrap().now()
    }

    /// Deletes one version, as an attacker with full credentials would try: refused while locked.
    pub fn delete_version(&self, key: &str, version_id: &str) -> Result<()> {
        let mut state = self.state.lock().unwrap();
        let now = state.now();
        let versions = state.keys.get_mut(key).ok_or_else(|| not_found(key))?;
        let pos = versions
            .iter()
            .position(|e| e.version_id == version_id)
            .ok_or_else(|| not_found(key))?;
        if versions[pos].lock_until.is_some_and(|until| until > now) {
            return Err(StorageError::Refused {
                op: "delete version of",
                key: key.into(),
                store: "memory".into(),
                reason: "AccessDenied: the version is locked in COMPLIANCE mode".into(),
            });
        }
        versions.remove(pos);
        Ok(())
    }

    /// Writes a version with the lock given (none, or a short one), as anyone holding the
    /// bucket's keys can: the attacker's write.
    pub fn put_with_lock(&self, key: &str, data: Bytes, lock_until: Option<Time>) -> String {
        let info = self.write(key, Some(data));
        self.set_entry(key, &info.version_id, |e| e.lock_until = lock_until);
        info.version_id
    }

    /// Completes a multipart upload started at `started`: as on AWS, the version's
    /// `LastModified` is when the upload started, which may be long before it was completed.
    pub fn put_multipart_started_at(&self, key: &str, data: Bytes, started: Time) -> String {
        let info = self.write(key, Some(data));
        self.set_entry(key, &info.version_id, |e| {
            e.last_modified = started;
            e.multipart = true;
        });
        info.version_id
    }

    fn set_entry(&self, key: &str, version_id: &str, change: impl FnOnce(&mut Entry)) {
        let mut state = self.state.lock().unwrap();
        if let Some(e) = state.keys.get_mut(key).and_then(|vs| vs.iter_mut().find(|e| e.version_id == version_id)) {
            change(e);
        }
    }

    fn write(&self, key: &str, data: Option<Bytes>) -> ObjectInfo {
        let mut state = self.state.lock().unwrap();
        let mut now = state.now();
        if let Some(last) = state.clock {
            if now <= last {
                now = last + Duration::microseconds(1);
            }
        }
        state.clock = Some(now);
        state.next_version += 1;
        let version_id = format!("v{:08}", state.next_version);
        let size = data.as_ref().map_or(0, |d| d.len() as u64);
        let lock_until = match (&data, self.lock_for) {
            (Some(_), Some(d)) => Some(now + d),
            _ => None,
        };
        state.keys.entry(key.to_string()).or_default().push(Entry {
            version_id: version_id.clone(),
            last_modified: now,
            data,
            lock_until,
            multipart: false,
        });
        ObjectInfo {
            key: key.to_string(),
            size,
            version_id,
            last_modified: now,
        }
    }

    fn find(&self, key: &str, version_id: &str) -> Result<Entry> {
        let state = self.state.lock().unwrap();
        state
            .keys
            .get(key)
            .and_then(|vs| vs.iter().find(|e| e.version_id == version_id))
            .cloned()
            .ok_or_else(|| not_found(key))
    }
}

fn not_found(key: &str) -> StorageError {
    StorageError::NotFound {
        key: key.to_string(),
        store: "memory".into(),
    }
}

#[async_trait]
impl Storage for MemoryStorage {
    fn describe(&self) -> String {
        "memory".into()
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>> {
        let state = self.state.lock().unwrap();
        Ok(state
            .keys
            .range(prefix.to_string()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .filter_map(|(k, vs)| {
                let latest = vs.last()?;
                let data = latest.data.as_ref()?;
                Some(ObjectInfo {
                    key: k.clone(),
                    size: data.len() as u64,
                    version_id: latest.version_id.clone(),
                    last_modified: latest.last_modified,
                })
            })
            .collect())
    }

    async fn get(&self, key: &str, range: Option<Range<u64>>) -> Result<Bytes> {
        let data = {
            let state = self.state.lock().unwrap();
            state
                .keys
                .get(key)
                .and_then(|vs| vs.last())
                .and_then(|e| e.data.clone())
                .ok_or_else(|| not_found(key))?
        };
        slice(data, range, key, "memory")
    }

    async fn stat(&self, key: &str) -> Result<ObjectInfo> {
        let listed = self.list(key).await?;
        listed.into_iter().find(|o| o.key == key).ok_or_else(|| not_found(key))
    }

    async fn put(&self, key: &str, data: Bytes) -> Result<String> {
        Ok(self.write(key, Some(data)).version_id)
    }

    async fn delete(&self, key: &str) -> Result<()> {
        self.write(key, None);
        Ok(())
    }
}

#[async_trait]
impl VersionedStorage for MemoryStorage {
    async fn list_versions(&self, prefix: &str) -> Result<Vec<Version>> {
        let state = self.state.lock().unwrap();
        Ok(state
            .keys
            .range(prefix.to_string()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .flat_map(|(k, vs)| {
                vs.iter().rev().map(move |e| Version {
                    key: k.clone(),
                    version_id: e.version_id.clone(),
                    last_modified: e.last_modified,
                    size: e.data.as_ref().map_or(0, |d| d.len() as u64),
                    delete_marker: e.data.is_none(),
                    multipart: e.multipart,
                })
            })
            .collect())
    }

    async fn get_version(&self, key: &str, version_id: &str, range: Option<Range<u64>>) -> Result<Bytes> {
        let data = self.find(key, version_id)?.data.ok_or_else(|| not_found(key))?;
        slice(data, range, key, "memory")
    }

    async fn lock_until(&self, key: &str, version_id: &str) -> Result<Option<Time>> {
        Ok(self.find(key, version_id)?.lock_until)
    }

    async fn extend_lock(&self, key: &str, version_id: &str, until: Time) -> Result<()> {
        let mut state = self.state.lock().unwrap();
        let entry = state
            .keys
            .get_mut(key)
            .and_then(|vs| vs.iter_mut().find(|e| e.version_id == version_id))
            .ok_or_else(|| not_found(key))?;
        if let Some(current) = entry.lock_until {
            if until < current {
                return Err(StorageError::WouldShorten {
                    key: key.into(),
                    version_id: version_id.into(),
                    current,
                    requested: until,
                });
            }
        }
        entry.lock_until = Some(until);
        Ok(())
    }
}
