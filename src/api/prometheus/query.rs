//! `/api/v1/query`, `/api/v1/query_range`, `/api/v1/format_query`, `/api/v1/query_exemplars`.

use super::params::{self, Form, MAX_TIME_MS, MIN_TIME_MS, limit_param, time_param};
use super::{ApiError, ApiResult, ApiSuccess, ErrorKind, blocking, json, tsdb};
use crate::node::Node;
use crate::promql::limits::{GateSlot, MAX_POINTS_PER_SERIES, QueryGate, QuerySettings};
use crate::promql::parse::parse_query;
use crate::promql::{
    Engine, Matcher, QueryError, QueryResult, Queryable, SeriesData, StorageError, Value,
};
use axum::extract::State;
use std::cell::Cell;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const TRUNCATED: &str = "results truncated due to limit";

/// How a query failed, in Prometheus's terms: a query that is not valid is a bad parameter;
/// the rest fail in execution (or time out).
fn query_error(error: QueryError) -> ApiError {
    match error {
        QueryError::BadData(message) => ApiError::invalid_param("query", message),
        QueryError::Storage(StorageError::InvalidMatcher(message)) => {
            ApiError::invalid_param("query", message)
        }
        QueryError::Storage(StorageError::Internal(message)) => {
            ApiError::new(ErrorKind::Internal, message)
        }
        QueryError::Timeout | QueryError::QueueTimeout => {
            ApiError::new(ErrorKind::Timeout, error.to_string())
        }
        QueryError::Canceled | QueryError::QueueCanceled => {
            ApiError::new(ErrorKind::Canceled, error.to_string())
        }
        other => ApiError::new(ErrorKind::Execution, other.to_string()),
    }
}

/// Counts the samples the engine loads, for `stats`; reads the TSDB and the `remote_read`
/// endpoints.
struct Counting<'a> {
    inner: crate::remote::read::FanoutQueryable<'a>,
    samples: Cell<u64>,
}

impl Queryable for Counting<'_> {
    fn select(
        &self,
        matchers: &[Matcher],
        mint_ms: i64,
        maxt_ms: i64,
    ) -> Result<Vec<SeriesData>, StorageError> {
        let series = self.inner.select(matchers, mint_ms, maxt_ms)?;
        let loaded: usize = series.iter().map(|s| s.samples.len()).sum();
        self.samples
            .set(self.samples.get().saturating_add(loaded as u64));
        Ok(series)
    }

    fn label_names(&self, matchers: &[Matcher]) -> Result<Vec<String>, StorageError> {
        self.inner.label_names(matchers)
    }

    fn label_values(&self, name: &str, matchers: &[Matcher]) -> Result<Vec<String>, StorageError> {
        self.inner.label_values(name, matchers)
    }
}

