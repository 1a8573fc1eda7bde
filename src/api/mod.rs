//! HTTP: Prometheus's `/api/v1`, Alertmanager's `/api/v2`, the `/-/` lifecycle endpoints and
//! `/metrics`. Only this module knows HTTP; handlers translate to and from the node's types.

mod admin;
pub mod alertmanager;
mod lifecycle;
pub mod prometheus;
pub mod remote_read;
pub mod remote_write;
mod status;
pub mod targets;
mod ui;

use crate::node::Node;
use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use std::sync::Arc;
use std::time::Instant;

/// Request bodies larger than this are refused with 413, unless an endpoint sets its own limit.
const DEFAULT_BODY_LIMIT_BYTES: usize = 2 << 20;

/// Every endpoint, under the route prefix taken from `--web.external-url`.
pub fn router(node: Arc<Node>) -> Router {
    let routes = Router::new()
        .route(
            "/-/healthy",
            get(lifecycle::healthy).head(lifecycle::healthy),
        )
        .route("/-/ready", get(lifecycle::ready).head(lifecycle::ready))
        .route("/-/reload", post(lifecycle::reload).put(lifecycle::reload))
        .route("/metrics", get(lifecycle::metrics))
        .route("/api/v1/status/buildinfo", get(status::build_info))
        .route("/api/v1/status/config", get(status::config))
        .route("/api/v1/status/flags", get(status::flags))
        .route("/api/v1/status/runtimeinfo", get(status::runtime_info))
        .route("/api/v1/status/tsdb", get(status::tsdb_status))
        .route("/api/v1/status/walreplay", get(status::wal_replay))
        .route("/api/v2/status", get(status::alertmanager_status))
        .merge(alertmanager::routes())
        .merge(prometheus::routes())
        .merge(admin::routes())
        .merge(targets::routes(Arc::clone(&node.ingest)))
        .merge(prometheus::alertmanagers::routes(Arc::clone(
            &node.notifier,
        )))
        .merge(remote_write::routes(Arc::clone(&node.ingest)))
        .merge(remote_read::routes(Arc::clone(&node)))
        .merge(ui::routes())
        .layer(middleware::from_fn_with_state(
            Arc::clone(&node),
            record_request,
        ))
        .layer(DefaultBodyLimit::max(DEFAULT_BODY_LIMIT_BYTES))
        .with_state(Arc::clone(&node));
    let prefix = crate::node::route_prefix(&node.external_url);
    if prefix.is_empty() {
        routes
    } else {
        Router::new()
            .nest(&prefix, routes)
            .merge(ui::prefix_root(&prefix))
    }
}

/// Counts and times every request by its route pattern (never the raw path, whose values are
/// unbounded), as `tocsin_http_requests_total` and `tocsin_http_request_duration_seconds`.
async fn record_request(State(node): State<Arc<Node>>, request: Request, next: Next) -> Response {
    let handler = request
        .extensions()
        .get::<MatchedPath>()
        .map(|path| path.as_str().to_string())
        .unwrap_or_else(|| "other".to_string());
    let started = Instant::now();
    let response = next.run(request).await;
    node.telemetry.record_http_request(
        &handler,
        response.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    response
}

/// Prometheus's JSON envelope for a successful `/api/v1` answer.
fn prometheus_success<T: serde::Serialize>(data: T) -> axum::Json<serde_json::Value> {
    axum::Json(serde_json::json!({ "status": "success", "data": data }))
}
