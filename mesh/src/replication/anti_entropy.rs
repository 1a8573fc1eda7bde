//! When to run an anti-entropy exchange, and with whom.
//!
//! Fed with the digests peers advertise through membership gossip and with membership changes;
//! polled with `now` (a [`Duration`] since an arbitrary epoch the shell chooses, e.g. its start)
//! for the exchanges to start. Deterministic: peers are visited in name order.

use std::collections::BTreeMap;
use std::time::Duration;

use super::StateKind;

/// How eagerly [`AntiEntropy`] schedules exchanges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AntiEntropySettings {
    /// How long digests must differ before an exchange starts: a difference caused by a delta in
    /// flight, or by gossip lagging behind, heals by itself within this.
    pub mismatch_grace: Duration,
    /// The shortest time between two exchanges with the same (peer, kind), whatever triggers
    /// them. It also bounds how soon an unanswered exchange is retried.
    pub min_interval: Duration,
    /// A periodic exchange per (peer, kind) even when digests agree, in case a digest collision
    /// or a bug hides a difference.
    pub full_sync_interval: Duration,
    /// The most peers tracked; more are refused (and counted) to keep memory bounded.
    pub max_peers: usize,
}

impl Default for AntiEntropySettings {
    fn default() -> Self {
        AntiEntropySettings {
            mismatch_grace: Duration::from_millis(500),
            min_interval: Duration::from_secs(2),
            full_sync_interval: Duration::from_secs(60),
            max_peers: 1024,
        }
    }
}

/// Counters for metrics, readable at any time with [`AntiEntropy::counters`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AntiEntropyCounters {
    /// Exchanges started (all reasons).
    pub exchanges_started: u64,
    /// ... of which because a peer joined or restarted.
    pub started_on_join: u64,
    /// ... of which because digests differed for longer than the grace period.
    pub started_on_mismatch: u64,
    /// ... of which periodic full syncs.
    pub started_periodic: u64,
    /// Exchanges completed ([`AntiEntropy::exchange_completed`] for a tracked peer).
    pub exchanges_completed: u64,
    /// Completions reported for a peer that is not tracked (left, or never joined).
    pub completions_unknown_peer: u64,
    /// Times a due exchange was deferred by `min_interval` (counted once per deferral, not per
    /// poll).
    pub skipped_rate_limited: u64,
    /// Peers refused because `max_peers` were already tracked.
    pub peers_refused: u64,
}

/// Why an exchange is due, for the counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reason {
    Join,
    Mismatch,
    Periodic,
}

/// State for one (peer, kind).
#[derive(Debug, Clone, Copy, Default)]
struct Pair {
    /// Set by a join: exchange as soon as the rate limit allows.
    pending_join: bool,
    /// Since when the digests have differed (reset when they agree, or an exchange starts or
    /// completes, so a stale difference must persist a full grace period again).
    mismatch_since: Option<Duration>,
    /// Whether the last observation showed equal digests.
    digests_equal: bool,
    /// When the last exchange started.
    last_started: Option<Duration>,
    /// When the last exchange completed.
    last_completed: Option<Duration>,
    /// Whether an exchange completed since the peer (re)joined.
    completed_since_join: bool,
    /// Whether the current due exchange was already counted as rate limited.
    deferred: bool,
}

#[derive(Debug, Clone)]
struct Peer {
    joined_at: Duration,
    kinds: [Pair; 4],
}

/// The anti-entropy scheduler. See the module documentation.
#[derive(Debug, Clone)]
pub struct AntiEntropy {
    settings: AntiEntropySettings,
    peers: BTreeMap<String, Peer>,
    counters: AntiEntropyCounters,
}

impl AntiEntropy {
    /// A scheduler tracking no peers.
    pub fn new(settings: AntiEntropySettings) -> Self {
        AntiEntropy {
            settings,
            peers: BTreeMap::new(),
            counters: AntiEntropyCounters::default(),
        }
    }

    /// The settings in use.
    pub fn settings(&self) -> &AntiEntropySettings {
        &self.settings
    }

    /// The counters so far.
    pub fn counters(&self) -> AntiEntropyCounters {
        self.counters
    }

    /// How many peers are tracked.
    pub fn tracked_peers(&self) -> usize {
        self.peers.len()
    }

