//! Persistent blocks in Prometheus's layout: `<ulid>/meta.json`, `index`, `chunks/000001…` and
//! `tombstones`. Writing goes to a temporary folder renamed into place, so a crash leaves either
//! a whole block or a `.tmp-for-creation` folder that opening ignores (and removes).

use super::chunkenc::{Encoding, XorChunk, XorIterator};
use super::chunks::{ChunkReader, ChunkWriter, DEFAULT_SEGMENT_BYTES, sync_folder};
use super::error::TsdbError;
use super::index::{ChunkMeta, IndexReader, IndexSeries, write_index};
use super::labels::Labels;
use super::meta::{BlockCompaction, BlockMeta, BlockStats, MAX_META_BYTES, Ulid};
use super::tombstones::{Intervals, Tombstones, without_deleted};
use std::io::Read;
use std::path::{Path, PathBuf};

/// The suffix of a block folder being written.
pub const TMP_FOR_CREATION: &str = ".tmp-for-creation";
/// Samples per chunk when cutting a sample list into chunks (Prometheus's target).
pub const SAMPLES_PER_CHUNK: usize = 120;

/// One encoded chunk of a series headed for a block.
#[derive(Debug, Clone, PartialEq)]
pub struct BlockChunk {
    /// First sample's timestamp.
    pub min_time: i64,
    /// Last sample's timestamp.
    pub max_time: i64,
    /// XOR chunk bytes (sample count header included).
    pub data: Vec<u8>,
}

impl BlockChunk {
    /// Number of samples, from the chunk's header.
    pub fn num_samples(&self) -> u64 {
        XorIterator::new(&self.data).num_samples() as u64
    }
}

/// A series headed for a block.
#[derive(Debug, Clone, PartialEq)]
pub struct BlockSeries {
    /// Labels.
    pub labels: Labels,
    /// Chunks in time order, not overlapping.
    pub chunks: Vec<BlockChunk>,
}

/// Encodes samples (sorted by time, unique timestamps) into chunks of [`SAMPLES_PER_CHUNK`].
pub fn chunks_from_samples(samples: &[(i64, f64)]) -> Vec<BlockChunk> {
    samples
        .chunks(SAMPLES_PER_CHUNK)
        .map(|run| {
            let mut chunk = XorChunk::new();
            for &(t, v) in run {
                chunk.append(t, v);
            }
            BlockChunk {
                min_time: run.first().map_or(0, |s| s.0),
                max_time: run.last().map_or(0, |s| s.0),
                data: chunk.bytes().to_vec(),
            }
        })
        .collect()
}

/// What to write: the series, the block's time range `[min_time, max_time)`, and the clock
/// reading for the id.
#[derive(Debug, Clone)]
pub struct NewBlock {
    /// Series in any order (sorted here); series without chunks are dropped.
    pub series: Vec<BlockSeries>,
    /// Inclusive start of the block's range.
    pub min_time: i64,
    /// Exclusive end of the block's range.
    pub max_time: i64,
    /// Milliseconds since the epoch, the ULID's time part.
    pub created_unix_millis: u64,
}

/// Writes a block under `parent` and returns its meta. Chunks must lie in the block's range.
pub fn write_block(parent: &Path, block: NewBlock) -> Result<BlockMeta, TsdbError> {
    write_block_compacted(parent, block, None)
}

