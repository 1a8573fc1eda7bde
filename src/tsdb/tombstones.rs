//! Deletions: per series reference, the closed time intervals whose samples are deleted, and
//! the block file that stores them, in Prometheus's `tsdb/tombstones` format:
//!
//! - `magic u32 BE` (`0x0130BA30`), `version u8` (1);
//! - per interval `series ref uvarint`, `mint varint`, `maxt varint` (zig-zag);
//! - `CRC32C u32 BE` of the intervals (the bytes after the version byte).
//!
//! Intervals are inclusive at both ends; adding one merges it with overlapping and adjacent
//! ones, so a series' intervals are always sorted and disjoint.

use super::crc32c::crc32c;
use super::encoding::{Decoder, put_uvarint, put_varint};
use super::error::TsdbError;
use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

/// The file name inside a block folder.
pub const TOMBSTONES_FILE: &str = "tombstones";
/// The file's magic number.
pub const MAGIC: u32 = 0x0130_BA30;
/// The only format version.
pub const VERSION: u8 = 1;
/// The largest tombstones file read (each interval takes at most 30 bytes).
pub const MAX_FILE_BYTES: u64 = 256 << 20;

/// A closed interval `[mint, maxt]` of deleted samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Interval {
    /// First deleted timestamp.
    pub mint: i64,
    /// Last deleted timestamp.
    pub maxt: i64,
}

impl Interval {
    /// Whether `t` is deleted by this interval.
    pub fn contains(&self, t: i64) -> bool {
        self.mint <= t && t <= self.maxt
    }

    /// Whether the interval meets `[mint, maxt]`.
    pub fn overlaps(&self, mint: i64, maxt: i64) -> bool {
        self.mint <= maxt && mint <= self.maxt
    }
}

/// Sorted, disjoint, non-adjacent intervals.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Intervals(Vec<Interval>);

impl Intervals {
    /// Adds an interval (ignored when `mint > maxt`), merging neighbours it overlaps or
    /// touches, as Prometheus's `Intervals.Add` does.
    pub fn add(&mut self, interval: Interval) {
        if interval.mint > interval.maxt {
            return;
        }
        let mut merged = interval;
        let mut kept = Vec::with_capacity(self.0.len() + 1);
        for &existing in &self.0 {
            let touches = existing.mint <= merged.maxt.saturating_add(1)
                && merged.mint <= existing.maxt.saturating_add(1);
            if touches {
                merged.mint = merged.mint.min(existing.mint);
                merged.maxt = merged.maxt.max(existing.maxt);
            } else {
                kept.push(existing);
            }
        }
        let position = kept.partition_point(|i| i.mint < merged.mint);
        kept.insert(position, merged);
        self.0 = kept;
    }

    /// The intervals, by time.
    pub fn as_slice(&self) -> &[Interval] {
        &self.0
    }

    /// Whether `t` is deleted.
    pub fn contains(&self, t: i64) -> bool {
        let position = self.0.partition_point(|i| i.maxt < t);
        self.0.get(position).is_some_and(|i| i.contains(t))
    }

    /// Whether every timestamp of `[mint, maxt]` is deleted (one interval covers it).
    pub fn covers(&self, mint: i64, maxt: i64) -> bool {
        self.0.iter().any(|i| i.mint <= mint && maxt <= i.maxt)
    }

    /// Whether some interval meets `[mint, maxt]`.
    pub fn overlaps(&self, mint: i64, maxt: i64) -> bool {
        self.0.iter().any(|i| i.overlaps(mint, maxt))
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// How many.
    pub fn len(&self) -> usize {
        self.0.len()
    }
}

/// Deleted intervals by series reference (index series id in a block, head reference in the
/// head).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tombstones {
    by_series: BTreeMap<u64, Intervals>,
}

impl Tombstones {
    /// Adds a deleted interval for a series.
    pub fn add(&mut self, series_ref: u64, interval: Interval) {
        if interval.mint > interval.maxt {
            return;
        }
        self.by_series.entry(series_ref).or_default().add(interval);
    }

    /// Adds every interval of `other`.
    pub fn extend(&mut self, other: &Tombstones) {
        for (&series_ref, intervals) in &other.by_series {
            for &interval in intervals.as_slice() {
                self.add(series_ref, interval);
            }
        }
    }

    /// The deleted intervals of a series, if any.
    pub fn get(&self, series_ref: u64) -> Option<&Intervals> {
        self.by_series.get(&series_ref)
    }

    /// Whether nothing is deleted.
    pub fn is_empty(&self) -> bool {
        self.by_series.is_empty()
    }

    /// Number of intervals over all series (`numTombstones` in `meta.json`).
    pub fn total(&self) -> u64 {
        self.by_series.values().map(|i| i.len() as u64).sum()
    }

