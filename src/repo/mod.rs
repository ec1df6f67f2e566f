//! The repository: restic-format backups (rustic_core) on our storage.
//!
//! A [`Repo<Writable>`] backs up and forgets; a [`Repo<ReadOnly>`] is opened *as of* a time T on a
//! point-in-time view and can only read — the type leaves no way to write through it. Both list,
//! restore, read single documents and check.
//!
//! rustic_core is synchronous: every operation runs on tokio's blocking pool, and the storage
//! backend drives the async store from there (see [`backend`]).

pub mod backend;
pub mod layout;
pub mod restorer;

use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use chrono::Utc;
use rustic_core::repofile::{MasterKey, Metadata, Node, NodeType, SnapshotFile};
use rustic_core::{
    BackupOptions, CheckOptions, ConfigOptions, Credentials, FileType, Id, KeyOptions, LocalDestination, LsOptions,
    ParentOptions, PathList, ReadSource, ReadSourceEntry, Repository, RepositoryBackends, RepositoryOptions,
    RestoreOptions, RusticError, RusticResult, SnapshotOptions,
};
use tokio::runtime::Handle;

use crate::objectstore::pit::PointInTime;
use crate::objectstore::storage::{Storage, StorageError, Time, VersionedStorage};
use backend::StorageBackend;

/// Why a repository operation failed, and what to do.
#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    #[error("no repository at {location}: nothing was backed up there (at that time); check the cluster ID, the profile and the point in time")]
    NoRepository { location: String },
    #[error("a repository already exists at {location}")]
    AlreadyExists { location: String },
    #[error("wrong password for the repository at {location}: use the password Secret of this repository (or the DR passphrase it was written with)")]
    WrongPassword { location: String },
    #[error("the repository key does not open the repository at {location}: the data mover's Secret holds another repository's key (or a damaged one); run the backup or restore again, which writes its Secret afresh")]
    WrongKey { location: String },
    #[error("the repository key is malformed: {0}; it is the JSON the backup or restore wrote into the data mover's Secret")]
    MalformedKey(String),
    #[error("point in time {at} is in the future (now {now}): choose a time before now")]
    FutureTime { at: String, now: String },
    #[error("malformed point in time {0:?}: use RFC 3339, e.g. 2026-01-02T15:04:05Z")]
    MalformedTime(String),
    #[error("snapshot {id} not found in {location}")]
    SnapshotNotFound { id: String, location: String },
    #[error("{path} not found in snapshot {id}")]
    PathNotFound { id: String, path: String },
    #[error("cannot back up {path}: {reason}")]
    Source { path: String, reason: String },
    #[error("restore destination {0} holds files that are not in the snapshot: restore into a new or empty directory (or one that an interrupted restore of the same snapshot left)")]
    DestinationNotEmpty(String),
    #[error("volume {volume} is full: the restore needs {needed} bytes, {missing} of them not yet written ({free} bytes free); grow the volume and run the same restore again: what is already on it is verified and kept, not fetched again", free = free.map_or("no".to_string(), |f| f.to_string()))]
    VolumeFull {
        volume: String,
        needed: u64,
        missing: u64,
        free: Option<u64>,
    },
    #[error("the repository at {location} is damaged: {detail}; nothing was restored from the damaged data")]
    Damaged { location: String, detail: String },
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("{op} failed on {location}: {message}")]
    Engine {
        op: &'static str,
        location: String,
        message: String,
    },
}

pub type Result<T, E = RepoError> = std::result::Result<T, E>;

/// A snapshot in a repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// The full hex id.
    pub id: String,
    /// The time the backup started, by the writer's clock (for display; decisions use the store's).
    pub time: Time,
    pub tags: Vec<String>,
    /// Files and bytes in the snapshot, and bytes newly added to the repository.
    pub files: u64,
    pub bytes: u64,
    pub bytes_added: u64,
    /// Files taken from the parent snapshot unread (same size and mtime).
    pub files_unread: u64,
    /// What changed against the parent: files new (by path) and changed (by metadata).
    pub files_new: u64,
    pub files_changed: u64,
    /// File contents new to the repository, before and after compression (and encryption).
    pub content_added: u64,
    pub content_added_stored: u64,
    /// Files by extension (lower case, "" for none) at the backup, for a directory backup: see
    /// [`Extensions`].
    pub extensions: Option<Extensions>,
}

/// How many files of a tree carry each file name extension (lower case; "" for none), the most
/// common [`Extensions::KEPT`] of them; what a change that renames files shows up in. Kept in the
/// snapshot's description (`{"k10":{"extensions":{…}}}`).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Extensions(pub std::collections::BTreeMap<String, u64>);

impl Extensions {
    pub const KEPT: usize = 64;

    /// The extension of a file name: after its last dot, lower case, at most 16 characters of
    /// letters and digits ("" otherwise, and for names such as `.profile`).
    pub fn of(name: &str) -> String {
        match name.rsplit_once('.') {
            Some((stem, ext)) if !stem.is_empty() && !ext.is_empty() && ext.len() <= 16 && ext.chars().all(|c| c.is_ascii_alphanumeric()) => {
                ext.to_ascii_lowercase()
            }
            _ => String::new(),
        }
    }

    fn keep_most_common(counts: std::collections::HashMap<String, u64>) -> Extensions {
        let mut all: Vec<(String, u64)> = counts.into_iter().collect();
        all.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        Extensions(all.into_iter().take(Self::KEPT).collect())
    }

    fn description(&self) -> String {
        serde_json::json!({"k10": {"extensions": self.0}}).to_string()
    }

