//! One endpoint's queue: a reader thread tails the WAL (Series records fill the reference →
//! labels cache, external labels and `write_relabel_configs` applied; Samples records are
//! queued), shards (tokio tasks, each with at most `capacity` samples) batch and send them,
//! and a controller recomputes the shard count every 10 s.
//!
//! Nothing is lost to an outage while the WAL still holds the data: shards retry recoverable
//! failures forever with backoff, full shards pause the reader (blocking on the bounded
//! channel), and the shipped position ([`Progress`]) is persisted under
//! `<storage.path>/remote_write/` every few seconds and at shutdown, so a restarted node
//! resumes where its queue stopped. (Prometheus itself starts each queue from "now" after a
//! restart.) A queue with no saved position starts from the end of the WAL, as Prometheus.

use super::client::{QueuedSample, RemoteClient, SendError, SeriesLabels, compress, next_backoff};
use super::metadata::{self, MetadataIndex, MetadataSource};
use super::metrics::{DropReason, QueueMetrics};
use super::progress::Progress;
use super::sharding::{self, EwmaRate, SHARD_UPDATE_INTERVAL, ShardInputs};
use super::wal_tail::{Position, WalTail};
use crate::api::remote_write::proto;
use crate::config::Spanned;
use crate::config::prometheus::{MetadataConfig, NameValidation, QueueConfig, RelabelConfig};
use crate::ingest::relabel::{LabelBuilder, process};
use crate::tsdb::wal::checkpoint;
use crate::tsdb::wal::record::{self, Record};
use crate::tsdb::wal::segment;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot, watch};

/// How often the reader looks for new WAL data when it has read everything.
const POLL_INTERVAL: Duration = Duration::from_millis(20);
/// How often the shipped position is written to disk (and fsynced).
const PERSIST_INTERVAL: Duration = Duration::from_secs(5);
/// The most series one queue caches (a bound on memory against a runaway WAL).
const MAX_SERIES: usize = 50_000_000;
/// How often the targets' metadata that 2.0 series carry is re-read from the scrape manager
/// (cheap: one `Arc` per target), so a new target's series get theirs within seconds.
const METADATA_INDEX_REFRESH: Duration = Duration::from_secs(5);

/// Everything a queue is built from.
#[derive(Debug, Clone)]
pub struct QueueSettings {
    /// `remote_name` in metrics: the config's `name`, or a hash of the config.
    pub remote_name: String,
    pub url: String,
    /// The TSDB's `wal/` folder.
    pub wal_folder: PathBuf,
    /// Where the shipped position is kept.
    pub position_file: PathBuf,
    pub queue: QueueConfig,
    pub metadata: MetadataConfig,
    /// `global.external_labels`; a series' own label of the same name wins.
    pub external_labels: Vec<(String, String)>,
    pub relabel: Vec<Spanned<RelabelConfig>>,
    pub names: NameValidation,
    /// How long a stopping queue may spend sending what it holds before giving up (what it
    /// gave up on is re-read after a restart).
    pub flush_deadline: Duration,
}

/// The persisted position, with the endpoint it belongs to for people reading the file.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct SavedPosition {
    url: String,
    segment: u64,
    offset: u64,
    /// Per shard (a series' shard is its reference modulo their number): every sample of
    /// that shard in a record starting before this position was delivered.
    #[serde(default)]
    delivered: Vec<Position>,
}

/// What a queue keeps across restarts: where to resume, and which samples after that point
/// some shards had already delivered (so they are not sent twice: a receiver such as
/// Prometheus refuses a whole batch holding a sample older than what it has).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Saved {
    pub position: Position,
    pub delivered: Vec<Position>,
}

impl Saved {
    /// Whether the sample of `series_ref` in the record starting at `start` was delivered.
    pub fn was_delivered(&self, series_ref: u64, start: Position) -> bool {
        let shards = self.delivered.len() as u64;
        shards > 0
            && self
                .delivered
                .get((series_ref % shards) as usize)
                .is_some_and(|before| start < *before)
    }
}

/// Reads the saved position; a missing or unreadable file means "none" (logged).
pub fn load_position(path: &Path) -> Option<Saved> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return None,
        Err(error) => {
            tracing::warn!(file = %path.display(), %error, "remote write: cannot read the saved WAL position; starting from now");
            return None;
        }
    };
    match serde_json::from_str::<SavedPosition>(&text) {
        Ok(saved) => Some(Saved {
            position: Position {
                segment: saved.segment,
                offset: saved.offset,
            },
            delivered: saved.delivered,
        }),
        Err(error) => {
            tracing::warn!(file = %path.display(), %error, "remote write: the saved WAL position is damaged; starting from now");
            None
        }
    }
}

/// Writes the position durably: a temporary file, fsynced, renamed over the old one.
pub fn save_position(path: &Path, url: &str, saved: &Saved) -> std::io::Result<()> {
    let folder = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(folder)?;
    let temporary = path.with_extension("tmp");
    let text = serde_json::to_string(&SavedPosition {
        url: url.to_string(),
        segment: saved.position.segment,
        offset: saved.position.offset,
        delivered: saved.delivered.clone(),
    })
    .map_err(std::io::Error::other)?;
    {
        use std::io::Write as _;
        let mut file = std::fs::File::create(&temporary)?;
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
    }
    std::fs::rename(&temporary, path)?;
    std::fs::File::open(folder)?.sync_all()
}

