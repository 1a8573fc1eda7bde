//! The node's TSDB: opened under `<storage.path>/tsdb/` (the WAL replay is logged; a damaged
//! tail is cut back, reported, and does not stop the node), compacted every minute in the
//! background, and its numbers on `/metrics` as `tocsin_tsdb_*`, read at scrape time.

use crate::tsdb::{Tsdb, TsdbOptions};
use anyhow::Context as _;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// How often the head is checked for blocks to persist (Prometheus: every minute).
const COMPACTION_INTERVAL: Duration = Duration::from_secs(60);

/// Opens the TSDB under `<storage_path>/tsdb/`, off the async workers (the replay reads the
/// whole WAL), and logs what the replay found.
pub async fn open(storage_path: &Path) -> anyhow::Result<Arc<Tsdb>> {
    let folder = storage_path.join("tsdb");
    let opening = folder.clone();
    let started = std::time::Instant::now();
    let tsdb = tokio::task::spawn_blocking(move || Tsdb::open(&opening, TsdbOptions::default()))
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
            counter(
                "tocsin_tsdb_wal_fsyncs",
                "WAL fsyncs done by commits",
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
                ]
                .into_iter()
                .map(|(reason, value)| (vec![("reason", reason.to_string())], value))
                .collect(),
            },
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
