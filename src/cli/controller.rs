//! `kubectl-k10 controller`: the in-cluster controller (run by the Deployment that `install`
//! and the chart create; see [`crate::controller`]).

use std::net::SocketAddr;

use super::GlobalArgs;
use crate::controller::{self, Options};
use crate::objectstore::retry::parse_duration;
use crate::schedule::Frequency;

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
    /// When retention maintenance runs: @hourly, @daily or a cron expression that runs at least
    /// every 2 days; `off` when it runs elsewhere (then run `kubectl k10 maintenance run` yourself).
    #[arg(long, default_value = "@daily", value_parser = maintenance_schedule)]
    maintenance_frequency: MaintenanceSchedule,
    /// How long one maintenance run may take before it is stopped.
    #[arg(long, default_value = "6h", value_parser = duration)]
    maintenance_timeout: std::time::Duration,
}

#[derive(Debug, Clone)]
struct MaintenanceSchedule(Option<Frequency>);

/// A maintenance schedule must run at least every 2 days: the locks it extends are renewed
/// when they end within P + 10 days, and extended to P + 20.
fn maintenance_schedule(text: &str) -> Result<MaintenanceSchedule, String> {
    if text == "off" {
        return Ok(MaintenanceSchedule(None));
    }
    let f = Frequency::parse(text, None).map_err(|e| e.to_string())?;
    let start = chrono::DateTime::from_timestamp(0, 0).expect("the epoch");
    let mut t = start;
    // Every gap between two runs over a year (and its leap days) is at most 2 days.
    while t < start + chrono::Duration::days(400) {
        let next = f.next_after(t).ok_or_else(|| format!("maintenance frequency {text:?} never runs"))?;
        if next - t > chrono::Duration::days(2) {
            return Err(format!("maintenance frequency {text:?} leaves {} days between runs: it must run at least every 2 days", (next - t).num_days()));
        }
        t = next;
    }
    Ok(MaintenanceSchedule(Some(f)))
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
        maintenance: args.maintenance_frequency.0,
        maintenance_timeout: args.maintenance_timeout,
    };
    eprintln!("controller {}: serving metrics on {}; waiting for the lead", options.identity, options.metrics_address);
    controller::run(cluster, options).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maintenance_must_run_at_least_every_two_days() {
        for ok in ["@hourly", "@daily", "0 3 * * *", "30 1 */2 * *", "*/15 */6 * * *"] {
            assert!(maintenance_schedule(ok).unwrap().0.is_some(), "{ok}");
        }
        assert!(maintenance_schedule("off").unwrap().0.is_none());
        for rare in ["@weekly", "@monthly", "0 3 * * 2", "0 3 */3 * *"] {
            let err = maintenance_schedule(rare).unwrap_err();
            assert!(err.contains("at least every 2 days"), "{rare}: {err}");
        }
        assert!(maintenance_schedule("sometimes").unwrap_err().contains("invalid frequency"));
    }
}
