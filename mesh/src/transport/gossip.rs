//! Chitchat's messages over the mesh's QUIC connections.
//!
//! Chitchat's `Socket` trait hands us `ChitchatEnvelope` values, but chitchat keeps their wire
//! encoding private to the crate: the only public code that turns an envelope into bytes (and
//! back) is its own `UdpSocket`. So a small codec uses a chitchat `UdpSocket` and a relay socket,
//! both bound to 127.0.0.1 on ephemeral ports and accepting datagrams only from each other, to
//! encode and decode; the bytes then travel between nodes over QUIC with mutual TLS. No chitchat
//! byte ever leaves the host unencrypted, and the node still has one cluster port.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use chitchat::ChitchatEnvelope;
use chitchat::transport::{RecvOutcome, SendOutcome, Socket, Transport, UdpSocket};
use tokio::sync::mpsc;

use super::stats::MeshStats;
use super::wire::MAX_GOSSIP_MESSAGE_BYTES;
use super::{Shared, lock};

/// Envelopes waiting to be encoded or handed to chitchat; gossip is periodic, so dropping under
/// pressure only delays convergence by a round.
const GOSSIP_QUEUE: usize = 256;
/// Loopback delivery is immediate; waiting longer only means the datagram was lost or invalid.
const CODEC_TIMEOUT: Duration = Duration::from_millis(250);

/// Gossip bytes from a peer and the address they came from.
pub(crate) type ReceivedGossip = (SocketAddr, Vec<u8>);

/// The chitchat `Transport` of a mesh: its one socket is backed by the QUIC endpoint.
pub(crate) struct MeshTransport {
    socket: Mutex<Option<MeshSocket>>,
}

struct MeshSocket {
    local_address: SocketAddr,
    outbound: mpsc::Sender<(SocketAddr, ChitchatEnvelope)>,
    inbound: mpsc::Receiver<RecvOutcome>,
    shared: Arc<Shared>,
}

/// The codec task's ends of the channels.
pub(crate) struct CodecChannels {
    outbound: mpsc::Receiver<(SocketAddr, ChitchatEnvelope)>,
    inbound: mpsc::Sender<RecvOutcome>,
    received: mpsc::Receiver<ReceivedGossip>,
}

/// Creates chitchat's transport and the codec's channels; `received` is fed by the QUIC readers
/// with gossip bytes and the address they came from.
pub(crate) fn channels(
    shared: Arc<Shared>,
    received: mpsc::Receiver<ReceivedGossip>,
) -> (MeshTransport, CodecChannels) {
    let (outbound_tx, outbound_rx) = mpsc::channel(GOSSIP_QUEUE);
    let (inbound_tx, inbound_rx) = mpsc::channel(GOSSIP_QUEUE);
    let socket = MeshSocket {
        local_address: shared.local_address,
        outbound: outbound_tx,
        inbound: inbound_rx,
        shared,
    };
    (
        MeshTransport {
            socket: Mutex::new(Some(socket)),
        },
        CodecChannels {
            outbound: outbound_rx,
            inbound: inbound_tx,
            received,
        },
    )
}

/// The gossip queue's capacity, for the QUIC readers' side.
pub(crate) fn received_queue() -> (mpsc::Sender<ReceivedGossip>, mpsc::Receiver<ReceivedGossip>) {
    mpsc::channel(GOSSIP_QUEUE)
}

#[async_trait]
impl Transport for MeshTransport {
    async fn open(&self, _listen_addr: SocketAddr) -> anyhow::Result<Box<dyn Socket>> {
        let socket = lock(&self.socket)
            .take()
            .ok_or_else(|| anyhow::anyhow!("the mesh's gossip socket is already open"))?;
        Ok(Box::new(socket))
    }
}

#[async_trait]
impl Socket for MeshSocket {
    fn local_addr(&self) -> anyhow::Result<SocketAddr> {
        Ok(self.local_address)
    }

    async fn send(
        &mut self,
        to: SocketAddr,
        envelope: ChitchatEnvelope,
    ) -> anyhow::Result<SendOutcome> {
        // Never block chitchat's loop on a slow peer: its heartbeats to others must go on.
        if self.outbound.try_send((to, envelope)).is_err() {
            MeshStats::increment(&self.shared.stats.gossip_messages_dropped);
        }
        Ok(SendOutcome { num_bytes_sent: 0 })
    }

