//! The interface between the alerting pipeline and an integration: the [`Notifier`] trait, the
//! failure it reports ([`NotifyError`]) and the per-integration counters ([`DeliveryStats`]).

use crate::data::NotificationData;
use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// A future a notifier returns; boxed so that `dyn Notifier` works (the pipeline keeps a list of
/// heterogeneous integrations, and the simulator substitutes its own).
pub type NotifyFuture<'a> = Pin<Box<dyn Future<Output = Result<(), NotifyError>> + Send + 'a>>;

/// One integration of a receiver: delivers one notification, once, without retrying.
///
/// Retries belong to the caller ([`crate::retry::deliver_with_retry`]), which decides from
/// [`NotifyError::retryable`] and the notification's deadline.
pub trait Notifier: Send + Sync {
    /// The integration's kind, for metrics and logs: `webhook`, `email`, …
    fn integration(&self) -> &'static str;

    /// Delivers `data`. `Ok` means the receiver accepted the notification.
    fn notify<'a>(&'a self, data: &'a NotificationData) -> NotifyFuture<'a>;
}

/// Labels for [`NotifyError::reason`], bounded so they can be metric label values.
pub mod reason {
    /// The connection could not be made or broke (refused, reset, DNS failure).
    pub const CONNECTION: &str = "connection";
    /// No answer within the integration's timeout or the notification's deadline.
    pub const TIMEOUT: &str = "timeout";
    /// The TLS handshake failed (untrusted certificate, wrong name, protocol mismatch).
    pub const TLS: &str = "tls";
    /// HTTP 5xx from the receiver.
    pub const HTTP_5XX: &str = "http_5xx";
    /// HTTP 429 (rate limited) from the receiver.
    pub const HTTP_429: &str = "http_429";
    /// Another HTTP 4xx from the receiver: the request is wrong and will stay wrong.
    pub const HTTP_4XX: &str = "http_4xx";
    /// A non-2xx answer outside 4xx and 5xx (3xx when redirects are off, 1xx).
    pub const HTTP_OTHER: &str = "http_other";
    /// SMTP 4xx (transient negative completion).
    pub const SMTP_4XX: &str = "smtp_4xx";
    /// SMTP 5xx (permanent negative completion).
    pub const SMTP_5XX: &str = "smtp_5xx";
    /// The SMTP server broke the protocol or lacks what the configuration requires (STARTTLS,
    /// a usable AUTH mechanism).
    pub const SMTP_PROTOCOL: &str = "smtp_protocol";
    /// A template failed to render or rendered something unusable (an invalid address).
    pub const TEMPLATE: &str = "template";
    /// The integration's settings are unusable (bad URL, bad PEM, unsupported option).
    pub const CONFIG: &str = "config";
    /// Anything else.
    pub const OTHER: &str = "other";
    /// The notification's deadline passed before it was delivered.
    pub const DEADLINE: &str = "deadline";

    /// Every reason, for pre-registering metric series.
    pub const ALL: [&str; 14] = [
        CONNECTION,
        TIMEOUT,
        TLS,
        HTTP_5XX,
        HTTP_429,
        HTTP_4XX,
        HTTP_OTHER,
        SMTP_4XX,
        SMTP_5XX,
        SMTP_PROTOCOL,
        TEMPLATE,
        CONFIG,
        OTHER,
        DEADLINE,
    ];
}

/// Why one delivery attempt failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}: {message}")]
pub struct NotifyError {
    /// Whether trying again may succeed.
    pub retryable: bool,
    /// A label from [`reason`].
    pub reason: &'static str,
    /// What happened, for logs.
    pub message: String,
    /// How long the receiver asked us to wait (HTTP `Retry-After`).
    pub retry_after: Option<Duration>,
}

impl NotifyError {
    pub fn retryable(reason: &'static str, message: impl Into<String>) -> NotifyError {
        NotifyError {
            retryable: true,
            reason,
            message: message.into(),
            retry_after: None,
        }
    }

    pub fn permanent(reason: &'static str, message: impl Into<String>) -> NotifyError {
        NotifyError {
            retryable: false,
            reason,
            message: message.into(),
            retry_after: None,
        }
    }

