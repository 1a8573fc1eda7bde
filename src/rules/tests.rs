//! The rule manager driven with a virtual clock over [`MemoryStorage`].

#![allow(clippy::unwrap_used)]

use super::alerting::{AlertState, Annotations, generator_url, query_escape};
use super::group::{Clock, EvalContext, Group, Health, Rule, xxhash64};
use super::manager::{Manager, ManagerOptions, load_groups};
use crate::config::prometheus::{RuleFile, parse_rule_file};
use crate::promql::memory::MemoryStorage;
use crate::promql::value::is_stale_nan;
use crate::promql::{Engine, Labels, Matcher, Queryable};
use std::path::PathBuf;

const MIN: i64 = 60_000;

struct FixedClock;

/// A clock that moves `step_ns` forward each time it is read.
struct SteppingClock {
    next_ns: std::cell::Cell<i64>,
    step_ns: i64,
}

impl SteppingClock {
    fn new(start_ns: i64, step_ns: i64) -> SteppingClock {
        SteppingClock {
            next_ns: std::cell::Cell::new(start_ns),
            step_ns,
        }
    }
}

impl Clock for SteppingClock {
    fn now_ns(&self) -> i64 {
        let now = self.next_ns.get();
        self.next_ns.set(now + self.step_ns);
        now
    }
}

impl Clock for FixedClock {
    fn now_ns(&self) -> i64 {
        0
    }
}

fn file(text: &str) -> Vec<(PathBuf, RuleFile)> {
    vec![(
        PathBuf::from("rules.yml"),
        parse_rule_file(text, "rules.yml").unwrap(),
    )]
}

fn groups(text: &str, restored: bool) -> Vec<Group> {
    load_groups(&file(text), &ManagerOptions::default(), !restored).unwrap()
}

struct Env {
    engine: Engine,
    external_labels: Vec<(String, String)>,
    resend_delay_ms: i64,
}

impl Env {
    fn new() -> Env {
        Env {
            engine: Engine::default(),
            external_labels: vec![("region".to_string(), "eu".to_string())],
            resend_delay_ms: MIN,
        }
    }

    fn ctx(&self) -> EvalContext<'_> {
        EvalContext {
            engine: &self.engine,
            external_labels: &self.external_labels,
            external_url: "http://tocsin:9090/",
            resend_delay_ms: self.resend_delay_ms,
            clock: &FixedClock,
        }
    }
}

fn labels(pairs: &[(&str, &str)]) -> Labels {
    Labels::from_pairs(pairs.iter().copied())
}

/// Every sample of the series named `name` (`(labels, t, v)`).
fn series(storage: &MemoryStorage, name: &str) -> Vec<(Labels, i64, f64)> {
    let matcher = Matcher::new(crate::promql::MatchKind::Equal, "__name__", name).unwrap();
    storage
        .select(&[matcher], i64::MIN / 2, i64::MAX / 2)
        .unwrap()
        .into_iter()
        .flat_map(|s| {
            let labels = s.labels.clone();
            s.samples
                .into_iter()
                .map(move |(t, v)| (labels.clone(), t, v))
        })
        .collect()
}

fn alerting(group: &Group, index: usize) -> &super::alerting::AlertingRule {
    match &group.rules()[index] {
        Rule::Alerting(rule) => rule,
        Rule::Recording(_) => panic!("rule {index} is not an alerting rule"),
    }
}

const ALERT: &str = "groups:\n- name: g\n  interval: 1m\n  rules:\n  - alert: High\n    expr: load > 1\n    for: 2m\n    labels:\n      severity: page\n    annotations:\n      summary: '{{ $labels.instance }} at {{ $value }}'\n";

