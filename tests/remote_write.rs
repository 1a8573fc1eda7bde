//! The remote-write 1.0 receiver through its axum routes: snappy-protobuf bodies built here,
//! samples checked in the TSDB, and the status codes for invalid data, unsupported types and
//! oversized bodies.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use axum::body::Body;
use axum::http::{Request, StatusCode};
use prost::Message as _;
use std::sync::Arc;
use tocsin::api::remote_write::{Label, Sample, TimeSeries, WriteRequest, routes};
use tocsin::ingest::scrape::{ScrapeManager, ScrapeOptions};
use tocsin::node::ingest::{IngestHandle, IngestRuntime};
use tocsin::tsdb::{Matcher, Tsdb, TsdbOptions};
use tower::ServiceExt as _;

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
        histograms: Vec::new(),
    }
}

fn body(request: &WriteRequest) -> Vec<u8> {
    snap::raw::Encoder::new()
        .compress_vec(&request.encode_to_vec())
        .unwrap()
}

async fn post(
    router: &axum::Router,
    content_type: Option<&str>,
    bytes: Vec<u8>,
) -> (StatusCode, String) {
    let mut request = Request::post("/api/v1/write")
        .header("Content-Encoding", "snappy")
        .header("X-Prometheus-Remote-Write-Version", "0.1.0");
    if let Some(content_type) = content_type {
        request = request.header("Content-Type", content_type);
    }
    let response = router
        .clone()
        .oneshot(request.body(Body::from(bytes)).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let text = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    (status, String::from_utf8_lossy(&text).into_owned())
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

#[tokio::test]
async fn remote_write_1_0() {
    let folder = tempfile::tempdir().unwrap();
    let tsdb = Arc::new(Tsdb::open(folder.path(), TsdbOptions::default()).unwrap());
    let handle = IngestHandle::new();
    let router: axum::Router = routes(Arc::clone(&handle));
    let good = WriteRequest {
        timeseries: vec![series(
            &[("__name__", "rw_test"), ("job", "sender")],
            &[(1_000, 1.0), (2_000, 2.0)],
        )],
    };

    // Before storage opens: 503, so the sender retries.
    let (status, _) = post(&router, Some("application/x-protobuf"), body(&good)).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);

    let scrape = ScrapeManager::new(Arc::clone(&tsdb), ScrapeOptions::default()).unwrap();
    handle.set(Arc::new(IngestRuntime {
        tsdb: Arc::clone(&tsdb),
        scrape,
    }));

    let (status, text) = post(&router, Some("application/x-protobuf"), body(&good)).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{text}");
    assert_eq!(samples(&tsdb, "rw_test"), [(1_000, 1.0), (2_000, 2.0)]);

    // No Content-Type is taken as 1.0, as Prometheus does; the proto parameter is accepted.
    let more = WriteRequest {
        timeseries: vec![series(&[("__name__", "rw_other")], &[(5_000, 5.0)])],
    };
    let (status, _) = post(&router, None, body(&more)).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = post(
        &router,
        Some("application/x-protobuf;proto=prometheus.WriteRequest"),
        body(&WriteRequest {
            timeseries: vec![series(&[("__name__", "rw_other")], &[(6_000, 6.0)])],
        }),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(samples(&tsdb, "rw_other"), [(5_000, 5.0), (6_000, 6.0)]);

    // Invalid series are named in a 400; the valid ones in the same request are kept.
    let mixed = WriteRequest {
        timeseries: vec![
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
        ],
    };
    let (status, text) = post(&router, Some("application/x-protobuf"), body(&mixed)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(text.contains("3 sample(s) rejected, 1 appended"), "{text}");
    assert!(
        text.contains("no metric name, series {job=\"no_name\"}"),
        "{text}"
    );
    assert!(text.contains("duplicate label with name: a"), "{text}");
    assert!(
        text.contains("out of order sample: 1 sample(s) refused for series {__name__=\"rw_test\", job=\"sender\"}"),
        "{text}"
    );
    assert_eq!(samples(&tsdb, "rw_kept"), [(7_000, 7.0)]);

    // Unsupported types, versions and encodings: 415.
    for content_type in [
        "application/json",
        "application/x-protobuf;proto=io.prometheus.write.v2.Request",
    ] {
        let (status, text) = post(&router, Some(content_type), body(&good)).await;
        assert_eq!(
            status,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "{content_type}: {text}"
        );
    }
    let response = router
        .clone()
        .oneshot(
            Request::post("/api/v1/write")
                .header("Content-Encoding", "gzip")
                .body(Body::from(body(&good)))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);

    // Garbage: 400, never a panic.
    let (status, text) = post(&router, None, b"not snappy at all".to_vec()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{text}");
    let garbage = snap::raw::Encoder::new()
        .compress_vec(&[0xff, 0xff, 0xff])
        .unwrap();
    let (status, text) = post(&router, None, garbage).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(text.starts_with("protobuf:"), "{text}");

    // A snappy header claiming a huge message is refused before decompressing.
    let mut huge = Vec::new();
    let mut length = 1u64 << 30;
    while length >= 0x80 {
        huge.push((length as u8) | 0x80);
        length >>= 7;
    }
    huge.push(length as u8);
    let (status, _) = post(&router, None, huge).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
}
