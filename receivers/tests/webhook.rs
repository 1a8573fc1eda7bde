//! The webhook integration against a real HTTP/1.1 server on 127.0.0.1 (hand-written here, with
//! TLS through tokio-rustls), including the retry policy around it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{TestPki, sample_data};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tocsin_receivers::http_client::{Authorization, HttpSettings, TlsSettings};
use tocsin_receivers::notifier::{DeliveryStats, Notifier, reason};
use tocsin_receivers::retry::{RetryPolicy, deliver_with_retry};
use tocsin_receivers::webhook::{Webhook, WebhookSettings};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::time::{Instant, timeout};

/// Every test is bounded: a hung server or client fails instead of stalling CI.
const TEST_LIMIT: Duration = Duration::from_secs(30);

#[derive(Clone)]
struct Reply {
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: &'static str,
    delay: Duration,
}

fn reply(status: u16) -> Reply {
    Reply {
        status,
        headers: Vec::new(),
        body: "",
        delay: Duration::ZERO,
    }
}

#[derive(Debug, Clone)]
struct Recorded {
    request_line: String,
    /// Lower-cased names.
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    client_certificate: bool,
}

impl Recorded {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(known, _)| known == name)
            .map(|(_, value)| value.as_str())
    }

    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

struct TestServer {
    addr: SocketAddr,
    requests: Arc<Mutex<Vec<Recorded>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TestServer {
    /// Answers requests with `replies` in order, the last one for every request after.
    async fn start(replies: Vec<Reply>, tls: Option<Arc<rustls::ServerConfig>>) -> TestServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let replies = Arc::new(Mutex::new(VecDeque::from(replies)));
        let recorded = Arc::clone(&requests);
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let recorded = Arc::clone(&recorded);
                let replies = Arc::clone(&replies);
                let tls = tls.clone();
                tokio::spawn(async move {
                    match tls {
                        Some(config) => {
                            let acceptor = tokio_rustls::TlsAcceptor::from(config);
                            // A failed handshake is what some tests expect: just drop it.
                            let Ok(stream) = acceptor.accept(stream).await else {
                                return;
                            };
                            let client_certificate =
                                stream.get_ref().1.peer_certificates().is_some();
                            serve(stream, client_certificate, recorded, replies).await;
                        }
                        None => serve(stream, false, recorded, replies).await,
                    }
                });
            }
        });
        TestServer {
            addr,
            requests,
            task,
        }
    }

    fn url(&self, scheme: &str, host: &str) -> String {
        format!("{scheme}://{host}:{}/hook", self.addr.port())
    }

    fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().unwrap().clone()
    }
}

async fn serve<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    client_certificate: bool,
    recorded: Arc<Mutex<Vec<Recorded>>>,
    replies: Arc<Mutex<VecDeque<Reply>>>,
) {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(end) = buffer.windows(4).position(|window| window == b"\r\n\r\n") {
            break end;
        }
        if buffer.len() > 64 * 1024 {
            return;
        }
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]).to_string();
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap_or_default().to_string();
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_string()))
        .collect();
    let length: usize = headers
        .iter()
        .find(|(name, _)| name == "content-length")
        .and_then(|(_, value)| value.parse().ok())
        .unwrap_or(0);
    let mut body = buffer[head_end + 4..].to_vec();
    while body.len() < length {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => body.extend_from_slice(&chunk[..n]),
        }
    }
    recorded.lock().unwrap().push(Recorded {
        request_line,
        headers,
        body,
        client_certificate,
    });
    let reply = {
        let mut replies = replies.lock().unwrap();
        if replies.len() > 1 {
            replies.pop_front().unwrap()
        } else {
            replies.front().cloned().unwrap()
        }
    };
    tokio::time::sleep(reply.delay).await;
    let mut response = format!(
        "HTTP/1.1 {} Test\r\ncontent-length: {}\r\nconnection: close\r\n",
        reply.status,
        reply.body.len()
    );
    for (name, value) in &reply.headers {
        response.push_str(&format!("{name}: {value}\r\n"));
    }
    response.push_str("\r\n");
    response.push_str(reply.body);
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.shutdown().await;
}

