//! Status endpoints: Prometheus's `/api/v1/status/*` and Alertmanager's `/api/v2/status`.

use super::prometheus::{ApiError, ErrorKind};
use super::prometheus_success;
use crate::node::Node;
use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use std::sync::Arc;

pub async fn build_info() -> Json<serde_json::Value> {
    prometheus_success(crate::build_info::build_info())
}

/// Prometheus's success envelope with `data`'s fields in their declared order (the
/// `serde_json::Value` route sorts keys).
#[derive(Serialize)]
struct Success<T> {
    status: &'static str,
    data: T,
}

fn success<T: Serialize>(data: T) -> Response {
    Json(Success {
        status: "success",
        data,
    })
    .into_response()
}

/// `/api/v1/status/runtimeinfo`, with Prometheus's field names and types. The Go runtime's
/// fields carry their nearest Tocsin counterparts: `goroutineCount` the live tokio tasks,
/// `GOMAXPROCS` the tokio worker threads, `GOMEMLIMIT` Go's "no limit" (`i64::MAX`: Tocsin
/// sets no soft memory limit), `GOGC` and `GODEBUG` empty (no garbage collector, no Go
/// runtime settings: what Prometheus shows when the variables are unset).
#[derive(Serialize)]
struct RuntimeInfo {
    #[serde(rename = "startTime")]
    start_time: String,
    #[serde(rename = "CWD")]
    cwd: String,
    #[serde(rename = "reloadConfigSuccess")]
    reload_config_success: bool,
    #[serde(rename = "lastConfigTime")]
    last_config_time: String,
    #[serde(rename = "corruptionCount")]
    corruption_count: i64,
    #[serde(rename = "goroutineCount")]
    goroutine_count: usize,
    #[serde(rename = "GOMAXPROCS")]
    gomaxprocs: usize,
    #[serde(rename = "GOMEMLIMIT")]
    gomemlimit: i64,
    #[serde(rename = "GOGC")]
    gogc: &'static str,
    #[serde(rename = "GODEBUG")]
    godebug: &'static str,
    #[serde(rename = "storageRetention")]
    storage_retention: String,
}

pub async fn runtime_info(State(node): State<Arc<Node>>) -> Response {
    let (reload_success, last_reload_seconds) = node.telemetry.last_reload();
    // Prometheus reads the reload time back from its gauge as whole seconds.
    let last_config_time = jiff::Timestamp::from_second(last_reload_seconds.floor() as i64)
        .unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    let (tasks, workers) = match tokio::runtime::Handle::try_current() {
        Ok(runtime) => {
            let metrics = runtime.metrics();
            (metrics.num_alive_tasks(), metrics.num_workers())
        }
        Err(_) => (0, 0),
    };
    let tsdb = node.tsdb();
    success(RuntimeInfo {
        start_time: node.started_at.to_string(),
        cwd: std::env::current_dir().map_or_else(
            |_| "<error retrieving current working directory>".to_string(),
            |dir| dir.display().to_string(),
        ),
        reload_config_success: reload_success,
        last_config_time: last_config_time.to_string(),
        corruption_count: tsdb.map_or(0, |tsdb| {
            i64::try_from(tsdb.replay_report().corruptions.len()).unwrap_or(i64::MAX)
        }),
        goroutine_count: tasks,
        gomaxprocs: workers,
        gomemlimit: i64::MAX,
        gogc: "",
        godebug: "",
        storage_retention: tsdb.map_or_else(String::new, |tsdb| {
            let retention = tsdb.retention();
            describe_retention(retention.time_ms, retention.bytes)
        }),
    })
}

/// Retention as Prometheus's runtime info writes it: `15d`, `1GiB`, or `30d or 1GiB512MiB`;
/// empty when neither limit is set.
fn describe_retention(time_ms: Option<i64>, bytes: Option<u64>) -> String {
    let mut parts = Vec::new();
    if let Some(ms) = time_ms.filter(|ms| *ms > 0) {
        parts.push(crate::config::PromDuration::from_millis(ms.unsigned_abs()).to_string());
    }
    if let Some(bytes) = bytes.filter(|bytes| *bytes > 0) {
        parts.push(base2_bytes(bytes));
    }
    parts.join(" or ")
}

