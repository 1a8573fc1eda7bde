//! Which silences mute a label set, fast: an index from `name="value"` equality matchers to the
//! silences holding them, and a per-fingerprint cache of the answer that any change to the
//! silences invalidates.

use super::{Silence, SilenceState};
use crate::alerting::labels::{Fingerprint, LabelSet};
use crate::config::alertmanager::MatchOp;
use jiff::Timestamp;
use std::collections::{BTreeMap, BTreeSet, HashMap};

#[derive(Debug, Default)]
pub(super) struct MuteIndex {
    /// Silences keyed by one of their `name="value"` matchers with a non-empty value: an alert can
    /// only be muted by them if it has that exact label.
    by_equality: HashMap<(String, String), BTreeSet<String>>,
    /// Silences with no such matcher; every lookup has to check them.
    unkeyed: BTreeSet<String>,
    /// Bumped on every change to the silences; cache entries of an older version are stale.
    version: u64,
    cache: HashMap<Fingerprint, CacheEntry>,
    /// Times the cache was emptied because it was full (exported as a metric by the shell).
    pub(super) cache_resets: u64,
}

#[derive(Debug)]
struct CacheEntry {
    version: u64,
    /// The computation excluded silences expired at this time; an earlier `now` must recompute.
    computed_at: Timestamp,
    /// Silences that match the label set and were not expired at `computed_at`. Only time can
    /// change their state without a version bump, and time only moves pending → active →
    /// expired, so filtering this list by state at query time gives the current answer.
    silence_ids: Vec<String>,
}

/// The equality matcher a silence is indexed under: the first `=` with a non-empty value.
fn index_key(silence: &Silence) -> Option<(String, String)> {
    silence
        .matchers
        .iter()
        .find(|matcher| matcher.op() == MatchOp::Equal && !matcher.value().is_empty())
        .map(|matcher| (matcher.name().to_string(), matcher.value().to_string()))
}

impl MuteIndex {
    pub(super) fn insert(&mut self, silence: &Silence) {
        self.version += 1;
        match index_key(silence) {
            Some(key) => {
                self.by_equality
                    .entry(key)
                    .or_default()
                    .insert(silence.id.clone());
            }
            None => {
                self.unkeyed.insert(silence.id.clone());
            }
        }
    }

    pub(super) fn remove(&mut self, silence: &Silence) {
        self.version += 1;
        match index_key(silence) {
            Some(key) => {
                if let Some(ids) = self.by_equality.get_mut(&key) {
                    ids.remove(&silence.id);
                    if ids.is_empty() {
                        self.by_equality.remove(&key);
                    }
                }
            }
            None => {
                self.unkeyed.remove(&silence.id);
            }
        }
    }

    /// The ids of the silences active at `now` that match `labels`, sorted.
    pub(super) fn mutes(
        &mut self,
        silences: &BTreeMap<String, Silence>,
        labels: &LabelSet,
        now: Timestamp,
        max_cache_entries: usize,
    ) -> Vec<String> {
        let fingerprint = labels.fingerprint();
        let fresh = self
            .cache
            .get(&fingerprint)
            .is_some_and(|entry| entry.version == self.version && entry.computed_at <= now);
        if !fresh {
            let silence_ids = self.matching_unexpired(silences, labels, now);
            self.make_room(max_cache_entries);
            self.cache.insert(
                fingerprint,
                CacheEntry {
                    version: self.version,
                    computed_at: now,
                    silence_ids,
                },
            );
        }
        let Some(entry) = self.cache.get(&fingerprint) else {
            return Vec::new();
        };
        entry
            .silence_ids
            .iter()
            .filter(|id| {
                silences
                    .get(id.as_str())
                    .is_some_and(|silence| silence.state_at(now) == SilenceState::Active)
            })
            .cloned()
            .collect()
    }

    fn matching_unexpired(
        &self,
        silences: &BTreeMap<String, Silence>,
        labels: &LabelSet,
        now: Timestamp,
    ) -> Vec<String> {
        let keyed = labels.iter().filter_map(|(name, value)| {
            self.by_equality.get(&(name.to_string(), value.to_string()))
        });
        let candidates: BTreeSet<&String> = keyed.flatten().chain(&self.unkeyed).collect();
        candidates
            .into_iter()
            .filter_map(|id| silences.get(id.as_str()))
            .filter(|silence| silence.state_at(now) != SilenceState::Expired)
            .filter(|silence| silence.matches(labels))
            .map(|silence| silence.id.clone())
            .collect()
    }

    fn make_room(&mut self, max_cache_entries: usize) {
        if self.cache.len() < max_cache_entries {
            return;
        }
        let version = self.version;
        self.cache.retain(|_, entry| entry.version == version);
        if self.cache.len() >= max_cache_entries {
            self.cache.clear();
            self.cache_resets += 1;
        }
    }
}
