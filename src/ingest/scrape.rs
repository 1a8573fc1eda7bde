//! The scrape manager: one pool per job, one loop per target, samples into the TSDB.
//!
//! A loop waits its offset (Prometheus's hash-spread phase), then every `scrape_interval`
//! fetches the target (timeout `scrape_timeout`, `Accept` negotiation, gzip, `body_size_limit`),
//! parses the body (text 0.0.4 or OpenMetrics), applies `honor_labels`, `honor_timestamps`,
//! `metric_relabel_configs` and the limits, appends everything through one TSDB appender and
//! commits once. It then writes `up`, `scrape_duration_seconds`, `scrape_samples_scraped`,
//! `scrape_samples_post_metric_relabeling` and `scrape_series_added`, and stale markers for
//! series the target stopped exposing. A target that goes away gets stale markers for all its
//! series about two intervals later (unless the node shuts down), as Prometheus does.
//!
//! Series labels are cached per loop by their exposition text, as Prometheus's scrape cache
//! does, so relabeling runs once per series, not once per sample. The `# TYPE`, `# HELP` and
//! `# UNIT` of the last successful scrape are kept per target for `/api/v1/metadata`.
//!
//! Each pool's targets come from its [`Discovery`] (static, file, HTTP and DNS).

use super::discovery::{self, Discovery, DiscoveryOptions, Sources};
use super::parse::MetricType;
use super::parse::{Entry, Escaped, OpenMetricsParser, ParseError, TextParser};
use super::relabel::{self, LabelBuilder};
use super::series_hash::SeriesHashState;
use super::targets::{self, Populated, Target, TargetGroup};
use crate::config::http_client::HttpClientConfig;
use crate::config::prometheus::{NameValidation, ScrapeConfig, ScrapeProtocol};
use crate::config::{PromDuration, Secret};
use crate::tsdb::head::RefMap;
use crate::tsdb::{AppendError, Labels, SeriesRef, Tsdb};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The NaN Prometheus writes to mark a series stale.
pub const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;

/// The largest body read when the job sets no `body_size_limit` (a bound from outside all
/// the same).
pub const MAX_BODY_BYTES: u64 = 256 << 20;

/// The most series one loop's cache holds (a target exposing more fails its scrape).
pub const MAX_SERIES_PER_TARGET: usize = 2_000_000;

/// The most dropped targets kept per pool for `/api/v1/targets` when the job sets no
/// `keep_dropped_targets`.
pub const MAX_DROPPED_TARGETS: usize = 10_000;

/// The most metric families whose metadata (TYPE, HELP, UNIT) is kept per target; families
/// beyond it have none.
pub const MAX_METADATA_PER_TARGET: usize = 20_000;

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn unix_ms(time: SystemTime) -> i64 {
    time.duration_since(UNIX_EPOCH).map_or(0, |since| {
        i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
    })
}

/// Settings of the manager that do not come from a job.
#[derive(Debug, Clone, Default)]
pub struct ScrapeOptions {
    /// Mixed into every target's offset (Prometheus hashes its external labels and host name
    /// into it), so that two servers scraping the same targets do not scrape in lockstep.
    pub offset_seed: u64,
    /// The folder relative paths (`file_sd_configs`, `*_file`) resolve against.
    pub base_dir: PathBuf,
    /// Settings of discovery that do not come from the configuration.
    pub discovery: DiscoveryOptions,
}

/// A metric family's metadata as the exposition declared it (`# TYPE`, `# HELP`, `# UNIT`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MetricMetadata {
    /// Prometheus's name for the type (`counter`, `gauge`, ..., `unknown`).
    pub kind: &'static str,
    pub help: String,
    pub unit: String,
}

impl Default for MetricMetadata {
    fn default() -> Self {
        MetricMetadata {
            kind: MetricType::Unknown.as_str(),
            help: String::new(),
            unit: String::new(),
        }
    }
}

/// A target's metadata by metric family name, from its last successful scrape.
pub type TargetMetadata = BTreeMap<String, MetricMetadata>;

/// Counters of the whole manager, exported under Prometheus's names.
#[derive(Debug, Default)]
pub struct ScrapeCounters {
    /// `prometheus_target_scrape_pools_total`: pool creation attempts.
    pub scrape_pools: AtomicU64,
    /// `prometheus_target_scrape_pools_failed_total`: pools that could not be created.
    pub scrape_pools_failed: AtomicU64,
    /// `prometheus_target_scrapes_exceeded_sample_limit_total`.
    pub exceeded_sample_limit: AtomicU64,
    /// `prometheus_target_scrapes_sample_duplicate_timestamp_total`.
    pub duplicate_timestamp: AtomicU64,
    /// `prometheus_target_scrapes_sample_out_of_order_total`.
    pub out_of_order: AtomicU64,
    /// `prometheus_target_scrapes_sample_out_of_bounds_total`.
    pub out_of_bounds: AtomicU64,
}

/// A pool's numbers for `/metrics`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolStats {
    pub job: String,
    /// Targets its discovery found (`prometheus_sd_discovered_targets`).
    pub discovered: u64,
    /// Targets it scrapes (`prometheus_target_scrape_pool_targets`).
    pub active: u64,
}

/// A target's health, as `/api/v1/targets` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    Unknown,
    Up,
    Down,
}

impl Health {
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Unknown => "unknown",
            Health::Up => "up",
            Health::Down => "down",
        }
    }
}

/// What the last scrape of a target did.
#[derive(Debug, Clone)]
pub struct ScrapeStatus {
    pub health: Health,
    pub last_error: String,
    pub last_scrape: Option<SystemTime>,
    pub last_duration: Duration,
    pub samples: u64,
    /// The metric metadata of the last successful scrape.
    pub metadata: Arc<TargetMetadata>,
}

impl Default for ScrapeStatus {
    fn default() -> Self {
        ScrapeStatus {
            health: Health::Unknown,
            last_error: String::new(),
            last_scrape: None,
            last_duration: Duration::ZERO,
            samples: 0,
            metadata: Arc::new(TargetMetadata::new()),
        }
    }
}

/// An active target and its last scrape, for the API.
#[derive(Debug, Clone)]
pub struct ActiveTarget {
    pub pool: String,
    pub target: Target,
    pub status: ScrapeStatus,
}

/// A target relabeling dropped, for the API.
#[derive(Debug, Clone)]
pub struct DroppedTarget {
    pub pool: String,
    pub discovered: LabelBuilder,
}

/// How a loop ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StopMode {
    /// The target went away: write stale markers once it is clear it is not coming back.
    Vanished,
    /// The job's configuration changed: a new loop takes over this one's series.
    Reload,
    /// The node is stopping: no stale markers (it will resume where it left off).
    Shutdown,
}

