//! `k8s-standin`: runs the Kubernetes API stand-in until killed (SIGTERM or Ctrl-C).
//!
//! ```text
//! cargo run --example k8s-standin -- --kubeconfig /tmp/standin.kubeconfig \
//!     --k10-binary target/debug/kubectl-k10 --volumes-root /tmp/standin-volumes
//! ```
//! The first line on stdout is the server URL; it is printed once the kubeconfig is written.
//! The contract is in the module docs of `mod.rs` beside this file.

#[path = "mod.rs"]
mod apiserver;

use apiserver::{ApiServer, ApiServerOptions};
use clap::Parser;
use std::io::Write;
use std::path::PathBuf;
use tokio::signal::unix::{signal, SignalKind};

/// Kubernetes API stand-in for kubectl-k10 tests (plain HTTP on 127.0.0.1, objects in memory).
#[derive(Parser, Debug)]
#[command(name = "k8s-standin")]
struct Args {
    /// Where to write the kubeconfig (context `standin`).
    #[arg(long)]
    kubeconfig: PathBuf,
    /// The kubectl-k10 binary the stand-in kubelet runs for Jobs.
    #[arg(long)]
    k10_binary: Option<PathBuf>,
    /// Root of the local directories standing in for PVCs (<root>/<namespace>/<claim>).
    #[arg(long)]
    volumes_root: Option<PathBuf>,
    /// UID of the `default` namespace (the cluster ID).
    #[arg(long)]
    default_namespace_uid: Option<String>,
    /// Port on 127.0.0.1 (default: any free port).
    #[arg(long)]
    port: Option<u16>,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let opts = ApiServerOptions {
        k10_binary: args.k10_binary,
        volumes_root: args.volumes_root.unwrap_or_default(),
        default_namespace_uid: args.default_namespace_uid,
        kubeconfig_path: Some(args.kubeconfig),
        port: args.port,
    };
    let server = match ApiServer::start(opts).await {
        Ok(server) => server,
        Err(err) => {
            eprintln!("k8s-standin: cannot start: {err}");
            return std::process::ExitCode::FAILURE;
        }
    };
    println!("{}", server.url());
    let _ = std::io::stdout().flush();
    eprintln!(
        "k8s-standin: serving {} (kubeconfig {}, volumes {}, default namespace uid {})",
        server.url(),
        server.kubeconfig_path().display(),
        server.volumes_root().display(),
        server.default_namespace_uid()
    );

    let mut sigterm = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(err) => {
            eprintln!("k8s-standin: cannot listen for SIGTERM: {err}");
            return std::process::ExitCode::FAILURE;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = sigterm.recv() => {}
    }
    eprintln!("k8s-standin: stopping");
    drop(server);
    std::process::ExitCode::SUCCESS
}
