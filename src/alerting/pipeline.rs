//! The alerting core composed: alerts in, notifications and records to persist out.
//!
//! Alertmanager's stages, in its order, as one sans-IO state machine: store → route → group;
//! at each group flush: inhibition → active/mute time intervals → silences → per receiver
//! integration: dedup against the notification log. Delivery is the shell's job; it reports
//! back with [`Pipeline::delivered`], which logs the notification and, once every integration
//! of a flush succeeded, lets the group drop the resolved alerts it sent.

use super::alert::{InvalidAlert, PostedAlert};
use super::groups::{Flush, GroupError, GroupId, GroupLimits, GroupSettings, Groups};
use super::inhibition::Inhibitor;
use super::nflog::{Decision, Entry, Nflog, NflogError, NotifyReason, ReceiverKey, needs_update};
use super::routing::{RouteId, RoutingTree};
use super::silences::Silences;
use super::store::{AlertStore, StoreError, StoreLimits};
use super::time_intervals::TimeIntervals;
use super::{Alert, Fingerprint, LabelSet};
use crate::config::alertmanager::AlertmanagerConfig;
use jiff::{SignedDuration, Timestamp};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// One integration of a receiver, as the pipeline needs to know it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Integration {
    pub key: ReceiverKey,
    pub send_resolved: bool,
}

/// A notification the shell must deliver, then report with [`Pipeline::delivered`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    pub group: GroupId,
    pub group_labels: LabelSet,
    pub integration: ReceiverKey,
    pub reason: NotifyReason,
    /// Alerts to show as firing, in Alertmanager's order.
    pub firing: Vec<Alert>,
    /// Alerts to show as resolved; empty for integrations without `send_resolved`.
    pub resolved: Vec<Alert>,
    /// Delivery (retries included) gives up at this time: the group's next flush.
    pub deadline: Timestamp,
    /// What the notification log records once delivered: every unmuted alert of the flush.
    firing_fingerprints: BTreeSet<u64>,
    resolved_fingerprints: BTreeSet<u64>,
}

/// What the shell must do after [`Pipeline::poll`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    Notify(Notification),
    /// A notification-log entry to write durably (the dedup stage logged without sending).
    PersistNflog(Entry),
}

/// How one alert looks to the API: Alertmanager's `alertStatus` plus the receivers it routes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertStatus {
    pub silenced_by: Vec<String>,
    pub inhibited_by: Vec<Fingerprint>,
    pub receivers: Vec<String>,
}

