//! The notifier's shell: rule alerts to the node's own alerting core and to every Alertmanager
//! of `alerting.alertmanagers`, as Prometheus 3's notifier sends them.
//!
//! [`Notifier`] wraps the sans-IO [`NotifierCore`] (relabeling, queue, Alertmanager sets) with
//! what needs a runtime: one send loop taking batches off the queue and POSTing them to every
//! discovered Alertmanager at once (each set with its own HTTP client, auth and `timeout`),
//! discovery tasks keeping each set's Alertmanagers current, and the metrics Prometheus exposes
//! for all this (`prometheus_notifications_*`, so existing dashboards and alerts work).
//!
//! As in Prometheus, a batch is not retried: when some set that had Alertmanagers to try could
//! deliver it to none of them, its alerts count as dropped. Rules re-send firing alerts every
//! evaluation (at least every resend delay), which is what makes that safe.
//!
//! Discovery goes through a seam: each mechanism is a task sending the full list of target
//! groups it knows, whenever it changes, to its set's merge task ([`GroupUpdate`]). Static
//! groups are synced at once when a configuration is applied; `file_sd_configs` are polled
//! here; `http_sd_configs` and `dns_sd_configs` run as one `ingest::discovery::Discovery`.

use crate::config::LoadedConfig;
use crate::config::prometheus::AlertmanagerConfig;
use crate::ingest::discovery::{Discovery, DiscoveryHandle, DiscoveryOptions, Sources};
use crate::ingest::scrape::{Auth, build_http_client, error_chain, resolve_http_auth};
use crate::ingest::targets::{FileSd, TargetGroup};
use crate::node::alerting::AlertingRuntime;
use crate::rules::alert::{AlertSink, OutgoingAlert};
use crate::rules::notifier::{
    AlertRelabeling, DEFAULT_QUEUE_CAPACITY, NotifierCore, SyncReport, static_groups,
    to_posted_alert,
};
use crate::telemetry::Telemetry;
use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};
use std::time::{Duration, Instant};
use tokio::sync::{Notify, mpsc, watch};

/// How long draining the queue at shutdown may take before the rest is given up.
pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
/// How often `file_sd` files are checked for changes (Prometheus watches them with inotify; a
/// full re-read still happens every `refresh_interval`).
const FILE_SD_POLL: Duration = Duration::from_secs(1);
/// The most of an Alertmanager's response body read (and thrown away) per POST, so the
/// connection can be reused without reading an endless body.
const MAX_RESPONSE_BYTES: usize = 64 << 10;
/// Prometheus's summary window for `prometheus_notifications_latency_seconds`.
const LATENCY_WINDOW: Duration = Duration::from_secs(600);
/// The most latency observations kept per Alertmanager for the quantiles.
const MAX_LATENCY_SAMPLES: usize = 2048;
/// The quantiles Prometheus's latency summary reports.
const LATENCY_QUANTILES: [f64; 3] = [0.5, 0.9, 0.99];

/// What the notifier runs with, from the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotifierSettings {
    /// `--alertmanager.notification-queue-capacity` (Prometheus's default: 10000).
    pub queue_capacity: usize,
    /// `--alertmanager.drain-notification-queue-on-shutdown` (Prometheus's default: true).
    pub drain_on_shutdown: bool,
    /// How long a drain at shutdown may take (Tocsin's own bound; Prometheus has none).
    pub drain_timeout: Duration,
}

impl Default for NotifierSettings {
    fn default() -> Self {
        NotifierSettings {
            queue_capacity: DEFAULT_QUEUE_CAPACITY,
            drain_on_shutdown: true,
            drain_timeout: DEFAULT_DRAIN_TIMEOUT,
        }
    }
}

/// The URLs `/api/v1/alertmanagers` lists.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AlertmanagerUrls {
    pub active: Vec<String>,
    pub dropped: Vec<String>,
}

