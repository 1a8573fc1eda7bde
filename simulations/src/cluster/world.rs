//! The world: a priority queue of events in virtual time (no steps), the nodes, the network,
//! the receivers, the workload and the fault schedule, all driven by one seed. The message flow
//! mirrors `src/node/cluster.rs` (deltas pushed to live peers, summaries answered, anti-entropy
//! on digest mismatch, settling) and `src/node/alerting.rs` (durability, claims, retries).

use super::disk::Disk;
use super::invariants::{
    self, Bounds, Completion, DIGEST_INTERVAL, FAILURE_TIMEOUT, FaultSpan, MAX_CLOCK_JUMP,
    MAX_SKEW, TICK, Violation,
};
use super::network::Network;
use super::node::{HeldSilence, InFlight, Life, SimNode};
use super::receiver::{Mode, Outcome, Receiver, Record};
use super::trace::{Trace, clock};
use super::workload::{
    self, AlertSpec, REFRESH, REFRESH_END, SILENCE_TARGETS, STEP, Sending, WorldAlert, WorldSilence,
};
use super::{Ms, Report, Settings};
use crate::rng::SimRng;
use jiff::{SignedDuration, Timestamp};
use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};
use tocsin::alerting::faults::Faults;
use tocsin::alerting::nflog::Entry;
use tocsin::alerting::ownership::ClusterView;
use tocsin::alerting::pipeline::{Effect, Notification};
use tocsin::alerting::replica::{self, Change};
use tocsin::alerting::silences::{SilenceSpec, codec};
use tocsin::alerting::{Alert, PostedAlert};
use tocsin::config::alertmanager::{AlertmanagerConfig, Matcher, parse_alertmanager_file};
use tocsin_mesh::{DEFAULT_DELTA_BUDGET, KeyRange, Message, StateKind};
use tocsin_receivers::retry::RetryPolicy;

/// The shell's garbage collection period (node/alerting.rs).
const GC_INTERVAL: Ms = 30_000;
/// A delivery gets at least this long, whatever its deadline (node/alerting.rs).
const MIN_DELIVERY_TIME: Ms = 10_000;
/// Events one run may process at most: a runaway loop is reported, not hung on.
const MAX_EVENTS: u64 = 20_000_000;

#[derive(Debug, Clone)]
pub enum Payload {
    /// The failure detector's heartbeat with the sender's advertised digests (chitchat keys).
    Heartbeat(Option<[u64; 4]>),
    /// An encoded `tocsin_mesh::Message`.
    Mesh(Vec<u8>),
}

#[derive(Debug, Clone)]
pub enum Event {
    Tick {
        node: usize,
        incarnation: u64,
    },
    Wake {
        node: usize,
        incarnation: u64,
    },
    Arrive {
        to: usize,
        from: usize,
        payload: Payload,
    },
    Fsync {
        node: usize,
        incarnation: u64,
    },
    Attempt {
        node: usize,
        incarnation: u64,
        delivery: u64,
    },
    Response {
        node: usize,
        incarnation: u64,
        delivery: u64,
        outcome: Outcome,
    },
    Renew {
        node: usize,
        incarnation: u64,
        delivery: u64,
    },
    Workload,
    Fault,
    Restore(Restore),
    Heal,
    Check,
}

#[derive(Debug, Clone)]
pub enum Restore {
    Restart(usize),
    Resume(usize),
    HealPartition,
    EndLoss,
    EndSpike,
    Receiver(usize),
    /// NTP steps a jumped clock back by the jump.
    Clock(usize, i64),
}

impl Event {
    /// The node the event happens on, if it is one node's work (stalled while it is paused).
    fn node(&self) -> Option<usize> {
        match self {
            Event::Tick { node, .. }
            | Event::Wake { node, .. }
            | Event::Fsync { node, .. }
            | Event::Attempt { node, .. }
            | Event::Response { node, .. }
            | Event::Renew { node, .. } => Some(*node),
            Event::Arrive { to, .. } => Some(*to),
            _ => None,
        }
    }

    fn incarnation(&self) -> Option<u64> {
        match self {
            Event::Tick { incarnation, .. }
            | Event::Wake { incarnation, .. }
            | Event::Fsync { incarnation, .. }
            | Event::Attempt { incarnation, .. }
            | Event::Response { incarnation, .. }
            | Event::Renew { incarnation, .. } => Some(*incarnation),
            _ => None,
        }
    }
}

struct Scheduled {
    at: Ms,
    seq: u64,
    event: Event,
}

