//! The replication protocol between nodes, as a sans-IO core.
//!
//! The mesh does not know what a silence, an nflog entry, an alert or a claim is: to this module
//! a replicated record is opaque bytes plus a [`RecordVersion`] (a key and a version the node
//! derives from the record, e.g. with [`hash64`]). The node decodes records and merges them with
//! its CRDT merges; the transport carries the encoded [`Message`]s between authenticated peers.
//!
//! The protocol has two halves:
//! - **Deltas:** a node pushes every record that changed to every live peer ([`Delta`], split by
//!   [`split_into_deltas`] so that no message exceeds the wire limits).
//! - **Anti-entropy:** when membership gossip shows that a peer's [`digest`] differs from ours
//!   (for longer than a grace period, so a delta in flight does not count), or periodically, the
//!   [`AntiEntropy`] scheduler asks for an exchange: we send a [`Summary`] with `reply: true`,
//!   the peer answers ([`answer_summary`]) with a Delta of what we lack and its own Summary with
//!   `reply: false`, and we answer that with a Delta of what the peer lacks. Merges are
//!   idempotent and commutative, so one round trip converges.

mod anti_entropy;
mod digest;
mod wire;

#[cfg(test)]
mod tests;

pub use anti_entropy::{AntiEntropy, AntiEntropyCounters, AntiEntropySettings};
pub use digest::{
    SummaryAnswer, answer_summary, digest, hash64, records_to_send, records_to_send_in_range,
    summaries,
};
pub use wire::{
    DEFAULT_DELTA_BUDGET, DecodeError, Delta, DeltaBatches, EncodeError, KeyRange, LimitError,
    MAX_MESSAGE_BYTES, MAX_RECORD_BYTES, MAX_RECORDS_PER_MESSAGE, Message, PROTOCOL_VERSION,
    Summary, decode, encode, split_into_deltas,
};

/// A replicated state. Each has its own records, digest and anti-entropy schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum StateKind {
    /// Silences (last-writer-wins by `updated_at` in the node).
    Silences,
    /// Notification-log entries (newest timestamp wins in the node).
    Nflog,
    /// Alerts received by any node.
    Alerts,
    /// Short-lived claims an owner replicates before it notifies.
    Claims,
}

impl StateKind {
    /// Every kind, in wire-tag order.
    pub const ALL: [StateKind; 4] = [
        StateKind::Silences,
        StateKind::Nflog,
        StateKind::Alerts,
        StateKind::Claims,
    ];

    /// The kind's stable one-byte wire tag. Tags are part of the protocol: never renumber one.
    pub const fn tag(self) -> u8 {
        match self {
            StateKind::Silences => 1,
            StateKind::Nflog => 2,
            StateKind::Alerts => 3,
            StateKind::Claims => 4,
        }
    }

    /// The kind for a wire tag, or `None` for a tag this version does not know.
    pub const fn from_tag(tag: u8) -> Option<StateKind> {
        match tag {
            1 => Some(StateKind::Silences),
            2 => Some(StateKind::Nflog),
            3 => Some(StateKind::Alerts),
            4 => Some(StateKind::Claims),
            _ => None,
        }
    }

    /// A stable lowercase name, for metric labels, logs and gossip keys.
    pub const fn as_str(self) -> &'static str {
        match self {
            StateKind::Silences => "silences",
            StateKind::Nflog => "nflog",
            StateKind::Alerts => "alerts",
            StateKind::Claims => "claims",
        }
    }

    /// Position in [`StateKind::ALL`], for per-kind arrays.
    pub(crate) const fn index(self) -> usize {
        match self {
            StateKind::Silences => 0,
            StateKind::Nflog => 1,
            StateKind::Alerts => 2,
            StateKind::Claims => 3,
        }
    }
}

impl std::fmt::Display for StateKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a node holds for one record: its key and a version.
///
/// The version should be a hash of the record's whole content (e.g. [`hash64`] of its encoded
/// bytes), not only its `updated_at`: the protocol treats equal versions as equal records, so two
/// different records with the same version would never be exchanged.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, bincode::Encode, bincode::Decode,
)]
pub struct RecordVersion {
    /// The record's identity, e.g. [`hash64`] of a silence id.
    pub key: u64,
    /// The record's version, e.g. [`hash64`] of the encoded record.
    pub version: u64,
}
