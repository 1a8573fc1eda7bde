//! The node's `remote_write` queues: one per endpoint, started once the TSDB is open, kept
//! across reloads while their configuration (and the external labels) stay the same, stopped
//! cleanly (flushed, position persisted) when changed or removed, and at shutdown.

use crate::config::LoadedConfig;
use crate::config::prometheus::RemoteWriteConfig;
use crate::remote::write::{
    MetadataSource, Queue, QueueSettings, RemoteClient, TargetMetadataSnapshot,
};
use crate::telemetry::Telemetry;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// How long a stopping queue may take to send what it holds (Prometheus: one minute; the
/// node's whole shutdown grace is shorter, and nothing unsent is lost: it is re-read).
const FLUSH_DEADLINE: Duration = Duration::from_secs(5);

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn hex(digest: &[u8]) -> String {
    digest.iter().map(|byte| format!("{byte:02x}")).collect()
}

fn sha1_hex(text: &str) -> String {
    use sha1::{Digest, Sha1};
    hex(&Sha1::digest(text.as_bytes()))
}

/// One endpoint as the runtime knows it.
struct Endpoint {
    /// The configuration it runs with, serialized: equal text means "unchanged".
    fingerprint: String,
    queue: Arc<Queue>,
}

/// The running queues.
pub struct RemoteWriteRuntime {
    storage_path: PathBuf,
    wal_folder: PathBuf,
    endpoints: Mutex<HashMap<String, Endpoint>>,
    /// Serializes reloads: a changed queue must stop (and save its position) before its
    /// successor reads that position.
    applying: tokio::sync::Mutex<()>,
    /// Where reloads (which arrive on blocking threads) run their async part.
    runtime: tokio::runtime::Handle,
    /// The scrape targets' metric metadata the queues send.
    metadata: Arc<dyn MetadataSource>,
}

impl std::fmt::Debug for RemoteWriteRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteWriteRuntime")
            .field("endpoints", &lock(&self.endpoints).len())
            .finish()
    }
}

/// What identifies an endpoint across reloads and restarts, and the queue settings.
struct Planned {
    key: String,
    fingerprint: String,
    settings: QueueSettings,
    config: RemoteWriteConfig,
}

impl RemoteWriteRuntime {
    /// No queues yet; `apply_config` starts them. `metadata` is where the targets' metric
    /// metadata comes from (the node's scrape manager once it runs). Must be called inside a
    /// tokio runtime.
    pub fn new(
        storage_path: &Path,
        wal_folder: &Path,
        metadata: Arc<dyn MetadataSource>,
    ) -> Arc<RemoteWriteRuntime> {
        Arc::new(RemoteWriteRuntime {
            metadata,
            runtime: tokio::runtime::Handle::current(),
            storage_path: storage_path.to_path_buf(),
            wal_folder: wal_folder.to_path_buf(),
            endpoints: Mutex::new(HashMap::new()),
            applying: tokio::sync::Mutex::new(()),
        })
    }

    fn plan(&self, loaded: &LoadedConfig) -> Vec<Planned> {
        let global = &loaded.config.global;
        let external: Vec<(String, String)> = global
            .external_labels
            .iter()
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect();
        let names = global.name_validation();
        loaded
            .config
            .remote_write
            .iter()
            .map(|spanned| {
                let config = spanned.value.clone();
                let serialized = serde_json::to_string(&config).unwrap_or_default();
                let named = config
                    .name
                    .as_ref()
                    .map(|name| name.value.clone())
                    .filter(|name| !name.is_empty());
                // Prometheus names an unnamed queue by a hash of its config.
                let remote_name = named
                    .clone()
                    .unwrap_or_else(|| sha1_hex(&serialized)[..6].to_string());
                let url = config.url.value.clone();
                // The position file survives config edits of the same endpoint.
                let key = sha1_hex(&format!("{}\n{url}", named.as_deref().unwrap_or("")))[..16]
                    .to_string();
                let fingerprint = format!(
                    "{serialized}\n{external:?}\n{names:?}\n{}",
                    super::ingest::config_dir(loaded).display()
                );
                let settings = QueueSettings {
                    remote_name,
                    url,
                    wal_folder: self.wal_folder.clone(),
                    position_file: self
                        .storage_path
                        .join("remote_write")
                        .join(format!("{key}.json")),
                    queue: config.queue_config.clone(),
                    metadata: config.metadata_config.clone(),
                    external_labels: external.clone(),
                    relabel: config.write_relabel_configs.clone(),
                    names,
                    flush_deadline: FLUSH_DEADLINE,
                };
                Planned {
                    key,
                    fingerprint,
                    settings,
                    config,
                }
            })
            .collect()
    }

