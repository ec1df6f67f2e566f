//! `profiles.config.kio.kasten.io/v1alpha1` `Profile`: an object-store location and its credentials.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A location profile (K10 field names). A profile is immutable when its object store carries a
/// `protectionPeriod`; every object written through it is then locked in COMPLIANCE mode.
#[derive(CustomResource, Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "config.kio.kasten.io",
    version = "v1alpha1",
    kind = "Profile",
    namespaced,
    status = "ProfileStatus",
    printcolumn = r#"{"name":"Bucket","type":"string","jsonPath":".spec.locationSpec.objectStore.name"}"#,
    printcolumn = r#"{"name":"Protection","type":"string","jsonPath":".spec.locationSpec.objectStore.protectionPeriod"}"#,
    printcolumn = r#"{"name":"Validation","type":"string","jsonPath":".status.validation"}"#
)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-preserve-unknown-fields" = true))]
pub struct ProfileSpec {
    /// Always `Location`.
    #[serde(rename = "type")]
    pub type_: String,
    pub location_spec: LocationSpec,
    /// Fields K10 documents that k10 does not implement: kept as written.
    #[serde(flatten, default, skip_serializing_if = "serde_json::Map::is_empty")]
    #[schemars(skip)]
    pub other: serde_json::Map<String, serde_json::Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-preserve-unknown-fields" = true))]
pub struct LocationSpec {
    /// Always `ObjectStore`.
    #[serde(rename = "type")]
    pub type_: String,
    pub object_store: ObjectStoreSpec,
    pub credential: CredentialSpec,
    /// Fields K10 documents that k10 does not implement: kept as written.
    #[serde(flatten, default, skip_serializing_if = "serde_json::Map::is_empty")]
    #[schemars(skip)]
    pub other: serde_json::Map<String, serde_json::Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-preserve-unknown-fields" = true))]
pub struct ObjectStoreSpec {
    /// Always `S3`.
    pub object_store_type: String,
    /// The bucket.
    pub name: String,
    pub region: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    #[serde(default, rename = "skipSSLVerify")]
    pub skip_ssl_verify: bool,
    /// The protection period as a Go-style duration of whole days ("720h"); set only on immutable profiles.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protection_period: Option<String>,
    /// Fields K10 documents that k10 does not implement: kept as written.
    #[serde(flatten, default, skip_serializing_if = "serde_json::Map::is_empty")]
    #[schemars(skip)]
    pub other: serde_json::Map<String, serde_json::Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-preserve-unknown-fields" = true))]
pub struct CredentialSpec {
    /// Always `AwsAccessKey`.
    pub secret_type: String,
    pub secret: ObjectReference,
    /// Fields K10 documents that k10 does not implement: kept as written.
    #[serde(flatten, default, skip_serializing_if = "serde_json::Map::is_empty")]
    #[schemars(skip)]
    pub other: serde_json::Map<String, serde_json::Value>,
}

/// A reference to the credentials Secret.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ObjectReference {
    pub api_version: String,
    pub kind: String,
    pub name: String,
    pub namespace: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProfileStatus {
    /// `Success` or `Failed`: the result of the last bucket validation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validation: Option<String>,
    /// When the last validation ran (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validated_at: Option<String>,
    /// The `metadata.generation` the last validation is of.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Each check of the last validation.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<ValidationCheck>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ValidationCheck {
    pub name: String,
    /// `Passed`, `Failed` or `Unchecked` (the store does not report what the check needs).
    pub result: String,
    pub message: String,
}

/// The Secret type K10 uses for S3 credentials, and its keys.
pub const AWS_SECRET_TYPE: &str = "secrets.kanister.io/aws";
pub const AWS_ACCESS_KEY_ID: &str = "aws_access_key_id";
pub const AWS_SECRET_ACCESS_KEY: &str = "aws_secret_access_key";

impl Profile {
    pub fn object_store(&self) -> &ObjectStoreSpec {
        &self.spec.location_spec.object_store
    }
}
