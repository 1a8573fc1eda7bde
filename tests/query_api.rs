//! The query half of Prometheus's `/api/v1`, end to end: samples are written to the node's TSDB
//! before it starts (ingestion is not wired yet), then the real binary answers `promtool query`
//! and raw HTTP requests.
#![allow(clippy::unwrap_used)]

mod common;

use common::RunningNode;
use std::io::{Read, Write};
use std::path::Path;
use std::process::Command;
use std::time::Duration;
use tocsin::tsdb::{Labels, Tsdb, TsdbOptions};

const PROMTOOL: &str = "/usr/bin/promtool";
/// 2023-11-14T22:13:20Z.
const T0: i64 = 1_700_000_000_000;

/// Writes the fixture into `<storage>/tsdb`: `up` for two jobs, a counter, and a series that
/// ends with a staleness marker.
fn write_fixture(storage: &Path) {
    let tsdb = Tsdb::open(&storage.join("tsdb"), TsdbOptions::default()).unwrap();
    let mut appender = tsdb.appender();
    let api = Labels::new([("__name__", "up"), ("job", "api"), ("instance", "a:9090")]);
    let db = Labels::new([("__name__", "up"), ("job", "db"), ("instance", "b:9090")]);
    let counter = Labels::new([
        ("__name__", "http_requests_total"),
        ("job", "api"),
        ("instance", "a:9090"),
    ]);
    let gone = Labels::new([("__name__", "gone"), ("job", "api")]);
    for i in 0..=40i64 {
        let t = T0 + i * 15_000;
        appender.append(&api, t, 1.0).unwrap();
        appender.append(&db, t, 0.0).unwrap();
        appender.append(&counter, t, (i * 30) as f64).unwrap();
    }
    appender.append(&gone, T0, 5.0).unwrap();
    appender
        .append(&gone, T0 + 15_000, tocsin::promql::value::stale_nan())
        .unwrap();
    appender.commit().unwrap();
}

fn start_node() -> (tempfile::TempDir, RunningNode) {
    let dir = tempfile::tempdir().unwrap();
    write_fixture(&dir.path().join("data"));
    let node = RunningNode::start(dir.path(), &[]);
    (dir, node)
}

