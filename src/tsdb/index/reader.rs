//! Reads an index file (format versions 2 and 3, which differ only in chunk-ref semantics we do
//! not depend on). The file is read into memory once, bounded by [`MAX_INDEX_BYTES`]; every
//! section's checksum is verified before use.

use super::{ChunkMeta, IndexSeries, MAGIC_INDEX, SERIES_ALIGNMENT, TOC_LEN};
use crate::tsdb::crc32c::crc32c;
use crate::tsdb::encoding::{DecodeError, Decoder};
use crate::tsdb::error::TsdbError;
use crate::tsdb::labels::Labels;
use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

/// The largest index file we load. Bigger blocks need mmap, which arrives with the head's
/// `chunks_head` (and an audited `unsafe` exception).
pub const MAX_INDEX_BYTES: u64 = 2 << 30;
/// The most labels one series may have.
const MAX_LABELS_PER_SERIES: u64 = 1 << 12;
/// The most chunks one series may have in one block.
const MAX_CHUNKS_PER_SERIES: u64 = 1 << 24;

/// The offsets the table of contents points at.
#[derive(Debug, Clone, Copy)]
struct Toc {
    symbols: usize,
    series: usize,
    postings_table: usize,
}

/// An opened index.
#[derive(Debug)]
pub struct IndexReader {
    path: PathBuf,
    bytes: Vec<u8>,
    version: u8,
    /// Byte ranges of the symbols in `bytes`, in symbol order (a symbol's number is its index).
    symbols: Vec<(usize, usize)>,
    /// Label name → its values in order, each with the offset of its postings list.
    postings_table: BTreeMap<String, Vec<(String, usize)>>,
}

impl IndexReader {
    /// Reads and checks the index at `path`.
    pub fn open(path: &Path) -> Result<IndexReader, TsdbError> {
        let file = std::fs::File::open(path).map_err(TsdbError::io(path))?;
        let length = file.metadata().map_err(TsdbError::io(path))?.len();
        if length > MAX_INDEX_BYTES {
            return Err(TsdbError::invalid(
                path,
                format!("index is {length} bytes, more than the {MAX_INDEX_BYTES} we load"),
            ));
        }
        let mut bytes = Vec::with_capacity(length as usize);
        file.take(MAX_INDEX_BYTES)
            .read_to_end(&mut bytes)
            .map_err(TsdbError::io(path))?;
        IndexReader::from_bytes(path, bytes)
    }

    /// Parses index bytes; `path` only names them in errors.
    pub fn from_bytes(path: &Path, bytes: Vec<u8>) -> Result<IndexReader, TsdbError> {
        let corrupt = TsdbError::corrupt(path);
        if bytes.len() < 5 + TOC_LEN {
            return Err(corrupt(DecodeError {
                offset: 0,
                reason: format!("{} bytes is too short for an index", bytes.len()),
            }));
        }
        let magic = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
        if magic != MAGIC_INDEX {
            return Err(TsdbError::invalid(
                path,
                format!("bad index magic {magic:#010x}"),
            ));
        }
        let version = bytes[4];
        if version != 2 && version != 3 {
            return Err(TsdbError::invalid(
                path,
                format!("index format version {version} (only 2 and 3 are read)"),
            ));
        }
        let toc = read_toc(&bytes).map_err(TsdbError::corrupt(path))?;
        let symbols = read_symbols(&bytes, toc.symbols).map_err(TsdbError::corrupt(path))?;
        let postings_table =
            read_postings_table(&bytes, toc.postings_table).map_err(TsdbError::corrupt(path))?;
        let _ = toc.series;
        Ok(IndexReader {
            path: path.to_path_buf(),
            bytes,
            version,
            symbols,
            postings_table,
        })
    }

    /// The index format version.
    pub fn version(&self) -> u8 {
        self.version
    }

    fn symbol(&self, number: u64) -> Result<&str, DecodeError> {
        let &(start, end) = usize::try_from(number)
            .ok()
            .and_then(|index| self.symbols.get(index))
            .ok_or_else(|| DecodeError {
                offset: 0,
                reason: format!("unknown symbol {number}"),
            })?;
        std::str::from_utf8(&self.bytes[start..end]).map_err(|_| DecodeError {
            offset: start,
            reason: "symbol is not UTF-8".into(),
        })
    }

    /// Label names present in the block, sorted.
    pub fn label_names(&self) -> Vec<String> {
        self.postings_table
            .keys()
            .filter(|name| !name.is_empty())
            .cloned()
            .collect()
    }

    /// Values of `name`, sorted.
    pub fn label_values(&self, name: &str) -> Vec<String> {
        if name.is_empty() {
            return Vec::new();
        }
        self.postings_table
            .get(name)
            .map(|values| values.iter().map(|(value, _)| value.clone()).collect())
            .unwrap_or_default()
    }