/// A size as Go's `units.Base2Bytes.String` writes it: every non-zero power-of-1024 digit,
/// largest unit first (`1GiB512MiB`, `1536B` is `1KiB512B`).
fn base2_bytes(bytes: u64) -> String {
    const UNITS: [&str; 7] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    let mut rest = bytes;
    let mut digits = Vec::new();
    for unit in UNITS {
        if !rest.is_multiple_of(1024) {
            digits.push(format!("{}{unit}", rest % 1024));
        }
        rest /= 1024;
        if rest == 0 {
            break;
        }
    }
    if digits.is_empty() {
        return "0B".to_string();
    }
    digits.reverse();
    digits.concat()
}

/// How many entries each list of `/api/v1/status/tsdb` has, as in Prometheus 2.42.
const TSDB_STATUS_ENTRIES: usize = 10;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TsdbStatus {
    head_stats: HeadStats,
    series_count_by_metric_name: Vec<NameValue>,
    label_value_count_by_label_name: Vec<NameValue>,
    memory_in_bytes_by_label_name: Vec<NameValue>,
    series_count_by_label_value_pair: Vec<NameValue>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct HeadStats {
    num_series: u64,
    num_label_pairs: u64,
    chunk_count: u64,
    /// Milliseconds; `i64::MAX` and `i64::MIN` while the head is empty, as in Prometheus.
    min_time: i64,
    max_time: i64,
}

#[derive(Serialize)]
struct NameValue {
    name: String,
    value: u64,
}

fn name_values(list: Vec<(String, u64)>) -> Vec<NameValue> {
    list.into_iter()
        .map(|(name, value)| NameValue { name, value })
        .collect()
}

/// `/api/v1/status/tsdb`: the head's numbers and its cardinality (top 10 of each list), from
/// the head's postings. `unavailable` while the TSDB opens.
pub async fn tsdb_status(State(node): State<Arc<Node>>) -> Response {
    let Some(tsdb) = node.tsdb().cloned() else {
        return ApiError::new(ErrorKind::Unavailable, "TSDB not ready").into_response();
    };
    let computed = tokio::task::spawn_blocking(move || {
        let stats = tsdb.stats();
        let cardinality = tsdb.head_cardinality("__name__", TSDB_STATUS_ENTRIES);
        (stats, cardinality)
    })
    .await;
    let (stats, cardinality) = match computed {
        Ok(computed) => computed,
        Err(error) => {
            return ApiError::new(
                ErrorKind::Internal,
                format!("computing the TSDB status failed: {error}"),
            )
            .into_response();
        }
    };
    success(TsdbStatus {
        head_stats: HeadStats {
            num_series: stats.head_series,
            num_label_pairs: cardinality.num_label_pairs,
            chunk_count: stats.head_chunks,
            min_time: stats.head_min_time.unwrap_or(i64::MAX),
            max_time: stats.head_max_time.unwrap_or(i64::MIN),
        },
        series_count_by_metric_name: name_values(cardinality.series_count_by_metric_name),
        label_value_count_by_label_name: name_values(cardinality.label_value_count_by_label_name),
        memory_in_bytes_by_label_name: name_values(cardinality.memory_in_bytes_by_label_name),
        series_count_by_label_value_pair: name_values(cardinality.series_count_by_label_value_pair),
    })
}

#[derive(Serialize)]
struct WalReplayStatus {
    min: u64,
    max: u64,
    current: u64,
}

/// `/api/v1/status/walreplay`: the WAL segments the start-up replay covered, as Prometheus
/// counts them (`min` the first after the checkpoint, `max` the segment the writer starts,
/// `current` = `max` once done). Tocsin serves the API only once the replay is done, so it
/// never shows one in progress; before the TSDB is open it answers `unavailable`.
pub async fn wal_replay(State(node): State<Arc<Node>>) -> Response {
    let Some(tsdb) = node.tsdb() else {
        return ApiError::new(ErrorKind::Unavailable, "WAL replay in progress").into_response();
    };
    let report = tsdb.replay_report();
    success(WalReplayStatus {
        min: report
            .checkpoint
            .map_or(0, |number| number.saturating_add(1)),
        max: report.writer_segment,
        current: report.writer_segment,
    })
}

/// The configuration in force, with defaults filled in and secrets shown as `<secret>`.
pub async fn config(State(node): State<Arc<Node>>) -> Json<serde_json::Value> {
    let loaded = node.config();
    prometheus_success(serde_json::json!({ "yaml": crate::config::to_yaml(&loaded.config) }))
}

pub async fn flags(State(node): State<Arc<Node>>) -> Json<serde_json::Value> {
    prometheus_success(&node.options.flags)
}

#[derive(Serialize)]
pub struct ClusterStatus {
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    /// `ready`, `settling` or `disabled`, as Alertmanager reports it.
    status: &'static str,
    /// Live members, this node included, as Alertmanager lists them (`name`, `address`).
    peers: Vec<PeerStatus>,
    /// Tocsin's own fields (clients that follow Alertmanager's schema ignore them).
    #[serde(skip_serializing_if = "Option::is_none")]
    tocsin: Option<TocsinClusterStatus>,
}

#[derive(Serialize)]
pub struct PeerStatus {
    name: String,
    address: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TocsinClusterStatus {
    cluster_name: String,
    /// Notifications waiting for this node's turn (it is not their owner).
    deferred_notifications: usize,
    /// Claims on notifications held now, and how many are this node's.
    claims: usize,
    own_claims: usize,
    /// Notifications sent as owner, deferred, and skipped because a peer sent them.
    sent_as_owner: u64,
    deferred_total: u64,
    skipped_sent_by_peer: u64,
    sent_in_place_of_owner: u64,
}

fn cluster_status(node: &Node) -> ClusterStatus {
    let Some(runtime) = node.cluster_runtime() else {
        return ClusterStatus {
            name: node
                .cluster
                .is_clustered()
                .then(|| node.cluster.node_name.clone()),
            status: if node.cluster.is_clustered() {
                "settling"
            } else {
                "disabled"
            },
            peers: Vec::new(),
            tocsin: None,
        };
    };
    let snapshot = runtime.snapshot();
    let me = snapshot.node_name.clone();
    let (deferred, claims, own_claims, dispatch) = runtime.alerting().read(|pipeline| {
        (
            pipeline.deferred_len(),
            pipeline.claims.len(),
            pipeline
                .claims
                .iter()
                .filter(|claim| claim.node == me)
                .count(),
            pipeline.dispatch,
        )
    });
    ClusterStatus {
        name: Some(snapshot.node_name),
        status: if snapshot.settled {
            "ready"
        } else {
            "settling"
        },
        peers: snapshot
            .members
            .into_iter()
            .map(|member| PeerStatus {
                name: member.name,
                address: member.cluster_address.to_string(),
            })
            .collect(),
        tocsin: Some(TocsinClusterStatus {
            cluster_name: snapshot.cluster_name,
            deferred_notifications: deferred,
            claims,
            own_claims,
            sent_as_owner: dispatch.sent_as_owner,
            deferred_total: dispatch.deferred,
            skipped_sent_by_peer: dispatch.sent_by_peer,
            sent_in_place_of_owner: dispatch.sent_in_place_of_owner,
        }),
    }
}

#[derive(Serialize)]
pub struct AlertmanagerConfigStatus {
    original: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AlertmanagerStatus {
    cluster: ClusterStatus,
    config: AlertmanagerConfigStatus,
    uptime: String,
    version_info: crate::build_info::BuildInfo,
}

/// Alertmanager's `GET /api/v2/status`, which `amtool config show` and `amtool cluster show`
/// read. A node without `--cluster.listen-address` reports its cluster `disabled`.
pub async fn alertmanager_status(State(node): State<Arc<Node>>) -> Json<AlertmanagerStatus> {
    let loaded = node.config();
    Json(AlertmanagerStatus {
        cluster: cluster_status(&node),
        config: AlertmanagerConfigStatus {
            original: loaded.alertmanager_text.clone(),
        },
        uptime: node.started_at.to_string(),
        version_info: crate::build_info::build_info(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retention_reads_as_prometheus_writes_it() {
        const DAY_MS: i64 = 24 * 3600 * 1000;
        assert_eq!(describe_retention(Some(15 * DAY_MS), None), "15d");
        assert_eq!(describe_retention(None, Some(1 << 30)), "1GiB");
        // Measured against Prometheus 2.42: `--storage.tsdb.retention.time=30d
        // --storage.tsdb.retention.size=1.5GB` reports "30d or 1GiB512MiB".
        assert_eq!(
            describe_retention(Some(30 * DAY_MS), Some(3 << 29)),
            "30d or 1GiB512MiB"
        );
        assert_eq!(describe_retention(None, None), "");
        assert_eq!(base2_bytes(1536), "1KiB512B");
        assert_eq!(base2_bytes(1023), "1023B");
        assert_eq!(
            base2_bytes(u64::MAX),
            "15EiB1023PiB1023TiB1023GiB1023MiB1023KiB1023B"
        );
    }
}