impl PartialEq for Scheduled {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Scheduled {}
impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Scheduled {
    /// Reversed: the heap pops the earliest event, ties in scheduling order.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

/// Which BUGGIFY points are armed this run (each with a per-seed coin, as FoundationDB does).
#[derive(Debug, Clone, Copy)]
struct Buggify {
    crash_before_nflog: bool,
    slow_fsync: bool,
    drop_claims: bool,
    duplicate_deltas: bool,
}

/// A delivery whose entry awaits the group commit.
struct AwaitingFsync {
    entry: Entry,
}

pub struct World {
    seed: u64,
    settings: Settings,
    rng: SimRng,
    start: Timestamp,
    now: Ms,
    seq: u64,
    queue: BinaryHeap<Scheduled>,
    config: AlertmanagerConfig,
    faults: Faults,
    bounds: Bounds,
    peer_timeout: Ms,
    nodes: Vec<SimNode>,
    network: Network,
    receivers: Vec<Receiver>,
    records: Vec<Record>,
    completions: Vec<Completion>,
    awaiting: BTreeMap<(usize, u64), AwaitingFsync>,
    alerts: Vec<WorldAlert>,
    silences: Vec<WorldSilence>,
    spans: Vec<FaultSpan>,
    trace: Trace,
    violations: Vec<Violation>,
    next_delivery: u64,
    healing_at: Ms,
    end_at: Ms,
    healing: bool,
    converged_at: Option<Ms>,
    last_divergence: String,
    buggify: Buggify,
    events: u64,
    notifications: u64,
    malformed: u64,
}

impl World {
    pub fn new(seed: u64, settings: &Settings) -> Result<World, String> {
        let mut rng = SimRng::new(seed ^ 0x005e_edc1_u64.rotate_left(32));
        let config = parse_alertmanager_file(workload::CONFIG, "simulation.yml")
            .map_err(|error| error.to_string())?;
        let nodes = settings
            .nodes
            .unwrap_or_else(|| rng.between(3, 5) as usize)
            .max(1);
        let spare = settings.faults && nodes < 5 && rng.chance(1, 3);
        let peer_timeout = settings.peer_timeout;
        let total = nodes + usize::from(spare);
        let bounds = Bounds::new(total, peer_timeout);
        let faults = Faults {
            skip_ownership_wait: settings.bugs.skip_ownership_wait,
            merge_silences_by_arrival: settings.bugs.merge_silences_by_arrival,
        };
        let mut sim_nodes = Vec::with_capacity(total);
        for id in 0..total {
            let skew = rng.between(0, 2 * MAX_SKEW) as i64 - MAX_SKEW as i64;
            sim_nodes.push(SimNode::new(id, skew));
        }
        let network = Network::new(&mut rng);
        let receivers = workload::INTEGRATIONS
            .iter()
            .map(|integration| Receiver {
                integration: integration.to_string(),
                mode: Mode::Healthy,
            })
            .collect();
        let all_nodes_share = rng.between(0, 100);
        let alerts = workload::alerts()
            .into_iter()
            .map(|spec| WorldAlert {
                spec,
                sending: if rng.below(100) < all_nodes_share {
                    Sending::AllNodes
                } else {
                    Sending::OneNode
                },
                firing_since: None,
                phase: rng.below(REFRESH / STEP) * STEP,
                spells: Vec::new(),
            })
            .collect();
        let buggify = Buggify {
            crash_before_nflog: settings.faults && rng.chance(1, 2),
            slow_fsync: settings.faults && rng.chance(1, 2),
            drop_claims: settings.faults && rng.chance(1, 2),
            duplicate_deltas: settings.faults && rng.chance(1, 2),
        };
        let start = Timestamp::from_second(1_700_000_000).unwrap_or(Timestamp::UNIX_EPOCH);
        let mut world = World {
            seed,
            settings: settings.clone(),
            rng,
            start,
            now: 0,
            seq: 0,
            queue: BinaryHeap::new(),
            config,
            faults,
            bounds,
            peer_timeout,
            nodes: sim_nodes,
            network,
            receivers,
            records: Vec::new(),
            completions: Vec::new(),
            awaiting: BTreeMap::new(),
            alerts,
            silences: Vec::new(),
            spans: vec![FaultSpan {
                kind: "startup".into(),
                start: 0,
                end: 0,
            }],
            trace: Trace::new(settings.keep_trace),
            violations: Vec::new(),
            next_delivery: 1,
            healing_at: settings.chaos,
            end_at: settings.chaos + settings.healing,
            healing: false,
            converged_at: None,
            last_divergence: String::new(),
            buggify,
            events: 0,
            notifications: 0,
            malformed: 0,
        };
        let line = format!(
            "seed {seed}: {nodes} nodes{}, peer_timeout {peer_timeout} ms, latency {}..{} ms, \
             chaos {} s then healing {} s, buggify {:?}, bugs {:?}",
            if spare { " + 1 spare" } else { "" },
            world.network.base.0,
            world.network.base.1,
            settings.chaos / 1000,
            settings.healing / 1000,
            buggify,
            settings.bugs,
        );
        world.log(line);
        for id in 0..nodes {
            world.boot(id);
        }
        world.schedule(STEP, Event::Workload);
        if settings.faults {
            let first = world.rng.between(5_000, 30_000);
            world.schedule(first, Event::Fault);
        }
        world.schedule(world.healing_at, Event::Heal);
        Ok(world)
    }

    fn log(&mut self, line: String) {
        self.trace.record(self.now, line);
    }

    fn schedule(&mut self, after: Ms, event: Event) {
        self.seq += 1;
        self.queue.push(Scheduled {
            at: self.now + after,
            seq: self.seq,
            event,
        });
    }

    fn span(&mut self, kind: String, duration: Ms) {
        self.spans.push(FaultSpan {
            kind,
            start: self.now,
            end: self.now + duration,
        });
    }

    fn wall(&self, node: usize) -> Timestamp {
        self.nodes[node].wall(self.start, self.now)
    }

    fn chaos(&self) -> bool {
        self.settings.faults && !self.healing
    }

    pub fn run(mut self) -> Report {
        let mut wall_ms = 0;
        while let Some(Scheduled { at, event, .. }) = self.queue.pop() {
            if at > self.end_at {
                break;
            }
            self.now = at;
            self.events += 1;
            if self.events > MAX_EVENTS {
                self.violations.push(Violation {
                    at,
                    property: "bounded work",
                    detail: format!("more than {MAX_EVENTS} events: a wake-up loop?"),
                });
                break;
            }
            if let Some(node) = event.node() {
                let state = &self.nodes[node];
                if !state.is_running() {
                    continue;
                }
                if event.incarnation().is_some_and(|i| i != state.incarnation) {
                    continue;
                }
                if state.paused {
                    self.nodes[node].stalled.push(event);
                    continue;
                }
            }
            self.handle(event);
            wall_ms = at;
        }
        self.now = self.end_at.max(wall_ms);
        self.finish()
    }

    fn handle(&mut self, event: Event) {
        match event {
            Event::Tick { node, .. } => self.tick(node),
            Event::Wake { node, .. } => {
                if self.nodes[node].wake_at == Some(self.now) {
                    self.nodes[node].wake_at = None;
                    self.poll(node);
                }
            }
            Event::Arrive { to, from, payload } => self.arrive(to, from, payload),
            Event::Fsync { node, .. } => self.fsync(node),
            Event::Attempt { node, delivery, .. } => self.attempt(node, delivery),
            Event::Response {
                node,
                delivery,
                outcome,
                ..
            } => self.response(node, delivery, outcome),
            Event::Renew { node, delivery, .. } => self.renew(node, delivery),
            Event::Workload => self.workload(),
            Event::Fault => self.fault(),
            Event::Restore(restore) => self.restore(restore),
            Event::Heal => self.heal(),
            Event::Check => self.check_convergence(),
        }
    }

    // -----------------------------------------------------------------------------------------
    // Nodes: boot, membership tick, messages

    fn boot(&mut self, node: usize) {
        let (silences, nflog) =
            self.nodes[node].boot(&self.config, self.faults, self.start, self.now);
        let name = self.nodes[node].name.clone();
        self.log(format!(
            "{name} boots (incarnation {}): restored {silences} silences, {nflog} nflog entries; settling",
            self.nodes[node].incarnation
        ));
        self.refresh_held_silences(node);
        let incarnation = self.nodes[node].incarnation;
        let phase = self.rng.below(TICK);
        self.schedule(phase, Event::Tick { node, incarnation });
    }

    fn crash(&mut self, node: usize, why: &str) {
        let lost = self.nodes[node].disk.nflog_pending.len()
            + self.nodes[node].disk.nflog_page_cache.len();
        self.nodes[node].crash();
        let keys: Vec<(usize, u64)> = self
            .awaiting
            .range((node, 0)..=(node, u64::MAX))
            .map(|(key, _)| *key)
            .collect();
        for key in keys {
            self.awaiting.remove(&key);
        }
        let name = self.nodes[node].name.clone();
        self.log(format!(
            "{name} crashes ({why}); {lost} unsynced nflog records lost"
        ));
    }

    /// The names of the peers `node` currently sees live (its failure detector).
    fn live_peers(&self, node: usize) -> Vec<usize> {
        self.nodes[node]
            .last_heard
            .iter()
            .filter(|(_, heard)| self.now.saturating_sub(**heard) <= FAILURE_TIMEOUT)
            .map(|(peer, _)| *peer)
            .collect()
    }

    /// cluster.rs's tick: membership, cluster view, digests, anti-entropy, settling; plus the
    /// heartbeat that carries this node's digests to the others.
    fn tick(&mut self, node: usize) {
        let now = self.now;
        let mono = self.nodes[node].monotonic(now);
        let peers_ids = self.live_peers(node);
        let peers: BTreeSet<String> = peers_ids
            .iter()
            .map(|p| self.nodes[*p].name.clone())
            .collect();
        let me = self.nodes[node].name.clone();
        let known = self.nodes[node].known.clone();
        let joined: Vec<String> = peers.difference(&known).cloned().collect();
        let left: Vec<String> = known.difference(&peers).cloned().collect();
        for peer in &joined {
            self.nodes[node].anti_entropy.peer_joined(peer, mono);
        }
        for peer in &left {
            self.nodes[node].anti_entropy.peer_left(peer);
        }
        if peers != known {
            let mut live: Vec<String> = peers.iter().cloned().collect();
            live.push(me.clone());
            live.sort();
            self.log(format!(
                "{me} sees live [{}] (joined [{}], left [{}])",
                live.join(","),
                joined.join(","),
                left.join(",")
            ));
            let view = ClusterView {
                me: me.clone(),
                live,
                peer_timeout: SignedDuration::from_millis(self.peer_timeout as i64),
            };
            self.nodes[node].known = peers.clone();
            if let Some(pipeline) = &mut self.nodes[node].pipeline {
                pipeline.set_cluster_view(view);
            }
        }

        let digests_due = self.nodes[node]
            .last_digests_at
            .is_none_or(|at| now.saturating_sub(at) >= DIGEST_INTERVAL);
        if digests_due {
            self.nodes[node].last_digests_at = Some(now);
            let mut digests = [0u64; 4];
            for kind in StateKind::ALL {
                digests[SimNode::kind_index(kind)] =
                    tocsin_mesh::digest(self.nodes[node].versions(kind));
            }
            self.nodes[node].local_digests = digests;
            let state = &mut self.nodes[node];
            for peer in &peers_ids {
                let remote = state.peer_digests.get(peer).copied();
                let name = format!("node-{peer}");
                for kind in StateKind::ALL {
                    let index = SimNode::kind_index(kind);
                    state.anti_entropy.observe(
                        &name,
                        kind,
                        remote.map(|digests| digests[index]),
                        digests[index],
                        mono,
                    );
                }
            }
        }

        let exchanges = self.nodes[node].anti_entropy.poll(mono);
        for (peer, kind) in exchanges {
            let Some(peer_id) = self.id_of(&peer) else {
                continue;
            };
            let local = self.nodes[node].versions(kind);
            let messages = tocsin_mesh::summaries(kind, true, &local, KeyRange::FULL);
            self.log(format!("{me} starts an exchange of {kind} with {peer}"));
            self.send(node, Some(peer_id), messages);
        }

        if !self.nodes[node].settled {
            let peer_list: Vec<String> = peers.iter().cloned().collect();
            let synced =
                !peer_list.is_empty() && self.nodes[node].anti_entropy.is_settled(&peer_list);
            let alone = self.nodes.len() <= 1;
            let timed_out = mono.as_millis() >= u128::from(self.bounds.settle_timeout);
            if synced || alone || timed_out {
                self.nodes[node].settled = true;
                self.log(format!(
                    "{me} settled ({} peers, synced {synced}, after {} ms); notifications enabled",
                    peer_list.len(),
                    mono.as_millis()
                ));
                self.schedule_wake(node);
            }
        }

        // Heartbeat to every member of the roster (chitchat gossip).
        let digests = self.nodes[node]
            .last_digests_at
            .map(|_| self.nodes[node].local_digests);
        for peer in 0..self.nodes.len() {
            if peer == node || matches!(self.nodes[peer].life, Life::NotStarted | Life::Left) {
                continue;
            }
            for latency in self.network.transmit(node, peer, &mut self.rng) {
                self.schedule(
                    latency,
                    Event::Arrive {
                        to: peer,
                        from: node,
                        payload: Payload::Heartbeat(digests),
                    },
                );
            }
        }
        let incarnation = self.nodes[node].incarnation;
        self.schedule(TICK, Event::Tick { node, incarnation });
    }

    fn id_of(&self, name: &str) -> Option<usize> {
        name.strip_prefix("node-")?.parse().ok()
    }

    /// Sends messages to one peer or to every live peer, as encoded bytes.
    fn send(&mut self, from: usize, to: Option<usize>, messages: Vec<Message>) {
        let peers = match to {
            Some(peer) => vec![peer],
            None => self.live_peers(from),
        };
        if peers.is_empty() {
            return;
        }
        for message in messages {
            let bytes = match tocsin_mesh::encode(&message) {
                Ok(bytes) => bytes,
                Err(error) => {
                    self.log(format!("node-{from} cannot encode a message: {error}"));
                    continue;
                }
            };
            let (is_delta, kind) = match &message {
                Message::Delta(delta) => (true, delta.kind),
                Message::Summary(summary) => (false, summary.kind),
            };
            for &peer in &peers {
                if self.chaos()
                    && self.buggify.drop_claims
                    && is_delta
                    && kind == StateKind::Claims
                    && self.rng.chance(1, 10)
                {
                    self.log(format!(
                        "BUGGIFY drops a claim from node-{from} to node-{peer}"
                    ));
                    self.span("buggify: dropped claim".into(), 0);
                    continue;
                }
                let mut arrivals = self.network.transmit(from, peer, &mut self.rng);
                if self.chaos()
                    && self.buggify.duplicate_deltas
                    && is_delta
                    && self.rng.chance(1, 20)
                {
                    arrivals.push(self.rng.between(1, 2_000));
                }
                for latency in arrivals {
                    self.schedule(
                        latency,
                        Event::Arrive {
                            to: peer,
                            from,
                            payload: Payload::Mesh(bytes.clone()),
                        },
                    );
                }
            }
        }
    }

    /// Pushes a local change to the live peers (node/alerting.rs `replicate` + cluster.rs
    /// `send_changes`).
    fn replicate(&mut self, node: usize, change: Change) {
        let (kind, records, errors) = change.encode();
        for error in errors {
            self.log(format!("node-{node} cannot encode a change: {error}"));
        }
        let batches = tocsin_mesh::split_into_deltas(kind, records, DEFAULT_DELTA_BUDGET);
        self.send(node, None, batches.messages);
    }

    fn arrive(&mut self, to: usize, from: usize, payload: Payload) {
        let bytes = match payload {
            Payload::Heartbeat(digests) => {
                let state = &mut self.nodes[to];
                state.last_heard.insert(from, self.now);
                if let Some(digests) = digests {
                    state.peer_digests.insert(from, digests);
                }
                return;
            }
            Payload::Mesh(bytes) => bytes,
        };
        let message = match tocsin_mesh::decode(&bytes) {
            Ok(message) => message,
            Err(error) => {
                self.malformed += 1;
                self.log(format!(
                    "node-{to} drops a malformed message from node-{from}: {error}"
                ));
                return;
            }
        };
        let now = self.wall(to);
        match message {
            Message::Delta(delta) => {
                let Some(pipeline) = &mut self.nodes[to].pipeline else {
                    return;
                };
                let merged = replica::merge(pipeline, delta.kind, &delta.records, now);
                if merged.changed == 0 && merged.refused == 0 {
                    return;
                }
                self.nodes[to].touch(delta.kind);
                self.log(format!(
                    "node-{to} merges {} {} from node-{from}: {} changed, {} refused",
                    delta.records.len(),
                    delta.kind,
                    merged.changed,
                    merged.refused
                ));
                let silences: Vec<Vec<u8>> = merged
                    .silences
                    .iter()
                    .filter_map(|silence| codec::encode_silence(silence).ok())
                    .collect();
                self.nodes[to].disk.persist_silences(silences);
                for entry in &merged.nflog {
                    if let Ok(record) = entry.encode() {
                        self.write_nflog(to, record, None);
                    }
                }
                if delta.kind == StateKind::Silences {
                    self.refresh_held_silences(to);
                }
                if merged.changed > 0 {
                    self.schedule_wake(to);
                }
            }
            Message::Summary(summary) => {
                let local = self.nodes[to].versions(summary.kind);
                let Some(pipeline) = &self.nodes[to].pipeline else {
                    return;
                };
                let answer = tocsin_mesh::answer_summary(&summary, &local);
                let records = if answer.send_keys.is_empty() {
                    Vec::new()
                } else {
                    replica::records_with_keys(pipeline, summary.kind, &answer.send_keys)
                };
                if !records.is_empty() {
                    let batches =
                        tocsin_mesh::split_into_deltas(summary.kind, records, DEFAULT_DELTA_BUDGET);
                    self.send(to, Some(from), batches.messages);
                }
                if !answer.reply_summaries.is_empty() {
                    self.send(to, Some(from), answer.reply_summaries);
                }
                if answer.completes_exchange {
                    let mono = self.nodes[to].monotonic(self.now);
                    let peer = self.nodes[from].name.clone();
                    self.nodes[to]
                        .anti_entropy
                        .exchange_completed(&peer, summary.kind, mono);
                    self.log(format!(
                        "node-{to} completes an exchange of {} with {peer} ({} records sent)",
                        summary.kind,
                        answer.send_keys.len()
                    ));
                }
            }
        }
    }

    // -----------------------------------------------------------------------------------------
    // The alerting shell: poll, deliver, persist

    fn schedule_wake(&mut self, node: usize) {
        let state = &self.nodes[node];
        if !state.is_running() || !state.settled {
            return;
        }
        let Some(next) = state.pipeline.as_ref().and_then(|p| p.next_wakeup()) else {
            return;
        };
        let at = state.global(self.start, next).max(self.now);
        if state.wake_at.is_some_and(|scheduled| scheduled <= at) {
            return;
        }
        let incarnation = state.incarnation;
        self.nodes[node].wake_at = Some(at);
        self.seq += 1;
        self.queue.push(Scheduled {
            at,
            seq: self.seq,
            event: Event::Wake { node, incarnation },
        });
    }

    fn poll(&mut self, node: usize) {
        let now = self.wall(node);
        let effects = match &mut self.nodes[node].pipeline {
            Some(pipeline) => pipeline.poll(now),
            None => return,
        };
        for effect in &effects {
            match effect {
                Effect::Notify(_) => {}
                Effect::PersistNflog(_) => self.nodes[node].touch(StateKind::Nflog),
                Effect::Claim(_) => self.nodes[node].touch(StateKind::Claims),
            }
        }
        for effect in effects {
            match effect {
                Effect::Notify(notification) => self.start_delivery(node, notification),
                Effect::PersistNflog(entry) => {
                    if let Ok(record) = entry.encode() {
                        self.write_nflog(node, record, None);
                    }
                    self.replicate(node, Change::Nflog(entry));
                }
                Effect::Claim(claim) => {
                    self.log(format!(
                        "node-{node} claims {} → {} until {}",
                        claim.group_key, claim.receiver, claim.expires_at
                    ));
                    self.replicate(node, Change::Claim(claim));
                }
            }
        }
        if self.now.saturating_sub(self.nodes[node].last_gc) >= GC_INTERVAL {
            self.nodes[node].last_gc = self.now;
            if let Some(pipeline) = &mut self.nodes[node].pipeline {
                pipeline.gc(now);
            }
            self.nodes[node].touch_all();
        }
        self.schedule_wake(node);
    }

    fn start_delivery(&mut self, node: usize, notification: Notification) {
        let id = self.next_delivery;
        self.next_delivery += 1;
        self.notifications += 1;
        self.check_silences_hold(node, id, &notification);
        let deadline = self.nodes[node]
            .global(self.start, notification.deadline)
            .max(self.now + MIN_DELIVERY_TIME);
        let firing: Vec<String> = notification
            .firing
            .iter()
            .map(|a| workload::describe(&a.labels))
            .collect();
        let resolved: Vec<String> = notification
            .resolved
            .iter()
            .map(|a| workload::describe(&a.labels))
            .collect();
        self.log(format!(
            "node-{node} notifies #{id} {} → {} ({}): firing [{}] resolved [{}], deadline {}",
            notification.group.group_key,
            notification.integration,
            notification.reason.as_str(),
            firing.join(","),
            resolved.join(","),
            clock(deadline)
        ));
        let claimed = notification.claimed_at().is_some();
        self.nodes[node].deliveries.insert(
            id,
            InFlight {
                id,
                notification,
                emitted_at: self.now,
                attempts: 0,
                deadline,
            },
        );
        let incarnation = self.nodes[node].incarnation;
        self.schedule(
            0,
            Event::Attempt {
                node,
                incarnation,
                delivery: id,
            },
        );
        if claimed && self.peer_timeout >= 2 {
            self.schedule(
                self.peer_timeout / 2,
                Event::Renew {
                    node,
                    incarnation,
                    delivery: id,
                },
            );
        }
    }

    fn receiver_of(&self, integration: &str) -> Option<usize> {
        self.receivers
            .iter()
            .position(|r| r.integration == integration)
    }

    fn attempt(&mut self, node: usize, delivery: u64) {
        let Some(flight) = self.nodes[node].deliveries.get_mut(&delivery) else {
            return;
        };
        flight.attempts += 1;
        let integration = flight.notification.integration.to_string();
        let deadline = flight.deadline;
        let Some(index) = self.receiver_of(&integration) else {
            return;
        };
        let (mut outcome, took, accepted) = self.receivers[index].attempt(&mut self.rng);
        let left = deadline.saturating_sub(self.now).max(1);
        let took = if took > left {
            outcome = Outcome::Permanent; // the deadline cut the attempt short
            left
        } else {
            took
        };
        if let Some(accepted) =
            accepted.filter(|accepted| *accepted < took.max(1) || outcome == Outcome::Ok)
        {
            let Some(flight) = self.nodes[node].deliveries.get(&delivery) else {
                return;
            };
            let record = Record {
                at: self.now + accepted,
                node,
                notification: delivery,
                emitted_at: flight.emitted_at,
                group_key: flight.notification.group.group_key.clone(),
                integration: integration.clone(),
                firing: flight
                    .notification
                    .firing
                    .iter()
                    .map(|a| workload::describe(&a.labels))
                    .collect(),
                resolved: flight
                    .notification
                    .resolved
                    .iter()
                    .map(|a| workload::describe(&a.labels))
                    .collect(),
            };
            self.records.push(record);
            self.log(format!(
                "{integration} accepts #{delivery} from node-{node} at {}",
                clock(self.now + accepted)
            ));
        }
        let incarnation = self.nodes[node].incarnation;
        self.schedule(
            took,
            Event::Response {
                node,
                incarnation,
                delivery,
                outcome,
            },
        );
    }

    fn response(&mut self, node: usize, delivery: u64, outcome: Outcome) {
        self.nodes[node].touch(StateKind::Nflog);
        let Some(flight) = self.nodes[node].deliveries.get(&delivery) else {
            return;
        };
        let now = self.wall(node);
        match outcome {
            Outcome::Ok => {
                if self.chaos() && self.buggify.crash_before_nflog && self.rng.chance(1, 40) {
                    self.span(
                        format!("buggify: crash node-{node} between send and nflog"),
                        0,
                    );
                    self.crash(node, "BUGGIFY: between a send and its nflog record");
                    let after = self.rng.between(1_000, 20_000);
                    self.span(format!("crash node-{node}"), after);
                    self.schedule(after, Event::Restore(Restore::Restart(node)));
                    return;
                }
                let Some(flight) = self.nodes[node].deliveries.remove(&delivery) else {
                    return;
                };
                let Some(pipeline) = &mut self.nodes[node].pipeline else {
                    return;
                };
                match pipeline.delivered(&flight.notification, now) {
                    Ok(Some(entry)) => {
                        self.log(format!(
                            "node-{node} delivered #{delivery}; nflog entry written"
                        ));
                        if let Ok(record) = entry.encode() {
                            self.awaiting
                                .insert((node, delivery), AwaitingFsync { entry });
                            self.write_nflog(node, record, Some(delivery));
                        }
                    }
                    Ok(None) => self.log(format!(
                        "node-{node} delivered #{delivery}; a newer entry exists"
                    )),
                    Err(error) => self.log(format!(
                        "node-{node} delivered #{delivery}; log refused: {error}"
                    )),
                }
            }
            Outcome::Retryable | Outcome::TimedOut => {
                let attempts = flight.attempts;
                let deadline = flight.deadline;
                let draw = self.rng.unit();
                let mut jitter = move || draw;
                let delay = RetryPolicy::default()
                    .next_delay(attempts, None, &mut jitter)
                    .map(|delay| u64::try_from(delay.as_millis()).unwrap_or(u64::MAX));
                match delay {
                    Some(delay) if self.now + delay < deadline => {
                        let incarnation = self.nodes[node].incarnation;
                        self.schedule(
                            delay,
                            Event::Attempt {
                                node,
                                incarnation,
                                delivery,
                            },
                        );
                    }
                    _ => self.give_up(node, delivery, "deadline"),
                }
            }
            Outcome::Permanent => self.give_up(node, delivery, "permanent error or deadline"),
        }
    }

    fn give_up(&mut self, node: usize, delivery: u64, why: &str) {
        if let Some(flight) = self.nodes[node].deliveries.remove(&delivery)
            && let Some(pipeline) = &mut self.nodes[node].pipeline
        {
            pipeline.failed(&flight.notification);
        }
        self.log(format!("node-{node} gives up on #{delivery} ({why})"));
    }

    fn renew(&mut self, node: usize, delivery: u64) {
        let now = self.wall(node);
        let state = &mut self.nodes[node];
        state.touch(StateKind::Claims);
        let Some(flight) = state.deliveries.get(&delivery) else {
            return;
        };
        let renewed = state
            .pipeline
            .as_mut()
            .and_then(|pipeline| pipeline.renew_claim(&flight.notification, now));
        if let Some(claim) = renewed {
            self.log(format!(
                "node-{node} renews its claim for #{delivery} until {}",
                claim.expires_at
            ));
            self.replicate(node, Change::Claim(claim));
        }
        let incarnation = self.nodes[node].incarnation;
        self.schedule(
            self.peer_timeout / 2,
            Event::Renew {
                node,
                incarnation,
                delivery,
            },
        );
    }

    fn write_nflog(&mut self, node: usize, record: Vec<u8>, waiting: Option<u64>) {
        let disk: &mut Disk = &mut self.nodes[node].disk;
        disk.write_nflog(record, waiting);
        if !disk.fsync_scheduled {
            disk.fsync_scheduled = true;
            let mut after = self.rng.between(1, 5);
            if self.chaos() && self.buggify.slow_fsync && self.rng.chance(1, 20) {
                after = self.rng.between(200, 3_000);
                self.log(format!(
                    "BUGGIFY delays node-{node}'s nflog fsync by {after} ms"
                ));
                self.span(format!("buggify: slow fsync node-{node}"), after);
            }
            let incarnation = self.nodes[node].incarnation;
            self.schedule(after, Event::Fsync { node, incarnation });
        }
    }

    fn fsync(&mut self, node: usize) {
        let forget = self.settings.bugs.forget_nflog_fsync;
        let done = self.nodes[node].disk.fsync_nflog(forget);
        for delivery in done {
            if let Some(awaiting) = self.awaiting.remove(&(node, delivery)) {
                self.completions.push(Completion {
                    node,
                    notification: delivery,
                    at: self.now,
                });
                self.log(format!(
                    "node-{node}'s entry for #{delivery} is durable; replicating"
                ));
                self.replicate(node, Change::Nflog(awaiting.entry));
            }
        }
    }

    // -----------------------------------------------------------------------------------------
    // Silences as nodes hold them, for the checks

    /// Re-reads what a node holds of each silence; checks "no resurrection".
    fn refresh_held_silences(&mut self, node: usize) {
        let now = self.now;
        let Some(pipeline) = &self.nodes[node].pipeline else {
            return;
        };
        let mut held = BTreeMap::new();
        let mut resurrected = Vec::new();
        let mut newly_expired = Vec::new();
        for silence in pipeline.silences.iter() {
            let expiry = silence.ends_at <= silence.updated_at;
            let previous = self.nodes[node].held_silences.get(&silence.id);
            let since = match previous {
                Some(p) if p.starts_at == silence.starts_at && p.ends_at == silence.ends_at => {
                    p.since
                }
                _ => now,
            };
            if expiry {
                newly_expired.push(silence.id.clone());
            } else if self.nodes[node].held_expired.contains(&silence.id) {
                resurrected.push(format!(
                    "silence {} (ends {}, updated {})",
                    silence.id, silence.ends_at, silence.updated_at
                ));
            }
            held.insert(
                silence.id.clone(),
                HeldSilence {
                    starts_at: silence.starts_at,
                    ends_at: silence.ends_at,
                    expiry,
                    since,
                },
            );
        }
        let state = &mut self.nodes[node];
        state.held_silences = held;
        state.held_expired.extend(newly_expired);
        for detail in resurrected {
            self.violation(
                "no expired silence resurrects",
                format!("node-{node} held {detail} as expired, and now holds it unexpired"),
            );
        }
    }

    fn violation(&mut self, property: &'static str, detail: String) {
        self.log(format!("VIOLATION {property}: {detail}"));
        self.violations.push(Violation {
            at: self.now,
            property,
            detail,
        });
    }

    /// Silences hold: an alert matched by a silence that every running node has held, active,
    /// for longer than the bound is never notified.
    fn check_silences_hold(&mut self, node: usize, id: u64, notification: &Notification) {
        let bound = self.bounds.silence;
        let Some(since_limit) = self.now.checked_sub(bound) else {
            return;
        };
        let margin = SignedDuration::from_millis((2 * MAX_SKEW + MAX_CLOCK_JUMP) as i64);
        let running: Vec<usize> = (0..self.nodes.len())
            .filter(|n| self.nodes[*n].is_running())
            .collect();
        let mut found = Vec::new();
        for alert in &notification.firing {
            let Some(pipeline) = &self.nodes[node].pipeline else {
                return;
            };
            for silence in pipeline.silences.iter() {
                if !silence.matches(&alert.labels) {
                    continue;
                }
                let held_by_all = running.iter().all(|other| {
                    let state = &self.nodes[*other];
                    let Some(held) = state.held_silences.get(&silence.id) else {
                        return false;
                    };
                    let from = state.wall(self.start, since_limit);
                    let to = state.wall(self.start, self.now);
                    !held.expiry
                        && held.since <= since_limit
                        && held.starts_at.checked_add(margin).is_ok_and(|s| s <= from)
                        && to.checked_add(margin).is_ok_and(|t| t < held.ends_at)
                });
                if held_by_all {
                    found.push(format!(
                        "{} notified to {} as #{id} by node-{node} while every running node had \
                         held silence {} (active {}..{}) for over {} ms",
                        workload::describe(&alert.labels),
                        notification.integration,
                        silence.id,
                        silence.starts_at,
                        silence.ends_at,
                        bound
                    ));
                }
            }
        }
        for detail in found {
            self.violation("silences hold", detail);
        }
    }

    // -----------------------------------------------------------------------------------------
    // Workload

    fn workload(&mut self) {
        for index in 0..self.alerts.len() {
            let flips = self.rng.chance(1, 60);
            let firing = self.alerts[index].firing_since.is_some();
            if flips && firing {
                if let Some(since) = self.alerts[index].firing_since.take() {
                    self.alerts[index].spells.push((since, self.now));
                }
                self.post(
                    index,
                    true,
                    since_or_now(self.alerts[index].spells.last(), self.now),
                );
            } else if flips {
                self.alerts[index].firing_since = Some(self.now);
                self.post(index, false, self.now);
            } else if let Some(since) = self.alerts[index].firing_since {
                let slot = (self.now + self.alerts[index].phase) % REFRESH;
                if slot < STEP {
                    self.post(index, false, since);
                }
            }
        }
        if self.rng.chance(1, 30) {
            self.create_silence();
        }
        if self.rng.chance(1, 40) {
            self.update_silence();
        }
        if self.rng.chance(1, 50) {
            self.expire_silence(None);
        }
        self.schedule(STEP, Event::Workload);
    }

    fn running_nodes(&self) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|n| self.nodes[*n].is_running() && !self.nodes[*n].paused)
            .collect()
    }

