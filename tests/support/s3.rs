//! The local S3 store for tests: SeaweedFS with real Object Lock, started once per test run by
//! `tests/s3env.sh` (the test runner starts it; a test started alone starts it on first use).
//!
//! Settings come from `K10_TEST_S3_*` variables when set, else from `target/s3env/env`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;

use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_s3::types::{
    DefaultRetention, ObjectLockConfiguration, ObjectLockEnabled, ObjectLockRetentionMode, ObjectLockRule,
};

#[derive(Debug, Clone)]
pub struct S3Env {
    pub endpoint: String,
    pub access_key: String,
    pub secret_key: String,
    pub region: String,
    /// moto's S3 server: reports bucket regions faithfully, but NOT object lock (never test locks on it).
    pub moto_endpoint: Option<String>,
}

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The running store, started on first use if the test runner did not start it.
pub fn env() -> &'static S3Env {
    static ENV: OnceLock<S3Env> = OnceLock::new();
    ENV.get_or_init(|| {
        if let Some(env) = from_vars(|k| std::env::var(k).ok()) {
            return env;
        }
        let file = repo_root().join("target/s3env/env");
        if let Some(env) = read_env_file(&file) {
            return env;
        }
        let status = Command::new("bash")
            .arg(repo_root().join("tests/s3env.sh"))
            .arg("start")
            .status()
            .expect("run tests/s3env.sh");
        assert!(status.success(), "tests/s3env.sh start failed");
        read_env_file(&file).expect("tests/s3env.sh wrote no settings")
    })
}

fn read_env_file(path: &Path) -> Option<S3Env> {
    let text = std::fs::read_to_string(path).ok()?;
    let vars: HashMap<String, String> = text
        .lines()
        .filter_map(|l| l.strip_prefix("export ")?.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    // A stale file from a stopped server is ignored.
    let pid = vars.get("K10_TEST_S3_PID")?;
    if !Path::new(&format!("/proc/{pid}")).exists() {
        return None;
    }
    from_vars(|k| vars.get(k).cloned())
}

fn from_vars(get: impl Fn(&str) -> Option<String>) -> Option<S3Env> {
    Some(S3Env {
        endpoint: get("K10_TEST_S3_ENDPOINT")?,
        access_key: get("K10_TEST_S3_ACCESS_KEY")?,
        secret_key: get("K10_TEST_S3_SECRET_KEY")?,
        region: get("K10_TEST_S3_REGION").unwrap_or_else(|| "us-east-1".into()),
        moto_endpoint: get("K10_TEST_MOTO_ENDPOINT"),
    })
}

/// A bucket name no other test uses (tests share one server).
pub fn unique_bucket(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::SeqCst);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{prefix}-{}-{n}-{nanos:x}", std::process::id())
}

impl S3Env {
    /// k10's storage on `bucket`; writes locked for P + 20 days with a protection period of P days.
    pub fn storage(&self, bucket: &str, protection_days: Option<u32>) -> std::sync::Arc<k10::objectstore::s3::S3Storage> {
        use k10::objectstore::{lock::ProtectionPeriod, s3::S3Storage, Credentials as Keys, Location, ObjectStore};
        let location = Location {
            endpoint: Some(self.endpoint.clone()),
            region: self.region.clone(),
            bucket: bucket.to_string(),
            skip_ssl_verify: false,
        };
        let keys = Keys {
            access_key_id: self.access_key.clone(),
            secret_access_key: self.secret_key.clone(),
        };
        let period = protection_days.map(|d| ProtectionPeriod::from_days(d).unwrap());
        std::sync::Arc::new(S3Storage::new(ObjectStore::connect(&location, &keys).unwrap(), period))
    }

    pub fn client(&self) -> aws_sdk_s3::Client {
        self.client_with(&self.access_key, &self.secret_key)
    }

    /// A client with other credentials (to show the store refuses them).
    pub fn client_with(&self, access_key: &str, secret_key: &str) -> aws_sdk_s3::Client {
        let config = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(self.region.clone()))
            .endpoint_url(&self.endpoint)
            .credentials_provider(Credentials::new(access_key, secret_key, None, None, "test"))
            .force_path_style(true)
            .build();
        aws_sdk_s3::Client::from_conf(config)
    }

    /// Creates a bucket with object lock and, if given, a default retention.
    pub async fn create_locked_bucket(&self, name: &str, default: Option<(ObjectLockRetentionMode, Retention)>) {
        let client = self.client();
        client
            .create_bucket()
            .bucket(name)
            .object_lock_enabled_for_bucket(true)
            .send()
            .await
            .expect("create bucket");
        if let Some((mode, period)) = default {
            let retention = match period {
                Retention::Days(d) => DefaultRetention::builder().mode(mode).days(d),
                Retention::Years(y) => DefaultRetention::builder().mode(mode).years(y),
            };
            client
                .put_object_lock_configuration()
                .bucket(name)
                .object_lock_configuration(
                    ObjectLockConfiguration::builder()
                        .object_lock_enabled(ObjectLockEnabled::Enabled)
                        .rule(ObjectLockRule::builder().default_retention(retention.build()).build())
                        .build(),
                )
                .send()
                .await
                .expect("put object lock configuration");
        }
    }

    /// Creates a bucket without object lock.
    pub async fn create_plain_bucket(&self, name: &str) {
        self.client().create_bucket().bucket(name).send().await.expect("create bucket");
    }
}

#[derive(Debug, Clone, Copy)]
pub enum Retention {
    Days(i32),
    Years(i32),
}
