//! The XOR ("Gorilla") float chunk, bit for bit as Prometheus encodes it (`chunkenc/xor.go`,
//! encoding byte 1):
//!
//! - a 2-byte big-endian sample count, rewritten on every append;
//! - sample 0: timestamp as a signed varint, value as its 64 raw bits;
//! - sample 1: timestamp delta as an unsigned varint, value XOR-encoded;
//! - samples 2…: delta-of-delta timestamps in buckets `0` (0), `10`+14 bits, `110`+17 bits,
//!   `1110`+20 bits, `1111`+64 bits, where an n-bit bucket holds −(2ⁿ⁻¹−1) ..= 2ⁿ⁻¹ in two's
//!   complement; then the value XOR-encoded.
//!
//! A value is XORed with the previous one: `0` when equal; otherwise `1`, then `0` and the
//! meaningful bits inside the previous leading/trailing-zero window when they fit it, or `1`,
//! 5 bits of leading zeros (clamped to 31), 6 bits of meaningful-bit count (64 written as 0) and
//! the meaningful bits.

use super::bstream::{BitReader, BitWriter};
use std::fmt;

/// The most samples one chunk can count in its 16-bit header.
pub const MAX_SAMPLES_PER_CHUNK: usize = u16::MAX as usize;

/// A decoding failure inside a chunk's bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkDecodeError {
    /// Index of the sample that could not be decoded.
    pub sample: usize,
    /// What was wrong.
    pub reason: &'static str,
}

impl fmt::Display for ChunkDecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "XOR chunk sample {}: {}", self.sample, self.reason)
    }
}

impl std::error::Error for ChunkDecodeError {}

/// An XOR chunk being appended to.
#[derive(Debug, Clone)]
pub struct XorChunk {
    stream: BitWriter,
    count: u16,
    last_timestamp: i64,
    last_value_bits: u64,
    last_delta: u64,
    /// Leading zeros of the current XOR window; `None` until the first window is written.
    leading: Option<u8>,
    trailing: u8,
}

impl Default for XorChunk {
    fn default() -> Self {
        Self::new()
    }
}

impl XorChunk {
    /// An empty chunk: just the zero sample count.
    pub fn new() -> Self {
        let mut stream = BitWriter::default();
        stream.write_bits(0, 16);
        XorChunk {
            stream,
            count: 0,
            last_timestamp: 0,
            last_value_bits: 0,
            last_delta: 0,
            leading: None,
            trailing: 0,
        }
    }

    /// The chunk's bytes as stored on disk (after the encoding byte).
    pub fn bytes(&self) -> &[u8] {
        self.stream.bytes()
    }

    /// Bits of the newest value (0 while empty).
    pub fn last_value_bits(&self) -> u64 {
        self.last_value_bits
    }

    /// Number of samples appended.
    pub fn num_samples(&self) -> usize {
        usize::from(self.count)
    }

    /// Whether the 16-bit sample counter is exhausted.
    pub fn is_full(&self) -> bool {
        usize::from(self.count) >= MAX_SAMPLES_PER_CHUNK
    }

    /// Appends a sample. The caller keeps timestamps increasing; the encoding itself accepts any
    /// sequence (deltas wrap like Go's unsigned arithmetic), so this never fails except when
    /// the chunk is full, which returns `false`.
    pub fn append(&mut self, timestamp: i64, value: f64) -> bool {
        if self.is_full() {
            return false;
        }
        let value_bits = value.to_bits();
        let mut delta = 0u64;
        match self.count {
            0 => {
                self.stream.write_varint(timestamp);
                self.stream.write_bits(value_bits, 64);
            }
            1 => {
                delta = (timestamp as u64).wrapping_sub(self.last_timestamp as u64);
                self.stream.write_uvarint(delta);
                self.write_value(value_bits);
            }
            _ => {
                delta = (timestamp as u64).wrapping_sub(self.last_timestamp as u64);
                let delta_of_delta = delta.wrapping_sub(self.last_delta) as i64;
                if delta_of_delta == 0 {
                    self.stream.write_bit(false);
                } else if fits_bits(delta_of_delta, 14) {
                    self.stream.write_bits(0b10, 2);
                    self.stream.write_bits(delta_of_delta as u64, 14);
                } else if fits_bits(delta_of_delta, 17) {
                    self.stream.write_bits(0b110, 3);
                    self.stream.write_bits(delta_of_delta as u64, 17);
                } else if fits_bits(delta_of_delta, 20) {
                    self.stream.write_bits(0b1110, 4);
                    self.stream.write_bits(delta_of_delta as u64, 20);
                } else {
                    self.stream.write_bits(0b1111, 4);
                    self.stream.write_bits(delta_of_delta as u64, 64);
                }
                self.write_value(value_bits);
            }
        }
        self.last_timestamp = timestamp;
        self.last_value_bits = value_bits;
        self.last_delta = delta;
        self.count += 1;
        let header = self.count.to_be_bytes();
        let bytes = self.stream.bytes_mut();
        bytes[0] = header[0];
        bytes[1] = header[1];
        true
    }

