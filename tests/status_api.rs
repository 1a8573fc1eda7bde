//! `/api/v1/status/runtimeinfo`, `/api/v1/status/tsdb` and `/api/v1/status/walreplay` over
//! HTTP, side by side with a real Prometheus 2.42: both scrape the same target once a second,
//! and their answers must have the same fields, types and (where they describe the same data)
//! values. Needs `/usr/bin/prometheus` (Debian's `prometheus` package, 2.42).
// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

mod common;

use common::{RunningNode, get, post};
use serde_json::Value;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const PROMETHEUS: &str = "/usr/bin/prometheus";

/// What the target serves: with the five series every scrape adds (`up`, `scrape_*`), the head
/// has 7 series and 10 label pairs, so every list of `/api/v1/status/tsdb` fits in its 10
/// entries and ties at the cut-off (which Prometheus breaks at random) cannot differ.
const EXPOSITION: &str = "# TYPE demo_requests_total counter
demo_requests_total{code=\"200\"} 10
demo_requests_total{code=\"500\"} 2
";

/// A scrape target on a free port serving [`EXPOSITION`] to every request.
fn start_target() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().map_while(Result::ok) {
            std::thread::spawn(move || serve(stream));
        }
    });
    port
}

fn serve(stream: TcpStream) {
    let mut reader = BufReader::new(stream);
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line.trim().is_empty() {
            break;
        }
    }
    let mut stream = reader.into_inner();
    let _ = write!(
        stream,
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{EXPOSITION}",
        EXPOSITION.len()
    );
}

fn scrape_config(target_port: u16) -> String {
    format!(
        "global:
  scrape_interval: 1s
scrape_configs:
  - job_name: demo
    static_configs:
      - targets: ['127.0.0.1:{target_port}']
"
    )
}

