//! The head: the most recent samples in memory, per series an ordered list of XOR chunks whose
//! last one is appended to in place. Series get a stable reference at creation (the reference
//! the WAL records use), and a postings index by label pair.
//!
//! Out-of-order samples (accepted when an out-of-order window is set, see [`Head::place`]) are
//! kept per series in a sorted map beside the in-order chunks: Prometheus keeps them in separate
//! out-of-order head chunks, and both are merged when read and when written to a block.
//! Deletions are tombstones by series reference, applied when reading and when writing blocks.

use super::block::{BlockChunk, BlockSeries, chunks_from_samples};
use super::chunkenc::{XorChunk, decode_xor};
use super::chunks_head::{ChunkDiskMapper, ChunkRef};
use super::error::TsdbError;
use super::index::PostingsSource;
use super::labels::Labels;
use super::tombstones::{Interval, Intervals, Tombstones, without_deleted};
use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasherDefault, Hasher};

/// Hashes a series reference for the per-sample maps (head series, appender batches): refs
/// are small sequential integers the node hands out, so a multiply spreads them well enough
/// and costs a fraction of SipHash, which the append path otherwise pays per sample.
#[derive(Debug, Default, Clone, Copy)]
pub struct RefHasher(u64);

impl Hasher for RefHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Not used for u64 keys; kept correct for any other key type.
        for &byte in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(byte)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }

    fn write_u64(&mut self, value: u64) {
        let mixed = (self.0 ^ value).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        self.0 = mixed ^ (mixed >> 29);
    }
}

/// A map keyed by series reference, hashed with [`RefHasher`].
pub type RefMap<V> = HashMap<u64, V, BuildHasherDefault<RefHasher>>;

/// Hashes label sets as a head's label index does (see [`Head::label_hasher`]).
#[derive(Debug, Clone, Default)]
pub struct LabelHasher(std::collections::hash_map::RandomState);

impl LabelHasher {
    /// The hash [`Head::insert_series_hashed`] expects for `labels`.
    pub fn hash(&self, labels: &Labels) -> u64 {
        use std::hash::BuildHasher;
        self.0.hash_one(labels.encoded())
    }
}

/// Prometheus's target number of samples per head chunk.
pub const SAMPLES_PER_CHUNK: usize = 120;
/// A chunk is cut at this many samples whatever the time estimate says (the scrape rate rose).
pub const MAX_SAMPLES_PER_CHUNK: usize = 2 * SAMPLES_PER_CHUNK;
/// A chunk is cut once its encoded size reaches this.
pub const MAX_CHUNK_BYTES: usize = 1024;

/// Why a sample was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AppendError {
    /// Older than the newest sample of its series.
    #[error("out of order sample")]
    OutOfOrder,
    /// Older than the head's lower bound (the data is already in blocks).
    #[error("out of bounds")]
    OutOfBounds,
    /// Same timestamp as the newest sample of its series with a different value.
    #[error("duplicate sample for timestamp")]
    Duplicate,
    /// The series has no labels.
    #[error("empty label set")]
    EmptyLabels,
    /// [`crate::tsdb::Appender::append_ref`] was given a reference the head does not have
    /// (never handed out, or its series was removed by a head compaction since): resolve the
    /// series again by its labels.
    #[error("unknown series reference")]
    UnknownSeries,
}

/// The open head chunk and the time it covers.
#[derive(Debug, Clone)]
pub struct HeadChunk {
    /// The encoded samples.
    pub chunk: XorChunk,
    /// First sample's timestamp.
    pub min_time: i64,
    /// Last sample's timestamp.
    pub max_time: i64,
}

/// A completed (cut) chunk: its time range and where its bytes are.
#[derive(Debug, Clone)]
pub struct CompletedChunk {
    /// First sample's timestamp.
    pub min_time: i64,
    /// Last sample's timestamp.
    pub max_time: i64,
    /// Number of samples.
    pub num_samples: u16,
    location: ChunkLocation,
}

/// Where a completed chunk's bytes are.
#[derive(Debug, Clone)]
enum ChunkLocation {
    /// In `chunks_head/`, at this reference.
    Disk(ChunkRef),
    /// In memory: the head has no chunk folder (a head without a data folder), or writing
    /// the chunk there failed.
    Memory(Box<[u8]>),
}

/// Bits of a [`PendingSlot`] holding the batch's index into its pending samples.
const PENDING_INDEX_BITS: u32 = 24;
/// The index value meaning "the batch keeps this series' newest pending sample elsewhere"
/// (its pending list outgrew the index bits).
pub const PENDING_ELSEWHERE: usize = (1 << PENDING_INDEX_BITS) - 1;
/// Batch identifiers use the bits above the index.
pub const PENDING_BATCH_MASK: u64 = (1 << (64 - PENDING_INDEX_BITS)) - 1;

/// Which append batch last queued an in-order sample for a series, and where in its pending
/// list: `batch << 24 | index`. Lets an appender find the series' newest pending sample
/// without a per-batch hash map (the reference path's cost per sample), under the head's read
/// lock. Two batches appending to one series at once overwrite each other's slot: the loser
/// then checks against the committed samples only, and its commit (which checks every sample
/// again) refuses what the batch made out of order, as Prometheus's commit does.
#[derive(Debug, Default)]
pub struct PendingSlot(std::sync::atomic::AtomicU64);

impl Clone for PendingSlot {
    fn clone(&self) -> Self {
        PendingSlot(std::sync::atomic::AtomicU64::new(
            self.0.load(std::sync::atomic::Ordering::Relaxed),
        ))
    }
}

impl PendingSlot {
    /// The index batch `batch` (masked by [`PENDING_BATCH_MASK`], never 0) stored, if it was
    /// the last batch to store one.
    pub fn index_for(&self, batch: u64) -> Option<usize> {
        let slot = self.0.load(std::sync::atomic::Ordering::Relaxed);
        (slot >> PENDING_INDEX_BITS == batch).then_some((slot & PENDING_ELSEWHERE as u64) as usize)
    }

    /// Records that batch `batch`'s newest in-order sample of the series is at `index` of
    /// its pending list ([`PENDING_ELSEWHERE`] or above: kept elsewhere by the batch).
    pub fn store(&self, batch: u64, index: usize) {
        let index = index.min(PENDING_ELSEWHERE) as u64;
        self.0.store(
            (batch << PENDING_INDEX_BITS) | index,
            std::sync::atomic::Ordering::Relaxed,
        );
    }
}

/// A series in the head. Its memory is the labels (shared with the head's label map), the
/// open chunk, and a few words per completed chunk (their bytes are in `chunks_head/`).
#[derive(Debug, Clone)]
pub struct MemSeries {
    /// Its labels.
    pub labels: Labels,
    /// Completed chunks by time, all older than the open one.
    completed: Vec<CompletedChunk>,
    /// The chunk appended to; `None` only for a series without in-order samples.
    open: Option<HeadChunk>,
    /// Timestamp at which the open chunk is cut.
    next_cut_at: i64,
    /// Whether a WAL Series record for it has been written (set under the WAL lock).
    pub(crate) logged: bool,
    /// Out-of-order samples by timestamp (allocated for the series that get any).
    pub ooo: Option<Box<BTreeMap<i64, f64>>>,
    /// The append batch holding its newest pending sample (see [`PendingSlot`]).
    pub pending: PendingSlot,
}

