//! The shell around the alerting pipeline: holds it behind a lock, makes silences and
//! notification-log entries durable (fsynced) before anything is acknowledged, drives the group
//! timers from the wall clock, and hands notifications to delivery.

use super::receivers::Integrations;
use crate::alerting::groups::{GroupLimits, alertmanager_order};
use crate::alerting::nflog::{Entry, Nflog, NflogLimits};
use crate::alerting::pipeline::{Effect, Notification, Pipeline};
use crate::alerting::replica::Change;
use crate::alerting::silences::{SilenceError, SilenceLimits, SilenceSpec, Silences, codec};
use crate::alerting::store::{StoreError, StoreLimits};
use crate::alerting::{Alert, PostedAlert};
use crate::config::LoadedConfig;
use crate::state_log::{StateLog, StateLogError, StateLogOptions};
use anyhow::Context as _;
use jiff::{SignedDuration, Timestamp};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, RwLock};
use std::time::Duration;
use tocsin_receivers::data::{AlertData, AlertStatus, NotificationData};
use tocsin_receivers::retry::RetryPolicy;

/// Alertmanager's default retention of silences and notification-log entries.
const RETENTION: SignedDuration = SignedDuration::from_hours(120);
/// How often resolved alerts, old silences and log entries are dropped.
const GC_INTERVAL: Duration = Duration::from_secs(30);
/// The longest the timer loop sleeps, so a clock jump is noticed soon.
const MAX_SLEEP: Duration = Duration::from_secs(1);
/// A notification due right at its group's next flush still gets this long to be delivered.
const MIN_DELIVERY_TIME: Duration = Duration::from_secs(10);
/// Deliveries in flight at once, across all integrations.
const MAX_DELIVERIES_IN_FLIGHT: usize = 64;
/// Notification-log entries waiting for the writer, at most.
const NFLOG_QUEUE: usize = 65_536;
/// The most entries one fsync covers.
const NFLOG_BATCH: usize = 4_096;
/// A state log larger than this is compacted into a snapshot of the live state.
const COMPACT_AT_BYTES: u64 = 16 << 20;

