//! The `remote_write` sender: per endpoint, a queue that tails the TSDB's WAL and ships its
//! samples with Prometheus's remote-write semantics (see [`queue`] for the design).
//!
//! - [`wal_tail`]: the incremental WAL segment reader.
//! - [`progress`]: which WAL position has really been shipped (persisted across restarts).
//! - [`sharding`]: Prometheus's dynamic shard count.
//! - [`client`]: request encoding (1.0 and 2.0), HTTP, retry classification and backoff.
//! - [`metadata`]: the scrape targets' metric metadata, as 1.0 sends it and 2.0 series carry it.
//! - [`metrics`]: the `prometheus_remote_storage_*` families.
//! - [`queue`]: the reader thread, the shards and the controller of one endpoint.

pub mod client;
pub mod metadata;
pub mod metrics;
pub mod progress;
pub mod queue;
pub mod sharding;
pub mod wal_tail;

pub use client::RemoteClient;
pub use metadata::{MetadataSource, TargetMetadataSnapshot};
pub use queue::{Queue, QueueSettings};
