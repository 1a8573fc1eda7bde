//! A Tocsin cluster against an Alertmanager 0.25 cluster, side by side on this machine.
//!
//! Run with `cargo bench --bench mesh` (cargo builds `target/release/tocsin` first, because a
//! bench target gets `CARGO_BIN_EXE_tocsin`). See `benches/README.md` for what each figure
//! means and what the goals are. Nothing here asserts on timings: it prints figures.
//!
//! Every node is a real process on 127.0.0.1 with its own free ports and storage directory.
//! One cluster runs at a time (the systems alternate inside each phase, never run together),
//! and every node is killed when its cluster is dropped, also on panic. The webhook receiver
//! is a small HTTP server inside the bench process that records when each notification
//! arrived and for which group.
#![allow(clippy::unwrap_used, clippy::print_stdout)]

#[path = "common/figures.rs"]
mod figures;
#[path = "common/http.rs"]
mod http;
#[path = "common/process.rs"]
mod process;
use figures::percentile;
use http::{Conn, read_line};
use process::{alertmanager_binary, load_average};
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::io::{BufReader, Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// `--cluster.peer-timeout` of both systems in every phase (the default is 15s).
const PEER_TIMEOUT: Duration = Duration::from_secs(3);
/// Alertmanager's gossip settings, passed explicitly (these are its defaults).
const AM_GOSSIP_INTERVAL: &str = "200ms";
const AM_PUSHPULL_INTERVAL: &str = "1m";
/// Start-up (until every node reports the cluster ready with all members) and request bounds.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// Phase 1: silences created one at a time, how often the other nodes are polled, and how
/// long one silence may take to reach them all (counted as that long if it does not).
const SILENCES: usize = 50;
const POLL_EVERY: Duration = Duration::from_millis(2);
const CONVERGE_TIMEOUT: Duration = Duration::from_secs(5);
const SILENCE_GAP: Duration = Duration::from_millis(20);
const CONVERGE_PHASE_LIMIT: Duration = Duration::from_secs(40);

/// Phase 2: groups (one alert each) and their group_wait.
const DUP_GROUPS: usize = 1000;
const DUP_GROUP_WAIT: Duration = Duration::from_secs(2);
/// Alerts per `POST /api/v2/alerts` request.
const BATCH: usize = 100;
/// Phases 2 and 3 count deliveries until group_wait + 2 × peer_timeout + this.
const DELIVERY_MARGIN: Duration = Duration::from_secs(4);

/// Phase 3: groups and group_wait; a node is killed right after the alerts are posted.
const FAILOVER_GROUPS: usize = 30;
const FAILOVER_GROUP_WAIT: Duration = Duration::from_secs(5);
/// A group delivered later than this after its due time counts as failed over.
const LATE: Duration = Duration::from_secs(1);

/// Phase 4: settle time, then the idle and the busy windows, and the busy load.
const BANDWIDTH_SETTLE: Duration = Duration::from_secs(3);
const BANDWIDTH_WINDOW: Duration = Duration::from_secs(10);
const BUSY_TICK: Duration = Duration::from_millis(100);
/// Alerts per tick (200/s) and a silence every this many ticks (5/s).
const BUSY_ALERTS_PER_TICK: usize = 20;
const BUSY_SILENCE_EVERY: usize = 2;

fn main() {
    // `cargo bench` passes `--bench`; any other launch (`cargo test --all-targets`) only checks
    // that the bench builds, since a run takes minutes and needs a release build.
    if !std::env::args().any(|arg| arg == "--bench") {
        println!("benchmark skipped: run it with `cargo bench`");
        return;
    }
    let only = std::env::var("MESH_BENCH_ONLY").unwrap_or_default();
    let phases = std::env::var("MESH_BENCH_PHASES").unwrap_or_default();
    let wanted = |phase: &str| phases.is_empty() || phases.split(',').any(|p| p.trim() == phase);
    let mut systems = Vec::new();
    if only.is_empty() || only == "tocsin" {
        systems.push(System::new(
            Kind::Tocsin,
            PathBuf::from(env!("CARGO_BIN_EXE_tocsin")),
        ));
    }
    if only.is_empty() || only == "alertmanager" {
        match alertmanager_binary() {
            Some(path) => systems.push(System::new(Kind::Alertmanager, path)),
            None => println!(
                "alertmanager not found (set ALERTMANAGER_BIN or `apt-get install prometheus-alertmanager`); \
                 its column will read n/a"
            ),
        }
    }
    for system in &systems {
        println!("# {}: {}", system.name(), process::version(&system.binary));
    }
    println!(
        "# machine: {} CPUs; peer timeout {PEER_TIMEOUT:?} for both; alertmanager gossip interval \
         {AM_GOSSIP_INTERVAL}, push-pull interval {AM_PUSHPULL_INTERVAL}",
        std::thread::available_parallelism().map_or(0, usize::from)
    );
    println!("# load average before: {}", load_average());
    let started = Instant::now();

    let mut results: Vec<Results> = systems.iter().map(|_| Results::default()).collect();
    // Each phase runs on every system in turn before the next phase starts.
    if wanted("convergence") {
        for size in [3, 7] {
            for (system, results) in systems.iter().zip(&mut results) {
                phase_convergence(system, size, results);
            }
        }
    }
    if wanted("duplicates") {
        for (system, results) in systems.iter().zip(&mut results) {
            phase_duplicates(system, results);
        }
    }
    if wanted("failover") {
        for (system, results) in systems.iter().zip(&mut results) {
            phase_failover(system, results);
        }
    }
    if wanted("bandwidth") {
        for (system, results) in systems.iter().zip(&mut results) {
            phase_bandwidth(system, results);
        }
    }

    let pick = |kind: Kind| {
        systems
            .iter()
            .zip(&results)
            .find(|(system, _)| system.kind == kind)
            .map(|(_, results)| results)
    };
    print_table(pick(Kind::Tocsin), pick(Kind::Alertmanager));
    println!(
        "# total bench time {:.1}s; load average after: {}",
        started.elapsed().as_secs_f64(),
        load_average()
    );
}

// ---------------------------------------------------------------------------------------------
// The systems under test, as clusters of real processes.

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Tocsin,
    Alertmanager,
}

