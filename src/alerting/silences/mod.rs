//! Silences as Alertmanager 0.25 keeps them: create, update (in place only when history is not
//! rewritten, else expire and recreate), expire, query, mute, garbage-collect, and merge copies
//! from peers. A sans-IO core: `now` and randomness are arguments, and every change returns the
//! silences to persist so the shell can fsync them before it answers.
//!
//! Where Tocsin differs from Alertmanager 0.25, on purpose:
//! - A silence is active on `[starts_at, ends_at)`: at `ends_at` it is expired already, so
//!   expiring a silence takes effect at once (Alertmanager: the instant after).
//! - `foo!="x"` alone is refused like `foo=~".*"`: every matcher that accepts the empty string
//!   counts, not only `=` and `=~`.
//! - Updating validates the new silence before expiring the old one, so a refused update changes
//!   nothing; an active silence's start compares at second precision (as Alertmanager ≥ 0.27
//!   does), so a silence read back through the API can be updated in place; matchers compare as
//!   sets, not as ordered lists.
//! - Expiring an expired silence succeeds and changes nothing (as Alertmanager ≥ 0.27).
//! - Merge is last-writer-wins by `updated_at`, except that a version that was already expired
//!   when it was written beats every version that was not: an expiry is never undone by a peer
//!   whose clock is behind. Ties break on the content, so every node picks the same winner.

#![deny(clippy::disallowed_methods)]

pub mod codec;
mod mute_index;
mod validate;

#[cfg(test)]
mod tests;

pub use validate::{MAX_ID_BYTES, MAX_SILENCE_BYTES_CAP, SilenceLimits};

use crate::alerting::faults::Faults;
use crate::alerting::labels::LabelSet;
use crate::config::alertmanager::{Matcher, all_match};
use jiff::{SignedDuration, Timestamp};
use mute_index::MuteIndex;
use std::cmp::{Ordering, Reverse};
use std::collections::BTreeMap;

/// Alertmanager's default `--data.retention`: how long expired silences are kept.
pub const DEFAULT_RETENTION: SignedDuration = SignedDuration::from_hours(120);

/// One silence. `id` is a UUID v4 in its text form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Silence {
    pub id: String,
    pub matchers: Vec<Matcher>,
    pub starts_at: Timestamp,
    pub ends_at: Timestamp,
    /// When this version was written; decides which version wins a merge.
    pub updated_at: Timestamp,
    pub created_by: String,
    pub comment: String,
}

/// What a client asks for when it posts a silence: everything but the id and `updated_at`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SilenceSpec {
    pub matchers: Vec<Matcher>,
    pub starts_at: Timestamp,
    pub ends_at: Timestamp,
    /// Alertmanager 0.25 requires the field in the JSON body but accepts an empty string; so does
    /// Tocsin (the API refuses a missing field, the core accepts any bounded text).
    pub created_by: String,
    pub comment: String,
}

/// Declared in Alertmanager's API order: active, pending, expired.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SilenceState {
    Active,
    Pending,
    Expired,
}

impl SilenceState {
    pub fn as_str(self) -> &'static str {
        match self {
            SilenceState::Active => "active",
            SilenceState::Pending => "pending",
            SilenceState::Expired => "expired",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SilenceError {
    /// Alertmanager's `ErrNotFound` text; the API answers 404.
    #[error("not found")]
    NotFound,
    #[error("Failed to create silence: start time must be before end time")]
    StartNotBeforeEnd,
    #[error("Failed to create silence: end time can't be in the past")]
    EndInPast,
    #[error("silence invalid: {0}")]
    Invalid(String),
    /// A size or count limit of [`SilenceLimits`]; the text names it.
    #[error("{0}")]
    Limit(String),
    /// The randomness the caller passed produced an id in use; retry with fresh randomness.
    #[error("generated silence id {0} is in use already")]
    DuplicateId(String),
}

/// A durable record that could not be restored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RestoreError {
    #[error("undecodable silence record: {0}")]
    Codec(#[from] codec::CodecError),
    #[error("silence record refused: {0}")]
    Refused(#[from] SilenceError),
}

/// The result of a create or update: the id the client gets back, and the silences to make
/// durable before answering (the replaced silence, expired, comes first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SilenceChange {
    pub id: String,
    pub persist: Vec<Silence>,
}

/// Filters of a silence query; an empty list means "any".
#[derive(Debug, Clone, Default)]
pub struct SilenceQuery {
    pub ids: Vec<String>,
    pub states: Vec<SilenceState>,
    /// Alertmanager's API `filter`: a silence is returned if, for every filter matcher, it has a
    /// matcher with the same name, operator and value.
    pub filter: Vec<Matcher>,
}

/// Counters for the shell's self-metrics: every time a bound was hit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SilenceStats {
    /// Expired silences dropped before their retention ran out, to make room.
    pub evicted_expired: u64,
    /// Silences refused because a limit was hit.
    pub refused_by_limit: u64,
    /// Times the mute cache was emptied because it was full.
    pub cache_resets: u64,
}

impl Silence {
    /// Pending before `starts_at`, active from `starts_at` until `ends_at`, expired from then on.
    pub fn state_at(&self, now: Timestamp) -> SilenceState {
        if now < self.starts_at {
            SilenceState::Pending
        } else if now < self.ends_at {
            SilenceState::Active
        } else {
            SilenceState::Expired
        }
    }

