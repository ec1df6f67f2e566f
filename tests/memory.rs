//! The data mover's memory, capped: a backup and a restore of 2 GiB with every data mover Job
//! limited to 256 MiB, which the stand-in kubelet enforces as a cgroup would (it kills a container
//! whose peak resident set goes over its limit: `OOMKilled`). The same run under a limit it
//! cannot keep fails, names the cause, and leaves no restore point.

mod support;

use std::process::{Command, Stdio};

use k10::datamover::tree;
use support::app::Fixture;

const MIB: u64 = 1 << 20;

/// The memory limits of the data mover Jobs (`k10-<verb>-…`) created while `during` runs, seen
/// by a watch of every namespace's Jobs.
fn mover_limits(f: &Fixture, verb: &str, during: impl FnOnce()) -> Vec<String> {
    let mut watch = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(f.server.kubeconfig_path())
        .args(["get", "jobs", "-A", "--watch-only", "--output-watch-events", "-o", "json"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(500));
    during();
    std::thread::sleep(std::time::Duration::from_millis(500));
    watch.kill().unwrap();
    let mut seen = String::new();
    std::io::Read::read_to_string(watch.stdout.as_mut().unwrap(), &mut seen).unwrap();
    watch.wait().unwrap();
    serde_json::Deserializer::from_str(&seen)
        .into_iter::<serde_json::Value>()
        .map(Result::unwrap)
        .filter(|e| e["type"] == "ADDED" && e["object"]["metadata"]["name"].as_str().unwrap_or("").starts_with(&format!("k10-{verb}-")))
        .map(|e| e["object"]["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["memory"].as_str().unwrap_or("none").to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn two_gib_back_up_and_restore_within_256_mib() {
    let f = Fixture::new().await;
    tree::sample(&f.volume("data"), 2048).unwrap();
    let before = tree::digest(&f.volume("data")).unwrap();
    assert!(before.bytes >= 2000 * MIB, "{} bytes", before.bytes);
    println!("data: {} files, {} MiB", before.files, before.bytes / MIB);
    f.k10.run(&["policy", "create", "p", "--namespaces", "shop", "--profile", "immutable"]).ok();

    // Under a limit the data mover cannot keep, the kernel (the stand-in's kubelet) kills it:
    // the run fails, says why and what to change, and leaves no restore point.
    f.kubectl(&["annotate", "policies.config.kio.kasten.io", "p", "-n", "kasten-io", "k10.kasten.io/mover-memory-limit=128Mi"]);
    f.k10.run(&["policy", "run", "p", "--wait"]).fails_with(&[
        "its container was killed for going over its memory limit (128Mi) (OOMKilled)",
        "k10.kasten.io/mover-memory-limit",
    ]);
    assert!(f.contents().is_empty(), "a killed data mover left a restore point");

    // 256 MiB: the backup of 2 GiB completes.
    f.kubectl(&["annotate", "--overwrite", "policies.config.kio.kasten.io", "p", "-n", "kasten-io", "k10.kasten.io/mover-memory-limit=256Mi"]);
    let started = std::time::Instant::now();
    let mut run = None;
    let limits = mover_limits(&f, "backup", || run = Some(f.k10.run(&["policy", "run", "p", "--wait"]).ok()));
    let run = run.unwrap();
    println!("backup of {} MiB with data movers limited to 256 MiB: {:.1} s", before.bytes / MIB, started.elapsed().as_secs_f64());
    assert_eq!(limits, vec!["256Mi"; 2], "one data mover per volume, each limited");
    assert!(run.stdout.contains("namespace shop: restore point p-"), "{}", run.all());
    let point = f.contents()[0]["metadata"]["name"].as_str().unwrap().to_string();

    // The namespace is lost; the restore's data movers, limited to 256 MiB too, bring back
    // every byte.
    f.kubectl(&["delete", "namespace", "shop"]);
    let started = std::time::Instant::now();
    let limits = mover_limits(&f, "restore", || {
        f.k10.run(&["restore", &point, "--wait", "--mover-memory-limit", "256Mi"]).ok();
    });
    assert_eq!(limits, vec!["256Mi"; 2], "one data mover per volume, each limited");
    println!("restore with data movers limited to 256 MiB: {:.1} s", started.elapsed().as_secs_f64());
    let after = tree::digest(&f.volume("data")).unwrap();
    assert!(before.differences(&after).is_empty(), "{:?}", before.differences(&after));

    // A limit that is no quantity: refused by the command before anything runs; on a policy,
    // named by the run, which gives its data movers the default limit.
    let refused = f.k10.run(&["restore", &point, "--wait", "--mover-memory-limit", "lots"]);
    assert_eq!(refused.code, 2, "{}", refused.all());
    assert!(refused.stderr.contains("data mover memory limit \"lots\": use a quantity such as 256Mi or 1Gi"), "{}", refused.stderr);
    f.kubectl(&["annotate", "--overwrite", "policies.config.kio.kasten.io", "p", "-n", "kasten-io", "k10.kasten.io/mover-memory-limit=lots"]);
    let run = f.k10.run(&["policy", "run", "p", "--wait"]).ok();
    assert!(run.stderr.contains("warning: annotation k10.kasten.io/mover-memory-limit: data mover memory limit \"lots\""), "{}", run.stderr);
    assert!(run.stderr.contains("data movers get the default limit"), "{}", run.stderr);
}
