//! The point-in-time view: a versioned store as it was at time T, strictly read-only.
//!
//! Built once from the version listing: for each key, the newest version with `LastModified ≤ T`,
//! absent if that is a delete marker. Reads go to that version by id, so later overwrites, delete
//! markers and attacks do not matter. Every write or delete is refused with
//! [`StorageError::ReadOnly`]: never a silent success.

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;

use super::storage::{current_at, ObjectInfo, Result, Storage, StorageError, Time, VersionedStorage};

#[derive(Debug)]
pub struct PointInTime {
    inner: Arc<dyn VersionedStorage>,
    at: Time,
    prefix: String,
    /// Key → the version current at T.
    objects: BTreeMap<String, ObjectInfo>,
}

impl PointInTime {
    /// Lists every version under `prefix` and fixes the view at `at`.
    pub async fn new(inner: Arc<dyn VersionedStorage>, prefix: &str, at: Time) -> Result<PointInTime> {
        let versions = inner.list_versions(prefix).await?;
        let objects = current_at(&versions, at)
            .into_iter()
            .map(|o| (o.key.clone(), o))
            .collect();
        Ok(PointInTime {
            inner,
            at,
            prefix: prefix.to_string(),
            objects,
        })
    }

    pub fn at(&self) -> Time {
        self.at
    }

    fn read_only(&self, op: &'static str, key: &str) -> StorageError {
        StorageError::ReadOnly {
            op,
            key: key.to_string(),
            store: self.describe(),
        }
    }
}

#[async_trait]
impl Storage for PointInTime {
    fn describe(&self) -> String {
        format!("{} as of {}", self.inner.describe(), self.at.to_rfc3339())
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
            .map(|(_, o)| o.clone())
            .collect())
    }

    async fn get(&self, key: &str, range: Option<Range<u64>>) -> Result<Bytes> {
        let Some(object) = self.objects.get(key) else {
            return Err(StorageError::NotFound {
                key: key.to_string(),
                store: self.describe(),
            });
        };
        self.inner.get_version(key, &object.version_id, range).await
    }

    async fn stat(&self, key: &str) -> Result<ObjectInfo> {
        self.objects.get(key).cloned().ok_or_else(|| StorageError::NotFound {
            key: key.to_string(),
            store: self.describe(),
        })
    }

    async fn put(&self, key: &str, _data: Bytes) -> Result<String> {
        Err(self.read_only("write", key))
    }

    async fn delete(&self, key: &str) -> Result<()> {
        Err(self.read_only("delete", key))
    }
}
