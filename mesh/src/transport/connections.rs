//! QUIC connections between nodes: accepting and dialling, authenticating the peer's name,
//! reading its streams, and the per-address links that write ours.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::time::Instant;
use tracing::{debug, warn};

use super::stats::MeshStats;
use super::wire::{ReadFailure, StreamKind, read_message, write_message};
use super::{Incoming, Shared, lock};
use crate::tls::{connection_node_name, dial_server_name};

/// A handshake (TLS and hello) that takes longer than this is abandoned.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// Handshakes in progress at once; more incoming connections are refused until some finish.
pub(crate) const MAX_CONCURRENT_HANDSHAKES: usize = 64;
/// Streams of one connection being read at once; further streams wait in QUIC flow control.
const MAX_STREAMS_IN_FLIGHT: usize = 64;
/// Addresses we hold outgoing queues for; chitchat only gossips to known nodes and seeds.
const MAX_LINKS: usize = 512;
/// Addresses remembered with the name authenticated there.
const MAX_VERIFIED_ADDRESSES: usize = 1024;
const GOSSIP_LINK_QUEUE: usize = 64;
/// Payloads waiting for one peer before `send` refuses more.
pub(crate) const REPLICATION_LINK_QUEUE: usize = 1024;
/// A link without gossip for this long is dropped (live peers are gossiped with every round).
const LINK_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
const INITIAL_DIAL_BACKOFF: Duration = Duration::from_millis(200);
const MAX_DIAL_BACKOFF: Duration = Duration::from_secs(5);
/// TLS alert `no_application_protocol`: our ALPN carries the cluster name.
const ALERT_NO_APPLICATION_PROTOCOL: u64 = 120;
/// QUIC encodes TLS alerts as transport error codes 0x100 + alert.
const CRYPTO_ERROR_BASE: u64 = 0x100;

/// An authenticated connection and the peer's node name.
pub(crate) struct PeerConnection {
    pub(crate) name: String,
    pub(crate) connection: quinn::Connection,
}

/// Outgoing queues towards one address; each is drained by its own task so a large replication
/// payload never delays heartbeats.
pub(crate) struct Link {
    gossip: mpsc::Sender<Bytes>,
    replication: mpsc::Sender<Bytes>,
}

/// Why a payload could not be queued.
pub(crate) enum EnqueueError {
    Full,
    Closed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    Tls,
    ClusterName,
    DuplicateName,
    NameMismatch,
}

impl Shared {
    fn refuse(&self, refusal: Refusal, peer: SocketAddr, detail: &str) {
        let counter = match refusal {
            Refusal::Tls => &self.stats.connections_refused_tls,
            Refusal::ClusterName => &self.stats.connections_refused_cluster_name,
            Refusal::DuplicateName => &self.stats.connections_refused_duplicate_name,
            Refusal::NameMismatch => &self.stats.connections_refused_name_mismatch,
        };
        MeshStats::increment(counter);
        warn!(%peer, reason = ?refusal, detail, "mesh connection refused");
    }

    /// Counts a failed handshake by its TLS alert: ALPN (cluster name) or certificate.
    fn count_handshake_failure(&self, peer: SocketAddr, error: &quinn::ConnectionError) {
        let code = match error {
            quinn::ConnectionError::TransportError(error) => error.code,
            quinn::ConnectionError::ConnectionClosed(close) => close.error_code,
            _ => {
                debug!(%peer, %error, "mesh handshake failed");
                return;
            }
        };
        let code = u64::from(code);
        if !(CRYPTO_ERROR_BASE..CRYPTO_ERROR_BASE + 0x100).contains(&code) {
            debug!(%peer, %error, "mesh handshake failed");
            return;
        }
        let refusal = if code - CRYPTO_ERROR_BASE == ALERT_NO_APPLICATION_PROTOCOL {
            Refusal::ClusterName
        } else {
            Refusal::Tls
        };
        self.refuse(refusal, peer, &error.to_string());
    }

    /// The open connection to or from `address`, if any.
    fn open_connection(&self, address: SocketAddr) -> Option<quinn::Connection> {
        let connections = lock(&self.connections);
        let peer = connections.get(&address)?;
        peer.connection
            .close_reason()
            .is_none()
            .then(|| peer.connection.clone())
    }

    /// Queues chitchat bytes for `to`; dropped (and counted) when the queue is full.
    pub(crate) fn enqueue_gossip(self: &Arc<Self>, to: SocketAddr, bytes: Bytes) {
        if to == self.local_address {
            return;
        }
        if self.enqueue(to, StreamKind::Gossip, bytes).is_err() {
            MeshStats::increment(&self.stats.gossip_messages_dropped);
        }
    }