#[test]
fn recording_rules_rename_label_and_feed_later_rules() {
    let env = Env::new();
    let mut storage = MemoryStorage::new();
    storage.append(
        &labels(&[("__name__", "up"), ("job", "a"), ("instance", "x")]),
        0,
        1.0,
    );
    storage.append(
        &labels(&[("__name__", "up"), ("job", "a"), ("instance", "y")]),
        0,
        0.0,
    );
    let mut groups = groups(
        "groups:\n- name: g\n  labels:\n    team: infra\n    tier: group\n  rules:\n  - record: job:up:sum\n    expr: sum by (job) (up)\n    labels:\n      tier: rule\n  - record: job:up:double\n    expr: job:up:sum * 2\n  - record: answer\n    expr: '42'\n",
        true,
    );
    let outcome = groups[0].eval(&env.ctx(), &mut storage, 10_000);
    assert!(outcome.rules.iter().all(|rule| rule.error.is_none()));
    assert_eq!(
        outcome.rules[0].samples[0].labels,
        labels(&[
            ("__name__", "job:up:sum"),
            ("job", "a"),
            ("team", "infra"),
            ("tier", "rule")
        ])
    );
    // The second rule saw the first one's sample, committed before it ran.
    assert_eq!(outcome.rules[1].samples.len(), 1);
    assert_eq!(outcome.rules[1].samples[0].v, 2.0);
    // A scalar becomes one sample with the rule's labels.
    assert_eq!(
        outcome.rules[2].samples[0].labels,
        labels(&[("__name__", "answer"), ("team", "infra"), ("tier", "group")])
    );
    assert_eq!(
        series(&storage, "answer"),
        vec![(outcome.rules[2].samples[0].labels.clone(), 10_000, 42.0)]
    );
    assert_eq!(groups[0].rules()[0].status().health, Health::Ok);
}

#[test]
fn recording_rules_mark_vanished_series_stale() {
    let env = Env::new();
    let mut storage = MemoryStorage::new();
    let a = labels(&[("__name__", "m"), ("k", "a")]);
    let b = labels(&[("__name__", "m"), ("k", "b")]);
    storage.append(&a, 0, 1.0);
    storage.append(&b, 0, 1.0);
    let mut groups = groups(
        "groups:\n- name: g\n  query_offset: 10s\n  rules:\n  - record: r\n    expr: m\n",
        true,
    );
    groups[0].eval(&env.ctx(), &mut storage, 60_000);
    // `b` goes stale in storage: the next evaluation no longer returns it.
    storage.append(&b, 61_000, crate::promql::value::stale_nan());
    groups[0].eval(&env.ctx(), &mut storage, 120_000);
    let written = series(&storage, "r");
    let rb = labels(&[("__name__", "r"), ("k", "b")]);
    let ra = labels(&[("__name__", "r"), ("k", "a")]);
    // Samples are stamped with the query time (ts - query_offset).
    assert!(written.contains(&(ra.clone(), 50_000, 1.0)));
    assert!(written.contains(&(ra, 110_000, 1.0)));
    assert!(
        written
            .iter()
            .any(|(l, t, v)| *l == rb && *t == 110_000 && is_stale_nan(*v))
    );
}

#[test]
fn recording_rule_errors_duplicates_and_limits() {
    let env = Env::new();
    let mut storage = MemoryStorage::new();
    storage.append(&labels(&[("__name__", "m"), ("k", "a")]), 0, 1.0);
    storage.append(&labels(&[("__name__", "n"), ("k", "a")]), 0, 1.0);
    storage.append(&labels(&[("__name__", "m"), ("k", "b")]), 0, 1.0);
    let mut groups = groups(
        "groups:\n- name: dup\n  rules:\n  - record: r\n    expr: '{k=\"a\"}'\n- name: limited\n  limit: 1\n  rules:\n  - record: s\n    expr: m\n",
        true,
    );
    let outcome = groups[0].eval(&env.ctx(), &mut storage, 1000);
    assert_eq!(
        outcome.rules[0].error.as_deref(),
        Some("vector contains metrics with the same labelset after applying rule labels")
    );
    assert_eq!(groups[0].rules()[0].status().health, Health::Err);
    assert_eq!(groups[0].metrics().evaluation_failures, 1);
    let outcome = groups[1].eval(&env.ctx(), &mut storage, 1000);
    assert_eq!(
        outcome.rules[0].error.as_deref(),
        Some("exceeded limit of 1 with 2 series")
    );
    assert!(series(&storage, "s").is_empty());
    assert!(series(&storage, "r").is_empty());
}