fn server_tls(
    pki: &TestPki,
    cert_pem: &str,
    key_pem: &str,
    require_client_cert: bool,
) -> Arc<rustls::ServerConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .unwrap();
    let builder = if require_client_cert {
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_slice(pki.ca_pem.as_bytes()).unwrap())
            .unwrap();
        let verifier =
            rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .unwrap();
        builder.with_client_cert_verifier(verifier)
    } else {
        builder.with_no_client_auth()
    };
    let chain = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).unwrap();
    Arc::new(builder.with_single_cert(chain, key).unwrap())
}

fn settings(url: String) -> WebhookSettings {
    WebhookSettings {
        url,
        http: HttpSettings::default(),
        max_alerts: 0,
        send_resolved: true,
        timeout: Some(Duration::from_secs(5)),
    }
}

fn fast_policy() -> RetryPolicy {
    RetryPolicy {
        initial_backoff: Duration::from_millis(50),
        max_backoff: Duration::from_millis(200),
        multiplier: 2.0,
        jitter: 0.0,
        max_attempts: None,
    }
}

#[tokio::test]
async fn posts_the_v4_message_matching_the_golden_file() {
    timeout(TEST_LIMIT, async {
        let server = TestServer::start(vec![reply(200)], None).await;
        let mut settings = settings(server.url("http", "127.0.0.1"));
        settings.http.basic_auth = Some(("alice".into(), "s3cret".into()));
        let webhook = Webhook::new(&settings).unwrap();
        webhook.notify(&sample_data()).await.unwrap();

        let requests = server.requests();
        assert_eq!(requests.len(), 1);
        let request = &requests[0];
        assert_eq!(request.request_line, "POST /hook HTTP/1.1");
        assert_eq!(request.header("content-type"), Some("application/json"));
        assert_eq!(
            request.header("user-agent"),
            Some(concat!("Tocsin/", env!("CARGO_PKG_VERSION")))
        );
        // "alice:s3cret" in base64.
        assert_eq!(
            request.header("authorization"),
            Some("Basic YWxpY2U6czNjcmV0")
        );

        let golden: serde_json::Value =
            serde_json::from_str(include_str!("golden/webhook_v4.json")).unwrap();
        let body = request.json();
        assert_eq!(body, golden);
        // Field by field, for a readable failure and to pin what the golden file means.
        assert_eq!(body["version"], "4");
        assert_eq!(body["status"], "firing");
        assert_eq!(body["truncatedAlerts"], 0);
        assert_eq!(body["groupKey"], "{}:{alertname=\"HighLatency\"}");
        assert_eq!(body["externalURL"], "http://tocsin.example:9093");
        assert_eq!(body["commonLabels"]["job"], "api");
        assert!(body["commonLabels"].get("instance").is_none());
        assert_eq!(body["alerts"][0]["endsAt"], "0001-01-01T00:00:00Z");
        assert_eq!(body["alerts"][2]["status"], "resolved");
        assert_eq!(body["alerts"][2]["endsAt"], "2024-05-01T10:30:00.5Z");
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn sends_bearer_credentials_and_truncates_to_max_alerts() {
    timeout(TEST_LIMIT, async {
        let server = TestServer::start(vec![reply(204)], None).await;
        let mut settings = settings(server.url("http", "127.0.0.1"));
        settings.http.authorization = Some(Authorization::bearer("t0ken"));
        settings.max_alerts = 2;
        Webhook::new(&settings)
            .unwrap()
            .notify(&sample_data())
            .await
            .unwrap();

        let request = &server.requests()[0];
        assert_eq!(request.header("authorization"), Some("Bearer t0ken"));
        let body = request.json();
        assert_eq!(body["truncatedAlerts"], 1);
        assert_eq!(body["alerts"].as_array().map(Vec::len), Some(2));
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn send_resolved_false_sends_only_firing_alerts() {
    timeout(TEST_LIMIT, async {
        let server = TestServer::start(vec![reply(200)], None).await;
        let mut settings = settings(server.url("http", "127.0.0.1"));
        settings.send_resolved = false;
        Webhook::new(&settings)
            .unwrap()
            .notify(&sample_data())
            .await
            .unwrap();
        let body = server.requests()[0].json();
        assert_eq!(body["alerts"].as_array().map(Vec::len), Some(2));
        assert_eq!(body["commonLabels"]["alertname"], "HighLatency");
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn tls_with_a_test_ca_and_a_client_certificate() {
    timeout(TEST_LIMIT, async {
        let pki = TestPki::new();
        let tls = server_tls(&pki, &pki.server_cert_pem, &pki.server_key_pem, true);
        let server = TestServer::start(vec![reply(200)], Some(tls)).await;
        let mut settings = settings(server.url("https", "localhost"));
        settings.http.tls = TlsSettings {
            ca_pem: Some(pki.ca_pem.clone()),
            client_cert_pem: Some(pki.client_cert_pem.clone()),
            client_key_pem: Some(pki.client_key_pem.clone()),
            ..TlsSettings::default()
        };
        Webhook::new(&settings)
            .unwrap()
            .notify(&sample_data())
            .await
            .unwrap();
        let requests = server.requests();
        assert_eq!(requests.len(), 1);
        assert!(requests[0].client_certificate);

        // Without the client certificate the server refuses the handshake.
        settings.http.tls.client_cert_pem = None;
        settings.http.tls.client_key_pem = None;
        let error = Webhook::new(&settings)
            .unwrap()
            .notify(&sample_data())
            .await
            .unwrap_err();
        assert!(error.retryable, "{error}");
        assert_eq!(server.requests().len(), 1);
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn tls_verification_and_its_overrides() {
    timeout(TEST_LIMIT, async {
        let pki = TestPki::new();
        // The server presents a certificate for elsewhere.test only.
        let tls = server_tls(&pki, &pki.other_cert_pem, &pki.other_key_pem, false);
        let server = TestServer::start(vec![reply(200)], Some(tls)).await;
        let mut settings = settings(server.url("https", "127.0.0.1"));
        settings.http.tls.ca_pem = Some(pki.ca_pem.clone());

        let error = Webhook::new(&settings)
            .unwrap()
            .notify(&sample_data())
            .await
            .unwrap_err();
        assert_eq!(error.reason, reason::TLS, "{error}");
        assert!(error.retryable);

        settings.http.tls.server_name = Some("elsewhere.test".into());
        Webhook::new(&settings)
            .unwrap()
            .notify(&sample_data())
            .await
            .unwrap();

        // An unknown CA fails, unless verification is explicitly off.
        let mut untrusted = settings.clone();
        untrusted.http.tls = TlsSettings {
            ca_pem: Some(TestPki::new().ca_pem),
            ..TlsSettings::default()
        };
        let error = Webhook::new(&untrusted)
            .unwrap()
            .notify(&sample_data())
            .await
            .unwrap_err();
        assert_eq!(error.reason, reason::TLS, "{error}");
        untrusted.http.tls.insecure_skip_verify = true;
        Webhook::new(&untrusted)
            .unwrap()
            .notify(&sample_data())
            .await
            .unwrap();
        assert_eq!(server.requests().len(), 2);
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn a_500_then_200_is_delivered_exactly_once_after_one_retry() {
    timeout(TEST_LIMIT, async {
        let mut failing = reply(500);
        failing.body = "overloaded";
        let server = TestServer::start(vec![failing, reply(200)], None).await;
        let webhook = Webhook::new(&settings(server.url("http", "127.0.0.1"))).unwrap();
        let stats = DeliveryStats::new();
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut rng = || 0.0;
        let data = sample_data();
        let report = deliver_with_retry(&fast_policy(), deadline, Some(&stats), &mut rng, |_| {
            webhook.notify(&data)
        })
        .await
        .unwrap();
        assert_eq!(report.attempts, 2);
        let requests = server.requests();
        assert_eq!(requests.len(), 2);
        assert_eq!(requests[0].body, requests[1].body);
        let snapshot = stats.snapshot();
        assert_eq!(
            (snapshot.sent, snapshot.retries, snapshot.attempts_failed),
            (1, 1, 1)
        );
        assert!(snapshot.failed_by_reason.is_empty());
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn a_400_is_not_retried() {
    timeout(TEST_LIMIT, async {
        let mut bad = reply(400);
        bad.body = "missing field";
        let server = TestServer::start(vec![bad], None).await;
        let webhook = Webhook::new(&settings(server.url("http", "127.0.0.1"))).unwrap();
        let stats = DeliveryStats::new();
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut rng = || 0.0;
        let data = sample_data();
        let error = deliver_with_retry(&fast_policy(), deadline, Some(&stats), &mut rng, |_| {
            webhook.notify(&data)
        })
        .await
        .unwrap_err();
        assert!(!error.retryable);
        assert_eq!(error.reason, reason::HTTP_4XX);
        assert!(error.message.contains("missing field"), "{error}");
        assert_eq!(server.requests().len(), 1);
        assert_eq!(stats.failed(reason::HTTP_4XX), 1);
        assert_eq!(stats.snapshot().sent, 0);
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn a_429_retry_after_is_honoured() {
    timeout(TEST_LIMIT, async {
        let mut limited = reply(429);
        limited.headers.push(("retry-after", "1".into()));
        let server = TestServer::start(vec![limited.clone(), limited, reply(200)], None).await;
        let webhook = Webhook::new(&settings(server.url("http", "127.0.0.1"))).unwrap();
        let error = webhook.notify(&sample_data()).await.unwrap_err();
        assert_eq!((error.retryable, error.reason), (true, reason::HTTP_429));
        assert_eq!(error.retry_after, Some(Duration::from_secs(1)));

        // Rate-limited once more, then accepted: the wait is the server's second, not the
        // policy's 50 ms.
        let started = Instant::now();
        let deadline = started + Duration::from_secs(10);
        let mut rng = || 0.0;
        let data = sample_data();
        let report = deliver_with_retry(&fast_policy(), deadline, None, &mut rng, |_| {
            webhook.notify(&data)
        })
        .await
        .unwrap();
        assert_eq!(report.attempts, 2);
        assert!(
            started.elapsed() >= Duration::from_secs(1),
            "waited only {:?}",
            started.elapsed()
        );
        assert_eq!(server.requests().len(), 3);
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn a_slow_receiver_times_out_as_retryable() {
    timeout(TEST_LIMIT, async {
        let mut slow = reply(200);
        slow.delay = Duration::from_secs(10);
        let server = TestServer::start(vec![slow], None).await;
        let mut settings = settings(server.url("http", "127.0.0.1"));
        settings.timeout = Some(Duration::from_millis(300));
        let started = Instant::now();
        let error = Webhook::new(&settings)
            .unwrap()
            .notify(&sample_data())
            .await
            .unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(5));
        assert_eq!(
            (error.retryable, error.reason),
            (true, reason::TIMEOUT),
            "{error}"
        );
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn a_refused_connection_is_retryable() {
    timeout(TEST_LIMIT, async {
        // Bind then drop, so nothing listens on the port.
        let port = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let settings = settings(format!("http://127.0.0.1:{port}/hook"));
        let error = Webhook::new(&settings)
            .unwrap()
            .notify(&sample_data())
            .await
            .unwrap_err();
        assert_eq!(
            (error.retryable, error.reason),
            (true, reason::CONNECTION),
            "{error}"
        );
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn bad_settings_are_reported() {
    assert!(Webhook::new(&settings("not a url".into())).is_err());
    assert!(Webhook::new(&settings("ftp://127.0.0.1/hook".into())).is_err());
}
