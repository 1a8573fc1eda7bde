//! Reading across the head and blocks: series selected by matchers in every source that
//! overlaps the query range, grouped by labels, their chunks merged by timestamp with equal
//! timestamps deduplicated (the first source in block order wins, the head last). Each chunk
//! carries its source's deleted intervals for the series (tombstones): chunks they cover
//! entirely are left out, and deleted samples are skipped while merging.

use super::block::Block;
use super::chunkenc::{Encoding, XorIterator};
use super::chunks::{ChunkSpan, MAX_SPAN_BYTES};
use super::error::TsdbError;
use super::index::ChunkMeta;
use super::labels::Labels;
use super::tombstones::Intervals;

/// One chunk's bytes and the time it covers.
#[derive(Debug, Clone)]
pub struct ChunkData {
    /// First sample's timestamp.
    pub min_time: i64,
    /// Last sample's timestamp.
    pub max_time: i64,
    /// XOR bytes.
    pub bytes: Vec<u8>,
    /// Deleted intervals of the series in the chunk's source.
    pub deleted: Intervals,
}

/// A selected series: its labels and the chunks that hold its samples in the query range.
#[derive(Debug, Clone)]
pub struct Series {
    /// The labels.
    pub labels: Labels,
    chunks: Vec<ChunkData>,
    min_time: i64,
    max_time: i64,
}

impl Series {
    pub(crate) fn new(
        labels: Labels,
        chunks: Vec<ChunkData>,
        min_time: i64,
        max_time: i64,
    ) -> Self {
        Series {
            labels,
            chunks,
            min_time,
            max_time,
        }
    }

    /// The samples in the query range (both ends inclusive), by timestamp, one per timestamp.
    pub fn samples(&self) -> MergedSamples<'_> {
        let cursors = self
            .chunks
            .iter()
            .map(|chunk| Cursor {
                iterator: XorIterator::new(&chunk.bytes),
                current: None,
                deleted: &chunk.deleted,
            })
            .collect();
        let mut merged = MergedSamples {
            cursors,
            min_time: self.min_time,
            max_time: self.max_time,
            error: None,
        };
        for index in 0..merged.cursors.len() {
            merged.advance(index);
        }
        merged
    }

    /// Appends the samples [`Series::samples`] yields to `out`. Chunks in time order that do
    /// not overlap and hold no deleted samples (one source's chunks, the common case) are
    /// decoded straight into `out`, reserved from their headers' sample counts; others go
    /// through the k-way merge. Fails on the first chunk that cannot be decoded.
    pub fn samples_into(&self, out: &mut Vec<(i64, f64)>) -> Result<(), String> {
        let direct = self
            .chunks
            .windows(2)
            .all(|pair| pair[0].max_time < pair[1].min_time)
            && self
                .chunks
                .iter()
                .all(|chunk| !chunk.deleted.overlaps(chunk.min_time, chunk.max_time));
        if !direct {
            let mut merged = self.samples();
            out.extend(merged.by_ref());
            return match merged.error() {
                Some(error) => Err(error.to_string()),
                None => Ok(()),
            };
        }
        let in_range =
            |chunk: &&ChunkData| chunk.max_time >= self.min_time && chunk.min_time <= self.max_time;
        let expected: usize = self
            .chunks
            .iter()
            .filter(in_range)
            .map(|chunk| XorIterator::new(&chunk.bytes).num_samples())
            .sum();
        out.reserve(expected);
        for chunk in self.chunks.iter().filter(in_range) {
            let mut iterator = XorIterator::new(&chunk.bytes);
            for (t, v) in iterator.by_ref() {
                if t > self.max_time {
                    break;
                }
                if t >= self.min_time {
                    out.push((t, v));
                }
            }
            if let Some(error) = iterator.error() {
                return Err(error.to_string());
            }
        }
        Ok(())
    }

    /// The chunks behind the series.
    pub fn chunks(&self) -> &[ChunkData] {
        &self.chunks
    }
}

