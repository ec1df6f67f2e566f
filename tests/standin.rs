//! Tests of the Kubernetes API stand-in (tests/support/apiserver), through the `kube` client the
//! product uses and through `kubectl` (v1.32; `KUBECTL` overrides `/usr/bin/kubectl`).

mod support;

use futures_util::StreamExt;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, PersistentVolumeClaim, Pod, Secret};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{
    Api, DeleteParams, DynamicObject, ListParams, LogParams, Patch, PatchParams, PostParams,
    WatchEvent, WatchParams,
};
use kube::core::{ApiResource, GroupVersionKind};
use kube::discovery::{Discovery, Scope};
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::apiserver::{ApiServer, ApiServerOptions, DEFAULT_NAMESPACE_UID, KUBE_SYSTEM_UID};

const JOB_TIMEOUT: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------------------------
// Helpers.

fn k10_binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_kubectl-k10"))
}

async fn start() -> ApiServer {
    ApiServer::start(ApiServerOptions {
        k10_binary: Some(k10_binary()),
        ..ApiServerOptions::default()
    })
    .await
    .expect("stand-in starts")
}

fn start_background() -> ApiServer {
    ApiServer::start_in_background(ApiServerOptions {
        k10_binary: Some(k10_binary()),
        ..ApiServerOptions::default()
    })
}

/// Runs kubectl against one server, with its own discovery cache.
struct Kubectl {
    kubeconfig: PathBuf,
    cache: tempfile::TempDir,
}

/// Exit status and output of one kubectl run.
struct Out {
    ok: bool,
    stdout: String,
    stderr: String,
}

impl Kubectl {
    fn new(server: &ApiServer) -> Kubectl {
        Kubectl {
            kubeconfig: server.kubeconfig_path().to_path_buf(),
            cache: tempfile::tempdir().expect("tempdir"),
        }
    }

    fn run_with_stdin(&self, args: &[&str], stdin: Option<&str>) -> Out {
        let program = std::env::var("KUBECTL").unwrap_or_else(|_| "/usr/bin/kubectl".into());
        let mut child = Command::new(&program)
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--cache-dir")
            .arg(self.cache.path())
            .args(args)
            .env_remove("KUBECONFIG")
            .env("HOME", self.cache.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
        if let Some(text) = stdin {
            child
                .stdin
                .take()
                .expect("stdin")
                .write_all(text.as_bytes())
                .expect("write stdin");
        }
        drop(child.stdin.take());
        let output = child.wait_with_output().expect("kubectl runs");
        Out {
            ok: output.status.success(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    fn run(&self, args: &[&str]) -> Out {
        self.run_with_stdin(args, None)
    }

    /// Runs and asserts success; returns stdout.
    #[track_caller]
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.ok,
            "kubectl {args:?} failed:\n{}\n{}",
            out.stdout, out.stderr
        );
        out.stdout
    }

    #[track_caller]
    fn apply(&self, extra: &[&str], manifest: &str) -> String {
        let mut args = vec!["apply", "-f", "-"];
        args.extend_from_slice(extra);
        let out = self.run_with_stdin(&args, Some(manifest));
        assert!(
            out.ok,
            "kubectl {args:?} failed:\n{}\n{}",
            out.stdout, out.stderr
        );
        out.stdout
    }

    #[track_caller]
    fn json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.extend_from_slice(&["-o", "json"]);
        serde_json::from_str(&self.ok(&all)).expect("kubectl prints JSON")
    }
}

/// A raw HTTP/1.1 request, to see exactly what the server answers.
fn raw_request(
    server: &ApiServer,
    method: &str,
    path: &str,
    content_type: &str,
    body: &str,
) -> (u16, Value) {
    let addr = server.url().trim_start_matches("http://").to_string();
    let mut stream = std::net::TcpStream::connect(&addr).expect("connect");
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).expect("send");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read");
    let (head, body) = response.split_once("\r\n\r\n").expect("HTTP response");
    let code: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("status code");
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_string()
    };
    (
        code,
        serde_json::from_str(&body).unwrap_or(Value::String(body)),
    )
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&rest[..n]);
        body = &rest[n + 2..];
    }
    out
}

fn api_code(err: &kube::Error) -> (u16, String) {
    match err {
        kube::Error::Api(status) => (status.code, status.reason.clone()),
        other => panic!("expected an API error, got {other:?}"),
    }
}

fn config_map(name: &str, labels: Value, data: Value) -> ConfigMap {
    serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "labels": labels},
        "data": data,
    }))
    .expect("valid ConfigMap")
}

const PROFILE_CRD: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.k10.io
spec:
  group: example.k10.io
  scope: Namespaced
  names:
    plural: widgets
    singular: widget
    kind: Widget
    shortNames: [wdg]
  versions:
  - name: v1alpha1
    served: true
    storage: false
    schema:
      openAPIV3Schema:
        type: object
        x-kubernetes-preserve-unknown-fields: true
  - name: v1
    served: true
    storage: true
    subresources:
      status: {}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              size: {type: integer}
              color: {type: string}
          status:
            type: object
            x-kubernetes-preserve-unknown-fields: true
"#;

fn crd_object() -> CustomResourceDefinition {
    serde_yaml::from_str(PROFILE_CRD).expect("valid CRD")
}

/// Polls a Job until it has a Complete or Failed condition (bounded).
async fn wait_for_job(jobs: &Api<Job>, name: &str) -> Job {
    let deadline = Instant::now() + JOB_TIMEOUT;
    loop {
        let job = jobs.get(name).await.expect("job exists");
        let finished = job
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| {
                c.iter()
                    .any(|c| (c.type_ == "Complete" || c.type_ == "Failed") && c.status == "True")
            });
        if finished {
            return job;
        }
        assert!(
            Instant::now() < deadline,
            "job {name} did not finish in {JOB_TIMEOUT:?}: {:?}",
            job.status
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn condition(job: &Job, kind: &str) -> Option<(String, String)> {
    job.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == kind && c.status == "True")
        .map(|c| {
            (
                c.reason.clone().unwrap_or_default(),
                c.message.clone().unwrap_or_default(),
            )
        })
}

fn job(name: &str, container: Value, volumes: Value) -> Job {
    serde_json::from_value(json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {
            "backoffLimit": 0,
            "template": {"spec": {
                "restartPolicy": "Never",
                "containers": [container],
                "volumes": volumes,
            }},
        },
    }))
    .expect("valid Job")
}

