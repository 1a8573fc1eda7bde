//! Label sets and their fingerprints, identical to Alertmanager's for the same labels.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// Labels of an alert (or annotations), sorted by name. Sorted storage makes the fingerprint and
/// every printed form deterministic.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct LabelSet(pub BTreeMap<String, String>);

/// A 64-bit hash identifying a label set; printed as 16 hex digits, as Alertmanager does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Fingerprint(pub u64);

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

impl Serialize for Fingerprint {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

const FNV_OFFSET_BASIS: u64 = 14_695_981_039_346_656_037;
const FNV_PRIME: u64 = 1_099_511_628_211;
/// Prometheus separates names and values with a byte that cannot occur in UTF-8.
const SEPARATOR: u8 = 0xff;

fn fnv1a(mut hash: u64, bytes: &[u8]) -> u64 {
    for byte in bytes {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(FNV_PRIME);
    }
    hash
}

impl LabelSet {
    pub fn new() -> LabelSet {
        LabelSet::default()
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// A missing label reads as the empty string, as everywhere in Prometheus.
    pub fn value(&self, name: &str) -> &str {
        self.get(name).unwrap_or("")
    }

    pub fn insert(&mut self, name: impl Into<String>, value: impl Into<String>) {
        self.0.insert(name.into(), value.into());
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_str()))
    }

    /// FNV-1a over `name 0xff value 0xff` for each label in name order: Prometheus's
    /// `LabelSet.Fingerprint`, so Tocsin's alert fingerprints equal Alertmanager's.
    pub fn fingerprint(&self) -> Fingerprint {
        let mut hash = FNV_OFFSET_BASIS;
        for (name, value) in &self.0 {
            hash = fnv1a(hash, name.as_bytes());
            hash = fnv1a(hash, &[SEPARATOR]);
            hash = fnv1a(hash, value.as_bytes());
            hash = fnv1a(hash, &[SEPARATOR]);
        }
        Fingerprint(hash)
    }

    /// The labels named in `names`, for group keys and `equal` in inhibition.
    pub fn subset<'a>(&self, names: impl IntoIterator<Item = &'a str>) -> LabelSet {
        let mut subset = LabelSet::new();
        for name in names {
            if let Some(value) = self.0.get(name) {
                subset.0.insert(name.to_string(), value.clone());
            }
        }
        subset
    }
}

impl fmt::Display for LabelSet {
    /// `{a="1", b="2"}`, as Prometheus prints label sets (and Alertmanager's group keys use).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("{")?;
        for (index, (name, value)) in self.0.iter().enumerate() {
            if index > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{name}={value:?}")?;
        }
        f.write_str("}")
    }
}

impl<const N: usize> From<[(&str, &str); N]> for LabelSet {
    fn from(pairs: [(&str, &str); N]) -> LabelSet {
        LabelSet(
            pairs
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The test vectors of Prometheus's `labelSetToFingerprint` (prometheus/common).
    #[test]
    fn fingerprints_match_prometheus() {
        assert_eq!(
            LabelSet::new().fingerprint(),
            Fingerprint(14_695_981_039_346_656_037)
        );
        let set = LabelSet::from([("name", "garland, briggs"), ("fear", "love is not enough")]);
        assert_eq!(set.fingerprint(), Fingerprint(5_799_056_148_416_392_346));
    }

    #[test]
    fn display_is_sorted_and_quoted() {
        let set = LabelSet::from([("b", "2"), ("a", "x\"y")]);
        assert_eq!(set.to_string(), "{a=\"x\\\"y\", b=\"2\"}");
    }
}