impl MemSeries {
    fn new(labels: Labels) -> MemSeries {
        MemSeries {
            labels,
            completed: Vec::new(),
            open: None,
            next_cut_at: i64::MIN,
            logged: false,
            ooo: None,
            pending: PendingSlot::default(),
        }
    }

    /// Number of in-order chunks, the open one included.
    pub fn num_chunks(&self) -> usize {
        self.completed.len() + usize::from(self.open.is_some())
    }

    /// Time range and sample count of each in-order chunk, oldest first (the open one last).
    pub fn chunk_metas(&self) -> Vec<(i64, i64, usize)> {
        let mut metas: Vec<(i64, i64, usize)> = self
            .completed
            .iter()
            .map(|c| (c.min_time, c.max_time, usize::from(c.num_samples)))
            .collect();
        metas.extend(
            self.open
                .as_ref()
                .map(|c| (c.min_time, c.max_time, c.chunk.num_samples())),
        );
        metas
    }

    /// The open chunk.
    pub fn open_chunk(&self) -> Option<&HeadChunk> {
        self.open.as_ref()
    }

    /// Oldest timestamp, out-of-order samples included.
    pub fn min_time(&self) -> Option<i64> {
        let in_order = match self.completed.first() {
            Some(chunk) => Some(chunk.min_time),
            None => self.open.as_ref().map(|c| c.min_time),
        };
        let ooo = self.ooo.as_ref().and_then(|m| m.keys().next().copied());
        match (in_order, ooo) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Newest timestamp, out-of-order samples included.
    pub fn max_time_all(&self) -> Option<i64> {
        let ooo = self
            .ooo
            .as_ref()
            .and_then(|m| m.keys().next_back().copied());
        match (self.max_time(), ooo) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        }
    }

    /// The out-of-order samples in `[min_time, max_time]`, encoded as chunks for reading.
    pub fn ooo_chunks(&self, min_time: i64, max_time: i64) -> Vec<BlockChunk> {
        let Some(samples) = &self.ooo else {
            return Vec::new();
        };
        if min_time > max_time {
            return Vec::new();
        }
        let in_range: Vec<(i64, f64)> = samples
            .range(min_time..=max_time)
            .map(|(&t, &v)| (t, v))
            .collect();
        chunks_from_samples(&in_range)
    }

    /// Timestamp and value bits of the newest sample.
    pub fn last_sample(&self) -> Option<(i64, u64)> {
        self.open
            .as_ref()
            .map(|c| (c.max_time, c.chunk.last_value_bits()))
    }

    /// Newest timestamp.
    pub fn max_time(&self) -> Option<i64> {
        self.open.as_ref().map(|c| c.max_time)
    }

    /// Whether `(t, v)` could be appended: `Ok(true)` to append, `Ok(false)` for an exact
    /// duplicate that is silently dropped (as Prometheus does), or the reason it cannot.
    pub fn appendable(&self, t: i64, v: f64) -> Result<bool, AppendError> {
        match self.last_sample() {
            None => Ok(true),
            Some((max, _)) if t > max => Ok(true),
            Some((max, _)) if t < max => Err(AppendError::OutOfOrder),
            Some((_, bits)) if bits == v.to_bits() => Ok(false),
            Some(_) => Err(AppendError::Duplicate),
        }
    }

    /// Appends a sample, cutting a new chunk at a chunk-range boundary, at the estimated end
    /// of a ~120-sample chunk, or at the size caps. The chunk a cut completes goes to `disk`
    /// (under `series_ref`) when there is one. Returns `None` for an exact duplicate (dropped),
    /// else whether a chunk was cut.
    fn append(
        &mut self,
        series_ref: u64,
        t: i64,
        v: f64,
        chunk_range: i64,
        disk: Option<&mut ChunkDiskMapper>,
    ) -> Result<Option<bool>, AppendError> {
        if !self.appendable(t, v)? {
            return Ok(None);
        }
        let must_cut = match &self.open {
            None => true,
            Some(open) => {
                t >= self.next_cut_at
                    || open.chunk.num_samples() >= MAX_SAMPLES_PER_CHUNK
                    || open.chunk.bytes().len() >= MAX_CHUNK_BYTES
                    || open.chunk.is_full()
            }
        };
        if must_cut {
            let fresh = HeadChunk {
                chunk: XorChunk::new(),
                min_time: t,
                max_time: t,
            };
            if let Some(done) = self.open.replace(fresh) {
                self.completed.push(complete(series_ref, done, disk));
            }
            self.next_cut_at = range_end(t, chunk_range);
        }
        let Some(open) = self.open.as_mut() else {
            return Err(AppendError::OutOfOrder);
        };
        open.chunk.append(t, v);
        open.max_time = t;
        // A quarter into the chunk, estimate where it should end so the chunks up to the range
        // boundary come out evenly filled.
        if open.chunk.num_samples() == SAMPLES_PER_CHUNK / 4 {
            self.next_cut_at = estimated_chunk_end(open.min_time, t, self.next_cut_at);
        }
        Ok(Some(must_cut))
    }

    /// Drops the in-order chunks that end before `max_time`; returns how many.
    fn truncate_chunks(&mut self, max_time: i64) -> u64 {
        let before = self.num_chunks();
        self.completed.retain(|c| c.max_time >= max_time);
        if self.open.as_ref().is_some_and(|c| c.max_time < max_time) {
            // Every completed chunk is older than the open one: all are gone too.
            self.open = None;
            self.completed.clear();
        }
        (before - self.num_chunks()) as u64
    }
}

/// A cut chunk as the head keeps it: written to `disk` if there is one, else (or when the
/// write fails: the WAL still has the samples) in memory.
fn complete(
    series_ref: u64,
    done: HeadChunk,
    disk: Option<&mut ChunkDiskMapper>,
) -> CompletedChunk {
    let num_samples = u16::try_from(done.chunk.num_samples()).unwrap_or(u16::MAX);
    let location = match disk {
        Some(disk) => {
            match disk.write_chunk(series_ref, done.min_time, done.max_time, done.chunk.bytes()) {
                Ok(chunk_ref) => ChunkLocation::Disk(chunk_ref),
                Err(error) => {
                    tracing::warn!(%error, "head chunk kept in memory: writing it to chunks_head failed");
                    ChunkLocation::Memory(done.chunk.bytes().into())
                }
            }
        }
        None => ChunkLocation::Memory(done.chunk.bytes().into()),
    };
    CompletedChunk {
        min_time: done.min_time,
        max_time: done.max_time,
        num_samples,
        location,
    }
}

/// A series' samples in `[min_time, max_time)`, in-order and out-of-order merged (in-order
/// wins a shared timestamp), without the deleted ones, cut into chunks.
fn merged_block_chunks(
    series: &MemSeries,
    in_order: &[BlockChunk],
    min_time: i64,
    max_time: i64,
    deleted: Option<&Intervals>,
) -> Result<Vec<BlockChunk>, TsdbError> {
    let mut samples: BTreeMap<i64, f64> = BTreeMap::new();
    for chunk in in_order {
        if chunk.min_time >= max_time || chunk.max_time < min_time {
            continue;
        }
        // Our own chunk bytes, checksummed on disk: a failure to decode means damage, and the
        // block must not silently miss samples.
        let decoded = decode_xor(&chunk.data).map_err(|error| {
            TsdbError::Usage(format!(
                "head chunk of {} [{}, {}] does not decode: {error}",
                series.labels, chunk.min_time, chunk.max_time
            ))
        })?;
        for (t, v) in decoded {
            if t >= min_time && t < max_time {
                samples.insert(t, v);
            }
        }
    }
    if let Some(ooo) = &series.ooo {
        for (&t, &v) in ooo.range(min_time..max_time) {
            samples.entry(t).or_insert(v);
        }
    }
    let kept = without_deleted(samples.into_iter().collect(), deleted);
    Ok(chunks_from_samples(&kept))
}

