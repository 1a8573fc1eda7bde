//! The notifier's sans-IO core: Prometheus 3's `notifier.Manager` without its goroutines.
//!
//! Alerts from the rules get the external labels (an alert's own labels win) and the global
//! `alert_relabel_configs`, then wait in a bounded queue ([`AlertQueue`]; when full the oldest
//! go first). The shell (`node/notifier.rs`) takes batches of at most [`MAX_BATCH_SIZE`] and
//! asks [`NotifierCore::plan`] what to POST where: per Alertmanager set, the set's own
//! `alert_relabel_configs` applied and the batch encoded as Alertmanager's API v2 wants it, to
//! every Alertmanager the set discovered ([`AlertmanagerSet::sync`]: targets relabeled with the
//! set's `relabel_configs`, `__scheme__`, `__address__` and `__alerts_path__` making the URL).
//!
//! Nothing here reads a clock, touches the network or spawns.
#![deny(clippy::disallowed_methods)]

use super::alert::OutgoingAlert;
use crate::config::Spanned;
use crate::config::prometheus::{AlertmanagerConfig, NameValidation, RelabelConfig};
use crate::ingest::relabel::{self, LabelBuilder};
use crate::ingest::targets::{ADDRESS_LABEL, SCHEME_LABEL, TargetGroup, static_config_groups};
use crate::promql::Labels;
use std::collections::{BTreeMap, HashSet, VecDeque};

/// `--alertmanager.notification-queue-capacity`'s default.
pub const DEFAULT_QUEUE_CAPACITY: usize = 10_000;
/// The most alerts one POST carries (Prometheus's `DefaultMaxBatchSize`).
pub const MAX_BATCH_SIZE: usize = 256;
/// The label holding the path alerts are POSTed to; relabeling may change it.
pub const ALERTS_PATH_LABEL: &str = "__alerts_path__";
/// The most Alertmanagers one set may discover; beyond that the rest are ignored (and logged
/// by the shell), so that a runaway discovery cannot make every batch fan out without bound.
pub const MAX_ALERTMANAGERS_PER_SET: usize = 1_000;

/// The alert relabeling every alert gets before it is queued: external labels, then the global
/// `alert_relabel_configs`.
#[derive(Debug, Clone, Default)]
pub struct AlertRelabeling {
    pub external_labels: Vec<(String, String)>,
    pub relabel_configs: Vec<Spanned<RelabelConfig>>,
    /// Which label names a `replace` may produce (the global name validation scheme).
    pub names: NameValidation,
}

impl AlertRelabeling {
    /// The relabeling a configuration asks for.
    pub fn from_config(config: &crate::config::Config) -> AlertRelabeling {
        AlertRelabeling {
            external_labels: config
                .global
                .external_labels
                .iter()
                .map(|(name, value)| (name.to_string(), value.to_string()))
                .collect(),
            relabel_configs: config.alerting.alert_relabel_configs.clone(),
            names: config.global.name_validation(),
        }
    }

    /// The alerts that survive, relabeled, in their order.
    pub fn apply(&self, alerts: Vec<OutgoingAlert>) -> Vec<OutgoingAlert> {
        alerts
            .into_iter()
            .filter_map(|alert| {
                relabel_alert(
                    alert,
                    &self.external_labels,
                    &self.relabel_configs,
                    self.names,
                )
            })
            .collect()
    }
}

/// Prometheus's `relabelAlerts` for one alert: `external` labels the alert does not set itself,
/// then `configs`. `None` when relabeling drops it, or when no label is left (Alertmanager
/// refuses such an alert, and with it the whole POST).
pub fn relabel_alert(
    mut alert: OutgoingAlert,
    external: &[(String, String)],
    configs: &[Spanned<RelabelConfig>],
    names: NameValidation,
) -> Option<OutgoingAlert> {
    if external.is_empty() && configs.is_empty() {
        return (!alert.labels.is_empty()).then_some(alert);
    }
    let mut builder = LabelBuilder::from_pairs(
        alert
            .labels
            .iter()
            .map(|(name, value)| (name.to_string(), value.to_string())),
    );
    for (name, value) in external {
        if alert.labels.get(name).is_empty() {
            builder.set(name.clone(), value.clone());
        }
    }
    if !relabel::process(&mut builder, configs, names) || builder.is_empty() {
        return None;
    }
    alert.labels = Labels::from_pairs(builder.into_pairs());
    Some(alert)
}

