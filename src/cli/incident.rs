//! `kubectl k10 incident`: the timeline of an attack, read from the bucket's version history.

use super::output::{self, OutputArgs};
use super::GlobalArgs;
use crate::dr::incident::{self, Request, Timeline};
use crate::dr::DEFAULT_PASSPHRASE_SECRET;

#[derive(Debug, clap::Args)]
pub struct IncidentArgs {
    /// The attacked cluster's ID (the UID of its `default` namespace; default: this cluster's).
    #[arg(long)]
    pub source_cluster_id: Option<String>,
    /// A profile of this installation on the bucket (default: the DR policy's).
    #[arg(long)]
    pub profile: Option<String>,
    /// The Secret in kasten-io holding the DR passphrase (key `key`).
    #[arg(long, default_value = DEFAULT_PASSPHRASE_SECRET)]
    pub passphrase_secret: String,
    /// DR snapshots opened on each side of the first sign of tampering.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub depth: u16,
    /// Activity before this time (RFC 3339) is listed but is no sign: an incident already dealt with.
    #[arg(long)]
    pub since: Option<String>,
    #[command(flatten)]
    pub output: OutputArgs,
}

pub async fn run(global: &GlobalArgs, args: IncidentArgs) -> anyhow::Result<()> {
    let cluster = global.cluster().connect().await?;
    let request = Request {
        source_cluster_id: args.source_cluster_id,
        profile: args.profile,
        passphrase_secret: args.passphrase_secret,
        depth: usize::from(args.depth),
        since: args.since.as_deref().map(crate::repo::parse_point_in_time).transpose()?,
    };
    let timeline = incident::run(&cluster, &request).await?;
    if output::print_structured(args.output.format, &timeline)? {
        return Ok(());
    }
    print(&timeline);
    Ok(())
}

fn print(t: &Timeline) {
    println!(
        "Incident timeline of cluster {} in bucket {} ({} versions; {} read to check their content; as of {})",
        t.cluster_id, t.bucket, t.versions, t.content_checks, t.investigated_at
    );
    println!("\nDR snapshots:");
    if t.dr_snapshots.is_empty() {
        println!("  none");
    }
    for d in &t.dr_snapshots {
        let state = match (d.reads, d.restore_points, &d.error) {
            (Some(true), Some(n), _) => format!("reads, {n} restore point(s)"),
            (Some(false), _, Some(e)) => format!("does not read: {e}"),
            _ => "not opened (--depth)".into(),
        };
        println!("  {}  {state}", d.time);
    }
    for ns in &t.namespaces {
        println!("\nNamespace {} ({}):", ns.namespace, ns.repository);
        for p in &ns.restore_points {
            let mut line = format!("  {}  {}  {}", p.end_time, p.name, if p.reads { "reads" } else { "does not read" });
            if let Some(e) = &p.error {
                line += &format!(" ({e})");
            }
            if let Some(u) = &p.protected_until {
                line += &format!(", protected until {u}");
            }
            if let Some(r) = &p.retired_at {
                line += &format!(", retired at {r}");
            }
            if let Some(s) = &p.suspicious {
                line += &format!(", SUSPICIOUS: {s}");
            }
            println!("{line}");
        }
    }
    println!("\nActivity k10 did not do:");
    let (tampering, own): (Vec<_>, Vec<_>) = t.activity.iter().partition(|g| g.tampering);
    if tampering.is_empty() {
        println!("  none");
    }
    for (title, groups) in [("", tampering), ("\nWhat k10 itself did that looks alike:", own)] {
        if !groups.is_empty() && !title.is_empty() {
            println!("{title}");
        }
        for g in groups {
            println!("  {} .. {}  {} {}, e.g. {}", g.first, g.last, g.count, g.description, g.examples[0].key);
        }
    }
    let v = &t.verdict;
    println!("\nVerdict: {}", v.summary);
    if let Some(helm) = &v.helm {
        println!("  Recover the catalog with --point-in-time {}:", v.point_in_time.as_deref().unwrap_or_default());
        println!("    {helm}");
    }
    if let (Some(days), Some(p)) = (v.days_left, v.protection_period_days) {
        println!("  {days:.1} days remain before the DR profile's protection period ({p} days) makes that time unrecoverable.");
    }
    for c in &v.last_clean {
        match &c.restore_point {
            Some(rp) => println!(
                "  Namespace {}: its data looks encrypted since restore point {} ({}); after the catalog is back, `kubectl k10 restore --last-clean -n {}` restores {rp} ({}).",
                c.namespace,
                c.first_suspicious,
                c.reason,
                c.namespace,
                c.end_time.as_deref().unwrap_or_default()
            ),
            None => println!("  Namespace {}: its data looks encrypted since restore point {} ({}), and no restore point before it is left.", c.namespace, c.first_suspicious, c.reason),
        }
    }
}