    /// A peer joined, or restarted (call it again when membership shows a new incarnation): it
    /// gets an exchange for every kind as soon as `min_interval` since the last one allows
    /// (immediately for a new peer), and counts as unsettled until those complete. Returns
    /// false if the peer was refused because `max_peers` are tracked.
    pub fn peer_joined(&mut self, peer: &str, now: Duration) -> bool {
        if let Some(state) = self.peers.get_mut(peer) {
            state.joined_at = now;
            for pair in &mut state.kinds {
                // Keep `last_started`: a flapping peer must not defeat the rate limit.
                pair.pending_join = true;
                pair.completed_since_join = false;
                pair.digests_equal = false;
                pair.mismatch_since = None;
            }
            return true;
        }
        if self.peers.len() >= self.settings.max_peers {
            self.counters.peers_refused += 1;
            return false;
        }
        let pair = Pair {
            pending_join: true,
            ..Pair::default()
        };
        self.peers.insert(
            peer.to_owned(),
            Peer {
                joined_at: now,
                kinds: [pair; 4],
            },
        );
        true
    }

    /// A peer left the membership: forget it.
    pub fn peer_left(&mut self, peer: &str) {
        self.peers.remove(peer);
    }

    /// A digest advertised by `peer` for `kind` (`None` if it advertises none), compared with
    /// ours. Call it whenever either changes, or on every gossip round; repeats are harmless.
    /// A peer not yet tracked is treated as joining now.
    pub fn observe(
        &mut self,
        peer: &str,
        kind: StateKind,
        remote_digest: Option<u64>,
        local_digest: u64,
        now: Duration,
    ) {
        if !self.peers.contains_key(peer) && !self.peer_joined(peer, now) {
            return;
        }
        let Some(state) = self.peers.get_mut(peer) else {
            return;
        };
        let pair = &mut state.kinds[kind.index()];
        match remote_digest {
            Some(remote) if remote == local_digest => {
                pair.digests_equal = true;
                pair.mismatch_since = None;
            }
            Some(_) => {
                pair.digests_equal = false;
                pair.mismatch_since.get_or_insert(now);
            }
            // Unknown (an older peer, or gossip not there yet): no evidence either way; the
            // join and periodic exchanges cover it.
            None => {
                pair.digests_equal = false;
                pair.mismatch_since = None;
            }
        }
    }

    /// The exchange with `peer` for `kind` completed: its reply Summary arrived and what it sent
    /// is merged (see [`SummaryAnswer::completes_exchange`](super::SummaryAnswer)).
    pub fn exchange_completed(&mut self, peer: &str, kind: StateKind, now: Duration) {
        let Some(state) = self.peers.get_mut(peer) else {
            self.counters.completions_unknown_peer += 1;
            return;
        };
        let pair = &mut state.kinds[kind.index()];
        pair.last_completed = Some(now);
        pair.completed_since_join = true;
        pair.pending_join = false;
        pair.mismatch_since = None;
        self.counters.exchanges_completed += 1;
    }

    /// The exchanges to start now, in (peer name, kind) order. For each, the node sends
    /// `summaries(kind, true, &local, KeyRange::FULL)` to the peer.
    pub fn poll(&mut self, now: Duration) -> Vec<(String, StateKind)> {
        let settings = &self.settings;
        let counters = &mut self.counters;
        let mut start = Vec::new();
        for (name, peer) in &mut self.peers {
            let joined_at = peer.joined_at;
            for (pair, kind) in peer.kinds.iter_mut().zip(StateKind::ALL) {
                let Some(reason) = due(settings, joined_at, pair, now) else {
                    pair.deferred = false;
                    continue;
                };
                if rate_limit_until(settings, pair).is_some_and(|until| now < until) {
                    if !pair.deferred {
                        counters.skipped_rate_limited += 1;
                        pair.deferred = true;
                    }
                    continue;
                }
                pair.last_started = Some(now);
                pair.pending_join = false;
                pair.mismatch_since = None;
                pair.deferred = false;
                counters.exchanges_started += 1;
                match reason {
                    Reason::Join => counters.started_on_join += 1,
                    Reason::Mismatch => counters.started_on_mismatch += 1,
                    Reason::Periodic => counters.started_periodic += 1,
                }
                start.push((name.clone(), kind));
            }
        }
        start
    }

