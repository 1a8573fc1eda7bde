//! PromQL query latency: Tocsin against Prometheus 2.42, side by side on the same blocks.
//!
//! Run with `cargo bench --bench promql` (cargo builds `target/release/tocsin` first, because a
//! bench target gets `CARGO_BIN_EXE_tocsin`). See `benches/README.md` for what is measured.
//! Nothing here asserts on timings: it prints figures.
//!
//! The data is generated once as OpenMetrics text and turned into TSDB blocks by
//! `promtool tsdb create-blocks-from openmetrics`; each server then gets its own copy of those
//! blocks (Prometheus in `--storage.tsdb.path`, Tocsin in `--storage.path`/tsdb, which reads
//! Prometheus's block format), so both answer over exactly the same series. Servers are real
//! processes on 127.0.0.1, run one at a time and alternating, killed when dropped.
#![allow(clippy::unwrap_used, clippy::print_stdout)]

#[path = "common/figures.rs"]
mod figures;
#[path = "common/http.rs"]
mod http;
#[path = "common/process.rs"]
mod process;

use std::fmt::Write as _;
use std::io::{BufWriter, Write as _};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use process::{Server, copy_dir, peak_rss_bytes};

/// Scrape interval of the generated data and how much of it there is.
const INTERVAL_S: i64 = 15;
const DATA_SPAN_S: i64 = 3600;
/// `http_requests_total`: 10 jobs x 1,000 instances.
const JOBS: usize = 10;
const INSTANCES: usize = 1_000;
/// `big_requests_total` series (10 jobs x N/10 instances); `PROMQL_BENCH_BIG_SERIES` overrides.
const BIG_SERIES: usize = 100_000;
/// Histogram `latency_seconds`: instances with one series per bucket bound.
const HISTOGRAM_INSTANCES: usize = 200;
const BUCKETS: [&str; 12] = [
    "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "+Inf",
];
/// Range queries cover the last 50 minutes of the data at this step.
const RANGE_S: i64 = 3000;
const STEP_S: i64 = 30;
/// Timed runs of each query per round, bounded in time; two rounds per system.
const RUNS: usize = 5;
const QUERY_TIME_LIMIT: Duration = Duration::from_secs(30);
const ROUNDS: usize = 2;
const READY_TIMEOUT: Duration = Duration::from_secs(120);
const IO_TIMEOUT: Duration = Duration::from_secs(180);

struct Query {
    label: &'static str,
    expr: &'static str,
    range: bool,
}

const QUERIES: &[Query] = &[
    Query {
        label: "rate 10k (instant)",
        expr: "rate(http_requests_total[5m])",
        range: false,
    },
    Query {
        label: "sum by job rate 10k (range)",
        expr: "sum by (job) (rate(http_requests_total[5m]))",
        range: true,
    },
    Query {
        label: "sum by job rate 100k (instant)",
        expr: "sum by (job) (rate(big_requests_total[5m]))",
        range: false,
    },
    Query {
        label: "sum by job rate 100k (range)",
        expr: "sum by (job) (rate(big_requests_total[5m]))",
        range: true,
    },
    Query {
        label: "histogram_quantile (range)",
        expr: "histogram_quantile(0.9, sum by (le) (rate(latency_seconds_bucket[5m])))",
        range: true,
    },
    Query {
        label: "topk 10 rate 10k (range)",
        expr: "topk(10, rate(http_requests_total[5m]))",
        range: true,
    },
    Query {
        label: "join group_left 10k (range)",
        expr: "sum by (os) (rate(http_requests_total[5m]) * on(instance) group_left(os) node_info)",
        range: true,
    },
    Query {
        label: "subquery max_over_time 10k (range)",
        expr: "sum(max_over_time(rate(http_requests_total[5m])[30m:1m]))",
        range: true,
    },
];

#[derive(Clone, Copy, PartialEq)]
enum System {
    Tocsin,
    Prometheus,
}

impl System {
    fn name(self) -> &'static str {
        match self {
            System::Tocsin => "tocsin",
            System::Prometheus => "prometheus",
        }
    }
}

struct Dataset {
    /// The temporary folder holding the blocks, unless they are kept (`PROMQL_BENCH_DATA`).
    _dir: Option<tempfile::TempDir>,
    blocks: PathBuf,
    end_s: i64,
}

