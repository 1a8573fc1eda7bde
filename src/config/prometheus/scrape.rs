//! `<scrape_config>`: one scrape job, with the defaults it takes from `global`.

use super::discovery::{DnsSdConfig, FileSdConfig, HttpSdConfig, StaticConfig, validate_discovery};
use super::global::GlobalConfig;
use super::labels::NameValidation;
use super::relabel::{RelabelConfig, validate_all};
use super::size::ByteSize;
use crate::config::http_client::with_inline_http_client;
use crate::config::{Invalid, Position, PromDuration, Spanned};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

string_enum! {
    /// An exposition format offered to targets in the `Accept` header.
    pub enum ScrapeProtocol {
        PrometheusProto => "PrometheusProto",
        PrometheusText0_0_4 => "PrometheusText0.0.4",
        PrometheusText1_0_0 => "PrometheusText1.0.0",
        OpenMetricsText0_0_1 => "OpenMetricsText0.0.1",
        OpenMetricsText1_0_0 => "OpenMetricsText1.0.0",
    } else "scrape protocol"
}

impl ScrapeProtocol {
    /// The media type and parameters sent in `Accept` for this protocol.
    pub fn header_value(self) -> &'static str {
        match self {
            ScrapeProtocol::PrometheusProto => {
                "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited"
            }
            ScrapeProtocol::PrometheusText0_0_4 => "text/plain;version=0.0.4",
            ScrapeProtocol::PrometheusText1_0_0 => "text/plain;version=1.0.0",
            ScrapeProtocol::OpenMetricsText0_0_1 => "application/openmetrics-text;version=0.0.1",
            ScrapeProtocol::OpenMetricsText1_0_0 => "application/openmetrics-text;version=1.0.0",
        }
    }
}

/// Prometheus's default negotiation order when native histograms are off (they are not
/// supported by Tocsin, so this is always the default).
pub const DEFAULT_SCRAPE_PROTOCOLS: [ScrapeProtocol; 4] = [
    ScrapeProtocol::OpenMetricsText1_0_0,
    ScrapeProtocol::OpenMetricsText0_0_1,
    ScrapeProtocol::PrometheusText1_0_0,
    ScrapeProtocol::PrometheusText0_0_4,
];

/// Refuses an empty or repeating protocol list. `whose` says which section, for messages.
pub(super) fn check_scrape_protocols(
    protocols: &Spanned<Vec<ScrapeProtocol>>,
    whose: &str,
) -> Result<(), Invalid> {
    if protocols.value.is_empty() {
        return Err(Invalid::on(
            protocols,
            format!("scrape_protocols must not be empty {whose}"),
        ));
    }
    for (index, protocol) in protocols.value.iter().enumerate() {
        if protocols.value[..index].contains(protocol) {
            return Err(Invalid::on(
                protocols,
                format!("scrape_protocols lists {protocol} more than once {whose}"),
            ));
        }
    }
    Ok(())
}

string_enum! {
    /// The URL scheme used to reach targets or Alertmanagers.
    pub enum Scheme {
        Http => "http",
        Https => "https",
    } else "scheme"
}

string_enum! {
    /// How metric names outside the legacy character set are asked for in content negotiation.
    pub enum EscapingScheme {
        AllowUtf8 => "allow-utf-8",
        Underscores => "underscores",
        Dots => "dots",
        Values => "values",
    } else "metric_name_escaping_scheme"
}

fn default_metrics_path() -> String {
    "/metrics".to_string()
}

fn default_true() -> bool {
    true
}

fn is_true(value: &bool) -> bool {
    *value
}

fn is_false(value: &bool) -> bool {
    !*value
}

fn is_zero(value: &u64) -> bool {
    *value == 0
}

fn default_scheme() -> Scheme {
    Scheme::Http
}

