//! The email integration against a real SMTP server: Debian's python3-aiosmtpd, driven by
//! tests/smtp_server.py as a child process on 127.0.0.1.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{TestPki, sample_data};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;
use tocsin_receivers::NotificationData;
use tocsin_receivers::email::{Email, EmailSettings, RenderMode, Renderer};
use tocsin_receivers::http_client::TlsSettings;
use tocsin_receivers::notifier::{DeliveryStats, Notifier, reason};
use tocsin_receivers::retry::{RetryPolicy, deliver_with_retry};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::time::{Instant, timeout};

const TEST_LIMIT: Duration = Duration::from_secs(60);

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

struct SmtpServer {
    port: u16,
    record: PathBuf,
    _child: Child,
    dir: tempfile::TempDir,
}

impl SmtpServer {
    /// Starts the server with `args`; `pki` writes the server's certificate and key for TLS.
    async fn start(args: &[&str], pki: Option<&TestPki>) -> SmtpServer {
        let dir = tempfile::tempdir().unwrap();
        let record = dir.path().join("messages.jsonl");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/smtp_server.py");
        let mut command = Command::new(python());
        command.arg(script).arg("--record").arg(&record).args(args);
        if let Some(pki) = pki {
            let cert = dir.path().join("server.pem");
            let key = dir.path().join("server.key");
            std::fs::write(&cert, &pki.server_cert_pem).unwrap();
            std::fs::write(&key, &pki.server_key_pem).unwrap();
            command.arg("--cert").arg(cert).arg("--key").arg(key);
        }
        // stdin stays open while the test runs; kill_on_drop ends the server with the test.
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("python3 with aiosmtpd (Debian: python3-aiosmtpd)");
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let line = timeout(Duration::from_secs(20), lines.next_line())
            .await
            .expect("the SMTP server did not start in time")
            .unwrap()
            .expect("the SMTP server exited; is python3-aiosmtpd installed?");
        let port = line
            .strip_prefix("PORT ")
            .and_then(|port| port.parse().ok())
            .expect(&line);
        SmtpServer {
            port,
            record,
            _child: child,
            dir,
        }
    }

    fn smarthost(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Accepted messages (and refusals, as `{"refused": reply}`), oldest first.
    fn records(&self) -> Vec<serde_json::Value> {
        let _ = &self.dir;
        match std::fs::read_to_string(&self.record) {
            Ok(text) => text
                .lines()
                .map(|line| serde_json::from_str(line).unwrap())
                .collect(),
            Err(_) => Vec::new(),
        }
    }

    fn accepted(&self) -> Vec<serde_json::Value> {
        self.records()
            .into_iter()
            .filter(|record| record.get("refused").is_none())
            .collect()
    }
}

/// A stand-in for the template engine: substitutes `{{ .Status }}`, `{{ .Receiver }}` and
/// `{{ .Alerts.Firing | len }}`, wraps HTML output in a marker, and fails on `{{ fail }}`.
fn renderer() -> Renderer {
    Arc::new(
        |template: &str, data: &NotificationData, mode: RenderMode| {
            if template.contains("{{ fail }}") {
                return Err("template: fail: function \"fail\" not defined".into());
            }
            let rendered = template
                .replace("{{ .Status }}", data.status.as_str())
                .replace("{{ .Receiver }}", &data.receiver)
                .replace(
                    "{{ .Alerts.Firing | len }}",
                    &data.firing().count().to_string(),
                );
            Ok(match mode {
                RenderMode::Text => rendered,
                RenderMode::Html => format!("<!-- html -->{rendered}"),
            })
        },
    )
}

fn settings(server: &SmtpServer) -> EmailSettings {
    let headers: BTreeMap<String, String> = [
        (
            "Subject".to_string(),
            "[{{ .Status }}] {{ .Receiver }}".to_string(),
        ),
        (
            "X-Tocsin-Receiver".to_string(),
            "{{ .Receiver }}".to_string(),
        ),
    ]
    .into_iter()
    .collect();
    EmailSettings {
        to: "oncall@example.org, Team Lead <lead@example.org>".into(),
        from: "Tocsin <tocsin@example.org>".into(),
        smarthost: server.smarthost(),
        hello: Some("tocsin.test".into()),
        headers,
        html: Some("<p>{{ .Alerts.Firing | len }} firing for {{ .Receiver }}</p>".into()),
        text: Some("{{ .Alerts.Firing | len }} firing for {{ .Receiver }}".into()),
        send_resolved: true,
        timeout: Some(Duration::from_secs(10)),
        ..EmailSettings::default()
    }
}

fn with_tls(mut settings: EmailSettings, pki: &TestPki) -> EmailSettings {
    settings.tls = TlsSettings {
        ca_pem: Some(pki.ca_pem.clone()),
        server_name: Some("localhost".into()),
        ..TlsSettings::default()
    };
    settings
}

fn part<'a>(record: &'a serde_json::Value, content_type: &str) -> &'a str {
    record["parts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|part| part["content_type"] == content_type)
        .and_then(|part| part["content"].as_str())
        .unwrap_or_else(|| panic!("no {content_type} part in {record}"))
}

