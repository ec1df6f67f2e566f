//! File contents of a restore, pack by pack.
//!
//! rustic_core's restorer reads a pack in many small ranges (each a request, each a chance to be
//! throttled), `unwrap`s every read and write (a reset or a full disk panics), and fills zeros in.
//! This one:
//! - plans from the snapshot's tree and the index: which blobs of which pack go where;
//! - reads each pack in as few ranged requests as its layout allows (blobs closer than
//!   [`MAX_GAP`] share one request; on a point-in-time view a pack is one request, verified against
//!   its name), a few packs at a time, so memory is bounded by [`PACKS_IN_FLIGHT`] packs, not by
//!   the data;
//! - checks every blob against its id (SHA-256 of the plaintext) before it touches the disk;
//! - leaves holes for blocks of zeros (sparse files stay sparse);
//! - resumes: a file already in the destination is read back and every blob that hashes to its
//!   id is kept, so a second attempt fetches only what is missing;
//! - fails with typed errors: the store's outage (after its retries), damaged data (naming the
//!   files), or a full volume (naming it and the bytes still needed).
//!
//! Directories, symlinks, hard links, owners, modes, times and extended attributes are then set
//! by rustic_core's restore, which finds every file complete (size and mtime match) and reads
//! nothing.

use std::collections::{BTreeMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use aes256ctr_poly1305aes::aead::{Aead, Nonce};
use aes256ctr_poly1305aes::Aes256CtrPoly1305Aes;
use rustic_core::repofile::{MasterKey, Node, NodeType};
use rustic_core::{FileType, RusticResult};
use sha2::{Digest, Sha256};
use tokio::runtime::Handle;

use super::backend::StorageBackend;
use super::{RepoError, Result};
use crate::objectstore::storage::Storage;

/// Blobs of one pack closer than this are read in one request (the gap is read and dropped).
pub const MAX_GAP: u64 = 4 << 20;
/// Packs read and written at once.
pub const PACKS_IN_FLIGHT: usize = 3;

/// One blob's place in a pack, and where its plaintext goes.
#[derive(Debug)]
struct Blob {
    id: String,
    offset: u64,
    length: u64,
    uncompressed: Option<u32>,
    /// (file index, offset in the file)
    targets: Vec<(usize, u64)>,
}

#[derive(Debug)]
struct Target {
    path: PathBuf,
    /// The path in the snapshot, for messages.
    name: PathBuf,
    mtime: Option<std::time::SystemTime>,
    /// Created by this restore (its unwritten ranges are holes, zeros need no write).
    fresh: bool,
}

/// What the contents pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ContentStats {
    /// Bytes written from the store.
    pub written: u64,
    /// Bytes found already on disk and verified.
    pub kept: u64,
    /// Requests for pack data.
    pub pack_reads: u64,
}

/// The plan: packs → blobs, and the files they fill.
pub struct Plan {
    packs: BTreeMap<String, Vec<Blob>>,
    targets: Vec<Target>,
    /// Blobs still to write, per file (a file is complete at zero).
    pending: Vec<AtomicUsize>,
    to_write: u64,
    kept: u64,
}

/// Builds the plan from the snapshot's entries (paths relative to `dest`), creating directories
/// and files (at their final size, as holes) and keeping every blob already on disk.
pub fn plan(
    entries: impl Iterator<Item = RusticResult<(PathBuf, Node)>>,
    index: impl Fn(&rustic_core::DataId) -> RusticResult<(String, u64, u64, Option<u32>)>,
    dest: &Path,
    fail: impl Fn(Box<rustic_core::RusticError>) -> RepoError,
) -> Result<Plan> {
    let mut packs: BTreeMap<String, BTreeMap<u64, Blob>> = BTreeMap::new();
    let mut targets = Vec::new();
    let mut blob_counts = Vec::new();
    let mut linked = HashSet::new();
    let (mut to_write, mut kept) = (0, 0);
    for entry in entries {
        let (path, node) = entry.map_err(&fail)?;
        let local = dest.join(&path);
        match node.node_type {
            // Never through a symlink: what is in the way of a directory is an error.
            NodeType::Dir => match std::fs::symlink_metadata(&local) {
                Ok(m) if m.is_dir() => {}
                Ok(_) => return Err(io_error(&local, std::io::Error::other("in the way of a directory of the snapshot"))),
                Err(_) => std::fs::create_dir(&local).map_err(|e| io_error(&local, e))?,
            },
            NodeType::File => {
                // A hard link's other names are made by the metadata pass.
                if node.meta.links > 1 && node.meta.inode != 0 && !linked.insert((node.meta.device_id, node.meta.inode)) {
                    continue;
                }
                let existing = match std::fs::symlink_metadata(&local) {
                    Ok(m) if m.is_file() => Some(File::open(&local).map_err(|e| io_error(&local, e))?),
                    Ok(_) => return Err(io_error(&local, std::io::Error::other("in the way of a file of the snapshot"))),
                    Err(_) => None,
                };
                let fresh = existing.is_none();
                let file = OpenOptions::new().create(true).write(true).truncate(false).open(&local).map_err(|e| io_error(&local, e))?;
                file.set_len(node.meta.size).map_err(|e| io_error(&local, e))?;
                let index_of_file = targets.len();
                let mut position = 0u64;
                let mut count = 0;
                for id in node.content.iter().flatten() {
                    let (pack, offset, length, uncompressed) = index(id).map_err(&fail)?;
                    let plain = uncompressed.map_or(length.saturating_sub(32), u64::from);
                    let hex = id.to_hex().to_string();
                    if existing.as_ref().is_some_and(|f| holds(f, position, plain, &hex)) {
                        kept += plain;
                    } else {
                        let blob = packs.entry(pack).or_default().entry(offset).or_insert_with(|| Blob {
                            id: hex,
                            offset,
                            length,
                            uncompressed,
                            targets: Vec::new(),
                        });
                        blob.targets.push((index_of_file, position));
                        to_write += plain;
                        count += 1;
                    }
                    position += plain;
                }
                targets.push(Target {
                    path: local,
                    name: path.clone(),
                    mtime: node.meta.mtime.map(std::time::SystemTime::from),
                    fresh,
                });
                blob_counts.push(count);
            }
            _ => {}
        }
    }
    let plan = Plan {
        packs: packs.into_iter().map(|(k, v)| (k, v.into_values().collect())).collect(),
        pending: blob_counts.iter().map(|&n| AtomicUsize::new(n)).collect(),
        targets,
        to_write,
        kept,
    };
    // Files with nothing left to write are complete now.
    for (i, n) in blob_counts.iter().enumerate() {
        if *n == 0 {
            plan.complete(i)?;
        }
    }
    Ok(plan)
}

