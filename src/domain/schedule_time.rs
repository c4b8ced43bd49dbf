use chrono::{DateTime, Timelike, Utc};
use croner::Cron;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

use super::Invalid;

/// A standard five-field cron expression (minute hour day-of-month month
/// day-of-week), as in crontab(5).
#[derive(Clone, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CronExpr {
    text: String,
    cron: Cron,
}

impl CronExpr {
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// True for a six-field expression with a seconds field.
    pub fn has_seconds(&self) -> bool {
        self.text.split(' ').count() == 6
    }

    /// The daily "at HH:MM" schedule written as cron.
    pub fn daily(hour: u8, minute: u8) -> Result<Self, Invalid> {
        if hour > 23 {
            return Err(Invalid::new("must be an hour between 0 and 23"));
        }
        if minute > 59 {
            return Err(Invalid::new("must be a minute between 0 and 59"));
        }
        Self::try_from(format!("{minute} {hour} * * *"))
    }

    /// The first run strictly after `after`, evaluated in `tz` so daily runs
    /// follow the wall clock across daylight-saving changes.
    pub fn next_after(&self, after: DateTime<Utc>, tz: &TimeZone) -> Option<DateTime<Utc>> {
        // croner keeps the sub-second part of its start time; runs are on whole seconds.
        let local = after.with_timezone(&tz.0).with_nanosecond(0)?;
        let next = self.cron.find_next_occurrence(&local, false).ok()?.with_nanosecond(0)?;
        Some(next.with_timezone(&Utc))
    }
}

impl TryFrom<String> for CronExpr {
    type Error = Invalid;
    fn try_from(text: String) -> Result<Self, Invalid> {
        let fields: Vec<&str> = text.split_whitespace().collect();
        // Six fields (seconds first) exist for tests and demos; the API
        // accepts them only when SCHEDULE_SECONDS is set.
        if fields.len() != 5 && fields.len() != 6 {
            return Err(Invalid::new("must have five fields: minute hour day-of-month month day-of-week"));
        }
        let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '*' | ',' | '-' | '/');
        if !text.chars().all(|c| allowed(c) || c == ' ') {
            return Err(Invalid::new("contains characters cron does not use"));
        }
        let normalised = fields.join(" ");
        let cron =
            Cron::from_str(&normalised).map_err(|e| Invalid::new(format!("is not a valid cron expression ({e})")))?;
        Ok(Self { text: normalised, cron })
    }
}

// Cron syntax is richer than a pattern can say; `format: cron` names it
// (scripts/schemathesis.sh teaches the fuzzer to write it).
super::documented!(
    CronExpr,
    serde_json::json!({"type": "string", "format": "cron", "maxLength": 255,
        "description": "Five fields: minute hour day-of-month month day-of-week, as in crontab(5).",
        "examples": ["0 2 * * *", "*/15 8-18 * * 1-5"]})
);

impl From<CronExpr> for String {
    fn from(c: CronExpr) -> String {
        c.text
    }
}

impl fmt::Debug for CronExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CronExpr({:?})", self.text)
    }
}

impl PartialEq for CronExpr {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

/// An IANA time zone name such as `Europe/Berlin`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TimeZone(pub chrono_tz::Tz);

impl TimeZone {
    pub fn name(&self) -> &'static str {
        self.0.name()
    }
}

impl TryFrom<String> for TimeZone {
    type Error = Invalid;
    fn try_from(s: String) -> Result<Self, Invalid> {
        chrono_tz::Tz::from_str(&s)
            .map(TimeZone)
            .map_err(|_| Invalid::new(format!("must be an IANA time zone such as Europe/Berlin, got {s:?}")))
    }
}

super::documented!(
    TimeZone,
    serde_json::json!({"type": "string", "description": "An IANA time zone name.",
        "enum": chrono_tz::TZ_VARIANTS.iter().map(|t| t.name()).collect::<Vec<_>>()})
);

impl FromStr for TimeZone {
    type Err = Invalid;
    fn from_str(s: &str) -> Result<Self, Invalid> {
        Self::try_from(s.to_string())
    }
}

impl From<TimeZone> for String {
    fn from(t: TimeZone) -> String {
        t.name().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone as _;

    #[test]
    fn five_fields_only() {
        assert!("0 2 * * *".parse::<String>().map(CronExpr::try_from).unwrap().is_ok());
        for bad in ["61 * * * *", "* * * *", "0 0 0 * * * * *", "0 24 * * *", "0 2 * * *; reboot", "@daily"] {
            assert!(CronExpr::try_from(bad.to_string()).is_err(), "{bad}");
        }
        assert!(CronExpr::daily(24, 0).is_err());
        assert!(CronExpr::try_from("*/2 * * * * *".to_string()).unwrap().has_seconds());
        assert!(!CronExpr::daily(2, 0).unwrap().has_seconds());
        assert!(CronExpr::daily(23, 60).is_err());
    }

    #[test]
    fn daily_follows_wall_clock_across_dst() {
        let tz: TimeZone = "Europe/Berlin".parse().unwrap();
        let c = CronExpr::daily(2, 30).unwrap();
        // 2026-03-29: clocks jump 02:00 -> 03:00 in Berlin; 02:30 does not exist.
        let before = Utc.with_ymd_and_hms(2026, 3, 28, 12, 0, 0).unwrap();
        // The run that day is not lost and not doubled: exactly one within two days.
        let n1 = c.next_after(before, &tz).unwrap();
        let n2 = c.next_after(n1, &tz).unwrap();
        assert!(n1 > before && n1 < Utc.with_ymd_and_hms(2026, 3, 29, 23, 0, 0).unwrap(), "{n1}");
        assert_eq!(n2, Utc.with_ymd_and_hms(2026, 3, 30, 0, 30, 0).unwrap());
        // In summer, 02:30 local is 00:30 UTC.
        let summer = Utc.with_ymd_and_hms(2026, 7, 1, 12, 0, 0).unwrap();
        assert_eq!(c.next_after(summer, &tz).unwrap(), Utc.with_ymd_and_hms(2026, 7, 2, 0, 30, 0).unwrap());
        // In winter, 02:30 local is 01:30 UTC.
        let winter = Utc.with_ymd_and_hms(2026, 12, 1, 12, 0, 0).unwrap();
        assert_eq!(c.next_after(winter, &tz).unwrap(), Utc.with_ymd_and_hms(2026, 12, 2, 1, 30, 0).unwrap());
    }

    #[test]
    fn runs_fall_on_whole_seconds() {
        let utc: TimeZone = "UTC".parse().unwrap();
        let c = CronExpr::daily(12, 30).unwrap();
        let after = Utc.with_ymd_and_hms(2026, 11, 22, 12, 0, 0).unwrap() + chrono::Duration::milliseconds(750);
        assert_eq!(c.next_after(after, &utc).unwrap(), Utc.with_ymd_and_hms(2026, 11, 22, 12, 30, 0).unwrap());
        let every: CronExpr = CronExpr::try_from("* * * * * *".to_string()).unwrap();
        assert_eq!(every.next_after(after, &utc).unwrap(), Utc.with_ymd_and_hms(2026, 11, 22, 12, 0, 1).unwrap());
    }

    #[test]
    fn bad_zone() {
        assert!("Mars/Olympus".parse::<TimeZone>().is_err());
        assert_eq!("UTC".parse::<TimeZone>().unwrap().name(), "UTC");
    }
}
