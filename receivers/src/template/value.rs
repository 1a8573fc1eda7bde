//! Dynamic values the evaluator works with, Alertmanager's data model among them, and how Go's
//! `fmt` prints each (`%v`), which is what template output shows.

use std::fmt::Write as _;
use std::rc::Rc;

use jiff::Timestamp;
use jiff::ZonedDateTime;
use jiff::tz::TimeZone;

use super::timefmt;
use crate::data::{AlertData, AlertStatus, KeyValues, NotificationData};

/// A template value. Cheap to clone: everything big sits behind an `Rc`.
#[derive(Clone, Debug)]
pub(crate) enum Value {
    Nil,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(Rc<str>),
    /// `safeHtml`'s result: printed unescaped in HTML mode.
    SafeHtml(Rc<str>),
    /// `safeUrl`'s result: printed unescaped in HTML mode.
    SafeUrl(Rc<str>),
    List(Rc<Vec<Value>>),
    /// Alertmanager's `Alerts`: a list of alerts with `.Firing` and `.Resolved`.
    Alerts(Rc<Vec<Value>>),
    /// Alertmanager's `KV` (labels, annotations): a map with methods.
    Kv(Rc<KeyValues>),
    /// Alertmanager's `Pairs`, from `.SortedPairs`.
    Pairs(Rc<Vec<(String, String)>>),
    Pair(Rc<(String, String)>),
    Alert(Rc<AlertView>),
    Data(Rc<DataView>),
    Time(Rc<ZonedDateTime>),
    /// Go's `time.Duration`, in nanoseconds.
    Duration(i64),
    /// A Go `map[string]string` (Prometheus's labels), sorted by key as Go prints and ranges it.
    StrMap(Rc<StrPairs>),
    /// A Go `map[string]interface{}` (Prometheus's `args`), sorted by key.
    AnyMap(Rc<Vec<(String, Value)>>),
    /// One sample of a Prometheus `query` result (`*template.sample`).
    Sample(Rc<SampleView>),
    /// A Prometheus `query` result (`template.queryResult`).
    Samples(Rc<Vec<Rc<SampleView>>>),
    /// What Prometheus's alerting-rule templates see as `.`.
    RuleData(Rc<RuleDataView>),
}

/// Name-value pairs sorted by name, unique names: a Go `map[string]string`.
pub(crate) type StrPairs = Vec<(String, String)>;

/// The value of `name` in pairs sorted by name.
pub(crate) fn pairs_get<'p>(pairs: &'p [(String, String)], name: &str) -> Option<&'p str> {
    pairs
        .binary_search_by(|(key, _)| key.as_str().cmp(name))
        .ok()
        .map(|index| pairs[index].1.as_str())
}

/// Prometheus's `sample`: `.Labels` and `.Value`.
#[derive(Debug)]
pub(crate) struct SampleView {
    pub labels: Rc<StrPairs>,
    pub value: f64,
}

/// Prometheus's alert template data: `.Labels`, `.ExternalLabels`, `.ExternalURL`, `.Value`.
#[derive(Debug)]
pub(crate) struct RuleDataView {
    pub labels: Rc<StrPairs>,
    pub external_labels: Rc<StrPairs>,
    pub external_url: Rc<str>,
    pub value: f64,
}

/// Alertmanager's `template.Alert`, ready for field access.
#[derive(Debug)]
pub(crate) struct AlertView {
    pub status: &'static str,
    pub labels: Rc<KeyValues>,
    pub annotations: Rc<KeyValues>,
    pub starts_at: Rc<ZonedDateTime>,
    pub ends_at: Rc<ZonedDateTime>,
    pub generator_url: Rc<str>,
    pub fingerprint: Rc<str>,
}

/// Alertmanager's `template.Data`, ready for field access.
#[derive(Debug)]
pub(crate) struct DataView {
    pub receiver: Rc<str>,
    pub status: &'static str,
    pub alerts: Rc<Vec<Value>>,
    pub group_labels: Rc<KeyValues>,
    pub common_labels: Rc<KeyValues>,
    pub common_annotations: Rc<KeyValues>,
    pub external_url: Rc<str>,
    pub group_key: Rc<str>,
    pub notification_reason: Rc<str>,
}

/// Go's zero `time.Time` (0001-01-01 00:00:00 UTC), which Alertmanager shows as a firing
/// alert's end.
const GO_ZERO_TIME_UNIX_SECONDS: i64 = -62_135_596_800;

pub(crate) fn zero_time() -> ZonedDateTime {
    let timestamp =
        Timestamp::from_second(GO_ZERO_TIME_UNIX_SECONDS).unwrap_or(Timestamp::UNIX_EPOCH);
    timestamp.to_zoned_datetime(TimeZone::UTC)
}

