//! `POST /api/v1/write`: the remote-write receiver, 1.0 (`prometheus.WriteRequest`) and 2.0
//! (`io.prometheus.write.v2.Request`), snappy block compressed, as Prometheus 3's receiver
//! behaves.
//!
//! The protocol comes from `Content-Type` (`application/x-protobuf`, its `proto` parameter
//! naming the message; none, or no header at all, means 1.0). Answers 204 once every valid
//! sample is committed (fsynced in the WAL); 400 naming the bad series (by index and labels)
//! when some data was invalid or refused, what was valid being kept; 413 for bodies over the
//! limits; 415 for other media types, messages and encodings; 5xx only when storage fails. 2.0
//! answers carry `X-Prometheus-Remote-Write-{Samples,Histograms,Exemplars}-Written`.
//!
//! Tocsin's TSDB stores float samples only: native histograms are refused (400, counted as not
//! written), exemplars are accepted but not stored (counted as not written), and metadata is
//! accepted and dropped (there is no metadata store; Prometheus also never fails a write over
//! metadata).
//!
//! Bodies are decoded by the zero-copy reader in [`wire`]; [`proto`] has the same messages as
//! prost types, the reference encoder for tests and benchmarks.

pub mod proto;
pub mod wire;

use crate::node::ingest::IngestHandle;
use crate::tsdb::{AppendError, Labels, Tsdb, TsdbError};
use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use std::sync::Arc;

/// The largest compressed body accepted.
pub const MAX_COMPRESSED_BYTES: usize = 32 << 20;
/// The largest decompressed message accepted (checked from snappy's header before
/// decompressing).
pub const MAX_DECOMPRESSED_BYTES: usize = 128 << 20;
/// Samples more than this far ahead of the receiver's clock are refused as out of bounds
/// (Prometheus's `maxAheadTime`).
pub const MAX_AHEAD_MS: i64 = 10 * 60 * 1000;
/// How many rejected series a 400 names.
const ERRORS_SHOWN: usize = 10;

/// The media type both versions use.
const PROTOBUF: &str = "application/x-protobuf";
/// The 2.0 response headers.
pub const SAMPLES_WRITTEN_HEADER: &str = "X-Prometheus-Remote-Write-Samples-Written";
pub const HISTOGRAMS_WRITTEN_HEADER: &str = "X-Prometheus-Remote-Write-Histograms-Written";
pub const EXEMPLARS_WRITTEN_HEADER: &str = "X-Prometheus-Remote-Write-Exemplars-Written";

/// The route, with its own state, mergeable into any router.
pub fn routes<S: Clone + Send + Sync + 'static>(ingest: Arc<IngestHandle>) -> Router<S> {
    Router::new()
        .route("/api/v1/write", post(write))
        .with_state(ingest)
}

/// The remote-write protocol version of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// `prometheus.WriteRequest`.
    V1,
    /// `io.prometheus.write.v2.Request`.
    V2,
}

impl Protocol {
    /// The protobuf message name, as in the `proto` parameter.
    pub fn message(self) -> &'static str {
        match self {
            Protocol::V1 => "prometheus.WriteRequest",
            Protocol::V2 => "io.prometheus.write.v2.Request",
        }
    }

    /// The `Content-Type` a sender uses.
    pub fn content_type(self) -> String {
        format!("{PROTOBUF};proto={}", self.message())
    }
}

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

