//! A rule group (Prometheus's `rules/group.go`): rules evaluated in order at one timestamp per
//! iteration, on slots spaced by the group's interval and shifted by a per-group offset.
//!
//! Each rule's samples (and stale markers for series it no longer returns) are committed to
//! storage before the next rule runs, so later rules see earlier rules' output, as in
//! Prometheus. Storage is reached through [`RuleStorage`]; wall time (for `lastEvaluation` and
//! durations) through [`Clock`]; neither is read directly.
//!
//! Driving a group with a virtual clock (what `tocsin test rules` does):
//!
//! ```text
//! let mut groups = manager::load_groups(&files, &options, false)?;   // false: no restoring
//! let ctx = EvalContext { engine, external_labels, external_url, resend_delay_ms, clock };
//! for ts in (0..end).step_by(interval) {
//!     let outcome = groups[0].eval(&ctx, &mut memory_storage, ts);  // samples per rule, alerts
//!     for rule in groups[0].alerting_rules() {
//!         for alert in rule.active_alerts() { /* labels, annotations, state, active_at_ms, value */ }
//!     }
//! }
//! ```
//!
//! [`Group::restore_for_state`] applies Prometheus's `RestoreForState` at a given time;
//! [`Group::take_due`] and [`Group::eval_timestamp`] are the scheduling the shell uses.

#![deny(clippy::disallowed_methods)]

use super::alert::OutgoingAlert;
use super::alerting::AlertingRule;
use super::recording::RecordingRule;
use crate::promql::value::stale_nan;
use crate::promql::{Engine, Labels, Queryable, Sample, Value};
use promql_parser::parser::Expr;
use std::collections::{HashMap, HashSet};

/// A rule's health after its last evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Health {
    #[default]
    Unknown,
    Ok,
    Err,
}

impl Health {
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Unknown => "unknown",
            Health::Ok => "ok",
            Health::Err => "err",
        }
    }
}

/// What `/api/v1/rules` shows of a rule's last evaluation.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RuleStatus {
    pub health: Health,
    pub last_error: Option<String>,
    /// Wall-clock start of the last evaluation, Unix nanoseconds; `None` before the first.
    pub last_evaluation_ns: Option<i64>,
    pub evaluation_seconds: f64,
}

impl RuleStatus {
    fn fail(&mut self, error: String) {
        self.health = Health::Err;
        self.last_error = Some(error);
    }
}

/// Wall time, for `lastEvaluation` and evaluation durations. A virtual clock may return the
/// evaluation timestamp.
pub trait Clock {
    /// Unix nanoseconds.
    fn now_ns(&self) -> i64;
}

/// Why storage refused one sample (Prometheus's out-of-order, too-old and duplicate errors are
/// expected when another rule or a scrape wrote the series).
pub type Refusal = String;

/// Where rules read and write.
pub trait RuleStorage {
    fn queryable(&self) -> &dyn Queryable;
    /// Appends `samples` and commits them at once (so that the next rule's queries see them).
    /// Returns, per sample, whether it was refused; `Err` when the commit itself failed.
    fn append_and_commit(&mut self, samples: &[Sample]) -> Result<Vec<Option<Refusal>>, String>;
}

impl RuleStorage for crate::promql::memory::MemoryStorage {
    fn queryable(&self) -> &dyn Queryable {
        self
    }

    fn append_and_commit(&mut self, samples: &[Sample]) -> Result<Vec<Option<Refusal>>, String> {
        for sample in samples {
            self.append(&sample.labels, sample.t, sample.v);
        }
        Ok(vec![None; samples.len()])
    }
}

/// What every evaluation needs besides the group itself.
pub struct EvalContext<'a> {
    pub engine: &'a Engine,
    /// The `global.external_labels`, for `$externalLabels`.
    pub external_labels: &'a [(String, String)],
    /// `--web.external-url`, for `$externalURL` and generator URLs.
    pub external_url: &'a str,
    /// `--rules.alert.resend-delay`.
    pub resend_delay_ms: i64,
    pub clock: &'a dyn Clock,
}

