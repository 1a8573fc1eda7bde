//! Wiring: builds one node from its options and configuration and runs the tokio shell around
//! it (HTTP server, signals, reloads, shutdown).

pub mod alerting;
pub mod cluster;
mod cluster_metrics;
pub mod embedded;
pub mod ingest;
pub mod notifier;
mod options;
pub mod receivers;
pub mod remote_write;
pub mod rules;
mod storage;
mod tsdb_metrics;

pub use options::{ClusterFlags, NodeOptions, route_prefix};
pub use rules::RulesFlags;

use crate::config::{self, LoadErrors, LoadedConfig};
use crate::telemetry::Telemetry;
use anyhow::Context as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::Duration;
use tocsin_mesh::ClusterSettings;

pub use embedded::{EMBEDDED_CONFIG, EMBEDDED_CONFIG_NAME};

/// How long in-flight requests get to finish after SIGTERM/SIGINT.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// The state every part of a running node shares.
pub struct Node {
    pub options: NodeOptions,
    pub started_at: jiff::Timestamp,
    pub external_url: url::Url,
    pub cluster: ClusterSettings,
    pub telemetry: Telemetry,
    config: RwLock<Arc<LoadedConfig>>,
    /// Serializes reloads from SIGHUP and HTTP, so two cannot interleave.
    reload_lock: Mutex<()>,
    ready: AtomicBool,
    /// Set once storage is open; absent while the node starts.
    alerting: OnceLock<Arc<alerting::AlertingRuntime>>,
    /// Set once a clustered node has joined its mesh.
    cluster_runtime: OnceLock<Arc<cluster::ClusterRuntime>>,
    /// Set once the TSDB under `<storage.path>/tsdb/` is open (its WAL replayed).
    tsdb: OnceLock<Arc<crate::tsdb::Tsdb>>,
    /// Set once the rule manager runs (after storage and the alerting core).
    rules: OnceLock<Arc<rules::RulesRuntime>>,
    /// Set once the `remote_write` queues run (right after the TSDB opens).
    remote_write: OnceLock<Arc<remote_write::RemoteWriteRuntime>>,
    /// The scrape manager, once storage is open (the API's handlers hold it from the start).
    pub ingest: Arc<ingest::IngestHandle>,
    /// The notifier that sends rules' alerts, once it runs (held by the API from the start).
    pub notifier: Arc<notifier::NotifierHandle>,
    /// The `remote_read` endpoints queries and rules also read from.
    pub remote_read: Arc<crate::remote::read::RemoteRead>,
}

impl Node {
    /// A node that is not ready yet: `run` marks it ready once storage is open.
    pub fn new(
        options: NodeOptions,
        loaded: LoadedConfig,
        cluster: ClusterSettings,
        external_url: url::Url,
    ) -> Node {
        let telemetry = Telemetry::new();
        telemetry.record_reload(true, jiff::Timestamp::now());
        Node {
            options,
            started_at: jiff::Timestamp::now(),
            external_url,
            cluster,
            telemetry,
            config: RwLock::new(Arc::new(loaded)),
            reload_lock: Mutex::new(()),
            ready: AtomicBool::new(false),
            alerting: OnceLock::new(),
            cluster_runtime: OnceLock::new(),
            tsdb: OnceLock::new(),
            rules: OnceLock::new(),
            remote_write: OnceLock::new(),
            ingest: ingest::IngestHandle::new(),
            notifier: notifier::NotifierHandle::new(),
            remote_read: crate::remote::read::RemoteRead::new(),
        }
    }

