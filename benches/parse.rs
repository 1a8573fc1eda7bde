//! Exposition parser throughput on the node_exporter 1.5 fixture, in MB/s and samples/s.
//!
//! Run with `cargo bench --bench parse`. The fixture
//! (`../shared/fixtures/exposition/node_exporter-1.5.0.prom.txt`) is repeated to about 4 MiB
//! (the series repeat, which the parsers do not care about). The OpenMetrics input is the same
//! text with `untyped` spelled `unknown` and a final `# EOF`. Each figure is the best of
//! several timed rounds after a warm-up, on whatever else the machine is doing: read them as
//! rough figures, compare runs on one machine only.
//!
//! Workloads:
//! - `entries`: iterate every entry (what parsing costs on its own);
//! - `+ labels`: also walk every sample's labels and hash names and values (decoded, without
//!   allocating), roughly what a scraper does to find a series;
//! - `promtool check metrics` (Prometheus 2.42's, `/usr/bin/promtool`, if installed): a
//!   different workload, as a rough reference only. It is a separate process that parses with
//!   client_golang's `expfmt` text parser, builds metric families and lints them; start-up is
//!   measured on empty input and subtracted.
//!
//! Nothing here asserts on timings: it prints figures.
#![allow(clippy::unwrap_used, clippy::print_stdout)]

use std::hash::{BuildHasher, Hasher};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use tocsin::ingest::parse::{Entry, OpenMetricsParser, TextParser};

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../shared/fixtures/exposition/node_exporter-1.5.0.prom.txt"
);
const TARGET_BYTES: usize = 4 << 20;
const ROUNDS: usize = 15;
const PROMTOOL: &str = "/usr/bin/promtool";

fn main() {
    let fixture = std::fs::read_to_string(FIXTURE).unwrap();
    let copies = TARGET_BYTES.div_ceil(fixture.len());
    // Each copy's metric names get a prefix of their own (`c7_node_...`), so the input is one
    // valid exposition (no family declared twice, no duplicate series), as promtool requires.
    let mut text = String::with_capacity(TARGET_BYTES + copies * 1024);
    let mut openmetrics = String::with_capacity(TARGET_BYTES + copies * 1024);
    for copy in 0..copies {
        for line in fixture.lines() {
            let renamed = match line.get(..7) {
                Some(keyword @ ("# HELP " | "# TYPE ")) => {
                    format!("{keyword}c{copy}_{}", &line[7..])
                }
                _ => format!("c{copy}_{line}"),
            };
            text.push_str(&renamed);
            text.push('\n');
            match renamed.strip_suffix(" untyped") {
                Some(head) if renamed.starts_with("# TYPE ") => {
                    openmetrics.push_str(head);
                    openmetrics.push_str(" unknown");
                }
                _ => openmetrics.push_str(&renamed),
            }
            openmetrics.push('\n');
        }
    }
    openmetrics.push_str("# EOF\n");
    let text = text.into_bytes();
    let openmetrics = openmetrics.into_bytes();

    let text_samples = count_text(&text);
    let om_samples = count_openmetrics(&openmetrics);
    assert_eq!(text_samples, om_samples);
    println!(
        "# input: node_exporter 1.5 fixture x{copies}, names prefixed per copy: {:.2} MiB text, \
         {:.2} MiB OpenMetrics, {text_samples} samples each",
        mib(text.len()),
        mib(openmetrics.len())
    );
    println!(
        "{:<42} {:>10} {:>14} {:>12}",
        "workload", "MB/s", "samples/s", "ns/sample"
    );

    let hasher = std::hash::RandomState::new();
    report("text 0.0.4: entries", text.len(), text_samples, || {
        count_text(&text)
    });
    report(
        "text 0.0.4: entries + labels",
        text.len(),
        text_samples,
        || hash_text(&text, &hasher),
    );
    report(
        "OpenMetrics 1.0: entries",
        openmetrics.len(),
        om_samples,
        || count_openmetrics(&openmetrics),
    );
    report(
        "OpenMetrics 1.0: entries + labels",
        openmetrics.len(),
        om_samples,
        || hash_openmetrics(&openmetrics, &hasher),
    );

    if Path::new(PROMTOOL).exists() {
        promtool(&text, text_samples);
    } else {
        println!(
            "# {PROMTOOL} not found: install the Debian `prometheus` package for the reference"
        );
    }
}

