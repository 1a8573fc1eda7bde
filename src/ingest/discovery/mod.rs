//! Service discovery: where targets come from, shared by scrape jobs and anything else that
//! discovers endpoints the way Prometheus does (Alertmanagers in `alerting:`).
//!
//! A [`Discovery`] gathers the mechanisms of one configuration section (`static_configs`,
//! `file_sd_configs`, `http_sd_configs`, `dns_sd_configs`) and, once spawned, publishes the
//! [`TargetGroup`]s of all of them on a `watch` channel each time any of them changes. HTTP
//! and DNS discovery refresh on their own `refresh_interval` in their own tasks; a refresh that
//! fails keeps that mechanism's last good groups, as Prometheus does.
//!
//! ```ignore
//! let discovery = Discovery::new(Sources { static_configs: &am.static_configs, ..Sources::default() }, base_dir)?;
//! let mut handle = discovery.spawn("alertmanager/0");
//! while handle.groups.changed().await.is_ok() { let groups = handle.groups.borrow().clone(); }
//! ```

pub mod dns;
pub mod http;

pub use super::targets::TargetGroup;
use super::targets::{self, FileSd};
use crate::config::Spanned;
use crate::config::prometheus::{DnsSdConfig, FileSdConfig, HttpSdConfig, StaticConfig};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};
use tokio::task::{JoinHandle, JoinSet};

/// How often file discovery checks its files at most (it also obeys a shorter
/// `refresh_interval`); a full re-read happens every `refresh_interval`.
const FILE_SD_POLL: Duration = Duration::from_secs(5);

/// How long the first publication waits for every HTTP and DNS mechanism's first answer, so
/// that a consumer does not first see a partial list (and, say, stop loops whose targets
/// simply have not been looked up yet).
pub const INITIAL_WAIT: Duration = Duration::from_secs(5);

/// The shortest refresh interval honoured (a `0s` in a config must not spin).
const MIN_REFRESH: Duration = Duration::from_secs(1);

/// Process-wide discovery counters, exported on `/metrics` under Prometheus's names.
#[derive(Debug, Default)]
pub struct SdCounters {
    /// `prometheus_sd_http_failures_total`.
    pub http_failures: AtomicU64,
    /// `prometheus_sd_dns_lookups_total`.
    pub dns_lookups: AtomicU64,
    /// `prometheus_sd_dns_lookup_failures_total`.
    pub dns_lookup_failures: AtomicU64,
    /// `prometheus_sd_file_read_errors_total`.
    pub file_read_errors: AtomicU64,
}

/// The process's discovery counters.
pub static SD_COUNTERS: SdCounters = SdCounters {
    http_failures: AtomicU64::new(0),
    dns_lookups: AtomicU64::new(0),
    dns_lookup_failures: AtomicU64::new(0),
    file_read_errors: AtomicU64::new(0),
};

/// The discovery lists of one configuration section.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sources<'a> {
    pub static_configs: &'a [Spanned<StaticConfig>],
    pub file_sd_configs: &'a [Spanned<FileSdConfig>],
    pub http_sd_configs: &'a [Spanned<HttpSdConfig>],
    pub dns_sd_configs: &'a [Spanned<DnsSdConfig>],
}

/// Settings that do not come from the configuration.
#[derive(Debug, Clone, Default)]
pub struct DiscoveryOptions {
    /// Send every DNS query to this server instead of those of `/etc/resolv.conf`. For tests,
    /// which run their own DNS server on 127.0.0.1.
    pub dns_server: Option<SocketAddr>,
}

/// The discovery mechanisms of one section, not yet running.
pub struct Discovery {
    statics: Vec<TargetGroup>,
    files: Vec<(FileSd, Duration)>,
    refreshers: Vec<Refresher>,
}

/// A mechanism that asks something over the network on its own interval.
enum Refresher {
    Http(http::HttpSd),
    Dns(Box<dns::DnsSd>),
}

impl Refresher {
    fn interval(&self) -> Duration {
        match self {
            Refresher::Http(sd) => sd.refresh_interval(),
            Refresher::Dns(sd) => sd.refresh_interval(),
        }
        .max(MIN_REFRESH)
    }

    /// The groups now, or why they could not be had (the caller keeps the last ones).
    async fn refresh(&mut self) -> Result<Vec<TargetGroup>, String> {
        match self {
            Refresher::Http(sd) => sd.refresh().await,
            Refresher::Dns(sd) => sd.refresh().await,
        }
    }
}

