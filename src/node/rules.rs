//! The rules shell: one task that sleeps until the next rule group is due, evaluates it off the
//! async workers over the node's TSDB (committing each rule's samples before the next rule
//! runs), and hands the alerts to an [`AlertSink`]. Reloads rebuild the groups through
//! [`Manager::update`], which keeps the state of what stayed.

use crate::config::LoadedConfig;
use crate::promql::{Engine, Queryable, Sample};
use crate::remote::read::{FanoutQueryable, RemoteRead};
use crate::rules::Group;
use crate::rules::group::Refusal;
use crate::rules::{
    AlertSink, Clock, EvalContext, Manager, ManagerOptions, OutgoingAlert, RuleStorage,
};
use crate::tsdb::{self, Tsdb};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The `--rules.*` flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RulesFlags {
    /// `--rules.alert.for-outage-tolerance`: how long an outage may last for `for` state to be
    /// restored.
    pub outage_tolerance: Duration,
    /// `--rules.alert.for-grace-period`: the least time a restored alert waits before firing.
    pub grace_period: Duration,
    /// `--rules.alert.resend-delay`: the least time between two sends of a firing alert.
    pub resend_delay: Duration,
}

impl Default for RulesFlags {
    fn default() -> Self {
        RulesFlags {
            outage_tolerance: Duration::from_secs(3600),
            grace_period: Duration::from_secs(600),
            resend_delay: Duration::from_secs(60),
        }
    }
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

struct WallClock;

impl Clock for WallClock {
    fn now_ns(&self) -> i64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| {
                i64::try_from(since.as_nanos()).unwrap_or(i64::MAX)
            })
    }
}

fn now_ms() -> i64 {
    WallClock.now_ns().div_euclid(1_000_000)
}

/// The TSDB as rules read and write it: one appender and commit per call. Reads also go to
/// the `remote_read` endpoints, as Prometheus's rules read its fan-out storage.
struct TsdbRuleStorage<'a> {
    tsdb: &'a Tsdb,
    source: FanoutQueryable<'a>,
}

impl RuleStorage for TsdbRuleStorage<'_> {
    fn queryable(&self) -> &dyn Queryable {
        &self.source
    }

    fn append_and_commit(&mut self, samples: &[Sample]) -> Result<Vec<Option<Refusal>>, String> {
        let mut appender = self.tsdb.appender();
        let refusals = samples
            .iter()
            .map(|sample| {
                let labels = tsdb::Labels::new(sample.labels.iter());
                appender
                    .append(&labels, sample.t, sample.v)
                    .err()
                    .map(|error| error.to_string())
            })
            .collect();
        appender.commit().map_err(|error| error.to_string())?;
        Ok(refusals)
    }
}

/// What the rules API and `/metrics` read, and the loop drives.
pub struct RulesRuntime {
    manager: Mutex<Manager>,
    /// The groups as of their last evaluation or reload, for readers: the API and `/metrics`
    /// never wait for an evaluation in progress.
    published: RwLock<Arc<Vec<Arc<Group>>>>,
    settings: Mutex<Settings>,
    tsdb: Arc<Tsdb>,
    remote_read: Arc<RemoteRead>,
    engine: Engine,
    sink: Arc<dyn AlertSink>,
    external_url: String,
    flags: RulesFlags,
    /// Wakes the loop when a reload changed the schedule.
    wake: tokio::sync::Notify,
}

#[derive(Debug, Clone)]
struct Settings {
    options: ManagerOptions,
    external_labels: Vec<(String, String)>,
}

