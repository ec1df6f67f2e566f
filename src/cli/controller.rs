//! `kubectl-k10 controller`: the in-cluster controller (run by the Deployment that `install`
//! and the chart create; see [`crate::controller`]).

use std::net::SocketAddr;

use super::GlobalArgs;
use crate::controller::{self, Options};
use crate::objectstore::retry::parse_duration;

#[derive(Debug, clap::Args)]
pub struct ControllerArgs {
    /// This replica's name in the leader Lease (default: the pod's name, $POD_NAME or $HOSTNAME).
    #[arg(long, env = "POD_NAME")]
    identity: Option<String>,
    /// How long the leader's Lease lasts without renewal before another replica takes over.
    #[arg(long, default_value = "15s", value_parser = duration)]
    lease_duration: std::time::Duration,
    /// Where `/metrics` and `/healthz` are served.
    #[arg(long, default_value = "0.0.0.0:8080")]
    metrics_address: SocketAddr,
    /// How often a valid profile's bucket is checked again.
    #[arg(long, default_value = "24h", value_parser = duration)]
    revalidate_every: std::time::Duration,
    /// How often the protection horizon is read from the buckets (one request per object).
    #[arg(long, default_value = "6h", value_parser = duration)]
    horizon_every: std::time::Duration,
}

fn duration(text: &str) -> Result<std::time::Duration, String> {
    parse_duration(text).ok_or_else(|| format!("invalid duration {text:?}: use 30s, 15m, 6h or plain seconds"))
}

pub async fn run(global: &GlobalArgs, args: ControllerArgs) -> anyhow::Result<()> {
    let cluster = global.cluster().connect().await?;
    let identity = args
        .identity
        .or_else(|| std::env::var("HOSTNAME").ok())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| format!("k10-controller-{}", std::process::id()));
    let options = Options {
        identity,
        lease_duration: args.lease_duration,
        metrics_address: args.metrics_address,
        revalidate_every: args.revalidate_every,
        horizon_every: args.horizon_every,
    };
    eprintln!("controller {}: serving metrics on {}; waiting for the lead", options.identity, options.metrics_address);
    controller::run(cluster, options).await?;
    Ok(())
}