#[derive(Debug)]
struct Cursor<'a> {
    iterator: XorIterator<'a>,
    current: Option<(i64, f64)>,
    deleted: &'a Intervals,
}

/// A k-way merge of a series' chunks.
#[derive(Debug)]
pub struct MergedSamples<'a> {
    cursors: Vec<Cursor<'a>>,
    min_time: i64,
    max_time: i64,
    error: Option<String>,
}

impl MergedSamples<'_> {
    /// A chunk decoding error that ended iteration early, if any.
    pub fn error(&self) -> Option<&str> {
        self.error.as_deref()
    }

    fn advance(&mut self, index: usize) {
        let cursor = &mut self.cursors[index];
        cursor.current = None;
        for (t, v) in cursor.iterator.by_ref() {
            if t > self.max_time {
                break;
            }
            if t >= self.min_time && !cursor.deleted.contains(t) {
                cursor.current = Some((t, v));
                return;
            }
        }
        if let Some(error) = cursor.iterator.error() {
            self.error.get_or_insert_with(|| error.to_string());
        }
    }
}

impl Iterator for MergedSamples<'_> {
    type Item = (i64, f64);

    fn next(&mut self) -> Option<(i64, f64)> {
        let mut best: Option<(usize, (i64, f64))> = None;
        for (index, cursor) in self.cursors.iter().enumerate() {
            if let Some(sample) = cursor.current
                && best.is_none_or(|(_, b)| sample.0 < b.0)
            {
                best = Some((index, sample));
            }
        }
        let (_, sample) = best?;
        for index in 0..self.cursors.len() {
            if self.cursors[index].current.is_some_and(|s| s.0 == sample.0) {
                self.advance(index);
            }
        }
        Some(sample)
    }
}

/// Collects chunks per label set from several sources, then yields sorted series.
///
/// Entries are kept in arrival order and sorted once at the end: each block yields its series
/// already sorted by labels (block series ids follow label order), so a stable sort of one
/// block's run costs one comparison per series, where a map keyed by labels would compare
/// every insertion against a log-sized path of label sets.
#[derive(Debug, Default)]
pub(crate) struct SeriesCollector {
    entries: Vec<(Labels, Vec<ChunkData>)>,
}

impl SeriesCollector {
    pub(crate) fn add(&mut self, labels: Labels, mut chunks: Vec<ChunkData>) {
        chunks.retain(|c| !c.deleted.covers(c.min_time, c.max_time));
        if chunks.is_empty() {
            return;
        }
        self.entries.push((labels, chunks));
    }

    pub(crate) fn finish(mut self, min_time: i64, max_time: i64) -> Vec<Series> {
        // Stable: the chunks of one label set stay in source order (blocks, then the head),
        // which the merge's "first source wins" deduplication relies on.
        self.entries.sort_by(|a, b| a.0.cmp(&b.0));
        let mut out: Vec<Series> = Vec::with_capacity(self.entries.len());
        for (labels, chunks) in self.entries {
            match out.last_mut() {
                Some(last) if last.labels == labels => last.chunks.extend(chunks),
                _ => out.push(Series::new(labels, chunks, min_time, max_time)),
            }
        }
        out
    }
}

/// A selected series with its samples in the query range decoded: by timestamp, one per
/// timestamp, deleted samples left out (what [`Series::samples_into`] yields).
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesSamples {
    /// The labels.
    pub labels: Labels,
    /// The samples.
    pub samples: Vec<(i64, f64)>,
}

/// Collects decoded series from several sources (blocks in order, then the head) and yields
/// them sorted by labels; a label set found in several sources gets their samples merged by
/// timestamp, the earlier source winning on equal timestamps (as the k-way merge of
/// [`Series::samples`] decides, the sources being in the same order).
#[derive(Debug, Default)]
pub(crate) struct SamplesCollector {
    entries: Vec<SeriesSamples>,
}

