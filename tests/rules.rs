//! Rules end to end: a real `tocsin` process scrapes a target served here, a recording rule
//! records its metric, an alerting rule fires when the value crosses a threshold, and the alert
//! reaches a real webhook (an HTTP server here) through the node's alerting core, then resolves
//! when the value recovers. `/api/v1/rules`, `/api/v1/alerts` and `/api/v1/query` are checked
//! along the way.
// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::RunningNode;
use common::webhook::HookServer;
use serde_json::Value;
use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

const EXTERNAL_URL: &str = "http://tocsin.example:9090";
/// Scrapes and evaluations run every second; deliveries have no group wait.
const LIMIT: Duration = Duration::from_secs(30);

/// Serves `demo_temperature{room="lab"} <value>` on every path; the test sets the value.
struct Target {
    port: u16,
    value: Arc<AtomicU64>,
}

impl Target {
    fn start(value: f64) -> Target {
        let shared = Arc::new(AtomicU64::new(value.to_bits()));
        let value = Arc::clone(&shared);
        let address = common::target::serve_metrics(move |_| {
            let value = f64::from_bits(shared.load(Ordering::SeqCst));
            format!("# TYPE demo_temperature gauge\ndemo_temperature{{room=\"lab\"}} {value}\n")
        });
        let port = address.rsplit(':').next().unwrap().parse().unwrap();
        Target { port, value }
    }

    fn set(&self, value: f64) {
        self.value.store(value.to_bits(), Ordering::SeqCst);
    }
}

/// The first notification with `status` (`firing`, `resolved`) the webhook got.
fn with_status(hook: &HookServer, status: &str) -> Option<Value> {
    hook.delivered()
        .into_iter()
        .find(|body| body["status"] == status)
}

