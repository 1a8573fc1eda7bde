//! Completed head chunks on disk: `<dir>/chunks_head/`, in Prometheus's head chunk file
//! format (`tsdb/docs/format/head_chunks.md`), so the head keeps in memory only each series'
//! open chunk, the index, and per completed chunk its reference and time range.
//!
//! A file (named by a six-digit sequence number, from `000001`) starts with the magic
//! `0x0130BC91` (4 bytes, big endian), the format version 1 and 3 bytes of padding; then
//! chunks, each: series reference (8 bytes), min time and max time (8 bytes each, big endian),
//! the encoding byte, the data length (uvarint), the data, and a CRC32 (Castagnoli) of all of
//! that, big endian. A chunk's reference is `sequence << 32 | offset of its first byte`.
//! Files are cut before they would pass [`MAX_FILE_BYTES`].
//!
//! Reads are positional (`pread`; mapping the files would need `unsafe`): the bytes not flushed
//! yet are served from the write buffer, others from the file, through a small cache bounded
//! by [`CACHE_BYTES`].
//!
//! The files are not what makes samples durable (the WAL is): [`ChunkDiskMapper::open`]
//! starts from an empty folder and WAL replay writes every completed chunk again, so a file a
//! crash left torn or half-written never needs repairing. [`scan_folder`] reads files back
//! with their checksums checked, for tools and tests.

use super::chunkenc::Encoding;
use super::crc32c::Crc32c;
use super::encoding::{DecodeError, put_uvarint, read_uvarint};
use super::error::TsdbError;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// The folder's name inside the data folder (Prometheus's).
pub const CHUNKS_HEAD_FOLDER: &str = "chunks_head";
/// The first four bytes of a head chunk file.
pub const MAGIC_HEAD_CHUNKS: u32 = 0x0130_BC91;
/// The only format version.
pub const HEAD_CHUNKS_FORMAT_V1: u8 = 1;
/// Magic, version, padding.
pub const FILE_HEADER_BYTES: u64 = 8;
/// A file is cut before a chunk would take it past this (Prometheus's 128 MiB).
pub const MAX_FILE_BYTES: u64 = 128 * 1024 * 1024;
/// Series reference, min and max time, encoding byte, the longest uvarint, CRC.
const MAX_CHUNK_META_BYTES: usize = 8 + 8 + 8 + 1 + 10 + 4;
/// Fixed-size part of a chunk before its length.
const CHUNK_PREFIX_BYTES: usize = 8 + 8 + 8 + 1;
/// Writes are gathered up to this before they go to the file.
const WRITE_BUFFER_BYTES: usize = 1024 * 1024;
/// Chunks read from files are cached up to this many bytes of data.
pub const CACHE_BYTES: usize = 4 * 1024 * 1024;
/// The largest chunk data a file may claim (chunks are cut near 1 KiB; this bounds reads of
/// damaged files).
const MAX_CHUNK_DATA_BYTES: u64 = 16 * 1024 * 1024;

/// Where a chunk is: `sequence << 32 | offset`.
pub type ChunkRef = u64;

fn chunk_ref(sequence: u32, offset: u64) -> ChunkRef {
    (u64::from(sequence) << 32) | (offset & 0xFFFF_FFFF)
}

fn split_ref(chunk_ref: ChunkRef) -> (u32, u64) {
    ((chunk_ref >> 32) as u32, chunk_ref & 0xFFFF_FFFF)
}

/// A file's path: six digits (more past 999999).
pub fn file_path(folder: &Path, sequence: u32) -> PathBuf {
    folder.join(format!("{sequence:06}"))
}

/// The head chunk files in `folder`, by sequence number.
fn list_files(folder: &Path) -> Result<Vec<(u32, PathBuf)>, TsdbError> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(folder).map_err(TsdbError::io(folder))? {
        let entry = entry.map_err(TsdbError::io(folder))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.len() >= 6
            && name.bytes().all(|b| b.is_ascii_digit())
            && let Ok(sequence) = name.parse::<u32>()
        {
            files.push((sequence, entry.path()));
        }
    }
    files.sort();
    Ok(files)
}

/// One file being read (and, for the newest, written).
#[derive(Debug)]
struct ChunkFile {
    file: File,
    path: PathBuf,
    /// Newest max time of its chunks (`i64::MIN` while it has none).
    max_time: i64,
    /// Bytes in the file, flushed or buffered.
    size: u64,
}