impl AlertStatus {
    pub fn is_suppressed(&self) -> bool {
        !self.silenced_by.is_empty() || !self.inhibited_by.is_empty()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReceiveError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Groups(#[from] GroupError),
}

/// A snapshot of what ingesting a posted alert needs from the pipeline, taken briefly under its
/// lock so that [`IngestContext::prepare`] can run outside it.
#[derive(Debug, Clone)]
pub struct IngestContext {
    resolve_timeout: SignedDuration,
    routes: Arc<RoutingTree>,
}

/// One route a prepared alert goes to, with its group's labels and key.
#[derive(Debug)]
struct PreparedRoute {
    route: RouteId,
    group_labels: LabelSet,
    group_key: String,
}

/// A posted alert given its defaults, validated, fingerprinted and routed; see
/// [`Pipeline::receive_prepared`].
#[derive(Debug)]
pub struct PreparedAlert {
    alert: Alert,
    fingerprint: Fingerprint,
    matched: Vec<PreparedRoute>,
}

impl IngestContext {
    /// [`Alert::from_posted`], then the alert's fingerprint and routing.
    pub fn prepare(
        &self,
        posted: PostedAlert,
        now: Timestamp,
    ) -> Result<PreparedAlert, InvalidAlert> {
        let alert = Alert::from_posted(posted, now, self.resolve_timeout)?;
        let fingerprint = alert.fingerprint();
        let matched = self
            .routes
            .match_alert(&alert.labels)
            .into_iter()
            .map(|route| {
                let group_labels = self.routes.group_labels(route, &alert.labels);
                let group_key = self.routes.group_key(route, &group_labels);
                PreparedRoute {
                    route,
                    group_labels,
                    group_key,
                }
            })
            .collect();
        Ok(PreparedAlert {
            alert,
            fingerprint,
            matched,
        })
    }
}

/// A flush whose notifications are out for delivery.
#[derive(Debug)]
struct PendingFlush {
    outstanding: BTreeSet<ReceiverKey>,
    resolved: Vec<Arc<Alert>>,
}

#[derive(Debug)]
pub struct Pipeline {
    resolve_timeout: SignedDuration,
    /// Shared so that [`IngestContext`] can route alerts outside the pipeline's lock.
    routes: Arc<RoutingTree>,
    intervals: TimeIntervals,
    inhibitor: Inhibitor,
    integrations: BTreeMap<String, Vec<Integration>>,
    store: AlertStore,
    groups: Groups,
    pending: BTreeMap<GroupId, PendingFlush>,
    pub silences: Silences,
    pub nflog: Nflog,
}

fn integrations_of(config: &AlertmanagerConfig) -> BTreeMap<String, Vec<Integration>> {
    let mut integrations = BTreeMap::new();
    for receiver in &config.receivers {
        let receiver = &receiver.value;
        let name = receiver.name.value.clone();
        let key = |integration: &str, index: usize| ReceiverKey {
            name: name.clone(),
            integration: integration.to_string(),
            index: u32::try_from(index).unwrap_or(u32::MAX),
        };
        let mut list = Vec::new();
        for (index, webhook) in receiver.webhook_configs.iter().enumerate() {
            list.push(Integration {
                key: key("webhook", index),
                send_resolved: webhook.value.send_resolved,
            });
        }
        for (index, email) in receiver.email_configs.iter().enumerate() {
            list.push(Integration {
                key: key("email", index),
                send_resolved: email.value.send_resolved,
            });
        }
        integrations.insert(name, list);
    }
    integrations
}

fn signed(duration: std::time::Duration) -> SignedDuration {
    SignedDuration::try_from(duration).unwrap_or(SignedDuration::MAX)
}

impl Pipeline {
    pub fn new(
        config: &AlertmanagerConfig,
        store_limits: StoreLimits,
        group_limits: GroupLimits,
        silences: Silences,
        nflog: Nflog,
    ) -> Pipeline {
        Pipeline {
            resolve_timeout: signed(config.global.resolve_timeout.as_std()),
            routes: Arc::new(RoutingTree::new(&config.route.value)),
            intervals: TimeIntervals::from_config(config),
            inhibitor: Inhibitor::from_config(config),
            integrations: integrations_of(config),
            store: AlertStore::new(store_limits),
            groups: Groups::new(group_limits),
            pending: BTreeMap::new(),
            silences,
            nflog,
        }
    }

    /// Takes a new configuration. Groups are rebuilt from the stored alerts, as Alertmanager
    /// rebuilds its dispatcher; the notification log keeps deduplicating across the change.
    pub fn apply_config(&mut self, config: &AlertmanagerConfig, now: Timestamp) {
        self.resolve_timeout = signed(config.global.resolve_timeout.as_std());
        self.routes = Arc::new(RoutingTree::new(&config.route.value));
        self.intervals = TimeIntervals::from_config(config);
        self.inhibitor = Inhibitor::from_config(config);
        self.inhibitor.rebuild(self.store.iter());
        self.integrations = integrations_of(config);
        self.groups = Groups::new(GroupLimits::default());
        self.pending.clear();
        let alerts: Vec<Arc<Alert>> = self
            .store
            .shared()
            .filter(|alert| !alert.is_resolved_at(now))
            .cloned()
            .collect();
        for alert in alerts {
            // Limits cannot be hit by alerts the store already holds under the same limits.
            let fingerprint = alert.fingerprint();
            let _ = self.route_into_groups(alert, fingerprint, now);
        }
    }

    pub fn resolve_timeout(&self) -> SignedDuration {
        self.resolve_timeout
    }

    pub fn store(&self) -> &AlertStore {
        &self.store
    }

    pub fn groups(&self) -> &Groups {
        &self.groups
    }

    pub fn routes(&self) -> &RoutingTree {
        &self.routes
    }

    pub fn receiver_names(&self) -> impl Iterator<Item = &str> {
        self.integrations.keys().map(String::as_str)
    }

    /// What [`IngestContext::prepare`] needs, to do the work of [`Pipeline::receive`] that does
    /// not touch shared state before taking the pipeline's lock.
    pub fn ingest_context(&self) -> IngestContext {
        IngestContext {
            resolve_timeout: self.resolve_timeout,
            routes: Arc::clone(&self.routes),
        }
    }

    /// Takes one alert (already given Alertmanager's defaults, see [`Alert::from_posted`]).
    pub fn receive(&mut self, alert: Alert, now: Timestamp) -> Result<(), ReceiveError> {
        let outcome = self.store.put(alert, now)?;
        if let Some(changed) = outcome.into_changed() {
            self.inhibitor.upsert(&changed);
            let fingerprint = changed.fingerprint();
            self.route_into_groups(changed, fingerprint, now)?;
        }
        Ok(())
    }

    /// [`Pipeline::receive`] for an alert `context` prepared: the same outcome,
    /// without repeating its validation, fingerprint and (while the routing tree it used is
    /// still the pipeline's) routing.
    pub fn receive_prepared(
        &mut self,
        context: &IngestContext,
        prepared: PreparedAlert,
        now: Timestamp,
    ) -> Result<(), ReceiveError> {
        let PreparedAlert {
            alert,
            fingerprint,
            matched,
        } = prepared;
        let (outcome, same_labels) = self.store.put_valid(alert, fingerprint, now)?;
        let Some(changed) = outcome.into_changed() else {
            return Ok(());
        };
        self.inhibitor.upsert(&changed);
        if !Arc::ptr_eq(&context.routes, &self.routes) || !same_labels {
            self.route_into_groups(changed, fingerprint, now)?;
            return Ok(());
        }
        for prepared in matched {
            let route = self.routes.route(prepared.route);
            let settings = GroupSettings {
                receiver: &route.receiver,
                group_wait: route.group_wait,
                group_interval: route.group_interval,
                repeat_interval: route.repeat_interval,
            };
            self.groups.insert_fingerprinted(
                prepared.route.0,
                settings,
                prepared.group_labels,
                prepared.group_key,
                Arc::clone(&changed),
                fingerprint,
                now,
            )?;
        }
        Ok(())
    }

    fn route_into_groups(
        &mut self,
        alert: Arc<Alert>,
        fingerprint: Fingerprint,
        now: Timestamp,
    ) -> Result<(), GroupError> {
        for route_id in self.routes.match_alert(&alert.labels) {
            let group_labels = self.routes.group_labels(route_id, &alert.labels);
            let group_key = self.routes.group_key(route_id, &group_labels);
            let route = self.routes.route(route_id);
            let settings = GroupSettings {
                receiver: &route.receiver,
                group_wait: route.group_wait,
                group_interval: route.group_interval,
                repeat_interval: route.repeat_interval,
            };
            self.groups.insert_fingerprinted(
                route_id.0,
                settings,
                group_labels,
                group_key,
                Arc::clone(&alert),
                fingerprint,
                now,
            )?;
        }
        Ok(())
    }

    /// The earliest time `poll` has work; the shell sleeps until then (or until new input).
    pub fn next_wakeup(&self) -> Option<Timestamp> {
        self.groups.next_wakeup()
    }

    /// Runs every due group flush through the pipeline's stages.
    pub fn poll(&mut self, now: Timestamp) -> Vec<Effect> {
        let mut effects = Vec::new();
        for flush in self.groups.poll_flushes(now) {
            self.run_flush(flush, now, &mut effects);
        }
        effects
    }

    fn run_flush(&mut self, flush: Flush, now: Timestamp, effects: &mut Vec<Effect>) {
        let route = self.routes.route(RouteId(flush.group.route));
        // Time intervals stop the whole flush, as in Alertmanager: nothing is sent or logged.
        let outside_active = !self.intervals.is_active(&route.active_time_intervals, now);
        let in_mute = self.intervals.is_muted(&route.mute_time_intervals, now);
        let integrations = self
            .integrations
            .get(&flush.receiver)
            .cloned()
            .unwrap_or_default();
        if outside_active || in_mute || integrations.is_empty() {
            // A muted flush, or a receiver with nothing to send to, counts as done.
            self.groups.flush_succeeded(&flush.group, &flush.resolved);
            return;
        }

        // Inhibited and silenced alerts leave the notification (Alertmanager's mute stages).
        let mut firing = Vec::new();
        for alert in &flush.firing {
            if !self.is_muted(&alert.labels, now) {
                firing.push(Alert::clone(alert));
            }
        }
        let mut resolved = Vec::new();
        for alert in &flush.resolved {
            if !self.is_muted(&alert.labels, now) {
                resolved.push(Alert::clone(alert));
            }
        }
        let firing_fingerprints: BTreeSet<u64> =
            firing.iter().map(|alert| alert.fingerprint().0).collect();
        let resolved_fingerprints: BTreeSet<u64> =
            resolved.iter().map(|alert| alert.fingerprint().0).collect();

        let mut outstanding = BTreeSet::new();
        for integration in integrations {
            let entry = self
                .nflog
                .query(&flush.group.group_key, &integration.key, now);
            let decision = needs_update(
                entry,
                &firing_fingerprints,
                &resolved_fingerprints,
                flush.repeat_interval,
                integration.send_resolved,
                now,
            );
            match decision {
                Decision::Notify(reason) => {
                    outstanding.insert(integration.key.clone());
                    effects.push(Effect::Notify(Notification {
                        group: flush.group.clone(),
                        group_labels: flush.group_labels.clone(),
                        integration: integration.key,
                        reason,
                        firing: firing.clone(),
                        resolved: if integration.send_resolved {
                            resolved.clone()
                        } else {
                            Vec::new()
                        },
                        deadline: flush.deadline,
                        firing_fingerprints: firing_fingerprints.clone(),
                        resolved_fingerprints: resolved_fingerprints.clone(),
                    }));
                }
                Decision::RecordOnly => {
                    let logged = self.nflog.log(
                        &integration.key,
                        &flush.group.group_key,
                        &firing_fingerprints,
                        &resolved_fingerprints,
                        None,
                        now,
                    );
                    if let Ok(Some(entry)) = logged {
                        effects.push(Effect::PersistNflog(entry));
                    }
                }
                Decision::Skip(_) => {}
            }
        }
        if outstanding.is_empty() {
            self.groups.flush_succeeded(&flush.group, &flush.resolved);
        } else {
            // A newer flush of the same group replaces an unfinished one: its deadline passed.
            self.pending.insert(
                flush.group.clone(),
                PendingFlush {
                    outstanding,
                    resolved: flush.resolved,
                },
            );
        }
    }

    fn is_muted(&mut self, labels: &LabelSet, now: Timestamp) -> bool {
        self.inhibitor.inhibited_by(labels, now).is_some()
            || !self.silences.mutes(labels, now).is_empty()
    }

    /// The shell reports a delivered notification. Returns the notification-log entry to write
    /// durably before the pipeline moves on.
    pub fn delivered(
        &mut self,
        notification: &Notification,
        now: Timestamp,
    ) -> Result<Option<Entry>, NflogError> {
        let entry = self.nflog.log(
            &notification.integration,
            &notification.group.group_key,
            &notification.firing_fingerprints,
            &notification.resolved_fingerprints,
            None,
            now,
        )?;
        let finished = match self.pending.get_mut(&notification.group) {
            Some(pending) => {
                pending.outstanding.remove(&notification.integration);
                pending.outstanding.is_empty()
            }
            None => false,
        };
        if finished && let Some(pending) = self.pending.remove(&notification.group) {
            self.groups
                .flush_succeeded(&notification.group, &pending.resolved);
        }
        Ok(entry)
    }

    /// The shell gave up on a notification (deadline passed, permanent error): the flush did not
    /// succeed, so its resolved alerts stay for the next flush, as in Alertmanager.
    pub fn failed(&mut self, notification: &Notification) {
        self.pending.remove(&notification.group);
    }

    /// Silenced-by, inhibited-by and receivers of an alert, for the API.
    pub fn status(&mut self, alert: &Alert, now: Timestamp) -> AlertStatus {
        let silenced_by = self.silences.mutes(&alert.labels, now);
        let inhibited_by = self
            .inhibitor
            .inhibited_by(&alert.labels, now)
            .into_iter()
            .collect();
        let mut receivers: Vec<String> = Vec::new();
        for route_id in self.routes.match_alert(&alert.labels) {
            let receiver = &self.routes.route(route_id).receiver;
            if !receivers.contains(receiver) {
                receivers.push(receiver.clone());
            }
        }
        AlertStatus {
            silenced_by,
            inhibited_by,
            receivers,
        }
    }

    /// Drops what has expired: resolved alerts, old silences and log entries.
    pub fn gc(&mut self, now: Timestamp) {
        self.store.gc(now);
        self.inhibitor.remove_resolved(now);
        self.silences.gc(now);
        self.nflog.gc(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerting::PostedAlert;
    use crate::alerting::nflog::NflogLimits;
    use crate::alerting::silences::{SilenceLimits, SilenceSpec};
    use crate::config::alertmanager::{Matcher, parse_alertmanager_file};

    const CONFIG: &str = r#"
route:
  receiver: team
  group_by: [alertname]
  group_wait: 30s
  group_interval: 5m
  repeat_interval: 1h
  routes:
    - matchers: ['route="none"']
      receiver: blackhole
    - matchers: ['route="night"']
      receiver: team
      mute_time_intervals: [always]
receivers:
  - name: team
    webhook_configs:
      - url: http://127.0.0.1:1/hook
  - name: blackhole
inhibit_rules:
  - source_matchers: ['severity="critical"']
    target_matchers: ['severity="warning"']
    equal: [alertname]
time_intervals:
  - name: always
    time_intervals:
      - times: [{start_time: '00:00', end_time: '24:00'}]
"#;

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + seconds).unwrap()
    }

    fn pipeline() -> Pipeline {
        let config = parse_alertmanager_file(CONFIG, "am.yml").unwrap();
        Pipeline::new(
            &config,
            StoreLimits::default(),
            GroupLimits::default(),
            Silences::new(SilenceLimits::default(), SignedDuration::from_hours(120)),
            Nflog::new(NflogLimits::default()),
        )
    }

    fn post(pipeline: &mut Pipeline, labels: &[(&str, &str)], ends: Option<i64>, now: Timestamp) {
        let mut set = LabelSet::new();
        for (name, value) in labels {
            set.insert(*name, *value);
        }
        let posted = PostedAlert {
            labels: set,
            ends_at: ends.map(at),
            ..Default::default()
        };
        let alert = Alert::from_posted(posted, now, pipeline.resolve_timeout()).unwrap();
        pipeline.receive(alert, now).unwrap();
    }

    fn notifications(effects: Vec<Effect>) -> Vec<Notification> {
        effects
            .into_iter()
            .filter_map(|effect| match effect {
                Effect::Notify(notification) => Some(notification),
                Effect::PersistNflog(_) => None,
            })
            .collect()
    }

    #[test]
    fn notifies_after_group_wait_then_dedups_then_repeats() {
        let mut pipeline = pipeline();
        post(&mut pipeline, &[("alertname", "Disk")], None, at(0));
        assert!(pipeline.poll(at(29)).is_empty(), "group_wait not over");
        assert_eq!(pipeline.next_wakeup(), Some(at(30)));

        let sent = notifications(pipeline.poll(at(30)));
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].reason, NotifyReason::FirstNotification);
        assert_eq!(sent[0].integration.to_string(), "team/webhook/0");
        assert_eq!(sent[0].group.group_key, "{}:{alertname=\"Disk\"}");
        assert!(pipeline.delivered(&sent[0], at(31)).unwrap().is_some());

        // Still firing (refreshed), nothing new: the next flushes are deduplicated...
        post(&mut pipeline, &[("alertname", "Disk")], None, at(200));
        assert!(notifications(pipeline.poll(at(330))).is_empty());
        // ...until the repeat interval has passed. The sender refreshes the alert as Prometheus
        // does, before each flush.
        let mut repeated = Vec::new();
        let mut now = 330;
        while repeated.is_empty() && now < 4_000 {
            now += 300;
            post(&mut pipeline, &[("alertname", "Disk")], None, at(now - 10));
            repeated = notifications(pipeline.poll(at(now)));
        }
        assert_eq!(repeated.len(), 1, "repeat within the hour");
        assert_eq!(repeated[0].reason, NotifyReason::RepeatIntervalElapsed);
        assert!(now >= 3_630, "not before repeat_interval: {now}");
    }

