//! The shell that joins a node to its cluster (DESIGN.md §4–§5): starts the mesh, pushes this
//! node's changes (silences, notification-log entries, alerts, claims) to its live peers, merges
//! theirs, runs anti-entropy when the digests peers advertise differ from ours, keeps the
//! pipeline's view of the live members current, and decides when the node has settled.
//!
//! The protocol's decisions are the mesh crate's sans-IO `AntiEntropy` and the alerting core's
//! CRDT merges; this module only moves bytes between them.

use super::alerting::AlertingRuntime;
use crate::alerting::ownership::ClusterView;
use crate::alerting::replica::{self, Change};
use bytes::Bytes;
use jiff::{SignedDuration, Timestamp};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tocsin_mesh::{
    AntiEntropy, AntiEntropySettings, ClusterSettings, DEFAULT_DELTA_BUDGET, Incoming, KeyRange,
    Member, Mesh, MeshOptions, MeshStatsSnapshot, Message, RecordVersion, StateKind,
};

/// How often membership and digests are looked at.
const TICK: Duration = Duration::from_millis(200);
/// How often this node recomputes and advertises its digests.
const DIGEST_INTERVAL: Duration = Duration::from_secs(1);
/// Changes taken from the replication queue per send.
const OUTGOING_BATCH: usize = 4_096;
/// A node waits at least this long to settle when it has peers to sync with, at most its peer
/// timeout (or this, whichever is longer).
const MIN_SETTLE_TIMEOUT: Duration = Duration::from_secs(2);

/// The gossip key a state's digest is advertised under.
fn digest_key(kind: StateKind) -> String {
    format!("digest.{}", kind.as_str())
}

/// Counters of what replication did, by state.
#[derive(Debug, Default)]
pub struct ReplicationCounters {
    merged: [AtomicU64; 4],
    refused: [AtomicU64; 4],
    malformed_messages: AtomicU64,
    summaries_sent: AtomicU64,
}

fn kind_index(kind: StateKind) -> usize {
    StateKind::ALL
        .iter()
        .position(|candidate| *candidate == kind)
        .unwrap_or(0)
}

/// What the status API and metrics show of the cluster.
#[derive(Debug, Clone)]
pub struct ClusterSnapshot {
    pub node_name: String,
    pub cluster_name: String,
    pub settled: bool,
    pub members: Vec<Member>,
    pub mesh: MeshStatsSnapshot,
    /// Per state: records merged and refused, and for how long (seconds) some live peer's
    /// digest has differed from ours (0 when all agree).
    pub per_state: Vec<(StateKind, u64, u64, f64)>,
    pub malformed_messages: u64,
    pub summaries_sent: u64,
    pub exchanges_completed: u64,
}

