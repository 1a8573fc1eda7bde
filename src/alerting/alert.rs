//! An alert as Alertmanager models it, with its ingest defaults and merge rule.

use super::labels::{Fingerprint, LabelSet};
use jiff::{SignedDuration, Timestamp};

/// An alert held by the alerting core. Times are absolute; "now" is always an argument.
/// Serialized only to replicate it (see [`super::replica`]).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Alert {
    pub labels: LabelSet,
    pub annotations: LabelSet,
    #[serde(with = "super::wire::time")]
    pub starts_at: Timestamp,
    /// When the alert stops firing. Always set once ingested: a sender that gives none gets
    /// `now + resolve_timeout` and `timeout = true`.
    #[serde(with = "super::wire::time")]
    pub ends_at: Timestamp,
    pub generator_url: String,
    /// When this node last received the alert; decides which copy wins a merge.
    #[serde(with = "super::wire::time")]
    pub updated_at: Timestamp,
    /// `ends_at` came from `resolve_timeout`, not from the sender.
    pub timeout: bool,
}

/// An alert as a client posts it: either time may be missing.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PostedAlert {
    pub labels: LabelSet,
    pub annotations: LabelSet,
    pub starts_at: Option<Timestamp>,
    pub ends_at: Option<Timestamp>,
    pub generator_url: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidAlert {
    #[error("at least one label pair required")]
    NoLabels,
    #[error("invalid label name {0:?}")]
    LabelName(String),
    #[error("invalid annotation name {0:?}")]
    AnnotationName(String),
    #[error("end time must not be before start time")]
    EndsBeforeStart,
}

impl Alert {
    /// Applies Alertmanager's defaults to a posted alert: a missing start is `now` (or the end,
    /// if an end is given); a missing end is `now + resolve_timeout`, marked as a timeout.
    pub fn from_posted(
        posted: PostedAlert,
        now: Timestamp,
        resolve_timeout: SignedDuration,
    ) -> Result<Alert, InvalidAlert> {
        let starts_at = posted.starts_at.or(posted.ends_at).unwrap_or(now);
        let (ends_at, timeout) = match posted.ends_at {
            Some(ends_at) => (ends_at, false),
            None => (
                now.saturating_add(resolve_timeout)
                    .unwrap_or(Timestamp::MAX),
                true,
            ),
        };
        let alert = Alert {
            labels: posted.labels,
            annotations: posted.annotations,
            starts_at,
            ends_at,
            generator_url: posted.generator_url,
            updated_at: now,
            timeout,
        };
        alert.validate()?;
        Ok(alert)
    }

    /// Alertmanager's `Alert.Validate`: labels present and well named, times in order.
    pub fn validate(&self) -> Result<(), InvalidAlert> {
        if self.labels.is_empty() {
            return Err(InvalidAlert::NoLabels);
        }
        if let Some((name, _)) = self.labels.iter().find(|(name, _)| !valid_label_name(name)) {
            return Err(InvalidAlert::LabelName(name.to_string()));
        }
        if let Some((name, _)) = self
            .annotations
            .iter()
            .find(|(name, _)| !valid_label_name(name))
        {
            return Err(InvalidAlert::AnnotationName(name.to_string()));
        }
        if self.ends_at < self.starts_at {
            return Err(InvalidAlert::EndsBeforeStart);
        }
        Ok(())
    }

    pub fn fingerprint(&self) -> Fingerprint {
        self.labels.fingerprint()
    }

    /// The alert as a peer receives it.
    pub fn encode(&self) -> Result<Vec<u8>, String> {
        super::wire::encode(self)
    }

    /// Decodes and validates an alert from a peer; the whole input must be that alert.
    pub fn decode(bytes: &[u8]) -> Result<Alert, String> {
        let alert: Alert = super::wire::decode(bytes, "alert")?;
        alert.validate().map_err(|error| error.to_string())?;
        Ok(alert)
    }

    pub fn name(&self) -> &str {
        self.labels.value("alertname")
    }

    /// Resolved once its end time has passed.
    pub fn is_resolved_at(&self, now: Timestamp) -> bool {
        self.ends_at <= now
    }

    /// Combines two copies of the same alert as Alertmanager does: the more recently updated copy
    /// wins, keeping the earliest start; a later explicit end beats a timeout end.
    pub fn merge(&self, other: &Alert, now: Timestamp) -> Alert {
        let (older, newer) = if other.updated_at < self.updated_at {
            (other, self)
        } else {
            (self, other)
        };
        let mut merged = newer.clone();
        (merged.starts_at, merged.ends_at, merged.timeout) = merged_times(older, newer, now);
        merged
    }
}

