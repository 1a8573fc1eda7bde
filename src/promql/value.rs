//! Query values: label sets, samples, series and the four PromQL value types.

use std::fmt;
use std::hash::{Hash, Hasher};

use crate::tsdb;

/// The label holding a series' metric name.
pub const METRIC_NAME: &str = "__name__";

/// A set of labels, sorted by name, names unique. Empty values are never stored
/// (Prometheus treats a label with an empty value as absent).
///
/// The TSDB's label set (one shared buffer per set, Prometheus's "stringlabels" layout) under
/// the engine's API: a selected series' labels are the TSDB's own allocation, so selecting a
/// million series allocates and frees no label memory; evaluation copies a series' labels into
/// every step's sample as a reference-count bump; the few operations that change labels build
/// one new buffer.
#[derive(Clone, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Labels(tsdb::Labels);

impl Labels {
    pub fn new() -> Self {
        Labels::default()
    }

    /// Builds a set from pairs in any order; later duplicates win, empty values are dropped.
    pub fn from_pairs<N: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (N, V)>,
    ) -> Self {
        Labels(tsdb::Labels::new(pairs))
    }

    /// The TSDB's label set, shared as it is.
    pub fn from_tsdb(labels: tsdb::Labels) -> Self {
        Labels(labels)
    }

    /// The pairs `(name, value)` in name order.
    pub fn iter(&self) -> tsdb::LabelsIter<'_> {
        self.0.iter()
    }

    /// The label names in order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|(name, _)| name)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// The address of the shared allocation: equal for clones, so per-query memos can
    /// recognise a label set they have seen without hashing it (see `memo.rs`).
    pub(crate) fn address(&self) -> usize {
        self.0.address()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The value of `name`, or "" when absent.
    pub fn get(&self, name: &str) -> &str {
        self.0.get(name).unwrap_or("")
    }

    pub fn has(&self, name: &str) -> bool {
        self.0.get(name).is_some()
    }

    /// Sets `name` to `value`; an empty value removes the label.
    pub fn set(&mut self, name: &str, value: &str) {
        let current = self.0.get(name);
        if current == Some(value) || (value.is_empty() && current.is_none()) {
            return;
        }
        let mut pairs: Vec<(&str, &str)> = Vec::with_capacity(self.len() + 1);
        let mut placed = value.is_empty();
        for (label_name, label_value) in self.0.iter() {
            if !placed && label_name >= name {
                pairs.push((name, value));
                placed = true;
            }
            if label_name != name {
                pairs.push((label_name, label_value));
            }
        }
        if !placed {
            pairs.push((name, value));
        }
        self.0 = tsdb::Labels::from_sorted_slice(&pairs);
    }

    pub fn remove(&mut self, name: &str) {
        if self.has(name) {
            self.0 = self.filtered(|label| label != name);
        }
    }

    pub fn without_metric_name(&self) -> Labels {
        let mut l = self.clone();
        l.remove(METRIC_NAME);
        l
    }

    /// Keeps only the labels whose names are in `names`.
    pub fn keep_only(&self, names: &[String]) -> Labels {
        Labels(self.filtered(|label| names.iter().any(|n| n == label)))
    }

    /// Drops the labels whose names are in `names`.
    pub fn drop_names(&self, names: &[String]) -> Labels {
        Labels(self.filtered(|label| !names.iter().any(|n| n == label)))
    }

    fn filtered(&self, keep: impl Fn(&str) -> bool) -> tsdb::Labels {
        let pairs: Vec<(&str, &str)> = self.0.iter().filter(|(name, _)| keep(name)).collect();
        tsdb::Labels::from_sorted_slice(&pairs)
    }

    /// Key over the labels named in `names` (`on`) or all but those (`ignoring`/`without`).
    pub fn key_for(&self, names: &[String], include: bool) -> Vec<u8> {
        let mut key = Vec::new();
        for (name, value) in self.0.iter() {
            if names.iter().any(|n| n == name) == include {
                key.extend_from_slice(name.as_bytes());
                key.push(0xfe);
                key.extend_from_slice(value.as_bytes());
                key.push(0xff);
            }
        }
        key
    }
}

impl Hash for Labels {
    /// The encoding is canonical (equal sets, equal bytes): one pass over one buffer.
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write(self.0.encoded());
    }
}

impl fmt::Debug for Labels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Labels{self}")
    }
}

impl fmt::Display for Labels {
    /// Prometheus's `labels.String()` form: `{__name__="up", job="x"}`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A point of a series: timestamp in milliseconds and value.
pub type Point = (i64, f64);

/// One element of an instant vector.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub labels: Labels,
    /// The sample's own timestamp (the evaluation time for computed samples).
    pub t: i64,
    pub v: f64,
    /// Prometheus 3's delayed name removal: `__name__` is removed when the query finishes.
    pub drop_name: bool,
}

/// A series of a range vector or a range query's result.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub labels: Labels,
    pub points: Vec<Point>,
    pub drop_name: bool,
}

/// A query's result value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Scalar { t: i64, v: f64 },
    String { t: i64, v: String },
    Vector(Vec<Sample>),
    Matrix(Vec<Series>),
}

impl Value {
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Scalar { .. } => "scalar",
            Value::String { .. } => "string",
            Value::Vector(_) => "vector",
            Value::Matrix(_) => "matrix",
        }
    }
}

/// The bit pattern Prometheus writes as a staleness marker.
pub const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;

pub fn stale_nan() -> f64 {
    f64::from_bits(STALE_NAN_BITS)
}

pub fn is_stale_nan(v: f64) -> bool {
    v.to_bits() == STALE_NAN_BITS
}

/// Formats a float the way Prometheus prints sample values.
pub fn format_float(v: f64) -> String {
    if v.is_nan() {
        "NaN".to_string()
    } else if v == f64::INFINITY {
        "+Inf".to_string()
    } else if v == f64::NEG_INFINITY {
        "-Inf".to_string()
    } else {
        format!("{v}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_sorted_and_empty_dropped() {
        let l = Labels::from_pairs([("b", "2"), ("a", "1"), ("c", "")]);
        assert_eq!(l.len(), 2);
        assert_eq!(l.get("a"), "1");
        assert_eq!(l.get("c"), "");
        assert_eq!(l.to_string(), "{a=\"1\", b=\"2\"}");
    }

    #[test]
    fn set_and_remove_copy_on_write() {
        let original = Labels::from_pairs([("b", "2"), ("d", "4")]);
        let mut changed = original.clone();
        changed.set("a", "1");
        changed.set("c", "3");
        changed.set("e", "5");
        changed.set("b", "two");
        assert_eq!(
            changed.to_string(),
            "{a=\"1\", b=\"two\", c=\"3\", d=\"4\", e=\"5\"}"
        );
        changed.set("c", "");
        changed.remove("e");
        changed.remove("absent");
        assert_eq!(changed.to_string(), "{a=\"1\", b=\"two\", d=\"4\"}");
        // The shared original is untouched; an unchanged set keeps its allocation.
        assert_eq!(original.to_string(), "{b=\"2\", d=\"4\"}");
        let mut same = original.clone();
        same.set("b", "2");
        same.set("z", "");
        assert_eq!(same.address(), original.address());
        assert_eq!(
            original.keep_only(&["d".to_string()]),
            Labels::from_pairs([("d", "4")])
        );
        assert_eq!(
            original.drop_names(&["d".to_string()]),
            Labels::from_pairs([("b", "2")])
        );
    }

    #[test]
    fn stale_marker_bits() {
        assert!(is_stale_nan(stale_nan()));
        assert!(!is_stale_nan(f64::NAN));
    }
}
