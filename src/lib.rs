//! Tocsin: one process that is a whole monitoring node. See ARCHITECTURE.md for the map.

pub mod alerting;
pub mod api;
pub mod build_info;
pub mod config;
pub mod ingest;
pub mod logging;
pub mod node;
pub mod promql;
pub mod remote;
pub mod rules;
pub mod state_log;
pub mod telemetry;
pub mod tsdb;
