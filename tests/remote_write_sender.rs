//! End to end with a real receiver: a `tocsin` node scrapes a small exposition served by this
//! test every second and remote-writes to Prometheus 2.42 (`/usr/bin/prometheus`, the Debian
//! package, with `--web.enable-remote-write-receiver`). Every raw sample Tocsin stored for the
//! target must be in Prometheus (with the `replica` external label added), across
//! (a) a restart of Prometheus mid-stream (the batches that failed are retried) and
//! (b) a restart of Tocsin while Prometheus is down (the queue resumes from the WAL position
//! it persisted, so what was scraped before the restart and never sent still arrives).
//! Also: the example configs in `examples/remote-write/` pass `tocsin check config`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::RunningNode;
use common::prometheus::{PROMETHEUS, Prometheus};
use common::target::{free_address, serve_metrics};
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const SERIES: u64 = 10;

/// Serves `/metrics`: counters growing by their index on every scrape.
fn serve_target() -> String {
    serve_metrics(|n| {
        let mut body = String::from("# TYPE shipped_total counter\n");
        for index in 0..SERIES {
            body.push_str(&format!(
                "shipped_total{{index=\"{index}\"}} {}\n",
                n * index
            ));
        }
        body
    })
}

/// A Prometheus receiving remote write on a fixed address and storage folder.
fn start_prometheus(dir: &Path, address: &str) -> Prometheus {
    Prometheus::start(
        dir,
        address,
        "global:\n  scrape_interval: 1m\n",
        &["--web.enable-remote-write-receiver"],
    )
}

