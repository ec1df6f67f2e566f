//! The product under RBAC: the stand-in authorizes every request of a pod by its ServiceAccount's
//! roles, as kube-apiserver does (tests/support/apiserver/rbac.rs). The product's control Jobs
//! run as `kasten-io/k10` (and the DR restore Job as `k10-restore`, in tests/drill.rs): a rule
//! they lack fails them with the server's 403, naming who, the verb and the resource.

mod support;

use k10::k8s::rbac;
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
    f.kubectl(&["delete", "rolebinding", "k10", "-n", "kasten-io"]);
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

/// The reviewed rules, one per line (`#` comments and blank lines aside).
fn reviewed() -> Vec<String> {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/rbac_rules.txt")).unwrap();
    text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).map(str::to_string).collect()
}

#[test]
fn every_rule_is_on_the_reviewed_list_and_none_reaches_cluster_admin() {
    assert_eq!(
        rbac::rule_lines(),
        reviewed(),
        "the product's roles changed: review the change and update tests/rbac_rules.txt (and the README's RBAC table)"
    );
    for (role, grants) in [("k10", rbac::CLUSTER), ("kasten-io/k10", rbac::OWN_NAMESPACE), ("k10-applications", rbac::APPLICATIONS)] {
        for g in grants {
            let all = [g.groups, g.resources, g.verbs].concat();
            assert!(!all.contains(&"*"), "{role}: a wildcard in {:?} {:?} {:?}", g.groups, g.resources, g.verbs);
            for verb in ["bind", "escalate", "impersonate", "deletecollection"] {
                assert!(!g.verbs.contains(&verb), "{role}: {verb}");
            }
            // Subresources: only logs and the product's own status.
            for r in g.resources.iter().filter(|r| r.contains('/')) {
                assert!(["pods/log", "profiles/status", "policies/status", "runactions/status"].contains(r), "{role}: subresource {r}");
            }
            // RBAC objects are read (captured), never written.
            if g.groups.contains(&"rbac.authorization.k8s.io") {
                assert_eq!(g.verbs, ["get", "list"], "{role}");
            }
            assert!(!g.why.is_empty());
        }
    }
    // Outside kasten-io, the policy-run role writes only snapshots, the catalog and RunActions
    // (cluster-scoped, K10's on-demand API).
    for g in rbac::CLUSTER.iter().filter(|g| g.verbs.iter().any(|v| !["get", "list", "watch"].contains(v))) {
        let ours = ["snapshot.storage.k8s.io", "apps.kio.kasten.io", "actions.kio.kasten.io"];
        assert!(ours.iter().any(|o| g.groups == [*o]), "{:?} {:?}", g.groups, g.resources);
    }
}

