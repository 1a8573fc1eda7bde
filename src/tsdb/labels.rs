//! Label sets and label matchers as the TSDB sees them.

use regex::Regex;
use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

/// A series' identity: label pairs sorted by name, names unique, no empty values (an empty value
/// means "no such label", as in Prometheus). The order compares pair by pair, then by length:
/// Prometheus's `labels.Compare`, the order of series in a block's index.
///
/// All names and values live in one shared allocation (Prometheus's "stringlabels" layout):
/// the pair count, then per pair the name's length, the name, the value's length, the value.
/// Lengths are written 6 bits per byte, low bits first, with bit 6 set on every byte but the
/// last, so every length byte is ASCII and the whole buffer stays a valid `str` (slicing it
/// needs no re-validation and no `unsafe`). A clone is a reference-count increment, which is
/// how the head's series and its label → series map share one copy.
#[derive(Clone)]
pub struct Labels(Arc<str>);

/// Bit 6 of a length byte: more bytes of the same length follow.
const LENGTH_CONTINUES: u8 = 0x40;
/// The six data bits of a length byte.
const LENGTH_BITS: u8 = 0x3F;

fn put_length(out: &mut String, mut length: usize) {
    loop {
        let low = (length & usize::from(LENGTH_BITS)) as u8;
        length >>= 6;
        if length == 0 {
            out.push(char::from(low));
            return;
        }
        out.push(char::from(low | LENGTH_CONTINUES));
    }
}

/// Reads a length at `*position`, advancing it; `None` past the end (never for buffers built
/// here).
fn read_length(bytes: &[u8], position: &mut usize) -> Option<usize> {
    let mut length = 0usize;
    let mut shift = 0u32;
    loop {
        let byte = *bytes.get(*position)?;
        *position += 1;
        length |= usize::from(byte & LENGTH_BITS).checked_shl(shift)?;
        if byte & LENGTH_CONTINUES == 0 {
            return Some(length);
        }
        shift += 6;
    }
}

impl Default for Labels {
    fn default() -> Self {
        Labels::from_sorted(std::iter::empty::<(&str, &str)>())
    }
}

impl Labels {
    /// Builds a label set from pairs in any order: sorted, empty values dropped, and for a
    /// repeated name the last pair wins.
    pub fn new<N: Into<String>, V: Into<String>>(pairs: impl IntoIterator<Item = (N, V)>) -> Self {
        let mut labels: Vec<(String, String)> = pairs
            .into_iter()
            .map(|(name, value)| (name.into(), value.into()))
            .collect();
        // A stable sort keeps input order among equal names, so keeping the last one of each
        // run implements "last wins".
        labels.sort_by(|a, b| a.0.cmp(&b.0));
        let mut deduplicated: Vec<(String, String)> = Vec::with_capacity(labels.len());
        for label in labels {
            match deduplicated.last_mut() {
                Some(last) if last.0 == label.0 => *last = label,
                _ => deduplicated.push(label),
            }
        }
        deduplicated.retain(|label| !label.1.is_empty());
        Labels::from_sorted(deduplicated.iter().map(|(n, v)| (n.as_str(), v.as_str())))
    }