async fn pod_log_of(client: &kube::Client, namespace: &str, job_name: &str) -> String {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let list = pods
        .list(&ListParams::default().labels(&format!("job-name={job_name}")))
        .await
        .expect("pods");
    assert_eq!(list.items.len(), 1, "one pod per job");
    let name = list.items[0].metadata.name.clone().expect("pod name");
    pods.logs(&name, &LogParams::default())
        .await
        .expect("pod log")
}

// ---------------------------------------------------------------------------------------------
// Discovery and CRDs.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kube_discovery_follows_crd_lifecycle() {
    let server = start().await;
    let client = server.client().await;

    let discovery = Discovery::new(client.clone())
        .run()
        .await
        .expect("discovery");
    assert!(!discovery.has_group("example.k10.io"));
    let apps = discovery.get("apps").expect("apps group");
    assert_eq!(apps.preferred_version(), Some("v1"));
    let (deploy, caps) = apps.recommended_kind("Deployment").expect("deployments");
    assert_eq!(deploy.plural, "deployments");
    assert_eq!(caps.scope, Scope::Namespaced);
    let core = discovery.get("").expect("core group");
    let (ns, caps) = core.recommended_kind("Namespace").expect("namespaces");
    assert_eq!(ns.plural, "namespaces");
    assert_eq!(caps.scope, Scope::Cluster);

    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let created = crds
        .create(&PostParams::default(), &crd_object())
        .await
        .expect("create CRD");
    let status = created.status.expect("CRD status");
    let conditions = status.conditions.expect("conditions");
    for kind in ["Established", "NamesAccepted"] {
        assert!(
            conditions
                .iter()
                .any(|c| c.type_ == kind && c.status == "True"),
            "{kind}: {conditions:?}"
        );
    }
    assert_eq!(
        status.accepted_names.expect("accepted names").kind,
        "Widget"
    );

    let discovery = Discovery::new(client.clone())
        .run()
        .await
        .expect("discovery");
    let group = discovery
        .get("example.k10.io")
        .expect("CRD group is discovered");
    assert_eq!(
        group.preferred_version(),
        Some("v1"),
        "preferred = storage version"
    );
    assert_eq!(group.versions().collect::<Vec<_>>(), vec!["v1", "v1alpha1"]);
    let (widget, caps) = group.recommended_kind("Widget").expect("Widget");
    assert_eq!(widget.plural, "widgets");
    assert_eq!(caps.scope, Scope::Namespaced);

    // A custom object, written through one version and read through the other.
    let widgets: Api<DynamicObject> = Api::namespaced_with(client.clone(), "default", &widget);
    let mut obj = DynamicObject::new("w1", &widget);
    obj.data =
        json!({"spec": {"size": 3, "color": "blue", "undeclared": true}, "status": {"ignored": 1}});
    let stored = widgets
        .create(&PostParams::default(), &obj)
        .await
        .expect("create widget");
    assert_eq!(
        stored.data["spec"],
        json!({"size": 3, "color": "blue"}),
        "unknown fields are pruned"
    );
    assert!(
        stored.data.get("status").is_none(),
        "status is cleared on create (status subresource)"
    );
    let old_ar = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("example.k10.io", "v1alpha1", "Widget"),
        "widgets",
    );
    let old_api: Api<DynamicObject> = Api::namespaced_with(client.clone(), "default", &old_ar);
    let via_old = old_api.get("w1").await.expect("read via v1alpha1");
    assert_eq!(
        via_old.types.expect("types").api_version,
        "example.k10.io/v1alpha1"
    );

    // Status subresource: the main resource ignores status, /status writes only status.
    let patched = widgets
        .patch_status(
            "w1",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"phase": "Ready"}, "spec": {"size": 9}})),
        )
        .await
        .expect("patch status");
    assert_eq!(patched.data["status"]["phase"], "Ready");
    assert_eq!(patched.data["spec"]["size"], 3);
    let patched = widgets
        .patch(
            "w1",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"phase": "Lost"}, "spec": {"size": 4}})),
        )
        .await
        .expect("patch");
    assert_eq!(patched.data["status"]["phase"], "Ready");
    assert_eq!(patched.data["spec"]["size"], 4);
    assert_eq!(
        patched.metadata.generation,
        Some(2),
        "spec change bumps generation"
    );

    crds.delete("widgets.example.k10.io", &DeleteParams::default())
        .await
        .expect("delete CRD");
    let discovery = Discovery::new(client.clone())
        .run()
        .await
        .expect("discovery");
    assert!(!discovery.has_group("example.k10.io"), "CRD group is gone");
    let err = widgets
        .get("w1")
        .await
        .expect_err("custom objects are gone with their CRD");
    assert_eq!(api_code(&err).0, 404);
}

#[test]
fn kubectl_sees_crd_resources_come_and_go() {
    let server = start_background();
    let kubectl = Kubectl::new(&server);
    assert!(!kubectl.ok(&["api-resources"]).contains("widgets"));
    kubectl.apply(&[], PROFILE_CRD);
    kubectl.ok(&[
        "wait",
        "--for=condition=established",
        "crd/widgets.example.k10.io",
        "--timeout=10s",
    ]);

    let resources = kubectl.ok(&["api-resources", "--api-group=example.k10.io"]);
    let line = resources
        .lines()
        .find(|l| l.starts_with("widgets"))
        .expect("widgets listed");
    for part in ["wdg", "example.k10.io/v1", "true", "Widget"] {
        assert!(line.contains(part), "{line}");
    }
    let empty = kubectl.run(&["get", "widgets"]);
    assert!(
        empty.ok && empty.stderr.contains("No resources found"),
        "{}",
        empty.stderr
    );

    kubectl.apply(
        &[],
        "apiVersion: example.k10.io/v1\nkind: Widget\nmetadata: {name: w1}\nspec: {size: 1}\n",
    );
    assert!(kubectl.ok(&["get", "wdg"]).contains("w1"));
    let strict = kubectl.run_with_stdin(
        &["apply", "-f", "-"],
        Some("apiVersion: example.k10.io/v1\nkind: Widget\nmetadata: {name: w2}\nspec: {size: 1, bogus: 2}\n"),
    );
    assert!(
        !strict.ok && strict.stderr.contains("unknown field \"spec.bogus\""),
        "{}",
        strict.stderr
    );

    kubectl.ok(&["delete", "crd", "widgets.example.k10.io"]);
    assert!(!kubectl.ok(&["api-resources"]).contains("widgets"));
    assert!(!kubectl.run(&["get", "widgets"]).ok);
}