fn main() {
    let tocsin = PathBuf::from(env!("CARGO_BIN_EXE_tocsin"));
    let prometheus = std::env::var_os("PROMETHEUS_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/prometheus"));
    let big_series = std::env::var("PROMQL_BENCH_BIG_SERIES")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(BIG_SERIES)
        .max(JOBS);
    let only = std::env::var("PROMQL_BENCH_ONLY").ok();
    let mut systems = vec![System::Tocsin];
    if prometheus.exists() {
        systems.push(System::Prometheus);
    } else {
        println!(
            "# {} not found: Prometheus column is n/a",
            prometheus.display()
        );
    }
    if let Some(only) = &only {
        systems.retain(|s| s.name() == only);
    }
    println!("# {}", process::version(&tocsin));
    if prometheus.exists() {
        println!("# {}", process::version(&prometheus));
    }
    let started = Instant::now();
    let keep = std::env::var_os("PROMQL_BENCH_DATA").map(PathBuf::from);
    let data = match keep.as_deref().and_then(|dir| reuse(dir, big_series)) {
        Some(data) => Ok(data),
        None => generate(big_series, keep.as_deref()),
    };
    let data = match data {
        Ok(data) => data,
        Err(error) => {
            println!("# cannot build the data set: {error}");
            return;
        }
    };
    println!(
        "# data: {} + {} + {} + {} series, {} s at {} s, blocks built in {:.1} s",
        JOBS * INSTANCES,
        big_series,
        HISTOGRAM_INSTANCES * BUCKETS.len(),
        INSTANCES,
        DATA_SPAN_S,
        INTERVAL_S,
        started.elapsed().as_secs_f64()
    );

    // latencies[system][query]: every timed run over all rounds.
    let mut latencies: Vec<Vec<Vec<Duration>>> = systems
        .iter()
        .map(|_| QUERIES.iter().map(|_| Vec::new()).collect())
        .collect();
    let mut series_counts: Vec<Vec<Option<usize>>> =
        systems.iter().map(|_| vec![None; QUERIES.len()]).collect();
    let mut peak_rss: Vec<Option<u64>> = vec![None; systems.len()];
    for round in 0..ROUNDS {
        for (si, &system) in systems.iter().enumerate() {
            let binary = match system {
                System::Tocsin => &tocsin,
                System::Prometheus => &prometheus,
            };
            let server = match start(system, binary, &data) {
                Ok(server) => server,
                Err(error) => {
                    println!("# {} did not start: {error}", system.name());
                    continue;
                }
            };
            for (qi, query) in QUERIES.iter().enumerate() {
                match run_query(&server, query, data.end_s) {
                    Ok((runs, series)) => {
                        println!(
                            "# round {round} {:<10} {:<36} {} series, p50 {:.1} ms",
                            system.name(),
                            query.label,
                            series,
                            ms(figures::percentile(&runs, 0.5).unwrap_or_default())
                        );
                        latencies[si][qi].extend(runs);
                        series_counts[si][qi] = Some(series);
                    }
                    Err(error) => {
                        println!("# round {round} {} {}: {error}", system.name(), query.label)
                    }
                }
            }
            if let Ok(rss) = peak_rss_bytes(server.pid()) {
                peak_rss[si] = Some(peak_rss[si].map_or(rss, |p| p.max(rss)));
            }
        }
    }
    print_table(&systems, &latencies, &series_counts, &peak_rss);
}

/// Blocks a previous run kept in `dir` (`PROMQL_BENCH_DATA`) for the same number of big
/// series, if they are still recent enough for the default retention (15 days).
fn reuse(dir: &Path, big_series: usize) -> Option<Dataset> {
    let stamp = std::fs::read_to_string(dir.join("dataset")).ok()?;
    let (end_s, series) = stamp.trim().split_once(' ')?;
    let (end_s, series): (i64, usize) = (end_s.parse().ok()?, series.parse().ok()?);
    let now_s = SystemTime::now().duration_since(UNIX_EPOCH).ok()?.as_secs() as i64;
    let blocks = dir.join("blocks");
    (series == big_series && now_s - end_s < 10 * 86_400 && blocks.is_dir()).then_some(Dataset {
        _dir: None,
        blocks,
        end_s,
    })
}

