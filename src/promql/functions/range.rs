//! Functions over range vectors.

use promql_parser::parser::{Expr, MatrixSelector};

use super::math::{kahan_sum_inc, linear_regression, quantile};
use super::{absent_labels, arg};
use crate::promql::annotations;
use crate::promql::engine::{Evaluator, QueryError, RangeWindow, Val, exec_err};
use crate::promql::value::{METRIC_NAME, Point, Sample, Series};

/// Evaluates `name` if it is a range-vector function; `None` otherwise.
pub(super) fn call(
    ev: &mut Evaluator<'_>,
    name: &str,
    args: &[&Expr],
    t: i64,
) -> Result<Option<Val>, QueryError> {
    let matrix_arg = match name {
        "quantile_over_time" => 1usize,
        "predict_linear"
        | "double_exponential_smoothing"
        | "rate"
        | "increase"
        | "delta"
        | "irate"
        | "idelta"
        | "deriv"
        | "changes"
        | "resets"
        | "avg_over_time"
        | "min_over_time"
        | "max_over_time"
        | "sum_over_time"
        | "count_over_time"
        | "last_over_time"
        | "first_over_time"
        | "stddev_over_time"
        | "stdvar_over_time"
        | "mad_over_time"
        | "present_over_time"
        | "absent_over_time"
        | "ts_of_first_over_time"
        | "ts_of_last_over_time"
        | "ts_of_min_over_time"
        | "ts_of_max_over_time" => 0,
        _ => return Ok(None),
    };
    if args.len() == 1
        && name != "absent_over_time"
        && let Some(ms) = plain_matrix_selector(args[0])
    {
        return over_matrix_selector(ev, name, ms, t).map(Some);
    }
    let (series, window) = ev.eval_range(arg(args, matrix_arg)?, t)?;
    if name == "absent_over_time" {
        if series.is_empty() {
            return Ok(Some(Val::Vector(vec![Sample {
                labels: absent_labels(arg(args, 0)?),
                t,
                v: 1.0,
                drop_name: false,
            }])));
        }
        return Ok(Some(Val::Vector(Vec::new())));
    }
    let mut scalars = Vec::new();
    for (i, a) in args.iter().enumerate() {
        if i != matrix_arg {
            scalars.push(ev.eval_scalar(a, t)?);
        }
    }
    if name == "quantile_over_time" {
        let q = scalars.first().copied().unwrap_or(f64::NAN);
        if !(0.0..=1.0).contains(&q) {
            ev.annotations.warn(annotations::invalid_quantile(q));
        }
    }
    if name == "double_exponential_smoothing" {
        let (sf, tf) = (
            scalars.first().copied().unwrap_or(f64::NAN),
            scalars.get(1).copied().unwrap_or(f64::NAN),
        );
        if !(sf > 0.0 && sf < 1.0) {
            return Err(exec_err(format!(
                "invalid smoothing factor. Expected: 0 < sf < 1, got: {sf:.6}"
            )));
        }
        if !(tf > 0.0 && tf < 1.0) {
            return Err(exec_err(format!(
                "invalid trend factor. Expected: 0 < tf < 1, got: {tf:.6}"
            )));
        }
    }
    let keeps_name = matches!(name, "last_over_time" | "first_over_time");
    let mut out = Vec::with_capacity(series.len());
    for s in series {
        if matches!(name, "rate" | "increase") && !s.points.is_empty() {
            let metric = s.labels.get(METRIC_NAME);
            if !is_counter_name(metric) && !metric.is_empty() {
                ev.annotations
                    .info(annotations::possible_non_counter(metric));
            }
        }
        let Some(v) = evaluate(name, &s.points, window, t, &scalars) else {
            continue;
        };
        let Series {
            labels, drop_name, ..
        } = s;
        out.push(Sample {
            labels,
            t,
            v,
            drop_name: if keeps_name { drop_name } else { true },
        });
    }
    Ok(Some(Val::Vector(out)))
}

/// The matrix selector `expr` is, inside any parentheses.
fn plain_matrix_selector(expr: &Expr) -> Option<&MatrixSelector> {
    match expr {
        Expr::Paren(p) => plain_matrix_selector(&p.expr),
        Expr::MatrixSelector(ms) => Some(ms),
        _ => None,
    }
}

