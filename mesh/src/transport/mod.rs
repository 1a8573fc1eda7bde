//! The mesh: one QUIC endpoint per node carrying membership gossip (chitchat) and replication
//! payloads between nodes, authenticated with mutual TLS against the cluster CA.
// This is the shell around the sans-IO cores: it binds sockets, spawns tasks and reads clocks,
// which the crate denies by default.
#![allow(clippy::disallowed_methods)]

mod connections;
mod gossip;
mod stats;
mod wire;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use chitchat::{
    Chitchat, ChitchatConfig, ChitchatHandle, ChitchatId, FailureDetectorConfig, ProtocolVersion,
    spawn_chitchat,
};
use tokio::sync::{Notify, mpsc, watch};
use tracing::{info, warn};

pub use stats::MeshStatsSnapshot;
pub use wire::MAX_REPLICATION_PAYLOAD_BYTES;

use crate::tls::{MeshTls, TlsError};
use crate::{ClusterSettings, SettingsError};
use connections::{EnqueueError, PeerConnection, REPLICATION_LINK_QUEUE};
use stats::MeshStats;
use wire::StreamKind;

/// Default pause between gossip rounds.
pub const DEFAULT_GOSSIP_INTERVAL: Duration = Duration::from_millis(200);
/// Phi above which a peer is dead: about this many mean heartbeat intervals of silence, so
/// ~2–4 s at the default gossip interval.
const PHI_THRESHOLD: f64 = 12.0;
/// A dead node's state is forgotten after this; if it comes back it rejoins as new.
const DEAD_NODE_GRACE_PERIOD: Duration = Duration::from_secs(60);
/// Deleted keys are kept as tombstones this long, so peers that missed the deletion learn it.
const MARKED_FOR_DELETION_GRACE_PERIOD: Duration = Duration::from_secs(10 * 60);
/// Heartbeat intervals above this are ignored by the failure detector (pauses, not a rhythm).
const MAX_HEARTBEAT_INTERVAL: Duration = Duration::from_secs(10);
/// Received replication payloads waiting for the node.
const INCOMING_QUEUE: usize = 1024;
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(2);

/// How to start a mesh.
#[derive(Debug, Clone)]
pub struct MeshOptions {
    pub settings: ClusterSettings,
    /// `--cluster.insecure`: no certificates, no verification; for local experiments only.
    pub insecure: bool,
    pub gossip_interval: Duration,
    /// This node's initial keys, e.g. `api_url` and `version`.
    pub metadata: BTreeMap<String, String>,
}

impl MeshOptions {
    /// Options with the default gossip interval, secure, without metadata.
    pub fn new(settings: ClusterSettings) -> MeshOptions {
        MeshOptions {
            settings,
            insecure: false,
            gossip_interval: DEFAULT_GOSSIP_INTERVAL,
            metadata: BTreeMap::new(),
        }
    }
}

/// A live node of the cluster, as seen from here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub name: String,
    /// The address its mesh is reached at (its advertise address).
    pub cluster_address: SocketAddr,
    /// Its chitchat keys (metadata and state digests).
    pub keys: BTreeMap<String, String>,
    pub is_self: bool,
}

/// A replication payload from a peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incoming {
    /// The sender's node name, authenticated by its certificate (or its hello when insecure).
    pub from: String,
    pub payload: Bytes,
}

