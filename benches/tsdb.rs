//! Storage, Tocsin against Prometheus 2.42 on the same data, side by side on this machine.
//!
//! Run with `cargo bench --bench tsdb` (cargo builds `target/release/tocsin` first). See
//! `benches/README.md` for the figures, the goals and how each is measured. Nothing here
//! asserts on timings: it prints figures and ratios.
//!
//! Phases (each system on its own, never both at once):
//! - `append`: in this process, samples per second appended by reference and committed to
//!   existing series by one thread; a commit writes the WAL record (a `write`, no fsync, as
//!   Prometheus's commit) and applies the samples to the head (Tocsin only: Prometheus has no
//!   comparable in-process entry point here).
//! - `bytes`: node_exporter-like data (a few thousand series × 2 h at 15 s) as OpenMetrics
//!   text, turned into a block by `promtool tsdb create-blocks-from openmetrics`, and the same
//!   samples appended through Tocsin's appender and cut into a block by its compaction; chunk
//!   bytes per sample of both blocks.
//! - `memory`: a fresh server of each fed the same series by remote write; RSS growth per
//!   series.
//! - `replay`: the WAL the fed Prometheus left when killed with SIGKILL, opened by a fresh
//!   Prometheus and a fresh Tocsin (copies); time from spawn until `/-/ready` answers 200.
//! - `select`: a block of 1 M series made by promtool, opened by both; latency of queries
//!   selecting many series by matchers.
#![allow(clippy::unwrap_used, clippy::print_stdout, clippy::expect_used)]

#[path = "common/figures.rs"]
mod figures;
#[path = "common/http.rs"]
mod http;
#[path = "common/process.rs"]
mod process;

use process::{Server, copy_dir, rss_bytes};
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tocsin::tsdb::{Labels, Tsdb, TsdbOptions};

const PROMETHEUS: &str = "/usr/bin/prometheus";
const PROMTOOL: &str = "/usr/bin/promtool";
const READY_TIMEOUT: Duration = Duration::from_secs(300);
const IO_TIMEOUT: Duration = Duration::from_secs(60);
const SETTLE: Duration = Duration::from_secs(3);

/// `append`: series, and commits of one sample per series measured.
const APPEND_SERIES: usize = 10_000;
const APPEND_ROUNDS: usize = 200;
/// `bytes`: series and samples per series (2 h at 15 s).
const BYTES_SERIES: usize = 3_000;
const BYTES_SAMPLES: i64 = 480;
const SCRAPE_MS: i64 = 15_000;
/// `memory`/`replay`: series, samples per series (15 s apart), series per request.
const MEMORY_SERIES: usize = 100_000;
const MEMORY_SAMPLES: usize = 10;
const SERIES_PER_REQUEST: usize = 5_000;
/// `replay`: runs per system (the median is reported).
const REPLAY_ROUNDS: usize = 3;
/// `select`: queries per expression (the median is reported).
const SELECT_REPEATS: usize = 7;