/// A series' labels as sent: external labels under the series' own, then relabeled; `None`
/// when relabeling drops the series.
pub fn series_labels(
    labels: &crate::tsdb::Labels,
    external: &[(String, String)],
    relabel: &[Spanned<RelabelConfig>],
    names: NameValidation,
) -> Option<Vec<(String, String)>> {
    let mut builder = LabelBuilder::from_pairs(external.iter().cloned());
    for (name, value) in labels.iter() {
        builder.set(name.to_owned(), value.to_owned());
    }
    if !process(&mut builder, relabel, names) || builder.is_empty() {
        return None;
    }
    Some(builder.into_pairs())
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

struct Shared {
    settings: QueueSettings,
    client: RemoteClient,
    metrics: Arc<QueueMetrics>,
    progress: Mutex<Progress>,
    /// Set by `stop`: the reader stops reading and flushes.
    stopping: AtomicBool,
    /// Set when the flush deadline passed: shards give up at once.
    abandon: watch::Sender<bool>,
    /// The shard count the controller asks for.
    desired_shards: AtomicUsize,
    /// Per running shard: all its samples in records starting before this were delivered.
    delivered: Mutex<Vec<Position>>,
    /// The targets' metadata 2.0 series carry; refreshed by the metadata task.
    metadata_index: RwLock<Arc<MetadataIndex>>,
}

/// A running queue.
pub struct Queue {
    shared: Arc<Shared>,
    finished: Mutex<Option<oneshot::Receiver<()>>>,
    controller: tokio::task::JoinHandle<()>,
    /// Sends (1.0) or indexes (2.0) the targets' metadata; absent with `send: false` or
    /// without a source.
    metadata: Option<tokio::task::JoinHandle<()>>,
}

impl std::fmt::Debug for Queue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queue")
            .field("remote_name", &self.shared.settings.remote_name)
            .field("url", &self.shared.settings.url)
            .finish()
    }
}

impl Queue {
    /// Starts the reader, the shards, the controller and (with `metadata_config.send` and a
    /// source) the metadata task. Must be called inside a tokio runtime.
    pub fn start(
        settings: QueueSettings,
        client: RemoteClient,
        metadata_source: Option<Arc<dyn MetadataSource>>,
    ) -> Result<Arc<Queue>, String> {
        let queue = &settings.queue;
        let min_shards = queue.min_shards.max(1);
        let metrics = Arc::new(QueueMetrics::new(
            settings.remote_name.clone(),
            settings.url.clone(),
            min_shards,
            queue.max_shards,
            queue.capacity,
            queue.max_samples_per_send,
        ));
        let (abandon, _) = watch::channel(false);
        let shared = Arc::new(Shared {
            progress: Mutex::new(Progress::new(Position {
                segment: 0,
                offset: 0,
            })),
            client,
            metrics,
            stopping: AtomicBool::new(false),
            abandon,
            desired_shards: AtomicUsize::new(min_shards as usize),
            delivered: Mutex::new(Vec::new()),
            metadata_index: RwLock::new(Arc::default()),
            settings,
        });
        let runtime = tokio::runtime::Handle::current();
        let (done, finished) = oneshot::channel();
        let reader_shared = Arc::clone(&shared);
        std::thread::Builder::new()
            .name(format!("remote-write-{}", shared.settings.remote_name))
            .spawn(move || {
                run_reader(&reader_shared, &runtime);
                let _ = done.send(());
            })
            .map_err(|error| format!("cannot start the remote write reader thread: {error}"))?;
        let controller = tokio::spawn(run_controller(Arc::clone(&shared)));
        let metadata = metadata_source
            .filter(|_| shared.settings.metadata.send)
            .map(|source| tokio::spawn(run_metadata(Arc::clone(&shared), source)));
        Ok(Arc::new(Queue {
            shared,
            finished: Mutex::new(Some(finished)),
            controller,
            metadata,
        }))
    }

    pub fn metrics(&self) -> &Arc<QueueMetrics> {
        &self.shared.metrics
    }

    /// The position a restart would resume from.
    pub fn committed_position(&self) -> Position {
        lock(&self.shared.progress).committed()
    }

    /// Stops reading, sends what is queued within the flush deadline, persists the position.
    pub async fn stop(&self) {
        self.shared.stopping.store(true, Ordering::Release);
        self.controller.abort();
        // Metadata is sent again in full every interval: nothing is lost by cutting a send.
        if let Some(metadata) = &self.metadata {
            metadata.abort();
        }
        let Some(mut finished) = lock(&self.finished).take() else {
            return;
        };
        let deadline = self.shared.settings.flush_deadline;
        if tokio::time::timeout(deadline, &mut finished).await.is_err() {
            tracing::warn!(
                remote_name = %self.shared.settings.remote_name,
                "remote write: could not send everything queued before the flush deadline; the rest is sent after the next start"
            );
            let _ = self.shared.abandon.send(true);
            let _ = finished.await;
        }
    }
}

/// Starts one shard task.
fn spawn_shard(
    shared: &Arc<Shared>,
    runtime: &tokio::runtime::Handle,
    index: usize,
) -> (mpsc::Sender<QueuedSample>, tokio::task::JoinHandle<()>) {
    let capacity = usize::try_from(shared.settings.queue.capacity)
        .unwrap_or(usize::MAX)
        .clamp(1, 1 << 24);
    let (sender, receiver) = mpsc::channel(capacity);
    let handle = runtime.spawn(run_shard(Arc::clone(shared), receiver, index));
    (sender, handle)
}

