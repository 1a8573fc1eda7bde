//! Tocsin's rule manager against Prometheus 2.42 (+ Alertmanager 0.25), side by side.
//!
//! Run with `cargo bench --bench rules` (cargo builds `target/release/tocsin` first, because a
//! bench target gets `CARGO_BIN_EXE_tocsin`). See `benches/README.md` for what is measured.
//! Nothing here asserts on timings: it prints figures.
//!
//! 1. Rule evaluation: 1,000 rules (half recording, half alerting) over 100k series. The data is
//!    generated once as OpenMetrics text and turned into blocks by `promtool tsdb
//!    create-blocks-from openmetrics`; each server gets its own copy (Tocsin under
//!    `<storage.path>/tsdb/`), so both evaluate over exactly the same series. Figures come from
//!    each server's own `prometheus_rule_*` metrics and its CPU time in `/proc`.
//! 2. Sample-to-notification delay: a scrape target served here flips a value across a
//!    threshold; the delay is measured until a webhook served here receives the firing alert.
//!    Tocsin alone (rules, then its own alerting core) against Prometheus + Alertmanager.
//!
//! Servers are real processes on 127.0.0.1, one at a time, killed when dropped (also on panic).
#![allow(clippy::unwrap_used, clippy::print_stdout)]

#[path = "common/figures.rs"]
mod figures;
#[path = "common/http.rs"]
mod http;
#[path = "common/process.rs"]
mod process;

