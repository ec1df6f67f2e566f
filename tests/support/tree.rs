//! Test data trees: generated deterministically, and compared byte for byte (content, modes,
//! symlink targets, file mtimes).

use std::collections::BTreeMap;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;

/// Deterministic pseudo-random bytes (xorshift), incompressible.
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

/// A small tree with every kind of entry a volume holds.
pub fn small(root: &Path) {
    std::fs::create_dir_all(root.join("sub/deeper")).unwrap();
    std::fs::create_dir_all(root.join("empty-dir")).unwrap();
    std::fs::write(root.join("hello.txt"), b"hello\n").unwrap();
    std::fs::write(root.join("empty"), b"").unwrap();
    std::fs::write(root.join("sub/data.bin"), noise(7, 300_000)).unwrap();
    std::fs::write(root.join("sub/deeper/text.txt"), "line\n".repeat(10_000)).unwrap();
    std::fs::write(root.join("private"), b"mode 600").unwrap();
    std::fs::set_permissions(root.join("private"), std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::write(root.join("script.sh"), b"#!/bin/sh\necho hi\n").unwrap();
    std::fs::set_permissions(root.join("script.sh"), std::fs::Permissions::from_mode(0o755)).unwrap();
    symlink("hello.txt", root.join("link-to-hello")).unwrap();
    symlink("/nonexistent/target", root.join("dangling")).unwrap();
}

/// About `mib` MiB in files of mixed sizes (large, medium, many small), plus the small tree.
pub fn mixed(root: &Path, mib: usize) {
    small(root);
    let budget = mib * 1024 * 1024;
    let mut written = 0;
    let mut i = 0u64;
    let sizes = [8 << 20, 1 << 20, 200 << 10, 16 << 10, 1 << 10, 37];
    while written < budget {
        let size = sizes[(i as usize) % sizes.len()].min(budget - written).max(1);
        let dir = root.join(format!("mixed/d{}", i % 7));
        std::fs::create_dir_all(&dir).unwrap();
        let data = if i.is_multiple_of(5) { "compressible ".repeat(size / 13 + 1).into_bytes()[..size].to_vec() } else { noise(i + 11, size) };
        std::fs::write(dir.join(format!("f{i}.bin")), data).unwrap();
        written += size;
        i += 1;
    }
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
