//! `restorepoints.apps.kio.kasten.io/v1alpha1` `RestorePoint` (in the application's namespace) and
//! the cluster-scoped `RestorePointContent` it is bound to, which holds the details and outlives
//! the namespace.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::policy::NamespacedName;

/// Labels K10 puts on restore points.
pub const POLICY_LABEL: &str = "k10.kasten.io/policyName";
pub const APP_LABEL: &str = "k10.kasten.io/appName";

#[derive(CustomResource, Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "apps.kio.kasten.io",
    version = "v1alpha1",
    kind = "RestorePoint",
    namespaced,
    printcolumn = r#"{"name":"Content","type":"string","jsonPath":".spec.restorePointContentRef.name"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct RestorePointSpec {
    pub restore_point_content_ref: ContentRef,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ContentRef {
    pub name: String,
}

#[derive(CustomResource, Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "apps.kio.kasten.io",
    version = "v1alpha1",
    kind = "RestorePointContent",
    printcolumn = r#"{"name":"Namespace","type":"string","jsonPath":".spec.sourceNamespace"}"#,
    printcolumn = r#"{"name":"Policy","type":"string","jsonPath":".spec.policy.name"}"#,
    printcolumn = r#"{"name":"End","type":"string","jsonPath":".spec.endTime"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct RestorePointContentSpec {
    /// The RestorePoint bound to this content (its namespace is the application's).
    pub restore_point_ref: NamespacedName,
    pub policy: NamespacedName,
    pub profile: NamespacedName,
    /// The repository prefix in the profile's bucket (`k10/<clusterID>/repos/<namespaceUID>/`).
    pub repository: String,
    /// The Secret (in kasten-io) holding the repository's password, key `password`.
    pub password_secret: String,
    /// The repository snapshots of this restore point: manifests, and one per volume.
    pub snapshots: Vec<SnapshotRef>,
    pub source_namespace: String,
    pub source_namespace_uid: String,
    /// When the run started (cluster clock) and when its last snapshot reached the store (the
    /// store's clock: the time to open the repository as of).
    pub start_time: String,
    pub end_time: String,
    /// Bytes captured, and bytes newly uploaded by this run.
    pub logical_bytes: u64,
    pub uploaded_bytes: u64,
    pub files: u64,
    pub immutable: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protection_period_days: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SnapshotRef {
    pub id: String,
    /// `manifests` or `volume`.
    pub kind: String,
    /// The PersistentVolumeClaim, for volume snapshots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pvc: Option<String>,
}