struct System {
    kind: Kind,
    binary: PathBuf,
}

impl System {
    fn new(kind: Kind, binary: PathBuf) -> System {
        System { kind, binary }
    }

    fn name(&self) -> &'static str {
        match self.kind {
            Kind::Tocsin => "tocsin",
            Kind::Alertmanager => "alertmanager",
        }
    }

    /// Starts a cluster of `size` nodes, every node given every other as a peer, all with
    /// `alertmanager_yml` as their Alertmanager configuration, and waits until each node
    /// reports the cluster ready with all `size` members.
    fn start_cluster(&self, size: usize, alertmanager_yml: &str) -> Result<Cluster, String> {
        let dir = tempfile::tempdir().map_err(|e| format!("tempdir: {e}"))?;
        let config = dir.path().join("config.yml");
        let certs = dir.path().join("certs");
        let names: Vec<String> = (0..size).map(|i| format!("node{i}")).collect();
        match self.kind {
            Kind::Tocsin => {
                // A prometheus.yml with the Alertmanager document inline.
                let mut text = String::from("global:\n  evaluation_interval: 1m\nalertmanager:\n");
                for line in alertmanager_yml.lines() {
                    let _ = writeln!(text, "  {line}");
                }
                std::fs::write(&config, text).map_err(|e| format!("write config: {e}"))?;
                let output = Command::new(&self.binary)
                    .arg("certs")
                    .arg("--dir")
                    .arg(&certs)
                    .args(&names)
                    .output()
                    .map_err(|e| format!("tocsin certs: {e}"))?;
                if !output.status.success() {
                    return Err(format!(
                        "tocsin certs: {}: {}",
                        output.status,
                        String::from_utf8_lossy(&output.stderr)
                    ));
                }
            }
            Kind::Alertmanager => {
                std::fs::write(&config, alertmanager_yml)
                    .map_err(|e| format!("write config: {e}"))?;
            }
        }
        let ports = Ports::reserve(size, self.kind == Kind::Alertmanager)?;
        let (web, gossip) = ports.release();
        let peer_timeout = humantime::format_duration(PEER_TIMEOUT).to_string();
        let mut cluster = Cluster {
            nodes: Vec::new(),
            dir,
        };
        for (index, name) in names.iter().enumerate() {
            let node_dir = cluster.dir.path().join(name);
            std::fs::create_dir_all(&node_dir).map_err(|e| format!("mkdir: {e}"))?;
            let web_address = format!("127.0.0.1:{}", web[index]);
            let gossip_address = format!("127.0.0.1:{}", gossip[index]);
            let peers = gossip
                .iter()
                .enumerate()
                .filter(|(other, _)| *other != index)
                .map(|(_, port)| format!("127.0.0.1:{port}"));
            let mut command = Command::new(&self.binary);
            match self.kind {
                Kind::Tocsin => {
                    command
                        .arg("--config.file")
                        .arg(&config)
                        .arg("--storage.path")
                        .arg(node_dir.join("data"))
                        .args(["--web.listen-address", &web_address])
                        .args(["--cluster.listen-address", &gossip_address])
                        .args(["--cluster.node-name", name])
                        .arg("--cluster.tls-dir")
                        .arg(&certs)
                        .args(["--cluster.peer-timeout", &peer_timeout])
                        .args(["--log.level", "warn"]);
                    for peer in peers {
                        command.args(["--cluster.peer", &peer]);
                    }
                }
                Kind::Alertmanager => {
                    command
                        .arg(format!("--config.file={}", config.display()))
                        .arg(format!(
                            "--storage.path={}",
                            node_dir.join("data").display()
                        ))
                        .arg(format!("--web.listen-address={web_address}"))
                        .arg(format!("--cluster.listen-address={gossip_address}"))
                        .arg(format!("--cluster.peer-timeout={peer_timeout}"))
                        .arg(format!("--cluster.gossip-interval={AM_GOSSIP_INTERVAL}"))
                        .arg(format!(
                            "--cluster.pushpull-interval={AM_PUSHPULL_INTERVAL}"
                        ))
                        .arg("--log.level=warn");
                    for peer in peers {
                        command.arg(format!("--cluster.peer={peer}"));
                    }
                }
            }
            let log_path = node_dir.join("server.log");
            let log = std::fs::File::create(&log_path).map_err(|e| format!("log file: {e}"))?;
            let log_err = log.try_clone().map_err(|e| format!("log file: {e}"))?;
            let child = command
                .stdin(Stdio::null())
                .stdout(Stdio::from(log))
                .stderr(Stdio::from(log_err))
                .spawn()
                .map_err(|e| format!("spawn {}: {e}", self.binary.display()))?;
            cluster.nodes.push(Node {
                child: Some(child),
                address: web_address,
                name: String::new(),
                log_path,
            });
        }
        cluster.wait_ready(size)?;
        Ok(cluster)
    }
}