    /// Labels already sorted by name, names unique, values non-empty (from an index or a
    /// builder that checked); checked in debug builds.
    pub(crate) fn from_sorted<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        let pairs: Vec<(&str, &str)> = pairs.into_iter().collect();
        Labels::from_sorted_slice(&pairs)
    }

    /// Labels from pairs that may come from outside (a WAL record): taken as they are when
    /// already canonical (sorted by name, names unique, values non-empty: what Prometheus
    /// and Tocsin write), which costs no per-pair allocation; otherwise made canonical as
    /// [`Labels::new`] does.
    pub(crate) fn from_pairs(pairs: &[(&str, &str)]) -> Self {
        let canonical = pairs.windows(2).all(|pair| pair[0].0 < pair[1].0)
            && pairs.iter().all(|(_, value)| !value.is_empty());
        if canonical {
            Labels::from_sorted_slice(pairs)
        } else {
            Labels::new(pairs.iter().copied())
        }
    }

    /// Labels from pairs sorted by name, names unique, values non-empty (checked in debug
    /// builds).
    pub(crate) fn from_sorted_slice(pairs: &[(&str, &str)]) -> Self {
        debug_assert!(pairs.windows(2).all(|pair| pair[0].0 < pair[1].0));
        let text_bytes: usize = pairs.iter().map(|(n, v)| n.len() + v.len() + 4).sum();
        let mut buffer = String::with_capacity(text_bytes + 2);
        put_length(&mut buffer, pairs.len());
        for (name, value) in pairs {
            put_length(&mut buffer, name.len());
            buffer.push_str(name);
            put_length(&mut buffer, value.len());
            buffer.push_str(value);
        }
        Labels(Arc::from(buffer))
    }

    /// The value of `name`, if present.
    pub fn get(&self, name: &str) -> Option<&str> {
        for (label_name, value) in self.iter() {
            match label_name.cmp(name) {
                Ordering::Less => continue,
                Ordering::Equal => return Some(value),
                Ordering::Greater => return None,
            }
        }
        None
    }

    /// The pairs `(name, value)` in name order.
    pub fn iter(&self) -> LabelsIter<'_> {
        let mut position = 0;
        let remaining = read_length(self.0.as_bytes(), &mut position).unwrap_or(0);
        LabelsIter {
            text: &self.0,
            position,
            remaining,
        }
    }

    /// Number of pairs.
    pub fn len(&self) -> usize {
        read_length(self.0.as_bytes(), &mut 0).unwrap_or(0)
    }

    /// Whether there are no pairs.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes of the shared buffer (for memory accounting).
    pub fn encoded_len(&self) -> usize {
        self.0.len()
    }

    /// The address of the shared buffer: equal for clones (the query engine's per-query
    /// memos recognise label sets by it).
    pub(crate) fn address(&self) -> usize {
        Arc::as_ptr(&self.0).cast::<u8>() as usize
    }

    /// The canonical encoding (see the type's documentation): equal label sets, and only
    /// they, have equal encodings, so hashing it in one pass identifies the set (the head's
    /// label index does).
    pub(crate) fn encoded(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

/// The pairs of a [`Labels`], in name order.
#[derive(Debug, Clone)]
pub struct LabelsIter<'a> {
    text: &'a str,
    position: usize,
    remaining: usize,
}

impl<'a> LabelsIter<'a> {
    fn string(&mut self) -> Option<&'a str> {
        let length = read_length(self.text.as_bytes(), &mut self.position)?;
        let end = self.position.checked_add(length)?;
        // Lengths are ASCII bytes and strings were whole `str`s: always char boundaries.
        let text = self.text.get(self.position..end)?;
        self.position = end;
        Some(text)
    }
}

impl<'a> Iterator for LabelsIter<'a> {
    type Item = (&'a str, &'a str);

    fn next(&mut self) -> Option<(&'a str, &'a str)> {
        if self.remaining == 0 {
            return None;
        }
        self.remaining -= 1;
        let name = self.string()?;
        let value = self.string()?;
        Some((name, value))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining, Some(self.remaining))
    }
}

impl<'a> IntoIterator for &'a Labels {
    type Item = (&'a str, &'a str);
    type IntoIter = LabelsIter<'a>;

    fn into_iter(self) -> LabelsIter<'a> {
        self.iter()
    }
}

impl PartialEq for Labels {
    /// The encoding is canonical: equal label sets have equal buffers.
    fn eq(&self, other: &Labels) -> bool {
        Arc::ptr_eq(&self.0, &other.0) || self.0 == other.0
    }
}

impl Eq for Labels {}