pub(crate) fn is_zero_time(time: &ZonedDateTime) -> bool {
    time.timestamp().as_second() == GO_ZERO_TIME_UNIX_SECONDS
        && time.timestamp().subsec_nanosecond() == 0
}

/// Go's `regexp.QuoteMeta`: Alertmanager passes the receiver's name through it before templates
/// see it, so `.Receiver` of `team.a` is `team\.a` there, and here too.
fn quote_meta(text: &str) -> String {
    let mut quoted = String::with_capacity(text.len());
    for c in text.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            quoted.push('\\');
        }
        quoted.push(c);
    }
    quoted
}

impl Value {
    pub(crate) fn str(text: impl Into<Rc<str>>) -> Value {
        Value::Str(text.into())
    }

    pub(crate) fn from_data(data: &NotificationData) -> Value {
        let alerts = data
            .alerts
            .iter()
            .map(|alert| Value::Alert(Rc::new(alert_view(alert))))
            .collect();
        Value::Data(Rc::new(DataView {
            receiver: quote_meta(&data.receiver).into(),
            status: data.status.as_str(),
            alerts: Rc::new(alerts),
            group_labels: Rc::new(data.group_labels.clone()),
            common_labels: Rc::new(data.common_labels.clone()),
            common_annotations: Rc::new(data.common_annotations.clone()),
            external_url: data.external_url.as_str().into(),
            group_key: data.group_key.as_str().into(),
            notification_reason: data.reason.as_str().into(),
        }))
    }

    /// Go's truth: false, 0, nil and empty things are false; structs are always true.
    pub(crate) fn is_true(&self) -> bool {
        match self {
            Value::Nil => false,
            Value::Bool(value) => *value,
            Value::Int(value) => *value != 0,
            Value::Float(value) => *value != 0.0,
            Value::Str(text) | Value::SafeHtml(text) | Value::SafeUrl(text) => !text.is_empty(),
            Value::List(items) | Value::Alerts(items) => !items.is_empty(),
            Value::Kv(map) => !map.is_empty(),
            Value::Pairs(pairs) => !pairs.is_empty(),
            Value::Duration(nanos) => *nanos != 0,
            Value::StrMap(pairs) => !pairs.is_empty(),
            Value::AnyMap(pairs) => !pairs.is_empty(),
            Value::Samples(samples) => !samples.is_empty(),
            Value::Pair(_)
            | Value::Alert(_)
            | Value::Data(_)
            | Value::Time(_)
            | Value::Sample(_)
            | Value::RuleData(_) => true,
        }
    }

    /// The Go type a user would see in an error message.
    pub(crate) fn type_name(&self) -> &'static str {
        match self {
            Value::Nil => "<nil>",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Float(_) => "float64",
            Value::Str(_) => "string",
            Value::SafeHtml(_) => "template.HTML",
            Value::SafeUrl(_) => "template.URL",
            Value::List(items)
                if items.iter().all(|item| matches!(item, Value::Str(_))) && !items.is_empty() =>
            {
                "[]string"
            }
            Value::List(items)
                if items.iter().all(|item| matches!(item, Value::Alert(_)))
                    && !items.is_empty() =>
            {
                "[]template.Alert"
            }
            Value::List(_) => "[]interface {}",
            Value::Alerts(_) => "template.Alerts",
            Value::Kv(_) => "template.KV",
            Value::Pairs(_) => "template.Pairs",
            Value::Pair(_) => "template.Pair",
            Value::Alert(_) => "template.Alert",
            Value::Data(_) => "*template.Data",
            Value::Time(_) => "time.Time",
            Value::Duration(_) => "time.Duration",
            Value::StrMap(_) => "map[string]string",
            Value::AnyMap(_) => "map[string]interface {}",
            Value::Sample(_) => "*template.sample",
            Value::Samples(_) => "template.queryResult",
            Value::RuleData(_) => {
                "struct { Labels map[string]string; ExternalLabels map[string]string; \
                 ExternalURL string; Value interface {} }"
            }
        }
    }

    /// The text of a string-like value (Go's string kind).
    pub(crate) fn as_text(&self) -> Option<&str> {
        match self {
            Value::Str(text) | Value::SafeHtml(text) | Value::SafeUrl(text) => Some(text),
            _ => None,
        }
    }

    /// Go's `fmt.Sprint` of one value.
    pub(crate) fn to_display(&self) -> String {
        let mut out = String::new();
        write_value(self, &mut out);
        out
    }

    /// Approximate heap size, to bound what a template can build in variables.
    pub(crate) fn text_len(&self) -> usize {
        match self {
            Value::Str(text) | Value::SafeHtml(text) | Value::SafeUrl(text) => text.len(),
            Value::List(items) => items.iter().map(Value::text_len).sum(),
            Value::StrMap(pairs) => pairs_len(pairs),
            Value::AnyMap(pairs) => pairs
                .iter()
                .map(|(key, value)| key.len() + value.text_len())
                .sum(),
            Value::Sample(sample) => pairs_len(&sample.labels),
            Value::Samples(samples) => samples.iter().map(|s| pairs_len(&s.labels)).sum(),
            _ => 0,
        }
    }
}