fn settings(loaded: &LoadedConfig, flags: &RulesFlags) -> Settings {
    let global = &loaded.config.global;
    let mut external_labels: Vec<(String, String)> = global
        .external_labels
        .iter()
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .collect();
    external_labels.sort();
    Settings {
        options: ManagerOptions {
            evaluation_interval_ms: i64::try_from(global.evaluation_interval().as_millis())
                .unwrap_or(i64::MAX),
            query_offset_ms: i64::try_from(global.rule_query_offset.as_millis())
                .unwrap_or(i64::MAX),
            outage_tolerance_ms: millis(flags.outage_tolerance),
            grace_period_ms: millis(flags.grace_period),
        },
        external_labels,
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl RulesRuntime {
    /// Builds the groups of the configuration's rule files; the loop starts with [`run`].
    ///
    /// [`run`]: RulesRuntime::run
    pub fn new(
        loaded: &LoadedConfig,
        tsdb: Arc<Tsdb>,
        sink: Arc<dyn AlertSink>,
        remote_read: Arc<RemoteRead>,
        external_url: &str,
        flags: RulesFlags,
        engine: Engine,
    ) -> Result<Arc<RulesRuntime>, String> {
        let settings = settings(loaded, &flags);
        let mut manager = Manager::new();
        manager.update(&loaded.rule_files, &settings.options, now_ms())?;
        let published = manager.groups().iter().cloned().map(Arc::new).collect();
        Ok(Arc::new(RulesRuntime {
            manager: Mutex::new(manager),
            published: RwLock::new(Arc::new(published)),
            settings: Mutex::new(settings),
            tsdb,
            remote_read,
            engine,
            sink,
            external_url: external_url.trim_end_matches('/').to_string(),
            flags,
            wake: tokio::sync::Notify::new(),
        }))
    }

    /// Applies a reloaded configuration's rule files; on error the running groups stay.
    pub fn apply_config(&self, loaded: &LoadedConfig) -> Result<(), String> {
        let settings = settings(loaded, &self.flags);
        let mut manager = lock(&self.manager);
        manager.update(&loaded.rule_files, &settings.options, now_ms())?;
        // A changed group keeps its predecessor's evaluation time: copy everything.
        self.publish(&manager, true);
        drop(manager);
        *lock(&self.settings) = settings;
        self.wake.notify_one();
        Ok(())
    }

    /// The groups as of their last evaluation (sorted by file, then name).
    pub fn groups(&self) -> Arc<Vec<Arc<Group>>> {
        match self.published.read() {
            Ok(guard) => Arc::clone(&guard),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// Publishes the manager's groups; a group that did not run since the last publication is
    /// shared, not copied.
    fn publish(&self, manager: &Manager, everything: bool) {
        let previous = self.groups();
        let groups = manager
            .groups()
            .iter()
            .enumerate()
            .map(|(index, group)| match previous.get(index) {
                Some(old)
                    if !everything
                        && old.key() == group.key()
                        && old.last_evaluation_ns() == group.last_evaluation_ns()
                        && old.rules().len() == group.rules().len() =>
                {
                    Arc::clone(old)
                }
                _ => Arc::new(group.clone()),
            })
            .collect();
        *self
            .published
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::new(groups);
    }

    /// Runs the iterations due now; returns the alerts to send.
    fn run_due(&self) -> Vec<OutgoingAlert> {
        let settings = lock(&self.settings).clone();
        let ctx = EvalContext {
            engine: &self.engine,
            external_labels: &settings.external_labels,
            external_url: &self.external_url,
            resend_delay_ms: millis(self.flags.resend_delay),
            clock: &WallClock,
        };
        let mut storage = TsdbRuleStorage {
            tsdb: &self.tsdb,
            source: self.remote_read.queryable(&self.tsdb),
        };
        let mut manager = lock(&self.manager);
        let alerts = manager.run_due(&ctx, &mut storage, now_ms(), &settings.options);
        for warning in storage.source.take_warnings() {
            tracing::debug!(%warning, "rule evaluation read with a warning");
        }
        self.publish(&manager, false);
        alerts
    }

    /// Evaluates groups on their slots until shutdown.
    pub async fn run(self: Arc<Self>, mut shutdown: tokio::sync::watch::Receiver<bool>) {
        loop {
            if *shutdown.borrow() {
                return;
            }
            let due = lock(&self.manager).next_due_ms();
            let wait_ms = due.map_or(3_600_000, |due| (due - now_ms()).max(0));
            if wait_ms > 0 {
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(wait_ms as u64)) => {}
                    _ = self.wake.notified() => {}
                    _ = shutdown.wait_for(|stop| *stop) => return,
                }
                continue;
            }
            let runtime = Arc::clone(&self);
            match tokio::task::spawn_blocking(move || runtime.run_due()).await {
                Ok(alerts) => {
                    if !alerts.is_empty() {
                        self.sink.send(alerts);
                    }
                }
                Err(error) => tracing::error!(%error, "rule evaluation task failed"),
            }
        }
    }
}

/// Prometheus's rule-manager metrics, per group (`rule_group="<file>;<name>"`), read at scrape
/// time.
pub struct RulesMetrics(pub Arc<RulesRuntime>);

impl std::fmt::Debug for RulesMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RulesMetrics")
    }
}

