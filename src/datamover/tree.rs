//! Volume trees as a drill sees them: sample data to protect, and a digest of every entry
//! (content, mode, owner, mtime, symlink target, extended attributes) to compare a restored volume with the original,
//! byte for byte, inside the cluster (`kubectl-k10 datamover sample|digest`).

use std::collections::BTreeMap;
use std::io::Read;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

/// Deterministic pseudo-random bytes (xorshift): incompressible, and the same for the same seed.
pub fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// What the drill's ransomware does to a volume: every regular file under `root` is replaced by
/// random bytes of its size (at least 16) named `<name>.<extension>`. Returns the files and bytes
/// rewritten.
pub fn encrypt_like_ransomware(root: &Path, extension: &str) -> std::io::Result<(u64, u64)> {
    let (mut files, mut bytes) = (0, 0);
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            let kind = entry.file_type()?;
            let path = entry.path();
            if kind.is_dir() {
                stack.push(path);
            } else if kind.is_file() {
                let size = entry.metadata()?.len().max(16);
                let mut locked = path.clone().into_os_string();
                locked.push(format!(".{extension}"));
                std::fs::write(&locked, noise(0x5eed ^ files, size as usize))?;
                std::fs::remove_file(&path)?;
                files += 1;
                bytes += size;
            }
        }
    }
    Ok((files, bytes))
}

/// Owners (uid, gid) the sample gives some of its entries, as a volume shared by non-root
/// workloads has.
pub const SAMPLE_OWNERS: [(u32, u32); 3] = [(1000, 1000), (1001, 2000), (65534, 65534)];

/// The extended attribute the sample gives some of its entries.
pub const SAMPLE_XATTR: &str = "user.k10.sample";

/// `ENOTSUP` on Linux: the filesystem keeps no user extended attributes.
const ENOTSUP: i32 = 95;

/// A small tree with every kind of entry a volume holds: nested and empty directories, empty,
/// binary and text files, private and executable modes, a symlink and a dangling one, and (where
/// this process may give files away, as root) entries owned by other users and groups.
pub fn small(root: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(root.join("sub/deeper"))?;
    std::fs::create_dir_all(root.join("empty-dir"))?;
    std::fs::write(root.join("hello.txt"), b"hello\n")?;
    std::fs::write(root.join("empty"), b"")?;
    std::fs::write(root.join("sub/data.bin"), noise(7, 300_000))?;
    std::fs::write(root.join("sub/deeper/text.txt"), "line\n".repeat(10_000))?;
    std::fs::write(root.join("private"), b"mode 600")?;
    std::fs::set_permissions(root.join("private"), std::fs::Permissions::from_mode(0o600))?;
    std::fs::write(root.join("script.sh"), b"#!/bin/sh\necho hi\n")?;
    std::fs::set_permissions(root.join("script.sh"), std::fs::Permissions::from_mode(0o755))?;
    symlink("hello.txt", root.join("link-to-hello"))?;
    symlink("/nonexistent/target", root.join("dangling"))?;
    // Extended attributes (a POSIX ACL is one too), where the filesystem keeps user attributes.
    for (path, value) in [("hello.txt", &b"greeting"[..]), ("sub", &b"a directory's"[..])] {
        match xattr::set(root.join(path), SAMPLE_XATTR, value) {
            Err(e) if e.raw_os_error() == Some(ENOTSUP) => break,
            other => other?,
        }
    }
    let [(u1, g1), (u2, g2), (u3, g3)] = SAMPLE_OWNERS;
    for (path, uid, gid) in [("sub/deeper", u1, g1), ("sub/deeper/text.txt", u1, g1), ("private", u2, g2), ("link-to-hello", u3, g3)] {
        match std::os::unix::fs::lchown(root.join(path), Some(uid), Some(gid)) {
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => break,
            other => other?,
        }
    }
    Ok(())
}