/// The queue between the rules and the Alertmanagers. Holds at most `capacity` alerts; when
/// more come, the oldest are dropped in favour of the newer ones (as Prometheus does).
#[derive(Debug)]
pub struct AlertQueue {
    alerts: VecDeque<OutgoingAlert>,
    capacity: usize,
}

impl AlertQueue {
    pub fn new(capacity: usize) -> AlertQueue {
        AlertQueue {
            alerts: VecDeque::with_capacity(capacity.min(MAX_BATCH_SIZE * 4)),
            capacity,
        }
    }

    /// Appends `alerts`; returns how many alerts were dropped to make room (from `alerts`
    /// itself when it alone is larger than the queue, then from the oldest queued).
    pub fn push(&mut self, mut alerts: Vec<OutgoingAlert>) -> usize {
        let mut dropped = 0;
        if alerts.len() > self.capacity {
            let excess = alerts.len() - self.capacity;
            alerts.drain(..excess);
            dropped += excess;
        }
        let total = self.alerts.len() + alerts.len();
        if total > self.capacity {
            let excess = total - self.capacity;
            self.alerts.drain(..excess);
            dropped += excess;
        }
        self.alerts.extend(alerts);
        dropped
    }

    /// The oldest `max` alerts (or all), removed from the queue.
    pub fn next_batch(&mut self, max: usize) -> Vec<OutgoingAlert> {
        let count = self.alerts.len().min(max);
        self.alerts.drain(..count).collect()
    }

    /// Empties the queue; returns how many alerts it held.
    pub fn clear(&mut self) -> usize {
        let count = self.alerts.len();
        self.alerts.clear();
        count
    }

    pub fn len(&self) -> usize {
        self.alerts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.alerts.is_empty()
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }
}

/// Go's `path.Join("/", prefix, "/api/v2/alerts")`: the path cleaned (no `//`, `.` or `..`).
pub fn alerts_path(path_prefix: &str) -> String {
    let joined = format!("/{path_prefix}/api/v2/alerts");
    let mut parts: Vec<&str> = Vec::new();
    for part in joined.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            other => parts.push(other),
        }
    }
    format!("/{}", parts.join("/"))
}

/// Go's `url.URL{Scheme, Host, Path}.String()` for an Alertmanager's labels, the URL alerts
/// are POSTed to and its name in metrics and `/api/v1/alertmanagers`.
pub fn alertmanager_url(labels: &LabelBuilder) -> String {
    let scheme = labels.get(SCHEME_LABEL);
    let host = labels.get(ADDRESS_LABEL);
    let path = labels.get(ALERTS_PATH_LABEL);
    let mut url = String::with_capacity(scheme.len() + host.len() + path.len() + 4);
    if !scheme.is_empty() {
        url.push_str(scheme);
        url.push(':');
    }
    if !scheme.is_empty() || !host.is_empty() {
        url.push_str("//");
        url.push_str(host);
    }
    if !path.is_empty() && !path.starts_with('/') && !host.is_empty() {
        url.push('/');
    }
    url.push_str(path);
    url
}

/// One Alertmanager of a set: its labels after relabeling (before, for a dropped one) and the
/// URL they make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiscoveredAlertmanager {
    pub labels: LabelBuilder,
    pub url: String,
}

impl DiscoveredAlertmanager {
    fn new(labels: LabelBuilder) -> DiscoveredAlertmanager {
        let url = alertmanager_url(&labels);
        DiscoveredAlertmanager { labels, url }
    }
}

/// What a target group yields: Alertmanagers to send to, and those relabeling dropped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupAlertmanagers {
    pub active: Vec<DiscoveredAlertmanager>,
    pub dropped: Vec<DiscoveredAlertmanager>,
}

/// Prometheus's `AlertmanagerFromGroup`. A target's own labels come first, then the set's
/// `scheme` and alerts path (overriding a discovered `__scheme__`, as Prometheus does), then
/// the group's labels the target does not set. An address with a `/` fails the whole group.
pub fn alertmanagers_from_group(
    group: &TargetGroup,
    config: &AlertmanagerConfig,
    names: NameValidation,
) -> Result<GroupAlertmanagers, String> {
    let path = alerts_path(&config.path_prefix);
    let mut out = GroupAlertmanagers::default();
    for target in &group.targets {
        let mut labels =
            LabelBuilder::from_pairs(target.iter().map(|(n, v)| (n.clone(), v.clone())));
        labels.set(SCHEME_LABEL, config.scheme.to_string());
        labels.set(ALERTS_PATH_LABEL, path.clone());
        for (name, value) in &group.labels {
            if !target.contains_key(name) {
                labels.set(name.clone(), value.clone());
            }
        }
        let before = labels.clone();
        if !relabel::process(&mut labels, &config.relabel_configs, names) {
            out.dropped.push(DiscoveredAlertmanager::new(before));
            continue;
        }
        let address = labels.get(ADDRESS_LABEL);
        if address.contains('/') {
            return Err(format!(
                "target group {:?}: {address:?} is not a valid hostname",
                group.source
            ));
        }
        out.active.push(DiscoveredAlertmanager::new(labels));
    }
    Ok(out)
}