impl prometheus_client::collector::Collector for RulesMetrics {
    fn encode(
        &self,
        mut encoder: prometheus_client::encoding::DescriptorEncoder,
    ) -> Result<(), std::fmt::Error> {
        use prometheus_client::encoding::EncodeMetric;
        use prometheus_client::metrics::MetricType;
        use prometheus_client::metrics::counter::ConstCounter;
        use prometheus_client::metrics::gauge::ConstGauge;
        type Values = Vec<(Vec<(&'static str, String)>, f64)>;
        // (name, help, type, value per group); counters are named without `_total`, which the
        // encoder appends.
        type Read = fn(&crate::rules::Group) -> f64;
        let families: [(&str, &str, MetricType, Read); 12] = [
            (
                "prometheus_rule_evaluations",
                "The total number of rule evaluations.",
                MetricType::Counter,
                |g| g.metrics().evaluations as f64,
            ),
            (
                "prometheus_rule_evaluation_failures",
                "The total number of rule evaluation failures.",
                MetricType::Counter,
                |g| g.metrics().evaluation_failures as f64,
            ),
            (
                "prometheus_rule_group_iterations_missed",
                "The total number of rule group evaluations missed due to slow rule group evaluation.",
                MetricType::Counter,
                |g| g.metrics().iterations_missed as f64,
            ),
            (
                "prometheus_rule_group_iterations",
                "The total number of scheduled rule group evaluations, whether executed or missed.",
                MetricType::Counter,
                |g| g.metrics().iterations as f64,
            ),
            (
                "prometheus_rule_group_duration_seconds_sum",
                "The duration of rule group evaluations (sum).",
                MetricType::Unknown,
                |g| g.metrics().duration_sum_seconds,
            ),
            (
                "prometheus_rule_group_duration_seconds_count",
                "The duration of rule group evaluations (count).",
                MetricType::Unknown,
                |g| g.metrics().duration_count as f64,
            ),
            (
                "prometheus_rule_group_last_duration_seconds",
                "The duration of the last rule group evaluation.",
                MetricType::Gauge,
                |g| g.evaluation_seconds(),
            ),
            (
                "prometheus_rule_group_last_evaluation_timestamp_seconds",
                "The timestamp of the last rule group evaluation in seconds.",
                MetricType::Gauge,
                |g| g.last_evaluation_ns().map_or(0.0, |ns| ns as f64 / 1e9),
            ),
            (
                "prometheus_rule_group_interval_seconds",
                "The interval of a rule group.",
                MetricType::Gauge,
                |g| g.interval_ms() as f64 / 1000.0,
            ),
            (
                "prometheus_rule_group_rules",
                "The number of rules.",
                MetricType::Gauge,
                |g| g.rules().len() as f64,
            ),
            (
                "prometheus_rule_group_last_evaluation_samples",
                "The number of samples returned during the last rule group evaluation.",
                MetricType::Gauge,
                |g| g.metrics().last_samples as f64,
            ),
            (
                "prometheus_rule_group_last_restore_duration_seconds",
                "The duration of the last alert rules alerts restoration using the `ALERTS_FOR_STATE` series.",
                MetricType::Gauge,
                |g| g.metrics().last_restore_seconds,
            ),
        ];
        let groups = self.0.groups();
        for (name, help, kind, read) in families {
            let values: Values = groups
                .iter()
                .map(|group| (vec![("rule_group", group.key())], read(group)))
                .collect();
            let mut metric = encoder.encode_descriptor(name, help, None, kind)?;
            for (labels, value) in &values {
                let encoder = metric.encode_family(labels)?;
                match kind {
                    MetricType::Counter => ConstCounter::new(*value).encode(encoder)?,
                    _ => ConstGauge::new(*value).encode(encoder)?,
                }
            }
        }
        Ok(())
    }
}
