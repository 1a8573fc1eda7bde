//! JSON written as Prometheus writes it (`util/jsonutil`): timestamps as Unix seconds with a
//! millisecond fraction (`1435781451.781`, `1435781451` when whole), sample values as strings
//! in Go's shortest `'f'` formatting, strings escaped as Go's `encoding/json` escapes them.

use crate::promql::Labels;
use crate::promql::value::{Value, format_float};

/// A JSON string, escaped as Go does (including `<`, `>`, `&`, U+2028 and U+2029).
pub fn string(out: &mut String, text: &str) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// A JSON array of strings.
pub fn strings<S: AsRef<str>>(out: &mut String, items: &[S]) {
    out.push('[');
    for (index, item) in items.iter().enumerate() {
        if index > 0 {
            out.push(',');
        }
        string(out, item.as_ref());
    }
    out.push(']');
}

/// Any JSON value, with strings escaped as Go escapes them.
pub fn value(out: &mut String, value: &serde_json::Value) {
    match value {
        serde_json::Value::String(text) => string(out, text),
        serde_json::Value::Array(items) => {
            out.push('[');
            for (index, item) in items.iter().enumerate() {
                if index > 0 {
                    out.push(',');
                }
                self::value(out, item);
            }
            out.push(']');
        }
        serde_json::Value::Object(map) => {
            out.push('{');
            for (index, (key, item)) in map.iter().enumerate() {
                if index > 0 {
                    out.push(',');
                }
                string(out, key);
                out.push(':');
                self::value(out, item);
            }
            out.push('}');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// A label set as a JSON object.
pub fn labels(out: &mut String, labels: &Labels) {
    out.push('{');
    for (index, (name, value)) in labels.iter().enumerate() {
        if index > 0 {
            out.push(',');
        }
        string(out, name);
        out.push(':');
        string(out, value);
    }
    out.push('}');
}

/// Prometheus's `MarshalTimestamp`.
pub fn timestamp(out: &mut String, t_ms: i64) {
    let magnitude = t_ms.unsigned_abs();
    if t_ms < 0 {
        out.push('-');
    }
    out.push_str(&(magnitude / 1000).to_string());
    let fraction = magnitude % 1000;
    if fraction != 0 {
        out.push_str(&format!(".{fraction:03}"));
    }
}

/// `[<seconds>,"<value>"]`.
pub fn point(out: &mut String, t_ms: i64, v: f64) {
    out.push('[');
    timestamp(out, t_ms);
    out.push_str(",\"");
    out.push_str(&format_float(v));
    out.push_str("\"]");
}

/// `{"resultType":...,"result":...}` for a query's value.
pub fn query_data(out: &mut String, value: &Value, stats: Option<&str>) {
    out.push_str("{\"resultType\":\"");
    out.push_str(value.type_name());
    out.push_str("\",\"result\":");
    match value {
        Value::Scalar { t, v } => point(out, *t, *v),
        Value::String { t, v } => {
            out.push('[');
            timestamp(out, *t);
            out.push(',');
            string(out, v);
            out.push(']');
        }
        Value::Vector(vector) => {
            out.push('[');
            for (index, sample) in vector.iter().enumerate() {
                if index > 0 {
                    out.push(',');
                }
                out.push_str("{\"metric\":");
                labels(out, &sample.labels);
                out.push_str(",\"value\":");
                point(out, sample.t, sample.v);
                out.push('}');
            }
            out.push(']');
        }
        Value::Matrix(matrix) => {
            out.push('[');
            for (index, series) in matrix.iter().enumerate() {
                if index > 0 {
                    out.push(',');
                }
                out.push_str("{\"metric\":");
                labels(out, &series.labels);
                out.push_str(",\"values\":[");
                for (i, (t, v)) in series.points.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    point(out, *t, *v);
                }
                out.push_str("]}");
            }
            out.push(']');
        }
    }
    if let Some(stats) = stats {
        out.push_str(",\"stats\":");
        out.push_str(stats);
    }
    out.push('}');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::promql::value::{Sample, Series};

    fn text(write: impl FnOnce(&mut String)) -> String {
        let mut out = String::new();
        write(&mut out);
        out
    }

    #[test]
    fn timestamps_as_prometheus_writes_them() {
        assert_eq!(text(|o| timestamp(o, 1_435_781_451_781)), "1435781451.781");
        assert_eq!(text(|o| timestamp(o, 1_435_781_451_000)), "1435781451");
        assert_eq!(text(|o| timestamp(o, 1_500)), "1.500");
        assert_eq!(text(|o| timestamp(o, 5)), "0.005");
        assert_eq!(text(|o| timestamp(o, -1_500)), "-1.500");
        assert_eq!(text(|o| timestamp(o, i64::MIN)), "-9223372036854775.808");
    }

    #[test]
    fn values_and_shapes() {
        assert_eq!(text(|o| point(o, 1000, f64::NAN)), "[1,\"NaN\"]");
        assert_eq!(text(|o| point(o, 1000, f64::INFINITY)), "[1,\"+Inf\"]");
        assert_eq!(text(|o| point(o, 1000, f64::NEG_INFINITY)), "[1,\"-Inf\"]");
        assert_eq!(text(|o| point(o, 1000, 0.1)), "[1,\"0.1\"]");
        assert_eq!(
            text(|o| point(o, 1000, 1e21)),
            "[1,\"1000000000000000000000\"]"
        );
        assert_eq!(
            text(|o| point(o, 1000, 1.0 / 3.0)),
            "[1,\"0.3333333333333333\"]"
        );
        let vector = Value::Vector(vec![Sample {
            labels: Labels::from_pairs([("__name__", "up"), ("job", "<a>")]),
            t: 2000,
            v: 1.0,
            drop_name: false,
        }]);
        assert_eq!(
            text(|o| query_data(o, &vector, None)),
            r#"{"resultType":"vector","result":[{"metric":{"__name__":"up","job":"\u003ca\u003e"},"value":[2,"1"]}]}"#
        );
        let matrix = Value::Matrix(vec![Series {
            labels: Labels::new(),
            points: vec![(0, 1.5), (15_000, 2.0)],
            drop_name: false,
        }]);
        assert_eq!(
            text(|o| query_data(o, &matrix, None)),
            r#"{"resultType":"matrix","result":[{"metric":{},"values":[[0,"1.5"],[15,"2"]]}]}"#
        );
        assert_eq!(
            text(|o| query_data(
                o,
                &Value::String {
                    t: 0,
                    v: "x\"".into()
                },
                None
            )),
            r#"{"resultType":"string","result":[0,"x\""]}"#
        );
    }
}
