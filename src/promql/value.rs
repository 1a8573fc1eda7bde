//! Query values: label sets, samples, series and the four PromQL value types.

use std::fmt;
use std::sync::Arc;

/// The label holding a series' metric name.
pub const METRIC_NAME: &str = "__name__";

/// One label: a name and its value.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Label {
    pub name: String,
    pub value: String,
}

/// A set of labels, sorted by name, names unique. Empty values are never stored
/// (Prometheus treats a label with an empty value as absent).
///
/// Shared behind an `Arc`: evaluation copies a series' labels into every step's sample, so a
/// clone must be a reference-count bump, not one allocation per label; the few operations that
/// change labels copy on write.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Labels(Arc<Vec<Label>>);

impl Labels {
    pub fn new() -> Self {
        Labels::default()
    }

    /// Builds a set from pairs in any order; later duplicates win, empty values are dropped.
    pub fn from_pairs<N: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (N, V)>,
    ) -> Self {
        let mut labels = Labels::new();
        for (name, value) in pairs {
            labels.set(&name.into(), &value.into());
        }
        labels
    }

    /// Builds a set from pairs already sorted by name with unique names (a TSDB label set);
    /// empty values are dropped. Unsorted input falls back to [`Labels::from_pairs`].
    pub fn from_sorted_pairs<'p>(pairs: impl IntoIterator<Item = (&'p str, &'p str)>) -> Self {
        let labels: Vec<Label> = pairs
            .into_iter()
            .filter(|(_, value)| !value.is_empty())
            .map(|(name, value)| Label {
                name: name.to_string(),
                value: value.to_string(),
            })
            .collect();
        if labels.windows(2).all(|pair| pair[0].name < pair[1].name) {
            return Labels(Arc::new(labels));
        }
        Labels::from_pairs(labels.into_iter().map(|label| (label.name, label.value)))
    }

    pub fn iter(&self) -> impl Iterator<Item = &Label> {
        self.0.iter()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// The address of the shared allocation: equal for clones, so per-query memos can
    /// recognise a label set they have seen without hashing it (see `memo.rs`).
    pub(crate) fn address(&self) -> usize {
        Arc::as_ptr(&self.0) as usize
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The value of `name`, or "" when absent.
    pub fn get(&self, name: &str) -> &str {
        match self.0.binary_search_by(|l| l.name.as_str().cmp(name)) {
            Ok(i) => &self.0[i].value,
            Err(_) => "",
        }
    }

    pub fn has(&self, name: &str) -> bool {
        self.0
            .binary_search_by(|l| l.name.as_str().cmp(name))
            .is_ok()
    }

    /// Sets `name` to `value`; an empty value removes the label.
    pub fn set(&mut self, name: &str, value: &str) {
        match self.0.binary_search_by(|l| l.name.as_str().cmp(name)) {
            Ok(i) => {
                if value.is_empty() {
                    Arc::make_mut(&mut self.0).remove(i);
                } else if self.0[i].value != value {
                    Arc::make_mut(&mut self.0)[i].value = value.to_string();
                }
            }
            Err(i) => {
                if !value.is_empty() {
                    Arc::make_mut(&mut self.0).insert(
                        i,
                        Label {
                            name: name.to_string(),
                            value: value.to_string(),
                        },
                    );
                }
            }
        }
    }

    pub fn remove(&mut self, name: &str) {
        let Ok(i) = self.0.binary_search_by(|l| l.name.as_str().cmp(name)) else {
            return;
        };
        match Arc::get_mut(&mut self.0) {
            Some(labels) => {
                labels.remove(i);
            }
            // Shared: copy the other labels only (`make_mut` would copy this one too).
            None => {
                let mut rest = Vec::with_capacity(self.0.len() - 1);
                rest.extend_from_slice(&self.0[..i]);
                rest.extend_from_slice(&self.0[i + 1..]);
                self.0 = Arc::new(rest);
            }
        }
    }

    pub fn without_metric_name(&self) -> Labels {
        let mut l = self.clone();
        l.remove(METRIC_NAME);
        l
    }

    /// Keeps only the labels whose names are in `names`.
    pub fn keep_only(&self, names: &[String]) -> Labels {
        Labels(Arc::new(
            self.0
                .iter()
                .filter(|l| names.iter().any(|n| n == &l.name))
                .cloned()
                .collect(),
        ))
    }

    /// Drops the labels whose names are in `names`.
    pub fn drop_names(&self, names: &[String]) -> Labels {
        Labels(Arc::new(
            self.0
                .iter()
                .filter(|l| !names.iter().any(|n| n == &l.name))
                .cloned()
                .collect(),
        ))
    }

    /// A byte key identifying the label set (used for hashing groups and matching).
    pub fn key(&self) -> Vec<u8> {
        let mut key = Vec::with_capacity(self.0.len() * 16);
        for l in self.0.iter() {
            key.extend_from_slice(l.name.as_bytes());
            key.push(0xfe);
            key.extend_from_slice(l.value.as_bytes());
            key.push(0xff);
        }
        key
    }

    /// Key over the labels named in `names` (`on`) or all but those (`ignoring`/`without`).
    pub fn key_for(&self, names: &[String], include: bool) -> Vec<u8> {
        let mut key = Vec::new();
        for l in self.0.iter() {
            if names.iter().any(|n| n == &l.name) == include {
                key.extend_from_slice(l.name.as_bytes());
                key.push(0xfe);
                key.extend_from_slice(l.value.as_bytes());
                key.push(0xff);
            }
        }
        key
    }
}

impl fmt::Display for Labels {
    /// Prometheus's `labels.String()` form: `{__name__="up", job="x"}`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{{")?;
        for (i, l) in self.0.iter().enumerate() {
            if i > 0 {
                write!(f, ", ")?;
            }
            write!(f, "{}={:?}", l.name, l.value)?;
        }
        write!(f, "}}")
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
    fn from_sorted_pairs_matches_from_pairs() {
        let sorted = Labels::from_sorted_pairs([("a", "1"), ("b", ""), ("c", "3")]);
        assert_eq!(sorted, Labels::from_pairs([("c", "3"), ("a", "1")]));
        // Out of order or repeated names still give a proper set.
        let unsorted = Labels::from_sorted_pairs([("c", "3"), ("a", "1"), ("a", "2")]);
        assert_eq!(unsorted, Labels::from_pairs([("a", "2"), ("c", "3")]));
    }

    #[test]
    fn stale_marker_bits() {
        assert!(is_stale_nan(stale_nan()));
        assert!(!is_stale_nan(f64::NAN));
    }
}
