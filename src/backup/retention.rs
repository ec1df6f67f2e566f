//! Which restore points a policy keeps: the grandfather-father-son rule.
//!
//! The finest configured period is the policy's own cadence: its count keeps that many of the
//! newest restore points (extra manual runs count too). Each coarser period (daily, weekly,
//! monthly, yearly) with count N keeps the newest restore point of each of the N most recent
//! periods that have one. A restore point kept by any period stays; the others are retired.
//! A policy without counts keeps everything.

use chrono::{DateTime, Datelike, Timelike, Utc};

use crate::api::Retention;

/// The period buckets a time falls in, coarse to fine identifiers.
fn bucket(t: DateTime<Utc>, period: usize) -> (i32, u32, u32, u32) {
    match period {
        0 => (t.year(), t.ordinal(), t.hour(), 0),
        1 => (t.year(), t.ordinal(), 0, 0),
        2 => {
            let w = t.iso_week();
            (w.year(), w.week(), 0, 0)
        }
        3 => (t.year(), t.month(), 0, 0),
        _ => (t.year(), 0, 0, 0),
    }
}

/// Returns, for restore points given with their times, the indexes of those to retire.
pub fn to_retire(retention: &Retention, times: &[DateTime<Utc>]) -> Vec<usize> {
    let counts = [retention.hourly, retention.daily, retention.weekly, retention.monthly, retention.yearly];
    if counts.iter().all(Option::is_none) {
        return Vec::new();
    }
    let mut order: Vec<usize> = (0..times.len()).collect();
    order.sort_by(|a, b| times[*b].cmp(&times[*a])); // newest first
    let mut keep = vec![false; times.len()];
    let finest = counts.iter().position(Option::is_some).expect("checked above");
    for (period, count) in counts.iter().enumerate() {
        let Some(count) = count else { continue };
        if period == finest {
            for &i in order.iter().take(*count as usize) {
                keep[i] = true;
            }
            continue;
        }
        let mut seen: Vec<(i32, u32, u32, u32)> = Vec::new();
        for &i in &order {
            let b = bucket(times[i], period);
            if seen.contains(&b) {
                continue;
            }
            if seen.len() as u32 >= *count {
                break;
            }
            seen.push(b);
            keep[i] = true;
        }
    }
    let mut retire: Vec<usize> = (0..times.len()).filter(|i| !keep[*i]).collect();
    retire.sort();
    retire
}

/// Parses `hourly=24,daily=7,weekly=4,monthly=12,yearly=7` (any subset).
pub fn parse(text: &str) -> Result<Retention, String> {
    let mut r = Retention::default();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (key, value) = part
            .split_once('=')
            .ok_or_else(|| format!("retention {part:?} is not period=count (e.g. daily=7)"))?;
        let n: u32 = value
            .trim()
            .parse()
            .map_err(|_| format!("retention count {value:?} for {key} is not a whole number"))?;
        if n == 0 {
            return Err(format!("retention count for {key} must be at least 1 (it would retire every new restore point)"));
        }
        let slot = match key.trim() {
            "hourly" => &mut r.hourly,
            "daily" => &mut r.daily,
            "weekly" => &mut r.weekly,
            "monthly" => &mut r.monthly,
            "yearly" => &mut r.yearly,
            other => return Err(format!("unknown retention period {other:?}: use hourly, daily, weekly, monthly or yearly")),
        };
        *slot = Some(n);
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().to_utc()
    }

    #[test]
    fn the_finest_period_counts_restore_points() {
        let r = parse("hourly=2").unwrap();
        let times = [at("2026-01-01T10:05:00Z"), at("2026-01-01T11:05:00Z"), at("2026-01-01T12:05:00Z")];
        assert_eq!(to_retire(&r, &times), vec![0]);
        // Runs within one hour count one by one.
        let times = [at("2026-01-01T12:05:00Z"), at("2026-01-01T12:35:00Z"), at("2026-01-01T12:00:00Z")];
        assert_eq!(to_retire(&r, &times), vec![2]);
    }

    #[test]
    fn periods_combine() {
        let r = parse("hourly=1,daily=2,monthly=2").unwrap();
        let times = [
            at("2025-12-31T10:00:00Z"),
            at("2026-01-01T10:00:00Z"),
            at("2026-01-02T09:00:00Z"),
            at("2026-01-02T10:00:00Z"),
            at("2026-01-03T08:00:00Z"),
        ];
        // hourly keeps #4; daily keeps #4 (Jan 3) and #3 (newest of Jan 2); monthly keeps #4
        // (January) and #0 (December).
        assert_eq!(to_retire(&r, &times), vec![1, 2]);
        assert!(to_retire(&Retention::default(), &times).is_empty());
    }

    #[test]
    fn parse_refuses_bad_input() {
        assert!(parse("hourly").is_err());
        assert!(parse("hourly=-1").is_err());
        assert!(parse("minutely=3").is_err());
        assert!(parse("hourly=0").is_err());
        assert_eq!(parse("daily=7, weekly=4").unwrap().weekly, Some(4));
    }
}