/// The end of the chunk range holding `t` (ranges are aligned on multiples of `chunk_range`).
fn range_end(t: i64, chunk_range: i64) -> i64 {
    let range = chunk_range.max(1);
    t.div_euclid(range)
        .saturating_mul(range)
        .saturating_add(range)
}

/// Prometheus's estimate: with `current − start` covering a quarter of a chunk, how many chunks
/// fit until `range_end`, and where the first of them ends.
fn estimated_chunk_end(start: i64, current: i64, range_end: i64) -> i64 {
    let chunks = (range_end - start) as f64 / (((current - start) as f64 + 1.0) * 4.0);
    if chunks <= 1.0 {
        return range_end;
    }
    start + ((range_end - start) as f64 / chunks.floor()) as i64
}

/// Where an incoming sample goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// Appended to the series' in-order chunks.
    InOrder,
    /// Kept with the series' out-of-order samples.
    OutOfOrder,
    /// Dropped silently: the same sample is already there.
    Duplicate,
}

/// Why a sample was refused, finer than [`AppendError`]: out-of-order samples beyond the
/// out-of-order window are Prometheus's "too old" samples, counted apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// One of the append errors.
    Error(AppendError),
    /// Out of order and older than the out-of-order window allows.
    TooOld,
}

impl Refusal {
    /// The error callers see: a too-old sample is reported as out of order (its kind).
    pub fn error(self) -> AppendError {
        match self {
            Refusal::Error(error) => error,
            Refusal::TooOld => AppendError::OutOfOrder,
        }
    }
}

/// Where `(t, v)` goes, as Prometheus's `memSeries.appendable` decides: in order when at or
/// above `min_valid` and newer than the series' newest in-order sample (`newest`: time and
/// value bits); otherwise out of order if a window is set and `t` is within it of `head_max`.
pub fn place(
    newest: Option<(i64, u64)>,
    t: i64,
    v: f64,
    min_valid: i64,
    head_max: i64,
    ooo_window: i64,
) -> Result<Placement, Refusal> {
    if t >= min_valid {
        match newest {
            None => return Ok(Placement::InOrder),
            Some((max, _)) if t > max => return Ok(Placement::InOrder),
            Some((max, bits)) if t == max => {
                return if bits == v.to_bits() {
                    Ok(Placement::Duplicate)
                } else {
                    Err(Refusal::Error(AppendError::Duplicate))
                };
            }
            Some(_) => {}
        }
    }
    if ooo_window > 0 {
        if head_max == i64::MIN || t >= head_max.saturating_sub(ooo_window) {
            return Ok(Placement::OutOfOrder);
        }
        if t < min_valid {
            return Err(Refusal::Error(AppendError::OutOfBounds));
        }
        return Err(Refusal::TooOld);
    }
    if t < min_valid {
        return Err(Refusal::Error(AppendError::OutOfBounds));
    }
    Err(Refusal::Error(AppendError::OutOfOrder))
}

/// Refs this far past the dense table's end still extend it (the holes cost a pointer each);
/// farther ones go to the sparse map.
const DENSE_GAP: u64 = 1 << 16;

/// The head's series by reference. The node hands references out in sequence, so most live
/// in a table indexed by `ref − base`, in reference order: appends and commits that walk a
/// batch's series (usually in reference order) touch memory in order and lookups need no
/// hashing, where a hash map scattered 160-byte entries and cost a cache miss per sample.
/// References below `base` (re-created after the table's front was trimmed) or far past
/// its end (WAL files with odd references) live in a sparse map. The table's leading holes
/// are trimmed when series are removed, so series churn does not grow it without bound;
/// holes inside cost 8 bytes each.
#[derive(Debug, Default)]
struct SeriesTable {
    dense: std::collections::VecDeque<Option<Box<MemSeries>>>,
    base: u64,
    sparse: RefMap<Box<MemSeries>>,
    /// The highest reference ever put in `sparse` (0 if none): the table's growth only looks
    /// for sparse series to move in when one may lie ahead of it.
    sparse_high: u64,
    len: usize,
}

impl SeriesTable {
    fn slot(&self, series_ref: u64) -> Option<usize> {
        series_ref
            .checked_sub(self.base)
            .filter(|&offset| offset < self.dense.len() as u64)
            .map(|offset| offset as usize)
    }

    fn get(&self, series_ref: &u64) -> Option<&MemSeries> {
        match self.slot(*series_ref) {
            Some(index) => self.dense[index].as_deref(),
            None if self.sparse.is_empty() => None,
            None => self.sparse.get(series_ref).map(|series| &**series),
        }
    }

    fn get_mut(&mut self, series_ref: &u64) -> Option<&mut MemSeries> {
        match self.slot(*series_ref) {
            Some(index) => self.dense[index].as_deref_mut(),
            None => self.sparse.get_mut(series_ref).map(|series| &mut **series),
        }
    }

    fn contains_key(&self, series_ref: &u64) -> bool {
        self.get(series_ref).is_some()
    }

    fn len(&self) -> usize {
        self.len
    }

    fn reserve(&mut self, additional: usize) {
        self.dense.reserve(additional);
    }

    /// Inserts (or replaces) the series under `series_ref`.
    fn insert(&mut self, series_ref: u64, series: MemSeries) {
        let series = Box::new(series);
        if self.slot(series_ref).is_none() && series_ref >= self.base && series_ref < u64::MAX {
            let end = self.base + self.dense.len() as u64;
            if self.dense.is_empty() && self.sparse.is_empty() {
                self.base = series_ref;
            }
            let end = end.max(self.base);
            if series_ref - end < DENSE_GAP {
                let new_end = series_ref + 1;
                self.dense
                    .resize_with((new_end - self.base) as usize, || None);
                // Refs of the new stretch the sparse map held move into the table.
                if !self.sparse.is_empty() && self.sparse_high >= end {
                    let moved: Vec<u64> = self
                        .sparse
                        .keys()
                        .copied()
                        .filter(|&r| r >= end && r < new_end)
                        .collect();
                    for r in moved {
                        if let Some(existing) = self.sparse.remove(&r) {
                            self.dense[(r - self.base) as usize] = Some(existing);
                        }
                    }
                }
            }
        }
        match self.slot(series_ref) {
            Some(index) => {
                if self.dense[index].replace(series).is_none() {
                    self.len += 1;
                }
            }
            None => {
                self.sparse_high = self.sparse_high.max(series_ref);
                if self.sparse.insert(series_ref, series).is_none() {
                    self.len += 1;
                }
            }
        }
    }

    fn remove(&mut self, series_ref: &u64) -> Option<MemSeries> {
        let removed = match self.slot(*series_ref) {
            Some(index) => {
                let removed = self.dense[index].take();
                while matches!(self.dense.front(), Some(None)) {
                    self.dense.pop_front();
                    self.base += 1;
                }
                removed
            }
            None => self.sparse.remove(series_ref),
        };
        if removed.is_some() {
            self.len -= 1;
        }
        removed.map(|series| *series)
    }

