//! The container image the charts and the product's Jobs run, as CI builds it from the Dockerfile
//! (`krew/image.sh`, with buildah; `tests/run.sh` runs it before the tests): an OCI archive whose
//! entrypoint is `kubectl-k10`, whose user is not root, and which holds nothing but the static
//! binary, the CA certificates, the unprivileged user's passwd/group entries and a writable /tmp.
//! The binary is then run from the image's own files, as that user.

use std::path::{Path, PathBuf};
use std::process::Command;

fn target_dir() -> PathBuf {
    // <target dir>/debug/kubectl-k10
    Path::new(env!("CARGO_BIN_EXE_kubectl-k10")).parent().unwrap().parent().unwrap().to_path_buf()
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(out.status.success(), "{cmd:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn blob(dir: &Path, digest: &str) -> PathBuf {
    dir.join("blobs").join(digest.replacen(':', "/", 1))
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

#[test]
fn the_image_holds_only_the_static_binary_and_runs_it_as_a_non_root_user() {
    let archive = target_dir().join("image/kubectl-k10.oci.tar");
    assert!(archive.exists(), "no image at {}: build it with krew/image.sh (tests/run.sh does, before the tests)", archive.display());
    let dir = tempfile::tempdir().unwrap();
    let oci = dir.path().join("oci");
    std::fs::create_dir(&oci).unwrap();
    run(Command::new("tar").arg("-xf").arg(&archive).arg("-C").arg(&oci));

    let index = json(&oci.join("index.json"));
    let manifests = index["manifests"].as_array().unwrap();
    assert_eq!(manifests.len(), 1, "{index}");
    let tag = format!("k10/kubectl-k10:{}", env!("CARGO_PKG_VERSION"));
    assert_eq!(manifests[0]["annotations"]["org.opencontainers.image.ref.name"].as_str(), Some(tag.as_str()), "{index}");
    let manifest = json(&blob(&oci, manifests[0]["digest"].as_str().unwrap()));
    let config = json(&blob(&oci, manifest["config"]["digest"].as_str().unwrap()));
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    assert_eq!(config["architecture"], arch);
    assert_eq!(config["os"], "linux");
    let c = &config["config"];
    assert_eq!(c["Entrypoint"], serde_json::json!(["kubectl-k10"]), "{config}");
    assert_eq!(c["User"], "65532:65532", "the image runs as a non-root user");
    let env: Vec<&str> = c["Env"].as_array().unwrap().iter().map(|e| e.as_str().unwrap()).collect();
    assert!(env.contains(&"HOME=/tmp") && env.contains(&"SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt"), "{env:?}");

    // Every layer unpacked into one root: exactly these files, nothing else.
    let rootfs = dir.path().join("rootfs");
    std::fs::create_dir(&rootfs).unwrap();
    let mut layers = 0u64;
    let mut listing = String::new();
    for layer in manifest["layers"].as_array().unwrap() {
        layers += layer["size"].as_u64().unwrap();
        let path = blob(&oci, layer["digest"].as_str().unwrap());
        listing += &run(Command::new("tar").arg("-tvf").arg(&path));
        run(Command::new("tar").arg("-xpf").arg(&path).arg("-C").arg(&rootfs).arg("--numeric-owner"));
    }
    let mut files: Vec<String> = Vec::new();
    let mut dirs: Vec<String> = Vec::new();
    for line in listing.lines() {
        let name = line.split_whitespace().last().unwrap().trim_start_matches("./").trim_end_matches('/').to_string();
        if name.is_empty() {
            continue;
        }
        if line.starts_with('d') {
            dirs.push(name);
        } else {
            assert!(line.starts_with('-'), "only regular files and directories: {line}");
            files.push(name);
        }
    }
    files.sort();
    assert_eq!(files, ["etc/group", "etc/passwd", "etc/ssl/certs/ca-certificates.crt", "usr/local/bin/kubectl-k10"], "{listing}");
    for d in &dirs {
        assert!(["etc", "etc/ssl", "etc/ssl/certs", "tmp", "usr", "usr/local", "usr/local/bin"].contains(&d.as_str()), "unexpected directory {d}: {listing}");
    }
    let tmp = listing.lines().find(|l| l.trim_end_matches('/').ends_with(" tmp") || l.trim_end_matches('/').ends_with(" ./tmp")).expect("a /tmp");
    assert!(tmp.starts_with("drwxrwxrwt"), "/tmp is world-writable and sticky: {tmp}");

    // The binary is static: nothing in the image could serve a dynamic one.
    let binary = rootfs.join("usr/local/bin/kubectl-k10");
    let headers = run(Command::new("readelf").arg("-l").arg(&binary));
    assert!(!headers.contains("program interpreter"), "kubectl-k10 is dynamically linked:\n{headers}");
    // The entrypoint runs, from the image's own files, as the image's user (in a chroot of its root
    // where the test may make one: CI runs as root).
    let is_root = run(Command::new("id").arg("-u")).trim() == "0";
    let version = if is_root {
        run(Command::new("chroot").arg("--userspec=65532:65532").arg(&rootfs).args(["/usr/local/bin/kubectl-k10", "--version"]))
    } else {
        run(Command::new(&binary).arg("--version"))
    };
    assert_eq!(version.trim(), format!("kubectl k10 {}", env!("CARGO_PKG_VERSION")));
    let binary_size = std::fs::metadata(&binary).unwrap().len();
    println!(
        "image {tag}: {} layer(s), {:.1} MiB compressed ({:.1} MiB archive); kubectl-k10 {:.1} MiB static; entrypoint {}, user {}",
        manifest["layers"].as_array().unwrap().len(),
        layers as f64 / 1048576.0,
        std::fs::metadata(&archive).unwrap().len() as f64 / 1048576.0,
        binary_size as f64 / 1048576.0,
        c["Entrypoint"],
        c["User"]
    );
}
