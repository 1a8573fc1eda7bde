//! The properties of DESIGN.md §5, with explicit bounds, checked against what the receivers
//! recorded and what the nodes held. Safety properties (silences hold, exactly once while
//! healthy, durable notification log, no resurrection) are checked over the whole run;
//! liveness properties (at least once, convergence) over the healing phase.

use super::Ms;
use super::network::MAX_HEALTHY_LATENCY;
use super::receiver::{MAX_HEALTHY_RESPONSE, Record};
use super::workload::{
    self, GROUP_INTERVAL, GROUP_WAIT, REFRESH, REPEAT_INTERVAL, WorldAlert, WorldSilence,
};
use std::collections::BTreeMap;
use tocsin::alerting::pipeline::MAX_CLAIM_HOLD;

/// Membership: a peer is live if heard from within this.
pub const FAILURE_TIMEOUT: Ms = 3_000;
/// How often nodes heartbeat (and run cluster.rs's tick).
pub const TICK: Ms = 200;
/// How often digests are recomputed and advertised (cluster.rs's DIGEST_INTERVAL).
pub const DIGEST_INTERVAL: Ms = 1_000;
/// Per-node wall-clock skew at most (each way), and the largest clock jump.
pub const MAX_SKEW: Ms = 300;
pub const MAX_CLOCK_JUMP: Ms = 2_000;
/// AntiEntropySettings::default(): mismatch grace and the per-(peer, kind) rate limit.
pub const MISMATCH_GRACE: Ms = 500;
pub const MIN_EXCHANGE_INTERVAL: Ms = 2_000;

fn ms(duration: jiff::SignedDuration) -> Ms {
    u64::try_from(duration.as_millis()).unwrap_or(0)
}

/// Every bound the checks use, derived from the configuration, the cluster and the network.
#[derive(Debug, Clone)]
pub struct Bounds {
    pub nodes: u64,
    pub peer_timeout: Ms,
    /// max(peer_timeout, 2 s), as cluster.rs.
    pub settle_timeout: Ms,
    /// A change reaches every live, connected node within this: a delta's latency, or failing
    /// that, gossip showing the digest difference, the grace, the rate limit and one exchange
    /// round trip.
    pub replication: Ms,
    /// After a fault ends, how long its effects may last: failure detection, settling, and a
    /// repair by anti-entropy.
    pub recovery: Ms,
    /// From a flush to the pipeline emitting its notification: rank waits and a claim held to
    /// its longest.
    pub notify_defer: Ms,
    /// How long a delivery may retry (its deadline is the group's next flush).
    pub retry: Ms,
    /// "At least once": from an alert firing to its notification.
    pub at_least_once: Ms,
    /// "Silences hold": a silence every live node held this long mutes every flush.
    pub silence: Ms,
    /// "Convergence": after faults stop, all live nodes agree within this.
    pub convergence: Ms,
    /// Two equal notifications closer than this are a duplicate (repeat_interval less the
    /// clocks' disagreement).
    pub duplicate_window: Ms,
}

impl Bounds {
    pub fn new(nodes: usize, peer_timeout: Ms) -> Bounds {
        let nodes = nodes as u64;
        let settle_timeout = peer_timeout.max(2_000);
        let latency = MAX_HEALTHY_LATENCY;
        let replication =
            latency + DIGEST_INTERVAL + TICK + MISMATCH_GRACE + MIN_EXCHANGE_INTERVAL + 4 * latency;
        let recovery = FAILURE_TIMEOUT + settle_timeout + replication + TICK;
        let hold = u64::try_from(MAX_CLAIM_HOLD).unwrap_or(2);
        let notify_defer = (nodes.saturating_sub(1) + hold + 1) * peer_timeout;
        let retry = ms(GROUP_INTERVAL);
        let at_least_once = ms(GROUP_WAIT)
            + ms(GROUP_INTERVAL) * 3 / 2
            + notify_defer
            + retry
            + 2 * (latency + MAX_HEALTHY_RESPONSE)
            + REFRESH
            + settle_timeout;
        Bounds {
            nodes,
            peer_timeout,
            settle_timeout,
            replication,
            recovery,
            notify_defer,
            retry,
            at_least_once,
            silence: replication + notify_defer,
            convergence: recovery + replication,
            duplicate_window: ms(REPEAT_INTERVAL) - 2 * (2 * MAX_SKEW + MAX_CLOCK_JUMP),
        }
    }
}

