//! `/api/v1/parse_query`: the query's syntax tree as JSON, in the shape of Prometheus 3's
//! `translateAST` (`web/api/v1/translate_ast.go`): node `type`s `aggregation`, `binaryExpr`,
//! `call`, `matrixSelector`, `subquery`, `numberLiteral`, `parenExpr`, `stringLiteral`,
//! `unaryExpr`, `vectorSelector`, with the same fields. Where promql-parser's tree differs from
//! Prometheus's, the answer differs too: a unary `+` is not kept as a node, and a `-` applied
//! to a number literal is a `unaryExpr` rather than a negative literal.

use super::params::Form;
use super::{ApiError, ApiResult, ApiSuccess};
use crate::promql::parse::parse_query;
use crate::promql::value::{METRIC_NAME, format_float};
use promql_parser::label::Matchers;
use promql_parser::parser::value::ValueType;
use promql_parser::parser::{
    AtModifier, Expr, LabelModifier, Offset, VectorMatchCardinality, VectorSelector,
};
use serde_json::{Value, json};
use std::time::{Duration, SystemTime};

fn millis(duration: &Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

fn offset_ms(offset: &Option<Offset>) -> i64 {
    match offset {
        Some(Offset::Pos(d)) => millis(d),
        Some(Offset::Neg(d)) => millis(d).saturating_neg(),
        None => 0,
    }
}

/// `(timestamp, startOrEnd)`.
fn at(at: &Option<AtModifier>) -> (Value, Value) {
    match at {
        None => (Value::Null, Value::Null),
        Some(AtModifier::Start) => (Value::Null, json!("start")),
        Some(AtModifier::End) => (Value::Null, json!("end")),
        Some(AtModifier::At(time)) => {
            let ms = match time.duration_since(SystemTime::UNIX_EPOCH) {
                Ok(d) => millis(&d),
                Err(before) => millis(&before.duration()).saturating_neg(),
            };
            (json!(ms), Value::Null)
        }
    }
}

fn value_type(kind: ValueType) -> &'static str {
    match kind {
        ValueType::Vector => "vector",
        ValueType::Scalar => "scalar",
        ValueType::Matrix => "matrix",
        ValueType::String => "string",
    }
}

/// Matchers as Prometheus lists them: as written, then the metric name's matcher.
fn matchers(name: &Option<String>, matchers: &Matchers) -> Value {
    let mut out: Vec<Value> = matchers
        .matchers
        .iter()
        .map(|m| json!({ "name": m.name, "value": m.value, "type": m.op.to_string() }))
        .collect();
    if let Some(name) = name
        && !matchers.matchers.iter().any(|m| m.name == METRIC_NAME)
    {
        out.push(json!({ "name": METRIC_NAME, "value": name, "type": "=" }));
    }
    Value::Array(out)
}

fn vector_selector(vs: &VectorSelector, kind: &str) -> serde_json::Map<String, Value> {
    let (timestamp, start_or_end) = at(&vs.at);
    let mut map = serde_json::Map::new();
    map.insert("type".into(), json!(kind));
    map.insert("name".into(), json!(vs.name.clone().unwrap_or_default()));
    map.insert("offset".into(), json!(offset_ms(&vs.offset)));
    map.insert("matchers".into(), matchers(&vs.name, &vs.matchers));
    map.insert("timestamp".into(), timestamp);
    map.insert("startOrEnd".into(), start_or_end);
    map
}

fn names(labels: Option<&promql_parser::label::Labels>) -> Value {
    json!(labels.map(|l| l.labels.clone()).unwrap_or_default())
}