struct Shards {
    senders: Vec<mpsc::Sender<QueuedSample>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Shards {
    fn start(shared: &Arc<Shared>, runtime: &tokio::runtime::Handle, count: usize) -> Shards {
        // The previous shards (if any) were drained: everything before the committed
        // position is delivered, nothing after it was sent by these.
        let committed = lock(&shared.progress).committed();
        *lock(&shared.delivered) = vec![committed; count.max(1)];
        let (senders, tasks) = (0..count.max(1))
            .map(|index| spawn_shard(shared, runtime, index))
            .unzip();
        shared
            .metrics
            .shards
            .store(count.max(1) as u64, Ordering::Relaxed);
        Shards { senders, tasks }
    }

    /// Closes the shards' queues and waits until they sent (or abandoned) what they hold.
    fn stop(self, runtime: &tokio::runtime::Handle) {
        drop(self.senders);
        for task in self.tasks {
            let _ = runtime.block_on(task);
        }
    }
}

/// Where to start reading and from which position on samples are sent.
fn starting_point(shared: &Shared) -> (Position, Option<Saved>) {
    let folder = &shared.settings.wal_folder;
    let segments = segment::list_segments(folder).unwrap_or_default();
    let checkpoint = checkpoint::last_checkpoint(folder).ok().flatten();
    let first_after_checkpoint = segments
        .iter()
        .copied()
        .find(|&n| checkpoint.as_ref().is_none_or(|(c, _)| n > *c))
        .or(segments.first().copied())
        .unwrap_or(0);
    let scan_from = Position {
        segment: first_after_checkpoint,
        offset: 0,
    };
    let saved = load_position(&shared.settings.position_file);
    let last = segments.last().copied();
    let send_from = match (saved, last) {
        (Some(saved), Some(last)) if saved.position.segment > last => {
            tracing::warn!(
                remote_name = %shared.settings.remote_name,
                segment = saved.position.segment,
                "remote write: the saved position is past the end of the WAL (was it reset?); starting from now"
            );
            None
        }
        (Some(saved), _) if saved.position < scan_from => {
            tracing::warn!(
                remote_name = %shared.settings.remote_name,
                saved_segment = saved.position.segment,
                first_segment = scan_from.segment,
                "remote write: the WAL no longer holds the saved position; samples in between are lost for this queue"
            );
            Some(Saved {
                position: scan_from,
                delivered: Vec::new(),
            })
        }
        (saved, _) => saved,
    };
    (scan_from, send_from)
}

/// Reads the series of the last checkpoint into `cache`.
fn read_checkpoint(shared: &Shared, cache: &mut SeriesCache) {
    let Ok(Some((_, folder))) = checkpoint::last_checkpoint(&shared.settings.wal_folder) else {
        return;
    };
    for number in segment::list_segments(&folder).unwrap_or_default() {
        let path = segment::segment_path(&folder, number);
        match segment::read_segment(&path) {
            Ok(contents) => {
                for bytes in &contents.records {
                    if let Ok(Record::Series(series)) = record::decode(bytes) {
                        cache.add(shared, series);
                    }
                }
            }
            Err(error) => {
                tracing::warn!(file = %path.display(), %error, "remote write: cannot read a WAL checkpoint segment");
            }
        }
    }
}

/// Reference → labels as sent (`None`: dropped by relabeling).
#[derive(Default)]
struct SeriesCache(HashMap<u64, Option<SeriesLabels>>);

impl SeriesCache {
    fn add(&mut self, shared: &Shared, series: Vec<(u64, crate::tsdb::Labels)>) {
        let settings = &shared.settings;
        for (series_ref, labels) in series {
            if self.0.len() >= MAX_SERIES && !self.0.contains_key(&series_ref) {
                continue;
            }
            let sent = series_labels(
                &labels,
                &settings.external_labels,
                &settings.relabel,
                settings.names,
            )
            .map(Arc::new);
            self.0.insert(series_ref, sent);
        }
    }
}

fn run_reader(shared: &Arc<Shared>, runtime: &tokio::runtime::Handle) {
    let settings = &shared.settings;
    let mut cache = SeriesCache::default();
    read_checkpoint(shared, &mut cache);
    let (scan_from, saved) = starting_point(shared);
    let mut send_from = saved.as_ref().map(|saved| saved.position);
    let already_delivered = saved.unwrap_or_default();
    let mut tail = WalTail::new(&settings.wal_folder, scan_from);
    // Until `send_from` is known ("now": the end of the WAL as first seen), nothing is sent.
    let from_now = send_from.is_none();
    let mut live = false;
    let mut shard_count = shared.desired_shards.load(Ordering::Relaxed).max(1);
    let mut shards = Shards::start(shared, runtime, shard_count);
    let mut last_persisted: Option<Saved> = None;
    let mut last_persist = Instant::now();
    let persist = |last: &mut Option<Saved>| {
        let saved = Saved {
            position: lock(&shared.progress).committed(),
            delivered: lock(&shared.delivered).clone(),
        };
        if last.as_ref() == Some(&saved) {
            return;
        }
        match save_position(&settings.position_file, &settings.url, &saved) {
            Ok(()) => *last = Some(saved),
            Err(error) => tracing::warn!(
                file = %settings.position_file.display(),
                %error,
                "remote write: cannot save the WAL position"
            ),
        }
    };
    'reading: while !shared.stopping.load(Ordering::Acquire) {
        let desired = shared.desired_shards.load(Ordering::Relaxed).max(1);
        if live && desired != shard_count {
            tracing::info!(remote_name = %settings.remote_name, from = shard_count, to = desired, "remote write: resharding");
            shards.stop(runtime);
            shard_count = desired;
            shards = Shards::start(shared, runtime, shard_count);
        }
        if live && last_persist.elapsed() >= PERSIST_INTERVAL {
            persist(&mut last_persisted);
            last_persist = Instant::now();
        }
        let next = match tail.next_record() {
            Ok(next) => next,
            Err(error) => {
                tracing::warn!(remote_name = %settings.remote_name, %error, "remote write: cannot read the WAL");
                std::thread::sleep(Duration::from_secs(1));
                continue;
            }
        };
        shared
            .metrics
            .wal_damaged_segments
            .store(tail.damaged_segments, Ordering::Relaxed);
        let Some(record) = next else {
            if from_now && send_from.is_none() {
                send_from = Some(tail.position());
            }
            if !live {
                live = true;
                *lock(&shared.progress) = Progress::new(tail.position());
            }
            std::thread::sleep(POLL_INTERVAL);
            continue;
        };
        let sending = send_from.is_some_and(|from| record.start >= from);
        if sending && !live {
            live = true;
            *lock(&shared.progress) = Progress::new(record.start);
        }
        match record::decode(&record.bytes) {
            Ok(Record::Series(series)) => {
                cache.add(shared, series);
                if live {
                    lock(&shared.progress).begin_record(record.start, record.end, 0);
                }
            }
            Ok(Record::Samples(samples)) if sending => {
                let metrics = &shared.metrics;
                metrics
                    .samples_in
                    .fetch_add(samples.len() as u64, Ordering::Relaxed);
                let mut queued = Vec::with_capacity(samples.len());
                let mut highest = i64::MIN;
                for sample in samples {
                    highest = highest.max(sample.timestamp);
                    if already_delivered.was_delivered(sample.series_ref, record.start) {
                        continue;
                    }
                    match cache.0.get(&sample.series_ref) {
                        Some(Some(labels)) => queued.push((sample, Arc::clone(labels))),
                        Some(None) => metrics.add_dropped(DropReason::DroppedSeries, 1),
                        None => metrics.add_dropped(DropReason::UnintentionallyDroppedSeries, 1),
                    }
                }
                metrics
                    .highest_read_ms
                    .fetch_max(highest, Ordering::Relaxed);
                let number = lock(&shared.progress).begin_record(
                    record.start,
                    record.end,
                    queued.len() as u64,
                );
                for (sample, labels) in queued {
                    let shard = (sample.series_ref % shard_count as u64) as usize;
                    let item = QueuedSample {
                        series: labels,
                        series_ref: sample.series_ref,
                        timestamp: sample.timestamp,
                        value: sample.value,
                        record: number,
                        record_start: record.start,
                    };
                    metrics.samples_pending.fetch_add(1, Ordering::Relaxed);
                    // Blocks while the shard is full: that is what pauses reading.
                    if shards.senders[shard].blocking_send(item).is_err() {
                        metrics.samples_pending.fetch_sub(1, Ordering::Relaxed);
                        break 'reading;
                    }
                }
            }
            Ok(_) => {
                if live {
                    lock(&shared.progress).begin_record(record.start, record.end, 0);
                }
            }
            Err(error) => {
                tracing::warn!(
                    remote_name = %settings.remote_name,
                    segment = record.start.segment,
                    offset = record.start.offset,
                    %error,
                    "remote write: undecodable WAL record skipped"
                );
                if live {
                    lock(&shared.progress).begin_record(record.start, record.end, 0);
                }
            }
        }
    }
    shards.stop(runtime);
    if live {
        persist(&mut last_persisted);
    }
    tracing::info!(remote_name = %settings.remote_name, "remote write queue stopped");
}

