//! The incident timeline (`kubectl k10 incident`): when the attack began, and which point in time
//! and restore points are before it, read from the bucket's version history under
//! `k10/<clusterID>/` and the DR catalog. Strictly read-only: it lists versions, reads versions,
//! and opens repositories through point-in-time views; it writes nothing to the bucket or the
//! cluster.
//!
//! What it calls activity k10 did not do (each with the store's time of the version):
//! - `forged-content`: a version of a content-addressed file (`keys/`, `index/`, `snapshots/`,
//!   `data/`) whose content does not hash to its name. Every version of the small files is
//!   checked, and every version of a pack that has more than one (k10 writes a pack once; a second
//!   version is a retry's identical copy or a forgery); a pack with a single version is not read.
//! - `overwrite`: a version of a repository's `config` written while another was current (k10
//!   writes it once; after every file of a repository was hidden, a run starts it afresh);
//! - `delete-marker`: on a key k10 never deletes (all but an application repository's snapshots);
//! - `manual-retirement`: delete markers on the snapshots of restore points (those a DR snapshot
//!   records) that a policy run's retention did not make: retention never retires the newest
//!   restore point of a repository, and runs right after a backup wrote to it (within 5 minutes);
//!   markers of one repository within a minute of each other are one retirement. An operator's
//!   `restorepoint retire` of the newest restore point shows here too: if no one on the team did
//!   it, the attacker did. Snapshots no restore point refers to (an interrupted run's, which k10
//!   forgets) are not activity.
//! - `outside-layout`: any key under `k10/<clusterID>/` that is not a file of k10's repositories;
//! - `multipart`: a version written by a multipart upload, which k10 never makes.
//!
//! The verdict: the earliest of these is the first sign of tampering; the newest DR snapshot
//! stored before it that reads is the point in time to recover to.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Secret;
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::{rfc3339, DrError, Result, DR_TAG};
use crate::api::{Profile, RestorePointContent};
use crate::backup::signals;
use crate::catalog;
use crate::objectstore::storage::{Time, Version, VersionedStorage};
use crate::repo::backend::content_address;
use crate::repo::{layout, ReadOnly, Repo, RepoError};

/// A retirement this soon after a backup wrote to the same repository may be a run's retention.
const RETENTION_WINDOW: chrono::Duration = chrono::Duration::minutes(5);
/// Delete markers of one repository this close together are one retirement.
const RETIREMENT_GAP: chrono::Duration = chrono::Duration::seconds(60);
/// Versions read at once to check their content addresses.
const CONCURRENCY: usize = 8;
/// Examples of each kind of activity in the report.
const EXAMPLES: usize = 5;

/// What was done to the bucket, by kind. The names are part of the JSON output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    ForgedContent,
    Overwrite,
    DeleteMarker,
    ManualRetirement,
    OutsideLayout,
    Multipart,
    /// Retirements by a policy run's retention: k10's own, listed but not tampering.
    Retention,
}

impl Kind {
    pub fn is_tampering(self) -> bool {
        self != Kind::Retention
    }

    pub fn describe(self) -> &'static str {
        match self {
            Kind::ForgedContent => "versions of content-addressed files whose content does not hash to their name",
            Kind::Overwrite => "new versions of a repository's config, which k10 writes once",
            Kind::DeleteMarker => "delete markers on keys k10 never deletes",
            Kind::ManualRetirement => "delete markers on snapshots of restore points retired outside a policy run's retention (the newest of a repository, or with no backup just before): by hand, with k10's credentials",
            Kind::OutsideLayout => "writes outside k10's layout",
            Kind::Multipart => "multipart uploads, which k10 never makes",
            Kind::Retention => "delete markers on snapshots of restore points retired by a policy run's retention (k10's own doing)",
        }
    }
}

/// One version (or delete marker) and what it was.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Activity {
    pub time: String,
    pub kind: Kind,
    pub key: String,
    pub version_id: String,
    #[serde(skip)]
    at: Time,
}

