//! `http_sd_configs`: target groups fetched as JSON from a URL every `refresh_interval`, as
//! Prometheus's HTTP discovery does. The answer must be `200` with a `Content-Type` of
//! `application/json`, and a JSON list of `{"targets": [...], "labels": {...}}`; each group
//! gets `__meta_url` (the configured URL) and the source `<url>:<index>`. A failed refresh
//! counts in `prometheus_sd_http_failures_total` and keeps the last good groups.

use super::{SD_COUNTERS, TargetGroup};
use crate::config::prometheus::HttpSdConfig;
use crate::ingest::scrape::{Auth, build_http_client, error_chain, resolve_http_auth};
use crate::ingest::targets::ADDRESS_LABEL;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// The label every group gets: the URL the targets came from.
pub const URL_LABEL: &str = "__meta_url";

/// The largest answer read (a bound on what a remote server can make us hold).
pub const MAX_BODY_BYTES: u64 = 16 << 20;

/// The most groups and targets one answer may hold.
pub const MAX_TARGETS: usize = 100_000;

/// The longest a refresh may take (and never longer than the refresh interval).
const MAX_REQUEST_TIME: Duration = Duration::from_secs(30);

/// One `http_sd_config`, ready to refresh.
pub struct HttpSd {
    url: String,
    client: reqwest::Client,
    auth: Auth,
    refresh_interval: Duration,
}

impl std::fmt::Debug for HttpSd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpSd")
            .field("url", &self.url)
            .field("refresh_interval", &self.refresh_interval)
            .finish_non_exhaustive()
    }
}

/// One group as the server writes it. Unknown keys are ignored, as Go's JSON decoder does.
#[derive(Debug, serde::Deserialize)]
struct WireGroup {
    #[serde(default)]
    targets: Vec<String>,
    #[serde(default)]
    labels: Option<BTreeMap<String, String>>,
}

impl HttpSd {
    /// Builds the client (TLS, proxy, credentials read from their files relative to
    /// `base_dir`).
    pub fn new(config: &HttpSdConfig, base_dir: &Path) -> Result<HttpSd, String> {
        let http = config.http_client();
        let auth = resolve_http_auth(&http, base_dir)?;
        let client = build_http_client(&http, base_dir, true)?;
        Ok(HttpSd {
            url: config.url.value.clone(),
            client,
            auth,
            refresh_interval: config.refresh_interval.as_std(),
        })
    }

    pub fn refresh_interval(&self) -> Duration {
        self.refresh_interval
    }

    /// Fetches the groups; a failure is counted and returned (the caller keeps the last ones).
    pub async fn refresh(&mut self) -> Result<Vec<TargetGroup>, String> {
        let fetched = self.fetch().await;
        if fetched.is_err() {
            SD_COUNTERS.http_failures.fetch_add(1, Ordering::Relaxed);
        }
        fetched
    }

    async fn fetch(&self) -> Result<Vec<TargetGroup>, String> {
        let timeout = self
            .refresh_interval
            .clamp(Duration::from_secs(1), MAX_REQUEST_TIME);
        let work = async {
            let request = self
                .client
                .get(self.url.as_str())
                .header(reqwest::header::ACCEPT, "application/json")
                .header(
                    "X-Prometheus-Refresh-Interval-Seconds",
                    self.refresh_interval.as_secs().to_string(),
                );
            let mut response = self
                .auth
                .apply(request)
                .send()
                .await
                .map_err(|error| format!("Get {:?}: {}", self.url, error_chain(&error)))?;
            if response.status() != reqwest::StatusCode::OK {
                return Err(format!("server returned HTTP status {}", response.status()));
            }
            let content_type = response
                .headers()
                .get(reqwest::header::CONTENT_TYPE)
                .and_then(|value| value.to_str().ok())
                .unwrap_or("")
                .to_string();
            if !is_json(&content_type) {
                return Err(format!("unsupported content type {content_type:?}"));
            }
            let mut body = Vec::new();
            while let Some(chunk) = response
                .chunk()
                .await
                .map_err(|error| format!("reading the body: {}", error_chain(&error)))?
            {
                if (body.len() + chunk.len()) as u64 > MAX_BODY_BYTES {
                    return Err(format!(
                        "the answer is larger than the limit of {MAX_BODY_BYTES} bytes"
                    ));
                }
                body.extend_from_slice(&chunk);
            }
            parse_groups(&self.url, &body)
        };
        match tokio::time::timeout(timeout, work).await {
            Ok(result) => result,
            Err(_) => Err(format!(
                "Get {:?}: no answer within {} s",
                self.url,
                timeout.as_secs()
            )),
        }
    }
}