    fn from_description(text: &str) -> Option<Extensions> {
        let v: serde_json::Value = serde_json::from_str(text).ok()?;
        serde_json::from_value(v["k10"]["extensions"].clone()).ok()
    }

    pub fn count(&self, ext: &str) -> u64 {
        self.0.get(ext).copied().unwrap_or(0)
    }
}

/// What a restore wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Restored {
    pub files: u64,
    pub dirs: u64,
    pub bytes: u64,
    /// Bytes fetched from the store and written.
    pub written: u64,
    /// Bytes found on the destination already (an interrupted restore's) and kept.
    pub kept: u64,
}

/// What opens a repository: its password (the key derivation, scrypt, costs about 128 MiB and
/// a second of CPU on purpose), or its master key, what the password unlocks. The master key is
/// as secret as the password (either reads and writes everything); data movers get it so that
/// each of them need not derive it again.
#[derive(Clone, Copy)]
pub enum Unlock<'a> {
    Password(&'a str),
    Key(&'a RepoKey),
}

/// A repository's master key. Its text form (JSON) goes only into Kubernetes Secrets; it is
/// never printed (Debug shows nothing of it).
#[derive(Clone)]
pub struct RepoKey(MasterKey);

impl RepoKey {
    /// Parses the text form written by [`RepoKey::to_secret`].
    pub fn parse(text: &str) -> Result<RepoKey> {
        serde_json::from_str::<MasterKey>(text.trim())
            .map(RepoKey)
            // Only where it broke: serde's own message may quote the text (`invalid type: string
            // "…"`), which is key material.
            .map_err(|e| RepoError::MalformedKey(format!("{:?} error at line {}, column {}", e.classify(), e.line(), e.column())))
    }

    /// The text form, for a Secret.
    pub fn to_secret(&self) -> String {
        serde_json::to_string(&self.0).expect("a master key serializes")
    }
}

impl std::fmt::Debug for RepoKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RepoKey(…)")
    }
}

/// Typestate marker: the repository can be written (backup, forget).
#[derive(Debug)]
pub struct Writable;
/// Typestate marker: a point-in-time view; reading only.
#[derive(Debug)]
pub struct ReadOnly;

pub struct Repo<M> {
    /// The point-in-time view under a read-only repository.
    view: Option<Arc<PointInTime>>,
    backends: RepositoryBackends,
    key: MasterKey,
    storage: Arc<dyn Storage>,
    prefix: String,
    location: String,
    _mode: PhantomData<M>,
}

impl<M> std::fmt::Debug for Repo<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Repo").field("location", &self.location).finish_non_exhaustive()
    }
}

/// The tag of a snapshot for which every file was read.
pub const READ_FULL: &str = "read=full";
/// The tag of a snapshot that took unchanged files (same size and mtime) from its parent.
pub const READ_CHANGED: &str = "read=changed";
/// How often a volume's backup reads every file, whatever its parent says.
pub const FULL_READ_EVERY: chrono::Duration = chrono::Duration::days(7);

/// A fresh random repository password (32 bytes, hex).
pub fn new_password() -> String {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the OS random source works");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Parses an RFC 3339 point in time and refuses one in the future.
pub fn parse_point_in_time(text: &str) -> Result<Time> {
    let at = chrono::DateTime::parse_from_rfc3339(text.trim())
        .map_err(|_| RepoError::MalformedTime(text.to_string()))?
        .with_timezone(&Utc);
    check_not_future(at, chrono::Duration::zero())?;
    Ok(at)
}

/// How far ahead of this machine's clock the store's clock may run: times that come from the
/// store (a restore point's end time) are not refused for a skew below this.
const CLOCK_SKEW: chrono::Duration = chrono::Duration::minutes(15);

/// Refuses a time later than now (+ `tolerance`, for times read from the store's clock).
fn check_not_future(at: Time, tolerance: chrono::Duration) -> Result<()> {
    let now = Utc::now();
    if at > now + tolerance {
        return Err(RepoError::FutureTime {
            at: at.to_rfc3339(),
            now: now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        });
    }
    Ok(())
}

/// Data packs of a new repository: 16 MiB, whatever its size (restic's size; rustic_core's
/// default starts at 32 MiB and grows with the square root of the repository, to 79 MiB at
/// 2 TiB). A backup holds up to six packs at once (one filling, the rest queued behind the one
/// upload), a restore [`restorer::PACKS_IN_FLIGHT`]: fixed packs keep a data mover's memory
/// fixed. The price: more objects (a 2 TiB volume is about 131,000 packs) for maintenance to
/// extend. A repository's config is written once; one made before keeps its packs.
pub const DATA_PACK_BYTES: u64 = 16 << 20;

fn config_options() -> ConfigOptions {
    ConfigOptions::default()
        .set_datapack_size(bytesize::ByteSize::b(DATA_PACK_BYTES))
        .set_datapack_size_limit(bytesize::ByteSize::b(DATA_PACK_BYTES))
}

fn options() -> RepositoryOptions {
    RepositoryOptions::default().no_cache(true)
}

fn backends(storage: Arc<dyn Storage>, prefix: &str) -> RepositoryBackends {
    RepositoryBackends::new(Arc::new(StorageBackend::new(storage, prefix, Handle::current())), None)
}

/// Runs rustic_core work on the blocking pool; a panic inside it becomes an error.
async fn blocking<T: Send + 'static>(
    op: &'static str,
    location: &str,
    work: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    match tokio::task::spawn_blocking(work).await {
        Ok(result) => result,
        Err(e) => Err(RepoError::Engine {
            op,
            location: location.to_string(),
            message: if e.is_panic() {
                "the repository engine stopped on unreadable data".into()
            } else {
                e.to_string()
            },
        }),
    }
}

