//! How users get the product: the krew manifest (krew/k10.yaml) and the k10 install chart
//! (charts/k10), linted and rendered offline through the Helm SDK (tests/support/helm.rs).
//!
//! That `kubectl k10 …` finds `kubectl-k10` on PATH is tested in tests/cli.rs.

mod support;

use serde_yaml::Value;
use support::helm;

const MANIFEST: &str = "krew/k10.yaml";
const CHART: &str = "charts/k10";
const NS: &str = "kasten-io";
const CONTROLLER: &str = "k10-controller";

fn repo_file(path: &str) -> String {
    let full = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("read {}: {e}", full.display()))
}

fn strings(value: &Value) -> Vec<&str> {
    value
        .as_sequence()
        .unwrap_or_else(|| panic!("not a list: {value:?}"))
        .iter()
        .map(|v| v.as_str().unwrap_or_else(|| panic!("not a string: {v:?}")))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// krew

#[test]
fn krew_manifest_is_a_plugin_that_lists_only_real_archives() {
    let m: Value = serde_yaml::from_str(&repo_file(MANIFEST)).expect("krew/k10.yaml parses");
    assert_eq!(m["apiVersion"].as_str(), Some("krew.googlecontainertools.github.com/v1alpha2"));
    assert_eq!(m["kind"].as_str(), Some("Plugin"));
    assert_eq!(m["metadata"]["name"].as_str(), Some("k10"), "installed as `kubectl k10`");

    let spec = &m["spec"];
    let version = format!("v{}", env!("CARGO_PKG_VERSION"));
    assert_eq!(spec["version"].as_str(), Some(version.as_str()), "spec.version follows Cargo.toml");
    for field in ["homepage", "shortDescription", "description"] {
        let text = spec[field].as_str().unwrap_or_else(|| panic!("spec.{field} is missing"));
        assert!(!text.trim().is_empty(), "spec.{field} is empty");
    }
    assert!(spec["homepage"].as_str().unwrap().starts_with("https://"), "homepage is a URL");

    let platforms = spec["platforms"].as_sequence().expect("spec.platforms is a list");
    let mut seen = Vec::new();
    for p in platforms {
        let labels = &p["selector"]["matchLabels"];
        let (os, arch) = (
            labels["os"].as_str().unwrap_or_else(|| panic!("no os label: {p:?}")),
            labels["arch"].as_str().unwrap_or_else(|| panic!("no arch label: {p:?}")),
        );
        seen.push(format!("{os}/{arch}"));

        let uri = p["uri"].as_str().unwrap_or_else(|| panic!("{os}/{arch}: no uri"));
        assert!(uri.starts_with("https://"), "{os}/{arch}: uri {uri} is not https");
        assert!(uri.ends_with(&format!("kubectl-k10-{os}-{arch}.tar.gz")), "{os}/{arch}: uri {uri} names another archive");
        assert!(uri.contains(&format!("/{version}/")), "{os}/{arch}: uri {uri} is not the {version} release");

        let sha = p["sha256"].as_str().unwrap_or_else(|| panic!("{os}/{arch}: no sha256"));
        assert!(
            sha.len() == 64 && sha.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
            "{os}/{arch}: sha256 {sha:?} is not 64 lowercase hex digits"
        );
        assert!(sha.bytes().any(|b| b != b'0'), "{os}/{arch}: a placeholder sha256 (list only platforms whose archive exists)");
        assert_eq!(p["bin"].as_str(), Some("kubectl-k10"), "{os}/{arch}: bin");

        let files = p["files"].as_sequence().unwrap_or_else(|| panic!("{os}/{arch}: no files"));
        let from: Vec<&str> = files.iter().filter_map(|f| f["from"].as_str()).collect();
        for wanted in ["kubectl-k10", "LICENSE"] {
            assert!(from.contains(&wanted), "{os}/{arch}: files do not copy {wanted}: {files:?}");
        }
        assert!(files.iter().all(|f| f["to"].as_str().is_some()), "{os}/{arch}: every file needs a `to`");
    }
    // What krew/release.sh builds here; the release workflow publishes all four.
    assert_eq!(seen, ["linux/amd64"]);
}

#[test]
fn the_release_workflow_builds_every_platform_the_image_and_the_krew_manifest() {
    let w: Value = serde_yaml::from_str(&repo_file(".github/workflows/release.yml")).expect("the release workflow parses");
    let tags: Vec<&str> = w["on"]["push"]["tags"].as_sequence().expect("runs on tags").iter().filter_map(Value::as_str).collect();
    assert_eq!(tags, ["v*"]);
    let mut platforms: Vec<String> = w["jobs"]["archives"]["strategy"]["matrix"]["include"]
        .as_sequence()
        .expect("a matrix of platforms")
        .iter()
        .map(|p| format!("{}/{}", p["os"].as_str().unwrap(), p["arch"].as_str().unwrap()))
        .collect();
    platforms.sort();
    assert_eq!(platforms, ["darwin/amd64", "darwin/arm64", "linux/amd64", "linux/arm64"]);
    // The image: built by krew/image.sh (as CI builds it) on amd64 and arm64, then one index over both.
    let mut arches: Vec<&str> = w["jobs"]["image"]["strategy"]["matrix"]["include"]
        .as_sequence()
        .expect("a matrix of architectures")
        .iter()
        .map(|p| p["arch"].as_str().unwrap())
        .collect();
    arches.sort();
    assert_eq!(arches, ["amd64", "arm64"]);
    let image = serde_yaml::to_string(&w["jobs"]["image"]).unwrap();
    assert!(image.contains("krew/image.sh"), "{image}");
    let index = serde_yaml::to_string(&w["jobs"]["image-index"]).unwrap();
    assert!(index.contains("buildah manifest push --all"), "{index}");
    let publish = serde_yaml::to_string(&w["jobs"]["publish"]).unwrap();
    for step in ["gh release create", "krew-release-bot", "k10.yaml"] {
        assert!(publish.contains(step), "the publish job lacks {step}: {publish}");
    }
    // The archives are packed as krew's `files` expect them.
    let archives = serde_yaml::to_string(&w["jobs"]["archives"]).unwrap();
    assert!(archives.contains("kubectl-k10 LICENSE README.md"), "{archives}");
}

#[test]
fn the_archive_contents_exist() {
    // The archive packs these (krew/release.sh); the manifest's `files` copy the first two.
    for file in ["LICENSE", "README.md", "krew/release.sh"] {
        assert!(!repo_file(file).trim().is_empty(), "{file} is empty");
    }
    assert!(repo_file("LICENSE").contains("Apache License") && repo_file("LICENSE").contains("Version 2.0"));
    assert!(
        repo_file("Cargo.toml").lines().any(|l| l.replace(' ', "") == "license=\"Apache-2.0\""),
        "LICENSE is the license Cargo.toml names"
    );
}

// ---------------------------------------------------------------------------------------------
// charts/k10

fn render(sets: &[(&str, &str)]) -> Vec<Value> {
    helm::template(CHART, NS, sets).unwrap_or_else(|e| panic!("rendering failed: {e}"))
}

fn object<'a>(docs: &'a [Value], kind: &str, name: &str) -> &'a Value {
    helm::find(docs, kind, name).unwrap_or_else(|| panic!("no {kind} {name} in {docs:#?}"))
}