/// A property violated: which, when (virtual ms), and what happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub at: Ms,
    pub property: &'static str,
    pub detail: String,
}

/// A fault and how long it lasted (for the checks that hold only while healthy).
#[derive(Debug, Clone)]
pub struct FaultSpan {
    pub kind: String,
    pub start: Ms,
    pub end: Ms,
}

fn unhealthy(spans: &[FaultSpan], from: Ms, to: Ms, recovery: Ms) -> Option<&FaultSpan> {
    spans
        .iter()
        .find(|span| span.start <= to && span.end + recovery >= from)
}

fn by_pair(records: &[Record]) -> BTreeMap<(&str, &str), Vec<&Record>> {
    let mut pairs: BTreeMap<(&str, &str), Vec<&Record>> = BTreeMap::new();
    for record in records {
        pairs
            .entry((record.group_key.as_str(), record.integration.as_str()))
            .or_default()
            .push(record);
    }
    for list in pairs.values_mut() {
        list.sort_by_key(|record| (record.at, record.node, record.notification));
    }
    pairs
}

fn same_content(a: &Record, b: &Record) -> bool {
    a.firing == b.firing && a.resolved == b.resolved
}

/// Exactly once while healthy: two consecutive deliveries of the same content to one
/// integration for one group, within the repeat interval, whose whole window (from the first
/// one's flush to the second's delivery) saw no fault, are a duplicate.
pub fn exactly_once(
    records: &[Record],
    spans: &[FaultSpan],
    bounds: &Bounds,
    out: &mut Vec<Violation>,
) {
    for ((group, integration), list) in by_pair(records) {
        for pair in list.windows(2) {
            let (first, second) = (pair[0], pair[1]);
            if !same_content(first, second)
                || second.at.saturating_sub(first.at) >= bounds.duplicate_window
            {
                continue;
            }
            let from = first
                .emitted_at
                .saturating_sub(bounds.notify_defer + bounds.peer_timeout);
            if unhealthy(spans, from, second.at, bounds.recovery).is_some() {
                continue;
            }
            out.push(Violation {
                at: second.at,
                property: "exactly once while healthy",
                detail: format!(
                    "{integration} got {group} [firing {} resolved {}] twice in a healthy window: \
                     notification #{} from node-{} at {}, notification #{} from node-{} at {}",
                    workload::names_of(&first.firing),
                    workload::names_of(&first.resolved),
                    first.notification,
                    first.node,
                    super::trace::clock(first.at),
                    second.notification,
                    second.node,
                    super::trace::clock(second.at),
                ),
            });
        }
    }
}

/// A delivery a node completed: its notification-log entry was reported durable.
#[derive(Debug, Clone)]
pub struct Completion {
    pub node: usize,
    pub notification: u64,
    pub at: Ms,
}