/// Sets the query's cancel flag when dropped: the handler's future is dropped when the HTTP
/// client disconnects, and the evaluation on the blocking pool then stops at its next check.
struct CancelOnDrop(Arc<AtomicBool>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// The engine for one request: the node's `--query.*` settings, the request's `timeout` (never
/// beyond `--query.timeout`) and `lookback_delta`, and a cancel flag set when the returned guard
/// drops.
fn engine_for(form: &Form, settings: &QuerySettings) -> Result<(Engine, CancelOnDrop), ApiError> {
    let mut engine = settings.engine();
    let cancel = Arc::new(AtomicBool::new(false));
    engine.limits.cancel = Some(Arc::clone(&cancel));
    let timeout = form.value("timeout");
    if !timeout.is_empty() {
        let nanos =
            params::parse_duration(timeout).map_err(|e| ApiError::invalid_param("timeout", e))?;
        let requested = Duration::from_nanos(u64::try_from(nanos.max(0)).unwrap_or(u64::MAX));
        engine.limits.timeout = Some(match engine.limits.timeout {
            Some(default) => default.min(requested),
            None => requested,
        });
    }
    let lookback = form.value("lookback_delta");
    if !lookback.is_empty() {
        let nanos = params::parse_duration(lookback).map_err(|e| {
            ApiError::bad_data(format!("error parsing lookback delta duration: {e}"))
        })?;
        let ms = i64::try_from(nanos / 1_000_000).unwrap_or(i64::MAX);
        if ms > 0 {
            engine.lookback_delta_ms = ms;
        }
    }
    Ok((engine, CancelOnDrop(cancel)))
}

/// What one evaluation returned, with the samples it loaded and how long it took.
struct Evaluated {
    result: QueryResult,
    /// What the `remote_read` endpoints that failed said.
    remote_warnings: Vec<String>,
    samples: u64,
    preparation: Duration,
    evaluation: Duration,
    /// Time spent waiting for a slot (`--query.max-concurrency`).
    queued: Duration,
}

/// Waits (on the blocking pool) for one of the node's query slots, within the query's timeout
/// counted from when the request arrived; the engine gets what is left of the timeout. Returns
/// the slot to hold while evaluating, and the time spent waiting.
fn enter_gate(
    gate: &QueryGate,
    mut engine: Engine,
    arrived: Instant,
) -> Result<(Engine, GateSlot, Duration), ApiError> {
    let deadline = engine.limits.timeout.and_then(|t| arrived.checked_add(t));
    let waiting = Instant::now();
    let slot = gate
        .enter(deadline, engine.limits.cancel.as_deref())
        .map_err(query_error)?;
    if let Some(deadline) = deadline {
        engine.limits.timeout = Some(deadline.saturating_duration_since(Instant::now()));
    }
    Ok((engine, slot, waiting.elapsed()))
}

fn truncate(value: &mut Value, limit: usize) -> bool {
    if limit == 0 {
        return false;
    }
    match value {
        Value::Vector(vector) if vector.len() > limit => {
            vector.truncate(limit);
            true
        }
        Value::Matrix(matrix) if matrix.len() > limit => {
            matrix.truncate(limit);
            true
        }
        _ => false,
    }
}

/// `stats` as Prometheus words it: timings in seconds and sample counts. The sample counts are
/// the samples loaded from storage (Prometheus counts them per step), and the peak is at least
/// the points returned.
fn stats_json(evaluated: &Evaluated, total: Duration, points: u64) -> String {
    let eval = evaluated.evaluation.as_secs_f64();
    let prep = evaluated.preparation.as_secs_f64();
    format!(
        "{{\"timings\":{{\"evalTotalTime\":{eval},\"resultSortTime\":0,\"queryPreparationTime\":{prep},\"innerEvalTime\":{eval},\"execQueueTime\":{},\"execTotalTime\":{}}},\"samples\":{{\"totalQueryableSamples\":{},\"peakSamples\":{}}}}}",
        evaluated.queued.as_secs_f64(),
        total.as_secs_f64(),
        evaluated.samples,
        evaluated.samples.max(points)
    )
}

fn points(value: &Value) -> u64 {
    match value {
        Value::Scalar { .. } | Value::String { .. } => 1,
        Value::Vector(vector) => vector.len() as u64,
        Value::Matrix(matrix) => matrix.iter().map(|s| s.points.len() as u64).sum(),
    }
}

fn answer(mut evaluated: Evaluated, form: &Form, limit: usize, started: Instant) -> ApiSuccess {
    let truncated = truncate(&mut evaluated.result.value, limit);
    let stats = (!form.value("stats").is_empty()).then(|| {
        stats_json(
            &evaluated,
            started.elapsed(),
            points(&evaluated.result.value),
        )
    });
    let mut data = String::new();
    json::query_data(&mut data, &evaluated.result.value, stats.as_deref());
    let annotations = evaluated.result.annotations;
    let mut warnings: Vec<String> = annotations.warnings.into_iter().collect();
    warnings.extend(evaluated.remote_warnings);
    if truncated {
        warnings.push(TRUNCATED.to_string());
    }
    ApiSuccess {
        data,
        warnings,
        infos: annotations.infos.into_iter().collect(),
    }
}

fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

/// `GET`/`POST /api/v1/query`.
pub async fn instant(State(node): State<Arc<Node>>, form: Form) -> ApiResult {
    let started = Instant::now();
    let limit = limit_param(&form)?;
    let t = time_param(&form, "time", now_ms())?;
    let (engine, _cancel_on_drop) = engine_for(&form, &node.options.query)?;
    let expr = parse_query(form.value("query")).map_err(query_error)?;
    let tsdb = tsdb(&node)?;
    let remote_read = Arc::clone(&node.remote_read);
    let gate = node.options.query.gate.clone();
    let evaluated = blocking(move || {
        let (engine, _slot, queued) = enter_gate(&gate, engine, started)?;
        let source = Counting {
            inner: remote_read.queryable(&tsdb),
            samples: Cell::new(0),
        };
        let begun = Instant::now();
        let result = engine
            .instant_expr(&source, &expr, t)
            .map_err(query_error)?;
        Ok(Evaluated {
            result,
            remote_warnings: source.inner.take_warnings(),
            samples: source.samples.get(),
            preparation: Duration::ZERO,
            evaluation: begun.elapsed(),
            queued,
        })
    })
    .await?;
    Ok(answer(evaluated, &form, limit, started))
}

/// `GET`/`POST /api/v1/query_range`.
pub async fn range(State(node): State<Arc<Node>>, form: Form) -> ApiResult {
    let started = Instant::now();
    let limit = limit_param(&form)?;
    let start =
        params::parse_time(form.value("start")).map_err(|e| ApiError::invalid_param("start", e))?;
    let end =
        params::parse_time(form.value("end")).map_err(|e| ApiError::invalid_param("end", e))?;
    if end < start {
        return Err(ApiError::bad_data(
            "end timestamp must not be before start time",
        ));
    }
    let step_nanos = params::parse_duration(form.value("step"))
        .map_err(|e| ApiError::invalid_param("step", e))?;
    let step_ms = i64::try_from(step_nanos / 1_000_000).unwrap_or(i64::MAX);
    if step_nanos <= 0 || step_ms == 0 {
        return Err(ApiError::bad_data(
            "zero or negative query resolution step widths are not accepted. Try a positive integer",
        ));
    }
    // As Prometheus: (end - start) / step over durations, in nanoseconds.
    let span_nanos = (i128::from(end) - i128::from(start)) * 1_000_000;
    if span_nanos / step_nanos > i128::from(MAX_POINTS_PER_SERIES) {
        return Err(ApiError::bad_data(
            "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)",
        ));
    }
    let (engine, _cancel_on_drop) = engine_for(&form, &node.options.query)?;
    let expr = parse_query(form.value("query")).map_err(query_error)?;
    let tsdb = tsdb(&node)?;
    let remote_read = Arc::clone(&node.remote_read);
    let gate = node.options.query.gate.clone();
    let evaluated = blocking(move || {
        let (engine, _slot, queued) = enter_gate(&gate, engine, started)?;
        let source = Counting {
            inner: remote_read.queryable(&tsdb),
            samples: Cell::new(0),
        };
        let begun = Instant::now();
        let result = engine
            .range_expr(&source, &expr, start, end, step_ms)
            .map_err(query_error)?;
        Ok(Evaluated {
            result,
            remote_warnings: source.inner.take_warnings(),
            samples: source.samples.get(),
            preparation: Duration::ZERO,
            evaluation: begun.elapsed(),
            queued,
        })
    })
    .await?;
    Ok(answer(evaluated, &form, limit, started))
}

/// `GET`/`POST /api/v1/format_query`: the query pretty-printed as Prometheus's `Pretty(0)`
/// does (promql-parser's `prettify`).
pub async fn format(form: Form) -> ApiResult {
    let expr = parse_query(form.value("query")).map_err(query_error)?;
    let mut data = String::new();
    json::string(&mut data, &expr.prettify());
    Ok(ApiSuccess::new(data))
}

/// `GET`/`POST /api/v1/query_exemplars`: validated as Prometheus validates it; no exemplars
/// are stored yet, so the answer is always empty.
pub async fn exemplars(form: Form) -> ApiResult {
    let start = time_param(&form, "start", MIN_TIME_MS)?;
    let end = time_param(&form, "end", MAX_TIME_MS)?;
    if end < start {
        return Err(ApiError::bad_data(
            "end timestamp must not be before start time",
        ));
    }
    parse_query(form.value("query")).map_err(|e| ApiError::bad_data(e.to_string()))?;
    Ok(ApiSuccess::new("[]".to_string()))
}
