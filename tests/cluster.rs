//! Clusters end to end: three real `tocsin` processes on 127.0.0.1, meshed over QUIC with mutual
//! TLS, replicating silences, alerts and the notification log; a real HTTP webhook server in this
//! test process counts what they deliver.
// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::webhook::HookServer;
use common::{RunningNode, wait_for};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Every node's `--cluster.peer-timeout`, unless a test says otherwise.
const PEER_TIMEOUT: Duration = Duration::from_secs(2);

/// The node names of a three-node cluster.
const NAMES: [&str; 3] = ["a", "b", "c"];

// ---------------------------------------------------------------------------------------------
// Ports, certificates, polling

/// A UDP port nothing listens on now, never handed out before in this process (tests run in
/// parallel threads, and the OS may give a just-released port again).
fn free_udp_port() -> u16 {
    static HANDED_OUT: Mutex<Option<HashSet<u16>>> = Mutex::new(None);
    let mut handed_out = HANDED_OUT.lock().unwrap();
    let handed_out = handed_out.get_or_insert_with(HashSet::new);
    loop {
        let port = UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        if handed_out.insert(port) {
            return port;
        }
    }
}

/// `tocsin certs --dir DIR NAME...`: a CA (reused if DIR has one) and a certificate per name.
fn make_certs(dir: &Path, names: &[&str]) {
    let output = Command::new(common::TOCSIN)
        .arg("certs")
        .arg("--dir")
        .arg(dir)
        .args(names)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "tocsin certs failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for name in names {
        assert!(dir.join(format!("{name}.pem")).exists());
        assert!(dir.join(format!("{name}-key.pem")).exists());
    }
    assert!(dir.join("ca.pem").exists());
}

fn millis(duration: Duration) -> u128 {
    duration.as_millis()
}

// ---------------------------------------------------------------------------------------------
// Nodes and clusters

/// What a node is started with; `args()` turns it into flags.
#[derive(Clone)]
struct NodeSpec {
    name: String,
    /// Its own folder: storage under `dir/data`.
    dir: PathBuf,
    config: PathBuf,
    cluster_port: u16,
    peers: Vec<u16>,
    tls_dir: PathBuf,
    peer_timeout: Duration,
    cluster_name: Option<String>,
}

impl NodeSpec {
    fn args(&self) -> Vec<String> {
        let mut args = vec![
            "--config.file".to_string(),
            self.config.display().to_string(),
            "--cluster.listen-address".to_string(),
            format!("127.0.0.1:{}", self.cluster_port),
            "--cluster.node-name".to_string(),
            self.name.clone(),
            "--cluster.tls-dir".to_string(),
            self.tls_dir.display().to_string(),
            "--cluster.peer-timeout".to_string(),
            format!("{}ms", self.peer_timeout.as_millis()),
        ];
        for peer in &self.peers {
            args.push("--cluster.peer".to_string());
            args.push(format!("127.0.0.1:{peer}"));
        }
        if let Some(name) = &self.cluster_name {
            args.push("--cluster.name".to_string());
            args.push(name.clone());
        }
        args
    }

    fn start(&self) -> RunningNode {
        std::fs::create_dir_all(&self.dir).unwrap();
        let args = self.args();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        RunningNode::start(&self.dir, &args)
    }
}

/// A config routing everything, grouped by alertname, to one webhook.
fn config(hook_url: &str, group_wait: Duration) -> String {
    format!(
        "alertmanager:
  route:
    receiver: hook
    group_by: [alertname]
    group_wait: {}ms
    group_interval: 1m
    repeat_interval: 1h
  receivers:
    - name: hook
      webhook_configs: [{{url: '{hook_url}'}}]
",
        group_wait.as_millis()
    )
}

/// Three nodes `a`, `b`, `c` that know each other, with certificates from one CA.
struct Cluster {
    _dir: tempfile::TempDir,
    specs: Vec<NodeSpec>,
    /// `None` while a node is down.
    nodes: Vec<Option<RunningNode>>,
}

