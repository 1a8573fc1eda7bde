//! The JSON shapes of Alertmanager's API v2 (its OpenAPI spec), and their conversion to and from
//! the alerting core's types. Field names and required keys follow the spec exactly, because
//! amtool, Grafana and Prometheus parse them with generated clients.

use crate::alerting::{LabelSet, PostedAlert};
use crate::config::alertmanager::{MatchOp, Matcher};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use std::borrow::Cow;

/// Alertmanager prints times as RFC 3339 with milliseconds, in UTC.
pub fn format_time(time: Timestamp) -> String {
    time.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// Parses an RFC 3339 time as a client sends it. Go's zero time (`0001-01-01T00:00:00Z`), which
/// Go clients send for "unset", reads as absent.
pub fn parse_time(field: &str, text: &str) -> Result<Option<Timestamp>, String> {
    if text.is_empty() {
        return Ok(None);
    }
    let time: Timestamp = text.parse().map_err(|error| {
        format!(
            "{field}: invalid time {text:?}: {error} (expected RFC 3339, e.g. 2024-05-01T12:00:00Z)"
        )
    })?;
    if time.strftime("%Y").to_string() == "0001" {
        return Ok(None);
    }
    Ok(Some(time))
}

/// Times are borrowed from the request body when they need no unescaping: they are parsed, not
/// kept.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WirePostableAlert<'a> {
    pub labels: LabelSet,
    #[serde(default)]
    pub annotations: LabelSet,
    #[serde(default, borrow)]
    pub starts_at: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub ends_at: Option<Cow<'a, str>>,
    #[serde(default, rename = "generatorURL")]
    pub generator_url: Option<String>,
}

impl WirePostableAlert<'_> {
    pub fn into_posted(self) -> Result<PostedAlert, String> {
        Ok(PostedAlert {
            labels: self.labels,
            annotations: self.annotations,
            starts_at: match &self.starts_at {
                Some(text) => parse_time("startsAt", text)?,
                None => None,
            },
            ends_at: match &self.ends_at {
                Some(text) => parse_time("endsAt", text)?,
                None => None,
            },
            generator_url: self.generator_url.unwrap_or_default(),
        })
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct WireReceiver {
    pub name: String,
}

#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum WireAlertState {
    Unprocessed,
    Active,
    Suppressed,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WireAlertStatus {
    pub state: WireAlertState,
    pub silenced_by: Vec<String>,
    pub inhibited_by: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WireGettableAlert {
    pub labels: LabelSet,
    pub annotations: LabelSet,
    pub receivers: Vec<WireReceiver>,
    pub fingerprint: String,
    pub starts_at: String,
    pub updated_at: String,
    pub ends_at: String,
    pub status: WireAlertStatus,
    #[serde(rename = "generatorURL")]
    pub generator_url: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct WireAlertGroup {
    pub labels: LabelSet,
    pub receiver: WireReceiver,
    pub alerts: Vec<WireGettableAlert>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct WireMatcher {
    pub name: String,
    pub value: String,
    pub is_regex: bool,
    /// Absent in clients older than Alertmanager 0.22; the spec's default is true.
    #[serde(default = "default_true")]
    pub is_equal: bool,
}

fn default_true() -> bool {
    true
}

impl WireMatcher {
    pub fn from_matcher(matcher: &Matcher) -> WireMatcher {
        let op = matcher.op();
        WireMatcher {
            name: matcher.name().to_string(),
            value: matcher.value().to_string(),
            is_regex: op.is_regex(),
            is_equal: !op.is_negative(),
        }
    }

    pub fn to_matcher(&self) -> Result<Matcher, String> {
        let op = match (self.is_regex, self.is_equal) {
            (false, true) => MatchOp::Equal,
            (false, false) => MatchOp::NotEqual,
            (true, true) => MatchOp::Regex,
            (true, false) => MatchOp::NotRegex,
        };
        Matcher::new(self.name.clone(), op, self.value.clone())
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WirePostableSilence {
    #[serde(default)]
    pub id: Option<String>,
    pub matchers: Vec<WireMatcher>,
    pub starts_at: String,
    pub ends_at: String,
    pub created_by: String,
    pub comment: String,
}

#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum WireSilenceState {
    Expired,
    Active,
    Pending,
}

#[derive(Debug, Clone, Serialize)]
pub struct WireSilenceStatus {
    pub state: WireSilenceState,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WireGettableSilence {
    pub id: String,
    pub status: WireSilenceStatus,
    pub updated_at: String,
    pub matchers: Vec<WireMatcher>,
    pub starts_at: String,
    pub ends_at: String,
    pub created_by: String,
    pub comment: String,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WireSilenceCreated {
    #[serde(rename = "silenceID")]
    pub silence_id: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_print_with_milliseconds_and_go_zero_is_absent() {
        let time: Timestamp = "2024-05-01T12:00:00.5Z".parse().unwrap();
        assert_eq!(format_time(time), "2024-05-01T12:00:00.500Z");
        assert_eq!(parse_time("startsAt", "0001-01-01T00:00:00Z"), Ok(None));
        assert_eq!(
            parse_time("startsAt", "2024-05-01T14:00:00+02:00").unwrap(),
            Some("2024-05-01T12:00:00Z".parse().unwrap())
        );
        let error = parse_time("endsAt", "yesterday").unwrap_err();
        assert!(
            error.starts_with("endsAt: invalid time \"yesterday\""),
            "{error}"
        );
    }

    #[test]
    fn posted_alerts_read_the_spec_shape() {
        let wire: WirePostableAlert = serde_json::from_str(
            r#"{"labels":{"alertname":"A"},"annotations":{"summary":"s"},"startsAt":"2024-05-01T12:00:00Z","generatorURL":"http://x/graph"}"#,
        )
        .unwrap();
        let posted = wire.into_posted().unwrap();
        assert_eq!(posted.labels.value("alertname"), "A");
        assert_eq!(posted.generator_url, "http://x/graph");
        assert!(posted.ends_at.is_none());
    }

    #[test]
    fn matchers_round_trip_through_the_wire_shape() {
        for text in [r#"a="1""#, r#"a!="1""#, r#"a=~"1|2""#, r#"a!~"x.*""#] {
            let matcher = Matcher::parse_one(text).unwrap();
            let wire = WireMatcher::from_matcher(&matcher);
            assert_eq!(wire.to_matcher().unwrap(), matcher, "{text}");
        }
        let legacy: WireMatcher =
            serde_json::from_str(r#"{"name":"a","value":"1","isRegex":false}"#).unwrap();
        assert!(legacy.is_equal);
    }
}
