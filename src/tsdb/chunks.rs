//! A block's `chunks/` folder (`tsdb/docs/format/chunks.md`): segment files `000001`, `000002`,
//! … each with an 8-byte header (magic, version, padding) and then chunks of
//! `len(data) uvarint | encoding byte | data | CRC32C(encoding, data)`. A chunk's reference is
//! `segment index (from 0) << 32 | byte offset in that segment`.

use super::chunkenc::Encoding;
use super::crc32c::Crc32c;
use super::encoding::{DecodeError, put_uvarint, read_uvarint};
use super::error::TsdbError;
use std::fs::File;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// The chunk segment files' magic number.
pub const MAGIC_CHUNKS: u32 = 0x85BD_40DD;
/// The chunk segment format version.
pub const CHUNKS_FORMAT_V1: u8 = 1;
/// Header length: magic, version, 3 bytes of padding.
pub const SEGMENT_HEADER_LEN: u64 = 8;
/// Prometheus's default segment size: a new file is cut before one would grow past it.
pub const DEFAULT_SEGMENT_BYTES: u64 = 512 << 20;
/// The largest chunk we read; Prometheus's chunks stay far below this.
pub const MAX_CHUNK_BYTES: u64 = 16 << 20;

/// Writes chunks into a block's `chunks/` folder.
#[derive(Debug)]
pub struct ChunkWriter {
    folder: PathBuf,
    segment_bytes: u64,
    current: Option<(File, PathBuf)>,
    segment_index: u64,
    position: u64,
    buffer: Vec<u8>,
}

impl ChunkWriter {
    /// A writer creating `folder`; files are cut before they pass `segment_bytes`.
    pub fn create(folder: &Path, segment_bytes: u64) -> Result<ChunkWriter, TsdbError> {
        std::fs::create_dir_all(folder).map_err(TsdbError::io(folder))?;
        Ok(ChunkWriter {
            folder: folder.to_path_buf(),
            segment_bytes: segment_bytes.max(SEGMENT_HEADER_LEN + 1),
            current: None,
            segment_index: 0,
            position: 0,
            buffer: Vec::new(),
        })
    }

    /// Appends one chunk and returns its reference.
    pub fn write_chunk(&mut self, encoding: Encoding, data: &[u8]) -> Result<u64, TsdbError> {
        let mut record = Vec::with_capacity(data.len() + 15);
        put_uvarint(&mut record, data.len() as u64);
        record.push(encoding as u8);
        record.extend_from_slice(data);
        let mut crc = Crc32c::new();
        crc.update(&[encoding as u8]);
        crc.update(data);
        record.extend_from_slice(&crc.finish().to_be_bytes());

        let needs_new_segment = match self.current {
            None => true,
            // A chunk bigger than a whole segment still gets a segment to itself.
            Some(_) => {
                self.position + record.len() as u64 > self.segment_bytes
                    && self.position > SEGMENT_HEADER_LEN
            }
        };
        if needs_new_segment {
            self.cut()?;
        }
        if self.position > u64::from(u32::MAX) {
            return Err(TsdbError::Usage(
                "chunk segment offset exceeds 32 bits".into(),
            ));
        }
        let chunk_ref = (self.segment_index - 1) << 32 | self.position;
        self.buffer.extend_from_slice(&record);
        self.position += record.len() as u64;
        if self.buffer.len() >= 1 << 20 {
            self.flush_buffer()?;
        }
        Ok(chunk_ref)
    }

    fn flush_buffer(&mut self) -> Result<(), TsdbError> {
        if let Some((file, path)) = &mut self.current {
            file.write_all(&self.buffer).map_err(TsdbError::io(path))?;
        }
        self.buffer.clear();
        Ok(())
    }

    fn finish_segment(&mut self) -> Result<(), TsdbError> {
        self.flush_buffer()?;
        if let Some((file, path)) = self.current.take() {
            file.sync_all().map_err(TsdbError::io(&path))?;
        }
        Ok(())
    }

    fn cut(&mut self) -> Result<(), TsdbError> {
        self.finish_segment()?;
        self.segment_index += 1;
        let path = self.folder.join(format!("{:06}", self.segment_index));
        let file = File::create(&path).map_err(TsdbError::io(&path))?;
        let mut header = MAGIC_CHUNKS.to_be_bytes().to_vec();
        header.extend_from_slice(&[CHUNKS_FORMAT_V1, 0, 0, 0]);
        self.buffer.extend_from_slice(&header);
        self.current = Some((file, path));
        self.position = SEGMENT_HEADER_LEN;
        Ok(())
    }

    /// Flushes and fsyncs the last segment and the folder.
    pub fn finish(mut self) -> Result<(), TsdbError> {
        self.finish_segment()?;
        sync_folder(&self.folder)
    }
}

/// fsyncs a folder so the files created in it survive a crash.
pub(crate) fn sync_folder(folder: &Path) -> Result<(), TsdbError> {
    File::open(folder)
        .and_then(|f| f.sync_all())
        .map_err(TsdbError::io(folder))
}