/// A scraped series as the loop's cache keeps it, found by its exposition text.
#[derive(Debug, Clone)]
struct CachedSeries {
    /// Its final labels (after `honor_labels` and `metric_relabel_configs`).
    labels: Arc<Labels>,
    /// Hash of `labels`: the key of the staleness sets, computed once per series.
    hash: u64,
    /// Its reference in the head once a sample was appended, for appending by reference;
    /// `None` before (or after a refusal kept the series from being created).
    series_ref: Option<SeriesRef>,
}

impl CachedSeries {
    fn new(labels: Arc<Labels>) -> CachedSeries {
        let hash = std::hash::BuildHasher::hash_one(&SERIES_HASHER, &*labels);
        CachedSeries {
            labels,
            hash,
            series_ref: None,
        }
    }
}

/// Fixed-key SipHash for label-set hashes (the same in every loop: handed-over staleness
/// sets stay valid).
const SERIES_HASHER: std::hash::BuildHasherDefault<std::hash::DefaultHasher> =
    std::hash::BuildHasherDefault::new();

/// Series by label-set hash, for staleness (Prometheus's `seriesCur`/`seriesPrev`).
type SeenSeries = RefMap<Arc<Labels>>;

/// A line's entry in the scrape cache.
#[derive(Debug)]
struct CacheEntry {
    /// Its series, `None` when relabeling dropped it.
    series: Option<CachedSeries>,
    /// The number of the last scrape that exposed it ([`LoopCache::scrape`]).
    scrape: u64,
}

/// The report series' names, in the order [`LoopCache::report`] keeps them.
const REPORT_NAMES: [&str; 5] = [
    "up",
    "scrape_duration_seconds",
    "scrape_samples_scraped",
    "scrape_samples_post_metric_relabeling",
    "scrape_series_added",
];

/// What a loop remembers between scrapes.
#[derive(Debug, Default)]
struct LoopCache {
    /// A series' exposition text ([`super::parse::Sample::series`]) to its cached labels
    /// and reference: one hash (a fast one) and one comparison per line, no copy. After a
    /// successful scrape it holds exactly that scrape's series: the others are dropped.
    series: HashMap<Box<[u8]>, CacheEntry, SeriesHashState>,
    /// Counts scrapes, to tell the entries a scrape exposed.
    scrape: u64,
    /// Series of the last scrape that get stale markers when they vanish.
    seen: SeenSeries,
    /// An empty map whose room the next scrape's `seen` reuses.
    spare_seen: SeenSeries,
    /// The timestamp of the last scrape, in milliseconds.
    last_ms: Option<i64>,
    /// The metadata of the last successful scrape.
    metadata: Arc<TargetMetadata>,
    /// That scrape's `# HELP`, `# TYPE` and `# UNIT` lines as [`metadata_text`] encodes
    /// them: a scrape with the same lines keeps `metadata` instead of building it again.
    metadata_text: Vec<u8>,
    /// The report series (in [`REPORT_NAMES`] order), made on the first scrape, with their
    /// references once appended.
    report: Vec<(Labels, Option<SeriesRef>)>,
    /// The body buffer, kept between scrapes so that its room is reused.
    body: Vec<u8>,
}

/// The targets and caches of a changed job's old loops, by target hash.
type Handovers = HashMap<u64, (Target, Arc<Mutex<LoopCache>>)>;

/// A running loop.
struct LoopHandle {
    target: Target,
    status: Arc<Mutex<ScrapeStatus>>,
    stop: watch::Sender<Option<StopMode>>,
    /// Handed to the next loop on reload.
    cache: Arc<Mutex<LoopCache>>,
    task: JoinHandle<()>,
}

/// A job's settings as loops use them.
struct PoolShared {
    name: String,
    config: ScrapeConfig,
    client: reqwest::Client,
    auth: Auth,
    accept: String,
    tsdb: Arc<Tsdb>,
    seed: u64,
    over_target_limit: AtomicBool,
    /// Scrapes done, for tests and metrics.
    scrapes: AtomicU64,
    /// Targets discovery found at the last update.
    discovered: AtomicU64,
    counters: Arc<ScrapeCounters>,
}

#[derive(Default)]
struct PoolState {
    loops: BTreeMap<u64, LoopHandle>,
    dropped: Vec<DroppedTarget>,
}

struct Pool {
    /// What the pool was built from: the job as JSON plus its resolved credentials.
    fingerprint: (String, Auth),
    shared: Arc<PoolShared>,
    state: Arc<Mutex<PoolState>>,
    /// Stops the pool's discovery (and with it the task that follows it).
    discovery_stop: watch::Sender<bool>,
    discovery: JoinHandle<()>,
}

/// Credentials added to every request of a client (scrapes, HTTP discovery).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Auth {
    basic: Option<(String, String)>,
    authorization: Option<String>,
}

impl Auth {
    /// Adds the credentials to a request.
    pub(crate) fn apply(&self, mut request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        if let Some((user, password)) = &self.basic {
            request = request.basic_auth(user, Some(password));
        }
        if let Some(authorization) = &self.authorization {
            request = request.header(reqwest::header::AUTHORIZATION, authorization.as_str());
        }
        request
    }
}

/// Every job's pool of targets. Cheap to share (`Arc`).
pub struct ScrapeManager {
    tsdb: Arc<Tsdb>,
    options: Mutex<ScrapeOptions>,
    runtime: tokio::runtime::Handle,
    pools: Mutex<BTreeMap<String, Pool>>,
    counters: Arc<ScrapeCounters>,
}

