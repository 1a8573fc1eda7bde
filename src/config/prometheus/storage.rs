//! `storage:`: the storage settings that can change on reload.

use crate::config::PromDuration;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StorageConfig {
    #[serde(default)]
    pub tsdb: TsdbConfig,
    #[serde(default)]
    pub exemplars: ExemplarsConfig,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TsdbConfig {
    /// How far behind the newest sample of a series an out-of-order sample is still accepted;
    /// zero refuses out-of-order samples.
    #[serde(default)]
    pub out_of_order_time_window: PromDuration,
}

fn default_max_exemplars() -> i64 {
    100_000
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ExemplarsConfig {
    /// Size of the in-memory exemplar ring buffer; zero or less disables exemplar storage.
    #[serde(default = "default_max_exemplars")]
    pub max_exemplars: i64,
}

impl Default for ExemplarsConfig {
    fn default() -> Self {
        ExemplarsConfig {
            max_exemplars: default_max_exemplars(),
        }
    }
}

impl ExemplarsConfig {
    /// The buffer size, with "disabled" as zero.
    pub fn capacity(&self) -> usize {
        usize::try_from(self.max_exemplars.max(0)).unwrap_or(usize::MAX)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::config::parse_document;

    #[test]
    fn defaults_and_values() {
        let config: StorageConfig = parse_document("{}", "s.yml").unwrap();
        assert_eq!(config.tsdb.out_of_order_time_window, PromDuration::ZERO);
        assert_eq!(config.exemplars.max_exemplars, 100_000);
        let config: StorageConfig = parse_document(
            "tsdb:\n  out_of_order_time_window: 30m\nexemplars:\n  max_exemplars: -1\n",
            "s.yml",
        )
        .unwrap();
        assert_eq!(
            config.tsdb.out_of_order_time_window,
            PromDuration::from_secs(30 * 60)
        );
        assert_eq!(config.exemplars.capacity(), 0);
        let error =
            parse_document::<StorageConfig>("tsdb:\n  retention:\n    time: 15d\n", "s.yml")
                .unwrap_err();
        assert_eq!(
            error.to_string(),
            "s.yml:2:3: `retention` is not supported by Tocsin"
        );
    }
}
