//! Runs the product's own binary as a Kubernetes Job (the data mover) and waits for it.
//! Secrets reach the Job only through a Secret it references and that it owns from the moment it
//! exists; both are removed afterwards.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{
    Capabilities, Event, Container, EnvVar, EnvVarSource, ObjectFieldSelector, PersistentVolumeClaimVolumeSource, Pod, PodSpec, PodTemplateSpec,
    ResourceRequirements, Secret, SeccompProfile, SecretKeySelector, SecurityContext, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::ByteString;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Api, DeleteParams, ListParams, LogParams, ObjectMeta, PostParams, PropagationPolicy};

use super::{Cluster, K8sError};

/// How long a pod may stay unschedulable before the wait gives up (a scheduler may need a
/// moment, a volume a provisioner).
pub const SCHEDULING_PATIENCE: Duration = Duration::from_secs(30);

/// A data mover's resources (README: "Resources"): what it requests, and its memory limit unless
/// a policy or restore sets another ([`ProductJob::memory_limit`]).
pub const MOVER_REQUESTS: &[(&str, &str)] = &[("cpu", "250m"), ("memory", "256Mi")];
pub const MOVER_LIMITS: &[(&str, &str)] = &[("memory", "1Gi")];
/// The Policy annotation that sets its data movers' memory limit (a quantity, e.g. `512Mi`).
pub const MOVER_MEMORY_ANNOTATION: &str = "k10.kasten.io/mover-memory-limit";
/// The least memory limit a data mover may be given.
pub const MIN_MOVER_MEMORY: u64 = 128 << 20;

/// A memory quantity as Kubernetes writes it (`268435456`, `256Mi`, `1Gi`, `512M`): bytes. A
/// data mover's limit must be at least [`MIN_MOVER_MEMORY`].
pub fn parse_mover_memory(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let factor: u64 = match unit {
        "" => 1,
        "k" => 1000,
        "M" => 1000_u64.pow(2),
        "G" => 1000_u64.pow(3),
        "Ki" => 1 << 10,
        "Mi" => 1 << 20,
        "Gi" => 1 << 30,
        _ => 0,
    };
    match digits.parse::<u64>().ok().and_then(|n| n.checked_mul(factor)) {
        Some(bytes) if factor > 0 && bytes >= MIN_MOVER_MEMORY => Ok(bytes),
        _ => Err(format!(
            "data mover memory limit {text:?}: use a quantity such as 256Mi or 1Gi (Ki, Mi, Gi, k, M, G), at least {}Mi",
            MIN_MOVER_MEMORY >> 20
        )),
    }
}

/// Bytes as a Kubernetes quantity (in Mi when whole).
fn quantity(bytes: u64) -> Quantity {
    Quantity(if bytes.is_multiple_of(1 << 20) { format!("{}Mi", bytes >> 20) } else { bytes.to_string() })
}
/// A control Job's resources (policy and DR runs, maintenance, background restores).
pub const CONTROL_REQUESTS: &[(&str, &str)] = &[("cpu", "100m"), ("memory", "128Mi")];
pub const CONTROL_LIMITS: &[(&str, &str)] = &[("memory", "1Gi")];

/// How long a finished Job of the product stays (`ttlSecondsAfterFinished`).
pub const JOB_TTL_SECONDS: i32 = 24 * 3600;

/// The ServiceAccount `kubectl k10 install` creates in kasten-io.
pub const SERVICE_ACCOUNT: &str = "k10";

/// What a control pod knows of its Job (from the Job controller's pod labels): the Job's name
/// and uid, which make a run idempotent per Job.
pub const ENV_JOB_NAME: &str = "K10_JOB_NAME";
pub const ENV_JOB_UID: &str = "K10_JOB_UID";

/// The container image of the product (overridable with `K10_IMAGE`).
pub fn image() -> String {
    std::env::var("K10_IMAGE").unwrap_or_else(|_| format!("k10/kubectl-k10:{}", env!("CARGO_PKG_VERSION")))
}