impl ScrapeManager {
    /// A manager with no jobs. Must be called inside a tokio runtime, which runs its tasks.
    pub fn new(tsdb: Arc<Tsdb>, options: ScrapeOptions) -> Result<Arc<ScrapeManager>, String> {
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|error| format!("the scrape manager needs a tokio runtime: {error}"))?;
        // reqwest looks the rustls provider up; the node installs it at start, tests may not.
        tocsin_receivers::http_client::install_crypto_provider();
        Ok(Arc::new(ScrapeManager {
            tsdb,
            options: Mutex::new(options),
            runtime,
            pools: Mutex::new(BTreeMap::new()),
            counters: Arc::new(ScrapeCounters::default()),
        }))
    }

    /// Brings the pools in line with `jobs`: new jobs start, removed jobs stop (their series
    /// marked stale), changed jobs restart their loops keeping their series, unchanged jobs
    /// keep running untouched. Errors (a job whose client cannot be built) leave that job as
    /// it was; the other jobs are applied.
    pub fn apply_config(&self, jobs: &[ScrapeConfig], base_dir: &Path) -> Result<(), String> {
        lock(&self.options).base_dir = base_dir.to_path_buf();
        let seed = lock(&self.options).offset_seed;
        let discovery_options = lock(&self.options).discovery.clone();
        let mut errors = Vec::new();
        let mut pools = lock(&self.pools);
        let names: HashSet<&str> = jobs.iter().map(ScrapeConfig::job_name).collect();
        let removed: Vec<String> = pools
            .keys()
            .filter(|name| !names.contains(name.as_str()))
            .cloned()
            .collect();
        for name in removed {
            if let Some(pool) = pools.remove(&name) {
                stop_pool(pool, StopMode::Vanished);
            }
        }
        for job in jobs {
            let name = job.job_name().to_string();
            let auth = match resolve_http_auth(&job.http_client(), base_dir) {
                Ok(auth) => auth,
                Err(error) => {
                    self.counters.scrape_pools.fetch_add(1, Ordering::Relaxed);
                    self.counters
                        .scrape_pools_failed
                        .fetch_add(1, Ordering::Relaxed);
                    errors.push(format!("job {name:?}: {error}"));
                    continue;
                }
            };
            let fingerprint = (serde_json::to_string(job).unwrap_or_default(), auth.clone());
            if pools
                .get(&name)
                .is_some_and(|pool| pool.fingerprint == fingerprint)
            {
                continue;
            }
            self.counters.scrape_pools.fetch_add(1, Ordering::Relaxed);
            let built = build_http_client(&job.http_client(), base_dir, job.enable_compression)
                .and_then(|client| {
                    let sources = Sources {
                        static_configs: &job.static_configs,
                        file_sd_configs: &job.file_sd_configs,
                        http_sd_configs: &job.http_sd_configs,
                        dns_sd_configs: &job.dns_sd_configs,
                    };
                    let discovery = Discovery::new(sources, base_dir, &discovery_options)?;
                    Ok((client, discovery))
                });
            let (client, discovery) = match built {
                Ok(built) => built,
                Err(error) => {
                    self.counters
                        .scrape_pools_failed
                        .fetch_add(1, Ordering::Relaxed);
                    errors.push(format!("job {name:?}: {error}"));
                    continue;
                }
            };
            let shared = Arc::new(PoolShared {
                name: name.clone(),
                config: job.clone(),
                client,
                auth,
                accept: accept_header(job.scrape_protocols(), job.escaping_scheme().as_str()),
                tsdb: Arc::clone(&self.tsdb),
                seed,
                over_target_limit: AtomicBool::new(false),
                scrapes: AtomicU64::new(0),
                discovered: AtomicU64::new(0),
                counters: Arc::clone(&self.counters),
            });
            // A changed job: its loops stop without stale markers and hand their series over.
            let (state, previous) = match pools.remove(&name) {
                Some(old) => {
                    let _ = old.discovery_stop.send(true);
                    old.discovery.abort();
                    let mut state = lock(&old.state);
                    let handovers: Handovers = state
                        .loops
                        .iter()
                        .map(|(hash, handle)| {
                            (*hash, (handle.target.clone(), Arc::clone(&handle.cache)))
                        })
                        .collect();
                    for (_, handle) in std::mem::take(&mut state.loops) {
                        let _ = handle.stop.send(Some(StopMode::Reload));
                    }
                    drop(state);
                    (Arc::new(Mutex::new(PoolState::default())), handovers)
                }
                None => (Arc::new(Mutex::new(PoolState::default())), HashMap::new()),
            };
            let (discovery_stop, stop_receiver) = watch::channel(false);
            let discovery = self.runtime.spawn(run_discovery(
                Arc::clone(&shared),
                Arc::clone(&state),
                discovery,
                previous,
                stop_receiver,
            ));
            pools.insert(
                name,
                Pool {
                    fingerprint,
                    shared,
                    state,
                    discovery_stop,
                    discovery,
                },
            );
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors.join("; "))
        }
    }

    /// The job names, sorted.
    pub fn pool_names(&self) -> Vec<String> {
        lock(&self.pools).keys().cloned().collect()
    }

    /// Every active target with its last scrape, by pool then target labels.
    pub fn active_targets(&self) -> Vec<ActiveTarget> {
        let pools = lock(&self.pools);
        let mut out = Vec::new();
        for (name, pool) in pools.iter() {
            let state = lock(&pool.state);
            let mut targets: Vec<ActiveTarget> = state
                .loops
                .values()
                .map(|handle| ActiveTarget {
                    pool: name.clone(),
                    target: handle.target.clone(),
                    status: lock(&handle.status).clone(),
                })
                .collect();
            targets.sort_by(|a, b| a.target.labels.iter().cmp(b.target.labels.iter()));
            out.extend(targets);
        }
        out
    }

    /// Targets relabeling dropped, per pool.
    pub fn dropped_targets(&self) -> Vec<DroppedTarget> {
        let pools = lock(&self.pools);
        pools
            .values()
            .flat_map(|pool| lock(&pool.state).dropped.clone())
            .collect()
    }

    /// Dropped targets per pool (`droppedTargetCounts`).
    pub fn dropped_counts(&self) -> BTreeMap<String, usize> {
        let pools = lock(&self.pools);
        pools
            .iter()
            .map(|(name, pool)| (name.clone(), lock(&pool.state).dropped.len()))
            .collect()
    }

    /// Scrapes done by a job's loops since its pool (re)started.
    pub fn scrapes(&self, job: &str) -> u64 {
        lock(&self.pools)
            .get(job)
            .map_or(0, |pool| pool.shared.scrapes.load(Ordering::Relaxed))
    }

    /// The manager's counters.
    pub fn counters(&self) -> &ScrapeCounters {
        &self.counters
    }

    /// Each pool's discovered and active targets, by job name.
    pub fn pool_stats(&self) -> Vec<PoolStats> {
        lock(&self.pools)
            .iter()
            .map(|(job, pool)| PoolStats {
                job: job.clone(),
                discovered: pool.shared.discovered.load(Ordering::Relaxed),
                active: lock(&pool.state).loops.len() as u64,
            })
            .collect()
    }

    /// Stops every loop without stale markers (the node is shutting down) and waits for them.
    pub async fn stop(&self) {
        let pools = std::mem::take(&mut *lock(&self.pools));
        let mut tasks = Vec::new();
        for (_, pool) in pools {
            tasks.extend(stop_pool(pool, StopMode::Shutdown));
        }
        for task in tasks {
            let _ = task.await;
        }
    }
}

/// Stops a pool's discovery and loops; returns the loops' tasks.
fn stop_pool(pool: Pool, mode: StopMode) -> Vec<JoinHandle<()>> {
    let _ = pool.discovery_stop.send(true);
    pool.discovery.abort();
    let mut state = lock(&pool.state);
    std::mem::take(&mut state.loops)
        .into_values()
        .map(|handle| {
            let _ = handle.stop.send(Some(mode));
            handle.task
        })
        .collect()
}

/// Prometheus's `acceptHeader`: the protocols in order with falling weights, then `*/*`.
pub fn accept_header(protocols: &[ScrapeProtocol], escaping: &str) -> String {
    let mut weight = 6usize;
    let mut parts = Vec::with_capacity(protocols.len() + 1);
    for protocol in protocols {
        let mut part = protocol.header_value().to_string();
        if matches!(
            protocol,
            ScrapeProtocol::PrometheusText1_0_0 | ScrapeProtocol::OpenMetricsText1_0_0
        ) {
            part.push_str(";escaping=");
            part.push_str(escaping);
        }
        part.push_str(&format!(";q=0.{weight}"));
        parts.push(part);
        weight = weight.saturating_sub(1);
    }
    parts.push(format!("*/*;q=0.{weight}"));
    parts.join(",")
}

