//! Every example is exercised, so none of them rots: each configuration under `examples/` (and
//! the embedded default) passes `tocsin check config` (or `promtool check config` when it is
//! for Prometheus); `tocsin` with no arguments scrapes itself, loads its built-in rules and logs
//! notifications; the cluster script starts three nodes that find each other and keep notifying
//! exactly once after one is killed; the receivers example delivers by webhook and email; a
//! Prometheus 2.42 running the remote-write example writes into Tocsin, and Tocsin running the
//! other one writes into a Prometheus 2.42.
// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::smtp::{SmtpServer, python};
use common::wait_for;
use common::webhook::HookServer;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const PROMTOOL: &str = "/usr/bin/promtool";
const PROMETHEUS: &str = "/usr/bin/prometheus";

/// Configurations under `examples/` written for Prometheus itself, not for Tocsin.
const PROMETHEUS_CONFIGS: [&str; 2] = [
    "prometheus-remote-write/prometheus.yml",
    "tocsin-remote-write-to-prometheus/prometheus.yml",
];

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn examples() -> PathBuf {
    repo().join("examples")
}

/// The Tocsin configurations of every example folder: `tocsin.yml`, `node-*.yml`, and
/// `prometheus.yml` (an unchanged Prometheus file is a Tocsin configuration) unless it is one
/// of [`PROMETHEUS_CONFIGS`].
fn example_configs() -> Vec<PathBuf> {
    let mut configs = Vec::new();
    for entry in std::fs::read_dir(examples()).unwrap() {
        let folder = entry.unwrap().path();
        if !folder.is_dir() {
            continue;
        }
        for file in std::fs::read_dir(&folder).unwrap() {
            let path = file.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let relative = path.strip_prefix(examples()).unwrap().to_string_lossy();
            let is_tocsin = name == "tocsin.yml"
                || (name.starts_with("node-") && name.ends_with(".yml"))
                || (name == "prometheus.yml" && !PROMETHEUS_CONFIGS.contains(&&*relative));
            if is_tocsin {
                configs.push(path);
            }
        }
    }
    configs.sort();
    configs
}

fn run_checked(command: &mut Command) -> String {
    let output = command.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "{command:?} failed:\n{text}");
    text
}

#[test]
fn every_example_config_is_valid() {
    let configs = example_configs();
    let names: BTreeSet<String> = configs
        .iter()
        .map(|path| path.strip_prefix(examples()).unwrap().display().to_string())
        .collect();
    for expected in [
        "single-node/tocsin.yml",
        "separate-alertmanager-file/prometheus.yml",
        "cluster/node-a.yml",
        "cluster/node-b.yml",
        "cluster/node-c.yml",
        "receivers/tocsin.yml",
        "tocsin-remote-write-to-prometheus/tocsin.yml",
    ] {
        assert!(
            names.contains(expected),
            "{expected} not found in {names:?}"
        );
    }
    let mut tocsin = Command::new(common::TOCSIN);
    tocsin
        .args(["check", "config"])
        .args(&configs)
        // The embedded default, which its comments invite users to copy, is valid on its own.
        .arg(repo().join("src/config/default.yml"));
    run_checked(&mut tocsin);

    for config in PROMETHEUS_CONFIGS {
        run_checked(
            Command::new(PROMTOOL)
                .args(["check", "config"])
                .arg(examples().join(config)),
        );
    }
    // The built-in rules and the single-node example's, as promtool reads them.
    run_checked(
        Command::new(PROMTOOL)
            .args(["check", "rules"])
            .arg(repo().join("src/config/default_rules.yml"))
            .arg(examples().join("single-node/rules/self.yml")),
    );
}

// ---------------------------------------------------------------------------------------------
// Helpers: HTTP that tolerates a server not up yet, polling, free ports, processes

/// One HTTP/1.1 request; `None` when nothing answers (not listening yet, or gone).
fn try_request(method: &str, url: &str, body: &str) -> Option<(u16, String)> {
    let rest = url.strip_prefix("http://")?;
    let (host, path) = rest
        .split_once('/')
        .map(|(h, p)| (h, format!("/{p}")))
        .unwrap_or((rest, "/".into()));
    let mut stream = TcpStream::connect(host).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .ok()?;
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .ok()?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).ok()?;
    let response = String::from_utf8_lossy(&response).into_owned();
    let (head, body) = response.split_once("\r\n\r\n")?;
    let status = head.split(' ').nth(1)?.parse().ok()?;
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        common::dechunk(body)
    } else {
        body.to_string()
    };
    Some((status, body))
}

