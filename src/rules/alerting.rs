//! An alerting rule and its alerts (Prometheus's `rules/alerting.go`).
//!
//! Each label set the expression returns is one alert: pending while it has been returned for
//! less than `for`, then firing; when it stops being returned a pending alert is forgotten and
//! a firing one becomes inactive (resolved), unless `keep_firing_for` holds it firing a while
//! longer. Resolved alerts are kept (and re-sent as resolved) for [`RESOLVED_RETENTION_MS`].

#![deny(clippy::disallowed_methods)]

use super::alert::OutgoingAlert;
use super::group::{EvalContext, RuleStatus};
use super::template::{Expander, pairs};
use crate::promql::storage::{MatchKind, Matcher};
use crate::promql::value::{METRIC_NAME, is_stale_nan};
use crate::promql::{Labels, Queryable, Sample};
use promql_parser::parser::Expr;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;

/// How long a resolved alert is kept and re-sent (Prometheus's `resolvedRetention`).
pub const RESOLVED_RETENTION_MS: i64 = 15 * 60 * 1000;
pub const ALERTS_METRIC: &str = "ALERTS";
pub const ALERTS_FOR_STATE_METRIC: &str = "ALERTS_FOR_STATE";
pub const ALERT_NAME_LABEL: &str = "alertname";
pub const ALERT_STATE_LABEL: &str = "alertstate";

/// An alert's (or alerting rule's) annotations: names sorted and unique like labels, but an
/// empty value is kept. Prometheus builds annotations with a scratch builder, which keeps
/// `summary: ""` (and sends, shows and compares it), whereas a label with an empty value is the
/// same as no label, which is what [`Labels`] implements.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Annotations(Vec<(String, String)>);

impl Annotations {
    pub fn new() -> Annotations {
        Annotations(Vec::new())
    }

    /// Builds the set from pairs in any order; a later duplicate name wins. Empty values stay.
    pub fn from_pairs<N: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (N, V)>,
    ) -> Annotations {
        let mut annotations = Annotations::new();
        for (name, value) in pairs {
            annotations.set(name.into(), value.into());
        }
        annotations
    }

    /// Sets `name` to `value`, empty or not.
    pub fn set(&mut self, name: String, value: String) {
        match self.0.binary_search_by(|(n, _)| n.as_str().cmp(&name)) {
            Ok(index) => self.0[index].1 = value,
            Err(index) => self.0.insert(index, (name, value)),
        }
    }

    /// The value of `name`; `Some("")` for an annotation that expanded to nothing.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .binary_search_by(|(n, _)| n.as_str().cmp(name))
            .ok()
            .map(|index| self.0[index].1.as_str())
    }

    /// Name and value pairs, sorted by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for Annotations {
    /// The `labels.String()` form: `{summary="x", url=""}`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{{")?;
        for (index, (name, value)) in self.0.iter().enumerate() {
            if index > 0 {
                write!(f, ", ")?;
            }
            write!(f, "{name}={value:?}")?;
        }
        write!(f, "}}")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AlertState {
    Inactive,
    Pending,
    Firing,
}

impl AlertState {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertState::Inactive => "inactive",
            AlertState::Pending => "pending",
            AlertState::Firing => "firing",
        }
    }
}

/// One alert of a rule. Times are Unix milliseconds; `None` is Go's zero time.
#[derive(Debug, Clone, PartialEq)]
pub struct Alert {
    pub state: AlertState,
    /// The sample's labels without `__name__`, the rule's labels (templated) and `alertname`.
    pub labels: Labels,
    pub annotations: Annotations,
    /// The expression's value at the last evaluation that returned this alert.
    pub value: f64,
    pub active_at_ms: i64,
    pub fired_at_ms: Option<i64>,
    pub resolved_at_ms: Option<i64>,
    pub last_sent_at_ms: Option<i64>,
    pub valid_until_ms: Option<i64>,
    pub keep_firing_since_ms: Option<i64>,
}

impl Alert {
    /// Prometheus's `needsSending`: never while pending; at once when resolved since the last
    /// send; otherwise once the resend delay has passed since the last send.
    fn needs_sending(&self, ts_ms: i64, resend_delay_ms: i64) -> bool {
        if self.state == AlertState::Pending {
            return false;
        }
        if let Some(resolved) = self.resolved_at_ms
            && self.last_sent_at_ms.is_none_or(|sent| resolved > sent)
        {
            return true;
        }
        self.last_sent_at_ms
            .is_none_or(|sent| sent.saturating_add(resend_delay_ms) < ts_ms)
    }
}