    fn pick_node(&mut self) -> Option<usize> {
        let running = self.running_nodes();
        if running.is_empty() {
            return None;
        }
        Some(running[self.rng.below(running.len() as u64) as usize])
    }

    /// A sender posts an alert (firing, or resolved now) to one or every node.
    fn post(&mut self, index: usize, resolve: bool, since: Ms) {
        let spec: AlertSpec = self.alerts[index].spec.clone();
        let targets = match self.alerts[index].sending {
            Sending::AllNodes => self.running_nodes(),
            Sending::OneNode => self.pick_node().into_iter().collect(),
        };
        let sender_now = self
            .start
            .checked_add(SignedDuration::from_millis(self.now as i64))
            .unwrap_or(self.start);
        let starts_at = self
            .start
            .checked_add(SignedDuration::from_millis(since as i64))
            .unwrap_or(self.start);
        let ends_at = if resolve {
            sender_now
        } else {
            sender_now.checked_add(REFRESH_END).unwrap_or(sender_now)
        };
        for node in targets {
            let now = self.wall(node);
            let Some(pipeline) = &mut self.nodes[node].pipeline else {
                continue;
            };
            let posted = PostedAlert {
                labels: spec.labels.clone(),
                starts_at: Some(starts_at),
                ends_at: Some(ends_at),
                ..PostedAlert::default()
            };
            let Ok(alert) = Alert::from_posted(posted, now, pipeline.resolve_timeout()) else {
                continue;
            };
            match pipeline.receive(alert, now) {
                Ok(Some(changed)) => {
                    self.nodes[node].touch(StateKind::Alerts);
                    self.log(format!(
                        "node-{node} receives {} {}",
                        spec.name,
                        if resolve { "resolved" } else { "firing" }
                    ));
                    self.replicate(node, Change::Alerts(vec![changed]));
                    self.schedule_wake(node);
                }
                Ok(None) => {}
                Err(error) => self.log(format!("node-{node} refuses {}: {error}", spec.name)),
            }
        }
    }

