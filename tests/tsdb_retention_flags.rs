//! The retention flags on a real `tocsin` process: parsed as Prometheus parses them (sizes as
//! `units.Base2Bytes`, durations as Prometheus durations), shown on `/api/v1/status/flags`,
//! refused with the flag named when malformed, and overridden by the config file's
//! `storage.tsdb.retention` (Prometheus 3).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

mod common;

use common::{RunningNode, get, post};

#[test]
fn flags_are_parsed_shown_and_applied() {
    let work = tempfile::tempdir().unwrap();
    let node = RunningNode::start(
        work.path(),
        &[
            "--storage.tsdb.retention.time=1d",
            "--storage.tsdb.retention.size=512MB",
        ],
    );
    let (status, body) = get(&node.url("/api/v1/status/flags"));
    assert_eq!(status, 200);
    let flags: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(flags["data"]["storage.tsdb.retention.time"], "1d");
    assert_eq!(flags["data"]["storage.tsdb.retention.size"], "512MiB");
    assert_eq!(flags["data"]["web.enable-admin-api"], "false");
    let log = node.log();
    assert!(
        log.contains("retention_size_bytes=Some(536870912)"),
        "{log}"
    );
    assert!(log.contains("retention_time=Some(86400s)"), "{log}");
    drop(node);

    // The deprecated flag still works; with only a size, there is no time retention.
    let node = RunningNode::start(work.path(), &["--storage.tsdb.retention=2h"]);
    assert!(
        node.log().contains("retention_time=Some(7200s)"),
        "{}",
        node.log()
    );
    drop(node);
    let node = RunningNode::start(work.path(), &["--storage.tsdb.retention.size=1GB"]);
    let log = node.log();
    assert!(log.contains("retention_time=None"), "{log}");
    assert!(
        log.contains("retention_size_bytes=Some(1073741824)"),
        "{log}"
    );
    drop(node);

    // The config file's retention wins over the flags.
    let config = work.path().join("prometheus.yml");
    std::fs::write(
        &config,
        "storage:\n  tsdb:\n    retention:\n      time: 3d\n      size: 1GiB\n",
    )
    .unwrap();
    let node = RunningNode::start(
        work.path(),
        &[
            "--config.file",
            config.to_str().unwrap(),
            "--storage.tsdb.retention.time=1d",
        ],
    );
    let log = node.log();
    assert!(log.contains("retention_time=Some(259200s)"), "{log}");
    assert!(
        log.contains("retention_size_bytes=Some(1073741824)"),
        "{log}"
    );
}

#[test]
fn malformed_sizes_are_refused_naming_the_flag() {
    let work = tempfile::tempdir().unwrap();
    let error = RunningNode::try_start(work.path(), &["--storage.tsdb.retention.size=512"])
        .err()
        .expect("a size without unit is refused");
    assert!(error.contains("--storage.tsdb.retention.size"), "{error}");
    assert!(error.contains("units: unknown unit  in 512"), "{error}");
}

#[test]
fn a_reloaded_config_changes_the_retention_in_force() {
    let work = tempfile::tempdir().unwrap();
    let config = work.path().join("prometheus.yml");
    std::fs::write(&config, "global:\n  scrape_interval: 1h\n").unwrap();
    let node = RunningNode::start(
        work.path(),
        &[
            "--config.file",
            config.to_str().unwrap(),
            "--storage.tsdb.retention.time=1d",
        ],
    );
    let changes = |log: &str| -> Vec<String> {
        log.lines()
            .filter(|line| line.contains("TSDB retention changed by the configuration"))
            .map(str::to_owned)
            .collect()
    };
    assert!(changes(&node.log()).is_empty());
    std::fs::write(
        &config,
        "storage:\n  tsdb:\n    retention:\n      time: 3d\n      size: 1GiB\n",
    )
    .unwrap();
    let (status, body) = post(&node.url("/-/reload"));
    assert_eq!(status, 200, "{body}");
    let log = node.log_when(|log| !changes(log).is_empty());
    let changed = changes(&log);
    assert_eq!(changed.len(), 1, "{log}");
    assert!(changed[0].contains("retention_time=Some(259200s)"), "{log}");
    assert!(
        changed[0].contains("retention_size_bytes=Some(1073741824)"),
        "{log}"
    );
    // As in Prometheus, a config without retention keeps the one in force.
    std::fs::write(&config, "global:\n  scrape_interval: 1h\n").unwrap();
    let (status, body) = post(&node.url("/-/reload"));
    assert_eq!(status, 200, "{body}");
    let reloaded = |log: &str| log.matches("configuration reloaded").count();
    let log = node.log_when(|log| reloaded(log) == 2);
    assert_eq!(reloaded(&log), 2, "{log}");
    assert_eq!(changes(&log).len(), 1, "{log}");
}