with_inline_http_client! {
    /// `<scrape_config>`. Keys that default to `global` are `None` until
    /// [`Config::finish`](crate::config::Config::finish) fills them; use the accessors.
    #[derive(Debug, Clone, Deserialize, Serialize)]
    #[serde(deny_unknown_fields)]
    pub struct ScrapeConfig {
        pub job_name: Spanned<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub scrape_interval: Option<Spanned<PromDuration>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub scrape_timeout: Option<Spanned<PromDuration>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub scrape_protocols: Option<Spanned<Vec<ScrapeProtocol>>>,
        /// The format assumed when a target's `Content-Type` is missing or unknown.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub fallback_scrape_protocol: Option<ScrapeProtocol>,
        #[serde(default = "default_metrics_path")]
        pub metrics_path: String,
        #[serde(default, skip_serializing_if = "is_false")]
        pub honor_labels: bool,
        #[serde(default = "default_true")]
        pub honor_timestamps: bool,
        #[serde(default, skip_serializing_if = "is_false")]
        pub track_timestamps_staleness: bool,
        #[serde(default = "default_scheme")]
        pub scheme: Scheme,
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        pub params: BTreeMap<String, Vec<String>>,
        #[serde(default = "default_true", skip_serializing_if = "is_true")]
        pub enable_compression: bool,
        /// Zero: inherit from `global` (where zero means no limit).
        #[serde(default, skip_serializing_if = "ByteSize::is_zero")]
        pub body_size_limit: ByteSize,
        #[serde(default, skip_serializing_if = "is_zero")]
        pub sample_limit: u64,
        #[serde(default, skip_serializing_if = "is_zero")]
        pub target_limit: u64,
        #[serde(default, skip_serializing_if = "is_zero")]
        pub label_limit: u64,
        #[serde(default, skip_serializing_if = "is_zero")]
        pub label_name_length_limit: u64,
        #[serde(default, skip_serializing_if = "is_zero")]
        pub label_value_length_limit: u64,
        #[serde(default, skip_serializing_if = "is_zero")]
        pub keep_dropped_targets: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub metric_name_validation_scheme: Option<NameValidation>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub metric_name_escaping_scheme: Option<Spanned<EscapingScheme>>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        pub static_configs: Vec<Spanned<StaticConfig>>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        pub file_sd_configs: Vec<Spanned<FileSdConfig>>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        pub http_sd_configs: Vec<Spanned<HttpSdConfig>>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        pub dns_sd_configs: Vec<Spanned<DnsSdConfig>>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        pub relabel_configs: Vec<Spanned<RelabelConfig>>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        pub metric_relabel_configs: Vec<Spanned<RelabelConfig>>,
    }
}

/// A value filled in from elsewhere, with no position of its own.
pub(super) fn unplaced<T>(value: T) -> Spanned<T> {
    Spanned::new(
        value,
        serde_saphyr::Location::UNKNOWN,
        serde_saphyr::Location::UNKNOWN,
    )
}

/// A duration key where Prometheus treats zero as "not set".
fn set_duration(value: &Option<Spanned<PromDuration>>) -> Option<&Spanned<PromDuration>> {
    value.as_ref().filter(|duration| !duration.value.is_zero())
}

impl ScrapeConfig {
    pub fn job_name(&self) -> &str {
        &self.job_name.value
    }

    pub fn scrape_interval(&self) -> PromDuration {
        self.scrape_interval
            .as_ref()
            .map_or(super::global::DEFAULT_SCRAPE_INTERVAL, |d| d.value)
    }

    pub fn scrape_timeout(&self) -> PromDuration {
        self.scrape_timeout
            .as_ref()
            .map_or(super::global::DEFAULT_SCRAPE_TIMEOUT, |d| d.value)
    }

    pub fn scrape_protocols(&self) -> &[ScrapeProtocol] {
        self.scrape_protocols
            .as_ref()
            .map_or(&DEFAULT_SCRAPE_PROTOCOLS[..], |p| p.value.as_slice())
    }

    pub fn name_validation(&self) -> NameValidation {
        self.metric_name_validation_scheme.unwrap_or_default()
    }

    pub fn escaping_scheme(&self) -> EscapingScheme {
        self.metric_name_escaping_scheme
            .as_ref()
            .map_or(EscapingScheme::AllowUtf8, |scheme| scheme.value)
    }