    fn persist_and_replicate(
        &mut self,
        node: usize,
        persist: Vec<tocsin::alerting::silences::Silence>,
    ) {
        let records: Vec<Vec<u8>> = persist
            .iter()
            .filter_map(|silence| codec::encode_silence(silence).ok())
            .collect();
        self.nodes[node].disk.persist_silences(records);
        self.nodes[node].touch(StateKind::Silences);
        self.replicate(node, Change::Silences(persist));
        self.refresh_held_silences(node);
    }

    fn create_silence(&mut self) {
        let Some(node) = self.pick_node() else {
            return;
        };
        let alertname =
            SILENCE_TARGETS[self.rng.below(SILENCE_TARGETS.len() as u64) as usize].to_string();
        let instance = self
            .rng
            .chance(1, 2)
            .then(|| format!("host-{}", self.rng.below(3)));
        let delay = if self.rng.chance(1, 4) {
            self.rng.between(1_000, 60_000)
        } else {
            0
        };
        let length = self.rng.between(60_000, 20 * 60_000);
        let now = self.wall(node);
        let mut matchers = Vec::new();
        if let Ok(matcher) = Matcher::parse_one(&format!("alertname=\"{alertname}\"")) {
            matchers.push(matcher);
        }
        if let Some(instance) = &instance
            && let Ok(matcher) = Matcher::parse_one(&format!("instance=\"{instance}\""))
        {
            matchers.push(matcher);
        }
        let starts = now
            .checked_add(SignedDuration::from_millis(delay as i64))
            .unwrap_or(now);
        let ends = starts
            .checked_add(SignedDuration::from_millis(length as i64))
            .unwrap_or(starts);
        let spec = SilenceSpec {
            matchers,
            starts_at: starts,
            ends_at: ends,
            created_by: "simulation".into(),
            comment: format!("seed {}", self.seed),
        };
        let random = self.rng.bytes16();
        let Some(pipeline) = &mut self.nodes[node].pipeline else {
            return;
        };
        let Ok(change) = pipeline.silences.create(spec, now, random) else {
            return;
        };
        self.log(format!(
            "node-{node} creates silence {} for {alertname}{} from +{delay} ms for {length} ms",
            change.id,
            instance
                .as_ref()
                .map(|i| format!("/{i}"))
                .unwrap_or_default()
        ));
        self.silences.push(WorldSilence {
            id: change.id.clone(),
            alertname,
            instance,
            starts_at: self.now + delay,
            ends_at: self.now + delay + length,
        });
        self.persist_and_replicate(node, change.persist);
    }