/// Maps an engine error, keeping our storage errors and the wrong-password case apart.
fn engine(op: &'static str, location: &str, err: impl AsRef<RusticError>) -> RepoError {
    let err = err.as_ref();
    if err.is_incorrect_password() {
        return RepoError::WrongPassword {
            location: location.to_string(),
        };
    }
    // What the store answered decides what the failure means: a refused write through a view,
    // an outage (never to be mistaken for damage), or data that is forged or gone.
    let mut source = std::error::Error::source(err);
    while let Some(s) = source {
        match s.downcast_ref::<StorageError>() {
            Some(e @ StorageError::ReadOnly { .. }) => return RepoError::Storage(e.clone()),
            Some(e) if e.is_outage() => return RepoError::Storage(e.clone()),
            Some(e @ StorageError::Unverified { .. }) => {
                return RepoError::Damaged {
                    location: location.to_string(),
                    detail: e.to_string(),
                }
            }
            _ => {}
        }
        source = s.source();
    }
    RepoError::Engine {
        op,
        location: location.to_string(),
        message: one_line(&err.display_log()),
    }
}

/// The engine's multi-line reports (with backtraces when `RUST_BACKTRACE` is set) as one line.
fn one_line(text: &str) -> String {
    let cut = ["\n\nSome additional details", "\n\nBacktrace:", "\n\nFor more information"]
        .iter()
        .filter_map(|m| text.find(m))
        .min()
        .unwrap_or(text.len());
    let text = text[..cut].split_whitespace().collect::<Vec<_>>().join(" ").replace("Message: ", "");
    // The engine's own repair advice names its CLI, which k10's users do not have.
    match text.find(" To repair: ") {
        Some(i) => text[..i].to_string(),
        None => text,
    }
}

fn has_config(backends: &RepositoryBackends, location: &str) -> Result<bool> {
    let repo = Repository::new(&options(), backends).map_err(|e| engine("open", location, e))?;
    Ok(repo.config_id().map_err(|e| engine("open", location, e))?.is_some())
}

impl Repo<Writable> {
    /// Creates a new repository under `prefix` (which must end with '/').
    pub async fn init(storage: Arc<dyn Storage>, prefix: &str, password: &str) -> Result<Repo<Writable>> {
        let backends = backends(storage.clone(), prefix);
        let location = backends.repository().location();
        let password = password.to_string();
        let (b, loc) = (backends.clone(), location.clone());
        let key = blocking("init", &location, move || {
            if has_config(&b, &loc)? {
                return Err(RepoError::AlreadyExists { location: loc });
            }
            let repo = Repository::new(&options(), &b)
                .map_err(|e| engine("init", &loc, e))?
                .init(&Credentials::password(password), &KeyOptions::default(), &config_options())
                .map_err(|e| engine("init", &loc, e))?;
            Ok(repo.key())
        })
        .await?;
        Ok(Repo::new(backends, key, storage, prefix, location))
    }

    /// Opens the repository under `prefix` as it is now.
    pub async fn open(storage: Arc<dyn Storage>, prefix: &str, password: &str) -> Result<Repo<Writable>> {
        Self::open_with(storage, prefix, Unlock::Password(password)).await
    }

    /// Opens the repository under `prefix` as it is now, with its password or its key.
    pub async fn open_with(storage: Arc<dyn Storage>, prefix: &str, unlock: Unlock<'_>) -> Result<Repo<Writable>> {
        let backends = backends(storage.clone(), prefix);
        let location = backends.repository().location();
        let key = open_key(backends.clone(), location.clone(), unlock).await?;
        Ok(Repo::new(backends, key, storage, prefix, location))
    }

    /// Backs up the directory tree `dir` (paths in the snapshot are relative to it): contents,
    /// modes, symlinks, mtimes. Every file is read. Every file must be readable, or nothing is
    /// written.
    pub async fn backup_dir(&self, dir: &Path, tags: &[String]) -> Result<Snapshot> {
        self.backup_tree(dir, tags, None).await
    }

    /// Backs up `dir` as the next snapshot of a series: the snapshots carrying every tag of
    /// `series` (a volume's). A file whose size and mtime match the newest snapshot of the series
    /// is taken from it unread (inodes and ctimes are not compared: a snapshot clone or a
    /// restored volume has new ones). Every file is read again when the series' newest full read
    /// is older than `full_every` (or there is none). The snapshot carries the series' tags and
    /// `read=full` or `read=changed`.
    pub async fn backup_dir_in_series(
        &self,
        dir: &Path,
        tags: &[String],
        series: &[String],
        full_every: chrono::Duration,
    ) -> Result<Snapshot> {
        let in_series: Vec<Snapshot> = self
            .snapshots()
            .await?
            .into_iter()
            .filter(|s| series.iter().all(|t| s.tags.contains(t)))
            .collect();
        let newest_full = in_series.iter().filter(|s| s.tags.iter().any(|t| t == READ_FULL)).map(|s| s.time).max();
        let parent = match (in_series.iter().max_by_key(|s| s.time), newest_full) {
            (Some(parent), Some(full)) if Utc::now() - full < full_every => Some(parent.id.clone()),
            _ => None,
        };
        let read = if parent.is_some() { READ_CHANGED } else { READ_FULL };
        // The snapshot joins its series whatever `tags` says.
        let mut tags = tags.to_vec();
        for tag in series.iter().cloned().chain([read.to_string()]) {
            if !tags.contains(&tag) {
                tags.push(tag);
            }
        }
        self.backup_tree(dir, &tags, parent).await
    }

