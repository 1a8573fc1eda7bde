//! The log integration (the configuration's `log_notifications`, a Tocsin extension): writes
//! each notification as one readable line in the node's own log. It is what the embedded default configuration routes
//! to, so a node with no configuration shows its alerts without anything else installed; in
//! a user's configuration it is a way to watch routing work before a real receiver exists.

use crate::data::{KeyValues, NotificationData};
use crate::notifier::{Notifier, NotifyFuture, alerts_to_send};

/// How many bytes of the labels and of the summary go into one line: a notification is shown,
/// not archived, and a runaway annotation must not make a log line of megabytes.
pub const MAX_FIELD_BYTES: usize = 1024;

/// A log integration's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogSettings {
    pub send_resolved: bool,
}

/// Writes notifications to the process's log (standard error, in the node's log format).
#[derive(Debug, Clone)]
pub struct LogNotifier {
    send_resolved: bool,
}

/// What one notification's log line says, field by field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    pub receiver: String,
    /// `firing` or `resolved`.
    pub status: &'static str,
    pub alertname: String,
    /// How many alerts the notification carries.
    pub alerts: usize,
    /// The labels every alert shares, `alertname` left out (it has its own field), as
    /// `{name="value", …}`.
    pub labels: String,
    /// The shared `summary` annotation; when the alerts' summaries differ, the first one and
    /// how many more there are; empty when no alert has one.
    pub summary: String,
}

impl LogLine {
    pub fn new(data: &NotificationData) -> LogLine {
        let alertname = data
            .common_labels
            .get("alertname")
            .or_else(|| data.group_labels.get("alertname"))
            .cloned()
            .unwrap_or_default();
        let mut shown = data.common_labels.clone();
        shown.remove("alertname");
        LogLine {
            receiver: data.receiver.clone(),
            status: data.status.as_str(),
            alertname: bounded(alertname),
            alerts: data.alerts.len(),
            labels: bounded(format_labels(&shown)),
            summary: bounded(summary(data)),
        }
    }
}

fn format_labels(labels: &KeyValues) -> String {
    let pairs: Vec<String> = labels
        .iter()
        .map(|(name, value)| format!("{name}={value:?}"))
        .collect();
    format!("{{{}}}", pairs.join(", "))
}

fn summary(data: &NotificationData) -> String {
    if let Some(common) = data.common_annotations.get("summary") {
        return common.clone();
    }
    let mut summaries = data
        .alerts
        .iter()
        .filter_map(|alert| alert.annotations.get("summary"));
    let Some(first) = summaries.next() else {
        return String::new();
    };
    let more = summaries.count();
    if more == 0 {
        first.clone()
    } else {
        format!("{first} (and {more} more)")
    }
}

/// `text` cut to [`MAX_FIELD_BYTES`] at a character boundary, with an ellipsis when cut.
fn bounded(mut text: String) -> String {
    if text.len() <= MAX_FIELD_BYTES {
        return text;
    }
    let mut end = MAX_FIELD_BYTES;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
    text.push('…');
    text
}

impl LogNotifier {
    pub fn new(settings: LogSettings) -> LogNotifier {
        LogNotifier {
            send_resolved: settings.send_resolved,
        }
    }
}

impl Notifier for LogNotifier {
    fn integration(&self) -> &'static str {
        "log"
    }

    fn notify<'a>(&'a self, data: &'a NotificationData) -> NotifyFuture<'a> {
        Box::pin(async move {
            if let Some(data) = alerts_to_send(data, self.send_resolved) {
                let line = LogLine::new(&data);
                tracing::info!(
                    receiver = %line.receiver,
                    status = line.status,
                    alertname = %line.alertname,
                    alerts = line.alerts,
                    labels = %line.labels,
                    summary = %line.summary,
                    "notification"
                );
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{AlertData, AlertStatus};
    use jiff::Timestamp;

    fn alert(status: AlertStatus, labels: &[(&str, &str)], summary: Option<&str>) -> AlertData {
        let to_map = |pairs: &[(&str, &str)]| -> KeyValues {
            pairs
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect()
        };
        AlertData {
            status,
            labels: to_map(labels),
            annotations: summary
                .map(|s| to_map(&[("summary", s)]))
                .unwrap_or_default(),
            starts_at: Timestamp::UNIX_EPOCH,
            ends_at: None,
            generator_url: String::new(),
            fingerprint: "0000000000000000".into(),
        }
    }

    fn notification(alerts: Vec<AlertData>) -> NotificationData {
        NotificationData::new(
            "log".into(),
            alerts,
            [("alertname".to_string(), "DiskFull".to_string())].into(),
            "http://tocsin/".into(),
            "{}:{alertname=\"DiskFull\"}".into(),
            "first_notification".into(),
        )
    }

    #[test]
    fn one_alert_shows_its_labels_and_summary() {
        let data = notification(vec![alert(
            AlertStatus::Firing,
            &[("alertname", "DiskFull"), ("instance", "a:9100")],
            Some("disk on a is full"),
        )]);
        let line = LogLine::new(&data);
        assert_eq!(line.status, "firing");
        assert_eq!(line.alertname, "DiskFull");
        assert_eq!(line.alerts, 1);
        assert_eq!(line.labels, "{instance=\"a:9100\"}");
        assert_eq!(line.summary, "disk on a is full");
    }

    #[test]
    fn several_alerts_show_what_they_share_and_count_the_rest() {
        let data = notification(vec![
            alert(
                AlertStatus::Resolved,
                &[
                    ("alertname", "DiskFull"),
                    ("instance", "a"),
                    ("env", "prod"),
                ],
                Some("disk on a is full"),
            ),
            alert(
                AlertStatus::Resolved,
                &[
                    ("alertname", "DiskFull"),
                    ("instance", "b"),
                    ("env", "prod"),
                ],
                Some("disk on b is full"),
            ),
        ]);
        let line = LogLine::new(&data);
        assert_eq!(line.status, "resolved");
        assert_eq!(line.alerts, 2);
        assert_eq!(line.labels, "{env=\"prod\"}");
        assert_eq!(line.summary, "disk on a is full (and 1 more)");
    }

    #[test]
    fn long_fields_are_cut_at_a_character_boundary() {
        let long = "é".repeat(MAX_FIELD_BYTES);
        let data = notification(vec![alert(
            AlertStatus::Firing,
            &[("alertname", "DiskFull")],
            Some(&long),
        )]);
        let line = LogLine::new(&data);
        assert!(line.summary.len() <= MAX_FIELD_BYTES + '…'.len_utf8());
        assert!(line.summary.ends_with('…'));
        assert_eq!(line.labels, "{}");
    }

    #[tokio::test]
    async fn resolved_alerts_are_not_logged_without_send_resolved_and_it_still_succeeds() {
        let notifier = LogNotifier::new(LogSettings {
            send_resolved: false,
        });
        let data = notification(vec![alert(
            AlertStatus::Resolved,
            &[("alertname", "DiskFull")],
            None,
        )]);
        assert!(alerts_to_send(&data, false).is_none());
        assert_eq!(notifier.integration(), "log");
        assert!(notifier.notify(&data).await.is_ok());
    }
}
