//! Remote read end to end, with real processes on 127.0.0.1:
//! - Prometheus 2.42 (`/usr/bin/prometheus`, empty TSDB) with `remote_read` pointing at a
//!   Tocsin node answers `/api/v1/query` and `/api/v1/query_range` with Tocsin's data; a Tocsin
//!   node with `remote_read` pointing at that Prometheus (data remote-written into it) answers
//!   with Prometheus's data.
//! - Hand-made requests to `POST /api/v1/read`: `SAMPLES` and `STREAMED_XOR_CHUNKS` answers
//!   decoded and compared, the limits, and 400s for bad input.
//! - Tocsin → Tocsin: local and remote series merged, `required_matchers`,
//!   `filter_external_labels`, and a remote that is down (the query succeeds with a warning).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::RunningNode;
use prost::Message as _;
use serde_json::Value;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tocsin::api::remote_write::proto as write_proto;
use tocsin::remote::read::frame::FrameDecoder;
use tocsin::remote::read::proto::{
    ChunkedReadResponse, LabelMatcher, MatcherType, Query, ReadRequest, ReadResponse, ResponseType,
};
use tocsin::tsdb::{Labels, Tsdb, TsdbOptions};

const PROMETHEUS: &str = "/usr/bin/prometheus";
/// 2023-11-14T22:13:20Z.
const T0: i64 = 1_700_000_000_000;
const STEP_MS: i64 = 15_000;
/// Samples per fixture series: more than one chunk's worth (120), so streams carry several.
const SAMPLES: i64 = 300;

fn value_a(i: i64) -> f64 {
    i as f64 * 1.5
}

fn value_b(i: i64) -> f64 {
    1000.0 - i as f64
}

/// A series to write: its labels and samples.
type FixtureSeries<'a> = (&'a [(&'a str, &'a str)], Vec<(i64, f64)>);

