//! A queue's numbers, with Prometheus's remote-storage metric names and its `remote_name` and
//! `url` labels, so dashboards and alerts written for Prometheus's remote write (lag as
//! `highest_timestamp_in_seconds - queue_highest_sent_timestamp_seconds`, failed and dropped
//! samples, shards) work unchanged. Counter names are given without `_total`: the encoder adds it.

use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::Histogram;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

/// The buckets of Prometheus's `sent_batch_duration_seconds`: the default buckets, then 25 s
/// to 5 min for slow remotes.
const BATCH_DURATION_BUCKETS: [f64; 15] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 25.0, 60.0, 120.0, 300.0,
];

/// Why a sample read from the WAL was not sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// Its series was dropped by `write_relabel_configs`.
    DroppedSeries,
    /// Its series reference was not in any Series record read (Prometheus's wording).
    UnintentionallyDroppedSeries,
    /// Older than `sample_age_limit`.
    TooOld,
}

impl DropReason {
    const ALL: [DropReason; 3] = [
        DropReason::DroppedSeries,
        DropReason::UnintentionallyDroppedSeries,
        DropReason::TooOld,
    ];

    fn label(self) -> &'static str {
        match self {
            DropReason::DroppedSeries => "dropped_series",
            DropReason::UnintentionallyDroppedSeries => "unintentionally_dropped_series",
            DropReason::TooOld => "too_old",
        }
    }
}

/// One queue's counters and gauges; updated by the reader and the shards, read at scrape time.
#[derive(Debug)]
pub struct QueueMetrics {
    pub remote_name: String,
    pub url: String,
    pub samples_in: AtomicU64,
    pub samples_sent: AtomicU64,
    pub samples_failed: AtomicU64,
    pub samples_retried: AtomicU64,
    dropped: [AtomicU64; 3],
    /// Metadata entries sent, refused for good, retried; compressed metadata bytes sent.
    pub metadata_sent: AtomicU64,
    pub metadata_failed: AtomicU64,
    pub metadata_retried: AtomicU64,
    pub metadata_bytes: AtomicU64,
    pub samples_pending: AtomicI64,
    pub bytes_sent: AtomicU64,
    pub shards: AtomicU64,
    /// `shards_desired` is fractional; its bits are stored.
    shards_desired_bits: AtomicU64,
    pub shards_min: u64,
    pub shards_max: u64,
    pub shard_capacity: u64,
    pub max_samples_per_send: u64,
    /// Milliseconds; `i64::MIN` until a sample was read or sent.
    pub highest_read_ms: AtomicI64,
    pub highest_sent_ms: AtomicI64,
    /// Nanoseconds spent in sends (successful or not), for the shard computation.
    pub send_nanos: AtomicU64,
    /// When a send last succeeded, milliseconds since the epoch.
    pub last_success_ms: AtomicI64,
    /// WAL segments skipped because they were damaged or removed before being read.
    pub wal_damaged_segments: AtomicU64,
    pub batch_duration: Histogram,
}

impl QueueMetrics {
    pub fn new(
        remote_name: String,
        url: String,
        shards_min: u64,
        shards_max: u64,
        shard_capacity: u64,
        max_samples_per_send: u64,
    ) -> QueueMetrics {
        QueueMetrics {
            remote_name,
            url,
            samples_in: AtomicU64::new(0),
            samples_sent: AtomicU64::new(0),
            samples_failed: AtomicU64::new(0),
            samples_retried: AtomicU64::new(0),
            dropped: Default::default(),
            metadata_sent: AtomicU64::new(0),
            metadata_failed: AtomicU64::new(0),
            metadata_retried: AtomicU64::new(0),
            metadata_bytes: AtomicU64::new(0),
            samples_pending: AtomicI64::new(0),
            bytes_sent: AtomicU64::new(0),
            shards: AtomicU64::new(shards_min),
            shards_desired_bits: AtomicU64::new((shards_min as f64).to_bits()),
            shards_min,
            shards_max,
            shard_capacity,
            max_samples_per_send,
            highest_read_ms: AtomicI64::new(i64::MIN),
            highest_sent_ms: AtomicI64::new(i64::MIN),
            send_nanos: AtomicU64::new(0),
            last_success_ms: AtomicI64::new(0),
            wal_damaged_segments: AtomicU64::new(0),
            batch_duration: Histogram::new(BATCH_DURATION_BUCKETS),
        }
    }

    pub fn add_dropped(&self, reason: DropReason, count: u64) {
        let index = DropReason::ALL
            .iter()
            .position(|r| *r == reason)
            .unwrap_or(0);
        self.dropped[index].fetch_add(count, Ordering::Relaxed);
    }

    pub fn dropped(&self, reason: DropReason) -> u64 {
        let index = DropReason::ALL
            .iter()
            .position(|r| *r == reason)
            .unwrap_or(0);
        self.dropped[index].load(Ordering::Relaxed)
    }

