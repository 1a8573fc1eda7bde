//! The pipeline's replicated states as the mesh sees them: records as bytes with a key and a
//! version, and merging a peer's records in. Shared by the node's cluster shell and the
//! simulator, so both run exactly the same merge.
//!
//! Keys: a silence's id, a notification-log entry's and a claim's (group key, receiver), an
//! alert's fingerprint. Versions: a hash of the whole encoded record, as the protocol requires
//! (equal versions mean equal records).

use super::claims::Claim;
use super::nflog::Entry;
use super::pipeline::Pipeline;
use super::silences::{Silence, codec};
use super::{Alert, wire};
use jiff::Timestamp;
use std::sync::Arc;
use tocsin_mesh::{RecordVersion, StateKind, hash64};

/// A change this node made that its peers must hear of.
#[derive(Debug, Clone)]
pub enum Change {
    Silences(Vec<Silence>),
    Nflog(Entry),
    Alerts(Vec<Arc<Alert>>),
    Claim(Claim),
}

impl Change {
    /// The change's state and its records as bytes. A record that cannot be encoded is left
    /// out and its error returned beside the rest.
    pub fn encode(&self) -> (StateKind, Vec<Vec<u8>>, Vec<String>) {
        let mut errors = Vec::new();
        let mut keep = |encoded: Result<Vec<u8>, String>| match encoded {
            Ok(bytes) => Some(bytes),
            Err(error) => {
                errors.push(error);
                None
            }
        };
        let (kind, records) = match self {
            Change::Silences(silences) => (
                StateKind::Silences,
                silences
                    .iter()
                    .filter_map(|silence| {
                        keep(codec::encode_silence(silence).map_err(|error| error.to_string()))
                    })
                    .collect(),
            ),
            Change::Nflog(entry) => (
                StateKind::Nflog,
                keep(entry.encode().map_err(|error| error.to_string()))
                    .into_iter()
                    .collect(),
            ),
            Change::Alerts(alerts) => (
                StateKind::Alerts,
                alerts
                    .iter()
                    .filter_map(|alert| keep(alert.encode()))
                    .collect(),
            ),
            Change::Claim(claim) => (
                StateKind::Claims,
                keep(claim.encode()).into_iter().collect(),
            ),
        };
        (kind, records, errors)
    }
}

/// What merging a peer's records did; the shell persists what the local store must keep.
#[derive(Debug, Default)]
pub struct Merged {
    /// Records that changed this node's state.
    pub changed: u64,
    /// Records refused: undecodable, invalid, or over a limit.
    pub refused: u64,
    /// Silences that changed, to write to the silences log.
    pub silences: Vec<Silence>,
    /// Notification-log entries that changed, to write to the notification log.
    pub nflog: Vec<Entry>,
}

/// Merges records of `kind` from a peer into the pipeline.
pub fn merge(
    pipeline: &mut Pipeline,
    kind: StateKind,
    records: &[Vec<u8>],
    now: Timestamp,
) -> Merged {
    let mut merged = Merged::default();
    for record in records {
        match merge_one(pipeline, kind, record, now, &mut merged) {
            Ok(true) => merged.changed += 1,
            Ok(false) => {}
            Err(_) => merged.refused += 1,
        }
    }
    merged
}

/// Merges one record; whether it changed the state.
fn merge_one(
    pipeline: &mut Pipeline,
    kind: StateKind,
    record: &[u8],
    now: Timestamp,
    merged: &mut Merged,
) -> Result<bool, String> {
    match kind {
        StateKind::Silences => {
            let silence = codec::decode_silence(record).map_err(|error| error.to_string())?;
            let changed = pipeline
                .silences
                .merge(silence, now)
                .map_err(|error| error.to_string())?;
            Ok(changed
                .map(|silence| merged.silences.push(silence))
                .is_some())
        }
        StateKind::Nflog => {
            let entry = Entry::decode(record).map_err(|error| error.to_string())?;
            let kept = entry.clone();
            let changed = pipeline
                .nflog
                .merge(entry, now)
                .map_err(|error| error.to_string())?;
            if changed {
                merged.nflog.push(kept);
            }
            Ok(changed)
        }
        StateKind::Alerts => {
            let alert = Alert::decode(record)?;
            let changed = pipeline
                .receive(alert, now)
                .map_err(|error| error.to_string())?;
            Ok(changed.is_some())
        }
        StateKind::Claims => Ok(pipeline.claims.merge(Claim::decode(record)?).is_some()),
    }
}

