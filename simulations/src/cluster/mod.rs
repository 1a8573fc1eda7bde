//! The cluster simulation: several nodes, each running the production alerting `Pipeline` and
//! the mesh's replication protocol (`tocsin_mesh`: the real wire encoding, summaries, deltas,
//! `AntiEntropy`), over a simulated network, disks and receivers, in virtual time, with faults.
//! One `u64` seed drives everything, so a seed reproduces a run byte for byte (see
//! [`Report::trace_hash`]).
//!
//! A run has two phases, as TigerBeetle's VOPR: **chaos** (crashes, restarts, pauses,
//! partitions, loss, latency spikes, clock jumps, failing receivers, joins and leaves, BUGGIFY
//! points; only safety properties are expected to hold) then **healing** (no new faults; at
//! least once and convergence must be reached within their bounds). See `invariants.rs` for
//! the properties and their bounds.
//!
//! - `world.rs`: the event queue and every handler (the shells' wiring, mirrored).
//! - `node.rs`: one node's state; `disk.rs`: its durable and volatile writes.
//! - `network.rs`: latency, loss, duplication, partitions.
//! - `receiver.rs`: webhook endpoints and their records.
//! - `workload.rs`: the configuration, alerts and silences of the outside world.
//! - `invariants.rs`: bounds and checks; `trace.rs`: the event trace and its hash.

pub mod disk;
pub mod invariants;
pub mod network;
pub mod node;
pub mod receiver;
pub mod trace;
pub mod workload;
pub mod world;

pub use invariants::{Bounds, Violation};

/// Virtual time: milliseconds since the run started.
pub type Ms = u64;

/// Deliberate bugs to turn on, to prove the simulator finds them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Bugs {
    /// Pipeline: every node sends at its flush (no ownership wait, no claim check).
    pub skip_ownership_wait: bool,
    /// Silences: merge by arrival order instead of last-writer-wins.
    pub merge_silences_by_arrival: bool,
    /// Simulated disk: nflog fsyncs report success but nothing becomes durable.
    pub forget_nflog_fsync: bool,
}

impl Bugs {
    /// Parses `skip-ownership-wait`, `merge-silences-by-arrival` or `forget-nflog-fsync`.
    pub fn enable(&mut self, name: &str) -> Result<(), String> {
        match name {
            "skip-ownership-wait" => self.skip_ownership_wait = true,
            "merge-silences-by-arrival" => self.merge_silences_by_arrival = true,
            "forget-nflog-fsync" => self.forget_nflog_fsync = true,
            other => return Err(format!("unknown bug {other:?}")),
        }
        Ok(())
    }
}

#[derive(Debug, Clone)]
pub struct Settings {
    /// Nodes at the start; `None`: 3 to 5, chosen by the seed (plus sometimes a spare that
    /// joins during the chaos phase).
    pub nodes: Option<usize>,
    /// Virtual milliseconds of chaos, then of healing.
    pub chaos: Ms,
    pub healing: Ms,
    /// Whether the chaos phase injects faults at all.
    pub faults: bool,
    pub peer_timeout: Ms,
    pub bugs: Bugs,
    /// Keep the readable trace (the hash is always computed).
    pub keep_trace: bool,
}

impl Default for Settings {
    /// Sized for CI: see the README text in the simulator's report.
    fn default() -> Self {
        Settings {
            nodes: None,
            chaos: 15 * 60_000,
            healing: 6 * 60_000,
            faults: true,
            peer_timeout: 5_000,
            bugs: Bugs::default(),
            keep_trace: false,
        }
    }
}

/// What one run did and found.
#[derive(Debug, Clone)]
pub struct Report {
    pub seed: u64,
    pub nodes: usize,
    pub violations: Vec<Violation>,
    /// Hash of the whole event trace: equal for equal seeds and settings.
    pub trace_hash: u64,
    pub trace_lines: u64,
    /// The readable trace (with `keep_trace`), ending at the first violation.
    pub trace: Vec<String>,
    pub simulated_ms: Ms,
    pub events: u64,
    pub notifications: u64,
    pub deliveries: u64,
    pub faults: u64,
    pub messages: u64,
    pub malformed: u64,
    pub lost_on_crash: u64,
}

/// Runs one seeded cluster simulation and checks its properties.
pub fn run(seed: u64, settings: &Settings) -> Report {
    match world::World::new(seed, settings) {
        Ok(world) => world.run(),
        Err(error) => Report {
            seed,
            nodes: 0,
            violations: vec![Violation {
                at: 0,
                property: "setup",
                detail: error,
            }],
            trace_hash: 0,
            trace_lines: 0,
            trace: Vec::new(),
            simulated_ms: 0,
            events: 0,
            notifications: 0,
            deliveries: 0,
            faults: 0,
            messages: 0,
            malformed: 0,
            lost_on_crash: 0,
        },
    }
}