#[test]
fn alerts_go_pending_then_firing_then_resolved() {
    let env = Env::new();
    let mut storage = MemoryStorage::new();
    let load = labels(&[("__name__", "load"), ("instance", "x")]);
    let mut groups = groups(ALERT, true);
    let group = &mut groups[0];
    for minute in 0..=3 {
        storage.append(&load, minute * MIN, 2.0);
    }
    // t=0: pending, nothing sent.
    let outcome = group.eval(&env.ctx(), &mut storage, 0);
    assert!(outcome.alerts.is_empty());
    let rule = alerting(group, 0);
    assert_eq!(rule.state(), AlertState::Pending);
    let alert = rule.active_alerts().next().unwrap();
    assert_eq!(
        alert.labels,
        labels(&[
            ("alertname", "High"),
            ("instance", "x"),
            ("severity", "page")
        ])
    );
    assert_eq!(
        alert.annotations,
        Annotations::from_pairs([("summary", "x at 2")])
    );
    // t=1m: still pending (for is 2m).
    assert!(group.eval(&env.ctx(), &mut storage, MIN).alerts.is_empty());
    // t=2m: firing, sent, valid for 4 × max(interval, resend delay).
    let outcome = group.eval(&env.ctx(), &mut storage, 2 * MIN);
    assert_eq!(alerting(group, 0).state(), AlertState::Firing);
    assert_eq!(outcome.alerts.len(), 1);
    let sent = &outcome.alerts[0];
    assert_eq!(sent.starts_at_ms, 2 * MIN);
    assert_eq!(sent.ends_at_ms, 2 * MIN + 4 * MIN);
    assert_eq!(
        sent.generator_url,
        "http://tocsin:9090/graph?g0.expr=load+%3E+1&g0.tab=1"
    );
    let alerts_series = series(&storage, "ALERTS");
    assert!(alerts_series.contains(&(
        labels(&[
            ("__name__", "ALERTS"),
            ("alertname", "High"),
            ("alertstate", "pending"),
            ("instance", "x"),
            ("severity", "page")
        ]),
        0,
        1.0
    )));
    assert!(alerts_series.contains(&(
        labels(&[
            ("__name__", "ALERTS"),
            ("alertname", "High"),
            ("alertstate", "firing"),
            ("instance", "x"),
            ("severity", "page")
        ]),
        2 * MIN,
        1.0
    )));
    // The pending series went stale when the alert fired.
    assert!(
        alerts_series
            .iter()
            .any(|(l, t, v)| l.get("alertstate") == "pending" && *t == 2 * MIN && is_stale_nan(*v))
    );
    let for_state = series(&storage, "ALERTS_FOR_STATE");
    assert!(for_state.iter().all(|(_, _, v)| *v == 0.0));
    // t=3m: still firing; the resend delay (1m) has not passed strictly, so nothing is sent.
    assert!(
        group
            .eval(&env.ctx(), &mut storage, 3 * MIN)
            .alerts
            .is_empty()
    );
    // t=4m: the series is gone: resolved, sent at once with ends_at = resolution time.
    let outcome = group.eval(&env.ctx(), &mut storage, 4 * MIN + 6 * MIN);
    assert_eq!(outcome.alerts.len(), 1);
    assert_eq!(outcome.alerts[0].ends_at_ms, 10 * MIN);
    assert_eq!(outcome.alerts[0].starts_at_ms, 2 * MIN);
    let rule = alerting(group, 0);
    assert_eq!(rule.state(), AlertState::Inactive);
    assert_eq!(rule.active_alerts().count(), 0);
    assert_eq!(rule.current_alerts().count(), 1);
    let alerts_series = series(&storage, "ALERTS");
    assert!(
        alerts_series
            .iter()
            .any(|(l, t, v)| l.get("alertstate") == "firing" && *t == 10 * MIN && is_stale_nan(*v))
    );
}

