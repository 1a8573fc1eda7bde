//! Byte sizes as Prometheus writes them in flags and configuration (`units.Base2Bytes`).

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// A byte count written as Prometheus's `units.Base2Bytes` (`512MB`, `1GiB`, `1GB512MB`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ByteSize(pub u64);

impl fmt::Display for ByteSize {
    /// The largest unit that divides exactly, as `Base2Bytes.String` prints it (`512MiB`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [&str; 6] = ["EiB", "PiB", "TiB", "GiB", "MiB", "KiB"];
        if self.0 == 0 {
            return f.write_str("0B");
        }
        for (index, unit) in UNITS.iter().enumerate() {
            let scale = 1u64 << (10 * (6 - index));
            if self.0.is_multiple_of(scale) {
                return write!(f, "{}{unit}", self.0 / scale);
            }
        }
        write!(f, "{}B", self.0)
    }
}

impl std::str::FromStr for ByteSize {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        parse_base2_bytes(text).map(ByteSize)
    }
}

impl Serialize for ByteSize {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Parses a size as `units.ParseBase2Bytes`: a sequence of numbers (with optional fraction)
/// each followed by a unit, summed; `0` alone is zero. Errors read as Go's (`units: …`).
pub fn parse_base2_bytes(text: &str) -> Result<u64, String> {
    fn unit_scale(unit: &str) -> Option<f64> {
        let power = match unit {
            "B" => 0,
            "KiB" | "KB" => 1,
            "MiB" | "MB" => 2,
            "GiB" | "GB" => 3,
            "TiB" | "TB" => 4,
            "PiB" | "PB" => 5,
            "EiB" | "EB" => 6,
            _ => return None,
        };
        Some(1024f64.powi(power))
    }
    let invalid = || format!("units: invalid {text}");
    let (negative, mut rest) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    if rest == "0" {
        return Ok(0);
    }
    if rest.is_empty() {
        return Err(invalid());
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let number_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number = &rest[..number_end];
        if number.is_empty() || number == "." || number.matches('.').count() > 1 {
            return Err(invalid());
        }
        let value: f64 = number.parse().map_err(|_| invalid())?;
        rest = &rest[number_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = &rest[..unit_end];
        rest = &rest[unit_end..];
        let scale =
            unit_scale(unit).ok_or_else(|| format!("units: unknown unit {unit} in {text}"))?;
        total += value * scale;
    }
    if negative {
        return Err(format!("units: {text}: a size cannot be negative"));
    }
    if !total.is_finite() || total > u64::MAX as f64 {
        return Err(format!("units: {text}: overflow"));
    }
    Ok(total as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_as_base2_bytes() {
        assert_eq!(parse_base2_bytes("512MB"), Ok(512 << 20));
        assert_eq!(parse_base2_bytes("1GiB"), Ok(1 << 30));
        assert_eq!(parse_base2_bytes("1GB512MB"), Ok((1 << 30) + (512 << 20)));
        assert_eq!(parse_base2_bytes("1.5KB"), Ok(1536));
        assert_eq!(parse_base2_bytes("100B"), Ok(100));
        assert_eq!(parse_base2_bytes("0"), Ok(0));
        assert_eq!(
            parse_base2_bytes("512"),
            Err("units: unknown unit  in 512".to_string())
        );
        assert_eq!(
            parse_base2_bytes("5mb"),
            Err("units: unknown unit mb in 5mb".to_string())
        );
        assert!(parse_base2_bytes("").is_err());
        assert!(parse_base2_bytes("MB").is_err());
        assert!(parse_base2_bytes("-1MB").is_err());
        assert_eq!(ByteSize(512 << 20).to_string(), "512MiB");
        assert_eq!(ByteSize(1000).to_string(), "1000B");
    }
}
