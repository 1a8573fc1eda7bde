//! `histogram_quantile` and `histogram_fraction` over classic (`le`-labelled) buckets.

use std::collections::HashMap;

use promql_parser::parser::Expr;

use super::arg;
use crate::promql::annotations;
use crate::promql::engine::{Evaluator, QueryError, Val};
use crate::promql::value::{Labels, METRIC_NAME, Sample};

#[derive(Debug, Clone, Copy)]
struct Bucket {
    upper: f64,
    count: f64,
}

struct BucketGroup {
    labels: Labels,
    metric: String,
    buckets: Vec<Bucket>,
}

/// Groups bucket samples by their labels without `le`; warns about missing or bad `le`.
fn group_buckets(ev: &mut Evaluator<'_>, vector: Vec<Sample>) -> Vec<BucketGroup> {
    let mut index: HashMap<Labels, usize> = HashMap::new();
    let mut groups: Vec<BucketGroup> = Vec::new();
    for s in vector {
        let le = s.labels.get("le");
        let upper = match parse_go_float(le) {
            Some(u) => u,
            None => {
                ev.annotations
                    .warn(annotations::bad_bucket_label(le, s.labels.get(METRIC_NAME)));
                continue;
            }
        };
        let mut labels = s.labels.clone();
        labels.remove("le");
        let gi = *index.entry(labels.clone()).or_insert_with(|| {
            groups.push(BucketGroup {
                metric: labels.get(METRIC_NAME).to_string(),
                labels,
                buckets: Vec::new(),
            });
            groups.len() - 1
        });
        groups[gi].buckets.push(Bucket { upper, count: s.v });
    }
    groups
}

/// Parses a float as Go's `strconv.ParseFloat` does for `le` values.
fn parse_go_float(s: &str) -> Option<f64> {
    let t = s.trim();
    if t.is_empty() || t != s {
        return None;
    }
    match t.to_ascii_lowercase().as_str() {
        "+inf" | "inf" | "+infinity" | "infinity" => return Some(f64::INFINITY),
        "-inf" | "-infinity" => return Some(f64::NEG_INFINITY),
        "nan" => return Some(f64::NAN),
        _ => {}
    }
    if t.chars().any(|c| {
        c.is_ascii_alphabetic()
            && !matches!(c, 'e' | 'E' | 'x' | 'X' | 'p' | 'P' | 'a'..='f' | 'A'..='F')
    }) {
        return None;
    }
    t.replace('_', "").parse::<f64>().ok()
}

