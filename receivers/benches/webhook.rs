//! Webhook delivery throughput and latency against a local HTTP/1.1 server, and end to end
//! against Alertmanager 0.25.
//!
//! Run with `cargo bench -p tocsin-receivers --bench webhook`. See `benches/README.md` (section
//! `webhook`) for what each figure means. Nothing here asserts on timings: it prints figures.
//!
//! Part 1 drives the crate's own [`Webhook`] notifier through its public API against a server in
//! this process (plain HTTP and TLS with a CA made by rcgen), at concurrency 1 and 32.
//!
//! Part 2 starts the real `tocsin` binary and the real Alertmanager, one at a time, each routing
//! every alert to its own group (`group_by: ['...']`, `group_wait: 0s`) with a webhook receiver
//! pointing at the same kind of local server, posts alerts to `/api/v2/alerts` and counts the
//! webhook requests as they arrive.
#![allow(clippy::unwrap_used, clippy::print_stdout)]

// The workspace's shared bench code (the root crate's benches/common).
#[path = "../../benches/common/figures.rs"]
mod figures;
#[path = "../../benches/common/http.rs"]
mod http;
#[path = "../../benches/common/process.rs"]
mod process;
use figures::percentile;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tocsin_receivers::http_client::{HttpSettings, install_crypto_provider};
use tocsin_receivers::notifier::Notifier;
use tocsin_receivers::webhook::{Webhook, WebhookSettings};
use tocsin_receivers::{AlertData, AlertStatus, KeyValues, NotificationData};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::runtime::Runtime;

/// Part 1: timed notifications per variant, after an untimed warm-up that opens the connections.
const NOTIFICATIONS: usize = 20_000;
const WARMUP_NOTIFICATIONS: usize = 200;
/// No new notification is started after this long, whatever the count.
const VARIANT_TIME_LIMIT: Duration = Duration::from_secs(4);
const ALERTS_PER_NOTIFICATION: usize = 10;
/// Notifications are taken round-robin from this many distinct ones (built before the clock
/// starts); the notifier serialises each one anew, so this only bounds the bench's memory.
const DISTINCT_NOTIFICATIONS: usize = 100;
const CONCURRENCIES: [usize; 2] = [1, 32];
/// Each variant runs this many times, alternating with the others, each with a fresh server and
/// notifier; the round with the median rate is shown.
const ROUNDS: usize = 3;
/// Part 2: distinct alerts posted, each becoming its own group and so its own webhook request.
const E2E_ALERTS: usize = 2_000;
const E2E_BATCH: usize = 100;
/// Bound on waiting for the webhooks after the last `POST`.
const E2E_TIME_LIMIT: Duration = Duration::from_secs(10);
/// Each scenario runs this many times per system, alternating, each on a fresh process; the
/// round with the median rate is shown.
const E2E_ROUNDS: usize = 3;
const READY_TIMEOUT: Duration = Duration::from_secs(30);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// The local server refuses request heads and bodies larger than these.
const MAX_HEAD_BYTES: usize = 64 * 1024;
const MAX_BODY_BYTES: usize = 16 << 20;

