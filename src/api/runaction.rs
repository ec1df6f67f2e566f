//! `runactions.actions.kio.kasten.io/v1alpha1` `RunAction`: run a policy now (K10's on-demand
//! API). Cluster-scoped, as K10's: the subject names the policy and its namespace. The controller
//! runs it as a Job and reports the outcome in the status.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(CustomResource, Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "actions.kio.kasten.io",
    version = "v1alpha1",
    kind = "RunAction",
    status = "RunActionStatus",
    printcolumn = r#"{"name":"Policy","type":"string","jsonPath":".spec.subject.name"}"#,
    printcolumn = r#"{"name":"State","type":"string","jsonPath":".status.state"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct RunActionSpec {
    pub subject: Subject,
}

/// What to run: a Policy (`kind: Policy`, its name and namespace).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Subject {
    pub kind: String,
    pub name: String,
    pub namespace: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RunActionStatus {
    /// `Pending`, `Running`, `Complete` or `Failed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ActionError>,
    /// The Job in kasten-io that runs it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_time: Option<String>,
    /// The restore points the run made.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub restore_points: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ActionError {
    pub message: String,
}

/// The states of a RunAction.
pub const STATE_PENDING: &str = "Pending";
pub const STATE_RUNNING: &str = "Running";
pub const STATE_COMPLETE: &str = "Complete";
pub const STATE_FAILED: &str = "Failed";