#[test]
fn resolved_alerts_are_resent_then_forgotten_after_retention() {
    let env = Env::new();
    let mut storage = MemoryStorage::new();
    let load = labels(&[("__name__", "load"), ("instance", "x")]);
    storage.append(&load, 0, 2.0);
    let mut groups = groups(
        "groups:\n- name: g\n  rules:\n  - alert: High\n    expr: load > 1\n",
        true,
    );
    let group = &mut groups[0];
    // for = 0: fires at the first evaluation.
    let outcome = group.eval(&env.ctx(), &mut storage, 0);
    assert_eq!(alerting(group, 0).state(), AlertState::Firing);
    assert_eq!(outcome.alerts.len(), 1);
    storage.append(&load, MIN / 2, crate::promql::value::stale_nan());
    let outcome = group.eval(&env.ctx(), &mut storage, MIN);
    assert_eq!(outcome.alerts[0].ends_at_ms, MIN);
    // Resent as resolved once the resend delay passed (strictly).
    assert!(
        group
            .eval(&env.ctx(), &mut storage, 2 * MIN)
            .alerts
            .is_empty()
    );
    let outcome = group.eval(&env.ctx(), &mut storage, 2 * MIN + 1);
    assert_eq!(outcome.alerts.len(), 1);
    assert_eq!(outcome.alerts[0].ends_at_ms, MIN);
    // Kept 15 minutes after resolution, then forgotten.
    group.eval(&env.ctx(), &mut storage, 16 * MIN);
    assert_eq!(alerting(group, 0).current_alerts().count(), 1);
    group.eval(&env.ctx(), &mut storage, 16 * MIN + 1);
    assert_eq!(alerting(group, 0).current_alerts().count(), 0);
}

#[test]
fn pending_alerts_that_flap_start_over() {
    let env = Env::new();
    let mut storage = MemoryStorage::new();
    let load = labels(&[("__name__", "load"), ("instance", "x")]);
    let mut groups = groups(ALERT, true);
    let group = &mut groups[0];
    storage.append(&load, 0, 2.0);
    group.eval(&env.ctx(), &mut storage, 0);
    storage.append(&load, MIN, 0.5);
    group.eval(&env.ctx(), &mut storage, MIN);
    assert_eq!(alerting(group, 0).current_alerts().count(), 0);
    storage.append(&load, 2 * MIN, 2.0);
    group.eval(&env.ctx(), &mut storage, 2 * MIN);
    let alert = alerting(group, 0).active_alerts().next().unwrap();
    assert_eq!(alert.state, AlertState::Pending);
    assert_eq!(alert.active_at_ms, 2 * MIN);
    // A value change only updates value and annotations.
    storage.append(&load, 3 * MIN, 3.0);
    group.eval(&env.ctx(), &mut storage, 3 * MIN);
    let alert = alerting(group, 0).active_alerts().next().unwrap();
    assert_eq!((alert.active_at_ms, alert.value), (2 * MIN, 3.0));
    assert_eq!(alert.annotations.get("summary"), Some("x at 3"));
}

