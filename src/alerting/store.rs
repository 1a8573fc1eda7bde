//! The alert store: every alert this node knows, by fingerprint, merged as Alertmanager's
//! `provider/mem` merges them, with bounds on count and size.
//!
//! There are no subscriptions: `put` hands the stored result back to the caller, which passes
//! it on to the dispatcher (routing and aggregation groups). Garbage collection removes resolved
//! alerts from the store only; aggregation groups keep their own copies until they have notified
//! the resolution (see `groups`), which is how Alertmanager keeps GC from swallowing resolved
//! notifications.
//!
//! Stored alerts are immutable and shared (`Arc`): a change replaces the stored `Arc`, so the
//! copy an aggregation group holds is a snapshot of what it was given, at the cost of one
//! pointer instead of a second copy of the alert.

use super::alert::{Alert, InvalidAlert, merged_times};
use super::labels::Fingerprint;
use jiff::Timestamp;
use std::cmp::Ordering;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

/// A fast, fixed hasher for maps keyed by [`Fingerprint`] (already a 64-bit hash of the labels):
/// one multiply-and-rotate per word, as rustc's `FxHasher`. Fixed, so iteration order is
/// deterministic; callers that expose an order sort by fingerprint at read time.
#[derive(Debug, Clone, Copy, Default)]
pub struct FingerprintHasher(u64);

const FX_SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl Hasher for FingerprintHasher {
    fn finish(&self) -> u64 {
        self.0.rotate_left(26)
    }

    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.write_u64(u64::from(*byte));
        }
    }

    fn write_u64(&mut self, word: u64) {
        self.0 = (self.0 ^ word).wrapping_mul(FX_SEED);
    }

    fn write_usize(&mut self, word: usize) {
        self.write_u64(word as u64);
    }
}

/// A map keyed by fingerprint with [`FingerprintHasher`]; its iteration order is not observable.
pub type FingerprintMap<V> = HashMap<Fingerprint, V, BuildHasherDefault<FingerprintHasher>>;

/// The entries of `map` in fingerprint order.
pub(crate) fn sorted_by_fingerprint<V>(map: &FingerprintMap<V>) -> Vec<(&Fingerprint, &V)> {
    let mut entries: Vec<(&Fingerprint, &V)> = map.iter().collect();
    entries.sort_unstable_by_key(|(fingerprint, _)| **fingerprint);
    entries
}

/// Bounds on what the store accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreLimits {
    /// Alerts held at once, firing and resolved-but-not-yet-collected together.
    pub max_alerts: usize,
    /// Bytes of label and annotation names and values of one alert.
    pub max_alert_bytes: usize,
}

impl Default for StoreLimits {
    /// Generous enough for any real Prometheus fleet, small enough that a runaway sender cannot
    /// exhaust memory: 1M alerts of at most 64 KiB of labels and annotations.
    fn default() -> StoreLimits {
        StoreLimits {
            max_alerts: 1_000_000,
            max_alert_bytes: 64 * 1024,
        }
    }
}

/// Why the store refused an alert. The API answers `TooManyAlerts` with 429 (try later, after
/// garbage collection) and the others with 400.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    #[error("alert store is full: it holds its limit of {limit} alerts")]
    TooManyAlerts { limit: usize },
    #[error(
        "alert {labels} is too large: its labels and annotations take {bytes} bytes, the limit is {limit}"
    )]
    AlertTooLarge {
        labels: String,
        bytes: usize,
        limit: usize,
    },
    #[error(transparent)]
    Invalid(#[from] InvalidAlert),
}

/// Rejections since start, for the shell to export as metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreCounters {
    pub rejected_too_many: u64,
    pub rejected_too_large: u64,
    pub rejected_invalid: u64,
    pub collected: u64,
}

/// What `put` did; carries the stored alert when it changed, for the dispatcher.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PutOutcome {
    Created(Arc<Alert>),
    Updated(Arc<Alert>),
    /// The store already held exactly this alert (a duplicate post or replica).
    Unchanged,
}

