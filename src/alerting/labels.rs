//! Label sets and their fingerprints, identical to Alertmanager's for the same labels.

use serde::de::{Deserializer, MapAccess, Visitor};
use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt;

/// Labels of an alert (or annotations), sorted by name. Sorted storage makes the fingerprint and
/// every printed form deterministic.
///
/// Stored compactly, because the alert store holds one per alert and one more for its
/// annotations: every name and value back to back in one string, and where each label's name and
/// value end. A set takes two allocations whatever its size, where a map of strings takes two per
/// label plus its nodes. The representation is canonical (sorted, one value per name), so the
/// derived equality and hash are those of the labels.
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct LabelSet {
    /// `name0 value0 name1 value1 …` without separators, names in ascending order.
    text: Box<str>,
    /// Per label: the end of its name and the end of its value in `text`.
    ends: Box<[(u32, u32)]>,
}

/// A 64-bit hash identifying a label set; printed as 16 hex digits, as Alertmanager does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Fingerprint(pub u64);

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

impl Serialize for Fingerprint {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

const FNV_OFFSET_BASIS: u64 = 14_695_981_039_346_656_037;
const FNV_PRIME: u64 = 1_099_511_628_211;
/// Prometheus separates names and values with a byte that cannot occur in UTF-8.
const SEPARATOR: u8 = 0xff;

fn fnv1a(mut hash: u64, bytes: &[u8]) -> u64 {
    for byte in bytes {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(FNV_PRIME);
    }
    hash
}

/// Why a label set could not be built: its text does not fit the 32-bit offsets. Far beyond any
/// request body or store limit; only reachable by building huge sets in code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("label set too large: its names and values exceed 4 GiB")]
pub struct LabelSetTooLarge;

impl LabelSet {
    pub fn new() -> LabelSet {
        LabelSet::default()
    }

    /// Builds a set from pairs sorted by name with no repeated name.
    fn from_sorted<N: AsRef<str>, V: AsRef<str>>(
        pairs: &[(N, V)],
    ) -> Result<LabelSet, LabelSetTooLarge> {
        let total: usize = pairs
            .iter()
            .map(|(name, value)| name.as_ref().len() + value.as_ref().len())
            .sum();
        if u32::try_from(total).is_err() {
            return Err(LabelSetTooLarge);
        }
        let mut text = String::with_capacity(total);
        let mut ends = Vec::with_capacity(pairs.len());
        // Every offset is at most `total`, which fits in a u32 (checked above).
        let offset = |text: &String| u32::try_from(text.len()).unwrap_or(u32::MAX);
        for (name, value) in pairs {
            text.push_str(name.as_ref());
            let name_end = offset(&text);
            text.push_str(value.as_ref());
            ends.push((name_end, offset(&text)));
        }
        Ok(LabelSet {
            text: text.into_boxed_str(),
            ends: ends.into_boxed_slice(),
        })
    }

    /// Builds a set from pairs in any order; of repeated names the last value wins, as when
    /// inserting into a map one pair after the other.
    fn from_unsorted<N: AsRef<str>, V: AsRef<str>>(
        mut pairs: Vec<(N, V)>,
    ) -> Result<LabelSet, LabelSetTooLarge> {
        let sorted = pairs
            .windows(2)
            .all(|pair| pair[0].0.as_ref() < pair[1].0.as_ref());
        if !sorted {
            // Stable, so equal names keep their input order and the last one is the latest.
            pairs.sort_by(|a, b| a.0.as_ref().cmp(b.0.as_ref()));
            let mut deduped: Vec<(N, V)> = Vec::with_capacity(pairs.len());
            for pair in pairs {
                match deduped.last_mut() {
                    Some(last) if last.0.as_ref() == pair.0.as_ref() => *last = pair,
                    _ => deduped.push(pair),
                }
            }
            pairs = deduped;
        }
        LabelSet::from_sorted(&pairs)
    }

    /// The label at `index` (in name order).
    fn pair(&self, index: usize) -> (&str, &str) {
        let start = match index {
            0 => 0,
            _ => self.ends[index - 1].1 as usize,
        };
        let (name_end, value_end) = self.ends[index];
        (
            &self.text[start..name_end as usize],
            &self.text[name_end as usize..value_end as usize],
        )
    }

    fn position(&self, name: &str) -> Result<usize, usize> {
        // Names are sorted: binary search over label indexes.
        let (mut low, mut high) = (0, self.ends.len());
        while low < high {
            let middle = low + (high - low) / 2;
            match self.pair(middle).0.cmp(name) {
                Ordering::Less => low = middle + 1,
                Ordering::Greater => high = middle,
                Ordering::Equal => return Ok(middle),
            }
        }
        Err(low)
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.position(name).ok().map(|index| self.pair(index).1)
    }

    /// A missing label reads as the empty string, as everywhere in Prometheus.
    pub fn value(&self, name: &str) -> &str {
        self.get(name).unwrap_or("")
    }

