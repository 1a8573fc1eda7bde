//! Cardinality statistics of the head's postings, as Prometheus 2.42's `MemPostings.Stats`
//! computes them for `/api/v1/status/tsdb`: the label names with the most values, the label
//! pairs and metric names with the most series, and the bytes of each name's values.
//!
//! Ties are broken by name (ascending), so the answer does not depend on map order (Prometheus
//! leaves ties to Go's map iteration, which is random).
#![deny(clippy::disallowed_methods)]

use std::cmp::{Ordering, Reverse};
use std::collections::{BTreeMap, BinaryHeap};

/// The head's cardinality: each list is the top `limit` entries, largest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cardinality {
    /// Distinct label pairs (name, value) in the head.
    pub num_label_pairs: u64,
    /// Series per value of the metric-name label, e.g. `("up", 12)`.
    pub series_count_by_metric_name: Vec<(String, u64)>,
    /// Distinct values per label name.
    pub label_value_count_by_label_name: Vec<(String, u64)>,
    /// Per label name, the bytes of its distinct values (each value counted once, as
    /// Prometheus 2.42 counts them: not multiplied by the series that carry it).
    pub memory_in_bytes_by_label_name: Vec<(String, u64)>,
    /// Series per label pair, written `name=value`.
    pub series_count_by_label_value_pair: Vec<(String, u64)>,
}

/// A bounded "largest `limit`" collector. The heap's top is the entry that would be dropped
/// first: the smallest count, and among equal counts the greatest key.
struct TopK<K: Ord> {
    limit: usize,
    heap: BinaryHeap<Reverse<Ranked<K>>>,
}

#[derive(PartialEq, Eq)]
struct Ranked<K: Ord> {
    count: u64,
    key: K,
}

impl<K: Ord> Ord for Ranked<K> {
    /// Greater means ranked higher: a larger count, or an equal count and a smaller key.
    fn cmp(&self, other: &Self) -> Ordering {
        self.count
            .cmp(&other.count)
            .then_with(|| other.key.cmp(&self.key))
    }
}

impl<K: Ord> PartialOrd for Ranked<K> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl<K: Ord> TopK<K> {
    fn new(limit: usize) -> Self {
        TopK {
            limit,
            heap: BinaryHeap::with_capacity(limit.saturating_add(1)),
        }
    }

    fn push(&mut self, key: K, count: u64) {
        if self.limit == 0 {
            return;
        }
        self.heap.push(Reverse(Ranked { count, key }));
        if self.heap.len() > self.limit {
            self.heap.pop();
        }
    }

    /// The kept entries, highest ranked first.
    fn into_sorted(self, name: impl Fn(K) -> String) -> Vec<(String, u64)> {
        // `into_sorted_vec` is ascending in `Reverse<Ranked>`, i.e. highest ranked first.
        self.heap
            .into_sorted_vec()
            .into_iter()
            .map(|Reverse(ranked)| (name(ranked.key), ranked.count))
            .collect()
    }
}