    /// Starts, keeps, restarts and stops queues to match `loaded`. Clients are built first:
    /// on an error (a missing secret file, bad TLS material) nothing changes.
    pub async fn apply_config(&self, loaded: &LoadedConfig) -> Result<(), String> {
        let _serialized = self.applying.lock().await;
        let base_dir = super::ingest::config_dir(loaded);
        let planned = self.plan(loaded);
        let mut clients = HashMap::new();
        {
            let endpoints = lock(&self.endpoints);
            for plan in &planned {
                let unchanged = endpoints
                    .get(&plan.key)
                    .is_some_and(|running| running.fingerprint == plan.fingerprint);
                if !unchanged {
                    let client = RemoteClient::new(&plan.config, &base_dir).map_err(|error| {
                        format!("remote_write {:?}: {error}", plan.settings.url)
                    })?;
                    clients.insert(plan.key.clone(), client);
                }
            }
        }
        let stopping: Vec<Arc<Queue>> = {
            let mut endpoints = lock(&self.endpoints);
            let keep: HashMap<&str, &str> = planned
                .iter()
                .map(|plan| (plan.key.as_str(), plan.fingerprint.as_str()))
                .collect();
            let gone: Vec<String> = endpoints
                .iter()
                .filter(|(key, running)| {
                    keep.get(key.as_str()) != Some(&running.fingerprint.as_str())
                })
                .map(|(key, _)| key.clone())
                .collect();
            gone.into_iter()
                .filter_map(|key| endpoints.remove(&key))
                .map(|endpoint| endpoint.queue)
                .collect()
        };
        for queue in stopping {
            queue.stop().await;
        }
        for plan in planned {
            let Some(client) = clients.remove(&plan.key) else {
                continue;
            };
            tracing::info!(remote_name = %plan.settings.remote_name, url = %plan.settings.url, "starting remote write queue");
            let queue = Queue::start(plan.settings, client, Some(Arc::clone(&self.metadata)))?;
            lock(&self.endpoints).insert(
                plan.key,
                Endpoint {
                    fingerprint: plan.fingerprint,
                    queue,
                },
            );
        }
        Ok(())
    }

    /// A reload from a synchronous caller: the clients are checked now (an error fails the
    /// reload), the queues are swapped in the background.
    pub fn reload(self: &Arc<Self>, loaded: Arc<LoadedConfig>) -> Result<(), String> {
        let base_dir = super::ingest::config_dir(&loaded);
        for plan in self.plan(&loaded) {
            RemoteClient::new(&plan.config, &base_dir)
                .map_err(|error| format!("remote_write {:?}: {error}", plan.settings.url))?;
        }
        let runtime = Arc::clone(self);
        self.runtime.spawn(async move {
            if let Err(error) = runtime.apply_config(&loaded).await {
                tracing::error!(%error, "remote write: the new configuration could not be applied");
            }
        });
        Ok(())
    }

    /// Stops every queue (flushing within the deadline, saving positions).
    pub async fn stop(&self) {
        let _serialized = self.applying.lock().await;
        let queues: Vec<Arc<Queue>> = lock(&self.endpoints)
            .drain()
            .map(|(_, endpoint)| endpoint.queue)
            .collect();
        for queue in queues {
            queue.stop().await;
        }
    }

    /// The running queues.
    pub fn queues(&self) -> Vec<Arc<Queue>> {
        lock(&self.endpoints)
            .values()
            .map(|endpoint| Arc::clone(&endpoint.queue))
            .collect()
    }

    pub fn register_metrics(self: &Arc<Self>, telemetry: &Telemetry) {
        telemetry.register_collector(Box::new(RemoteWriteMetrics(Arc::clone(self))));
    }
}

/// The scrape manager's active targets, once ingestion runs (none before: the queues start
/// before scraping does).
impl MetadataSource for super::ingest::IngestHandle {
    fn active_targets_metadata(&self) -> Vec<TargetMetadataSnapshot> {
        let Some(ingest) = self.get() else {
            return Vec::new();
        };
        ingest
            .scrape
            .active_targets()
            .into_iter()
            .map(|active| TargetMetadataSnapshot {
                job: active.target.labels.get("job").to_string(),
                instance: active.target.labels.get("instance").to_string(),
                metadata: active.status.metadata,
            })
            .collect()
    }
}

/// `prometheus_remote_storage_*` of the running queues, read at scrape time.
pub struct RemoteWriteMetrics(pub Arc<RemoteWriteRuntime>);

impl std::fmt::Debug for RemoteWriteMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RemoteWriteMetrics")
    }
}

impl prometheus_client::collector::Collector for RemoteWriteMetrics {
    fn encode(
        &self,
        encoder: prometheus_client::encoding::DescriptorEncoder,
    ) -> Result<(), std::fmt::Error> {
        let queues = self.0.queues();
        let metrics: Vec<_> = queues
            .iter()
            .map(|queue| queue.metrics().as_ref())
            .collect();
        crate::remote::write::metrics::encode(&metrics, encoder)
    }
}