/// Why posted alerts were not all taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostRejected {
    /// One line per refused alert: its index in the request and what was wrong.
    pub errors: Vec<String>,
    /// A store limit was hit: the client should retry later (HTTP 429), not fix its request.
    pub limit_reached: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum SilenceWriteError {
    #[error(transparent)]
    Invalid(#[from] SilenceError),
    #[error("cannot store the silence durably: {0}")]
    Storage(#[from] StateLogError),
    #[error("cannot encode the silence: {0}")]
    Encoding(String),
}

/// Changes waiting to be sent to peers, at most; past this the periodic anti-entropy repairs.
pub(super) const REPLICATION_QUEUE: usize = 65_536;

/// What delivery needs from the configuration; replaced whole on reload.
struct Delivery {
    integrations: Integrations,
    external_url: String,
}

pub struct AlertingRuntime {
    pipeline: Mutex<Pipeline>,
    delivery: RwLock<Arc<Delivery>>,
    silence_log: Mutex<StateLog>,
    nflog_log: Arc<Mutex<StateLog>>,
    /// Entries on their way to `nflog_log`: one writer task appends and fsyncs them in batches
    /// (group commit), so deliveries do not queue behind one fsync each.
    nflog_writes: tokio::sync::mpsc::Sender<NflogWrite>,
    /// Taken by `run`, which starts the writer.
    nflog_writes_receiver: Mutex<Option<tokio::sync::mpsc::Receiver<NflogWrite>>>,
    /// Deliveries in flight at once, at most: a burst of due groups must not open thousands of
    /// connections together (receivers drop SYNs and everything waits a retransmit).
    delivery_slots: Arc<tokio::sync::Semaphore>,
    /// Woken when input may have moved a group timer earlier.
    wake: tokio::sync::Notify,
    /// Where changes go to be replicated; unset on a node that runs alone.
    replication: OnceLock<tokio::sync::mpsc::Sender<Change>>,
    /// False while a clustered node settles: no notification leaves it until it synced with its
    /// peers (see `node::cluster`).
    may_notify: tokio::sync::watch::Sender<bool>,
    /// Changes dropped because the replication queue was full.
    pub replication_dropped: std::sync::atomic::AtomicU64,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Sixteen random bytes for a silence id, from the operating system.
fn random_id_bytes() -> [u8; 16] {
    let mut bytes = [0u8; 16];
    if getrandom::fill(&mut bytes).is_err() {
        // Without OS randomness, time-derived bytes still give distinct ids on one node.
        let nanos = Timestamp::now().as_nanosecond().to_le_bytes();
        bytes.copy_from_slice(&nanos);
    }
    bytes
}

impl AlertingRuntime {
    /// Opens the silences and notification log under `storage`, replaying what is on disk.
    pub fn open(
        storage: &Path,
        loaded: &LoadedConfig,
        external_url: &str,
        now: Timestamp,
    ) -> anyhow::Result<AlertingRuntime> {
        let config = &loaded.alertmanager;
        let delivery =
            build_delivery(loaded, external_url).map_err(|error| anyhow::anyhow!(error))?;
        let options = StateLogOptions::default();
        let mut silences = Silences::new(SilenceLimits::default(), RETENTION);
        let mut refused = 0usize;
        let (silence_log, recovery) =
            StateLog::open(&storage.join("silences"), &options, |record| {
                if silences.restore_record(record, now).is_err() {
                    refused += 1;
                }
            })
            .context("cannot open the silences log")?;
        silences.gc(now);
        report_recovery("silences", &recovery, refused);

        let mut nflog = Nflog::new(NflogLimits::default());
        let mut refused = 0usize;
        let (nflog_log, recovery) = StateLog::open(&storage.join("nflog"), &options, |record| {
            let merged = Entry::decode(record)
                .ok()
                .map(|entry| nflog.merge(entry, now));
            if !matches!(merged, Some(Ok(_))) {
                refused += 1;
            }
        })
        .context("cannot open the notification log")?;
        nflog.gc(now);
        report_recovery("notification log", &recovery, refused);

        let pipeline = Pipeline::new(
            config,
            StoreLimits::default(),
            GroupLimits::default(),
            silences,
            nflog,
        );
        let (nflog_writes, nflog_writes_receiver) = tokio::sync::mpsc::channel(NFLOG_QUEUE);
        Ok(AlertingRuntime {
            pipeline: Mutex::new(pipeline),
            delivery: RwLock::new(Arc::new(delivery)),
            silence_log: Mutex::new(silence_log),
            nflog_log: Arc::new(Mutex::new(nflog_log)),
            nflog_writes,
            nflog_writes_receiver: Mutex::new(Some(nflog_writes_receiver)),
            delivery_slots: Arc::new(tokio::sync::Semaphore::new(MAX_DELIVERIES_IN_FLIGHT)),
            wake: tokio::sync::Notify::new(),
            replication: OnceLock::new(),
            may_notify: tokio::sync::watch::Sender::new(true),
            replication_dropped: std::sync::atomic::AtomicU64::new(0),
        })
    }

    /// Makes this node replicate its changes into `sender`, and hold notifications until
    /// [`AlertingRuntime::set_may_notify`] says the node has settled.
    pub fn join_cluster(&self, sender: tokio::sync::mpsc::Sender<Change>) {
        let _ = self.replication.set(sender);
        self.may_notify.send_replace(false);
    }

    pub fn set_may_notify(&self, may_notify: bool) {
        self.may_notify.send_replace(may_notify);
        self.wake.notify_one();
    }

    pub fn may_notify(&self) -> bool {
        *self.may_notify.borrow()
    }

    /// Queues a change for the peers; never blocks (a full queue drops it and counts it).
    pub fn replicate(&self, change: Change) {
        if let Some(sender) = self.replication.get()
            && sender.try_send(change).is_err()
        {
            self.replication_dropped
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }

    fn is_replicating(&self) -> bool {
        self.replication.get().is_some()
    }

    /// Wakes the timer loop: a merge from a peer may have moved a timer earlier.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// The delivery settings in force; a reload replaces them whole.
    fn current_delivery(&self) -> Arc<Delivery> {
        Arc::clone(
            &self
                .delivery
                .read()
                .unwrap_or_else(|poisoned| poisoned.into_inner()),
        )
    }

    /// Runs `read` with the pipeline locked: for the API's views.
    pub fn read<R>(&self, read: impl FnOnce(&mut Pipeline) -> R) -> R {
        read(&mut lock(&self.pipeline))
    }

    /// Takes a reloaded configuration. Fails, changing nothing, if a receiver cannot be built
    /// (an unreadable `*_file`, a bad certificate).
    pub fn apply_config(&self, loaded: &LoadedConfig, external_url: &str) -> Result<(), String> {
        let mut delivery = build_delivery(loaded, external_url)?;
        // Counters of integrations that survive the reload keep counting, as Prometheus expects.
        let previous = self.current_delivery();
        delivery
            .integrations
            .carry_stats_from(&previous.integrations);
        lock(&self.pipeline).apply_config(&loaded.alertmanager, Timestamp::now());
        *self
            .delivery
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::new(delivery);
        self.wake.notify_one();
        Ok(())
    }

    /// Takes posted alerts as Alertmanager does: every valid alert is kept even when others in
    /// the same request are refused.
    pub fn post_alerts(&self, posted: Vec<PostedAlert>) -> Result<usize, PostRejected> {
        let now = Timestamp::now();
        // Defaults, validation, fingerprints and routing need no shared state: do them before
        // taking the pipeline's lock, against a snapshot of its settings and routing tree.
        let context = lock(&self.pipeline).ingest_context();
        let prepared: Vec<Result<_, String>> = posted
            .into_iter()
            .map(|posted| {
                context
                    .prepare(posted, now)
                    .map_err(|error| error.to_string())
            })
            .collect();
        let mut pipeline = lock(&self.pipeline);
        let mut errors = Vec::new();
        let mut limit_reached = false;
        let mut accepted = 0;
        let replicating = self.is_replicating();
        let mut changed = Vec::new();
        for (index, prepared) in prepared.into_iter().enumerate() {
            let result = prepared.and_then(|alert| {
                pipeline
                    .receive_prepared(&context, alert, now)
                    .map(|stored| {
                        if replicating && let Some(stored) = stored {
                            changed.push(stored);
                        }
                    })
                    .map_err(|error| {
                        limit_reached |= matches!(
                            error,
                            crate::alerting::pipeline::ReceiveError::Store(
                                StoreError::TooManyAlerts { .. }
                            ) | crate::alerting::pipeline::ReceiveError::Groups(_)
                        );
                        error.to_string()
                    })
            });
            match result {
                Ok(()) => accepted += 1,
                Err(message) => errors.push(format!("alert {index}: {message}")),
            }
        }
        drop(pipeline);
        if !changed.is_empty() {
            self.replicate(Change::Alerts(changed));
        }
        self.wake.notify_one();
        if errors.is_empty() {
            Ok(accepted)
        } else {
            Err(PostRejected {
                errors,
                limit_reached,
            })
        }
    }

    /// Creates a silence, or updates the one `id` names. Returns the silence's id once the change
    /// is on disk.
    pub fn upsert_silence(
        &self,
        spec: SilenceSpec,
        id: Option<&str>,
    ) -> Result<String, SilenceWriteError> {
        let now = Timestamp::now();
        let mut pipeline = lock(&self.pipeline);
        let change = match id {
            Some(id) => pipeline.silences.update(id, spec, now, random_id_bytes())?,
            None => pipeline.silences.create(spec, now, random_id_bytes())?,
        };
        self.persist_silences(&change.persist)?;
        self.replicate(Change::Silences(change.persist));
        Ok(change.id)
    }

    pub fn expire_silence(&self, id: &str) -> Result<(), SilenceWriteError> {
        let now = Timestamp::now();
        let mut pipeline = lock(&self.pipeline);
        if let Some(expired) = pipeline.silences.expire(id, now)? {
            self.persist_silences(std::slice::from_ref(&expired))?;
            self.replicate(Change::Silences(vec![expired]));
        }
        Ok(())
    }

    /// Called with the pipeline locked, so the log's order is the order changes were made.
    pub(super) fn persist_silences(
        &self,
        silences: &[crate::alerting::silences::Silence],
    ) -> Result<(), SilenceWriteError> {
        let records = silences
            .iter()
            .map(codec::encode_silence)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|error| SilenceWriteError::Encoding(error.to_string()))?;
        lock(&self.silence_log).append(records.iter().map(Vec::as_slice))?;
        Ok(())
    }

    /// Delivery counters of every integration, for `/metrics`.
    pub fn delivery_stats(
        &self,
    ) -> Vec<(
        crate::alerting::nflog::ReceiverKey,
        tocsin_receivers::notifier::DeliveryStatsSnapshot,
    )> {
        let delivery = self.current_delivery();
        delivery
            .integrations
            .iter_stats()
            .map(|(key, stats)| (key.clone(), stats.snapshot()))
            .collect()
    }

    /// Drives group timers until `shutdown` flips: polls the pipeline when a timer is due or input
    /// arrived, delivers notifications, and collects garbage.
    pub async fn run(self: Arc<Self>, mut shutdown: tokio::sync::watch::Receiver<bool>) {
        if let Some(writes) = lock(&self.nflog_writes_receiver).take() {
            tokio::spawn(write_nflog_batches(Arc::clone(&self.nflog_log), writes));
        }
        let mut last_gc = Timestamp::now();
        // A settling node sends nothing: its peers may already have (DESIGN.md §4).
        let mut may_notify = self.may_notify.subscribe();
        tokio::select! {
            _ = may_notify.wait_for(|may| *may) => {}
            _ = shutdown.wait_for(|stop| *stop) => return,
        }
        loop {
            let now = Timestamp::now();
            let effects = lock(&self.pipeline).poll(now);
            for effect in effects {
                match effect {
                    Effect::Notify(notification) => Arc::clone(&self).spawn_delivery(notification),
                    Effect::PersistNflog(entry) => {
                        self.queue_nflog(&entry, None);
                        self.replicate(Change::Nflog(entry));
                    }
                    Effect::Claim(claim) => self.replicate(Change::Claim(claim)),
                }
            }
            if now.duration_since(last_gc)
                >= SignedDuration::try_from(GC_INTERVAL).unwrap_or(SignedDuration::MAX)
            {
                self.collect_garbage(now);
                last_gc = now;
            }
            let next_wakeup = lock(&self.pipeline).next_wakeup();
            let sleep = time_until(next_wakeup, Timestamp::now());
            tokio::select! {
                _ = tokio::time::sleep(sleep) => {}
                _ = self.wake.notified() => {}
                _ = shutdown.wait_for(|stop| *stop) => return,
            }
        }
    }

    /// Delivers one notification in its own task, retrying until the group's next flush; logs it
    /// durably in the notification log once the receiver accepted it.
    fn spawn_delivery(self: Arc<Self>, notification: Notification) {
        let delivery = self.current_delivery();
        let Some(notifier) = delivery.integrations.get(&notification.integration) else {
            tracing::error!(receiver = %notification.integration, "no such integration; notification dropped");
            lock(&self.pipeline).failed(&notification);
            return;
        };
        let stats = delivery.integrations.stats(&notification.integration);
        let data = notification_data(&notification, &delivery.external_url);
        let until_deadline =
            Duration::try_from(notification.deadline.duration_since(Timestamp::now()))
                .unwrap_or(Duration::ZERO)
                .max(MIN_DELIVERY_TIME);
        let deadline = tokio::time::Instant::now() + until_deadline;
        tokio::spawn(async move {
            // Waiting for a slot counts against the deadline, like any other delay.
            let Ok(slot) = Arc::clone(&self.delivery_slots).acquire_owned().await else {
                return;
            };
            let policy = RetryPolicy::default();
            let delivering = tocsin_receivers::retry::deliver(
                notifier.as_ref(),
                &data,
                &policy,
                deadline,
                stats.as_deref(),
            );
            let result = self.renewing_claim(&notification, delivering).await;
            // The slot bounds connections, not the notification-log fsync that follows.
            drop(slot);
            match result {
                Ok(_) => {
                    let logged = lock(&self.pipeline).delivered(&notification, Timestamp::now());
                    match logged {
                        Ok(Some(entry)) => {
                            self.persist_nflog(&entry).await;
                            self.replicate(Change::Nflog(entry));
                        }
                        Ok(None) => {}
                        Err(error) => tracing::error!(%error, "cannot log the notification"),
                    }
                }
                Err(error) => {
                    tracing::warn!(
                        receiver = %notification.integration,
                        group = %notification.group.group_key,
                        reason = error.reason,
                        error = %error.message,
                        "notification failed; the next flush tries again"
                    );
                    lock(&self.pipeline).failed(&notification);
                }
            }
        });
    }

    /// Runs a delivery while renewing this node's claim on it every half claim lifetime, so
    /// peers keep holding off while it retries (clusters only).
    async fn renewing_claim<T>(
        &self,
        notification: &Notification,
        delivering: impl std::future::Future<Output = T>,
    ) -> T {
        let peer_timeout = lock(&self.pipeline).cluster_view().peer_timeout;
        let Ok(period) = Duration::try_from(peer_timeout / 2) else {
            return delivering.await;
        };
        if notification.claimed_at().is_none() || period.is_zero() {
            return delivering.await;
        }
        tokio::pin!(delivering);
        let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        loop {
            tokio::select! {
                result = &mut delivering => return result,
                _ = ticks.tick() => {
                    let renewed = lock(&self.pipeline).renew_claim(notification, Timestamp::now());
                    if let Some(claim) = renewed {
                        self.replicate(Change::Claim(claim));
                    }
                }
            }
        }
    }

    /// Persists an entry merged from a peer (not waited for: the peer already has it).
    pub(super) fn queue_nflog_entry(&self, entry: &Entry) {
        self.queue_nflog(entry, None);
    }

    /// Hands an entry to the writer; `done` hears whether it reached the disk.
    fn queue_nflog(&self, entry: &Entry, done: Option<tokio::sync::oneshot::Sender<bool>>) {
        let record = match entry.encode() {
            Ok(record) => record,
            Err(error) => {
                tracing::error!(%error, "cannot encode a notification-log entry");
                return;
            }
        };
        if self
            .nflog_writes
            .try_send(NflogWrite { record, done })
            .is_err()
        {
            // The queue is bounded: a full one means the disk cannot keep up. The entry stays in
            // memory (dedup still works) but would be lost by a crash.
            tracing::error!("notification-log writes are backed up; an entry was not persisted");
        }
    }

    /// Writes an entry durably before the delivery that produced it is done.
    pub(super) async fn persist_nflog(&self, entry: &Entry) {
        let (done, written) = tokio::sync::oneshot::channel();
        self.queue_nflog(entry, Some(done));
        if written.await != Ok(true) {
            tracing::error!("cannot write the notification log");
        }
    }

    fn collect_garbage(&self, now: Timestamp) {
        let mut pipeline = lock(&self.pipeline);
        pipeline.gc(now);
        let mut silence_log = lock(&self.silence_log);
        if silence_log.log_bytes() > COMPACT_AT_BYTES {
            let records: Vec<Vec<u8>> = pipeline
                .silences
                .iter()
                .filter_map(|silence| codec::encode_silence(silence).ok())
                .collect();
            if let Err(error) = silence_log.compact(records.iter().map(Vec::as_slice)) {
                tracing::error!(%error, "cannot compact the silences log");
            }
        }
        let mut nflog_log = lock(&self.nflog_log);
        if nflog_log.log_bytes() > COMPACT_AT_BYTES {
            let records: Vec<Vec<u8>> = pipeline
                .nflog
                .iter()
                .filter_map(|entry| entry.encode().ok())
                .collect();
            if let Err(error) = nflog_log.compact(records.iter().map(Vec::as_slice)) {
                tracing::error!(%error, "cannot compact the notification log");
            }
        }
    }
}

/// How long the timer loop may sleep: until the next due timer (zero if it is already due, as
/// it is when a poll took longer than the gap between two groups), at most `MAX_SLEEP`.
fn time_until(next_wakeup: Option<Timestamp>, now: Timestamp) -> Duration {
    match next_wakeup {
        None => MAX_SLEEP,
        Some(wakeup) => {
            let until = wakeup.duration_since(now);
            if until.is_negative() {
                Duration::ZERO
            } else {
                Duration::try_from(until)
                    .unwrap_or(MAX_SLEEP)
                    .min(MAX_SLEEP)
            }
        }
    }
}

/// A notification-log entry for the writer, and who waits for it.
struct NflogWrite {
    record: Vec<u8>,
    done: Option<tokio::sync::oneshot::Sender<bool>>,
}

/// Group commit: takes every entry waiting, appends them with one fsync (off the async
/// workers), then tells each waiter.
async fn write_nflog_batches(
    log: Arc<Mutex<StateLog>>,
    mut writes: tokio::sync::mpsc::Receiver<NflogWrite>,
) {
    let mut batch = Vec::with_capacity(NFLOG_BATCH);
    while writes.recv_many(&mut batch, NFLOG_BATCH).await > 0 {
        let records: Vec<Vec<u8>> = batch
            .iter_mut()
            .map(|write| std::mem::take(&mut write.record))
            .collect();
        let log = Arc::clone(&log);
        let written = tokio::task::spawn_blocking(move || {
            lock(&log)
                .append(records.iter().map(Vec::as_slice))
                .map_err(|error| error.to_string())
        })
        .await;
        let durable = match written {
            Ok(Ok(())) => true,
            Ok(Err(error)) => {
                tracing::error!(%error, "cannot write the notification log");
                false
            }
            Err(error) => {
                tracing::error!(%error, "notification-log writer failed");
                false
            }
        };
        for write in batch.drain(..) {
            if let Some(done) = write.done {
                let _ = done.send(durable);
            }
        }
    }
}

fn build_delivery(loaded: &LoadedConfig, external_url: &str) -> Result<Delivery, String> {
    let integrations = Integrations::build(
        &loaded.alertmanager,
        Arc::clone(&loaded.templates),
        &loaded.alertmanager_dir,
    )?;
    Ok(Delivery {
        integrations,
        external_url: external_url.to_string(),
    })
}

/// What templates and payloads see of a notification: its alerts in Alertmanager's order, a
/// firing alert without an end.
fn notification_data(notification: &Notification, external_url: &str) -> NotificationData {
    let mut alerts: Vec<(&Alert, AlertStatus)> = notification
        .firing
        .iter()
        .map(|alert| (alert, AlertStatus::Firing))
        .chain(
            notification
                .resolved
                .iter()
                .map(|alert| (alert, AlertStatus::Resolved)),
        )
        .collect();
    alerts.sort_by(|(a, _), (b, _)| alertmanager_order(a, b));
    let alerts = alerts
        .into_iter()
        .map(|(alert, status)| AlertData {
            status,
            labels: alert.labels.to_map(),
            annotations: alert.annotations.to_map(),
            starts_at: alert.starts_at,
            ends_at: (status == AlertStatus::Resolved).then_some(alert.ends_at),
            generator_url: alert.generator_url.clone(),
            fingerprint: alert.fingerprint().to_string(),
        })
        .collect();
    NotificationData::new(
        notification.integration.name.clone(),
        alerts,
        notification.group_labels.to_map(),
        external_url.to_string(),
        notification.group.group_key.clone(),
        notification.reason.as_str().to_string(),
    )
}

fn report_recovery(what: &str, recovery: &crate::state_log::Recovery, refused: usize) {
    if recovery.discarded_log_bytes > 0 || recovery.snapshot_damaged || refused > 0 {
        tracing::warn!(
            state = what,
            discarded_bytes = recovery.discarded_log_bytes,
            snapshot_damaged = recovery.snapshot_damaged,
            refused_records = refused,
            "recovered with losses"
        );
    }
    tracing::info!(
        state = what,
        records = recovery.snapshot_records + recovery.log_records,
        "state restored"
    );
}

/// The alerting runtime's numbers, read at scrape time: sizes of the store, groups, silences and
/// notification log, and every time one of their bounds refused something.
pub struct AlertingMetrics(pub std::sync::Arc<AlertingRuntime>);

impl std::fmt::Debug for AlertingMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AlertingMetrics")
    }
}

impl prometheus_client::collector::Collector for AlertingMetrics {
    fn encode(
        &self,
        mut encoder: prometheus_client::encoding::DescriptorEncoder,
    ) -> Result<(), std::fmt::Error> {
        use prometheus_client::encoding::EncodeMetric;
        use prometheus_client::metrics::MetricType;
        use prometheus_client::metrics::counter::ConstCounter;
        use prometheus_client::metrics::gauge::ConstGauge;

        let now = Timestamp::now();
        let (firing, groups, silences_active, nflog_entries, store, group_counters, silence_stats) =
            self.0.read(|pipeline| {
                let silences_active = pipeline
                    .silences
                    .iter()
                    .filter(|silence| {
                        silence.state_at(now) == crate::alerting::silences::SilenceState::Active
                    })
                    .count();
                (
                    pipeline
                        .store()
                        .iter_unordered()
                        .filter(|alert| !alert.is_resolved_at(now))
                        .count(),
                    pipeline.groups().len(),
                    silences_active,
                    pipeline.nflog.len(),
                    pipeline.store().counters,
                    pipeline.groups().counters,
                    pipeline.silences.stats(),
                )
            });
        let gauges = [
            ("tocsin_alerts", "Alerts held that are not resolved", firing),
            ("tocsin_alert_groups", "Aggregation groups", groups),
            (
                "tocsin_silences_active",
                "Silences in force",
                silences_active,
            ),
            (
                "tocsin_nflog_entries",
                "Entries in the notification log",
                nflog_entries,
            ),
        ];
        for (name, help, value) in gauges {
            ConstGauge::new(value as i64).encode(encoder.encode_descriptor(
                name,
                help,
                None,
                MetricType::Gauge,
            )?)?;
        }
        let counters = [
            (
                "tocsin_alerts_rejected_too_many",
                "Alerts refused because the store was full",
                store.rejected_too_many,
            ),
            (
                "tocsin_alerts_rejected_too_large",
                "Alerts refused because their labels and annotations were too large",
                store.rejected_too_large,
            ),
            (
                "tocsin_alerts_rejected_invalid",
                "Alerts refused as invalid",
                store.rejected_invalid,
            ),
            (
                "tocsin_alert_groups_rejected",
                "Alerts not grouped because the group limit was reached",
                group_counters.rejected_too_many,
            ),
            (
                "tocsin_silences_rejected",
                "Silences refused because a limit was reached",
                silence_stats.refused_by_limit,
            ),
        ];
        for (name, help, value) in counters {
            ConstCounter::new(value).encode(encoder.encode_descriptor(
                name,
                help,
                None,
                MetricType::Counter,
            )?)?;
        }
        encode_delivery_metrics(&self.0.delivery_stats(), &mut encoder)
    }
}

type DeliverySnapshot = tocsin_receivers::notifier::DeliveryStatsSnapshot;

/// Per integration, as Alertmanager names them (`alertmanager_notifications_total` and friends),
/// with the receiver's name as a label too.
fn encode_delivery_metrics(
    stats: &[(crate::alerting::nflog::ReceiverKey, DeliverySnapshot)],
    encoder: &mut prometheus_client::encoding::DescriptorEncoder,
) -> Result<(), std::fmt::Error> {
    use prometheus_client::encoding::EncodeMetric;
    use prometheus_client::metrics::MetricType;
    use prometheus_client::metrics::counter::ConstCounter;
    type Labels = Vec<(&'static str, String)>;
    let labels = |key: &crate::alerting::nflog::ReceiverKey| -> Labels {
        vec![
            ("integration", key.integration.clone()),
            ("receiver", key.name.clone()),
            ("index", key.index.to_string()),
        ]
    };
    type Read = fn(&DeliverySnapshot) -> u64;
    let plain_counters: [(&str, &str, Read); 4] = [
        (
            "tocsin_notifications",
            "Notifications delivered (accepted by the receiver)",
            |s| s.sent,
        ),
        (
            "tocsin_notification_requests",
            "Delivery attempts, retries included",
            |s| s.attempts,
        ),
        (
            "tocsin_notification_requests_failed",
            "Delivery attempts that failed",
            |s| s.attempts_failed,
        ),
        (
            "tocsin_notification_retries",
            "Delivery attempts that were retries",
            |s| s.retries,
        ),
    ];
    for (name, help, read) in plain_counters {
        let mut metric = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
        for (key, snapshot) in stats {
            let labels = labels(key);
            ConstCounter::new(read(snapshot)).encode(metric.encode_family(&labels)?)?;
        }
    }
    let mut failed = encoder.encode_descriptor(
        "tocsin_notifications_failed",
        "Notifications given up on, by reason",
        None,
        MetricType::Counter,
    )?;
    for (key, snapshot) in stats {
        for (reason, count) in &snapshot.failed_by_reason {
            let mut labels = labels(key);
            labels.push(("reason", reason.to_string()));
            ConstCounter::new(*count).encode(failed.encode_family(&labels)?)?;
        }
    }
    let mut latency = encoder.encode_descriptor(
        "tocsin_notification_latency_seconds",
        "Time one delivery attempt took",
        None,
        MetricType::Histogram,
    )?;
    for (key, snapshot) in stats {
        // The snapshot's buckets are cumulative and end with +Inf; the encoder wants per-bucket
        // counts and adds +Inf itself.
        let mut previous = 0;
        let buckets: Vec<(f64, u64)> = snapshot
            .latency_cumulative
            .iter()
            .filter(|(upper, _)| upper.is_finite())
            .map(|&(upper, cumulative)| {
                let in_bucket = cumulative.saturating_sub(previous);
                previous = cumulative;
                (upper, in_bucket)
            })
            .collect();
        let labels = labels(key);
        latency.encode_family(&labels)?.encode_histogram::<Labels>(
            snapshot.latency_sum_seconds,
            snapshot.latency_count,
            &buckets,
            None,
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_timer_already_due_means_no_sleep() {
        let now = Timestamp::from_second(1_000).unwrap();
        let past = Timestamp::from_second(999).unwrap();
        let soon = Timestamp::from_millisecond(1_000_250).unwrap();
        let far = Timestamp::from_second(5_000).unwrap();
        assert_eq!(time_until(Some(past), now), Duration::ZERO);
        assert_eq!(time_until(Some(now), now), Duration::ZERO);
        assert_eq!(time_until(Some(soon), now), Duration::from_millis(250));
        assert_eq!(time_until(Some(far), now), MAX_SLEEP);
        assert_eq!(time_until(None, now), MAX_SLEEP);
    }
}
