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

use crate::ingest::series_hash::SeriesHashState;
use crate::node::ingest::IngestHandle;
use crate::tsdb::head::RefMap;
use crate::tsdb::{AppendError, Labels, SeriesRef, Tsdb, TsdbError};
use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use std::hash::{BuildHasher, Hasher};
use std::sync::{Arc, Mutex};

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
/// The most series the receiver's [`SeriesCache`] remembers; past it the cache starts over
/// (each entry is a map slot and a reference to labels the head shares, about 40 bytes).
pub const MAX_CACHED_SERIES: usize = 1 << 20;

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
        .with_state(Arc::new(Receiver {
            ingest,
            cache: Arc::new(SeriesCache::default()),
        }))
}

/// The handler's state: the storage handle and the series cache all requests share.
pub struct Receiver {
    ingest: Arc<IngestHandle>,
    cache: Arc<SeriesCache>,
}

/// Series the receiver appended before, by a hash of their sorted labels: a sender sends
/// the same series in every request, and finding its head reference here (one hash of the
/// pairs as they lie in the body, one comparison) is much cheaper than building a [`Labels`]
/// and looking it up in the head. A hit is checked label by label, so a hash collision
/// only costs the slower lookup. A reference the head dropped (head compaction) answers
/// [`AppendError::UnknownSeries`], and the series is then appended by labels again, as
/// Prometheus's scrape cache does. Held for two short moments per request (lookups, then
/// inserts), never while appending.
#[derive(Debug, Default)]
pub struct SeriesCache {
    state: SeriesHashState,
    series: Mutex<RefMap<(Labels, SeriesRef)>>,
}

impl SeriesCache {
    /// Series held.
    pub fn len(&self) -> usize {
        lock(&self.series).len()
    }

    /// Whether no series is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
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
    let mut out = Vec::new();
    decompress_into(body, &mut out)?;
    Ok(out)
}

/// Decompresses a snappy block body into `out` (replacing what it held, reusing its room),
/// within the limits.
pub fn decompress_into(body: &[u8], out: &mut Vec<u8>) -> Result<(), Refusal> {
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
    out.clear();
    out.resize(length, 0);
    let written = snap::raw::Decoder::new()
        .decompress(body, out)
        .map_err(|error| refuse(StatusCode::BAD_REQUEST, format!("snappy: {error}")))?;
    out.truncate(written);
    Ok(())
}

/// The largest decompression buffer a blocking thread keeps for its next request (a larger
/// one, for an unusually large request, is freed).
const KEPT_BUFFER_BYTES: usize = 8 << 20;