impl EvalContext<'_> {
    /// An instant query as rules run it: a scalar becomes one sample without labels; strings
    /// and matrices are errors.
    pub fn query(
        &self,
        storage: &dyn Queryable,
        expr: &Expr,
        at_ms: i64,
    ) -> Result<Vec<Sample>, String> {
        let result = self
            .engine
            .instant_expr(storage, expr, at_ms)
            .map_err(|error| error.to_string())?;
        match result.value {
            Value::Vector(samples) => Ok(samples),
            Value::Scalar { t, v } => Ok(vec![Sample {
                labels: Labels::new(),
                t,
                v,
                drop_name: false,
            }]),
            _ => Err("rule result is not a vector or scalar".to_string()),
        }
    }
}

#[derive(Debug, Clone)]
pub enum Rule {
    Recording(RecordingRule),
    Alerting(AlertingRule),
}

impl Rule {
    pub fn name(&self) -> &str {
        match self {
            Rule::Recording(rule) => rule.name(),
            Rule::Alerting(rule) => rule.name(),
        }
    }

    pub fn labels(&self) -> &Labels {
        match self {
            Rule::Recording(rule) => rule.labels(),
            Rule::Alerting(rule) => rule.labels(),
        }
    }

    pub fn status(&self) -> &RuleStatus {
        match self {
            Rule::Recording(rule) => &rule.status,
            Rule::Alerting(rule) => &rule.status,
        }
    }

    fn status_mut(&mut self) -> &mut RuleStatus {
        match self {
            Rule::Recording(rule) => &mut rule.status,
            Rule::Alerting(rule) => &mut rule.status,
        }
    }

    /// What decides whether a reloaded group changed (Prometheus compares rules' YAML).
    fn identity(&self) -> String {
        match self {
            Rule::Recording(rule) => {
                format!("record:{}\n{}\n{}", rule.name, rule.query, rule.labels)
            }
            Rule::Alerting(rule) => format!(
                "alert:{}\n{}\n{}\n{}\n{}\n{}",
                rule.name,
                rule.query,
                rule.hold_ms,
                rule.keep_firing_for_ms,
                rule.labels,
                rule.annotations
            ),
        }
    }

    /// Prometheus's `nameAndLabels`, which matches rules across a reload.
    fn name_and_labels(&self) -> String {
        format!("{}{}", self.name(), self.labels())
    }
}

/// One rule's result in an iteration.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleOutcome {
    /// The samples the rule produced (before storage refusals; stale markers not included).
    pub samples: Vec<Sample>,
    pub error: Option<String>,
}

/// One iteration's result.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GroupOutcome {
    /// One entry per rule, in the group's order.
    pub rules: Vec<RuleOutcome>,
    /// Alerts to hand to the notifier.
    pub alerts: Vec<OutgoingAlert>,
}

/// Counters and gauges `/metrics` reads, per group.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GroupMetrics {
    pub evaluations: u64,
    pub evaluation_failures: u64,
    /// Scheduled iterations, executed or missed.
    pub iterations: u64,
    pub iterations_missed: u64,
    pub last_samples: u64,
    pub duration_sum_seconds: f64,
    pub duration_count: u64,
    /// How long the last restoring of `for` state took (0 until it ran).
    pub last_restore_seconds: f64,
}

#[derive(Debug, Clone)]
pub struct Group {
    pub(super) name: String,
    pub(super) file: String,
    pub(super) interval_ms: i64,
    /// As written; `None` takes the global `rule_query_offset`.
    pub(super) query_offset_ms: Option<i64>,
    pub(super) default_query_offset_ms: i64,
    pub(super) limit: u64,
    pub(super) rules: Vec<Rule>,
    /// Per rule, the series its last successful commit wrote.
    series_in_previous_eval: Vec<HashSet<Labels>>,
    /// Series of rules that are gone, marked stale at the next evaluation.
    stale_series: Vec<Labels>,
    /// Whether alerting rules' `for` state is restored after the second iteration.
    should_restore: bool,
    iterations_done: u64,
    /// Wall-clock start of the last iteration, Unix nanoseconds.
    last_evaluation_ns: Option<i64>,
    evaluation_seconds: f64,
    /// The evaluation timestamp of the last iteration.
    last_eval_timestamp_ms: Option<i64>,
    /// The next slot, once scheduled.
    next_eval_ms: Option<i64>,
    pub(super) metrics: GroupMetrics,
}

