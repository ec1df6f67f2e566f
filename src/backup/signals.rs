//! Signs that an application's own data was encrypted (ransomware inside the application, not an
//! attack on the backups), read from what each volume's backup already knows, against the
//! volume's own history:
//! - the share of files that changed since the volume's previous snapshot;
//! - the share of the new data that did not compress (encrypted data does not);
//! - an extension that most changed files carry and the previous snapshot had none of
//!   (`report.docx` → `report.docx.locked`).
//!
//! A restore point is **suspicious** when, in one of its volumes of at least `minFiles` files,
//! `changed` or more of the files changed, `incompressible` or more of the new data did not
//! compress, and either the volume's earlier new data did compress (under `incompressible`) or a
//! new extension is carried by `newExtension` or more of the changed files. An ordinary release
//! that rewrites many text files changes much but compresses; a volume of photos or archives
//! never compresses, so there only a new extension tells. Encryption that keeps the names of a
//! volume whose data never compressed is not told apart from an ordinary rewrite.
//!
//! The defaults (`changed=0.5,incompressible=0.9,newExtension=0.5,minFiles=10`) are tuned per
//! policy with the annotation [`ANNOTATION`] (any of the four, or `off`). These are heuristics
//! for the application's data: an attacker who holds k10's keys can write snapshots that show no
//! sign, which the incident timeline (`kubectl k10 incident`) looks at instead.

use crate::api::{Policy, RestorePointContent, VolumeSignals};
use crate::repo::{Snapshot, READ_CHANGED};

pub const ANNOTATION: &str = "k10.kasten.io/encryption-signals";

/// New file data under this size says nothing about compression.
const MIN_NEW_BYTES: u64 = 64 << 10;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Thresholds {
    pub changed: f64,
    pub incompressible: f64,
    pub new_extension: f64,
    pub min_files: u64,
    pub enabled: bool,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            changed: 0.5,
            incompressible: 0.9,
            new_extension: 0.5,
            min_files: 10,
            enabled: true,
        }
    }
}

impl Thresholds {
    /// The policy's thresholds: its annotation over the defaults.
    pub fn of(policy: &Policy) -> Result<Thresholds, String> {
        match policy.metadata.annotations.as_ref().and_then(|a| a.get(ANNOTATION)) {
            Some(text) => Thresholds::parse(text),
            None => Ok(Thresholds::default()),
        }
    }

    /// `off`, or comma-separated `name=value` of `changed`, `incompressible`, `newExtension`
    /// (shares from 0 to 1) and `minFiles`.
    pub fn parse(text: &str) -> Result<Thresholds, String> {
        let mut t = Thresholds::default();
        if text.trim() == "off" {
            t.enabled = false;
            return Ok(t);
        }
        let usage = "write it as \"changed=0.5,incompressible=0.9,newExtension=0.5,minFiles=10\" (any of them), or \"off\"";
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, value) = part.split_once('=').ok_or_else(|| format!("{ANNOTATION}: {part:?} is not name=value; {usage}"))?;
            let share = || match value.trim().parse::<f64>() {
                Ok(v) if (0.0..=1.0).contains(&v) => Ok(v),
                _ => Err(format!("{ANNOTATION}: {name}={value} is not a share from 0 to 1")),
            };
            match name.trim() {
                "changed" => t.changed = share()?,
                "incompressible" => t.incompressible = share()?,
                "newExtension" => t.new_extension = share()?,
                "minFiles" => t.min_files = value.trim().parse().map_err(|_| format!("{ANNOTATION}: minFiles={value} is not a whole number"))?,
                other => return Err(format!("{ANNOTATION}: unknown threshold {other:?}; {usage}")),
            }
        }
        Ok(t)
    }
}

fn share(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        return 0.0;
    }
    // Three decimals: what is recorded is what is compared.
    ((part as f64 / whole as f64).min(1.0) * 1000.0).round() / 1000.0
}

/// The signals of a volume snapshot against the earlier snapshots of its series (`earlier`,
/// oldest first, without `snapshot`). None for a volume's first snapshot: there is no history.
pub fn of_volume(pvc: &str, snapshot: &Snapshot, earlier: &[&Snapshot]) -> Option<VolumeSignals> {
    let previous = earlier.last()?;
    let incremental = snapshot.tags.iter().any(|t| t == READ_CHANGED);
    let changed_files = if incremental { snapshot.files_new + snapshot.files_changed } else { snapshot.files };
    let changed_share = if incremental {
        share(changed_files, snapshot.files)
    } else {
        // Every file was read: what is new data is what changed.
        share(snapshot.content_added, snapshot.bytes)
    };
    let incompressible_share =
        (snapshot.content_added >= MIN_NEW_BYTES).then(|| share(snapshot.content_added_stored, snapshot.content_added));
    let (added, stored) = earlier.iter().fold((0, 0), |(a, s), e| (a + e.content_added, s + e.content_added_stored));
    let history_incompressible_share = (added >= MIN_NEW_BYTES).then(|| share(stored, added));
    let new_extension = match (&snapshot.extensions, &previous.extensions) {
        (Some(now), Some(before)) => now
            .0
            .iter()
            .filter(|(ext, _)| !ext.is_empty() && before.count(ext) == 0)
            .max_by(|a, b| a.1.cmp(b.1).then_with(|| b.0.cmp(a.0)))
            .map(|(ext, n)| (ext.clone(), share(*n, changed_files))),
        _ => None,
    };
    Some(VolumeSignals {
        pvc: pvc.to_string(),
        files: snapshot.files,
        changed_share,
        incompressible_share,
        history_incompressible_share,
        new_extension_share: new_extension.as_ref().map(|(_, s)| *s),
        new_extension: new_extension.map(|(e, _)| e),
    })
}