    async fn recv(&mut self) -> anyhow::Result<RecvOutcome> {
        // `mpsc::Receiver::recv` is cancel-safe, which chitchat's `select!` needs.
        self.inbound
            .recv()
            .await
            .ok_or_else(|| anyhow::anyhow!("the mesh is shut down"))
    }
}

/// Encodes and decodes chitchat envelopes through a pair of loopback sockets (see the module
/// documentation). One task owns it and alternates strictly, so a datagram always answers the
/// request just made.
struct Codec {
    chitchat_socket: UdpSocket,
    chitchat_address: SocketAddr,
    relay: tokio::net::UdpSocket,
    relay_address: SocketAddr,
    buffer: Vec<u8>,
}

impl Codec {
    async fn open() -> anyhow::Result<Codec> {
        let loopback = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
        let chitchat_socket = UdpSocket::open(loopback).await?;
        let chitchat_address = chitchat_socket.local_addr()?;
        let relay = tokio::net::UdpSocket::bind(loopback).await?;
        // A connected UDP socket receives only from its peer: no other local process can
        // inject bytes on the encoding side.
        relay.connect(chitchat_address).await?;
        let relay_address = relay.local_addr()?;
        Ok(Codec {
            chitchat_socket,
            chitchat_address,
            relay,
            relay_address,
            buffer: vec![0; MAX_GOSSIP_MESSAGE_BYTES],
        })
    }

    async fn encode(&mut self, envelope: ChitchatEnvelope) -> Option<Bytes> {
        self.chitchat_socket
            .send(self.relay_address, envelope)
            .await
            .ok()?;
        let length = tokio::time::timeout(CODEC_TIMEOUT, self.relay.recv(&mut self.buffer))
            .await
            .ok()?
            .ok()?;
        Some(Bytes::copy_from_slice(self.buffer.get(..length)?))
    }

    async fn decode(&mut self, bytes: &[u8]) -> Option<ChitchatEnvelope> {
        self.relay.send(bytes).await.ok()?;
        let deadline = tokio::time::Instant::now() + CODEC_TIMEOUT;
        loop {
            // Chitchat's socket skips undecodable datagrams itself: a timeout means malformed.
            let outcome = tokio::time::timeout_at(deadline, self.chitchat_socket.recv())
                .await
                .ok()?
                .ok()?;
            // Only our relay may speak to the decoder; anything else on loopback is ignored.
            if outcome.from_addr == self.relay_address {
                return Some(outcome.envelope);
            }
        }
    }
}

/// Opens the codec and runs it until shutdown.
pub(crate) async fn start_codec(
    shared: Arc<Shared>,
    channels: CodecChannels,
) -> anyhow::Result<()> {
    let codec = Codec::open().await?;
    tracing::debug!(
        encoder = %codec.chitchat_address,
        relay = %codec.relay_address,
        "gossip codec on loopback"
    );
    tokio::spawn(run_codec(shared, codec, channels));
    Ok(())
}

async fn run_codec(shared: Arc<Shared>, mut codec: Codec, mut channels: CodecChannels) {
    let mut shutdown = shared.shutdown.subscribe();
    loop {
        tokio::select! {
            _ = shutdown.changed() => break,
            next = channels.outbound.recv() => {
                let Some((to, envelope)) = next else { break };
                match codec.encode(envelope).await {
                    Some(bytes) => shared.enqueue_gossip(to, bytes),
                    None => MeshStats::increment(&shared.stats.gossip_messages_dropped),
                }
            }
            next = channels.received.recv() => {
                let Some((from, bytes)) = next else { break };
                match codec.decode(&bytes).await {
                    Some(envelope) => {
                        let outcome = RecvOutcome {
                            from_addr: from,
                            envelope,
                            num_bytes_received: bytes.len(),
                        };
                        if channels.inbound.try_send(outcome).is_err() {
                            MeshStats::increment(&shared.stats.gossip_messages_dropped);
                        }
                    }
                    None => MeshStats::increment(&shared.stats.messages_refused_malformed),
                }
            }
        }
    }
}
