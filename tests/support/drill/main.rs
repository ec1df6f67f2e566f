//! The drill as a program: `tests/drill.sh` builds and runs it (the README's main command).
//! What it does is written in `mod.rs` beside this file. `K10_DRILL_MIB` sets the data size.

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
#[path = "../tree.rs"]
#[allow(dead_code)]
mod tree;

use std::path::Path;
use std::process::ExitCode;

#[tokio::main(flavor = "multi_thread")]
async fn main() -> ExitCode {
    // target/<profile>/examples/drill → target/<profile>/kubectl-k10
    let exe = std::env::current_exe().expect("own path");
    let binary = exe.parent().and_then(Path::parent).map(|d| d.join("kubectl-k10")).expect("target dir");
    let mib = std::env::var("K10_DRILL_MIB").ok().and_then(|v| v.parse().ok()).unwrap_or(64);
    match drill::run(&binary, mib).await {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("\ndrill FAILED: {e}");
            ExitCode::FAILURE
        }
    }
}
