//! Aggregation groups: the alerts a route gathers under one group key, and when each group is
//! flushed towards its receiver. A deterministic state machine: the dispatcher `insert`s alerts,
//! the shell sleeps until `next_wakeup`, calls `poll_flushes(now)` and runs the notification
//! pipeline for every [`Flush`]; when that pipeline succeeds it reports `flush_succeeded`.
//!
//! # Timers
//!
//! Alertmanager starts a group's timer when the node creates the group: the first flush comes
//! `group_wait` later, or at once if an alert inserted before the first flush started more than
//! `group_wait` ago; every flush then re-arms the timer for `group_interval` after the flush.
//! Those instants depend on when each node happened to see the alert, so the peers of a cluster
//! flush at different times. Tocsin derives the schedule from replicated facts instead
//! (DESIGN §5, point 4):
//!
//! - The group's **anchor** is the earliest `starts_at` of the alerts ever inserted into the group
//!   (each capped at the time of its insertion, so a sender's clock running ahead cannot postpone
//!   the flush). Alerts replicate with their `starts_at`, so peers compute the same anchor.
//! - The **first flush** is due at `anchor + group_wait`. For an alert that starts when it is
//!   posted, that is Alertmanager's `now + group_wait`; for an alert that started more than
//!   `group_wait` ago it is in the past, so the group flushes at once, which is Alertmanager's
//!   rule for old alerts (`insert` before `hasFlushed`). Unlike Alertmanager, an alert that started
//!   less than `group_wait` ago shortens the wait to what is left of it.
//! - **Later flushes** fall on the grid `anchor + group_wait + k × group_interval`: each is the
//!   first grid point at least half a `group_interval` after the previous flush, i.e. the grid
//!   point nearest to Alertmanager's `previous flush + group_interval`. When flushes happen on
//!   the grid (or a little late, as a woken shell always is) this is exactly Alertmanager's
//!   cadence. After an off-grid flush (an immediate one for old alerts, or a poll delayed by more
//!   than half an interval) the next one snaps back to the grid, between half and one and a half
//!   `group_interval` later, so that peers that flushed at different instants realign. Two
//!   flushes of a group are never closer than half a `group_interval`.
//! - An earlier-starting alert inserted later lowers the anchor and the schedule is recomputed
//!   under the same rules, so peers that saw the group's alerts in different orders converge.
//!
//! A group keeps the receiver and timers of the route it was created for; a configuration reload
//! builds new groups.
//!
//! # Resolved alerts
//!
//! A flush snapshots the group's alerts, split into firing and resolved at the flush time. After
//! the pipeline succeeded, the resolved alerts it was given are removed, each only if the group
//! still holds exactly that copy (Alertmanager's `DeleteIfNotModified`: an alert that fired again
//! during the flush stays). A group left empty is destroyed at once.

use super::alert::Alert;
use super::labels::{Fingerprint, LabelSet};
use super::store::{FingerprintMap, sorted_by_fingerprint};
use crate::config::PromDuration;
use crate::config::alertmanager::EffectiveRoute;
use jiff::{SignedDuration, Timestamp};
use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// Config validation refuses a zero `group_interval`; a hand-built route might still carry one,
/// and a zero grid step would make a group flush on every poll.
const MIN_GROUP_INTERVAL: SignedDuration = SignedDuration::from_secs(1);

/// Identifies an aggregation group: the route (its index in the routing tree's walk order) and
/// the group key.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GroupId {
    pub route: usize,
    pub group_key: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupLimits {
    pub max_groups: usize,
}

impl Default for GroupLimits {
    fn default() -> GroupLimits {
        GroupLimits {
            max_groups: 100_000,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GroupError {
    #[error("too many aggregation groups (limit {limit}): no group {group_key} for route {route}")]
    TooManyGroups {
        limit: usize,
        route: usize,
        group_key: String,
    },
}

/// Counts since start, for the shell to export as metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GroupCounters {
    pub created: u64,
    pub destroyed: u64,
    pub rejected_too_many: u64,
}

/// One aggregation group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    labels: LabelSet,
    receiver: String,
    group_wait: SignedDuration,
    group_interval: SignedDuration,
    repeat_interval: SignedDuration,
    anchor: Timestamp,
    last_flush: Option<Timestamp>,
    next_flush: Timestamp,
    /// Set in a cluster: later flushes fall on the grid `key_phase + k × group_interval`
    /// (nanoseconds since the epoch) instead of the anchor's.
    key_phase: Option<i128>,
    /// The copies the group was given, shared with the store while it holds the same ones.
    alerts: FingerprintMap<Arc<Alert>>,
}

impl Group {
    pub fn labels(&self) -> &LabelSet {
        &self.labels
    }

