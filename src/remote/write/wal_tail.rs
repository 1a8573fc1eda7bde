//! A reader that follows the WAL while the TSDB appends to it: the segment framing of
//! Prometheus's `wlog` (`tsdb/docs/format/wal.md`) parsed incrementally, so a record that is
//! only half on disk yet is waited for instead of being taken for damage.
//!
//! The TSDB's own `read_segment` reads a closed segment in one go; a tailing reader needs to
//! stop at "not yet written" and resume there, which is this module. Framing: 32 KiB pages;
//! each fragment has a 7-byte header (type 1 full, 2 first, 3 middle, 4 last, bit 3 for Snappy;
//! length `u16 BE`; CRC32C `u32 BE`); a zero type byte pads the rest of the page; records never
//! cross segments. The writer only creates segment `n + 1` after padding and fsyncing `n`, so
//! once a later segment exists, the current one is complete.

use crate::tsdb::crc32c::crc32c;
use crate::tsdb::wal::segment::{self, MAX_RECORD_BYTES, PAGE_BYTES};
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

const HEADER: usize = segment::FRAGMENT_HEADER_BYTES;
const FULL: u8 = 1;
const FIRST: u8 = 2;
const MIDDLE: u8 = 3;
const LAST: u8 = 4;
const SNAPPY: u8 = 1 << 3;
/// Bytes read from a segment per call: a bound on the memory one step takes.
const READ_CHUNK: usize = 1 << 20;

/// A place in the WAL: a segment and a byte offset in it (always a record boundary).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Position {
    pub segment: u64,
    pub offset: u64,
}

/// What the start of a buffer holds.
#[derive(Debug, PartialEq)]
pub enum Frame {
    /// A whole record (decompressed); it started at `start` (relative to the buffer) and
    /// `consumed` bytes of the buffer, padding before it included, are used up.
    Record {
        record: Vec<u8>,
        start: usize,
        consumed: usize,
    },
    /// Only page padding: `consumed` bytes of it can be skipped.
    Padding { consumed: usize },
    /// The buffer ends inside a record (or is empty).
    NeedMore,
    /// Damage at `offset` (relative to the buffer).
    Corrupt { offset: usize, reason: String },
}

/// Parses the first record of `buffer`, whose first byte is at `base` in the segment (the
/// page boundaries depend on it). Sans-IO.
pub fn next_frame(buffer: &[u8], base: u64) -> Frame {
    let page_end = |at: usize| -> usize {
        let absolute = base + at as u64;
        let end = (absolute / PAGE_BYTES as u64 + 1) * PAGE_BYTES as u64;
        (end - base) as usize
    };
    let mut position = 0usize;
    let mut start = None;
    let mut assembled: Vec<u8> = Vec::new();
    let mut compressed = false;
    loop {
        let Some(&kind_byte) = buffer.get(position) else {
            return match start {
                None if position > 0 => Frame::Padding { consumed: position },
                _ => Frame::NeedMore,
            };
        };
        if kind_byte == 0 {
            let end = page_end(position);
            let available = end.min(buffer.len());
            if buffer[position..available].iter().any(|&b| b != 0) {
                return Frame::Corrupt {
                    offset: position,
                    reason: "non-zero bytes in page padding".into(),
                };
            }
            position = available;
            if available < end {
                // The rest of the page is not on disk yet.
                return match start {
                    None => Frame::Padding { consumed: position },
                    Some(_) => Frame::NeedMore,
                };
            }
            continue;
        }
        if position + HEADER > buffer.len() {
            return Frame::NeedMore;
        }
        if position + HEADER > page_end(position) {
            return Frame::Corrupt {
                offset: position,
                reason: "fragment header crosses a page".into(),
            };
        }
        let (_, length, stored) = segment::fragment_header(&buffer[position..]);
        let data_start = position + HEADER;
        let data_end = data_start + length;
        if data_end > page_end(position) {
            return Frame::Corrupt {
                offset: position,
                reason: "fragment runs past its page".into(),
            };
        }
        if data_end > buffer.len() {
            return Frame::NeedMore;
        }
        let data = &buffer[data_start..data_end];
        if crc32c(data) != stored {
            return Frame::Corrupt {
                offset: position,
                reason: "fragment checksum mismatch".into(),
            };
        }
        let kind = kind_byte & (SNAPPY - 1);
        match (kind, start) {
            (FULL, None) | (FIRST, None) => {
                start = Some(position);
                compressed = kind_byte & SNAPPY != 0;
                assembled.extend_from_slice(data);
            }
            (MIDDLE, Some(_)) | (LAST, Some(_)) => {
                if assembled.len() + data.len() > MAX_RECORD_BYTES {
                    return Frame::Corrupt {
                        offset: position,
                        reason: format!("record exceeds {MAX_RECORD_BYTES} bytes"),
                    };
                }
                assembled.extend_from_slice(data);
            }
            (kind, _) => {
                return Frame::Corrupt {
                    offset: position,
                    reason: format!("unexpected fragment type {kind}"),
                };
            }
        }
        position = data_end;
        if kind == FULL || kind == LAST {
            let Some(start) = start else {
                return Frame::NeedMore;
            };
            let record = if compressed {
                match decompress(&assembled) {
                    Ok(plain) => plain,
                    Err(reason) => {
                        return Frame::Corrupt {
                            offset: start,
                            reason,
                        };
                    }
                }
            } else {
                assembled
            };
            return Frame::Record {
                record,
                start,
                consumed: position,
            };
        }
    }
}