    /// The earliest time at which [`poll`](Self::poll) may have something to start (possibly
    /// already past: poll now), or `None` when no peer is tracked. New observations can make it
    /// earlier, so ask again after feeding inputs.
    pub fn next_wakeup(&self) -> Option<Duration> {
        let mut earliest: Option<Duration> = None;
        for peer in self.peers.values() {
            for pair in &peer.kinds {
                let mut due = periodic_due(&self.settings, peer.joined_at, pair);
                if pair.pending_join {
                    due = Duration::ZERO;
                }
                if let Some(since) = pair.mismatch_since {
                    due = due.min(since.saturating_add(self.settings.mismatch_grace));
                }
                if let Some(until) = rate_limit_until(&self.settings, pair) {
                    due = due.max(until);
                }
                earliest = Some(earliest.map_or(due, |e| e.min(due)));
            }
        }
        earliest
    }

    /// Whether every live peer, for every kind, has completed an exchange since it joined or
    /// advertises a digest equal to ours. An untracked live peer is not settled: we know nothing
    /// of its state. The node reports "settling" until this holds or its settle timeout passes.
    pub fn is_settled(&self, live_peers: &[String]) -> bool {
        live_peers.iter().all(|name| {
            self.peers.get(name).is_some_and(|peer| {
                peer.kinds
                    .iter()
                    .all(|pair| pair.completed_since_join || pair.digests_equal)
            })
        })
    }
}

/// Why an exchange is due at `now`, ignoring the rate limit.
fn due(
    settings: &AntiEntropySettings,
    joined_at: Duration,
    pair: &Pair,
    now: Duration,
) -> Option<Reason> {
    if pair.pending_join {
        return Some(Reason::Join);
    }
    if pair
        .mismatch_since
        .is_some_and(|since| now >= since.saturating_add(settings.mismatch_grace))
    {
        return Some(Reason::Mismatch);
    }
    if now >= periodic_due(settings, joined_at, pair) {
        return Some(Reason::Periodic);
    }
    None
}

/// When the next periodic exchange is due: `full_sync_interval` after the last exchange (or the
/// join).
fn periodic_due(settings: &AntiEntropySettings, joined_at: Duration, pair: &Pair) -> Duration {
    let last = [pair.last_started, pair.last_completed]
        .into_iter()
        .flatten()
        .fold(joined_at, Duration::max);
    last.saturating_add(settings.full_sync_interval)
}

/// Until when the rate limit holds back another exchange.
fn rate_limit_until(settings: &AntiEntropySettings, pair: &Pair) -> Option<Duration> {
    pair.last_started
        .map(|t| t.saturating_add(settings.min_interval))
}

#[cfg(test)]
mod unit {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn names(v: &[(String, StateKind)]) -> Vec<(&str, StateKind)> {
        v.iter().map(|(p, k)| (p.as_str(), *k)).collect()
    }

    /// A scheduler with one peer "b" whose join exchanges have completed at t = 0.
    fn synced() -> AntiEntropy {
        let mut ae = AntiEntropy::new(AntiEntropySettings::default());
        ae.peer_joined("b", ms(0));
        assert_eq!(ae.poll(ms(0)).len(), 4);
        for kind in StateKind::ALL {
            ae.exchange_completed("b", kind, ms(0));
        }
        ae
    }

    #[test]
    fn join_triggers_immediate_exchange_for_every_kind() {
        let mut ae = AntiEntropy::new(AntiEntropySettings::default());
        assert_eq!(ae.next_wakeup(), None);
        ae.peer_joined("b", ms(10_000));
        assert_eq!(ae.next_wakeup(), Some(Duration::ZERO));
        let started = ae.poll(ms(10_000));
        assert_eq!(
            names(&started),
            StateKind::ALL.iter().map(|&k| ("b", k)).collect::<Vec<_>>()
        );
        assert!(ae.poll(ms(10_000)).is_empty());
        assert_eq!(ae.counters().started_on_join, 4);
    }

    #[test]
    fn mismatch_waits_for_the_grace_period() {
        let mut ae = synced();
        let t = ms(5_000);
        ae.observe("b", StateKind::Silences, Some(1), 2, t);
        assert!(ae.poll(t + ms(499)).is_empty());
        assert_eq!(ae.next_wakeup(), Some(t + ms(500)));
        // Still differing later does not restart the grace period.
        ae.observe("b", StateKind::Silences, Some(1), 3, t + ms(300));
        assert_eq!(
            names(&ae.poll(t + ms(500))),
            vec![("b", StateKind::Silences)]
        );
        assert_eq!(ae.counters().started_on_mismatch, 1);
    }

