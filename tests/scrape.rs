//! End to end: a `ScrapeManager` scrapes the node_exporter fixture from a tiny HTTP server in
//! the test into a temporary TSDB every second; samples, `up`, the synthetic series, stale
//! markers for a vanished series and for a target that goes away are checked in the TSDB.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::scrape::{is_stale, jobs, samples, wait_for};
use common::target::serve_router;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tocsin::ingest::parse::{Entry, TextParser};
use tocsin::ingest::scrape::{Health, ScrapeManager, ScrapeOptions};
use tocsin::tsdb::{Tsdb, TsdbOptions};

const FIXTURE: &str = "/work/shared/fixtures/exposition/node_exporter-1.5.0.prom.txt";
/// The series the server stops exposing half-way (one line of the fixture).
const VANISHING: &str = "node_boot_time_seconds";

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
    serve_router(app).await
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

/// Serves `/metrics` with a two-line exposition that declares its metadata.
async fn serve_small_exposition() -> std::net::SocketAddr {
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(|| async {
            (
                [(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")],
                "# HELP demo_requests_total Requests served.\n# TYPE demo_requests_total counter\ndemo_requests_total 7\n",
            )
        }),
    );
    serve_router(app).await
}

/// What the HTTP discovery server in a test answers.
#[derive(Clone)]
struct SdAnswer {
    status: u16,
    content_type: &'static str,
    body: String,
}

async fn serve_http_sd(
    answer: Arc<std::sync::Mutex<SdAnswer>>,
    requests: Arc<std::sync::atomic::AtomicU64>,
) -> std::net::SocketAddr {
    let app = axum::Router::new().route(
        "/sd",
        axum::routing::get(move |headers: axum::http::HeaderMap| {
            let answer = answer.lock().unwrap().clone();
            requests.fetch_add(1, Ordering::SeqCst);
            assert_eq!(headers["accept"], "application/json");
            assert_eq!(headers["x-prometheus-refresh-interval-seconds"], "1");
            assert_eq!(headers["authorization"], "Bearer sd-token");
            async move {
                (
                    axum::http::StatusCode::from_u16(answer.status).unwrap(),
                    [(axum::http::header::CONTENT_TYPE, answer.content_type)],
                    answer.body,
                )
            }
        }),
    );
    serve_router(app).await
}

/// A GET through the API routes, parsed as JSON.
async fn api_get(router: &axum::Router, uri: &str) -> (u16, serde_json::Value) {
    use tower::ServiceExt as _;
    let request = axum::http::Request::get(uri)
        .body(axum::body::Body::empty())
        .unwrap();
    let response = router.clone().oneshot(request).await.unwrap();
    let status = response.status().as_u16();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    (status, serde_json::from_slice(&bytes).unwrap())
}

fn api_router(tsdb: &Arc<Tsdb>, manager: &Arc<ScrapeManager>) -> axum::Router {
    let handle = tocsin::node::ingest::IngestHandle::new();
    handle.set(Arc::new(tocsin::node::ingest::IngestRuntime {
        tsdb: Arc::clone(tsdb),
        scrape: Arc::clone(manager),
    }));
    tocsin::api::targets::routes(handle)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_sd_targets_are_scraped_and_kept_through_failures() {
    use tocsin::ingest::discovery::SD_COUNTERS;
    let metrics = serve_small_exposition().await;
    let answer = Arc::new(std::sync::Mutex::new(SdAnswer {
        status: 200,
        content_type: "application/json; charset=utf-8",
        body: format!(r#"[{{"targets": ["{metrics}"], "labels": {{"team": "sd"}}}}]"#),
    }));
    let requests = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let sd = serve_http_sd(Arc::clone(&answer), Arc::clone(&requests)).await;
    let folder = tempfile::tempdir().unwrap();
    std::fs::write(folder.path().join("token"), "sd-token\n").unwrap();
    let tsdb = Arc::new(Tsdb::open(&folder.path().join("db"), TsdbOptions::default()).unwrap());
    let manager = ScrapeManager::new(Arc::clone(&tsdb), ScrapeOptions::default()).unwrap();
    let config = format!(
        concat!(
            "scrape_configs:\n",
            "- job_name: from-http\n",
            "  scrape_interval: 1s\n",
            "  scrape_timeout: 1s\n",
            "  http_sd_configs:\n",
            "  - url: http://{sd}/sd\n",
            "    refresh_interval: 1s\n",
            "    bearer_token_file: token\n",
        ),
        sd = sd
    );
    manager.apply_config(&jobs(&config), folder.path()).unwrap();
    wait_for("a scrape of the discovered target", || {
        manager.scrapes("from-http") >= 1
    })
    .await;
    let instance = metrics.to_string();
    let labels = [
        ("job", "from-http"),
        ("instance", instance.as_str()),
        ("team", "sd"),
    ];
    let value = samples(&tsdb, "demo_requests_total", &labels);
    assert_eq!(value[0].1, 7.0);
    let active = manager.active_targets();
    assert_eq!(active.len(), 1);
    let discovered = &active[0].target.discovered;
    assert_eq!(discovered.get("__meta_url"), format!("http://{sd}/sd"));
    assert_eq!(discovered.get("__address__"), instance);

    // Metadata from the exposition, in Prometheus's two shapes.
    let router = api_router(&tsdb, &manager);
    let (status, json) = api_get(
        &router,
        "/api/v1/targets/metadata?match_target=%7Bjob%3D%22from-http%22%7D",
    )
    .await;
    assert_eq!(status, 200, "{json}");
    assert_eq!(
        json["data"],
        serde_json::json!([{
            "target": {"instance": instance, "job": "from-http", "team": "sd"},
            "metric": "demo_requests_total",
            "type": "counter",
            "help": "Requests served.",
            "unit": "",
        }])
    );
    let (_, json) = api_get(
        &router,
        "/api/v1/targets/metadata?metric=demo_requests_total",
    )
    .await;
    assert!(json["data"][0].get("metric").is_none(), "{json}");
    assert_eq!(json["data"][0]["type"], "counter");
    let (_, json) = api_get(
        &router,
        "/api/v1/targets/metadata?match_target=%7Bjob%3D%22other%22%7D",
    )
    .await;
    assert_eq!(json["data"], serde_json::json!([]));
    let (status, json) = api_get(&router, "/api/v1/targets/metadata?match_target=up%7B").await;
    assert_eq!(status, 400);
    assert_eq!(json["errorType"], "bad_data");
    assert!(
        json["error"]
            .as_str()
            .unwrap()
            .starts_with("invalid parameter \"match_target\"")
    );
    let (_, json) = api_get(&router, "/api/v1/metadata").await;
    assert_eq!(
        json["data"],
        serde_json::json!({"demo_requests_total": [{"type": "counter", "help": "Requests served.", "unit": ""}]})
    );
    let (_, json) = api_get(&router, "/api/v1/metadata?limit=0").await;
    assert_eq!(json["data"], serde_json::json!({}));
    let (_, json) = api_get(&router, "/api/v1/metadata?metric=nope").await;
    assert_eq!(json["data"], serde_json::json!({}));
    let (status, json) = api_get(&router, "/api/v1/metadata?limit=x").await;
    assert_eq!(
        (status, json["error"].as_str().unwrap()),
        (400, "limit must be a number")
    );

    // A failing server (wrong status, then wrong content type) keeps the last targets.
    let failures = SD_COUNTERS.http_failures.load(Ordering::SeqCst);
    answer.lock().unwrap().status = 500;
    let seen = requests.load(Ordering::SeqCst);
    wait_for("a failed refresh", || {
        requests.load(Ordering::SeqCst) >= seen + 2
    })
    .await;
    {
        let mut answer = answer.lock().unwrap();
        answer.status = 200;
        answer.content_type = "text/plain";
    }
    let seen = requests.load(Ordering::SeqCst);
    wait_for("a refused answer", || {
        requests.load(Ordering::SeqCst) >= seen + 2
    })
    .await;
    assert!(SD_COUNTERS.http_failures.load(Ordering::SeqCst) >= failures + 2);
    assert_eq!(
        manager.active_targets().len(),
        1,
        "the last good targets are kept"
    );

    // An empty list removes the target.
    {
        let mut answer = answer.lock().unwrap();
        answer.content_type = "application/json";
        answer.body = "[]".to_string();
    }
    wait_for("the target to go", || manager.active_targets().is_empty()).await;
    manager.stop().await;
}

/// How the test DNS server answers.
const DNS_ANSWERS: u8 = 0;
const DNS_SERVFAIL: u8 = 1;
const DNS_NXDOMAIN: u8 = 2;

/// A DNS server for tests on 127.0.0.1 (UDP): in mode [`DNS_ANSWERS`], answers SRV for
/// `_node._tcp.sd.test.` (one record, target `localhost.`), A for `node.sd.test.` (127.0.0.1),
/// and NXDOMAIN for anything else; in [`DNS_SERVFAIL`] it fails every query, in
/// [`DNS_NXDOMAIN`] no name exists. Packets are written by hand (RFC 1035 section 4).
async fn serve_dns(srv_port: u16, mode: Arc<std::sync::atomic::AtomicU8>) -> std::net::SocketAddr {
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let address = socket.local_addr().unwrap();
    tokio::spawn(async move {
        let mut buffer = [0u8; 1500];
        loop {
            let Ok((length, peer)) = socket.recv_from(&mut buffer).await else {
                return;
            };
            let mode = mode.load(Ordering::SeqCst);
            if let Some(answer) = dns_answer(&buffer[..length], srv_port, mode) {
                let _ = socket.send_to(&answer, peer).await;
            }
        }
    });
    address
}

fn dns_name(name: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for label in name.trim_end_matches('.').split('.') {
        out.push(label.len() as u8);
        out.extend_from_slice(label.as_bytes());
    }
    out.push(0);
    out
}

fn dns_answer(query: &[u8], srv_port: u16, mode: u8) -> Option<Vec<u8>> {
    if query.len() < 12 {
        return None;
    }
    // The question: labels up to the root, then type and class.
    let mut at = 12;
    let mut labels = Vec::new();
    loop {
        let length = *query.get(at)? as usize;
        at += 1;
        if length == 0 {
            break;
        }
        labels.push(String::from_utf8_lossy(query.get(at..at + length)?).to_lowercase());
        at += length;
    }
    let question_end = at + 4;
    let qtype = u16::from_be_bytes([*query.get(at)?, *query.get(at + 1)?]);
    let name = labels.join(".");
    let mut records: Vec<(u16, Vec<u8>)> = Vec::new();
    match (name.as_str(), qtype) {
        _ if mode != DNS_ANSWERS => {}
        ("_node._tcp.sd.test", 33) => {
            let mut data = vec![0, 10, 0, 5];
            data.extend_from_slice(&srv_port.to_be_bytes());
            data.extend(dns_name("localhost."));
            records.push((33, data));
        }
        ("node.sd.test", 1) => records.push((1, vec![127, 0, 0, 1])),
        _ => {}
    }
    let known =
        mode == DNS_ANSWERS && matches!(name.as_str(), "_node._tcp.sd.test" | "node.sd.test");
    let rcode = match mode {
        DNS_SERVFAIL => 2,
        _ if known => 0,
        _ => 3,
    };
    let mut out = Vec::new();
    out.extend_from_slice(&query[0..2]);
    // QR, opcode 0, RD copied, RA; rcode 2 (SERVFAIL) or 3 (NXDOMAIN) when not answering.
    let rd = query[2] & 0x01;
    out.push(0x80 | rd);
    out.push(0x80 | rcode);
    out.extend_from_slice(&[0, 1]);
    out.extend_from_slice(&(records.len() as u16).to_be_bytes());
    out.extend_from_slice(&[0, 0, 0, 0]);
    out.extend_from_slice(query.get(12..question_end)?);
    for (kind, data) in records {
        out.extend_from_slice(&[0xc0, 12]);
        out.extend_from_slice(&kind.to_be_bytes());
        out.extend_from_slice(&[0, 1, 0, 0, 0, 0]);
        out.extend_from_slice(&(data.len() as u16).to_be_bytes());
        out.extend(data);
    }
    Some(out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns_sd_srv_and_a_records_become_targets() {
    use tocsin::ingest::discovery::{DiscoveryOptions, SD_COUNTERS};
    let metrics = serve_small_exposition().await;
    let mode = Arc::new(std::sync::atomic::AtomicU8::new(DNS_ANSWERS));
    let dns = serve_dns(metrics.port(), Arc::clone(&mode)).await;
    let folder = tempfile::tempdir().unwrap();
    let tsdb = Arc::new(Tsdb::open(folder.path(), TsdbOptions::default()).unwrap());
    let options = ScrapeOptions {
        discovery: DiscoveryOptions {
            dns_server: Some(dns),
        },
        ..ScrapeOptions::default()
    };
    let manager = ScrapeManager::new(Arc::clone(&tsdb), options).unwrap();
    let config = format!(
        concat!(
            "scrape_configs:\n",
            "- job_name: from-dns\n",
            "  scrape_interval: 1s\n",
            "  scrape_timeout: 1s\n",
            "  dns_sd_configs:\n",
            "  - names: [_node._tcp.sd.test]\n",
            "    refresh_interval: 1s\n",
            "  - names: [node.sd.test, missing.sd.test]\n",
            "    type: A\n",
            "    port: {port}\n",
            "    refresh_interval: 1s\n",
        ),
        port = metrics.port()
    );
    let lookups = SD_COUNTERS.dns_lookups.load(Ordering::SeqCst);
    manager.apply_config(&jobs(&config), folder.path()).unwrap();
    wait_for("both targets", || manager.active_targets().len() == 2).await;
    assert!(SD_COUNTERS.dns_lookups.load(Ordering::SeqCst) >= lookups + 3);
    let active = manager.active_targets();
    let port = metrics.port().to_string();
    let by_address = |address: &str| {
        active
            .iter()
            .find(|target| target.target.discovered.get("__address__") == address)
            .unwrap_or_else(|| panic!("no target {address} in {active:?}"))
    };
    let srv = by_address(&format!("localhost:{port}"));
    let discovered = &srv.target.discovered;
    assert_eq!(discovered.get("__meta_dns_name"), "_node._tcp.sd.test");
    assert_eq!(discovered.get("__meta_dns_srv_record_target"), "localhost.");
    assert_eq!(discovered.get("__meta_dns_srv_record_port"), port);
    let a = by_address(&format!("127.0.0.1:{port}"));
    assert_eq!(a.target.discovered.get("__meta_dns_name"), "node.sd.test");
    assert!(!a.target.discovered.has("__meta_dns_srv_record_target"));
    // The A record's target is scraped like any other.
    let instance = format!("127.0.0.1:{port}");
    wait_for("a scrape of the A record's target", || {
        samples(&tsdb, "up", &[("job", "from-dns"), ("instance", &instance)])
            .iter()
            .any(|(_, value)| *value == 1.0)
    })
    .await;

    // Servers that fail keep the last targets; names that no longer exist lose theirs.
    let failures = SD_COUNTERS.dns_lookup_failures.load(Ordering::SeqCst);
    mode.store(DNS_SERVFAIL, Ordering::SeqCst);
    wait_for("failed lookups of all three names", || {
        SD_COUNTERS.dns_lookup_failures.load(Ordering::SeqCst) >= failures + 3
    })
    .await;
    assert_eq!(manager.active_targets().len(), 2);
    mode.store(DNS_NXDOMAIN, Ordering::SeqCst);
    wait_for("the targets to go", || manager.active_targets().is_empty()).await;
    manager.stop().await;
}
