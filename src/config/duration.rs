//! Durations in Prometheus's grammar: `1y2w3d4h5m6s7ms`, units in that order, each at most once,
//! whole numbers only; `0` alone is zero. `1y` is 365 days. Alertmanager uses the same grammar.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// A duration written the way Prometheus writes it. Millisecond precision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct PromDuration(Duration);

const MS_PER_SECOND: u64 = 1_000;
const MS_PER_MINUTE: u64 = 60 * MS_PER_SECOND;
const MS_PER_HOUR: u64 = 60 * MS_PER_MINUTE;
const MS_PER_DAY: u64 = 24 * MS_PER_HOUR;
const MS_PER_WEEK: u64 = 7 * MS_PER_DAY;
const MS_PER_YEAR: u64 = 365 * MS_PER_DAY;

/// Units in the only order the grammar accepts, with their length in milliseconds.
const UNITS: [(&str, u64); 7] = [
    ("y", MS_PER_YEAR),
    ("w", MS_PER_WEEK),
    ("d", MS_PER_DAY),
    ("h", MS_PER_HOUR),
    ("m", MS_PER_MINUTE),
    ("s", MS_PER_SECOND),
    ("ms", 1),
];

/// Prometheus stores durations as nanoseconds in an int64; longer ones are refused.
const MAX_MS: u64 = (i64::MAX as u64) / 1_000_000;

impl PromDuration {
    pub const ZERO: PromDuration = PromDuration(Duration::ZERO);

    pub const fn from_secs(seconds: u64) -> PromDuration {
        PromDuration(Duration::from_secs(seconds))
    }

    pub const fn from_millis(ms: u64) -> PromDuration {
        PromDuration(Duration::from_millis(ms))
    }

    pub const fn as_std(self) -> Duration {
        self.0
    }

    pub fn as_millis(self) -> u64 {
        self.0.as_millis() as u64
    }

    pub fn is_zero(self) -> bool {
        self.0.is_zero()
    }
}

impl From<PromDuration> for Duration {
    fn from(value: PromDuration) -> Duration {
        value.0
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("empty duration string")]
    Empty,
    #[error(
        "not a valid duration string: {0:?} (expected e.g. 30s, 5m, 1h30m; units y w d h m s ms, in that order, whole numbers)"
    )]
    Syntax(String),
    #[error("duration out of range: {0:?}")]
    Overflow(String),
}

impl FromStr for PromDuration {
    type Err = DurationError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text.is_empty() {
            return Err(DurationError::Empty);
        }
        if text == "0" {
            return Ok(PromDuration::ZERO);
        }
        let syntax = || DurationError::Syntax(text.to_string());
        let overflow = || DurationError::Overflow(text.to_string());
        let bytes = text.as_bytes();
        let mut position = 0;
        // Index into UNITS of the next unit allowed: enforces order and uniqueness.
        let mut next_unit = 0;
        let mut total_ms: u64 = 0;
        while position < bytes.len() {
            let digits_start = position;
            while position < bytes.len() && bytes[position].is_ascii_digit() {
                position += 1;
            }
            if position == digits_start {
                return Err(syntax());
            }
            let number: u64 = text[digits_start..position]
                .parse()
                .map_err(|_| overflow())?;
            let unit_start = position;
            while position < bytes.len() && bytes[position].is_ascii_alphabetic() {
                position += 1;
            }
            let unit = &text[unit_start..position];
            let offset = UNITS[next_unit..]
                .iter()
                .position(|(name, _)| *name == unit)
                .ok_or_else(syntax)?;
            let (_, unit_ms) = UNITS[next_unit + offset];
            next_unit += offset + 1;
            total_ms = number
                .checked_mul(unit_ms)
                .and_then(|ms| total_ms.checked_add(ms))
                .filter(|ms| *ms <= MAX_MS)
                .ok_or_else(overflow)?;
        }
        Ok(PromDuration::from_millis(total_ms))
    }
}

impl fmt::Display for PromDuration {
    /// The shortest form Prometheus prints: years and weeks only when they divide exactly.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut ms = self.as_millis();
        if ms == 0 {
            return f.write_str("0s");
        }
        for (unit, unit_ms) in UNITS {
            let only_when_exact = unit == "y" || unit == "w";
            if only_when_exact && !ms.is_multiple_of(unit_ms) {
                continue;
            }
            let count = ms / unit_ms;
            if count > 0 {
                write!(f, "{count}{unit}")?;
                ms -= count * unit_ms;
            }
        }
        Ok(())
    }
}

impl Serialize for PromDuration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for PromDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn parse(text: &str) -> Result<u64, DurationError> {
        text.parse::<PromDuration>().map(PromDuration::as_millis)
    }

    #[test]
    fn accepts_prometheus_grammar() {
        assert_eq!(parse("0"), Ok(0));
        assert_eq!(parse("0s"), Ok(0));
        assert_eq!(parse("1h30m"), Ok(90 * MS_PER_MINUTE));
        assert_eq!(parse("1y"), Ok(365 * MS_PER_DAY));
        assert_eq!(parse("2w"), Ok(14 * MS_PER_DAY));
        assert_eq!(parse("1d1ms"), Ok(MS_PER_DAY + 1));
        assert_eq!(parse("500ms"), Ok(500));
        assert_eq!(parse("90m"), Ok(90 * MS_PER_MINUTE));
    }

    #[test]
    fn rejects_what_prometheus_rejects() {
        for bad in [
            "1h 30m", "1.5h", "1M", "-1s", "1", "h", "1m1h", "1s1s", "1ms1s", "01x", " 1s", "1s ",
            "1S", "1µs", "1ns",
        ] {
            assert!(
                matches!(parse(bad), Err(DurationError::Syntax(_))),
                "{bad:?} -> {:?}",
                parse(bad)
            );
        }
        assert_eq!(parse(""), Err(DurationError::Empty));
        assert!(matches!(parse("300000y"), Err(DurationError::Overflow(_))));
        assert!(matches!(
            parse("99999999999999999999s"),
            Err(DurationError::Overflow(_))
        ));
    }

    #[test]
    fn prints_like_prometheus() {
        let show = |ms| PromDuration::from_millis(ms).to_string();
        assert_eq!(show(0), "0s");
        assert_eq!(show(90 * MS_PER_MINUTE), "1h30m");
        assert_eq!(show(14 * MS_PER_DAY), "2w");
        assert_eq!(show(8 * MS_PER_DAY), "8d");
        assert_eq!(show(MS_PER_YEAR), "1y");
        assert_eq!(show(MS_PER_YEAR + MS_PER_DAY), "366d");
        assert_eq!(show(1_500), "1s500ms");
    }

    proptest! {
        #[test]
        fn printing_then_parsing_round_trips(ms in 0..MAX_MS) {
            let duration = PromDuration::from_millis(ms);
            prop_assert_eq!(duration.to_string().parse::<PromDuration>(), Ok(duration));
        }

        #[test]
        fn arbitrary_text_never_panics(text in "\\PC{0,24}") {
            let _ = text.parse::<PromDuration>();
        }
    }
}