/// Counters for tests and status pages; the same numbers `/metrics` shows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NotifierStats {
    /// Per Alertmanager URL: alerts it accepted (`prometheus_notifications_sent_total`).
    pub sent: BTreeMap<String, u64>,
    /// Per Alertmanager URL: alerts of failed POSTs (`prometheus_notifications_errors_total`).
    pub errors: BTreeMap<String, u64>,
    pub dropped: u64,
    pub queue_length: usize,
    pub queue_capacity: usize,
    /// Alerts the node's own alerting core accepted, and refused.
    pub local_accepted: u64,
    pub local_rejected: u64,
}

/// A set's HTTP client and what each request needs.
struct Transport {
    client: reqwest::Client,
    auth: Auth,
    timeout: Duration,
}

struct State {
    core: NotifierCore,
    /// One per set of `core`, same index.
    transports: Vec<Arc<Transport>>,
    /// Bumped by every applied configuration; discovery of an older one is ignored.
    generation: u64,
    /// Stops the discovery tasks of the current generation.
    discovery_stop: watch::Sender<bool>,
}

/// Per Alertmanager URL.
#[derive(Debug, Default)]
struct UrlStats {
    sent: u64,
    errors: u64,
    latency: LatencyWindow,
}

/// Recent POST latencies, for a summary's quantiles over [`LATENCY_WINDOW`], plus the totals.
#[derive(Debug, Default)]
struct LatencyWindow {
    recent: VecDeque<(Instant, f64)>,
    sum: f64,
    count: u64,
}

impl LatencyWindow {
    fn observe(&mut self, at: Instant, seconds: f64) {
        self.sum += seconds;
        self.count += 1;
        if self.recent.len() >= MAX_LATENCY_SAMPLES {
            self.recent.pop_front();
        }
        self.recent.push_back((at, seconds));
    }

    /// The quantiles of the observations of the last [`LATENCY_WINDOW`] (NaN when there are
    /// none, as Prometheus's summary reports).
    fn quantiles(&mut self, now: Instant) -> Vec<(f64, f64)> {
        while let Some(&(at, _)) = self.recent.front() {
            if now.saturating_duration_since(at) <= LATENCY_WINDOW {
                break;
            }
            self.recent.pop_front();
        }
        let mut values: Vec<f64> = self.recent.iter().map(|&(_, value)| value).collect();
        values.sort_by(f64::total_cmp);
        LATENCY_QUANTILES
            .iter()
            .map(|&quantile| {
                let value = if values.is_empty() {
                    f64::NAN
                } else {
                    let rank = (quantile * values.len() as f64).ceil() as usize;
                    values[rank.clamp(1, values.len()) - 1]
                };
                (quantile, value)
            })
            .collect()
    }
}

#[derive(Debug, Default)]
struct Stats {
    per_url: BTreeMap<String, UrlStats>,
    local_accepted: u64,
    local_rejected: u64,
}

/// The notifier of one node. An [`AlertSink`]: rules hand it their alerts.
pub struct Notifier {
    settings: NotifierSettings,
    state: Mutex<State>,
    stats: Mutex<Stats>,
    /// Woken by `send`; a permit is kept when the loop is busy, like Prometheus's `more`.
    wake: Notify,
    /// The node's own alerting core, when it has one.
    local: Option<Arc<AlertingRuntime>>,
    stop: watch::Sender<bool>,
    send_loop: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl std::fmt::Debug for Notifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Notifier")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Notifier {
    /// Builds the notifier for `loaded`, starts its send loop and discovery. Must run inside
    /// the tokio runtime. `local` is the node's alerting core, `None` to send only to
    /// `alerting.alertmanagers`. Fails when a set's HTTP client cannot be built (an unreadable
    /// CA file, say).
    pub fn start(
        settings: NotifierSettings,
        loaded: &LoadedConfig,
        local: Option<Arc<AlertingRuntime>>,
    ) -> Result<Arc<Notifier>, String> {
        // reqwest looks the rustls provider up; the node installs it at start, tests may not.
        tocsin_receivers::http_client::install_crypto_provider();
        let (stop, stopped) = watch::channel(false);
        let notifier = Arc::new(Notifier {
            state: Mutex::new(State {
                core: NotifierCore::new(settings.queue_capacity),
                transports: Vec::new(),
                generation: 0,
                discovery_stop: watch::channel(false).0,
            }),
            settings,
            stats: Mutex::new(Stats::default()),
            wake: Notify::new(),
            local,
            stop,
            send_loop: Mutex::new(None),
        });
        notifier.apply_config(loaded)?;
        let task = tokio::spawn(Arc::clone(&notifier).run(stopped));
        *lock(&notifier.send_loop) = Some(task);
        Ok(notifier)
    }