/// Every record of a state, with its key, encoded as peers receive it.
pub fn records(pipeline: &Pipeline, kind: StateKind) -> Vec<(u64, Vec<u8>)> {
    let keyed = |group_key: &str, receiver: String| {
        hash64(format!("{group_key}\u{0}{receiver}").as_bytes())
    };
    match kind {
        StateKind::Silences => pipeline
            .silences
            .iter()
            .filter_map(|silence| {
                let bytes = codec::encode_silence(silence).ok()?;
                Some((hash64(silence.id.as_bytes()), bytes))
            })
            .collect(),
        StateKind::Nflog => pipeline
            .nflog
            .iter()
            .filter_map(|entry| {
                let bytes = entry.encode().ok()?;
                Some((keyed(&entry.group_key, entry.receiver.to_string()), bytes))
            })
            .collect(),
        StateKind::Alerts => pipeline
            .store()
            .iter_unordered()
            .filter_map(|alert| Some((alert.fingerprint().0, alert.encode().ok()?)))
            .collect(),
        StateKind::Claims => pipeline
            .claims
            .iter()
            .filter_map(|claim| {
                let bytes = claim.encode().ok()?;
                Some((keyed(&claim.group_key, claim.receiver.to_string()), bytes))
            })
            .collect(),
    }
}

/// What this node holds of a state, as (key, version) pairs.
pub fn versions(pipeline: &Pipeline, kind: StateKind) -> Vec<RecordVersion> {
    versions_of(&records(pipeline, kind))
}

/// The (key, version) pairs of records already encoded by [`records`].
pub fn versions_of(records: &[(u64, Vec<u8>)]) -> Vec<RecordVersion> {
    records
        .iter()
        .map(|(key, bytes)| RecordVersion {
            key: *key,
            version: hash64(bytes),
        })
        .collect()
}

/// The records of a state whose keys are in `keys` (sorted, as `records_to_send` gives them).
pub fn records_with_keys(pipeline: &Pipeline, kind: StateKind, keys: &[u64]) -> Vec<Vec<u8>> {
    records(pipeline, kind)
        .into_iter()
        .filter(|(key, _)| keys.binary_search(key).is_ok())
        .map(|(_, bytes)| bytes)
        .collect()
}

/// Encoded records are bounded by [`wire::MAX_RECORD_BYTES`]; re-exported for the shells.
pub const MAX_RECORD_BYTES: usize = wire::MAX_RECORD_BYTES;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerting::groups::GroupLimits;
    use crate::alerting::nflog::{Nflog, NflogLimits};
    use crate::alerting::silences::{SilenceLimits, SilenceSpec, Silences};
    use crate::alerting::store::StoreLimits;
    use crate::alerting::{LabelSet, PostedAlert};
    use crate::config::alertmanager::{Matcher, parse_alertmanager_file};
    use jiff::SignedDuration;

    fn pipeline() -> Pipeline {
        let config = parse_alertmanager_file(
            "route: {receiver: team}\nreceivers: [{name: team}]\n",
            "am.yml",
        )
        .unwrap();
        Pipeline::new(
            &config,
            StoreLimits::default(),
            GroupLimits::default(),
            Silences::new(SilenceLimits::default(), SignedDuration::from_hours(120)),
            Nflog::new(NflogLimits::default()),
        )
    }

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + seconds).unwrap()
    }

    /// One node's whole state sent to another makes their versions (and so digests) equal;
    /// sending it again changes nothing.
    #[test]
    fn merging_a_peers_records_converges_and_is_idempotent() {
        let mut a = pipeline();
        let mut b = pipeline();
        let spec = SilenceSpec {
            matchers: vec![Matcher::parse_one(r#"alertname="Quiet""#).unwrap()],
            starts_at: at(0),
            ends_at: at(3_600),
            created_by: "test".into(),
            comment: "".into(),
        };
        a.silences.create(spec, at(0), [7; 16]).unwrap();
        let posted = PostedAlert {
            labels: LabelSet::from([("alertname", "Disk")]),
            ..Default::default()
        };
        let alert = Alert::from_posted(posted, at(0), a.resolve_timeout()).unwrap();
        a.receive(alert, at(0)).unwrap();
        for kind in StateKind::ALL {
            let records: Vec<Vec<u8>> = records(&a, kind).into_iter().map(|(_, r)| r).collect();
            let first = merge(&mut b, kind, &records, at(1));
            assert_eq!(first.refused, 0, "{kind}");
            assert_eq!(first.changed as usize, records.len(), "{kind}");
            let again = merge(&mut b, kind, &records, at(1));
            assert_eq!(again.changed, 0, "{kind}: idempotent");
            let mut va = versions(&a, kind);
            let mut vb = versions(&b, kind);
            va.sort();
            vb.sort();
            assert_eq!(va, vb, "{kind}");
        }
        assert_eq!(b.silences.len(), 1);
        assert_eq!(b.store().len(), 1);
        let garbage = merge(&mut b, StateKind::Alerts, &[vec![1, 2, 3]], at(1));
        assert_eq!((garbage.changed, garbage.refused), (0, 1));
    }
}