fn container(deployment: &Value) -> &Value {
    let containers = deployment["spec"]["template"]["spec"]["containers"].as_sequence().expect("containers");
    assert_eq!(containers.len(), 1, "one container: {containers:#?}");
    &containers[0]
}

#[track_caller]
fn refused(sets: &[(&str, &str)], fragments: &[&str]) {
    let err = match helm::template(CHART, NS, sets) {
        Ok(docs) => panic!("expected a refusal for {sets:?}, rendered:\n{docs:#?}"),
        Err(err) => err,
    };
    for f in fragments {
        assert!(err.contains(f), "expected {f:?} in the error:\n{err}");
    }
}

/// The structure every rendered object must have.
#[track_caller]
fn check_objects(docs: &[Value]) {
    assert!(!docs.is_empty(), "nothing rendered");
    for doc in docs {
        for field in ["apiVersion", "kind"] {
            assert!(doc[field].as_str().is_some_and(|s| !s.is_empty()), "no {field}: {doc:#?}");
        }
        assert!(doc["metadata"]["name"].as_str().is_some_and(|s| !s.is_empty()), "no metadata.name: {doc:#?}");
        let kind = doc["kind"].as_str().unwrap();
        assert_ne!(kind, "Namespace", "the chart installs into the release namespace, it does not create one");
        if !matches!(kind, "ClusterRole" | "ClusterRoleBinding") {
            assert_eq!(doc["metadata"]["namespace"].as_str(), Some(NS), "{kind} is in the release namespace");
        }
    }
}

