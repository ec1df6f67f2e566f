//! Immutable location profiles, end to end: the built binary against the API stand-in and SeaweedFS.

mod support;

use aws_sdk_s3::types::ObjectLockRetentionMode::{Compliance, Governance};
use support::apiserver::{ApiServer, ApiServerOptions};
use support::cli::{Run, K10};
use support::s3::{self, Retention, S3Env};

struct Fixture {
    _server: ApiServer,
    /// The binary with the store's credentials in its environment.
    k10: K10,
    /// The binary with no credentials.
    bare: K10,
    kubeconfig: std::path::PathBuf,
    s3: &'static S3Env,
    _dir: tempfile::TempDir,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let server = ApiServer::start_in_background(ApiServerOptions {
        volumes_root: dir.path().join("volumes"),
        ..Default::default()
    });
    let s3 = s3::env();
    let bare = K10::new(server.kubeconfig_path());
    let k10 = bare
        .clone()
        .with_env("AWS_ACCESS_KEY_ID", &s3.access_key)
        .with_env("AWS_SECRET_ACCESS_KEY", &s3.secret_key);
    k10.run(&["install"]).ok();
    Fixture {
        kubeconfig: server.kubeconfig_path().to_path_buf(),
        _server: server,
        k10,
        bare,
        s3,
        _dir: dir,
    }
}

impl Fixture {
    fn create(&self, name: &str, bucket: &str, period: Option<&str>) -> Run {
        let mut args = vec!["profile", "create", name, "--bucket", bucket, "--endpoint", &self.s3.endpoint];
        let flag;
        if let Some(p) = period {
            flag = format!("--protection-period={p}");
            args.extend(["--immutable", &flag]);
        }
        self.k10.run(&args)
    }

    fn validate(&self, bucket: &str) -> Run {
        self.k10
            .run(&["profile", "validate", "--bucket", bucket, "--endpoint", &self.s3.endpoint])
    }

