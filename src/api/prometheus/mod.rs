//! The query half of Prometheus's HTTP API v1: `/api/v1/query`, `/query_range`, `/series`,
//! `/labels`, `/label/{name}/values`, `/format_query`, `/parse_query`, `/query_exemplars`.
//!
//! - `params.rs`: request parameters as Go's `r.Form` sees them (an urlencoded POST body first,
//!   then the URL query), times, durations and limits as Prometheus parses them;
//! - `json.rs`: the envelope and values, written by hand so that numbers come out exactly as
//!   Prometheus writes them (timestamps as seconds with millisecond fractions, sample values as
//!   strings with Go's shortest formatting, `NaN`, `+Inf`, `-Inf`);
//! - `query.rs`: instant and range queries, `format_query`, `query_exemplars`;
//! - `ast.rs`: `parse_query`'s JSON tree, as Prometheus 3's `translateAST` builds it;
//! - `metadata.rs`: series, label names and label values.
//!
//! Errors carry Prometheus's `errorType` and HTTP status: `bad_data` 400, `execution` 422,
//! `canceled` 499, `timeout` 503, `unavailable` 503, `internal` 500.

pub mod alertmanagers;
mod ast;
mod json;
mod metadata;
mod params;
mod query;
mod rules;

use crate::node::Node;
use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use std::sync::Arc;

pub(crate) use metadata::parse_selector;
pub use params::{Form, MAX_TIME_MS, MIN_TIME_MS, time_param};

/// The routes, relative to the route prefix.
pub fn routes() -> Router<Arc<Node>> {
    Router::new()
        .route("/api/v1/query", get(query::instant).post(query::instant))
        .route("/api/v1/query_range", get(query::range).post(query::range))
        .route(
            "/api/v1/query_exemplars",
            get(query::exemplars).post(query::exemplars),
        )
        .route(
            "/api/v1/format_query",
            get(query::format).post(query::format),
        )
        .route("/api/v1/parse_query", get(ast::parse).post(ast::parse))
        .route(
            "/api/v1/series",
            get(metadata::series).post(metadata::series),
        )
        .route(
            "/api/v1/labels",
            get(metadata::labels).post(metadata::labels),
        )
        .route("/api/v1/label/{name}/values", get(metadata::label_values))
        .route("/api/v1/rules", get(rules::rules))
        .route("/api/v1/alerts", get(rules::alerts))
}

/// Prometheus's `errorType`s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    BadData,
    Execution,
    Timeout,
    /// The client went away before the answer (Prometheus answers 499, which nobody reads).
    Canceled,
    Unavailable,
    Internal,
}

impl ErrorKind {
    fn as_str(self) -> &'static str {
        match self {
            ErrorKind::BadData => "bad_data",
            ErrorKind::Execution => "execution",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Canceled => "canceled",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::Internal => "internal",
        }
    }

    fn status(self) -> StatusCode {
        match self {
            ErrorKind::BadData => StatusCode::BAD_REQUEST,
            ErrorKind::Execution => StatusCode::UNPROCESSABLE_ENTITY,
            ErrorKind::Timeout | ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorKind::Canceled => {
                StatusCode::from_u16(499).unwrap_or(StatusCode::SERVICE_UNAVAILABLE)
            }
            ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// A failed `/api/v1` request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub kind: ErrorKind,
    pub message: String,
}

impl ApiError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        ApiError {
            kind,
            message: message.into(),
        }
    }

    pub fn bad_data(message: impl Into<String>) -> Self {
        ApiError::new(ErrorKind::BadData, message)
    }

    /// Prometheus's `invalidParamError`: `invalid parameter "name": reason`.
    pub fn invalid_param(name: &str, reason: impl std::fmt::Display) -> Self {
        ApiError::bad_data(format!("invalid parameter \"{name}\": {reason}"))
    }

    fn not_ready() -> Self {
        ApiError::new(ErrorKind::Unavailable, "TSDB not ready")
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = String::with_capacity(self.message.len() + 64);
        body.push_str("{\"status\":\"error\",\"errorType\":");
        json::string(&mut body, self.kind.as_str());
        body.push_str(",\"error\":");
        json::string(&mut body, &self.message);
        body.push('}');
        (
            self.kind.status(),
            [(header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response()
    }
}

/// A successful answer: `data` as JSON text, and the query's annotations.
#[derive(Debug, Default)]
pub struct ApiSuccess {
    pub data: String,
    pub warnings: Vec<String>,
    pub infos: Vec<String>,
}

impl ApiSuccess {
    pub fn new(data: String) -> Self {
        ApiSuccess {
            data,
            ..ApiSuccess::default()
        }
    }
}

impl IntoResponse for ApiSuccess {
    fn into_response(self) -> Response {
        let mut body = String::with_capacity(self.data.len() + 64);
        body.push_str("{\"status\":\"success\",\"data\":");
        body.push_str(&self.data);
        for (key, list) in [("warnings", &self.warnings), ("infos", &self.infos)] {
            if list.is_empty() {
                continue;
            }
            body.push_str(",\"");
            body.push_str(key);
            body.push_str("\":");
            json::strings(&mut body, list);
        }
        body.push('}');
        (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response()
    }
}

pub type ApiResult = Result<ApiSuccess, ApiError>;

/// The node's TSDB, or `unavailable` while it opens.
fn tsdb(node: &Node) -> Result<Arc<crate::tsdb::Tsdb>, ApiError> {
    node.tsdb().cloned().ok_or_else(ApiError::not_ready)
}

/// Runs blocking storage work off the async workers.
pub(crate) async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(work)
        .await
        .unwrap_or_else(|error| {
            Err(ApiError::new(
                ErrorKind::Internal,
                format!("request task failed: {error}"),
            ))
        })
}
