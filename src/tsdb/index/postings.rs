//! Postings lists (sorted series ids) and selecting them with label matchers. One
//! implementation serves the head and every block, through [`PostingsSource`].

use crate::tsdb::error::TsdbError;
use crate::tsdb::labels::Matcher;

/// What matcher evaluation needs from an index.
pub trait PostingsSource {
    /// Values of a label name, sorted (empty for an unknown name).
    fn label_values(&self, name: &str) -> Result<Vec<String>, TsdbError>;
    /// Series ids with `name="value"`, sorted.
    fn postings(&self, name: &str, value: &str) -> Result<Vec<u64>, TsdbError>;
    /// All series ids, sorted.
    fn all_postings(&self) -> Result<Vec<u64>, TsdbError>;
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
        let values = source.label_values(&matcher.name)?;
        if matcher.matches("") {
            // Everything except the series whose value does not match.
            let mut excluded = Vec::new();
            for value in values.iter().filter(|value| !matcher.matches(value)) {
                excluded = union(&excluded, &source.postings(&matcher.name, value)?);
            }
            let base = match result.take() {
                Some(current) => current,
                None => source.all_postings()?,
            };
            result = Some(subtract(&base, &excluded));
        } else {
            let mut selected = Vec::new();
            for value in values.iter().filter(|value| matcher.matches(value)) {
                selected = union(&selected, &source.postings(&matcher.name, value)?);
            }
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