    /// Applies a (re)loaded configuration: external labels, alert relabeling and Alertmanager
    /// sets swapped; queued alerts kept; sets whose configuration did not change keep their
    /// Alertmanagers. On error nothing changes.
    pub fn apply_config(self: &Arc<Self>, loaded: &LoadedConfig) -> Result<(), String> {
        let configs: Vec<AlertmanagerConfig> = loaded
            .config
            .alerting
            .alertmanagers
            .iter()
            .map(|config| config.value.clone())
            .collect();
        let base_dir = crate::node::ingest::config_dir(loaded);
        let transports = configs
            .iter()
            .enumerate()
            .map(|(index, config)| {
                Transport::new(config, &base_dir)
                    .map(Arc::new)
                    .map_err(|error| format!("alerting.alertmanagers[{index}]: {error}"))
            })
            .collect::<Result<Vec<_>, String>>()?;
        let relabeling = AlertRelabeling::from_config(&loaded.config);
        let (discovery_stop, discovery_stopped) = watch::channel(false);
        let generation = {
            let mut state = lock(&self.state);
            let _ = state.discovery_stop.send(true);
            state.discovery_stop = discovery_stop;
            state.generation += 1;
            let reports = state.core.apply_config(relabeling, configs.clone());
            for (index, report) in reports.iter().enumerate() {
                log_sync_report(index, report);
            }
            state.transports = transports;
            self.refresh_url_stats(&state.core);
            state.generation
        };
        for (index, config) in configs.into_iter().enumerate() {
            self.spawn_discovery(
                generation,
                index,
                config,
                base_dir.clone(),
                discovery_stopped.clone(),
            );
        }
        Ok(())
    }

    /// Stops sending; with `drain_on_shutdown`, first tries to send what is queued (for at
    /// most `drain_timeout`). Alerts sent after this are queued but never delivered.
    pub async fn stop(&self) {
        let _ = self.stop.send(true);
        let _ = lock(&self.state).discovery_stop.send(true);
        let task = lock(&self.send_loop).take();
        if let Some(task) = task
            && let Err(error) = task.await
        {
            tracing::error!(%error, "the notifier's send loop failed");
        }
    }

    /// The Alertmanagers alerts go to, and those relabeling dropped.
    pub fn alertmanagers(&self) -> AlertmanagerUrls {
        let state = lock(&self.state);
        AlertmanagerUrls {
            active: state.core.active_urls(),
            dropped: state.core.dropped_urls(),
        }
    }

    pub fn stats(&self) -> NotifierStats {
        let (dropped, queue_length, queue_capacity) = {
            let state = lock(&self.state);
            (
                state.core.dropped_total(),
                state.core.queue_len(),
                state.core.queue_capacity(),
            )
        };
        let stats = lock(&self.stats);
        NotifierStats {
            sent: stats
                .per_url
                .iter()
                .map(|(url, s)| (url.clone(), s.sent))
                .collect(),
            errors: stats
                .per_url
                .iter()
                .map(|(url, s)| (url.clone(), s.errors))
                .collect(),
            dropped,
            queue_length,
            queue_capacity,
            local_accepted: stats.local_accepted,
            local_rejected: stats.local_rejected,
        }
    }

