//! [`Storage`] on an S3 bucket. Keys are the bucket's keys. Writes through an immutable profile carry
//! their own COMPLIANCE lock (retain-until = write time + protection period + 20 days) and a CRC32
//! checksum, as Object Lock requires; the bucket's default retention is not relied upon.

use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_s3::primitives::{ByteStream, DateTime as S3Time};
use aws_sdk_s3::types::{ChecksumAlgorithm, ObjectLockMode, ObjectLockRetention, ObjectLockRetentionMode};
use bytes::Bytes;
use chrono::Utc;

use super::lock::ProtectionPeriod;
use super::storage::{ObjectInfo, Result, Storage, StorageError, Time, Version, VersionedStorage};
use super::{Failure, ObjectStore};

#[derive(Debug, Clone)]
pub struct S3Storage {
    store: ObjectStore,
    /// Set for an immutable profile: every write is locked for P + 20 days.
    protection: Option<ProtectionPeriod>,
    /// Requests sent, for benchmarks and reports.
    requests: Arc<AtomicU64>,
}

impl S3Storage {
    pub fn new(store: ObjectStore, protection: Option<ProtectionPeriod>) -> S3Storage {
        S3Storage {
            store,
            protection,
            requests: Arc::default(),
        }
    }

    /// How many requests this storage (and its clones) has sent.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    fn count(&self) {
        self.requests.fetch_add(1, Ordering::Relaxed);
    }

    pub fn protection(&self) -> Option<ProtectionPeriod> {
        self.protection
    }

    /// The bucket's default retention in days, if it has Object Lock with one.
    pub async fn default_retention_days(&self) -> Option<u32> {
        self.count();
        let out = self.store.client.get_object_lock_configuration().bucket(self.bucket()).send().await.ok()?;
        let rule = out.object_lock_configuration()?.rule()?.default_retention()?;
        super::lock::retention_days(rule.days(), rule.years())
    }

    fn bucket(&self) -> &str {
        self.store.bucket()
    }

    /// Maps an SDK error: 404s and S3's "no such" codes become NotFound; refusals and
    /// connectivity problems keep the store's words.
    fn error<E, R>(&self, op: &'static str, key: &str, err: aws_sdk_s3::error::SdkError<E, R>) -> StorageError
    where
        E: aws_sdk_s3::error::ProvideErrorMetadata + std::error::Error + 'static,
        R: super::HttpStatus + std::fmt::Debug + 'static,
    {
        let failure = Failure::of(&err);
        match &failure {
            Failure::Service { code, status, .. }
                if *status == 404 || matches!(code.as_str(), "NoSuchKey" | "NoSuchVersion" | "NotFound") =>
            {
                StorageError::NotFound {
                    key: key.to_string(),
                    store: self.describe(),
                }
            }
            Failure::Service { .. } => StorageError::Refused {
                op,
                key: key.to_string(),
                store: self.describe(),
                reason: failure.to_string(),
            },
            Failure::Unreachable(_) | Failure::NotS3(_) => StorageError::Unavailable {
                op,
                key: key.to_string(),
                store: self.describe(),
                reason: failure.to_string(),
            },
        }
    }

    fn truncated(&self, prefix: &str) -> StorageError {
        StorageError::Unavailable {
            op: "list",
            key: prefix.to_string(),
            store: self.describe(),
            reason: "the store said the listing goes on but gave no marker to continue from".into(),
        }
    }

    async fn read(&self, key: &str, version_id: Option<&str>, range: Option<Range<u64>>) -> Result<Bytes> {
        if let Some(r) = &range {
            if r.start >= r.end {
                return Ok(Bytes::new());
            }
        }
        self.count();
        let mut req = self.store.client.get_object().bucket(self.bucket()).key(key);
        if let Some(v) = version_id {
            req = req.version_id(v);
        }
        if let Some(r) = &range {
            req = req.range(format!("bytes={}-{}", r.start, r.end - 1));
        }
        let out = req.send().await.map_err(|e| self.error("read", key, e))?;
        let body = out.body.collect().await.map_err(|e| StorageError::Unavailable {
            op: "read",
            key: key.to_string(),
            store: self.describe(),
            reason: e.to_string(),
        })?;
        let data = body.into_bytes();
        if let Some(r) = range {
            if data.len() as u64 != r.end - r.start {
                return Err(StorageError::Refused {
                    op: "read",
                    key: key.to_string(),
                    store: self.describe(),
                    reason: format!("asked for {} bytes, got {}", r.end - r.start, data.len()),
                });
            }
        }
        Ok(data)
    }
}