/// A bounded cache of chunk data read from files, evicting the oldest entries first.
#[derive(Debug, Default)]
struct ChunkCache {
    entries: HashMap<ChunkRef, Arc<[u8]>>,
    order: VecDeque<ChunkRef>,
    bytes: usize,
}

impl ChunkCache {
    fn get(&self, chunk_ref: ChunkRef) -> Option<Arc<[u8]>> {
        self.entries.get(&chunk_ref).cloned()
    }

    fn put(&mut self, chunk_ref: ChunkRef, data: Arc<[u8]>) {
        if data.len() > CACHE_BYTES || self.entries.contains_key(&chunk_ref) {
            return;
        }
        while self.bytes + data.len() > CACHE_BYTES {
            let Some(oldest) = self.order.pop_front() else {
                break;
            };
            if let Some(evicted) = self.entries.remove(&oldest) {
                self.bytes -= evicted.len();
            }
        }
        self.bytes += data.len();
        self.order.push_back(chunk_ref);
        self.entries.insert(chunk_ref, data);
    }

    fn forget_file(&mut self, sequence: u32) {
        self.entries.retain(|&r, _| split_ref(r).0 != sequence);
        self.order.retain(|&r| split_ref(r).0 != sequence);
        self.bytes = self.entries.values().map(|d| d.len()).sum();
    }
}

/// Writes completed head chunks to `chunks_head/` and reads them back.
#[derive(Debug)]
pub struct ChunkDiskMapper {
    folder: PathBuf,
    files: BTreeMap<u32, ChunkFile>,
    /// The file chunks are appended to.
    current: Option<u32>,
    /// Bytes of the current file not written yet; they start at `buffer_start`.
    buffer: Vec<u8>,
    buffer_start: u64,
    cache: Mutex<ChunkCache>,
}

impl ChunkDiskMapper {
    /// Opens `folder` (created if missing) and deletes the files an earlier run left: WAL
    /// replay writes their chunks again.
    pub fn open(folder: &Path) -> Result<ChunkDiskMapper, TsdbError> {
        std::fs::create_dir_all(folder).map_err(TsdbError::io(folder))?;
        for (_, path) in list_files(folder)? {
            std::fs::remove_file(&path).map_err(TsdbError::io(&path))?;
        }
        Ok(ChunkDiskMapper {
            folder: folder.to_path_buf(),
            files: BTreeMap::new(),
            current: None,
            buffer: Vec::new(),
            buffer_start: 0,
            cache: Mutex::new(ChunkCache::default()),
        })
    }

    /// The folder.
    pub fn folder(&self) -> &Path {
        &self.folder
    }

    /// Number of files.
    pub fn num_files(&self) -> usize {
        self.files.len()
    }

    /// Bytes of every file (buffered bytes included).
    pub fn size_bytes(&self) -> u64 {
        self.files.values().map(|f| f.size).sum()
    }

    /// Writes a completed chunk of series `series_ref` and returns its reference.
    pub fn write_chunk(
        &mut self,
        series_ref: u64,
        min_time: i64,
        max_time: i64,
        data: &[u8],
    ) -> Result<ChunkRef, TsdbError> {
        let length = (CHUNK_PREFIX_BYTES + 10 + data.len() + 4) as u64;
        let cut = match self.current.and_then(|s| self.files.get(&s)) {
            None => true,
            Some(file) => file.size + length > MAX_FILE_BYTES,
        };
        if cut {
            self.cut()?;
        }
        let Some(sequence) = self.current else {
            return Err(TsdbError::Usage("no head chunk file after a cut".into()));
        };
        let Some(file) = self.files.get_mut(&sequence) else {
            return Err(TsdbError::Usage("no head chunk file after a cut".into()));
        };
        let offset = file.size;
        if offset > 0xFFFF_FFFF {
            return Err(TsdbError::invalid(
                &file.path,
                "head chunk file offset past 32 bits",
            ));
        }
        let before = self.buffer.len();
        self.buffer.extend_from_slice(&series_ref.to_be_bytes());
        self.buffer.extend_from_slice(&min_time.to_be_bytes());
        self.buffer.extend_from_slice(&max_time.to_be_bytes());
        self.buffer.push(Encoding::Xor as u8);
        put_uvarint(&mut self.buffer, data.len() as u64);
        self.buffer.extend_from_slice(data);
        let mut crc = Crc32c::new();
        crc.update(&self.buffer[before..]);
        self.buffer.extend_from_slice(&crc.finish().to_be_bytes());
        file.size += (self.buffer.len() - before) as u64;
        file.max_time = file.max_time.max(max_time);
        if self.buffer.len() >= WRITE_BUFFER_BYTES {
            self.flush()?;
        }
        Ok(chunk_ref(sequence, offset))
    }