fn wait_for<T>(what: &str, node: &RunningNode, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + LIMIT;
    loop {
        if let Some(found) = check() {
            return found;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}\n--- tocsin log:\n{}",
            node.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn api(node: &RunningNode, path: &str) -> Value {
    let (status, body) = common::get(&node.url(path));
    assert_eq!(status, 200, "GET {path}: {body}");
    let json: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["status"], "success", "{body}");
    json["data"].clone()
}

const RULES: &str = r#"groups:
  - name: demo
    interval: 1s
    labels:
      team: lab
    rules:
      - record: room:temperature:max
        expr: max by (room) (demo_temperature)
      - alert: TooHot
        expr: room:temperature:max > 30
        for: 1s
        labels:
          severity: page
        annotations:
          summary: '{{ $labels.room }} is at {{ $value }} degrees'
          site: '{{ $externalLabels.site }}'
          # Expands to "": kept (and sent) as Prometheus keeps it.
          owner: '{{ $labels.owner }}'
"#;

fn config(target: &Target, hook: &HookServer) -> String {
    format!(
        "global:
  scrape_interval: 1s
  evaluation_interval: 1s
  external_labels:
    site: test
rule_files:
  - rules.yml
scrape_configs:
  - job_name: demo
    static_configs:
      - targets: ['127.0.0.1:{}']
alertmanager:
  route:
    receiver: hook
    group_by: [alertname]
    group_wait: 0s
    group_interval: 1s
    repeat_interval: 1h
  receivers:
    - name: hook
      webhook_configs:
        - url: http://127.0.0.1:{}/hook
",
        target.port, hook.port
    )
}

#[test]
fn a_threshold_alert_fires_to_a_webhook_and_resolves() {
    let dir = tempfile::tempdir().unwrap();
    let target = Target::start(20.0);
    let hook = HookServer::start();
    let file = dir.path().join("tocsin.yml");
    std::fs::write(&file, config(&target, &hook)).unwrap();
    std::fs::write(dir.path().join("rules.yml"), RULES).unwrap();
    let node = RunningNode::start(
        dir.path(),
        &[
            "--config.file",
            file.to_str().unwrap(),
            "--web.external-url",
            EXTERNAL_URL,
        ],
    );

    // The recording rule's series, queried back.
    let recorded = wait_for("the recorded series", &node, || {
        let data = api(&node, "/api/v1/query?query=room:temperature:max");
        data["result"]
            .as_array()
            .and_then(|result| result.first().cloned())
    });
    assert_eq!(
        recorded["metric"],
        serde_json::json!({"__name__": "room:temperature:max", "room": "lab", "team": "lab"})
    );
    assert_eq!(recorded["value"][1], "20");
    let data = api(&node, "/api/v1/alerts");
    assert_eq!(data["alerts"], serde_json::json!([]));

    target.set(35.0);
    let firing = wait_for("a firing notification", &node, || {
        with_status(&hook, "firing")
    });
    let alert = &firing["alerts"][0];
    // The notifier adds the external labels to what it sends, as Prometheus's does.
    assert_eq!(
        alert["labels"],
        serde_json::json!({"alertname": "TooHot", "room": "lab", "severity": "page", "site": "test", "team": "lab"})
    );
    assert_eq!(
        alert["annotations"],
        serde_json::json!({"summary": "lab is at 35 degrees", "site": "test", "owner": ""})
    );
    assert_eq!(
        alert["generatorURL"],
        "http://tocsin.example:9090/graph?g0.expr=room%3Atemperature%3Amax+%3E+30&g0.tab=1"
    );

    // While it fires, both endpoints show it.
    let alerts = api(&node, "/api/v1/alerts")["alerts"].clone();
    let shown = alerts
        .as_array()
        .unwrap()
        .iter()
        .find(|alert| alert["labels"]["alertname"] == "TooHot")
        .cloned()
        .expect("TooHot in /api/v1/alerts");
    assert_eq!(shown["state"], "firing");
    assert_eq!(shown["value"], "3.5e+01");
    assert_eq!(shown["annotations"]["summary"], "lab is at 35 degrees");
    assert_eq!(shown["annotations"]["owner"], "");
    assert!(shown["activeAt"].as_str().unwrap().ends_with('Z'));
    let groups = api(&node, "/api/v1/rules")["groups"].clone();
    let group = &groups[0];
    assert_eq!(group["name"], "demo");
    assert_eq!(
        group["file"],
        dir.path().join("rules.yml").to_str().unwrap()
    );
    assert_eq!(group["interval"], 1);
    assert_eq!(group["limit"], 0);
    let rules = group["rules"].as_array().unwrap();
    assert_eq!(rules.len(), 2);
    assert_eq!(rules[0]["type"], "recording");
    assert_eq!(rules[0]["name"], "room:temperature:max");
    assert_eq!(rules[0]["query"], "max by (room) (demo_temperature)");
    assert_eq!(rules[0]["health"], "ok");
    assert_eq!(rules[1]["type"], "alerting");
    assert_eq!(rules[1]["state"], "firing");
    assert_eq!(rules[1]["duration"], 1);
    assert_eq!(
        rules[1]["labels"],
        serde_json::json!({"severity": "page", "team": "lab"})
    );
    assert_eq!(rules[1]["alerts"][0]["state"], "firing");
    assert_eq!(rules[1]["alerts"][0]["annotations"]["owner"], "");
    assert_eq!(rules[1]["annotations"]["owner"], "{{ $labels.owner }}");
    // Filters: only recording rules; no alerts with exclude_alerts.
    let recording = api(&node, "/api/v1/rules?type=record")["groups"].clone();
    assert_eq!(recording[0]["rules"].as_array().unwrap().len(), 1);
    let excluded = api(&node, "/api/v1/rules?type=alert&exclude_alerts=true")["groups"].clone();
    assert_eq!(excluded[0]["rules"][0]["alerts"], Value::Null);
    let none = api(&node, "/api/v1/rules?rule_name[]=NoSuchRule")["groups"].clone();
    assert_eq!(none, serde_json::json!([]));
    let (status, _) = common::get(&node.url("/api/v1/rules?type=bogus"));
    assert_eq!(status, 400);

    // Once `for` state is restored (after the second iteration), ALERTS is written.
    let series = wait_for("the ALERTS series", &node, || {
        let data = api(
            &node,
            "/api/v1/query?query=ALERTS%7Balertname%3D%22TooHot%22%7D",
        );
        data["result"]
            .as_array()
            .and_then(|result| result.first().cloned())
    });
    assert_eq!(series["metric"]["alertstate"], "firing");
    assert_eq!(series["metric"]["room"], "lab");
    assert_eq!(series["value"][1], "1");

    // A reload that changes the group (one more rule) keeps the firing alert as it was.
    let active_at = shown["activeAt"].clone();
    let more_rules = RULES.replace(
        "      - alert: TooHot",
        "      - record: room:temperature:min\n        expr: min by (room) (demo_temperature)\n      - alert: TooHot",
    );
    std::fs::write(dir.path().join("rules.yml"), more_rules).unwrap();
    node.signal("HUP");
    wait_for("the reloaded group", &node, || {
        let groups = api(&node, "/api/v1/rules")["groups"].clone();
        (groups[0]["rules"].as_array().map(Vec::len) == Some(3)).then_some(())
    });
    let alerts = api(&node, "/api/v1/alerts")["alerts"].clone();
    assert_eq!(alerts[0]["labels"]["alertname"], "TooHot");
    assert_eq!(alerts[0]["state"], "firing");
    assert_eq!(alerts[0]["activeAt"], active_at);

    target.set(20.0);
    let resolved = wait_for("a resolved notification", &node, || {
        with_status(&hook, "resolved")
    });
    assert_eq!(resolved["alerts"][0]["labels"]["alertname"], "TooHot");
    assert_eq!(resolved["alerts"][0]["status"], "resolved");
    wait_for("the alert to leave /api/v1/alerts", &node, || {
        let alerts = api(&node, "/api/v1/alerts")["alerts"].clone();
        alerts.as_array().unwrap().is_empty().then_some(())
    });

    // The rule manager's metrics, labelled by group.
    let (_, metrics) = common::get(&node.url("/metrics"));
    let key = format!(
        "rule_group=\"{};demo\"",
        dir.path().join("rules.yml").display()
    );
    for name in [
        "prometheus_rule_evaluations_total",
        "prometheus_rule_group_iterations_total",
        "prometheus_rule_group_rules",
        "prometheus_rule_group_interval_seconds",
    ] {
        assert!(
            metrics.contains(&format!("{name}{{{key}}}")),
            "{name} missing from /metrics:\n{metrics}"
        );
    }
}

fn active_at(node: &RunningNode) -> Option<jiff::Timestamp> {
    let alerts = api(node, "/api/v1/alerts")["alerts"].clone();
    alerts[0]["activeAt"]
        .as_str()
        .map(|text| text.parse().unwrap())
}

#[test]
fn a_pending_alert_keeps_its_for_state_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let target = Target::start(35.0);
    let hook = HookServer::start();
    let file = dir.path().join("tocsin.yml");
    std::fs::write(&file, config(&target, &hook)).unwrap();
    std::fs::write(
        dir.path().join("rules.yml"),
        "groups:\n  - name: slow\n    interval: 1s\n    rules:\n      - alert: Slow\n        expr: demo_temperature > 30\n        for: 1h\n",
    )
    .unwrap();
    let args = [
        "--config.file",
        file.to_str().unwrap(),
        // Rules whose `for` is shorter than the grace period are not restored.
        "--rules.alert.for-grace-period",
        "1s",
    ];
    let mut node = RunningNode::start(dir.path(), &args);
    // ALERTS_FOR_STATE is written once the (empty) restore at start-up is done.
    wait_for("ALERTS_FOR_STATE", &node, || {
        let data = api(
            &node,
            "/api/v1/query?query=ALERTS_FOR_STATE%7Balertname%3D%22Slow%22%7D",
        );
        data["result"]
            .as_array()
            .and_then(|result| result.first().cloned())
    });
    let before = active_at(&node).expect("a pending alert");
    // Pending a while longer, so that the restored activeAt is clearly apart from both ends.
    std::thread::sleep(Duration::from_secs(3));
    node.signal("TERM");
    assert!(node.wait_exit(Duration::from_secs(15)).is_some());
    let restarted_at = jiff::Timestamp::now();
    let node = RunningNode::start(dir.path(), &args);
    // Before restoring, the alert is new (active since the first evaluation after the
    // restart); after, its activeAt is the old one shifted by the downtime.
    let restored = wait_for("the restored for state", &node, || {
        active_at(&node).filter(|at| *at < restarted_at)
    });
    assert!(restored > before, "{restored} should be after {before}");
    let alerts = api(&node, "/api/v1/alerts")["alerts"].clone();
    assert_eq!(alerts[0]["state"], "pending");
}

