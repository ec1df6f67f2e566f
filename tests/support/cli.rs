//! Runs the built `kubectl-k10` binary as a user would, and captures what it prints.

use std::path::{Path, PathBuf};
use std::process::Command;

pub fn binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_kubectl-k10"))
}

/// What one run printed, and how it ended.
#[derive(Debug, Clone)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Both streams, for checks that something appears (or never appears) anywhere.
    pub fn all(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }

    #[track_caller]
    pub fn ok(self) -> Run {
        assert_eq!(self.code, 0, "expected success:\n{}", self.all());
        self
    }

    /// Asserts a failure with exit code 1 whose output contains every fragment.
    #[track_caller]
    pub fn fails_with(self, fragments: &[&str]) -> Run {
        assert_eq!(self.code, 1, "expected exit code 1:\n{}", self.all());
        let all = self.all();
        for f in fragments {
            assert!(all.contains(f), "expected {f:?} in:\n{all}");
        }
        assert!(!all.contains("panicked"), "panic:\n{all}");
        self
    }
}

/// A configured way to run the binary: a kubeconfig and extra environment.
#[derive(Debug, Clone, Default)]
pub struct K10 {
    pub kubeconfig: Option<PathBuf>,
    pub env: Vec<(String, String)>,
}

impl K10 {
    pub fn new(kubeconfig: &Path) -> K10 {
        K10 {
            kubeconfig: Some(kubeconfig.to_path_buf()),
            env: Vec::new(),
        }
    }

    /// The same, acting as the ServiceAccount `kasten-io/k10` of `server` (after an admin's
    /// `install`), under the RBAC install granted it.
    pub fn acting_as_service_account(self, server: &super::apiserver::ApiServer) -> K10 {
        K10 {
            kubeconfig: Some(server.service_account_kubeconfig("kasten-io", "k10").expect("a ServiceAccount kubeconfig")),
            ..self
        }
    }

    pub fn with_env(mut self, key: &str, value: &str) -> K10 {
        self.env.push((key.into(), value.into()));
        self
    }

    pub fn run(&self, args: &[&str]) -> Run {
        let out = self.command(args).output().expect("run kubectl-k10");
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// The command `run` runs, to start it in the background (and kill it).
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(binary());
        cmd.args(args)
            .env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY")
            .env_remove("KUBECONFIG")
            .env("RUST_BACKTRACE", "0");
        if let Some(kc) = &self.kubeconfig {
            cmd.env("KUBECONFIG", kc);
        }
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd
    }
}
