//! A recording rule: its expression's result stored under a new metric name (Prometheus's
//! `rules/recording.go`).

#![deny(clippy::disallowed_methods)]

use super::group::{EvalContext, RuleStatus};
use crate::promql::value::METRIC_NAME;
use crate::promql::{Labels, Queryable, Sample};
use promql_parser::parser::Expr;
use std::collections::HashSet;

#[derive(Debug, Clone)]
pub struct RecordingRule {
    pub(super) name: String,
    pub(super) expr: Expr,
    /// The expression as Prometheus prints it (`/api/v1/rules`' `query`).
    pub(super) query: String,
    /// The group's labels overlaid with the rule's own.
    pub(super) labels: Labels,
    pub(super) status: RuleStatus,
}

impl RecordingRule {
    pub fn new(name: &str, expr: Expr, labels: Labels) -> RecordingRule {
        RecordingRule {
            name: name.to_string(),
            query: expr.to_string(),
            expr,
            labels,
            status: RuleStatus::default(),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn query(&self) -> &str {
        &self.query
    }

    pub fn labels(&self) -> &Labels {
        &self.labels
    }

    pub fn status(&self) -> &RuleStatus {
        &self.status
    }

    /// The samples to record at `query_ts_ms` (the evaluation time minus the query offset):
    /// `__name__` set to the rule's name and the rule's labels applied. Fails, recording
    /// nothing, when two samples end up with the same labels or there are more than `limit`.
    pub fn eval(
        &self,
        ctx: &EvalContext<'_>,
        storage: &dyn Queryable,
        query_ts_ms: i64,
        limit: u64,
    ) -> Result<Vec<Sample>, String> {
        let mut vector = ctx.query(storage, &self.expr, query_ts_ms)?;
        for sample in &mut vector {
            sample.labels.set(METRIC_NAME, &self.name);
            for (name, value) in self.labels.iter() {
                sample.labels.set(name, value);
            }
            sample.drop_name = false;
        }
        let mut seen = HashSet::with_capacity(vector.len());
        if !vector.iter().all(|sample| seen.insert(&sample.labels)) {
            return Err(
                "vector contains metrics with the same labelset after applying rule labels"
                    .to_string(),
            );
        }
        if limit > 0 && vector.len() as u64 > limit {
            return Err(format!(
                "exceeded limit of {limit} with {} series",
                vector.len()
            ));
        }
        Ok(vector)
    }
}
