//! [`Tsdb`]: one data folder — persisted blocks, the head, and its write-ahead log — behind an
//! appender and a querier.
//!
//! Folder layout (Prometheus's): `<dir>/<ULID>/` per block, `<dir>/wal/00000000…` and
//! `<dir>/wal/checkpoint.NNNNNNNN/`.
//!
//! Compaction ([`Tsdb::compact`]): while the head spans more than 1.5 chunk ranges, its oldest
//! range is written as a block and dropped from the head; then the WAL segments before the
//! current one are folded into a checkpoint; then blocks are merged by the leveled planner
//! ([`super::compact`]) and blocks beyond retention deleted.
//!
//! Durability: [`Appender::commit`] writes the batch's records (and Series records for series
//! not logged yet) to the WAL file (a `write`, no fsync) before it applies the samples to the
//! head and returns, so an acknowledged sample survives the process being killed (`kill -9`,
//! a panic, the OOM killer): the kernel's page cache holds it. As in Prometheus, segments are
//! fsynced when they are cut (and when the log is closed), so a power loss or kernel crash can
//! lose the samples of the current segment's unsynced tail; replay cuts such a torn tail back.
//! Commits are serialised by the WAL lock, so the head applies samples in WAL order and replay
//! reproduces exactly the head a crash interrupted.
//!
//! Out-of-order samples (with [`TsdbOptions::out_of_order_window_ms`] set) go to the
//! write-behind log `<dir>/wbl/` instead, in the WAL's segment format, as Prometheus writes
//! them; it is replayed after the WAL and rewritten after each head compaction with the
//! out-of-order samples still in the head.
//!
//! Deletion ([`Tsdb::delete`]): blocks get tombstones in their `tombstones` file (and
//! `numTombstones` in `meta.json`); the head gets them in memory and as a Tombstones record in
//! the WAL, so they survive a restart. Readers skip deleted samples; compactions and
//! [`Tsdb::clean_tombstones`] write blocks without them.

use super::block::{Block, NewBlock, TMP_FOR_CREATION, folder_bytes, rewrite_meta, write_block};
use super::cardinality::Cardinality;
use super::chunks_head::{CHUNKS_HEAD_FOLDER, ChunkDiskMapper};
use super::compact;
use super::error::TsdbError;
use super::head::{
    AppendError, Head, LabelHasher, PENDING_BATCH_MASK, PENDING_ELSEWHERE, Placement, Postings,
    RefMap, Refusal, SeriesInsert, place,
};
use super::index::postings_for_matchers;
use super::labels::{Labels, Matcher};
use super::meta::Ulid;
use super::querier::{
    ChunkData, SamplesCollector, Series, SeriesCollector, SeriesSamples, read_block_samples,
};
use super::tombstones::{Interval, Intervals};
use super::wal::checkpoint;
use super::wal::record::{self, Record, RefSample};
use super::wal::segment::{self, DEFAULT_SEGMENT_BYTES, WalCorruption, WalWriter};
use std::collections::{BTreeMap, BTreeSet};

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::Duration;

/// Options of a data folder.
#[derive(Debug, Clone)]
pub struct TsdbOptions {
    /// Head chunks never span a multiple of this (milliseconds); Prometheus's block duration.
    pub chunk_range_ms: i64,
    /// WAL segment size in bytes.
    pub wal_segment_bytes: usize,
    /// Blocks ending more than this before the newest block's end are deleted
    /// (`--storage.tsdb.retention.time`; Prometheus's default is 15 days). `None`: no limit.
    pub retention_ms: Option<i64>,
    /// The oldest blocks are deleted while blocks and WAL together exceed this many bytes
    /// (`--storage.tsdb.retention.size`). `None`: no limit.
    pub retention_bytes: Option<u64>,
    /// Samples older than their series' newest sample (or than the head's lower bound) are
    /// still accepted when at most this far behind the head's newest sample (milliseconds;
    /// `storage.tsdb.out_of_order_time_window`). 0 refuses them.
    pub out_of_order_window_ms: i64,
}

/// Prometheus's default time retention.
pub const DEFAULT_RETENTION_MS: i64 = 15 * 24 * 3600 * 1000;