/// Why the mesh could not start.
#[derive(Debug, thiserror::Error)]
pub enum MeshError {
    #[error(transparent)]
    Settings(#[from] SettingsError),
    #[error("cluster.listen-address is not set: the node runs alone")]
    NotClustered,
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("cannot use the cluster port {address}/UDP: {source}")]
    Bind {
        address: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot start membership: {0}")]
    Membership(String),
}

/// State shared by the mesh's handle and tasks.
pub(crate) struct Shared {
    node_name: String,
    local_address: SocketAddr,
    endpoint: quinn::Endpoint,
    insecure: bool,
    stats: MeshStats,
    /// Authenticated connections by the peer's address (the one dialled or seen on accept).
    connections: Mutex<HashMap<SocketAddr, PeerConnection>>,
    /// The node name authenticated at each address: a chitchat node is only a member when its
    /// advertised address and name match one of these.
    verified: Mutex<HashMap<SocketAddr, String>>,
    links: Mutex<HashMap<SocketAddr, connections::Link>>,
    gossip_received: mpsc::Sender<(SocketAddr, Vec<u8>)>,
    replication_received: mpsc::Sender<Incoming>,
    members: watch::Sender<Vec<Member>>,
    /// Own keys set since the last membership round, latest value per key.
    pending_keys: Mutex<BTreeMap<String, String>>,
    keys_changed: Notify,
    shutdown: watch::Sender<bool>,
}

/// A poisoned lock only means another task panicked mid-update; the maps stay usable.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Handle on a running mesh; cheap to clone.
#[derive(Clone)]
pub struct Mesh {
    inner: Arc<MeshInner>,
}

struct MeshInner {
    shared: Arc<Shared>,
    chitchat: Mutex<Option<ChitchatHandle>>,
}

impl std::fmt::Debug for Mesh {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Mesh")
            .field("node_name", &self.inner.shared.node_name)
            .field("local_address", &self.inner.shared.local_address)
            .finish_non_exhaustive()
    }
}