    pub fn with_retry_after(mut self, retry_after: Option<Duration>) -> NotifyError {
        self.retry_after = retry_after;
        self
    }
}

/// The data an integration sends, given its `send_resolved`: Alertmanager drops resolved alerts
/// for integrations that do not want them, recomputes the status and common labels from what
/// remains, and sends nothing when nothing remains (`None`).
pub fn alerts_to_send(
    data: &NotificationData,
    send_resolved: bool,
) -> Option<Cow<'_, NotificationData>> {
    if send_resolved {
        return Some(Cow::Borrowed(data));
    }
    if data.resolved().next().is_none() {
        return if data.alerts.is_empty() {
            None
        } else {
            Some(Cow::Borrowed(data))
        };
    }
    let firing: Vec<_> = data.firing().cloned().collect();
    if firing.is_empty() {
        return None;
    }
    let filtered = NotificationData::new(
        data.receiver.clone(),
        firing,
        data.group_labels.clone(),
        data.external_url.clone(),
        data.group_key.clone(),
        data.reason.clone(),
    );
    Some(Cow::Owned(filtered))
}

/// Upper bounds, in seconds, of the latency histogram's buckets (Alertmanager's
/// `alertmanager_notification_latency_seconds` buckets).
pub const LATENCY_BUCKETS_SECONDS: [f64; 6] = [1.0, 5.0, 10.0, 15.0, 20.0, 30.0];

/// Counters for one integration of one receiver, readable by the node's telemetry without locks
/// (except the per-reason map, touched only on final failures).
#[derive(Debug, Default)]
pub struct DeliveryStats {
    /// Notifications the receiver accepted.
    pub sent: AtomicU64,
    /// Delivery attempts, including retries.
    pub attempts: AtomicU64,
    /// Attempts that failed, whatever came after.
    pub attempts_failed: AtomicU64,
    /// Attempts after the first for one notification.
    pub retries: AtomicU64,
    failed_by_reason: Mutex<Vec<(&'static str, u64)>>,
    /// Latency histogram of attempts: counts per bucket of [`LATENCY_BUCKETS_SECONDS`] (not
    /// cumulative) with the last slot for +Inf.
    latency_buckets: [AtomicU64; LATENCY_BUCKETS_SECONDS.len() + 1],
    latency_sum_micros: AtomicU64,
    latency_count: AtomicU64,
}

/// A consistent-enough copy of [`DeliveryStats`] for exposition.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DeliveryStatsSnapshot {
    pub sent: u64,
    pub attempts: u64,
    pub attempts_failed: u64,
    pub retries: u64,
    /// Notifications given up on, by [`reason`], sorted by reason.
    pub failed_by_reason: Vec<(&'static str, u64)>,
    /// Cumulative counts per bucket upper bound (Prometheus style), ending with +Inf.
    pub latency_cumulative: Vec<(f64, u64)>,
    pub latency_sum_seconds: f64,
    pub latency_count: u64,
}

impl DeliveryStats {
    pub fn new() -> DeliveryStats {
        DeliveryStats::default()
    }

    pub fn record_sent(&self) {
        self.sent.fetch_add(1, Ordering::Relaxed);
    }

    pub fn record_retry(&self) {
        self.retries.fetch_add(1, Ordering::Relaxed);
    }

    /// One attempt and how long it took.
    pub fn record_attempt(&self, latency: Duration, failed: bool) {
        self.attempts.fetch_add(1, Ordering::Relaxed);
        if failed {
            self.attempts_failed.fetch_add(1, Ordering::Relaxed);
        }
        let seconds = latency.as_secs_f64();
        let slot = LATENCY_BUCKETS_SECONDS
            .iter()
            .position(|bound| seconds <= *bound)
            .unwrap_or(LATENCY_BUCKETS_SECONDS.len());
        self.latency_buckets[slot].fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.latency_sum_micros.fetch_add(micros, Ordering::Relaxed);
        self.latency_count.fetch_add(1, Ordering::Relaxed);
    }

