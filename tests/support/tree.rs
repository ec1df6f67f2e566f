//! Test data trees: generated deterministically (the data of `kubectl-k10 datamover sample`), and
//! compared byte for byte (content, modes, symlink targets, file mtimes) through their digests.

use std::path::Path;

use k10::datamover::tree::TreeDigest;

#[allow(unused_imports)]
pub use k10::datamover::tree::noise;

/// A small tree with every kind of entry a volume holds.
pub fn small(root: &Path) {
    k10::datamover::tree::small(root).unwrap();
}

/// About `mib` MiB in files of mixed sizes (large, medium, many small), plus the small tree.
pub fn mixed(root: &Path, mib: usize) {
    k10::datamover::tree::sample(root, mib).unwrap();
}

/// Every entry under `root`, by relative path.
#[track_caller]
pub fn read(root: &Path) -> TreeDigest {
    k10::datamover::tree::digest(root).unwrap_or_else(|e| panic!("cannot read {}: {e}", root.display()))
}

/// Asserts two trees are identical; returns (files, bytes) compared.
#[track_caller]
pub fn assert_same(expected: &Path, actual: &Path) -> (usize, u64) {
    let want = read(expected);
    let differences = want.differences(&read(actual));
    assert!(differences.is_empty(), "the trees differ: {differences:?}");
    (want.files as usize, want.bytes)
}
