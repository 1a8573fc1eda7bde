//! Deletion end to end, with real parts:
//! - `promtool tsdb dump` (Prometheus 2.42) on a folder where Tocsin deleted samples from a
//!   block (tombstones file) and from the head (Tombstones record in the WAL) omits them;
//! - tombstones a real Prometheus 2.42 wrote through its admin API are applied by Tocsin;
//! - the admin API of a real `tocsin` process: off by default (Prometheus's 503), then
//!   `delete_series`, `snapshot` and `clean_tombstones` with `--web.enable-admin-api`.
//!
//! The Prometheus parts are skipped when its binaries are missing.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

mod common;

use common::{RunningNode, get, request};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use tocsin::tsdb::block::{BlockSeries, NewBlock, chunks_from_samples, write_block};
use tocsin::tsdb::tombstones::Tombstones;
use tocsin::tsdb::{Labels, MatchKind, Matcher, Tsdb, TsdbOptions};

const PROMTOOL: &str = "/usr/bin/promtool";
const PROMETHEUS: &str = "/usr/bin/prometheus";
const MINUTE: i64 = 60_000;
const HOUR: i64 = 60 * MINUTE;

/// A block over [0, 2 h) with `m{k="keep"}` and `m{k="gone"}`, one sample a minute for 100
/// minutes, value = minute.
fn write_test_block(folder: &Path) {
    let samples: Vec<(i64, f64)> = (0..100).map(|i| (i * MINUTE, i as f64)).collect();
    let series = ["keep", "gone"]
        .iter()
        .map(|k| BlockSeries {
            labels: Labels::new([("__name__", "m"), ("k", k)]),
            chunks: chunks_from_samples(&samples),
        })
        .collect();
    write_block(
        folder,
        NewBlock {
            series,
            min_time: 0,
            max_time: 2 * HOUR,
            created_unix_millis: 1_600_000_000_000,
        },
    )
    .unwrap();
}

/// `promtool tsdb dump` as series text → timestamps.
fn promtool_dump(folder: &Path) -> BTreeMap<String, BTreeSet<i64>> {
    let output = Command::new(PROMTOOL)
        .args(["tsdb", "dump"])
        .arg(folder)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "promtool failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let mut out: BTreeMap<String, BTreeSet<i64>> = BTreeMap::new();
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let Some((series, rest)) = line.rsplit_once("} ") else {
            continue;
        };
        let mut fields = rest.split(' ');
        let _value = fields.next();
        let t: i64 = fields.next().unwrap().parse().unwrap();
        out.entry(format!("{series}}}")).or_default().insert(t);
    }
    out
}