/// About `mib` MiB in files of mixed sizes (large, medium, many small; one in five compressible),
/// plus the small tree.
pub fn sample(root: &Path, mib: usize) -> std::io::Result<()> {
    small(root)?;
    // Documents: what ransomware goes after first.
    std::fs::create_dir_all(root.join("docs"))?;
    for i in 0..12 {
        let body: String = (0..100).map(|line| format!("document {i}, paragraph {line}: the application's own words\n")).collect();
        std::fs::write(root.join(format!("docs/report-{i:02}.txt")), body)?;
    }
    let budget = mib * 1024 * 1024;
    let mut written = 0;
    let mut i = 0u64;
    let sizes = [8 << 20, 1 << 20, 200 << 10, 16 << 10, 1 << 10, 37];
    while written < budget {
        let size = sizes[(i as usize) % sizes.len()].min(budget - written).max(1);
        let dir = root.join(format!("mixed/d{}", i % 7));
        std::fs::create_dir_all(&dir)?;
        let data = if i.is_multiple_of(5) { "compressible ".repeat(size / 13 + 1).into_bytes()[..size].to_vec() } else { noise(i + 11, size) };
        std::fs::write(dir.join(format!("f{i}.bin")), data)?;
        written += size;
        i += 1;
    }
    Ok(())
}

/// One entry of a tree, as compared: every entry by its owner (`uid:gid`), directories by mode,
/// files by mode, mtime (seconds) and content hash, symlinks by target; files and directories by
/// their extended attributes (name → hex value), but the SELinux label a node gives each pod's
/// volume.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Entry {
    Dir {
        mode: u32,
        owner: String,
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        xattrs: BTreeMap<String, String>,
    },
    File {
        mode: u32,
        owner: String,
        mtime: i64,
        size: u64,
        sha256: String,
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        xattrs: BTreeMap<String, String>,
    },
    Symlink { target: String, owner: String },
}

/// Every entry under a root, by relative path, with the totals.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TreeDigest {
    pub entries: BTreeMap<String, Entry>,
    pub files: u64,
    pub bytes: u64,
}

impl TreeDigest {
    /// The paths whose entries differ between two trees (missing on either side included).
    pub fn differences(&self, other: &TreeDigest) -> Vec<String> {
        let mut paths: Vec<&String> = self.entries.keys().chain(other.entries.keys()).collect();
        paths.sort();
        paths.dedup();
        paths
            .into_iter()
            .filter(|p| self.entries.get(*p) != other.entries.get(*p))
            .map(|p| match (self.entries.get(p), other.entries.get(p)) {
                (Some(_), None) => format!("{p}: missing"),
                (None, Some(_)) => format!("{p}: unexpected"),
                (a, b) => format!("{p}: {a:?} != {b:?}"),
            })
            .collect()
    }
}

fn sha256_of(path: &Path) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// The SELinux label: the node sets it on each pod's volume, it is no data of the volume's.
const SELINUX_LABEL: &str = "security.selinux";

/// Every extended attribute of a file or directory (none where the filesystem keeps none).
fn xattrs_of(path: &Path) -> std::io::Result<BTreeMap<String, String>> {
    let names = match xattr::list(path) {
        Ok(names) => names,
        Err(e) if e.raw_os_error() == Some(ENOTSUP) => return Ok(BTreeMap::new()),
        Err(e) => return Err(e),
    };
    let mut out = BTreeMap::new();
    for name in names {
        let name = name.to_string_lossy().into_owned();
        if name == SELINUX_LABEL {
            continue;
        }
        let value = xattr::get(path, &name)?.unwrap_or_default();
        out.insert(name, value.iter().map(|b| format!("{b:02x}")).collect());
    }
    Ok(out)
}

/// This process's user and group, as `uid:gid`.
pub fn current_user() -> String {
    // The owner of a file this process creates is the process's own (/proc/self is owned by it).
    std::fs::metadata("/proc/self").map(|m| format!("{}:{}", m.uid(), m.gid())).unwrap_or_else(|_| "?".into())
}

/// Creates, writes, reads back and removes a file in `dir`, as an application writes to its
/// volume; returns the user (`uid:gid`) that did.
pub fn write_probe(dir: &Path) -> std::io::Result<String> {
    let probe = dir.join(format!(".k10-write-probe-{}", std::process::id()));
    std::fs::write(&probe, b"k10 write probe\n")?;
    let back = std::fs::read(&probe);
    std::fs::remove_file(&probe)?;
    if back? != b"k10 write probe\n" {
        return Err(std::io::Error::other("the probe file read back differs from what was written"));
    }
    Ok(current_user())
}

/// A fresh filesystem's own directory, which is no data of the volume's.
const LOST_AND_FOUND: &str = "lost+found";

/// Whether a directory holds anything but a fresh filesystem's `lost+found` (false when it does
/// not exist).
pub fn holds_data(dir: &Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|mut entries| entries.any(|e| e.is_ok_and(|e| e.file_name() != LOST_AND_FOUND)))
}

