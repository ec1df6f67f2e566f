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
    /// What each volume's backup saw change, against the volume's own history (see
    /// `backup::signals`): the signs of an application's data being encrypted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub signals: Vec<VolumeSignals>,
    /// Why this restore point looks like it holds data an attacker encrypted (absent: it does not).
    /// The newest restore point before the first suspicious one is the last clean one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspicious: Option<String>,
}

/// What a volume's backup saw change since the volume's previous snapshot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VolumeSignals {
    pub pvc: String,
    /// Files in the volume.
    pub files: u64,
    /// The share of the files that are new or changed (by size and mtime) since the previous
    /// snapshot; after a backup that read every file, the share of the bytes that are new data.
    pub changed_share: f64,
    /// Bytes stored ÷ bytes of new file data: 1.0 when none of the new data compressed (absent
    /// when under 64 KiB of new data).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incompressible_share: Option<f64>,
    /// The same ratio over the volume's earlier snapshots: how its new data used to compress.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub history_incompressible_share: Option<f64>,
    /// The extension that the most changed files carry and the previous snapshot had none of.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_extension: Option<String>,
    /// The share of the changed files that carry it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_extension_share: Option<f64>,
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