    /// Writes the buffered bytes to the current file.
    pub fn flush(&mut self) -> Result<(), TsdbError> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let Some(file) = self.current.and_then(|s| self.files.get(&s)) else {
            return Err(TsdbError::Usage(
                "buffered head chunks without a file".into(),
            ));
        };
        file.file
            .write_all_at(&self.buffer, self.buffer_start)
            .map_err(TsdbError::io(&file.path))?;
        self.buffer_start += self.buffer.len() as u64;
        self.buffer.clear();
        if self.buffer.capacity() > WRITE_BUFFER_BYTES * 2 {
            self.buffer.shrink_to(WRITE_BUFFER_BYTES);
        }
        Ok(())
    }

    /// Finishes the current file (flushed and fsynced) and starts the next one.
    fn cut(&mut self) -> Result<(), TsdbError> {
        self.flush()?;
        if let Some(file) = self.current.and_then(|s| self.files.get(&s)) {
            file.file.sync_all().map_err(TsdbError::io(&file.path))?;
        }
        let sequence = match self.files.keys().next_back() {
            Some(&last) => last.checked_add(1).ok_or_else(|| {
                TsdbError::Usage("head chunk file sequence numbers exhausted".into())
            })?,
            None => 1,
        };
        let path = file_path(&self.folder, sequence);
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(TsdbError::io(&path))?;
        let mut header = [0u8; FILE_HEADER_BYTES as usize];
        header[..4].copy_from_slice(&MAGIC_HEAD_CHUNKS.to_be_bytes());
        header[4] = HEAD_CHUNKS_FORMAT_V1;
        file.write_all_at(&header, 0)
            .map_err(TsdbError::io(&path))?;
        self.files.insert(
            sequence,
            ChunkFile {
                file,
                path,
                max_time: i64::MIN,
                size: FILE_HEADER_BYTES,
            },
        );
        self.current = Some(sequence);
        self.buffer_start = FILE_HEADER_BYTES;
        super::chunks::sync_folder(&self.folder)
    }

    /// The data of the chunk at `chunk_ref` (checksum checked).
    pub fn chunk(&self, chunk_ref: ChunkRef) -> Result<Arc<[u8]>, TsdbError> {
        let (sequence, offset) = split_ref(chunk_ref);
        let Some(file) = self.files.get(&sequence) else {
            return Err(TsdbError::Usage(format!(
                "head chunk {chunk_ref:#x}: no file {sequence:06} in {}",
                self.folder.display()
            )));
        };
        if Some(sequence) == self.current && offset >= self.buffer_start {
            let start = usize::try_from(offset - self.buffer_start).unwrap_or(usize::MAX);
            let record = self.buffer.get(start..).unwrap_or_default();
            let (_, data) = parse_chunk(record, &file.path, offset)?;
            return Ok(Arc::from(data.data));
        }
        let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(data) = cache.get(chunk_ref) {
            return Ok(data);
        }
        drop(cache);
        // The current file's size counts the buffered bytes too; on disk it ends where the
        // buffer starts (records are flushed whole, so none straddles the two).
        let on_disk = if Some(sequence) == self.current {
            self.buffer_start
        } else {
            file.size
        };
        let record = read_record(file, on_disk, offset)?;
        let (_, chunk) = parse_chunk(&record, &file.path, offset)?;
        let data: Arc<[u8]> = Arc::from(chunk.data);
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        cache.put(chunk_ref, Arc::clone(&data));
        Ok(data)
    }

    /// Deletes the oldest files whose chunks all end before `min_time` (the head no longer
    /// refers to them), as Prometheus's `Truncate`; the current file is first closed if it
    /// has chunks, so it can go next time. Returns how many files were deleted.
    pub fn truncate(&mut self, min_time: i64) -> Result<usize, TsdbError> {
        let doomed: Vec<u32> = self
            .files
            .iter()
            .take_while(|&(&sequence, file)| {
                Some(sequence) != self.current && file.max_time < min_time
            })
            .map(|(&sequence, _)| sequence)
            .collect();
        if self
            .current
            .and_then(|s| self.files.get(&s))
            .is_some_and(|f| f.size > FILE_HEADER_BYTES)
        {
            self.cut()?;
        }
        for sequence in &doomed {
            if let Some(file) = self.files.remove(sequence) {
                std::fs::remove_file(&file.path).map_err(TsdbError::io(&file.path))?;
            }
            self.cache
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .forget_file(*sequence);
        }
        Ok(doomed.len())
    }
}

