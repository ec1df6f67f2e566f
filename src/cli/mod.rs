//! The command line: `kubectl k10 …` (or `kubectl-k10 …`), one file per command group.
//!
//! Global flags follow kubectl (`--kubeconfig`, `--context`, `-n/--namespace`, `KUBECONFIG`).
//! Errors are printed as one line on stderr (`error: what failed: why; what to do`) with exit code 1;
//! usage errors exit with 2 (clap's convention).

pub mod controller;
pub mod datamover;
pub mod dr;
pub mod incident;
pub mod install;
pub mod maintenance;
pub mod output;
pub mod policy;
pub mod profile;
pub mod restore;
pub mod restorepoint;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::k8s::ClusterOptions;

/// Immutable, ransomware-proof Kubernetes backups on S3 Object Lock.
#[derive(Debug, Parser)]
#[command(name = "kubectl k10", bin_name = "kubectl k10", version, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// kubectl's connection flags, accepted by every command.
#[derive(Debug, Clone, clap::Args)]
pub struct GlobalArgs {
    /// Path to the kubeconfig file (default: $KUBECONFIG, then ~/.kube/config, then in-cluster).
    #[arg(long, global = true, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use.
    #[arg(long, global = true, value_name = "NAME")]
    pub context: Option<String>,
    /// The namespace to work in (profiles and policies default to kasten-io).
    #[arg(short = 'n', long, global = true, value_name = "NAMESPACE")]
    pub namespace: Option<String>,
}

impl GlobalArgs {
    pub fn cluster(&self) -> ClusterOptions {
        ClusterOptions {
            kubeconfig: self.kubeconfig.clone(),
            context: self.context.clone(),
            namespace: self.namespace.clone(),
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Install the CRDs, the kasten-io namespace, the k10 ServiceAccount and RBAC, and the
    /// controller, which runs policies and retention maintenance (idempotent).
    Install(install::InstallArgs),
    /// Location profiles: where backups go, validated for Object Lock immutability.
    #[command(subcommand)]
    Profile(profile::ProfileCommand),
    /// Backup policies: which namespaces, how often, to which profile, how many to keep.
    #[command(subcommand)]
    Policy(policy::PolicyCommand),
    /// Restore points of applications.
    #[command(subcommand)]
    Restorepoint(restorepoint::RestorePointCommand),
    /// Restore an application from a restore point, as it was when the backup ran.
    Restore(restore::RestoreArgs),
    /// Retention maintenance: keep the locks of current backup data extended.
    #[command(subcommand)]
    Maintenance(maintenance::MaintenanceCommand),
    /// Disaster recovery of the catalog (profiles, policies, restore points, keys).
    #[command(subcommand)]
    Dr(dr::DrCommand),
    /// The timeline of an attack from the bucket's version history: DR snapshots, restore points,
    /// what k10 did not do, and the point in time to recover to (read-only).
    Incident(incident::IncidentArgs),
    /// Print a shell completion script (e.g. `source <(kubectl k10 completion bash)`).
    Completion {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// The in-cluster controller: validates profiles and policies, runs policies on schedule and
    /// RunActions, serves metrics (run by the k10-controller Deployment).
    Controller(controller::ControllerArgs),
    /// The in-cluster data mover (run by Jobs).
    #[command(subcommand)]
    Datamover(datamover::DataMoverCommand),
}

/// Parses the command line, runs the command, and maps the outcome to an exit code.
pub fn main() -> ExitCode {
    crate::datamover::bound_heap();
    let cli = Cli::parse();
    init_tracing();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => return fail(anyhow::anyhow!("cannot start the async runtime: {e}")),
    };
    let result = runtime.block_on(run(cli));
    // A store that failed or throttled on the way is worth knowing about even when all went well.
    let store = crate::objectstore::retry::process_stats();
    if store.retries > 0 {
        output::line_to_stderr(&format!("note: the object store needed retries: {store}"));
    }
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(e),
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Install(args) => install::run(&cli.global, args).await,
        Command::Profile(cmd) => profile::run(&cli.global, cmd).await,
        Command::Maintenance(cmd) => maintenance::run(&cli.global, cmd).await,
        Command::Policy(cmd) => policy::run(&cli.global, cmd).await,
        Command::Restorepoint(cmd) => restorepoint::run(&cli.global, cmd).await,
        Command::Restore(args) => restore::run(&cli.global, args).await,
        Command::Datamover(cmd) => datamover::run(cmd).await,
        Command::Controller(args) => controller::run(&cli.global, args).await,
        Command::Dr(cmd) => dr::run(&cli.global, cmd).await,
        Command::Incident(args) => incident::run(&cli.global, args).await,
        Command::Completion { shell } => {
            use clap::CommandFactory;
            // Completes `kubectl-k10`; kubectl's own plugin completion calls it as `kubectl_complete-k10`.
            clap_complete::generate(shell, &mut Cli::command(), "kubectl-k10", &mut std::io::stdout());
            Ok(())
        }
    }
}

fn fail(err: anyhow::Error) -> ExitCode {
    // `{:#}` joins the cause chain on one line: "what failed: why".
    output::line_to_stderr(&format!("error: {err:#}"));
    ExitCode::FAILURE
}

/// Diagnostics go to stderr, filtered by `K10_LOG` (e.g. `K10_LOG=debug`); by default only k10's own
/// warnings (library errors reach the user once, as the command's error line).
fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("K10_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("k10=warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}
