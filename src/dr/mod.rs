//! Disaster recovery of the catalog: every Profile, Policy and restore point, with the profile
//! credentials and repository passwords, exported as one snapshot of the catalog repository
//! (`k10/<clusterID>/catalog/`), encrypted under a key derived from the DR passphrase (the
//! passphrase itself is never stored in the bucket); and the restore of that catalog as of a point
//! in time, into a new installation.

pub mod incident;

use bytes::Bytes;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::{Api, ListParams, ObjectMeta, PostParams};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::api::{Policy, Profile, RestorePoint, RestorePointContent, K10_NAMESPACE};
use crate::backup::BackupError;
use crate::catalog::{self, CatalogError};
use crate::k8s::{Cluster, K8sError};
use crate::objectstore::storage::{StorageError, Time, VersionedStorage};
use crate::repo::{layout, ReadOnly, Repo, RepoError};

pub const DR_POLICY: &str = "k10-disaster-recovery-policy";
pub const DEFAULT_PASSPHRASE_SECRET: &str = "k10-dr-secret";
/// The annotation of the DR policy naming its passphrase Secret.
pub const PASSPHRASE_ANNOTATION: &str = "k10.kasten.io/dr-passphrase-secret";
const DR_TAG: &str = "kind=dr";

#[derive(Debug, thiserror::Error)]
pub enum DrError {
    #[error("the DR passphrase Secret {K10_NAMESPACE}/{0} with key `key` is missing; create it with `kubectl create secret generic {0} -n {K10_NAMESPACE} --from-literal key=<passphrase>` and keep the passphrase safe outside the cluster")]
    NoPassphrase(String),
    #[error("disaster recovery is not enabled: run `kubectl k10 dr enable --profile <immutable profile>`")]
    NotEnabled,
    #[error("no catalog of cluster {id:?} in the bucket; cluster IDs found: {}", if .found.is_empty() { "none".to_string() } else { .found.join(", ") })]
    UnknownCluster { id: String, found: Vec<String> },
    #[error("no DR snapshot at or before {at}; the earliest available is from {earliest}")]
    NothingBefore { at: String, earliest: String },
    #[error("point in time {at} is older than the protection period allows ({days} days: the earliest is {earliest}); choose a later time")]
    TooOld { at: String, days: u32, earliest: String },
    #[error("wrong DR passphrase for the catalog of cluster {0:?}: use the passphrase the source cluster's DR policy used")]
    WrongPassphrase(String),
    #[error("the catalog snapshot is unreadable: {0}")]
    Unreadable(String),
    #[error("the catalog as of {at} is gone: it cannot be read ({cause}); it was destroyed or overwritten at or before that time, as in an attack. Choose an earlier point in time, before the attack{hint}")]
    GoneAt { at: String, cause: String, hint: String },
    #[error("the DR passphrase Secret {K10_NAMESPACE}/{0} with key `key` is missing on this installation: recovery needs the passphrase the source cluster's DR policy used; create it with `kubectl create secret generic {0} -n {K10_NAMESPACE} --from-literal key=<that passphrase>` and run the restore again")]
    NoPassphraseToRestore(String),
    #[error("the DR passphrase in Secret {K10_NAMESPACE}/{secret} is too weak: {why}. The catalog's key file is in the bucket, so whoever reads the bucket can guess the passphrase offline, and it opens every profile key and repository password: use at least {MIN_PASSPHRASE_CHARS} characters and about {MIN_PASSPHRASE_BITS} bits (five random words, or 16 random characters of mixed kinds), then update the Secret")]
    WeakPassphrase { secret: String, why: String },
    #[error("no profile named: give the profile of this installation on the bucket with --profile (there is no DR policy to take it from)")]
    NoProfileForIncident,
    #[error("disaster recovery is already enabled (policy {DR_POLICY}); delete it with `kubectl k10 policy delete {DR_POLICY}` to change it")]
    AlreadyEnabled,
    #[error(transparent)]
    Schedule(#[from] crate::schedule::ScheduleError),
    #[error(transparent)]
    Repo(#[from] RepoError),
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error(transparent)]
    K8s(#[from] K8sError),
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Backup(#[from] BackupError),
}

pub type Result<T, E = DrError> = std::result::Result<T, E>;

/// Enables DR: checks the frequency, the passphrase (present and strong) and the profile, then
/// creates the DR policy, which exports the catalog to `profile` at `frequency`.
pub async fn enable(cluster: &Cluster, profile: &str, frequency: &str, passphrase_secret: &str) -> Result<Policy> {
    crate::schedule::Frequency::parse(frequency, None)?;
    check_passphrase(passphrase_secret, &passphrase(cluster, passphrase_secret).await?)?;
    catalog::get_profile(cluster, profile).await?;
    let export = crate::api::ExportParameters {
        frequency: frequency.into(),
        profile: crate::api::NamespacedName {
            name: profile.into(),
            namespace: K10_NAMESPACE.into(),
        },
        export_data: Default::default(),
        other: Default::default(),
    };
    let mut policy = Policy::new(
        DR_POLICY,
        crate::api::PolicySpec {
            comment: Some("k10 disaster recovery: the catalog, encrypted under the DR passphrase".into()),
            frequency: frequency.into(),
            sub_frequency: None,
            paused: false,
            retention: Default::default(),
            selector: Default::default(),
            actions: vec![catalog::policies::action("backup", Some(export))],
            other: Default::default(),
        },
    );
    policy.metadata.namespace = Some(K10_NAMESPACE.into());
    policy.metadata.annotations = Some([(PASSPHRASE_ANNOTATION.to_string(), passphrase_secret.to_string())].into());
    let api: Api<Policy> = Api::namespaced(cluster.client.clone(), K10_NAMESPACE);
    match api.create(&kube::api::PostParams::default(), &policy).await {
        Ok(made) => Ok(made),
        Err(kube::Error::Api(s)) if s.code == 409 => Err(DrError::AlreadyEnabled),
        Err(e) => Err(cluster.err(e, "create the DR policy").into()),
    }
}

/// The shortest DR passphrase `dr enable` accepts.
pub const MIN_PASSPHRASE_CHARS: usize = 16;
/// The least estimated strength (bits) of a DR passphrase `dr enable` accepts.
pub const MIN_PASSPHRASE_BITS: u32 = 80;

/// An estimate of a passphrase's strength in bits, for refusing weak ones (not a proof of
/// strength): its characters, each drawn from the kinds it uses (lower and upper case letters,
/// digits, other ASCII, anything else), where only the first character and each new pair of
/// neighbours count, so that repeating a word or a pattern adds nothing.
pub fn passphrase_bits(passphrase: &str) -> u32 {
    let chars: Vec<char> = passphrase.chars().collect();
    type Kind = (fn(&char) -> bool, u32);
    let kinds: [Kind; 5] = [
        (char::is_ascii_lowercase, 26),
        (char::is_ascii_uppercase, 26),
        (char::is_ascii_digit, 10),
        (|c| c.is_ascii() && !c.is_ascii_alphanumeric(), 33),
        (|c| !c.is_ascii(), 100),
    ];
    let pool: u32 = kinds.iter().filter(|(is, _)| chars.iter().any(is)).map(|(_, size)| size).sum();
    let pairs: std::collections::HashSet<&[char]> = chars.windows(2).collect();
    let counted = if chars.is_empty() { 0 } else { 1 + pairs.len() };
    (counted as f64 * f64::from(pool.max(1)).log2()) as u32
}

/// Refuses a DR passphrase too weak to stand an offline guess against the bucket's key file.
pub fn check_passphrase(secret: &str, passphrase: &str) -> Result<()> {
    let length = passphrase.chars().count();
    let bits = passphrase_bits(passphrase);
    let why = if length < MIN_PASSPHRASE_CHARS {
        format!("it has {length} characters")
    } else if bits < MIN_PASSPHRASE_BITS {
        format!("it is estimated at {bits} bits (too few kinds of characters, or a pattern repeated)")
    } else {
        return Ok(());
    };
    Err(DrError::WeakPassphrase { secret: secret.to_string(), why })
}

/// Reads the DR passphrase (key `key` of a Secret in kasten-io).
pub async fn passphrase(cluster: &Cluster, secret: &str) -> Result<String> {
    let api: Api<Secret> = Api::namespaced(cluster.client.clone(), K10_NAMESPACE);
    let s = api
        .get_opt(secret)
        .await
        .map_err(|e| cluster.err(e, format!("read Secret {K10_NAMESPACE}/{secret}")))?
        .ok_or_else(|| DrError::NoPassphrase(secret.to_string()))?;
    s.data
        .and_then(|d| d.get("key").map(|b| String::from_utf8_lossy(&b.0).into_owned()))
        .filter(|k| !k.is_empty())
        .ok_or_else(|| DrError::NoPassphrase(secret.to_string()))
}

fn strip(value: &mut serde_json::Value) {
    if let Some(meta) = value.get_mut("metadata").and_then(|m| m.as_object_mut()) {
        for f in crate::restore::strip::SERVER_METADATA {
            meta.remove(*f);
        }
    }
}

fn document<T: Serialize>(path: String, obj: &T) -> (String, Bytes) {
    let mut v = serde_json::to_value(obj).expect("objects serialize");
    strip(&mut v);
    (path, Bytes::from(serde_json::to_vec_pretty(&v).expect("json")))
}

/// What a DR run wrote.
#[derive(Debug, Clone)]
pub struct DrRun {
    pub snapshot: String,
    pub stored_at: Time,
    pub profiles: usize,
    pub policies: usize,
    pub restore_points: usize,
    pub secrets: usize,
    /// How the catalog repository was found (created by this run, or by a run it waited for).
    pub opened: crate::backup::Opened,
}

/// Exports the catalog through the DR policy's profile.
pub async fn run(cluster: &Cluster) -> Result<DrRun> {
    let mut k10 = cluster.clone();
    k10.namespace = K10_NAMESPACE.into();
    let policies: Api<Policy> = Api::namespaced(cluster.client.clone(), K10_NAMESPACE);
    let policy = policies
        .get_opt(DR_POLICY)
        .await
        .map_err(|e| catalog::not_installed(cluster.err(e, "read the DR policy"), "Policy"))?
        .ok_or(DrError::NotEnabled)?;
    let secret_name = policy
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(PASSPHRASE_ANNOTATION).cloned())
        .unwrap_or_else(|| DEFAULT_PASSPHRASE_SECRET.into());
    let passphrase = passphrase(cluster, &secret_name).await?;
    let profile_ref = policy.export_profile().ok_or(DrError::NotEnabled)?;
    let profile = catalog::get_profile(&k10, &profile_ref.name).await?;
    let storage = catalog::profile_storage(cluster, &profile).await?;
    let cluster_id = catalog::cluster_id(cluster).await?;
    let prefix = layout::catalog_repository(&cluster_id);

    let mut documents = Vec::new();
    let all_profiles: Vec<Profile> = list(cluster, Api::namespaced(cluster.client.clone(), K10_NAMESPACE)).await?;
    let all_policies: Vec<Policy> = list(cluster, Api::namespaced(cluster.client.clone(), K10_NAMESPACE)).await?;
    let contents: Vec<RestorePointContent> = list(cluster, Api::all(cluster.client.clone())).await?;
    let points: Vec<RestorePoint> = list(cluster, Api::all(cluster.client.clone())).await?;
    // The Secrets the catalog needs: profile credentials and repository passwords.
    let mut secret_refs: Vec<(String, String)> = all_profiles
        .iter()
        .map(|p| {
            let r = &p.spec.location_spec.credential.secret;
            (r.namespace.clone(), r.name.clone())
        })
        .collect();
    secret_refs.extend(contents.iter().map(|c| (K10_NAMESPACE.to_string(), c.spec.password_secret.clone())));
    secret_refs.sort();
    secret_refs.dedup();
    let mut secret_count = 0;
    for (namespace, name) in &secret_refs {
        let secrets: Api<Secret> = Api::namespaced(cluster.client.clone(), namespace);
        match secrets.get_opt(name).await.map_err(|e| cluster.err(e, format!("read Secret {namespace}/{name}")))? {
            Some(s) => {
                documents.push(document(format!("secrets/{name}.json"), &s));
                secret_count += 1;
            }
            // The catalog would be restored without what it needs to read the backups.
            None => return Err(K8sError::NotFound { what: format!("Secret {namespace}/{name}, which the catalog needs") }.into()),
        }
    }
    for p in &all_profiles {
        documents.push(document(format!("profiles/{}.json", p.metadata.name.clone().unwrap_or_default()), p));
    }
    for p in &all_policies {
        documents.push(document(format!("policies/{}.json", p.metadata.name.clone().unwrap_or_default()), p));
    }
    for c in &contents {
        documents.push(document(format!("restorepointcontents/{}.json", c.metadata.name.clone().unwrap_or_default()), c));
    }
    for rp in &points {
        let ns = rp.metadata.namespace.clone().unwrap_or_default();
        documents.push(document(format!("restorepoints/{ns}/{}.json", rp.metadata.name.clone().unwrap_or_default()), rp));
    }
    let index = serde_json::json!({"clusterID": cluster_id, "drProfile": profile_ref.name});
    documents.push(("index.json".into(), Bytes::from(index.to_string())));

    let store: std::sync::Arc<dyn VersionedStorage> = storage.clone();
    let (repo, opened) = match crate::backup::open_or_create(cluster, store, &prefix, &passphrase).await {
        Ok(opened) => opened,
        Err(BackupError::Repo(RepoError::WrongPassword { .. })) => return Err(DrError::WrongPassphrase(cluster_id)),
        Err(e) => return Err(e.into()),
    };
    let snap = repo.backup_documents(documents, &[DR_TAG.into()]).await?;
    let stored_at = repo.stored_at(&snap.id).await?;
    Ok(DrRun {
        snapshot: snap.id,
        stored_at,
        profiles: all_profiles.len(),
        policies: all_policies.len(),
        restore_points: contents.len(),
        secrets: secret_count,
        opened,
    })
}

async fn list<K>(cluster: &Cluster, api: Api<K>) -> Result<Vec<K>>
where
    K: kube::Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug,
{
    let kind = K::kind(&()).to_string();
    Ok(api
        .list(&ListParams::default())
        .await
        .map_err(|e| catalog::not_installed(cluster.err(e, format!("list {kind}s")), "catalog"))?
        .items)
}

/// The store times of the catalog's DR snapshots (every one ever written, retired or not).
pub async fn snapshot_times(storage: &dyn VersionedStorage, cluster_id: &str) -> Result<Vec<Time>> {
    let prefix = format!("{}snapshots/", layout::catalog_repository(cluster_id));
    let mut times: Vec<Time> = storage
        .list_versions(&prefix)
        .await?
        .into_iter()
        .filter(|v| !v.delete_marker && !v.multipart)
        .map(|v| v.last_modified)
        .collect();
    times.sort();
    times.dedup();
    Ok(times)
}

#[derive(Debug, Clone, Default)]
pub struct RestoreOptions {
    pub source_cluster_id: String,
    pub profile: String,
    pub point_in_time: Option<Time>,
    /// Any of `profiles`, `policies`, `secrets`.
    pub skip: Vec<String>,
    pub passphrase_secret: String,
}

/// What a DR restore recreated (or found already there).
#[derive(Debug, Clone, Default)]
pub struct RestoreReport {
    pub snapshot_time: String,
    pub created: Vec<String>,
    pub skipped: Vec<String>,
    /// What the user should know about the catalog brought back (e.g. it holds no restore points).
    pub warnings: Vec<String>,
}

/// An RFC 3339 store time with all its precision (what `--point-in-time` takes): passed back,
/// it includes the DR snapshot stored at that time.
pub fn rfc3339(t: Time) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

/// The catalog repository as of `at` and its newest DR snapshot, with that snapshot's documents.
async fn open_catalog(
    storage: &std::sync::Arc<crate::objectstore::s3::S3Storage>,
    prefix: &str,
    at: Time,
    passphrase: &str,
) -> Result<Catalog> {
    let repo = Repo::<ReadOnly>::open_at(storage.clone(), prefix, at, passphrase).await?;
    // The newest by the store's clock: a snapshot's own time is the writer's word.
    let mut newest = None;
    for snap in repo.snapshots().await?.into_iter().filter(|s| s.tags.iter().any(|t| t == DR_TAG)) {
        let stored = repo.stored_at(&snap.id).await?;
        if newest.as_ref().is_none_or(|(t, _)| stored >= *t) {
            newest = Some((stored, snap));
        }
    }
    let (_, snap) = newest.ok_or_else(|| DrError::Unreadable("the catalog repository holds no DR snapshot".into()))?;
    let listing = repo.list_documents(&snap.id).await?;
    if !listing.iter().any(|p| p == "index.json") {
        return Err(DrError::Unreadable(format!("DR snapshot {} has no index.json", snap.id)));
    }
    Ok((repo, snap, listing))
}

/// Whether a failure to read the catalog means its data is damaged or gone (what an attack leaves),
/// rather than the store or the network failing.
fn is_damage(e: &DrError) -> bool {
    matches!(
        e,
        DrError::Unreadable(_)
            | DrError::Repo(
                RepoError::Engine { .. }
                    | RepoError::Damaged { .. }
                    | RepoError::NoRepository { .. }
                    | RepoError::SnapshotNotFound { .. }
                    | RepoError::PathNotFound { .. }
            )
    )
}

/// Which earlier DR snapshots still read (the newest of them, and the newest that holds restore
/// points), as the end of a [`DrError::GoneAt`] message.
async fn readable_before(
    storage: &std::sync::Arc<crate::objectstore::s3::S3Storage>,
    prefix: &str,
    times: &[Time],
    t: Time,
    passphrase: &str,
) -> String {
    let mut newest = None;
    for earlier in times.iter().rev().filter(|x| **x < t).take(20) {
        let Ok((_, _, listing)) = open_catalog(storage, prefix, *earlier, passphrase).await else {
            continue;
        };
        let at = rfc3339(*earlier);
        if restore_points_in(&listing) > 0 {
            return match newest {
                None => format!(": the newest DR snapshot that still reads was stored at {at} (--point-in-time {at})"),
                Some(empty) => format!(": the newest DR snapshot that still reads, stored at {empty}, holds no restore points; the newest that holds some was stored at {at} (--point-in-time {at})"),
            };
        }
        newest.get_or_insert(at);
    }
    match newest {
        Some(at) => format!(": the newest DR snapshot that still reads was stored at {at} (--point-in-time {at}), and it holds no restore points"),
        None => String::new(),
    }
}

/// The protection period (days) of the DR profile a DR snapshot records, if it is immutable.
async fn dr_period_days(repo: &Repo<ReadOnly>, snapshot: &str, listing: &[String]) -> Result<Option<u32>> {
    let read = |path: String| async move {
        let bytes = repo.read_document(snapshot, &path).await?;
        serde_json::from_slice::<serde_json::Value>(&bytes).map_err(|e| DrError::Unreadable(format!("{path}: {e}")))
    };
    let index = read("index.json".into()).await?;
    let path = format!("profiles/{}.json", index["drProfile"].as_str().unwrap_or_default());
    if !listing.contains(&path) {
        return Ok(None);
    }
    let Ok(profile) = serde_json::from_value::<Profile>(read(path).await?) else {
        return Ok(None);
    };
    Ok(catalog::period_of(&profile)?.map(|p| p.days()))
}

fn restore_points_in(listing: &[String]) -> usize {
    listing.iter().filter(|p| p.starts_with("restorepointcontents/")).count()
}

/// When the catalog brought back holds no restore points: the newest earlier DR snapshot that
/// held some, and when the next one (the first without) was stored, as a warning.
async fn empty_catalog_warning(repo: &Repo<ReadOnly>, chosen: &crate::repo::Snapshot) -> Result<Option<String>> {
    let dr: Vec<crate::repo::Snapshot> = repo.snapshots().await?.into_iter().filter(|s| s.tags.iter().any(|t| t == DR_TAG)).collect();
    let Some(pos) = dr.iter().position(|s| s.id == chosen.id) else {
        return Ok(None);
    };
    for i in (0..pos).rev() {
        let n = restore_points_in(&repo.list_documents(&dr[i].id).await?);
        if n > 0 {
            let held = rfc3339(repo.stored_at(&dr[i].id).await?);
            let emptied = rfc3339(repo.stored_at(&dr[i + 1].id).await?);
            return Ok(Some(format!(
                "the catalog brought back holds no restore points, but the DR snapshot stored at {held} held {n}: if they were retired by an attacker, restore as of a point in time before {emptied} (--point-in-time {held})"
            )));
        }
    }
    Ok(None)
}

/// A catalog opened as of a time: the repository, its DR snapshot, that snapshot's documents.
type Catalog = (Repo<ReadOnly>, crate::repo::Snapshot, Vec<String>);

/// The catalog as of `t`, with every refusal decided from it.
async fn catalog_as_of(
    storage: &std::sync::Arc<crate::objectstore::s3::S3Storage>,
    prefix: &str,
    times: &[Time],
    t: Time,
    passphrase: &str,
    id: &str,
) -> Result<Catalog> {
    let now = chrono::Utc::now();
    let earliest = |days: u32| now - chrono::Duration::days(i64::from(days));
    // (The bucket's default retention is no bound: whoever holds the keys may lower it, and
    // that shortens no lock already set.)
    if t < times[0] {
        return Err(DrError::NothingBefore {
            at: rfc3339(t),
            earliest: rfc3339(times[0]),
        });
    }
    let (repo, snap, listing) = match open_catalog(storage, prefix, t, passphrase).await {
        Ok(o) => o,
        Err(DrError::Repo(RepoError::WrongPassword { .. })) => return Err(DrError::WrongPassphrase(id.to_string())),
        Err(e) if is_damage(&e) => {
            return Err(DrError::GoneAt {
                at: rfc3339(t),
                cause: e.to_string(),
                hint: readable_before(storage, prefix, times, t, passphrase).await,
            })
        }
        Err(e) => return Err(e),
    };
    // The DR profile's protection period, as the catalog of that time records it.
    if let Some(days) = dr_period_days(&repo, &snap.id, &listing).await? {
        if t < earliest(days) {
            return Err(DrError::TooOld {
                at: rfc3339(t),
                days,
                earliest: rfc3339(earliest(days)),
            });
        }
    }
    Ok((repo, snap, listing))
}

/// The newest DR snapshot that reads, newest first: after an attack the newest versions may be
/// garbage, forged snapshots, or keys the passphrase does not open. Returns it with a warning
/// for each one passed over.
async fn newest_readable(
    storage: &std::sync::Arc<crate::objectstore::s3::S3Storage>,
    prefix: &str,
    times: &[Time],
    passphrase: &str,
    id: &str,
) -> Result<(Catalog, Vec<String>)> {
    // Key files as of each time: a set of keys the passphrase did not open is not tried again
    // (each try costs a slow key derivation).
    let key_versions = storage.list_versions(&format!("{prefix}keys/")).await?;
    let keys_at = |t: Time| -> Vec<&str> {
        let mut current: Vec<&str> = Vec::new();
        let mut seen: Option<&str> = None;
        for v in key_versions.iter().filter(|v| v.last_modified <= t) {
            if seen != Some(v.key.as_str()) {
                seen = Some(v.key.as_str());
                if !v.delete_marker && !v.multipart {
                    current.push(&v.version_id);
                }
            }
        }
        current
    };
    let mut refused: Vec<Vec<&str>> = Vec::new();
    let mut skipped = Vec::new();
    let mut last_damage = None;
    for t in times.iter().rev() {
        let keys = keys_at(*t);
        if refused.contains(&keys) {
            skipped.push(format!("skipped the DR snapshot stored at {}: the DR passphrase opens none of the key files of that time", rfc3339(*t)));
            continue;
        }
        match open_catalog(storage, prefix, *t, passphrase).await {
            Ok(o) => return Ok((o, skipped)),
            Err(DrError::Repo(RepoError::WrongPassword { .. })) => {
                skipped.push(format!("skipped the DR snapshot stored at {}: the DR passphrase opens none of the key files of that time", rfc3339(*t)));
                refused.push(keys);
            }
            Err(e) if is_damage(&e) => {
                skipped.push(format!("skipped the DR snapshot stored at {}: {e}", rfc3339(*t)));
                last_damage = Some(e);
            }
            Err(e) => return Err(e),
        }
    }
    Err(match last_damage {
        // Not one time opened, and never for damage: the passphrase is wrong.
        None => DrError::WrongPassphrase(id.to_string()),
        Some(e) if refused.is_empty() => e,
        Some(_) => DrError::WrongPassphrase(id.to_string()),
    })
}

/// Recreates the catalog of `source_cluster_id` as it was at the newest DR snapshot at or before
/// the point in time (or the newest). Every refusal happens before anything is written.
pub async fn restore(cluster: &Cluster, options: &RestoreOptions) -> Result<RestoreReport> {
    let mut k10 = cluster.clone();
    k10.namespace = K10_NAMESPACE.into();
    let passphrase = match passphrase(cluster, &options.passphrase_secret).await {
        Err(DrError::NoPassphrase(name)) => return Err(DrError::NoPassphraseToRestore(name)),
        other => other?,
    };
    let profile = catalog::get_profile(&k10, &options.profile).await?;
    let storage = catalog::profile_storage(cluster, &profile).await?;
    let id = &options.source_cluster_id;
    let times = snapshot_times(storage.as_ref(), id).await?;
    if times.is_empty() {
        // From the bucket's history: after an attack every key may be behind a delete marker.
        let versions = storage.list_versions("k10/").await?;
        let found = layout::cluster_ids(versions.iter().map(|v| v.key.as_str()));
        return Err(DrError::UnknownCluster { id: id.clone(), found });
    }
    let prefix = layout::catalog_repository(id);
    let mut report = RestoreReport::default();
    // Everything about a point in time is decided from the catalog as of then: versions written
    // after it (forged keys, snapshots, configs) are never read.
    let opened = match options.point_in_time {
        Some(t) => catalog_as_of(&storage, &prefix, &times, t, &passphrase, id).await?,
        None => {
            let (opened, skipped) = newest_readable(&storage, &prefix, &times, &passphrase, id).await?;
            report.warnings.extend(skipped);
            opened
        }
    };
    let (repo, snap, listing) = opened;
    report.snapshot_time = rfc3339(repo.stored_at(&snap.id).await?);
    let read = |path: String| {
        let repo = &repo;
        let id = snap.id.clone();
        async move {
            let bytes = repo.read_document(&id, &path).await?;
            serde_json::from_slice::<serde_json::Value>(&bytes).map_err(|e| DrError::Unreadable(format!("{path}: {e}")))
        }
    };
    if restore_points_in(&listing) == 0 {
        report.warnings.extend(empty_catalog_warning(&repo, &snap).await?);
    }
    let skip = |kind: &str| options.skip.iter().any(|s| s == kind);
    let mut docs: Vec<&String> = listing.iter().collect();
    // Secrets first (profiles reference them), then profiles, policies, contents, restore points.
    let rank = |p: &str| ["secrets/", "profiles/", "policies/", "restorepointcontents/", "restorepoints/"]
        .iter()
        .position(|d| p.starts_with(d))
        .unwrap_or(9);
    docs.sort_by_key(|p| rank(p));
    let namespaces: Api<Namespace> = Api::all(cluster.client.clone());
    for path in docs {
        let doc = read(path.clone()).await?;
        let name = doc["metadata"]["name"].as_str().unwrap_or_default().to_string();
        let created = if path.starts_with("secrets/") {
            if skip("secrets") {
                continue;
            }
            let s: Secret = from(doc)?;
            create(cluster, Api::namespaced(cluster.client.clone(), K10_NAMESPACE), s).await?
        } else if path.starts_with("profiles/") {
            if skip("profiles") {
                continue;
            }
            let p: Profile = from(doc)?;
            create(cluster, Api::namespaced(cluster.client.clone(), K10_NAMESPACE), p).await?
        } else if path.starts_with("policies/") {
            if skip("policies") {
                continue;
            }
            let p: Policy = from(doc)?;
            create(cluster, Api::namespaced(cluster.client.clone(), K10_NAMESPACE), p).await?
        } else if path.starts_with("restorepointcontents/") {
            let c: RestorePointContent = from(doc)?;
            create(cluster, Api::all(cluster.client.clone()), c).await?
        } else if path.starts_with("restorepoints/") {
            let rp: RestorePoint = from(doc)?;
            let ns = rp.metadata.namespace.clone().unwrap_or_default();
            // A restore point lives in its application's namespace, if that still exists; its
            // content (cluster-scoped) is what a restore needs either way.
            if namespaces.get_opt(&ns).await.map_err(|e| cluster.err(e, format!("read namespace {ns}")))?.is_none() {
                report.skipped.push(format!("{path} (namespace {ns} does not exist; its content was restored)"));
                continue;
            }
            create(cluster, Api::namespaced(cluster.client.clone(), &ns), rp).await?
        } else {
            continue;
        };
        let kind = match path.split('/').next().unwrap_or_default() {
            "secrets" => "Secret",
            "profiles" => "Profile",
            "policies" => "Policy",
            "restorepointcontents" => "RestorePointContent",
            _ => "RestorePoint",
        };
        let what = format!("{kind} {name}");
        if created {
            report.created.push(what);
        } else {
            report.skipped.push(format!("{what} (exists)"));
        }
    }
    report.warnings.extend(repo.skipped().into_iter().map(|s| format!("passed over {s}")));
    Ok(report)
}

fn from<T: DeserializeOwned>(doc: serde_json::Value) -> Result<T> {
    serde_json::from_value(doc).map_err(|e| DrError::Unreadable(e.to_string()))
}

/// Creates an object unless one of that name exists; true when created.
async fn create<K>(cluster: &Cluster, api: Api<K>, mut obj: K) -> Result<bool>
where
    K: kube::Resource + Clone + DeserializeOwned + Serialize + std::fmt::Debug,
{
    let meta: &mut ObjectMeta = obj.meta_mut();
    meta.resource_version = None;
    meta.uid = None;
    let name = meta.name.clone().unwrap_or_default();
    match api.create(&PostParams::default(), &obj).await {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
        Err(e) => Err(cluster.err(e, format!("create {name}")).into()),
    }
}

/// Frequencies in seconds between runs (None: on demand).
pub fn interval(frequency: &str) -> Option<u64> {
    match frequency {
        "@hourly" => Some(3600),
        "@daily" => Some(86_400),
        "@weekly" => Some(7 * 86_400),
        "@monthly" => Some(30 * 86_400),
        "@yearly" => Some(365 * 86_400),
        "@onDemand" => None,
        cron => {
            let f: Vec<&str> = cron.split_whitespace().collect();
            match f.as_slice() {
                [m, ..] if m.starts_with('*') => Some(60),
                [_, h, ..] if h.starts_with('*') => Some(3600),
                [_, _, d, _, w] if d.starts_with('*') && w.starts_with('*') => Some(86_400),
                _ => Some(7 * 86_400),
            }
        }
    }
}

/// The recommendations of the immutable-backup workflow, as warnings.
pub fn warnings(policies: &[Policy], profiles: &[Profile]) -> Vec<String> {
    let period = |name: &str| {
        profiles
            .iter()
            .find(|p| p.metadata.name.as_deref() == Some(name))
            .and_then(|p| catalog::period_of(p).ok().flatten())
    };
    let Some(dr) = policies.iter().find(|p| p.metadata.name.as_deref() == Some(DR_POLICY)) else {
        return vec!["disaster recovery is not enabled: without an immutable DR policy an attacker who retires restore points can make them unreachable (`kubectl k10 dr enable`)".into()];
    };
    let mut out = Vec::new();
    let dr_profile = dr.export_profile().map(|p| p.name.clone()).unwrap_or_default();
    let dr_period = period(&dr_profile);
    if dr_period.is_none() {
        out.push(format!("the DR profile {dr_profile:?} is not immutable: the catalog backups can be destroyed"));
    }
    let immutable: Vec<&Policy> = policies
        .iter()
        .filter(|p| p.metadata.name.as_deref() != Some(DR_POLICY))
        .filter(|p| p.export_profile().is_some_and(|r| period(&r.name).is_some()))
        .collect();
    if let Some(fastest) = immutable.iter().filter_map(|p| interval(&p.spec.frequency).map(|i| (i, p))).min_by_key(|(i, _)| *i) {
        let dr_interval = interval(&dr.spec.frequency).unwrap_or(u64::MAX);
        if dr_interval > fastest.0 {
            out.push(format!(
                "the DR policy runs {} but policy {:?} exports to an immutable profile {}: run the DR policy at least as often",
                dr.spec.frequency,
                fastest.1.metadata.name.clone().unwrap_or_default(),
                fastest.1.spec.frequency
            ));
        }
    }
    let longest = immutable
        .iter()
        .filter_map(|p| p.export_profile().and_then(|r| period(&r.name)).map(|d| (d, p)))
        .max_by_key(|(d, _)| *d);
    if let (Some(dr_days), Some((days, p))) = (dr_period, longest) {
        if dr_days < days {
            out.push(format!(
                "the DR profile's protection period ({dr_days}) is shorter than that of policy {:?} ({days}): use a DR profile with at least {days}",
                p.metadata.name.clone().unwrap_or_default()
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weak_passphrases_are_refused_and_strong_ones_pass() {
        for weak in ["", "hunter2", "Password1!", "aaaaaaaaaaaaaaaaaaaaaaaa", "abcabcabcabcabcabcabc", "0123456789012345", "passwordpassword", "hunter2hunter2hunter2"] {
            let err = check_passphrase("k10-dr-secret", weak).unwrap_err().to_string();
            assert!(err.contains("too weak") && err.contains("kasten-io/k10-dr-secret"), "{weak:?}: {err}");
            assert!(weak.is_empty() || !err.contains(weak), "the error repeats the passphrase: {err}");
        }
        for strong in ["correct horse battery staple", "drill-3f9a1c2e7b4d5a6f", "Tr0ub4dor&3-Xq9!zL2m", "éléphant rose qui danse à minuit"] {
            check_passphrase("k10-dr-secret", strong).unwrap_or_else(|e| panic!("{strong:?}: {e} ({} bits)", passphrase_bits(strong)));
        }
    }
}
