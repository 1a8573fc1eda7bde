//! The HTTP side of a queue: encoding a batch as a remote-write 1.0 or 2.0 request, POSTing it
//! with the endpoint's headers, credentials and TLS, and telling which failures are worth a
//! retry (5xx, network errors, 429 when `retry_on_http_429`) from those that drop the batch
//! (other 4xx). A 2.0 endpoint that answers 415 is switched to 1.0 for good.

use super::metadata::{MetadataIndex, metric_type_number};
use crate::api::remote_write::proto;
use crate::config::prometheus::{ProtobufMessage, RemoteWriteConfig};
use crate::ingest::scrape::{Auth, build_http_client, error_chain, resolve_http_auth};
use prost::Message as _;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// The most bytes of an error response kept for the log.
const MAX_ERROR_BODY: usize = 1024;
/// The most response bytes read at all (the body is drained so connections can be reused).
const MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// One series' labels after external labels and `write_relabel_configs`, shared by its samples.
pub type SeriesLabels = Arc<Vec<(String, String)>>;

/// One sample waiting in a shard.
#[derive(Debug, Clone)]
pub struct QueuedSample {
    pub series: SeriesLabels,
    /// The series' WAL reference: samples of a series are grouped by it.
    pub series_ref: u64,
    pub timestamp: i64,
    pub value: f64,
    /// The WAL record the sample came from (see `progress`), and where that record starts.
    pub record: u64,
    pub record_start: super::wal_tail::Position,
}

/// How a send ended.
#[derive(Debug, Clone, PartialEq)]
pub enum SendError {
    /// Worth retrying: a 5xx, a 429 with `retry_on_http_429`, a network error or timeout.
    /// `retry_after` is the server's `Retry-After`, when it gave seconds.
    Recoverable {
        message: String,
        retry_after: Option<Duration>,
    },
    /// The remote refused the data (4xx): retrying would not help.
    Rejected { status: u16, message: String },
    /// A 2.0 request was answered 415: the endpoint speaks 1.0 only.
    UnsupportedProtocol,
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SendError::Recoverable { message, .. } => write!(f, "{message}"),
            SendError::Rejected { status, message } => {
                write!(f, "server returned HTTP status {status}: {message}")
            }
            SendError::UnsupportedProtocol => {
                write!(f, "server returned HTTP status 415 to a 2.0 request")
            }
        }
    }
}

/// Classifies a response status (Prometheus's `Client.Store`).
pub fn classify(
    status: u16,
    retry_on_429: bool,
    retry_after: Option<Duration>,
    body: &str,
    v2: bool,
) -> Result<(), SendError> {
    let message = || format!("server returned HTTP status {status}: {body}");
    match status {
        200..=299 => Ok(()),
        415 if v2 => Err(SendError::UnsupportedProtocol),
        500..=599 => Err(SendError::Recoverable {
            message: message(),
            retry_after,
        }),
        429 if retry_on_429 => Err(SendError::Recoverable {
            message: message(),
            retry_after,
        }),
        _ => Err(SendError::Rejected {
            status,
            message: body.to_string(),
        }),
    }
}

/// `Retry-After` in seconds; HTTP dates are not honoured (the backoff applies then).
pub fn parse_retry_after(value: Option<&str>) -> Option<Duration> {
    let seconds: u64 = value?.trim().parse().ok()?;
    Some(Duration::from_secs(seconds))
}

/// The wait before the next attempt and the backoff after it: the server's `Retry-After` if
/// it gave one, else the current backoff; the backoff then doubles up to `max`
/// (Prometheus's `sendWriteRequestWithBackoff`).
pub fn next_backoff(
    current: Duration,
    retry_after: Option<Duration>,
    max: Duration,
) -> (Duration, Duration) {
    let sleep = retry_after.unwrap_or(current);
    let next = sleep.saturating_mul(2).min(max);
    (sleep, next.max(Duration::from_millis(1)))
}