fn pairs_len(pairs: &[(String, String)]) -> usize {
    pairs
        .iter()
        .map(|(name, value)| name.len() + value.len())
        .sum()
}

fn alert_view(alert: &AlertData) -> AlertView {
    AlertView {
        status: match alert.status {
            AlertStatus::Firing => "firing",
            AlertStatus::Resolved => "resolved",
        },
        labels: Rc::new(alert.labels.clone()),
        annotations: Rc::new(alert.annotations.clone()),
        starts_at: Rc::new(alert.starts_at.to_zoned_datetime(TimeZone::UTC)),
        ends_at: Rc::new(
            alert
                .ends_at
                .map(|end| end.to_zoned_datetime(TimeZone::UTC))
                .unwrap_or_else(zero_time),
        ),
        generator_url: alert.generator_url.as_str().into(),
        fingerprint: alert.fingerprint.as_str().into(),
    }
}

/// Alertmanager's `KV.SortedPairs`: `alertname` first, then the rest by name.
pub(crate) fn sorted_pairs(map: &KeyValues) -> Vec<(String, String)> {
    let mut pairs = Vec::with_capacity(map.len());
    if let Some(value) = map.get("alertname") {
        pairs.push(("alertname".to_string(), value.clone()));
    }
    pairs.extend(
        map.iter()
            .filter(|(name, _)| name.as_str() != "alertname")
            .map(|(name, value)| (name.clone(), value.clone())),
    );
    pairs
}

fn write_pairs(pairs: &[(String, String)], out: &mut String) {
    for (index, (name, value)) in pairs.iter().enumerate() {
        if index > 0 {
            out.push_str(", ");
        }
        out.push_str(name);
        out.push('=');
        out.push_str(value);
    }
}

/// Go's `%v`, including the `String()` methods Alertmanager's types and `time` have.
pub(crate) fn write_value(value: &Value, out: &mut String) {
    match value {
        Value::Nil => out.push_str("<nil>"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Int(i) => {
            let _ = write!(out, "{i}");
        }
        Value::Float(f) => out.push_str(&format_float_g(*f, None, false)),
        Value::Str(text) | Value::SafeHtml(text) | Value::SafeUrl(text) => out.push_str(text),
        Value::List(items) | Value::Alerts(items) => {
            out.push('[');
            for (index, item) in items.iter().enumerate() {
                if index > 0 {
                    out.push(' ');
                }
                write_value(item, out);
            }
            out.push(']');
        }
        Value::Kv(map) => write_pairs(&sorted_pairs(map), out),
        Value::Pairs(pairs) => write_pairs(pairs, out),
        Value::Pair(pair) => {
            let _ = write!(out, "{{{} {}}}", pair.0, pair.1);
        }
        Value::Alert(alert) => {
            out.push('{');
            out.push_str(alert.status);
            out.push(' ');
            write_pairs(&sorted_pairs(&alert.labels), out);
            out.push(' ');
            write_pairs(&sorted_pairs(&alert.annotations), out);
            out.push(' ');
            out.push_str(&timefmt::go_time_string(&alert.starts_at));
            out.push(' ');
            out.push_str(&timefmt::go_time_string(&alert.ends_at));
            let _ = write!(out, " {} {}}}", alert.generator_url, alert.fingerprint);
        }
        Value::Data(data) => {
            let _ = write!(out, "&{{{} {} ", data.receiver, data.status);
            write_value(&Value::Alerts(data.alerts.clone()), out);
            for map in [
                &data.group_labels,
                &data.common_labels,
                &data.common_annotations,
            ] {
                out.push(' ');
                write_pairs(&sorted_pairs(map), out);
            }
            let _ = write!(out, " {}}}", data.external_url);
        }
        Value::Time(time) => out.push_str(&timefmt::go_time_string(time)),
        Value::Duration(nanos) => out.push_str(&timefmt::go_duration_string(*nanos)),
        Value::StrMap(pairs) => write_go_map(pairs, out),
        Value::AnyMap(pairs) => {
            out.push_str("map[");
            for (index, (name, value)) in pairs.iter().enumerate() {
                if index > 0 {
                    out.push(' ');
                }
                out.push_str(name);
                out.push(':');
                write_value(value, out);
            }
            out.push(']');
        }
        Value::Sample(sample) => write_sample(sample, out),
        Value::Samples(samples) => {
            out.push('[');
            for (index, sample) in samples.iter().enumerate() {
                if index > 0 {
                    out.push(' ');
                }
                // Go prints nested pointers as addresses; the contents say more and are stable.
                write_sample(sample, out);
            }
            out.push(']');
        }
        Value::RuleData(data) => {
            out.push('{');
            write_go_map(&data.labels, out);
            out.push(' ');
            write_go_map(&data.external_labels, out);
            out.push(' ');
            out.push_str(&data.external_url);
            out.push(' ');
            out.push_str(&format_float_g(data.value, None, false));
            out.push('}');
        }
    }
}

/// Go's `%v` of a `map[string]string`: `map[a:1 b:2]`, keys sorted.
fn write_go_map(pairs: &[(String, String)], out: &mut String) {
    out.push_str("map[");
    for (index, (name, value)) in pairs.iter().enumerate() {
        if index > 0 {
            out.push(' ');
        }
        out.push_str(name);
        out.push(':');
        out.push_str(value);
    }
    out.push(']');
}

/// A `*template.sample` as a template prints it: text/template prints what a pointer points
/// to, `{map[…] 1.5}` (`printf "%v"` adds Go's `&`).
fn write_sample(sample: &SampleView, out: &mut String) {
    out.push('{');
    write_go_map(&sample.labels, out);
    out.push(' ');
    out.push_str(&format_float_g(sample.value, None, false));
    out.push('}');
}

/// Significant digits and decimal exponent of |f|: 1234.5 is ("12345", 3). `precision` is the
/// number of significant digits, or `None` for the shortest that round-trips.
fn decimal_digits(f: f64, precision: Option<usize>) -> (String, i32) {
    let scientific = match precision {
        Some(digits) => format!("{:.*e}", digits.saturating_sub(1), f.abs()),
        None => format!("{:e}", f.abs()),
    };
    let (mantissa, exponent) = scientific.split_once('e').unwrap_or((&scientific, "0"));
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    (digits, exponent.parse().unwrap_or(0))
}

fn non_finite(f: f64) -> Option<String> {
    if f.is_nan() {
        Some("NaN".into())
    } else if f.is_infinite() {
        Some(if f > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        })
    } else {
        None
    }
}

