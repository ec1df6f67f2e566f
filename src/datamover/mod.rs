//! The data mover: the in-cluster side of volume backups and restores. A Job mounts the volume
//! and runs `kubectl-k10 datamover backup|restore …`; everything it needs comes as arguments
//! (no secrets) and environment variables from a Secret (the store's keys, the repository's
//! master key: no key derivation in the mover; a password is taken too, for use by hand).
//! It needs no access to the Kubernetes API.

pub mod tree;

use std::path::Path;
use std::sync::Arc;

use crate::objectstore::lock::ProtectionPeriod;
use crate::objectstore::retry::Stats;
use crate::objectstore::s3::S3Storage;
use crate::objectstore::storage::Time;
use crate::objectstore::{Credentials, Location, ObjectStore, StoreError};
use crate::repo::{ReadOnly, Repo, RepoError, RepoKey, Restored, Snapshot, Unlock};

/// Keeps the process's resident memory near what it holds. glibc's malloc gives threads their
/// own arenas (up to 8 per core) and, once a large block has been freed, serves blocks up to
/// 32 MiB from them, where freed memory stays resident: a backup holding 160 MiB of packs and
/// blobs was 250 MiB resident. Two arenas, and blocks above 9 MiB (packs and pack reads; blobs
/// are at most 8 MiB and stay in the arenas, their pages reused) mapped and unmapped on their
/// own. Fixing the mmap threshold also fixes the trim threshold at its 128 KiB default, which
/// gives memory back to the kernel after nearly every file of a tree of small files (100,000
/// files backed up in 40 s instead of 16 s): 16 MiB. Measured by `cargo bench --bench shapes`
/// (README). To be called first thing in `main`, before threads start.
pub fn bound_heap() {
    #[cfg(target_env = "gnu")]
    // SAFETY: mallopt only changes allocator parameters; called before other threads exist.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
        libc::mallopt(libc::M_MMAP_THRESHOLD, 9 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 16 << 20);
    }
}

/// Environment variables the Job's Secret provides.
pub const ENV_ACCESS_KEY: &str = "AWS_ACCESS_KEY_ID";
pub const ENV_SECRET_KEY: &str = "AWS_SECRET_ACCESS_KEY";
pub const ENV_KEY: &str = "K10_REPO_KEY";
pub const ENV_PASSWORD: &str = "K10_REPO_PASSWORD";

/// Where the repository is: the non-secret half of a data mover's settings.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub struct Target {
    /// The repository prefix in the bucket.
    #[arg(long)]
    pub repository: String,
    #[arg(long)]
    pub bucket: String,
    #[arg(long, default_value = "us-east-1")]
    pub region: String,
    #[arg(long)]
    pub endpoint: Option<String>,
    #[arg(long)]
    pub skip_ssl_verify: bool,
    /// Lock every write for this many days + 20 (an immutable profile's protection period).
    #[arg(long)]
    pub protection_days: Option<u32>,
}

#[derive(Debug, thiserror::Error)]
pub enum DataMoverError {
    #[error("environment variable {0} is not set: the data mover reads the store's keys and the repository key ({ENV_KEY}) or password ({ENV_PASSWORD}) from its Secret")]
    MissingEnv(&'static str),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Repo(#[from] RepoError),
    #[error(transparent)]
    Storage(#[from] crate::objectstore::storage::StorageError),
    #[error("invalid protection period: {0}")]
    Period(#[from] crate::objectstore::lock::PeriodError),
}

fn env(name: &'static str) -> Result<String, DataMoverError> {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .ok_or(DataMoverError::MissingEnv(name))
}

/// What opens the repository: the master key when the Secret has it, else the password.
enum Opener {
    Key(RepoKey),
    Password(String),
}

impl Opener {
    fn from_env() -> Result<Opener, DataMoverError> {
        match env(ENV_KEY) {
            Ok(text) => Ok(Opener::Key(RepoKey::parse(&text)?)),
            Err(_) => env(ENV_PASSWORD).map(Opener::Password),
        }
    }

    fn unlock(&self) -> Unlock<'_> {
        match self {
            Opener::Key(key) => Unlock::Key(key),
            Opener::Password(password) => Unlock::Password(password),
        }
    }
}

impl Target {
    fn storage(&self) -> Result<Arc<S3Storage>, DataMoverError> {
        let location = Location {
            endpoint: self.endpoint.clone(),
            region: self.region.clone(),
            bucket: self.bucket.clone(),
            skip_ssl_verify: self.skip_ssl_verify,
        };
        let credentials = Credentials {
            access_key_id: env(ENV_ACCESS_KEY)?,
            secret_access_key: env(ENV_SECRET_KEY)?,
        };
        let period = self.protection_days.map(ProtectionPeriod::from_days).transpose()?;
        Ok(Arc::new(S3Storage::new(ObjectStore::connect(&location, &credentials)?, period)))
    }

    /// The arguments that reproduce this target on a data mover's command line.
    pub fn args(&self) -> Vec<String> {
        let mut args = vec![
            "--repository".into(),
            self.repository.clone(),
            "--bucket".into(),
            self.bucket.clone(),
            "--region".into(),
            self.region.clone(),
        ];
        if let Some(e) = &self.endpoint {
            args.extend(["--endpoint".into(), e.clone()]);
        }
        if self.skip_ssl_verify {
            args.push("--skip-ssl-verify".into());
        }
        if let Some(d) = self.protection_days {
            args.extend(["--protection-days".into(), d.to_string()]);
        }
        args
    }
}

/// Backs up the tree at `path` into the (existing) repository, with `tags`; with `series` (a
/// volume's tags), as the next snapshot of that series, reading only files whose size or mtime
/// changed (and every file weekly: see [`Repo::backup_dir_in_series`]). Also returns what the
/// store's retry policy did.
pub async fn backup(target: &Target, path: &Path, tags: &[String], series: &[String]) -> Result<(Snapshot, Stats), DataMoverError> {
    let storage = target.storage()?;
    let repo = Repo::open_with(storage.clone(), &target.repository, Opener::from_env()?.unlock()).await?;
    let snapshot = if series.is_empty() {
        repo.backup_dir(path, tags).await?
    } else {
        repo.backup_dir_in_series(path, tags, series, crate::repo::FULL_READ_EVERY).await?
    };
    Ok((snapshot, storage.retry_stats()))
}

/// Restores a snapshot into `path` from the repository as it was at `at`. Also returns what the
/// store's retry policy did.
pub async fn restore(target: &Target, snapshot: &str, at: Time, path: &Path) -> Result<(Restored, Stats), DataMoverError> {
    let storage = target.storage()?;
    let repo = Repo::<ReadOnly>::open_at_with(storage.clone(), &target.repository, at, Opener::from_env()?.unlock()).await?;
    let restored = repo.restore(snapshot, path).await?;
    for skipped in repo.skipped() {
        tracing::warn!("passed over {skipped}");
    }
    Ok((restored, storage.retry_stats()))
}

/// Compares the tree at `path` with a snapshot of the repository as it was at `at`.
pub async fn verify(target: &Target, snapshot: &str, at: Time, path: &Path) -> Result<Vec<String>, DataMoverError> {
    let storage = target.storage()?;
    let repo = Repo::<ReadOnly>::open_at_with(storage, &target.repository, at, Opener::from_env()?.unlock()).await?;
    Ok(repo.compare(snapshot, path).await?)
}
