//! The alerting core composed: alerts in, notifications and records to persist out.
//!
//! Alertmanager's stages, in its order, as one sans-IO state machine: store → route → group;
//! at each group flush: inhibition → active/mute time intervals → silences → per receiver
//! integration: dedup against the notification log. Delivery is the shell's job; it reports
//! back with [`Pipeline::delivered`], which logs the notification and, once every integration
//! of a flush succeeded, lets the group drop the resolved alerts it sent.
//!
//! In a cluster a stage sits between the mute stages and delivery (Alertmanager's wait stage,
//! improved): the node ranked k for a (group, integration) (see [`ownership`](super::ownership))
//! defers its notification by k × peer timeout, then consults the notification log again, so a
//! notification the owner sent in the meantime (replicated to this node) is not sent twice. The
//! node that does send first claims it (see [`claims`](super::claims)); a node whose turn comes
//! while another live node's claim holds waits for the claim to expire.

use super::alert::{InvalidAlert, PostedAlert};
use super::claims::{Claim, Claims};
use super::faults::Faults;
use super::groups::{Flush, GroupError, GroupId, GroupLimits, GroupSettings, Groups};
use super::inhibition::Inhibitor;
use super::nflog::{Decision, Entry, Nflog, NflogError, NotifyReason, ReceiverKey, needs_update};
use super::ownership::ClusterView;
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
    /// For the dedup check a deferred notification runs again when its turn comes.
    repeat_interval: SignedDuration,
    send_resolved: bool,
    /// When this node first claimed the notification (clusters only); renewals stop
    /// [`MAX_CLAIM_HOLD`] peer timeouts later.
    claimed_at: Option<Timestamp>,
}

impl Notification {
    /// When this node claimed the notification; `None` on a node alone.
    pub fn claimed_at(&self) -> Option<Timestamp> {
        self.claimed_at
    }
}

/// What the cluster's wait stage did, for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DispatchCounters {
    /// Notifications this node owned and sent at once.
    pub sent_as_owner: u64,
    /// Notifications deferred because this node was not their owner (or a claim held).
    pub deferred: u64,
    /// Deferred notifications dropped because a higher-ranked node had already sent them:
    /// the duplicates the cluster avoided.
    pub sent_by_peer: u64,
    /// Deferred notifications this node sent itself because nobody ranked above it had.
    pub sent_in_place_of_owner: u64,
}

/// How many peer timeouts an owner may keep renewing its claim while it retries. Past that,
/// lower-ranked nodes may send too: an owner that cannot reach the receiver must not keep the
/// others from reaching it (at least once beats exactly once).
pub const MAX_CLAIM_HOLD: i32 = 2;