impl SamplesCollector {
    pub(crate) fn add(&mut self, labels: Labels, samples: Vec<(i64, f64)>) {
        if !samples.is_empty() {
            self.entries.push(SeriesSamples { labels, samples });
        }
    }

    /// Adds a source's series decoded through the chunk merge (the head, or block series whose
    /// chunks overlap or hold deletions).
    pub(crate) fn add_series(&mut self, series: &Series) -> Result<(), TsdbError> {
        let mut samples = Vec::new();
        series
            .samples_into(&mut samples)
            .map_err(|error| TsdbError::Usage(format!("series {}: {error}", series.labels)))?;
        self.add(series.labels.clone(), samples);
        Ok(())
    }

    /// Appends another collector's entries (a later part of the same source, or a later
    /// source).
    pub(crate) fn append(&mut self, other: SamplesCollector) {
        self.entries.extend(other.entries);
    }

    pub(crate) fn finish(mut self) -> Vec<SeriesSamples> {
        // Stable, and each block's series arrive sorted: about one comparison per series.
        self.entries.sort_by(|a, b| a.labels.cmp(&b.labels));
        let mut out: Vec<SeriesSamples> = Vec::with_capacity(self.entries.len());
        for entry in self.entries {
            match out.last_mut() {
                Some(last) if last.labels == entry.labels => {
                    last.samples = merge_first_wins(&last.samples, &entry.samples);
                }
                _ => out.push(entry),
            }
        }
        out
    }
}

/// Two sorted, timestamp-unique sample lists merged; `first`'s sample wins a shared timestamp.
fn merge_first_wins(first: &[(i64, f64)], second: &[(i64, f64)]) -> Vec<(i64, f64)> {
    let mut out = Vec::with_capacity(first.len() + second.len());
    let (mut i, mut j) = (0, 0);
    while i < first.len() && j < second.len() {
        match first[i].0.cmp(&second[j].0) {
            std::cmp::Ordering::Less => {
                out.push(first[i]);
                i += 1;
            }
            std::cmp::Ordering::Greater => {
                out.push(second[j]);
                j += 1;
            }
            std::cmp::Ordering::Equal => {
                out.push(first[i]);
                i += 1;
                j += 1;
            }
        }
    }
    out.extend_from_slice(&first[i..]);
    out.extend_from_slice(&second[j..]);
    out
}

/// Series per batch when reading a block: their chunk metas are gathered first so that the
/// chunks of neighbouring series are read together.
const SERIES_PER_BATCH: usize = 1024;
/// Chunks closer than this to the previous one (start to start) are read in the same span:
/// reading the bytes between costs less than another system call.
const MAX_SPAN_GAP: u64 = 4096;
/// Bytes expected after the last chunk's start of a span, to cover its record in the same
/// read (Prometheus cuts chunks at 120 samples or 1 KiB; a longer one takes a second read).
const LAST_CHUNK_ALLOWANCE: u64 = 1024 + 16;
/// Selections of at least this many series in one block are decoded on two threads (a
/// thread costs tens of microseconds; 2,048 series cost milliseconds even for an instant query).
const PARALLEL_SERIES: usize = 2048;

/// Decodes series `ids` (sorted) of `block` over `[min_time, max_time]` into `collector`, in
/// id order (the block's label order). Only chunks overlapping the range are read, with one
/// positioned read per run of neighbouring chunks ([`ChunkSpan`]) and no checksum (the query
/// path); chunks are decoded straight into each series' sample vector, except for series
/// whose chunks overlap or hold deletions, which go through the chunk merge.
pub(crate) fn read_block_samples(
    block: &Block,
    ids: &[u64],
    min_time: i64,
    max_time: i64,
    collector: &mut SamplesCollector,
) -> Result<(), TsdbError> {
    read_block_samples_from(block, ids, min_time, max_time, collector, PARALLEL_SERIES)
}

