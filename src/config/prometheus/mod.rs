//! The keys of `prometheus.yml`, as Prometheus 3.x documents them.

use super::{Config, Invalid};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct GlobalConfig {}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ScrapeConfig {}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AlertingConfig {}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RemoteWriteConfig {}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RemoteReadConfig {}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StorageConfig {}

/// Fills the defaults Prometheus derives from `global` and checks cross-key rules.
pub(super) fn finish(config: &mut Config) -> Result<(), Invalid> {
    let _ = config;
    Ok(())
}

/// A rule file (`rule_files`), in Prometheus's format.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RuleFile {}

/// Parses and checks one rule file: YAML schema, PromQL expressions, templates, durations.
pub fn parse_rule_file(text: &str, file: &str) -> Result<RuleFile, super::ConfigError> {
    super::parse_document(text, file)
}
