//! Tocsin's cluster mesh: membership, transport and replication between nodes.
//!
//! - `settings`: what a node needs to join a cluster, validated (sans-IO).
//! - `replication`: the replication protocol (deltas, anti-entropy summaries, digests, the
//!   exchange scheduler) as a sans-IO core over opaque records.
//! - `certs`, `tls`: the cluster CA and node certificates, and mutual TLS for QUIC.
//! - `transport`: the shell: one quinn endpoint per node carrying chitchat's gossip and the
//!   replication payloads between authenticated peers.
// The sans-IO parts may not read clocks, draw randomness, spawn or sleep (clippy.toml lists
// them); the shell modules allow it at their top.
#![deny(clippy::disallowed_methods)]

pub mod certs;
mod replication;
mod settings;
pub mod tls;
pub mod transport;

pub use replication::{
    AntiEntropy, AntiEntropyCounters, AntiEntropySettings, DEFAULT_DELTA_BUDGET, DecodeError,
    Delta, DeltaBatches, EncodeError, KeyRange, LimitError, MAX_MESSAGE_BYTES, MAX_RECORD_BYTES,
    MAX_RECORDS_PER_MESSAGE, Message, PROTOCOL_VERSION, RecordVersion, StateKind, Summary,
    SummaryAnswer, answer_summary, decode, digest, encode, hash64, records_to_send,
    records_to_send_in_range, split_into_deltas, summaries,
};
pub use settings::{ClusterSettings, SettingsError, validate_peer_address};
pub use transport::{Incoming, Member, Mesh, MeshError, MeshOptions, MeshStatsSnapshot};