thread_local! {
    /// The blocking thread's decompression buffer, reused from request to request.
    static DECOMPRESSED: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
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
/// twice. Order does not matter: the labels are sorted here, as Prometheus sorts them. On
/// success `sorted` holds the pairs sorted by name, empty values left out (an empty value
/// means no such label): the series' identity, ready for [`Labels`].
fn sorted_labels<'a>(
    pairs: &[wire::LabelPair<'a>],
    sorted: &mut Vec<wire::LabelPair<'a>>,
) -> Result<(), String> {
    let has_name = pairs
        .iter()
        .any(|pair| pair.name == "__name__" && !pair.value.is_empty());
    if !has_name || pairs.iter().any(|pair| pair.name.is_empty()) {
        return Err(format!(
            "invalid metric name or labels, got {}",
            series_text(pairs)
        ));
    }
    sorted.clear();
    sorted.extend_from_slice(pairs);
    // Senders sort their labels (Prometheus does): check before sorting.
    if !sorted.is_sorted_by(|a, b| a.name <= b.name) {
        sorted.sort_unstable_by(|a, b| a.name.cmp(b.name));
    }
    if let Some(pair) = sorted.windows(2).find(|pair| pair[0].name == pair[1].name) {
        return Err(format!(
            "invalid labels for series, labels {}, duplicated label {}",
            series_text(pairs),
            pair[0].name
        ));
    }
    sorted.retain(|pair| !pair.value.is_empty());
    Ok(())
}

/// [`sorted_labels`] as a [`Labels`].
#[cfg(test)]
fn series_labels(pairs: &[wire::LabelPair<'_>]) -> Result<Labels, String> {
    let mut sorted = Vec::new();
    sorted_labels(pairs, &mut sorted)?;
    Ok(Labels::from_sorted(
        sorted.iter().map(|pair| (pair.name, pair.value)),
    ))
}

/// The cache key of sorted, validated pairs.
fn pairs_hash(state: &SeriesHashState, sorted: &[wire::LabelPair<'_>]) -> u64 {
    let mut hasher = state.build_hasher();
    for pair in sorted {
        hasher.write(pair.name.as_bytes());
        hasher.write_u8(0xff);
        hasher.write(pair.value.as_bytes());
        hasher.write_u8(0xff);
    }
    hasher.finish()
}

/// Whether `labels` are exactly the sorted pairs.
fn same_labels(labels: &Labels, sorted: &[wire::LabelPair<'_>]) -> bool {
    let mut cached = labels.iter();
    for pair in sorted {
        match cached.next() {
            Some((name, value)) if name == pair.name && value == pair.value => {}
            _ => return false,
        }
    }
    cached.next().is_none()
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
/// clock (Unix milliseconds), for the too-far-ahead check. A cache for this call only: see
/// [`append_cached`] for the receiver's.
pub fn append(tsdb: &Tsdb, request: &wire::Request<'_>, now_ms: i64) -> Result<Outcome, TsdbError> {
    append_cached(tsdb, request, now_ms, &SeriesCache::default())
}

/// A valid series of a request, once its labels are checked: where its sorted pairs are,
/// their hash, and what the cache knew.
struct Resolved {
    /// The series' index in the request.
    index: usize,
    /// Into the request's sorted pairs.
    pairs: std::ops::Range<usize>,
    hash: u64,
    known: Option<(Labels, SeriesRef)>,
}

/// [`append`] with the receiver's series cache: series the cache knows are appended by
/// reference without building their labels.
pub fn append_cached(
    tsdb: &Tsdb,
    request: &wire::Request<'_>,
    now_ms: i64,
    cache: &SeriesCache,
) -> Result<Outcome, TsdbError> {
    let mut outcome = Outcome {
        metadata_dropped: request.metadata.len() as u64,
        ..Outcome::default()
    };
    let latest_allowed = now_ms.saturating_add(MAX_AHEAD_MS);
    // Check every series' labels first (no lock held), then ask the cache about all of them
    // at once.
    let mut sorted: Vec<wire::LabelPair<'_>> = Vec::with_capacity(request.labels.len());
    let mut scratch: Vec<wire::LabelPair<'_>> = Vec::new();
    let mut resolved: Vec<Resolved> = Vec::with_capacity(request.series.len());
    for (index, series) in request.series.iter().enumerate() {
        let samples = request.samples_of(series);
        outcome.exemplars_dropped += series.exemplars.len() as u64;
        let checked = match &series.unresolved {
            Some(why) => Err(why.clone()),
            None => sorted_labels(request.labels_of(series), &mut scratch),
        };
        if let Err(why) = checked {
            outcome.rejected_samples += samples.len() as u64;
            outcome.rejected_histograms += series.histograms as u64;
            outcome.errors.push(format!("series {index}: {why}"));
            continue;
        }
        let start = sorted.len();
        sorted.extend_from_slice(&scratch);
        resolved.push(Resolved {
            index,
            pairs: start..sorted.len(),
            hash: pairs_hash(&cache.state, &scratch),
            known: None,
        });
    }
    {
        let cached = lock(&cache.series);
        for series in &mut resolved {
            if let Some((labels, series_ref)) = cached.get(&series.hash)
                && same_labels(labels, &sorted[series.pairs.clone()])
            {
                series.known = Some((labels.clone(), *series_ref));
            }
        }
    }
    // Series found or re-found by labels, for the cache.
    let mut learned: Vec<(u64, Labels, SeriesRef)> = Vec::new();
    let mut appender = tsdb.appender();
    for series in resolved {
        let index = series.index;
        let Some(wire_series) = request.series.get(index) else {
            continue;
        };
        let samples = request.samples_of(wire_series);
        let (labels, mut series_ref) = match series.known {
            Some((labels, series_ref)) => (labels, Some(series_ref)),
            None => {
                let pairs = sorted.get(series.pairs.clone()).unwrap_or(&[]);
                let labels = Labels::from_sorted(pairs.iter().map(|pair| (pair.name, pair.value)));
                (labels, None)
            }
        };
        let was_known = series_ref;
        if wire_series.metadata.is_some() {
            outcome.metadata_dropped += 1;
        }
        if wire_series.histograms > 0 {
            outcome.rejected_histograms += wire_series.histograms as u64;
            outcome.errors.push(format!(
                "series {index}: native histograms are not supported: {} dropped for series {labels}",
                wire_series.histograms
            ));
        }
        // Per reason: how many samples, and the first one's timestamp.
        let mut refused: Vec<(Refused, u64, i64)> = Vec::new();
        // Without a reference the series is looked up by labels once (its first accepted
        // sample); its other samples go by reference.
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
        if let Some(found) = series_ref
            && was_known != Some(found)
        {
            learned.push((series.hash, labels, found));
        }
    }
    let stats = appender.commit()?;
    if !learned.is_empty() {
        let mut cached = lock(&cache.series);
        if cached.len() + learned.len() > MAX_CACHED_SERIES {
            // Bounded: a sender with more series than this starts the cache over rather than
            // growing it; its series are found by labels again.
            cached.clear();
        }
        for (hash, labels, series_ref) in learned.into_iter().take(MAX_CACHED_SERIES) {
            cached.insert(hash, (labels, series_ref));
        }
    }
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
    State(receiver): State<Arc<Receiver>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let ingest = &receiver.ingest;
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
    let cache = Arc::clone(&receiver.cache);
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_millis() as i64);
    let result = tokio::task::spawn_blocking(move || {
        let mut raw = DECOMPRESSED.with(|buffer| std::mem::take(&mut *buffer.borrow_mut()));
        let outcome = decompress_into(&bytes, &mut raw).and_then(|()| {
            let request = decode(protocol, &raw)?;
            append_cached(&tsdb, &request, now_ms, &cache).map_err(|error| {
                tracing::error!(%error, "remote write: storage failed");
                refuse(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("storage: {error}"),
                )
            })
        });
        if raw.capacity() <= KEPT_BUFFER_BYTES {
            DECOMPRESSED.with(|buffer| *buffer.borrow_mut() = raw);
        }
        outcome
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

    /// A series' labels as sent, and its one sample.
    type TestSeries<'a> = (&'a [(&'a str, &'a str)], i64, f64);

    /// A 1.0 request of one sample per series, labels in the order given.
    fn request_of(series: &[TestSeries<'_>]) -> Vec<u8> {
        use prost::Message as _;
        proto::WriteRequest {
            timeseries: series
                .iter()
                .map(|(labels, timestamp, value)| proto::TimeSeries {
                    labels: labels
                        .iter()
                        .map(|(name, value)| proto::Label {
                            name: name.to_string(),
                            value: value.to_string(),
                        })
                        .collect(),
                    samples: vec![proto::Sample {
                        value: *value,
                        timestamp: *timestamp,
                    }],
                    ..proto::TimeSeries::default()
                })
                .collect(),
            metadata: Vec::new(),
        }
        .encode_to_vec()
    }

    #[test]
    fn the_series_cache_finds_series_by_their_labels_in_any_order() {
        let folder = tempfile::tempdir().unwrap();
        let tsdb = Tsdb::open(folder.path(), crate::tsdb::TsdbOptions::default()).unwrap();
        let cache = SeriesCache::default();
        let now = 1_700_000_000_000;
        let a: &[(&str, &str)] = &[("__name__", "m"), ("job", "a")];
        let a_reordered: &[(&str, &str)] = &[("job", "a"), ("__name__", "m"), ("empty", "")];
        let b: &[(&str, &str)] = &[("__name__", "m"), ("job", "b")];
        let first = request_of(&[(a, now, 1.0), (b, now, 2.0)]);
        let outcome = append_cached(&tsdb, &wire::decode_v1(&first).unwrap(), now, &cache).unwrap();
        assert_eq!((outcome.samples_written, outcome.errors.len()), (2, 0));
        assert_eq!(cache.len(), 2);
        // The same series, labels in another order and with an empty one (no such label):
        // found in the cache, and the samples land in the right series.
        let second = request_of(&[(a_reordered, now + 1000, 3.0), (b, now + 1000, 4.0)]);
        let outcome =
            append_cached(&tsdb, &wire::decode_v1(&second).unwrap(), now, &cache).unwrap();
        assert_eq!((outcome.samples_written, outcome.errors.len()), (2, 0));
        assert_eq!(cache.len(), 2);
        let querier = tsdb.querier(i64::MIN, i64::MAX);
        let mut found: Vec<(String, Vec<(i64, f64)>)> = querier
            .select(&[crate::tsdb::Matcher::equal("__name__", "m")])
            .unwrap()
            .map(|series| {
                let job = series.labels.get("job").unwrap_or("").to_string();
                (job, series.samples().collect())
            })
            .collect();
        found.sort_by(|x, y| x.0.cmp(&y.0));
        assert_eq!(
            found,
            [
                ("a".to_string(), vec![(now, 1.0), (now + 1000, 3.0)]),
                ("b".to_string(), vec![(now, 2.0), (now + 1000, 4.0)]),
            ]
        );
        // Refusals still name the series, cached or not.
        let third = request_of(&[(a, now, 9.0)]);
        let outcome = append_cached(&tsdb, &wire::decode_v1(&third).unwrap(), now, &cache).unwrap();
        assert_eq!(outcome.rejected_samples, 1);
        assert!(
            outcome.errors[0].contains("for series {__name__=\"m\", job=\"a\"}"),
            "{:?}",
            outcome.errors
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