/// Marks a batch done in the progress tracker and the pending gauge.
fn finish(shared: &Shared, shard: usize, batch: &[QueuedSample]) {
    if let Some(last) = batch.last() {
        // The last record may have more of this shard's samples in the next batch; all
        // records before it are done for this shard.
        if let Some(mark) = lock(&shared.delivered).get_mut(shard) {
            *mark = (*mark).max(last.record_start);
        }
    }
    shared
        .metrics
        .samples_pending
        .fetch_sub(batch.len() as i64, Ordering::Relaxed);
    let mut progress = lock(&shared.progress);
    let mut run: Option<(u64, u64)> = None;
    for sample in batch {
        match &mut run {
            Some((record, count)) if *record == sample.record => *count += 1,
            _ => {
                if let Some((record, count)) = run.take() {
                    progress.finish(record, count);
                }
                run = Some((sample.record, 1));
            }
        }
    }
    if let Some((record, count)) = run {
        progress.finish(record, count);
    }
}

async fn run_shard(shared: Arc<Shared>, mut receiver: mpsc::Receiver<QueuedSample>, index: usize) {
    let settings = &shared.settings.queue;
    let max = usize::try_from(settings.max_samples_per_send)
        .unwrap_or(usize::MAX)
        .clamp(1, 1 << 20);
    let deadline = settings.batch_send_deadline.as_std();
    let mut abandon = shared.abandon.subscribe();
    let mut batch: Vec<QueuedSample> = Vec::with_capacity(max);
    let mut closed = false;
    while !closed {
        if batch.is_empty() {
            tokio::select! {
                received = receiver.recv_many(&mut batch, max) => {
                    if received == 0 {
                        return;
                    }
                }
                _ = abandon.wait_for(|stop| *stop) => return,
            }
        }
        let flush_at = tokio::time::Instant::now() + deadline;
        while batch.len() < max {
            let room = max - batch.len();
            tokio::select! {
                received = receiver.recv_many(&mut batch, room) => {
                    if received == 0 {
                        closed = true;
                        break;
                    }
                }
                _ = tokio::time::sleep_until(flush_at) => break,
                _ = abandon.wait_for(|stop| *stop) => return,
            }
        }
        if !send_batch(&shared, index, &mut batch, &mut abandon).await {
            return;
        }
        batch.clear();
    }
}