/// The start, end and timeout flag of `newer` merged with `older` (see [`Alert::merge`]).
pub(crate) fn merged_times(
    older: &Alert,
    newer: &Alert,
    now: Timestamp,
) -> (Timestamp, Timestamp, bool) {
    let starts_at = older.starts_at.min(newer.starts_at);
    let (mut ends_at, mut timeout) = (newer.ends_at, newer.timeout);
    if newer.is_resolved_at(now) {
        // Both resolved: the latest explicit resolution wins.
        if older.is_resolved_at(now) && older.ends_at > newer.ends_at {
            ends_at = older.ends_at;
            timeout = older.timeout;
        }
    } else if older.ends_at > newer.ends_at && !older.timeout {
        // A sender-given end that lies further out stays in force.
        ends_at = older.ends_at;
        timeout = false;
    }
    (starts_at, ends_at, timeout)
}

/// Alertmanager 0.25 accepts classic label names only: `[a-zA-Z_][a-zA-Z0-9_]*`.
pub fn valid_label_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(b'a'..=b'z' | b'A'..=b'Z' | b'_'))
        && bytes.all(|byte| byte.is_ascii_alphanumeric() || byte == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_second(seconds).unwrap()
    }

    #[test]
    fn replica_codec_round_trips_and_refuses_bad_input() {
        let mut original = alert(100, 200, 150, true);
        original.annotations.insert("summary", "disk full");
        original.generator_url = "http://prometheus/graph".into();
        let bytes = original.encode().unwrap();
        assert_eq!(Alert::decode(&bytes).unwrap(), original);
        assert!(Alert::decode(&bytes[..bytes.len() - 1]).is_err());
        let mut trailing = bytes.clone();
        trailing.push(7);
        assert!(Alert::decode(&trailing).unwrap_err().contains("trailing"));
        let mut invalid = original.clone();
        invalid.labels = LabelSet::new();
        assert!(
            Alert::decode(&invalid.encode().unwrap()).is_err(),
            "no labels"
        );
        for garbage in [&[][..], &[0xff; 64][..], &[1, 2, 3][..]] {
            assert!(Alert::decode(garbage).is_err());
        }
    }

    fn alert(starts: i64, ends: i64, updated: i64, timeout: bool) -> Alert {
        Alert {
            labels: LabelSet::from([("alertname", "A")]),
            annotations: LabelSet::new(),
            starts_at: at(starts),
            ends_at: at(ends),
            generator_url: String::new(),
            updated_at: at(updated),
            timeout,
        }
    }

    #[test]
    fn posted_alerts_get_alertmanager_defaults() {
        let now = at(1_000);
        let five_minutes = SignedDuration::from_mins(5);
        let posted = PostedAlert {
            labels: LabelSet::from([("alertname", "A")]),
            ..Default::default()
        };
        let alert = Alert::from_posted(posted.clone(), now, five_minutes).unwrap();
        assert_eq!(
            (alert.starts_at, alert.ends_at, alert.timeout),
            (now, at(1_300), true)
        );

        let resolved = PostedAlert {
            ends_at: Some(at(900)),
            ..posted.clone()
        };
        let alert = Alert::from_posted(resolved, now, five_minutes).unwrap();
        assert_eq!(
            (alert.starts_at, alert.ends_at, alert.timeout),
            (at(900), at(900), false)
        );

        let backwards = PostedAlert {
            starts_at: Some(at(950)),
            ends_at: Some(at(900)),
            ..posted
        };
        assert_eq!(
            Alert::from_posted(backwards, now, five_minutes),
            Err(InvalidAlert::EndsBeforeStart)
        );
        assert_eq!(
            Alert::from_posted(PostedAlert::default(), now, five_minutes),
            Err(InvalidAlert::NoLabels)
        );
    }

    #[test]
    fn merge_keeps_earliest_start_and_newest_copy() {
        let now = at(100);
        let old = alert(10, 200, 50, true);
        let new = alert(20, 300, 60, true);
        let merged = old.merge(&new, now);
        assert_eq!(
            (merged.starts_at, merged.ends_at, merged.updated_at),
            (at(10), at(300), at(60))
        );
        assert_eq!(
            new.merge(&old, now),
            merged,
            "merge does not depend on argument order"
        );
    }

    #[test]
    fn merge_prefers_a_later_explicit_end_over_a_timeout() {
        let now = at(100);
        let explicit = alert(10, 500, 50, false);
        let refreshed = alert(10, 400, 60, true);
        let merged = explicit.merge(&refreshed, now);
        assert_eq!((merged.ends_at, merged.timeout), (at(500), false));
    }

    #[test]
    fn merge_of_two_resolutions_keeps_the_latest() {
        let now = at(1_000);
        let first = alert(10, 90, 50, false);
        let second = alert(10, 80, 60, false);
        assert_eq!(first.merge(&second, now).ends_at, at(90));
    }

    #[test]
    fn label_names() {
        assert!(valid_label_name("alertname"));
        assert!(valid_label_name("_x9"));
        assert!(!valid_label_name("9x"));
        assert!(!valid_label_name(""));
        assert!(!valid_label_name("a-b"));
    }
}
