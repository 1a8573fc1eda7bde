//! `global:`: defaults for every scrape job and rule group, and the external labels.

use super::labels::{LabelSet, NameValidation, expand_env};
use super::scrape::{
    DEFAULT_SCRAPE_PROTOCOLS, EscapingScheme, ScrapeProtocol, check_scrape_protocols, unplaced,
};
use super::size::ByteSize;
use crate::config::{Invalid, PromDuration, Spanned};
use serde::{Deserialize, Serialize};

pub const DEFAULT_SCRAPE_INTERVAL: PromDuration = PromDuration::from_secs(60);
pub const DEFAULT_SCRAPE_TIMEOUT: PromDuration = PromDuration::from_secs(10);
pub const DEFAULT_EVALUATION_INTERVAL: PromDuration = PromDuration::from_secs(60);

fn is_zero_duration(duration: &PromDuration) -> bool {
    duration.is_zero()
}

fn is_zero(value: &u64) -> bool {
    *value == 0
}

/// `global:`. Durations are `None` until [`finish`](GlobalConfig::finish) fills them; use the
/// accessors.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct GlobalConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scrape_interval: Option<Spanned<PromDuration>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scrape_timeout: Option<Spanned<PromDuration>>,
    /// Unset means each job uses the default list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scrape_protocols: Option<Spanned<Vec<ScrapeProtocol>>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evaluation_interval: Option<Spanned<PromDuration>>,
    /// How far in the past rule groups evaluate by default, for late-arriving samples.
    #[serde(default, skip_serializing_if = "is_zero_duration")]
    pub rule_query_offset: PromDuration,
    /// Values may reference environment variables (`${REGION}`), expanded by `finish`.
    #[serde(default, skip_serializing_if = "LabelSet::is_empty")]
    pub external_labels: LabelSet,
    #[serde(default, skip_serializing_if = "ByteSize::is_zero")]
    pub body_size_limit: ByteSize,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub sample_limit: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub label_limit: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub label_name_length_limit: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub label_value_length_limit: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub target_limit: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub keep_dropped_targets: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric_name_validation_scheme: Option<NameValidation>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric_name_escaping_scheme: Option<EscapingScheme>,
}

/// A duration key where Prometheus treats zero as "not set".
fn written(value: &Option<Spanned<PromDuration>>) -> Option<&Spanned<PromDuration>> {
    value.as_ref().filter(|duration| !duration.value.is_zero())
}

impl GlobalConfig {
    pub fn scrape_interval(&self) -> PromDuration {
        written(&self.scrape_interval).map_or(DEFAULT_SCRAPE_INTERVAL, |d| d.value)
    }

    /// The explicit timeout, or the default capped by the interval.
    pub fn scrape_timeout(&self) -> PromDuration {
        written(&self.scrape_timeout)
            .map_or(DEFAULT_SCRAPE_TIMEOUT.min(self.scrape_interval()), |d| {
                d.value
            })
    }

    pub fn evaluation_interval(&self) -> PromDuration {
        written(&self.evaluation_interval).map_or(DEFAULT_EVALUATION_INTERVAL, |d| d.value)
    }

    pub fn scrape_protocols(&self) -> &[ScrapeProtocol] {
        self.scrape_protocols
            .as_ref()
            .map_or(&DEFAULT_SCRAPE_PROTOCOLS[..], |p| p.value.as_slice())
    }

    pub fn name_validation(&self) -> NameValidation {
        self.metric_name_validation_scheme.unwrap_or_default()
    }

    /// The explicit scheme, or the one that fits the validation scheme.
    pub fn escaping_scheme(&self) -> EscapingScheme {
        self.metric_name_escaping_scheme
            .unwrap_or(match self.name_validation() {
                NameValidation::Utf8 => EscapingScheme::AllowUtf8,
                NameValidation::Legacy => EscapingScheme::Underscores,
            })
    }

