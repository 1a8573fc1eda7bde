//! The delivery policy: retry retryable failures with exponential backoff and jitter until the
//! notification's deadline, and count what happened.
//!
//! The arithmetic ([`RetryPolicy::next_delay`]) is pure and takes its randomness from the caller,
//! so tests are deterministic; [`deliver_with_retry`] drives it on tokio's clock.

use crate::data::NotificationData;
use crate::notifier::{DeliveryStats, Notifier, NotifyError, reason};
use std::future::Future;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::time::Instant;

/// How long to wait between attempts.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// The wait after the first failed attempt.
    pub initial_backoff: Duration,
    /// The wait never grows beyond this (a `Retry-After` may ask for longer).
    pub max_backoff: Duration,
    /// Growth per attempt.
    pub multiplier: f64,
    /// Fraction of each wait that is random, in `[0, 1]`: the wait is drawn uniformly from
    /// `[backoff × (1 − jitter), backoff]`, so that receivers that failed together do not see
    /// every node retry at once.
    pub jitter: f64,
    /// Attempts at most, including the first; `None` leaves only the deadline.
    pub max_attempts: Option<u32>,
}

impl Default for RetryPolicy {
    /// Starts at 500 ms and doubles, each wait at most one minute, the deadline deciding the rest.
    fn default() -> RetryPolicy {
        RetryPolicy {
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(60),
            multiplier: 2.0,
            jitter: 0.5,
            max_attempts: None,
        }
    }
}

impl RetryPolicy {
    /// The wait before attempt `failed_attempts + 1`, given that `failed_attempts` (≥ 1)
    /// attempts failed, the last one asking to wait `retry_after`. `rng` returns values in
    /// `[0, 1)`. `None` when the policy allows no more attempts.
    pub fn next_delay(
        &self,
        failed_attempts: u32,
        retry_after: Option<Duration>,
        rng: &mut (dyn FnMut() -> f64 + Send),
    ) -> Option<Duration> {
        if let Some(max_attempts) = self.max_attempts
            && failed_attempts >= max_attempts
        {
            return None;
        }
        let exponent = i32::try_from(failed_attempts.saturating_sub(1)).unwrap_or(i32::MAX);
        let max_seconds = self.max_backoff.as_secs_f64();
        let backoff_seconds = (self.initial_backoff.as_secs_f64()
            * self.multiplier.max(1.0).powi(exponent))
        .min(max_seconds);
        let jitter = self.jitter.clamp(0.0, 1.0);
        let draw = rng().clamp(0.0, 1.0);
        let seconds = backoff_seconds * (1.0 - jitter * draw);
        let backoff = Duration::try_from_secs_f64(seconds).unwrap_or(self.max_backoff);
        // The receiver knows its load better than our schedule does: never come back sooner
        // than it asked.
        Some(match retry_after {
            Some(asked) => asked.max(backoff),
            None => backoff,
        })
    }
}

/// How a delivery went when it succeeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeliveryReport {
    /// Attempts made, the successful one included.
    pub attempts: u32,
}

/// Makes attempts until one succeeds, one fails permanently, the policy gives up, or the next
/// attempt could not start before `deadline`. Each attempt is itself cut off at `deadline`.
///
/// `attempt` receives the attempt's number (1 for the first). `stats`, when given, records each
/// attempt's latency, the retries, and the outcome: `sent` only once the receiver accepted.
/// The error returned is the last attempt's, with reason `deadline` if the deadline cut an
/// attempt short.
pub async fn deliver_with_retry<F, Fut>(
    policy: &RetryPolicy,
    deadline: Instant,
    stats: Option<&DeliveryStats>,
    rng: &mut (dyn FnMut() -> f64 + Send),
    mut attempt: F,
) -> Result<DeliveryReport, NotifyError>
where
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = Result<(), NotifyError>>,
{
    let mut attempts: u32 = 0;
    loop {
        attempts = attempts.saturating_add(1);
        if attempts > 1
            && let Some(stats) = stats
        {
            stats.record_retry();
        }
        let started = Instant::now();
        let outcome = match tokio::time::timeout_at(deadline, attempt(attempts)).await {
            Ok(outcome) => outcome,
            Err(_) => Err(NotifyError::permanent(
                reason::DEADLINE,
                format!("the notification's deadline passed during attempt {attempts}"),
            )),
        };
        if let Some(stats) = stats {
            stats.record_attempt(started.elapsed(), outcome.is_err());
        }
        let error = match outcome {
            Ok(()) => {
                if let Some(stats) = stats {
                    stats.record_sent();
                }
                return Ok(DeliveryReport { attempts });
            }
            Err(error) => error,
        };
        let delay = if error.retryable {
            policy.next_delay(attempts, error.retry_after, rng)
        } else {
            None
        };
        let resume = delay.and_then(|delay| Instant::now().checked_add(delay));
        match resume {
            Some(resume) if resume < deadline => {
                tracing::debug!(attempt = attempts, ?delay, %error, "notification failed; retrying");
                tokio::time::sleep_until(resume).await;
            }
            _ => {
                if let Some(stats) = stats {
                    stats.record_failed(error.reason);
                }
                return Err(error);
            }
        }
    }
}

/// [`deliver_with_retry`] for a [`Notifier`], with jitter from [`JitterRng`].
pub async fn deliver(
    notifier: &dyn Notifier,
    data: &NotificationData,
    policy: &RetryPolicy,
    deadline: Instant,
    stats: Option<&DeliveryStats>,
) -> Result<DeliveryReport, NotifyError> {
    let mut jitter = JitterRng::from_clock();
    let mut rng = || jitter.next_f64();
    deliver_with_retry(policy, deadline, stats, &mut rng, |_| notifier.notify(data)).await
}

