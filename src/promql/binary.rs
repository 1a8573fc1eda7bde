//! Binary operators: arithmetic, comparison and set operators between scalars and vectors,
//! with `on`/`ignoring`, `group_left`/`group_right` and `bool`.

use std::collections::{HashMap, HashSet};

use promql_parser::parser::token::{
    T_ADD, T_ATAN2, T_DIV, T_EQLC, T_GTE, T_GTR, T_LAND, T_LOR, T_LSS, T_LTE, T_LUNLESS, T_MOD,
    T_MUL, T_NEQ, T_POW, T_SUB, TokenId,
};
use promql_parser::parser::{BinaryExpr, LabelModifier, VectorMatchCardinality};

use super::engine::{Evaluator, QueryError, Val, exec_err, val_type};
use super::memo::{AddressHasher, AddressMap, LabelsIndex, LabelsMemo};
use super::value::{Labels, METRIC_NAME, Sample};

/// What a vector-vector operation remembers across the steps of one query: match signatures
/// as dense ids and result label sets, found by the label sets' identity (see `memo.rs`), so a
/// step neither builds signature keys nor copies label sets.
#[derive(Default)]
pub(crate) struct BinaryMemo {
    signature_of: LabelsMemo<u32>,
    by_signature: HashMap<Vec<u8>, u32>,
    /// Result labels by the addresses of the (many side, one side) label sets; both inputs are
    /// kept so the addresses stay theirs.
    result_labels: HashMap<
        (usize, usize),
        (Labels, Labels, Labels),
        std::hash::BuildHasherDefault<AddressHasher>,
    >,
    result_ids: LabelsIndex,
}

/// Bound on remembered result label sets, as in `memo.rs`.
const MAX_RESULT_LABELS: usize = 1 << 20;

impl BinaryMemo {
    fn signature(&mut self, m: &Matching<'_>, labels: &Labels) -> u32 {
        let BinaryMemo {
            signature_of,
            by_signature,
            ..
        } = self;
        signature_of.get_or(labels, |labels| {
            let key = m.signature(labels);
            let next = u32::try_from(by_signature.len()).unwrap_or(u32::MAX);
            *by_signature.entry(key).or_insert(next)
        })
    }
}

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
            for (name, value) in labels.iter() {
                if name != METRIC_NAME && !self.labels.iter().any(|n| n == name) {
                    key.extend_from_slice(name.as_bytes());
                    key.push(0xfe);
                    key.extend_from_slice(value.as_bytes());
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
    let node = b as *const BinaryExpr as usize;
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
            let memo = ev.binary_memos.entry(node).or_default();
            match op {
                T_LAND => Ok(Val::Vector(and(&matching, memo, l, r))),
                T_LOR => Ok(Val::Vector(or(&matching, memo, l, r))),
                T_LUNLESS => Ok(Val::Vector(unless(&matching, memo, l, r))),
                _ => vector_vector(op, &matching, memo, l, r, return_bool, t).map(Val::Vector),
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

type SignatureSet = HashSet<u32, std::hash::BuildHasherDefault<AddressHasher>>;

fn and(m: &Matching<'_>, memo: &mut BinaryMemo, lhs: Vec<Sample>, rhs: Vec<Sample>) -> Vec<Sample> {
    let right: SignatureSet = rhs.iter().map(|s| memo.signature(m, &s.labels)).collect();
    lhs.into_iter()
        .filter(|s| right.contains(&memo.signature(m, &s.labels)))
        .collect()
}

fn or(m: &Matching<'_>, memo: &mut BinaryMemo, lhs: Vec<Sample>, rhs: Vec<Sample>) -> Vec<Sample> {
    let left: SignatureSet = lhs.iter().map(|s| memo.signature(m, &s.labels)).collect();
    let mut out = lhs;
    out.extend(
        rhs.into_iter()
            .filter(|s| !left.contains(&memo.signature(m, &s.labels))),
    );
    out
}

fn unless(
    m: &Matching<'_>,
    memo: &mut BinaryMemo,
    lhs: Vec<Sample>,
    rhs: Vec<Sample>,
) -> Vec<Sample> {
    let right: SignatureSet = rhs.iter().map(|s| memo.signature(m, &s.labels)).collect();
    lhs.into_iter()
        .filter(|s| !right.contains(&memo.signature(m, &s.labels)))
        .collect()
}

fn vector_vector(
    op: TokenId,
    m: &Matching<'_>,
    memo: &mut BinaryMemo,
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
    let mut one_by_sig: AddressMap<usize> = AddressMap::default();
    one_by_sig.reserve(one.len());
    for (i, s) in one.iter().enumerate() {
        let sig = memo.signature(m, &s.labels) as usize;
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
    let mut inserted_sigs: SignatureSet = SignatureSet::default();
    let mut inserted_metrics: HashSet<(u32, bool), std::hash::BuildHasherDefault<AddressHasher>> =
        HashSet::default();
    for ls in many {
        let sig = memo.signature(m, &ls.labels) as usize;
        let Some(&ri) = one_by_sig.get(&sig) else {
            continue;
        };
        let rs = &one[ri];
        let (lv, rv) = if swapped { (rs.v, ls.v) } else { (ls.v, rs.v) };
        if one_to_one && !inserted_sigs.insert(sig as u32) {
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
        let labels = result_labels(m, memo, &include, one_to_one, &ls.labels, &rs.labels);
        let drop_name =
            !comparison || return_bool || (if swapped { rs.drop_name } else { ls.drop_name });
        if !one_to_one {
            let id = memo.result_ids.id(&labels);
            if !inserted_metrics.insert((id, drop_name)) {
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

/// The labels of a matched pair's result: the many side's, reduced to the matching labels for
/// one-to-one matching, plus the `group_left`/`group_right` labels from the one side. Built once
/// per pair of label sets in a query.
fn result_labels(
    m: &Matching<'_>,
    memo: &mut BinaryMemo,
    include: &[String],
    one_to_one: bool,
    many: &Labels,
    one: &Labels,
) -> Labels {
    let key = (many.address(), one.address());
    if let Some((_, _, labels)) = memo.result_labels.get(&key) {
        return labels.clone();
    }
    let mut labels = many.clone();
    if one_to_one {
        labels = if m.on {
            labels.keep_only(&m.labels)
        } else {
            labels.drop_names(&m.labels)
        };
    }
    for name in include {
        let value = one.get(name).to_string();
        labels.set(name, &value);
    }
    if memo.result_labels.len() >= MAX_RESULT_LABELS {
        memo.result_labels.clear();
    }
    memo.result_labels
        .insert(key, (many.clone(), one.clone(), labels.clone()));
    labels
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
