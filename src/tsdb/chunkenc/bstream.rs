//! Bit streams: the writer appends bits most-significant first into bytes, the way Prometheus's
//! `bstream` does, so a chunk's bytes are identical; the reader reads them back and fails
//! (never panics) when the bytes run out.

/// An append-only bit stream over a byte vector.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BitWriter {
    bytes: Vec<u8>,
    /// Bits still free in the last byte (0 means the next bit starts a new byte).
    free_bits: u8,
}

impl BitWriter {
    /// A writer continuing after `bytes`, whose last byte has `free_bits` unused low bits.
    pub fn from_parts(bytes: Vec<u8>, free_bits: u8) -> Self {
        BitWriter {
            bytes,
            free_bits: free_bits.min(7),
        }
    }

    /// The bytes written; unused bits of the last byte are zero.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Mutable access to the bytes, for rewriting a header in place.
    pub fn bytes_mut(&mut self) -> &mut [u8] {
        &mut self.bytes
    }

    /// Writes one bit.
    pub fn write_bit(&mut self, bit: bool) {
        if self.free_bits == 0 {
            self.bytes.push(0);
            self.free_bits = 8;
        }
        if bit && let Some(last) = self.bytes.last_mut() {
            *last |= 1 << (self.free_bits - 1);
        }
        self.free_bits -= 1;
    }

    /// Writes a whole byte, straddling byte boundaries as needed.
    pub fn write_byte(&mut self, byte: u8) {
        self.write_bits(u64::from(byte), 8);
    }

    /// Writes the low `count` bits of `value` (count ≤ 64), most significant first: the free
    /// bits of the last byte first, then whole bytes, then the rest into a new last byte.
    pub fn write_bits(&mut self, value: u64, count: u8) {
        let mut remaining = count.min(64);
        if remaining == 0 {
            return;
        }
        let value = if remaining == 64 {
            value
        } else {
            value & ((1u64 << remaining) - 1)
        };
        if self.free_bits > 0 {
            let take = remaining.min(self.free_bits);
            let chunk = ((value >> (remaining - take)) & ((1u64 << take) - 1)) as u8;
            if let Some(last) = self.bytes.last_mut() {
                *last |= chunk << (self.free_bits - take);
            }
            self.free_bits -= take;
            remaining -= take;
        }
        while remaining >= 8 {
            remaining -= 8;
            self.bytes.push((value >> remaining) as u8);
        }
        if remaining > 0 {
            // The low `remaining` bits at the top of a new byte (`as u8` drops the rest).
            self.bytes.push((value << (8 - remaining)) as u8);
            self.free_bits = 8 - remaining;
        }
    }

    /// Writes `value` as an unsigned varint (Go's `binary.PutUvarint`), byte by byte into
    /// the bit stream (which need not be byte-aligned).
    pub fn write_uvarint(&mut self, mut value: u64) {
        while value >= 0x80 {
            self.write_byte((value as u8) | 0x80);
            value >>= 7;
        }
        self.write_byte(value as u8);
    }

    /// Writes `value` as a zig-zag signed varint (Go's `binary.PutVarint`).
    pub fn write_varint(&mut self, value: i64) {
        self.write_uvarint(((value << 1) ^ (value >> 63)) as u64);
    }
}

/// Reading past the end of a bit stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EndOfStream;

/// A reader over a bit stream.
#[derive(Debug, Clone)]
pub struct BitReader<'a> {
    bytes: &'a [u8],
    /// Position in bits from the start.
    position: usize,
}

impl<'a> BitReader<'a> {
    /// A reader from the first bit of `bytes`.
    pub fn new(bytes: &'a [u8]) -> Self {
        BitReader { bytes, position: 0 }
    }

    /// Bits left to read.
    #[inline]
    pub fn remaining_bits(&self) -> usize {
        self.bytes.len() * 8 - self.position
    }

    /// The next `count` bits (at most 57) without consuming them, as the low bits of a u64,
    /// zero-padded past the end: a decoder looks at a short prefix at once and then
    /// [`BitReader::skip_bits`] the part it used.
    #[inline]
    pub fn peek_bits(&self, count: u8) -> u64 {
        let count = u32::from(count.clamp(1, 57));
        let used = (self.position % 8) as u32;
        (self.word_at(self.position / 8) << used) >> (64 - count)
    }

    /// Consumes `count` bits; fails, consuming none, when fewer are left.
    #[inline]
    pub fn skip_bits(&mut self, count: usize) -> Result<(), EndOfStream> {
        if count > self.remaining_bits() {
            return Err(EndOfStream);
        }
        self.position += count;
        Ok(())
    }

    /// Reads one bit.
    #[inline]
    pub fn read_bit(&mut self) -> Result<bool, EndOfStream> {
        let byte = self.bytes.get(self.position / 8).ok_or(EndOfStream)?;
        let bit = (byte >> (7 - (self.position % 8))) & 1 == 1;
        self.position += 1;
        Ok(bit)
    }