/// The groups of a set's `static_configs`, as a scrape job's are built.
pub fn static_groups(config: &AlertmanagerConfig) -> Vec<TargetGroup> {
    static_config_groups(&config.static_configs)
}

/// One `alerting.alertmanagers` entry and the Alertmanagers it discovered.
#[derive(Debug, Clone)]
pub struct AlertmanagerSet {
    /// `config-<index>`, as Prometheus names its sets.
    pub name: String,
    pub config: AlertmanagerConfig,
    names: NameValidation,
    active: Vec<DiscoveredAlertmanager>,
    dropped: Vec<DiscoveredAlertmanager>,
}

/// What a [`AlertmanagerSet::sync`] changed, for logs and per-Alertmanager metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncReport {
    /// Groups that could not be used (their Alertmanagers are left out).
    pub errors: Vec<String>,
    /// Discovered Alertmanagers beyond [`MAX_ALERTMANAGERS_PER_SET`], ignored.
    pub ignored: usize,
}

impl AlertmanagerSet {
    pub fn new(index: usize, config: AlertmanagerConfig, names: NameValidation) -> Self {
        AlertmanagerSet {
            name: format!("config-{index}"),
            config,
            names,
            active: Vec::new(),
            dropped: Vec::new(),
        }
    }

    /// Replaces the set's Alertmanagers with those of `groups` (every group its discovery knows
    /// right now), each URL once.
    pub fn sync(&mut self, groups: &[TargetGroup]) -> SyncReport {
        let mut report = SyncReport::default();
        let mut active = Vec::new();
        let mut dropped = Vec::new();
        let mut seen = HashSet::new();
        for group in groups {
            match alertmanagers_from_group(group, &self.config, self.names) {
                Ok(found) => {
                    for alertmanager in found.active {
                        if !seen.insert(alertmanager.url.clone()) {
                            continue;
                        }
                        if active.len() >= MAX_ALERTMANAGERS_PER_SET {
                            report.ignored += 1;
                            continue;
                        }
                        active.push(alertmanager);
                    }
                    let room = MAX_ALERTMANAGERS_PER_SET.saturating_sub(dropped.len());
                    report.ignored += found.dropped.len().saturating_sub(room);
                    dropped.extend(found.dropped.into_iter().take(room));
                }
                Err(error) => report.errors.push(error),
            }
        }
        self.active = active;
        self.dropped = dropped;
        report
    }

    pub fn active(&self) -> &[DiscoveredAlertmanager] {
        &self.active
    }

    pub fn dropped(&self) -> &[DiscoveredAlertmanager] {
        &self.dropped
    }

    /// The batch as this set sends it: its own `alert_relabel_configs` applied (no external
    /// labels: those were added when the alerts were queued).
    pub fn alerts_for(&self, batch: &[OutgoingAlert]) -> Vec<OutgoingAlert> {
        if self.config.alert_relabel_configs.is_empty() {
            return batch.to_vec();
        }
        batch
            .iter()
            .filter_map(|alert| {
                relabel_alert(
                    alert.clone(),
                    &[],
                    &self.config.alert_relabel_configs,
                    self.names,
                )
            })
            .collect()
    }

    /// Whether `other` is the configuration this set runs with (then a reload keeps the
    /// Alertmanagers it found, as Prometheus's `configHash` comparison does).
    fn same_config(&self, other: &AlertmanagerConfig) -> bool {
        match (
            serde_json::to_string(&self.config),
            serde_json::to_string(other),
        ) {
            (Ok(mine), Ok(theirs)) => mine == theirs,
            _ => false,
        }
    }
}

/// One POST body and where it goes: every Alertmanager of one set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetDelivery {
    /// The set's index in [`NotifierCore::sets`].
    pub set: usize,
    /// How many alerts the payload holds (what `sent_total`/`errors_total` count).
    pub alert_count: usize,
    /// The JSON array of Alertmanager's `postableAlerts`.
    pub payload: Vec<u8>,
    pub urls: Vec<String>,
}

