//! Helm charts, linted and rendered offline as `helm lint` and `helm template` would, through
//! `tests/helm/render.py` (the Helm SDK packaged as helm-python-sdk; no helm binary, no cluster).
//!
//! The package lives in the test environment's virtual environment, which `tests/s3env.sh install`
//! creates (idempotent; run here once per test process).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The release name charts are rendered under: the one the README's install command uses.
pub const RELEASE: &str = "k10-restore";

/// What one run of the script printed, and how it ended.
#[derive(Debug, Clone)]
pub struct HelmRun {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl HelmRun {
    pub fn success(&self) -> bool {
        self.code == 0
    }

    /// Both streams, for messages.
    pub fn all(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }
}

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The venv's python, once `tests/s3env.sh install` has made sure helm-python-sdk is in it.
fn python() -> &'static Path {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON.get_or_init(|| {
        let status = Command::new("bash")
            .arg(repo_root().join("tests/s3env.sh"))
            .arg("install")
            .status()
            .expect("run tests/s3env.sh install");
        assert!(status.success(), "tests/s3env.sh install failed");
        // tests/s3env.sh keeps its environment in K10_S3ENV_DIR when set.
        let dir =
            std::env::var_os("K10_S3ENV_DIR").map(PathBuf::from).unwrap_or_else(|| repo_root().join("target/s3env"));
        let python = dir.join("venv/bin/python");
        assert!(python.exists(), "no python in the test venv: {}", python.display());
        python
    })
}

fn chart_path(chart: &str) -> PathBuf {
    let path = Path::new(chart);
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        repo_root().join(path)
    }
}

/// One `--set key=value` that sets `key` to exactly `value`: Helm's `--set` syntax splits on commas
/// and treats `\` as an escape, so both are escaped (a value such as `profiles,policies` stays one
/// string). Numbers and booleans are still typed as on the command line (`restore.timeout=120`).
fn set_arg(key: &str, value: &str) -> String {
    let mut escaped = String::with_capacity(value.len());
    for c in value.chars() {
        if matches!(c, '\\' | ',') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    format!("{key}={escaped}")
}

/// Runs `render.py SUBCOMMAND CHART ARGS...` from the repository root.
pub fn render_py(subcommand: &str, chart: &str, args: &[String]) -> HelmRun {
    let out = Command::new(python())
        .arg(repo_root().join("tests/helm/render.py"))
        .arg(subcommand)
        .arg(chart_path(chart))
        .args(args)
        .current_dir(repo_root())
        .output()
        .expect("run tests/helm/render.py");
    HelmRun {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// `helm lint --strict CHART`: succeeds only when the chart has no error and no warning
/// (informational findings, such as a missing icon, are printed but pass).
pub fn lint(chart: &str) -> HelmRun {
    render_py("lint", chart, &["--strict".to_string()])
}

/// `helm template k10-restore CHART -n NAMESPACE --set k=v ...`: the rendered objects, one YAML value
/// per document (empty documents dropped), in the order `helm install` creates them; or the error
/// Helm reported (a schema refusal, a failed `required`, a template error).
pub fn template(chart: &str, namespace: &str, sets: &[(&str, &str)]) -> Result<Vec<serde_yaml::Value>, String> {
    let mut args = vec!["--name".to_string(), RELEASE.to_string(), "--namespace".to_string(), namespace.to_string()];
    for (key, value) in sets {
        args.push("--set".to_string());
        args.push(set_arg(key, value));
    }
    let run = render_py("template", chart, &args);
    if !run.success() {
        return Err(run.stderr);
    }
    let mut docs = documents(&run.stdout)?;
    // In the order `helm install` creates them, so that a Job never waits for its ServiceAccount.
    docs.sort_by_key(|d| {
        let kind = d["kind"].as_str().unwrap_or_default();
        INSTALL_ORDER.iter().position(|k| *k == kind).unwrap_or(INSTALL_ORDER.len())
    });
    Ok(docs)
}

/// Helm's install order of kinds (`releaseutil.InstallOrder`); other kinds come last.
const INSTALL_ORDER: &[&str] = &[
    "PriorityClass", "Namespace", "NetworkPolicy", "ResourceQuota", "LimitRange", "PodSecurityPolicy",
    "PodDisruptionBudget", "ServiceAccount", "Secret", "SecretList", "ConfigMap", "StorageClass",
    "PersistentVolume", "PersistentVolumeClaim", "CustomResourceDefinition", "ClusterRole", "ClusterRoleList",
    "ClusterRoleBinding", "ClusterRoleBindingList", "Role", "RoleList", "RoleBinding", "RoleBindingList", "Service",
    "DaemonSet", "Pod", "ReplicationController", "ReplicaSet", "Deployment", "HorizontalPodAutoscaler",
    "StatefulSet", "Job", "CronJob", "IngressClass", "Ingress", "APIService",
];

/// Every non-empty document of a YAML stream.
pub fn documents(yaml: &str) -> Result<Vec<serde_yaml::Value>, String> {
    use serde::Deserialize;
    let mut docs = Vec::new();
    for doc in serde_yaml::Deserializer::from_str(yaml) {
        let value =
            serde_yaml::Value::deserialize(doc).map_err(|e| format!("rendered YAML does not parse: {e}\n{yaml}"))?;
        if !value.is_null() {
            docs.push(value);
        }
    }
    Ok(docs)
}

/// The rendered object of the given kind and name.
pub fn find<'a>(docs: &'a [serde_yaml::Value], kind: &str, name: &str) -> Option<&'a serde_yaml::Value> {
    docs.iter().find(|d| d["kind"].as_str() == Some(kind) && d["metadata"]["name"].as_str() == Some(name))
}
