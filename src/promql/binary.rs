//! Binary operators: arithmetic, comparison and set operators between scalars and vectors,
//! with `on`/`ignoring`, `group_left`/`group_right` and `bool`.

use std::collections::{HashMap, HashSet};

use promql_parser::parser::token::{
    T_ADD, T_ATAN2, T_DIV, T_EQLC, T_GTE, T_GTR, T_LAND, T_LOR, T_LSS, T_LTE, T_LUNLESS, T_MOD,
    T_MUL, T_NEQ, T_POW, T_SUB, TokenId,
};
use promql_parser::parser::{BinaryExpr, LabelModifier, VectorMatchCardinality};

use super::engine::{Evaluator, QueryError, Val, exec_err, val_type};
use super::value::{Labels, METRIC_NAME, Sample};

fn is_comparison(op: TokenId) -> bool {
    matches!(op, T_EQLC | T_NEQ | T_GTR | T_LSS | T_GTE | T_LTE)
}

/// Applies `op` to two floats: the value and whether a comparison holds (always true for
/// arithmetic).
pub(crate) fn apply(op: TokenId, lhs: f64, rhs: f64) -> (f64, bool) {
    match op {
        T_ADD => (lhs + rhs, true),
        T_SUB => (lhs - rhs, true),
        T_MUL => (lhs * rhs, true),
        T_DIV => (lhs / rhs, true),
        T_MOD => (lhs % rhs, true),
        T_POW => (lhs.powf(rhs), true),
        T_ATAN2 => (lhs.atan2(rhs), true),
        T_EQLC => (lhs, lhs == rhs),
        T_NEQ => (lhs, lhs != rhs),
        T_GTR => (lhs, lhs > rhs),
        T_LSS => (lhs, lhs < rhs),
        T_GTE => (lhs, lhs >= rhs),
        T_LTE => (lhs, lhs <= rhs),
        _ => (f64::NAN, false),
    }
}

/// How two vectors' samples are matched.
struct Matching<'m> {
    on: bool,
    labels: Vec<String>,
    card: &'m VectorMatchCardinality,
}

impl Matching<'_> {
    /// The match signature: the `on` labels, or all but the `ignoring` labels and the name.
    fn signature(&self, labels: &Labels) -> Vec<u8> {
        if self.on {
            labels.key_for(&self.labels, true)
        } else {
            let mut key = Vec::new();
            for l in labels.iter() {
                if l.name != METRIC_NAME && !self.labels.iter().any(|n| n == &l.name) {
                    key.extend_from_slice(l.name.as_bytes());
                    key.push(0xfe);
                    key.extend_from_slice(l.value.as_bytes());
                    key.push(0xff);
                }
            }
            key
        }
    }
}

pub(crate) fn eval(ev: &mut Evaluator<'_>, b: &BinaryExpr, t: i64) -> Result<Val, QueryError> {
    let op = b.op.id();
    let return_bool = b.modifier.as_ref().is_some_and(|m| m.return_bool);
    if b.modifier
        .as_ref()
        .is_some_and(|m| m.fill_values.lhs.is_some() || m.fill_values.rhs.is_some())
    {
        return Err(QueryError::BadData(
            "fill modifiers are experimental and not supported".into(),
        ));
    }
    let lhs = ev.eval(&b.lhs, t)?;
    let rhs = ev.eval(&b.rhs, t)?;
    match (lhs, rhs) {
        (Val::Scalar(l), Val::Scalar(r)) => {
            let (v, keep) = apply(op, l, r);
            if is_comparison(op) {
                Ok(Val::Scalar(if keep { 1.0 } else { 0.0 }))
            } else {
                Ok(Val::Scalar(v))
            }
        }
        (Val::Vector(l), Val::Scalar(r)) => {
            Ok(Val::Vector(vector_scalar(op, l, r, false, return_bool, t)))
        }
        (Val::Scalar(l), Val::Vector(r)) => {
            Ok(Val::Vector(vector_scalar(op, r, l, true, return_bool, t)))
        }
        (Val::Vector(l), Val::Vector(r)) => {
            let (on, labels) = match b.modifier.as_ref().and_then(|m| m.matching.as_ref()) {
                Some(LabelModifier::Include(ls)) => (true, ls.labels.clone()),
                Some(LabelModifier::Exclude(ls)) => (false, ls.labels.clone()),
                None => (false, Vec::new()),
            };
            let default_card = if matches!(op, T_LAND | T_LOR | T_LUNLESS) {
                VectorMatchCardinality::ManyToMany
            } else {
                VectorMatchCardinality::OneToOne
            };
            let card = b
                .modifier
                .as_ref()
                .map(|m| &m.card)
                .unwrap_or(&default_card);
            let matching = Matching { on, labels, card };
            match op {
                T_LAND => Ok(Val::Vector(and(&matching, l, r))),
                T_LOR => Ok(Val::Vector(or(&matching, l, r))),
                T_LUNLESS => Ok(Val::Vector(unless(&matching, l, r))),
                _ => vector_vector(op, &matching, l, r, return_bool, t).map(Val::Vector),
            }
        }
        (l, r) => Err(exec_err(format!(
            "binary operator {} not allowed between {} and {}",
            b.op,
            val_type(&l),
            val_type(&r)
        ))),
    }
}

