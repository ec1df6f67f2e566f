//! `kubectl k10 profile …`: location profiles, validated for Object Lock immutability.

use std::collections::BTreeMap;

use anyhow::{bail, Context};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::ByteString;
use kube::api::{Api, DeleteParams, ListParams, ObjectMeta, PostParams};
use tabled::Tabled;

use super::output::{self, Format, OutputArgs};
use super::GlobalArgs;
use crate::api::{
    CredentialSpec, LocationSpec, ObjectReference, ObjectStoreSpec, Profile, ProfileSpec,
    AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SECRET_TYPE, K10_NAMESPACE,
};
use crate::catalog::{self, profiles, validation};
use crate::k8s::Cluster;
use crate::objectstore::lock::ProtectionPeriod;
use crate::objectstore::validate::{self, Outcome, Report, Scope};
use crate::objectstore::{Credentials, Location, ObjectStore};

#[derive(Debug, clap::Subcommand)]
pub enum ProfileCommand {
    /// Check a bucket for immutable backups ("Validate Bucket") without saving anything, or
    /// re-validate a saved profile (NAME) and record the result in its status.
    Validate {
        /// A saved profile to re-validate.
        #[arg(conflicts_with_all = ["bucket", "region", "endpoint", "skip_ssl_verify"], required_unless_present = "bucket")]
        name: Option<String>,
        #[command(flatten)]
        location: LocationArgs,
        /// Read the credentials from this Secret (keys aws_access_key_id, aws_secret_access_key).
        #[arg(long, value_name = "SECRET")]
        credentials_secret: Option<String>,
    },
    /// Create a location profile; with --immutable the bucket must pass every Object Lock check.
    Create {
        name: String,
        #[command(flatten)]
        location: LocationArgs,
        /// Enable immutable backups (requires --protection-period).
        #[arg(long, requires = "protection_period")]
        immutable: bool,
        /// How far back in time restores can go: whole days, as 30d, 30 or 720h.
        #[arg(long, value_name = "PERIOD", requires = "immutable", allow_hyphen_values = true)]
        protection_period: Option<String>,
        /// Use the credentials in this existing Secret instead of AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY.
        #[arg(long, value_name = "SECRET")]
        credentials_secret: Option<String>,
    },
    /// List profiles.
    List {
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Show a profile card.
    Get {
        name: String,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Delete a profile (and the credentials Secret the product created for it).
    Delete { name: String },
}

#[derive(Debug, Clone, clap::Args)]
pub struct LocationArgs {
    /// The bucket.
    #[arg(long, required_unless_present = "name")]
    pub bucket: Option<String>,
    /// The bucket's region.
    #[arg(long, default_value = "us-east-1")]
    pub region: String,
    /// The S3 endpoint of an S3-compatible store (default: AWS S3).
    #[arg(long, value_name = "URL")]
    pub endpoint: Option<String>,
    /// Do not verify the endpoint's TLS certificate.
    #[arg(long)]
    pub skip_ssl_verify: bool,
}

impl LocationArgs {
    fn location(&self) -> Location {
        Location {
            endpoint: self.endpoint.clone(),
            region: self.region.clone(),
            bucket: self.bucket.clone().unwrap_or_default(),
            skip_ssl_verify: self.skip_ssl_verify,
        }
    }
}

/// Connects to the cluster; profiles live in `kasten-io` unless `-n` says otherwise.
async fn connect(global: &GlobalArgs) -> anyhow::Result<Cluster> {
    let mut cluster = global.cluster().connect().await?;
    if !cluster.namespace_given {
        cluster.namespace = K10_NAMESPACE.to_string();
    }
    Ok(cluster)
}

pub async fn run(global: &GlobalArgs, cmd: ProfileCommand) -> anyhow::Result<()> {
    match cmd {
        ProfileCommand::Validate {
            name: Some(name), ..
        } => validate_saved(&connect(global).await?, &name).await,
        ProfileCommand::Validate {
            name: None,
            location,
            credentials_secret,
        } => {
            // A pre-flight check with credentials from the environment needs no cluster.
            let credentials = match credentials_secret {
                Some(secret) => credentials(&connect(global).await?, Some(&secret)).await?,
                None => env_credentials()?,
            };
            let location = location.location();
            let report = check_bucket(&location, &credentials, Scope::Immutability).await?;
            print_report(&location, &report);
            if !report.passed() {
                bail!("bucket {:?} is not ready for immutable backups (see the failed checks above)", location.bucket);
            }
            Ok(())
        }
        ProfileCommand::Create {
            name,
            location,
            immutable,
            protection_period,
            credentials_secret,
        } => {
            let period = match (immutable, protection_period) {
                (true, Some(text)) => Some(ProtectionPeriod::parse(&text)?),
                _ => None,
            };
            let cluster = connect(global).await?;
            create(&cluster, &name, location.location(), period, credentials_secret.as_deref()).await
        }
        ProfileCommand::List { output } => list(&connect(global).await?, output.format).await,
        ProfileCommand::Get { name, output } => get(&connect(global).await?, &name, output.format).await,
        ProfileCommand::Delete { name } => delete(&connect(global).await?, &name).await,
    }
}

/// Connects to the location and runs the checks of `scope`.
async fn check_bucket(location: &Location, credentials: &Credentials, scope: Scope) -> anyhow::Result<Report> {
    let store = ObjectStore::connect(location, credentials)?;
    Ok(validate::validate(&store, scope).await)
}

fn print_report(location: &Location, report: &Report) {
    let endpoint = location.endpoint.as_deref().unwrap_or("AWS S3");
    println!(
        "Validating bucket {:?} at {endpoint} (region {}):",
        location.bucket, location.region
    );
    for check in &report.checks {
        let mark = match check.outcome {
            Outcome::Passed => "✓",
            Outcome::Failed => "✗",
            Outcome::Unchecked => "?",
            Outcome::NotRun => "-",
        };
        println!("  {mark} {}: {}", check.name, check.message);
    }
    if let Some((min, max)) = report.allowed_range() {
        println!("Protection period: choose from {min} to {max} days (the bucket's default retention minus 20 days).");
    }
}

async fn validate_saved(cluster: &Cluster, name: &str) -> anyhow::Result<()> {
    let profile = catalog::get_profile(cluster, name).await?;
    let v = validation::validate_profile(cluster, &profile).await?;
    print_report(&catalog::location_of(&profile), &v.report);
    if let Some(problem) = &v.period_problem {
        println!("  ✗ Protection period: {problem}");
    }
    validation::save_profile_status(cluster, name, &v.status(profile.metadata.generation)).await?;
    if !v.passed() {
        bail!("profile {name:?} failed validation (status updated; see the failed checks above)");
    }
    println!("profile {name:?} is valid");
    Ok(())
}

async fn create(
    cluster: &Cluster,
    name: &str,
    location: Location,
    period: Option<ProtectionPeriod>,
    credentials_secret: Option<&str>,
) -> anyhow::Result<()> {
    check_name(name)?;
    let api = profiles(cluster);
    match api.get_opt(name).await {
        Ok(Some(_)) => bail!(
            "profile {name:?} already exists in namespace {}; delete it first or choose another name",
            cluster.namespace
        ),
        Ok(None) => {}
        Err(e) => return Err(catalog::not_installed(cluster.err(e, "read profiles"), "Profile").into()),
    }
    let credentials = credentials(cluster, credentials_secret).await?;
    let scope = if period.is_some() {
        Scope::Immutability
    } else {
        Scope::Reachability
    };
    let report = check_bucket(&location, &credentials, scope).await?;
    print_report(&location, &report);
    if !report.passed() {
        bail!("profile {name:?} not saved: bucket validation failed (see the failed checks above)");
    }
    if let (Some(period), Some(days)) = (period, report.retention_days) {
        period
            .check_against(days)
            .with_context(|| format!("profile {name:?} not saved"))?;
    }

    // The credentials Secret first (unless the user's own is referenced), then the profile.
    let secret_name = match credentials_secret {
        Some(existing) => existing.to_string(),
        None => {
            let secret_name = format!("k10-profile-{name}-credentials");
            create_secret(cluster, &secret_name, &credentials).await?;
            secret_name
        }
    };
    let profile = Profile::new(
        name,
        ProfileSpec {
            type_: "Location".into(),
            location_spec: LocationSpec {
                type_: "ObjectStore".into(),
                object_store: ObjectStoreSpec {
                    object_store_type: "S3".into(),
                    name: location.bucket.clone(),
                    region: location.region.clone(),
                    endpoint: location.endpoint.clone(),
                    skip_ssl_verify: location.skip_ssl_verify,
                    protection_period: period.map(ProtectionPeriod::to_duration_string),
                    other: Default::default(),
                },
                credential: CredentialSpec {
                    secret_type: "AwsAccessKey".into(),
                    secret: ObjectReference {
                        api_version: "v1".into(),
                        kind: "Secret".into(),
                        name: secret_name.clone(),
                        namespace: cluster.namespace.clone(),
                    },
                    other: Default::default(),
                },
                other: Default::default(),
            },
            other: Default::default(),
        },
    );
    if let Err(e) = api.create(&PostParams::default(), &profile).await {
        if credentials_secret.is_none() {
            // Leave nothing half-written.
            let _ = secrets(cluster).delete(&secret_name, &DeleteParams::default()).await;
        }
        return Err(cluster.err(e, format!("create profile {name:?}")).into());
    }
    let made = api.get(name).await.map_err(|e| cluster.err(e, format!("read profile {name:?}")))?;
    let v = validation::ProfileValidation { report, period_problem: None };
    validation::save_profile_status(cluster, name, &v.status(made.metadata.generation)).await?;
    match period {
        Some(period) => println!("profile {name:?} created: Object Immutability enabled, protection period {period}"),
        None => println!("profile {name:?} created (Object Immutability disabled)"),
    }
    Ok(())
}

#[derive(Tabled)]
struct Row {
    #[tabled(rename = "NAME")]
    name: String,
    #[tabled(rename = "BUCKET")]
    bucket: String,
    #[tabled(rename = "REGION")]
    region: String,
    #[tabled(rename = "ENDPOINT")]
    endpoint: String,
    #[tabled(rename = "IMMUTABILITY")]
    immutability: String,
    #[tabled(rename = "PROTECTION PERIOD")]
    period: String,
    #[tabled(rename = "VALIDATION")]
    validation: String,
}

async fn list(cluster: &Cluster, format: Format) -> anyhow::Result<()> {
    let api = profiles(cluster);
    let mut items = api
        .list(&ListParams::default())
        .await
        .map_err(|e| catalog::not_installed(cluster.err(e, "list profiles"), "Profile"))?
        .items;
    items.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    if output::print_structured(format, &output::list_of(&items))? {
        return Ok(());
    }
    let rows = items
        .iter()
        .map(|p| {
            let os = p.object_store();
            Ok(Row {
                name: p.metadata.name.clone().unwrap_or_default(),
                bucket: os.name.clone(),
                region: os.region.clone(),
                endpoint: os.endpoint.clone().unwrap_or_else(|| "-".into()),
                immutability: if os.protection_period.is_some() { "enabled" } else { "disabled" }.into(),
                period: catalog::period_of(p)?.map(|p| p.to_string()).unwrap_or_else(|| "-".into()),
                validation: validation_of(p),
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    output::print_table(rows, &format!("No profiles found in namespace {}.", cluster.namespace));
    Ok(())
}

async fn get(cluster: &Cluster, name: &str, format: Format) -> anyhow::Result<()> {
    let profile = catalog::get_profile(cluster, name).await?;
    if output::print_structured(format, &profile)? {
        return Ok(());
    }
    let os = profile.object_store();
    let cred = &profile.spec.location_spec.credential;
    let mut fields = vec![
        ("Name", name.to_string()),
        ("Namespace", cluster.namespace.clone()),
        ("Type", format!("{} ({} {})", profile.spec.type_, profile.spec.location_spec.type_, os.object_store_type)),
        ("Bucket", os.name.clone()),
        ("Region", os.region.clone()),
        ("Endpoint", os.endpoint.clone().unwrap_or_else(|| "AWS S3".into())),
        ("Skip SSL Verify", os.skip_ssl_verify.to_string()),
        ("Credentials", format!("Secret {}/{} ({})", cred.secret.namespace, cred.secret.name, cred.secret_type)),
    ];
    match catalog::period_of(&profile)? {
        Some(period) => {
            fields.push(("Object Immutability", "enabled".into()));
            fields.push(("Protection Period", period.to_string()));
        }
        None => fields.push(("Object Immutability", "disabled".into())),
    }
    let status = profile.status.clone().unwrap_or_default();
    let when = status.validated_at.map(|t| format!(" ({t})")).unwrap_or_default();
    fields.push(("Validation", format!("{}{when}", validation_of(&profile))));
    output::print_card(&fields);
    for check in &status.checks {
        println!("  {} {}: {}", check.result, check.name, check.message);
    }
    Ok(())
}

async fn delete(cluster: &Cluster, name: &str) -> anyhow::Result<()> {
    let api = profiles(cluster);
    let profile = catalog::get_profile(cluster, name).await?;
    api.delete(name, &DeleteParams::default())
        .await
        .map_err(|e| cluster.err(e, format!("delete profile {name:?}")))?;
    let secret = &profile.spec.location_spec.credential.secret.name;
    if *secret == format!("k10-profile-{name}-credentials") {
        match secrets(cluster).delete(secret, &DeleteParams::default()).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => return Err(cluster.err(e, format!("delete Secret {secret:?}")).into()),
        }
    }
    println!("profile {name:?} deleted");
    Ok(())
}

fn secrets(cluster: &Cluster) -> Api<Secret> {
    Api::namespaced(cluster.client.clone(), &cluster.namespace)
}

fn validation_of(profile: &Profile) -> String {
    profile
        .status
        .as_ref()
        .and_then(|s| s.validation.clone())
        .unwrap_or_else(|| "Unknown".into())
}

/// Credentials from a named Secret, or else from the environment.
async fn credentials(cluster: &Cluster, secret: Option<&str>) -> anyhow::Result<Credentials> {
    match secret {
        Some(name) => Ok(catalog::read_credentials(cluster, &cluster.namespace, name).await?),
        None => env_credentials(),
    }
}

fn env_credentials() -> anyhow::Result<Credentials> {
    match (std::env::var("AWS_ACCESS_KEY_ID"), std::env::var("AWS_SECRET_ACCESS_KEY")) {
        (Ok(id), Ok(key)) if !id.is_empty() && !key.is_empty() => Ok(Credentials {
            access_key_id: id,
            secret_access_key: key,
        }),
        _ => bail!(
            "no credentials: pass --credentials-secret NAME (a Secret with keys {AWS_ACCESS_KEY_ID} and \
             {AWS_SECRET_ACCESS_KEY}) or set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in the environment"
        ),
    }
}

async fn create_secret(cluster: &Cluster, name: &str, credentials: &Credentials) -> anyhow::Result<()> {
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some(cluster.namespace.clone()),
            labels: Some(crate::k8s::managed_by()),
            ..Default::default()
        },
        type_: Some(AWS_SECRET_TYPE.into()),
        data: Some(BTreeMap::from([
            (AWS_ACCESS_KEY_ID.into(), ByteString(credentials.access_key_id.clone().into_bytes())),
            (AWS_SECRET_ACCESS_KEY.into(), ByteString(credentials.secret_access_key.clone().into_bytes())),
        ])),
        ..Default::default()
    };
    secrets(cluster)
        .create(&PostParams::default(), &secret)
        .await
        .map_err(|e| cluster.err(e, format!("create credentials Secret {name:?}")))?;
    Ok(())
}

/// Kubernetes object names: lowercase alphanumerics and '-', starting and ending alphanumeric.
fn check_name(name: &str) -> anyhow::Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if !ok {
        bail!("invalid profile name {name:?}: use up to 63 lowercase letters, digits and '-', starting and ending with a letter or digit");
    }
    Ok(())
}