    pub fn receiver(&self) -> &str {
        &self.receiver
    }

    /// The group's alerts, firing and resolved, in fingerprint order.
    pub fn alerts(&self) -> impl Iterator<Item = &Alert> {
        sorted_by_fingerprint(&self.alerts)
            .into_iter()
            .map(|(_, alert)| &**alert)
    }

    pub fn len(&self) -> usize {
        self.alerts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.alerts.is_empty()
    }

    /// The replicated fact the flush schedule derives from (see the module documentation).
    pub fn anchor(&self) -> Timestamp {
        self.anchor
    }

    pub fn last_flush(&self) -> Option<Timestamp> {
        self.last_flush
    }

    pub fn next_flush(&self) -> Timestamp {
        self.next_flush
    }

    fn schedule(&self) -> Timestamp {
        next_flush_on_grid(
            self.anchor,
            self.group_wait,
            self.group_interval,
            self.last_flush,
            self.key_phase,
        )
    }
}

/// In a cluster, where a group's later flushes fall within each `group_interval`: derived from
/// the group key alone, so every node computes the same grid whatever the group's history was
/// on it (a restart, a partition, or a group destroyed and re-created at different moments on
/// different nodes all change the anchor, never the key).
fn key_phase(group_key: &str, group_interval: SignedDuration) -> i128 {
    let step = group_interval.as_nanos().max(1);
    i128::from(tocsin_mesh::hash64(group_key.as_bytes())) % step
}

/// The effect of a group's timer firing: run the notification pipeline for this snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flush {
    pub group: GroupId,
    pub group_labels: LabelSet,
    pub receiver: String,
    /// For the dedup stage: how long an unchanged notification waits before it is repeated.
    pub repeat_interval: SignedDuration,
    /// Alerts not resolved at `now`, in Alertmanager's notification order. Their `ends_at` is
    /// whatever the store holds; a notification shows a firing alert without an end, as
    /// Alertmanager does, so that the alert does not appear to resolve as time passes.
    pub firing: Vec<Arc<Alert>>,
    /// Alerts resolved at `now`, in Alertmanager's notification order. Hand these back to
    /// `flush_succeeded` once the pipeline has succeeded.
    pub resolved: Vec<Arc<Alert>>,
    pub now: Timestamp,
    /// The group's next flush: the pipeline (retries included) should give up by then, as
    /// Alertmanager bounds a flush by `group_interval`.
    pub deadline: Timestamp,
}

/// What a new group takes from its route: where it notifies and its timers.
#[derive(Debug, Clone, Copy)]
pub struct GroupSettings<'a> {
    pub receiver: &'a str,
    pub group_wait: PromDuration,
    pub group_interval: PromDuration,
    pub repeat_interval: PromDuration,
}

