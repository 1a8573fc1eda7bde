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
    peers: Vec<serde_json::Value>,
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
/// read. The cluster is reported `disabled` until the mesh runs.
pub async fn alertmanager_status(State(node): State<Arc<Node>>) -> Json<AlertmanagerStatus> {
    let loaded = node.config();
    Json(AlertmanagerStatus {
        cluster: ClusterStatus {
            name: node
                .cluster
                .is_clustered()
                .then(|| node.cluster.node_name.clone()),
            status: "disabled",
            peers: Vec::new(),
        },
        config: AlertmanagerConfigStatus {
            original: loaded.alertmanager_text.clone(),
        },
        uptime: node.started_at.to_string(),
        version_info: crate::build_info::build_info(),
    })
}
