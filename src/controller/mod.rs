//! The in-cluster controller (`kubectl-k10 controller`): makes the catalog's objects true, so
//! that a Profile or Policy applied with kubectl, GitOps or a DR restore works with no plugin
//! command. Its replicas elect a leader on a Lease ([`leader`]); the leader:
//! - validates every Profile when it is created or changed and every day after, into
//!   `status.validation` and its checks, with an Event;
//! - validates every Policy into its status (`validation`, `errors`, the fields it keeps but
//!   ignores, `nextRunTime`), and runs each valid, unpaused one when it comes due
//!   ([`crate::schedule`]) as a Job in kasten-io running `policy run NAME --wait` (`dr run --wait`
//!   for the DR policy). The Job's name comes from the policy and the due time, so a due time is
//!   run once even when two replicas both believe they lead (the second create is a 409). A due
//!   time that passes while the previous run is still going, or while the policy is paused or
//!   invalid, is skipped and says so in an Event. After an outage, only the newest missed time
//!   runs.
//! - runs RunActions (`actions.kio.kasten.io/v1alpha1`, K10's on-demand API) as Jobs and reports
//!   their state, error and restore points;
//! - runs retention maintenance on its own schedule (`--maintenance-frequency`, daily by default),
//!   as a Job per due time;
//! - exports [`metrics`], the protection horizon among them.
//!
//! It learns of changes through watches (kube-rs reflectors, which resume from their
//! resourceVersion and relist on 410 Gone) and otherwise sleeps until the next due time.

pub mod deployment;
pub mod leader;
pub mod metrics;

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures::StreamExt;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Resource, ResourceExt};

use crate::api::{
    ActionError, Policy, Profile, RestorePoint, RunAction, RunActionStatus, K10_NAMESPACE, STATE_COMPLETE, STATE_FAILED, STATE_RUNNING,
};
use crate::catalog::{self, validation};
use crate::dr::DR_POLICY;
use crate::k8s::events;
use crate::k8s::jobs::ProductJob;
use crate::k8s::{Cluster, K8sError};
use crate::objectstore::maintenance;
use crate::repo::layout;
use metrics::Metrics;

/// Labels on the Jobs the controller starts (with [`crate::k8s::managed_by`]).
pub const POLICY_LABEL: &str = "k10.kasten.io/policy";
pub const RUN_ACTION_LABEL: &str = "k10.kasten.io/runaction";
/// Set on a Job once its outcome was reported (an Event, the policy's status).
pub const REPORTED_ANNOTATION: &str = "k10.kasten.io/reported";
/// On the retention-maintenance Jobs the controller starts.
pub const MAINTENANCE_LABEL: &str = "k10.kasten.io/maintenance";
/// A due maintenance run is started only within this long after its due time: a finished Job
/// stays a day ([`crate::k8s::jobs::JOB_TTL_SECONDS`]), so its name still answers "already run"
/// for as long as the due time may be started.
/// Who the controller's Events are from.
const COMPONENT: &str = "k10-controller";
const MAINTENANCE_LATENESS: chrono::Duration = chrono::Duration::hours(23);