/// Why a volume's signals look like mass encryption, if they do.
pub fn suspicion(s: &VolumeSignals, t: &Thresholds) -> Option<String> {
    let pct = |x: f64| format!("{:.0}%", x * 100.0);
    if !t.enabled || s.files < t.min_files || s.changed_share < t.changed {
        return None;
    }
    let incompressible = s.incompressible_share.filter(|i| *i >= t.incompressible)?;
    let head = format!(
        "volume {}: {} of its {} files changed and {} of the new data did not compress",
        s.pvc,
        pct(s.changed_share),
        s.files,
        pct(incompressible)
    );
    let extension = s.new_extension.as_ref().zip(s.new_extension_share).filter(|(_, share)| *share >= t.new_extension);
    match (s.history_incompressible_share.filter(|h| *h < t.incompressible), extension) {
        (Some(history), Some((ext, share))) => Some(format!(
            "{head} (its earlier new data: {}), and {} of the changed files carry the new extension .{ext}",
            pct(history),
            pct(share)
        )),
        (Some(history), None) => Some(format!("{head} (its earlier new data: {})", pct(history))),
        (None, Some((ext, share))) => Some(format!("{head}, and {} of the changed files carry the new extension .{ext}", pct(share))),
        (None, None) => None,
    }
}

/// The signals of the volume snapshots of one run, each against the earlier snapshots of its
/// series (`all`: the repository's snapshots), and why the run looks like mass encryption.
pub fn of_run<'a>(volumes: impl IntoIterator<Item = (&'a str, &'a Snapshot)>, all: &[Snapshot], t: &Thresholds) -> (Vec<VolumeSignals>, Option<String>) {
    let mut signals = Vec::new();
    for (pvc, snapshot) in volumes {
        let Some(series) = snapshot.tags.iter().find(|tag| tag.starts_with("pvc-uid=")) else {
            continue;
        };
        let mut earlier: Vec<&Snapshot> = all
            .iter()
            .filter(|s| s.id != snapshot.id && s.time <= snapshot.time && s.tags.contains(series))
            .collect();
        earlier.sort_by_key(|s| s.time);
        signals.extend(of_volume(pvc, snapshot, &earlier));
    }
    let reasons: Vec<String> = signals.iter().filter_map(|s| suspicion(s, t)).collect();
    (signals, (!reasons.is_empty()).then(|| reasons.join("; ")))
}

/// What a run says (and its Event) of a suspicious restore point.
pub fn warning(namespace: &str, restore_point: &str, why: &str) -> String {
    format!(
        "restore point {namespace}/{restore_point} is suspicious: the application's data looks encrypted ({why}); `kubectl k10 restorepoint list -n {namespace}` names the last clean one, `kubectl k10 restore --last-clean -n {namespace}` restores it"
    )
}

/// One namespace's restore points as the signals judge them.
#[derive(Debug, Clone, Copy)]
pub struct Judged<'a> {
    /// The oldest suspicious restore point.
    pub first_suspicious: Option<&'a RestorePointContent>,
    /// The newest restore point before the first suspicious one (the newest of all when none is).
    pub last_clean: Option<&'a RestorePointContent>,
}

