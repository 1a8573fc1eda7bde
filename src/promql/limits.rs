//! Limits that keep one query from exhausting memory or time.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::engine::QueryError;

/// Prometheus's bound on the points a range query may return per series.
pub const MAX_POINTS_PER_SERIES: i64 = 11_000;

#[derive(Debug, Clone)]
pub struct Limits {
    /// Samples the engine may hold at once for one query (Prometheus's `--query.max-samples`).
    pub max_samples: usize,
    pub timeout: Option<Duration>,
    /// Set by whoever asked for the query when the answer is no longer wanted (an HTTP client
    /// that went away); the query then stops at its next deadline check.
    pub cancel: Option<Arc<AtomicBool>>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_samples: 50_000_000,
            timeout: Some(Duration::from_secs(120)),
            cancel: None,
        }
    }
}

/// The node's query settings: Prometheus's `--query.timeout`, `--query.max-concurrency`,
/// `--query.max-samples` and `--query.lookback-delta`, with the same defaults.
#[derive(Debug, Clone)]
pub struct QuerySettings {
    /// Longest a query may take, waiting for a slot included; a request's `timeout` parameter
    /// can only shorten it.
    pub timeout: Duration,
    /// Queries evaluated at once; more wait for a slot (within their timeout).
    pub max_concurrency: usize,
    /// Samples one query may hold in memory at once.
    pub max_samples: usize,
    /// How far back an instant selector looks for a sample, milliseconds.
    pub lookback_delta_ms: i64,
    /// The slots, shared by every clone of these settings (so by every request of a node).
    pub gate: QueryGate,
}

impl QuerySettings {
    pub fn new(
        timeout: Duration,
        max_concurrency: usize,
        max_samples: usize,
        lookback_delta_ms: i64,
    ) -> Self {
        QuerySettings {
            timeout,
            max_concurrency,
            max_samples,
            lookback_delta_ms,
            gate: QueryGate::new(max_concurrency),
        }
    }

    /// An engine with these settings' lookback delta, sample bound and timeout; the query API
    /// and rule evaluation both start from it, so the flags govern both as in Prometheus.
    pub fn engine(&self) -> super::engine::Engine {
        let mut engine = super::engine::Engine {
            lookback_delta_ms: self.lookback_delta_ms,
            ..super::engine::Engine::default()
        };
        engine.limits.max_samples = self.max_samples;
        engine.limits.timeout = Some(self.timeout);
        engine
    }
}

impl Default for QuerySettings {
    fn default() -> Self {
        QuerySettings::new(Duration::from_secs(120), 20, 50_000_000, 5 * 60 * 1000)
    }
}

/// Bounds how many queries evaluate at once, as Prometheus's active query tracker does: a query
/// past the bound waits for a slot until its deadline or until it is canceled.
#[derive(Debug, Clone)]
pub struct QueryGate {
    /// Slots in use, and the signal that one was freed.
    used: Arc<(Mutex<usize>, Condvar)>,
    capacity: usize,
}

/// A held slot of a [`QueryGate`]; dropping it frees the slot.
#[derive(Debug)]
pub struct GateSlot {
    used: Arc<(Mutex<usize>, Condvar)>,
}

/// How often a query waiting for a slot looks at its cancel flag.
const CANCEL_POLL: Duration = Duration::from_millis(50);

fn lock_slots(lock: &Mutex<usize>) -> MutexGuard<'_, usize> {
    // The count stays meaningful even if a holder panicked: it is only ever incremented and
    // decremented under the lock.
    lock.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl QueryGate {
    /// A gate with `capacity` slots (at least one).
    pub fn new(capacity: usize) -> Self {
        QueryGate {
            used: Arc::new((Mutex::new(0), Condvar::new())),
            capacity: capacity.max(1),
        }
    }

    /// Waits for a slot (blocking the calling thread) until `deadline` passes or `cancel` is
    /// set, failing as Prometheus's query queue does.
    pub fn enter(
        &self,
        deadline: Option<Instant>,
        cancel: Option<&AtomicBool>,
    ) -> Result<GateSlot, QueryError> {
        let (lock, freed) = &*self.used;
        let mut used = lock_slots(lock);
        while *used >= self.capacity {
            if cancel.is_some_and(|c| c.load(Ordering::Relaxed)) {
                return Err(QueryError::QueueCanceled);
            }
            let now = Instant::now();
            let wait = match deadline {
                Some(d) if d <= now => return Err(QueryError::QueueTimeout),
                Some(d) => (d - now).min(CANCEL_POLL),
                None => CANCEL_POLL,
            };
            used = freed
                .wait_timeout(used, wait)
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .0;
        }
        *used += 1;
        Ok(GateSlot {
            used: Arc::clone(&self.used),
        })
    }
}

