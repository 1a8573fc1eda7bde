//! End to end with a real exporter: `/usr/bin/prometheus-node-exporter` on a free 127.0.0.1
//! port, a real `tocsin` process scraping it every second, and the results read back through
//! the HTTP API (`/api/v1/query`, `/api/v1/targets`, `/api/v1/metadata`,
//! `/api/v1/targets/metadata`). Skipped, with the reason printed, only when the exporter is not
//! installed (`scripts/test` installs the Debian package).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{RunningNode, get};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const NODE_EXPORTER: &str = "/usr/bin/prometheus-node-exporter";

/// The exporter, killed when dropped.
struct Exporter {
    child: Child,
    address: String,
}

impl Drop for Exporter {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port nobody listens on right now (the exporter binds it a moment later).
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// Starts the exporter with only fast, always-present collectors, and waits until it serves.
fn start_exporter() -> Exporter {
    let address = format!("127.0.0.1:{}", free_port());
    let child = Command::new(NODE_EXPORTER)
        .arg(format!("--web.listen-address={address}"))
        .args([
            "--collector.disable-defaults",
            "--collector.cpu",
            "--collector.loadavg",
            "--collector.meminfo",
            "--collector.time",
            "--collector.uname",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start prometheus-node-exporter");
    let exporter = Exporter { child, address };
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if std::net::TcpStream::connect(&exporter.address).is_ok() {
            let (status, body) = get(&format!("http://{}/metrics", exporter.address));
            if status == 200 && body.contains("node_cpu_seconds_total") {
                return exporter;
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("node_exporter did not serve on {}", exporter.address);
}

/// Percent-encodes a query parameter.
fn encode(text: &str) -> String {
    let mut out = String::new();
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-_.~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// `/api/v1/query` at the current time; the result vector.
fn query(node: &RunningNode, promql: &str) -> Vec<serde_json::Value> {
    let (status, body) = get(&node.url(&format!("/api/v1/query?query={}", encode(promql))));
    assert_eq!(status, 200, "{promql}: {body}");
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    json["data"]["result"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn wait_until(what: &str, node: &RunningNode, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if done() {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!(
        "timed out waiting for {what}; tocsin's log:\n{}",
        node.log()
    );
}

#[test]
fn node_exporter_is_scraped_end_to_end() {
    if !std::path::Path::new(NODE_EXPORTER).exists() {
        println!(
            "skipped: {NODE_EXPORTER} is not installed (Debian package prometheus-node-exporter)"
        );
        return;
    }
    let exporter = start_exporter();
    let folder = tempfile::tempdir().unwrap();
    let config = folder.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            concat!(
                "scrape_configs:\n",
                "- job_name: node\n",
                "  scrape_interval: 1s\n",
                "  scrape_timeout: 1s\n",
                "  static_configs:\n",
                "  - targets: ['{address}']\n",
            ),
            address = exporter.address
        ),
    )
    .unwrap();
    let node = RunningNode::start(folder.path(), &["--config.file", config.to_str().unwrap()]);

    wait_until("up{job=\"node\"} == 1", &node, || {
        !query(&node, "up{job=\"node\"} == 1").is_empty()
    });
    let instance = exporter.address.as_str();
    let cpu = query(&node, "node_cpu_seconds_total{mode=\"idle\"}");
    assert!(!cpu.is_empty(), "no node_cpu_seconds_total");
    for series in &cpu {
        assert_eq!(series["metric"]["job"], "node");
        assert_eq!(series["metric"]["instance"], instance);
        let value: f64 = series["value"][1].as_str().unwrap().parse().unwrap();
        assert!(value > 0.0, "{series}");
    }
    let scraped = query(&node, "scrape_samples_scraped{job=\"node\"}");
    let scraped: f64 = scraped[0]["value"][1].as_str().unwrap().parse().unwrap();
    assert!(scraped > 10.0, "{scraped} samples scraped");
    assert!(!query(&node, "node_load1").is_empty());

    // The target is healthy in /api/v1/targets.
    let (status, body) = get(&node.url("/api/v1/targets?state=active"));
    assert_eq!(status, 200, "{body}");
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    let target = &json["data"]["activeTargets"][0];
    assert_eq!(target["health"], "up", "{target}");
    assert_eq!(target["lastError"], "");
    assert_eq!(target["labels"]["instance"], instance);
    assert_eq!(target["scrapeUrl"], format!("http://{instance}/metrics"));

    // node_exporter's HELP and TYPE in /api/v1/metadata and /api/v1/targets/metadata.
    let (status, body) = get(&node.url("/api/v1/metadata?metric=node_cpu_seconds_total"));
    assert_eq!(status, 200, "{body}");
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        json["data"]["node_cpu_seconds_total"],
        serde_json::json!([{
            "type": "counter",
            "help": "Seconds the CPUs spent in each mode.",
            "unit": "",
        }]),
        "{body}"
    );
    let (_, body) = get(&node.url("/api/v1/metadata?limit=1"));
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["data"].as_object().unwrap().len(), 1, "{body}");
    let (_, body) = get(&node.url(&format!(
        "/api/v1/targets/metadata?metric=node_load1&match_target={}",
        encode("{job=\"node\"}")
    )));
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["data"][0]["type"], "gauge", "{body}");
    assert_eq!(json["data"][0]["help"], "1m load average.");
    assert_eq!(json["data"][0]["target"]["instance"], instance);

    // Scraping's own numbers are on /metrics under Prometheus's names.
    let (_, metrics) = get(&node.url("/metrics"));
    assert!(
        metrics.contains("prometheus_target_scrape_pools_total 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("prometheus_sd_discovered_targets{config=\"node\",name=\"scrape\"} 1")
    );
    assert!(metrics.contains("prometheus_target_scrape_pool_targets{scrape_job=\"node\"} 1"));
}
