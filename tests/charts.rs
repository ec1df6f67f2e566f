//! The k10restore chart: lints clean, renders the DR restore Job with exactly the command line the
//! values ask for, and refuses values that would make a Job that cannot work.
//!
//! Rendered offline through the Helm SDK (tests/support/helm.rs), as `helm template` would.

mod support;

use serde_yaml::Value;
use support::helm;

const CHART: &str = "charts/k10restore";
const NS: &str = "kasten-io";
const REQUIRED: [(&str, &str); 2] = [("sourceClusterID", "abc"), ("profile.name", "p")];

fn render(sets: &[(&str, &str)]) -> Vec<Value> {
    helm::template(CHART, NS, sets).unwrap_or_else(|e| panic!("rendering failed: {e}"))
}

fn job(docs: &[Value]) -> &Value {
    helm::find(docs, "Job", "k10-restore").unwrap_or_else(|| panic!("no Job k10-restore in {docs:#?}"))
}

fn container(job: &Value) -> &Value {
    let containers = job["spec"]["template"]["spec"]["containers"].as_sequence().expect("containers");
    assert_eq!(containers.len(), 1, "one container: {containers:#?}");
    &containers[0]
}

fn strings(value: &Value) -> Vec<&str> {
    value
        .as_sequence()
        .unwrap_or_else(|| panic!("not a list: {value:?}"))
        .iter()
        .map(|v| v.as_str().unwrap_or_else(|| panic!("not a string: {v:?}")))
        .collect()
}

#[track_caller]
fn refused(sets: &[(&str, &str)], fragments: &[&str]) -> String {
    let err = match helm::template(CHART, NS, sets) {
        Ok(docs) => panic!("expected a refusal for {sets:?}, rendered:\n{docs:#?}"),
        Err(err) => err,
    };
    for f in fragments {
        assert!(err.contains(f), "expected {f:?} in the error:\n{err}");
    }
    err
}

#[test]
fn lints_clean() {
    let run = helm::lint(CHART);
    assert!(run.success(), "helm lint --strict failed:\n{}", run.all());
    // Nothing at all: no error, no warning, not even an informational notice (such as a missing icon).
    for level in ["[ERROR]", "[WARNING]", "[INFO]"] {
        assert!(!run.stdout.contains(level), "lint findings:\n{}", run.all());
    }
    assert!(run.stdout.contains("1 chart(s) linted"), "{}", run.all());
}

#[test]
fn lint_reports_a_broken_chart() {
    // The harness itself must be able to fail: a chart whose template does not parse.
    let dir = tempfile::tempdir().unwrap();
    let chart = dir.path().join("broken");
    std::fs::create_dir_all(chart.join("templates")).unwrap();
    std::fs::write(chart.join("Chart.yaml"), "apiVersion: v2\nname: broken\nversion: 0.1.0\n").unwrap();
    std::fs::write(chart.join("values.yaml"), "{}\n").unwrap();
    std::fs::write(chart.join("templates/cm.yaml"), "kind: ConfigMap\nname: {{ .Values.x \n").unwrap();
    let run = helm::lint(chart.to_str().unwrap());
    assert!(!run.success(), "lint passed a broken chart:\n{}", run.all());
    assert!(run.stdout.contains("[ERROR]"), "{}", run.all());
}

#[test]
fn chart_metadata_matches_the_crate() {
    let chart: Value = serde_yaml::from_str(&std::fs::read_to_string(format!("{CHART}/Chart.yaml")).unwrap()).unwrap();
    assert_eq!(chart["apiVersion"].as_str(), Some("v2"));
    assert_eq!(chart["name"].as_str(), Some("k10restore"));
    assert_eq!(chart["version"].as_str(), Some("0.1.0"));
    assert_eq!(chart["appVersion"].as_str(), Some(env!("CARGO_PKG_VERSION")), "appVersion follows the crate");
}

#[test]
fn required_values_only_give_the_minimal_command_line() {
    let docs = render(&REQUIRED);
    let job = job(&docs);
    let c = container(job);
    assert_eq!(strings(&c["command"]), ["kubectl-k10"]);
    assert_eq!(
        strings(&c["args"]),
        ["dr", "restore", "--source-cluster-id", "abc", "--profile", "p", "--passphrase-secret", "k10-dr-secret"]
    );
    assert_eq!(c["image"].as_str(), Some(format!("k10/kubectl-k10:{}", env!("CARGO_PKG_VERSION")).as_str()));
    assert_eq!(c["imagePullPolicy"].as_str(), Some("IfNotPresent"));
    assert_eq!(job["metadata"]["namespace"].as_str(), Some(NS));
    assert_eq!(job["spec"]["activeDeadlineSeconds"].as_u64(), Some(3600));
    assert_eq!(job["spec"]["backoffLimit"].as_u64(), Some(0));
    let pod = &job["spec"]["template"]["spec"];
    assert_eq!(pod["restartPolicy"].as_str(), Some("Never"));
    assert_eq!(pod["serviceAccountName"].as_str(), Some("k10-restore"));
    assert!(pod["imagePullSecrets"].is_null(), "no pull secrets unless set: {pod:#?}");
}