    /// The configuration in force. Cheap: clones an `Arc`.
    pub fn config(&self) -> Arc<LoadedConfig> {
        match self.config.read() {
            Ok(guard) => Arc::clone(&guard),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// The rule manager, once it runs.
    pub fn rules(&self) -> Option<&Arc<rules::RulesRuntime>> {
        self.rules.get()
    }

    /// The alerting runtime, once storage is open.
    pub fn alerting(&self) -> Option<&Arc<alerting::AlertingRuntime>> {
        self.alerting.get()
    }

    /// The time-series database, once it is open.
    pub fn tsdb(&self) -> Option<&Arc<crate::tsdb::Tsdb>> {
        self.tsdb.get()
    }

    /// The cluster runtime of a clustered node, once it joined its mesh.
    pub fn cluster_runtime(&self) -> Option<&Arc<cluster::ClusterRuntime>> {
        self.cluster_runtime.get()
    }

    /// Ready once storage is open and, in a cluster, the node has settled (synced with its
    /// peers, or waited the settle timeout).
    pub fn is_ready(&self) -> bool {
        let settled = if self.cluster.is_clustered() {
            self.cluster_runtime()
                .is_some_and(|runtime| runtime.is_settled())
        } else {
            true
        };
        self.ready.load(Ordering::Acquire) && settled
    }

    /// Re-reads the configuration. On any error the running configuration stays in force.
    pub fn reload(&self) -> Result<(), LoadErrors> {
        let _serialized = self
            .reload_lock
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let result = load_config(&self.options).and_then(|loaded| {
            resolve_cluster(&self.options, &loaded)?;
            Ok(loaded)
        });
        match result {
            Ok(loaded) => {
                let source = loaded.source_name.clone();
                // First: it fails only when an endpoint cannot be built, and then nothing else
                // has changed yet.
                if let Err(message) = self.remote_read.apply_config(&loaded) {
                    let errors =
                        LoadErrors(vec![config::ConfigError::whole_file(&source, message)]);
                    self.telemetry.record_reload(false, jiff::Timestamp::now());
                    tracing::error!(error = %errors, "configuration reload failed; keeping the running configuration");
                    return Err(errors);
                }
                if let Some(alerting) = self.alerting()
                    && let Err(message) = alerting.apply_config(&loaded, self.external_url.as_str())
                {
                    let errors =
                        LoadErrors(vec![config::ConfigError::whole_file(&source, message)]);
                    self.telemetry.record_reload(false, jiff::Timestamp::now());
                    tracing::error!(error = %errors, "configuration reload failed; keeping the running configuration");
                    return Err(errors);
                }
                if let Some(notifier) = self.notifier.get()
                    && let Err(message) = notifier.apply_config(&loaded)
                {
                    let errors =
                        LoadErrors(vec![config::ConfigError::whole_file(&source, message)]);
                    self.telemetry.record_reload(false, jiff::Timestamp::now());
                    tracing::error!(error = %errors, "configuration reload failed; keeping the running configuration");
                    return Err(errors);
                }
                if let Some(rules) = self.rules()
                    && let Err(message) = rules.apply_config(&loaded)
                {
                    let errors =
                        LoadErrors(vec![config::ConfigError::whole_file(&source, message)]);
                    self.telemetry.record_reload(false, jiff::Timestamp::now());
                    tracing::error!(error = %errors, "error loading rules, previous rule set restored");
                    return Err(errors);
                }
                if let Some(remote_write) = self.remote_write.get()
                    && let Err(message) = remote_write.reload(Arc::new(loaded.clone()))
                {
                    let errors =
                        LoadErrors(vec![config::ConfigError::whole_file(&source, message)]);
                    self.telemetry.record_reload(false, jiff::Timestamp::now());
                    tracing::error!(error = %errors, "configuration reload failed; keeping the running configuration");
                    return Err(errors);
                }
                if let Some(ingest) = self.ingest.get()
                    && let Err(error) = ingest.apply_config(&loaded)
                {
                    tracing::error!(%error, "some scrape jobs could not be applied");
                }
                if let Some(tsdb) = self.tsdb() {
                    tsdb_metrics::apply_retention_config(tsdb, &loaded.config.storage);
                }
                // The write guard lives only for the swap: holding it while anything else reads
                // the config (even the log line below) would deadlock.
                *self
                    .config
                    .write()
                    .unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::new(loaded);
                self.telemetry.record_reload(true, jiff::Timestamp::now());
                tracing::info!(file = %source, "configuration reloaded");
                Ok(())
            }
            Err(errors) => {
                self.telemetry.record_reload(false, jiff::Timestamp::now());
                tracing::error!(error = %errors, "configuration reload failed; keeping the running configuration");
                Err(errors)
            }
        }
    }

    fn config_source(&self) -> String {
        self.config().source_name.clone()
    }
}

/// Loads the configuration the options name, or the embedded default.
pub fn load_config(options: &NodeOptions) -> Result<LoadedConfig, LoadErrors> {
    match &options.config_file {
        Some(path) => config::load_file(path),
        None => embedded::load(
            &options.web_listen_address,
            options.web_external_url.as_deref(),
        ),
    }
}

/// The cluster settings: defaults, then the config's `cluster:` section, then the flags.
pub fn resolve_cluster(
    options: &NodeOptions,
    loaded: &LoadedConfig,
) -> Result<ClusterSettings, LoadErrors> {
    let mut settings = ClusterSettings::new(options::host_name());
    if let Some(section) = &loaded.config.cluster {
        section
            .value
            .apply_to(&mut settings)
            .map_err(|invalid| invalid.in_file(&loaded.source_name))?;
    }
    options.cluster.apply_to(&mut settings).map_err(|message| {
        LoadErrors(vec![config::ConfigError::whole_file(
            "command line",
            message,
        )])
    })?;
    settings.validate().map_err(|error| {
        LoadErrors(vec![config::ConfigError::whole_file(
            "cluster settings",
            error.to_string(),
        )])
    })?;
    Ok(settings)
}

/// Runs a node until SIGTERM or SIGINT.
pub async fn run(options: NodeOptions) -> anyhow::Result<()> {
    // One rustls crypto provider (ring) for the whole process, installed before any TLS use.
    tocsin_receivers::http_client::install_crypto_provider();
    let loaded = load_config(&options)
        .map_err(|errors| anyhow::anyhow!("invalid configuration:\n{errors}"))?;
    let cluster =
        resolve_cluster(&options, &loaded).map_err(|errors| anyhow::anyhow!("{errors}"))?;
    let listen_address = options::normalize_listen_address(&options.web_listen_address);
    let listener = tokio::net::TcpListener::bind(&listen_address)
        .await
        .with_context(|| format!("cannot listen on {listen_address}"))?;
    let bound = listener
        .local_addr()
        .context("listener has no local address")?;
    let external_url = options::external_url(options.web_external_url.as_deref(), bound)?;

    let node = Arc::new(Node::new(options, loaded, cluster, external_url));

    // HTTP comes up first so that `/-/ready` can tell the truth (503) while storage opens.
    let router = crate::api::router(Arc::clone(&node));
    let (shutdown_sender, shutdown_receiver) = tokio::sync::watch::channel(false);
    let mut wait_for_shutdown = shutdown_receiver.clone();
    let server = axum::serve(listener, router).with_graceful_shutdown(async move {
        let _ = wait_for_shutdown.wait_for(|stop| *stop).await;
    });
    let server = tokio::spawn(async move { server.await });
    let signals = tokio::spawn(handle_signals(Arc::clone(&node), shutdown_sender));

    node.remote_read
        .apply_config(&node.config())
        .map_err(|error| anyhow::anyhow!("cannot set up remote_read: {error}"))?;
    let _storage_lock = storage::open(&node.options.storage_path)?;
    let tsdb = tsdb_metrics::open(&node.options, &node.config()).await?;
    let _ = node.tsdb.set(Arc::clone(&tsdb));
    node.telemetry
        .register_collector(Box::new(tsdb_metrics::TsdbMetrics(Arc::clone(&tsdb))));
    let compaction_task = tokio::spawn(tsdb_metrics::compact_periodically(
        Arc::clone(&tsdb),
        shutdown_receiver.clone(),
    ));
    // Remote write tails the WAL: started before anything appends, so "from now" (a queue
    // with no saved position) misses nothing this run ingests.
    let remote_write_runtime = remote_write::RemoteWriteRuntime::new(
        &node.options.storage_path,
        &tsdb.folder().join("wal"),
        Arc::clone(&node.ingest) as Arc<dyn crate::remote::write::MetadataSource>,
    );
    remote_write_runtime
        .apply_config(&node.config())
        .await
        .map_err(|error| anyhow::anyhow!("cannot start remote write: {error}"))?;
    remote_write_runtime.register_metrics(&node.telemetry);
    let _ = node.remote_write.set(Arc::clone(&remote_write_runtime));
    let ingest_runtime = ingest::start(&node.config(), Arc::clone(&tsdb), &options::host_name())
        .map_err(|error| anyhow::anyhow!(error))?;
    node.ingest.set(Arc::clone(&ingest_runtime));
    node.telemetry
        .register_collector(Box::new(ingest::IngestMetrics(Arc::clone(&ingest_runtime))));
    let alerting = Arc::new(alerting::AlertingRuntime::open(
        &node.options.storage_path,
        &node.config(),
        node.external_url.as_str(),
        jiff::Timestamp::now(),
    )?);
    let _ = node.alerting.set(Arc::clone(&alerting));
    node.telemetry
        .register_collector(Box::new(alerting::AlertingMetrics(Arc::clone(&alerting))));
    if node.cluster.is_clustered() {
        let runtime = cluster::ClusterRuntime::start(
            node.cluster.clone(),
            node.options.cluster.insecure,
            Arc::clone(&alerting),
            node.external_url.as_str(),
            shutdown_receiver.clone(),
        )
        .await?;
        node.telemetry
            .register_collector(Box::new(cluster_metrics::ClusterMetrics(Arc::clone(
                &runtime,
            ))));
        let _ = node.cluster_runtime.set(runtime);
    }
    let alerting_task = {
        let shutdown = shutdown_receiver.clone();
        tokio::spawn(Arc::clone(&alerting).run(shutdown))
    };
    let notifier = notifier::Notifier::start(
        node.options.notifier.clone(),
        &node.config(),
        Some(Arc::clone(&alerting)),
    )
    .map_err(|error| anyhow::anyhow!("cannot start the notifier: {error}"))?;
    notifier.register_metrics(&node.telemetry);
    node.notifier.set(Arc::clone(&notifier));
    let rules_runtime = rules::RulesRuntime::new(
        &node.config(),
        Arc::clone(&tsdb),
        Arc::clone(&notifier) as Arc<dyn crate::rules::AlertSink>,
        Arc::clone(&node.remote_read),
        node.external_url.as_str(),
        node.options.rules,
        node.options.query.engine(),
    )
    .map_err(|error| anyhow::anyhow!("cannot load rules: {error}"))?;
    let _ = node.rules.set(Arc::clone(&rules_runtime));
    node.telemetry
        .register_collector(Box::new(rules::RulesMetrics(Arc::clone(&rules_runtime))));
    let rules_task = tokio::spawn(Arc::clone(&rules_runtime).run(shutdown_receiver.clone()));
    node.ready.store(true, Ordering::Release);
    tracing::info!(
        address = %bound,
        url = %node.external_url,
        config = %node.config_source(),
        version = crate::build_info::VERSION,
        "Tocsin is ready"
    );
    // The one line a newcomer looks for among the others.
    tracing::info!("Tocsin is up: UI and API at {}", browse_url(&node, bound));

    let mut shutdown_started = shutdown_receiver;
    let _ = shutdown_started.wait_for(|stop| *stop).await;
    node.ready.store(false, Ordering::Release);
    match tokio::time::timeout(SHUTDOWN_GRACE, server).await {
        Ok(Ok(Ok(()))) => tracing::info!("HTTP server stopped"),
        Ok(Ok(Err(error))) => tracing::warn!(%error, "HTTP server stopped with an error"),
        Ok(Err(error)) => tracing::warn!(%error, "HTTP server task failed"),
        Err(_) => {
            tracing::warn!("requests still running after {SHUTDOWN_GRACE:?}; stopping anyway")
        }
    }
    signals.abort();
    let _ = rules_task.await;
    notifier.stop().await;
    ingest_runtime.stop().await;
    remote_write_runtime.stop().await;
    let _ = alerting_task.await;
    let _ = compaction_task.await;
    if let Some(runtime) = node.cluster_runtime() {
        runtime.shutdown().await;
    }
    tracing::info!("see you next time");
    Ok(())
}

/// Where a person on this machine opens the UI: the external URL when `--web.external-url`
/// sets it, else the bound address, with an any-interface address shown as `localhost` (the
/// default external URL names the host, which may not resolve from a browser here).
fn browse_url(node: &Node, bound: std::net::SocketAddr) -> String {
    if node
        .options
        .web_external_url
        .as_deref()
        .is_some_and(|flag| !flag.is_empty())
    {
        return node.external_url.to_string();
    }
    if bound.ip().is_unspecified() {
        format!("http://localhost:{}/", bound.port())
    } else {
        format!("http://{bound}/")
    }
}

/// SIGHUP reloads; SIGTERM and SIGINT start a graceful shutdown.
async fn handle_signals(node: Arc<Node>, shutdown: tokio::sync::watch::Sender<bool>) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut hangup), Ok(mut terminate), Ok(mut interrupt)) = (
        signal(SignalKind::hangup()),
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot install signal handlers; stopping");
        let _ = shutdown.send(true);
        return;
    };
    loop {
        tokio::select! {
            _ = hangup.recv() => {
                let node = Arc::clone(&node);
                // Loading reads files: keep it off the async workers.
                let _ = tokio::task::spawn_blocking(move || node.reload()).await;
            }
            _ = terminate.recv() => {
                tracing::info!("received SIGTERM, shutting down");
                break;
            }
            _ = interrupt.recv() => {
                tracing::info!("received SIGINT, shutting down");
                break;
            }
        }
    }
    let _ = shutdown.send(true);
}