#[test]
fn promtool_dump_omits_samples_tocsin_deleted() {
    if !Path::new(PROMTOOL).exists() {
        eprintln!("SKIPPED: {PROMTOOL} is missing (install the Debian package `prometheus`)");
        return;
    }
    let folder = tempfile::tempdir().unwrap();
    write_test_block(folder.path());
    let tsdb = Tsdb::open(folder.path(), TsdbOptions::default()).unwrap();
    let keep = Labels::new([("__name__", "m"), ("k", "keep")]);
    let mut appender = tsdb.appender();
    for i in 0..10 {
        appender.append(&keep, 2 * HOUR + i * MINUTE, 1.0).unwrap();
    }
    appender.commit().unwrap();
    let gone = [Matcher::new(MatchKind::Equal, "k", "gone").unwrap()];
    let keep_matcher = [Matcher::new(MatchKind::Equal, "k", "keep").unwrap()];
    tsdb.delete(&gone, i64::MIN, i64::MAX).unwrap();
    // Minutes 10..=19 from the block, 122..=123 from the head.
    tsdb.delete(&keep_matcher, 10 * MINUTE, 19 * MINUTE)
        .unwrap();
    tsdb.delete(&keep_matcher, 122 * MINUTE, 123 * MINUTE)
        .unwrap();
    drop(tsdb);

    let dump = promtool_dump(folder.path());
    println!("{:?}", dump.keys().collect::<Vec<_>>());
    assert!(
        !dump.keys().any(|s| s.contains("gone")),
        "deleted series dumped: {dump:?}"
    );
    let kept = &dump["{__name__=\"m\", k=\"keep\"}"];
    let expected: BTreeSet<i64> = (0..130)
        .filter(|m| *m < 100 || *m >= 120)
        .filter(|m| !(10..=19).contains(m) && !(122..=123).contains(m))
        .map(|m| m * MINUTE)
        .collect();
    assert_eq!(kept, &expected);
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn tocsin_applies_tombstones_prometheus_wrote() {
    if !Path::new(PROMETHEUS).exists() {
        eprintln!("SKIPPED: {PROMETHEUS} is missing (install the Debian package `prometheus`)");
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    write_test_block(&data);
    let config = work.path().join("prometheus.yml");
    std::fs::write(&config, "global:\n  scrape_interval: 1m\n").unwrap();
    let port = free_port();
    let mut child = Command::new(PROMETHEUS)
        .arg(format!("--storage.tsdb.path={}", data.display()))
        .arg(format!("--config.file={}", config.display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--web.enable-admin-api")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let started = Instant::now();
    loop {
        let ready = std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
            && get(&format!("{base}/-/ready")).0 == 200;
        if ready {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "Prometheus did not get ready"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // match[]={k="gone"}, then k="keep" between 600 s and 1140 s (minutes 10..=19).
    let (status, body) = request(
        "POST",
        &format!("{base}/api/v1/admin/tsdb/delete_series?match%5B%5D=%7Bk%3D%22gone%22%7D"),
    );
    assert_eq!(status, 204, "{body}");
    let (status, body) = request(
        "POST",
        &format!(
            "{base}/api/v1/admin/tsdb/delete_series?match%5B%5D=%7Bk%3D%22keep%22%7D&start=600&end=1140"
        ),
    );
    assert_eq!(status, 204, "{body}");
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    child.wait().unwrap();

    let block = std::fs::read_dir(&data)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.join("meta.json").exists())
        .unwrap();
    let stones = Tombstones::read_file(&block).unwrap();
    assert_eq!(stones.total(), 2, "{stones:?}");
    let tsdb = Tsdb::open(&data, TsdbOptions::default()).unwrap();
    let selected: Vec<(Labels, Vec<i64>)> = tsdb
        .querier(i64::MIN, i64::MAX)
        .select(&[Matcher::new(MatchKind::Equal, "__name__", "m").unwrap()])
        .unwrap()
        .map(|s| (s.labels.clone(), s.samples().map(|(t, _)| t).collect()))
        .filter(|(_, samples): &(Labels, Vec<i64>)| !samples.is_empty())
        .collect();
    assert_eq!(selected.len(), 1, "{selected:?}");
    let expected: Vec<i64> = (0..100)
        .filter(|m| !(10..=19).contains(m))
        .map(|m| m * MINUTE)
        .collect();
    assert_eq!(selected[0].1, expected);
}

fn keep_count(node: &RunningNode) -> String {
    // count_over_time(m{k="keep"}[3h]) at 7199 s: every sample of the block.
    let (status, body) = get(&node
        .url("/api/v1/query?query=count_over_time%28m%7Bk%3D%22keep%22%7D%5B3h%5D%29&time=7199"));
    assert_eq!(status, 200, "{body}");
    body
}

#[test]
fn admin_api_on_a_real_node() {
    let work = tempfile::tempdir().unwrap();
    let tsdb_folder = work.path().join("data").join("tsdb");
    std::fs::create_dir_all(&tsdb_folder).unwrap();
    write_test_block(&tsdb_folder);

    // Off by default, as in Prometheus: 503 `unavailable`.
    let node = RunningNode::start(work.path(), &[]);
    for endpoint in [
        "delete_series?match%5B%5D=m",
        "clean_tombstones",
        "snapshot",
    ] {
        let (status, body) = request("POST", &node.url(&format!("/api/v1/admin/tsdb/{endpoint}")));
        assert_eq!(status, 503, "{endpoint}: {body}");
        assert_eq!(
            body,
            r#"{"status":"error","errorType":"unavailable","error":"admin APIs disabled"}"#
        );
    }
    drop(node);

    let node = RunningNode::start(work.path(), &["--web.enable-admin-api"]);
    assert!(keep_count(&node).contains("\"100\""));
    let (status, body) = request("POST", &node.url("/api/v1/admin/tsdb/delete_series"));
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("no match[] parameter provided"), "{body}");
    let (status, body) = request(
        "PUT",
        &node.url(
            "/api/v1/admin/tsdb/delete_series?match%5B%5D=%7Bk%3D%22keep%22%7D&start=600&end=1140",
        ),
    );
    assert_eq!(status, 204, "{body}");
    assert!(body.is_empty());
    assert!(
        keep_count(&node).contains("\"90\""),
        "{}",
        keep_count(&node)
    );

    let (status, body) = request(
        "POST",
        &node.url("/api/v1/admin/tsdb/snapshot?skip_head=maybe"),
    );
    assert_eq!(status, 400, "{body}");
    let (status, body) = request("POST", &node.url("/api/v1/admin/tsdb/snapshot"));
    assert_eq!(status, 200, "{body}");
    let answer: serde_json::Value = serde_json::from_str(&body).unwrap();
    let name = answer["data"]["name"].as_str().unwrap().to_string();
    assert_eq!(
        name.len(),
        "20210322T164646Z-7d0b9ca8be8e9981".len(),
        "{name}"
    );
    let snapshot = tsdb_folder.join("snapshots").join(&name);
    assert!(snapshot.is_dir());

    let (status, body) = request("POST", &node.url("/api/v1/admin/tsdb/clean_tombstones"));
    assert_eq!(status, 204, "{body}");
    assert!(keep_count(&node).contains("\"90\""));
    drop(node);

    // The snapshot is a data folder of its own with the deletion in it.
    let copy = Tsdb::open(&snapshot, TsdbOptions::default()).unwrap();
    let counted: usize = copy
        .querier(i64::MIN, i64::MAX)
        .select(&[Matcher::new(MatchKind::Equal, "k", "keep").unwrap()])
        .unwrap()
        .map(|s| s.samples().count())
        .sum();
    assert_eq!(counted, 90);
    // clean_tombstones left one block without tombstones.
    let blocks: Vec<_> = std::fs::read_dir(&tsdb_folder)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("meta.json").exists())
        .collect();
    assert_eq!(blocks.len(), 1, "{blocks:?}");
    assert!(Tombstones::read_file(&blocks[0]).unwrap().is_empty());
}
