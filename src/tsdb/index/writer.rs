//! Writes an index file for series given in label order.

use super::{ChunkMeta, FORMAT_V2, IndexSeries, MAGIC_INDEX, SERIES_ALIGNMENT};
use crate::tsdb::crc32c::crc32c;
use crate::tsdb::encoding::{put_uvarint, put_uvarint_str, put_varint};
use crate::tsdb::error::TsdbError;
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::Path;

/// Builds the whole index in memory and writes it to `path` (fsynced). `series` must be sorted
/// by labels without duplicates, and each series' chunks sorted by time: a block's series ids
/// must follow label order, which readers rely on for merging.
pub fn write_index(path: &Path, series: &[IndexSeries]) -> Result<(), TsdbError> {
    let bytes = encode_index(series)?;
    let mut file = std::fs::File::create(path).map_err(TsdbError::io(path))?;
    file.write_all(&bytes).map_err(TsdbError::io(path))?;
    file.sync_all().map_err(TsdbError::io(path))
}

/// The bytes of an index file for `series` (see [`write_index`]).
pub fn encode_index(series: &[IndexSeries]) -> Result<Vec<u8>, TsdbError> {
    if let Some(pair) = series
        .windows(2)
        .find(|pair| pair[0].labels >= pair[1].labels)
    {
        return Err(TsdbError::Usage(format!(
            "index series out of order or duplicated: {} then {}",
            pair[0].labels, pair[1].labels
        )));
    }
    let mut out = Vec::new();
    out.extend_from_slice(&MAGIC_INDEX.to_be_bytes());
    out.push(FORMAT_V2);

    // Symbols: every name and value, sorted; referenced by position.
    let mut symbol_set: BTreeSet<&str> = BTreeSet::new();
    for entry in series {
        for (name, value) in entry.labels.iter() {
            symbol_set.insert(name);
            symbol_set.insert(value);
        }
    }
    let symbols: BTreeMap<&str, u32> = symbol_set
        .iter()
        .enumerate()
        .map(|(index, symbol)| (*symbol, index as u32))
        .collect();
    let symbols_offset = out.len();
    let mut body = Vec::new();
    body.extend_from_slice(&(symbols.len() as u32).to_be_bytes());
    for symbol in symbols.keys() {
        put_uvarint_str(&mut body, symbol);
    }
    put_section_be32(&mut out, &body)?;

    // Series, each 16-byte aligned; remember ids for postings.
    pad_to(&mut out, SERIES_ALIGNMENT);
    let series_offset = out.len();
    // label name -> label value -> series ids (in id order, since series are in id order).
    let mut postings: BTreeMap<&str, BTreeMap<&str, Vec<u32>>> = BTreeMap::new();
    let mut all_ids = Vec::with_capacity(series.len());
    for entry in series {
        pad_to(&mut out, SERIES_ALIGNMENT);
        let id = u32::try_from(out.len() / SERIES_ALIGNMENT)
            .map_err(|_| TsdbError::Usage("index too large: series id exceeds 32 bits".into()))?;
        all_ids.push(id);
        body.clear();
        put_uvarint(&mut body, entry.labels.len() as u64);
        for (name, value) in entry.labels.iter() {
            put_uvarint(&mut body, u64::from(symbols[name]));
            put_uvarint(&mut body, u64::from(symbols[value]));
            postings
                .entry(name)
                .or_default()
                .entry(value)
                .or_default()
                .push(id);
        }
        encode_chunk_metas(&mut body, &entry.chunks)?;
        put_uvarint(&mut out, body.len() as u64);
        out.extend_from_slice(&body);
        out.extend_from_slice(&crc32c(&body).to_be_bytes());
    }

    // Label indices: one per name, listing its values (unused by v2 readers, kept for
    // compatibility with tools that still read them).
    pad_to(&mut out, 4);
    let label_indices_offset = out.len();
    let mut label_index_offsets = Vec::with_capacity(postings.len());
    for (name, values) in &postings {
        pad_to(&mut out, 4);
        label_index_offsets.push((*name, out.len() as u64));
        body.clear();
        body.extend_from_slice(&1u32.to_be_bytes());
        body.extend_from_slice(&(values.len() as u32).to_be_bytes());
        for value in values.keys() {
            body.extend_from_slice(&symbols[value].to_be_bytes());
        }
        put_section_be32(&mut out, &body)?;
    }

    // Postings: the all-series list under the empty pair first, then each pair in order.
    pad_to(&mut out, 4);
    let postings_offset = out.len();
    let mut postings_offsets: Vec<(&str, &str, u64)> = Vec::new();
    let mut write_postings = |out: &mut Vec<u8>, name, value, ids: &[u32]| {
        pad_to(out, 4);
        postings_offsets.push((name, value, out.len() as u64));
        let mut body = Vec::with_capacity(4 + 4 * ids.len());
        body.extend_from_slice(&(ids.len() as u32).to_be_bytes());
        for id in ids {
            body.extend_from_slice(&id.to_be_bytes());
        }
        put_section_be32(out, &body)
    };
    write_postings(&mut out, "", "", &all_ids)?;
    for (name, values) in &postings {
        for (value, ids) in values {
            write_postings(&mut out, name, value, ids)?;
        }
    }

    let label_offset_table_offset = out.len();
    body.clear();
    body.extend_from_slice(&(label_index_offsets.len() as u32).to_be_bytes());
    for (name, offset) in &label_index_offsets {
        put_uvarint(&mut body, 1);
        put_uvarint_str(&mut body, name);
        put_uvarint(&mut body, *offset);
    }
    put_section_be32(&mut out, &body)?;

    let postings_table_offset = out.len();
    body.clear();
    body.extend_from_slice(&(postings_offsets.len() as u32).to_be_bytes());
    for (name, value, offset) in &postings_offsets {
        put_uvarint(&mut body, 2);
        put_uvarint_str(&mut body, name);
        put_uvarint_str(&mut body, value);
        put_uvarint(&mut body, *offset);
    }
    put_section_be32(&mut out, &body)?;

    let mut toc = Vec::with_capacity(48);
    for offset in [
        symbols_offset,
        series_offset,
        label_indices_offset,
        label_offset_table_offset,
        postings_offset,
        postings_table_offset,
    ] {
        toc.extend_from_slice(&(offset as u64).to_be_bytes());
    }
    out.extend_from_slice(&toc);
    out.extend_from_slice(&crc32c(&toc).to_be_bytes());
    Ok(out)
}

