//! Functions that rewrite or order by labels.

use promql_parser::parser::Expr;

use super::arg;
use crate::promql::aggregate::is_valid_label_name;
use crate::promql::engine::{Evaluator, QueryError, Val, check_duplicates, exec_err};
use crate::promql::value::METRIC_NAME;

pub(super) fn label_replace(
    ev: &mut Evaluator<'_>,
    args: &[&Expr],
    t: i64,
) -> Result<Val, QueryError> {
    let dst = ev.eval_string(arg(args, 1)?, t)?;
    let replacement = ev.eval_string(arg(args, 2)?, t)?;
    let src = ev.eval_string(arg(args, 3)?, t)?;
    let pattern = ev.eval_string(arg(args, 4)?, t)?;
    let re = regex::RegexBuilder::new(&format!("^(?s:{pattern})$"))
        .size_limit(1 << 20)
        .build()
        .map_err(|e| {
            exec_err(format!(
                "invalid regular expression in label_replace(): {e}"
            ))
        })?;
    if !is_valid_label_name(&dst) {
        return Err(exec_err(format!(
            "invalid destination label name in label_replace(): {dst}"
        )));
    }
    let mut vector = ev.eval_vector(arg(args, 0)?, t)?;
    for s in &mut vector {
        let value = s.labels.get(&src).to_string();
        if let Some(caps) = re.captures(&value) {
            let mut res = String::new();
            caps.expand(&replacement, &mut res);
            s.labels.set(&dst, &res);
            if dst == METRIC_NAME {
                s.drop_name = false;
            }
        }
        s.t = t;
    }
    check_duplicates(&vector)?;
    Ok(Val::Vector(vector))
}

pub(super) fn label_join(
    ev: &mut Evaluator<'_>,
    args: &[&Expr],
    t: i64,
) -> Result<Val, QueryError> {
    let dst = ev.eval_string(arg(args, 1)?, t)?;
    let sep = ev.eval_string(arg(args, 2)?, t)?;
    let mut srcs = Vec::new();
    for a in args.iter().skip(3) {
        let src = ev.eval_string(a, t)?;
        if !is_valid_label_name(&src) {
            return Err(exec_err(format!(
                "invalid source label name in label_join(): {src}"
            )));
        }
        srcs.push(src);
    }
    if !is_valid_label_name(&dst) {
        return Err(exec_err(format!(
            "invalid destination label name in label_join(): {dst}"
        )));
    }
    let mut vector = ev.eval_vector(arg(args, 0)?, t)?;
    for s in &mut vector {
        let joined = srcs
            .iter()
            .map(|n| s.labels.get(n))
            .collect::<Vec<_>>()
            .join(&sep);
        s.labels.set(&dst, &joined);
        if dst == METRIC_NAME {
            s.drop_name = false;
        }
        s.t = t;
    }
    check_duplicates(&vector)?;
    Ok(Val::Vector(vector))
}

/// `sort_by_label`: orders by the given labels (natural order of values), then by all labels.
pub(super) fn sort_by_label(
    ev: &mut Evaluator<'_>,
    desc: bool,
    args: &[&Expr],
    t: i64,
) -> Result<Val, QueryError> {
    let mut names = Vec::new();
    for a in args.iter().skip(1) {
        names.push(ev.eval_string(a, t)?);
    }
    let mut vector = ev.eval_vector(arg(args, 0)?, t)?;
    if ev.range_query {
        ev.annotations
            .warn(crate::promql::annotations::sort_in_range_query());
    }
    vector.sort_by(|a, b| {
        for n in &names {
            let ord = natural_cmp(a.labels.get(n), b.labels.get(n));
            if ord != std::cmp::Ordering::Equal {
                return if desc { ord.reverse() } else { ord };
            }
        }
        let ord = a.labels.cmp(&b.labels);
        if desc { ord.reverse() } else { ord }
    });
    Ok(Val::Vector(vector))
}

/// Compares strings treating runs of digits as numbers ("a2" < "a10").
fn natural_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    let (mut ai, mut bi) = (a.chars().peekable(), b.chars().peekable());
    loop {
        match (ai.peek().copied(), bi.peek().copied()) {
            (None, None) => return std::cmp::Ordering::Equal,
            (None, Some(_)) => return std::cmp::Ordering::Less,
            (Some(_), None) => return std::cmp::Ordering::Greater,
            (Some(x), Some(y)) if x.is_ascii_digit() && y.is_ascii_digit() => {
                let mut na = String::new();
                while let Some(c) = ai.peek().copied().filter(char::is_ascii_digit) {
                    na.push(c);
                    ai.next();
                }
                let mut nb = String::new();
                while let Some(c) = bi.peek().copied().filter(char::is_ascii_digit) {
                    nb.push(c);
                    bi.next();
                }
                let ta = na.trim_start_matches('0');
                let tb = nb.trim_start_matches('0');
                let ord = ta.len().cmp(&tb.len()).then_with(|| ta.cmp(tb));
                if ord != std::cmp::Ordering::Equal {
                    return ord;
                }
            }
            (Some(x), Some(y)) => {
                if x != y {
                    return x.cmp(&y);
                }
                ai.next();
                bi.next();
            }
        }
    }
}