    async fn backup_tree(&self, dir: &Path, tags: &[String], parent: Option<String>) -> Result<Snapshot> {
        let (expected, extensions) = survey(dir)?;
        let (backends, key, dir, tags) = (self.backends.clone(), self.key.clone(), dir.to_path_buf(), tags.to_vec());
        let location = self.location.clone();
        blocking("backup", &self.location.clone(), move || {
            let repo = reopen(&backends, &key, &location)?
                .to_indexed_ids()
                .map_err(|e| engine("backup", &location, e))?;
            let parent_options = match parent {
                Some(id) => ParentOptions::default().parents(vec![id]).ignore_ctime(true).ignore_inode(true),
                None => ParentOptions::default().force(true),
            };
            let options = BackupOptions::default().as_path(PathBuf::from("/")).parent_opts(parent_options);
            let mut snapshot = snapshot_options(&tags, &location)?;
            snapshot.description = Some(extensions.description());
            let snap = repo
                .backup(&options, &PathList::from_iter([dir.clone()]), snapshot)
                .map_err(|e| engine("backup", &location, e))?;
            let processed = snap.summary.as_ref().map_or(0, |s| s.total_files_processed);
            if processed < expected {
                return Err(RepoError::Source {
                    path: dir.display().to_string(),
                    reason: format!("{} of {expected} files could not be read during the backup", expected - processed),
                });
            }
            Ok(to_snapshot(&snap))
        })
        .await
    }

    /// Backs up in-memory documents (e.g. manifests) as files at the given relative paths.
    pub async fn backup_documents(&self, documents: Vec<(String, Bytes)>, tags: &[String]) -> Result<Snapshot> {
        let (backends, key, tags) = (self.backends.clone(), self.key.clone(), tags.to_vec());
        let location = self.location.clone();
        blocking("backup", &self.location.clone(), move || {
            let repo = reopen(&backends, &key, &location)?
                .to_indexed_ids()
                .map_err(|e| engine("backup", &location, e))?;
            let source = Documents::new(documents)?;
            let snap = repo
                .archive(
                    &BackupOptions::default().parent_opts(ParentOptions::default().force(true)),
                    &source,
                    snapshot_options(&tags, &location)?,
                    &[PathBuf::from("/")],
                )
                .map_err(|e| engine("backup", &location, e))?;
            Ok(to_snapshot(&snap))
        })
        .await
    }

    /// Forgets a snapshot: its file gets a delete marker; the data stays (and stays locked).
    pub async fn forget(&self, id: &str) -> Result<()> {
        let snapshot = self.find(id).await?;
        let (backends, key, location) = (self.backends.clone(), self.key.clone(), self.location.clone());
        blocking("forget", &self.location.clone(), move || {
            let repo = reopen(&backends, &key, &location)?;
            let id: Id = snapshot.id.parse().map_err(|_| RepoError::SnapshotNotFound {
                id: snapshot.id.clone(),
                location: location.clone(),
            })?;
            repo.delete_snapshots(&[id.into()]).map_err(|e| engine("forget", &location, e))
        })
        .await
    }

    /// A read-only handle on the same repository as it is now.
    pub fn read_only(&self) -> Repo<ReadOnly> {
        Repo::new(
            self.backends.clone(),
            self.key.clone(),
            self.storage.clone(),
            &self.prefix,
            self.location.clone(),
        )
    }
}

impl Repo<ReadOnly> {
    /// Opens the repository under `prefix` as it was at `at`: the store's versions at that time,
    /// whatever was overwritten or deleted since. Nothing can be written through it.
    pub async fn open_at(
        storage: Arc<dyn VersionedStorage>,
        prefix: &str,
        at: Time,
        password: &str,
    ) -> Result<Repo<ReadOnly>> {
        Self::open_at_with(storage, prefix, at, Unlock::Password(password)).await
    }

    /// [`Repo::open_at`] with the repository's password or its key.
    pub async fn open_at_with(
        storage: Arc<dyn VersionedStorage>,
        prefix: &str,
        at: Time,
        unlock: Unlock<'_>,
    ) -> Result<Repo<ReadOnly>> {
        check_not_future(at, CLOCK_SKEW)?;
        let view = Arc::new(PointInTime::new(storage, prefix, at).await?.with_content_addresses(backend::content_address));
        let backends = backends(view.clone(), prefix);
        let location = backends.repository().location();
        let key = open_key(backends.clone(), location.clone(), unlock).await?;
        let mut repo = Repo::new(backends, key, view.clone(), prefix, location);
        repo.view = Some(view);
        Ok(repo)
    }

    /// The same repository as of another time, from a version listing already made and with the
    /// key this one was opened with (no listing request, no key derivation): for reading one
    /// repository at many times. The key decides nothing about what is believed: every file is
    /// still checked against its content address in the view of that time.
    pub fn at_time(&self, storage: Arc<dyn VersionedStorage>, at: Time, versions: &[crate::objectstore::storage::Version]) -> Result<Repo<ReadOnly>> {
        check_not_future(at, CLOCK_SKEW)?;
        let view = Arc::new(PointInTime::from_versions(storage, &self.prefix, at, versions).with_content_addresses(backend::content_address));
        let backends = backends(view.clone(), &self.prefix);
        let location = backends.repository().location();
        let mut repo = Repo::new(backends, self.key.clone(), view.clone(), &self.prefix, location);
        repo.view = Some(view);
        Ok(repo)
    }