impl Hash for Labels {
    /// Feeds the hasher what hashing a `Vec` of `(String, String)` pairs feeds it, so hashes
    /// do not change with the representation.
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_usize(self.len());
        for (name, value) in self.iter() {
            name.hash(state);
            value.hash(state);
        }
    }
}

impl PartialOrd for Labels {
    fn partial_cmp(&self, other: &Labels) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Labels {
    /// Pair by pair (name, then value), then the shorter set first: `labels.Compare`.
    fn cmp(&self, other: &Labels) -> Ordering {
        if Arc::ptr_eq(&self.0, &other.0) {
            return Ordering::Equal;
        }
        self.iter().cmp(other.iter())
    }
}

impl fmt::Debug for Labels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Labels{self}")
    }
}

impl fmt::Display for Labels {
    /// Prometheus's text form: `{a="1", b="2"}`.
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

/// The four matcher kinds of PromQL selectors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchKind {
    /// `=`
    Equal,
    /// `!=`
    NotEqual,
    /// `=~` (fully anchored)
    RegexMatch,
    /// `!~` (fully anchored)
    RegexNoMatch,
}

/// The largest compiled regex a matcher may build.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// A label matcher. A series without the label is matched as if its value were `""`.
#[derive(Debug, Clone)]
pub struct Matcher {
    /// The label name.
    pub name: String,
    /// The matcher kind.
    pub kind: MatchKind,
    /// The value or the regex as written.
    pub value: String,
    regex: Option<Regex>,
}

/// A matcher's regex did not compile.
#[derive(Debug, thiserror::Error)]
#[error("invalid regex {pattern:?} for label {name:?}: {source}")]
pub struct MatcherError {
    name: String,
    pattern: String,
    #[source]
    source: regex::Error,
}

impl Matcher {
    /// A matcher; regexes are anchored on both ends as Prometheus anchors them.
    pub fn new(
        kind: MatchKind,
        name: impl Into<String>,
        value: impl Into<String>,
    ) -> Result<Matcher, MatcherError> {
        let name = name.into();
        let value = value.into();
        let regex = match kind {
            MatchKind::RegexMatch | MatchKind::RegexNoMatch => Some(
                regex::RegexBuilder::new(&format!("^(?:{value})$"))
                    .size_limit(REGEX_SIZE_LIMIT)
                    .build()
                    .map_err(|source| MatcherError {
                        name: name.clone(),
                        pattern: value.clone(),
                        source,
                    })?,
            ),
            MatchKind::Equal | MatchKind::NotEqual => None,
        };
        Ok(Matcher {
            name,
            kind,
            value,
            regex,
        })
    }

    /// `name="value"`, which cannot fail.
    pub fn equal(name: impl Into<String>, value: impl Into<String>) -> Matcher {
        Matcher {
            name: name.into(),
            kind: MatchKind::Equal,
            value: value.into(),
            regex: None,
        }
    }

    /// Whether a label value (`""` for an absent label) matches.
    pub fn matches(&self, value: &str) -> bool {
        match (self.kind, &self.regex) {
            (MatchKind::Equal, _) => value == self.value,
            (MatchKind::NotEqual, _) => value != self.value,
            (MatchKind::RegexMatch, Some(regex)) => regex.is_match(value),
            (MatchKind::RegexNoMatch, Some(regex)) => !regex.is_match(value),
            // Regex kinds always carry their regex (constructor invariant).
            (MatchKind::RegexMatch | MatchKind::RegexNoMatch, None) => false,
        }
    }