    #[test]
    fn a_difference_that_heals_within_grace_starts_nothing() {
        let mut ae = synced();
        ae.observe("b", StateKind::Nflog, Some(1), 2, ms(5_000));
        ae.observe("b", StateKind::Nflog, Some(2), 2, ms(5_200));
        assert!(ae.poll(ms(6_000)).is_empty());
        assert_eq!(ae.counters().exchanges_started, 4);
    }

    #[test]
    fn rate_limit_holds_back_repeated_exchanges() {
        let mut ae = synced();
        // Digests keep differing: the first exchange at 0.5 s, the next not before 2.5 s.
        for step in 0..=60u64 {
            let now = ms(step * 100);
            ae.observe("b", StateKind::Alerts, Some(1), 2, now);
            for (_, kind) in ae.poll(now) {
                assert_eq!(kind, StateKind::Alerts);
            }
        }
        let c = ae.counters();
        // Join at 0 (rate limit until 2 s), mismatch since 0 due at 0.5 s → deferred to 2 s;
        // again from 2 s (grace until 2.5 s, limit until 4 s) → 4 s; then 6 s.
        assert_eq!(c.started_on_mismatch, 3, "{c:?}");
        assert_eq!(c.skipped_rate_limited, 3, "{c:?}");
    }

    #[test]
    fn restarted_peer_is_rate_limited_but_resynced() {
        let mut ae = synced();
        assert!(ae.is_settled(&["b".to_owned()]));
        ae.peer_joined("b", ms(1_000));
        assert!(!ae.is_settled(&["b".to_owned()]));
        assert!(ae.poll(ms(1_000)).is_empty());
        assert_eq!(ae.next_wakeup(), Some(ms(2_000)));
        assert_eq!(ae.poll(ms(2_000)).len(), 4);
    }

    #[test]
    fn periodic_full_sync_even_when_digests_agree() {
        let mut ae = synced();
        for kind in StateKind::ALL {
            ae.observe("b", kind, Some(7), 7, ms(1));
        }
        assert_eq!(ae.next_wakeup(), Some(ms(60_000)));
        assert!(ae.poll(ms(59_999)).is_empty());
        assert_eq!(ae.poll(ms(60_000)).len(), 4);
        assert_eq!(ae.counters().started_periodic, 4);
    }

    #[test]
    fn settled_logic() {
        let mut ae = AntiEntropy::new(AntiEntropySettings::default());
        let live = vec!["b".to_owned(), "c".to_owned()];
        assert!(ae.is_settled(&[]));
        assert!(!ae.is_settled(&live), "untracked peers are not settled");
        ae.peer_joined("b", ms(0));
        ae.peer_joined("c", ms(0));
        ae.poll(ms(0));
        for kind in StateKind::ALL {
            ae.exchange_completed("b", kind, ms(10));
        }
        assert!(!ae.is_settled(&live));
        // Equal digests count as settled without an exchange.
        for kind in StateKind::ALL {
            ae.observe("c", kind, Some(3), 3, ms(20));
        }
        assert!(ae.is_settled(&live));
        ae.observe("c", StateKind::Claims, None, 3, ms(30));
        assert!(!ae.is_settled(&live));
        ae.exchange_completed("c", StateKind::Claims, ms(40));
        assert!(ae.is_settled(&live));
        ae.peer_left("c");
        assert!(!ae.is_settled(&live));
        assert!(ae.is_settled(&live[..1]));
        ae.exchange_completed("c", StateKind::Claims, ms(50));
        assert_eq!(ae.counters().completions_unknown_peer, 1);
    }

    #[test]
    fn peers_are_bounded() {
        let mut ae = AntiEntropy::new(AntiEntropySettings {
            max_peers: 2,
            ..AntiEntropySettings::default()
        });
        assert!(ae.peer_joined("a", ms(0)));
        assert!(ae.peer_joined("b", ms(0)));
        assert!(!ae.peer_joined("c", ms(0)));
        ae.observe("d", StateKind::Alerts, Some(1), 2, ms(0));
        assert_eq!(ae.tracked_peers(), 2);
        assert_eq!(ae.counters().peers_refused, 2);
        assert!(ae.peer_joined("a", ms(1)), "a known peer may rejoin");
    }

    #[test]
    fn observe_of_unknown_peer_joins_it() {
        let mut ae = AntiEntropy::new(AntiEntropySettings::default());
        ae.observe("z", StateKind::Alerts, Some(1), 1, ms(0));
        assert_eq!(ae.poll(ms(0)).len(), 4);
    }
}