/// The controller's invariants: the product's image and ServiceAccount, non-root with a
/// read-only root, and the maintenance schedule it is given.
#[track_caller]
fn check_controller(deployment: &Value, maintenance: &str, timeout: &str, image: &str) {
    assert_eq!(deployment["apiVersion"].as_str(), Some("apps/v1"));
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(pod["serviceAccountName"].as_str(), Some("k10"));
    assert_eq!(pod["securityContext"]["runAsNonRoot"].as_bool(), Some(true), "pod runAsNonRoot");
    assert!(pod["securityContext"]["runAsUser"].as_u64().is_some_and(|u| u > 0), "pod runs as a non-root uid");

    let c = container(deployment);
    assert_eq!(strings(&c["command"]), ["kubectl-k10"]);
    assert_eq!(strings(&c["args"]), ["controller", "--maintenance-frequency", maintenance, "--maintenance-timeout", timeout]);
    assert_eq!(c["image"].as_str(), Some(image));
    let sc = &c["securityContext"];
    assert_eq!(sc["runAsNonRoot"].as_bool(), Some(true), "container runAsNonRoot");
    assert_eq!(sc["readOnlyRootFilesystem"].as_bool(), Some(true), "readOnlyRootFilesystem");
    assert_eq!(sc["allowPrivilegeEscalation"].as_bool(), Some(false), "allowPrivilegeEscalation");
    assert_eq!(strings(&sc["capabilities"]["drop"]), ["ALL"]);
    assert!(sc["privileged"].as_bool() != Some(true));
    // With a read-only root, HOME must point at the writable volume.
    let env = c["env"].as_sequence().expect("env");
    assert!(env.iter().any(|e| e["name"].as_str() == Some("HOME") && e["value"].as_str() == Some("/tmp")), "{env:?}");
    // The Jobs it starts run its own image.
    assert!(env.iter().any(|e| e["name"].as_str() == Some("K10_IMAGE") && e["value"].as_str() == Some(image)), "{env:?}");
    let mounts = c["volumeMounts"].as_sequence().expect("volumeMounts");
    assert!(mounts.iter().any(|m| m["mountPath"].as_str() == Some("/tmp")), "{mounts:?}");
}

#[test]
fn chart_lints_clean() {
    let run = helm::lint(CHART);
    assert!(run.success(), "helm lint --strict failed:\n{}", run.all());
    // Nothing at all: no error, no warning, not even an informational notice (such as a missing icon).
    for level in ["[ERROR]", "[WARNING]", "[INFO]"] {
        assert!(!run.stdout.contains(level), "lint findings:\n{}", run.all());
    }
    assert!(run.stdout.contains("1 chart(s) linted"), "{}", run.all());
}