#[test]
fn keep_firing_for_holds_a_cleared_alert() {
    let env = Env::new();
    let mut storage = MemoryStorage::new();
    let load = labels(&[("__name__", "load"), ("instance", "x")]);
    let mut first = groups(
        "groups:\n- name: g\n  rules:\n  - alert: High\n    expr: load > 1\n    keep_firing_for: 2m\n",
        true,
    );
    let group = &mut first[0];
    storage.append(&load, 0, 2.0);
    group.eval(&env.ctx(), &mut storage, 0);
    storage.append(&load, MIN, 0.0);
    group.eval(&env.ctx(), &mut storage, MIN);
    let alert = alerting(group, 0).active_alerts().next().unwrap();
    assert_eq!(alert.state, AlertState::Firing);
    assert_eq!(alert.keep_firing_since_ms, Some(MIN));
    group.eval(&env.ctx(), &mut storage, 2 * MIN);
    assert_eq!(alerting(group, 0).state(), AlertState::Firing);
    // Two minutes after the condition cleared, it resolves.
    let outcome = group.eval(&env.ctx(), &mut storage, 3 * MIN);
    assert_eq!(alerting(group, 0).state(), AlertState::Inactive);
    assert_eq!(outcome.alerts[0].ends_at_ms, 3 * MIN);
    // Returning while kept firing resets keep_firing_since.
    let mut groups2 = groups(
        "groups:\n- name: g\n  rules:\n  - alert: High\n    expr: load > 1\n    keep_firing_for: 2m\n",
        true,
    );
    let group = &mut groups2[0];
    let mut storage = MemoryStorage::new();
    storage.append(&load, 0, 2.0);
    group.eval(&env.ctx(), &mut storage, 0);
    storage.append(&load, MIN, 0.0);
    group.eval(&env.ctx(), &mut storage, MIN);
    storage.append(&load, 2 * MIN, 2.0);
    group.eval(&env.ctx(), &mut storage, 2 * MIN);
    let alert = alerting(group, 0).active_alerts().next().unwrap();
    assert_eq!(alert.keep_firing_since_ms, None);
    assert_eq!(alert.fired_at_ms, Some(0));
}

#[test]
fn alert_templates_see_external_labels_and_queries_and_report_errors() {
    let env = Env::new();
    let mut storage = MemoryStorage::new();
    storage.append(&labels(&[("__name__", "load"), ("instance", "x")]), 0, 2.0);
    storage.append(&labels(&[("__name__", "capacity")]), 0, 8.0);
    let mut groups = groups(
        "groups:\n- name: g\n  rules:\n  - alert: High\n    expr: load > 1\n    labels:\n      region: '{{ $externalLabels.region }}'\n    annotations:\n      url: '{{ $externalURL }}'\n      capacity: '{{ with query \"capacity\" }}{{ . | first | value }}{{ end }}'\n      broken: '{{ query \"load[\" }}'\n",
        true,
    );
    let outcome = groups[0].eval(&env.ctx(), &mut storage, 0);
    assert!(outcome.rules[0].error.is_none());
    let alert = alerting(&groups[0], 0).active_alerts().next().unwrap();
    assert_eq!(alert.labels.get("region"), "eu");
    assert_eq!(alert.annotations.get("url"), Some("http://tocsin:9090/"));
    assert_eq!(alert.annotations.get("capacity"), Some("8"));
    let broken = alert.annotations.get("broken").unwrap_or_default();
    assert!(
        broken.starts_with("<error expanding template: "),
        "{broken}"
    );
}

#[test]
fn annotations_that_expand_to_nothing_are_kept_and_sent() {
    let env = Env::new();
    let mut storage = MemoryStorage::new();
    storage.append(&labels(&[("__name__", "load"), ("instance", "x")]), 0, 2.0);
    // `runbook` is empty as written; `owner` expands to "" (no such label); a label that
    // expands to "" is dropped, as Prometheus drops it.
    let mut groups = groups(
        "groups:\n- name: g\n  rules:\n  - alert: High\n    expr: load > 1\n    labels:\n      team: '{{ $labels.team }}'\n    annotations:\n      runbook: ''\n      owner: '{{ $labels.owner }}'\n      summary: 'high'\n",
        true,
    );
    let rule = alerting(&groups[0], 0);
    assert_eq!(rule.annotations().get("runbook"), Some(""));
    assert_eq!(rule.annotations().len(), 3);
    let outcome = groups[0].eval(&env.ctx(), &mut storage, 0);
    assert!(outcome.rules[0].error.is_none());
    let expected = Annotations::from_pairs([("owner", ""), ("runbook", ""), ("summary", "high")]);
    let alert = alerting(&groups[0], 0).active_alerts().next().unwrap();
    assert_eq!(alert.annotations, expected);
    assert!(!alert.labels.has("team"));
    assert_eq!(outcome.alerts.len(), 1);
    assert_eq!(outcome.alerts[0].annotations, expected);
    // To Alertmanager and to the node's own alerting core, the empty values go along.
    let payload: serde_json::Value =
        serde_json::from_slice(&super::notifier::encode_postable_alerts(&outcome.alerts)).unwrap();
    assert_eq!(
        payload[0]["annotations"],
        serde_json::json!({"owner": "", "runbook": "", "summary": "high"})
    );
    let posted = super::notifier::to_posted_alert(&outcome.alerts[0]);
    assert_eq!(posted.annotations.get("owner"), Some(""));
    assert_eq!(posted.annotations.len(), 3);
}