/// [`read_block_samples`] with the selection size from which two threads share the work.
fn read_block_samples_from(
    block: &Block,
    ids: &[u64],
    min_time: i64,
    max_time: i64,
    collector: &mut SamplesCollector,
    parallel_from: usize,
) -> Result<(), TsdbError> {
    if ids.len() >= parallel_from.max(2) {
        let (left, right) = ids.split_at(ids.len() / 2);
        let (first, second) = std::thread::scope(|scope| {
            let worker = scope.spawn(|| {
                let mut part = SamplesCollector::default();
                read_block_samples_serial(block, right, min_time, max_time, &mut part)
                    .map(|()| part)
            });
            let mut part = SamplesCollector::default();
            let first = read_block_samples_serial(block, left, min_time, max_time, &mut part)
                .map(|()| part);
            let second = worker
                .join()
                .unwrap_or_else(|_| Err(TsdbError::Usage("block reader thread panicked".into())));
            (first, second)
        });
        collector.append(first?);
        collector.append(second?);
        return Ok(());
    }
    read_block_samples_serial(block, ids, min_time, max_time, collector)
}

fn read_block_samples_serial(
    block: &Block,
    ids: &[u64],
    min_time: i64,
    max_time: i64,
    collector: &mut SamplesCollector,
) -> Result<(), TsdbError> {
    let index = block.index();
    let reader = block.chunks();
    let mut span = ChunkSpan::default();
    let mut scratch: Vec<(i64, f64)> = Vec::new();
    let mut metas: Vec<ChunkMeta> = Vec::new();
    let mut span_ends: Vec<u64> = Vec::new();
    let mut planned: Vec<(Labels, Option<&Intervals>, std::ops::Range<usize>)> = Vec::new();
    for batch in ids.chunks(SERIES_PER_BATCH) {
        metas.clear();
        planned.clear();
        for &id in batch {
            let series = index.series(id)?;
            let deleted = block.tombstones().get(id).filter(|d| !d.is_empty());
            let start = metas.len();
            metas.extend(series.chunks.iter().filter(|c| {
                c.max_time >= min_time
                    && c.min_time <= max_time
                    && !deleted.is_some_and(|d| d.covers(c.min_time, c.max_time))
            }));
            if metas.len() > start {
                planned.push((series.labels, deleted, start..metas.len()));
            }
        }
        plan_spans(&metas, &mut span_ends);
        for (labels, deleted, range) in planned.drain(..) {
            let chunks = &metas[range.clone()];
            let span_ends = &span_ends[range];
            let direct = chunks
                .windows(2)
                .all(|pair| pair[0].max_time < pair[1].min_time)
                && !deleted
                    .is_some_and(|d| chunks.iter().any(|c| d.overlaps(c.min_time, c.max_time)));
            if !direct {
                let mut data = Vec::with_capacity(chunks.len());
                for (meta, &end) in chunks.iter().zip(span_ends) {
                    let (encoding, bytes) = reader.chunk_in_span(&mut span, meta.chunk_ref, end)?;
                    if Encoding::from_byte(encoding) == Some(Encoding::Xor) {
                        data.push(ChunkData {
                            min_time: meta.min_time,
                            max_time: meta.max_time,
                            bytes: bytes.to_vec(),
                            deleted: deleted.cloned().unwrap_or_default(),
                        });
                    }
                }
                collector.add_series(&Series::new(labels, data, min_time, max_time))?;
                continue;
            }
            // Decoded into a reused buffer and copied out at their exact size: an instant
            // query keeps a few samples of each chunk, and reserving for whole chunks would
            // allocate (and fault in) several times the memory the answer needs.
            scratch.clear();
            let samples = &mut scratch;
            for (meta, &end) in chunks.iter().zip(span_ends) {
                let (encoding, bytes) = reader.chunk_in_span(&mut span, meta.chunk_ref, end)?;
                // Chunks of other encodings (native histograms) are not float samples.
                if Encoding::from_byte(encoding) != Some(Encoding::Xor) {
                    continue;
                }
                let mut iterator = XorIterator::new(bytes);
                samples.reserve(iterator.num_samples());
                for (t, v) in iterator.by_ref() {
                    if t > max_time {
                        break;
                    }
                    if t >= min_time {
                        samples.push((t, v));
                    }
                }
                if let Some(error) = iterator.error() {
                    return Err(TsdbError::Corrupt {
                        path: block.folder().join("chunks"),
                        source: super::encoding::DecodeError {
                            offset: (meta.chunk_ref & 0xFFFF_FFFF) as usize,
                            reason: format!(
                                "chunk {:#x} of series {labels}: {error}",
                                meta.chunk_ref
                            ),
                        },
                    });
                }
            }
            collector.add(labels, scratch.as_slice().to_vec());
        }
    }
    Ok(())
}

