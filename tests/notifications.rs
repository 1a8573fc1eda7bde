//! Notifications end to end: a real `tocsin` process takes alerts on `POST /api/v2/alerts` and
//! delivers them to a real HTTP server (in this test process) and a real SMTP server (Debian's
//! python3-aiosmtpd, driven by receivers/tests/smtp_server.py), both on 127.0.0.1.
// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::smtp::SmtpServer;
use common::webhook::HookServer;
use common::{RunningNode, wait_for};
use serde_json::{Value, json};
use std::path::Path;
use std::time::Duration;

/// How long a notification may take to arrive: group_wait is 1 s, retries start at 0.5 s.
const DELIVERY_LIMIT: Duration = Duration::from_secs(10);

/// The external URL the node is started with, which the payloads carry.
const EXTERNAL_URL: &str = "http://tocsin.example:9093";

/// An alert as `POST /api/v2/alerts` takes it: firing unless `ends_at` is given.
fn alert(name: &str, starts_at: jiff::Timestamp, ends_at: Option<jiff::Timestamp>) -> Value {
    let mut alert = json!({
        "labels": {"alertname": name, "severity": "page"},
        "annotations": {"summary": format!("{name} is happening")},
        "startsAt": starts_at.to_string(),
        "generatorURL": "http://prometheus.example/graph",
    });
    if let Some(ends_at) = ends_at {
        alert["endsAt"] = json!(ends_at.to_string());
    }
    alert
}

fn post_alerts(node: &RunningNode, alerts: &[Value]) {
    let (status, body) = common::post_json(&node.url("/api/v2/alerts"), &json!(alerts).to_string());
    assert_eq!(status, 200, "POST /api/v2/alerts: {body}\n{}", node.log());
}

/// A config with one receiver `hook` whose integrations are `integrations` (YAML, indented to
/// sit under the receiver).
fn config_with(integrations: &str) -> String {
    format!(
        "alertmanager:
  route:
    receiver: hook
    group_by: [alertname]
    group_wait: 1s
    group_interval: 2s
    repeat_interval: 1h
  receivers:
    - name: hook
{integrations}"
    )
}

fn start(dir: &Path, config: &str) -> RunningNode {
    let file = dir.join("tocsin.yml");
    std::fs::write(&file, config).unwrap();
    RunningNode::start(
        dir,
        &[
            "--config.file",
            file.to_str().unwrap(),
            "--web.external-url",
            EXTERNAL_URL,
        ],
    )
}

fn webhook_config(server: &HookServer) -> String {
    format!(
        "      webhook_configs:\n        - url: {}\n",
        server.url("/hook")
    )
}

#[test]
fn webhook_gets_one_firing_then_one_resolved_notification() {
    let dir = tempfile::tempdir().unwrap();
    let server = HookServer::start();
    let node = start(dir.path(), &config_with(&webhook_config(&server)));
    let starts_at = jiff::Timestamp::now() - jiff::SignedDuration::from_secs(60);

    post_alerts(&node, &[alert("DiskFull", starts_at, None)]);
    assert!(
        wait_for(DELIVERY_LIMIT, || !server.received().is_empty()),
        "no webhook request within {DELIVERY_LIMIT:?}\n--- tocsin log:\n{}",
        node.log()
    );
    let received = server.received();
    assert_eq!(received[0].path, "/hook");
    let message: Value = serde_json::from_str(&received[0].body).unwrap();
    assert_eq!(message["version"], "4");
    assert_eq!(message["status"], "firing");
    assert_eq!(message["receiver"], "hook");
    assert_eq!(message["groupKey"], "{}:{alertname=\"DiskFull\"}");
    assert_eq!(message["truncatedAlerts"], 0);
    assert_eq!(message["groupLabels"], json!({"alertname": "DiskFull"}));
    assert_eq!(
        message["commonLabels"],
        json!({"alertname": "DiskFull", "severity": "page"})
    );
    assert_eq!(
        message["commonAnnotations"],
        json!({"summary": "DiskFull is happening"})
    );
    let external_url = message["externalURL"].as_str().unwrap();
    assert!(
        external_url.starts_with(EXTERNAL_URL),
        "externalURL {external_url:?}"
    );
    let alerts = message["alerts"].as_array().unwrap();
    assert_eq!(alerts.len(), 1, "{message:#}");
    let sent = &alerts[0];
    assert_eq!(sent["status"], "firing");
    assert_eq!(
        sent["labels"],
        json!({"alertname": "DiskFull", "severity": "page"})
    );
    assert_eq!(
        sent["annotations"],
        json!({"summary": "DiskFull is happening"})
    );
    assert_eq!(sent["startsAt"], starts_at.to_string());
    assert_eq!(sent["endsAt"], "0001-01-01T00:00:00Z");
    assert_eq!(sent["generatorURL"], "http://prometheus.example/graph");
    let fingerprint = sent["fingerprint"].as_str().unwrap();
    assert!(
        fingerprint.len() == 16 && fingerprint.chars().all(|c| c.is_ascii_hexdigit()),
        "fingerprint {fingerprint:?}"
    );

    // Several group intervals pass: nothing changed, and repeat_interval is an hour away.
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(
        server.received().len(),
        1,
        "duplicate notification: {:#?}",
        server.received()
    );
    let (_, metrics) = common::get(&node.url("/metrics"));
    let delivered =
        "tocsin_notifications_total{integration=\"webhook\",receiver=\"hook\",index=\"0\"} 1";
    assert!(metrics.contains(delivered), "{metrics}");
    assert!(
        metrics.contains("tocsin_notification_latency_seconds_bucket{integration=\"webhook\""),
        "{metrics}"
    );

    post_alerts(
        &node,
        &[alert("DiskFull", starts_at, Some(jiff::Timestamp::now()))],
    );
    assert!(
        wait_for(DELIVERY_LIMIT, || server.received().len() >= 2),
        "no resolved notification within {DELIVERY_LIMIT:?}\n--- tocsin log:\n{}",
        node.log()
    );
    let delivered = server.delivered();
    let resolved = &delivered[1];
    assert_eq!(resolved["status"], "resolved", "{resolved:#}");
    assert_eq!(resolved["receiver"], "hook");
    assert_eq!(resolved["alerts"][0]["status"], "resolved");
    assert_ne!(resolved["alerts"][0]["endsAt"], "0001-01-01T00:00:00Z");
    assert_eq!(resolved["alerts"][0]["fingerprint"], fingerprint);

    // The resolved notification is not repeated either.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        server.received().len(),
        2,
        "duplicate notification: {:#?}",
        server.received()
    );
}

