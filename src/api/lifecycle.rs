//! `/-/healthy`, `/-/ready`, `/-/reload` and `/metrics`.

use crate::node::Node;
use crate::telemetry::{OPENMETRICS_CONTENT_TYPE, TEXT_CONTENT_TYPE};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use std::sync::Arc;

pub async fn healthy() -> &'static str {
    "Tocsin is Healthy.\n"
}

/// 200 once the node can serve (storage open; later: cluster settled), 503 before and while
/// shutting down, so load balancers route around it.
pub async fn ready(State(node): State<Arc<Node>>) -> (StatusCode, &'static str) {
    if node.is_ready() {
        (StatusCode::OK, "Tocsin is Ready.\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable\n")
    }
}

/// Reloads the configuration. A bad configuration keeps the running one and answers 500 with
/// the errors, as Prometheus and Alertmanager do.
pub async fn reload(State(node): State<Arc<Node>>) -> (StatusCode, String) {
    let reloading = Arc::clone(&node);
    match tokio::task::spawn_blocking(move || reloading.reload()).await {
        Ok(Ok(())) => (StatusCode::OK, String::new()),
        Ok(Err(errors)) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("failed to reload config: {errors}\n"),
        ),
        Err(error) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("failed to reload config: {error}\n"),
        ),
    }
}

/// Self-metrics, in OpenMetrics when the scraper asks for it and Prometheus text otherwise.
pub async fn metrics(State(node): State<Arc<Node>>, headers: HeaderMap) -> impl IntoResponse {
    let wants_openmetrics = headers
        .get(header::ACCEPT)
        .and_then(|accept| accept.to_str().ok())
        .is_some_and(|accept| accept.contains("application/openmetrics-text"));
    if wants_openmetrics {
        (
            [(header::CONTENT_TYPE, OPENMETRICS_CONTENT_TYPE)],
            node.telemetry.encode_openmetrics(),
        )
    } else {
        (
            [(header::CONTENT_TYPE, TEXT_CONTENT_TYPE)],
            node.telemetry.encode_text(),
        )
    }
}

#[cfg(test)]
mod tests {
    use crate::node::{self, Node, NodeOptions};
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use std::sync::Arc;
    use tower::ServiceExt as _;

    fn unready_node() -> Arc<Node> {
        let options = NodeOptions::new("unused".into(), "127.0.0.1:0".into());
        let loaded = node::load_config(&options).unwrap();
        let cluster = node::resolve_cluster(&options, &loaded).unwrap();
        let url = url::Url::parse("http://localhost:9090/").unwrap();
        Arc::new(Node::new(options, loaded, cluster, url))
    }

    #[tokio::test]
    async fn ready_is_503_until_the_node_is_ready() {
        let router = crate::api::router(unready_node());
        let request = Request::get("/-/ready").body(Body::empty()).unwrap();
        let response = router.clone().oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        let request = Request::get("/-/healthy").body(Body::empty()).unwrap();
        assert_eq!(
            router.oneshot(request).await.unwrap().status(),
            StatusCode::OK
        );
    }
}
