//! Prometheus's template functions (its `template.Expander`'s `FuncMap`), with Go's argument
//! rules and Prometheus's exact output formats. Go's builtins and the functions Prometheus
//! shares with Alertmanager (`toUpper`, `toLower`, `match`, `reReplaceAll`, `safeHtml`) come
//! from [`super::funcs`].

#![deny(clippy::disallowed_methods)]

use std::rc::Rc;

use jiff::Timestamp;
use jiff::tz::TimeZone;

use super::funcs::{FuncContext, query_escape, title_case};
use super::value::{SampleView, Value, format_float_g, pairs_get};

/// Prometheus's functions beyond Go's builtins.
pub(crate) const FUNCTIONS: &[&str] = &[
    "query",
    "first",
    "label",
    "value",
    "strvalue",
    "args",
    "reReplaceAll",
    "safeHtml",
    "match",
    "title",
    "toUpper",
    "toLower",
    "graphLink",
    "tableLink",
    "sortByLabel",
    "stripPort",
    "stripDomain",
    "humanize",
    "humanize1024",
    "humanizeDuration",
    "humanizePercentage",
    "humanizeTimestamp",
    "toTime",
    "toDuration",
    "now",
    "pathPrefix",
    "externalURL",
    "parseDuration",
    "urlQueryEscape",
];

/// The most samples one `query` may return into a template, so that a careless expression
/// cannot hold the whole database in a template's memory.
pub(crate) const MAX_QUERY_SAMPLES: usize = 100_000;

/// Go's `errNaNOrInf` from Prometheus's helpers.
const NAN_OR_INF: &str = "value is NaN or Inf";

/// Runs a Prometheus function; None for names it leaves to the shared implementations.
pub(crate) fn call(
    name: &str,
    args: &[Value],
    context: &mut FuncContext<'_>,
) -> Option<Result<Value, String>> {
    let result = match name {
        "query" => query(args, context),
        "first" => first(args),
        "label" => arity(name, args, 2).and_then(|()| {
            let label = string_arg(args, 0)?;
            let sample = sample_arg(args, 1)?;
            Ok(Value::str(pairs_get(&sample.labels, label).unwrap_or("")))
        }),
        "value" => arity(name, args, 1).and_then(|()| Ok(Value::Float(sample_arg(args, 0)?.value))),
        "strvalue" => arity(name, args, 1).and_then(|()| {
            let sample = sample_arg(args, 0)?;
            Ok(Value::str(
                pairs_get(&sample.labels, "__value__").unwrap_or(""),
            ))
        }),
        "args" => Ok(arguments_map(args)),
        "title" => arity(name, args, 1)
            .and_then(|()| Ok(Value::str(title_case(string_arg(args, 0)?, false)))),
        "graphLink" | "tableLink" => arity(name, args, 1).and_then(|()| {
            let tab = if name == "graphLink" { 0 } else { 1 };
            Ok(Value::str(format!(
                "/graph?g0.expr={}&g0.tab={tab}",
                query_escape(string_arg(args, 0)?)
            )))
        }),
        "sortByLabel" => sort_by_label(args),
        "stripPort" => arity(name, args, 1).and_then(|()| {
            let host_port = string_arg(args, 0)?;
            Ok(Value::str(
                split_host_port(host_port).map_or(host_port, |(host, _)| host),
            ))
        }),
        "stripDomain" => {
            arity(name, args, 1).and_then(|()| Ok(Value::str(strip_domain(string_arg(args, 0)?))))
        }
        "humanize" => number_arg(name, args).map(|v| Value::str(humanize(v))),
        "humanize1024" => number_arg(name, args).map(|v| Value::str(humanize_1024(v))),
        "humanizeDuration" => number_arg(name, args).map(|v| Value::str(humanize_duration(v))),
        "humanizePercentage" => number_arg(name, args)
            .map(|v| Value::str(format!("{}%", format_float_g(v * 100.0, Some(4), false)))),
        "humanizeTimestamp" => number_arg(name, args).and_then(humanize_timestamp),
        "toTime" => number_arg(name, args).and_then(|v| {
            let time = float_to_time(v)?;
            Ok(Value::Time(Rc::new(time.to_zoned_datetime(TimeZone::UTC))))
        }),
        "toDuration" => number_arg(name, args).and_then(|v| {
            if v.is_nan() || v.is_infinite() {
                return Err(NAN_OR_INF.to_string());
            }
            let nanos = v * 1e9;
            if !(-9.223_372_036_854_776e18..9.223_372_036_854_776e18).contains(&nanos) {
                return Err(format!(
                    "{} cannot be represented as a nanoseconds duration since it overflows int64",
                    format_float_g(v, None, false)
                ));
            }
            Ok(Value::Duration(nanos as i64))
        }),
        "now" => arity(name, args, 0)
            .map(|()| Value::Float(context.now.as_millisecond() as f64 / 1000.0)),
        "pathPrefix" => arity(name, args, 0).map(|()| {
            let url = context.prometheus.map_or("", |env| env.external_url);
            Value::str(url_path(url))
        }),
        "externalURL" => arity(name, args, 0)
            .map(|()| Value::str(context.prometheus.map_or("", |env| env.external_url))),
        "parseDuration" => arity(name, args, 1).and_then(|()| {
            let millis = parse_prometheus_duration(string_arg(args, 0)?)?;
            Ok(Value::Float(millis as f64 / 1000.0))
        }),
        "urlQueryEscape" => {
            arity(name, args, 1).and_then(|()| Ok(Value::str(query_escape(string_arg(args, 0)?))))
        }
        _ => return None,
    };
    Some(result)
}

