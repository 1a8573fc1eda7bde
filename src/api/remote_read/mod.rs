//! `POST /api/v1/read`: the remote-read server, as Prometheus's `storage/remote/read_handler.go`
//! behaves.
//!
//! The body is a snappy-compressed `prometheus.ReadRequest`. Its `accepted_response_types`
//! choose the answer: the first type this server knows wins, none means `SAMPLES`.
//! - `SAMPLES`: one snappy-compressed `ReadResponse` (`application/x-protobuf`) with every
//!   sample of every query; a query over `--storage.remote.read-sample-limit` samples fails
//!   the request with 400.
//! - `STREAMED_XOR_CHUNKS`: `ChunkedReadResponse` frames ([`crate::remote::read::frame`]), one
//!   series per frame, a series split over several frames once its chunks pass
//!   `--storage.remote.read-max-bytes-in-frame`. Chunks go out as stored when they lie inside
//!   the query's range, overlap no other chunk of the series and hold no deleted samples;
//!   otherwise the samples concerned are merged, trimmed to the range and re-encoded (as
//!   Prometheus's chunk querier does). The sample limit does not apply (as in Prometheus).
//!
//! External labels: an equality matcher on an external label with its value matches series
//! *without* that label (the label is not stored, it is added on the way out), and every
//! returned series carries the external labels it does not have itself.
//!
//! At most `--storage.remote.read-concurrent-limit` requests run at once; the others wait. A
//! request holds its place until its answer is written out (a streamed one included), and is
//! counted meanwhile in `prometheus_api_remote_read_queries`.
//! Undecodable bodies, unknown response types and invalid matchers are answered with 400 and
//! a message saying what was wrong.

mod chunks;

use crate::node::Node;
use crate::remote::read::frame::{STREAMED_CONTENT_TYPE, encode_frame};
use crate::remote::read::metrics::{ReadMetricsCollector, ServerQuery};
use crate::remote::read::proto::{
    ChunkedReadResponse, ChunkedSeries, Label, LabelMatcher, MatcherType, QueryResult, ReadRequest,
    ReadResponse, ResponseType, Sample, TimeSeries,
};
use crate::tsdb::{self, Tsdb};
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use prost::Message as _;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

/// The largest compressed request accepted (Prometheus's `decodeReadLimit`).
pub const MAX_COMPRESSED_BYTES: usize = 32 << 20;
/// The largest decompressed request accepted (checked from snappy's header before
/// decompressing); a read request is a handful of matchers per query.
pub const MAX_DECOMPRESSED_BYTES: usize = 32 << 20;
/// Frames queued between the thread reading the TSDB and the connection: bounds memory when
/// the client reads slowly.
const FRAMES_IN_FLIGHT: usize = 4;

/// The `--storage.remote.read-*` flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadLimits {
    /// `--storage.remote.read-sample-limit`: samples one query may return in a `SAMPLES`
    /// answer; 0 means no limit.
    pub sample_limit: u64,
    /// `--storage.remote.read-concurrent-limit`: requests served at once; 0 means no limit.
    pub concurrent_limit: usize,
    /// `--storage.remote.read-max-bytes-in-frame`: chunk bytes per streamed frame before it
    /// is cut (a frame may pass it by up to one chunk).
    pub max_bytes_in_frame: usize,
}

impl Default for ReadLimits {
    fn default() -> Self {
        ReadLimits {
            sample_limit: 50_000_000,
            concurrent_limit: 10,
            max_bytes_in_frame: 1_048_576,
        }
    }
}

struct ReadServer {
    node: Arc<Node>,
    /// Admits `concurrent_limit` requests at a time; `None` when unlimited.
    gate: Option<Arc<tokio::sync::Semaphore>>,
    limits: ReadLimits,
}

/// What an admitted request holds until its answer is written out.
struct Admission {
    _permit: Option<tokio::sync::OwnedSemaphorePermit>,
    _counted: ServerQuery,
}