    /// Puts the notifier's metrics on the node's `/metrics`.
    pub fn register_metrics(self: &Arc<Self>, telemetry: &Telemetry) {
        telemetry.register_collector(Box::new(NotifierMetrics(Arc::clone(self))));
    }

    /// Per-URL counters exist for every active Alertmanager (at 0 until it is used, as
    /// Prometheus initializes them) and go away with it.
    fn refresh_url_stats(&self, core: &NotifierCore) {
        let active = core.active_urls();
        let mut stats = lock(&self.stats);
        stats.per_url.retain(|url, _| active.contains(url));
        for url in active {
            stats.per_url.entry(url).or_default();
        }
    }

    fn sync_set(&self, generation: u64, index: usize, groups: &[TargetGroup]) {
        let mut state = lock(&self.state);
        if state.generation != generation {
            return;
        }
        if let Some(report) = state.core.sync_set(index, groups) {
            log_sync_report(index, &report);
        }
        self.refresh_url_stats(&state.core);
    }

    fn next_batch(&self) -> Option<Vec<OutgoingAlert>> {
        lock(&self.state).core.next_batch()
    }

    async fn run(self: Arc<Self>, mut stopped: watch::Receiver<bool>) {
        loop {
            tokio::select! {
                biased;
                _ = stopped.wait_for(|stop| *stop) => break,
                _ = self.wake.notified() => {}
            }
            while !*stopped.borrow() {
                let Some(batch) = self.next_batch() else {
                    break;
                };
                self.deliver(batch).await;
            }
        }
        self.drain().await;
    }

    /// Prometheus's `drainQueue`, bounded by `drain_timeout`.
    async fn drain(&self) {
        if !self.settings.drain_on_shutdown {
            let count = lock(&self.state).core.drop_queued();
            if count > 0 {
                tracing::warn!(
                    count,
                    "draining notifications at shutdown is disabled; queued alerts dropped"
                );
            }
            return;
        }
        let deadline = tokio::time::Instant::now() + self.settings.drain_timeout;
        while let Some(batch) = self.next_batch() {
            let count = batch.len();
            if tokio::time::timeout_at(deadline, self.deliver(batch))
                .await
                .is_err()
            {
                let mut state = lock(&self.state);
                state.core.count_dropped(count);
                let rest = state.core.drop_queued();
                tracing::warn!(
                    dropped = count + rest,
                    timeout = ?self.settings.drain_timeout,
                    "could not drain the notification queue in time; remaining alerts dropped"
                );
                return;
            }
        }
        tracing::info!("notification queue drained");
    }

    /// Sends one batch to the alerting core and to every set (Prometheus's `sendAll`).
    async fn deliver(&self, batch: Vec<OutgoingAlert>) {
        self.deliver_locally(&batch);
        let (plans, transports) = {
            let state = lock(&self.state);
            let plans = state.core.plan(&batch);
            let transports: Vec<Option<Arc<Transport>>> = plans
                .iter()
                .map(|plan| state.transports.get(plan.set).cloned())
                .collect();
            (plans, transports)
        };
        if plans.is_empty() {
            return;
        }
        let started = Instant::now();
        let mut posts = tokio::task::JoinSet::new();
        let mut covered = vec![false; plans.len()];
        for (index, (plan, transport)) in plans.into_iter().zip(transports).enumerate() {
            let Some(transport) = transport else {
                continue;
            };
            let payload = bytes::Bytes::from(plan.payload);
            for url in plan.urls {
                let transport = Arc::clone(&transport);
                let payload = payload.clone();
                let count = plan.alert_count;
                posts.spawn(async move {
                    let result = post(&transport, &url, payload).await;
                    (index, url, count, result)
                });
            }
        }
        while let Some(joined) = posts.join_next().await {
            let Ok((index, url, count, result)) = joined else {
                continue;
            };
            let now = Instant::now();
            let seconds = now.saturating_duration_since(started).as_secs_f64();
            let mut stats = lock(&self.stats);
            let url_stats = stats.per_url.entry(url.clone()).or_default();
            url_stats.latency.observe(now, seconds);
            match result {
                Ok(()) => {
                    url_stats.sent += count as u64;
                    if let Some(covered) = covered.get_mut(index) {
                        *covered = true;
                    }
                }
                Err(error) => {
                    url_stats.errors += count as u64;
                    drop(stats);
                    tracing::error!(alertmanager = %url, count, %error, "error sending alerts");
                }
            }
        }
        if covered.iter().any(|covered| !covered) {
            lock(&self.state).core.count_dropped(batch.len());
        }
    }

