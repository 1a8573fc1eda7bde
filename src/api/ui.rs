//! The web UI: static assets embedded in the binary (no build step, no CDN), served under the
//! route prefix, plus `/api/ui/v1/cluster`, the one JSON view the UI needs that neither
//! Prometheus's nor Alertmanager's API has (replication sync state and this node's ranks).
//!
//! Paths: `/` redirects to `/ui/`; `/ui/` is the page (its views are hash routes such as
//! `#/alerts`); assets live under `/ui/assets/<version>/`, where the version is a hash of every
//! asset, so a browser may keep them forever and an upgrade changes their URLs.

use crate::alerting::nflog::ReceiverKey;
use crate::node::Node;
use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Serialize;
use std::sync::{Arc, LazyLock};

/// One embedded file: its path under the assets folder, content type and bytes.
struct Asset {
    path: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
}

const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const SVG: &str = "image/svg+xml";

/// `asset!("pages/alerts.js", JS)`: the file `web/pages/alerts.js`, embedded at compile time.
macro_rules! asset {
    ($path:literal, $content_type:expr) => {
        Asset {
            path: $path,
            content_type: $content_type,
            bytes: include_bytes!(concat!("../../web/", $path)),
        }
    };
}

static ASSETS: &[Asset] = &[
    asset!("app.css", CSS),
    asset!("app.js", JS),
    asset!("api.js", JS),
    asset!("dom.js", JS),
    asset!("matchers.js", JS),
    asset!("chart.js", JS),
    asset!("pages/alerts.js", JS),
    asset!("pages/silences.js", JS),
    asset!("pages/query.js", JS),
    asset!("pages/status.js", JS),
    asset!("favicon.svg", SVG),
];

const INDEX_TEMPLATE: &str = include_str!("../../web/index.html");

