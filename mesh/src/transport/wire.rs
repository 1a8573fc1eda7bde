//! Framing on the mesh's QUIC connections: one unidirectional stream per message, made of a
//! one-byte kind, a big-endian u32 length and the body. Every kind has a size limit, checked
//! before anything is allocated.

use std::time::Duration;

/// Replication payloads above this size are refused, on sending and on receiving.
pub const MAX_REPLICATION_PAYLOAD_BYTES: usize = 16 * 1024 * 1024;
/// Chitchat keeps its messages under a UDP datagram (64 KiB); anything much larger is an attack
/// or a bug.
pub(crate) const MAX_GOSSIP_MESSAGE_BYTES: usize = 128 * 1024;
const MAX_HELLO_BYTES: usize = 256;
/// A stream that takes longer than this to arrive is abandoned (16 MiB at ~300 KiB/s).
const STREAM_READ_TIMEOUT: Duration = Duration::from_secs(60);
const HEADER_BYTES: usize = 5;

/// What a stream carries, its first byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StreamKind {
    /// The sender's node name, first stream of every connection in both directions.
    Hello = 0,
    /// A chitchat envelope.
    Gossip = 1,
    /// An opaque replication payload for the node.
    Replication = 2,
}

impl StreamKind {
    fn from_byte(byte: u8) -> Option<StreamKind> {
        match byte {
            0 => Some(StreamKind::Hello),
            1 => Some(StreamKind::Gossip),
            2 => Some(StreamKind::Replication),
            _ => None,
        }
    }

    fn limit(self) -> usize {
        match self {
            StreamKind::Hello => MAX_HELLO_BYTES,
            StreamKind::Gossip => MAX_GOSSIP_MESSAGE_BYTES,
            StreamKind::Replication => MAX_REPLICATION_PAYLOAD_BYTES,
        }
    }
}

/// Why a received stream was not delivered.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ReadFailure {
    Oversized,
    Malformed,
    /// The stream or connection went away; nothing to blame the peer for.
    Closed,
}

/// Writes one message on a new stream of `connection`.
pub(crate) async fn write_message(
    connection: &quinn::Connection,
    kind: StreamKind,
    body: &[u8],
) -> anyhow::Result<()> {
    let length = u32::try_from(body.len())?;
    anyhow::ensure!(body.len() <= kind.limit(), "message above the size limit");
    let mut stream = connection.open_uni().await?;
    let mut header = [0u8; HEADER_BYTES];
    header[0] = kind as u8;
    header[1..].copy_from_slice(&length.to_be_bytes());
    stream.write_all(&header).await?;
    stream.write_all(body).await?;
    stream.finish()?;
    Ok(())
}

/// Reads one whole message from a peer's stream, enforcing the limits and a deadline.
pub(crate) async fn read_message(
    stream: &mut quinn::RecvStream,
) -> Result<(StreamKind, Vec<u8>), ReadFailure> {
    match tokio::time::timeout(STREAM_READ_TIMEOUT, read_message_unbounded(stream)).await {
        Ok(result) => result,
        Err(_elapsed) => Err(ReadFailure::Malformed),
    }
}

async fn read_message_unbounded(
    stream: &mut quinn::RecvStream,
) -> Result<(StreamKind, Vec<u8>), ReadFailure> {
    let mut header = [0u8; HEADER_BYTES];
    stream
        .read_exact(&mut header)
        .await
        .map_err(read_exact_failure)?;
    let kind = StreamKind::from_byte(header[0]).ok_or(ReadFailure::Malformed)?;
    let length = usize::try_from(u32::from_be_bytes([
        header[1], header[2], header[3], header[4],
    ]))
    .map_err(|_| ReadFailure::Oversized)?;
    if length > kind.limit() {
        // Tell the peer to stop sending the rest instead of reading it.
        let _ = stream.stop(1u32.into());
        return Err(ReadFailure::Oversized);
    }
    let mut body = vec![0u8; length];
    stream
        .read_exact(&mut body)
        .await
        .map_err(read_exact_failure)?;
    // One message per stream: trailing bytes mean the peer does not speak our framing.
    let mut trailing = [0u8; 1];
    match stream.read(&mut trailing).await {
        Ok(None) => Ok((kind, body)),
        Ok(Some(_)) => {
            let _ = stream.stop(1u32.into());
            Err(ReadFailure::Malformed)
        }
        Err(_) => Err(ReadFailure::Closed),
    }
}

fn read_exact_failure(error: quinn::ReadExactError) -> ReadFailure {
    match error {
        quinn::ReadExactError::FinishedEarly(_) => ReadFailure::Malformed,
        quinn::ReadExactError::ReadError(_) => ReadFailure::Closed,
    }
}