    /// Every series with its reference: the table's in reference order, then the sparse
    /// map's.
    fn iter(&self) -> impl Iterator<Item = (u64, &MemSeries)> {
        let base = self.base;
        self.dense
            .iter()
            .enumerate()
            .filter_map(move |(index, series)| {
                series
                    .as_deref()
                    .map(|series| (base + index as u64, series))
            })
            .chain(self.sparse.iter().map(|(&r, series)| (r, &**series)))
    }

    fn iter_mut(&mut self) -> impl Iterator<Item = (u64, &mut MemSeries)> {
        let base = self.base;
        self.dense
            .iter_mut()
            .enumerate()
            .filter_map(move |(index, series)| {
                series
                    .as_deref_mut()
                    .map(|series| (base + index as u64, series))
            })
            .chain(
                self.sparse
                    .iter_mut()
                    .map(|(&r, series)| (r, &mut **series)),
            )
    }

    fn keys(&self) -> impl Iterator<Item = u64> + '_ {
        self.iter().map(|(series_ref, _)| series_ref)
    }

    fn values(&self) -> impl Iterator<Item = &MemSeries> {
        self.iter().map(|(_, series)| series)
    }
}

/// The postings index: label name → value → series references, sorted. Built pair by pair
/// as series are created, or (WAL replay) by the thread decoding Series records and handed
/// to the head when the replay ends (see [`Head::install_postings`]).
#[derive(Debug, Default)]
pub struct Postings {
    lists: BTreeMap<String, BTreeMap<String, Vec<u64>>>,
    /// Whether some list may be out of order or hold a reference twice (a reference added
    /// below a list's last one while `defer_sorting`).
    unsorted: bool,
}

impl Postings {
    /// Adds `series_ref` under each of its label pairs, keeping lists sorted.
    pub fn add(&mut self, series_ref: u64, labels: &Labels) {
        self.add_pairs(series_ref, labels, false);
    }

    /// Adds like [`Postings::add`], leaving lists unsorted until [`Postings::finish`] when a
    /// reference comes in below a list's last one (replay: repeated or older records).
    pub fn add_unsorted(&mut self, series_ref: u64, labels: &Labels) {
        self.add_pairs(series_ref, labels, true);
    }

    fn add_pairs(&mut self, series_ref: u64, labels: &Labels, defer_sorting: bool) {
        for (name, value) in labels.iter() {
            // One search per level for a pair that exists (most do; their strings need no
            // copy); a new name or value is inserted with its first reference.
            let Some(values) = self.lists.get_mut(name) else {
                let values = BTreeMap::from([(value.to_owned(), vec![series_ref])]);
                self.lists.insert(name.to_owned(), values);
                continue;
            };
            let Some(refs) = values.get_mut(value) else {
                values.insert(value.to_owned(), vec![series_ref]);
                continue;
            };
            // References mostly arrive in increasing order (the node hands them out so, and
            // WAL replay meets them so): appending then needs no search through a list that
            // can hold every series (`job`'s).
            match refs.last() {
                Some(&last) if last >= series_ref && defer_sorting => {
                    refs.push(series_ref);
                    self.unsorted = true;
                }
                Some(&last) if last >= series_ref => {
                    let position = refs.partition_point(|&r| r < series_ref);
                    refs.insert(position, series_ref);
                }
                _ => refs.push(series_ref),
            }
        }
    }

    /// Sorts and deduplicates the lists [`Postings::add_unsorted`] left unsorted.
    pub fn finish(&mut self) {
        if !std::mem::take(&mut self.unsorted) {
            return;
        }
        for refs in self.lists.values_mut().flat_map(BTreeMap::values_mut) {
            if !refs.is_sorted_by(|a, b| a < b) {
                refs.sort_unstable();
                refs.dedup();
            }
        }
    }

    fn remove(&mut self, series_ref: u64, labels: &Labels) {
        for (name, value) in labels.iter() {
            let Some(values) = self.lists.get_mut(name) else {
                continue;
            };
            if let Some(refs) = values.get_mut(value) {
                if let Ok(position) = refs.binary_search(&series_ref) {
                    refs.remove(position);
                }
                if refs.is_empty() {
                    values.remove(value);
                }
            }
            if values.is_empty() {
                self.lists.remove(name);
            }
        }
    }
}

/// How [`Head::insert_series_unindexed`] found the reference it returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeriesInsert {
    /// The series was created under the reference asked for.
    Created,
    /// A series with these labels existed (under the returned reference).
    SameLabels,
    /// The reference asked for was taken by a series with other labels (which keeps it).
    OtherLabels,
}

/// Series references by label set. Keyed by a 64-bit keyed hash (SipHash, random keys per
/// head) of the labels' canonical encoding, computed in one pass over the buffer: a map
/// keyed by `Labels` hashed every pair in a dozen small hasher writes, twice per new series
/// and again at every resize, which was the larger part of creating a series on WAL replay.
/// A hit is confirmed against the series' own labels; a set whose hash another set in the
/// head already has (never seen in practice, but input is not trusted) lives in `collided`,
/// looked at only when it is not empty.
#[derive(Debug, Default)]
struct LabelIndex {
    hasher: LabelHasher,
    by_hash: RefMap<u64>,
    collided: HashMap<Labels, u64>,
}

impl LabelIndex {
    fn hash(&self, labels: &Labels) -> u64 {
        self.hasher.hash(labels)
    }

    fn get(&self, hash: u64, labels: &Labels, series: &SeriesTable) -> Option<u64> {
        if let Some(&series_ref) = self.by_hash.get(&hash)
            && series
                .get(&series_ref)
                .is_some_and(|series| series.labels == *labels)
        {
            return Some(series_ref);
        }
        if self.collided.is_empty() {
            None
        } else {
            self.collided.get(labels).copied()
        }
    }

    /// Indexes a series the index does not have (`get` found nothing for its labels).
    fn insert(&mut self, hash: u64, labels: &Labels, series_ref: u64) {
        match self.by_hash.entry(hash) {
            std::collections::hash_map::Entry::Vacant(entry) => {
                entry.insert(series_ref);
            }
            std::collections::hash_map::Entry::Occupied(_) => {
                self.collided.insert(labels.clone(), series_ref);
            }
        }
    }

    fn remove(&mut self, labels: &Labels, series_ref: u64) {
        let hash = self.hash(labels);
        if self.by_hash.get(&hash) == Some(&series_ref) {
            self.by_hash.remove(&hash);
        } else if !self.collided.is_empty() {
            self.collided.remove(labels);
        }
    }

    fn reserve(&mut self, additional: usize) {
        self.by_hash.reserve(additional);
    }
}

/// The head's state. Not synchronised: [`crate::tsdb::Tsdb`] wraps it in a lock.
#[derive(Debug)]
pub struct Head {
    series: SeriesTable,
    /// Labels of the series head compactions removed, with the truncation epoch that removed
    /// them, so a batch that resolved one before the removal can re-create it at commit; kept
    /// while an appender from that epoch may still commit (see [`Head::forget_removed`]).
    removed: RefMap<(Labels, u64)>,
    /// Truncations so far: the epoch appenders compare to know whether series may have been
    /// removed under them.
    pub(crate) truncations: u64,
    /// Commits whose WAL write failed so far (they mark their series records unwritten
    /// again, which batches that saw them written must notice).
    pub(crate) wal_failures: u64,
    by_labels: LabelIndex,
    /// name → value → series refs, sorted.
    postings: Postings,
    /// Series were created without postings (WAL replay: see [`Head::install_postings`]).
    postings_deferred: bool,
    next_ref: u64,
    chunk_range: i64,
    /// Samples older than this are out of bounds (they belong to persisted blocks).
    pub min_valid_time: i64,
    chunk_count: u64,
    /// Newest timestamp ever appended (`i64::MIN` while empty).
    max_time: i64,
    /// How far behind `max_time` out-of-order samples are accepted (milliseconds; 0: never).
    pub ooo_window: i64,
    /// Out-of-order samples held.
    ooo_samples: u64,
    /// Deleted intervals by series reference.
    pub tombstones: Tombstones,
    /// Where completed chunks go (`None`: they stay in memory, for heads without a folder).
    chunks_head: Option<ChunkDiskMapper>,
}

