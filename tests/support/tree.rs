//! Test data trees: generated deterministically, and compared byte for byte (content, modes,
//! symlink targets, file mtimes).

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

#[allow(unused_imports)]
pub use k10::datamover::tree::noise;

/// A small tree with every kind of entry a volume holds.
pub fn small(root: &Path) {
    k10::datamover::tree::small(root).unwrap();
}

/// About `mib` MiB in files of mixed sizes (large, medium, many small), plus the small tree:
/// the same data as `kubectl-k10 datamover sample`.
pub fn mixed(root: &Path, mib: usize) {
    k10::datamover::tree::sample(root, mib).unwrap();
}

#[derive(Debug, PartialEq, Eq)]
pub enum Entry {
    Dir { mode: u32 },
    File { mode: u32, content: Vec<u8>, mtime: i64 },
    Symlink { target: String },
}

/// Everything under `root`, by relative path.
pub fn read(root: &Path) -> BTreeMap<String, Entry> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let rel = path.strip_prefix(root).unwrap().to_string_lossy().into_owned();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            let mode = meta.permissions().mode() & 0o7777;
            let e = if meta.file_type().is_symlink() {
                Entry::Symlink {
                    target: std::fs::read_link(&path).unwrap().to_string_lossy().into_owned(),
                }
            } else if meta.is_dir() {
                stack.push(path.clone());
                Entry::Dir { mode }
            } else {
                use std::os::unix::fs::MetadataExt;
                Entry::File {
                    mode,
                    content: std::fs::read(&path).unwrap(),
                    mtime: meta.mtime(),
                }
            };
            out.insert(rel, e);
        }
    }
    out
}

/// Asserts two trees are identical; returns (files, bytes) compared.
#[track_caller]
pub fn assert_same(expected: &Path, actual: &Path) -> (usize, u64) {
    let want = read(expected);
    let got = read(actual);
    let want_keys: Vec<_> = want.keys().collect();
    let got_keys: Vec<_> = got.keys().collect();
    assert_eq!(want_keys, got_keys, "the trees hold different paths");
    let mut files = 0;
    let mut bytes = 0;
    for (path, w) in &want {
        let g = &got[path];
        if let (Entry::File { content: a, .. }, Entry::File { content: b, .. }) = (w, g) {
            assert!(a == b, "{path}: content differs ({} vs {} bytes)", a.len(), b.len());
            files += 1;
            bytes += a.len() as u64;
        }
        assert_eq!(w, g, "{path} differs");
    }
    (files, bytes)
}
