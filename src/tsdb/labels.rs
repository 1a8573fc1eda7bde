//! Label sets and label matchers as the TSDB sees them.

use regex::Regex;
use std::fmt;

/// One label pair.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Label {
    /// The label name.
    pub name: String,
    /// The label value.
    pub value: String,
}

/// A series' identity: label pairs sorted by name, names unique, no empty values (an empty value
/// means "no such label", as in Prometheus). The derived order compares pair by pair, then by
/// length: Prometheus's `labels.Compare`, the order of series in a block's index.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Labels(Vec<Label>);

impl Labels {
    /// Builds a label set from pairs in any order: sorted, empty values dropped, and for a
    /// repeated name the last pair wins.
    pub fn new<N: Into<String>, V: Into<String>>(pairs: impl IntoIterator<Item = (N, V)>) -> Self {
        let mut labels: Vec<Label> = pairs
            .into_iter()
            .map(|(name, value)| Label {
                name: name.into(),
                value: value.into(),
            })
            .collect();
        // A stable sort keeps input order among equal names, so keeping the last one of each
        // run implements "last wins".
        labels.sort_by(|a, b| a.name.cmp(&b.name));
        let mut deduplicated: Vec<Label> = Vec::with_capacity(labels.len());
        for label in labels {
            match deduplicated.last_mut() {
                Some(last) if last.name == label.name => *last = label,
                _ => deduplicated.push(label),
            }
        }
        deduplicated.retain(|label| !label.value.is_empty());
        Labels(deduplicated)
    }

    /// Labels already sorted and deduplicated (from an index we verified); checked in debug.
    pub(crate) fn from_sorted(labels: Vec<Label>) -> Self {
        debug_assert!(labels.windows(2).all(|pair| pair[0].name < pair[1].name));
        Labels(labels)
    }

    /// The value of `name`, if present.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .binary_search_by(|label| label.name.as_str().cmp(name))
            .ok()
            .map(|index| self.0[index].value.as_str())
    }

    /// The pairs in name order.
    pub fn iter(&self) -> impl Iterator<Item = &Label> {
        self.0.iter()
    }

    /// Number of pairs.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are no pairs.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for Labels {
    /// Prometheus's text form: `{a="1", b="2"}`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("{")?;
        for (index, label) in self.0.iter().enumerate() {
            if index > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{}={:?}", label.name, label.value)?;
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
