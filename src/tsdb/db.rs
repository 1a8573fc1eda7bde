//! [`Tsdb`]: one data folder — persisted blocks, the head, and its write-ahead log — behind an
//! appender and a querier.
//!
//! Folder layout (Prometheus's): `<dir>/<ULID>/` per block, `<dir>/wal/00000000…`.
//!
//! Durability: [`Appender::commit`] writes the batch's records (and Series records for series
//! not logged yet) to the WAL and fsyncs before it applies the samples to the head and returns.
//! Commits are serialised by the WAL lock, so the head applies samples in WAL order and replay
//! reproduces exactly the head a crash interrupted.

use super::block::{Block, TMP_FOR_CREATION};
use super::error::TsdbError;
use super::head::{AppendError, Head};
use super::index::postings_for_matchers;
use super::labels::{Labels, Matcher};
use super::meta::Ulid;
use super::querier::{ChunkData, Series, SeriesCollector};
use super::wal::record::{self, Record, RefSample};
use super::wal::segment::{self, DEFAULT_SEGMENT_BYTES, WalCorruption, WalWriter};
use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

/// Options of a data folder.
#[derive(Debug, Clone)]
pub struct TsdbOptions {
    /// Head chunks never span a multiple of this (milliseconds); Prometheus's block duration.
    pub chunk_range_ms: i64,
    /// WAL segment size in bytes.
    pub wal_segment_bytes: usize,
}

impl Default for TsdbOptions {
    fn default() -> Self {
        TsdbOptions {
            chunk_range_ms: 2 * 3600 * 1000,
            wal_segment_bytes: DEFAULT_SEGMENT_BYTES,
        }
    }
}

/// What opening found in the WAL.
#[derive(Debug, Clone, Default)]
pub struct ReplayReport {
    /// Segments read.
    pub segments: u64,
    /// Series records' entries replayed.
    pub series: u64,
    /// Samples applied to the head.
    pub samples: u64,
    /// Samples referring to a series no record defined (lost with a damaged segment).
    pub unknown_series_samples: u64,
    /// Samples the head refused on replay (they were refused when first committed, too).
    pub rejected_samples: u64,
    /// Records of kinds not replayed, and compressed records we cannot read yet.
    pub skipped_records: u64,
    /// Damaged segments: each was cut back to its last whole record.
    pub corruptions: Vec<WalCorruption>,
}

/// Per-reason counts of refused samples since open.
#[derive(Debug, Default)]
pub struct AppendCounters {
    /// Out-of-order samples.
    pub out_of_order: AtomicU64,
    /// Out-of-bounds samples.
    pub out_of_bounds: AtomicU64,
    /// Duplicate timestamps with another value.
    pub duplicate: AtomicU64,
    /// Samples with empty label sets.
    pub empty_labels: AtomicU64,
}