fn arity(name: &str, args: &[Value], want: usize) -> Result<(), String> {
    if args.len() != want {
        return Err(format!(
            "wrong number of args for {name}: want {want} got {}",
            args.len()
        ));
    }
    Ok(())
}

fn string_arg(args: &[Value], index: usize) -> Result<&str, String> {
    match args.get(index) {
        Some(Value::Str(text)) => Ok(text),
        Some(other) => Err(format!(
            "wrong type for value; expected string; got {}",
            other.type_name()
        )),
        None => Err("missing argument".into()),
    }
}

fn sample_arg(args: &[Value], index: usize) -> Result<Rc<SampleView>, String> {
    match args.get(index) {
        Some(Value::Sample(sample)) => Ok(sample.clone()),
        // Go passes nil as a nil *sample, whose fields the function then dereferences.
        Some(Value::Nil) => {
            Err("runtime error: invalid memory address or nil pointer dereference".into())
        }
        Some(other) => Err(format!(
            "wrong type for value; expected *template.sample; got {}",
            other.type_name()
        )),
        None => Err("missing argument".into()),
    }
}

fn samples_arg(args: &[Value], index: usize) -> Result<Rc<Vec<Rc<SampleView>>>, String> {
    match args.get(index) {
        Some(Value::Samples(samples)) => Ok(samples.clone()),
        Some(Value::Nil) => Ok(Rc::new(Vec::new())),
        Some(other) => Err(format!(
            "wrong type for value; expected template.queryResult; got {}",
            other.type_name()
        )),
        None => Err("missing argument".into()),
    }
}

fn query(args: &[Value], context: &mut FuncContext<'_>) -> Result<Value, String> {
    arity("query", args, 1)?;
    let expr = string_arg(args, 0)?;
    let Some(env) = context.prometheus else {
        return Err("queries are not available here".into());
    };
    let samples = env.query.query(expr)?;
    if samples.len() > MAX_QUERY_SAMPLES {
        return Err(format!(
            "query returned {} samples, more than the limit of {MAX_QUERY_SAMPLES}",
            samples.len()
        ));
    }
    let samples = samples
        .into_iter()
        .map(|sample| {
            let mut labels = sample.labels;
            labels.sort_by(|a, b| a.0.cmp(&b.0));
            labels.dedup_by(|later, earlier| later.0 == earlier.0);
            Rc::new(SampleView {
                labels: Rc::new(labels),
                value: sample.value,
            })
        })
        .collect();
    Ok(Value::Samples(Rc::new(samples)))
}