pub struct ClusterRuntime {
    mesh: Mesh,
    settings: ClusterSettings,
    alerting: Arc<AlertingRuntime>,
    /// The epoch of the anti-entropy core's `now`.
    started: tokio::time::Instant,
    anti_entropy: Mutex<AntiEntropy>,
    settled: AtomicBool,
    counters: ReplicationCounters,
    /// Per state, since when some live peer's digest has differed from ours.
    mismatch_since: Mutex<BTreeMap<StateKind, tokio::time::Instant>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl ClusterRuntime {
    /// Starts the mesh and the replication tasks; they stop when `shutdown` flips.
    pub async fn start(
        settings: ClusterSettings,
        insecure: bool,
        alerting: Arc<AlertingRuntime>,
        api_url: &str,
        shutdown: tokio::sync::watch::Receiver<bool>,
    ) -> anyhow::Result<Arc<ClusterRuntime>> {
        let mut options = MeshOptions::new(settings.clone());
        options.insecure = insecure;
        options
            .metadata
            .insert("api_url".to_string(), api_url.to_string());
        options.metadata.insert(
            "version".to_string(),
            crate::build_info::VERSION.to_string(),
        );
        let (mesh, incoming) = Mesh::start(options)
            .await
            .map_err(|error| anyhow::anyhow!("cannot start the cluster mesh: {error}"))?;
        let (changes, outgoing) = tokio::sync::mpsc::channel(super::alerting::REPLICATION_QUEUE);
        alerting.join_cluster(changes);
        let runtime = Arc::new(ClusterRuntime {
            mesh,
            settings,
            alerting,
            started: tokio::time::Instant::now(),
            anti_entropy: Mutex::new(AntiEntropy::new(AntiEntropySettings::default())),
            settled: AtomicBool::new(false),
            counters: ReplicationCounters::default(),
            mismatch_since: Mutex::new(BTreeMap::new()),
        });
        tracing::info!(
            node = %runtime.settings.node_name,
            cluster = %runtime.settings.cluster_name,
            address = %runtime.mesh.local_address(),
            peers = ?runtime.settings.peers,
            "joined the cluster mesh; settling"
        );
        tokio::spawn(Arc::clone(&runtime).send_changes(outgoing, shutdown.clone()));
        tokio::spawn(Arc::clone(&runtime).receive(incoming, shutdown.clone()));
        tokio::spawn(Arc::clone(&runtime).tick(shutdown));
        Ok(runtime)
    }

    pub fn alerting(&self) -> &Arc<AlertingRuntime> {
        &self.alerting
    }

    pub fn is_settled(&self) -> bool {
        self.settled.load(Ordering::Acquire)
    }

    pub fn snapshot(&self) -> ClusterSnapshot {
        let mismatch = lock(&self.mismatch_since).clone();
        let now = tokio::time::Instant::now();
        let per_state = StateKind::ALL
            .iter()
            .map(|kind| {
                let index = kind_index(*kind);
                let lag = mismatch
                    .get(kind)
                    .map_or(0.0, |since| now.duration_since(*since).as_secs_f64());
                (
                    *kind,
                    self.counters.merged[index].load(Ordering::Relaxed),
                    self.counters.refused[index].load(Ordering::Relaxed),
                    lag,
                )
            })
            .collect();
        ClusterSnapshot {
            node_name: self.settings.node_name.clone(),
            cluster_name: self.settings.cluster_name.clone(),
            settled: self.is_settled(),
            members: self.mesh.members(),
            mesh: self.mesh.stats(),
            per_state,
            malformed_messages: self.counters.malformed_messages.load(Ordering::Relaxed),
            summaries_sent: self.counters.summaries_sent.load(Ordering::Relaxed),
            exchanges_completed: lock(&self.anti_entropy).counters().exchanges_completed,
        }
    }

    pub async fn shutdown(&self) {
        self.mesh.shutdown().await;
    }

    fn since_start(&self) -> Duration {
        self.started.elapsed()
    }

    fn live_peers(&self) -> Vec<String> {
        self.mesh
            .members()
            .into_iter()
            .filter(|member| !member.is_self)
            .map(|member| member.name)
            .collect()
    }

    /// Sends `messages` to one peer, or to every live peer.
    fn send(&self, to: Option<&str>, messages: Vec<Message>) {
        let peers = match to {
            Some(peer) => vec![peer.to_string()],
            None => self.live_peers(),
        };
        if peers.is_empty() {
            return;
        }
        for message in messages {
            let payload = match tocsin_mesh::encode(&message) {
                Ok(bytes) => Bytes::from(bytes),
                Err(error) => {
                    tracing::error!(%error, "cannot encode a replication message");
                    continue;
                }
            };
            for peer in &peers {
                // A refused send is counted by the mesh; anti-entropy repairs it later.
                let _ = self.mesh.send(peer, payload.clone());
            }
        }
    }

    /// Pushes this node's changes to every live peer as they happen.
    async fn send_changes(
        self: Arc<Self>,
        mut outgoing: tokio::sync::mpsc::Receiver<Change>,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) {
        let mut batch = Vec::with_capacity(OUTGOING_BATCH);
        loop {
            tokio::select! {
                received = outgoing.recv_many(&mut batch, OUTGOING_BATCH) => {
                    if received == 0 {
                        return;
                    }
                }
                _ = shutdown.wait_for(|stop| *stop) => return,
            }
            let mut records: BTreeMap<StateKind, Vec<Vec<u8>>> = BTreeMap::new();
            for change in batch.drain(..) {
                let (kind, encoded, errors) = change.encode();
                for error in errors {
                    tracing::error!(%error, "cannot encode a change for the peers");
                }
                records.entry(kind).or_default().extend(encoded);
            }
            for (kind, records) in records {
                let batches = tocsin_mesh::split_into_deltas(kind, records, DEFAULT_DELTA_BUDGET);
                self.send(None, batches.messages);
            }
        }
    }

    /// Merges what peers send and answers their anti-entropy summaries.
    async fn receive(
        self: Arc<Self>,
        mut incoming: tokio::sync::mpsc::Receiver<Incoming>,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) {
        loop {
            let message = tokio::select! {
                message = incoming.recv() => message,
                _ = shutdown.wait_for(|stop| *stop) => return,
            };
            let Some(Incoming { from, payload }) = message else {
                return;
            };
            let message = match tocsin_mesh::decode(&payload) {
                Ok(message) => message,
                Err(error) => {
                    self.counters
                        .malformed_messages
                        .fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(peer = %from, %error, "dropped a malformed replication message");
                    continue;
                }
            };
            match message {
                Message::Delta(delta) => self.merge(delta.kind, delta.records),
                Message::Summary(summary) => {
                    // One encoding of the state serves both the versions and the records sent.
                    let held = self
                        .alerting
                        .read(|pipeline| replica::records(pipeline, summary.kind));
                    let local = replica::versions_of(&held);
                    let answer = tocsin_mesh::answer_summary(&summary, &local);
                    if !answer.send_keys.is_empty() {
                        let records = held
                            .into_iter()
                            .filter(|(key, _)| answer.send_keys.binary_search(key).is_ok())
                            .map(|(_, bytes)| bytes);
                        let batches = tocsin_mesh::split_into_deltas(
                            summary.kind,
                            records,
                            DEFAULT_DELTA_BUDGET,
                        );
                        self.send(Some(&from), batches.messages);
                    }
                    if !answer.reply_summaries.is_empty() {
                        self.counters
                            .summaries_sent
                            .fetch_add(answer.reply_summaries.len() as u64, Ordering::Relaxed);
                        self.send(Some(&from), answer.reply_summaries);
                    }
                    if answer.completes_exchange {
                        lock(&self.anti_entropy).exchange_completed(
                            &from,
                            summary.kind,
                            self.since_start(),
                        );
                    }
                }
            }
        }
    }

    /// Merges records from a peer into the pipeline, persisting what changed as a local change
    /// would be.
    fn merge(&self, kind: StateKind, records: Vec<Vec<u8>>) {
        let now = Timestamp::now();
        let merged = self.alerting.read(|pipeline| {
            let merged = replica::merge(pipeline, kind, &records, now);
            // With the pipeline locked, as for local changes, so the log keeps their order.
            if !merged.silences.is_empty()
                && let Err(error) = self.alerting.persist_silences(&merged.silences)
            {
                tracing::error!(%error, "cannot persist silences from a peer");
            }
            merged
        });
        for entry in &merged.nflog {
            self.alerting.queue_nflog_entry(entry);
        }
        let index = kind_index(kind);
        self.counters.merged[index].fetch_add(merged.changed, Ordering::Relaxed);
        self.counters.refused[index].fetch_add(merged.refused, Ordering::Relaxed);
        if merged.changed > 0 {
            self.alerting.wake();
        }
    }

    fn versions(&self, kind: StateKind) -> Vec<RecordVersion> {
        self.alerting
            .read(|pipeline| replica::versions(pipeline, kind))
    }

    /// Follows membership, advertises digests, starts anti-entropy exchanges and settles.
    async fn tick(self: Arc<Self>, mut shutdown: tokio::sync::watch::Receiver<bool>) {
        let mut known: BTreeSet<String> = BTreeSet::new();
        let mut last_digests = tokio::time::Instant::now() - DIGEST_INTERVAL;
        let mut local_digests: BTreeMap<StateKind, u64> = BTreeMap::new();
        let peer_timeout = SignedDuration::try_from(self.settings.peer_timeout)
            .unwrap_or(SignedDuration::from_secs(15));
        let settle_timeout = self.settings.peer_timeout.max(MIN_SETTLE_TIMEOUT);
        let mut ticks = tokio::time::interval(TICK);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticks.tick() => {}
                _ = shutdown.wait_for(|stop| *stop) => return,
            }
            let now = self.since_start();
            let members = self.mesh.members();
            let live: Vec<String> = members.iter().map(|member| member.name.clone()).collect();
            let peers: BTreeSet<String> = members
                .iter()
                .filter(|member| !member.is_self)
                .map(|member| member.name.clone())
                .collect();
            {
                let mut anti_entropy = lock(&self.anti_entropy);
                for joined in peers.difference(&known) {
                    tracing::info!(peer = %joined, "peer joined");
                    anti_entropy.peer_joined(joined, now);
                }
                for left in known.difference(&peers) {
                    tracing::info!(peer = %left, "peer left");
                    anti_entropy.peer_left(left);
                }
            }
            if peers != known {
                known = peers.clone();
                let view = ClusterView {
                    me: self.settings.node_name.clone(),
                    live: live.clone(),
                    peer_timeout,
                };
                self.alerting
                    .read(|pipeline| pipeline.set_cluster_view(view));
            }

            if last_digests.elapsed() >= DIGEST_INTERVAL {
                last_digests = tokio::time::Instant::now();
                for kind in StateKind::ALL {
                    let digest = tocsin_mesh::digest(self.versions(kind));
                    local_digests.insert(kind, digest);
                    self.mesh
                        .set_key(&digest_key(kind), &format!("{digest:016x}"));
                }
                self.observe_digests(&members, &local_digests, now);
            }

            let exchanges = lock(&self.anti_entropy).poll(now);
            for (peer, kind) in exchanges {
                let local = self.versions(kind);
                let messages = tocsin_mesh::summaries(kind, true, &local, KeyRange::FULL);
                self.counters
                    .summaries_sent
                    .fetch_add(messages.len() as u64, Ordering::Relaxed);
                self.send(Some(&peer), messages);
            }

            if !self.is_settled() {
                let peer_list: Vec<String> = peers.iter().cloned().collect();
                let synced =
                    !peer_list.is_empty() && lock(&self.anti_entropy).is_settled(&peer_list);
                let alone = self.settings.peers.is_empty();
                if synced || alone || now >= settle_timeout {
                    self.settled.store(true, Ordering::Release);
                    self.alerting.set_may_notify(true);
                    tracing::info!(
                        peers = peer_list.len(),
                        synced,
                        after = ?now,
                        "cluster settled; notifications enabled"
                    );
                }
            }
        }
    }

    /// Feeds the digests peers advertise to anti-entropy, and tracks how long they differ.
    fn observe_digests(&self, members: &[Member], local: &BTreeMap<StateKind, u64>, now: Duration) {
        let mut anti_entropy = lock(&self.anti_entropy);
        let mut mismatch = lock(&self.mismatch_since);
        for kind in StateKind::ALL {
            let local_digest = local.get(&kind).copied().unwrap_or(0);
            let mut differs = false;
            for member in members.iter().filter(|member| !member.is_self) {
                let remote = member
                    .keys
                    .get(&digest_key(kind))
                    .and_then(|text| u64::from_str_radix(text, 16).ok());
                differs |= remote != Some(local_digest);
                anti_entropy.observe(&member.name, kind, remote, local_digest, now);
            }
            if differs {
                mismatch
                    .entry(kind)
                    .or_insert_with(tokio::time::Instant::now);
            } else {
                mismatch.remove(&kind);
            }
        }
    }
}
