//! The notification log and the dedup decision: what was last notified for each (group,
//! receiver integration), and whether a flush needs a new notification (Alertmanager's `nflog`
//! and `DedupStage.needsUpdate`).
//!
//! The log is a replicated state. Entries merge as a CRDT (commutative, associative, idempotent):
//! per (group key, receiver) the entry with the newest `timestamp` wins, ties broken by comparing
//! the rest of the entry, and an entry past its `expires_at` counts as absent. `log` returns the
//! entry it wrote so the shell can persist and replicate it; snapshots and single entries encode
//! with bincode under explicit size limits.

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};
use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// Alertmanager's default `--data.retention`.
pub const DEFAULT_RETENTION: SignedDuration = SignedDuration::from_hours(120);

/// The largest encoded entry accepted: room for tens of thousands of alert fingerprints, small
/// enough that a malformed length prefix cannot make a decoder allocate much.
pub const MAX_ENTRY_BYTES: usize = 1 << 20;

/// First byte of an encoded snapshot; changes when the format does.
const SNAPSHOT_VERSION: u8 = 1;

type EntryCodec = bincode::config::Configuration<
    bincode::config::LittleEndian,
    bincode::config::Varint,
    bincode::config::Limit<MAX_ENTRY_BYTES>,
>;

fn entry_codec() -> EntryCodec {
    bincode::config::standard().with_limit::<MAX_ENTRY_BYTES>()
}

/// One integration of a receiver: Alertmanager logs notifications per integration, since each
/// may succeed or fail on its own.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ReceiverKey {
    /// The receiver's name in the configuration.
    pub name: String,
    /// The integration kind, e.g. `webhook` or `email`.
    pub integration: String,
    /// Which of the receiver's integrations of that kind, counting from 0.
    pub index: u32,
}

impl fmt::Display for ReceiverKey {
    /// `name/integration/index`, as Alertmanager keys its log.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.name, self.integration, self.index)
    }
}

/// What was last notified to one receiver integration for one aggregation group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "WireEntry", try_from = "WireEntry")]
pub struct Entry {
    pub group_key: String,
    pub receiver: ReceiverKey,
    /// Fingerprints of the alerts notified as firing, sorted and without duplicates.
    pub firing_alerts: Vec<u64>,
    /// Fingerprints of the alerts notified as resolved, sorted and without duplicates.
    pub resolved_alerts: Vec<u64>,
    /// When the notification was logged.
    pub timestamp: Timestamp,
    pub expires_at: Timestamp,
}

impl Entry {
    /// Expired entries count as absent everywhere; Alertmanager drops them once `expires_at` is
    /// strictly in the past.
    pub fn is_expired_at(&self, now: Timestamp) -> bool {
        self.expires_at < now
    }

    fn normalize(&mut self) {
        for fingerprints in [&mut self.firing_alerts, &mut self.resolved_alerts] {
            fingerprints.sort_unstable();
            fingerprints.dedup();
        }
    }

    /// Which of two entries for the same key a merge keeps: the newer, ties broken by content
    /// so that every replica picks the same one.
    fn precedence(&self, other: &Entry) -> Ordering {
        self.timestamp
            .cmp(&other.timestamp)
            .then_with(|| self.expires_at.cmp(&other.expires_at))
            .then_with(|| self.firing_alerts.cmp(&other.firing_alerts))
            .then_with(|| self.resolved_alerts.cmp(&other.resolved_alerts))
    }

    pub fn encode(&self) -> Result<Vec<u8>, CodecError> {
        bincode::serde::encode_to_vec(self, entry_codec())
            .map_err(|error| CodecError::Encode(error.to_string()))
    }

    /// Decodes one entry, as the mesh carries it; the whole input must be that entry.
    pub fn decode(bytes: &[u8]) -> Result<Entry, CodecError> {
        if bytes.len() > MAX_ENTRY_BYTES {
            return Err(CodecError::TooLarge {
                bytes: bytes.len(),
                limit: MAX_ENTRY_BYTES,
            });
        }
        let (entry, read) = bincode::serde::decode_from_slice::<Entry, _>(bytes, entry_codec())
            .map_err(|error| CodecError::Decode(error.to_string()))?;
        if read != bytes.len() {
            return Err(CodecError::TrailingBytes {
                count: bytes.len() - read,
            });
        }
        Ok(entry)
    }
}

