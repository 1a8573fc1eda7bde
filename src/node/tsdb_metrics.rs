//! The node's TSDB: opened under `<storage.path>/tsdb/` (the WAL replay is logged; a damaged
//! tail is cut back, reported, and does not stop the node), compacted every minute in the
//! background, and its numbers on `/metrics` as `tocsin_tsdb_*`, read at scrape time.

use crate::config::LoadedConfig;
use crate::config::prometheus::StorageConfig;
use crate::node::NodeOptions;
use crate::tsdb::{Tsdb, TsdbOptions};
use anyhow::Context as _;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// How often the head is checked for blocks to persist (Prometheus: every minute).
const COMPACTION_INTERVAL: Duration = Duration::from_secs(60);

/// The storage options from the flags and the configuration file, as Prometheus resolves
/// them: `--storage.tsdb.retention.time` over the deprecated `--storage.tsdb.retention`; 15 days
/// when no time or size retention is given at all; then the config file's
/// `storage.tsdb.retention.time`/`.size`, when set (non-zero), over the flags (Prometheus 3's
/// `db_storage` reloader). The out-of-order window is the config's.
pub fn tsdb_options(options: &NodeOptions, storage: &StorageConfig) -> TsdbOptions {
    let mut retention_ms = options
        .tsdb_retention_time_ms
        .filter(|ms| *ms != 0)
        .or(options.tsdb_deprecated_retention_ms.filter(|ms| *ms != 0));
    let mut retention_bytes = options.tsdb_retention_size_bytes.filter(|b| *b > 0);
    if retention_ms.is_none() && retention_bytes.is_none() {
        retention_ms = Some(crate::tsdb::db::DEFAULT_RETENTION_MS);
    }
    if let Some(retention) = &storage.tsdb.retention {
        if let Some(time) = retention.time.filter(|t| !t.is_zero()) {
            retention_ms = Some(i64::try_from(time.as_millis()).unwrap_or(i64::MAX));
        }
        if let Some(size) = retention.size.filter(|s| s.0 > 0) {
            retention_bytes = Some(size.0);
        }
    }
    TsdbOptions {
        retention_ms,
        retention_bytes,
        out_of_order_window_ms: i64::try_from(storage.tsdb.out_of_order_time_window.as_millis())
            .unwrap_or(i64::MAX),
        ..TsdbOptions::default()
    }
}

/// Applies a reloaded configuration's `storage.tsdb.retention` to the open TSDB, as
/// Prometheus's reloader does: a time or size given (non-zero) replaces the one in force; an
/// absent one keeps it.
pub fn apply_retention_config(tsdb: &Tsdb, storage: &StorageConfig) {
    let Some(retention) = &storage.tsdb.retention else {
        return;
    };
    let time_ms = retention
        .time
        .filter(|t| !t.is_zero())
        .map(|time| i64::try_from(time.as_millis()).unwrap_or(i64::MAX));
    let bytes = retention.size.filter(|s| s.0 > 0).map(|size| size.0);
    let before = tsdb.retention();
    tsdb.set_retention(time_ms, bytes);
    let after = tsdb.retention();
    if after != before {
        tracing::info!(
            retention_time = ?after.time_ms.map(|ms| Duration::from_millis(ms.max(0) as u64)),
            retention_size_bytes = ?after.bytes,
            "TSDB retention changed by the configuration"
        );
    }
}

/// Opens the TSDB under `<storage.path>/tsdb/`, off the async workers (the replay reads the
/// whole WAL), and logs what the replay found.
pub async fn open(node_options: &NodeOptions, config: &LoadedConfig) -> anyhow::Result<Arc<Tsdb>> {
    let folder = node_options.storage_path.join("tsdb");
    let opening = folder.clone();
    let started = std::time::Instant::now();
    let options = tsdb_options(node_options, &config.config.storage);
    tracing::info!(
        retention_time = ?options.retention_ms.map(|ms| Duration::from_millis(ms.max(0) as u64)),
        retention_size_bytes = ?options.retention_bytes,
        out_of_order_window = ?Duration::from_millis(options.out_of_order_window_ms.max(0) as u64),
        "TSDB storage options"
    );
    let tsdb = tokio::task::spawn_blocking(move || Tsdb::open(&opening, options))
        .await
        .context("the TSDB open task failed")?
        .with_context(|| format!("cannot open the TSDB in {}", folder.display()))?;
    let report = tsdb.replay_report();
    for corruption in &report.corruptions {
        tracing::warn!(
            segment = %corruption.path.display(),
            offset = corruption.offset,
            reason = %corruption.reason,
            "WAL segment damaged; cut back to its last whole record"
        );
    }
    tracing::info!(
        folder = %folder.display(),
        blocks = tsdb.num_blocks(),
        segments = report.segments,
        series = report.series,
        samples = report.samples,
        unknown_series_samples = report.unknown_series_samples,
        rejected_samples = report.rejected_samples,
        skipped_records = report.skipped_records,
        checkpoint = ?report.checkpoint,
        corruptions = report.corruptions.len(),
        duration = ?started.elapsed(),
        "TSDB open, WAL replayed"
    );
    Ok(Arc::new(tsdb))
}