/// [`write_block`] for a compaction's result: `compaction` gives its level and the level-1
/// blocks it descends from (`None`: a level-1 block that is its own source).
pub fn write_block_compacted(
    parent: &Path,
    block: NewBlock,
    compaction: Option<(u32, Vec<Ulid>)>,
) -> Result<BlockMeta, TsdbError> {
    let NewBlock {
        mut series,
        min_time,
        max_time,
        created_unix_millis,
    } = block;
    if max_time <= min_time {
        return Err(TsdbError::Usage(format!(
            "empty block range [{min_time}, {max_time})"
        )));
    }
    series.retain(|s| !s.chunks.is_empty());
    series.sort_by(|a, b| a.labels.cmp(&b.labels));
    for entry in &series {
        for chunk in &entry.chunks {
            if chunk.min_time < min_time || chunk.max_time >= max_time {
                return Err(TsdbError::Usage(format!(
                    "chunk [{}, {}] of {} outside block range [{min_time}, {max_time})",
                    chunk.min_time, chunk.max_time, entry.labels
                )));
            }
        }
    }
    let ulid = Ulid::new(created_unix_millis);
    let final_folder = parent.join(ulid.to_string());
    let folder = parent.join(format!("{ulid}{TMP_FOR_CREATION}"));
    std::fs::create_dir_all(&folder).map_err(TsdbError::io(&folder))?;

    let mut writer = ChunkWriter::create(&folder.join("chunks"), DEFAULT_SEGMENT_BYTES)?;
    let mut stats = BlockStats::default();
    let mut index_series = Vec::with_capacity(series.len());
    for entry in &series {
        let mut metas = Vec::with_capacity(entry.chunks.len());
        for chunk in &entry.chunks {
            let chunk_ref = writer.write_chunk(Encoding::Xor, &chunk.data)?;
            metas.push(ChunkMeta {
                min_time: chunk.min_time,
                max_time: chunk.max_time,
                chunk_ref,
            });
            stats.num_chunks += 1;
            stats.num_samples += chunk.num_samples();
        }
        stats.num_series += 1;
        index_series.push(IndexSeries {
            labels: entry.labels.clone(),
            chunks: metas,
        });
    }
    writer.finish()?;
    write_index(&folder.join("index"), &index_series)?;

    let meta = BlockMeta {
        ulid,
        min_time,
        max_time,
        stats,
        compaction: match compaction {
            Some((level, sources)) => BlockCompaction {
                level,
                sources,
                failed: false,
            },
            None => BlockCompaction {
                level: 1,
                sources: vec![ulid],
                failed: false,
            },
        },
        version: 1,
    };
    let meta_path = folder.join("meta.json");
    let json = meta
        .to_json()
        .map_err(|error| TsdbError::Usage(format!("encoding meta.json: {error}")))?;
    write_synced(&meta_path, &json)?;
    write_synced(
        &folder.join(super::tombstones::TOMBSTONES_FILE),
        &Tombstones::default().encode(),
    )?;
    sync_folder(&folder)?;
    std::fs::rename(&folder, &final_folder).map_err(TsdbError::io(&final_folder))?;
    sync_folder(parent)?;
    Ok(meta)
}

/// Rewrites a block's `meta.json` crash-safely (temporary file, fsync, rename, fsync folder).
pub fn rewrite_meta(folder: &Path, meta: &BlockMeta) -> Result<(), TsdbError> {
    let json = meta
        .to_json()
        .map_err(|error| TsdbError::Usage(format!("encoding meta.json: {error}")))?;
    let temporary = folder.join("meta.json.tmp");
    write_synced(&temporary, &json)?;
    let path = folder.join("meta.json");
    std::fs::rename(&temporary, &path).map_err(TsdbError::io(&path))?;
    sync_folder(folder)
}

/// A chunk's samples without the deleted ones, as chunks: the chunk itself when no interval
/// meets it, nothing when one covers it, re-encoded otherwise.
pub fn chunk_without_deleted(
    chunk: BlockChunk,
    deleted: Option<&Intervals>,
) -> Result<Vec<BlockChunk>, super::chunkenc::ChunkDecodeError> {
    let Some(intervals) = deleted.filter(|d| d.overlaps(chunk.min_time, chunk.max_time)) else {
        return Ok(vec![chunk]);
    };
    if intervals.covers(chunk.min_time, chunk.max_time) {
        return Ok(Vec::new());
    }
    let samples = super::chunkenc::decode_xor(&chunk.data)?;
    Ok(chunks_from_samples(&without_deleted(
        samples,
        Some(intervals),
    )))
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), TsdbError> {
    use std::io::Write;
    let mut file = std::fs::File::create(path).map_err(TsdbError::io(path))?;
    file.write_all(bytes).map_err(TsdbError::io(path))?;
    file.sync_all().map_err(TsdbError::io(path))
}

/// Reads a block's `meta.json`.
pub fn read_meta(folder: &Path) -> Result<BlockMeta, TsdbError> {
    let path = folder.join("meta.json");
    let file = std::fs::File::open(&path).map_err(TsdbError::io(&path))?;
    let mut text = Vec::new();
    file.take(MAX_META_BYTES + 1)
        .read_to_end(&mut text)
        .map_err(TsdbError::io(&path))?;
    if text.len() as u64 > MAX_META_BYTES {
        return Err(TsdbError::invalid(
            &path,
            format!("larger than {MAX_META_BYTES} bytes"),
        ));
    }
    let meta: BlockMeta = serde_json::from_slice(&text)
        .map_err(|error| TsdbError::invalid(&path, format!("not a block meta: {error}")))?;
    if meta.version != 1 {
        return Err(TsdbError::invalid(
            &path,
            format!("meta version {} (only 1)", meta.version),
        ));
    }
    Ok(meta)
}

