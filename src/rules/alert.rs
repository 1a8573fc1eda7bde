//! The alerts rules send: Prometheus's `notifier.Alert`.

use super::alerting::Annotations;
use crate::promql::Labels;

/// One alert as an alerting rule sends it, each evaluation while it is firing and for a while
/// after it resolved (Prometheus's resolved retention of 15 minutes).
#[derive(Debug, Clone, PartialEq)]
pub struct OutgoingAlert {
    /// The rule's labels after templating, `alertname` included; external labels are added by
    /// the notifier, not here.
    pub labels: Labels,
    /// Expanded annotations, empty values kept.
    pub annotations: Annotations,
    /// When the alert started firing, in Unix milliseconds.
    pub starts_at_ms: i64,
    /// A resolved alert's resolution time; for a firing alert the evaluation time plus
    /// 4 × max(group interval, resend delay), so that receivers expire it if the rule stops
    /// sending (Prometheus's `ValidUntil`).
    pub ends_at_ms: i64,
    /// A link to the rule's expression in the graph UI.
    pub generator_url: String,
}

/// Where a node's rules send their alerts: the notifier, or a test's collector.
pub trait AlertSink: Send + Sync {
    /// Queues alerts for delivery; never blocks on the network.
    fn send(&self, alerts: Vec<OutgoingAlert>);
}
