//! Sizes in bytes written the way Prometheus writes them (`body_size_limit: 10MB`): base-2 units
//! (`KB` and `KiB` both mean 1024 bytes), a unit required, decimals and sums (`1GB512MB`) allowed.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

/// A number of bytes; zero means "no limit" where Prometheus says so.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct ByteSize(u64);

/// Unit suffixes and their size. Both spellings are base 2, as in Prometheus's `units` package.
const UNITS: [(&str, &str, u64); 6] = [
    ("EiB", "EB", 1 << 60),
    ("PiB", "PB", 1 << 50),
    ("TiB", "TB", 1 << 40),
    ("GiB", "GB", 1 << 30),
    ("MiB", "MB", 1 << 20),
    ("KiB", "KB", 1 << 10),
];

impl ByteSize {
    pub const ZERO: ByteSize = ByteSize(0);

    pub const fn from_bytes(bytes: u64) -> ByteSize {
        ByteSize(bytes)
    }

    pub const fn bytes(self) -> u64 {
        self.0
    }

    pub const fn is_zero(&self) -> bool {
        self.0 == 0
    }
}

fn unit_size(unit: &str) -> Option<u64> {
    if unit == "B" {
        return Some(1);
    }
    UNITS
        .iter()
        .find(|(binary, decimal, _)| *binary == unit || *decimal == unit)
        .map(|(_, _, size)| *size)
}

impl FromStr for ByteSize {
    type Err = String;

    fn from_str(text: &str) -> Result<ByteSize, String> {
        let invalid = || {
            format!(
                "invalid size {text:?}: expected a number and a unit, e.g. 512MB (units B, KB, MB, GB, TB, PB, EB)"
            )
        };
        let too_large = || format!("invalid size {text:?}: too large");
        if text == "0" {
            return Ok(ByteSize::ZERO);
        }
        if text.is_empty() {
            return Err(invalid());
        }
        if text.starts_with('-') {
            return Err(format!("invalid size {text:?}: must not be negative"));
        }
        let mut rest = text.strip_prefix('+').unwrap_or(text);
        // Whole numbers are summed exactly; only decimals go through floating point.
        let mut total: u128 = 0;
        while !rest.is_empty() {
            let number_end = rest
                .find(|c: char| !(c.is_ascii_digit() || c == '.'))
                .unwrap_or(rest.len());
            let number = &rest[..number_end];
            if number.is_empty() || number == "." || number.matches('.').count() > 1 {
                return Err(invalid());
            }
            let whole: Option<u128> = if number.contains('.') {
                None
            } else {
                Some(number.parse().map_err(|_| too_large())?)
            };
            let fraction: f64 = number.parse().map_err(|_| invalid())?;
            rest = &rest[number_end..];
            let unit_end = rest
                .find(|c: char| c.is_ascii_digit() || c == '.')
                .unwrap_or(rest.len());
            let unit = &rest[..unit_end];
            let size = unit_size(unit).ok_or_else(|| {
                if unit.is_empty() {
                    format!("invalid size {text:?}: a unit is required, e.g. 512MB")
                } else {
                    format!(
                        "invalid size {text:?}: unknown unit {unit:?} (units B, KB, MB, GB, TB, PB, EB)"
                    )
                }
            })?;
            let term = match whole {
                Some(whole) => whole.saturating_mul(u128::from(size)),
                None => (fraction * size as f64) as u128,
            };
            total = total.saturating_add(term);
            rest = &rest[unit_end..];
        }
        // Prometheus keeps sizes in an int64.
        let total = u64::try_from(total)
            .ok()
            .filter(|bytes| *bytes <= i64::MAX as u64)
            .ok_or_else(too_large)?;
        Ok(ByteSize(total))
    }
}

impl fmt::Display for ByteSize {
    /// Prometheus's form: a sum of base-2 units, largest first (`1GiB512MiB`), `0B` for zero.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut rest = self.0;
        if rest == 0 {
            return f.write_str("0B");
        }
        for (unit, _, size) in UNITS {
            if rest >= size {
                write!(f, "{}{unit}", rest / size)?;
                rest %= size;
            }
        }
        if rest > 0 {
            write!(f, "{rest}B")?;
        }
        Ok(())
    }
}

impl Serialize for ByteSize {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn parse(text: &str) -> Result<u64, String> {
        text.parse::<ByteSize>().map(ByteSize::bytes)
    }

    #[test]
    fn accepts_prometheus_units() {
        assert_eq!(parse("0"), Ok(0));
        assert_eq!(parse("10MB"), Ok(10 << 20));
        assert_eq!(parse("10MiB"), Ok(10 << 20));
        assert_eq!(parse("512B"), Ok(512));
        assert_eq!(parse("1.5KB"), Ok(1536));
        assert_eq!(parse("1GB512MB"), Ok((1 << 30) + (512 << 20)));
        assert_eq!(parse("2TB"), Ok(2 << 40));
    }

    #[test]
    fn rejects_what_prometheus_rejects() {
        assert!(parse("1024").unwrap_err().contains("a unit is required"));
        assert!(parse("10mb").unwrap_err().contains("unknown unit \"mb\""));
        assert!(parse("").is_err());
        assert!(parse("MB").is_err());
        assert!(parse("1.2.3MB").is_err());
        assert!(parse("10 MB").is_err());
        assert!(parse("-1MB").unwrap_err().contains("negative"));
        assert!(parse("99999EB").unwrap_err().contains("too large"));
    }

    #[test]
    fn prints_like_prometheus() {
        assert_eq!(ByteSize::ZERO.to_string(), "0B");
        assert_eq!(ByteSize(10 << 20).to_string(), "10MiB");
        assert_eq!(ByteSize((1 << 30) + (512 << 20)).to_string(), "1GiB512MiB");
        assert_eq!(ByteSize(1537).to_string(), "1KiB513B");
    }

    proptest! {
        #[test]
        fn printing_then_parsing_round_trips(bytes in 0u64..(1 << 62)) {
            let size = ByteSize(bytes);
            prop_assert_eq!(size.to_string().parse::<ByteSize>(), Ok(size));
        }
    }
}