impl Default for TsdbOptions {
    fn default() -> Self {
        TsdbOptions {
            chunk_range_ms: 2 * 3600 * 1000,
            wal_segment_bytes: DEFAULT_SEGMENT_BYTES,
            retention_ms: Some(DEFAULT_RETENTION_MS),
            retention_bytes: None,
            out_of_order_window_ms: 0,
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
    /// Deleted intervals replayed from Tombstones records.
    pub tombstones: u64,
    /// Records of kinds not replayed, and Snappy records that did not decompress.
    pub skipped_records: u64,
    /// Snappy-compressed records read (Prometheus's WAL compression).
    pub decompressed_records: u64,
    /// The checkpoint replayed first, if any (its number: the last segment it covers).
    pub checkpoint: Option<u64>,
    /// Damaged segments: each was cut back to its last whole record.
    pub corruptions: Vec<WalCorruption>,
    /// The segment the writer started after the replay: the last one Prometheus's WAL replay
    /// status counts (`max`), since Prometheus creates it before replaying.
    pub writer_segment: u64,
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
    /// Out-of-order samples older than the out-of-order window (Prometheus's "too old").
    pub too_old: AtomicU64,
    /// Out-of-order samples accepted within the window.
    pub ooo_accepted: AtomicU64,
}

impl AppendCounters {
    fn count_refusal(&self, refusal: Refusal) {
        match refusal {
            Refusal::Error(error) => self.count(error),
            Refusal::TooOld => {
                self.too_old.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    fn count(&self, error: AppendError) {
        let counter = match error {
            AppendError::OutOfOrder => &self.out_of_order,
            AppendError::OutOfBounds => &self.out_of_bounds,
            AppendError::Duplicate => &self.duplicate,
            AppendError::EmptyLabels => &self.empty_labels,
            // A caller's stale reference, not a refused sample: nothing to count.
            AppendError::UnknownSeries => return,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// A series' reference in the head, stable for the life of the head.
pub type SeriesRef = u64;

/// Counters behind [`TsdbStats`].
#[derive(Debug, Default)]
struct Activity {
    commits_waiting: AtomicU64,
    head_compactions: AtomicU64,
    block_compactions: AtomicU64,
    compaction_failures: AtomicU64,
    checkpoints: AtomicU64,
    retention_deletions: AtomicU64,
}

/// What [`Tsdb::compact`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CompactionReport {
    /// Blocks written from the head.
    pub head_blocks: u64,
    /// Blocks written by merging blocks.
    pub merged_blocks: u64,
    /// Blocks deleted because a merge replaced them.
    pub replaced_blocks: u64,
    /// Blocks deleted by retention.
    pub retention_deleted: u64,
    /// The checkpoint written, if any.
    pub checkpoint: Option<checkpoint::CheckpointStats>,
}

/// The storage's gauges and counters, for `tocsin_tsdb_*` metrics.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TsdbStats {
    /// Series in the head.
    pub head_series: u64,
    /// Chunks in the head.
    pub head_chunks: u64,
    /// Oldest and newest timestamps in the head.
    pub head_min_time: Option<i64>,
    /// Newest timestamp in the head.
    pub head_max_time: Option<i64>,
    /// Persisted blocks.
    pub blocks: u64,
    /// Bytes of the persisted blocks.
    pub blocks_bytes: u64,
    /// Bytes of the WAL folder (segments and checkpoint).
    pub wal_bytes: u64,
    /// Bytes of the head chunk files (`chunks_head/`).
    pub chunks_head_bytes: u64,
    /// WAL and write-behind-log fsyncs since open (segment cuts, deletions, closes; commits
    /// write without one).
    pub wal_fsyncs: u64,
    /// Sum of WAL fsync durations, seconds.
    pub wal_fsync_seconds: f64,
    /// Commits waiting for the WAL right now (the write backlog).
    pub commits_waiting: u64,
    /// Head blocks written.
    pub head_compactions: u64,
    /// Block merges done.
    pub block_compactions: u64,
    /// Compactions that failed.
    pub compaction_failures: u64,
    /// Checkpoints written.
    pub checkpoints: u64,
    /// Blocks deleted by retention.
    pub retention_deletions: u64,
    /// Refused samples by reason: out of order, out of bounds, duplicate, empty labels.
    pub refused_out_of_order: u64,
    /// See `refused_out_of_order`.
    pub refused_out_of_bounds: u64,
    /// See `refused_out_of_order`.
    pub refused_duplicate: u64,
    /// See `refused_out_of_order`.
    pub refused_empty_labels: u64,
    /// See `refused_out_of_order`: out of order beyond the out-of-order window.
    pub refused_too_old: u64,
    /// Out-of-order samples accepted within the window since open.
    pub ooo_accepted: u64,
    /// Out-of-order samples in the head now.
    pub head_ooo_samples: u64,
    /// Head span / (1.5 × chunk range): above 1, head compaction is overdue.
    pub head_pressure: f64,
    /// Commits waiting / [`WAL_BACKLOG_FULL`]: above 1, WAL writes do not keep up.
    pub wal_pressure: f64,
    /// The larger of the two: at or above 1, storage is falling behind.
    pub pressure: f64,
}

/// The number of commits queued on the WAL at which [`TsdbStats::wal_pressure`] reaches 1.
pub const WAL_BACKLOG_FULL: u64 = 8;

/// An open data folder.
#[derive(Debug)]
pub struct Tsdb {
    folder: PathBuf,
    options: TsdbOptions,
    blocks: RwLock<Vec<Arc<Block>>>,
    head: RwLock<Head>,
    wal: Mutex<WalWriter>,
    /// The write-behind log of out-of-order samples, when a window is set or one exists.
    wbl: Mutex<Option<WalWriter>>,
    /// Serialises compactions.
    compaction: Mutex<()>,
    counters: AppendCounters,
    activity: Activity,
    replay: ReplayReport,
    /// Appenders alive by epoch, for keeping removed series' labels (see `LiveAppenders`).
    live_appenders: LiveAppenders,
    /// Time and size retention in force: the options' at open, then what
    /// [`Tsdb::set_retention`] sets (configuration reloads).
    retention: Mutex<Retention>,
    /// The next appender's batch identifier.
    next_batch: AtomicU64,
}

/// Time and size retention (see [`TsdbOptions::retention_ms`] and
/// [`TsdbOptions::retention_bytes`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Retention {
    /// Milliseconds; `None`: no time limit.
    pub time_ms: Option<i64>,
    /// Bytes; `None`: no size limit.
    pub bytes: Option<u64>,
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
        head.ooo_window = options.out_of_order_window_ms.max(0);
        head.min_valid_time = blocks
            .iter()
            .map(|b| b.meta().max_time)
            .max()
            .unwrap_or(i64::MIN);
        // Completed chunks go to chunks_head/, rewritten from the WAL on every open.
        head.set_chunk_disk(ChunkDiskMapper::open(&folder.join(CHUNKS_HEAD_FOLDER))?);
        let wal_folder = folder.join("wal");
        let (mut report, next_segment, refs) = replay_wal(&wal_folder, &mut head)?;
        let wbl_folder = folder.join(WBL_FOLDER);
        let wbl = if wbl_folder.is_dir() || head.ooo_window > 0 {
            let next = replay_wbl(&wbl_folder, &mut head, &refs, &mut report)?;
            Some(WalWriter::create(
                &wbl_folder,
                next,
                options.wal_segment_bytes,
            )?)
        } else {
            None
        };
        let wal = WalWriter::create(&wal_folder, next_segment, options.wal_segment_bytes)?;
        let retention = Retention {
            time_ms: options.retention_ms,
            bytes: options.retention_bytes,
        };
        Ok(Tsdb {
            folder: folder.to_path_buf(),
            retention: Mutex::new(retention),
            options,
            blocks: RwLock::new(blocks),
            head: RwLock::new(head),
            wal: Mutex::new(wal),
            wbl: Mutex::new(wbl),
            compaction: Mutex::new(()),
            counters: AppendCounters::default(),
            activity: Activity::default(),
            replay: report,
            live_appenders: LiveAppenders::default(),
            next_batch: AtomicU64::new(0),
        })
    }

    /// Persists what is due and applies retention: head blocks while the head spans more
    /// than 1.5 chunk ranges (then a WAL checkpoint), block merges by the leveled planner,
    /// and deletion of blocks beyond retention. Safe to call at any time, concurrently with
    /// appends and queries; the node calls it periodically (Prometheus: every minute).
    pub fn compact(&self) -> Result<CompactionReport, TsdbError> {
        let _serialised = lock(&self.compaction);
        let result = self.compact_locked();
        if result.is_err() {
            self.activity
                .compaction_failures
                .fetch_add(1, Ordering::Relaxed);
        }
        result
    }

    fn compact_locked(&self) -> Result<CompactionReport, TsdbError> {
        let mut report = CompactionReport::default();
        let mut truncated_to = None;
        // Labels of removed series no live batch can hold any more.
        let oldest_live = self.live_appenders.oldest();
        self.head
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .forget_removed(oldest_live);
        loop {
            let (min_time, max_time, series) = {
                let mut head = self.head.write().unwrap_or_else(|p| p.into_inner());
                let Some((min_time, max_time)) = head.compactable_window() else {
                    break;
                };
                // No append can reach the window any more (it is also more than half a
                // range behind the newest sample).
                head.min_valid_time = head.min_valid_time.max(max_time);
                (min_time, max_time, head.block_series(min_time, max_time)?)
            };
            if !series.is_empty() {
                let meta = write_block(
                    &self.folder,
                    NewBlock {
                        series,
                        min_time,
                        max_time,
                        created_unix_millis: unix_millis(),
                    },
                )?;
                let block = Block::open(&self.folder.join(meta.ulid.to_string()))?;
                self.add_block(block);
                report.head_blocks += 1;
                self.activity
                    .head_compactions
                    .fetch_add(1, Ordering::Relaxed);
            }
            let mut head = self.head.write().unwrap_or_else(|p| p.into_inner());
            head.truncate(max_time);
            truncated_to = Some(max_time);
        }
        if let Some(cut) = truncated_to {
            report.checkpoint = Some(self.checkpoint(cut)?);
            self.rewrite_wbl()?;
        }
        self.compact_blocks(&mut report)?;
        self.apply_retention(&mut report)?;
        Ok(report)
    }

    /// Closes the current WAL segment and folds every earlier one into a checkpoint that
    /// keeps the head's series and the samples from `min_time` on.
    fn checkpoint(&self, min_time: i64) -> Result<checkpoint::CheckpointStats, TsdbError> {
        let (wal_folder, last, live) = {
            let mut wal = lock(&self.wal);
            let last = wal.next_segment()?;
            // Under the WAL lock: every series a commit logged so far is in this set or gone
            // from the head; later ones are logged in the new segment.
            let head = self.head.read().unwrap_or_else(|p| p.into_inner());
            (wal.folder().to_path_buf(), last, head.series_refs())
        };
        let stats = checkpoint::create(&wal_folder, last, &|r| live.contains(&r), min_time)?;
        self.activity.checkpoints.fetch_add(1, Ordering::Relaxed);
        Ok(stats)
    }

    /// Starts a new WBL segment holding the out-of-order samples still in the head and
    /// deletes the older segments (their other samples are in blocks now). Commits wait
    /// meanwhile, so no out-of-order sample is missed.
    fn rewrite_wbl(&self) -> Result<(), TsdbError> {
        let _commits = lock(&self.wal);
        let mut guard = lock(&self.wbl);
        let Some(wbl) = guard.as_mut() else {
            return Ok(());
        };
        let last = wbl.next_segment()?;
        let samples: Vec<RefSample> = {
            let head = self.head.read().unwrap_or_else(|p| p.into_inner());
            head.ooo_samples()
                .into_iter()
                .map(|(series_ref, timestamp, value)| RefSample {
                    series_ref,
                    timestamp,
                    value,
                })
                .collect()
        };
        for batch in samples.chunks(SAMPLES_PER_RECORD) {
            wbl.log(&record::encode_samples(batch))?;
        }
        wbl.sync()?;
        let folder = wbl.folder().to_path_buf();
        for number in segment::list_segments(&folder)? {
            if number <= last {
                let path = segment::segment_path(&folder, number);
                std::fs::remove_file(&path).map_err(TsdbError::io(&path))?;
            }
        }
        super::chunks::sync_folder(&folder)
    }

    /// Deletes the samples in `[mint, maxt]` (inclusive, milliseconds) of the series matching
    /// every matcher, as Prometheus's `DB.Delete`: tombstones in each overlapping block
    /// (written before this returns) and in the head (logged in the WAL and fsynced first).
    /// Returns how many series got a tombstone.
    pub fn delete(&self, matchers: &[Matcher], mint: i64, maxt: i64) -> Result<u64, TsdbError> {
        if mint > maxt {
            return Ok(0);
        }
        let _serialised = lock(&self.compaction);
        let mut deleted = 0u64;
        let blocks: Vec<Arc<Block>> = self
            .blocks
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        for block in blocks {
            let meta = block.meta();
            if meta.min_time > maxt || meta.max_time <= mint {
                continue;
            }
            let index = block.index();
            let mut stones = block.tombstones().clone();
            let mut touched = 0u64;
            for id in postings_for_matchers(index, matchers)? {
                let series = index.series(id)?;
                let (Some(first), Some(last)) = (series.chunks.first(), series.chunks.last())
                else {
                    continue;
                };
                if series
                    .chunks
                    .iter()
                    .any(|c| c.min_time <= maxt && mint <= c.max_time)
                {
                    stones.add(
                        id,
                        Interval {
                            mint: mint.max(first.min_time),
                            maxt: maxt.min(last.max_time),
                        },
                    );
                    touched += 1;
                }
            }
            if touched == 0 {
                continue;
            }
            stones.write_file(block.folder())?;
            let mut new_meta = meta.clone();
            new_meta.stats.num_tombstones = stones.total();
            rewrite_meta(block.folder(), &new_meta)?;
            let reopened = Arc::new(Block::open(block.folder())?);
            let mut current = self.blocks.write().unwrap_or_else(|p| p.into_inner());
            for slot in current.iter_mut() {
                if slot.meta().ulid == meta.ulid {
                    *slot = Arc::clone(&reopened);
                }
            }
            deleted += touched;
        }
        let mut wal = lock(&self.wal);
        let stones = {
            let head = self.head.read().unwrap_or_else(|p| p.into_inner());
            let refs = postings_for_matchers(&*head, matchers)?;
            head.deletion_stones(&refs, mint, maxt)
        };
        if !stones.is_empty() {
            for batch in stones.chunks(SAMPLES_PER_RECORD) {
                wal.log(&record::encode_tombstones(batch))?;
            }
            wal.sync()?;
            let mut head = self.head.write().unwrap_or_else(|p| p.into_inner());
            for &(series_ref, interval) in &stones {
                head.tombstones.add(series_ref, interval);
            }
            deleted += stones.len() as u64;
        }
        Ok(deleted)
    }

    /// Rewrites every block that has tombstones without the deleted samples (one level up, so
    /// a crash between writing the new block and deleting the old one is resolved at open as
    /// for merges), as Prometheus's `DB.CleanTombstones`. Returns how many blocks it rewrote.
    pub fn clean_tombstones(&self) -> Result<u64, TsdbError> {
        let _serialised = lock(&self.compaction);
        let blocks: Vec<Arc<Block>> = self
            .blocks
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let mut rewritten = 0u64;
        for block in blocks {
            if block.tombstones().is_empty() {
                continue;
            }
            let meta = compact::merge_blocks(&self.folder, &[&*block], unix_millis())?;
            let new_folder = self.folder.join(meta.ulid.to_string());
            let replacement = if meta.stats.num_samples == 0 {
                // Everything was deleted: no block at all, as Prometheus.
                delete_block_folder(&new_folder)?;
                None
            } else {
                Some(Arc::new(Block::open(&new_folder)?))
            };
            {
                let mut current = self.blocks.write().unwrap_or_else(|p| p.into_inner());
                current.retain(|b| b.meta().ulid != block.meta().ulid);
                current.extend(replacement);
                current.sort_by_key(|b| (b.meta().min_time, b.meta().ulid));
            }
            delete_block_folder(block.folder())?;
            rewritten += 1;
        }
        Ok(rewritten)
    }

    /// Writes a snapshot into `dir` (created): every block hard-linked, and with `with_head`
    /// the head's samples as one more block, as Prometheus's `DB.Snapshot`.
    pub fn snapshot(&self, dir: &Path, with_head: bool) -> Result<(), TsdbError> {
        let _serialised = lock(&self.compaction);
        std::fs::create_dir_all(dir).map_err(TsdbError::io(dir))?;
        let blocks: Vec<Arc<Block>> = self
            .blocks
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        for block in &blocks {
            block.hard_link_into(dir)?;
        }
        if with_head {
            let head_block = {
                let head = self.head.read().unwrap_or_else(|p| p.into_inner());
                match (head.min_time(), head.max_time()) {
                    (Some(min), Some(max)) => {
                        let max = max.saturating_add(1);
                        Some((min, max, head.block_series(min, max)?))
                    }
                    _ => None,
                }
            };
            if let Some((min_time, max_time, series)) = head_block
                && !series.is_empty()
            {
                write_block(
                    dir,
                    NewBlock {
                        series,
                        min_time,
                        max_time,
                        created_unix_millis: unix_millis(),
                    },
                )?;
            }
        }
        super::chunks::sync_folder(dir)
    }

    fn add_block(&self, block: Block) {
        let mut blocks = self.blocks.write().unwrap_or_else(|p| p.into_inner());
        blocks.push(Arc::new(block));
        blocks.sort_by_key(|b| (b.meta().min_time, b.meta().ulid));
    }

    fn compact_blocks(&self, report: &mut CompactionReport) -> Result<(), TsdbError> {
        let ranges = compact::block_ranges(
            self.options.chunk_range_ms,
            compact::max_block_duration(self.retention().time_ms),
        );
        // Each merge removes at least one block, so this ends; the bound is a safeguard.
        for _ in 0..10_000 {
            let blocks: Vec<Arc<Block>> = self
                .blocks
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .clone();
            let metas: Vec<_> = blocks.iter().map(|b| b.meta().clone()).collect();
            let Some(chosen) = compact::plan(&metas, &ranges) else {
                return Ok(());
            };
            let sources: Vec<&Block> = chosen.iter().map(|&i| &*blocks[i]).collect();
            let meta = compact::merge_blocks(&self.folder, &sources, unix_millis())?;
            let merged = Block::open(&self.folder.join(meta.ulid.to_string()))?;
            let replaced: BTreeSet<_> = chosen.iter().map(|&i| metas[i].ulid).collect();
            {
                let mut current = self.blocks.write().unwrap_or_else(|p| p.into_inner());
                current.retain(|b| !replaced.contains(&b.meta().ulid));
                current.push(Arc::new(merged));
                current.sort_by_key(|b| (b.meta().min_time, b.meta().ulid));
            }
            for &index in &chosen {
                delete_block_folder(blocks[index].folder())?;
            }
            report.merged_blocks += 1;
            report.replaced_blocks += chosen.len() as u64;
            self.activity
                .block_compactions
                .fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }

    /// The retention in force.
    pub fn retention(&self) -> Retention {
        *lock(&self.retention)
    }

    /// Changes the retention from the next compaction on: each limit given replaces the
    /// current one, `None` keeps it, as Prometheus applies `storage.tsdb.retention` from a
    /// reloaded configuration.
    pub fn set_retention(&self, time_ms: Option<i64>, bytes: Option<u64>) {
        let mut retention = lock(&self.retention);
        if let Some(time_ms) = time_ms {
            retention.time_ms = Some(time_ms);
        }
        if let Some(bytes) = bytes {
            retention.bytes = Some(bytes);
        }
    }

    /// Bytes the size retention counts besides the blocks, as Prometheus counts them: the WAL,
    /// the write-behind log and the head chunk files.
    fn non_block_bytes(&self) -> u64 {
        folder_bytes(&self.folder.join("wal"))
            + folder_bytes(&self.folder.join(WBL_FOLDER))
            + folder_bytes(&self.folder.join(CHUNKS_HEAD_FOLDER))
    }

    fn apply_retention(&self, report: &mut CompactionReport) -> Result<(), TsdbError> {
        let retention = self.retention();
        if retention.time_ms.is_none() && retention.bytes.is_none() {
            return Ok(());
        }
        let blocks: Vec<Arc<Block>> = self
            .blocks
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let metas: Vec<_> = blocks.iter().map(|b| b.meta().clone()).collect();
        let sizes: Vec<u64> = if retention.bytes.is_some() {
            blocks.iter().map(|b| b.size_bytes()).collect()
        } else {
            vec![0; blocks.len()]
        };
        let non_block_bytes = if retention.bytes.is_some() {
            self.non_block_bytes()
        } else {
            0
        };
        let doomed = compact::beyond_retention(
            &metas,
            &sizes,
            non_block_bytes,
            retention.time_ms,
            retention.bytes,
        );
        if doomed.is_empty() {
            return Ok(());
        }
        let ulids: BTreeSet<_> = doomed.iter().map(|&i| metas[i].ulid).collect();
        self.blocks
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|b| !ulids.contains(&b.meta().ulid));
        for &index in &doomed {
            delete_block_folder(blocks[index].folder())?;
        }
        report.retention_deleted += doomed.len() as u64;
        self.activity
            .retention_deletions
            .fetch_add(doomed.len() as u64, Ordering::Relaxed);
        Ok(())
    }

    /// The storage's gauges and counters (walks the block and WAL folders for sizes).
    pub fn stats(&self) -> TsdbStats {
        let (
            head_series,
            head_chunks,
            head_min_time,
            head_max_time,
            head_ooo_samples,
            chunks_head_bytes,
        ) = {
            let head = self.head.read().unwrap_or_else(|p| p.into_inner());
            (
                head.num_series() as u64,
                head.num_chunks(),
                head.min_time(),
                head.max_time(),
                head.num_ooo_samples(),
                head.chunks_head_bytes(),
            )
        };
        let blocks: Vec<Arc<Block>> = self
            .blocks
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let activity = &self.activity;
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        let (wal_fsyncs, wal_fsync_nanos) = {
            let (wal_count, wal_nanos) = lock(&self.wal).fsync_totals();
            let (wbl_count, wbl_nanos) = lock(&self.wbl)
                .as_ref()
                .map_or((0, 0), WalWriter::fsync_totals);
            (wal_count + wbl_count, wal_nanos.saturating_add(wbl_nanos))
        };
        let span = match (head_min_time, head_max_time) {
            (Some(min), Some(max)) => max.saturating_sub(min) as f64,
            _ => 0.0,
        };
        let head_pressure = span / (1.5 * self.options.chunk_range_ms.max(1) as f64);
        let commits_waiting = load(&activity.commits_waiting);
        let wal_pressure = commits_waiting as f64 / WAL_BACKLOG_FULL as f64;
        TsdbStats {
            head_series,
            head_chunks,
            head_min_time,
            head_max_time,
            blocks: blocks.len() as u64,
            blocks_bytes: blocks.iter().map(|b| b.size_bytes()).sum(),
            wal_bytes: folder_bytes(&self.folder.join("wal")),
            chunks_head_bytes,
            wal_fsyncs,
            wal_fsync_seconds: Duration::from_nanos(wal_fsync_nanos).as_secs_f64(),
            commits_waiting,
            head_compactions: load(&activity.head_compactions),
            block_compactions: load(&activity.block_compactions),
            compaction_failures: load(&activity.compaction_failures),
            checkpoints: load(&activity.checkpoints),
            retention_deletions: load(&activity.retention_deletions),
            refused_out_of_order: load(&self.counters.out_of_order),
            refused_out_of_bounds: load(&self.counters.out_of_bounds),
            refused_duplicate: load(&self.counters.duplicate),
            refused_empty_labels: load(&self.counters.empty_labels),
            refused_too_old: load(&self.counters.too_old),
            ooo_accepted: load(&self.counters.ooo_accepted),
            head_ooo_samples,
            head_pressure,
            wal_pressure,
            pressure: head_pressure.max(wal_pressure),
        }
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

    /// The first timestamp (`minTime`) of the oldest persisted block, if there is a block:
    /// where the local storage's data starts (remote read's `read_recent: false` cut).
    pub fn oldest_block_min_time(&self) -> Option<i64> {
        let blocks = self.blocks.read().unwrap_or_else(|p| p.into_inner());
        blocks.iter().map(|block| block.meta().min_time).min()
    }

    /// Head series and chunk counts.
    pub fn head_stats(&self) -> (usize, u64) {
        self.head
            .read()
            .map_or((0, 0), |head| (head.num_series(), head.num_chunks()))
    }

    /// Cardinality statistics of the head (top `limit` of each list), under its read lock:
    /// linear in the head's label pairs, and appends creating series wait meanwhile.
    pub fn head_cardinality(&self, metric_label: &str, limit: usize) -> Cardinality {
        self.head
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .cardinality(metric_label, limit)
    }

    /// A new batch of samples.
    pub fn appender(&self) -> Appender<'_> {
        let (epoch, wal_failures) = {
            let head = self.head.read().unwrap_or_else(|p| p.into_inner());
            (head.truncations, head.wal_failures)
        };
        self.live_appenders.register(epoch);
        // Non-zero (a fresh series' slot holds 0) and within the slot's batch bits; a wrapped
        // identifier meeting a slot from long ago is caught by the pending sample's own
        // reference check.
        let batch = self.next_batch.fetch_add(1, Ordering::Relaxed) % PENDING_BATCH_MASK + 1;
        Appender {
            tsdb: self,
            batch,
            pending: Vec::new(),
            newest: RefMap::default(),
            unlogged: Vec::new(),
            wal_failures,
            registration: Registration {
                live: &self.live_appenders,
                epoch,
            },
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

/// Milliseconds since the epoch (0 if the clock is before it), for block ids.
fn unix_millis() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The suffix a block folder gets while it is deleted (Prometheus's).
const TMP_FOR_DELETION: &str = ".tmp-for-deletion";

/// Deletes a block folder crash-safely: renamed first (so a half-deleted block is never
/// opened as a block), then removed.
fn delete_block_folder(folder: &Path) -> Result<(), TsdbError> {
    let Some(parent) = folder.parent() else {
        return Err(TsdbError::Usage(format!(
            "block folder {} has no parent",
            folder.display()
        )));
    };
    let mut name = folder.as_os_str().to_os_string();
    name.push(TMP_FOR_DELETION);
    let doomed = PathBuf::from(name);
    std::fs::rename(folder, &doomed).map_err(TsdbError::io(folder))?;
    super::chunks::sync_folder(parent)?;
    std::fs::remove_dir_all(&doomed).map_err(TsdbError::io(&doomed))
}

fn open_blocks(folder: &Path) -> Result<Vec<Arc<Block>>, TsdbError> {
    let mut blocks: Vec<Arc<Block>> = Vec::new();
    for entry in std::fs::read_dir(folder).map_err(TsdbError::io(folder))? {
        let entry = entry.map_err(TsdbError::io(folder))?;
        let path = entry.path();
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        if name.ends_with(TMP_FOR_CREATION) || name.ends_with(TMP_FOR_DELETION) {
            // A block whose writing a crash interrupted: never renamed, never visible.
            std::fs::remove_dir_all(&path).map_err(TsdbError::io(&path))?;
            continue;
        }
        if name.parse::<Ulid>().is_ok() && path.join("meta.json").exists() {
            blocks.push(Arc::new(Block::open(&path)?));
        }
    }
    // A crash after a merge and before its sources were deleted leaves both: the sources are
    // the blocks whose level-1 ancestors a higher-level block covers entirely.
    let parents: Vec<usize> = (0..blocks.len())
        .filter(|&i| {
            let meta = blocks[i].meta();
            blocks.iter().any(|other| {
                let theirs = other.meta();
                theirs.ulid != meta.ulid
                    && theirs.compaction.level > meta.compaction.level
                    && !meta.compaction.sources.is_empty()
                    && meta
                        .compaction
                        .sources
                        .iter()
                        .all(|s| theirs.compaction.sources.contains(s))
            })
        })
        .collect();
    for &index in parents.iter().rev() {
        let block = blocks.remove(index);
        tracing::info!(folder = %block.folder().display(), "deleting a block a compaction replaced");
        delete_block_folder(block.folder())?;
    }
    blocks.sort_by_key(|b| (b.meta().min_time, b.meta().ulid));
    Ok(blocks)
}

/// The write-behind log's folder (Prometheus's name).
pub const WBL_FOLDER: &str = "wbl";

/// Replays the write-behind log's segments (out-of-order samples; series come from the WAL,
/// whose `refs` maps their references); returns the number for the next segment.
fn replay_wbl(
    wbl_folder: &Path,
    head: &mut Head,
    refs: &ReplayRefs,
    report: &mut ReplayReport,
) -> Result<u64, TsdbError> {
    if !wbl_folder.is_dir() {
        return Ok(0);
    }
    let segments = segment::list_segments(wbl_folder)?;
    let mut refs = refs.clone();
    let paths: Vec<PathBuf> = segments
        .iter()
        .map(|&number| segment::segment_path(wbl_folder, number))
        .collect();
    replay_segments(&paths, head, &mut refs, report, true)?;
    Ok(segments.last().map_or(0, |last| last + 1))
}

/// Replays the newest checkpoint, then the segments after it, into `head`; returns the report,
/// the number for the next segment, and the WAL → head reference map.
fn replay_wal(
    wal_folder: &Path,
    head: &mut Head,
) -> Result<(ReplayReport, u64, ReplayRefs), TsdbError> {
    let mut report = ReplayReport::default();
    checkpoint::remove_temporary(wal_folder)?;
    let mut refs = ReplayRefs::Identity;
    let mut after = 0;
    let mut paths = Vec::new();
    if let Some((number, folder)) = checkpoint::last_checkpoint(wal_folder)? {
        for segment_number in segment::list_segments(&folder)? {
            paths.push(segment::segment_path(&folder, segment_number));
        }
        report.checkpoint = Some(number);
        after = number + 1;
    }
    let segments = segment::list_segments(wal_folder)?;
    for &number in &segments {
        let path = segment::segment_path(wal_folder, number);
        if number < after {
            // Folded into the checkpoint; a crash came before its deletion.
            std::fs::remove_file(&path).map_err(TsdbError::io(&path))?;
            continue;
        }
        paths.push(path);
    }
    replay_segments(&paths, head, &mut refs, &mut report, false)?;
    let next = segments.last().map_or(after, |last| (last + 1).max(after));
    report.writer_segment = next;
    Ok((report, next, refs))
}

/// What the reading thread of a replay hands to the applying one, in log order.
enum ReplayItem {
    /// A decoded record (not a Series one).
    Record(Record),
    /// A decoded Series record, with each series' hash for the head's label index
    /// (computed on the reading thread, which has time to spare).
    Series(Vec<(u64, Labels)>, Vec<u64>),
    /// The end of a segment, with what reading it found.
    SegmentEnd(SegmentSummary),
    /// Reading a segment failed (an I/O error): replay stops.
    Failed(TsdbError),
}

/// What reading one segment found besides its records.
struct SegmentSummary {
    path: PathBuf,
    compressed_skipped: u64,
    decompressed: u64,
    undecodable: u64,
    corruption: Option<WalCorruption>,
}

/// Decoded records a replay's reader may be ahead of the applier (bounds the memory).
const REPLAY_QUEUE_RECORDS: usize = 256;

/// Replays segments in order (of the WAL and its checkpoint, or with `out_of_order` of the
/// WBL), cutting a damaged one back to its last whole record. One thread reads, checks,
/// decompresses and decodes the records while this one applies them to the head: the two
/// halves cost about the same, so replay takes about half as long on two cores.
fn replay_segments(
    paths: &[PathBuf],
    head: &mut Head,
    refs: &mut ReplayRefs,
    report: &mut ReplayReport,
    out_of_order: bool,
) -> Result<(), TsdbError> {
    if paths.is_empty() {
        return Ok(());
    }
    let (sender, receiver) = std::sync::mpsc::sync_channel::<ReplayItem>(REPLAY_QUEUE_RECORDS);
    let hasher = head.label_hasher();
    // Into an empty head (the WAL's replay), the reading thread also builds the postings of
    // the series it decodes, and the head takes them at the end: adding every label pair to
    // the postings was the larger part of creating a series, and the reader has time to
    // spare. They are right if every record created its series as given (see
    // `apply_series`); if not, the head builds them from its series.
    let mut postings = if head.num_series() == 0 {
        PostingsAtReplay::Built { valid: true }
    } else {
        PostingsAtReplay::PerSeries
    };
    let build = matches!(postings, PostingsAtReplay::Built { .. });
    std::thread::scope(|scope| {
        let reader = scope.spawn(move || read_segments(paths, &hasher, build, &sender));
        let applied = apply_items(receiver, head, refs, &mut postings, report, out_of_order);
        // The receiver is gone (dropped by `apply_items`): a reader blocked on a full queue
        // wakes up and ends.
        let (built, reader_failed) = match reader.join() {
            Ok(built) => (built, false),
            Err(_) => (None, true),
        };
        if let PostingsAtReplay::Built { valid } = postings {
            head.install_postings(if valid { built } else { None });
        }
        applied?;
        if reader_failed {
            // Its records stopped early: opening on part of the log would lose data silently.
            return Err(TsdbError::Usage(
                "the WAL replay's reading thread panicked; replay incomplete".into(),
            ));
        }
        Ok(())
    })
}

/// The applying half of [`replay_segments`]: applies what the reader sends, in order, until
/// it has sent everything or something fails.
fn apply_items(
    receiver: std::sync::mpsc::Receiver<ReplayItem>,
    head: &mut Head,
    refs: &mut ReplayRefs,
    postings: &mut PostingsAtReplay,
    report: &mut ReplayReport,
    out_of_order: bool,
) -> Result<(), TsdbError> {
    for item in receiver {
        match item {
            ReplayItem::Record(decoded) => {
                apply_record(decoded, head, refs, postings, report, out_of_order);
            }
            ReplayItem::Series(series, hashes) => {
                apply_series(series, &hashes, head, refs, postings, report);
            }
            ReplayItem::SegmentEnd(summary) => finish_segment(summary, report)?,
            ReplayItem::Failed(error) => return Err(error),
        }
    }
    Ok(())
}

/// How a replay indexes the series it creates (see [`replay_segments`]).
#[derive(Debug, Clone, Copy)]
enum PostingsAtReplay {
    /// Series are added to the head's postings one by one.
    PerSeries,
    /// The reading thread builds the postings; `valid` while they match the head.
    Built { valid: bool },
}

/// The reading half of [`replay_segments`]: stops early when the applier has gone (it
/// failed) or after a failed read.
fn read_segments(
    paths: &[PathBuf],
    hasher: &LabelHasher,
    build_postings: bool,
    sender: &std::sync::mpsc::SyncSender<ReplayItem>,
) -> Option<Postings> {
    let mut postings = build_postings.then(Postings::default);
    for path in paths {
        let mut undecodable = 0;
        // Records go to the applier as they are read (it starts on a segment's first
        // records while the rest is read); `false` once it has gone.
        let read = segment::read_segment_with(path, |bytes| {
            let item = match record::decode(bytes) {
                Ok(Record::Series(series)) => {
                    let hashes = series.iter().map(|(_, l)| hasher.hash(l)).collect();
                    if let Some(postings) = &mut postings {
                        for (series_ref, labels) in &series {
                            postings.add_unsorted(*series_ref, labels);
                        }
                    }
                    ReplayItem::Series(series, hashes)
                }
                Ok(decoded) => ReplayItem::Record(decoded),
                Err(error) => {
                    // The fragment checksums held, so this is a writer bug or a format we
                    // do not know: skip the record, keep going.
                    tracing::warn!(file = %path.display(), %error, "undecodable WAL record skipped");
                    undecodable += 1;
                    return true;
                }
            };
            sender.send(item).is_ok()
        });
        let contents = match read {
            Ok(contents) if contents.stopped => return None,
            Ok(contents) => contents,
            Err(error) => {
                let _ = sender.send(ReplayItem::Failed(error));
                return None;
            }
        };
        let summary = SegmentSummary {
            path: path.clone(),
            compressed_skipped: contents.compressed_skipped,
            decompressed: contents.decompressed,
            undecodable,
            corruption: contents.corruption,
        };
        if sender.send(ReplayItem::SegmentEnd(summary)).is_err() {
            return None;
        }
    }
    postings
}

/// Applies one replayed record to the head.
fn apply_record(
    decoded: Record,
    head: &mut Head,
    refs: &mut ReplayRefs,
    postings: &mut PostingsAtReplay,
    report: &mut ReplayReport,
    out_of_order: bool,
) {
    match decoded {
        Record::Series(series) => {
            let hasher = head.label_hasher();
            let hashes: Vec<u64> = series.iter().map(|(_, l)| hasher.hash(l)).collect();
            apply_series(series, &hashes, head, refs, postings, report);
        }
        Record::Samples(samples) => {
            for sample in samples {
                let head_ref = match refs {
                    // A reference no record defined is not in the head: the append says so.
                    ReplayRefs::Identity => sample.series_ref,
                    ReplayRefs::Map(map) => match map.get(&sample.series_ref) {
                        Some(&head_ref) => head_ref,
                        None => {
                            report.unknown_series_samples += 1;
                            continue;
                        }
                    },
                };
                let applied = if out_of_order {
                    head.insert_ooo(head_ref, sample.timestamp, sample.value)
                } else {
                    head.append(head_ref, sample.timestamp, sample.value)
                };
                match applied {
                    Ok(_) => report.samples += 1,
                    Err(AppendError::UnknownSeries) => report.unknown_series_samples += 1,
                    Err(_) => report.rejected_samples += 1,
                }
            }
        }
        Record::Tombstones(stones) => {
            for (wal_ref, interval) in stones {
                if let Some(head_ref) = refs.resolve(head, wal_ref) {
                    head.tombstones.add(head_ref, interval);
                    report.tombstones += 1;
                }
            }
        }
        Record::Other(_) => report.skipped_records += 1,
    }
}

/// Creates a replayed Series record's series; `hashes` are their labels' hashes by
/// [`Head::label_hasher`], in order.
fn apply_series(
    series: Vec<(u64, Labels)>,
    hashes: &[u64],
    head: &mut Head,
    refs: &mut ReplayRefs,
    postings: &mut PostingsAtReplay,
    report: &mut ReplayReport,
) {
    head.reserve_series(series.len());
    for ((wal_ref, labels), &hash) in series.into_iter().zip(hashes) {
        let head_ref = match postings {
            PostingsAtReplay::PerSeries => head.insert_series_hashed(wal_ref, labels, hash),
            PostingsAtReplay::Built { valid } => {
                let (head_ref, how) = head.insert_series_unindexed(wal_ref, labels, hash);
                // The reader indexed `wal_ref` under these labels: what the head has only if
                // it created the series so, or had it so (a repeated record).
                *valid &= how == SeriesInsert::Created
                    || (how == SeriesInsert::SameLabels && head_ref == wal_ref);
                head_ref
            }
        };
        if let Some(series) = head.series_mut(head_ref) {
            series.logged = true;
        }
        refs.record(head, wal_ref, head_ref);
        report.series += 1;
    }
}

/// WAL references → head references during a replay. They are equal (`Identity`: the head
/// has exactly the series the records defined, under their references) unless a series was
/// logged under two references (a race Prometheus tolerates too, mapping the second to the
/// first); the map is built only then, so the usual replay pays no map insert per series.
#[derive(Debug, Clone)]
enum ReplayRefs {
    Identity,
    Map(RefMap<u64>),
}

impl ReplayRefs {
    /// The head reference of a WAL reference some record defined.
    fn resolve(&self, head: &Head, wal_ref: u64) -> Option<u64> {
        match self {
            ReplayRefs::Identity => head.series(wal_ref).is_some().then_some(wal_ref),
            ReplayRefs::Map(map) => map.get(&wal_ref).copied(),
        }
    }

    /// Notes that the WAL's `wal_ref` is the head's `head_ref` (`head` already has it).
    fn record(&mut self, head: &Head, wal_ref: u64, head_ref: u64) {
        match self {
            ReplayRefs::Identity if wal_ref == head_ref => {}
            ReplayRefs::Identity => {
                let mut map: RefMap<u64> = head.series_refs().into_iter().map(|r| (r, r)).collect();
                map.insert(wal_ref, head_ref);
                *self = ReplayRefs::Map(map);
            }
            ReplayRefs::Map(map) => {
                map.insert(wal_ref, head_ref);
            }
        }
    }
}

/// Counts a replayed segment, and cuts a damaged one back to its last whole record.
fn finish_segment(summary: SegmentSummary, report: &mut ReplayReport) -> Result<(), TsdbError> {
    report.segments += 1;
    report.skipped_records += summary.compressed_skipped + summary.undecodable;
    report.decompressed_records += summary.decompressed;
    if let Some(corruption) = summary.corruption {
        tracing::warn!(
            file = %corruption.path.display(),
            offset = corruption.offset,
            reason = %corruption.reason,
            "damaged WAL segment cut back to its last whole record"
        );
        let path = &summary.path;
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(TsdbError::io(path))?;
        file.set_len(corruption.offset)
            .map_err(TsdbError::io(path))?;
        file.sync_all().map_err(TsdbError::io(path))?;
        report.corruptions.push(corruption);
    }
    Ok(())
}

/// Appenders alive, counted by the truncation epoch ([`Head`]'s truncation count) they were
/// created in: the labels of series a truncation removed are kept while an appender from
/// that epoch or an earlier one lives, since its batch may hold their references.
#[derive(Debug, Default)]
struct LiveAppenders(Mutex<BTreeMap<u64, usize>>);

impl LiveAppenders {
    fn register(&self, epoch: u64) {
        *lock(&self.0).entry(epoch).or_insert(0) += 1;
    }

    fn release(&self, epoch: u64) {
        let mut live = lock(&self.0);
        if let Some(count) = live.get_mut(&epoch) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                live.remove(&epoch);
            }
        }
    }

    /// The epoch of the oldest live appender; `u64::MAX` when none lives.
    fn oldest(&self) -> u64 {
        lock(&self.0).keys().next().copied().unwrap_or(u64::MAX)
    }
}

/// An appender's entry in [`LiveAppenders`], released when the appender is committed or
/// dropped.
#[derive(Debug)]
struct Registration<'a> {
    live: &'a LiveAppenders,
    epoch: u64,
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        self.live.release(self.epoch);
    }
}

/// A batch of samples, durable and visible together at [`Appender::commit`]. Dropping it
/// without committing discards the samples (series it created stay, unlogged, and empty).
#[derive(Debug)]
pub struct Appender<'a> {
    tsdb: &'a Tsdb,
    /// This batch's identifier in the series' pending slots (see `PendingSlot`).
    batch: u64,
    pending: Vec<RefSample>,
    /// Newest pending in-order sample per series once `pending` outgrows what a pending
    /// slot can index (order checks inside the batch; slots cover the usual batch).
    newest: RefMap<(i64, u64)>,
    /// Series whose WAL Series record was not written when the batch added a sample for
    /// them (repeats possible): the commit writes the records of those still unwritten.
    unlogged: Vec<SeriesRef>,
    /// The head's count of failed WAL writes when the batch began (a failure since may have
    /// marked series records it saw written as unwritten again).
    wal_failures: u64,
    registration: Registration<'a>,
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
    /// Out-of-order samples within the window are accepted (too-old ones are refused as
    /// out of order and counted apart). The returned reference can be given to
    /// [`Appender::append_ref`] for the series' next samples, in this batch or later ones.
    pub fn append(&mut self, labels: &Labels, t: i64, v: f64) -> Result<SeriesRef, AppendError> {
        let result = self.try_append(labels, t, v);
        if let Err(refusal) = result {
            self.tsdb.counters.count_refusal(refusal);
        }
        result.map_err(Refusal::error)
    }

    /// Adds a sample to the series `series_ref` (from [`Appender::append`]), without looking
    /// its labels up: the fast path for callers that keep the reference per series, as
    /// Prometheus's scrape cache and remote-write handler do. Same checks and counters as
    /// [`Appender::append`]. A reference the head does not have (a head compaction removed
    /// its series, which had no samples left) gives [`AppendError::UnknownSeries`], not
    /// counted: append by labels instead, which re-creates the series.
    pub fn append_ref(&mut self, series_ref: SeriesRef, t: i64, v: f64) -> Result<(), AppendError> {
        let tsdb = self.tsdb;
        let result = {
            let head = tsdb.head.read().unwrap_or_else(|p| p.into_inner());
            self.place_sample(&head, series_ref, t, v)
        };
        match result {
            Ok(_) => Ok(()),
            Err(Refusal::Error(AppendError::UnknownSeries)) => Err(AppendError::UnknownSeries),
            Err(refusal) => {
                tsdb.counters.count_refusal(refusal);
                Err(refusal.error())
            }
        }
    }

    fn try_append(&mut self, labels: &Labels, t: i64, v: f64) -> Result<SeriesRef, Refusal> {
        let tsdb = self.tsdb;
        let found = {
            let head = tsdb.head.read().unwrap_or_else(|p| p.into_inner());
            // Refused before creating a series for it (nothing to place it in).
            place(
                None,
                t,
                v,
                head.appendable_min_time(),
                head.max_time().unwrap_or(i64::MIN),
                head.ooo_window,
            )?;
            head.series_ref_of(labels)
                .map(|series_ref| self.place_sample(&head, series_ref, t, v))
        };
        if let Some(result) = found {
            return result;
        }
        // A new series: the write lock, for creating it (another appender may have created
        // it since the read lock was let go; get_or_create then finds it).
        let mut head = tsdb.head.write().unwrap_or_else(|p| p.into_inner());
        let (series_ref, _) = head.get_or_create(labels).map_err(Refusal::Error)?;
        self.place_sample(&head, series_ref, t, v)
    }

    /// Decides where `(t, v)` goes for an existing series against the head and the batch's
    /// own pending samples (one series lookup), and queues it.
    fn place_sample(
        &mut self,
        head: &Head,
        series_ref: SeriesRef,
        t: i64,
        v: f64,
    ) -> Result<SeriesRef, Refusal> {
        let series = head
            .series(series_ref)
            .ok_or(Refusal::Error(AppendError::UnknownSeries))?;
        // The batch's own newest in-order sample of the series, found through the series'
        // pending slot (no per-sample hash map); batches past the slot's index range keep
        // it in `newest`.
        let newest = match series.pending.index_for(self.batch) {
            None => None,
            Some(PENDING_ELSEWHERE) => self.newest.get(&series_ref).copied(),
            Some(index) => self
                .pending
                .get(index)
                .filter(|sample| sample.series_ref == series_ref)
                .map(|sample| (sample.timestamp, sample.value.to_bits())),
        };
        let (placement, logged) = head.check_append(series, newest, t, v)?;
        match placement {
            Placement::Duplicate => return Ok(series_ref),
            Placement::InOrder => {
                let index = self.pending.len();
                if index >= PENDING_ELSEWHERE {
                    self.newest.insert(series_ref, (t, v.to_bits()));
                }
                series.pending.store(self.batch, index);
            }
            Placement::OutOfOrder => {}
        }
        if !logged {
            self.unlogged.push(series_ref);
        }
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

    /// Makes the batch durable (written to the WAL file), then visible (head). When it
    /// returns `Ok`, the samples survive the process being killed (see the module
    /// documentation for power loss).
    ///
    /// Commits are serialised by the WAL lock, and each applies its samples in the order it
    /// logged them, so replay rebuilds the same head. The usual case — no out-of-order
    /// window, no head truncation and no failed WAL write since the batch began — writes the
    /// batch as it is: its samples were checked when added, and one that a commit in between
    /// made out of order is refused (and counted) when applied, and again on replay, as
    /// Prometheus does. Otherwise every sample is placed again first (series a truncation
    /// removed are re-created, out-of-order ones go to the write-behind log).
    pub fn commit(self) -> Result<CommitStats, TsdbError> {
        if self.pending.is_empty() {
            return Ok(CommitStats::default());
        }
        let Appender {
            tsdb,
            pending,
            unlogged,
            wal_failures,
            registration,
            ..
        } = self;
        tsdb.activity
            .commits_waiting
            .fetch_add(1, Ordering::Relaxed);
        let mut wal = lock(&tsdb.wal);
        tsdb.activity
            .commits_waiting
            .fetch_sub(1, Ordering::Relaxed);
        let mut refused_now = 0u64;
        let (in_order, out_of_order, series_records) = {
            let mut head = tsdb.head.write().unwrap_or_else(|p| p.into_inner());
            let unchanged = head.truncations == registration.epoch
                && head.wal_failures == wal_failures
                && head.ooo_window == 0;
            if unchanged {
                let mut series_records: Vec<(u64, Labels)> = Vec::new();
                for &series_ref in &unlogged {
                    if let Some(series) = head.series_mut(series_ref)
                        && !series.logged
                    {
                        series.logged = true;
                        series_records.push((series_ref, series.labels.clone()));
                    }
                }
                (pending, Vec::new(), series_records)
            } else {
                place_again(tsdb, &mut head, pending, &mut refused_now)
            }
        };
        let written = write_batch(tsdb, &mut wal, &series_records, &in_order, &out_of_order);
        let mut head = tsdb.head.write().unwrap_or_else(|p| p.into_inner());
        if let Err(error) = written {
            // Whether the series records reached the disk is unknown: log them again next time
            // (a repeated Series record is harmless on replay).
            for (series_ref, _) in &series_records {
                if let Some(series) = head.series_mut(*series_ref) {
                    series.logged = false;
                }
            }
            head.wal_failures += 1;
            return Err(error);
        }
        let mut stats = CommitStats {
            rejected: refused_now,
            ..CommitStats::default()
        };
        for sample in &in_order {
            // A head compaction since the placement may have raised the lower bound, or
            // removed the series (while the WAL was written).
            let mut applied = head.append(sample.series_ref, sample.timestamp, sample.value);
            if applied == Err(AppendError::UnknownSeries)
                && recreate_removed(&mut head, sample.series_ref)
            {
                applied = head.append(sample.series_ref, sample.timestamp, sample.value);
            }
            match applied {
                Ok(_) => stats.appended += 1,
                Err(error) => {
                    let error = match error {
                        AppendError::UnknownSeries => AppendError::OutOfBounds,
                        other => other,
                    };
                    tsdb.counters.count(error);
                    stats.rejected += 1;
                }
            }
        }
        for sample in &out_of_order {
            match head.insert_ooo(sample.series_ref, sample.timestamp, sample.value) {
                Ok(true) => {
                    stats.appended += 1;
                    tsdb.counters.ooo_accepted.fetch_add(1, Ordering::Relaxed);
                }
                // The same timestamp is already there: dropped, counted as out of order as
                // Prometheus counts it.
                Ok(false) | Err(_) => {
                    tsdb.counters.count(AppendError::OutOfOrder);
                    stats.rejected += 1;
                }
            }
        }
        drop(head);
        drop(wal);
        drop(registration);
        Ok(stats)
    }
}

/// Re-creates a series a head compaction removed, under its old reference, from the labels
/// the head keeps for it; whether the reference is live again.
fn recreate_removed(head: &mut Head, series_ref: SeriesRef) -> bool {
    match head.removed_labels(series_ref).cloned() {
        Some(labels) => head.insert_series(series_ref, labels) == series_ref,
        None => false,
    }
}

/// The commit's careful path: every pending sample placed again against the head as it is
/// now (commits and compactions may have moved it on since the sample was added), with the
/// same rules as at append time. Returns the in-order samples, the out-of-order ones, and the
/// Series records to write first.
fn place_again(
    tsdb: &Tsdb,
    head: &mut Head,
    mut pending: Vec<RefSample>,
    refused_now: &mut u64,
) -> (Vec<RefSample>, Vec<RefSample>, Vec<(u64, Labels)>) {
    let mut in_order: Vec<RefSample> = Vec::with_capacity(pending.len());
    let mut out_of_order: Vec<RefSample> = Vec::new();
    let mut series_records: Vec<(u64, Labels)> = Vec::new();
    let mut newest: RefMap<(i64, u64)> = RefMap::default();
    // Series re-created under another reference (their labels came back meanwhile).
    let mut remap: RefMap<u64> = RefMap::default();
    let mut head_max = head.max_time().unwrap_or(i64::MIN);
    let half_range = head.chunk_range() / 2;
    let min_valid_time = head.min_valid_time;
    let ooo_window = head.ooo_window;
    for sample in &mut pending {
        if !remap.is_empty()
            && let Some(&now) = remap.get(&sample.series_ref)
        {
            sample.series_ref = now;
        }
        if head.series(sample.series_ref).is_none() {
            // A head compaction dropped the series since the append (it had no samples
            // left): re-create it, under its old reference if still free. Its labels are
            // kept while this batch lives (see `LiveAppenders`).
            let Some(labels) = head.removed_labels(sample.series_ref).cloned() else {
                tsdb.counters.count(AppendError::OutOfBounds);
                *refused_now += 1;
                continue;
            };
            let now = head.insert_series(sample.series_ref, labels);
            if now != sample.series_ref {
                remap.insert(sample.series_ref, now);
                sample.series_ref = now;
            }
        }
        let min_valid = min_valid_time.max(head_max.saturating_sub(half_range));
        let Some(series) = head.series_mut(sample.series_ref) else {
            tsdb.counters.count(AppendError::OutOfBounds);
            *refused_now += 1;
            continue;
        };
        let series_newest = newest
            .get(&sample.series_ref)
            .copied()
            .or_else(|| series.last_sample());
        let placement = place(
            series_newest,
            sample.timestamp,
            sample.value,
            min_valid,
            head_max,
            ooo_window,
        );
        if matches!(placement, Ok(Placement::InOrder | Placement::OutOfOrder)) && !series.logged {
            series.logged = true;
            series_records.push((sample.series_ref, series.labels.clone()));
        }
        match placement {
            Ok(Placement::InOrder) => {
                newest.insert(
                    sample.series_ref,
                    (sample.timestamp, sample.value.to_bits()),
                );
                head_max = head_max.max(sample.timestamp);
                in_order.push(*sample);
            }
            Ok(Placement::OutOfOrder) => out_of_order.push(*sample),
            Ok(Placement::Duplicate) => {}
            Err(refusal) => {
                tsdb.counters.count_refusal(refusal);
                *refused_now += 1;
            }
        }
    }
    (in_order, out_of_order, series_records)
}

/// Writes a batch's records: Series records, in-order samples to the WAL (written to the file), then the
/// out-of-order samples to the write-behind log (after their series are durable in the WAL,
/// which is replayed first).
fn write_batch(
    tsdb: &Tsdb,
    wal: &mut WalWriter,
    series_records: &[(u64, Labels)],
    in_order: &[RefSample],
    out_of_order: &[RefSample],
) -> Result<(), TsdbError> {
    if !series_records.is_empty() {
        wal.log(&record::encode_series(
            series_records.iter().map(|(r, l)| (*r, l)),
        ))?;
    }
    for batch in in_order.chunks(SAMPLES_PER_RECORD) {
        wal.log_samples(batch)?;
    }
    // Written, not fsynced: a killed process loses nothing the page cache has, and
    // Prometheus's commit gives the same guarantee (it fsyncs when a segment is cut). See
    // the module documentation.
    wal.flush()?;
    if !out_of_order.is_empty() {
        let mut guard = lock(&tsdb.wbl);
        let Some(wbl) = guard.as_mut() else {
            return Err(TsdbError::Usage(
                "out-of-order samples without a write-behind log".into(),
            ));
        };
        for batch in out_of_order.chunks(SAMPLES_PER_RECORD) {
            wbl.log_samples(batch)?;
        }
        wbl.flush()?;
    }
    Ok(())
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
                let deleted = block.tombstones().get(id).cloned().unwrap_or_default();
                let mut chunks = Vec::new();
                for meta in series.chunks.iter().filter(|c| {
                    c.max_time >= self.min_time
                        && c.min_time <= self.max_time
                        && !deleted.covers(c.min_time, c.max_time)
                }) {
                    if let Some(bytes) = block.xor_chunk(meta.chunk_ref)? {
                        chunks.push(ChunkData {
                            min_time: meta.min_time,
                            max_time: meta.max_time,
                            bytes,
                            deleted: deleted.clone(),
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
                let deleted: Intervals =
                    head.tombstones.get(series_ref).cloned().unwrap_or_default();
                let mut chunks: Vec<ChunkData> = head
                    .series_chunks(series, self.min_time, self.max_time)?
                    .into_iter()
                    .map(|c| ChunkData {
                        min_time: c.min_time,
                        max_time: c.max_time,
                        bytes: c.data,
                        deleted: deleted.clone(),
                    })
                    .collect();
                chunks.extend(
                    series
                        .ooo_chunks(self.min_time, self.max_time)
                        .into_iter()
                        .map(|c| ChunkData {
                            min_time: c.min_time,
                            max_time: c.max_time,
                            bytes: c.data,
                            deleted: deleted.clone(),
                        }),
                );
                collector.add(series.labels.clone(), chunks);
            }
        }
        Ok(collector.finish(self.min_time, self.max_time).into_iter())
    }

    /// [`Querier::select`] with the samples decoded, for the query engine: block chunks are
    /// read in spans of neighbouring chunks, without checksums, straight into each series'
    /// samples (`querier::read_block_samples`); series without samples in range are left out.
    pub fn select_samples(&self, matchers: &[Matcher]) -> Result<Vec<SeriesSamples>, TsdbError> {
        let mut collector = SamplesCollector::default();
        for block in self.overlapping_blocks() {
            let ids = postings_for_matchers(block.index(), matchers)?;
            read_block_samples(&block, &ids, self.min_time, self.max_time, &mut collector)?;
        }
        let head = self.tsdb.head.read().unwrap_or_else(|p| p.into_inner());
        for series_ref in postings_for_matchers(&*head, matchers)? {
            let Some(series) = head.series(series_ref) else {
                continue;
            };
            let deleted: Intervals = head.tombstones.get(series_ref).cloned().unwrap_or_default();
            let chunk = |c: super::block::BlockChunk| ChunkData {
                min_time: c.min_time,
                max_time: c.max_time,
                bytes: c.data,
                deleted: deleted.clone(),
            };
            let mut chunks: Vec<ChunkData> = head
                .series_chunks(series, self.min_time, self.max_time)?
                .into_iter()
                .map(chunk)
                .collect();
            chunks.extend(
                series
                    .ooo_chunks(self.min_time, self.max_time)
                    .into_iter()
                    .map(chunk),
            );
            chunks.retain(|c| !c.deleted.covers(c.min_time, c.max_time));
            if chunks.is_empty() {
                continue;
            }
            collector.add_series(&Series::new(
                series.labels.clone(),
                chunks,
                self.min_time,
                self.max_time,
            ))?;
        }
        Ok(collector.finish())
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tsdb::index::PostingsSource;
    use crate::tsdb::labels::Matcher;

    fn sample(series_ref: u64, timestamp: i64, value: f64) -> RefSample {
        RefSample {
            series_ref,
            timestamp,
            value,
        }
    }

    /// Every series matching `name="value"` with its samples, as a querier reads them.
    fn select(tsdb: &Tsdb, name: &str, value: &str) -> Vec<(String, Vec<(i64, f64)>)> {
        tsdb.querier(i64::MIN, i64::MAX)
            .select(&[Matcher::equal(name, value)])
            .unwrap()
            .map(|series| (series.labels.to_string(), series.samples().collect()))
            .collect()
    }

    /// Replays `records` as the WAL's only segment.
    fn open_with_wal(records: &[Vec<u8>]) -> (tempfile::TempDir, Tsdb) {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut wal =
                WalWriter::create(&dir.path().join("wal"), 0, DEFAULT_SEGMENT_BYTES).unwrap();
            for record in records {
                wal.log(record).unwrap();
            }
            wal.sync().unwrap();
        }
        let tsdb = Tsdb::open(dir.path(), TsdbOptions::default()).unwrap();
        (dir, tsdb)
    }

    #[test]
    fn replayed_postings_are_sorted_when_records_are_not() {
        let labels = |i: u64| Labels::new([("job", "a".to_string()), ("i", i.to_string())]);
        let (a, b, c, d) = (labels(1), labels(2), labels(3), labels(4));
        let (_dir, tsdb) = open_with_wal(&[
            record::encode_series([(9, &c), (4, &a)]),
            record::encode_series([(7, &b), (4, &a)]),
            record::encode_series([(12, &d)]),
            record::encode_samples(&[sample(4, 10, 1.0), sample(7, 10, 2.0), sample(9, 10, 3.0)]),
            record::encode_samples(&[sample(12, 20, 4.0)]),
        ]);
        assert_eq!(tsdb.replay_report().series, 5);
        assert_eq!(tsdb.replay_report().samples, 4);
        let head = tsdb.head.read().unwrap();
        assert_eq!(
            head.postings("job", "a").unwrap(),
            vec![4, 7, 9, 12],
            "sorted, the repeated record once"
        );
        assert_eq!(head.postings("i", "3").unwrap(), vec![9]);
        drop(head);
        let found = select(&tsdb, "job", "a");
        assert_eq!(found.len(), 4);
        assert_eq!(select(&tsdb, "i", "4")[0].1, vec![(20, 4.0)]);
    }

    #[test]
    fn replayed_postings_follow_the_head_when_records_disagree_with_it() {
        let one = Labels::new([("s", "1")]);
        let two = Labels::new([("s", "2")]);
        let other = Labels::new([("s", "other")]);
        // Series 1's labels again under reference 3 (samples of 3 go to 1); reference 2
        // again with other labels (the first labels keep it).
        let (_dir, tsdb) = open_with_wal(&[
            record::encode_series([(1, &one), (2, &two)]),
            record::encode_series([(3, &one), (2, &other)]),
            record::encode_samples(&[sample(1, 10, 1.0), sample(2, 10, 2.0), sample(3, 20, 3.0)]),
        ]);
        assert_eq!(tsdb.replay_report().samples, 3);
        assert_eq!(
            select(&tsdb, "s", "1"),
            vec![(one.to_string(), vec![(10, 1.0), (20, 3.0)])]
        );
        assert_eq!(
            select(&tsdb, "s", "2"),
            vec![(two.to_string(), vec![(10, 2.0)])]
        );
        assert!(select(&tsdb, "s", "other").is_empty());
        assert_eq!(
            tsdb.querier(i64::MIN, i64::MAX).label_values("s").unwrap(),
            vec!["1", "2"]
        );
        // Appending by labels finds the replayed series.
        let mut appender = tsdb.appender();
        assert_eq!(appender.append(&one, 30, 4.0).unwrap(), 1);
        appender.commit().unwrap();
    }
}
