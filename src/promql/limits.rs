//! Limits that keep one query from exhausting memory or time.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
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
