//! The catalog's custom resources, compatible with K10's public API so existing manifests and
//! admission policies keep working. The CRD YAML is generated from these types
//! (`kubectl k10 install --dry-run -o yaml`).

mod policy;
mod profile;
mod restorepoint;
mod runaction;

pub use policy::*;
pub use profile::*;
pub use restorepoint::*;
pub use runaction::*;

/// The namespace holding the product's own objects (profiles, policies, secrets).
pub const K10_NAMESPACE: &str = "kasten-io";

/// The CustomResourceDefinitions of the catalog.
pub fn crds() -> Vec<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition> {
    use kube::CustomResourceExt;
    vec![Profile::crd(), Policy::crd(), RestorePoint::crd(), RestorePointContent::crd(), RunAction::crd()]
}