/// Prometheus's `^application/json(;.*)?$`.
fn is_json(content_type: &str) -> bool {
    content_type
        .strip_prefix("application/json")
        .is_some_and(|rest| rest.is_empty() || rest.starts_with(';'))
}

/// Parses an answer: a JSON list of groups (`null` is no groups). A `null` group, an empty
/// target or an empty label name is an error, as in Prometheus.
pub fn parse_groups(url: &str, body: &[u8]) -> Result<Vec<TargetGroup>, String> {
    let groups: Option<Vec<Option<WireGroup>>> =
        serde_json::from_slice(body).map_err(|error| format!("{url}: invalid JSON: {error}"))?;
    let mut out = Vec::new();
    let mut targets_seen = 0usize;
    for (index, group) in groups.unwrap_or_default().into_iter().enumerate() {
        let group = group.ok_or_else(|| format!("{url}: nil target group item found"))?;
        let mut labels = group.labels.unwrap_or_default();
        if labels.keys().any(String::is_empty) {
            return Err(format!("{url}: group {index}: empty label name"));
        }
        labels.insert(URL_LABEL.to_string(), url.to_string());
        targets_seen += group.targets.len();
        if targets_seen > MAX_TARGETS {
            return Err(format!("{url}: more than {MAX_TARGETS} targets"));
        }
        let mut targets = Vec::with_capacity(group.targets.len());
        for target in group.targets {
            if target.is_empty() {
                return Err(format!("{url}: group {index}: empty target address"));
            }
            targets.push(BTreeMap::from([(ADDRESS_LABEL.to_string(), target)]));
        }
        out.push(TargetGroup {
            source: format!("{url}:{index}"),
            targets,
            labels,
        });
    }
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn groups_get_the_url_label_and_source() {
        let url = "http://sd.example:8080/targets";
        let groups = parse_groups(
            url,
            br#"[{"targets": ["a:1", "b:2"], "labels": {"env": "x"}, "extra": 1}, {"targets": []}]"#,
        )
        .unwrap();
        assert_eq!(groups.len(), 2);
        assert_eq!(groups[0].source, "http://sd.example:8080/targets:0");
        assert_eq!(groups[0].targets[1][ADDRESS_LABEL], "b:2");
        assert_eq!(groups[0].labels["env"], "x");
        assert_eq!(groups[1].labels[URL_LABEL], url);
        assert!(parse_groups(url, b"null").unwrap().is_empty());
        assert!(parse_groups(url, b"[]").unwrap().is_empty());
    }

    #[test]
    fn bad_answers_are_errors() {
        let url = "http://x/";
        assert!(
            parse_groups(url, b"[null]")
                .unwrap_err()
                .contains("nil target group")
        );
        assert!(
            parse_groups(url, b"{")
                .unwrap_err()
                .contains("invalid JSON")
        );
        assert!(parse_groups(url, br#"{"targets": []}"#).is_err());
        assert!(
            parse_groups(url, br#"[{"targets": [""]}]"#)
                .unwrap_err()
                .contains("empty target")
        );
        assert!(parse_groups(url, br#"[{"targets": [1]}]"#).is_err());
    }

    #[test]
    fn content_types() {
        assert!(is_json("application/json"));
        assert!(is_json("application/json; charset=utf-8"));
        assert!(!is_json("application/jsonx"));
        assert!(!is_json("text/plain"));
        assert!(!is_json(""));
    }
}
