//! `kubectl-k10`: the kubectl plugin and the in-cluster entrypoint. All logic lives in the library.

fn main() -> std::process::ExitCode {
    k10::cli::main()
}
