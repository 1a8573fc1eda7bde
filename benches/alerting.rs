//! Tocsin against Alertmanager 0.25, side by side on this machine under the same load.
//!
//! Run with `cargo bench --bench alerting` (cargo builds `target/release/tocsin` first, because
//! a bench target gets `CARGO_BIN_EXE_tocsin`). See `benches/README.md` for what each figure
//! means and what the goals are. Nothing here asserts on timings: it prints figures.
//!
//! Both servers are started as real processes on 127.0.0.1 with a fresh storage directory each,
//! one phase at a time (never both at once, so they do not compete for the CPU), and are killed
//! when their guard is dropped, also on panic.
#![allow(clippy::unwrap_used, clippy::print_stdout)]

#[path = "common/figures.rs"]
mod figures;
#[path = "common/http.rs"]
mod http;
#[path = "common/process.rs"]
mod process;
use figures::{median, percentile};
use process::{Server, cpu_time, load_average};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Alerts per `POST /api/v2/alerts` request.
const BATCH: usize = 100;
/// Phase 1: client threads and the bounds of the run (whichever comes first).
const POST_THREADS: usize = 4;
const POST_ALERTS: usize = 200_000;
const POST_TIME_LIMIT: Duration = Duration::from_secs(20);
/// Phase 1 runs this many times per system, each on a fresh server; the median is reported.
const POST_ROUNDS: usize = 3;
/// Phases 2 and 3: alerts stored before measuring RSS and `GET` latency.
const STORED_ALERTS: usize = 50_000;
const STORE_TIME_LIMIT: Duration = Duration::from_secs(60);
/// How long to let a server settle before reading its RSS.
const SETTLE: Duration = Duration::from_secs(2);
/// Phases 3 and 4: `GET` samples (and a time bound on collecting them).
const GET_SAMPLES: usize = 30;
const GET_MIN_SAMPLES: usize = 5;
const GET_TIME_LIMIT: Duration = Duration::from_secs(30);
/// Phase 4: inhibition rules and alerts.
const INHIBIT_RULES: usize = 100;
const INHIBIT_ALERTS: usize = 10_000;
/// Start-up and per-request bounds.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
const IO_TIMEOUT: Duration = Duration::from_secs(120);

fn main() {
    // `cargo bench` passes `--bench`; any other launch (`cargo test --all-targets`) only checks
    // that the bench builds, since a run takes a minute and needs a release build.
    if !std::env::args().any(|arg| arg == "--bench") {
        println!("benchmark skipped: run it with `cargo bench`");
        return;
    }
    let only = std::env::var("ALERTING_BENCH_ONLY").unwrap_or_default();
    let mut systems = Vec::new();
    if only.is_empty() || only == "tocsin" {
        systems.push(System::Tocsin(PathBuf::from(env!("CARGO_BIN_EXE_tocsin"))));
    }
    if only.is_empty() || only == "alertmanager" {
        match process::alertmanager_binary() {
            Some(path) => systems.push(System::Alertmanager(path)),
            None => println!(
                "alertmanager not found (set ALERTMANAGER_BIN or `apt-get install prometheus-alertmanager`); \
                 its column will read n/a"
            ),
        }
    }
    for system in &systems {
        println!("# {}: {}", system.name(), process::version(system.binary()));
    }
    println!(
        "# machine: {} CPUs; load: {POST_THREADS} client threads, batches of {BATCH} alerts",
        std::thread::available_parallelism().map_or(0, usize::from)
    );

    println!("# load average before: {}", load_average());
    let started = Instant::now();
    let results = run_interleaved(&systems);
    let pick = |name: &str| {
        systems
            .iter()
            .zip(&results)
            .find(|(system, _)| system.name() == name)
            .map(|(_, results)| results)
    };
    let (tocsin, alertmanager) = (pick("tocsin"), pick("alertmanager"));
    print_table(tocsin, alertmanager);
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
    Alertmanager(PathBuf),
}

impl System {
    fn name(&self) -> &'static str {
        match self {
            System::Tocsin(_) => "tocsin",
            System::Alertmanager(_) => "alertmanager",
        }
    }

    fn binary(&self) -> &Path {
        match self {
            System::Tocsin(path) | System::Alertmanager(path) => path,
        }
    }

    /// Starts the system with `alertmanager_yml` as its Alertmanager configuration.
    fn start(&self, alertmanager_yml: &str) -> Result<Server, String> {
        let tocsin = matches!(self, System::Tocsin(_));
        process::start_alerting(self.binary(), tocsin, alertmanager_yml, READY_TIMEOUT)
    }
}

// ---------------------------------------------------------------------------------------------
// Load.

