//! The mesh over real UDP on loopback: discovery, keys, payloads, refusals, failure detection.
// The helpers below are test code too: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use tocsin_mesh::certs::create_certs;
use tocsin_mesh::{ClusterSettings, Incoming, Mesh, MeshOptions};
use tokio::sync::mpsc;

/// Generous: the machine running the tests may be busy.
const CONVERGENCE: Duration = Duration::from_secs(20);

fn options(tls_dir: &Path, name: &str, peers: &[&Mesh]) -> MeshOptions {
    let mut settings = ClusterSettings::new(name.to_string());
    settings.listen_address = Some("127.0.0.1:0".parse().unwrap());
    settings.tls_dir = tls_dir.to_path_buf();
    settings.peers = peers
        .iter()
        .map(|peer| peer.local_address().to_string())
        .collect();
    let mut options = MeshOptions::new(settings);
    options.gossip_interval = Duration::from_millis(100);
    options.metadata = BTreeMap::from([("version".to_string(), "test".to_string())]);
    options
}

async fn start(options: MeshOptions) -> (Mesh, mpsc::Receiver<Incoming>) {
    Mesh::start(options).await.unwrap()
}

fn names(mesh: &Mesh) -> Vec<String> {
    mesh.members()
        .into_iter()
        .map(|member| member.name)
        .collect()
}

async fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + CONVERGENCE;
    while !condition() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn certs(dir: &Path, names: &[&str]) {
    let names: Vec<String> = names.iter().map(|name| name.to_string()).collect();
    create_certs(dir, &names).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_discover_each_other_share_keys_and_payloads() {
    let dir = tempfile::tempdir().unwrap();
    certs(dir.path(), &["a", "b", "c"]);
    let (a, mut a_incoming) = start(options(dir.path(), "a", &[])).await;
    let (b, _b_incoming) = start(options(dir.path(), "b", &[&a])).await;
    let (c, mut c_incoming) = start(options(dir.path(), "c", &[&a])).await;
    assert_eq!(names(&a), vec!["a"], "a node is its own member at once");

    let all = vec!["a".to_string(), "b".to_string(), "c".to_string()];
    for mesh in [&a, &b, &c] {
        wait_until("all see three members", || names(mesh) == all).await;
    }
    let seen_from_c = c.members();
    let member_a = seen_from_c
        .iter()
        .find(|member| member.name == "a")
        .unwrap();
    assert_eq!(member_a.cluster_address, a.local_address());
    assert_eq!(
        member_a.keys.get("version").map(String::as_str),
        Some("test")
    );
    assert!(!member_a.is_self);

    b.set_key("digest.silences", "42");
    wait_until("b's key reaches a and c", || {
        [&a, &c].iter().all(|mesh| {
            mesh.members().iter().any(|member| {
                member.name == "b"
                    && member.keys.get("digest.silences").map(String::as_str) == Some("42")
            })
        })
    })
    .await;

    assert!(b.send("a", Bytes::from_static(b"to a")));
    assert!(b.send("c", Bytes::from(vec![7u8; 1024 * 1024])));
    let received = tokio::time::timeout(CONVERGENCE, a_incoming.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(received.from, "b");
    assert_eq!(received.payload, Bytes::from_static(b"to a"));
    let received = tokio::time::timeout(CONVERGENCE, c_incoming.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(received.from, "b");
    assert_eq!(received.payload.len(), 1024 * 1024);

    assert!(!b.send("nobody", Bytes::from_static(b"x")));
    assert!(!b.send("b", Bytes::from_static(b"to myself")));
    assert!(!b.send(
        "a",
        Bytes::from(vec![
            0u8;
            tocsin_mesh::transport::MAX_REPLICATION_PAYLOAD_BYTES
                + 1
        ])
    ));
    let stats = b.stats();
    assert_eq!(stats.payloads_dropped_no_such_peer, 2);
    assert_eq!(stats.payloads_dropped_oversized, 1);
    assert!(stats.replication_messages_sent >= 1);
    assert!(stats.gossip_messages_sent > 0);
    assert!(stats.connections_open >= 1);
    assert!(a.stats().gossip_messages_received > 0);

    // A dead peer leaves the live set.
    c.shutdown().await;
    let two = vec!["a".to_string(), "b".to_string()];
    wait_until("c is dead for a and b", || {
        names(&a) == two && names(&b) == two
    })
    .await;

    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_from_another_ca_is_refused() {
    let good_dir = tempfile::tempdir().unwrap();
    let other_dir = tempfile::tempdir().unwrap();
    certs(good_dir.path(), &["a"]);
    certs(other_dir.path(), &["intruder"]);
    let (a, _a_incoming) = start(options(good_dir.path(), "a", &[])).await;
    let (intruder, _intruder_incoming) = start(options(other_dir.path(), "intruder", &[&a])).await;

    wait_until("a counts a TLS refusal", || {
        a.stats().connections_refused_tls > 0
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(names(&a), vec!["a"]);
    assert_eq!(names(&intruder), vec!["intruder"]);
    assert_eq!(a.stats().connections_open, 0);

    intruder.shutdown().await;
    a.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_of_another_cluster_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    certs(dir.path(), &["a", "b"]);
    let (a, _a_incoming) = start(options(dir.path(), "a", &[])).await;
    let mut other = options(dir.path(), "b", &[&a]);
    other.settings.cluster_name = "other-cluster".to_string();
    let (b, _b_incoming) = start(other).await;

    wait_until("a counts a cluster name refusal", || {
        a.stats().connections_refused_cluster_name > 0
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(names(&a), vec!["a"]);
    assert_eq!(names(&b), vec!["b"]);

    b.shutdown().await;
    a.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn insecure_mode_works_without_certificates() {
    let dir = tempfile::tempdir().unwrap();
    let mut a_options = options(dir.path(), "a", &[]);
    a_options.insecure = true;
    let (a, _a_incoming) = start(a_options).await;
    let mut b_options = options(dir.path(), "b", &[&a]);
    b_options.insecure = true;
    let (b, _b_incoming) = start(b_options).await;

    let both = vec!["a".to_string(), "b".to_string()];
    wait_until("both see each other", || {
        names(&a) == both && names(&b) == both
    })
    .await;

    b.shutdown().await;
    a.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secure_node_refuses_an_insecure_one() {
    let dir = tempfile::tempdir().unwrap();
    certs(dir.path(), &["a"]);
    let (a, _a_incoming) = start(options(dir.path(), "a", &[])).await;
    let mut b_options = options(dir.path(), "b", &[&a]);
    b_options.insecure = true;
    let (b, _b_incoming) = start(b_options).await;

    wait_until("a counts a TLS refusal", || {
        a.stats().connections_refused_tls > 0
    })
    .await;
    assert_eq!(names(&a), vec!["a"]);

    b.shutdown().await;
    a.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_reports_missing_certificates() {
    let dir = tempfile::tempdir().unwrap();
    let error = Mesh::start(options(dir.path(), "a", &[]))
        .await
        .unwrap_err();
    assert!(error.to_string().contains("ca.pem"), "{error}");

    let mut alone = options(dir.path(), "a", &[]);
    alone.settings.listen_address = None;
    assert!(Mesh::start(alone).await.is_err());
}
