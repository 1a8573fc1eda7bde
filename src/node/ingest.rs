//! The node's ingestion shell: the scrape manager over the configuration's jobs, and the
//! handle the HTTP API (`/api/v1/targets`, `/api/v1/scrape_pools`, `/api/v1/write`) reads.
//!
//! The router is built before storage opens, so handlers hold an [`IngestHandle`] that
//! [`IngestHandle::set`] fills once [`start`] has run; until then they answer as if there were
//! no targets (and remote write answers 503). [`IngestMetrics`] puts scraping's and
//! discovery's numbers on `/metrics` under Prometheus's names.

use crate::config::LoadedConfig;
use crate::ingest::discovery::SD_COUNTERS;
use crate::ingest::scrape::{ScrapeManager, ScrapeOptions};
use crate::tsdb::Tsdb;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

/// What ingestion needs at run time.
pub struct IngestRuntime {
    pub tsdb: Arc<Tsdb>,
    pub scrape: Arc<ScrapeManager>,
}

/// Filled once storage is open; shared by the HTTP handlers.
#[derive(Default)]
pub struct IngestHandle(OnceLock<Arc<IngestRuntime>>);

impl IngestHandle {
    pub fn new() -> Arc<IngestHandle> {
        Arc::new(IngestHandle::default())
    }

    /// Sets the runtime; a second call is ignored.
    pub fn set(&self, runtime: Arc<IngestRuntime>) {
        let _ = self.0.set(runtime);
    }

    pub fn get(&self) -> Option<&Arc<IngestRuntime>> {
        self.0.get()
    }
}

/// The folder relative paths of the configuration resolve against: its file's folder.
pub fn config_dir(loaded: &LoadedConfig) -> PathBuf {
    let path = Path::new(&loaded.source_name);
    match path.parent() {
        Some(parent) if path.is_file() && !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Prometheus mixes its external labels and host name into every target's scrape offset.
fn offset_seed(loaded: &LoadedConfig, host_name: &str) -> u64 {
    let mut hash = crate::ingest::targets::Fnv::new();
    for (name, value) in loaded.config.global.external_labels.iter() {
        hash.write(name.as_bytes());
        hash.write(&[0xff]);
        hash.write(value.as_bytes());
        hash.write(&[0xff]);
    }
    hash.write(host_name.as_bytes());
    hash.0
}

/// Starts scraping the configuration's jobs into `tsdb`. Must run inside the tokio runtime.
/// A job that cannot start (say, an unreadable credentials file) is logged and skipped; the
/// others run.
pub fn start(
    loaded: &LoadedConfig,
    tsdb: Arc<Tsdb>,
    host_name: &str,
) -> Result<Arc<IngestRuntime>, String> {
    let options = ScrapeOptions {
        offset_seed: offset_seed(loaded, host_name),
        base_dir: config_dir(loaded),
        discovery: Default::default(),
    };
    let scrape = ScrapeManager::new(Arc::clone(&tsdb), options)?;
    let runtime = Arc::new(IngestRuntime { tsdb, scrape });
    if let Err(error) = runtime.apply_config(loaded) {
        tracing::error!(%error, "some scrape jobs could not start");
    }
    Ok(runtime)
}

impl IngestRuntime {
    /// Applies a (re)loaded configuration: unchanged jobs keep running untouched.
    pub fn apply_config(&self, loaded: &LoadedConfig) -> Result<(), String> {
        let jobs: Vec<_> = loaded
            .config
            .scrape_configs
            .iter()
            .map(|job| job.value.clone())
            .collect();
        self.scrape.apply_config(&jobs, &config_dir(loaded))
    }

    /// Stops every scrape loop (no stale markers: the node resumes where it left off).
    pub async fn stop(&self) {
        self.scrape.stop().await;
    }
}

/// Scraping's and discovery's numbers, read at scrape time of `/metrics`.
pub struct IngestMetrics(pub Arc<IngestRuntime>);

impl std::fmt::Debug for IngestMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("IngestMetrics")
    }
}

/// One family: name (counters without `_total`, which the encoder adds), help, type and
/// labelled values.
struct Family {
    name: &'static str,
    help: &'static str,
    kind: MetricType,
    values: Vec<(Vec<(&'static str, String)>, f64)>,
}

fn counter(name: &'static str, help: &'static str, value: &AtomicU64) -> Family {
    Family {
        name,
        help,
        kind: MetricType::Counter,
        values: vec![(Vec::new(), value.load(Ordering::Relaxed) as f64)],
    }
}

impl prometheus_client::collector::Collector for IngestMetrics {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let scrape = &self.0.scrape;
        let counters = scrape.counters();
        let pools = scrape.pool_stats();
        let families = vec![
            counter(
                "prometheus_target_scrape_pools",
                "Scrape pools created, or attempted, since start-up.",
                &counters.scrape_pools,
            ),
            counter(
                "prometheus_target_scrape_pools_failed",
                "Scrape pools that could not be created (bad credentials file, TLS settings, discovery).",
                &counters.scrape_pools_failed,
            ),
            counter(
                "prometheus_target_scrapes_exceeded_sample_limit",
                "Scrapes refused for exposing more samples than sample_limit.",
                &counters.exceeded_sample_limit,
            ),
            counter(
                "prometheus_target_scrapes_sample_duplicate_timestamp",
                "Scraped samples refused for repeating a timestamp with another value.",
                &counters.duplicate_timestamp,
            ),
            counter(
                "prometheus_target_scrapes_sample_out_of_order",
                "Scraped samples refused for being older than the series' newest sample.",
                &counters.out_of_order,
            ),
            counter(
                "prometheus_target_scrapes_sample_out_of_bounds",
                "Scraped samples refused for a timestamp outside what the head accepts.",
                &counters.out_of_bounds,
            ),
            Family {
                name: "prometheus_target_scrape_pool_targets",
                help: "Targets a scrape pool scrapes now.",
                kind: MetricType::Gauge,
                values: pools
                    .iter()
                    .map(|pool| (vec![("scrape_job", pool.job.clone())], pool.active as f64))
                    .collect(),
            },
            Family {
                name: "prometheus_sd_discovered_targets",
                help: "Targets a job's discovery found, before relabeling.",
                kind: MetricType::Gauge,
                values: pools
                    .iter()
                    .map(|pool| {
                        (
                            vec![("config", pool.job.clone()), ("name", "scrape".to_string())],
                            pool.discovered as f64,
                        )
                    })
                    .collect(),
            },
            counter(
                "prometheus_sd_http_failures",
                "HTTP discovery refreshes that failed.",
                &SD_COUNTERS.http_failures,
            ),
            counter(
                "prometheus_sd_dns_lookups",
                "DNS discovery lookups done, one per name and refresh.",
                &SD_COUNTERS.dns_lookups,
            ),
            counter(
                "prometheus_sd_dns_lookup_failures",
                "DNS discovery lookups that failed.",
                &SD_COUNTERS.dns_lookup_failures,
            ),
            counter(
                "prometheus_sd_file_read_errors",
                "Discovery files that could not be read or parsed.",
                &SD_COUNTERS.file_read_errors,
            ),
        ];
        for family in families {
            let mut metric =
                encoder.encode_descriptor(family.name, family.help, None, family.kind)?;
            for (labels, value) in &family.values {
                let encoder = metric.encode_family(labels)?;
                match family.kind {
                    MetricType::Counter => ConstCounter::new(*value).encode(encoder)?,
                    _ => ConstGauge::new(*value).encode(encoder)?,
                }
            }
        }
        Ok(())
    }
}