#[test]
fn chart_metadata_matches_the_crate() {
    let chart: Value = serde_yaml::from_str(&repo_file("charts/k10/Chart.yaml")).unwrap();
    assert_eq!(chart["apiVersion"].as_str(), Some("v2"));
    assert_eq!(chart["name"].as_str(), Some("k10"));
    assert_eq!(chart["version"].as_str(), Some("0.1.0"));
    assert_eq!(chart["appVersion"].as_str(), Some(env!("CARGO_PKG_VERSION")), "appVersion follows the crate");
    // Both charts carry what a chart repository shows: where it lives, who keeps it, an icon.
    for path in ["charts/k10/Chart.yaml", "charts/k10restore/Chart.yaml"] {
        let c: Value = serde_yaml::from_str(&repo_file(path)).unwrap();
        for field in ["home", "icon", "kubeVersion", "description"] {
            assert!(c[field].as_str().is_some_and(|v| !v.is_empty()), "{path}: no {field}");
        }
        assert!(c["icon"].as_str().unwrap().starts_with("data:image/svg+xml;base64,"), "{path}: icon");
        assert!(!c["sources"].as_sequence().unwrap().is_empty(), "{path}: no sources");
        assert!(c["maintainers"][0]["name"].as_str().is_some(), "{path}: no maintainers");
    }
    let schema: serde_json::Value = serde_json::from_str(&repo_file("charts/k10/values.schema.json")).unwrap();
    assert_eq!(schema["additionalProperties"], serde_json::json!(false), "unknown top-level values are refused");
}

#[test]
fn renders_with_default_values() {
    let docs = render(&[]);
    check_objects(&docs);
    let mut kinds: Vec<String> = docs
        .iter()
        .map(|d| format!("{}/{}", d["kind"].as_str().unwrap(), d["metadata"]["name"].as_str().unwrap()))
        .collect();
    kinds.sort();
    assert_eq!(
        kinds,
        [
            "ClusterRole/k10",
            "ClusterRole/k10-applications",
            "ClusterRole/k10-custom-resources",
            "ClusterRoleBinding/k10",
            "ClusterRoleBinding/k10-applications",
            "ClusterRoleBinding/k10-custom-resources",
            "Deployment/k10-controller",
            "Role/k10",
            "RoleBinding/k10",
            "ServiceAccount/k10"
        ]
    );

    let controller = object(&docs, "Deployment", CONTROLLER);
    let image = format!("k10/kubectl-k10:{}", env!("CARGO_PKG_VERSION"));
    check_controller(controller, "@daily", "21600s", &image);
    assert_eq!(controller["spec"]["replicas"].as_u64(), Some(2));
    let c = container(controller);
    assert_eq!(c["imagePullPolicy"].as_str(), Some("IfNotPresent"));
    assert_eq!(c["resources"]["limits"]["memory"].as_str(), Some("256Mi"));
}

/// The chart's controller Deployment runs what `install` applies, the same way.
#[test]
fn the_controller_is_what_install_deploys() {
    let docs = render(&[]);
    let got = serde_json::to_value(object(&docs, "Deployment", CONTROLLER)).unwrap();
    let want = serde_json::to_value(k10::controller::deployment::deployment()).unwrap();
    let (got_pod, want_pod) = (&got["spec"]["template"]["spec"], &want["spec"]["template"]["spec"]);
    assert_eq!(got["spec"]["replicas"], want["spec"]["replicas"]);
    for field in ["serviceAccountName", "securityContext", "volumes"] {
        assert_eq!(got_pod[field], want_pod[field], "pod {field}");
    }
    let (got_c, want_c) = (&got_pod["containers"][0], &want_pod["containers"][0]);
    for field in ["command", "args", "env", "ports", "livenessProbe", "readinessProbe", "resources", "securityContext", "volumeMounts", "image"] {
        assert_eq!(got_c[field], want_c[field], "container {field}: charts/k10/templates/controller.yaml and src/controller/deployment.rs differ");
    }
    // Off by a value: no Deployment.
    let docs = render(&[("controller.enabled", "false")]);
    assert!(helm::find(&docs, "Deployment", CONTROLLER).is_none());
}