/// Free ports held open until the nodes are about to bind them, so that no two nodes get the
/// same one: a TCP port per node for HTTP, and a cluster port per node (UDP for Tocsin's QUIC,
/// UDP and TCP for Alertmanager's memberlist).
struct Ports {
    web: Vec<TcpListener>,
    gossip: Vec<(UdpSocket, Option<TcpListener>)>,
}

impl Ports {
    fn reserve(count: usize, gossip_needs_tcp: bool) -> Result<Ports, String> {
        let mut ports = Ports {
            web: Vec::new(),
            gossip: Vec::new(),
        };
        for _ in 0..count {
            ports
                .web
                .push(TcpListener::bind("127.0.0.1:0").map_err(|e| format!("bind tcp: {e}"))?);
        }
        let mut attempts = 0;
        while ports.gossip.len() < count {
            attempts += 1;
            if attempts > 100 {
                return Err("no free cluster port".to_string());
            }
            if gossip_needs_tcp {
                let tcp = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("bind tcp: {e}"))?;
                let port = tcp.local_addr().map_err(|e| e.to_string())?.port();
                if let Ok(udp) = UdpSocket::bind(("127.0.0.1", port)) {
                    ports.gossip.push((udp, Some(tcp)));
                }
            } else {
                let udp = UdpSocket::bind("127.0.0.1:0").map_err(|e| format!("bind udp: {e}"))?;
                ports.gossip.push((udp, None));
            }
        }
        Ok(ports)
    }

    /// Closes the sockets and returns the web and cluster port numbers.
    fn release(self) -> (Vec<u16>, Vec<u16>) {
        let web = self
            .web
            .iter()
            .map(|listener| listener.local_addr().map_or(0, |a| a.port()))
            .collect();
        let gossip = self
            .gossip
            .iter()
            .map(|(udp, _)| udp.local_addr().map_or(0, |a| a.port()))
            .collect();
        (web, gossip)
    }
}

/// One node; killed when dropped.
struct Node {
    child: Option<Child>,
    /// HTTP address.
    address: String,
    /// Cluster member name, as `/api/v2/status` reports it (known once ready).
    name: String,
    log_path: PathBuf,
}

impl Node {
    fn conn(&self) -> Result<Conn, String> {
        Conn::open(&self.address, IO_TIMEOUT)
    }

    fn is_alive(&self) -> bool {
        self.child.is_some()
    }

    /// SIGKILL, and reap.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log_path).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// `GET path` over a new connection; the body if the status is 200.
    fn get(&self, path: &str) -> Result<Vec<u8>, String> {
        let (status, body) = self.conn()?.request("GET", path, b"")?;
        if status != 200 {
            return Err(format!("GET {path}: HTTP {status}"));
        }
        Ok(body)
    }

    fn status(&self) -> Result<serde_json::Value, String> {
        let body = self.get("/api/v2/status")?;
        serde_json::from_slice(&body).map_err(|e| format!("/api/v2/status: bad JSON: {e}"))
    }

