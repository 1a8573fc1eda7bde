//! Remote write's metric metadata, end to end: a `tocsin` node scrapes an OpenMetrics target
//! (with `# TYPE`, `# HELP` and `# UNIT`) every second and remote-writes to a receiver in this
//! test that decodes every request.
//!
//! Prometheus 2.42 cannot stand in as the receiver here: its remote-write handler ignores
//! `WriteRequest.metadata` (its `/api/v1/metadata` shows only what it scraped itself), so the
//! receiver is a real HTTP server decoding the protobuf.
//!
//! - 1.0: metadata-only requests (no series) carry each family's type, help and unit, every
//!   `metadata_config.send_interval`; a 503 is retried and counted in
//!   `prometheus_remote_storage_metadata_retried_total`.
//! - 2.0: each series carries its family's metadata through the symbol table, and nothing is
//!   sent as 1.0.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::RunningNode;
use prost::Message as _;
use std::collections::BTreeSet;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tocsin::api::remote_write::proto;

/// The target's exposition: an info, a gauge with a unit, a counter and a histogram.
const EXPOSITION: &str = "\
# TYPE build info
# HELP build Build information.
build_info{version=\"1.2\"} 1
# TYPE room_temperature_celsius gauge
# UNIT room_temperature_celsius celsius
# HELP room_temperature_celsius Room temperature.
room_temperature_celsius 21.5
# TYPE requests counter
# HELP requests Requests served.
requests_total 7
# TYPE latency_seconds histogram
# UNIT latency_seconds seconds
# HELP latency_seconds Request latency.
latency_seconds_bucket{le=\"0.1\"} 1
latency_seconds_bucket{le=\"+Inf\"} 2
latency_seconds_count 2
latency_seconds_sum 0.3
# EOF
";

/// Serves `EXPOSITION` as OpenMetrics on a free port; returns the address.
fn serve_openmetrics() -> String {
    common::target::serve_exposition(
        "application/openmetrics-text; version=1.0.0; charset=utf-8",
        |_| EXPOSITION.to_string(),
    )
}

/// What the receiver saw, per request.
#[derive(Debug, Clone)]
enum Seen {
    /// 1.0: series names and metadata entries (type, family, help, unit).
    V1 {
        series: Vec<String>,
        metadata: Vec<(i32, String, String, String)>,
    },
    /// 2.0: per series, its name and its metadata (type, help, unit) resolved via symbols.
    V2 {
        series: Vec<(String, Option<SeriesMetadata>)>,
    },
}

/// A 2.0 series' metadata: type, help, unit.
type SeriesMetadata = (i32, String, String);

type Log = Arc<Mutex<Vec<Seen>>>;

/// A receiver on its own runtime thread, decoding every request; answers 503 to the first
/// `refuse_metadata` metadata-only requests, 204 otherwise. Returns the push URL.
fn serve_receiver(refuse_metadata: usize) -> (String, Log) {
    use axum::body::Bytes;
    use axum::http::{HeaderMap, StatusCode};
    let log: Log = Arc::default();
    let refusals = Arc::new(Mutex::new(refuse_metadata));
    let recorded = Arc::clone(&log);
    let handler = move |headers: HeaderMap, body: Bytes| {
        let recorded = Arc::clone(&recorded);
        let refusals = Arc::clone(&refusals);
        async move {
            let version = headers
                .get("x-prometheus-remote-write-version")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string();
            let raw = snap::raw::Decoder::new().decompress_vec(&body).unwrap();
            let seen = if version.starts_with("2.") {
                let request = proto::v2::Request::decode(raw.as_slice()).unwrap();
                let symbol = |index: u32| request.symbols[index as usize].clone();
                let series = request
                    .timeseries
                    .iter()
                    .map(|series| {
                        let name = series
                            .labels_refs
                            .chunks(2)
                            .find(|pair| symbol(pair[0]) == "__name__")
                            .map(|pair| symbol(pair[1]))
                            .unwrap_or_default();
                        let metadata = series
                            .metadata
                            .as_ref()
                            .map(|m| (m.r#type, symbol(m.help_ref), symbol(m.unit_ref)));
                        (name, metadata)
                    })
                    .collect();
                Seen::V2 { series }
            } else {
                let request = proto::WriteRequest::decode(raw.as_slice()).unwrap();
                let series = request
                    .timeseries
                    .iter()
                    .filter_map(|series| {
                        series
                            .labels
                            .iter()
                            .find(|label| label.name == "__name__")
                            .map(|label| label.value.clone())
                    })
                    .collect();
                let metadata = request
                    .metadata
                    .iter()
                    .map(|m| {
                        (
                            m.r#type,
                            m.metric_family_name.clone(),
                            m.help.clone(),
                            m.unit.clone(),
                        )
                    })
                    .collect();
                Seen::V1 { series, metadata }
            };
            let is_metadata_only = matches!(&seen, Seen::V1 { series, metadata } if series.is_empty() && !metadata.is_empty());
            recorded.lock().unwrap().push(seen);
            if is_metadata_only {
                let mut left = refusals.lock().unwrap();
                if *left > 0 {
                    *left -= 1;
                    return StatusCode::SERVICE_UNAVAILABLE;
                }
            }
            StatusCode::NO_CONTENT
        }
    };
    let (address_sender, address_receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let app = axum::Router::new().route("/push", axum::routing::post(handler));
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            address_sender.send(listener.local_addr().unwrap()).unwrap();
            axum::serve(listener, app).await.unwrap();
        });
    });
    let address = address_receiver.recv().unwrap();
    (format!("http://{address}/push"), log)
}

fn start_node(dir: &Path, target: &str, receiver: &str, extra: &str) -> RunningNode {
    let config = format!(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: meta\n    static_configs:\n      - targets: ['{target}']\nremote_write:\n  - url: {receiver}\n    name: meta-test\n    queue_config:\n      batch_send_deadline: 100ms\n      min_backoff: 50ms\n      max_backoff: 200ms\n    metadata_config:\n      send_interval: 1s\n{extra}"
    );
    let path = dir.join("tocsin.yml");
    std::fs::write(&path, config).unwrap();
    RunningNode::start(dir, &["--config.file", path.to_str().unwrap()])
}

/// Waits up to 30 s for `done` to hold on what the receiver saw.
fn wait_for(what: &str, log: &Log, done: impl Fn(&[Seen]) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if done(&log.lock().unwrap()) {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!(
        "timed out waiting for {what}; seen: {:?}",
        log.lock().unwrap()
    );
}

/// The value of a metric with the queue's labels on the node's `/metrics`.
fn metric(node: &RunningNode, name: &str) -> f64 {
    let (_, body) = common::get(&node.url("/metrics"));
    let prefix = format!("{name}{{remote_name=\"meta-test\",");
    body.lines()
        .find(|line| line.starts_with(&prefix))
        .and_then(|line| line.rsplit(' ').next()?.parse().ok())
        .unwrap_or_else(|| panic!("{name} not on /metrics:\n{body}"))
}

fn expected_entries() -> BTreeSet<(i32, String, String, String)> {
    [
        (6, "build", "Build information.", ""),
        (
            2,
            "room_temperature_celsius",
            "Room temperature.",
            "celsius",
        ),
        (1, "requests", "Requests served.", ""),
        (3, "latency_seconds", "Request latency.", "seconds"),
    ]
    .into_iter()
    .map(|(kind, family, help, unit)| {
        (kind, family.to_string(), help.to_string(), unit.to_string())
    })
    .collect()
}

#[test]
fn remote_write_1_0_sends_the_targets_metadata_and_retries_it() {
    let dir = tempfile::tempdir().unwrap();
    let target = serve_openmetrics();
    let (receiver, log) = serve_receiver(1);
    let node = start_node(dir.path(), &target, &receiver, "");
    let metadata_requests = |seen: &[Seen]| -> Vec<Vec<(i32, String, String, String)>> {
        seen.iter()
            .filter_map(|request| match request {
                Seen::V1 { series, metadata } if !metadata.is_empty() => {
                    assert!(series.is_empty(), "metadata goes in requests of its own");
                    Some(metadata.clone())
                }
                _ => None,
            })
            .collect()
    };
    // The first metadata request is refused with 503 and retried; wait for a second one.
    wait_for("two metadata requests", &log, |seen| {
        metadata_requests(seen).len() >= 2
    });
    let requests = metadata_requests(&log.lock().unwrap());
    let wanted = expected_entries();
    for request in &requests {
        let entries: BTreeSet<_> = request.iter().cloned().collect();
        assert_eq!(
            entries.len(),
            request.len(),
            "entries are deduplicated: {request:?}"
        );
        assert_eq!(entries, wanted, "one target, its four families");
    }
    // Samples still flow, in requests without metadata.
    wait_for("samples", &log, |seen| {
        seen.iter().any(|request| {
            matches!(request, Seen::V1 { series, metadata } if metadata.is_empty() && series.iter().any(|name| name == "room_temperature_celsius"))
        })
    });
    assert!(metric(&node, "prometheus_remote_storage_metadata_total") >= 4.0);
    assert!(metric(&node, "prometheus_remote_storage_metadata_retried_total") >= 4.0);
    assert!(metric(&node, "prometheus_remote_storage_metadata_bytes_total") > 0.0);
    assert_eq!(
        metric(&node, "prometheus_remote_storage_metadata_failed_total"),
        0.0
    );
}

#[test]
fn remote_write_2_0_series_carry_their_metadata() {
    let dir = tempfile::tempdir().unwrap();
    let target = serve_openmetrics();
    let (receiver, log) = serve_receiver(0);
    let node = start_node(
        dir.path(),
        &target,
        &receiver,
        "    protobuf_message: io.prometheus.write.v2.Request\n",
    );
    let with_metadata = |seen: &[Seen], name: &str| -> Option<(i32, String, String)> {
        seen.iter().find_map(|request| match request {
            Seen::V2 { series } => series
                .iter()
                .find(|(series_name, metadata)| series_name == name && metadata.is_some())
                .and_then(|(_, metadata)| metadata.clone()),
            Seen::V1 { .. } => None,
        })
    };
    // The metadata index is read every few seconds: the first batches may go without.
    wait_for("series with metadata", &log, |seen| {
        [
            "build_info",
            "room_temperature_celsius",
            "requests_total",
            "latency_seconds_bucket",
            "latency_seconds_sum",
        ]
        .iter()
        .all(|name| with_metadata(seen, name).is_some())
    });
    let seen = log.lock().unwrap().clone();
    let text = |kind: i32, help: &str, unit: &str| Some((kind, help.to_string(), unit.to_string()));
    assert_eq!(
        with_metadata(&seen, "build_info"),
        text(6, "Build information.", "")
    );
    assert_eq!(
        with_metadata(&seen, "room_temperature_celsius"),
        text(2, "Room temperature.", "celsius")
    );
    assert_eq!(
        with_metadata(&seen, "requests_total"),
        text(1, "Requests served.", "")
    );
    assert_eq!(
        with_metadata(&seen, "latency_seconds_count"),
        text(3, "Request latency.", "seconds")
    );
    // Synthetic series have no family in the exposition.
    assert_eq!(with_metadata(&seen, "up"), None);
    assert!(
        seen.iter()
            .all(|request| matches!(request, Seen::V2 { .. })),
        "a 2.0 endpoint gets no 1.0 metadata requests"
    );
    assert_eq!(
        metric(&node, "prometheus_remote_storage_metadata_total"),
        0.0
    );
}