/// The notifier's state: the relabeling, the queue and the Alertmanager sets.
#[derive(Debug)]
pub struct NotifierCore {
    relabeling: AlertRelabeling,
    queue: AlertQueue,
    sets: Vec<AlertmanagerSet>,
    /// Alerts dropped: queue overflow, and batches no set that tried accepted.
    dropped_total: u64,
}

impl NotifierCore {
    pub fn new(queue_capacity: usize) -> NotifierCore {
        NotifierCore {
            relabeling: AlertRelabeling::default(),
            queue: AlertQueue::new(queue_capacity),
            sets: Vec::new(),
            dropped_total: 0,
        }
    }

    /// Applies a configuration: new relabeling and sets, the queue kept. A set whose
    /// configuration did not change keeps the Alertmanagers it had discovered, so that alerts
    /// do not wait for discovery after a reload. The static groups are synced at once.
    pub fn apply_config(
        &mut self,
        relabeling: AlertRelabeling,
        configs: Vec<AlertmanagerConfig>,
    ) -> Vec<SyncReport> {
        let names = relabeling.names;
        let old = std::mem::take(&mut self.sets);
        let mut reports = Vec::new();
        for (index, config) in configs.into_iter().enumerate() {
            let mut set = AlertmanagerSet::new(index, config, names);
            if let Some(previous) = old
                .iter()
                .find(|previous| previous.same_config(&set.config))
            {
                set.active = previous.active.clone();
                set.dropped = previous.dropped.clone();
            } else {
                reports.push(set.sync(&static_groups(&set.config)));
            }
            self.sets.push(set);
        }
        self.relabeling = relabeling;
        reports
    }

    pub fn sets(&self) -> &[AlertmanagerSet] {
        &self.sets
    }

    /// Syncs set `index` with every group its discovery knows; `None` if there is no such set.
    pub fn sync_set(&mut self, index: usize, groups: &[TargetGroup]) -> Option<SyncReport> {
        self.sets.get_mut(index).map(|set| set.sync(groups))
    }

    /// Relabels and queues alerts (Prometheus's `Manager.Send`); returns how many of them were
    /// queued (older queued alerts may have been dropped to make room).
    pub fn enqueue(&mut self, alerts: Vec<OutgoingAlert>) -> usize {
        let alerts = self.relabeling.apply(alerts);
        let count = alerts.len();
        if count == 0 {
            return 0;
        }
        let dropped = self.queue.push(alerts);
        self.dropped_total += dropped as u64;
        // What overflowed beyond the batch itself were older alerts: the batch is queued whole
        // unless it alone is larger than the queue.
        count.min(self.queue.capacity())
    }

    /// The next batch to send, oldest first, `None` when the queue is empty.
    pub fn next_batch(&mut self) -> Option<Vec<OutgoingAlert>> {
        let batch = self.queue.next_batch(MAX_BATCH_SIZE);
        (!batch.is_empty()).then_some(batch)
    }

    /// What to POST for `batch`: one delivery per set that has Alertmanagers and keeps at
    /// least one alert after its own relabeling.
    pub fn plan(&self, batch: &[OutgoingAlert]) -> Vec<SetDelivery> {
        let mut out = Vec::new();
        let mut shared_payload: Option<Vec<u8>> = None;
        for (index, set) in self.sets.iter().enumerate() {
            if set.active.is_empty() {
                continue;
            }
            let payload = if set.config.alert_relabel_configs.is_empty() {
                // Sets without their own relabeling all send the same body: encode it once.
                shared_payload
                    .get_or_insert_with(|| encode_postable_alerts(batch))
                    .clone()
            } else {
                let alerts = set.alerts_for(batch);
                if alerts.is_empty() {
                    continue;
                }
                let payload = encode_postable_alerts(&alerts);
                out.push(SetDelivery {
                    set: index,
                    alert_count: alerts.len(),
                    payload,
                    urls: set.active.iter().map(|am| am.url.clone()).collect(),
                });
                continue;
            };
            out.push(SetDelivery {
                set: index,
                alert_count: batch.len(),
                payload,
                urls: set.active.iter().map(|am| am.url.clone()).collect(),
            });
        }
        out
    }

    /// Counts alerts as dropped: a batch that some set could not deliver anywhere, or a queue
    /// given up on at shutdown.
    pub fn count_dropped(&mut self, count: usize) {
        self.dropped_total += count as u64;
    }

