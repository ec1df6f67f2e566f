//! The stand-in kubelet: runs a created Job's container as a local `kubectl-k10` process and
//! reports back through a Pod and the Job's status, like the Job controller and kubelet would.

use super::store::{random_suffix, LogBuffer, Shared, State, WriteOpts};
use super::{lock, now_rfc3339};
use base64::Engine;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::AsyncReadExt;

/// The only program the stand-in runs.
const PROGRAM: &str = "kubectl-k10";
const NODE_NAME: &str = "standin-node";

/// Why a Job could not run: the condition reason and message.
struct Refusal {
    reason: &'static str,
    message: String,
}

fn refuse(reason: &'static str, message: impl Into<String>) -> Refusal {
    Refusal {
        reason,
        message: message.into(),
    }
}

/// Everything needed to start the process.
struct Plan {
    program: PathBuf,
    args: Vec<String>,
    env: Vec<(String, String)>,
    workdir: PathBuf,
    container: String,
    image: String,
    /// The user and group the container runs as (`runAsUser`, `runAsGroup`; container over pod).
    user: Option<(u32, u32)>,
    /// The container's memory limit in bytes (`resources.limits.memory`), enforced as a cgroup
    /// would: see [`over_memory_limit`].
    memory_limit: Option<u64>,
    /// Secret/ConfigMap/emptyDir volumes and the default working directory; removed afterwards.
    _scratch: tempfile::TempDir,
}

/// How the process ended.
enum Outcome {
    Exited(i32),
    DeadlineExceeded,
    Killed,
    /// Killed for going over its memory limit.
    OomKilled(u64),
}

/// The reason a container killed for its memory has (`state.terminated.reason`).
const OOM_KILLED: &str = "OOMKilled";