    /// An operator edits a silence (on any node, which may hold an old copy of it).
    fn update_silence(&mut self) {
        if self.silences.is_empty() {
            return;
        }
        let Some(node) = self.pick_node() else {
            return;
        };
        let chosen = self.silences[self.rng.below(self.silences.len() as u64) as usize].clone();
        let now = self.wall(node);
        let Some(pipeline) = &mut self.nodes[node].pipeline else {
            return;
        };
        let Some(held) = pipeline.silences.get(&chosen.id).cloned() else {
            return;
        };
        let extend = self.rng.between(60_000, 10 * 60_000);
        let spec = SilenceSpec {
            matchers: held.matchers.clone(),
            starts_at: held.starts_at,
            ends_at: held
                .ends_at
                .checked_add(SignedDuration::from_millis(extend as i64))
                .unwrap_or(held.ends_at),
            created_by: held.created_by.clone(),
            comment: format!("{} (extended)", held.comment),
        };
        let random = self.rng.bytes16();
        let Ok(change) = pipeline.silences.update(&chosen.id, spec, now, random) else {
            return;
        };
        self.log(format!(
            "node-{node} updates silence {} by +{extend} ms (now {})",
            chosen.id, change.id
        ));
        self.silences.push(WorldSilence {
            id: change.id.clone(),
            ends_at: chosen.ends_at.max(self.now) + extend,
            ..chosen
        });
        let id = change.id.clone();
        self.persist_and_replicate(node, change.persist);
        // Sometimes the operator changes their mind at once: expiry right behind the update,
        // racing it through the network.
        if self.rng.chance(1, 3) {
            self.expire_silence(Some((node, id)));
        }
    }

