//! Claims through the API server: of any number of runs racing to do a one-time job (creating a
//! repository, whose `config` can never be replaced under the locks), exactly one wins.
//!
//! A claim is a ConfigMap in kasten-io. Creating a named object is atomic (the loser gets 409),
//! and so is replacing one with the resourceVersion it was read at: a claim whose holder died
//! (older than `stale_after`) is taken over by exactly one of the runs that find it so.

use std::collections::BTreeMap;

use chrono::Utc;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DeleteParams, ObjectMeta, PostParams, Preconditions};

use super::{Cluster, K8sError};
use crate::api::K10_NAMESPACE;

/// Who holds a claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// This run holds it (at this resourceVersion): do the job, then [`release`].
    Won(String),
    /// Another run holds it, since this time (as that run wrote it).
    Held { holder: String, since: String },
}

fn config_map(name: &str, holder: &str, resource_version: Option<String>) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            namespace: Some(K10_NAMESPACE.into()),
            labels: Some(crate::k8s::managed_by()),
            resource_version,
            ..Default::default()
        },
        data: Some(BTreeMap::from([
            ("holder".into(), holder.to_string()),
            ("since".into(), Utc::now().to_rfc3339()),
        ])),
        ..Default::default()
    }
}

/// Tries to claim `name` for `holder`. A claim older than `stale_after` is taken over.
pub async fn claim(cluster: &Cluster, name: &str, holder: &str, stale_after: chrono::Duration) -> Result<Claim, K8sError> {
    let api: Api<ConfigMap> = Api::namespaced(cluster.client.clone(), K10_NAMESPACE);
    match api.create(&PostParams::default(), &config_map(name, holder, None)).await {
        Ok(made) => return Ok(Claim::Won(made.metadata.resource_version.unwrap_or_default())),
        Err(kube::Error::Api(s)) if s.code == 409 => {}
        Err(e) => return Err(cluster.err(e, format!("create ConfigMap {K10_NAMESPACE}/{name}"))),
    }
    let Some(current) = api.get_opt(name).await.map_err(|e| cluster.err(e, format!("read ConfigMap {K10_NAMESPACE}/{name}")))? else {
        // Released meanwhile: the job is done, or about to be tried again.
        return Ok(Claim::Held { holder: "a run that just finished".into(), since: Utc::now().to_rfc3339() });
    };
    let data = current.data.clone().unwrap_or_default();
    let holder_now = data.get("holder").cloned().unwrap_or_default();
    let since = data.get("since").cloned().unwrap_or_default();
    // The server's time of the claim decides staleness (or that of its last takeover, as the
    // run that took it over wrote it), not what the holder wrote.
    let created = current
        .metadata
        .creation_timestamp
        .as_ref()
        .and_then(|t| chrono::DateTime::from_timestamp(t.0.as_second(), 0));
    let taken = current.metadata.annotations.as_ref().and_then(|a| a.get(TAKEN_OVER)).and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok()).map(|t| t.to_utc());
    let last = taken.or(created);
    if last.is_some_and(|t| Utc::now() - t < stale_after) {
        return Ok(Claim::Held { holder: holder_now, since });
    }
    // Stale: take it over, conditional on nobody else having done so since we read it.
    let mut takeover = config_map(name, holder, current.metadata.resource_version.clone());
    takeover.metadata.annotations = Some(BTreeMap::from([(TAKEN_OVER.into(), Utc::now().to_rfc3339())]));
    match api.replace(name, &PostParams::default(), &takeover).await {
        Ok(made) => Ok(Claim::Won(made.metadata.resource_version.unwrap_or_default())),
        Err(kube::Error::Api(s)) if s.code == 409 || s.code == 404 => Ok(Claim::Held { holder: "another run that took it over".into(), since: Utc::now().to_rfc3339() }),
        Err(e) => Err(cluster.err(e, format!("take over ConfigMap {K10_NAMESPACE}/{name}"))),
    }
}

/// When a stale claim was taken over (an annotation: `creationTimestamp` stays the first one's).
const TAKEN_OVER: &str = "k10.kasten.io/taken-over-at";

/// Gives a won claim back once its job is done, unless another run has taken it over since
/// (best effort: a leftover claim only makes a later run find the job done).
pub async fn release(cluster: &Cluster, name: &str, resource_version: &str) {
    let api: Api<ConfigMap> = Api::namespaced(cluster.client.clone(), K10_NAMESPACE);
    let params = DeleteParams {
        preconditions: Some(Preconditions {
            resource_version: Some(resource_version.to_string()),
            uid: None,
        }),
        ..Default::default()
    };
    if let Err(e) = api.delete(name, &params).await {
        tracing::warn!("could not release claim {K10_NAMESPACE}/{name}: {e}");
    }
}