/// Configuration shared by both systems: one route to a receiver with no integrations, so
/// nothing is ever sent, plus `inhibit_rules` inhibition rules.
fn alertmanager_config(inhibit_rules: usize) -> String {
    let mut text = String::from(
        "global:\n  resolve_timeout: 5m\n\
         route:\n  receiver: blackhole\n  group_by: [alertname]\n  group_wait: 30s\n  \
         group_interval: 5m\n  repeat_interval: 4h\n\
         receivers:\n  - name: blackhole\n",
    );
    if inhibit_rules > 0 {
        text.push_str("inhibit_rules:\n");
        for rule in 0..inhibit_rules {
            let _ = write!(
                text,
                "  - source_matchers: ['severity=\"critical\"', 'rule=\"r{rule}\"']\n    \
                 target_matchers: ['severity=\"warning\"', 'rule=\"r{rule}\"']\n    \
                 equal: [instance]\n"
            );
        }
    }
    text
}

/// One postable alert with a label set distinct for every `id`.
fn push_alert(out: &mut String, id: usize, severity: &str, rule: usize, instance: usize) {
    let _ = write!(
        out,
        "{{\"labels\":{{\"alertname\":\"BenchAlert{}\",\"job\":\"bench\",\"instance\":\"host-{instance}\",\
         \"severity\":\"{severity}\",\"rule\":\"r{rule}\",\"id\":\"{id}\"}},\
         \"annotations\":{{\"summary\":\"benchmark alert {id}\",\"description\":\"synthetic load for the side-by-side benchmark\"}},\
         \"generatorURL\":\"http://127.0.0.1:9090/graph?g0.expr=up\"}}",
        id % 10
    );
}

/// Batches of plain (non-inhibiting) alerts with ids `first..first + count`.
fn plain_batches(first: usize, count: usize) -> Vec<Vec<u8>> {
    (first..first + count)
        .step_by(BATCH)
        .map(|start| {
            let end = (start + BATCH).min(first + count);
            let mut body = String::from("[");
            for id in start..end {
                if id > start {
                    body.push(',');
                }
                push_alert(&mut body, id, "info", id % INHIBIT_RULES, id % 1000);
            }
            body.push(']');
            body.into_bytes()
        })
        .collect()
}

/// 10k alerts for the inhibition phase: alert `i` belongs to rule `i % 100`; one in ten of each
/// rule's alerts is a critical source, the rest warning targets, spread over 25 instances, so
/// one target in nine shares its rule and instance with a source and is inhibited.
fn inhibition_batches() -> Vec<Vec<u8>> {
    (0..INHIBIT_ALERTS)
        .step_by(BATCH)
        .map(|start| {
            let end = (start + BATCH).min(INHIBIT_ALERTS);
            let mut body = String::from("[");
            for id in start..end {
                if id > start {
                    body.push(',');
                }
                let rule = id % INHIBIT_RULES;
                let k = id / INHIBIT_RULES;
                let severity = if k.is_multiple_of(10) {
                    "critical"
                } else {
                    "warning"
                };
                push_alert(&mut body, id, severity, rule, k % 25);
            }
            body.push(']');
            body.into_bytes()
        })
        .collect()
}

struct PostOutcome {
    accepted: u64,
    elapsed: Duration,
    errors: u64,
    first_error: Option<String>,
}

/// Posts `batches` from `threads` keep-alive connections, stopping after `time_limit`.
fn post_batches(
    server: &Server,
    batches: Arc<Vec<Vec<u8>>>,
    threads: usize,
    time_limit: Duration,
) -> Result<PostOutcome, String> {
    let next = Arc::new(AtomicUsize::new(0));
    let accepted = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let mut conns = Vec::new();
    for _ in 0..threads {
        conns.push(server.conn(IO_TIMEOUT)?);
    }
    let started = Instant::now();
    let handles: Vec<_> = conns
        .into_iter()
        .map(|mut conn| {
            let batches = Arc::clone(&batches);
            let next = Arc::clone(&next);
            let accepted = Arc::clone(&accepted);
            let errors = Arc::clone(&errors);
            std::thread::spawn(move || {
                let mut first_error = None;
                while started.elapsed() < time_limit {
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    let Some(batch) = batches.get(index) else {
                        break;
                    };
                    match conn.request("POST", "/api/v2/alerts", batch) {
                        Ok((200, _)) => {
                            accepted.fetch_add(BATCH as u64, Ordering::Relaxed);
                        }
                        Ok((status, body)) => {
                            errors.fetch_add(1, Ordering::Relaxed);
                            first_error.get_or_insert_with(|| {
                                format!(
                                    "HTTP {status}: {}",
                                    String::from_utf8_lossy(&body[..body.len().min(300)])
                                )
                            });
                            if errors.load(Ordering::Relaxed) > 10 {
                                break;
                            }
                        }
                        Err(error) => {
                            errors.fetch_add(1, Ordering::Relaxed);
                            first_error.get_or_insert(error);
                            break;
                        }
                    }
                }
                first_error
            })
        })
        .collect();
    let mut first_error = None;
    for handle in handles {
        if let Some(error) = handle.join().unwrap() {
            first_error.get_or_insert(error);
        }
    }
    Ok(PostOutcome {
        accepted: accepted.load(Ordering::Relaxed),
        elapsed: started.elapsed(),
        errors: errors.load(Ordering::Relaxed),
        first_error,
    })
}