/// Durable acknowledgements (DESIGN §5.5): once a node's entry for a delivery is durable, that
/// node never sends the same content to that integration for that group again within the
/// repeat interval (crashes and restarts included), unless other content reached it between.
pub fn durable_nflog(
    records: &[Record],
    completions: &[Completion],
    bounds: &Bounds,
    out: &mut Vec<Violation>,
) {
    let pairs = by_pair(records);
    let mut completed: BTreeMap<u64, &Completion> = BTreeMap::new();
    for completion in completions {
        completed.insert(completion.notification, completion);
    }
    let slack = 2 * (2 * MAX_SKEW + MAX_CLOCK_JUMP);
    for ((group, integration), list) in pairs {
        for (index, first) in list.iter().enumerate() {
            let Some(completion) = completed.get(&first.notification) else {
                continue;
            };
            if list[..index]
                .iter()
                .rev()
                .take_while(|r| r.notification == first.notification)
                .count()
                > 0
            {
                continue; // not the first record of this notification
            }
            for second in &list[index + 1..] {
                if second.notification == first.notification {
                    continue;
                }
                if !same_content(first, second) {
                    break;
                }
                if second.at.saturating_sub(completion.at) >= bounds.duplicate_window {
                    break;
                }
                let raced = list.iter().any(|other| {
                    !same_content(other, first)
                        && other.at + slack >= completion.at
                        && other.at <= second.at
                });
                if second.node == completion.node && second.emitted_at > completion.at && !raced {
                    out.push(Violation {
                        at: second.at,
                        property: "durable notification log",
                        detail: format!(
                            "node-{} completed notification #{} of {group} to {integration} \
                             [firing {}] at {} (entry durable), then sent the same again as #{} \
                             at {}",
                            completion.node,
                            completion.notification,
                            workload::names_of(&first.firing),
                            super::trace::clock(completion.at),
                            second.notification,
                            super::trace::clock(second.at)
                        ),
                    });
                    break;
                }
            }
        }
    }
}

/// At least once: an alert firing, neither silenced nor inhibited, once faults have stopped is
/// notified as firing to each integration of its route within the bound, unless the receiver
/// already knows it fires.
pub fn at_least_once(
    records: &[Record],
    alerts: &[WorldAlert],
    silences: &[WorldSilence],
    healing_from: Ms,
    end: Ms,
    bounds: &Bounds,
    out: &mut Vec<Violation>,
) {
    let margin = 2 * MAX_SKEW + MAX_CLOCK_JUMP;
    let page_spells: Vec<(&str, Ms, Ms)> = alerts
        .iter()
        .filter(|alert| alert.spec.is_page)
        .flat_map(|alert| {
            let open = alert.firing_since.map(|since| (since, end));
            alert
                .spells
                .iter()
                .copied()
                .chain(open)
                .map(|(a, b)| (alert.spec.labels.value("alertname"), a, b))
        })
        .collect();
    for alert in alerts {
        let open = alert.firing_since.map(|since| (since, end));
        for (since, until) in alert.spells.iter().copied().chain(open) {
            let from = since.max(healing_from);
            let deadline = from + bounds.at_least_once;
            if deadline > until || deadline > end {
                continue;
            }
            let window = (since.saturating_sub(margin), deadline + margin);
            let silenced = silences.iter().any(|silence| {
                silence.matches(&alert.spec)
                    && silence.starts_at < window.1
                    && silence.ends_at > window.0
            });
            let inhibited = alert.spec.inhibited_by_page
                && page_spells.iter().any(|(name, a, b)| {
                    *name == alert.spec.labels.value("alertname") && *a < window.1 && *b > window.0
                });
            if silenced || inhibited {
                continue;
            }
            for integration in alert.spec.integrations {
                let mentions: Vec<&Record> = records
                    .iter()
                    .filter(|r| {
                        r.integration == *integration
                            && (r.firing.contains(&alert.spec.name)
                                || r.resolved.contains(&alert.spec.name))
                    })
                    .collect();
                let known_firing = mentions
                    .iter()
                    .filter(|r| r.at < since)
                    .max_by_key(|r| r.at)
                    .is_some_and(|r| r.firing.contains(&alert.spec.name));
                let notified = mentions.iter().any(|r| {
                    r.at >= since && r.at <= deadline && r.firing.contains(&alert.spec.name)
                });
                if !known_firing && !notified {
                    out.push(Violation {
                        at: deadline,
                        property: "at least once",
                        detail: format!(
                            "{} firing since {} (checked from {}) was not notified to \
                             {integration} by {}",
                            alert.spec.name,
                            super::trace::clock(since),
                            super::trace::clock(from),
                            super::trace::clock(deadline)
                        ),
                    });
                }
            }
        }
    }
}
