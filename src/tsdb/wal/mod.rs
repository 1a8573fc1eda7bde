//! The write-ahead log: Prometheus's segment and page layout ([`segment`]) carrying its Series
//! and Samples records ([`record`]).

pub mod record;
pub mod segment;

pub use record::{Record, RefSample};
pub use segment::{WalCorruption, WalWriter};