/// Sends a batch until it is accepted or refused for good; `false` when abandoned.
async fn send_batch(
    shared: &Shared,
    shard: usize,
    batch: &mut Vec<QueuedSample>,
    abandon: &mut watch::Receiver<bool>,
) -> bool {
    let metrics = &shared.metrics;
    let queue = &shared.settings.queue;
    let mut backoff = queue.min_backoff.as_std();
    let age_limit_ms = i64::try_from(queue.sample_age_limit.as_millis()).unwrap_or(i64::MAX);
    let mut encoded: Option<(bytes::Bytes, bool)> = None;
    loop {
        if age_limit_ms > 0 {
            let oldest = now_ms().saturating_sub(age_limit_ms);
            let (old, fresh): (Vec<_>, Vec<_>) = batch
                .drain(..)
                .partition(|sample| sample.timestamp < oldest);
            if !old.is_empty() {
                metrics.add_dropped(DropReason::TooOld, old.len() as u64);
                finish(shared, shard, &old);
                encoded = None;
            }
            *batch = fresh;
        }
        if batch.is_empty() {
            return true;
        }
        let (body, v2) = match &encoded {
            Some((body, v2)) if *v2 == shared.client.speaks_v2() => (body.clone(), *v2),
            _ => {
                let index = Arc::clone(
                    &shared
                        .metadata_index
                        .read()
                        .unwrap_or_else(|poisoned| poisoned.into_inner()),
                );
                let (body, v2) = shared.client.encode(batch, &index);
                let body = bytes::Bytes::from(body);
                encoded = Some((body.clone(), v2));
                (body, v2)
            }
        };
        let size = body.len() as u64;
        let started = Instant::now();
        let result = tokio::select! {
            result = shared.client.send(body, v2) => result,
            _ = abandon.wait_for(|stop| *stop) => return false,
        };
        let elapsed = started.elapsed();
        metrics.batch_duration.observe(elapsed.as_secs_f64());
        metrics.send_nanos.fetch_add(
            u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
        let count = batch.len() as u64;
        match result {
            Ok(()) => {
                metrics.samples_sent.fetch_add(count, Ordering::Relaxed);
                metrics.bytes_sent.fetch_add(size, Ordering::Relaxed);
                let highest = batch.iter().map(|s| s.timestamp).max().unwrap_or(i64::MIN);
                metrics
                    .highest_sent_ms
                    .fetch_max(highest, Ordering::Relaxed);
                metrics.last_success_ms.store(now_ms(), Ordering::Relaxed);
                finish(shared, shard, batch);
                return true;
            }
            Err(SendError::UnsupportedProtocol) => {
                // Re-encoded as 1.0 and sent again at once.
                metrics.samples_retried.fetch_add(count, Ordering::Relaxed);
            }
            Err(SendError::Rejected { status, message }) => {
                tracing::error!(
                    remote_name = %shared.settings.remote_name,
                    url = %shared.settings.url,
                    status,
                    %message,
                    samples = count,
                    "remote write: non-recoverable error, batch dropped"
                );
                metrics.samples_failed.fetch_add(count, Ordering::Relaxed);
                finish(shared, shard, batch);
                return true;
            }
            Err(SendError::Recoverable {
                message,
                retry_after,
            }) => {
                let retry = Retry {
                    what: "samples",
                    count,
                    message: &message,
                    retry_after,
                };
                let Some(next) = wait_to_retry(shared, retry, backoff, abandon).await else {
                    return false;
                };
                metrics.samples_retried.fetch_add(count, Ordering::Relaxed);
                backoff = next;
            }
        }
    }
}

/// A recoverable send failure: what was being sent, how many entries, why it failed, and the
/// server's `Retry-After` if it gave one.
struct Retry<'a> {
    what: &'static str,
    count: u64,
    message: &'a str,
    retry_after: Option<Duration>,
}

/// Logs a recoverable failure and waits out the backoff before the next attempt; returns the
/// backoff after that one, or `None` when the queue was abandoned meanwhile.
async fn wait_to_retry(
    shared: &Shared,
    retry: Retry<'_>,
    backoff: Duration,
    abandon: &mut watch::Receiver<bool>,
) -> Option<Duration> {
    tracing::warn!(
        remote_name = %shared.settings.remote_name,
        url = %shared.settings.url,
        error = %retry.message,
        count = retry.count,
        "remote write: failed to send {}, retrying",
        retry.what
    );
    let max_backoff = shared.settings.queue.max_backoff.as_std();
    let (sleep, next) = next_backoff(backoff, retry.retry_after, max_backoff);
    tokio::select! {
        _ = tokio::time::sleep(sleep) => Some(next),
        _ = abandon.wait_for(|stop| *stop) => None,
    }
}