    /// The node's own alerting core gets every alert of the batch; what it refuses is logged
    /// and counted.
    fn deliver_locally(&self, batch: &[OutgoingAlert]) {
        let Some(local) = &self.local else {
            return;
        };
        let posted = batch.iter().map(to_posted_alert).collect();
        match local.post_alerts(posted) {
            Ok(accepted) => lock(&self.stats).local_accepted += accepted as u64,
            Err(rejected) => {
                let refused = rejected.errors.len().min(batch.len());
                {
                    let mut stats = lock(&self.stats);
                    stats.local_accepted += (batch.len() - refused) as u64;
                    stats.local_rejected += refused as u64;
                }
                tracing::warn!(
                    refused,
                    count = batch.len(),
                    limit_reached = rejected.limit_reached,
                    first_error = rejected.errors.first().map(String::as_str).unwrap_or(""),
                    "the node's alerting core refused alerts"
                );
            }
        }
    }

    fn spawn_discovery(
        self: &Arc<Self>,
        generation: u64,
        index: usize,
        config: AlertmanagerConfig,
        base_dir: PathBuf,
        stopped: watch::Receiver<bool>,
    ) {
        let (updates, received) = mpsc::channel(16);
        let providers = spawn_group_providers(index, &config, &base_dir, updates, &stopped);
        if providers == 0 {
            // Static groups only: synced when the configuration was applied.
            return;
        }
        let notifier = Arc::downgrade(self);
        tokio::spawn(merge_groups(
            notifier,
            generation,
            index,
            static_groups(&config),
            providers,
            received,
            stopped,
        ));
    }
}

impl AlertSink for Notifier {
    fn send(&self, alerts: Vec<OutgoingAlert>) {
        let (queued, overflow) = {
            let mut state = lock(&self.state);
            let before = state.core.dropped_total();
            let queued = state.core.enqueue(alerts);
            (queued, state.core.dropped_total() - before)
        };
        if overflow > 0 {
            tracing::warn!(
                dropped = overflow,
                "alert notification queue full; oldest alerts dropped"
            );
        }
        if queued > 0 {
            self.wake.notify_one();
        }
    }
}

fn log_sync_report(index: usize, report: &SyncReport) {
    for error in &report.errors {
        tracing::error!(set = index, %error, "creating discovered Alertmanagers failed");
    }
    if report.ignored > 0 {
        tracing::warn!(
            set = index,
            ignored = report.ignored,
            limit = crate::rules::notifier::MAX_ALERTMANAGERS_PER_SET,
            "too many Alertmanagers discovered; ignoring the rest"
        );
    }
}

/// One discovery mechanism's report: its index among its set's providers and every group it
/// knows now.
pub type GroupUpdate = (usize, Vec<TargetGroup>);