/// Resolves, with the peak in bytes, once the process's resident set has gone over `limit`; never
/// without a limit or once the process is gone. The kernel's own high-water mark (`VmHWM`) is
/// read every 10 ms, so a peak between two reads is seen at the next: the process is killed iff
/// its memory ever went over (a cgroup stops it at that moment; here it may run up to 10 ms
/// more, and one that goes over in its last 10 ms is missed). File pages count, as in a cgroup,
/// which would reclaim them first: the stand-in is the stricter.
async fn over_memory_limit(pid: Option<u32>, limit: Option<u64>) -> u64 {
    let (Some(pid), Some(limit)) = (pid, limit) else {
        return std::future::pending().await;
    };
    loop {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let peak = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok());
        match peak {
            Some(kib) if kib * 1024 > limit => return kib * 1024,
            Some(_) => {}
            None => return std::future::pending().await,
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A memory quantity (`1Gi`, `256Mi`, `512M`, `268435456`) in bytes; None if it is none of those.
fn memory_bytes(quantity: &str) -> Option<u64> {
    let split = quantity.find(|c: char| !c.is_ascii_digit()).unwrap_or(quantity.len());
    let (digits, unit) = quantity.split_at(split);
    let factor: u64 = match unit {
        "" => 1,
        "k" => 1000,
        "M" => 1_000_000,
        "G" => 1_000_000_000,
        "Ki" => 1 << 10,
        "Mi" => 1 << 20,
        "Gi" => 1 << 30,
        _ => return None,
    };
    digits.parse::<u64>().ok()?.checked_mul(factor)
}

/// Starts running a Job in the background.
pub fn start_job(shared: Arc<Shared>, namespace: String, job: String) {
    let task = tokio::spawn(run_job(shared.clone(), namespace, job));
    shared.track(task.abort_handle());
}

async fn run_job(shared: Arc<Shared>, namespace: String, job_name: String) {
    let start_time = now_rfc3339();
    // Create the pod and work out the plan, under the lock.
    let prepared = {
        let mut state = lock(&shared.state);
        let Some(job) = state
            .get_object("batch", "jobs", &namespace, &job_name)
            .cloned()
        else {
            return;
        };
        if job["spec"]["suspend"].as_bool() == Some(true) {
            return;
        }
        // Level-triggered, as the Job controller is: a Job that has its pod gets no second one
        // (a start for its creation may come after a start for its resumption).
        let job_uid = job["metadata"]["uid"].clone();
        let has_pod = state.find_resource("", "pods").is_some_and(|pods| {
            state
                .select(&pods, Some(&namespace), &Default::default())
                .iter()
                .any(|(_, pod)| pod["metadata"]["ownerReferences"].as_array().is_some_and(|o| o.iter().any(|o| o["uid"] == job_uid)))
        });
        if has_pod || job["status"]["conditions"].as_array().is_some_and(|c| !c.is_empty()) {
            return;
        }
        state.set_status(
            "batch",
            "jobs",
            &namespace,
            &job_name,
            json!({"startTime": start_time, "active": 1, "ready": 0, "terminating": 0, "uncountedTerminatedPods": {}}),
        );
        // Pod Security admission refuses the pod: the Job controller reports it on the Job and
        // the Job stays active without a pod.
        let level = state
            .get_object("", "namespaces", "", &namespace)
            .and_then(super::podsecurity::enforced);
        if let Some(why) = level.and_then(|l| super::podsecurity::violation(&l, &job["spec"]["template"]["spec"])) {
            let pod = format!("{job_name}-{}", random_suffix());
            let message = format!("Error creating: pods \"{pod}\" is forbidden: {why}");
            super::objects::warning_event(&mut state, ("batch/v1", "Job"), &job, "FailedCreate", &message, "job-controller");
            return;
        }
        // The ServiceAccount admission plugin: a pod of a missing ServiceAccount is refused.
        let account = job["spec"]["template"]["spec"]["serviceAccountName"].as_str().unwrap_or("default").to_string();
        if state.get_object("", "serviceaccounts", &namespace, &account).is_none() {
            let pod = format!("{job_name}-{}", random_suffix());
            let message = format!("Error creating: pods \"{pod}\" is forbidden: error looking up service account {namespace}/{account}: serviceaccount \"{account}\" not found");
            super::objects::warning_event(&mut state, ("batch/v1", "Job"), &job, "FailedCreate", &message, "job-controller");
            return;
        }
        let Some(pod) = create_pod(&mut state, &job) else {
            return;
        };
        // A claim that is not bound keeps the pod from being scheduled: it stays Pending.
        let unbound: Vec<String> = pod["spec"]["volumes"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v["persistentVolumeClaim"]["claimName"].as_str())
            .filter(|c| {
                state
                    .get_object("", "persistentvolumeclaims", &namespace, c)
                    .is_some_and(|claim| claim["status"]["phase"] != "Bound")
            })
            .map(str::to_string)
            .collect();
        if !unbound.is_empty() {
            let message = "0/1 nodes are available: pod has unbound immediate PersistentVolumeClaims. preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling.";
            super::objects::warning_event(&mut state, ("v1", "Pod"), &pod, "FailedScheduling", message, "default-scheduler");
            let pod_name = pod["metadata"]["name"].as_str().unwrap_or("").to_string();
            state.set_status(
                "",
                "pods",
                &namespace,
                &pod_name,
                json!({"phase": "Pending", "qosClass": "BestEffort", "conditions": [{
                    "type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": message,
                    "lastTransitionTime": now_rfc3339(),
                }]}),
            );
            return;
        }
        let plan = prepare(&mut state, &shared, &namespace, &pod);
        (job, pod, plan)
    };
    let (job, pod, plan) = prepared;
    let pod_name = pod["metadata"]["name"].as_str().unwrap_or("").to_string();
    let pod_uid = pod["metadata"]["uid"].as_str().unwrap_or("").to_string();
    let log = Arc::new(Mutex::new(LogBuffer::default()));
    let kill = Arc::new(tokio::sync::Notify::new());
    {
        let mut state = lock(&shared.state);
        state
            .logs
            .insert((namespace.clone(), pod_name.clone()), log.clone());
        state.running.insert(pod_uid.clone(), kill.clone());
    }

    let plan = match plan {
        Ok(plan) => plan,
        Err(refusal) => {
            append(
                &log,
                format!("k8s stand-in: {}\n", refusal.message).as_bytes(),
            );
            lock(&log).done = true;
            finish(
                &shared,
                &namespace,
                &job_name,
                &pod_name,
                &start_time,
                None,
                Err(refusal),
            );
            return;
        }
    };

    let mut command = tokio::process::Command::new(plan.runnable());
    if let Some((uid, gid)) = plan.user.filter(|_| stand_in_is_root()) {
        command.uid(uid).gid(gid);
    }
    command
        .args(&plan.args)
        .env_clear()
        .envs(plan.env.iter().map(|(k, v)| (k, v)))
        .current_dir(&plan.workdir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(err) => {
            let refusal = refuse(
                "StartError",
                format!(
                    "cannot start {} for container \"{}\": {err}",
                    plan.program.display(),
                    plan.container
                ),
            );
            append(
                &log,
                format!("k8s stand-in: {}\n", refusal.message).as_bytes(),
            );
            lock(&log).done = true;
            finish(
                &shared,
                &namespace,
                &job_name,
                &pod_name,
                &start_time,
                Some(&plan),
                Err(refusal),
            );
            return;
        }
    };
    set_pod_running(
        &shared,
        &namespace,
        &job_name,
        &pod_name,
        &plan,
        &start_time,
    );

    let readers = [
        child
            .stdout
            .take()
            .map(|out| tokio::spawn(copy_into(out, log.clone()))),
        child
            .stderr
            .take()
            .map(|err| tokio::spawn(copy_into(err, log.clone()))),
    ];
    let deadline = job["spec"]["activeDeadlineSeconds"]
        .as_u64()
        .map(|s| Duration::from_secs(s.min(365 * 24 * 3600)))
        .unwrap_or(Duration::from_secs(365 * 24 * 3600));
    let pid = child.id();
    let outcome = tokio::select! {
        status = child.wait() => match status {
            Ok(status) => Outcome::Exited(exit_code(status)),
            Err(_) => Outcome::Exited(-1),
        },
        _ = kill.notified() => Outcome::Killed,
        _ = tokio::time::sleep(deadline) => Outcome::DeadlineExceeded,
        peak = over_memory_limit(pid, plan.memory_limit) => Outcome::OomKilled(peak),
    };
    if !matches!(outcome, Outcome::Exited(_)) {
        let _ = child.kill().await;
    }
    // The whole output is in the log before anyone sees the Job finish.
    for reader in readers.into_iter().flatten() {
        let _ = reader.await;
    }
    lock(&log).done = true;
    {
        let mut state = lock(&shared.state);
        state.running.remove(&pod_uid);
        if state.orphans.remove(&pod_uid) {
            return;
        }
    }
    let result = match outcome {
        Outcome::Exited(code) => Ok(code),
        Outcome::DeadlineExceeded => Err(refuse(
            "DeadlineExceeded",
            "Job was active longer than specified deadline",
        )),
        Outcome::Killed => Err(refuse(
            "PodDeleted",
            "the Job's pod was deleted while it ran (the stand-in kubelet does not retry)",
        )),
        Outcome::OomKilled(peak) => Err(refuse(
            OOM_KILLED,
            format!(
                "the container's resident memory reached {} MiB, over its limit of {} MiB",
                peak >> 20,
                plan.memory_limit.unwrap_or_default() >> 20
            ),
        )),
    };
    finish(
        &shared,
        &namespace,
        &job_name,
        &pod_name,
        &start_time,
        Some(&plan),
        result,
    );
}

/// `kubectl delete pod --force --grace-period=0` of a Job's running pod: the object goes at
/// once, but the node stops its container only when it notices, and a Job controller that does
/// not count a deleted pod as failed (as before pod-failure tracking) creates a replacement at
/// once. The stand-in shows the worst of it: the old process runs on to its end (which changes
/// nothing any more) while the replacement runs.
pub fn force_delete_pod(shared: &Arc<Shared>, res: &super::discovery::ResourceInfo, namespace: &str, name: &str, opts: &super::store::DeleteOpts) -> super::errors::ApiResult<Value> {
    let (deleted, job) = {
        let mut state = lock(&shared.state);
        let pod = state.get_object("", "pods", namespace, name).cloned();
        let uid = pod.as_ref().and_then(|p| p["metadata"]["uid"].as_str()).unwrap_or("").to_string();
        let job = pod
            .as_ref()
            .and_then(|p| p["metadata"]["ownerReferences"].as_array().cloned())
            .into_iter()
            .flatten()
            .find(|o| o["kind"] == "Job")
            .and_then(|o| o["name"].as_str().map(str::to_string));
        // Out of `running` first, so the deletion does not stop the process.
        let running = state.running.remove(&uid);
        match state.delete(res, Some(namespace), name, opts) {
            Ok(deleted) => {
                let replaced = running.is_some() && job.is_some();
                if replaced {
                    state.orphans.insert(uid);
                } else if let Some(kill) = running {
                    kill.notify_one();
                }
                (deleted, job.filter(|_| replaced))
            }
            Err(e) => {
                if let Some(kill) = running {
                    state.running.insert(uid, kill);
                }
                return Err(e);
            }
        }
    };
    if let Some(job) = job {
        start_job(shared.clone(), namespace.to_string(), job);
    }
    Ok(deleted)
}

fn exit_code(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0))
}