    /// Whether every matcher accepts the labels (a missing label is the empty string).
    pub fn matches(&self, labels: &LabelSet) -> bool {
        all_match(&self.matchers, |name| labels.get(name))
    }

    /// The bytes a silence accounts for against the limits: its text plus its three timestamps.
    pub fn size_bytes(&self) -> usize {
        const TIMESTAMP_BYTES: usize = 16;
        const MATCHER_OVERHEAD_BYTES: usize = 2;
        let matchers: usize = self
            .matchers
            .iter()
            .map(|matcher| matcher.name().len() + matcher.value().len() + MATCHER_OVERHEAD_BYTES)
            .sum();
        self.id.len() + self.created_by.len() + self.comment.len() + matchers + 3 * TIMESTAMP_BYTES
    }

    /// Written as an expiry: already expired at its own `updated_at`.
    fn expired_when_written(&self) -> bool {
        self.ends_at <= self.updated_at
    }

    /// The total order of versions of one silence that merge picks the greatest of. Expiries
    /// first, then `updated_at`; on a tie the version that ends sooner, then the rest of the
    /// content, so that a tie never extends a silence and every node picks the same one.
    fn version_cmp(&self, other: &Silence) -> Ordering {
        let key = |silence: &Silence| {
            (
                silence.expired_when_written(),
                silence.updated_at,
                Reverse(silence.ends_at),
                silence.starts_at,
            )
        };
        key(self)
            .cmp(&key(other))
            .then_with(|| self.matchers.cmp(&other.matchers))
            .then_with(|| self.created_by.cmp(&other.created_by))
            .then_with(|| self.comment.cmp(&other.comment))
            .then_with(|| self.id.cmp(&other.id))
    }