fn main() {
    // `cargo bench` passes `--bench`; any other launch (`cargo test --all-targets`) only checks
    // that the bench builds, since a run takes a minute and needs a release build.
    if !std::env::args().any(|arg| arg == "--bench") {
        println!("benchmark skipped: run it with `cargo bench`");
        return;
    }
    install_crypto_provider();
    let started = Instant::now();
    // The server gets its own single-threaded runtime so that the client's tasks do not queue
    // behind it (and the other way round); both still share the machine's CPUs.
    let server_runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("hook-server")
        .enable_all()
        .build()
        .unwrap();
    let client_runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("hook-client")
        .enable_all()
        .build()
        .unwrap();
    println!(
        "# machine: {} CPUs; load average before: {}",
        std::thread::available_parallelism().map_or(0, usize::from),
        process::load_average()
    );
    println!(
        "# part 1: {NOTIFICATIONS} notifications of {ALERTS_PER_NOTIFICATION} alerts per variant \
         (after {WARMUP_NOTIFICATIONS} untimed), at most {VARIANT_TIME_LIMIT:?} each, \
         {ROUNDS} rounds"
    );

    let data: Arc<Vec<NotificationData>> =
        Arc::new((0..DISTINCT_NOTIFICATIONS).map(notification).collect());
    let pki = TestPki::new();
    let variants: Vec<(String, bool, usize)> = [false, true]
        .into_iter()
        .flat_map(|tls| {
            CONCURRENCIES.map(|concurrency| {
                let scheme = if tls { "https" } else { "http" };
                (
                    format!("{scheme}, concurrency {concurrency}"),
                    tls,
                    concurrency,
                )
            })
        })
        .collect();
    let mut rounds: Vec<Vec<Figures>> = variants.iter().map(|_| Vec::new()).collect();
    let mut errors: Vec<Option<String>> = variants.iter().map(|_| None).collect();
    for round in 0..ROUNDS {
        for (index, (name, tls, concurrency)) in variants.iter().enumerate() {
            let figures = run_variant(
                &server_runtime,
                &client_runtime,
                tls.then_some(&pki),
                *concurrency,
                Arc::clone(&data),
            );
            match figures {
                Ok(figures) => {
                    println!(
                        "# round {}: {name}: {} sent, {} failed in {:.2}s = {:.0}/s; server saw {} \
                         requests{}",
                        round + 1,
                        figures.sent,
                        figures.failed,
                        figures.elapsed.as_secs_f64(),
                        figures.rate(),
                        figures.requests,
                        figures
                            .first_error
                            .as_deref()
                            .map(|e| format!("; first error: {e}"))
                            .unwrap_or_default()
                    );
                    rounds[index].push(figures);
                }
                Err(error) => {
                    println!("# round {}: {name}: failed: {error}", round + 1);
                    errors[index].get_or_insert(error);
                }
            }
        }
    }
    let rows: Vec<(String, Result<Figures, String>)> = variants
        .into_iter()
        .zip(rounds)
        .zip(errors)
        .map(|(((name, _, _), mut figures), error)| {
            figures.sort_by(|a, b| a.rate().total_cmp(&b.rate()));
            let middle = figures.len() / 2;
            let median = (!figures.is_empty()).then(|| figures.swap_remove(middle));
            (
                name,
                median.ok_or_else(|| error.unwrap_or_else(|| "no rounds".into())),
            )
        })
        .collect();

    println!(
        "# part 2: {E2E_ALERTS} distinct alerts posted in batches of {E2E_BATCH}, \
         group_by ['...'], {E2E_ROUNDS} rounds per system and scenario"
    );
    let systems = [
        ("tocsin", tocsin_binary()),
        ("alertmanager", process::alertmanager_binary()),
    ];
    for (name, binary) in &systems {
        match binary {
            Some(binary) => println!("# {name}: {}", process::version(binary)),
            None => println!("# {name}: binary not found; its column will read n/a"),
        }
    }
    let mut e2e = Vec::new();
    for scenario in SCENARIOS {
        let mut rounds: [Vec<EndToEnd>; 2] = [Vec::new(), Vec::new()];
        let mut errors: [Option<String>; 2] = [None, None];
        for round in 0..E2E_ROUNDS {
            for (index, (name, binary)) in systems.iter().enumerate() {
                let Some(binary) = binary else {
                    errors[index] = Some("binary not found".into());
                    continue;
                };
                match run_end_to_end(&server_runtime, &client_runtime, name, binary, scenario) {
                    Ok(figures) => {
                        println!(
                            "# {} round {}: {name}: {} of {E2E_ALERTS} webhooks; POSTs answered \
                             after {:.0} ms, first webhook after {:.0} ms, last after {:.0} ms: \
                             {:.0} notifications/s; {} connections, server CPU {:.0} ms",
                            scenario.name,
                            round + 1,
                            figures.received,
                            ms(figures.posted),
                            ms(figures.first),
                            ms(figures.last),
                            figures.rate(scenario),
                            figures.connections,
                            ms(figures.cpu)
                        );
                        rounds[index].push(figures);
                    }
                    Err(error) => {
                        println!(
                            "# {} round {}: {name}: failed: {error}",
                            scenario.name,
                            round + 1
                        );
                        errors[index].get_or_insert(error);
                    }
                }
            }
        }
        let [tocsin, alertmanager] = rounds.map(|mut figures| {
            figures.sort_by(|a, b| a.rate(scenario).total_cmp(&b.rate(scenario)));
            let middle = figures.len() / 2;
            (!figures.is_empty()).then(|| figures.swap_remove(middle))
        });
        let [tocsin_error, alertmanager_error] = errors;
        let pick = |figures: Option<EndToEnd>, error: Option<String>| {
            figures.ok_or_else(|| error.unwrap_or_else(|| "no rounds".into()))
        };
        e2e.push((
            scenario,
            pick(tocsin, tocsin_error),
            pick(alertmanager, alertmanager_error),
        ));
    }

    print_part1(&rows);
    print_part2(&e2e);
    println!(
        "# total bench time {:.1}s; load average after: {}",
        started.elapsed().as_secs_f64(),
        process::load_average()
    );
    client_runtime.shutdown_timeout(Duration::from_secs(1));
    server_runtime.shutdown_timeout(Duration::from_secs(1));
}