fn to_time(t: Option<&S3Time>) -> Time {
    t.and_then(|t| chrono::DateTime::from_timestamp(t.secs(), t.subsec_nanos()))
        .unwrap_or_default()
}

/// The store's time of a version's write.
///
/// Normally its `LastModified`. SeaweedFS (4.48) moves a version's `LastModified` to the time of
/// any later `PutObjectRetention` — so every lock extension would hide the version from
/// point-in-time views before it — but its version ids are assigned by the store and start with 16
/// hex digits holding `i64::MAX − creation time in nanoseconds`. Where an id decodes to a time no
/// later than `LastModified` (within a second: `LastModified` is truncated to seconds), that time is
/// the write's; ids of other stores (AWS's are not 32 hex digits) leave `LastModified` as it is.
fn written_at(version_id: &str, last_modified: Time) -> Time {
    let decoded = (version_id.len() == 32 && version_id.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| u64::from_str_radix(&version_id[..16], 16).ok())
        .flatten()
        .and_then(|inverted| i64::MAX.checked_sub(i64::try_from(inverted).ok()?))
        .map(chrono::DateTime::from_timestamp_nanos);
    match decoded {
        Some(t) if t <= last_modified + chrono::Duration::seconds(1) && t > last_modified - chrono::Duration::days(3650) => t,
        _ => last_modified,
    }
}

fn to_s3_time(t: Time) -> S3Time {
    S3Time::from_secs(t.timestamp())
}

#[async_trait]
impl Storage for S3Storage {
    fn describe(&self) -> String {
        format!("s3://{}", self.bucket())
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            self.count();
            let page = self
                .store
                .client
                .list_objects_v2()
                .bucket(self.bucket())
                .prefix(prefix)
                .set_continuation_token(token.take())
                .send()
                .await
                .map_err(|e| self.error("list", prefix, e))?;
            for o in page.contents() {
                out.push(ObjectInfo {
                    key: o.key().unwrap_or_default().to_string(),
                    size: o.size().unwrap_or(0) as u64,
                    version_id: String::new(),
                    last_modified: to_time(o.last_modified()),
                });
            }
            if page.is_truncated() != Some(true) {
                break;
            }
            // A truncated page without a way on must not pass for the whole listing.
            token = Some(page.next_continuation_token().ok_or_else(|| self.truncated(prefix))?.to_string());
        }
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    async fn stat(&self, key: &str) -> Result<ObjectInfo> {
        self.count();
        let out = self
            .store
            .client
            .head_object()
            .bucket(self.bucket())
            .key(key)
            .send()
            .await
            .map_err(|e| self.error("stat", key, e))?;
        let version_id = out.version_id().unwrap_or_default().to_string();
        Ok(ObjectInfo {
            key: key.to_string(),
            size: out.content_length().unwrap_or(0) as u64,
            last_modified: written_at(&version_id, to_time(out.last_modified())),
            version_id,
        })
    }

    async fn get(&self, key: &str, range: Option<Range<u64>>) -> Result<Bytes> {
        self.read(key, None, range).await
    }

    async fn put(&self, key: &str, data: Bytes) -> Result<String> {
        self.count();
        let mut req = self
            .store
            .client
            .put_object()
            .bucket(self.bucket())
            .key(key)
            .checksum_algorithm(ChecksumAlgorithm::Crc32)
            .body(ByteStream::from(data));
        if let Some(p) = self.protection {
            let until = Utc::now() + chrono::Duration::days(i64::from(p.lock_days()));
            req = req
                .object_lock_mode(ObjectLockMode::Compliance)
                .object_lock_retain_until_date(to_s3_time(until));
        }
        let out = req.send().await.map_err(|e| self.error("write", key, e))?;
        Ok(out.version_id().unwrap_or_default().to_string())
    }

    async fn delete(&self, key: &str) -> Result<()> {
        self.count();
        self.store
            .client
            .delete_object()
            .bucket(self.bucket())
            .key(key)
            .send()
            .await
            .map_err(|e| self.error("delete", key, e))?;
        Ok(())
    }
}

