//! `kubectl k10 install`: applies the catalog's CRDs and the `kasten-io` namespace (idempotent).

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ObjectMeta, Patch, PatchParams};

use super::output::{self, Format};
use super::GlobalArgs;
use crate::api::{self, K10_NAMESPACE};

#[derive(Debug, clap::Args)]
pub struct InstallArgs {
    /// Print what would be applied instead of applying it.
    #[arg(long)]
    pub dry_run: bool,
    /// Output format of --dry-run.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = Format::Yaml)]
    pub format: Format,
}

/// The objects `install` applies, in order.
pub fn objects() -> (Namespace, Vec<CustomResourceDefinition>) {
    let namespace = Namespace {
        metadata: ObjectMeta {
            name: Some(K10_NAMESPACE.into()),
            ..Default::default()
        },
        ..Default::default()
    };
    (namespace, api::crds())
}

pub async fn run(global: &GlobalArgs, args: InstallArgs) -> anyhow::Result<()> {
    let (namespace, crds) = objects();
    if args.dry_run {
        let mut all = vec![serde_json::to_value(&namespace)?];
        for crd in &crds {
            all.push(serde_json::to_value(crd)?);
        }
        if args.format == Format::Yaml {
            for obj in &all {
                print!("---\n{}", serde_yaml::to_string(obj)?);
            }
        } else if !output::print_structured(args.format, &output::list_of(&all))? {
            for obj in &all {
                println!("{}/{} (dry run)", obj["kind"].as_str().unwrap_or(""), obj["metadata"]["name"].as_str().unwrap_or(""));
            }
        }
        return Ok(());
    }
    let cluster = global.cluster().connect().await?;
    let params = PatchParams::apply("k10").force();
    let crd_api: Api<CustomResourceDefinition> = Api::all(cluster.client.clone());
    for crd in &crds {
        let name = crd.metadata.name.clone().unwrap_or_default();
        crd_api
            .patch(&name, &params, &Patch::Apply(crd))
            .await
            .map_err(|e| cluster.err(e, format!("apply CustomResourceDefinition {name}")))?;
        println!("customresourcedefinition/{name} applied");
    }
    let ns_api: Api<Namespace> = Api::all(cluster.client.clone());
    ns_api
        .patch(K10_NAMESPACE, &params, &Patch::Apply(&namespace))
        .await
        .map_err(|e| cluster.err(e, format!("apply namespace {K10_NAMESPACE}")))?;
    println!("namespace/{K10_NAMESPACE} applied");
    Ok(())
}
