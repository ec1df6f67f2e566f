//! Creating policies: what `kubectl k10 policy create` asks for, as a K10 Policy object (a
//! `backup` action and an `export` to the profile), checked before anything is written.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, PostParams};

use super::validation::REQUIRE_IMMUTABLE_ANNOTATION;
use super::{get_profile, not_installed, period_of, CatalogError, Result};
use crate::api::{
    ExportData, ExportParameters, LabelSelector, LabelSelectorRequirement, NamespacedName, Policy, PolicyAction, PolicySpec, Retention,
    APP_NAMESPACE_KEY,
};
use crate::k8s::Cluster;
use crate::schedule::Frequency;

/// A policy to create, in the cluster's namespace (kasten-io).
#[derive(Debug, Clone, Default)]
pub struct NewPolicy {
    pub name: String,
    /// Namespaces named one by one.
    pub namespaces: Vec<String>,
    /// Or every namespace with these labels.
    pub labels: BTreeMap<String, String>,
    pub profile: String,
    pub frequency: String,
    pub retention: Retention,
    /// Refuse a profile without immutability, now and at every run.
    pub require_immutable: bool,
}

/// Creates the policy after checking its frequency, that the name is free, that the profile
/// exists (and is immutable when required) and that each named namespace exists. Returns the
/// policy and its parsed schedule.
pub async fn create_policy(cluster: &Cluster, new: NewPolicy) -> Result<(Policy, Frequency)> {
    let schedule = Frequency::parse(&new.frequency, None).map_err(CatalogError::Schedule)?;
    let api: Api<Policy> = Api::namespaced(cluster.client.clone(), &cluster.namespace);
    let exists = api.get_opt(&new.name).await.map_err(|e| not_installed(cluster.err(e, "read policies"), "Policy"))?;
    if exists.is_some() {
        return Err(CatalogError::PolicyExists { name: new.name, namespace: cluster.namespace.clone() });
    }
    let profile = get_profile(cluster, &new.profile).await?;
    if new.require_immutable && period_of(&profile)?.is_none() {
        return Err(CatalogError::NotImmutable(new.profile));
    }
    let all: Api<Namespace> = Api::all(cluster.client.clone());
    for ns in &new.namespaces {
        if all.get_opt(ns).await.map_err(|e| cluster.err(e, format!("read namespace {ns}")))?.is_none() {
            return Err(CatalogError::NamespaceNotFound(ns.clone()));
        }
    }
    let mut selector = LabelSelector {
        match_labels: new.labels,
        ..Default::default()
    };
    if !new.namespaces.is_empty() {
        selector.match_expressions.push(LabelSelectorRequirement {
            key: APP_NAMESPACE_KEY.into(),
            operator: "In".into(),
            values: new.namespaces,
        });
    }
    let export = ExportParameters {
        frequency: new.frequency.clone(),
        profile: NamespacedName {
            name: new.profile,
            namespace: cluster.namespace.clone(),
        },
        export_data: ExportData::default(),
        other: Default::default(),
    };
    let mut policy = Policy::new(
        &new.name,
        PolicySpec {
            comment: None,
            frequency: new.frequency,
            sub_frequency: None,
            paused: false,
            retention: new.retention,
            selector,
            actions: vec![action("backup", None), action("export", Some(export))],
            other: Default::default(),
        },
    );
    if new.require_immutable {
        policy.metadata.annotations = Some(BTreeMap::from([(REQUIRE_IMMUTABLE_ANNOTATION.to_string(), "true".to_string())]));
    }
    let made = api
        .create(&PostParams::default(), &policy)
        .await
        .map_err(|e| cluster.err(e, format!("create policy {:?}", new.name)))?;
    Ok((made, schedule))
}

pub fn action(name: &str, export_parameters: Option<ExportParameters>) -> PolicyAction {
    PolicyAction {
        action: name.into(),
        export_parameters,
        other: Default::default(),
    }
}
