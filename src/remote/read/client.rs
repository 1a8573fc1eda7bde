//! One `remote_read` endpoint: its HTTP client, and one query sent and its answer decoded.
//!
//! Requests accept both response types, streamed chunks first (as Prometheus 3's client does);
//! the answer's `Content-Type` says which one came back. Every size is bounded: a `SAMPLES`
//! answer by [`MAX_SAMPLES_RESPONSE_BYTES`] compressed and [`MAX_DECOMPRESSED_BYTES`]
//! decompressed, a streamed one by `chunked_read_limit` per frame and
//! [`MAX_STREAMED_RESPONSE_BYTES`] in all.

use super::frame::FrameDecoder;
use super::metrics::{EndpointMetrics, ReadMetrics};
use super::proto::{
    ChunkEncoding, ChunkedReadResponse, Label, Query, ReadRequest, ReadResponse, ResponseType,
};
use crate::config::LoadedConfig;
use crate::config::prometheus::RemoteReadConfig;
use crate::ingest::scrape::{Auth, build_http_client, error_chain, resolve_http_auth};
use crate::tsdb::chunkenc::decode_xor;
use prost::Message as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The largest compressed `SAMPLES` answer read.
pub const MAX_SAMPLES_RESPONSE_BYTES: usize = 256 << 20;
/// The largest decompressed `SAMPLES` answer accepted (checked before decompressing).
pub const MAX_DECOMPRESSED_BYTES: usize = 512 << 20;
/// The most bytes a streamed answer may carry in all.
pub const MAX_STREAMED_RESPONSE_BYTES: usize = 1 << 30;
/// How much of an error answer's body is quoted.
const ERROR_BODY_BYTES: usize = 1024;

/// One series as an endpoint returned it, before the merge.
#[derive(Debug, Clone, PartialEq)]
pub struct RemoteSeries {
    pub labels: Vec<(String, String)>,
    pub samples: Vec<(i64, f64)>,
}

/// When and how an endpoint is asked.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EndpointRules {
    pub read_recent: bool,
    /// Equality matchers a selector must contain, sorted.
    pub required_matchers: Vec<(String, String)>,
    pub filter_external_labels: bool,
}

/// A configured endpoint.
pub struct Endpoint {
    /// The name in warnings and logs: the configured `name`, else the URL.
    pub label: String,
    pub rules: EndpointRules,
    url: reqwest::Url,
    client: reqwest::Client,
    auth: Auth,
    headers: Vec<(reqwest::header::HeaderName, reqwest::header::HeaderValue)>,
    timeout: Duration,
    chunked_read_limit: usize,
    metrics: Arc<EndpointMetrics>,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("label", &self.label)
            .field("rules", &self.rules)
            .finish_non_exhaustive()
    }
}

impl Endpoint {
    /// The endpoint of one `remote_read` entry; secrets are read from their files now. Its
    /// numbers are kept in `metrics` under its `remote_name` (the configured `name`, else
    /// the first 6 hex digits of a hash of its configuration, as Prometheus names it) and URL.
    pub fn new(
        config: &RemoteReadConfig,
        loaded: &LoadedConfig,
        metrics: &ReadMetrics,
    ) -> Result<Endpoint, String> {
        let base_dir = crate::node::ingest::config_dir(loaded);
        let url_text = config.url.value.as_str();
        let url = reqwest::Url::parse(url_text)
            .map_err(|error| format!("remote_read: url {url_text:?}: {error}"))?;
        let http = config.http_client();
        let label = config
            .name
            .as_ref()
            .map(|name| name.value.clone())
            .filter(|name| !name.is_empty())
            .unwrap_or_else(|| url_text.to_string());
        let mut headers = Vec::new();
        for (name, value) in config.headers.iter() {
            let header_name = reqwest::header::HeaderName::from_bytes(name.as_bytes())
                .map_err(|error| format!("remote_read {label}: header {name:?}: {error}"))?;
            let header_value = reqwest::header::HeaderValue::from_str(value)
                .map_err(|error| format!("remote_read {label}: header {name:?}: {error}"))?;
            headers.push((header_name, header_value));
        }
        let mut required_matchers: Vec<(String, String)> = config
            .required_matchers
            .iter()
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect();
        required_matchers.sort();
        let remote_name = config
            .name
            .as_ref()
            .map(|name| name.value.clone())
            .filter(|name| !name.is_empty())
            .unwrap_or_else(|| config_hash(config));
        Ok(Endpoint {
            metrics: metrics.endpoint(&remote_name, url.as_str()),
            rules: EndpointRules {
                read_recent: config.read_recent,
                required_matchers,
                filter_external_labels: config.filter_external_labels,
            },
            auth: resolve_http_auth(&http, &base_dir)
                .map_err(|error| format!("remote_read {label}: {error}"))?,
            client: build_http_client(&http, &base_dir, false)
                .map_err(|error| format!("remote_read {label}: {error}"))?,
            url,
            headers,
            timeout: config.remote_timeout.as_std(),
            chunked_read_limit: usize::try_from(config.chunked_read_limit).unwrap_or(usize::MAX),
            label,
        })
    }