fn append(log: &Mutex<LogBuffer>, bytes: &[u8]) {
    lock(log).data.extend_from_slice(bytes);
}

async fn copy_into<R: tokio::io::AsyncRead + Unpin>(mut reader: R, log: Arc<Mutex<LogBuffer>>) {
    let mut buf = [0u8; 8192];
    loop {
        match reader.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => append(&log, &buf[..n]),
        }
    }
}

/// Creates the Job's pod: `<job>-<5 letters>`, owned by the Job, phase Pending.
fn create_pod(state: &mut State, job: &Value) -> Option<Value> {
    let pods = state.find_resource("", "pods")?;
    let namespace = job["metadata"]["namespace"].as_str()?.to_string();
    let job_name = job["metadata"]["name"].as_str()?.to_string();
    let job_uid = job["metadata"]["uid"].as_str()?.to_string();
    let template = &job["spec"]["template"];
    let mut labels = template["metadata"]["labels"].clone();
    if !labels.is_object() {
        labels = json!({});
    }
    labels["job-name"] = json!(job_name);
    labels["controller-uid"] = json!(job_uid);
    labels["batch.kubernetes.io/job-name"] = json!(job_name);
    labels["batch.kubernetes.io/controller-uid"] = json!(job_uid);
    let mut spec = template["spec"].clone();
    spec["nodeName"] = json!(NODE_NAME);
    if spec.get("serviceAccountName").is_none() {
        spec["serviceAccountName"] = json!("default");
    }
    let mut metadata = json!({
        "name": format!("{job_name}-{}", random_suffix()),
        "generateName": format!("{job_name}-"),
        "namespace": namespace,
        "labels": labels,
        "ownerReferences": [{
            "apiVersion": "batch/v1",
            "kind": "Job",
            "name": job_name,
            "uid": job_uid,
            "controller": true,
            "blockOwnerDeletion": true,
        }],
    });
    if template["metadata"]["annotations"].is_object() {
        metadata["annotations"] = template["metadata"]["annotations"].clone();
    }
    let pod = json!({
        "metadata": metadata,
        "spec": spec,
        "status": {"phase": "Pending", "qosClass": "BestEffort"},
    });
    let internal = WriteOpts {
        internal: true,
        ..WriteOpts::default()
    };
    state.create(&pods, Some(&namespace), pod, &internal).ok()
}