#[test]
fn alerting_rule_errors_duplicates_and_limits() {
    let env = Env::new();
    let mut storage = MemoryStorage::new();
    storage.append(&labels(&[("__name__", "a"), ("k", "x")]), 0, 1.0);
    storage.append(&labels(&[("__name__", "b"), ("k", "x")]), 0, 1.0);
    storage.append(&labels(&[("__name__", "a"), ("k", "y")]), 0, 1.0);
    let mut groups = groups(
        "groups:\n- name: dup\n  rules:\n  - alert: A\n    expr: '{k=\"x\"}'\n- name: limited\n  limit: 1\n  rules:\n  - alert: B\n    expr: a\n",
        true,
    );
    let outcome = groups[0].eval(&env.ctx(), &mut storage, 0);
    assert_eq!(
        outcome.rules[0].error.as_deref(),
        Some("vector contains metrics with the same labelset after applying alert labels")
    );
    let outcome = groups[1].eval(&env.ctx(), &mut storage, 0);
    assert_eq!(
        outcome.rules[0].error.as_deref(),
        Some("exceeded limit of 1 with 2 alerts")
    );
    assert_eq!(alerting(&groups[1], 0).current_alerts().count(), 0);
    assert!(outcome.alerts.is_empty());
}

/// Writes `ALERTS_FOR_STATE` for alert High{instance="x"} as a previous run would have.
fn previous_run(storage: &mut MemoryStorage, last_write_ms: i64, active_at_s: f64) {
    let for_state = labels(&[
        ("__name__", "ALERTS_FOR_STATE"),
        ("alertname", "High"),
        ("instance", "x"),
        ("severity", "page"),
    ]);
    storage.append(&for_state, last_write_ms, active_at_s);
}

fn restored_active_at(storage: &mut MemoryStorage, restart_ms: i64, for_yaml: &str) -> i64 {
    let env = Env::new();
    let load = labels(&[("__name__", "load"), ("instance", "x")]);
    storage.append(&load, restart_ms, 2.0);
    let text = ALERT.replace("for: 2m", for_yaml);
    let mut groups = groups(&text, false);
    let group = &mut groups[0];
    group.eval(&env.ctx(), storage, restart_ms);
    // Not restored yet: no ALERTS written at start-up.
    assert!(series(storage, "ALERTS").is_empty());
    group.eval(&env.ctx(), storage, restart_ms + 1000);
    assert!(group.wants_restore());
    let clock = SteppingClock::new((restart_ms + 1000) * 1_000_000, 2_500_000);
    group.restore_for_state(storage, &clock, 3_600_000, 600_000);
    assert!(!group.wants_restore());
    // Timed with the clock: one step of 2.5 ms between its start and end.
    assert_eq!(group.metrics().last_restore_seconds, 0.0025);
    assert!(alerting(group, 0).is_restored());
    alerting(group, 0)
        .active_alerts()
        .next()
        .unwrap()
        .active_at_ms
}

#[test]
fn restore_for_state_shifts_active_at_by_the_downtime() {
    // Pending for 10m of a 30m `for` when the server went down at t=20m; back at t=40m.
    let mut storage = MemoryStorage::new();
    previous_run(&mut storage, 20 * MIN, (10 * MIN / 1000) as f64);
    let now = 40 * MIN + 1000;
    let active_at = restored_active_at(&mut storage, 40 * MIN, "for: 30m");
    assert_eq!(active_at, 10 * MIN + (now - 20 * MIN));
}