/// What a `GET /api/v2/alerts` returned: how many alerts, and how many were suppressed.
struct AlertCounts {
    total: usize,
    suppressed: usize,
    bytes: usize,
}

fn count_alerts(body: &[u8]) -> Result<AlertCounts, String> {
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| format!("GET /api/v2/alerts: bad JSON: {e}"))?;
    let alerts = value
        .as_array()
        .ok_or("GET /api/v2/alerts: not a JSON array")?;
    let suppressed = alerts
        .iter()
        .filter(|alert| alert["status"]["state"] == "suppressed")
        .count();
    Ok(AlertCounts {
        total: alerts.len(),
        suppressed,
        bytes: body.len(),
    })
}

struct Latency {
    p50: Duration,
    p99: Duration,
    samples: usize,
    counts: AlertCounts,
}

/// Times `GET /api/v2/alerts` (the whole response read) over one keep-alive connection.
fn get_latency(server: &Server) -> Result<Latency, String> {
    let mut conn = server.conn(IO_TIMEOUT)?;
    // One untimed request to warm up and to check the answer.
    let (status, body) = conn.request("GET", "/api/v2/alerts", b"")?;
    if status != 200 {
        return Err(format!(
            "GET /api/v2/alerts: HTTP {status}: {}",
            String::from_utf8_lossy(&body[..body.len().min(300)])
        ));
    }
    let counts = count_alerts(&body)?;
    let started = Instant::now();
    let mut samples = Vec::new();
    while samples.len() < GET_SAMPLES
        && (samples.len() < GET_MIN_SAMPLES || started.elapsed() < GET_TIME_LIMIT)
    {
        let begin = Instant::now();
        let (status, _) = conn.request("GET", "/api/v2/alerts", b"")?;
        samples.push(begin.elapsed());
        if status != 200 {
            return Err(format!("GET /api/v2/alerts: HTTP {status}"));
        }
    }
    samples.sort();
    Ok(Latency {
        p50: percentile(&samples, 0.50).unwrap_or_default(),
        p99: percentile(&samples, 0.99).unwrap_or_default(),
        samples: samples.len(),
        counts,
    })
}

// ---------------------------------------------------------------------------------------------
// Phases.

struct Results {
    post_rate: Result<f64, String>,
    /// Server CPU milliseconds per 1000 accepted alerts during phase 1.
    post_cpu: Result<f64, String>,
    bytes_per_alert: Result<f64, String>,
    get_50k: Result<Latency, String>,
    inhibition: Result<Latency, String>,
}

/// Runs every phase for every system, alternating between the systems inside each phase so
/// that background load on the machine hits both alike.
fn run_interleaved(systems: &[System]) -> Vec<Results> {
    let batches = Arc::new(plain_batches(0, POST_ALERTS));
    let mut rates: Vec<Vec<(f64, f64)>> = systems.iter().map(|_| Vec::new()).collect();
    let mut rate_errors: Vec<Option<String>> = systems.iter().map(|_| None).collect();
    for round in 1..=POST_ROUNDS {
        for (index, system) in systems.iter().enumerate() {
            print!("# round {round}/{POST_ROUNDS} ");
            match phase_post_rate(system, Arc::clone(&batches)) {
                Ok(rate) => rates[index].push(rate),
                Err(error) => rate_errors[index] = Some(error),
            }
        }
    }
    drop(batches);
    let memory: Vec<_> = systems.iter().map(phase_memory_and_get).collect();
    let inhibition: Vec<_> = systems.iter().map(phase_inhibition).collect();
    rates
        .into_iter()
        .zip(rate_errors)
        .zip(memory)
        .zip(inhibition)
        .map(|(((rates, rate_error), memory), inhibition)| {
            let error = rate_error.unwrap_or_else(|| "no rounds".to_string());
            let (post_rate, post_cpu) = match (
                median(rates.iter().map(|r| r.0).collect()),
                median(rates.iter().map(|r| r.1).collect()),
            ) {
                (Some(rate), Some(cpu)) => (Ok(rate), Ok(cpu)),
                _ => (Err(error.clone()), Err(error)),
            };
            let (bytes_per_alert, get_50k) = match memory {
                Ok((bytes, latency)) => (Ok(bytes), latency),
                Err(error) => (Err(error.clone()), Err(error)),
            };
            Results {
                post_rate,
                post_cpu,
                bytes_per_alert,
                get_50k,
                inhibition,
            }
        })
        .collect()
}