/// Resolves command, environment and volumes. Runs under the state lock.
fn prepare(
    state: &mut State,
    shared: &Shared,
    namespace: &str,
    pod: &Value,
) -> Result<Plan, Refusal> {
    let spec = &pod["spec"];
    let containers = spec["containers"].as_array().cloned().unwrap_or_default();
    if containers.len() != 1 {
        return Err(refuse(
            "StandinUnsupportedPod",
            format!(
                "the stand-in kubelet runs exactly one container per pod; this one has {}",
                containers.len()
            ),
        ));
    }
    if spec["initContainers"]
        .as_array()
        .is_some_and(|c| !c.is_empty())
    {
        return Err(refuse(
            "StandinUnsupportedPod",
            "the stand-in kubelet does not run init containers",
        ));
    }
    let container = &containers[0];
    let container_name = container["name"].as_str().unwrap_or("").to_string();
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .map(|s| {
                        s.as_str()
                            .map(str::to_string)
                            .unwrap_or_else(|| s.to_string())
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut argv = strings(&container["command"]);
    argv.extend(strings(&container["args"]));
    let Some(program) = argv.first().cloned() else {
        return Err(refuse(
            "StandinUnsupportedCommand",
            format!("container \"{container_name}\" has no command or args; the stand-in kubelet cannot run an image's entrypoint, only {PROGRAM}"),
        ));
    };
    let base = Path::new(&program)
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("");
    if base != PROGRAM {
        return Err(refuse(
            "StandinUnsupportedCommand",
            format!("the stand-in kubelet runs only {PROGRAM}; container \"{container_name}\" would run {program:?}"),
        ));
    }
    let Some(binary) = shared.config.k10_binary.clone() else {
        return Err(refuse(
            "StandinNoBinary",
            format!("no {PROGRAM} binary is configured for the stand-in kubelet (ApiServerOptions::k10_binary, --k10-binary)"),
        ));
    };

    let scratch = tempfile::Builder::new()
        .prefix("k8s-standin-pod-")
        .tempdir()
        .map_err(|e| {
            refuse(
                "StartError",
                format!("cannot create a scratch directory: {e}"),
            )
        })?;

    // Environment: envFrom, then env (which wins), with $(VAR) expansion.
    let mut env: Vec<(String, String)> = Vec::new();
    for source in container["envFrom"].as_array().into_iter().flatten() {
        let prefix = source["prefix"].as_str().unwrap_or("");
        let (kind, reference) = if source.get("secretRef").is_some() {
            ("secret", &source["secretRef"])
        } else {
            ("configmap", &source["configMapRef"])
        };
        let name = reference["name"].as_str().unwrap_or("");
        let optional = reference["optional"].as_bool() == Some(true);
        match read_data(state, namespace, kind, name) {
            Some(data) => {
                for (k, v) in data {
                    set_var(
                        &mut env,
                        format!("{prefix}{k}"),
                        String::from_utf8_lossy(&v).into_owned(),
                    );
                }
            }
            None if optional => {}
            None => return Err(missing(kind, name)),
        }
    }
    for var in container["env"].as_array().into_iter().flatten() {
        let name = var["name"].as_str().unwrap_or("").to_string();
        let value = if let Some(v) = var.get("value").and_then(Value::as_str) {
            let known: HashMap<String, String> = env.iter().cloned().collect();
            expand(v, &known)
        } else if let Some(from) = var.get("valueFrom") {
            match env_from_source(state, namespace, pod, container, from)? {
                Some(v) => v,
                None => continue,
            }
        } else {
            String::new()
        };
        set_var(&mut env, name, value);
    }

    // Volumes and mounts.
    let volumes = mount_volumes(state, namespace, spec, scratch.path())?;
    let mut mounts: Vec<(String, PathBuf)> = Vec::new();
    for m in container["volumeMounts"].as_array().into_iter().flatten() {
        let name = m["name"].as_str().unwrap_or("");
        let mount_path = m["mountPath"]
            .as_str()
            .unwrap_or("")
            .trim_end_matches('/')
            .to_string();
        let Some(local) = volumes.get(name) else {
            return Err(refuse(
                "CreateContainerConfigError",
                format!("volumeMount \"{name}\" of container \"{container_name}\" names no volume of the pod"),
            ));
        };
        let mut local = local.clone();
        if let Some(sub) = m["subPath"].as_str().filter(|s| !s.is_empty()) {
            local = local.join(sub);
            let _ = std::fs::create_dir_all(&local);
        }
        if !mount_path.is_empty() {
            mounts.push((mount_path, local));
        }
    }
    mounts.sort_by_key(|(mount_path, _)| std::cmp::Reverse(mount_path.len()));
    let translate = |s: &str| -> String {
        for (mount_path, local) in &mounts {
            if s == mount_path {
                return local.to_string_lossy().into_owned();
            }
            if let Some(rest) = s.strip_prefix(&format!("{mount_path}/")) {
                return local.join(rest).to_string_lossy().into_owned();
            }
        }
        s.to_string()
    };

    let known: HashMap<String, String> = env.iter().cloned().collect();
    let args: Vec<String> = argv[1..]
        .iter()
        .map(|a| translate(&expand(a, &known)))
        .collect();
    let mut full_env: Vec<(String, String)> = Vec::new();
    for key in ["PATH", "HOME", "RUST_LOG", "RUST_BACKTRACE"] {
        if let Ok(v) = std::env::var(key) {
            full_env.push((key.to_string(), v));
        }
    }
    full_env.push((
        "HOSTNAME".into(),
        pod["metadata"]["name"].as_str().unwrap_or("").to_string(),
    ));
    for (k, v) in env {
        full_env.retain(|(name, _)| *name != k);
        full_env.push((k, translate(&v)));
    }
    full_env.retain(|(name, _)| name != "KUBECONFIG" && name != "K10_STANDIN");
    // The pod's ServiceAccount token, as a kubeconfig (standing in for the projected token and
    // the in-cluster config), unless the pod opts out of it.
    if spec["automountServiceAccountToken"].as_bool() != Some(false) {
        let account = spec["serviceAccountName"].as_str().unwrap_or("default").to_string();
        let token = format!("sa-{}{}{}", random_suffix(), random_suffix(), random_suffix());
        let kubeconfig = scratch.path().join("kubeconfig");
        super::write_kubeconfig_for(&kubeconfig, &shared.config.url, &token, namespace)
            .map_err(|e| refuse("StartError", format!("cannot write the pod's kubeconfig: {e}")))?;
        state.tokens.insert(token, super::rbac::Caller::ServiceAccount { namespace: namespace.to_string(), name: account });
        full_env.push(("KUBECONFIG".into(), kubeconfig.to_string_lossy().into_owned()));
    }
    full_env.push(("K10_STANDIN".into(), "1".into()));

    let workdir = match container["workingDir"].as_str().filter(|w| !w.is_empty()) {
        Some(dir) => {
            let local = PathBuf::from(translate(dir));
            if !local.is_dir() {
                return Err(refuse(
                    "CreateContainerConfigError",
                    format!("workingDir {dir:?} does not exist locally (only paths under a volumeMount are translated)"),
                ));
            }
            local
        }
        None => scratch.path().to_path_buf(),
    };
    let user = run_as(spec, container);
    if user.is_some_and(|(uid, _)| uid != 0) && stand_in_is_root() {
        // What a container reaches through its mounts, a process of another user reaches through
        // the directories above them: let it pass through (not list) them.
        let mut reached: Vec<&Path> = vec![scratch.path(), &workdir];
        let locals: Vec<PathBuf> = mounts.iter().map(|(_, local)| local.clone()).collect();
        reached.extend(locals.iter().map(PathBuf::as_path));
        for path in reached {
            let_others_pass(path).map_err(|e| refuse("StartError", format!("cannot open {} to user {:?}: {e}", path.display(), user)))?;
        }
        make_readable_tree(scratch.path()).map_err(|e| refuse("StartError", format!("cannot open the pod's scratch directory: {e}")))?;
    }
    Ok(Plan {
        program: binary,
        args,
        env: full_env,
        workdir,
        container: container_name,
        image: container["image"].as_str().unwrap_or("").to_string(),
        user,
        memory_limit: container["resources"]["limits"]["memory"].as_str().and_then(memory_bytes),
        _scratch: scratch,
    })
}

impl Plan {
    /// The binary to start: the configured one, or (for another user, where that one lies in a
    /// directory they cannot pass) a copy they can run, as an image's binary is to every user.
    fn runnable(&self) -> PathBuf {
        if self.user.is_none_or(|(uid, _)| uid == 0) || !stand_in_is_root() || passable(&self.program) {
            return self.program.clone();
        }
        static COPY: std::sync::OnceLock<Option<PathBuf>> = std::sync::OnceLock::new();
        let copy = COPY.get_or_init(|| {
            let dir = std::env::temp_dir().join(format!("k8s-standin-image-{}", std::process::id()));
            std::fs::create_dir_all(&dir).ok()?;
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).ok()?;
            let to = dir.join(PROGRAM);
            std::fs::copy(&self.program, &to).ok()?;
            Some(to)
        });
        copy.clone().unwrap_or_else(|| self.program.clone())
    }
}

/// `runAsUser`/`runAsGroup` of the container, else of the pod (group 0 when only a user is set,
/// as for an image whose user has no group).
fn run_as(spec: &Value, container: &Value) -> Option<(u32, u32)> {
    let field = |name: &str| container["securityContext"][name].as_u64().or_else(|| spec["securityContext"][name].as_u64());
    let uid = field("runAsUser")? as u32;
    Some((uid, field("runAsGroup").unwrap_or(0) as u32))
}

/// Whether the stand-in may start processes as other users (it runs as root, as a kubelet does);
/// otherwise every container runs as the stand-in's own user.
fn stand_in_is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// Whether every directory above `path` lets others pass.
fn passable(path: &Path) -> bool {
    path.ancestors().skip(1).all(|dir| std::fs::metadata(dir).is_ok_and(|m| m.permissions().mode() & 0o001 != 0))
}

/// Lets others pass through the directories above `path`.
fn let_others_pass(path: &Path) -> std::io::Result<()> {
    for dir in path.ancestors().skip(1).filter(|d| *d != Path::new("/")) {
        let mode = std::fs::metadata(dir)?.permissions().mode();
        if mode & 0o001 == 0 {
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode | 0o001))?;
        }
    }
    Ok(())
}