    fn expire_silence(&mut self, which: Option<(usize, String)>) {
        let (node, id) = match which {
            Some(chosen) => chosen,
            None => {
                if self.silences.is_empty() {
                    return;
                }
                let Some(node) = self.pick_node() else {
                    return;
                };
                let index = self.rng.below(self.silences.len() as u64) as usize;
                (node, self.silences[index].id.clone())
            }
        };
        let now = self.wall(node);
        let Some(pipeline) = &mut self.nodes[node].pipeline else {
            return;
        };
        let Ok(Some(expired)) = pipeline.silences.expire(&id, now) else {
            return;
        };
        self.log(format!("node-{node} expires silence {id}"));
        self.persist_and_replicate(node, vec![expired]);
    }

    // -----------------------------------------------------------------------------------------
    // Faults (chaos phase) and healing

    fn fault(&mut self) {
        if !self.chaos() {
            return;
        }
        let roll = self.rng.below(100);
        let running = self.running_nodes();
        let pick = |rng: &mut SimRng, from: &[usize]| -> Option<usize> {
            (!from.is_empty()).then(|| from[rng.below(from.len() as u64) as usize])
        };
        match roll {
            0..=14 => {
                if let Some(node) = pick(&mut self.rng, &running) {
                    let after = self.rng.between(1_000, 60_000);
                    self.crash(node, "fault");
                    self.span(format!("crash node-{node}"), after);
                    self.schedule(after, Event::Restore(Restore::Restart(node)));
                }
            }
            15..=18 => {
                self.log("FAULT power loss: every node crashes".into());
                let mut longest = 0;
                for node in running {
                    self.crash(node, "power loss");
                    let after = self.rng.between(2_000, 30_000);
                    longest = longest.max(after);
                    self.schedule(after, Event::Restore(Restore::Restart(node)));
                }
                self.span("power loss".into(), longest);
            }
            19..=30 => {
                if let Some(node) = pick(&mut self.rng, &running) {
                    let after = self.rng.between(500, 10_000);
                    self.nodes[node].paused = true;
                    self.log(format!("FAULT node-{node} paused for {after} ms"));
                    self.span(format!("pause node-{node}"), after);
                    self.schedule(after, Event::Restore(Restore::Resume(node)));
                }
            }
            31..=54 => self.partition(),
            55..=62 => {
                let loss = self.rng.between(20, 500);
                let after = self.rng.between(5_000, 60_000);
                self.network.loss_per_mille = loss;
                self.log(format!("FAULT {loss}‰ message loss for {after} ms"));
                self.span(format!("loss {loss}‰"), after);
                self.schedule(after, Event::Restore(Restore::EndLoss));
            }
            63..=70 => {
                let low = self.rng.between(500, 3_000);
                let high = low + self.rng.between(0, 4_000);
                let after = self.rng.between(5_000, 30_000);
                self.network.spike_extra = (low, high);
                self.log(format!(
                    "FAULT latency spike +{low}..{high} ms for {after} ms"
                ));
                self.span("latency spike".into(), after);
                self.schedule(after, Event::Restore(Restore::EndSpike));
            }
            71..=77 => {
                if let Some(node) = pick(&mut self.rng, &running) {
                    let jump = self.rng.between(100, MAX_CLOCK_JUMP) as i64;
                    let jump = if self.rng.chance(1, 2) { jump } else { -jump };
                    let after = self.rng.between(1_000, 60_000);
                    self.nodes[node].clock_offset += jump;
                    self.log(format!(
                        "FAULT node-{node}'s clock jumps {jump} ms for {after} ms (then NTP steps it back)"
                    ));
                    self.span(format!("clock jump node-{node}"), after);
                    self.schedule(after, Event::Restore(Restore::Clock(node, jump)));
                }
            }
            78..=93 => {
                let index = self.rng.below(self.receivers.len() as u64) as usize;
                let mode = match self.rng.below(4) {
                    0 => Mode::Slow,
                    1 => Mode::Failing,
                    2 => Mode::Permanent,
                    _ => Mode::Timeout,
                };
                let after = self.rng.between(5_000, 180_000);
                self.receivers[index].mode = mode;
                let name = self.receivers[index].integration.clone();
                self.log(format!(
                    "FAULT receiver {name} {} for {after} ms",
                    mode.as_str()
                ));
                self.span(format!("receiver {name} {}", mode.as_str()), after);
                self.schedule(after, Event::Restore(Restore::Receiver(index)));
            }
            _ => self.membership_change(),
        }
        let gap = self.rng.between(5_000, 45_000);
        self.schedule(gap, Event::Fault);
    }