impl Head {
    /// An empty head whose chunks are cut at multiples of `chunk_range` milliseconds.
    pub fn new(chunk_range: i64) -> Head {
        Head {
            series: SeriesTable::default(),
            removed: RefMap::default(),
            truncations: 0,
            wal_failures: 0,
            by_labels: LabelIndex::default(),
            postings: Postings::default(),
            postings_deferred: false,
            next_ref: 1,
            chunk_range,
            min_valid_time: i64::MIN,
            chunk_count: 0,
            max_time: i64::MIN,
            ooo_window: 0,
            ooo_samples: 0,
            tombstones: Tombstones::default(),
            chunks_head: None,
        }
    }

    /// Sends the chunks cut from now on to `mapper` (`chunks_head/`) instead of memory.
    pub fn set_chunk_disk(&mut self, mapper: ChunkDiskMapper) {
        self.chunks_head = Some(mapper);
    }

    /// Bytes of the `chunks_head/` files (0 without a chunk folder).
    pub fn chunks_head_bytes(&self) -> u64 {
        self.chunks_head
            .as_ref()
            .map_or(0, ChunkDiskMapper::size_bytes)
    }

    /// The in-order chunks of `series` overlapping `[min_time, max_time]` (both inclusive)
    /// with their bytes: completed ones read back from `chunks_head/` (or memory), the open
    /// one copied.
    pub fn series_chunks(
        &self,
        series: &MemSeries,
        min_time: i64,
        max_time: i64,
    ) -> Result<Vec<BlockChunk>, TsdbError> {
        let mut chunks = Vec::new();
        for chunk in &series.completed {
            if chunk.max_time < min_time || chunk.min_time > max_time {
                continue;
            }
            let data = match (&chunk.location, &self.chunks_head) {
                (ChunkLocation::Memory(bytes), _) => bytes.to_vec(),
                (ChunkLocation::Disk(chunk_ref), Some(disk)) => disk.chunk(*chunk_ref)?.to_vec(),
                (ChunkLocation::Disk(chunk_ref), None) => {
                    return Err(TsdbError::Usage(format!(
                        "head chunk {chunk_ref:#x} of {} is on disk but the head has no chunk folder",
                        series.labels
                    )));
                }
            };
            chunks.push(BlockChunk {
                min_time: chunk.min_time,
                max_time: chunk.max_time,
                data,
            });
        }
        if let Some(open) = &series.open
            && open.max_time >= min_time
            && open.min_time <= max_time
        {
            chunks.push(BlockChunk {
                min_time: open.min_time,
                max_time: open.max_time,
                data: open.chunk.bytes().to_vec(),
            });
        }
        Ok(chunks)
    }

    /// Where `(t, v)` for `series_ref` would go now (see [`place`]); `newest` overrides the
    /// series' newest in-order sample (a batch's pending samples).
    pub fn placement(
        &self,
        series_ref: u64,
        newest: Option<(i64, u64)>,
        t: i64,
        v: f64,
    ) -> Result<Placement, Refusal> {
        let newest = newest.or_else(|| self.series(series_ref).and_then(|s| s.last_sample()));
        place(
            newest,
            t,
            v,
            self.appendable_min_time(),
            self.max_time,
            self.ooo_window,
        )
    }

    /// Where `(t, v)` for the existing series `series` would go now (see [`place`]): the
    /// append path's check, on a series the caller looked up once. `newest` overrides the series' newest in-order
    /// sample (a batch's pending samples). Also says whether the series' WAL Series record is
    /// written.
    pub fn check_append(
        &self,
        series: &MemSeries,
        newest: Option<(i64, u64)>,
        t: i64,
        v: f64,
    ) -> Result<(Placement, bool), Refusal> {
        let newest = newest.or_else(|| series.last_sample());
        let placement = place(
            newest,
            t,
            v,
            self.appendable_min_time(),
            self.max_time,
            self.ooo_window,
        )?;
        Ok((placement, series.logged))
    }

    /// Keeps an out-of-order sample; `Ok(false)` when the series already has one at `t` (it
    /// is dropped, as Prometheus drops it).
    pub fn insert_ooo(&mut self, series_ref: u64, t: i64, v: f64) -> Result<bool, AppendError> {
        let series = self
            .series
            .get_mut(&series_ref)
            .ok_or(AppendError::UnknownSeries)?;
        let samples = series.ooo.get_or_insert_with(Default::default);
        if samples.contains_key(&t) {
            return Ok(false);
        }
        samples.insert(t, v);
        self.ooo_samples += 1;
        Ok(true)
    }

    /// Out-of-order samples held.
    pub fn num_ooo_samples(&self) -> u64 {
        self.ooo_samples
    }

    /// Every out-of-order sample by series reference, for rewriting the WBL.
    pub fn ooo_samples(&self) -> Vec<(u64, i64, f64)> {
        let mut out = Vec::with_capacity(self.ooo_samples as usize);
        for (series_ref, series) in self.series.iter() {
            if let Some(samples) = &series.ooo {
                out.extend(samples.iter().map(|(&t, &v)| (series_ref, t, v)));
            }
        }
        out
    }

    /// Deletion stones for the series `refs` over `[mint, maxt]`, each clamped to the series'
    /// own samples as Prometheus's `Head.Delete` clamps them (series without samples there get
    /// none).
    pub fn deletion_stones(&self, refs: &[u64], mint: i64, maxt: i64) -> Vec<(u64, Interval)> {
        let mut stones = Vec::new();
        for &series_ref in refs {
            let Some(series) = self.series(series_ref) else {
                continue;
            };
            let (Some(first), Some(last)) = (series.min_time(), series.max_time_all()) else {
                continue;
            };
            let interval = Interval {
                mint: mint.max(first),
                maxt: maxt.min(last),
            };
            if interval.mint <= interval.maxt {
                stones.push((series_ref, interval));
            }
        }
        stones
    }

    /// The chunk range (milliseconds).
    pub fn chunk_range(&self) -> i64 {
        self.chunk_range
    }

    /// Newest timestamp in the head, if any sample was appended.
    pub fn max_time(&self) -> Option<i64> {
        (self.max_time != i64::MIN).then_some(self.max_time)
    }

    /// Oldest timestamp still in the head, out-of-order samples included (a walk over the
    /// series).
    pub fn min_time(&self) -> Option<i64> {
        self.series.values().filter_map(MemSeries::min_time).min()
    }

    /// The oldest timestamp a writer may append, as Prometheus's appender has it: no older
    /// than the persisted blocks, and no more than half a chunk range behind the head's newest
    /// sample, so a head compaction's window never receives samples after it was cut.
    pub fn appendable_min_time(&self) -> i64 {
        let window = self.max_time.saturating_sub(self.chunk_range / 2);
        self.min_valid_time.max(window)
    }