/// Whether `file` holds the blob `id` (its plaintext of `length` bytes) at `position`.
fn holds(file: &File, position: u64, length: u64, id: &str) -> bool {
    let mut hasher = Sha256::new();
    let mut reader = std::io::BufReader::new(ReadAt { file, position }).take(length);
    let mut buf = vec![0u8; 256 << 10];
    let mut read = 0;
    loop {
        match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                hasher.update(&buf[..n]);
                read += n as u64;
            }
            Err(_) => return false,
        }
    }
    read == length && hex(&hasher.finalize()) == id
}

struct ReadAt<'a> {
    file: &'a File,
    position: u64,
}

impl Read for ReadAt<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.file.read_at(buf, self.position)?;
        self.position += n as u64;
        Ok(n)
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn io_error(path: &Path, e: std::io::Error) -> RepoError {
    RepoError::Source {
        path: path.display().to_string(),
        reason: e.to_string(),
    }
}

impl Plan {
    /// Bytes the restore still has to fetch and write.
    pub fn to_write(&self) -> u64 {
        self.to_write
    }

    /// A file whose every blob is on disk gets its mtime (the mark the metadata pass trusts).
    fn complete(&self, file: usize) -> Result<()> {
        let target = &self.targets[file];
        if let Some(mtime) = target.mtime {
            let f = OpenOptions::new().write(true).open(&target.path).map_err(|e| io_error(&target.path, e))?;
            f.set_modified(mtime).map_err(|e| io_error(&target.path, e))?;
        }
        Ok(())
    }