/// A 64-bit FNV-1a over every asset's path and bytes, in hex: the assets' version. Any change to
/// any file changes it, which is what cache busting needs (not collision resistance).
static VERSION: LazyLock<String> = LazyLock::new(|| {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let parts = ASSETS
        .iter()
        .flat_map(|asset| [asset.path.as_bytes(), asset.bytes])
        .chain([INDEX_TEMPLATE.as_bytes()]);
    for part in parts {
        for byte in part.iter().chain([&0xff]) {
            hash ^= u64::from(*byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    format!("{hash:016x}")
});

/// The page, with its asset URLs pointing at this version's folder (relative, so the route
/// prefix needs no rewriting).
static INDEX: LazyLock<String> =
    LazyLock::new(|| INDEX_TEMPLATE.replace("%ASSETS%", &format!("assets/{}", *VERSION)));

/// The routes, relative to the route prefix.
pub fn routes() -> Router<Arc<Node>> {
    Router::new()
        .route("/", get(redirect_home))
        .route("/ui", get(redirect_home))
        .route("/ui/", get(index))
        .route("/ui/assets/{version}/{*path}", get(asset))
        .route("/api/ui/v1/cluster", get(cluster))
}

/// `<prefix>/` (the external URL as usually written, with its slash), which nesting under the
/// prefix does not match: it redirects to the UI like `<prefix>` does.
pub fn prefix_root(prefix: &str) -> Router {
    let location = format!("{prefix}/ui/");
    Router::new().route(
        &format!("{prefix}/"),
        get(move || async move { redirect_to(&location) }),
    )
}

/// `/` and `/ui` (no trailing slash, which would break the page's relative URLs) go to `/ui/`.
async fn redirect_home(State(node): State<Arc<Node>>) -> Response {
    redirect_to(&format!(
        "{}/ui/",
        crate::node::route_prefix(&node.external_url)
    ))
}

fn redirect_to(location: &str) -> Response {
    match HeaderValue::from_str(location) {
        Ok(location) => (StatusCode::FOUND, [(header::LOCATION, location)]).into_response(),
        Err(_) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "the route prefix from --web.external-url is not a valid Location header",
        )
            .into_response(),
    }
}

fn etag() -> String {
    format!("\"{}\"", *VERSION)
}

/// Whether the client's `If-None-Match` names our current ETag.
fn not_modified(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|candidate| {
            let candidate = candidate.trim();
            candidate == "*" || candidate.trim_start_matches("W/") == etag
        })
}

/// The page is revalidated on every load (cheap: a 304), so a new version's asset URLs are
/// picked up at once.
async fn index(headers: HeaderMap) -> Response {
    let etag = etag();
    let common = [
        (header::ETAG, etag.clone()),
        (header::CACHE_CONTROL, "no-cache".to_string()),
    ];
    if not_modified(&headers, &etag) {
        return (StatusCode::NOT_MODIFIED, common).into_response();
    }
    (
        common,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        INDEX.as_str(),
    )
        .into_response()
}

async fn asset(Path((version, path)): Path<(String, String)>, headers: HeaderMap) -> Response {
    let Some(found) = ASSETS.iter().find(|asset| asset.path == path) else {
        return (StatusCode::NOT_FOUND, format!("no UI asset named {path:?}")).into_response();
    };
    let etag = etag();
    // Only the current version's URLs may be cached forever: a page from an older version that
    // asks for its own folder gets today's files, which must not stick under the old URL.
    let cache_control = if version == *VERSION {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    let common = [
        (header::ETAG, etag.clone()),
        (header::CACHE_CONTROL, cache_control.to_string()),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff".to_string()),
    ];
    if not_modified(&headers, &etag) {
        return (StatusCode::NOT_MODIFIED, common).into_response();
    }
    (
        common,
        [(header::CONTENT_TYPE, found.content_type)],
        found.bytes,
    )
        .into_response()
}

/// The most groups whose ranks `/api/ui/v1/cluster` lists; the rest are counted.
const MAX_RANKED_GROUPS: usize = 500;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct UiCluster {
    clustered: bool,
    node_name: String,
    cluster_name: String,
    /// Whether the node has caught up with its peers and started notifying.
    settled: bool,
    peer_timeout_seconds: f64,
    members: Vec<UiMember>,
    /// Per replicated state, what was merged and refused, and for how long some live peer's
    /// digest has differed from ours (0 when in sync).
    sync: Vec<UiSync>,
    exchanges_completed: u64,
    summaries_sent: u64,
    malformed_messages: u64,
    /// This node's rank per (group, integration): 0 is the owner, which notifies first.
    ranks: Vec<UiGroupRanks>,
    groups_not_listed: usize,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct UiMember {
    name: String,
    address: String,
    is_self: bool,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct UiSync {
    state: &'static str,
    merged: u64,
    refused: u64,
    diverged_seconds: f64,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct UiGroupRanks {
    labels: crate::alerting::LabelSet,
    receiver: String,
    integrations: Vec<UiRank>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct UiRank {
    integration: String,
    rank: usize,
    wait_seconds: f64,
}

/// The integrations of every receiver, as the pipeline keys them (`name/kind/index`), taken
/// from the integrations the node delivers through, so every kind (webhook, email, the log of
/// `log_notifications`) counts and none is listed that does not send.
fn integration_keys(alerting: &crate::node::alerting::AlertingRuntime) -> Vec<ReceiverKey> {
    alerting
        .delivery_stats()
        .into_iter()
        .map(|(key, _)| key)
        .collect()
}

async fn cluster(State(node): State<Arc<Node>>) -> Response {
    let Some(alerting) = node.alerting() else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json("Tocsin is starting: storage is not open yet"),
        )
            .into_response();
    };
    let keys = integration_keys(alerting);
    let (mut ranks, total_groups) = alerting.read(|pipeline| {
        let view = pipeline.cluster_view().clone();
        let mut ranks = Vec::new();
        for (id, group) in pipeline.groups().iter().take(MAX_RANKED_GROUPS) {
            let integrations = keys
                .iter()
                .filter(|key| key.name == group.receiver())
                .map(|key| UiRank {
                    integration: key.to_string(),
                    rank: view.rank(&id.group_key, key),
                    wait_seconds: view.wait(&id.group_key, key).as_secs_f64(),
                })
                .collect();
            ranks.push(UiGroupRanks {
                labels: group.labels().clone(),
                receiver: group.receiver().to_string(),
                integrations,
            });
        }
        (ranks, pipeline.groups().len())
    });
    ranks.sort_by(|a, b| {
        a.labels
            .cmp(&b.labels)
            .then_with(|| a.receiver.cmp(&b.receiver))
    });
    let groups_not_listed = total_groups.saturating_sub(ranks.len());
    let mut answer = UiCluster {
        clustered: node.cluster.is_clustered(),
        node_name: node.cluster.node_name.clone(),
        cluster_name: node.cluster.cluster_name.clone(),
        settled: !node.cluster.is_clustered(),
        peer_timeout_seconds: node.cluster.peer_timeout.as_secs_f64(),
        members: Vec::new(),
        sync: Vec::new(),
        exchanges_completed: 0,
        summaries_sent: 0,
        malformed_messages: 0,
        ranks,
        groups_not_listed,
    };
    if let Some(runtime) = node.cluster_runtime() {
        let snapshot = runtime.snapshot();
        answer.settled = snapshot.settled;
        answer.members = snapshot
            .members
            .into_iter()
            .map(|member| UiMember {
                name: member.name,
                address: member.cluster_address.to_string(),
                is_self: member.is_self,
            })
            .collect();
        answer.sync = snapshot
            .per_state
            .into_iter()
            .map(|(kind, merged, refused, lag)| UiSync {
                state: kind.as_str(),
                merged,
                refused,
                diverged_seconds: lag,
            })
            .collect();
        answer.exchanges_completed = snapshot.exchanges_completed;
        answer.summaries_sent = snapshot.summaries_sent;
        answer.malformed_messages = snapshot.malformed_messages;
    }
    Json(answer).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_asset_the_page_names_is_embedded() {
        for asset in ASSETS {
            assert!(!asset.bytes.is_empty(), "{} is empty", asset.path);
        }
        assert!(INDEX.contains(&format!("assets/{}/app.js", *VERSION)));
        assert!(!INDEX.contains("%ASSETS%"));
        // Every relative import in the scripts names an embedded file.
        for asset in ASSETS.iter().filter(|asset| asset.path.ends_with(".js")) {
            let text = std::str::from_utf8(asset.bytes).expect("UTF-8 script");
            let folder = asset.path.rsplit_once('/').map_or("", |(folder, _)| folder);
            for line in text.lines().filter(|line| line.starts_with("import ")) {
                let Some(target) = line.split('"').nth(1) else {
                    continue;
                };
                let resolved = resolve(folder, target);
                assert!(
                    ASSETS.iter().any(|asset| asset.path == resolved),
                    "{} imports {target} ({resolved}), which is not embedded",
                    asset.path
                );
            }
        }
    }

    fn resolve(folder: &str, target: &str) -> String {
        let mut parts: Vec<&str> = folder.split('/').filter(|part| !part.is_empty()).collect();
        for part in target.split('/') {
            match part {
                "." => {}
                ".." => {
                    parts.pop();
                }
                other => parts.push(other),
            }
        }
        parts.join("/")
    }

    #[test]
    fn if_none_match_forms() {
        let etag = etag();
        let mut headers = HeaderMap::new();
        assert!(!not_modified(&headers, &etag));
        headers.insert(
            header::IF_NONE_MATCH,
            HeaderValue::from_str(&format!("\"x\", W/{etag}")).expect("header"),
        );
        assert!(not_modified(&headers, &etag));
        headers.insert(header::IF_NONE_MATCH, HeaderValue::from_static("\"old\""));
        assert!(!not_modified(&headers, &etag));
    }
}
