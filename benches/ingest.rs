//! Ingestion, Tocsin against Prometheus 2.42 side by side on this machine: remote-write
//! samples per CPU-second of the receiving server, and scrape CPU per million samples.
//!
//! Run with `cargo bench --bench ingest` (cargo builds `target/release/tocsin` first). See
//! `benches/README.md` for what each figure means and the goals. Nothing here asserts on
//! timings: it prints figures.
//!
//! Phases:
//! - `decode`: in this process, where a remote-write 1.0 request's time goes in Tocsin:
//!   snappy, prost's decoding (owned strings, the old receiver), the zero-copy reader (1.0 and
//!   2.0), and appending plus committing to a TSDB.
//! - `rw`: the same pre-encoded 1.0 requests posted to a fresh Tocsin and a fresh Prometheus
//!   (`--web.enable-remote-write-receiver`), one at a time and alternating; the server's CPU
//!   comes from /proc/PID/stat. Tocsin also gets the same samples as 2.0 requests.
//! - `scrape`: both scrape the same static exposition servers (the node_exporter fixture
//!   behind many ports, one target each) every second for a fixed time; CPU per sample.
#![allow(clippy::unwrap_used, clippy::print_stdout)]

#[path = "common/figures.rs"]
mod figures;
#[path = "common/http.rs"]
mod http;
#[path = "common/process.rs"]
mod process;

use figures::median;
use process::{Server, load_average, prometheus_binary};
use prost::Message as _;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tocsin::api::remote_write::{self, Protocol, proto, wire};

/// Remote write: client threads, each posting its own shard of series in time order (two
/// clients sharing series would race and make samples out of order).
const RW_CLIENTS: usize = 2;
/// Series per request (each client's shard), samples per series per request, requests per
/// client: 2 × 100 × 1000 × 10 = 2 M samples a round.
const RW_SERIES: usize = 1000;
const RW_SAMPLES: usize = 10;
const RW_REQUESTS: usize = 100;
/// Rounds per system (a fresh server each); the median is reported.
const RW_ROUNDS: usize = 3;
/// Scraping: targets (one port each, all serving the fixture), interval, warm-up, window.
const SCRAPE_TARGETS: usize = 100;
const SCRAPE_WARMUP: Duration = Duration::from_secs(4);
const SCRAPE_WINDOW: Duration = Duration::from_secs(15);
const SCRAPE_ROUNDS: usize = 1;
/// In-process decode rounds (best of).
const DECODE_ROUNDS: usize = 15;
const READY_TIMEOUT: Duration = Duration::from_secs(30);
const IO_TIMEOUT: Duration = Duration::from_secs(120);

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../shared/fixtures/exposition/node_exporter-1.5.0.prom.txt"
);

fn main() {
    // `cargo bench` passes `--bench`; any other launch (`cargo test --all-targets`) only checks
    // that the bench builds.
    if !std::env::args().any(|arg| arg == "--bench") {
        println!("benchmark skipped: run it with `cargo bench`");
        return;
    }
    let only = std::env::var("INGEST_BENCH_ONLY").unwrap_or_default();
    let phases =
        std::env::var("INGEST_BENCH_PHASES").unwrap_or_else(|_| "decode,rw,scrape".to_string());
    let mut systems = Vec::new();
    if only.is_empty() || only == "tocsin" {
        systems.push(System::Tocsin(PathBuf::from(env!("CARGO_BIN_EXE_tocsin"))));
    }
    if only.is_empty() || only == "prometheus" {
        match prometheus_binary() {
            Some(path) => systems.push(System::Prometheus(path)),
            None => println!(
                "prometheus not found (set PROMETHEUS_BIN or `apt-get install prometheus`); its column will read n/a"
            ),
        }
    }
    for system in &systems {
        println!("# {}: {}", system.name(), process::version(system.binary()));
    }
    println!(
        "# machine: {} CPUs; load average before: {}",
        std::thread::available_parallelism().map_or(0, usize::from),
        load_average()
    );
    let started = Instant::now();
    let mut rows: Vec<Row> = Vec::new();
    if phases.contains("decode") {
        decode_phase();
    }
    if phases.contains("rw") {
        rows.extend(rw_phase(&systems));
    }
    if phases.contains("scrape") {
        rows.extend(scrape_phase(&systems));
    }
    print_rows(&rows);
    println!(
        "# total bench time {:.1}s; load average after: {}",
        started.elapsed().as_secs_f64(),
        load_average()
    );
}