fn encode(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

/// Every raw sample of `{job="target"}` in the hour before `at` (seconds), as (labels without `replica`,
/// timestamp in ms, value text).
fn raw_samples(base: &str, at: f64) -> BTreeSet<(String, i64, String)> {
    let query = encode(r#"{job="target"}[1h]"#);
    let (status, body) = common::get(&format!("{base}/api/v1/query?query={query}&time={at:.3}"));
    assert_eq!(status, 200, "{body}");
    let parsed: Value = serde_json::from_str(&body).unwrap();
    let mut samples = BTreeSet::new();
    for series in parsed["data"]["result"].as_array().unwrap() {
        let mut labels: Vec<(String, String)> = series["metric"]
            .as_object()
            .unwrap()
            .iter()
            .filter(|(name, _)| name.as_str() != "replica")
            .map(|(name, value)| (name.clone(), value.as_str().unwrap().to_string()))
            .collect();
        labels.sort();
        let labels = format!("{labels:?}");
        for pair in series["values"].as_array().unwrap() {
            let ms = (pair[0].as_f64().unwrap() * 1000.0).round() as i64;
            samples.insert((labels.clone(), ms, pair[1].as_str().unwrap().to_string()));
        }
    }
    samples
}

/// The sum of a metric's samples on a node's `/metrics` (all label sets).
fn metric(node: &RunningNode, name: &str) -> f64 {
    let (_, body) = common::get(&node.url("/metrics"));
    body.lines()
        .filter(|line| {
            line.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn wait_until(what: &str, limit: Duration, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn write_config(dir: &Path, target: &str, receiver: &str) -> PathBuf {
    let path = dir.join("tocsin.yml");
    std::fs::write(
        &path,
        format!(
            "global:\n  scrape_interval: 1s\n  external_labels:\n    replica: a\n\
             scrape_configs:\n  - job_name: target\n    static_configs:\n      - targets: ['{target}']\n\
             remote_write:\n  - url: http://{receiver}/api/v1/write\n    name: prometheus\n\
             \x20   queue_config:\n      batch_send_deadline: 500ms\n      min_backoff: 50ms\n      max_backoff: 500ms\n"
        ),
    )
    .unwrap();
    path
}

#[test]
fn every_stored_sample_reaches_prometheus_across_restarts() {
    assert!(
        Path::new(PROMETHEUS).exists(),
        "{PROMETHEUS} is not installed"
    );
    let dir = tempfile::tempdir().unwrap();
    let target = serve_target();
    let receiver = free_address();
    let config = write_config(dir.path(), &target, &receiver);
    let config_arg = config.display().to_string();
    let args = ["--config.file", config_arg.as_str()];

    let prometheus = start_prometheus(dir.path(), &receiver);
    let mut node = RunningNode::start(dir.path(), &args);
    wait_until("samples to be sent", Duration::from_secs(30), || {
        metric(&node, "prometheus_remote_storage_samples_total") >= (SERIES * 3) as f64
    });

    // (a) Prometheus goes away mid-stream: sends fail and are retried, then succeed.
    prometheus.stop();
    wait_until(
        "failed sends to be retried",
        Duration::from_secs(30),
        || metric(&node, "prometheus_remote_storage_samples_retried_total") > 0.0,
    );
    std::thread::sleep(Duration::from_secs(2));
    let prometheus = start_prometheus(dir.path(), &receiver);
    let sent_before = metric(&node, "prometheus_remote_storage_samples_total");
    wait_until("sending to resume", Duration::from_secs(30), || {
        metric(&node, "prometheus_remote_storage_samples_total") > sent_before + SERIES as f64
    });

    // (b) Prometheus down again, then Tocsin restarts: what it scraped and could not send
    // is in its WAL and its saved position is before it.
    prometheus.stop();
    std::thread::sleep(Duration::from_secs(3));
    node.signal("TERM");
    assert!(
        node.wait_exit(Duration::from_secs(30)).is_some(),
        "tocsin did not stop:\n{}",
        node.log()
    );
    let first_log = node.log();
    let positions: Vec<_> = std::fs::read_dir(node.storage.join("remote_write"))
        .unwrap()
        .collect();
    assert_eq!(positions.len(), 1, "one saved position per endpoint");
    drop(node);
    let node = RunningNode::start(dir.path(), &args);
    std::thread::sleep(Duration::from_secs(2));
    let prometheus = start_prometheus(dir.path(), &receiver);
    std::thread::sleep(Duration::from_secs(3));

    // Stop scraping new data from the comparison's point of view: compare once the queue has
    // caught up (nothing pending, highest sent = highest read).
    wait_until("the queue to catch up", Duration::from_secs(60), || {
        metric(&node, "prometheus_remote_storage_samples_pending") == 0.0
            && metric(
                &node,
                "prometheus_remote_storage_queue_highest_sent_timestamp_seconds",
            ) >= metric(
                &node,
                "prometheus_remote_storage_highest_timestamp_in_seconds",
            )
    });
    // Compare up to a time the queue is certainly past: what it had sent when it caught up,
    // once two more seconds of scrapes went out behind it.
    let until = metric(
        &node,
        "prometheus_remote_storage_queue_highest_sent_timestamp_seconds",
    );
    wait_until(
        "two more seconds to be sent",
        Duration::from_secs(60),
        || {
            metric(
                &node,
                "prometheus_remote_storage_queue_highest_sent_timestamp_seconds",
            ) >= until + 2.0
        },
    );
    let stored = raw_samples(&node.url(""), until);
    let received = raw_samples(&format!("http://{receiver}"), until);
    assert!(
        stored.len() > 10 * SERIES as usize,
        "too few samples: {}",
        stored.len()
    );
    let missing: Vec<_> = stored.difference(&received).collect();
    assert!(
        missing.is_empty(),
        "{} of {} samples Tocsin stored are not in Prometheus, e.g. {:?}\nfirst run:\n{first_log}\nsecond run:\n{}",
        missing.len(),
        stored.len(),
        &missing[..missing.len().min(5)],
        node.log()
    );
    assert_eq!(
        metric(&node, "prometheus_remote_storage_samples_failed_total"),
        0.0,
        "{}",
        node.log()
    );
    drop(prometheus);
}

#[test]
fn example_configs_pass_check_config() {
    let folder = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/remote-write");
    let mut checked = 0;
    for entry in std::fs::read_dir(&folder).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("yml") {
            continue;
        }
        let output = Command::new(common::TOCSIN)
            .args(["check", "config"])
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}: {}{}",
            path.display(),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        checked += 1;
    }
    assert!(
        checked >= 3,
        "expected the Mimir, Thanos and VictoriaMetrics examples"
    );
}