/// Starts the discovery mechanisms of one set, each sending [`GroupUpdate`]s to `updates`
/// until `stopped`. Returns how many it started. This is where `http_sd_configs` and
/// `dns_sd_configs` providers plug in: a task per config, sending the groups it found.
pub fn spawn_group_providers(
    set: usize,
    config: &AlertmanagerConfig,
    base_dir: &Path,
    updates: mpsc::Sender<GroupUpdate>,
    stopped: &watch::Receiver<bool>,
) -> usize {
    let mut providers = 0;
    for sd in &config.file_sd_configs {
        let files: Vec<String> = sd.value.files.iter().map(|f| f.value.clone()).collect();
        let refresh = sd
            .value
            .refresh_interval
            .as_std()
            .max(Duration::from_secs(1));
        tokio::spawn(poll_file_sd(
            providers,
            FileSd::new(files, base_dir),
            refresh,
            updates.clone(),
            stopped.clone(),
        ));
        providers += 1;
    }
    if !config.http_sd_configs.is_empty() || !config.dns_sd_configs.is_empty() {
        let sources = Sources {
            http_sd_configs: &config.http_sd_configs,
            dns_sd_configs: &config.dns_sd_configs,
            ..Sources::default()
        };
        match Discovery::new(sources, base_dir, &DiscoveryOptions::default()) {
            Ok(discovery) => {
                let handle = discovery.spawn(&format!("alertmanager/{set}"));
                tokio::spawn(forward_discovery(
                    providers,
                    handle,
                    updates.clone(),
                    stopped.clone(),
                ));
                providers += 1;
            }
            Err(error) => {
                tracing::error!(set, %error, "alerting discovery cannot start; these Alertmanagers get no alerts");
            }
        }
    }
    providers
}

/// Forwards what HTTP and DNS discovery publish as one provider's reports.
async fn forward_discovery(
    provider: usize,
    mut handle: DiscoveryHandle,
    updates: mpsc::Sender<GroupUpdate>,
    mut stopped: watch::Receiver<bool>,
) {
    loop {
        let changed = tokio::select! {
            changed = handle.groups.changed() => changed.is_ok(),
            _ = stopped.wait_for(|stop| *stop) => false,
        };
        if !changed {
            break;
        }
        let groups = handle.groups.borrow_and_update().as_ref().clone();
        if updates.send((provider, groups)).await.is_err() {
            break;
        }
    }
    handle.stop();
}

/// Polls one `file_sd_config`'s files, sending the groups when they change (and once at
/// start, even when empty, so that the set's Alertmanagers reflect the files).
async fn poll_file_sd(
    provider: usize,
    mut sd: FileSd,
    refresh: Duration,
    updates: mpsc::Sender<GroupUpdate>,
    mut stopped: watch::Receiver<bool>,
) {
    let mut last_full = Instant::now();
    let mut first = true;
    loop {
        if last_full.elapsed() >= refresh {
            sd.invalidate();
            last_full = Instant::now();
        }
        // Reading and parsing files blocks: keep it off the async workers.
        let refreshed = tokio::task::spawn_blocking(move || {
            let changed = sd.refresh();
            (sd, changed)
        })
        .await;
        let Ok((returned, changed)) = refreshed else {
            tracing::error!("the file_sd refresh task failed; alerting discovery stops");
            return;
        };
        sd = returned;
        for error in &sd.errors {
            tracing::warn!(%error, "file_sd: cannot read Alertmanagers");
        }
        let groups = match changed {
            Some(groups) => Some(groups),
            None if first => Some(sd.groups()),
            None => None,
        };
        first = false;
        if let Some(groups) = groups
            && updates.send((provider, groups)).await.is_err()
        {
            return;
        }
        tokio::select! {
            _ = tokio::time::sleep(FILE_SD_POLL) => {}
            _ = stopped.wait_for(|stop| *stop) => return,
        }
    }
}

/// Keeps one set's Alertmanagers in line with its static groups and its providers' reports.
async fn merge_groups(
    notifier: Weak<Notifier>,
    generation: u64,
    index: usize,
    statics: Vec<TargetGroup>,
    providers: usize,
    mut received: mpsc::Receiver<GroupUpdate>,
    mut stopped: watch::Receiver<bool>,
) {
    let mut reported: Vec<Vec<TargetGroup>> = vec![Vec::new(); providers];
    loop {
        let update = tokio::select! {
            update = received.recv() => update,
            _ = stopped.wait_for(|stop| *stop) => return,
        };
        let Some((provider, groups)) = update else {
            return;
        };
        if let Some(slot) = reported.get_mut(provider) {
            *slot = groups;
        }
        let Some(notifier) = notifier.upgrade() else {
            return;
        };
        let mut all = statics.clone();
        all.extend(reported.iter().flatten().cloned());
        notifier.sync_set(generation, index, &all);
    }
}

