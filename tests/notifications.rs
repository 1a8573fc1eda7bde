//! Notifications end to end: a real `tocsin` process takes alerts on `POST /api/v2/alerts` and
//! delivers them to a real HTTP server (in this test process) and a real SMTP server (Debian's
//! python3-aiosmtpd, driven by receivers/tests/smtp_server.py), both on 127.0.0.1.
// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::RunningNode;
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a notification may take to arrive: group_wait is 1 s, retries start at 0.5 s.
const DELIVERY_LIMIT: Duration = Duration::from_secs(10);

/// The external URL the node is started with, which the payloads carry.
const EXTERNAL_URL: &str = "http://tocsin.example:9093";

/// One request the webhook server received.
#[derive(Debug, Clone)]
struct Received {
    path: String,
    /// The status it was answered with.
    status: u16,
    body: String,
}

/// A minimal HTTP/1.1 server: reads the head and a `Content-Length` body, records the request,
/// answers 500 to the first `fail_first` requests and 200 to the rest, and closes.
struct HookServer {
    port: u16,
    received: Arc<Mutex<Vec<Received>>>,
}

impl HookServer {
    fn start(fail_first: usize) -> HookServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let received = Arc::new(Mutex::new(Vec::new()));
        let answered = Arc::new(AtomicUsize::new(0));
        let record = Arc::clone(&received);
        // The thread ends with the test process.
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let record = Arc::clone(&record);
                let answered = Arc::clone(&answered);
                std::thread::spawn(move || serve(stream, &record, &answered, fail_first));
            }
        });
        HookServer { port, received }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    /// The bodies of the requests answered with 200, as JSON.
    fn delivered(&self) -> Vec<Value> {
        self.received()
            .into_iter()
            .filter(|request| request.status == 200)
            .map(|request| serde_json::from_str(&request.body).unwrap())
            .collect()
    }
}

fn serve(stream: TcpStream, record: &Mutex<Vec<Received>>, answered: &AtomicUsize, fail: usize) {
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut head = String::new();
    loop {
        let mut line = String::new();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) if line == "\r\n" => break,
            Ok(_) => head.push_str(&line),
        }
        assert!(head.len() < 64 * 1024, "request head too long");
    }
    let path = head.split(' ').nth(1).unwrap_or_default().to_string();
    let length: usize = head
        .lines()
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, value)| value.trim().parse().ok())
        .unwrap_or(0);
    assert!(length < 16 * 1024 * 1024, "request body too long");
    let mut body = vec![0; length];
    if reader.read_exact(&mut body).is_err() {
        return;
    }
    let status = if answered.fetch_add(1, Ordering::SeqCst) < fail {
        500
    } else {
        200
    };
    record.lock().unwrap().push(Received {
        path,
        status,
        body: String::from_utf8_lossy(&body).into_owned(),
    });
    let reason = if status == 200 {
        "OK"
    } else {
        "Internal Server Error"
    };
    let mut stream = stream;
    let _ = write!(
        stream,
        "HTTP/1.1 {status} {reason}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    let _ = stream.flush();
}

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

/// Waits up to `limit` for `done`, checking every 50 ms; returns whether it happened.
fn wait_for(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if done() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
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
    let server = HookServer::start(0);
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
    let server = HookServer::start(1);
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

/// Debian's python3-aiosmtpd installs into the system interpreter, which a pyenv or venv
/// `python3` earlier on PATH would hide; `TOCSIN_TEST_PYTHON` overrides.
fn python() -> PathBuf {
    if let Some(python) = std::env::var_os("TOCSIN_TEST_PYTHON") {
        return python.into();
    }
    let system = PathBuf::from("/usr/bin/python3");
    if system.exists() {
        system
    } else {
        PathBuf::from("python3")
    }
}

/// The receivers crate's SMTP test server: records each accepted message as a JSON line.
struct SmtpServer {
    child: Child,
    port: u16,
    record: PathBuf,
}

impl SmtpServer {
    fn start(dir: &Path) -> SmtpServer {
        let record = dir.join("messages.jsonl");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("receivers/tests/smtp_server.py");
        // Its stdin stays open while the test runs: the server stops when it closes.
        let mut child = Command::new(python())
            .arg(script)
            .arg("--record")
            .arg(&record)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3 with aiosmtpd (Debian: python3-aiosmtpd)");
        let stdout = child.stdout.take().unwrap();
        let (sender, receiver) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = sender.send(line);
        });
        let line = receiver
            .recv_timeout(Duration::from_secs(20))
            .expect("the SMTP server did not start in time");
        let port = line
            .trim()
            .strip_prefix("PORT ")
            .and_then(|port| port.parse().ok())
            .unwrap_or_else(|| panic!("SMTP server said {line:?}; is python3-aiosmtpd installed?"));
        SmtpServer {
            child,
            port,
            record,
        }
    }

    fn messages(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.record)
            .map(|text| {
                text.lines()
                    .map(|line| serde_json::from_str(line).unwrap())
                    .filter(|record: &Value| record.get("refused").is_none())
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
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