impl Drop for GateSlot {
    fn drop(&mut self) {
        let (lock, freed) = &*self.used;
        let mut used = lock_slots(lock);
        *used = used.saturating_sub(1);
        freed.notify_one();
    }
}

/// Checks a range query's resolution, as Prometheus's API does before evaluating.
pub fn check_resolution(start_ms: i64, end_ms: i64, step_ms: i64) -> Result<(), QueryError> {
    if step_ms <= 0 {
        return Err(QueryError::BadData(
            "zero or negative query resolution step widths are not accepted. Try a positive integer".into(),
        ));
    }
    if end_ms < start_ms {
        return Err(QueryError::BadData(
            "end timestamp must not be before start time".into(),
        ));
    }
    if end_ms.saturating_sub(start_ms) / step_ms > MAX_POINTS_PER_SERIES {
        return Err(QueryError::BadData(
            "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)".into(),
        ));
    }
    Ok(())
}

/// Tracks one query's deadline and the samples it holds.
#[derive(Debug)]
pub struct Budget {
    max_samples: usize,
    deadline: Option<Instant>,
    cancel: Option<Arc<AtomicBool>>,
    checks: u32,
}

impl Budget {
    pub fn new(limits: &Limits) -> Self {
        Budget {
            max_samples: limits.max_samples,
            deadline: limits.timeout.and_then(|t| Instant::now().checked_add(t)),
            cancel: limits.cancel.clone(),
            checks: 0,
        }
    }

    /// Fails when `samples` held at once exceed the limit.
    pub fn check_samples(&self, samples: usize) -> Result<(), QueryError> {
        if samples > self.max_samples {
            return Err(QueryError::TooManySamples);
        }
        Ok(())
    }

    /// Fails when the deadline passed or the query was canceled; reads the clock and the
    /// cancel flag only every 64 calls.
    pub fn check_deadline(&mut self) -> Result<(), QueryError> {
        self.checks = self.checks.wrapping_add(1);
        if !self.checks.is_multiple_of(64) {
            return Ok(());
        }
        if self
            .cancel
            .as_ref()
            .is_some_and(|cancel| cancel.load(Ordering::Relaxed))
        {
            return Err(QueryError::Canceled);
        }
        match self.deadline {
            Some(d) if Instant::now() > d => Err(QueryError::Timeout),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_gate_times_out_or_is_canceled_and_frees_its_slots() {
        let gate = QueryGate::new(1);
        let held = gate.enter(None, None).unwrap();
        let past = Instant::now().checked_sub(Duration::from_millis(1));
        assert_eq!(
            gate.enter(past, None).unwrap_err(),
            QueryError::QueueTimeout
        );
        let canceled = AtomicBool::new(true);
        assert_eq!(
            gate.enter(None, Some(&canceled)).unwrap_err(),
            QueryError::QueueCanceled
        );
        drop(held);
        assert!(gate.enter(past, None).is_ok());
    }

    #[test]
    fn a_waiting_query_gets_the_slot_another_frees() {
        let gate = QueryGate::new(1);
        let held = gate.enter(None, None).unwrap();
        let waiter = {
            let gate = gate.clone();
            std::thread::spawn(move || gate.enter(None, None).map(drop))
        };
        drop(held);
        assert_eq!(waiter.join().unwrap(), Ok(()));
    }

    #[test]
    fn a_canceled_query_stops_at_a_deadline_check() {
        let cancel = Arc::new(AtomicBool::new(false));
        let limits = Limits {
            cancel: Some(Arc::clone(&cancel)),
            ..Limits::default()
        };
        let mut budget = Budget::new(&limits);
        for _ in 0..200 {
            assert_eq!(budget.check_deadline(), Ok(()));
        }
        cancel.store(true, Ordering::Relaxed);
        let stopped = (0..64)
            .map(|_| budget.check_deadline())
            .find(Result::is_err);
        assert_eq!(stopped, Some(Err(QueryError::Canceled)));
    }
}