    /// Fetches every pack in the plan and writes its blobs. `dest` is the volume, for messages.
    pub fn run(
        self,
        storage: Arc<dyn Storage>,
        backend: &StorageBackend,
        key: &MasterKey,
        runtime: &Handle,
        dest: &Path,
    ) -> Result<ContentStats> {
        let mut aead_key = aes256ctr_poly1305aes::Key::default();
        aead_key[0..32].copy_from_slice(&key.encrypt);
        aead_key[32..48].copy_from_slice(&key.mac.k);
        aead_key[48..64].copy_from_slice(&key.mac.r);
        let cipher = Aes256CtrPoly1305Aes::new(&aead_key);
        let queue = Mutex::new(self.packs.iter());
        let failed = AtomicBool::new(false);
        let error: Mutex<Option<RepoError>> = Mutex::new(None);
        let (written, reads) = (AtomicU64::new(0), AtomicU64::new(0));
        let work = || {
            while !failed.load(Ordering::Relaxed) {
                let Some((pack, blobs)) = queue.lock().unwrap().next() else { return };
                let id: rustic_core::Id = match pack.parse() {
                    Ok(id) => id,
                    Err(_) => return,
                };
                let pack_key = backend.key(FileType::Pack, &id);
                if let Err(e) = self.restore_pack(&storage, &pack_key, blobs, &cipher, runtime, dest, &written, &reads) {
                    failed.store(true, Ordering::Relaxed);
                    error.lock().unwrap().get_or_insert(e);
                    return;
                }
            }
        };
        std::thread::scope(|s| {
            for _ in 0..PACKS_IN_FLIGHT {
                s.spawn(work);
            }
        });
        if let Some(e) = error.into_inner().unwrap() {
            return Err(e);
        }
        Ok(ContentStats {
            written: written.into_inner(),
            kept: self.kept,
            pack_reads: reads.into_inner(),
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn restore_pack(
        &self,
        storage: &Arc<dyn Storage>,
        pack_key: &str,
        blobs: &[Blob],
        cipher: &Aes256CtrPoly1305Aes,
        runtime: &Handle,
        dest: &Path,
        written: &AtomicU64,
        reads: &AtomicU64,
    ) -> Result<()> {
        // Consecutive blobs (sorted by offset) whose gaps are small share a request.
        let mut start = 0;
        while start < blobs.len() {
            let mut end = start + 1;
            while end < blobs.len() && blobs[end].offset <= blobs[end - 1].offset + blobs[end - 1].length + MAX_GAP {
                end += 1;
            }
            let (from, to) = (blobs[start].offset, blobs[end - 1].offset + blobs[end - 1].length);
            reads.fetch_add(1, Ordering::Relaxed);
            let data = match runtime.block_on(storage.get(pack_key, Some(from..to))) {
                Ok(data) => data,
                Err(e) if e.is_outage() => return Err(e.into()),
                // Missing, refused, or no version matches its name: the data is gone or forged.
                Err(e) => {
                    return Err(RepoError::Damaged {
                        location: pack_key.to_string(),
                        detail: format!("{e}; file(s) affected: {}", self.affected(blobs)),
                    })
                }
            };
            for blob in &blobs[start..end] {
                let raw = &data[(blob.offset - from) as usize..(blob.offset - from + blob.length) as usize];
                let plain = self.open_blob(raw, blob, cipher, pack_key)?;
                self.write(blob, &plain, dest, written)?;
            }
            start = end;
        }
        Ok(())
    }

    /// The files that need `blobs`, by their names in the snapshot.
    fn affected(&self, blobs: &[Blob]) -> String {
        let names: std::collections::BTreeSet<String> = blobs
            .iter()
            .flat_map(|b| &b.targets)
            .map(|(f, _)| self.targets[*f].name.display().to_string())
            .collect();
        names.into_iter().collect::<Vec<_>>().join(", ")
    }

    /// Decrypts (and decompresses) a blob and checks it against its id.
    fn open_blob(&self, raw: &[u8], blob: &Blob, cipher: &Aes256CtrPoly1305Aes, pack_key: &str) -> Result<Vec<u8>> {
        let damaged = |why: &str| {
            RepoError::Damaged {
                location: pack_key.to_string(),
                detail: format!("blob {} {why}; file(s) affected: {}", &blob.id[..16], self.affected(std::slice::from_ref(blob))),
            }
        };
        if raw.len() < 32 {
            return Err(damaged("is cut short"));
        }
        let nonce = Nonce::<Aes256CtrPoly1305Aes>::from_slice(&raw[..16]);
        let mut plain = cipher.decrypt(nonce, &raw[16..]).map_err(|_| damaged("fails its authentication (MAC)"))?;
        if let Some(length) = blob.uncompressed {
            plain = zstd::stream::decode_all(plain.as_slice()).map_err(|_| damaged("does not decompress"))?;
            if plain.len() != length as usize {
                return Err(damaged("decompresses to the wrong length"));
            }
        }
        if hex(&Sha256::digest(&plain)) != blob.id {
            return Err(damaged("does not match its id"));
        }
        Ok(plain)
    }

    fn write(&self, blob: &Blob, plain: &[u8], dest: &Path, written: &AtomicU64) -> Result<()> {
        let zeros = plain.iter().all(|&b| b == 0);
        for &(file, position) in &blob.targets {
            let target = &self.targets[file];
            // A fresh file is a hole where nothing was written: zeros need no write.
            if !(zeros && target.fresh) {
                let f = OpenOptions::new().write(true).open(&target.path).map_err(|e| io_error(&target.path, e))?;
                f.write_all_at(plain, position).map_err(|e| self.write_error(&target.path, e, dest, written))?;
            }
            written.fetch_add(plain.len() as u64, Ordering::Relaxed);
            if self.pending[file].fetch_sub(1, Ordering::AcqRel) == 1 {
                self.complete(file)?;
            }
        }
        Ok(())
    }

    fn write_error(&self, path: &Path, e: std::io::Error, dest: &Path, written: &AtomicU64) -> RepoError {
        // ENOSPC, EDQUOT, EFBIG: the volume (or its quota) is too small.
        if matches!(e.raw_os_error(), Some(28 | 122 | 27)) {
            let done = written.load(Ordering::Relaxed);
            return RepoError::VolumeFull {
                volume: dest.display().to_string(),
                needed: self.to_write + self.kept,
                missing: self.to_write.saturating_sub(done),
                free: free_bytes(dest),
            };
        }
        io_error(path, e)
    }
}

/// Free bytes on the filesystem of `path` (for messages).
pub fn free_bytes(path: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a valid NUL-terminated path and `stat` a valid out-pointer.
    let rc = unsafe { libc::statvfs(c.as_ptr(), &mut stat) };
    (rc == 0).then(|| stat.f_bavail as u64 * stat.f_frsize as u64)
}