    /// The window `[min, max)` Prometheus would persist next: once the head spans more than
    /// 1.5 chunk ranges, from its oldest sample to the end of that sample's aligned range.
    pub fn compactable_window(&self) -> Option<(i64, i64)> {
        let max = self.max_time()?;
        let min = self.min_time()?;
        if max.saturating_sub(min) <= self.chunk_range / 2 * 3 {
            return None;
        }
        Some((min, range_end(min, self.chunk_range)))
    }

    /// The head's samples in `[min_time, max_time)` as block series: chunks inside the window
    /// are copied as they are; a chunk straddling its end (only if the chunk range changed
    /// between runs) is re-encoded up to the end.
    pub fn block_series(
        &self,
        min_time: i64,
        max_time: i64,
    ) -> Result<Vec<BlockSeries>, TsdbError> {
        let mut out = Vec::new();
        let last = max_time.saturating_sub(1);
        for (series_ref, series) in self.series.iter() {
            let in_order = self.series_chunks(series, min_time, last)?;
            let deleted = self
                .tombstones
                .get(series_ref)
                .filter(|d| d.overlaps(min_time, last));
            let ooo = series
                .ooo
                .as_ref()
                .filter(|m| m.range(min_time..max_time).next().is_some());
            if deleted.is_some() || ooo.is_some() {
                let chunks = merged_block_chunks(series, &in_order, min_time, max_time, deleted)?;
                if !chunks.is_empty() {
                    out.push(BlockSeries {
                        labels: series.labels.clone(),
                        chunks,
                    });
                }
                continue;
            }
            let mut chunks = Vec::new();
            for chunk in in_order {
                if chunk.min_time >= min_time && chunk.max_time < max_time {
                    chunks.push(chunk);
                    continue;
                }
                let samples: Vec<(i64, f64)> = decode_xor(&chunk.data)
                    .map_err(|error| {
                        TsdbError::Usage(format!(
                            "head chunk of {} [{}, {}] does not decode: {error}",
                            series.labels, chunk.min_time, chunk.max_time
                        ))
                    })?
                    .into_iter()
                    .filter(|&(t, _)| t >= min_time && t < max_time)
                    .collect();
                chunks.extend(super::block::chunks_from_samples(&samples));
            }
            if !chunks.is_empty() {
                out.push(BlockSeries {
                    labels: series.labels.clone(),
                    chunks,
                });
            }
        }
        Ok(out)
    }

    /// Drops the chunks that end before `max_time` (now persisted in a block), and the series
    /// left without chunks; raises the lower bound of appends to `max_time`. Returns how many
    /// series were removed.
    pub fn truncate(&mut self, max_time: i64) -> usize {
        self.min_valid_time = self.min_valid_time.max(max_time);
        let mut removed_chunks = 0u64;
        let mut removed_ooo = 0u64;
        let mut empty = Vec::new();
        for (series_ref, series) in self.series.iter_mut() {
            removed_chunks += series.truncate_chunks(max_time);
            if let Some(samples) = &mut series.ooo {
                let kept = samples.split_off(&max_time);
                removed_ooo += samples.len() as u64;
                **samples = kept;
                if samples.is_empty() {
                    series.ooo = None;
                }
            }
            if series.num_chunks() == 0 && series.ooo.is_none() {
                empty.push(series_ref);
            }
        }
        // No chunk older than `max_time` is referenced any more: their files can go.
        if let Some(disk) = &mut self.chunks_head
            && let Err(error) = disk.truncate(max_time)
        {
            tracing::warn!(%error, "deleting old chunks_head files failed; retried at the next truncation");
        }
        self.chunk_count = self.chunk_count.saturating_sub(removed_chunks);
        self.ooo_samples = self.ooo_samples.saturating_sub(removed_ooo);
        for series_ref in &empty {
            self.remove_series(*series_ref);
        }
        self.truncations += 1;
        self.tombstones.truncate_before(max_time);
        let series = &self.series;
        self.tombstones.retain_series(|r| series.contains_key(&r));
        empty.len()
    }

    fn remove_series(&mut self, series_ref: u64) {
        let Some(series) = self.series.remove(&series_ref) else {
            return;
        };
        self.by_labels.remove(&series.labels, series_ref);
        let labels = series.labels;
        self.postings.remove(series_ref, &labels);
        self.removed.insert(series_ref, (labels, self.truncations));
    }

    /// Forgets the labels of removed series no live appender can still hold: those removed
    /// by truncations before `oldest_live_epoch`, the epoch the oldest live appender was
    /// created in (`u64::MAX` when none is live).
    pub fn forget_removed(&mut self, oldest_live_epoch: u64) {
        if !self.removed.is_empty() {
            self.removed
                .retain(|_, (_, epoch)| *epoch >= oldest_live_epoch);
        }
    }

    /// The labels of `series_ref` if a head compaction removed it and they are still kept
    /// (see [`Head::forget_removed`]).
    pub fn removed_labels(&self, series_ref: u64) -> Option<&Labels> {
        self.removed.get(&series_ref).map(|(labels, _)| labels)
    }

    /// Removed series' labels still kept, for tests of the retention above.
    pub fn num_removed_kept(&self) -> usize {
        self.removed.len()
    }

    /// The reference of the series with exactly `labels`, if the head has it.
    pub fn series_ref_of(&self, labels: &Labels) -> Option<u64> {
        self.by_labels
            .get(self.by_labels.hash(labels), labels, &self.series)
    }

    /// The hasher of the head's label index, for a thread that decodes series ahead of
    /// [`Head::insert_series_hashed`] (WAL replay's reader) to hash their labels there.
    pub fn label_hasher(&self) -> LabelHasher {
        self.by_labels.hasher.clone()
    }

    /// References of every series, for a checkpoint's "still live" test.
    pub fn series_refs(&self) -> std::collections::HashSet<u64> {
        self.series.keys().collect()
    }

    /// The series for `labels`, created if new; `true` when it was created.
    pub fn get_or_create(&mut self, labels: &Labels) -> Result<(u64, bool), AppendError> {
        if labels.is_empty() {
            return Err(AppendError::EmptyLabels);
        }
        let hash = self.by_labels.hash(labels);
        if let Some(series_ref) = self.by_labels.get(hash, labels, &self.series) {
            return Ok((series_ref, false));
        }
        let series_ref = self.next_ref;
        self.insert_series_hashed(series_ref, labels.clone(), hash);
        Ok((series_ref, true))
    }

    /// Inserts a series under a known reference (WAL replay). A reference seen again keeps its
    /// first labels; labels seen under a second reference map the new reference to the first
    /// series (Prometheus does the same after a WAL race).
    pub fn insert_series(&mut self, series_ref: u64, labels: Labels) -> u64 {
        let hash = self.by_labels.hash(&labels);
        self.insert_series_hashed(series_ref, labels, hash)
    }

    /// [`Head::insert_series`] with the labels' hash already computed by
    /// [`Head::label_hasher`] (a wrong hash only makes the label index miss the series).
    pub fn insert_series_hashed(&mut self, series_ref: u64, labels: Labels, hash: u64) -> u64 {
        self.insert_series_with(series_ref, labels, hash, true).0
    }