/// The activity of one kind.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ActivityGroup {
    pub kind: Kind,
    pub tampering: bool,
    pub description: String,
    pub count: usize,
    pub first: String,
    pub last: String,
    pub examples: Vec<Activity>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DrSnapshot {
    /// The store's time of the snapshot's genuine version.
    pub time: String,
    /// Whether the catalog was opened as of this time (only the newest `depth` before the first
    /// sign of tampering, and as many after it, are).
    pub checked: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reads: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restore_points: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RestorePointTimeline {
    pub name: String,
    pub end_time: String,
    /// Whether its repository, as of its end time, holds all of its snapshots.
    pub reads: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Its end time + its protection period: until then it can be restored.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub protected_until: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub suspicious: Option<String>,
    /// When its snapshots were hidden behind delete markers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retired_at: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NamespaceTimeline {
    pub namespace: String,
    pub namespace_uid: String,
    pub repository: String,
    pub restore_points: Vec<RestorePointTimeline>,
}

/// Of a namespace with a suspicious restore point: the one to restore.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LastClean {
    pub namespace: String,
    pub first_suspicious: String,
    pub reason: String,
    /// The newest restore point before it (none: there is none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restore_point: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end_time: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Verdict {
    pub tampered: bool,
    pub summary: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_sign: Option<Activity>,
    /// The store time of the newest readable DR snapshot before the first sign (or the newest).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dr_snapshot: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub point_in_time: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub helm: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub protection_period_days: Option<u32>,
    /// Days until the protection period makes the point in time unrecoverable.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub days_left: Option<f64>,
    pub last_clean: Vec<LastClean>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Timeline {
    pub cluster_id: String,
    pub bucket: String,
    pub investigated_at: String,
    /// Versions and delete markers under `k10/<clusterID>/`.
    pub versions: usize,
    /// Versions read to check their content address.
    pub content_checks: usize,
    pub dr_snapshots: Vec<DrSnapshot>,
    pub namespaces: Vec<NamespaceTimeline>,
    pub activity: Vec<ActivityGroup>,
    pub verdict: Verdict,
}

#[derive(Debug, Clone)]
pub struct Options {
    pub source_cluster_id: String,
    /// The profile (on this installation) the recovery would use: named in the helm command.
    pub profile: String,
    pub bucket: String,
    pub passphrase: String,
    /// DR snapshots opened on each side of the first sign of tampering.
    pub depth: usize,
    /// Activity before this time is listed but is no sign (an incident already dealt with).
    pub since: Option<Time>,
}

/// A catalog as a DR snapshot holds it.
#[derive(Debug, Default)]
struct Catalog {
    contents: Vec<RestorePointContent>,
    passwords: HashMap<String, String>,
    dr_period_days: Option<u32>,
}

/// Where a key sits in k10's layout: its repository prefix and the file within it.
fn place<'a>(root: &str, key: &'a str) -> Option<(&'a str, &'a str)> {
    let rest = key.strip_prefix(root)?;
    let repo_len = if rest.starts_with("catalog/") {
        "catalog/".len()
    } else {
        let uid = rest.strip_prefix("repos/")?.split('/').next().filter(|u| !u.is_empty())?;
        "repos/".len() + uid.len() + 1
    };
    let file = rest.get(repo_len..).filter(|f| !f.is_empty())?;
    Some((&key[..root.len() + repo_len], file))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn activity(v: &Version, kind: Kind) -> Activity {
    Activity {
        time: rfc3339(v.last_modified),
        kind,
        key: v.key.clone(),
        version_id: v.version_id.clone(),
        at: v.last_modified,
    }
}

/// What `kubectl k10 incident` is given; each may be left out on the source cluster itself.
#[derive(Debug, Clone, Default)]
pub struct Request {
    /// Default: this cluster's ID.
    pub source_cluster_id: Option<String>,
    /// A profile of this installation on the bucket. Default: the DR policy's.
    pub profile: Option<String>,
    pub passphrase_secret: String,
    pub depth: usize,
    pub since: Option<Time>,
}

/// The timeline of a cluster's data in the bucket of a profile of this installation, read with
/// the DR passphrase of its Secret. Writes nothing.
pub async fn run(cluster: &crate::k8s::Cluster, request: &Request) -> Result<Timeline> {
    let mut k10 = cluster.clone();
    k10.namespace = crate::api::K10_NAMESPACE.into();
    let passphrase = super::passphrase(cluster, &request.passphrase_secret).await?;
    let profile = match &request.profile {
        Some(p) => p.clone(),
        None => {
            let policies: kube::Api<crate::api::Policy> = kube::Api::namespaced(cluster.client.clone(), crate::api::K10_NAMESPACE);
            let dr = policies.get_opt(super::DR_POLICY).await.map_err(|e| catalog::not_installed(cluster.err(e, "read the DR policy"), "Policy"))?;
            dr.and_then(|p| p.export_profile().map(|r| r.name.clone())).ok_or(DrError::NoProfileForIncident)?
        }
    };
    let profile_obj = catalog::get_profile(&k10, &profile).await?;
    // A store that cannot write: not even the version-clock probe.
    let storage = Arc::new(catalog::profile_storage(cluster, &profile_obj).await?.as_ref().clone().read_only());
    let source_cluster_id = match &request.source_cluster_id {
        Some(id) => id.clone(),
        None => catalog::cluster_id(cluster).await?,
    };
    let options = Options {
        source_cluster_id,
        bucket: catalog::location_of(&profile_obj).bucket,
        profile,
        passphrase,
        depth: request.depth.max(1),
        since: request.since,
    };
    investigate(storage, &options).await
}

/// Reads the timeline of a cluster's data in a bucket. Writes nothing.
pub async fn investigate(storage: Arc<dyn VersionedStorage>, options: &Options) -> Result<Timeline> {
    let id = &options.source_cluster_id;
    let root = layout::cluster_root(id);
    let versions = storage.list_versions(&root).await?;
    if versions.is_empty() {
        let all = storage.list_versions("k10/").await?;
        return Err(DrError::UnknownCluster {
            id: id.clone(),
            found: layout::cluster_ids(all.iter().map(|v| v.key.as_str())),
        });
    }
    let now = chrono::Utc::now();

    // 1. Every version by where it sits in the layout.
    let mut events: Vec<Activity> = Vec::new();
    let mut to_check: Vec<&Version> = Vec::new();
    let mut snapshot_markers: Vec<&Version> = Vec::new();
    let mut by_key: BTreeMap<&str, Vec<&Version>> = BTreeMap::new();
    for v in &versions {
        by_key.entry(v.key.as_str()).or_default().push(v);
    }
    for (key, mut vs) in by_key {
        vs.sort_by_key(|v| v.last_modified);
        let Some((repo, file)) = place(&root, key).filter(|(_, f)| *f == "config" || content_address(key).is_some()) else {
            events.extend(vs.iter().map(|v| activity(v, Kind::OutsideLayout)));
            continue;
        };
        let written: Vec<&Version> = vs.iter().copied().filter(|v| !v.delete_marker).collect();
        for v in vs.iter().filter(|v| v.delete_marker) {
            if file.starts_with("snapshots/") && repo != layout::catalog_repository(id) {
                snapshot_markers.push(v);
            } else {
                events.push(activity(v, Kind::DeleteMarker));
            }
        }
        events.extend(written.iter().filter(|v| v.multipart).map(|v| activity(v, Kind::Multipart)));
        if file == "config" {
            // A config written while another is current is an overwrite; one written after the
            // current one was hidden starts the repository afresh (k10 does, when every file of
            // it is hidden): the delete marker before it is the sign.
            let mut current = false;
            for v in &vs {
                if !v.delete_marker && current {
                    events.push(activity(v, Kind::Overwrite));
                }
                current = !v.delete_marker;
            }
        } else if written.len() > 1 || !file.starts_with("data/") {
            to_check.extend(written.iter().filter(|v| !v.multipart));
        }
    }

    // 2. Content addresses.
    let content_checks = to_check.len();
    let checked: Vec<(&Version, bool)> = futures::stream::iter(to_check)
        .map(|v| {
            let storage = storage.clone();
            async move {
                match storage.get_version(&v.key, &v.version_id, None).await {
                    Ok(data) => Ok((v, Some(hex(&Sha256::digest(&data)).as_str()) == content_address(&v.key))),
                    Err(e) if e.is_outage() => Err(e),
                    // Listed but unreadable: not the file its name promises.
                    Err(_) => Ok((v, false)),
                }
            }
        })
        .buffer_unordered(CONCURRENCY)
        .try_collect()
        .await?;
    let genuine: BTreeSet<(&str, &str)> = checked.iter().filter(|(_, ok)| *ok).map(|(v, _)| (v.key.as_str(), v.version_id.as_str())).collect();
    events.extend(checked.iter().filter(|(_, ok)| !ok).map(|(v, _)| activity(v, Kind::ForgedContent)));

    // 3. The DR snapshots: genuine versions of the catalog's snapshot files.
    let catalog_prefix = layout::catalog_repository(id);
    let mut dr_times: Vec<Time> = versions
        .iter()
        .filter(|v| v.key.starts_with(&format!("{catalog_prefix}snapshots/")) && genuine.contains(&(v.key.as_str(), v.version_id.as_str())))
        .map(|v| v.last_modified)
        .collect();
    dr_times.sort();
    dr_times.dedup();
    let counts = |t: &Time| options.since.is_none_or(|since| *t >= since);
    let provisional = events.iter().map(|e| e.at).chain(snapshot_markers.iter().map(|v| v.last_modified)).filter(counts).min();
    let mut reader = CatalogReader {
        storage: storage.clone(),
        prefix: catalog_prefix.clone(),
        versions: &versions,
        passphrase: &options.passphrase,
        opened: None,
        read: BTreeMap::new(),
        refused: false,
    };
    let split = provisional.map_or(dr_times.len(), |t| dr_times.partition_point(|d| *d < t));
    let window = dr_times[split.saturating_sub(options.depth)..(split + options.depth).min(dr_times.len())].to_vec();
    for t in window {
        reader.read(t).await?;
    }

    // 4. Retirements: by retention, or by hand.
    let recorded: BTreeSet<String> = reader
        .read
        .values()
        .filter_map(|r| r.as_ref().ok())
        .flat_map(|c| c.contents.iter().flat_map(|c| c.spec.snapshots.iter().map(|s| s.id.clone())))
        .collect();
    events.extend(judge_retirements(&versions, &snapshot_markers, &recorded));
    events.sort_by(|a, b| (a.at, &a.key).cmp(&(b.at, &b.key)));

    // 5. The first sign, and the newest DR snapshot before it that reads.
    let first_sign = events.iter().find(|e| e.kind.is_tampering() && counts(&e.at)).cloned();
    let before: Vec<Time> = dr_times.iter().copied().filter(|t| first_sign.as_ref().is_none_or(|s| *t < s.at)).collect();
    let mut chosen = None;
    for t in before.iter().rev() {
        if reader.read(*t).await?.is_ok() {
            chosen = Some(*t);
            break;
        }
    }
    if reader.refused && reader.opened.is_none() {
        return Err(DrError::WrongPassphrase(id.clone()));
    }

    // 6. The restore points the chosen catalog holds.
    let empty = Catalog::default();
    let catalog = match chosen.and_then(|t| reader.read.get(&t)) {
        Some(Ok(c)) => c,
        _ => &empty,
    };
    let namespaces = namespaces(storage.clone(), &versions, catalog, &snapshot_markers).await?;

    let dr_snapshots = dr_times
        .iter()
        .map(|t| {
            let read = reader.read.get(t);
            DrSnapshot {
                time: rfc3339(*t),
                checked: read.is_some(),
                reads: read.map(Result::is_ok),
                restore_points: read.and_then(|r| r.as_ref().ok()).map(|c| c.contents.len()),
                error: read.and_then(|r| r.as_ref().err()).cloned(),
            }
        })
        .collect();
    let verdict = verdict(options, first_sign, chosen, catalog, now);
    Ok(Timeline {
        cluster_id: id.clone(),
        bucket: options.bucket.clone(),
        investigated_at: rfc3339(now),
        versions: versions.len(),
        content_checks,
        dr_snapshots,
        namespaces,
        activity: groups(&events),
        verdict,
    })
}

/// Opens the catalog as of DR snapshot times: the key is derived once.
struct CatalogReader<'a> {
    storage: Arc<dyn VersionedStorage>,
    prefix: String,
    versions: &'a [Version],
    passphrase: &'a str,
    opened: Option<Repo<ReadOnly>>,
    /// Time → the catalog, or why it does not read.
    read: BTreeMap<Time, std::result::Result<Catalog, String>>,
    /// The passphrase opened none of the key files of some time.
    refused: bool,
}

