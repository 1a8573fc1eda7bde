//! The write-ahead log's files, in Prometheus's `wlog` layout (`tsdb/docs/format/wal.md`):
//! segments named by eight digits, each made of 32 KiB pages; a record is split into fragments
//! that never cross a page, each with a 7-byte header — type (1 full, 2 first, 3 middle,
//! 4 last; bit 3 marks Snappy compression), length `u16 BE`, CRC32C of the fragment `u32 BE`.
//! A zero type byte means the rest of the page is padding. Records never cross segments.

use crate::tsdb::crc32c::crc32c;
use crate::tsdb::error::TsdbError;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// Page size.
pub const PAGE_BYTES: usize = 32 * 1024;
/// Fragment header size.
pub const FRAGMENT_HEADER_BYTES: usize = 7;
/// Prometheus's default segment size.
pub const DEFAULT_SEGMENT_BYTES: usize = 128 * 1024 * 1024;

const FRAGMENT_FULL: u8 = 1;
const FRAGMENT_FIRST: u8 = 2;
const FRAGMENT_MIDDLE: u8 = 3;
const FRAGMENT_LAST: u8 = 4;
const SNAPPY_FLAG: u8 = 1 << 3;
const TYPE_MASK: u8 = SNAPPY_FLAG - 1;

/// Segment numbers in `folder`, sorted.
/// A fragment's header at the start of `header` (at least [`FRAGMENT_HEADER_BYTES`] long):
/// its type byte (fragment kind and compression flags), data length and stored CRC32C.
pub fn fragment_header(header: &[u8]) -> (u8, usize, u32) {
    let length = usize::from(u16::from_be_bytes([header[1], header[2]]));
    let crc = u32::from_be_bytes([header[3], header[4], header[5], header[6]]);
    (header[0], length, crc)
}

/// The fragment kind of a record's piece: whether it is the first and whether the last.
fn fragment_kind(first: bool, last: bool) -> u8 {
    match (first, last) {
        (true, true) => FRAGMENT_FULL,
        (true, false) => FRAGMENT_FIRST,
        (false, true) => FRAGMENT_LAST,
        (false, false) => FRAGMENT_MIDDLE,
    }
}

pub fn list_segments(folder: &Path) -> Result<Vec<u64>, TsdbError> {
    let mut numbers = Vec::new();
    let entries = match std::fs::read_dir(folder) {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(numbers),
        Err(error) => return Err(TsdbError::io(folder)(error)),
    };
    for entry in entries {
        let entry = entry.map_err(TsdbError::io(folder))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.len() == 8
            && name.bytes().all(|b| b.is_ascii_digit())
            && let Ok(number) = name.parse()
        {
            numbers.push(number);
        }
    }
    numbers.sort_unstable();
    Ok(numbers)
}

/// The path of segment `number` in `folder`.
pub fn segment_path(folder: &Path, number: u64) -> PathBuf {
    folder.join(format!("{number:08}"))
}

/// Appends records to the WAL. Records reach the file at [`WalWriter::flush`] (they then
/// survive the process being killed: the page cache keeps them) and the disk at
/// [`WalWriter::sync`] (they then survive a power loss); a segment cut syncs the segment.
#[derive(Debug)]
pub struct WalWriter {
    folder: PathBuf,
    segment_bytes: usize,
    segment: u64,
    file: File,
    /// Bytes written to the current segment (including ones still in `pending`).
    segment_position: usize,
    pending: Vec<u8>,
    /// Reused for encoding samples records (see [`WalWriter::log_samples`]).
    record_buffer: Vec<u8>,
    /// fsyncs done by this writer (all segments), and their total duration.
    fsyncs: u64,
    fsync_nanos: u64,
}

impl WalWriter {
    /// Starts a new segment numbered `segment` in `folder` (created if missing). Prometheus
    /// also starts a fresh segment on every open, so a torn tail is never appended to.
    pub fn create(
        folder: &Path,
        segment: u64,
        segment_bytes: usize,
    ) -> Result<WalWriter, TsdbError> {
        std::fs::create_dir_all(folder).map_err(TsdbError::io(folder))?;
        let path = segment_path(folder, segment);
        let file = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .open(&path)
            .map_err(TsdbError::io(&path))?;
        crate::tsdb::chunks::sync_folder(folder)?;
        Ok(WalWriter {
            folder: folder.to_path_buf(),
            segment_bytes: segment_bytes.max(2 * PAGE_BYTES) / PAGE_BYTES * PAGE_BYTES,
            segment,
            file,
            segment_position: 0,
            pending: Vec::with_capacity(PAGE_BYTES),
            record_buffer: Vec::new(),
            fsyncs: 0,
            fsync_nanos: 0,
        })
    }

