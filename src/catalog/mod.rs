//! The catalog as stored in Kubernetes: the cluster's identity, profiles and their credentials,
//! and the storage a profile opens. Everything the commands share about these lives here.

pub mod policies;
pub mod validation;

use std::sync::Arc;

use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::Api;

use crate::api::{Profile, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY};
use crate::k8s::{Cluster, K8sError};
use crate::objectstore::lock::{PeriodError, ProtectionPeriod};
use crate::objectstore::s3::S3Storage;
use crate::objectstore::{Credentials, Location, ObjectStore, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("profile {name:?} not found in namespace {namespace}; list profiles with `kubectl k10 profile list`")]
    ProfileNotFound { name: String, namespace: String },
    #[error("the {kind} resource is not installed in this cluster; run `kubectl k10 install` first")]
    NotInstalled { kind: &'static str },
    #[error("credentials Secret {namespace}/{name} not found; create it with keys {AWS_ACCESS_KEY_ID} and {AWS_SECRET_ACCESS_KEY}")]
    SecretNotFound { namespace: String, name: String },
    #[error("credentials Secret {namespace}/{name} has no key {key:?}")]
    SecretKeyMissing {
        namespace: String,
        name: String,
        key: &'static str,
    },
    #[error("profile {name:?} has an invalid protectionPeriod: {source}")]
    InvalidPeriod {
        name: String,
        #[source]
        source: PeriodError,
    },
    #[error("profile {0:?} is not immutable (no Object Lock protection period); choose an immutable profile or drop --require-immutable")]
    NotImmutable(String),
    #[error("policy {name:?} already exists in namespace {namespace}; delete it first or choose another name")]
    PolicyExists { name: String, namespace: String },
    #[error("namespace {0:?} not found; create it first or fix --namespaces")]
    NamespaceNotFound(String),
    #[error(transparent)]
    Schedule(#[from] crate::schedule::ScheduleError),
    #[error("the cluster has no `default` namespace, whose UID is the cluster ID")]
    NoClusterId,
    #[error(transparent)]
    K8s(#[from] K8sError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub type Result<T, E = CatalogError> = std::result::Result<T, E>;

/// The cluster ID: the UID of the `default` namespace. Keep it: recovery needs it.
pub async fn cluster_id(cluster: &Cluster) -> Result<String> {
    let namespaces: Api<Namespace> = Api::all(cluster.client.clone());
    let ns = namespaces
        .get_opt("default")
        .await
        .map_err(|e| cluster.err(e, "read namespace default"))?
        .ok_or(CatalogError::NoClusterId)?;
    ns.metadata.uid.ok_or(CatalogError::NoClusterId)
}

pub fn profiles(cluster: &Cluster) -> Api<Profile> {
    Api::namespaced(cluster.client.clone(), &cluster.namespace)
}

/// A 404 on a whole resource means its CRD is missing.
pub fn not_installed(err: K8sError, kind: &'static str) -> CatalogError {
    if err.is_not_found() {
        CatalogError::NotInstalled { kind }
    } else {
        err.into()
    }
}

pub async fn get_profile(cluster: &Cluster, name: &str) -> Result<Profile> {
    profiles(cluster)
        .get_opt(name)
        .await
        .map_err(|e| not_installed(cluster.err(e, format!("read profile {name:?}")), "Profile"))?
        .ok_or_else(|| CatalogError::ProfileNotFound {
            name: name.to_string(),
            namespace: cluster.namespace.clone(),
        })
}

pub fn location_of(profile: &Profile) -> Location {
    let os = profile.object_store();
    Location {
        endpoint: os.endpoint.clone(),
        region: os.region.clone(),
        bucket: os.name.clone(),
        skip_ssl_verify: os.skip_ssl_verify,
    }
}

/// The protection period of an immutable profile, `None` for a plain one.
pub fn period_of(profile: &Profile) -> Result<Option<ProtectionPeriod>> {
    profile
        .object_store()
        .protection_period
        .as_deref()
        .map(ProtectionPeriod::parse)
        .transpose()
        .map_err(|source| CatalogError::InvalidPeriod {
            name: profile.metadata.name.clone().unwrap_or_default(),
            source,
        })
}

/// Reads an access key pair from a Secret with K10's keys.
pub async fn read_credentials(cluster: &Cluster, namespace: &str, name: &str) -> Result<Credentials> {
    let api: Api<Secret> = Api::namespaced(cluster.client.clone(), namespace);
    let secret = api
        .get_opt(name)
        .await
        .map_err(|e| cluster.err(e, format!("read Secret {namespace}/{name}")))?
        .ok_or_else(|| CatalogError::SecretNotFound {
            namespace: namespace.to_string(),
            name: name.to_string(),
        })?;
    let value = |key: &'static str| -> Result<String> {
        let from_data = secret
            .data
            .as_ref()
            .and_then(|d| d.get(key))
            .map(|b| String::from_utf8_lossy(&b.0).into_owned());
        let from_string = secret.string_data.as_ref().and_then(|d| d.get(key)).cloned();
        match from_data.or(from_string) {
            Some(v) if !v.is_empty() => Ok(v),
            _ => Err(CatalogError::SecretKeyMissing {
                namespace: namespace.to_string(),
                name: name.to_string(),
                key,
            }),
        }
    };
    Ok(Credentials {
        access_key_id: value(AWS_ACCESS_KEY_ID)?,
        secret_access_key: value(AWS_SECRET_ACCESS_KEY)?,
    })
}

/// The credentials a saved profile references.
pub async fn profile_credentials(cluster: &Cluster, profile: &Profile) -> Result<Credentials> {
    let secret = &profile.spec.location_spec.credential.secret;
    read_credentials(cluster, &secret.namespace, &secret.name).await
}

/// The storage a profile opens: its bucket, writes locked for P + 20 days when immutable.
pub async fn profile_storage(cluster: &Cluster, profile: &Profile) -> Result<Arc<S3Storage>> {
    let credentials = profile_credentials(cluster, profile).await?;
    let store = ObjectStore::connect(&location_of(profile), &credentials)?;
    Ok(Arc::new(S3Storage::new(store, period_of(profile)?)))
}