    /// Opens as of `at` from a version listing already made (see [`PointInTime::from_versions`]).
    pub async fn open_at_listed(
        storage: Arc<dyn VersionedStorage>,
        prefix: &str,
        at: Time,
        versions: &[crate::objectstore::storage::Version],
        password: &str,
    ) -> Result<Repo<ReadOnly>> {
        check_not_future(at, CLOCK_SKEW)?;
        let view = Arc::new(PointInTime::from_versions(storage, prefix, at, versions).with_content_addresses(backend::content_address));
        let backends = backends(view.clone(), prefix);
        let location = backends.repository().location();
        let key = open_key(backends.clone(), location.clone(), Unlock::Password(password)).await?;
        let mut repo = Repo::new(backends, key, view.clone(), prefix, location);
        repo.view = Some(view);
        Ok(repo)
    }

    /// The versions the view passed over so far (forged, damaged, or of untrusted time), and why.
    pub fn skipped(&self) -> Vec<String> {
        self.view.as_ref().map(|v| v.skipped()).unwrap_or_default()
    }
}

/// Opens with the password (the slow key derivation, once) or the master key (its config must
/// decrypt with it) and keeps the master key.
async fn open_key(backends: RepositoryBackends, location: String, unlock: Unlock<'_>) -> Result<MasterKey> {
    let credentials = match unlock {
        Unlock::Password(password) => Credentials::password(password),
        Unlock::Key(key) => Credentials::Masterkey(key.0.clone()),
    };
    blocking("open", &location.clone(), move || {
        if !has_config(&backends, &location)? {
            return Err(RepoError::NoRepository { location });
        }
        let by_key = matches!(credentials, Credentials::Masterkey(_));
        let repo = Repository::new(&options(), &backends)
            .map_err(|e| engine("open", &location, e))?
            .open(&credentials)
            .map_err(|e| match engine("open", &location, e) {
                // With a key there is no key file to try: a config that does not decrypt means
                // another key (an outage or a forged config is told apart by the store's answer).
                RepoError::Engine { .. } if by_key => RepoError::WrongKey { location: location.clone() },
                other => other,
            })?;
        Ok(repo.key())
    })
    .await
}

type IndexedRepository = Repository<rustic_core::IndexedFullStatus>;

fn reopen(
    backends: &RepositoryBackends,
    key: &MasterKey,
    location: &str,
) -> Result<Repository<rustic_core::OpenStatus>> {
    Repository::new(&options(), backends)
        .and_then(|r| r.open(&Credentials::Masterkey(key.clone())))
        .map_err(|e| engine("open", location, e))
}

fn snapshot_options(tags: &[String], location: &str) -> Result<SnapshotFile> {
    let mut options = SnapshotOptions::default().host("k10".to_string());
    for tag in tags {
        if tag.contains(',') {
            return Err(RepoError::Engine {
                op: "backup",
                location: location.to_string(),
                message: format!("tag {tag:?} contains a comma"),
            });
        }
        options = options.add_tags(tag).map_err(|e| engine("backup", location, e))?;
    }
    options.to_snapshot().map_err(|e| engine("backup", location, e))
}

fn to_snapshot(s: &SnapshotFile) -> Snapshot {
    let summary = s.summary.clone().unwrap_or_default();
    Snapshot {
        id: s.id.to_hex().to_string(),
        time: chrono::DateTime::from_timestamp(s.time.timestamp().as_second(), 0).unwrap_or_default(),
        tags: s.tags.iter().map(ToString::to_string).collect(),
        files: summary.total_files_processed,
        bytes: summary.total_bytes_processed,
        bytes_added: summary.data_added,
        files_unread: summary.files_unmodified,
        files_new: summary.files_new,
        files_changed: summary.files_changed,
        content_added: summary.data_added_files,
        content_added_stored: summary.data_added_files_packed,
        extensions: s.description.as_deref().and_then(Extensions::from_description),
    }
}

