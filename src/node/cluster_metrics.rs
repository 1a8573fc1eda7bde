//! The cluster's numbers on `/metrics`, read at scrape time: membership, mesh traffic by kind,
//! refusals and drops by reason, merges by state, how long states have diverged, and what the
//! cluster's wait stage and claims did.

use super::cluster::ClusterRuntime;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use std::sync::Arc;
use std::sync::atomic::Ordering;

pub struct ClusterMetrics(pub Arc<ClusterRuntime>);

impl std::fmt::Debug for ClusterMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClusterMetrics")
    }
}

type Labels = Vec<(&'static str, String)>;
/// A metric family to encode: name, help, type and labelled values.
type Family = (&'static str, &'static str, MetricType, Vec<(Labels, f64)>);

/// One metric family: a name, its help, and its labelled values.
fn family(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    kind: MetricType,
    values: &[(Labels, f64)],
) -> Result<(), std::fmt::Error> {
    let mut metric = encoder.encode_descriptor(name, help, None, kind)?;
    for (labels, value) in values {
        let encoder = metric.encode_family(labels)?;
        match kind {
            MetricType::Counter => ConstCounter::new(*value as u64).encode(encoder)?,
            _ => ConstGauge::new(*value).encode(encoder)?,
        }
    }
    Ok(())
}

fn one(value: impl Into<f64>) -> Vec<(Labels, f64)> {
    vec![(Vec::new(), value.into())]
}

fn by(label: &'static str, values: &[(&str, u64)]) -> Vec<(Labels, f64)> {
    values
        .iter()
        .map(|(name, value)| (vec![(label, name.to_string())], *value as f64))
        .collect()
}

impl prometheus_client::collector::Collector for ClusterMetrics {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let snapshot = self.0.snapshot();
        let mesh = snapshot.mesh;
        let (dispatch, claims, claim_counters) = self.0.alerting().read(|pipeline| {
            (
                pipeline.dispatch,
                pipeline.claims.len(),
                pipeline.claims.counters,
            )
        });
        let replication_dropped = self
            .0
            .alerting()
            .replication_dropped
            .load(Ordering::Relaxed);
        let states: Vec<&str> = snapshot
            .per_state
            .iter()
            .map(|(kind, ..)| kind.as_str())
            .collect();
        let per_state = |pick: fn(&(tocsin_mesh::StateKind, u64, u64, f64)) -> f64| {
            snapshot
                .per_state
                .iter()
                .zip(&states)
                .map(|(row, state)| (vec![("state", state.to_string())], pick(row)))
                .collect::<Vec<_>>()
        };
        use MetricType::{Counter, Gauge};
        let families: Vec<Family> = vec![
            (
                "tocsin_cluster_members",
                "Live members of the cluster, this node included",
                Gauge,
                one(snapshot.members.len() as f64),
            ),
            (
                "tocsin_cluster_settled",
                "1 once this node synced with its peers (or waited the settle timeout)",
                Gauge,
                one(u8::from(snapshot.settled)),
            ),
            (
                "tocsin_cluster_messages_sent",
                "Messages written to peers, by kind",
                Counter,
                by(
                    "kind",
                    &[
                        ("gossip", mesh.gossip_messages_sent),
                        ("replication", mesh.replication_messages_sent),
                    ],
                ),
            ),
            (
                "tocsin_cluster_messages_received",
                "Messages read from peers, by kind",
                Counter,
                by(
                    "kind",
                    &[
                        ("gossip", mesh.gossip_messages_received),
                        ("replication", mesh.replication_messages_received),
                    ],
                ),
            ),
            (
                "tocsin_cluster_sent_bytes",
                "Bytes written to peers, by kind",
                Counter,
                by(
                    "kind",
                    &[
                        ("gossip", mesh.gossip_bytes_sent),
                        ("replication", mesh.replication_bytes_sent),
                    ],
                ),
            ),
            (
                "tocsin_cluster_received_bytes",
                "Bytes read from peers, by kind",
                Counter,
                by(
                    "kind",
                    &[
                        ("gossip", mesh.gossip_bytes_received),
                        ("replication", mesh.replication_bytes_received),
                    ],
                ),
            ),
            (
                "tocsin_cluster_messages_dropped",
                "Messages not sent or not accepted, by reason",
                Counter,
                by(
                    "reason",
                    &[
                        ("gossip_dropped", mesh.gossip_messages_dropped),
                        ("queue_full", mesh.payloads_dropped_queue_full),
                        ("oversized", mesh.payloads_dropped_oversized),
                        ("no_such_peer", mesh.payloads_dropped_no_such_peer),
                        ("send_error", mesh.payloads_dropped_send_error),
                        ("received_oversized", mesh.messages_refused_oversized),
                        ("received_malformed", mesh.messages_refused_malformed),
                        ("undecodable", snapshot.malformed_messages),
                        ("replication_queue_full", replication_dropped),
                    ],
                ),
            ),
            (
                "tocsin_cluster_connections_refused",
                "Peer connections refused, by reason",
                Counter,
                by(
                    "reason",
                    &[
                        ("tls", mesh.connections_refused_tls),
                        ("cluster_name", mesh.connections_refused_cluster_name),
                        ("duplicate_name", mesh.connections_refused_duplicate_name),
                        ("name_mismatch", mesh.connections_refused_name_mismatch),
                    ],
                ),
            ),
            (
                "tocsin_cluster_connections_open",
                "QUIC connections to peers open now",
                Gauge,
                one(mesh.connections_open as f64),
            ),
            (
                "tocsin_cluster_records_merged",
                "Records from peers that changed this node's state",
                Counter,
                per_state(|row| row.1 as f64),
            ),
            (
                "tocsin_cluster_records_refused",
                "Records from peers refused (undecodable, invalid or over a limit)",
                Counter,
                per_state(|row| row.2 as f64),
            ),
            (
                "tocsin_cluster_state_divergence_seconds",
                "How long some live peer's digest of the state has differed from this node's (0: converged)",
                Gauge,
                per_state(|row| row.3),
            ),
            (
                "tocsin_cluster_anti_entropy_summaries_sent",
                "Anti-entropy summaries sent to peers",
                Counter,
                one(snapshot.summaries_sent as f64),
            ),
            (
                "tocsin_cluster_anti_entropy_exchanges_completed",
                "Anti-entropy exchanges this node started that completed",
                Counter,
                one(snapshot.exchanges_completed as f64),
            ),
            (
                "tocsin_cluster_notifications",
                "Notifications by what the cluster's wait stage decided",
                Counter,
                by(
                    "outcome",
                    &[
                        ("sent_as_owner", dispatch.sent_as_owner),
                        ("deferred", dispatch.deferred),
                        ("skipped_sent_by_peer", dispatch.sent_by_peer),
                        ("sent_in_place_of_owner", dispatch.sent_in_place_of_owner),
                    ],
                ),
            ),
            (
                "tocsin_cluster_claims",
                "Claims on notifications held now",
                Gauge,
                one(claims as f64),
            ),
            (
                "tocsin_cluster_claim_events",
                "Claims made or renewed by this node, merged from peers, and times a peer's claim held this node off",
                Counter,
                by(
                    "event",
                    &[
                        ("made", claim_counters.made),
                        ("merged", claim_counters.merged),
                        ("held_off", claim_counters.held_off),
                        ("rejected_full", claim_counters.rejected_full),
                    ],
                ),
            ),
        ];
        for (name, help, kind, values) in families {
            family(&mut encoder, name, help, kind, &values)?;
        }
        Ok(())
    }
}