/// `Entry` on the wire: timestamps as seconds and nanoseconds, checked on the way in.
#[derive(Serialize, Deserialize)]
struct WireEntry {
    group_key: String,
    receiver: ReceiverKey,
    firing_alerts: Vec<u64>,
    resolved_alerts: Vec<u64>,
    timestamp: (i64, i32),
    expires_at: (i64, i32),
}

impl From<Entry> for WireEntry {
    fn from(entry: Entry) -> WireEntry {
        let split = |at: Timestamp| (at.as_second(), at.subsec_nanosecond());
        WireEntry {
            group_key: entry.group_key,
            receiver: entry.receiver,
            firing_alerts: entry.firing_alerts,
            resolved_alerts: entry.resolved_alerts,
            timestamp: split(entry.timestamp),
            expires_at: split(entry.expires_at),
        }
    }
}

impl TryFrom<WireEntry> for Entry {
    type Error = String;

    fn try_from(wire: WireEntry) -> Result<Entry, String> {
        let join = |(seconds, nanos): (i64, i32)| {
            Timestamp::new(seconds, nanos)
                .map_err(|error| format!("invalid timestamp {seconds}.{nanos}: {error}"))
        };
        let mut entry = Entry {
            group_key: wire.group_key,
            receiver: wire.receiver,
            firing_alerts: wire.firing_alerts,
            resolved_alerts: wire.resolved_alerts,
            timestamp: join(wire.timestamp)?,
            expires_at: join(wire.expires_at)?,
        };
        entry.normalize();
        Ok(entry)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    #[error("cannot encode notification log entry: {0}")]
    Encode(String),
    #[error("malformed notification log entry: {0}")]
    Decode(String),
    #[error("notification log entry of {bytes} bytes exceeds the limit of {limit}")]
    TooLarge { bytes: usize, limit: usize },
    #[error("{count} unexpected bytes after a notification log entry")]
    TrailingBytes { count: usize },
    #[error("notification log snapshot is empty")]
    EmptySnapshot,
    #[error("unknown notification log snapshot version {0}")]
    UnknownVersion(u8),
    #[error("notification log snapshot holds more than {limit} entries")]
    TooManyEntries { limit: usize },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NflogError {
    #[error("notification log is full: it holds its limit of {limit} entries")]
    Full { limit: usize },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NflogLimits {
    pub max_entries: usize,
    /// How long an entry lives when the caller asks for nothing shorter.
    pub retention: SignedDuration,
}

impl Default for NflogLimits {
    fn default() -> NflogLimits {
        NflogLimits {
            max_entries: 1_000_000,
            retention: DEFAULT_RETENTION,
        }
    }
}

/// Counts since start, for the shell to export as metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NflogCounters {
    pub rejected_full: u64,
    /// Remote entries that replaced ours.
    pub merged: u64,
    /// Remote entries ignored: older than ours, or expired.
    pub ignored: u64,
    pub collected: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Nflog {
    entries: BTreeMap<(String, ReceiverKey), Entry>,
    limits: NflogLimits,
    pub counters: NflogCounters,
}

impl Nflog {
    pub fn new(limits: NflogLimits) -> Nflog {
        Nflog {
            entries: BTreeMap::new(),
            limits,
            counters: NflogCounters::default(),
        }
    }

    /// Records a notification of `firing` and `resolved` to `receiver` for `group_key` and
    /// returns the entry for the shell to persist and replicate. The entry lives `expiry` when
    /// that is shorter than the retention (Alertmanager passes twice the repeat interval).
    /// Returns `None` when the log already holds a newer entry for the pair (a peer's clock runs
    /// ahead): the newer one stays, as in Alertmanager.
    pub fn log(
        &mut self,
        receiver: &ReceiverKey,
        group_key: &str,
        firing: &BTreeSet<u64>,
        resolved: &BTreeSet<u64>,
        expiry: Option<SignedDuration>,
        now: Timestamp,
    ) -> Result<Option<Entry>, NflogError> {
        let key = (group_key.to_string(), receiver.clone());
        let existing = self
            .entries
            .get(&key)
            .filter(|entry| !entry.is_expired_at(now));
        if existing.is_some_and(|entry| entry.timestamp > now) {
            return Ok(None);
        }
        if existing.is_none()
            && !self.entries.contains_key(&key)
            && self.entries.len() >= self.limits.max_entries
        {
            self.counters.rejected_full += 1;
            return Err(NflogError::Full {
                limit: self.limits.max_entries,
            });
        }
        let lifetime = match expiry {
            Some(expiry) if expiry.is_positive() && expiry < self.limits.retention => expiry,
            _ => self.limits.retention,
        };
        let entry = Entry {
            group_key: key.0.clone(),
            receiver: key.1.clone(),
            firing_alerts: firing.iter().copied().collect(),
            resolved_alerts: resolved.iter().copied().collect(),
            timestamp: now,
            expires_at: now.saturating_add(lifetime).unwrap_or(Timestamp::MAX),
        };
        self.entries.insert(key, entry.clone());
        Ok(Some(entry))
    }

    /// The live entry for `group_key` and `receiver`, if any.
    pub fn query(&self, group_key: &str, receiver: &ReceiverKey, now: Timestamp) -> Option<&Entry> {
        self.entries
            .get(&(group_key.to_string(), receiver.clone()))
            .filter(|entry| !entry.is_expired_at(now))
    }

    /// Merges an entry from a peer (or a snapshot). Returns whether it replaced ours.
    pub fn merge(&mut self, mut remote: Entry, now: Timestamp) -> Result<bool, NflogError> {
        if remote.is_expired_at(now) {
            self.counters.ignored += 1;
            return Ok(false);
        }
        remote.normalize();
        let key = (remote.group_key.clone(), remote.receiver.clone());
        match self.entries.get_mut(&key) {
            Some(ours) => {
                if ours.is_expired_at(now) || remote.precedence(ours) == Ordering::Greater {
                    *ours = remote;
                    self.counters.merged += 1;
                    Ok(true)
                } else {
                    self.counters.ignored += 1;
                    Ok(false)
                }
            }
            None => {
                if self.entries.len() >= self.limits.max_entries {
                    self.counters.rejected_full += 1;
                    return Err(NflogError::Full {
                        limit: self.limits.max_entries,
                    });
                }
                self.entries.insert(key, remote);
                self.counters.merged += 1;
                Ok(true)
            }
        }
    }

    /// Removes expired entries; returns how many.
    pub fn gc(&mut self, now: Timestamp) -> usize {
        let before = self.entries.len();
        self.entries.retain(|_, entry| !entry.is_expired_at(now));
        let collected = before - self.entries.len();
        self.counters.collected += collected as u64;
        collected
    }

    /// Every entry, expired ones not yet collected included, by group key and receiver.
    pub fn iter(&self) -> impl Iterator<Item = &Entry> {
        self.entries.values()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The whole log: a version byte, then the entries one after another, each encoded as
    /// [`Entry::encode`] does, so that decoding bounds every entry on its own.
    pub fn encode_snapshot(&self) -> Result<Vec<u8>, CodecError> {
        let mut bytes = vec![SNAPSHOT_VERSION];
        for entry in self.entries.values() {
            bincode::serde::encode_into_std_write(entry, &mut bytes, entry_codec())
                .map_err(|error| CodecError::Encode(error.to_string()))?;
        }
        Ok(bytes)
    }

    /// Rebuilds a log from a snapshot, dropping entries already expired at `now`.
    pub fn decode_snapshot(
        bytes: &[u8],
        limits: NflogLimits,
        now: Timestamp,
    ) -> Result<Nflog, CodecError> {
        let (&version, mut rest) = bytes.split_first().ok_or(CodecError::EmptySnapshot)?;
        if version != SNAPSHOT_VERSION {
            return Err(CodecError::UnknownVersion(version));
        }
        let mut log = Nflog::new(limits);
        while !rest.is_empty() {
            let (entry, read) = bincode::serde::decode_from_slice::<Entry, _>(rest, entry_codec())
                .map_err(|error| CodecError::Decode(error.to_string()))?;
            rest = &rest[read..];
            if log.merge(entry, now).is_err() {
                return Err(CodecError::TooManyEntries {
                    limit: limits.max_entries,
                });
            }
        }
        log.counters = NflogCounters::default();
        Ok(log)
    }
}

/// Whether a flush needs a notification to one receiver integration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Send. An integration without `send_resolved` is sent the firing alerts only.
    Notify(NotifyReason),
    /// Every alert the receiver last heard of has resolved, but the integration does not want
    /// resolved notifications: send nothing, yet log the (empty) firing set so the next firing
    /// alert counts as new. Alertmanager reaches the same state through its retry stage.
    RecordOnly,
    Skip(SkipReason),
}

impl Decision {
    /// Whether the pipeline goes on to send and log (Alertmanager's dedup stage passing the
    /// alerts on).
    pub fn proceeds(self) -> bool {
        !matches!(self, Decision::Skip(_))
    }

    /// A stable name for templates and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Notify(reason) => reason.as_str(),
            Decision::RecordOnly => "all_resolved_not_sent",
            Decision::Skip(reason) => reason.as_str(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotifyReason {
    /// Nothing was notified for this group and receiver yet, and something fires.
    FirstNotification,
    /// An alert fires that the last notification did not report as firing.
    NewFiringAlerts,
    /// Nothing fires any more, and the last notification reported firing alerts.
    AllResolved,
    /// With `send_resolved`: an alert resolved that the last notification did not report as
    /// resolved.
    NewResolvedAlerts,
    /// Nothing changed, but the last notification is older than the repeat interval.
    RepeatIntervalElapsed,
}

impl NotifyReason {
    pub fn as_str(self) -> &'static str {
        match self {
            NotifyReason::FirstNotification => "first_notification",
            NotifyReason::NewFiringAlerts => "new_firing_alerts",
            NotifyReason::AllResolved => "all_resolved",
            NotifyReason::NewResolvedAlerts => "new_resolved_alerts",
            NotifyReason::RepeatIntervalElapsed => "repeat_interval_elapsed",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipReason {
    /// Nothing was notified yet and nothing fires: only resolved alerts, which the receiver
    /// never heard of.
    NothingFiring,
    /// Nothing fires now and nothing fired at the last notification: alerts fired and resolved
    /// between two flushes, unknown to the receiver.
    ResolvedUnnoticed,
    /// Same alerts as the last notification, within the repeat interval.
    Unchanged,
}

impl SkipReason {
    pub fn as_str(self) -> &'static str {
        match self {
            SkipReason::NothingFiring => "nothing_firing",
            SkipReason::ResolvedUnnoticed => "resolved_unnoticed",
            SkipReason::Unchanged => "unchanged",
        }
    }
}

/// Alertmanager's `DedupStage.needsUpdate`, rule for rule, with the reason. `firing` and
/// `resolved` are the fingerprints of the flush's alerts; `entry` is the receiver
/// integration's live log entry for the group.
pub fn needs_update(
    entry: Option<&Entry>,
    firing: &BTreeSet<u64>,
    resolved: &BTreeSet<u64>,
    repeat_interval: SignedDuration,
    send_resolved: bool,
    now: Timestamp,
) -> Decision {
    let Some(entry) = entry else {
        return if firing.is_empty() {
            Decision::Skip(SkipReason::NothingFiring)
        } else {
            Decision::Notify(NotifyReason::FirstNotification)
        };
    };
    let contains = |logged: &[u64], fingerprint: &u64| logged.binary_search(fingerprint).is_ok();
    if !firing
        .iter()
        .all(|fingerprint| contains(&entry.firing_alerts, fingerprint))
    {
        return Decision::Notify(NotifyReason::NewFiringAlerts);
    }
    if firing.is_empty() {
        // Alertmanager notifies here whatever `send_resolved` says, so that the log forgets the
        // firing alerts; the integration then sends nothing unless it wants resolutions.
        return match (entry.firing_alerts.is_empty(), send_resolved) {
            (true, _) => Decision::Skip(SkipReason::ResolvedUnnoticed),
            (false, true) => Decision::Notify(NotifyReason::AllResolved),
            (false, false) => Decision::RecordOnly,
        };
    }
    if send_resolved
        && !resolved
            .iter()
            .all(|fingerprint| contains(&entry.resolved_alerts, fingerprint))
    {
        return Decision::Notify(NotifyReason::NewResolvedAlerts);
    }
    let repeat_due = now
        .checked_sub(repeat_interval)
        .is_ok_and(|threshold| entry.timestamp < threshold);
    if repeat_due {
        Decision::Notify(NotifyReason::RepeatIntervalElapsed)
    } else {
        Decision::Skip(SkipReason::Unchanged)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_second(seconds).unwrap()
    }

    fn receiver(name: &str) -> ReceiverKey {
        ReceiverKey {
            name: name.to_string(),
            integration: "webhook".to_string(),
            index: 0,
        }
    }

    fn set(fingerprints: &[u64]) -> BTreeSet<u64> {
        fingerprints.iter().copied().collect()
    }

    fn entry(firing: &[u64], resolved: &[u64], timestamp: i64) -> Entry {
        Entry {
            group_key: "{}:{alertname=\"A\"}".to_string(),
            receiver: receiver("team"),
            firing_alerts: firing.to_vec(),
            resolved_alerts: resolved.to_vec(),
            timestamp: at(timestamp),
            expires_at: at(timestamp + 1_000_000),
        }
    }

    #[test]
    fn needs_update_follows_every_alertmanager_rule() {
        use Decision::*;
        let hour = SignedDuration::from_hours(1);
        // (last entry, firing now, resolved now, send_resolved, now, expected)
        type Row = (
            Option<Entry>,
            &'static [u64],
            &'static [u64],
            bool,
            i64,
            Decision,
        );
        #[rustfmt::skip]
        let table: Vec<Row> = vec![
            // No entry: notify only if something fires.
            (None, &[1], &[], false, 100, Notify(NotifyReason::FirstNotification)),
            (None, &[1], &[2], true, 100, Notify(NotifyReason::FirstNotification)),
            (None, &[], &[2], true, 100, Skip(SkipReason::NothingFiring)),
            (None, &[], &[], false, 100, Skip(SkipReason::NothingFiring)),
            // A firing alert the last notification did not report.
            (Some(entry(&[1], &[], 100)), &[1, 2], &[], false, 200, Notify(NotifyReason::NewFiringAlerts)),
            (Some(entry(&[1], &[2], 100)), &[2], &[1], false, 200, Notify(NotifyReason::NewFiringAlerts)),
            // Fewer firing alerts is not news by itself.
            (Some(entry(&[1, 2], &[], 100)), &[1], &[2], false, 200, Skip(SkipReason::Unchanged)),
            // All resolved after firing: notify regardless of send_resolved (the integration
            // without it only records).
            (Some(entry(&[1], &[], 100)), &[], &[1], true, 200, Notify(NotifyReason::AllResolved)),
            (Some(entry(&[1], &[], 100)), &[], &[1], false, 200, RecordOnly),
            (Some(entry(&[1], &[], 100)), &[], &[], true, 200, Notify(NotifyReason::AllResolved)),
            // Nothing fired at the last notification and nothing fires now.
            (Some(entry(&[], &[1], 100)), &[], &[1, 2], true, 200, Skip(SkipReason::ResolvedUnnoticed)),
            (Some(entry(&[], &[1], 100)), &[], &[1], false, 9_000, Skip(SkipReason::ResolvedUnnoticed)),
            // A newly resolved alert matters only with send_resolved.
            (Some(entry(&[1, 2], &[], 100)), &[1], &[2], true, 200, Notify(NotifyReason::NewResolvedAlerts)),
            (Some(entry(&[1], &[2], 100)), &[1], &[2], true, 200, Skip(SkipReason::Unchanged)),
            // Repeat interval: strictly older than now − repeat_interval.
            (Some(entry(&[1], &[], 100)), &[1], &[], false, 3_700, Skip(SkipReason::Unchanged)),
            (Some(entry(&[1], &[], 100)), &[1], &[], false, 3_701, Notify(NotifyReason::RepeatIntervalElapsed)),
            (Some(entry(&[1], &[2], 100)), &[1], &[2, 3], false, 3_701, Notify(NotifyReason::RepeatIntervalElapsed)),
        ];
        for (index, (last, firing, resolved, send_resolved, now, expected)) in
            table.into_iter().enumerate()
        {
            let decision = needs_update(
                last.as_ref(),
                &set(firing),
                &set(resolved),
                hour,
                send_resolved,
                at(now),
            );
            assert_eq!(decision, expected, "row {index}");
            assert_eq!(
                decision.proceeds(),
                !matches!(expected, Skip(_)),
                "row {index}"
            );
        }
    }

    #[test]
    fn log_then_query_with_retention_and_expiry() {
        let mut log = Nflog::new(NflogLimits::default());
        let team = receiver("team");
        let written = log
            .log(&team, "g", &set(&[2, 1]), &set(&[3]), None, at(100))
            .unwrap()
            .unwrap();
        assert_eq!(written.firing_alerts, [1, 2]);
        assert_eq!(written.expires_at, at(100 + 120 * 3600));
        assert_eq!(log.query("g", &team, at(101)), Some(&written));
        assert_eq!(log.query("g", &receiver("other"), at(101)), None);

        // A shorter expiry (twice the repeat interval) wins over the retention.
        let short = log.log(
            &team,
            "g",
            &set(&[1]),
            &set(&[]),
            Some(SignedDuration::from_secs(60)),
            at(200),
        );
        let short = short.unwrap().unwrap();
        assert_eq!(short.expires_at, at(260));
        assert_eq!(log.query("g", &team, at(260)), Some(&short));
        assert_eq!(log.query("g", &team, at(261)), None);
        assert_eq!(log.gc(at(261)), 1);
        assert!(log.is_empty());
    }

    #[test]
    fn log_keeps_an_entry_from_the_future() {
        let mut log = Nflog::new(NflogLimits::default());
        log.merge(entry(&[1], &[], 500), at(100)).unwrap();
        let key = receiver("team");
        let group = entry(&[], &[], 0).group_key;
        assert_eq!(
            log.log(&key, &group, &set(&[2]), &set(&[]), None, at(400)),
            Ok(None)
        );
        assert_eq!(log.query(&group, &key, at(400)).unwrap().firing_alerts, [1]);
    }

    #[test]
    fn the_log_is_bounded() {
        let mut log = Nflog::new(NflogLimits {
            max_entries: 1,
            ..NflogLimits::default()
        });
        log.log(&receiver("a"), "g", &set(&[1]), &set(&[]), None, at(100))
            .unwrap();
        // Rewriting an existing entry needs no room.
        log.log(&receiver("a"), "g", &set(&[1, 2]), &set(&[]), None, at(101))
            .unwrap();
        assert_eq!(
            log.log(&receiver("b"), "g", &set(&[1]), &set(&[]), None, at(102)),
            Err(NflogError::Full { limit: 1 })
        );
        let mut remote = entry(&[1], &[], 100);
        remote.receiver = receiver("c");
        assert_eq!(
            log.merge(remote, at(102)),
            Err(NflogError::Full { limit: 1 })
        );
        assert_eq!(log.counters.rejected_full, 2);
    }

    #[test]
    fn entries_and_snapshots_round_trip() {
        let mut log = Nflog::new(NflogLimits::default());
        let written = log
            .log(
                &receiver("a"),
                "g1",
                &set(&[1, 2]),
                &set(&[3]),
                None,
                at(100),
            )
            .unwrap()
            .unwrap();
        log.log(
            &receiver("b"),
            "g2",
            &set(&[]),
            &set(&[u64::MAX]),
            None,
            at(101),
        )
        .unwrap();

        let bytes = written.encode().unwrap();
        assert_eq!(Entry::decode(&bytes), Ok(written));
        let mut trailing = bytes.clone();
        trailing.push(0);
        assert_eq!(
            Entry::decode(&trailing),
            Err(CodecError::TrailingBytes { count: 1 })
        );
        assert!(matches!(
            Entry::decode(&bytes[..bytes.len() - 1]),
            Err(CodecError::Decode(_))
        ));

        let snapshot = log.encode_snapshot().unwrap();
        let restored = Nflog::decode_snapshot(&snapshot, NflogLimits::default(), at(102)).unwrap();
        assert_eq!(
            restored.iter().collect::<Vec<_>>(),
            log.iter().collect::<Vec<_>>()
        );

        // Expired entries are dropped on the way in.
        let later = at(101 + 120 * 3600 + 1);
        assert_eq!(
            Nflog::decode_snapshot(&snapshot, NflogLimits::default(), later)
                .unwrap()
                .len(),
            0
        );
        let small = NflogLimits {
            max_entries: 1,
            ..NflogLimits::default()
        };
        assert_eq!(
            Nflog::decode_snapshot(&snapshot, small, at(102)),
            Err(CodecError::TooManyEntries { limit: 1 })
        );
        assert_eq!(
            Nflog::decode_snapshot(&[], small, at(102)),
            Err(CodecError::EmptySnapshot)
        );
        assert_eq!(
            Nflog::decode_snapshot(&[9], small, at(102)),
            Err(CodecError::UnknownVersion(9))
        );
    }

    #[test]
    fn a_huge_length_prefix_is_refused_without_allocating() {
        // group_key length claimed as u64::MAX (varint 0xFF + 8 bytes).
        let mut bytes = vec![0xFF];
        bytes.extend_from_slice(&u64::MAX.to_le_bytes());
        assert!(matches!(Entry::decode(&bytes), Err(CodecError::Decode(_))));
    }

    #[test]
    fn decoding_normalizes_fingerprint_sets() {
        let mut unsorted = entry(&[3, 1, 3], &[2, 2], 100);
        let bytes = bincode::serde::encode_to_vec(WireEntry::from(unsorted.clone()), entry_codec())
            .unwrap();
        unsorted.normalize();
        assert_eq!(Entry::decode(&bytes), Ok(unsorted));
    }

    fn entry_strategy() -> impl Strategy<Value = Entry> {
        (
            0u8..2,
            0u8..2,
            prop::collection::vec(0u64..4, 0..3),
            prop::collection::vec(0u64..4, 0..3),
            0i64..5,
            0i64..8,
        )
            .prop_map(
                |(group, name, firing, resolved, timestamp, lifetime)| Entry {
                    group_key: format!("g{group}"),
                    receiver: receiver(&format!("r{name}")),
                    firing_alerts: firing,
                    resolved_alerts: resolved,
                    timestamp: at(timestamp),
                    expires_at: at(timestamp + lifetime),
                },
            )
    }

    const NOW: i64 = 6;

    fn state(entries: &[Entry]) -> Nflog {
        let mut log = Nflog::new(NflogLimits::default());
        for entry in entries {
            log.merge(entry.clone(), at(NOW)).unwrap();
        }
        log
    }

    fn join(a: &Nflog, b: &Nflog) -> Nflog {
        let mut joined = a.clone();
        for entry in b.iter() {
            joined.merge(entry.clone(), at(NOW)).unwrap();
        }
        joined
    }

    /// What a log says at `NOW`: its live entries.
    fn live(log: &Nflog) -> Vec<Entry> {
        log.iter()
            .filter(|entry| !entry.is_expired_at(at(NOW)))
            .cloned()
            .collect()
    }

    proptest! {
        #[test]
        fn merge_is_commutative(a in prop::collection::vec(entry_strategy(), 0..6), b in prop::collection::vec(entry_strategy(), 0..6)) {
            let (a, b) = (state(&a), state(&b));
            prop_assert_eq!(live(&join(&a, &b)), live(&join(&b, &a)));
        }

        #[test]
        fn merge_is_associative(
            a in prop::collection::vec(entry_strategy(), 0..5),
            b in prop::collection::vec(entry_strategy(), 0..5),
            c in prop::collection::vec(entry_strategy(), 0..5),
        ) {
            let (a, b, c) = (state(&a), state(&b), state(&c));
            prop_assert_eq!(live(&join(&join(&a, &b), &c)), live(&join(&a, &join(&b, &c))));
        }

        #[test]
        fn merge_is_idempotent(a in prop::collection::vec(entry_strategy(), 0..6)) {
            let a = state(&a);
            prop_assert_eq!(live(&join(&a, &a)), live(&a));
        }

        /// Entries in any order build the same log.
        #[test]
        fn merge_order_does_not_matter(entries in prop::collection::vec(entry_strategy(), 0..8)) {
            let mut reversed = entries.clone();
            reversed.reverse();
            prop_assert_eq!(live(&state(&entries)), live(&state(&reversed)));
        }

        #[test]
        fn entries_round_trip(entry in entry_strategy()) {
            let mut normalized = entry.clone();
            normalized.normalize();
            prop_assert_eq!(Entry::decode(&entry.encode().unwrap()), Ok(normalized));
        }
    }
}