impl<M: Send + Sync + 'static> Repo<M> {
    fn new(backends: RepositoryBackends, key: MasterKey, storage: Arc<dyn Storage>, prefix: &str, location: String) -> Self {
        Repo {
            view: None,
            backends,
            key,
            storage,
            prefix: prefix.to_string(),
            location,
            _mode: PhantomData,
        }
    }

    pub fn location(&self) -> &str {
        &self.location
    }

    /// The master key this repository was opened with, for a data mover's Secret.
    pub fn key(&self) -> RepoKey {
        RepoKey(self.key.clone())
    }

    /// The repository's snapshots, oldest first.
    pub async fn snapshots(&self) -> Result<Vec<Snapshot>> {
        let (backends, key, location) = (self.backends.clone(), self.key.clone(), self.location.clone());
        blocking("list snapshots", &self.location.clone(), move || {
            let repo = reopen(&backends, &key, &location)?;
            let mut all = repo.get_all_snapshots().map_err(|e| engine("list snapshots", &location, e))?;
            all.sort();
            Ok(all.iter().map(to_snapshot).collect())
        })
        .await
    }

    async fn find(&self, id: &str) -> Result<Snapshot> {
        self.snapshots()
            .await?
            .into_iter()
            .find(|s| s.id == id || (id.len() >= 8 && s.id.starts_with(id)))
            .ok_or_else(|| RepoError::SnapshotNotFound {
                id: id.to_string(),
                location: self.location.clone(),
            })
    }

    /// Runs `work` on the blocking pool with the repository fully indexed and the snapshot `id`
    /// loaded (`work` gets the repository, the snapshot, and the repository's location).
    async fn with_snapshot<T: Send + 'static>(
        &self,
        op: &'static str,
        id: &str,
        work: impl FnOnce(&IndexedRepository, &SnapshotFile, &str) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let snapshot = self.find(id).await?;
        let (backends, key, location) = (self.backends.clone(), self.key.clone(), self.location.clone());
        blocking(op, &self.location.clone(), move || {
            let repo = reopen(&backends, &key, &location)?
                .to_indexed()
                .map_err(|e| engine(op, &location, e))?;
            let snap = repo
                .get_snapshots(&[snapshot.id.as_str()])
                .map_err(|e| engine(op, &location, e))?
                .remove(0);
            work(&repo, &snap, &location)
        })
        .await
    }

    /// When the store received the snapshot: the `LastModified` of its file (the store's clock,
    /// not the writer's), which is what a later point-in-time view must reach.
    pub async fn stored_at(&self, id: &str) -> Result<Time> {
        let snapshot = self.find(id).await?;
        let key = format!("{}{}/{}", self.prefix, FileType::Snapshot.dirname(), snapshot.id);
        Ok(self.storage.stat(&key).await?.last_modified)
    }

    /// Restores a snapshot into `dest`: contents, modes, owners, symlinks, hard links, mtimes,
    /// extended attributes. `dest` must be new or empty, or hold what an interrupted restore of
    /// the same snapshot left there: then only what is missing is fetched (see [`restorer`]).
    /// If the repository is damaged, the error names the damage and the files, and `dest` is left
    /// empty; after an outage or on a full volume, what was written stays for the next attempt.
    pub async fn restore(&self, id: &str, dest: &Path) -> Result<Restored> {
        self.find(id).await?;
        let (created, occupied) = prepare_destination(dest)?;
        let target = dest.to_path_buf();
        let (storage, key, prefix) = (self.storage.clone(), self.key.clone(), self.prefix.clone());
        let runtime = Handle::current();
        let result = self.with_snapshot("restore", id, move |repo, snap, location| {
            let fail = |e: Box<RusticError>| engine("restore", location, e);
            let root = repo.node_from_snapshot_and_path(snap, "").map_err(&fail)?;
            let ls_options = LsOptions::default();
            let mut restored = Restored::default();
            let mut paths = std::collections::HashSet::new();
            for entry in repo.ls(&root, &ls_options).map_err(&fail)? {
                let (path, node) = entry.map_err(&fail)?;
                match node.node_type {
                    NodeType::Dir => restored.dirs += 1,
                    _ => {
                        restored.files += 1;
                        restored.bytes += node.meta.size;
                    }
                }
                if occupied {
                    paths.insert(path);
                }
            }
            if occupied {
                if let Some(extra) = foreign_entry(&target, &paths) {
                    return Err(RepoError::DestinationNotEmpty(format!("{} ({} is not in snapshot {})", target.display(), extra.display(), &snap.id.to_hex()[..8])));
                }
            }
            // The contents, pack by pack.
            let index = |id: &rustic_core::DataId| {
                let entry = repo.get_index_entry(id)?;
                let l = entry.location;
                Ok((entry.pack.to_hex().to_string(), u64::from(l.offset), u64::from(l.length), l.uncompressed_length.map(|n| n.get())))
            };
            let plan = restorer::plan(repo.ls(&root, &ls_options).map_err(&fail)?, index, &target, fail)?;
            let backend = StorageBackend::new(storage.clone(), &prefix, runtime.clone());
            let stats = plan.run(storage, &backend, &key, &runtime, &target)?;
            (restored.written, restored.kept) = (stats.written, stats.kept);
            // Then the rest (directories, links, owners, modes, times, attributes). Owners by
            // number (a container's user names mean nothing): a restored volume is usable by
            // the same non-root workloads; where the restore may not give files away (not
            // root), they stay the restorer's.
            let dest = LocalDestination::new(&target.to_string_lossy(), true, false).map_err(&fail)?;
            let options = RestoreOptions::default().numeric_id(true);
            let ls = repo.ls(&root, &ls_options).map_err(&fail)?;
            let metadata = repo.prepare_restore(&options, ls, &dest, false).map_err(&fail)?;
            if metadata.restore_size > 0 {
                return Err(RepoError::Engine {
                    op: "restore",
                    location: location.to_string(),
                    message: format!("{} bytes were left unwritten by the contents pass", metadata.restore_size),
                });
            }
            let ls = repo.ls(&root, &ls_options).map_err(&fail)?;
            repo.restore(metadata, &options, ls, &dest).map_err(&fail)?;
            Ok(restored)
        })
        .await;
        match result {
            Ok(r) => Ok(r),
            // Kept for the next attempt, which fetches only what is missing.
            Err(err @ (RepoError::VolumeFull { .. } | RepoError::Storage(_) | RepoError::DestinationNotEmpty(_))) => Err(err),
            Err(err) => {
                clear_destination(dest, created);
                // Name the damage when the engine stopped on it (an unreadable tree).
                if matches!(err, RepoError::Engine { .. }) {
                    match self.check(false).await {
                        Err(damaged @ RepoError::Damaged { .. }) => return Err(damaged),
                        // The engine stopped because the store failed, not the data.
                        Err(outage @ RepoError::Storage(_)) => return Err(outage),
                        _ => {}
                    }
                }
                Err(err)
            }
        }
    }

    /// The paths of the files in a snapshot.
    pub async fn list_documents(&self, id: &str) -> Result<Vec<String>> {
        self.with_snapshot("list", id, |repo, snap, location| {
            let root = repo.node_from_snapshot_and_path(snap, "").map_err(|e| engine("list", location, e))?;
            let mut out = Vec::new();
            for entry in repo.ls(&root, &LsOptions::default()).map_err(|e| engine("list", location, e))? {
                let (path, node) = entry.map_err(|e| engine("list", location, e))?;
                if matches!(node.node_type, NodeType::File) {
                    out.push(path.to_string_lossy().into_owned());
                }
            }
            Ok(out)
        })
        .await
    }

    /// Reads every file of a snapshot whose path starts with `prefix` into memory, by path (one
    /// opening of the repository for all of them).
    pub async fn read_documents(&self, id: &str, prefix: &str) -> Result<Vec<(String, Bytes)>> {
        let prefix = prefix.to_string();
        self.with_snapshot("read", id, move |repo, snap, location| {
            let fail = |e: Box<RusticError>| engine("read", location, e);
            let root = repo.node_from_snapshot_and_path(snap, "").map_err(fail)?;
            let mut out = Vec::new();
            for entry in repo.ls(&root, &LsOptions::default()).map_err(fail)? {
                let (path, node) = entry.map_err(fail)?;
                let path = path.to_string_lossy().into_owned();
                if matches!(node.node_type, NodeType::File) && path.starts_with(&prefix) {
                    let mut data = Vec::with_capacity(node.meta.size as usize);
                    repo.dump(&node, &mut data).map_err(fail)?;
                    out.push((path, Bytes::from(data)));
                }
            }
            Ok(out)
        })
        .await
    }

    /// Reads one file of a snapshot into memory.
    pub async fn read_document(&self, id: &str, path: &str) -> Result<Bytes> {
        let path = path.to_string();
        self.with_snapshot("read", id, move |repo, snap, location| {
            let node = match repo.node_from_snapshot_and_path(snap, &path) {
                Ok(node) => node,
                // Not there, or its tree unreadable: check which, and name the damage.
                Err(_) => {
                    let results = repo.check(CheckOptions::default()).map_err(|e| engine("read", location, e))?;
                    if !results.0.is_empty() {
                        let detail = results.0.iter().map(|(_, e)| one_line(&e.to_string())).collect::<Vec<_>>().join("; ");
                        return Err(RepoError::Damaged { location: location.to_string(), detail });
                    }
                    return Err(RepoError::PathNotFound {
                        id: snap.id.to_hex().to_string(),
                        path,
                    });
                }
            };
            let mut out = Vec::with_capacity(node.meta.size as usize);
            repo.dump(&node, &mut out).map_err(|e| engine("read", location, e))?;
            Ok(Bytes::from(out))
        })
        .await
    }

    /// Compares a snapshot with the tree at `dir`: every entry's type, content, permission bits
    /// and symlink target, and nothing extra in `dir`. Returns the differences (empty: identical).
    pub async fn compare(&self, id: &str, dir: &Path) -> Result<Vec<String>> {
        use std::os::unix::fs::PermissionsExt;
        let dir = dir.to_path_buf();
        self.with_snapshot("compare", id, move |repo, snap, location| {
            let root = repo
                .node_from_snapshot_and_path(snap, "")
                .map_err(|e| engine("compare", location, e))?;
            let mut differences = Vec::new();
            let mut seen = std::collections::BTreeSet::new();
            for entry in repo.ls(&root, &LsOptions::default()).map_err(|e| engine("compare", location, e))? {
                let (path, node) = entry.map_err(|e| engine("compare", location, e))?;
                let local = dir.join(&path);
                seen.insert(path.clone());
                let name = path.display();
                let Ok(meta) = std::fs::symlink_metadata(&local) else {
                    differences.push(format!("{name}: missing"));
                    continue;
                };
                {
                    use std::os::unix::fs::MetadataExt;
                    let (uid, gid) = (node.meta.uid.unwrap_or(meta.uid()), node.meta.gid.unwrap_or(meta.gid()));
                    if (meta.uid(), meta.gid()) != (uid, gid) {
                        differences.push(format!("{name}: owner {}:{}, expected {uid}:{gid}", meta.uid(), meta.gid()));
                    }
                }
                if let Some(mode) = node.meta.mode {
                    if !meta.file_type().is_symlink() && meta.permissions().mode() & 0o777 != mode & 0o777 {
                        differences.push(format!("{name}: mode {:o}, expected {:o}", meta.permissions().mode() & 0o777, mode & 0o777));
                    }
                }
                match &node.node_type {
                    NodeType::Dir if !meta.is_dir() => differences.push(format!("{name}: not a directory")),
                    NodeType::Symlink { .. } => match std::fs::read_link(&local) {
                        Ok(target) if target == node.node_type.to_link() => {}
                        Ok(target) => differences.push(format!("{name}: links to {}, expected {}", target.display(), node.node_type.to_link().display())),
                        Err(_) => differences.push(format!("{name}: not a symlink")),
                    },
                    NodeType::File => {
                        if !meta.is_file() {
                            differences.push(format!("{name}: not a file"));
                            continue;
                        }
                        let mut expected = Vec::with_capacity(node.meta.size as usize);
                        repo.dump(&node, &mut expected).map_err(|e| engine("compare", location, e))?;
                        match std::fs::read(&local) {
                            Ok(actual) if actual == expected => {}
                            Ok(actual) => differences.push(format!("{name}: content differs ({} bytes, expected {})", actual.len(), expected.len())),
                            Err(e) => differences.push(format!("{name}: unreadable: {e}")),
                        }
                    }
                    _ => {}
                }
            }
            // Nothing extra on disk.
            let mut stack = vec![dir.clone()];
            while let Some(d) = stack.pop() {
                for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
                    let path = entry.path();
                    let rel = path.strip_prefix(&dir).unwrap_or(&path).to_path_buf();
                    if rel.as_os_str() == "lost+found" {
                        continue;
                    }
                    if !seen.contains(&rel) {
                        differences.push(format!("{}: not in the snapshot", rel.display()));
                    } else if entry.file_type().is_ok_and(|t| t.is_dir()) {
                        stack.push(path);
                    }
                }
            }
            Ok(differences)
        })
        .await
    }

    /// Checks the repository's structure, and with `read_data` every pack's content. Any finding
    /// is an error naming what is damaged.
    pub async fn check(&self, read_data: bool) -> Result<()> {
        let (backends, key, location) = (self.backends.clone(), self.key.clone(), self.location.clone());
        blocking("check", &self.location.clone(), move || {
            let repo = reopen(&backends, &key, &location)?;
            let results = repo
                .check(CheckOptions::default().read_data(read_data))
                .map_err(|e| engine("check", &location, e))?;
            if results.0.is_empty() {
                return Ok(());
            }
            let detail = results
                .0
                .iter()
                .map(|(_, e)| one_line(&e.to_string()))
                .collect::<Vec<_>>()
                .join("; ");
            Err(RepoError::Damaged { location, detail })
        })
        .await
    }
}