    /// Queues a message of `kind` on the link to `to`, creating the link if needed.
    pub(crate) fn enqueue(
        self: &Arc<Self>,
        to: SocketAddr,
        kind: StreamKind,
        payload: Bytes,
    ) -> Result<(), EnqueueError> {
        if *self.shutdown.borrow() {
            return Err(EnqueueError::Closed);
        }
        let mut links = lock(&self.links);
        if !links.contains_key(&to) {
            if links.len() >= MAX_LINKS {
                return Err(EnqueueError::Full);
            }
            links.insert(to, self.spawn_link(to));
        }
        let link = links.get(&to).ok_or(EnqueueError::Closed)?;
        let queue = match kind {
            StreamKind::Replication => &link.replication,
            _ => &link.gossip,
        };
        queue.try_send(payload).map_err(|error| match error {
            mpsc::error::TrySendError::Full(_) => EnqueueError::Full,
            mpsc::error::TrySendError::Closed(_) => EnqueueError::Closed,
        })
    }

    fn spawn_link(self: &Arc<Self>, address: SocketAddr) -> Link {
        let (gossip_tx, gossip_rx) = mpsc::channel(GOSSIP_LINK_QUEUE);
        let (replication_tx, replication_rx) = mpsc::channel(REPLICATION_LINK_QUEUE);
        let dialer = Arc::new(Dialer {
            address,
            state: tokio::sync::Mutex::new(DialState {
                backoff: INITIAL_DIAL_BACKOFF,
                next_attempt: None,
            }),
        });
        tokio::spawn(write_link(
            self.clone(),
            dialer.clone(),
            gossip_rx,
            StreamKind::Gossip,
        ));
        tokio::spawn(write_link(
            self.clone(),
            dialer,
            replication_rx,
            StreamKind::Replication,
        ));
        Link {
            gossip: gossip_tx,
            replication: replication_tx,
        }
    }

    fn remember_verified(&self, address: SocketAddr, name: &str) {
        let mut verified = lock(&self.verified);
        if verified.len() >= MAX_VERIFIED_ADDRESSES
            && !verified.contains_key(&address)
            && let Some(evicted) = verified.keys().next().copied()
        {
            verified.remove(&evicted);
        }
        verified.insert(address, name.to_string());
    }
}

/// Dials one address for a link's writers, backing off after failures.
struct Dialer {
    address: SocketAddr,
    state: tokio::sync::Mutex<DialState>,
}

struct DialState {
    backoff: Duration,
    next_attempt: Option<Instant>,
}

impl Dialer {
    async fn connection(&self, shared: &Arc<Shared>) -> Option<quinn::Connection> {
        if let Some(connection) = shared.open_connection(self.address) {
            return Some(connection);
        }
        // One dial at a time per address; the other writer reuses its result.
        let mut state = self.state.lock().await;
        if let Some(connection) = shared.open_connection(self.address) {
            return Some(connection);
        }
        if let Some(next_attempt) = state.next_attempt
            && Instant::now() < next_attempt
        {
            return None;
        }
        match dial(shared, self.address).await {
            Some(connection) => {
                state.backoff = INITIAL_DIAL_BACKOFF;
                state.next_attempt = None;
                Some(connection)
            }
            None => {
                state.next_attempt = Some(Instant::now() + state.backoff);
                state.backoff = (state.backoff * 2).min(MAX_DIAL_BACKOFF);
                None
            }
        }
    }
}

async fn write_link(
    shared: Arc<Shared>,
    dialer: Arc<Dialer>,
    mut queue: mpsc::Receiver<Bytes>,
    kind: StreamKind,
) {
    let mut shutdown = shared.shutdown.subscribe();
    loop {
        let next = tokio::select! {
            _ = shutdown.changed() => break,
            next = tokio::time::timeout(LINK_IDLE_TIMEOUT, queue.recv()) => next,
        };
        let payload = match next {
            Ok(Some(payload)) => payload,
            Ok(None) => break,
            Err(_idle) if kind == StreamKind::Gossip => {
                // Dropping the link's senders lets the replication writer drain and end too.
                lock(&shared.links).remove(&dialer.address);
                break;
            }
            Err(_idle) => continue,
        };
        let written = match dialer.connection(&shared).await {
            Some(connection) => write_message(&connection, kind, &payload).await.is_ok(),
            None => false,
        };
        let stats = &shared.stats;
        let length = payload.len() as u64;
        match (kind, written) {
            (StreamKind::Replication, true) => {
                MeshStats::increment(&stats.replication_messages_sent);
                MeshStats::add(&stats.replication_bytes_sent, length);
            }
            (StreamKind::Replication, false) => {
                MeshStats::increment(&stats.payloads_dropped_send_error);
            }
            (_, true) => {
                MeshStats::increment(&stats.gossip_messages_sent);
                MeshStats::add(&stats.gossip_bytes_sent, length);
            }
            (_, false) => MeshStats::increment(&stats.gossip_messages_dropped),
        }
    }
}