/// Opens a scratch tree (projected Secrets and ConfigMaps, emptyDirs) to the pod's user, as a
/// kubelet's volume plugins do (files 0644 by default, emptyDir 0777).
fn make_readable_tree(root: &Path) -> std::io::Result<()> {
    for entry in std::fs::read_dir(root)? {
        let path = entry?.path();
        if std::fs::symlink_metadata(&path)?.is_dir() {
            make_readable_tree(&path)?;
        }
    }
    let mode = std::fs::metadata(root)?.permissions().mode();
    let wanted = if std::fs::metadata(root)?.is_dir() { 0o777 } else { 0o644 };
    std::fs::set_permissions(root, std::fs::Permissions::from_mode(mode | wanted))
}

/// Sets an environment variable, replacing an earlier value.
fn set_var(env: &mut Vec<(String, String)>, key: String, value: String) {
    env.retain(|(name, _)| *name != key);
    env.push((key, value));
}

fn missing(kind: &str, name: &str) -> Refusal {
    refuse(
        "CreateContainerConfigError",
        format!("{kind} \"{name}\" not found"),
    )
}

/// `$(VAR)` expansion as the kubelet does it; `$$` escapes, unknown references stay.
fn expand(input: &str, vars: &HashMap<String, String>) -> String {
    let mut out = String::new();
    let mut rest = input;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(inner) = after.strip_prefix('(') {
            match inner.find(')') {
                Some(end) => {
                    let name = &inner[..end];
                    match vars.get(name) {
                        Some(v) => out.push_str(v),
                        None => out.push_str(&format!("$({name})")),
                    }
                    rest = &inner[end + 1..];
                }
                None => {
                    out.push_str(&rest[pos..]);
                    rest = "";
                }
            }
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// The decoded data of a Secret or ConfigMap, key → bytes.
fn read_data(
    state: &State,
    namespace: &str,
    kind: &str,
    name: &str,
) -> Option<Vec<(String, Vec<u8>)>> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut out = Vec::new();
    if kind == "secret" {
        let secret = state.get_object("", "secrets", namespace, name)?;
        for (k, v) in secret["data"].as_object().into_iter().flatten() {
            out.push((
                k.clone(),
                b64.decode(v.as_str().unwrap_or("")).unwrap_or_default(),
            ));
        }
        for (k, v) in secret["stringData"].as_object().into_iter().flatten() {
            out.push((k.clone(), v.as_str().unwrap_or("").as_bytes().to_vec()));
        }
    } else {
        let cm = state.get_object("", "configmaps", namespace, name)?;
        for (k, v) in cm["data"].as_object().into_iter().flatten() {
            out.push((k.clone(), v.as_str().unwrap_or("").as_bytes().to_vec()));
        }
        for (k, v) in cm["binaryData"].as_object().into_iter().flatten() {
            out.push((
                k.clone(),
                b64.decode(v.as_str().unwrap_or("")).unwrap_or_default(),
            ));
        }
    }
    Some(out)
}

/// One `env[].valueFrom`. `Ok(None)`: an optional source that is missing (the variable is unset).
fn env_from_source(
    state: &State,
    namespace: &str,
    pod: &Value,
    container: &Value,
    from: &Value,
) -> Result<Option<String>, Refusal> {
    for (field, kind) in [("secretKeyRef", "secret"), ("configMapKeyRef", "configmap")] {
        let Some(reference) = from.get(field) else {
            continue;
        };
        let name = reference["name"].as_str().unwrap_or("");
        let key = reference["key"].as_str().unwrap_or("");
        let optional = reference["optional"].as_bool() == Some(true);
        let data = read_data(state, namespace, kind, name);
        let value = data
            .as_ref()
            .and_then(|d| d.iter().find(|(k, _)| k == key))
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned());
        return match (data, value) {
            (_, Some(v)) => Ok(Some(v)),
            (_, None) if optional => Ok(None),
            (None, None) => Err(missing(kind, name)),
            (Some(_), None) => Err(refuse(
                "CreateContainerConfigError",
                format!("couldn't find key {key} in {kind} {namespace}/{name}"),
            )),
        };
    }
    if let Some(path) = from["fieldRef"]["fieldPath"].as_str() {
        let meta = &pod["metadata"];
        let value = match path {
            "metadata.name" => meta["name"].as_str().map(str::to_string),
            "metadata.namespace" => meta["namespace"].as_str().map(str::to_string),
            "metadata.uid" => meta["uid"].as_str().map(str::to_string),
            "spec.nodeName" => Some(NODE_NAME.to_string()),
            "spec.serviceAccountName" => pod["spec"]["serviceAccountName"]
                .as_str()
                .map(str::to_string),
            "status.podIP" | "status.hostIP" => Some("127.0.0.1".to_string()),
            other => bracketed(other, "metadata.labels")
                .map(|k| meta["labels"][k].as_str().unwrap_or("").to_string())
                .or_else(|| {
                    bracketed(other, "metadata.annotations")
                        .map(|k| meta["annotations"][k].as_str().unwrap_or("").to_string())
                }),
        };
        return value.map(Some).ok_or_else(|| {
            refuse(
                "CreateContainerConfigError",
                format!("unsupported fieldRef {path:?}"),
            )
        });
    }
    if let Some(resource) = from["resourceFieldRef"]["resource"].as_str() {
        let (section, name) = resource.split_once('.').unwrap_or(("limits", resource));
        let value = container["resources"][section][name]
            .as_str()
            .unwrap_or("0")
            .to_string();
        return Ok(Some(value));
    }
    Err(refuse(
        "CreateContainerConfigError",
        "an env valueFrom with no supported source",
    ))
}