/// Reads a credentials file (relative to `base_dir`), trimmed, at most 1 MiB.
fn read_secret_file(base_dir: &Path, key: &str, file: &str) -> Result<String, String> {
    use std::io::Read;
    let path = base_dir.join(file);
    let opened = std::fs::File::open(&path).map_err(|error| format!("{key} {file:?}: {error}"))?;
    let mut text = String::new();
    opened
        .take(1 << 20)
        .read_to_string(&mut text)
        .map_err(|error| format!("{key} {file:?}: {error}"))?;
    Ok(text.trim().to_string())
}

fn secret_or_file(
    base_dir: &Path,
    inline: &Secret,
    key: &str,
    file: &str,
) -> Result<String, String> {
    if !inline.is_empty() {
        Ok(inline.expose().to_string())
    } else if !file.is_empty() {
        read_secret_file(base_dir, key, file)
    } else {
        Ok(String::new())
    }
}

/// The credentials of an HTTP client configuration, files read relative to `base_dir`.
pub(crate) fn resolve_http_auth(http: &HttpClientConfig, base_dir: &Path) -> Result<Auth, String> {
    let basic = match &http.basic_auth {
        Some(basic) => {
            let basic = &basic.value;
            let username = if basic.username_file.is_empty() {
                basic.username.clone()
            } else {
                read_secret_file(base_dir, "basic_auth.username_file", &basic.username_file)?
            };
            let password = secret_or_file(
                base_dir,
                &basic.password,
                "basic_auth.password_file",
                &basic.password_file,
            )?;
            Some((username, password))
        }
        None => None,
    };
    let authorization = if let Some(authorization) = &http.authorization {
        let authorization = &authorization.value;
        let credentials = secret_or_file(
            base_dir,
            &authorization.credentials,
            "authorization.credentials_file",
            &authorization.credentials_file,
        )?;
        Some(format!("{} {credentials}", authorization.scheme()))
    } else if let Some(token) = &http.bearer_token {
        Some(format!("Bearer {}", token.value.expose()))
    } else if let Some(file) = &http.bearer_token_file {
        Some(format!(
            "Bearer {}",
            read_secret_file(base_dir, "bearer_token_file", &file.value)?
        ))
    } else {
        None
    };
    Ok(Auth {
        basic,
        authorization,
    })
}

/// A client for an HTTP client configuration (TLS on rustls, redirects, proxy), HTTP/1.1,
/// gzip when `gzip`.
pub(crate) fn build_http_client(
    http: &HttpClientConfig,
    base_dir: &Path,
    gzip: bool,
) -> Result<reqwest::Client, String> {
    use tocsin_receivers::http_client::{TlsSettings, TlsVersion, rustls_client_config};
    if http.proxy_from_environment || !http.no_proxy.is_empty() {
        return Err("proxy_from_environment and no_proxy are not supported by Tocsin".into());
    }
    let tls = match &http.tls_config {
        Some(tls) => {
            let tls = &tls.value;
            let pem = |inline: &str, key: &str, file: &str| -> Result<Option<String>, String> {
                if !inline.is_empty() {
                    Ok(Some(inline.to_string()))
                } else if !file.is_empty() {
                    read_secret_file(base_dir, key, file).map(Some)
                } else {
                    Ok(None)
                }
            };
            use crate::config::http_client::TlsVersion as Config;
            TlsSettings {
                ca_pem: pem(&tls.ca, "tls_config.ca_file", &tls.ca_file)?,
                client_cert_pem: pem(&tls.cert, "tls_config.cert_file", &tls.cert_file)?,
                client_key_pem: pem(tls.key.expose(), "tls_config.key_file", &tls.key_file)?,
                server_name: Some(tls.server_name.clone()).filter(|name| !name.is_empty()),
                insecure_skip_verify: tls.insecure_skip_verify,
                min_version: tls.min_version.map(|version| match version {
                    Config::TLS10 => TlsVersion::Tls10,
                    Config::TLS11 => TlsVersion::Tls11,
                    Config::TLS12 => TlsVersion::Tls12,
                    Config::TLS13 => TlsVersion::Tls13,
                }),
            }
        }
        None => TlsSettings::default(),
    };
    let tls = rustls_client_config(&tls, &[b"http/1.1".to_vec()]).map_err(|e| e.to_string())?;
    let redirects = if http.follow_redirects {
        reqwest::redirect::Policy::limited(10)
    } else {
        reqwest::redirect::Policy::none()
    };
    let mut builder = reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .user_agent(tocsin_receivers::http_client::USER_AGENT)
        .redirect(redirects)
        .gzip(gzip)
        .http1_only();
    builder = match &http.proxy_url {
        Some(url) => builder.proxy(
            reqwest::Proxy::all(url.value.as_str())
                .map_err(|error| format!("proxy_url {:?}: {error}", url.value))?,
        ),
        None => builder.no_proxy(),
    };
    builder.build().map_err(|error| error.to_string())
}

/// Keeps a pool's loops in line with what its discovery reports.
async fn run_discovery(
    shared: Arc<PoolShared>,
    state: Arc<Mutex<PoolState>>,
    discovery: Discovery,
    mut handovers: Handovers,
    mut stop: watch::Receiver<bool>,
) {
    // Dropping the handle (when this task ends or is aborted) stops discovery.
    let mut handle = discovery.spawn(&shared.name);
    loop {
        tokio::select! {
            changed = handle.groups.changed() => {
                if changed.is_err() {
                    return;
                }
            }
            _ = stop.wait_for(|stop| *stop) => return,
        }
        let groups: Arc<Vec<TargetGroup>> = Arc::clone(&handle.groups.borrow_and_update());
        shared
            .discovered
            .store(discovery::target_count(&groups) as u64, Ordering::Relaxed);
        sync_targets(&shared, &state, &groups, &mut handovers);
        // Loops of the old configuration whose targets are gone: their series go stale.
        for (_, (target, cache)) in handovers.drain() {
            tokio::spawn(end_of_run_staleness(
                Arc::clone(&shared),
                Arc::new(target),
                cache,
            ));
        }
    }
}