impl Mesh {
    /// Binds the cluster port, loads TLS and joins the peers. Returns the handle and the
    /// receiver of replication payloads from peers.
    pub async fn start(
        options: MeshOptions,
    ) -> Result<(Mesh, mpsc::Receiver<Incoming>), MeshError> {
        let MeshOptions {
            settings,
            insecure,
            gossip_interval,
            metadata,
        } = options;
        settings.validate()?;
        let listen_address = settings.listen_address.ok_or(MeshError::NotClustered)?;
        let tls = MeshTls::load(&settings, insecure)?;
        if insecure {
            warn!(
                "cluster.insecure: mesh peers are neither authenticated nor verified; \
                 use only for local experiments"
            );
        }
        let bind_error = |source| MeshError::Bind {
            address: listen_address,
            source,
        };
        let mut endpoint =
            quinn::Endpoint::server(tls.server, listen_address).map_err(bind_error)?;
        endpoint.set_default_client_config(tls.client);
        let local_address = endpoint.local_addr().map_err(bind_error)?;
        let advertise_address = settings.advertise_address.unwrap_or(local_address);
        if advertise_address.ip().is_unspecified() {
            warn!(
                %advertise_address,
                "the mesh advertises an unspecified address; set cluster.advertise-address so peers can reach this node"
            );
        }

        let (gossip_received_tx, gossip_received_rx) = gossip::received_queue();
        let (replication_tx, replication_rx) = mpsc::channel(INCOMING_QUEUE);
        let (members_tx, _) = watch::channel(Vec::new());
        let (shutdown_tx, _) = watch::channel(false);
        let shared = Arc::new(Shared {
            node_name: settings.node_name.clone(),
            local_address,
            endpoint,
            insecure,
            stats: MeshStats::default(),
            connections: Mutex::new(HashMap::new()),
            verified: Mutex::new(HashMap::new()),
            links: Mutex::new(HashMap::new()),
            gossip_received: gossip_received_tx,
            replication_received: replication_tx,
            members: members_tx,
            pending_keys: Mutex::new(BTreeMap::new()),
            keys_changed: Notify::new(),
            shutdown: shutdown_tx,
        });
        tokio::spawn(connections::accept_loop(shared.clone()));

        let (transport, codec_channels) = gossip::channels(shared.clone(), gossip_received_rx);
        let started = async {
            gossip::start_codec(shared.clone(), codec_channels)
                .await
                .map_err(|error| MeshError::Membership(error.to_string()))?;
            let generation_id = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|elapsed| u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX))
                .unwrap_or(0);
            let self_id =
                ChitchatId::new(settings.node_name.clone(), generation_id, advertise_address);
            let config = ChitchatConfig {
                chitchat_id: self_id.clone(),
                cluster_id: settings.cluster_name.clone(),
                gossip_interval,
                listen_addr: local_address,
                seed_nodes: settings.peers.clone(),
                failure_detector_config: FailureDetectorConfig {
                    phi_threshold: PHI_THRESHOLD,
                    sampling_window_size: 1_000,
                    max_interval: MAX_HEARTBEAT_INTERVAL,
                    initial_interval: gossip_interval,
                    dead_node_grace_period: DEAD_NODE_GRACE_PERIOD,
                },
                marked_for_deletion_grace_period: MARKED_FOR_DELETION_GRACE_PERIOD,
                catchup_callback: None,
                extra_liveness_predicate: None,
                // Every node runs the same chitchat, so the compressed digest is understood.
                protocol_version: ProtocolVersion::V1,
            };
            let handle = spawn_chitchat(config, metadata.into_iter().collect(), &transport)
                .await
                .map_err(|error| MeshError::Membership(error.to_string()))?;
            Ok::<_, MeshError>((self_id, handle))
        };
        let (self_id, handle) = match started.await {
            Ok(started) => started,
            Err(error) => {
                shared.shutdown.send_replace(true);
                shared.endpoint.close(0u32.into(), b"start failed");
                return Err(error);
            }
        };
        let chitchat = handle.chitchat();
        {
            let guard = chitchat.lock().await;
            let members = live_members(&shared, &guard, &self_id, &mut HashSet::new());
            shared.members.send_replace(members);
        }
        tokio::spawn(membership_loop(
            shared.clone(),
            chitchat,
            self_id,
            gossip_interval,
        ));
        info!(
            node = %shared.node_name,
            %local_address,
            %advertise_address,
            peers = ?settings.peers,
            cluster = %settings.cluster_name,
            "mesh started"
        );
        let mesh = Mesh {
            inner: Arc::new(MeshInner {
                shared,
                chitchat: Mutex::new(Some(handle)),
            }),
        };
        Ok((mesh, replication_rx))
    }

    /// This node's name.
    pub fn node_name(&self) -> &str {
        &self.inner.shared.node_name
    }

    /// The bound UDP address of the cluster port.
    pub fn local_address(&self) -> SocketAddr {
        self.inner.shared.local_address
    }

    /// Live members including this node, sorted by name.
    pub fn members(&self) -> Vec<Member> {
        self.inner.shared.members.borrow().clone()
    }

    /// Notified when the live set or a member's keys change.
    pub fn subscribe_members(&self) -> watch::Receiver<Vec<Member>> {
        self.inner.shared.members.subscribe()
    }

    /// Sets one of this node's keys, gossiped to peers (applied within a gossip interval).
    pub fn set_key(&self, key: &str, value: &str) {
        let shared = &self.inner.shared;
        lock(&shared.pending_keys).insert(key.to_string(), value.to_string());
        shared.keys_changed.notify_one();
    }

    /// Queues `payload` for the live member named `to` (not this node). Returns false, and
    /// counts why, when it is dropped: no such member, above 16 MiB, or that peer's queue
    /// (1024 payloads) is full. Delivery is best effort; anti-entropy repairs losses.
    pub fn send(&self, to: &str, payload: Bytes) -> bool {
        let shared = &self.inner.shared;
        let stats = &shared.stats;
        if payload.len() > MAX_REPLICATION_PAYLOAD_BYTES {
            MeshStats::increment(&stats.payloads_dropped_oversized);
            return false;
        }
        let address = shared
            .members
            .borrow()
            .iter()
            .find(|member| member.name == to && !member.is_self)
            .map(|member| member.cluster_address);
        let Some(address) = address else {
            MeshStats::increment(&stats.payloads_dropped_no_such_peer);
            return false;
        };
        match shared.enqueue(address, StreamKind::Replication, payload) {
            Ok(()) => true,
            Err(EnqueueError::Full) => {
                MeshStats::increment(&stats.payloads_dropped_queue_full);
                false
            }
            Err(EnqueueError::Closed) => {
                MeshStats::increment(&stats.payloads_dropped_send_error);
                false
            }
        }
    }

    /// A copy of the counters.
    pub fn stats(&self) -> MeshStatsSnapshot {
        self.inner.shared.stats.snapshot()
    }

    /// Stops gossiping, closes every connection and the endpoint. Peers see this node dead
    /// after their failure detector's timeout.
    pub async fn shutdown(&self) {
        let shared = &self.inner.shared;
        shared.shutdown.send_replace(true);
        let handle = lock(&self.inner.chitchat).take();
        if let Some(handle) = handle {
            let _ = tokio::time::timeout(SHUTDOWN_TIMEOUT, handle.shutdown()).await;
        }
        shared.endpoint.close(0u32.into(), b"shutdown");
        let _ = tokio::time::timeout(SHUTDOWN_TIMEOUT, shared.endpoint.wait_idle()).await;
    }
}