fn first(args: &[Value]) -> Result<Value, String> {
    arity("first", args, 1)?;
    samples_arg(args, 0)?
        .first()
        .map(|sample| Value::Sample(sample.clone()))
        .ok_or_else(|| "first() called on vector with no elements".to_string())
}

/// `args`: a map from `arg0`, `arg1`, … to the arguments, kept sorted by key as Go prints it.
fn arguments_map(args: &[Value]) -> Value {
    let mut pairs: Vec<(String, Value)> = args
        .iter()
        .enumerate()
        .map(|(index, value)| (format!("arg{index}"), value.clone()))
        .collect();
    pairs.sort_by(|a, b| a.0.cmp(&b.0));
    Value::AnyMap(Rc::new(pairs))
}

fn sort_by_label(args: &[Value]) -> Result<Value, String> {
    arity("sortByLabel", args, 2)?;
    let label = string_arg(args, 0)?;
    let mut samples: Vec<Rc<SampleView>> = samples_arg(args, 1)?.as_ref().clone();
    // Stable, as Go's sort.Stable: equal label values keep the query's order.
    samples.sort_by(|a, b| {
        pairs_get(&a.labels, label)
            .unwrap_or("")
            .cmp(pairs_get(&b.labels, label).unwrap_or(""))
    });
    Ok(Value::Samples(Rc::new(samples)))
}

/// One numeric argument, converted as Prometheus's `ConvertToFloat` does.
fn number_arg(name: &str, args: &[Value]) -> Result<f64, String> {
    arity(name, args, 1)?;
    convert_to_float(&args[0])
}

/// Prometheus's `ConvertToFloat`: floats, integers, durations (as seconds) and numeric
/// strings; anything else is an error naming its Go type.
pub(crate) fn convert_to_float(value: &Value) -> Result<f64, String> {
    match value {
        Value::Float(f) => Ok(*f),
        Value::Int(i) => Ok(*i as f64),
        Value::Duration(nanos) => Ok(*nanos as f64 / 1e9),
        Value::Str(text) => parse_go_float(text),
        other => Err(format!("can't convert {} to float", other.type_name())),
    }
}

/// Go's `strconv.ParseFloat(text, 64)` for decimal input, with its error messages.
fn parse_go_float(text: &str) -> Result<f64, String> {
    let invalid = || format!("strconv.ParseFloat: parsing {text:?}: invalid syntax");
    // Rust accepts what Go accepts in decimal (signs, `inf`, `infinity`, `nan` in any case),
    // and nothing with spaces or underscores, which Go rejects too.
    let value: f64 = text.parse().map_err(|_| invalid())?;
    let unsigned = text.trim_start_matches(['+', '-']).to_ascii_lowercase();
    if value.is_infinite() && !unsigned.starts_with("inf") {
        return Err(format!(
            "strconv.ParseFloat: parsing {text:?}: value out of range"
        ));
    }
    Ok(value)
}

/// Prometheus's `humanize`: SI prefixes, four significant digits.
pub(crate) fn humanize(mut v: f64) -> String {
    if v == 0.0 || v.is_nan() || v.is_infinite() {
        return format_float_g(v, Some(4), false);
    }
    let mut prefix = "";
    if v.abs() >= 1.0 {
        for p in ["k", "M", "G", "T", "P", "E", "Z", "Y"] {
            if v.abs() < 1000.0 {
                break;
            }
            prefix = p;
            v /= 1000.0;
        }
    } else {
        for p in ["m", "u", "n", "p", "f", "a", "z", "y"] {
            if v.abs() >= 1.0 {
                break;
            }
            prefix = p;
            v *= 1000.0;
        }
    }
    format!("{}{prefix}", format_float_g(v, Some(4), false))
}

