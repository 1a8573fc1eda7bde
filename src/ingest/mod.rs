//! Ingestion: everything that brings samples into the TSDB.
//!
//! The exposition parsers ([`parse`]: Prometheus text 0.0.4 and OpenMetrics 1.0, zero-copy),
//! relabeling ([`relabel`]), targets and their labels ([`targets`]), service discovery
//! (static, file, HTTP and DNS: [`discovery`], also usable for Alertmanagers) and the scrape
//! manager ([`scrape`]). The remote-write receiver is in `api::remote_write`.

pub mod discovery;
pub mod parse;
pub mod relabel;
pub mod scrape;
pub mod series_hash;
pub mod targets;
