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
use super::retry::{Retry, Stats};
use super::{Failure, ObjectStore};
use aws_sdk_s3::config::retry::RetryConfig;

#[derive(Debug, Clone)]
pub struct S3Storage {
    store: ObjectStore,
    /// Set for an immutable profile: every write is locked for P + 20 days.
    protection: Option<ProtectionPeriod>,
    /// Requests sent, for benchmarks and reports.
    requests: Arc<AtomicU64>,
    /// The retry policy every request goes through (see [`super::retry`]).
    retry: Arc<Retry>,
    /// Whether this store's version ids carry its own write time (found by one probe write).
    version_clock: Arc<tokio::sync::OnceCell<bool>>,
    /// Refuses every write (and writes no probe): see [`S3Storage::read_only`].
    read_only: bool,
}

impl S3Storage {
    /// A store whose requests are retried by [`Retry`] (the SDK's own retries are off, so that
    /// one policy decides and counts).
    pub fn new(mut store: ObjectStore, protection: Option<ProtectionPeriod>) -> S3Storage {
        let config = store.client.config().to_builder().retry_config(RetryConfig::disabled()).build();
        store.client = aws_sdk_s3::Client::from_conf(config);
        S3Storage {
            store,
            protection,
            requests: Arc::default(),
            retry: Arc::default(),
            version_clock: Arc::default(),
            read_only: false,
        }
    }

    /// The same store, refusing every write, delete and lock change before anything is sent,
    /// and writing no probe: where a listing does not show that version ids carry their write
    /// time, versions are dated by their `LastModified` (which a lock extension may have moved
    /// later). For reports that promise to change nothing.
    pub fn read_only(mut self) -> S3Storage {
        self.read_only = true;
        self
    }

    fn refuse_write(&self, op: &'static str, key: &str) -> Result<()> {
        if self.read_only {
            return Err(StorageError::ReadOnly {
                op,
                key: key.to_string(),
                store: self.describe(),
            });
        }
        Ok(())
    }

    /// How many requests this storage (and its clones) has sent.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// What the retry policy did so far (attempts, retries, throttling).
    pub fn retry_stats(&self) -> Stats {
        self.retry.stats()
    }

    fn count(&self) {
        self.requests.fetch_add(1, Ordering::Relaxed);
    }

    /// Sends one request through the retry policy (each attempt counts as a request).
    async fn call<T, F, Fut>(&self, mut request: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        self.retry
            .run(|| {
                self.count();
                request()
            })
            .await
    }

    pub fn protection(&self) -> Option<ProtectionPeriod> {
        self.protection
    }

    /// The bucket's default retention in days, if it has Object Lock with one.
    pub async fn default_retention_days(&self) -> Option<u32> {
        let out = self
            .call(|| async {
                let request = self.store.client.get_object_lock_configuration().bucket(self.bucket());
                request.send().await.map_err(|e| self.error("read the lock settings of", "", e))
            })
            .await
            .ok()?;
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
            // The store failing or throttling (5xx, 429, SlowDown, RequestTimeout) is an outage,
            // not an answer about the data.
            Failure::Service { status, code, .. }
                if *status >= 500 || *status == 429 || matches!(code.as_str(), "RequestTimeout" | "SlowDown" | "Throttling") =>
            {
                StorageError::Unavailable {
                    op,
                    key: key.to_string(),
                    store: self.describe(),
                    reason: failure.to_string(),
                    throttled: *status == 429 || matches!(code.as_str(), "SlowDown" | "Throttling" | "ThrottlingException"),
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
                throttled: false,
            },
        }
    }

    fn truncated(&self, prefix: &str) -> StorageError {
        StorageError::Unavailable {
            op: "list",
            key: prefix.to_string(),
            store: self.describe(),
            reason: "the store said the listing goes on but gave no marker to continue from".into(),
            throttled: false,
        }
    }