/// A running [`Discovery`]: the latest groups, and the task that keeps them up to date (aborted
/// when this is dropped).
pub struct DiscoveryHandle {
    /// Every group of every mechanism; changes each time any of them changes.
    pub groups: watch::Receiver<Arc<Vec<TargetGroup>>>,
    task: JoinHandle<()>,
}

impl DiscoveryHandle {
    /// Stops discovery.
    pub fn stop(self) {
        self.task.abort();
    }
}

impl Drop for DiscoveryHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Discovery {
    /// Builds every mechanism of `sources`; relative paths resolve against `base_dir`. Fails
    /// (naming the mechanism) when one cannot be built, say an unreadable credentials file.
    pub fn new(
        sources: Sources<'_>,
        base_dir: &Path,
        options: &DiscoveryOptions,
    ) -> Result<Discovery, String> {
        let statics = targets::static_config_groups(sources.static_configs);
        let files = sources
            .file_sd_configs
            .iter()
            .map(|sd| {
                let files = sd.value.files.iter().map(|file| file.value.clone());
                let refresh = sd.value.refresh_interval.as_std().max(MIN_REFRESH);
                (FileSd::new(files, base_dir), refresh)
            })
            .collect();
        let mut refreshers = Vec::new();
        for (index, sd) in sources.http_sd_configs.iter().enumerate() {
            let built = http::HttpSd::new(&sd.value, base_dir)
                .map_err(|error| format!("http_sd_configs[{index}]: {error}"))?;
            refreshers.push(Refresher::Http(built));
        }
        for (index, sd) in sources.dns_sd_configs.iter().enumerate() {
            let built = match options.dns_server {
                Some(server) => dns::DnsSd::with_server(&sd.value, server),
                None => dns::DnsSd::new(&sd.value),
            }
            .map_err(|error| format!("dns_sd_configs[{index}]: {error}"))?;
            refreshers.push(Refresher::Dns(Box::new(built)));
        }
        Ok(Discovery {
            statics,
            files,
            refreshers,
        })
    }

    /// Runs discovery in a task of the current tokio runtime. `name` (a job name, say) is only
    /// for logs.
    pub fn spawn(self, name: &str) -> DiscoveryHandle {
        let (sender, groups) = watch::channel(Arc::new(Vec::new()));
        let task = tokio::spawn(self.run(name.to_string(), sender));
        DiscoveryHandle { groups, task }
    }

    /// Publishes the groups on `sender` until every receiver is gone.
    async fn run(self, name: String, sender: watch::Sender<Arc<Vec<TargetGroup>>>) {
        let Discovery {
            statics,
            mut files,
            refreshers,
        } = self;
        let mut file_groups: Vec<Vec<TargetGroup>> = vec![Vec::new(); files.len()];
        let mut refreshed: Vec<Vec<TargetGroup>> = vec![Vec::new(); refreshers.len()];
        let mut awaiting_first = refreshers.len();
        // Each refresher reports (index, groups or None for a failed refresh).
        let (report, mut reports) = mpsc::channel::<(usize, Option<Vec<TargetGroup>>)>(16);
        // Dropped with this task, which aborts the refreshers.
        let mut tasks = JoinSet::new();
        for (index, refresher) in refreshers.into_iter().enumerate() {
            tasks.spawn(run_refresher(
                name.clone(),
                index,
                refresher,
                report.clone(),
            ));
        }
        drop(report);
        let mut reports_open = !tasks.is_empty();
        let mut last_full: Vec<Instant> = vec![Instant::now(); files.len()];
        let poll = files
            .iter()
            .map(|(_, refresh)| *refresh)
            .min()
            .unwrap_or(FILE_SD_POLL)
            .min(FILE_SD_POLL);
        let mut ticks = tokio::time::interval(poll);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let first_deadline = tokio::time::Instant::now() + INITIAL_WAIT;
        let mut published_once = false;
        loop {
            let mut changed = false;
            tokio::select! {
                _ = ticks.tick() => {
                    for (index, (sd, refresh)) in files.iter_mut().enumerate() {
                        if last_full[index].elapsed() >= *refresh {
                            sd.invalidate();
                            last_full[index] = Instant::now();
                        }
                        if let Some(groups) = sd.refresh() {
                            file_groups[index] = groups;
                            changed = true;
                        }
                        for error in &sd.errors {
                            SD_COUNTERS.file_read_errors.fetch_add(1, Ordering::Relaxed);
                            tracing::warn!(discovery = name, %error, "file_sd: cannot read targets");
                        }
                    }
                }
                received = reports.recv(), if reports_open => {
                    let Some((index, groups)) = received else {
                        reports_open = false;
                        continue;
                    };
                    if !published_once {
                        awaiting_first = awaiting_first.saturating_sub(1);
                    }
                    if let Some(groups) = groups
                        && refreshed[index] != groups
                    {
                        refreshed[index] = groups;
                        changed = true;
                    }
                }
                _ = tokio::time::sleep_until(first_deadline), if !published_once => {
                    changed = true;
                }
                _ = sender.closed() => return,
            }
            let first_ready = awaiting_first == 0 || tokio::time::Instant::now() >= first_deadline;
            if !published_once && !first_ready {
                continue;
            }
            if changed || !published_once {
                published_once = true;
                let mut all = statics.clone();
                all.extend(file_groups.iter().flatten().cloned());
                all.extend(refreshed.iter().flatten().cloned());
                if sender.send(Arc::new(all)).is_err() {
                    return;
                }
            }
        }
    }
}