use process::{Server, copy_dir};
use std::fmt::Write as _;
use std::io::{BufRead, BufReader, BufWriter, Read, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// 100 jobs x 500 instances of a counter and of a gauge: 100k series.
const JOBS: usize = 100;
const INSTANCES: usize = 500;
/// The data: one sample a minute over the quarter hour before the bench starts. Rules look
/// back over 15 minutes, so they see all of it for as long as the bench runs (a few minutes);
/// the data cannot reach into the future, or Prometheus's head would refuse the rules' own
/// samples as older than its newest block.
const SAMPLE_INTERVAL_S: i64 = 60;
const DATA_SPAN_S: i64 = 15 * 60;
/// 10 groups of 100 rules; in each, even rules record and odd rules alert.
const GROUPS: usize = 10;
const RULES_PER_GROUP: usize = 100;
const EVAL_INTERVAL: &str = "10s";
/// Evaluation is measured over this window, once every group has run twice.
const WARM_UP_LIMIT: Duration = Duration::from_secs(90);
const MEASURE: Duration = Duration::from_secs(40);
/// Delay phase: flips and the bound on waiting for each notification.
const FLIPS: usize = 10;
const NOTIFY_LIMIT: Duration = Duration::from_secs(30);
const READY_TIMEOUT: Duration = Duration::from_secs(120);
const IO_TIMEOUT: Duration = Duration::from_secs(60);

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --all-targets` only checks that it builds.
    if !std::env::args().any(|arg| arg == "--bench") {
        println!("benchmark skipped: run it with `cargo bench`");
        return;
    }
    let tocsin = PathBuf::from(env!("CARGO_BIN_EXE_tocsin"));
    // Where they are missing, their phases report the failed start.
    let prometheus =
        process::prometheus_binary().unwrap_or_else(|| PathBuf::from("/usr/bin/prometheus"));
    let alertmanager = process::alertmanager_binary()
        .unwrap_or_else(|| PathBuf::from("/usr/bin/prometheus-alertmanager"));
    println!("# tocsin: {}", process::version(&tocsin));
    println!("# prometheus: {}", process::version(&prometheus));
    println!("# alertmanager: {}", process::version(&alertmanager));
    println!(
        "# machine: {} CPUs",
        std::thread::available_parallelism().map_or(0, usize::from)
    );
    let started = Instant::now();
    let mut rows: Vec<(String, Option<f64>, Option<f64>, &str)> = Vec::new();

    match dataset() {
        Ok(data) => {
            let ours = report("tocsin", evaluation(System::Tocsin, &tocsin, &data));
            let theirs = report(
                "prometheus",
                evaluation(System::Prometheus, &prometheus, &data),
            );
            rows.push((
                "rules/s per evaluation (1k rules, 100k series)".into(),
                ours.map(|e| e.rules_per_second),
                theirs.map(|e| e.rules_per_second),
                "higher is better",
            ));
            rows.push((
                "rules per CPU second".into(),
                ours.map(|e| e.rules_per_cpu_second),
                theirs.map(|e| e.rules_per_cpu_second),
                "higher is better",
            ));
            rows.push((
                "group evaluation, 100 rules (ms)".into(),
                ours.map(|e| e.group_seconds * 1000.0),
                theirs.map(|e| e.group_seconds * 1000.0),
                "lower is better",
            ));
        }
        Err(error) => println!("# dataset failed: {error}"),
    }

    let ours = report("tocsin", delays_tocsin(&tocsin));
    let theirs = report(
        "prometheus+alertmanager",
        delays_prometheus(&prometheus, &alertmanager),
    );
    let sorted = |delays: &Vec<f64>| {
        let mut delays = delays.clone();
        delays.sort_by(f64::total_cmp);
        delays
    };
    let (ours, theirs) = (ours.as_ref().map(sorted), theirs.as_ref().map(sorted));
    for (label, pick) in [("p50", 0.50), ("p99", 0.99)] {
        rows.push((
            format!("sample to webhook {label} (ms)"),
            ours.as_ref().and_then(|d| figures::percentile(d, pick)),
            theirs.as_ref().and_then(|d| figures::percentile(d, pick)),
            "lower is better",
        ));
    }

    println!("# total time {:.0} s", started.elapsed().as_secs_f64());
    let mut table = format!(
        "{:<48} {:>10} {:>12}   ratio (tocsin/prometheus)\n",
        "benchmark", "tocsin", "prometheus"
    );
    let show = |v: Option<f64>| v.map_or("n/a".to_string(), |v| format!("{v:.1}"));
    for (name, ours, theirs, direction) in rows {
        let ratio = match (ours, theirs) {
            (Some(a), Some(b)) if b > 0.0 => format!("{:.2}x ({direction})", a / b),
            _ => "n/a".to_string(),
        };
        let _ = writeln!(
            table,
            "{name:<48} {:>10} {:>12}   {ratio}",
            show(ours),
            show(theirs)
        );
    }
    print!("{table}");
}

fn report<T>(name: &str, result: Result<T, String>) -> Option<T> {
    match result {
        Ok(value) => Some(value),
        Err(error) => {
            println!("# {name} failed: {error}");
            None
        }
    }
}

#[derive(Clone, Copy, PartialEq)]
enum System {
    Tocsin,
    Prometheus,
}

fn now_s() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

struct Dataset {
    _dir: tempfile::TempDir,
    blocks: PathBuf,
}

/// The 100k series as OpenMetrics, then as blocks.
fn dataset() -> Result<Dataset, String> {
    let began = Instant::now();
    let dir = tempfile::tempdir().map_err(|e| format!("tempdir: {e}"))?;
    let om = dir.path().join("data.om");
    let file = std::fs::File::create(&om).map_err(|e| format!("create {}: {e}", om.display()))?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    // Whole seconds, a little in the past so the newest sample is never ahead of the servers.
    let end_s = now_s() - 5;
    let start_s = end_s - DATA_SPAN_S;
    let write = |out: &mut BufWriter<std::fs::File>, text: String| {
        out.write_all(text.as_bytes())
            .map_err(|e| format!("write {}: {e}", om.display()))
    };
    write(&mut out, "# TYPE bench_requests counter\n".into())?;
    for job in 0..JOBS {
        for instance in 0..INSTANCES {
            let rate = (instance % 7 + 1) as f64;
            let mut text = String::new();
            for (k, t) in (start_s..=end_s)
                .step_by(SAMPLE_INTERVAL_S as usize)
                .enumerate()
            {
                let _ = writeln!(
                    text,
                    "bench_requests_total{{job=\"j{job}\",instance=\"i{instance}\"}} {} {t}",
                    k as f64 * rate * SAMPLE_INTERVAL_S as f64
                );
            }
            write(&mut out, text)?;
        }
    }
    write(&mut out, "# TYPE bench_temperature gauge\n".into())?;
    for job in 0..JOBS {
        for instance in 0..INSTANCES {
            // 0..99 spread over instances: each alerting rule (threshold 97) fires for 2%.
            let value = ((instance * 37 + job) % 100) as f64;
            let mut text = String::new();
            for t in (start_s..=end_s).step_by(SAMPLE_INTERVAL_S as usize) {
                let _ = writeln!(
                    text,
                    "bench_temperature{{job=\"j{job}\",instance=\"i{instance}\"}} {value} {t}"
                );
            }
            write(&mut out, text)?;
        }
    }
    write(&mut out, "# EOF\n".into())?;
    out.flush().map_err(|e| format!("flush: {e}"))?;
    drop(out);
    let blocks = dir.path().join("blocks");
    let output = Command::new("promtool")
        .args(["tsdb", "create-blocks-from", "openmetrics"])
        .arg(&om)
        .arg(&blocks)
        .output()
        .map_err(|e| format!("run promtool: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "promtool failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    std::fs::remove_file(&om).map_err(|e| format!("remove {}: {e}", om.display()))?;
    println!(
        "# dataset: {} series x {} samples in {:.0} s",
        2 * JOBS * INSTANCES,
        DATA_SPAN_S / SAMPLE_INTERVAL_S + 1,
        began.elapsed().as_secs_f64()
    );
    Ok(Dataset { _dir: dir, blocks })
}

/// The 1,000 rules: a recording rule per job (`sum by (job) (rate(...[15m]))`) and an alerting
/// rule per job (the latest temperature above 97), spread over 10 groups.
fn rules_file() -> String {
    let mut text = String::from("groups:\n");
    for group in 0..GROUPS {
        let _ = write!(
            text,
            "  - name: bench-{group}\n    interval: {EVAL_INTERVAL}\n    rules:\n"
        );
        for index in 0..RULES_PER_GROUP {
            let job = (group * RULES_PER_GROUP + index) / 2 % JOBS;
            if index % 2 == 0 {
                let _ = write!(
                    text,
                    "      - record: job:bench_requests:rate15m_{group}_{index}\n        expr: sum by (job) (rate(bench_requests_total{{job=\"j{job}\"}}[15m]))\n"
                );
            } else {
                let _ = write!(
                    text,
                    "      - alert: BenchHot_{group}_{index}\n        expr: last_over_time(bench_temperature{{job=\"j{job}\"}}[15m]) > 97\n        labels:\n          severity: page\n"
                );
            }
        }
    }
    text
}

fn start(
    system: System,
    binary: &Path,
    config: &str,
    rules: &str,
    blocks: Option<&Path>,
) -> Result<Server, String> {
    let dir = tempfile::tempdir().map_err(|e| format!("tempdir: {e}"))?;
    let listen = format!("127.0.0.1:{}", process::free_port()?);
    let config_path = dir.path().join("prometheus.yml");
    std::fs::write(&config_path, config).map_err(|e| format!("write config: {e}"))?;
    std::fs::write(dir.path().join("rules.yml"), rules).map_err(|e| format!("write rules: {e}"))?;
    let storage = dir.path().join("data");
    let mut command = Command::new(binary);
    match system {
        System::Tocsin => {
            if let Some(blocks) = blocks {
                copy_dir(blocks, &storage.join("tsdb"))?;
            }
            command
                .arg("--config.file")
                .arg(&config_path)
                .arg("--storage.path")
                .arg(&storage)
                .args(["--web.listen-address", &listen, "--log.level", "warn"]);
        }
        System::Prometheus => {
            if let Some(blocks) = blocks {
                copy_dir(blocks, &storage)?;
            }
            command
                .arg(format!("--config.file={}", config_path.display()))
                .arg(format!("--storage.tsdb.path={}", storage.display()))
                .arg(format!("--web.listen-address={listen}"))
                .arg("--log.level=warn");
        }
    }
    Server::spawn(command, listen, dir, READY_TIMEOUT)
}

/// The sum over every series of `name` in the server's `/metrics`, and how many series.
fn metric_sum(server: &Server, name: &str) -> Result<(f64, usize), String> {
    let mut conn = server.conn(IO_TIMEOUT)?;
    let (status, body) = conn.request("GET", "/metrics", b"")?;
    if status != 200 {
        return Err(format!("GET /metrics: {status}"));
    }
    let text = String::from_utf8_lossy(&body);
    let mut sum = 0.0;
    let mut count = 0;
    for line in text.lines() {
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        if !(rest.starts_with('{') || rest.starts_with(' ')) {
            continue;
        }
        let value = rest
            .rsplit_once('}')
            .map_or(rest, |(_, value)| value)
            .split_whitespace()
            .next()
            .and_then(|v| v.parse::<f64>().ok())
            .ok_or_else(|| format!("cannot read {line:?}"))?;
        sum += value;
        count += 1;
    }
    Ok((sum, count))
}

#[derive(Clone, Copy)]
struct Evaluation {
    rules_per_second: f64,
    rules_per_cpu_second: f64,
    group_seconds: f64,
}

fn evaluation(system: System, binary: &Path, data: &Dataset) -> Result<Evaluation, String> {
    let config =
        format!("global:\n  evaluation_interval: {EVAL_INTERVAL}\nrule_files:\n  - rules.yml\n");
    let server = start(system, binary, &config, &rules_file(), Some(&data.blocks))?;
    let name = if system == System::Tocsin {
        "tocsin"
    } else {
        "prometheus"
    };
    // Warm up: every group evaluated at least twice (`for` state restored, caches filled).
    let deadline = Instant::now() + WARM_UP_LIMIT;
    let total_rules = (GROUPS * RULES_PER_GROUP) as f64;
    loop {
        let (evaluations, _) = metric_sum(&server, "prometheus_rule_evaluations_total")?;
        if evaluations >= 2.0 * total_rules {
            break;
        }
        if Instant::now() > deadline {
            return Err(format!(
                "{name}: only {evaluations} rule evaluations after {WARM_UP_LIMIT:?}\n{}",
                server.log_tail()
            ));
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let (evaluations_before, _) = metric_sum(&server, "prometheus_rule_evaluations_total")?;
    let cpu_before = server.cpu_time()?;
    let mut durations = Vec::new();
    let window_end = Instant::now() + MEASURE;
    while Instant::now() < window_end {
        std::thread::sleep(Duration::from_secs(5));
        let (sum, groups) = metric_sum(&server, "prometheus_rule_group_last_duration_seconds")?;
        if groups != GROUPS {
            return Err(format!("{name}: {groups} groups in /metrics"));
        }
        durations.push(sum);
    }
    let (evaluations_after, _) = metric_sum(&server, "prometheus_rule_evaluations_total")?;
    let cpu = server.cpu_time()?.saturating_sub(cpu_before).as_secs_f64();
    let (failures, _) = metric_sum(&server, "prometheus_rule_evaluation_failures_total")?;
    let (samples, _) = metric_sum(&server, "prometheus_rule_group_last_evaluation_samples")?;
    durations.sort_by(f64::total_cmp);
    // The median of the sampled sums of every group's last duration: one full round.
    let round = durations[durations.len() / 2];
    let evaluated = evaluations_after - evaluations_before;
    println!(
        "# {name}: one round of {total_rules} rules {:.0} ms (sum of group durations, median of {}); {evaluated} evaluations in {cpu:.1} CPU s; {failures} failures; {samples} samples per round",
        round * 1000.0,
        durations.len()
    );
    if failures > 0.0 {
        return Err(format!("{name}: {failures} rule evaluations failed"));
    }
    Ok(Evaluation {
        rules_per_second: total_rules / round,
        rules_per_cpu_second: if cpu > 0.0 { evaluated / cpu } else { 0.0 },
        group_seconds: round / GROUPS as f64,
    })
}

/// Reads one request's head and body; `None` when the client went away.
fn read_request(stream: &TcpStream) -> Option<String> {
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let mut head = String::new();
    loop {
        let mut line = String::new();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => return None,
            Ok(_) if line == "\r\n" => break,
            Ok(_) => head.push_str(&line),
        }
        if head.len() > 64 * 1024 {
            return None;
        }
    }
    let length: usize = head
        .lines()
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, value)| value.trim().parse().ok())
        .unwrap_or(0);
    if length > 16 << 20 {
        return None;
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some(String::from_utf8_lossy(&body).into_owned())
}

fn respond(mut stream: TcpStream, body: &str) {
    let _ = write!(
        stream,
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.flush();
}

/// Serves `bench_flip <value>`; the bench flips the value.
fn start_target() -> Result<(u16, Arc<AtomicU64>), String> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("bind: {e}"))?;
    let port = listener.local_addr().map_err(|e| e.to_string())?.port();
    let value = Arc::new(AtomicU64::new(0f64.to_bits()));
    let shared = Arc::clone(&value);
    // Ends with the bench process.
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            if read_request(&stream).is_some() {
                let v = f64::from_bits(shared.load(Ordering::SeqCst));
                respond(
                    stream,
                    &format!("# TYPE bench_flip gauge\nbench_flip {v}\n"),
                );
            }
        }
    });
    Ok((port, value))
}

/// Records when each webhook notification arrived, with its `status`.
type Received = Arc<Mutex<Vec<(Instant, String)>>>;

fn start_hook() -> Result<(u16, Received), String> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("bind: {e}"))?;
    let port = listener.local_addr().map_err(|e| e.to_string())?.port();
    let received: Received = Arc::new(Mutex::new(Vec::new()));
    let record = Arc::clone(&received);
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            if let Some(body) = read_request(&stream) {
                let at = Instant::now();
                let status = serde_json::from_str::<serde_json::Value>(&body)
                    .ok()
                    .and_then(|v| v["status"].as_str().map(str::to_string))
                    .unwrap_or_default();
                record.lock().unwrap().push((at, status));
                respond(stream, "");
            }
        }
    });
    Ok((port, received))
}

const FLIP_RULES: &str = "groups:\n  - name: flip\n    interval: 1s\n    rules:\n      - alert: Flipped\n        expr: bench_flip > 0.5\n";

fn route(hook_port: u16) -> String {
    format!(
        "route:\n  receiver: hook\n  group_by: [alertname]\n  group_wait: 0s\n  group_interval: 1s\n  repeat_interval: 1h\nreceivers:\n  - name: hook\n    webhook_configs:\n      - url: http://127.0.0.1:{hook_port}/hook\n"
    )
}

fn scrape_config(target_port: u16) -> String {
    format!(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - rules.yml\nscrape_configs:\n  - job_name: flip\n    static_configs:\n      - targets: ['127.0.0.1:{target_port}']\n"
    )
}

/// Flips the target `FLIPS` times; each time, the delay until a firing notification arrives,
/// then waits for the resolved one before the next flip.
fn flip_delays(value: &AtomicU64, received: &Received, name: &str) -> Result<Vec<f64>, String> {
    let wait_for = |status: &str, after: Instant| -> Result<Instant, String> {
        let deadline = Instant::now() + NOTIFY_LIMIT;
        loop {
            if let Some((at, _)) = received
                .lock()
                .unwrap()
                .iter()
                .find(|(at, s)| *at >= after && s == status)
            {
                return Ok(*at);
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "{name}: no {status} notification within {NOTIFY_LIMIT:?}"
                ));
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    };
    // Let the first scrapes and evaluations happen with the value low.
    std::thread::sleep(Duration::from_secs(3));
    let mut delays = Vec::with_capacity(FLIPS);
    for _ in 0..FLIPS {
        let flipped = Instant::now();
        value.store(1f64.to_bits(), Ordering::SeqCst);
        let fired = wait_for("firing", flipped)?;
        delays.push(fired.duration_since(flipped).as_secs_f64() * 1000.0);
        let lowered = Instant::now();
        value.store(0f64.to_bits(), Ordering::SeqCst);
        wait_for("resolved", lowered)?;
        // Not in step with the scrape and evaluation ticks.
        std::thread::sleep(Duration::from_millis(337));
    }
    println!(
        "# {name}: delays (ms) {:?}",
        delays.iter().map(|d| d.round()).collect::<Vec<_>>()
    );
    Ok(delays)
}

fn delays_tocsin(binary: &Path) -> Result<Vec<f64>, String> {
    let (target_port, value) = start_target()?;
    let (hook_port, received) = start_hook()?;
    let mut config = scrape_config(target_port);
    config.push_str("alertmanager:\n");
    for line in route(hook_port).lines() {
        let _ = writeln!(config, "  {line}");
    }
    let _server = start(System::Tocsin, binary, &config, FLIP_RULES, None)?;
    flip_delays(&value, &received, "tocsin")
}

fn delays_prometheus(prometheus: &Path, alertmanager: &Path) -> Result<Vec<f64>, String> {
    let (target_port, value) = start_target()?;
    let (hook_port, received) = start_hook()?;
    let am_dir = tempfile::tempdir().map_err(|e| format!("tempdir: {e}"))?;
    let am_config = am_dir.path().join("alertmanager.yml");
    std::fs::write(&am_config, route(hook_port)).map_err(|e| format!("write: {e}"))?;
    let am_listen = format!("127.0.0.1:{}", process::free_port()?);
    let mut command = Command::new(alertmanager);
    command
        .arg(format!("--config.file={}", am_config.display()))
        .arg(format!(
            "--storage.path={}",
            am_dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address={am_listen}"))
        .arg("--cluster.listen-address=")
        .arg("--log.level=warn");
    let _alertmanager = Server::spawn(command, am_listen.clone(), am_dir, READY_TIMEOUT)?;
    let config = format!(
        "{}alerting:\n  alertmanagers:\n    - static_configs:\n        - targets: ['{am_listen}']\n",
        scrape_config(target_port)
    );
    let _server = start(System::Prometheus, prometheus, &config, FLIP_RULES, None)?;
    flip_delays(&value, &received, "prometheus+alertmanager")
}