/// Counts the regular files under `dir` and makes sure each can be read.
/// Counts the files of a tree (opening each: a file that cannot be read fails the backup before
/// anything is written) and their extensions.
fn survey(dir: &Path) -> Result<(u64, Extensions)> {
    let fail = |path: &Path, reason: String| RepoError::Source {
        path: path.display().to_string(),
        reason,
    };
    let meta = std::fs::symlink_metadata(dir).map_err(|e| fail(dir, e.to_string()))?;
    if !meta.is_dir() {
        return Err(fail(dir, "not a directory".into()));
    }
    let mut files = 0;
    let mut extensions = std::collections::HashMap::<String, u64>::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).map_err(|e| fail(&d, e.to_string()))? {
            let entry = entry.map_err(|e| fail(&d, e.to_string()))?;
            let path = entry.path();
            let kind = entry.file_type().map_err(|e| fail(&path, e.to_string()))?;
            if kind.is_dir() {
                stack.push(path);
            } else if kind.is_file() {
                std::fs::File::open(&path).map_err(|e| fail(&path, e.to_string()))?;
                files += 1;
                *extensions.entry(Extensions::of(&entry.file_name().to_string_lossy())).or_default() += 1;
            }
        }
    }
    Ok((files, Extensions::keep_most_common(extensions)))
}

