//! `remote_read`: PromQL selectors read the local TSDB and every configured remote endpoint,
//! and the series are merged, as Prometheus's fan-out storage with remote read does
//! (`storage/remote/read.go`, `storage/fanout.go`).
//!
//! Per selector and endpoint:
//! - `required_matchers`: the endpoint is asked only when the selector has each of them as an
//!   equality matcher.
//! - `read_recent: false` (the default): the endpoint is skipped when the selected range starts
//!   after the local storage's start (its oldest block's first timestamp, or now when there is
//!   no block yet, plus twice the evaluation interval of margin), and otherwise asked only up to
//!   that start; with `read_recent: true` it is asked for the whole range.
//! - `filter_external_labels: true` (the default): an equality matcher is added for each of
//!   the node's external labels the selector does not name itself, and those labels are removed
//!   from the returned series.
//!
//! The merge: series with identical labels become one; on equal timestamps the local sample
//! wins, then the earlier endpoint in the configuration. An endpoint that fails (network, HTTP
//! status, undecodable answer, timeout) leaves its data out and adds a warning to the query's
//! answer, as Prometheus treats its secondary storages; the query itself succeeds. Label names
//! and values (`/api/v1/labels`) stay local, as Prometheus's remote querier answers them empty.
//!
//! [`Queryable`] is synchronous and runs on a blocking thread (the query API's
//! `spawn_blocking`, the rule loop's `spawn_blocking`), so a selector sends its requests as
//! tasks on the node's runtime and waits for them with [`tokio::runtime::Handle::block_on`].
//! Waiting there parks only that blocking thread, never an async worker; the requests of the
//! endpoints run concurrently; and each is bounded by its `remote_timeout`, so a query cannot
//! hang on a dead remote. Fetching per selector (rather than before evaluation) keeps the
//! engine's own span computation: the engine already asks once per selector for the whole span
//! it needs (offsets, `@`, ranges and subqueries included).

mod client;
pub mod frame;
pub mod merge;
pub mod metrics;
pub mod proto;

pub use client::{Endpoint, EndpointRules, RemoteSeries, decode_frame, decode_samples_answer};

use crate::config::LoadedConfig;
use crate::promql::tsdb_source::TsdbSource;
use crate::promql::{Matcher, Queryable, SeriesData, StorageError};
use crate::tsdb::Tsdb;
use std::cell::RefCell;
use std::sync::{Arc, RwLock};

/// The endpoints and what their rules need from the configuration.
#[derive(Debug, Default)]
pub struct Settings {
    pub endpoints: Vec<Arc<Endpoint>>,
    /// The node's external labels, sorted by name.
    pub external_labels: Vec<(String, String)>,
    /// Twice the evaluation interval, added to the local start time as Prometheus does (it
    /// may take a few minutes for everything to spin up).
    pub start_time_margin_ms: i64,
}

/// The `remote_read` endpoints of the configuration in force; shared by the query API and the
/// rule manager.
#[derive(Debug, Default)]
pub struct RemoteRead {
    settings: RwLock<Arc<Settings>>,
    /// The client's numbers per endpoint, and the server's.
    pub metrics: Arc<metrics::ReadMetrics>,
}

impl RemoteRead {
    pub fn new() -> Arc<RemoteRead> {
        Arc::new(RemoteRead::default())
    }

    /// Builds the endpoints of `loaded`; on error the previous ones stay.
    pub fn apply_config(&self, loaded: &LoadedConfig) -> Result<(), String> {
        let endpoints = loaded
            .config
            .remote_read
            .iter()
            .map(|config| Endpoint::new(&config.value, loaded, &self.metrics).map(Arc::new))
            .collect::<Result<Vec<_>, String>>()?;
        let current: Vec<_> = endpoints
            .iter()
            .map(|endpoint| Arc::clone(endpoint.metrics()))
            .collect();
        self.metrics.retain(&current);
        let global = &loaded.config.global;
        let mut external_labels: Vec<(String, String)> = global
            .external_labels
            .iter()
            .filter(|(_, value)| !value.is_empty())
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect();
        external_labels.sort();
        let margin = global.evaluation_interval().as_millis().saturating_mul(2);
        let settings = Settings {
            endpoints,
            external_labels,
            start_time_margin_ms: i64::try_from(margin).unwrap_or(i64::MAX),
        };
        *self
            .settings
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::new(settings);
        Ok(())
    }