/// The metadata task: every `send_interval`, while the endpoint speaks 1.0, sends the
/// targets' metadata (Prometheus 2.42's metadata watcher); every few seconds, while it speaks
/// 2.0, rebuilds the index the shards' encoder takes per-series metadata from. Checking the
/// protocol at each tick follows a 415 fallback from 2.0 to 1.0.
async fn run_metadata(shared: Arc<Shared>, source: Arc<dyn MetadataSource>) {
    use tokio::time::{Instant, MissedTickBehavior, interval, interval_at};
    // Validation refuses a zero interval; the floor keeps `interval` from panicking anyway.
    let send_every = shared
        .settings
        .metadata
        .send_interval
        .as_std()
        .max(Duration::from_millis(1));
    let mut sends = interval_at(Instant::now() + send_every, send_every);
    sends.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut refreshes = interval(METADATA_INDEX_REFRESH);
    refreshes.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = sends.tick() => {
                if !shared.client.speaks_v2() {
                    let entries = metadata::collect(&source.active_targets_metadata());
                    send_metadata(&shared, &entries).await;
                }
            }
            _ = refreshes.tick() => {
                if shared.client.speaks_v2() {
                    let index = MetadataIndex::new(source.active_targets_metadata());
                    *shared
                        .metadata_index
                        .write()
                        .unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::new(index);
                }
            }
        }
    }
}

/// Sends metadata entries as 1.0 requests of at most `max_samples_per_send` each, one after
/// the other; recoverable failures are retried with the queue's backoff (until the queue
/// stops or is abandoned), others drop the request's entries and count them failed.
async fn send_metadata(shared: &Shared, entries: &[proto::MetricMetadata]) {
    let metrics = &shared.metrics;
    let queue = &shared.settings.queue;
    let mut abandon = shared.abandon.subscribe();
    let per_request = usize::try_from(shared.settings.metadata.max_samples_per_send)
        .unwrap_or(usize::MAX)
        .clamp(1, 1 << 20);
    for request in entries.chunks(per_request) {
        let body = bytes::Bytes::from(compress(&metadata::encode_v1(request)));
        let count = request.len() as u64;
        let mut backoff = queue.min_backoff.as_std();
        loop {
            let started = Instant::now();
            let result = shared.client.send(body.clone(), false).await;
            metrics
                .batch_duration
                .observe(started.elapsed().as_secs_f64());
            match result {
                Ok(()) => {
                    metrics.metadata_sent.fetch_add(count, Ordering::Relaxed);
                    metrics
                        .metadata_bytes
                        .fetch_add(body.len() as u64, Ordering::Relaxed);
                    break;
                }
                Err(SendError::Recoverable {
                    message,
                    retry_after,
                }) => {
                    metrics.metadata_retried.fetch_add(count, Ordering::Relaxed);
                    let retry = Retry {
                        what: "metadata",
                        count,
                        message: &message,
                        retry_after,
                    };
                    let Some(next) = wait_to_retry(shared, retry, backoff, &mut abandon).await
                    else {
                        return;
                    };
                    backoff = next;
                }
                Err(error) => {
                    tracing::error!(
                        remote_name = %shared.settings.remote_name,
                        url = %shared.settings.url,
                        %error,
                        entries = count,
                        "remote write: non-recoverable error while sending metadata"
                    );
                    metrics.metadata_failed.fetch_add(count, Ordering::Relaxed);
                    break;
                }
            }
        }
    }
}