/// 1. Alerts/s accepted by `POST /api/v2/alerts`.
///
/// Returns alerts/s and server CPU milliseconds per 1000 alerts.
fn phase_post_rate(system: &System, batches: Arc<Vec<Vec<u8>>>) -> Result<(f64, f64), String> {
    let server = system.start(&alertmanager_config(0))?;
    let cpu_before = server.cpu_time()?;
    let client_before = cpu_time(std::process::id())?;
    let outcome = post_batches(&server, batches, POST_THREADS, POST_TIME_LIMIT)?;
    let cpu = server.cpu_time()?.saturating_sub(cpu_before);
    let client_cpu = cpu_time(std::process::id())?.saturating_sub(client_before);
    let rate = outcome.accepted as f64 / outcome.elapsed.as_secs_f64();
    let cpu_per_1k = cpu.as_secs_f64() * 1000.0 / (outcome.accepted.max(1) as f64 / 1000.0);
    println!(
        "{}: POST accepted {} alerts in {:.2}s = {:.0}/s, CPU server {:.2}s client {:.2}s \
         ({} failed requests){}",
        system.name(),
        outcome.accepted,
        outcome.elapsed.as_secs_f64(),
        rate,
        cpu.as_secs_f64(),
        client_cpu.as_secs_f64(),
        outcome.errors,
        outcome
            .first_error
            .as_deref()
            .map(|e| format!("; first error: {e}"))
            .unwrap_or_default()
    );
    if outcome.accepted == 0 {
        return Err(outcome
            .first_error
            .unwrap_or_else(|| "nothing accepted".to_string()));
    }
    Ok((rate, cpu_per_1k))
}

/// 2. Memory per stored alert, and 3. `GET /api/v2/alerts` latency with those alerts stored.
fn phase_memory_and_get(system: &System) -> Result<(f64, Result<Latency, String>), String> {
    let server = system.start(&alertmanager_config(0))?;
    // Warm the HTTP path up so that its buffers are not counted as alert memory.
    let mut conn = server.conn(IO_TIMEOUT)?;
    conn.request("POST", "/api/v2/alerts", b"[]")?;
    conn.request("GET", "/api/v2/alerts", b"")?;
    drop(conn);
    std::thread::sleep(SETTLE);
    let before = server.rss_bytes()?;
    let batches = Arc::new(plain_batches(0, STORED_ALERTS));
    let outcome = post_batches(&server, batches, POST_THREADS, STORE_TIME_LIMIT)?;
    if outcome.accepted == 0 {
        return Err(outcome
            .first_error
            .unwrap_or_else(|| "nothing accepted".to_string()));
    }
    std::thread::sleep(SETTLE);
    let after = server.rss_bytes()?;
    let per_alert = (after as f64 - before as f64) / outcome.accepted as f64;
    println!(
        "# {}: RSS {:.1} MiB before, {:.1} MiB after storing {} alerts",
        system.name(),
        before as f64 / 1048576.0,
        after as f64 / 1048576.0,
        outcome.accepted
    );
    let latency = get_latency(&server);
    if let Ok(latency) = &latency {
        println!(
            "# {}: GET returned {} alerts ({:.1} MiB) per request, {} samples",
            system.name(),
            latency.counts.total,
            latency.counts.bytes as f64 / 1048576.0,
            latency.samples
        );
    }
    Ok((per_alert, latency))
}