// ---------------------------------------------------------------------------------------------
// Objects through kubectl.

#[test]
fn kubectl_apply_get_delete_configmap() {
    let server = start_background();
    let kubectl = Kubectl::new(&server);
    let manifest = |data: &str| {
        format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: demo\n  labels: {{app: a}}\ndata:\n{data}")
    };

    // Client-side apply: create, then update (strategic merge patch).
    assert!(kubectl
        .apply(&[], &manifest("  one: \"1\"\n  two: \"2\"\n"))
        .contains("configmap/demo created"));
    let first = kubectl.json(&["get", "cm", "demo"]);
    assert!(kubectl
        .apply(&[], &manifest("  one: \"1\"\n  three: \"3\"\n"))
        .contains("configmap/demo configured"));
    let second = kubectl.json(&["get", "cm", "demo"]);
    assert_eq!(second["data"], json!({"one": "1", "three": "3"}));
    assert_eq!(first["metadata"]["uid"], second["metadata"]["uid"]);
    assert_ne!(
        first["metadata"]["resourceVersion"],
        second["metadata"]["resourceVersion"]
    );
    assert!(kubectl
        .apply(&[], &manifest("  one: \"1\"\n  three: \"3\"\n"))
        .contains("unchanged"));

    // Server-side apply: takes over, removes what it no longer applies.
    let ssa = kubectl.apply(
        &["--server-side", "--force-conflicts"],
        &manifest("  one: \"1\"\n  four: \"4\"\n"),
    );
    assert!(ssa.contains("serverside-applied"), "{ssa}");
    let third = kubectl.json(&["get", "cm", "demo"]);
    assert_eq!(third["data"]["four"], "4");
    assert_eq!(first["metadata"]["uid"], third["metadata"]["uid"]);
    kubectl.apply(&["--server-side"], &manifest("  one: \"1\"\n"));
    assert_eq!(
        kubectl.json(&["get", "cm", "demo"])["data"],
        json!({"one": "1", "three": "3"})
    );

    let yaml = kubectl.ok(&["get", "cm", "demo", "-o", "yaml"]);
    for part in [
        "kind: ConfigMap",
        "name: demo",
        "app: a",
        "uid: ",
        "creationTimestamp: ",
    ] {
        assert!(yaml.contains(part), "{part} in {yaml}");
    }
    assert!(kubectl.ok(&["get", "configmaps"]).contains("demo"));

    assert!(kubectl
        .ok(&["delete", "cm", "demo"])
        .contains("configmap \"demo\" deleted"));
    let gone = kubectl.run(&["get", "cm", "demo"]);
    assert!(!gone.ok);
    assert!(
        gone.stderr.contains("NotFound") && gone.stderr.contains("configmaps \"demo\" not found"),
        "{}",
        gone.stderr
    );

    // kubectl create -f: created, then AlreadyExists.
    let cm = manifest("  a: b\n");
    assert!(kubectl.run_with_stdin(&["create", "-f", "-"], Some(&cm)).ok);
    let again = kubectl.run_with_stdin(&["create", "-f", "-"], Some(&cm));
    assert!(
        !again.ok && again.stderr.contains("AlreadyExists"),
        "{}",
        again.stderr
    );
}

#[test]
fn kubectl_strategic_merge_of_container_lists() {
    let server = start_background();
    let kubectl = Kubectl::new(&server);
    let deployment = |containers: &str| {
        format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: web}}\nspec:\n  selector: {{matchLabels: {{app: web}}}}\n  template:\n    metadata: {{labels: {{app: web}}}}\n    spec:\n      containers:\n{containers}"
        )
    };
    let containers = |kubectl: &Kubectl| -> Vec<String> {
        let d = kubectl.json(&["get", "deploy", "web"]);
        d["spec"]["template"]["spec"]["containers"]
            .as_array()
            .expect("containers")
            .iter()
            .map(|c| {
                format!(
                    "{}={} env={} args={}",
                    c["name"].as_str().unwrap(),
                    c["image"].as_str().unwrap(),
                    c["env"],
                    c["args"]
                )
            })
            .collect()
    };
    kubectl.apply(
        &[],
        &deployment("      - {name: a, image: a:1, env: [{name: VX, value: '1'}, {name: VY, value: '2'}]}\n      - {name: b, image: b:1}\n"),
    );
    // `kubectl patch` (strategic by default) merges containers by name.
    kubectl.ok(&[
        "patch",
        "deploy",
        "web",
        "-p",
        r#"{"spec":{"template":{"spec":{"containers":[{"name":"b","args":["x"]}]}}}}"#,
    ]);
    assert_eq!(
        containers(&kubectl),
        [
            r#"a=a:1 env=[{"name":"VX","value":"1"},{"name":"VY","value":"2"}] args=null"#,
            r#"b=b:1 env=null args=["x"]"#
        ]
    );
    // Client-side apply: $setElementOrder, $patch: delete of a container and of an env entry.
    kubectl.apply(&[], &deployment("      - {name: c, image: c:1}\n      - {name: a, image: a:2, env: [{name: VY, value: '3'}]}\n"));
    assert_eq!(
        containers(&kubectl),
        [
            "c=c:1 env=null args=null",
            r#"a=a:2 env=[{"name":"VY","value":"3"}] args=null"#
        ]
    );
    assert_eq!(
        kubectl.json(&["get", "deploy", "web"])["metadata"]["generation"],
        3
    );
}