/// Runs [`Tsdb::compact`] every [`COMPACTION_INTERVAL`] until shutdown; a compaction in
/// progress when shutdown starts is finished, not abandoned.
pub async fn compact_periodically(
    tsdb: Arc<Tsdb>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let mut ticks = tokio::time::interval(COMPACTION_INTERVAL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The first tick fires at once; the first compaction waits one interval after start-up.
    ticks.tick().await;
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = shutdown.wait_for(|stop| *stop) => return,
        }
        let compacting = Arc::clone(&tsdb);
        match tokio::task::spawn_blocking(move || compacting.compact()).await {
            Ok(Ok(report)) => {
                if report != crate::tsdb::CompactionReport::default() {
                    tracing::info!(
                        head_blocks = report.head_blocks,
                        merged_blocks = report.merged_blocks,
                        replaced_blocks = report.replaced_blocks,
                        retention_deleted = report.retention_deleted,
                        checkpoint = report.checkpoint.is_some(),
                        "TSDB compacted"
                    );
                }
            }
            Ok(Err(error)) => tracing::error!(%error, "TSDB compaction failed"),
            Err(error) => tracing::error!(%error, "TSDB compaction task failed"),
        }
    }
}

pub struct TsdbMetrics(pub Arc<Tsdb>);

impl std::fmt::Debug for TsdbMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TsdbMetrics")
    }
}

