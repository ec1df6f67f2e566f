//! When a policy is due: its `frequency` and `subFrequency`, parsed once into a [`Frequency`].
//!
//! K10's semantics: `@hourly`, `@daily`, `@weekly`, `@monthly` and `@yearly` run once per period,
//! at minute 0, hour 0, Sunday, day 1 and January unless `subFrequency` names other `minutes`,
//! `hours`, `weekdays` (0 = Sunday), `days` or `months`; several values run several times per
//! period (`@daily` with `hours: [7, 19]` runs twice a day). Only the fields finer than the
//! period apply: `@hourly` takes `minutes`, `@weekly` takes `minutes`, `hours`, `weekdays`, and so
//! on; any other field is an error, never ignored. A five-field cron expression (minute hour
//! day-of-month month day-of-week; `*`, lists, ranges, steps) is accepted too, without
//! `subFrequency`. `@onDemand` never comes due. Times are UTC.

use chrono::{DateTime, Datelike, Duration, Timelike, Utc};

use crate::api::SubFrequency;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    #[error("invalid frequency {0:?}: use @hourly, @daily, @weekly, @monthly, @yearly, @onDemand or a 5-field cron expression such as \"0 */6 * * *\"")]
    Frequency(String),
    #[error("invalid subFrequency for {frequency}: {problem}")]
    SubFrequency { frequency: String, problem: String },
}

/// The minutes, hours, days of the month, months and weekdays a schedule runs at.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Fields {
    minutes: Vec<u32>,
    hours: Vec<u32>,
    days: Vec<u32>,
    months: Vec<u32>,
    weekdays: Vec<u32>,
    /// Cron's rule: when both days of the month and weekdays are restricted, either matches.
    days_or_weekdays: bool,
}

/// A parsed `frequency` (+ `subFrequency`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frequency {
    text: String,
    fields: Option<Fields>,
}

const PERIODS: [&str; 5] = ["@hourly", "@daily", "@weekly", "@monthly", "@yearly"];

impl Frequency {
    pub fn parse(frequency: &str, sub: Option<&SubFrequency>) -> Result<Frequency, ScheduleError> {
        let text = frequency.to_string();
        if frequency == "@onDemand" {
            if sub.is_some_and(|s| !s.is_empty()) {
                return Err(sub_err(frequency, "an on-demand policy has no schedule to refine"));
            }
            return Ok(Frequency { text, fields: None });
        }
        if let Some(rank) = PERIODS.iter().position(|p| *p == frequency) {
            let sub = sub.cloned().unwrap_or_default();
            // Which fields refine each period: finer than the period itself.
            let allowed = [
                ("minutes", !sub.minutes.is_empty(), 0),
                ("hours", !sub.hours.is_empty(), 1),
                ("weekdays", !sub.weekdays.is_empty(), 2),
                ("days", !sub.days.is_empty(), 3),
                ("months", !sub.months.is_empty(), 4),
            ];
            for (name, given, needs) in allowed {
                // @weekly takes weekdays, @monthly days (not weekdays), @yearly months and days.
                let ok = match name {
                    "weekdays" => rank == 2,
                    "days" => rank >= 3,
                    _ => rank >= needs,
                };
                if given && !ok {
                    return Err(sub_err(frequency, &format!("{name} does not apply to {frequency}")));
                }
            }
            let pick = |given: &[u32], default: u32, lo: u32, hi: u32, name: &str| -> Result<Vec<u32>, ScheduleError> {
                if let Some(bad) = given.iter().find(|v| !(lo..=hi).contains(*v)) {
                    return Err(sub_err(frequency, &format!("{name} value {bad} is outside {lo}..{hi}")));
                }
                let mut values = if given.is_empty() { vec![default] } else { given.to_vec() };
                values.sort_unstable();
                values.dedup();
                Ok(values)
            };
            let all = |lo: u32, hi: u32| (lo..=hi).collect::<Vec<u32>>();
            let fields = Fields {
                minutes: pick(&sub.minutes, 0, 0, 59, "minutes")?,
                hours: if rank >= 1 { pick(&sub.hours, 0, 0, 23, "hours")? } else { all(0, 23) },
                weekdays: if rank == 2 { pick(&sub.weekdays, 0, 0, 6, "weekdays")? } else { all(0, 6) },
                days: if rank >= 3 { pick(&sub.days, 1, 1, 31, "days")? } else { all(1, 31) },
                months: if rank == 4 { pick(&sub.months, 1, 1, 12, "months")? } else { all(1, 12) },
                days_or_weekdays: false,
            };
            return Ok(Frequency { text, fields: Some(fields) });
        }
        if frequency.starts_with('@') {
            return Err(ScheduleError::Frequency(text));
        }
        if sub.is_some_and(|s| !s.is_empty()) {
            return Err(sub_err(frequency, "a cron expression says every time itself"));
        }
        Ok(Frequency {
            fields: Some(cron(frequency).ok_or_else(|| ScheduleError::Frequency(text.clone()))?),
            text,
        })
    }