    /// Sets `name` to `value`, replacing any value it had. Rebuilds the set: meant for building
    /// small sets, not for bulk input (collect pairs with `FromIterator` instead).
    ///
    /// # Panics
    /// If the set's names and values would exceed 4 GiB.
    pub fn insert(&mut self, name: impl Into<String>, value: impl Into<String>) {
        let (name, value) = (name.into(), value.into());
        let mut pairs: Vec<(&str, &str)> = self.iter().collect();
        match self.position(&name) {
            Ok(index) => pairs[index] = (&name, &value),
            Err(index) => pairs.insert(index, (&name, &value)),
        }
        let rebuilt = LabelSet::from_sorted(&pairs).expect("label sets stay far below 4 GiB");
        *self = rebuilt;
    }

    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// The labels in name order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> + Clone {
        (0..self.ends.len()).map(move |index| self.pair(index))
    }

    /// The labels as a map of owned strings, for consumers outside the alerting core.
    pub fn to_map(&self) -> BTreeMap<String, String> {
        self.iter()
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect()
    }

    /// Bytes of the names and values (what the store's `max_alert_bytes` bounds).
    pub fn text_len(&self) -> usize {
        self.text.len()
    }

    /// FNV-1a over `name 0xff value 0xff` for each label in name order: Prometheus's
    /// `LabelSet.Fingerprint`, so Tocsin's alert fingerprints equal Alertmanager's.
    pub fn fingerprint(&self) -> Fingerprint {
        let mut hash = FNV_OFFSET_BASIS;
        for (name, value) in self.iter() {
            hash = fnv1a(hash, name.as_bytes());
            hash = fnv1a(hash, &[SEPARATOR]);
            hash = fnv1a(hash, value.as_bytes());
            hash = fnv1a(hash, &[SEPARATOR]);
        }
        Fingerprint(hash)
    }

    /// The labels named in `names`, for group keys and `equal` in inhibition.
    pub fn subset<'a>(&self, names: impl IntoIterator<Item = &'a str>) -> LabelSet {
        let pairs: Vec<(&str, &str)> = names
            .into_iter()
            .filter_map(|name| self.position(name).ok().map(|index| self.pair(index)))
            .collect();
        // A subset is never larger than the set it is taken from.
        LabelSet::from_unsorted(pairs).unwrap_or_default()
    }
}

impl PartialOrd for LabelSet {
    fn partial_cmp(&self, other: &LabelSet) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for LabelSet {
    /// Pair by pair in name order, then the shorter set first: the order of a sorted map.
    fn cmp(&self, other: &LabelSet) -> Ordering {
        self.iter().cmp(other.iter())
    }
}

/// Prints as a map, the way the former map-backed set did.
struct AsMap<'a>(&'a LabelSet);

impl fmt::Debug for AsMap<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.0.iter()).finish()
    }
}

impl fmt::Debug for LabelSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("LabelSet").field(&AsMap(self)).finish()
    }
}

impl Serialize for LabelSet {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.len()))?;
        for (name, value) in self.iter() {
            map.serialize_entry(name, value)?;
        }
        map.end()
    }
}

/// A string borrowed from the input when it needs no unescaping, so that reading a label set
/// copies each name and value once, into the set's own buffer.
struct Text<'de>(Cow<'de, str>);

impl AsRef<str> for Text<'_> {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for Text<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Text<'de>, D::Error> {
        struct TextVisitor;
        impl<'de> Visitor<'de> for TextVisitor {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: serde::de::Error>(
                self,
                text: &'de str,
            ) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Borrowed(text)))
            }
            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Owned(text.to_string())))
            }
            fn visit_string<E: serde::de::Error>(self, text: String) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Owned(text)))
            }
        }
        deserializer.deserialize_str(TextVisitor)
    }
}

impl<'de> Deserialize<'de> for LabelSet {
    /// A map of strings, as a `BTreeMap<String, String>` reads it: of repeated keys the last
    /// value wins.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<LabelSet, D::Error> {
        struct SetVisitor;
        impl<'de> Visitor<'de> for SetVisitor {
            type Value = LabelSet;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<LabelSet, A::Error> {
                // Bounded by the request: the caller limits body sizes.
                let mut pairs: Vec<(Text<'de>, Text<'de>)> =
                    Vec::with_capacity(map.size_hint().unwrap_or(0).min(64));
                while let Some(pair) = map.next_entry()? {
                    pairs.push(pair);
                }
                LabelSet::from_unsorted(pairs).map_err(serde::de::Error::custom)
            }
        }
        deserializer.deserialize_map(SetVisitor)
    }
}

impl fmt::Display for LabelSet {
    /// `{a="1", b="2"}`, as Prometheus prints label sets (and Alertmanager's group keys use).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("{")?;
        for (index, (name, value)) in self.iter().enumerate() {
            if index > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{name}={value:?}")?;
        }
        f.write_str("}")
    }
}