/// The route, with its own state, mergeable into any router. Also registers remote read's
/// metrics (client and server) with the node's telemetry: this is built once per node.
pub fn routes<S: Clone + Send + Sync + 'static>(node: Arc<Node>) -> Router<S> {
    node.telemetry
        .register_collector(Box::new(ReadMetricsCollector(Arc::clone(
            &node.remote_read.metrics,
        ))));
    let limits = node.options.remote_read;
    let gate = (limits.concurrent_limit > 0)
        .then(|| Arc::new(tokio::sync::Semaphore::new(limits.concurrent_limit)));
    Router::new()
        .route("/api/v1/read", post(read))
        .layer(DefaultBodyLimit::max(MAX_COMPRESSED_BYTES))
        .with_state(Arc::new(ReadServer { node, gate, limits }))
}

/// A refused request: the status and the message, as Prometheus's `http.Error` writes it.
type Refusal = (StatusCode, String);

fn refuse(status: StatusCode, message: impl Into<String>) -> Refusal {
    let mut message = message.into();
    if !message.ends_with('\n') {
        message.push('\n');
    }
    (status, message)
}

/// One query of the request, its matchers ready for the TSDB.
#[derive(Debug)]
struct PreparedQuery {
    start: i64,
    end: i64,
    matchers: Vec<tsdb::Matcher>,
}

/// Decompresses and decodes a request body.
pub fn decode_request(body: &[u8]) -> Result<ReadRequest, String> {
    let length = snap::raw::decompress_len(body).map_err(|error| format!("snappy: {error}"))?;
    if length > MAX_DECOMPRESSED_BYTES {
        return Err(format!(
            "decompressed request of {length} bytes is over the limit of {MAX_DECOMPRESSED_BYTES}"
        ));
    }
    let raw = snap::raw::Decoder::new()
        .decompress_vec(body)
        .map_err(|error| format!("snappy: {error}"))?;
    ReadRequest::decode(raw.as_slice()).map_err(|error| format!("prometheus.ReadRequest: {error}"))
}

/// The first accepted response type this server supports; none accepted means `SAMPLES`.
pub fn negotiate(accepted: &[i32]) -> Result<ResponseType, String> {
    if accepted.is_empty() {
        return Ok(ResponseType::Samples);
    }
    if let Some(known) = accepted
        .iter()
        .find_map(|&value| ResponseType::try_from(value).ok())
    {
        return Ok(known);
    }
    let named: Vec<String> = accepted.iter().map(i32::to_string).collect();
    Err(format!(
        "server does not support any of the requested response types: [{}]; supported: [SAMPLES STREAMED_XOR_CHUNKS]",
        named.join(" ")
    ))
}

