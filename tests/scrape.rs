//! End to end: a `ScrapeManager` scrapes the node_exporter fixture from a tiny HTTP server in
//! the test into a temporary TSDB every second; samples, `up`, the synthetic series, stale
//! markers for a vanished series and for a target that goes away are checked in the TSDB.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tocsin::config::Config;
use tocsin::config::prometheus::ScrapeConfig;
use tocsin::ingest::parse::{Entry, TextParser};
use tocsin::ingest::scrape::{Health, STALE_NAN_BITS, ScrapeManager, ScrapeOptions};
use tocsin::tsdb::{Matcher, Tsdb, TsdbOptions};

const FIXTURE: &str = "/work/shared/fixtures/exposition/node_exporter-1.5.0.prom.txt";
/// The series the server stops exposing half-way (one line of the fixture).
const VANISHING: &str = "node_boot_time_seconds";

fn jobs(yaml: &str) -> Vec<ScrapeConfig> {
    let mut config: Config = tocsin::config::parse_document(yaml, "p.yml").unwrap();
    config.finish().unwrap();
    config
        .scrape_configs
        .into_iter()
        .map(|job| job.value)
        .collect()
}

/// Serves `/metrics`: the fixture, without [`VANISHING`] once `trimmed` is set.
async fn serve(body: String, trimmed: Arc<AtomicBool>) -> std::net::SocketAddr {
    use axum::http::header;
    let trimmed_body: String = body
        .lines()
        .filter(|line| !line.starts_with(VANISHING))
        .map(|line| format!("{line}\n"))
        .collect();
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let text = if trimmed.load(Ordering::SeqCst) {
                trimmed_body.clone()
            } else {
                body.clone()
            };
            async move {
                (
                    [(
                        header::CONTENT_TYPE,
                        "text/plain; version=0.0.4; charset=utf-8",
                    )],
                    text,
                )
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    address
}

/// Every sample of the series matching `matchers` (`name` plus label pairs).
fn samples(tsdb: &Tsdb, name: &str, labels: &[(&str, &str)]) -> Vec<(i64, f64)> {
    let mut matchers = vec![Matcher::equal("__name__", name)];
    matchers.extend(labels.iter().map(|(n, v)| Matcher::equal(*n, *v)));
    let querier = tsdb.querier(i64::MIN, i64::MAX);
    let series: Vec<_> = querier.select(&matchers).unwrap().collect();
    assert!(series.len() <= 1, "{name}: {} series", series.len());
    series
        .first()
        .map(|series| series.samples().collect())
        .unwrap_or_default()
}

fn is_stale(value: f64) -> bool {
    value.to_bits() == STALE_NAN_BITS
}

async fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..200 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scrapes_the_node_exporter_fixture_end_to_end() {
    let body = std::fs::read_to_string(FIXTURE).unwrap();
    let exposed = TextParser::new(body.as_bytes())
        .filter(|entry| matches!(entry, Ok(Entry::Sample(_))))
        .count();
    let dropped_by_relabel = body
        .lines()
        .filter(|line| line.starts_with("go_gc_duration_seconds"))
        .count();
    assert!(exposed > 400 && dropped_by_relabel > 0);

    let trimmed = Arc::new(AtomicBool::new(false));
    let address = serve(body, Arc::clone(&trimmed)).await;
    let folder = tempfile::tempdir().unwrap();
    let tsdb = Arc::new(Tsdb::open(folder.path(), TsdbOptions::default()).unwrap());
    let manager = ScrapeManager::new(Arc::clone(&tsdb), ScrapeOptions::default()).unwrap();
    let config = format!(
        concat!(
            "scrape_configs:\n",
            "- job_name: node\n",
            "  scrape_interval: 1s\n",
            "  scrape_timeout: 1s\n",
            "  static_configs:\n",
            "  - targets: ['{address}']\n",
            "    labels: {{env: test}}\n",
            "  metric_relabel_configs:\n",
            "  - source_labels: [__name__]\n",
            "    regex: go_gc_duration_seconds.*\n",
            "    action: drop\n",
        ),
        address = address
    );
    let instance = address.to_string();
    let target = [
        ("job", "node"),
        ("instance", instance.as_str()),
        ("env", "test"),
    ];
    manager.apply_config(&jobs(&config), folder.path()).unwrap();
    wait_for("two scrapes", || manager.scrapes("node") >= 2).await;

    // `up` and the synthetic series, with the target's labels.
    let up = samples(&tsdb, "up", &target);
    assert!(up.len() >= 2, "{up:?}");
    assert!(up.iter().all(|(_, v)| *v == 1.0), "{up:?}");
    let scraped = samples(&tsdb, "scrape_samples_scraped", &target);
    assert_eq!(scraped[0].1, exposed as f64);
    let post = samples(&tsdb, "scrape_samples_post_metric_relabeling", &target);
    assert_eq!(post[0].1, (exposed - dropped_by_relabel) as f64);
    let added = samples(&tsdb, "scrape_series_added", &target);
    assert_eq!(added[0].1, (exposed - dropped_by_relabel) as f64);
    assert_eq!(added[1].1, 0.0, "the second scrape adds no series");
    let duration = samples(&tsdb, "scrape_duration_seconds", &target);
    assert!(duration[0].1 > 0.0 && duration[0].1 < 1.0);
    // The report series share the scrape's timestamp with its samples.
    let load = samples(&tsdb, "node_load1", &target);
    assert_eq!(load[0].0, up[0].0);
    assert_eq!(load[0].1, 0.01, "the value in the fixture");
    let cpu = samples(
        &tsdb,
        "node_cpu_seconds_total",
        &[("cpu", "0"), ("mode", "idle"), ("job", "node")],
    );
    assert!(!cpu.is_empty() && cpu[0].1 > 0.0, "{cpu:?}");
    assert!(samples(&tsdb, "go_gc_duration_seconds", &[("quantile", "0")]).is_empty());
    // Consecutive scrapes are one interval apart (the loop keeps its phase).
    let gap = up[1].0 - up[0].0;
    assert!((900..=1100).contains(&gap), "{gap} ms between scrapes");

    let active = manager.active_targets();
    assert_eq!(active.len(), 1);
    assert_eq!(active[0].status.health, Health::Up);
    assert_eq!(active[0].status.last_error, "");
    assert_eq!(manager.pool_names(), ["node"]);

    // A series the target stops exposing gets a stale marker at the next scrape.
    trimmed.store(true, Ordering::SeqCst);
    let seen = manager.scrapes("node");
    wait_for("two more scrapes", || manager.scrapes("node") >= seen + 2).await;
    let boot = samples(&tsdb, VANISHING, &target);
    let last = boot.last().unwrap();
    assert!(is_stale(last.1), "{boot:?}");
    assert!(boot[..boot.len() - 1].iter().all(|(_, v)| !is_stale(*v)));
    assert!(!is_stale(
        samples(&tsdb, "node_load1", &target).last().unwrap().1
    ));

    // The target goes away: about two intervals later everything it had is stale.
    let stale_config = config.replace(&format!("['{address}']"), "[]");
    manager
        .apply_config(&jobs(&stale_config), folder.path())
        .unwrap();
    assert!(manager.active_targets().is_empty());
    wait_for("stale markers for the target", || {
        samples(&tsdb, "up", &target)
            .last()
            .is_some_and(|(_, v)| is_stale(*v))
    })
    .await;
    for name in [
        "node_load1",
        "scrape_samples_scraped",
        "scrape_series_added",
        "scrape_duration_seconds",
    ] {
        let series = samples(&tsdb, name, &target);
        assert!(is_stale(series.last().unwrap().1), "{name}: {series:?}");
    }
    // The vanished series got exactly one marker.
    let boot = samples(&tsdb, VANISHING, &target);
    assert_eq!(boot.iter().filter(|(_, v)| is_stale(*v)).count(), 1);
    manager.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_scrapes_report_down_and_reload_keeps_unchanged_loops() {
    let folder = tempfile::tempdir().unwrap();
    let tsdb = Arc::new(Tsdb::open(folder.path(), TsdbOptions::default()).unwrap());
    let manager = ScrapeManager::new(Arc::clone(&tsdb), ScrapeOptions::default()).unwrap();
    // Nothing listens on port 1.
    let config = concat!(
        "scrape_configs:\n",
        "- job_name: dead\n",
        "  scrape_interval: 1s\n",
        "  static_configs:\n",
        "  - targets: ['127.0.0.1:1']\n",
    );
    manager.apply_config(&jobs(config), folder.path()).unwrap();
    wait_for("a scrape", || manager.scrapes("dead") >= 1).await;
    let up = samples(&tsdb, "up", &[("job", "dead")]);
    assert_eq!(up[0].1, 0.0);
    let active = manager.active_targets();
    assert_eq!(active[0].status.health, Health::Down);
    assert!(
        active[0].status.last_error.contains("127.0.0.1:1"),
        "{}",
        active[0].status.last_error
    );
    // `/api/v1/targets` and `/api/v1/scrape_pools` in Prometheus's shapes.
    let handle = tocsin::node::ingest::IngestHandle::new();
    handle.set(Arc::new(tocsin::node::ingest::IngestRuntime {
        tsdb: Arc::clone(&tsdb),
        scrape: Arc::clone(&manager),
    }));
    let router: axum::Router = tocsin::api::targets::routes(handle);
    let get = |uri: &'static str| {
        let router = router.clone();
        async move {
            use tower::ServiceExt as _;
            let request = axum::http::Request::get(uri)
                .body(axum::body::Body::empty())
                .unwrap();
            let response = router.oneshot(request).await.unwrap();
            let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
                .await
                .unwrap();
            serde_json::from_slice::<serde_json::Value>(&bytes).unwrap()
        }
    };
    let json = get("/api/v1/targets").await;
    let target = &json["data"]["activeTargets"][0];
    assert_eq!(json["status"], "success");
    assert_eq!(target["health"], "down");
    assert_eq!(target["scrapePool"], "dead");
    assert_eq!(target["scrapeUrl"], "http://127.0.0.1:1/metrics");
    assert_eq!(target["labels"]["instance"], "127.0.0.1:1");
    assert_eq!(target["discoveredLabels"]["__address__"], "127.0.0.1:1");
    assert_eq!(target["scrapeInterval"], "1s");
    assert!(target["lastScrape"].as_str().unwrap().ends_with('Z'));
    assert!(target["lastScrapeDuration"].is_f64());
    assert_eq!(json["data"]["droppedTargets"], serde_json::json!([]));
    let json = get("/api/v1/targets?state=dropped").await;
    assert_eq!(json["data"]["activeTargets"], serde_json::json!([]));
    let json = get("/api/v1/scrape_pools").await;
    assert_eq!(json["data"]["scrapePools"], serde_json::json!(["dead"]));

    // Applying the same configuration again keeps the loop (its scrape count goes on).
    let before = manager.scrapes("dead");
    manager.apply_config(&jobs(config), folder.path()).unwrap();
    assert!(manager.scrapes("dead") >= before);
    manager.stop().await;
    assert!(manager.pool_names().is_empty());
}
