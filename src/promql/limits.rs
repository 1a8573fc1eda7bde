//! Limits that keep one query from exhausting memory or time.

use std::time::{Duration, Instant};

use super::engine::QueryError;

/// Prometheus's bound on the points a range query may return per series.
pub const MAX_POINTS_PER_SERIES: i64 = 11_000;

#[derive(Debug, Clone)]
pub struct Limits {
    /// Samples the engine may hold at once for one query (Prometheus's `--query.max-samples`).
    pub max_samples: usize,
    pub timeout: Option<Duration>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_samples: 50_000_000,
            timeout: Some(Duration::from_secs(120)),
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
    checks: u32,
}

impl Budget {
    pub fn new(limits: &Limits) -> Self {
        Budget {
            max_samples: limits.max_samples,
            deadline: limits.timeout.and_then(|t| Instant::now().checked_add(t)),
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

    /// Fails when the deadline passed; reads the clock only every 64 calls.
    pub fn check_deadline(&mut self) -> Result<(), QueryError> {
        self.checks = self.checks.wrapping_add(1);
        if !self.checks.is_multiple_of(64) {
            return Ok(());
        }
        match self.deadline {
            Some(d) if Instant::now() > d => Err(QueryError::Timeout),
            _ => Ok(()),
        }
    }
}
