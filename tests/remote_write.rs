//! The remote-write receiver through its axum routes: snappy-protobuf bodies built with prost
//! (the reference encoder), samples checked in the TSDB, and the status codes, messages and
//! headers for 1.0 and 2.0, invalid data, unsupported types and oversized bodies.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use prost::Message as _;
use std::sync::Arc;
use tocsin::api::remote_write::proto::{self, Label, Sample, TimeSeries, WriteRequest, v2};
use tocsin::api::remote_write::routes;
use tocsin::ingest::scrape::{ScrapeManager, ScrapeOptions};
use tocsin::node::ingest::{IngestHandle, IngestRuntime};
use tocsin::tsdb::{Matcher, Tsdb, TsdbOptions};
use tower::ServiceExt as _;

const V2: &str = "application/x-protobuf;proto=io.prometheus.write.v2.Request";

fn series(labels: &[(&str, &str)], samples: &[(i64, f64)]) -> TimeSeries {
    TimeSeries {
        labels: labels
            .iter()
            .map(|(name, value)| Label {
                name: name.to_string(),
                value: value.to_string(),
            })
            .collect(),
        samples: samples
            .iter()
            .map(|&(timestamp, value)| Sample { value, timestamp })
            .collect(),
        ..TimeSeries::default()
    }
}

fn request(timeseries: Vec<TimeSeries>) -> WriteRequest {
    WriteRequest {
        timeseries,
        metadata: Vec::new(),
    }
}

fn compress(bytes: &[u8]) -> Vec<u8> {
    snap::raw::Encoder::new().compress_vec(bytes).unwrap()
}

fn body(request: &WriteRequest) -> Vec<u8> {
    compress(&request.encode_to_vec())
}

/// A 2.0 request builder: interns strings into the symbol table (symbol 0 is "").
struct V2Builder {
    request: v2::Request,
}

impl V2Builder {
    fn new() -> Self {
        V2Builder {
            request: v2::Request {
                symbols: vec![String::new()],
                timeseries: Vec::new(),
            },
        }
    }

    fn symbol(&mut self, text: &str) -> u32 {
        if let Some(index) = self.request.symbols.iter().position(|s| s == text) {
            return index as u32;
        }
        self.request.symbols.push(text.to_string());
        (self.request.symbols.len() - 1) as u32
    }

    fn refs(&mut self, labels: &[(&str, &str)]) -> Vec<u32> {
        labels
            .iter()
            .flat_map(|(name, value)| [self.symbol(name), self.symbol(value)])
            .collect()
    }

    fn series(&mut self, labels: &[(&str, &str)], samples: &[(i64, f64)]) -> &mut v2::TimeSeries {
        let labels_refs = self.refs(labels);
        self.request.timeseries.push(v2::TimeSeries {
            labels_refs,
            samples: samples
                .iter()
                .map(|&(timestamp, value)| Sample { value, timestamp })
                .collect(),
            ..v2::TimeSeries::default()
        });
        self.request.timeseries.last_mut().unwrap()
    }

    fn body(&self) -> Vec<u8> {
        compress(&self.request.encode_to_vec())
    }
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    text: String,
}

impl Answer {
    fn written(&self) -> (String, String, String) {
        let get = |name: &str| {
            self.headers
                .get(name)
                .map(|v| v.to_str().unwrap().to_string())
                .unwrap_or_else(|| "absent".to_string())
        };
        (
            get("X-Prometheus-Remote-Write-Samples-Written"),
            get("X-Prometheus-Remote-Write-Histograms-Written"),
            get("X-Prometheus-Remote-Write-Exemplars-Written"),
        )
    }
}

fn written(samples: &str, histograms: &str, exemplars: &str) -> (String, String, String) {
    (samples.into(), histograms.into(), exemplars.into())
}