impl CatalogReader<'_> {
    async fn read(&mut self, t: Time) -> Result<&std::result::Result<Catalog, String>> {
        if !self.read.contains_key(&t) {
            let result = match self.open(t).await {
                Ok(repo) => catalog_of(&repo).await,
                Err(e) => Err(e),
            };
            let result = match result {
                Ok(c) => Ok(c),
                Err(DrError::Repo(RepoError::WrongPassword { .. })) => {
                    self.refused = true;
                    Err("the DR passphrase opens none of the key files of that time".to_string())
                }
                Err(DrError::Storage(e)) if e.is_outage() => return Err(DrError::Storage(e)),
                Err(DrError::Repo(RepoError::Storage(e))) if e.is_outage() => return Err(DrError::Storage(e)),
                Err(e) => Err(e.to_string()),
            };
            self.read.insert(t, result);
        }
        Ok(&self.read[&t])
    }

    async fn open(&mut self, t: Time) -> Result<Repo<ReadOnly>> {
        Ok(match &self.opened {
            Some(repo) => repo.at_time(self.storage.clone(), t, self.versions)?,
            None => {
                let repo = Repo::<ReadOnly>::open_at_listed(self.storage.clone(), &self.prefix, t, self.versions, self.passphrase).await?;
                let again = repo.at_time(self.storage.clone(), t, self.versions)?;
                self.opened = Some(repo);
                again
            }
        })
    }
}

