//! Kubernetes access: builds a client from kubectl's settings (`--kubeconfig`, `KUBECONFIG`,
//! `--context`, `-n`) and turns client failures into errors that say what to do.

pub mod claim;
pub mod events;
pub mod jobs;
pub mod rbac;
pub mod retry;

use std::path::PathBuf;

use kube::config::{KubeConfigOptions, Kubeconfig, KubeconfigError};
use kube::{Client, Config};

/// Where the cluster is and which namespace a command works in, as kubectl reads them.
#[derive(Debug, Clone, Default)]
pub struct ClusterOptions {
    /// An explicit kubeconfig file (`--kubeconfig`); otherwise `KUBECONFIG`, then `~/.kube/config`,
    /// then the in-cluster service account.
    pub kubeconfig: Option<PathBuf>,
    /// A context of the kubeconfig other than its current one.
    pub context: Option<String>,
    /// The namespace given with `-n`; otherwise the context's, otherwise `default`.
    pub namespace: Option<String>,
}

/// The label every object k10 makes carries: `app.kubernetes.io/managed-by: k10`.
pub const MANAGED_BY_KEY: &str = "app.kubernetes.io/managed-by";
pub const MANAGED_BY_VALUE: &str = "k10";

/// [`MANAGED_BY_KEY`]: [`MANAGED_BY_VALUE`], as labels to start from.
pub fn managed_by() -> std::collections::BTreeMap<String, String> {
    std::collections::BTreeMap::from([(MANAGED_BY_KEY.to_string(), MANAGED_BY_VALUE.to_string())])
}

/// A connected client and the namespace the command works in.
#[derive(Clone)]
pub struct Cluster {
    pub client: Client,
    /// The context's namespace (or `-n`), for commands that act in the user's namespace.
    pub namespace: String,
    /// Whether `-n` was given explicitly.
    pub namespace_given: bool,
    /// The API server's address, for messages.
    pub server: String,
}

/// Why the cluster could not be reached or used.
#[derive(Debug, thiserror::Error)]
pub enum K8sError {
    #[error("cannot read kubeconfig {path}: {reason}; pass an existing file with --kubeconfig or set KUBECONFIG")]
    KubeconfigUnreadable { path: String, reason: String },
    #[error("no usable kubeconfig: {0}; pass one with --kubeconfig or set KUBECONFIG")]
    NoConfig(String),
    #[error("kubeconfig has no context named {0:?}; list them with `kubectl config get-contexts`")]
    UnknownContext(String),
    #[error("invalid kubeconfig: {0}")]
    InvalidConfig(String),
    #[error("cannot reach the Kubernetes API at {server}: {reason}; check the cluster is running and the kubeconfig's server address")]
    Unreachable { server: String, reason: String },
    #[error("the Kubernetes API refused the request ({what}): {message}")]
    Refused { what: String, code: u16, message: String },
    #[error("{what} not found")]
    NotFound { what: String },
    #[error("{what}: {source}")]
    Other {
        what: String,
        #[source]
        source: kube::Error,
    },
}

impl K8sError {
    /// Classifies a client error for the request described by `what` (e.g. "list profiles in kasten-io").
    pub fn from_kube(err: kube::Error, what: impl Into<String>, server: &str) -> K8sError {
        let what = what.into();
        match err {
            kube::Error::Api(status) if status.code == 404 => K8sError::NotFound { what },
            kube::Error::Api(status) => K8sError::Refused {
                what,
                code: status.code,
                message: status.message,
            },
            kube::Error::HyperError(e) => K8sError::Unreachable {
                server: server.to_string(),
                reason: root_cause(&e),
            },
            kube::Error::Service(e) => K8sError::Unreachable {
                server: server.to_string(),
                reason: root_cause(e.as_ref()),
            },
            source => K8sError::Other { what, source },
        }
    }

    pub fn is_not_found(&self) -> bool {
        matches!(self, K8sError::NotFound { .. })
    }

    /// A 409: the object exists already, or changed since it was read.
    pub fn is_conflict(&self) -> bool {
        matches!(self, K8sError::Refused { code: 409, .. })
    }
}

/// The innermost message of an error chain ("Connection refused (os error 111)"), first line only:
/// errors are printed as one line.
fn root_cause(err: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = err;
    while let Some(next) = cur.source() {
        cur = next;
    }
    let text = cur.to_string();
    text.lines().next().unwrap_or_default().trim().to_string()
}

impl ClusterOptions {
    /// Loads the configuration and builds a client. Nothing is sent to the cluster yet.
    pub async fn connect(&self) -> Result<Cluster, K8sError> {
        let options = KubeConfigOptions {
            context: self.context.clone(),
            ..Default::default()
        };
        let config = match &self.kubeconfig {
            Some(path) => {
                let kubeconfig = Kubeconfig::read_from(path).map_err(|e| K8sError::KubeconfigUnreadable {
                    path: path.display().to_string(),
                    reason: root_cause(&e),
                })?;
                Config::from_custom_kubeconfig(kubeconfig, &options)
                    .await
                    .map_err(|e| self.config_error(e))?
            }
            None => match Kubeconfig::read() {
                Ok(kubeconfig) => Config::from_custom_kubeconfig(kubeconfig, &options)
                    .await
                    .map_err(|e| self.config_error(e))?,
                Err(read_err) => match Config::incluster() {
                    Ok(config) => config,
                    Err(_) => {
                        let source = std::env::var("KUBECONFIG").unwrap_or_else(|_| "~/.kube/config".into());
                        return Err(K8sError::KubeconfigUnreadable {
                            path: source,
                            reason: root_cause(&read_err),
                        });
                    }
                },
            },
        };
        let server = config.cluster_url.to_string();
        let namespace_given = self.namespace.is_some();
        let namespace = self.namespace.clone().unwrap_or_else(|| config.default_namespace.clone());
        // Requests ride out an API server that restarts or fails for a while (see [`retry`]).
        let client = kube::client::ClientBuilder::try_from(config)
            .map_err(|e| K8sError::InvalidConfig(root_cause(&e)))?
            .with_layer(&retry::RetryLayer::default())
            .build();
        Ok(Cluster {
            client,
            namespace,
            namespace_given,
            server,
        })
    }

    fn config_error(&self, err: KubeconfigError) -> K8sError {
        match (&err, &self.context) {
            (KubeconfigError::LoadContext(_), Some(ctx)) => K8sError::UnknownContext(ctx.clone()),
            (KubeconfigError::CurrentContextNotSet, _) => {
                K8sError::NoConfig("the kubeconfig sets no current context; pass --context".into())
            }
            _ => K8sError::InvalidConfig(root_cause(&err)),
        }
    }
}

impl Cluster {
    /// Maps a client error of a request on this cluster.
    pub fn err(&self, err: kube::Error, what: impl Into<String>) -> K8sError {
        K8sError::from_kube(err, what, &self.server)
    }
}