    /// fsyncs done so far, and their total duration in nanoseconds (for the fsync metrics).
    pub fn fsync_totals(&self) -> (u64, u64) {
        (self.fsyncs, self.fsync_nanos)
    }

    /// The current segment's number.
    pub fn segment(&self) -> u64 {
        self.segment
    }

    /// Bytes in the current segment.
    pub fn segment_position(&self) -> usize {
        self.segment_position
    }

    fn page_remaining(&self) -> usize {
        PAGE_BYTES - self.segment_position % PAGE_BYTES
    }

    fn pad_page(&mut self) {
        let padding = self.page_remaining();
        if padding < PAGE_BYTES {
            self.pending.resize(self.pending.len() + padding, 0);
            self.segment_position += padding;
        }
    }

    /// Payload bytes that still fit the current segment.
    fn segment_capacity(&self) -> usize {
        if self.segment_position >= self.segment_bytes {
            return 0;
        }
        let page_room = self.page_remaining().saturating_sub(FRAGMENT_HEADER_BYTES);
        let whole_pages = (self.segment_bytes - self.segment_position) / PAGE_BYTES;
        let whole_pages = if self.page_remaining() == PAGE_BYTES {
            whole_pages.saturating_sub(1)
        } else {
            whole_pages
        };
        page_room + whole_pages * (PAGE_BYTES - FRAGMENT_HEADER_BYTES)
    }

    /// Appends a samples record of `samples`, encoded in a buffer the writer keeps between
    /// calls (commits pay no allocation for it).
    pub fn log_samples(
        &mut self,
        samples: &[crate::tsdb::wal::record::RefSample],
    ) -> Result<(), TsdbError> {
        let mut buffer = std::mem::take(&mut self.record_buffer);
        crate::tsdb::wal::record::encode_samples_into(&mut buffer, samples);
        let logged = self.log(&buffer);
        self.record_buffer = buffer;
        logged
    }

    /// Appends one record (buffered).
    pub fn log(&mut self, record: &[u8]) -> Result<(), TsdbError> {
        let most = self.segment_bytes / PAGE_BYTES * (PAGE_BYTES - FRAGMENT_HEADER_BYTES);
        if record.len() > most {
            return Err(TsdbError::Usage(format!(
                "WAL record of {} bytes exceeds a segment ({most} bytes of payload)",
                record.len()
            )));
        }
        if self.page_remaining() <= FRAGMENT_HEADER_BYTES {
            self.pad_page();
        }
        if record.len() > self.segment_capacity() {
            self.cut_segment()?;
        }
        let mut rest = record;
        let mut first = true;
        loop {
            if self.page_remaining() <= FRAGMENT_HEADER_BYTES {
                self.pad_page();
            }
            let room = self.page_remaining() - FRAGMENT_HEADER_BYTES;
            let take = room.min(rest.len());
            let (part, remainder) = rest.split_at(take);
            let kind = fragment_kind(first, remainder.is_empty());
            self.pending.push(kind);
            self.pending.extend_from_slice(&(take as u16).to_be_bytes());
            self.pending.extend_from_slice(&crc32c(part).to_be_bytes());
            self.pending.extend_from_slice(part);
            self.segment_position += FRAGMENT_HEADER_BYTES + take;
            rest = remainder;
            first = false;
            if rest.is_empty() {
                break;
            }
        }
        if self.pending.len() >= 4 * PAGE_BYTES {
            self.flush()?;
        }
        Ok(())
    }

    /// Writes everything logged to the segment file (one `write`): after this the records
    /// survive a killed process, as Prometheus's WAL guarantees at commit (it fsyncs only when
    /// a segment is cut).
    pub fn flush(&mut self) -> Result<(), TsdbError> {
        if !self.pending.is_empty() {
            let path = segment_path(&self.folder, self.segment);
            self.file
                .write_all(&self.pending)
                .map_err(TsdbError::io(&path))?;
            self.pending.clear();
        }
        Ok(())
    }