/// Prometheus's `humanize1024`: binary prefixes above 1, plain `%.4g` otherwise.
pub(crate) fn humanize_1024(mut v: f64) -> String {
    if v.abs() <= 1.0 || v.is_nan() || v.is_infinite() {
        return format_float_g(v, Some(4), false);
    }
    let mut prefix = "";
    for p in ["ki", "Mi", "Gi", "Ti", "Pi", "Ei", "Zi", "Yi"] {
        if v.abs() < 1024.0 {
            break;
        }
        prefix = p;
        v /= 1024.0;
    }
    format!("{}{prefix}", format_float_g(v, Some(4), false))
}

/// Prometheus's `humanizeDuration` (from prometheus/common): `1d 2h 3m 4s` down to whole
/// minutes, `1.234s` for seconds, SI prefixes below a second.
pub(crate) fn humanize_duration(mut v: f64) -> String {
    if v.is_nan() || v.is_infinite() {
        return format_float_g(v, Some(4), false);
    }
    if v == 0.0 {
        return format!("{}s", format_float_g(v, Some(4), false));
    }
    if v.abs() >= 1.0 {
        let sign = if v < 0.0 { "-" } else { "" };
        v = v.abs();
        let duration = go_float_to_int64(v);
        let seconds = duration % 60;
        let minutes = (duration / 60) % 60;
        let hours = (duration / 60 / 60) % 24;
        let days = duration / 60 / 60 / 24;
        if days != 0 {
            return format!("{sign}{days}d {hours}h {minutes}m {seconds}s");
        }
        if hours != 0 {
            return format!("{sign}{hours}h {minutes}m {seconds}s");
        }
        if minutes != 0 {
            return format!("{sign}{minutes}m {seconds}s");
        }
        return format!("{sign}{}s", format_float_g(v, Some(4), false));
    }
    let mut prefix = "";
    for p in ["m", "u", "n", "p", "f", "a", "z", "y"] {
        if v.abs() >= 1.0 {
            break;
        }
        prefix = p;
        v *= 1000.0;
    }
    format!("{}{prefix}s", format_float_g(v, Some(4), false))
}

/// Go's `int64(f)` as Prometheus's amd64 builds compute it: truncation toward zero, and
/// out of range (where the Go spec leaves the result to the machine) the x86 "integer
/// indefinite" value, `math.MinInt64`, which Prometheus's own amd64 tests pin.
fn go_float_to_int64(f: f64) -> i64 {
    const TWO_TO_63: f64 = 9_223_372_036_854_775_808.0;
    if f.is_nan() || !(-TWO_TO_63..TWO_TO_63).contains(&f) {
        i64::MIN
    } else {
        f as i64
    }
}

/// Prometheus's `FloatToTime`: Unix seconds to a time, truncated to the millisecond as
/// Prometheus's `model.Time` is.
fn float_to_time(v: f64) -> Result<Timestamp, String> {
    if v.is_nan() || v.is_infinite() {
        return Err(NAN_OR_INF.to_string());
    }
    let nanos = v * 1e9;
    // Go compares against MaxInt64/MinInt64 as floats, both ±2^63.
    if !(-9.223_372_036_854_776e18..=9.223_372_036_854_776e18).contains(&nanos) {
        return Err(format!(
            "{} cannot be represented as a nanoseconds timestamp since it overflows int64",
            format_float_g(v, None, false)
        ));
    }
    let millis = go_float_to_int64(nanos) / 1_000_000;
    Timestamp::from_millisecond(millis).map_err(|error| error.to_string())
}

