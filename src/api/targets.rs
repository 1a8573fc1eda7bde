//! `/api/v1/targets`, `/api/v1/scrape_pools`, `/api/v1/targets/metadata` and
//! `/api/v1/metadata`, in Prometheus's JSON shapes. Metadata is what each active target's last
//! successful scrape declared (`# TYPE`, `# HELP`, `# UNIT`).

use crate::api::prometheus::ApiError;
use crate::ingest::relabel::LabelBuilder;
use crate::ingest::scrape::{ActiveTarget, MetricMetadata};
use crate::node::ingest::IngestHandle;
use crate::promql::{MatchKind, Matcher};
use axum::Router;
use axum::extract::{Query, State};
use axum::routing::get;
use promql_parser::label::MatchOp;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// The routes, with their own state (the ingest handle), mergeable into any router.
pub fn routes<S: Clone + Send + Sync + 'static>(ingest: Arc<IngestHandle>) -> Router<S> {
    Router::new()
        .route("/api/v1/targets", get(targets))
        .route("/api/v1/scrape_pools", get(scrape_pools))
        .route("/api/v1/targets/metadata", get(target_metadata))
        .route("/api/v1/metadata", get(metric_metadata))
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

/// Prometheus's `limit` parameters: a number, negative (or absent) for no limit.
fn limit_param(params: &BTreeMap<String, String>, name: &str) -> Result<i64, ApiError> {
    match params.get(name).map(String::as_str) {
        None | Some("") => Ok(-1),
        Some(text) => text
            .parse()
            .map_err(|_| ApiError::bad_data(format!("{name} must be a number"))),
    }
}

/// Whether `count` items reach a limit (`limit` < 0: none).
fn reached(limit: i64, count: usize) -> bool {
    limit >= 0 && count as u64 >= limit.unsigned_abs()
}

/// A `match_target` selector (`{job="node"}`) as matchers.
fn target_matchers(text: &str) -> Result<Vec<Matcher>, ApiError> {
    let invalid = |reason: String| ApiError::invalid_param("match_target", reason);
    let expr = crate::promql::parse::parse_query(text).map_err(|e| invalid(e.to_string()))?;
    let promql_parser::parser::Expr::VectorSelector(selector) = expr else {
        return Err(invalid(format!(
            "1:1: parse error: unexpected expression, expected a series selector in {}",
            crate::promql::parse::go_quote(text)
        )));
    };
    let mut out = Vec::new();
    if let Some(name) = &selector.name {
        out.push(
            Matcher::new(MatchKind::Equal, "__name__", name).map_err(|e| invalid(e.to_string()))?,
        );
    }
    for matcher in &selector.matchers.matchers {
        let kind = match matcher.op {
            MatchOp::Equal => MatchKind::Equal,
            MatchOp::NotEqual => MatchKind::NotEqual,
            MatchOp::Re(_) => MatchKind::Regex,
            MatchOp::NotRe(_) => MatchKind::NotRegex,
        };
        out.push(
            Matcher::new(kind, &matcher.name, &matcher.value)
                .map_err(|e| invalid(e.to_string()))?,
        );
    }
    Ok(out)
}

fn target_labels(target: &ActiveTarget) -> BTreeMap<String, String> {
    target
        .target
        .public_labels()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect()
}

#[derive(Serialize)]
struct TargetMetadataJson {
    target: BTreeMap<String, String>,
    /// Absent when the request names one metric, as in Prometheus.
    #[serde(skip_serializing_if = "Option::is_none")]
    metric: Option<String>,
    #[serde(rename = "type")]
    kind: &'static str,
    help: String,
    unit: String,
}

/// `GET /api/v1/targets/metadata?match_target=...&metric=...&limit=...`: metadata per target.
/// Like Prometheus, the limit is checked before each target, so the last target's list is
/// whole.
pub async fn target_metadata(
    State(ingest): State<Arc<IngestHandle>>,
    Query(params): Query<BTreeMap<String, String>>,
) -> Result<axum::Json<serde_json::Value>, ApiError> {
    let limit = limit_param(&params, "limit")?;
    let matchers = match params.get("match_target").map(String::as_str) {
        None | Some("") => Vec::new(),
        Some(text) => target_matchers(text)?,
    };
    let metric = params.get("metric").map(String::as_str).unwrap_or("");
    let mut out: Vec<TargetMetadataJson> = Vec::new();
    let targets = ingest
        .get()
        .map(|runtime| runtime.scrape.active_targets())
        .unwrap_or_default();
    for target in &targets {
        if reached(limit, out.len()) {
            break;
        }
        let labels = target_labels(target);
        let matches = matchers
            .iter()
            .all(|matcher| matcher.matches(labels.get(&matcher.name).map_or("", String::as_str)));
        if !matches {
            continue;
        }
        let metadata = &target.status.metadata;
        if metric.is_empty() {
            for (family, entry) in metadata.iter() {
                out.push(TargetMetadataJson {
                    target: labels.clone(),
                    metric: Some(family.clone()),
                    kind: entry.kind,
                    help: entry.help.clone(),
                    unit: entry.unit.clone(),
                });
            }
        } else if let Some(entry) = metadata.get(metric) {
            out.push(TargetMetadataJson {
                target: labels,
                metric: None,
                kind: entry.kind,
                help: entry.help.clone(),
                unit: entry.unit.clone(),
            });
        }
    }
    Ok(super::prometheus_success(out))
}

#[derive(Serialize, PartialEq, Eq, PartialOrd, Ord, Clone)]
struct MetadataJson {
    #[serde(rename = "type")]
    kind: &'static str,
    help: String,
    unit: String,
}

/// `GET /api/v1/metadata?metric=...&limit=...&limit_per_metric=...`: each metric's distinct
/// metadata across targets. Metrics come in name order (Prometheus's order is a Go map's).
pub async fn metric_metadata(
    State(ingest): State<Arc<IngestHandle>>,
    Query(params): Query<BTreeMap<String, String>>,
) -> Result<axum::Json<serde_json::Value>, ApiError> {
    let limit = limit_param(&params, "limit")?;
    let limit_per_metric = limit_param(&params, "limit_per_metric")?;
    let metric = params.get("metric").map(String::as_str).unwrap_or("");
    let targets = ingest
        .get()
        .map(|runtime| runtime.scrape.active_targets())
        .unwrap_or_default();
    let mut metrics: BTreeMap<String, BTreeSet<MetadataJson>> = BTreeMap::new();
    let mut add = |family: &str, entry: &MetricMetadata| {
        let set = metrics.entry(family.to_string()).or_default();
        if limit_per_metric > 0 && reached(limit_per_metric, set.len()) {
            return;
        }
        set.insert(MetadataJson {
            kind: entry.kind,
            help: entry.help.clone(),
            unit: entry.unit.clone(),
        });
    };
    for target in &targets {
        let metadata = &target.status.metadata;
        if metric.is_empty() {
            for (family, entry) in metadata.iter() {
                add(family, entry);
            }
        } else if let Some(entry) = metadata.get(metric) {
            add(metric, entry);
        }
    }
    let mut out = serde_json::Map::new();
    for (family, set) in metrics {
        if reached(limit, out.len()) {
            break;
        }
        let list: Vec<MetadataJson> = set.into_iter().collect();
        out.insert(
            family,
            serde_json::to_value(list).unwrap_or(serde_json::Value::Null),
        );
    }
    Ok(super::prometheus_success(out))
}