    #[test]
    fn resolution_is_sent_and_the_group_ends() {
        let mut pipeline = pipeline();
        post(&mut pipeline, &[("alertname", "Disk")], None, at(0));
        let first = notifications(pipeline.poll(at(30)));
        pipeline.delivered(&first[0], at(30)).unwrap();

        post(&mut pipeline, &[("alertname", "Disk")], Some(100), at(100));
        let resolved = notifications(pipeline.poll(at(330)));
        assert_eq!(resolved.len(), 1);
        assert_eq!(resolved[0].reason, NotifyReason::AllResolved);
        assert!(resolved[0].firing.is_empty());
        assert_eq!(
            resolved[0].resolved.len(),
            1,
            "webhooks send resolved by default"
        );
        pipeline.delivered(&resolved[0], at(330)).unwrap();
        assert_eq!(pipeline.groups().len(), 0, "the empty group is gone");
    }

    #[test]
    fn silenced_and_inhibited_alerts_are_left_out() {
        let mut pipeline = pipeline();
        let spec = SilenceSpec {
            matchers: vec![Matcher::parse_one(r#"alertname="Quiet""#).unwrap()],
            starts_at: at(0),
            ends_at: at(10_000),
            created_by: "test".into(),
            comment: "maintenance".into(),
        };
        pipeline.silences.create(spec, at(0), [1; 16]).unwrap();
        post(&mut pipeline, &[("alertname", "Quiet")], None, at(0));
        post(
            &mut pipeline,
            &[("alertname", "Load"), ("severity", "critical")],
            None,
            at(0),
        );
        post(
            &mut pipeline,
            &[("alertname", "Load"), ("severity", "warning")],
            None,
            at(0),
        );

        let sent = notifications(pipeline.poll(at(30)));
        assert_eq!(sent.len(), 1, "the Quiet group is fully silenced: {sent:?}");
        let labels: Vec<&str> = sent[0]
            .firing
            .iter()
            .map(|alert| alert.labels.value("severity"))
            .collect();
        assert_eq!(labels, ["critical"], "the warning is inhibited");

        let quiet = pipeline
            .store()
            .iter()
            .find(|alert| alert.name() == "Quiet")
            .unwrap()
            .clone();
        let status = pipeline.status(&quiet, at(30));
        assert_eq!(status.silenced_by.len(), 1);
        assert!(status.is_suppressed());
        assert_eq!(status.receivers, ["team"]);
    }

    #[test]
    fn muted_routes_and_empty_receivers_send_nothing() {
        let mut pipeline = pipeline();
        post(
            &mut pipeline,
            &[("alertname", "A"), ("route", "none")],
            None,
            at(0),
        );
        post(
            &mut pipeline,
            &[("alertname", "B"), ("route", "night")],
            None,
            at(0),
        );
        assert!(pipeline.poll(at(30)).is_empty());
        assert!(pipeline.poll(at(10_000)).is_empty());
    }

    #[test]
    fn a_failed_delivery_keeps_resolved_alerts_for_the_next_flush() {
        let mut pipeline = pipeline();
        post(&mut pipeline, &[("alertname", "Disk")], None, at(0));
        let first = notifications(pipeline.poll(at(30)));
        pipeline.delivered(&first[0], at(30)).unwrap();
        post(&mut pipeline, &[("alertname", "Disk")], Some(100), at(100));
        let resolved = notifications(pipeline.poll(at(330)));
        pipeline.failed(&resolved[0]);
        assert_eq!(
            pipeline.groups().len(),
            1,
            "the resolved alert waits for a retry"
        );
        let retried = notifications(pipeline.poll(at(630)));
        assert_eq!(retried.len(), 1);
        assert_eq!(retried[0].reason, NotifyReason::AllResolved);
    }
}
