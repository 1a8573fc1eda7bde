//! Byte-level encoding shared by the TSDB formats: Go's `binary` varints (unsigned LEB128 and
//! zig-zag signed), big-endian integers, and a bounds-checked decoder that never panics on bytes
//! read from disk and reports where decoding failed.

use std::fmt;

/// Appends `value` as an unsigned varint (Go's `binary.PutUvarint`).
pub fn put_uvarint(buf: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        buf.push((value as u8) | 0x80);
        value >>= 7;
    }
    buf.push(value as u8);
}

/// Appends `value` as a zig-zag signed varint (Go's `binary.PutVarint`).
pub fn put_varint(buf: &mut Vec<u8>, value: i64) {
    put_uvarint(buf, ((value << 1) ^ (value >> 63)) as u64);
}

/// Appends a string prefixed with its byte length as an unsigned varint.
pub fn put_uvarint_str(buf: &mut Vec<u8>, value: &str) {
    put_uvarint(buf, value.len() as u64);
    buf.extend_from_slice(value.as_bytes());
}

/// Decodes an unsigned varint from the front of `bytes`: the value and the bytes it took, or
/// `None` when the bytes end first or the value overflows 64 bits.
pub fn read_uvarint(bytes: &[u8]) -> Option<(u64, usize)> {
    let mut value: u64 = 0;
    let mut shift = 0u32;
    for (index, &byte) in bytes.iter().enumerate() {
        if index == 10 {
            return None;
        }
        if index == 9 && byte > 1 {
            return None;
        }
        value |= u64::from(byte & 0x7F) << shift;
        if byte < 0x80 {
            return Some((value, index + 1));
        }
        shift += 7;
    }
    None
}

/// Where and why decoding failed, relative to the start of the buffer being decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    /// Byte offset of the failure.
    pub offset: usize,
    /// What was being read or what was wrong.
    pub reason: String,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "at offset {}: {}", self.offset, self.reason)
    }
}

impl std::error::Error for DecodeError {}

/// A cursor over a byte slice. Every read is bounds-checked; offsets in errors are absolute
/// (`base` is the slice's position in its file).
#[derive(Debug, Clone)]
pub struct Decoder<'a> {
    bytes: &'a [u8],
    position: usize,
    base: usize,
}

impl<'a> Decoder<'a> {
    /// A decoder over `bytes`, which start at file offset `base`.
    pub fn new(bytes: &'a [u8], base: usize) -> Self {
        Decoder {
            bytes,
            position: 0,
            base,
        }
    }

    /// Bytes not read yet.
    pub fn remaining(&self) -> usize {
        self.bytes.len() - self.position
    }

    /// The absolute offset of the next byte.
    pub fn offset(&self) -> usize {
        self.base + self.position
    }

    /// An error at the current position.
    pub fn error(&self, reason: impl Into<String>) -> DecodeError {
        DecodeError {
            offset: self.offset(),
            reason: reason.into(),
        }
    }

    /// Takes the next `count` bytes.
    pub fn bytes(&mut self, count: usize) -> Result<&'a [u8], DecodeError> {
        if count > self.remaining() {
            return Err(self.error(format!(
                "need {count} bytes, only {} left",
                self.remaining()
            )));
        }
        let taken = &self.bytes[self.position..self.position + count];
        self.position += count;
        Ok(taken)
    }

    /// Skips `count` bytes.
    pub fn skip(&mut self, count: usize) -> Result<(), DecodeError> {
        self.bytes(count).map(|_| ())
    }

    /// One byte.
    pub fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.bytes(1)?[0])
    }

    /// A big-endian u32.
    pub fn be_u32(&mut self) -> Result<u32, DecodeError> {
        let b = self.bytes(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// A big-endian u64.
    pub fn be_u64(&mut self) -> Result<u64, DecodeError> {
        let b = self.bytes(8)?;
        let mut array = [0u8; 8];
        array.copy_from_slice(b);
        Ok(u64::from_be_bytes(array))
    }

    /// An unsigned varint.
    pub fn uvarint(&mut self) -> Result<u64, DecodeError> {
        match read_uvarint(&self.bytes[self.position..]) {
            Some((value, length)) => {
                self.position += length;
                Ok(value)
            }
            None => Err(self.error("truncated or overlong varint")),
        }
    }

    /// A zig-zag signed varint.
    pub fn varint(&mut self) -> Result<i64, DecodeError> {
        let raw = self.uvarint()?;
        Ok(((raw >> 1) as i64) ^ -((raw & 1) as i64))
    }

    /// An unsigned varint that must fit `limit`; `what` names it in the error.
    pub fn uvarint_bounded(&mut self, limit: u64, what: &str) -> Result<u64, DecodeError> {
        let at = self.offset();
        let value = self.uvarint()?;
        if value > limit {
            return Err(DecodeError {
                offset: at,
                reason: format!("{what} {value} exceeds the limit {limit}"),
            });
        }
        Ok(value)
    }

    /// A string prefixed with its length as an unsigned varint; it must be UTF-8.
    pub fn uvarint_str(&mut self) -> Result<&'a str, DecodeError> {
        let at = self.offset();
        let length = self.uvarint()?;
        let length = usize::try_from(length).map_err(|_| self.error("string length overflows"))?;
        let bytes = self.bytes(length)?;
        std::str::from_utf8(bytes).map_err(|_| DecodeError {
            offset: at,
            reason: "string is not UTF-8".into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_match_go() {
        let mut buf = Vec::new();
        put_uvarint(&mut buf, 300);
        assert_eq!(buf, [0xAC, 0x02]);
        buf.clear();
        put_varint(&mut buf, -1);
        assert_eq!(buf, [0x01]);
        buf.clear();
        put_varint(&mut buf, 1);
        assert_eq!(buf, [0x02]);
        for value in [0i64, 1, -1, 63, -64, 64, i64::MAX, i64::MIN] {
            buf.clear();
            put_varint(&mut buf, value);
            let mut decoder = Decoder::new(&buf, 0);
            assert_eq!(decoder.varint().unwrap(), value);
            assert_eq!(decoder.remaining(), 0);
        }
        buf.clear();
        put_uvarint(&mut buf, u64::MAX);
        assert_eq!(buf.len(), 10);
        assert_eq!(Decoder::new(&buf, 0).uvarint().unwrap(), u64::MAX);
    }

    #[test]
    fn decoder_reports_offsets() {
        let bytes = [0x80u8, 0x80];
        let mut decoder = Decoder::new(&bytes, 100);
        let error = decoder.uvarint().unwrap_err();
        assert_eq!(error.offset, 100);
        let mut decoder = Decoder::new(&bytes, 7);
        decoder.skip(1).unwrap();
        assert_eq!(decoder.be_u32().unwrap_err().offset, 8);
        // An 11-byte varint is rejected rather than wrapping.
        let long = [0xFFu8; 11];
        assert!(Decoder::new(&long, 0).uvarint().is_err());
    }
}