fn humanize_timestamp(v: f64) -> Result<Value, String> {
    if v.is_nan() || v.is_infinite() {
        return Ok(Value::str(format_float_g(v, Some(4), false)));
    }
    let time = float_to_time(v)?.to_zoned_datetime(TimeZone::UTC);
    Ok(Value::str(super::timefmt::go_time_string(&time)))
}

/// Go's `net.SplitHostPort`: None where Go reports an error.
fn split_host_port(host_port: &str) -> Option<(&str, &str)> {
    let last_colon = host_port.rfind(':')?;
    let (host, search_from) = if host_port.starts_with('[') {
        let close = host_port.find(']')?;
        if close + 1 != last_colon {
            return None;
        }
        (&host_port[1..close], close + 1)
    } else {
        let host = &host_port[..last_colon];
        if host.contains(':') {
            return None;
        }
        (host, 0)
    };
    let after_open = if host_port.starts_with('[') { 1 } else { 0 };
    if host_port[after_open..].contains('[') || host_port[search_from..].contains(']') {
        return None;
    }
    Some((host, &host_port[last_colon + 1..]))
}

/// Prometheus's `stripDomain`: the first label of a host name, port kept; IP addresses stay.
fn strip_domain(host_port: &str) -> String {
    let (host, port) = split_host_port(host_port).unwrap_or((host_port, ""));
    if host.parse::<std::net::IpAddr>().is_ok() {
        return host_port.to_string();
    }
    let first_label = host.split('.').next().unwrap_or("");
    if port.is_empty() {
        return first_label.to_string();
    }
    // Go's net.JoinHostPort brackets hosts with a colon.
    if first_label.contains(':') {
        format!("[{first_label}]:{port}")
    } else {
        format!("{first_label}:{port}")
    }
}

/// The path of a URL (Go's `url.URL.Path`, left percent-encoded): what follows the authority,
/// up to a query or fragment.
fn url_path(url: &str) -> &str {
    let without_fragment = url.split('#').next().unwrap_or("");
    let without_query = without_fragment.split('?').next().unwrap_or("");
    match without_query.split_once("://") {
        Some((_, rest)) => rest.find('/').map_or("", |slash| &rest[slash..]),
        None => without_query,
    }
}

/// Prometheus's `model.ParseDuration` (`1h30m`, `2d`, `500ms`; units from biggest to
/// smallest, integers only), in milliseconds.
pub(crate) fn parse_prometheus_duration(text: &str) -> Result<i64, String> {
    const UNITS: [(&str, u64); 7] = [
        ("y", 365 * 24 * 3_600_000),
        ("w", 7 * 24 * 3_600_000),
        ("d", 24 * 3_600_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1_000),
        ("ms", 1),
    ];
    if text == "0" {
        return Ok(0);
    }
    if text.is_empty() {
        return Err("empty duration string".into());
    }
    let invalid = || format!("not a valid duration string: {text:?}");
    // time.Duration's range, in milliseconds.
    let max_millis = (i64::MAX as u64) / 1_000_000;
    let mut total: u64 = 0;
    let mut last_unit: Option<usize> = None;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(invalid());
        }
        let amount: u64 = rest[..digits].parse().map_err(|_| invalid())?;
        rest = &rest[digits..];
        let unit_len = rest.bytes().take_while(|b| !b.is_ascii_digit()).count();
        if unit_len == 0 {
            return Err(invalid());
        }
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let Some(position) = UNITS.iter().position(|(name, _)| *name == unit) else {
            return Err(format!("unknown unit {unit:?} in duration {text:?}"));
        };
        if last_unit.is_some_and(|last| position <= last) {
            return Err(invalid());
        }
        last_unit = Some(position);
        let millis = amount
            .checked_mul(UNITS[position].1)
            .filter(|m| *m <= max_millis)
            .ok_or("duration out of range")?;
        total = total
            .checked_add(millis)
            .filter(|t| *t <= max_millis)
            .ok_or("duration out of range")?;
    }
    i64::try_from(total).map_err(|_| "duration out of range".to_string())
}
