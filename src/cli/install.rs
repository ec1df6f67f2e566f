//! `kubectl k10 install`: applies the catalog's CRDs, the `kasten-io` namespace, the `k10`
//! ServiceAccount and its RBAC, and the controller's Deployment, which also runs retention
//! maintenance (idempotent: server-side apply).

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ObjectMeta, Patch, PatchParams};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::output::{self, Format};
use super::GlobalArgs;
use crate::api::{self, K10_NAMESPACE};
use crate::k8s::{rbac, Cluster};

/// The name of the ServiceAccount, ClusterRole and ClusterRoleBinding.
pub use crate::k8s::jobs::SERVICE_ACCOUNT;

#[derive(Debug, clap::Args)]
pub struct InstallArgs {
    /// Print what would be applied instead of applying it.
    #[arg(long)]
    pub dry_run: bool,
    /// Output format of --dry-run.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = Format::Yaml)]
    pub format: Format,
}

/// The Pod Security level `kasten-io` enforces: its control pods meet `restricted`, but data
/// movers that read CSI snapshot clones there run as root with `DAC_OVERRIDE` (`baseline`).
pub const KASTEN_IO_POD_SECURITY: (&str, &str) = ("pod-security.kubernetes.io/enforce", "baseline");

/// Everything `install` applies, in order, as JSON documents.
pub fn objects() -> Vec<serde_json::Value> {
    let mut all = vec![serde_json::to_value(Namespace {
        metadata: ObjectMeta {
            name: Some(K10_NAMESPACE.into()),
            labels: Some([(KASTEN_IO_POD_SECURITY.0.to_string(), KASTEN_IO_POD_SECURITY.1.to_string())].into()),
            ..Default::default()
        },
        ..Default::default()
    })];
    all.extend(api::crds().into_iter().map(serde_json::to_value));
    all.push(serde_json::to_value(ServiceAccount {
        metadata: ObjectMeta {
            name: Some(SERVICE_ACCOUNT.into()),
            namespace: Some(K10_NAMESPACE.into()),
            ..Default::default()
        },
        ..Default::default()
    }));
    all.push(serde_json::to_value(crate::controller::deployment::deployment()));
    let mut all: Vec<serde_json::Value> = all.into_iter().map(|v| v.expect("objects serialize")).collect();
    all.extend(rbac::objects());
    all
}

pub async fn run(global: &GlobalArgs, args: InstallArgs) -> anyhow::Result<()> {
    let all = objects();
    if args.dry_run {
        match args.format {
            Format::Yaml => {
                for obj in &all {
                    print!("---\n{}", serde_yaml::to_string(obj)?);
                }
            }
            Format::Json => {
                output::print_structured(args.format, &output::list_of(&all))?;
            }
            Format::Table => {
                for obj in &all {
                    println!("{}/{} (dry run)", obj["kind"].as_str().unwrap_or(""), obj["metadata"]["name"].as_str().unwrap_or(""));
                }
            }
        }
        return Ok(());
    }
    let cluster = global.cluster().connect().await?;
    for obj in all {
        match obj["kind"].as_str().unwrap_or_default() {
            "Namespace" => apply::<Namespace>(&cluster, Api::all(cluster.client.clone()), obj).await?,
            "CustomResourceDefinition" => {
                apply::<CustomResourceDefinition>(&cluster, Api::all(cluster.client.clone()), obj).await?
            }
            "ServiceAccount" => {
                apply::<ServiceAccount>(&cluster, Api::namespaced(cluster.client.clone(), K10_NAMESPACE), obj).await?
            }
            "ClusterRole" => apply::<ClusterRole>(&cluster, Api::all(cluster.client.clone()), obj).await?,
            "ClusterRoleBinding" => apply::<ClusterRoleBinding>(&cluster, Api::all(cluster.client.clone()), obj).await?,
            "Role" => apply::<Role>(&cluster, Api::namespaced(cluster.client.clone(), K10_NAMESPACE), obj).await?,
            "RoleBinding" => apply::<RoleBinding>(&cluster, Api::namespaced(cluster.client.clone(), K10_NAMESPACE), obj).await?,
            "Deployment" => apply::<Deployment>(&cluster, Api::namespaced(cluster.client.clone(), K10_NAMESPACE), obj).await?,
            other => unreachable!("install has no {other}"),
        }
    }
    Ok(())
}

async fn apply<K>(cluster: &Cluster, api: Api<K>, obj: serde_json::Value) -> anyhow::Result<()>
where
    K: kube::Resource + Clone + DeserializeOwned + Serialize + std::fmt::Debug,
{
    let kind = obj["kind"].as_str().unwrap_or_default().to_lowercase();
    let name = obj["metadata"]["name"].as_str().unwrap_or_default().to_string();
    api.patch(&name, &PatchParams::apply("k10").force(), &Patch::Apply(&obj))
        .await
        .map_err(|e| cluster.err(e, format!("apply {kind} {name}")))?;
    println!("{kind}/{name} applied");
    Ok(())
}