/// POSTs one payload to one Alertmanager (Prometheus's `sendOne`): any 2xx is success.
async fn post(transport: &Transport, url: &str, payload: bytes::Bytes) -> Result<(), String> {
    let parsed =
        reqwest::Url::parse(url).map_err(|error| format!("invalid URL {url:?}: {error}"))?;
    let request = transport.auth.apply(
        transport
            .client
            .post(parsed)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(payload),
    );
    let exchange = async {
        let mut response = request
            .send()
            .await
            .map_err(|error| format!("Post {url:?}: {}", error_chain(&error)))?;
        let status = response.status();
        let mut read = 0;
        while read < MAX_RESPONSE_BYTES {
            match response.chunk().await {
                Ok(Some(chunk)) => read += chunk.len(),
                _ => break,
            }
        }
        if !status.is_success() {
            return Err(format!("bad response status {status}"));
        }
        Ok(())
    };
    tokio::time::timeout(transport.timeout, exchange)
        .await
        .map_err(|_| {
            format!(
                "Post {url:?}: no answer within the timeout of {:?}",
                transport.timeout
            )
        })?
}

impl Transport {
    /// The set's client from its inline HTTP client settings, secrets read from their files
    /// (relative to `base_dir`) now, as the scrape manager does.
    fn new(config: &AlertmanagerConfig, base_dir: &Path) -> Result<Transport, String> {
        let http = config.http_client();
        Ok(Transport {
            auth: resolve_http_auth(&http, base_dir)?,
            client: build_http_client(&http, base_dir, false)?,
            timeout: config.timeout.value.as_std(),
        })
    }
}

/// Filled once the notifier runs; the HTTP API's handlers hold it from the start.
#[derive(Debug, Default)]
pub struct NotifierHandle(OnceLock<Arc<Notifier>>);

impl NotifierHandle {
    pub fn new() -> Arc<NotifierHandle> {
        Arc::new(NotifierHandle::default())
    }

    /// Sets the notifier; a second call is ignored.
    pub fn set(&self, notifier: Arc<Notifier>) {
        let _ = self.0.set(notifier);
    }

    pub fn get(&self) -> Option<&Arc<Notifier>> {
        self.0.get()
    }
}

/// The notifier's metrics, with Prometheus's names and labels.
pub struct NotifierMetrics(pub Arc<Notifier>);

impl std::fmt::Debug for NotifierMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NotifierMetrics")
    }
}