    /// Checks the section, expands environment variables in external label values with
    /// `lookup`, and fills the defaults so that printing shows them.
    pub fn finish(&mut self, lookup: impl Fn(&str) -> Option<String>) -> Result<(), Invalid> {
        let names = self.name_validation();
        for entry in self.external_labels.entries_mut() {
            if !names.is_valid_label_name(&entry.name.value) {
                return Err(Invalid::on(
                    &entry.name,
                    format!(
                        "external_labels: {:?} is not a valid label name",
                        entry.name.value
                    ),
                ));
            }
            entry.value = expand_env(&entry.value, &lookup);
        }
        let interval = self.scrape_interval();
        if let Some(timeout) = written(&self.scrape_timeout)
            && timeout.value > interval
        {
            return Err(Invalid::on(
                timeout,
                format!(
                    "global scrape_timeout ({}) is greater than scrape_interval ({interval})",
                    timeout.value
                ),
            ));
        }
        if let Some(protocols) = &self.scrape_protocols {
            check_scrape_protocols(protocols, "in global")?;
        }
        let timeout = self.scrape_timeout();
        let evaluation_interval = self.evaluation_interval();
        fill(&mut self.scrape_interval, interval);
        fill(&mut self.scrape_timeout, timeout);
        fill(&mut self.evaluation_interval, evaluation_interval);
        self.metric_name_validation_scheme = Some(names);
        self.metric_name_escaping_scheme = Some(self.escaping_scheme());
        Ok(())
    }
}

/// Replaces an unset (or zero, which Prometheus treats as unset) duration with its default.
fn fill(slot: &mut Option<Spanned<PromDuration>>, value: PromDuration) {
    if written(slot).is_none() {
        *slot = Some(unplaced(value));
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::config::parse_document;

    fn global(yaml: &str) -> Result<GlobalConfig, String> {
        let mut config: GlobalConfig =
            parse_document(yaml, "g.yml").map_err(|error| error.to_string())?;
        config
            .finish(|name| (name == "REGION").then(|| "eu-west".to_string()))
            .map_err(|invalid| invalid.in_file("g.yml").to_string())?;
        Ok(config)
    }

    #[test]
    fn defaults() {
        let config = global("{}").unwrap();
        assert_eq!(config.scrape_interval(), PromDuration::from_secs(60));
        assert_eq!(config.scrape_timeout(), PromDuration::from_secs(10));
        assert_eq!(config.evaluation_interval(), PromDuration::from_secs(60));
        assert_eq!(config.name_validation(), NameValidation::Utf8);
        let config = global("scrape_interval: 5s\n").unwrap();
        assert_eq!(config.scrape_timeout(), PromDuration::from_secs(5));
    }

    #[test]
    fn timeout_above_interval() {
        assert_eq!(
            global("scrape_interval: 15s\nscrape_timeout: 20s\n").unwrap_err(),
            "g.yml:2:17: global scrape_timeout (20s) is greater than scrape_interval (15s)"
        );
    }

    #[test]
    fn external_labels() {
        let config = global("external_labels:\n  region: ${REGION}\n  replica: 1\n").unwrap();
        let labels: Vec<_> = config.external_labels.iter().collect();
        assert_eq!(labels, vec![("region", "eu-west"), ("replica", "1")]);
        assert_eq!(
            global("external_labels:\n  '': x\n").unwrap_err(),
            "g.yml:2:3: external_labels: \"\" is not a valid label name"
        );
        assert_eq!(
            global("metric_name_validation_scheme: legacy\nexternal_labels:\n  dc.name: x\n")
                .unwrap_err(),
            "g.yml:3:3: external_labels: \"dc.name\" is not a valid label name"
        );
        global("external_labels:\n  dc.name: x\n").unwrap();
        let duplicate = global("external_labels:\n  a: x\n  a: y\n").unwrap_err();
        assert!(
            duplicate.starts_with("g.yml:3:3: duplicate mapping key: a"),
            "{duplicate}"
        );
    }

    #[test]
    fn bad_values() {
        assert_eq!(
            global("scrape_interval: 1h 30m\n").unwrap_err(),
            "g.yml:1:18: not a valid duration string: \"1h 30m\" (expected e.g. 30s, 5m, 1h30m; units y w d h m s ms, in that order, whole numbers)"
        );
        assert_eq!(
            global("metric_name_validation_scheme: ascii\n").unwrap_err(),
            "g.yml:1:32: invalid metric_name_validation_scheme \"ascii\": must be \"utf8\" or \"legacy\""
        );
        assert_eq!(
            global("query_log_file: q.log\n").unwrap_err(),
            "g.yml:1:1: `query_log_file` is not supported by Tocsin"
        );
    }
}