/// A volume the Job mounts.
#[derive(Debug, Clone)]
pub struct Mount {
    pub claim: String,
    pub path: String,
    pub read_only: bool,
}

/// A run of `kubectl-k10 <args>` in a namespace.
#[derive(Debug, Clone)]
pub struct ProductJob {
    pub namespace: String,
    pub name: String,
    pub args: Vec<String>,
    /// Environment variables whose values are secret: stored in a Secret the Job references.
    pub secret_env: BTreeMap<String, String>,
    pub mount: Option<Mount>,
    /// Run on this node (where the volume is mounted).
    pub node_name: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub timeout: Duration,
    /// The Job's owner (a data mover's control Job, in the same namespace): the cluster removes
    /// the Job, and all it owns, with its owner.
    pub owner: Option<OwnerReference>,
    /// A data mover's memory limit in bytes, instead of [`MOVER_LIMITS`] (its request is then
    /// no more than it).
    pub memory_limit: Option<u64>,
}

#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error("job {namespace}/{name} failed: {reason}{}", log_tail(.log))]
    Failed {
        namespace: String,
        name: String,
        reason: String,
        log: String,
    },
    #[error("job {namespace}/{name} cannot run: {reason}; {advice}")]
    CannotStart {
        namespace: String,
        name: String,
        reason: String,
        advice: String,
    },
    #[error("job {namespace}/{name} did not finish within {seconds} s; it was stopped")]
    TimedOut {
        namespace: String,
        name: String,
        seconds: u64,
    },
    #[error(transparent)]
    K8s(#[from] K8sError),
}

fn log_tail(log: &str) -> String {
    let last: Vec<&str> = log.lines().filter(|l| !l.trim().is_empty()).collect();
    match last.last() {
        Some(line) => format!(" (its last output: {})", line.trim()),
        None => String::new(),
    }
}

impl ProductJob {
    fn secret_name(&self) -> String {
        format!("{}-env", self.name)
    }

    /// Least privilege: control jobs run as a non-root user with no capabilities (Pod Security
    /// `restricted`). A data mover runs as root with only the capabilities its volume needs, all
    /// of them within Pod Security `baseline`: reading every file of any owner (backup, verify:
    /// `DAC_OVERRIDE` on a read-only mount, where it cannot write), or writing files of any owner
    /// with their owners, modes and times (restore). Every pod has the runtime's default seccomp
    /// profile.
    fn security_context(&self) -> SecurityContext {
        let capabilities = |add: &[&str]| Capabilities {
            add: (!add.is_empty()).then(|| add.iter().map(|c| c.to_string()).collect()),
            drop: Some(vec!["ALL".into()]),
        };
        let (user, non_root, caps) = match &self.mount {
            None => (65532, true, capabilities(&[])),
            Some(m) if m.read_only => (0, false, capabilities(&["DAC_OVERRIDE"])),
            Some(_) => (0, false, capabilities(&["DAC_OVERRIDE", "FOWNER", "CHOWN"])),
        };
        SecurityContext {
            allow_privilege_escalation: Some(false),
            read_only_root_filesystem: Some(true),
            run_as_user: Some(user),
            run_as_non_root: Some(non_root),
            capabilities: Some(caps),
            seccomp_profile: Some(SeccompProfile {
                type_: "RuntimeDefault".into(),
                localhost_profile: None,
            }),
            ..Default::default()
        }
    }

    /// Memory and CPU: what a scheduler must reserve (requests) and where the kernel stops a
    /// runaway process (the memory limit). Data movers were measured at 206 MiB (backup) and
    /// 119 MiB (restore) peak RSS for 2 GiB of data (README: "Resources" has the figures by
    /// shape and size). Control Jobs (policy and DR runs, maintenance, restores) hold manifests
    /// and listings.
    fn resources(&self) -> ResourceRequirements {
        let quantities = |pairs: &[(&str, &str)]| -> BTreeMap<String, Quantity> {
            pairs.iter().map(|(k, v)| (k.to_string(), Quantity(v.to_string()))).collect()
        };
        let (mut requests, mut limits) = match self.mount {
            Some(_) => (quantities(MOVER_REQUESTS), quantities(MOVER_LIMITS)),
            None => (quantities(CONTROL_REQUESTS), quantities(CONTROL_LIMITS)),
        };
        if let (Some(_), Some(limit)) = (&self.mount, self.memory_limit) {
            let request = parse_mover_memory(&requests["memory"].0).map_or(limit, |r| r.min(limit));
            requests.insert("memory".into(), quantity(request));
            limits.insert("memory".into(), quantity(limit));
        }
        ResourceRequirements {
            requests: Some(requests),
            limits: Some(limits),
            ..Default::default()
        }
    }

