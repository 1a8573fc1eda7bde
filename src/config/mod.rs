//! The configuration model: a `prometheus.yml` plus Tocsin's `alertmanager:` and `cluster:`
//! sections, loaded from YAML with `file:line:column` errors.
//!
//! Parsing is two steps: serde reads the YAML into the model (types, unknown keys, durations,
//! regexes, all with positions), then `finish` fills defaults that depend on other keys and checks
//! the rules that span keys (a route naming an unknown receiver, a scrape timeout above its
//! interval). Loading files from disk and following references is in `load`.
// A sans-IO core: no clocks, randomness, tasks or sleeps (clippy.toml lists them).
#![deny(clippy::disallowed_methods)]

pub mod alertmanager;
pub mod cluster;
mod duration;
mod error;
pub mod http_client;
mod load;
pub mod log_notifications;
pub mod prometheus;
mod regex;
mod secret;
mod yaml;

pub use duration::{DurationError, PromDuration};
pub use error::{ConfigError, Invalid, Position};
pub use load::{LoadErrors, LoadedConfig, load_file, load_text, read_bounded};
pub use regex::AnchoredRegex;
pub use secret::Secret;
pub use yaml::{MAX_FILE_BYTES, parse_document, to_yaml};

pub type Spanned<T> = serde_saphyr::Spanned<T>;

use serde::{Deserialize, Serialize};

/// A Tocsin configuration file: every key of `prometheus.yml` at the top level, unchanged, plus
/// Tocsin's own `alertmanager`, `alertmanager_config_file`, `cluster` and `log_notifications`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub global: prometheus::GlobalConfig,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rule_files: Vec<Spanned<String>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scrape_config_files: Vec<Spanned<String>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scrape_configs: Vec<Spanned<prometheus::ScrapeConfig>>,
    #[serde(default)]
    pub alerting: prometheus::AlertingConfig,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remote_write: Vec<Spanned<prometheus::RemoteWriteConfig>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remote_read: Vec<Spanned<prometheus::RemoteReadConfig>>,
    #[serde(default)]
    pub storage: prometheus::StorageConfig,
    /// An inline `alertmanager.yml` document.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alertmanager: Option<Spanned<alertmanager::AlertmanagerConfig>>,
    /// A path to an unchanged `alertmanager.yml`, relative to this file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alertmanager_config_file: Option<Spanned<String>>,
    /// The cluster flags, as a config section; flags given on the command line win.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<Spanned<cluster::ClusterSection>>,
    /// Receivers whose notifications are also written to the node's log.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_notifications: Option<Spanned<log_notifications::LogNotifications>>,
}

impl Config {
    /// Fills defaults that depend on other keys and checks rules that span keys.
    pub fn finish(&mut self) -> Result<(), Invalid> {
        prometheus::finish(self)?;
        if let (Some(inline), Some(file)) = (&self.alertmanager, &self.alertmanager_config_file) {
            let _ = inline;
            return Err(Invalid::on(
                file,
                "at most one of alertmanager and alertmanager_config_file may be set",
            ));
        }
        if let Some(alertmanager) = &mut self.alertmanager {
            alertmanager.value.finish()?;
        }
        if let Some(cluster) = &self.cluster {
            cluster.value.validate(Position::of(cluster))?;
        }
        Ok(())
    }
}