/// Chooses the protocol from `Content-Type` and checks `Content-Encoding`, with Prometheus's
/// rules and messages: no content type means 1.0, and so does `application/x-protobuf`
/// without a `proto` parameter; no encoding means snappy.
pub fn negotiate(
    content_type: Option<&str>,
    content_encoding: Option<&str>,
) -> Result<Protocol, Refusal> {
    let protocol = match content_type.map(str::trim) {
        None | Some("") => Protocol::V1,
        Some(content_type) => {
            let mut parts = content_type.split(';');
            let media = parts.next().unwrap_or("").trim();
            if !media.eq_ignore_ascii_case(PROTOBUF) {
                return Err(refuse(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    format!(
                        "expected {PROTOBUF} as the first (media) part, got {content_type} content-type"
                    ),
                ));
            }
            let mut protocol = Protocol::V1;
            for parameter in parts {
                let pair: Vec<&str> = parameter.split('=').collect();
                let [key, value] = pair.as_slice() else {
                    return Err(refuse(
                        StatusCode::UNSUPPORTED_MEDIA_TYPE,
                        format!(
                            "as per https://www.rfc-editor.org/rfc/rfc9110#parameter expected parameters to be key-values, got {parameter} in {content_type} content-type"
                        ),
                    ));
                };
                if key.trim().eq_ignore_ascii_case("proto") {
                    let value = value.trim().trim_matches('"');
                    protocol = if value == Protocol::V1.message() {
                        Protocol::V1
                    } else if value == Protocol::V2.message() {
                        Protocol::V2
                    } else {
                        return Err(refuse(
                            StatusCode::UNSUPPORTED_MEDIA_TYPE,
                            format!(
                                "got {content_type} content type; unknown remote write protobuf message {value}, supported: {}, {}",
                                Protocol::V1.message(),
                                Protocol::V2.message()
                            ),
                        ));
                    };
                    // The first `proto` parameter decides, as in Prometheus.
                    break;
                }
            }
            protocol
        }
    };
    match content_encoding.map(str::trim) {
        None | Some("") => {}
        Some(encoding) if encoding.eq_ignore_ascii_case("snappy") => {}
        Some(encoding) => {
            return Err(refuse(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!(
                    "{encoding} encoding (compression) is not accepted by this server; only snappy is acceptable"
                ),
            ));
        }
    }
    Ok(protocol)
}

/// Decompresses a snappy block body, within the limits.
pub fn decompress(body: &[u8]) -> Result<Vec<u8>, Refusal> {
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
    snap::raw::Decoder::new()
        .decompress_vec(body)
        .map_err(|error| refuse(StatusCode::BAD_REQUEST, format!("snappy: {error}")))
}

/// Decodes a decompressed body as `protocol`'s message.
pub fn decode(protocol: Protocol, raw: &[u8]) -> Result<wire::Request<'_>, Refusal> {
    let decoded = match protocol {
        Protocol::V1 => wire::decode_v1(raw),
        Protocol::V2 => wire::decode_v2(raw),
    };
    decoded.map_err(|error| {
        let status = match error {
            wire::DecodeError::TooManyEntries => StatusCode::PAYLOAD_TOO_LARGE,
            wire::DecodeError::Malformed { .. } => StatusCode::BAD_REQUEST,
        };
        refuse(status, format!("{}: {error}", protocol.message()))
    })
}

/// What appending a request did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Float samples committed.
    pub samples_written: u64,
    /// Always 0: native histograms are not stored.
    pub histograms_written: u64,
    /// Always 0: exemplars are not stored.
    pub exemplars_written: u64,
    pub rejected_samples: u64,
    pub rejected_histograms: u64,
    /// Exemplars accepted but not stored.
    pub exemplars_dropped: u64,
    /// Metadata entries (1.0 per family, 2.0 per series) accepted but not stored.
    pub metadata_dropped: u64,
    /// One line per refused series (or per refusal reason within a series).
    pub errors: Vec<String>,
}

/// Prometheus's text form of labels as sent (in name order, empty values kept).
fn series_text(pairs: &[wire::LabelPair<'_>]) -> String {
    let mut sorted: Vec<&wire::LabelPair<'_>> = pairs.iter().collect();
    sorted.sort_by(|a, b| a.name.cmp(b.name));
    let mut text = String::from("{");
    for (index, pair) in sorted.iter().enumerate() {
        if index > 0 {
            text.push_str(", ");
        }
        text.push_str(&format!("{}={:?}", pair.name, pair.value));
    }
    text.push('}');
    text
}

/// Validates a series' labels as Prometheus's receiver does (UTF-8 names and values are
/// already checked by the decoder): a non-empty metric name, no empty label names, no name
/// twice. Order does not matter: the labels are sorted here, as Prometheus sorts them.
fn series_labels(pairs: &[wire::LabelPair<'_>]) -> Result<Labels, String> {
    let has_name = pairs
        .iter()
        .any(|pair| pair.name == "__name__" && !pair.value.is_empty());
    if !has_name || pairs.iter().any(|pair| pair.name.is_empty()) {
        return Err(format!(
            "invalid metric name or labels, got {}",
            series_text(pairs)
        ));
    }
    let mut names: Vec<&str> = pairs.iter().map(|pair| pair.name).collect();
    names.sort_unstable();
    if let Some(pair) = names.windows(2).find(|pair| pair[0] == pair[1]) {
        return Err(format!(
            "invalid labels for series, labels {}, duplicated label {}",
            series_text(pairs),
            pair[0]
        ));
    }
    Ok(Labels::new(
        pairs.iter().map(|pair| (pair.name, pair.value)),
    ))
}

/// Why one sample was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refused {
    Storage(AppendError),
    TooFarAhead,
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refused::Storage(error) => write!(f, "{error}"),
            Refused::TooFarAhead => {
                f.write_str("out of bounds: timestamp is too far in the future")
            }
        }
    }
}

