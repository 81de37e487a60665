//! Points in time and calendar dates.
//!
//! The protocol never reads a clock: every rule that depends on time takes
//! `now` as an argument. A [`Timestamp`] is whole seconds since the Unix
//! epoch (UTC); a [`Date`] is a calendar day (training completions, expiry
//! dates). In JSON both are ISO 8601 strings; in canonical bytes they are
//! plain integers.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use time::format_description::well_known::Rfc3339;
use time::{Month, OffsetDateTime};

/// A date or time that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Not an RFC 3339 timestamp such as `2026-11-23T09:00:00Z`.
    #[error("{input:?} is not an RFC 3339 timestamp such as 2026-11-23T09:00:00Z")]
    BadTimestamp {
        /// What was given.
        input: String,
    },
    /// Not a calendar date such as `2026-11-23`.
    #[error("{input:?} is not a calendar date in the form YYYY-MM-DD (e.g. 2026-11-23)")]
    BadDate {
        /// What was given.
        input: String,
    },
    /// Outside the range the protocol represents (years 1900 to 9999).
    #[error("{input:?} is outside the supported range (years 1900 to 9999)")]
    OutOfRange {
        /// What was given.
        input: String,
    },
}

/// Seconds since the Unix epoch, UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(i64);

/// A span of whole seconds.
pub const DAY: i64 = 86_400;

impl Timestamp {
    /// The earliest supported instant (1900-01-01).
    pub const MIN: Timestamp = Timestamp(-2_208_988_800);
    /// The latest supported instant (9999-12-31T23:59:59Z).
    pub const MAX: Timestamp = Timestamp(253_402_300_799);

    /// From seconds since the epoch, if in range.
    pub fn from_unix(secs: i64) -> Option<Self> {
        (Self::MIN.0..=Self::MAX.0).contains(&secs).then_some(Timestamp(secs))
    }

    /// Seconds since the epoch.
    pub fn unix(self) -> i64 {
        self.0
    }

    /// This instant plus `secs` (saturating at the supported range).
    pub fn plus_secs(self, secs: i64) -> Self {
        Timestamp(self.0.saturating_add(secs).clamp(Self::MIN.0, Self::MAX.0))
    }

    /// This instant plus whole days.
    pub fn plus_days(self, days: i64) -> Self {
        self.plus_secs(days.saturating_mul(DAY))
    }

    /// The calendar day (UTC) this instant falls on.
    pub fn date(self) -> Date {
        Date(self.0.div_euclid(DAY) as i32)
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match OffsetDateTime::from_unix_timestamp(self.0).ok().and_then(|t| t.format(&Rfc3339).ok()) {
            Some(s) => f.write_str(&s),
            None => write!(f, "@{}", self.0),
        }
    }
}

impl FromStr for Timestamp {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        let t = OffsetDateTime::parse(s, &Rfc3339).map_err(|_| Error::BadTimestamp { input: truncate(s) })?;
        Timestamp::from_unix(t.unix_timestamp()).ok_or_else(|| Error::OutOfRange { input: truncate(s) })
    }
}

/// A calendar day, as days since 1970-01-01.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Date(i32);

impl Date {
    /// From year, month (1-12) and day, if it is a real date in range.
    pub fn from_ymd(year: i32, month: u8, day: u8) -> Option<Self> {
        if !(1900..=9999).contains(&year) {
            return None;
        }
        let month = Month::try_from(month).ok()?;
        let d = time::Date::from_calendar_date(year, month, day).ok()?;
        Some(Date(days_since_epoch(d)))
    }

    /// Days since 1970-01-01.
    pub fn days(self) -> i32 {
        self.0
    }

    /// From days since 1970-01-01, if in range.
    pub fn from_days(days: i32) -> Option<Self> {
        let d = Date(days);
        d.to_time().map(|_| d)
    }

    /// The first second of this day (UTC).
    pub fn start(self) -> Timestamp {
        Timestamp(i64::from(self.0) * DAY)
    }

    /// This date plus a number of days.
    pub fn plus_days(self, days: i32) -> Self {
        Date(self.0.saturating_add(days))
    }

