//! `POST /api/v1/write`: the remote-write 1.0 receiver (a snappy block-compressed
//! `prometheus.WriteRequest`).
//!
//! Answers 204 once every valid sample is committed (fsynced in the WAL); 400 naming the bad
//! series when some data was invalid or refused (what was valid is kept); 413 for bodies over
//! the limits; 415 for other content types, encodings and protocol versions (remote write 2.0
//! is not implemented yet); 5xx only when storage fails.

use crate::node::ingest::IngestHandle;
use crate::tsdb::{AppendError, Labels};
use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use std::sync::Arc;

/// The largest compressed body accepted.
pub const MAX_COMPRESSED_BYTES: usize = 32 << 20;
/// The largest decompressed message accepted (checked from snappy's header before
/// decompressing).
pub const MAX_DECOMPRESSED_BYTES: usize = 128 << 20;
/// How many rejected series a 400 names.
const ERRORS_SHOWN: usize = 10;

/// The route, with its own state, mergeable into any router.
pub fn routes<S: Clone + Send + Sync + 'static>(ingest: Arc<IngestHandle>) -> Router<S> {
    Router::new()
        .route("/api/v1/write", post(write))
        .with_state(ingest)
}

/// `prometheus.WriteRequest` (remote write 1.0), the fields Tocsin reads.
#[derive(Clone, PartialEq, prost::Message)]
pub struct WriteRequest {
    #[prost(message, repeated, tag = "1")]
    pub timeseries: Vec<TimeSeries>,
}

/// `prometheus.TimeSeries`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TimeSeries {
    #[prost(message, repeated, tag = "1")]
    pub labels: Vec<Label>,
    #[prost(message, repeated, tag = "2")]
    pub samples: Vec<Sample>,
    /// Native histograms: counted and refused (not stored yet).
    #[prost(message, repeated, tag = "4")]
    pub histograms: Vec<Skipped>,
}

/// `prometheus.Label`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Label {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub value: String,
}

/// `prometheus.Sample`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Sample {
    #[prost(double, tag = "1")]
    pub value: f64,
    #[prost(int64, tag = "2")]
    pub timestamp: i64,
}

/// A message whose fields are skipped.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Skipped {}

/// A refused request: the status and the message the sender logs.
pub type Refusal = (StatusCode, String);

fn refuse(status: StatusCode, message: impl Into<String>) -> Refusal {
    let mut message = message.into();
    if !message.ends_with('\n') {
        message.push('\n');
    }
    (status, message)
}

fn reply(status: StatusCode, message: impl Into<String>) -> Response {
    refuse(status, message).into_response()
}

/// Checks the headers: 1.0 (`application/x-protobuf`, no `proto` or
/// `proto=prometheus.WriteRequest`) over snappy (or no `Content-Encoding`, which Prometheus
/// also takes as snappy).
fn check_headers(headers: &HeaderMap) -> Result<(), Refusal> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .map(|value| value.to_str().unwrap_or("\u{fffd}"))
        .unwrap_or("");
    if !content_type.is_empty() {
        let mut parts = content_type.split(';').map(str::trim);
        let media = parts.next().unwrap_or("").to_ascii_lowercase();
        if media != "application/x-protobuf" {
            return Err(refuse(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!(
                    "unsupported content type {content_type:?}: expected application/x-protobuf"
                ),
            ));
        }
        for parameter in parts {
            if let Some((key, value)) = parameter.split_once('=')
                && key.trim().eq_ignore_ascii_case("proto")
            {
                let value = value.trim().trim_matches('"');
                if value != "prometheus.WriteRequest" {
                    return Err(refuse(
                        StatusCode::UNSUPPORTED_MEDIA_TYPE,
                        format!(
                            "unsupported remote write protobuf message {value:?}: Tocsin accepts prometheus.WriteRequest (remote write 1.0) only"
                        ),
                    ));
                }
            }
        }
    }
    let encoding = headers
        .get(header::CONTENT_ENCODING)
        .map(|value| value.to_str().unwrap_or("\u{fffd}"))
        .unwrap_or("");
    if !encoding.is_empty() && !encoding.eq_ignore_ascii_case("snappy") {
        return Err(refuse(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("unsupported content encoding {encoding:?}: expected snappy"),
        ));
    }
    Ok(())
}

/// Decompresses and decodes a body, within the limits.
pub fn decode(body: &[u8]) -> Result<WriteRequest, Refusal> {
    let length = snap::raw::decompress_len(body)
        .map_err(|error| refuse(StatusCode::BAD_REQUEST, format!("snappy: {error}")))?;
    if length > MAX_DECOMPRESSED_BYTES {
        return Err(refuse(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "decompressed body of {length} bytes is over the limit of {MAX_DECOMPRESSED_BYTES}"
            ),
        ));
    }
    let raw = snap::raw::Decoder::new()
        .decompress_vec(body)
        .map_err(|error| refuse(StatusCode::BAD_REQUEST, format!("snappy: {error}")))?;
    <WriteRequest as prost::Message>::decode(raw.as_slice())
        .map_err(|error| refuse(StatusCode::BAD_REQUEST, format!("protobuf: {error}")))
}

