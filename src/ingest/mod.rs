//! Ingestion: everything that brings samples into the TSDB.
//!
//! So far this holds the exposition parsers ([`parse`]): Prometheus text format 0.0.4 and
//! OpenMetrics 1.0, zero-copy over the scraped body. The scrape manager, service discovery,
//! relabeling and the remote-write receiver come next (issue 8).

pub mod parse;