impl<const N: usize> From<[(&str, &str); N]> for LabelSet {
    /// # Panics
    /// If the names and values exceed 4 GiB.
    fn from(pairs: [(&str, &str); N]) -> LabelSet {
        LabelSet::from_unsorted(pairs.to_vec()).expect("label sets stay far below 4 GiB")
    }
}

impl From<&BTreeMap<String, String>> for LabelSet {
    /// # Panics
    /// If the names and values exceed 4 GiB.
    fn from(map: &BTreeMap<String, String>) -> LabelSet {
        let pairs: Vec<(&String, &String)> = map.iter().collect();
        LabelSet::from_sorted(&pairs).expect("label sets stay far below 4 GiB")
    }
}

impl<N: AsRef<str>, V: AsRef<str>> FromIterator<(N, V)> for LabelSet {
    /// Of repeated names the last value wins.
    ///
    /// # Panics
    /// If the names and values exceed 4 GiB.
    fn from_iter<I: IntoIterator<Item = (N, V)>>(pairs: I) -> LabelSet {
        LabelSet::from_unsorted(pairs.into_iter().collect())
            .expect("label sets stay far below 4 GiB")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The test vectors of Prometheus's `labelSetToFingerprint` (prometheus/common).
    #[test]
    fn fingerprints_match_prometheus() {
        assert_eq!(
            LabelSet::new().fingerprint(),
            Fingerprint(14_695_981_039_346_656_037)
        );
        let set = LabelSet::from([("name", "garland, briggs"), ("fear", "love is not enough")]);
        assert_eq!(set.fingerprint(), Fingerprint(5_799_056_148_416_392_346));
    }

    #[test]
    fn display_is_sorted_and_quoted() {
        let set = LabelSet::from([("b", "2"), ("a", "x\"y")]);
        assert_eq!(set.to_string(), "{a=\"x\\\"y\", b=\"2\"}");
    }

    #[test]
    fn compact_sets_behave_like_sorted_maps() {
        let mut set = LabelSet::new();
        set.insert("b", "2");
        set.insert("a", "1");
        set.insert("c", "");
        set.insert("b", "two");
        let map: BTreeMap<String, String> = [("a", "1"), ("b", "two"), ("c", "")]
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect();
        assert_eq!(set.to_map(), map);
        assert_eq!(LabelSet::from(&map), set);
        assert_eq!(set.get("b"), Some("two"));
        assert_eq!(set.get("c"), Some(""));
        assert_eq!(set.get("d"), None);
        assert_eq!(set.value("d"), "");
        assert_eq!(
            set.subset(["c", "a", "zz", "a"]),
            LabelSet::from([("a", "1"), ("c", "")])
        );
        assert_eq!(
            format!("{set:?}"),
            r#"LabelSet({"a": "1", "b": "two", "c": ""})"#
        );
        assert_eq!(
            serde_json::to_string(&set).unwrap(),
            serde_json::to_string(&map).unwrap()
        );
    }

    #[test]
    fn reading_json_keeps_the_last_of_repeated_names() {
        let json = r#"{"b":"2","a":"x\"y","b":"3","\u00e9":"\n"}"#;
        let set: LabelSet = serde_json::from_str(json).unwrap();
        let map: BTreeMap<String, String> = serde_json::from_str(json).unwrap();
        assert_eq!(set.to_map(), map);
        assert!(serde_json::from_str::<LabelSet>(r#"{"a":1}"#).is_err());
        assert!(serde_json::from_str::<LabelSet>(r#"["a"]"#).is_err());
    }

    fn map_strategy() -> impl proptest::strategy::Strategy<Value = Vec<(String, String)>> {
        proptest::collection::vec(("[a-d]{0,2}", "[a-c\u{e9}]{0,3}"), 0..8)
    }

    proptest::proptest! {
        /// The compact set orders, compares, prints and fingerprints as a sorted map would.
        #[test]
        fn agrees_with_a_sorted_map(a in map_strategy(), b in map_strategy()) {
            let map_a: BTreeMap<String, String> = a.iter().cloned().collect();
            let map_b: BTreeMap<String, String> = b.iter().cloned().collect();
            let set_a: LabelSet = a.iter().cloned().collect();
            let set_b: LabelSet = b.iter().cloned().collect();
            proptest::prop_assert_eq!(set_a.to_map(), map_a.clone());
            proptest::prop_assert_eq!(set_a.cmp(&set_b), map_a.cmp(&map_b));
            proptest::prop_assert_eq!(set_a == set_b, map_a == map_b);
            let mut inserted = LabelSet::new();
            for (name, value) in &a {
                inserted.insert(name.as_str(), value.as_str());
            }
            proptest::prop_assert_eq!(&inserted, &set_a);
            for name in map_a.keys().chain(map_b.keys()) {
                proptest::prop_assert_eq!(set_a.get(name), map_a.get(name).map(String::as_str));
            }
        }
    }
}
