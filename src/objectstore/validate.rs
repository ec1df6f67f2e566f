//! "Validate Bucket": the pre-flight checks an immutable profile must pass, each reported apart
//! with a fix the user can act on.

use aws_sdk_s3::types::{ObjectLockEnabled, ObjectLockRetentionMode};

use super::lock::{allowed_max, retention_days, MIN_DEFAULT_RETENTION_DAYS};
use super::{Failure, ObjectStore};

/// One check's outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Passed,
    Failed,
    /// The store does not report what this check needs.
    Unchecked,
    /// Not run because an earlier check failed.
    NotRun,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub name: &'static str,
    pub outcome: Outcome,
    /// What was found, and on failure what to change.
    pub message: String,
}

/// All checks of one validation, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub checks: Vec<Check>,
    /// The bucket's default retention in days, when it was read.
    pub retention_days: Option<u32>,
}

impl Report {
    /// True when no check failed (an unchecked region does not fail validation).
    pub fn passed(&self) -> bool {
        self.checks
            .iter()
            .all(|c| matches!(c.outcome, Outcome::Passed | Outcome::Unchecked))
    }

    /// The protection periods this bucket allows, in days (the slider's bounds), when valid.
    pub fn allowed_range(&self) -> Option<(u32, u32)> {
        let max = allowed_max(self.retention_days?).ok()?;
        self.passed().then_some((1, max))
    }
}

pub const CHECK_S3: &str = "S3-compatible endpoint";
pub const CHECK_CREDENTIALS: &str = "Credentials accepted";
pub const CHECK_BUCKET: &str = "Bucket exists";
pub const CHECK_REGION: &str = "Region matches";
pub const CHECK_LOCK: &str = "Object lock enabled";
pub const CHECK_DEFAULT: &str = "Default retention configured";
pub const CHECK_MODE: &str = "Default retention mode is COMPLIANCE";
pub const CHECK_PERIOD: &str = "Default retention period at least 21 days";

/// How much to check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Reachability only: endpoint, credentials, bucket, region (a plain profile).
    Reachability,
    /// Everything an immutable profile needs.
    Immutability,
}

struct Checks(Vec<Check>);

impl Checks {
    fn pass(&mut self, name: &'static str, message: impl Into<String>) {
        self.push(name, Outcome::Passed, message);
    }
    fn fail(&mut self, name: &'static str, message: impl Into<String>) {
        self.push(name, Outcome::Failed, message);
    }
    fn push(&mut self, name: &'static str, outcome: Outcome, message: impl Into<String>) {
        self.0.push(Check {
            name,
            outcome,
            message: message.into(),
        });
    }
    /// Marks the remaining checks of the list as not run and ends the report.
    fn finish(mut self, scope: Scope, retention_days: Option<u32>) -> Report {
        let all: &[&'static str] = match scope {
            Scope::Reachability => &[CHECK_S3, CHECK_CREDENTIALS, CHECK_BUCKET, CHECK_REGION],
            Scope::Immutability => &[
                CHECK_S3,
                CHECK_CREDENTIALS,
                CHECK_BUCKET,
                CHECK_REGION,
                CHECK_LOCK,
                CHECK_DEFAULT,
                CHECK_MODE,
                CHECK_PERIOD,
            ],
        };
        for name in &all[self.0.len()..] {
            self.push(name, Outcome::NotRun, "not checked: an earlier check failed");
        }
        Report {
            checks: self.0,
            retention_days,
        }
    }
}

