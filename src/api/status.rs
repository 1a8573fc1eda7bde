//! Status endpoints: Prometheus's `/api/v1/status/*` and Alertmanager's `/api/v2/status`.

use super::prometheus_success;
use crate::node::Node;
use axum::Json;
use axum::extract::State;
use serde::Serialize;
use std::sync::Arc;

pub async fn build_info() -> Json<serde_json::Value> {
    prometheus_success(crate::build_info::build_info())
}

/// The configuration in force, with defaults filled in and secrets shown as `<secret>`.
pub async fn config(State(node): State<Arc<Node>>) -> Json<serde_json::Value> {
    let loaded = node.config();
    prometheus_success(serde_json::json!({ "yaml": crate::config::to_yaml(&loaded.config) }))
}

pub async fn flags(State(node): State<Arc<Node>>) -> Json<serde_json::Value> {
    prometheus_success(&node.options.flags)
}

#[derive(Serialize)]
pub struct ClusterStatus {
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    /// `ready`, `settling` or `disabled`, as Alertmanager reports it.
    status: &'static str,
    /// Live members, this node included, as Alertmanager lists them (`name`, `address`).
    peers: Vec<PeerStatus>,
    /// Tocsin's own fields (clients that follow Alertmanager's schema ignore them).
    #[serde(skip_serializing_if = "Option::is_none")]
    tocsin: Option<TocsinClusterStatus>,
}

#[derive(Serialize)]
pub struct PeerStatus {
    name: String,
    address: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TocsinClusterStatus {
    cluster_name: String,
    /// Notifications waiting for this node's turn (it is not their owner).
    deferred_notifications: usize,
    /// Claims on notifications held now, and how many are this node's.
    claims: usize,
    own_claims: usize,
    /// Notifications sent as owner, deferred, and skipped because a peer sent them.
    sent_as_owner: u64,
    deferred_total: u64,
    skipped_sent_by_peer: u64,
    sent_in_place_of_owner: u64,
}

fn cluster_status(node: &Node) -> ClusterStatus {
    let Some(runtime) = node.cluster_runtime() else {
        return ClusterStatus {
            name: node
                .cluster
                .is_clustered()
                .then(|| node.cluster.node_name.clone()),
            status: if node.cluster.is_clustered() {
                "settling"
            } else {
                "disabled"
            },
            peers: Vec::new(),
            tocsin: None,
        };
    };
    let snapshot = runtime.snapshot();
    let me = snapshot.node_name.clone();
    let (deferred, claims, own_claims, dispatch) = runtime.alerting().read(|pipeline| {
        (
            pipeline.deferred_len(),
            pipeline.claims.len(),
            pipeline
                .claims
                .iter()
                .filter(|claim| claim.node == me)
                .count(),
            pipeline.dispatch,
        )
    });
    ClusterStatus {
        name: Some(snapshot.node_name),
        status: if snapshot.settled {
            "ready"
        } else {
            "settling"
        },
        peers: snapshot
            .members
            .into_iter()
            .map(|member| PeerStatus {
                name: member.name,
                address: member.cluster_address.to_string(),
            })
            .collect(),
        tocsin: Some(TocsinClusterStatus {
            cluster_name: snapshot.cluster_name,
            deferred_notifications: deferred,
            claims,
            own_claims,
            sent_as_owner: dispatch.sent_as_owner,
            deferred_total: dispatch.deferred,
            skipped_sent_by_peer: dispatch.sent_by_peer,
            sent_in_place_of_owner: dispatch.sent_in_place_of_owner,
        }),
    }
}

#[derive(Serialize)]
pub struct AlertmanagerConfigStatus {
    original: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AlertmanagerStatus {
    cluster: ClusterStatus,
    config: AlertmanagerConfigStatus,
    uptime: String,
    version_info: crate::build_info::BuildInfo,
}

/// Alertmanager's `GET /api/v2/status`, which `amtool config show` and `amtool cluster show`
/// read. A node without `--cluster.listen-address` reports its cluster `disabled`.
pub async fn alertmanager_status(State(node): State<Arc<Node>>) -> Json<AlertmanagerStatus> {
    let loaded = node.config();
    Json(AlertmanagerStatus {
        cluster: cluster_status(&node),
        config: AlertmanagerConfigStatus {
            original: loaded.alertmanager_text.clone(),
        },
        uptime: node.started_at.to_string(),
        version_info: crate::build_info::build_info(),
    })
}