    /// Every series and its intervals, by reference.
    pub fn iter(&self) -> impl Iterator<Item = (u64, &Intervals)> {
        self.by_series.iter().map(|(&r, i)| (r, i))
    }

    /// Forgets the series for which `keep` is false.
    pub fn retain_series(&mut self, keep: impl Fn(u64) -> bool) {
        self.by_series.retain(|&r, _| keep(r));
    }

    /// Drops the intervals ending before `t` and clips the others to start at `t` at the
    /// earliest (Prometheus's `TruncateBefore`: the samples before `t` are gone anyway).
    pub fn truncate_before(&mut self, t: i64) {
        for intervals in self.by_series.values_mut() {
            let clipped: Vec<Interval> = intervals
                .0
                .iter()
                .filter(|i| i.maxt >= t)
                .map(|i| Interval {
                    mint: i.mint.max(t),
                    maxt: i.maxt,
                })
                .collect();
            intervals.0 = clipped;
        }
        self.by_series.retain(|_, i| !i.is_empty());
    }

    /// The file's bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut body = Vec::new();
        for (&series_ref, intervals) in &self.by_series {
            for interval in intervals.as_slice() {
                put_uvarint(&mut body, series_ref);
                put_varint(&mut body, interval.mint);
                put_varint(&mut body, interval.maxt);
            }
        }
        let mut out = Vec::with_capacity(body.len() + 9);
        out.extend_from_slice(&MAGIC.to_be_bytes());
        out.push(VERSION);
        out.extend_from_slice(&body);
        out.extend_from_slice(&crc32c(&body).to_be_bytes());
        out
    }

    /// Decodes a file's bytes; `path` names the file in errors.
    pub fn decode(path: &Path, bytes: &[u8]) -> Result<Tombstones, TsdbError> {
        if bytes.len() < 9 {
            return Err(TsdbError::invalid(
                path,
                format!("{} bytes: shorter than a tombstones header", bytes.len()),
            ));
        }
        let magic = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
        if magic != MAGIC {
            return Err(TsdbError::invalid(
                path,
                format!("magic {magic:#010x}: not a tombstones file"),
            ));
        }
        if bytes[4] != VERSION {
            return Err(TsdbError::invalid(
                path,
                format!("tombstones format version {} (only 1)", bytes[4]),
            ));
        }
        let body = &bytes[5..bytes.len() - 4];
        let tail = &bytes[bytes.len() - 4..];
        let stored = u32::from_be_bytes([tail[0], tail[1], tail[2], tail[3]]);
        let actual = crc32c(body);
        if stored != actual {
            return Err(TsdbError::invalid(
                path,
                format!("checksum {stored:#010x} in the file, {actual:#010x} computed"),
            ));
        }
        let mut decoder = Decoder::new(body, 5);
        let mut tombstones = Tombstones::default();
        while decoder.remaining() > 0 {
            let series_ref = decoder.uvarint().map_err(TsdbError::corrupt(path))?;
            let mint = decoder.varint().map_err(TsdbError::corrupt(path))?;
            let maxt = decoder.varint().map_err(TsdbError::corrupt(path))?;
            tombstones.add(series_ref, Interval { mint, maxt });
        }
        Ok(tombstones)
    }

    /// Reads `<folder>/tombstones`; a missing file means no deletions (as Prometheus reads it).
    pub fn read_file(folder: &Path) -> Result<Tombstones, TsdbError> {
        let path = folder.join(TOMBSTONES_FILE);
        let file = match std::fs::File::open(&path) {
            Ok(file) => file,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Tombstones::default());
            }
            Err(error) => return Err(TsdbError::io(&path)(error)),
        };
        let mut bytes = Vec::new();
        file.take(MAX_FILE_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(TsdbError::io(&path))?;
        if bytes.len() as u64 > MAX_FILE_BYTES {
            return Err(TsdbError::invalid(
                &path,
                format!("larger than {MAX_FILE_BYTES} bytes"),
            ));
        }
        Tombstones::decode(&path, &bytes)
    }

    /// Writes `<folder>/tombstones` crash-safely (temporary file, fsync, rename, fsync folder),
    /// so hard links to the old file (snapshots) keep the old contents.
    pub fn write_file(&self, folder: &Path) -> Result<(), TsdbError> {
        use std::io::Write;
        let path = folder.join(TOMBSTONES_FILE);
        let temporary = folder.join(format!("{TOMBSTONES_FILE}.tmp"));
        {
            let mut file = std::fs::File::create(&temporary).map_err(TsdbError::io(&temporary))?;
            file.write_all(&self.encode())
                .map_err(TsdbError::io(&temporary))?;
            file.sync_all().map_err(TsdbError::io(&temporary))?;
        }
        std::fs::rename(&temporary, &path).map_err(TsdbError::io(&path))?;
        super::chunks::sync_folder(folder)
    }
}

