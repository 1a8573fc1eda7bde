//! Functions over range vectors.

use std::rc::Rc;

use promql_parser::parser::{Expr, MatrixSelector, SubqueryExpr};

use super::math::{kahan_sum_inc, linear_regression, quantile};
use super::{absent_labels, arg};
use crate::promql::annotations;
use crate::promql::engine::{
    Evaluator, Grid, QueryError, RangeColumns, RangeWindow, SubqueryColumns, Val, duration_ms,
    exec_err, node_key, subquery_key,
};
use crate::promql::memo::LabelsIndex;
use crate::promql::storage::SeriesData;
use crate::promql::value::{METRIC_NAME, Point, Sample, Series, is_stale_nan};

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
    if args.len() == 1
        && name != "absent_over_time"
        && let Some(sq) = plain_subquery(args[0])
        && let Some(value) = over_subquery(ev, name, sq, t)?
    {
        return Ok(Some(value));
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

/// The subquery `expr` is, inside any parentheses.
fn plain_subquery(expr: &Expr) -> Option<&SubqueryExpr> {
    match expr {
        Expr::Paren(p) => plain_subquery(&p.expr),
        Expr::Subquery(sq) => Some(sq),
        _ => None,
    }
}

/// A function without scalar arguments over a subquery at `t`, from its results precomputed
/// over the range query's grid; `None` when they cannot be (see [`precomputed_subquery`]),
/// and the caller evaluates the subquery's window at `t` instead.
fn over_subquery(
    ev: &mut Evaluator<'_>,
    name: &str,
    sq: &SubqueryExpr,
    t: i64,
) -> Result<Option<Val>, QueryError> {
    let Some((precomputed, k)) = precomputed_subquery(ev, name, sq, t)? else {
        return Ok(None);
    };
    let columns = &precomputed.columns;
    ev.budget.check_samples(columns.window_points[k])?;
    for (metric, present) in &columns.non_counters {
        if present[k] {
            ev.annotations
                .info(annotations::possible_non_counter(metric));
        }
    }
    let keeps_name = matches!(name, "last_over_time" | "first_over_time");
    let out = columns.steps[k]
        .iter()
        .map(|&(i, v)| Sample {
            labels: precomputed.labels[i as usize].clone(),
            t,
            v,
            drop_name: !keeps_name || precomputed.drop_name[i as usize],
        })
        .collect();
    Ok(Some(Val::Vector(out)))
}

/// The function's results over a subquery at every time of the range query's grid, and the
/// position of `t` on it. The subquery's inner expression is evaluated once at every inner
/// step the outer windows cover, its series' points are gathered per series, and windows
/// slide over them as for a matrix selector: per outer step, a window's worth of points is
/// no longer copied into fresh series. `None` off the grid, for a single outer time, or when
/// the points would pass [`MAX_PRECOMPUTED`].
fn precomputed_subquery(
    ev: &mut Evaluator<'_>,
    name: &str,
    sq: &SubqueryExpr,
    t: i64,
) -> Result<Option<(Rc<SubqueryColumns>, usize)>, QueryError> {
    let Some(grid) = ev.subquery_grid(sq) else {
        return Ok(None);
    };
    let Some(k) = grid.position(t) else {
        return Ok(None);
    };
    let key = subquery_key(sq);
    if let Some(precomputed) = ev.subquery_columns.get(&key) {
        if precomputed.columns.function == name && precomputed.columns.grid == grid {
            return Ok(Some((Rc::clone(precomputed), k)));
        }
        return Ok(None);
    }
    let count = grid.len();
    if count < 2 {
        return Ok(None);
    }
    let range = duration_ms(&sq.range);
    let step = ev.subquery_step(sq).max(1);
    let times: Vec<i64> = (0..count).map(|k| grid.time(k)).collect();
    let ends: Vec<i64> = times
        .iter()
        .map(|&t| ev.effective_time(t, &sq.at, &sq.offset))
        .collect();
    if ends.windows(2).any(|pair| pair[0] > pair[1]) {
        return Ok(None);
    }
    // The inner steps: multiples of the step after the first window's open start, up to the
    // last window's end (as `eval_subquery` walks them window by window).
    let first_end = ends[0];
    let last_end = ends[count - 1];
    let mut ts = first_end
        .saturating_sub(range)
        .div_euclid(step)
        .saturating_add(1)
        .saturating_mul(step);
    let mut index = LabelsIndex::default();
    // Per inner series id and name-dropping flag, its position in `series`.
    let mut slot_of: Vec<u32> = Vec::new();
    let mut series: Vec<SeriesData> = Vec::new();
    let mut drop_name: Vec<bool> = Vec::new();
    let mut points = 0usize;
    while ts <= last_end {
        let vector = ev.eval_subquery_step(sq, ts)?;
        points = points.saturating_add(vector.len());
        if points > MAX_PRECOMPUTED {
            return Ok(None);
        }
        for sample in vector {
            // A series whose name is still to be dropped is distinct from one without.
            let slot = (index.id(&sample.labels) as usize)
                .saturating_mul(2)
                .saturating_add(usize::from(sample.drop_name));
            if slot_of.len() <= slot {
                slot_of.resize(slot.saturating_add(1).max(slot_of.len() * 2), u32::MAX);
            }
            if slot_of[slot] == u32::MAX {
                let Ok(position) = u32::try_from(series.len()) else {
                    return Ok(None);
                };
                slot_of[slot] = position;
                series.push(SeriesData {
                    labels: sample.labels,
                    samples: Vec::new(),
                });
                drop_name.push(sample.drop_name);
            }
            series[slot_of[slot] as usize].samples.push((ts, sample.v));
        }
        ev.budget.check_deadline()?;
        ts = match ts.checked_add(step) {
            Some(next) => next,
            None => break,
        };
    }
    if series.len().saturating_mul(count) > MAX_PRECOMPUTED {
        return Ok(None);
    }
    let columns = join_columns(
        name,
        grid,
        sweep_in_parallel(name, &series, &times, &ends, range, false),
    );
    let precomputed = Rc::new(SubqueryColumns {
        columns,
        labels: series.into_iter().map(|s| s.labels).collect(),
        drop_name,
    });
    ev.subquery_columns.insert(key, Rc::clone(&precomputed));
    Ok(Some((precomputed, k)))
}

/// A function without scalar arguments over a matrix selector, evaluated on the selected
/// samples in place (the common `rate(x[5m])` shape); same results as the general path.
fn over_matrix_selector(
    ev: &mut Evaluator<'_>,
    name: &str,
    ms: &MatrixSelector,
    t: i64,
) -> Result<Val, QueryError> {
    let keeps_name = matches!(name, "last_over_time" | "first_over_time");
    if let Some((columns, k)) = precomputed(ev, name, ms, t)? {
        ev.budget.check_samples(columns.window_points[k])?;
        for (metric, present) in &columns.non_counters {
            if present[k] {
                ev.annotations
                    .info(annotations::possible_non_counter(metric));
            }
        }
        let series = ev.series_for(&ms.vs)?;
        let out = columns.steps[k]
            .iter()
            .map(|&(i, v)| Sample {
                labels: series[i as usize].labels.clone(),
                t,
                v,
                drop_name: !keeps_name,
            })
            .collect();
        return Ok(Val::Vector(out));
    }
    let window = ev.matrix_window(ms, t);
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

/// Bound on the results precomputed for one matrix selector (series times grid steps); a bigger
/// one is evaluated step by step, holding one step at a time.
const MAX_PRECOMPUTED: usize = 20_000_000;

/// Selectors with at least this many series have their columns computed on several threads.
const PARALLEL_SERIES: usize = 2048;

/// The function's results at every time of the selector's grid, computed on first use, and the
/// position of `t` on that grid; `None` when `t` is not on it or the selector is evaluated at a
/// single time (an instant query), where the per-step path costs nothing extra.
///
/// Step by step, each step would find every series' window again and call the function on it
/// (cache misses over all series at every step); here each series' samples are walked once
/// for all steps, windows sliding forward with the steps.
fn precomputed(
    ev: &mut Evaluator<'_>,
    name: &str,
    ms: &MatrixSelector,
    t: i64,
) -> Result<Option<(Rc<RangeColumns>, usize)>, QueryError> {
    let Some(grid) = ev.grid_of(&ms.vs) else {
        return Ok(None);
    };
    let Some(k) = grid.position(t) else {
        return Ok(None);
    };
    let key = node_key(&ms.vs);
    if let Some(columns) = ev.range_columns.get(&key) {
        if columns.function == name && columns.grid == grid {
            return Ok(Some((Rc::clone(columns), k)));
        }
        return Ok(None);
    }
    let count = grid.len();
    ev.budget.check_deadline()?;
    let series = ev.series_for(&ms.vs)?;
    if count < 2
        || u32::try_from(series.len()).is_err()
        || series.len().saturating_mul(count) > MAX_PRECOMPUTED
    {
        return Ok(None);
    }
    let range = duration_ms(&ms.range);
    let times: Vec<i64> = (0..count).map(|k| grid.time(k)).collect();
    let ends: Vec<i64> = times
        .iter()
        .map(|&t| ev.effective_time(t, &ms.vs.at, &ms.vs.offset))
        .collect();
    let columns = join_columns(
        name,
        grid,
        sweep_in_parallel(name, series, &times, &ends, range, true),
    );
    let columns = Rc::new(columns);
    ev.range_columns.insert(key, Rc::clone(&columns));
    Ok(Some((columns, k)))
}

/// The columns of contiguous runs of series, joined in run order.
fn join_columns(name: &str, grid: Grid, parts: Vec<PartialColumns>) -> RangeColumns {
    let count = grid.len();
    let mut columns = RangeColumns {
        function: name.to_string(),
        grid,
        steps: vec![Vec::new(); count],
        window_points: vec![0; count],
        non_counters: Vec::new(),
    };
    for part in parts {
        for (k, step) in part.steps.into_iter().enumerate() {
            if columns.steps[k].is_empty() {
                columns.steps[k] = step;
            } else {
                columns.steps[k].extend(step);
            }
        }
        for (k, n) in part.window_points.into_iter().enumerate() {
            columns.window_points[k] += n;
        }
        for (metric, present) in part.non_counters {
            merge_presence(&mut columns.non_counters, metric, &present);
        }
    }
    columns
}

/// Columns of one run of series.
struct PartialColumns {
    steps: Vec<Vec<(u32, f64)>>,
    window_points: Vec<usize>,
    non_counters: Vec<(String, Vec<bool>)>,
}

fn merge_presence(into: &mut Vec<(String, Vec<bool>)>, metric: String, present: &[bool]) {
    match into.iter_mut().find(|(m, _)| *m == metric) {
        Some((_, bits)) => {
            for (bit, &p) in bits.iter_mut().zip(present) {
                *bit |= p;
            }
        }
        None => into.push((metric, present.to_vec())),
    }
}

/// Splits the series into contiguous runs, one per thread, so the result (runs joined in
/// order) is the same whatever the number of threads.
fn sweep_in_parallel(
    name: &str,
    series: &[SeriesData],
    times: &[i64],
    ends: &[i64],
    range: i64,
    drop_stale: bool,
) -> Vec<PartialColumns> {
    let threads = if series.len() >= PARALLEL_SERIES {
        std::thread::available_parallelism().map_or(1, |n| n.get().min(4))
    } else {
        1
    };
    if threads <= 1 {
        return vec![sweep(name, series, 0, times, ends, range, drop_stale)];
    }
    let run = series.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let handles: Vec<_> = series
            .chunks(run)
            .enumerate()
            .map(|(i, part)| {
                scope.spawn(move || sweep(name, part, i * run, times, ends, range, drop_stale))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    })
}

/// Walks each series' samples once, sliding the window `(end - range, end]` forward over the
/// grid's window ends (which never decrease), and evaluates the function on each window.
/// Staleness markers are left out when `drop_stale` (stored samples; a subquery's points are
/// values and kept as they are).
fn sweep(
    name: &str,
    series: &[SeriesData],
    first_index: usize,
    times: &[i64],
    ends: &[i64],
    range: i64,
    drop_stale: bool,
) -> PartialColumns {
    let count = times.len();
    let checks_counter = matches!(name, "rate" | "increase");
    let mut out = PartialColumns {
        steps: vec![Vec::new(); count],
        window_points: vec![0; count],
        non_counters: Vec::new(),
    };
    let mut without_stale: Vec<Point> = Vec::new();
    // For rate/increase: `resets[i]` counts the counter resets among samples 1..=i, so a
    // window without any (the common case) skips the per-sample scan.
    let mut resets: Vec<u32> = Vec::new();
    for (j, s) in series.iter().enumerate() {
        let samples: &[Point] = if drop_stale && s.samples.iter().any(|p| is_stale_nan(p.1)) {
            without_stale.clear();
            without_stale.extend(s.samples.iter().copied().filter(|p| !is_stale_nan(p.1)));
            &without_stale
        } else {
            &s.samples
        };
        if checks_counter {
            resets.clear();
            let mut count = 0u32;
            let mut previous = f64::NAN;
            for &(_, v) in samples {
                if v < previous {
                    count += 1;
                }
                previous = v;
                resets.push(count);
            }
        }
        let metric = s.labels.get(METRIC_NAME);
        let mut present = (checks_counter && !metric.is_empty() && !is_counter_name(metric))
            .then(|| vec![false; count]);
        let index = u32::try_from(first_index + j).unwrap_or(u32::MAX);
        let (mut lo, mut hi) = (0usize, 0usize);
        for k in 0..count {
            let window = RangeWindow {
                end: ends[k],
                range,
            };
            let start = window.start();
            while hi < samples.len() && samples[hi].0 <= window.end {
                hi += 1;
            }
            while lo < hi && samples[lo].0 <= start {
                lo += 1;
            }
            if lo >= hi {
                continue;
            }
            out.window_points[k] += hi - lo;
            if let Some(present) = present.as_mut() {
                present[k] = true;
            }
            let value = if checks_counter {
                let scan_resets = resets[hi - 1] != resets[lo];
                let is_rate = name == "rate";
                extrapolated_rate_scanning(&samples[lo..hi], window, true, is_rate, scan_resets)
            } else {
                evaluate(name, &samples[lo..hi], window, times[k], &[])
            };
            if let Some(v) = value {
                out.steps[k].push((index, v));
            }
        }
        if let Some(present) = present {
            merge_presence(&mut out.non_counters, metric.to_string(), &present);
        }
    }
    out
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
    extrapolated_rate_scanning(p, window, is_counter, is_rate, is_counter)
}

/// [`extrapolated_rate`]; `scan_resets` false says the caller knows the window holds no
/// counter reset, so the scan for them (which would add nothing) is skipped.
fn extrapolated_rate_scanning(
    p: &[Point],
    window: RangeWindow,
    is_counter: bool,
    is_rate: bool,
    scan_resets: bool,
) -> Option<f64> {
    if p.len() < 2 {
        return None;
    }
    let range_start = window.start();
    let range_end = window.end;
    let (first_t, first_v) = p[0];
    let (last_t, last_v) = p[p.len() - 1];
    let mut result = last_v - first_v;
    if scan_resets {
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