    /// Every drop, whatever the reason.
    pub fn dropped_total(&self) -> u64 {
        self.dropped.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }

    pub fn set_shards_desired(&self, value: f64) {
        self.shards_desired_bits
            .store(value.to_bits(), Ordering::Relaxed);
    }

    pub fn shards_desired(&self) -> f64 {
        f64::from_bits(self.shards_desired_bits.load(Ordering::Relaxed))
    }
}

fn load(counter: &AtomicU64) -> f64 {
    counter.load(Ordering::Relaxed) as f64
}

fn seconds(ms: i64) -> f64 {
    if ms == i64::MIN {
        0.0
    } else {
        ms as f64 / 1000.0
    }
}

/// How one per-queue family reads its value from a queue.
enum Value {
    Counter(fn(&QueueMetrics) -> f64),
    Gauge(fn(&QueueMetrics) -> f64),
    /// `samples_dropped`: one series per drop reason.
    DroppedByReason,
    BatchDuration,
}

/// A family with one series per queue (labelled `remote_name` and `url`).
struct Family {
    name: &'static str,
    help: &'static str,
    value: Value,
}

const fn counter(name: &'static str, help: &'static str, read: fn(&QueueMetrics) -> f64) -> Family {
    Family {
        name,
        help,
        value: Value::Counter(read),
    }
}

const fn gauge(name: &'static str, help: &'static str, read: fn(&QueueMetrics) -> f64) -> Family {
    Family {
        name,
        help,
        value: Value::Gauge(read),
    }
}

/// Every per-queue family, in the order they are written.
const FAMILIES: &[Family] = &[
    counter(
        "prometheus_remote_storage_samples",
        "Total number of samples sent to remote storage.",
        |q| load(&q.samples_sent),
    ),
    counter(
        "prometheus_remote_storage_samples_failed",
        "Total number of samples which failed on send to remote storage, non-recoverable errors.",
        |q| load(&q.samples_failed),
    ),
    counter(
        "prometheus_remote_storage_samples_retried",
        "Total number of samples which failed on send to remote storage but were retried because the send error was recoverable.",
        |q| load(&q.samples_retried),
    ),
    Family {
        name: "prometheus_remote_storage_samples_dropped",
        help: "Total number of samples which were dropped after being read from the WAL before being sent via remote write, either via relabelling, due to being too old or unintentionally because of an unknown reference ID.",
        value: Value::DroppedByReason,
    },
    counter(
        "prometheus_remote_storage_bytes",
        "The total number of bytes of data (not metadata) sent by the queue after compression.",
        |q| load(&q.bytes_sent),
    ),
    counter(
        "prometheus_remote_storage_metadata",
        "Total number of metadata entries sent to remote storage.",
        |q| load(&q.metadata_sent),
    ),
    counter(
        "prometheus_remote_storage_metadata_failed",
        "Total number of metadata entries which failed on send to remote storage, non-recoverable errors.",
        |q| load(&q.metadata_failed),
    ),
    counter(
        "prometheus_remote_storage_metadata_retried",
        "Total number of metadata entries which failed on send to remote storage but were retried because the send error was recoverable.",
        |q| load(&q.metadata_retried),
    ),
    counter(
        "prometheus_remote_storage_metadata_bytes",
        "The total number of bytes of metadata sent by the queue after compression.",
        |q| load(&q.metadata_bytes),
    ),
    counter(
        "tocsin_remote_storage_wal_segments_skipped",
        "WAL segments the queue skipped because they were damaged or removed before it read them.",
        |q| load(&q.wal_damaged_segments),
    ),
    gauge(
        "prometheus_remote_storage_samples_pending",
        "The number of samples pending in the queues shards to be sent to the remote storage.",
        |q| q.samples_pending.load(Ordering::Relaxed) as f64,
    ),
    gauge(
        "prometheus_remote_storage_shards",
        "The number of shards used for parallel sending to the remote storage.",
        |q| q.shards.load(Ordering::Relaxed) as f64,
    ),
    gauge(
        "prometheus_remote_storage_shards_desired",
        "The number of shards that the queues shard calculation wants to run based on the rate of samples in vs. samples out.",
        QueueMetrics::shards_desired,
    ),
    gauge(
        "prometheus_remote_storage_shards_min",
        "The minimum number of shards that the queue is allowed to run.",
        |q| q.shards_min as f64,
    ),
    gauge(
        "prometheus_remote_storage_shards_max",
        "The maximum number of shards that the queue is allowed to run.",
        |q| q.shards_max as f64,
    ),
    gauge(
        "prometheus_remote_storage_shard_capacity",
        "The capacity of each shard of the queue used for parallel sending to the remote storage.",
        |q| q.shard_capacity as f64,
    ),
    gauge(
        "prometheus_remote_storage_max_samples_per_send",
        "The maximum number of samples to be sent, in a single request, to the remote storage.",
        |q| q.max_samples_per_send as f64,
    ),
    gauge(
        "prometheus_remote_storage_queue_highest_sent_timestamp_seconds",
        "Timestamp from a WAL sample, the highest timestamp successfully sent by this queue, in seconds since epoch.",
        |q| seconds(q.highest_sent_ms.load(Ordering::Relaxed)),
    ),
    Family {
        name: "prometheus_remote_storage_sent_batch_duration_seconds",
        help: "Duration of send calls to the remote storage.",
        value: Value::BatchDuration,
    },
];

