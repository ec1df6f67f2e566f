//! Stock restic as the outside verifier: a copy of a repository (as of a time) in a local
//! directory, checked and read by Debian's restic.

use std::path::Path;
use std::process::Command;

use k10::objectstore::storage::Storage;

/// Copies every object under `prefix` of `view` into `dir`, as a local restic repository.
pub async fn copy_repository(view: &dyn Storage, prefix: &str, dir: &Path) {
    for o in view.list(prefix).await.unwrap() {
        let path = dir.join(o.key.strip_prefix(prefix).unwrap());
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, view.get(&o.key, None).await.unwrap()).unwrap();
    }
}

/// Runs restic on the local repository `dir`; panics with its output on failure.
pub fn restic(dir: &Path, password: &str, args: &[&str]) -> String {
    let out = Command::new("restic")
        .args(["--no-cache", "-r"])
        .arg(dir)
        .args(args)
        .env("RESTIC_PASSWORD", password)
        .output()
        .expect("restic is installed (tests/setup.sh installs Debian's restic)");
    assert!(
        out.status.success(),
        "restic {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `restic check --read-data` finds no errors.
pub fn check(dir: &Path, password: &str) {
    let out = restic(dir, password, &["check", "--read-data"]);
    assert!(out.contains("no errors were found"), "{out}");
}