#[test]
fn every_value_reaches_the_job() {
    let docs = render(&[
        ("sourceClusterID", "9f3c2d4e-0000-4a1b-8c2d-112233445566"),
        ("profile.name", "dr-bucket"),
        ("pointInTime", "2026-01-02T15:04:05Z"),
        ("skipResource", "profiles,policies"),
        ("restore.timeout", "120"),
        ("image.repository", "example/k10-cli"),
        ("image.tag", "v9.9.9"),
        ("image.pullPolicy", "Always"),
        ("drPassphraseSecret", "my-dr-passphrase"),
        ("podLabels.team", "platform"),
        ("podAnnotations.example\\.com/owner", "dr-drill"),
        ("imagePullSecrets[0].name", "regcred"),
    ]);
    let job = job(&docs);
    let c = container(job);
    assert_eq!(
        strings(&c["args"]),
        [
            "dr",
            "restore",
            "--source-cluster-id",
            "9f3c2d4e-0000-4a1b-8c2d-112233445566",
            "--profile",
            "dr-bucket",
            "--point-in-time",
            "2026-01-02T15:04:05Z",
            "--skip-resource",
            "profiles,policies",
            "--passphrase-secret",
            "my-dr-passphrase",
        ]
    );
    assert_eq!(c["image"].as_str(), Some("example/k10-cli:v9.9.9"));
    assert_eq!(c["imagePullPolicy"].as_str(), Some("Always"));
    assert_eq!(job["spec"]["activeDeadlineSeconds"].as_u64(), Some(120));
    let template = &job["spec"]["template"];
    assert_eq!(template["metadata"]["labels"]["team"].as_str(), Some("platform"));
    // The chart's own pod labels stay beside the extra ones.
    assert_eq!(template["metadata"]["labels"]["app.kubernetes.io/name"].as_str(), Some("k10restore"));
    assert_eq!(template["metadata"]["annotations"]["example.com/owner"].as_str(), Some("dr-drill"));
    let pull: Vec<&str> = template["spec"]["imagePullSecrets"]
        .as_sequence()
        .expect("imagePullSecrets")
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(pull, ["regcred"]);
}

#[test]
fn a_point_in_time_with_an_offset_is_accepted() {
    let docs = render(&[REQUIRED[0], REQUIRED[1], ("pointInTime", "2026-01-02T17:04:05.5+02:00")]);
    let args = strings(&container(job(&docs))["args"]).iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let at = args.iter().position(|a| a == "--point-in-time").expect("--point-in-time");
    assert_eq!(args[at + 1], "2026-01-02T17:04:05.5+02:00");
}

#[test]
fn a_missing_source_cluster_id_fails_with_a_clear_message() {
    let err = refused(&[("profile.name", "p")], &["sourceClusterID is required", "--set sourceClusterID="]);
    assert!(!err.contains("profile.name is required"), "{err}");
}

#[test]
fn a_missing_profile_name_fails_with_a_clear_message() {
    refused(&[("sourceClusterID", "abc")], &["profile.name is required", "--set profile.name="]);
}

#[test]
fn the_schema_refuses_malformed_values() {
    // Not RFC 3339.
    refused(&[REQUIRED[0], REQUIRED[1], ("pointInTime", "yesterday")], &["pointInTime", "does not match pattern"]);
    // A date without a time or a zone is not a point in time either.
    refused(&[REQUIRED[0], REQUIRED[1], ("pointInTime", "2026-01-02")], &["pointInTime"]);
    refused(&[REQUIRED[0], REQUIRED[1], ("pointInTime", "2026-01-02T15:04:05")], &["pointInTime"]);
    // Only profiles, policies and secrets can be skipped.
    refused(&[REQUIRED[0], REQUIRED[1], ("skipResource", "profiles,restorepoints")], &["skipResource"]);
    refused(&[REQUIRED[0], REQUIRED[1], ("restore.timeout", "soon")], &["restore/timeout"]);
    refused(&[REQUIRED[0], REQUIRED[1], ("image.pullPolicy", "Sometimes")], &["pullPolicy"]);
    // A misspelt value is refused rather than silently ignored.
    refused(&[REQUIRED[0], REQUIRED[1], ("sourceClusterId", "abc")], &["sourceClusterId"]);
}

