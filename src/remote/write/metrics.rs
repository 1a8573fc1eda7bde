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

/// Prometheus's default histogram buckets, which its `sent_batch_duration_seconds` uses.
const BATCH_DURATION_BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
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

/// Writes the families of all `queues` (the global `highest_timestamp_in_seconds` is the
/// highest timestamp any queue read from the WAL, i.e. appended to the TSDB).
pub fn encode(
    queues: &[&QueueMetrics],
    mut encoder: DescriptorEncoder,
) -> Result<(), std::fmt::Error> {
    type Read = fn(&QueueMetrics) -> f64;
    let counters: [(&str, &str, Read); 5] = [
        (
            "prometheus_remote_storage_samples",
            "Total number of samples sent to remote storage.",
            |q| load(&q.samples_sent),
        ),
        (
            "prometheus_remote_storage_samples_failed",
            "Total number of samples which failed on send to remote storage, non-recoverable errors.",
            |q| load(&q.samples_failed),
        ),
        (
            "prometheus_remote_storage_samples_retried",
            "Total number of samples which failed on send to remote storage but were retried because the send error was recoverable.",
            |q| load(&q.samples_retried),
        ),
        (
            "prometheus_remote_storage_bytes",
            "The total number of bytes of data (not metadata) sent by the queue after compression.",
            |q| load(&q.bytes_sent),
        ),
        (
            "tocsin_remote_storage_wal_segments_skipped",
            "WAL segments the queue skipped because they were damaged or removed before it read them.",
            |q| load(&q.wal_damaged_segments),
        ),
    ];
    let labels = |q: &QueueMetrics| -> Vec<(&'static str, String)> {
        vec![
            ("remote_name", q.remote_name.clone()),
            ("url", q.url.clone()),
        ]
    };
    for (name, help, read) in counters {
        let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
        for queue in queues {
            ConstCounter::new(read(queue)).encode(family.encode_family(&labels(queue))?)?;
        }
    }
    {
        let mut family = encoder.encode_descriptor(
            "prometheus_remote_storage_samples_dropped",
            "Total number of samples which were dropped after being read from the WAL before being sent via remote write, either via relabelling, due to being too old or unintentionally because of an unknown reference ID.",
            None,
            MetricType::Counter,
        )?;
        for queue in queues {
            for reason in DropReason::ALL {
                let mut with_reason = labels(queue);
                with_reason.push(("reason", reason.label().to_string()));
                ConstCounter::new(queue.dropped(reason) as f64)
                    .encode(family.encode_family(&with_reason)?)?;
            }
        }
    }
    let gauges: [(&str, &str, Read); 8] = [
        (
            "prometheus_remote_storage_samples_pending",
            "The number of samples pending in the queues shards to be sent to the remote storage.",
            |q| q.samples_pending.load(Ordering::Relaxed) as f64,
        ),
        (
            "prometheus_remote_storage_shards",
            "The number of shards used for parallel sending to the remote storage.",
            |q| q.shards.load(Ordering::Relaxed) as f64,
        ),
        (
            "prometheus_remote_storage_shards_desired",
            "The number of shards that the queues shard calculation wants to run based on the rate of samples in vs. samples out.",
            QueueMetrics::shards_desired,
        ),
        (
            "prometheus_remote_storage_shards_min",
            "The minimum number of shards that the queue is allowed to run.",
            |q| q.shards_min as f64,
        ),
        (
            "prometheus_remote_storage_shards_max",
            "The maximum number of shards that the queue is allowed to run.",
            |q| q.shards_max as f64,
        ),
        (
            "prometheus_remote_storage_shard_capacity",
            "The capacity of each shard of the queue used for parallel sending to the remote storage.",
            |q| q.shard_capacity as f64,
        ),
        (
            "prometheus_remote_storage_max_samples_per_send",
            "The maximum number of samples to be sent, in a single request, to the remote storage.",
            |q| q.max_samples_per_send as f64,
        ),
        (
            "prometheus_remote_storage_queue_highest_sent_timestamp_seconds",
            "Timestamp from a WAL sample, the highest timestamp successfully sent by this queue, in seconds since epoch.",
            |q| seconds(q.highest_sent_ms.load(Ordering::Relaxed)),
        ),
    ];
    for (name, help, read) in gauges {
        let mut family = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
        for queue in queues {
            ConstGauge::new(read(queue)).encode(family.encode_family(&labels(queue))?)?;
        }
    }
    {
        let mut family = encoder.encode_descriptor(
            "prometheus_remote_storage_sent_batch_duration_seconds",
            "Duration of send calls to the remote storage.",
            None,
            MetricType::Histogram,
        )?;
        for queue in queues {
            queue
                .batch_duration
                .encode(family.encode_family(&labels(queue))?)?;
        }
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