/// The TSDB's matcher for a request's, with Prometheus's external-label rule: an equality
/// matcher on an external label with its value looks for series without the label.
fn convert_matcher(
    matcher: &LabelMatcher,
    external: &[(String, String)],
) -> Result<tsdb::Matcher, String> {
    let kind = MatcherType::try_from(matcher.r#type)
        .map_err(|_| format!("unknown label matcher type {}", matcher.r#type))?;
    let name = matcher.name.as_str();
    let (kind, value) = match kind {
        MatcherType::Eq => {
            let external_value = external
                .iter()
                .find(|(external_name, _)| external_name == name)
                .map_or("", |(_, value)| value.as_str());
            let value = if external_value == matcher.value {
                String::new()
            } else {
                matcher.value.clone()
            };
            (tsdb::MatchKind::Equal, value)
        }
        MatcherType::Neq => (tsdb::MatchKind::NotEqual, matcher.value.clone()),
        // Prometheus 3's regexes let `.` match a newline; the TSDB anchors the pattern as
        // written, so the flag is spelled out.
        MatcherType::Re => (
            tsdb::MatchKind::RegexMatch,
            format!("(?s:{})", matcher.value),
        ),
        MatcherType::Nre => (
            tsdb::MatchKind::RegexNoMatch,
            format!("(?s:{})", matcher.value),
        ),
    };
    tsdb::Matcher::new(kind, name, value)
        .map_err(|error| format!("invalid matcher for label {name:?}: {error}"))
}

fn prepare(
    request: &ReadRequest,
    external: &[(String, String)],
) -> Result<Vec<PreparedQuery>, String> {
    request
        .queries
        .iter()
        .enumerate()
        .map(|(index, query)| {
            let matchers = query
                .matchers
                .iter()
                .map(|matcher| convert_matcher(matcher, external))
                .collect::<Result<Vec<_>, String>>()
                .map_err(|error| format!("query {index}: {error}"))?;
            Ok(PreparedQuery {
                start: query.start_timestamp_ms,
                end: query.end_timestamp_ms,
                matchers,
            })
        })
        .collect()
}

/// A series' labels with the external labels it lacks, sorted (its own win on a clash).
fn with_external_labels(labels: &tsdb::Labels, external: &[(String, String)]) -> Vec<Label> {
    let mut out: Vec<Label> = labels
        .iter()
        .map(|(name, value)| Label {
            name: name.to_string(),
            value: value.to_string(),
        })
        .collect();
    for (name, value) in external {
        if labels.get(name).is_none() {
            out.push(Label {
                name: name.clone(),
                value: value.clone(),
            });
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// The node's external labels, sorted by name, empty values left out.
fn external_labels(node: &Node) -> Vec<(String, String)> {
    let config = node.config();
    let mut labels: Vec<(String, String)> = config
        .config
        .global
        .external_labels
        .iter()
        .filter(|(_, value)| !value.is_empty())
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .collect();
    labels.sort();
    labels
}

async fn read(State(server): State<Arc<ReadServer>>, body: Bytes) -> Response {
    let permit = match &server.gate {
        Some(gate) => match Arc::clone(gate).acquire_owned().await {
            Ok(permit) => Some(permit),
            Err(error) => {
                return refuse(StatusCode::INTERNAL_SERVER_ERROR, error.to_string())
                    .into_response();
            }
        },
        None => None,
    };
    let admission = Admission {
        _permit: permit,
        _counted: server.node.remote_read.metrics.server_query(),
    };
    match serve(&server, &body, admission).await {
        Ok(response) => response,
        Err(refusal) => refusal.into_response(),
    }
}

/// Answers one request; `admission` is released when the answer has been produced (a
/// streamed answer carries it until its last frame).
async fn serve(
    server: &ReadServer,
    body: &[u8],
    admission: Admission,
) -> Result<Response, Refusal> {
    let request = decode_request(body).map_err(|error| refuse(StatusCode::BAD_REQUEST, error))?;
    let response_type = negotiate(&request.accepted_response_types)
        .map_err(|error| refuse(StatusCode::BAD_REQUEST, error))?;
    tracing::debug!(
        response_type = response_type.proto_name(),
        queries = request.queries.len(),
        "remote read request"
    );
    let external = external_labels(&server.node);
    let queries =
        prepare(&request, &external).map_err(|error| refuse(StatusCode::BAD_REQUEST, error))?;
    let tsdb = server
        .node
        .tsdb()
        .cloned()
        .ok_or_else(|| refuse(StatusCode::SERVICE_UNAVAILABLE, "TSDB not ready"))?;
    match response_type {
        ResponseType::Samples => {
            let limit = server.limits.sample_limit;
            let answer = tokio::task::spawn_blocking(move || {
                samples_answer(&tsdb, &queries, &external, limit)
            })
            .await
            .map_err(|error| {
                refuse(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("remote read task failed: {error}"),
                )
            })??;
            Ok((
                [
                    (header::CONTENT_TYPE, "application/x-protobuf"),
                    (header::CONTENT_ENCODING, "snappy"),
                ],
                answer,
            )
                .into_response())
        }
        ResponseType::StreamedXorChunks => {
            let max_bytes = server.limits.max_bytes_in_frame;
            let (sender, mut receiver) = tokio::sync::mpsc::channel(FRAMES_IN_FLIGHT);
            tokio::task::spawn_blocking(move || {
                let outcome = stream_frames(&tsdb, &queries, &external, max_bytes, |frame| {
                    sender.blocking_send(Ok(Bytes::from(frame))).is_ok()
                });
                if let Err(error) = outcome {
                    tracing::warn!(%error, "streamed remote read failed");
                    let _ = sender.blocking_send(Err(error));
                }
            });
            // Until the first frame, a failure can still be answered with a status; after it,
            // the stream is cut and the client sees a truncated answer, as with Prometheus.
            let first = match receiver.recv().await {
                None => None,
                Some(Ok(frame)) => Some(frame),
                Some(Err(error)) => {
                    return Err(refuse(StatusCode::INTERNAL_SERVER_ERROR, error));
                }
            };
            let frames = Frames {
                first,
                receiver,
                _admission: admission,
            };
            Ok((
                [(header::CONTENT_TYPE, STREAMED_CONTENT_TYPE)],
                Body::from_stream(frames),
            )
                .into_response())
        }
    }
}

/// The streamed body: the first frame (already received), then the rest as the reading
/// thread produces them.
struct Frames {
    first: Option<Bytes>,
    receiver: tokio::sync::mpsc::Receiver<Result<Bytes, String>>,
    /// Held until the body is dropped (fully sent, or the client went away).
    _admission: Admission,
}

impl futures_core::Stream for Frames {
    type Item = Result<Bytes, std::io::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if let Some(first) = self.first.take() {
            return Poll::Ready(Some(Ok(first)));
        }
        self.receiver
            .poll_recv(cx)
            .map(|item| item.map(|frame| frame.map_err(std::io::Error::other)))
    }
}

/// Reads every query's samples into one snappy-compressed `ReadResponse`.
fn samples_answer(
    tsdb: &Tsdb,
    queries: &[PreparedQuery],
    external: &[(String, String)],
    sample_limit: u64,
) -> Result<Vec<u8>, Refusal> {
    let internal = |message: String| refuse(StatusCode::INTERNAL_SERVER_ERROR, message);
    let mut response = ReadResponse::default();
    for query in queries {
        let mut result = QueryResult::default();
        let mut count: u64 = 0;
        let querier = tsdb.querier(query.start, query.end);
        for series in querier
            .select(&query.matchers)
            .map_err(|error| internal(error.to_string()))?
        {
            let mut samples = Vec::new();
            let mut iterator = series.samples();
            for (timestamp, value) in iterator.by_ref() {
                count += 1;
                if sample_limit > 0 && count > sample_limit {
                    return Err(refuse(
                        StatusCode::BAD_REQUEST,
                        format!("exceeded sample limit ({sample_limit})"),
                    ));
                }
                samples.push(Sample { value, timestamp });
            }
            if let Some(error) = iterator.error() {
                return Err(internal(format!("series {}: {error}", series.labels)));
            }
            if samples.is_empty() {
                continue;
            }
            result.timeseries.push(TimeSeries {
                labels: with_external_labels(&series.labels, external),
                samples,
                ..TimeSeries::default()
            });
        }
        response.results.push(result);
    }
    let encoded = response.encode_to_vec();
    snap::raw::Encoder::new()
        .compress_vec(&encoded)
        .map_err(|error| internal(format!("snappy: {error}")))
}

/// Reads every query's series as chunks and hands out frames in order; stops early (without
/// error) when `emit` returns false, i.e. the client went away.
fn stream_frames(
    tsdb: &Tsdb,
    queries: &[PreparedQuery],
    external: &[(String, String)],
    max_bytes_in_frame: usize,
    mut emit: impl FnMut(Vec<u8>) -> bool,
) -> Result<(), String> {
    for (index, query) in queries.iter().enumerate() {
        let querier = tsdb.querier(query.start, query.end);
        for series in querier
            .select(&query.matchers)
            .map_err(|error| error.to_string())?
        {
            let chunks = chunks::series_chunks(&series, query.start, query.end)
                .map_err(|error| format!("series {}: {error}", series.labels))?;
            let labels = with_external_labels(&series.labels, external);
            for message in frame_messages(index as i64, labels, chunks, max_bytes_in_frame) {
                if !emit(encode_frame(&message.encode_to_vec())) {
                    return Ok(());
                }
            }
        }
    }
    Ok(())
}

/// One series' chunks cut into messages: chunks are added until their bytes (with the
/// labels') reach `max_bytes_in_frame`, so a message passes it by at most one chunk.
fn frame_messages(
    query_index: i64,
    labels: Vec<Label>,
    chunks: Vec<crate::remote::read::proto::Chunk>,
    max_bytes_in_frame: usize,
) -> Vec<ChunkedReadResponse> {
    let labels_bytes: usize = labels.iter().map(|label| label.encoded_len()).sum();
    let budget = max_bytes_in_frame as i64 - labels_bytes as i64;
    let mut messages = Vec::new();
    let mut batch = Vec::new();
    let mut left = budget;
    let total = chunks.len();
    for (position, chunk) in chunks.into_iter().enumerate() {
        left -= chunk.encoded_len() as i64;
        batch.push(chunk);
        if left > 0 && position + 1 < total {
            continue;
        }
        messages.push(ChunkedReadResponse {
            chunked_series: vec![ChunkedSeries {
                labels: labels.clone(),
                chunks: std::mem::take(&mut batch),
            }],
            query_index,
        });
        left = budget;
    }
    messages
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::remote::read::proto::{Chunk, ChunkEncoding};

    fn matcher(kind: MatcherType, name: &str, value: &str) -> LabelMatcher {
        LabelMatcher {
            r#type: kind as i32,
            name: name.into(),
            value: value.into(),
        }
    }

    #[test]
    fn response_types_are_negotiated_as_prometheus_does() {
        assert_eq!(negotiate(&[]), Ok(ResponseType::Samples));
        assert_eq!(negotiate(&[1, 0]), Ok(ResponseType::StreamedXorChunks));
        assert_eq!(negotiate(&[7, 0]), Ok(ResponseType::Samples));
        assert_eq!(
            negotiate(&[7]).unwrap_err(),
            "server does not support any of the requested response types: [7]; supported: [SAMPLES STREAMED_XOR_CHUNKS]"
        );
    }

    #[test]
    fn matchers_on_external_labels_look_for_their_absence() {
        let external = vec![("region".to_string(), "eu".to_string())];
        let converted =
            convert_matcher(&matcher(MatcherType::Eq, "region", "eu"), &external).unwrap();
        let stored = tsdb::Labels::new([("job", "a")]);
        assert!(converted.matches(stored.get("region").unwrap_or("")));
        let other = convert_matcher(&matcher(MatcherType::Eq, "region", "us"), &external).unwrap();
        assert!(!other.matches(stored.get("region").unwrap_or("")));
        assert!(
            convert_matcher(&matcher(MatcherType::Re, "job", "("), &external)
                .unwrap_err()
                .starts_with("invalid matcher for label \"job\"")
        );
        let bad = LabelMatcher {
            r#type: 9,
            name: "job".into(),
            value: "a".into(),
        };
        assert_eq!(
            convert_matcher(&bad, &external).unwrap_err(),
            "unknown label matcher type 9"
        );
        let with =
            with_external_labels(&tsdb::Labels::new([("job", "a"), ("zone", "z")]), &external);
        let names: Vec<&str> = with.iter().map(|label| label.name.as_str()).collect();
        assert_eq!(names, ["job", "region", "zone"]);
    }

    #[test]
    fn undecodable_bodies_say_why() {
        assert!(
            decode_request(b"not snappy")
                .unwrap_err()
                .starts_with("snappy: ")
        );
        let garbage = snap::raw::Encoder::new().compress_vec(&[0xFF; 4]).unwrap();
        assert!(
            decode_request(&garbage)
                .unwrap_err()
                .starts_with("prometheus.ReadRequest: ")
        );
    }

    #[test]
    fn series_are_cut_into_frames_by_size() {
        let chunk = |t: i64| Chunk {
            min_time_ms: t,
            max_time_ms: t + 1,
            r#type: ChunkEncoding::Xor as i32,
            data: vec![0; 100],
        };
        let labels = vec![Label {
            name: "__name__".into(),
            value: "up".into(),
        }];
        let chunks: Vec<Chunk> = (0..5).map(chunk).collect();
        // Each chunk is a little over 100 bytes: a 250-byte budget takes three per frame.
        let messages = frame_messages(3, labels.clone(), chunks.clone(), 250);
        let sizes: Vec<usize> = messages
            .iter()
            .map(|m| m.chunked_series[0].chunks.len())
            .collect();
        assert_eq!(sizes, [3, 2]);
        assert!(messages.iter().all(|m| m.query_index == 3));
        assert!(
            messages
                .iter()
                .all(|m| m.chunked_series[0].labels == labels)
        );
        assert_eq!(frame_messages(0, labels.clone(), chunks, 1 << 20).len(), 1);
        assert!(frame_messages(0, labels, Vec::new(), 10).is_empty());
    }
}