/// Runs the checks of `scope` against the store, in order; stops at the first failure that makes
/// the later checks meaningless.
pub async fn validate(store: &ObjectStore, scope: Scope) -> Report {
    let mut checks = Checks(Vec::new());
    let bucket = store.bucket();
    let endpoint = store.location.endpoint.as_deref().unwrap_or("AWS S3");

    // Endpoint, credentials and bucket: a one-key listing answers all three with a distinct error.
    match store.client.list_objects_v2().bucket(bucket).max_keys(1).send().await {
        Ok(_) => {
            checks.pass(CHECK_S3, format!("{endpoint} answers S3 requests"));
            checks.pass(CHECK_CREDENTIALS, "the access key and secret are accepted");
            checks.pass(CHECK_BUCKET, format!("bucket {bucket:?} exists"));
        }
        Err(err) => {
            let failure = Failure::of(&err);
            match failure {
                Failure::Unreachable(why) if failure.is_untrusted_certificate() => {
                    checks.fail(CHECK_S3, format!("cannot connect to {endpoint}: {why}"))
                }
                Failure::Unreachable(why) => checks.fail(
                    CHECK_S3,
                    format!("cannot connect to {endpoint}: {why}; check the endpoint URL and that the store is running"),
                ),
                Failure::NotS3(why) => checks.fail(
                    CHECK_S3,
                    format!("{endpoint} does not answer like S3 ({why}); point --endpoint at the store's S3 API"),
                ),
                Failure::Service { ref code, .. } => {
                    checks.pass(CHECK_S3, format!("{endpoint} answers S3 requests"));
                    match code.as_str() {
                        "InvalidAccessKeyId" => checks.fail(
                            CHECK_CREDENTIALS,
                            "the store does not know this access key ID; check aws_access_key_id",
                        ),
                        "SignatureDoesNotMatch" => checks.fail(
                            CHECK_CREDENTIALS,
                            "the secret access key does not match the access key ID; check aws_secret_access_key",
                        ),
                        "AccessDenied" | "AllAccessDisabled" => checks.fail(
                            CHECK_CREDENTIALS,
                            format!(
                                "the credentials may not list bucket {bucket:?}; grant s3:ListBucket, \
                                 s3:GetBucketObjectLockConfiguration, s3:GetObject, s3:PutObject, \
                                 s3:PutObjectRetention and s3:ListBucketVersions"
                            ),
                        ),
                        "NoSuchBucket" => {
                            checks.pass(CHECK_CREDENTIALS, "the access key and secret are accepted");
                            checks.fail(
                                CHECK_BUCKET,
                                format!(
                                    "bucket {bucket:?} does not exist; create it with object lock enabled and a \
                                     COMPLIANCE default retention"
                                ),
                            );
                        }
                        _ => checks.fail(CHECK_CREDENTIALS, format!("the store refused to list the bucket: {failure}")),
                    }
                }
            }
            return checks.finish(scope, None);
        }
    }

    // Region: S3 reports the bucket's region on HeadBucket; some compatible stores do not.
    match store.client.head_bucket().bucket(bucket).send().await {
        Ok(head) => match head.bucket_region() {
            Some(actual) if !actual.is_empty() && actual != store.location.region => {
                checks.fail(
                    CHECK_REGION,
                    format!(
                        "the bucket is in region {actual:?} but the profile says {:?}; use --region {actual}",
                        store.location.region
                    ),
                );
                return checks.finish(scope, None);
            }
            Some(actual) if !actual.is_empty() => {
                checks.pass(CHECK_REGION, format!("the bucket is in {actual}"))
            }
            _ => checks.push(
                CHECK_REGION,
                Outcome::Unchecked,
                "could not be checked: the store does not report the bucket's region",
            ),
        },
        Err(err) => {
            checks.fail(CHECK_REGION, format!("cannot read the bucket's region: {}", Failure::of(&err)));
            return checks.finish(scope, None);
        }
    }
    if scope == Scope::Reachability {
        return checks.finish(scope, None);
    }

    let config = match store.client.get_object_lock_configuration().bucket(bucket).send().await {
        Ok(out) => out.object_lock_configuration,
        Err(err) => {
            let failure = Failure::of(&err);
            if failure.code() == Some("ObjectLockConfigurationNotFoundError") {
                checks.fail(
                    CHECK_LOCK,
                    format!(
                        "bucket {bucket:?} has no object lock; use a bucket created with object lock enabled \
                         (versioning on, COMPLIANCE default retention of at least {MIN_DEFAULT_RETENTION_DAYS} days)"
                    ),
                );
            } else {
                checks.fail(CHECK_LOCK, format!("cannot read the object lock configuration: {failure}"));
            }
            return checks.finish(scope, None);
        }
    };
    let enabled = config
        .as_ref()
        .and_then(|c| c.object_lock_enabled())
        .is_some_and(|e| *e == ObjectLockEnabled::Enabled);
    if !enabled {
        checks.fail(
            CHECK_LOCK,
            format!("object lock is not enabled on bucket {bucket:?}; enable it or use a bucket created with object lock"),
        );
        return checks.finish(scope, None);
    }
    checks.pass(CHECK_LOCK, "object lock is enabled");

    let Some(default) = config
        .as_ref()
        .and_then(|c| c.rule())
        .and_then(|r| r.default_retention())
    else {
        checks.fail(
            CHECK_DEFAULT,
            format!(
                "the bucket has no default retention; set one in COMPLIANCE mode of at least \
                 {MIN_DEFAULT_RETENTION_DAYS} days (protection period + 20)"
            ),
        );
        return checks.finish(scope, None);
    };
    let days = retention_days(default.days(), default.years());
    let Some(days) = days else {
        checks.fail(CHECK_DEFAULT, "the default retention states no period; set Days or Years");
        return checks.finish(scope, None);
    };
    let stated = match default.years() {
        Some(y) if default.days().unwrap_or(0) <= 0 => format!("{y} year(s) = {days} days"),
        _ => format!("{days} days"),
    };
    checks.pass(CHECK_DEFAULT, format!("default retention {stated}"));

    match default.mode() {
        Some(ObjectLockRetentionMode::Compliance) => checks.pass(CHECK_MODE, "mode COMPLIANCE"),
        other => {
            let mode = other.map(|m| m.as_str().to_string()).unwrap_or_else(|| "none".into());
            checks.fail(
                CHECK_MODE,
                format!(
                    "default retention mode is {mode}; set it to COMPLIANCE (GOVERNANCE lets privileged users remove locks)"
                ),
            );
            return checks.finish(scope, Some(days));
        }
    }
    if days >= MIN_DEFAULT_RETENTION_DAYS {
        checks.pass(CHECK_PERIOD, format!("{days} days"));
    } else {
        checks.fail(
            CHECK_PERIOD,
            format!(
                "default retention is {days} days; raise it to at least {MIN_DEFAULT_RETENTION_DAYS} days \
                 (the protection period + 20 days)"
            ),
        );
    }
    checks.finish(scope, Some(days))
}