#[test]
fn rbac_is_what_install_grants() {
    let docs = render(&[]);
    // Every role and binding `install` applies, rendered alike (labels and namespace aside).
    for want in k10::k8s::rbac::objects() {
        let (kind, name) = (want["kind"].as_str().unwrap(), want["metadata"]["name"].as_str().unwrap());
        let got = serde_json::to_value(object(&docs, kind, name)).unwrap();
        for field in ["rules", "roleRef", "subjects", "aggregationRule"] {
            assert_eq!(got[field], want[field], "{kind}/{name} {field}: charts/k10/templates/rbac.yaml and src/k8s/rbac.rs differ");
        }
    }
    assert!(helm::find(&docs, "ServiceAccount", k10::cli::install::SERVICE_ACCOUNT).is_some());
}

#[test]
fn renders_with_customised_values() {
    let sets = [
        ("image.repository", "acme/kubectl-k10"),
        ("image.tag", "0.1.0-rc1"),
        ("image.pullPolicy", "Always"),
        ("maintenance.schedule", "30 1 */2 * *"),
        ("maintenance.timeout", "7200"),
        ("controller.replicas", "3"),
        ("controller.resources.requests.cpu", "200m"),
        ("controller.resources.requests.memory", "256Mi"),
        ("controller.resources.limits.memory", "1Gi"),
        ("podLabels.team", "storage"),
        ("serviceAccount.annotations.example\\.com/role", "backup"),
    ];
    let docs = render(&sets);
    check_objects(&docs);
    let controller = object(&docs, "Deployment", CONTROLLER);
    check_controller(controller, "30 1 */2 * *", "7200s", "acme/kubectl-k10:0.1.0-rc1");
    assert_eq!(controller["spec"]["replicas"].as_u64(), Some(3));
    assert_eq!(controller["spec"]["template"]["metadata"]["labels"]["team"].as_str(), Some("storage"));
    let c = container(controller);
    assert_eq!(c["imagePullPolicy"].as_str(), Some("Always"));
    assert_eq!(c["resources"]["requests"]["cpu"].as_str(), Some("200m"));
    assert_eq!(c["resources"]["requests"]["memory"].as_str(), Some("256Mi"));
    assert_eq!(c["resources"]["limits"]["memory"].as_str(), Some("1Gi"));
    let sa = object(&docs, "ServiceAccount", "k10");
    assert_eq!(sa["metadata"]["annotations"]["example.com/role"].as_str(), Some("backup"));

    for schedule in ["@hourly", "0 3 * * *", "*/15 */6 * * *"] {
        let docs = render(&[("maintenance.schedule", schedule)]);
        assert_eq!(strings(&container(object(&docs, "Deployment", CONTROLLER))["args"])[2], schedule);
    }

    // Maintenance off: the controller is told so (and the rest still installs).
    let docs = render(&[("maintenance.enabled", "false")]);
    check_objects(&docs);
    assert_eq!(strings(&container(object(&docs, "Deployment", CONTROLLER))["args"])[2], "off");
    assert!(helm::find(&docs, "ClusterRole", "k10").is_some());
}

#[test]
fn bad_values_are_refused_by_the_schema() {
    refused(&[("maintenance.schedule", "every tuesday")], &["schema", "/maintenance/schedule"]);
    // Valid cron, but less often than every 2 days: the locks would not be extended in time.
    refused(&[("maintenance.schedule", "0 3 * * 2")], &["/maintenance/schedule"]);
    refused(&[("maintenance.schedule", "0 3 */3 * *")], &["/maintenance/schedule"]);
    refused(&[("maintenance.schedule", "@weekly")], &["/maintenance/schedule"]);
    refused(&[("maintenance.schedule", "")], &["/maintenance/schedule"]);
    refused(&[("schedule", "@daily")], &["schema", "schedule"]);
    refused(&[("image.pullPolicy", "Sometimes")], &["/image/pullPolicy"]);
    refused(&[("image.repository", "")], &["/image/repository"]);
    refused(&[("maintenance.suspend", "yes")], &["schema", "suspend"]);
    refused(&[("controller.resources.limits.memory", "lots")], &["/controller/resources/limits/memory"]);
    refused(&[("controller.replicas", "-1")], &["/controller/replicas"]);
}