/// The newest DR snapshot of a view (by the store's time of its file), read whole.
async fn catalog_of(repo: &Repo<ReadOnly>) -> Result<Catalog> {
    let mut newest = None;
    for snap in repo.snapshots().await?.into_iter().filter(|s| s.tags.iter().any(|t| t == DR_TAG)) {
        let stored = repo.stored_at(&snap.id).await?;
        if newest.as_ref().is_none_or(|(t, _)| stored >= *t) {
            newest = Some((stored, snap));
        }
    }
    let (_, snap) = newest.ok_or_else(|| DrError::Unreadable("the catalog holds no DR snapshot".into()))?;
    let mut catalog = Catalog::default();
    let mut index = None;
    let mut profiles = HashMap::new();
    for (path, data) in repo.read_documents(&snap.id, "").await? {
        let json = |what: &str| serde_json::from_slice::<serde_json::Value>(&data).map_err(|e| DrError::Unreadable(format!("{what} {path}: {e}")));
        if path == "index.json" {
            index = Some(json("index")?);
        } else if path.starts_with("restorepointcontents/") {
            catalog.contents.push(super::from(json("restore point")?)?);
        } else if let Some(name) = path.strip_prefix("secrets/").and_then(|p| p.strip_suffix(".json")) {
            let secret: Secret = super::from(json("secret")?)?;
            if let Some(password) = secret.data.as_ref().and_then(|d| d.get("password")) {
                catalog.passwords.insert(name.to_string(), String::from_utf8_lossy(&password.0).into_owned());
            }
        } else if let Some(name) = path.strip_prefix("profiles/").and_then(|p| p.strip_suffix(".json")) {
            profiles.insert(name.to_string(), json("profile")?);
        }
    }
    let index = index.ok_or_else(|| DrError::Unreadable(format!("DR snapshot {} has no index.json", snap.id)))?;
    if let Some(profile) = index["drProfile"].as_str().and_then(|p| profiles.remove(p)) {
        if let Ok(profile) = serde_json::from_value::<Profile>(profile) {
            catalog.dr_period_days = catalog::period_of(&profile).ok().flatten().map(|p| p.days());
        }
    }
    Ok(catalog)
}