fn vector_scalar(
    op: TokenId,
    vector: Vec<Sample>,
    scalar: f64,
    swap: bool,
    return_bool: bool,
    t: i64,
) -> Vec<Sample> {
    let comparison = is_comparison(op);
    let mut out = Vec::with_capacity(vector.len());
    for mut s in vector {
        let (l, r) = if swap { (scalar, s.v) } else { (s.v, scalar) };
        let (mut v, mut keep) = apply(op, l, r);
        // The vector's value is the result of a filtering comparison, whichever side it is on.
        if comparison && swap {
            v = r;
        }
        if return_bool {
            v = if keep { 1.0 } else { 0.0 };
            keep = true;
        }
        if !keep {
            continue;
        }
        s.v = v;
        s.t = t;
        if !comparison || return_bool {
            s.drop_name = true;
        }
        out.push(s);
    }
    out
}

fn and(m: &Matching<'_>, lhs: Vec<Sample>, rhs: Vec<Sample>) -> Vec<Sample> {
    let right: HashSet<Vec<u8>> = rhs.iter().map(|s| m.signature(&s.labels)).collect();
    lhs.into_iter()
        .filter(|s| right.contains(&m.signature(&s.labels)))
        .collect()
}

fn or(m: &Matching<'_>, lhs: Vec<Sample>, rhs: Vec<Sample>) -> Vec<Sample> {
    let left: HashSet<Vec<u8>> = lhs.iter().map(|s| m.signature(&s.labels)).collect();
    let mut out = lhs;
    out.extend(
        rhs.into_iter()
            .filter(|s| !left.contains(&m.signature(&s.labels))),
    );
    out
}

fn unless(m: &Matching<'_>, lhs: Vec<Sample>, rhs: Vec<Sample>) -> Vec<Sample> {
    let right: HashSet<Vec<u8>> = rhs.iter().map(|s| m.signature(&s.labels)).collect();
    lhs.into_iter()
        .filter(|s| !right.contains(&m.signature(&s.labels)))
        .collect()
}

fn vector_vector(
    op: TokenId,
    m: &Matching<'_>,
    lhs: Vec<Sample>,
    rhs: Vec<Sample>,
    return_bool: bool,
    t: i64,
) -> Result<Vec<Sample>, QueryError> {
    let comparison = is_comparison(op);
    let (include, swapped) = match m.card {
        VectorMatchCardinality::ManyToOne(ls) => (ls.labels.clone(), false),
        VectorMatchCardinality::OneToMany(ls) => (ls.labels.clone(), true),
        _ => (Vec::new(), false),
    };
    let one_to_one = matches!(
        m.card,
        VectorMatchCardinality::OneToOne | VectorMatchCardinality::ManyToMany
    );
    // The "one" side is on the right after swapping.
    let (many, one) = if swapped { (rhs, lhs) } else { (lhs, rhs) };
    let mut one_by_sig: HashMap<Vec<u8>, usize> = HashMap::with_capacity(one.len());
    for (i, s) in one.iter().enumerate() {
        let sig = m.signature(&s.labels);
        if let Some(prev) = one_by_sig.insert(sig, i) {
            let side = if swapped { "left" } else { "right" };
            return Err(exec_err(format!(
                "found duplicate series for the match group {} on the {side} hand-side of the operation: [{}, {}];many-to-many matching not allowed: matching labels must be unique on one side",
                match_group(m, &s.labels),
                one[prev].labels,
                s.labels
            )));
        }
    }
    let mut out = Vec::new();
    let mut inserted_sigs: HashSet<Vec<u8>> = HashSet::new();
    let mut inserted_metrics: HashSet<Vec<u8>> = HashSet::new();
    for ls in many {
        let sig = m.signature(&ls.labels);
        let Some(&ri) = one_by_sig.get(&sig) else {
            continue;
        };
        let rs = &one[ri];
        let (lv, rv) = if swapped { (rs.v, ls.v) } else { (ls.v, rs.v) };
        if one_to_one && !inserted_sigs.insert(sig.clone()) {
            return Err(exec_err(
                "multiple matches for labels: many-to-one matching must be explicit (group_left/group_right)",
            ));
        }
        let (mut v, mut keep) = apply(op, lv, rv);
        if return_bool {
            v = if keep { 1.0 } else { 0.0 };
            keep = true;
        }
        if !keep {
            continue;
        }
        let mut labels = ls.labels.clone();
        if one_to_one {
            labels = if m.on {
                labels.keep_only(&m.labels)
            } else {
                labels.drop_names(&m.labels)
            };
        }
        for name in &include {
            let value = rs.labels.get(name).to_string();
            labels.set(name, &value);
        }
        let drop_name =
            !comparison || return_bool || (if swapped { rs.drop_name } else { ls.drop_name });
        if !one_to_one {
            let mut key = labels.key();
            key.push(u8::from(drop_name));
            if !inserted_metrics.insert(key) {
                return Err(exec_err(
                    "multiple matches for labels: grouping labels must ensure unique matches",
                ));
            }
        }
        out.push(Sample {
            labels,
            t,
            v,
            drop_name,
        });
    }
    Ok(out)
}

fn match_group(m: &Matching<'_>, labels: &Labels) -> Labels {
    if m.on {
        labels.keep_only(&m.labels)
    } else {
        let mut l = labels.drop_names(&m.labels);
        l.remove(METRIC_NAME);
        l
    }
}
