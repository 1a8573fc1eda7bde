//! One simulated node: the production alerting `Pipeline` and the mesh's `AntiEntropy`
//! scheduler, the failure detector's view, a wall clock with skew, a disk, and the deliveries in
//! flight. The world (`world.rs`) moves events between nodes; this holds what one node knows.

use super::Ms;
use super::disk::Disk;
use jiff::{SignedDuration, Timestamp};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;
use tocsin::alerting::faults::Faults;
use tocsin::alerting::groups::GroupLimits;
use tocsin::alerting::nflog::{Entry, Nflog, NflogLimits};
use tocsin::alerting::pipeline::{Notification, Pipeline};
use tocsin::alerting::replica;
use tocsin::alerting::silences::{SilenceLimits, Silences};
use tocsin::alerting::store::StoreLimits;
use tocsin::config::alertmanager::AlertmanagerConfig;
use tocsin_mesh::{AntiEntropy, AntiEntropySettings, RecordVersion, StateKind};

/// The shell's retention of expired silences and log entries (as `node/alerting.rs`).
pub const RETENTION: SignedDuration = SignedDuration::from_hours(120);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Life {
    /// A spare that has not joined yet.
    NotStarted,
    Up,
    /// Crashed; restarts from its disk.
    Down,
    /// Left the cluster for good.
    Left,
}

/// A notification being delivered (retries included).
#[derive(Debug, Clone)]
pub struct InFlight {
    pub id: u64,
    pub notification: Notification,
    pub emitted_at: Ms,
    pub attempts: u32,
    /// Global time after which no attempt starts.
    pub deadline: Ms,
}

/// What a node holds of one silence, for the "silences hold" check: the version's active
/// window (in the node's clock) and since when the node has held that window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldSilence {
    pub starts_at: Timestamp,
    pub ends_at: Timestamp,
    pub expiry: bool,
    pub since: Ms,
}

pub struct SimNode {
    pub id: usize,
    pub name: String,
    pub life: Life,
    pub paused: bool,
    /// Events that arrived while paused, replayed on resume.
    pub stalled: Vec<super::world::Event>,
    /// Bumped by every crash and restart; events of an older incarnation are dropped.
    pub incarnation: u64,
    /// Global time this incarnation started (the epoch of AntiEntropy's `now`).
    pub started_at: Ms,
    /// Wall clock = global + offset (ms), skew and jumps included.
    pub clock_offset: i64,
    pub pipeline: Option<Pipeline>,
    pub anti_entropy: AntiEntropy,
    pub settled: bool,
    /// Peers as the membership layer last reported them (cluster.rs's `known`).
    pub known: BTreeSet<String>,
    /// Global time each peer was last heard from, and the digests it advertised.
    pub last_heard: BTreeMap<usize, Ms>,
    pub peer_digests: BTreeMap<usize, [u64; 4]>,
    pub local_digests: [u64; 4],
    pub last_digests_at: Option<Ms>,
    /// `replica::versions` per kind, cached until a mutation of that state (a shortcut for
    /// speed: every path that changes a replicated state calls [`SimNode::touch`]).
    versions: [Option<Vec<RecordVersion>>; 4],
    pub disk: Disk,
    pub deliveries: BTreeMap<u64, InFlight>,
    pub wake_at: Option<Ms>,
    pub last_gc: Ms,
    pub held_silences: BTreeMap<String, HeldSilence>,
    /// Silence ids this node has held as an expiry (for "no resurrection").
    pub held_expired: BTreeSet<String>,
}

impl SimNode {
    pub fn new(id: usize, clock_offset: i64) -> SimNode {
        SimNode {
            id,
            name: format!("node-{id}"),
            life: Life::NotStarted,
            paused: false,
            stalled: Vec::new(),
            incarnation: 0,
            started_at: 0,
            clock_offset,
            pipeline: None,
            anti_entropy: AntiEntropy::new(AntiEntropySettings::default()),
            settled: false,
            known: BTreeSet::new(),
            last_heard: BTreeMap::new(),
            peer_digests: BTreeMap::new(),
            local_digests: [0; 4],
            last_digests_at: None,
            versions: [None, None, None, None],
            disk: Disk::default(),
            deliveries: BTreeMap::new(),
            wake_at: None,
            last_gc: 0,
            held_silences: BTreeMap::new(),
            held_expired: BTreeSet::new(),
        }
    }

