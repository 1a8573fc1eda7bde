//! `remote_write` and `remote_read`: sending samples to, and querying, other storage.

use super::discovery::check_http_url;
use super::labels::{LabelSet, NameValidation, SpannedMap};
use super::relabel::{RelabelConfig, validate_all};
use crate::config::http_client::with_inline_http_client;
use crate::config::{Invalid, Position, PromDuration, Spanned};
use serde::{Deserialize, Serialize};

string_enum! {
    /// The remote-write protocol version, named by its protobuf message.
    pub enum ProtobufMessage {
        WriteV1 => "prometheus.WriteRequest",
        WriteV2 => "io.prometheus.write.v2.Request",
    } else "protobuf_message"
}

/// Headers Prometheus sets itself; a config may not override them.
const RESERVED_HEADERS: &[&str] = &[
    "host",
    "content-encoding",
    "content-length",
    "content-type",
    "user-agent",
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "www-authenticate",
    "accept-encoding",
    "x-prometheus-remote-write-version",
    "x-prometheus-remote-read-version",
    "x-amz-date",
    "x-amz-security-token",
    "x-amz-content-sha256",
];

fn check_headers(headers: &SpannedMap, section: &str) -> Result<(), Invalid> {
    for entry in headers.entries() {
        let name = entry.name.value.to_ascii_lowercase();
        if name == "authorization" {
            return Err(Invalid::on(
                &entry.name,
                format!(
                    "{section}: the Authorization header must be set with basic_auth or authorization, not headers"
                ),
            ));
        }
        if RESERVED_HEADERS.contains(&name.as_str()) {
            return Err(Invalid::on(
                &entry.name,
                format!(
                    "{section}: {} is a reserved header and must not be changed",
                    entry.name.value
                ),
            ));
        }
    }
    Ok(())
}

fn is_zero_duration(duration: &PromDuration) -> bool {
    duration.is_zero()
}

fn default_true() -> bool {
    true
}

fn is_false(value: &bool) -> bool {
    !*value
}

fn default_write_timeout() -> PromDuration {
    PromDuration::from_secs(30)
}

fn default_read_timeout() -> PromDuration {
    PromDuration::from_secs(60)
}

fn default_protobuf_message() -> ProtobufMessage {
    ProtobufMessage::WriteV1
}

fn default_capacity() -> u64 {
    10_000
}

fn default_max_shards() -> u64 {
    50
}

fn default_min_shards() -> u64 {
    1
}

fn default_max_samples_per_send() -> u64 {
    2_000
}

fn default_batch_send_deadline() -> PromDuration {
    PromDuration::from_secs(5)
}

fn default_min_backoff() -> PromDuration {
    PromDuration::from_millis(30)
}

fn default_max_backoff() -> PromDuration {
    PromDuration::from_secs(5)
}

/// Prometheus's `metadata_config.max_samples_per_send`: metadata entries per request.
fn default_metadata_per_send() -> u64 {
    500
}

fn default_send_interval() -> PromDuration {
    PromDuration::from_secs(60)
}

fn default_chunked_read_limit() -> u64 {
    50_000_000
}

/// `queue_config`: how samples are buffered and sharded per remote-write endpoint.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct QueueConfig {
    /// Samples buffered per shard before reading from the WAL blocks.
    #[serde(default = "default_capacity")]
    pub capacity: u64,
    #[serde(default = "default_max_shards")]
    pub max_shards: u64,
    #[serde(default = "default_min_shards")]
    pub min_shards: u64,
    #[serde(default = "default_max_samples_per_send")]
    pub max_samples_per_send: u64,
    #[serde(default = "default_batch_send_deadline")]
    pub batch_send_deadline: PromDuration,
    #[serde(default = "default_min_backoff")]
    pub min_backoff: PromDuration,
    #[serde(default = "default_max_backoff")]
    pub max_backoff: PromDuration,
    /// Off by default in Prometheus: a 429 drops the batch unless this is set.
    #[serde(default)]
    pub retry_on_http_429: bool,
    /// Samples older than this are dropped instead of sent; zero keeps all.
    #[serde(default, skip_serializing_if = "is_zero_duration")]
    pub sample_age_limit: PromDuration,
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            capacity: default_capacity(),
            max_shards: default_max_shards(),
            min_shards: default_min_shards(),
            max_samples_per_send: default_max_samples_per_send(),
            batch_send_deadline: default_batch_send_deadline(),
            min_backoff: default_min_backoff(),
            max_backoff: default_max_backoff(),
            retry_on_http_429: false,
            sample_age_limit: PromDuration::ZERO,
        }
    }
}

/// `metadata_config`: whether and how often metric metadata is sent.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MetadataConfig {
    #[serde(default = "default_true")]
    pub send: bool,
    #[serde(default = "default_send_interval")]
    pub send_interval: PromDuration,
    /// Metadata entries per request (1.0).
    #[serde(default = "default_metadata_per_send")]
    pub max_samples_per_send: u64,
}

impl Default for MetadataConfig {
    fn default() -> Self {
        MetadataConfig {
            send: true,
            send_interval: default_send_interval(),
            max_samples_per_send: default_metadata_per_send(),
        }
    }
}