/// Writes series into `<storage>/tsdb` before the node starts.
fn write_tsdb(storage: &Path, series: &[FixtureSeries<'_>]) {
    let tsdb = Tsdb::open(&storage.join("tsdb"), TsdbOptions::default()).unwrap();
    let mut appender = tsdb.appender();
    for (labels, samples) in series {
        let labels = Labels::new(labels.iter().copied());
        for &(t, v) in samples {
            appender.append(&labels, t, v).unwrap();
        }
    }
    appender.commit().unwrap();
}

fn samples(value: fn(i64) -> f64) -> Vec<(i64, f64)> {
    (0..SAMPLES).map(|i| (T0 + i * STEP_MS, value(i))).collect()
}

/// The fixture served by the node Prometheus reads from.
fn write_rr_fixture(storage: &Path) {
    write_tsdb(
        storage,
        &[
            (
                &[("__name__", "rr_test"), ("job", "a"), ("instance", "x")],
                samples(value_a),
            ),
            (
                &[("__name__", "rr_test"), ("job", "b"), ("instance", "y")],
                samples(value_b),
            ),
        ],
    );
}

fn start_tocsin(dir: &Path, config: &str, extra: &[&str]) -> RunningNode {
    let file = dir.join("tocsin.yml");
    std::fs::write(&file, config).unwrap();
    let mut args = vec!["--config.file", file.to_str().unwrap()];
    args.extend_from_slice(extra);
    RunningNode::start(dir, &args)
}

/// An HTTP client (the process-wide rustls provider installed first, as the node does).
fn client() -> reqwest::Client {
    tocsin_receivers::http_client::install_crypto_provider();
    reqwest::Client::new()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A Prometheus 2.42 process, killed when dropped.
struct Prometheus {
    child: Child,
    address: String,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn start_prometheus(dir: &Path, config: &str) -> Prometheus {
    let file = dir.join("prometheus.yml");
    std::fs::write(&file, config).unwrap();
    let address = format!("127.0.0.1:{}", free_port());
    let child = Command::new(PROMETHEUS)
        .arg(format!("--config.file={}", file.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("prom-data").display()
        ))
        .arg(format!("--web.listen-address={address}"))
        .arg("--web.enable-remote-write-receiver")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start prometheus");
    let prometheus = Prometheus { child, address };
    let deadline = Instant::now() + Duration::from_secs(30);
    let client = client();
    loop {
        let ready = client
            .get(format!("http://{}/-/ready", prometheus.address))
            .send()
            .await
            .is_ok_and(|response| response.status().is_success());
        if ready {
            return prometheus;
        }
        assert!(Instant::now() < deadline, "Prometheus did not become ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// GETs an `/api/v1` query and returns its JSON answer, which must be a success.
async fn api(base: &str, path: &str, params: &[(&str, String)]) -> Value {
    let url = url::Url::parse_with_params(
        &format!("{base}{path}"),
        params.iter().map(|(k, v)| (*k, v.as_str())),
    )
    .unwrap();
    let response = client().get(url).send().await.unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    assert!(status.is_success(), "{path} {params:?}: {status} {text}");
    let json: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(json["status"], "success", "{text}");
    json
}

fn seconds(t_ms: i64) -> String {
    format!("{}", t_ms as f64 / 1000.0)
}

/// `(labels without __name__ as k=v sorted, value)` per vector element.
fn vector(json: &Value) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = json["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|element| {
            (
                metric_text(&element["metric"]),
                element["value"][1].as_str().unwrap().to_string(),
            )
        })
        .collect();
    out.sort();
    out
}

fn metric_text(metric: &Value) -> String {
    let mut pairs: Vec<String> = metric
        .as_object()
        .unwrap()
        .iter()
        .map(|(name, value)| format!("{name}={}", value.as_str().unwrap()))
        .collect();
    pairs.sort();
    pairs.join(",")
}

/// `(labels, [(t seconds, value)])` per matrix element.
fn matrix(json: &Value) -> Vec<(String, Vec<(f64, String)>)> {
    let mut out: Vec<(String, Vec<(f64, String)>)> = json["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|element| {
            let points = element["values"]
                .as_array()
                .unwrap()
                .iter()
                .map(|point| {
                    (
                        point[0].as_f64().unwrap(),
                        point[1].as_str().unwrap().to_string(),
                    )
                })
                .collect();
            (metric_text(&element["metric"]), points)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

fn warnings(json: &Value) -> Vec<String> {
    json["warnings"]
        .as_array()
        .map(|warnings| {
            warnings
                .iter()
                .map(|w| w.as_str().unwrap().to_string())
                .collect()
        })
        .unwrap_or_default()
}

fn eq(name: &str, value: &str) -> LabelMatcher {
    LabelMatcher {
        r#type: MatcherType::Eq as i32,
        name: name.into(),
        value: value.into(),
    }
}

fn read_request(matchers: Vec<LabelMatcher>, accepted: &[ResponseType]) -> ReadRequest {
    ReadRequest {
        queries: vec![Query {
            start_timestamp_ms: T0,
            end_timestamp_ms: T0 + SAMPLES * STEP_MS,
            matchers,
            hints: None,
        }],
        accepted_response_types: accepted.iter().map(|&t| t as i32).collect(),
    }
}

/// POSTs a read request; returns status, Content-Type, Content-Encoding and body.
async fn post_read(url: &str, body: Vec<u8>) -> (u16, String, String, Vec<u8>) {
    let response = client()
        .post(url)
        .header("Content-Type", "application/x-protobuf")
        .header("Content-Encoding", "snappy")
        .header("X-Prometheus-Remote-Read-Version", "0.1.0")
        .body(body)
        .send()
        .await
        .unwrap();
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default()
    };
    let (status, content_type, encoding) = (
        response.status().as_u16(),
        header("content-type"),
        header("content-encoding"),
    );
    (
        status,
        content_type,
        encoding,
        response.bytes().await.unwrap().to_vec(),
    )
}

fn snappy(bytes: &[u8]) -> Vec<u8> {
    snap::raw::Encoder::new().compress_vec(bytes).unwrap()
}

fn labels_text(labels: &[write_proto::Label]) -> String {
    labels
        .iter()
        .map(|l| format!("{}={}", l.name, l.value))
        .collect::<Vec<_>>()
        .join(",")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_reads_tocsin_and_tocsin_reads_prometheus() {
    let dir = tempfile::tempdir().unwrap();
    let tocsin_dir = dir.path().join("tocsin");
    std::fs::create_dir_all(&tocsin_dir).unwrap();
    write_rr_fixture(&tocsin_dir.join("data"));
    let tocsin = start_tocsin(
        &tocsin_dir,
        "global:\n  external_labels:\n    site: tocsin-1\n",
        &["--log.level", "debug"],
    );
    let prometheus = start_prometheus(
        dir.path(),
        &format!(
            "global:\n  scrape_interval: 1h\nremote_read:\n  - url: {}\n    read_recent: true\n",
            tocsin.url("/api/v1/read")
        ),
    )
    .await;
    let prometheus_url = format!("http://{}", prometheus.address);

    // Instant query: the sample at or before t within the 5m lookback, external labels added
    // by Tocsin's read handler.
    let at = T0 + 20 * STEP_MS;
    let json = api(
        &prometheus_url,
        "/api/v1/query",
        &[("query", "rr_test".into()), ("time", seconds(at))],
    )
    .await;
    assert_eq!(
        vector(&json),
        [
            (
                "__name__=rr_test,instance=x,job=a,site=tocsin-1".to_string(),
                "30".to_string()
            ),
            (
                "__name__=rr_test,instance=y,job=b,site=tocsin-1".to_string(),
                "980".to_string()
            ),
        ]
    );
    assert!(warnings(&json).is_empty(), "{json}");

    // Range query over every sample: each value compared exactly.
    let end = T0 + (SAMPLES - 1) * STEP_MS;
    let json = api(
        &prometheus_url,
        "/api/v1/query_range",
        &[
            ("query", "rr_test{job=\"a\"}".into()),
            ("start", seconds(T0)),
            ("end", seconds(end)),
            ("step", "15s".into()),
        ],
    )
    .await;
    let got = matrix(&json);
    assert_eq!(got.len(), 1, "{json}");
    assert_eq!(got[0].0, "__name__=rr_test,instance=x,job=a,site=tocsin-1");
    let expected: Vec<(f64, String)> = (0..SAMPLES)
        .map(|i| {
            (
                (T0 + i * STEP_MS) as f64 / 1000.0,
                tocsin::promql::value::format_float(value_a(i)),
            )
        })
        .collect();
    assert_eq!(got[0].1, expected);
    // An aggregation over both series, through the same path.
    let json = api(
        &prometheus_url,
        "/api/v1/query",
        &[("query", "sum(rr_test)".into()), ("time", seconds(at))],
    )
    .await;
    assert_eq!(vector(&json), [(String::new(), "1010".to_string())]);
    // Prometheus 2.42's remote-read client asks for SAMPLES only (no accepted types; streamed
    // chunks are requested by Prometheus 3's client): the streamed path is covered by the
    // hand-made requests below and by Tocsin's own client, which asks for streams first.
    let log = tocsin.log();
    assert!(
        log.contains("remote read request") && log.contains("response_type=SAMPLES"),
        "the read handler logged no SAMPLES request:\n{log}"
    );

    // Tocsin reads Prometheus: samples remote-written into Prometheus, then a Tocsin node
    // with `remote_read` pointing at Prometheus's /api/v1/read.
    let written = write_proto::WriteRequest {
        timeseries: vec![write_proto::TimeSeries {
            labels: vec![
                write_proto::Label {
                    name: "__name__".into(),
                    value: "prom_only".into(),
                },
                write_proto::Label {
                    name: "job".into(),
                    value: "p".into(),
                },
            ],
            samples: (0..SAMPLES)
                .map(|i| write_proto::Sample {
                    value: value_b(i) / 4.0,
                    timestamp: T0 + i * STEP_MS,
                })
                .collect(),
            ..Default::default()
        }],
        metadata: Vec::new(),
    };
    let response = client()
        .post(format!("{prometheus_url}/api/v1/write"))
        .header("Content-Type", "application/x-protobuf")
        .header("Content-Encoding", "snappy")
        .header("X-Prometheus-Remote-Write-Version", "0.1.0")
        .body(snappy(&written.encode_to_vec()))
        .send()
        .await
        .unwrap();
    assert!(
        response.status().is_success(),
        "{:?}",
        response.text().await
    );
    let reader_dir = dir.path().join("reader");
    std::fs::create_dir_all(&reader_dir).unwrap();
    let reader = start_tocsin(
        &reader_dir,
        &format!("remote_read:\n  - url: {prometheus_url}/api/v1/read\n    read_recent: true\n"),
        &[],
    );
    let json = api(
        &reader.url(""),
        "/api/v1/query_range",
        &[
            ("query", "prom_only".into()),
            ("start", seconds(T0)),
            ("end", seconds(end)),
            ("step", "15s".into()),
        ],
    )
    .await;
    assert!(warnings(&json).is_empty(), "{json}");
    let got = matrix(&json);
    assert_eq!(got.len(), 1, "{json}");
    assert_eq!(got[0].0, "__name__=prom_only,job=p");
    let expected: Vec<(f64, String)> = (0..SAMPLES)
        .map(|i| {
            (
                (T0 + i * STEP_MS) as f64 / 1000.0,
                tocsin::promql::value::format_float(value_b(i) / 4.0),
            )
        })
        .collect();
    assert_eq!(got[0].1, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hand_made_requests_samples_streamed_limits_and_errors() {
    let dir = tempfile::tempdir().unwrap();
    write_rr_fixture(&dir.path().join("data"));
    let node = start_tocsin(
        dir.path(),
        "global:\n  external_labels:\n    site: tocsin-1\n    job: shadowed\n",
        &[
            "--storage.remote.read-sample-limit",
            "400",
            "--storage.remote.read-max-bytes-in-frame",
            "1",
        ],
    );
    let url = node.url("/api/v1/read");

    // SAMPLES: one snappy ReadResponse; external labels added, the series' own `job` wins.
    let request = read_request(
        vec![eq("__name__", "rr_test"), eq("job", "a")],
        &[ResponseType::Samples],
    );
    let (status, content_type, encoding, body) =
        post_read(&url, snappy(&request.encode_to_vec())).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(content_type, "application/x-protobuf");
    assert_eq!(encoding, "snappy");
    let raw = snap::raw::Decoder::new().decompress_vec(&body).unwrap();
    let response = ReadResponse::decode(raw.as_slice()).unwrap();
    assert_eq!(response.results.len(), 1);
    let series = &response.results[0].timeseries;
    assert_eq!(series.len(), 1);
    assert_eq!(
        labels_text(&series[0].labels),
        "__name__=rr_test,instance=x,job=a,site=tocsin-1"
    );
    let got: Vec<(i64, f64)> = series[0]
        .samples
        .iter()
        .map(|s| (s.timestamp, s.value))
        .collect();
    assert_eq!(got, samples(value_a));

    // An equality matcher on an external label with its value selects the series without it.
    // Another value of it matches nothing.
    for (site, expected) in [("tocsin-1", 1), ("elsewhere", 0)] {
        let request = read_request(
            vec![eq("__name__", "rr_test"), eq("job", "b"), eq("site", site)],
            &[],
        );
        let (status, _, _, body) = post_read(&url, snappy(&request.encode_to_vec())).await;
        assert_eq!(status, 200);
        let raw = snap::raw::Decoder::new().decompress_vec(&body).unwrap();
        let response = ReadResponse::decode(raw.as_slice()).unwrap();
        assert_eq!(
            response.results[0].timeseries.len(),
            expected,
            "site={site}"
        );
    }

    // Over the sample limit (2 × 300 > 400): 400, Prometheus's message.
    let request = read_request(vec![eq("__name__", "rr_test")], &[ResponseType::Samples]);
    let (status, _, _, body) = post_read(&url, snappy(&request.encode_to_vec())).await;
    assert_eq!(status, 400);
    assert_eq!(
        String::from_utf8_lossy(&body),
        "exceeded sample limit (400)\n"
    );

    // STREAMED_XOR_CHUNKS: not bound by the sample limit; with a 1-byte frame budget every
    // chunk is its own frame; the chunks decode to every sample.
    let request = read_request(
        vec![eq("__name__", "rr_test")],
        &[ResponseType::StreamedXorChunks, ResponseType::Samples],
    );
    let (status, content_type, encoding, body) =
        post_read(&url, snappy(&request.encode_to_vec())).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(
        content_type,
        "application/x-streamed-protobuf; proto=prometheus.ChunkedReadResponse"
    );
    assert_eq!(encoding, "");
    let mut decoder = FrameDecoder::new(1 << 20);
    decoder.push(&body);
    let mut by_series: std::collections::BTreeMap<String, Vec<(i64, f64)>> = Default::default();
    let mut frames = 0;
    while let Some(message) = decoder.next_message().unwrap() {
        frames += 1;
        let frame = ChunkedReadResponse::decode(message.as_slice()).unwrap();
        assert_eq!(frame.query_index, 0);
        assert_eq!(frame.chunked_series.len(), 1);
        let series = &frame.chunked_series[0];
        assert_eq!(
            series.chunks.len(),
            1,
            "one chunk per frame at a 1-byte budget"
        );
        let decoded = tocsin::tsdb::chunkenc::decode_xor(&series.chunks[0].data).unwrap();
        assert_eq!(series.chunks[0].min_time_ms, decoded[0].0);
        assert_eq!(series.chunks[0].max_time_ms, decoded[decoded.len() - 1].0);
        by_series
            .entry(labels_text(&series.labels))
            .or_default()
            .extend(decoded);
    }
    decoder.finish().unwrap();
    assert!(frames >= 4, "300 samples per series take several chunks");
    assert_eq!(
        by_series.keys().collect::<Vec<_>>(),
        [
            "__name__=rr_test,instance=x,job=a,site=tocsin-1",
            "__name__=rr_test,instance=y,job=b,site=tocsin-1"
        ]
    );
    assert_eq!(
        by_series["__name__=rr_test,instance=x,job=a,site=tocsin-1"],
        samples(value_a)
    );
    assert_eq!(
        by_series["__name__=rr_test,instance=y,job=b,site=tocsin-1"],
        samples(value_b)
    );

    // A range inside the data: chunks are trimmed to it.
    let mut request = read_request(
        vec![eq("__name__", "rr_test"), eq("job", "a")],
        &[ResponseType::StreamedXorChunks],
    );
    request.queries[0].start_timestamp_ms = T0 + 10 * STEP_MS;
    request.queries[0].end_timestamp_ms = T0 + 20 * STEP_MS;
    let (status, _, _, body) = post_read(&url, snappy(&request.encode_to_vec())).await;
    assert_eq!(status, 200);
    let mut decoder = FrameDecoder::new(1 << 20);
    decoder.push(&body);
    let mut got = Vec::new();
    while let Some(message) = decoder.next_message().unwrap() {
        let frame = ChunkedReadResponse::decode(message.as_slice()).unwrap();
        for chunk in &frame.chunked_series[0].chunks {
            got.extend(tocsin::tsdb::chunkenc::decode_xor(&chunk.data).unwrap());
        }
    }
    assert_eq!(got, samples(value_a)[10..=20]);

    // Bad input: 400 with a message saying what was wrong.
    let (status, _, _, body) = post_read(&url, b"not snappy".to_vec()).await;
    assert_eq!(status, 400);
    assert!(String::from_utf8_lossy(&body).starts_with("snappy: "));
    let (status, _, _, body) = post_read(&url, snappy(&[0xFF, 0xFF, 0xFF])).await;
    assert_eq!(status, 400);
    assert!(
        String::from_utf8_lossy(&body).starts_with("prometheus.ReadRequest: "),
        "{}",
        String::from_utf8_lossy(&body)
    );
    let mut unknown = read_request(vec![eq("__name__", "rr_test")], &[]);
    unknown.accepted_response_types = vec![5];
    let (status, _, _, body) = post_read(&url, snappy(&unknown.encode_to_vec())).await;
    assert_eq!(status, 400);
    assert_eq!(
        String::from_utf8_lossy(&body),
        "server does not support any of the requested response types: [5]; supported: [SAMPLES STREAMED_XOR_CHUNKS]\n"
    );
    let bad_regex = read_request(
        vec![LabelMatcher {
            r#type: MatcherType::Re as i32,
            name: "job".into(),
            value: "(".into(),
        }],
        &[],
    );
    let (status, _, _, body) = post_read(&url, snappy(&bad_regex.encode_to_vec())).await;
    assert_eq!(status, 400);
    assert!(
        String::from_utf8_lossy(&body).starts_with("query 0: invalid matcher for label \"job\""),
        "{}",
        String::from_utf8_lossy(&body)
    );
}

/// The remote node's data: `shared` (also on the reading nodes, at other timestamps), and
/// `remote_only` for two replicas.
fn write_remote_fixture(storage: &Path) {
    let even: Vec<(i64, f64)> = (0..20)
        .filter(|i| i % 2 == 0)
        .map(|i| (T0 + i * STEP_MS, i as f64))
        .collect();
    write_tsdb(
        storage,
        &[
            (
                &[("__name__", "shared"), ("job", "s"), ("replica", "r1")],
                even,
            ),
            (
                &[("__name__", "remote_only"), ("job", "a"), ("replica", "r1")],
                vec![(T0, 1.0)],
            ),
            (
                &[("__name__", "remote_only"), ("job", "a"), ("replica", "r2")],
                vec![(T0, 2.0)],
            ),
        ],
    );
}

/// The reading node's own `shared`: odd timestamps, and t = T0 with a different value than the
/// remote's (local wins).
fn write_local_fixture(storage: &Path) {
    let mut odd: Vec<(i64, f64)> = (0..20)
        .filter(|i| i % 2 == 1)
        .map(|i| (T0 + i * STEP_MS, i as f64))
        .collect();
    odd.insert(0, (T0, 1000.0));
    write_tsdb(storage, &[(&[("__name__", "shared"), ("job", "s")], odd)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tocsin_merges_remote_series_with_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let remote_dir = dir.path().join("remote");
    std::fs::create_dir_all(&remote_dir).unwrap();
    write_remote_fixture(&remote_dir.join("data"));
    let remote = start_tocsin(&remote_dir, "global: {}\n", &[]);
    let remote_url = remote.url("/api/v1/read");
    let end = T0 + 19 * STEP_MS;
    let range = |query: &str| {
        vec![
            ("query", query.to_string()),
            ("start", seconds(T0)),
            ("end", seconds(end)),
            ("step", "15s".to_string()),
        ]
    };

    // filter_external_labels (default true): `replica="r1"` is added to the remote query and
    // stripped from the answer, so the remote `shared` merges with the local one.
    let filtering_dir = dir.path().join("filtering");
    std::fs::create_dir_all(&filtering_dir).unwrap();
    write_local_fixture(&filtering_dir.join("data"));
    let filtering = start_tocsin(
        &filtering_dir,
        &format!(
            "global:\n  external_labels:\n    replica: r1\nremote_read:\n  - url: {remote_url}\n    read_recent: true\n"
        ),
        &[],
    );
    let json = api(&filtering.url(""), "/api/v1/query_range", &range("shared")).await;
    assert!(warnings(&json).is_empty(), "{json}");
    let got = matrix(&json);
    assert_eq!(got.len(), 1, "{json}");
    assert_eq!(got[0].0, "__name__=shared,job=s");
    let mut expected: Vec<(f64, String)> = (0..20)
        .map(|i| ((T0 + i * STEP_MS) as f64 / 1000.0, i.to_string()))
        .collect();
    expected[0].1 = "1000".to_string();
    assert_eq!(got[0].1, expected);
    let json = api(
        &filtering.url(""),
        "/api/v1/query",
        &[("query", "remote_only".into()), ("time", seconds(T0))],
    )
    .await;
    assert_eq!(
        vector(&json),
        [("__name__=remote_only,job=a".to_string(), "1".to_string())]
    );
    // A selector naming the external label itself gets that value from the remote, label kept.
    let json = api(
        &filtering.url(""),
        "/api/v1/query",
        &[
            ("query", "remote_only{replica=\"r2\"}".into()),
            ("time", seconds(T0)),
        ],
    )
    .await;
    assert_eq!(
        vector(&json),
        [(
            "__name__=remote_only,job=a,replica=r2".to_string(),
            "2".to_string()
        )]
    );

    // required_matchers and filter_external_labels: false.
    let required_dir = dir.path().join("required");
    std::fs::create_dir_all(&required_dir).unwrap();
    let required = start_tocsin(
        &required_dir,
        &format!(
            "global:\n  external_labels:\n    replica: r1\nremote_read:\n  - url: {remote_url}\n    read_recent: true\n    filter_external_labels: false\n    required_matchers:\n      job: a\n"
        ),
        &[],
    );
    let at = [("time", seconds(T0))];
    let query = |q: &str| {
        let mut params = vec![("query", q.to_string())];
        params.extend(at.iter().cloned());
        params
    };
    let json = api(&required.url(""), "/api/v1/query", &query("remote_only")).await;
    assert!(vector(&json).is_empty(), "no job=\"a\" matcher: {json}");
    let json = api(
        &required.url(""),
        "/api/v1/query",
        &query("remote_only{job=~\"a\"}"),
    )
    .await;
    assert!(
        vector(&json).is_empty(),
        "a regex is not an equality: {json}"
    );
    let json = api(
        &required.url(""),
        "/api/v1/query",
        &query("remote_only{job=\"a\"}"),
    )
    .await;
    assert_eq!(
        vector(&json),
        [
            (
                "__name__=remote_only,job=a,replica=r1".to_string(),
                "1".to_string()
            ),
            (
                "__name__=remote_only,job=a,replica=r2".to_string(),
                "2".to_string()
            ),
        ]
    );

    // A remote that is down: the query succeeds on local data, with a warning.
    let down_dir = dir.path().join("down");
    std::fs::create_dir_all(&down_dir).unwrap();
    write_local_fixture(&down_dir.join("data"));
    let closed = free_port();
    let down = start_tocsin(
        &down_dir,
        &format!(
            "remote_read:\n  - url: http://127.0.0.1:{closed}/api/v1/read\n    name: gone\n    read_recent: true\n    remote_timeout: 5s\n"
        ),
        &[],
    );
    let json = api(&down.url(""), "/api/v1/query_range", &range("shared")).await;
    let got = matrix(&json);
    assert_eq!(got.len(), 1, "{json}");
    // The local samples only (each step takes the latest one within the lookback): 1000 at
    // T0, then the odd samples.
    let local_only: Vec<(f64, String)> = (0..20i64)
        .map(|i| {
            let value = match i {
                0 => 1000,
                i if i % 2 == 1 => i,
                i => i - 1,
            };
            ((T0 + i * STEP_MS) as f64 / 1000.0, value.to_string())
        })
        .collect();
    assert_eq!(got[0].1, local_only, "{json}");
    let warned = warnings(&json);
    assert_eq!(warned.len(), 1, "{json}");
    assert!(
        warned[0].starts_with("remote_read gone: error sending request: "),
        "{warned:?}"
    );

    // Remote read's metrics under Prometheus's names. The filtering node's three queries
    // (one selector each) were answered 200; its endpoint, unnamed, is named by a hash.
    let filtering_metrics = metrics_text(&filtering.url("/metrics")).await;
    let answered = sample_values(
        &filtering_metrics,
        "prometheus_remote_storage_read_queries_total{",
        &[&format!("url=\"{remote_url}\""), "code=\"200\""],
    );
    assert_eq!(answered.len(), 1, "{filtering_metrics}");
    assert!(answered[0] >= 3.0, "{filtering_metrics}");
    let timed = sample_values(
        &filtering_metrics,
        "prometheus_remote_storage_read_request_duration_seconds_count{",
        &[&format!("url=\"{remote_url}\"")],
    );
    assert_eq!(
        timed, answered,
        "every answer is timed: {filtering_metrics}"
    );
    assert_eq!(
        sample_values(
            &filtering_metrics,
            "prometheus_remote_storage_remote_read_queries{",
            &[&format!("url=\"{remote_url}\"")],
        ),
        [0.0],
        "{filtering_metrics}"
    );
    // The endpoint that never answered: in flight 0, no answer counted, none timed.
    let down_metrics = metrics_text(&down.url("/metrics")).await;
    assert_eq!(
        sample_values(
            &down_metrics,
            "prometheus_remote_storage_remote_read_queries{",
            &["remote_name=\"gone\""],
        ),
        [0.0],
        "{down_metrics}"
    );
    assert!(
        sample_values(
            &down_metrics,
            "prometheus_remote_storage_read_queries_total{",
            &["remote_name=\"gone\""],
        )
        .is_empty(),
        "{down_metrics}"
    );
    assert_eq!(
        sample_values(
            &down_metrics,
            "prometheus_remote_storage_read_request_duration_seconds_count{",
            &["remote_name=\"gone\""],
        ),
        [0.0],
        "{down_metrics}"
    );
    // The server side: every request served is finished.
    let remote_metrics = metrics_text(&remote.url("/metrics")).await;
    assert!(
        remote_metrics
            .lines()
            .any(|line| line == "prometheus_api_remote_read_queries 0"),
        "{remote_metrics}"
    );
}

async fn metrics_text(url: &str) -> String {
    client()
        .get(url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// The values of the samples whose line starts with `prefix` and contains every one of
/// `having`.
fn sample_values(text: &str, prefix: &str, having: &[&str]) -> Vec<f64> {
    text.lines()
        .filter(|line| line.starts_with(prefix) && having.iter().all(|part| line.contains(part)))
        .filter_map(|line| line.rsplit(' ').next()?.parse().ok())
        .collect()
}
