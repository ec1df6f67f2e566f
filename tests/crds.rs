//! The CRD YAML under charts/k10/crds is generated from the Rust types; this test fails when the
//! committed files drift. Regenerate them with `K10_UPDATE_CRDS=1 cargo test --test crds`.

use std::path::PathBuf;

fn crds_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("charts/k10/crds")
}

#[test]
fn committed_crds_match_the_types() {
    let dir = crds_dir();
    let update = std::env::var("K10_UPDATE_CRDS").is_ok_and(|v| v == "1");
    let mut expected_files = Vec::new();
    for crd in k10::api::crds() {
        let name = crd.metadata.name.clone().unwrap();
        let file = dir.join(format!("{name}.yaml"));
        let yaml = format!(
            "# Generated from src/api by `K10_UPDATE_CRDS=1 cargo test --test crds`; do not edit.\n{}",
            serde_yaml::to_string(&crd).unwrap()
        );
        if update {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&file, &yaml).unwrap();
        }
        let committed = std::fs::read_to_string(&file)
            .unwrap_or_else(|_| panic!("{} is missing: run K10_UPDATE_CRDS=1 cargo test --test crds", file.display()));
        assert!(
            committed == yaml,
            "{} drifted from the Rust types: run K10_UPDATE_CRDS=1 cargo test --test crds and commit the result",
            file.display()
        );
        expected_files.push(format!("{name}.yaml"));
    }
    let mut present: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    present.sort();
    expected_files.sort();
    assert_eq!(present, expected_files, "files in {} that no type generates", dir.display());
}