#[async_trait]
impl VersionedStorage for S3Storage {
    async fn list_versions(&self, prefix: &str) -> Result<Vec<Version>> {
        let mut out = Vec::new();
        let (mut key_marker, mut version_marker): (Option<String>, Option<String>) = (None, None);
        loop {
            self.count();
            let page = self
                .store
                .client
                .list_object_versions()
                .bucket(self.bucket())
                .prefix(prefix)
                .set_key_marker(key_marker.take())
                .set_version_id_marker(version_marker.take())
                .send()
                .await
                .map_err(|e| self.error("list versions", prefix, e))?;
            // (key, is_latest, version): versions and delete markers arrive in two lists.
            let mut batch: Vec<(bool, Version)> = Vec::new();
            for v in page.versions() {
                batch.push((
                    v.is_latest() == Some(true),
                    Version {
                        key: v.key().unwrap_or_default().to_string(),
                        version_id: v.version_id().unwrap_or_default().to_string(),
                        last_modified: written_at(v.version_id().unwrap_or_default(), to_time(v.last_modified())),
                        size: v.size().unwrap_or(0) as u64,
                        delete_marker: false,
                    },
                ));
            }
            for m in page.delete_markers() {
                batch.push((
                    m.is_latest() == Some(true),
                    Version {
                        key: m.key().unwrap_or_default().to_string(),
                        version_id: m.version_id().unwrap_or_default().to_string(),
                        last_modified: written_at(m.version_id().unwrap_or_default(), to_time(m.last_modified())),
                        size: 0,
                        delete_marker: true,
                    },
                ));
            }
            out.extend(batch);
            if page.is_truncated() == Some(true) {
                key_marker = Some(page.next_key_marker().ok_or_else(|| self.truncated(prefix))?.to_string());
                version_marker = page.next_version_id_marker().map(str::to_string);
            } else {
                break;
            }
        }
        // Keys ascending; within a key newest first (the latest flag breaks ties of equal times).
        // The store lists each key's versions newest first, but the SDK splits versions from
        // delete markers, so the order is rebuilt from the write times.
        out.sort_by(|(a_latest, a), (b_latest, b)| {
            a.key
                .cmp(&b.key)
                .then(b.last_modified.cmp(&a.last_modified))
                .then(b_latest.cmp(a_latest))
        });
        Ok(out.into_iter().map(|(_, v)| v).collect())
    }

    async fn get_version(&self, key: &str, version_id: &str, range: Option<Range<u64>>) -> Result<Bytes> {
        self.read(key, Some(version_id), range).await
    }

    async fn lock_until(&self, key: &str, version_id: &str) -> Result<Option<Time>> {
        self.count();
        let out = self
            .store
            .client
            .get_object_retention()
            .bucket(self.bucket())
            .key(key)
            .version_id(version_id)
            .send()
            .await;
        match out {
            Ok(out) => Ok(out
                .retention()
                .filter(|r| r.mode() == Some(&ObjectLockRetentionMode::Compliance))
                .and_then(|r| r.retain_until_date())
                .map(|t| to_time(Some(t)))),
            // S3 answers "no retention" with an error code (whatever its HTTP status) rather than
            // an empty result.
            Err(e) if Failure::of(&e).code() == Some("NoSuchObjectLockConfiguration") => Ok(None),
            Err(e) => Err(self.error("read the lock of", key, e)),
        }
    }

    async fn extend_lock(&self, key: &str, version_id: &str, until: Time) -> Result<()> {
        if let Some(current) = self.lock_until(key, version_id).await? {
            if until < current {
                return Err(StorageError::WouldShorten {
                    key: key.into(),
                    version_id: version_id.into(),
                    current,
                    requested: until,
                });
            }
        }
        self.count();
        self.store
            .client
            .put_object_retention()
            .bucket(self.bucket())
            .key(key)
            .version_id(version_id)
            .retention(
                ObjectLockRetention::builder()
                    .mode(ObjectLockRetentionMode::Compliance)
                    .retain_until_date(to_s3_time(until))
                    .build(),
            )
            .send()
            .await
            .map_err(|e| self.error("extend the lock of", key, e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::written_at;

    #[test]
    fn seaweedfs_version_ids_carry_the_write_time() {
        let lm = chrono::DateTime::parse_from_rfc3339("2026-11-30T04:17:16Z").unwrap().to_utc();
        // Written at 04:17:14.736808, its lock extended at 04:17:16.
        let t = written_at("671348636041cee023a418d0cd3c96dc", lm);
        assert_eq!(t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true), "2026-11-30T04:17:14.736808Z");
        // Ids of other stores, or that decode to a time after LastModified, leave it alone.
        assert_eq!(written_at("3/L4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY+MTRCxf3vjVBH40Nr8X8gdRQBpUMLUo", lm), lm);
        assert_eq!(written_at("null", lm), lm);
        assert_eq!(written_at("00000000000000000000000000000000", lm), lm);
    }
}