    fn partition(&mut self) {
        if self.network.is_partitioned() {
            return;
        }
        let members: Vec<usize> = (0..self.nodes.len())
            .filter(|n| matches!(self.nodes[*n].life, Life::Up | Life::Down))
            .collect();
        if members.len() < 2 {
            return;
        }
        let after = self.rng.between(2_000, 90_000);
        let kind = self.rng.below(4);
        let description = match kind {
            0 => {
                // One-way: one node's messages to another are lost, the reverse flows.
                let from = members[self.rng.below(members.len() as u64) as usize];
                let others: Vec<usize> = members.iter().copied().filter(|n| *n != from).collect();
                let to = others[self.rng.below(others.len() as u64) as usize];
                self.network.block(from, to);
                format!("one-way partition node-{from} ↛ node-{to}")
            }
            1 => {
                // The owner of some group, cut off from everyone.
                let owner = self.owner_of_some_group(&members);
                for other in members.iter().filter(|n| **n != owner) {
                    self.network.block(owner, *other);
                    self.network.block(*other, owner);
                }
                format!("owner node-{owner} isolated")
            }
            _ => {
                // A minority, cut off both ways.
                let size = self.rng.between(1, (members.len() as u64 / 2).max(1)) as usize;
                let mut shuffled = members.clone();
                for index in (1..shuffled.len()).rev() {
                    let other = self.rng.below(index as u64 + 1) as usize;
                    shuffled.swap(index, other);
                }
                let minority: Vec<usize> = shuffled[..size].to_vec();
                for a in &minority {
                    for b in members.iter().filter(|n| !minority.contains(n)) {
                        self.network.block(*a, *b);
                        self.network.block(*b, *a);
                    }
                }
                let names: Vec<String> = minority.iter().map(|n| format!("node-{n}")).collect();
                format!("minority [{}] partitioned", names.join(","))
            }
        };
        self.log(format!("FAULT {description} for {after} ms"));
        self.span(description, after);
        self.schedule(after, Event::Restore(Restore::HealPartition));
    }

    /// The rank-0 node of a group some running node holds, among `members`.
    fn owner_of_some_group(&mut self, members: &[usize]) -> usize {
        let mut keys: Vec<String> = Vec::new();
        for node in members {
            if let Some(pipeline) = &self.nodes[*node].pipeline {
                keys.extend(pipeline.groups().iter().map(|(id, _)| id.group_key.clone()));
                break;
            }
        }
        let names: Vec<String> = members
            .iter()
            .map(|n| self.nodes[*n].name.clone())
            .collect();
        let Some(key) =
            (!keys.is_empty()).then(|| keys[self.rng.below(keys.len() as u64) as usize].clone())
        else {
            return members[0];
        };
        let receiver = tocsin::alerting::nflog::ReceiverKey {
            name: "team".into(),
            integration: "webhook".into(),
            index: 0,
        };
        members
            .iter()
            .copied()
            .find(|node| {
                ClusterView {
                    me: self.nodes[*node].name.clone(),
                    live: names.clone(),
                    peer_timeout: SignedDuration::from_millis(self.peer_timeout as i64),
                }
                .rank(&key, &receiver)
                    == 0
            })
            .unwrap_or(members[0])
    }