// ---------------------------------------------------------------------------------------------
// The local webhook server: HTTP/1.1 with keep-alive, answers 200 with an empty body at once.

#[derive(Default)]
struct Counters {
    requests: AtomicU64,
    /// Request bytes (head and body) as HTTP, i.e. after TLS decryption.
    bytes: AtomicU64,
    /// Nanoseconds after the server's `base` at which the first and the last request were
    /// fully read.
    first_nanos: AtomicU64,
    last_nanos: AtomicU64,
    /// Connections accepted.
    connections: AtomicU64,
    /// Requests the server could not parse or did not support (chunked bodies).
    refused: AtomicU64,
}

struct HookServer {
    addr: SocketAddr,
    base: Instant,
    counters: Arc<Counters>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for HookServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl HookServer {
    fn start(runtime: &Runtime, tls: Option<Arc<rustls::ServerConfig>>) -> HookServer {
        let listener = runtime.block_on(TcpListener::bind("127.0.0.1:0")).unwrap();
        let addr = listener.local_addr().unwrap();
        let base = Instant::now();
        let counters = Arc::new(Counters {
            first_nanos: AtomicU64::new(u64::MAX),
            ..Counters::default()
        });
        let shared = Arc::clone(&counters);
        let task = runtime.spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let _ = stream.set_nodelay(true);
                shared.connections.fetch_add(1, Ordering::Relaxed);
                let counters = Arc::clone(&shared);
                let tls = tls.clone();
                tokio::spawn(async move {
                    match tls {
                        Some(config) => {
                            let acceptor = tokio_rustls::TlsAcceptor::from(config);
                            if let Ok(stream) = acceptor.accept(stream).await {
                                serve(stream, base, &counters).await;
                            }
                        }
                        None => serve(stream, base, &counters).await,
                    }
                });
            }
        });
        HookServer {
            addr,
            base,
            counters,
            task,
        }
    }

    fn url(&self, scheme: &str) -> String {
        format!("{scheme}://127.0.0.1:{}/hook", self.addr.port())
    }

    fn requests(&self) -> u64 {
        self.counters.requests.load(Ordering::Relaxed)
    }

    fn bytes(&self) -> u64 {
        self.counters.bytes.load(Ordering::Relaxed)
    }

    /// Time since the server started.
    fn now(&self) -> Duration {
        self.base.elapsed()
    }
}