    /// Reads `count` bits (≤ 64) as the low bits of a u64.
    ///
    /// Loads the 8 bytes from the current byte as one big-endian word and shifts the wanted
    /// bits out of it (plus a ninth byte when an unaligned read spans it), instead of a loop
    /// per byte: this sits under every sample decoded.
    #[inline]
    pub fn read_bits(&mut self, count: u8) -> Result<u64, EndOfStream> {
        let count = u32::from(count.min(64));
        if count as usize > self.remaining_bits() {
            return Err(EndOfStream);
        }
        if count == 0 {
            return Ok(0);
        }
        let byte = self.position / 8;
        let used = (self.position % 8) as u32;
        let word = self.word_at(byte);
        let in_word = 64 - used;
        let value = if count <= in_word {
            (word << used) >> (64 - count)
        } else {
            // At most 7 bits from the ninth byte, which exists: the length was checked.
            let extra = count - in_word;
            let low = u64::from(self.bytes[byte + 8]) >> (8 - extra);
            (((word << used) >> used) << extra) | low
        };
        self.position += count as usize;
        Ok(value)
    }

    /// The 8 bytes from `byte` as a big-endian word, zero-padded past the end.
    #[inline]
    fn word_at(&self, byte: usize) -> u64 {
        match self.bytes.get(byte..byte + 8) {
            Some(eight) => {
                let mut window = [0u8; 8];
                window.copy_from_slice(eight);
                u64::from_be_bytes(window)
            }
            None => {
                let mut window = [0u8; 8];
                let tail = self.bytes.get(byte..).unwrap_or(&[]);
                window[..tail.len()].copy_from_slice(tail);
                u64::from_be_bytes(window)
            }
        }
    }

    /// Reads a byte-wise unsigned varint from the bit stream (it need not be byte-aligned).
    pub fn read_uvarint(&mut self) -> Result<u64, EndOfStream> {
        let mut value = 0u64;
        for index in 0..10u32 {
            let byte = self.read_bits(8)? as u8;
            if index == 9 && byte > 1 {
                return Err(EndOfStream);
            }
            value |= u64::from(byte & 0x7F) << (7 * index);
            if byte < 0x80 {
                return Ok(value);
            }
        }
        Err(EndOfStream)
    }

    /// Reads a zig-zag signed varint.
    pub fn read_varint(&mut self) -> Result<i64, EndOfStream> {
        let raw = self.read_uvarint()?;
        Ok(((raw >> 1) as i64) ^ -((raw & 1) as i64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn bits_are_most_significant_first() {
        let mut writer = BitWriter::default();
        writer.write_bit(true);
        writer.write_bits(0b01, 2);
        writer.write_byte(0xFF);
        assert_eq!(writer.bytes(), [0b1011_1111, 0b1110_0000]);
    }

    proptest! {
        #[test]
        fn round_trip(items in proptest::collection::vec((any::<u64>(), 0u8..=64), 0..64)) {
            let mut writer = BitWriter::default();
            for &(value, count) in &items {
                writer.write_bits(value, count);
            }
            let mut reader = BitReader::new(writer.bytes());
            for &(value, count) in &items {
                let mask = if count == 64 { u64::MAX } else { (1u64 << count) - 1 };
                prop_assert_eq!(reader.read_bits(count).unwrap(), value & mask);
            }
            prop_assert!(reader.remaining_bits() < 8);
        }

        #[test]
        fn varints_read_back_and_match_the_byte_encoding(
            prefix in 0u8..8,
            unsigned in any::<u64>(),
            signed in any::<i64>(),
        ) {
            let mut writer = BitWriter::default();
            writer.write_bits(0, prefix);
            writer.write_uvarint(unsigned);
            writer.write_varint(signed);
            let mut reader = BitReader::new(writer.bytes());
            reader.skip_bits(usize::from(prefix)).unwrap();
            prop_assert_eq!(reader.read_uvarint().unwrap(), unsigned);
            prop_assert_eq!(reader.read_varint().unwrap(), signed);
            let mut aligned = BitWriter::default();
            aligned.write_uvarint(unsigned);
            aligned.write_varint(signed);
            let mut expected = Vec::new();
            crate::tsdb::encoding::put_uvarint(&mut expected, unsigned);
            crate::tsdb::encoding::put_varint(&mut expected, signed);
            prop_assert_eq!(aligned.bytes(), expected.as_slice());
        }

        #[test]
        fn peek_then_skip_reads_what_read_bits_reads(
            bytes in proptest::collection::vec(any::<u8>(), 0..24),
            counts in proptest::collection::vec(1u8..=57, 0..40),
        ) {
            let mut peeking = BitReader::new(&bytes);
            let mut reading = BitReader::new(&bytes);
            for count in counts {
                let peeked = peeking.peek_bits(count);
                match reading.read_bits(count) {
                    Ok(value) => {
                        prop_assert_eq!(peeked, value);
                        prop_assert!(peeking.skip_bits(usize::from(count)).is_ok());
                    }
                    Err(_) => {
                        prop_assert!(peeking.skip_bits(usize::from(count)).is_err());
                        // Past the end, the missing bits read as zeros.
                        let left = reading.remaining_bits() as u32;
                        let rest = reading.read_bits(left as u8).unwrap_or(0);
                        prop_assert_eq!(peeked >> (u32::from(count) - left), rest);
                        break;
                    }
                }
            }
        }
    }
}
