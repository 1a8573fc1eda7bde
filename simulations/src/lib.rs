//! Deterministic simulations of Tocsin's sans-IO cores: the same cores the node runs, fed with
//! virtual time and a seeded random number generator, so any failure is reproduced by its seed.

pub mod rng;
pub mod single_node;

pub use rng::SimRng;