/// Writes the OpenMetrics file and builds blocks from it with promtool, in a temporary folder
/// or, to keep them for later runs, in `keep`.
fn generate(big_series: usize, keep: Option<&Path>) -> Result<Dataset, String> {
    let (temporary, root) = match keep {
        Some(dir) => {
            let _ = std::fs::remove_dir_all(dir.join("blocks"));
            std::fs::create_dir_all(dir).map_err(|e| format!("mkdir {}: {e}", dir.display()))?;
            (None, dir.to_path_buf())
        }
        None => {
            let dir = tempfile::tempdir().map_err(|e| format!("tempdir: {e}"))?;
            let root = dir.path().to_path_buf();
            (Some(dir), root)
        }
    };
    let now_s = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(|e| format!("clock: {e}"))?
        .as_secs() as i64;
    // Recent enough that retention keeps it, aligned to the interval.
    let end_s = (now_s - 300) / INTERVAL_S * INTERVAL_S;
    let start_s = end_s - DATA_SPAN_S;
    let om = root.join("data.om");
    let file = std::fs::File::create(&om).map_err(|e| format!("create {}: {e}", om.display()))?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    let steps = DATA_SPAN_S / INTERVAL_S;
    let mut line = String::new();
    let mut write_series = |out: &mut BufWriter<std::fs::File>,
                            series: &str,
                            value: &dyn Fn(i64) -> f64|
     -> Result<(), String> {
        for k in 0..=steps {
            line.clear();
            let _ = writeln!(line, "{series} {} {}", value(k), start_s + k * INTERVAL_S);
            out.write_all(line.as_bytes())
                .map_err(|e| format!("write {}: {e}", om.display()))?;
        }
        Ok(())
    };
    // Counters with a per-series rate (one reset in some series), gauges, classic histograms.
    writeln!(out, "# TYPE http_requests counter").map_err(|e| e.to_string())?;
    for i in 0..JOBS * INSTANCES {
        let series = format!(
            "http_requests_total{{job=\"job-{}\",instance=\"host-{}\"}}",
            i % JOBS,
            i / JOBS
        );
        let rate = (i % 7 + 1) as f64;
        let reset = i % 13 == 0;
        write_series(&mut out, &series, &|k| {
            if reset && k > 120 {
                (k - 120) as f64 * rate
            } else {
                k as f64 * rate
            }
        })?;
    }
    writeln!(out, "# TYPE big_requests counter").map_err(|e| e.to_string())?;
    for i in 0..big_series {
        let series = format!(
            "big_requests_total{{job=\"job-{}\",instance=\"host-{}\"}}",
            i % JOBS,
            i / JOBS
        );
        let rate = (i % 5 + 1) as f64;
        write_series(&mut out, &series, &|k| k as f64 * rate)?;
    }
    for instance in 0..HISTOGRAM_INSTANCES {
        for (b, le) in BUCKETS.iter().enumerate() {
            let series = format!(
                "latency_seconds_bucket{{job=\"api\",instance=\"host-{instance}\",le=\"{le}\"}}"
            );
            // Cumulative: each bound holds at least the one below it.
            let per_step = ((b + 1) * (instance % 3 + 1)) as f64;
            write_series(&mut out, &series, &|k| k as f64 * per_step)?;
        }
    }
    writeln!(out, "# TYPE node_info gauge").map_err(|e| e.to_string())?;
    for instance in 0..INSTANCES {
        let series = format!(
            "node_info{{instance=\"host-{instance}\",os=\"os-{}\"}}",
            instance % 4
        );
        write_series(&mut out, &series, &|_| 1.0)?;
    }
    writeln!(out, "# EOF").map_err(|e| e.to_string())?;
    out.flush()
        .map_err(|e| format!("write {}: {e}", om.display()))?;
    drop(out);

    let blocks = root.join("blocks");
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
    if keep.is_some() {
        std::fs::write(root.join("dataset"), format!("{end_s} {big_series}\n"))
            .map_err(|e| format!("write {}: {e}", root.display()))?;
    }
    Ok(Dataset {
        _dir: temporary,
        blocks,
        end_s,
    })
}

fn start(system: System, binary: &Path, data: &Dataset) -> Result<Server, String> {
    let dir = tempfile::tempdir().map_err(|e| format!("tempdir: {e}"))?;
    let port = process::free_port()?;
    let listen = format!("127.0.0.1:{port}");
    let config = dir.path().join("prometheus.yml");
    std::fs::write(&config, "global:\n  scrape_interval: 15s\n")
        .map_err(|e| format!("write config: {e}"))?;
    let mut command = Command::new(binary);
    match system {
        System::Tocsin => {
            let storage = dir.path().join("data");
            copy_dir(&data.blocks, &storage.join("tsdb"))?;
            command
                .arg("--config.file")
                .arg(&config)
                .arg("--storage.path")
                .arg(&storage)
                .args(["--web.listen-address", &listen, "--log.level", "warn"]);
        }
        System::Prometheus => {
            let storage = dir.path().join("data");
            copy_dir(&data.blocks, &storage)?;
            command
                .arg(format!("--config.file={}", config.display()))
                .arg(format!("--storage.tsdb.path={}", storage.display()))
                .arg(format!("--web.listen-address={listen}"))
                .arg("--log.level=warn");
        }
    }
    Server::spawn(command, listen, dir, READY_TIMEOUT)
}