/// GET `url` as JSON, `None` unless it answers 200 with JSON.
fn get_json(url: &str) -> Option<Value> {
    let (status, body) = try_request("GET", url, "")?;
    if status != 200 {
        return None;
    }
    serde_json::from_str(&body).ok()
}

fn post_alerts(base: &str, alerts: &Value) {
    let (status, body) = try_request(
        "POST",
        &format!("{base}/api/v2/alerts"),
        &alerts.to_string(),
    )
    .unwrap_or_else(|| panic!("{base} does not answer"));
    assert_eq!(status, 200, "POST {base}/api/v2/alerts: {body}");
}

fn encode(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

/// The values of an instant query's result, by the series' labels as JSON.
fn instant_query(base: &str, expr: &str) -> Vec<(Value, String)> {
    let Some(answer) = get_json(&format!("{base}/api/v1/query?query={}", encode(expr))) else {
        return Vec::new();
    };
    answer["data"]["result"]
        .as_array()
        .map(|result| {
            result
                .iter()
                .map(|series| {
                    (
                        series["metric"].clone(),
                        series["value"][1].as_str().unwrap_or_default().to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Ports nothing listens on now, each handed out once in this process (tests run in parallel
/// threads, and the OS may hand a just-released port out again).
fn free_port(udp: bool) -> u16 {
    static HANDED_OUT: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());
    loop {
        let port = if udp {
            UdpSocket::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port()
        } else {
            TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port()
        };
        if HANDED_OUT.lock().unwrap().insert(port) {
            return port;
        }
    }
}

/// A child process whose output lines are collected; killed when dropped.
struct Process {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Process {
    /// Starts `command` with its standard output and error both collected line by line.
    fn start(command: &mut Command) -> Process {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|error| panic!("cannot start {command:?}: {error}"));
        let lines = Arc::new(Mutex::new(Vec::new()));
        let stdout = child.stdout.take().unwrap();
        let stderr = child.stderr.take().unwrap();
        for stream in [
            Box::new(stdout) as Box<dyn Read + Send>,
            Box::new(stderr) as Box<dyn Read + Send>,
        ] {
            let lines = Arc::clone(&lines);
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    lines.lock().unwrap().push(line);
                }
            });
        }
        Process { child, lines }
    }

    fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    fn output(&self) -> String {
        self.lines().join("\n")
    }

    fn has_line(&self, predicate: impl Fn(&str) -> bool) -> bool {
        self.lines().iter().any(|line| predicate(line))
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Copies the files of `examples/<folder>` into `to`, replacing each `(from, to)` text.
fn copy_example(folder: &str, to: &Path, replacements: &[(String, String)]) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(examples().join(folder)).unwrap() {
        let path = entry.unwrap().path();
        if !path.is_file() {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(
            to.join(path.file_name().unwrap()),
            replace_all(&text, replacements),
        )
        .unwrap();
    }
}

/// Every `(from, to)` replaced in one pass over `text`: replacing one pair after the other would
/// rewrite inside an earlier replacement (a free port `43489` holds the example's `4348…`).
fn replace_all(text: &str, replacements: &[(String, String)]) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(first) = rest.chars().next() {
        match replacements
            .iter()
            .find(|(from, _)| !from.is_empty() && rest.starts_with(from.as_str()))
        {
            Some((from, replacement)) => {
                out.push_str(replacement);
                rest = &rest[from.len()..];
            }
            None => {
                out.push(first);
                rest = &rest[first.len_utf8()..];
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// The embedded default

/// `tocsin` with no arguments at all, in an empty working folder. It listens on the default
/// port 9090, which must therefore be free while this test runs.
#[test]
fn tocsin_with_no_arguments_monitors_itself_and_logs_notifications() {
    let dir = tempfile::tempdir().unwrap();
    // A clear failure rather than a confusing one when something else holds the default port.
    drop(TcpListener::bind("0.0.0.0:9090").unwrap_or_else(|error| {
        panic!("this test runs tocsin on its default port 9090, which is busy: {error}")
    }));
    let node = Process::start(Command::new(common::TOCSIN).current_dir(dir.path()));
    let base = "http://127.0.0.1:9090";

    let started = wait_for(Duration::from_secs(30), || {
        node.has_line(|line| line.contains("Tocsin is up: UI and API at http://localhost:9090/"))
    });
    assert!(started, "no start-up line:\n{}", node.output());
    assert!(
        dir.path().join("data/tsdb").is_dir(),
        "no ./data/tsdb in the working folder:\n{}",
        node.output()
    );

    // It scrapes itself (the first scrape comes within one 15 s interval).
    let scraped = wait_for(Duration::from_secs(60), || {
        instant_query(base, "up{job=\"tocsin\"}")
            .iter()
            .any(|(labels, value)| labels["instance"] == "localhost:9090" && value == "1")
    });
    assert!(scraped, "up{{job=\"tocsin\"}} never 1:\n{}", node.output());

    // The built-in rules are loaded.
    let rules = get_json(&format!("{base}/api/v1/rules")).expect("/api/v1/rules");
    let groups = rules["data"]["groups"].as_array().unwrap();
    let group = groups
        .iter()
        .find(|group| group["name"] == "tocsin-self-monitoring")
        .unwrap_or_else(|| panic!("no built-in rule group in {rules:#}"));
    assert_eq!(group["file"], "<embedded default>/default_rules.yml");
    let names: BTreeSet<&str> = group["rules"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|rule| rule["name"].as_str())
        .collect();
    for expected in [
        "TocsinStorageFallingBehind",
        "TocsinNotificationsFailing",
        "TocsinClusterPeerMissing",
        "TocsinConfigReloadFailed",
    ] {
        assert!(names.contains(expected), "{expected} not in {names:?}");
    }

    // The Alertmanager part stays one amtool reads (the log receiver is declared outside it).
    let routes = run_checked(Command::new("/usr/bin/amtool").args([
        "config",
        "routes",
        "--alertmanager.url",
        base,
    ]));
    assert!(routes.contains("default"), "{routes}");

    // An alert reaches the log receiver, one readable line for the notification.
    post_alerts(
        base,
        &json!([{
            "labels": {"alertname": "NewcomerTest", "severity": "info", "instance": "here"},
            "annotations": {"summary": "the log receiver works"},
            "startsAt": jiff::Timestamp::now().to_string(),
        }]),
    );
    let is_notification =
        |line: &str| line.contains("msg=notification") && line.contains("alertname=NewcomerTest");
    let logged = wait_for(Duration::from_secs(60), || node.has_line(is_notification));
    assert!(logged, "no notification line:\n{}", node.output());
    let lines = node.lines();
    let line = lines.iter().find(|line| is_notification(line)).unwrap();
    for part in [
        "receiver=default",
        "status=firing",
        "alerts=1",
        "instance=\\\"here\\\"",
        "severity=\\\"info\\\"",
        "summary=\"the log receiver works\"",
    ] {
        assert!(line.contains(part), "{part} not in {line}");
    }
}

// ---------------------------------------------------------------------------------------------
// The cluster

/// Kills (SIGKILL) the process whose id `pid_file` holds.
fn kill_from_pid_file(pid_file: &Path) {
    if let Ok(pid) = std::fs::read_to_string(pid_file) {
        let _ = Command::new("kill")
            .args(["-KILL", pid.trim()])
            .stderr(Stdio::null())
            .status();
    }
}

/// Kills the nodes `start.sh` started when the test ends, whatever happened.
struct ClusterRun {
    work: PathBuf,
}

impl Drop for ClusterRun {
    fn drop(&mut self) {
        for name in ["a", "b", "c"] {
            kill_from_pid_file(&self.work.join(format!("{name}.pid")));
        }
    }
}

impl ClusterRun {
    fn logs(&self) -> String {
        ["a", "b", "c"]
            .iter()
            .map(|name| {
                let log = std::fs::read_to_string(self.work.join(format!("{name}.log")))
                    .unwrap_or_default();
                format!("--- log of {name}:\n{log}\n")
            })
            .collect()
    }
}

fn peer_names(status: &Value) -> BTreeSet<String> {
    status["cluster"]["peers"]
        .as_array()
        .map(|peers| {
            peers
                .iter()
                .filter_map(|peer| peer["name"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// The walkthrough of `examples/cluster/README.md`: start.sh, three nodes that see each other,
/// one killed, an alert posted to the survivors, one notification.
#[test]
fn the_cluster_script_starts_three_nodes_that_notify_once_after_one_is_killed() {
    let dir = tempfile::tempdir().unwrap();
    let http: Vec<u16> = (0..3).map(|_| free_port(false)).collect();
    let mesh: Vec<u16> = (0..3).map(|_| free_port(true)).collect();
    let hook = HookServer::on_port(free_port(false));
    let mut replacements = Vec::new();
    for (index, example_port) in ["9091", "9092", "9093"].iter().enumerate() {
        replacements.push((example_port.to_string(), http[index].to_string()));
    }
    for (index, example_port) in ["7946", "7947", "7948"].iter().enumerate() {
        replacements.push((example_port.to_string(), mesh[index].to_string()));
    }
    replacements.push(("5001".to_string(), hook.port.to_string()));
    let scripts = dir.path().join("cluster");
    copy_example("cluster", &scripts, &replacements);

    let work = dir.path().join("run");
    let run = ClusterRun { work: work.clone() };
    let started = run_checked(
        Command::new("sh")
            .arg(scripts.join("start.sh"))
            .arg(&work)
            .env("TOCSIN", common::TOCSIN),
    );
    for name in ["a", "b", "c"] {
        assert!(started.contains(&format!("node {name}: pid ")), "{started}");
    }

    let base = |index: usize| format!("http://127.0.0.1:{}", http[index]);
    let all: BTreeSet<String> = ["a", "b", "c"].iter().map(|n| n.to_string()).collect();
    for index in 0..3 {
        let meshed = wait_for(Duration::from_secs(60), || {
            get_json(&format!("{}/api/v2/status", base(index))).is_some_and(|status| {
                status["cluster"]["status"] == "ready" && peer_names(&status) == all
            })
        });
        assert!(
            meshed,
            "node {index} did not see all three:\n{}",
            run.logs()
        );
    }

    // The walkthrough's `kill -9 $(cat cluster-run/b.pid)`.
    kill_from_pid_file(&work.join("b.pid"));
    let gone = wait_for(Duration::from_secs(10), || {
        TcpStream::connect(("127.0.0.1", http[1])).is_err()
    });
    assert!(gone, "node b still answers after SIGKILL");

    // Prometheus sends every alert to every Alertmanager: here, both survivors.
    let alert = json!([{
        "labels": {"alertname": "ExampleFailover", "severity": "page"},
        "annotations": {"summary": "b is gone, the alert still arrives once"},
        "startsAt": jiff::Timestamp::now().to_string(),
    }]);
    post_alerts(&base(0), &alert);
    post_alerts(&base(2), &alert);
    let delivered = wait_for(Duration::from_secs(90), || !hook.delivered().is_empty());
    assert!(delivered, "no notification arrived:\n{}", run.logs());
    // Long enough for a second sender to show up if dedup failed: past the other survivor's
    // turn (its rank times the 5 s peer timeout) and the 10 s group wait, with margin.
    std::thread::sleep(Duration::from_secs(20));
    let received = hook.delivered();
    assert_eq!(
        received.len(),
        1,
        "exactly one notification: {received:#?}\n{}",
        run.logs()
    );
    assert_eq!(
        received[0]["groupKey"],
        "{}:{alertname=\"ExampleFailover\"}"
    );
    let sender = received[0]["externalURL"].as_str().unwrap_or_default();
    assert!(
        !sender.contains(&format!(":{}/", http[1])),
        "the killed node sent it: {sender}"
    );

    // stop.sh stops the survivors.
    run_checked(Command::new("sh").arg(scripts.join("stop.sh")).arg(&work));
    for index in [0, 2] {
        let stopped = wait_for(Duration::from_secs(15), || {
            TcpStream::connect(("127.0.0.1", http[index])).is_err()
        });
        assert!(stopped, "node {index} still runs after stop.sh");
    }
}

// ---------------------------------------------------------------------------------------------
// Receivers

/// `examples/receivers/`: its webhook.py prints both alerts, the paging one also arrives by
/// email, the other does not.
#[test]
fn the_receivers_example_delivers_by_webhook_and_email() {
    let dir = tempfile::tempdir().unwrap();
    let smtp = SmtpServer::start(dir.path());
    let hook_port = free_port(false);
    let webhook = Process::start(
        Command::new(python())
            .arg(examples().join("receivers/webhook.py"))
            .arg("--listen")
            .arg(format!("127.0.0.1:{hook_port}")),
    );
    assert!(
        wait_for(Duration::from_secs(20), || webhook
            .has_line(|line| line.starts_with("listening on"))),
        "webhook.py did not start:\n{}",
        webhook.output()
    );
    let config_dir = dir.path().join("receivers");
    copy_example(
        "receivers",
        &config_dir,
        &[
            ("127.0.0.1:5001".into(), format!("127.0.0.1:{hook_port}")),
            ("127.0.0.1:2525".into(), format!("127.0.0.1:{}", smtp.port)),
        ],
    );
    let config = config_dir.join("tocsin.yml");
    let node = common::RunningNode::start(dir.path(), &["--config.file", config.to_str().unwrap()]);

    let now = jiff::Timestamp::now().to_string();
    post_alerts(
        &node.url(""),
        &json!([
            {"labels": {"alertname": "DiskFull", "severity": "page", "instance": "db-1"},
             "annotations": {"summary": "disk of db-1 is full"}, "startsAt": now},
            {"labels": {"alertname": "CertExpiring", "severity": "ticket"},
             "annotations": {"summary": "a certificate expires in 20 days"}, "startsAt": now},
        ]),
    );
    let delivered = wait_for(Duration::from_secs(60), || {
        !smtp.messages().is_empty()
            && webhook.has_line(|line| line.contains("firing DiskFull"))
            && webhook.has_line(|line| line.contains("firing CertExpiring"))
    });
    assert!(
        delivered,
        "webhook.py printed:\n{}\nemails: {:#?}\n--- tocsin:\n{}",
        webhook.output(),
        smtp.messages(),
        node.log()
    );
    let line = webhook
        .lines()
        .into_iter()
        .find(|line| line.contains("firing DiskFull"))
        .unwrap();
    assert!(
        line.contains("instance='db-1'") && line.contains("disk of db-1 is full"),
        "{line}"
    );
    // Both groups have been notified, so a second email would have been sent by now.
    let emails = smtp.messages();
    assert_eq!(emails.len(), 1, "{emails:#?}");
    assert_eq!(emails[0]["rcpt_tos"], json!(["on-call@example.org"]));
    let data = emails[0]["data"].as_str().unwrap_or_default();
    assert!(data.contains("DiskFull"), "{data}");
    assert!(!data.contains("CertExpiring"), "{data}");
}

// ---------------------------------------------------------------------------------------------
// Prometheus remote writing into Tocsin

/// `examples/prometheus-remote-write/prometheus.yml`, run by a real Prometheus 2.42 against a
/// Tocsin with its embedded default: the series Prometheus scrapes show up in Tocsin.
#[test]
fn prometheus_runs_the_remote_write_example_into_tocsin() {
    assert!(
        Path::new(PROMETHEUS).is_file(),
        "{PROMETHEUS} is missing: apt-get install prometheus (2.42)"
    );
    let dir = tempfile::tempdir().unwrap();
    let tocsin = common::RunningNode::start(dir.path(), &[]);
    let prometheus_port = free_port(false);
    let config_dir = dir.path().join("prometheus-remote-write");
    copy_example(
        "prometheus-remote-write",
        &config_dir,
        &[
            ("127.0.0.1:9090".into(), tocsin.address.clone()),
            (
                "127.0.0.1:9091".into(),
                format!("127.0.0.1:{prometheus_port}"),
            ),
        ],
    );
    let prometheus = Process::start(
        Command::new(PROMETHEUS)
            .arg(format!(
                "--config.file={}",
                config_dir.join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("prometheus-data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{prometheus_port}")),
    );
    let arrived = wait_for(Duration::from_secs(120), || {
        instant_query(
            &tocsin.url(""),
            "up{job=\"prometheus\", sender=\"prometheus\"}",
        )
        .iter()
        .any(|(labels, value)| {
            labels["instance"] == format!("127.0.0.1:{prometheus_port}") && value == "1"
        })
    });
    assert!(
        arrived,
        "Prometheus's samples did not reach Tocsin\n--- prometheus:\n{}\n--- tocsin:\n{}",
        prometheus.output(),
        tocsin.log()
    );
    // More than `up`: everything Prometheus scraped from itself comes along.
    let count = || -> f64 {
        instant_query(
            &tocsin.url(""),
            "count({job=\"prometheus\", sender=\"prometheus\"})",
        )
        .first()
        .and_then(|(_, value)| value.parse().ok())
        .unwrap_or(0.0)
    };
    let many = wait_for(Duration::from_secs(60), || count() > 100.0);
    assert!(many, "only {} series arrived", count());
}

// ---------------------------------------------------------------------------------------------
// Tocsin remote writing into a Prometheus

/// `examples/tocsin-remote-write-to-prometheus/`: a Prometheus 2.42 with its remote-write
/// receiver on, and Tocsin scraping itself and writing into it; Prometheus answers a query with
/// Tocsin's series.
#[test]
fn tocsin_runs_the_remote_write_example_into_prometheus() {
    assert!(
        Path::new(PROMETHEUS).is_file(),
        "{PROMETHEUS} is missing: apt-get install prometheus (2.42)"
    );
    let dir = tempfile::tempdir().unwrap();
    let tocsin_port = free_port(false);
    let prometheus_port = free_port(false);
    let config_dir = dir.path().join("tocsin-remote-write-to-prometheus");
    copy_example(
        "tocsin-remote-write-to-prometheus",
        &config_dir,
        &[
            ("127.0.0.1:9090".into(), format!("127.0.0.1:{tocsin_port}")),
            (
                "127.0.0.1:9091".into(),
                format!("127.0.0.1:{prometheus_port}"),
            ),
            // Scrape every second, so the first samples come sooner.
            ("scrape_interval: 15s".into(), "scrape_interval: 1s".into()),
        ],
    );
    let prometheus_base = format!("http://127.0.0.1:{prometheus_port}");
    let prometheus = Process::start(
        Command::new(PROMETHEUS)
            .arg(format!(
                "--config.file={}",
                config_dir.join("prometheus.yml").display()
            ))
            .arg("--web.enable-remote-write-receiver")
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("prometheus-data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{prometheus_port}")),
    );
    let ready = wait_for(Duration::from_secs(60), || {
        try_request("GET", &format!("{prometheus_base}/-/ready"), "")
            .is_some_and(|(status, _)| status == 200)
    });
    assert!(ready, "Prometheus is not ready:\n{}", prometheus.output());
    let tocsin = Process::start(
        Command::new(common::TOCSIN)
            .arg("--config.file")
            .arg(config_dir.join("tocsin.yml"))
            .arg("--web.listen-address")
            .arg(format!("127.0.0.1:{tocsin_port}"))
            .arg("--storage.path")
            .arg(dir.path().join("tocsin-data")),
    );
    let arrived = wait_for(Duration::from_secs(120), || {
        instant_query(&prometheus_base, "up{job=\"tocsin\", sender=\"tocsin\"}")
            .iter()
            .any(|(labels, value)| {
                labels["instance"] == format!("127.0.0.1:{tocsin_port}") && value == "1"
            })
    });
    assert!(
        arrived,
        "Tocsin's samples did not reach Prometheus\n--- tocsin:\n{}\n--- prometheus:\n{}",
        tocsin.output(),
        prometheus.output()
    );
    // More than `up`: Tocsin's own metrics, scraped from itself, come along.
    let series = || -> f64 {
        instant_query(
            &prometheus_base,
            "count({job=\"tocsin\", sender=\"tocsin\", __name__=~\"tocsin_.+\"})",
        )
        .first()
        .and_then(|(_, value)| value.parse().ok())
        .unwrap_or(0.0)
    };
    let many = wait_for(Duration::from_secs(60), || series() > 20.0);
    assert!(many, "only {} tocsin_* series arrived", series());
    // Prometheus keeps none of its own: it scrapes nothing, everything came from Tocsin.
    let foreign = instant_query(
        &prometheus_base,
        "count({__name__=~\".+\"}) - count({sender=\"tocsin\"})",
    );
    assert_eq!(foreign.len(), 1, "{foreign:?}");
    assert_eq!(foreign[0].1, "0", "{foreign:?}");
}
