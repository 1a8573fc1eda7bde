//! The pure half of `remote_read`: whether and how an endpoint is asked for one selector, and
//! how its answer is merged with the local series. No I/O and no clock: the local start time
//! comes in as an argument.
#![deny(clippy::disallowed_methods)]

use super::client::{EndpointRules, RemoteSeries};
use super::proto::{LabelMatcher, MatcherType, Query, ReadHints};
use crate::promql::value::{Labels, Point};
use crate::promql::{MatchKind, Matcher, SeriesData};
use std::collections::BTreeMap;

/// What to send one endpoint, and which labels to strip from its answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub query: Query,
    /// External labels added as matchers; removed from the returned series.
    pub added_external: Vec<String>,
}

fn proto_matcher(matcher: &Matcher) -> LabelMatcher {
    let kind = match matcher.kind {
        MatchKind::Equal => MatcherType::Eq,
        MatchKind::NotEqual => MatcherType::Neq,
        MatchKind::Regex => MatcherType::Re,
        MatchKind::NotRegex => MatcherType::Nre,
    };
    LabelMatcher {
        r#type: kind as i32,
        name: matcher.name.clone(),
        value: matcher.value.clone(),
    }
}

/// The query for an endpoint, or `None` when its rules say not to ask it: a required matcher
/// missing from the selector (as an equality matcher), or, when `local_start_ms` is given
/// (`read_recent: false`), a range that starts after it; the range is then cut at it.
pub fn plan(
    rules: &EndpointRules,
    matchers: &[Matcher],
    mint_ms: i64,
    maxt_ms: i64,
    external_labels: &[(String, String)],
    local_start_ms: Option<i64>,
) -> Option<Plan> {
    let has_all_required = rules.required_matchers.iter().all(|(name, value)| {
        matchers
            .iter()
            .any(|m| m.kind == MatchKind::Equal && &m.name == name && &m.value == value)
    });
    if !has_all_required {
        return None;
    }
    let mut maxt_ms = maxt_ms;
    if let Some(local_start) = local_start_ms {
        if mint_ms > local_start {
            return None;
        }
        maxt_ms = maxt_ms.min(local_start);
    }
    let mut proto_matchers: Vec<LabelMatcher> = matchers.iter().map(proto_matcher).collect();
    let mut added_external = Vec::new();
    if rules.filter_external_labels {
        for (name, value) in external_labels {
            // A selector naming the label itself wants that value, not ours.
            if matchers.iter().any(|m| &m.name == name) {
                continue;
            }
            proto_matchers.push(LabelMatcher {
                r#type: MatcherType::Eq as i32,
                name: name.clone(),
                value: value.clone(),
            });
            added_external.push(name.clone());
        }
    }
    Some(Plan {
        query: Query {
            start_timestamp_ms: mint_ms,
            end_timestamp_ms: maxt_ms,
            matchers: proto_matchers,
            hints: Some(ReadHints {
                start_ms: mint_ms,
                end_ms: maxt_ms,
                ..ReadHints::default()
            }),
        },
        added_external,
    })
}

/// An endpoint's answer as the engine's series: labels checked (names non-empty and unique),
/// the added external labels removed, samples sorted, one per timestamp, inside the range.
pub fn to_series_data(
    series: Vec<RemoteSeries>,
    plan: &Plan,
    mint_ms: i64,
    maxt_ms: i64,
) -> Result<Vec<SeriesData>, String> {
    let mut out = Vec::with_capacity(series.len());
    for remote in series {
        let mut names: Vec<&str> = remote.labels.iter().map(|(n, _)| n.as_str()).collect();
        names.sort_unstable();
        if names.first().is_some_and(|name| name.is_empty()) {
            return Err("a series has a label with an empty name".to_string());
        }
        if let Some(pair) = names.windows(2).find(|pair| pair[0] == pair[1]) {
            return Err(format!("a series has the label {:?} twice", pair[0]));
        }
        let labels = Labels::from_pairs(
            remote
                .labels
                .iter()
                .filter(|(name, _)| !plan.added_external.contains(name))
                .map(|(name, value)| (name.as_str(), value.as_str())),
        );
        let mut samples: Vec<Point> = remote
            .samples
            .into_iter()
            .filter(|(t, _)| (mint_ms..=maxt_ms).contains(t))
            .collect();
        samples.sort_by_key(|(t, _)| *t);
        samples.dedup_by_key(|(t, _)| *t);
        if samples.is_empty() {
            continue;
        }
        out.push(SeriesData { labels, samples });
    }
    Ok(out)
}

/// Adds `extra`'s samples to `into` at the timestamps `into` does not have.
fn merge_samples(into: &mut Vec<Point>, extra: Vec<Point>) {
    if extra.is_empty() {
        return;
    }
    let mut merged = Vec::with_capacity(into.len() + extra.len());
    let mut first = std::mem::take(into).into_iter().peekable();
    let mut second = extra.into_iter().peekable();
    loop {
        match (first.peek(), second.peek()) {
            (Some(a), Some(b)) if a.0 < b.0 => merged.extend(first.next()),
            (Some(a), Some(b)) if a.0 > b.0 => merged.extend(second.next()),
            (Some(_), Some(_)) => {
                merged.extend(first.next());
                second.next();
            }
            (Some(_), None) => merged.extend(first.next()),
            (None, Some(_)) => merged.extend(second.next()),
            (None, None) => break,
        }
    }
    *into = merged;
}