    /// The names of the saved profiles and Secrets in kasten-io, through kubectl.
    fn saved(&self) -> String {
        let out = std::process::Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(["get", "profiles.config.kio.kasten.io,secrets", "-n", "kasten-io", "-o", "name"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    #[track_caller]
    fn assert_nothing_saved(&self) {
        let saved = self.saved();
        assert!(!saved.contains("profile"), "a profile was saved: {saved}");
        assert!(!saved.contains("k10-profile-"), "a Secret was saved: {saved}");
    }
}

async fn locked_bucket(s3: &S3Env, prefix: &str, mode: aws_sdk_s3::types::ObjectLockRetentionMode, r: Retention) -> String {
    let bucket = s3::unique_bucket(prefix);
    s3.create_locked_bucket(&bucket, Some((mode, r))).await;
    bucket
}

#[tokio::test(flavor = "multi_thread")]
async fn each_failed_check_has_its_own_message_and_saves_nothing() {
    let f = fixture();
    let good = locked_bucket(f.s3, "good", Compliance, Retention::Days(60)).await;

    // Unreachable endpoint.
    f.k10
        .run(&["profile", "create", "p", "--bucket", &good, "--endpoint", "http://127.0.0.1:1", "--immutable", "--protection-period", "30d"])
        .fails_with(&["✗ S3-compatible endpoint: cannot connect to http://127.0.0.1:1", "not saved"]);
    // Wrong access key, wrong secret.
    f.bare
        .clone()
        .with_env("AWS_ACCESS_KEY_ID", "NOSUCHKEY")
        .with_env("AWS_SECRET_ACCESS_KEY", &f.s3.secret_key)
        .run(&["profile", "create", "p", "--bucket", &good, "--endpoint", &f.s3.endpoint, "--immutable", "--protection-period", "30d"])
        .fails_with(&["✗ Credentials accepted: the store does not know this access key ID"]);
    f.bare
        .clone()
        .with_env("AWS_ACCESS_KEY_ID", &f.s3.access_key)
        .with_env("AWS_SECRET_ACCESS_KEY", "wrong-secret")
        .run(&["profile", "create", "p", "--bucket", &good, "--endpoint", &f.s3.endpoint, "--immutable", "--protection-period", "30d"])
        .fails_with(&["✗ Credentials accepted: the secret access key does not match"]);
    // No credentials at all.
    f.bare
        .run(&["profile", "create", "p", "--bucket", &good, "--endpoint", &f.s3.endpoint])
        .fails_with(&["no credentials: pass --credentials-secret"]);
    // Missing bucket.
    f.create("p", "no-such-bucket-k10", Some("30d"))
        .fails_with(&["✗ Bucket exists: bucket \"no-such-bucket-k10\" does not exist"]);
    // A bucket without object lock.
    let plain = s3::unique_bucket("plain");
    f.s3.create_plain_bucket(&plain).await;
    f.create("p", &plain, Some("30d")).fails_with(&["✗ Object lock enabled", "has no object lock"]);
    // Object lock without a default retention.
    let no_default = s3::unique_bucket("nodefault");
    f.s3.create_locked_bucket(&no_default, None).await;
    f.create("p", &no_default, Some("30d"))
        .fails_with(&["✗ Default retention configured: the bucket has no default retention"]);
    // GOVERNANCE default mode.
    let governance = locked_bucket(f.s3, "gov", Governance, Retention::Days(60)).await;
    f.create("p", &governance, Some("30d"))
        .fails_with(&["✗ Default retention mode is COMPLIANCE: default retention mode is GOVERNANCE"]);
    // A default retention of 20 days.
    let short = locked_bucket(f.s3, "short", Compliance, Retention::Days(20)).await;
    f.create("p", &short, Some("1d"))
        .fails_with(&["✗ Default retention period at least 21 days: default retention is 20 days; raise it to at least 21 days"]);
    // Protection periods: zero, above the bound, malformed.
    f.create("p", &good, Some("0")).fails_with(&["protection period must be at least 1 day"]);
    f.create("p", &good, Some("41d")).fails_with(&[
        "protection period of 41 days is outside the allowed range 1 to 40 days",
        "raise the bucket's default retention to at least 61 days",
        "not saved",
    ]);
    for bad in ["3 weeks", "-1d", "1.5d"] {
        f.create("p", &good, Some(bad))
            .fails_with(&[&format!("protection period {bad:?} is not a whole number of days")]);
    }
    f.create("p", &good, Some("36h")).fails_with(&["hours must be a multiple of 24"]);
    f.assert_nothing_saved();

    // The pre-flight check alone: the same findings, nothing saved, the slider's bounds on success.
    f.validate(&governance).fails_with(&["default retention mode is GOVERNANCE", "not ready for immutable backups"]);
    let ok = f.validate(&good).ok();
    assert!(ok.stdout.contains("Protection period: choose from 1 to 40 days"), "{}", ok.stdout);
    f.assert_nothing_saved();
}

#[tokio::test(flavor = "multi_thread")]
async fn protection_period_boundaries() {
    let f = fixture();
    let b60 = locked_bucket(f.s3, "b60", Compliance, Retention::Days(60)).await;
    f.create("p60-min", &b60, Some("1")).ok();
    f.create("p60-max", &b60, Some("40d")).ok();
    f.create("p60-over", &b60, Some("41d")).fails_with(&["allowed range 1 to 40 days"]);
    f.create("p60-hours", &b60, Some("960h")).ok();

    let b21 = locked_bucket(f.s3, "b21", Compliance, Retention::Days(21)).await;
    f.create("p21-min", &b21, Some("1d")).ok();
    f.create("p21-over", &b21, Some("2d")).fails_with(&["allowed range 1 to 1 days"]);

    let year = locked_bucket(f.s3, "year", Compliance, Retention::Years(1)).await;
    let v = f.validate(&year).ok();
    assert!(v.stdout.contains("default retention 1 year(s) = 365 days"), "{}", v.stdout);
    assert!(v.stdout.contains("choose from 1 to 345 days"), "{}", v.stdout);
    f.create("pyear-max", &year, Some("345d")).ok();
    f.create("pyear-over", &year, Some("346d")).fails_with(&["allowed range 1 to 345 days"]);

    let list = f.k10.run(&["profile", "list"]).ok().stdout;
    for name in ["p60-min", "p60-max", "p60-hours", "p21-min", "pyear-max"] {
        assert!(list.contains(name), "{name} missing from:\n{list}");
    }
    for name in ["p60-over", "p21-over", "pyear-over"] {
        assert!(!list.contains(name), "{name} was saved:\n{list}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn region_is_checked_where_the_store_reports_it() {
    let f = fixture();
    // SeaweedFS does not report a bucket's region: the check says so and does not fail.
    let bucket = locked_bucket(f.s3, "region", Compliance, Retention::Days(30)).await;
    let out = f.validate(&bucket).ok();
    assert!(
        out.stdout.contains("? Region matches: could not be checked: the store does not report the bucket's region"),
        "{}",
        out.stdout
    );

    // moto's server reports regions: a mismatch is refused with both regions named.
    let moto = f.s3.moto_endpoint.as_deref().expect("the test store starts moto");
    let config = aws_sdk_s3::Config::builder()
        .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
        .region(aws_sdk_s3::config::Region::new("eu-west-1"))
        .endpoint_url(moto)
        .credentials_provider(aws_sdk_s3::config::Credentials::new("moto", "moto", None, None, "test"))
        .force_path_style(true)
        .build();
    let client = aws_sdk_s3::Client::from_conf(config);
    let remote = s3::unique_bucket("eu");
    client
        .create_bucket()
        .bucket(&remote)
        .create_bucket_configuration(
            aws_sdk_s3::types::CreateBucketConfiguration::builder()
                .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::EuWest1)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let moto_k10 = f.bare.clone().with_env("AWS_ACCESS_KEY_ID", "moto").with_env("AWS_SECRET_ACCESS_KEY", "moto");
    moto_k10
        .run(&["profile", "validate", "--bucket", &remote, "--endpoint", moto, "--region", "us-east-1"])
        .fails_with(&[
            "✗ Region matches: the bucket is in region \"eu-west-1\" but the profile says \"us-east-1\"; use --region eu-west-1",
        ]);
    let out = moto_k10.run(&["profile", "validate", "--bucket", &remote, "--endpoint", moto, "--region", "eu-west-1"]);
    assert!(out.stdout.contains("✓ Region matches: the bucket is in eu-west-1"), "{}", out.all());
}

#[tokio::test(flavor = "multi_thread")]
async fn profile_card_list_and_k10_fields() {
    let f = fixture();
    let bucket = locked_bucket(f.s3, "card", Compliance, Retention::Days(60)).await;
    let created = f.create("immutable", &bucket, Some("30d")).ok();
    assert!(created.stdout.contains("Object Immutability enabled, protection period 30 days"), "{}", created.stdout);
    f.create("plain", &bucket, None).ok();
    f.create("immutable", &bucket, Some("30d")).fails_with(&["profile \"immutable\" already exists"]);

    let card = f.k10.run(&["profile", "get", "immutable"]).ok().stdout;
    println!("{card}");
    for line in [
        "Object Immutability:",
        "Protection Period:",
        "Validation:",
        &format!("Bucket:              {bucket}"),
    ] {
        assert!(card.contains(line), "{line:?} missing from:\n{card}");
    }
    assert!(card.lines().any(|l| l.starts_with("Object Immutability:") && l.ends_with(" enabled")), "{card}");
    assert!(card.lines().any(|l| l.starts_with("Protection Period:") && l.ends_with(" 30 days")), "{card}");
    let plain = f.k10.run(&["profile", "get", "plain"]).ok().stdout;
    assert!(plain.lines().any(|l| l.starts_with("Object Immutability:") && l.ends_with(" disabled")), "{plain}");

    let list = f.k10.run(&["profile", "list"]).ok().stdout;
    println!("{list}");
    let header = list.lines().next().unwrap();
    for col in ["NAME", "BUCKET", "REGION", "ENDPOINT", "IMMUTABILITY", "PROTECTION PERIOD", "VALIDATION"] {
        assert!(header.contains(col), "{col} missing from {header}");
    }
    let row = list.lines().find(|l| l.trim_start().starts_with("immutable")).unwrap();
    assert!(row.contains("enabled") && row.contains("30 days") && row.contains("Success"), "{row}");

    // -o json|yaml carry K10's field names.
    let json: serde_json::Value = serde_json::from_str(&f.k10.run(&["profile", "list", "-o", "json"]).ok().stdout).unwrap();
    assert_eq!(json["items"].as_array().unwrap().len(), 2);
    let yaml = f.k10.run(&["profile", "get", "immutable", "-o", "yaml"]).ok().stdout;
    let doc: serde_yaml::Value = serde_yaml::from_str(&yaml).unwrap();
    assert_eq!(doc["spec"]["locationSpec"]["objectStore"]["protectionPeriod"].as_str(), Some("720h"));

    // kubectl reads the saved object with K10's field names.
    let out = std::process::Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(&f.kubeconfig)
        .args(["get", "profiles.config.kio.kasten.io", "immutable", "-n", "kasten-io", "-o", "yaml"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let saved: serde_yaml::Value = serde_yaml::from_slice(&out.stdout).unwrap();
    assert_eq!(saved["apiVersion"].as_str(), Some("config.kio.kasten.io/v1alpha1"));
    assert_eq!(saved["kind"].as_str(), Some("Profile"));
    assert_eq!(saved["spec"]["type"].as_str(), Some("Location"));
    let loc = &saved["spec"]["locationSpec"];
    assert_eq!(loc["type"].as_str(), Some("ObjectStore"));
    assert_eq!(loc["objectStore"]["objectStoreType"].as_str(), Some("S3"));
    assert_eq!(loc["objectStore"]["name"].as_str(), Some(bucket.as_str()));
    assert_eq!(loc["objectStore"]["endpoint"].as_str(), Some(f.s3.endpoint.as_str()));
    assert_eq!(loc["objectStore"]["skipSSLVerify"].as_bool(), Some(false));
    assert_eq!(loc["credential"]["secretType"].as_str(), Some("AwsAccessKey"));
    assert_eq!(loc["credential"]["secret"]["kind"].as_str(), Some("Secret"));
    assert_eq!(saved["status"]["validation"].as_str(), Some("Success"));

    // The credentials Secret has K10's type and keys.
    let secret_name = loc["credential"]["secret"]["name"].as_str().unwrap();
    let out = std::process::Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(&f.kubeconfig)
        .args(["get", "secret", secret_name, "-n", "kasten-io", "-o", "json"])
        .output()
        .unwrap();
    let secret: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(secret["type"].as_str(), Some("secrets.kanister.io/aws"));
    assert!(secret["data"]["aws_access_key_id"].is_string());
    assert!(secret["data"]["aws_secret_access_key"].is_string());

    // Re-validation records its result; delete removes the profile and the Secret it created.
    f.k10.run(&["profile", "validate", "immutable"]).ok();
    f.k10.run(&["profile", "delete", "immutable"]).ok();
    f.k10.run(&["profile", "get", "immutable"]).fails_with(&["profile \"immutable\" not found"]);
    assert!(!f.saved().contains(secret_name), "the credentials Secret was left behind");
}

#[tokio::test(flavor = "multi_thread")]
async fn credentials_from_an_existing_secret_and_never_printed() {
    let f = fixture();
    let bucket = locked_bucket(f.s3, "secret", Compliance, Retention::Days(30)).await;
    let manifest = format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: my-s3, namespace: kasten-io}}\ntype: secrets.kanister.io/aws\n\
         stringData: {{aws_access_key_id: {}, aws_secret_access_key: {}}}\n",
        f.s3.access_key, f.s3.secret_key
    );
    let path = f._dir.path().join("secret.yaml");
    std::fs::write(&path, manifest).unwrap();
    let out = std::process::Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(&f.kubeconfig)
        .arg("apply")
        .arg("-f")
        .arg(&path)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let mut outputs: Vec<Run> = vec![f
        .bare
        .run(&["profile", "create", "fromsecret", "--bucket", &bucket, "--endpoint", &f.s3.endpoint, "--credentials-secret", "my-s3", "--immutable", "--protection-period", "10d"])
        .ok()];
    outputs.push(f.bare.run(&["profile", "get", "fromsecret"]).ok());
    outputs.push(f.bare.run(&["profile", "get", "fromsecret", "-o", "yaml"]).ok());
    outputs.push(f.bare.run(&["profile", "list", "-o", "json"]).ok());
    outputs.push(f.bare.run(&["profile", "validate", "fromsecret"]).ok());
    outputs.push(
        f.bare
            .run(&["profile", "validate", "--bucket", &bucket, "--endpoint", &f.s3.endpoint, "--credentials-secret", "my-s3"])
            .ok(),
    );
    // Failures too, with debug logging on.
    let noisy = f.k10.clone().with_env("K10_LOG", "debug");
    outputs.push(noisy.run(&["profile", "create", "bad", "--bucket", &bucket, "--endpoint", &f.s3.endpoint, "--immutable", "--protection-period", "99d"]));
    outputs.push(
        f.bare
            .clone()
            .with_env("AWS_ACCESS_KEY_ID", &f.s3.access_key)
            .with_env("AWS_SECRET_ACCESS_KEY", "wrong-secret-value-1234")
            .with_env("K10_LOG", "debug")
            .run(&["profile", "validate", "--bucket", &bucket, "--endpoint", &f.s3.endpoint]),
    );
    assert_eq!(outputs.last().unwrap().code, 1);
    for run in &outputs {
        let all = run.all();
        assert!(!all.contains(&f.s3.secret_key), "the secret key was printed:\n{all}");
        assert!(!all.contains("wrong-secret-value-1234"), "a secret was printed:\n{all}");
    }
    // The referenced Secret is the user's: deleting the profile keeps it.
    f.bare.run(&["profile", "delete", "fromsecret"]).ok();
    assert!(f.saved().contains("secret/my-s3"));
    f.bare
        .run(&["profile", "create", "x", "--bucket", &bucket, "--endpoint", &f.s3.endpoint, "--credentials-secret", "nope"])
        .fails_with(&["credentials Secret kasten-io/nope not found"]);
}