/// 4. `GET /api/v2/alerts` with 100 inhibition rules and 10k alerts.
fn phase_inhibition(system: &System) -> Result<Latency, String> {
    let server = system.start(&alertmanager_config(INHIBIT_RULES))?;
    let batches = Arc::new(inhibition_batches());
    let outcome = post_batches(&server, batches, POST_THREADS, STORE_TIME_LIMIT)?;
    if outcome.accepted != INHIBIT_ALERTS as u64 {
        return Err(format!(
            "only {} of {INHIBIT_ALERTS} alerts accepted: {}",
            outcome.accepted,
            outcome.first_error.unwrap_or_default()
        ));
    }
    // Inhibition may be applied asynchronously after the POST returns: give it a bounded while
    // to settle, so the timed requests do the full work.
    let expected = expected_inhibited();
    let mut conn = server.conn(IO_TIMEOUT)?;
    for _ in 0..20 {
        let (status, body) = conn.request("GET", "/api/v2/alerts", b"")?;
        if status == 200 && count_alerts(&body)?.suppressed >= expected {
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    drop(conn);
    let latency = get_latency(&server)?;
    println!(
        "# {}: inhibition GET returned {} alerts, {} suppressed (expected {}), {} samples",
        system.name(),
        latency.counts.total,
        latency.counts.suppressed,
        expected,
        latency.samples
    );
    Ok(latency)
}

/// Targets that share rule and instance with a source: the oracle for the inhibition phase.
fn expected_inhibited() -> usize {
    let key = |id: usize| (id % INHIBIT_RULES, (id / INHIBIT_RULES) % 25);
    let is_source = |id: usize| (id / INHIBIT_RULES).is_multiple_of(10);
    let sources: std::collections::HashSet<_> = (0..INHIBIT_ALERTS)
        .filter(|&id| is_source(id))
        .map(key)
        .collect();
    (0..INHIBIT_ALERTS)
        .filter(|&id| !is_source(id) && sources.contains(&key(id)))
        .count()
}

// ---------------------------------------------------------------------------------------------
// Report.

/// Label, goal, how to pick the figure, and whether higher is better.
type Row = (
    &'static str,
    &'static str,
    fn(&Results) -> Result<f64, String>,
    bool,
);

fn print_table(tocsin: Option<&Results>, alertmanager: Option<&Results>) {
    println!();
    println!(
        "{:<44} {:>14} {:>14}   ratio (tocsin/alertmanager)",
        "benchmark", "tocsin", "alertmanager"
    );
    let rows: [Row; 7] = [
        (
            "POST /api/v2/alerts (alerts/s)",
            "goal >= 10x",
            |r| r.post_rate.clone(),
            true,
        ),
        (
            "POST server CPU per 1k alerts (ms)",
            "",
            |r| r.post_cpu.clone(),
            false,
        ),
        (
            "memory per stored alert (bytes, 50k)",
            "goal <= 0.33x",
            |r| r.bytes_per_alert.clone(),
            false,
        ),
        (
            "GET /api/v2/alerts, 50k alerts p50 (ms)",
            "",
            |r| latency_ms(&r.get_50k, |l| l.p50),
            false,
        ),
        (
            "GET /api/v2/alerts, 50k alerts p99 (ms)",
            "",
            |r| latency_ms(&r.get_50k, |l| l.p99),
            false,
        ),
        (
            "inhibition 100 rules x 10k alerts p50 (ms)",
            "",
            |r| latency_ms(&r.inhibition, |l| l.p50),
            false,
        ),
        (
            "inhibition 100 rules x 10k alerts p99 (ms)",
            "",
            |r| latency_ms(&r.inhibition, |l| l.p99),
            false,
        ),
    ];
    let mut errors = Vec::new();
    for (label, goal, pick, higher_is_better) in rows {
        let t = tocsin.map(pick);
        let a = alertmanager.map(pick);
        for (name, value) in [("tocsin", &t), ("alertmanager", &a)] {
            if let Some(Err(error)) = value {
                errors.push(format!("{label} ({name}): {error}"));
            }
        }
        let t = t.and_then(Result::ok);
        let a = a.and_then(Result::ok);
        let ratio = match (t, a) {
            (Some(t), Some(a)) if a != 0.0 => format!(
                "{:.2}x ({} is better){}{}",
                t / a,
                if higher_is_better { "higher" } else { "lower" },
                if goal.is_empty() { "" } else { "; " },
                goal
            ),
            _ => "n/a".to_string(),
        };
        println!(
            "{label:<44} {:>14} {:>14}   {ratio}",
            format_value(t),
            format_value(a)
        );
    }
    for error in errors {
        println!("# error: {error}");
    }
}

fn latency_ms(
    latency: &Result<Latency, String>,
    pick: fn(&Latency) -> Duration,
) -> Result<f64, String> {
    match latency {
        Ok(latency) => Ok(pick(latency).as_secs_f64() * 1000.0),
        Err(error) => Err(error.clone()),
    }
}

fn format_value(value: Option<f64>) -> String {
    match value {
        None => "n/a".to_string(),
        Some(v) if v.abs() >= 100.0 => format!("{v:.0}"),
        Some(v) => format!("{v:.2}"),
    }
}