    /// Series ids having `name="value"` (all series for the empty pair), sorted.
    pub fn postings(&self, name: &str, value: &str) -> Result<Vec<u64>, TsdbError> {
        let Some(values) = self.postings_table.get(name) else {
            return Ok(Vec::new());
        };
        let Ok(index) = values.binary_search_by(|(candidate, _)| candidate.as_str().cmp(value))
        else {
            return Ok(Vec::new());
        };
        self.postings_at(values[index].1)
    }

    /// The postings list stored at `offset`.
    fn postings_at(&self, offset: usize) -> Result<Vec<u64>, TsdbError> {
        let body = section_be32(&self.bytes, offset).map_err(TsdbError::corrupt(&self.path))?;
        let mut decoder = Decoder::new(body, offset + 4);
        let count = decoder.be_u32().map_err(TsdbError::corrupt(&self.path))? as usize;
        if count.checked_mul(4) != Some(decoder.remaining()) {
            return Err(TsdbError::corrupt(&self.path)(decoder.error(format!(
                "postings count {count} does not match the length"
            ))));
        }
        // The count matches the bytes left, so the list is the rest of the body.
        let list = &body[body.len() - count * 4..];
        let ids: Vec<u64> = list
            .chunks_exact(4)
            .map(|id| u64::from(u32::from_be_bytes([id[0], id[1], id[2], id[3]])))
            .collect();
        if ids.windows(2).any(|pair| pair[0] >= pair[1]) {
            return Err(TsdbError::corrupt(&self.path)(DecodeError {
                offset,
                reason: "postings list is not strictly increasing".into(),
            }));
        }
        Ok(ids)
    }

    /// Every series id, sorted.
    pub fn all_postings(&self) -> Result<Vec<u64>, TsdbError> {
        self.postings("", "")
    }

    /// The labels and chunk metas of series `id`.
    pub fn series(&self, id: u64) -> Result<IndexSeries, TsdbError> {
        self.decode_series(id)
            .map_err(TsdbError::corrupt(&self.path))
    }

    fn decode_series(&self, id: u64) -> Result<IndexSeries, DecodeError> {
        let offset = usize::try_from(id)
            .ok()
            .and_then(|id| id.checked_mul(SERIES_ALIGNMENT))
            .filter(|offset| *offset < self.bytes.len())
            .ok_or_else(|| DecodeError {
                offset: 0,
                reason: format!("series id {id} out of range"),
            })?;
        let mut decoder = Decoder::new(&self.bytes[offset..], offset);
        let length = decoder.uvarint_bounded(self.bytes.len() as u64, "series length")? as usize;
        let body_offset = decoder.offset();
        let body = decoder.bytes(length)?;
        let stored_crc = decoder.be_u32()?;
        if crc32c(body) != stored_crc {
            return Err(DecodeError {
                offset,
                reason: format!("series {id}: checksum mismatch"),
            });
        }
        let mut decoder = Decoder::new(body, body_offset);
        let label_count = decoder.uvarint_bounded(MAX_LABELS_PER_SERIES, "label count")?;
        let mut labels = Vec::with_capacity(label_count as usize);
        for _ in 0..label_count {
            let name = self.symbol(decoder.uvarint()?)?;
            let value = self.symbol(decoder.uvarint()?)?;
            if labels
                .last()
                .is_some_and(|&(last, _): &(&str, &str)| last >= name)
            {
                return Err(decoder.error(format!("series {id}: labels not sorted")));
            }
            labels.push((name, value));
        }
        let chunk_count = decoder.uvarint_bounded(MAX_CHUNKS_PER_SERIES, "chunk count")?;
        // Each chunk meta takes at least 3 bytes: never reserve more than the body could hold.
        let mut chunks = Vec::with_capacity((chunk_count as usize).min(decoder.remaining() / 3));
        let mut previous: Option<ChunkMeta> = None;
        for _ in 0..chunk_count {
            let chunk = match previous {
                None => {
                    let min_time = decoder.varint()?;
                    let max_time = min_time.wrapping_add(decoder.uvarint()? as i64);
                    ChunkMeta {
                        min_time,
                        max_time,
                        chunk_ref: decoder.uvarint()?,
                    }
                }
                Some(previous) => {
                    let min_time = previous.max_time.wrapping_add(decoder.uvarint()? as i64);
                    let max_time = min_time.wrapping_add(decoder.uvarint()? as i64);
                    let chunk_ref = previous.chunk_ref.wrapping_add(decoder.varint()? as u64);
                    ChunkMeta {
                        min_time,
                        max_time,
                        chunk_ref,
                    }
                }
            };
            chunks.push(chunk);
            previous = Some(chunk);
        }
        Ok(IndexSeries {
            labels: Labels::from_sorted(labels),
            chunks,
        })
    }
}