/// Writes one family with a series per queue (per queue and reason for the drops).
fn encode_family(
    encoder: &mut DescriptorEncoder,
    family: &Family,
    queues: &[&QueueMetrics],
) -> Result<(), std::fmt::Error> {
    let kind = match family.value {
        Value::Counter(_) | Value::DroppedByReason => MetricType::Counter,
        Value::Gauge(_) => MetricType::Gauge,
        Value::BatchDuration => MetricType::Histogram,
    };
    let mut metric = encoder.encode_descriptor(family.name, family.help, None, kind)?;
    for queue in queues {
        let labels = vec![
            ("remote_name", queue.remote_name.clone()),
            ("url", queue.url.clone()),
        ];
        match family.value {
            Value::Counter(read) => {
                ConstCounter::new(read(queue)).encode(metric.encode_family(&labels)?)?;
            }
            Value::Gauge(read) => {
                ConstGauge::new(read(queue)).encode(metric.encode_family(&labels)?)?;
            }
            Value::DroppedByReason => {
                for reason in DropReason::ALL {
                    let mut with_reason = labels.clone();
                    with_reason.push(("reason", reason.label().to_string()));
                    ConstCounter::new(queue.dropped(reason) as f64)
                        .encode(metric.encode_family(&with_reason)?)?;
                }
            }
            Value::BatchDuration => queue
                .batch_duration
                .encode(metric.encode_family(&labels)?)?,
        }
    }
    Ok(())
}

/// Writes the families of all `queues` (the global `highest_timestamp_in_seconds` is the
/// highest timestamp any queue read from the WAL, i.e. appended to the TSDB).
pub fn encode(
    queues: &[&QueueMetrics],
    mut encoder: DescriptorEncoder,
) -> Result<(), std::fmt::Error> {
    for family in FAMILIES {
        encode_family(&mut encoder, family, queues)?;
    }
    let highest_read = queues
        .iter()
        .map(|q| q.highest_read_ms.load(Ordering::Relaxed))
        .max()
        .unwrap_or(i64::MIN);
    let samples_in: u64 = queues
        .iter()
        .map(|q| q.samples_in.load(Ordering::Relaxed))
        .max()
        .unwrap_or(0);
    ConstGauge::new(seconds(highest_read)).encode(encoder.encode_descriptor(
        "prometheus_remote_storage_highest_timestamp_in_seconds",
        "Highest timestamp that has come into the remote storage via the Appender interface, in seconds since epoch.",
        None,
        MetricType::Gauge,
    )?)?;
    ConstCounter::new(samples_in).encode(encoder.encode_descriptor(
        "prometheus_remote_storage_samples_in",
        "Samples in to remote storage, compare to samples out for queue managers.",
        None,
        MetricType::Counter,
    )?)?;
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn every_family_is_written_once_per_queue_with_its_labels() {
        let queue = QueueMetrics::new("rw".into(), "http://r/push".into(), 1, 4, 100, 50);
        queue.metadata_sent.store(7, Ordering::Relaxed);
        queue.add_dropped(DropReason::TooOld, 2);
        queue.batch_duration.observe(0.02);
        let mut registry = prometheus_client::registry::Registry::default();
        registry.register_collector(Box::new(Both(queue)));
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        for family in FAMILIES {
            assert_eq!(
                text.matches(&format!("# TYPE {} ", family.name)).count(),
                1,
                "{}\n{text}",
                family.name
            );
        }
        assert!(text.contains(
            "prometheus_remote_storage_metadata_total{remote_name=\"rw\",url=\"http://r/push\"} 7"
        ));
        assert!(text.contains("prometheus_remote_storage_samples_dropped_total{remote_name=\"rw\",url=\"http://r/push\",reason=\"too_old\"} 2"));
        assert!(text.contains("prometheus_remote_storage_sent_batch_duration_seconds_count{remote_name=\"rw\",url=\"http://r/push\"} 1"));
        assert!(text.contains(
            "prometheus_remote_storage_shards_max{remote_name=\"rw\",url=\"http://r/push\"} 4"
        ));
    }

    #[derive(Debug)]
    struct Both(QueueMetrics);

    impl prometheus_client::collector::Collector for Both {
        fn encode(&self, encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
            encode(&[&self.0], encoder)
        }
    }
}