// ---------------------------------------------------------------------------------------------
// The systems under test.

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

    fn binary(&self) -> &std::path::Path {
        match self {
            System::Tocsin(path) | System::Prometheus(path) => path,
        }
    }

    /// Starts the system with `config` as its prometheus.yml.
    fn start(&self, config: &str) -> Result<Server, String> {
        let dir = tempfile::tempdir().map_err(|e| format!("tempdir: {e}"))?;
        let storage = dir.path().join("data");
        let listen = format!("127.0.0.1:{}", process::free_port()?);
        let config_path = dir.path().join("prometheus.yml");
        std::fs::write(&config_path, config).map_err(|e| format!("write config: {e}"))?;
        let mut command = Command::new(self.binary());
        match self {
            System::Tocsin(_) => {
                command
                    .arg("--config.file")
                    .arg(&config_path)
                    .arg("--storage.path")
                    .arg(&storage)
                    .args(["--web.listen-address", &listen, "--log.level", "warn"]);
            }
            System::Prometheus(_) => {
                command
                    .arg(format!("--config.file={}", config_path.display()))
                    .arg(format!("--storage.tsdb.path={}", storage.display()))
                    .arg(format!("--web.listen-address={listen}"))
                    .args(["--web.enable-remote-write-receiver", "--log.level=warn"]);
            }
        }
        Server::spawn(command, listen, dir, READY_TIMEOUT)
            .map_err(|e| format!("{}: {e}", self.name()))
    }
}

// ---------------------------------------------------------------------------------------------
// Requests.

/// One client's series: `shard` keeps the label sets of different clients apart. Six labels,
/// like a typical scraped series after target labels.
fn shard_labels(shard: usize) -> Vec<Vec<(String, String)>> {
    (0..RW_SERIES)
        .map(|index| {
            vec![
                (
                    "__name__".to_string(),
                    format!("bench_metric_{}_total", index % 50),
                ),
                ("cluster".to_string(), "bench-eu-west-1".to_string()),
                (
                    "instance".to_string(),
                    format!("10.0.{shard}.{}:9100", index / 50),
                ),
                ("job".to_string(), "node".to_string()),
                (
                    "mode".to_string(),
                    ["user", "system", "idle", "iowait"][index % 4].to_string(),
                ),
                ("series".to_string(), format!("s{index}")),
            ]
        })
        .collect()
}

/// The samples of request `request` for series `index`: `RW_SAMPLES` consecutive
/// timestamps 1 s apart from `base_ms`, counter-like values.
fn request_samples(base_ms: i64, request: usize, index: usize) -> Vec<(i64, f64)> {
    (0..RW_SAMPLES)
        .map(|k| {
            let step = (request * RW_SAMPLES + k) as i64;
            (
                base_ms + step * 1000,
                (step as f64) * 1.5 + (index % 7) as f64 * 0.25,
            )
        })
        .collect()
}

fn v1_request(labels: &[Vec<(String, String)>], base_ms: i64, request: usize) -> Vec<u8> {
    let message = proto::WriteRequest {
        timeseries: labels
            .iter()
            .enumerate()
            .map(|(index, pairs)| proto::TimeSeries {
                labels: pairs
                    .iter()
                    .map(|(name, value)| proto::Label {
                        name: name.clone(),
                        value: value.clone(),
                    })
                    .collect(),
                samples: request_samples(base_ms, request, index)
                    .into_iter()
                    .map(|(timestamp, value)| proto::Sample { value, timestamp })
                    .collect(),
                ..proto::TimeSeries::default()
            })
            .collect(),
        metadata: Vec::new(),
    };
    message.encode_to_vec()
}