fn exponent_suffix(exponent: i32, upper: bool) -> String {
    let sign = if exponent < 0 { '-' } else { '+' };
    format!(
        "{}{sign}{:02}",
        if upper { 'E' } else { 'e' },
        exponent.unsigned_abs()
    )
}

/// Go's `%g` (`precision` None: shortest, as `%v` prints floats).
pub(crate) fn format_float_g(f: f64, precision: Option<usize>, upper: bool) -> String {
    if let Some(text) = non_finite(f) {
        return text;
    }
    let precision = precision.map(|p| p.max(1));
    let (mut digits, exponent) = decimal_digits(f, precision);
    while digits.len() > 1 && digits.ends_with('0') {
        digits.pop();
    }
    let sign = if f.is_sign_negative() { "-" } else { "" };
    // strconv's rule: shortest formatting switches to an exponent at 1e6 (`%v` of 1e6 is
    // "1e+06"), an explicit precision at 10^precision.
    let exponent_limit = precision.map_or(6, |p| p as i32);
    if exponent < -4 || exponent >= exponent_limit {
        let mut text = format!("{sign}{}", &digits[..1]);
        if digits.len() > 1 {
            text.push('.');
            text.push_str(&digits[1..]);
        }
        text.push_str(&exponent_suffix(exponent, upper));
        return text;
    }
    let mut text = sign.to_string();
    if exponent < 0 {
        text.push_str("0.");
        text.push_str(&"0".repeat((-exponent - 1) as usize));
        text.push_str(&digits);
    } else {
        let integer_len = exponent as usize + 1;
        if digits.len() <= integer_len {
            text.push_str(&digits);
            text.push_str(&"0".repeat(integer_len - digits.len()));
        } else {
            text.push_str(&digits[..integer_len]);
            text.push('.');
            text.push_str(&digits[integer_len..]);
        }
    }
    text
}

/// Go's `%e` with a precision.
pub(crate) fn format_float_e(f: f64, precision: usize, upper: bool) -> String {
    if let Some(text) = non_finite(f) {
        return text;
    }
    let (digits, exponent) = decimal_digits(f, Some(precision + 1));
    let sign = if f.is_sign_negative() { "-" } else { "" };
    let mut text = format!("{sign}{}", &digits[..1]);
    if precision > 0 {
        text.push('.');
        text.push_str(&digits[1..]);
    }
    text.push_str(&exponent_suffix(exponent, upper));
    text
}

/// Go's `%f` with a precision.
pub(crate) fn format_float_f(f: f64, precision: usize) -> String {
    if let Some(text) = non_finite(f) {
        return text;
    }
    let text = format!("{:.*}", precision, f.abs());
    if f.is_sign_negative() {
        format!("-{text}")
    } else {
        text
    }
}