fn mib(bytes: usize) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// Times `run` (which returns a checksum) over warm-up plus `ROUNDS` rounds and prints the best.
fn report(name: &str, bytes: usize, samples: usize, mut run: impl FnMut() -> usize) {
    std::hint::black_box(run());
    let mut best = Duration::MAX;
    for _ in 0..ROUNDS {
        let start = Instant::now();
        std::hint::black_box(run());
        best = best.min(start.elapsed());
    }
    print_row(name, bytes, samples, best);
}

fn print_row(name: &str, bytes: usize, samples: usize, elapsed: Duration) {
    let seconds = elapsed.as_secs_f64();
    println!(
        "{:<42} {:>10.0} {:>14.0} {:>12.1}",
        name,
        bytes as f64 / 1e6 / seconds,
        samples as f64 / seconds,
        seconds * 1e9 / samples as f64
    );
}

fn count_text(input: &[u8]) -> usize {
    TextParser::new(input)
        .map(|e| matches!(e.unwrap(), Entry::Sample(_)) as usize)
        .sum()
}

fn count_openmetrics(input: &[u8]) -> usize {
    OpenMetricsParser::new(input)
        .map(|e| matches!(e.unwrap(), Entry::Sample(_)) as usize)
        .sum()
}

fn hash_entry(entry: Entry<'_>, hasher: &impl BuildHasher) -> u64 {
    let Entry::Sample(sample) = entry else {
        return 0;
    };
    let mut h = hasher.build_hasher();
    for chunk in sample.name.chunks() {
        h.write(chunk.as_bytes());
    }
    for label in sample.labels {
        h.write_u8(0xff);
        for chunk in label.name.chunks() {
            h.write(chunk.as_bytes());
        }
        h.write_u8(0xfe);
        for chunk in label.value.chunks() {
            h.write(chunk.as_bytes());
        }
    }
    h.write_u64(sample.value.to_bits());
    h.finish()
}

fn hash_text(input: &[u8], hasher: &impl BuildHasher) -> usize {
    TextParser::new(input)
        .map(|e| hash_entry(e.unwrap(), hasher) as usize)
        .fold(0, usize::wrapping_add)
}

fn hash_openmetrics(input: &[u8], hasher: &impl BuildHasher) -> usize {
    OpenMetricsParser::new(input)
        .map(|e| hash_entry(e.unwrap(), hasher) as usize)
        .fold(0, usize::wrapping_add)
}

/// `promtool check metrics` reading `input` on standard input (from a file, so no pipe can
/// fill up); the best of a few runs, minus the best run on empty input (process start-up).
fn promtool(input: &[u8], samples: usize) {
    let dir = std::env::temp_dir().join(format!("tocsin-bench-parse-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let input_path = dir.join("input.prom");
    let empty_path = dir.join("empty.prom");
    std::fs::write(&input_path, input).unwrap();
    std::fs::write(&empty_path, b"").unwrap();
    let run_once = |path: &Path| {
        Command::new(PROMTOOL)
            .args(["check", "metrics"])
            .stdin(std::fs::File::open(path).unwrap())
            .output()
            .unwrap()
    };
    // promtool stops at its first parse error, which would flatter it: check it read all.
    let output = run_once(&input_path);
    let stderr = String::from_utf8_lossy(&output.stderr);
    if stderr.contains("error while linting") {
        println!(
            "# promtool did not parse the input: {}",
            stderr.lines().next().unwrap_or("")
        );
        return;
    }
    let findings = String::from_utf8_lossy(&output.stdout).lines().count() + stderr.lines().count();
    let best = |path: &Path| {
        (0..3)
            .map(|_| {
                let start = Instant::now();
                // A lint finding makes promtool exit 1: that does not matter for timing.
                let _ = run_once(path);
                start.elapsed()
            })
            .min()
            .unwrap()
    };
    let startup = best(&empty_path);
    let total = best(&input_path);
    let _ = std::fs::remove_dir_all(&dir);
    println!(
        "# reference, a different workload: promtool check metrics, a separate process \
         (client_golang expfmt parse into metric families + lint, {findings} findings printed), \
         start-up {:.1} ms subtracted",
        startup.as_secs_f64() * 1e3
    );
    print_row(
        "promtool 2.42 check metrics (reference)",
        input.len(),
        samples,
        total.saturating_sub(startup).max(Duration::from_micros(1)),
    );
}
