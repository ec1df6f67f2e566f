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
#[schemars(extend("x-kubernetes-preserve-unknown-fields" = true))]
pub struct PolicySpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// `@hourly`, `@daily`, `@weekly`, `@monthly`, `@yearly`, a cron expression, or `@onDemand`.
    pub frequency: String,
    /// When in each period the policy runs (K10's `subFrequency`; see src/schedule.rs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub_frequency: Option<SubFrequency>,
    /// A paused policy is not run on its schedule (a RunAction still runs it).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub paused: bool,
    #[serde(default)]
    pub retention: Retention,
    pub selector: LabelSelector,
    pub actions: Vec<PolicyAction>,
    /// Fields K10 documents that k10 does not implement (`presetRef`, …): kept as written, and
    /// named in the status as ignored.
    #[serde(flatten, default, skip_serializing_if = "serde_json::Map::is_empty")]
    #[schemars(skip)]
    pub other: serde_json::Map<String, serde_json::Value>,
}

/// K10's `subFrequency`: the minutes, hours, weekdays (0 = Sunday), days and months a policy
/// runs at within its period.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SubFrequency {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub minutes: Vec<u32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hours: Vec<u32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub weekdays: Vec<u32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub days: Vec<u32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub months: Vec<u32>,
}

impl SubFrequency {
    pub fn is_empty(&self) -> bool {
        self == &SubFrequency::default()
    }
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
#[schemars(extend("x-kubernetes-preserve-unknown-fields" = true))]
pub struct PolicyAction {
    pub action: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub export_parameters: Option<ExportParameters>,
    /// Kept, not implemented (`backupParameters`, an export's own `retention`, …).
    #[serde(flatten, default, skip_serializing_if = "serde_json::Map::is_empty")]
    #[schemars(skip)]
    pub other: serde_json::Map<String, serde_json::Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-preserve-unknown-fields" = true))]
pub struct ExportParameters {
    pub frequency: String,
    pub profile: NamespacedName,
    #[serde(default)]
    pub export_data: ExportData,
    /// Kept, not implemented (`receiveString`, `migrationToken`, …).
    #[serde(flatten, default, skip_serializing_if = "serde_json::Map::is_empty")]
    #[schemars(skip)]
    pub other: serde_json::Map<String, serde_json::Value>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[schemars(extend("x-kubernetes-preserve-unknown-fields" = true))]
pub struct ExportData {
    pub enabled: bool,
    /// Kept, not implemented (`overrides`, `exporterStorageClassName`, …).
    #[serde(flatten, default, skip_serializing_if = "serde_json::Map::is_empty")]
    #[schemars(skip)]
    pub other: serde_json::Map<String, serde_json::Value>,
}

impl Default for ExportData {
    fn default() -> Self {
        ExportData {
            enabled: true,
            other: Default::default(),
        }
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
    /// `Success` or `Failed` (the controller's validation of the spec).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validation: Option<String>,
    /// Why validation failed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
    /// Fields of the spec that are kept but not implemented: they change nothing.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ignored: Vec<String>,
    /// The `metadata.generation` the validation is of.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The next time the controller runs it (RFC 3339); none for on-demand or paused policies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_run_time: Option<String>,
    /// The due time the controller last started a run for (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_scheduled_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_run_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_run_result: Option<String>,
    /// Seconds the last run took.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_run_duration_seconds: Option<f64>,
    /// Bytes the last run uploaded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_run_bytes: Option<u64>,
    /// The restore points the last run made.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub last_restore_points: Vec<String>,
}

impl Policy {
    /// Paths of the spec's fields that are kept but not implemented.
    pub fn ignored_fields(&self) -> Vec<String> {
        let mut paths: Vec<String> = self.spec.other.keys().map(|k| format!("spec.{k}")).collect();
        for (i, a) in self.spec.actions.iter().enumerate() {
            paths.extend(a.other.keys().map(|k| format!("spec.actions[{i}].{k}")));
            if let Some(p) = &a.export_parameters {
                paths.extend(p.other.keys().map(|k| format!("spec.actions[{i}].exportParameters.{k}")));
                paths.extend(p.export_data.other.keys().map(|k| format!("spec.actions[{i}].exportParameters.exportData.{k}")));
            }
        }
        paths
    }

    /// The profile the policy exports to.
    pub fn export_profile(&self) -> Option<&NamespacedName> {
        self.spec
            .actions
            .iter()
            .find_map(|a| a.export_parameters.as_ref().map(|p| &p.profile))
    }
}