    fn write_value(&mut self, value_bits: u64) {
        let xor = value_bits ^ self.last_value_bits;
        if xor == 0 {
            self.stream.write_bit(false);
            return;
        }
        self.stream.write_bit(true);
        // Five bits hold at most 31 leading zeros; more are written as meaningful zeros.
        let leading = (xor.leading_zeros() as u8).min(31);
        let trailing = xor.trailing_zeros() as u8;
        match self.leading {
            Some(window_leading) if leading >= window_leading && trailing >= self.trailing => {
                self.stream.write_bit(false);
                let meaningful = 64 - window_leading - self.trailing;
                self.stream.write_bits(xor >> self.trailing, meaningful);
            }
            _ => {
                self.leading = Some(leading);
                self.trailing = trailing;
                self.stream.write_bit(true);
                self.stream.write_bits(u64::from(leading), 5);
                let meaningful = 64 - leading - trailing;
                // 64 meaningful bits do not fit 6 bits; 0 can never occur, so it stands for 64.
                self.stream.write_bits(u64::from(meaningful) & 0x3F, 6);
                self.stream.write_bits(xor >> trailing, meaningful);
            }
        }
    }

    /// The samples of this chunk.
    pub fn iter(&self) -> XorIterator<'_> {
        XorIterator::new(self.bytes())
    }
}

/// Whether `value` fits an n-bit delta-of-delta bucket: −(2ⁿ⁻¹−1) ..= 2ⁿ⁻¹, the asymmetric range
/// Prometheus uses (the reader maps raw values above 2ⁿ⁻¹ to negatives).
fn fits_bits(value: i64, bits: u8) -> bool {
    let half = 1i64 << (bits - 1);
    -(half - 1) <= value && value <= half
}

/// Iterates the samples of an XOR chunk's bytes. Stops at the first malformed sample and keeps
/// the error in [`XorIterator::error`].
#[derive(Debug, Clone)]
pub struct XorIterator<'a> {
    reader: BitReader<'a>,
    total: u16,
    read: u16,
    timestamp: i64,
    value_bits: u64,
    delta: u64,
    leading: u8,
    trailing: u8,
    error: Option<ChunkDecodeError>,
}

impl<'a> XorIterator<'a> {
    /// An iterator over `bytes` (the 2-byte count, then the bit stream).
    pub fn new(bytes: &'a [u8]) -> Self {
        let (total, stream, error) = match bytes {
            [high, low, rest @ ..] => (u16::from_be_bytes([*high, *low]), rest, None),
            _ => (
                0,
                &[][..],
                Some(ChunkDecodeError {
                    sample: 0,
                    reason: "chunk shorter than its header",
                }),
            ),
        };
        XorIterator {
            reader: BitReader::new(stream),
            total,
            read: 0,
            timestamp: 0,
            value_bits: 0,
            delta: 0,
            leading: 0,
            trailing: 0,
            error,
        }
    }

    /// The sample count from the header.
    pub fn num_samples(&self) -> usize {
        usize::from(self.total)
    }

    /// The decoding error that ended iteration early, if any.
    pub fn error(&self) -> Option<&ChunkDecodeError> {
        self.error.as_ref()
    }

    fn fail(&mut self, reason: &'static str) -> Option<(i64, f64)> {
        self.error = Some(ChunkDecodeError {
            sample: usize::from(self.read),
            reason,
        });
        None
    }

