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
        let segment = (chunk_ref >> 32) as usize;
        let offset = chunk_ref & 0xFFFF_FFFF;
        let Some((file, path, length)) = self.segments.get(segment) else {
            return Err(TsdbError::Usage(format!(
                "chunk ref {chunk_ref:#x} names segment {segment}, the block has {}",
                self.segments.len()
            )));
        };
        let corrupt = |reason: String| TsdbError::Corrupt {
            path: path.clone(),
            source: DecodeError {
                offset: offset as usize,
                reason,
            },
        };
        if offset < SEGMENT_HEADER_LEN || offset >= *length {
            return Err(corrupt(format!(
                "chunk offset beyond the file's {length} bytes"
            )));
        }
        let mut head = [0u8; 11];
        let available = (*length - offset).min(head.len() as u64) as usize;
        file.read_exact_at(&mut head[..available], offset)
            .map_err(TsdbError::io(path))?;
        let Some((data_length, varint_length)) = read_uvarint(&head[..available]) else {
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
        let mut record = vec![0u8; total as usize];
        file.read_exact_at(&mut record, offset)
            .map_err(TsdbError::io(path))?;
        let body = &record[varint_length..record.len() - 4];
        let stored = &record[record.len() - 4..];
        let mut crc = Crc32c::new();
        crc.update(body);
        if crc.finish().to_be_bytes() != stored {
            return Err(corrupt("chunk checksum mismatch".into()));
        }
        Ok((body[0], body[1..].to_vec()))
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