/// A function without scalar arguments over a matrix selector, evaluated on the selected
/// samples in place (the common `rate(x[5m])` shape); same results as the general path.
fn over_matrix_selector(
    ev: &mut Evaluator<'_>,
    name: &str,
    ms: &MatrixSelector,
    t: i64,
) -> Result<Val, QueryError> {
    let window = ev.matrix_window(ms, t);
    let keeps_name = matches!(name, "last_over_time" | "first_over_time");
    let checks_counter = matches!(name, "rate" | "increase");
    let mut non_counters: Vec<String> = Vec::new();
    let mut out = Vec::new();
    ev.walk_matrix_selector(ms, window, |labels, points| {
        if checks_counter {
            let metric = labels.get(METRIC_NAME);
            if !is_counter_name(metric)
                && !metric.is_empty()
                && !non_counters.iter().any(|m| m == metric)
            {
                non_counters.push(metric.to_string());
            }
        }
        if let Some(v) = evaluate(name, points, window, t, &[]) {
            out.push(Sample {
                labels: labels.clone(),
                t,
                v,
                // A selected series' name is never already marked for removal.
                drop_name: !keeps_name,
            });
        }
    })?;
    for metric in non_counters {
        ev.annotations
            .info(annotations::possible_non_counter(&metric));
    }
    Ok(Val::Vector(out))
}

fn is_counter_name(name: &str) -> bool {
    ["_total", "_sum", "_count", "_bucket"]
        .iter()
        .any(|s| name.ends_with(s))
}

fn evaluate(name: &str, p: &[Point], window: RangeWindow, t: i64, scalars: &[f64]) -> Option<f64> {
    if p.is_empty() {
        return None;
    }
    let values = || p.iter().map(|x| x.1);
    Some(match name {
        "rate" => extrapolated_rate(p, window, true, true)?,
        "increase" => extrapolated_rate(p, window, true, false)?,
        "delta" => extrapolated_rate(p, window, false, false)?,
        "irate" => instant_value(p, true)?,
        "idelta" => instant_value(p, false)?,
        "deriv" => {
            if p.len() < 2 {
                return None;
            }
            linear_regression(p, p[0].0).0
        }
        "predict_linear" => {
            if p.len() < 2 {
                return None;
            }
            let (slope, intercept) = linear_regression(p, t);
            intercept + slope * scalars.first().copied().unwrap_or(f64::NAN)
        }
        "double_exponential_smoothing" => double_exponential_smoothing(
            p,
            scalars.first().copied().unwrap_or(f64::NAN),
            scalars.get(1).copied().unwrap_or(f64::NAN),
        )?,
        "changes" => p
            .windows(2)
            .filter(|w| !(w[0].1 == w[1].1 || (w[0].1.is_nan() && w[1].1.is_nan())))
            .count() as f64,
        "resets" => p.windows(2).filter(|w| w[1].1 < w[0].1).count() as f64,
        "avg_over_time" => avg(values()),
        "min_over_time" => values().fold(
            f64::NAN,
            |acc, v| if acc > v || acc.is_nan() { v } else { acc },
        ),
        "max_over_time" => values().fold(
            f64::NAN,
            |acc, v| if acc < v || acc.is_nan() { v } else { acc },
        ),
        "sum_over_time" => {
            let (mut sum, mut c) = (0.0, 0.0);
            for v in values() {
                (sum, c) = kahan_sum_inc(v, sum, c);
            }
            if sum.is_infinite() { sum } else { sum + c }
        }
        "count_over_time" => p.len() as f64,
        "present_over_time" => 1.0,
        "last_over_time" => p[p.len() - 1].1,
        "first_over_time" => p[0].1,
        "ts_of_last_over_time" => p[p.len() - 1].0 as f64 / 1000.0,
        "ts_of_first_over_time" => p[0].0 as f64 / 1000.0,
        "ts_of_min_over_time" => ts_of_extreme(p, |cur, best| cur <= best)?,
        "ts_of_max_over_time" => ts_of_extreme(p, |cur, best| cur >= best)?,
        "stddev_over_time" => variance(values()).sqrt(),
        "stdvar_over_time" => variance(values()),
        "quantile_over_time" => quantile(
            scalars.first().copied().unwrap_or(f64::NAN),
            values().collect(),
        ),
        "mad_over_time" => {
            if values().any(f64::is_nan) {
                return Some(f64::NAN);
            }
            let median = quantile(0.5, values().collect());
            quantile(0.5, values().map(|v| (v - median).abs()).collect())
        }
        _ => return None,
    })
}