/// Dials `address` and authenticates the peer; the connection is registered and read from.
async fn dial(shared: &Arc<Shared>, address: SocketAddr) -> Option<quinn::Connection> {
    let connecting = match shared.endpoint.connect(address, dial_server_name()) {
        Ok(connecting) => connecting,
        Err(error) => {
            debug!(peer = %address, %error, "cannot dial");
            return None;
        }
    };
    let connection = match tokio::time::timeout(HANDSHAKE_TIMEOUT, connecting).await {
        Ok(Ok(connection)) => connection,
        Ok(Err(error)) => {
            shared.count_handshake_failure(address, &error);
            return None;
        }
        Err(_elapsed) => {
            debug!(peer = %address, "mesh handshake timed out");
            return None;
        }
    };
    establish(shared, connection.clone())
        .await
        .map(|_| connection)
}

/// Accepts connections until shutdown.
pub(crate) async fn accept_loop(shared: Arc<Shared>) {
    let mut shutdown = shared.shutdown.subscribe();
    let handshakes = Arc::new(Semaphore::new(MAX_CONCURRENT_HANDSHAKES));
    loop {
        let incoming = tokio::select! {
            _ = shutdown.changed() => break,
            incoming = shared.endpoint.accept() => incoming,
        };
        let Some(incoming) = incoming else { break };
        match handshakes.clone().try_acquire_owned() {
            Ok(permit) => {
                tokio::spawn(accept_one(shared.clone(), incoming, permit));
            }
            Err(_) => incoming.refuse(),
        }
    }
}

async fn accept_one(shared: Arc<Shared>, incoming: quinn::Incoming, _permit: OwnedSemaphorePermit) {
    let peer = incoming.remote_address();
    let connecting = match incoming.accept() {
        Ok(connecting) => connecting,
        Err(error) => {
            shared.count_handshake_failure(peer, &error);
            return;
        }
    };
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, connecting).await {
        Ok(Ok(connection)) => {
            establish(&shared, connection).await;
        }
        Ok(Err(error)) => shared.count_handshake_failure(peer, &error),
        Err(_elapsed) => debug!(%peer, "mesh handshake timed out"),
    }
}

/// After the TLS handshake: exchanges hellos, checks the peer's name, registers the connection
/// and starts reading its streams. Returns the peer's authenticated name.
async fn establish(shared: &Arc<Shared>, connection: quinn::Connection) -> Option<String> {
    let peer = connection.remote_address();
    let certificate_name = if shared.insecure {
        None
    } else {
        match connection_node_name(&connection) {
            Some(name) => Some(name),
            None => {
                shared.refuse(Refusal::Tls, peer, "certificate without a DNS name");
                connection.close(1u32.into(), b"certificate without a name");
                return None;
            }
        }
    };
    let (sent, hello) = tokio::join!(
        write_message(&connection, StreamKind::Hello, shared.node_name.as_bytes()),
        tokio::time::timeout(HANDSHAKE_TIMEOUT, receive_hello(&connection)),
    );
    let hello = match hello {
        Ok(Ok(name)) => name,
        Ok(Err(ReadFailure::Closed)) | Err(_) => {
            connection.close(1u32.into(), b"no hello");
            return None;
        }
        Ok(Err(ReadFailure::Oversized)) => {
            MeshStats::increment(&shared.stats.messages_refused_oversized);
            connection.close(1u32.into(), b"bad hello");
            return None;
        }
        Ok(Err(ReadFailure::Malformed)) => {
            MeshStats::increment(&shared.stats.messages_refused_malformed);
            connection.close(1u32.into(), b"bad hello");
            return None;
        }
    };
    if sent.is_err() {
        return None;
    }
    if let Some(certificate_name) = &certificate_name
        && *certificate_name != hello
    {
        let detail = format!("certificate is for {certificate_name:?}, hello says {hello:?}");
        shared.refuse(Refusal::NameMismatch, peer, &detail);
        connection.close(1u32.into(), b"name does not match certificate");
        return None;
    }
    let name = hello;
    if name == shared.node_name {
        // Our own address under another form (e.g. in the peer list), or a misconfiguration.
        debug!(%peer, "connection to a node with our own name closed");
        connection.close(0u32.into(), b"self");
        return None;
    }
    {
        let mut connections = lock(&shared.connections);
        let elsewhere = connections.iter().find(|(address, other)| {
            **address != peer && other.name == name && other.connection.close_reason().is_none()
        });
        if let Some((address, _)) = elsewhere {
            let detail = format!("{name:?} is already connected from {address}");
            drop(connections);
            shared.refuse(Refusal::DuplicateName, peer, &detail);
            connection.close(1u32.into(), b"duplicate name");
            return None;
        }
        connections.insert(
            peer,
            PeerConnection {
                name: name.clone(),
                connection: connection.clone(),
            },
        );
    }
    shared.remember_verified(peer, &name);
    MeshStats::increment(&shared.stats.connections_open);
    debug!(%peer, %name, "mesh connection established");
    tokio::spawn(read_streams(shared.clone(), connection, name.clone()));
    Some(name)
}