/// Reads every entry under `root` (not following symlinks), but a top-level `lost+found`. Other
/// file types are refused: a volume of the drill holds none.
pub fn digest(root: &Path) -> std::io::Result<TreeDigest> {
    let mut out = TreeDigest::default();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let path = entry?.path();
            let rel = path.strip_prefix(root).unwrap_or(&path).to_string_lossy().into_owned();
            if rel == LOST_AND_FOUND {
                continue;
            }
            let meta = std::fs::symlink_metadata(&path)?;
            let mode = meta.permissions().mode() & 0o7777;
            let owner = format!("{}:{}", meta.uid(), meta.gid());
            let e = if meta.file_type().is_symlink() {
                Entry::Symlink {
                    target: std::fs::read_link(&path)?.to_string_lossy().into_owned(),
                    owner,
                }
            } else if meta.is_dir() {
                stack.push(path.clone());
                Entry::Dir { mode, owner, xattrs: xattrs_of(&path)? }
            } else if meta.is_file() {
                out.files += 1;
                out.bytes += meta.len();
                Entry::File {
                    mode,
                    owner,
                    mtime: meta.mtime(),
                    size: meta.len(),
                    sha256: sha256_of(&path)?,
                    xattrs: xattrs_of(&path)?,
                }
            } else {
                return Err(std::io::Error::other(format!("{}: not a file, directory or symlink", path.display())));
            };
            out.entries.insert(rel, e);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_digest_sees_every_change() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("v");
        sample(&root, 1).unwrap();
        let before = digest(&root).unwrap();
        assert!(before.bytes >= 1 << 20 && before.files >= 7, "{before:?}");
        assert_eq!(before, digest(&root).unwrap(), "a digest is stable");
        assert!(matches!(before.entries["link-to-hello"], Entry::Symlink { .. }));

        // One byte of content, a mode, a symlink target, a removed file: each is named.
        let mut data = std::fs::read(root.join("sub/data.bin")).unwrap();
        data[1000] ^= 1;
        let mtime = std::fs::metadata(root.join("sub/data.bin")).unwrap().modified().unwrap();
        std::fs::write(root.join("sub/data.bin"), data).unwrap();
        std::fs::File::options().write(true).open(root.join("sub/data.bin")).unwrap().set_modified(mtime).unwrap();
        std::fs::set_permissions(root.join("script.sh"), std::fs::Permissions::from_mode(0o700)).unwrap();
        std::fs::remove_file(root.join("dangling")).unwrap();
        symlink("/elsewhere", root.join("dangling")).unwrap();
        std::fs::remove_file(root.join("empty")).unwrap();
        let mut expected = vec!["dangling", "empty", "script.sh", "sub/data.bin"];
        // An extended attribute, where the filesystem keeps them.
        if xattr::set(root.join("sub"), SAMPLE_XATTR, b"changed").is_ok() {
            assert!(matches!(&before.entries["sub"], Entry::Dir { xattrs, .. } if xattrs.contains_key(SAMPLE_XATTR)));
            expected.push("sub");
        }
        // An owner, where this process may change one.
        if std::os::unix::fs::chown(root.join("hello.txt"), Some(4242), Some(4242)).is_ok() {
            expected.push("hello.txt");
        }
        expected.sort();
        let after = digest(&root).unwrap();
        let diff: Vec<String> = before.differences(&after).iter().map(|d| d.split(':').next().unwrap().to_string()).collect();
        assert_eq!(diff, expected, "{:?}", before.differences(&after));
    }

    #[test]
    fn a_fresh_filesystems_lost_and_found_is_no_data() {
        let dir = tempfile::tempdir().unwrap();
        assert!(!holds_data(&dir.path().join("missing")));
        std::fs::create_dir(dir.path().join("lost+found")).unwrap();
        assert!(!holds_data(dir.path()));
        assert!(digest(dir.path()).unwrap().entries.is_empty());
        std::fs::write(dir.path().join("file"), b"x").unwrap();
        assert!(holds_data(dir.path()));
        assert_eq!(digest(dir.path()).unwrap().entries.keys().collect::<Vec<_>>(), ["file"]);
    }

    #[test]
    fn a_write_probe_leaves_nothing_and_names_the_user() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(write_probe(dir.path()).unwrap(), current_user());
        assert!(!holds_data(dir.path()), "the probe file was left behind");
        assert!(write_probe(&dir.path().join("missing")).is_err());
    }

    #[test]
    fn a_missing_root_is_an_error() {
        assert!(digest(Path::new("/nonexistent/k10-volume")).is_err());
    }
}
