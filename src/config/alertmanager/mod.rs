//! The keys of `alertmanager.yml`, as Alertmanager documents them.

use super::{ConfigError, Invalid};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AlertmanagerConfig {
    #[serde(default)]
    pub templates: Vec<super::Spanned<String>>,
}

impl AlertmanagerConfig {
    /// Fills inherited defaults and checks cross-key rules.
    pub fn finish(&mut self) -> Result<(), Invalid> {
        Ok(())
    }
}

/// Parses and finishes a standalone `alertmanager.yml`.
pub fn parse_alertmanager_file(text: &str, file: &str) -> Result<AlertmanagerConfig, ConfigError> {
    let mut config: AlertmanagerConfig = super::parse_document(text, file)?;
    config.finish().map_err(|invalid| invalid.in_file(file))?;
    Ok(config)
}
