//! End to end: a real `tocsin` process on 127.0.0.1 — lifecycle endpoints, status APIs,
//! metrics, reload by HTTP and SIGHUP, graceful shutdown and the storage lock.
// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

mod common;

use common::{RunningNode, get, post};
use std::time::Duration;

const GOOD_CONFIG: &str = "\
global:
  scrape_interval: 30s
  external_labels:
    replica: a
alertmanager:
  route:
    receiver: team
  receivers:
    - name: team
      webhook_configs:
        - url: http://127.0.0.1:1/hook
          http_config:
            basic_auth:
              username: tocsin
              password: hunter2
";

#[test]
fn serves_lifecycle_and_status_endpoints_with_the_embedded_config() {
    let dir = tempfile::tempdir().unwrap();
    let node = RunningNode::start(dir.path(), &[]);

    assert_eq!(
        get(&node.url("/-/healthy")),
        (200, "Tocsin is Healthy.\n".to_string())
    );
    assert_eq!(
        get(&node.url("/-/ready")),
        (200, "Tocsin is Ready.\n".to_string())
    );

    let (status, body) = get(&node.url("/api/v1/status/buildinfo"));
    assert_eq!(status, 200);
    let buildinfo: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(buildinfo["status"], "success");
    assert_eq!(buildinfo["data"]["version"], env!("CARGO_PKG_VERSION"));
    assert!(buildinfo["data"]["revision"].is_string());

    let (status, body) = get(&node.url("/api/v1/status/flags"));
    assert_eq!(status, 200);
    let flags: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(flags["data"]["web.listen-address"], "127.0.0.1:0");
    assert_eq!(flags["data"]["log.format"], "logfmt");

    let (status, body) = get(&node.url("/api/v2/status"));
    assert_eq!(status, 200);
    let am_status: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(am_status["cluster"]["status"], "disabled");
    assert!(
        am_status["config"]["original"]
            .as_str()
            .unwrap()
            .contains("receiver: default")
    );
    assert!(am_status["uptime"].as_str().unwrap().ends_with('Z'));
    assert_eq!(
        am_status["versionInfo"]["version"],
        env!("CARGO_PKG_VERSION")
    );

    let (status, body) = get(&node.url("/api/v1/status/config"));
    assert_eq!(status, 200);
    let config: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(
        config["data"]["yaml"]
            .as_str()
            .unwrap()
            .contains("scrape_interval: 15s"),
        "{body}"
    );

    let (status, body) = get(&node.url("/metrics"));
    assert_eq!(status, 200);
    for name in [
        "tocsin_build_info{",
        "tocsin_config_last_reload_successful 1",
        "tocsin_http_requests_total{handler=\"/-/healthy\",code=\"200\"} 1",
        "process_resident_memory_bytes",
        "process_open_fds",
        "tocsin_alerts 0",
        "tocsin_alert_groups 0",
        "tocsin_silences_active 0",
        "tocsin_alerts_rejected_too_many_total 0",
    ] {
        assert!(body.contains(name), "/metrics lacks {name}:\n{body}");
    }
    assert_eq!(get(&node.url("/no/such/page")).0, 404);
    assert_eq!(
        get(&node.url("/-/reload")).0,
        405,
        "reload is POST or PUT only"
    );
}