    /// Fills what this job inherits from `global`, as Prometheus's `ScrapeConfig.Validate`
    /// does, and checks the job. `at` is where the job begins.
    pub(super) fn finish(&mut self, global: &GlobalConfig, at: Position) -> Result<(), Invalid> {
        let job = self.job_name.value.clone();
        if job.is_empty() {
            return Err(Invalid::on(&self.job_name, "job_name must not be empty"));
        }

        let interval = match set_duration(&self.scrape_interval) {
            Some(interval) => interval.value,
            None => global.scrape_interval(),
        };
        self.scrape_interval = Some(match self.scrape_interval.take() {
            Some(written) if !written.value.is_zero() => written,
            _ => unplaced(interval),
        });
        match set_duration(&self.scrape_timeout) {
            Some(timeout) if timeout.value > interval => {
                return Err(Invalid::on(
                    timeout,
                    format!(
                        "scrape_timeout ({}) is greater than scrape_interval ({interval}) for job {job:?}",
                        timeout.value
                    ),
                ));
            }
            Some(_) => {}
            None => {
                self.scrape_timeout = Some(unplaced(global.scrape_timeout().min(interval)));
            }
        }

        inherit(&mut self.sample_limit, global.sample_limit);
        inherit(&mut self.target_limit, global.target_limit);
        inherit(&mut self.label_limit, global.label_limit);
        inherit(
            &mut self.label_name_length_limit,
            global.label_name_length_limit,
        );
        inherit(
            &mut self.label_value_length_limit,
            global.label_value_length_limit,
        );
        inherit(&mut self.keep_dropped_targets, global.keep_dropped_targets);
        if self.body_size_limit.is_zero() {
            self.body_size_limit = global.body_size_limit;
        }

        match &self.scrape_protocols {
            Some(protocols) => check_scrape_protocols(protocols, &format!("for job {job:?}"))?,
            None => {
                self.scrape_protocols = Some(unplaced(global.scrape_protocols().to_vec()));
            }
        }

        let local_validation = self.metric_name_validation_scheme;
        let validation = local_validation.unwrap_or(global.name_validation());
        self.metric_name_validation_scheme = Some(validation);
        let escaping = match (&self.metric_name_escaping_scheme, local_validation) {
            (Some(written), _) => written.clone(),
            (None, None) => unplaced(global.escaping_scheme()),
            (None, Some(NameValidation::Legacy)) => unplaced(EscapingScheme::Underscores),
            (None, Some(NameValidation::Utf8)) => unplaced(EscapingScheme::AllowUtf8),
        };
        if escaping.value == EscapingScheme::AllowUtf8 && validation == NameValidation::Legacy {
            let message = format!(
                "metric_name_escaping_scheme allow-utf-8 requires metric_name_validation_scheme utf8 (job {job:?} uses legacy)"
            );
            return Err(if escaping.referenced.line() == 0 {
                Invalid::at(at, message)
            } else {
                Invalid::on(&escaping, message)
            });
        }
        self.metric_name_escaping_scheme = Some(escaping);

        validate_all(&self.relabel_configs, validation)?;
        validate_all(&self.metric_relabel_configs, validation)?;
        validate_discovery(
            &self.static_configs,
            &self.file_sd_configs,
            &self.http_sd_configs,
            &self.dns_sd_configs,
            &self.relabel_configs,
        )?;
        self.http_client().validate(at)
    }
}

