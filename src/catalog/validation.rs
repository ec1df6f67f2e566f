//! Validation of the catalog's objects, shared by the plugin (`profile validate`, `policy create`)
//! and the controller (which records it in each object's status).

use kube::api::{Api, Patch, PatchParams};

use super::{location_of, period_of, profile_credentials, Result};
use crate::api::{Policy, Profile, ProfileStatus, ValidationCheck, K10_NAMESPACE};
use crate::k8s::Cluster;
use crate::objectstore::validate::{self, Outcome, Report, Scope};
use crate::objectstore::ObjectStore;
use crate::schedule::Frequency;

/// Set to `"true"` on a policy that must only ever export to an immutable profile.
pub const REQUIRE_IMMUTABLE_ANNOTATION: &str = "k10.kasten.io/require-immutable";

/// `status.validation` values.
pub const VALID: &str = "Success";
pub const INVALID: &str = "Failed";

/// A profile's bucket checks, and whether its protection period fits the bucket.
#[derive(Debug, Clone)]
pub struct ProfileValidation {
    pub report: Report,
    /// Why the protection period does not fit the bucket's default retention.
    pub period_problem: Option<String>,
}

impl ProfileValidation {
    pub fn passed(&self) -> bool {
        self.report.passed() && self.period_problem.is_none()
    }

    /// The status that records it.
    pub fn status(&self, generation: Option<i64>) -> ProfileStatus {
        let mut checks: Vec<ValidationCheck> = self
            .report
            .checks
            .iter()
            .map(|c| ValidationCheck {
                name: c.name.into(),
                result: match c.outcome {
                    Outcome::Passed => "Passed",
                    Outcome::Failed => "Failed",
                    Outcome::Unchecked => "Unchecked",
                    Outcome::NotRun => "NotRun",
                }
                .into(),
                message: c.message.clone(),
            })
            .collect();
        if let Some(problem) = &self.period_problem {
            checks.push(ValidationCheck {
                name: "Protection period".into(),
                result: "Failed".into(),
                message: problem.clone(),
            });
        }
        ProfileStatus {
            validation: Some(if self.passed() { VALID } else { INVALID }.into()),
            validated_at: Some(chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
            observed_generation: generation,
            checks,
        }
    }
}

/// Runs the pre-flight checks of a saved profile against its bucket (immutability checks when
/// it has a protection period).
pub async fn validate_profile(cluster: &Cluster, profile: &Profile) -> Result<ProfileValidation> {
    let credentials = profile_credentials(cluster, profile).await?;
    let scope = if profile.object_store().protection_period.is_some() {
        Scope::Immutability
    } else {
        Scope::Reachability
    };
    let store = ObjectStore::connect(&location_of(profile), &credentials)?;
    let report = validate::validate(&store, scope).await;
    let period_problem = period_of(profile)?
        .zip(report.retention_days)
        .and_then(|(period, days)| period.check_against(days).err())
        .map(|e| e.to_string());
    Ok(ProfileValidation { report, period_problem })
}

/// Records a validation in the profile's status.
pub async fn save_profile_status(cluster: &Cluster, name: &str, status: &ProfileStatus) -> Result<()> {
    let api: Api<Profile> = Api::namespaced(cluster.client.clone(), K10_NAMESPACE);
    let patch = serde_json::json!({ "status": status });
    api.patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map_err(|e| cluster.err(e, format!("update the status of profile {name:?}")))?;
    Ok(())
}

/// What is wrong with a policy's spec, what of it is ignored, and its schedule.
#[derive(Debug, Clone)]
pub struct PolicyValidation {
    pub errors: Vec<String>,
    pub ignored: Vec<String>,
    /// The parsed schedule, when `frequency` and `subFrequency` are valid.
    pub frequency: Option<Frequency>,
}

impl PolicyValidation {
    pub fn passed(&self) -> bool {
        self.errors.is_empty()
    }
}

/// Checks a policy against the profiles that exist: frequency and subFrequency, selector,
/// retention, an export action naming an existing profile in kasten-io (immutable where the
/// policy requires it).
pub fn validate_policy(policy: &Policy, profiles: &[Profile]) -> PolicyValidation {
    let spec = &policy.spec;
    let mut errors = Vec::new();
    let frequency = match Frequency::parse(&spec.frequency, spec.sub_frequency.as_ref()) {
        Ok(f) => Some(f),
        Err(e) => {
            errors.push(e.to_string());
            None
        }
    };
    for e in &spec.selector.match_expressions {
        match e.operator.as_str() {
            "In" | "NotIn" if e.values.is_empty() => errors.push(format!("selector: {} {} needs at least one value", e.key, e.operator)),
            "Exists" | "DoesNotExist" if !e.values.is_empty() => errors.push(format!("selector: {} {} takes no values", e.key, e.operator)),
            "In" | "NotIn" | "Exists" | "DoesNotExist" => {}
            other => errors.push(format!("selector: unknown operator {other:?} (use In, NotIn, Exists or DoesNotExist)")),
        }
    }
    let r = &spec.retention;
    for (name, count) in [("hourly", r.hourly), ("daily", r.daily), ("weekly", r.weekly), ("monthly", r.monthly), ("yearly", r.yearly)] {
        if count == Some(0) {
            errors.push(format!("retention: {name} must be at least 1 (0 would retire every new restore point)"));
        }
    }
    if let Err(e) = crate::backup::signals::Thresholds::of(policy) {
        errors.push(e);
    }
    if let Err(e) = crate::backup::mover_memory_limit(policy) {
        errors.push(e);
    }
    match policy.export_profile() {
        None => errors.push("actions: no export action names a profile: restore points need a location".into()),
        Some(p) if p.namespace != K10_NAMESPACE => errors.push(format!("actions: profile {}/{} is outside {K10_NAMESPACE}", p.namespace, p.name)),
        Some(p) => match profiles.iter().find(|x| x.metadata.name.as_deref() == Some(p.name.as_str())) {
            None => errors.push(format!("actions: profile {:?} not found in {K10_NAMESPACE}", p.name)),
            Some(profile) => {
                let required = policy.metadata.annotations.as_ref().and_then(|a| a.get(REQUIRE_IMMUTABLE_ANNOTATION)).is_some_and(|v| v == "true");
                match period_of(profile) {
                    Err(e) => errors.push(format!("actions: {e}")),
                    Ok(None) if required => errors.push(format!("actions: profile {:?} is not immutable, and the policy requires it ({REQUIRE_IMMUTABLE_ANNOTATION})", p.name)),
                    Ok(_) => {}
                }
            }
        },
    }
    if spec.selector.match_labels.is_empty() && spec.selector.match_expressions.is_empty() && policy.metadata.name.as_deref() != Some(crate::dr::DR_POLICY) {
        errors.push("selector: empty; name the namespaces (matchExpressions on k10.kasten.io/appNamespace) or their labels".into());
    }
    PolicyValidation {
        errors,
        ignored: policy.ignored_fields(),
        frequency,
    }
}
