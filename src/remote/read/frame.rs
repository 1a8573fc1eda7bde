//! The framing of a streamed remote-read answer
//! (`application/x-streamed-protobuf; proto=prometheus.ChunkedReadResponse`): each message is
//! preceded by its length as an unsigned varint and the CRC32 (Castagnoli) of its bytes, four
//! bytes big-endian.

use crate::tsdb::crc32c::crc32c;

/// The media type of a streamed answer, as Prometheus sends it.
pub const STREAMED_CONTENT_TYPE: &str =
    "application/x-streamed-protobuf; proto=prometheus.ChunkedReadResponse";

/// One message framed for the stream.
pub fn encode_frame(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + 14);
    prost::encoding::encode_varint(message.len() as u64, &mut out);
    out.extend_from_slice(&crc32c(message).to_be_bytes());
    out.extend_from_slice(message);
    out
}

/// Why a stream could not be split into frames.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("frame of {size} bytes is over the limit of {limit} bytes")]
    TooLarge { size: u64, limit: usize },
    #[error("frame length is not a valid varint")]
    BadLength,
    #[error("frame checksum mismatch: header says {expected:08x}, data has {actual:08x}")]
    Checksum { expected: u32, actual: u32 },
    #[error("stream ends inside a frame ({0} bytes left over)")]
    Truncated(usize),
}

/// Splits a byte stream into messages as bytes arrive, refusing frames over `limit` bytes
/// before buffering them.
#[derive(Debug)]
pub struct FrameDecoder {
    buffer: Vec<u8>,
    limit: usize,
}

/// A varint is at most ten bytes; the header adds the four-byte checksum.
const MAX_HEADER_BYTES: usize = 14;

impl FrameDecoder {
    pub fn new(limit: usize) -> Self {
        FrameDecoder {
            buffer: Vec::new(),
            limit,
        }
    }

    /// Appends received bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buffer.extend_from_slice(bytes);
    }

    /// The next complete message, or `None` until more bytes arrive.
    pub fn next_message(&mut self) -> Result<Option<Vec<u8>>, FrameError> {
        let mut header = &self.buffer[..self.buffer.len().min(MAX_HEADER_BYTES)];
        let available = header.len();
        let size = match prost::encoding::decode_varint(&mut header) {
            Ok(size) => size,
            // Too few bytes to end the varint yet.
            Err(_) if available < 10 && self.buffer.iter().all(|byte| byte & 0x80 != 0) => {
                return Ok(None);
            }
            Err(_) => return Err(FrameError::BadLength),
        };
        let varint_len = available - header.len();
        if size > self.limit as u64 {
            return Err(FrameError::TooLarge {
                size,
                limit: self.limit,
            });
        }
        // `size` fits in usize: it is at most `limit`.
        let size = size as usize;
        let total = varint_len + 4 + size;
        if self.buffer.len() < total {
            return Ok(None);
        }
        let checksum_bytes = [
            self.buffer[varint_len],
            self.buffer[varint_len + 1],
            self.buffer[varint_len + 2],
            self.buffer[varint_len + 3],
        ];
        let expected = u32::from_be_bytes(checksum_bytes);
        let message = self.buffer[varint_len + 4..total].to_vec();
        let actual = crc32c(&message);
        if expected != actual {
            return Err(FrameError::Checksum { expected, actual });
        }
        self.buffer.drain(..total);
        Ok(Some(message))
    }

    /// Checks that the stream ended on a frame boundary.
    pub fn finish(&self) -> Result<(), FrameError> {
        if self.buffer.is_empty() {
            Ok(())
        } else {
            Err(FrameError::Truncated(self.buffer.len()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_byte_by_byte() {
        let messages: Vec<Vec<u8>> = vec![b"hello".to_vec(), vec![7; 300], Vec::new()];
        let stream: Vec<u8> = messages.iter().flat_map(|m| encode_frame(m)).collect();
        let mut decoder = FrameDecoder::new(1024);
        let mut got = Vec::new();
        for byte in &stream {
            decoder.push(std::slice::from_ref(byte));
            while let Some(message) = decoder.next_message().unwrap() {
                got.push(message);
            }
        }
        decoder.finish().unwrap();
        assert_eq!(got, messages);
        // 300 needs a two-byte varint; the checksum follows big-endian.
        let frame = encode_frame(&[7; 300]);
        assert_eq!(&frame[..2], &[0xAC, 0x02]);
        assert_eq!(&frame[2..6], &crc32c(&[7; 300]).to_be_bytes());
    }

    #[test]
    fn oversized_corrupt_and_truncated_frames_are_refused() {
        let mut decoder = FrameDecoder::new(10);
        decoder.push(&encode_frame(&[1; 11]));
        assert_eq!(
            decoder.next_message(),
            Err(FrameError::TooLarge {
                size: 11,
                limit: 10
            })
        );
        let mut frame = encode_frame(b"abc");
        let last = frame.len() - 1;
        frame[last] ^= 1;
        let mut decoder = FrameDecoder::new(10);
        decoder.push(&frame);
        assert!(matches!(
            decoder.next_message(),
            Err(FrameError::Checksum { .. })
        ));
        let mut decoder = FrameDecoder::new(10);
        decoder.push(&encode_frame(b"abc")[..4]);
        assert_eq!(decoder.next_message(), Ok(None));
        assert_eq!(decoder.finish(), Err(FrameError::Truncated(4)));
        let mut decoder = FrameDecoder::new(10);
        decoder.push(&[0xFF; 11]);
        assert_eq!(decoder.next_message(), Err(FrameError::BadLength));
    }
}
