//! An in-memory [`Queryable`], for unit tests and the conformance runner.

use std::cell::Cell;
use std::collections::BTreeMap;

use super::storage::{Matcher, Queryable, SeriesData, StorageError};
use super::value::{Labels, Point};

#[derive(Debug, Default)]
struct MemorySeries {
    samples: Vec<Point>,
    /// Timestamps of native-histogram samples, which this engine does not evaluate yet.
    histogram_times: Vec<i64>,
}

/// Series kept in a sorted map; samples are kept sorted by time (a later append at the same
/// timestamp replaces the earlier one).
#[derive(Debug, Default)]
pub struct MemoryStorage {
    series: BTreeMap<Labels, MemorySeries>,
    /// Set when a `select` returned a series with native-histogram samples in its interval, so
    /// the conformance runner can tell evaluations that need native histograms apart.
    histograms_touched: Cell<bool>,
}

impl MemoryStorage {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn clear(&mut self) {
        self.series.clear();
    }

    pub fn append(&mut self, labels: &Labels, t: i64, v: f64) {
        let series = self.series.entry(labels.clone()).or_default();
        match series.samples.binary_search_by_key(&t, |p| p.0) {
            Ok(i) => series.samples[i].1 = v,
            Err(i) => series.samples.insert(i, (t, v)),
        }
    }

    /// Records that a native-histogram sample exists at `t` (its value is not kept).
    pub fn append_histogram_marker(&mut self, labels: &Labels, t: i64) {
        let series = self.series.entry(labels.clone()).or_default();
        series.histogram_times.push(t);
    }

    pub fn take_histograms_touched(&self) -> bool {
        self.histograms_touched.replace(false)
    }
}

fn matches_all(matchers: &[Matcher], labels: &Labels) -> bool {
    matchers.iter().all(|m| m.matches_labels(labels))
}

impl Queryable for MemoryStorage {
    fn select(
        &self,
        matchers: &[Matcher],
        mint_ms: i64,
        maxt_ms: i64,
    ) -> Result<Vec<SeriesData>, StorageError> {
        let mut out = Vec::new();
        for (labels, series) in &self.series {
            if !matches_all(matchers, labels) {
                continue;
            }
            if series
                .histogram_times
                .iter()
                .any(|t| *t >= mint_ms && *t <= maxt_ms)
            {
                self.histograms_touched.set(true);
            }
            let start = series.samples.partition_point(|p| p.0 < mint_ms);
            let end = series.samples.partition_point(|p| p.0 <= maxt_ms);
            if start >= end {
                continue;
            }
            out.push(SeriesData {
                labels: labels.clone(),
                samples: series.samples[start..end].to_vec(),
            });
        }
        Ok(out)
    }

    fn label_names(&self, matchers: &[Matcher]) -> Result<Vec<String>, StorageError> {
        let mut names: Vec<String> = self
            .series
            .keys()
            .filter(|l| matches_all(matchers, l))
            .flat_map(|l| l.names().map(str::to_string).collect::<Vec<_>>())
            .collect();
        names.sort();
        names.dedup();
        Ok(names)
    }

    fn label_values(&self, name: &str, matchers: &[Matcher]) -> Result<Vec<String>, StorageError> {
        let mut values: Vec<String> = self
            .series
            .keys()
            .filter(|l| matches_all(matchers, l) && l.has(name))
            .map(|l| l.get(name).to_string())
            .collect();
        values.sort();
        values.dedup();
        Ok(values)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::promql::storage::MatchKind;

    #[test]
    fn select_filters_by_matchers_and_time() {
        let mut s = MemoryStorage::new();
        let a = Labels::from_pairs([("__name__", "a"), ("x", "1")]);
        let b = Labels::from_pairs([("__name__", "b")]);
        for t in 0..10 {
            s.append(&a, t * 1000, t as f64);
            s.append(&b, t * 1000, t as f64);
        }
        let m = Matcher::new(MatchKind::Equal, "__name__", "a").unwrap();
        let got = s.select(&[m], 2000, 4000).unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].samples, vec![(2000, 2.0), (3000, 3.0), (4000, 4.0)]);
        assert_eq!(s.label_values("x", &[]).unwrap(), vec!["1".to_string()]);
    }
}