impl Drop for ChunkDiskMapper {
    /// Writes what is buffered, so the files are whole after a clean close (nothing depends
    /// on it: the next open rewrites them from the WAL).
    fn drop(&mut self) {
        if let Err(error) = self.flush() {
            tracing::warn!(%error, "flushing head chunks at close failed");
        }
    }
}

/// Reads the record starting at `offset` of `file`, whose first `on_disk` bytes are written:
/// the meta, then the data it announces.
fn read_record(file: &ChunkFile, on_disk: u64, offset: u64) -> Result<Vec<u8>, TsdbError> {
    let corrupt = |reason: String| TsdbError::Corrupt {
        path: file.path.clone(),
        source: DecodeError {
            offset: offset as usize,
            reason,
        },
    };
    if offset < FILE_HEADER_BYTES || offset >= on_disk {
        return Err(corrupt(format!(
            "chunk offset {offset} outside the file ({on_disk} bytes written)"
        )));
    }
    // Most chunks are under 1 KiB: one read usually gets the whole record.
    let available = on_disk - offset;
    let mut record = vec![0u8; available.min(2048) as usize];
    file.file
        .read_exact_at(&mut record, offset)
        .map_err(TsdbError::io(&file.path))?;
    let Some((length, varint_bytes)) = record.get(CHUNK_PREFIX_BYTES..).and_then(read_uvarint)
    else {
        return Err(corrupt("truncated chunk header".into()));
    };
    if length > MAX_CHUNK_DATA_BYTES {
        return Err(corrupt(format!("chunk length {length} is implausible")));
    }
    let total = (CHUNK_PREFIX_BYTES + varint_bytes) as u64 + length + 4;
    if total > available {
        return Err(corrupt(format!(
            "chunk of {total} bytes runs past the end of the file"
        )));
    }
    if total as usize > record.len() {
        record.resize(total as usize, 0);
        file.file
            .read_exact_at(&mut record, offset)
            .map_err(TsdbError::io(&file.path))?;
    }
    record.truncate(total as usize);
    Ok(record)
}

/// One chunk as read from a head chunk file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskChunk<'a> {
    /// The series' reference (the head's and the WAL's).
    pub series_ref: u64,
    /// First sample's timestamp.
    pub min_time: i64,
    /// Last sample's timestamp.
    pub max_time: i64,
    /// The encoding byte.
    pub encoding: u8,
    /// The chunk's bytes.
    pub data: &'a [u8],
}

/// Parses and checks the chunk at the start of `bytes` (at `offset` in `path`); returns its
/// length in bytes and the chunk.
fn parse_chunk<'a>(
    bytes: &'a [u8],
    path: &Path,
    offset: u64,
) -> Result<(usize, DiskChunk<'a>), TsdbError> {
    let corrupt = |reason: &str| TsdbError::Corrupt {
        path: path.to_path_buf(),
        source: DecodeError {
            offset: offset as usize,
            reason: reason.to_string(),
        },
    };
    let be_u64 = |at: usize| -> Option<u64> {
        let slice = bytes.get(at..at + 8)?;
        let mut raw = [0u8; 8];
        raw.copy_from_slice(slice);
        Some(u64::from_be_bytes(raw))
    };
    let (Some(series_ref), Some(min_time), Some(max_time), Some(&encoding)) =
        (be_u64(0), be_u64(8), be_u64(16), bytes.get(24))
    else {
        return Err(corrupt("truncated chunk header"));
    };
    let Some((length, varint_bytes)) = bytes.get(CHUNK_PREFIX_BYTES..).and_then(read_uvarint)
    else {
        return Err(corrupt("truncated chunk length"));
    };
    let data_start = CHUNK_PREFIX_BYTES + varint_bytes;
    let Some(data_end) = usize::try_from(length)
        .ok()
        .and_then(|l| data_start.checked_add(l))
    else {
        return Err(corrupt("chunk length overflows"));
    };
    let (Some(data), Some(stored)) = (
        bytes.get(data_start..data_end),
        bytes.get(data_end..data_end + 4),
    ) else {
        return Err(corrupt("chunk runs past the end of the file"));
    };
    let mut crc = Crc32c::new();
    crc.update(&bytes[..data_end]);
    if crc.finish().to_be_bytes() != stored {
        return Err(corrupt("chunk checksum mismatch"));
    }
    Ok((
        data_end + 4,
        DiskChunk {
            series_ref,
            min_time: min_time as i64,
            max_time: max_time as i64,
            encoding,
            data,
        },
    ))
}