    /// Whether it ever comes due.
    pub fn is_scheduled(&self) -> bool {
        self.fields.is_some()
    }

    /// The first due time strictly after `t` (whole minutes), within the next five years.
    pub fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let f = self.fields.as_ref()?;
        let mut t = (t + Duration::minutes(1)).with_second(0)?.with_nanosecond(0)?;
        let end = t + Duration::days(5 * 366);
        while t < end {
            if !f.months.contains(&t.month()) {
                t = first_of_next_month(t)?;
                continue;
            }
            let day = f.days.contains(&t.day());
            let weekday = f.weekdays.contains(&t.weekday().num_days_from_sunday());
            let day_ok = if f.days_or_weekdays { day || weekday } else { day && weekday };
            if !day_ok {
                t = (t + Duration::days(1)).with_hour(0)?.with_minute(0)?;
                continue;
            }
            if !f.hours.contains(&t.hour()) {
                t = (t + Duration::hours(1)).with_minute(0)?;
                continue;
            }
            if !f.minutes.contains(&t.minute()) {
                t += Duration::minutes(1);
                continue;
            }
            return Some(t);
        }
        None
    }

    /// The newest due time at or before `now` and after `since`, if one is.
    pub fn due_between(&self, since: DateTime<Utc>, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let mut due = None;
        let mut t = since;
        while let Some(next) = self.next_after(t).filter(|n| *n <= now) {
            due = Some(next);
            t = next;
        }
        due
    }
}