/// An opened block.
#[derive(Debug)]
pub struct Block {
    folder: PathBuf,
    meta: BlockMeta,
    index: IndexReader,
    chunks: ChunkReader,
    tombstones: Tombstones,
}

impl Block {
    /// Opens the block in `folder`, checking its meta, index, chunk headers and tombstones.
    pub fn open(folder: &Path) -> Result<Block, TsdbError> {
        let meta = read_meta(folder)?;
        let index = IndexReader::open(&folder.join("index"))?;
        let chunks = ChunkReader::open(&folder.join("chunks"))?;
        let tombstones = Tombstones::read_file(folder)?;
        Ok(Block {
            folder: folder.to_path_buf(),
            meta,
            index,
            chunks,
            tombstones,
        })
    }

    /// Its deleted intervals by index series id.
    pub fn tombstones(&self) -> &Tombstones {
        &self.tombstones
    }

    /// Hard-links every file of the block into `<parent>/<ulid>/` (a snapshot: files are never
    /// modified in place, only replaced by rename, so the links keep this version).
    pub fn hard_link_into(&self, parent: &Path) -> Result<(), TsdbError> {
        fn link_folder(from: &Path, to: &Path, depth: u32) -> Result<(), TsdbError> {
            std::fs::create_dir_all(to).map_err(TsdbError::io(to))?;
            for entry in std::fs::read_dir(from).map_err(TsdbError::io(from))? {
                let entry = entry.map_err(TsdbError::io(from))?;
                let source = entry.path();
                let target = to.join(entry.file_name());
                let kind = entry.file_type().map_err(TsdbError::io(&source))?;
                if kind.is_dir() {
                    if depth == 0 {
                        return Err(TsdbError::invalid(&source, "unexpected nested folder"));
                    }
                    link_folder(&source, &target, depth - 1)?;
                } else {
                    std::fs::hard_link(&source, &target).map_err(TsdbError::io(&target))?;
                }
            }
            sync_folder(to)
        }
        link_folder(&self.folder, &parent.join(self.meta.ulid.to_string()), 1)
    }

    /// The block's folder.
    pub fn folder(&self) -> &Path {
        &self.folder
    }

    /// Its `meta.json`.
    pub fn meta(&self) -> &BlockMeta {
        &self.meta
    }

    /// Bytes on disk (every file in the block's folder, one level of sub-folders deep).
    pub fn size_bytes(&self) -> u64 {
        folder_bytes(&self.folder)
    }

    /// Its index.
    pub fn index(&self) -> &IndexReader {
        &self.index
    }

    /// Its chunks.
    pub fn chunks(&self) -> &ChunkReader {
        &self.chunks
    }

    /// The XOR bytes of a chunk; chunks of other encodings (native histograms) are reported as
    /// `None` so float queries skip them.
    pub fn xor_chunk(&self, chunk_ref: u64) -> Result<Option<Vec<u8>>, TsdbError> {
        let (encoding, data) = self.chunks.chunk(chunk_ref)?;
        Ok(match Encoding::from_byte(encoding) {
            Some(Encoding::Xor) => Some(data),
            _ => None,
        })
    }
}

/// Bytes of the files in `folder` and its sub-folders (two levels, as blocks and the WAL
/// have); unreadable entries count as zero.
pub fn folder_bytes(folder: &Path) -> u64 {
    fn walk(folder: &Path, depth: u32) -> u64 {
        let Ok(entries) = std::fs::read_dir(folder) else {
            return 0;
        };
        let mut total = 0u64;
        for entry in entries.flatten() {
            let Ok(metadata) = entry.metadata() else {
                continue;
            };
            if metadata.is_dir() {
                if depth > 0 {
                    total = total.saturating_add(walk(&entry.path(), depth - 1));
                }
            } else {
                total = total.saturating_add(metadata.len());
            }
        }
        total
    }
    walk(folder, 2)
}
