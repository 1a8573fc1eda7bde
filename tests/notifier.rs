//! The notifier against a real Alertmanager 0.25 (Debian's `prometheus-alertmanager`) and fake
//! Alertmanagers served here: rule alerts arrive relabeled, with the external labels, batched,
//! once; an unreachable Alertmanager is an error while its set still delivers elsewhere;
//! discovery from files; the in-process alerting core; drain at shutdown; reload.
// Test support: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tocsin::config::LoadedConfig;
use tocsin::node::notifier::{Notifier, NotifierHandle, NotifierSettings};
use tocsin::promql::Labels;
use tocsin::rules::{AlertSink, OutgoingAlert};

const ALERTMANAGER: &str = "/usr/bin/prometheus-alertmanager";

fn loaded(yaml: &str, dir: &Path) -> LoadedConfig {
    let path = dir.join("prometheus.yml");
    std::fs::write(&path, yaml).unwrap();
    tocsin::config::load_file(&path).unwrap_or_else(|errors| panic!("{errors}"))
}

fn alert(name: &str, extra: &[(&str, &str)]) -> OutgoingAlert {
    let mut labels = vec![("alertname", name)];
    labels.extend_from_slice(extra);
    let now = jiff::Timestamp::now().as_millisecond();
    OutgoingAlert {
        labels: Labels::from_pairs(labels),
        annotations: tocsin::rules::alerting::Annotations::from_pairs([(
            "summary",
            format!("{name} is firing"),
        )]),
        starts_at_ms: now - 60_000,
        ends_at_ms: now + 3_600_000,
        generator_url: "http://tocsin.example:9090/graph?g0.expr=up".into(),
    }
}

/// Waits (generously) until `check` holds; panics with `what` otherwise.
async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A real Alertmanager on 127.0.0.1, clustering off; killed when dropped.
struct RealAlertmanager {
    child: Child,
    address: String,
    _dir: tempfile::TempDir,
}