impl std::fmt::Display for Frequency {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

fn sub_err(frequency: &str, problem: &str) -> ScheduleError {
    ScheduleError::SubFrequency {
        frequency: frequency.to_string(),
        problem: problem.to_string(),
    }
}

fn first_of_next_month(t: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let (y, m) = if t.month() == 12 { (t.year() + 1, 1) } else { (t.year(), t.month() + 1) };
    chrono::NaiveDate::from_ymd_opt(y, m, 1)?.and_hms_opt(0, 0, 0).map(|d| d.and_utc())
}

/// Five cron fields, each `*`, `a`, `a-b`, `*/s`, `a-b/s`, comma-joined.
fn cron(expr: &str) -> Option<Fields> {
    let parts: Vec<&str> = expr.split_whitespace().collect();
    let [minute, hour, day, month, weekday] = parts.as_slice() else { return None };
    let field = |text: &str, lo: u32, hi: u32| -> Option<Vec<u32>> {
        let mut values = Vec::new();
        for item in text.split(',') {
            let (range, step) = match item.split_once('/') {
                Some((r, s)) => (r, s.parse::<u32>().ok().filter(|s| *s > 0)?),
                None => (item, 1),
            };
            let (a, b) = match range {
                "*" => (lo, hi),
                r => match r.split_once('-') {
                    Some((a, b)) => (a.parse().ok()?, b.parse().ok()?),
                    None => {
                        let a = r.parse().ok()?;
                        (a, if step > 1 { hi } else { a })
                    }
                },
            };
            if a < lo || b > hi || a > b {
                return None;
            }
            values.extend((a..=b).step_by(step as usize));
        }
        values.sort_unstable();
        values.dedup();
        Some(values)
    };
    // Day of week 7 is Sunday too.
    let mut weekdays = field(weekday, 0, 7)?;
    if weekdays.contains(&7) {
        weekdays.retain(|d| *d != 7);
        weekdays.push(0);
        weekdays.sort_unstable();
        weekdays.dedup();
    }
    Some(Fields {
        minutes: field(minute, 0, 59)?,
        hours: field(hour, 0, 23)?,
        days: field(day, 1, 31)?,
        months: field(month, 1, 12)?,
        weekdays,
        days_or_weekdays: *day != "*" && *weekday != "*",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn sub(f: impl FnOnce(&mut SubFrequency)) -> SubFrequency {
        let mut s = SubFrequency::default();
        f(&mut s);
        s
    }

    fn next(freq: &str, s: Option<&SubFrequency>, t: &str) -> String {
        Frequency::parse(freq, s).unwrap().next_after(at(t)).unwrap().to_rfc3339()
    }

    #[test]
    fn periods_run_at_their_defaults() {
        assert_eq!(next("@hourly", None, "2026-12-04T18:20:00Z"), "2026-12-04T19:00:00+00:00");
        assert_eq!(next("@daily", None, "2026-12-04T18:20:00Z"), "2026-12-05T00:00:00+00:00");
        // 2026-12-04 is a Friday: the next Sunday is the 6th.
        assert_eq!(next("@weekly", None, "2026-12-04T18:20:00Z"), "2026-12-06T00:00:00+00:00");
        assert_eq!(next("@monthly", None, "2026-12-04T18:20:00Z"), "2027-01-01T00:00:00+00:00");
        assert_eq!(next("@yearly", None, "2026-12-04T18:20:00Z"), "2027-01-01T00:00:00+00:00");
        // Due exactly now is not "after now".
        assert_eq!(next("@hourly", None, "2026-12-04T19:00:00Z"), "2026-12-04T20:00:00+00:00");
    }

    #[test]
    fn sub_frequency_refines_the_period() {
        let twice = sub(|s| s.minutes = vec![30, 0]);
        assert_eq!(next("@hourly", Some(&twice), "2026-12-04T18:20:00Z"), "2026-12-04T18:30:00+00:00");
        let evenings = sub(|s| {
            s.hours = vec![7, 22];
            s.minutes = vec![15];
        });
        assert_eq!(next("@daily", Some(&evenings), "2026-12-04T18:20:00Z"), "2026-12-04T22:15:00+00:00");
        let fridays = sub(|s| {
            s.weekdays = vec![5];
            s.hours = vec![23];
        });
        assert_eq!(next("@weekly", Some(&fridays), "2026-12-04T18:20:00Z"), "2026-12-04T23:00:00+00:00");
        let fifteenth = sub(|s| s.days = vec![15]);
        assert_eq!(next("@monthly", Some(&fifteenth), "2026-12-04T18:20:00Z"), "2026-12-15T00:00:00+00:00");
        let june = sub(|s| {
            s.months = vec![6];
            s.days = vec![30];
        });
        assert_eq!(next("@yearly", Some(&june), "2026-12-04T18:20:00Z"), "2027-06-30T00:00:00+00:00");
        // A day that a month lacks is skipped, as K10 and cron do.
        let thirty_first = sub(|s| s.days = vec![31]);
        assert_eq!(next("@monthly", Some(&thirty_first), "2027-02-01T00:00:00Z"), "2027-03-31T00:00:00+00:00");
    }

    #[test]
    fn cron_expressions() {
        assert_eq!(next("* * * * *", None, "2026-12-04T18:20:31Z"), "2026-12-04T18:21:00+00:00");
        assert_eq!(next("0 */6 * * *", None, "2026-12-04T18:20:00Z"), "2026-12-05T00:00:00+00:00");
        assert_eq!(next("30 1 */2 * *", None, "2026-12-04T18:20:00Z"), "2026-12-05T01:30:00+00:00");
        // Day of month and weekday both restricted: either matches (the 6th is a Sunday).
        assert_eq!(next("0 0 15 * 0", None, "2026-12-04T18:20:00Z"), "2026-12-06T00:00:00+00:00");
        assert_eq!(next("0 0 * * 7", None, "2026-12-04T18:20:00Z"), "2026-12-06T00:00:00+00:00");
    }

    #[test]
    fn due_between_is_the_newest_missed_time() {
        let f = Frequency::parse("@hourly", None).unwrap();
        assert_eq!(f.due_between(at("2026-12-04T15:30:00Z"), at("2026-12-04T18:20:00Z")), Some(at("2026-12-04T18:00:00Z")));
        assert_eq!(f.due_between(at("2026-12-04T18:00:00Z"), at("2026-12-04T18:20:00Z")), None);
        assert!(!Frequency::parse("@onDemand", None).unwrap().is_scheduled());
    }

    #[test]
    fn bad_input_is_refused_with_the_reason() {
        for bad in ["@minutely", "hourly", "* * * *", "61 * * * *", "*/0 * * * *", "5-1 * * * *"] {
            assert!(matches!(Frequency::parse(bad, None), Err(ScheduleError::Frequency(_))), "{bad}");
        }
        let hours = sub(|s| s.hours = vec![3]);
        let err = Frequency::parse("@hourly", Some(&hours)).unwrap_err().to_string();
        assert!(err.contains("hours does not apply to @hourly"), "{err}");
        let weekdays = sub(|s| s.weekdays = vec![1]);
        assert!(Frequency::parse("@monthly", Some(&weekdays)).is_err());
        let out_of_range = sub(|s| s.minutes = vec![60]);
        assert!(Frequency::parse("@hourly", Some(&out_of_range)).unwrap_err().to_string().contains("outside 0..59"));
        assert!(Frequency::parse("0 * * * *", Some(&hours)).is_err());
        assert!(Frequency::parse("@onDemand", Some(&hours)).is_err());
    }
}
