//! Metric metadata (TYPE, HELP, UNIT) of the scrape targets, for remote write.
//!
//! Remote write 1.0: as Prometheus 2.42's metadata watcher, every `metadata_config.send_interval`
//! the metadata of every active target's last successful scrape is collected, deduplicated on
//! (family, type, help, unit) in first-seen order, and sent as `WriteRequest.metadata` in
//! requests of at most `metadata_config.max_samples_per_send` entries, without samples.
//! External labels and `write_relabel_configs` do not apply (metadata has no labels).
//!
//! Remote write 2.0: metadata rides on each series (`TimeSeries.metadata`). Tocsin does not log
//! metadata to the WAL, so a series' metadata is looked up when its batch is encoded: the
//! target is found by the series' `job` and `instance` labels, the family by the series' name
//! (exactly, or without the suffix its type gives it: `_bucket`, `_count`, `_sum`, `_total`,
//! `_created`, `_info`, `_gcount`, `_gsum`). A series with no such target (pushed by remote
//! write, or relabeled away from its target's labels) goes without metadata.
//!
//! Sans-IO: the queue's metadata task does the reading of the scrape manager and the sending.

#![deny(clippy::disallowed_methods)]

use crate::api::remote_write::proto;
use crate::ingest::scrape::{MetricMetadata, TargetMetadata};
use prost::Message as _;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// One active target's metadata and the labels that identify its series.
#[derive(Debug, Clone)]
pub struct TargetMetadataSnapshot {
    pub job: String,
    pub instance: String,
    pub metadata: Arc<TargetMetadata>,
}

/// Where the metadata comes from: the scrape manager's active targets.
pub trait MetadataSource: Send + Sync {
    /// Every active target's metadata, in a stable order; empty while scraping has not
    /// started.
    fn active_targets_metadata(&self) -> Vec<TargetMetadataSnapshot>;
}

/// `prometheus.MetricMetadata.MetricType` (the same numbers as 2.0's `Metadata.MetricType`)
/// of a type name as the metadata APIs spell it; unknown names are `UNKNOWN` (0).
pub fn metric_type_number(kind: &str) -> i32 {
    match kind {
        "counter" => 1,
        "gauge" => 2,
        "histogram" => 3,
        "gaugehistogram" => 4,
        "summary" => 5,
        "info" => 6,
        "stateset" => 7,
        _ => 0,
    }
}

/// The entries a 1.0 metadata send carries: each distinct (family, type, help, unit) once,
/// in the order first seen (targets in the order given, families by name).
pub fn collect(targets: &[TargetMetadataSnapshot]) -> Vec<proto::MetricMetadata> {
    let mut seen: HashSet<(&str, &MetricMetadata)> = HashSet::new();
    let mut entries = Vec::new();
    for target in targets {
        for (family, metadata) in target.metadata.iter() {
            if seen.insert((family.as_str(), metadata)) {
                entries.push(proto::MetricMetadata {
                    r#type: metric_type_number(metadata.kind),
                    metric_family_name: family.clone(),
                    help: metadata.help.clone(),
                    unit: metadata.unit.clone(),
                });
            }
        }
    }
    entries
}

/// A 1.0 `WriteRequest` with only metadata, uncompressed.
pub fn encode_v1(entries: &[proto::MetricMetadata]) -> Vec<u8> {
    proto::WriteRequest {
        timeseries: Vec::new(),
        metadata: entries.to_vec(),
    }
    .encode_to_vec()
}

/// The suffixes a family's series may carry, with the types that give them.
const SUFFIXES: &[(&str, &[&str])] = &[
    ("_bucket", &["histogram", "gaugehistogram"]),
    ("_count", &["histogram", "summary"]),
    ("_sum", &["histogram", "summary"]),
    ("_gcount", &["gaugehistogram"]),
    ("_gsum", &["gaugehistogram"]),
    ("_created", &["counter", "histogram", "summary"]),
    ("_total", &["counter"]),
    ("_info", &["info"]),
];

/// The metadata of the family `name` belongs to in one target's metadata.
pub fn family_of<'m>(target: &'m TargetMetadata, name: &str) -> Option<&'m MetricMetadata> {
    if let Some(metadata) = target.get(name) {
        return Some(metadata);
    }
    SUFFIXES.iter().find_map(|(suffix, kinds)| {
        let family = name.strip_suffix(suffix)?;
        target
            .get(family)
            .filter(|metadata| kinds.contains(&metadata.kind))
    })
}

/// Targets' metadata by `(job, instance)`, for 2.0's per-series metadata.
#[derive(Debug, Default)]
pub struct MetadataIndex {
    by_target: HashMap<(String, String), Arc<TargetMetadata>>,
}

