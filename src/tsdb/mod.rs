//! Time-series storage in Prometheus's formats: XOR chunks, blocks (`index`, `chunks/`,
//! `meta.json`, `tombstones`), an in-memory head with a write-ahead log, and a querier over
//! both. See ARCHITECTURE.md § `src/tsdb/`.

pub mod block;
pub mod cardinality;
pub mod chunkenc;
pub mod chunks;
pub mod chunks_head;
pub mod compact;
pub mod crc32c;
pub mod db;
pub mod encoding;
pub mod error;
pub mod head;
pub mod index;
pub mod labels;
pub mod meta;
pub mod querier;
pub mod tombstones;
pub mod units;
pub mod wal;

pub use cardinality::Cardinality;
pub use db::{
    AppendCounters, Appender, CommitStats, CompactionReport, Querier, ReplayReport, SeriesRef,
    Tsdb, TsdbOptions, TsdbStats,
};
pub use error::TsdbError;
pub use head::AppendError;
pub use labels::{Labels, LabelsIter, MatchKind, Matcher};
pub use querier::Series;