    /// Empties the queue (shutdown without draining), counting its alerts as dropped.
    pub fn drop_queued(&mut self) -> usize {
        let count = self.queue.clear();
        self.dropped_total += count as u64;
        count
    }

    pub fn dropped_total(&self) -> u64 {
        self.dropped_total
    }

    pub fn queue_len(&self) -> usize {
        self.queue.len()
    }

    pub fn queue_capacity(&self) -> usize {
        self.queue.capacity()
    }

    /// Every active Alertmanager URL, sets in configuration order.
    pub fn active_urls(&self) -> Vec<String> {
        self.sets
            .iter()
            .flat_map(|set| set.active.iter().map(|am| am.url.clone()))
            .collect()
    }

    /// Every Alertmanager relabeling dropped, by its URL before relabeling.
    pub fn dropped_urls(&self) -> Vec<String> {
        self.sets
            .iter()
            .flat_map(|set| set.dropped.iter().map(|am| am.url.clone()))
            .collect()
    }
}

/// Unix milliseconds as Alertmanager's `strfmt.DateTime` writes them: RFC 3339 in UTC with
/// milliseconds. Out-of-range times are clamped to what a timestamp can hold.
pub fn rfc3339_millis(ms: i64) -> String {
    let timestamp = jiff::Timestamp::from_millisecond(ms).unwrap_or(if ms < 0 {
        jiff::Timestamp::MIN
    } else {
        jiff::Timestamp::MAX
    });
    timestamp.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct PostableAlert<'a> {
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    annotations: BTreeMap<&'a str, &'a str>,
    ends_at: String,
    starts_at: String,
    #[serde(rename = "generatorURL", skip_serializing_if = "str::is_empty")]
    generator_url: &'a str,
    labels: BTreeMap<&'a str, &'a str>,
}

fn label_map(labels: &Labels) -> BTreeMap<&str, &str> {
    labels.iter().collect()
}

/// The alerts as the JSON body of Alertmanager's `POST /api/v2/alerts`.
pub fn encode_postable_alerts(alerts: &[OutgoingAlert]) -> Vec<u8> {
    let postable: Vec<PostableAlert<'_>> = alerts
        .iter()
        .map(|alert| PostableAlert {
            annotations: alert.annotations.iter().collect(),
            ends_at: rfc3339_millis(alert.ends_at_ms),
            starts_at: rfc3339_millis(alert.starts_at_ms),
            generator_url: &alert.generator_url,
            labels: label_map(&alert.labels),
        })
        .collect();
    // Maps of strings and strings cannot fail to serialize; an empty array is still valid.
    serde_json::to_vec(&postable).unwrap_or_else(|_| b"[]".to_vec())
}

