//! Block compaction and retention, after Prometheus's `LeveledCompactor` and `DB.reloadBlocks`.
//!
//! - Ranges: 2 h, 6 h, 18 h, … (×3, ten steps), capped at 31 days and at a tenth of the time
//!   retention, as Prometheus caps them.
//! - Planning ([`plan`]): blocks sorted by time, the newest left out (it was just cut from the
//!   head); for each range above the smallest, blocks are grouped by aligned window of that
//!   range (blocks not fitting one window are left alone), and the first group of two or more
//!   that either fills its window or ends before the newest block starts is merged.
//! - Merging ([`merge_blocks`]): per series the chunks of every source, copied as they are when
//!   they do not overlap, re-encoded from merged samples when they do (overlapping sources).
//!   The result is one level above its highest source and lists the union of their sources.
//!   Samples the sources' tombstones delete are left out, so a merge drops deleted data.
//! - Retention ([`beyond_retention`]): whole blocks whose end is more than the time retention
//!   behind the newest block's end, then the oldest blocks until the size retention holds.

use super::block::{
    Block, BlockChunk, BlockSeries, NewBlock, chunk_without_deleted, chunks_from_samples,
    write_block_compacted,
};
use super::chunkenc::{Encoding, decode_xor};
use super::error::TsdbError;
use super::labels::Labels;
use super::meta::{BlockMeta, Ulid};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The longest block compaction makes (Prometheus's default cap).
pub const MAX_BLOCK_DURATION_MS: i64 = 31 * 24 * 3600 * 1000;

/// Prometheus's block ranges: `min × 3^k` for ten steps, capped at `max`.
pub fn block_ranges(min: i64, max: i64) -> Vec<i64> {
    let mut ranges = Vec::new();
    let mut range = min.max(1);
    for _ in 0..10 {
        if range > max && !ranges.is_empty() {
            break;
        }
        ranges.push(range);
        range = range.saturating_mul(3);
    }
    ranges
}

/// The cap on compacted block length for a time retention, as Prometheus computes it.
pub fn max_block_duration(retention_ms: Option<i64>) -> i64 {
    match retention_ms {
        Some(retention) if retention > 0 => (retention / 10).min(MAX_BLOCK_DURATION_MS),
        _ => MAX_BLOCK_DURATION_MS,
    }
}

/// Indices (into `metas`, sorted by `min_time`) of the blocks to merge next, if any.
pub fn plan(metas: &[BlockMeta], ranges: &[i64]) -> Option<Vec<usize>> {
    if ranges.len() < 2 || metas.len() < 2 {
        return None;
    }
    let mut order: Vec<usize> = (0..metas.len()).collect();
    order.sort_by_key(|&i| (metas[i].min_time, metas[i].ulid));
    // Leave out the newest block: a full block range of room for late backups, as Prometheus.
    order.pop();
    let high_time = metas[*order.last()?].min_time;
    for &range in &ranges[1..] {
        for group in split_by_range(metas, &order, range) {
            if group.len() < 2 || group.iter().any(|&i| metas[i].compaction.failed) {
                continue;
            }
            let min = metas[group[0]].min_time;
            let max = group
                .iter()
                .map(|&i| metas[i].max_time)
                .max()
                .unwrap_or(min);
            if max - min == range || max <= high_time {
                return Some(group);
            }
        }
    }
    None
}

/// Groups blocks (indices in time order) by the aligned window of `range` holding them;
/// blocks longer than their window are skipped.
fn split_by_range(metas: &[BlockMeta], order: &[usize], range: i64) -> Vec<Vec<usize>> {
    let mut groups: Vec<Vec<usize>> = Vec::new();
    let mut current: Option<(i64, Vec<usize>)> = None;
    for &index in order {
        let meta = &metas[index];
        let start = meta.min_time.div_euclid(range).saturating_mul(range);
        if meta.max_time > start.saturating_add(range) {
            continue;
        }
        match &mut current {
            Some((window, group)) if *window == start => group.push(index),
            _ => {
                if let Some((_, group)) = current.take() {
                    groups.push(group);
                }
                current = Some((start, vec![index]));
            }
        }
    }
    if let Some((_, group)) = current {
        groups.push(group);
    }
    groups
}

/// Merges `sources` into one new block under `parent`; returns its meta. Sources are not
/// deleted here.
pub fn merge_blocks(
    parent: &Path,
    sources: &[&Block],
    created_unix_millis: u64,
) -> Result<BlockMeta, TsdbError> {
    let Some(min_time) = sources.iter().map(|b| b.meta().min_time).min() else {
        return Err(TsdbError::Usage("no blocks to merge".into()));
    };
    let max_time = sources
        .iter()
        .map(|b| b.meta().max_time)
        .max()
        .unwrap_or(min_time);
    let mut by_labels: BTreeMap<Labels, Vec<BlockChunk>> = BTreeMap::new();
    for block in sources {
        let index = block.index();
        for id in index.all_postings()? {
            let series = index.series(id)?;
            let deleted = block.tombstones().get(id);
            let chunks = by_labels.entry(series.labels.clone()).or_default();
            for meta in &series.chunks {
                if deleted.is_some_and(|d| d.covers(meta.min_time, meta.max_time)) {
                    continue;
                }
                let (encoding, data) = block.chunks().chunk(meta.chunk_ref)?;
                if Encoding::from_byte(encoding) != Some(Encoding::Xor) {
                    // Native histogram chunks are not carried yet (issue 7's notes).
                    continue;
                }
                let chunk = BlockChunk {
                    min_time: meta.min_time,
                    max_time: meta.max_time,
                    data,
                };
                let kept = chunk_without_deleted(chunk, deleted).map_err(|error| {
                    TsdbError::Usage(format!(
                        "merging {}: a chunk of block {} does not decode: {error}",
                        series.labels,
                        block.meta().ulid
                    ))
                })?;
                chunks.extend(kept);
            }
        }
    }
    let mut series = Vec::with_capacity(by_labels.len());
    for (labels, mut chunks) in by_labels {
        chunks.sort_by_key(|c| (c.min_time, c.max_time));
        let overlapping = chunks.windows(2).any(|w| w[1].min_time <= w[0].max_time);
        if overlapping {
            let mut samples: BTreeMap<i64, f64> = BTreeMap::new();
            for chunk in &chunks {
                let decoded = decode_xor(&chunk.data).map_err(|error| {
                    TsdbError::Usage(format!("merging {labels}: chunk does not decode: {error}"))
                })?;
                for (t, v) in decoded {
                    samples.entry(t).or_insert(v);
                }
            }
            let samples: Vec<(i64, f64)> = samples.into_iter().collect();
            chunks = chunks_from_samples(&samples);
        }
        series.push(BlockSeries { labels, chunks });
    }
    let level = sources
        .iter()
        .map(|b| b.meta().compaction.level)
        .max()
        .unwrap_or(1)
        .saturating_add(1);
    let mut parents: BTreeSet<Ulid> = BTreeSet::new();
    for block in sources {
        parents.extend(block.meta().compaction.sources.iter().copied());
    }
    write_block_compacted(
        parent,
        NewBlock {
            series,
            min_time,
            max_time,
            created_unix_millis,
        },
        Some((level, parents.into_iter().collect())),
    )
}

/// Indices (into `metas`) of blocks beyond retention: by time, those ending more than
/// `retention_ms` before the newest block's end; by size, with `sizes[i]` the bytes of
/// block `i` and `other_bytes` the rest of the folder (WAL), the oldest ones until the total
/// fits `retention_bytes`.
pub fn beyond_retention(
    metas: &[BlockMeta],
    sizes: &[u64],
    other_bytes: u64,
    retention_ms: Option<i64>,
    retention_bytes: Option<u64>,
) -> BTreeSet<usize> {
    let mut doomed = BTreeSet::new();
    let mut newest_first: Vec<usize> = (0..metas.len()).collect();
    newest_first.sort_by_key(|&i| std::cmp::Reverse((metas[i].max_time, metas[i].ulid)));
    let Some(&newest) = newest_first.first() else {
        return doomed;
    };
    if let Some(retention) = retention_ms.filter(|r| *r > 0) {
        let newest_end = metas[newest].max_time;
        for &index in &newest_first {
            if newest_end.saturating_sub(metas[index].max_time) > retention {
                doomed.insert(index);
            }
        }
    }
    if let Some(limit) = retention_bytes.filter(|l| *l > 0) {
        let mut total = other_bytes;
        let mut over = false;
        for &index in &newest_first {
            total = total.saturating_add(sizes.get(index).copied().unwrap_or(0));
            if over || total > limit {
                over = true;
                doomed.insert(index);
            }
        }
    }
    doomed
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tsdb::meta::{BlockCompaction, BlockStats};

    const H: i64 = 3600 * 1000;

    fn meta(min: i64, max: i64, id: u8) -> BlockMeta {
        let ulid = Ulid::from_parts(1, [id; 10]);
        BlockMeta {
            ulid,
            min_time: min,
            max_time: max,
            stats: BlockStats::default(),
            compaction: BlockCompaction {
                level: 1,
                sources: vec![ulid],
                failed: false,
            },
            version: 1,
        }
    }

    #[test]
    fn ranges_follow_prometheus() {
        assert_eq!(
            block_ranges(2 * H, MAX_BLOCK_DURATION_MS)[..4],
            [2 * H, 6 * H, 18 * H, 54 * H]
        );
        // 15 days of retention cap blocks at 36 h.
        let ranges = block_ranges(2 * H, max_block_duration(Some(15 * 24 * H)));
        assert_eq!(ranges, vec![2 * H, 6 * H, 18 * H]);
    }

    #[test]
    fn planner_merges_complete_windows_and_leaves_the_newest() {
        let ranges = block_ranges(2 * H, MAX_BLOCK_DURATION_MS);
        let two = |k: i64, id| meta(k * 2 * H, (k + 1) * 2 * H, id);
        // Two blocks of the first 6 h window: not complete, but before the newest block.
        assert_eq!(
            plan(&[two(0, 1), two(1, 2), two(3, 3), two(4, 5)], &ranges),
            Some(vec![0, 1])
        );
        // Only the newest would complete the window: wait for it to age.
        assert_eq!(plan(&[two(0, 1), two(1, 2), two(2, 3)], &ranges), None);
        // Complete window, the newest elsewhere.
        assert_eq!(
            plan(&[two(2, 3), two(0, 1), two(1, 2), two(3, 4)], &ranges),
            Some(vec![1, 2, 0])
        );
        // Three 6 h blocks make an 18 h one.
        let six = |k: i64, id| meta(k * 6 * H, (k + 1) * 6 * H, id);
        assert_eq!(
            plan(&[six(0, 1), six(1, 2), six(2, 3), two(9, 4)], &ranges),
            Some(vec![0, 1, 2])
        );
        assert_eq!(plan(&[six(0, 1), two(3, 4)], &ranges), None);
    }

    #[test]
    fn retention_by_time_and_size() {
        let metas: Vec<BlockMeta> = (0..5)
            .map(|k| meta(k * 2 * H, (k + 1) * 2 * H, k as u8))
            .collect();
        let sizes = [100, 100, 100, 100, 100];
        let none = beyond_retention(&metas, &sizes, 0, None, None);
        assert!(none.is_empty());
        // Newest ends at 10 h; 5 h of retention keeps the blocks ending at 6, 8 and 10 h.
        let by_time = beyond_retention(&metas, &sizes, 0, Some(5 * H), None);
        assert_eq!(by_time.into_iter().collect::<Vec<_>>(), vec![0, 1]);
        // 250 bytes with 50 of WAL: the two newest blocks fit.
        let by_size = beyond_retention(&metas, &sizes, 50, None, Some(250));
        assert_eq!(by_size.into_iter().collect::<Vec<_>>(), vec![0, 1, 2]);
    }
}