impl AppendCounters {
    fn count(&self, error: AppendError) {
        let counter = match error {
            AppendError::OutOfOrder => &self.out_of_order,
            AppendError::OutOfBounds => &self.out_of_bounds,
            AppendError::Duplicate => &self.duplicate,
            AppendError::EmptyLabels => &self.empty_labels,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// A series' reference in the head, stable for the life of the head.
pub type SeriesRef = u64;

/// An open data folder.
#[derive(Debug)]
pub struct Tsdb {
    folder: PathBuf,
    blocks: RwLock<Vec<Arc<Block>>>,
    head: RwLock<Head>,
    wal: Mutex<WalWriter>,
    counters: AppendCounters,
    replay: ReplayReport,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock leaves the data as consistent as the last completed step;
    // refusing all further work would lose more than continuing.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Tsdb {
    /// Opens (or creates) the data folder: loads blocks, replays the WAL into the head, and
    /// starts a fresh WAL segment. Damaged WAL tails are cut back and reported in
    /// [`Tsdb::replay_report`]; they do not stop the open.
    pub fn open(folder: &Path, options: TsdbOptions) -> Result<Tsdb, TsdbError> {
        std::fs::create_dir_all(folder).map_err(TsdbError::io(folder))?;
        let blocks = open_blocks(folder)?;
        let mut head = Head::new(options.chunk_range_ms);
        head.min_valid_time = blocks
            .iter()
            .map(|b| b.meta().max_time)
            .max()
            .unwrap_or(i64::MIN);
        let wal_folder = folder.join("wal");
        let (report, next_segment) = replay_wal(&wal_folder, &mut head)?;
        let wal = WalWriter::create(&wal_folder, next_segment, options.wal_segment_bytes)?;
        Ok(Tsdb {
            folder: folder.to_path_buf(),
            blocks: RwLock::new(blocks),
            head: RwLock::new(head),
            wal: Mutex::new(wal),
            counters: AppendCounters::default(),
            replay: report,
        })
    }

    /// The data folder.
    pub fn folder(&self) -> &Path {
        &self.folder
    }

    /// What the WAL replay at open found.
    pub fn replay_report(&self) -> &ReplayReport {
        &self.replay
    }

    /// Refused-sample counters.
    pub fn append_counters(&self) -> &AppendCounters {
        &self.counters
    }

    /// Number of persisted blocks.
    pub fn num_blocks(&self) -> usize {
        self.blocks.read().map_or(0, |blocks| blocks.len())
    }

    /// Head series and chunk counts.
    pub fn head_stats(&self) -> (usize, u64) {
        self.head
            .read()
            .map_or((0, 0), |head| (head.num_series(), head.num_chunks()))
    }

    /// A new batch of samples.
    pub fn appender(&self) -> Appender<'_> {
        Appender {
            tsdb: self,
            pending: Vec::new(),
            newest: HashMap::new(),
        }
    }

    /// A reader over `[min_time, max_time]` (milliseconds, both inclusive).
    pub fn querier(&self, min_time: i64, max_time: i64) -> Querier<'_> {
        Querier {
            tsdb: self,
            min_time,
            max_time,
        }
    }
}

fn open_blocks(folder: &Path) -> Result<Vec<Arc<Block>>, TsdbError> {
    let mut blocks = Vec::new();
    for entry in std::fs::read_dir(folder).map_err(TsdbError::io(folder))? {
        let entry = entry.map_err(TsdbError::io(folder))?;
        let path = entry.path();
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        if name.ends_with(TMP_FOR_CREATION) {
            // A block whose writing a crash interrupted: never renamed, never visible.
            std::fs::remove_dir_all(&path).map_err(TsdbError::io(&path))?;
            continue;
        }
        if name.parse::<Ulid>().is_ok() && path.join("meta.json").exists() {
            blocks.push(Arc::new(Block::open(&path)?));
        }
    }
    blocks.sort_by_key(|b| (b.meta().min_time, b.meta().ulid));
    Ok(blocks)
}

/// Replays every segment into `head`; returns the report and the next segment number.
fn replay_wal(wal_folder: &Path, head: &mut Head) -> Result<(ReplayReport, u64), TsdbError> {
    let mut report = ReplayReport::default();
    let segments = segment::list_segments(wal_folder)?;
    // WAL refs → head refs (equal unless a series appeared under two refs).
    let mut refs: HashMap<u64, u64> = HashMap::new();
    for &number in &segments {
        let path = segment::segment_path(wal_folder, number);
        let contents = segment::read_segment(&path)?;
        report.segments += 1;
        report.skipped_records += contents.compressed_skipped;
        for bytes in &contents.records {
            let decoded = match record::decode(bytes) {
                Ok(decoded) => decoded,
                Err(error) => {
                    // The fragment checksums held, so this is a writer bug or a format we do
                    // not know: skip the record, keep going.
                    tracing::warn!(file = %path.display(), %error, "undecodable WAL record skipped");
                    report.skipped_records += 1;
                    continue;
                }
            };
            match decoded {
                Record::Series(series) => {
                    for (wal_ref, labels) in series {
                        let head_ref = head.insert_series(wal_ref, labels);
                        if let Some(series) = head.series_mut(head_ref) {
                            series.logged = true;
                        }
                        refs.insert(wal_ref, head_ref);
                        report.series += 1;
                    }
                }
                Record::Samples(samples) => {
                    for sample in samples {
                        let Some(&head_ref) = refs.get(&sample.series_ref) else {
                            report.unknown_series_samples += 1;
                            continue;
                        };
                        match head.append(head_ref, sample.timestamp, sample.value) {
                            Ok(_) => report.samples += 1,
                            Err(_) => report.rejected_samples += 1,
                        }
                    }
                }
                Record::Other(_) => report.skipped_records += 1,
            }
        }
        if let Some(corruption) = contents.corruption {
            tracing::warn!(
                file = %corruption.path.display(),
                offset = corruption.offset,
                reason = %corruption.reason,
                "damaged WAL segment cut back to its last whole record"
            );
            let file = std::fs::OpenOptions::new()
                .write(true)
                .open(&path)
                .map_err(TsdbError::io(&path))?;
            file.set_len(corruption.offset)
                .map_err(TsdbError::io(&path))?;
            file.sync_all().map_err(TsdbError::io(&path))?;
            report.corruptions.push(corruption);
        }
    }
    let next = segments.last().map_or(0, |last| last + 1);
    Ok((report, next))
}

/// A batch of samples, durable and visible together at [`Appender::commit`]. Dropping it
/// without committing discards the samples (series it created stay, unlogged, and empty).
#[derive(Debug)]
pub struct Appender<'a> {
    tsdb: &'a Tsdb,
    pending: Vec<RefSample>,
    /// Newest pending sample per series, for order checks inside the batch.
    newest: HashMap<u64, (i64, u64)>,
}