/// An alert as the node's own alerting core takes it.
pub fn to_posted_alert(alert: &OutgoingAlert) -> crate::alerting::alert::PostedAlert {
    use crate::alerting::labels::LabelSet;
    let to_set = |labels: &Labels| {
        let mut set = LabelSet::new();
        for (name, value) in labels.iter() {
            set.insert(name.to_string(), value.to_string());
        }
        set
    };
    let time = |ms: i64| jiff::Timestamp::from_millisecond(ms).ok();
    crate::alerting::alert::PostedAlert {
        labels: to_set(&alert.labels),
        annotations: {
            let mut set = LabelSet::new();
            for (name, value) in alert.annotations.iter() {
                set.insert(name, value);
            }
            set
        },
        starts_at: time(alert.starts_at_ms),
        ends_at: time(alert.ends_at_ms),
        generator_url: alert.generator_url.clone(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn alert(pairs: &[(&str, &str)]) -> OutgoingAlert {
        OutgoingAlert {
            labels: Labels::from_pairs(pairs.iter().copied()),
            annotations: crate::rules::alerting::Annotations::from_pairs([("summary", "it broke")]),
            starts_at_ms: 1_700_000_000_123,
            ends_at_ms: 1_700_000_060_000,
            generator_url: "http://tocsin:9090/graph?g0.expr=up".into(),
        }
    }

    fn named(index: usize) -> OutgoingAlert {
        alert(&[("alertname", &format!("A{index}"))])
    }

    fn names_of(alerts: &[OutgoingAlert]) -> Vec<String> {
        alerts
            .iter()
            .map(|a| a.labels.get("alertname").to_string())
            .collect()
    }

    fn config(yaml: &str) -> crate::config::Config {
        crate::config::load_text(yaml, "p.yml", std::path::Path::new("."))
            .unwrap()
            .config
    }

    fn core(yaml: &str) -> NotifierCore {
        let config = config(yaml);
        let mut core = NotifierCore::new(DEFAULT_QUEUE_CAPACITY);
        let reports = core.apply_config(
            AlertRelabeling::from_config(&config),
            config
                .alerting
                .alertmanagers
                .iter()
                .map(|c| c.value.clone())
                .collect(),
        );
        assert!(reports.iter().all(|r| r.errors.is_empty()), "{reports:?}");
        core
    }

    fn pairs(alert: &OutgoingAlert) -> Vec<(String, String)> {
        alert
            .labels
            .iter()
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect()
    }

    fn owned(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn external_labels_are_added_but_the_alerts_own_win() {
        let mut core = core(
            "global:\n  external_labels:\n    region: eu\n    severity: page\n\
             alerting:\n  alertmanagers:\n    - static_configs:\n        - targets: ['am:9093']\n",
        );
        assert_eq!(
            core.enqueue(vec![alert(&[("alertname", "Up"), ("severity", "low")])]),
            1
        );
        let batch = core.next_batch().unwrap();
        assert_eq!(
            pairs(&batch[0]),
            owned(&[("alertname", "Up"), ("region", "eu"), ("severity", "low")])
        );
        assert!(core.next_batch().is_none());
    }

    #[test]
    fn global_relabeling_drops_and_rewrites_and_sees_external_labels() {
        let mut core = core(
            "global:\n  external_labels:\n    region: eu\n\
             alerting:\n  alert_relabel_configs:\n\
             \x20   - source_labels: [team]\n      regex: ignored\n      action: drop\n\
             \x20   - source_labels: [region]\n      target_label: dc\n\
             \x20   - regex: region\n      action: labeldrop\n",
        );
        let queued = core.enqueue(vec![
            alert(&[("alertname", "Keep"), ("team", "db")]),
            alert(&[("alertname", "Drop"), ("team", "ignored")]),
        ]);
        assert_eq!(queued, 1);
        let batch = core.next_batch().unwrap();
        assert_eq!(
            pairs(&batch[0]),
            owned(&[("alertname", "Keep"), ("dc", "eu"), ("team", "db")])
        );
    }

    #[test]
    fn alerts_left_without_labels_are_dropped() {
        let mut core =
            core("alerting:\n  alert_relabel_configs:\n    - regex: .*\n      action: labeldrop\n");
        assert_eq!(core.enqueue(vec![named(1)]), 0);
        assert_eq!(core.queue_len(), 0);
        // Not an overflow: relabeling dropping an alert is not counted as dropped.
        assert_eq!(core.dropped_total(), 0);
    }

    #[test]
    fn batches_hold_at_most_256_alerts_oldest_first() {
        let mut core = NotifierCore::new(DEFAULT_QUEUE_CAPACITY);
        assert_eq!(core.enqueue((0..600).map(named).collect()), 600);
        let sizes: Vec<usize> = std::iter::from_fn(|| core.next_batch().map(|b| b.len())).collect();
        assert_eq!(sizes, vec![256, 256, 88]);
        core.enqueue((0..3).map(named).collect());
        assert_eq!(names_of(&core.next_batch().unwrap()), ["A0", "A1", "A2"]);
    }

    #[test]
    fn overflow_drops_the_oldest_and_counts_them() {
        let mut core = NotifierCore::new(5);
        assert_eq!(core.enqueue((0..3).map(named).collect()), 3);
        assert_eq!(core.enqueue((3..7).map(named).collect()), 4);
        assert_eq!(core.dropped_total(), 2);
        assert_eq!(core.queue_len(), 5);
        // A single send larger than the whole queue keeps its newest alerts.
        assert_eq!(core.enqueue((10..18).map(named).collect()), 5);
        assert_eq!(core.dropped_total(), 2 + 3 + 5);
        assert_eq!(
            names_of(&core.next_batch().unwrap()),
            ["A13", "A14", "A15", "A16", "A17"]
        );
        assert_eq!(core.queue_capacity(), 5);
    }

    #[test]
    fn alerts_path_joins_and_cleans_like_go() {
        assert_eq!(alerts_path(""), "/api/v2/alerts");
        assert_eq!(alerts_path("alertmanager"), "/alertmanager/api/v2/alerts");
        assert_eq!(alerts_path("/am/"), "/am/api/v2/alerts");
        assert_eq!(alerts_path("//a//b/../c"), "/a/c/api/v2/alerts");
    }

    #[test]
    fn urls_from_scheme_address_path_prefix_and_relabeling() {
        let core = core(
            "alerting:\n  alertmanagers:\n\
             \x20   - scheme: https\n      path_prefix: /prefix/\n\
             \x20     static_configs:\n        - targets: ['am1:9093', 'am2:9093', 'am1:9093']\n\
             \x20   - static_configs:\n        - targets: ['plain:9093', 'dropped:9093', 'moved:1']\n\
             \x20         labels:\n            __scheme__: https\n\
             \x20     relabel_configs:\n\
             \x20       - source_labels: [__address__]\n          regex: dropped:.*\n          action: drop\n\
             \x20       - source_labels: [__address__]\n          regex: moved:1\n\
             \x20         target_label: __alerts_path__\n          replacement: /elsewhere\n\
             \x20       - source_labels: [__address__]\n          regex: moved:1\n\
             \x20         target_label: __scheme__\n          replacement: http\n",
        );
        assert_eq!(
            core.active_urls(),
            [
                "https://am1:9093/prefix/api/v2/alerts",
                "https://am2:9093/prefix/api/v2/alerts",
                // The group's __scheme__ overrides the set's scheme, as in Prometheus.
                "https://plain:9093/api/v2/alerts",
                "http://moved:1/elsewhere",
            ]
        );
        assert_eq!(core.dropped_urls(), ["https://dropped:9093/api/v2/alerts"]);
    }

    #[test]
    fn a_discovered_scheme_is_overridden_by_the_sets() {
        let config = config("alerting:\n  alertmanagers:\n    - scheme: http\n").alerting;
        let group = TargetGroup {
            source: "file.yml:0".into(),
            targets: vec![BTreeMap::from([
                ("__address__".to_string(), "am:1".to_string()),
                ("__scheme__".to_string(), "https".to_string()),
            ])],
            labels: BTreeMap::new(),
        };
        let found =
            alertmanagers_from_group(&group, &config.alertmanagers[0].value, NameValidation::Utf8)
                .unwrap();
        assert_eq!(found.active[0].url, "http://am:1/api/v2/alerts");
    }

    #[test]
    fn an_address_with_a_slash_fails_its_group_only() {
        let config = config("alerting:\n  alertmanagers:\n    - static_configs: []\n").alerting;
        let mut set = AlertmanagerSet::new(
            0,
            config.alertmanagers[0].value.clone(),
            NameValidation::Utf8,
        );
        let group = |source: &str, address: &str| TargetGroup {
            source: source.into(),
            targets: vec![BTreeMap::from([(
                "__address__".to_string(),
                address.to_string(),
            )])],
            labels: BTreeMap::new(),
        };
        let report = set.sync(&[group("a", "http://x/y"), group("b", "good:9093")]);
        assert_eq!(report.errors.len(), 1, "{report:?}");
        assert!(report.errors[0].contains("\"http://x/y\" is not a valid hostname"));
        assert_eq!(set.active().len(), 1);
        assert_eq!(set.active()[0].url, "http://good:9093/api/v2/alerts");
    }

    #[test]
    fn per_set_relabeling_applies_to_that_set_only() {
        let core = core(
            "alerting:\n  alertmanagers:\n\
             \x20   - static_configs:\n        - targets: ['all:9093']\n\
             \x20   - static_configs:\n        - targets: ['db:9093']\n\
             \x20     alert_relabel_configs:\n\
             \x20       - source_labels: [team]\n          regex: db\n          action: keep\n\
             \x20       - target_label: routed\n          replacement: 'yes'\n\
             \x20   - static_configs:\n        - targets: ['none:9093']\n\
             \x20     alert_relabel_configs:\n\
             \x20       - regex: .*\n          source_labels: [alertname]\n          action: drop\n",
        );
        let batch = vec![
            alert(&[("alertname", "A"), ("team", "db")]),
            alert(&[("alertname", "B"), ("team", "web")]),
        ];
        let plan = core.plan(&batch);
        assert_eq!(plan.len(), 2, "the third set keeps no alert and is skipped");
        assert_eq!(plan[0].alert_count, 2);
        assert_eq!(plan[0].urls, ["http://all:9093/api/v2/alerts"]);
        assert_eq!(plan[1].alert_count, 1);
        assert_eq!(plan[1].urls, ["http://db:9093/api/v2/alerts"]);
        let sent: serde_json::Value = serde_json::from_slice(&plan[1].payload).unwrap();
        assert_eq!(
            sent[0]["labels"],
            serde_json::json!({"alertname": "A", "routed": "yes", "team": "db"})
        );
        let all: serde_json::Value = serde_json::from_slice(&plan[0].payload).unwrap();
        assert_eq!(all.as_array().unwrap().len(), 2);
        assert_eq!(
            all[1]["labels"],
            serde_json::json!({"alertname": "B", "team": "web"})
        );
    }

    #[test]
    fn sets_without_alertmanagers_are_not_planned() {
        let core = core("alerting:\n  alertmanagers:\n    - static_configs: []\n");
        assert!(core.plan(&[named(1)]).is_empty());
    }

    #[test]
    fn payload_is_alertmanagers_postable_alerts() {
        let mut alert = alert(&[("alertname", "Up"), ("job", "node")]);
        alert.annotations = crate::rules::alerting::Annotations::new();
        let mut second = alert.clone();
        second.generator_url.clear();
        second.annotations = crate::rules::alerting::Annotations::from_pairs([("summary", "s")]);
        let payload: serde_json::Value =
            serde_json::from_slice(&encode_postable_alerts(&[alert, second])).unwrap();
        assert_eq!(
            payload,
            serde_json::json!([
                {
                    "labels": {"alertname": "Up", "job": "node"},
                    "startsAt": "2023-11-14T22:13:20.123Z",
                    "endsAt": "2023-11-14T22:14:20.000Z",
                    "generatorURL": "http://tocsin:9090/graph?g0.expr=up"
                },
                {
                    "labels": {"alertname": "Up", "job": "node"},
                    "annotations": {"summary": "s"},
                    "startsAt": "2023-11-14T22:13:20.123Z",
                    "endsAt": "2023-11-14T22:14:20.000Z"
                }
            ])
        );
        assert_eq!(
            rfc3339_millis(i64::MAX).len(),
            "9999-12-31T23:59:59.999Z".len()
        );
    }

    #[test]
    fn reload_keeps_the_queue_and_unchanged_sets_alertmanagers() {
        let yaml =
            "alerting:\n  alertmanagers:\n    - static_configs:\n        - targets: ['a:1']\n";
        let mut core = core(yaml);
        // Discovery found another Alertmanager since (as file_sd would report).
        let groups = vec![TargetGroup {
            source: "f".into(),
            targets: vec![BTreeMap::from([(
                "__address__".to_string(),
                "b:1".to_string(),
            )])],
            labels: BTreeMap::new(),
        }];
        core.sync_set(0, &groups).unwrap();
        core.enqueue(vec![named(1), named(2)]);
        let same = config(yaml);
        core.apply_config(
            AlertRelabeling::from_config(&same),
            vec![same.alerting.alertmanagers[0].value.clone()],
        );
        assert_eq!(core.active_urls(), ["http://b:1/api/v2/alerts"]);
        assert_eq!(core.queue_len(), 2);
        let changed = config(
            "alerting:\n  alertmanagers:\n    - static_configs:\n        - targets: ['c:1']\n",
        );
        core.apply_config(
            AlertRelabeling::from_config(&changed),
            vec![changed.alerting.alertmanagers[0].value.clone()],
        );
        assert_eq!(core.active_urls(), ["http://c:1/api/v2/alerts"]);
        assert_eq!(core.queue_len(), 2);
    }

    #[test]
    fn a_set_discovers_at_most_its_bound() {
        let config = config("alerting:\n  alertmanagers:\n    - static_configs: []\n").alerting;
        let mut set = AlertmanagerSet::new(
            0,
            config.alertmanagers[0].value.clone(),
            NameValidation::Utf8,
        );
        let group = TargetGroup {
            source: "big".into(),
            targets: (0..MAX_ALERTMANAGERS_PER_SET + 5)
                .map(|i| BTreeMap::from([("__address__".to_string(), format!("am{i}:1"))]))
                .collect(),
            labels: BTreeMap::new(),
        };
        let report = set.sync(&[group]);
        assert_eq!(set.active().len(), MAX_ALERTMANAGERS_PER_SET);
        assert_eq!(report.ignored, 5);
    }

    #[test]
    fn posted_alerts_for_the_alerting_core_keep_times_and_labels() {
        let posted = to_posted_alert(&alert(&[("alertname", "Up")]));
        assert_eq!(posted.labels.get("alertname"), Some("Up"));
        assert_eq!(posted.annotations.get("summary"), Some("it broke"));
        assert_eq!(
            posted.starts_at.map(|t| t.as_millisecond()),
            Some(1_700_000_000_123)
        );
        assert_eq!(
            posted.ends_at.map(|t| t.as_millisecond()),
            Some(1_700_000_060_000)
        );
    }
}