    pub fn is_running(&self) -> bool {
        self.life == Life::Up
    }

    /// This node's wall clock at global time `at`.
    pub fn wall(&self, start: Timestamp, at: Ms) -> Timestamp {
        let millis = i64::try_from(at).unwrap_or(i64::MAX) + self.clock_offset;
        start
            .checked_add(SignedDuration::from_millis(millis))
            .unwrap_or(start)
    }

    /// The global time at which this node's wall clock reads `wall` (rounded up).
    pub fn global(&self, start: Timestamp, wall: Timestamp) -> Ms {
        let since = wall.duration_since(start).as_millis() - i128::from(self.clock_offset);
        let rounded_up = if wall.duration_since(start).subsec_nanos() % 1_000_000 != 0 {
            since + 1
        } else {
            since
        };
        u64::try_from(rounded_up.max(0)).unwrap_or(u64::MAX)
    }

    /// AntiEntropy's clock: time since this incarnation started.
    pub fn monotonic(&self, at: Ms) -> Duration {
        Duration::from_millis(at.saturating_sub(self.started_at))
    }

    /// Starts (or restarts) the process: a fresh pipeline restored from the durable silences
    /// and notification log, alerts lost, nothing known of the peers, settling again.
    pub fn boot(
        &mut self,
        config: &AlertmanagerConfig,
        faults: Faults,
        start: Timestamp,
        at: Ms,
    ) -> (usize, usize) {
        let now = self.wall(start, at);
        let mut silences = Silences::new(SilenceLimits::default(), RETENTION);
        let mut refused = 0;
        for record in &self.disk.silences {
            if silences.restore_record(record, now).is_err() {
                refused += 1;
            }
        }
        silences.gc(now);
        let mut nflog = Nflog::new(NflogLimits::default());
        for record in &self.disk.nflog {
            let merged = Entry::decode(record)
                .ok()
                .map(|entry| nflog.merge(entry, now));
            if !matches!(merged, Some(Ok(_))) {
                refused += 1;
            }
        }
        nflog.gc(now);
        let restored = (silences.len(), nflog.len());
        let mut pipeline = Pipeline::new(
            config,
            StoreLimits::default(),
            GroupLimits::default(),
            silences,
            nflog,
        );
        pipeline.set_faults(faults);
        let _ = refused;
        self.pipeline = Some(pipeline);
        self.anti_entropy = AntiEntropy::new(AntiEntropySettings::default());
        self.life = Life::Up;
        self.paused = false;
        self.stalled.clear();
        self.incarnation += 1;
        self.started_at = at;
        self.settled = false;
        self.known.clear();
        self.last_heard.clear();
        self.peer_digests.clear();
        self.local_digests = [0; 4];
        self.last_digests_at = None;
        self.versions = [None, None, None, None];
        self.deliveries.clear();
        self.wake_at = None;
        self.last_gc = at;
        self.held_silences.clear();
        restored
    }

    /// Power loss: the process and its unsynced writes are gone.
    pub fn crash(&mut self) {
        self.life = Life::Down;
        self.pipeline = None;
        self.paused = false;
        self.stalled.clear();
        self.incarnation += 1;
        self.deliveries.clear();
        self.wake_at = None;
        self.settled = false;
        self.held_silences.clear();
        self.disk.crash();
    }

    /// A replicated state of this node changed (or may have).
    pub fn touch(&mut self, kind: StateKind) {
        self.versions[Self::kind_index(kind)] = None;
    }

    pub fn touch_all(&mut self) {
        self.versions = [None, None, None, None];
    }

    /// What this node holds of a state (`replica::versions`), cached.
    pub fn versions(&mut self, kind: StateKind) -> Vec<RecordVersion> {
        let index = Self::kind_index(kind);
        if let Some(cached) = &self.versions[index] {
            return cached.clone();
        }
        let versions = match &self.pipeline {
            Some(pipeline) => replica::versions(pipeline, kind),
            None => Vec::new(),
        };
        self.versions[index] = Some(versions.clone());
        versions
    }

    pub fn kind_index(kind: StateKind) -> usize {
        StateKind::ALL
            .iter()
            .position(|candidate| *candidate == kind)
            .unwrap_or(0)
    }
}