    #[inline(always)]
    fn read_value(&mut self) -> Result<(), &'static str> {
        const TRUNCATED: &str = "truncated value";
        // The control bits `0`, `10` or `11` looked at together.
        let control = self.reader.peek_bits(2);
        if control & 0b10 == 0 {
            return self.reader.skip_bits(1).map_err(|_| TRUNCATED);
        }
        self.reader.skip_bits(2).map_err(|_| TRUNCATED)?;
        if control & 0b01 == 1 {
            // 5 bits of leading zeros, then 6 of meaningful-bit count, read as one field.
            let window = self.reader.read_bits(11).map_err(|_| TRUNCATED)?;
            let leading = (window >> 6) as u8;
            let mut meaningful = (window & 0x3F) as u8;
            if meaningful == 0 {
                meaningful = 64;
            }
            if u16::from(leading) + u16::from(meaningful) > 64 {
                return Err("XOR window wider than 64 bits");
            }
            self.leading = leading;
            self.trailing = 64 - leading - meaningful;
        }
        let meaningful = 64 - self.leading - self.trailing;
        let bits = self.reader.read_bits(meaningful).map_err(|_| TRUNCATED)?;
        // A window of 64 meaningful bits has no trailing zeros, so the shift stays below 64.
        self.value_bits ^= bits << self.trailing;
        Ok(())
    }

    #[inline(always)]
    fn read_timestamp_delta_of_delta(&mut self) -> Result<i64, &'static str> {
        const TRUNCATED: &str = "truncated timestamp";
        // The bucket prefix (`0`, `10`, `110`, `1110`, `1111`) from one look at 4 bits; the
        // bits it consists of must exist (past the end the look reads zeros).
        let prefix = self.reader.peek_bits(4);
        let (prefix_length, width) = if prefix & 0b1000 == 0 {
            (1, 0)
        } else if prefix & 0b0100 == 0 {
            (2, 14)
        } else if prefix & 0b0010 == 0 {
            (3, 17)
        } else if prefix & 0b0001 == 0 {
            (4, 20)
        } else {
            (4, 64)
        };
        self.reader
            .skip_bits(prefix_length)
            .map_err(|_| TRUNCATED)?;
        match width {
            0 => return Ok(0),
            64 => return Ok(self.reader.read_bits(64).map_err(|_| TRUNCATED)? as i64),
            _ => {}
        }
        let raw = self.reader.read_bits(width).map_err(|_| TRUNCATED)? as i64;
        Ok(if raw > (1i64 << (width - 1)) {
            raw - (1i64 << width)
        } else {
            raw
        })
    }
}

impl Iterator for XorIterator<'_> {
    type Item = (i64, f64);

    // Inlined into decoding loops, so the decoder's state can live in registers: this runs
    // once per sample read from disk.
    #[inline]
    fn next(&mut self) -> Option<(i64, f64)> {
        if self.error.is_some() || self.read >= self.total {
            return None;
        }
        match self.read {
            0 => {
                let Ok(timestamp) = self.reader.read_varint() else {
                    return self.fail("truncated first timestamp");
                };
                let Ok(bits) = self.reader.read_bits(64) else {
                    return self.fail("truncated first value");
                };
                self.timestamp = timestamp;
                self.value_bits = bits;
            }
            1 => {
                let Ok(delta) = self.reader.read_uvarint() else {
                    return self.fail("truncated second timestamp");
                };
                self.delta = delta;
                self.timestamp = self.timestamp.wrapping_add(delta as i64);
                if let Err(reason) = self.read_value() {
                    return self.fail(reason);
                }
            }
            _ => {
                let delta_of_delta = match self.read_timestamp_delta_of_delta() {
                    Ok(value) => value,
                    Err(reason) => return self.fail(reason),
                };
                self.delta = self.delta.wrapping_add(delta_of_delta as u64);
                self.timestamp = self.timestamp.wrapping_add(self.delta as i64);
                if let Err(reason) = self.read_value() {
                    return self.fail(reason);
                }
            }
        }
        self.read += 1;
        Some((self.timestamp, f64::from_bits(self.value_bits)))
    }
}