async fn post_with(
    router: &axum::Router,
    content_type: Option<&str>,
    encoding: Option<&str>,
    bytes: Vec<u8>,
) -> Answer {
    let mut request = Request::post("/api/v1/write");
    if let Some(encoding) = encoding {
        request = request.header("Content-Encoding", encoding);
    }
    if let Some(content_type) = content_type {
        request = request.header("Content-Type", content_type);
    }
    let response = router
        .clone()
        .oneshot(request.body(Body::from(bytes)).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let text = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    Answer {
        status,
        headers,
        text: String::from_utf8_lossy(&text).into_owned(),
    }
}

async fn post(router: &axum::Router, content_type: Option<&str>, bytes: Vec<u8>) -> Answer {
    post_with(router, content_type, Some("snappy"), bytes).await
}

fn samples(tsdb: &Tsdb, name: &str) -> Vec<(i64, f64)> {
    let querier = tsdb.querier(i64::MIN, i64::MAX);
    let series: Vec<_> = querier
        .select(&[Matcher::equal("__name__", name)])
        .unwrap()
        .collect();
    series
        .iter()
        .flat_map(|series| series.samples().collect::<Vec<_>>())
        .collect()
}

/// A router over a fresh TSDB, storage open.
fn open(folder: &std::path::Path) -> (Arc<Tsdb>, axum::Router) {
    let tsdb = Arc::new(Tsdb::open(folder, TsdbOptions::default()).unwrap());
    let handle = IngestHandle::new();
    let scrape = ScrapeManager::new(Arc::clone(&tsdb), ScrapeOptions::default()).unwrap();
    handle.set(Arc::new(IngestRuntime {
        tsdb: Arc::clone(&tsdb),
        scrape,
    }));
    (tsdb, routes(handle))
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

#[tokio::test]
async fn remote_write_1_0() {
    let folder = tempfile::tempdir().unwrap();
    let tsdb = Arc::new(Tsdb::open(folder.path(), TsdbOptions::default()).unwrap());
    let handle = IngestHandle::new();
    let router: axum::Router = routes(Arc::clone(&handle));
    let good = request(vec![series(
        &[("__name__", "rw_test"), ("job", "sender")],
        &[(1_000, 1.0), (2_000, 2.0)],
    )]);

    // Before storage opens: 503, so the sender retries.
    let answer = post(&router, Some("application/x-protobuf"), body(&good)).await;
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);

    let scrape = ScrapeManager::new(Arc::clone(&tsdb), ScrapeOptions::default()).unwrap();
    handle.set(Arc::new(IngestRuntime {
        tsdb: Arc::clone(&tsdb),
        scrape,
    }));

    let answer = post(&router, Some("application/x-protobuf"), body(&good)).await;
    assert_eq!(answer.status, StatusCode::NO_CONTENT, "{}", answer.text);
    assert_eq!(samples(&tsdb, "rw_test"), [(1_000, 1.0), (2_000, 2.0)]);
    // 1.0 answers carry no written counts, as Prometheus's do not.
    assert_eq!(answer.written(), written("absent", "absent", "absent"));

    // No Content-Type (and no Content-Encoding) is taken as 1.0 over snappy, as Prometheus
    // does; the proto parameter is accepted.
    let more = request(vec![series(&[("__name__", "rw_other")], &[(5_000, 5.0)])]);
    let answer = post_with(&router, None, None, body(&more)).await;
    assert_eq!(answer.status, StatusCode::NO_CONTENT, "{}", answer.text);
    let answer = post(
        &router,
        Some("application/x-protobuf;proto=prometheus.WriteRequest"),
        body(&request(vec![series(
            &[("__name__", "rw_other")],
            &[(6_000, 6.0)],
        )])),
    )
    .await;
    assert_eq!(answer.status, StatusCode::NO_CONTENT);
    assert_eq!(samples(&tsdb, "rw_other"), [(5_000, 5.0), (6_000, 6.0)]);

    // Labels in any order are sorted, as Prometheus does; exemplars and metadata are accepted.
    let mut unsorted = series(
        &[("job", "x"), ("__name__", "rw_unsorted")],
        &[(1_000, 1.0)],
    );
    unsorted.exemplars.push(proto::Exemplar {
        labels: vec![Label {
            name: "trace_id".into(),
            value: "abc".into(),
        }],
        value: 1.0,
        timestamp: 1_000,
    });
    let mut with_metadata = request(vec![unsorted]);
    with_metadata.metadata.push(proto::MetricMetadata {
        r#type: 2,
        metric_family_name: "rw_unsorted".into(),
        help: "A gauge.".into(),
        unit: String::new(),
    });
    let answer = post(&router, None, body(&with_metadata)).await;
    assert_eq!(answer.status, StatusCode::NO_CONTENT, "{}", answer.text);
    assert_eq!(samples(&tsdb, "rw_unsorted"), [(1_000, 1.0)]);

    // Invalid series are named (index and labels) in a 400; the valid ones are kept.
    let far_future = now_ms() + 3_600_000;
    let mut histogram_series = series(&[("__name__", "rw_hist")], &[]);
    histogram_series.histograms.push(proto::Histogram {
        count_int: 3,
        sum: 1.5,
        timestamp: 1_000,
    });
    let mixed = request(vec![
        series(&[("job", "no_name")], &[(1_000, 1.0)]),
        series(
            &[("__name__", "rw_dup"), ("a", "1"), ("a", "2")],
            &[(1_000, 1.0)],
        ),
        series(
            &[("__name__", "rw_test"), ("job", "sender")],
            &[(1_500, 9.0)],
        ),
        series(&[("__name__", "rw_kept")], &[(7_000, 7.0)]),
        series(&[("__name__", "rw_future")], &[(far_future, 1.0)]),
        histogram_series,
        series(&[("__name__", "rw_empty_name"), ("", "x")], &[(1_000, 1.0)]),
    ]);
    let answer = post(&router, Some("application/x-protobuf"), body(&mixed)).await;
    let text = &answer.text;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert!(
        text.starts_with(
            "5 sample(s) rejected, 1 appended, 1 histogram sample(s) rejected: series 0: "
        ),
        "{text}"
    );
    assert!(
        text.contains("series 0: invalid metric name or labels, got {job=\"no_name\"}"),
        "{text}"
    );
    assert!(
        text.contains(
            "series 1: invalid labels for series, labels {__name__=\"rw_dup\", a=\"1\", a=\"2\"}, duplicated label a"
        ),
        "{text}"
    );
    assert!(
        text.contains("series 2: out of order sample for series {__name__=\"rw_test\", job=\"sender\"}: 1 sample(s) refused (first at timestamp 1500)"),
        "{text}"
    );
    assert!(
        text.contains(&format!("series 4: out of bounds: timestamp is too far in the future for series {{__name__=\"rw_future\"}}: 1 sample(s) refused (first at timestamp {far_future})")),
        "{text}"
    );
    assert!(
        text.contains("series 5: native histograms are not supported: 1 dropped for series {__name__=\"rw_hist\"}"),
        "{text}"
    );
    assert!(
        text.contains("series 6: invalid metric name or labels"),
        "{text}"
    );
    assert_eq!(samples(&tsdb, "rw_kept"), [(7_000, 7.0)]);
    assert!(samples(&tsdb, "rw_future").is_empty());

    // Unsupported types, messages and encodings: 415 with Prometheus's messages.
    for (content_type, expected) in [
        (
            "application/json",
            "expected application/x-protobuf as the first (media) part, got application/json content-type\n",
        ),
        (
            "application/x-protobuf;proto=io.prometheus.write.v9.Request",
            "got application/x-protobuf;proto=io.prometheus.write.v9.Request content type; unknown remote write protobuf message io.prometheus.write.v9.Request, supported: prometheus.WriteRequest, io.prometheus.write.v2.Request\n",
        ),
    ] {
        let answer = post(&router, Some(content_type), body(&good)).await;
        assert_eq!(
            answer.status,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "{content_type}"
        );
        assert_eq!(answer.text, expected);
    }
    let answer = post_with(&router, None, Some("gzip"), body(&good)).await;
    assert_eq!(answer.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(
        answer.text,
        "gzip encoding (compression) is not accepted by this server; only snappy is acceptable\n"
    );

    // Garbage: 400, never a panic.
    let answer = post(&router, None, b"not snappy at all".to_vec()).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{}", answer.text);
    let answer = post(&router, None, compress(&[0xff, 0xff, 0xff])).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert!(
        answer
            .text
            .starts_with("prometheus.WriteRequest: protobuf: "),
        "{}",
        answer.text
    );

    // A snappy header claiming a huge message is refused before decompressing.
    let mut huge = Vec::new();
    let mut length = 1u64 << 30;
    while length >= 0x80 {
        huge.push((length as u8) | 0x80);
        length >>= 7;
    }
    huge.push(length as u8);
    let answer = post(&router, None, huge).await;
    assert_eq!(answer.status, StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn remote_write_2_0() {
    let folder = tempfile::tempdir().unwrap();
    let (tsdb, router) = open(folder.path());

    // Samples, an exemplar (accepted, not stored: counted as not written) and metadata.
    let mut builder = V2Builder::new();
    let help = builder.symbol("Requests served.");
    let trace = builder.refs(&[("trace_id", "4bf92f3577b34da6")]);
    let series = builder.series(
        &[
            ("__name__", "rw2_requests_total"),
            ("job", "api"),
            ("code", "200"),
        ],
        &[(1_000, 1.0), (2_000, 3.0), (3_000, 6.0)],
    );
    series.exemplars.push(v2::Exemplar {
        labels_refs: trace,
        value: 1.0,
        timestamp: 2_000,
    });
    series.metadata = Some(v2::Metadata {
        r#type: 1,
        help_ref: help,
        unit_ref: 0,
    });
    series.created_timestamp = 500;
    builder.series(&[("__name__", "rw2_gauge")], &[(1_000, -2.5)]);
    let answer = post(&router, Some(V2), builder.body()).await;
    assert_eq!(answer.status, StatusCode::NO_CONTENT, "{}", answer.text);
    assert_eq!(answer.written(), written("4", "0", "0"));
    assert_eq!(
        samples(&tsdb, "rw2_requests_total"),
        [(1_000, 1.0), (2_000, 3.0), (3_000, 6.0)]
    );
    assert_eq!(samples(&tsdb, "rw2_gauge"), [(1_000, -2.5)]);
    let querier = tsdb.querier(i64::MIN, i64::MAX);
    let stored: Vec<_> = querier
        .select(&[Matcher::equal("__name__", "rw2_requests_total")])
        .unwrap()
        .collect();
    assert_eq!(
        stored[0].labels.to_string(),
        "{__name__=\"rw2_requests_total\", code=\"200\", job=\"api\"}"
    );

    // Invalid series are refused one by one, with their index; the rest is written and the
    // headers count only what was.
    let mut builder = V2Builder::new();
    builder.series(&[("__name__", "rw2_kept")], &[(1_000, 1.0), (2_000, 2.0)]);
    // An odd number of references.
    let name = builder.symbol("__name__");
    builder.request.timeseries.push(v2::TimeSeries {
        labels_refs: vec![name],
        samples: vec![Sample {
            value: 1.0,
            timestamp: 1_000,
        }],
        ..v2::TimeSeries::default()
    });
    // A reference past the symbol table.
    builder.request.timeseries.push(v2::TimeSeries {
        labels_refs: vec![name, 999],
        samples: vec![Sample {
            value: 1.0,
            timestamp: 1_000,
        }],
        ..v2::TimeSeries::default()
    });
    // An exemplar reference past the table.
    let series = builder.series(&[("__name__", "rw2_bad_exemplar")], &[(1_000, 1.0)]);
    series.exemplars.push(v2::Exemplar {
        labels_refs: vec![0, 1000],
        value: 1.0,
        timestamp: 1_000,
    });
    // A metadata reference past the table.
    let series = builder.series(&[("__name__", "rw2_bad_help")], &[(1_000, 1.0)]);
    series.metadata = Some(v2::Metadata {
        r#type: 2,
        help_ref: 77,
        unit_ref: 0,
    });
    builder.series(&[("job", "nameless")], &[(1_000, 1.0)]);
    builder.series(
        &[("__name__", "rw2_dup"), ("a", "1"), ("a", "2")],
        &[(1_000, 1.0)],
    );
    let series = builder.series(&[("__name__", "rw2_hist")], &[]);
    series.histograms.push(proto::Histogram {
        count_int: 1,
        sum: 0.5,
        timestamp: 1_000,
    });
    let answer = post(&router, Some(V2), builder.body()).await;
    let text = &answer.text;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{text}");
    assert_eq!(answer.written(), written("2", "0", "0"));
    assert!(
        text.starts_with("6 sample(s) rejected, 2 appended, 1 histogram sample(s) rejected: "),
        "{text}"
    );
    let symbols = builder.request.symbols.len();
    for expected in [
        "series 1: labels: labels_refs has an odd length (1): it must hold name and value pairs".to_string(),
        format!("series 2: labels: symbol reference 999 is out of range (the symbol table has {symbols} entries)"),
        format!("series 3: exemplar 0: symbol reference 1000 is out of range (the symbol table has {symbols} entries)"),
        format!("series 4: metadata help_ref 77 is out of range (the symbol table has {symbols} entries)"),
        "series 5: invalid metric name or labels, got {job=\"nameless\"}".to_string(),
        "series 6: invalid labels for series, labels {__name__=\"rw2_dup\", a=\"1\", a=\"2\"}, duplicated label a".to_string(),
        "series 7: native histograms are not supported: 1 dropped for series {__name__=\"rw2_hist\"}".to_string(),
    ] {
        assert!(text.contains(&expected), "{expected} not in {text}");
    }
    assert_eq!(samples(&tsdb, "rw2_kept"), [(1_000, 1.0), (2_000, 2.0)]);
    assert!(samples(&tsdb, "rw2_bad_exemplar").is_empty());

    // Out of order within 2.0: 400, counted.
    let mut builder = V2Builder::new();
    builder.series(&[("__name__", "rw2_kept")], &[(1_500, 1.0), (3_000, 3.0)]);
    let answer = post(&router, Some(V2), builder.body()).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert_eq!(answer.written(), written("1", "0", "0"));
    assert!(
        answer.text.contains("series 0: out of order sample"),
        "{}",
        answer.text
    );

    // A 1.0 body sent as 2.0 reads as an empty 2.0 request (its fields are reserved there).
    let one = request(vec![series_v1_for_v2()]);
    let answer = post(&router, Some(V2), body(&one)).await;
    assert_eq!(answer.status, StatusCode::NO_CONTENT, "{}", answer.text);
    assert_eq!(answer.written(), written("0", "0", "0"));

    // Garbage: 400 with the written headers still set; zstd: 415.
    let answer = post(&router, Some(V2), compress(&[0x22, 0x05, b'a'])).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert!(
        answer
            .text
            .starts_with("io.prometheus.write.v2.Request: protobuf: length 5 runs past the end"),
        "{}",
        answer.text
    );
    assert_eq!(answer.written(), written("0", "0", "0"));
    let answer = post_with(&router, Some(V2), Some("zstd"), builder.body()).await;
    assert_eq!(answer.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
}

fn series_v1_for_v2() -> TimeSeries {
    series(&[("__name__", "rw_v1_as_v2")], &[(1_000, 1.0)])
}
