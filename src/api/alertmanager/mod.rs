//! Alertmanager's API v2 (`/api/v2`), which amtool, Grafana and Prometheus speak.

mod handlers;
pub mod wire;

use crate::node::Node;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::get;
use std::sync::Arc;

/// Prometheus sends alerts in batches of up to a few hundred; bulk imports may send more.
const ALERTS_BODY_LIMIT_BYTES: usize = 32 << 20;

pub fn routes() -> Router<Arc<Node>> {
    Router::new()
        .route(
            "/api/v2/alerts",
            get(handlers::get_alerts)
                .post(handlers::post_alerts)
                .layer(DefaultBodyLimit::max(ALERTS_BODY_LIMIT_BYTES)),
        )
        .route("/api/v2/alerts/groups", get(handlers::get_alert_groups))
        .route(
            "/api/v2/silences",
            get(handlers::get_silences).post(handlers::post_silences),
        )
        .route(
            "/api/v2/silence/{id}",
            get(handlers::get_silence).delete(handlers::delete_silence),
        )
        .route("/api/v2/receivers", get(handlers::get_receivers))
}