#[test]
fn a_bad_reload_keeps_the_running_config_and_a_good_one_replaces_it() {
    let dir = tempfile::tempdir().unwrap();
    let config_path = dir.path().join("tocsin.yml");
    std::fs::write(&config_path, GOOD_CONFIG).unwrap();
    let node = RunningNode::start(
        dir.path(),
        &["--config.file", config_path.to_str().unwrap()],
    );

    let (_, body) = get(&node.url("/api/v1/status/config"));
    assert!(body.contains("scrape_interval: 30s"), "{body}");
    assert!(!body.contains("hunter2"), "a secret leaked: {body}");

    std::fs::write(&config_path, GOOD_CONFIG.replace("30s", "1h 30m")).unwrap();
    let (status, body) = post(&node.url("/-/reload"));
    assert_eq!(status, 500);
    assert!(
        body.contains("tocsin.yml:2:20: not a valid duration string"),
        "{body}"
    );
    let (_, metrics) = get(&node.url("/metrics"));
    assert!(
        metrics.contains("tocsin_config_last_reload_successful 0"),
        "{metrics}"
    );
    let (_, body) = get(&node.url("/api/v1/status/config"));
    assert!(
        body.contains("scrape_interval: 30s"),
        "the running config must stay: {body}"
    );
    assert_eq!(get(&node.url("/-/ready")).0, 200);

    std::fs::write(&config_path, GOOD_CONFIG.replace("30s", "45s")).unwrap();
    node.signal("HUP");
    let reloaded = (0..100).any(|_| {
        std::thread::sleep(Duration::from_millis(50));
        get(&node.url("/api/v1/status/config"))
            .1
            .contains("scrape_interval: 45s")
    });
    assert!(reloaded, "SIGHUP did not reload:\n{}", node.log());
    let (_, metrics) = get(&node.url("/metrics"));
    assert!(
        metrics.contains("tocsin_config_last_reload_successful 1"),
        "{metrics}"
    );

    assert_eq!(post(&node.url("/-/reload")).0, 200);
}

#[test]
fn sigterm_shuts_down_gracefully() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = RunningNode::start(dir.path(), &[]);
    node.signal("TERM");
    let status = node
        .wait_exit(Duration::from_secs(10))
        .expect("tocsin did not stop within 10 s");
    assert!(status.success(), "exit status {status}:\n{}", node.log());
    assert!(node.log().contains("received SIGTERM"), "{}", node.log());
}

#[test]
fn a_second_node_cannot_share_the_storage_path() {
    let dir = tempfile::tempdir().unwrap();
    let _first = RunningNode::start(dir.path(), &[]);
    let log = RunningNode::try_start(dir.path(), &[])
        .err()
        .expect("second node must not start");
    assert!(log.contains("is in use by another process"), "{log}");
}

#[test]
fn the_external_url_path_prefixes_every_endpoint() {
    let dir = tempfile::tempdir().unwrap();
    let node = RunningNode::start(
        dir.path(),
        &["--web.external-url", "http://alerts.example.org/tocsin/"],
    );
    assert_eq!(get(&node.url("/tocsin/-/healthy")).0, 200);
    assert_eq!(get(&node.url("/tocsin/api/v2/status")).0, 200);
    assert_eq!(get(&node.url("/-/healthy")).0, 404);
}

#[test]
fn bad_flags_and_configs_stop_start_up_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let log = RunningNode::try_start(
        dir.path(),
        &[
            "--cluster.listen-address",
            "127.0.0.1:9094",
            "--cluster.peer",
            "nohostport",
        ],
    )
    .err()
    .expect("bad peer must stop start-up");
    assert!(log.contains("invalid address \\\"nohostport\\\""), "{log}");

    let config_path = dir.path().join("bad.yml");
    std::fs::write(&config_path, "global:\n  scrape_interval: 1.5h\n").unwrap();
    let log = RunningNode::try_start(
        dir.path(),
        &["--config.file", config_path.to_str().unwrap()],
    )
    .err()
    .expect("bad config must stop start-up");
    assert!(
        log.contains("bad.yml:2:20: not a valid duration string"),
        "{log}"
    );
}

#[test]
fn json_logs_are_one_object_per_line() {
    let dir = tempfile::tempdir().unwrap();
    let result = std::process::Command::new(common::TOCSIN)
        .args([
            "--log.format",
            "json",
            "--web.listen-address",
            "256.0.0.1:1",
        ])
        .arg("--storage.path")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!result.status.success());
    let stderr = String::from_utf8(result.stderr).unwrap();
    let line = stderr.lines().last().unwrap();
    let parsed: serde_json::Value =
        serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
    assert_eq!(parsed["level"], "ERROR");
    assert!(
        parsed["message"]
            .as_str()
            .unwrap()
            .contains("cannot listen on 256.0.0.1:1"),
        "{line}"
    );
}