    /// A notification given up on.
    pub fn record_failed(&self, reason: &'static str) {
        let mut failed = self
            .failed_by_reason
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        match failed.iter_mut().find(|(known, _)| *known == reason) {
            Some((_, count)) => *count += 1,
            None => {
                failed.push((reason, 1));
                failed.sort_by_key(|(reason, _)| *reason);
            }
        }
    }

    /// Notifications given up on for `reason`.
    pub fn failed(&self, reason: &str) -> u64 {
        let failed = self
            .failed_by_reason
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        failed
            .iter()
            .find(|(known, _)| *known == reason)
            .map_or(0, |(_, count)| *count)
    }

    pub fn snapshot(&self) -> DeliveryStatsSnapshot {
        let failed_by_reason = self
            .failed_by_reason
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .clone();
        let mut cumulative = 0;
        let mut latency_cumulative = Vec::with_capacity(self.latency_buckets.len());
        for (slot, count) in self.latency_buckets.iter().enumerate() {
            cumulative += count.load(Ordering::Relaxed);
            let bound = LATENCY_BUCKETS_SECONDS
                .get(slot)
                .copied()
                .unwrap_or(f64::INFINITY);
            latency_cumulative.push((bound, cumulative));
        }
        DeliveryStatsSnapshot {
            sent: self.sent.load(Ordering::Relaxed),
            attempts: self.attempts.load(Ordering::Relaxed),
            attempts_failed: self.attempts_failed.load(Ordering::Relaxed),
            retries: self.retries.load(Ordering::Relaxed),
            failed_by_reason,
            latency_cumulative,
            latency_sum_seconds: self.latency_sum_micros.load(Ordering::Relaxed) as f64 / 1e6,
            latency_count: self.latency_count.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{AlertData, AlertStatus, KeyValues};
    use jiff::Timestamp;

    fn alert(status: AlertStatus, name: &str) -> AlertData {
        AlertData {
            status,
            labels: [("alertname".to_string(), name.to_string())]
                .into_iter()
                .collect(),
            annotations: KeyValues::new(),
            starts_at: Timestamp::UNIX_EPOCH,
            ends_at: None,
            generator_url: String::new(),
            fingerprint: "0000000000000000".into(),
        }
    }

    fn data(alerts: Vec<AlertData>) -> NotificationData {
        NotificationData::new(
            "r".into(),
            alerts,
            KeyValues::new(),
            "http://tocsin".into(),
            "{}".into(),
            "test".into(),
        )
    }

    #[test]
    fn send_resolved_false_drops_resolved_alerts_and_recomputes() {
        let mixed = data(vec![
            alert(AlertStatus::Firing, "A"),
            alert(AlertStatus::Resolved, "B"),
        ]);
        assert!(mixed.common_labels.is_empty());
        let sent = alerts_to_send(&mixed, false).map(Cow::into_owned);
        let sent = sent
            .as_ref()
            .map(|d| (d.alerts.len(), d.common_labels.get("alertname").cloned()));
        assert_eq!(sent, Some((1, Some("A".to_string()))));
        let resolved = data(vec![alert(AlertStatus::Resolved, "B")]);
        assert!(alerts_to_send(&resolved, false).is_none());
        assert!(alerts_to_send(&resolved, true).is_some());
    }

    #[test]
    fn stats_histogram_and_reasons() {
        let stats = DeliveryStats::new();
        stats.record_attempt(Duration::from_millis(500), false);
        stats.record_attempt(Duration::from_secs(7), true);
        stats.record_attempt(Duration::from_secs(100), true);
        stats.record_failed(reason::TIMEOUT);
        stats.record_failed(reason::HTTP_5XX);
        stats.record_failed(reason::TIMEOUT);
        let snapshot = stats.snapshot();
        assert_eq!(snapshot.attempts, 3);
        assert_eq!(snapshot.attempts_failed, 2);
        assert_eq!(snapshot.latency_cumulative[0], (1.0, 1));
        assert_eq!(snapshot.latency_cumulative[2], (10.0, 2));
        assert_eq!(snapshot.latency_cumulative.last().map(|(_, c)| *c), Some(3));
        assert_eq!(
            snapshot.failed_by_reason,
            vec![("http_5xx", 1), ("timeout", 2)]
        );
        assert_eq!(stats.failed("timeout"), 2);
    }
}