/// Encodes samples (in order) as `prometheus.WriteRequest`, one time series per series.
pub fn encode_v1(samples: &[QueuedSample]) -> Vec<u8> {
    let mut index: HashMap<u64, usize> = HashMap::new();
    let mut request = proto::WriteRequest::default();
    for sample in samples {
        let slot = *index.entry(sample.series_ref).or_insert_with(|| {
            request.timeseries.push(proto::TimeSeries {
                labels: sample
                    .series
                    .iter()
                    .map(|(name, value)| proto::Label {
                        name: name.clone(),
                        value: value.clone(),
                    })
                    .collect(),
                ..Default::default()
            });
            request.timeseries.len() - 1
        });
        request.timeseries[slot].samples.push(proto::Sample {
            value: sample.value,
            timestamp: sample.timestamp,
        });
    }
    request.encode_to_vec()
}

/// Encodes samples as `io.prometheus.write.v2.Request`, strings interned in its symbol table;
/// each series carries the metadata `metadata` knows for it.
pub fn encode_v2(samples: &[QueuedSample], metadata: &MetadataIndex) -> Vec<u8> {
    let mut symbols: Vec<String> = vec![String::new()];
    let mut symbol_index: HashMap<String, u32> = HashMap::from([(String::new(), 0)]);
    let mut intern = |text: &str| -> u32 {
        if let Some(&index) = symbol_index.get(text) {
            return index;
        }
        let index = symbols.len() as u32;
        symbols.push(text.to_string());
        symbol_index.insert(text.to_string(), index);
        index
    };
    let mut index: HashMap<u64, usize> = HashMap::new();
    let mut timeseries: Vec<proto::v2::TimeSeries> = Vec::new();
    for sample in samples {
        let slot = match index.get(&sample.series_ref) {
            Some(&slot) => slot,
            None => {
                let mut labels_refs = Vec::with_capacity(sample.series.len() * 2);
                for (name, value) in sample.series.iter() {
                    labels_refs.push(intern(name));
                    labels_refs.push(intern(value));
                }
                let metadata = metadata
                    .lookup(&sample.series)
                    .map(|found| proto::v2::Metadata {
                        r#type: metric_type_number(found.kind),
                        help_ref: intern(&found.help),
                        unit_ref: intern(&found.unit),
                    });
                timeseries.push(proto::v2::TimeSeries {
                    labels_refs,
                    metadata,
                    ..Default::default()
                });
                index.insert(sample.series_ref, timeseries.len() - 1);
                timeseries.len() - 1
            }
        };
        timeseries[slot].samples.push(proto::Sample {
            value: sample.value,
            timestamp: sample.timestamp,
        });
    }
    proto::v2::Request {
        symbols,
        timeseries,
    }
    .encode_to_vec()
}

/// Snappy block compression. It cannot fail on an in-memory buffer below its 4 GiB limit,
/// which requests (bounded by `max_samples_per_send`) never come near.
pub fn compress(raw: &[u8]) -> Vec<u8> {
    snap::raw::Encoder::new()
        .compress_vec(raw)
        .unwrap_or_default()
}

/// Posts batches to one endpoint.
#[derive(Debug)]
pub struct RemoteClient {
    client: reqwest::Client,
    auth: Auth,
    url: reqwest::Url,
    headers: Vec<(String, String)>,
    timeout: Duration,
    retry_on_429: bool,
    /// Set while the endpoint is spoken to in 2.0; cleared by a 415.
    v2: AtomicBool,
}

impl RemoteClient {
    /// The client of `config`, secrets read now (relative to `base_dir`).
    pub fn new(config: &RemoteWriteConfig, base_dir: &Path) -> Result<RemoteClient, String> {
        let http = config.http_client();
        let url = reqwest::Url::parse(&config.url.value)
            .map_err(|error| format!("invalid URL {:?}: {error}", config.url.value))?;
        Ok(RemoteClient {
            client: build_http_client(&http, base_dir, false)?,
            auth: resolve_http_auth(&http, base_dir)?,
            url,
            headers: config
                .headers
                .iter()
                .map(|(name, value)| (name.to_string(), value.to_string()))
                .collect(),
            timeout: config.remote_timeout.as_std(),
            retry_on_429: config.queue_config.retry_on_http_429,
            v2: AtomicBool::new(config.protobuf_message == ProtobufMessage::WriteV2),
        })
    }