    /// The Job object.
    pub fn job(&self) -> Job {
        let secret = self.secret_name();
        let env = self
            .secret_env
            .keys()
            .map(|key| EnvVar {
                name: key.clone(),
                value_from: Some(EnvVarSource {
                    secret_key_ref: Some(SecretKeySelector {
                        name: secret.clone(),
                        key: key.clone(),
                        optional: Some(false),
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            })
            .collect::<Vec<_>>();
        // A control pod learns its Job from the labels the Job controller gives it.
        let label_env = |name: &str, label: &str| EnvVar {
            name: name.into(),
            value_from: Some(EnvVarSource {
                field_ref: Some(ObjectFieldSelector {
                    field_path: format!("metadata.labels['{label}']"),
                    api_version: None,
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let env = match self.mount {
            Some(_) => env,
            None => [env, vec![label_env(ENV_JOB_NAME, "job-name"), label_env(ENV_JOB_UID, "controller-uid")]].concat(),
        };
        let (volumes, mounts) = match &self.mount {
            Some(m) => (
                vec![Volume {
                    name: "data".into(),
                    persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                        claim_name: m.claim.clone(),
                        read_only: Some(m.read_only),
                    }),
                    ..Default::default()
                }],
                vec![VolumeMount {
                    name: "data".into(),
                    mount_path: m.path.clone(),
                    read_only: Some(m.read_only),
                    ..Default::default()
                }],
            ),
            None => (Vec::new(), Vec::new()),
        };
        Job {
            metadata: ObjectMeta {
                name: Some(self.name.clone()),
                namespace: Some(self.namespace.clone()),
                labels: Some(self.labels.clone()),
                owner_references: self.owner.clone().map(|o| vec![o]),
                ..Default::default()
            },
            spec: Some(JobSpec {
                backoff_limit: Some(0),
                active_deadline_seconds: Some(self.timeout.as_secs() as i64),
                // A finished Job (and its pod) does not pile up: the cluster removes it after a
                // day, long enough to read what a background run said.
                ttl_seconds_after_finished: Some(JOB_TTL_SECONDS),
                template: PodTemplateSpec {
                    metadata: Some(ObjectMeta {
                        labels: Some(self.labels.clone()),
                        ..Default::default()
                    }),
                    spec: Some(PodSpec {
                        restart_policy: Some("Never".into()),
                        node_name: self.node_name.clone(),
                        // Control jobs (policy and DR runs, background restores) use the API as the
                        // `k10` ServiceAccount; data movers need no API access at all.
                        service_account_name: self.mount.is_none().then(|| SERVICE_ACCOUNT.to_string()),
                        automount_service_account_token: Some(self.mount.is_none()),
                        containers: vec![Container {
                            name: "kubectl-k10".into(),
                            image: Some(image()),
                            command: Some(vec!["kubectl-k10".into()]),
                            args: Some(self.args.clone()),
                            env: Some(env),
                            volume_mounts: Some(mounts),
                            security_context: Some(self.security_context()),
                            resources: Some(self.resources()),
                            ..Default::default()
                        }],
                        volumes: Some(volumes),
                        ..Default::default()
                    }),
                },
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    /// Creates the Job without waiting (no secret environment allowed: nothing would remove it).
    pub async fn start(&self, cluster: &Cluster) -> Result<(), JobError> {
        assert!(self.secret_env.is_empty(), "a started Job cannot own a Secret");
        let jobs: Api<Job> = Api::namespaced(cluster.client.clone(), &self.namespace);
        jobs.create(&PostParams::default(), &self.job())
            .await
            .map_err(|e| cluster.err(e, format!("create Job {}/{}", self.namespace, self.name)))?;
        Ok(())
    }

    /// Creates the Secret and the Job, waits for the Job, and removes both whatever happened.
    /// Returns the Job's output (its pod's log).
    pub async fn run(&self, cluster: &Cluster) -> Result<String, JobError> {
        self.run_reporting(cluster, &|_| {}).await
    }

    /// [`ProductJob::run`], telling `progress` what the pod is doing whenever that changes
    /// (waiting to be scheduled, pulling its image, running), in the cluster's words.
    pub async fn run_reporting(&self, cluster: &Cluster, progress: &(dyn Fn(&str) + Sync)) -> Result<String, JobError> {
        self.create_suspended(cluster).await?.run(progress).await
    }

    /// Creates the Job suspended and, for secret environment, its Secret, owned by the Job from
    /// the moment it exists. Objects made with [`Suspended::owner`] before [`Suspended::run`]
    /// resumes it go with the Job too: whatever kills this process from then on, the cluster
    /// removes them with the Job (at the latest when its TTL ends). On failure nothing is left.
    pub async fn create_suspended<'a>(&'a self, cluster: &'a Cluster) -> Result<Suspended<'a>, JobError> {
        let jobs: Api<Job> = Api::namespaced(cluster.client.clone(), &self.namespace);
        let mut job = self.job();
        if let Some(spec) = job.spec.as_mut() {
            spec.suspend = Some(true);
        }
        let made = jobs
            .create(&PostParams::default(), &job)
            .await
            .map_err(|e| cluster.err(e, format!("create Job {}/{}", self.namespace, self.name)))?;
        let suspended = Suspended {
            job: self,
            cluster,
            owner: OwnerReference {
                api_version: "batch/v1".into(),
                kind: "Job".into(),
                name: self.name.clone(),
                uid: made.metadata.uid.clone().unwrap_or_default(),
                ..Default::default()
            },
        };
        if self.secret_env.is_empty() {
            return Ok(suspended);
        }
        let secrets: Api<Secret> = Api::namespaced(cluster.client.clone(), &self.namespace);
        let secret = Secret {
            metadata: ObjectMeta {
                name: Some(self.secret_name()),
                namespace: Some(self.namespace.clone()),
                labels: Some(self.labels.clone()),
                owner_references: Some(vec![suspended.owner.clone()]),
                ..Default::default()
            },
            data: Some(self.secret_env.iter().map(|(k, v)| (k.clone(), ByteString(v.clone().into_bytes()))).collect()),
            ..Default::default()
        };
        if let Err(e) = secrets.create(&PostParams::default(), &secret).await {
            suspended.remove().await;
            return Err(cluster.err(e, format!("create Secret {}/{}", self.namespace, self.secret_name())).into());
        }
        Ok(suspended)
    }

    /// Deletes the Job (its pod and what it owns go with it) and its Secret, at once.
    async fn delete(&self, cluster: &Cluster) {
        let jobs: Api<Job> = Api::namespaced(cluster.client.clone(), &self.namespace);
        let background = DeleteParams {
            propagation_policy: Some(PropagationPolicy::Background),
            ..Default::default()
        };
        let _ = jobs.delete(&self.name, &background).await;
        if !self.secret_env.is_empty() {
            let secrets: Api<Secret> = Api::namespaced(cluster.client.clone(), &self.namespace);
            let _ = secrets.delete(&self.secret_name(), &DeleteParams::default()).await;
        }
    }

    /// Follows the Job through a watch (which resumes from its resourceVersion after a dropped
    /// connection or an API server restart, and lists afresh when that version expired) until it
    /// completes or fails; every 3 s, what its pod is doing and whether the cluster says it
    /// cannot start.
    async fn wait(&self, cluster: &Cluster, jobs: &Api<Job>, progress: &(dyn Fn(&str) + Sync)) -> Result<String, JobError> {
        use futures::StreamExt;
        use kube::runtime::watcher::{self, Event as Watched};
        use kube::runtime::WatchStreamExt;
        let deadline = tokio::time::Instant::now() + self.timeout;
        let started = tokio::time::Instant::now();
        let mut told = String::new();
        let config = watcher::Config::default().fields(&format!("metadata.name={}", self.name));
        let mut updates = std::pin::pin!(watcher::watcher(jobs.clone(), config).default_backoff());
        let mut tick = tokio::time::interval(Duration::from_secs(3));
        loop {
            tokio::select! {
                update = updates.next() => match update {
                    Some(Ok(Watched::Apply(job) | Watched::InitApply(job))) => {
                        if let Some(outcome) = self.outcome(cluster, &job).await {
                            return outcome;
                        }
                    }
                    Some(Ok(Watched::Delete(_))) => {
                        return Err(JobError::Failed {
                            namespace: self.namespace.clone(),
                            name: self.name.clone(),
                            reason: "the Job was deleted before it finished".into(),
                            log: String::new(),
                        })
                    }
                    Some(Ok(_)) => {}
                    // The watch is retried with backoff; an API server that is down is waited out.
                    Some(Err(e)) => tracing::debug!("watching Job {}/{}: {e}", self.namespace, self.name),
                    None => {
                        return Err(JobError::Failed {
                            namespace: self.namespace.clone(),
                            name: self.name.clone(),
                            reason: "its watch ended".into(),
                            log: String::new(),
                        })
                    }
                },
                _ = tick.tick() => {
                    if let Some(doing) = self.pod_state(cluster).await.filter(|d| *d != told) {
                        progress(&format!("pod {doing}"));
                        told = doing;
                    }
                    if let Some((reason, advice)) = self.cannot_start(cluster, started.elapsed()).await {
                        return Err(JobError::CannotStart {
                            namespace: self.namespace.clone(),
                            name: self.name.clone(),
                            reason,
                            advice,
                        });
                    }
                    if tokio::time::Instant::now() >= deadline {
                        return Err(JobError::TimedOut {
                            namespace: self.namespace.clone(),
                            name: self.name.clone(),
                            seconds: self.timeout.as_secs(),
                        });
                    }
                }
            }
        }
    }

    /// The end of the Job, if it has ended: its output, or why it failed.
    async fn outcome(&self, cluster: &Cluster, job: &Job) -> Option<Result<String, JobError>> {
        let conditions = job.status.as_ref().and_then(|s| s.conditions.clone()).unwrap_or_default();
        let is = |kind: &str| conditions.iter().find(|c| c.type_ == kind && c.status == "True").cloned();
        if is("Complete").is_some() {
            return Some(Ok(self.log(cluster).await));
        }
        let failed = is("Failed")?;
        let mut reason = failed.message.clone().or_else(|| failed.reason.clone()).unwrap_or_else(|| "failed".into());
        if self.oom_killed(cluster).await {
            let limit = self.resources().limits.and_then(|l| l.get("memory").cloned()).map_or_else(String::new, |q| format!(" ({})", q.0));
            let advice = match self.mount {
                Some(_) => format!("; give data movers more: the Policy annotation {MOVER_MEMORY_ANNOTATION}, or `restore --mover-memory-limit` (README: \"Resources\")"),
                None => String::new(),
            };
            reason = format!("its container was killed for going over its memory limit{limit} (OOMKilled){advice}");
        }
        Some(Err(JobError::Failed {
            namespace: self.namespace.clone(),
            name: self.name.clone(),
            reason,
            log: self.log(cluster).await,
        }))
    }

    /// Why the Job's pod cannot run, if the cluster says so: refused at admission (the Job's
    /// `FailedCreate` events, such as Pod Security), not schedulable for longer than
    /// [`SCHEDULING_PATIENCE`] (`FailedScheduling`, such as an unbound claim), or an image that
    /// cannot be pulled. With what to do. (A read that fails is no answer: the wait goes on.)
    async fn cannot_start(&self, cluster: &Cluster, waited: Duration) -> Option<(String, String)> {
        let events: Api<Event> = Api::namespaced(cluster.client.clone(), &self.namespace);
        let about = |name: &str| ListParams::default().fields(&format!("involvedObject.name={name}"));
        let job_events = events.list(&about(&self.name)).await.ok()?.items;
        if let Some(e) = job_events.iter().rev().find(|e| e.reason.as_deref() == Some("FailedCreate")) {
            let advice = if e.message.as_deref().unwrap_or_default().contains("PodSecurity") {
                format!("the namespace {}'s Pod Security level (label pod-security.kubernetes.io/enforce) refuses the product's pod: see the README's Pod Security section", self.namespace)
            } else {
                "fix what the cluster names and run again".to_string()
            };
            return Some((e.message.clone().unwrap_or_default(), advice));
        }
        let pods: Api<Pod> = Api::namespaced(cluster.client.clone(), &self.namespace);
        let list = pods.list(&ListParams::default().labels(&format!("job-name={}", self.name))).await.ok()?;
        for pod in list.items {
            let waiting = pod
                .status
                .as_ref()
                .and_then(|s| s.container_statuses.as_ref())
                .into_iter()
                .flatten()
                .filter_map(|c| c.state.as_ref()?.waiting.as_ref())
                .find(|w| matches!(w.reason.as_deref(), Some("ErrImagePull" | "ImagePullBackOff" | "InvalidImageName" | "CreateContainerConfigError")));
            if let Some(w) = waiting {
                return Some((
                    format!("{}: {}", w.reason.clone().unwrap_or_default(), w.message.clone().unwrap_or_default()),
                    "check the image (K10_IMAGE) and that the cluster can pull it".into(),
                ));
            }
            if waited < SCHEDULING_PATIENCE {
                continue;
            }
            let name = pod.metadata.name.clone().unwrap_or_default();
            let pod_events = events.list(&about(&name)).await.ok()?.items;
            if let Some(e) = pod_events.iter().rev().find(|e| e.reason.as_deref() == Some("FailedScheduling")) {
                return Some((
                    format!("its pod {name} cannot be scheduled: {}", e.message.clone().unwrap_or_default()),
                    "a claim that cannot bind needs a PersistentVolume (or a StorageClass) that can serve it".into(),
                ));
            }
        }
        None
    }

    /// What the Job's pod is doing, as the cluster reports it: `pending: <why>` (not scheduled,
    /// its claim not bound), `waiting: <reason>` (creating its container, pulling its image),
    /// `running`, or none while it has no pod.
    async fn pod_state(&self, cluster: &Cluster) -> Option<String> {
        let pods: Api<Pod> = Api::namespaced(cluster.client.clone(), &self.namespace);
        let list = pods.list(&ListParams::default().labels(&format!("job-name={}", self.name))).await.ok()?;
        let pod = list.items.into_iter().next()?;
        let name = pod.metadata.name.clone().unwrap_or_default();
        let status = pod.status.unwrap_or_default();
        let waiting = status
            .container_statuses
            .iter()
            .flatten()
            .filter_map(|c| c.state.as_ref()?.waiting.as_ref())
            .find_map(|w| w.reason.clone());
        let unscheduled = status
            .conditions
            .iter()
            .flatten()
            .find(|c| c.type_ == "PodScheduled" && c.status == "False")
            .map(|c| c.message.clone().or_else(|| c.reason.clone()).unwrap_or_default());
        let doing = match (status.phase.as_deref(), unscheduled, waiting) {
            (_, Some(why), _) => format!("pending: not scheduled yet ({why})"),
            (_, None, Some(reason)) => format!("waiting: {reason}"),
            (Some("Running"), None, None) => "running".to_string(),
            (Some(phase), None, None) => phase.to_lowercase(),
            (None, None, None) => "pending".to_string(),
        };
        Some(format!("{name} {doing}"))
    }

    /// The Job's pod log (empty when it cannot be read).
    /// Whether the kernel killed the Job's container for its memory (a cgroup's OOM kill).
    async fn oom_killed(&self, cluster: &Cluster) -> bool {
        let pods: Api<Pod> = Api::namespaced(cluster.client.clone(), &self.namespace);
        let Ok(list) = pods.list(&ListParams::default().labels(&format!("job-name={}", self.name))).await else {
            return false;
        };
        list.items.iter().flat_map(|p| p.status.iter().flat_map(|s| s.container_statuses.iter().flatten())).any(|c| {
            [c.state.as_ref(), c.last_state.as_ref()]
                .into_iter()
                .flatten()
                .any(|s| s.terminated.as_ref().is_some_and(|t| t.reason.as_deref() == Some("OOMKilled")))
        })
    }

    async fn log(&self, cluster: &Cluster) -> String {
        let pods: Api<Pod> = Api::namespaced(cluster.client.clone(), &self.namespace);
        let Ok(list) = pods.list(&ListParams::default().labels(&format!("job-name={}", self.name))).await else {
            return String::new();
        };
        for pod in list.items {
            if let Some(name) = pod.metadata.name {
                if let Ok(log) = pods.logs(&name, &LogParams::default()).await {
                    return log;
                }
            }
        }
        String::new()
    }
}

/// A product Job created suspended (see [`ProductJob::create_suspended`]).
pub struct Suspended<'a> {
    job: &'a ProductJob,
    cluster: &'a Cluster,
    owner: OwnerReference,
}

impl Suspended<'_> {
    /// The owner reference to give objects that must go with the Job.
    pub fn owner(&self) -> &OwnerReference {
        &self.owner
    }

    /// Resumes the Job, waits for it (telling `progress` what its pod is doing), and removes it
    /// with everything it owns, whatever happened. Returns its output (its pod's log).
    pub async fn run(self, progress: &(dyn Fn(&str) + Sync)) -> Result<String, JobError> {
        let result = self.finish(progress).await;
        self.remove().await;
        result
    }

    /// Resumes the Job and waits for it, keeping it (and what it owns, such as the volume it
    /// wrote) until [`Suspended::remove`].
    pub async fn finish(&self, progress: &(dyn Fn(&str) + Sync)) -> Result<String, JobError> {
        let (job, cluster) = (self.job, self.cluster);
        let jobs: Api<Job> = Api::namespaced(cluster.client.clone(), &job.namespace);
        let resume = serde_json::json!({"spec": {"suspend": false}});
        match jobs.patch(&job.name, &kube::api::PatchParams::default(), &kube::api::Patch::Merge(&resume)).await {
            Ok(_) => job.wait(cluster, &jobs, progress).await,
            Err(e) => Err(cluster.err(e, format!("resume Job {}/{}", job.namespace, job.name)).into()),
        }
    }

    /// Removes the Job with everything it owns.
    pub async fn remove(self) {
        self.job.delete(self.cluster).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The capabilities Pod Security `baseline` lets a container add.
    const BASELINE_CAPABILITIES: &[&str] = &[
        "AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD", "NET_BIND_SERVICE",
        "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT",
    ];

    fn job(mount: Option<Mount>) -> SecurityContext {
        ProductJob {
            namespace: "ns".into(),
            name: "j".into(),
            args: vec![],
            secret_env: BTreeMap::new(),
            mount,
            node_name: None,
            labels: BTreeMap::new(),
            timeout: Duration::from_secs(1),
            owner: None,
            memory_limit: None,
        }
        .security_context()
    }

    fn added(c: &SecurityContext) -> Vec<String> {
        c.capabilities.as_ref().and_then(|c| c.add.clone()).unwrap_or_default()
    }

    #[test]
    fn every_job_is_removed_a_day_after_it_finished() {
        let job = ProductJob {
            namespace: "ns".into(),
            name: "j".into(),
            args: vec![],
            secret_env: BTreeMap::new(),
            mount: None,
            node_name: None,
            labels: BTreeMap::new(),
            timeout: Duration::from_secs(1),
            owner: None,
            memory_limit: None,
        }
        .job();
        assert_eq!(job.spec.and_then(|s| s.ttl_seconds_after_finished), Some(86_400));
    }

    #[test]
    fn every_job_requests_memory_and_is_limited() {
        let with = |mount: Option<Mount>, memory_limit: Option<u64>| {
            let job = ProductJob {
                namespace: "ns".into(),
                name: "j".into(),
                args: vec![],
                secret_env: BTreeMap::new(),
                mount,
                node_name: None,
                labels: BTreeMap::new(),
                timeout: Duration::from_secs(1),
                owner: None,
                memory_limit,
            }
            .job();
            job.spec.unwrap().template.spec.unwrap().containers[0].resources.clone().unwrap()
        };
        let mover = with(Some(Mount { claim: "c".into(), path: "/data".into(), read_only: true }), None);
        assert_eq!(mover.requests.as_ref().unwrap()["memory"], Quantity("256Mi".into()));
        assert_eq!(mover.limits.as_ref().unwrap()["memory"], Quantity("1Gi".into()));
        // A limit of its own: the request is no more than it.
        let capped = with(Some(Mount { claim: "c".into(), path: "/data".into(), read_only: true }), Some(192 << 20));
        assert_eq!(capped.requests.as_ref().unwrap()["memory"], Quantity("192Mi".into()));
        assert_eq!(capped.limits.as_ref().unwrap()["memory"], Quantity("192Mi".into()));
        let roomy = with(Some(Mount { claim: "c".into(), path: "/data".into(), read_only: true }), Some(2 << 30));
        assert_eq!(roomy.requests.as_ref().unwrap()["memory"], Quantity("256Mi".into()));
        assert_eq!(roomy.limits.as_ref().unwrap()["memory"], Quantity("2048Mi".into()));
        // Control Jobs keep theirs.
        let control = with(None, Some(192 << 20));
        assert_eq!(control.requests.as_ref().unwrap()["memory"], Quantity("128Mi".into()));
        assert_eq!(control.limits.as_ref().unwrap()["memory"], Quantity("1Gi".into()));
    }

    #[test]
    fn memory_limits_are_read_as_kubernetes_writes_them() {
        assert_eq!(parse_mover_memory("256Mi"), Ok(256 << 20));
        assert_eq!(parse_mover_memory(" 1Gi "), Ok(1 << 30));
        assert_eq!(parse_mover_memory("512M"), Ok(512_000_000));
        assert_eq!(parse_mover_memory("268435456"), Ok(256 << 20));
        for bad in ["", "Mi", "256MB", "1.5Gi", "-1Gi", "64Mi", "99999999999999999999Gi", "256 Mi"] {
            let err = parse_mover_memory(bad).unwrap_err();
            assert!(err.contains("use a quantity such as 256Mi or 1Gi") && err.contains("at least 128Mi"), "{bad}: {err}");
        }
    }

    #[test]
    fn control_jobs_pass_restricted_and_data_movers_baseline() {
        let control = job(None);
        // restricted: non-root, no escalation, every capability dropped, a seccomp profile.
        assert_eq!(control.run_as_non_root, Some(true));
        assert_eq!(control.allow_privilege_escalation, Some(false));
        assert_eq!(control.capabilities.as_ref().and_then(|c| c.drop.clone()), Some(vec!["ALL".to_string()]));
        assert!(added(&control).is_empty());
        for mover in [
            job(None),
            job(Some(Mount { claim: "c".into(), path: "/data".into(), read_only: true })),
            job(Some(Mount { claim: "c".into(), path: "/data".into(), read_only: false })),
        ] {
            assert_eq!(mover.seccomp_profile.as_ref().map(|p| p.type_.as_str()), Some("RuntimeDefault"));
            assert_eq!(mover.allow_privilege_escalation, Some(false));
            for cap in added(&mover) {
                assert!(BASELINE_CAPABILITIES.contains(&cap.as_str()), "{cap} is refused by Pod Security baseline");
            }
        }
    }
}