    /// Whether this store's version ids carry its write time: decided once per process, by
    /// writing a probe version (under a fresh random key, so that nobody can prepare a clash)
    /// and comparing its id with its `LastModified`. A probe that cannot be written is an error
    /// that says so: trusting no id would silently hide every version whose lock was extended.
    async fn ids_carry_write_time(&self) -> Result<bool> {
        self.version_clock
            .get_or_try_init(|| async {
                let key = format!("{PROBE_PREFIX}{}", &crate::repo::new_password()[..16]);
                let probe = async {
                    let version_id = self.put(&key, Bytes::from_static(b"k10: do version ids carry the write time?")).await?;
                    let head = self
                        .call(|| async {
                            let request = self.store.client.head_object().bucket(self.bucket()).key(&key).version_id(&version_id);
                            request.send().await.map_err(|e| self.error("stat", &key, e))
                        })
                        .await?;
                    Ok::<bool, StorageError>(id_carries_write_time(&version_id, to_time(head.last_modified())))
                };
                probe.await.map_err(|e| match e {
                    e if e.is_outage() => e,
                    e => StorageError::Refused {
                        op: "probe",
                        key: key.clone(),
                        store: self.describe(),
                        reason: format!(
                            "{e}; this store's version ids look like SeaweedFS's, which date versions whose locks were extended: k10 checks that with one small write, which needs permission to write under {PROBE_PREFIX}"
                        ),
                    },
                })
            })
            .await
            .copied()
    }

    async fn read(&self, key: &str, version_id: Option<&str>, range: Option<Range<u64>>) -> Result<Bytes> {
        if let Some(r) = &range {
            if r.start >= r.end {
                return Ok(Bytes::new());
            }
        }
        self.call(|| self.read_once(key, version_id, range.clone())).await
    }

    /// One GET. A body cut short (a reset, a stalled connection, fewer bytes than asked for) is an
    /// outage: the retry reads it again.
    async fn read_once(&self, key: &str, version_id: Option<&str>, range: Option<Range<u64>>) -> Result<Bytes> {
        let mut req = self.store.client.get_object().bucket(self.bucket()).key(key);
        if let Some(v) = version_id {
            req = req.version_id(v);
        }
        if let Some(r) = &range {
            req = req.range(format!("bytes={}-{}", r.start, r.end - 1));
        }
        let out = req.send().await.map_err(|e| self.error("read", key, e))?;
        let expected = match &range {
            Some(r) => Some(r.end - r.start),
            None => out.content_length().and_then(|n| u64::try_from(n).ok()),
        };
        let cut_short = |reason: String| StorageError::Unavailable {
            op: "read",
            key: key.to_string(),
            store: self.describe(),
            reason,
            throttled: false,
        };
        // Into one buffer as the body arrives (collecting the chunks, then joining them, would
        // hold the body twice: a whole pack more per read in flight).
        let mut body = out.body;
        let mut buffer = bytes::BytesMut::with_capacity(expected.unwrap_or(0).min(MAX_PREALLOCATION) as usize);
        let receive = async {
            while let Some(chunk) = body.try_next().await? {
                buffer.extend_from_slice(&chunk);
            }
            Ok::<_, aws_sdk_s3::primitives::ByteStreamError>(())
        };
        tokio::time::timeout(BODY_TIMEOUT, receive)
            .await
            .map_err(|_| cut_short(format!("the body did not arrive within {} s", BODY_TIMEOUT.as_secs())))?
            .map_err(|e| cut_short(format!("the body was cut short: {e}")))?;
        let data = buffer.freeze();
        match expected {
            Some(n) if data.len() as u64 != n => Err(cut_short(format!("asked for {n} bytes, got {}", data.len()))),
            _ => Ok(data),
        }
    }
}

/// The most a read reserves up front for the length the store announces (beyond it, the buffer
/// grows with what actually arrives).
const MAX_PREALLOCATION: u64 = 128 << 20;

/// How long a response body may take to arrive once its headers have.
const BODY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(300);

fn to_time(t: Option<&S3Time>) -> Time {
    t.and_then(|t| chrono::DateTime::from_timestamp(t.secs(), t.subsec_nanos()))
        .unwrap_or_default()
}

/// The store's time of a version's write.
///
/// Normally its `LastModified`. SeaweedFS (4.48) moves a version's `LastModified` to the time of
/// any later `PutObjectRetention` — so every lock extension would hide the version from
/// point-in-time views before it — but its version ids are assigned by the store and start with 16
/// hex digits holding `i64::MAX − creation time in nanoseconds`. That decoding is used only where
/// `ids_carry_time` (a probe write showed this store's ids carry its write time: version ids are
/// the store's, no client chooses them) and the id decodes to a time no later than `LastModified`
/// (within a second: `LastModified` is truncated to seconds); everywhere else `LastModified`.
fn written_at(version_id: &str, last_modified: Time, ids_carry_time: bool) -> Time {
    match decode_version_time(version_id) {
        Some(t) if ids_carry_time && t <= last_modified + chrono::Duration::seconds(1) => t,
        _ => last_modified,
    }
}