impl MetadataIndex {
    /// The index of `targets`; of two targets with the same job and instance, the first wins.
    pub fn new(targets: Vec<TargetMetadataSnapshot>) -> MetadataIndex {
        let mut by_target = HashMap::with_capacity(targets.len());
        for target in targets {
            by_target
                .entry((target.job, target.instance))
                .or_insert(target.metadata);
        }
        MetadataIndex { by_target }
    }

    /// The metadata of the series with `labels` (as sent), if its target has some.
    pub fn lookup(&self, labels: &[(String, String)]) -> Option<&MetricMetadata> {
        if self.by_target.is_empty() {
            return None;
        }
        let get = |wanted: &str| {
            labels
                .iter()
                .find(|(name, _)| name == wanted)
                .map(|(_, value)| value.as_str())
        };
        let name = get("__name__")?;
        let key = (
            get("job").unwrap_or("").to_string(),
            get("instance").unwrap_or("").to_string(),
        );
        family_of(self.by_target.get(&key)?, name)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn meta(kind: &'static str, help: &str, unit: &str) -> MetricMetadata {
        MetricMetadata {
            kind,
            help: help.to_string(),
            unit: unit.to_string(),
        }
    }

    fn target(
        job: &str,
        instance: &str,
        families: &[(&str, MetricMetadata)],
    ) -> TargetMetadataSnapshot {
        TargetMetadataSnapshot {
            job: job.to_string(),
            instance: instance.to_string(),
            metadata: Arc::new(
                families
                    .iter()
                    .map(|(name, metadata)| (name.to_string(), metadata.clone()))
                    .collect(),
            ),
        }
    }

    #[test]
    fn entries_are_deduplicated_on_all_four_fields_in_first_seen_order() {
        let targets = vec![
            target(
                "a",
                "1",
                &[
                    ("up_total", meta("counter", "Ups.", "")),
                    ("temp", meta("gauge", "Temperature.", "celsius")),
                ],
            ),
            target(
                "a",
                "2",
                &[
                    ("up_total", meta("counter", "Ups.", "")),
                    ("temp", meta("gauge", "Temperature, again.", "celsius")),
                ],
            ),
        ];
        let entries = collect(&targets);
        let seen: Vec<(i32, &str, &str, &str)> = entries
            .iter()
            .map(|e| {
                (
                    e.r#type,
                    e.metric_family_name.as_str(),
                    e.help.as_str(),
                    e.unit.as_str(),
                )
            })
            .collect();
        assert_eq!(
            seen,
            vec![
                (2, "temp", "Temperature.", "celsius"),
                (1, "up_total", "Ups.", ""),
                (2, "temp", "Temperature, again.", "celsius"),
            ]
        );
        let decoded = proto::WriteRequest::decode(encode_v1(&entries).as_slice()).unwrap();
        assert!(decoded.timeseries.is_empty());
        assert_eq!(decoded.metadata, entries);
        assert_eq!(metric_type_number("stateset"), 7);
        assert_eq!(metric_type_number("unknown"), 0);
        assert_eq!(metric_type_number("untyped"), 0);
    }

    #[test]
    fn series_find_their_family_by_target_and_suffix() {
        let index = MetadataIndex::new(vec![target(
            "api",
            "host:9100",
            &[
                (
                    "http_latency_seconds",
                    meta("histogram", "Latency.", "seconds"),
                ),
                ("requests_total", meta("counter", "Requests.", "")),
                ("build", meta("info", "Build.", "")),
                ("queue", meta("gauge", "Queue.", "")),
            ],
        )]);
        let labels = |name: &str, instance: &str| {
            vec![
                ("__name__".to_string(), name.to_string()),
                ("instance".to_string(), instance.to_string()),
                ("job".to_string(), "api".to_string()),
            ]
        };
        let help = |name: &str| {
            index
                .lookup(&labels(name, "host:9100"))
                .map(|m| m.help.clone())
        };
        assert_eq!(
            help("http_latency_seconds_bucket").as_deref(),
            Some("Latency.")
        );
        assert_eq!(
            help("http_latency_seconds_count").as_deref(),
            Some("Latency.")
        );
        assert_eq!(help("requests_total").as_deref(), Some("Requests."));
        assert_eq!(help("build_info").as_deref(), Some("Build."));
        // A gauge has no `_sum` series: `queue_sum` is a family of its own, unknown here.
        assert_eq!(help("queue_sum"), None);
        assert_eq!(help("missing"), None);
        assert!(index.lookup(&labels("queue", "other:1")).is_none());
        assert!(
            MetadataIndex::default()
                .lookup(&labels("queue", "host:9100"))
                .is_none()
        );
    }
}