impl prometheus_client::collector::Collector for NotifierMetrics {
    fn encode(
        &self,
        mut encoder: prometheus_client::encoding::DescriptorEncoder,
    ) -> Result<(), std::fmt::Error> {
        use prometheus_client::encoding::EncodeMetric;
        use prometheus_client::metrics::MetricType;
        use prometheus_client::metrics::counter::ConstCounter;
        use prometheus_client::metrics::gauge::ConstGauge;
        type Labels = Vec<(&'static str, String)>;
        let (dropped, queue_length, queue_capacity, discovered) = {
            let state = lock(&self.0.state);
            (
                state.core.dropped_total(),
                state.core.queue_len(),
                state.core.queue_capacity(),
                state.core.active_urls().len(),
            )
        };
        let now = Instant::now();
        let mut stats = lock(&self.0.stats);
        // prometheus-client has no summary type: the quantiles are written as a gauge family
        // with Prometheus's `quantile` label, which is what dashboards select on.
        let mut latency = encoder.encode_descriptor(
            "prometheus_notifications_latency_seconds",
            "Latency quantiles for sending alert notifications (over the last 10 minutes).",
            None,
            MetricType::Gauge,
        )?;
        for (url, url_stats) in stats.per_url.iter_mut() {
            for (quantile, value) in url_stats.latency.quantiles(now) {
                let labels: Labels = vec![
                    ("alertmanager", url.clone()),
                    ("quantile", quantile.to_string()),
                ];
                ConstGauge::new(value).encode(latency.encode_family(&labels)?)?;
            }
        }
        let mut latency_sum = encoder.encode_descriptor(
            "prometheus_notifications_latency_seconds_sum",
            "Total time spent sending alert notifications.",
            None,
            MetricType::Gauge,
        )?;
        for (url, url_stats) in &stats.per_url {
            let labels: Labels = vec![("alertmanager", url.clone())];
            ConstGauge::new(url_stats.latency.sum).encode(latency_sum.encode_family(&labels)?)?;
        }
        let mut latency_count = encoder.encode_descriptor(
            "prometheus_notifications_latency_seconds_count",
            "Alert notification requests sent.",
            None,
            MetricType::Gauge,
        )?;
        for (url, url_stats) in &stats.per_url {
            let labels: Labels = vec![("alertmanager", url.clone())];
            ConstGauge::new(url_stats.latency.count as i64)
                .encode(latency_count.encode_family(&labels)?)?;
        }
        type Read = fn(&UrlStats) -> u64;
        let per_url: [(&str, &str, Read); 2] = [
            (
                "prometheus_notifications_errors",
                "Total number of sent alerts affected by errors.",
                |s| s.errors,
            ),
            (
                "prometheus_notifications_sent",
                "Total number of alerts sent.",
                |s| s.sent,
            ),
        ];
        for (name, help, read) in per_url {
            let mut metric = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
            for (url, url_stats) in &stats.per_url {
                let labels: Labels = vec![("alertmanager", url.clone())];
                ConstCounter::new(read(url_stats)).encode(metric.encode_family(&labels)?)?;
            }
        }
        let counters = [
            (
                "prometheus_notifications_dropped",
                "Total number of alerts dropped due to errors when sending to Alertmanager.",
                dropped,
            ),
            (
                "tocsin_notifier_local_alerts_accepted",
                "Rule alerts the node's own alerting core accepted.",
                stats.local_accepted,
            ),
            (
                "tocsin_notifier_local_alerts_rejected",
                "Rule alerts the node's own alerting core refused.",
                stats.local_rejected,
            ),
        ];
        drop(stats);
        for (name, help, value) in counters {
            ConstCounter::new(value).encode(encoder.encode_descriptor(
                name,
                help,
                None,
                MetricType::Counter,
            )?)?;
        }
        let gauges = [
            (
                "prometheus_notifications_queue_length",
                "The number of alert notifications in the queue.",
                queue_length as i64,
            ),
            (
                "prometheus_notifications_queue_capacity",
                "The capacity of the alert notifications queue.",
                queue_capacity as i64,
            ),
            (
                "prometheus_notifications_alertmanagers_discovered",
                "The number of alertmanagers discovered and active.",
                discovered as i64,
            ),
        ];
        for (name, help, value) in gauges {
            ConstGauge::new(value).encode(encoder.encode_descriptor(
                name,
                help,
                None,
                MetricType::Gauge,
            )?)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_quantiles_cover_the_recent_window_only() {
        let mut window = LatencyWindow::default();
        let start = Instant::now();
        assert!(window.quantiles(start).iter().all(|(_, v)| v.is_nan()));
        for value in 1..=100 {
            window.observe(start, f64::from(value));
        }
        let quantiles = window.quantiles(start);
        assert_eq!(quantiles, vec![(0.5, 50.0), (0.9, 90.0), (0.99, 99.0)]);
        let later = start + LATENCY_WINDOW + Duration::from_secs(1);
        assert!(window.quantiles(later).iter().all(|(_, v)| v.is_nan()));
        assert_eq!(window.count, 100);
        assert_eq!(window.sum, 5050.0);
    }
}