/// Sorts by upper bound and merges buckets with the same bound.
fn sort_and_coalesce(buckets: &mut Vec<Bucket>) {
    buckets.sort_by(|a, b| {
        a.upper
            .partial_cmp(&b.upper)
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    let mut out: Vec<Bucket> = Vec::with_capacity(buckets.len());
    for b in buckets.drain(..) {
        match out.last_mut() {
            Some(last) if last.upper == b.upper => last.count += b.count,
            _ => out.push(b),
        }
    }
    *buckets = out;
}

/// Removes decreases between successive buckets; reports whether any were removed (ignoring
/// differences that are only floating-point noise).
fn ensure_monotonic(buckets: &mut [Bucket]) -> bool {
    let mut forced = false;
    let Some(first) = buckets.first() else {
        return false;
    };
    let mut prev = first.count;
    for b in buckets.iter_mut().skip(1) {
        let curr = b.count;
        if curr == prev {
            continue;
        }
        let delta = (curr - prev).abs();
        if delta / curr.abs().max(prev.abs()) <= 1e-12 {
            b.count = prev;
            continue;
        }
        if curr < prev {
            b.count = prev;
            forced = true;
            continue;
        }
        prev = curr;
    }
    forced
}

/// The q-quantile of a classic histogram; the bool says whether monotonicity was forced.
fn bucket_quantile(q: f64, mut buckets: Vec<Bucket>) -> (f64, bool) {
    if q.is_nan() {
        return (f64::NAN, false);
    }
    if q < 0.0 {
        return (f64::NEG_INFINITY, false);
    }
    if q > 1.0 {
        return (f64::INFINITY, false);
    }
    sort_and_coalesce(&mut buckets);
    if buckets.last().is_none_or(|b| b.upper != f64::INFINITY) {
        return (f64::NAN, false);
    }
    let forced = ensure_monotonic(&mut buckets);
    if buckets.len() < 2 {
        return (f64::NAN, false);
    }
    let observations = buckets[buckets.len() - 1].count;
    if observations == 0.0 {
        return (f64::NAN, false);
    }
    let mut rank = q * observations;
    let b = buckets[..buckets.len() - 1].partition_point(|b| b.count < rank);
    if b == buckets.len() - 1 {
        return (buckets[buckets.len() - 2].upper, forced);
    }
    if b == 0 && buckets[0].upper <= 0.0 {
        return (buckets[0].upper, forced);
    }
    let mut start = 0.0;
    let end = buckets[b].upper;
    let mut count = buckets[b].count;
    if b > 0 {
        start = buckets[b - 1].upper;
        count -= buckets[b - 1].count;
        rank -= buckets[b - 1].count;
    }
    (start + (end - start) * (rank / count), forced)
}

/// The fraction of observations between `lower` and `upper` in a classic histogram.
fn bucket_fraction(lower: f64, upper: f64, mut buckets: Vec<Bucket>) -> f64 {
    sort_and_coalesce(&mut buckets);
    if buckets.last().is_none_or(|b| b.upper != f64::INFINITY) {
        return f64::NAN;
    }
    ensure_monotonic(&mut buckets);
    let count = buckets[buckets.len() - 1].count;
    if count == 0.0 || lower.is_nan() || upper.is_nan() {
        return f64::NAN;
    }
    if lower >= upper {
        return 0.0;
    }
    let (mut rank, mut lower_rank, mut upper_rank) = (0.0, 0.0, 0.0);
    let (mut lower_set, mut upper_set) = (false, false);
    for (i, b) in buckets.iter().enumerate() {
        let lower_bound = if i > 0 {
            buckets[i - 1].upper
        } else if b.upper > 0.0 {
            0.0
        } else {
            f64::NEG_INFINITY
        };
        let upper_bound = b.upper;
        let in_bucket = b.count - rank;
        let interpolate = |v: f64| {
            if lower_bound.is_infinite() || upper_bound.is_infinite() {
                // No interpolation inside an unbounded bucket: count it as entirely below v.
                if upper_bound.is_infinite() {
                    rank
                } else {
                    b.count
                }
            } else {
                rank + in_bucket * (v - lower_bound) / (upper_bound - lower_bound)
            }
        };
        if !lower_set && lower_bound >= lower {
            lower_rank = rank;
            lower_set = true;
        }
        if !upper_set && lower_bound >= upper {
            upper_rank = rank;
            upper_set = true;
        }
        if lower_set && upper_set {
            break;
        }
        if !lower_set && lower_bound < lower && upper_bound > lower {
            lower_rank = interpolate(lower);
            lower_set = true;
        }
        if !upper_set && lower_bound < upper && upper_bound > upper {
            upper_rank = interpolate(upper);
            upper_set = true;
        }
        if lower_set && upper_set {
            break;
        }
        rank = b.count;
    }
    if !lower_set || lower_rank > count {
        lower_rank = count;
    }
    if !upper_set || upper_rank > count {
        upper_rank = count;
    }
    (upper_rank - lower_rank) / count
}

pub(super) fn histogram_quantile(
    ev: &mut Evaluator<'_>,
    args: &[&Expr],
    t: i64,
) -> Result<Val, QueryError> {
    let q = ev.eval_scalar(arg(args, 0)?, t)?;
    let vector = ev.eval_vector(arg(args, 1)?, t)?;
    if !(0.0..=1.0).contains(&q) {
        ev.annotations.warn(annotations::invalid_quantile(q));
    }
    let mut out = Vec::new();
    for g in group_buckets(ev, vector) {
        let (v, forced) = bucket_quantile(q, g.buckets);
        if forced {
            ev.annotations
                .info(annotations::histogram_quantile_forced_monotonicity(
                    &g.metric,
                ));
        }
        out.push(Sample {
            labels: g.labels,
            t,
            v,
            drop_name: true,
        });
    }
    Ok(Val::Vector(out))
}

pub(super) fn histogram_fraction(
    ev: &mut Evaluator<'_>,
    args: &[&Expr],
    t: i64,
) -> Result<Val, QueryError> {
    let lower = ev.eval_scalar(arg(args, 0)?, t)?;
    let upper = ev.eval_scalar(arg(args, 1)?, t)?;
    let vector = ev.eval_vector(arg(args, 2)?, t)?;
    let mut out = Vec::new();
    for g in group_buckets(ev, vector) {
        out.push(Sample {
            labels: g.labels,
            t,
            v: bucket_fraction(lower, upper, g.buckets),
            drop_name: true,
        });
    }
    Ok(Val::Vector(out))
}