fn promtool(args: &[&str]) -> (bool, String, String) {
    let output = Command::new(PROMTOOL).args(args).output().unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn seconds(t_ms: i64) -> String {
    format!("{}", t_ms / 1000)
}

/// A request with an optional urlencoded body; returns status, Content-Type and body.
fn http(method: &str, url: &str, form: Option<&str>) -> (u16, String, String) {
    let rest = url.strip_prefix("http://").unwrap();
    let (host, path) = rest.split_once('/').unwrap();
    let mut stream = std::net::TcpStream::connect(host).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let body = form.unwrap_or("");
    let content_type = if form.is_some() {
        "Content-Type: application/x-www-form-urlencoded\r\n"
    } else {
        ""
    };
    write!(
        stream,
        "{method} /{path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n{content_type}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).unwrap();
    let response = String::from_utf8_lossy(&response).into_owned();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    let content_type = head
        .lines()
        .find_map(|line| {
            line.to_ascii_lowercase()
                .strip_prefix("content-type: ")
                .map(str::to_string)
        })
        .unwrap_or_default();
    (status, content_type, body.to_string())
}

fn get(node: &RunningNode, path_and_query: &str) -> (u16, serde_json::Value, String) {
    let (status, content_type, body) = http("GET", &node.url(path_and_query), None);
    if status != 413 {
        assert_eq!(content_type, "application/json", "{body}");
    }
    let json = serde_json::from_str(&body).unwrap_or(serde_json::Value::Null);
    (status, json, body)
}

fn encode(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

#[test]
fn promtool_instant_range_series_and_labels() {
    let (_dir, node) = start_node();
    let url = node.url("/");
    let at = seconds(T0 + 600_000);

    let (ok, out, err) = promtool(&["query", "instant", "--time", &at, &url, "up"]);
    println!("promtool query instant up:\n{out}{err}");
    assert!(ok, "{out}{err}");
    assert_eq!(
        out,
        format!(
            "up{{instance=\"a:9090\", job=\"api\"}} => 1 @[{at}]\nup{{instance=\"b:9090\", job=\"db\"}} => 0 @[{at}]\n"
        )
    );

    let (ok, out, err) = promtool(&[
        "query",
        "instant",
        "--time",
        &at,
        &url,
        "sum by (job) (http_requests_total) / 4",
    ]);
    println!("promtool query instant sum by:\n{out}{err}");
    assert!(ok, "{out}{err}");
    assert_eq!(out, format!("{{job=\"api\"}} => 300 @[{at}]\n"));

    let (ok, out, err) = promtool(&[
        "query",
        "range",
        "--start",
        &seconds(T0),
        "--end",
        &seconds(T0 + 60_000),
        "--step",
        "30s",
        &url,
        "up{job=\"db\"}",
    ]);
    println!("promtool query range:\n{out}{err}");
    assert!(ok, "{out}{err}");
    assert_eq!(
        out,
        format!(
            "up{{instance=\"b:9090\", job=\"db\"}} =>\n0 @[{}]\n0 @[{}]\n0 @[{}]\n",
            seconds(T0),
            seconds(T0 + 30_000),
            seconds(T0 + 60_000)
        )
    );

    // promtool asks for a window around now unless told: the fixture is in 2023.
    let (ok, out, err) = promtool(&[
        "query",
        "series",
        "--start",
        "2023-11-14T00:00:00Z",
        "--end",
        "2023-11-15T00:00:00Z",
        "--match",
        "up",
        "--match",
        "{job=\"api\",__name__=~\"http.*\"}",
        &url,
    ]);
    println!("promtool query series:\n{out}{err}");
    assert!(ok, "{out}{err}");
    assert_eq!(
        out,
        "{__name__=\"http_requests_total\", instance=\"a:9090\", job=\"api\"}\n\
         {__name__=\"up\", instance=\"a:9090\", job=\"api\"}\n\
         {__name__=\"up\", instance=\"b:9090\", job=\"db\"}\n"
    );

    let (ok, out, err) = promtool(&[
        "query",
        "labels",
        "--start",
        &seconds(T0),
        "--end",
        &seconds(T0 + 600_000),
        &url,
        "job",
    ]);
    println!("promtool query labels job:\n{out}{err}");
    assert!(ok, "{out}{err}");
    assert_eq!(out, "api\ndb\n");

    // A bad query: promtool reports Prometheus's error.
    let (ok, out, err) = promtool(&["query", "instant", &url, "sum("]);
    println!("promtool query instant 'sum(':\n{out}{err}");
    assert!(!ok);
    assert!(err.contains("bad_data"), "{err}");
}

#[test]
fn json_shapes_of_query_results() {
    let (_dir, node) = start_node();
    let at = seconds(T0 + 600_000);

    // Vector, GET.
    let (status, _, body) = get(&node, &format!("/api/v1/query?query=up&time={at}.5"));
    assert_eq!(status, 200);
    assert_eq!(
        body,
        format!(
            r#"{{"status":"success","data":{{"resultType":"vector","result":[{{"metric":{{"__name__":"up","instance":"a:9090","job":"api"}},"value":[{at}.500,"1"]}},{{"metric":{{"__name__":"up","instance":"b:9090","job":"db"}},"value":[{at}.500,"0"]}}]}}}}"#
        )
    );

    // The same as POST with a form body; RFC 3339 time.
    let (status, _, body) = http(
        "POST",
        &node.url("/api/v1/query"),
        Some("query=up%7Bjob%3D%22db%22%7D&time=2023-11-14T22:23:20Z"),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        format!(
            r#"{{"status":"success","data":{{"resultType":"vector","result":[{{"metric":{{"__name__":"up","instance":"b:9090","job":"db"}},"value":[{at},"0"]}}]}}}}"#
        )
    );

    // Scalars with Prometheus's float spelling.
    for (query, value) in [
        ("1/0", "+Inf"),
        ("-1/0", "-Inf"),
        ("0/0", "NaN"),
        ("0.1+0.2", "0.30000000000000004"),
        ("1e21", "1000000000000000000000"),
    ] {
        let (status, json, body) = get(
            &node,
            &format!("/api/v1/query?query={}&time=100", encode(query)),
        );
        assert_eq!(status, 200, "{body}");
        assert_eq!(json["data"]["resultType"], "scalar");
        assert_eq!(
            json["data"]["result"],
            serde_json::json!([100, value]),
            "{query}"
        );
    }
    let (_, json, _) = get(&node, "/api/v1/query?query=%22hello%22&time=100");
    assert_eq!(
        json["data"],
        serde_json::json!({"resultType": "string", "result": [100, "hello"]})
    );

    // Matrix from a range query; the stale series ends where its marker is.
    let (status, json, body) = get(
        &node,
        &format!(
            "/api/v1/query_range?query=gone&start={}&end={}&step=15s",
            seconds(T0),
            seconds(T0 + 45_000)
        ),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        json["data"],
        serde_json::json!({"resultType": "matrix", "result": [
            {"metric": {"__name__": "gone", "job": "api"}, "values": [[T0 / 1000, "5"]]}
        ]})
    );
    // Step as float seconds, POST.
    let (status, _, body) = http(
        "POST",
        &node.url("/api/v1/query_range"),
        Some(&format!(
            "query=up%7Bjob%3D%22api%22%7D&start={}&end={}&step=30.0",
            seconds(T0),
            seconds(T0 + 30_000)
        )),
    );
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(&format!(
        r#""values":[[{},"1"],[{},"1"]]"#,
        seconds(T0),
        seconds(T0 + 30_000)
    )));

    // A range vector from an instant query.
    let (_, json, _) = get(
        &node,
        &format!(
            "/api/v1/query?query=gone%5B1m%5D&time={}",
            seconds(T0 + 30_000)
        ),
    );
    assert_eq!(json["data"]["resultType"], "matrix");

    // limit truncates with Prometheus's warning.
    let (_, json, _) = get(&node, &format!("/api/v1/query?query=up&time={at}&limit=1"));
    assert_eq!(json["data"]["result"].as_array().unwrap().len(), 1);
    assert_eq!(
        json["warnings"],
        serde_json::json!(["results truncated due to limit"])
    );

    // Annotations: rate over something that does not look like a counter.
    let (_, json, _) = get(
        &node,
        &format!("/api/v1/query?query=rate%28up%5B5m%5D%29&time={at}"),
    );
    assert!(
        json["infos"][0]
            .as_str()
            .unwrap()
            .contains("metric might not be a counter"),
        "{json}"
    );

    // stats.
    let (_, json, _) = get(
        &node,
        &format!("/api/v1/query?query=up&time={at}&stats=all"),
    );
    assert!(json["data"]["stats"]["timings"]["evalTotalTime"].is_number());
    assert!(
        json["data"]["stats"]["samples"]["totalQueryableSamples"]
            .as_u64()
            .unwrap()
            > 0
    );
}

#[test]
fn errors_have_prometheus_types_and_codes() {
    let (_dir, node) = start_node();
    let cases: Vec<(String, u16, &str, String)> = vec![
        (
            "/api/v1/query?query=up&time=yesterday".into(),
            400,
            "bad_data",
            r#"invalid parameter "time": cannot parse "yesterday" to a valid timestamp"#.into(),
        ),
        (
            "/api/v1/query_range?query=up&start=0&end=60&step=fast".into(),
            400,
            "bad_data",
            r#"invalid parameter "step": cannot parse "fast" to a valid duration"#.into(),
        ),
        (
            "/api/v1/query_range?query=up&start=0&end=60&step=0".into(),
            400,
            "bad_data",
            "zero or negative query resolution step widths are not accepted. Try a positive integer".into(),
        ),
        (
            "/api/v1/query_range?query=up&start=60&end=0&step=1".into(),
            400,
            "bad_data",
            "end timestamp must not be before start time".into(),
        ),
        (
            "/api/v1/query_range?query=up&start=0&end=11001&step=1".into(),
            400,
            "bad_data",
            "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)".into(),
        ),
        (
            "/api/v1/query_range?query=up&end=60&step=1".into(),
            400,
            "bad_data",
            r#"invalid parameter "start": cannot parse "" to a valid timestamp"#.into(),
        ),
        (
            "/api/v1/query?query=up&timeout=soon".into(),
            400,
            "bad_data",
            r#"invalid parameter "timeout": cannot parse "soon" to a valid duration"#.into(),
        ),
        (
            "/api/v1/query?query=up&limit=-1".into(),
            400,
            "bad_data",
            r#"invalid parameter "limit": limit must be non-negative"#.into(),
        ),
        (
            "/api/v1/series".into(),
            400,
            "bad_data",
            "no match[] parameter provided".into(),
        ),
    ];
    for (path, code, kind, message) in cases {
        let (status, json, body) = get(&node, &path);
        assert_eq!(status, code, "{path}: {body}");
        assert_eq!(json["status"], "error", "{path}");
        assert_eq!(json["errorType"], kind, "{path}");
        assert_eq!(json["error"], message, "{path}");
        assert_eq!(json.as_object().unwrap().len(), 3, "{path}: {body}");
    }

    // A query that does not parse.
    let (status, json, _) = get(&node, "/api/v1/query?query=sum%28&time=0");
    assert_eq!(status, 400);
    assert_eq!(json["errorType"], "bad_data");
    assert!(
        json["error"]
            .as_str()
            .unwrap()
            .starts_with("invalid parameter \"query\": "),
        "{json}"
    );
    // A range vector is not a range query's type.
    let (status, json, _) = get(
        &node,
        "/api/v1/query_range?query=up%5B5m%5D&start=0&end=60&step=15",
    );
    assert_eq!(status, 400);
    assert_eq!(
        json["error"],
        "invalid parameter \"query\": invalid expression type \"range vector\" for range query, must be Scalar or instant Vector"
    );
    // Many-to-many matching fails in execution: 422.
    let (status, json, body) = get(
        &node,
        &format!(
            "/api/v1/query?query={}&time={}",
            encode("up + on() up"),
            seconds(T0 + 60_000)
        ),
    );
    assert_eq!(status, 422, "{body}");
    assert_eq!(json["errorType"], "execution");

    // A body beyond the limit is refused.
    let big = format!("query={}", "1".repeat(3 << 20));
    let (status, _, _) = http("POST", &node.url("/api/v1/query"), Some(&big));
    assert_eq!(status, 413);
}

#[test]
fn metadata_format_parse_and_exemplars() {
    let (_dir, node) = start_node();

    let (status, json, _) = get(&node, "/api/v1/labels");
    assert_eq!(status, 200);
    assert_eq!(
        json["data"],
        serde_json::json!(["__name__", "instance", "job"])
    );
    let (_, json, _) = get(&node, "/api/v1/labels?match[]=gone");
    assert_eq!(json["data"], serde_json::json!(["__name__", "job"]));
    let (_, json, _) = get(&node, "/api/v1/labels?limit=1");
    assert_eq!(json["data"], serde_json::json!(["__name__"]));
    assert_eq!(
        json["warnings"],
        serde_json::json!(["results truncated due to limit"])
    );

    let (_, json, _) = get(&node, "/api/v1/label/__name__/values");
    assert_eq!(
        json["data"],
        serde_json::json!(["gone", "http_requests_total", "up"])
    );
    let (_, json, _) = get(
        &node,
        &format!(
            "/api/v1/label/instance/values?match[]={}",
            encode("up{job=\"db\"}")
        ),
    );
    assert_eq!(json["data"], serde_json::json!(["b:9090"]));
    let (_, json, _) = get(&node, "/api/v1/label/nothing/values");
    assert_eq!(json["data"], serde_json::json!([]));

    // Series within a time range: `gone` has data only at the start.
    let (_, json, _) = get(
        &node,
        &format!(
            "/api/v1/series?match[]=%7Bjob%3D%22api%22%7D&start={}&end={}",
            seconds(T0 + 300_000),
            seconds(T0 + 600_000)
        ),
    );
    assert_eq!(
        json["data"],
        serde_json::json!([
            {"__name__": "http_requests_total", "instance": "a:9090", "job": "api"},
            {"__name__": "up", "instance": "a:9090", "job": "api"}
        ])
    );
    // Prometheus's MinTime and MaxTime, as clients send them.
    let (_, json, _) = get(
        &node,
        "/api/v1/series?match[]=up&start=-9223309901257974&end=9223309901257974.999999999",
    );
    assert_eq!(json["data"].as_array().unwrap().len(), 2);
    let (_, json, _) = get(&node, "/api/v1/series?match[]=up&limit=1");
    assert_eq!(json["data"].as_array().unwrap().len(), 1);
    let (status, json, _) = get(&node, "/api/v1/series?match[]=sum(up)");
    assert_eq!(status, 400);
    assert_eq!(json["errorType"], "bad_data");

    let (status, json, _) = get(
        &node,
        &format!(
            "/api/v1/format_query?query={}",
            encode("sum by(job)(rate(http_requests_total{job=\"api\"}[5m]))")
        ),
    );
    assert_eq!(status, 200);
    assert_eq!(
        json["data"],
        "sum by (job) (rate(http_requests_total{job=\"api\"}[5m]))"
    );

    let (status, json, body) = get(
        &node,
        &format!(
            "/api/v1/parse_query?query={}",
            encode("up{job=\"a\"} offset 5m")
        ),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        json["data"],
        serde_json::json!({
            "type": "vectorSelector",
            "name": "up",
            "offset": 300000,
            "matchers": [
                {"name": "job", "value": "a", "type": "="},
                {"name": "__name__", "value": "up", "type": "="}
            ],
            "timestamp": null,
            "startOrEnd": null
        })
    );
    let (status, json, _) = get(&node, "/api/v1/parse_query?query=%29");
    assert_eq!(status, 400);
    assert_eq!(json["errorType"], "bad_data");

    let (status, json, _) = get(&node, "/api/v1/query_exemplars?query=up");
    assert_eq!(status, 200);
    assert_eq!(json, serde_json::json!({"status": "success", "data": []}));
}

#[test]
fn the_tsdb_is_on_metrics_and_survives_a_damaged_wal_tail() {
    let dir = tempfile::tempdir().unwrap();
    let storage = dir.path().join("data");
    write_fixture(&storage);
    // Damage the tail of the newest WAL segment.
    let wal = storage.join("tsdb").join("wal");
    let mut segments: Vec<_> = std::fs::read_dir(&wal)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.is_file())
        .collect();
    segments.sort();
    let newest = segments
        .iter()
        .rev()
        .find(|path| std::fs::metadata(path).unwrap().len() > 0)
        .unwrap()
        .clone();
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&newest)
        .unwrap();
    file.write_all(&[0x01, 0xff, 0xff, 0x00, 0x00, 0xde, 0xad, 0xbe, 0xef, 0x42])
        .unwrap();
    drop(file);

    let node = RunningNode::start(dir.path(), &[]);
    let log = node.log();
    assert!(log.contains("TSDB open, WAL replayed"), "{log}");
    assert!(log.contains("WAL segment damaged"), "{log}");
    let (status, _, _) = http("GET", &node.url("/-/ready"), None);
    assert_eq!(status, 200);

    // The samples before the damage are all there.
    let (_, json, _) = get(
        &node,
        &format!("/api/v1/query?query=count%28up%29&time={}", seconds(T0)),
    );
    assert_eq!(json["data"]["result"][0]["value"][1], "2");

    let (_, _, metrics) = http("GET", &node.url("/metrics"), None);
    for line in [
        "tocsin_tsdb_head_series 4",
        "tocsin_tsdb_wal_replay_corruptions 1",
        "tocsin_tsdb_refused_samples_total{reason=\"out_of_order\"} 0",
    ] {
        assert!(metrics.contains(line), "{line} not in:\n{metrics}");
    }
    assert!(metrics.contains("# TYPE tocsin_tsdb_blocks_loaded gauge"));
}

