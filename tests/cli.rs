//! The command line itself: help, version, kubectl plugin discovery, and bad connection settings.

mod support;

use std::process::Command;

use support::cli::{binary, K10};

#[test]
fn help_lists_the_command_groups_and_kubectl_flags() {
    let out = K10::default().run(&["--help"]).ok().stdout;
    for group in ["install", "profile"] {
        assert!(out.lines().any(|l| l.trim_start().starts_with(group)), "{group} missing from:\n{out}");
    }
    for flag in ["--kubeconfig", "--context", "-n, --namespace"] {
        assert!(out.contains(flag), "{flag} missing from:\n{out}");
    }
    let version = K10::default().run(&["--version"]).ok().stdout;
    assert_eq!(version.trim(), format!("kubectl k10 {}", env!("CARGO_PKG_VERSION")));
}

#[test]
fn kubectl_finds_the_plugin_on_path() {
    let dir = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(binary(), dir.path().join("kubectl-k10")).unwrap();
    let path = format!("{}:{}", dir.path().display(), std::env::var("PATH").unwrap());
    let out = Command::new("kubectl").args(["k10", "--version"]).env("PATH", &path).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), format!("kubectl k10 {}", env!("CARGO_PKG_VERSION")));
    let help = Command::new("kubectl").args(["k10", "--help"]).env("PATH", &path).output().unwrap();
    assert!(String::from_utf8_lossy(&help.stdout).contains("profile"));
}

/// One line on stderr, exit code 1, no panic or backtrace.
#[track_caller]
fn one_clear_line(run: support::cli::Run, fragment: &str) {
    let run = run.fails_with(&[fragment]);
    assert_eq!(run.stderr.trim().lines().count(), 1, "expected one line:\n{}", run.stderr);
    assert!(run.stderr.starts_with("error: "), "{}", run.stderr);
    assert!(!run.stderr.contains("backtrace"), "{}", run.stderr);
}

#[test]
fn bad_connection_settings_give_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing-kubeconfig");
    let k10 = K10::default();
    one_clear_line(
        k10.run(&["--kubeconfig", missing.to_str().unwrap(), "profile", "list"]),
        "cannot read kubeconfig",
    );
    // KUBECONFIG is honoured the same way.
    one_clear_line(K10::new(&missing).run(&["profile", "list"]), "cannot read kubeconfig");

    // A cluster nobody listens on.
    let unreachable = dir.path().join("unreachable");
    std::fs::write(
        &unreachable,
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {server: 'http://127.0.0.1:1'}\n\
         users:\n- name: u\n  user: {token: t}\ncontexts:\n- name: ctx\n  context: {cluster: c, user: u}\n\
         current-context: ctx\n",
    )
    .unwrap();
    one_clear_line(K10::new(&unreachable).run(&["profile", "list"]), "cannot reach the Kubernetes API at http://127.0.0.1:1");
    one_clear_line(
        K10::new(&unreachable).run(&["--context", "nope", "profile", "list"]),
        "kubeconfig has no context named \"nope\"",
    );

    // Not YAML at all.
    let garbage = dir.path().join("garbage");
    std::fs::write(&garbage, "{{{ not yaml").unwrap();
    one_clear_line(K10::new(&garbage).run(&["profile", "list"]), "cannot read kubeconfig");
}

#[test]
fn usage_errors_exit_with_2() {
    let run = K10::default().run(&["profile", "frobnicate"]);
    assert_eq!(run.code, 2, "{}", run.all());
    let run = K10::default().run(&["no-such-group"]);
    assert_eq!(run.code, 2, "{}", run.all());
}

#[test]
fn completion_scripts_for_each_shell() {
    for (shell, marker) in [("bash", "complete -F"), ("zsh", "#compdef kubectl-k10"), ("fish", "complete -c kubectl-k10")] {
        let out = K10::default().run(&["completion", shell]).ok().stdout;
        assert!(out.contains(marker), "{shell}: {}", &out[..out.len().min(300)]);
        assert!(out.contains("restorepoint"), "{shell} completes the command groups");
    }
    let bad = K10::default().run(&["completion", "cmd.exe"]);
    assert_eq!(bad.code, 2, "{}", bad.all());
}