#[derive(Debug, Clone)]
pub struct AlertingRule {
    pub(super) name: String,
    pub(super) expr: Expr,
    pub(super) query: String,
    pub(super) hold_ms: i64,
    pub(super) keep_firing_for_ms: i64,
    /// The group's labels overlaid with the rule's own, as written (templates unexpanded).
    pub(super) labels: Labels,
    pub(super) annotations: Annotations,
    /// Alerts by their label set (Prometheus keys them by its hash).
    pub(super) active: BTreeMap<Labels, Alert>,
    /// Whether `for` state was restored (or needs no restoring): until then the rule writes no
    /// `ALERTS`/`ALERTS_FOR_STATE` series, so restoring reads only what was written before.
    pub(super) restored: bool,
    pub(super) status: RuleStatus,
}

/// Seconds since the epoch, as Go's `Time.Unix` (floored).
fn unix_seconds(ms: i64) -> i64 {
    ms.div_euclid(1000)
}

impl AlertingRule {
    pub fn new(
        name: &str,
        expr: Expr,
        hold_ms: i64,
        keep_firing_for_ms: i64,
        labels: Labels,
        annotations: Annotations,
        restored: bool,
    ) -> AlertingRule {
        AlertingRule {
            name: name.to_string(),
            query: expr.to_string(),
            expr,
            hold_ms,
            keep_firing_for_ms,
            labels,
            annotations,
            active: BTreeMap::new(),
            restored,
            status: RuleStatus::default(),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }
    pub fn query(&self) -> &str {
        &self.query
    }
    pub fn hold_ms(&self) -> i64 {
        self.hold_ms
    }
    pub fn keep_firing_for_ms(&self) -> i64 {
        self.keep_firing_for_ms
    }
    pub fn labels(&self) -> &Labels {
        &self.labels
    }
    pub fn annotations(&self) -> &Annotations {
        &self.annotations
    }
    pub fn status(&self) -> &RuleStatus {
        &self.status
    }
    pub fn is_restored(&self) -> bool {
        self.restored
    }
    pub fn set_restored(&mut self, restored: bool) {
        self.restored = restored;
    }

    /// The highest state among the rule's alerts (firing > pending > inactive).
    pub fn state(&self) -> AlertState {
        self.active
            .values()
            .map(|alert| alert.state)
            .max()
            .unwrap_or(AlertState::Inactive)
    }

    /// Alerts not resolved (pending or firing), sorted by labels.
    pub fn active_alerts(&self) -> impl Iterator<Item = &Alert> {
        self.active
            .values()
            .filter(|alert| alert.resolved_at_ms.is_none())
    }

    /// Every alert the rule holds, resolved ones in their retention included.
    pub fn current_alerts(&self) -> impl Iterator<Item = &Alert> {
        self.active.values()
    }

    /// One evaluation at `ts_ms`: the expression is queried at `ts_ms - query_offset_ms`,
    /// alerts are created, updated, fired and resolved, and the `ALERTS` and
    /// `ALERTS_FOR_STATE` samples to write are returned (stamped with the query time).
    pub fn eval(
        &mut self,
        ctx: &EvalContext<'_>,
        storage: &dyn Queryable,
        ts_ms: i64,
        query_offset_ms: i64,
        limit: u64,
    ) -> Result<Vec<Sample>, String> {
        let query_ts = ts_ms.saturating_sub(query_offset_ms);
        let vector = ctx.query(storage, &self.expr, query_ts)?;
        let template_name = format!("__alert_{}", self.name);
        let mut fresh: HashMap<Labels, Alert> = HashMap::with_capacity(vector.len());
        for sample in &vector {
            let expander = Expander {
                template_name: template_name.clone(),
                sample_labels: pairs(&sample.labels),
                external_labels: ctx.external_labels,
                external_url: ctx.external_url,
                value: sample.v,
                engine: ctx.engine,
                storage,
                now_ms: ts_ms,
            };
            let mut labels = sample.labels.clone();
            labels.remove(METRIC_NAME);
            for (name, value) in self.labels.iter() {
                labels.set(name, &expander.expand(value));
            }
            labels.set(ALERT_NAME_LABEL, &self.name);
            // Expanded to "" or not, every annotation is kept, as Prometheus keeps it.
            let annotations = Annotations::from_pairs(
                self.annotations
                    .iter()
                    .map(|(name, value)| (name, expander.expand(value))),
            );
            if fresh.contains_key(&labels) {
                return Err(
                    "vector contains metrics with the same labelset after applying alert labels"
                        .to_string(),
                );
            }
            fresh.insert(
                labels.clone(),
                Alert {
                    state: AlertState::Pending,
                    labels,
                    annotations,
                    value: sample.v,
                    active_at_ms: ts_ms,
                    fired_at_ms: None,
                    resolved_at_ms: None,
                    last_sent_at_ms: None,
                    valid_until_ms: None,
                    keep_firing_since_ms: None,
                },
            );
        }
        let returned: HashSet<Labels> = fresh.keys().cloned().collect();
        for (labels, alert) in fresh {
            match self.active.get_mut(&labels) {
                // Known and not resolved: only the value and annotations change.
                Some(existing) if existing.state != AlertState::Inactive => {
                    existing.value = alert.value;
                    existing.annotations = alert.annotations;
                }
                _ => {
                    self.active.insert(labels, alert);
                }
            }
        }

        let mut out = Vec::new();
        let mut active_or_pending = 0u64;
        let mut forget = Vec::new();
        for (labels, alert) in self.active.iter_mut() {
            if !returned.contains(labels) {
                let mut keep_firing = false;
                if alert.state == AlertState::Firing && self.keep_firing_for_ms > 0 {
                    let since = *alert.keep_firing_since_ms.get_or_insert(ts_ms);
                    keep_firing = ts_ms.saturating_sub(since) < self.keep_firing_for_ms;
                }
                if alert.state == AlertState::Pending
                    || alert.resolved_at_ms.is_some_and(|resolved| {
                        ts_ms.saturating_sub(resolved) > RESOLVED_RETENTION_MS
                    })
                {
                    forget.push(labels.clone());
                }
                if alert.state != AlertState::Inactive && !keep_firing {
                    alert.state = AlertState::Inactive;
                    alert.resolved_at_ms = Some(ts_ms);
                }
                if !keep_firing {
                    continue;
                }
            } else {
                alert.keep_firing_since_ms = None;
            }
            active_or_pending += 1;
            if alert.state == AlertState::Pending
                && ts_ms.saturating_sub(alert.active_at_ms) >= self.hold_ms
            {
                alert.state = AlertState::Firing;
                alert.fired_at_ms = Some(ts_ms);
            }
            if self.restored {
                out.push(series_sample(
                    &self.labels,
                    alert,
                    &self.name,
                    ALERTS_METRIC,
                    Some(alert.state),
                    query_ts,
                    1.0,
                ));
                out.push(series_sample(
                    &self.labels,
                    alert,
                    &self.name,
                    ALERTS_FOR_STATE_METRIC,
                    None,
                    query_ts,
                    unix_seconds(alert.active_at_ms) as f64,
                ));
            }
        }
        for labels in forget {
            self.active.remove(&labels);
        }
        if limit > 0 && active_or_pending > limit {
            self.active.clear();
            return Err(format!(
                "exceeded limit of {limit} with {active_or_pending} alerts"
            ));
        }
        Ok(out)
    }

    /// The alerts to send after an evaluation at `ts_ms` (Prometheus's `sendAlerts`); marks
    /// them sent. Firing alerts are valid until `ts + 4 × max(interval, resend delay)`.
    pub fn alerts_to_send(
        &mut self,
        ts_ms: i64,
        resend_delay_ms: i64,
        interval_ms: i64,
        external_url: &str,
    ) -> Vec<OutgoingAlert> {
        let delta = interval_ms.max(resend_delay_ms);
        let generator_url = generator_url(external_url, &self.query);
        let mut out = Vec::new();
        for alert in self.active.values_mut() {
            if !alert.needs_sending(ts_ms, resend_delay_ms) {
                continue;
            }
            alert.last_sent_at_ms = Some(ts_ms);
            let valid_until = ts_ms.saturating_add(delta.saturating_mul(4));
            alert.valid_until_ms = Some(valid_until);
            out.push(OutgoingAlert {
                labels: alert.labels.clone(),
                annotations: alert.annotations.clone(),
                starts_at_ms: alert.fired_at_ms.unwrap_or(alert.active_at_ms),
                ends_at_ms: alert.resolved_at_ms.unwrap_or(valid_until),
                generator_url: generator_url.clone(),
            });
        }
        out
    }

    /// Prometheus's `RestoreForState` for this rule, at `now_ms`: each alert's `activeAt` is
    /// taken from the last `ALERTS_FOR_STATE` sample written within the outage tolerance,
    /// shifted by the time the server was down, and never so that the alert fires sooner than
    /// the grace period from now. Rules whose `for` is shorter than the grace period are not
    /// restored. The rule is marked restored in every case.
    pub fn restore_for_state(
        &mut self,
        storage: &dyn Queryable,
        now_ms: i64,
        outage_tolerance_ms: i64,
        grace_period_ms: i64,
    ) -> Result<(), String> {
        self.restored = true;
        if self.hold_ms < grace_period_ms {
            return Ok(());
        }
        let mut matchers = Vec::with_capacity(self.labels.len() + 2);
        let mut wanted = self.labels.clone();
        wanted.set(METRIC_NAME, ALERTS_FOR_STATE_METRIC);
        wanted.set(ALERT_NAME_LABEL, &self.name);
        for (name, value) in wanted.iter() {
            matchers.push(
                Matcher::new(MatchKind::Equal, name, value).map_err(|error| error.to_string())?,
            );
        }
        let series = storage
            .select(
                &matchers,
                now_ms.saturating_sub(outage_tolerance_ms),
                now_ms,
            )
            .map_err(|error| error.to_string())?;
        let by_labels: HashMap<Labels, Option<(i64, f64)>> = series
            .into_iter()
            .map(|series| {
                let mut labels = series.labels;
                labels.remove(METRIC_NAME);
                (labels, series.samples.last().copied())
            })
            .collect();
        if by_labels.is_empty() {
            return Ok(());
        }
        for alert in self.active.values_mut() {
            let Some(Some((t, v))) = by_labels.get(&alert.labels) else {
                continue;
            };
            if is_stale_nan(*v) {
                continue;
            }
            let down_at = (t / 1000) * 1000;
            let mut active_at = (*v as i64).saturating_mul(1000);
            let remaining = self
                .hold_ms
                .saturating_sub(down_at.saturating_sub(active_at));
            if remaining <= 0 {
                // It was firing when the server went down; the next evaluation fires it again.
            } else if remaining < grace_period_ms {
                active_at = now_ms
                    .saturating_add(grace_period_ms)
                    .saturating_sub(self.hold_ms);
            } else {
                active_at = active_at.saturating_add(now_ms.saturating_sub(down_at));
            }
            alert.active_at_ms = active_at;
        }
        Ok(())
    }
}

/// `ALERTS` (with `alertstate`) or `ALERTS_FOR_STATE` for one alert: the rule's labels as
/// written, overlaid with the alert's.
fn series_sample(
    rule_labels: &Labels,
    alert: &Alert,
    rule_name: &str,
    metric: &str,
    state: Option<AlertState>,
    t: i64,
    v: f64,
) -> Sample {
    let mut labels = rule_labels.clone();
    for (name, value) in alert.labels.iter() {
        labels.set(name, value);
    }
    labels.set(METRIC_NAME, metric);
    labels.set(ALERT_NAME_LABEL, rule_name);
    if let Some(state) = state {
        labels.set(ALERT_STATE_LABEL, state.as_str());
    }
    Sample {
        labels,
        t,
        v,
        drop_name: false,
    }
}

/// Prometheus's generator URL: `<external URL>/graph?g0.expr=<expr>&g0.tab=1`.
pub fn generator_url(external_url: &str, expr: &str) -> String {
    format!(
        "{}/graph?g0.expr={}&g0.tab=1",
        external_url.trim_end_matches('/'),
        query_escape(expr)
    )
}

/// Go's `url.QueryEscape`.
pub fn query_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 3);
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(byte as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}
