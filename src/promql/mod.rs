//! The PromQL evaluation engine. Queries are parsed by the `promql-parser` crate and evaluated
//! here against any [`storage::Queryable`].
//!
//! - `engine.rs`: the evaluator (selectors, offsets, `@`, subqueries, instant and range queries);
//! - `value.rs`: labels, samples, series and result values;
//! - `binary.rs`, `aggregate.rs`, `functions/`: operators, aggregations and functions;
//! - `storage.rs`: the read interface the TSDB implements; `memory.rs`: an in-memory one;
//! - `annotations.rs`, `limits.rs`: warnings/info and per-query bounds;
//! - `memo.rs`: per-query memos keyed by label-set identity, so steps do not re-hash labels;
//! - `promqltest/`: a runner for Prometheus's promqltest files.

pub mod aggregate;
pub mod annotations;
pub mod binary;
pub mod engine;
pub mod functions;
pub mod limits;
pub(crate) mod memo;
pub mod memory;
pub mod parse;
pub mod promqltest;
pub mod storage;
pub mod tsdb_source;
pub mod value;

pub use engine::{Engine, QueryError, QueryResult};
pub use storage::{MatchKind, Matcher, Queryable, SeriesData, StorageError};
pub use value::{Labels, Sample, Series, Value};