    /// Whether requests go out as remote write 2.0.
    pub fn speaks_v2(&self) -> bool {
        self.v2.load(Ordering::Relaxed)
    }

    /// Encodes and compresses a batch for the protocol in use; the body and whether it is 2.0.
    /// `metadata` gives 2.0's per-series metadata.
    pub fn encode(&self, samples: &[QueuedSample], metadata: &MetadataIndex) -> (Vec<u8>, bool) {
        let v2 = self.speaks_v2();
        let raw = if v2 {
            encode_v2(samples, metadata)
        } else {
            encode_v1(samples)
        };
        (compress(&raw), v2)
    }

    /// Sends one encoded body. A 415 to a 2.0 request switches the client to 1.0.
    pub async fn send(&self, body: bytes::Bytes, v2: bool) -> Result<(), SendError> {
        let (content_type, version) = if v2 {
            (
                "application/x-protobuf;proto=io.prometheus.write.v2.Request",
                "2.0.0",
            )
        } else {
            ("application/x-protobuf", "0.1.0")
        };
        let mut request = self
            .client
            .post(self.url.clone())
            .header(reqwest::header::CONTENT_ENCODING, "snappy")
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .header("X-Prometheus-Remote-Write-Version", version)
            .header(
                reqwest::header::USER_AGENT,
                concat!("Tocsin/", env!("CARGO_PKG_VERSION")),
            )
            .timeout(self.timeout)
            .body(body);
        for (name, value) in &self.headers {
            request = request.header(name.as_str(), value.as_str());
        }
        let request = self.auth.apply(request);
        let exchange = async {
            let mut response = request
                .send()
                .await
                .map_err(|error| SendError::Recoverable {
                    message: format!("Post {:?}: {}", self.url.as_str(), error_chain(&error)),
                    retry_after: None,
                })?;
            let status = response.status().as_u16();
            let retry_after = parse_retry_after(
                response
                    .headers()
                    .get(reqwest::header::RETRY_AFTER)
                    .and_then(|value| value.to_str().ok()),
            );
            let mut body = Vec::new();
            while body.len() < MAX_RESPONSE_BYTES {
                match response.chunk().await {
                    Ok(Some(chunk)) => body.extend_from_slice(&chunk),
                    _ => break,
                }
            }
            body.truncate(MAX_ERROR_BODY);
            let text = String::from_utf8_lossy(&body);
            classify(status, self.retry_on_429, retry_after, text.trim(), v2)
        };
        let result = match tokio::time::timeout(self.timeout, exchange).await {
            Ok(result) => result,
            Err(_) => Err(SendError::Recoverable {
                message: format!(
                    "Post {:?}: no answer within the remote_timeout of {:?}",
                    self.url.as_str(),
                    self.timeout
                ),
                retry_after: None,
            }),
        };
        if result == Err(SendError::UnsupportedProtocol) && self.v2.swap(false, Ordering::Relaxed) {
            tracing::warn!(
                url = %self.url,
                "remote write: the endpoint does not accept remote write 2.0 (HTTP 415); falling back to 1.0"
            );
        }
        result
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::api::remote_write::wire;

    fn sample(series: &SeriesLabels, series_ref: u64, timestamp: i64, value: f64) -> QueuedSample {
        QueuedSample {
            series: Arc::clone(series),
            series_ref,
            timestamp,
            value,
            record: 0,
            record_start: Default::default(),
        }
    }

    fn batch() -> Vec<QueuedSample> {
        let a: SeriesLabels = Arc::new(vec![
            ("__name__".into(), "up".into()),
            ("job".into(), "a".into()),
        ]);
        let b: SeriesLabels = Arc::new(vec![
            ("__name__".into(), "up".into()),
            ("job".into(), "b".into()),
        ]);
        vec![
            sample(&a, 1, 1000, 1.0),
            sample(&b, 2, 1000, 0.0),
            sample(&a, 1, 2000, 1.5),
        ]
    }

    #[test]
    fn both_encodings_decode_with_the_receivers_reader() {
        let none = MetadataIndex::default();
        for (bytes, v2) in [
            (encode_v1(&batch()), false),
            (encode_v2(&batch(), &none), true),
        ] {
            let request = if v2 {
                wire::decode_v2(&bytes).unwrap()
            } else {
                wire::decode_v1(&bytes).unwrap()
            };
            assert_eq!(
                request.flat_samples(),
                vec![
                    ("__name__=up,job=a".to_string(), 1000, 1.0),
                    ("__name__=up,job=a".to_string(), 2000, 1.5),
                    ("__name__=up,job=b".to_string(), 1000, 0.0),
                ],
                "v2: {v2}"
            );
        }
    }

    #[test]
    fn v2_series_carry_their_targets_metadata() {
        use super::super::metadata::TargetMetadataSnapshot;
        use crate::ingest::scrape::MetricMetadata;
        let series: SeriesLabels = Arc::new(vec![
            ("__name__".into(), "up".into()),
            ("instance".into(), "h:1".into()),
            ("job".into(), "a".into()),
        ]);
        let unknown: SeriesLabels = Arc::new(vec![("__name__".into(), "pushed".into())]);
        let index = MetadataIndex::new(vec![TargetMetadataSnapshot {
            job: "a".into(),
            instance: "h:1".into(),
            metadata: Arc::new(
                [(
                    "up".to_string(),
                    MetricMetadata {
                        kind: "gauge",
                        help: "Whether the target is up.".into(),
                        unit: String::new(),
                    },
                )]
                .into_iter()
                .collect(),
            ),
        }]);
        let bytes = encode_v2(
            &[
                sample(&series, 1, 1000, 1.0),
                sample(&unknown, 2, 1000, 3.0),
            ],
            &index,
        );
        let request = proto::v2::Request::decode(bytes.as_slice()).unwrap();
        let first = request.timeseries[0].metadata.clone().unwrap();
        assert_eq!(first.r#type, 2);
        assert_eq!(
            request.symbols[first.help_ref as usize],
            "Whether the target is up."
        );
        assert_eq!(request.symbols[first.unit_ref as usize], "");
        assert_eq!(request.timeseries[1].metadata, None);
    }

    #[test]
    fn statuses_are_classified_as_prometheus_does() {
        assert_eq!(classify(204, false, None, "", false), Ok(()));
        assert!(matches!(
            classify(503, false, Some(Duration::from_secs(3)), "busy", false),
            Err(SendError::Recoverable { retry_after: Some(d), .. }) if d == Duration::from_secs(3)
        ));
        assert!(matches!(
            classify(429, false, None, "", false),
            Err(SendError::Rejected { status: 429, .. })
        ));
        assert!(matches!(
            classify(429, true, None, "", false),
            Err(SendError::Recoverable { .. })
        ));
        assert!(matches!(
            classify(400, true, None, "out of order", false),
            Err(SendError::Rejected { status: 400, .. })
        ));
        assert_eq!(
            classify(415, false, None, "", true),
            Err(SendError::UnsupportedProtocol)
        );
        assert!(matches!(
            classify(415, false, None, "", false),
            Err(SendError::Rejected { status: 415, .. })
        ));
    }

    #[test]
    fn backoff_doubles_to_the_cap_and_honours_retry_after() {
        let max = Duration::from_millis(200);
        let (sleep, next) = next_backoff(Duration::from_millis(30), None, max);
        assert_eq!(
            (sleep, next),
            (Duration::from_millis(30), Duration::from_millis(60))
        );
        let (sleep, next) = next_backoff(Duration::from_millis(150), None, max);
        assert_eq!((sleep, next), (Duration::from_millis(150), max));
        let (sleep, next) =
            next_backoff(Duration::from_millis(30), Some(Duration::from_secs(2)), max);
        assert_eq!((sleep, next), (Duration::from_secs(2), max));
        assert_eq!(parse_retry_after(Some(" 7 ")), Some(Duration::from_secs(7)));
        assert_eq!(
            parse_retry_after(Some("Wed, 21 Oct 2015 07:28:00 GMT")),
            None
        );
    }
}