fn decompress(bytes: &[u8]) -> Result<Vec<u8>, String> {
    let length =
        snap::raw::decompress_len(bytes).map_err(|error| format!("bad Snappy record: {error}"))?;
    if length > MAX_RECORD_BYTES {
        return Err(format!("Snappy record would decompress to {length} bytes"));
    }
    snap::raw::Decoder::new()
        .decompress_vec(bytes)
        .map_err(|error| format!("bad Snappy record: {error}"))
}

/// One record read from the WAL, with where it starts and ends.
#[derive(Debug)]
pub struct TailRecord {
    pub start: Position,
    pub end: Position,
    pub bytes: Vec<u8>,
}

/// Follows the segments of one WAL folder from a position on.
#[derive(Debug)]
pub struct WalTail {
    folder: PathBuf,
    segment: u64,
    file: Option<File>,
    /// Bytes read but not consumed; `buffer[0]` is at `buffer_offset` in the segment.
    buffer: Vec<u8>,
    buffer_offset: u64,
    /// Records skipped because of damage (a later segment goes on).
    pub damaged_segments: u64,
}

impl WalTail {
    /// A reader starting at `from` (a record boundary).
    pub fn new(folder: &Path, from: Position) -> WalTail {
        WalTail {
            folder: folder.to_path_buf(),
            segment: from.segment,
            file: None,
            buffer: Vec::new(),
            buffer_offset: from.offset,
            damaged_segments: 0,
        }
    }

    /// Where the next record starts (or where reading resumes).
    pub fn position(&self) -> Position {
        Position {
            segment: self.segment,
            offset: self.buffer_offset,
        }
    }

    fn next_segment_after(&self, current: u64) -> std::io::Result<Option<u64>> {
        let segments = segment::list_segments(&self.folder)
            .map_err(|error| std::io::Error::other(error.to_string()))?;
        Ok(segments.into_iter().find(|&number| number > current))
    }

    fn move_to(&mut self, segment: u64) {
        self.segment = segment;
        self.file = None;
        self.buffer.clear();
        self.buffer_offset = 0;
    }

    /// Reads more of the current segment into the buffer; the bytes added.
    fn fill(&mut self) -> std::io::Result<Option<usize>> {
        if self.file.is_none() {
            let path = segment::segment_path(&self.folder, self.segment);
            let mut file = match File::open(&path) {
                Ok(file) => file,
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                Err(error) => return Err(error),
            };
            file.seek(SeekFrom::Start(
                self.buffer_offset + self.buffer.len() as u64,
            ))?;
            self.file = Some(file);
        }
        let Some(file) = self.file.as_mut() else {
            return Ok(None);
        };
        let before = self.buffer.len();
        let mut chunk = file.take(READ_CHUNK as u64);
        chunk.read_to_end(&mut self.buffer)?;
        Ok(Some(self.buffer.len() - before))
    }

    fn consume(&mut self, count: usize) {
        self.buffer.drain(..count);
        self.buffer_offset += count as u64;
    }