/// Applies own keys and republishes the members whenever they change.
async fn membership_loop(
    shared: Arc<Shared>,
    chitchat: Arc<tokio::sync::Mutex<Chitchat>>,
    self_id: ChitchatId,
    interval: Duration,
) {
    let mut shutdown = shared.shutdown.subscribe();
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut reported_mismatches = HashSet::new();
    loop {
        tokio::select! {
            _ = shutdown.changed() => break,
            _ = ticker.tick() => {}
            _ = shared.keys_changed.notified() => {}
        }
        let pending = std::mem::take(&mut *lock(&shared.pending_keys));
        let members = {
            let mut guard = chitchat.lock().await;
            let own_state = guard.self_node_state();
            for (key, value) in pending {
                own_state.set(key, value);
            }
            live_members(&shared, &guard, &self_id, &mut reported_mismatches)
        };
        shared.members.send_if_modified(|current| {
            if *current == members {
                false
            } else {
                *current = members;
                true
            }
        });
    }
}

/// Chitchat's live nodes whose name was authenticated at their advertised address, one per name
/// (the newest generation), sorted by name. A node announced under another name than the one
/// authenticated at its address is refused and counted once.
fn live_members(
    shared: &Shared,
    chitchat: &Chitchat,
    self_id: &ChitchatId,
    reported_mismatches: &mut HashSet<(SocketAddr, String)>,
) -> Vec<Member> {
    let verified = lock(&shared.verified).clone();
    let mut newest: BTreeMap<String, (u64, Member)> = BTreeMap::new();
    for id in chitchat.live_nodes() {
        let is_self = id == self_id;
        let name = id.node_id.to_string();
        if !is_self {
            match verified.get(&id.gossip_advertise_addr) {
                Some(authenticated) if *authenticated == name => {}
                Some(authenticated) => {
                    let key = (id.gossip_advertise_addr, name.clone());
                    if !reported_mismatches.contains(&key) {
                        if reported_mismatches.len() >= 1024 {
                            reported_mismatches.clear();
                        }
                        connections::refuse_name_mismatch(
                            shared,
                            id.gossip_advertise_addr,
                            &name,
                            authenticated,
                        );
                        reported_mismatches.insert(key);
                    }
                    continue;
                }
                // Not yet connected to that address: a member once its name is authenticated.
                None => continue,
            }
        }
        let Some(state) = chitchat.node_state(id) else {
            continue;
        };
        let member = Member {
            name: name.clone(),
            cluster_address: id.gossip_advertise_addr,
            keys: state
                .key_values()
                .map(|(key, value)| (key.to_string(), value.to_string()))
                .collect(),
            is_self,
        };
        // Our own identity wins over anything gossiped under our name.
        let rank = if is_self { u64::MAX } else { id.generation_id };
        match newest.get(&name) {
            Some((existing, _)) if *existing >= rank => {}
            _ => {
                newest.insert(name, (rank, member));
            }
        }
    }
    newest.into_values().map(|(_, member)| member).collect()
}

/// Capacity of the per-peer replication queue, for callers sizing their own buffers.
pub const REPLICATION_QUEUE_CAPACITY: usize = REPLICATION_LINK_QUEUE;