impl Drop for RealAlertmanager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn start_alertmanager() -> RealAlertmanager {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("alertmanager.yml");
    std::fs::write(
        &config,
        "route:\n  receiver: blackhole\nreceivers:\n  - name: blackhole\n",
    )
    .unwrap();
    let address = format!("127.0.0.1:{}", free_port());
    let child = Command::new(ALERTMANAGER)
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address={address}"))
        .arg("--cluster.listen-address=")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("prometheus-alertmanager must be installed (Debian package)");
    let alertmanager = RealAlertmanager {
        child,
        address,
        _dir: dir,
    };
    let ready = format!("http://{}/-/ready", alertmanager.address);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let url = ready.clone();
        let up = tokio::task::spawn_blocking(move || {
            std::net::TcpStream::connect(
                url.trim_start_matches("http://")
                    .trim_end_matches("/-/ready"),
            )
            .is_ok()
                && common::get(&url).0 == 200
        })
        .await
        .unwrap();
        if up {
            return alertmanager;
        }
        assert!(Instant::now() < deadline, "Alertmanager did not get ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `GET /api/v2/alerts` of a real Alertmanager.
async fn alertmanager_alerts(address: &str) -> Vec<serde_json::Value> {
    let url = format!("http://{address}/api/v2/alerts");
    let (status, body) = tokio::task::spawn_blocking(move || common::get(&url))
        .await
        .unwrap();
    assert_eq!(status, 200, "{body}");
    serde_json::from_str::<Vec<serde_json::Value>>(&body).unwrap()
}

/// One POST a fake Alertmanager received.
#[derive(Debug, Clone)]
struct Received {
    path: String,
    content_type: String,
    authorization: String,
    alerts: Vec<serde_json::Value>,
}

/// An Alertmanager stand-in: records every POST; answers with the statuses queued in
/// `failures` first, then 200.
#[derive(Clone)]
struct FakeAlertmanager {
    address: String,
    received: Arc<Mutex<Vec<Received>>>,
    failures: Arc<Mutex<Vec<u16>>>,
}

impl FakeAlertmanager {
    async fn start() -> FakeAlertmanager {
        let received = Arc::new(Mutex::new(Vec::new()));
        let failures: Arc<Mutex<Vec<u16>>> = Arc::new(Mutex::new(Vec::new()));
        let (record, fail) = (Arc::clone(&received), Arc::clone(&failures));
        let app = axum::Router::new().fallback(
            move |uri: axum::http::Uri, headers: axum::http::HeaderMap, body: String| {
                let (record, fail) = (Arc::clone(&record), Arc::clone(&fail));
                async move {
                    let header = |name: &str| {
                        headers
                            .get(name)
                            .and_then(|value| value.to_str().ok())
                            .unwrap_or("")
                            .to_string()
                    };
                    record.lock().unwrap().push(Received {
                        path: uri.path().to_string(),
                        content_type: header("content-type"),
                        authorization: header("authorization"),
                        alerts: serde_json::from_str(&body).unwrap_or_default(),
                    });
                    let status = {
                        let mut fail = fail.lock().unwrap();
                        if fail.is_empty() { 200 } else { fail.remove(0) }
                    };
                    axum::http::StatusCode::from_u16(status).unwrap()
                }
            },
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        tokio::spawn(async move { axum::serve(listener, app).await });
        FakeAlertmanager {
            address,
            received,
            failures,
        }
    }

    fn posts(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    fn alert_names(&self) -> Vec<String> {
        self.posts()
            .iter()
            .flat_map(|post| post.alerts.iter())
            .map(|alert| {
                alert["labels"]["alertname"]
                    .as_str()
                    .unwrap_or("")
                    .to_string()
            })
            .collect()
    }
}

/// An address nothing listens on (bound once, then released).
fn unreachable_address() -> String {
    format!("127.0.0.1:{}", free_port())
}

fn settings() -> NotifierSettings {
    NotifierSettings::default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_alertmanager_gets_relabeled_alerts_with_external_labels_once() {
    let alertmanager = start_alertmanager().await;
    let dir = tempfile::tempdir().unwrap();
    let config = loaded(
        &format!(
            "global:\n  external_labels:\n    region: eu-west\n    severity: info\n\
             alerting:\n  alert_relabel_configs:\n\
             \x20   - source_labels: [team]\n      regex: noisy\n      action: drop\n\
             \x20   - source_labels: [region]\n      target_label: datacenter\n\
             \x20 alertmanagers:\n    - static_configs:\n        - targets: ['{}']\n",
            alertmanager.address
        ),
        dir.path(),
    );
    let notifier = Notifier::start(settings(), &config, None).unwrap();
    let batch = vec![
        alert("DiskFull", &[("severity", "page"), ("team", "storage")]),
        alert("Noisy", &[("team", "noisy")]),
        alert("CpuHot", &[]),
    ];
    notifier.send(batch.clone());
    eventually("the Alertmanager holds both alerts", || {
        notifier.stats().sent.values().sum::<u64>() >= 2
    })
    .await;
    let alerts = alertmanager_alerts(&alertmanager.address).await;
    let by_name: BTreeMap<String, &serde_json::Value> = alerts
        .iter()
        .map(|a| (a["labels"]["alertname"].as_str().unwrap().to_string(), a))
        .collect();
    assert_eq!(
        by_name.keys().collect::<Vec<_>>(),
        ["CpuHot", "DiskFull"],
        "{alerts:?}"
    );
    assert_eq!(
        by_name["DiskFull"]["labels"],
        serde_json::json!({
            "alertname": "DiskFull", "severity": "page", "team": "storage",
            "region": "eu-west", "datacenter": "eu-west"
        })
    );
    assert_eq!(by_name["CpuHot"]["labels"]["severity"], "info");
    assert_eq!(
        by_name["CpuHot"]["annotations"],
        serde_json::json!({"summary": "CpuHot is firing"})
    );
    assert_eq!(
        by_name["CpuHot"]["generatorURL"],
        "http://tocsin.example:9090/graph?g0.expr=up"
    );
    let starts_at: jiff::Timestamp = by_name["CpuHot"]["startsAt"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(starts_at.as_millisecond(), batch[2].starts_at_ms);
    assert_eq!(by_name["CpuHot"]["status"]["state"], "active");

    // Rules send firing alerts again every evaluation: the Alertmanager keeps one of each.
    notifier.send(batch.clone());
    notifier.send(batch);
    eventually("the re-sent alerts are delivered", || {
        notifier.stats().sent.values().sum::<u64>() >= 6
    })
    .await;
    assert_eq!(alertmanager_alerts(&alertmanager.address).await.len(), 2);
    let stats = notifier.stats();
    assert_eq!(stats.dropped, 0);
    assert!(
        stats.errors.values().all(|&errors| errors == 0),
        "{stats:?}"
    );
    notifier.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn six_hundred_alerts_are_three_posts_to_the_path_with_auth() {
    let fake = FakeAlertmanager::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = loaded(
        &format!(
            "alerting:\n  alertmanagers:\n    - path_prefix: /am/\n\
             \x20     authorization:\n        credentials: s3cret\n\
             \x20     static_configs:\n        - targets: ['{}']\n",
            fake.address
        ),
        dir.path(),
    );
    let notifier = Notifier::start(settings(), &config, None).unwrap();
    let alerts: Vec<OutgoingAlert> = (0..600).map(|i| alert(&format!("A{i:03}"), &[])).collect();
    notifier.send(alerts);
    eventually("600 alerts delivered", || fake.alert_names().len() >= 600).await;
    let posts = fake.posts();
    let sizes: Vec<usize> = posts.iter().map(|post| post.alerts.len()).collect();
    assert_eq!(sizes, [256, 256, 88]);
    for post in &posts {
        assert_eq!(post.path, "/am/api/v2/alerts");
        assert_eq!(post.content_type, "application/json");
        assert_eq!(post.authorization, "Bearer s3cret");
    }
    let names = fake.alert_names();
    let expected: Vec<String> = (0..600).map(|i| format!("A{i:03}")).collect();
    assert_eq!(names, expected, "each alert once, in order");
    let url = format!("http://{}/am/api/v2/alerts", fake.address);
    assert_eq!(notifier.stats().sent.get(&url), Some(&600));
    notifier.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_alertmanager_is_an_error_while_its_set_delivers_elsewhere() {
    let fake = FakeAlertmanager::start().await;
    let dead = unreachable_address();
    let lonely_dead = unreachable_address();
    let dir = tempfile::tempdir().unwrap();
    let yaml = format!(
        "alerting:\n  alertmanagers:\n\
         \x20   - timeout: 5s\n      static_configs:\n        - targets: ['{dead}', '{}']\n",
        fake.address
    );
    let notifier = Notifier::start(settings(), &loaded(&yaml, dir.path()), None).unwrap();
    notifier.send(vec![alert("A", &[]), alert("B", &[])]);
    let dead_url = format!("http://{dead}/api/v2/alerts");
    let fake_url = format!("http://{}/api/v2/alerts", fake.address);
    eventually("both Alertmanagers tried", || {
        let stats = notifier.stats();
        stats.errors.get(&dead_url) == Some(&2) && stats.sent.get(&fake_url) == Some(&2)
    })
    .await;
    let stats = notifier.stats();
    assert_eq!(
        stats.dropped, 0,
        "the set delivered to one of its Alertmanagers"
    );
    assert_eq!(stats.sent.get(&dead_url), Some(&0));
    assert_eq!(fake.alert_names(), ["A", "B"]);

    // A second set whose only Alertmanager is down: the batch counts as dropped, even though
    // the first set delivered it.
    let yaml = format!(
        "{yaml}    - timeout: 5s\n      static_configs:\n        - targets: ['{lonely_dead}']\n"
    );
    notifier.apply_config(&loaded(&yaml, dir.path())).unwrap();
    notifier.send(vec![alert("C", &[])]);
    let lonely_url = format!("http://{lonely_dead}/api/v2/alerts");
    eventually("the lonely Alertmanager tried", || {
        notifier.stats().errors.get(&lonely_url) == Some(&1)
    })
    .await;
    eventually("the batch counted as dropped", || {
        notifier.stats().dropped == 1
    })
    .await;
    assert_eq!(fake.alert_names(), ["A", "B", "C"]);
    notifier.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_post_is_not_retried_so_nothing_is_duplicated() {
    let fake = FakeAlertmanager::start().await;
    fake.failures.lock().unwrap().push(500);
    let dir = tempfile::tempdir().unwrap();
    let yaml = format!(
        "alerting:\n  alertmanagers:\n    - static_configs:\n        - targets: ['{}']\n",
        fake.address
    );
    let notifier = Notifier::start(settings(), &loaded(&yaml, dir.path()), None).unwrap();
    let url = format!("http://{}/api/v2/alerts", fake.address);
    notifier.send(vec![alert("First", &[])]);
    eventually("the failed POST counted", || {
        notifier.stats().errors.get(&url) == Some(&1)
    })
    .await;
    assert_eq!(notifier.stats().dropped, 1);
    // The next evaluation's alerts (the first one re-sent with a new one) go out once each.
    notifier.send(vec![alert("First", &[]), alert("Second", &[])]);
    eventually("the second POST accepted", || {
        notifier.stats().sent.get(&url) == Some(&2)
    })
    .await;
    let posts = fake.posts();
    assert_eq!(posts.len(), 2, "{posts:?}");
    assert_eq!(fake.alert_names(), ["First", "First", "Second"]);
    notifier.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_discovery_relabeling_and_the_alertmanagers_endpoint() {
    use tower::ServiceExt as _;
    let fake = FakeAlertmanager::start().await;
    let other = FakeAlertmanager::start().await;
    let dir = tempfile::tempdir().unwrap();
    let targets = dir.path().join("ams.yml");
    std::fs::write(
        &targets,
        format!(
            "- targets: ['{}', 'skip.example:9093']\n  labels:\n    env: prod\n",
            fake.address
        ),
    )
    .unwrap();
    let yaml = "alerting:\n  alertmanagers:\n\
                \x20   - file_sd_configs:\n        - files: ['ams.yml']\n\
                \x20     relabel_configs:\n\
                \x20       - source_labels: [__address__]\n          regex: skip\\..*\n          action: drop\n\
                \x20       - source_labels: [env]\n          regex: (.+)\n          target_label: __alerts_path__\n\
                \x20         replacement: /$1/api/v2/alerts\n";
    let notifier = Notifier::start(settings(), &loaded(yaml, dir.path()), None).unwrap();
    let handle = NotifierHandle::new();
    let router: axum::Router = tocsin::api::prometheus::alertmanagers::routes(Arc::clone(&handle));
    let get = |router: axum::Router| async move {
        let request = axum::http::Request::get("/api/v1/alertmanagers")
            .body(axum::body::Body::empty())
            .unwrap();
        let response = router.oneshot(request).await.unwrap();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        serde_json::from_slice::<serde_json::Value>(&bytes).unwrap()
    };
    assert_eq!(
        get(router.clone()).await["data"]["activeAlertmanagers"],
        serde_json::json!([]),
        "no notifier yet"
    );
    handle.set(Arc::clone(&notifier));
    let active_url = format!("http://{}/prod/api/v2/alerts", fake.address);
    eventually("the file's Alertmanager discovered", || {
        notifier.alertmanagers().active == [active_url.clone()]
    })
    .await;
    assert_eq!(
        get(router.clone()).await,
        serde_json::json!({
            "status": "success",
            "data": {
                "activeAlertmanagers": [{"url": active_url}],
                "droppedAlertmanagers": [{"url": "http://skip.example:9093/api/v2/alerts"}]
            }
        })
    );
    notifier.send(vec![alert("Discovered", &[])]);
    eventually("the discovered Alertmanager got the alert", || {
        fake.alert_names() == ["Discovered"]
    })
    .await;
    assert_eq!(fake.posts()[0].path, "/prod/api/v2/alerts");

    // The file changes: the set follows it.
    std::fs::write(&targets, format!("- targets: ['{}']\n", other.address)).unwrap();
    let moved_url = format!("http://{}/api/v2/alerts", other.address);
    eventually("the new file content discovered", || {
        notifier.alertmanagers().active == [moved_url.clone()]
    })
    .await;
    notifier.send(vec![alert("Moved", &[])]);
    eventually("the new Alertmanager got the alert", || {
        other.alert_names() == ["Moved"]
    })
    .await;
    assert_eq!(fake.alert_names(), ["Discovered"]);
    notifier.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_nodes_own_alerting_core_gets_every_alert_and_its_refusals_are_counted() {
    let fake = FakeAlertmanager::start().await;
    let dir = tempfile::tempdir().unwrap();
    let yaml = format!(
        "global:\n  external_labels:\n    replica: a\n\
         alerting:\n  alertmanagers:\n    - static_configs:\n        - targets: ['{}']\n\
         \x20     alert_relabel_configs:\n        - regex: replica\n          action: labeldrop\n",
        fake.address
    );
    let config = loaded(&yaml, dir.path());
    let runtime = Arc::new(
        tocsin::node::alerting::AlertingRuntime::open(
            &dir.path().join("data"),
            &config,
            "http://tocsin.example:9093/",
            jiff::Timestamp::now(),
        )
        .unwrap(),
    );
    let notifier = Notifier::start(settings(), &config, Some(Arc::clone(&runtime))).unwrap();
    let mut backwards = alert("Backwards", &[]);
    backwards.ends_at_ms = backwards.starts_at_ms - 1;
    notifier.send(vec![alert("Local", &[("job", "node")]), backwards]);
    eventually("the local core saw the batch", || {
        let stats = notifier.stats();
        stats.local_accepted + stats.local_rejected == 2
    })
    .await;
    let stats = notifier.stats();
    assert_eq!((stats.local_accepted, stats.local_rejected), (1, 1));
    let stored: Vec<BTreeMap<String, String>> = runtime.read(|pipeline| {
        pipeline
            .store()
            .iter()
            .map(|alert| alert.labels.to_map())
            .collect()
    });
    assert_eq!(
        stored,
        [BTreeMap::from([
            ("alertname".to_string(), "Local".to_string()),
            ("job".to_string(), "node".to_string()),
            ("replica".to_string(), "a".to_string()),
        ])],
        "the external labels, but not the set's relabeling"
    );
    eventually("the Alertmanager got both", || {
        fake.alert_names().len() == 2
    })
    .await;
    assert!(
        fake.posts()[0]
            .alerts
            .iter()
            .all(|a| a["labels"].get("replica").is_none()),
        "the set's alert_relabel_configs dropped replica"
    );
    notifier.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_drains_the_queue_when_asked_and_drops_it_otherwise() {
    let fake = FakeAlertmanager::start().await;
    let dir = tempfile::tempdir().unwrap();
    let yaml = format!(
        "alerting:\n  alertmanagers:\n    - static_configs:\n        - targets: ['{}']\n",
        fake.address
    );
    let config = loaded(&yaml, dir.path());
    let notifier = Notifier::start(settings(), &config, None).unwrap();
    notifier.send((0..1000).map(|i| alert(&format!("D{i}"), &[])).collect());
    notifier.stop().await;
    assert_eq!(
        fake.alert_names().len(),
        1000,
        "drained before stop returned"
    );
    assert_eq!(notifier.stats().queue_length, 0);

    let other = FakeAlertmanager::start().await;
    let yaml = format!(
        "alerting:\n  alertmanagers:\n    - static_configs:\n        - targets: ['{}']\n",
        other.address
    );
    let no_drain = NotifierSettings {
        drain_on_shutdown: false,
        ..settings()
    };
    let notifier = Notifier::start(no_drain, &loaded(&yaml, dir.path()), None).unwrap();
    notifier.send((0..1000).map(|i| alert(&format!("N{i}"), &[])).collect());
    notifier.stop().await;
    let stats = notifier.stats();
    assert_eq!(stats.queue_length, 0);
    assert_eq!(
        other.alert_names().len() as u64 + stats.dropped,
        1000,
        "what was not sent before stop is counted as dropped"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_swaps_alertmanagers_and_metrics_use_prometheus_names() {
    let first = FakeAlertmanager::start().await;
    let second = FakeAlertmanager::start().await;
    let dir = tempfile::tempdir().unwrap();
    let yaml = |address: &str| {
        format!(
            "alerting:\n  alertmanagers:\n    - static_configs:\n        - targets: ['{address}']\n"
        )
    };
    let notifier =
        Notifier::start(settings(), &loaded(&yaml(&first.address), dir.path()), None).unwrap();
    notifier.send(vec![alert("Before", &[])]);
    eventually("the first Alertmanager got it", || {
        first.alert_names() == ["Before"]
    })
    .await;
    notifier
        .apply_config(&loaded(&yaml(&second.address), dir.path()))
        .unwrap();
    notifier.send(vec![alert("After", &[])]);
    eventually("the second Alertmanager got it", || {
        second.alert_names() == ["After"]
    })
    .await;
    assert_eq!(first.alert_names(), ["Before"]);

    let telemetry = tocsin::telemetry::Telemetry::new();
    notifier.register_metrics(&telemetry);
    let text = telemetry.encode_text();
    let second_url = format!("http://{}/api/v2/alerts", second.address);
    for line in [
        format!("prometheus_notifications_sent_total{{alertmanager=\"{second_url}\"}} 1"),
        format!("prometheus_notifications_errors_total{{alertmanager=\"{second_url}\"}} 0"),
        "prometheus_notifications_dropped_total 0".to_string(),
        "prometheus_notifications_queue_capacity 10000".to_string(),
        "prometheus_notifications_queue_length 0".to_string(),
        "prometheus_notifications_alertmanagers_discovered 1".to_string(),
        format!(
            "prometheus_notifications_latency_seconds_count{{alertmanager=\"{second_url}\"}} 1"
        ),
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing {line:?} in:\n{text}"
        );
    }
    assert!(
        text.contains(&format!(
            "prometheus_notifications_latency_seconds{{alertmanager=\"{second_url}\",quantile=\"0.99\"}}"
        )),
        "{text}"
    );
    // The first Alertmanager is gone: so are its series.
    assert!(!text.contains(&first.address), "{text}");
    let openmetrics = telemetry.encode_openmetrics();
    assert!(
        openmetrics.contains(&format!(
            "prometheus_notifications_sent_total{{alertmanager=\"{second_url}\"}} 1"
        )),
        "{openmetrics}"
    );
    notifier.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_discovery_finds_the_alertmanagers() {
    let fake = FakeAlertmanager::start().await;
    let listing =
        serde_json::json!([{ "targets": [fake.address.clone()], "labels": {} }]).to_string();
    let sd = axum::Router::new().route(
        "/sd",
        axum::routing::get(move || {
            let listing = listing.clone();
            async move { ([("content-type", "application/json")], listing) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let sd_address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, sd).await });
    let dir = tempfile::tempdir().unwrap();
    let config = loaded(
        &format!(
            "alerting:\n  alertmanagers:\n    - http_sd_configs:\n        - url: http://{sd_address}/sd\n"
        ),
        dir.path(),
    );
    let notifier = Notifier::start(settings(), &config, None).unwrap();
    let url = format!("http://{}/api/v2/alerts", fake.address);
    eventually("the discovered Alertmanager", || {
        notifier.alertmanagers().active.contains(&url)
    })
    .await;
    notifier.send(vec![alert("Discovered", &[])]);
    eventually("the alert delivered", || {
        fake.alert_names() == ["Discovered"]
    })
    .await;
    notifier.stop().await;
}