/// Starts loops for new targets, stops those that vanished, records dropped ones.
fn sync_targets(
    shared: &Arc<PoolShared>,
    state: &Mutex<PoolState>,
    groups: &[TargetGroup],
    handovers: &mut Handovers,
) {
    let populated = targets::targets_from_groups(&shared.config, groups);
    let mut active: BTreeMap<u64, Target> = BTreeMap::new();
    let mut dropped = Vec::new();
    let keep_dropped = match shared.config.keep_dropped_targets {
        0 => MAX_DROPPED_TARGETS,
        n => usize::try_from(n).unwrap_or(MAX_DROPPED_TARGETS),
    };
    for target in populated {
        match target {
            Populated::Active(target) => {
                active.insert(target.hash(), target);
            }
            Populated::Dropped { discovered, error } => {
                if let Some(error) = error {
                    tracing::warn!(job = shared.name, %error, "target dropped");
                }
                if dropped.len() < keep_dropped {
                    dropped.push(DroppedTarget {
                        pool: shared.name.clone(),
                        discovered,
                    });
                }
            }
        }
    }
    let limit = shared.config.target_limit;
    shared
        .over_target_limit
        .store(limit > 0 && active.len() as u64 > limit, Ordering::Relaxed);
    let mut state = lock(state);
    state.dropped = dropped;
    let vanished: Vec<u64> = state
        .loops
        .keys()
        .filter(|hash| !active.contains_key(hash))
        .copied()
        .collect();
    for hash in vanished {
        if let Some(handle) = state.loops.remove(&hash) {
            let _ = handle.stop.send(Some(StopMode::Vanished));
        }
    }
    for (hash, target) in active {
        if state.loops.contains_key(&hash) {
            continue;
        }
        let cache = match handovers.remove(&hash) {
            Some((_, old)) => {
                // The series carry over for staleness; the label cache is rebuilt under the
                // new configuration.
                let mut old = lock(&old);
                Arc::new(Mutex::new(LoopCache {
                    seen: std::mem::take(&mut old.seen),
                    last_ms: old.last_ms,
                    metadata: Arc::clone(&old.metadata),
                    ..LoopCache::default()
                }))
            }
            None => Arc::new(Mutex::new(LoopCache::default())),
        };
        let status = Arc::new(Mutex::new(ScrapeStatus {
            metadata: Arc::clone(&lock(&cache).metadata),
            ..ScrapeStatus::default()
        }));
        let (stop, stop_receiver) = watch::channel(None);
        let task = tokio::spawn(run_loop(
            Arc::clone(shared),
            target.clone(),
            Arc::clone(&status),
            Arc::clone(&cache),
            stop_receiver,
        ));
        state.loops.insert(
            hash,
            LoopHandle {
                target,
                status,
                stop,
                cache,
                task,
            },
        );
    }
}

/// One target's loop.
async fn run_loop(
    shared: Arc<PoolShared>,
    target: Target,
    status: Arc<Mutex<ScrapeStatus>>,
    cache: Arc<Mutex<LoopCache>>,
    mut stop: watch::Receiver<Option<StopMode>>,
) {
    // Shared with each scrape's blocking task rather than copied into it.
    let target = Arc::new(target);
    let now_ns = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_nanos());
    let offset = target.offset(now_ns, shared.seed);
    let start = tokio::time::Instant::now() + offset;
    let mut ticker = tokio::time::interval_at(start, target.interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mode = loop {
        tokio::select! {
            _ = ticker.tick() => {}
            changed = stop.changed() => {
                break match changed {
                    Ok(()) => (*stop.borrow()).unwrap_or(StopMode::Shutdown),
                    Err(_) => StopMode::Shutdown,
                };
            }
        }
        let started = SystemTime::now();
        let clock = Instant::now();
        let buffer = std::mem::take(&mut lock(&cache).body);
        let fetched = fetch(&shared, &target, buffer).await;
        let duration = clock.elapsed();
        let appended = {
            let shared = Arc::clone(&shared);
            let target = Arc::clone(&target);
            let cache = Arc::clone(&cache);
            tokio::task::spawn_blocking(move || {
                let mut cache = lock(&cache);
                let outcome =
                    append_scrape(&shared, &target, &mut cache, fetched, started, duration);
                (outcome, Arc::clone(&cache.metadata))
            })
            .await
        };
        shared.scrapes.fetch_add(1, Ordering::Relaxed);
        let (outcome, metadata) = match appended {
            Ok((outcome, metadata)) => (outcome, Some(metadata)),
            Err(error) => (Err(format!("scrape task failed: {error}")), None),
        };
        let mut status = lock(&status);
        if let Some(metadata) = metadata {
            status.metadata = metadata;
        }
        status.last_scrape = Some(started);
        status.last_duration = duration;
        match outcome {
            Ok(samples) => {
                status.health = Health::Up;
                status.last_error.clear();
                status.samples = samples;
            }
            Err(error) => {
                tracing::debug!(job = shared.name, target = %target.url, %error, "scrape failed");
                status.health = Health::Down;
                status.last_error = error;
                status.samples = 0;
            }
        }
    };
    if mode == StopMode::Vanished {
        end_of_run_staleness(shared, target, cache).await;
    }
}

/// Waits for when the next two scrapes would have been, and 10 % more, so that a target that
/// comes back (under a new loop) is not marked stale, then marks everything it had stale.
/// (Should it be back, its newer samples make these markers out of order, and they are
/// refused.)
async fn end_of_run_staleness(
    shared: Arc<PoolShared>,
    target: Arc<Target>,
    cache: Arc<Mutex<LoopCache>>,
) {
    let Some(last_ms) = lock(&cache).last_ms else {
        return;
    };
    let interval = target.interval;
    let wait = interval * 2 + interval / 10;
    tokio::time::sleep(wait).await;
    let stale_ms = last_ms.saturating_add(i64::try_from(interval.as_millis()).unwrap_or(0));
    let written = tokio::task::spawn_blocking(move || {
        let mut cache = lock(&cache);
        write_end_of_run_staleness(&shared, &target, &mut cache, stale_ms)
    })
    .await;
    if let Ok(Err(error)) = written {
        tracing::warn!(%error, "cannot write stale markers");
    }
}

/// A fetched body and the parser it needs.
struct Body {
    bytes: Vec<u8>,
    openmetrics: bool,
}

/// Which parser a `Content-Type` asks for (Prometheus 3 refuses what it cannot identify
/// unless the job names a `fallback_scrape_protocol`).
fn parser_for(content_type: &str, fallback: Option<ScrapeProtocol>) -> Result<bool, String> {
    let media = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let from_protocol = |protocol: ScrapeProtocol| match protocol {
        ScrapeProtocol::OpenMetricsText0_0_1 | ScrapeProtocol::OpenMetricsText1_0_0 => Ok(true),
        ScrapeProtocol::PrometheusText0_0_4 | ScrapeProtocol::PrometheusText1_0_0 => Ok(false),
        ScrapeProtocol::PrometheusProto => {
            Err("the protobuf exposition format is not supported by Tocsin".to_string())
        }
    };
    match media.as_str() {
        "application/openmetrics-text" => Ok(true),
        "text/plain" => Ok(false),
        "application/vnd.google.protobuf" => {
            Err("the protobuf exposition format is not supported by Tocsin".to_string())
        }
        _ => match fallback {
            Some(protocol) => from_protocol(protocol),
            None if media.is_empty() => Err(
                "non-compliant scrape target sending blank Content-Type and no fallback_scrape_protocol specified for target"
                    .to_string(),
            ),
            None => Err(format!(
                "received unsupported Content-Type {content_type:?} and no fallback_scrape_protocol specified for target"
            )),
        },
    }
}