#[test]
fn restore_for_state_keeps_a_grace_period() {
    // 2m left of a 20m `for` when it went down: it gets the 10m grace period instead.
    let mut storage = MemoryStorage::new();
    previous_run(&mut storage, 20 * MIN, (2 * MIN / 1000) as f64);
    let now = 40 * MIN + 1000;
    let active_at = restored_active_at(&mut storage, 40 * MIN, "for: 20m");
    assert_eq!(active_at, now + 10 * MIN - 20 * MIN);
}

#[test]
fn restore_for_state_keeps_firing_alerts_as_they_were() {
    let mut storage = MemoryStorage::new();
    previous_run(&mut storage, 50 * MIN, 0.0);
    let active_at = restored_active_at(&mut storage, 55 * MIN, "for: 20m");
    assert_eq!(active_at, 0);
}

#[test]
fn restore_for_state_ignores_state_older_than_the_outage_tolerance() {
    let mut storage = MemoryStorage::new();
    previous_run(&mut storage, 0, 0.0);
    let active_at = restored_active_at(&mut storage, 2 * 60 * MIN, "for: 20m");
    assert_eq!(active_at, 2 * 60 * MIN);
}

#[test]
fn restore_for_state_skips_rules_shorter_than_the_grace_period() {
    let mut storage = MemoryStorage::new();
    previous_run(&mut storage, 20 * MIN, 0.0);
    let active_at = restored_active_at(&mut storage, 25 * MIN, "for: 5m");
    assert_eq!(active_at, 25 * MIN);
}

#[test]
fn reload_keeps_unchanged_groups_and_copies_state_of_changed_ones() {
    let env = Env::new();
    let options = ManagerOptions::default();
    let mut storage = MemoryStorage::new();
    storage.append(&labels(&[("__name__", "load"), ("instance", "x")]), 0, 2.0);
    let mut manager = Manager::new();
    let two = "groups:\n- name: a\n  rules:\n  - alert: High\n    expr: load > 1\n    for: 5m\n- name: b\n  rules:\n  - record: r1\n    expr: load\n  - record: r2\n    expr: load * 2\n";
    manager.update(&file(two), &options, 0).unwrap();
    for group in manager.groups_mut() {
        group.eval(&env.ctx(), &mut storage, 0);
    }
    let next_a = manager.groups()[0].next_eval_ms();
    // Same definition of `a`; `b` loses r2 and gains a label on r1.
    let changed = "groups:\n- name: a\n  rules:\n  - alert: High\n    expr: load > 1\n    for: 5m\n- name: b\n  rules:\n  - record: r1\n    expr: load + 0\n";
    manager.update(&file(changed), &options, 1000).unwrap();
    let a = &manager.groups()[0];
    assert_eq!(a.next_eval_ms(), next_a);
    assert_eq!(
        alerting(a, 0).active_alerts().next().unwrap().active_at_ms,
        0
    );
    assert_eq!(a.rules()[0].status().health, Health::Ok);
    // r2's series is marked stale at b's next evaluation.
    let b = &mut manager.groups_mut()[1];
    b.eval(&env.ctx(), &mut storage, MIN);
    let r2 = series(&storage, "r2");
    assert!(r2.iter().any(|(_, t, v)| *t == MIN && is_stale_nan(*v)));
    // A changed alerting rule (same name and labels) keeps its alerts.
    let changed_alert = changed.replace("for: 5m", "for: 10m");
    manager
        .update(&file(&changed_alert), &options, 2000)
        .unwrap();
    assert_eq!(
        alerting(&manager.groups()[0], 0)
            .active_alerts()
            .next()
            .unwrap()
            .active_at_ms,
        0
    );
    // A removed group's series go stale two intervals later.
    manager
        .update(
            &file(
                "groups:\n- name: a\n  rules:\n  - alert: High\n    expr: load > 1\n    for: 10m\n",
            ),
            &options,
            3000,
        )
        .unwrap();
    assert_eq!(manager.groups().len(), 1);
    let ctx = env.ctx();
    manager.run_due(&ctx, &mut storage, 3000 + MIN, &options);
    assert!(
        !series(&storage, "r1")
            .iter()
            .any(|(_, _, v)| is_stale_nan(*v))
    );
    manager.run_due(&ctx, &mut storage, 3000 + 2 * MIN, &options);
    assert!(
        series(&storage, "r1")
            .iter()
            .any(|(_, t, v)| *t == 3000 && is_stale_nan(*v))
    );
}

