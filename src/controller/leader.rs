//! Leader election on a `coordination.k8s.io/v1` Lease, as client-go's leaderelection does: the
//! holder renews `renewTime` every third of the lease duration; another replica takes the Lease
//! over only after it has seen the Lease unchanged for a whole duration on its own clock (so the
//! replicas' clocks need not agree). Every write carries the resourceVersion it read: of two
//! replicas that try at once, one gets a 409 and stays a follower.

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use kube::api::{Api, PostParams};

use crate::k8s::{Cluster, K8sError};

/// The Lease the replicas of the controller share, in kasten-io.
pub const LEASE_NAME: &str = "k10-controller";

pub struct Elector {
    api: Api<Lease>,
    cluster: Cluster,
    identity: String,
    duration: Duration,
    /// The Lease's resourceVersion as last seen, and when it was first seen so.
    seen: Option<(String, Instant)>,
}

impl Elector {
    pub fn new(cluster: &Cluster, namespace: &str, identity: &str, duration: Duration) -> Elector {
        Elector {
            api: Api::namespaced(cluster.client.clone(), namespace),
            cluster: cluster.clone(),
            identity: identity.to_string(),
            duration,
            seen: None,
        }
    }

    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// One round: acquires or renews the Lease. True when this replica holds it afterwards.
    pub async fn try_lead(&mut self) -> Result<bool, K8sError> {
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        let seconds = self.duration.as_secs().max(1);
        let current = self.api.get_opt(LEASE_NAME).await.map_err(|e| self.cluster.err(e, format!("read Lease {LEASE_NAME}")))?;
        let Some(lease) = current else {
            let lease: Lease = serde_json::from_value(serde_json::json!({
                "metadata": {"name": LEASE_NAME},
                "spec": {"holderIdentity": self.identity, "leaseDurationSeconds": seconds,
                         "acquireTime": now, "renewTime": now, "leaseTransitions": 0}
            }))
            .expect("a valid Lease");
            return self.write(self.api.create(&PostParams::default(), &lease).await);
        };
        let version = lease.metadata.resource_version.clone().unwrap_or_default();
        let spec = lease.spec.clone().unwrap_or_default();
        let holder = spec.holder_identity.clone().unwrap_or_default();
        if holder != self.identity && !holder.is_empty() {
            // Someone else's: take it only once it has stood still for a whole duration.
            let first_seen = match &self.seen {
                Some((v, at)) if *v == version => *at,
                _ => {
                    self.seen = Some((version, Instant::now()));
                    return Ok(false);
                }
            };
            let their_duration = Duration::from_secs(spec.lease_duration_seconds.unwrap_or(seconds as i32).max(1) as u64);
            if first_seen.elapsed() < their_duration {
                return Ok(false);
            }
        }
        let transitions = spec.lease_transitions.unwrap_or(0) + i32::from(holder != self.identity);
        let mut next: Lease = serde_json::from_value(serde_json::json!({
            "metadata": {"name": LEASE_NAME, "resourceVersion": version},
            "spec": {"holderIdentity": self.identity, "leaseDurationSeconds": seconds,
                     "renewTime": now, "leaseTransitions": transitions}
        }))
        .expect("a valid Lease");
        let acquired = if holder == self.identity { spec.acquire_time.clone() } else { None };
        if let Some(spec) = next.spec.as_mut() {
            spec.acquire_time = acquired.or_else(|| spec.renew_time.clone());
        }
        self.write(self.api.replace(LEASE_NAME, &PostParams::default(), &next).await)
    }

    fn write(&mut self, result: Result<Lease, kube::Error>) -> Result<bool, K8sError> {
        match result {
            Ok(lease) => {
                self.seen = lease.metadata.resource_version.map(|v| (v, Instant::now()));
                Ok(true)
            }
            // Another replica wrote first.
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
            Err(e) => Err(self.cluster.err(e, format!("write Lease {LEASE_NAME}"))),
        }
    }

    /// Gives the Lease up (on a clean shutdown), so another replica need not wait it out.
    pub async fn release(&self) {
        if let Ok(Some(lease)) = self.api.get_opt(LEASE_NAME).await {
            let spec = lease.spec.clone().unwrap_or_default();
            if spec.holder_identity.as_deref() == Some(self.identity.as_str()) {
                let mut released = lease;
                if let Some(spec) = released.spec.as_mut() {
                    spec.holder_identity = None;
                }
                let _ = self.api.replace(LEASE_NAME, &PostParams::default(), &released).await;
            }
        }
    }
}

/// The replica that leads now, if any: a Lease with a holder renewed within three of its
/// durations on this clock (generous: the plugin only decides whether to hand a run to the
/// controller, and a missed hand-over says so).
pub async fn live_leader(cluster: &Cluster, namespace: &str) -> Result<Option<String>, K8sError> {
    let api: Api<Lease> = Api::namespaced(cluster.client.clone(), namespace);
    let Some(lease) = api.get_opt(LEASE_NAME).await.map_err(|e| cluster.err(e, format!("read Lease {namespace}/{LEASE_NAME}")))? else {
        return Ok(None);
    };
    let spec = lease.spec.unwrap_or_default();
    let (Some(holder), Some(renewed)) = (spec.holder_identity, spec.renew_time) else { return Ok(None) };
    let age = chrono::Utc::now().timestamp() - renewed.0.as_second();
    let duration = i64::from(spec.lease_duration_seconds.unwrap_or(15));
    Ok((age <= 3 * duration).then_some(holder))
}