    /// The endpoint's numbers.
    pub fn metrics(&self) -> &Arc<EndpointMetrics> {
        &self.metrics
    }

    /// Sends one query within `remote_timeout` and returns the series of its answer.
    pub async fn read(&self, query: Query) -> Result<Vec<RemoteSeries>, String> {
        let _in_flight = self.metrics.start();
        match tokio::time::timeout(self.timeout, self.exchange(query)).await {
            Ok(answer) => answer,
            Err(_) => Err(format!(
                "no answer within the remote_timeout of {:?}",
                self.timeout
            )),
        }
    }

    async fn exchange(&self, query: Query) -> Result<Vec<RemoteSeries>, String> {
        let request = ReadRequest {
            queries: vec![query],
            accepted_response_types: vec![
                ResponseType::StreamedXorChunks as i32,
                ResponseType::Samples as i32,
            ],
        };
        let body = snap::raw::Encoder::new()
            .compress_vec(&request.encode_to_vec())
            .map_err(|error| format!("snappy: {error}"))?;
        let mut builder = self
            .client
            .post(self.url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/x-protobuf")
            .header(reqwest::header::CONTENT_ENCODING, "snappy")
            .header("X-Prometheus-Remote-Read-Version", "0.1.0")
            .body(body);
        for (name, value) in &self.headers {
            builder = builder.header(name, value);
        }
        let started = Instant::now();
        let mut response = self.auth.apply(builder).send().await.map_err(|error| {
            format!(
                "error sending request: Post {:?}: {}",
                self.url.as_str(),
                error_chain(&error)
            )
        })?;
        let status = response.status();
        self.metrics
            .answered(status.as_u16(), started.elapsed().as_secs_f64());
        if !status.is_success() {
            let text = read_body(&mut response, ERROR_BODY_BYTES, true).await?;
            return Err(format!(
                "remote server {} returned HTTP status {status}: {}",
                self.url,
                String::from_utf8_lossy(&text).trim()
            ));
        }
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .unwrap_or("")
            .to_string();
        if content_type.starts_with("application/x-streamed-protobuf") {
            if !content_type.contains("proto=prometheus.ChunkedReadResponse") {
                return Err(format!(
                    "unsupported streamed content type {content_type:?}"
                ));
            }
            self.read_streamed(&mut response).await
        } else {
            let compressed = read_body(&mut response, MAX_SAMPLES_RESPONSE_BYTES, false).await?;
            decode_samples_answer(&compressed)
        }
    }

    async fn read_streamed(
        &self,
        response: &mut reqwest::Response,
    ) -> Result<Vec<RemoteSeries>, String> {
        let mut decoder = FrameDecoder::new(self.chunked_read_limit);
        let mut series = Vec::new();
        let mut received = 0usize;
        loop {
            let chunk = response
                .chunk()
                .await
                .map_err(|error| format!("reading the answer: {}", error_chain(&error)))?;
            let Some(chunk) = chunk else { break };
            received = received.saturating_add(chunk.len());
            if received > MAX_STREAMED_RESPONSE_BYTES {
                return Err(format!(
                    "streamed answer is over the limit of {MAX_STREAMED_RESPONSE_BYTES} bytes"
                ));
            }
            decoder.push(&chunk);
            while let Some(message) = decoder
                .next_message()
                .map_err(|error| format!("streamed answer: {error}"))?
            {
                decode_frame(&message, &mut series)?;
            }
        }
        decoder
            .finish()
            .map_err(|error| format!("streamed answer: {error}"))?;
        Ok(series)
    }
}

/// The first 6 hex digits of a SHA-1 of the serialized configuration: a stable name for an
/// unnamed endpoint.
fn config_hash(config: &RemoteReadConfig) -> String {
    use sha1::{Digest, Sha1};
    let serialized = serde_json::to_string(config).unwrap_or_default();
    Sha1::digest(serialized.as_bytes())
        .iter()
        .take(3)
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// Reads at most `limit` bytes of a body; over it, fails unless `truncate`.
async fn read_body(
    response: &mut reqwest::Response,
    limit: usize,
    truncate: bool,
) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|error| format!("reading the answer: {}", error_chain(&error)))?
    {
        if body.len() + chunk.len() > limit {
            if truncate {
                body.extend_from_slice(&chunk[..limit - body.len()]);
                break;
            }
            return Err(format!("answer is over the limit of {limit} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

fn pairs(labels: Vec<Label>) -> Vec<(String, String)> {
    labels
        .into_iter()
        .map(|label| (label.name, label.value))
        .collect()
}

/// A snappy-compressed `ReadResponse` for one query.
pub fn decode_samples_answer(compressed: &[u8]) -> Result<Vec<RemoteSeries>, String> {
    let length =
        snap::raw::decompress_len(compressed).map_err(|error| format!("snappy: {error}"))?;
    if length > MAX_DECOMPRESSED_BYTES {
        return Err(format!(
            "decompressed answer of {length} bytes is over the limit of {MAX_DECOMPRESSED_BYTES}"
        ));
    }
    let raw = snap::raw::Decoder::new()
        .decompress_vec(compressed)
        .map_err(|error| format!("snappy: {error}"))?;
    let response = ReadResponse::decode(raw.as_slice())
        .map_err(|error| format!("prometheus.ReadResponse: {error}"))?;
    let [result] = <[_; 1]>::try_from(response.results)
        .map_err(|results: Vec<_>| format!("responses: want 1, got {}", results.len()))?;
    Ok(result
        .timeseries
        .into_iter()
        .map(|series| RemoteSeries {
            labels: pairs(series.labels),
            samples: series
                .samples
                .into_iter()
                .map(|sample| (sample.timestamp, sample.value))
                .collect(),
        })
        .collect())
}

/// One `ChunkedReadResponse` frame's series, their XOR chunks decoded.
pub fn decode_frame(message: &[u8], out: &mut Vec<RemoteSeries>) -> Result<(), String> {
    let frame = ChunkedReadResponse::decode(message)
        .map_err(|error| format!("prometheus.ChunkedReadResponse: {error}"))?;
    if frame.query_index != 0 {
        return Err(format!(
            "streamed answer for query {} of a one-query request",
            frame.query_index
        ));
    }
    for series in frame.chunked_series {
        let mut samples = Vec::new();
        for chunk in &series.chunks {
            if chunk.r#type != ChunkEncoding::Xor as i32 {
                return Err(format!(
                    "chunk encoding {} is not supported (float XOR chunks only)",
                    chunk.r#type
                ));
            }
            samples.extend(decode_xor(&chunk.data).map_err(|error| error.to_string())?);
        }
        out.push(RemoteSeries {
            labels: pairs(series.labels),
            samples,
        });
    }
    Ok(())
}