#[test]
fn groups_run_on_their_slots_and_count_missed_iterations() {
    let env = Env::new();
    let options = ManagerOptions::default();
    let mut storage = MemoryStorage::new();
    let mut manager = Manager::new();
    manager
        .update(
            &file("groups:\n- name: g\n  interval: 10s\n  rules:\n  - record: r\n    expr: '1'\n"),
            &options,
            1_000_000,
        )
        .unwrap();
    let group = &manager.groups()[0];
    let slot = group.eval_timestamp(1_000_000);
    assert!(slot <= 1_000_000 && 1_000_000 - slot < 10_000);
    assert_eq!(group.eval_timestamp(slot + 9_999), slot);
    // Slots are nanosecond-precise; `slot` is the millisecond just before one.
    assert_eq!(group.eval_timestamp(slot + 10_001), slot + 10_000);
    let first = manager.next_due_ms().unwrap();
    assert_eq!(first, slot + 10_000);
    let ctx = env.ctx();
    manager.run_due(&ctx, &mut storage, first - 1, &options);
    assert_eq!(manager.groups()[0].metrics().iterations, 0);
    manager.run_due(&ctx, &mut storage, first, &options);
    assert_eq!(manager.groups()[0].last_eval_timestamp_ms(), Some(first));
    // Three and a half intervals late: two slots missed, the latest one evaluated.
    manager.run_due(&ctx, &mut storage, first + 35_000, &options);
    let group = &manager.groups()[0];
    assert_eq!(group.last_eval_timestamp_ms(), Some(first + 30_000));
    assert_eq!(group.metrics().iterations_missed, 2);
    assert_eq!(group.metrics().iterations, 4);
    assert_eq!(manager.next_due_ms(), Some(first + 40_000));
}

#[test]
fn xxhash_matches_the_reference() {
    assert_eq!(xxhash64(b""), 0xEF46_DB37_51D8_E999);
    assert_eq!(xxhash64(b"abc"), 0x44BC_2CF5_AD77_0999);
    assert_eq!(
        xxhash64(b"Nobody inspects the spammish repetition"),
        0xFBCE_A83C_8A37_8BF1
    );
}

#[test]
fn generator_urls_escape_as_go_does() {
    assert_eq!(
        query_escape("sum(x{a=\"b c\"}) > 1"),
        "sum%28x%7Ba%3D%22b+c%22%7D%29+%3E+1"
    );
    assert_eq!(
        generator_url("http://h:9090/prefix/", "up"),
        "http://h:9090/prefix/graph?g0.expr=up&g0.tab=1"
    );
}

#[test]
fn firing_alerts_are_resent_after_the_resend_delay_with_a_new_end() {
    let mut env = Env::new();
    env.resend_delay_ms = 2 * MIN;
    let mut storage = MemoryStorage::new();
    let load = labels(&[("__name__", "load"), ("instance", "x")]);
    let mut groups = groups(
        "groups:\n- name: g\n  interval: 1m\n  rules:\n  - alert: High\n    expr: load > 1\n",
        true,
    );
    let group = &mut groups[0];
    let mut sent = Vec::new();
    for minute in 0..=5 {
        storage.append(&load, minute * MIN, 2.0);
        let outcome = group.eval(&env.ctx(), &mut storage, minute * MIN);
        for alert in outcome.alerts {
            sent.push((minute, alert.starts_at_ms, alert.ends_at_ms));
        }
    }
    // Sent at 0, then only once more than the resend delay (2m) has passed: at 3m.
    // ends_at is ts + 4 × max(interval 1m, resend delay 2m).
    assert_eq!(sent, vec![(0, 0, 8 * MIN), (3, 0, 3 * MIN + 8 * MIN)]);
}