/// Appends every valid sample of `request` and commits once. `now_ms` is the receiver's
/// clock (Unix milliseconds), for the too-far-ahead check.
pub fn append(tsdb: &Tsdb, request: &wire::Request<'_>, now_ms: i64) -> Result<Outcome, TsdbError> {
    let mut outcome = Outcome {
        metadata_dropped: request.metadata.len() as u64,
        ..Outcome::default()
    };
    let latest_allowed = now_ms.saturating_add(MAX_AHEAD_MS);
    let mut appender = tsdb.appender();
    for (index, series) in request.series.iter().enumerate() {
        let samples = request.samples_of(series);
        outcome.exemplars_dropped += series.exemplars.len() as u64;
        if let Some(why) = &series.unresolved {
            outcome.rejected_samples += samples.len() as u64;
            outcome.rejected_histograms += series.histograms as u64;
            outcome.errors.push(format!("series {index}: {why}"));
            continue;
        }
        let pairs = request.labels_of(series);
        let labels = match series_labels(pairs) {
            Ok(labels) => labels,
            Err(why) => {
                outcome.rejected_samples += samples.len() as u64;
                outcome.rejected_histograms += series.histograms as u64;
                outcome.errors.push(format!("series {index}: {why}"));
                continue;
            }
        };
        if series.metadata.is_some() {
            outcome.metadata_dropped += 1;
        }
        if series.histograms > 0 {
            outcome.rejected_histograms += series.histograms as u64;
            outcome.errors.push(format!(
                "series {index}: native histograms are not supported: {} dropped for series {labels}",
                series.histograms
            ));
        }
        // Per reason: how many samples, and the first one's timestamp.
        let mut refused: Vec<(Refused, u64, i64)> = Vec::new();
        // The series is looked up by labels once (its first accepted sample), then its
        // other samples go by reference.
        let mut series_ref = None;
        for sample in samples {
            let result = if sample.timestamp > latest_allowed {
                Err(Refused::TooFarAhead)
            } else {
                let by_ref = series_ref
                    .map(|known| appender.append_ref(known, sample.timestamp, sample.value));
                match by_ref {
                    Some(Err(AppendError::UnknownSeries)) | None => appender
                        .append(&labels, sample.timestamp, sample.value)
                        .map(|known| series_ref = Some(known)),
                    Some(other) => other,
                }
                .map_err(Refused::Storage)
            };

            if let Err(reason) = result {
                outcome.rejected_samples += 1;
                match refused.iter_mut().find(|(known, _, _)| *known == reason) {
                    Some((_, count, _)) => *count += 1,
                    None => refused.push((reason, 1, sample.timestamp)),
                }
            }
        }
        for (reason, count, timestamp) in refused {
            outcome.errors.push(format!(
                "series {index}: {reason} for series {labels}: {count} sample(s) refused (first at timestamp {timestamp})"
            ));
        }
    }
    let stats = appender.commit()?;
    outcome.samples_written = stats.appended;
    // A concurrent commit can still make an accepted sample out of order.
    outcome.rejected_samples += stats.rejected;
    Ok(outcome)
}

/// The 400 message: a summary, then the first errors.
fn rejection_message(outcome: &Outcome) -> String {
    let mut message = format!(
        "{} sample(s) rejected, {} appended",
        outcome.rejected_samples, outcome.samples_written
    );
    if outcome.rejected_histograms > 0 {
        message.push_str(&format!(
            ", {} histogram sample(s) rejected",
            outcome.rejected_histograms
        ));
    }
    message.push_str(": ");
    message.push_str(
        &outcome
            .errors
            .iter()
            .take(ERRORS_SHOWN)
            .cloned()
            .collect::<Vec<_>>()
            .join("; "),
    );
    if outcome.errors.len() > ERRORS_SHOWN {
        message.push_str(&format!(
            "; and {} more",
            outcome.errors.len() - ERRORS_SHOWN
        ));
    }
    message
}

fn header_text(headers: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    headers
        .get(name)
        .map(|value| value.to_str().unwrap_or("\u{fffd}"))
}