#[test]
fn webhook_is_retried_after_a_500_and_delivered_once() {
    let dir = tempfile::tempdir().unwrap();
    let server = HookServer::failing_first(1);
    let node = start(dir.path(), &config_with(&webhook_config(&server)));
    post_alerts(&node, &[alert("Retried", jiff::Timestamp::now(), None)]);
    assert!(
        wait_for(DELIVERY_LIMIT, || !server.delivered().is_empty()),
        "not delivered within {DELIVERY_LIMIT:?}: {:#?}\n--- tocsin log:\n{}",
        server.received(),
        node.log()
    );
    let received = server.received();
    assert_eq!(received[0].status, 500);
    assert_eq!(received[1].status, 200);
    assert_eq!(received[0].body, received[1].body, "the retry resends");
    let delivered = server.delivered();
    assert_eq!(delivered[0]["commonLabels"]["alertname"], "Retried");

    // Delivered means logged: the next group interval does not send it again.
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(
        server.received().len(),
        2,
        "sent again: {:#?}",
        server.received()
    );
}

#[test]
fn email_is_sent_over_smtp_with_the_default_templates() {
    let dir = tempfile::tempdir().unwrap();
    let smtp = SmtpServer::start(dir.path());
    let integrations = format!(
        "      email_configs:
        - to: team@example.org
          from: tocsin@example.org
          smarthost: 127.0.0.1:{}
          require_tls: false
",
        smtp.port
    );
    let node = start(dir.path(), &config_with(&integrations));
    post_alerts(&node, &[alert("MailMe", jiff::Timestamp::now(), None)]);
    assert!(
        wait_for(DELIVERY_LIMIT, || !smtp.messages().is_empty()),
        "no email within {DELIVERY_LIMIT:?}\n--- tocsin log:\n{}",
        node.log()
    );
    let messages = smtp.messages();
    assert_eq!(messages.len(), 1, "{messages:#?}");
    let message = &messages[0];
    assert_eq!(message["mail_from"], "tocsin@example.org");
    assert_eq!(message["rcpt_tos"], json!(["team@example.org"]));
    let subject = message["headers"]["subject"].as_str().unwrap();
    assert!(
        subject.starts_with("[FIRING:1] MailMe"),
        "subject {subject:?}"
    );
    assert_eq!(message["headers"]["to"], "team@example.org");
    assert_eq!(message["headers"]["from"], "tocsin@example.org");
    let parts = message["parts"].as_array().unwrap();
    let html = parts
        .iter()
        .find(|part| part["content_type"] == "text/html")
        .unwrap_or_else(|| panic!("no HTML part: {message:#}"));
    let body = html["content"].as_str().unwrap();
    assert!(body.contains("MailMe"), "{body}");
    assert!(body.contains("MailMe is happening"), "{body}");
}