/// Samples of `samples` outside every interval of `deleted`.
pub fn without_deleted(samples: Vec<(i64, f64)>, deleted: Option<&Intervals>) -> Vec<(i64, f64)> {
    match deleted {
        Some(intervals) if !intervals.is_empty() => samples
            .into_iter()
            .filter(|&(t, _)| !intervals.contains(t))
            .collect(),
        _ => samples,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn iv(mint: i64, maxt: i64) -> Interval {
        Interval { mint, maxt }
    }

    #[test]
    fn empty_file_matches_prometheus() {
        assert_eq!(
            Tombstones::default().encode(),
            vec![0x01, 0x30, 0xBA, 0x30, 0x01, 0, 0, 0, 0]
        );
    }

    #[test]
    fn layout_is_ref_mint_maxt_varints() {
        let mut stones = Tombstones::default();
        stones.add(3, iv(-1, 1));
        let bytes = stones.encode();
        // ref 3, zig-zag −1 = 1, zig-zag 1 = 2.
        assert_eq!(&bytes[5..8], &[3, 1, 2]);
        assert_eq!(&bytes[8..], &crc32c(&[3, 1, 2]).to_be_bytes());
    }

    #[test]
    fn adding_merges_overlapping_and_adjacent() {
        let mut intervals = Intervals::default();
        intervals.add(iv(10, 20));
        intervals.add(iv(30, 40));
        intervals.add(iv(21, 22));
        assert_eq!(intervals.as_slice(), &[iv(10, 22), iv(30, 40)]);
        intervals.add(iv(0, 35));
        assert_eq!(intervals.as_slice(), &[iv(0, 40)]);
        intervals.add(iv(i64::MIN, i64::MIN));
        intervals.add(iv(i64::MAX, i64::MAX));
        assert_eq!(intervals.len(), 3);
        assert!(intervals.contains(i64::MIN) && intervals.contains(40) && !intervals.contains(41));
        intervals.add(iv(5, 4));
        assert_eq!(intervals.len(), 3);
    }

    #[test]
    fn damaged_files_are_errors() {
        let path = Path::new("b/tombstones");
        let mut stones = Tombstones::default();
        stones.add(1, iv(0, 100));
        let mut bytes = stones.encode();
        let last = bytes.len() - 5;
        bytes[last] ^= 0x40;
        assert!(Tombstones::decode(path, &bytes).is_err());
        assert!(Tombstones::decode(path, &[1, 2, 3]).is_err());
        let mut wrong_version = Tombstones::default().encode();
        wrong_version[4] = 2;
        assert!(Tombstones::decode(path, &wrong_version).is_err());
    }

    #[test]
    fn truncation_clips_and_drops() {
        let mut stones = Tombstones::default();
        stones.add(1, iv(0, 10));
        stones.add(1, iv(20, 30));
        stones.add(2, iv(0, 5));
        stones.truncate_before(8);
        assert_eq!(stones.get(1).unwrap().as_slice(), &[iv(8, 10), iv(20, 30)]);
        assert!(stones.get(2).is_none());
    }

    proptest! {
        #[test]
        fn round_trips(entries in proptest::collection::vec((0u64..50, any::<i64>(), any::<i64>()), 0..60)) {
            let mut stones = Tombstones::default();
            for (series_ref, a, b) in entries {
                stones.add(series_ref, iv(a.min(b), a.max(b)));
            }
            let decoded = Tombstones::decode(Path::new("t"), &stones.encode()).unwrap();
            prop_assert_eq!(decoded, stones);
        }

        #[test]
        fn intervals_match_a_set_oracle(adds in proptest::collection::vec((0i64..200, 0i64..30), 0..20), probe in 0i64..240) {
            let mut intervals = Intervals::default();
            let mut oracle = std::collections::BTreeSet::new();
            for (start, length) in adds {
                intervals.add(iv(start, start + length));
                oracle.extend(start..=start + length);
            }
            prop_assert_eq!(intervals.contains(probe), oracle.contains(&probe));
            for pair in intervals.as_slice().windows(2) {
                prop_assert!(pair[0].maxt + 1 < pair[1].mint);
            }
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let mut framed = Tombstones::default().encode()[..5].to_vec();
            framed.extend_from_slice(&bytes);
            let body = framed[5..].to_vec();
            framed.extend_from_slice(&crc32c(&body).to_be_bytes());
            let _ = Tombstones::decode(Path::new("t"), &framed);
            let _ = Tombstones::decode(Path::new("t"), &bytes);
        }
    }
}
