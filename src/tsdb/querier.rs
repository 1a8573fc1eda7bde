//! Reading across the head and blocks: series selected by matchers in every source that
//! overlaps the query range, grouped by labels, their chunks merged by timestamp with equal
//! timestamps deduplicated (the first source in block order wins, the head last). Each chunk
//! carries its source's deleted intervals for the series (tombstones): chunks they cover
//! entirely are left out, and deleted samples are skipped while merging.

use super::chunkenc::XorIterator;
use super::labels::Labels;
use super::tombstones::Intervals;
use std::collections::BTreeMap;

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
#[derive(Debug, Default)]
pub(crate) struct SeriesCollector {
    by_labels: BTreeMap<Labels, Vec<ChunkData>>,
}

impl SeriesCollector {
    pub(crate) fn add(&mut self, labels: Labels, mut chunks: Vec<ChunkData>) {
        chunks.retain(|c| !c.deleted.covers(c.min_time, c.max_time));
        if chunks.is_empty() {
            return;
        }
        self.by_labels.entry(labels).or_default().extend(chunks);
    }

    pub(crate) fn finish(self, min_time: i64, max_time: i64) -> Vec<Series> {
        self.by_labels
            .into_iter()
            .map(|(labels, chunks)| Series::new(labels, chunks, min_time, max_time))
            .collect()
    }
}
