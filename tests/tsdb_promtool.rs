//! Both directions against real Prometheus 2.42 tools (Debian package `prometheus`):
//! `promtool tsdb list|analyze|dump` read a block Tocsin wrote, and Tocsin reads blocks that
//! `promtool tsdb create-blocks-from openmetrics` wrote. Skipped when promtool is missing.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use tocsin::tsdb::Labels;
use tocsin::tsdb::block::{Block, BlockSeries, NewBlock, chunks_from_samples, write_block};
use tocsin::tsdb::chunkenc::decode_xor;

const PROMTOOL: &str = "/usr/bin/promtool";

fn promtool_available() -> bool {
    if Path::new(PROMTOOL).exists() {
        return true;
    }
    eprintln!("SKIPPED: {PROMTOOL} is missing (install the Debian package `prometheus`)");
    false
}

fn promtool(args: &[&str]) -> String {
    let output = Command::new(PROMTOOL)
        .args(args)
        .output()
        .expect("run promtool");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(
        output.status.success(),
        "promtool {args:?} failed:\n{stdout}\n{stderr}"
    );
    stdout
}

type SeriesSamples = BTreeMap<String, Vec<(i64, u64)>>;

/// Parses `promtool tsdb dump` lines: `{a="b", c="d"} value timestamp`.
fn parse_dump(text: &str) -> SeriesSamples {
    let mut out: SeriesSamples = BTreeMap::new();
    for line in text.lines().filter(|line| !line.trim().is_empty()) {
        let close = line.rfind('}').expect("labels in dump line");
        let labels = line[..=close].to_string();
        let mut rest = line[close + 1..].split_whitespace();
        let value: f64 = rest.next().expect("value").parse().expect("float value");
        let timestamp: i64 = rest.next().expect("timestamp").parse().expect("timestamp");
        out.entry(labels)
            .or_default()
            .push((timestamp, value.to_bits()));
    }
    out
}

#[test]
fn promtool_reads_a_tocsin_block() {
    if !promtool_available() {
        return;
    }
    let folder = tempfile::tempdir().unwrap();
    let start = 1_700_000_000_000i64;
    let mut expected: SeriesSamples = BTreeMap::new();
    let mut series = Vec::new();
    for job in ["api", "web"] {
        for instance in 0..3 {
            let labels = Labels::new([
                ("__name__", "http_requests_total".to_string()),
                ("job", job.to_string()),
                ("instance", format!("10.0.0.{instance}:9100")),
            ]);
            let samples: Vec<(i64, f64)> = (0..500)
                .map(|i| {
                    (
                        start + i * 15_000 + (i % 7),
                        (i * (instance + 1)) as f64 * 0.5,
                    )
                })
                .collect();
            expected.insert(
                labels.to_string(),
                samples.iter().map(|(t, v)| (*t, v.to_bits())).collect(),
            );
            series.push(BlockSeries {
                labels,
                chunks: chunks_from_samples(&samples),
            });
        }
    }
    let meta = write_block(
        folder.path(),
        NewBlock {
            series,
            min_time: start,
            max_time: start + 500 * 15_000,
            created_unix_millis: 1_700_000_100_000,
        },
    )
    .unwrap();
    let dir = folder.path().to_str().unwrap();

    let list = promtool(&["tsdb", "list", dir]);
    println!("promtool tsdb list:\n{list}");
    let row = list
        .lines()
        .find(|line| line.contains(&meta.ulid.to_string()))
        .expect("block listed");
    assert!(row.contains("3000"), "sample count in {row}");
    assert!(row.contains("6"), "series count in {row}");

    let analyze = promtool(&["tsdb", "analyze", dir]);
    println!("promtool tsdb analyze:\n{analyze}");
    assert!(analyze.contains("Series: 6"), "{analyze}");
    assert!(analyze.contains("http_requests_total"), "{analyze}");
    assert!(
        analyze.contains("Postings (unique label pairs): 6"),
        "{analyze}"
    );

    // `dump` opens the folder as a data directory, which always has a WAL folder.
    std::fs::create_dir(folder.path().join("wal")).unwrap();
    let dump = promtool(&["tsdb", "dump", dir]);
    assert_eq!(parse_dump(&dump), expected);
}