/// One untimed run (which also counts the result's series), then timed runs.
fn run_query(server: &Server, query: &Query, end_s: i64) -> Result<(Vec<Duration>, usize), String> {
    let expr: String = http::percent_encode(query.expr);
    let path = if query.range {
        format!(
            "/api/v1/query_range?query={expr}&start={}&end={end_s}&step={STEP_S}",
            end_s - RANGE_S
        )
    } else {
        format!("/api/v1/query?query={expr}&time={end_s}")
    };
    let mut conn = server.conn(IO_TIMEOUT)?;
    let body = get_ok(&mut conn, &path)?;
    let series = count_series(&body);
    let mut runs = Vec::with_capacity(RUNS);
    let deadline = Instant::now() + QUERY_TIME_LIMIT;
    while runs.len() < RUNS && (runs.is_empty() || Instant::now() < deadline) {
        let begin = Instant::now();
        get_ok(&mut conn, &path)?;
        runs.push(begin.elapsed());
    }
    runs.sort();
    Ok((runs, series))
}

fn get_ok(conn: &mut http::Conn, path: &str) -> Result<Vec<u8>, String> {
    let (status, body) = conn.request("GET", path, b"")?;
    if status != 200 {
        return Err(format!(
            "HTTP {status}: {}",
            String::from_utf8_lossy(&body[..body.len().min(300)])
        ));
    }
    Ok(body)
}

/// The number of series (or samples) in a query answer: one `"metric"` object each.
fn count_series(body: &[u8]) -> usize {
    let needle = b"\"metric\"";
    body.windows(needle.len()).filter(|w| w == needle).count()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn print_table(
    systems: &[System],
    latencies: &[Vec<Vec<Duration>>],
    series_counts: &[Vec<Option<usize>>],
    peak_rss: &[Option<u64>],
) {
    let index = |system: System| systems.iter().position(|&s| s == system);
    let (tocsin, prometheus) = (index(System::Tocsin), index(System::Prometheus));
    println!();
    println!(
        "{:<36} {:>8} {:>12} {:>12}   ratio (tocsin/prometheus)",
        "p50 latency (ms)", "series", "tocsin", "prometheus"
    );
    for (qi, query) in QUERIES.iter().enumerate() {
        let p50 = |si: Option<usize>| {
            si.and_then(|si| {
                let mut runs = latencies[si][qi].clone();
                runs.sort();
                (!runs.is_empty()).then(|| ms(figures::percentile(&runs, 0.5).unwrap_or_default()))
            })
        };
        let (t, p) = (p50(tocsin), p50(prometheus));
        let count = |si: Option<usize>| si.and_then(|si| series_counts[si][qi]);
        let series = match (count(tocsin), count(prometheus)) {
            (Some(a), Some(b)) if a != b => format!("{a}!={b}"),
            (Some(a), _) | (None, Some(a)) => a.to_string(),
            (None, None) => "n/a".to_string(),
        };
        let ratio = match (t, p) {
            (Some(t), Some(p)) if p > 0.0 => format!("{:.2}x; goal <= 0.5x", t / p),
            _ => "n/a".to_string(),
        };
        println!(
            "{:<36} {:>8} {:>12} {:>12}   {ratio}",
            query.label,
            series,
            format_value(t),
            format_value(p)
        );
    }
    let rss = |si: Option<usize>| si.and_then(|si| peak_rss[si]).map(|b| b as f64 / 1048576.0);
    let (t, p) = (rss(tocsin), rss(prometheus));
    let ratio = match (t, p) {
        (Some(t), Some(p)) if p > 0.0 => format!("{:.2}x (lower is better)", t / p),
        _ => "n/a".to_string(),
    };
    println!(
        "{:<36} {:>8} {:>12} {:>12}   {ratio}",
        "peak RSS (MiB)",
        "",
        format_value(t),
        format_value(p)
    );
}

fn format_value(value: Option<f64>) -> String {
    match value {
        Some(v) if v >= 100.0 => format!("{v:.0}"),
        Some(v) => format!("{v:.2}"),
        None => "n/a".to_string(),
    }
}