impl<'a> From<&'a EffectiveRoute> for GroupSettings<'a> {
    fn from(route: &'a EffectiveRoute) -> GroupSettings<'a> {
        GroupSettings {
            receiver: &route.receiver,
            group_wait: route.group_wait,
            group_interval: route.group_interval,
            repeat_interval: route.repeat_interval,
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct Groups {
    groups: BTreeMap<GroupId, Group>,
    /// Every group's next flush, earliest first.
    timers: BTreeSet<(Timestamp, GroupId)>,
    limits: GroupLimits,
    /// Whether later flushes align on the group key (see [`key_phase`]).
    aligned_on_keys: bool,
    pub counters: GroupCounters,
}

impl Groups {
    pub fn new(limits: GroupLimits) -> Groups {
        Groups {
            groups: BTreeMap::new(),
            timers: BTreeSet::new(),
            limits,
            aligned_on_keys: false,
            counters: GroupCounters::default(),
        }
    }

    pub fn is_aligned_on_group_keys(&self) -> bool {
        self.aligned_on_keys
    }

    /// Makes every group's later flushes fall on a grid derived from its group key, as nodes of
    /// a cluster need; existing groups are rescheduled. A node alone keeps Alertmanager's
    /// cadence (the grid of its first flush).
    pub fn align_on_group_keys(&mut self) {
        if self.aligned_on_keys {
            return;
        }
        self.aligned_on_keys = true;
        self.timers.clear();
        for (id, group) in &mut self.groups {
            group.key_phase = Some(key_phase(&id.group_key, group.group_interval));
            group.next_flush = group.schedule();
            self.timers.insert((group.next_flush, id.clone()));
        }
    }

    /// Adds `alert` (or its newer copy) to the group `group_key` of route `route_id`, creating
    /// the group with the route's receiver and timers if it does not exist.
    pub fn insert(
        &mut self,
        route_id: usize,
        route: GroupSettings<'_>,
        group_labels: LabelSet,
        group_key: String,
        alert: Arc<Alert>,
        now: Timestamp,
    ) -> Result<(), GroupError> {
        let fingerprint = alert.fingerprint();
        self.insert_fingerprinted(
            route_id,
            route,
            group_labels,
            group_key,
            alert,
            fingerprint,
            now,
        )
    }

    /// [`Groups::insert`] with the alert's fingerprint already computed by the caller.
    #[allow(clippy::too_many_arguments)]
    pub fn insert_fingerprinted(
        &mut self,
        route_id: usize,
        route: GroupSettings<'_>,
        group_labels: LabelSet,
        group_key: String,
        alert: Arc<Alert>,
        fingerprint: Fingerprint,
        now: Timestamp,
    ) -> Result<(), GroupError> {
        debug_assert_eq!(fingerprint, alert.fingerprint());
        let id = GroupId {
            route: route_id,
            group_key,
        };
        let started = alert.starts_at.min(now);
        if let Some(group) = self.groups.get_mut(&id) {
            // A group that has flushed and holds nothing but resolved alerts is finished: it
            // lingers only until its flush is reported as succeeded, which a node ranked below
            // the owner does later than the owner (after its turn), while the owner has
            // already destroyed it. An alert arriving then starts a new group on the owner, so
            // it must start one here too, or the two nodes' flush schedules drift apart.
            // Only a firing alert starts it anew: a resolved copy arriving changes nothing the
            // owner would notify about (there, it would flush at once with nothing new).
            let finished = group.last_flush.is_some()
                && !alert.is_resolved_at(now)
                && group.alerts.values().all(|copy| copy.is_resolved_at(now));
            group.alerts.insert(fingerprint, alert);
            if finished {
                group.anchor = started;
                group.last_flush = None;
                let previous = group.next_flush;
                group.next_flush = group.schedule();
                self.timers.remove(&(previous, id.clone()));
                self.timers.insert((group.next_flush, id));
                self.counters.created += 1;
            } else if started < group.anchor {
                group.anchor = started;
                let previous = group.next_flush;
                group.next_flush = group.schedule();
                self.timers.remove(&(previous, id.clone()));
                self.timers.insert((group.next_flush, id));
            }
            return Ok(());
        }
        if self.groups.len() >= self.limits.max_groups {
            self.counters.rejected_too_many += 1;
            return Err(GroupError::TooManyGroups {
                limit: self.limits.max_groups,
                route: id.route,
                group_key: id.group_key,
            });
        }
        let group_interval = signed(route.group_interval).max(MIN_GROUP_INTERVAL);
        let mut group = Group {
            labels: group_labels,
            receiver: route.receiver.to_string(),
            group_wait: signed(route.group_wait),
            group_interval,
            repeat_interval: signed(route.repeat_interval),
            anchor: started,
            last_flush: None,
            next_flush: Timestamp::MAX,
            key_phase: self
                .aligned_on_keys
                .then(|| key_phase(&id.group_key, group_interval)),
            alerts: FingerprintMap::from_iter([(fingerprint, alert)]),
        };
        group.next_flush = group.schedule();
        self.timers.insert((group.next_flush, id.clone()));
        self.groups.insert(id, group);
        self.counters.created += 1;
        Ok(())
    }

    /// Flushes every group whose time has come, re-arming its timer.
    pub fn poll_flushes(&mut self, now: Timestamp) -> Vec<Flush> {
        let due: Vec<(Timestamp, GroupId)> = self
            .timers
            .iter()
            .take_while(|(at, _)| *at <= now)
            .cloned()
            .collect();
        let mut flushes = Vec::with_capacity(due.len());
        for timer in due {
            self.timers.remove(&timer);
            let (_, id) = timer;
            let Some(group) = self.groups.get_mut(&id) else {
                continue;
            };
            group.last_flush = Some(now);
            group.next_flush = group.schedule();
            self.timers.insert((group.next_flush, id.clone()));

            type Held = (Fingerprint, Arc<Alert>);
            let (mut resolved, mut firing): (Vec<Held>, Vec<Held>) = group
                .alerts
                .iter()
                .map(|(fingerprint, alert)| (*fingerprint, Arc::clone(alert)))
                .partition(|(_, alert)| alert.is_resolved_at(now));
            // Ties in Alertmanager's order fall back to fingerprint order, as a stable sort of
            // the alerts in fingerprint order would leave them.
            let order = |(fa, a): &Held, (fb, b): &Held| alertmanager_order(a, b).then(fa.cmp(fb));
            firing.sort_unstable_by(order);
            resolved.sort_unstable_by(order);
            let firing: Vec<Arc<Alert>> = firing.into_iter().map(|(_, alert)| alert).collect();
            let resolved: Vec<Arc<Alert>> = resolved.into_iter().map(|(_, alert)| alert).collect();
            flushes.push(Flush {
                group: id,
                group_labels: group.labels.clone(),
                receiver: group.receiver.clone(),
                repeat_interval: group.repeat_interval,
                firing,
                resolved,
                now,
                deadline: group.next_flush,
            });
        }
        flushes
    }

    /// The earliest time `poll_flushes` has work; the shell sleeps until then (or until new
    /// alerts arrive).
    pub fn next_wakeup(&self) -> Option<Timestamp> {
        self.timers.first().map(|(at, _)| *at)
    }

    /// The pipeline delivered (or deliberately skipped) the flush of `group`: forget the resolved
    /// alerts it was given unless they changed since, and destroy the group if nothing is left.
    /// Returns whether the group was destroyed. A failed flush needs no report: its alerts stay
    /// and the next flush carries them again.
    pub fn flush_succeeded(&mut self, group: &GroupId, sent_resolved: &[Arc<Alert>]) -> bool {
        let Some(entry) = self.groups.get_mut(group) else {
            return false;
        };
        for alert in sent_resolved {
            let fingerprint = alert.fingerprint();
            // Equal content, not only the same allocation: a copy replaced by an identical one
            // is still "not modified", as in Alertmanager.
            let unchanged = entry
                .alerts
                .get(&fingerprint)
                .is_some_and(|held| Arc::ptr_eq(held, alert) || **held == **alert);
            if unchanged {
                entry.alerts.remove(&fingerprint);
            }
        }
        if !entry.alerts.is_empty() {
            return false;
        }
        self.timers.remove(&(entry.next_flush, group.clone()));
        self.groups.remove(group);
        self.counters.destroyed += 1;
        true
    }

    pub fn get(&self, group: &GroupId) -> Option<&Group> {
        self.groups.get(group)
    }

    /// Every group, by route and then group key: what `GET /api/v2/alerts/groups` lists.
    pub fn iter(&self) -> impl Iterator<Item = (&GroupId, &Group)> {
        self.groups.iter()
    }

    pub fn len(&self) -> usize {
        self.groups.len()
    }

    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }
}

fn signed(duration: PromDuration) -> SignedDuration {
    SignedDuration::try_from(duration.as_std()).unwrap_or(SignedDuration::MAX)
}

/// When a group flushes next (see the module documentation): `anchor + group_wait` before its
/// first flush, afterwards the first point of the grid `anchor + group_wait + k × group_interval`
/// that lies at least half a `group_interval` after the last flush.
pub fn next_flush_time(
    anchor: Timestamp,
    group_wait: SignedDuration,
    group_interval: SignedDuration,
    last_flush: Option<Timestamp>,
) -> Timestamp {
    next_flush_on_grid(anchor, group_wait, group_interval, last_flush, None)
}

/// [`next_flush_time`], with later flushes on the grid `key_phase + k × group_interval` when a
/// key phase is given (clusters).
fn next_flush_on_grid(
    anchor: Timestamp,
    group_wait: SignedDuration,
    group_interval: SignedDuration,
    last_flush: Option<Timestamp>,
    key_phase: Option<i128>,
) -> Timestamp {
    let first = anchor.as_nanosecond() + group_wait.as_nanos();
    let next = match last_flush {
        None => first,
        Some(last) => {
            let origin = key_phase.unwrap_or(first);
            let step = group_interval.as_nanos().max(1);
            // Half an interval: a poll that comes late by less than that still keeps the next
            // flush one interval after the scheduled one.
            let earliest = last.as_nanosecond() + step / 2;
            if earliest <= origin {
                origin
            } else {
                let steps = (earliest - origin + step - 1) / step;
                origin + steps * step
            }
        }
    };
    Timestamp::from_nanosecond(next).unwrap_or(if next < 0 {
        Timestamp::MIN
    } else {
        Timestamp::MAX
    })
}

/// Alertmanager's order of alerts in a notification (`types.AlertSlice`): by `job`, then
/// `instance` (an alert having the label sorts first), then by label set.
pub fn alertmanager_order(a: &Alert, b: &Alert) -> Ordering {
    for name in ["job", "instance"] {
        match (a.labels.get(name), b.labels.get(name)) {
            (None, None) => continue,
            (Some(_), None) => return Ordering::Less,
            (None, Some(_)) => return Ordering::Greater,
            (Some(left), Some(right)) if left != right => return left.cmp(right),
            (Some(_), Some(_)) => continue,
        }
    }
    label_set_order(&a.labels, &b.labels)
}

/// Prometheus's `LabelSet.Before`: fewer labels first, then the first differing label in name
/// order decides (a set missing that name sorts first).
fn label_set_order(a: &LabelSet, b: &LabelSet) -> Ordering {
    a.len().cmp(&b.len()).then_with(|| {
        let names: BTreeSet<&str> = a.iter().chain(b.iter()).map(|(name, _)| name).collect();
        for name in names {
            match (a.get(name), b.get(name)) {
                (None, _) => return Ordering::Less,
                (_, None) => return Ordering::Greater,
                (Some(left), Some(right)) if left != right => return left.cmp(right),
                _ => {}
            }
        }
        Ordering::Equal
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_second(seconds).unwrap()
    }

    /// group_wait 30s, group_interval 5m.
    fn route() -> EffectiveRoute {
        EffectiveRoute {
            receiver: "team".to_string(),
            group_wait: PromDuration::from_secs(30),
            group_interval: PromDuration::from_secs(300),
            repeat_interval: PromDuration::from_secs(3600),
            ..EffectiveRoute::default()
        }
    }

    fn alert(name: &str, starts: i64, ends: i64, updated: i64) -> Alert {
        Alert {
            labels: LabelSet::from([("alertname", name), ("team", "db")]),
            annotations: LabelSet::new(),
            starts_at: at(starts),
            ends_at: at(ends),
            generator_url: String::new(),
            updated_at: at(updated),
            timeout: false,
        }
    }

    /// One step of a virtual-clock scenario.
    enum Event {
        /// Insert an alert into group `key` of route 0: (key, name, starts, ends).
        Insert(&'static str, &'static str, i64, i64),
        /// Poll; expect these flushes: (key, firing names, resolved names).
        Poll(Vec<(&'static str, Vec<&'static str>, Vec<&'static str>)>),
        /// Report the last flush of `key` as successful.
        Succeed(&'static str),
        /// Expect the next wake-up.
        Wakeup(Option<i64>),
        /// Expect the number of live groups.
        GroupCount(usize),
    }

    /// Runs `(time, event)` steps against one `Groups`, checking every expectation.
    fn run(name: &str, steps: Vec<(i64, Event)>) {
        let mut groups = Groups::new(GroupLimits::default());
        let mut last_flushes: BTreeMap<String, Flush> = BTreeMap::new();
        for (index, (time, event)) in steps.into_iter().enumerate() {
            let now = at(time);
            match event {
                Event::Insert(key, alert_name, starts, ends) => {
                    let alert = alert(alert_name, starts, ends, time);
                    let labels = LabelSet::from([("team", key)]);
                    groups
                        .insert(
                            0,
                            (&route()).into(),
                            labels,
                            key.to_string(),
                            Arc::new(alert),
                            now,
                        )
                        .unwrap();
                }
                Event::Poll(expected) => {
                    let flushes = groups.poll_flushes(now);
                    let names = |alerts: &[Arc<Alert>]| {
                        alerts
                            .iter()
                            .map(|a| a.name().to_string())
                            .collect::<Vec<_>>()
                    };
                    let seen: Vec<(String, Vec<String>, Vec<String>)> = flushes
                        .iter()
                        .map(|flush| {
                            (
                                flush.group.group_key.clone(),
                                names(&flush.firing),
                                names(&flush.resolved),
                            )
                        })
                        .collect();
                    let expected: Vec<(String, Vec<String>, Vec<String>)> = expected
                        .into_iter()
                        .map(|(key, firing, resolved)| {
                            let strings =
                                |names: Vec<&str>| names.into_iter().map(String::from).collect();
                            (key.to_string(), strings(firing), strings(resolved))
                        })
                        .collect();
                    assert_eq!(seen, expected, "{name}: step {index} (t={time}) flushes");
                    for flush in flushes {
                        assert_eq!(flush.now, now);
                        assert_eq!(flush.receiver, "team");
                        last_flushes.insert(flush.group.group_key.clone(), flush);
                    }
                }
                Event::Succeed(key) => {
                    let flush = &last_flushes[key];
                    groups.flush_succeeded(&flush.group, &flush.resolved);
                }
                Event::Wakeup(expected) => {
                    assert_eq!(
                        groups.next_wakeup(),
                        expected.map(at),
                        "{name}: step {index} (t={time}) wake-up"
                    );
                }
                Event::GroupCount(expected) => {
                    assert_eq!(
                        groups.len(),
                        expected,
                        "{name}: step {index} (t={time}) groups"
                    );
                }
            }
        }
    }

    use Event::*;

    const FOREVER: i64 = 1_000_000;

    #[test]
    fn new_group_waits_group_wait_then_flushes_every_group_interval() {
        run(
            "cadence",
            vec![
                (1000, Insert("g", "A", 1000, FOREVER)),
                (1000, Wakeup(Some(1030))),
                (1029, Poll(vec![])),
                (1030, Poll(vec![("g", vec!["A"], vec![])])),
                (1030, Wakeup(Some(1330))),
                // An alert joining after the first flush waits for the interval, not group_wait.
                (1100, Insert("g", "B", 1100, FOREVER)),
                (1100, Poll(vec![])),
                (1329, Poll(vec![])),
                (1330, Poll(vec![("g", vec!["A", "B"], vec![])])),
                (1630, Poll(vec![("g", vec!["A", "B"], vec![])])),
                (1630, Wakeup(Some(1930))),
            ],
        );
    }

    /// A node ranked below the owner reports its flush as succeeded later than the owner, which
    /// destroyed the finished group at once. An alert arriving in between must start a new
    /// group here as it does there, with its own group_wait, so both flush together.
    #[test]
    fn an_alert_joining_a_finished_group_starts_it_anew() {
        run(
            "finished group",
            vec![
                (1000, Insert("g", "A", 1000, 1100)),
                (1030, Poll(vec![("g", vec!["A"], vec![])])),
                (1330, Poll(vec![("g", vec![], vec!["A"])])),
                // Not yet reported as succeeded: only resolved alerts are left.
                (1340, Insert("g", "B", 1340, FOREVER)),
                (1340, Wakeup(Some(1370))),
                (1345, Succeed("g")),
                (1345, GroupCount(1)),
                (1370, Poll(vec![("g", vec!["B"], vec![])])),
                (1370, Wakeup(Some(1670))),
            ],
        );
        // The owner's view of the same events: the group was destroyed, B makes a new one.
        run(
            "owner",
            vec![
                (1000, Insert("g", "A", 1000, 1100)),
                (1030, Poll(vec![("g", vec!["A"], vec![])])),
                (1330, Poll(vec![("g", vec![], vec!["A"])])),
                (1330, Succeed("g")),
                (1330, GroupCount(0)),
                (1340, Insert("g", "B", 1340, FOREVER)),
                (1340, Wakeup(Some(1370))),
                (1370, Poll(vec![("g", vec!["B"], vec![])])),
                (1370, Wakeup(Some(1670))),
            ],
        );
    }

    /// Two nodes whose copies of a group have different histories (here: different anchors,
    /// as after a restart) agree on every flush after the first once aligned on the key.
    #[test]
    fn groups_aligned_on_their_key_flush_together_whatever_their_anchor() {
        let mut nodes = [
            Groups::new(GroupLimits::default()),
            Groups::new(GroupLimits::default()),
        ];
        for (node, start) in nodes.iter_mut().zip([1000, 1137]) {
            node.align_on_group_keys();
            let alert = Arc::new(alert("A", start, FOREVER, start));
            let labels = LabelSet::from([("team", "g")]);
            node.insert(0, (&route()).into(), labels, "g".into(), alert, at(start))
                .unwrap();
        }
        let mut later_flushes = [Vec::new(), Vec::new()];
        for (node, flushes) in nodes.iter_mut().zip(later_flushes.iter_mut()) {
            for now in 1000..4000 {
                if !node.poll_flushes(at(now)).is_empty() {
                    flushes.push(now);
                }
            }
        }
        assert_eq!(later_flushes[0][0], 1030);
        assert_eq!(later_flushes[1][0], 1167);
        assert_eq!(later_flushes[0][1..], later_flushes[1][1..]);
        for pair in later_flushes[0].windows(2) {
            assert!(
                pair[1] - pair[0] >= 150,
                "never closer than half an interval"
            );
        }
        for pair in later_flushes[0][1..].windows(2) {
            assert_eq!(pair[1] - pair[0], 300);
        }
    }

    #[test]
    fn alerts_older_than_group_wait_flush_at_once() {
        run(
            "old alert",
            vec![
                // Started 10 minutes before it reached us (a rule with `for: 10m`).
                (1000, Insert("g", "A", 400, FOREVER)),
                (1000, Wakeup(Some(430))),
                (1000, Poll(vec![("g", vec!["A"], vec![])])),
                // The grid is 430 + k·300; the first point at least 150s after 1000 is 1330.
                (1000, Wakeup(Some(1330))),
                (1300, Poll(vec![])),
                (1330, Poll(vec![("g", vec!["A"], vec![])])),
            ],
        );
    }

    #[test]
    fn an_old_alert_joining_before_the_first_flush_cuts_the_wait_short() {
        run(
            "old joiner",
            vec![
                (1000, Insert("g", "A", 1000, FOREVER)),
                (1010, Insert("g", "B", 500, FOREVER)),
                (1010, Wakeup(Some(530))),
                (1010, Poll(vec![("g", vec!["A", "B"], vec![])])),
                (1010, Wakeup(Some(1430))),
            ],
        );
    }

    #[test]
    fn a_young_alert_shortens_group_wait_to_what_is_left() {
        run(
            "young alert",
            vec![
                (1000, Insert("g", "A", 990, FOREVER)),
                (1000, Wakeup(Some(1020))),
                (1019, Poll(vec![])),
                (1020, Poll(vec![("g", vec!["A"], vec![])])),
            ],
        );
    }

    #[test]
    fn an_old_alert_joining_after_the_first_flush_keeps_the_interval() {
        run(
            "late old joiner",
            vec![
                (1000, Insert("g", "A", 1000, FOREVER)),
                (1030, Poll(vec![("g", vec!["A"], vec![])])),
                // Anchor moves to 100: grid 130 + k·300; first point ≥ 1330 is 1330.
                (1040, Insert("g", "B", 100, FOREVER)),
                (1040, Poll(vec![])),
                (1040, Wakeup(Some(1330))),
                (1330, Poll(vec![("g", vec!["A", "B"], vec![])])),
            ],
        );
    }

    #[test]
    fn a_late_poll_realigns_to_the_grid() {
        run(
            "late poll",
            vec![
                (1000, Insert("g", "A", 1000, FOREVER)),
                (1100, Poll(vec![("g", vec!["A"], vec![])])),
                // Grid 1030 + k·300: the first point at least 150s after 1100 is 1330.
                (1100, Wakeup(Some(1330))),
                (1330, Poll(vec![("g", vec!["A"], vec![])])),
                // Late by less than half an interval: the next flush comes sooner, on the grid.
                (1700, Poll(vec![("g", vec!["A"], vec![])])),
                (1700, Wakeup(Some(1930))),
                (1930, Poll(vec![("g", vec!["A"], vec![])])),
                // Late by more than half an interval: the next grid point is skipped.
                (2440, Poll(vec![("g", vec!["A"], vec![])])),
                (2440, Wakeup(Some(2830))),
            ],
        );
    }

    #[test]
    fn resolved_alerts_leave_after_a_successful_flush_and_empty_groups_die() {
        run(
            "resolution",
            vec![
                (1000, Insert("g", "A", 1000, 1200)),
                (1000, Insert("g", "B", 1000, FOREVER)),
                (1030, Poll(vec![("g", vec!["A", "B"], vec![])])),
                (1030, Succeed("g")),
                // A resolved at 1200; the next flush reports it.
                (1330, Poll(vec![("g", vec!["B"], vec!["A"])])),
                (1330, Succeed("g")),
                (1630, Poll(vec![("g", vec!["B"], vec![])])),
                (1700, Insert("g", "B", 1000, 1700)),
                (1930, Poll(vec![("g", vec![], vec!["B"])])),
                (1930, GroupCount(1)),
                (1931, Succeed("g")),
                (1931, GroupCount(0)),
                (1931, Wakeup(None)),
            ],
        );
    }

    #[test]
    fn a_failed_flush_keeps_resolved_alerts_for_the_next_one() {
        run(
            "failure",
            vec![
                (1000, Insert("g", "A", 1000, 1010)),
                (1030, Poll(vec![("g", vec![], vec!["A"])])),
                (1330, Poll(vec![("g", vec![], vec!["A"])])),
                (1330, Succeed("g")),
                (1330, GroupCount(0)),
            ],
        );
    }

    #[test]
    fn an_alert_that_fires_again_during_the_flush_is_kept() {
        run(
            "refire",
            vec![
                (1000, Insert("g", "A", 1000, 1010)),
                (1030, Poll(vec![("g", vec![], vec!["A"])])),
                (1031, Insert("g", "A", 1000, FOREVER)),
                (1032, Succeed("g")),
                (1032, GroupCount(1)),
                (1330, Poll(vec![("g", vec!["A"], vec![])])),
            ],
        );
    }

    #[test]
    fn groups_flush_independently_in_key_order() {
        run(
            "two groups",
            vec![
                (1000, Insert("b", "A", 1000, FOREVER)),
                (1000, Insert("a", "A", 1000, FOREVER)),
                (1010, Insert("c", "A", 1010, FOREVER)),
                (
                    1030,
                    Poll(vec![("a", vec!["A"], vec![]), ("b", vec!["A"], vec![])]),
                ),
                (1030, Wakeup(Some(1040))),
                (1040, Poll(vec![("c", vec!["A"], vec![])])),
                (1040, GroupCount(3)),
            ],
        );
    }

    #[test]
    fn peers_seeing_an_alert_at_different_times_flush_together() {
        let alert = Arc::new(alert("A", 1000, FOREVER, 1000));
        let mut early = Groups::new(GroupLimits::default());
        let mut late = Groups::new(GroupLimits::default());
        early
            .insert(
                0,
                (&route()).into(),
                LabelSet::new(),
                "g".into(),
                alert.clone(),
                at(1000),
            )
            .unwrap();
        late.insert(
            0,
            (&route()).into(),
            LabelSet::new(),
            "g".into(),
            alert,
            at(1020),
        )
        .unwrap();
        assert_eq!(early.next_wakeup(), late.next_wakeup());
        early.poll_flushes(at(1030));
        // A shell always wakes a little late.
        late.poll_flushes(at(1031));
        assert_eq!(early.next_wakeup(), Some(at(1330)));
        assert_eq!(late.next_wakeup(), Some(at(1330)));
    }

    #[test]
    fn the_group_limit_refuses_new_groups_and_counts() {
        let mut groups = Groups::new(GroupLimits { max_groups: 1 });
        let alert = Arc::new(alert("A", 1000, FOREVER, 1000));
        groups
            .insert(
                0,
                (&route()).into(),
                LabelSet::new(),
                "a".into(),
                alert.clone(),
                at(1000),
            )
            .unwrap();
        groups
            .insert(
                0,
                (&route()).into(),
                LabelSet::new(),
                "a".into(),
                alert.clone(),
                at(1000),
            )
            .unwrap();
        let refused = groups.insert(
            1,
            (&route()).into(),
            LabelSet::new(),
            "a".into(),
            alert,
            at(1000),
        );
        assert_eq!(
            refused,
            Err(GroupError::TooManyGroups {
                limit: 1,
                route: 1,
                group_key: "a".into()
            })
        );
        assert_eq!(
            groups.counters,
            GroupCounters {
                created: 1,
                destroyed: 0,
                rejected_too_many: 1
            }
        );
    }

    #[test]
    fn notification_order_is_alertmanagers() {
        let with = |pairs: &[(&str, &str)]| Alert {
            labels: pairs.iter().copied().collect(),
            ..alert("x", 0, 1, 0)
        };
        let mut alerts = [
            with(&[("alertname", "Z")]),
            with(&[("a", "1"), ("b", "2")]),
            with(&[("instance", "i2"), ("job", "j")]),
            with(&[("instance", "i1"), ("job", "j")]),
            with(&[("job", "a")]),
            with(&[("a", "1"), ("c", "2")]),
        ];
        alerts.sort_by(alertmanager_order);
        let printed: Vec<String> = alerts
            .iter()
            .map(|alert| alert.labels.to_string())
            .collect();
        assert_eq!(
            printed,
            [
                "{job=\"a\"}",
                "{instance=\"i1\", job=\"j\"}",
                "{instance=\"i2\", job=\"j\"}",
                "{alertname=\"Z\"}",
                "{a=\"1\", c=\"2\"}",
                "{a=\"1\", b=\"2\"}",
            ]
        );
    }
}