/// A small non-cryptographic generator (SplitMix64) for jitter: jitter only needs to differ
/// between nodes and notifications, not to be unpredictable.
#[derive(Debug, Clone)]
pub struct JitterRng {
    state: u64,
}

impl JitterRng {
    pub fn new(seed: u64) -> JitterRng {
        JitterRng { state: seed }
    }

    /// Seeded from the wall clock's nanoseconds.
    pub fn from_clock() -> JitterRng {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| since.as_nanos());
        JitterRng::new(nanos as u64 ^ (nanos >> 64) as u64)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(1),
            multiplier: 2.0,
            jitter: 0.5,
            max_attempts: None,
        }
    }

    #[test]
    fn backoff_grows_and_caps() {
        let policy = policy();
        let mut zero = || 0.0;
        let delays: Vec<_> = (1..=6)
            .map(|n| policy.next_delay(n, None, &mut zero).map(|d| d.as_millis()))
            .collect();
        assert_eq!(delays, [100, 200, 400, 800, 1000, 1000].map(Some));
    }

    #[test]
    fn jitter_takes_up_to_its_fraction_off() {
        let policy = policy();
        let mut almost_one = || 0.999_999;
        let delay = policy
            .next_delay(2, None, &mut almost_one)
            .map(|d| d.as_millis());
        assert_eq!(delay, Some(100));
        let mut half = || 0.5;
        assert_eq!(
            policy.next_delay(2, None, &mut half),
            Some(Duration::from_millis(150))
        );
    }

    #[test]
    fn retry_after_is_a_floor_and_max_attempts_a_ceiling() {
        let policy = RetryPolicy {
            max_attempts: Some(3),
            ..policy()
        };
        let mut zero = || 0.0;
        let asked = Some(Duration::from_secs(5));
        assert_eq!(
            policy.next_delay(1, asked, &mut zero),
            Some(Duration::from_secs(5))
        );
        assert_eq!(
            policy.next_delay(2, Some(Duration::from_millis(1)), &mut zero),
            Some(Duration::from_millis(200))
        );
        assert_eq!(policy.next_delay(3, None, &mut zero), None);
    }

    #[test]
    fn huge_attempt_numbers_do_not_overflow() {
        let policy = RetryPolicy {
            max_backoff: Duration::MAX,
            ..policy()
        };
        let mut zero = || 0.0;
        assert!(policy.next_delay(u32::MAX, None, &mut zero).is_some());
    }

    #[test]
    fn jitter_rng_is_in_range() {
        let mut rng = JitterRng::new(42);
        assert!(
            (0..10_000)
                .map(|_| rng.next_f64())
                .all(|x| (0.0..1.0).contains(&x))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn retries_retryable_until_success_and_counts() {
        let stats = DeliveryStats::new();
        let calls = Cell::new(0);
        let mut zero = || 0.0;
        let deadline = Instant::now() + Duration::from_secs(10);
        let report = deliver_with_retry(&policy(), deadline, Some(&stats), &mut zero, |n| {
            calls.set(n);
            async move {
                if n < 3 {
                    Err(NotifyError::retryable(reason::HTTP_5XX, "busy"))
                } else {
                    Ok(())
                }
            }
        })
        .await;
        assert_eq!(report, Ok(DeliveryReport { attempts: 3 }));
        assert_eq!(calls.get(), 3);
        let snapshot = stats.snapshot();
        assert_eq!(
            (snapshot.sent, snapshot.retries, snapshot.attempts_failed),
            (1, 2, 2)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn permanent_failure_stops_at_once() {
        let stats = DeliveryStats::new();
        let mut zero = || 0.0;
        let deadline = Instant::now() + Duration::from_secs(10);
        let result = deliver_with_retry(&policy(), deadline, Some(&stats), &mut zero, |_| async {
            Err(NotifyError::permanent(reason::HTTP_4XX, "bad request"))
        })
        .await;
        assert_eq!(result.map_err(|e| e.reason), Err(reason::HTTP_4XX));
        assert_eq!(
            (stats.snapshot().attempts, stats.failed(reason::HTTP_4XX)),
            (1, 1)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn deadline_bounds_retries() {
        let stats = DeliveryStats::new();
        let mut zero = || 0.0;
        let start = Instant::now();
        let deadline = start + Duration::from_millis(1_000);
        let result = deliver_with_retry(&policy(), deadline, Some(&stats), &mut zero, |_| async {
            Err(NotifyError::retryable(reason::CONNECTION, "refused"))
        })
        .await;
        // Waits of 100, 200 and 400 ms fit before the deadline; the next 800 ms does not.
        assert_eq!(result.map_err(|e| e.reason), Err(reason::CONNECTION));
        assert_eq!(stats.snapshot().attempts, 4);
        assert!(Instant::now() < deadline);
    }

    #[tokio::test(start_paused = true)]
    async fn an_attempt_is_cut_at_the_deadline() {
        let mut zero = || 0.0;
        let deadline = Instant::now() + Duration::from_millis(300);
        let result = deliver_with_retry(&policy(), deadline, None, &mut zero, |_| async {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            Ok(())
        })
        .await;
        assert_eq!(result.map_err(|e| e.reason), Err(reason::DEADLINE));
    }
}