#[test]
fn query_limits_come_from_the_query_flags() {
    // --query.max-samples: a query that would hold more samples fails in execution (422).
    let dir = tempfile::tempdir().unwrap();
    write_fixture(&dir.path().join("data"));
    let node = RunningNode::start(dir.path(), &["--query.max-samples", "10"]);
    let (status, json, body) = get(
        &node,
        &format!(
            "/api/v1/query?query={}&time={}",
            encode("count_over_time(http_requests_total[10m])"),
            seconds(T0 + 600_000)
        ),
    );
    assert_eq!(status, 422, "{body}");
    assert_eq!(json["errorType"], "execution");
    assert_eq!(
        json["error"],
        "query processing would load too many samples into memory in query execution"
    );
    // A query within the bound still answers.
    let (status, _, body) = get(
        &node,
        &format!("/api/v1/query?query=up&time={}", seconds(T0)),
    );
    assert_eq!(status, 200, "{body}");
    let (_, flags, _) = get(&node, "/api/v1/status/flags");
    assert_eq!(flags["data"]["query.max-samples"], "10");
    assert_eq!(flags["data"]["query.timeout"], "2m");
    assert_eq!(flags["data"]["query.max-concurrency"], "20");
    assert_eq!(flags["data"]["query.lookback-delta"], "5m");
    drop(node);

    // --query.timeout: a query that cannot finish within it fails with "timeout" (503), and a
    // longer `timeout` parameter does not extend it. The query walks 11,000 steps of an
    // hour-long subquery, far more than a millisecond of work.
    let dir = tempfile::tempdir().unwrap();
    write_fixture(&dir.path().join("data"));
    let node = RunningNode::start(dir.path(), &["--query.timeout", "1ms"]);
    for timeout in ["", "&timeout=1h"] {
        let path = format!(
            "/api/v1/query_range?query={}&start={}&end={}&step=1{timeout}",
            encode("count_over_time(up[1h:1s])"),
            seconds(T0),
            seconds(T0 + 10_999_000)
        );
        let (status, json, body) = get(&node, &path);
        assert_eq!(status, 503, "{path}: {body}");
        assert_eq!(json["errorType"], "timeout", "{path}");
        assert_eq!(
            json["error"], "query timed out in query execution",
            "{path}"
        );
    }
}