    /// Writes everything logged and fsyncs it: after this, the records survive a crash.
    pub fn sync(&mut self) -> Result<(), TsdbError> {
        self.flush()?;
        let path = segment_path(&self.folder, self.segment);
        let started = std::time::Instant::now();
        let synced = self.file.sync_data().map_err(TsdbError::io(&path));
        self.fsyncs += 1;
        self.fsync_nanos = self
            .fsync_nanos
            .saturating_add(u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX));
        synced
    }

    /// Closes the current segment (padded, fsynced) and starts the next one; returns the
    /// number of the segment closed. Checkpoints cut one so the segments they read are final.
    pub fn next_segment(&mut self) -> Result<u64, TsdbError> {
        let closed = self.segment;
        self.cut_segment()?;
        Ok(closed)
    }

    /// The folder of the log.
    pub fn folder(&self) -> &Path {
        &self.folder
    }

    fn cut_segment(&mut self) -> Result<(), TsdbError> {
        self.pad_page();
        self.sync()?;
        let mut next = WalWriter::create(&self.folder, self.segment + 1, self.segment_bytes)?;
        next.fsyncs = self.fsyncs;
        next.record_buffer = std::mem::take(&mut self.record_buffer);
        next.fsync_nanos = self.fsync_nanos;
        *self = next;
        Ok(())
    }
}

impl Drop for WalWriter {
    /// A writer closed (the node stopping, a segment cut) leaves its records on disk, as
    /// Prometheus's WAL syncs on close.
    fn drop(&mut self) {
        if let Err(error) = self.sync() {
            tracing::warn!(%error, "syncing a WAL segment at close failed");
        }
    }
}

/// Where a segment stopped being readable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalCorruption {
    /// The segment file.
    pub path: PathBuf,
    /// Offset of the first byte not recovered (where the segment was cut back to).
    pub offset: u64,
    /// What was wrong.
    pub reason: String,
}

/// The records of one segment, and where it broke if it did.
#[derive(Debug, Default)]
pub struct SegmentContents {
    /// Whole, checksum-verified records in order.
    pub records: Vec<Vec<u8>>,
    /// Snappy records (Prometheus's default since 2.20) that did not decompress, or would
    /// decompress to more than [`MAX_RECORD_BYTES`]; the checksums held, so they are skipped
    /// rather than treated as a torn tail.
    pub compressed_skipped: u64,
    /// Records that were Snappy-compressed and decompressed fine.
    pub decompressed: u64,
    /// The first damage, if any; records after it are not returned.
    pub corruption: Option<WalCorruption>,
    /// Offset just past the last whole record.
    pub valid_bytes: u64,
}

/// The largest segment we read (a corrupt size never makes us read more).
const MAX_SEGMENT_READ: u64 = 1 << 30;
/// The largest record we decompress (Prometheus's records stay far below a segment).
pub const MAX_RECORD_BYTES: usize = 128 * 1024 * 1024;

/// What reading a segment with [`read_segment_with`] found besides its records.
#[derive(Debug, Default)]
pub struct SegmentSummary {
    /// Snappy records that did not decompress, or would decompress to more than
    /// [`MAX_RECORD_BYTES`] (skipped, see [`SegmentContents::compressed_skipped`]).
    pub compressed_skipped: u64,
    /// Records that were Snappy-compressed and decompressed fine.
    pub decompressed: u64,
    /// The first damage, if any; no record after it was given.
    pub corruption: Option<WalCorruption>,
    /// Offset just past the last whole record.
    pub valid_bytes: u64,
    /// Whether the record callback asked to stop before the end.
    pub stopped: bool,
}

/// Reads one segment's records, stopping at the first torn or damaged fragment.
pub fn read_segment(path: &Path) -> Result<SegmentContents, TsdbError> {
    let mut records = Vec::new();
    let summary = read_segment_with(path, |record| {
        records.push(record.to_vec());
        true
    })?;
    Ok(SegmentContents {
        records,
        compressed_skipped: summary.compressed_skipped,
        decompressed: summary.decompressed,
        corruption: summary.corruption,
        valid_bytes: summary.valid_bytes,
    })
}