/// Refreshes one mechanism every interval, reporting each outcome.
async fn run_refresher(
    name: String,
    index: usize,
    mut refresher: Refresher,
    report: mpsc::Sender<(usize, Option<Vec<TargetGroup>>)>,
) {
    let interval = refresher.interval();
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let outcome = match refresher.refresh().await {
            Ok(groups) => Some(groups),
            Err(error) => {
                let kind = match refresher {
                    Refresher::Http(_) => "http_sd",
                    Refresher::Dns(_) => "dns_sd",
                };
                tracing::warn!(discovery = name, mechanism = kind, %error, "discovery refresh failed; keeping the last targets");
                None
            }
        };
        if report.send((index, outcome)).await.is_err() {
            return;
        }
    }
}

/// The number of targets in `groups`.
pub fn target_count(groups: &[TargetGroup]) -> usize {
    groups.iter().map(|group| group.targets.len()).sum()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::ingest::targets::ADDRESS_LABEL;

    fn addresses(groups: &[TargetGroup]) -> Vec<String> {
        groups
            .iter()
            .flat_map(|group| group.targets.iter())
            .map(|target| target[ADDRESS_LABEL].clone())
            .collect()
    }

    #[tokio::test]
    async fn publishes_static_and_file_groups_and_follows_file_changes() {
        let folder = tempfile::tempdir().unwrap();
        let file = folder.path().join("am.json");
        std::fs::write(&file, r#"[{"targets": ["b:2"]}]"#).unwrap();
        let mut config: Config = crate::config::parse_document(
            concat!(
                "scrape_configs:\n",
                "- job_name: j\n",
                "  static_configs: [{targets: ['a:1']}]\n",
                "  file_sd_configs: [{files: ['am.json'], refresh_interval: 1s}]\n",
            ),
            "p.yml",
        )
        .unwrap();
        config.finish().unwrap();
        let job = &config.scrape_configs[0].value;
        let sources = Sources {
            static_configs: &job.static_configs,
            file_sd_configs: &job.file_sd_configs,
            ..Sources::default()
        };
        let discovery =
            Discovery::new(sources, folder.path(), &DiscoveryOptions::default()).unwrap();
        let mut handle = discovery.spawn("test");
        handle.groups.changed().await.unwrap();
        let groups = Arc::clone(&handle.groups.borrow_and_update());
        assert_eq!(addresses(&groups), ["a:1", "b:2"]);
        assert_eq!(target_count(&groups), 2);
        // A larger file is a change whatever the file system's timestamp granularity.
        std::fs::write(&file, r#"[{"targets": ["b:2", "c:3"]}]"#).unwrap();
        handle.groups.changed().await.unwrap();
        let groups = Arc::clone(&handle.groups.borrow_and_update());
        assert_eq!(addresses(&groups), ["a:1", "b:2", "c:3"]);
        handle.stop();
    }

    #[test]
    fn a_mechanism_that_cannot_be_built_is_named() {
        let mut config: Config = crate::config::parse_document(
            concat!(
                "scrape_configs:\n",
                "- job_name: j\n",
                "  http_sd_configs:\n",
                "  - url: http://127.0.0.1:1/sd\n",
                "    bearer_token_file: missing-token\n",
            ),
            "p.yml",
        )
        .unwrap();
        config.finish().unwrap();
        let job = &config.scrape_configs[0].value;
        let sources = Sources {
            http_sd_configs: &job.http_sd_configs,
            ..Sources::default()
        };
        let folder = tempfile::tempdir().unwrap();
        let error = Discovery::new(sources, folder.path(), &DiscoveryOptions::default())
            .err()
            .unwrap();
        assert!(
            error.starts_with("http_sd_configs[0]: bearer_token_file \"missing-token\""),
            "{error}"
        );
    }
}
