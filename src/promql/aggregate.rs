//! Aggregation operators over an instant vector, grouped `by` or `without` labels.

use std::collections::HashMap;

use promql_parser::parser::{AggregateExpr, Expr, LabelModifier};

use super::annotations;
use super::engine::{Evaluator, GroupMemo, QueryError, Val, exec_err};
use super::functions::math::{kahan_sum_inc, quantile};
use super::value::{Labels, METRIC_NAME, Sample};

/// The labels of the group a sample belongs to.
fn group_labels(labels: &Labels, modifier: &Option<LabelModifier>) -> Labels {
    match modifier {
        None => Labels::new(),
        // `by (__name__)` groups by the name even when it is to be dropped later (Prometheus's
        // delayed name removal); the group then drops it if any member does.
        Some(LabelModifier::Include(ls)) => labels.keep_only(&ls.labels),
        Some(LabelModifier::Exclude(ls)) => {
            let mut l = labels.drop_names(&ls.labels);
            l.remove(METRIC_NAME);
            l
        }
    }
}

/// Converts a `topk`/`bottomk`/`limitk` parameter to an integer as Prometheus does.
fn int_param(v: f64) -> Result<i64, QueryError> {
    if v.is_nan() {
        return Err(exec_err("Parameter value is NaN"));
    }
    if !(-9.223_372_036_854_776e18..9.223_372_036_854_776e18).contains(&v) {
        return Err(exec_err(format!("Scalar value {v} overflows int64")));
    }
    Ok(v as i64)
}

struct Group {
    labels: Labels,
    members: Vec<usize>,
    /// Whether any member's name is to be dropped (matters only when grouping keeps `__name__`).
    drop_name: bool,
}

/// Writes into `key` a byte key of the labels `group_labels(labels, modifier)` keeps (equal
/// keys, equal groups), without building the group's label set (done once per sample and
/// step, so it must not allocate).
fn write_group_key(labels: &Labels, modifier: &Option<LabelModifier>, key: &mut Vec<u8>) {
    key.clear();
    let (names, include) = match modifier {
        None => return,
        Some(LabelModifier::Include(ls)) => (&ls.labels, true),
        Some(LabelModifier::Exclude(ls)) => (&ls.labels, false),
    };
    for (name, value) in labels.iter() {
        let listed = names.iter().any(|n| n == name);
        let kept = if include {
            listed
        } else {
            !listed && name != METRIC_NAME
        };
        if kept {
            key.extend_from_slice(name.as_bytes());
            key.push(0xfe);
            key.extend_from_slice(value.as_bytes());
            key.push(0xff);
        }
    }
}

/// Splits `vector` into groups, keeping first-appearance order. A sample's group is found in
/// `memo` by its label set's identity, so the group key is built once per series and query
/// rather than once per series and step.
fn group(vector: &[Sample], modifier: &Option<LabelModifier>, memo: &mut GroupMemo) -> Vec<Group> {
    let mut position_of_group: Vec<u32> = vec![u32::MAX; memo.labels.len()];
    let mut groups: Vec<Group> = Vec::new();
    let mut key = Vec::new();
    for (i, s) in vector.iter().enumerate() {
        let GroupMemo {
            group_of,
            by_key,
            labels,
        } = &mut *memo;
        let id = group_of.get_or(&s.labels, |sample_labels| {
            write_group_key(sample_labels, modifier, &mut key);
            match by_key.get(key.as_slice()) {
                Some(&id) => id,
                None => {
                    let id = u32::try_from(labels.len()).unwrap_or(u32::MAX);
                    labels.push(group_labels(sample_labels, modifier));
                    by_key.insert(key.clone(), id);
                    id
                }
            }
        }) as usize;
        if position_of_group.len() <= id {
            position_of_group.resize(memo.labels.len().max(id + 1), u32::MAX);
        }
        if position_of_group[id] == u32::MAX {
            position_of_group[id] = u32::try_from(groups.len()).unwrap_or(u32::MAX);
            groups.push(Group {
                labels: memo.labels[id].clone(),
                members: Vec::new(),
                drop_name: false,
            });
        }
        let g = &mut groups[position_of_group[id] as usize];
        g.members.push(i);
        g.drop_name |= s.drop_name;
    }
    groups
}

