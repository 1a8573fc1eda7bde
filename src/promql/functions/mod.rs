//! PromQL functions, dispatched by name.
//!
//! - `range.rs`: functions over range vectors (`rate`, `*_over_time`, …);
//! - `labels.rs`: `label_replace`, `label_join`, sorting by label;
//! - `time.rs`: calendar functions;
//! - `histogram.rs`: `histogram_quantile` and `histogram_fraction` on classic buckets;
//! - `math.rs`, `hash.rs`: numeric helpers and Prometheus's label hash.

pub(crate) mod hash;
mod histogram;
mod labels;
pub(crate) mod math;
mod range;
mod time;

use promql_parser::parser::{Call, Expr};

use super::annotations;
use super::engine::{Evaluator, QueryError, Val, exec_err};
use super::value::{Labels, METRIC_NAME, Sample};

/// Functions Prometheus gates behind feature flags or that need native histograms; calls to
/// them fail with a clear message rather than a wrong answer.
const UNSUPPORTED: &[&str] = &[
    "info",
    "histogram_quantiles",
    "start_timestamp",
    "max_of",
    "min_of",
];

pub(crate) fn call(ev: &mut Evaluator<'_>, call: &Call, t: i64) -> Result<Val, QueryError> {
    let name = call.func.name;
    let args: Vec<&Expr> = call.args.args.iter().map(|a| a.as_ref()).collect();
    if UNSUPPORTED.contains(&name) {
        return Err(QueryError::BadData(format!(
            "function {name:?} is not supported"
        )));
    }
    if let Some(v) = range::call(ev, name, &args, t)? {
        return Ok(v);
    }
    match name {
        "time" => Ok(Val::Scalar(t as f64 / 1000.0)),
        "pi" => Ok(Val::Scalar(std::f64::consts::PI)),
        "start" => Ok(Val::Scalar(ev.start as f64 / 1000.0)),
        "end" => Ok(Val::Scalar(ev.end as f64 / 1000.0)),
        "step" => Ok(Val::Scalar(if ev.range_query {
            ev.interval as f64 / 1000.0
        } else {
            0.0
        })),
        "range" => Ok(Val::Scalar((ev.end - ev.start) as f64 / 1000.0)),
        "vector" => {
            let v = ev.eval_scalar(arg(&args, 0)?, t)?;
            Ok(Val::Vector(vec![Sample {
                labels: Labels::new(),
                t,
                v,
                drop_name: false,
            }]))
        }
        "scalar" => {
            let v = ev.eval_vector(arg(&args, 0)?, t)?;
            Ok(Val::Scalar(if v.len() == 1 { v[0].v } else { f64::NAN }))
        }
        "timestamp" => {
            let v = ev.eval_vector_keep_timestamps(arg(&args, 0)?, t)?;
            Ok(Val::Vector(
                v.into_iter()
                    .map(|s| Sample {
                        v: s.t as f64 / 1000.0,
                        t,
                        labels: s.labels,
                        drop_name: true,
                    })
                    .collect(),
            ))
        }
        "absent" => {
            let v = ev.eval_vector(arg(&args, 0)?, t)?;
            if !v.is_empty() {
                return Ok(Val::Vector(Vec::new()));
            }
            Ok(Val::Vector(vec![Sample {
                labels: absent_labels(arg(&args, 0)?),
                t,
                v: 1.0,
                drop_name: false,
            }]))
        }
        "round" => {
            let to_nearest = match args.get(1) {
                Some(a) => ev.eval_scalar(a, t)?,
                None => 1.0,
            };
            let inverse = 1.0 / to_nearest;
            map_values(ev, &args, t, |v| (v * inverse + 0.5).floor() / inverse)
        }
        "clamp" => {
            let min = ev.eval_scalar(arg(&args, 1)?, t)?;
            let max = ev.eval_scalar(arg(&args, 2)?, t)?;
            if max < min {
                return Ok(Val::Vector(Vec::new()));
            }
            map_values(ev, &args, t, |v| v.max(min).min(max))
        }
        "clamp_min" => {
            let min = ev.eval_scalar(arg(&args, 1)?, t)?;
            map_values(ev, &args, t, |v| v.max(min))
        }
        "clamp_max" => {
            let max = ev.eval_scalar(arg(&args, 1)?, t)?;
            map_values(ev, &args, t, |v| v.min(max))
        }
        "sort" | "sort_desc" => {
            let mut v = ev.eval_vector(arg(&args, 0)?, t)?;
            if ev.range_query {
                ev.annotations.warn(annotations::sort_in_range_query());
            }
            if name == "sort" {
                v.sort_by(|a, b| sort_asc(a.v, b.v));
            } else {
                v.sort_by(|a, b| sort_asc(b.v, a.v));
            }
            Ok(Val::Vector(v))
        }
        "sort_by_label" | "sort_by_label_desc" => {
            labels::sort_by_label(ev, name == "sort_by_label_desc", &args, t)
        }
        "label_replace" => labels::label_replace(ev, &args, t),
        "label_join" => labels::label_join(ev, &args, t),
        "histogram_quantile" => histogram::histogram_quantile(ev, &args, t),
        "histogram_fraction" => histogram::histogram_fraction(ev, &args, t),
        // Native-histogram functions ignore float samples.
        "histogram_count" | "histogram_sum" | "histogram_avg" | "histogram_stddev"
        | "histogram_stdvar" => {
            ev.eval_vector(arg(&args, 0)?, t)?;
            Ok(Val::Vector(Vec::new()))
        }
        "day_of_month" | "day_of_week" | "day_of_year" | "days_in_month" | "hour" | "minute"
        | "month" | "year" => {
            let vector = match args.first() {
                Some(a) => ev.eval_vector(a, t)?,
                None => vec![Sample {
                    labels: Labels::new(),
                    t,
                    v: t as f64 / 1000.0,
                    drop_name: false,
                }],
            };
            Ok(Val::Vector(
                vector
                    .into_iter()
                    .map(|mut s| {
                        s.v = time::calendar(name, s.v);
                        s.t = t;
                        s.drop_name = true;
                        s
                    })
                    .collect(),
            ))
        }
        _ => {
            let Some(f) = math_function(name) else {
                return Err(QueryError::BadData(format!("unknown function {name:?}")));
            };
            map_values(ev, &args, t, f)
        }
    }
}