    /// The sum of every series of counter or gauge `name` in `/metrics`, by label set.
    fn metric(&self, name: &str) -> Result<BTreeMap<String, f64>, String> {
        let text = String::from_utf8(self.get("/metrics")?).map_err(|e| e.to_string())?;
        let mut series = BTreeMap::new();
        for line in text.lines().filter(|line| !line.starts_with('#')) {
            let Some((key, value)) = line.rsplit_once(' ') else {
                continue;
            };
            let (metric, labels) = match key.split_once('{') {
                Some((metric, labels)) => (metric, labels.trim_end_matches('}')),
                None => (key, ""),
            };
            if metric == name
                && let Ok(value) = value.parse::<f64>()
            {
                *series.entry(labels.to_string()).or_insert(0.0) += value;
            }
        }
        Ok(series)
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A running cluster; every node is killed (and the temp directory removed) when dropped.
struct Cluster {
    nodes: Vec<Node>,
    /// Config, certificates and each node's storage and log; removed after the nodes.
    dir: tempfile::TempDir,
}

impl Cluster {
    fn wait_ready(&mut self, size: usize) -> Result<(), String> {
        let started = Instant::now();
        let mut ready = vec![false; self.nodes.len()];
        while started.elapsed() < READY_TIMEOUT {
            for (node, ready) in self.nodes.iter_mut().zip(&mut ready) {
                if *ready {
                    continue;
                }
                if let Some(child) = node.child.as_mut()
                    && let Ok(Some(status)) = child.try_wait()
                {
                    return Err(format!(
                        "{} exited with {status}:\n{}",
                        node.address,
                        node.log_tail()
                    ));
                }
                if node.get("/-/ready").is_err() {
                    continue;
                }
                if let Ok(status) = node.status()
                    && status["cluster"]["status"] == "ready"
                    && status["cluster"]["peers"].as_array().map(Vec::len) == Some(size)
                {
                    node.name = status["cluster"]["name"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string();
                    *ready = true;
                }
            }
            if ready.iter().all(|ready| *ready) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let waiting = self
            .nodes
            .iter()
            .zip(&ready)
            .find(|(_, ready)| !**ready)
            .map(|(node, _)| {
                format!(
                    "{}: status {}\n{}",
                    node.address,
                    node.status()
                        .map(|s| s["cluster"].to_string())
                        .unwrap_or_else(|e| e),
                    node.log_tail()
                )
            })
            .unwrap_or_default();
        Err(format!(
            "cluster of {size} not ready after {READY_TIMEOUT:?}; {waiting}"
        ))
    }

    /// Sums counter `name` over the live nodes.
    fn metric_sum(&self, name: &str) -> Result<f64, String> {
        Ok(self.metric_by_labels(name)?.values().sum())
    }

    /// Counter `name` summed over the live nodes, by label set.
    fn metric_by_labels(&self, name: &str) -> Result<BTreeMap<String, f64>, String> {
        let mut total = BTreeMap::new();
        for node in self.nodes.iter().filter(|node| node.is_alive()) {
            for (labels, value) in node.metric(name)? {
                *total.entry(labels).or_insert(0.0) += value;
            }
        }
        Ok(total)
    }

    /// Per live node, who sent what: for Tocsin the notification counters of
    /// `/api/v2/status`, for Alertmanager `alertmanager_notifications_total`.
    fn notification_notes(&self, kind: Kind) -> String {
        let mut notes = Vec::new();
        for (index, node) in self.nodes.iter().enumerate() {
            if !node.is_alive() {
                notes.push(format!("node{index} killed"));
                continue;
            }
            let note = match kind {
                Kind::Tocsin => node.status().map(|status| {
                    let t = &status["cluster"]["tocsin"];
                    format!(
                        "node{index} sent as owner {} / in place of owner {} / skipped (sent by peer) {}",
                        t["sentAsOwner"], t["sentInPlaceOfOwner"], t["skippedSentByPeer"]
                    )
                }),
                Kind::Alertmanager => node
                    .metric("alertmanager_notifications_total")
                    .map(|series| format!("node{index} sent {}", series.values().sum::<f64>())),
            };
            notes.push(note.unwrap_or_else(|e| format!("node{index}: {e}")));
        }
        notes.join("; ")
    }
}

// ---------------------------------------------------------------------------------------------
// The webhook receiver: records every notification's arrival time and group.

struct Delivery {
    at: Instant,
    /// `groupLabels.alertname`.
    group: String,
}

struct Hook {
    port: u16,
    deliveries: Arc<Mutex<Vec<Delivery>>>,
    stop: Arc<AtomicBool>,
}

impl Hook {
    fn start() -> Result<Hook, String> {
        let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("bind: {e}"))?;
        let port = listener.local_addr().map_err(|e| e.to_string())?.port();
        listener
            .set_nonblocking(true)
            .map_err(|e| format!("nonblocking: {e}"))?;
        let deliveries = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let hook = Hook {
            port,
            deliveries: Arc::clone(&deliveries),
            stop: Arc::clone(&stop),
        };
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let deliveries = Arc::clone(&deliveries);
                        std::thread::spawn(move || serve_hook(stream, &deliveries));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(2)),
                }
            }
        });
        Ok(hook)
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/", self.port)
    }

    fn take(&self) -> Vec<Delivery> {
        std::mem::take(&mut *self.deliveries.lock().unwrap())
    }
}