#[test]
fn kubectl_create_generators_namespace_and_secret() {
    // These send protobuf bodies; the stand-in decodes the common kinds.
    let server = start_background();
    let kubectl = Kubectl::new(&server);
    kubectl.ok(&["create", "namespace", "kasten-io"]);
    kubectl.ok(&[
        "create",
        "secret",
        "generic",
        "k10-dr-secret",
        "-n",
        "kasten-io",
        "--from-literal",
        "key=s3cr3t",
    ]);
    kubectl.ok(&[
        "create",
        "configmap",
        "settings",
        "-n",
        "kasten-io",
        "--from-literal",
        "a=b",
    ]);
    kubectl.ok(&["create", "serviceaccount", "k10", "-n", "kasten-io"]);
    let secret = kubectl.json(&["get", "secret", "k10-dr-secret", "-n", "kasten-io"]);
    assert_eq!(secret["data"]["key"], "czNjcjN0");
    assert_eq!(secret["type"], "Opaque");
    assert_eq!(
        kubectl.json(&["get", "cm", "settings", "-n", "kasten-io"])["data"]["a"],
        "b"
    );
    let ns = kubectl.json(&["get", "ns", "kasten-io"]);
    assert_eq!(ns["status"]["phase"], "Active");
    assert_eq!(
        ns["metadata"]["labels"]["kubernetes.io/metadata.name"],
        "kasten-io"
    );
    // Like a real cluster, a new namespace gets a default service account and the root CA.
    let sas = kubectl.ok(&["get", "sa", "-n", "kasten-io"]);
    assert!(sas.contains("default") && sas.contains("k10"), "{sas}");
    assert!(kubectl
        .ok(&["get", "cm", "-n", "kasten-io"])
        .contains("kube-root-ca.crt"));
    // Other generators get a clear refusal.
    let deploy = kubectl.run(&["create", "deployment", "web", "--image=nginx"]);
    assert!(
        !deploy.ok && deploy.stderr.contains("decodes protobuf only for"),
        "{}",
        deploy.stderr
    );
}

#[test]
fn kubectl_label_selectors_filter() {
    let server = start_background();
    let kubectl = Kubectl::new(&server);
    for (name, labels) in [
        ("a1", "{app: a, tier: web}"),
        ("a2", "{app: a}"),
        ("b1", "{app: b, tier: db}"),
        ("c1", "{}"),
    ] {
        kubectl.apply(
            &[],
            &format!(
                "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}, labels: {labels}}}\n"
            ),
        );
    }
    let names = |selector: &str| -> Vec<String> {
        let list = kubectl.json(&["get", "cm", "-l", selector]);
        let mut names: Vec<String> = list["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|i| i["metadata"]["name"].as_str().unwrap_or("").to_string())
            .collect();
        names.sort();
        names
    };
    assert_eq!(names("app=a"), ["a1", "a2"]);
    assert_eq!(names("app!=a"), ["b1", "c1", "kube-root-ca.crt"]);
    assert_eq!(names("app in (a,b),tier"), ["a1", "b1"]);
    assert_eq!(names("app notin (a)"), ["b1", "c1", "kube-root-ca.crt"]);
    assert_eq!(names("!app"), ["c1", "kube-root-ca.crt"]);
    assert_eq!(names("tier"), ["a1", "b1"]);
    let table = kubectl.ok(&["get", "cm", "-l", "app=a"]);
    assert!(
        table.contains("a1") && table.contains("a2") && !table.contains("b1"),
        "{table}"
    );
    // Delete by selector.
    kubectl.ok(&["delete", "cm", "-l", "app=a"]);
    assert_eq!(names("app"), ["b1"]);
}

#[test]
fn kubectl_namespace_delete_removes_contents() {
    let server = start_background();
    let kubectl = Kubectl::new(&server);
    kubectl.apply(
        &[],
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: app}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: c, namespace: app}\n---\napiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {name: data, namespace: app}\nspec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}\n",
    );
    let pvc = kubectl.json(&["get", "pvc", "data", "-n", "app"]);
    assert_eq!(pvc["status"]["phase"], "Bound");
    let volume = server.volumes_root().join("app").join("data");
    assert!(volume.is_dir(), "a PVC is a local directory");
    std::fs::write(volume.join("file"), "payload").expect("write to volume");
    kubectl.ok(&["delete", "namespace", "app"]);
    assert!(!kubectl.run(&["get", "ns", "app"]).ok);
    assert!(!kubectl.run(&["get", "cm", "c", "-n", "app"]).ok);
    assert!(kubectl.json(&["get", "cm", "-A"])["items"]
        .as_array()
        .expect("items")
        .iter()
        .all(|i| i["metadata"]["namespace"] != "app"));
    assert!(
        !volume.exists(),
        "the volume's data goes with its namespace"
    );
    let volumes = kubectl.ok(&["get", "pv"]);
    assert!(
        !volumes.contains("pvc-"),
        "the PV went with its claim: {volumes}"
    );
}

