//! The storage abstraction under every repository: a small, versioned blob store with S3
//! semantics, and its implementations:
//! - [`super::s3::S3Storage`]: a bucket prefix on S3; writes through an immutable profile are locked;
//! - [`super::memory::MemoryStorage`]: in memory, modelling versions, delete markers and COMPLIANCE
//!   locks, for fast tests;
//! - [`super::pit::PointInTime`]: a read-only view of a versioned store as of a time T.
//!
//! Every implementation passes the same conformance suite (`tests/storage_conformance.rs`).

use std::fmt;
use std::ops::Range;

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};

pub type Time = DateTime<Utc>;

/// A current object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    pub key: String,
    pub size: u64,
    pub version_id: String,
    /// The store's clock at the write (S3 `LastModified`).
    pub last_modified: Time,
}

/// One version of a key, or a delete marker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    pub key: String,
    pub version_id: String,
    pub last_modified: Time,
    pub size: u64,
    pub delete_marker: bool,
    /// Written by a multipart upload (an ETag ending in `-<parts>`). k10 never writes one, and
    /// on AWS its `LastModified` is when the upload *started*: it may claim a time before it
    /// existed.
    pub multipart: bool,
}

/// Why a storage operation failed. Messages name the key and the store, and what to do.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StorageError {
    #[error("{key} not found in {store}")]
    NotFound { key: String, store: String },
    #[error("{store} is read-only: {op} {key} refused (a point-in-time view, and a report such as the incident timeline, never write)")]
    ReadOnly {
        op: &'static str,
        key: String,
        store: String,
    },
    #[error("{store} refused {op} {key}: {reason}")]
    Refused {
        op: &'static str,
        key: String,
        store: String,
        reason: String,
    },
    #[error("refusing to shorten the lock of {key} (version {version_id}) from {current} to {requested}")]
    WouldShorten {
        key: String,
        version_id: String,
        current: Time,
        requested: Time,
    },
    #[error("no version of {key} in {store} matches its content address ({skipped} skipped: forged or damaged)")]
    Unverified { key: String, store: String, skipped: usize },
    #[error("{op} {key} on {store} failed: {reason}; the store or the network is failing, not the data: try again when it answers")]
    Unavailable {
        op: &'static str,
        key: String,
        store: String,
        reason: String,
        /// The store asked the client to slow down (`503 SlowDown`, `429`).
        throttled: bool,
    },
}

impl StorageError {
    pub fn is_not_found(&self) -> bool {
        matches!(self, StorageError::NotFound { .. })
    }

    /// The store or the network failed (no connection, a timeout, a 5xx such as `SlowDown`), as
    /// opposed to an answer about the data (missing, forged, refused by a lock).
    pub fn is_outage(&self) -> bool {
        matches!(self, StorageError::Unavailable { .. })
    }

    pub fn is_throttled(&self) -> bool {
        matches!(self, StorageError::Unavailable { throttled: true, .. })
    }

    /// An outage after retries: its reason says for how long it was tried.
    pub fn gave_up(self, attempts: u32, over: std::time::Duration) -> StorageError {
        match self {
            StorageError::Unavailable { op, key, store, reason, throttled } => StorageError::Unavailable {
                op,
                key,
                store,
                reason: format!(
                    "{reason} (gave up after {attempts} attempts over {} s; {} sets the patience)",
                    over.as_secs(),
                    super::retry::ENV_PATIENCE
                ),
                throttled,
            },
            other => other,
        }
    }
}

pub type Result<T, E = StorageError> = std::result::Result<T, E>;

/// A blob store: current objects under string keys.
#[async_trait]
pub trait Storage: Send + Sync + fmt::Debug {
    /// For messages: `s3://bucket/prefix`, `memory`, `… as of T`.
    fn describe(&self) -> String;

    /// Current objects whose keys start with `prefix`, sorted by key.
    async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>>;

    /// The current content of `key`, or the byte range `range` of it.
    async fn get(&self, key: &str, range: Option<Range<u64>>) -> Result<Bytes>;

    /// The current object at `key`, with the store's time of its write.
    async fn stat(&self, key: &str) -> Result<ObjectInfo>;

    /// Writes a new version of `key` and returns its version id. Through an immutable store the
    /// new version is locked.
    async fn put(&self, key: &str, data: Bytes) -> Result<String>;

    /// Hides `key` behind a delete marker; its versions (and their locks) stay.
    async fn delete(&self, key: &str) -> Result<()>;
}

/// A store that keeps every version (a versioned bucket): what point-in-time views and retention
/// maintenance are built on.
#[async_trait]
pub trait VersionedStorage: Storage {
    /// Every version and delete marker whose key starts with `prefix`: keys ascending, and within
    /// a key newest first (S3's `ListObjectVersions` order).
    async fn list_versions(&self, prefix: &str) -> Result<Vec<Version>>;

    /// One version's content, or a byte range of it.
    async fn get_version(&self, key: &str, version_id: &str, range: Option<Range<u64>>) -> Result<Bytes>;

    /// The end of a version's COMPLIANCE lock, if it has one.
    async fn lock_until(&self, key: &str, version_id: &str) -> Result<Option<Time>>;

    /// Extends a version's COMPLIANCE lock to `until`. Never shortens: an earlier `until` than the
    /// current lock is refused with [`StorageError::WouldShorten`] before anything is sent.
    async fn extend_lock(&self, key: &str, version_id: &str, until: Time) -> Result<()>;
}

/// Cuts a byte range out of a whole object (stores that cannot read ranges natively).
pub fn slice(data: Bytes, range: Option<Range<u64>>, key: &str, store: &str) -> Result<Bytes> {
    match range {
        None => Ok(data),
        Some(r) if r.start <= r.end && r.end <= data.len() as u64 => Ok(data.slice(r.start as usize..r.end as usize)),
        Some(r) => Err(StorageError::Refused {
            op: "read",
            key: key.to_string(),
            store: store.to_string(),
            reason: format!("range {}..{} is outside the object's {} bytes", r.start, r.end, data.len()),
        }),
    }
}
