//! Tocsin: one process that is a whole monitoring node.

pub mod config;