/// A Prometheus 2.42 process; killed when dropped.
struct Prometheus {
    child: Child,
    base: String,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_prometheus(dir: &Path, config: &Path) -> Prometheus {
    assert!(
        Path::new(PROMETHEUS).is_file(),
        "{PROMETHEUS} is missing: apt-get install prometheus (2.42)"
    );
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(PROMETHEUS)
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("prometheus-data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let prometheus = Prometheus {
        child,
        base: format!("http://127.0.0.1:{port}"),
    };
    let ready = eventually(|| {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
            && get(&format!("{}/-/ready", prometheus.base)).0 == 200
    });
    assert!(ready, "Prometheus did not become ready");
    prometheus
}

/// Polls `done` for up to 60 s.
fn eventually(mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

/// The `data` of a successful `/api/v1` answer.
fn data(url: &str) -> Value {
    let (status, body) = get(url);
    assert_eq!(status, 200, "GET {url}: {body}");
    let answer: Value =
        serde_json::from_str(&body).unwrap_or_else(|error| panic!("{url}: {error}: {body}"));
    assert_eq!(answer["status"], "success", "{url}: {body}");
    answer["data"].clone()
}

/// Whether `base` has scraped the target (its `up` is 1).
fn scraped(base: &str) -> bool {
    let (status, body) = get(&format!("{base}/api/v1/query?query=up"));
    status == 200 && body.contains("\"job\":\"demo\"") && body.contains("\"1\"]")
}

/// A list of `{name, value}` sorted by value (descending) then name: Prometheus orders ties
/// at random, Tocsin by name.
fn ranked(list: &Value) -> Vec<(String, u64)> {
    let mut entries: Vec<(String, u64)> = list
        .as_array()
        .unwrap_or_else(|| panic!("not a list: {list}"))
        .iter()
        .map(|entry| {
            (
                entry["name"].as_str().unwrap().to_string(),
                entry["value"].as_u64().unwrap(),
            )
        })
        .collect();
    entries.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    entries
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(number) if number.is_i64() || number.is_u64() => "integer",
        Value::Number(_) => "float",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

#[test]
fn status_endpoints_answer_as_prometheus_does() {
    let dir = tempfile::tempdir().unwrap();
    let target = start_target();
    let config = dir.path().join("scrape.yml");
    std::fs::write(&config, scrape_config(target)).unwrap();
    let prometheus = start_prometheus(dir.path(), &config);
    let node = RunningNode::start(dir.path(), &["--config.file", config.to_str().unwrap()]);
    assert!(
        eventually(|| scraped(&node.url("")) && scraped(&prometheus.base)),
        "the target was not scraped by both:\n{}",
        node.log()
    );

    // --- /api/v1/status/tsdb: the same head, the same numbers.
    let ours = data(&node.url("/api/v1/status/tsdb"));
    let theirs = data(&format!("{}/api/v1/status/tsdb", prometheus.base));
    let (our_head, their_head) = (&ours["headStats"], &theirs["headStats"]);
    for field in ["numSeries", "numLabelPairs", "chunkCount"] {
        assert_eq!(
            our_head[field], their_head[field],
            "headStats.{field}: ours {ours}, Prometheus {theirs}"
        );
    }
    assert_eq!(our_head["numSeries"], 7, "{ours}");
    assert_eq!(our_head["numLabelPairs"], 10, "{ours}");
    let now_ms = jiff::Timestamp::now().as_millisecond();
    let (min_time, max_time) = (
        our_head["minTime"].as_i64().unwrap(),
        our_head["maxTime"].as_i64().unwrap(),
    );
    assert!(
        min_time <= max_time && max_time <= now_ms && now_ms - min_time < 300_000,
        "head times {min_time}..{max_time} against now {now_ms}"
    );
    for list in [
        "seriesCountByMetricName",
        "labelValueCountByLabelName",
        "memoryInBytesByLabelName",
        "seriesCountByLabelValuePair",
    ] {
        assert_eq!(
            ranked(&ours[list]),
            ranked(&theirs[list]),
            "{list}: ours {}, Prometheus {}",
            ours[list],
            theirs[list]
        );
    }
    // Tocsin's own order: largest first, ties by name.
    let names: Vec<(String, u64)> = ranked(&ours["seriesCountByMetricName"]);
    assert_eq!(names[0], ("demo_requests_total".to_string(), 2));
    let listed: Vec<&str> = ours["seriesCountByMetricName"]
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| entry["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        listed,
        names
            .iter()
            .map(|(name, _)| name.as_str())
            .collect::<Vec<_>>()
    );

    // --- /api/v1/status/runtimeinfo: Prometheus 2.42's fields with their types, plus
    // GOMEMLIMIT (which later Prometheus versions report).
    let ours = data(&node.url("/api/v1/status/runtimeinfo"));
    let theirs = data(&format!("{}/api/v1/status/runtimeinfo", prometheus.base));
    let their_fields = theirs.as_object().unwrap();
    let our_fields = ours.as_object().unwrap();
    for (field, value) in their_fields {
        let ours_value = our_fields
            .get(field)
            .unwrap_or_else(|| panic!("runtimeinfo lacks {field}: {ours}"));
        assert_eq!(
            json_type(ours_value),
            json_type(value),
            "runtimeinfo.{field}: ours {ours_value}, Prometheus {value}"
        );
    }
    let mut extra: Vec<&String> = our_fields
        .keys()
        .filter(|field| !their_fields.contains_key(*field))
        .collect();
    extra.sort();
    assert_eq!(extra, ["GOMEMLIMIT"], "{ours}");
    assert_eq!(ours["GOMEMLIMIT"], i64::MAX);
    assert_eq!(ours["reloadConfigSuccess"], true);
    assert_eq!(ours["storageRetention"], theirs["storageRetention"]);
    assert_eq!(ours["storageRetention"], "15d");
    assert_eq!(ours["corruptionCount"], 0);
    assert_eq!(
        ours["CWD"],
        std::env::current_dir().unwrap().display().to_string()
    );
    assert!(ours["GOMAXPROCS"].as_u64().unwrap() >= 1, "{ours}");
    assert!(ours["goroutineCount"].as_u64().unwrap() >= 1, "{ours}");
    let started: jiff::Timestamp = ours["startTime"].as_str().unwrap().parse().unwrap();
    let last_config: jiff::Timestamp = ours["lastConfigTime"].as_str().unwrap().parse().unwrap();
    assert!(started <= jiff::Timestamp::now());
    // Whole seconds, as Prometheus writes it.
    assert_eq!(last_config.subsec_nanosecond(), 0, "{ours}");
    assert!(
        (last_config.as_second() - started.as_second()).abs() <= 1,
        "the first configuration is loaded at start: {ours}"
    );

    // A failed reload shows, and the last good load time stays.
    std::fs::write(&config, "scrape_configs: [{job_name: 1\n").unwrap();
    let (status, body) = post(&node.url("/-/reload"));
    assert_eq!(status, 500, "{body}");
    let after = data(&node.url("/api/v1/status/runtimeinfo"));
    assert_eq!(after["reloadConfigSuccess"], false, "{after}");
    assert_eq!(after["lastConfigTime"], ours["lastConfigTime"]);

    // --- /api/v1/status/walreplay: a fresh WAL is segment 0 for both.
    let ours = data(&node.url("/api/v1/status/walreplay"));
    let theirs = data(&format!("{}/api/v1/status/walreplay", prometheus.base));
    assert_eq!(ours, theirs);
    assert_eq!(ours, serde_json::json!({"min": 0, "max": 0, "current": 0}));
}

/// After a restart the replay covered segment 0 and the writer went on to segment 1, which
/// Prometheus 2.42 reports as `{min: 0, max: 1, current: 1}` (measured against it).
#[test]
fn wal_replay_status_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let target = start_target();
    let config = dir.path().join("scrape.yml");
    std::fs::write(&config, scrape_config(target)).unwrap();
    let args = ["--config.file", config.to_str().unwrap()];
    let node = RunningNode::start(dir.path(), &args);
    assert!(eventually(|| scraped(&node.url(""))), "{}", node.log());
    drop(node);
    let node = RunningNode::start(dir.path(), &args);
    let status = data(&node.url("/api/v1/status/walreplay"));
    assert_eq!(
        status,
        serde_json::json!({"min": 0, "max": 1, "current": 1}),
        "{}",
        node.log()
    );
    // The replayed series are in the head's statistics.
    let tsdb = data(&node.url("/api/v1/status/tsdb"));
    assert_eq!(tsdb["headStats"]["numSeries"], 7, "{tsdb}");
}