    /// Whether a whole label set matches.
    pub fn matches_labels(&self, labels: &Labels) -> bool {
        self.matches(labels.get(&self.name).unwrap_or(""))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn labels_are_sorted_deduplicated_and_drop_empty_values() {
        let labels = Labels::new([("b", "2"), ("a", "1"), ("b", "3"), ("c", "")]);
        assert_eq!(labels.to_string(), r#"{a="1", b="3"}"#);
        assert_eq!(labels.get("b"), Some("3"));
        assert_eq!(labels.get("c"), None);
    }

    #[test]
    fn ordering_is_pairwise_then_length() {
        let short = Labels::new([("a", "1")]);
        let long = Labels::new([("a", "1"), ("b", "1")]);
        let other = Labels::new([("a", "2")]);
        assert!(short < long);
        assert!(long < other);
    }

    #[test]
    fn long_strings_and_empty_sets_round_trip() {
        let long = "x".repeat(70_000);
        let labels = Labels::new([("a", long.as_str()), ("ü", "ß")]);
        assert_eq!(labels.get("a"), Some(long.as_str()));
        assert_eq!(labels.get("ü"), Some("ß"));
        assert_eq!(labels.len(), 2);
        assert!(Labels::default().is_empty());
        assert_eq!(
            Labels::default(),
            Labels::new(Vec::<(String, String)>::new())
        );
    }

    /// The representation before the shared buffer, built by its rules (sorted, unique names,
    /// last wins, no empty values): the reference for order, equality and hashing.
    fn reference(pairs: &[(String, String)]) -> Vec<(String, String)> {
        let mut by_name: std::collections::BTreeMap<String, String> = Default::default();
        for (name, value) in pairs {
            by_name.insert(name.clone(), value.clone());
        }
        by_name.retain(|_, value| !value.is_empty());
        by_name.into_iter().collect()
    }

    fn hash_of(value: &impl Hash) -> u64 {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        value.hash(&mut hasher);
        hasher.finish()
    }

    fn pairs() -> impl Strategy<Value = Vec<(String, String)>> {
        // Few distinct names and values, so equal prefixes and equal sets are frequent.
        let text = prop_oneof![Just(String::new()), "[ab]{1,2}", "[a-zé]{0,8}", ".{0,80}",];
        proptest::collection::vec((text.clone(), text), 0..6)
    }

    proptest! {
        #[test]
        fn order_hash_and_equality_match_pairs_of_strings(a in pairs(), b in pairs()) {
            let (new_a, new_b) = (Labels::new(a.clone()), Labels::new(b.clone()));
            let (old_a, old_b) = (reference(&a), reference(&b));
            prop_assert_eq!(new_a.cmp(&new_b), old_a.cmp(&old_b));
            prop_assert_eq!(new_a == new_b, old_a == old_b);
            prop_assert_eq!(hash_of(&new_a), hash_of(&old_a));
            prop_assert_eq!(new_a.len(), old_a.len());
            for (name, value) in &old_a {
                prop_assert_eq!(new_a.get(name), Some(value.as_str()));
            }
            let iterated: Vec<(String, String)> =
                new_a.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect();
            prop_assert_eq!(iterated, old_a);
        }
    }

    proptest! {
        #[test]
        fn from_pairs_equals_new(a in pairs()) {
            let borrowed: Vec<(&str, &str)> =
                a.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
            prop_assert_eq!(Labels::from_pairs(&borrowed), Labels::new(a.clone()));
            // Canonical input takes the copy-free path.
            let canonical = reference(&a);
            let borrowed: Vec<(&str, &str)> =
                canonical.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
            prop_assert_eq!(Labels::from_pairs(&borrowed), Labels::new(canonical.clone()));
        }
    }

    #[test]
    fn regexes_are_anchored() {
        let matcher = Matcher::new(MatchKind::RegexMatch, "job", "api|web").unwrap();
        assert!(matcher.matches("api"));
        assert!(!matcher.matches("xapi"));
        assert!(!matcher.matches("apix"));
        let not = Matcher::new(MatchKind::RegexNoMatch, "job", "a.*").unwrap();
        assert!(not.matches(""));
        assert!(!not.matches("abc"));
        assert!(Matcher::new(MatchKind::RegexMatch, "job", "(").is_err());
    }
}
