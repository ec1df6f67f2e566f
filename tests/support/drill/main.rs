//! The drill as a program: `tests/drill.sh` builds and runs it (the README's main command).
//! What it does is written in `mod.rs` beside this file.

#[path = "../apiserver/mod.rs"]
mod apiserver;
#[path = "mod.rs"]
mod drill;
#[path = "../helm.rs"]
#[allow(dead_code)]
mod helm;
#[path = "../s3.rs"]
#[allow(dead_code)]
mod s3;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Parser;

/// The worst-case drill: protect an application with immutable backups, attack it with every
/// credential, recover it on a new installation and verify it byte for byte.
///
/// Without --bucket it runs on the local SeaweedFS and Kubernetes API stand-ins. With --bucket it
/// runs on a real cluster (KUBECONFIG or --kubeconfig) and an existing object-locked bucket, with
/// the store's keys from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, and only with
/// --destroy NAMESPACE/BUCKET.
#[derive(Debug, Parser)]
#[command(name = "drill")]
struct Args {
    /// MiB of sample data in the application's volume.
    #[arg(long, env = "K10_DRILL_MIB", default_value_t = 64)]
    mib: usize,
    /// The application's namespace (created and destroyed by the drill).
    #[arg(long, default_value = "shop")]
    namespace: String,
    /// The point in time to recover to.
    #[arg(long, value_enum, default_value = "before-attack")]
    recover_to: RecoverTo,
    /// Leave the DR passphrase Secret out of the new installation (recovery is then refused).
    #[arg(long)]
    without_passphrase: bool,
    /// An existing bucket with Object Lock (COMPLIANCE default retention of >= 50 days for the
    /// drill's 30-day protection period): run on a real cluster and store.
    #[arg(long)]
    bucket: Option<String>,
    /// The S3-compatible endpoint (default: AWS S3).
    #[arg(long, requires = "bucket")]
    endpoint: Option<String>,
    #[arg(long, default_value = "us-east-1", requires = "bucket")]
    region: String,
    #[arg(long, requires = "bucket")]
    skip_ssl_verify: bool,
    /// The source cluster's kubeconfig (default: KUBECONFIG, then ~/.kube/config).
    #[arg(long, requires = "bucket")]
    kubeconfig: Option<PathBuf>,
    /// The cluster to recover into (default: the source cluster, emptied by the attack).
    #[arg(long, requires = "bucket")]
    recovery_kubeconfig: Option<PathBuf>,
    /// Allow the attack on NAMESPACE/BUCKET: it must name --namespace and --bucket exactly.
    #[arg(long, value_name = "NAMESPACE/BUCKET", requires = "bucket")]
    destroy: Option<String>,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum RecoverTo {
    /// Between the last good DR run and the attack: everything comes back.
    BeforeAttack,
    /// Just after the tool's attack retired every restore point: an empty catalog, with a warning.
    AfterRetirement,
    /// After the whole attack: the catalog is gone; the drill fails saying so.
    AfterAttack,
}

fn options(args: Args) -> Result<drill::Options, String> {
    let target = match args.bucket {
        None => drill::Target::Local,
        Some(bucket) => {
            let key = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty()).ok_or(format!("{name} is not set: the drill reads the store's keys from the environment"));
            drill::Target::Real(drill::Real {
                kubeconfig: args.kubeconfig,
                recovery_kubeconfig: args.recovery_kubeconfig,
                bucket,
                endpoint: args.endpoint,
                region: args.region,
                skip_ssl_verify: args.skip_ssl_verify,
                access_key: key("AWS_ACCESS_KEY_ID")?,
                secret_key: key("AWS_SECRET_ACCESS_KEY")?,
                destroy: args.destroy,
            })
        }
    };
    Ok(drill::Options {
        target,
        namespace: args.namespace,
        recover_to: match args.recover_to {
            RecoverTo::BeforeAttack => drill::RecoverTo::BeforeAttack,
            RecoverTo::AfterRetirement => drill::RecoverTo::AfterRetirement,
            RecoverTo::AfterAttack => drill::RecoverTo::AfterAttack,
        },
        passphrase_on_recovery: !args.without_passphrase,
        ..drill::Options::local(args.mib)
    })
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> ExitCode {
    // target/<profile>/examples/drill → target/<profile>/kubectl-k10
    let exe = std::env::current_exe().expect("own path");
    let binary = exe.parent().and_then(Path::parent).map(|d| d.join("kubectl-k10")).expect("target dir");
    let options = match options(Args::parse()) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("drill: {e}");
            return ExitCode::from(2);
        }
    };
    match drill::run(&binary, &options).await {
        Ok(_) => ExitCode::SUCCESS,
        Err(e @ drill::DrillError::Refused(_)) => {
            eprintln!("drill {e}");
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("\ndrill FAILED: {e}");
            ExitCode::FAILURE
        }
    }
}