/// The hex SHA-1 of `<file>;<group>`, Prometheus's page token, computed here with sha1sum.
fn token(file: &str, group: &str) -> String {
    let mut child = std::process::Command::new("sha1sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    write!(child.stdin.take().unwrap(), "{file};{group}").unwrap();
    let output = child.wait_with_output().unwrap();
    String::from_utf8(output.stdout).unwrap()[..40].to_string()
}

#[test]
fn rule_groups_are_paginated_as_prometheus_3_does() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tocsin.yml");
    std::fs::write(
        &file,
        "global:\n  evaluation_interval: 1s\nrule_files:\n  - rules.yml\n",
    )
    .unwrap();
    // Four groups; `c` has only an alerting rule, so `type=record` filters it out.
    let group = |name: &str, rule: &str| {
        format!("  - name: {name}\n    rules:\n      - {rule}\n        expr: vector(1)\n")
    };
    let rules = [
        group("a", "record: a_one"),
        group("b", "record: b_one"),
        group("c", "alert: C"),
        group("d", "record: d_one"),
    ]
    .concat();
    std::fs::write(dir.path().join("rules.yml"), format!("groups:\n{rules}")).unwrap();
    let node = RunningNode::start(dir.path(), &["--config.file", file.to_str().unwrap()]);
    let rules_file = dir.path().join("rules.yml");
    let rules_file = rules_file.to_str().unwrap();
    let names = |data: &Value| -> Vec<String> {
        data["groups"]
            .as_array()
            .unwrap()
            .iter()
            .map(|group| group["name"].as_str().unwrap().to_string())
            .collect()
    };

    // Without group_limit: every group, no token.
    let all = api(&node, "/api/v1/rules");
    assert_eq!(names(&all), ["a", "b", "c", "d"]);
    assert!(all.get("groupNextToken").is_none(), "{all}");

    let first = api(&node, "/api/v1/rules?group_limit=3");
    assert_eq!(names(&first), ["a", "b", "c"]);
    assert_eq!(first["groupNextToken"], token(rules_file, "d"));
    let last = api(
        &node,
        &format!(
            "/api/v1/rules?group_limit=3&group_next_token={}",
            token(rules_file, "d")
        ),
    );
    assert_eq!(names(&last), ["d"]);
    assert!(last.get("groupNextToken").is_none(), "{last}");

    // Filters apply to the page: a group left empty takes no place on it.
    let recording = api(&node, "/api/v1/rules?type=record&group_limit=2");
    assert_eq!(names(&recording), ["a", "b"]);
    assert_eq!(recording["groupNextToken"], token(rules_file, "d"));
    // Exactly a full page left: no token.
    let exact = api(
        &node,
        &format!(
            "/api/v1/rules?group_limit=2&group_next_token={}",
            token(rules_file, "c")
        ),
    );
    assert_eq!(names(&exact), ["c", "d"]);
    assert!(exact.get("groupNextToken").is_none(), "{exact}");

    for (query, error) in [
        (
            "group_next_token=abc".to_string(),
            "invalid parameter \"group_next_token\": group_limit needs to be present in order to paginate over the groups",
        ),
        (
            "group_limit=0".to_string(),
            "invalid parameter \"group_limit\": group_limit needs to be greater than 0",
        ),
        (
            "group_limit=2&group_next_token=abc".to_string(),
            "invalid parameter \"group_next_token\": invalid group_next_token 'abc'. were rule groups changed?",
        ),
    ] {
        let (status, body) = common::get(&node.url(&format!("/api/v1/rules?{query}")));
        assert_eq!(status, 400, "{query}: {body}");
        let json: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(json["errorType"], "bad_data", "{body}");
        assert_eq!(json["error"], error, "{body}");
    }
}