type Labels = Vec<(&'static str, String)>;

/// One metric family: name, help, type and labelled values.
struct Family {
    name: &'static str,
    help: &'static str,
    kind: MetricType,
    values: Vec<(Labels, f64)>,
}

fn gauge(name: &'static str, help: &'static str, value: f64) -> Family {
    Family {
        name,
        help,
        kind: MetricType::Gauge,
        values: vec![(Vec::new(), value)],
    }
}

fn counter(name: &'static str, help: &'static str, value: f64) -> Family {
    Family {
        name,
        help,
        kind: MetricType::Counter,
        values: vec![(Vec::new(), value)],
    }
}

impl prometheus_client::collector::Collector for TsdbMetrics {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let stats = self.0.stats();
        let refused = self.0.append_counters();
        let load = |counter: &std::sync::atomic::AtomicU64| counter.load(Ordering::Relaxed) as f64;
        let seconds = |ms: Option<i64>| ms.map_or(f64::NAN, |ms| ms as f64 / 1000.0);
        let replay = self.0.replay_report();
        let families = vec![
            gauge(
                "tocsin_tsdb_head_series",
                "Series in the head",
                stats.head_series as f64,
            ),
            gauge(
                "tocsin_tsdb_head_chunks",
                "Chunks in the head",
                stats.head_chunks as f64,
            ),
            gauge(
                "tocsin_tsdb_head_min_time_seconds",
                "Oldest timestamp in the head (NaN while it is empty)",
                seconds(stats.head_min_time),
            ),
            gauge(
                "tocsin_tsdb_head_max_time_seconds",
                "Newest timestamp in the head (NaN while it is empty)",
                seconds(stats.head_max_time),
            ),
            gauge(
                "tocsin_tsdb_blocks_loaded",
                "Persisted blocks",
                stats.blocks as f64,
            ),
            gauge(
                "tocsin_tsdb_blocks_bytes",
                "Bytes of the persisted blocks",
                stats.blocks_bytes as f64,
            ),
            gauge(
                "tocsin_tsdb_wal_bytes",
                "Bytes of the WAL folder (segments and checkpoint)",
                stats.wal_bytes as f64,
            ),
            gauge(
                "tocsin_tsdb_chunks_head_bytes",
                "Bytes of the head chunk files (chunks_head/)",
                stats.chunks_head_bytes as f64,
            ),
            counter(
                "tocsin_tsdb_wal_fsyncs",
                "WAL and write-behind-log fsyncs (segment cuts, checkpoints, deletions, closes)",
                stats.wal_fsyncs as f64,
            ),
            counter(
                "tocsin_tsdb_wal_fsync_duration_seconds",
                "Time spent in WAL fsyncs",
                stats.wal_fsync_seconds,
            ),
            gauge(
                "tocsin_tsdb_commits_waiting",
                "Commits waiting for the WAL right now",
                stats.commits_waiting as f64,
            ),
            counter(
                "tocsin_tsdb_head_compactions",
                "Blocks written from the head",
                stats.head_compactions as f64,
            ),
            counter(
                "tocsin_tsdb_block_compactions",
                "Block merges done",
                stats.block_compactions as f64,
            ),
            counter(
                "tocsin_tsdb_compaction_failures",
                "Compactions that failed",
                stats.compaction_failures as f64,
            ),
            counter(
                "tocsin_tsdb_checkpoints",
                "WAL checkpoints written",
                stats.checkpoints as f64,
            ),
            counter(
                "tocsin_tsdb_retention_deletions",
                "Blocks deleted by retention",
                stats.retention_deletions as f64,
            ),
            Family {
                name: "tocsin_tsdb_refused_samples",
                help: "Samples the head refused since start-up, by reason",
                kind: MetricType::Counter,
                values: [
                    ("out_of_order", load(&refused.out_of_order)),
                    ("out_of_bounds", load(&refused.out_of_bounds)),
                    ("duplicate", load(&refused.duplicate)),
                    ("empty_labels", load(&refused.empty_labels)),
                    ("too_old", load(&refused.too_old)),
                ]
                .into_iter()
                .map(|(reason, value)| (vec![("reason", reason.to_string())], value))
                .collect(),
            },
            counter(
                "tocsin_tsdb_out_of_order_samples_appended",
                "Out-of-order samples accepted within the out-of-order window",
                stats.ooo_accepted as f64,
            ),
            gauge(
                "tocsin_tsdb_head_out_of_order_samples",
                "Out-of-order samples held in the head",
                stats.head_ooo_samples as f64,
            ),
            gauge(
                "tocsin_tsdb_pressure",
                "The larger of head and WAL pressure: at or above 1, storage is falling behind",
                stats.pressure,
            ),
            gauge(
                "tocsin_tsdb_head_pressure",
                "Head span / (1.5 x chunk range): above 1, head compaction is overdue",
                stats.head_pressure,
            ),
            gauge(
                "tocsin_tsdb_wal_pressure",
                "Commits waiting on the WAL / the backlog considered full",
                stats.wal_pressure,
            ),
            gauge(
                "tocsin_tsdb_wal_replay_samples",
                "Samples applied to the head by the WAL replay at start-up",
                replay.samples as f64,
            ),
            gauge(
                "tocsin_tsdb_wal_replay_corruptions",
                "Damaged WAL segments found (and cut back) by the replay at start-up",
                replay.corruptions.len() as f64,
            ),
        ];
        for family in families {
            let mut metric =
                encoder.encode_descriptor(family.name, family.help, None, family.kind)?;
            for (labels, value) in &family.values {
                let encoder = metric.encode_family(labels)?;
                match family.kind {
                    MetricType::Counter => ConstCounter::new(*value).encode(encoder)?,
                    _ => ConstGauge::new(*value).encode(encoder)?,
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::config::parse_document;

    fn resolve(flags: (Option<i64>, Option<i64>, Option<u64>), config: &str) -> TsdbOptions {
        let mut options = NodeOptions::new("data".into(), "127.0.0.1:0".into());
        (
            options.tsdb_retention_time_ms,
            options.tsdb_deprecated_retention_ms,
            options.tsdb_retention_size_bytes,
        ) = flags;
        let storage: StorageConfig = parse_document(config, "s.yml").unwrap();
        tsdb_options(&options, &storage)
    }

    #[test]
    fn retention_resolves_as_prometheus_does() {
        let day = 86_400_000;
        let defaults = resolve((None, None, None), "{}");
        assert_eq!(defaults.retention_ms, Some(15 * day));
        assert_eq!(defaults.retention_bytes, None);
        assert_eq!(defaults.out_of_order_window_ms, 0);
        // The new flag wins over the deprecated one.
        assert_eq!(
            resolve((Some(day), Some(2 * day), None), "{}").retention_ms,
            Some(day)
        );
        assert_eq!(
            resolve((None, Some(2 * day), None), "{}").retention_ms,
            Some(2 * day)
        );
        // A size alone means no time retention.
        let size_only = resolve((None, None, Some(1 << 30)), "{}");
        assert_eq!(
            (size_only.retention_ms, size_only.retention_bytes),
            (None, Some(1 << 30))
        );
        // The config file's fields override the flags one by one.
        let config = "tsdb:\n  retention:\n    time: 3d\n  out_of_order_time_window: 10m\n";
        let both = resolve((Some(day), None, Some(5)), config);
        assert_eq!(both.retention_ms, Some(3 * day));
        assert_eq!(both.retention_bytes, Some(5));
        assert_eq!(both.out_of_order_window_ms, 600_000);
    }
}