// ---------------------------------------------------------------------------------------------
// Objects through kube.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kube_label_selectors_and_paging() {
    let server = start().await;
    let client = server.client().await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    for (name, labels) in [
        ("a1", json!({"app": "a", "tier": "web"})),
        ("a2", json!({"app": "a"})),
        ("b1", json!({"app": "b"})),
    ] {
        cms.create(&PostParams::default(), &config_map(name, labels, json!({})))
            .await
            .expect("create");
    }
    let names = |list: kube::core::ObjectList<ConfigMap>| -> Vec<String> {
        list.items
            .into_iter()
            .filter_map(|c| c.metadata.name)
            .collect()
    };
    assert_eq!(
        names(
            cms.list(&ListParams::default().labels("app=a"))
                .await
                .unwrap()
        ),
        ["a1", "a2"]
    );
    assert_eq!(
        names(
            cms.list(&ListParams::default().labels("app!=a,app"))
                .await
                .unwrap()
        ),
        ["b1"]
    );
    assert_eq!(
        names(
            cms.list(&ListParams::default().labels("app in (b, x)"))
                .await
                .unwrap()
        ),
        ["b1"]
    );
    assert_eq!(
        names(
            cms.list(&ListParams::default().labels("tier"))
                .await
                .unwrap()
        ),
        ["a1"]
    );
    assert_eq!(
        names(
            cms.list(&ListParams::default().labels("!tier,app"))
                .await
                .unwrap()
        ),
        ["a2", "b1"]
    );
    assert_eq!(
        names(
            cms.list(&ListParams::default().fields("metadata.name=a2"))
                .await
                .unwrap()
        ),
        ["a2"]
    );

    // Paging: limit + continue.
    let page = cms.list(&ListParams::default().limit(2)).await.unwrap();
    assert_eq!(page.items.len(), 2);
    let token = page.metadata.continue_.clone().expect("continue token");
    let rest = cms
        .list(&ListParams::default().limit(2).continue_token(&token))
        .await
        .unwrap();
    assert_eq!(rest.items.len(), 2, "a1 a2 b1 kube-root-ca.crt");
    assert!(rest.metadata.continue_.as_deref().unwrap_or("").is_empty());

    // Cluster-wide list of a namespaced resource; list kind and resourceVersion.
    let all: Api<ConfigMap> = Api::all(client.clone());
    let list = all.list(&ListParams::default()).await.unwrap();
    assert!(
        list.items.len() >= 6,
        "three namespaces have kube-root-ca.crt"
    );
    assert!(list.metadata.resource_version.is_some());
    let (code, raw) = raw_request(&server, "GET", "/api/v1/configmaps", "application/json", "");
    assert_eq!(code, 200);
    assert_eq!(raw["kind"], "ConfigMapList");
    assert_eq!(raw["apiVersion"], "v1");
    // An empty name is not the collection: 404, as on a real server.
    for path in ["/apis/storage.k8s.io/v1/storageclasses/", "/api/v1/namespaces/default/configmaps/", "/api/v1/namespaces//configmaps"] {
        let (code, raw) = raw_request(&server, "GET", path, "application/json", "");
        assert_eq!((code, raw["kind"].as_str()), (404, Some("Status")), "{path}: {raw}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kube_conflicts_are_409() {
    let server = start().await;
    let client = server.client().await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let created = cms
        .create(
            &PostParams::default(),
            &config_map("x", json!({}), json!({"k": "1"})),
        )
        .await
        .unwrap();

    let err = cms
        .create(
            &PostParams::default(),
            &config_map("x", json!({}), json!({})),
        )
        .await
        .expect_err("exists");
    assert_eq!(api_code(&err), (409, "AlreadyExists".into()));

    let mut fresh = created.clone();
    fresh.data = Some([("k".to_string(), "2".to_string())].into());
    let updated = cms
        .replace("x", &PostParams::default(), &fresh)
        .await
        .expect("replace with current rv");
    assert_ne!(
        updated.metadata.resource_version,
        created.metadata.resource_version
    );
    let mut stale = created.clone();
    stale.data = Some([("k".to_string(), "3".to_string())].into());
    let err = cms
        .replace("x", &PostParams::default(), &stale)
        .await
        .expect_err("stale resourceVersion");
    assert_eq!(api_code(&err), (409, "Conflict".into()));

    // Server-side apply: another manager's field is a conflict unless forced.
    let apply = |value: &str| json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ssa"}, "data": {"k": value}});
    cms.patch(
        "ssa",
        &PatchParams::apply("first"),
        &Patch::Apply(apply("1")),
    )
    .await
    .expect("apply creates");
    let err = cms
        .patch(
            "ssa",
            &PatchParams::apply("second"),
            &Patch::Apply(apply("2")),
        )
        .await
        .expect_err("conflict");
    assert_eq!(api_code(&err), (409, "Conflict".into()));
    let forced = cms
        .patch(
            "ssa",
            &PatchParams::apply("second").force(),
            &Patch::Apply(apply("2")),
        )
        .await
        .expect("forced");
    assert_eq!(forced.data.unwrap()["k"], "2");
    let same = cms
        .patch(
            "ssa",
            &PatchParams::apply("second"),
            &Patch::Apply(apply("2")),
        )
        .await
        .expect("no-op apply");
    assert_eq!(
        same.metadata.resource_version, forced.metadata.resource_version,
        "a no-op keeps the resourceVersion"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kube_patches_dry_run_and_server_fields() {
    let server = start().await;
    let client = server.client().await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let created = cms
        .create(
            &PostParams::default(),
            &config_map("p", json!({"a": "1"}), json!({"x": "1", "y": "2"})),
        )
        .await
        .unwrap();

    // Server-set fields.
    let uid = created.metadata.uid.clone().expect("uid");
    let parts: Vec<&str> = uid.split('-').collect();
    assert_eq!(
        parts.iter().map(|p| p.len()).collect::<Vec<_>>(),
        [8, 4, 4, 4, 12],
        "{uid}"
    );
    assert!(parts[2].starts_with('4'), "UUID v4: {uid}");
    assert!(created
        .metadata
        .resource_version
        .as_deref()
        .unwrap()
        .parse::<u64>()
        .is_ok());
    assert!(created.metadata.creation_timestamp.is_some());

    let merged = cms
        .patch(
            "p",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"x": null, "z": "3"}})),
        )
        .await
        .unwrap();
    assert_eq!(
        merged.data.unwrap(),
        [
            ("y".to_string(), "2".to_string()),
            ("z".to_string(), "3".to_string())
        ]
        .into()
    );
    let strategic = cms
        .patch(
            "p",
            &PatchParams::default(),
            &Patch::Strategic(json!({"metadata": {"labels": {"b": "2"}}})),
        )
        .await
        .unwrap();
    assert_eq!(strategic.metadata.labels.unwrap().len(), 2);
    // JSON patch (kube's Patch::Json needs a feature the product does not enable: raw HTTP).
    let path = "/api/v1/namespaces/default/configmaps/p";
    let ops = r#"[{"op": "replace", "path": "/data/y", "value": "9"}, {"op": "test", "path": "/data/z", "value": "3"}]"#;
    let (code, patched) = raw_request(&server, "PATCH", path, "application/json-patch+json", ops);
    assert_eq!(code, 200, "{patched}");
    assert_eq!(patched["data"]["y"], "9");
    assert_eq!(patched["metadata"]["uid"], uid.as_str());
    let failing = r#"[{"op": "test", "path": "/data/z", "value": "nope"}]"#;
    let (code, status) = raw_request(
        &server,
        "PATCH",
        path,
        "application/json-patch+json",
        failing,
    );
    assert_eq!((code, status["reason"].as_str()), (422, Some("Invalid")));
    let err = cms
        .patch("missing", &PatchParams::default(), &Patch::Merge(json!({})))
        .await
        .expect_err("404");
    assert_eq!(api_code(&err), (404, "NotFound".into()));

    // Dry run: answered, not stored.
    let pp = PostParams {
        dry_run: true,
        ..PostParams::default()
    };
    let dry = cms
        .create(&pp, &config_map("dry", json!({}), json!({})))
        .await
        .expect("dry-run create");
    assert_eq!(dry.metadata.name.as_deref(), Some("dry"));
    assert_eq!(
        api_code(&cms.get("dry").await.expect_err("not stored")).0,
        404
    );
    let dry_apply = PatchParams::apply("t").dry_run();
    let body = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "dry2"}});
    cms.patch("dry2", &dry_apply, &Patch::Apply(body))
        .await
        .expect("dry-run apply");
    assert_eq!(
        api_code(&cms.get("dry2").await.expect_err("not stored")).0,
        404
    );

    // Secrets: stringData is folded into data.
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "default");
    let secret: Secret =
        serde_json::from_value(json!({"metadata": {"name": "s"}, "stringData": {"k": "v"}}))
            .unwrap();
    let stored = secrets
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
    assert_eq!(stored.data.unwrap()["k"].0, b"v");
    assert!(stored.string_data.is_none());
    assert_eq!(stored.type_.as_deref(), Some("Opaque"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_are_status_objects() {
    let server = start().await;
    let client = server.client().await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let err = cms.get("nope").await.expect_err("missing");
    match &err {
        kube::Error::Api(status) => {
            assert_eq!(status.code, 404);
            assert_eq!(status.reason, "NotFound");
            assert_eq!(status.message, "configmaps \"nope\" not found");
            let details = status.details.as_ref().expect("details");
            assert_eq!(
                (details.name.as_str(), details.kind.as_str()),
                ("nope", "configmaps")
            );
        }
        other => panic!("{other:?}"),
    }

    let (code, status) = raw_request(
        &server,
        "GET",
        "/apis/batch/v1/namespaces/default/jobs/nope",
        "application/json",
        "",
    );
    assert_eq!(code, 404);
    assert_eq!(status["kind"], "Status");
    assert_eq!(status["apiVersion"], "v1");
    assert_eq!(status["status"], "Failure");
    assert_eq!(status["reason"], "NotFound");
    assert_eq!(
        status["details"],
        json!({"name": "nope", "group": "batch", "kind": "jobs"})
    );
    assert_eq!(status["message"], "jobs.batch \"nope\" not found");
    assert_eq!(status["code"], 404);

    let post =
        |path: &str, body: &str| raw_request(&server, "POST", path, "application/json", body);
    let (code, status) = post("/api/v1/namespaces/default/configmaps", "{not json");
    assert_eq!((code, status["reason"].as_str()), (400, Some("BadRequest")));
    let (code, status) = post(
        "/api/v1/namespaces/default/configmaps",
        r#"{"metadata": {}}"#,
    );
    assert_eq!((code, status["reason"].as_str()), (422, Some("Invalid")));
    assert_eq!(status["details"]["causes"][0]["field"], "metadata.name");
    let (code, status) = post(
        "/api/v1/namespaces/default/configmaps",
        r#"{"metadata": {"name": "Bad_Name"}}"#,
    );
    assert_eq!((code, status["reason"].as_str()), (422, Some("Invalid")));
    let (code, status) = post(
        "/api/v1/namespaces/ghost/configmaps",
        r#"{"metadata": {"name": "x"}}"#,
    );
    assert_eq!((code, status["reason"].as_str()), (404, Some("NotFound")));
    assert_eq!(status["message"], "namespaces \"ghost\" not found");
    let (code, status) = post(
        "/api/v1/namespaces/default/configmaps",
        r#"{"kind": "Secret", "metadata": {"name": "x"}}"#,
    );
    assert_eq!((code, status["reason"].as_str()), (400, Some("BadRequest")));
    let (code, status) = post(
        "/api/v1/namespaces/default/configmaps",
        r#"{"metadata": {"name": "x", "resourceVersion": "5"}}"#,
    );
    assert_eq!(
        (code, status["reason"].as_str()),
        (500, Some("InternalError")),
        "{status}"
    );
    // Wrong JSON types are a 400, never a crash (built-in kinds and every object's metadata).
    for (path, body) in [
        (
            "/api/v1/namespaces/default/configmaps",
            r#"{"metadata": {"name": "t", "labels": "x"}, "data": {"k": 1}}"#,
        ),
        (
            "/api/v1/namespaces/default/secrets",
            r#"{"metadata": {"name": "t"}, "data": "x", "stringData": {"a": "b"}}"#,
        ),
        (
            "/api/v1/namespaces/default/services",
            r#"{"metadata": {"name": "t"}, "spec": {"ports": [1]}}"#,
        ),
        (
            "/apis/batch/v1/namespaces/default/jobs",
            r#"{"metadata": {"name": "t"}, "spec": {"template": {"metadata": "x", "spec": {"containers": []}}}}"#,
        ),
        (
            "/api/v1/namespaces",
            r#"{"metadata": {"name": "t", "labels": ["x"]}}"#,
        ),
        (
            "/api/v1/namespaces/default/configmaps",
            r#"{"metadata": "x"}"#,
        ),
        ("/api/v1/namespaces/default/configmaps", r#"[1, 2]"#),
    ] {
        let (code, status) = post(path, body);
        assert_eq!(
            (code, status["reason"].as_str()),
            (400, Some("BadRequest")),
            "{path} {body}: {status}"
        );
    }
    let (code, status) = raw_request(
        &server,
        "PUT",
        "/api/v1/namespaces",
        "application/json",
        "{}",
    );
    assert_eq!(
        (code, status["reason"].as_str()),
        (405, Some("MethodNotAllowed"))
    );
    let (code, status) = raw_request(
        &server,
        "PATCH",
        "/api/v1/namespaces/default",
        "text/plain",
        "{}",
    );
    assert_eq!(
        (code, status["reason"].as_str()),
        (415, Some("UnsupportedMediaType"))
    );
    let (code, status) = raw_request(
        &server,
        "GET",
        "/apis/nothing.example/v1/things",
        "application/json",
        "",
    );
    assert_eq!((code, status["kind"].as_str()), (404, Some("Status")));
    let job_without_policy = r#"{"metadata": {"name": "j"}, "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "i"}]}}}}"#;
    let (code, status) = post("/apis/batch/v1/namespaces/default/jobs", job_without_policy);
    assert_eq!(
        (code, status["reason"].as_str()),
        (422, Some("Invalid")),
        "{status}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seeded_namespaces_have_stable_uids() {
    let server = start().await;
    let namespaces: Api<Namespace> = Api::all(server.client().await);
    let default = namespaces.get("default").await.expect("default namespace");
    assert_eq!(default.metadata.uid.as_deref(), Some(DEFAULT_NAMESPACE_UID));
    let system = namespaces.get("kube-system").await.expect("kube-system");
    assert_eq!(system.metadata.uid.as_deref(), Some(KUBE_SYSTEM_UID));
    assert!(namespaces.get("kube-public").await.is_ok());

    // A "new cluster" has another cluster ID.
    let other = ApiServer::start(ApiServerOptions {
        default_namespace_uid: Some("0b7d4a52-1111-4c2d-9e3f-123456789abc".into()),
        ..ApiServerOptions::default()
    })
    .await
    .unwrap();
    let namespaces: Api<Namespace> = Api::all(other.client().await);
    let default = namespaces.get("default").await.unwrap();
    assert_eq!(
        default.metadata.uid.as_deref(),
        Some("0b7d4a52-1111-4c2d-9e3f-123456789abc")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kube_namespace_delete_removes_objects_and_watch_sees_it() {
    let server = start().await;
    let client = server.client().await;
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": "app"}})).unwrap();
    namespaces
        .create(&PostParams::default(), &ns)
        .await
        .unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "app");
    let first = cms
        .create(
            &PostParams::default(),
            &config_map("one", json!({}), json!({})),
        )
        .await
        .unwrap();

    // Watch from the create's resourceVersion: later events arrive in order.
    let rv = first.metadata.resource_version.clone().unwrap();
    let mut events = cms
        .watch(&WatchParams::default().timeout(10), &rv)
        .await
        .expect("watch")
        .boxed();
    cms.create(
        &PostParams::default(),
        &config_map("two", json!({}), json!({})),
    )
    .await
    .unwrap();
    namespaces
        .delete("app", &DeleteParams::background())
        .await
        .expect("delete namespace");
    let mut seen = Vec::new();
    while seen.len() < 4 {
        let event = tokio::time::timeout(Duration::from_secs(10), events.next())
            .await
            .expect("event in time")
            .expect("stream open")
            .expect("event");
        let name = |c: &ConfigMap| c.metadata.name.clone().unwrap_or_default();
        match event {
            WatchEvent::Added(c) => seen.push(format!("ADDED {}", name(&c))),
            WatchEvent::Deleted(c) => seen.push(format!("DELETED {}", name(&c))),
            WatchEvent::Modified(c) => seen.push(format!("MODIFIED {}", name(&c))),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(seen[0], "ADDED two");
    assert!(
        seen.contains(&"DELETED one".to_string()) && seen.contains(&"DELETED two".to_string()),
        "{seen:?}"
    );

    assert_eq!(
        api_code(&namespaces.get("app").await.expect_err("gone")).0,
        404
    );
    assert_eq!(api_code(&cms.get("one").await.expect_err("gone")).0, 404);
    let err = cms
        .create(
            &PostParams::default(),
            &config_map("three", json!({}), json!({})),
        )
        .await
        .expect_err("no namespace");
    assert_eq!(api_code(&err), (404, "NotFound".into()));
}

// ---------------------------------------------------------------------------------------------
// The stand-in kubelet.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubelet_runs_kubectl_k10_version() {
    let server = start().await;
    let client = server.client().await;
    let jobs: Api<Job> = Api::namespaced(client.clone(), "default");
    let container = json!({"name": "k10", "image": "k10:dev", "command": ["/usr/local/bin/kubectl-k10", "--version"]});
    jobs.create(
        &PostParams::default(),
        &job("version", container, json!([])),
    )
    .await
    .expect("create job");
    let done = wait_for_job(&jobs, "version").await;
    let status = done.status.clone().unwrap();
    assert_eq!(status.succeeded, Some(1), "{status:?}");
    assert!(status.start_time.is_some() && status.completion_time.is_some());
    assert!(condition(&done, "Complete").is_some(), "{status:?}");
    let log = pod_log_of(&client, "default", "version").await;
    assert!(log.contains(env!("CARGO_PKG_VERSION")), "log: {log:?}");

    // The pod: owned by the Job, labelled, Succeeded.
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let pod = pods
        .list(&ListParams::default().labels("job-name=version"))
        .await
        .unwrap()
        .items
        .remove(0);
    assert!(pod
        .metadata
        .name
        .as_deref()
        .unwrap()
        .starts_with("version-"));
    assert_eq!(pod.status.unwrap().phase.as_deref(), Some("Succeeded"));
    let owner = &pod.metadata.owner_references.unwrap()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str()),
        ("Job", "version")
    );
    let selector = done.spec.unwrap().selector.unwrap().match_labels.unwrap();
    assert_eq!(
        selector.get("batch.kubernetes.io/controller-uid"),
        done.metadata.uid.as_ref()
    );

    // Deleting the Job with a propagation policy removes its pod.
    jobs.delete("version", &DeleteParams::background())
        .await
        .unwrap();
    assert!(pods
        .list(&ListParams::default().labels("job-name=version"))
        .await
        .unwrap()
        .items
        .is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubelet_reports_a_failing_command() {
    let server = start().await;
    let client = server.client().await;
    let jobs: Api<Job> = Api::namespaced(client.clone(), "default");
    let container = json!({"name": "k10", "image": "k10:dev", "args": ["kubectl-k10", "this-command-does-not-exist"]});
    jobs.create(&PostParams::default(), &job("broken", container, json!([])))
        .await
        .unwrap();
    let done = wait_for_job(&jobs, "broken").await;
    assert_eq!(done.status.as_ref().unwrap().failed, Some(1));
    let (reason, message) = condition(&done, "Failed").expect("Failed condition");
    assert_eq!(reason, "BackoffLimitExceeded");
    assert!(message.contains("exited with code"), "{message}");
    assert!(condition(&done, "Complete").is_none());
    assert!(
        !pod_log_of(&client, "default", "broken").await.is_empty(),
        "the error output is the log"
    );

    // Anything but kubectl-k10 is refused with a clear reason.
    let container = json!({"name": "sh", "image": "busybox", "command": ["sh", "-c", "echo hi"]});
    jobs.create(&PostParams::default(), &job("shell", container, json!([])))
        .await
        .unwrap();
    let done = wait_for_job(&jobs, "shell").await;
    let (reason, message) = condition(&done, "Failed").expect("Failed condition");
    assert_eq!(reason, "StandinUnsupportedCommand");
    assert!(message.contains("runs only kubectl-k10"), "{message}");

    // A PVC that does not exist fails the Job.
    let container = json!({"name": "k10", "image": "k10:dev", "command": ["kubectl-k10", "--version"],
                           "volumeMounts": [{"name": "data", "mountPath": "/data"}]});
    let volumes = json!([{"name": "data", "persistentVolumeClaim": {"claimName": "missing"}}]);
    jobs.create(&PostParams::default(), &job("nopvc", container, volumes))
        .await
        .unwrap();
    let done = wait_for_job(&jobs, "nopvc").await;
    let (reason, message) = condition(&done, "Failed").expect("Failed condition");
    assert_eq!(reason, "FailedMount");
    assert!(
        message.contains("persistentvolumeclaim \"missing\" not found"),
        "{message}"
    );
}

/// A stand-in `kubectl-k10`: records what the kubelet gave it.
fn fake_k10(dir: &Path) -> PathBuf {
    let path = dir.join("kubectl-k10");
    std::fs::write(
        &path,
        "#!/bin/sh\nset -e\nprintf '%s' \"$SECRET_ENV\" > \"$1/secret.txt\"\nprintf '%s|%s|%s|%s' \"$CM_ENV\" \"$POD_NS\" \"$K10_STANDIN\" \"$KUBECONFIG\" > \"$1/env.txt\"\ncp \"$2/token\" \"$1/from-secret-volume.txt\"\necho \"args: $*\"\n",
    )
    .expect("write fake binary");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubelet_maps_pvcs_secrets_and_env() {
    let bin_dir = tempfile::tempdir().unwrap();
    let volumes = tempfile::tempdir().unwrap();
    let server = ApiServer::start(ApiServerOptions {
        k10_binary: Some(fake_k10(bin_dir.path())),
        volumes_root: volumes.path().to_path_buf(),
        ..ApiServerOptions::default()
    })
    .await
    .unwrap();
    let client = server.client().await;
    let ns = "default";
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    let secret: Secret = serde_json::from_value(
        json!({"metadata": {"name": "creds"}, "stringData": {"key": "s3cr3t", "token": "tok"}}),
    )
    .unwrap();
    secrets
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    cms.create(
        &PostParams::default(),
        &config_map("settings", json!({}), json!({"mode": "fast"})),
    )
    .await
    .unwrap();
    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), ns);
    let pvc: PersistentVolumeClaim = serde_json::from_value(json!({
        "metadata": {"name": "data"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
    }))
    .unwrap();
    pvcs.create(&PostParams::default(), &pvc).await.unwrap();

    let container = json!({
        "name": "k10",
        "image": "k10:dev",
        "command": ["kubectl-k10"],
        "args": ["/mnt/data/out", "/etc/creds", "$(MODE_ARG)"],
        "env": [
            {"name": "SECRET_ENV", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "key"}}},
            {"name": "CM_ENV", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "mode"}}},
            {"name": "POD_NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
            {"name": "MODE_ARG", "value": "--mode=$(CM_ENV)"},
            {"name": "KUBECONFIG", "value": "/ignored"},
        ],
        "volumeMounts": [
            {"name": "data", "mountPath": "/mnt/data"},
            {"name": "creds", "mountPath": "/etc/creds", "readOnly": true},
        ],
    });
    let job_volumes = json!([
        {"name": "data", "persistentVolumeClaim": {"claimName": "data"}},
        {"name": "creds", "secret": {"secretName": "creds"}},
    ]);
    let local = volumes.path().join(ns).join("data");
    std::fs::create_dir_all(local.join("out")).unwrap();
    let jobs: Api<Job> = Api::namespaced(client.clone(), ns);
    jobs.create(
        &PostParams::default(),
        &job("mover", container, job_volumes),
    )
    .await
    .unwrap();
    let done = wait_for_job(&jobs, "mover").await;
    let log = pod_log_of(&client, ns, "mover").await;
    assert!(
        condition(&done, "Complete").is_some(),
        "{:?}\nlog: {log}",
        done.status
    );

    let out = local.join("out");
    assert_eq!(
        std::fs::read_to_string(out.join("secret.txt")).unwrap(),
        "s3cr3t"
    );
    let env = std::fs::read_to_string(out.join("env.txt")).unwrap();
    // KUBECONFIG is the pod's own, with its ServiceAccount's token (tests/rbac.rs uses it).
    let (head, kubeconfig) = env.rsplit_once('|').unwrap();
    assert_eq!(head, "fast|default|1");
    assert!(kubeconfig.contains("k8s-standin-pod-") && kubeconfig.ends_with("/kubeconfig") && kubeconfig != server.kubeconfig_path().to_str().unwrap(), "{kubeconfig}");
    assert_eq!(
        std::fs::read_to_string(out.join("from-secret-volume.txt")).unwrap(),
        "tok"
    );
    assert!(
        log.contains(&format!("args: {} ", out.display())),
        "mount paths are translated: {log}"
    );
    assert!(
        log.trim_end().ends_with("--mode=fast"),
        "$(VAR) expansion: {log}"
    );
}

#[test]
fn kubectl_runs_a_job_and_reads_its_log() {
    let server = start_background();
    let kubectl = Kubectl::new(&server);
    kubectl.apply(
        &[],
        "apiVersion: batch/v1\nkind: Job\nmetadata: {name: version}\nspec:\n  template:\n    spec:\n      restartPolicy: Never\n      containers:\n      - {name: k10, image: k10, command: [kubectl-k10, --version]}\n",
    );
    kubectl.ok(&[
        "wait",
        "--for=condition=complete",
        "job/version",
        "--timeout=30s",
    ]);
    assert_eq!(
        kubectl.json(&["get", "job", "version"])["status"]["succeeded"],
        1
    );
    let log = kubectl.ok(&["logs", "job/version"]);
    assert!(log.contains(env!("CARGO_PKG_VERSION")), "{log}");
    assert!(kubectl
        .ok(&["get", "pods", "-l", "job-name=version"])
        .contains("version-"));
    kubectl.ok(&["delete", "job", "version"]);
    assert!(
        !kubectl.ok(&["get", "pods"]).contains("version-"),
        "kubectl deletes in background: pods go too"
    );
}
