//! WAL record payloads as Prometheus's `tsdb/record` encodes them. The kinds the head needs are
//! decoded; others are recognised and skipped.
//!
//! - Series (type 1): per series `ref u64 BE`, `label count uvarint`, then name and value as
//!   uvarint-length strings.
//! - Samples (type 2): the first sample's `ref u64 BE` and `t i64 BE`, then per sample
//!   `ref − first ref` and `t − first t` as signed varints and the value's bits as `u64 BE`.
//! - Tombstones (type 3): per deleted interval `ref u64 BE`, `mint` and `maxt` as signed varints.

use crate::tsdb::encoding::{DecodeError, Decoder, put_uvarint, put_uvarint_str, put_varint};
use crate::tsdb::labels::Labels;
use crate::tsdb::tombstones::Interval;

/// Record type byte of a series record.
pub const RECORD_SERIES: u8 = 1;
/// Record type byte of a float samples record.
pub const RECORD_SAMPLES: u8 = 2;
/// Record type byte of a tombstones record.
pub const RECORD_TOMBSTONES: u8 = 3;
/// The most labels a WAL series record may give one series.
const MAX_LABELS: u64 = 1 << 12;

/// One float sample in a WAL record.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RefSample {
    /// The series reference.
    pub series_ref: u64,
    /// Milliseconds since the epoch.
    pub timestamp: i64,
    /// The value.
    pub value: f64,
}

/// A decoded record.
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    /// New series and their references.
    Series(Vec<(u64, Labels)>),
    /// Float samples.
    Samples(Vec<RefSample>),
    /// Deleted intervals: series reference and interval.
    Tombstones(Vec<(u64, Interval)>),
    /// A kind we do not replay (exemplars, metadata, histograms, mmap markers).
    Other(u8),
}

/// Encodes a series record.
pub fn encode_series<'a>(series: impl IntoIterator<Item = (u64, &'a Labels)>) -> Vec<u8> {
    let mut buf = vec![RECORD_SERIES];
    for (series_ref, labels) in series {
        buf.extend_from_slice(&series_ref.to_be_bytes());
        put_uvarint(&mut buf, labels.len() as u64);
        for (name, value) in labels.iter() {
            put_uvarint_str(&mut buf, name);
            put_uvarint_str(&mut buf, value);
        }
    }
    buf
}

/// Encodes a samples record.
pub fn encode_samples(samples: &[RefSample]) -> Vec<u8> {
    let mut buf = Vec::new();
    encode_samples_into(&mut buf, samples);
    buf
}

/// Encodes a samples record into `buf` (cleared first), so a writer can reuse one buffer.
pub fn encode_samples_into(buf: &mut Vec<u8>, samples: &[RefSample]) {
    buf.clear();
    // Typical deltas take a byte or two each: reserve for that, growth covers the rest.
    buf.reserve(1 + 16 + samples.len() * 12);
    buf.push(RECORD_SAMPLES);
    let Some(first) = samples.first() else {
        return;
    };
    buf.extend_from_slice(&first.series_ref.to_be_bytes());
    buf.extend_from_slice(&first.timestamp.to_be_bytes());
    for sample in samples {
        put_varint(buf, sample.series_ref.wrapping_sub(first.series_ref) as i64);
        put_varint(buf, sample.timestamp.wrapping_sub(first.timestamp));
        buf.extend_from_slice(&sample.value.to_bits().to_be_bytes());
    }
}

/// Encodes a tombstones record.
pub fn encode_tombstones(stones: &[(u64, Interval)]) -> Vec<u8> {
    let mut buf = Vec::with_capacity(1 + stones.len() * 20);
    buf.push(RECORD_TOMBSTONES);
    for (series_ref, interval) in stones {
        buf.extend_from_slice(&series_ref.to_be_bytes());
        put_varint(&mut buf, interval.mint);
        put_varint(&mut buf, interval.maxt);
    }
    buf
}

