//! Restore points whose application data looks encrypted: a policy run after ransomware inside
//! the application rewrote a volume marks its restore point suspicious (output, Event,
//! `restorepoint list`); a release that rewrites many text files does not; `restore --last-clean`
//! brings back the data from before the encryption, byte for byte.

mod support;

use std::path::Path;

use support::app::Fixture;
use support::tree;

/// Text files of a few KiB that compress well, all different.
fn write_text(dir: &Path, count: usize, release: &str) {
    std::fs::create_dir_all(dir).unwrap();
    for i in 0..count {
        let body: String = (0..400).map(|line| format!("{release} document {i} line {line}: the quick brown fox\n")).collect();
        std::fs::write(dir.join(format!("doc{i:03}.txt")), body).unwrap();
    }
}

/// What ransomware does: every file rewritten with random bytes under a new extension.
fn encrypt(root: &Path) -> u64 {
    k10::datamover::tree::encrypt_like_ransomware(root, "locked").unwrap().0
}

fn points(f: &Fixture) -> Vec<serde_json::Value> {
    f.contents()
}

#[tokio::test(flavor = "multi_thread")]
async fn encryption_marks_a_restore_point_suspicious_and_last_clean_restores_from_before_it() {
    let f = Fixture::new().await;
    tree::small(&f.volume("data"));
    write_text(&f.volume("data").join("docs"), 60, "v1");
    write_text(&f.volume("www-db-0"), 30, "v1");
    f.k10.run(&["policy", "create", "shop-backup", "--namespaces", "shop", "--profile", "immutable"]).ok();
    f.k10.run(&["policy", "run", "shop-backup", "--wait"]).ok();

    // A release rewrites most text files: much changed, but it compresses.
    write_text(&f.volume("data").join("docs"), 50, "v2");
    write_text(&f.volume("www-db-0"), 30, "v2");
    let release = f.k10.run(&["policy", "run", "shop-backup", "--wait"]).ok();
    assert!(!release.stderr.contains("suspicious"), "{}", release.stderr);
    let clean = f.save_volumes("before-encryption");
    let contents = points(&f);
    assert_eq!(contents.len(), 2);
    assert!(contents[0]["spec"].get("suspicious").is_none() && contents[0]["spec"].get("signals").is_none(), "a first backup has no history: {}", contents[0]["spec"]);
    let released = &contents[1]["spec"];
    assert!(released.get("suspicious").is_none(), "the release was called suspicious: {released}");
    let data = released["signals"].as_array().unwrap().iter().find(|s| s["pvc"] == "data").unwrap();
    println!("release: {data}");
    assert!(data["changedShare"].as_f64().unwrap() >= 0.5, "{data}");
    assert!(data["incompressibleShare"].as_f64().unwrap() < 0.5, "{data}");
    let last_clean = contents[1]["spec"]["restorePointRef"]["name"].as_str().unwrap().to_string();

    // Ransomware in the application encrypts the data volume; the next scheduled run backs it up.
    let encrypted = encrypt(&f.volume("data"));
    assert!(encrypted > 60);
    let run = f.k10.run(&["policy", "run", "shop-backup", "--wait"]).ok();
    let contents = points(&f);
    let marked = &contents[2]["spec"];
    let suspect = marked["restorePointRef"]["name"].as_str().unwrap().to_string();
    let why = marked["suspicious"].as_str().unwrap_or_else(|| panic!("not marked suspicious: {marked}"));
    println!("encrypted: {why}");
    assert!(why.contains("volume data:") && why.contains(".locked") && why.contains("did not compress"), "{why}");
    assert!(run.stderr.contains(&format!("warning: restore point shop/{suspect} is suspicious")), "{}", run.stderr);
    let events = f.kubectl(&["get", "events", "-n", "kasten-io", "-o", "json"]);
    assert!(events.contains("SuspiciousRestorePoint") && events.contains(&suspect), "no Event: {events}");

    // The next run changes nothing: not suspicious, but still after the first suspicious one.
    f.k10.run(&["policy", "run", "shop-backup", "--wait"]).ok();
    assert!(points(&f)[3]["spec"].get("suspicious").is_none());

    let list = f.k10.run(&["restorepoint", "list", "-n", "shop"]).ok();
    assert!(list.stdout.contains("SUSPICIOUS"), "{}", list.stdout);
    assert!(
        list.stdout.contains(&format!("restore point {suspect} (")) && list.stdout.contains(&format!("the last clean one is {last_clean} (")),
        "{}",
        list.stdout
    );

    // Bad input: a name and --last-clean together; a namespace without restore points.
    let both = f.k10.run(&["restore", &suspect, "--last-clean", "-n", "shop"]);
    assert!(both.code == 2 && both.stderr.contains("cannot be used with"), "{both:?}");
    f.k10.run(&["restore", "--last-clean", "-n", "default", "--wait"]).fails_with(&["namespace default has no restore points"]);

    let restored = f.k10.run(&["restore", "--last-clean", "-n", "shop", "--target-namespace", "shop-copy", "--wait"]).ok();
    assert!(restored.stderr.contains(&format!("restoring {last_clean} (")) && restored.stderr.contains(&suspect), "{}", restored.stderr);
    for claim in ["data", "www-db-0"] {
        let (files, bytes) = tree::assert_same(&clean.join(claim), &f.server.volumes_root().join("shop-copy").join(claim));
        println!("{claim}: {files} files, {bytes} bytes as before the encryption");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn thresholds_are_the_policys_to_tune_and_a_bad_annotation_is_named() {
    let f = Fixture::new().await;
    write_text(&f.volume("data"), 40, "v1");
    write_text(&f.volume("www-db-0"), 5, "v1");
    f.k10.run(&["policy", "create", "shop-backup", "--namespaces", "shop", "--profile", "immutable"]).ok();
    f.kubectl(&["annotate", "policy", "shop-backup", "-n", "kasten-io", "k10.kasten.io/encryption-signals=changed=2"]);
    let run = f.k10.run(&["policy", "run", "shop-backup", "--wait"]).ok();
    assert!(run.stderr.contains("k10.kasten.io/encryption-signals: changed=2 is not a share from 0 to 1; the default thresholds apply"), "{}", run.stderr);

    // Signals off: the same encryption leaves no mark, but its signals are recorded.
    f.kubectl(&["annotate", "--overwrite", "policy", "shop-backup", "-n", "kasten-io", "k10.kasten.io/encryption-signals=off"]);
    encrypt(&f.volume("data"));
    f.k10.run(&["policy", "run", "shop-backup", "--wait"]).ok();
    let spec = &points(&f)[1]["spec"];
    assert!(spec.get("suspicious").is_none(), "{spec}");
    let data = spec["signals"].as_array().unwrap().iter().find(|s| s["pvc"] == "data").unwrap();
    assert_eq!(data["newExtension"], "locked", "{spec}");
}
