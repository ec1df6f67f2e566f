//! `kubectl-k10 datamover sample|digest`, as a drill's Jobs run them: sample data only into an
//! empty volume, and a digest that tells identical trees from trees that differ in any byte,
//! mode or mtime.

mod support;

use std::process::Command;

use k10::datamover::tree::TreeDigest;
use support::cli::K10;

fn k10() -> K10 {
    K10::default()
}

fn digest(path: &std::path::Path) -> TreeDigest {
    let run = k10().run(&["datamover", "digest", "--path", path.to_str().unwrap()]).ok();
    serde_json::from_str(run.stdout.trim()).expect("one JSON line")
}

#[test]
fn sample_data_goes_only_into_an_empty_volume() {
    let dir = tempfile::tempdir().unwrap();
    let volume = dir.path().join("volume");
    let run = k10().run(&["datamover", "sample", "--path", volume.to_str().unwrap(), "--mib", "2"]).ok();
    let written: serde_json::Value = serde_json::from_str(run.stdout.trim()).unwrap();
    assert!(written["bytes"].as_u64().unwrap() >= 2 * 1024 * 1024, "{written}");
    assert_eq!(written["files"], digest(&volume).files);

    // A volume with data is never written to: the refusal names it, and nothing changes.
    let before = digest(&volume);
    k10()
        .run(&["datamover", "sample", "--path", volume.to_str().unwrap(), "--mib", "1"])
        .fails_with(&["is not empty: sample data is written only into a new or empty volume"]);
    assert_eq!(before, digest(&volume));
}

#[test]
fn a_digest_tells_a_copy_from_a_changed_tree() {
    let dir = tempfile::tempdir().unwrap();
    let volume = dir.path().join("volume");
    k10::datamover::tree::sample(&volume, 1).unwrap();
    let copy = dir.path().join("copy");
    assert!(Command::new("cp").arg("-a").arg(&volume).arg(&copy).status().unwrap().success());
    let original = digest(&volume);
    assert!(original.differences(&digest(&copy)).is_empty(), "cp -a keeps everything a digest sees");

    // One flipped byte with the same size and mtime is still seen.
    let file = copy.join("sub/data.bin");
    let mtime = std::fs::metadata(&file).unwrap().modified().unwrap();
    let mut data = std::fs::read(&file).unwrap();
    data[0] ^= 0xff;
    std::fs::write(&file, data).unwrap();
    std::fs::File::options().write(true).open(&file).unwrap().set_modified(mtime).unwrap();
    let differences = original.differences(&digest(&copy));
    assert_eq!(differences.len(), 1, "{differences:?}");
    assert!(differences[0].starts_with("sub/data.bin: "), "{differences:?}");
}

#[test]
fn a_digest_of_a_missing_path_fails_clearly() {
    k10()
        .run(&["datamover", "digest", "--path", "/nonexistent/k10-volume"])
        .fails_with(&["cannot read /nonexistent/k10-volume"]);
}