/// Pages read from the file at a time by [`read_segment_with`] (fragments never cross a
/// page, so every block holds whole fragments).
const READ_BLOCK_PAGES: usize = 16;

/// Reads one segment's whole, checksum-verified records in order, handing each (decompressed
/// if it was Snappy-compressed) to `on_record` as soon as it is complete, until the first
/// torn or damaged fragment or until `on_record` returns `false`. The file is read a block of
/// pages at a time and a record is lent from the block, or from a buffer reused across
/// records when it spans pages or was compressed: no copy per record, memory bounded by the
/// largest record rather than the segment, and a consumer on another thread starts on the
/// first records while the rest are read.
pub fn read_segment_with(
    path: &Path,
    mut on_record: impl FnMut(&[u8]) -> bool,
) -> Result<SegmentSummary, TsdbError> {
    let mut file = File::open(path)
        .map_err(TsdbError::io(path))?
        .take(MAX_SEGMENT_READ);
    let mut summary = SegmentSummary::default();
    let mut block = vec![0u8; READ_BLOCK_PAGES * PAGE_BYTES];
    // A record spanning fragments: its bytes so far, whether it is compressed, its offset.
    let mut assembling: Vec<u8> = Vec::new();
    let mut assembling_from: Option<(bool, u64)> = None;
    let mut plain: Vec<u8> = Vec::new();
    let mut decoder = snap::raw::Decoder::new();
    let fail = |summary: &mut SegmentSummary, reason: String| {
        summary.corruption = Some(WalCorruption {
            path: path.to_path_buf(),
            offset: summary.valid_bytes,
            reason,
        });
    };
    // Hands a whole record on (decompressed first if it was); whether to go on.
    let mut deliver = |summary: &mut SegmentSummary, record: &[u8], compressed: bool| -> bool {
        if !compressed {
            return on_record(record);
        }
        let length = match snap::raw::decompress_len(record) {
            Ok(length) if length <= MAX_RECORD_BYTES => length,
            _ => {
                summary.compressed_skipped += 1;
                return true;
            }
        };
        plain.resize(length, 0);
        match decoder.decompress(record, &mut plain) {
            Ok(written) => {
                summary.decompressed += 1;
                on_record(&plain[..written])
            }
            Err(_) => {
                summary.compressed_skipped += 1;
                true
            }
        }
    };
    let mut block_start = 0u64;
    loop {
        let filled = fill(&mut file, &mut block).map_err(TsdbError::io(path))?;
        if filled == 0 {
            break;
        }
        let bytes = &block[..filled];
        let mut position = 0usize;
        while position < bytes.len() {
            // Offsets in messages and in `valid_bytes` are the file's.
            let at = block_start + position as u64;
            let page_end = (position / PAGE_BYTES + 1) * PAGE_BYTES;
            let kind_byte = bytes[position];
            if kind_byte == 0 {
                // Padding to the end of the page: it must be all zeros.
                let end = page_end.min(bytes.len());
                if bytes[position..end].iter().any(|&b| b != 0) {
                    fail(
                        &mut summary,
                        format!("non-zero bytes in page padding at offset {at}"),
                    );
                    return Ok(summary);
                }
                position = end;
                if assembling_from.is_none() {
                    summary.valid_bytes = block_start + position as u64;
                }
                continue;
            }
            if position + FRAGMENT_HEADER_BYTES > page_end.min(bytes.len()) {
                fail(&mut summary, format!("torn fragment header at offset {at}"));
                return Ok(summary);
            }
            let (_, length, stored_crc) = fragment_header(&bytes[position..]);
            let data_start = position + FRAGMENT_HEADER_BYTES;
            let data_end = data_start + length;
            if data_end > page_end || data_end > bytes.len() {
                fail(
                    &mut summary,
                    format!("fragment at offset {at} runs past its page or the file"),
                );
                return Ok(summary);
            }
            let data = &bytes[data_start..data_end];
            if crc32c(data) != stored_crc {
                fail(
                    &mut summary,
                    format!("fragment checksum mismatch at offset {at}"),
                );
                return Ok(summary);
            }
            let compressed = kind_byte & SNAPPY_FLAG != 0;
            let kind = kind_byte & TYPE_MASK;
            let end_offset = block_start + data_end as u64;
            match (kind, assembling_from) {
                (FRAGMENT_FULL, None) => {
                    // Counted valid before it is handed on: a consumer that stops here has
                    // had it.
                    summary.valid_bytes = end_offset;
                    if !deliver(&mut summary, data, compressed) {
                        summary.stopped = true;
                        return Ok(summary);
                    }
                }
                (FRAGMENT_FIRST, None) => {
                    assembling.clear();
                    assembling.extend_from_slice(data);
                    assembling_from = Some((compressed, at));
                }
                (FRAGMENT_MIDDLE, Some((_, start))) => {
                    if assembling.len() + data.len() > MAX_RECORD_BYTES {
                        fail(
                            &mut summary,
                            format!(
                                "record starting at offset {start} exceeds {MAX_RECORD_BYTES} bytes"
                            ),
                        );
                        return Ok(summary);
                    }
                    assembling.extend_from_slice(data);
                }
                (FRAGMENT_LAST, Some((compressed, _))) => {
                    assembling.extend_from_slice(data);
                    assembling_from = None;
                    summary.valid_bytes = end_offset;
                    if !deliver(&mut summary, &assembling, compressed) {
                        summary.stopped = true;
                        return Ok(summary);
                    }
                }
                (kind, _) => {
                    fail(
                        &mut summary,
                        format!("unexpected fragment type {kind} at offset {at}"),
                    );
                    return Ok(summary);
                }
            }
            position = data_end;
        }
        block_start += filled as u64;
        if filled < block.len() {
            break;
        }
    }
    if let Some((_, start)) = assembling_from {
        fail(
            &mut summary,
            format!("record starting at offset {start} is torn (no last fragment)"),
        );
    }
    Ok(summary)
}

