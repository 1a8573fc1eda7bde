//! Deterministic simulations of Tocsin's sans-IO cores: the same cores the node runs, fed with
//! virtual time and a seeded random number generator, so any failure is reproduced by its seed.
//!
//! - [`single_node`]: one node's pipeline under flapping alerts, silences and failing
//!   deliveries.
//! - [`cluster`]: several nodes meshed over a simulated network, with crashes, partitions,
//!   pauses, clock trouble and failing receivers.

pub mod cluster;
pub mod rng;
pub mod single_node;

pub use rng::SimRng;
