//! A block's `index` file (Prometheus index format version 2, `tsdb/docs/format/index.md`):
//! symbol table, series with their chunk metas, label indices, postings, the two offset tables
//! and the table of contents. Every section carries a CRC32C that the reader verifies.

pub mod postings;
pub mod reader;
pub mod writer;

pub use postings::{PostingsSource, postings_for_matchers};
pub use reader::IndexReader;
pub use writer::write_index;

/// The index file's magic number.
pub const MAGIC_INDEX: u32 = 0xBAAA_D700;
/// The format version we write: series ids are offsets divided by 16.
pub const FORMAT_V2: u8 = 2;
/// Length of the table of contents: six 8-byte offsets and a CRC.
pub const TOC_LEN: usize = 6 * 8 + 4;
/// Series entries start on multiples of this; a series' id is its offset divided by it.
pub const SERIES_ALIGNMENT: usize = 16;

/// Where one chunk of a series lives and what time it covers (both ends inclusive).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkMeta {
    /// Timestamp of the chunk's first sample.
    pub min_time: i64,
    /// Timestamp of the chunk's last sample.
    pub max_time: i64,
    /// `segment index << 32 | offset` into the block's `chunks/` files.
    pub chunk_ref: u64,
}

/// A series as the index stores it.
#[derive(Debug, Clone, PartialEq)]
pub struct IndexSeries {
    /// The labels.
    pub labels: crate::tsdb::labels::Labels,
    /// The chunks, by time.
    pub chunks: Vec<ChunkMeta>,
}
