//! Pod Security admission on the stand-in (it enforces the namespace label
//! `pod-security.kubernetes.io/enforce` on the pods its Job controller creates): the product's
//! control pods pass `restricted`, its data movers `baseline`; a data mover a namespace refuses
//! fails the run at once, with the reason and what to do, never a silent wait.

mod support;

use std::time::{Duration, Instant};

use support::app::Fixture;
use support::tree;

#[tokio::test(flavor = "multi_thread")]
async fn restricted_kasten_io_and_baseline_applications_back_up_and_restore() {
    let f = Fixture::new().await;
    tree::small(&f.volume("data"));
    f.kubectl(&["label", "namespace", "kasten-io", "pod-security.kubernetes.io/enforce=restricted", "--overwrite"]);
    f.kubectl(&["label", "namespace", "shop", "pod-security.kubernetes.io/enforce=baseline"]);
    f.k10.run(&["policy", "create", "shop", "--namespaces", "shop", "--profile", "immutable"]).ok();
    // A data mover in the application's namespace (baseline)...
    f.k10.run(&["policy", "run", "shop", "--wait"]).ok();
    // ...and the control Job of a background run in kasten-io (restricted).
    let out = f.k10.run(&["policy", "run", "shop"]).ok().stdout;
    let job = out.split("Job kasten-io/").nth(1).unwrap().split(';').next().unwrap().to_string();
    f.kubectl(&["wait", "--for=condition=complete", "--timeout=120s", &format!("job/{job}"), "-n", "kasten-io"]);
    assert_eq!(f.contents().len(), 2);
    // A restore writes files of any owner (baseline still).
    let saved = f.save_volumes("before");
    let name = f.contents()[0]["metadata"]["name"].as_str().unwrap().to_string();
    f.kubectl(&["delete", "namespace", "shop"]);
    f.kubectl(&["create", "namespace", "shop"]);
    f.kubectl(&["label", "namespace", "shop", "pod-security.kubernetes.io/enforce=baseline"]);
    f.k10.run(&["restore", &name, "--wait"]).ok();
    tree::assert_same(&saved.join("data"), &f.volume("data"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_data_mover_refused_at_admission_fails_the_run_at_once() {
    let f = Fixture::new().await;
    tree::small(&f.volume("data"));
    f.kubectl(&["label", "namespace", "shop", "pod-security.kubernetes.io/enforce=restricted"]);
    f.k10.run(&["policy", "create", "shop", "--namespaces", "shop", "--profile", "immutable"]).ok();
    let started = Instant::now();
    let run = f.k10.run(&["policy", "run", "shop", "--wait"]).fails_with(&[
        "violates PodSecurity \"restricted:latest\"",
        "runAsNonRoot != true",
        "pod-security.kubernetes.io/enforce",
    ]);
    println!("{}", run.stderr);
    assert!(started.elapsed() < Duration::from_secs(60), "{:?}", started.elapsed());
    assert!(f.contents().is_empty(), "no restore point from a run that could not read its volume");
}

/// An application pod of a non-root user (the stand-in kubelet starts it as its `runAsUser`).
fn app_writes(name: &str, dir: &str) -> String {
    let (uid, gid) = k10::datamover::tree::SAMPLE_OWNERS[0];
    format!(
        r#"
apiVersion: batch/v1
kind: Job
metadata: {{name: {name}, namespace: shop}}
spec:
  backoffLimit: 0
  template:
    spec:
      restartPolicy: Never
      securityContext: {{runAsUser: {uid}, runAsGroup: {gid}, runAsNonRoot: true, seccompProfile: {{type: RuntimeDefault}}}}
      containers:
      - name: app
        image: app
        command: [kubectl-k10, datamover, writable, --path, {dir}]
        securityContext: {{allowPrivilegeEscalation: false, capabilities: {{drop: [ALL]}}}}
        volumeMounts: [{{name: data, mountPath: /data}}]
      volumes: [{{name: data, persistentVolumeClaim: {{claimName: data}}}}]
"#
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_non_root_application_writes_to_its_restored_volume() {
    let f = Fixture::new().await;
    tree::small(&f.volume("data"));
    let as_root = std::os::unix::fs::MetadataExt::uid(&std::fs::metadata("/proc/self").unwrap()) == 0;
    f.k10.run(&["policy", "create", "shop", "--namespaces", "shop", "--profile", "immutable"]).ok();
    f.k10.run(&["policy", "run", "shop", "--wait"]).ok();
    let saved = f.save_volumes("before");
    let name = f.contents()[0]["metadata"]["name"].as_str().unwrap().to_string();
    f.kubectl(&["delete", "namespace", "shop"]);
    f.k10.run(&["restore", &name, "--wait"]).ok();
    tree::assert_same(&saved.join("data"), &f.volume("data"));

    // The user owns sub/deeper (as in the original volume): it writes there...
    f.kubectl_apply(&app_writes("owner-writes", "/data/sub/deeper"));
    f.kubectl(&["wait", "--for=condition=complete", "--timeout=60s", "job/owner-writes", "-n", "shop"]);
    let log = f.kubectl(&["logs", "job/owner-writes", "-n", "shop"]);
    assert!(log.contains("\"user\":\"1000:1000\""), "{log}");
    // ...and not in the root-owned top directory: the stand-in runs pods as their user, so the
    // owners a restore gives back are what decides (where the stand-in may switch users: root).
    if as_root {
        f.kubectl_apply(&app_writes("stranger-writes", "/data"));
        f.kubectl(&["wait", "--for=condition=failed", "--timeout=60s", "job/stranger-writes", "-n", "shop"]);
        let log = f.kubectl(&["logs", "job/stranger-writes", "-n", "shop"]);
        assert!(log.contains("user 1000:1000 cannot write in") && log.contains("Permission denied"), "{log}");
    }
}