    /// The next whole record, or `None` when the reader is at the end of what is written.
    pub fn next_record(&mut self) -> std::io::Result<Option<TailRecord>> {
        loop {
            match next_frame(&self.buffer, self.buffer_offset) {
                Frame::Record {
                    record,
                    start,
                    consumed,
                } => {
                    let start = Position {
                        segment: self.segment,
                        offset: self.buffer_offset + start as u64,
                    };
                    self.consume(consumed);
                    return Ok(Some(TailRecord {
                        start,
                        end: self.position(),
                        bytes: record,
                    }));
                }
                Frame::Padding { consumed } => {
                    self.consume(consumed);
                    continue;
                }
                Frame::Corrupt { offset, reason } => {
                    // The active segment may be caught mid-write; only a closed one is damaged.
                    match self.next_segment_after(self.segment)? {
                        Some(next) => {
                            tracing::warn!(
                                segment = %segment::segment_path(&self.folder, self.segment).display(),
                                offset = self.buffer_offset + offset as u64,
                                %reason,
                                "remote write: damaged WAL segment, going on with the next one"
                            );
                            self.damaged_segments += 1;
                            self.move_to(next);
                            continue;
                        }
                        None => {
                            // Re-read from disk next time: the bytes may have been half-copied.
                            self.file = None;
                            let keep = self.buffer_offset;
                            self.buffer.clear();
                            self.buffer_offset = keep;
                            return Ok(None);
                        }
                    }
                }
                Frame::NeedMore => {}
            }
            // Whether a later segment exists must be known before reading to the end: the
            // writer creates it only after this one is complete.
            let next = self.next_segment_after(self.segment)?;
            match self.fill()? {
                Some(added) if added > 0 => continue,
                Some(_) => {}
                None => {
                    // The segment is gone (folded into a checkpoint) or not created yet.
                    if let Some(next) = next {
                        tracing::warn!(
                            segment = self.segment,
                            "remote write: WAL segment removed before it was read; samples in it are lost for this queue"
                        );
                        self.move_to(next);
                        continue;
                    }
                    return Ok(None);
                }
            }
            let Some(next) = next else {
                return Ok(None);
            };
            if !self.buffer.is_empty() {
                tracing::warn!(
                    segment = %segment::segment_path(&self.folder, self.segment).display(),
                    offset = self.buffer_offset,
                    "remote write: torn record at the end of a closed WAL segment, skipped"
                );
                self.damaged_segments += 1;
            }
            self.move_to(next);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::tsdb::wal::segment::WalWriter;

    #[test]
    fn follows_records_as_they_are_written_and_across_segments() {
        let folder = tempfile::tempdir().unwrap();
        let mut writer = WalWriter::create(folder.path(), 0, 2 * PAGE_BYTES).unwrap();
        let mut tail = WalTail::new(
            folder.path(),
            Position {
                segment: 0,
                offset: 0,
            },
        );
        assert!(tail.next_record().unwrap().is_none());
        let records: Vec<Vec<u8>> = (0..30u32)
            .map(|i| vec![(i % 250) as u8 + 1; (i as usize * 1931) % 40_000 + 1])
            .collect();
        let mut read = Vec::new();
        for record in &records {
            writer.log(record).unwrap();
            writer.sync().unwrap();
            while let Some(record) = tail.next_record().unwrap() {
                assert!(record.end > record.start);
                read.push(record.bytes);
            }
        }
        assert_eq!(read, records);
        assert!(tail.position().segment > 0, "segments were crossed");
    }

    #[test]
    fn a_half_written_record_is_waited_for() {
        let folder = tempfile::tempdir().unwrap();
        let mut writer = WalWriter::create(folder.path(), 0, 4 * PAGE_BYTES).unwrap();
        let big = vec![7u8; 50_000];
        writer.log(&big).unwrap();
        writer.sync().unwrap();
        let whole = std::fs::read(segment::segment_path(folder.path(), 0)).unwrap();
        for cut in [0, 3, 7, 100, PAGE_BYTES, PAGE_BYTES + 5, whole.len() - 1] {
            assert_eq!(
                next_frame(&whole[..cut], 0),
                Frame::NeedMore,
                "cut at {cut}"
            );
        }
        match next_frame(&whole, 0) {
            Frame::Record { record, start, .. } => {
                assert_eq!((record, start), (big, 0));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn damage_is_reported_not_waited_for() {
        let mut bytes = vec![FULL, 0, 3];
        bytes.extend_from_slice(&crc32c(b"abd").to_be_bytes());
        bytes.extend_from_slice(b"abc");
        assert!(matches!(
            next_frame(&bytes, 0),
            Frame::Corrupt { offset: 0, .. }
        ));
        assert!(matches!(
            next_frame(&[LAST, 0, 0, 0, 0, 0, 0], 0),
            Frame::Corrupt { .. }
        ));
    }

    #[test]
    fn resumes_from_a_record_boundary() {
        let folder = tempfile::tempdir().unwrap();
        let mut writer = WalWriter::create(folder.path(), 0, 8 * PAGE_BYTES).unwrap();
        for i in 1..=5u8 {
            writer.log(&[i; 10]).unwrap();
        }
        writer.sync().unwrap();
        let mut tail = WalTail::new(
            folder.path(),
            Position {
                segment: 0,
                offset: 0,
            },
        );
        let _ = tail.next_record().unwrap().unwrap();
        let second = tail.next_record().unwrap().unwrap();
        let mut resumed = WalTail::new(folder.path(), second.start);
        assert_eq!(resumed.next_record().unwrap().unwrap().bytes, vec![2u8; 10]);
    }
}