with_inline_http_client! {
    /// `<remote_write>`: one endpoint samples are sent to.
    #[derive(Debug, Clone, Deserialize, Serialize)]
    #[serde(deny_unknown_fields)]
    pub struct RemoteWriteConfig {
        pub url: Spanned<String>,
        #[serde(default = "default_protobuf_message")]
        pub protobuf_message: ProtobufMessage,
        #[serde(default = "default_write_timeout")]
        pub remote_timeout: PromDuration,
        #[serde(default, skip_serializing_if = "SpannedMap::is_empty")]
        pub headers: SpannedMap,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        pub write_relabel_configs: Vec<Spanned<RelabelConfig>>,
        /// Unique among `remote_write` entries; used in metrics and logs.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub name: Option<Spanned<String>>,
        /// Accepted for compatibility; has no effect: Tocsin stores no exemplars, so there
        /// are none in the WAL to send.
        #[serde(default, skip_serializing_if = "is_false")]
        pub send_exemplars: bool,
        #[serde(default, skip_serializing_if = "is_false")]
        pub send_native_histograms: bool,
        /// Spread requests across every address the host resolves to.
        #[serde(default, skip_serializing_if = "is_false")]
        pub round_robin_dns: bool,
        #[serde(default)]
        pub queue_config: QueueConfig,
        #[serde(default)]
        pub metadata_config: MetadataConfig,
    }
}

impl RemoteWriteConfig {
    pub(super) fn validate(&self, at: Position, names: NameValidation) -> Result<(), Invalid> {
        check_http_url(&self.url, "remote_write: url")?;
        check_headers(&self.headers, "remote_write")?;
        validate_all(&self.write_relabel_configs, names)?;
        if self.remote_timeout.is_zero() {
            return Err(Invalid::at(
                at,
                "remote_write: remote_timeout must be greater than zero",
            ));
        }
        let queue = &self.queue_config;
        if queue.max_shards == 0 || queue.max_samples_per_send == 0 || queue.capacity == 0 {
            return Err(Invalid::at(
                at,
                "remote_write: queue_config capacity, max_shards and max_samples_per_send must be greater than zero",
            ));
        }
        if queue.min_shards > queue.max_shards {
            return Err(Invalid::at(
                at,
                format!(
                    "remote_write: queue_config min_shards ({}) is greater than max_shards ({})",
                    queue.min_shards, queue.max_shards
                ),
            ));
        }
        let metadata = &self.metadata_config;
        if metadata.send && metadata.send_interval.is_zero() {
            return Err(Invalid::at(
                at,
                "remote_write: metadata_config send_interval must be greater than zero",
            ));
        }
        if queue.min_backoff > queue.max_backoff {
            return Err(Invalid::at(
                at,
                format!(
                    "remote_write: queue_config min_backoff ({}) is greater than max_backoff ({})",
                    queue.min_backoff, queue.max_backoff
                ),
            ));
        }
        self.http_client().validate(at)
    }
}

with_inline_http_client! {
    /// `<remote_read>`: one endpoint queries may read from.
    #[derive(Debug, Clone, Deserialize, Serialize)]
    #[serde(deny_unknown_fields)]
    pub struct RemoteReadConfig {
        pub url: Spanned<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub name: Option<Spanned<String>>,
        /// Equality matchers a selector must contain for this endpoint to be asked.
        #[serde(default, skip_serializing_if = "LabelSet::is_empty")]
        pub required_matchers: LabelSet,
        #[serde(default = "default_read_timeout")]
        pub remote_timeout: PromDuration,
        #[serde(default, skip_serializing_if = "SpannedMap::is_empty")]
        pub headers: SpannedMap,
        /// Also read for time ranges the local storage should have complete data for.
        #[serde(default, skip_serializing_if = "is_false")]
        pub read_recent: bool,
        #[serde(default = "default_true")]
        pub filter_external_labels: bool,
        /// The largest streamed (chunked) response frame accepted, in bytes.
        #[serde(default = "default_chunked_read_limit")]
        pub chunked_read_limit: u64,
    }
}

impl RemoteReadConfig {
    pub(super) fn validate(&self, at: Position) -> Result<(), Invalid> {
        check_http_url(&self.url, "remote_read: url")?;
        check_headers(&self.headers, "remote_read")?;
        for entry in self.required_matchers.entries() {
            if entry.name.value.is_empty() {
                return Err(Invalid::on(
                    &entry.name,
                    "remote_read: required_matchers: a label name must not be empty",
                ));
            }
        }
        if self.remote_timeout.is_zero() {
            return Err(Invalid::at(
                at,
                "remote_read: remote_timeout must be greater than zero",
            ));
        }
        self.http_client().validate(at)
    }
}