/// What the shell must do after [`Pipeline::poll`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    Notify(Notification),
    /// A notification-log entry to write durably (the dedup stage logged without sending).
    PersistNflog(Entry),
    /// This node's claim on the notification that follows: replicate it before sending.
    Claim(Claim),
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
    /// Notifications waiting for this node's turn (clusters only), by when it comes.
    deferred: BTreeMap<(GroupId, ReceiverKey), Notification>,
    deferred_timers: BTreeSet<(Timestamp, GroupId, ReceiverKey)>,
    cluster: ClusterView,
    /// Deliberate bugs for the simulator; all off (and inert without `fault-injection`).
    faults: Faults,
    pub dispatch: DispatchCounters,
    pub silences: Silences,
    pub nflog: Nflog,
    pub claims: Claims,
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
        for (index, log) in receiver.log_configs.iter().enumerate() {
            list.push(Integration {
                key: key("log", index),
                send_resolved: log.send_resolved,
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
            deferred: BTreeMap::new(),
            deferred_timers: BTreeSet::new(),
            cluster: ClusterView::alone("local"),
            faults: Faults::default(),
            dispatch: DispatchCounters::default(),
            silences,
            nflog,
            claims: Claims::new(),
        }
    }

    /// Takes the membership layer's latest view; ranks of later flushes follow it. Once the
    /// node has seen a peer, group flushes align on group keys (see `groups`), for good.
    pub fn set_cluster_view(&mut self, view: ClusterView) {
        if view.live.len() > 1 {
            self.groups.align_on_group_keys();
        }
        self.cluster = view;
    }

    /// Turns deliberate bugs on, for the simulator (see [`Faults`]).
    pub fn set_faults(&mut self, faults: Faults) {
        self.faults = faults;
        self.silences.set_faults(faults);
    }

    pub fn cluster_view(&self) -> &ClusterView {
        &self.cluster
    }

    /// Notifications waiting for this node's turn.
    pub fn deferred_len(&self) -> usize {
        self.deferred.len()
    }

    fn is_clustered(&self) -> bool {
        self.cluster.live.len() > 1
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
        let aligned = self.groups.is_aligned_on_group_keys();
        self.groups = Groups::new(GroupLimits::default());
        if aligned {
            self.groups.align_on_group_keys();
        }
        self.pending.clear();
        self.deferred.clear();
        self.deferred_timers.clear();
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

    /// Takes one alert (already given Alertmanager's defaults, see [`Alert::from_posted`]), from
    /// a client or a peer. Returns the stored alert if it changed (to replicate).
    pub fn receive(
        &mut self,
        alert: Alert,
        now: Timestamp,
    ) -> Result<Option<Arc<Alert>>, ReceiveError> {
        let outcome = self.store.put(alert, now)?;
        let Some(changed) = outcome.into_changed() else {
            return Ok(None);
        };
        self.inhibitor.upsert(&changed);
        let fingerprint = changed.fingerprint();
        self.route_into_groups(Arc::clone(&changed), fingerprint, now)?;
        Ok(Some(changed))
    }

    /// [`Pipeline::receive`] for an alert `context` prepared: the same outcome,
    /// without repeating its validation, fingerprint and (while the routing tree it used is
    /// still the pipeline's) routing.
    pub fn receive_prepared(
        &mut self,
        context: &IngestContext,
        prepared: PreparedAlert,
        now: Timestamp,
    ) -> Result<Option<Arc<Alert>>, ReceiveError> {
        let PreparedAlert {
            alert,
            fingerprint,
            matched,
        } = prepared;
        let (outcome, same_labels) = self.store.put_valid(alert, fingerprint, now)?;
        let Some(changed) = outcome.into_changed() else {
            return Ok(None);
        };
        self.inhibitor.upsert(&changed);
        if !Arc::ptr_eq(&context.routes, &self.routes) || !same_labels {
            self.route_into_groups(Arc::clone(&changed), fingerprint, now)?;
            return Ok(Some(changed));
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
        Ok(Some(changed))
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
        let deferred = self.deferred_timers.first().map(|(at, _, _)| *at);
        match (self.groups.next_wakeup(), deferred) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Runs every due group flush through the pipeline's stages, then every deferred
    /// notification whose turn has come.
    pub fn poll(&mut self, now: Timestamp) -> Vec<Effect> {
        let mut effects = Vec::new();
        for flush in self.groups.poll_flushes(now) {
            self.run_flush(flush, now, &mut effects);
        }
        let due: Vec<(Timestamp, GroupId, ReceiverKey)> = self
            .deferred_timers
            .iter()
            .take_while(|(at, _, _)| *at <= now)
            .cloned()
            .collect();
        for timer in due {
            self.deferred_timers.remove(&timer);
            let (_, group, integration) = timer;
            if let Some(notification) = self.deferred.remove(&(group, integration)) {
                self.run_deferred(notification, now, &mut effects);
            }
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

        // A newer flush of a group replaces its unfinished one, deferred notifications included.
        self.forget_deferred(&flush.group);
        let mut outstanding = BTreeSet::new();
        let mut to_dispatch = Vec::new();
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
                    let notification = Notification {
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
                        repeat_interval: flush.repeat_interval,
                        send_resolved: integration.send_resolved,
                        claimed_at: None,
                    };
                    to_dispatch.push(notification);
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
        for notification in to_dispatch {
            self.dispatch(notification, now, effects);
        }
    }

    /// The cluster's wait stage: the owner goes ahead, rank k comes back after k peer timeouts.
    fn dispatch(&mut self, notification: Notification, now: Timestamp, effects: &mut Vec<Effect>) {
        let wait = if self.faults.skip_ownership_wait() {
            SignedDuration::ZERO
        } else {
            self.cluster
                .wait(&notification.group.group_key, &notification.integration)
        };
        if wait.is_positive() {
            let due = now.saturating_add(wait).unwrap_or(Timestamp::MAX);
            self.dispatch.deferred += 1;
            self.defer(notification, due);
        } else {
            if self.is_clustered() {
                self.dispatch.sent_as_owner += 1;
            }
            self.claim_and_send(notification, now, effects);
        }
    }

    fn defer(&mut self, notification: Notification, due: Timestamp) {
        let key = (notification.group.clone(), notification.integration.clone());
        self.deferred_timers
            .insert((due, key.0.clone(), key.1.clone()));
        if let Some(previous) = self.deferred.insert(key, notification) {
            // One deferred notification per key: drop the older one's timer.
            self.deferred_timers.retain(|(at, group, integration)| {
                *at == due || group != &previous.group || integration != &previous.integration
            });
        }
    }

    fn forget_deferred(&mut self, group: &GroupId) {
        self.deferred.retain(|(held, _), _| held != group);
        self.deferred_timers.retain(|(_, held, _)| held != group);
    }

    /// Sends now unless another live node holds a claim, in which case this node comes back when
    /// that claim expires. In a cluster the send is preceded by this node's own claim.
    fn claim_and_send(
        &mut self,
        mut notification: Notification,
        now: Timestamp,
        effects: &mut Vec<Effect>,
    ) {
        if self.is_clustered() && !self.faults.skip_ownership_wait() {
            let held = self
                .claims
                .held_by_other(
                    &notification.group.group_key,
                    &notification.integration,
                    &self.cluster.me,
                    now,
                )
                .filter(|claim| self.cluster.is_live(&claim.node))
                .map(|claim| claim.expires_at);
            if let Some(expires_at) = held {
                self.claims.counters.held_off += 1;
                self.defer(notification, expires_at);
                return;
            }
            notification.claimed_at = Some(now);
            if let Some(claim) = self.claims.claim(self.claim_for(&notification, now)) {
                effects.push(Effect::Claim(claim));
            }
        }
        effects.push(Effect::Notify(notification));
    }

    fn claim_for(&self, notification: &Notification, now: Timestamp) -> Claim {
        Claim {
            group_key: notification.group.group_key.clone(),
            receiver: notification.integration.clone(),
            node: self.cluster.me.clone(),
            claimed_at: notification.claimed_at.unwrap_or(now),
            expires_at: now
                .saturating_add(self.cluster.peer_timeout)
                .unwrap_or(Timestamp::MAX),
        }
    }

    /// A renewal of this node's claim on a notification it is still trying to deliver, to
    /// replicate; `None` when there is nothing to renew or the hold is over (see
    /// [`MAX_CLAIM_HOLD`]).
    pub fn renew_claim(&mut self, notification: &Notification, now: Timestamp) -> Option<Claim> {
        let claimed_at = notification.claimed_at?;
        let hold = self
            .cluster
            .peer_timeout
            .checked_mul(MAX_CLAIM_HOLD)
            .unwrap_or(SignedDuration::MAX);
        if now.duration_since(claimed_at) >= hold || !self.is_clustered() {
            return None;
        }
        let claim = self.claim_for(notification, now);
        self.claims.claim(claim)
    }

    /// A deferred notification's turn: the dedup check again, against a notification log that
    /// now holds whatever higher-ranked nodes sent meanwhile.
    fn run_deferred(
        &mut self,
        notification: Notification,
        now: Timestamp,
        effects: &mut Vec<Effect>,
    ) {
        let entry = self.nflog.query(
            &notification.group.group_key,
            &notification.integration,
            now,
        );
        let decision = needs_update(
            entry,
            &notification.firing_fingerprints,
            &notification.resolved_fingerprints,
            notification.repeat_interval,
            notification.send_resolved,
            now,
        );
        match decision {
            Decision::Notify(_) => {
                if notification.claimed_at.is_none() {
                    self.dispatch.sent_in_place_of_owner += 1;
                }
                self.claim_and_send(notification, now, effects)
            }
            Decision::RecordOnly => {
                if let Ok(Some(entry)) = self.delivered(&notification, now) {
                    effects.push(Effect::PersistNflog(entry));
                }
            }
            // Another node notified: for this node the flush succeeded.
            Decision::Skip(_) => {
                self.dispatch.sent_by_peer += 1;
                self.integration_done(&notification)
            }
        }
    }

    /// One integration of a pending flush is done; the last one completes the flush.
    fn integration_done(&mut self, notification: &Notification) {
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
        self.integration_done(notification);
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
        self.claims.gc(now);
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
                Effect::PersistNflog(_) | Effect::Claim(_) => None,
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

    fn clustered(me: &str, live: &[&str]) -> Pipeline {
        let mut pipeline = pipeline();
        pipeline.set_cluster_view(ClusterView {
            me: me.into(),
            live: live.iter().map(|name| name.to_string()).collect(),
            peer_timeout: SignedDuration::from_secs(15),
        });
        pipeline
    }

    /// Three nodes holding the same alert: the owner claims and sends at the flush, the others
    /// wait their turn, see the owner's replicated log entry, and send nothing.
    #[test]
    fn a_healthy_cluster_notifies_once() {
        let names = ["a", "b", "c"];
        let mut nodes: Vec<Pipeline> = names.iter().map(|me| clustered(me, &names)).collect();
        for node in &mut nodes {
            post(node, &[("alertname", "Disk")], None, at(0));
        }
        let mut sent = Vec::new();
        let mut claims = Vec::new();
        for (index, node) in nodes.iter_mut().enumerate() {
            for effect in node.poll(at(30)) {
                match effect {
                    Effect::Notify(notification) => sent.push((index, notification)),
                    Effect::Claim(claim) => claims.push(claim),
                    Effect::PersistNflog(_) => {}
                }
            }
        }
        assert_eq!(sent.len(), 1, "only the owner sends at the flush");
        assert_eq!(claims.len(), 1, "the owner claims before sending");
        let (owner, notification) = sent.pop().unwrap();
        let entry = nodes[owner]
            .delivered(&notification, at(31))
            .unwrap()
            .unwrap();
        // Replication: the entry and the claim reach every peer.
        for node in &mut nodes {
            node.nflog.merge(entry.clone(), at(31)).unwrap();
            node.claims.merge(claims[0].clone());
        }
        for (index, node) in nodes.iter_mut().enumerate() {
            assert_eq!(node.deferred_len(), usize::from(index != owner));
            for now in [45, 60, 75] {
                assert!(
                    notifications(node.poll(at(now))).is_empty(),
                    "node {index} at {now}"
                );
            }
            assert_eq!(node.deferred_len(), 0);
        }
    }

    /// The owner dies before sending: the second-ranked node sends one peer timeout later.
    #[test]
    fn the_next_rank_sends_when_the_owner_does_not() {
        let names = ["a", "b", "c"];
        let mut nodes: Vec<Pipeline> = names.iter().map(|me| clustered(me, &names)).collect();
        for node in &mut nodes {
            post(node, &[("alertname", "Disk")], None, at(0));
        }
        let owner = nodes
            .iter_mut()
            .position(|node| !notifications(node.poll(at(30))).is_empty())
            .unwrap();
        let mut senders = Vec::new();
        for (index, node) in nodes.iter_mut().enumerate() {
            if index == owner {
                continue;
            }
            for now in [31, 44] {
                assert!(notifications(node.poll(at(now))).is_empty());
            }
            if !notifications(node.poll(at(45))).is_empty() {
                senders.push(index);
            }
        }
        assert_eq!(
            senders.len(),
            1,
            "rank 1 sends at flush + 15s, rank 2 not yet"
        );
    }

    /// A live claim of another node holds a node off until the claim expires.
    #[test]
    fn a_live_claim_holds_off_the_next_rank() {
        let names = ["a", "b"];
        let mut nodes: Vec<Pipeline> = names.iter().map(|me| clustered(me, &names)).collect();
        for node in &mut nodes {
            post(node, &[("alertname", "Disk")], None, at(0));
        }
        let mut owner_effects = Vec::new();
        let mut owner = 0;
        for (index, node) in nodes.iter_mut().enumerate() {
            let effects = node.poll(at(30));
            if !effects.is_empty() {
                owner = index;
                owner_effects = effects;
            }
        }
        let other = 1 - owner;
        let Some(Effect::Notify(notification)) = owner_effects.pop() else {
            panic!("the owner sends");
        };
        let Some(Effect::Claim(claim)) = owner_effects.pop() else {
            panic!("the claim comes first");
        };
        nodes[other].claims.merge(claim);
        // The owner is still retrying at 40 and renews its claim until 55.
        let renewed = nodes[owner].renew_claim(&notification, at(40)).unwrap();
        nodes[other].claims.merge(renewed);
        assert!(
            notifications(nodes[other].poll(at(45))).is_empty(),
            "held off"
        );
        assert_eq!(nodes[other].claims.counters.held_off, 1);
        assert!(
            nodes[owner].renew_claim(&notification, at(60)).is_none(),
            "the hold ends after two peer timeouts"
        );
        assert_eq!(
            notifications(nodes[other].poll(at(55))).len(),
            1,
            "claim expired"
        );
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
