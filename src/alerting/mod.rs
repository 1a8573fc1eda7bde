//! The alerting core: Alertmanager's alert store, routing, grouping, inhibition, silences,
//! notification log and notification decisions, as sans-IO state machines. Every function takes
//! `now`; effects (notify, persist, wake me at) are returned as values for the shell to carry out.

// A sans-IO core: no clocks, randomness, tasks or sleeps (clippy.toml lists them).
#![deny(clippy::disallowed_methods)]

pub mod alert;
pub mod claims;
pub mod faults;
pub mod groups;
pub mod inhibition;
pub mod labels;
pub mod nflog;
pub mod ownership;
pub mod pipeline;
pub mod replica;
pub mod routing;
pub mod silences;
pub mod store;
pub mod time_intervals;
pub mod wire;

pub use alert::{Alert, InvalidAlert, PostedAlert};
pub use labels::{Fingerprint, LabelSet};
