//! rustic_core's storage backend on our [`Storage`]: the restic layout under a key prefix
//! (`config`, `keys/<id>`, `snapshots/<id>`, `index/<id>`, `data/<2 hex>/<id>`).
//!
//! rustic_core calls backends synchronously from its own threads (rayon, std threads); none of them
//! runs inside the tokio runtime, so each call drives the async store with `Handle::block_on`.
//! Callers run rustic_core work inside `spawn_blocking` (see [`super::blocking`]).
//! A write through a read-only view fails with `ErrorKind::Unsupported`; rustic_core writes no lock
//! files and never deletes working files: `remove` is only used to forget a snapshot, which becomes
//! a delete marker.

use std::sync::Arc;

use bytes::Bytes;
use rustic_core::{BytesList, ErrorKind, FileType, Id, ReadBackend, RusticError, RusticResult, WriteBackend};
use tokio::runtime::Handle;

use crate::objectstore::storage::{Storage, StorageError};

pub struct StorageBackend {
    storage: Arc<dyn Storage>,
    /// Ends with '/'.
    prefix: String,
    runtime: Handle,
}

impl StorageBackend {
    pub fn new(storage: Arc<dyn Storage>, prefix: &str, runtime: Handle) -> StorageBackend {
        StorageBackend {
            storage,
            prefix: prefix.to_string(),
            runtime,
        }
    }

    /// The store key of a repository file.
    pub fn key(&self, tpe: FileType, id: &Id) -> String {
        let hex = id.to_hex();
        match tpe {
            FileType::Config => format!("{}config", self.prefix),
            FileType::Pack => format!("{}data/{}/{}", self.prefix, &hex[..2], hex.as_str()),
            _ => format!("{}{}/{}", self.prefix, tpe.dirname(), hex.as_str()),
        }
    }
}

/// The SHA-256 a repository file's content must have, for the files named by it: every file of
/// the restic layout but `config` (`keys/`, `snapshots/`, `index/`, `data/<2 hex>/`).
pub fn content_address(key: &str) -> Option<&str> {
    let (dir, name) = key.rsplit_once('/')?;
    let is_hex = |s: &str| s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    if name.len() != 64 || !is_hex(name) {
        return None;
    }
    let (parent, last) = dir.rsplit_once('/').unwrap_or(("", dir));
    let addressed = matches!(last, "keys" | "snapshots" | "index")
        || (last.len() == 2 && is_hex(last) && name.starts_with(last) && parent.rsplit('/').next() == Some("data"));
    addressed.then_some(name)
}

/// Wraps our error so that callers can find it again (`source().downcast_ref::<StorageError>()`).
fn engine_error(err: StorageError) -> Box<RusticError> {
    let kind = match err {
        StorageError::ReadOnly { .. } => ErrorKind::Unsupported,
        _ => ErrorKind::Backend,
    };
    RusticError::from(kind, err)
}

impl ReadBackend for StorageBackend {
    fn location(&self) -> String {
        format!("{}/{}", self.storage.describe(), self.prefix.trim_end_matches('/'))
    }

    fn list_with_size(&self, tpe: FileType) -> RusticResult<Vec<(Id, u32)>> {
        if tpe == FileType::Config {
            let key = format!("{}config", self.prefix);
            return match self.runtime.block_on(self.storage.stat(&key)) {
                Ok(info) => Ok(vec![(Id::default(), size32(info.size)?)]),
                Err(e) if e.is_not_found() => Ok(Vec::new()),
                Err(e) => Err(engine_error(e)),
            };
        }
        let dir = format!("{}{}/", self.prefix, tpe.dirname());
        let listed = self.runtime.block_on(self.storage.list(&dir)).map_err(engine_error)?;
        let mut out = Vec::with_capacity(listed.len());
        for object in listed {
            let name = object.key.rsplit('/').next().unwrap_or_default();
            // Anything that is not a restic file name is not ours to interpret.
            if let Ok(id) = name.parse::<Id>() {
                out.push((id, size32(object.size)?));
            }
        }
        Ok(out)
    }

    fn read_full(&self, tpe: FileType, id: &Id) -> RusticResult<Bytes> {
        self.runtime
            .block_on(self.storage.get(&self.key(tpe, id), None))
            .map_err(engine_error)
    }

    fn read_partial(&self, tpe: FileType, id: &Id, _cacheable: bool, offset: u32, length: u32) -> RusticResult<Bytes> {
        let range = u64::from(offset)..u64::from(offset) + u64::from(length);
        self.runtime
            .block_on(self.storage.get(&self.key(tpe, id), Some(range)))
            .map_err(engine_error)
    }

    fn warmup_path(&self, tpe: FileType, id: &Id) -> String {
        self.key(tpe, id)
    }
}

impl WriteBackend for StorageBackend {
    fn write_bytes(&self, tpe: FileType, id: &Id, _cacheable: bool, content: BytesList) -> RusticResult<()> {
        let data = match content.slice() {
            [one] => one.clone(),
            parts => Bytes::from(parts.concat()),
        };
        // The parts are copied: not held twice during the upload.
        drop(content);
        self.runtime
            .block_on(self.storage.put(&self.key(tpe, id), data))
            .map(|_| ())
            .map_err(engine_error)
    }

    fn remove(&self, tpe: FileType, id: &Id, _cacheable: bool) -> RusticResult<()> {
        self.runtime
            .block_on(self.storage.delete(&self.key(tpe, id)))
            .map_err(engine_error)
    }
}

fn size32(size: u64) -> RusticResult<u32> {
    u32::try_from(size).map_err(|e| RusticError::with_source(ErrorKind::Backend, "object larger than 4 GiB", e))
}

#[cfg(test)]
mod tests {
    use super::content_address;

    #[test]
    fn content_addressed_files_are_named_by_their_digest() {
        let id = "ab".repeat(32);
        for key in [
            format!("k10/c/repos/u/keys/{id}"),
            format!("k10/c/repos/u/snapshots/{id}"),
            format!("k10/c/repos/u/index/{id}"),
            format!("k10/c/repos/u/data/ab/{id}"),
            format!("r/data/ab/{id}"),
        ] {
            assert_eq!(content_address(&key), Some(id.as_str()), "{key}");
        }
        for key in [
            "k10/c/repos/u/config".to_string(),
            format!("k10/c/repos/u/data/cd/{id}"),
            format!("k10/c/repos/u/other/{id}"),
            format!("k10/c/repos/u/keys/{}", "AB".repeat(32)),
            "k10/c/repos/u/keys/abc".to_string(),
        ] {
            assert_eq!(content_address(&key), None, "{key}");
        }
    }
}
