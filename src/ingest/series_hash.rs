//! A fast seeded hash for series text and label sets, for the ingestion caches (the scrape
//! cache keyed by exposition text, the remote-write receiver's labels → reference cache).
//!
//! std's SipHash costs about as much as the rest of a cached scrape line; this hash reads eight
//! bytes at a time and folds a 128-bit product per word (the construction of foldhash and
//! wyhash). Every cache that uses it compares the full key on a hit, so a collision costs a
//! lookup, never a wrong series. The seed is random per process, so a target or a sender
//! cannot choose texts that all land in one bucket.

use std::hash::{BuildHasher, Hasher};
use std::sync::OnceLock;

const MULTIPLIER: u64 = 0x9E37_79B9_7F4A_7C15;
const SECOND: u64 = 0xD6E8_FEB8_6659_FD93;

/// The high and low halves of `a × b`, xored.
#[inline]
fn fold_multiply(a: u64, b: u64) -> u64 {
    let product = u128::from(a) * u128::from(b);
    (product as u64) ^ ((product >> 64) as u64)
}

/// The process's seed: drawn once from std's random keys.
fn process_seed() -> u64 {
    static SEED: OnceLock<u64> = OnceLock::new();
    *SEED.get_or_init(|| std::hash::RandomState::new().hash_one(0x5EED_u64))
}

/// Hashes `bytes` with `seed`.
#[inline]
pub fn hash_bytes(seed: u64, bytes: &[u8]) -> u64 {
    let mut state = seed ^ (bytes.len() as u64).wrapping_mul(MULTIPLIER);
    let mut words = bytes.chunks_exact(8);
    for word in &mut words {
        let mut array = [0u8; 8];
        array.copy_from_slice(word);
        state = fold_multiply(state ^ u64::from_le_bytes(array), SECOND);
    }
    let rest = words.remainder();
    if !rest.is_empty() {
        let mut array = [0u8; 8];
        array[..rest.len()].copy_from_slice(rest);
        state = fold_multiply(state ^ u64::from_le_bytes(array), SECOND);
    }
    fold_multiply(state, MULTIPLIER)
}

/// A [`Hasher`] over [`hash_bytes`]: each `write` folds its bytes into the state.
#[derive(Debug, Clone, Copy)]
pub struct SeriesHasher {
    state: u64,
}

impl Hasher for SeriesHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        self.state = hash_bytes(self.state, bytes);
    }

    #[inline]
    fn write_u8(&mut self, byte: u8) {
        self.state = fold_multiply(self.state ^ u64::from(byte), SECOND);
    }

    #[inline]
    fn write_u64(&mut self, value: u64) {
        self.state = fold_multiply(self.state ^ value, SECOND);
    }

    #[inline]
    fn write_usize(&mut self, value: usize) {
        self.write_u64(value as u64);
    }

    #[inline]
    fn finish(&self) -> u64 {
        self.state
    }
}

/// Builds [`SeriesHasher`]s seeded with the process's seed: the `S` of the caches' maps.
#[derive(Debug, Clone, Copy)]
pub struct SeriesHashState {
    seed: u64,
}

impl Default for SeriesHashState {
    fn default() -> Self {
        SeriesHashState {
            seed: process_seed(),
        }
    }
}

impl SeriesHashState {
    /// Hashes one byte string (what a map keyed by `[u8]` would compute, without the length
    /// prefix `Hash for [u8]` adds).
    pub fn hash_bytes(&self, bytes: &[u8]) -> u64 {
        hash_bytes(self.seed, bytes)
    }
}

impl BuildHasher for SeriesHashState {
    type Hasher = SeriesHasher;

    fn build_hasher(&self) -> SeriesHasher {
        SeriesHasher { state: self.seed }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_byte_and_the_length_count() {
        let state = SeriesHashState::default();
        let base = state.hash_bytes(b"node_cpu_seconds_total{cpu=\"0\",mode=\"idle\"}");
        assert_eq!(
            base,
            state.hash_bytes(b"node_cpu_seconds_total{cpu=\"0\",mode=\"idle\"}")
        );
        assert_ne!(
            base,
            state.hash_bytes(b"node_cpu_seconds_total{cpu=\"1\",mode=\"idle\"}")
        );
        // A trailing zero byte in the last, partial word still changes the hash.
        assert_ne!(state.hash_bytes(b"abc"), state.hash_bytes(b"abc\0"));
        assert_ne!(state.hash_bytes(b""), state.hash_bytes(b"\0"));
        // Every position of a 17-byte text matters (two whole words and a partial one).
        let text = *b"abcdefghijklmnopq";
        let hashes: std::collections::HashSet<u64> = (0..text.len())
            .map(|flip| {
                let mut changed = text;
                changed[flip] ^= 1;
                state.hash_bytes(&changed)
            })
            .collect();
        assert_eq!(hashes.len(), text.len());
        assert!(!hashes.contains(&state.hash_bytes(&text)));
    }

    #[test]
    fn different_seeds_hash_differently() {
        assert_ne!(hash_bytes(1, b"up"), hash_bytes(2, b"up"));
    }
}