async fn receive_hello(connection: &quinn::Connection) -> Result<String, ReadFailure> {
    let mut stream = connection
        .accept_uni()
        .await
        .map_err(|_| ReadFailure::Closed)?;
    let (kind, body) = read_message(&mut stream).await?;
    if kind != StreamKind::Hello {
        return Err(ReadFailure::Malformed);
    }
    let name = String::from_utf8(body).map_err(|_| ReadFailure::Malformed)?;
    let valid = !name.is_empty()
        && name.len() <= 128
        && name
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'.' | b'_' | b'-'));
    if valid {
        Ok(name)
    } else {
        Err(ReadFailure::Malformed)
    }
}

async fn read_streams(shared: Arc<Shared>, connection: quinn::Connection, name: String) {
    let peer = connection.remote_address();
    let in_flight = Arc::new(Semaphore::new(MAX_STREAMS_IN_FLIGHT));
    let mut shutdown = shared.shutdown.subscribe();
    loop {
        let stream = tokio::select! {
            _ = shutdown.changed() => break,
            stream = connection.accept_uni() => stream,
        };
        let Ok(stream) = stream else { break };
        let Ok(permit) = in_flight.clone().acquire_owned().await else {
            break;
        };
        tokio::spawn(read_stream(
            shared.clone(),
            stream,
            name.clone(),
            peer,
            permit,
        ));
    }
    {
        let mut connections = lock(&shared.connections);
        let same = connections
            .get(&peer)
            .is_some_and(|registered| registered.connection.stable_id() == connection.stable_id());
        if same {
            connections.remove(&peer);
        }
    }
    MeshStats::decrement(&shared.stats.connections_open);
    debug!(%peer, %name, reason = ?connection.close_reason(), "mesh connection closed");
}

async fn read_stream(
    shared: Arc<Shared>,
    mut stream: quinn::RecvStream,
    name: String,
    peer: SocketAddr,
    _permit: OwnedSemaphorePermit,
) {
    let stats = &shared.stats;
    match read_message(&mut stream).await {
        Ok((StreamKind::Gossip, body)) => {
            MeshStats::increment(&stats.gossip_messages_received);
            MeshStats::add(&stats.gossip_bytes_received, body.len() as u64);
            if shared.gossip_received.try_send((peer, body)).is_err() {
                MeshStats::increment(&stats.gossip_messages_dropped);
            }
        }
        Ok((StreamKind::Replication, body)) => {
            MeshStats::increment(&stats.replication_messages_received);
            MeshStats::add(&stats.replication_bytes_received, body.len() as u64);
            let incoming = Incoming {
                from: name,
                payload: Bytes::from(body),
            };
            // Waiting here holds the stream, and QUIC flow control slows the peer down.
            let _ = shared.replication_received.send(incoming).await;
        }
        Ok((StreamKind::Hello, _)) | Err(ReadFailure::Malformed) => {
            MeshStats::increment(&stats.messages_refused_malformed);
            debug!(%peer, %name, "malformed mesh message");
        }
        Err(ReadFailure::Oversized) => {
            MeshStats::increment(&stats.messages_refused_oversized);
            warn!(%peer, %name, "oversized mesh message refused");
        }
        Err(ReadFailure::Closed) => {}
    }
}

/// Records a chitchat identity whose name differs from the one authenticated at its address.
pub(crate) fn refuse_name_mismatch(
    shared: &Shared,
    address: SocketAddr,
    claimed: &str,
    actual: &str,
) {
    let detail = format!("gossip names {claimed:?}, its certificate {actual:?}");
    shared.refuse(Refusal::NameMismatch, address, &detail);
}