    /// This date plus a number of calendar months, clamping the day to the
    /// end of a shorter month (31 January + 1 month = 28/29 February).
    pub fn plus_months(self, months: u32) -> Self {
        let Some(d) = self.to_time() else { return self };
        let total = d.year() as i64 * 12 + (d.month() as i64 - 1) + i64::from(months);
        let year = (total.div_euclid(12)).min(9999) as i32;
        let month = Month::try_from((total.rem_euclid(12) + 1) as u8).unwrap_or(Month::December);
        let last = time::util::days_in_month(month, year);
        let day = d.day().min(last);
        match time::Date::from_calendar_date(year, month, day) {
            Ok(nd) => Date(days_since_epoch(nd)),
            Err(_) => self,
        }
    }

    fn to_time(self) -> Option<time::Date> {
        let epoch = time::Date::from_calendar_date(1970, Month::January, 1).ok()?;
        let d = epoch.checked_add(time::Duration::days(i64::from(self.0)))?;
        (1900..=9999).contains(&d.year()).then_some(d)
    }
}

fn days_since_epoch(d: time::Date) -> i32 {
    // 2440588 is the Julian day number of 1970-01-01.
    d.to_julian_day() - 2_440_588
}

impl fmt::Display for Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.to_time() {
            Some(d) => write!(f, "{:04}-{:02}-{:02}", d.year(), d.month() as u8, d.day()),
            None => write!(f, "day{}", self.0),
        }
    }
}

impl FromStr for Date {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        let bad = || Error::BadDate { input: truncate(s) };
        let b = s.as_bytes();
        if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
            return Err(bad());
        }
        let num = |r: std::ops::Range<usize>| -> Result<u32, Error> {
            let part = &s[r];
            if !part.bytes().all(|c| c.is_ascii_digit()) {
                return Err(bad());
            }
            part.parse().map_err(|_| bad())
        };
        let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
        Date::from_ymd(y as i32, m as u8, d as u8).ok_or_else(bad)
    }
}

pub(crate) fn truncate(s: &str) -> String {
    s.chars().take(64).collect()
}

macro_rules! serde_by_str_or {
    ($ty:ty, $inner:ty, $ctor:expr) => {
        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                if s.is_human_readable() { s.collect_str(self) } else { self.0.serialize(s) }
            }
        }
        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                if d.is_human_readable() {
                    let s = String::deserialize(d)?;
                    s.parse().map_err(serde::de::Error::custom)
                } else {
                    let v = <$inner>::deserialize(d)?;
                    let ctor: fn($inner) -> Option<$ty> = $ctor;
                    ctor(v).ok_or_else(|| serde::de::Error::custom("date or time out of range"))
                }
            }
        }
    };
}

serde_by_str_or!(Timestamp, i64, Timestamp::from_unix);
serde_by_str_or!(Date, i32, Date::from_days);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_round_trip_through_text() {
        let t: Timestamp = "2026-11-23T09:30:00Z".parse().unwrap();
        assert_eq!(t.unix(), 1_795_426_200);
        assert_eq!(t.to_string(), "2026-11-23T09:30:00Z");
        assert!("2026-11-23".parse::<Timestamp>().is_err());
    }

    #[test]
    fn dates_parse_strictly() {
        let d: Date = "2024-02-29".parse().unwrap();
        assert_eq!(d.to_string(), "2024-02-29");
        assert!("2023-02-29".parse::<Date>().is_err());
        assert!("2023-13-01".parse::<Date>().is_err());
        assert!("23-01-01".parse::<Date>().is_err());
        assert!("2023-1-01".parse::<Date>().is_err());
        assert!("1850-01-01".parse::<Date>().is_err());
        assert_eq!("1970-01-02".parse::<Date>().unwrap().days(), 1);
    }

    #[test]
    fn months_clamp_to_month_end() {
        let d: Date = "2025-01-31".parse().unwrap();
        assert_eq!(d.plus_months(1).to_string(), "2025-02-28");
        assert_eq!(d.plus_months(36).to_string(), "2028-01-31");
        assert_eq!(d.plus_months(13).to_string(), "2026-02-28");
    }
}