#[derive(Debug, Clone)]
pub struct Options {
    /// This replica's name in the Lease (the pod name in a Deployment).
    pub identity: String,
    pub lease_duration: Duration,
    pub metrics_address: SocketAddr,
    /// How often a valid profile is validated again.
    pub revalidate_every: Duration,
    /// How often the protection horizon is read from the buckets (one lock read per object).
    pub horizon_every: Duration,
    /// When retention maintenance runs (`None`: never; the contract asks for every 2 days at least).
    pub maintenance: Option<crate::schedule::Frequency>,
    /// How long one maintenance run may take.
    pub maintenance_timeout: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum ControllerError {
    #[error("cannot serve metrics on {address}: {source}; choose another --metrics-address")]
    Metrics {
        address: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("lost the lead (Lease {namespace}/{lease}): {why}; exiting so that the replica restarts as a follower")]
    LostLead { namespace: String, lease: &'static str, why: String },
    #[error("watching {kind} failed: {message}; check that `kubectl k10 install` ran and the controller's RBAC")]
    Watch { kind: &'static str, message: String },
    #[error(transparent)]
    K8s(#[from] K8sError),
}

/// Runs the controller until it loses the lead (an error) or is told to stop (SIGTERM: it gives
/// the Lease up first).
pub async fn run(cluster: Cluster, options: Options) -> Result<(), ControllerError> {
    let metrics = Metrics::new();
    let listener = tokio::net::TcpListener::bind(options.metrics_address)
        .await
        .map_err(|source| ControllerError::Metrics { address: options.metrics_address, source })?;
    metrics.set("k10_controller_leader", "1 on the replica that runs policies", "", "", 0.0);
    tokio::spawn(metrics::serve(listener, metrics.clone()));

    let mut elector = leader::Elector::new(&cluster, K10_NAMESPACE, &options.identity, options.lease_duration);
    let retry = options.lease_duration / 3;
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("a SIGTERM handler");
    loop {
        match elector.try_lead().await {
            Ok(true) => break,
            Ok(false) => {}
            Err(e) => tracing::warn!("leader election: {e}"),
        }
        tokio::select! {
            _ = tokio::time::sleep(retry) => {}
            _ = terminate.recv() => return Ok(()),
        }
    }
    tracing::info!("{} leads (Lease {K10_NAMESPACE}/{})", options.identity, leader::LEASE_NAME);
    eprintln!("controller {}: leading", options.identity);
    metrics.set("k10_controller_leader", "1 on the replica that runs policies", "", "", 1.0);

    let lost = async {
        let mut renewed = Instant::now();
        loop {
            tokio::time::sleep(retry).await;
            match elector.try_lead().await {
                Ok(true) => renewed = Instant::now(),
                Ok(false) => return "another replica holds the Lease".to_string(),
                Err(e) if renewed.elapsed() > options.lease_duration * 2 / 3 => return format!("could not renew it: {e}"),
                Err(e) => tracing::warn!("renewing the Lease: {e}"),
            }
        }
    };
    let outcome = tokio::select! {
        why = lost => Err(ControllerError::LostLead { namespace: K10_NAMESPACE.into(), lease: leader::LEASE_NAME, why }),
        r = Leader::new(cluster.clone(), options.clone(), metrics.clone()).run() => r,
        _ = terminate.recv() => Ok(()),
    };
    metrics.clear();
    elector.release().await;
    outcome
}

/// What the leader reads: the catalog's objects and its own Jobs, kept current by watches.
struct Leader {
    cluster: Cluster,
    options: Options,
    metrics: Arc<Metrics>,
    wake: Arc<tokio::sync::Notify>,
    policies: Store<Policy>,
    profiles: Store<Profile>,
    run_actions: Store<RunAction>,
    jobs: Store<Job>,
    /// Profiles being validated now.
    validating: Arc<Mutex<HashSet<String>>>,
    horizon_read: Option<Instant>,
    /// A horizon read is under way (one at a time).
    reading_horizon: Arc<std::sync::atomic::AtomicBool>,
}

impl Leader {
    fn new(cluster: Cluster, options: Options, metrics: Arc<Metrics>) -> Leader {
        let wake = Arc::new(tokio::sync::Notify::new());
        let client = cluster.client.clone();
        let job_labels = format!("{}={}", crate::k8s::MANAGED_BY_KEY, crate::k8s::MANAGED_BY_VALUE);
        Leader {
            policies: reflect(Api::namespaced(client.clone(), K10_NAMESPACE), watcher::Config::default(), &wake),
            profiles: reflect(Api::namespaced(client.clone(), K10_NAMESPACE), watcher::Config::default(), &wake),
            run_actions: reflect(Api::all(client.clone()), watcher::Config::default(), &wake),
            jobs: reflect(Api::namespaced(client, K10_NAMESPACE), watcher::Config::default().labels(&job_labels), &wake),
            cluster,
            options,
            metrics,
            wake,
            validating: Default::default(),
            horizon_read: None,
            reading_horizon: Default::default(),
        }
    }

    async fn run(mut self) -> Result<(), ControllerError> {
        for (kind, ready) in [
            ("Policy", self.policies.wait_until_ready().await),
            ("Profile", self.profiles.wait_until_ready().await),
            ("RunAction", self.run_actions.wait_until_ready().await),
            ("Job", self.jobs.wait_until_ready().await),
        ] {
            ready.map_err(|e| ControllerError::Watch { kind, message: e.to_string() })?;
        }
        loop {
            let next = self.pass().await;
            let sleep = next
                .map_or(Duration::from_secs(60), |t| (t - Utc::now()).to_std().unwrap_or_default())
                .min(Duration::from_secs(60))
                .min(self.options.horizon_every);
            tokio::select! {
                _ = self.wake.notified() => {
                    // A burst of events is one pass.
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                _ = tokio::time::sleep(sleep) => {}
            }
        }
    }

    /// One reconciliation of everything; returns the next due time.
    async fn pass(&mut self) -> Option<DateTime<Utc>> {
        let now = Utc::now();
        let profiles: Vec<Profile> = self.profiles.state().iter().map(|p| (**p).clone()).collect();
        self.profiles_pass(&profiles, now);
        let mut next: Option<DateTime<Utc>> = None;
        for policy in self.policies.state() {
            match self.policy_pass(&policy, &profiles, now).await {
                Ok(Some(t)) => next = Some(next.map_or(t, |n| n.min(t))),
                Ok(None) => {}
                Err(e) => tracing::warn!("policy {}: {e}", policy.name_any()),
            }
        }
        let names: Vec<String> = self.policies.state().iter().map(|p| p.name_any()).collect();
        for metric in POLICY_METRICS {
            self.metrics.retain(metric, &names);
        }
        for run in self.run_actions.state() {
            if let Err(e) = self.run_action_pass(&run).await {
                tracing::warn!("RunAction {}: {e}", run.name_any());
            }
        }
        if let Err(e) = self.report_finished_jobs().await {
            tracing::warn!("reporting finished Jobs: {e}");
        }
        if let Some(due) = self.maintenance_pass(now).await {
            next = Some(next.map_or(due, |n| n.min(due)));
        }
        self.maintenance_metrics();
        use std::sync::atomic::Ordering;
        if self.horizon_read.is_none_or(|t| t.elapsed() >= self.options.horizon_every) && !self.reading_horizon.swap(true, Ordering::SeqCst) {
            self.horizon_read = Some(Instant::now());
            let (cluster, metrics, reading) = (self.cluster.clone(), self.metrics.clone(), self.reading_horizon.clone());
            tokio::spawn(async move {
                protection_horizon(cluster, profiles, metrics).await;
                reading.store(false, Ordering::SeqCst);
            });
        }
        next
    }

    /// Starts a validation of each profile that changed or was last validated too long ago.
    fn profiles_pass(&self, profiles: &[Profile], now: DateTime<Utc>) {
        let names: Vec<String> = profiles.iter().map(|p| p.name_any()).collect();
        self.metrics.retain("k10_profile_valid", &names);
        self.metrics.retain("k10_protection_horizon_days", &names);
        self.metrics.retain("k10_protection_period_days", &names);
        for profile in profiles {
            let name = profile.name_any();
            let status = profile.status.clone().unwrap_or_default();
            if let Some(v) = &status.validation {
                self.metrics.set("k10_profile_valid", "1 when the profile's bucket checks passed", "profile", &name, f64::from(u8::from(v == validation::VALID)));
            }
            let validated_at = status.validated_at.as_deref().and_then(|t| DateTime::parse_from_rfc3339(t).ok());
            let stale = validated_at.is_none_or(|t| now - t.with_timezone(&Utc) > chrono::Duration::from_std(self.options.revalidate_every).unwrap_or_default());
            let changed = status.observed_generation != profile.metadata.generation;
            if !(stale || changed) || !self.validating.lock().expect("lock").insert(name.clone()) {
                continue;
            }
            let (cluster, profile, validating) = (self.cluster.clone(), profile.clone(), self.validating.clone());
            tokio::spawn(async move {
                validate_profile(&cluster, &profile).await;
                validating.lock().expect("lock").remove(&profile.name_any());
            });
        }
    }

    /// Validates a policy into its status and starts its run when due.
    async fn policy_pass(&self, policy: &Policy, profiles: &[Profile], now: DateTime<Utc>) -> Result<Option<DateTime<Utc>>, K8sError> {
        let name = policy.name_any();
        let v = validation::validate_policy(policy, profiles);
        let old = policy.status.clone().unwrap_or_default();
        let mut status = old.clone();
        status.validation = Some(if v.passed() { validation::VALID } else { validation::INVALID }.into());
        status.errors = v.errors.clone();
        status.ignored = v.ignored.clone();
        status.observed_generation = policy.metadata.generation;

        let runs = v.frequency.as_ref().filter(|f| f.is_scheduled());
        let created = policy.metadata.creation_timestamp.as_ref().map(|t| to_chrono(t.0.as_second())).unwrap_or(now);
        let since = old.last_scheduled_time.as_deref().and_then(parse_time).unwrap_or(created);
        if let Some(due) = runs.and_then(|f| f.due_between(since, now)) {
            status.last_scheduled_time = Some(rfc3339(due));
            let job = self.policy_job(policy, &format!("k10-policy-{}", short(&name, 30)), Some(due), None);
            // This due time's own Job, seen before its policy's status says so: already started.
            let started = self.jobs.state().iter().any(|j| j.name_any() == job.name);
            let active = self.jobs.state().iter().any(|j| label(j, POLICY_LABEL) == Some(name.as_str()) && j.status.as_ref().is_some_and(|s| s.completion_time.is_none() && !job_failed(j)));
            let skip = if started {
                None
            } else if !v.passed() {
                Some("the policy is not valid (see its status)".to_string())
            } else if policy.spec.paused {
                Some("the policy is paused".to_string())
            } else if active {
                Some("its previous run is still going".to_string())
            } else {
                None
            };
            match skip {
                Some(why) => self.event(policy, "Warning", "Skipped", &format!("the run due at {} was skipped: {why}", rfc3339(due))).await,
                None if started => {}
                None => {
                    match job.start(&self.cluster).await {
                        Ok(()) => self.event(policy, "Normal", "Scheduled", &format!("the run due at {} started as Job {K10_NAMESPACE}/{}", rfc3339(due), job.name)).await,
                        Err(crate::k8s::jobs::JobError::K8s(e)) if e.is_conflict() => {}
                        Err(e) => self.event(policy, "Warning", "FailedCreate", &format!("the run due at {} could not start: {e}", rfc3339(due))).await,
                    }
                }
            }
        }
        let next = runs.filter(|_| v.passed() && !policy.spec.paused).and_then(|f| f.next_after(now));
        status.next_run_time = next.map(rfc3339);
        if status != old {
            if old.validation != status.validation || old.errors != status.errors {
                let (kind, reason, message) = if v.passed() {
                    ("Normal", "Validated", "the policy is valid".to_string())
                } else {
                    ("Warning", "ValidationFailed", v.errors.join("; "))
                };
                self.event(policy, kind, reason, &message).await;
            }
            let api: Api<Policy> = Api::namespaced(self.cluster.client.clone(), K10_NAMESPACE);
            api.patch_status(&name, &PatchParams::default(), &Patch::Merge(serde_json::json!({ "status": status })))
                .await
                .map_err(|e| self.cluster.err(e, format!("update the status of policy {name:?}")))?;
        }
        self.policy_metrics(policy, &status, v.passed());
        Ok(next)
    }

    fn policy_metrics(&self, policy: &Policy, status: &crate::api::PolicyStatus, valid: bool) {
        let name = policy.name_any();
        let m = &self.metrics;
        m.set("k10_policy_valid", "1 when the policy's spec validated", "policy", &name, f64::from(u8::from(valid)));
        m.set("k10_policy_paused", "1 when the policy is paused", "policy", &name, f64::from(u8::from(policy.spec.paused)));
        if let Some(t) = status.last_run_time.as_deref().and_then(parse_time) {
            m.set("k10_policy_last_run_timestamp_seconds", "end of the policy's last run (Unix time)", "policy", &name, t.timestamp() as f64);
            let ok = status.last_run_result.as_deref() == Some("Succeeded");
            m.set("k10_policy_last_run_success", "1 when the policy's last run succeeded", "policy", &name, f64::from(u8::from(ok)));
        }
        if let Some(d) = status.last_run_duration_seconds {
            m.set("k10_policy_last_run_duration_seconds", "how long the policy's last run took", "policy", &name, d);
        }
        if let Some(b) = status.last_run_bytes {
            m.set("k10_policy_last_run_bytes", "bytes the policy's last run uploaded", "policy", &name, b as f64);
        }
    }

    /// The Job that runs a policy once.
    fn policy_job(&self, policy: &Policy, prefix: &str, due: Option<DateTime<Utc>>, owner: Option<OwnerReference>) -> ProductJob {
        let name = policy.name_any();
        let mut args: Vec<String> = if name == DR_POLICY {
            vec!["dr".into(), "run".into(), "--wait".into()]
        } else {
            vec!["policy".into(), "run".into(), name.clone(), "--wait".into()]
        };
        let required = policy.annotations().get(validation::REQUIRE_IMMUTABLE_ANNOTATION).is_some_and(|v| v == "true");
        if required && name != DR_POLICY {
            args.push("--require-immutable".into());
        }
        let job_name = match due {
            Some(due) => format!("{prefix}-{}", due.format("%Y%m%d%H%M")),
            None => prefix.to_string(),
        };
        let mut labels = crate::k8s::managed_by();
        labels.insert(POLICY_LABEL.to_string(), short(&name, 63));
        if let Some(o) = &owner {
            labels.insert(RUN_ACTION_LABEL.into(), short(&o.name, 63));
        }
        ProductJob {
            namespace: K10_NAMESPACE.into(),
            name: job_name,
            args,
            secret_env: BTreeMap::new(),
            mount: None,
            node_name: None,
            labels,
            timeout: Duration::from_secs(24 * 3600),
            owner,
            memory_limit: None,
        }
    }

    /// Starts a new RunAction's Job and follows it to the end.
    async fn run_action_pass(&self, run: &RunAction) -> Result<(), K8sError> {
        let status = run.status.clone().unwrap_or_default();
        let name = run.name_any();
        let api: Api<RunAction> = Api::all(self.cluster.client.clone());
        let save = |status: RunActionStatus| {
            let api = api.clone();
            let name = name.clone();
            async move {
                api.patch_status(&name, &PatchParams::default(), &Patch::Merge(serde_json::json!({ "status": status })))
                    .await
                    .map_err(|e| self.cluster.err(e, format!("update the status of RunAction {name}")))
                    .map(|_| ())
            }
        };
        match status.state.as_deref() {
            Some(STATE_COMPLETE | STATE_FAILED) => Ok(()),
            None => {
                let subject = &run.spec.subject;
                let policy = self.policies.state().into_iter().find(|p| p.name_any() == subject.name);
                let problem = if subject.kind != "Policy" {
                    Some(format!("subject kind {:?} is not supported: a RunAction runs a Policy", subject.kind))
                } else if subject.namespace != K10_NAMESPACE {
                    Some(format!("policy {}/{} is outside {K10_NAMESPACE}", subject.namespace, subject.name))
                } else if policy.is_none() {
                    Some(format!("policy {:?} not found in {K10_NAMESPACE}", subject.name))
                } else {
                    None
                };
                let now = Some(rfc3339(Utc::now()));
                if let Some(message) = problem {
                    return save(RunActionStatus { state: Some(STATE_FAILED.into()), error: Some(ActionError { message }), start_time: now.clone(), end_time: now, ..Default::default() }).await;
                }
                let owner = OwnerReference {
                    api_version: RunAction::api_version(&()).into_owned(),
                    kind: RunAction::kind(&()).into_owned(),
                    name: name.clone(),
                    uid: run.uid().unwrap_or_default(),
                    ..Default::default()
                };
                let job = self.policy_job(policy.as_deref().expect("checked above"), &format!("k10-run-{}", short(&name, 50)), None, Some(owner));
                match job.start(&self.cluster).await {
                    Ok(()) => {}
                    Err(crate::k8s::jobs::JobError::K8s(e)) if e.is_conflict() => {}
                    Err(e) => {
                        return save(RunActionStatus { state: Some(STATE_FAILED.into()), error: Some(ActionError { message: e.to_string() }), start_time: now.clone(), end_time: now, ..Default::default() }).await;
                    }
                }
                save(RunActionStatus { state: Some(STATE_RUNNING.into()), job: Some(job.name), start_time: now, ..Default::default() }).await
            }
            Some(_) => {
                let Some(job_name) = status.job.clone() else { return Ok(()) };
                let job = self.jobs.state().into_iter().find(|j| j.name_any() == job_name);
                let mut done = status.clone();
                match job {
                    None => {
                        // Not in the watch's view yet, or gone: the API server says which.
                        let jobs: Api<Job> = Api::namespaced(self.cluster.client.clone(), K10_NAMESPACE);
                        let exists = jobs.get_opt(&job_name).await.map_err(|e| self.cluster.err(e, format!("read Job {job_name}")))?;
                        if exists.is_some() {
                            return Ok(());
                        }
                        done.state = Some(STATE_FAILED.into());
                        done.error = Some(ActionError { message: format!("its Job {K10_NAMESPACE}/{job_name} is gone") });
                    }
                    Some(job) if job_failed(&job) => {
                        done.state = Some(STATE_FAILED.into());
                        done.error = Some(ActionError { message: format!("Job {K10_NAMESPACE}/{job_name} failed: {}; see `kubectl logs job/{job_name} -n {K10_NAMESPACE}`", failure_message(&job)) });
                    }
                    Some(job) if job.status.as_ref().is_some_and(|s| s.completion_time.is_some()) => {
                        done.state = Some(STATE_COMPLETE.into());
                        done.restore_points = self.restore_points_of(&job, &run.spec.subject.name).await?;
                    }
                    Some(_) => return Ok(()),
                }
                done.end_time = Some(rfc3339(Utc::now()));
                save(done).await
            }
        }
    }

    /// The restore points (`namespace/name`) a policy's run in `job` made.
    async fn restore_points_of(&self, job: &Job, policy: &str) -> Result<Vec<String>, K8sError> {
        let Some(created) = job.metadata.creation_timestamp.as_ref() else { return Ok(Vec::new()) };
        let name = crate::backup::restore_point_name(policy, to_chrono(created.0.as_second()), &job.uid().unwrap_or_default());
        let api: Api<RestorePoint> = Api::all(self.cluster.client.clone());
        let points = api
            .list(&ListParams::default().fields(&format!("metadata.name={name}")))
            .await
            .map_err(|e| self.cluster.err(e, "list restore points"))?;
        Ok(points.items.iter().map(|p| format!("{}/{}", p.namespace().unwrap_or_default(), p.name_any())).collect())
    }

    /// For each finished policy Job not yet reported: an Event on its policy, and the run in the
    /// policy's status when the run could not record it itself (its pod failed).
    async fn report_finished_jobs(&self) -> Result<(), K8sError> {
        let jobs_api: Api<Job> = Api::namespaced(self.cluster.client.clone(), K10_NAMESPACE);
        for job in self.jobs.state() {
            let Some(policy_name) = label(&job, POLICY_LABEL) else { continue };
            let finished = job.status.as_ref().and_then(|s| s.completion_time.clone()).is_some() || job_failed(&job);
            if !finished || job.annotations().contains_key(REPORTED_ANNOTATION) {
                continue;
            }
            if let Some(policy) = self.policies.state().into_iter().find(|p| p.name_any() == policy_name) {
                let started = job.status.as_ref().and_then(|s| s.start_time.as_ref()).map(|t| to_chrono(t.0.as_second()));
                let seconds = started.map(|s| (Utc::now() - s).num_milliseconds() as f64 / 1000.0);
                if job_failed(&job) {
                    self.event(&policy, "Warning", "RunFailed", &format!("Job {K10_NAMESPACE}/{} failed: {}", job.name_any(), failure_message(&job))).await;
                    let recorded_after = policy.status.as_ref().and_then(|s| s.last_run_time.as_deref()).and_then(parse_time);
                    if recorded_after.is_none_or(|t| started.is_some_and(|s| t < s)) {
                        let patch = serde_json::json!({"status": {"lastRunTime": rfc3339(Utc::now()), "lastRunResult": "Failed", "lastRunDurationSeconds": seconds}});
                        let api: Api<Policy> = Api::namespaced(self.cluster.client.clone(), K10_NAMESPACE);
                        let _ = api.patch_status(policy_name, &PatchParams::default(), &Patch::Merge(patch)).await;
                    }
                } else {
                    self.event(&policy, "Normal", "RunSucceeded", &format!("Job {K10_NAMESPACE}/{} succeeded", job.name_any())).await;
                }
            }
            let patch = serde_json::json!({"metadata": {"annotations": {REPORTED_ANNOTATION: "true"}}});
            jobs_api
                .patch(&job.name_any(), &PatchParams::default(), &Patch::Merge(patch))
                .await
                .map_err(|e| self.cluster.err(e, format!("annotate Job {}", job.name_any())))?;
        }
        Ok(())
    }

    /// Starts retention maintenance (`kubectl-k10 maintenance run`) as a Job when it is due; the
    /// Job's name comes from the due time, so it runs once per due time. A due time whose run
    /// finds the previous one still going is skipped. Returns the next due time.
    async fn maintenance_pass(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let schedule = self.options.maintenance.as_ref()?;
        let maintenance_jobs: Vec<Arc<Job>> = self.jobs.state().into_iter().filter(|j| label(j, MAINTENANCE_LABEL).is_some()).collect();
        let active = maintenance_jobs.iter().any(|j| j.status.as_ref().is_none_or(|s| s.completion_time.is_none()) && !job_failed(j));
        if let Some(due) = schedule.due_between(now - MAINTENANCE_LATENESS, now) {
            let name = format!("k10-maintenance-{}", due.format("%Y%m%d%H%M"));
            let started = maintenance_jobs.iter().any(|j| j.name_any() == name);
            if !started && !active {
                let mut labels = crate::k8s::managed_by();
                labels.insert(MAINTENANCE_LABEL.into(), "true".into());
                let job = ProductJob {
                    namespace: K10_NAMESPACE.into(),
                    name,
                    args: vec!["maintenance".into(), "run".into()],
                    secret_env: BTreeMap::new(),
                    mount: None,
                    node_name: None,
                    labels,
                    timeout: self.options.maintenance_timeout,
                    owner: None,
                    memory_limit: None,
                };
                match job.start(&self.cluster).await {
                    Ok(()) => tracing::info!("maintenance due at {} started as Job {K10_NAMESPACE}/{}", rfc3339(due), job.name),
                    Err(crate::k8s::jobs::JobError::K8s(e)) if e.is_conflict() => {}
                    Err(e) => tracing::warn!("maintenance due at {} could not start: {e}", rfc3339(due)),
                }
            }
        }
        schedule.next_after(now)
    }

    /// The newest finished maintenance Job.
    fn maintenance_metrics(&self) {
        let newest = self
            .jobs
            .state()
            .into_iter()
            .filter(|j| label(j, MAINTENANCE_LABEL).is_some())
            .filter_map(|j| {
                let s = j.status.clone()?;
                let end = s.completion_time.map(|t| t.0.as_second()).or_else(|| job_failed(&j).then(|| j.meta().creation_timestamp.as_ref().map(|t| t.0.as_second())).flatten())?;
                Some((end, !job_failed(&j)))
            })
            .max();
        if let Some((end, ok)) = newest {
            self.metrics.set("k10_maintenance_last_run_timestamp_seconds", "end of the last maintenance Job (Unix time)", "", "", end as f64);
            self.metrics.set("k10_maintenance_last_run_success", "1 when the last maintenance Job succeeded", "", "", f64::from(u8::from(ok)));
        }
    }

    /// A core/v1 Event on a policy (what `kubectl describe` shows).
    async fn event(&self, policy: &Policy, type_: &str, reason: &str, message: &str) {
        events::publish(&self.cluster, policy, COMPONENT, type_, reason, message).await;
    }
}

const POLICY_METRICS: [&str; 6] = [
    "k10_policy_valid",
    "k10_policy_paused",
    "k10_policy_last_run_timestamp_seconds",
    "k10_policy_last_run_success",
    "k10_policy_last_run_duration_seconds",
    "k10_policy_last_run_bytes",
];

/// A store kept current by a watch; every change wakes the leader.
fn reflect<K>(api: Api<K>, config: watcher::Config, wake: &Arc<tokio::sync::Notify>) -> Store<K>
where
    K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
    K::DynamicType: Default + Eq + std::hash::Hash + Clone,
{
    let (reader, writer) = reflector::store();
    let wake = wake.clone();
    let stream = watcher(api, config).default_backoff().reflect(writer);
    tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        while let Some(event) = stream.next().await {
            if let Err(e) = event {
                tracing::warn!("watch: {e}");
            }
            wake.notify_one();
        }
    });
    reader
}

/// Validates one profile against its bucket and records the result, with an Event.
async fn validate_profile(cluster: &Cluster, profile: &Profile) {
    let name = profile.name_any();
    let status = match validation::validate_profile(cluster, profile).await {
        Ok(v) => v.status(profile.metadata.generation),
        // Cannot even reach the checks (credentials Secret missing, invalid period): Failed.
        Err(e) => crate::api::ProfileStatus {
            validation: Some(validation::INVALID.into()),
            validated_at: Some(rfc3339(Utc::now())),
            observed_generation: profile.metadata.generation,
            checks: vec![crate::api::ValidationCheck { name: "Profile readable".into(), result: "Failed".into(), message: e.to_string() }],
        },
    };
    let ok = status.validation.as_deref() == Some(validation::VALID);
    let failed: Vec<String> = status.checks.iter().filter(|c| c.result == "Failed").map(|c| format!("{}: {}", c.name, c.message)).collect();
    if let Err(e) = validation::save_profile_status(cluster, &name, &status).await {
        tracing::warn!("profile {name}: {e}");
        return;
    }
    let was = profile.status.as_ref().and_then(|s| s.validation.clone());
    if was != status.validation || !ok {
        let (type_, reason, message) = if ok {
            ("Normal", "Validated", "the bucket passed every check".to_string())
        } else {
            ("Warning", "ValidationFailed", failed.join("; "))
        };
        events::publish(cluster, profile, COMPONENT, type_, reason, &message).await;
    }
}

/// Reads, for each immutable profile, how far ahead the earliest lock of the objects in use
/// ends, into `k10_protection_horizon_days` (and P into `k10_protection_period_days`).
async fn protection_horizon(cluster: Cluster, profiles: Vec<Profile>, metrics: Arc<Metrics>) {
    let cluster_id = match catalog::cluster_id(&cluster).await {
        Ok(id) => id,
        Err(e) => return tracing::warn!("protection horizon: {e}"),
    };
    for profile in profiles {
        let name = profile.name_any();
        let Ok(Some(period)) = catalog::period_of(&profile) else { continue };
        metrics.set("k10_protection_period_days", "the profile's protection period P in days", "profile", &name, f64::from(period.days()));
        let result = async {
            let storage = catalog::profile_storage(&cluster, &profile).await.map_err(|e| e.to_string())?;
            let now = Utc::now();
            let mut earliest: Option<DateTime<Utc>> = None;
            let root = layout::cluster_root(&cluster_id);
            for repository in maintenance::repositories(storage.as_ref(), &root).await.map_err(|e| e.to_string())? {
                let store: Arc<dyn crate::objectstore::storage::VersionedStorage> = storage.clone();
                if let Some(h) = maintenance::horizon(store, &repository, now).await.map_err(|e| e.to_string())? {
                    earliest = Some(earliest.map_or(h, |e| e.min(h)));
                }
            }
            Ok::<_, String>(earliest.map(|e| (e - now).num_seconds() as f64 / 86400.0))
        }
        .await;
        match result {
            Ok(Some(days)) => metrics.set(
                "k10_protection_horizon_days",
                "days until the earliest lock of an object k10 still needs ends (alert below k10_protection_period_days)",
                "profile",
                &name,
                days,
            ),
            Ok(None) => {}
            Err(e) => tracing::warn!("protection horizon of profile {name}: {e}"),
        }
    }
}

fn label<'a>(job: &'a Job, key: &str) -> Option<&'a str> {
    job.labels().get(key).map(String::as_str)
}

fn job_failed(job: &Job) -> bool {
    job.status.as_ref().and_then(|s| s.conditions.as_ref()).is_some_and(|c| c.iter().any(|c| c.type_ == "Failed" && c.status == "True"))
}

fn failure_message(job: &Job) -> String {
    job.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "Failed"))
        .map(|c| format!("{} {}", c.reason.clone().unwrap_or_default(), c.message.clone().unwrap_or_default()).trim().to_string())
        .unwrap_or_else(|| "unknown reason".into())
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s).ok().map(|t| t.with_timezone(&Utc))
}

fn to_chrono(seconds: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(seconds, 0).unwrap_or_default()
}

/// A name cut to `max` characters, with a short hash of the whole when cut (Job names and
/// label values have limits).
fn short(name: &str, max: usize) -> String {
    if name.len() <= max {
        return name.to_string();
    }
    use sha2::Digest;
    let hash: String = sha2::Sha256::digest(name.as_bytes()).iter().take(3).map(|b| format!("{b:02x}")).collect();
    format!("{}-{hash}", name[..max - 7].trim_end_matches('-'))
}