    /// [`Head::insert_series_hashed`] without adding the series to the postings: WAL replay
    /// builds them on its reading thread and installs them at the end
    /// ([`Head::install_postings`]), which must come before the head is read. Also says
    /// how the reference was found.
    pub fn insert_series_unindexed(
        &mut self,
        series_ref: u64,
        labels: Labels,
        hash: u64,
    ) -> (u64, SeriesInsert) {
        self.postings_deferred = true;
        self.insert_series_with(series_ref, labels, hash, false)
    }

    fn insert_series_with(
        &mut self,
        series_ref: u64,
        labels: Labels,
        hash: u64,
        index_postings: bool,
    ) -> (u64, SeriesInsert) {
        if let Some(existing) = self.by_labels.get(hash, &labels, &self.series) {
            return (existing, SeriesInsert::SameLabels);
        }
        if self.series.contains_key(&series_ref) {
            return (series_ref, SeriesInsert::OtherLabels);
        }
        if index_postings {
            self.postings.add(series_ref, &labels);
        }
        if !self.removed.is_empty() {
            self.removed.remove(&series_ref);
        }
        self.by_labels.insert(hash, &labels, series_ref);
        self.series.insert(series_ref, MemSeries::new(labels));
        self.next_ref = self.next_ref.max(series_ref.saturating_add(1));
        (series_ref, SeriesInsert::Created)
    }

    /// Ends a replay that created series with [`Head::insert_series_unindexed`]: installs
    /// `built` (postings of exactly the series created so, built elsewhere) or, with `None`
    /// (they could not be built: some record did not create its series as given), builds
    /// them from the series.
    pub fn install_postings(&mut self, built: Option<Postings>) {
        if !std::mem::take(&mut self.postings_deferred) {
            return;
        }
        let mut postings = match built {
            Some(built) if self.postings.lists.is_empty() => built,
            _ => {
                let mut postings = Postings::default();
                for (series_ref, series) in self.series.iter() {
                    postings.add_unsorted(series_ref, &series.labels);
                }
                postings
            }
        };
        postings.finish();
        self.postings = postings;
    }

    /// The series with reference `series_ref`.
    pub fn series(&self, series_ref: u64) -> Option<&MemSeries> {
        self.series.get(&series_ref)
    }

    pub(crate) fn series_mut(&mut self, series_ref: u64) -> Option<&mut MemSeries> {
        self.series.get_mut(&series_ref)
    }

    /// Appends one sample to an existing series; `Ok(false)` for a dropped exact duplicate.
    pub fn append(&mut self, series_ref: u64, t: i64, v: f64) -> Result<bool, AppendError> {
        if t < self.min_valid_time {
            return Err(AppendError::OutOfBounds);
        }
        let chunk_range = self.chunk_range;
        let series = self
            .series
            .get_mut(&series_ref)
            .ok_or(AppendError::UnknownSeries)?;
        // One check of appendability: the series' own append makes it.
        let Some(cut) = series.append(series_ref, t, v, chunk_range, self.chunks_head.as_mut())?
        else {
            return Ok(false);
        };
        if cut {
            self.chunk_count += 1;
        }
        self.max_time = self.max_time.max(t);
        Ok(true)
    }

    /// Makes room for `additional` more series (WAL replay knows a Series record's count).
    pub fn reserve_series(&mut self, additional: usize) {
        self.series.reserve(additional);
        self.by_labels.reserve(additional);
    }

    /// Number of series.
    pub fn num_series(&self) -> usize {
        self.series.len()
    }

    /// Number of chunks.
    pub fn num_chunks(&self) -> u64 {
        self.chunk_count
    }

    /// Label names in the head, sorted.
    pub fn label_names(&self) -> Vec<String> {
        self.postings.lists.keys().cloned().collect()
    }

    /// Cardinality statistics of the postings (`/api/v1/status/tsdb`); read-only.
    pub fn cardinality(&self, metric_label: &str, limit: usize) -> super::cardinality::Cardinality {
        super::cardinality::of_postings(&self.postings.lists, metric_label, limit)
    }
}

impl PostingsSource for Head {
    fn label_values(&self, name: &str) -> Result<Vec<String>, TsdbError> {
        Ok(self
            .postings
            .lists
            .get(name)
            .map(|values| values.keys().cloned().collect())
            .unwrap_or_default())
    }

    fn postings(&self, name: &str, value: &str) -> Result<Vec<u64>, TsdbError> {
        Ok(self
            .postings
            .lists
            .get(name)
            .and_then(|values| values.get(value))
            .cloned()
            .unwrap_or_default())
    }

