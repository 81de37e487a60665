//! Numbers in query strings.
//!
//! The document gives a seq or a page size as a non-negative integer of
//! any size (`format: uint64`, no maximum). A value past `u64::MAX` reads
//! as `u64::MAX` (the same page as any other value past the end, or the
//! largest page), rather than being refused as too large; anything not a
//! plain run of decimal digits is refused (400).

use serde::{Deserialize, Deserializer};

/// Deserializes a non-negative integer, saturating at `u64::MAX`.
pub fn saturating_u64<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
    parse(&text).ok_or_else(|| serde::de::Error::custom(format!("{text:?} is not a non-negative integer")))
}

/// Like [`saturating_u64`], for a `usize` (saturating at `usize::MAX`).
pub fn saturating_usize<'de, D: Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    saturating_u64(d).map(|n| usize::try_from(n).unwrap_or(usize::MAX))
}

fn parse(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(text.parse().unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    #[test]
    fn saturates_and_refuses_what_is_not_a_number() {
        assert_eq!(super::parse("0"), Some(0));
        assert_eq!(super::parse("00042"), Some(42));
        assert_eq!(super::parse("18446744073709551615"), Some(u64::MAX));
        assert_eq!(super::parse("29304632136186787266560"), Some(u64::MAX));
        for bad in ["", "-1", "+1", "1.5", "1e3", " 1", "abc"] {
            assert_eq!(super::parse(bad), None, "{bad:?}");
        }
    }
}