fn v2_request(labels: &[Vec<(String, String)>], base_ms: i64, request: usize) -> Vec<u8> {
    let mut symbols: Vec<String> = vec![String::new()];
    let mut index_of = std::collections::HashMap::new();
    let mut symbol = |text: &str, symbols: &mut Vec<String>| -> u32 {
        *index_of.entry(text.to_string()).or_insert_with(|| {
            symbols.push(text.to_string());
            (symbols.len() - 1) as u32
        })
    };
    let mut timeseries = Vec::with_capacity(labels.len());
    for (index, pairs) in labels.iter().enumerate() {
        let labels_refs = pairs
            .iter()
            .flat_map(|(name, value)| [symbol(name, &mut symbols), symbol(value, &mut symbols)])
            .collect();
        timeseries.push(proto::v2::TimeSeries {
            labels_refs,
            samples: request_samples(base_ms, request, index)
                .into_iter()
                .map(|(timestamp, value)| proto::Sample { value, timestamp })
                .collect(),
            ..proto::v2::TimeSeries::default()
        });
    }
    proto::v2::Request {
        symbols,
        timeseries,
    }
    .encode_to_vec()
}

fn compress(raw: &[u8]) -> Vec<u8> {
    snap::raw::Encoder::new().compress_vec(raw).unwrap()
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_millis() as i64)
}

/// Where samples start: 50 minutes ago, so that a whole round (1000 s of samples) stays in
/// the past and inside a fresh head's window on both systems.
fn base_ms() -> i64 {
    (now_ms() - 50 * 60 * 1000) / 1000 * 1000
}

// ---------------------------------------------------------------------------------------------
// Phase `decode`.

fn best_of(rounds: usize, mut run: impl FnMut() -> usize) -> (Duration, usize) {
    let mut best = Duration::MAX;
    let mut count = 0;
    for _ in 0..rounds {
        let started = Instant::now();
        count = std::hint::black_box(run());
        best = best.min(started.elapsed());
    }
    (best, count)
}

