//! The lock rules of the immutability contract: the protection period and its bounds.
//!
//! A bucket's default retention R (days) bounds the protection period P: 1 ≤ P ≤ R − 20. Every object
//! written through an immutable profile is locked for P + 20 days, so that retention maintenance (at
//! least every 2 days, extending locks that end within P + 10 days) always keeps P days of history.

use std::fmt;

/// Extra days every lock carries beyond the protection period.
pub const LOCK_MARGIN_DAYS: u32 = 20;
/// The smallest default retention an immutable bucket may have.
pub const MIN_DEFAULT_RETENTION_DAYS: u32 = 1 + LOCK_MARGIN_DAYS;

/// A protection period in whole days (at least 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ProtectionPeriod(u32);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PeriodError {
    #[error("protection period {0:?} is not a whole number of days: write it as 30d, 30 or 720h")]
    Malformed(String),
    #[error("protection period {0:?} is not a whole number of days: hours must be a multiple of 24 (e.g. 720h)")]
    NotWholeDays(String),
    #[error("protection period must be at least 1 day")]
    Zero,
    #[error(
        "protection period of {requested} days is outside the allowed range 1 to {max} days for this bucket \
         (default retention {retention} days); to allow it, raise the bucket's default retention to at least {needed} days"
    )]
    TooLong {
        requested: u32,
        max: u32,
        retention: u32,
        needed: u32,
    },
    #[error(
        "the bucket's default retention of {retention} days allows no protection period: it must be at least \
         {MIN_DEFAULT_RETENTION_DAYS} days"
    )]
    RetentionTooShort { retention: u32 },
}

impl ProtectionPeriod {
    /// Parses `30d`, `30` or `720h` (whole days only). The K10 form `720h0m0s` is accepted too.
    pub fn parse(text: &str) -> Result<Self, PeriodError> {
        let t = text.trim();
        let malformed = || PeriodError::Malformed(text.to_string());
        let digits = |s: &str| -> Result<u64, PeriodError> {
            if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
                return Err(malformed());
            }
            s.parse::<u64>().map_err(|_| malformed())
        };
        let days = if let Some(d) = t.strip_suffix('d') {
            digits(d)?
        } else if let Some(h) = t.strip_suffix("h0m0s").or_else(|| t.strip_suffix('h')) {
            let hours = digits(h)?;
            if hours % 24 != 0 {
                return Err(PeriodError::NotWholeDays(text.to_string()));
            }
            hours / 24
        } else {
            digits(t)?
        };
        match days {
            0 => Err(PeriodError::Zero),
            d => u32::try_from(d).map(ProtectionPeriod).map_err(|_| malformed()),
        }
    }

    pub fn from_days(days: u32) -> Result<Self, PeriodError> {
        if days == 0 {
            Err(PeriodError::Zero)
        } else {
            Ok(ProtectionPeriod(days))
        }
    }

    pub fn days(self) -> u32 {
        self.0
    }

    /// The duration as stored in a Profile (`720h`).
    pub fn to_duration_string(self) -> String {
        format!("{}h", u64::from(self.0) * 24)
    }

    /// How long each object written through the profile is locked: P + 20 days.
    pub fn lock_days(self) -> u32 {
        self.0 + LOCK_MARGIN_DAYS
    }

    /// Checks P against a bucket's default retention: 1 ≤ P ≤ R − 20.
    pub fn check_against(self, retention_days: u32) -> Result<(), PeriodError> {
        let max = allowed_max(retention_days)?;
        if self.0 > max {
            return Err(PeriodError::TooLong {
                requested: self.0,
                max,
                retention: retention_days,
                needed: self.0 + LOCK_MARGIN_DAYS,
            });
        }
        Ok(())
    }
}

impl fmt::Display for ProtectionPeriod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            1 => write!(f, "1 day"),
            d => write!(f, "{d} days"),
        }
    }
}

/// The longest protection period a bucket with this default retention allows (R − 20).
pub fn allowed_max(retention_days: u32) -> Result<u32, PeriodError> {
    if retention_days < MIN_DEFAULT_RETENTION_DAYS {
        return Err(PeriodError::RetentionTooShort {
            retention: retention_days,
        });
    }
    Ok(retention_days - LOCK_MARGIN_DAYS)
}

/// A bucket's default retention as S3 states it: days or years (a year counts as 365 days).
pub fn retention_days(days: Option<i32>, years: Option<i32>) -> Option<u32> {
    match (days, years) {
        (Some(d), _) if d > 0 => Some(d as u32),
        (_, Some(y)) if y > 0 => Some(y as u32 * 365),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_days_hours_and_bare_numbers() {
        for (text, days) in [("30d", 30), ("30", 30), ("720h", 30), ("720h0m0s", 30), ("1d", 1), (" 7d ", 7)] {
            assert_eq!(ProtectionPeriod::parse(text).unwrap().days(), days, "{text}");
        }
    }

    #[test]
    fn refuses_malformed_periods() {
        for text in ["3 weeks", "-1d", "1.5d", "", "d", "30days", "1e3", "+5", "99999999999d"] {
            assert!(
                matches!(ProtectionPeriod::parse(text), Err(PeriodError::Malformed(_))),
                "{text:?} should be malformed"
            );
        }
        assert_eq!(ProtectionPeriod::parse("0"), Err(PeriodError::Zero));
        assert_eq!(ProtectionPeriod::parse("0d"), Err(PeriodError::Zero));
        assert!(matches!(ProtectionPeriod::parse("36h"), Err(PeriodError::NotWholeDays(_))));
    }

    #[test]
    fn range_is_one_to_retention_minus_twenty() {
        let p = |d| ProtectionPeriod::from_days(d).unwrap();
        assert!(p(1).check_against(60).is_ok());
        assert!(p(40).check_against(60).is_ok());
        let err = p(41).check_against(60).unwrap_err();
        assert_eq!(
            err,
            PeriodError::TooLong {
                requested: 41,
                max: 40,
                retention: 60,
                needed: 61
            }
        );
        assert!(err.to_string().contains("1 to 40 days"));
        assert!(err.to_string().contains("at least 61 days"));
        assert!(p(1).check_against(21).is_ok());
        assert!(p(2).check_against(21).is_err());
        assert!(matches!(p(1).check_against(20), Err(PeriodError::RetentionTooShort { retention: 20 })));
        assert_eq!(allowed_max(retention_days(None, Some(1)).unwrap()), Ok(345));
    }

    #[test]
    fn lock_and_display() {
        let p = ProtectionPeriod::parse("30d").unwrap();
        assert_eq!(p.lock_days(), 50);
        assert_eq!(p.to_duration_string(), "720h");
        assert_eq!(p.to_string(), "30 days");
        assert_eq!(ProtectionPeriod::from_days(1).unwrap().to_string(), "1 day");
    }
}
