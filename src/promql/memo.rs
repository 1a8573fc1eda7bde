//! Per-query memos keyed by a label set's identity.
//!
//! A range query evaluates its expression at every step, and every step hands the same series
//! around with the same [`Labels`] (a clone is a reference-count bump, so the allocation is the
//! same). Hashing or re-deriving label sets at each step costs far more than the arithmetic, so
//! the results of label work (a group key, a series slot, a label set without its name) are
//! remembered by the address of the shared label allocation. The memo keeps a clone of every
//! label set it has seen: the allocation therefore stays alive, its address cannot be reused by
//! another label set, and its contents cannot change (a write copies on a shared allocation).

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use super::value::{Labels, METRIC_NAME};

/// Hashes one `usize` (an address) by a multiplication: addresses are distinct and the map
/// only needs them spread over its buckets, not protection against chosen keys.
#[derive(Default)]
pub(crate) struct AddressHasher(u64);

impl Hasher for AddressHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }

    fn write_usize(&mut self, n: usize) {
        self.0 = (self.0 ^ n as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        self.0 ^= self.0 >> 29;
    }

    fn write_u32(&mut self, n: u32) {
        self.write_usize(n as usize);
    }

    fn write_u64(&mut self, n: u64) {
        self.write_usize(n as usize);
    }
}

pub(crate) type AddressMap<V> = HashMap<usize, V, BuildHasherDefault<AddressHasher>>;

/// Bound on remembered label sets per memo: past it the address memo is emptied (its
/// derived tables stay), so an expression that makes new label sets at every step cannot grow
/// the memo with the query's length.
const MAX_REMEMBERED: usize = 1 << 20;

/// Dense ids for distinct label sets, found by address first and by value on a miss.
#[derive(Default)]
pub(crate) struct LabelsIndex {
    by_address: AddressMap<(Labels, u32)>,
    /// The same, for the label set with `__name__` removed.
    by_address_without_name: AddressMap<(Labels, u32)>,
    by_value: HashMap<Labels, u32>,
    labels: Vec<Labels>,
}

impl LabelsIndex {
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// The label set with id `id`.
    pub fn labels(&self, id: u32) -> &Labels {
        &self.labels[id as usize]
    }

    fn by_value(&mut self, labels: &Labels) -> u32 {
        if let Some(&id) = self.by_value.get(labels) {
            return id;
        }
        let id = u32::try_from(self.labels.len()).unwrap_or(u32::MAX);
        self.labels.push(labels.clone());
        self.by_value.insert(labels.clone(), id);
        id
    }

    /// The id of `labels`.
    pub fn id(&mut self, labels: &Labels) -> u32 {
        if let Some(&(_, id)) = self.by_address.get(&labels.address()) {
            return id;
        }
        let id = self.by_value(labels);
        if self.by_address.len() >= MAX_REMEMBERED {
            self.by_address.clear();
        }
        self.by_address
            .insert(labels.address(), (labels.clone(), id));
        id
    }

    /// The id of `labels` without `__name__` (Prometheus's delayed name removal).
    pub fn id_without_name(&mut self, labels: &Labels) -> u32 {
        if let Some(&(_, id)) = self.by_address_without_name.get(&labels.address()) {
            return id;
        }
        let id = if labels.has(METRIC_NAME) {
            self.by_value(&labels.without_metric_name())
        } else {
            self.id(labels)
        };
        if self.by_address_without_name.len() >= MAX_REMEMBERED {
            self.by_address_without_name.clear();
        }
        self.by_address_without_name
            .insert(labels.address(), (labels.clone(), id));
        id
    }
}

/// A value derived from a label set, computed once per label set.
pub(crate) struct LabelsMemo<V> {
    by_address: AddressMap<(Labels, V)>,
}

impl<V: Clone> Default for LabelsMemo<V> {
    fn default() -> Self {
        LabelsMemo {
            by_address: AddressMap::default(),
        }
    }
}

impl<V: Clone> LabelsMemo<V> {
    pub fn get_or(&mut self, labels: &Labels, derive: impl FnOnce(&Labels) -> V) -> V {
        if let Some((_, v)) = self.by_address.get(&labels.address()) {
            return v.clone();
        }
        let v = derive(labels);
        if self.by_address.len() >= MAX_REMEMBERED {
            self.by_address.clear();
        }
        self.by_address
            .insert(labels.address(), (labels.clone(), v.clone()));
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_label_sets_share_an_id_whatever_their_allocation() {
        let mut index = LabelsIndex::default();
        let a = Labels::from_pairs([("__name__", "x"), ("job", "a")]);
        let a_again = Labels::from_pairs([("__name__", "x"), ("job", "a")]);
        let b = Labels::from_pairs([("job", "a")]);
        let ia = index.id(&a);
        assert_eq!(index.id(&a.clone()), ia);
        assert_eq!(index.id(&a_again), ia);
        let ib = index.id(&b);
        assert_ne!(ia, ib);
        assert_eq!(index.id_without_name(&a), ib);
        assert_eq!(index.id_without_name(&b), ib);
        assert_eq!(index.labels(ib), &b);
        assert_eq!(index.len(), 2);
    }

    #[test]
    fn a_memo_derives_once_per_label_set() {
        let mut memo: LabelsMemo<usize> = LabelsMemo::default();
        let a = Labels::from_pairs([("job", "a")]);
        let mut calls = 0;
        for _ in 0..3 {
            let v = memo.get_or(&a, |l| {
                calls += 1;
                l.len()
            });
            assert_eq!(v, 1);
        }
        assert_eq!(calls, 1);
    }
}
