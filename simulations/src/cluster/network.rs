//! The simulated network between nodes: per-message latency drawn from a distribution with a
//! tail (so messages reorder), loss and duplication, latency spikes, and partitions (one-way or
//! two-way, by blocked directed links). Nodes are indices.

use super::Ms;
use crate::rng::SimRng;
use std::collections::BTreeSet;

/// Latency that the healthy network stays under (the "exactly once" checks require latencies
/// below peer_timeout / 2; this is far below).
pub const MAX_HEALTHY_LATENCY: Ms = 250;

#[derive(Debug, Clone)]
pub struct Network {
    /// The usual one-way latency range, per seed.
    pub base: (Ms, Ms),
    /// Per-mille of messages that take the tail (up to [`MAX_HEALTHY_LATENCY`]).
    pub tail_per_mille: u64,
    /// Per-mille of messages duplicated (always on: merges are idempotent, so this is no fault).
    pub duplicate_per_mille: u64,
    /// Per-mille of messages lost (a fault episode sets it).
    pub loss_per_mille: u64,
    /// Extra latency added to every message while a spike lasts.
    pub spike_extra: (Ms, Ms),
    /// Directed links that carry nothing: (from, to).
    blocked: BTreeSet<(usize, usize)>,
    pub sent: u64,
    pub lost: u64,
    pub duplicated: u64,
}

impl Network {
    pub fn new(rng: &mut SimRng) -> Network {
        let low = rng.between(1, 5);
        Network {
            base: (low, low + rng.between(2, 40)),
            tail_per_mille: rng.between(0, 50),
            duplicate_per_mille: rng.between(0, 20),
            loss_per_mille: 0,
            spike_extra: (0, 0),
            blocked: BTreeSet::new(),
            sent: 0,
            lost: 0,
            duplicated: 0,
        }
    }

    pub fn block(&mut self, from: usize, to: usize) {
        self.blocked.insert((from, to));
    }

    pub fn heal_partitions(&mut self) {
        self.blocked.clear();
    }

    pub fn is_partitioned(&self) -> bool {
        !self.blocked.is_empty()
    }

    pub fn reachable(&self, from: usize, to: usize) -> bool {
        !self.blocked.contains(&(from, to))
    }

    /// When the copies of a message sent at `now` arrive: none (lost or blocked), one, or two
    /// (duplicated). `quiet` messages (heartbeats) are not counted.
    pub fn transmit(&mut self, from: usize, to: usize, rng: &mut SimRng) -> Vec<Ms> {
        self.sent += 1;
        if !self.reachable(from, to) {
            return Vec::new();
        }
        if self.loss_per_mille > 0 && rng.chance(self.loss_per_mille, 1000) {
            self.lost += 1;
            return Vec::new();
        }
        let mut arrivals = vec![self.latency(rng)];
        if self.duplicate_per_mille > 0 && rng.chance(self.duplicate_per_mille, 1000) {
            self.duplicated += 1;
            arrivals.push(self.latency(rng));
        }
        arrivals
    }

    fn latency(&self, rng: &mut SimRng) -> Ms {
        let mut latency = rng.between(self.base.0, self.base.1);
        if rng.chance(self.tail_per_mille, 1000) {
            latency = rng.between(self.base.1, MAX_HEALTHY_LATENCY);
        }
        if self.spike_extra.1 > 0 {
            latency += rng.between(self.spike_extra.0, self.spike_extra.1);
        }
        latency
    }
}