/// Returns whether `dest` was created, and whether it holds anything (a fresh filesystem's
/// lost+found does not count).
fn prepare_destination(dest: &Path) -> Result<(bool, bool)> {
    match std::fs::read_dir(dest) {
        Ok(entries) => Ok((false, entries.flatten().any(|e| e.file_name() != "lost+found"))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(dest).map_err(|e| RepoError::Source {
                path: dest.display().to_string(),
                reason: e.to_string(),
            })?;
            Ok((true, false))
        }
        Err(e) => Err(RepoError::Source {
            path: dest.display().to_string(),
            reason: e.to_string(),
        }),
    }
}

/// The first entry under `dest` that is not one of `paths` (relative), if any.
fn foreign_entry(dest: &Path, paths: &std::collections::HashSet<PathBuf>) -> Option<PathBuf> {
    let mut stack = vec![dest.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            let rel = path.strip_prefix(dest).unwrap_or(&path).to_path_buf();
            if rel.as_os_str() == "lost+found" {
                continue;
            }
            if !paths.contains(&rel) {
                return Some(rel);
            }
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(path);
            }
        }
    }
    None
}

/// Removes what a failed restore wrote.
fn clear_destination(dest: &Path, created: bool) {
    if created {
        let _ = std::fs::remove_dir_all(dest);
    } else if let Ok(entries) = std::fs::read_dir(dest) {
        for entry in entries.flatten() {
            let path = entry.path();
            let _ = if path.is_dir() && !path.is_symlink() {
                std::fs::remove_dir_all(&path)
            } else {
                std::fs::remove_file(&path)
            };
        }
    }
}

/// In-memory documents as a backup source: regular files (mode 0644) at relative paths.
struct Documents {
    files: Vec<(PathBuf, Bytes)>,
}

impl Documents {
    fn new(mut documents: Vec<(String, Bytes)>) -> Result<Documents> {
        documents.sort_by(|a, b| a.0.cmp(&b.0));
        let mut files = Vec::with_capacity(documents.len());
        for (path, data) in documents {
            let p = PathBuf::from(&path);
            let valid = !path.is_empty()
                && p.is_relative()
                && p.components().all(|c| matches!(c, std::path::Component::Normal(_)));
            if !valid {
                return Err(RepoError::Source {
                    path,
                    reason: "document paths must be relative, without '..'".into(),
                });
            }
            files.push((p, data));
        }
        Ok(Documents { files })
    }
}

impl ReadSource for Documents {
    type Open = std::io::Cursor<Bytes>;
    type Iter = std::vec::IntoIter<RusticResult<ReadSourceEntry<std::io::Cursor<Bytes>>>>;

    fn size(&self) -> RusticResult<Option<u64>> {
        Ok(Some(self.files.iter().map(|(_, d)| d.len() as u64).sum()))
    }

    fn entries(&self) -> Self::Iter {
        let now = rustic_core::jiff::Timestamp::now();
        self.files
            .iter()
            .map(|(path, data)| {
                let meta = Metadata {
                    mode: Some(0o644),
                    mtime: Some(now),
                    size: data.len() as u64,
                    ..Default::default()
                };
                let name = path.file_name().unwrap_or_default();
                Ok(ReadSourceEntry {
                    path: path.clone(),
                    node: Node::new_node(name, NodeType::File, meta),
                    open: Some(std::io::Cursor::new(data.clone())),
                })
            })
            .collect::<Vec<_>>()
            .into_iter()
    }
}
