//! Ingestion: everything that brings samples into the TSDB.
//!
//! The exposition parsers ([`parse`]: Prometheus text 0.0.4 and OpenMetrics 1.0, zero-copy),
//! relabeling ([`relabel`]), targets from `static_configs` and `file_sd_configs`
//! ([`targets`]) and the scrape manager ([`scrape`]). The remote-write receiver is in
//! `api::remote_write`. Still to come (issue 8): http/dns discovery, remote write 2.0.

pub mod parse;
pub mod relabel;
pub mod scrape;
pub mod targets;