impl Drop for Hook {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Serves one keep-alive connection until the sender closes it (the nodes are killed at the
/// end of each phase, which closes their connections).
fn serve_hook(stream: TcpStream, deliveries: &Mutex<Vec<Delivery>>) {
    if stream.set_nonblocking(false).is_err() {
        return;
    }
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    loop {
        if read_line(&mut reader, &mut line).is_err() {
            return;
        }
        if line.trim().is_empty() {
            continue;
        }
        let mut length = 0;
        loop {
            if read_line(&mut reader, &mut line).is_err() {
                return;
            }
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':')
                && name.trim().eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let at = Instant::now();
        let group = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v["groupLabels"]["alertname"].as_str().map(str::to_string))
            .unwrap_or_default();
        deliveries.lock().unwrap().push(Delivery { at, group });
        if reader
            .get_mut()
            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
            .is_err()
        {
            return;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Load.

/// The configuration both systems get: every alertname its own group, sent to the bench's
/// webhook receiver once, `group_wait` after the group appears.
fn alertmanager_config(hook: &Hook, group_wait: Duration) -> String {
    format!(
        "route:\n  receiver: hook\n  group_by: [alertname]\n  group_wait: {}s\n  \
         group_interval: 1m\n  repeat_interval: 4h\n\
         receivers:\n  - name: hook\n    webhook_configs:\n      - url: {}\n        \
         send_resolved: false\n",
        group_wait.as_secs(),
        hook.url()
    )
}

/// One `POST /api/v2/alerts` body: alerts `{prefix}{id}` for `ids`, each its own group.
fn alerts_body(prefix: &str, ids: std::ops::Range<usize>) -> Vec<u8> {
    let mut body = String::from("[");
    for id in ids {
        if body.len() > 1 {
            body.push(',');
        }
        let _ = write!(
            body,
            "{{\"labels\":{{\"alertname\":\"{prefix}{id}\",\"job\":\"bench\",\"instance\":\"host-{}\",\
             \"severity\":\"warning\"}},\"annotations\":{{\"summary\":\"mesh benchmark alert {id}\"}}}}",
            id % 50
        );
    }
    body.push(']');
    body.into_bytes()
}

/// One `POST /api/v2/silences` body, active for an hour, matching a label no alert has.
fn silence_body(tag: &str) -> Vec<u8> {
    let now = jiff::Timestamp::now();
    let ends = now
        .checked_add(jiff::SignedDuration::from_secs(3600))
        .unwrap_or(now);
    format!(
        "{{\"matchers\":[{{\"name\":\"bench_silence\",\"value\":\"{tag}\",\"isRegex\":false,\"isEqual\":true}}],\
         \"startsAt\":\"{now}\",\"endsAt\":\"{ends}\",\"createdBy\":\"mesh-bench\",\"comment\":\"{tag}\"}}"
    )
    .into_bytes()
}

fn silence_id(answer: &[u8]) -> Result<String, String> {
    let value: serde_json::Value =
        serde_json::from_slice(answer).map_err(|e| format!("POST silence: bad JSON: {e}"))?;
    value["silenceID"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| "POST silence: no silenceID".to_string())
}

/// The nodes a system's alerts are posted to: Alertmanager does not replicate alerts, so each
/// goes to every node (as Prometheus does); Tocsin replicates them, so one node gets them.
fn alert_targets(kind: Kind, cluster: &Cluster) -> Vec<usize> {
    match kind {
        Kind::Tocsin => vec![0],
        Kind::Alertmanager => (0..cluster.nodes.len()).collect(),
    }
}

// ---------------------------------------------------------------------------------------------
// Phases.

/// Row label → value, or why there is none.
#[derive(Default)]
struct Results(HashMap<&'static str, Result<f64, String>>);

impl Results {
    fn set(&mut self, label: &'static str, value: f64) {
        self.0.insert(label, Ok(value));
    }

    fn fail(&mut self, labels: &[&'static str], error: &str) {
        for label in labels {
            self.0.insert(label, Err(error.to_string()));
        }
    }
}

const C3_P50: &str = "silence convergence, 3 nodes, p50 (ms)";
const C3_P99: &str = "silence convergence, 3 nodes, p99 (ms)";
const C7_P50: &str = "silence convergence, 7 nodes, p50 (ms)";
const C7_P99: &str = "silence convergence, 7 nodes, p99 (ms)";
const D_DELIVERIES: &str = "1000 groups, 3 nodes: webhook deliveries";
const D_GROUPS: &str = "1000 groups, 3 nodes: groups delivered";
const D_DUPLICATES: &str = "1000 groups, 3 nodes: duplicates";
const D_MISSING: &str = "1000 groups, 3 nodes: missing";
const F_P50: &str = "failover, 30 groups: delay after due p50 (ms)";
const F_MAX: &str = "failover, 30 groups: delay after due max (ms)";
const F_LATE: &str = "failover, 30 groups: groups > 1 s late";
const F_DUPLICATES: &str = "failover, 30 groups: duplicates";
const F_MISSING: &str = "failover, 30 groups: missing";
const B_IDLE: &str = "gossip bytes/s per node, idle";
const B_BUSY: &str = "gossip bytes/s per node, busy";

/// Phase 1, silence convergence: silences created one at a time on node 0; for each, the time
/// from sending its `POST` until the last other node answers `GET /api/v2/silence/{id}` with
/// 200.
fn phase_convergence(system: &System, size: usize, results: &mut Results) {
    let (p50, p99) = if size == 3 {
        (C3_P50, C3_P99)
    } else {
        (C7_P50, C7_P99)
    };
    match convergence(system, size) {
        Ok((median, worst)) => {
            results.set(p50, median);
            results.set(p99, worst);
        }
        Err(error) => {
            println!("# {}: convergence, {size} nodes: {error}", system.name());
            results.fail(&[p50, p99], &error);
        }
    }
}

fn convergence(system: &System, size: usize) -> Result<(f64, f64), String> {
    let hook = Hook::start()?;
    let boot = Instant::now();
    let cluster =
        system.start_cluster(size, &alertmanager_config(&hook, Duration::from_secs(30)))?;
    let boot = boot.elapsed();
    let mut writer = cluster.nodes[0].conn()?;
    let mut readers = cluster.nodes[1..]
        .iter()
        .map(Node::conn)
        .collect::<Result<Vec<_>, _>>()?;
    let mut samples = Vec::new();
    let mut posts = Vec::new();
    let (mut timeouts, mut lagging) = (0, 0);
    let started = Instant::now();
    for n in 0..SILENCES {
        if started.elapsed() > CONVERGE_PHASE_LIMIT {
            break;
        }
        let body = silence_body(&format!("converge-{n}"));
        let begin = Instant::now();
        let answer = writer.expect_ok("POST", "/api/v2/silences", &body)?;
        posts.push(begin.elapsed());
        let path = format!("/api/v2/silence/{}", silence_id(&answer)?);
        let deadline = begin + CONVERGE_TIMEOUT;
        let path = path.as_str();
        let seen: Vec<Option<Instant>> = std::thread::scope(|scope| {
            let handles: Vec<_> = readers
                .iter_mut()
                .map(|conn| scope.spawn(move || poll_until_found(conn, path, deadline)))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        match seen.iter().copied().collect::<Option<Vec<Instant>>>() {
            Some(times) => {
                let last = times.into_iter().max().unwrap_or(begin);
                samples.push(last.duration_since(begin));
            }
            None => {
                timeouts += 1;
                lagging += seen.iter().filter(|seen| seen.is_none()).count();
                samples.push(CONVERGE_TIMEOUT);
            }
        }
        std::thread::sleep(SILENCE_GAP);
    }
    samples.sort();
    posts.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "# {}: convergence, {size} nodes (ready after {:.1}s): {} silences, p50 {:.1} ms, p99 {:.1} ms, \
         min {:.1} ms; {timeouts} not everywhere within {CONVERGE_TIMEOUT:?} \
         ({lagging} node-silences missing then); POST p50 {:.1} ms",
        system.name(),
        boot.as_secs_f64(),
        samples.len(),
        ms(percentile(&samples, 0.50).unwrap_or_default()),
        ms(percentile(&samples, 0.99).unwrap_or_default()),
        ms(samples.first().copied().unwrap_or_default()),
        ms(percentile(&posts, 0.50).unwrap_or_default()),
    );
    if samples.is_empty() {
        return Err("no silence created".to_string());
    }
    Ok((
        ms(percentile(&samples, 0.50).unwrap_or_default()),
        ms(percentile(&samples, 0.99).unwrap_or_default()),
    ))
}

/// Polls `GET path` every `POLL_EVERY` until it answers 200 (when) or `deadline` passes.
fn poll_until_found(conn: &mut Conn, path: &str, deadline: Instant) -> Option<Instant> {
    loop {
        if let Ok((200, _)) = conn.request("GET", path, b"") {
            return Some(Instant::now());
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(POLL_EVERY);
    }
}

/// What the webhook receiver got for the groups `{prefix}0..{prefix}{groups}`.
struct Delivered {
    deliveries: usize,
    groups: usize,
    duplicates: usize,
    missing: usize,
    /// Per delivered group, its first delivery minus its due time, in ms (sorted).
    delays: Vec<f64>,
    late: usize,
}

fn summarize(deliveries: &[Delivery], prefix: &str, groups: usize, due: Instant) -> Delivered {
    let mut first: HashMap<&str, Instant> = HashMap::new();
    let mut count = 0;
    for delivery in deliveries {
        let Some(id) = delivery.group.strip_prefix(prefix) else {
            continue;
        };
        if id.parse::<usize>().is_ok_and(|id| id < groups) {
            count += 1;
            let at = first.entry(&delivery.group).or_insert(delivery.at);
            *at = (*at).min(delivery.at);
        }
    }
    let signed_ms = |at: Instant| {
        if at >= due {
            at.duration_since(due).as_secs_f64() * 1000.0
        } else {
            -due.duration_since(at).as_secs_f64() * 1000.0
        }
    };
    let mut delays: Vec<f64> = first.values().map(|at| signed_ms(*at)).collect();
    delays.sort_by(f64::total_cmp);
    Delivered {
        deliveries: count,
        groups: first.len(),
        duplicates: count - first.len(),
        missing: groups - first.len(),
        late: delays
            .iter()
            .filter(|delay| **delay > LATE.as_secs_f64() * 1000.0)
            .count(),
        delays,
    }
}

/// Posts `batches` to each of `targets`; returns when the first request was sent.
fn post_alerts(cluster: &Cluster, targets: &[usize], batches: &[Vec<u8>]) -> Result<(), String> {
    for &target in targets {
        let mut conn = cluster.nodes[target].conn()?;
        for batch in batches {
            conn.expect_ok("POST", "/api/v2/alerts", batch)?;
        }
    }
    Ok(())
}

/// Phase 2, duplicates: 1,000 groups due at once in a healthy 3-node cluster.
fn phase_duplicates(system: &System, results: &mut Results) {
    let labels = [D_DELIVERIES, D_GROUPS, D_DUPLICATES, D_MISSING];
    match duplicates(system) {
        Ok(delivered) => {
            results.set(D_DELIVERIES, delivered.deliveries as f64);
            results.set(D_GROUPS, delivered.groups as f64);
            results.set(D_DUPLICATES, delivered.duplicates as f64);
            results.set(D_MISSING, delivered.missing as f64);
        }
        Err(error) => {
            println!("# {}: duplicates: {error}", system.name());
            results.fail(&labels, &error);
        }
    }
}

fn duplicates(system: &System) -> Result<Delivered, String> {
    let hook = Hook::start()?;
    let cluster = system.start_cluster(3, &alertmanager_config(&hook, DUP_GROUP_WAIT))?;
    let batches: Vec<Vec<u8>> = (0..DUP_GROUPS)
        .step_by(BATCH)
        .map(|start| alerts_body("MeshDup", start..(start + BATCH).min(DUP_GROUPS)))
        .collect();
    let targets = alert_targets(system.kind, &cluster);
    let started = Instant::now();
    post_alerts(&cluster, &targets, &batches)?;
    let posted = started.elapsed();
    let window = DUP_GROUP_WAIT + PEER_TIMEOUT * 2 + DELIVERY_MARGIN;
    std::thread::sleep(window.saturating_sub(started.elapsed()));
    let deliveries = hook.take();
    let delivered = summarize(&deliveries, "MeshDup", DUP_GROUPS, started + DUP_GROUP_WAIT);
    println!(
        "# {}: duplicates: posted {DUP_GROUPS} alerts to {} node(s) in {:.2}s; after {:.0}s: {} deliveries, \
         {} groups, {} duplicates, {} missing; first delivery {:.0} ms after due, last {:.0} ms; {}",
        system.name(),
        targets.len(),
        posted.as_secs_f64(),
        window.as_secs_f64(),
        delivered.deliveries,
        delivered.groups,
        delivered.duplicates,
        delivered.missing,
        delivered.delays.first().copied().unwrap_or(f64::NAN),
        deliveries
            .iter()
            .map(|d| d.at)
            .max()
            .map_or(f64::NAN, |at| (at - (started + DUP_GROUP_WAIT))
                .as_secs_f64()
                * 1000.0),
        cluster.notification_notes(system.kind)
    );
    Ok(delivered)
}

/// Phase 3, failover: alerts posted, then one node killed with SIGKILL at once.
fn phase_failover(system: &System, results: &mut Results) {
    let labels = [F_P50, F_MAX, F_LATE, F_DUPLICATES, F_MISSING];
    match failover(system) {
        Ok(delivered) => {
            if delivered.delays.is_empty() {
                results.fail(&[F_P50, F_MAX], "nothing delivered");
            } else {
                results.set(
                    F_P50,
                    percentile(&delivered.delays, 0.50).unwrap_or(f64::NAN),
                );
                results.set(F_MAX, delivered.delays.last().copied().unwrap_or(0.0));
            }
            results.set(F_LATE, delivered.late as f64);
            results.set(F_DUPLICATES, delivered.duplicates as f64);
            results.set(F_MISSING, delivered.missing as f64);
        }
        Err(error) => {
            println!("# {}: failover: {error}", system.name());
            results.fail(&labels, &error);
        }
    }
}

fn failover(system: &System) -> Result<Delivered, String> {
    let hook = Hook::start()?;
    let mut cluster = system.start_cluster(3, &alertmanager_config(&hook, FAILOVER_GROUP_WAIT))?;
    let batches = [alerts_body("MeshFailover", 0..FAILOVER_GROUPS)];
    let targets = alert_targets(system.kind, &cluster);
    // Alertmanager: the node first by name is position 0 and notifies every group; kill it.
    // Tocsin: every node owns about a third of the groups; kill one it did not post to.
    let victim = match system.kind {
        Kind::Tocsin => cluster.nodes.len() - 1,
        Kind::Alertmanager => (0..cluster.nodes.len())
            .min_by_key(|&index| cluster.nodes[index].name.clone())
            .unwrap_or(0),
    };
    let started = Instant::now();
    post_alerts(&cluster, &targets, &batches)?;
    cluster.nodes[victim].kill();
    let killed = started.elapsed();
    let window = FAILOVER_GROUP_WAIT + PEER_TIMEOUT * 2 + DELIVERY_MARGIN;
    std::thread::sleep(window.saturating_sub(started.elapsed()));
    let delivered = summarize(
        &hook.take(),
        "MeshFailover",
        FAILOVER_GROUPS,
        started + FAILOVER_GROUP_WAIT,
    );
    println!(
        "# {}: failover: posted to {} node(s), killed node{victim} ({}) {:.0} ms after the first POST; \
         after {:.0}s: {} deliveries, {} groups, {} duplicates, {} missing, {} more than {LATE:?} late; \
         delay p50 {:.0} ms, max {:.0} ms; {}",
        system.name(),
        targets.len(),
        cluster.nodes[victim].name,
        killed.as_secs_f64() * 1000.0,
        window.as_secs_f64(),
        delivered.deliveries,
        delivered.groups,
        delivered.duplicates,
        delivered.missing,
        delivered.late,
        percentile(&delivered.delays, 0.50).unwrap_or(f64::NAN),
        delivered.delays.last().copied().unwrap_or(f64::NAN),
        cluster.notification_notes(system.kind)
    );
    Ok(delivered)
}

/// Phase 4, bytes sent between nodes per second per node, idle and under load.
fn phase_bandwidth(system: &System, results: &mut Results) {
    match bandwidth(system) {
        Ok((idle, busy)) => {
            results.set(B_IDLE, idle);
            results.set(B_BUSY, busy);
        }
        Err(error) => {
            println!("# {}: bandwidth: {error}", system.name());
            results.fail(&[B_IDLE, B_BUSY], &error);
        }
    }
}

/// The counters of bytes a node sent to its peers.
fn sent_bytes_metric(kind: Kind) -> &'static str {
    match kind {
        Kind::Tocsin => "tocsin_cluster_sent_bytes_total",
        Kind::Alertmanager => "alertmanager_cluster_messages_sent_size_total",
    }
}

fn received_bytes_metric(kind: Kind) -> &'static str {
    match kind {
        Kind::Tocsin => "tocsin_cluster_received_bytes_total",
        Kind::Alertmanager => "alertmanager_cluster_messages_received_size_total",
    }
}

fn sent_messages_metric(kind: Kind) -> &'static str {
    match kind {
        Kind::Tocsin => "tocsin_cluster_messages_sent_total",
        Kind::Alertmanager => "alertmanager_cluster_messages_sent_total",
    }
}

/// Counters summed over the live nodes: sent bytes by label set, received bytes, sent messages.
struct Traffic {
    sent: BTreeMap<String, f64>,
    received: f64,
    messages: f64,
}

fn traffic(cluster: &Cluster, kind: Kind) -> Result<Traffic, String> {
    Ok(Traffic {
        sent: cluster.metric_by_labels(sent_bytes_metric(kind))?,
        received: cluster.metric_sum(received_bytes_metric(kind))?,
        messages: cluster.metric_sum(sent_messages_metric(kind))?,
    })
}

/// Per-node rates over a window: (sent bytes/s per node, a description of the split).
fn rates(before: &Traffic, after: &Traffic, seconds: f64, nodes: usize) -> (f64, String) {
    let per_node = |bytes: f64| bytes / seconds / nodes as f64;
    let mut split = Vec::new();
    let mut total = 0.0;
    for (labels, value) in &after.sent {
        let delta = value - before.sent.get(labels).copied().unwrap_or(0.0);
        total += delta;
        split.push(format!("{{{labels}}} {:.0}", per_node(delta)));
    }
    let received = per_node(after.received - before.received);
    let messages = per_node(after.messages - before.messages);
    (
        per_node(total),
        format!(
            "{} B/s sent ({messages:.1} messages/s); {received:.0} B/s received",
            split.join(", ")
        ),
    )
}

fn bandwidth(system: &System) -> Result<(f64, f64), String> {
    let hook = Hook::start()?;
    let cluster = system.start_cluster(3, &alertmanager_config(&hook, DUP_GROUP_WAIT))?;
    let nodes = cluster.nodes.len();
    std::thread::sleep(BANDWIDTH_SETTLE);

    let before = traffic(&cluster, system.kind)?;
    let begin = Instant::now();
    std::thread::sleep(BANDWIDTH_WINDOW);
    let after = traffic(&cluster, system.kind)?;
    let (idle, idle_split) = rates(&before, &after, begin.elapsed().as_secs_f64(), nodes);

    // Busy: 200 alerts/s (each a new group, so notifications and nflog entries follow) and
    // 5 silences/s, paced by ticks; alerts to every node for Alertmanager, silences to node 0.
    let targets = alert_targets(system.kind, &cluster);
    let mut alert_conns = targets
        .iter()
        .map(|&target| cluster.nodes[target].conn())
        .collect::<Result<Vec<_>, _>>()?;
    let mut silence_conn = cluster.nodes[0].conn()?;
    let ticks = (BANDWIDTH_WINDOW.as_millis() / BUSY_TICK.as_millis()) as usize;
    let (mut alerts, mut silences, mut behind) = (0, 0, 0);
    let before = traffic(&cluster, system.kind)?;
    let begin = Instant::now();
    for tick in 0..ticks {
        let at = begin + BUSY_TICK * tick as u32;
        match at.checked_duration_since(Instant::now()) {
            Some(wait) => std::thread::sleep(wait),
            None => behind += 1,
        }
        let first = tick * BUSY_ALERTS_PER_TICK;
        let body = alerts_body("MeshBusy", first..first + BUSY_ALERTS_PER_TICK);
        for conn in &mut alert_conns {
            conn.expect_ok("POST", "/api/v2/alerts", &body)?;
        }
        alerts += BUSY_ALERTS_PER_TICK;
        if tick % BUSY_SILENCE_EVERY == 0 {
            let body = silence_body(&format!("busy-{tick}"));
            silence_conn.expect_ok("POST", "/api/v2/silences", &body)?;
            silences += 1;
        }
    }
    std::thread::sleep((begin + BANDWIDTH_WINDOW).saturating_duration_since(Instant::now()));
    let after = traffic(&cluster, system.kind)?;
    let seconds = begin.elapsed().as_secs_f64();
    let (busy, busy_split) = rates(&before, &after, seconds, nodes);
    println!(
        "# {}: bandwidth per node: idle {idle_split}; busy ({alerts} alerts to {} node(s), {silences} silences \
         in {seconds:.1}s, {behind} ticks late, {} webhook deliveries) {busy_split}",
        system.name(),
        targets.len(),
        hook.take().len(),
    );
    Ok((idle, busy))
}

// ---------------------------------------------------------------------------------------------
// Report.

/// Which way is better for a row, if either.
#[derive(Clone, Copy)]
enum Better {
    Lower,
    Neither,
}

fn print_table(tocsin: Option<&Results>, alertmanager: Option<&Results>) {
    println!();
    println!(
        "{:<48} {:>12} {:>12}   ratio (tocsin/alertmanager)",
        "benchmark", "tocsin", "alertmanager"
    );
    let rows: [(&str, &str, Better); 15] = [
        (C3_P50, "", Better::Lower),
        (C3_P99, "goal: tocsin < 100 ms", Better::Lower),
        (C7_P50, "", Better::Lower),
        (C7_P99, "goal: tocsin < 100 ms", Better::Lower),
        (D_DELIVERIES, "", Better::Neither),
        (D_GROUPS, "", Better::Neither),
        (D_DUPLICATES, "goal: tocsin 0", Better::Lower),
        (D_MISSING, "", Better::Lower),
        (F_P50, "", Better::Lower),
        (F_MAX, "", Better::Lower),
        (F_LATE, "", Better::Lower),
        (F_DUPLICATES, "", Better::Lower),
        (F_MISSING, "", Better::Lower),
        (B_IDLE, "", Better::Lower),
        (B_BUSY, "", Better::Lower),
    ];
    let mut errors = Vec::new();
    for (label, goal, better) in rows {
        let pick = |results: Option<&Results>| results.and_then(|r| r.0.get(label)).cloned();
        let (t, a) = (pick(tocsin), pick(alertmanager));
        for (name, value) in [("tocsin", &t), ("alertmanager", &a)] {
            if let Some(Err(error)) = value {
                errors.push(format!(
                    "{label} ({name}): {}",
                    error.lines().next().unwrap_or("")
                ));
            }
        }
        let (t, a) = (t.and_then(Result::ok), a.and_then(Result::ok));
        let mut ratio = match (t, a) {
            (Some(t), Some(a)) if a != 0.0 => format!(
                "{:.2}x{}",
                t / a,
                match better {
                    Better::Lower => " (lower is better)",
                    Better::Neither => "",
                }
            ),
            _ => "n/a".to_string(),
        };
        if !goal.is_empty() {
            let _ = write!(ratio, "; {goal}");
        }
        println!(
            "{label:<48} {:>12} {:>12}   {ratio}",
            format_value(t),
            format_value(a)
        );
    }
    for error in errors {
        println!("# error: {error}");
    }
}

fn format_value(value: Option<f64>) -> String {
    match value {
        None => "n/a".to_string(),
        Some(v) if v.fract() == 0.0 || v.abs() >= 100.0 => format!("{v:.0}"),
        Some(v) => format!("{v:.1}"),
    }
}