#[tokio::test]
async fn plain_smtp_with_rendered_headers_and_both_bodies() {
    timeout(TEST_LIMIT, async {
        let server = SmtpServer::start(&[], None).await;
        let email = Email::new(settings(&server), renderer()).unwrap();
        email.notify(&sample_data()).await.unwrap();

        let records = server.accepted();
        assert_eq!(records.len(), 1, "{records:?}");
        let record = &records[0];
        assert_eq!(record["mail_from"], "tocsin@example.org");
        assert_eq!(
            record["rcpt_tos"],
            serde_json::json!(["oncall@example.org", "lead@example.org"])
        );
        assert_eq!(record["hello"], "tocsin.test");
        assert_eq!(record["tls"], false);
        let headers = &record["headers"];
        assert_eq!(headers["subject"], "[firing] team-api");
        assert_eq!(headers["from"], "Tocsin <tocsin@example.org>");
        assert_eq!(
            headers["to"],
            "oncall@example.org, Team Lead <lead@example.org>"
        );
        assert_eq!(headers["x-tocsin-receiver"], "team-api");
        assert!(
            headers["date"]
                .as_str()
                .is_some_and(|date| !date.is_empty())
        );
        assert!(
            headers["message-id"]
                .as_str()
                .is_some_and(|id| id.starts_with('<') && id.contains('@'))
        );
        assert_eq!(record["content_type"], "multipart/alternative");
        assert_eq!(
            part(record, "text/plain").trim_end(),
            "2 firing for team-api"
        );
        assert_eq!(
            part(record, "text/html").trim_end(),
            "<!-- html --><p>2 firing for team-api</p>"
        );
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn single_part_bodies_and_header_overrides() {
    timeout(TEST_LIMIT, async {
        let server = SmtpServer::start(&[], None).await;
        let mut settings = settings(&server);
        settings.text = None;
        settings
            .headers
            .insert("To".into(), "Everyone <oncall@example.org>".into());
        settings.send_resolved = false;
        Email::new(settings, renderer())
            .unwrap()
            .notify(&sample_data())
            .await
            .unwrap();
        let record = &server.accepted()[0];
        assert_eq!(record["content_type"], "text/html");
        assert_eq!(record["headers"]["to"], "Everyone <oncall@example.org>");
        // The envelope still goes to the configured recipients.
        assert_eq!(record["rcpt_tos"].as_array().map(Vec::len), Some(2));
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn starttls_with_the_test_ca_and_auth_plain() {
    timeout(TEST_LIMIT, async {
        let pki = TestPki::new();
        // aiosmtpd sorts its list ("LOGIN PLAIN"), and the first usable mechanism is taken.
        let server = SmtpServer::start(
            &[
                "--starttls",
                "--require-starttls",
                "--auth",
                "alice:s3cret",
                "--advertise",
                "PLAIN LOGIN",
            ],
            Some(&pki),
        )
        .await;
        let mut settings = with_tls(settings(&server), &pki);
        settings.require_tls = true;
        settings.auth_username = Some("alice".into());
        settings.auth_password = Some("s3cret".into());
        Email::new(settings.clone(), renderer())
            .unwrap()
            .notify(&sample_data())
            .await
            .unwrap();
        let record = &server.accepted()[0];
        assert_eq!(record["tls"], true);
        assert_eq!(record["login"], "alice");
        assert_eq!(record["mechanism"], "PLAIN");
        // No auth_identity: an empty one, which the server reads as the user name.
        assert_eq!(record["identity"], "");
        assert_eq!(
            part(record, "text/plain").trim_end(),
            "2 firing for team-api"
        );

        // A wrong password is the server's 535: permanent.
        settings.auth_password = Some("wrong".into());
        let error = Email::new(settings.clone(), renderer())
            .unwrap()
            .notify(&sample_data())
            .await
            .unwrap_err();
        assert_eq!(
            (error.retryable, error.reason),
            (false, reason::SMTP_5XX),
            "{error}"
        );

        // A CA that did not sign the server's certificate fails the handshake.
        settings.auth_password = Some("s3cret".into());
        settings.tls.ca_pem = Some(TestPki::new().ca_pem);
        let error = Email::new(settings, renderer())
            .unwrap()
            .notify(&sample_data())
            .await
            .unwrap_err();
        assert!(error.retryable, "{error}");
        assert_eq!(server.accepted().len(), 1);
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn implicit_tls_with_auth_login() {
    timeout(TEST_LIMIT, async {
        let pki = TestPki::new();
        let server = SmtpServer::start(
            &[
                "--implicit-tls",
                "--auth",
                "bob:pa55",
                "--exclude-mechanism",
                "PLAIN",
            ],
            Some(&pki),
        )
        .await;
        let mut settings = with_tls(settings(&server), &pki);
        // Alertmanager decides by port 465, which a test cannot bind reliably.
        settings.implicit_tls = Some(true);
        settings.auth_username = Some("bob".into());
        settings.auth_password = Some("pa55".into());
        Email::new(settings, renderer())
            .unwrap()
            .notify(&sample_data())
            .await
            .unwrap();
        let record = &server.accepted()[0];
        assert_eq!(record["tls"], true);
        assert_eq!(record["login"], "bob");
        assert_eq!(record["mechanism"], "LOGIN");
    })
    .await
    .expect("test timed out");
}

/// Delivers `data` under the default retry policy, for tests about what is retried.
async fn deliver(
    email: &Email,
    stats: &DeliveryStats,
) -> Result<tocsin_receivers::retry::DeliveryReport, tocsin_receivers::notifier::NotifyError> {
    let data = sample_data();
    let mut rng = || 0.0;
    let deadline = Instant::now() + Duration::from_secs(20);
    deliver_with_retry(
        &RetryPolicy::default(),
        deadline,
        Some(stats),
        &mut rng,
        |_| email.notify(&data),
    )
    .await
}

#[tokio::test]
async fn cram_md5_with_the_right_secret_and_a_wrong_one() {
    timeout(TEST_LIMIT, async {
        let pki = TestPki::new();
        let server = SmtpServer::start(
            &[
                "--starttls",
                "--require-starttls",
                "--cram-md5",
                "carol:cr4m-s3cret",
            ],
            Some(&pki),
        )
        .await;
        let mut settings = with_tls(settings(&server), &pki);
        settings.require_tls = true;
        settings.auth_username = Some("carol".into());
        settings.auth_secret = Some("cr4m-s3cret".into());
        Email::new(settings.clone(), renderer())
            .unwrap()
            .notify(&sample_data())
            .await
            .unwrap();
        let record = &server.accepted()[0];
        assert_eq!(record["tls"], true);
        assert_eq!(record["login"], "carol");
        assert_eq!(record["mechanism"], "CRAM-MD5");

        // A wrong secret is the server's 535: permanent, tried once, and never shown.
        settings.auth_secret = Some("wrong-secret".into());
        let email = Email::new(settings, renderer()).unwrap();
        let stats = DeliveryStats::new();
        let error = deliver(&email, &stats).await.unwrap_err();
        assert_eq!(
            (error.retryable, error.reason),
            (false, reason::SMTP_5XX),
            "{error}"
        );
        assert!(error.message.starts_with("AUTH CRAM-MD5: "), "{error}");
        assert!(!error.message.contains("wrong-secret"), "{error}");
        assert_eq!(stats.snapshot().retries, 0);
        assert_eq!(stats.failed(reason::SMTP_5XX), 1);
        assert_eq!(server.accepted().len(), 1);
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn plain_sends_the_authorization_identity() {
    timeout(TEST_LIMIT, async {
        let pki = TestPki::new();
        let server = SmtpServer::start(
            &[
                "--implicit-tls",
                "--auth",
                "alice:s3cret",
                "--advertise",
                "PLAIN LOGIN",
            ],
            Some(&pki),
        )
        .await;
        let mut settings = with_tls(settings(&server), &pki);
        settings.implicit_tls = Some(true);
        settings.auth_username = Some("alice".into());
        settings.auth_password = Some("s3cret".into());
        settings.auth_identity = Some("ops@example.org".into());
        Email::new(settings.clone(), renderer())
            .unwrap()
            .notify(&sample_data())
            .await
            .unwrap();
        let record = &server.accepted()[0];
        assert_eq!(record["mechanism"], "PLAIN");
        assert_eq!(record["login"], "alice");
        assert_eq!(record["identity"], "ops@example.org");

        // A secret alone answers neither PLAIN nor LOGIN: the error names what is missing.
        settings.auth_password = None;
        settings.auth_secret = Some("cr4m-s3cret".into());
        let error = Email::new(settings, renderer())
            .unwrap()
            .notify(&sample_data())
            .await
            .unwrap_err();
        assert_eq!(
            (error.retryable, error.reason),
            (true, reason::SMTP_PROTOCOL),
            "{error}"
        );
        assert!(
            error
                .message
                .contains("PLAIN needs auth_password; LOGIN needs auth_password"),
            "{error}"
        );
        assert!(!error.message.contains("cr4m-s3cret"), "{error}");
        assert_eq!(server.accepted().len(), 1);
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn the_mechanism_follows_the_servers_order() {
    timeout(TEST_LIMIT, async {
        let pki = TestPki::new();
        let used = |server: &SmtpServer| {
            let records = server.accepted();
            let record = records.last().unwrap();
            assert_eq!(record["login"], "alice", "{record}");
            record["mechanism"].as_str().unwrap().to_string()
        };
        let send = |server: &SmtpServer, password: Option<&str>, secret: Option<&str>| {
            let mut settings = with_tls(settings(server), &pki);
            settings.implicit_tls = Some(true);
            settings.auth_username = Some("alice".into());
            settings.auth_password = password.map(str::to_string);
            settings.auth_secret = secret.map(str::to_string);
            async move {
                Email::new(settings, renderer())
                    .unwrap()
                    .notify(&sample_data())
                    .await
                    .unwrap();
            }
        };
        for (advertised, password, secret, expected) in [
            (
                "LOGIN CRAM-MD5 PLAIN",
                Some("s3cret"),
                Some("cr4m"),
                "LOGIN",
            ),
            ("LOGIN CRAM-MD5 PLAIN", None, Some("cr4m"), "CRAM-MD5"),
            (
                "CRAM-MD5 PLAIN LOGIN",
                Some("s3cret"),
                Some("cr4m"),
                "CRAM-MD5",
            ),
            ("CRAM-MD5 PLAIN LOGIN", Some("s3cret"), None, "PLAIN"),
        ] {
            let server = SmtpServer::start(
                &[
                    "--implicit-tls",
                    "--auth",
                    "alice:s3cret",
                    "--cram-md5",
                    "alice:cr4m",
                    "--advertise",
                    advertised,
                ],
                Some(&pki),
            )
            .await;
            send(&server, password, secret).await;
            assert_eq!(
                used(&server),
                expected,
                "{advertised:?} with password {password:?}, secret {secret:?}"
            );
        }
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn credentials_are_unused_when_the_server_offers_no_auth() {
    timeout(TEST_LIMIT, async {
        // aiosmtpd offers AUTH only over TLS; Alertmanager then sends unauthenticated.
        let server = SmtpServer::start(&[], None).await;
        let mut settings = settings(&server);
        settings.auth_username = Some("alice".into());
        settings.auth_password = Some("s3cret".into());
        Email::new(settings, renderer())
            .unwrap()
            .notify(&sample_data())
            .await
            .unwrap();
        let record = &server.accepted()[0];
        assert_eq!(record["login"], serde_json::Value::Null);
        assert_eq!(record["mechanism"], serde_json::Value::Null);
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn a_silent_server_times_out() {
    timeout(TEST_LIMIT, async {
        // Accepts connections and never sends its banner.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let _held = tokio::spawn(async move {
            let mut sockets = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                sockets.push(socket);
            }
        });
        let email = Email::new(
            EmailSettings {
                to: "oncall@example.org".into(),
                from: "tocsin@example.org".into(),
                smarthost: format!("127.0.0.1:{port}"),
                timeout: Some(Duration::from_millis(300)),
                ..EmailSettings::default()
            },
            renderer(),
        )
        .unwrap();
        let started = Instant::now();
        let error = email.notify(&sample_data()).await.unwrap_err();
        assert_eq!(
            (error.retryable, error.reason),
            (true, reason::TIMEOUT),
            "{error}"
        );
        assert!(error.message.starts_with("connect: "), "{error}");
        assert!(started.elapsed() < Duration::from_secs(5));
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn require_tls_fails_when_starttls_is_not_offered() {
    timeout(TEST_LIMIT, async {
        let server = SmtpServer::start(&[], None).await;
        let mut settings = settings(&server);
        settings.require_tls = true;
        let error = Email::new(settings, renderer())
            .unwrap()
            .notify(&sample_data())
            .await
            .unwrap_err();
        assert!(
            error.message.to_ascii_lowercase().contains("starttls"),
            "{error}"
        );
        assert!(server.records().is_empty());
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn a_4xx_reply_is_retried_and_delivered_once() {
    timeout(TEST_LIMIT, async {
        let server = SmtpServer::start(&["--fail-times", "1"], None).await;
        let email = Email::new(settings(&server), renderer()).unwrap();
        let stats = DeliveryStats::new();
        let policy = RetryPolicy {
            initial_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_millis(200),
            jitter: 0.0,
            ..RetryPolicy::default()
        };
        let data = sample_data();
        let mut rng = || 0.0;
        let deadline = Instant::now() + Duration::from_secs(20);
        let report = deliver_with_retry(&policy, deadline, Some(&stats), &mut rng, |_| {
            email.notify(&data)
        })
        .await
        .unwrap();
        assert_eq!(report.attempts, 2);
        let records = server.records();
        assert_eq!(records.len(), 2, "{records:?}");
        assert!(
            records[0]["refused"]
                .as_str()
                .is_some_and(|reply| reply.starts_with("451"))
        );
        assert_eq!(server.accepted().len(), 1);
        assert_eq!((stats.snapshot().sent, stats.snapshot().retries), (1, 1));
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn a_5xx_reply_is_not_retried() {
    timeout(TEST_LIMIT, async {
        let server = SmtpServer::start(
            &["--fail-times", "100", "--fail-reply", "554 5.7.1 Rejected"],
            None,
        )
        .await;
        let email = Email::new(settings(&server), renderer()).unwrap();
        let stats = DeliveryStats::new();
        let data = sample_data();
        let mut rng = || 0.0;
        let deadline = Instant::now() + Duration::from_secs(20);
        let error = deliver_with_retry(
            &RetryPolicy::default(),
            deadline,
            Some(&stats),
            &mut rng,
            |_| email.notify(&data),
        )
        .await
        .unwrap_err();
        assert_eq!(
            (error.retryable, error.reason),
            (false, reason::SMTP_5XX),
            "{error}"
        );
        assert_eq!(server.records().len(), 1);
        assert_eq!(stats.failed(reason::SMTP_5XX), 1);
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn template_errors_and_refused_connections() {
    timeout(TEST_LIMIT, async {
        let server = SmtpServer::start(&[], None).await;
        let mut broken = settings(&server);
        broken.headers.insert("Subject".into(), "{{ fail }}".into());
        let error = Email::new(broken, renderer())
            .unwrap()
            .notify(&sample_data())
            .await
            .unwrap_err();
        assert_eq!(
            (error.retryable, error.reason),
            (false, reason::TEMPLATE),
            "{error}"
        );
        assert!(error.message.contains("headers.Subject"), "{error}");

        let port = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut refused = settings(&server);
        refused.smarthost = format!("127.0.0.1:{port}");
        let error = Email::new(refused, renderer())
            .unwrap()
            .notify(&sample_data())
            .await
            .unwrap_err();
        assert!(error.retryable, "{error}");
        assert!(server.records().is_empty());
    })
    .await
    .expect("test timed out");
}
