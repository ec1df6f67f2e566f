//! `policies.config.kio.kasten.io/v1alpha1` `Policy`: what to back up, how often, where to, and
//! how many restore points to keep.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The label K10 policies select application namespaces by (`In` a list of names).
pub const APP_NAMESPACE_KEY: &str = "k10.kasten.io/appNamespace";

#[derive(CustomResource, Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "config.kio.kasten.io",
    version = "v1alpha1",
    kind = "Policy",
    namespaced,
    status = "PolicyStatus",
    printcolumn = r#"{"name":"Frequency","type":"string","jsonPath":".spec.frequency"}"#,
    printcolumn = r#"{"name":"Last Run","type":"string","jsonPath":".status.lastRunTime"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct PolicySpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// `@hourly`, `@daily`, `@weekly`, `@monthly`, `@yearly`, a cron expression, or `@onDemand`.
    pub frequency: String,
    #[serde(default)]
    pub retention: Retention,
    pub selector: LabelSelector,
    pub actions: Vec<PolicyAction>,
}

/// How many restore points each period keeps (grandfather-father-son).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Retention {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hourly: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub daily: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weekly: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monthly: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub yearly: Option<u32>,
}

/// A Kubernetes label selector over namespaces.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LabelSelector {
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub match_labels: std::collections::BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub match_expressions: Vec<LabelSelectorRequirement>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LabelSelectorRequirement {
    pub key: String,
    /// `In`, `NotIn`, `Exists` or `DoesNotExist`.
    pub operator: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
}

/// `backup` (capture the application) and `export` (to a location profile).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PolicyAction {
    pub action: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub export_parameters: Option<ExportParameters>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExportParameters {
    pub frequency: String,
    pub profile: NamespacedName,
    #[serde(default)]
    pub export_data: ExportData,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ExportData {
    pub enabled: bool,
}

impl Default for ExportData {
    fn default() -> Self {
        ExportData { enabled: true }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct NamespacedName {
    pub name: String,
    pub namespace: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PolicyStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validation: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_run_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_run_result: Option<String>,
}

impl Policy {
    /// The profile the policy exports to.
    pub fn export_profile(&self) -> Option<&NamespacedName> {
        self.spec
            .actions
            .iter()
            .find_map(|a| a.export_parameters.as_ref().map(|p| &p.profile))
    }
}