/// For each chunk of `metas` (in reading order), the offset its span should be read to: a span
/// is a run of chunks in one segment, each starting after the previous one and at most
/// [`MAX_SPAN_GAP`] after it, within [`MAX_SPAN_BYTES`]; it ends [`LAST_CHUNK_ALLOWANCE`]
/// after its last chunk's start.
fn plan_spans(metas: &[ChunkMeta], ends: &mut Vec<u64>) {
    ends.clear();
    ends.resize(metas.len(), 0);
    let mut start = 0;
    while start < metas.len() {
        let first = metas[start].chunk_ref;
        let mut end = start + 1;
        while end < metas.len() {
            let previous = metas[end - 1].chunk_ref;
            let next = metas[end].chunk_ref;
            let same_segment = next >> 32 == first >> 32;
            if !same_segment
                || next <= previous
                || next - previous > MAX_SPAN_GAP
                || next - first + LAST_CHUNK_ALLOWANCE > MAX_SPAN_BYTES
            {
                break;
            }
            end += 1;
        }
        let last_offset = metas[end - 1].chunk_ref & 0xFFFF_FFFF;
        ends[start..end].fill(last_offset + LAST_CHUNK_ALLOWANCE);
        start = end;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tsdb::chunkenc::XorChunk;
    use crate::tsdb::tombstones::Interval;

    fn chunk(samples: &[(i64, f64)], deleted: Intervals) -> ChunkData {
        let mut encoded = XorChunk::new();
        for &(t, v) in samples {
            encoded.append(t, v);
        }
        ChunkData {
            min_time: samples[0].0,
            max_time: samples[samples.len() - 1].0,
            bytes: encoded.bytes().to_vec(),
            deleted,
        }
    }

    fn labels(job: &str) -> Labels {
        Labels::new([("__name__", "up"), ("job", job)])
    }

    fn both_ways(series: &Series) -> Vec<(i64, f64)> {
        let merged: Vec<_> = series.samples().collect();
        let mut direct = Vec::new();
        series.samples_into(&mut direct).unwrap();
        assert_eq!(merged, direct, "merge and direct decoding disagree");
        direct
    }

    #[test]
    fn collector_sorts_merges_equal_labels_and_keeps_source_order() {
        let mut collector = SeriesCollector::default();
        // Block 1: b then c (sorted); the head: c then a (unsorted).
        collector.add(
            labels("b"),
            vec![chunk(&[(1, 1.0), (2, 2.0)], Intervals::default())],
        );
        collector.add(
            labels("c"),
            vec![chunk(&[(1, 10.0), (3, 30.0)], Intervals::default())],
        );
        collector.add(
            labels("c"),
            vec![chunk(&[(3, 99.0), (4, 40.0)], Intervals::default())],
        );
        collector.add(labels("a"), vec![chunk(&[(5, 5.0)], Intervals::default())]);
        let series = collector.finish(0, 10);
        let jobs: Vec<_> = series
            .iter()
            .map(|s| s.labels.get("job").unwrap())
            .collect();
        assert_eq!(jobs, ["a", "b", "c"]);
        // The block's sample wins at the shared timestamp 3.
        assert_eq!(both_ways(&series[2]), vec![(1, 10.0), (3, 30.0), (4, 40.0)]);
        assert_eq!(both_ways(&series[0]), vec![(5, 5.0)]);
    }

    #[test]
    fn merge_first_wins_keeps_the_earlier_sources_samples() {
        assert_eq!(
            merge_first_wins(&[(1, 1.0), (3, 3.0)], &[(2, 20.0), (3, 30.0), (4, 40.0)]),
            vec![(1, 1.0), (2, 20.0), (3, 3.0), (4, 40.0)]
        );
        assert_eq!(merge_first_wins(&[], &[(1, 1.0)]), vec![(1, 1.0)]);
    }

    #[test]
    fn spans_break_at_gaps_segments_and_backward_refs() {
        let meta = |chunk_ref: u64| ChunkMeta {
            min_time: 0,
            max_time: 0,
            chunk_ref,
        };
        let metas = [
            meta(8),
            meta(100),
            meta(100 + MAX_SPAN_GAP),
            meta(200 + 2 * MAX_SPAN_GAP),
            meta(50),
            meta(1 << 32 | 60),
            meta(1 << 32 | 70),
        ];
        let mut ends = Vec::new();
        plan_spans(&metas, &mut ends);
        let after = |offset: u64| offset + LAST_CHUNK_ALLOWANCE;
        assert_eq!(
            ends,
            vec![
                after(100 + MAX_SPAN_GAP),
                after(100 + MAX_SPAN_GAP),
                after(100 + MAX_SPAN_GAP),
                after(200 + 2 * MAX_SPAN_GAP),
                after(50),
                after(70),
                after(70),
            ]
        );
    }

    /// One series' samples in one source: (timestamp step, value seed) pairs.
    type SourceSamples = Vec<(u16, u8)>;

    fn samples_of(steps: &SourceSamples, source: usize, noisy: bool) -> Vec<(i64, f64)> {
        let mut samples: Vec<(i64, f64)> = steps
            .iter()
            .map(|&(step, seed)| {
                let t = i64::from(step) * 1000;
                // Noisy values make chunks longer than the span's allowance for the last one.
                let v = if noisy {
                    (t as f64).sin() * 1e6 + f64::from(seed) / 7.0
                } else {
                    f64::from(seed) + 100.0 * source as f64
                };
                (t, v)
            })
            .collect();
        samples.sort_by_key(|s| s.0);
        samples.dedup_by_key(|s| s.0);
        samples
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig {
            cases: 48, ..proptest::prelude::ProptestConfig::default()
        })]
        /// `select_samples` (span reads, direct decoding) yields what `select` and the k-way
        /// merge yield, over two overlapping blocks, the head and deletions.
        #[test]
        fn select_samples_matches_the_chunk_merge(
            series in proptest::collection::vec(
                (
                    proptest::collection::vec((0u16..400, proptest::prelude::any::<u8>()), 0..300),
                    proptest::collection::vec((0u16..400, proptest::prelude::any::<u8>()), 0..300),
                    proptest::collection::vec((400u16..500, proptest::prelude::any::<u8>()), 0..20),
                    proptest::prelude::any::<bool>(),
                ),
                1..40,
            ),
            deletion in proptest::option::of((0i64..500_000, 0i64..50_000)),
            range in (0i64..500_000, 0i64..500_000),
        ) {
            use crate::tsdb::block::{BlockSeries, NewBlock, chunks_from_samples, write_block};
            use crate::tsdb::labels::Matcher;
            use crate::tsdb::{Tsdb, TsdbOptions};
            let folder = tempfile::tempdir().unwrap();
            let mut blocks: [Vec<BlockSeries>; 2] = [Vec::new(), Vec::new()];
            let mut head = Vec::new();
            for (index, (first, second, newer, noisy)) in series.iter().enumerate() {
                let labels = Labels::new([
                    ("__name__", "m".to_string()),
                    ("i", format!("{index:03}")),
                ]);
                blocks[0].push(BlockSeries {
                    labels: labels.clone(),
                    chunks: chunks_from_samples(&samples_of(first, 0, *noisy)),
                });
                blocks[1].push(BlockSeries {
                    labels: labels.clone(),
                    chunks: chunks_from_samples(&samples_of(second, 1, *noisy)),
                });
                head.push((labels, samples_of(newer, 2, *noisy)));
            }
            for (number, block) in blocks.into_iter().enumerate() {
                if block.iter().all(|s| s.chunks.is_empty()) {
                    continue;
                }
                write_block(folder.path(), NewBlock {
                    series: block,
                    min_time: 0,
                    max_time: 400_000,
                    created_unix_millis: 1 + number as u64,
                }).unwrap();
            }
            let tsdb = Tsdb::open(folder.path(), TsdbOptions::default()).unwrap();
            let mut appender = tsdb.appender();
            for (labels, samples) in &head {
                for &(t, v) in samples {
                    appender.append(labels, t, v).unwrap();
                }
            }
            appender.commit().unwrap();
            let all = [Matcher::equal("__name__", "m")];
            if let Some((start, length)) = deletion {
                tsdb.delete(&all, start, start + length).unwrap();
            }
            let (min_time, max_time) = (range.0.min(range.1), range.0.max(range.1));
            let querier = tsdb.querier(min_time, max_time);
            let want: Vec<SeriesSamples> = querier
                .select(&all)
                .unwrap()
                .map(|series| SeriesSamples {
                    samples: series.samples().collect(),
                    labels: series.labels,
                })
                .filter(|series| !series.samples.is_empty())
                .collect();
            let got = querier.select_samples(&all).unwrap();
            proptest::prop_assert_eq!(got, want);
        }
    }

    #[test]
    fn two_threads_read_what_one_reads_in_the_same_order() {
        use crate::tsdb::block::{BlockSeries, NewBlock, chunks_from_samples, write_block};
        let folder = tempfile::tempdir().unwrap();
        let series: Vec<BlockSeries> = (0..50)
            .map(|index| BlockSeries {
                labels: Labels::new([("i", format!("{index:02}"))]),
                chunks: chunks_from_samples(
                    &(0..index * 7)
                        .map(|t| (t * 1000, t as f64))
                        .collect::<Vec<_>>(),
                ),
            })
            .collect();
        let meta = write_block(
            folder.path(),
            NewBlock {
                series,
                min_time: 0,
                max_time: 400_000,
                created_unix_millis: 1,
            },
        )
        .unwrap();
        let block = Block::open(&folder.path().join(meta.ulid.to_string())).unwrap();
        let ids = block.index().all_postings().unwrap();
        let read = |parallel_from: usize| {
            let mut collector = SamplesCollector::default();
            read_block_samples_from(&block, &ids, 5_000, 300_000, &mut collector, parallel_from)
                .unwrap();
            collector.finish()
        };
        let serial = read(usize::MAX);
        assert_eq!(serial.len(), 49);
        assert_eq!(serial[10].samples.first(), Some(&(5_000, 5.0)));
        assert_eq!(read(2), serial);
    }

    #[test]
    fn direct_decoding_respects_range_and_deletions() {
        let mut deleted = Intervals::default();
        deleted.add(Interval { mint: 3, maxt: 4 });
        let first = chunk(&[(1, 1.0), (2, 2.0), (3, 3.0)], Intervals::default());
        let second = chunk(&[(4, 4.0), (5, 5.0), (6, 6.0)], deleted);
        let series = Series::new(labels("a"), vec![first.clone(), second], 2, 5);
        assert_eq!(both_ways(&series), vec![(2, 2.0), (3, 3.0), (5, 5.0)]);
        let plain = Series::new(labels("a"), vec![first], 2, 2);
        assert_eq!(both_ways(&plain), vec![(2, 2.0)]);
    }
}
