//! How promtool prints values in test failures: Go's `labels.String()`, `%E` floats, model and
//! Go durations, and the indented alert lists, so that a failure reads the same in both tools.

use crate::promql::parse::go_quote;
use std::fmt::Write as _;

/// A label set as promtool prints it: `{a="1", b="2"}`, names sorted.
pub fn labels_string(pairs: &[(String, String)]) -> String {
    let mut out = String::from("{");
    for (index, (name, value)) in pairs.iter().enumerate() {
        if index > 0 {
            out.push_str(", ");
        }
        let _ = write!(out, "{name}={}", go_quote(value));
    }
    out.push('}');
    out
}

/// Go's `strconv.FormatFloat(v, 'E', -1, 64)`: the shortest digits that read back as `v`,
/// with an exponent of at least two digits (`4E+00`, `3.5E-07`, `1E+100`).
pub fn go_float_e(value: f64) -> String {
    if value.is_nan() {
        return "NaN".to_string();
    }
    if value.is_infinite() {
        return if value > 0.0 { "+Inf" } else { "-Inf" }.to_string();
    }
    // Rust's `{:E}` prints the shortest round-trip digits too, with a bare exponent (`4E0`).
    let rust = format!("{value:E}");
    let Some((mantissa, exponent)) = rust.split_once('E') else {
        return rust;
    };
    let (sign, digits) = match exponent.strip_prefix('-') {
        Some(digits) => ('-', digits),
        None => ('+', exponent),
    };
    format!("{mantissa}E{sign}{digits:0>2}")
}

/// Go's `time.Duration.String()` for a whole number of milliseconds: `0s`, `1m0s`, `1h2m3s`,
/// `1.5s`, `500ms`.
pub fn go_duration(ms: i64) -> String {
    if ms == 0 {
        return "0s".to_string();
    }
    let sign = if ms < 0 { "-" } else { "" };
    let ms = ms.unsigned_abs();
    if ms < 1000 {
        return format!("{sign}{ms}ms");
    }
    let (hours, minutes) = (ms / 3_600_000, (ms / 60_000) % 60);
    let (seconds, millis) = ((ms / 1000) % 60, ms % 1000);
    let mut out = sign.to_string();
    if hours > 0 {
        let _ = write!(out, "{hours}h");
    }
    if hours > 0 || minutes > 0 {
        let _ = write!(out, "{minutes}m");
    }
    if millis == 0 {
        let _ = write!(out, "{seconds}s");
    } else {
        let fraction = format!("{millis:03}");
        let _ = write!(out, "{seconds}.{}s", fraction.trim_end_matches('0'));
    }
    out
}

/// Every line after the first prefixed with `indent` (promtool's `indentLines`).
pub fn indent_lines(text: &str, indent: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for (index, line) in text.split('\n').enumerate() {
        if index > 0 {
            out.push('\n');
            out.push_str(indent);
        }
        out.push_str(line);
    }
    out
}

/// One alert of a comparison: labels and annotations, each sorted by name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct AlertView {
    pub labels: Vec<(String, String)>,
    pub annotations: Vec<(String, String)>,
}

/// A list of alerts as promtool prints it: `[]`, or numbered entries with their labels and
/// annotations on separate lines.
pub fn alerts_string(alerts: &[AlertView]) -> String {
    if alerts.is_empty() {
        return "[]".to_string();
    }
    let mut out = String::from("[");
    for (index, alert) in alerts.iter().enumerate() {
        if index > 0 {
            out.push(',');
        }
        let entry = format!(
            "\nLabels:{}\nAnnotations:{}",
            labels_string(&alert.labels),
            labels_string(&alert.annotations)
        );
        let _ = write!(out, "\n{index}:{}", indent_lines(&entry, "  "));
    }
    out.push_str("\n]");
    out
}

/// One sample of a comparison.
#[derive(Debug, Clone, PartialEq)]
pub struct SampleView {
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

/// Samples as promtool prints them: `nil`, or `{labels} value` joined by `, `.
pub fn samples_string(samples: &[SampleView]) -> String {
    if samples.is_empty() {
        return "nil".to_string();
    }
    samples
        .iter()
        .map(|sample| {
            format!(
                "{} {}",
                labels_string(&sample.labels),
                go_float_e(sample.value)
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn floats_as_go_prints_them() {
        assert_eq!(go_float_e(4.0), "4E+00");
        assert_eq!(go_float_e(3.5), "3.5E+00");
        assert_eq!(go_float_e(1e100), "1E+100");
        assert_eq!(go_float_e(-0.00012345), "-1.2345E-04");
        assert_eq!(go_float_e(0.1 + 0.2), "3.0000000000000004E-01");
        assert_eq!(go_float_e(0.0), "0E+00");
        assert_eq!(go_float_e(f64::NAN), "NaN");
        assert_eq!(go_float_e(f64::NEG_INFINITY), "-Inf");
    }

    #[test]
    fn durations_as_go_prints_them() {
        assert_eq!(go_duration(0), "0s");
        assert_eq!(go_duration(500), "500ms");
        assert_eq!(go_duration(60_000), "1m0s");
        assert_eq!(go_duration(90_500), "1m30.5s");
        assert_eq!(go_duration(3_723_000), "1h2m3s");
        assert_eq!(go_duration(3_600_000), "1h0m0s");
    }

    #[test]
    fn alert_lists_as_promtool_prints_them() {
        assert_eq!(alerts_string(&[]), "[]");
        let alert = AlertView {
            labels: pairs(&[("alertname", "High"), ("job", "a")]),
            annotations: pairs(&[("summary", "x \"y\"")]),
        };
        let text = indent_lines(&alerts_string(&[alert.clone(), alert]), "            ");
        let entry = "              Labels:{alertname=\"High\", job=\"a\"}\n              Annotations:{summary=\"x \\\"y\\\"\"}";
        assert_eq!(
            text,
            format!("[\n            0:\n{entry},\n            1:\n{entry}\n            ]")
        );
    }

    #[test]
    fn sample_lists() {
        assert_eq!(samples_string(&[]), "nil");
        let samples = [
            SampleView {
                labels: pairs(&[("__name__", "x"), ("job", "a")]),
                value: 1.0,
            },
            SampleView {
                labels: Vec::new(),
                value: 2.5,
            },
        ];
        assert_eq!(
            samples_string(&samples),
            "{__name__=\"x\", job=\"a\"} 1E+00, {} 2.5E+00"
        );
    }
}