/// The outcome of a commit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CommitStats {
    /// Samples now in the head (and the WAL).
    pub appended: u64,
    /// Samples a concurrent commit made out of order after they were accepted; they are in
    /// the WAL and dropped again on replay, and counted per reason.
    pub rejected: u64,
}

/// The largest number of samples per WAL record (keeps records well under a segment).
const SAMPLES_PER_RECORD: usize = 10_000;

impl Appender<'_> {
    /// Adds a sample. Refusals are counted per reason and returned; the batch stays usable.
    pub fn append(&mut self, labels: &Labels, t: i64, v: f64) -> Result<SeriesRef, AppendError> {
        let result = self.try_append(labels, t, v);
        if let Err(error) = result {
            self.tsdb.counters.count(error);
        }
        result
    }

    fn try_append(&mut self, labels: &Labels, t: i64, v: f64) -> Result<SeriesRef, AppendError> {
        let series_ref = {
            let mut head = self.tsdb.head.write().unwrap_or_else(|p| p.into_inner());
            if t < head.min_valid_time {
                return Err(AppendError::OutOfBounds);
            }
            let (series_ref, _) = head.get_or_create(labels)?;
            if !self.newest.contains_key(&series_ref)
                && let Some(series) = head.series(series_ref)
            {
                series.appendable(t, v)?;
            }
            series_ref
        };
        if let Some(&(newest_t, newest_bits)) = self.newest.get(&series_ref) {
            if t < newest_t {
                return Err(AppendError::OutOfOrder);
            }
            if t == newest_t {
                if newest_bits == v.to_bits() {
                    return Ok(series_ref);
                }
                return Err(AppendError::Duplicate);
            }
        }
        self.newest.insert(series_ref, (t, v.to_bits()));
        self.pending.push(RefSample {
            series_ref,
            timestamp: t,
            value: v,
        });
        Ok(series_ref)
    }

    /// Samples waiting for commit.
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    /// Whether nothing is waiting.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// Makes the batch durable (WAL, fsynced), then visible (head). When it returns `Ok`, the
    /// samples survive a crash.
    pub fn commit(self) -> Result<CommitStats, TsdbError> {
        if self.pending.is_empty() {
            return Ok(CommitStats::default());
        }
        let tsdb = self.tsdb;
        let mut wal = lock(&tsdb.wal);
        // Series records first, for series no commit has logged yet.
        let unlogged: Vec<(u64, Labels)> = {
            let mut head = tsdb.head.write().unwrap_or_else(|p| p.into_inner());
            let refs: BTreeSet<u64> = self.pending.iter().map(|s| s.series_ref).collect();
            let mut unlogged = Vec::new();
            for series_ref in refs {
                if let Some(series) = head.series_mut(series_ref)
                    && !series.logged
                {
                    series.logged = true;
                    unlogged.push((series_ref, series.labels.clone()));
                }
            }
            unlogged
        };
        let written = (|| {
            if !unlogged.is_empty() {
                wal.log(&record::encode_series(
                    unlogged.iter().map(|(r, l)| (*r, l)),
                ))?;
            }
            for batch in self.pending.chunks(SAMPLES_PER_RECORD) {
                wal.log(&record::encode_samples(batch))?;
            }
            wal.sync()
        })();
        let mut head = tsdb.head.write().unwrap_or_else(|p| p.into_inner());
        if let Err(error) = written {
            // Whether the series records reached the disk is unknown: log them again next time
            // (a repeated Series record is harmless on replay).
            for (series_ref, _) in &unlogged {
                if let Some(series) = head.series_mut(*series_ref) {
                    series.logged = false;
                }
            }
            return Err(error);
        }
        let mut stats = CommitStats::default();
        for sample in &self.pending {
            match head.append(sample.series_ref, sample.timestamp, sample.value) {
                Ok(_) => stats.appended += 1,
                Err(error) => {
                    tsdb.counters.count(error);
                    stats.rejected += 1;
                }
            }
        }
        drop(head);
        drop(wal);
        Ok(stats)
    }
}

