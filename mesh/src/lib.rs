//! Tocsin's cluster mesh: membership, transport and replication between nodes.
//!
//! For now this crate holds the cluster's settings and their validation; the membership,
//! QUIC transport and replication protocol arrive with the mesh issue.

mod settings;

pub use settings::{ClusterSettings, SettingsError, validate_peer_address};
