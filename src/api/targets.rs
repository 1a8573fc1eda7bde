//! `/api/v1/targets` and `/api/v1/scrape_pools`, in Prometheus's JSON shapes.

use crate::ingest::relabel::LabelBuilder;
use crate::ingest::scrape::ActiveTarget;
use crate::node::ingest::IngestHandle;
use axum::Router;
use axum::extract::{Query, State};
use axum::routing::get;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;

/// The routes, with their own state (the ingest handle), mergeable into any router.
pub fn routes<S: Clone + Send + Sync + 'static>(ingest: Arc<IngestHandle>) -> Router<S> {
    Router::new()
        .route("/api/v1/targets", get(targets))
        .route("/api/v1/scrape_pools", get(scrape_pools))
        .with_state(ingest)
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TargetsQuery {
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    scrape_pool: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ActiveTargetJson {
    discovered_labels: BTreeMap<String, String>,
    labels: BTreeMap<String, String>,
    scrape_pool: String,
    scrape_url: String,
    global_url: String,
    last_error: String,
    last_scrape: String,
    last_scrape_duration: f64,
    health: &'static str,
    scrape_interval: String,
    scrape_timeout: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct DroppedTargetJson {
    discovered_labels: BTreeMap<String, String>,
    scrape_pool: String,
}

fn map(labels: &LabelBuilder) -> BTreeMap<String, String> {
    labels
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect()
}

/// Go's zero time, which Prometheus shows for a target never scraped.
const NEVER: &str = "0001-01-01T00:00:00Z";

fn active_json(target: ActiveTarget) -> ActiveTargetJson {
    let last_scrape = target
        .status
        .last_scrape
        .and_then(|time| jiff::Timestamp::try_from(time).ok())
        .map_or_else(|| NEVER.to_string(), |time| time.to_string());
    let duration = |d: std::time::Duration| {
        crate::config::PromDuration::from_millis(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            .to_string()
    };
    ActiveTargetJson {
        discovered_labels: map(&target.target.discovered),
        labels: target
            .target
            .public_labels()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect(),
        scrape_pool: target.pool,
        scrape_url: target.target.url.to_string(),
        global_url: target.target.url.to_string(),
        last_error: target.status.last_error,
        last_scrape,
        last_scrape_duration: target.status.last_duration.as_secs_f64(),
        health: target.status.health.as_str(),
        scrape_interval: duration(target.target.interval),
        scrape_timeout: duration(target.target.timeout),
    }
}

/// `GET /api/v1/targets?state=active|dropped|any&scrapePool=name`.
pub async fn targets(
    State(ingest): State<Arc<IngestHandle>>,
    Query(query): Query<TargetsQuery>,
) -> axum::Json<serde_json::Value> {
    let state = query.state.as_deref().unwrap_or("any").to_ascii_lowercase();
    let show_active = matches!(state.as_str(), "active" | "any" | "");
    let show_dropped = matches!(state.as_str(), "dropped" | "any" | "");
    let pool_matches = |pool: &str| query.scrape_pool.as_deref().is_none_or(|want| want == pool);
    let mut active = Vec::new();
    let mut dropped = Vec::new();
    let mut counts = BTreeMap::new();
    if let Some(runtime) = ingest.get() {
        if show_active {
            active = runtime
                .scrape
                .active_targets()
                .into_iter()
                .filter(|target| pool_matches(&target.pool))
                .map(active_json)
                .collect();
        }
        if show_dropped {
            dropped = runtime
                .scrape
                .dropped_targets()
                .into_iter()
                .filter(|target| pool_matches(&target.pool))
                .map(|target| DroppedTargetJson {
                    discovered_labels: map(&target.discovered),
                    scrape_pool: target.pool,
                })
                .collect();
        }
        counts = runtime
            .scrape
            .dropped_counts()
            .into_iter()
            .filter(|(pool, _)| pool_matches(pool))
            .collect();
    }
    super::prometheus_success(serde_json::json!({
        "activeTargets": active,
        "droppedTargets": dropped,
        "droppedTargetCounts": counts,
    }))
}

/// `GET /api/v1/scrape_pools`.
pub async fn scrape_pools(
    State(ingest): State<Arc<IngestHandle>>,
) -> axum::Json<serde_json::Value> {
    let pools = ingest
        .get()
        .map(|runtime| runtime.scrape.pool_names())
        .unwrap_or_default();
    super::prometheus_success(serde_json::json!({ "scrapePools": pools }))
}