/// The time a SeaweedFS-style version id would carry, if it has that form.
fn decode_version_time(version_id: &str) -> Option<Time> {
    if version_id.len() != 32 || !version_id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let inverted = i64::try_from(u64::from_str_radix(&version_id[..16], 16).ok()?).ok()?;
    Some(chrono::DateTime::from_timestamp_nanos(i64::MAX.checked_sub(inverted)?))
}

/// Whether a freshly written version's id carries the store's write time: it decodes to within
/// two seconds of the version's `LastModified` (random ids practically never do).
fn id_carries_write_time(version_id: &str, last_modified: Time) -> bool {
    decode_version_time(version_id).is_some_and(|t| (t - last_modified).num_milliseconds().abs() < 2000)
}

/// Where probe writes go (one small object per process that reads version listings).
const PROBE_PREFIX: &str = "k10/probe/version-clock-";

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
            let page = self
                .call(|| async {
                    let request = self.store.client.list_objects_v2().bucket(self.bucket()).prefix(prefix);
                    let request = request.set_continuation_token(token.clone());
                    request.send().await.map_err(|e| self.error("list", prefix, e))
                })
                .await?;
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

    /// From the version listing, so that its time is the one point-in-time views compare with
    /// (a HEAD's `LastModified` has whole seconds where a listing may carry milliseconds).
    async fn stat(&self, key: &str) -> Result<ObjectInfo> {
        let newest = self.list_versions(key).await?.into_iter().find(|v| v.key == key);
        match newest {
            Some(v) if !v.delete_marker => Ok(ObjectInfo {
                key: v.key,
                size: v.size,
                version_id: v.version_id,
                last_modified: v.last_modified,
            }),
            _ => Err(StorageError::NotFound {
                key: key.to_string(),
                store: self.describe(),
            }),
        }
    }

    async fn get(&self, key: &str, range: Option<Range<u64>>) -> Result<Bytes> {
        self.read(key, None, range).await
    }

    async fn put(&self, key: &str, data: Bytes) -> Result<String> {
        self.refuse_write("write", key)?;
        let out = self
            .call(|| async {
                let mut req = self
                    .store
                    .client
                    .put_object()
                    .bucket(self.bucket())
                    .key(key)
                    .checksum_algorithm(ChecksumAlgorithm::Crc32)
                    .body(ByteStream::from(data.clone()));
                if let Some(p) = self.protection {
                    // Counted from this attempt: a retried write is locked as long as a first one.
                    let until = Utc::now() + chrono::Duration::days(i64::from(p.lock_days()));
                    req = req
                        .object_lock_mode(ObjectLockMode::Compliance)
                        .object_lock_retain_until_date(to_s3_time(until));
                }
                // The body's CRC32 (checked by the store) guards the transfer; what is written is
                // believed only by its content address and its authenticated encryption, never
                // by a signature over the upload, so the payload is not hashed again to sign it.
                req.customize().disable_payload_signing().send().await.map_err(|e| self.error("write", key, e))
            })
            .await?;
        Ok(out.version_id().unwrap_or_default().to_string())
    }

    async fn delete(&self, key: &str) -> Result<()> {
        self.refuse_write("delete", key)?;
        self.call(|| async {
            let request = self.store.client.delete_object().bucket(self.bucket()).key(key);
            request.send().await.map_err(|e| self.error("delete", key, e))
        })
        .await?;
        Ok(())
    }
}

