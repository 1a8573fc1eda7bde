//! The interface the engine reads series through.
//!
//! The engine asks for every series matching a selector within a closed time interval, once per
//! selector and query (not once per step), and then walks the returned samples itself. The TSDB
//! implements [`Queryable`] by looking up postings for the matchers and decoding the chunks that
//! overlap the interval; [`crate::promql::memory::MemoryStorage`] is the in-memory implementation
//! used by tests and the conformance runner.

use regex::Regex;

use super::value::{Labels, Point};

/// How a [`Matcher`] compares a label value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchKind {
    Equal,
    NotEqual,
    Regex,
    NotRegex,
}

/// A label matcher. Regexes are fully anchored and `.` matches newlines, as in Prometheus 3.
/// A label that is absent matches as the empty string.
#[derive(Debug, Clone)]
pub struct Matcher {
    pub name: String,
    pub kind: MatchKind,
    pub value: String,
    regex: Option<Regex>,
}

/// Bound on compiled regex size, so a query cannot make the engine allocate without limit.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

impl Matcher {
    pub fn new(kind: MatchKind, name: &str, value: &str) -> Result<Matcher, StorageError> {
        let regex = match kind {
            MatchKind::Regex | MatchKind::NotRegex => Some(
                regex::RegexBuilder::new(&format!("^(?s:{value})$"))
                    .size_limit(REGEX_SIZE_LIMIT)
                    .build()
                    .map_err(|e| {
                        StorageError::InvalidMatcher(format!("invalid regex {value:?}: {e}"))
                    })?,
            ),
            _ => None,
        };
        Ok(Matcher {
            name: name.to_string(),
            kind,
            value: value.to_string(),
            regex,
        })
    }

    pub fn matches(&self, value: &str) -> bool {
        match (self.kind, &self.regex) {
            (MatchKind::Equal, _) => self.value == value,
            (MatchKind::NotEqual, _) => self.value != value,
            (MatchKind::Regex, Some(re)) => re.is_match(value),
            (MatchKind::NotRegex, Some(re)) => !re.is_match(value),
            (_, None) => false,
        }
    }

    pub fn matches_labels(&self, labels: &Labels) -> bool {
        self.matches(labels.get(&self.name))
    }
}

/// One series as returned by [`Queryable::select`]: sorted labels and samples sorted by time,
/// all within the requested interval. Staleness markers (see [`super::value::STALE_NAN_BITS`])
/// are returned as samples; the engine interprets them.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesData {
    pub labels: Labels,
    pub samples: Vec<Point>,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StorageError {
    #[error("{0}")]
    InvalidMatcher(String),
    #[error("storage: {0}")]
    Internal(String),
}

/// Read access to series.
pub trait Queryable {
    /// Every series that matches all `matchers`, with its samples whose timestamps lie in
    /// `[mint_ms, maxt_ms]`. A series without samples in the interval may be left out.
    /// Series are returned sorted by labels.
    fn select(
        &self,
        matchers: &[Matcher],
        mint_ms: i64,
        maxt_ms: i64,
    ) -> Result<Vec<SeriesData>, StorageError>;

    /// Label names of the series matching `matchers` (all series when empty), sorted.
    fn label_names(&self, matchers: &[Matcher]) -> Result<Vec<String>, StorageError>;

    /// Values of label `name` over the series matching `matchers`, sorted.
    fn label_values(&self, name: &str, matchers: &[Matcher]) -> Result<Vec<String>, StorageError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regex_is_anchored_and_dot_matches_newline() {
        let m = Matcher::new(MatchKind::Regex, "a", "b.c").unwrap();
        assert!(m.matches("b\nc"));
        assert!(!m.matches("xb_c"));
        let m = Matcher::new(MatchKind::NotRegex, "a", "").unwrap();
        assert!(!m.matches(""));
    }
}