/// Judges the restore points of one namespace (`contents`, in any order).
pub fn judge(contents: &[RestorePointContent]) -> Judged<'_> {
    let time = |c: &RestorePointContent| chrono::DateTime::parse_from_rfc3339(&c.spec.end_time).map(|t| t.to_utc()).ok();
    let mut dated: Vec<_> = contents.iter().filter_map(|c| Some((time(c)?, c))).collect();
    dated.sort_by_key(|(t, _)| *t);
    let first = dated.iter().position(|(_, c)| c.spec.suspicious.is_some());
    let before = &dated[..first.unwrap_or(dated.len())];
    Judged {
        first_suspicious: first.map(|i| dated[i].1),
        last_clean: before.last().map(|(_, c)| *c),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::repo::Extensions;

    #[allow(clippy::too_many_arguments)]
    fn snap(id: &str, secs: i64, incremental: bool, files: u64, changed: u64, added: u64, stored: u64, exts: &[(&str, u64)]) -> Snapshot {
        Snapshot {
            id: id.into(),
            time: chrono::DateTime::from_timestamp(secs, 0).unwrap(),
            tags: vec!["pvc-uid=u".into(), if incremental { READ_CHANGED.into() } else { "read=full".into() }],
            files,
            bytes: 100 << 20,
            bytes_added: added,
            files_unread: files - changed,
            files_new: 0,
            files_changed: changed,
            content_added: added,
            content_added_stored: stored,
            extensions: Some(Extensions(exts.iter().map(|(e, n)| (e.to_string(), *n)).collect())),
        }
    }

    #[test]
    fn thresholds_parse_and_refuse() {
        assert_eq!(Thresholds::parse("").unwrap(), Thresholds::default());
        let t = Thresholds::parse("changed=0.3, minFiles=100").unwrap();
        assert_eq!((t.changed, t.min_files, t.incompressible), (0.3, 100, 0.9));
        assert!(!Thresholds::parse("off").unwrap().enabled);
        for bad in ["changed=2", "changed", "speed=1", "minFiles=-1", "incompressible=x"] {
            let e = Thresholds::parse(bad).unwrap_err();
            assert!(e.contains(ANNOTATION), "{bad}: {e}");
        }
    }

    #[test]
    fn encryption_is_told_from_a_release() {
        let first = snap("a", 0, false, 100, 100, 80 << 20, 30 << 20, &[("txt", 100)]);
        let t = Thresholds::default();
        // Everything rewritten with random bytes under a new extension.
        let mut encrypted = snap("b", 10, true, 100, 0, 80 << 20, 81 << 20, &[("locked", 100)]);
        encrypted.files_new = 100;
        let s = of_volume("data", &encrypted, &[&first]).unwrap();
        assert_eq!((s.changed_share, s.incompressible_share, s.history_incompressible_share), (1.0, Some(1.0), Some(0.375)));
        assert_eq!((s.new_extension.as_deref(), s.new_extension_share), (Some("locked"), Some(1.0)));
        let why = suspicion(&s, &t).expect("suspicious");
        assert!(why.contains("100% of its 100 files changed") && why.contains(".locked"), "{why}");
        // A release rewriting 90% of the text files: changed, but it compresses.
        let release = snap("c", 10, true, 100, 90, 70 << 20, 20 << 20, &[("txt", 100)]);
        assert_eq!(suspicion(&of_volume("data", &release, &[&first]).unwrap(), &t), None);
        // In place, same names, on a volume whose data used to compress: the compression tells.
        let in_place = snap("d", 10, true, 100, 100, 80 << 20, 80 << 20, &[("txt", 100)]);
        assert!(suspicion(&of_volume("data", &in_place, &[&first]).unwrap(), &t).is_some());
        // The same on a volume of photos (never compressed): nothing tells it from a rewrite.
        let photos = snap("e", 0, false, 100, 100, 80 << 20, 80 << 20, &[("jpg", 100)]);
        let rewritten = snap("f", 10, true, 100, 100, 80 << 20, 80 << 20, &[("jpg", 100)]);
        assert_eq!(suspicion(&of_volume("data", &rewritten, &[&photos]).unwrap(), &t), None);
        // ... unless the names change.
        let mut renamed = snap("g", 10, true, 100, 0, 80 << 20, 80 << 20, &[("crypt", 100)]);
        renamed.files_new = 100;
        assert!(suspicion(&of_volume("data", &renamed, &[&photos]).unwrap(), &t).is_some());
        // Small volumes, a first snapshot and `off` say nothing.
        let small = snap("h", 10, true, 5, 5, 80 << 20, 81 << 20, &[("locked", 5)]);
        assert_eq!(suspicion(&of_volume("data", &small, &[&first]).unwrap(), &t), None);
        assert!(of_volume("data", &first, &[]).is_none());
        assert_eq!(suspicion(&s, &Thresholds::parse("off").unwrap()), None);
    }

    #[test]
    fn a_run_is_judged_by_its_volumes_against_their_own_series() {
        let first = snap("a", 0, false, 100, 100, 80 << 20, 30 << 20, &[("txt", 100)]);
        let mut encrypted = snap("b", 10, true, 100, 0, 80 << 20, 81 << 20, &[("locked", 100)]);
        encrypted.files_new = 100;
        let mut other_series = snap("z", 5, false, 100, 100, 80 << 20, 80 << 20, &[("locked", 100)]);
        other_series.tags = vec!["pvc-uid=other".into()];
        let all = vec![first.clone(), other_series, encrypted.clone()];
        let (signals, why) = of_run([("data", &encrypted)], &all, &Thresholds::default());
        assert_eq!(signals.len(), 1);
        assert_eq!(signals[0].history_incompressible_share, Some(0.375), "only its own series counts");
        assert!(why.unwrap().starts_with("volume data: "));
    }
}