/// Computes the statistics over `postings` (label name → value → series references).
/// `metric_label` is the label whose values count as metric names (`__name__`). Time and
/// memory are linear in the number of label pairs; only `4 × limit` entries are kept.
pub fn of_postings(
    postings: &BTreeMap<String, BTreeMap<String, Vec<u64>>>,
    metric_label: &str,
    limit: usize,
) -> Cardinality {
    let mut metrics = TopK::new(limit);
    let mut value_counts = TopK::new(limit);
    let mut value_bytes = TopK::new(limit);
    let mut pairs = TopK::new(limit);
    let mut num_label_pairs = 0u64;
    for (name, values) in postings {
        // Prometheus keeps its all-series list under the empty name; ours has none, but a
        // label with an empty name is not a label either.
        if name.is_empty() {
            continue;
        }
        let distinct = values.len() as u64;
        num_label_pairs = num_label_pairs.saturating_add(distinct);
        value_counts.push(name.as_str(), distinct);
        let mut bytes = 0u64;
        for (value, refs) in values {
            let series = refs.len() as u64;
            if name == metric_label {
                metrics.push(value.as_str(), series);
            }
            pairs.push((name.as_str(), value.as_str()), series);
            bytes = bytes.saturating_add(value.len() as u64);
        }
        value_bytes.push(name.as_str(), bytes);
    }
    Cardinality {
        num_label_pairs,
        series_count_by_metric_name: metrics.into_sorted(str::to_owned),
        label_value_count_by_label_name: value_counts.into_sorted(str::to_owned),
        memory_in_bytes_by_label_name: value_bytes.into_sorted(str::to_owned),
        series_count_by_label_value_pair: pairs
            .into_sorted(|(name, value): (&str, &str)| format!("{name}={value}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn postings(series: &[&[(&str, &str)]]) -> BTreeMap<String, BTreeMap<String, Vec<u64>>> {
        let mut postings: BTreeMap<String, BTreeMap<String, Vec<u64>>> = BTreeMap::new();
        for (index, labels) in series.iter().enumerate() {
            for (name, value) in labels.iter() {
                postings
                    .entry(name.to_string())
                    .or_default()
                    .entry(value.to_string())
                    .or_default()
                    .push(index as u64);
            }
        }
        postings
    }

    fn named(list: &[(&str, u64)]) -> Vec<(String, u64)> {
        list.iter()
            .map(|(name, count)| (name.to_string(), *count))
            .collect()
    }

    #[test]
    fn counts_as_prometheus_does() {
        let head = postings(&[
            &[("__name__", "up"), ("job", "a"), ("instance", "x:1")],
            &[("__name__", "up"), ("job", "b"), ("instance", "x:1")],
            &[("__name__", "http_total"), ("job", "a"), ("code", "200")],
            &[("__name__", "http_total"), ("job", "a"), ("code", "500")],
            &[("__name__", "http_total"), ("job", "b"), ("code", "200")],
        ]);
        let stats = of_postings(&head, "__name__", 10);
        // __name__: 2 values, job: 2, instance: 1, code: 2.
        assert_eq!(stats.num_label_pairs, 7);
        assert_eq!(
            stats.series_count_by_metric_name,
            named(&[("http_total", 3), ("up", 2)])
        );
        assert_eq!(
            stats.label_value_count_by_label_name,
            named(&[("__name__", 2), ("code", 2), ("job", 2), ("instance", 1)])
        );
        // Each distinct value once: "up" + "http_total" = 12, "200" + "500" = 6, "a" + "b" = 2.
        assert_eq!(
            stats.memory_in_bytes_by_label_name,
            named(&[("__name__", 12), ("code", 6), ("instance", 3), ("job", 2)])
        );
        // Equal counts are ordered by (name, value): `__name__` before `code` before `job`.
        assert_eq!(
            stats.series_count_by_label_value_pair,
            named(&[
                ("__name__=http_total", 3),
                ("job=a", 3),
                ("__name__=up", 2),
                ("code=200", 2),
                ("instance=x:1", 2),
                ("job=b", 2),
                ("code=500", 1),
            ])
        );
    }

    #[test]
    fn keeps_only_the_largest_with_ties_by_name() {
        let series: Vec<Vec<(String, String)>> = (0..30)
            .map(|index| vec![("__name__".to_string(), format!("metric_{index:02}"))])
            .collect();
        let mut head: BTreeMap<String, BTreeMap<String, Vec<u64>>> = BTreeMap::new();
        for (index, labels) in series.iter().enumerate() {
            for (name, value) in labels {
                // metric_29 gets 3 series, metric_28 2, the rest 1.
                let copies = match value.as_str() {
                    "metric_29" => 3,
                    "metric_28" => 2,
                    _ => 1,
                };
                let refs = head
                    .entry(name.clone())
                    .or_default()
                    .entry(value.clone())
                    .or_default();
                for copy in 0..copies {
                    refs.push(index as u64 * 10 + copy);
                }
            }
        }
        let stats = of_postings(&head, "__name__", 4);
        assert_eq!(
            stats.series_count_by_metric_name,
            named(&[
                ("metric_29", 3),
                ("metric_28", 2),
                ("metric_00", 1),
                ("metric_01", 1)
            ])
        );
        assert_eq!(stats.num_label_pairs, 30);
        assert!(
            of_postings(&head, "__name__", 0)
                .series_count_by_metric_name
                .is_empty()
        );
        assert_eq!(
            of_postings(&BTreeMap::new(), "__name__", 10),
            Cardinality::default()
        );
    }
}