/// Delete markers on application snapshots, grouped per repository into retirements, each judged
/// by retention's rules (see the module's documentation).
fn judge_retirements(versions: &[Version], markers: &[&Version], recorded: &BTreeSet<String>) -> Vec<Activity> {
    let snapshot_id = |key: &str| key.rsplit('/').next().unwrap_or_default().to_string();
    let repository = |key: &str| key.rsplit_once("snapshots/").map(|(r, _)| r.to_string()).unwrap_or_default();
    // Per repository: each snapshot's first write, and its markers.
    let mut written: HashMap<String, Vec<(Time, String)>> = HashMap::new();
    for v in versions.iter().filter(|v| !v.delete_marker && v.key.contains("/snapshots/")) {
        written.entry(repository(&v.key)).or_default().push((v.last_modified, snapshot_id(&v.key)));
    }
    for w in written.values_mut() {
        w.sort();
        w.dedup_by(|a, b| a.1 == b.1);
    }
    let mut by_repo: BTreeMap<String, Vec<&Version>> = BTreeMap::new();
    for m in markers {
        if recorded.contains(&snapshot_id(&m.key)) {
            by_repo.entry(repository(&m.key)).or_default().push(m);
        }
    }
    let mut out = Vec::new();
    for (repo, mut ms) in by_repo {
        ms.sort_by_key(|m| m.last_modified);
        let all = written.get(&repo).map(Vec::as_slice).unwrap_or_default();
        let mut groups: Vec<Vec<&Version>> = Vec::new();
        for m in ms {
            match groups.last_mut() {
                Some(g) if m.last_modified - g[g.len() - 1].last_modified <= RETIREMENT_GAP => g.push(m),
                _ => groups.push(vec![m]),
            }
        }
        for group in groups {
            let (start, end) = (group[0].last_modified, group[group.len() - 1].last_modified);
            let retired: BTreeSet<String> = group.iter().map(|m| snapshot_id(&m.key)).collect();
            let first_write = |id: &String| all.iter().find(|(_, s)| s == id).map(|(t, _)| *t);
            let newest_retired = retired.iter().filter_map(first_write).max();
            // What is still there after the group: recorded snapshots written by then and not
            // yet hidden (by this group or an earlier marker).
            let hidden: BTreeSet<String> = markers.iter().filter(|m| m.last_modified <= end).map(|m| snapshot_id(&m.key)).collect();
            let newest_left = all.iter().filter(|(t, s)| *t <= end && recorded.contains(s) && !hidden.contains(s)).map(|(t, _)| *t).max();
            let took_the_newest = match (newest_retired, newest_left) {
                (Some(r), Some(l)) => r > l,
                (Some(_), None) => true,
                _ => false,
            };
            let after_a_backup = all.iter().any(|(t, _)| *t <= start && start - *t <= RETENTION_WINDOW);
            let kind = if took_the_newest || !after_a_backup { Kind::ManualRetirement } else { Kind::Retention };
            out.extend(group.iter().map(|m| activity(m, kind)));
        }
    }
    out
}