fn main() {
    if !std::env::args().any(|arg| arg == "--bench") {
        println!("benchmark skipped: run it with `cargo bench --bench tsdb`");
        return;
    }
    let tocsin = PathBuf::from(env!("CARGO_BIN_EXE_tocsin"));
    let prometheus_present = Path::new(PROMETHEUS).exists() && Path::new(PROMTOOL).exists();
    println!("# tocsin: {}", process::version(&tocsin));
    if prometheus_present {
        println!("# prometheus: {}", process::version(Path::new(PROMETHEUS)));
    } else {
        println!("# {PROMETHEUS} or {PROMTOOL} missing: the Prometheus column reads n/a");
    }
    println!(
        "# machine: {} CPUs",
        std::thread::available_parallelism().map_or(0, usize::from)
    );
    let select_series: usize = std::env::var("TSDB_BENCH_SELECT_SERIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    // `TSDB_BENCH_ONLY=append,open,bytes,memory,select` runs some phases only (`memory` includes
    // `replay`; `replay` alone needs `TSDB_BENCH_REPLAY_FROM`, see below).
    let only = std::env::var("TSDB_BENCH_ONLY").unwrap_or_default();
    let wanted = |phase: &str| only.is_empty() || only.split(',').any(|p| p == phase);
    let started = Instant::now();
    let mut rows: Vec<Row> = Vec::new();

    if wanted("append") {
        let append = append_throughput();
        println!("# append: {append:.0} samples/s");
        rows.push(Row::new(
            "append to existing series (samples/s, 1 thread)",
            Some(append),
            None,
            Better::Higher,
            "goal >= 10M/s/core",
        ));
    }

    if wanted("open") {
        let seconds = open_in_process();
        println!("# open: Tsdb::open replayed the WAL in {seconds:.3} s");
        rows.push(Row::new(
            "WAL replay in process: Tsdb::open (s, 100k x 10, own WAL)",
            Some(seconds),
            None,
            Better::Lower,
            "",
        ));
    }

    let bytes = if wanted("bytes") {
        bytes_per_sample(prometheus_present)
    } else {
        Err("skipped".to_string())
    };
    match bytes {
        Ok((tocsin_bytes, prometheus_bytes)) => rows.push(Row::new(
            "chunk bytes per sample (node_exporter-like, 2h@15s)",
            Some(tocsin_bytes),
            prometheus_bytes,
            Better::Lower,
            "",
        )),
        Err(error) => println!("# bytes: failed: {error}"),
    }

    let memory = if wanted("memory") {
        head_memory(&tocsin, prometheus_present)
    } else {
        Err("skipped".to_string())
    };
    match &memory {
        Ok(result) => rows.push(Row::new(
            "head memory per active series (bytes, RSS delta)",
            Some(result.tocsin),
            result.prometheus,
            Better::Lower,
            "goal <= 1024 and <= 0.33x",
        )),
        Err(error) => println!("# memory: failed: {error}"),
    }
    if wanted("memory") {
        match head_bytes_per_series(MEMORY_SERIES, MEMORY_SAMPLES) {
            Ok(per_series) => rows.push(Row::new(
                "head memory per series, in process (bytes, 100k x 10)",
                Some(per_series),
                None,
                Better::Lower,
                "goal <= 1024",
            )),
            Err(error) => println!("# memory in process: failed: {error}"),
        }
    }
    // `TSDB_BENCH_KEEP_WAL=DIR` keeps a copy of the killed Prometheus's data folder in
    // `DIR/data` (for profiling or reruns); `TSDB_BENCH_REPLAY_FROM=DIR` runs the `replay`
    // phase alone on such a copy (with `TSDB_BENCH_ONLY=replay`), without feeding anew.
    if let (Ok(MemoryResult { wal: Some(wal), .. }), Ok(keep)) =
        (&memory, std::env::var("TSDB_BENCH_KEEP_WAL"))
    {
        let kept = Path::new(&keep).join("data");
        match std::fs::create_dir_all(&keep)
            .map_err(|e| e.to_string())
            .and_then(|()| copy_dir(&wal.path().join("data"), &kept))
        {
            Ok(()) => println!(
                "# replay: Prometheus data folder kept in {}",
                kept.display()
            ),
            Err(error) => println!("# replay: keeping the data folder failed: {error}"),
        }
    }
    let kept_wal = std::env::var("TSDB_BENCH_REPLAY_FROM").ok();
    let replay_source = match (&memory, &kept_wal) {
        (Ok(MemoryResult { wal: Some(wal), .. }), _) => Some(wal.path().to_path_buf()),
        (_, Some(kept)) if wanted("replay") => Some(PathBuf::from(kept)),
        _ => None,
    };
    if let Some(source) = replay_source {
        match wal_replay(&tocsin, &source) {
            Ok((tocsin_s, prometheus_s)) => rows.push(Row::new(
                "WAL replay: spawn to ready (s, Prometheus WAL)",
                Some(tocsin_s),
                Some(prometheus_s),
                Better::Lower,
                "goal <= 0.33x",
            )),
            Err(error) => println!("# replay: failed: {error}"),
        }
    }

    if prometheus_present && wanted("select") {
        match selection(&tocsin, select_series) {
            Ok(results) => {
                for (name, tocsin_ms, prometheus_ms) in results {
                    rows.push(Row::new(
                        &name,
                        Some(tocsin_ms),
                        Some(prometheus_ms),
                        Better::Lower,
                        "",
                    ));
                }
            }
            Err(error) => println!("# select: failed: {error}"),
        }
    }

    println!("# done in {:.0?}", started.elapsed());
    println!();
    println!(
        "{:<62} {:>14} {:>14}   ratio (tocsin/prometheus)",
        "benchmark", "tocsin", "prometheus"
    );
    for row in &rows {
        println!("{}", row.render());
    }
}

#[derive(Clone, Copy)]
enum Better {
    Higher,
    Lower,
}

struct Row {
    name: String,
    tocsin: Option<f64>,
    prometheus: Option<f64>,
    better: Better,
    goal: &'static str,
}

impl Row {
    fn new(
        name: &str,
        tocsin: Option<f64>,
        prometheus: Option<f64>,
        better: Better,
        goal: &'static str,
    ) -> Row {
        Row {
            name: name.to_string(),
            tocsin,
            prometheus,
            better,
            goal,
        }
    }

    fn render(&self) -> String {
        let show = |v: Option<f64>| match v {
            Some(v) if v >= 1000.0 => format!("{v:.0}"),
            Some(v) => format!("{v:.3}"),
            None => "n/a".to_string(),
        };
        let ratio = match (self.tocsin, self.prometheus) {
            (Some(t), Some(p)) if p > 0.0 => {
                let which = match self.better {
                    Better::Higher => "higher is better",
                    Better::Lower => "lower is better",
                };
                format!("{:.2}x ({which})", t / p)
            }
            _ => "n/a".to_string(),
        };
        let goal = if self.goal.is_empty() {
            String::new()
        } else {
            format!("; {}", self.goal)
        };
        format!(
            "{:<62} {:>14} {:>14}   {ratio}{goal}",
            self.name,
            show(self.tocsin),
            show(self.prometheus)
        )
    }
}

/// A small deterministic generator (xorshift64*), so both systems get the same data.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// node_exporter-like series: name, labels.
fn node_series(count: usize) -> Vec<Vec<(String, String)>> {
    const FAMILIES: [(&str, &[&str]); 8] = [
        ("node_cpu_seconds_total", &["cpu", "mode"]),
        ("node_network_receive_bytes_total", &["device"]),
        ("node_network_transmit_packets_total", &["device"]),
        ("node_disk_read_bytes_total", &["device"]),
        ("node_filesystem_avail_bytes", &["device", "mountpoint"]),
        ("node_memory_MemAvailable_bytes", &[]),
        ("node_load1", &[]),
        ("node_vmstat_pgfault", &[]),
    ];
    let mut out = Vec::with_capacity(count);
    let mut index = 0usize;
    while out.len() < count {
        let (name, extra) = FAMILIES[index % FAMILIES.len()];
        let mut labels = vec![
            ("__name__".to_string(), name.to_string()),
            ("instance".to_string(), format!("host-{}:9100", index / 64)),
            ("job".to_string(), "node".to_string()),
        ];
        for (k, label) in extra.iter().enumerate() {
            labels.push((
                label.to_string(),
                format!("v{}", (index / FAMILIES.len() + k) % 16),
            ));
        }
        labels.sort();
        labels.dedup_by(|a, b| a.0 == b.0);
        out.push(labels);
        index += 1;
    }
    // Unique label sets (the `(index / 8 + k) % 16` values repeat for a host).
    for (i, labels) in out.iter_mut().enumerate() {
        labels.push(("series".to_string(), format!("{i}")));
        labels.sort();
    }
    out
}

/// A value stream per series like node_exporter's: counters growing by integer steps, gauges
/// wandering with fractions, some constant.
fn node_values(series: usize, samples: i64, seed: u64) -> Vec<Vec<f64>> {
    let mut rng = Rng(seed | 1);
    (0..series)
        .map(|i| {
            let kind = i % 4;
            let mut value = rng.below(1_000_000) as f64;
            (0..samples)
                .map(|_| {
                    match kind {
                        0 => value += rng.below(200) as f64,
                        1 => value += (rng.below(10_000) as f64) / 100.0,
                        2 => {}
                        _ => value = (rng.below(4000) as f64) / 1000.0,
                    }
                    value
                })
                .collect()
        })
        .collect()
}

/// Samples per second appended to existing series: by series reference (the fast path
/// scrapes and remote write take), and by label set (printed as a progress line).
/// Seconds `Tsdb::open` takes to replay a WAL of [`MEMORY_SERIES`] series × [`MEMORY_SAMPLES`]
/// samples written by Tocsin's appender in commits of [`SERIES_PER_REQUEST`] series, the
/// shape the `replay` phase's Prometheus WAL has (without its Snappy compression).
fn open_in_process() -> f64 {
    let dir = tempfile::tempdir().unwrap();
    let series: Vec<Labels> = (0..MEMORY_SERIES)
        .map(|i| {
            Labels::new([
                ("__name__", format!("bench_metric_{}", i % 100)),
                ("cpu", format!("{}", i % 8)),
                ("instance", format!("host-{}:9100", i / 100)),
                ("job", "node".to_string()),
                (
                    "mode",
                    ["idle", "user", "system", "iowait"][i % 4].to_string(),
                ),
            ])
        })
        .collect();
    let first_t = now_ms() - (MEMORY_SAMPLES as i64 + 1) * SCRAPE_MS;
    {
        let tsdb = Tsdb::open(dir.path(), TsdbOptions::default()).unwrap();
        for round in 0..MEMORY_SAMPLES as i64 {
            for batch in series.chunks(SERIES_PER_REQUEST) {
                let mut appender = tsdb.appender();
                for labels in batch {
                    appender
                        .append(labels, first_t + round * SCRAPE_MS, round as f64)
                        .unwrap();
                }
                appender.commit().unwrap();
            }
        }
    }
    let began = Instant::now();
    let tsdb = Tsdb::open(dir.path(), TsdbOptions::default()).unwrap();
    let seconds = began.elapsed().as_secs_f64();
    assert_eq!(
        tsdb.replay_report().samples,
        (MEMORY_SERIES * MEMORY_SAMPLES) as u64
    );
    seconds
}

fn append_throughput() -> f64 {
    let dir = tempfile::tempdir().unwrap();
    let tsdb = Tsdb::open(dir.path(), TsdbOptions::default()).unwrap();
    let series: Vec<Labels> = node_series(APPEND_SERIES)
        .into_iter()
        .map(Labels::new)
        .collect();
    let start = now_ms();
    let mut appender = tsdb.appender();
    let refs: Vec<u64> = series
        .iter()
        .map(|labels| appender.append(labels, start, 0.0).unwrap())
        .collect();
    appender.commit().unwrap();
    let rounds = APPEND_ROUNDS as i64;
    let began = Instant::now();
    for round in 1..=rounds {
        let mut appender = tsdb.appender();
        for (i, labels) in series.iter().enumerate() {
            appender
                .append(labels, start + round * SCRAPE_MS, (round * i as i64) as f64)
                .unwrap();
        }
        appender.commit().unwrap();
    }
    let by_labels = (APPEND_SERIES * APPEND_ROUNDS) as f64 / began.elapsed().as_secs_f64();
    println!("# append by label set: {by_labels:.0} samples/s");
    let fsyncs_before = tsdb.stats().wal_fsyncs;
    let mut in_append = Duration::ZERO;
    let mut in_commit = Duration::ZERO;
    let began = Instant::now();
    for round in rounds + 1..=2 * rounds {
        let appending = Instant::now();
        let mut appender = tsdb.appender();
        for (i, &series_ref) in refs.iter().enumerate() {
            appender
                .append_ref(
                    series_ref,
                    start + round * SCRAPE_MS,
                    (round * i as i64) as f64,
                )
                .unwrap();
        }
        let committing = Instant::now();
        in_append += committing - appending;
        appender.commit().unwrap();
        in_commit += committing.elapsed();
    }
    let elapsed = began.elapsed().as_secs_f64();
    let samples = (APPEND_SERIES * APPEND_ROUNDS) as f64;
    println!(
        "# append by reference: {:.1} ns/sample in append_ref, {:.1} ns/sample in commit (WAL write, no fsync; {} fsyncs)",
        in_append.as_secs_f64() * 1e9 / samples,
        in_commit.as_secs_f64() * 1e9 / samples,
        tsdb.stats().wal_fsyncs - fsyncs_before,
    );
    samples / elapsed
}

fn chunk_bytes_and_samples(folder: &Path) -> (u64, u64) {
    let mut bytes = 0;
    let mut samples = 0;
    for entry in std::fs::read_dir(folder).unwrap().flatten() {
        let path = entry.path();
        if !path.join("meta.json").exists() {
            continue;
        }
        let meta = tocsin::tsdb::block::read_meta(&path).unwrap();
        samples += meta.stats.num_samples;
        for chunk in std::fs::read_dir(path.join("chunks")).unwrap().flatten() {
            bytes += chunk.metadata().unwrap().len();
        }
    }
    (bytes, samples)
}

fn bytes_per_sample(prometheus_present: bool) -> Result<(f64, Option<f64>), String> {
    let series = node_series(BYTES_SERIES);
    let values = node_values(BYTES_SERIES, BYTES_SAMPLES, 42);
    // Aligned on a 2 h boundary so both make exactly one block.
    let range = 2 * 3600 * 1000;
    let start = (now_ms() - 10 * range) / range * range;
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;

    let tocsin_folder = dir.path().join("tocsin");
    let tsdb = Tsdb::open(&tocsin_folder, TsdbOptions::default()).map_err(|e| e.to_string())?;
    let labels: Vec<Labels> = series.iter().cloned().map(Labels::new).collect();
    for step in 0..BYTES_SAMPLES {
        let mut appender = tsdb.appender();
        for (i, l) in labels.iter().enumerate() {
            appender
                .append(l, start + step * SCRAPE_MS, values[i][step as usize])
                .map_err(|e| e.to_string())?;
        }
        appender.commit().map_err(|e| e.to_string())?;
    }
    // One sample far ahead makes the first range compactable (it stays in the head).
    let mut appender = tsdb.appender();
    appender
        .append(
            &Labels::new([("__name__", "sentinel")]),
            start + 2 * range,
            0.0,
        )
        .map_err(|e| e.to_string())?;
    appender.commit().map_err(|e| e.to_string())?;
    tsdb.compact().map_err(|e| e.to_string())?;
    drop(tsdb);
    let (bytes, samples) = chunk_bytes_and_samples(&tocsin_folder);
    println!("# bytes: tocsin {bytes} chunk bytes for {samples} samples");
    let tocsin_ratio = bytes as f64 / samples.max(1) as f64;
    if !prometheus_present {
        return Ok((tocsin_ratio, None));
    }

    let text_path = dir.path().join("data.om");
    {
        let mut file =
            std::io::BufWriter::new(std::fs::File::create(&text_path).map_err(|e| e.to_string())?);
        let mut current_name = String::new();
        let mut order: Vec<usize> = (0..series.len()).collect();
        // OpenMetrics wants a family's lines together.
        order.sort_by_key(|&i| series[i].iter().find(|(k, _)| k == "__name__").cloned());
        for &i in &order {
            let name = &series[i].iter().find(|(k, _)| k == "__name__").unwrap().1;
            if *name != current_name {
                writeln!(file, "# TYPE {name} gauge").unwrap();
                current_name.clone_from(name);
            }
            let mut label_text = String::new();
            for (k, v) in series[i].iter().filter(|(k, _)| k != "__name__") {
                if !label_text.is_empty() {
                    label_text.push(',');
                }
                let _ = write!(label_text, "{k}=\"{v}\"");
            }
            for step in 0..BYTES_SAMPLES {
                let t = start + step * SCRAPE_MS;
                writeln!(
                    file,
                    "{name}{{{label_text}}} {} {}.{:03}",
                    values[i][step as usize],
                    t / 1000,
                    t % 1000
                )
                .unwrap();
            }
        }
        writeln!(file, "# EOF").unwrap();
    }
    let prometheus_folder = dir.path().join("prometheus");
    let output = Command::new(PROMTOOL)
        .args(["tsdb", "create-blocks-from", "openmetrics"])
        .arg(&text_path)
        .arg(&prometheus_folder)
        .output()
        .map_err(|e| e.to_string())?;
    if !output.status.success() {
        return Err(format!(
            "promtool: {}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    let (bytes, samples) = chunk_bytes_and_samples(&prometheus_folder);
    println!("# bytes: promtool {bytes} chunk bytes for {samples} samples");
    Ok((tocsin_ratio, Some(bytes as f64 / samples.max(1) as f64)))
}

/// Protobuf varint.
fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn put_bytes_field(out: &mut Vec<u8>, field: u64, bytes: &[u8]) {
    put_varint(out, (field << 3) | 2);
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// A snappy-compressed remote-write 1.0 `WriteRequest`: each series with its samples.
/// A series' label pairs and its samples.
type SeriesSamples = (Vec<(String, String)>, Vec<(i64, f64)>);

fn write_request(series: &[SeriesSamples]) -> Vec<u8> {
    let mut request = Vec::new();
    let mut one = Vec::new();
    let mut part = Vec::new();
    for (labels, samples) in series {
        one.clear();
        for (name, value) in labels {
            part.clear();
            put_bytes_field(&mut part, 1, name.as_bytes());
            put_bytes_field(&mut part, 2, value.as_bytes());
            put_bytes_field(&mut one, 1, &part);
        }
        for &(t, v) in samples {
            part.clear();
            put_varint(&mut part, (1 << 3) | 1);
            part.extend_from_slice(&v.to_bits().to_le_bytes());
            put_varint(&mut part, 2 << 3);
            put_varint(&mut part, t as u64);
            put_bytes_field(&mut one, 2, &part);
        }
        put_bytes_field(&mut request, 1, &one);
    }
    snap::raw::Encoder::new().compress_vec(&request).unwrap()
}

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

/// Starts a server on `storage` (inside `dir`) with no scrape jobs.
fn start_server(
    system: System,
    tocsin: &Path,
    dir: tempfile::TempDir,
    storage: &Path,
) -> Result<Server, String> {
    let listen = format!("127.0.0.1:{}", process::free_port()?);
    let config = dir.path().join("prometheus.yml");
    std::fs::write(&config, "global:\n  scrape_interval: 1h\n").map_err(|e| e.to_string())?;
    let command = match system {
        System::Tocsin => {
            let mut command = Command::new(tocsin);
            command
                .arg("--config.file")
                .arg(&config)
                .arg("--storage.path")
                .arg(storage)
                .args(["--web.listen-address", &listen, "--log.level", "warn"]);
            command
        }
        System::Prometheus => {
            let mut command = Command::new(PROMETHEUS);
            command
                .arg(format!("--config.file={}", config.display()))
                .arg(format!("--storage.tsdb.path={}", storage.display()))
                .arg(format!("--web.listen-address={listen}"))
                .args(["--web.enable-remote-write-receiver", "--log.level=warn"]);
            command
        }
    };
    Server::spawn(command, listen, dir, READY_TIMEOUT)
        .map_err(|e| format!("{}: {e}", system.name()))
}

/// The median of measurements taken (there always are some).
fn median_of(values: Vec<f64>) -> f64 {
    figures::median(values).unwrap_or(f64::NAN)
}

/// The bench process's resident memory.
fn own_rss_bytes() -> Result<u64, String> {
    rss_bytes(std::process::id())
}

/// Head memory measured in this process: RSS growth while a fresh [`Tsdb`] takes `series`
/// series (the `memory` phase's labels) × `samples` samples at 15 s, committed 5,000 series
/// at a time, over the series count. The label pairs are made before the first reading; the
/// `Labels` the head keeps are built inside the measured span.
fn head_bytes_per_series(series: usize, samples: usize) -> Result<f64, String> {
    let pairs: Vec<Vec<(String, String)>> = (0..series).map(memory_series_labels).collect();
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let tsdb = Tsdb::open(dir.path(), TsdbOptions::default()).map_err(|e| e.to_string())?;
    let first_t = now_ms() - (samples as i64 + 1) * SCRAPE_MS;
    let before = own_rss_bytes()?;
    for round in 0..samples {
        let t = first_t + round as i64 * SCRAPE_MS;
        for (batch_index, batch) in pairs.chunks(SERIES_PER_REQUEST).enumerate() {
            let mut appender = tsdb.appender();
            for (offset, labels) in batch.iter().enumerate() {
                let index = batch_index * SERIES_PER_REQUEST + offset;
                let value = ((index + round) % 1000) as f64;
                let labels = Labels::new(labels.iter().cloned());
                appender
                    .append(&labels, t, value)
                    .map_err(|e| e.to_string())?;
            }
            appender.commit().map_err(|e| e.to_string())?;
        }
    }
    let after = own_rss_bytes()?;
    let (head_series, head_chunks) = tsdb.head_stats();
    println!(
        "# memory in process: {series} series x {samples} samples: RSS {before} -> {after} bytes, {head_series} series, {head_chunks} chunks, chunks_head {} bytes",
        tsdb.stats().chunks_head_bytes
    );
    Ok(after.saturating_sub(before) as f64 / series as f64)
}

/// The `memory` phase's series `i`: 5 labels like node_exporter's.
fn memory_series_labels(i: usize) -> Vec<(String, String)> {
    vec![
        ("__name__".to_string(), format!("bench_metric_{}", i % 100)),
        ("cpu".to_string(), format!("{}", i % 8)),
        ("instance".to_string(), format!("host-{}:9100", i / 100)),
        ("job".to_string(), "node".to_string()),
        (
            "mode".to_string(),
            ["idle", "user", "system", "iowait"][i % 4].to_string(),
        ),
    ]
}

struct MemoryResult {
    tocsin: f64,
    prometheus: Option<f64>,
    /// The killed Prometheus's data folder, for the replay phase.
    wal: Option<tempfile::TempDir>,
}

fn feed(server: &Server, requests: &[Vec<u8>]) -> Result<(), String> {
    let mut conn = server.conn(IO_TIMEOUT)?;
    let headers = [
        ("Content-Type", "application/x-protobuf"),
        ("Content-Encoding", "snappy"),
        ("X-Prometheus-Remote-Write-Version", "0.1.0"),
    ];
    for (index, body) in requests.iter().enumerate() {
        let began = Instant::now();
        let (status, answer) = conn
            .request_with("POST", "/api/v1/write", &headers, body)
            .map_err(|e| format!("request {index}: {e}"))?;
        if began.elapsed() > Duration::from_secs(5) {
            println!("# memory: request {index} took {:.1?}", began.elapsed());
        }
        if status != 204 && status != 200 {
            return Err(format!(
                "remote write answered {status}: {}",
                String::from_utf8_lossy(&answer)
            ));
        }
    }
    Ok(())
}

fn head_memory(tocsin: &Path, prometheus_present: bool) -> Result<MemoryResult, String> {
    let series: Vec<Vec<(String, String)>> = (0..MEMORY_SERIES).map(memory_series_labels).collect();
    let first_t = now_ms() - (MEMORY_SAMPLES as i64 + 1) * SCRAPE_MS;
    // Round k: every series' k-th sample, in requests of SERIES_PER_REQUEST series.
    let mut requests = Vec::new();
    let mut rng = Rng(7);
    for round in 0..MEMORY_SAMPLES {
        for batch in series.chunks(SERIES_PER_REQUEST) {
            let payload: Vec<_> = batch
                .iter()
                .map(|labels| {
                    (
                        labels.clone(),
                        vec![(first_t + round as i64 * SCRAPE_MS, rng.below(1000) as f64)],
                    )
                })
                .collect();
            requests.push(write_request(&payload));
        }
    }
    let mut result = MemoryResult {
        tocsin: 0.0,
        prometheus: None,
        wal: None,
    };
    let mut systems = vec![System::Tocsin];
    if prometheus_present {
        systems.push(System::Prometheus);
    }
    for system in systems {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let storage = dir.path().join("data");
        let server = start_server(system, tocsin, dir, &storage)?;
        std::thread::sleep(SETTLE);
        let before = rss_bytes(server.pid())?;
        let began = Instant::now();
        feed(&server, &requests)?;
        let fed = began.elapsed();
        std::thread::sleep(SETTLE);
        let after = rss_bytes(server.pid())?;
        let per_series = after.saturating_sub(before) as f64 / MEMORY_SERIES as f64;
        println!(
            "# memory: {} RSS {before} -> {after} bytes for {MEMORY_SERIES} series x {MEMORY_SAMPLES} samples (fed in {fed:.1?})",
            system.name()
        );
        match system {
            System::Tocsin => result.tocsin = per_series,
            System::Prometheus => {
                result.prometheus = Some(per_series);
                // SIGKILL, then keep a copy of its data folder for the replay phase.
                let _ = Command::new("kill")
                    .args(["-KILL", &server.pid().to_string()])
                    .status();
                std::thread::sleep(Duration::from_millis(500));
                let copy = tempfile::tempdir().map_err(|e| e.to_string())?;
                copy_dir(&storage, &copy.path().join("data"))?;
                result.wal = Some(copy);
            }
        }
        drop(server);
    }
    Ok(result)
}

/// Time until ready on a copy of the Prometheus data folder in `source/data`.
fn wal_replay(tocsin: &Path, source: &Path) -> Result<(f64, f64), String> {
    let data = source.join("data");
    let _ = std::fs::remove_file(data.join("lock"));
    let mut tocsin_times = Vec::new();
    let mut prometheus_times = Vec::new();
    for round in 0..REPLAY_ROUNDS {
        for system in [System::Tocsin, System::Prometheus] {
            let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
            let storage = dir.path().join("data");
            let tsdb_folder = match system {
                // Tocsin keeps its TSDB in `<storage.path>/tsdb/`.
                System::Tocsin => {
                    std::fs::create_dir_all(&storage).map_err(|e| e.to_string())?;
                    storage.join("tsdb")
                }
                System::Prometheus => storage.clone(),
            };
            copy_dir(&data, &tsdb_folder)?;
            let began = Instant::now();
            let server = start_server(system, tocsin, dir, &storage)?;
            let seconds = began.elapsed().as_secs_f64();
            // CPU time to ready as well: on a shared machine it varies less than the wall.
            let cpu = server.cpu_time().map_or_else(
                |_| "n/a".to_string(),
                |cpu| format!("{:.2} s", cpu.as_secs_f64()),
            );
            println!(
                "# replay round {round}: {} ready after {seconds:.2} s (CPU {cpu})",
                system.name()
            );
            match system {
                System::Tocsin => tocsin_times.push(seconds),
                System::Prometheus => prometheus_times.push(seconds),
            }
            drop(server);
        }
    }
    Ok((median_of(tocsin_times), median_of(prometheus_times)))
}

/// Queries selecting many of `series` series in a promtool-made block; per query the median
/// latency of both, milliseconds.
fn selection(tocsin: &Path, series: usize) -> Result<Vec<(String, f64, f64)>, String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let range = 2 * 3600 * 1000;
    let t = (now_ms() - 10 * range) / range * range + 60_000;
    let text_path = dir.path().join("select.om");
    {
        let mut file =
            std::io::BufWriter::new(std::fs::File::create(&text_path).map_err(|e| e.to_string())?);
        writeln!(file, "# TYPE bench_select gauge").unwrap();
        for i in 0..series {
            writeln!(
                file,
                "bench_select{{group=\"g{}\",instance=\"host-{}\",job=\"node\",series=\"{i}\"}} {i} {}",
                i % 10,
                i / 100,
                t / 1000
            )
            .unwrap();
        }
        writeln!(file, "# EOF").unwrap();
    }
    let blocks = dir.path().join("blocks");
    let began = Instant::now();
    let output = Command::new(PROMTOOL)
        .args(["tsdb", "create-blocks-from", "openmetrics"])
        .arg(&text_path)
        .arg(&blocks)
        .output()
        .map_err(|e| e.to_string())?;
    if !output.status.success() {
        return Err(format!(
            "promtool: {}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    println!(
        "# select: promtool wrote {series} series in {:.1?}",
        began.elapsed()
    );
    let queries = [
        ("select 1/10 by =", "count(bench_select{group=\"g3\"})"),
        (
            "select 1/10 by = and regex",
            "count(bench_select{group=\"g3\",instance=~\"host-1.*\"})",
        ),
        ("select all by name", "count(bench_select)"),
    ];
    let mut results: Vec<(String, f64, f64)> = queries
        .iter()
        .map(|(name, _)| (format!("{name}, {series} series (ms p50)"), 0.0, 0.0))
        .collect();
    for system in [System::Tocsin, System::Prometheus] {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let storage = dir.path().join("data");
        let tsdb_folder = match system {
            System::Tocsin => storage.join("tsdb"),
            System::Prometheus => storage.clone(),
        };
        copy_dir(&blocks, &tsdb_folder)?;
        let server = start_server(system, tocsin, dir, &storage)?;
        let mut conn = server.conn(IO_TIMEOUT)?;
        for (index, (_, query)) in queries.iter().enumerate() {
            let path = format!(
                "/api/v1/query?query={}&time={}",
                http::percent_encode(query),
                (t + 30_000) / 1000
            );
            let mut latencies = Vec::new();
            let mut answer = String::new();
            for _ in 0..SELECT_REPEATS {
                let began = Instant::now();
                let (status, body) = conn.request("GET", &path, b"")?;
                latencies.push(began.elapsed().as_secs_f64() * 1000.0);
                answer = String::from_utf8_lossy(&body).into_owned();
                if status != 200 {
                    return Err(format!("{}: {query}: {status} {answer}", system.name()));
                }
            }
            println!("# select: {} {query}: {answer}", system.name());
            let p50 = median_of(latencies);
            match system {
                System::Tocsin => results[index].1 = p50,
                System::Prometheus => results[index].2 = p50,
            }
        }
        drop(server);
    }
    Ok(results)
}