impl Cluster {
    fn start(config_text: &str, peer_timeout: Duration) -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let certs = dir.path().join("certs");
        make_certs(&certs, &NAMES);
        let config = dir.path().join("tocsin.yml");
        std::fs::write(&config, config_text).unwrap();
        let ports: Vec<u16> = NAMES.iter().map(|_| free_udp_port()).collect();
        let specs: Vec<NodeSpec> = NAMES
            .iter()
            .zip(&ports)
            .map(|(name, port)| NodeSpec {
                name: name.to_string(),
                dir: dir.path().join(name),
                config: config.clone(),
                cluster_port: *port,
                peers: ports.clone(),
                tls_dir: certs.clone(),
                peer_timeout,
                cluster_name: None,
            })
            .collect();
        let nodes = std::thread::scope(|scope| {
            let handles: Vec<_> = specs
                .iter()
                .map(|spec| scope.spawn(|| spec.start()))
                .collect();
            handles
                .into_iter()
                .map(|handle| Some(handle.join().unwrap()))
                .collect()
        });
        let cluster = Cluster {
            _dir: dir,
            specs,
            nodes,
        };
        cluster.wait_settled(&[0, 1, 2]);
        cluster
    }

    fn node(&self, index: usize) -> &RunningNode {
        self.nodes[index].as_ref().expect("node is running")
    }

    fn node_mut(&mut self, index: usize) -> &mut RunningNode {
        self.nodes[index].as_mut().expect("node is running")
    }

    /// Waits until each of `indexes` is ready and lists exactly the members `indexes`.
    fn wait_settled(&self, indexes: &[usize]) {
        let expected: BTreeSet<String> = indexes.iter().map(|i| NAMES[*i].to_string()).collect();
        for index in indexes {
            let node = self.node(*index);
            let settled = wait_for(Duration::from_secs(30), || {
                let status = cluster_status(node);
                status["status"] == "ready"
                    && peer_names(&status) == expected
                    && common::get(&node.url("/-/ready")).0 == 200
            });
            assert!(
                settled,
                "node {} did not settle with peers {expected:?}: {:#}\n--- log:\n{}",
                NAMES[*index],
                cluster_status(node),
                node.log()
            );
        }
    }

    /// The name of the node whose HTTP port is `port`.
    fn name_of_port(&self, port: Option<u16>) -> String {
        self.nodes
            .iter()
            .zip(NAMES)
            .find(|(node, _)| {
                node.as_ref().is_some_and(|node| {
                    node.address.rsplit(':').next().and_then(|p| p.parse().ok()) == port
                })
            })
            .map_or_else(|| format!("port {port:?}"), |(_, name)| name.to_string())
    }

    fn logs(&self) -> String {
        let mut out = String::new();
        for (node, name) in self.nodes.iter().zip(NAMES) {
            if let Some(node) = node {
                out.push_str(&format!("--- log of {name}:\n{}\n", node.log()));
            }
        }
        out
    }
}

/// `cluster` of `GET /api/v2/status`.
fn cluster_status(node: &RunningNode) -> Value {
    let (status, body) = common::get(&node.url("/api/v2/status"));
    assert_eq!(status, 200, "GET /api/v2/status: {body}");
    let status: Value = serde_json::from_str(&body).unwrap();
    status["cluster"].clone()
}