/// The restore points of a catalog, by namespace, each checked as of its end time.
async fn namespaces(storage: Arc<dyn VersionedStorage>, versions: &[Version], catalog: &Catalog, markers: &[&Version]) -> Result<Vec<NamespaceTimeline>> {
    let mut by_repo: BTreeMap<&str, Vec<&RestorePointContent>> = BTreeMap::new();
    for c in &catalog.contents {
        by_repo.entry(c.spec.repository.as_str()).or_default().push(c);
    }
    let mut out = Vec::new();
    for (repository, mut contents) in by_repo {
        contents.sort_by(|a, b| a.spec.end_time.cmp(&b.spec.end_time));
        let mut opened: Option<Repo<ReadOnly>> = None;
        let mut points = Vec::new();
        for c in &contents {
            let end = chrono::DateTime::parse_from_rfc3339(&c.spec.end_time).map(|t| t.to_utc()).ok();
            let reads = match (end, catalog.passwords.get(&c.spec.password_secret)) {
                (None, _) => Err(format!("its end time {:?} is not a time", c.spec.end_time)),
                (_, None) => Err(format!("the catalog holds no password Secret {}", c.spec.password_secret)),
                (Some(end), Some(password)) => {
                    let view = match &opened {
                        Some(repo) => repo.at_time(storage.clone(), end, versions).map_err(DrError::from),
                        None => Repo::<ReadOnly>::open_at_listed(storage.clone(), repository, end, versions, password).await.map_err(DrError::from),
                    };
                    match view {
                        Ok(view) => {
                            let found = match view.snapshots().await {
                                Ok(snaps) => {
                                    let ids: BTreeSet<String> = snaps.into_iter().map(|s| s.id).collect();
                                    let missing: Vec<&str> = c.spec.snapshots.iter().filter(|s| !ids.contains(&s.id)).map(|s| &s.id[..8.min(s.id.len())]).collect();
                                    if missing.is_empty() { Ok(()) } else { Err(format!("snapshots {} are not there as of its end time", missing.join(", "))) }
                                }
                                Err(e) if matches!(&e, RepoError::Storage(s) if s.is_outage()) => return Err(e.into()),
                                Err(e) => Err(e.to_string()),
                            };
                            opened.get_or_insert(view);
                            found
                        }
                        Err(DrError::Repo(RepoError::Storage(e))) if e.is_outage() => return Err(DrError::Storage(e)),
                        Err(e) => Err(e.to_string()),
                    }
                }
            };
            let manifests = c.spec.snapshots.iter().find(|s| s.kind == "manifests").map(|s| format!("{repository}snapshots/{}", s.id));
            let retired_at = markers
                .iter()
                .filter(|m| Some(&m.key) == manifests.as_ref() && end.is_none_or(|e| m.last_modified >= e))
                .map(|m| m.last_modified)
                .min();
            points.push(RestorePointTimeline {
                name: c.spec.restore_point_ref.name.clone(),
                end_time: c.spec.end_time.clone(),
                reads: reads.is_ok(),
                error: reads.err(),
                protected_until: end.zip(c.spec.protection_period_days).map(|(e, d)| rfc3339(e + chrono::Duration::days(i64::from(d)))),
                suspicious: c.spec.suspicious.clone(),
                retired_at: retired_at.map(rfc3339),
            });
        }
        out.push(NamespaceTimeline {
            namespace: contents[0].spec.source_namespace.clone(),
            namespace_uid: contents[0].spec.source_namespace_uid.clone(),
            repository: repository.to_string(),
            restore_points: points,
        });
    }
    out.sort_by(|a, b| a.namespace.cmp(&b.namespace));
    Ok(out)
}