    fn membership_change(&mut self) {
        let spare = (0..self.nodes.len()).find(|n| self.nodes[*n].life == Life::NotStarted);
        let members = (0..self.nodes.len())
            .filter(|n| self.nodes[*n].life == Life::Up)
            .count();
        if let Some(node) = spare {
            self.log(format!("FAULT node-{node} joins the cluster"));
            self.span(format!("join node-{node}"), 0);
            self.boot(node);
        } else if members > 3 {
            let running = self.running_nodes();
            if let Some(&node) = running.last() {
                self.crash(node, "leaves the cluster");
                self.nodes[node].life = Life::Left;
                self.span(format!("leave node-{node}"), 0);
            }
        }
    }

    fn restore(&mut self, restore: Restore) {
        match restore {
            Restore::Restart(node) => {
                if self.nodes[node].life == Life::Down {
                    self.boot(node);
                }
            }
            Restore::Resume(node) => self.resume(node),
            Restore::HealPartition => {
                if self.network.is_partitioned() {
                    self.network.heal_partitions();
                    self.log("partition healed".into());
                }
            }
            Restore::EndLoss => {
                self.network.loss_per_mille = 0;
                self.log("message loss ends".into());
            }
            Restore::EndSpike => {
                self.network.spike_extra = (0, 0);
                self.log("latency spike ends".into());
            }
            Restore::Clock(node, jump) => {
                self.nodes[node].clock_offset -= jump;
                self.log(format!("node-{node}'s clock is stepped back by {jump} ms"));
            }
            Restore::Receiver(index) => {
                if self.receivers[index].mode != Mode::Healthy {
                    self.receivers[index].mode = Mode::Healthy;
                    let name = self.receivers[index].integration.clone();
                    self.log(format!("receiver {name} healthy again"));
                }
            }
        }
    }

    fn resume(&mut self, node: usize) {
        if !self.nodes[node].paused {
            return;
        }
        self.nodes[node].paused = false;
        let stalled = std::mem::take(&mut self.nodes[node].stalled);
        self.log(format!(
            "node-{node} resumes with {} queued events",
            stalled.len()
        ));
        for event in stalled {
            if let Event::Wake { .. } = event {
                self.nodes[node].wake_at = None;
                continue;
            }
            self.schedule(0, event);
        }
        self.schedule_wake(node);
    }

    /// The healing phase: no new faults; every fault in progress ends now.
    fn heal(&mut self) {
        self.healing = true;
        self.log("HEALING: faults stop; every node up, network and receivers healthy".into());
        self.network.heal_partitions();
        self.network.loss_per_mille = 0;
        self.network.spike_extra = (0, 0);
        for receiver in &mut self.receivers {
            receiver.mode = Mode::Healthy;
        }
        for node in 0..self.nodes.len() {
            match self.nodes[node].life {
                Life::Down => self.boot(node),
                Life::Up => self.resume(node),
                Life::NotStarted | Life::Left => {}
            }
        }
        self.span("healing starts".into(), 0);
        let first = self.bounds.convergence;
        self.schedule(first, Event::Check);
    }

    /// Convergence: all running nodes hold identical silences and nflog versions.
    fn check_convergence(&mut self) {
        if self.converged_at.is_some() {
            return;
        }
        let running = self.running_nodes();
        let mut reference: Option<(
            usize,
            Vec<tocsin_mesh::RecordVersion>,
            Vec<tocsin_mesh::RecordVersion>,
        )> = None;
        let mut difference = None;
        for node in running {
            if self.nodes[node].pipeline.is_none() {
                continue;
            }
            let mut silences = self.nodes[node].versions(StateKind::Silences);
            let mut nflog = self.nodes[node].versions(StateKind::Nflog);
            // The cache must equal a fresh computation, or the simulator itself is wrong.
            for kind in StateKind::ALL {
                let mut cached = self.nodes[node].versions(kind);
                if let Some(pipeline) = &self.nodes[node].pipeline {
                    let mut fresh = replica::versions(pipeline, kind);
                    fresh.sort();
                    cached.sort();
                    if fresh != cached {
                        self.violations.push(Violation {
                            at: self.now,
                            property: "simulator consistency",
                            detail: format!("node-{node}'s cached {kind} versions are stale"),
                        });
                    }
                }
            }
            silences.sort();
            nflog.sort();
            match &reference {
                None => reference = Some((node, silences, nflog)),
                Some((first, s, n)) => {
                    if *s != silences || *n != nflog {
                        difference = Some(format!(
                            "node-{first} holds {} silences / {} nflog entries, node-{node} {} / {} \
                             (silences equal: {}, nflog equal: {})",
                            s.len(),
                            n.len(),
                            silences.len(),
                            nflog.len(),
                            *s == silences,
                            *n == nflog
                        ));
                        break;
                    }
                }
            }
        }
        match difference {
            None => {
                self.converged_at = Some(self.now);
                self.log("converged: every running node holds the same silences and nflog".into());
            }
            Some(difference) => {
                self.last_divergence = difference;
                if self.now < self.healing_at + self.bounds.convergence + 60_000 {
                    self.schedule(1_000, Event::Check);
                } else {
                    let detail = format!(
                        "not converged {} ms after faults stopped: {}",
                        self.now - self.healing_at,
                        self.last_divergence
                    );
                    self.violation("convergence", detail);
                }
            }
        }
    }

    fn finish(mut self) -> Report {
        let mut violations = std::mem::take(&mut self.violations);
        invariants::exactly_once(&self.records, &self.spans, &self.bounds, &mut violations);
        invariants::durable_nflog(
            &self.records,
            &self.completions,
            &self.bounds,
            &mut violations,
        );
        invariants::at_least_once(
            &self.records,
            &self.alerts,
            &self.silences,
            self.healing_at + self.bounds.recovery,
            self.end_at,
            &self.bounds,
            &mut violations,
        );
        if self.converged_at.is_none()
            && self.end_at >= self.healing_at + self.bounds.convergence + 60_000
            && !violations.iter().any(|v| v.property == "convergence")
        {
            violations.push(Violation {
                at: self.end_at,
                property: "convergence",
                detail: format!("never converged: {}", self.last_divergence),
            });
        }
        violations.sort_by_key(|v| v.at);
        let first = violations.first().map(|v| v.at);
        for violation in &violations {
            let line = format!(
                "VIOLATION {} at {}: {}",
                violation.property,
                clock(violation.at),
                violation.detail
            );
            self.trace.record(violation.at, line);
        }
        let hash = self.trace.hash();
        let events = self.trace.count();
        let mut lines = self.trace.into_lines();
        if let Some(first) = first {
            // The readable trace ends at the first violation (its own line included).
            lines.sort_by_key(|(at, _)| *at);
            lines.retain(|(at, line)| *at <= first || line.starts_with("VIOLATION"));
        }
        Report {
            seed: self.seed,
            nodes: self.nodes.len(),
            violations,
            trace_hash: hash,
            trace_lines: events,
            trace: lines
                .into_iter()
                .map(|(at, line)| format!("{} {line}", clock(at)))
                .collect(),
            simulated_ms: self.end_at,
            events: self.events,
            notifications: self.notifications,
            deliveries: self.records.len() as u64,
            faults: self.spans.len() as u64,
            messages: self.network.sent,
            malformed: self.malformed,
            lost_on_crash: self.nodes.iter().map(|n| n.disk.lost_on_crash).sum(),
        }
    }
}

fn since_or_now(spell: Option<&(Ms, Ms)>, now: Ms) -> Ms {
    spell.map_or(now, |(since, _)| *since)
}