    /// The version of two copies of a silence that replication keeps. Commutative, associative
    /// and idempotent.
    pub fn merged<'a>(&'a self, other: &'a Silence) -> &'a Silence {
        if other.version_cmp(self) == Ordering::Greater {
            other
        } else {
            self
        }
    }
}

/// A UUID v4 in its text form, from 16 random bytes the caller drew.
pub fn uuid_v4(mut random: [u8; 16]) -> String {
    random[6] = (random[6] & 0x0f) | 0x40;
    random[8] = (random[8] & 0x3f) | 0x80;
    let hex: String = random.iter().map(|byte| format!("{byte:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// All silences of a node, with the mute index.
#[derive(Debug)]
pub struct Silences {
    limits: SilenceLimits,
    retention: SignedDuration,
    by_id: BTreeMap<String, Silence>,
    total_bytes: usize,
    index: MuteIndex,
    stats: SilenceStats,
    /// Deliberate bugs for the simulator; all off (and inert without `fault-injection`).
    faults: Faults,
}

impl Silences {
    /// An empty store. `retention` is how long expired silences are kept (Alertmanager's
    /// `--data.retention`, [`DEFAULT_RETENTION`]).
    pub fn new(limits: SilenceLimits, retention: SignedDuration) -> Silences {
        Silences {
            limits,
            retention,
            by_id: BTreeMap::new(),
            total_bytes: 0,
            index: MuteIndex::default(),
            stats: SilenceStats::default(),
            faults: Faults::default(),
        }
    }

    /// Turns deliberate bugs on, for the simulator (see [`Faults`]).
    pub fn set_faults(&mut self, faults: Faults) {
        self.faults = faults;
    }

    pub fn limits(&self) -> &SilenceLimits {
        &self.limits
    }

    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// Sum of [`Silence::size_bytes`] over all held silences.
    pub fn total_bytes(&self) -> usize {
        self.total_bytes
    }

    pub fn stats(&self) -> SilenceStats {
        SilenceStats {
            cache_resets: self.index.cache_resets,
            ..self.stats
        }
    }

    pub fn get(&self, id: &str) -> Option<&Silence> {
        self.by_id.get(id)
    }

    /// Every silence, by id: what a snapshot or a full-state sync carries.
    pub fn iter(&self) -> impl Iterator<Item = &Silence> {
        self.by_id.values()
    }

    /// Creates a silence (Alertmanager's `Set` without an id). A start in the past becomes `now`.
    pub fn create(
        &mut self,
        spec: SilenceSpec,
        now: Timestamp,
        random: [u8; 16],
    ) -> Result<SilenceChange, SilenceError> {
        validate::check_posted_times(spec.starts_at, spec.ends_at, now)?;
        let silence = self.new_silence(spec, now, random)?;
        self.make_room(1, silence.size_bytes(), None, now)?;
        self.put(silence.clone());
        Ok(SilenceChange {
            id: silence.id.clone(),
            persist: vec![silence],
        })
    }

    /// Updates silence `id` (Alertmanager's `Set` with an id). In place if that does not rewrite
    /// history: same matchers, and for an active silence the same start and an end not in the
    /// past, for a pending one a start not in the past. Otherwise the old silence is expired (if
    /// it is not already) and a new one with a new id is created.
    pub fn update(
        &mut self,
        id: &str,
        spec: SilenceSpec,
        now: Timestamp,
        random: [u8; 16],
    ) -> Result<SilenceChange, SilenceError> {
        let previous = self.by_id.get(id).ok_or(SilenceError::NotFound)?.clone();
        validate::check_posted_times(spec.starts_at, spec.ends_at, now)?;
        if can_update(&previous, &spec, now) {
            let starts_at = if previous.state_at(now) == SilenceState::Active {
                // Equal to the second; keep the stored instant so nothing moves.
                previous.starts_at
            } else {
                spec.starts_at
            };
            let silence = Silence {
                id: previous.id.clone(),
                matchers: spec.matchers,
                starts_at,
                ends_at: spec.ends_at,
                updated_at: next_updated_at(&previous, now),
                created_by: spec.created_by,
                comment: spec.comment,
            };
            self.check(&silence)?;
            let growth = silence.size_bytes().saturating_sub(previous.size_bytes());
            self.make_room(0, growth, Some(id), now)?;
            self.put(silence.clone());
            return Ok(SilenceChange {
                id: silence.id.clone(),
                persist: vec![silence],
            });
        }
        let replacement = self.new_silence(spec, now, random)?;
        self.make_room(1, replacement.size_bytes(), Some(id), now)?;
        let mut persist = Vec::with_capacity(2);
        if previous.state_at(now) != SilenceState::Expired {
            let expired = expired_version(&previous, now);
            self.put(expired.clone());
            persist.push(expired);
        }
        self.put(replacement.clone());
        persist.push(replacement.clone());
        Ok(SilenceChange {
            id: replacement.id,
            persist,
        })
    }

    /// Expires silence `id` now: an active one ends now, a pending one starts and ends now.
    /// `Ok(None)` if it is expired already (nothing to persist).
    pub fn expire(&mut self, id: &str, now: Timestamp) -> Result<Option<Silence>, SilenceError> {
        let previous = self.by_id.get(id).ok_or(SilenceError::NotFound)?;
        if previous.state_at(now) == SilenceState::Expired {
            return Ok(None);
        }
        let expired = expired_version(previous, now);
        self.put(expired.clone());
        Ok(Some(expired))
    }

    /// Silences passing every filter of `query`, by id.
    pub fn query(&self, query: &SilenceQuery, now: Timestamp) -> Vec<&Silence> {
        let selected: Box<dyn Iterator<Item = &Silence>> = if query.ids.is_empty() {
            Box::new(self.by_id.values())
        } else {
            let mut ids: Vec<&String> = query.ids.iter().collect();
            ids.sort();
            ids.dedup();
            Box::new(ids.into_iter().filter_map(|id| self.by_id.get(id)))
        };
        selected
            .filter(|silence| {
                query.states.is_empty() || query.states.contains(&silence.state_at(now))
            })
            .filter(|silence| matches_filter(silence, &query.filter))
            .collect()
    }

    /// The ids of the silences active at `now` that mute an alert with `labels`, sorted.
    pub fn mutes(&mut self, labels: &LabelSet, now: Timestamp) -> Vec<String> {
        self.index
            .mutes(&self.by_id, labels, now, self.limits.max_cache_entries)
    }

    /// Drops silences expired for longer than the retention. Returns how many. Nothing needs
    /// persisting: replaying the log and collecting again gives the same result.
    pub fn gc(&mut self, now: Timestamp) -> usize {
        let doomed: Vec<String> = self
            .by_id
            .values()
            .filter(|silence| self.past_retention(silence, now))
            .map(|silence| silence.id.clone())
            .collect();
        for id in &doomed {
            self.remove(id);
        }
        doomed.len()
    }

    /// Takes in a copy of a silence from a peer or from disk. Returns the silence if it changed
    /// the state (to persist and to pass on), `None` if the held version wins or the copy expired
    /// beyond the retention and is unknown here.
    pub fn merge(
        &mut self,
        remote: Silence,
        now: Timestamp,
    ) -> Result<Option<Silence>, SilenceError> {
        self.check(&remote)?;
        match self.by_id.get(&remote.id) {
            Some(local) => {
                let by_arrival = self.faults.merge_silences_by_arrival() && remote != *local;
                if remote.version_cmp(local) != Ordering::Greater && !by_arrival {
                    return Ok(None);
                }
                let growth = remote.size_bytes().saturating_sub(local.size_bytes());
                let id = remote.id.clone();
                self.make_room(0, growth, Some(&id), now)?;
            }
            None => {
                if self.past_retention(&remote, now) {
                    return Ok(None);
                }
                self.make_room(1, remote.size_bytes(), None, now)?;
            }
        }
        self.put(remote.clone());
        Ok(Some(remote))
    }

    /// Takes in one durable record while the shell replays the state log: decodes it and merges
    /// it like a peer's copy, so replay order does not matter and a record refused by today's
    /// limits is reported, not fatal. Run [`Silences::gc`] once replay is done.
    pub fn restore_record(&mut self, bytes: &[u8], now: Timestamp) -> Result<(), RestoreError> {
        let silence = codec::decode_silence(bytes)?;
        self.merge(silence, now)?;
        Ok(())
    }

    fn past_retention(&self, silence: &Silence, now: Timestamp) -> bool {
        let kept_until = silence
            .ends_at
            .saturating_add(self.retention)
            .unwrap_or(Timestamp::MAX);
        kept_until < now
    }

    fn new_silence(
        &mut self,
        spec: SilenceSpec,
        now: Timestamp,
        random: [u8; 16],
    ) -> Result<Silence, SilenceError> {
        let id = uuid_v4(random);
        if self.by_id.contains_key(&id) {
            return Err(SilenceError::DuplicateId(id));
        }
        let silence = Silence {
            id,
            matchers: spec.matchers,
            starts_at: spec.starts_at.max(now),
            ends_at: spec.ends_at,
            updated_at: now,
            created_by: spec.created_by,
            comment: spec.comment,
        };
        self.check(&silence)?;
        Ok(silence)
    }

    fn check(&mut self, silence: &Silence) -> Result<(), SilenceError> {
        let result = validate::validate(silence, &self.limits);
        if let Err(SilenceError::Limit(_)) = result {
            self.stats.refused_by_limit += 1;
        }
        result
    }

    /// Makes room for `extra_silences` more silences and `extra_bytes` more bytes by evicting
    /// expired silences, the longest expired first, never `keep`. Refuses if that is not enough.
    fn make_room(
        &mut self,
        extra_silences: usize,
        extra_bytes: usize,
        keep: Option<&str>,
        now: Timestamp,
    ) -> Result<(), SilenceError> {
        let over_count = |store: &Silences| {
            store.by_id.len().saturating_add(extra_silences) > store.limits.max_silences
        };
        let over_bytes = |store: &Silences| {
            store.total_bytes.saturating_add(extra_bytes) > store.limits.max_total_bytes
        };
        while over_count(self) || over_bytes(self) {
            let oldest_expired = self
                .by_id
                .values()
                .filter(|silence| Some(silence.id.as_str()) != keep)
                .filter(|silence| silence.state_at(now) == SilenceState::Expired)
                .min_by(|a, b| (a.ends_at, &a.id).cmp(&(b.ends_at, &b.id)))
                .map(|silence| silence.id.clone());
            let Some(id) = oldest_expired else {
                self.stats.refused_by_limit += 1;
                return Err(if over_count(self) {
                    SilenceError::Limit(format!(
                        "exceeded maximum number of silences: {} (limit: {})",
                        self.by_id.len(),
                        self.limits.max_silences
                    ))
                } else {
                    SilenceError::Limit(format!(
                        "silences would take {} bytes in total (limit: {} bytes)",
                        self.total_bytes.saturating_add(extra_bytes),
                        self.limits.max_total_bytes
                    ))
                });
            };
            self.remove(&id);
            self.stats.evicted_expired += 1;
        }
        Ok(())
    }

    fn put(&mut self, silence: Silence) {
        self.remove(&silence.id);
        self.total_bytes += silence.size_bytes();
        self.index.insert(&silence);
        self.by_id.insert(silence.id.clone(), silence);
    }

    fn remove(&mut self, id: &str) {
        if let Some(silence) = self.by_id.remove(id) {
            self.total_bytes = self.total_bytes.saturating_sub(silence.size_bytes());
            self.index.remove(&silence);
        }
    }
}

/// Alertmanager's `canUpdate`, with Tocsin's differences (module docs).
fn can_update(previous: &Silence, spec: &SilenceSpec, now: Timestamp) -> bool {
    let mut old_matchers = previous.matchers.clone();
    let mut new_matchers = spec.matchers.clone();
    old_matchers.sort();
    new_matchers.sort();
    if old_matchers != new_matchers {
        return false;
    }
    match previous.state_at(now) {
        SilenceState::Active => {
            spec.starts_at.as_second() == previous.starts_at.as_second() && spec.ends_at >= now
        }
        SilenceState::Pending => spec.starts_at >= now,
        SilenceState::Expired => false,
    }
}

/// The version of `silence` expired at `now`, as Alertmanager's `expire` writes it.
fn expired_version(silence: &Silence, now: Timestamp) -> Silence {
    let mut expired = silence.clone();
    if silence.state_at(now) == SilenceState::Pending {
        expired.starts_at = now;
    }
    expired.ends_at = now;
    expired.updated_at = next_updated_at(silence, now);
    expired
}

/// A new version's `updated_at` is later than the one it replaces even if the clock stepped
/// back, so that merge (last writer wins) agrees with the order the node wrote them in.
fn next_updated_at(previous: &Silence, now: Timestamp) -> Timestamp {
    let after_previous = previous
        .updated_at
        .checked_add(SignedDuration::from_nanos(1))
        .unwrap_or(Timestamp::MAX);
    now.max(after_previous)
}

/// Alertmanager's `CheckSilenceMatchesFilterLabels`.
pub fn matches_filter(silence: &Silence, filter: &[Matcher]) -> bool {
    filter
        .iter()
        .all(|wanted| silence.matchers.iter().any(|held| held == wanted))
}

/// Alertmanager's API order: active silences by end, then pending by start, then expired with the
/// most recently ended first.
pub fn sort_for_api(silences: &mut [&Silence], now: Timestamp) {
    silences.sort_by(|a, b| {
        let (state_a, state_b) = (a.state_at(now), b.state_at(now));
        state_a.cmp(&state_b).then_with(|| match state_a {
            SilenceState::Active => a.ends_at.cmp(&b.ends_at),
            SilenceState::Pending => a.starts_at.cmp(&b.starts_at),
            SilenceState::Expired => b.ends_at.cmp(&a.ends_at),
        })
    });
}
