//! The write-ahead log: Prometheus's segment and page layout ([`segment`]) carrying its Series
//! and Samples records ([`record`]), folded into checkpoints ([`checkpoint`]) as the head is
//! persisted.

pub mod checkpoint;
pub mod record;
pub mod segment;

pub use record::{Record, RefSample};
pub use segment::{WalCorruption, WalWriter};
