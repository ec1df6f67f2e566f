//! The orchestration at scale, on the stand-in: one policy over 50 namespaces, each with a volume.
//! Every namespace gets its restore point; the run's wall time against one namespace's, and the
//! API requests per namespace, are printed (the figures are in the README). Namespaces are
//! protected `k10.kasten.io/parallel-namespaces` at a time (3 by default).

mod support;

use std::time::Instant;

use support::app::Fixture;
use support::tree;

const NAMESPACES: usize = 50;

#[tokio::test(flavor = "multi_thread")]
async fn a_policy_over_fifty_namespaces_protects_each_and_costs_the_same_requests_per_namespace() {
    let f = Fixture::new().await;
    let names: Vec<String> = (0..NAMESPACES).map(|i| format!("scale-{i:02}")).collect();
    let manifests: String = names
        .iter()
        .map(|ns| {
            format!(
                "apiVersion: v1\nkind: Namespace\nmetadata: {{name: {ns}, labels: {{scale: fifty}}}}\n---\n\
                 apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {{name: data, namespace: {ns}}}\n\
                 spec:\n  accessModes: [ReadWriteOnce]\n  resources: {{requests: {{storage: 1Gi}}}}\n---\n"
            )
        })
        .collect();
    f.kubectl_apply(&manifests);
    for (i, ns) in names.iter().enumerate() {
        let volume = f.server.volumes_root().join(ns).join("data");
        std::fs::write(volume.join("data.bin"), tree::noise(i as u64, 256 * 1024)).unwrap();
    }
    f.k10.run(&["policy", "create", "one", "--namespaces", "scale-00", "--profile", "immutable"]).ok();
    f.k10.run(&["policy", "create", "fifty", "--selector", "scale=fifty", "--profile", "immutable"]).ok();

    let (before, started) = (f.server.requests(), Instant::now());
    f.k10.run(&["policy", "run", "one", "--wait"]).ok();
    let (one_seconds, one_requests) = (started.elapsed().as_secs_f64(), f.server.requests() - before);

    let (before, started) = (f.server.requests(), Instant::now());
    let out = f.k10.run(&["policy", "run", "fifty", "--wait"]).ok();
    let (seconds, requests) = (started.elapsed().as_secs_f64(), f.server.requests() - before);
    for ns in &names {
        assert!(out.stdout.contains(&format!("namespace {ns}: restore point fifty-")), "{ns} has no restore point:\n{}", out.stdout);
    }
    assert_eq!(f.contents().len(), 1 + NAMESPACES);
    let per_namespace = requests as f64 / NAMESPACES as f64;
    println!(
        "scale: {NAMESPACES} namespaces in {seconds:.1} s ({:.2} s each; one namespace alone {one_seconds:.1} s: {:.1}x its time for {NAMESPACES}x the work); \
         API requests {requests} ({per_namespace:.0} per namespace; one namespace alone {one_requests})",
        seconds / NAMESPACES as f64,
        seconds / one_seconds
    );
    // Requests grow with the namespaces, not faster: a namespace costs what it costs alone
    // (with room for the Job watches' periodic checks, which follow the time a mover takes).
    assert!(per_namespace <= 2.0 * one_requests as f64, "{per_namespace:.0} requests per namespace, {one_requests} alone");
}
