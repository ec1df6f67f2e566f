//! The product under RBAC: the stand-in authorizes every request of a pod by its ServiceAccount's
//! roles, as kube-apiserver does (tests/support/apiserver/rbac.rs). The product's control Jobs
//! run as `kasten-io/k10` (and the DR restore Job as `k10-restore`, in tests/drill.rs): a rule
//! they lack fails them with the server's 403, naming who, the verb and the resource.

mod support;

use support::app::Fixture;
use support::cli::K10;
use support::tree;

#[tokio::test(flavor = "multi_thread")]
async fn a_control_job_without_its_rules_fails_with_the_servers_403() {
    let f = Fixture::new().await;
    tree::small(&f.volume("data"));
    f.k10.run(&["policy", "create", "shop", "--namespaces", "shop", "--profile", "immutable"]).ok();
    // With its binding, the background run (as kasten-io/k10) works...
    let out = f.k10.run(&["policy", "run", "shop"]).ok().stdout;
    let job = out.split("Job kasten-io/").nth(1).unwrap().split(';').next().unwrap().to_string();
    f.kubectl(&["wait", "--for=condition=complete", "--timeout=120s", &format!("job/{job}"), "-n", "kasten-io"]);
    assert_eq!(f.contents().len(), 1);

    // ...without it, the same command (acting as kasten-io/k10, as every test's commands do) is
    // refused its first request, and says by whom and for what...
    f.kubectl(&["delete", "clusterrolebinding", "k10"]);
    f.k10.run(&["policy", "run", "shop"]).fails_with(&[
        "is forbidden: User \"system:serviceaccount:kasten-io:k10\" cannot get resource \"policies\" in API group \"config.kio.kasten.io\" in the namespace \"kasten-io\"",
    ]);
    // ...and so is the control Job an admin starts.
    let admin = K10 { kubeconfig: Some(f.server.kubeconfig_path().to_path_buf()), ..f.k10.clone() };
    let out = admin.run(&["policy", "run", "shop"]).ok().stdout;
    let job = out.split("Job kasten-io/").nth(1).unwrap().split(';').next().unwrap().to_string();
    f.kubectl(&["wait", "--for=condition=failed", "--timeout=120s", &format!("job/{job}"), "-n", "kasten-io"]);
    let log = f.kubectl(&["logs", &format!("job/{job}"), "-n", "kasten-io"]);
    assert!(
        log.contains("is forbidden: User \"system:serviceaccount:kasten-io:k10\" cannot get resource \"policies\" in API group \"config.kio.kasten.io\" in the namespace \"kasten-io\""),
        "{log}"
    );
    assert_eq!(f.contents().len(), 1, "a refused run made no restore point");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pod_of_a_missing_service_account_is_refused_at_once() {
    let f = Fixture::new().await;
    tree::small(&f.volume("data"));
    f.k10.run(&["policy", "create", "shop", "--namespaces", "shop", "--profile", "immutable"]).ok();
    f.kubectl(&["delete", "serviceaccount", "k10", "-n", "kasten-io"]);
    let out = f.k10.run(&["policy", "run", "shop"]).ok().stdout;
    let job = out.split("Job kasten-io/").nth(1).unwrap().split(';').next().unwrap().to_string();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let events = f.kubectl(&["get", "events", "-n", "kasten-io", "--field-selector", &format!("involvedObject.name={job}"), "-o", "json"]);
        if events.contains("FailedCreate") {
            assert!(events.contains("error looking up service account kasten-io/k10"), "{events}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no FailedCreate event for {job}: {events}");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}