/// `metadata.labels['k']` → `k`.
fn bracketed<'a>(path: &'a str, prefix: &str) -> Option<&'a str> {
    let inner = path
        .strip_prefix(prefix)?
        .strip_prefix("['")?
        .strip_suffix("']")?;
    Some(inner)
}

/// Maps each pod volume to a local directory.
fn mount_volumes(
    state: &State,
    namespace: &str,
    spec: &Value,
    scratch: &Path,
) -> Result<HashMap<String, PathBuf>, Refusal> {
    let mut out = HashMap::new();
    for volume in spec["volumes"].as_array().into_iter().flatten() {
        let name = volume["name"].as_str().unwrap_or("").to_string();
        let local_scratch = scratch.join("volumes").join(&name);
        let path = if let Some(claim) = volume["persistentVolumeClaim"]["claimName"].as_str() {
            if state
                .get_object("", "persistentvolumeclaims", namespace, claim)
                .is_none()
            {
                return Err(refuse(
                    "FailedMount",
                    format!("volume \"{name}\": persistentvolumeclaim \"{claim}\" not found in namespace \"{namespace}\""),
                ));
            }
            state.volumes_root.join(namespace).join(claim)
        } else if volume.get("secret").is_some() || volume.get("configMap").is_some() {
            let (kind, source, object_name) = match volume.get("secret") {
                Some(s) => ("secret", s, s["secretName"].as_str().unwrap_or("")),
                None => (
                    "configmap",
                    &volume["configMap"],
                    volume["configMap"]["name"].as_str().unwrap_or(""),
                ),
            };
            let optional = source["optional"].as_bool() == Some(true);
            let data = match read_data(state, namespace, kind, object_name) {
                Some(d) => d,
                None if optional => Vec::new(),
                None => return Err(missing(kind, object_name)),
            };
            write_projection(&local_scratch, &data, source["items"].as_array())
                .map_err(|e| refuse("FailedMount", format!("volume \"{name}\": {e}")))?;
            local_scratch
        } else if volume.get("emptyDir").is_some() {
            local_scratch
        } else {
            return Err(refuse(
                "StandinUnsupportedVolume",
                format!("volume \"{name}\": the stand-in kubelet supports persistentVolumeClaim, secret, configMap and emptyDir volumes only"),
            ));
        };
        std::fs::create_dir_all(&path).map_err(|e| {
            refuse(
                "FailedMount",
                format!("volume \"{name}\": cannot create {}: {e}", path.display()),
            )
        })?;
        out.insert(name, path);
    }
    Ok(out)
}