/// What [`scan_folder`] read from one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScannedChunk {
    /// The chunk's reference.
    pub chunk_ref: ChunkRef,
    /// The series' reference.
    pub series_ref: u64,
    /// First sample's timestamp.
    pub min_time: i64,
    /// Last sample's timestamp.
    pub max_time: i64,
    /// The chunk's bytes.
    pub data: Vec<u8>,
}

/// The outcome of [`scan_folder`].
#[derive(Debug, Default)]
pub struct ScanReport {
    /// Every chunk with a valid checksum, in file order.
    pub chunks: Vec<ScannedChunk>,
    /// Where the last file stops being readable (a torn tail), if it does.
    pub torn: Option<(PathBuf, u64)>,
}

/// Reads every chunk of every head chunk file in `folder`, checksums checked, headers
/// verified. A damaged tail of the newest file (what a crash leaves) ends the scan there and
/// is reported; damage anywhere else is an error. Zero bytes where a chunk would start mark
/// the end of a file's data (Prometheus pre-allocates files).
pub fn scan_folder(folder: &Path) -> Result<ScanReport, TsdbError> {
    let files = list_files(folder)?;
    let mut report = ScanReport::default();
    for (index, (sequence, path)) in files.iter().enumerate() {
        let last = index + 1 == files.len();
        let bytes = std::fs::read(path).map_err(TsdbError::io(path))?;
        if bytes.len() < FILE_HEADER_BYTES as usize {
            if last {
                report.torn = Some((path.clone(), 0));
                break;
            }
            return Err(TsdbError::invalid(
                path,
                "head chunk file shorter than its header",
            ));
        }
        let magic = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
        if magic != MAGIC_HEAD_CHUNKS {
            return Err(TsdbError::invalid(
                path,
                format!("bad head chunks magic {magic:#010x}"),
            ));
        }
        if bytes[4] != HEAD_CHUNKS_FORMAT_V1 {
            return Err(TsdbError::invalid(
                path,
                format!("head chunks format version {} (only 1 is read)", bytes[4]),
            ));
        }
        let mut offset = FILE_HEADER_BYTES as usize;
        while offset < bytes.len() {
            let rest = &bytes[offset..];
            if rest.len() < MAX_CHUNK_META_BYTES && rest.iter().all(|&b| b == 0)
                || rest.len() >= 24 && rest[..24].iter().all(|&b| b == 0)
            {
                break;
            }
            match parse_chunk(rest, path, offset as u64) {
                Ok((length, chunk)) => {
                    report.chunks.push(ScannedChunk {
                        chunk_ref: chunk_ref(*sequence, offset as u64),
                        series_ref: chunk.series_ref,
                        min_time: chunk.min_time,
                        max_time: chunk.max_time,
                        data: chunk.data.to_vec(),
                    });
                    offset += length;
                }
                Err(error) if last => {
                    tracing::debug!(%error, "torn head chunk file tail");
                    report.torn = Some((path.clone(), offset as u64));
                    break;
                }
                Err(error) => return Err(error),
            }
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tsdb::chunkenc::XorChunk;

    fn chunk(start: i64, samples: i64) -> XorChunk {
        let mut chunk = XorChunk::new();
        for i in 0..samples {
            chunk.append(start + i * 15_000, (i * 3) as f64);
        }
        chunk
    }

    #[test]
    fn round_trip_through_buffer_file_and_scan() {
        let dir = tempfile::tempdir().unwrap();
        let folder = dir.path().join(CHUNKS_HEAD_FOLDER);
        let mut mapper = ChunkDiskMapper::open(&folder).unwrap();
        let mut written = Vec::new();
        for series in 1..=50u64 {
            let data = chunk(series as i64 * 1000, 120);
            let r = mapper
                .write_chunk(series, series as i64, series as i64 + 99, data.bytes())
                .unwrap();
            written.push((r, series, data.bytes().to_vec()));
        }
        // From the write buffer.
        for (r, _, data) in &written {
            assert_eq!(&*mapper.chunk(*r).unwrap(), data.as_slice());
        }
        mapper.flush().unwrap();
        // From the file (and then from the cache).
        for _ in 0..2 {
            for (r, _, data) in &written {
                assert_eq!(&*mapper.chunk(*r).unwrap(), data.as_slice());
            }
        }
        let bytes = std::fs::read(file_path(&folder, 1)).unwrap();
        assert_eq!(&bytes[..4], &MAGIC_HEAD_CHUNKS.to_be_bytes());
        assert_eq!(bytes[4], 1);
        let scanned = scan_folder(&folder).unwrap();
        assert!(scanned.torn.is_none());
        assert_eq!(scanned.chunks.len(), written.len());
        for (got, (r, series, data)) in scanned.chunks.iter().zip(&written) {
            assert_eq!(got.chunk_ref, *r);
            assert_eq!(got.series_ref, *series);
            assert_eq!(got.min_time, *series as i64);
            assert_eq!(got.max_time, *series as i64 + 99);
            assert_eq!(&got.data, data);
        }
    }

    #[test]
    fn a_chunk_just_before_buffered_ones_is_read_from_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let folder = dir.path().join(CHUNKS_HEAD_FOLDER);
        let mut mapper = ChunkDiskMapper::open(&folder).unwrap();
        let flushed = mapper.write_chunk(1, 0, 10, chunk(0, 30).bytes()).unwrap();
        mapper.flush().unwrap();
        // Buffered, not on disk: the file is shorter than the mapper's size for it, and a
        // read of the flushed chunk must stop at what is written.
        let buffered = mapper.write_chunk(2, 0, 10, chunk(0, 30).bytes()).unwrap();
        assert_eq!(&*mapper.chunk(flushed).unwrap(), chunk(0, 30).bytes());
        assert_eq!(&*mapper.chunk(buffered).unwrap(), chunk(0, 30).bytes());
    }

    #[test]
    fn a_torn_tail_is_reported_and_damage_is_detected() {
        let dir = tempfile::tempdir().unwrap();
        let folder = dir.path().join(CHUNKS_HEAD_FOLDER);
        let mut mapper = ChunkDiskMapper::open(&folder).unwrap();
        let first = mapper.write_chunk(7, 0, 10, chunk(0, 30).bytes()).unwrap();
        let second = mapper.write_chunk(8, 0, 10, chunk(0, 30).bytes()).unwrap();
        mapper.flush().unwrap();
        drop(mapper);
        let path = file_path(&folder, 1);
        let length = std::fs::metadata(&path).unwrap().len();
        let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        file.set_len(length - 3).unwrap();
        let scanned = scan_folder(&folder).unwrap();
        assert_eq!(scanned.chunks.len(), 1);
        assert_eq!(scanned.chunks[0].chunk_ref, first);
        assert_eq!(scanned.torn, Some((path.clone(), split_ref(second).1)));
        // A flipped bit in a chunk's data fails its checksum.
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[FILE_HEADER_BYTES as usize + 30] ^= 1;
        let error = parse_chunk(&bytes[FILE_HEADER_BYTES as usize..], &path, 8).unwrap_err();
        assert!(error.to_string().contains("checksum"), "{error}");
        // Opening starts from scratch: the old files are gone.
        let mapper = ChunkDiskMapper::open(&folder).unwrap();
        assert_eq!(mapper.num_files(), 0);
        assert!(!path.exists());
    }

    #[test]
    fn truncation_deletes_files_whose_chunks_all_ended() {
        let dir = tempfile::tempdir().unwrap();
        let folder = dir.path().join(CHUNKS_HEAD_FOLDER);
        let mut mapper = ChunkDiskMapper::open(&folder).unwrap();
        let old = mapper
            .write_chunk(1, 0, 1000, chunk(0, 10).bytes())
            .unwrap();
        // Nothing ends before 500 in the current file: closed, kept.
        assert_eq!(mapper.truncate(500).unwrap(), 0);
        assert_eq!(mapper.num_files(), 2);
        let new = mapper
            .write_chunk(1, 2000, 3000, chunk(2000, 10).bytes())
            .unwrap();
        assert_eq!(split_ref(new).0, 2);
        assert_eq!(mapper.truncate(1001).unwrap(), 1);
        assert!(!file_path(&folder, 1).exists());
        assert!(mapper.chunk(old).is_err());
        assert_eq!(&*mapper.chunk(new).unwrap(), chunk(2000, 10).bytes());
    }
}