/// Fetches the target's body into `bytes` (emptied first; its room is reused).
async fn fetch(shared: &PoolShared, target: &Target, mut bytes: Vec<u8>) -> Result<Body, String> {
    if shared.over_target_limit.load(Ordering::Relaxed) {
        return Err(format!(
            "target_limit exceeded (limit: {})",
            shared.config.target_limit
        ));
    }
    let timeout = target.timeout;
    let url = target.url.clone();
    let limit = match shared.config.body_size_limit.bytes() {
        0 => MAX_BODY_BYTES,
        n => n.min(MAX_BODY_BYTES),
    };
    let work = async {
        let mut request = shared
            .client
            .get(url.clone())
            .header(reqwest::header::ACCEPT, shared.accept.as_str())
            .header(
                "X-Prometheus-Scrape-Timeout-Seconds",
                format!("{}", timeout.as_secs_f64()),
            );
        if !shared.config.enable_compression {
            request = request.header(reqwest::header::ACCEPT_ENCODING, "identity");
        }
        let mut response = shared
            .auth
            .apply(request)
            .send()
            .await
            .map_err(|error| format!("Get {:?}: {}", url.as_str(), error_chain(&error)))?;
        if response.status() != reqwest::StatusCode::OK {
            return Err(format!("server returned HTTP status {}", response.status()));
        }
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .unwrap_or("")
            .to_string();
        let openmetrics = parser_for(&content_type, shared.config.fallback_scrape_protocol)?;
        bytes.clear();
        // Room for the whole body up front when its size is announced and allowed (gzip
        // bodies are decoded as they stream, so their size is not known: the kept room from
        // the last scrape serves).
        if let Some(announced) = response.content_length()
            && announced <= limit
        {
            bytes.reserve(usize::try_from(announced).unwrap_or(0));
        }
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|error| format!("reading the body: {}", error_chain(&error)))?
        {
            if (bytes.len() + chunk.len()) as u64 > limit {
                return Err(format!("body size limit exceeded (limit: {limit} bytes)"));
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(Body { bytes, openmetrics })
    };
    match tokio::time::timeout(timeout, work).await {
        Ok(result) => result,
        Err(_) => Err(format!(
            "Get {:?}: context deadline exceeded (scrape_timeout {})",
            url.as_str(),
            PromDuration::from_millis(u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX))
        )),
    }
}

/// An error and its causes, `: `-separated.
pub(crate) fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// The counts of one scrape.
#[derive(Debug, Default, Clone, Copy)]
struct Counts {
    total: u64,
    added: u64,
    series_added: u64,
}

/// Appends a scrape (or, for a failed one, stale markers for everything it had), the report
/// series, and commits. Returns the samples appended, or why the scrape failed.
fn append_scrape(
    shared: &PoolShared,
    target: &Target,
    cache: &mut LoopCache,
    fetched: Result<Body, String>,
    started: SystemTime,
    duration: Duration,
) -> Result<u64, String> {
    let tsdb = &shared.tsdb;
    let now_ms = unix_ms(started);
    let mut counts = Counts::default();
    let mut scrape_error = None;
    let mut appender = tsdb.appender();
    cache.scrape += 1;
    let mut next_seen = std::mem::take(&mut cache.spare_seen);
    next_seen.clear();
    match fetched {
        Ok(body) => {
            let mut lines = Vec::new();
            let result = if body.openmetrics {
                append_samples(
                    shared,
                    target,
                    cache,
                    OpenMetricsParser::new(&body.bytes),
                    &mut appender,
                    now_ms,
                    &mut counts,
                    &mut next_seen,
                    &mut lines,
                )
            } else {
                append_samples(
                    shared,
                    target,
                    cache,
                    TextParser::new(&body.bytes),
                    &mut appender,
                    now_ms,
                    &mut counts,
                    &mut next_seen,
                    &mut lines,
                )
            };
            match result {
                Ok(()) => {
                    // The series this scrape did not expose leave the cache.
                    let scrape = cache.scrape;
                    cache.series.retain(|_, entry| entry.scrape == scrape);
                    let mut text = Vec::with_capacity(cache.metadata_text.len());
                    metadata_text(&lines, &mut text);
                    if text != cache.metadata_text {
                        cache.metadata = Arc::new(build_metadata(&lines));
                        cache.metadata_text = text;
                    }
                }
                Err(error) => {
                    // Nothing of a failed scrape is kept; its series go stale.
                    appender = tsdb.appender();
                    next_seen.clear();
                    scrape_error = Some(error);
                }
            }
            drop(lines);
            let mut bytes = body.bytes;
            bytes.clear();
            cache.body = bytes;
        }
        Err(error) => scrape_error = Some(error),
    }
    // Series of the last scrape missing from this one.
    for (hash, series) in cache.seen.iter() {
        if !next_seen.contains_key(hash) {
            let _ = appender.append(series, now_ms, f64::from_bits(STALE_NAN_BITS));
        }
    }
    let mut last_seen = std::mem::replace(&mut cache.seen, next_seen);
    last_seen.clear();
    cache.spare_seen = last_seen;
    cache.last_ms = Some(now_ms);
    let up = if scrape_error.is_none() { 1.0 } else { 0.0 };
    let values = [
        up,
        duration.as_secs_f64(),
        counts.total as f64,
        counts.added as f64,
        counts.series_added as f64,
    ];
    if cache.report.len() != REPORT_NAMES.len() {
        cache.report = REPORT_NAMES
            .iter()
            .map(|name| (report_labels(target, name), None))
            .collect();
    }
    for ((labels, series_ref), value) in cache.report.iter_mut().zip(values) {
        let _ = append_by_ref(&mut appender, labels, series_ref, now_ms, value);
    }
    appender
        .commit()
        .map_err(|error| format!("storage: {error}"))?;
    match scrape_error {
        None => Ok(counts.added),
        Some(error) => Err(error),
    }
}

/// Appends `(t, v)` to the series `labels` by its reference when known (then by labels if
/// the head no longer has it), keeping the reference for next time.
fn append_by_ref(
    appender: &mut crate::tsdb::Appender<'_>,
    labels: &Labels,
    series_ref: &mut Option<SeriesRef>,
    t: i64,
    v: f64,
) -> Result<SeriesRef, AppendError> {
    let appended = match *series_ref {
        Some(known) => match appender.append_ref(known, t, v) {
            // A head compaction dropped the series: by labels, which re-creates it.
            Err(AppendError::UnknownSeries) => appender.append(labels, t, v),
            other => other.map(|()| known),
        },
        None => appender.append(labels, t, v),
    };
    if let Ok(known) = appended {
        *series_ref = Some(known);
    }
    appended
}