impl Group {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        name: &str,
        file: &str,
        interval_ms: i64,
        query_offset_ms: Option<i64>,
        default_query_offset_ms: i64,
        limit: u64,
        rules: Vec<Rule>,
        should_restore: bool,
    ) -> Group {
        Group {
            name: name.to_string(),
            file: file.to_string(),
            // A zero interval would make scheduling divide by zero; the loader never builds one.
            interval_ms: interval_ms.max(1),
            query_offset_ms,
            default_query_offset_ms,
            limit,
            series_in_previous_eval: vec![HashSet::new(); rules.len()],
            rules,
            stale_series: Vec::new(),
            should_restore,
            iterations_done: 0,
            last_evaluation_ns: None,
            evaluation_seconds: 0.0,
            last_eval_timestamp_ms: None,
            next_eval_ms: None,
            metrics: GroupMetrics::default(),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }
    pub fn file(&self) -> &str {
        &self.file
    }
    /// `<file>;<name>`, the `rule_group` label and the group's identity.
    pub fn key(&self) -> String {
        group_key(&self.file, &self.name)
    }
    pub fn interval_ms(&self) -> i64 {
        self.interval_ms
    }
    pub fn query_offset_ms(&self) -> i64 {
        self.query_offset_ms.unwrap_or(self.default_query_offset_ms)
    }
    pub fn limit(&self) -> u64 {
        self.limit
    }
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }
    pub fn rules_mut(&mut self) -> &mut [Rule] {
        &mut self.rules
    }
    pub fn alerting_rules(&self) -> impl Iterator<Item = &AlertingRule> {
        self.rules.iter().filter_map(|rule| match rule {
            Rule::Alerting(rule) => Some(rule),
            Rule::Recording(_) => None,
        })
    }
    pub fn last_evaluation_ns(&self) -> Option<i64> {
        self.last_evaluation_ns
    }
    pub fn evaluation_seconds(&self) -> f64 {
        self.evaluation_seconds
    }
    pub fn last_eval_timestamp_ms(&self) -> Option<i64> {
        self.last_eval_timestamp_ms
    }
    pub fn metrics(&self) -> &GroupMetrics {
        &self.metrics
    }
    pub fn next_eval_ms(&self) -> Option<i64> {
        self.next_eval_ms
    }

    /// Prometheus's `EvalTimestamp`: the group's slot at or before `now_ms`. Slots are the
    /// interval's multiples shifted by the hash of the group's file and name modulo the
    /// interval, so that groups spread out but each keeps its own cadence.
    pub fn eval_timestamp(&self, now_ms: i64) -> i64 {
        let interval_ns = i128::from(self.interval_ms) * 1_000_000;
        let offset = i128::from(self.hash()) % interval_ns;
        let adjusted = i128::from(now_ms) * 1_000_000 - offset;
        let base = adjusted - adjusted.rem_euclid(interval_ns);
        // Nanoseconds to milliseconds, as Prometheus's `timestamp.FromTime` truncates.
        i64::try_from((base + offset).div_euclid(1_000_000)).unwrap_or(now_ms)
    }

    /// Prometheus's group hash: `labels{file, name}.Hash()`, xxhash64 of the label set's
    /// encoding (each string preceded by its length as a varint).
    fn hash(&self) -> u64 {
        let mut data = Vec::with_capacity(self.file.len() + self.name.len() + 16);
        for text in ["file", &self.file, "name", &self.name] {
            let mut length = text.len();
            loop {
                let byte = (length & 0x7f) as u8;
                length >>= 7;
                if length == 0 {
                    data.push(byte);
                    break;
                }
                data.push(byte | 0x80);
            }
            data.extend_from_slice(text.as_bytes());
        }
        xxhash64(&data)
    }

    /// Schedules the first iteration: the first slot after `now_ms`.
    pub fn schedule(&mut self, now_ms: i64) {
        if self.next_eval_ms.is_none() {
            self.next_eval_ms = Some(self.eval_timestamp(now_ms).saturating_add(self.interval_ms));
        }
    }

    /// The evaluation timestamp of the iteration due at `now_ms`, if one is; slots that passed
    /// while the previous iteration ran are skipped and counted missed (after the first
    /// iteration, as Prometheus counts them).
    pub fn take_due(&mut self, now_ms: i64) -> Option<i64> {
        let next = self.next_eval_ms?;
        if now_ms < next {
            return None;
        }
        let missed = if self.iterations_done == 0 {
            0
        } else {
            (now_ms - next) / self.interval_ms
        };
        let ts = next.saturating_add(missed.saturating_mul(self.interval_ms));
        self.metrics.iterations_missed += missed as u64;
        self.metrics.iterations += missed as u64;
        self.next_eval_ms = Some(ts.saturating_add(self.interval_ms));
        Some(ts)
    }

    /// Whether `for` state should be restored now: after the second iteration of a group
    /// loaded at start-up (the first may lack data the alerts depend on).
    pub fn wants_restore(&self) -> bool {
        self.should_restore && self.iterations_done >= 2
    }

    /// Restores alerting rules' `for` state from `ALERTS_FOR_STATE` (see
    /// [`AlertingRule::restore_for_state`]); errors are logged and the rule counts as restored.
    /// `clock` times it, for `prometheus_rule_group_last_restore_duration_seconds`.
    pub fn restore_for_state(
        &mut self,
        storage: &dyn Queryable,
        clock: &dyn Clock,
        outage_tolerance_ms: i64,
        grace_period_ms: i64,
    ) {
        let started_ns = clock.now_ns();
        let now_ms = started_ns.div_euclid(1_000_000);
        for rule in &mut self.rules {
            if let Rule::Alerting(rule) = rule
                && let Err(error) =
                    rule.restore_for_state(storage, now_ms, outage_tolerance_ms, grace_period_ms)
            {
                tracing::error!(alertname = %rule.name, %error, "Failed to restore 'for' state");
            }
        }
        self.should_restore = false;
        self.metrics.last_restore_seconds =
            clock.now_ns().saturating_sub(started_ns).max(0) as f64 / 1e9;
    }

    /// One iteration at `ts_ms`: every rule in order, each one's samples and stale markers
    /// committed before the next runs; alerts to send are collected.
    pub fn eval(
        &mut self,
        ctx: &EvalContext<'_>,
        storage: &mut dyn RuleStorage,
        ts_ms: i64,
    ) -> GroupOutcome {
        let started_ns = ctx.clock.now_ns();
        self.metrics.iterations += 1;
        let query_offset = self.query_offset_ms();
        let query_ts = ts_ms.saturating_sub(query_offset);
        let mut outcome = GroupOutcome::default();
        let mut samples_total = 0u64;
        for index in 0..self.rules.len() {
            let rule_started_ns = ctx.clock.now_ns();
            self.metrics.evaluations += 1;
            let limit = self.limit;
            let result = match &mut self.rules[index] {
                Rule::Recording(rule) => rule.eval(ctx, storage.queryable(), query_ts, limit),
                Rule::Alerting(rule) => {
                    rule.eval(ctx, storage.queryable(), ts_ms, query_offset, limit)
                }
            };
            let vector = match result {
                Ok(vector) => vector,
                Err(error) => {
                    tracing::warn!(group = %self.name, file = %self.file, rule = %self.rules[index].name(), %error, "Evaluating rule failed");
                    self.metrics.evaluation_failures += 1;
                    self.rules[index].status_mut().fail(error.clone());
                    self.finish_rule(index, rule_started_ns, ctx);
                    outcome.rules.push(RuleOutcome {
                        samples: Vec::new(),
                        error: Some(error),
                    });
                    continue;
                }
            };
            {
                let status = self.rules[index].status_mut();
                status.health = Health::Ok;
                status.last_error = None;
            }
            samples_total += vector.len() as u64;
            if let Rule::Alerting(rule) = &mut self.rules[index] {
                outcome.alerts.extend(rule.alerts_to_send(
                    ts_ms,
                    ctx.resend_delay_ms,
                    self.interval_ms,
                    ctx.external_url,
                ));
            }
            let returned: HashSet<&Labels> = vector.iter().map(|s| &s.labels).collect();
            let mut batch = vector.clone();
            let produced = batch.len();
            for previous in &self.series_in_previous_eval[index] {
                if !returned.contains(previous) {
                    batch.push(Sample {
                        labels: previous.clone(),
                        t: query_ts,
                        v: stale_nan(),
                        drop_name: false,
                    });
                }
            }
            let error = match storage.append_and_commit(&batch) {
                Ok(refusals) => {
                    let mut written = HashSet::with_capacity(produced);
                    for (sample, refusal) in batch.iter().zip(refusals.iter()).take(produced) {
                        match refusal {
                            None => {
                                written.insert(sample.labels.clone());
                            }
                            Some(refusal) => {
                                tracing::debug!(rule = %self.rules[index].name(), sample = %sample.labels, %refusal, "Rule evaluation result discarded");
                                self.rules[index].status_mut().fail(refusal.clone());
                            }
                        }
                    }
                    self.series_in_previous_eval[index] = written;
                    self.rules[index].status().last_error.clone()
                }
                Err(error) => {
                    tracing::warn!(rule = %self.rules[index].name(), %error, "Rule sample appending failed");
                    self.metrics.evaluation_failures += 1;
                    self.rules[index].status_mut().fail(error.clone());
                    Some(error)
                }
            };
            self.finish_rule(index, rule_started_ns, ctx);
            outcome.rules.push(RuleOutcome {
                samples: vector,
                error,
            });
        }
        self.metrics.last_samples = samples_total;
        self.cleanup_stale_series(storage, query_ts);
        self.iterations_done += 1;
        let elapsed = (ctx.clock.now_ns() - started_ns).max(0) as f64 / 1e9;
        self.evaluation_seconds = elapsed;
        self.metrics.duration_sum_seconds += elapsed;
        self.metrics.duration_count += 1;
        self.last_evaluation_ns = Some(started_ns);
        self.last_eval_timestamp_ms = Some(ts_ms);
        outcome
    }

    fn finish_rule(&mut self, index: usize, started_ns: i64, ctx: &EvalContext<'_>) {
        let status = self.rules[index].status_mut();
        status.evaluation_seconds = (ctx.clock.now_ns() - started_ns).max(0) as f64 / 1e9;
        status.last_evaluation_ns = Some(started_ns);
    }

    /// Stale markers for series of rules removed by a reload.
    fn cleanup_stale_series(&mut self, storage: &mut dyn RuleStorage, t: i64) {
        if self.stale_series.is_empty() {
            return;
        }
        let markers = stale_markers(&self.stale_series, t);
        match storage.append_and_commit(&markers) {
            Ok(_) => self.stale_series.clear(),
            Err(error) => {
                tracing::warn!(group = %self.name, %error, "Stale sample appending for previous configuration failed")
            }
        }
    }

    /// Every series the group wrote last, to mark stale when the group goes away.
    pub fn all_series(&self) -> Vec<Labels> {
        let mut all: Vec<Labels> = self
            .series_in_previous_eval
            .iter()
            .flatten()
            .cloned()
            .collect();
        all.extend(self.stale_series.iter().cloned());
        all
    }

    /// Whether a reloaded group is the same as this one (Prometheus's `Equals`).
    pub fn same_definition(&self, other: &Group) -> bool {
        self.name == other.name
            && self.file == other.file
            && self.interval_ms == other.interval_ms
            && self.limit == other.limit
            && self.query_offset_ms == other.query_offset_ms
            && self.rules.len() == other.rules.len()
            && self
                .rules
                .iter()
                .zip(&other.rules)
                .all(|(a, b)| a.identity() == b.identity())
    }

    /// Prometheus's `CopyState`: a reloaded group takes the state of the group it replaces.
    /// Rules match by name and labels (the n-th duplicate with the n-th); a matched rule keeps
    /// its previous series (and an alerting rule its alerts); series of unmatched old rules are
    /// marked stale at the next evaluation. The schedule is kept too, so that a changed group
    /// keeps its slots.
    pub fn copy_state(&mut self, from: Group) {
        self.evaluation_seconds = from.evaluation_seconds;
        self.last_evaluation_ns = from.last_evaluation_ns;
        self.last_eval_timestamp_ms = from.last_eval_timestamp_ms;
        self.metrics = from.metrics;
        if self.interval_ms == from.interval_ms {
            self.next_eval_ms = from.next_eval_ms;
        }
        let mut by_identity: HashMap<String, Vec<usize>> = HashMap::new();
        for (index, rule) in from.rules.iter().enumerate() {
            by_identity
                .entry(rule.name_and_labels())
                .or_default()
                .push(index);
        }
        let mut from_rules: Vec<Option<Rule>> = from.rules.into_iter().map(Some).collect();
        let mut from_series: Vec<HashSet<Labels>> = from.series_in_previous_eval;
        for (index, rule) in self.rules.iter_mut().enumerate() {
            let Some(indexes) = by_identity.get_mut(&rule.name_and_labels()) else {
                continue;
            };
            if indexes.is_empty() {
                continue;
            }
            let from_index = indexes.remove(0);
            self.series_in_previous_eval[index] = std::mem::take(&mut from_series[from_index]);
            if let (Rule::Alerting(new), Some(Rule::Alerting(old))) =
                (rule, from_rules[from_index].take())
            {
                new.active.extend(old.active);
            }
        }
        self.stale_series = from.stale_series;
        for indexes in by_identity.into_values() {
            for from_index in indexes {
                self.stale_series
                    .extend(std::mem::take(&mut from_series[from_index]));
            }
        }
    }
}

