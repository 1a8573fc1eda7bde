//! Tocsin's cluster mesh: membership, transport and replication between nodes.
//!
//! For now this crate holds the cluster's settings and their validation; the membership,
//! QUIC transport and replication protocol arrive with the mesh issue.
// A sans-IO core: no clocks, randomness, tasks or sleeps (clippy.toml lists them).
#![deny(clippy::disallowed_methods)]

mod settings;

pub use settings::{ClusterSettings, SettingsError, validate_peer_address};