/// A `# HELP`, `# TYPE` or `# UNIT` line of a scrape, borrowed from its body.
#[derive(Debug, Clone, Copy)]
enum MetadataLine<'a> {
    Help(Escaped<'a>, Escaped<'a>),
    Type(Escaped<'a>, MetricType),
    Unit(Escaped<'a>, &'a str),
}

/// The lines as one byte string (a tag, then each part with its length before it), to tell
/// whether a scrape's metadata is the same as the last one's without building it.
fn metadata_text(lines: &[MetadataLine<'_>], out: &mut Vec<u8>) {
    let part = |out: &mut Vec<u8>, bytes: &[u8]| {
        out.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
        out.extend_from_slice(bytes);
    };
    for line in lines {
        match line {
            MetadataLine::Help(name, text) => {
                // The text format's help keeps `\"` as written and OpenMetrics' decodes it:
                // the same raw text may mean two things, so the decoding is part of the key.
                out.push(if text.unescape_quotes() { b'H' } else { b'h' });
                part(out, name.raw().as_bytes());
                part(out, text.raw().as_bytes());
            }
            MetadataLine::Type(name, kind) => {
                out.push(b'T');
                part(out, name.raw().as_bytes());
                part(out, kind.as_str().as_bytes());
            }
            MetadataLine::Unit(name, unit) => {
                out.push(b'U');
                part(out, name.raw().as_bytes());
                part(out, unit.as_bytes());
            }
        }
    }
}

/// The metadata the lines declare, by family (the last line of a kind wins).
fn build_metadata(lines: &[MetadataLine<'_>]) -> TargetMetadata {
    let mut metadata = TargetMetadata::new();
    for line in lines {
        match line {
            MetadataLine::Help(name, text) => {
                if let Some(family) = metadata_entry(&mut metadata, &name.unescape()) {
                    family.help = text.unescape().into_owned();
                }
            }
            MetadataLine::Type(name, kind) => {
                if let Some(family) = metadata_entry(&mut metadata, &name.unescape()) {
                    family.kind = kind.as_str();
                }
            }
            MetadataLine::Unit(name, unit) => {
                if let Some(family) = metadata_entry(&mut metadata, &name.unescape()) {
                    family.unit = unit.to_string();
                }
            }
        }
    }
    metadata
}

/// A report series' labels: its name and the target's labels (Prometheus's
/// `mutateReportSampleLabels`; target labels never include `__name__`, so nothing clashes).
fn report_labels(target: &Target, name: &str) -> Labels {
    Labels::new(std::iter::once(("__name__", name)).chain(target.public_labels()))
}

/// The samples of one body. `Err` fails the whole scrape.
#[allow(clippy::too_many_arguments)]
fn append_samples<'a>(
    shared: &PoolShared,
    target: &Target,
    cache: &mut LoopCache,
    parser: impl Iterator<Item = Result<Entry<'a>, ParseError>>,
    appender: &mut crate::tsdb::Appender<'_>,
    now_ms: i64,
    counts: &mut Counts,
    next_seen: &mut SeenSeries,
    metadata: &mut Vec<MetadataLine<'a>>,
) -> Result<(), String> {
    let config = &shared.config;
    let scrape = cache.scrape;
    let mut line = LineContext {
        shared,
        appender,
        now_ms,
        counts,
        next_seen,
        sample_limit_exceeded: false,
    };
    // Series of this scrape, for the bound on the cache.
    let mut exposed = 0usize;
    for entry in parser {
        let entry = entry.map_err(|error| format!("parsing the scrape: {error}"))?;
        let sample = match entry {
            Entry::Sample(sample) => sample,
            Entry::Help { name, text } => {
                metadata.push(MetadataLine::Help(name, text));
                continue;
            }
            Entry::Type { name, kind } => {
                metadata.push(MetadataLine::Type(name, kind));
                continue;
            }
            Entry::Unit { name, unit } => {
                metadata.push(MetadataLine::Unit(name, unit));
                continue;
            }
            _ => continue,
        };
        // OpenMetrics `_created` series are creation times, not samples (Prometheus skips
        // them unless created-timestamp ingestion is on).
        if sample.is_created() {
            continue;
        }
        line.counts.total += 1;
        // The series' entry: carried over from an earlier scrape (or seen earlier in this
        // one), or built (labels, relabeling, limits) for a new series. The borrow of the
        // found entry ends in its arm, so the other arm may insert.
        match cache.series.get_mut(sample.series) {
            Some(entry) => {
                if entry.scrape != scrape {
                    entry.scrape = scrape;
                    exposed += 1;
                }
                line.append(&sample, entry);
            }
            None => {
                if cache.series.len() >= MAX_SERIES_PER_TARGET {
                    // Make room by dropping what the last scrape had and this one lacks.
                    cache.series.retain(|_, entry| entry.scrape == scrape);
                }
                if exposed >= MAX_SERIES_PER_TARGET || cache.series.len() >= MAX_SERIES_PER_TARGET {
                    return Err(format!(
                        "more than {MAX_SERIES_PER_TARGET} series in one scrape"
                    ));
                }
                exposed += 1;
                let built = series_labels(shared, target, &sample)?.map(CachedSeries::new);
                if built.is_some() {
                    line.counts.series_added += 1;
                }
                let entry = cache
                    .series
                    .entry(Box::from(sample.series))
                    .or_insert(CacheEntry {
                        series: built,
                        scrape,
                    });
                line.append(&sample, entry);
            }
        }
    }
    if line.sample_limit_exceeded {
        shared
            .counters
            .exceeded_sample_limit
            .fetch_add(1, Ordering::Relaxed);
        return Err(format!(
            "sample limit exceeded (limit: {})",
            config.sample_limit
        ));
    }
    Ok(())
}

/// What appending one scraped line needs besides the line and its cache entry.
struct LineContext<'s, 'b, 'c> {
    shared: &'s PoolShared,
    appender: &'s mut crate::tsdb::Appender<'b>,
    now_ms: i64,
    counts: &'c mut Counts,
    next_seen: &'c mut SeenSeries,
    sample_limit_exceeded: bool,
}

