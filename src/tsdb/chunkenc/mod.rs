//! Chunk encodings. Only Prometheus's XOR float encoding for now; the encoding byte on disk
//! leaves room for histograms later.

pub mod bstream;
pub mod xor;

pub use xor::{ChunkDecodeError, XorChunk, XorIterator, decode_xor};

/// The encoding byte Prometheus writes before a chunk's data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Encoding {
    /// XOR-encoded floats.
    Xor = 1,
    /// Native histograms (readable later; skipped today).
    Histogram = 2,
    /// Float native histograms (readable later; skipped today).
    FloatHistogram = 3,
}

impl Encoding {
    /// The encoding for a byte read from disk.
    pub fn from_byte(byte: u8) -> Option<Encoding> {
        match byte {
            1 => Some(Encoding::Xor),
            2 => Some(Encoding::Histogram),
            3 => Some(Encoding::FloatHistogram),
            _ => None,
        }
    }
}