    fn all_postings(&self) -> Result<Vec<u64>, TsdbError> {
        let mut refs: Vec<u64> = self.series.keys().collect();
        refs.sort_unstable();
        Ok(refs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TWO_HOURS: i64 = 2 * 3600 * 1000;

    #[test]
    fn chunks_are_cut_near_120_samples_and_at_range_boundaries() {
        let mut head = Head::new(TWO_HOURS);
        let labels = Labels::new([("__name__", "up")]);
        let (series_ref, created) = head.get_or_create(&labels).unwrap();
        assert!(created);
        // 15 s scrapes for 4 hours: 480 per range, so 4 chunks of 120 per range.
        for i in 0..960 {
            assert!(head.append(series_ref, i * 15_000, 1.0).unwrap());
        }
        let series = head.series(series_ref).unwrap();
        let metas = series.chunk_metas();
        let sizes: Vec<usize> = metas.iter().map(|&(_, _, samples)| samples).collect();
        assert_eq!(sizes, vec![120; 8]);
        for &(min_time, max_time, _) in &metas {
            assert_eq!(
                min_time / TWO_HOURS,
                max_time / TWO_HOURS,
                "no chunk spans a boundary"
            );
        }
    }

    #[test]
    fn completed_chunks_live_in_chunks_head_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let folder = dir
            .path()
            .join(super::super::chunks_head::CHUNKS_HEAD_FOLDER);
        let mut head = Head::new(TWO_HOURS);
        head.set_chunk_disk(ChunkDiskMapper::open(&folder).unwrap());
        let mut in_memory = Head::new(TWO_HOURS);
        let labels = Labels::new([("__name__", "up"), ("job", "a")]);
        let (on_disk_ref, _) = head.get_or_create(&labels).unwrap();
        let (memory_ref, _) = in_memory.get_or_create(&labels).unwrap();
        // 3 h at 15 s: chunks cut in both ranges, the last one open.
        let samples: Vec<(i64, f64)> = (0..720).map(|i| (i * 15_000, (i % 17) as f64)).collect();
        for &(t, v) in &samples {
            head.append(on_disk_ref, t, v).unwrap();
            in_memory.append(memory_ref, t, v).unwrap();
        }
        let series = head.series(on_disk_ref).unwrap();
        assert!(series.completed.len() >= 5);
        assert!(
            series
                .completed
                .iter()
                .all(|c| matches!(c.location, ChunkLocation::Disk(_)))
        );
        assert!(head.chunks_head_bytes() > 0);
        let read = |head: &Head, series_ref| -> Vec<(i64, f64)> {
            let series = head.series(series_ref).unwrap();
            head.series_chunks(series, i64::MIN, i64::MAX)
                .unwrap()
                .iter()
                .flat_map(|c| decode_xor(&c.data).unwrap())
                .collect()
        };
        assert_eq!(read(&head, on_disk_ref), samples);
        assert_eq!(read(&in_memory, memory_ref), samples);
        let disk_block = head.block_series(0, TWO_HOURS).unwrap();
        let memory_block = in_memory.block_series(0, TWO_HOURS).unwrap();
        assert_eq!(disk_block.len(), 1);
        assert_eq!(disk_block[0].chunks, memory_block[0].chunks);
        // Truncation past the first range drops its chunks, then its file.
        head.truncate(TWO_HOURS);
        assert_eq!(read(&head, on_disk_ref), samples[480..].to_vec());
        let files_before = std::fs::read_dir(&folder).unwrap().count();
        for i in 720..1500 {
            head.append(on_disk_ref, i * 15_000, 1.0).unwrap();
        }
        head.truncate(2 * TWO_HOURS);
        head.truncate(3 * TWO_HOURS);
        let first = super::super::chunks_head::file_path(&folder, 1);
        assert!(
            !first.exists(),
            "{} still there ({files_before} files before)",
            first.display()
        );
        assert!(
            read(&head, on_disk_ref)
                .iter()
                .all(|&(t, _)| t >= 3 * TWO_HOURS)
        );
    }

    #[test]
    fn series_table_keeps_dense_and_sparse_references() {
        let mut table = SeriesTable::default();
        let series = |name: &str| MemSeries::new(Labels::new([("s", name)]));
        for r in [1u64, 2, 3, 5, 1 << 40, u64::MAX] {
            table.insert(r, series(&r.to_string()));
        }
        assert_eq!(table.len(), 6);
        let keys: Vec<u64> = table.keys().collect();
        assert_eq!(keys[..4], [1, 2, 3, 5], "dense references in order first");
        let mut far = keys[4..].to_vec();
        far.sort_unstable();
        assert_eq!(far, [1 << 40, u64::MAX]);
        assert!(table.get(&4).is_none());
        assert_eq!(
            table.get(&u64::MAX).unwrap().labels,
            Labels::new([("s", u64::MAX.to_string())])
        );
        // Removing the front trims the table; the old reference comes back as a sparse one.
        assert!(table.remove(&1).is_some());
        assert!(table.remove(&2).is_some());
        assert_eq!(table.base, 3);
        table.insert(1, series("again"));
        assert_eq!(table.get(&1).unwrap().labels, Labels::new([("s", "again")]));
        assert!(table.sparse.contains_key(&1));
        // A replaced series is not counted twice.
        table.insert(3, series("three"));
        assert_eq!(table.len(), 5);
        assert!(table.remove(&(1 << 40)).is_some());
        assert!(table.remove(&7).is_none());
        assert_eq!(table.len(), 4);
        assert_eq!(table.iter_mut().count(), 4);
        assert_eq!(table.values().count(), 4);
    }

    #[test]
    fn label_index_keeps_sets_whose_hashes_collide() {
        let mut table = SeriesTable::default();
        let mut index = LabelIndex::default();
        let a = Labels::new([("s", "a")]);
        let b = Labels::new([("s", "b")]);
        let c = Labels::new([("s", "c")]);
        table.insert(1, MemSeries::new(a.clone()));
        table.insert(2, MemSeries::new(b.clone()));
        table.insert(3, MemSeries::new(c.clone()));
        // Three sets forced onto one hash: the first in the hash map, the others beside it.
        for (series_ref, labels) in [(1, &a), (2, &b), (3, &c)] {
            assert_eq!(index.get(7, labels, &table), None);
            index.insert(7, labels, series_ref);
        }
        assert_eq!(index.get(7, &a, &table), Some(1));
        assert_eq!(index.get(7, &b, &table), Some(2));
        assert_eq!(index.get(7, &c, &table), Some(3));
        assert_eq!(index.get(7, &Labels::new([("s", "d")]), &table), None);
        // Removal finds each where it is (by its real hash, which is not 7: the hash-map
        // entry stays for `a`, the collided ones go).
        index.remove(&b, 2);
        assert_eq!(index.get(7, &b, &table), None);
        assert_eq!(index.get(7, &c, &table), Some(3));
        // Through the head: real hashes, and a series created again after its removal.
        let mut head = Head::new(TWO_HOURS);
        let (x, created) = head.get_or_create(&a).unwrap();
        assert!(created);
        assert_eq!(head.get_or_create(&a).unwrap(), (x, false));
        assert_eq!(head.series_ref_of(&a), Some(x));
        assert_eq!(head.series_ref_of(&b), None);
        head.remove_series(x);
        assert_eq!(head.series_ref_of(&a), None);
        let (again, created) = head.get_or_create(&a).unwrap();
        assert!(created && again != x);
        assert_eq!(head.series_ref_of(&a), Some(again));
    }

    #[test]
    fn postings_stay_sorted_whatever_the_insertion_order() {
        let mut head = Head::new(TWO_HOURS);
        for series_ref in [5u64, 9, 2, 7, 1 << 40, 3] {
            head.insert_series(
                series_ref,
                Labels::new([("job", "a".to_string()), ("n", series_ref.to_string())]),
            );
        }
        assert_eq!(
            PostingsSource::postings(&head, "job", "a").unwrap(),
            vec![2, 3, 5, 7, 9, 1 << 40]
        );
    }

    #[test]
    fn append_errors() {
        let mut head = Head::new(TWO_HOURS);
        let (series_ref, _) = head.get_or_create(&Labels::new([("a", "b")])).unwrap();
        head.append(series_ref, 100, 1.0).unwrap();
        assert_eq!(
            head.append(series_ref, 50, 1.0),
            Err(AppendError::OutOfOrder)
        );
        assert_eq!(
            head.append(series_ref, 100, 2.0),
            Err(AppendError::Duplicate)
        );
        assert_eq!(head.append(series_ref, 100, 1.0), Ok(false));
        head.min_valid_time = 1000;
        assert_eq!(
            head.append(series_ref, 999, 1.0),
            Err(AppendError::OutOfBounds)
        );
        assert_eq!(
            head.get_or_create(&Labels::default()),
            Err(AppendError::EmptyLabels)
        );
    }

    #[test]
    fn compaction_window_and_truncation() {
        let mut head = Head::new(TWO_HOURS);
        let (a, _) = head.get_or_create(&Labels::new([("s", "a")])).unwrap();
        let (b, _) = head.get_or_create(&Labels::new([("s", "b")])).unwrap();
        // `b` only has samples in the first hour; `a` runs for 3.5 h from 10 min in.
        head.append(b, 600_000, 1.0).unwrap();
        head.append(b, 3_600_000, 1.0).unwrap();
        for i in 0..=(7 * 1800 / 15) {
            head.append(a, 600_000 + i * 15_000, i as f64).unwrap();
        }
        assert_eq!(
            head.appendable_min_time(),
            600_000 + 7 * 1_800_000 - TWO_HOURS / 2
        );
        let (min, max) = head.compactable_window().unwrap();
        assert_eq!((min, max), (600_000, TWO_HOURS));
        let series = head.block_series(min, max).unwrap();
        assert_eq!(series.len(), 2);
        for s in &series {
            assert!(
                s.chunks
                    .iter()
                    .all(|c| c.min_time >= min && c.max_time < max)
            );
        }
        assert_eq!(head.truncate(max), 1);
        assert!(head.series(b).is_none());
        assert_eq!(head.num_series(), 1);
        assert_eq!(head.min_time(), Some(TWO_HOURS));
        assert!(head.compactable_window().is_none());
        assert_eq!(
            head.append(a, TWO_HOURS - 1, 0.0),
            Err(AppendError::OutOfBounds)
        );
        assert!(
            PostingsSource::postings(&head, "s", "b")
                .unwrap()
                .is_empty()
        );
    }
}