/// Decodes a record; offsets in errors are relative to the record.
pub fn decode(record: &[u8]) -> Result<Record, DecodeError> {
    let mut decoder = Decoder::new(record, 0);
    let kind = decoder.u8()?;
    match kind {
        RECORD_SERIES => {
            let mut series = Vec::new();
            // One buffer of borrowed pairs for all the record's series: the labels are built
            // straight from the record's bytes (see `Labels::from_pairs`).
            let mut pairs: Vec<(&str, &str)> = Vec::new();
            while decoder.remaining() > 0 {
                let series_ref = decoder.be_u64()?;
                let count = decoder.uvarint_bounded(MAX_LABELS, "label count")?;
                pairs.clear();
                for _ in 0..count {
                    let name = decoder.uvarint_str()?;
                    let value = decoder.uvarint_str()?;
                    pairs.push((name, value));
                }
                series.push((series_ref, Labels::from_pairs(&pairs)));
            }
            Ok(Record::Series(series))
        }
        RECORD_SAMPLES => {
            let mut samples = Vec::new();
            if decoder.remaining() == 0 {
                return Ok(Record::Samples(samples));
            }
            let base_ref = decoder.be_u64()?;
            let base_time = decoder.be_u64()? as i64;
            while decoder.remaining() > 0 {
                let series_ref = base_ref.wrapping_add(decoder.varint()? as u64);
                let timestamp = base_time.wrapping_add(decoder.varint()?);
                let value = f64::from_bits(decoder.be_u64()?);
                samples.push(RefSample {
                    series_ref,
                    timestamp,
                    value,
                });
            }
            Ok(Record::Samples(samples))
        }
        RECORD_TOMBSTONES => {
            let mut stones = Vec::new();
            while decoder.remaining() > 0 {
                let series_ref = decoder.be_u64()?;
                let mint = decoder.varint()?;
                let maxt = decoder.varint()?;
                stones.push((series_ref, Interval { mint, maxt }));
            }
            Ok(Record::Tombstones(stones))
        }
        other => Ok(Record::Other(other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn samples_layout_matches_prometheus() {
        let record = encode_samples(&[
            RefSample {
                series_ref: 5,
                timestamp: 1000,
                value: 1.0,
            },
            RefSample {
                series_ref: 4,
                timestamp: 1015,
                value: 2.0,
            },
        ]);
        let mut expected = vec![2u8];
        expected.extend_from_slice(&5u64.to_be_bytes());
        expected.extend_from_slice(&1000u64.to_be_bytes());
        expected.extend_from_slice(&[0, 0]);
        expected.extend_from_slice(&1.0f64.to_bits().to_be_bytes());
        expected.extend_from_slice(&[1, 30]); // zig-zag −1 and +15
        expected.extend_from_slice(&2.0f64.to_bits().to_be_bytes());
        assert_eq!(record, expected);
    }

    #[test]
    fn tombstones_layout_matches_prometheus() {
        let record = encode_tombstones(&[(7, Interval { mint: -1, maxt: 2 })]);
        let mut expected = vec![3u8];
        expected.extend_from_slice(&7u64.to_be_bytes());
        expected.extend_from_slice(&[1, 4]);
        assert_eq!(record, expected);
    }

    proptest! {
        #[test]
        fn round_trips(
            samples in proptest::collection::vec((any::<u64>(), any::<i64>(), any::<u64>()), 0..50),
            names in proptest::collection::vec("[a-z]{1,5}", 1..4),
        ) {
            let samples: Vec<RefSample> = samples
                .into_iter()
                .map(|(series_ref, timestamp, bits)| RefSample { series_ref, timestamp, value: f64::from_bits(bits) })
                .collect();
            match decode(&encode_samples(&samples)).unwrap() {
                Record::Samples(decoded) => {
                    prop_assert_eq!(decoded.len(), samples.len());
                    for (a, b) in decoded.iter().zip(&samples) {
                        prop_assert_eq!((a.series_ref, a.timestamp, a.value.to_bits()), (b.series_ref, b.timestamp, b.value.to_bits()));
                    }
                }
                other => prop_assert!(false, "{other:?}"),
            }
            let labels = Labels::new(names.iter().map(|n| (n.clone(), "v".to_string())));
            prop_assert_eq!(
                decode(&encode_series([(7, &labels)])).unwrap(),
                Record::Series(vec![(7, labels.clone())])
            );
        }

        #[test]
        fn tombstones_round_trip(stones in proptest::collection::vec((any::<u64>(), any::<i64>(), any::<i64>()), 0..30)) {
            let stones: Vec<(u64, Interval)> = stones
                .into_iter()
                .map(|(r, mint, maxt)| (r, Interval { mint, maxt }))
                .collect();
            prop_assert_eq!(decode(&encode_tombstones(&stones)).unwrap(), Record::Tombstones(stones));
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..100)) {
            let _ = decode(&bytes);
        }
    }
}