impl LineContext<'_, '_, '_> {
    /// Appends a sample of a cached series (nothing when relabeling dropped it), with the
    /// sample limit, `honor_timestamps` and the staleness bookkeeping.
    fn append(&mut self, sample: &super::parse::Sample<'_>, entry: &mut CacheEntry) {
        let Some(series) = &mut entry.series else {
            return;
        };
        let config = &self.shared.config;
        self.counts.added += 1;
        if config.sample_limit > 0 && self.counts.added > config.sample_limit {
            // Keep counting what the target exposes; the scrape fails at the end.
            self.sample_limit_exceeded = true;
            return;
        }
        let timestamp = match sample.timestamp_ms {
            Some(t) if config.honor_timestamps => t,
            _ => self.now_ms,
        };
        // A refused sample is counted; the scrape goes on, as in Prometheus.
        let appended = append_by_ref(
            self.appender,
            &series.labels,
            &mut series.series_ref,
            timestamp,
            sample.value,
        );
        let counters = &self.shared.counters;
        match appended {
            Ok(_) => {}
            Err(AppendError::OutOfOrder) => {
                counters.out_of_order.fetch_add(1, Ordering::Relaxed);
            }
            Err(AppendError::OutOfBounds) => {
                counters.out_of_bounds.fetch_add(1, Ordering::Relaxed);
            }
            Err(AppendError::Duplicate) => {
                counters.duplicate_timestamp.fetch_add(1, Ordering::Relaxed);
            }
            Err(AppendError::EmptyLabels | AppendError::UnknownSeries) => {}
        }
        let explicit = sample.timestamp_ms.is_some() && config.honor_timestamps;
        if !explicit || config.track_timestamps_staleness {
            self.next_seen
                .entry(series.hash)
                .or_insert_with(|| Arc::clone(&series.labels));
        }
    }
}

/// The metadata slot of a family, made on first sight; `None` once the target has
/// [`MAX_METADATA_PER_TARGET`] families.
fn metadata_entry<'m>(
    metadata: &'m mut TargetMetadata,
    family: &str,
) -> Option<&'m mut MetricMetadata> {
    if !metadata.contains_key(family) {
        if metadata.len() >= MAX_METADATA_PER_TARGET {
            return None;
        }
        metadata.insert(family.to_string(), MetricMetadata::default());
    }
    metadata.get_mut(family)
}

/// A scraped series' final labels (`None` when `metric_relabel_configs` drop it), or the
/// limit it breaks.
fn series_labels(
    shared: &PoolShared,
    target: &Target,
    sample: &super::parse::Sample<'_>,
) -> Result<Option<Arc<Labels>>, String> {
    let config = &shared.config;
    let mut exposed = LabelBuilder::new();
    exposed.set("__name__", sample.name.unescape().into_owned());
    for label in sample.labels.iter() {
        let name = label.name.unescape();
        if exposed.has(&name) {
            return Err(format!(
                "label name {name:?} is not unique in series {}",
                sample.name
            ));
        }
        exposed.set(name.into_owned(), label.value.unescape().into_owned());
    }
    let mut builder = exposed.clone();
    if config.honor_labels {
        for (name, value) in target.public_labels() {
            if !exposed.has(name) {
                builder.set(name, value);
            }
        }
    } else {
        let mut conflicts: Vec<(String, String)> = Vec::new();
        for (name, value) in target.public_labels() {
            let existing = exposed.get(name);
            if !existing.is_empty() {
                conflicts.push((name.to_string(), existing.to_string()));
            }
            builder.set(name, value);
        }
        // Shorter names first, each prefixed with `exported_` until it is free.
        conflicts.sort_by_key(|(name, _)| name.len());
        for (name, value) in conflicts {
            let mut renamed = name;
            loop {
                renamed = format!("exported_{renamed}");
                if builder.get(&renamed).is_empty() {
                    builder.set(renamed, value);
                    break;
                }
            }
        }
    }
    let validation = config.name_validation();
    if !config.metric_relabel_configs.is_empty()
        && !relabel::process(&mut builder, &config.metric_relabel_configs, validation)
    {
        return Ok(None);
    }
    if builder.is_empty() {
        return Ok(None);
    }
    let metric = builder.get("__name__").to_string();
    if metric.is_empty() {
        return Err("the metric name label __name__ is missing".to_string());
    }
    if validation == NameValidation::Legacy && !validation.is_valid_metric_name(&metric) {
        return Err(format!("invalid metric name {metric:?}"));
    }
    check_label_limits(config, &builder, &metric)?;
    Ok(Some(Arc::new(builder.to_labels())))
}

fn truncate(text: &str, chars: usize) -> String {
    text.chars().take(chars).collect()
}

/// Prometheus's `verifyLabelLimits`.
fn check_label_limits(
    config: &ScrapeConfig,
    labels: &LabelBuilder,
    metric: &str,
) -> Result<(), String> {
    let metric = truncate(metric, 50);
    if config.label_limit > 0 && labels.len() as u64 > config.label_limit {
        return Err(format!(
            "label_limit exceeded (metric: {metric}, number of labels: {}, limit: {})",
            labels.len(),
            config.label_limit
        ));
    }
    for (name, value) in labels.iter() {
        if config.label_name_length_limit > 0 && name.len() as u64 > config.label_name_length_limit
        {
            return Err(format!(
                "label_name_length_limit exceeded (metric: {metric}, label name: {}, length: {}, limit: {})",
                truncate(name, 50),
                name.len(),
                config.label_name_length_limit
            ));
        }
        let length = value.chars().count() as u64;
        if config.label_value_length_limit > 0 && length > config.label_value_length_limit {
            return Err(format!(
                "label_value_length_limit exceeded (metric: {metric}, label name: {}, value: {:?}, length: {length}, limit: {})",
                truncate(name, 50),
                truncate(value, 50),
                config.label_value_length_limit
            ));
        }
    }
    Ok(())
}

/// Stale markers for every series of a target that went away, report series included.
fn write_end_of_run_staleness(
    shared: &PoolShared,
    target: &Target,
    cache: &mut LoopCache,
    stale_ms: i64,
) -> Result<(), String> {
    let mut appender = shared.tsdb.appender();
    let stale = f64::from_bits(STALE_NAN_BITS);
    for (_, series) in cache.seen.drain() {
        let _ = appender.append(&series, stale_ms, stale);
    }
    for name in REPORT_NAMES {
        let _ = appender.append(&report_labels(target, name), stale_ms, stale);
    }
    appender
        .commit()
        .map(|_| ())
        .map_err(|error| format!("storage: {error}"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn accept_header_is_prometheus_s() {
        assert_eq!(
            accept_header(
                &crate::config::prometheus::DEFAULT_SCRAPE_PROTOCOLS,
                "allow-utf-8"
            ),
            "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.6,application/openmetrics-text;version=0.0.1;q=0.5,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2"
        );
    }

    #[test]
    fn content_types() {
        assert_eq!(
            parser_for("application/openmetrics-text; version=1.0.0", None),
            Ok(true)
        );
        assert_eq!(parser_for("text/plain; version=0.0.4", None), Ok(false));
        assert!(
            parser_for("", None)
                .unwrap_err()
                .contains("blank Content-Type")
        );
        assert!(
            parser_for("application/json", None)
                .unwrap_err()
                .contains("unsupported Content-Type \"application/json\"")
        );
        assert_eq!(
            parser_for("", Some(ScrapeProtocol::OpenMetricsText1_0_0)),
            Ok(true)
        );
        assert!(parser_for("application/vnd.google.protobuf", None).is_err());
    }
}