/// Reads chunks from a block's `chunks/` folder with positioned reads: memory use is one chunk
/// at a time, whatever the block's size.
#[derive(Debug)]
pub struct ChunkReader {
    segments: Vec<(File, PathBuf, u64)>,
}

impl ChunkReader {
    /// Opens every segment in `folder` (files named by six digits, in order) and checks headers.
    pub fn open(folder: &Path) -> Result<ChunkReader, TsdbError> {
        let mut names: Vec<(u64, PathBuf)> = Vec::new();
        for entry in std::fs::read_dir(folder).map_err(TsdbError::io(folder))? {
            let entry = entry.map_err(TsdbError::io(folder))?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if name.len() == 6
                && name.bytes().all(|b| b.is_ascii_digit())
                && let Ok(number) = name.parse::<u64>()
            {
                names.push((number, entry.path()));
            }
        }
        names.sort();
        let mut segments = Vec::with_capacity(names.len());
        for (_, path) in names {
            let file = File::open(&path).map_err(TsdbError::io(&path))?;
            let length = file.metadata().map_err(TsdbError::io(&path))?.len();
            let mut header = [0u8; 8];
            file.read_exact_at(&mut header, 0)
                .map_err(TsdbError::io(&path))?;
            let magic = u32::from_be_bytes([header[0], header[1], header[2], header[3]]);
            if magic != MAGIC_CHUNKS {
                return Err(TsdbError::invalid(
                    &path,
                    format!("bad chunks magic {magic:#010x}"),
                ));
            }
            if header[4] != CHUNKS_FORMAT_V1 {
                return Err(TsdbError::invalid(
                    &path,
                    format!("chunks format version {} (only 1 is read)", header[4]),
                ));
            }
            segments.push((file, path, length));
        }
        Ok(ChunkReader { segments })
    }

    /// Number of segment files.
    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }

    /// Reads and verifies the chunk at `chunk_ref`: its encoding byte and data.
    pub fn chunk(&self, chunk_ref: u64) -> Result<(u8, Vec<u8>), TsdbError> {
        let (segment, offset) = split_chunk_ref(chunk_ref);
        let mut span = ChunkSpan::default();
        self.load(&mut span, segment, offset, 0)?;
        let Some((body, stored)) = span.record_parts(segment, offset) else {
            return Err(record_not_in_span(chunk_ref));
        };
        let mut crc = Crc32c::new();
        crc.update(body);
        if crc.finish().to_be_bytes() != stored {
            return Err(self.corrupt(segment, offset, "chunk checksum mismatch".into()));
        }
        Ok((body[0], body[1..].to_vec()))
    }

    /// A corruption error naming the segment file and the record's offset.
    fn corrupt(&self, segment: usize, offset: u64, reason: String) -> TsdbError {
        TsdbError::Corrupt {
            path: self.segments[segment].1.clone(),
            source: DecodeError {
                offset: offset as usize,
                reason,
            },
        }
    }
}

/// A chunk reference is the segment number in the upper 32 bits, the offset in the lower.
fn split_chunk_ref(chunk_ref: u64) -> (usize, u64) {
    ((chunk_ref >> 32) as usize, chunk_ref & 0xFFFF_FFFF)
}

fn record_not_in_span(chunk_ref: u64) -> TsdbError {
    TsdbError::Usage(format!(
        "chunk ref {chunk_ref:#x}: record not in the span just read"
    ))
}

/// The most bytes one [`ChunkSpan`] read covers: the query path's buffer stays this small
/// (plus one record when a single chunk is bigger), whatever the selection.
pub const MAX_SPAN_BYTES: u64 = 1 << 20;

/// A reusable buffer holding a byte range of one chunk segment, so that the query path reads
/// the chunks of many series with one positioned read (a compaction writes a series' chunks,
/// and consecutive series' chunks, next to each other) and decodes them from the buffer.
#[derive(Debug, Default)]
pub struct ChunkSpan {
    segment: usize,
    start: u64,
    buffer: Vec<u8>,
}

impl ChunkSpan {
    /// The record starting at `offset` of `segment`, when the buffer holds all of it: its
    /// encoding byte and data.
    fn record(&self, segment: usize, offset: u64) -> Option<(u8, &[u8])> {
        let (body, _) = self.record_parts(segment, offset)?;
        Some((body[0], &body[1..]))
    }

    /// The record's body (encoding byte and data) and its stored CRC, when the buffer holds
    /// both (the bounds check in `load` guarantees the record lies in the file).
    fn record_parts(&self, segment: usize, offset: u64) -> Option<(&[u8], &[u8])> {
        if segment != self.segment || offset < self.start {
            return None;
        }
        let position = usize::try_from(offset - self.start).ok()?;
        let rest = self.buffer.get(position..)?;
        let (data_length, varint_length) = read_uvarint(rest)?;
        let body_end = varint_length
            .checked_add(1)?
            .checked_add(usize::try_from(data_length).ok()?)?;
        let body = rest.get(varint_length..body_end)?;
        let crc = rest.get(body_end..body_end.checked_add(4)?)?;
        Some((body, crc))
    }
}