/// The timestamp of the last sample that is the extreme value by `better`; NaN loses.
fn ts_of_extreme(p: &[Point], better: impl Fn(f64, f64) -> bool) -> Option<f64> {
    let mut best: Option<Point> = None;
    for &(t, v) in p {
        match best {
            None => best = Some((t, v)),
            Some((_, bv)) => {
                if bv.is_nan() || (!v.is_nan() && better(v, bv)) {
                    best = Some((t, v));
                }
            }
        }
    }
    best.map(|(t, _)| t as f64 / 1000.0)
}

fn avg(values: impl Iterator<Item = f64>) -> f64 {
    let (mut sum, mut mean, mut count, mut c) = (0.0f64, 0.0f64, 0.0f64, 0.0f64);
    let mut incremental = false;
    for v in values {
        count += 1.0;
        if !incremental {
            let (ns, nc) = kahan_sum_inc(v, sum, c);
            if count == 1.0 || !ns.is_infinite() {
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

fn variance(values: impl Iterator<Item = f64>) -> f64 {
    let (mut count, mut mean, mut c_mean, mut aux, mut c_aux) =
        (0.0f64, 0.0f64, 0.0f64, 0.0f64, 0.0f64);
    for v in values {
        count += 1.0;
        let delta = v - (mean + c_mean);
        (mean, c_mean) = kahan_sum_inc(delta / count, mean, c_mean);
        (aux, c_aux) = kahan_sum_inc(delta * (v - (mean + c_mean)), aux, c_aux);
    }
    (aux + c_aux) / count
}

/// `rate`, `increase` and `delta`: the change over the window, extrapolated towards the
/// window's edges as Prometheus does.
fn extrapolated_rate(
    p: &[Point],
    window: RangeWindow,
    is_counter: bool,
    is_rate: bool,
) -> Option<f64> {
    if p.len() < 2 {
        return None;
    }
    let range_start = window.start();
    let range_end = window.end;
    let (first_t, first_v) = p[0];
    let (last_t, last_v) = p[p.len() - 1];
    let mut result = last_v - first_v;
    if is_counter {
        let mut prev = p[0].1;
        for &(_, v) in &p[1..] {
            if v < prev {
                result += prev;
            }
            prev = v;
        }
    }
    let mut duration_to_start = (first_t - range_start) as f64 / 1000.0;
    let mut duration_to_end = (range_end - last_t) as f64 / 1000.0;
    let sampled_interval = (last_t - first_t) as f64 / 1000.0;
    let average_between = sampled_interval / (p.len() - 1) as f64;
    let threshold = average_between * 1.1;
    if duration_to_start >= threshold {
        duration_to_start = average_between / 2.0;
    }
    if is_counter {
        let mut duration_to_zero = duration_to_start;
        if result > 0.0 && first_v >= 0.0 {
            duration_to_zero = sampled_interval * (first_v / result);
        }
        if duration_to_zero < duration_to_start {
            duration_to_start = duration_to_zero;
        }
    }
    if duration_to_end >= threshold {
        duration_to_end = average_between / 2.0;
    }
    let mut factor = (sampled_interval + duration_to_start + duration_to_end) / sampled_interval;
    if is_rate {
        factor /= window.range as f64 / 1000.0;
    }
    Some(result * factor)
}

/// `irate` and `idelta`: from the last two samples.
fn instant_value(p: &[Point], is_rate: bool) -> Option<f64> {
    if p.len() < 2 {
        return None;
    }
    let (prev_t, prev_v) = p[p.len() - 2];
    let (last_t, last_v) = p[p.len() - 1];
    let mut result = if is_rate && last_v < prev_v {
        last_v
    } else {
        last_v - prev_v
    };
    if is_rate {
        let interval = last_t - prev_t;
        if interval == 0 {
            return None;
        }
        result /= interval as f64 / 1000.0;
    }
    Some(result)
}

fn double_exponential_smoothing(p: &[Point], sf: f64, tf: f64) -> Option<f64> {
    if p.len() < 2 {
        return None;
    }
    let mut s0 = 0.0;
    let mut s1 = p[0].1;
    let mut b = p[1].1 - p[0].1;
    for (i, &(_, v)) in p.iter().enumerate().skip(1) {
        let x = sf * v;
        if i > 1 {
            b = tf * (s1 - s0) + (1.0 - tf) * b;
        }
        let y = (1.0 - sf) * (s1 + b);
        s0 = s1;
        s1 = x + y;
    }
    Some(s1)
}