#[test]
fn every_object_is_well_formed_and_in_the_release_namespace() {
    let docs = render(&REQUIRED);
    for doc in &docs {
        assert!(doc["apiVersion"].as_str().is_some_and(|s| !s.is_empty()), "no apiVersion: {doc:#?}");
        assert!(doc["kind"].as_str().is_some_and(|s| !s.is_empty()), "no kind: {doc:#?}");
        let name = doc["metadata"]["name"].as_str().unwrap_or_else(|| panic!("no metadata.name: {doc:#?}"));
        assert!(!name.is_empty() && name.len() <= 63, "name {name:?}");
        let cluster_scoped = matches!(doc["kind"].as_str(), Some("ClusterRole" | "ClusterRoleBinding"));
        assert_eq!(
            doc["metadata"]["namespace"].as_str(),
            if cluster_scoped { None } else { Some(NS) },
            "namespace of {}/{name}",
            doc["kind"].as_str().unwrap()
        );
    }
    let mut kinds: Vec<&str> = docs.iter().map(|d| d["kind"].as_str().unwrap()).collect();
    kinds.sort_unstable();
    assert_eq!(kinds, ["ClusterRole", "ClusterRoleBinding", "Job", "Role", "RoleBinding", "ServiceAccount"]);
    assert!(helm::find(&docs, "ServiceAccount", "k10-restore").is_some());
}

/// The verbs granted on `resource` of `group` by a Role or ClusterRole.
fn verbs<'a>(role: &'a Value, group: &str, resource: &str) -> Vec<&'a str> {
    let mut verbs = Vec::new();
    for rule in role["rules"].as_sequence().expect("rules") {
        if strings(&rule["apiGroups"]).contains(&group) && strings(&rule["resources"]).contains(&resource) {
            verbs.extend(strings(&rule["verbs"]));
        }
    }
    verbs.sort_unstable();
    verbs
}

#[test]
fn rbac_grants_what_the_restore_needs() {
    let docs = render(&REQUIRED);
    let role = helm::find(&docs, "Role", "k10-restore").expect("Role k10-restore");
    // Only what the restore does (it creates what the catalog held, never changes or deletes):
    // the drill's DR restore runs under exactly these rules on the stand-in, which enforces RBAC.
    assert_eq!(verbs(role, "", "secrets"), ["create", "get"]);
    assert_eq!(verbs(role, "config.kio.kasten.io", "profiles"), ["create", "get", "list"]);
    assert_eq!(verbs(role, "config.kio.kasten.io", "policies"), ["create", "get", "list"]);
    assert_eq!(role["rules"].as_sequence().unwrap().len(), 2, "no other rule");

    let cluster_role = docs.iter().find(|d| d["kind"].as_str() == Some("ClusterRole")).expect("ClusterRole");
    assert_eq!(verbs(cluster_role, "", "namespaces"), ["get", "list"]);
    for resource in ["restorepoints", "restorepointcontents"] {
        assert_eq!(verbs(cluster_role, "apps.kio.kasten.io", resource), ["create", "get", "list"]);
    }
    assert_eq!(cluster_role["rules"].as_sequence().unwrap().len(), 2, "no other rule");

    // Both bindings give their role to the Job's service account in the release namespace.
    for (kind, role_kind, role_name) in [
        ("RoleBinding", "Role", "k10-restore"),
        ("ClusterRoleBinding", "ClusterRole", cluster_role["metadata"]["name"].as_str().unwrap()),
    ] {
        let binding = docs.iter().find(|d| d["kind"].as_str() == Some(kind)).unwrap_or_else(|| panic!("no {kind}"));
        assert_eq!(binding["roleRef"]["kind"].as_str(), Some(role_kind));
        assert_eq!(binding["roleRef"]["name"].as_str(), Some(role_name));
        let subjects = binding["subjects"].as_sequence().unwrap();
        assert_eq!(subjects.len(), 1);
        assert_eq!(subjects[0]["kind"].as_str(), Some("ServiceAccount"));
        assert_eq!(subjects[0]["name"].as_str(), Some("k10-restore"));
        assert_eq!(subjects[0]["namespace"].as_str(), Some(NS));
    }
}

#[test]
fn the_job_runs_locked_down() {
    let docs = render(&REQUIRED);
    let job = job(&docs);
    let pod = &job["spec"]["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsNonRoot"].as_bool(), Some(true));
    assert_eq!(pod["securityContext"]["runAsUser"].as_u64(), Some(65532));
    let sc = &container(job)["securityContext"];
    assert_eq!(sc["allowPrivilegeEscalation"].as_bool(), Some(false));
    assert_eq!(sc["readOnlyRootFilesystem"].as_bool(), Some(true));
    assert_eq!(strings(&sc["capabilities"]["drop"]), ["ALL"]);
}

#[test]
fn no_registry_host_is_baked_into_the_default_image() {
    let docs = render(&REQUIRED);
    let image = container(job(&docs))["image"].as_str().unwrap().to_string();
    let repository = image.rsplit_once(':').unwrap().0;
    // A first path component with a dot or a port would be a registry host.
    let first = repository.split('/').next().unwrap();
    assert!(!first.contains('.') && !first.contains(':'), "image {image:?} names a registry");
}