/// Chunk metas: the first chunk's times absolute, later ones as deltas to the previous chunk;
/// refs as deltas too (signed: a chunk may live in an earlier file position).
fn encode_chunk_metas(body: &mut Vec<u8>, chunks: &[ChunkMeta]) -> Result<(), TsdbError> {
    put_uvarint(body, chunks.len() as u64);
    let mut previous: Option<&ChunkMeta> = None;
    for chunk in chunks {
        if chunk.max_time < chunk.min_time {
            return Err(TsdbError::Usage(format!(
                "chunk ends ({}) before it starts ({})",
                chunk.max_time, chunk.min_time
            )));
        }
        match previous {
            None => {
                put_varint(body, chunk.min_time);
                put_uvarint(body, chunk.max_time.wrapping_sub(chunk.min_time) as u64);
                put_uvarint(body, chunk.chunk_ref);
            }
            Some(previous) => {
                if chunk.min_time < previous.max_time {
                    return Err(TsdbError::Usage(format!(
                        "chunk starting at {} overlaps the previous one ending at {}",
                        chunk.min_time, previous.max_time
                    )));
                }
                put_uvarint(body, chunk.min_time.wrapping_sub(previous.max_time) as u64);
                put_uvarint(body, chunk.max_time.wrapping_sub(chunk.min_time) as u64);
                put_varint(
                    body,
                    chunk.chunk_ref.wrapping_sub(previous.chunk_ref) as i64,
                );
            }
        }
        previous = Some(chunk);
    }
    Ok(())
}

/// A section with a 4-byte length, the body and its CRC32C.
fn put_section_be32(out: &mut Vec<u8>, body: &[u8]) -> Result<(), TsdbError> {
    let length = u32::try_from(body.len())
        .map_err(|_| TsdbError::Usage("index section exceeds 4 GiB".into()))?;
    out.extend_from_slice(&length.to_be_bytes());
    out.extend_from_slice(body);
    out.extend_from_slice(&crc32c(body).to_be_bytes());
    Ok(())
}

fn pad_to(out: &mut Vec<u8>, alignment: usize) {
    let remainder = out.len() % alignment;
    if remainder != 0 {
        out.resize(out.len() + alignment - remainder, 0);
    }
}
