//! End to end with a real sender: Prometheus 2.42 (`/usr/bin/prometheus`, the Debian package)
//! scrapes a small exposition served by this test every second and remote-writes (1.0, with
//! metadata) to a real `tocsin` process. Every sample Prometheus stored for the target's
//! series over a window must be in Tocsin, byte for byte as `/api/v1/query` prints it, and
//! `/api/v1/query_range` must answer the same on both.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::RunningNode;
use common::prometheus::Prometheus;
use common::target::{free_address, serve_metrics};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Series the target exposes per family.
const SERIES: u64 = 20;

/// Serves `/metrics`: counters growing by their index on every scrape and a gauge with
/// fractional values (to compare float printing).
fn serve_target() -> String {
    serve_metrics(|n| {
        let mut body = String::from(
            "# HELP sender_requests_total Requests served.\n# TYPE sender_requests_total counter\n",
        );
        for index in 0..SERIES {
            body.push_str(&format!(
                "sender_requests_total{{path=\"/p{index}\"}} {}\n",
                n * index
            ));
        }
        body.push_str(
            "# HELP sender_temperature_celsius A gauge.\n# TYPE sender_temperature_celsius gauge\n",
        );
        for index in 0..SERIES {
            body.push_str(&format!(
                "sender_temperature_celsius{{sensor=\"s{index}\"}} {}\n",
                (n as f64) * 0.1 + index as f64 / 3.0
            ));
        }
        body
    })
}

/// Prometheus scraping `target` every second and remote-writing (1.0, with metadata) to `tocsin`.
fn start_prometheus(dir: &Path, target: &str, tocsin: &str) -> Prometheus {
    let config = format!(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n\
         scrape_configs:\n  - job_name: target\n    static_configs:\n      - targets: ['{target}']\n\
         remote_write:\n  - url: http://{tocsin}/api/v1/write\n    \
         queue_config:\n      batch_send_deadline: 1s\n      min_backoff: 100ms\n      max_backoff: 1s\n    \
         metadata_config:\n      send_interval: 2s\n"
    );
    Prometheus::start(dir, &free_address(), &config, &["--log.level=info"])
}

fn encode(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

fn query(url: &str) -> Value {
    let (status, body) = common::get(url);
    assert_eq!(status, 200, "{url}: {body}");
    let json: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["status"], "success", "{url}: {body}");
    json["data"].clone()
}

/// Series (labels printed as JSON) to their `[time, "value"]` points, from a matrix result.
fn matrix(data: &Value) -> BTreeMap<String, Vec<(String, String)>> {
    assert_eq!(data["resultType"], "matrix", "{data}");
    data["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|series| {
            let points = series["values"]
                .as_array()
                .unwrap()
                .iter()
                .map(|point| (point[0].to_string(), point[1].as_str().unwrap().to_string()))
                .collect();
            (series["metric"].to_string(), points)
        })
        .collect()
}

/// Every raw sample of the target's series in the `seconds` before `at` (Unix seconds).
fn raw_samples(base: &str, at: f64, seconds: u64) -> BTreeMap<String, Vec<(String, String)>> {
    let selector = format!("{{job=\"target\"}}[{seconds}s]");
    matrix(&query(&format!(
        "{base}/api/v1/query?query={}&time={at:.3}",
        encode(&selector)
    )))
}

fn unix_seconds() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

#[test]
fn prometheus_2_42_delivers_everything_it_scraped() {
    let dir = tempfile::tempdir().unwrap();
    let tocsin = RunningNode::start(dir.path(), &[]);
    let target = serve_target();
    let prometheus = start_prometheus(dir.path(), &target, &tocsin.address);

    // Let Prometheus scrape at least 10 times (its first scrape waits for the target's
    // offset, and start-up takes a few seconds), then take a window that ends in the past.
    let scrape_seconds = 10;
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let data = query(&format!(
            "{}/api/v1/query?query={}",
            prometheus.url(""),
            encode("count_over_time(up{job=\"target\"}[5m])")
        ));
        let scrapes = data["result"][0]["value"][1]
            .as_str()
            .and_then(|count| count.parse::<u64>().ok())
            .unwrap_or(0);
        if scrapes > scrape_seconds {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "Prometheus scraped {scrapes} times in 90 s:\n{}",
            prometheus.log()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let at = (unix_seconds() - 1.0).floor();
    // The raw-sample window reaches back past Prometheus's start: every sample it has.
    let history_seconds = 120;
    let expected = raw_samples(&prometheus.url(""), at, history_seconds);
    let family_series = |name: &str| {
        expected
            .keys()
            .filter(|labels| labels.contains(&format!("\"__name__\":\"{name}\"")))
            .count() as u64
    };
    assert_eq!(
        family_series("sender_requests_total"),
        SERIES,
        "{expected:?}\n{}",
        prometheus.log()
    );
    assert_eq!(family_series("sender_temperature_celsius"), SERIES);
    assert_eq!(family_series("up"), 1);
    let total: usize = expected.values().map(Vec::len).sum();
    assert!(
        expected.values().all(|points| points.len() >= 5),
        "fewer scrapes than expected in {scrape_seconds}s: {expected:?}"
    );

    // Remote write runs behind the scrapes: wait until Tocsin has caught up (or give up and
    // show the difference).
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut received = raw_samples(&tocsin.url(""), at, history_seconds);
    while received != expected && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(500));
        received = raw_samples(&tocsin.url(""), at, history_seconds);
    }
    if received != expected {
        for (series, points) in &expected {
            let got = received.get(series);
            if got != Some(points) {
                panic!(
                    "series {series}: Prometheus has {points:?}, Tocsin {got:?}\n--- tocsin log:\n{}\n--- prometheus log:\n{}",
                    tocsin.log(),
                    prometheus.log()
                );
            }
        }
        panic!("Tocsin has series Prometheus has not: {received:?}");
    }
    assert!(total >= 40 * 5, "{total} samples");

    // The same range queries answer the same on both. They start 4 s after the first scrape
    // so that no `rate` window holds a series' first sample: there Prometheus 2.42
    // extrapolates towards the counter's zero point differently from Prometheus 3, which is a
    // query-engine question, not a delivery one.
    let first_scrape: f64 = expected
        .values()
        .filter_map(|points| points.first())
        .map(|(time, _)| time.parse::<f64>().unwrap())
        .fold(f64::INFINITY, f64::min);
    let start = (first_scrape + 4.0).ceil();
    assert!(
        start < at - 3.0,
        "too few scrapes: first at {first_scrape}, end {at}"
    );
    let range = |base: &str, expression: &str| {
        matrix(&query(&format!(
            "{base}/api/v1/query_range?query={}&start={start}&end={at:.3}&step=1",
            encode(expression),
        )))
    };
    for expression in [
        "sender_requests_total",
        "sender_temperature_celsius",
        "rate(sender_requests_total[3s])",
        "up",
    ] {
        let theirs = range(&prometheus.url(""), expression);
        assert!(!theirs.is_empty(), "{expression}: empty on Prometheus");
        assert_eq!(range(&tocsin.url(""), expression), theirs, "{expression}");
    }

    // Prometheus logged no failed sends (a 4xx from Tocsin would show here).
    let log = prometheus.log();
    assert!(
        !log.contains("non-recoverable error") && !log.contains("Failed to send batch"),
        "{log}"
    );
}