impl ChunkReader {
    /// The chunk at `chunk_ref` for a query: taken from `span` when it holds the whole record,
    /// otherwise `span` is refilled with one read from the chunk's offset to `end_hint`
    /// (an offset in the same segment, where the caller expects the chunks it will ask for
    /// next to end; capped at [`MAX_SPAN_BYTES`] and the file's end), or to the record's end
    /// if that is further. Returns the encoding byte and the data.
    ///
    /// The record's checksum is not verified: this is the query path, and Prometheus does not
    /// verify chunk checksums there either. [`ChunkReader::chunk`] (compaction) does. The
    /// data is still bounds-checked, and decoding it cannot panic.
    pub fn chunk_in_span<'s>(
        &self,
        span: &'s mut ChunkSpan,
        chunk_ref: u64,
        end_hint: u64,
    ) -> Result<(u8, &'s [u8]), TsdbError> {
        let (segment, offset) = split_chunk_ref(chunk_ref);
        if span.record(segment, offset).is_none() {
            self.load(span, segment, offset, end_hint)?;
        }
        span.record(segment, offset)
            .ok_or_else(|| record_not_in_span(chunk_ref))
    }

    /// Fills `span` from `offset` of `segment` to `end_hint` (bounded), extended to the end
    /// of the record at `offset` if that lies beyond; checks the record lies in the file.
    fn load(
        &self,
        span: &mut ChunkSpan,
        segment: usize,
        offset: u64,
        end_hint: u64,
    ) -> Result<(), TsdbError> {
        let Some((file, path, length)) = self.segments.get(segment) else {
            return Err(TsdbError::Usage(format!(
                "chunk segment {segment} requested, the block has {}",
                self.segments.len()
            )));
        };
        let corrupt = |reason: String| self.corrupt(segment, offset, reason);
        if offset < SEGMENT_HEADER_LEN || offset >= *length {
            return Err(corrupt(format!(
                "chunk offset beyond the file's {length} bytes"
            )));
        }
        // At least the longest record header, so one read usually suffices.
        let wanted_end = end_hint
            .min(offset.saturating_add(MAX_SPAN_BYTES))
            .max(offset + 11)
            .min(*length);
        span.segment = segment;
        span.start = offset;
        span.buffer.clear();
        span.buffer.resize((wanted_end - offset) as usize, 0);
        file.read_exact_at(&mut span.buffer, offset)
            .map_err(TsdbError::io(path))?;
        let Some((data_length, varint_length)) = read_uvarint(&span.buffer) else {
            return Err(corrupt("truncated chunk length".into()));
        };
        if data_length > MAX_CHUNK_BYTES {
            return Err(corrupt(format!(
                "chunk length {data_length} exceeds {MAX_CHUNK_BYTES}"
            )));
        }
        let total = varint_length as u64 + 1 + data_length + 4;
        if offset + total > *length {
            return Err(corrupt(format!(
                "chunk of {total} bytes runs past the end of the file"
            )));
        }
        let have = span.buffer.len() as u64;
        if total > have {
            span.buffer.resize(total as usize, 0);
            file.read_exact_at(&mut span.buffer[have as usize..], offset + have)
                .map_err(TsdbError::io(path))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_read_and_cut_segments() {
        let folder = tempfile::tempdir().unwrap();
        let path = folder.path().join("chunks");
        let mut writer = ChunkWriter::create(&path, 64).unwrap();
        let mut refs = Vec::new();
        for index in 0..10u8 {
            refs.push(writer.write_chunk(Encoding::Xor, &[index; 20]).unwrap());
        }
        writer.finish().unwrap();
        assert_eq!(refs[0], 8);
        assert!(
            refs.iter().any(|r| r >> 32 > 0),
            "small segments must be cut"
        );
        let reader = ChunkReader::open(&path).unwrap();
        for (index, chunk_ref) in refs.iter().enumerate() {
            assert_eq!(
                reader.chunk(*chunk_ref).unwrap(),
                (1, vec![index as u8; 20])
            );
        }
        // The query path reads them from spans: a tight hint, one covering everything, and
        // one pointing backwards all give the same records.
        let mut span = ChunkSpan::default();
        for hint in [0u64, 1 << 20, 9] {
            for (index, chunk_ref) in refs.iter().enumerate() {
                let (encoding, data) = reader.chunk_in_span(&mut span, *chunk_ref, hint).unwrap();
                assert_eq!((encoding, data), (1, &[index as u8; 20][..]));
            }
        }
        assert!(reader.chunk_in_span(&mut span, 3 << 32, 0).is_err());
        assert!(reader.chunk_in_span(&mut span, 100_000, 0).is_err());
        // Damage one byte: the checksum catches it and names the file.
        let file = path.join("000001");
        let mut bytes = std::fs::read(&file).unwrap();
        bytes[12] ^= 0xFF;
        std::fs::write(&file, bytes).unwrap();
        let reader = ChunkReader::open(&path).unwrap();
        let error = reader.chunk(refs[0]).unwrap_err().to_string();
        assert!(
            error.contains("000001") && error.contains("checksum"),
            "{error}"
        );
    }
}
