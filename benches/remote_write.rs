//! Remote-write sending under load, Tocsin against Prometheus 2.42 side by side on this
//! machine: both scrape the same generated targets (100 000 series every 5 s, so each scrape
//! round is a burst that one shard cannot ship within the interval at default settings) and
//! remote-write (1.0, default `queue_config`) to a counting receiver in this process.
//! Figures: samples shipped per second, per CPU-second of the whole process, per CPU-second of
//! remote write alone (the process CPU minus that of the same run without `remote_write`), the
//! most shards the queue ran, and the lag (highest timestamp appended − highest sent, both
//! from the sender's own `prometheus_remote_storage_*` metrics, sampled every second:
//! p50, p99, max).
//!
//! Run with `cargo bench --bench remote_write` (cargo builds `target/release/tocsin` first).
//! See `benches/README.md`. Nothing here asserts on timings: it prints figures.
#![allow(clippy::unwrap_used, clippy::print_stdout)]

#[path = "common/http.rs"]
mod http;
#[path = "common/process.rs"]
mod process;

use process::{Server, prometheus_binary};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tocsin::api::remote_write::wire;

/// Targets (one port each) and series per target: TARGETS × SERIES samples per scrape round.
const TARGETS: usize = 20;
const SERIES: usize = 5_000;
const SCRAPE_INTERVAL_S: u64 = 5;
/// Two scrape rounds and the first resharding decisions (every 10 s) before measuring.
const WARMUP: Duration = Duration::from_secs(15);
const WINDOW: Duration = Duration::from_secs(40);
const READY_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Clone)]
enum System {
    Tocsin(PathBuf),
    Prometheus(PathBuf),
}

impl System {
    fn name(&self) -> &'static str {
        match self {
            System::Tocsin(_) => "tocsin",
            System::Prometheus(_) => "prometheus",
        }
    }

    fn start(&self, config: &str) -> Result<Server, String> {
        let dir = tempfile::tempdir().map_err(|e| format!("tempdir: {e}"))?;
        let storage = dir.path().join("data");
        let listen = format!("127.0.0.1:{}", process::free_port()?);
        let config_path = dir.path().join("prometheus.yml");
        std::fs::write(&config_path, config).map_err(|e| format!("write config: {e}"))?;
        let mut command;
        match self {
            System::Tocsin(binary) => {
                command = Command::new(binary);
                command
                    .arg("--config.file")
                    .arg(&config_path)
                    .arg("--storage.path")
                    .arg(&storage)
                    .args(["--web.listen-address", &listen, "--log.level", "warn"]);
            }
            System::Prometheus(binary) => {
                command = Command::new(binary);
                command
                    .arg(format!("--config.file={}", config_path.display()))
                    .arg(format!("--storage.tsdb.path={}", storage.display()))
                    .arg(format!("--web.listen-address={listen}"))
                    .arg("--log.level=warn");
            }
        }
        Server::spawn(command, listen, dir, READY_TIMEOUT)
            .map_err(|e| format!("{}: {e}", self.name()))
    }
}

/// Serves the same generated exposition on `TARGETS` ports.
fn serve_targets() -> Vec<String> {
    let mut addresses = Vec::new();
    for target in 0..TARGETS {
        let mut body = String::from("# TYPE bench_shipped_total counter\n");
        for series in 0..SERIES {
            body.push_str(&format!(
                "bench_shipped_total{{target=\"{target}\",series=\"{series}\",path=\"/api/v1/items\"}} {}\n",
                series * 7
            ));
        }
        let body = Arc::new(body);
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        addresses.push(format!("'{}'", listener.local_addr().unwrap()));
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let body = Arc::clone(&body);
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(stream);
                    let mut line = String::new();
                    loop {
                        line.clear();
                        match reader.read_line(&mut line) {
                            Ok(0) | Err(_) => return,
                            Ok(_) if line == "\r\n" => break,
                            Ok(_) => {}
                        }
                    }
                    let mut stream = reader.into_inner();
                    let _ = write!(
                        stream,
                        "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                });
            }
        });
    }
    addresses
}

/// Counts the samples of remote-write 1.0 requests (keep-alive HTTP/1.1, answers 204).
struct Receiver {
    address: String,
    samples: Arc<AtomicU64>,
    highest_ms: Arc<AtomicI64>,
}