#[test]
fn tocsin_reads_blocks_written_by_promtool() {
    if !promtool_available() {
        return;
    }
    let folder = tempfile::tempdir().unwrap();
    let input = folder.path().join("input.om");
    let data = folder.path().join("data");
    // Three hours of 15 s samples across two gauges and a counter; promtool cuts 2 h blocks.
    let start_seconds = 1_700_000_000i64;
    let mut text = String::new();
    let mut expected: SeriesSamples = BTreeMap::new();
    text.push_str("# TYPE temperature gauge\n");
    let mut lines = Vec::new();
    for step in 0..720i64 {
        let t = start_seconds + step * 15;
        for room in ["kitchen", "attic"] {
            let value = if step % 97 == 0 {
                -0.0
            } else {
                20.0 + (step as f64).sin() * 3.25
            };
            lines.push(format!("temperature{{room=\"{room}\"}} {value:?} {t}\n"));
            let labels = Labels::new([("__name__", "temperature"), ("room", room)]);
            expected
                .entry(labels.to_string())
                .or_default()
                .push((t * 1000, value.to_bits()));
        }
    }
    // OpenMetrics wants a metric family's samples together.
    lines.sort_by_key(|line| line.contains("attic"));
    for line in &lines {
        text.push_str(line);
    }
    text.push_str("# TYPE jobs_done counter\n");
    for step in 0..720i64 {
        let t = start_seconds + step * 15;
        text.push_str(&format!(
            "jobs_done_total{{queue=\"a b\\\"c\"}} {} {t}\n",
            step * 3
        ));
        let labels = Labels::new([("__name__", "jobs_done_total"), ("queue", "a b\"c")]);
        expected
            .entry(labels.to_string())
            .or_default()
            .push((t * 1000, ((step * 3) as f64).to_bits()));
    }
    text.push_str("# EOF\n");
    std::fs::write(&input, text).unwrap();
    promtool(&[
        "tsdb",
        "create-blocks-from",
        "openmetrics",
        input.to_str().unwrap(),
        data.to_str().unwrap(),
    ]);

    let mut read: SeriesSamples = BTreeMap::new();
    let mut blocks = 0;
    for entry in std::fs::read_dir(&data).unwrap() {
        let path = entry.unwrap().path();
        if !path.join("meta.json").exists() {
            continue;
        }
        blocks += 1;
        let block = Block::open(&path).unwrap();
        let index = block.index();
        assert!(index.label_names().contains(&"room".to_string()));
        for id in index.all_postings().unwrap() {
            let series = index.series(id).unwrap();
            for chunk in &series.chunks {
                let bytes = block
                    .xor_chunk(chunk.chunk_ref)
                    .unwrap()
                    .expect("XOR chunk");
                let samples = decode_xor(&bytes).unwrap();
                assert_eq!(samples.first().unwrap().0, chunk.min_time);
                assert_eq!(samples.last().unwrap().0, chunk.max_time);
                let entry = read.entry(series.labels.to_string()).or_default();
                entry.extend(samples.iter().map(|(t, v)| (*t, v.to_bits())));
            }
        }
        let meta = block.meta();
        assert!(meta.stats.num_samples > 0);
    }
    assert!(
        blocks >= 2,
        "three hours must span at least two 2 h blocks, got {blocks}"
    );
    for samples in read.values_mut() {
        samples.sort();
    }
    assert_eq!(read, expected);
}

#[test]
fn promtool_replays_a_tocsin_wal() {
    if !promtool_available() {
        return;
    }
    let folder = tempfile::tempdir().unwrap();
    let mut expected: SeriesSamples = BTreeMap::new();
    {
        let tsdb = tocsin::tsdb::Tsdb::open(folder.path(), Default::default()).unwrap();
        for round in 0..200i64 {
            let mut appender = tsdb.appender();
            for disk in ["sda", "sdb"] {
                let labels = Labels::new([("__name__", "disk_reads_total"), ("device", disk)]);
                let t = 1_700_000_000_000 + round * 10_000;
                let v = (round * 4096) as f64;
                appender.append(&labels, t, v).unwrap();
                expected
                    .entry(labels.to_string())
                    .or_default()
                    .push((t, v.to_bits()));
            }
            appender.commit().unwrap();
        }
    }
    // Prometheus replays our WAL segments and records into its own head.
    let dump = promtool(&["tsdb", "dump", folder.path().to_str().unwrap()]);
    assert_eq!(parse_dump(&dump), expected);
}