/// Reads series over a time range from the blocks and the head.
#[derive(Debug)]
pub struct Querier<'a> {
    tsdb: &'a Tsdb,
    min_time: i64,
    max_time: i64,
}

impl Querier<'_> {
    fn overlapping_blocks(&self) -> Vec<Arc<Block>> {
        let blocks = self.tsdb.blocks.read().unwrap_or_else(|p| p.into_inner());
        blocks
            .iter()
            // Block ranges are [min, max): max_time is exclusive.
            .filter(|b| b.meta().min_time <= self.max_time && b.meta().max_time > self.min_time)
            .cloned()
            .collect()
    }

    /// Series matching every matcher, sorted by labels, with their samples in range.
    pub fn select(&self, matchers: &[Matcher]) -> Result<impl Iterator<Item = Series>, TsdbError> {
        let mut collector = SeriesCollector::default();
        for block in self.overlapping_blocks() {
            let index = block.index();
            for id in postings_for_matchers(index, matchers)? {
                let series = index.series(id)?;
                let mut chunks = Vec::new();
                for meta in series
                    .chunks
                    .iter()
                    .filter(|c| c.max_time >= self.min_time && c.min_time <= self.max_time)
                {
                    if let Some(bytes) = block.xor_chunk(meta.chunk_ref)? {
                        chunks.push(ChunkData {
                            min_time: meta.min_time,
                            max_time: meta.max_time,
                            bytes,
                        });
                    }
                }
                collector.add(series.labels, chunks);
            }
        }
        {
            let head = self.tsdb.head.read().unwrap_or_else(|p| p.into_inner());
            for series_ref in postings_for_matchers(&*head, matchers)? {
                let Some(series) = head.series(series_ref) else {
                    continue;
                };
                let chunks = series
                    .chunks
                    .iter()
                    .filter(|c| c.max_time >= self.min_time && c.min_time <= self.max_time)
                    .map(|c| ChunkData {
                        min_time: c.min_time,
                        max_time: c.max_time,
                        bytes: c.chunk.bytes().to_vec(),
                    })
                    .collect();
                collector.add(series.labels.clone(), chunks);
            }
        }
        Ok(collector.finish(self.min_time, self.max_time).into_iter())
    }

    /// Label names of series with samples... in any source overlapping the range, sorted.
    pub fn label_names(&self) -> Vec<String> {
        let mut names: BTreeSet<String> = BTreeSet::new();
        for block in self.overlapping_blocks() {
            names.extend(block.index().label_names());
        }
        let head = self.tsdb.head.read().unwrap_or_else(|p| p.into_inner());
        names.extend(head.label_names());
        names.into_iter().collect()
    }

    /// Values of `name` in any source overlapping the range, sorted.
    pub fn label_values(&self, name: &str) -> Result<Vec<String>, TsdbError> {
        use super::index::PostingsSource;
        let mut values: BTreeSet<String> = BTreeSet::new();
        for block in self.overlapping_blocks() {
            values.extend(block.index().label_values(name));
        }
        let head = self.tsdb.head.read().unwrap_or_else(|p| p.into_inner());
        values.extend(PostingsSource::label_values(&*head, name)?);
        Ok(values.into_iter().collect())
    }
}
