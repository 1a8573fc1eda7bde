//! Prometheus's TSDB admin API, behind `--web.enable-admin-api` (off by default; then every
//! endpoint answers 503 `unavailable` "admin APIs disabled", as Prometheus does):
//!
//! - `POST|PUT /api/v1/admin/tsdb/delete_series` (`match[]`, repeated; `start`, `end`): 204;
//! - `POST|PUT /api/v1/admin/tsdb/clean_tombstones`: 204;
//! - `POST|PUT /api/v1/admin/tsdb/snapshot` (`skip_head`): `{"name": …}`, the snapshot being
//!   `<storage.path>/tsdb/snapshots/<name>/` (blocks hard-linked, plus the head as a block).

use super::prometheus::{
    ApiError, ApiSuccess, ErrorKind, Form, MAX_TIME_MS, MIN_TIME_MS, blocking, parse_selector,
    time_param,
};
use crate::node::Node;
use crate::promql::tsdb_source::convert_all;
use crate::tsdb::{Matcher, Tsdb};
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use std::sync::Arc;

/// The most `match[]` selectors one request may carry.
const MAX_SELECTORS: usize = 1000;

/// The routes, relative to the route prefix.
pub fn routes() -> Router<Arc<Node>> {
    Router::new()
        .route(
            "/api/v1/admin/tsdb/delete_series",
            post(delete_series).put(delete_series),
        )
        .route(
            "/api/v1/admin/tsdb/clean_tombstones",
            post(clean_tombstones).put(clean_tombstones),
        )
        .route("/api/v1/admin/tsdb/snapshot", post(snapshot).put(snapshot))
}

fn enabled(node: &Node) -> Result<Arc<Tsdb>, ApiError> {
    if !node.options.web_enable_admin_api {
        return Err(ApiError::new(ErrorKind::Unavailable, "admin APIs disabled"));
    }
    node.tsdb()
        .cloned()
        .ok_or_else(|| ApiError::new(ErrorKind::Unavailable, "TSDB not ready"))
}

fn no_content(result: Result<(), ApiError>) -> Response {
    match result {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(error) => error.into_response(),
    }
}

/// `POST|PUT /api/v1/admin/tsdb/delete_series`.
async fn delete_series(State(node): State<Arc<Node>>, form: Form) -> Response {
    no_content(delete_series_inner(&node, form).await)
}

async fn delete_series_inner(node: &Node, form: Form) -> Result<(), ApiError> {
    let tsdb = enabled(node)?;
    let selectors = form.values("match[]");
    if selectors.is_empty() {
        return Err(ApiError::bad_data("no match[] parameter provided"));
    }
    if selectors.len() > MAX_SELECTORS {
        return Err(ApiError::bad_data(format!(
            "too many match[] parameters: {} (at most {MAX_SELECTORS})",
            selectors.len()
        )));
    }
    let start = time_param(&form, "start", MIN_TIME_MS)?;
    let end = time_param(&form, "end", MAX_TIME_MS)?;
    let mut sets = Vec::with_capacity(selectors.len());
    for text in selectors {
        sets.push(selector_matchers(text).map_err(ApiError::bad_data)?);
    }
    blocking(move || {
        for matchers in &sets {
            tsdb.delete(matchers, start, end)
                .map_err(|error| ApiError::new(ErrorKind::Internal, error.to_string()))?;
        }
        Ok(())
    })
    .await
}

/// `POST|PUT /api/v1/admin/tsdb/clean_tombstones`.
async fn clean_tombstones(State(node): State<Arc<Node>>) -> Response {
    let result = async {
        let tsdb = enabled(&node)?;
        blocking(move || {
            tsdb.clean_tombstones()
                .map(|_| ())
                .map_err(|error| ApiError::new(ErrorKind::Internal, error.to_string()))
        })
        .await
    }
    .await;
    no_content(result)
}

/// `POST|PUT /api/v1/admin/tsdb/snapshot`.
async fn snapshot(State(node): State<Arc<Node>>, form: Form) -> Response {
    let result = async {
        let tsdb = enabled(&node)?;
        let skip_head = match form.value("skip_head") {
            "" => false,
            text => parse_go_bool(text).ok_or_else(|| {
                ApiError::bad_data(format!(
                    "unable to parse boolean 'skip_head' argument: strconv.ParseBool: parsing {text:?}: invalid syntax"
                ))
            })?,
        };
        let name = snapshot_name(jiff::Timestamp::now(), random_u63());
        let dir = tsdb.folder().join("snapshots").join(&name);
        blocking(move || {
            tsdb.snapshot(&dir, !skip_head).map_err(|error| {
                ApiError::new(ErrorKind::Internal, format!("create snapshot: {error}"))
            })
        })
        .await?;
        let mut data = String::from("{\"name\":");
        data.push_str(&serde_json::Value::String(name).to_string());
        data.push('}');
        Ok::<_, ApiError>(ApiSuccess {
            data,
            ..ApiSuccess::default()
        })
    }
    .await;
    match result {
        Ok(success) => success.into_response(),
        Err(error) => error.into_response(),
    }
}

/// Prometheus's snapshot name: the UTC time as `20060102T150405Z` and 16 hex digits of a
/// random 63-bit number.
fn snapshot_name(now: jiff::Timestamp, random: u64) -> String {
    format!("{}-{random:016x}", now.strftime("%Y%m%dT%H%M%SZ"))
}

fn random_u63() -> u64 {
    let mut bytes = [0u8; 8];
    // Without OS randomness the name still differs by its time; the number only avoids
    // collisions within one second.
    let _ = getrandom::fill(&mut bytes);
    u64::from_le_bytes(bytes) >> 1
}

/// Go's `strconv.ParseBool`.
fn parse_go_bool(text: &str) -> Option<bool> {
    match text {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// A `match[]` series selector (`up{job="a"}`) as TSDB matchers, with the parser's own
/// errors; like the series API, it must have a matcher that does not match "".
fn selector_matchers(text: &str) -> Result<Vec<Matcher>, String> {
    let matchers = parse_selector(text)?;
    if matchers.iter().all(|m| m.matches("")) {
        return Err("vector selector must contain at least one non-empty matcher".into());
    }
    convert_all(&matchers).map_err(|error| error.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_names_look_like_prometheus_ones() {
        let now: jiff::Timestamp = "2021-03-22T16:46:46Z".parse().unwrap();
        assert_eq!(
            snapshot_name(now, 0x7d0b_9ca8_be8e_9981),
            "20210322T164646Z-7d0b9ca8be8e9981"
        );
        assert_eq!(snapshot_name(now, 1), "20210322T164646Z-0000000000000001");
    }

    #[test]
    fn selectors_and_times() {
        let matchers = selector_matchers("up{job=~\"a|b\"}").unwrap();
        assert_eq!(matchers.len(), 2);
        assert!(selector_matchers("{a=~\".*\"}").is_err());
        assert!(selector_matchers("rate(up[5m])").is_err());
        let form = Form::from_pairs([("start", "1.5"), ("end", "1970-01-01T00:00:02Z")]);
        assert_eq!(time_param(&form, "start", 0).unwrap(), 1500);
        assert_eq!(time_param(&form, "end", 0).unwrap(), 2000);
        assert_eq!(time_param(&form, "other", 7).unwrap(), 7);
        let bad = Form::from_pairs([("start", "yesterday")]);
        assert!(time_param(&bad, "start", 0).is_err());
        assert_eq!(parse_go_bool("T"), Some(true));
        assert_eq!(parse_go_bool("no"), None);
    }
}