/// A request as `kasten-io/k10`, with its own token (kubectl sends none over the stand-in's
/// plain HTTP, so the product's client is used): it must be refused with a 403 naming `what`.
async fn refused(client: &kube::Client, method: &str, path: &str, body: serde_json::Value, what: &str) {
    let request = http::Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", if method == "PATCH" { "application/merge-patch+json" } else { "application/json" })
        .body(serde_json::to_vec(&body).unwrap())
        .unwrap();
    match client.request_text(request).await {
        Err(kube::Error::Api(s)) => {
            assert_eq!(s.code, 403, "{method} {path}: {s:?}");
            assert!(s.message.contains("system:serviceaccount:kasten-io:k10") && s.message.contains(what), "{method} {path}: {}", s.message);
        }
        other => panic!("{method} {path} was not refused: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn k10s_token_mints_no_token_execs_nothing_and_grants_nothing() {
    let f = Fixture::new().await;
    let kubeconfig = f.server.service_account_kubeconfig("kasten-io", "k10").unwrap();
    let config = kube::Config::from_custom_kubeconfig(kube::config::Kubeconfig::read_from(&kubeconfig).unwrap(), &Default::default()).await.unwrap();
    let k10 = kube::Client::try_from(config).unwrap();
    let binding = |kind: &str, ns: Option<&str>| {
        serde_json::json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": kind, "metadata": {"name": "steal", "namespace": ns},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
            "subjects": [{"kind": "ServiceAccount", "name": "default", "namespace": "shop"}]})
    };
    // A token for any ServiceAccount, a shell in any pod, a grant of any role: all refused.
    let token = serde_json::json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {}});
    refused(&k10, "POST", "/api/v1/namespaces/kube-system/serviceaccounts/default/token", token, "serviceaccounts/token").await;
    refused(&k10, "POST", "/api/v1/namespaces/shop/pods/web/exec?command=sh", serde_json::json!({}), "pods/exec").await;
    refused(&k10, "POST", "/api/v1/namespaces/shop/pods/web/attach", serde_json::json!({}), "pods/attach").await;
    refused(&k10, "POST", "/apis/rbac.authorization.k8s.io/v1/namespaces/shop/rolebindings", binding("RoleBinding", Some("shop")), "rolebindings").await;
    refused(&k10, "POST", "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings", binding("ClusterRoleBinding", None), "clusterrolebindings").await;
    refused(&k10, "PATCH", "/apis/rbac.authorization.k8s.io/v1/clusterroles/k10", serde_json::json!({"rules": []}), "clusterroles").await;
    // The policy-run roles alone (a team that restores with its own credentials unbinds
    // k10-applications) write no Secret, Job or Pod and read no log outside kasten-io...
    f.kubectl(&["delete", "clusterrolebinding", "k10-applications"]);
    let secret = serde_json::json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "stringData": {"k": "v"}});
    refused(&k10, "POST", "/api/v1/namespaces/shop/secrets", secret, "secrets").await;
    let pod = serde_json::json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}});
    refused(&k10, "POST", "/api/v1/namespaces/shop/pods", pod, "pods").await;
    let job = serde_json::json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j"}});
    refused(&k10, "POST", "/apis/batch/v1/namespaces/default/jobs", job, "jobs").await;
    refused(&k10, "GET", "/api/v1/namespaces/shop/pods/web/log", serde_json::json!({}), "pods/log").await;
    // ...and backups of volumes with a snapshot class still run: their data movers work in
    // kasten-io.
    f.add_snapshot_class();
    tree::small(&f.volume("data"));
    f.k10.run(&["policy", "create", "shop", "--namespaces", "shop", "--profile", "immutable"]).ok();
    f.k10.run(&["policy", "run", "shop", "--wait"]).ok();
    assert_eq!(f.contents().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn what_k10_may_not_touch_is_named_and_an_administrator_restores_it() {
    let f = Fixture::new().await;
    tree::small(&f.volume("data"));
    // The application has RBAC objects; its Widgets are no longer granted to k10.
    f.kubectl_apply(
        r#"
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: reader, namespace: shop}
rules: [{apiGroups: [""], resources: [configmaps], verbs: [get]}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: reader, namespace: shop}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: reader}
subjects: [{kind: ServiceAccount, name: default, namespace: shop}]
"#,
    );
    f.kubectl(&["delete", "clusterrole", "widgets-for-k10"]);
    f.k10.run(&["policy", "create", "shop", "--namespaces", "shop", "--profile", "immutable"]).ok();
    let run = f.k10.run(&["policy", "run", "shop", "--wait"]).ok();
    assert!(
        run.stderr.contains("warning: not captured, k10 may not list them: widgets.example.com; grant get and list on them with a ClusterRole labelled k10.kasten.io/aggregate-to-k10=true"),
        "{}",
        run.stderr
    );
    // The namespace goes, and its RestorePoints with it: restore from the content.
    let point = f.contents()[0]["metadata"]["name"].as_str().unwrap().to_string();

    // k10 restores everything but the RBAC objects, and says who can.
    f.kubectl(&["delete", "namespace", "shop"]);
    f.k10.run(&["restore", &point, "-n", "shop", "--wait"]).fails_with(&[
        "Role/reader",
        "RoleBinding/reader",
        "k10 never writes RBAC objects: restore them with a cluster administrator's credentials",
    ]);
    assert!(f.kubectl(&["get", "configmaps", "-n", "shop", "-o", "name"]).contains("configmap/"), "the rest is back");
    assert!(f.kubectl(&["get", "roles", "-n", "shop", "-o", "name"]).trim().is_empty());
    // An administrator, with their own credentials, restores them.
    let admin = K10 { kubeconfig: Some(f.server.kubeconfig_path().to_path_buf()), ..f.k10.clone() };
    admin.run(&["restore", &point, "-n", "shop", "--include", "Role,RoleBinding", "--wait"]).ok();
    assert_eq!(f.kubectl(&["get", "roles,rolebindings", "-n", "shop", "-o", "name"]).lines().count(), 2);
}
