//! How many shards a queue should run, as Prometheus's `calculateDesiredShards` decides it:
//! every 10 s, the time one sample takes to send times the rate samples must leave at (the
//! rate they come in, minus what relabeling drops, plus 5 % of the backlog per second).
//! Changes within 30 % of the current count are ignored, and a queue more than 10 s behind
//! never scales down. Sans-IO: the caller ticks the rates and passes the numbers in.
#![deny(clippy::disallowed_methods)]

/// The weight of the newest interval in the moving averages.
pub const EWMA_WEIGHT: f64 = 0.2;
/// How often the shard count is recomputed.
pub const SHARD_UPDATE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(10);
/// A new count must differ by more than this fraction from the current one.
pub const SHARD_TOLERANCE: f64 = 0.3;

/// An exponentially weighted moving rate of events per second, ticked every interval.
#[derive(Debug, Clone, Default)]
pub struct EwmaRate {
    rate: f64,
    initialised: bool,
}

impl EwmaRate {
    /// Folds in the `events` of the last `interval_seconds`; the first tick sets the rate.
    pub fn tick(&mut self, events: f64, interval_seconds: f64) {
        let instant = if interval_seconds > 0.0 {
            events / interval_seconds
        } else {
            0.0
        };
        if self.initialised {
            self.rate += EWMA_WEIGHT * (instant - self.rate);
        } else {
            self.rate = instant;
            self.initialised = true;
        }
    }

    pub fn rate(&self) -> f64 {
        self.rate
    }
}

/// The rates and timestamps one computation needs.
#[derive(Debug, Clone, Copy, Default)]
pub struct ShardInputs {
    /// Samples per second read from the WAL.
    pub in_rate: f64,
    /// Samples per second sent.
    pub out_rate: f64,
    /// Samples per second dropped before sending (relabeling, unknown series, too old).
    pub dropped_rate: f64,
    /// Seconds spent sending per second (summed over shards).
    pub send_seconds_rate: f64,
    /// Highest timestamp read from the WAL, in seconds.
    pub highest_received: f64,
    /// Highest timestamp sent, in seconds.
    pub highest_sent: f64,
}

/// The unrounded count the rates call for (`prometheus_remote_storage_shards_desired`), and
/// the count to run given the current one and the bounds.
pub fn desired_shards(inputs: ShardInputs, current: usize, min: usize, max: usize) -> (f64, usize) {
    let ShardInputs {
        in_rate,
        out_rate,
        dropped_rate,
        send_seconds_rate,
        highest_received,
        highest_sent,
    } = inputs;
    if out_rate <= 0.0 {
        return (current as f64, current);
    }
    let kept_ratio = out_rate / (dropped_rate + out_rate);
    let delay = highest_received - highest_sent;
    let pending = delay * in_rate * kept_ratio;
    let backlog_catchup = 0.05 * pending;
    let time_per_sample = send_seconds_rate / out_rate;
    let desired = time_per_sample * (in_rate * kept_ratio + backlog_catchup);
    let lower = current as f64 * (1.0 - SHARD_TOLERANCE);
    let upper = current as f64 * (1.0 + SHARD_TOLERANCE);
    let rounded = desired.ceil();
    if lower <= rounded && rounded <= upper {
        return (desired, current);
    }
    let wanted = if rounded.is_finite() && rounded > 0.0 {
        rounded.min(usize::MAX as f64) as usize
    } else {
        0
    };
    if wanted < current && delay > 10.0 {
        return (desired, current);
    }
    (desired, wanted.clamp(min.max(1), max.max(1)))
}

/// Whether to apply a new count: not while sends fail (no success within twice the batch
/// deadline), since more shards would only pile more retries on a struggling remote.
pub fn should_reshard(
    desired: usize,
    current: usize,
    last_success_ms: i64,
    now_ms: i64,
    batch_send_deadline_ms: i64,
) -> bool {
    desired != current && last_success_ms >= now_ms - 2 * batch_send_deadline_ms
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs(in_rate: f64, out_rate: f64, send_seconds_rate: f64, delay: f64) -> ShardInputs {
        ShardInputs {
            in_rate,
            out_rate,
            dropped_rate: 0.0,
            send_seconds_rate,
            highest_received: 1000.0 + delay,
            highest_sent: 1000.0,
        }
    }

    #[test]
    fn ewma_starts_at_the_first_rate_then_smooths() {
        let mut rate = EwmaRate::default();
        rate.tick(100.0, 10.0);
        assert_eq!(rate.rate(), 10.0);
        rate.tick(200.0, 10.0);
        assert!((rate.rate() - 12.0).abs() < 1e-9);
    }

    #[test]
    fn scales_with_send_time_and_backlog() {
        // 10 000 samples/s in and out, each send second moving 2 000 samples: 5 shards.
        assert_eq!(
            desired_shards(inputs(10_000.0, 10_000.0, 5.0, 0.0), 1, 1, 50).1,
            5
        );
        // The same while 100 s behind: the backlog adds 5 % per second.
        let (raw, count) = desired_shards(inputs(10_000.0, 10_000.0, 5.0, 100.0), 1, 1, 50);
        assert!((raw - 5.0 * 6.0).abs() < 1e-9, "{raw}");
        assert_eq!(count, 30);
        // Bounded by max_shards.
        assert_eq!(
            desired_shards(inputs(10_000.0, 10_000.0, 5.0, 100.0), 1, 1, 8).1,
            8
        );
    }

    #[test]
    fn small_changes_and_idle_queues_keep_the_count() {
        // 10.5 wanted with 10 running: within 30 %.
        assert_eq!(
            desired_shards(inputs(1000.0, 1000.0, 10.5, 0.0), 10, 1, 50).1,
            10
        );
        // Nothing sent: no information.
        assert_eq!(desired_shards(inputs(1000.0, 0.0, 0.0, 0.0), 4, 1, 50).1, 4);
        // Scaling down, but 20 s behind: keep.
        assert_eq!(
            desired_shards(inputs(10.0, 10.0, 0.001, 20.0), 10, 1, 50).1,
            10
        );
        // Scaling down, caught up: down to min_shards.
        assert_eq!(
            desired_shards(inputs(10.0, 10.0, 0.001, 0.0), 10, 2, 50).1,
            2
        );
    }

    #[test]
    fn dropped_samples_lower_the_need() {
        let mut half_dropped = inputs(10_000.0, 5_000.0, 2.5, 0.0);
        half_dropped.dropped_rate = 5_000.0;
        // 5 000/s really leave, at 2 000 per send-second: 3 shards (2.5 rounded up).
        assert_eq!(desired_shards(half_dropped, 1, 1, 50).1, 3);
    }

    #[test]
    fn no_resharding_while_sends_fail() {
        assert!(should_reshard(4, 2, 99_000, 100_000, 5_000));
        assert!(!should_reshard(4, 2, 80_000, 100_000, 5_000));
        assert!(!should_reshard(2, 2, 99_000, 100_000, 5_000));
    }
}
