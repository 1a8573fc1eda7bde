//! A block's `meta.json` and block ids (ULIDs), as Prometheus writes and reads them.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A ULID: 48 bits of milliseconds since the epoch, then 80 random bits; written as 26
/// characters of Crockford base32. Blocks sort by id, which sorts them by creation time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ulid(pub u128);

const CROCKFORD: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

impl Ulid {
    /// An id for `unix_millis`, with randomness from the OS (a constant if none is available:
    /// ids then still sort by time, and a collision fails the block's rename loudly).
    pub fn new(unix_millis: u64) -> Ulid {
        let mut random = [0u8; 10];
        if getrandom::fill(&mut random).is_err() {
            random = [0x5A; 10];
        }
        Ulid::from_parts(unix_millis, random)
    }

    /// An id from its timestamp and its 80 random bits.
    pub fn from_parts(unix_millis: u64, random: [u8; 10]) -> Ulid {
        let mut value = u128::from(unix_millis & 0xFFFF_FFFF_FFFF) << 80;
        for (index, byte) in random.iter().enumerate() {
            value |= u128::from(*byte) << (72 - 8 * index);
        }
        Ulid(value)
    }

    /// The millisecond timestamp part.
    pub fn unix_millis(&self) -> u64 {
        (self.0 >> 80) as u64
    }
}

impl fmt::Display for Ulid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut text = [0u8; 26];
        for (index, slot) in text.iter_mut().enumerate() {
            let shift = 5 * (25 - index);
            *slot = CROCKFORD[((self.0 >> shift) & 0x1F) as usize];
        }
        f.write_str(std::str::from_utf8(&text).map_err(|_| fmt::Error)?)
    }
}

/// A string that is not a ULID.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0:?} is not a ULID (26 Crockford base32 characters)")]
pub struct UlidError(String);

impl FromStr for Ulid {
    type Err = UlidError;

    fn from_str(text: &str) -> Result<Ulid, UlidError> {
        if text.len() != 26 {
            return Err(UlidError(text.to_owned()));
        }
        let mut value: u128 = 0;
        for (index, character) in text.bytes().enumerate() {
            let digit = CROCKFORD
                .iter()
                .position(|&c| c == character.to_ascii_uppercase())
                .ok_or_else(|| UlidError(text.to_owned()))?;
            // The first character carries only 3 bits (26 × 5 = 130 > 128).
            if index == 0 && digit > 7 {
                return Err(UlidError(text.to_owned()));
            }
            value = (value << 5) | digit as u128;
        }
        Ok(Ulid(value))
    }
}

impl Serialize for Ulid {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Ulid {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Ulid, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// `meta.json`. `max_time` is exclusive: the block holds samples in `[min_time, max_time)`.
/// Unknown keys are kept out (not rejected): newer Prometheus versions add fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BlockMeta {
    /// The block id, also its folder name.
    pub ulid: Ulid,
    /// Earliest timestamp the block may hold (inclusive), milliseconds.
    pub min_time: i64,
    /// End of the block's range (exclusive), milliseconds.
    pub max_time: i64,
    /// Counts.
    #[serde(default)]
    pub stats: BlockStats,
    /// Where the block came from.
    #[serde(default)]
    pub compaction: BlockCompaction,
    /// The meta format version; always 1.
    pub version: u32,
}

/// Counts in `meta.json`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BlockStats {
    /// Samples in the block.
    #[serde(default)]
    pub num_samples: u64,
    /// Series in the block.
    #[serde(default)]
    pub num_series: u64,
    /// Chunks in the block.
    #[serde(default)]
    pub num_chunks: u64,
    /// Tombstones in the block.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub num_tombstones: u64,
}

fn is_zero(value: &u64) -> bool {
    *value == 0
}

/// Compaction history in `meta.json`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BlockCompaction {
    /// 1 for a block cut from the head; +1 per compaction.
    #[serde(default)]
    pub level: u32,
    /// The level-1 blocks this one was made from (itself for level 1).
    #[serde(default)]
    pub sources: Vec<Ulid>,
    /// Whether a compaction of this block failed (Prometheus then skips it).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub failed: bool,
}

/// The largest `meta.json` we read.
pub const MAX_META_BYTES: u64 = 1 << 20;

impl BlockMeta {
    /// Prometheus's layout: tab-indented JSON.
    pub fn to_json(&self) -> Result<Vec<u8>, serde_json::Error> {
        let mut out = Vec::new();
        let formatter = serde_json::ser::PrettyFormatter::with_indent(b"\t");
        let mut serializer = serde_json::Serializer::with_formatter(&mut out, formatter);
        self.serialize(&mut serializer)?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ulid_text_round_trips_and_sorts_by_time() {
        let early = Ulid::from_parts(1_700_000_000_000, [0xFF; 10]);
        let late = Ulid::from_parts(1_700_000_000_001, [0; 10]);
        assert!(early < late);
        assert!(early.to_string() < late.to_string());
        assert_eq!(early.to_string().parse::<Ulid>().unwrap(), early);
        assert_eq!(early.unix_millis(), 1_700_000_000_000);
        // A known ULID from the spec's example form.
        let known: Ulid = "01ARZ3NDEKTSV4RRFFQ69G5FAV".parse().unwrap();
        assert_eq!(known.to_string(), "01ARZ3NDEKTSV4RRFFQ69G5FAV");
        assert!("8ZZZZZZZZZZZZZZZZZZZZZZZZZ".parse::<Ulid>().is_err());
    }

    #[test]
    fn meta_json_reads_prometheus_layout() {
        let text = r#"{
	"ulid": "01BKGV7JBM69T2G1BGBGM6KB12",
	"minTime": 1602237600000,
	"maxTime": 1602244800000,
	"stats": {"numSamples": 553673232, "numSeries": 1346066, "numChunks": 4440437},
	"compaction": {"level": 1, "sources": ["01BKGV7JBM69T2G1BGBGM6KB12"]},
	"version": 1
}"#;
        let meta: BlockMeta = serde_json::from_str(text).unwrap();
        assert_eq!(meta.stats.num_series, 1_346_066);
        let again: BlockMeta = serde_json::from_slice(&meta.to_json().unwrap()).unwrap();
        assert_eq!(again, meta);
    }
}
