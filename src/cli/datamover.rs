//! `kubectl-k10 datamover …`: the in-cluster data mover, run by Jobs that mount a volume.
//! Not meant to be typed by people; its settings come from the Job (see [`crate::datamover`]).

use std::path::PathBuf;

use crate::datamover::{self, tree, Target};
use crate::repo::RepoError;

/// The as-of time of a data mover: the store's clock, so not checked against this node's.
fn store_time(text: &str) -> Result<chrono::DateTime<chrono::Utc>, RepoError> {
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|t| t.to_utc())
        .map_err(|_| RepoError::MalformedTime(text.to_string()))
}

/// What the store's retry policy did, for the Job's log.
fn store_json(s: &crate::objectstore::retry::Stats) -> serde_json::Value {
    serde_json::json!({"requests": s.attempts, "retried": s.retries, "throttled": s.throttled})
}

#[derive(Debug, clap::Subcommand)]
pub enum DataMoverCommand {
    /// Back up the directory tree at --path into the repository.
    Backup {
        #[arg(long)]
        path: PathBuf,
        #[command(flatten)]
        target: Target,
        /// Snapshot tags (k=v), repeatable.
        #[arg(long = "tag")]
        tags: Vec<String>,
        /// Back up as the next snapshot of the series carrying all these tags (a volume's):
        /// files with the size and mtime of its newest snapshot are not read again.
        #[arg(long = "series")]
        series: Vec<String>,
    },
    /// Restore a snapshot into --path (new or empty) from the repository as of --as-of.
    Restore {
        #[arg(long)]
        path: PathBuf,
        #[arg(long)]
        snapshot: String,
        /// The store time to open the repository as of (RFC 3339).
        #[arg(long)]
        as_of: String,
        #[command(flatten)]
        target: Target,
    },
    /// Compare the tree at --path with a snapshot of the repository as of --as-of.
    Verify {
        #[arg(long)]
        path: PathBuf,
        #[arg(long)]
        snapshot: String,
        #[arg(long)]
        as_of: String,
        #[command(flatten)]
        target: Target,
    },
    /// Write about --mib MiB of sample data (files of mixed sizes, modes, symlinks) into --path,
    /// which must be new or empty: the application data of a drill.
    Sample {
        #[arg(long)]
        path: PathBuf,
        #[arg(long, default_value_t = 64)]
        mib: usize,
    },
    /// The drill's ransomware: rewrite every file under --path with random bytes as
    /// NAME.locked. Destroys the data: refused without --destroy-data.
    #[command(hide = true)]
    DrillEncrypt {
        #[arg(long)]
        path: PathBuf,
        #[arg(long)]
        destroy_data: bool,
    },
    /// Print a digest of the tree at --path (every entry's content hash, mode, mtime, symlink
    /// target) as one JSON line, to compare volumes byte for byte across clusters.
    Digest {
        #[arg(long)]
        path: PathBuf,
    },
    /// Check that this process's user may create, write and remove a file in the directory
    /// --path, as an application running as that user does in its volume.
    Writable {
        #[arg(long)]
        path: PathBuf,
    },
}

pub async fn run(cmd: DataMoverCommand) -> anyhow::Result<()> {
    match cmd {
        DataMoverCommand::Backup { path, target, tags, series } => {
            let (snap, store) = datamover::backup(&target, &path, &tags, &series).await?;
            println!(
                "{}",
                serde_json::json!({
                    "snapshot": snap.id, "files": snap.files, "unread": snap.files_unread, "bytes": snap.bytes,
                    "uploaded": snap.bytes_added, "store": store_json(&store),
                })
            );
        }
        DataMoverCommand::Restore {
            path,
            snapshot,
            as_of,
            target,
        } => {
            let at = store_time(&as_of)?;
            let (restored, store) = datamover::restore(&target, &snapshot, at, &path).await?;
            println!(
                "{}",
                serde_json::json!({
                    "snapshot": snapshot, "files": restored.files, "dirs": restored.dirs, "bytes": restored.bytes,
                    "written": restored.written, "kept": restored.kept, "store": store_json(&store),
                })
            );
        }
        DataMoverCommand::Verify {
            path,
            snapshot,
            as_of,
            target,
        } => {
            let at = store_time(&as_of)?;
            let differences = datamover::verify(&target, &snapshot, at, &path).await?;
            for d in &differences {
                println!("differs: {d}");
            }
            if !differences.is_empty() {
                anyhow::bail!("{} difference(s) between the volume and snapshot {snapshot}", differences.len());
            }
            println!("{}", serde_json::json!({"snapshot": snapshot, "identical": true}));
        }
        DataMoverCommand::Sample { path, mib } => {
            if tree::holds_data(&path) {
                anyhow::bail!("{} is not empty: sample data is written only into a new or empty volume", path.display());
            }
            tree::sample(&path, mib).map_err(|e| anyhow::anyhow!("cannot write sample data into {}: {e}", path.display()))?;
            let d = tree::digest(&path)?;
            println!("{}", serde_json::json!({"files": d.files, "bytes": d.bytes}));
        }
        DataMoverCommand::DrillEncrypt { path, destroy_data } => {
            if !destroy_data {
                anyhow::bail!("this rewrites every file under {} with random bytes, as ransomware does (the drill's attacker); pass --destroy-data to do it", path.display());
            }
            let (files, bytes) = tree::encrypt_like_ransomware(&path, "locked").map_err(|e| anyhow::anyhow!("cannot rewrite {}: {e}", path.display()))?;
            println!("{}", serde_json::json!({"files": files, "bytes": bytes}));
        }
        DataMoverCommand::Digest { path } => {
            let d = tree::digest(&path).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
            println!("{}", serde_json::to_string(&d)?);
        }
        DataMoverCommand::Writable { path } => {
            let user = tree::write_probe(&path).map_err(|e| anyhow::anyhow!("user {} cannot write in {}: {e}", tree::current_user(), path.display()))?;
            println!("{}", serde_json::json!({"user": user, "writable": path}));
        }
    }
    Ok(())
}