/// Names must be unique within `remote_write`, and within `remote_read`; unnamed entries are
/// named by Prometheus from a hash of their config.
pub(super) fn check_unique_names<'a>(
    names: impl Iterator<Item = &'a Spanned<String>>,
    section: &str,
) -> Result<(), Invalid> {
    let mut seen = std::collections::HashSet::new();
    for name in names {
        if name.value.is_empty() {
            continue;
        }
        if !seen.insert(name.value.as_str()) {
            return Err(Invalid::on(
                name,
                format!(
                    "found multiple {section} configs with name {:?}",
                    name.value
                ),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::config::parse_document;

    fn write(yaml: &str) -> Result<RemoteWriteConfig, String> {
        let config: Spanned<RemoteWriteConfig> =
            parse_document(yaml, "w.yml").map_err(|error| error.to_string())?;
        config
            .value
            .validate(Position::of(&config), NameValidation::Utf8)
            .map_err(|invalid| invalid.in_file("w.yml").to_string())?;
        Ok(config.value)
    }

    fn read(yaml: &str) -> Result<RemoteReadConfig, String> {
        let config: Spanned<RemoteReadConfig> =
            parse_document(yaml, "r.yml").map_err(|error| error.to_string())?;
        config
            .value
            .validate(Position::of(&config))
            .map_err(|invalid| invalid.in_file("r.yml").to_string())?;
        Ok(config.value)
    }

    #[test]
    fn write_defaults() {
        let config = write("url: https://metrics.example.org/api/v1/push\n").unwrap();
        assert_eq!(config.protobuf_message, ProtobufMessage::WriteV1);
        assert_eq!(config.remote_timeout, PromDuration::from_secs(30));
        let queue = &config.queue_config;
        assert_eq!(
            (
                queue.capacity,
                queue.max_shards,
                queue.min_shards,
                queue.max_samples_per_send
            ),
            (10_000, 50, 1, 2_000)
        );
        assert_eq!(queue.batch_send_deadline, PromDuration::from_secs(5));
        assert_eq!(queue.min_backoff, PromDuration::from_millis(30));
        assert_eq!(queue.max_backoff, PromDuration::from_secs(5));
        assert!(!queue.retry_on_http_429);
        assert!(config.metadata_config.send);
        assert_eq!(
            config.metadata_config.send_interval,
            PromDuration::from_secs(60)
        );
        assert_eq!(config.metadata_config.max_samples_per_send, 500);
        assert!(!config.send_exemplars);
        assert!(
            write("url: http://x/push\nsend_exemplars: true\n")
                .unwrap()
                .send_exemplars
        );
    }

    #[test]
    fn write_rules() {
        let config =
            write("url: http://x:9009/push\nprotobuf_message: io.prometheus.write.v2.Request\n")
                .unwrap();
        assert_eq!(config.protobuf_message, ProtobufMessage::WriteV2);
        assert_eq!(
            write("url: http://x/push\nprotobuf_message: v2\n").unwrap_err(),
            "w.yml:2:19: unknown protobuf_message \"v2\" (expected one of prometheus.WriteRequest, io.prometheus.write.v2.Request)"
        );
        assert_eq!(
            write("url: x.example.org/push\n").unwrap_err(),
            "w.yml:1:6: remote_write: url: invalid URL \"x.example.org/push\": relative URL without a base"
        );
        assert_eq!(
            write("url: http://x/push\nheaders:\n  Authorization: Bearer x\n").unwrap_err(),
            "w.yml:3:3: remote_write: the Authorization header must be set with basic_auth or authorization, not headers"
        );
        assert_eq!(
            write("url: http://x/push\nheaders:\n  Content-Type: text/plain\n").unwrap_err(),
            "w.yml:3:3: remote_write: Content-Type is a reserved header and must not be changed"
        );
        assert_eq!(
            write("url: http://x/push\nqueue_config:\n  min_shards: 10\n  max_shards: 2\n")
                .unwrap_err(),
            "w.yml:1:1: remote_write: queue_config min_shards (10) is greater than max_shards (2)"
        );
        assert_eq!(
            write("url: http://x/push\nmetadata_config:\n  send_interval: 0s\n").unwrap_err(),
            "w.yml:1:1: remote_write: metadata_config send_interval must be greater than zero"
        );
        assert!(
            write("url: http://x/push\nmetadata_config:\n  send: false\n  send_interval: 0s\n")
                .is_ok()
        );
        assert_eq!(
            write("url: http://x/push\nazuread: {cloud: AzurePublic}\n").unwrap_err(),
            "w.yml:2:1: `azuread` is not supported by Tocsin"
        );
        assert!(
            write("remote_timeout: 5s\n")
                .unwrap_err()
                .contains("missing field `url`")
        );
    }

    #[test]
    fn read_defaults_and_rules() {
        let config =
            read("url: http://remote:9201/read\nrequired_matchers:\n  env: prod\n").unwrap();
        assert_eq!(config.remote_timeout, PromDuration::from_secs(60));
        assert!(config.filter_external_labels);
        assert!(!config.read_recent);
        assert_eq!(config.chunked_read_limit, 50_000_000);
        assert_eq!(config.required_matchers.get("env"), Some("prod"));
        assert_eq!(
            read("url: http://x/read\nheaders:\n  User-Agent: me\n").unwrap_err(),
            "r.yml:3:3: remote_read: User-Agent is a reserved header and must not be changed"
        );
    }
}
