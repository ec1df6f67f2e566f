//! The README's drill, with less data: protect, attack with every credential, recover, verify;
//! and its variants: a point in time after the attack or after the tool's retirements, the
//! passphrase missing on the new installation, a "real" cluster and bucket (a stand-in and
//! SeaweedFS reached only through a kubeconfig, an endpoint and keys), and the guard that refuses
//! an attack nobody allowed.

mod support;

use std::process::Command;

use aws_sdk_s3::types::ObjectLockRetentionMode;
use k10::objectstore::storage::VersionedStorage;
use support::apiserver::{ApiServer, ApiServerOptions};
use support::drill::{self, DrillError, Options, Real, RecoverTo, Target};
use support::s3;

async fn refused(binary: &std::path::Path, options: Options, why: &str) {
    match drill::run(binary, &options).await {
        Err(DrillError::Refused(m)) => assert!(m.contains(why) && m.contains("nothing was done"), "{m}"),
        other => panic!("should have been refused ({why}): {other:?}"),
    }
}

fn failure(result: Result<drill::Summary, DrillError>) -> String {
    match result {
        Ok(s) => panic!("the drill should have failed: {s:?}"),
        Err(DrillError::Refused(m)) => panic!("refused where it should have failed: {m}"),
        Err(DrillError::Failed(m)) => m,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_worst_case_drill() {
    let summary = drill::run(&support::cli::binary(), &Options::local(8)).await.expect("the drill");
    assert!(summary.bytes >= 8 * 1024 * 1024, "{summary:?}");
    assert!(summary.files >= 7 && summary.manifests >= 5, "{summary:?}");
    // The point in time (incident's) lies between the good DR run and the attack's, which
    // recorded an empty catalog: the older catalog came back, with both restore points retired
    // after it: the one from before the encryption (restored) and the suspicious one.
    assert_eq!(summary.restore_points_recovered, 2, "{summary:?}");
    // Stored after dedup and compression: less than the data (its 8 MiB are one compressible file).
    assert!(summary.stored_bytes > 0 && summary.stored_bytes < summary.bytes / 2, "{summary:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_point_in_time_after_the_attack_finds_the_catalog_gone() {
    let options = Options {
        recover_to: RecoverTo::AfterAttack,
        ..Options::local(2)
    };
    let message = failure(drill::run(&support::cli::binary(), &options).await);
    assert!(message.contains("the Job kasten-io/k10-restore failed"), "{message}");
    assert!(message.contains("is gone") && message.contains("Choose an earlier point in time"), "{message}");
    // It names the times that still read: the attack's DR run (an empty catalog) and, before it,
    // the good one.
    assert!(message.contains("holds no restore points; the newest that holds some was stored at"), "{message}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_point_in_time_after_the_retirements_brings_back_an_empty_catalog_with_a_warning() {
    let options = Options {
        recover_to: RecoverTo::AfterRetirement,
        ..Options::local(1)
    };
    let message = failure(drill::run(&support::cli::binary(), &options).await);
    assert!(message.contains("the recovered catalog holds restore points [] of shop"), "{message}");
    assert!(message.contains("warning: the catalog brought back holds no restore points, but the DR snapshot stored at"), "{message}");
    assert!(message.contains("if they were retired by an attacker, restore as of a point in time before"), "{message}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_passphrase_missing_on_the_new_installation_is_named() {
    let options = Options {
        passphrase_on_recovery: false,
        ..Options::local(2)
    };
    let message = failure(drill::run(&support::cli::binary(), &options).await);
    assert!(message.contains("the DR passphrase Secret kasten-io/k10-dr-secret with key `key` is missing on this installation"), "{message}");
    assert!(message.contains("recovery needs the passphrase the source cluster's DR policy used"), "{message}");
    assert!(message.contains("kubectl create secret generic k10-dr-secret -n kasten-io --from-literal key=<that passphrase>"), "{message}");
}

/// A cluster reached only through its kubeconfig and a bucket only through endpoint and keys.
struct RealTarget {
    server: ApiServer,
    bucket: String,
    _dir: tempfile::TempDir,
}

async fn real_target() -> RealTarget {
    let env = s3::env();
    let bucket = s3::unique_bucket("drill-real");
    env.create_locked_bucket(&bucket, Some((ObjectLockRetentionMode::Compliance, s3::Retention::Days(60)))).await;
    let dir = tempfile::tempdir().unwrap();
    let server = ApiServer::start_in_background(ApiServerOptions {
        k10_binary: Some(support::cli::binary()),
        volumes_root: dir.path().join("volumes"),
        ..Default::default()
    });
    RealTarget { server, bucket, _dir: dir }
}

impl RealTarget {
    fn real(&self, destroy: Option<&str>) -> Real {
        let env = s3::env();
        Real {
            kubeconfig: Some(self.server.kubeconfig_path().to_path_buf()),
            recovery_kubeconfig: None,
            bucket: self.bucket.clone(),
            endpoint: Some(env.endpoint.clone()),
            region: env.region.clone(),
            skip_ssl_verify: false,
            access_key: env.access_key.clone(),
            secret_key: env.secret_key.clone(),
            destroy: destroy.map(str::to_string),
        }
    }

    fn kubectl(&self, args: &[&str]) -> (bool, String) {
        let out = Command::new("kubectl").arg("--kubeconfig").arg(self.server.kubeconfig_path()).args(args).output().unwrap();
        (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned())
    }

    async fn versions_in_bucket(&self) -> usize {
        let env = s3::env();
        let location = k10::objectstore::Location {
            endpoint: Some(env.endpoint.clone()),
            region: env.region.clone(),
            bucket: self.bucket.clone(),
            skip_ssl_verify: false,
        };
        let credentials = k10::objectstore::Credentials {
            access_key_id: env.access_key.clone(),
            secret_access_key: env.secret_key.clone(),
        };
        let store = k10::objectstore::ObjectStore::connect(&location, &credentials).unwrap();
        k10::objectstore::s3::S3Storage::new(store, None).list_versions("").await.unwrap().len()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn on_a_real_cluster_and_bucket_the_drill_recovers_and_cleans_up() {
    let t = real_target().await;
    let options = Options {
        target: Target::Real(t.real(Some(&format!("drill-app/{}", t.bucket)))),
        namespace: "drill-app".into(),
        ..Options::local(2)
    };
    // Twice on the same cluster and bucket: the clean-up leaves both ready for the next drill.
    for round in 1..=2 {
        let summary = drill::run(&support::cli::binary(), &options).await.unwrap_or_else(|e| panic!("round {round}: {e}"));
        assert!(summary.bytes >= 2 * 1024 * 1024 && summary.restore_points_recovered == 2, "{summary:?}");

        // Recovered into the same cluster, then cleaned up: nothing of the drill is left but k10.
        assert!(!t.kubectl(&["get", "namespace", "drill-app"]).0, "the drill's namespace was left behind");
        for kind in ["profiles.config.kio.kasten.io", "policies.config.kio.kasten.io", "restorepointcontents.apps.kio.kasten.io"] {
            let (ok, out) = t.kubectl(&["get", kind, "-A", "-o", "name"]);
            assert!(ok && out.trim().is_empty(), "{kind} left behind: {out}");
        }
        let (_, left) = t.kubectl(&["get", "cronjobs,jobs,secrets,serviceaccounts,roles,rolebindings", "-n", "kasten-io", "-o", "name"]);
        let left: Vec<&str> = left.lines().filter(|l| !l.ends_with("/default")).collect();
        assert_eq!(
            left,
            ["serviceaccount/k10", "role.rbac.authorization.k8s.io/k10", "rolebinding.rbac.authorization.k8s.io/k10"],
            "left behind in kasten-io (install's own objects stay)"
        );
        let (_, cluster_wide) = t.kubectl(&["get", "clusterroles,clusterrolebindings", "-o", "name"]);
        assert!(!cluster_wide.contains("k10-restore"), "{cluster_wide}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_attack_on_a_real_target_needs_the_namespace_and_bucket_named() {
    let t = real_target().await;
    let binary = support::cli::binary();
    let wrong_bucket = format!("drill-app/{}-other", t.bucket);
    let wrong_namespace = format!("shop/{}", t.bucket);
    for destroy in [None, Some(wrong_bucket.as_str()), Some(wrong_namespace.as_str())] {
        let options = Options {
            target: Target::Real(t.real(destroy)),
            namespace: "drill-app".into(),
            ..Options::local(1)
        };
        match drill::run(&binary, &options).await {
            Err(DrillError::Refused(m)) => {
                // It names exactly what it would destroy.
                let named = format!("drill-app/{}", t.bucket);
                assert!(m.contains(&format!("--destroy {named};")) || m.contains(&format!("({named});")), "{m}");
                assert!(m.contains("nothing was done"), "{m}");
            }
            other => panic!("{destroy:?}: should have been refused: {other:?}"),
        }
    }
    // Nothing was done: no namespace, no k10, nothing in the bucket.
    assert!(!t.kubectl(&["get", "namespace", "drill-app"]).0);
    assert!(!t.kubectl(&["get", "namespace", "kasten-io"]).0);
    assert_eq!(t.versions_in_bucket().await, 0);

    // An existing namespace of that name is not the drill's to destroy; a k10 catalog of the
    // user's would be exported and copied; a recovery cluster is checked the same way; and a
    // cluster that cannot be checked is not used.
    let allowed = Some(format!("drill-app/{}", t.bucket));
    let real = |recovery: Option<&std::path::Path>| {
        let mut r = t.real(allowed.as_deref());
        r.recovery_kubeconfig = recovery.map(std::path::Path::to_path_buf);
        Options {
            target: Target::Real(r),
            namespace: "drill-app".into(),
            ..Options::local(1)
        }
    };
    t.kubectl(&["create", "namespace", "drill-app"]);
    refused(&binary, real(None), "namespace \"drill-app\" exists").await;
    let other = real_target().await;
    other.kubectl(&["create", "namespace", "drill-app"]);
    t.kubectl(&["delete", "namespace", "drill-app"]);
    refused(&binary, real(Some(other.server.kubeconfig_path())), "namespace \"drill-app\" exists").await;
    let env = s3::env();
    let k10 = support::cli::K10::new(t.server.kubeconfig_path()).with_env("AWS_ACCESS_KEY_ID", &env.access_key).with_env("AWS_SECRET_ACCESS_KEY", &env.secret_key);
    k10.run(&["install"]).ok();
    k10.run(&["profile", "create", "production", "--bucket", &t.bucket, "--endpoint", &env.endpoint]).ok();
    refused(&binary, real(None), "it holds k10 profiles.config.kio.kasten.io of its own").await;
    let mut unreachable = real(None);
    if let Target::Real(r) = &mut unreachable.target {
        let dead = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(dead.path(), std::fs::read_to_string(t.server.kubeconfig_path()).unwrap().replace(&t.server.url(), "http://127.0.0.1:9")).unwrap();
        r.kubeconfig = Some(dead.into_temp_path().keep().unwrap());
    }
    match drill::run(&binary, &unreachable).await {
        Err(DrillError::Failed(m)) => assert!(m.contains("cannot check"), "{m}"),
        other => panic!("an unreachable cluster should fail the checks: {other:?}"),
    }
    assert_eq!(t.versions_in_bucket().await, 0);
    assert!(t.kubectl(&["get", "profiles.config.kio.kasten.io", "production", "-n", "kasten-io"]).0, "the user's profile is gone");

    // The program: the same refusal, exit code 2, and the store's keys only from the environment.
    let program = binary.parent().unwrap().join("examples/drill");
    let env = s3::env();
    let out = Command::new(&program)
        .args(["--bucket", &t.bucket, "--endpoint", &env.endpoint, "--namespace", "other-app"])
        .arg("--kubeconfig")
        .arg(t.server.kubeconfig_path())
        .env("AWS_ACCESS_KEY_ID", &env.access_key)
        .env("AWS_SECRET_ACCESS_KEY", &env.secret_key)
        .output()
        .expect("run the drill program (cargo test builds the examples)");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains(&format!("pass --destroy other-app/{}", t.bucket)), "{stderr}");
    let out = Command::new(&program)
        .args(["--bucket", &t.bucket, "--destroy", &format!("other-app/{}", t.bucket)])
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("AWS_ACCESS_KEY_ID is not set"), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(t.versions_in_bucket().await, 0);
}