fn groups(events: &[Activity]) -> Vec<ActivityGroup> {
    let mut by_kind: BTreeMap<Kind, Vec<&Activity>> = BTreeMap::new();
    for e in events {
        by_kind.entry(e.kind).or_default().push(e);
    }
    let mut out: Vec<ActivityGroup> = by_kind
        .into_iter()
        .map(|(kind, es)| ActivityGroup {
            kind,
            tampering: kind.is_tampering(),
            description: kind.describe().to_string(),
            count: es.len(),
            first: es[0].time.clone(),
            last: es[es.len() - 1].time.clone(),
            examples: es.iter().take(EXAMPLES).map(|e| (*e).clone()).collect(),
        })
        .collect();
    out.sort_by(|a, b| (&a.examples[0].at, a.kind).cmp(&(&b.examples[0].at, b.kind)));
    out
}

fn verdict(options: &Options, first_sign: Option<Activity>, chosen: Option<Time>, catalog: &Catalog, now: Time) -> Verdict {
    let mut by_ns: BTreeMap<&str, Vec<RestorePointContent>> = BTreeMap::new();
    for c in &catalog.contents {
        by_ns.entry(c.spec.source_namespace.as_str()).or_default().push(c.clone());
    }
    let last_clean: Vec<LastClean> = by_ns
        .iter()
        .filter_map(|(ns, contents)| {
            let judged = signals::judge(contents);
            let first = judged.first_suspicious?;
            Some(LastClean {
                namespace: ns.to_string(),
                first_suspicious: first.spec.restore_point_ref.name.clone(),
                reason: first.spec.suspicious.clone().unwrap_or_default(),
                restore_point: judged.last_clean.map(|c| c.spec.restore_point_ref.name.clone()),
                end_time: judged.last_clean.map(|c| c.spec.end_time.clone()),
            })
        })
        .collect();
    let point_in_time = chosen.map(rfc3339);
    let helm = point_in_time.as_ref().map(|t| {
        format!(
            "helm install k10-restore charts/k10restore -n kasten-io --set sourceClusterID={} --set profile.name={} --set pointInTime={t}",
            options.source_cluster_id, options.profile
        )
    });
    let days_left = chosen.zip(catalog.dr_period_days).map(|(t, p)| {
        let left = (t + chrono::Duration::days(i64::from(p)) - now).num_seconds() as f64 / 86400.0;
        (left * 10.0).floor() / 10.0
    });
    let summary = match (&first_sign, &point_in_time) {
        (None, Some(t)) => format!("no sign of tampering: every version is one k10 writes; the newest DR snapshot that reads was stored at {t}"),
        (None, None) => "no sign of tampering, and no DR snapshot that reads: enable DR (`kubectl k10 dr enable`) on the source cluster".into(),
        (Some(s), Some(t)) => format!("the first sign of tampering is at {} ({}: {}); recover the catalog as of {t}, the newest DR snapshot before it", s.time, kind_name(s.kind), s.key),
        (Some(s), None) => format!("the first sign of tampering is at {} ({}: {}), and no DR snapshot before it reads: nothing from before the attack can be recovered from this bucket", s.time, kind_name(s.kind), s.key),
    };
    Verdict {
        tampered: first_sign.is_some(),
        summary,
        first_sign,
        dr_snapshot: point_in_time.clone(),
        point_in_time,
        helm,
        protection_period_days: catalog.dr_period_days,
        days_left,
        last_clean,
    }
}

fn kind_name(kind: Kind) -> String {
    serde_json::to_value(kind).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_placed_in_the_layout() {
        let root = "k10/c/";
        assert_eq!(place(root, "k10/c/catalog/config"), Some(("k10/c/catalog/", "config")));
        assert_eq!(place(root, "k10/c/repos/u1/data/ab/abc"), Some(("k10/c/repos/u1/", "data/ab/abc")));
        assert_eq!(place(root, "k10/c/repos/u1/"), None);
        assert_eq!(place(root, "k10/c/repos//config"), None);
        assert_eq!(place(root, "k10/c/ransom-note.txt"), None);
        assert_eq!(place(root, "k10/other/catalog/config"), None);
    }
}