/// Reads into `buffer` until it is full or the reader ends; the bytes read.
fn fill(reader: &mut impl Read, buffer: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buffer.len() {
        match reader.read(&mut buffer[filled..]) {
            Ok(0) => break,
            Ok(read) => filled += read,
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_cross_pages_and_segments() {
        let folder = tempfile::tempdir().unwrap();
        let mut writer = WalWriter::create(folder.path(), 0, 2 * PAGE_BYTES).unwrap();
        let records: Vec<Vec<u8>> = (0..40u32)
            .map(|i| vec![(i % 251) as u8 + 1; (i as usize * 977) % 20_000 + 1])
            .collect();
        for record in &records {
            writer.log(record).unwrap();
        }
        writer.sync().unwrap();
        let segments = list_segments(folder.path()).unwrap();
        assert!(segments.len() > 2, "{segments:?}");
        let mut read = Vec::new();
        for segment in segments {
            let path = segment_path(folder.path(), segment);
            assert!(std::fs::metadata(&path).unwrap().len() <= 2 * PAGE_BYTES as u64);
            let contents = read_segment(&path).unwrap();
            assert_eq!(contents.corruption, None);
            read.extend(contents.records);
        }
        assert_eq!(read, records);
    }

    /// Lays records out in pages as Prometheus's writer does, each fragment flagged as
    /// Snappy-compressed when its record is (`(bytes as stored, compressed)`).
    fn frame(records: &[(Vec<u8>, bool)]) -> Vec<u8> {
        let mut out = Vec::new();
        for (record, compressed) in records {
            let flag = if *compressed { SNAPPY_FLAG } else { 0 };
            let mut rest = &record[..];
            let mut first = true;
            loop {
                let room = PAGE_BYTES - out.len() % PAGE_BYTES;
                if room <= FRAGMENT_HEADER_BYTES {
                    out.resize(out.len() + room, 0);
                    continue;
                }
                let take = (room - FRAGMENT_HEADER_BYTES).min(rest.len());
                let (part, remainder) = rest.split_at(take);
                let kind = fragment_kind(first, remainder.is_empty());
                out.push(kind | flag);
                out.extend_from_slice(&(take as u16).to_be_bytes());
                out.extend_from_slice(&crc32c(part).to_be_bytes());
                out.extend_from_slice(part);
                rest = remainder;
                first = false;
                if rest.is_empty() {
                    break;
                }
            }
        }
        out
    }

    #[test]
    fn records_stream_across_read_blocks_and_a_damaged_tail_stops_them() {
        let folder = tempfile::tempdir().unwrap();
        let block = READ_BLOCK_PAGES * PAGE_BYTES;
        // Up to three read blocks long, so records span pages and blocks; every third one
        // Snappy-compressed (of bytes that do not compress, so it spans pages too).
        let mut state = 1u64;
        let mut noise = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        };
        let plain: Vec<Vec<u8>> = (0..48usize)
            .map(|i| (0..(i * 7919) % (3 * block) + 1).map(|_| noise()).collect())
            .collect();
        let stored: Vec<(Vec<u8>, bool)> = plain
            .iter()
            .enumerate()
            .map(|(i, record)| {
                if i % 3 == 0 {
                    (
                        snap::raw::Encoder::new().compress_vec(record).unwrap(),
                        true,
                    )
                } else {
                    (record.clone(), false)
                }
            })
            .collect();
        let bytes = frame(&stored);
        assert!(bytes.len() > 10 * block);
        let path = segment_path(folder.path(), 0);
        std::fs::write(&path, &bytes).unwrap();
        let mut seen: Vec<Vec<u8>> = Vec::new();
        let summary = read_segment_with(&path, |record| {
            seen.push(record.to_vec());
            true
        })
        .unwrap();
        assert_eq!(summary.corruption, None);
        assert_eq!(summary.decompressed, 16);
        assert_eq!(summary.valid_bytes, bytes.len() as u64);
        assert!(seen == plain, "records differ");
        // The consumer stops: nothing more is read.
        let mut count = 0;
        let summary = read_segment_with(&path, |_| {
            count += 1;
            count < 5
        })
        .unwrap();
        assert!(summary.stopped);
        assert_eq!(count, 5);
        // A flipped byte in a later block: the records before it, then a corruption at the
        // end of the last whole one.
        let mut damaged = bytes.clone();
        let at = 5 * block + 1234;
        damaged[at] ^= 0x5A;
        std::fs::write(&path, &damaged).unwrap();
        let contents = read_segment(&path).unwrap();
        let corruption = contents.corruption.expect("damage detected");
        assert!(corruption.offset <= at as u64, "{corruption:?}");
        assert_eq!(corruption.offset, contents.valid_bytes);
        let whole = contents.records.len();
        assert!(whole > 0 && whole < plain.len());
        assert!(
            contents.records[..] == plain[..whole],
            "records before the damage differ"
        );
        // A torn tail (the file cut inside a record spanning blocks).
        std::fs::write(&path, &bytes[..4 * block + 77]).unwrap();
        let contents = read_segment(&path).unwrap();
        assert!(contents.corruption.is_some());
        assert!(contents.records[..] == plain[..contents.records.len()]);
    }

    #[test]
    fn snappy_records_are_decompressed() {
        let folder = tempfile::tempdir().unwrap();
        let plain: Vec<u8> = (0..5000u32).map(|i| (i % 7) as u8).collect();
        let compressed = snap::raw::Encoder::new().compress_vec(&plain).unwrap();
        let mut bytes = vec![FRAGMENT_FULL | SNAPPY_FLAG];
        bytes.extend_from_slice(&(compressed.len() as u16).to_be_bytes());
        bytes.extend_from_slice(&crc32c(&compressed).to_be_bytes());
        bytes.extend_from_slice(&compressed);
        // And one that claims Snappy but is not: skipped, not a corruption.
        let junk = [0xFFu8; 9];
        bytes.push(FRAGMENT_FULL | SNAPPY_FLAG);
        bytes.extend_from_slice(&(junk.len() as u16).to_be_bytes());
        bytes.extend_from_slice(&crc32c(&junk).to_be_bytes());
        bytes.extend_from_slice(&junk);
        let path = segment_path(folder.path(), 0);
        std::fs::write(&path, &bytes).unwrap();
        let contents = read_segment(&path).unwrap();
        assert_eq!(contents.records, vec![plain]);
        assert_eq!(contents.decompressed, 1);
        assert_eq!(contents.compressed_skipped, 1);
        assert_eq!(contents.corruption, None);
    }
}