    /// The settings in force. Cheap: clones an `Arc`.
    pub fn settings(&self) -> Arc<Settings> {
        match self.settings.read() {
            Ok(guard) => Arc::clone(&guard),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// The [`Queryable`] over `tsdb` and the endpoints, for one query or rule evaluation.
    pub fn queryable<'a>(&'a self, tsdb: &'a Tsdb) -> FanoutQueryable<'a> {
        FanoutQueryable {
            local: TsdbSource::new(tsdb),
            tsdb,
            settings: self.settings(),
            runtime: tokio::runtime::Handle::try_current().ok(),
            warnings: RefCell::new(Vec::new()),
        }
    }
}

fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

/// Reads the local TSDB and the remote endpoints for one query or rule evaluation; collects
/// the endpoints' failures as warnings.
pub struct FanoutQueryable<'a> {
    local: TsdbSource<'a>,
    tsdb: &'a Tsdb,
    settings: Arc<Settings>,
    runtime: Option<tokio::runtime::Handle>,
    warnings: RefCell<Vec<String>>,
}

impl FanoutQueryable<'_> {
    /// The warnings gathered so far (each once, in order), emptied.
    pub fn take_warnings(&self) -> Vec<String> {
        std::mem::take(&mut *self.warnings.borrow_mut())
    }

    fn warn(&self, warning: String) {
        tracing::debug!(%warning, "remote read failed");
        let mut warnings = self.warnings.borrow_mut();
        if !warnings.contains(&warning) {
            warnings.push(warning);
        }
    }

    /// The local start time for `read_recent: false`, with its margin.
    fn local_start_ms(&self) -> i64 {
        let start = self.tsdb.oldest_block_min_time().unwrap_or_else(now_ms);
        start.saturating_add(self.settings.start_time_margin_ms)
    }
}

impl Queryable for FanoutQueryable<'_> {
    fn select(
        &self,
        matchers: &[Matcher],
        mint_ms: i64,
        maxt_ms: i64,
    ) -> Result<Vec<SeriesData>, StorageError> {
        let local = self.local.select(matchers, mint_ms, maxt_ms)?;
        if self.settings.endpoints.is_empty() {
            return Ok(local);
        }
        let mut local_start = None;
        let mut planned = Vec::new();
        for endpoint in &self.settings.endpoints {
            let start = if endpoint.rules.read_recent {
                None
            } else {
                Some(*local_start.get_or_insert_with(|| self.local_start_ms()))
            };
            if let Some(plan) = merge::plan(
                &endpoint.rules,
                matchers,
                mint_ms,
                maxt_ms,
                &self.settings.external_labels,
                start,
            ) {
                planned.push((Arc::clone(endpoint), plan));
            }
        }
        if planned.is_empty() {
            return Ok(local);
        }
        let Some(runtime) = &self.runtime else {
            self.warn("remote_read: no async runtime to send requests on".to_string());
            return Ok(local);
        };
        let tasks: Vec<_> = planned
            .into_iter()
            .map(|(endpoint, plan)| {
                let query = plan.query.clone();
                let task_endpoint = Arc::clone(&endpoint);
                let task = runtime.spawn(async move { task_endpoint.read(query).await });
                (endpoint, plan, task)
            })
            .collect();
        let mut remote = Vec::with_capacity(tasks.len());
        for (endpoint, plan, task) in tasks {
            let answer = runtime
                .block_on(task)
                .unwrap_or_else(|error| Err(format!("request task failed: {error}")))
                .and_then(|series| merge::to_series_data(series, &plan, mint_ms, maxt_ms));
            match answer {
                Ok(series) => remote.push(series),
                Err(error) => self.warn(format!("remote_read {}: {error}", endpoint.label)),
            }
        }
        Ok(merge::merge(local, remote))
    }

    fn label_names(&self, matchers: &[Matcher]) -> Result<Vec<String>, StorageError> {
        self.local.label_names(matchers)
    }

    fn label_values(&self, name: &str, matchers: &[Matcher]) -> Result<Vec<String>, StorageError> {
        self.local.label_values(name, matchers)
    }
}