fn find_head_end(buffer: &[u8]) -> Option<usize> {
    buffer.windows(4).position(|window| window == b"\r\n\r\n")
}

/// Serves requests on one connection until the client closes it.
async fn serve<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    base: Instant,
    counters: &Counters,
) {
    const OK: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";
    let mut buffer: Vec<u8> = Vec::with_capacity(64 * 1024);
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let head_end = loop {
            if let Some(end) = find_head_end(&buffer) {
                break end;
            }
            if buffer.len() > MAX_HEAD_BYTES {
                counters.refused.fetch_add(1, Ordering::Relaxed);
                return;
            }
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buffer.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buffer[..head_end]);
        let mut length = 0usize;
        let mut close = false;
        let mut chunked = false;
        for line in head.split("\r\n").skip(1) {
            let Some((name, value)) = line.split_once(':') else {
                continue;
            };
            let value = value.trim();
            if name.eq_ignore_ascii_case("content-length") {
                length = value.parse().unwrap_or(usize::MAX);
            } else if name.eq_ignore_ascii_case("connection") {
                close = value.eq_ignore_ascii_case("close");
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                chunked = true;
            }
        }
        if chunked || length > MAX_BODY_BYTES {
            // Both clients send a Content-Length; anything else would be counted wrongly.
            counters.refused.fetch_add(1, Ordering::Relaxed);
            let _ = stream
                .write_all(b"HTTP/1.1 501 Not Implemented\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                .await;
            return;
        }
        let total = head_end + 4 + length;
        while buffer.len() < total {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buffer.extend_from_slice(&chunk[..n]),
            }
        }
        buffer.drain(..total);
        let at = u64::try_from(base.elapsed().as_nanos()).unwrap_or(u64::MAX);
        counters.requests.fetch_add(1, Ordering::Relaxed);
        counters.bytes.fetch_add(total as u64, Ordering::Relaxed);
        counters.first_nanos.fetch_min(at, Ordering::Relaxed);
        counters.last_nanos.fetch_max(at, Ordering::Relaxed);
        if stream.write_all(OK).await.is_err() {
            return;
        }
        if close {
            let _ = stream.shutdown().await;
            return;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Test PKI (as in receivers/tests/common): a CA and a server certificate for 127.0.0.1.

struct TestPki {
    ca_pem: String,
    server: Arc<rustls::ServerConfig>,
}

impl TestPki {
    fn new() -> TestPki {
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "Tocsin bench CA");
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
        let mut params =
            CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()]).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, "tocsin bench");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &ca).unwrap();

        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let chain = CertificateDer::pem_slice_iter(cert.pem().as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let key = PrivateKeyDer::from_pem_slice(key.serialize_pem().as_bytes()).unwrap();
        let server = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap();
        TestPki {
            ca_pem: ca.pem(),
            server: Arc::new(server),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Part 1: the notifier in process.

fn key_values(pairs: &[(&str, String)]) -> KeyValues {
    pairs
        .iter()
        .map(|(name, value)| (name.to_string(), value.clone()))
        .collect()
}

/// Labels as a Kubernetes alert carries them: 10 labels, 3 annotations.
fn alert_labels(group: usize, id: usize) -> (KeyValues, KeyValues) {
    let alertname = [
        "KubePodCrashLooping",
        "HighRequestLatency",
        "NodeDiskPressure",
    ][group % 3];
    let namespace = format!("team-{}", group % 17);
    let pod = format!("api-server-{:08x}-{:05}", group * 7919, id);
    let labels = key_values(&[
        ("alertname", alertname.to_string()),
        ("cluster", "prod-eu-west-1".to_string()),
        ("namespace", namespace.clone()),
        ("pod", pod.clone()),
        ("container", "api-server".to_string()),
        (
            "instance",
            format!("10.42.{}.{}:8080", group % 256, id % 256),
        ),
        ("job", "kubernetes-pods".to_string()),
        ("severity", "critical".to_string()),
        ("service", "api-server".to_string()),
        ("team", "platform".to_string()),
    ]);
    let annotations = key_values(&[
        ("summary", format!("{alertname} on {namespace}/{pod}")),
        (
            "description",
            format!(
                "Pod {namespace}/{pod} (container api-server) has been restarting 4.2 times \
                 per 10 minutes for the last 15 minutes."
            ),
        ),
        (
            "runbook_url",
            format!(
                "https://runbooks.example.com/alerts/{}",
                alertname.to_ascii_lowercase()
            ),
        ),
    ]);
    (labels, annotations)
}

/// Notification `index`: 10 firing alerts of one group (`alertname`, `namespace`).
fn notification(index: usize) -> NotificationData {
    let starts_at: jiff::Timestamp = "2024-05-01T10:00:00.123456789Z".parse().unwrap();
    let alerts: Vec<AlertData> = (0..ALERTS_PER_NOTIFICATION)
        .map(|id| {
            let (labels, annotations) = alert_labels(index, id);
            AlertData {
                status: AlertStatus::Firing,
                labels,
                annotations,
                starts_at,
                ends_at: None,
                generator_url: format!(
                    "http://prometheus.example.com:9090/graph?g0.expr=rate%28kube_pod_container_status_restarts_total%5B10m%5D%29+%3E+0&g0.tab=1&id={id}"
                ),
                fingerprint: format!("{:016x}", (index * 1000 + id) as u64 * 0x9e37_79b9_7f4a_7c15),
            }
        })
        .collect();
    let group_labels: KeyValues = alerts[0]
        .labels
        .iter()
        .filter(|(name, _)| *name == "alertname" || *name == "namespace")
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect();
    let group_key = format!(
        "{{}}:{{alertname={:?}, namespace={:?}}}",
        group_labels["alertname"], group_labels["namespace"]
    );
    NotificationData::new(
        "team-platform".into(),
        alerts,
        group_labels,
        "http://tocsin.example.com:9093".into(),
        group_key,
        "first_notification".into(),
    )
}

struct Figures {
    sent: usize,
    failed: usize,
    elapsed: Duration,
    /// Per successful notification, sorted.
    latencies: Vec<Duration>,
    /// Requests and request bytes the server saw during the timed run.
    requests: u64,
    bytes: u64,
    /// CPU time (user + system) of this whole process (client and server) during the timed run.
    cpu: Duration,
    first_error: Option<String>,
}

impl Figures {
    fn rate(&self) -> f64 {
        self.sent as f64 / self.elapsed.as_secs_f64()
    }
}

struct Drive {
    sent: usize,
    failed: usize,
    latencies: Vec<Duration>,
    first_error: Option<String>,
}

/// Sends up to `count` notifications with `concurrency` tasks, none started after `limit`.
async fn drive(
    webhook: Arc<Webhook>,
    data: Arc<Vec<NotificationData>>,
    count: usize,
    concurrency: usize,
    limit: Duration,
) -> Drive {
    let next = Arc::new(AtomicUsize::new(0));
    let deadline = Instant::now() + limit;
    let tasks: Vec<_> = (0..concurrency)
        .map(|_| {
            let (webhook, data, next) =
                (Arc::clone(&webhook), Arc::clone(&data), Arc::clone(&next));
            tokio::spawn(async move {
                let mut latencies = Vec::with_capacity(count / concurrency + 1);
                let mut failed = 0;
                let mut first_error = None;
                loop {
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    if index >= count || Instant::now() >= deadline {
                        break;
                    }
                    let notification = &data[index % data.len()];
                    let start = Instant::now();
                    match webhook.notify(notification).await {
                        Ok(()) => latencies.push(start.elapsed()),
                        Err(error) => {
                            failed += 1;
                            first_error
                                .get_or_insert(format!("{}: {}", error.reason, error.message));
                        }
                    }
                }
                (latencies, failed, first_error)
            })
        })
        .collect();
    let mut drive = Drive {
        sent: 0,
        failed: 0,
        latencies: Vec::with_capacity(count),
        first_error: None,
    };
    for task in tasks {
        let (latencies, failed, first_error) = task.await.unwrap();
        drive.sent += latencies.len();
        drive.latencies.extend(latencies);
        drive.failed += failed;
        if drive.first_error.is_none() {
            drive.first_error = first_error;
        }
    }
    drive
}

fn run_variant(
    server_runtime: &Runtime,
    client_runtime: &Runtime,
    pki: Option<&TestPki>,
    concurrency: usize,
    data: Arc<Vec<NotificationData>>,
) -> Result<Figures, String> {
    let server = HookServer::start(server_runtime, pki.map(|pki| Arc::clone(&pki.server)));
    let mut http = HttpSettings::default();
    if let Some(pki) = pki {
        http.tls.ca_pem = Some(pki.ca_pem.clone());
    }
    let settings = WebhookSettings {
        url: server.url(if pki.is_some() { "https" } else { "http" }),
        http,
        max_alerts: 0,
        send_resolved: true,
        timeout: Some(REQUEST_TIMEOUT),
    };
    let webhook = Arc::new(Webhook::new(&settings).map_err(|e| e.to_string())?);
    client_runtime.block_on(async {
        let warmup = drive(
            Arc::clone(&webhook),
            Arc::clone(&data),
            WARMUP_NOTIFICATIONS,
            concurrency,
            VARIANT_TIME_LIMIT,
        )
        .await;
        if warmup.sent == 0 {
            return Err(warmup
                .first_error
                .unwrap_or_else(|| "warm-up sent nothing".into()));
        }
        let (requests_before, bytes_before) = (server.requests(), server.bytes());
        let cpu_before = process::cpu_time(std::process::id())?;
        let start = Instant::now();
        let mut run = drive(
            webhook,
            data,
            NOTIFICATIONS,
            concurrency,
            VARIANT_TIME_LIMIT,
        )
        .await;
        let elapsed = start.elapsed();
        let cpu = process::cpu_time(std::process::id())?.saturating_sub(cpu_before);
        run.latencies.sort_unstable();
        Ok(Figures {
            sent: run.sent,
            failed: run.failed,
            elapsed,
            latencies: run.latencies,
            requests: server.requests() - requests_before,
            bytes: server.bytes() - bytes_before,
            cpu,
            first_error: run.first_error,
        })
    })
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

// ---------------------------------------------------------------------------------------------
// Part 2: end to end, Tocsin against Alertmanager.

fn tocsin_binary() -> Option<PathBuf> {
    let path = std::env::var("TOCSIN_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|_| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/release/tocsin"));
    path.is_file().then_some(path)
}

/// The same Alertmanager configuration for both: every alert its own group, flushed at once,
/// to a webhook at `url`.
fn alertmanager_config(url: &str, group_wait: &str) -> String {
    format!(
        "route:\n  receiver: hook\n  group_by: ['...']\n  group_wait: {group_wait}\n  group_interval: 5m\n  \
         repeat_interval: 4h\n\
         receivers:\n  - name: hook\n    webhook_configs:\n      - url: {url}\n        send_resolved: false\n"
    )
}

/// Batches of distinct alerts with the same labels as part 1, as `/api/v2/alerts` bodies.
fn e2e_batches() -> Vec<Vec<u8>> {
    (0..E2E_ALERTS)
        .step_by(E2E_BATCH)
        .map(|first| {
            let alerts: Vec<serde_json::Value> = (first..(first + E2E_BATCH).min(E2E_ALERTS))
                .map(|id| {
                    let (labels, annotations) = alert_labels(id / ALERTS_PER_NOTIFICATION, id);
                    serde_json::json!({
                        "labels": labels,
                        "annotations": annotations,
                        "generatorURL": "http://prometheus.example.com:9090/graph?g0.expr=up",
                    })
                })
                .collect();
            serde_json::to_vec(&alerts).unwrap()
        })
        .collect()
}

/// How the systems are configured in part 2, and how its rate is computed.
#[derive(Clone, Copy)]
struct Scenario {
    name: &'static str,
    group_wait: &'static str,
    /// The rate counts from the first webhook (all groups due at once: a burst), rather than
    /// from the first `POST` (groups due as their alerts arrive).
    burst: bool,
}

const SCENARIOS: [Scenario; 2] = [
    Scenario {
        name: "group_wait 0s",
        group_wait: "0s",
        burst: false,
    },
    Scenario {
        name: "group_wait 1s",
        group_wait: "1s",
        burst: true,
    },
];

struct EndToEnd {
    received: u64,
    bytes: u64,
    /// From the first `POST`: until the last `POST` was answered, until the first and the last
    /// webhook arrived.
    posted: Duration,
    first: Duration,
    last: Duration,
    /// Connections the webhook server accepted.
    connections: u64,
    /// CPU time (user + system) the system under test used from just before the first `POST`
    /// until the last webhook arrived (or the wait ended).
    cpu: Duration,
}

impl EndToEnd {
    fn rate(&self, scenario: Scenario) -> f64 {
        let span = if scenario.burst {
            self.last.saturating_sub(self.first)
        } else {
            self.last
        };
        self.received as f64 / span.as_secs_f64().max(1e-9)
    }
}

fn run_end_to_end(
    server_runtime: &Runtime,
    client_runtime: &Runtime,
    system: &str,
    binary: &Path,
    scenario: Scenario,
) -> Result<EndToEnd, String> {
    let hook = HookServer::start(server_runtime, None);
    let config = alertmanager_config(&hook.url("http"), scenario.group_wait);
    let process = process::start_alerting(binary, system == "tocsin", &config, READY_TIMEOUT)?;
    let batches = e2e_batches();
    let pid = process.pid();
    let client = reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .build()
        .map_err(|e| e.to_string())?;
    let base = format!("http://{}", process.address);
    let outcome = client_runtime.block_on(async {
        let start = hook.now();
        let cpu_before = process::cpu_time(pid)?;
        for batch in batches {
            let response = client
                .post(format!("{base}/api/v2/alerts"))
                .header("content-type", "application/json")
                .body(batch)
                .send()
                .await
                .map_err(|e| format!("POST /api/v2/alerts: {e}"))?;
            let status = response.status();
            if !status.is_success() {
                let body = response.text().await.unwrap_or_default();
                return Err(format!("POST /api/v2/alerts: {status}: {body}"));
            }
        }
        let posted = hook.now() - start;
        let wait_deadline = Instant::now() + E2E_TIME_LIMIT;
        while hook.requests() < E2E_ALERTS as u64 && Instant::now() < wait_deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let cpu = process::cpu_time(pid)?.saturating_sub(cpu_before);
        Ok((start, posted, cpu))
    });
    let (start, posted, cpu) =
        outcome.map_err(|error| format!("{error}\n{}", process.log_tail()))?;
    drop(process);
    let at = |nanos: &AtomicU64| Duration::from_nanos(nanos.load(Ordering::Relaxed));
    let received = hook.requests();
    if received == 0 {
        return Err("no webhook arrived".into());
    }
    Ok(EndToEnd {
        received,
        bytes: hook.bytes(),
        posted,
        first: at(&hook.counters.first_nanos).saturating_sub(start),
        last: at(&hook.counters.last_nanos).saturating_sub(start),
        connections: hook.counters.connections.load(Ordering::Relaxed),
        cpu,
    })
}

// ---------------------------------------------------------------------------------------------
// Report.

fn print_part1(rows: &[(String, Result<Figures, String>)]) {
    println!();
    println!(
        "{:<22} {:>6} {:>16} {:>7} {:>7} {:>7} {:>19} {:>15}",
        "webhook notifier",
        "sent",
        "notifications/s",
        "p50 ms",
        "p99 ms",
        "max ms",
        "bytes/notification",
        "CPU us/notif."
    );
    for (name, figures) in rows {
        match figures {
            Ok(figures) => println!(
                "{:<22} {:>6} {:>16.0} {:>7.3} {:>7.3} {:>7.3} {:>19.0} {:>15.1}",
                name,
                figures.sent,
                figures.rate(),
                ms(percentile(&figures.latencies, 0.50).unwrap_or_default()),
                ms(percentile(&figures.latencies, 0.99).unwrap_or_default()),
                ms(figures.latencies.last().copied().unwrap_or_default()),
                figures.bytes as f64 / figures.requests.max(1) as f64,
                figures.cpu.as_secs_f64() * 1e6 / figures.sent.max(1) as f64,
            ),
            Err(error) => println!("{name:<22} failed: {error}"),
        }
    }
}

type Pick = fn(&EndToEnd, Scenario) -> f64;

/// One scenario's median round for Tocsin and for Alertmanager.
type ScenarioResults = (Scenario, Result<EndToEnd, String>, Result<EndToEnd, String>);

fn print_part2(results: &[ScenarioResults]) {
    println!();
    println!(
        "{:<60} {:>8} {:>13}   ratio (tocsin/alertmanager)",
        format!("end to end, {E2E_ALERTS} alerts, 1 per group"),
        "tocsin",
        "alertmanager"
    );
    for (scenario, tocsin, alertmanager) in results {
        let rows: [(&str, Pick, &str); 6] = [
            (
                if scenario.burst {
                    "notifications/s (first to last webhook)"
                } else {
                    "notifications/s (first POST to last webhook)"
                },
                |f, scenario| f.rate(scenario),
                " (higher is better)",
            ),
            (
                "all POSTs answered after (ms)",
                |f, _| ms(f.posted),
                " (lower is better)",
            ),
            (
                "first webhook after first POST (ms)",
                |f, _| ms(f.first),
                " (lower is better)",
            ),
            (
                "last webhook after first POST (ms)",
                |f, _| ms(f.last),
                " (lower is better)",
            ),
            (
                "server CPU/notification incl. POSTs (us)",
                |f, _| f.cpu.as_secs_f64() * 1e6 / f.received.max(1) as f64,
                " (lower is better)",
            ),
            (
                "request bytes/notification",
                |f, _| f.bytes as f64 / f.received.max(1) as f64,
                "",
            ),
        ];
        let cell = |result: &Result<EndToEnd, String>, pick: Pick| match result {
            Ok(figures) => {
                let value = pick(figures, *scenario);
                (format!("{value:.0}"), Some(value))
            }
            Err(_) => ("n/a".to_string(), None),
        };
        for (label, pick, note) in rows {
            let (tocsin_text, tocsin_value) = cell(tocsin, pick);
            let (am_text, am_value) = cell(alertmanager, pick);
            let ratio = match (tocsin_value, am_value) {
                (Some(t), Some(a)) if a > 0.0 => format!("{:.2}x{note}", t / a),
                _ => "n/a".to_string(),
            };
            println!(
                "{:<60} {tocsin_text:>8} {am_text:>13}   {ratio}",
                format!("{}: {label}", scenario.name)
            );
        }
        let received = |result: &Result<EndToEnd, String>| {
            result
                .as_ref()
                .map_or("n/a".to_string(), |f| f.received.to_string())
        };
        println!(
            "{:<60} {:>8} {:>13}",
            format!("{}: webhooks received", scenario.name),
            received(tocsin),
            received(alertmanager)
        );
    }
}
