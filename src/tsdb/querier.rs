//! Reading across the head and blocks: series selected by matchers in every source that
//! overlaps the query range, grouped by labels, their chunks merged by timestamp with equal
//! timestamps deduplicated (the first source in block order wins, the head last). Each chunk
//! carries its source's deleted intervals for the series (tombstones): chunks they cover
//! entirely are left out, and deleted samples are skipped while merging.

use super::chunkenc::XorIterator;
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
