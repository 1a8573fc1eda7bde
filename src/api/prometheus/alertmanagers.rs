//! `GET /api/v1/alertmanagers`: the Alertmanagers rule alerts go to, and those relabeling
//! dropped, in Prometheus's shape (`activeAlertmanagers` / `droppedAlertmanagers`, each
//! `{"url": ...}`).

use crate::node::notifier::{AlertmanagerUrls, NotifierHandle};
use axum::Router;
use axum::extract::State;
use axum::routing::get;
use std::sync::Arc;

/// The route, with its own state (the notifier handle), mergeable into any router. Until the
/// notifier runs both lists are empty.
pub fn routes<S: Clone + Send + Sync + 'static>(notifier: Arc<NotifierHandle>) -> Router<S> {
    Router::new()
        .route("/api/v1/alertmanagers", get(alertmanagers))
        .with_state(notifier)
}

async fn alertmanagers(
    State(notifier): State<Arc<NotifierHandle>>,
) -> axum::Json<serde_json::Value> {
    let urls = notifier
        .get()
        .map(|notifier| notifier.alertmanagers())
        .unwrap_or_default();
    axum::Json(response(&urls))
}

/// The response body for `urls`.
pub fn response(urls: &AlertmanagerUrls) -> serde_json::Value {
    let list = |urls: &[String]| -> Vec<serde_json::Value> {
        urls.iter()
            .map(|url| serde_json::json!({ "url": url }))
            .collect()
    };
    serde_json::json!({
        "status": "success",
        "data": {
            "activeAlertmanagers": list(&urls.active),
            "droppedAlertmanagers": list(&urls.dropped),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shape_is_prometheus() {
        let urls = AlertmanagerUrls {
            active: vec!["http://am:9093/api/v2/alerts".into()],
            dropped: vec![],
        };
        assert_eq!(
            response(&urls),
            serde_json::json!({
                "status": "success",
                "data": {
                    "activeAlertmanagers": [{"url": "http://am:9093/api/v2/alerts"}],
                    "droppedAlertmanagers": []
                }
            })
        );
    }
}