pub(crate) fn eval(ev: &mut Evaluator<'_>, agg: &AggregateExpr, t: i64) -> Result<Val, QueryError> {
    let op = agg.op.to_string().to_lowercase();
    let param = agg.param.as_deref();
    let vector = ev.eval_vector(&agg.expr, t)?;
    let node = agg as *const AggregateExpr as usize;
    let out = match op.as_str() {
        "topk" | "bottomk" | "limitk" => {
            let k = ev.eval_scalar(param_expr(param)?, t)?;
            let k = int_param(k)?;
            let memo = ev.group_memos.entry(node).or_default();
            select_k(&op, k, vector, &agg.modifier, memo)
        }
        "limit_ratio" => {
            let r = ev.eval_scalar(param_expr(param)?, t)?;
            if r.is_nan() {
                return Err(exec_err("Ratio value is NaN"));
            }
            let r = if r > 1.0 {
                ev.annotations.warn(format!(
                    "ratio value should be between -1 and 1, got {r}, capping to 1"
                ));
                1.0
            } else if r < -1.0 {
                ev.annotations.warn(format!(
                    "ratio value should be between -1 and 1, got {r}, capping to -1"
                ));
                -1.0
            } else {
                r
            };
            vector
                .into_iter()
                .filter(|s| ratio_selects(r, &s.labels))
                .collect()
        }
        "count_values" => {
            let name = ev.eval_string(param_expr(param)?, t)?;
            if !is_valid_label_name(&name) {
                return Err(exec_err(format!(
                    "invalid label name {}",
                    super::parse::go_quote(&name)
                )));
            }
            let mut index: HashMap<Labels, usize> = HashMap::new();
            let mut out: Vec<Sample> = Vec::new();
            for s in &vector {
                let mut labels = group_labels(&s.labels, &agg.modifier);
                labels.set(&name, &format_go_float(s.v));
                match index.get(&labels) {
                    Some(&i) => out[i].v += 1.0,
                    None => {
                        index.insert(labels.clone(), out.len());
                        out.push(Sample {
                            labels,
                            t,
                            v: 1.0,
                            drop_name: false,
                        });
                    }
                }
            }
            out
        }
        _ => {
            let q = match op.as_str() {
                "quantile" => {
                    let q = ev.eval_scalar(param_expr(param)?, t)?;
                    if !(0.0..=1.0).contains(&q) {
                        ev.annotations.warn(annotations::invalid_quantile(q));
                    }
                    q
                }
                _ => 0.0,
            };
            let mut out = Vec::new();
            let memo = ev.group_memos.entry(node).or_default();
            for g in group(&vector, &agg.modifier, memo) {
                let values: Vec<f64> = g.members.iter().map(|&i| vector[i].v).collect();
                let v = match op.as_str() {
                    "sum" => sum(&values),
                    "avg" => avg(&values),
                    "count" => values.len() as f64,
                    "group" => 1.0,
                    "min" => values.iter().copied().fold(f64::NAN, |acc, v| {
                        if acc > v || acc.is_nan() { v } else { acc }
                    }),
                    "max" => values.iter().copied().fold(f64::NAN, |acc, v| {
                        if acc < v || acc.is_nan() { v } else { acc }
                    }),
                    "stddev" => variance(&values).sqrt(),
                    "stdvar" => variance(&values),
                    "quantile" => quantile(q, values),
                    other => return Err(exec_err(format!("unsupported aggregation {other}"))),
                };
                let drop_name = g.drop_name && g.labels.has(METRIC_NAME);
                out.push(Sample {
                    labels: g.labels,
                    t,
                    v,
                    drop_name,
                });
            }
            out
        }
    };
    Ok(Val::Vector(out))
}

fn param_expr(param: Option<&Expr>) -> Result<&Expr, QueryError> {
    param.ok_or_else(|| exec_err("aggregation needs a parameter"))
}

pub(crate) fn sum(values: &[f64]) -> f64 {
    let (mut s, mut c) = (0.0, 0.0);
    for &v in values {
        (s, c) = kahan_sum_inc(v, s, c);
    }
    if s.is_infinite() { s } else { s + c }
}