/// Writes Secret/ConfigMap keys as files (all keys, or the listed `items` key → path).
fn write_projection(
    dir: &Path,
    data: &[(String, Vec<u8>)],
    items: Option<&Vec<Value>>,
) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let files: Vec<(String, &Vec<u8>)> = match items {
        Some(items) => items
            .iter()
            .filter_map(|item| {
                let key = item["key"].as_str()?;
                let path = item["path"].as_str().unwrap_or(key);
                data.iter()
                    .find(|(k, _)| k == key)
                    .map(|(_, v)| (path.to_string(), v))
            })
            .collect(),
        None => data.iter().map(|(k, v)| (k.clone(), v)).collect(),
    };
    for (path, bytes) in files {
        let target = dir.join(path);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(target, bytes)?;
    }
    Ok(())
}

fn set_pod_running(
    shared: &Shared,
    namespace: &str,
    job: &str,
    pod: &str,
    plan: &Plan,
    start_time: &str,
) {
    let status = json!({
        "phase": "Running",
        "hostIP": "127.0.0.1",
        "podIP": "127.0.0.1",
        "startTime": start_time,
        "qosClass": "BestEffort",
        "conditions": [
            {"type": "PodScheduled", "status": "True", "lastTransitionTime": start_time},
            {"type": "Initialized", "status": "True", "lastTransitionTime": start_time},
            {"type": "ContainersReady", "status": "True", "lastTransitionTime": start_time},
            {"type": "Ready", "status": "True", "lastTransitionTime": start_time},
        ],
        "containerStatuses": [{
            "name": plan.container,
            "image": plan.image,
            "imageID": "",
            "ready": true,
            "started": true,
            "restartCount": 0,
            "state": {"running": {"startedAt": start_time}},
        }],
    });
    let mut state = lock(&shared.state);
    state.set_status("", "pods", namespace, pod, status);
    state.set_status(
        "batch",
        "jobs",
        namespace,
        job,
        json!({"startTime": start_time, "active": 1, "ready": 1, "terminating": 0, "uncountedTerminatedPods": {}}),
    );
}

