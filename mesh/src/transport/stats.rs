//! Counters of the mesh, read by the node's /metrics.

use std::sync::atomic::{AtomicU64, Ordering};

macro_rules! mesh_stats {
    ($($(#[doc = $doc:literal])* $field:ident,)*) => {
        /// Live counters, shared by the mesh's tasks.
        #[derive(Debug, Default)]
        pub(crate) struct MeshStats {
            $(pub(crate) $field: AtomicU64,)*
        }

        /// A copy of the mesh's counters at one moment. All are totals since start except
        /// `connections_open`, which is a gauge.
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
        pub struct MeshStatsSnapshot {
            $($(#[doc = $doc])* pub $field: u64,)*
        }

        impl MeshStats {
            pub(crate) fn snapshot(&self) -> MeshStatsSnapshot {
                MeshStatsSnapshot {
                    $($field: self.$field.load(Ordering::Relaxed),)*
                }
            }
        }
    };
}

mesh_stats! {
    /// Gossip (membership) messages written to a peer.
    gossip_messages_sent,
    gossip_bytes_sent,
    gossip_messages_received,
    gossip_bytes_received,
    /// Gossip messages dropped before sending (queue full, no connection, encoding failure).
    gossip_messages_dropped,
    /// Replication payloads written to a peer.
    replication_messages_sent,
    replication_bytes_sent,
    replication_messages_received,
    replication_bytes_received,
    /// `send` refused: the peer's queue was full.
    payloads_dropped_queue_full,
    /// `send` refused: payload above the 16 MiB limit.
    payloads_dropped_oversized,
    /// `send` refused: no live member of that name (or the name is our own).
    payloads_dropped_no_such_peer,
    /// A queued payload could not be written (no connection, stream error).
    payloads_dropped_send_error,
    /// Handshakes failed on the certificate: unknown CA, bad or missing certificate.
    connections_refused_tls,
    /// Handshakes failed on ALPN: the peer belongs to another cluster.
    connections_refused_cluster_name,
    /// A connection authenticated as a name already connected from a different address.
    connections_refused_duplicate_name,
    /// A peer announced a name (hello or gossip) other than its certificate's.
    connections_refused_name_mismatch,
    /// Messages from peers above their kind's size limit, discarded unread.
    messages_refused_oversized,
    /// Messages from peers that could not be decoded.
    messages_refused_malformed,
    /// Connections currently established and authenticated (a gauge).
    connections_open,
}

impl MeshStats {
    pub(crate) fn add(counter: &AtomicU64, value: u64) {
        counter.fetch_add(value, Ordering::Relaxed);
    }

    pub(crate) fn increment(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn decrement(counter: &AtomicU64) {
        // Saturating, so a bookkeeping slip can never wrap the gauge around.
        let _ = counter.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |value| {
            Some(value.saturating_sub(1))
        });
    }
}