fn serve_receiver() -> Receiver {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let samples = Arc::new(AtomicU64::new(0));
    let highest_ms = Arc::new(AtomicI64::new(0));
    let (counted, highest) = (Arc::clone(&samples), Arc::clone(&highest_ms));
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let (counted, highest) = (Arc::clone(&counted), Arc::clone(&highest));
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream);
                let mut line = String::new();
                loop {
                    let mut length = 0usize;
                    loop {
                        line.clear();
                        match reader.read_line(&mut line) {
                            Ok(0) | Err(_) => return,
                            Ok(_) if line == "\r\n" => break,
                            Ok(_) => {
                                if let Some((name, value)) = line.split_once(':')
                                    && name.eq_ignore_ascii_case("content-length")
                                {
                                    length = value.trim().parse().unwrap_or(0);
                                }
                            }
                        }
                    }
                    let mut body = vec![0u8; length.min(64 << 20)];
                    if reader.read_exact(&mut body).is_err() {
                        return;
                    }
                    if let Ok(raw) = snap::raw::Decoder::new().decompress_vec(&body)
                        && let Ok(request) = wire::decode_v1(&raw)
                    {
                        counted.fetch_add(request.samples.len() as u64, Ordering::Relaxed);
                        if let Some(top) = request.samples.iter().map(|s| s.timestamp).max() {
                            highest.fetch_max(top, Ordering::Relaxed);
                        }
                    }
                    if reader
                        .get_mut()
                        .write_all(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n")
                        .is_err()
                    {
                        return;
                    }
                }
            });
        }
    });
    Receiver {
        address,
        samples,
        highest_ms,
    }
}