impl PutOutcome {
    pub fn changed(&self) -> Option<&Arc<Alert>> {
        match self {
            PutOutcome::Created(alert) | PutOutcome::Updated(alert) => Some(alert),
            PutOutcome::Unchanged => None,
        }
    }

    pub fn into_changed(self) -> Option<Arc<Alert>> {
        match self {
            PutOutcome::Created(alert) | PutOutcome::Updated(alert) => Some(alert),
            PutOutcome::Unchanged => None,
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct AlertStore {
    alerts: FingerprintMap<Arc<Alert>>,
    limits: StoreLimits,
    pub counters: StoreCounters,
}

/// Bytes an alert's labels and annotations occupy, the quantity `max_alert_bytes` bounds.
pub fn alert_bytes(alert: &Alert) -> usize {
    alert.labels.text_len() + alert.annotations.text_len()
}

impl AlertStore {
    pub fn new(limits: StoreLimits) -> AlertStore {
        AlertStore {
            alerts: FingerprintMap::default(),
            limits,
            counters: StoreCounters::default(),
        }
    }

    pub fn limits(&self) -> StoreLimits {
        self.limits
    }

    /// Stores `alert`, merging it with the copy already held. The merged alert is returned when
    /// anything changed so the caller can hand it to the dispatcher.
    pub fn put(&mut self, alert: Alert, now: Timestamp) -> Result<PutOutcome, StoreError> {
        if let Err(invalid) = alert.validate() {
            self.counters.rejected_invalid += 1;
            return Err(invalid.into());
        }
        let fingerprint = alert.fingerprint();
        self.put_valid(alert, fingerprint, now)
            .map(|(outcome, _)| outcome)
    }

    /// [`AlertStore::put`] for an alert already validated (as [`Alert::from_posted`] does) whose
    /// fingerprint the caller computed. Also tells whether the stored alert has the labels of
    /// the one given (it may not only if two label sets share a fingerprint).
    pub fn put_valid(
        &mut self,
        alert: Alert,
        fingerprint: Fingerprint,
        now: Timestamp,
    ) -> Result<(PutOutcome, bool), StoreError> {
        debug_assert_eq!(fingerprint, alert.fingerprint());
        let bytes = alert_bytes(&alert);
        if bytes > self.limits.max_alert_bytes {
            self.counters.rejected_too_large += 1;
            return Err(StoreError::AlertTooLarge {
                labels: alert.labels.to_string(),
                bytes,
                limit: self.limits.max_alert_bytes,
            });
        }
        match self.alerts.get_mut(&fingerprint) {
            Some(existing) => {
                let same_labels = existing.labels == alert.labels;
                let combined = combine_owned(existing, alert, now);
                if combined == **existing {
                    return Ok((PutOutcome::Unchanged, same_labels));
                }
                *existing = Arc::new(combined);
                Ok((PutOutcome::Updated(Arc::clone(existing)), same_labels))
            }
            None => {
                if self.alerts.len() >= self.limits.max_alerts {
                    self.counters.rejected_too_many += 1;
                    return Err(StoreError::TooManyAlerts {
                        limit: self.limits.max_alerts,
                    });
                }
                let alert = Arc::new(alert);
                self.alerts.insert(fingerprint, Arc::clone(&alert));
                Ok((PutOutcome::Created(alert), true))
            }
        }
    }

    pub fn get(&self, fingerprint: Fingerprint) -> Option<&Alert> {
        self.alerts.get(&fingerprint).map(|alert| &**alert)
    }

    pub fn len(&self) -> usize {
        self.alerts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.alerts.is_empty()
    }

    /// Every alert, in fingerprint order.
    pub fn iter(&self) -> impl Iterator<Item = &Alert> {
        self.shared().map(|alert| &**alert)
    }

    /// Every alert, in no particular order: for callers that only count or aggregate.
    pub fn iter_unordered(&self) -> impl Iterator<Item = &Alert> {
        self.alerts.values().map(|alert| &**alert)
    }

    /// Every alert as the shared copy the store holds, in fingerprint order: for callers that
    /// keep alerts beyond the store's lock without copying them.
    pub fn shared(&self) -> impl Iterator<Item = &Arc<Alert>> {
        sorted_by_fingerprint(&self.alerts)
            .into_iter()
            .map(|(_, alert)| alert)
    }

    pub fn firing(&self, now: Timestamp) -> impl Iterator<Item = &Alert> {
        self.iter().filter(move |alert| !alert.is_resolved_at(now))
    }

    pub fn resolved(&self, now: Timestamp) -> impl Iterator<Item = &Alert> {
        self.iter().filter(move |alert| alert.is_resolved_at(now))
    }

    /// Removes the alerts resolved at `now` and returns them, so the shell can drop whatever it
    /// keeps about them (markers). Aggregation groups are unaffected: they hold their own copies
    /// and release them only after notifying the resolution.
    pub fn gc(&mut self, now: Timestamp) -> Vec<Arc<Alert>> {
        let mut collected = Vec::new();
        self.alerts.retain(|fingerprint, alert| {
            if alert.is_resolved_at(now) {
                collected.push((*fingerprint, Arc::clone(alert)));
                false
            } else {
                true
            }
        });
        collected.sort_unstable_by_key(|(fingerprint, _)| *fingerprint);
        let collected: Vec<Arc<Alert>> = collected.into_iter().map(|(_, alert)| alert).collect();
        self.counters.collected += collected.len() as u64;
        collected
    }
}

/// The stored result of receiving `incoming` while holding `existing` (same fingerprint).
///
/// Alertmanager merges only when the two activity periods overlap and otherwise lets the incoming
/// alert replace the stored one (a new firing period of the same alert). Two refinements so that
/// replicas converge whatever order copies arrive in:
/// - the overlap test is symmetric (Alertmanager's misses an incoming period that contains the
///   stored one, and so depends on which copy came first);
/// - without overlap the more recently updated copy wins rather than the incoming one, since a
///   peer may replicate a copy older than ours. On one node the incoming copy is always the
///   newest, so this is Alertmanager's behaviour there.
///
/// Equal `updated_at` is broken by comparing the rest of the alert, so the winner never depends
/// on argument order.
pub fn combine(existing: &Alert, incoming: &Alert, now: Timestamp) -> Alert {
    let (older, newer) = match recency(existing, incoming) {
        Ordering::Greater => (incoming, existing),
        _ => (existing, incoming),
    };
    let overlap = older.starts_at <= newer.ends_at && newer.starts_at <= older.ends_at;
    if overlap {
        // `Alert::merge` treats its argument as the newer copy when the update times tie.
        older.merge(newer, now)
    } else {
        newer.clone()
    }
}

/// [`combine`] taking the incoming copy by value: when it is the newer one (the usual case: a
/// sender refreshing its alert), the result reuses it instead of copying it.
fn combine_owned(existing: &Alert, incoming: Alert, now: Timestamp) -> Alert {
    let incoming_is_newer = recency(existing, &incoming) != Ordering::Greater;
    let (older, newer) = if incoming_is_newer {
        (existing, &incoming)
    } else {
        (&incoming, existing)
    };
    let overlap = older.starts_at <= newer.ends_at && newer.starts_at <= older.ends_at;
    // As `older.merge(newer)`: `recency` orders by `updated_at` first, so `merge` keeps `newer`
    // as the newer copy.
    let times = overlap.then(|| merged_times(older, newer, now));
    let mut result = if incoming_is_newer {
        incoming
    } else {
        existing.clone()
    };
    if let Some((starts_at, ends_at, timeout)) = times {
        result.starts_at = starts_at;
        result.ends_at = ends_at;
        result.timeout = timeout;
    }
    result
}

/// A total order on copies of one alert: most recently updated last, ties broken by content.
fn recency(a: &Alert, b: &Alert) -> Ordering {
    a.updated_at
        .cmp(&b.updated_at)
        .then_with(|| a.ends_at.cmp(&b.ends_at))
        .then_with(|| a.timeout.cmp(&b.timeout))
        .then_with(|| a.starts_at.cmp(&b.starts_at))
        .then_with(|| a.generator_url.cmp(&b.generator_url))
        .then_with(|| a.annotations.cmp(&b.annotations))
        .then_with(|| a.labels.cmp(&b.labels))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerting::labels::LabelSet;
    use proptest::prelude::*;

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_second(seconds).unwrap()
    }

    fn alert(name: &str, starts: i64, ends: i64, updated: i64, timeout: bool) -> Alert {
        Alert {
            labels: LabelSet::from([("alertname", name)]),
            annotations: LabelSet::new(),
            starts_at: at(starts),
            ends_at: at(ends),
            generator_url: String::new(),
            updated_at: at(updated),
            timeout,
        }
    }

    #[test]
    fn put_creates_then_merges_then_reports_duplicates_unchanged() {
        let mut store = AlertStore::new(StoreLimits::default());
        let first = alert("A", 10, 400, 100, true);
        assert_eq!(
            store.put(first.clone(), at(100)),
            Ok(PutOutcome::Created(Arc::new(first.clone())))
        );
        assert_eq!(store.put(first.clone(), at(101)), Ok(PutOutcome::Unchanged));

        let refreshed = alert("A", 90, 500, 190, true);
        let outcome = store.put(refreshed, at(190)).unwrap();
        let stored = outcome.changed().unwrap();
        assert_eq!(
            (stored.starts_at, stored.ends_at),
            (at(10), at(500)),
            "earliest start kept"
        );
        assert_eq!(store.get(first.fingerprint()), Some(&**stored));
        assert_eq!(store.len(), 1);
    }

    #[test]
    fn a_new_firing_period_replaces_the_old_one() {
        let mut store = AlertStore::new(StoreLimits::default());
        store.put(alert("A", 10, 50, 50, false), at(50)).unwrap();
        let refired = alert("A", 100, 400, 100, true);
        let stored = store
            .put(refired.clone(), at(100))
            .unwrap()
            .into_changed()
            .unwrap();
        assert_eq!(
            *stored, refired,
            "no overlap: the start is not carried over"
        );
    }

    /// Found by the idempotence proptest: periods that only touch (one ends where the other
    /// starts) count as overlapping, so storing the same copy again changes nothing.
    #[test]
    fn touching_periods_merge_so_a_repeated_copy_is_a_no_op() {
        let mut store = AlertStore::new(StoreLimits::default());
        store.put(alert("A", 5, 89, 0, false), at(6)).unwrap();
        let resolved = alert("A", 6, 6, 1, false);
        store.put(resolved.clone(), at(6)).unwrap();
        let first = store.get(resolved.fingerprint()).unwrap().clone();
        assert_eq!(first.starts_at, at(5), "the earlier start is kept");
        assert!(store.put(resolved, at(6)).unwrap().changed().is_none());
        assert_eq!(store.get(first.fingerprint()).unwrap(), &first);
    }

    #[test]
    fn views_and_gc_split_firing_from_resolved() {
        let mut store = AlertStore::new(StoreLimits::default());
        store
            .put(alert("firing", 10, 400, 100, true), at(100))
            .unwrap();
        store
            .put(alert("resolved", 10, 90, 100, false), at(100))
            .unwrap();
        let names = |alerts: Vec<&Alert>| {
            alerts
                .iter()
                .map(|a| a.name().to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(names(store.firing(at(100)).collect()), ["firing"]);
        assert_eq!(names(store.resolved(at(100)).collect()), ["resolved"]);

        let collected = store.gc(at(100));
        assert_eq!(
            names(collected.iter().map(|a| &**a).collect()),
            ["resolved"]
        );
        assert_eq!(names(store.iter().collect()), ["firing"]);
        assert_eq!(store.counters.collected, 1);

        // At its end time an alert counts as resolved and is collected.
        assert_eq!(store.gc(at(400)).len(), 1);
        assert!(store.is_empty());
    }

    #[test]
    fn limits_refuse_with_typed_errors_and_count() {
        let limits = StoreLimits {
            max_alerts: 1,
            max_alert_bytes: 20,
        };
        let mut store = AlertStore::new(limits);
        store.put(alert("A", 10, 400, 100, true), at(100)).unwrap();
        assert_eq!(
            store.put(alert("B", 10, 400, 100, true), at(100)),
            Err(StoreError::TooManyAlerts { limit: 1 })
        );
        // Updating an alert already held needs no room.
        assert!(store.put(alert("A", 10, 500, 110, true), at(110)).is_ok());

        let mut large = alert("A", 10, 400, 120, true);
        large.annotations.insert("summary", "x".repeat(20));
        let error = store.put(large, at(120)).unwrap_err();
        assert!(
            matches!(
                error,
                StoreError::AlertTooLarge {
                    bytes: 37,
                    limit: 20,
                    ..
                }
            ),
            "{error}"
        );
        assert!(error.to_string().contains("alertname=\"A\""), "{error}");

        let mut unnamed = alert("A", 10, 400, 120, true);
        unnamed.labels = LabelSet::new();
        assert_eq!(
            store.put(unnamed, at(120)),
            Err(StoreError::Invalid(InvalidAlert::NoLabels))
        );
        assert_eq!(
            store.counters,
            StoreCounters {
                rejected_too_many: 1,
                rejected_too_large: 1,
                rejected_invalid: 1,
                collected: 0
            }
        );
    }

    fn copy_strategy() -> impl Strategy<Value = Alert> {
        (0i64..50, 0i64..100, 0i64..20, any::<bool>(), 0u8..3).prop_map(
            |(starts, length, updated, timeout, annotation)| {
                let mut copy = alert("A", starts, starts + length, updated, timeout);
                copy.annotations.insert("summary", annotation.to_string());
                copy
            },
        )
    }

    proptest! {
        /// Two copies of an alert, received in either order, leave the same stored alert.
        #[test]
        fn two_copies_commute(a in copy_strategy(), b in copy_strategy(), now in 0i64..150) {
            let now = at(now);
            let mut forward = AlertStore::new(StoreLimits::default());
            forward.put(a.clone(), now).unwrap();
            forward.put(b.clone(), now).unwrap();
            let mut backward = AlertStore::new(StoreLimits::default());
            backward.put(b, now).unwrap();
            backward.put(a, now).unwrap();
            prop_assert_eq!(forward.iter().collect::<Vec<_>>(), backward.iter().collect::<Vec<_>>());
        }

        /// Taking the incoming copy by value changes nothing about the result.
        #[test]
        fn combining_by_value_agrees(a in copy_strategy(), b in copy_strategy(), now in 0i64..150) {
            let now = at(now);
            prop_assert_eq!(combine_owned(&a, b.clone(), now), combine(&a, &b, now));
            prop_assert_eq!(combine_owned(&b, a.clone(), now), combine(&b, &a, now));
        }

        /// Receiving a copy again changes nothing.
        #[test]
        fn repeated_copies_are_idempotent(copies in prop::collection::vec(copy_strategy(), 1..6), now in 0i64..150) {
            let now = at(now);
            let mut store = AlertStore::new(StoreLimits::default());
            for copy in &copies {
                store.put(copy.clone(), now).unwrap();
            }
            let last = copies.last().unwrap().clone();
            prop_assert_eq!(store.put(last, now).unwrap(), PutOutcome::Unchanged);
        }

        /// Firing copies that a sender refreshes (timeout ends, overlapping periods) converge to
        /// the same stored alert in any delivery order: the replicated steady state.
        #[test]
        fn refreshed_firing_copies_converge_in_any_order(
            copies in prop::collection::vec((0i64..50, 50i64..100, 0i64..20), 1..6),
            rotation in 0usize..6,
        ) {
            let now = at(40);
            let copies: Vec<Alert> = copies
                .into_iter()
                .map(|(starts, ends, updated)| alert("A", starts, ends + 100, updated, true))
                .collect();
            let mut reordered = copies.clone();
            reordered.rotate_left(rotation % copies.len());
            reordered.reverse();
            let mut forward = AlertStore::new(StoreLimits::default());
            for copy in copies {
                forward.put(copy, now).unwrap();
            }
            let mut other = AlertStore::new(StoreLimits::default());
            for copy in reordered {
                other.put(copy, now).unwrap();
            }
            prop_assert_eq!(forward.iter().collect::<Vec<_>>(), other.iter().collect::<Vec<_>>());
        }
    }
}