/// Final pod and Job status. `result`: the exit code, or why the Job failed without one.
fn finish(
    shared: &Shared,
    namespace: &str,
    job: &str,
    pod: &str,
    start_time: &str,
    plan: Option<&Plan>,
    result: Result<i32, Refusal>,
) {
    let end = now_rfc3339();
    let (container, image) = plan
        .map(|p| (p.container.clone(), p.image.clone()))
        .unwrap_or_default();
    let mut state = lock(&shared.state);
    let current_pod = state.get_object("", "pods", namespace, pod).cloned();
    let container = if container.is_empty() {
        current_pod
            .as_ref()
            .and_then(|p| p["spec"]["containers"][0]["name"].as_str())
            .unwrap_or("")
            .to_string()
    } else {
        container
    };
    let (phase, container_state) = match &result {
        Ok(0) => (
            "Succeeded",
            json!({"terminated": {"exitCode": 0, "reason": "Completed", "startedAt": start_time, "finishedAt": end}}),
        ),
        Ok(code) => (
            "Failed",
            json!({"terminated": {"exitCode": code, "reason": "Error", "startedAt": start_time, "finishedAt": end}}),
        ),
        Err(r) if plan.is_none() => (
            "Failed",
            json!({"waiting": {"reason": r.reason, "message": r.message}}),
        ),
        Err(r) => (
            "Failed",
            json!({"terminated": {"exitCode": 137, "reason": r.reason, "message": r.message, "startedAt": start_time, "finishedAt": end}}),
        ),
    };
    if current_pod.is_some() {
        let status = json!({
            "phase": phase,
            "hostIP": "127.0.0.1",
            "podIP": "127.0.0.1",
            "startTime": start_time,
            "qosClass": "BestEffort",
            "containerStatuses": [{
                "name": container,
                "image": image,
                "imageID": "",
                "ready": false,
                "started": false,
                "restartCount": 0,
                "state": container_state,
            }],
        });
        state.set_status("", "pods", namespace, pod, status);
    }
    let base = json!({"startTime": start_time, "ready": 0, "terminating": 0, "uncountedTerminatedPods": {}});
    let condition = |kind: &str, reason: &str, message: &str| {
        json!({"type": kind, "status": "True", "reason": reason, "message": message,
               "lastProbeTime": end, "lastTransitionTime": end})
    };
    let mut status = base;
    match result {
        Ok(0) => {
            let msg = "Reached expected number of succeeded pods";
            status["succeeded"] = json!(1);
            status["completionTime"] = json!(end);
            status["conditions"] = json!([
                condition("SuccessCriteriaMet", "CompletionsReached", msg),
                condition("Complete", "CompletionsReached", msg),
            ]);
        }
        Ok(code) => {
            let msg = format!(
                "Job has reached the specified backoff limit (stand-in kubelet: no retries; container \"{container}\" exited with code {code})"
            );
            status["failed"] = json!(1);
            status["conditions"] = json!([
                condition("FailureTarget", "BackoffLimitExceeded", &msg),
                condition("Failed", "BackoffLimitExceeded", &msg),
            ]);
        }
        // A container killed for its memory fails its pod: the Job, without retries, has
        // reached its backoff limit (the reason is on the pod, as on a real node).
        Err(refusal) if refusal.reason == OOM_KILLED => {
            let msg = "Job has reached the specified backoff limit";
            status["failed"] = json!(1);
            status["conditions"] = json!([
                condition("FailureTarget", "BackoffLimitExceeded", msg),
                condition("Failed", "BackoffLimitExceeded", msg),
            ]);
        }
        Err(refusal) => {
            status["failed"] = json!(1);
            status["conditions"] = json!([
                condition("FailureTarget", refusal.reason, &refusal.message),
                condition("Failed", refusal.reason, &refusal.message),
            ]);
        }
    }
    state.set_status("batch", "jobs", namespace, job, status);
}