/// Every 10 s: folds the last interval into the rates and asks for a new shard count.
async fn run_controller(shared: Arc<Shared>) {
    let metrics = &shared.metrics;
    let queue = &shared.settings.queue;
    let (mut samples_in, mut samples_out, mut dropped, mut send_seconds) = (
        EwmaRate::default(),
        EwmaRate::default(),
        EwmaRate::default(),
        EwmaRate::default(),
    );
    let read = || {
        (
            metrics.samples_in.load(Ordering::Relaxed),
            metrics.samples_sent.load(Ordering::Relaxed),
            metrics.dropped_total(),
            metrics.send_nanos.load(Ordering::Relaxed),
        )
    };
    let mut previous = read();
    let mut ticks = tokio::time::interval(SHARD_UPDATE_INTERVAL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.tick().await;
    loop {
        ticks.tick().await;
        let current = read();
        let interval = SHARD_UPDATE_INTERVAL.as_secs_f64();
        samples_in.tick(current.0.saturating_sub(previous.0) as f64, interval);
        samples_out.tick(current.1.saturating_sub(previous.1) as f64, interval);
        dropped.tick(current.2.saturating_sub(previous.2) as f64, interval);
        send_seconds.tick(current.3.saturating_sub(previous.3) as f64 / 1e9, interval);
        previous = current;
        let seconds = |ms: i64| {
            if ms == i64::MIN {
                0.0
            } else {
                ms as f64 / 1000.0
            }
        };
        let inputs = ShardInputs {
            in_rate: samples_in.rate(),
            out_rate: samples_out.rate(),
            dropped_rate: dropped.rate(),
            send_seconds_rate: send_seconds.rate(),
            highest_received: seconds(metrics.highest_read_ms.load(Ordering::Relaxed)),
            highest_sent: seconds(metrics.highest_sent_ms.load(Ordering::Relaxed)),
        };
        let running = metrics.shards.load(Ordering::Relaxed) as usize;
        let (raw, wanted) = sharding::desired_shards(
            inputs,
            running,
            queue.min_shards.max(1) as usize,
            queue.max_shards as usize,
        );
        metrics.set_shards_desired(raw);
        let deadline_ms = i64::try_from(queue.batch_send_deadline.as_millis()).unwrap_or(i64::MAX);
        if sharding::should_reshard(
            wanted,
            running,
            metrics.last_success_ms.load(Ordering::Relaxed),
            now_ms(),
            deadline_ms,
        ) {
            shared.desired_shards.store(wanted, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::api::remote_write::wire;
    use crate::config::prometheus::RemoteWriteConfig;
    use crate::tsdb::Labels;
    use crate::tsdb::wal::record::{RefSample, encode_samples, encode_series};
    use crate::tsdb::wal::segment::WalWriter;

    /// What the test receiver saw: per request the protocol version header and the samples
    /// as `labels@timestamp=value`.
    type Seen = Arc<Mutex<Vec<(String, Vec<String>)>>>;

    /// A receiver answering `statuses` in turn, then 204.
    async fn receiver(statuses: Vec<u16>) -> (String, Seen) {
        use axum::body::Bytes;
        use axum::http::{HeaderMap, StatusCode};
        let seen: Seen = Arc::default();
        let answers = Arc::new(Mutex::new(std::collections::VecDeque::from(statuses)));
        let recorded = Arc::clone(&seen);
        let handler = move |headers: HeaderMap, body: Bytes| {
            let recorded = Arc::clone(&recorded);
            let answers = Arc::clone(&answers);
            async move {
                let version = headers
                    .get("x-prometheus-remote-write-version")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_string();
                let raw = snap::raw::Decoder::new().decompress_vec(&body).unwrap();
                let request = if version.starts_with("2.") {
                    wire::decode_v2(&raw).unwrap()
                } else {
                    wire::decode_v1(&raw).unwrap()
                };
                let samples = request
                    .flat_samples()
                    .into_iter()
                    .map(|(labels, timestamp, value)| format!("{labels}@{timestamp}={value}"))
                    .collect();
                lock(&recorded).push((version, samples));
                let status = lock(&answers).pop_front().unwrap_or(204);
                StatusCode::from_u16(status).unwrap()
            }
        };
        let app = axum::Router::new().route("/push", axum::routing::post(handler));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        (format!("http://{address}/push"), seen)
    }

    /// A WAL with two series (one of them relabeled away) and samples for both and for an
    /// unknown reference.
    fn write_wal(folder: &Path) {
        let mut writer = WalWriter::create(folder, 0, 1 << 20).unwrap();
        let kept = Labels::new([("__name__", "shipped"), ("job", "own")]);
        let dropped = Labels::new([("__name__", "drop_me")]);
        writer
            .log(&encode_series([(1, &kept), (2, &dropped)]))
            .unwrap();
        for t in 1..=5 {
            let samples: Vec<RefSample> = [1, 2, 9]
                .into_iter()
                .map(|series_ref| RefSample {
                    series_ref,
                    timestamp: t * 1000,
                    value: t as f64,
                })
                .collect();
            writer.log(&encode_samples(&samples)).unwrap();
        }
        writer.sync().unwrap();
    }

    async fn start(dir: &Path, yaml: &str) -> Arc<Queue> {
        let config: Spanned<RemoteWriteConfig> =
            crate::config::parse_document(yaml, "w.yml").unwrap();
        let config = config.value;
        let position_file = dir.join("position.json");
        save_position(&position_file, "test", &Saved::default()).unwrap();
        let settings = QueueSettings {
            remote_name: "test".into(),
            url: config.url.value.clone(),
            wal_folder: dir.join("wal"),
            position_file,
            queue: config.queue_config.clone(),
            metadata: config.metadata_config.clone(),
            external_labels: vec![
                ("job".into(), "external".into()),
                ("replica".into(), "r1".into()),
            ],
            relabel: config.write_relabel_configs.clone(),
            names: NameValidation::Utf8,
            flush_deadline: Duration::from_secs(2),
        };
        let client = RemoteClient::new(&config, dir).unwrap();
        Queue::start(settings, client, None).unwrap()
    }

    async fn wait_for(what: &str, condition: impl Fn() -> bool) {
        for _ in 0..500 {
            if condition() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("timed out waiting for {what}");
    }

    fn config(url: &str, extra: &str) -> String {
        format!(
            "url: {url}\nqueue_config:\n  batch_send_deadline: 50ms\n  min_backoff: 10ms\n  max_backoff: 20ms\n{extra}write_relabel_configs:\n  - source_labels: [__name__]\n    regex: drop_me\n    action: drop\n"
        )
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn relabels_adds_external_labels_and_falls_back_to_1_0_on_415() {
        let dir = tempfile::tempdir().unwrap();
        write_wal(&dir.path().join("wal"));
        let (url, seen) = receiver(vec![415]).await;
        let yaml = config(&url, "protobuf_message: io.prometheus.write.v2.Request\n");
        let queue = start(dir.path(), &yaml).await;
        let metrics = Arc::clone(queue.metrics());
        wait_for("5 samples sent", || {
            metrics.samples_sent.load(Ordering::Relaxed) == 5
        })
        .await;
        queue.stop().await;
        let seen = lock(&seen).clone();
        assert_eq!(seen[0].0, "2.0.0", "the first request is 2.0");
        assert!(seen[1..].iter().all(|(version, _)| version == "0.1.0"));
        let shipped: Vec<String> = seen[1..].iter().flat_map(|(_, s)| s.clone()).collect();
        assert_eq!(
            shipped,
            (1..=5)
                .map(|t| format!("__name__=shipped,job=own,replica=r1@{}={t}", t * 1000))
                .collect::<Vec<_>>(),
            "the series' own job wins over the external one; drop_me is not sent"
        );
        assert_eq!(metrics.samples_retried.load(Ordering::Relaxed), 5);
        assert_eq!(metrics.dropped(DropReason::DroppedSeries), 5);
        assert_eq!(metrics.dropped(DropReason::UnintentionallyDroppedSeries), 5);
        assert_eq!(metrics.highest_sent_ms.load(Ordering::Relaxed), 5000);
        assert_eq!(metrics.samples_failed.load(Ordering::Relaxed), 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn client_errors_drop_and_count_server_errors_retry() {
        // 400 for everything: failed, not retried, and the position moves past them.
        let dir = tempfile::tempdir().unwrap();
        write_wal(&dir.path().join("wal"));
        let (url, seen) = receiver(vec![400; 100]).await;
        let queue = start(dir.path(), &config(&url, "")).await;
        let metrics = Arc::clone(queue.metrics());
        wait_for("5 samples failed", || {
            metrics.samples_failed.load(Ordering::Relaxed) == 5
        })
        .await;
        queue.stop().await;
        assert_eq!(metrics.samples_retried.load(Ordering::Relaxed), 0);
        assert_eq!(metrics.samples_sent.load(Ordering::Relaxed), 0);
        let saved = load_position(&dir.path().join("position.json"))
            .unwrap()
            .position;
        let end = std::fs::metadata(dir.path().join("wal/00000000"))
            .unwrap()
            .len();
        assert_eq!(
            saved,
            Position {
                segment: 0,
                offset: end
            }
        );
        assert!(!lock(&seen).is_empty());

        // 503 three times, then accepted: retried, all sent in order.
        let dir = tempfile::tempdir().unwrap();
        write_wal(&dir.path().join("wal"));
        let (url, seen) = receiver(vec![503, 503, 503]).await;
        let queue = start(dir.path(), &config(&url, "")).await;
        let metrics = Arc::clone(queue.metrics());
        wait_for("5 samples sent", || {
            metrics.samples_sent.load(Ordering::Relaxed) == 5
        })
        .await;
        queue.stop().await;
        assert!(metrics.samples_retried.load(Ordering::Relaxed) >= 3);
        assert_eq!(metrics.samples_failed.load(Ordering::Relaxed), 0);
        let accepted: Vec<String> = lock(&seen)[3..]
            .iter()
            .flat_map(|(_, s)| s.clone())
            .collect();
        assert_eq!(accepted.len(), 5);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_outage_at_shutdown_keeps_the_position_before_the_unsent_samples() {
        let dir = tempfile::tempdir().unwrap();
        write_wal(&dir.path().join("wal"));
        let (url, _seen) = receiver(vec![503; 10_000]).await;
        let queue = start(dir.path(), &config(&url, "")).await;
        let metrics = Arc::clone(queue.metrics());
        wait_for("retries", || {
            metrics.samples_retried.load(Ordering::Relaxed) > 0
        })
        .await;
        queue.stop().await;
        let saved = load_position(&dir.path().join("position.json"))
            .unwrap()
            .position;
        // The series record is before the first samples record: resuming re-reads all samples.
        let mut tail = WalTail::new(
            &dir.path().join("wal"),
            Position {
                segment: 0,
                offset: 0,
            },
        );
        let _series = tail.next_record().unwrap().unwrap();
        let first_samples = tail.next_record().unwrap().unwrap();
        assert_eq!(saved, first_samples.start);
    }

    #[test]
    fn samples_a_shard_delivered_are_not_sent_again() {
        let at = |offset| Position { segment: 1, offset };
        let saved = Saved {
            position: at(100),
            delivered: vec![at(300), at(100)],
        };
        // Shard 0 (even references) delivered the records starting before 300.
        assert!(saved.was_delivered(4, at(200)));
        assert!(!saved.was_delivered(4, at(300)));
        // Shard 1 had delivered nothing after the saved position.
        assert!(!saved.was_delivered(5, at(100)));
        assert!(!Saved::default().was_delivered(4, at(0)));
        // The file round-trips.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("remote_write/x.json");
        save_position(&path, "http://x", &saved).unwrap();
        assert_eq!(load_position(&path), Some(saved));
        std::fs::write(&path, "{").unwrap();
        assert_eq!(load_position(&path), None);
    }

    #[test]
    fn external_labels_never_override_and_relabeling_can_drop() {
        let labels = Labels::new([("__name__", "up"), ("job", "a")]);
        let external = vec![
            ("job".to_string(), "x".to_string()),
            ("dc".to_string(), "eu".to_string()),
        ];
        let sent = series_labels(&labels, &external, &[], NameValidation::Utf8).unwrap();
        assert_eq!(
            sent,
            vec![
                ("__name__".to_string(), "up".to_string()),
                ("dc".to_string(), "eu".to_string()),
                ("job".to_string(), "a".to_string()),
            ]
        );
        let drop: Vec<Spanned<RelabelConfig>> = vec![
            crate::config::parse_document(
                "source_labels: [dc]\nregex: eu\naction: drop\n",
                "r.yml",
            )
            .unwrap(),
        ];
        assert_eq!(
            series_labels(&labels, &external, &drop, NameValidation::Utf8),
            None
        );
    }
}