/// Decodes every sample of an XOR chunk.
pub fn decode_xor(bytes: &[u8]) -> Result<Vec<(i64, f64)>, ChunkDecodeError> {
    let mut iterator = XorIterator::new(bytes);
    let samples: Vec<(i64, f64)> = iterator.by_ref().collect();
    match iterator.error {
        Some(error) => Err(error),
        None => Ok(samples),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The stale marker Prometheus writes when a series disappears.
    const STALE_NAN: u64 = 0x7ff0_0000_0000_0002;

    fn encode(samples: &[(i64, f64)]) -> XorChunk {
        let mut chunk = XorChunk::new();
        for &(t, v) in samples {
            assert!(chunk.append(t, v));
        }
        chunk
    }

    /// Bytes worked out by hand from the format description (module docs):
    /// samples (1000, 1.0), (2000, 1.0), (3000, 2.0), (4005, 2.0).
    #[test]
    fn golden_bytes_from_the_spec() {
        let chunk = encode(&[(1000, 1.0), (2000, 1.0), (3000, 2.0), (4005, 2.0)]);
        let expected: Vec<u8> = vec![
            0x00, 0x04, // sample count 4
            0xD0, 0x0F, // varint(1000) = zig-zag 2000 = 0xD0 0x0F
            0x3F, 0xF0, 0, 0, 0, 0, 0, 0, // 1.0 raw bits
            0xE8,
            0x07, // uvarint(1000)
                  // Then bits: sample 1 value equal: 0.
                  // Sample 2: dod 0 -> 0; value 2.0 ^ 1.0 = 0x7FF0.. ^ ... computed below.
        ];
        // 1.0 = 0x3FF0000000000000, 2.0 = 0x4000000000000000, xor = 0x7FF0000000000000:
        // leading 1, trailing 52, meaningful 11 (0x7FF).
        // Bits after the uvarint: 0 | 0 | 1 1 00001 001011 11111111111 | 10 + dod 5 (14 bits) | 0
        let bits = "0" // sample 1 value unchanged
            .to_string()
            + "0" // sample 2 dod 0
            + "11" + "00001" + "001011" + "11111111111" // sample 2 value, new window
            + "10" + "00000000000101" // sample 3 dod +5
            + "0"; // sample 3 value unchanged
        let mut tail = Vec::new();
        for chunk_bits in bits.as_bytes().chunks(8) {
            let mut byte = 0u8;
            for (index, bit) in chunk_bits.iter().enumerate() {
                if *bit == b'1' {
                    byte |= 1 << (7 - index);
                }
            }
            tail.push(byte);
        }
        let mut expected = expected;
        expected.extend(tail);
        assert_eq!(chunk.bytes(), expected.as_slice());
        assert_eq!(
            decode_xor(chunk.bytes()).unwrap(),
            vec![(1000, 1.0), (2000, 1.0), (3000, 2.0), (4005, 2.0)]
        );
    }

    #[test]
    fn bucket_edges() {
        // Deltas-of-deltas on both edges of every bucket, including the asymmetric upper edge.
        let mut samples = vec![(0i64, 0.0f64), (1_000, 1.0)];
        let mut t = 1_000i64;
        let mut delta = 1_000i64;
        for dod in [
            8192, -8191, 8193, -8192, 65536, -65535, 65537, 524288, -524287, 524289, -524288,
        ] {
            delta += dod;
            t += delta;
            samples.push((t, dod as f64));
        }
        let chunk = encode(&samples);
        assert_eq!(decode_xor(chunk.bytes()).unwrap(), samples);
    }

    #[test]
    fn truncated_chunks_fail_without_panicking() {
        let samples: Vec<(i64, f64)> = (0..50)
            .map(|i| (i * 15_000, (i * i) as f64 / 7.0))
            .collect();
        let chunk = encode(&samples);
        for cut in 0..chunk.bytes().len() {
            let _ = decode_xor(&chunk.bytes()[..cut]);
        }
        assert!(decode_xor(&chunk.bytes()[..chunk.bytes().len() / 2]).is_err());
    }

    fn special_float() -> impl Strategy<Value = f64> {
        prop_oneof![
            any::<f64>(),
            Just(f64::NAN),
            Just(f64::from_bits(STALE_NAN)),
            Just(f64::INFINITY),
            Just(f64::NEG_INFINITY),
            Just(-0.0),
            Just(0.0),
            (0i64..1000).prop_map(|v| v as f64),
        ]
    }

    proptest! {
        #[test]
        fn round_trip_arbitrary(
            start in any::<i64>(),
            steps in proptest::collection::vec(prop_oneof![Just(15_000i64), 0i64..100_000, any::<i64>()], 0..300),
            values in proptest::collection::vec(special_float(), 300),
        ) {
            let mut samples = Vec::new();
            let mut t = start;
            for (index, step) in steps.iter().enumerate() {
                samples.push((t, values[index]));
                t = t.wrapping_add(*step);
            }
            let chunk = encode(&samples);
            prop_assert_eq!(chunk.num_samples(), samples.len());
            let decoded = decode_xor(chunk.bytes()).unwrap();
            prop_assert_eq!(decoded.len(), samples.len());
            for (got, want) in decoded.iter().zip(&samples) {
                prop_assert_eq!(got.0, want.0);
                // Compare bits: NaN payloads (the stale marker) and -0.0 must survive.
                prop_assert_eq!(got.1.to_bits(), want.1.to_bits());
            }
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = decode_xor(&bytes);
        }
    }
}