/// One set of series from the local ones and each endpoint's, sorted by labels: identical
/// label sets are merged, earlier sources winning on equal timestamps.
pub fn merge(local: Vec<SeriesData>, remote: Vec<Vec<SeriesData>>) -> Vec<SeriesData> {
    if remote.iter().all(Vec::is_empty) {
        return local;
    }
    let mut by_labels: BTreeMap<Labels, Vec<Point>> = BTreeMap::new();
    for series in local.into_iter().chain(remote.into_iter().flatten()) {
        match by_labels.get_mut(&series.labels) {
            Some(samples) => merge_samples(samples, series.samples),
            None => {
                by_labels.insert(series.labels, series.samples);
            }
        }
    }
    by_labels
        .into_iter()
        .map(|(labels, samples)| SeriesData { labels, samples })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn eq(name: &str, value: &str) -> Matcher {
        Matcher::new(MatchKind::Equal, name, value).unwrap()
    }

    fn rules(read_recent: bool, required: &[(&str, &str)], filter: bool) -> EndpointRules {
        EndpointRules {
            read_recent,
            required_matchers: required
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
            filter_external_labels: filter,
        }
    }

    fn external() -> Vec<(String, String)> {
        vec![
            ("region".to_string(), "eu".to_string()),
            ("replica".to_string(), "a".to_string()),
        ]
    }

    #[test]
    fn required_matchers_must_all_be_equality_matchers_of_the_selector() {
        let rules = rules(true, &[("env", "prod")], false);
        let up = eq("__name__", "up");
        assert!(plan(&rules, std::slice::from_ref(&up), 0, 10, &[], None).is_none());
        let regex = Matcher::new(MatchKind::Regex, "env", "prod").unwrap();
        assert!(plan(&rules, &[up.clone(), regex], 0, 10, &[], None).is_none());
        assert!(plan(&rules, &[up.clone(), eq("env", "dev")], 0, 10, &[], None).is_none());
        let planned = plan(&rules, &[up, eq("env", "prod")], 0, 10, &[], None).unwrap();
        assert_eq!(planned.query.matchers.len(), 2);
    }

    #[test]
    fn without_read_recent_the_range_stops_at_the_local_start() {
        let rules = rules(false, &[], false);
        let up = [eq("__name__", "up")];
        assert!(plan(&rules, &up, 1_001, 2_000, &[], Some(1_000)).is_none());
        let cut = plan(&rules, &up, 500, 2_000, &[], Some(1_000)).unwrap();
        assert_eq!(
            (cut.query.start_timestamp_ms, cut.query.end_timestamp_ms),
            (500, 1_000)
        );
        let whole = plan(&rules, &up, 0, 800, &[], Some(1_000)).unwrap();
        assert_eq!(whole.query.end_timestamp_ms, 800);
    }

    #[test]
    fn external_labels_become_matchers_unless_the_selector_names_them() {
        let filtering = rules(true, &[], true);
        let selector = [eq("__name__", "up"), eq("region", "us")];
        let planned = plan(&filtering, &selector, 0, 10, &external(), None).unwrap();
        assert_eq!(planned.added_external, ["replica"]);
        let last = planned.query.matchers.last().unwrap();
        assert_eq!(
            (last.r#type, last.name.as_str(), last.value.as_str()),
            (MatcherType::Eq as i32, "replica", "a")
        );
        let not_filtering = rules(true, &[], false);
        let planned = plan(&not_filtering, &selector, 0, 10, &external(), None).unwrap();
        assert!(planned.added_external.is_empty());
        assert_eq!(planned.query.matchers.len(), 2);

        // The added labels are stripped from the answer; others stay.
        let filtering_plan = plan(&filtering, &selector, 0, 10, &external(), None).unwrap();
        let answer = vec![RemoteSeries {
            labels: vec![
                ("__name__".into(), "up".into()),
                ("region".into(), "us".into()),
                ("replica".into(), "a".into()),
            ],
            samples: vec![(20, 1.0), (5, 2.0), (5, 3.0), (0, 4.0)],
        }];
        let series = to_series_data(answer, &filtering_plan, 0, 10).unwrap();
        assert_eq!(
            series[0].labels,
            Labels::from_pairs([("__name__", "up"), ("region", "us")])
        );
        assert_eq!(series[0].samples, [(0, 4.0), (5, 2.0)]);
    }

    #[test]
    fn bad_labels_fail_the_answer() {
        let planned = plan(&rules(true, &[], false), &[], 0, 10, &[], None).unwrap();
        let twice = vec![RemoteSeries {
            labels: vec![("a".into(), "1".into()), ("a".into(), "2".into())],
            samples: vec![(1, 1.0)],
        }];
        assert_eq!(
            to_series_data(twice, &planned, 0, 10).unwrap_err(),
            "a series has the label \"a\" twice"
        );
        let empty = vec![RemoteSeries {
            labels: vec![(String::new(), "1".into())],
            samples: vec![(1, 1.0)],
        }];
        assert!(to_series_data(empty, &planned, 0, 10).is_err());
    }

    #[test]
    fn merge_deduplicates_and_prefers_local() {
        let series = |job: &str, samples: &[(i64, f64)]| SeriesData {
            labels: Labels::from_pairs([("__name__", "up"), ("job", job)]),
            samples: samples.to_vec(),
        };
        let local = vec![series("b", &[(10, 1.0), (30, 3.0)])];
        let first = vec![
            series("a", &[(0, 9.0)]),
            series("b", &[(10, 7.0), (20, 2.0)]),
        ];
        let second = vec![series("b", &[(20, 8.0), (40, 4.0)])];
        let merged = merge(local, vec![first, second]);
        assert_eq!(merged.len(), 2);
        assert_eq!(merged[0].labels.get("job"), "a");
        assert_eq!(
            merged[1].samples,
            [(10, 1.0), (20, 2.0), (30, 3.0), (40, 4.0)]
        );
    }
}