/// A metric's value (summed over its label sets) on a server's `/metrics`.
fn metric(server: &Server, name: &str) -> Option<f64> {
    let mut conn = server.conn(Duration::from_secs(10)).ok()?;
    let (_, body) = conn.request("GET", "/metrics", b"").ok()?;
    let text = String::from_utf8_lossy(&body);
    let values: Vec<f64> = text
        .lines()
        .filter(|line| {
            line.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .filter_map(|line| line.rsplit(' ').next()?.parse().ok())
        .collect();
    if values.is_empty() {
        None
    } else {
        Some(values.iter().sum())
    }
}

struct Run {
    samples_per_second: f64,
    cpu_seconds: f64,
    /// Lag samples (s), sorted.
    lags: Vec<f64>,
    shards_max: f64,
}

impl Run {
    /// The `q` quantile of the lag samples (nearest rank); NaN without samples.
    fn lag(&self, q: f64) -> f64 {
        if self.lags.is_empty() {
            return f64::NAN;
        }
        let rank = ((q * self.lags.len() as f64).ceil() as usize).clamp(1, self.lags.len());
        self.lags[rank - 1]
    }
}

fn config(targets: &[String], receiver: Option<&str>) -> String {
    let mut text = format!(
        "global:\n  scrape_interval: {SCRAPE_INTERVAL_S}s\n  scrape_timeout: {SCRAPE_INTERVAL_S}s\nscrape_configs:\n  - job_name: bench\n    static_configs:\n      - targets: [{}]\n",
        targets.join(", ")
    );
    if let Some(receiver) = receiver {
        text.push_str(&format!(
            "remote_write:\n  - url: http://{receiver}/api/v1/write\n    name: bench\n"
        ));
    }
    text
}

fn run(system: &System, targets: &[String], with_remote_write: bool) -> Result<Run, String> {
    let receiver = serve_receiver();
    let server = system.start(&config(
        targets,
        with_remote_write.then_some(receiver.address.as_str()),
    ))?;
    std::thread::sleep(WARMUP);
    let cpu_before = server.cpu_time()?;
    let samples_before = receiver.samples.load(Ordering::Relaxed);
    let started = Instant::now();
    let mut lags = Vec::new();
    let mut shards_max: f64 = 0.0;
    while started.elapsed() < WINDOW {
        std::thread::sleep(Duration::from_secs(1));
        if with_remote_write
            && let Some(shards) = metric(&server, "prometheus_remote_storage_shards")
        {
            shards_max = shards_max.max(shards);
        }
        if with_remote_write
            && let (Some(appended), Some(sent)) = (
                metric(
                    &server,
                    "prometheus_remote_storage_highest_timestamp_in_seconds",
                ),
                metric(
                    &server,
                    "prometheus_remote_storage_queue_highest_sent_timestamp_seconds",
                ),
            )
        {
            lags.push((appended - sent).max(0.0));
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let cpu_seconds = (server.cpu_time()? - cpu_before).as_secs_f64();
    let shipped = receiver.samples.load(Ordering::Relaxed) - samples_before;
    let _ = receiver.highest_ms.load(Ordering::Relaxed);
    lags.sort_by(f64::total_cmp);
    Ok(Run {
        samples_per_second: shipped as f64 / elapsed,
        cpu_seconds: cpu_seconds / elapsed,
        lags,
        shards_max,
    })
}

fn main() {
    let mut systems = vec![System::Tocsin(PathBuf::from(env!("CARGO_BIN_EXE_tocsin")))];
    match prometheus_binary() {
        Some(binary) => {
            println!("# prometheus: {}", process::version(&binary));
            systems.push(System::Prometheus(binary));
        }
        None => println!("# prometheus not found (set PROMETHEUS_BIN): its column reads n/a"),
    }
    let targets = serve_targets();
    println!(
        "# {TARGETS} targets x {SERIES} series scraped every {SCRAPE_INTERVAL_S}s ({} samples/s), {}s warm-up, {}s window",
        TARGETS * SERIES / SCRAPE_INTERVAL_S as usize,
        WARMUP.as_secs(),
        WINDOW.as_secs()
    );
    let mut results: Vec<(Run, Run)> = Vec::new();
    for system in &systems {
        println!("# {}: scraping without remote_write", system.name());
        let baseline = run(system, &targets, false).unwrap_or_else(|e| panic!("{e}"));
        println!("# {}: scraping with remote_write", system.name());
        let shipping = run(system, &targets, true).unwrap_or_else(|e| panic!("{e}"));
        results.push((baseline, shipping));
    }
    let figure = |index: usize, read: &dyn Fn(&(Run, Run)) -> f64| -> Option<f64> {
        results.get(index).map(read)
    };
    type Read = Box<dyn Fn(&(Run, Run)) -> f64>;
    let rows: Vec<(&str, Read, &str)> = vec![
        (
            "samples shipped per second",
            Box::new(|(_, s)| s.samples_per_second),
            "(same load: ~1x expected)",
        ),
        (
            "samples shipped per CPU-second (process)",
            Box::new(|(_, s)| s.samples_per_second / s.cpu_seconds),
            "(higher is better)",
        ),
        (
            "samples shipped per remote-write CPU-second",
            Box::new(|(b, s)| s.samples_per_second / (s.cpu_seconds - b.cpu_seconds).max(1e-3)),
            "(higher is better)",
        ),
        (
            "remote-write CPU (cores)",
            Box::new(|(b, s)| s.cpu_seconds - b.cpu_seconds),
            "(lower is better)",
        ),
        ("shards (most seen)", Box::new(|(_, s)| s.shards_max), ""),
        (
            "lag p50 (s)",
            Box::new(|(_, s)| s.lag(0.5)),
            "(lower is better)",
        ),
        (
            "lag p99 (s)",
            Box::new(|(_, s)| s.lag(0.99)),
            "(lower is better)",
        ),
        (
            "lag max (s)",
            Box::new(|(_, s)| s.lag(1.0)),
            "(lower is better)",
        ),
    ];
    println!(
        "{:<46} {:>12} {:>12}   ratio (tocsin/prometheus)",
        "benchmark", "tocsin", "prometheus"
    );
    let show = |value: Option<f64>| match value {
        Some(value) if value.is_finite() => format!("{value:.2}"),
        _ => "n/a".to_string(),
    };
    for (name, read, note) in &rows {
        let tocsin = figure(0, read.as_ref());
        let prometheus = figure(1, read.as_ref());
        let ratio = match (tocsin, prometheus) {
            (Some(t), Some(p)) if p != 0.0 && t.is_finite() && p.is_finite() => {
                format!("{:.2}x {note}", t / p)
            }
            _ => format!("n/a {note}"),
        };
        println!(
            "{name:<46} {:>12} {:>12}   {ratio}",
            show(tocsin),
            show(prometheus)
        );
    }
}