fn decode_phase() {
    let labels = shard_labels(0);
    let base = base_ms();
    let v1_raw = v1_request(&labels, base, 0);
    let v2_raw = v2_request(&labels, base, 0);
    let v1_body = compress(&v1_raw);
    let samples = RW_SERIES * RW_SAMPLES;
    println!(
        "# decode: one request of {RW_SERIES} series x {RW_SAMPLES} samples, 6 labels each: 1.0 {} bytes ({} snappy), 2.0 {} bytes",
        v1_raw.len(),
        v1_body.len(),
        v2_raw.len()
    );
    let (snappy, _) = best_of(DECODE_ROUNDS, || {
        remote_write::decompress(&v1_body).unwrap().len()
    });
    let (prost_decode, _) = best_of(DECODE_ROUNDS, || {
        proto::WriteRequest::decode(v1_raw.as_slice())
            .unwrap()
            .timeseries
            .len()
    });
    // What the old receiver also did per series: a `Labels` from the owned strings.
    let (prost_labels, _) = best_of(DECODE_ROUNDS, || {
        let request = proto::WriteRequest::decode(v1_raw.as_slice()).unwrap();
        request
            .timeseries
            .iter()
            .map(|series| {
                tocsin::tsdb::Labels::new(
                    series
                        .labels
                        .iter()
                        .map(|label| (label.name.as_str(), label.value.as_str())),
                )
                .len()
            })
            .sum()
    });
    let (wire_v1, _) = best_of(DECODE_ROUNDS, || {
        wire::decode_v1(&v1_raw).unwrap().series.len()
    });
    // The new receiver's share before the TSDB: decoding plus one `Labels` per series.
    let (wire_labels, _) = best_of(DECODE_ROUNDS, || {
        let request = wire::decode_v1(&v1_raw).unwrap();
        request
            .series
            .iter()
            .map(|series| {
                tocsin::tsdb::Labels::new(
                    request
                        .labels_of(series)
                        .iter()
                        .map(|pair| (pair.name, pair.value)),
                )
                .len()
            })
            .sum()
    });
    let (wire_v2, _) = best_of(DECODE_ROUNDS, || {
        wire::decode_v2(&v2_raw).unwrap().series.len()
    });
    // Appending and committing (fsync included) to a TSDB, each round on new timestamps.
    let folder = tempfile::tempdir().unwrap();
    let tsdb =
        tocsin::tsdb::Tsdb::open(folder.path(), tocsin::tsdb::TsdbOptions::default()).unwrap();
    let requests: Vec<Vec<u8>> = (0..=DECODE_ROUNDS)
        .map(|round| v1_request(&labels, base, round))
        .collect();
    let mut round = 0;
    // The first append creates the series; later ones find them (the steady state).
    let first = wire::decode_v1(&requests[0]).unwrap();
    remote_write::append(&tsdb, &first, now_ms()).unwrap();
    let (append, _) = best_of(DECODE_ROUNDS, || {
        round += 1;
        let request = wire::decode_v1(&requests[round]).unwrap();
        let outcome = remote_write::append(&tsdb, &request, now_ms()).unwrap();
        assert!(outcome.errors.is_empty(), "{:?}", outcome.errors);
        outcome.samples_written as usize
    });
    let append = append.saturating_sub(wire_labels);
    // The receiver's way: its series cache, warm after the first request, finds each series'
    // reference without building its labels. Only decoding is subtracted here.
    let cache = remote_write::SeriesCache::default();
    let cached_requests: Vec<Vec<u8>> = (0..=DECODE_ROUNDS)
        .map(|round| v1_request(&labels, base, DECODE_ROUNDS + 1 + round))
        .collect();
    let first = wire::decode_v1(&cached_requests[0]).unwrap();
    remote_write::append_cached(&tsdb, &first, now_ms(), &cache).unwrap();
    let mut round = 0;
    let (append_cached, _) = best_of(DECODE_ROUNDS, || {
        round += 1;
        let request = wire::decode_v1(&cached_requests[round]).unwrap();
        let outcome = remote_write::append_cached(&tsdb, &request, now_ms(), &cache).unwrap();
        assert!(outcome.errors.is_empty(), "{:?}", outcome.errors);
        outcome.samples_written as usize
    });
    let append_cached = append_cached.saturating_sub(wire_v1);
    let per_sample = |time: Duration| time.as_nanos() as f64 / samples as f64;
    println!(
        "#   {:<44} {:>9}   {:>10}",
        "step", "ns/sample", "ms/request"
    );
    for (step, time) in [
        ("snappy decompress", snappy),
        ("prost decode (owned strings)", prost_decode),
        ("prost decode + Labels per series", prost_labels),
        ("zero-copy decode 1.0", wire_v1),
        ("zero-copy decode 1.0 + Labels per series", wire_labels),
        ("zero-copy decode 2.0", wire_v2),
        ("TSDB append + commit (rest of append)", append),
        ("series cache + TSDB append + commit", append_cached),
    ] {
        println!(
            "#   {step:<44} {:>9.1}   {:>10.3}",
            per_sample(time),
            time.as_secs_f64() * 1000.0
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Phase `rw`.

struct Row {
    name: String,
    tocsin: Option<f64>,
    prometheus: Option<f64>,
    /// `true` when higher is better.
    higher_better: bool,
    goal: &'static str,
}

struct PostOutcome {
    accepted_samples: u64,
    wall: Duration,
    cpu: Duration,
    errors: u64,
    first_error: Option<String>,
}

/// Posts every client's requests in order, one thread per client, and measures the server.
fn post_all(
    server: &Server,
    shards: &Arc<Vec<Vec<Vec<u8>>>>,
    content_type: &'static str,
    version: &'static str,
) -> Result<PostOutcome, String> {
    let accepted = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let first_error = Arc::new(std::sync::Mutex::new(None::<String>));
    let mut conns = Vec::new();
    for _ in 0..shards.len() {
        conns.push(server.conn(IO_TIMEOUT)?);
    }
    let cpu_before = server.cpu_time()?;
    let started = Instant::now();
    let threads: Vec<_> = conns
        .into_iter()
        .enumerate()
        .map(|(shard, mut conn)| {
            let shards = Arc::clone(shards);
            let accepted = Arc::clone(&accepted);
            let errors = Arc::clone(&errors);
            let first_error = Arc::clone(&first_error);
            std::thread::spawn(move || {
                let headers = [
                    ("Content-Type", content_type),
                    ("Content-Encoding", "snappy"),
                    ("X-Prometheus-Remote-Write-Version", version),
                ];
                for body in &shards[shard] {
                    match conn.request_with("POST", "/api/v1/write", &headers, body) {
                        Ok((204, _)) => {
                            accepted.fetch_add((RW_SERIES * RW_SAMPLES) as u64, Ordering::Relaxed);
                        }
                        Ok((status, text)) => {
                            errors.fetch_add(1, Ordering::Relaxed);
                            let mut first = first_error.lock().unwrap();
                            if first.is_none() {
                                *first = Some(format!(
                                    "HTTP {status}: {}",
                                    String::from_utf8_lossy(&text[..text.len().min(300)])
                                ));
                            }
                        }
                        Err(error) => {
                            errors.fetch_add(1, Ordering::Relaxed);
                            first_error.lock().unwrap().get_or_insert(error);
                        }
                    }
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().map_err(|_| "client thread panicked")?;
    }
    let wall = started.elapsed();
    let cpu = server.cpu_time()?.saturating_sub(cpu_before);
    let first_error = first_error.lock().unwrap().clone();
    Ok(PostOutcome {
        accepted_samples: accepted.load(Ordering::Relaxed),
        wall,
        cpu,
        errors: errors.load(Ordering::Relaxed),
        first_error,
    })
}

/// A system, the protocol it was sent, and per round (samples per CPU-second, samples/s).
type RwResults<'a> = (&'a str, Protocol, Vec<(f64, f64)>);

/// Per system: samples/s per server CPU-second and wall samples/s, medians over the rounds.
fn rw_phase(systems: &[System]) -> Vec<Row> {
    let base = base_ms();
    let encode = |protocol: Protocol| -> Arc<Vec<Vec<Vec<u8>>>> {
        Arc::new(
            (0..RW_CLIENTS)
                .map(|shard| {
                    let labels = shard_labels(shard);
                    (0..RW_REQUESTS)
                        .map(|request| {
                            let raw = match protocol {
                                Protocol::V1 => v1_request(&labels, base, request),
                                Protocol::V2 => v2_request(&labels, base, request),
                            };
                            compress(&raw)
                        })
                        .collect()
                })
                .collect(),
        )
    };
    let v1 = encode(Protocol::V1);
    let v2 = encode(Protocol::V2);
    let bytes = |shards: &Vec<Vec<Vec<u8>>>| shards.iter().flatten().map(Vec::len).sum::<usize>();
    println!(
        "# rw: {RW_CLIENTS} clients x {RW_REQUESTS} requests x {RW_SERIES} series x {RW_SAMPLES} samples = {} samples a round; 1.0 {:.1} MB, 2.0 {:.1} MB snappy",
        RW_CLIENTS * RW_REQUESTS * RW_SERIES * RW_SAMPLES,
        bytes(&v1) as f64 / 1e6,
        bytes(&v2) as f64 / 1e6
    );
    let config = "global:\n  scrape_interval: 1m\n";
    let mut results: Vec<RwResults> = Vec::new();
    let mut runs: Vec<(&System, Protocol)> = Vec::new();
    for system in systems {
        runs.push((system, Protocol::V1));
        if matches!(system, System::Tocsin(_)) {
            runs.push((system, Protocol::V2));
        }
    }
    for round in 0..RW_ROUNDS {
        for &(system, protocol) in &runs {
            let (shards, version) = match protocol {
                Protocol::V1 => (&v1, "0.1.0"),
                Protocol::V2 => (&v2, "2.0.0"),
            };
            let content_type: &'static str = match protocol {
                Protocol::V1 => "application/x-protobuf",
                Protocol::V2 => "application/x-protobuf;proto=io.prometheus.write.v2.Request",
            };
            let outcome = system
                .start(config)
                .and_then(|server| post_all(&server, shards, content_type, version));
            match outcome {
                Ok(outcome) => {
                    let per_cpu =
                        outcome.accepted_samples as f64 / outcome.cpu.as_secs_f64().max(0.01);
                    let wall = outcome.accepted_samples as f64 / outcome.wall.as_secs_f64();
                    println!(
                        "# rw round {round} {} {}: {} samples accepted in {:.2}s wall, server CPU {:.2}s: {:.0} samples/CPU-s, {:.0} samples/s; {} failed requests{}",
                        system.name(),
                        protocol.message(),
                        outcome.accepted_samples,
                        outcome.wall.as_secs_f64(),
                        outcome.cpu.as_secs_f64(),
                        per_cpu,
                        wall,
                        outcome.errors,
                        outcome
                            .first_error
                            .map(|e| format!(" (first: {e})"))
                            .unwrap_or_default()
                    );
                    match results
                        .iter_mut()
                        .find(|(name, p, _)| *name == system.name() && *p == protocol)
                    {
                        Some((_, _, rates)) => rates.push((per_cpu, wall)),
                        None => results.push((system.name(), protocol, vec![(per_cpu, wall)])),
                    }
                }
                Err(error) => println!("# rw round {round} {}: failed: {error}", system.name()),
            }
        }
    }
    let pick = |name: &str, protocol: Protocol, wall: bool| {
        results
            .iter()
            .find(|(n, p, _)| *n == name && *p == protocol)
            .and_then(|(_, _, rates)| {
                median(
                    rates
                        .iter()
                        .map(|&(cpu, w)| if wall { w } else { cpu })
                        .collect(),
                )
            })
    };
    vec![
        Row {
            name: "remote write 1.0: samples per server CPU-second".into(),
            tocsin: pick("tocsin", Protocol::V1, false),
            prometheus: pick("prometheus", Protocol::V1, false),
            higher_better: true,
            goal: "; goal >= 3x",
        },
        Row {
            name: format!("remote write 1.0: samples/s ({RW_CLIENTS} clients)"),
            tocsin: pick("tocsin", Protocol::V1, true),
            prometheus: pick("prometheus", Protocol::V1, true),
            higher_better: true,
            goal: "",
        },
        Row {
            name: "remote write 2.0: samples per server CPU-second".into(),
            tocsin: pick("tocsin", Protocol::V2, false),
            prometheus: None,
            higher_better: true,
            goal: " (Prometheus 2.42 has no 2.0 receiver)",
        },
    ]
}

// ---------------------------------------------------------------------------------------------
// Phase `scrape`.

/// Serves `body` on `listener` with keep-alive, counting requests.
fn serve_exposition(listener: TcpListener, body: Arc<String>, served: Arc<AtomicU64>) {
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        let body = Arc::clone(&body);
        let served = Arc::clone(&served);
        std::thread::spawn(move || {
            let Ok(write_half) = stream.try_clone() else {
                return;
            };
            let mut writer = write_half;
            let mut reader = BufReader::new(stream);
            let mut line = String::new();
            loop {
                // A request head; GET requests have no body.
                let mut close = false;
                loop {
                    line.clear();
                    match reader.read_line(&mut line) {
                        Ok(0) | Err(_) => return,
                        Ok(_) if line == "\r\n" || line == "\n" => break,
                        Ok(_) => {
                            if line.to_ascii_lowercase().starts_with("connection: close") {
                                close = true;
                            }
                        }
                    }
                }
                served.fetch_add(1, Ordering::Relaxed);
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\nContent-Length: {}\r\n\r\n",
                    body.len()
                );
                if writer.write_all(head.as_bytes()).is_err()
                    || writer.write_all(body.as_bytes()).is_err()
                    || close
                {
                    return;
                }
            }
        });
    }
}

fn scrape_phase(systems: &[System]) -> Vec<Row> {
    let fixture = std::fs::read_to_string(FIXTURE).unwrap();
    let samples_per_scrape = fixture
        .lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .count() as u64;
    let body = Arc::new(fixture);
    let served = Arc::new(AtomicU64::new(0));
    let mut targets = Vec::new();
    for _ in 0..SCRAPE_TARGETS {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        targets.push(format!("'{}'", listener.local_addr().unwrap()));
        let body = Arc::clone(&body);
        let served = Arc::clone(&served);
        std::thread::spawn(move || serve_exposition(listener, body, served));
    }
    println!(
        "# scrape: {SCRAPE_TARGETS} targets x {samples_per_scrape} samples (node_exporter 1.5 fixture, {} bytes) every 1s; {}s warm-up, {}s measured",
        body.len(),
        SCRAPE_WARMUP.as_secs(),
        SCRAPE_WINDOW.as_secs()
    );
    let config = format!(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n\
         scrape_configs:\n  - job_name: node\n    static_configs:\n      - targets: [{}]\n",
        targets.join(", ")
    );
    let mut results: Vec<(&str, Vec<(f64, f64)>)> = Vec::new();
    for round in 0..SCRAPE_ROUNDS {
        for system in systems {
            let measured = system.start(&config).and_then(|server| {
                std::thread::sleep(SCRAPE_WARMUP);
                let (cpu_before, served_before) =
                    (server.cpu_time()?, served.load(Ordering::Relaxed));
                let started = Instant::now();
                std::thread::sleep(SCRAPE_WINDOW);
                let cpu = server.cpu_time()?.saturating_sub(cpu_before);
                let scrapes = served.load(Ordering::Relaxed) - served_before;
                Ok((cpu, scrapes, started.elapsed()))
            });
            match measured {
                Ok((cpu, scrapes, wall)) => {
                    let samples = scrapes * samples_per_scrape;
                    let cpu_ms_per_million =
                        cpu.as_secs_f64() * 1000.0 / (samples.max(1) as f64 / 1e6);
                    let rate = samples as f64 / wall.as_secs_f64();
                    println!(
                        "# scrape round {round} {}: {scrapes} scrapes ({samples} samples) in {:.1}s, server CPU {:.2}s: {cpu_ms_per_million:.0} ms CPU per 1M samples",
                        system.name(),
                        wall.as_secs_f64(),
                        cpu.as_secs_f64()
                    );
                    match results.iter_mut().find(|(name, _)| *name == system.name()) {
                        Some((_, values)) => values.push((cpu_ms_per_million, rate)),
                        None => results.push((system.name(), vec![(cpu_ms_per_million, rate)])),
                    }
                }
                Err(error) => println!("# scrape round {round} {}: failed: {error}", system.name()),
            }
            // Let the old server's connections close before the next one scrapes.
            std::thread::sleep(Duration::from_millis(500));
        }
    }
    let pick = |name: &str, rate: bool| {
        results
            .iter()
            .find(|(n, _)| *n == name)
            .and_then(|(_, values)| {
                median(
                    values
                        .iter()
                        .map(|&(cpu, r)| if rate { r } else { cpu })
                        .collect(),
                )
            })
    };
    vec![
        Row {
            name: "scrape: server CPU per 1M samples (ms)".into(),
            tocsin: pick("tocsin", false),
            prometheus: pick("prometheus", false),
            higher_better: false,
            goal: "; goal <= 0.5x",
        },
        Row {
            name: "scrape: samples/s scraped".into(),
            tocsin: pick("tocsin", true),
            prometheus: pick("prometheus", true),
            higher_better: true,
            goal: " (same load for both)",
        },
    ]
}

// ---------------------------------------------------------------------------------------------
// Output.

fn figure(value: Option<f64>) -> String {
    match value {
        None => "n/a".to_string(),
        Some(v) if v >= 1000.0 => format!("{v:.0}"),
        Some(v) => format!("{v:.2}"),
    }
}

fn print_rows(rows: &[Row]) {
    if rows.is_empty() {
        return;
    }
    println!(
        "{:<52} {:>12} {:>12}   ratio (tocsin/prometheus)",
        "benchmark", "tocsin", "prometheus"
    );
    for row in rows {
        let ratio = match (row.tocsin, row.prometheus) {
            (Some(t), Some(p)) if p > 0.0 => format!(
                "{:.2}x ({} is better){}",
                t / p,
                if row.higher_better { "higher" } else { "lower" },
                row.goal
            ),
            _ => format!("n/a{}", row.goal),
        };
        println!(
            "{:<52} {:>12} {:>12}   {ratio}",
            row.name,
            figure(row.tocsin),
            figure(row.prometheus)
        );
    }
    let _ = std::io::stdout().flush();
}