fn peer_names(cluster_status: &Value) -> BTreeSet<String> {
    cluster_status["peers"]
        .as_array()
        .map(|peers| {
            peers
                .iter()
                .filter_map(|peer| peer["name"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn tocsin_counter(node: &RunningNode, name: &str) -> u64 {
    cluster_status(node)["tocsin"][name].as_u64().unwrap_or(0)
}

/// The value of the `/metrics` sample whose name starts with `family` and carries `label`.
fn metric(node: &RunningNode, family: &str, label: &str) -> f64 {
    let (status, body) = common::get(&node.url("/metrics"));
    assert_eq!(status, 200);
    body.lines()
        .filter(|line| line.starts_with(family) && line.contains(label))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

// ---------------------------------------------------------------------------------------------
// Silences and alerts

/// Creates a silence on `node` matching `alertname=<name>`; returns its ID.
fn create_silence(node: &RunningNode, name: &str) -> String {
    let now = jiff::Timestamp::now();
    let body = json!({
        "matchers": [{"name": "alertname", "value": name, "isRegex": false, "isEqual": true}],
        "startsAt": now.to_string(),
        "endsAt": (now + jiff::SignedDuration::from_hours(2)).to_string(),
        "createdBy": "cluster test",
        "comment": format!("silencing {name}"),
    });
    let (status, answer) = common::post_json(&node.url("/api/v2/silences"), &body.to_string());
    assert_eq!(
        status,
        200,
        "POST /api/v2/silences: {answer}\n{}",
        node.log()
    );
    let answer: Value = serde_json::from_str(&answer).unwrap();
    answer["silenceID"].as_str().unwrap().to_string()
}

/// The IDs of the silences `node` holds.
fn silence_ids(node: &RunningNode) -> BTreeSet<String> {
    let (status, body) = common::get(&node.url("/api/v2/silences"));
    assert_eq!(status, 200, "GET /api/v2/silences: {body}");
    let silences: Value = serde_json::from_str(&body).unwrap();
    silences
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|silence| silence["id"].as_str().map(str::to_string))
        .collect()
}

fn has_all(node: &RunningNode, ids: &BTreeSet<String>) -> bool {
    silence_ids(node).is_superset(ids)
}

/// Firing alerts named `names`, starting at `starts_at`.
fn alerts(names: &[String], starts_at: jiff::Timestamp) -> Value {
    names
        .iter()
        .map(|name| {
            json!({
                "labels": {"alertname": name, "severity": "page"},
                "annotations": {"summary": format!("{name} is happening")},
                "startsAt": starts_at.to_string(),
            })
        })
        .collect()
}

fn post_alerts(node: &RunningNode, alerts: &Value) {
    let (status, body) = common::post_json(&node.url("/api/v2/alerts"), &alerts.to_string());
    assert_eq!(status, 200, "POST /api/v2/alerts: {body}\n{}", node.log());
}

fn group_key(name: &str) -> String {
    format!("{{}}:{{alertname=\"{name}\"}}")
}

/// Asserts that each of `names` got exactly one notification and nothing else arrived.
/// Kills node `index` with SIGKILL and waits until it is gone; prints when, for the test log.
#[allow(clippy::print_stdout)]
fn kill(cluster: &mut Cluster, index: usize, name: &str, posted: Instant) {
    cluster.node(index).signal("KILL");
    assert!(
        cluster
            .node_mut(index)
            .wait_exit(Duration::from_secs(5))
            .is_some()
    );
    println!(
        "{name} killed {} ms after the first POST",
        millis(posted.elapsed())
    );
}

/// Waits (at most `limit`) until every group in `names` was notified at least once.
fn wait_for_every_group(server: &HookServer, names: &[String], limit: Duration, cluster: &Cluster) {
    let all_delivered = wait_for(limit, || server.per_group().len() == names.len());
    assert!(
        all_delivered,
        "not every group was notified: {:?}\n{}",
        server.per_group(),
        cluster.logs()
    );
}

fn assert_once_per_group(server: &HookServer, names: &[String], cluster: &Cluster) {
    let expected: BTreeMap<String, usize> = names.iter().map(|name| (group_key(name), 1)).collect();
    assert_eq!(
        server.per_group(),
        expected,
        "one notification per group\n{}",
        cluster.logs()
    );
}

// ---------------------------------------------------------------------------------------------
// The tests

#[test]
fn a_silence_created_on_one_node_reaches_the_others_within_a_second() {
    let cluster = Cluster::start(
        &config("http://127.0.0.1:9/", Duration::from_secs(3)),
        PEER_TIMEOUT,
    );
    let id = create_silence(cluster.node(0), "DiskFull");
    let created = Instant::now();
    let mut arrived: BTreeMap<&str, Duration> = BTreeMap::new();
    let converged = wait_for(Duration::from_secs(5), || {
        for index in [1, 2] {
            if !arrived.contains_key(NAMES[index]) && silence_ids(cluster.node(index)).contains(&id)
            {
                arrived.insert(NAMES[index], created.elapsed());
            }
        }
        arrived.len() == 2
    });
    for (name, delay) in &arrived {
        println!(
            "silence reached {name} {} ms after the POST answer",
            millis(*delay)
        );
    }
    assert!(
        converged,
        "silence {id} missing: {arrived:?}\n{}",
        cluster.logs()
    );
    for (name, delay) in &arrived {
        assert!(
            *delay <= Duration::from_secs(1),
            "silence reached {name} only after {delay:?}"
        );
    }
}

#[test]
fn an_alert_posted_to_one_node_is_notified_exactly_once() {
    let server = HookServer::start();
    let group_wait = Duration::from_secs(3);
    let cluster = Cluster::start(&config(&server.url("/hook"), group_wait), PEER_TIMEOUT);
    let names: Vec<String> = (1..=5).map(|i| format!("Exactly{i}")).collect();
    let posted = Instant::now();
    post_alerts(cluster.node(1), &alerts(&names, jiff::Timestamp::now()));

    let all_delivered = wait_for(
        group_wait + PEER_TIMEOUT * 2 + Duration::from_secs(10),
        || server.per_group().len() == names.len(),
    );
    assert!(
        all_delivered,
        "not every group was notified: {:?}\n{}",
        server.per_group(),
        cluster.logs()
    );
    // Every rank has had its turn, and a few seconds more.
    let quiet_until = posted + group_wait + PEER_TIMEOUT * 2 + Duration::from_secs(4);
    std::thread::sleep(quiet_until.saturating_duration_since(Instant::now()));
    for received in server.received() {
        println!(
            "{} notified by {} {} ms after the POST",
            received.group_key(),
            cluster.name_of_port(received.sender_port()),
            millis(received.at - posted)
        );
    }
    assert_once_per_group(&server, &names, &cluster);

    let mut sent = 0;
    for (index, name) in NAMES.iter().enumerate() {
        let node = cluster.node(index);
        let (owner, in_place, skipped) = (
            tocsin_counter(node, "sentAsOwner"),
            tocsin_counter(node, "sentInPlaceOfOwner"),
            tocsin_counter(node, "skippedSentByPeer"),
        );
        println!(
            "{name}: sentAsOwner={owner} sentInPlaceOfOwner={in_place} skippedSentByPeer={skipped}"
        );
        sent += owner + in_place;
    }
    assert_eq!(sent, names.len() as u64, "the nodes' counters of sends");
}

#[test]
fn killing_the_owner_during_group_wait_still_delivers_once() {
    let server = HookServer::start();
    let group_wait = Duration::from_secs(5);
    let mut cluster = Cluster::start(&config(&server.url("/hook"), group_wait), PEER_TIMEOUT);
    // Nine groups: node a owns at least one of them unless chance says (2/3)^9 ≈ 2.6 %.
    let names: Vec<String> = (1..=9).map(|i| format!("Failover{i}")).collect();
    let batch = alerts(&names, jiff::Timestamp::now());
    let posted = Instant::now();
    for index in 0..3 {
        post_alerts(cluster.node(index), &batch);
    }
    let a_port = cluster
        .node(0)
        .address
        .rsplit(':')
        .next()
        .and_then(|port| port.parse::<u16>().ok());
    kill(&mut cluster, 0, "a", posted);

    let bound = group_wait + PEER_TIMEOUT * 2 + Duration::from_secs(5);
    wait_for_every_group(&server, &names, bound + Duration::from_secs(10), &cluster);
    // Anything late or twice would show in the next few seconds.
    std::thread::sleep(PEER_TIMEOUT * 2);
    let received = server.received();
    for notification in &received {
        println!(
            "{} notified by {} {} ms after the POST",
            notification.group_key(),
            cluster.name_of_port(notification.sender_port()),
            millis(notification.at - posted)
        );
    }
    assert_once_per_group(&server, &names, &cluster);
    for notification in &received {
        assert_ne!(notification.sender_port(), a_port, "the killed node sent");
        let delay = notification.at - posted;
        assert!(
            delay <= bound,
            "{} delivered {delay:?} after the POST, over {bound:?}",
            notification.group_key()
        );
    }
    for index in [1, 2] {
        let node = cluster.node(index);
        println!(
            "{}: sentAsOwner={} sentInPlaceOfOwner={} skippedSentByPeer={} deferredTotal={}",
            NAMES[index],
            tocsin_counter(node, "sentAsOwner"),
            tocsin_counter(node, "sentInPlaceOfOwner"),
            tocsin_counter(node, "skippedSentByPeer"),
            tocsin_counter(node, "deferredTotal"),
        );
    }
}

#[test]
fn a_stopped_node_resumes_and_converges() {
    let cluster = Cluster::start(
        &config("http://127.0.0.1:9/", Duration::from_secs(3)),
        PEER_TIMEOUT,
    );
    let mut ids = BTreeSet::new();
    ids.insert(create_silence(cluster.node(0), "BeforeStop"));
    assert!(wait_for(Duration::from_secs(5), || has_all(
        cluster.node(2),
        &ids
    )));

    cluster.node(2).signal("STOP");
    let stopped = Instant::now();
    ids.insert(create_silence(cluster.node(0), "WhileStopped1"));
    let a_and_b: BTreeSet<String> = ["a", "b"].iter().map(|name| name.to_string()).collect();
    let detected = wait_for(Duration::from_secs(20), || {
        [0, 1]
            .iter()
            .all(|index| peer_names(&cluster_status(cluster.node(*index))) == a_and_b)
    });
    let detection = stopped.elapsed();
    if !detected {
        cluster.node(2).signal("CONT");
    }
    assert!(
        detected,
        "a and b still list c {detection:?} after SIGSTOP\n{}",
        cluster.logs()
    );
    println!(
        "a and b dropped the stopped c after {} ms",
        millis(detection)
    );
    ids.insert(create_silence(cluster.node(0), "WhileStopped2"));
    ids.insert(create_silence(cluster.node(1), "WhileStopped3"));
    std::thread::sleep(Duration::from_secs(6).saturating_sub(stopped.elapsed()));

    cluster.node(2).signal("CONT");
    let resumed = Instant::now();
    let caught_up = wait_for(Duration::from_secs(15), || has_all(cluster.node(2), &ids));
    let caught_up_after = resumed.elapsed();
    assert!(
        caught_up,
        "c lacks {:?} {caught_up_after:?} after SIGCONT\n{}",
        ids.difference(&silence_ids(cluster.node(2)))
            .collect::<Vec<_>>(),
        cluster.logs()
    );
    println!(
        "c held all {} silences {} ms after SIGCONT",
        ids.len(),
        millis(caught_up_after)
    );
    cluster.wait_settled(&[0, 1, 2]);
    println!(
        "all three list all three members {} ms after SIGCONT",
        millis(resumed.elapsed())
    );
}

#[test]
fn a_restarted_node_catches_up_on_silences_created_while_it_was_down() {
    // A long peer timeout makes the settle timeout long too: c becomes ready by syncing.
    let peer_timeout = Duration::from_secs(10);
    let mut cluster = Cluster::start(
        &config("http://127.0.0.1:9/", Duration::from_secs(3)),
        peer_timeout,
    );
    let before: BTreeSet<String> = [
        create_silence(cluster.node(2), "CreatedOnC"),
        create_silence(cluster.node(0), "CreatedOnA"),
    ]
    .into_iter()
    .collect();
    assert!(wait_for(Duration::from_secs(5), || has_all(
        cluster.node(2),
        &before
    )));

    cluster.node(2).signal("TERM");
    let exit = cluster.node_mut(2).wait_exit(Duration::from_secs(15));
    assert!(
        exit.is_some_and(|status| status.success()),
        "c's exit: {exit:?}\n{}",
        cluster.node(2).log()
    );
    cluster.nodes[2] = None;
    let during: BTreeSet<String> = [
        create_silence(cluster.node(0), "WhileDown1"),
        create_silence(cluster.node(1), "WhileDown2"),
    ]
    .into_iter()
    .collect();

    // Alone (no cluster flags) on the same storage: what c has is what it kept on disk.
    {
        let spec = &cluster.specs[2];
        let alone =
            RunningNode::start(&spec.dir, &["--config.file", spec.config.to_str().unwrap()]);
        let on_disk = silence_ids(&alone);
        assert!(
            on_disk.is_superset(&before),
            "c lost silences over its restart: has {on_disk:?}, had {before:?}\n{}",
            alone.log()
        );
        assert!(
            on_disk.is_disjoint(&during),
            "c alone cannot know {during:?}"
        );
    }

    let restarted = Instant::now();
    cluster.nodes[2] = Some(cluster.specs[2].start());
    let c = cluster.node(2);
    assert!(
        wait_for(Duration::from_secs(30), || common::get(&c.url("/-/ready"))
            .0
            == 200),
        "c never became ready again\n{}",
        c.log()
    );
    let held = silence_ids(c);
    println!(
        "restarted c ready {} ms after start; holds {} silences",
        millis(restarted.elapsed()),
        held.len()
    );
    let settled_line = c
        .log()
        .lines()
        .find(|line| line.contains("cluster settled"))
        .unwrap_or_default()
        .to_string();
    assert!(
        settled_line.contains("synced=true"),
        "c settled without syncing: {settled_line}\n{}",
        c.log()
    );
    let all: BTreeSet<String> = before.union(&during).cloned().collect();
    assert!(
        held.is_superset(&all),
        "c ready without {:?}\n{}",
        all.difference(&held).collect::<Vec<_>>(),
        cluster.logs()
    );
    cluster.wait_settled(&[0, 1, 2]);
}

#[test]
fn nodes_with_a_foreign_certificate_or_cluster_name_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs");
    make_certs(&certs, &["a", "y"]);
    let foreign = dir.path().join("other");
    make_certs(&foreign, &["x"]);
    let config_file = dir.path().join("tocsin.yml");
    std::fs::write(
        &config_file,
        config("http://127.0.0.1:9/", Duration::from_secs(3)),
    )
    .unwrap();
    let a_port = free_udp_port();
    let spec = |name: &str, tls_dir: &Path, peers: Vec<u16>, cluster_name: Option<&str>| NodeSpec {
        name: name.to_string(),
        dir: dir.path().join(name),
        config: config_file.clone(),
        cluster_port: if name == "a" { a_port } else { free_udp_port() },
        peers,
        tls_dir: tls_dir.to_path_buf(),
        peer_timeout: PEER_TIMEOUT,
        cluster_name: cluster_name.map(str::to_string),
    };
    // a runs alone: it dials no one, so whatever it refuses came to it.
    let a = spec("a", &certs, Vec::new(), None).start();
    let x = spec("x", &foreign, vec![a_port], None).start();
    let y = spec("y", &certs, vec![a_port], Some("other")).start();
    let started = Instant::now();

    let only_a: BTreeSet<String> = ["a".to_string()].into_iter().collect();
    let refused = |reason: &str| {
        metric(
            &a,
            "tocsin_cluster_connections_refused",
            &format!("reason=\"{reason}\""),
        )
    };
    let mut seen = false;
    while started.elapsed() < Duration::from_secs(6) || !seen {
        let members = peer_names(&cluster_status(&a));
        assert_eq!(
            members,
            only_a,
            "a let a refused node in\n--- a:\n{}",
            a.log()
        );
        for (node, name) in [(&x, "x"), (&y, "y")] {
            let members = peer_names(&cluster_status(node));
            assert!(
                !members.contains("a"),
                "{name} joined a: {members:?}\n{}",
                node.log()
            );
        }
        seen = refused("tls") > 0.0 && refused("cluster_name") > 0.0;
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "a's refusals: tls={} cluster_name={}\n--- a:\n{}\n--- x:\n{}\n--- y:\n{}",
            refused("tls"),
            refused("cluster_name"),
            a.log(),
            x.log(),
            y.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    println!(
        "a refused tls={} cluster_name={} within {} ms",
        refused("tls"),
        refused("cluster_name"),
        millis(started.elapsed())
    );
}

#[test]
fn ready_is_503_while_settling() {
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs");
    make_certs(&certs, &["lonely"]);
    let config_file = dir.path().join("tocsin.yml");
    std::fs::write(
        &config_file,
        config("http://127.0.0.1:9/", Duration::from_secs(3)),
    )
    .unwrap();
    let spec = NodeSpec {
        name: "lonely".to_string(),
        dir: dir.path().join("lonely"),
        config: config_file,
        cluster_port: free_udp_port(),
        // A peer that never comes up.
        peers: vec![free_udp_port()],
        tls_dir: certs,
        peer_timeout: PEER_TIMEOUT,
        cluster_name: None,
    };
    let spawned = Instant::now();
    let node = spec.start();
    let mut checks = 0;
    while spawned.elapsed() < Duration::from_secs(1) || checks == 0 {
        let (ready, body) = common::get(&node.url("/-/ready"));
        assert_eq!(
            ready,
            503,
            "ready {:?} after start: {body}",
            spawned.elapsed()
        );
        assert_eq!(cluster_status(&node)["status"], "settling");
        checks += 1;
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        wait_for(Duration::from_secs(15), || common::get(
            &node.url("/-/ready")
        )
        .0 == 200),
        "never ready\n{}",
        node.log()
    );
    let ready_after = spawned.elapsed();
    println!(
        "ready {} ms after spawn ({checks} checks said 503)",
        millis(ready_after)
    );
    assert!(
        ready_after >= PEER_TIMEOUT,
        "ready after {ready_after:?}, before the settle timeout"
    );
    assert!(
        ready_after <= PEER_TIMEOUT + Duration::from_secs(6),
        "ready only after {ready_after:?}"
    );
    assert_eq!(cluster_status(&node)["status"], "ready");
    assert_eq!(
        metric(&node, "tocsin_cluster_settled", ""),
        1.0,
        "tocsin_cluster_settled"
    );
}

#[test]
fn killing_the_owner_at_its_flush_hands_its_groups_to_the_next_rank() {
    let server = HookServer::start();
    let group_wait = Duration::from_secs(1);
    let config_text = config(&server.url("/hook"), group_wait);
    let names: Vec<String> = (1..=6).map(|i| format!("Handover{i}")).collect();

    // Who owns what: ranks depend only on the node names and the group, so a first healthy
    // cluster shows each group's owner, which a fresh cluster with the same names shares.
    let owners: BTreeMap<String, String> = {
        let cluster = Cluster::start(&config_text, PEER_TIMEOUT);
        let batch = alerts(&names, jiff::Timestamp::now());
        for index in 0..3 {
            post_alerts(cluster.node(index), &batch);
        }
        assert!(
            wait_for(group_wait + Duration::from_secs(10), || server
                .per_group()
                .len()
                == names.len()),
            "healthy cluster: {:?}\n{}",
            server.per_group(),
            cluster.logs()
        );
        let in_place: u64 = (0..3)
            .map(|index| tocsin_counter(cluster.node(index), "sentInPlaceOfOwner"))
            .sum();
        assert_eq!(in_place, 0, "a healthy cluster's owners send");
        assert_once_per_group(&server, &names, &cluster);
        server
            .received()
            .iter()
            .map(|received| {
                (
                    received.group_key(),
                    cluster.name_of_port(received.sender_port()),
                )
            })
            .collect()
    };
    let mut owned: BTreeMap<&str, usize> = BTreeMap::new();
    for owner in owners.values() {
        *owned.entry(owner.as_str()).or_insert(0) += 1;
    }
    let (victim_name, victim_groups) = owned
        .iter()
        .max_by_key(|(_, groups)| **groups)
        .map(|(name, groups)| (name.to_string(), *groups))
        .unwrap();
    let victim = NAMES.iter().position(|name| *name == victim_name).unwrap();
    println!("owners: {owners:?}; killing {victim_name}, owner of {victim_groups} groups");
    server.clear();

    let mut cluster = Cluster::start(&config_text, PEER_TIMEOUT);
    let batch = alerts(&names, jiff::Timestamp::now());
    let posted = Instant::now();
    for index in 0..3 {
        post_alerts(cluster.node(index), &batch);
    }
    let victim_port = cluster
        .node(victim)
        .address
        .rsplit(':')
        .next()
        .and_then(|port| port.parse::<u16>().ok());
    kill(&mut cluster, victim, &victim_name, posted);

    let bound = group_wait + PEER_TIMEOUT * 2 + Duration::from_secs(5);
    wait_for_every_group(&server, &names, bound + Duration::from_secs(10), &cluster);
    std::thread::sleep(PEER_TIMEOUT * 2);
    let received = server.received();
    for notification in &received {
        println!(
            "{} (owner {}) notified by {} {} ms after the POST",
            notification.group_key(),
            owners[&notification.group_key()],
            cluster.name_of_port(notification.sender_port()),
            millis(notification.at - posted)
        );
    }
    assert_once_per_group(&server, &names, &cluster);
    for notification in &received {
        assert_ne!(
            notification.sender_port(),
            victim_port,
            "the killed node sent"
        );
        let owner = &owners[&notification.group_key()];
        if *owner != victim_name {
            assert_eq!(
                &cluster.name_of_port(notification.sender_port()),
                owner,
                "{} went out from a node other than its live owner",
                notification.group_key()
            );
        }
        let delay = notification.at - posted;
        assert!(
            delay <= bound,
            "{} delivered {delay:?} after the POST, over {bound:?}",
            notification.group_key()
        );
    }
    let mut sent = 0;
    for index in (0..3).filter(|index| *index != victim) {
        let node = cluster.node(index);
        sent += tocsin_counter(node, "sentAsOwner") + tocsin_counter(node, "sentInPlaceOfOwner");
        println!(
            "{}: sentAsOwner={} sentInPlaceOfOwner={} skippedSentByPeer={} deferredTotal={}",
            NAMES[index],
            tocsin_counter(node, "sentAsOwner"),
            tocsin_counter(node, "sentInPlaceOfOwner"),
            tocsin_counter(node, "skippedSentByPeer"),
            tocsin_counter(node, "deferredTotal"),
        );
    }
    assert_eq!(sent, names.len() as u64, "the survivors' counters of sends");
}
