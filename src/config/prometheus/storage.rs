//! `storage:`: the storage settings that can change on reload.
//!
//! `tsdb.retention` (`time`, `size`) is Prometheus 3's: when present it overrides the
//! `--storage.tsdb.retention.*` flags (each field on its own), as Prometheus's `db_storage`
//! reloader applies it. Sizes are parsed as Prometheus parses them (`units.Base2Bytes`:
//! `512MB` is 512 MiB; `KiB`…`EiB` and `B`, `KB`…`EB`, all powers of 1024).

use crate::config::PromDuration;
pub use crate::tsdb::units::ByteSize;
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
    /// Retention; overrides the flags when given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention: Option<TsdbRetentionConfig>,
}

/// `storage.tsdb.retention`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TsdbRetentionConfig {
    /// How long to keep samples; absent or zero: the flag decides.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<PromDuration>,
    /// Most bytes of blocks (and WAL) to keep; absent or zero: the flag decides.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<ByteSize>,
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
        let config: StorageConfig = parse_document(
            "tsdb:\n  retention:\n    time: 15d\n    size: 512MB\n",
            "s.yml",
        )
        .unwrap();
        let retention = config.tsdb.retention.unwrap();
        assert_eq!(retention.time, Some(PromDuration::from_secs(15 * 86_400)));
        assert_eq!(retention.size, Some(ByteSize(512 << 20)));
        assert!(
            parse_document::<StorageConfig>("tsdb:\n  retention:\n    size: 5XB\n", "s.yml")
                .is_err()
        );
        assert!(
            parse_document::<StorageConfig>("tsdb:\n  retention:\n    days: 5\n", "s.yml").is_err()
        );
    }
}