/// One node of the tree.
pub fn translate(expr: &Expr) -> Value {
    match expr {
        Expr::Aggregate(agg) => {
            let (grouping, without) = match &agg.modifier {
                Some(LabelModifier::Include(l)) => (l.labels.clone(), false),
                Some(LabelModifier::Exclude(l)) => (l.labels.clone(), true),
                None => (Vec::new(), false),
            };
            json!({
                "type": "aggregation",
                "op": agg.op.to_string(),
                "expr": translate(&agg.expr),
                "param": agg.param.as_deref().map_or(Value::Null, translate),
                "grouping": grouping,
                "without": without,
            })
        }
        Expr::Binary(binary) => {
            let vectors = binary.lhs.value_type() == ValueType::Vector
                && binary.rhs.value_type() == ValueType::Vector;
            let matching = if vectors {
                let modifier = binary.modifier.as_ref();
                let card = modifier.map_or(
                    if binary.op.is_set_operator() {
                        "many-to-many"
                    } else {
                        "one-to-one"
                    },
                    |m| match m.card {
                        VectorMatchCardinality::OneToOne => "one-to-one",
                        VectorMatchCardinality::ManyToOne(_) => "many-to-one",
                        VectorMatchCardinality::OneToMany(_) => "one-to-many",
                        VectorMatchCardinality::ManyToMany => "many-to-many",
                    },
                );
                let (labels, on) = match modifier.and_then(|m| m.matching.as_ref()) {
                    Some(LabelModifier::Include(l)) => (names(Some(l)), true),
                    Some(LabelModifier::Exclude(l)) => (names(Some(l)), false),
                    None => (json!([]), false),
                };
                let include = names(modifier.and_then(|m| m.card.labels()));
                json!({ "card": card, "labels": labels, "on": on, "include": include })
            } else {
                Value::Null
            };
            json!({
                "type": "binaryExpr",
                "op": binary.op.to_string(),
                "lhs": translate(&binary.lhs),
                "rhs": translate(&binary.rhs),
                "matching": matching,
                "bool": binary.return_bool(),
            })
        }
        Expr::Call(call) => json!({
            "type": "call",
            "func": {
                "name": call.func.name,
                "argTypes": call.func.arg_types.iter().map(|t| value_type(*t)).collect::<Vec<_>>(),
                "variadic": call.func.variadic,
                "returnType": value_type(call.func.return_type),
            },
            "args": call.args.args.iter().map(|arg| translate(arg)).collect::<Vec<_>>(),
        }),
        Expr::MatrixSelector(ms) => {
            let mut map = vector_selector(&ms.vs, "matrixSelector");
            map.insert("range".into(), json!(millis(&ms.range)));
            Value::Object(map)
        }
        Expr::Subquery(sq) => {
            let (timestamp, start_or_end) = at(&sq.at);
            json!({
                "type": "subquery",
                "expr": translate(&sq.expr),
                "range": millis(&sq.range),
                "offset": offset_ms(&sq.offset),
                "step": sq.step.as_ref().map_or(0, millis),
                "timestamp": timestamp,
                "startOrEnd": start_or_end,
            })
        }
        Expr::NumberLiteral(n) => json!({ "type": "numberLiteral", "val": format_float(n.val) }),
        Expr::Paren(p) => json!({ "type": "parenExpr", "expr": translate(&p.expr) }),
        Expr::StringLiteral(s) => json!({ "type": "stringLiteral", "val": s.val }),
        Expr::Unary(u) => json!({ "type": "unaryExpr", "op": "-", "expr": translate(&u.expr) }),
        Expr::VectorSelector(vs) => Value::Object(vector_selector(vs, "vectorSelector")),
        Expr::Extension(_) => Value::Null,
    }
}

/// `GET`/`POST /api/v1/parse_query`.
pub async fn parse(form: Form) -> ApiResult {
    let expr = parse_query(form.value("query"))
        .map_err(|e| ApiError::invalid_param("query", e.to_string()))?;
    let mut data = String::new();
    super::json::value(&mut data, &translate(&expr));
    Ok(ApiSuccess::new(data))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(query: &str) -> Value {
        translate(&parse_query(query).unwrap())
    }

    #[test]
    fn selectors_and_calls() {
        let t = tree("rate(http_requests_total{job=\"api\"}[5m] offset 1m)");
        assert_eq!(t["type"], "call");
        assert_eq!(t["func"]["name"], "rate");
        assert_eq!(t["func"]["argTypes"], json!(["matrix"]));
        assert_eq!(t["func"]["returnType"], "vector");
        let arg = &t["args"][0];
        assert_eq!(arg["type"], "matrixSelector");
        assert_eq!(arg["name"], "http_requests_total");
        assert_eq!(arg["range"], 300_000);
        assert_eq!(arg["offset"], 60_000);
        assert_eq!(
            arg["matchers"],
            json!([
                {"name": "job", "value": "api", "type": "="},
                {"name": "__name__", "value": "http_requests_total", "type": "="}
            ])
        );
        assert_eq!(arg["timestamp"], Value::Null);
        assert_eq!(arg["startOrEnd"], Value::Null);
    }

    #[test]
    fn binary_and_aggregation() {
        let t = tree("sum by (job) (a) / on (job) group_left (x) b");
        assert_eq!(t["type"], "binaryExpr");
        assert_eq!(t["op"], "/");
        assert_eq!(
            t["matching"],
            json!({"card": "many-to-one", "labels": ["job"], "on": true, "include": ["x"]})
        );
        assert_eq!(t["lhs"]["type"], "aggregation");
        assert_eq!(t["lhs"]["grouping"], json!(["job"]));
        assert_eq!(t["lhs"]["without"], false);
        assert_eq!(t["lhs"]["param"], Value::Null);
        let t = tree("a and b");
        assert_eq!(t["matching"]["card"], "many-to-many");
        let t = tree("a > bool 1");
        assert_eq!(t["matching"], Value::Null);
        assert_eq!(t["bool"], true);
        assert_eq!(t["rhs"], json!({"type": "numberLiteral", "val": "1"}));
    }

    #[test]
    fn subqueries_and_at() {
        let t = tree("max_over_time(up[1h:5m] @ 100)");
        let sq = &t["args"][0];
        assert_eq!(sq["type"], "subquery");
        assert_eq!(sq["range"], 3_600_000);
        assert_eq!(sq["step"], 300_000);
        assert_eq!(sq["timestamp"], 100_000);
        let t = tree("up @ start()");
        assert_eq!(t["startOrEnd"], "start");
        assert_eq!(t["timestamp"], Value::Null);
    }
}
