//! What a notification carries: the data Alertmanager's templates and webhook payloads see.

use jiff::Timestamp;
use serde::Serialize;
use std::collections::BTreeMap;

/// Labels or annotations: names to values, sorted by name.
pub type KeyValues = BTreeMap<String, String>;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertStatus {
    Firing,
    Resolved,
}

impl AlertStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertStatus::Firing => "firing",
            AlertStatus::Resolved => "resolved",
        }
    }
}

/// One alert of a notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertData {
    pub status: AlertStatus,
    pub labels: KeyValues,
    pub annotations: KeyValues,
    pub starts_at: Timestamp,
    /// `None` for a firing alert: Alertmanager shows firing alerts without an end (Go's zero
    /// time), so that they do not seem to resolve as time passes.
    pub ends_at: Option<Timestamp>,
    pub generator_url: String,
    /// The labels' fingerprint, 16 hex digits.
    pub fingerprint: String,
}

/// Alertmanager's template data (`template.Data`) plus what the webhook payload adds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotificationData {
    /// The receiver's name in the configuration.
    pub receiver: String,
    /// `firing` if any alert fires, else `resolved`.
    pub status: AlertStatus,
    /// Alerts in Alertmanager's notification order.
    pub alerts: Vec<AlertData>,
    pub group_labels: KeyValues,
    /// Labels every alert has with the same value.
    pub common_labels: KeyValues,
    /// Annotations every alert has with the same value.
    pub common_annotations: KeyValues,
    /// Where users reach Tocsin, for links.
    pub external_url: String,
    /// The aggregation group's key, as Alertmanager computes it.
    pub group_key: String,
    /// Why the pipeline notifies (first notification, new alerts, repeat, …), for templates.
    pub reason: String,
}

impl NotificationData {
    /// Builds the data, deriving the overall status and the common labels and annotations.
    pub fn new(
        receiver: String,
        alerts: Vec<AlertData>,
        group_labels: KeyValues,
        external_url: String,
        group_key: String,
        reason: String,
    ) -> NotificationData {
        let status = if alerts
            .iter()
            .any(|alert| alert.status == AlertStatus::Firing)
        {
            AlertStatus::Firing
        } else {
            AlertStatus::Resolved
        };
        let common_labels = common(alerts.iter().map(|alert| &alert.labels));
        let common_annotations = common(alerts.iter().map(|alert| &alert.annotations));
        NotificationData {
            receiver,
            status,
            alerts,
            group_labels,
            common_labels,
            common_annotations,
            external_url,
            group_key,
            reason,
        }
    }

    pub fn firing(&self) -> impl Iterator<Item = &AlertData> {
        self.alerts
            .iter()
            .filter(|alert| alert.status == AlertStatus::Firing)
    }

    pub fn resolved(&self) -> impl Iterator<Item = &AlertData> {
        self.alerts
            .iter()
            .filter(|alert| alert.status == AlertStatus::Resolved)
    }
}

/// The pairs present with the same value in every set (none if there are no sets).
fn common<'a>(mut sets: impl Iterator<Item = &'a KeyValues>) -> KeyValues {
    let Some(first) = sets.next() else {
        return KeyValues::new();
    };
    let mut shared = first.clone();
    for set in sets {
        shared.retain(|name, value| set.get(name) == Some(value));
    }
    shared
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(status: AlertStatus, labels: &[(&str, &str)]) -> AlertData {
        AlertData {
            status,
            labels: labels
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
            annotations: KeyValues::new(),
            starts_at: Timestamp::UNIX_EPOCH,
            ends_at: None,
            generator_url: String::new(),
            fingerprint: "0000000000000000".into(),
        }
    }

    #[test]
    fn status_and_common_labels() {
        let data = NotificationData::new(
            "team".into(),
            vec![
                alert(
                    AlertStatus::Resolved,
                    &[("alertname", "A"), ("job", "x"), ("i", "1")],
                ),
                alert(
                    AlertStatus::Firing,
                    &[("alertname", "A"), ("job", "y"), ("i", "1")],
                ),
            ],
            KeyValues::new(),
            "http://tocsin/".into(),
            "{}:{alertname=\"A\"}".into(),
            "first_notification".into(),
        );
        assert_eq!(data.status, AlertStatus::Firing);
        assert_eq!(
            data.common_labels.keys().collect::<Vec<_>>(),
            ["alertname", "i"]
        );
        assert_eq!(data.firing().count(), 1);
        assert_eq!(data.resolved().count(), 1);
    }
}