/// What appending a request did.
#[derive(Debug, Default)]
pub struct Outcome {
    pub appended: u64,
    /// One line per refused series or sample.
    pub errors: Vec<String>,
    pub rejected_samples: u64,
}

fn series_text(labels: &[Label]) -> String {
    let mut text = String::from("{");
    for (index, label) in labels.iter().enumerate() {
        if index > 0 {
            text.push_str(", ");
        }
        text.push_str(&format!("{}={:?}", label.name, label.value));
    }
    text.push('}');
    text
}

/// Validates a series' labels as Prometheus's receiver does: names non-empty and unique, a
/// metric name present.
fn series_labels(labels: &[Label]) -> Result<Labels, String> {
    let mut names: Vec<&str> = labels.iter().map(|label| label.name.as_str()).collect();
    names.sort_unstable();
    if let Some(pair) = names.windows(2).find(|pair| pair[0] == pair[1]) {
        return Err(format!("duplicate label with name: {}", pair[0]));
    }
    if names.contains(&"") {
        return Err("invalid metric name or labels: empty label name".to_string());
    }
    let built = Labels::new(
        labels
            .iter()
            .map(|label| (label.name.as_str(), label.value.as_str())),
    );
    if built.get("__name__").is_none() {
        return Err("invalid metric name or labels: no metric name".to_string());
    }
    Ok(built)
}

/// Appends every valid sample of `request` and commits once.
pub fn append(
    tsdb: &crate::tsdb::Tsdb,
    request: &WriteRequest,
) -> Result<Outcome, crate::tsdb::TsdbError> {
    let mut outcome = Outcome::default();
    let mut appender = tsdb.appender();
    for series in &request.timeseries {
        let labels = match series_labels(&series.labels) {
            Ok(labels) => labels,
            Err(why) => {
                outcome.rejected_samples += series.samples.len() as u64;
                outcome
                    .errors
                    .push(format!("{why}, series {}", series_text(&series.labels)));
                continue;
            }
        };
        if !series.histograms.is_empty() {
            outcome.rejected_samples += series.histograms.len() as u64;
            outcome.errors.push(format!(
                "native histograms are not supported yet: {} dropped for series {labels}",
                series.histograms.len()
            ));
        }
        let mut refused: Option<(AppendError, u64, i64)> = None;
        for sample in &series.samples {
            if let Err(error) = appender.append(&labels, sample.timestamp, sample.value) {
                outcome.rejected_samples += 1;
                match &mut refused {
                    Some((_, count, _)) => *count += 1,
                    None => refused = Some((error, 1, sample.timestamp)),
                }
            }
        }
        if let Some((error, count, timestamp)) = refused {
            outcome.errors.push(format!(
                "{error}: {count} sample(s) refused for series {labels} (first at timestamp {timestamp})"
            ));
        }
    }
    outcome.appended = appender.commit()?.appended;
    Ok(outcome)
}

/// `POST /api/v1/write`.
pub async fn write(
    State(ingest): State<Arc<IngestHandle>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    if let Err(refusal) = check_headers(&headers) {
        return refusal.into_response();
    }
    let Some(runtime) = ingest.get() else {
        return reply(StatusCode::SERVICE_UNAVAILABLE, "storage is not open yet");
    };
    let bytes = match axum::body::to_bytes(body, MAX_COMPRESSED_BYTES).await {
        Ok(bytes) => bytes,
        Err(error) => {
            return reply(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("reading the body (limit {MAX_COMPRESSED_BYTES} bytes): {error}"),
            );
        }
    };
    let tsdb = Arc::clone(&runtime.tsdb);
    let result = tokio::task::spawn_blocking(move || {
        let request = decode(&bytes)?;
        append(&tsdb, &request).map_err(|error| {
            tracing::error!(%error, "remote write: storage failed");
            refuse(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("storage: {error}"),
            )
        })
    })
    .await;
    match result {
        Ok(Ok(outcome)) if outcome.errors.is_empty() => StatusCode::NO_CONTENT.into_response(),
        Ok(Ok(outcome)) => {
            let mut message = format!(
                "{} sample(s) rejected, {} appended: {}",
                outcome.rejected_samples,
                outcome.appended,
                outcome
                    .errors
                    .iter()
                    .take(ERRORS_SHOWN)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join("; ")
            );
            if outcome.errors.len() > ERRORS_SHOWN {
                message.push_str(&format!(
                    "; and {} more",
                    outcome.errors.len() - ERRORS_SHOWN
                ));
            }
            reply(StatusCode::BAD_REQUEST, message)
        }
        Ok(Err(refusal)) => refusal.into_response(),
        Err(error) => reply(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("remote write task failed: {error}"),
        ),
    }
}
