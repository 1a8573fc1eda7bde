//! Tocsin opens a data folder written by a real Prometheus 2.42 (Debian package `prometheus`)
//! killed with SIGKILL: its WAL (Snappy-compressed records, Prometheus's default) is replayed
//! into the head, and `up` and `prometheus_build_info` from its self-scrapes are found.
//! Skipped when the binary is missing.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use tocsin::tsdb::wal::segment::{list_segments, read_segment, segment_path};
use tocsin::tsdb::{Matcher, Tsdb, TsdbOptions};

const PROMETHEUS: &str = "/usr/bin/prometheus";

/// Snappy-compressed records in the folder's WAL so far.
fn compressed_records(wal: &Path) -> u64 {
    list_segments(wal)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|n| read_segment(&segment_path(wal, n)).ok())
        .map(|c| c.decompressed)
        .sum()
}

#[test]
fn tocsin_replays_the_wal_of_a_killed_prometheus() {
    if !Path::new(PROMETHEUS).exists() {
        eprintln!("SKIPPED: {PROMETHEUS} is missing (install the Debian package `prometheus`)");
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("data");
    // Prometheus scrapes itself, so it must know its own port: take a free one.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = work.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: prometheus\n    static_configs:\n      - targets: ['127.0.0.1:{port}']\n"
        ),
    )
    .unwrap();
    let mut child = Command::new(PROMETHEUS)
        .arg(format!("--storage.tsdb.path={}", data.display()))
        .arg(format!("--config.file={}", config.display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Wait for a few scrapes to reach the WAL (records are written at each scrape's commit).
    let wal = data.join("wal");
    let started = Instant::now();
    while compressed_records(&wal) < 8 && started.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(500));
    }
    std::thread::sleep(Duration::from_secs(2));
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();

    let tsdb = Tsdb::open(&data, TsdbOptions::default()).unwrap();
    let report = tsdb.replay_report();
    println!("{report:?}");
    assert!(report.decompressed_records > 0, "{report:?}");
    assert!(report.series > 100, "{report:?}");
    assert!(report.samples > 100, "{report:?}");

    let querier = tsdb.querier(i64::MIN, i64::MAX);
    let up: Vec<_> = querier
        .select(&[
            Matcher::equal("__name__", "up"),
            Matcher::equal("job", "prometheus"),
        ])
        .unwrap()
        .collect();
    assert_eq!(up.len(), 1);
    let samples: Vec<(i64, f64)> = up[0].samples().collect();
    assert!(samples.len() >= 2, "{samples:?}");
    assert!(samples.iter().all(|&(_, v)| v == 1.0), "{samples:?}");
    let build: Vec<_> = querier
        .select(&[Matcher::equal("__name__", "prometheus_build_info")])
        .unwrap()
        .collect();
    assert_eq!(build.len(), 1);
    assert!(
        build[0]
            .labels
            .get("version")
            .is_some_and(|v| v.starts_with("2.42")),
        "{}",
        build[0].labels
    );
    assert!(build[0].samples().count() >= 2);
    assert!(
        querier
            .label_values("job")
            .unwrap()
            .contains(&"prometheus".to_string())
    );
}
