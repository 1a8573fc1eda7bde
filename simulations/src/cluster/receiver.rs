//! Simulated webhook endpoints. Each can be healthy, slow, failing with retryable (5xx) or
//! permanent (4xx) errors, or timing out (it may have accepted the notification when the
//! response is lost). Every accepted delivery is recorded with the node that sent it.

use super::Ms;
use crate::rng::SimRng;
use std::collections::BTreeSet;

/// How long a client waits for one attempt before giving up on it (the webhook's timeout).
pub const ATTEMPT_TIMEOUT: Ms = 10_000;
/// A healthy receiver answers within this.
pub const MAX_HEALTHY_RESPONSE: Ms = 200;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Healthy,
    /// Answers, but takes seconds.
    Slow,
    /// 5xx: retry.
    Failing,
    /// 4xx: give up.
    Permanent,
    /// No answer within the attempt timeout; half the time the notification got through.
    Timeout,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Healthy => "healthy",
            Mode::Slow => "slow",
            Mode::Failing => "failing",
            Mode::Permanent => "permanent-errors",
            Mode::Timeout => "timing-out",
        }
    }
}

/// One delivery the receiver accepted.
#[derive(Debug, Clone)]
pub struct Record {
    pub at: Ms,
    pub node: usize,
    /// The simulator's id of the notification (retries share it).
    pub notification: u64,
    /// When the node's pipeline emitted the notification.
    pub emitted_at: Ms,
    pub group_key: String,
    pub integration: String,
    pub firing: BTreeSet<String>,
    pub resolved: BTreeSet<String>,
}

/// What one attempt comes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    Retryable,
    Permanent,
    TimedOut,
}

#[derive(Debug, Clone)]
pub struct Receiver {
    pub integration: String,
    pub mode: Mode,
}

impl Receiver {
    /// An attempt arriving now: (outcome, when the sender learns it, whether it was accepted
    /// and when).
    pub fn attempt(&self, rng: &mut SimRng) -> (Outcome, Ms, Option<Ms>) {
        match self.mode {
            Mode::Healthy => {
                let took = rng.between(2, MAX_HEALTHY_RESPONSE);
                (Outcome::Ok, took, Some(took / 2))
            }
            Mode::Slow => {
                let took = rng.between(1_000, 9_000);
                (Outcome::Ok, took, Some(took / 2))
            }
            Mode::Failing => (Outcome::Retryable, rng.between(2, 100), None),
            Mode::Permanent => (Outcome::Permanent, rng.between(2, 100), None),
            Mode::Timeout => {
                let accepted = rng.chance(1, 2).then(|| rng.between(5, 500));
                (Outcome::TimedOut, ATTEMPT_TIMEOUT, accepted)
            }
        }
    }
}