/// Sets the 2.0 written-counts headers.
fn set_written(response: &mut Response, outcome: &Outcome) {
    let headers = response.headers_mut();
    for (name, count) in [
        (SAMPLES_WRITTEN_HEADER, outcome.samples_written),
        (HISTOGRAMS_WRITTEN_HEADER, outcome.histograms_written),
        (EXEMPLARS_WRITTEN_HEADER, outcome.exemplars_written),
    ] {
        headers.insert(name, HeaderValue::from(count));
    }
}

/// `POST /api/v1/write`.
pub async fn write(
    State(ingest): State<Arc<IngestHandle>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let protocol = match negotiate(
        header_text(&headers, header::CONTENT_TYPE),
        header_text(&headers, header::CONTENT_ENCODING),
    ) {
        Ok(protocol) => protocol,
        Err(refusal) => return refusal.into_response(),
    };
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
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_millis() as i64);
    let result = tokio::task::spawn_blocking(move || {
        let raw = decompress(&bytes)?;
        let request = decode(protocol, &raw)?;
        append(&tsdb, &request, now_ms).map_err(|error| {
            tracing::error!(%error, "remote write: storage failed");
            refuse(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("storage: {error}"),
            )
        })
    })
    .await;
    let mut response = match &result {
        Ok(Ok(outcome)) if outcome.errors.is_empty() => StatusCode::NO_CONTENT.into_response(),
        Ok(Ok(outcome)) => {
            let message = rejection_message(outcome);
            tracing::debug!(protocol = protocol.message(), %message, "remote write: data refused");
            reply(StatusCode::BAD_REQUEST, message)
        }
        Ok(Err(refusal)) => refusal.clone().into_response(),
        Err(error) => reply(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("remote write task failed: {error}"),
        ),
    };
    if protocol == Protocol::V2 {
        // Required on every 2.0 answer; zero when nothing was written.
        let outcome = match result {
            Ok(Ok(outcome)) => outcome,
            _ => Outcome::default(),
        };
        set_written(&mut response, &outcome);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiation_follows_prometheus() {
        assert_eq!(negotiate(None, None), Ok(Protocol::V1));
        assert_eq!(negotiate(Some(""), Some("")), Ok(Protocol::V1));
        assert_eq!(negotiate(Some(PROTOBUF), Some("snappy")), Ok(Protocol::V1));
        assert_eq!(
            negotiate(
                Some("application/x-protobuf;proto=prometheus.WriteRequest"),
                None
            ),
            Ok(Protocol::V1)
        );
        assert_eq!(
            negotiate(
                Some("application/x-protobuf; proto=io.prometheus.write.v2.Request"),
                Some("SNAPPY")
            ),
            Ok(Protocol::V2)
        );
        let (status, message) = negotiate(Some("application/json"), None).unwrap_err();
        assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
        assert_eq!(
            message,
            "expected application/x-protobuf as the first (media) part, got application/json content-type\n"
        );
        let (status, message) = negotiate(
            Some("application/x-protobuf;proto=io.prometheus.write.v3.Request"),
            None,
        )
        .unwrap_err();
        assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
        assert_eq!(
            message,
            "got application/x-protobuf;proto=io.prometheus.write.v3.Request content type; unknown remote write protobuf message io.prometheus.write.v3.Request, supported: prometheus.WriteRequest, io.prometheus.write.v2.Request\n"
        );
        let (status, message) = negotiate(Some("application/x-protobuf;v2"), None).unwrap_err();
        assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
        assert!(
            message.contains("expected parameters to be key-values, got v2"),
            "{message}"
        );
        let (status, message) = negotiate(None, Some("zstd")).unwrap_err();
        assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
        assert_eq!(
            message,
            "zstd encoding (compression) is not accepted by this server; only snappy is acceptable\n"
        );
    }

    #[test]
    fn label_checks() {
        let pair = |name, value| wire::LabelPair { name, value };
        assert!(series_labels(&[pair("job", "a"), pair("__name__", "up")]).is_ok());
        let error = series_labels(&[pair("job", "a")]).unwrap_err();
        assert_eq!(error, "invalid metric name or labels, got {job=\"a\"}");
        let error = series_labels(&[pair("__name__", "")]).unwrap_err();
        assert!(error.starts_with("invalid metric name"), "{error}");
        let error = series_labels(&[pair("__name__", "up"), pair("", "x")]).unwrap_err();
        assert!(error.starts_with("invalid metric name"), "{error}");
        let error =
            series_labels(&[pair("__name__", "up"), pair("a", "1"), pair("a", "2")]).unwrap_err();
        assert_eq!(
            error,
            "invalid labels for series, labels {__name__=\"up\", a=\"1\", a=\"2\"}, duplicated label a"
        );
    }
}
