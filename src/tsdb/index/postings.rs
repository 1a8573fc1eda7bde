//! Postings lists (sorted series ids) and selecting them with label matchers. One
//! implementation serves the head and every block, through [`PostingsSource`].

use crate::tsdb::error::TsdbError;
use crate::tsdb::labels::{MatchKind, Matcher};

/// What matcher evaluation needs from an index.
pub trait PostingsSource {
    /// Values of a label name, sorted (empty for an unknown name).
    fn label_values(&self, name: &str) -> Result<Vec<String>, TsdbError>;
    /// Series ids with `name="value"`, sorted.
    fn postings(&self, name: &str, value: &str) -> Result<Vec<u64>, TsdbError>;
    /// All series ids, sorted.
    fn all_postings(&self) -> Result<Vec<u64>, TsdbError>;

    /// The postings lists of the values of `name` that `wanted` accepts, in value order. The
    /// default lists the values, then reads each wanted one's postings; an index can walk its
    /// own table without copying every value.
    fn postings_for_values(
        &self,
        name: &str,
        wanted: &mut dyn FnMut(&str) -> bool,
    ) -> Result<Vec<Vec<u64>>, TsdbError> {
        let mut lists = Vec::new();
        for value in self.label_values(name)? {
            if wanted(&value) {
                lists.push(self.postings(name, &value)?);
            }
        }
        Ok(lists)
    }
}

/// The series with a value of `matcher`'s label for which `wanted(matches)` holds, as one
/// sorted list: an equality needs no walk over the label's values.
fn postings_where(
    source: &dyn PostingsSource,
    matcher: &Matcher,
    wanted: bool,
) -> Result<Vec<u64>, TsdbError> {
    // `name="v"` selects, and `name!="v"` excludes, exactly the postings of `v` (v non-empty:
    // the empty value has no postings list of its own).
    let exact = match matcher.kind {
        MatchKind::Equal => wanted,
        MatchKind::NotEqual => !wanted,
        MatchKind::RegexMatch | MatchKind::RegexNoMatch => false,
    };
    if exact && !matcher.value.is_empty() {
        return source.postings(&matcher.name, &matcher.value);
    }
    let lists =
        source.postings_for_values(&matcher.name, &mut |value| matcher.matches(value) == wanted)?;
    Ok(union_all(lists))
}

/// The sorted union of sorted lists, without the quadratic cost of folding them pairwise.
pub fn union_all(mut lists: Vec<Vec<u64>>) -> Vec<u64> {
    match lists.len() {
        0 => Vec::new(),
        1 => lists.pop().unwrap_or_default(),
        2 => union(&lists[0], &lists[1]),
        _ => {
            let mut all: Vec<u64> = Vec::with_capacity(lists.iter().map(Vec::len).sum());
            for list in &lists {
                all.extend_from_slice(list);
            }
            all.sort_unstable();
            all.dedup();
            all
        }
    }
}

/// Series ids matching every matcher, sorted, with Prometheus's semantics: a series lacking a
/// label has the value `""` for it, so `x=""`, `x!="a"`, `x=~"a|"` and `x!~"a"` also select
/// series without `x`. No matchers select nothing (a query must say what it wants).
pub fn postings_for_matchers(
    source: &dyn PostingsSource,
    matchers: &[Matcher],
) -> Result<Vec<u64>, TsdbError> {
    if matchers.is_empty() {
        return Ok(Vec::new());
    }
    // Evaluate the selective (non-empty-matching) matchers first: intersecting a short list
    // keeps every later step short.
    let mut ordered: Vec<&Matcher> = matchers.iter().collect();
    ordered.sort_by_key(|matcher| matcher.matches(""));
    let mut result: Option<Vec<u64>> = None;
    for matcher in ordered {
        if result.as_ref().is_some_and(Vec::is_empty) {
            break;
        }
        if matcher.matches("") {
            // Everything except the series whose value does not match.
            let excluded = postings_where(source, matcher, false)?;
            let base = match result.take() {
                Some(current) => current,
                None => source.all_postings()?,
            };
            result = Some(subtract(&base, &excluded));
        } else {
            let selected = postings_where(source, matcher, true)?;
            result = Some(match result.take() {
                Some(current) => intersect(&current, &selected),
                None => selected,
            });
        }
    }
    Ok(result.unwrap_or_default())
}

/// Sorted union of two sorted lists.
pub fn union(a: &[u64], b: &[u64]) -> Vec<u64> {
    let mut out = Vec::with_capacity(a.len() + b.len());
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => {
                out.push(a[i]);
                i += 1;
            }
            std::cmp::Ordering::Greater => {
                out.push(b[j]);
                j += 1;
            }
            std::cmp::Ordering::Equal => {
                out.push(a[i]);
                i += 1;
                j += 1;
            }
        }
    }
    out.extend_from_slice(&a[i..]);
    out.extend_from_slice(&b[j..]);
    out
}

/// Sorted intersection of two sorted lists.
pub fn intersect(a: &[u64], b: &[u64]) -> Vec<u64> {
    let mut out = Vec::new();
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                out.push(a[i]);
                i += 1;
                j += 1;
            }
        }
    }
    out
}

/// `a` without the elements of `b` (both sorted).
pub fn subtract(a: &[u64], b: &[u64]) -> Vec<u64> {
    let mut out = Vec::with_capacity(a.len());
    let mut j = 0;
    for &value in a {
        while j < b.len() && b[j] < value {
            j += 1;
        }
        if j >= b.len() || b[j] != value {
            out.push(value);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    fn set(values: &BTreeSet<u64>) -> Vec<u64> {
        values.iter().copied().collect()
    }

    proptest! {
        #[test]
        fn set_operations_match_btreeset(
            a in proptest::collection::btree_set(0u64..64, 0..40),
            b in proptest::collection::btree_set(0u64..64, 0..40),
        ) {
            prop_assert_eq!(union(&set(&a), &set(&b)), set(&a.union(&b).copied().collect()));
            prop_assert_eq!(intersect(&set(&a), &set(&b)), set(&a.intersection(&b).copied().collect()));
            prop_assert_eq!(subtract(&set(&a), &set(&b)), set(&a.difference(&b).copied().collect()));
        }
    }
}
