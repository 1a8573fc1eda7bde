//! The node's ingestion shell: the scrape manager over the configuration's jobs, and the
//! handle the HTTP API (`/api/v1/targets`, `/api/v1/scrape_pools`, `/api/v1/write`) reads.
//!
//! The router is built before storage opens, so handlers hold an [`IngestHandle`] that
//! [`IngestHandle::set`] fills once [`start`] has run; until then they answer as if there were
//! no targets (and remote write answers 503).

use crate::config::LoadedConfig;
use crate::ingest::scrape::{ScrapeManager, ScrapeOptions};
use crate::tsdb::Tsdb;
use std::path::{Path, PathBuf};
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