/// The mean with Kahan summation, switching to an incremental mean if the sum would overflow.
pub(crate) fn avg(values: &[f64]) -> f64 {
    let (mut sum, mut c, mut mean) = (0.0f64, 0.0f64, 0.0f64);
    let mut incremental = false;
    let mut count = 0.0f64;
    for &v in values {
        count += 1.0;
        if count == 1.0 {
            sum = v;
            continue;
        }
        if !incremental {
            let (ns, nc) = kahan_sum_inc(v, sum, c);
            if !ns.is_infinite() {
                sum = ns;
                c = nc;
                continue;
            }
            incremental = true;
            mean = sum / (count - 1.0);
            c /= count - 1.0;
        }
        let q = (count - 1.0) / count;
        (mean, c) = kahan_sum_inc(v / count, q * mean, q * c);
    }
    if incremental {
        mean + c
    } else {
        sum / count + c / count
    }
}

/// Population variance by Welford's method.
fn variance(values: &[f64]) -> f64 {
    let (mut count, mut mean, mut m2) = (0.0f64, 0.0f64, 0.0f64);
    for &v in values {
        count += 1.0;
        let delta = v - mean;
        mean += delta / count;
        m2 += delta * (v - mean);
    }
    m2 / count
}

/// `topk`/`bottomk` (ordered, NaN last) and `limitk` (first k) per group.
fn select_k(
    op: &str,
    k: i64,
    vector: Vec<Sample>,
    modifier: &Option<LabelModifier>,
    memo: &mut GroupMemo,
) -> Vec<Sample> {
    if k < 1 {
        return Vec::new();
    }
    let k = usize::try_from(k).unwrap_or(usize::MAX);
    let groups = group(&vector, modifier, memo);
    let mut slots: Vec<Option<Sample>> = vector.into_iter().map(Some).collect();
    let mut out = Vec::new();
    for g in groups {
        let mut members = g.members;
        // The k first by value, ties in input order (what a stable sort of all members would
        // give), found by a selection in linear time before sorting only those k.
        let by_value: Option<fn(f64, f64) -> std::cmp::Ordering> = match op {
            "topk" => Some(cmp_desc_nan_last),
            "bottomk" => Some(cmp_asc_nan_last),
            _ => None,
        };
        if let Some(by_value) = by_value {
            let order = |a: &usize, b: &usize| {
                by_value(slot_v(&slots, *a), slot_v(&slots, *b)).then(a.cmp(b))
            };
            if members.len() > k {
                members.select_nth_unstable_by(k - 1, order);
                members.truncate(k);
            }
            members.sort_by(order);
        }
        for i in members.into_iter().take(k) {
            if let Some(s) = slots[i].take() {
                out.push(s);
            }
        }
    }
    out
}

fn slot_v(slots: &[Option<Sample>], i: usize) -> f64 {
    slots[i].as_ref().map_or(f64::NAN, |s| s.v)
}

pub(crate) fn cmp_desc_nan_last(a: f64, b: f64) -> std::cmp::Ordering {
    match (a.is_nan(), b.is_nan()) {
        (true, true) => std::cmp::Ordering::Equal,
        (true, false) => std::cmp::Ordering::Greater,
        (false, true) => std::cmp::Ordering::Less,
        _ => b.partial_cmp(&a).unwrap_or(std::cmp::Ordering::Equal),
    }
}

pub(crate) fn cmp_asc_nan_last(a: f64, b: f64) -> std::cmp::Ordering {
    match (a.is_nan(), b.is_nan()) {
        (true, true) => std::cmp::Ordering::Equal,
        (true, false) => std::cmp::Ordering::Greater,
        (false, true) => std::cmp::Ordering::Less,
        _ => a.partial_cmp(&b).unwrap_or(std::cmp::Ordering::Equal),
    }
}

/// Whether `limit_ratio(r, …)` keeps a series: its label hash, as a fraction of the hash space,
/// falls below `r` (or, for negative `r`, at or above `1 + r`), so `r` and `r - 1` select
/// complementary sets.
fn ratio_selects(r: f64, labels: &Labels) -> bool {
    let offset = super::functions::hash::labels_hash(labels) as f64 / u64::MAX as f64;
    (r >= 0.0 && offset < r) || (r < 0.0 && offset >= 1.0 + r)
}

pub(crate) fn is_valid_label_name(name: &str) -> bool {
    !name.is_empty() && !name.chars().any(super::parse::is_invalid_byte_char)
}

/// Formats a float like Go's `strconv.FormatFloat(v, 'f', -1, 64)`.
pub(crate) fn format_go_float(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        format!("{v}")
    }
}
