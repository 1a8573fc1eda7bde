//! Prometheus's `alerting:` section: where alerts are sent (`alertmanagers`) and how they are
//! relabeled first (`alert_relabel_configs`).

use super::discovery::{DnsSdConfig, FileSdConfig, HttpSdConfig, StaticConfig, validate_discovery};
use super::labels::NameValidation;
use super::relabel::{RelabelConfig, validate_all};
use super::scrape::Scheme;
use crate::config::http_client::with_inline_http_client;
use crate::config::{Invalid, Position, PromDuration, Spanned};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AlertingConfig {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub alert_relabel_configs: Vec<Spanned<RelabelConfig>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub alertmanagers: Vec<Spanned<AlertmanagerConfig>>,
}

impl AlertingConfig {
    pub fn is_empty(&self) -> bool {
        self.alert_relabel_configs.is_empty() && self.alertmanagers.is_empty()
    }

    pub(super) fn validate(&self, names: NameValidation) -> Result<(), Invalid> {
        validate_all(&self.alert_relabel_configs, names)?;
        for alertmanager in &self.alertmanagers {
            alertmanager
                .value
                .validate(Position::of(alertmanager), names)?;
        }
        Ok(())
    }
}

/// The Alertmanager API used to send alerts. Prometheus 3 removed v1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AlertmanagerApiVersion {
    #[default]
    V2,
}

impl Serialize for AlertmanagerApiVersion {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str("v2")
    }
}

impl<'de> Deserialize<'de> for AlertmanagerApiVersion {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        match text.as_str() {
            "v2" => Ok(AlertmanagerApiVersion::V2),
            "v1" => Err(serde::de::Error::custom(
                "api_version v1 is no longer supported (Prometheus 3 removed it); use v2",
            )),
            other => Err(serde::de::Error::custom(format!(
                "invalid api_version {other:?}: the only supported Alertmanager API version is v2"
            ))),
        }
    }
}

fn default_scheme() -> Scheme {
    Scheme::Http
}

fn default_timeout() -> Spanned<PromDuration> {
    super::scrape::unplaced(PromDuration::from_secs(10))
}

with_inline_http_client! {
    /// `<alertmanager_config>`: a set of Alertmanagers, found like scrape targets.
    #[derive(Debug, Clone, Deserialize, Serialize)]
    #[serde(deny_unknown_fields)]
    pub struct AlertmanagerConfig {
        #[serde(default = "default_scheme")]
        pub scheme: Scheme,
        /// Put in front of `/api/v2/alerts`; joined as a path, so a leading `/` is optional.
        #[serde(default, skip_serializing_if = "String::is_empty")]
        pub path_prefix: String,
        #[serde(default = "default_timeout")]
        pub timeout: Spanned<PromDuration>,
        #[serde(default)]
        pub api_version: AlertmanagerApiVersion,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        pub static_configs: Vec<Spanned<StaticConfig>>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        pub file_sd_configs: Vec<Spanned<FileSdConfig>>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        pub http_sd_configs: Vec<Spanned<HttpSdConfig>>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        pub dns_sd_configs: Vec<Spanned<DnsSdConfig>>,
        /// Relabeling of the discovered Alertmanager targets.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        pub relabel_configs: Vec<Spanned<RelabelConfig>>,
        /// Relabeling of alerts sent to these Alertmanagers only.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        pub alert_relabel_configs: Vec<Spanned<RelabelConfig>>,
    }
}

impl AlertmanagerConfig {
    fn validate(&self, at: Position, names: NameValidation) -> Result<(), Invalid> {
        if self.timeout.value.is_zero() {
            return Err(Invalid::on(
                &self.timeout,
                "alertmanagers: timeout must be greater than zero",
            ));
        }
        self.http_client().validate(at)?;
        validate_all(&self.relabel_configs, names)?;
        validate_all(&self.alert_relabel_configs, names)?;
        validate_discovery(
            &self.static_configs,
            &self.file_sd_configs,
            &self.http_sd_configs,
            &self.dns_sd_configs,
            &self.relabel_configs,
        )
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::config::parse_document;

    fn alerting(yaml: &str) -> Result<AlertingConfig, String> {
        let config: AlertingConfig =
            parse_document(yaml, "a.yml").map_err(|error| error.to_string())?;
        config
            .validate(NameValidation::Utf8)
            .map_err(|invalid| invalid.in_file("a.yml").to_string())?;
        Ok(config)
    }

    #[test]
    fn defaults() {
        let config =
            alerting("alertmanagers:\n  - static_configs:\n      - targets: ['am:9093']\n")
                .unwrap();
        let alertmanager = &config.alertmanagers[0].value;
        assert_eq!(alertmanager.scheme, Scheme::Http);
        assert_eq!(alertmanager.timeout.value, PromDuration::from_secs(10));
        assert_eq!(alertmanager.api_version, AlertmanagerApiVersion::V2);
        assert_eq!(
            alertmanager.static_configs[0].value.targets[0].value,
            "am:9093"
        );
    }

    #[test]
    fn refuses_v1_and_bad_values() {
        assert_eq!(
            alerting("alertmanagers:\n  - api_version: v1\n").unwrap_err(),
            "a.yml:2:18: api_version v1 is no longer supported (Prometheus 3 removed it); use v2"
        );
        assert_eq!(
            alerting("alertmanagers:\n  - scheme: udp\n").unwrap_err(),
            "a.yml:2:13: unknown scheme \"udp\" (expected one of http, https)"
        );
        alerting("alertmanagers:\n  - path_prefix: alertmanager\n").unwrap();
        assert_eq!(
            alerting("alertmanagers:\n  - sigv4: {region: eu-west-1}\n").unwrap_err(),
            "a.yml:2:5: `sigv4` is not supported by Tocsin"
        );
        assert_eq!(
            alerting(
                "alert_relabel_configs:\n  - action: labeldrop\n    regex: x\n    target_label: y\n"
            )
            .unwrap_err(),
            "a.yml:2:5: labeldrop action requires only 'regex', and no other fields"
        );
    }
}
