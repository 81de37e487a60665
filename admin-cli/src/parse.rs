//! Parsers for command-line values: spans (`90d`), end times (a date, a
//! timestamp or a span from now), and comma-separated lists of moves and
//! claims. Each error says what to write instead.

use std::collections::BTreeSet;
use std::str::FromStr;

use staffpass_protocol::Timestamp;
use staffpass_protocol::claims::ClaimKind;
use staffpass_protocol::datetime::{DAY, Date};
use staffpass_protocol::roster::MoveKind;

/// The wall clock, as a protocol timestamp.
pub fn now() -> Timestamp {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0);
    Timestamp::from_unix(secs).unwrap_or(Timestamp::MAX)
}

/// A span of time such as `90d`, `12w`, `36h` or `1y`, in whole seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span(pub i64);

impl FromStr for Span {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let d =
            humantime::parse_duration(s.trim()).map_err(|e| format!("{e}; write a span such as 90d, 12w or 36h"))?;
        let secs = i64::try_from(d.as_secs()).map_err(|_| "too long".to_string())?;
        if secs <= 0 {
            return Err("the span must be longer than zero".into());
        }
        Ok(Span(secs))
    }
}

/// The end of a period: a calendar date (the whole day is included), an
/// RFC 3339 timestamp, or a span from now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Until {
    /// Up to the end of this day (UTC).
    Date(Date),
    /// Up to this instant.
    At(Timestamp),
    /// This long from now.
    For(Span),
}

impl Until {
    /// The instant it names, with `now` for spans.
    pub fn resolve(self, now: Timestamp) -> Timestamp {
        match self {
            Until::Date(d) => d.start().plus_secs(DAY - 1),
            Until::At(t) => t,
            Until::For(Span(s)) => now.plus_secs(s),
        }
    }
}

impl FromStr for Until {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if let Ok(d) = s.parse::<Date>() {
            return Ok(Until::Date(d));
        }
        if let Ok(t) = s.parse::<Timestamp>() {
            return Ok(Until::At(t));
        }
        s.parse::<Span>().map(Until::For).map_err(|_| {
            "write a date (2026-12-31), a timestamp (2026-12-31T17:00:00Z) or a span from now (30d)".to_string()
        })
    }
}

/// A comma-separated list of moves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Moves(pub BTreeSet<MoveKind>);

impl FromStr for Moves {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let mut out = BTreeSet::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            out.insert(part.parse::<MoveKind>().map_err(|e| e.to_string())?);
        }
        if out.is_empty() {
            return Err(format!("name at least one move: {}", names(MoveKind::ALL)));
        }
        Ok(Moves(out))
    }
}

/// A comma-separated list of claims, or `all` for the whole catalogue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims(pub BTreeSet<ClaimKind>);

impl FromStr for Claims {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s.trim() == "all" {
            return Ok(Claims(ClaimKind::all().into_iter().collect()));
        }
        let mut out = BTreeSet::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            out.insert(part.parse::<ClaimKind>().map_err(|_| {
                format!(
                    "{part:?} is not a claim; use `all` or names from: {}",
                    ClaimKind::all().iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
                )
            })?);
        }
        if out.is_empty() {
            return Err("name at least one claim, or `all`".into());
        }
        Ok(Claims(out))
    }
}

fn names<T: std::fmt::Display>(all: &[T]) -> String {
    all.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
}

/// Joins displayable items with `, `.
pub fn join<T: std::fmt::Display>(items: impl IntoIterator<Item = T>) -> String {
    items.into_iter().map(|i| i.to_string()).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans() {
        assert_eq!("90d".parse::<Span>().unwrap(), Span(90 * DAY));
        assert!("0d".parse::<Span>().is_err());
        assert!("soon".parse::<Span>().is_err());
    }

    #[test]
    fn until_a_date_includes_the_day() {
        let now: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let u: Until = "2026-12-31".parse().unwrap();
        assert_eq!(u.resolve(now).to_string(), "2026-12-31T23:59:59Z");
        let u: Until = "30d".parse().unwrap();
        assert_eq!(u.resolve(now).to_string(), "2026-01-31T00:00:00Z");
        let u: Until = "2026-06-01T12:00:00Z".parse().unwrap();
        assert_eq!(u.resolve(now).to_string(), "2026-06-01T12:00:00Z");
        assert!("next year".parse::<Until>().is_err());
    }

    #[test]
    fn lists() {
        assert_eq!("rotation, secondment".parse::<Moves>().unwrap().0.len(), 2);
        assert!("rotation,holiday".parse::<Moves>().is_err());
        assert_eq!("all".parse::<Claims>().unwrap().0.len(), ClaimKind::all().len());
        assert!("dbs,training:fire-safety".parse::<Claims>().is_ok());
        let err = "dbs,karate".parse::<Claims>().unwrap_err();
        assert!(err.contains("karate"), "{err}");
    }
}