#[async_trait]
impl VersionedStorage for S3Storage {
    async fn list_versions(&self, prefix: &str) -> Result<Vec<Version>> {
        let mut out = Vec::new();
        let (mut key_marker, mut version_marker): (Option<String>, Option<String>) = (None, None);
        loop {
            let page = self
                .call(|| async {
                    let request = self.store.client.list_object_versions().bucket(self.bucket()).prefix(prefix);
                    let request = request.set_key_marker(key_marker.clone()).set_version_id_marker(version_marker.clone());
                    request.send().await.map_err(|e| self.error("list versions", prefix, e))
                })
                .await?;
            // (key, is_latest, version): versions and delete markers arrive in two lists.
            let mut batch: Vec<(bool, Version)> = Vec::new();
            for v in page.versions() {
                batch.push((
                    v.is_latest() == Some(true),
                    Version {
                        key: v.key().unwrap_or_default().to_string(),
                        version_id: v.version_id().unwrap_or_default().to_string(),
                        last_modified: to_time(v.last_modified()),
                        size: v.size().unwrap_or(0) as u64,
                        delete_marker: false,
                        multipart: v.e_tag().is_some_and(|e| e.contains('-')),
                    },
                ));
            }
            for m in page.delete_markers() {
                batch.push((
                    m.is_latest() == Some(true),
                    Version {
                        key: m.key().unwrap_or_default().to_string(),
                        version_id: m.version_id().unwrap_or_default().to_string(),
                        last_modified: to_time(m.last_modified()),
                        size: 0,
                        delete_marker: true,
                        multipart: false,
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
        if out.iter().any(|(_, v)| decode_version_time(&v.version_id).is_some()) {
            // A read-only store writes no probe: it trusts the ids where the listing itself shows
            // two versions whose ids carry their write time (ids are the store's; a random id
            // matches by chance about once in five billion), and otherwise dates by LastModified.
            let trusted = if self.read_only {
                out.iter().filter(|(_, v)| id_carries_write_time(&v.version_id, v.last_modified)).take(2).count() == 2
            } else {
                self.ids_carry_write_time().await?
            };
            for (_, v) in &mut out {
                v.last_modified = written_at(&v.version_id, v.last_modified, trusted);
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
        self.call(|| async {
            let request = self.store.client.get_object_retention().bucket(self.bucket()).key(key).version_id(version_id);
            match request.send().await {
                Ok(out) => Ok(out
                    .retention()
                    .filter(|r| r.mode() == Some(&ObjectLockRetentionMode::Compliance))
                    .and_then(|r| r.retain_until_date())
                    .map(|t| to_time(Some(t)))),
                // S3 answers "no retention" with an error code (whatever its HTTP status) rather
                // than an empty result.
                Err(e) if Failure::of(&e).code() == Some("NoSuchObjectLockConfiguration") => Ok(None),
                Err(e) => Err(self.error("read the lock of", key, e)),
            }
        })
        .await
    }

    async fn extend_lock(&self, key: &str, version_id: &str, until: Time) -> Result<()> {
        self.refuse_write("extend the lock of", key)?;
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
        self.call(|| async {
            let retention = ObjectLockRetention::builder()
                .mode(ObjectLockRetentionMode::Compliance)
                .retain_until_date(to_s3_time(until))
                .build();
            let request = self.store.client.put_object_retention().bucket(self.bucket()).key(key).version_id(version_id);
            request.retention(retention).send().await.map_err(|e| self.error("extend the lock of", key, e))
        })
        .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::{id_carries_write_time, written_at};

    #[test]
    fn seaweedfs_version_ids_carry_the_write_time_where_the_probe_says_so() {
        let lm = chrono::DateTime::parse_from_rfc3339("2026-11-30T04:17:16Z").unwrap().to_utc();
        // Written at 04:17:14.736808, its lock extended at 04:17:16.
        let t = written_at("671348636041cee023a418d0cd3c96dc", lm, true);
        assert_eq!(t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true), "2026-11-30T04:17:14.736808Z");
        // Not trusted (no probe, or the probe found random ids): LastModified.
        assert_eq!(written_at("671348636041cee023a418d0cd3c96dc", lm, false), lm);
        // Ids of other stores, or that decode to a time after LastModified, leave it alone.
        assert_eq!(written_at("3/L4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY+MTRCxf3vjVBH40Nr8X8gdRQBpUMLUo", lm, true), lm);
        assert_eq!(written_at("null", lm, true), lm);
        assert_eq!(written_at("00000000000000000000000000000000", lm, true), lm);
    }

    #[test]
    fn the_probe_tells_time_ids_from_random_ones() {
        let lm = chrono::DateTime::parse_from_rfc3339("2026-11-30T04:17:14Z").unwrap().to_utc();
        assert!(id_carries_write_time("671348636041cee023a418d0cd3c96dc", lm));
        // A random 32-hex id (a store that happens to use them) decodes to some other time.
        assert!(!id_carries_write_time("0f3a9c22d41b7e8855aa01c3d9e4b6f2", lm));
        assert!(!id_carries_write_time("9b2e4f1a7c3d5e6f8091a2b3c4d5e6f7", lm));
        // An hour off is not the write time.
        let later = lm + chrono::Duration::hours(1);
        assert!(!id_carries_write_time("671348636041cee023a418d0cd3c96dc", later));
    }
}
