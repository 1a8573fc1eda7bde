//! Warnings and info annotations attached to a query's result, worded as Prometheus words them.
//!
//! Prometheus appends the position of the offending expression (`(1:6)`); `promql-parser` keeps
//! no positions in its AST, so ours carry none.

use std::collections::BTreeSet;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Annotations {
    pub warnings: BTreeSet<String>,
    pub infos: BTreeSet<String>,
}

impl Annotations {
    pub fn warn(&mut self, text: impl AsRef<str>) {
        self.warnings
            .insert(format!("PromQL warning: {}", text.as_ref()));
    }

    pub fn info(&mut self, text: impl AsRef<str>) {
        self.infos.insert(format!("PromQL info: {}", text.as_ref()));
    }

    pub fn merge(&mut self, other: Annotations) {
        self.warnings.extend(other.warnings);
        self.infos.extend(other.infos);
    }

    pub fn is_empty(&self) -> bool {
        self.warnings.is_empty() && self.infos.is_empty()
    }
}

/// Info for rate-like functions over a metric whose name does not look like a counter.
pub fn possible_non_counter(name: &str) -> String {
    format!(
        "metric might not be a counter, name does not end in _total/_sum/_count/_bucket: {name:?}"
    )
}

pub fn invalid_quantile(q: f64) -> String {
    format!(
        "quantile value should be between 0 and 1, got {}",
        super::value::format_float(q)
    )
}

pub fn bad_bucket_label(value: &str, metric: &str) -> String {
    format!(
        "bucket label \"le\" is missing or has a malformed value of {value:?} for metric name {metric:?}"
    )
}

pub fn histogram_quantile_forced_monotonicity(metric: &str) -> String {
    format!(
        "input to histogram_quantile needed to be fixed for monotonicity (see https://prometheus.io/docs/prometheus/latest/querying/functions/#histogram_quantile) for metric name {metric:?}"
    )
}

pub fn sort_in_range_query() -> String {
    "sort is ineffective for range queries since results are always ordered by labels".to_string()
}