impl super::PostingsSource for IndexReader {
    fn label_values(&self, name: &str) -> Result<Vec<String>, TsdbError> {
        Ok(IndexReader::label_values(self, name))
    }

    fn postings(&self, name: &str, value: &str) -> Result<Vec<u64>, TsdbError> {
        IndexReader::postings(self, name, value)
    }

    fn all_postings(&self) -> Result<Vec<u64>, TsdbError> {
        IndexReader::all_postings(self)
    }

    fn postings_for_values(
        &self,
        name: &str,
        wanted: &mut dyn FnMut(&str) -> bool,
    ) -> Result<Vec<Vec<u64>>, TsdbError> {
        // The empty name is the all-postings key, not a label.
        if name.is_empty() {
            return Ok(Vec::new());
        }
        let Some(values) = self.postings_table.get(name) else {
            return Ok(Vec::new());
        };
        let mut lists = Vec::new();
        for (value, offset) in values {
            if wanted(value) {
                lists.push(self.postings_at(*offset)?);
            }
        }
        Ok(lists)
    }
}

fn read_toc(bytes: &[u8]) -> Result<Toc, DecodeError> {
    let start = bytes.len() - TOC_LEN;
    let mut decoder = Decoder::new(&bytes[start..], start);
    let body = decoder.bytes(48)?;
    if crc32c(body) != decoder.be_u32()? {
        return Err(DecodeError {
            offset: start,
            reason: "table of contents checksum mismatch".into(),
        });
    }
    let mut decoder = Decoder::new(body, start);
    let mut offsets = [0usize; 6];
    for slot in &mut offsets {
        let at = decoder.offset();
        let value = decoder.be_u64()?;
        *slot = usize::try_from(value)
            .ok()
            .filter(|offset| *offset <= start)
            .ok_or_else(|| DecodeError {
                offset: at,
                reason: format!("section offset {value} out of range"),
            })?;
    }
    Ok(Toc {
        symbols: offsets[0],
        series: offsets[1],
        postings_table: offsets[5],
    })
}

/// The body of a section with a 4-byte length and a trailing CRC32C, checked.
fn section_be32(bytes: &[u8], offset: usize) -> Result<&[u8], DecodeError> {
    let mut decoder = Decoder::new(bytes.get(offset..).unwrap_or(&[]), offset);
    let length = decoder.be_u32()? as usize;
    let body = decoder.bytes(length)?;
    if crc32c(body) != decoder.be_u32()? {
        return Err(DecodeError {
            offset,
            reason: "section checksum mismatch".into(),
        });
    }
    Ok(body)
}

fn read_symbols(bytes: &[u8], offset: usize) -> Result<Vec<(usize, usize)>, DecodeError> {
    if offset == 0 {
        return Ok(Vec::new());
    }
    let body = section_be32(bytes, offset)?;
    let mut decoder = Decoder::new(body, offset + 4);
    let count = decoder.be_u32()? as usize;
    // Each symbol takes at least one byte.
    let mut symbols = Vec::with_capacity(count.min(decoder.remaining()));
    for _ in 0..count {
        let symbol = decoder.uvarint_str()?;
        let end = decoder.offset();
        symbols.push((end - symbol.len(), end));
    }
    Ok(symbols)
}

fn read_postings_table(
    bytes: &[u8],
    offset: usize,
) -> Result<BTreeMap<String, Vec<(String, usize)>>, DecodeError> {
    let mut table: BTreeMap<String, Vec<(String, usize)>> = BTreeMap::new();
    if offset == 0 {
        return Ok(table);
    }
    let body = section_be32(bytes, offset)?;
    let mut decoder = Decoder::new(body, offset + 4);
    let count = decoder.be_u32()?;
    let mut previous: Option<(String, String)> = None;
    for _ in 0..count {
        let at = decoder.offset();
        let keys = decoder.uvarint()?;
        if keys != 2 {
            return Err(DecodeError {
                offset: at,
                reason: format!("postings key has {keys} parts, not 2"),
            });
        }
        let name = decoder.uvarint_str()?;
        let value = decoder.uvarint_str()?;
        let postings_offset =
            decoder.uvarint_bounded(bytes.len() as u64, "postings offset")? as usize;
        if let Some((previous_name, previous_value)) = &previous
            && (previous_name.as_str(), previous_value.as_str()) >= (name, value)
        {
            return Err(DecodeError {
                offset: at,
                reason: "postings offset table not sorted".into(),
            });
        }
        previous = Some((name.to_owned(), value.to_owned()));
        table
            .entry(name.to_owned())
            .or_default()
            .push((value.to_owned(), postings_offset));
    }
    Ok(table)
}