/// A per-job limit of zero takes the global one.
fn inherit(local: &mut u64, global: u64) {
    if *local == 0 {
        *local = global;
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::config::parse_document;

    fn job(yaml: &str) -> Result<ScrapeConfig, String> {
        job_with(yaml, &GlobalConfig::default())
    }

    fn job_with(yaml: &str, global: &GlobalConfig) -> Result<ScrapeConfig, String> {
        let mut config: Spanned<ScrapeConfig> =
            parse_document(yaml, "s.yml").map_err(|error| error.to_string())?;
        let at = Position::of(&config);
        config
            .value
            .finish(global, at)
            .map_err(|invalid| invalid.in_file("s.yml").to_string())?;
        Ok(config.value)
    }

    #[test]
    fn defaults() {
        let config = job("job_name: node\n").unwrap();
        assert_eq!(config.scrape_interval(), PromDuration::from_secs(60));
        assert_eq!(config.scrape_timeout(), PromDuration::from_secs(10));
        assert_eq!(config.metrics_path, "/metrics");
        assert_eq!(config.scheme, Scheme::Http);
        assert!(config.honor_timestamps);
        assert!(config.enable_compression);
        assert!(!config.honor_labels);
        assert_eq!(config.scrape_protocols(), &DEFAULT_SCRAPE_PROTOCOLS);
        assert_eq!(config.name_validation(), NameValidation::Utf8);
        assert_eq!(config.escaping_scheme(), EscapingScheme::AllowUtf8);
        assert!(config.follow_redirects);
    }

    #[test]
    fn timeout_is_capped_by_a_short_interval() {
        let config = job("job_name: fast\nscrape_interval: 5s\n").unwrap();
        assert_eq!(config.scrape_timeout(), PromDuration::from_secs(5));
        let config = job("job_name: z\nscrape_interval: 0s\n").unwrap();
        assert_eq!(config.scrape_interval(), PromDuration::from_secs(60));
    }

    #[test]
    fn timeout_above_interval_is_refused() {
        assert_eq!(
            job("job_name: slow\nscrape_interval: 10s\nscrape_timeout: 15s\n").unwrap_err(),
            "s.yml:3:17: scrape_timeout (15s) is greater than scrape_interval (10s) for job \"slow\""
        );
    }

    #[test]
    fn inherits_limits_from_global() {
        let global: GlobalConfig = parse_document(
            "sample_limit: 1000\nbody_size_limit: 10MB\nlabel_limit: 30\nscrape_protocols: [PrometheusText0.0.4]\n",
            "g.yml",
        )
        .unwrap();
        let config = job_with("job_name: a\nlabel_limit: 5\n", &global).unwrap();
        assert_eq!(config.sample_limit, 1000);
        assert_eq!(config.label_limit, 5);
        assert_eq!(config.body_size_limit, ByteSize::from_bytes(10 << 20));
        assert_eq!(
            config.scrape_protocols(),
            &[ScrapeProtocol::PrometheusText0_0_4]
        );
    }

    #[test]
    fn scrape_protocols_are_checked() {
        assert_eq!(
            job("job_name: a\nscrape_protocols: [OpenMetricsText1.0.0, OpenMetricsText1.0.0]\n")
                .unwrap_err(),
            "s.yml:2:19: scrape_protocols lists OpenMetricsText1.0.0 more than once for job \"a\""
        );
        assert_eq!(
            job("job_name: a\nscrape_protocols: [prometheustext0.0.4]\n").unwrap_err(),
            "s.yml:2:20: unknown scrape protocol \"prometheustext0.0.4\" (expected one of PrometheusProto, PrometheusText0.0.4, PrometheusText1.0.0, OpenMetricsText0.0.1, OpenMetricsText1.0.0)"
        );
        assert_eq!(
            job("job_name: a\nscrape_protocols: []\n").unwrap_err(),
            "s.yml:2:19: scrape_protocols must not be empty for job \"a\""
        );
    }

    #[test]
    fn escaping_follows_validation() {
        let config = job("job_name: a\nmetric_name_validation_scheme: legacy\n").unwrap();
        assert_eq!(config.escaping_scheme(), EscapingScheme::Underscores);
        assert_eq!(
            job("job_name: a\nmetric_name_validation_scheme: legacy\nmetric_name_escaping_scheme: allow-utf-8\n")
                .unwrap_err(),
            "s.yml:3:30: metric_name_escaping_scheme allow-utf-8 requires metric_name_validation_scheme utf8 (job \"a\" uses legacy)"
        );
    }

    #[test]
    fn scheme_and_types() {
        assert_eq!(
            job("job_name: a\nscheme: ftp\n").unwrap_err(),
            "s.yml:2:9: unknown scheme \"ftp\" (expected one of http, https)"
        );
        assert!(
            job("job_name: a\nsample_limit: many\n")
                .unwrap_err()
                .starts_with("s.yml:2:15: ")
        );
        assert_eq!(
            job("job_name: ''\n").unwrap_err(),
            "s.yml:1:11: job_name must not be empty"
        );
    }
}