fn sort_asc(a: f64, b: f64) -> std::cmp::Ordering {
    // NaN sorts last in both directions, as Prometheus does.
    match (a.is_nan(), b.is_nan()) {
        (true, true) => std::cmp::Ordering::Equal,
        (true, false) => std::cmp::Ordering::Greater,
        (false, true) => std::cmp::Ordering::Less,
        _ => a.partial_cmp(&b).unwrap_or(std::cmp::Ordering::Equal),
    }
}

pub(crate) fn arg<'e>(args: &[&'e Expr], i: usize) -> Result<&'e Expr, QueryError> {
    args.get(i)
        .copied()
        .ok_or_else(|| exec_err("missing function argument"))
}

fn math_function(name: &str) -> Option<fn(f64) -> f64> {
    Some(match name {
        "abs" => f64::abs,
        "ceil" => f64::ceil,
        "floor" => f64::floor,
        "exp" => f64::exp,
        "sqrt" => f64::sqrt,
        "ln" => f64::ln,
        "log2" => f64::log2,
        "log10" => f64::log10,
        "sin" => f64::sin,
        "cos" => f64::cos,
        "tan" => f64::tan,
        "asin" => f64::asin,
        "acos" => f64::acos,
        "atan" => f64::atan,
        "sinh" => f64::sinh,
        "cosh" => f64::cosh,
        "tanh" => f64::tanh,
        "asinh" => f64::asinh,
        "acosh" => f64::acosh,
        "atanh" => f64::atanh,
        "deg" => |v: f64| v * 180.0 / std::f64::consts::PI,
        "rad" => |v: f64| v * std::f64::consts::PI / 180.0,
        "sgn" => |v: f64| {
            if v > 0.0 {
                1.0
            } else if v < 0.0 {
                -1.0
            } else {
                v
            }
        },
        _ => return None,
    })
}

/// Applies `f` to every sample of the first argument; the result drops the metric name.
fn map_values(
    ev: &mut Evaluator<'_>,
    args: &[&Expr],
    t: i64,
    f: impl Fn(f64) -> f64,
) -> Result<Val, QueryError> {
    let vector = ev.eval_vector(arg(args, 0)?, t)?;
    Ok(Val::Vector(
        vector
            .into_iter()
            .map(|mut s| {
                s.v = f(s.v);
                s.t = t;
                s.drop_name = true;
                s
            })
            .collect(),
    ))
}

/// The labels `absent` and `absent_over_time` report: the selector's equality matchers, unless a
/// label name is matched more than once.
pub(crate) fn absent_labels(expr: &Expr) -> Labels {
    let vs = match expr {
        Expr::VectorSelector(vs) => vs,
        Expr::MatrixSelector(ms) => &ms.vs,
        _ => return Labels::new(),
    };
    let mut labels = Labels::new();
    let mut seen: Vec<&str> = Vec::new();
    for m in &vs.matchers.matchers {
        if m.name == METRIC_NAME {
            continue;
        }
        let equal = matches!(m.op, promql_parser::label::MatchOp::Equal);
        if equal && !seen.contains(&m.name.as_str()) {
            labels.set(&m.name, &m.value);
        } else {
            labels.remove(&m.name);
        }
        seen.push(&m.name);
    }
    labels
}