pub fn group_key(file: &str, name: &str) -> String {
    format!("{file};{name}")
}

pub fn stale_markers(series: &[Labels], t: i64) -> Vec<Sample> {
    series
        .iter()
        .map(|labels| Sample {
            labels: labels.clone(),
            t,
            v: stale_nan(),
            drop_name: false,
        })
        .collect()
}

/// XXH64 with seed 0 (Prometheus hashes label sets with `cespare/xxhash`).
pub fn xxhash64(data: &[u8]) -> u64 {
    const P1: u64 = 0x9E37_79B1_85EB_CA87;
    const P2: u64 = 0xC2B2_AE3D_27D4_EB4F;
    const P3: u64 = 0x1656_67B1_9E37_79F9;
    const P4: u64 = 0x85EB_CA77_C2B2_AE63;
    const P5: u64 = 0x27D4_EB2F_1656_67C5;
    fn read64(bytes: &[u8]) -> u64 {
        let mut word = [0u8; 8];
        word.copy_from_slice(&bytes[..8]);
        u64::from_le_bytes(word)
    }
    fn read32(bytes: &[u8]) -> u64 {
        let mut word = [0u8; 4];
        word.copy_from_slice(&bytes[..4]);
        u64::from(u32::from_le_bytes(word))
    }
    fn round(acc: u64, input: u64) -> u64 {
        acc.wrapping_add(input.wrapping_mul(P2))
            .rotate_left(31)
            .wrapping_mul(P1)
    }
    fn merge(acc: u64, value: u64) -> u64 {
        (acc ^ round(0, value)).wrapping_mul(P1).wrapping_add(P4)
    }
    let mut rest = data;
    let mut hash = if data.len() >= 32 {
        let mut v1 = P1.wrapping_add(P2);
        let mut v2 = P2;
        let mut v3 = 0u64;
        let mut v4 = 0u64.wrapping_sub(P1);
        while rest.len() >= 32 {
            v1 = round(v1, read64(&rest[0..]));
            v2 = round(v2, read64(&rest[8..]));
            v3 = round(v3, read64(&rest[16..]));
            v4 = round(v4, read64(&rest[24..]));
            rest = &rest[32..];
        }
        let mut hash = v1
            .rotate_left(1)
            .wrapping_add(v2.rotate_left(7))
            .wrapping_add(v3.rotate_left(12))
            .wrapping_add(v4.rotate_left(18));
        hash = merge(hash, v1);
        hash = merge(hash, v2);
        hash = merge(hash, v3);
        merge(hash, v4)
    } else {
        P5
    };
    hash = hash.wrapping_add(data.len() as u64);
    while rest.len() >= 8 {
        hash ^= round(0, read64(rest));
        hash = hash.rotate_left(27).wrapping_mul(P1).wrapping_add(P4);
        rest = &rest[8..];
    }
    if rest.len() >= 4 {
        hash ^= read32(rest).wrapping_mul(P1);
        hash = hash.rotate_left(23).wrapping_mul(P2).wrapping_add(P3);
        rest = &rest[4..];
    }
    for &byte in rest {
        hash ^= u64::from(byte).wrapping_mul(P5);
        hash = hash.rotate_left(11).wrapping_mul(P1);
    }
    hash ^= hash >> 33;
    hash = hash.wrapping_mul(P2);
    hash ^= hash >> 29;
    hash = hash.wrapping_mul(P3);
    hash ^= hash >> 32;
    hash
}
