//! The functions templates can call: Go's `text/template` builtins and Alertmanager's
//! `DefaultFuncs`, with Go's argument rules (types are checked, not coerced).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::rc::Rc;

use jiff::Timestamp;
use jiff::tz::TimeZone;
use regex::Regex;

use super::goregex::{self, GoRegexError};
use super::prometheus::TemplateQuery;
use super::prometheus_funcs;
use super::timefmt;
use super::value::{Value, format_float_e, format_float_f, format_float_g, pairs_get, write_value};

/// Go's `text/template` builtins, callable in every dialect.
const BUILTINS: &[&str] = &[
    "and", "or", "not", "len", "index", "slice", "print", "printf", "println", "eq", "ne", "lt",
    "le", "gt", "ge", "html", "js", "urlquery", "call",
];

/// Alertmanager's `DefaultFuncs`.
const ALERTMANAGER_FUNCTIONS: &[&str] = &[
    "toUpper",
    "toLower",
    "title",
    "trimSpace",
    "join",
    "match",
    "safeHtml",
    "safeUrl",
    "urlUnescape",
    "reReplaceAll",
    "stringSlice",
    "date",
    "tz",
    "since",
    "humanizeDuration",
    "toJson",
];

/// Which function set a template sees: the parser rejects a name outside it, as Go's does
/// with a `FuncMap` that lacks it (`function "humanize" not defined`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    /// Notification templates: Alertmanager's functions.
    Alertmanager,
    /// Alerting-rule labels and annotations: Prometheus's functions.
    Prometheus,
}

/// Bounds regular expressions compiled from template text.
const REGEX_SIZE_LIMIT: usize = 1 << 20;
/// Go's fmt refuses widths and precisions beyond this (`%!(BADWIDTH)`).
const MAX_FORMAT_WIDTH: usize = 1_000_000;

pub(crate) fn is_function(name: &str, dialect: Dialect) -> bool {
    BUILTINS.contains(&name)
        || match dialect {
            Dialect::Alertmanager => ALERTMANAGER_FUNCTIONS.contains(&name),
            Dialect::Prometheus => prometheus_funcs::FUNCTIONS.contains(&name),
        }
}

/// What functions need beyond their arguments.
pub(crate) struct FuncContext<'a> {
    regexes: HashMap<String, Regex>,
    pub now: Timestamp,
    pub dialect: Dialect,
    /// The query engine and URL Prometheus's functions use; None in the Alertmanager dialect.
    pub prometheus: Option<PrometheusEnv<'a>>,
}

/// What Prometheus's functions see beyond their arguments.
#[derive(Clone, Copy)]
pub(crate) struct PrometheusEnv<'a> {
    pub query: &'a dyn TemplateQuery,
    pub external_url: &'a str,
}

impl<'a> FuncContext<'a> {
    /// Alertmanager's functions, with `since` measured from the wall clock.
    pub(crate) fn alertmanager() -> FuncContext<'a> {
        FuncContext {
            regexes: HashMap::new(),
            now: Timestamp::now(),
            dialect: Dialect::Alertmanager,
            prometheus: None,
        }
    }

    /// Prometheus's functions, evaluated at `now` (the rule evaluation time).
    pub(crate) fn prometheus(now: Timestamp, env: PrometheusEnv<'a>) -> FuncContext<'a> {
        FuncContext {
            regexes: HashMap::new(),
            now,
            dialect: Dialect::Prometheus,
            prometheus: Some(env),
        }
    }

    /// Go's `regexp.Compile` of `pattern`, cached for the render.
    pub(crate) fn regex(&mut self, pattern: &str) -> Result<Regex, GoRegexError> {
        if let Some(regex) = self.regexes.get(pattern) {
            return Ok(regex.clone());
        }
        let regex = goregex::compile(pattern, REGEX_SIZE_LIMIT)?;
        self.regexes.insert(pattern.to_string(), regex.clone());
        Ok(regex)
    }
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
        Some(value) => value.as_text().ok_or_else(|| {
            format!(
                "wrong type for value; expected string; got {}",
                value.type_name()
            )
        }),
        None => Err("missing argument".into()),
    }
}

fn string_list_arg(value: &Value) -> Result<Vec<String>, String> {
    match value {
        Value::List(items) => items
            .iter()
            .map(|item| {
                item.as_text().map(str::to_string).ok_or_else(|| {
                    format!(
                        "wrong type for value; expected []string; got {}",
                        value.type_name()
                    )
                })
            })
            .collect(),
        Value::Nil => Ok(Vec::new()),
        other => Err(format!(
            "wrong type for value; expected []string; got {}",
            other.type_name()
        )),
    }
}

fn int_arg(value: &Value) -> Result<i64, String> {
    match value {
        Value::Int(i) => Ok(*i),
        other => Err(format!(
            "cannot index slice/array with type {}",
            other.type_name()
        )),
    }
}

fn time_arg(args: &[Value], index: usize) -> Result<Rc<jiff::ZonedDateTime>, String> {
    match args.get(index) {
        Some(Value::Time(time)) => Ok(time.clone()),
        Some(other) => Err(format!(
            "wrong type for value; expected time.Time; got {}",
            other.type_name()
        )),
        None => Err("missing argument".into()),
    }
}

/// Calls a function other than `and`/`or` (which the evaluator runs lazily).
pub(crate) fn call(
    name: &str,
    args: Vec<Value>,
    context: &mut FuncContext<'_>,
) -> Result<Value, String> {
    if context.dialect == Dialect::Prometheus
        && let Some(result) = prometheus_funcs::call(name, &args, context)
    {
        return result;
    }
    match name {
        "not" => {
            arity(name, &args, 1)?;
            Ok(Value::Bool(!args[0].is_true()))
        }
        "and" | "or" => {
            // Reached only when called without arguments.
            Err(format!(
                "wrong number of args for {name}: want at least 1 got 0"
            ))
        }
        "len" => {
            arity(name, &args, 1)?;
            let length = match &args[0] {
                Value::Str(text) | Value::SafeHtml(text) | Value::SafeUrl(text) => text.len(),
                Value::List(items) | Value::Alerts(items) => items.len(),
                Value::Kv(map) => map.len(),
                Value::Pairs(pairs) => pairs.len(),
                Value::StrMap(pairs) => pairs.len(),
                Value::AnyMap(pairs) => pairs.len(),
                Value::Samples(samples) => samples.len(),
                other => {
                    return Err(format!(
                        "error calling len: len of type {}",
                        other.type_name()
                    ));
                }
            };
            Ok(Value::Int(length as i64))
        }
        "index" => index(args),
        "slice" => slice(args),
        "print" => Ok(Value::str(sprint(&args))),
        "println" => Ok(Value::str(sprintln(&args))),
        "printf" => {
            let format = string_arg(&args, 0)?;
            Ok(Value::str(sprintf(format, &args[1..])))
        }
        "eq" => {
            if args.len() < 2 {
                return Err("missing argument for comparison".into());
            }
            for other in &args[1..] {
                if equal(&args[0], other)? {
                    return Ok(Value::Bool(true));
                }
            }
            Ok(Value::Bool(false))
        }
        "ne" => {
            arity(name, &args, 2)?;
            Ok(Value::Bool(!equal(&args[0], &args[1])?))
        }
        "lt" | "le" | "gt" | "ge" => {
            arity(name, &args, 2)?;
            let ordering = compare(&args[0], &args[1])?;
            Ok(Value::Bool(match name {
                "lt" => ordering.is_lt(),
                "le" => ordering.is_le(),
                "gt" => ordering.is_gt(),
                _ => ordering.is_ge(),
            }))
        }
        "html" => Ok(Value::str(html_escape_text(&joined_args(&args)))),
        "js" => Ok(Value::str(js_escape(&joined_args(&args)))),
        "urlquery" => Ok(Value::str(query_escape(&joined_args(&args)))),
        "call" => Err("error calling call: templates here have no function values to call".into()),
        "toUpper" => {
            arity(name, &args, 1)?;
            Ok(Value::str(string_arg(&args, 0)?.to_uppercase()))
        }
        "toLower" => {
            arity(name, &args, 1)?;
            Ok(Value::str(string_arg(&args, 0)?.to_lowercase()))
        }
        "title" => {
            arity(name, &args, 1)?;
            Ok(Value::str(title_case(string_arg(&args, 0)?, true)))
        }
        "trimSpace" => {
            arity(name, &args, 1)?;
            Ok(Value::str(string_arg(&args, 0)?.trim()))
        }
        "join" => {
            // Alertmanager's join takes the separator first, for pipelines.
            arity(name, &args, 2)?;
            let separator = string_arg(&args, 0)?;
            Ok(Value::str(string_list_arg(&args[1])?.join(separator)))
        }
        "match" => {
            arity(name, &args, 2)?;
            // Go's regexp.MatchString returns the compile error as is.
            let regex = context
                .regex(string_arg(&args, 0)?)
                .map_err(|error| error.to_string())?;
            Ok(Value::Bool(regex.is_match(string_arg(&args, 1)?)))
        }
        "safeHtml" => {
            arity(name, &args, 1)?;
            Ok(Value::SafeHtml(string_arg(&args, 0)?.into()))
        }
        "safeUrl" => {
            arity(name, &args, 1)?;
            Ok(Value::SafeUrl(string_arg(&args, 0)?.into()))
        }
        "urlUnescape" => {
            arity(name, &args, 1)?;
            Ok(Value::str(query_unescape(string_arg(&args, 0)?)?))
        }
        "reReplaceAll" => {
            arity(name, &args, 3)?;
            // Go's regexp.MustCompile panics, and text/template reports the panic's text.
            let pattern = string_arg(&args, 0)?;
            let regex = context
                .regex(pattern)
                .map_err(|error| goregex::must_compile_message(pattern, &error))?;
            let replacement = string_arg(&args, 1)?;
            Ok(Value::str(
                regex
                    .replace_all(string_arg(&args, 2)?, replacement)
                    .into_owned(),
            ))
        }
        "stringSlice" => {
            let items = args
                .iter()
                .map(|arg| {
                    arg.as_text().map(Value::str).ok_or_else(|| {
                        format!(
                            "wrong type for value; expected string; got {}",
                            arg.type_name()
                        )
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Value::List(Rc::new(items)))
        }
        "date" => {
            arity(name, &args, 2)?;
            let layout = string_arg(&args, 0)?;
            Ok(Value::str(timefmt::format_layout(
                &*time_arg(&args, 1)?,
                layout,
            )))
        }
        "tz" => {
            arity(name, &args, 2)?;
            let zone_name = string_arg(&args, 0)?;
            let time = time_arg(&args, 1)?;
            let zone = match zone_name {
                "" | "UTC" => TimeZone::UTC,
                "Local" => TimeZone::system(),
                other => TimeZone::get(other)
                    .map_err(|_| format!("error calling tz: unknown time zone {other}"))?,
            };
            Ok(Value::Time(Rc::new(
                time.timestamp().to_zoned_datetime(zone),
            )))
        }
        "since" => {
            arity(name, &args, 1)?;
            let time = time_arg(&args, 0)?;
            let nanos = context.now.as_nanosecond() - time.timestamp().as_nanosecond();
            Ok(Value::Duration(
                nanos.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64,
            ))
        }
        "humanizeDuration" => {
            arity(name, &args, 1)?;
            let seconds = match &args[0] {
                Value::Int(i) => *i as f64,
                Value::Float(f) => *f,
                Value::Duration(nanos) => *nanos as f64 / 1e9,
                Value::Str(text) => text.trim().parse::<f64>().map_err(|_| {
                    format!("error calling humanizeDuration: can't convert {text:?} to float")
                })?,
                other => {
                    return Err(format!(
                        "error calling humanizeDuration: can't convert {} to float",
                        other.type_name()
                    ));
                }
            };
            Ok(Value::str(humanize_duration(seconds)))
        }
        "toJson" => {
            arity(name, &args, 1)?;
            Ok(Value::str(to_json(&args[0]).to_string()))
        }
        other => Err(format!("function \"{other}\" not defined")),
    }
}

/// `html`, `js` and `urlquery` print a single string argument as is, several as `fmt.Sprint`.
fn joined_args(args: &[Value]) -> String {
    match args {
        [single] if single.as_text().is_some() => single.as_text().unwrap_or_default().to_string(),
        _ => sprint(args),
    }
}

fn index(args: Vec<Value>) -> Result<Value, String> {
    let mut iter = args.into_iter();
    let mut item = iter
        .next()
        .ok_or("wrong number of args for index: want at least 1 got 0")?;
    for key in iter {
        item = match (&item, &key) {
            (Value::List(items) | Value::Alerts(items), _) => {
                let position = int_arg(&key)?;
                usize::try_from(position)
                    .ok()
                    .and_then(|p| items.get(p))
                    .cloned()
                    .ok_or_else(|| format!("error calling index: index out of range: {position}"))?
            }
            (Value::Pairs(pairs), _) => {
                let position = int_arg(&key)?;
                let pair = usize::try_from(position)
                    .ok()
                    .and_then(|p| pairs.get(p))
                    .cloned()
                    .ok_or_else(|| {
                        format!("error calling index: index out of range: {position}")
                    })?;
                Value::Pair(Rc::new(pair))
            }
            (Value::Kv(map), _) => {
                let name = key.as_text().ok_or_else(|| {
                    format!(
                        "error calling index: value has type {}; should be string",
                        key.type_name()
                    )
                })?;
                // Alertmanager uses missingkey=zero: a missing label reads as "".
                Value::str(map.get(name).map(String::as_str).unwrap_or(""))
            }
            (Value::Samples(samples), _) => {
                let position = int_arg(&key)?;
                usize::try_from(position)
                    .ok()
                    .and_then(|p| samples.get(p))
                    .map(|sample| Value::Sample(sample.clone()))
                    .ok_or_else(|| format!("error calling index: index out of range: {position}"))?
            }
            (Value::StrMap(pairs), _) => {
                let name = map_key(&key, "string")?;
                // A missing key is the element type's zero value, as Go's index returns.
                Value::str(pairs_get(pairs, name).unwrap_or(""))
            }
            (Value::AnyMap(pairs), _) => {
                let name = map_key(&key, "string")?;
                pairs
                    .iter()
                    .find(|(candidate, _)| candidate == name)
                    .map_or(Value::Nil, |(_, value)| value.clone())
            }
            (Value::Nil, _) => return Err("error calling index: index of untyped nil".into()),
            (other, _) => {
                return Err(format!(
                    "error calling index: can't index item of type {}",
                    other.type_name()
                ));
            }
        };
    }
    Ok(item)
}

fn map_key<'k>(key: &'k Value, want: &str) -> Result<&'k str, String> {
    key.as_text().ok_or_else(|| {
        format!(
            "error calling index: value has type {}; should be {want}",
            key.type_name()
        )
    })
}

fn slice(args: Vec<Value>) -> Result<Value, String> {
    let Some(item) = args.first() else {
        return Err("wrong number of args for slice: want at least 1 got 0".into());
    };
    if args.len() > 4 {
        return Err(format!(
            "error calling slice: too many slice indexes: {}",
            args.len() - 1
        ));
    }
    let indexes = args[1..]
        .iter()
        .map(int_arg)
        .collect::<Result<Vec<_>, _>>()?;
    let length = match item {
        Value::Str(text) => text.len(),
        Value::List(items) | Value::Alerts(items) => items.len(),
        Value::Samples(samples) => samples.len(),
        other => {
            return Err(format!(
                "error calling slice: can't slice item of type {}",
                other.type_name()
            ));
        }
    };
    let bounds = |position: Option<&i64>, default: usize| -> Result<usize, String> {
        match position {
            None => Ok(default),
            Some(p) => usize::try_from(*p)
                .ok()
                .filter(|p| *p <= length)
                .ok_or_else(|| format!("error calling slice: index out of range: {p}")),
        }
    };
    let start = bounds(indexes.first(), 0)?;
    let end = bounds(indexes.get(1), length)?;
    if start > end {
        return Err(format!(
            "error calling slice: invalid slice index: {start} > {end}"
        ));
    }
    match item {
        Value::Str(text) => {
            if indexes.len() == 3 {
                return Err("error calling slice: cannot 3-index slice a string".into());
            }
            text.get(start..end)
                .map(Value::str)
                .ok_or_else(|| "error calling slice: slice splits a UTF-8 character".to_string())
        }
        Value::List(items) | Value::Alerts(items) => {
            Ok(Value::List(Rc::new(items[start..end].to_vec())))
        }
        Value::Samples(samples) => Ok(Value::Samples(Rc::new(samples[start..end].to_vec()))),
        _ => Err("error calling slice: can't slice".into()),
    }
}

/// Go's `eq` for two values: basic kinds only (mixed int and float is an error, as in Go).
fn equal(left: &Value, right: &Value) -> Result<bool, String> {
    Ok(match (left, right) {
        (Value::Nil, Value::Nil) => true,
        (Value::Nil, _) | (_, Value::Nil) => false,
        (Value::Bool(a), Value::Bool(b)) => a == b,
        (Value::Int(a), Value::Int(b)) => a == b,
        (Value::Float(a), Value::Float(b)) => a == b,
        (Value::Duration(a), Value::Duration(b)) => a == b,
        (Value::Duration(a), Value::Int(b)) | (Value::Int(b), Value::Duration(a)) => a == b,
        (Value::Time(a), Value::Time(b)) => a.timestamp() == b.timestamp(),
        (Value::Pair(a), Value::Pair(b)) => a == b,
        (a, b) => match (a.as_text(), b.as_text()) {
            (Some(a), Some(b)) => a == b,
            _ => {
                if matches!(
                    a,
                    Value::List(_)
                        | Value::Alerts(_)
                        | Value::Kv(_)
                        | Value::Pairs(_)
                        | Value::StrMap(_)
                        | Value::AnyMap(_)
                        | Value::Samples(_)
                ) {
                    return Err(format!(
                        "error calling eq: non-comparable type {}",
                        a.type_name()
                    ));
                }
                return Err("error calling eq: incompatible types for comparison".into());
            }
        },
    })
}

fn compare(left: &Value, right: &Value) -> Result<std::cmp::Ordering, String> {
    match (left, right) {
        (Value::Int(a), Value::Int(b)) => Ok(a.cmp(b)),
        (Value::Duration(a), Value::Duration(b)) => Ok(a.cmp(b)),
        (Value::Duration(a), Value::Int(b)) => Ok(a.cmp(b)),
        (Value::Int(a), Value::Duration(b)) => Ok(a.cmp(b)),
        (Value::Float(a), Value::Float(b)) => a
            .partial_cmp(b)
            .ok_or_else(|| "error calling comparison: NaN is unordered".to_string()),
        (a, b) => match (a.as_text(), b.as_text()) {
            (Some(a), Some(b)) => Ok(a.cmp(b)),
            _ if std::mem::discriminant(a) == std::mem::discriminant(b) => Err(format!(
                "error calling comparison: invalid type for comparison: {}",
                a.type_name()
            )),
            _ => Err("error calling comparison: incompatible types for comparison".into()),
        },
    }
}

/// Go's `fmt.Sprint`: a space between operands when neither side is a string.
pub(crate) fn sprint(args: &[Value]) -> String {
    let mut out = String::new();
    for (index, arg) in args.iter().enumerate() {
        if index > 0 && arg.as_text().is_none() && args[index - 1].as_text().is_none() {
            out.push(' ');
        }
        write_value(arg, &mut out);
    }
    out
}

fn sprintln(args: &[Value]) -> String {
    let mut out = String::new();
    for (index, arg) in args.iter().enumerate() {
        if index > 0 {
            out.push(' ');
        }
        write_value(arg, &mut out);
    }
    out.push('\n');
    out
}

#[derive(Default)]
struct Flags {
    plus: bool,
    minus: bool,
    sharp: bool,
    zero: bool,
    space: bool,
}

/// Go's `fmt.Sprintf` for the verbs templates use: `%v %+v %s %q %d %b %o %x %X %c %U %e %E %f
/// %F %g %G %t %T %%`, flags `+ - # 0 space`, widths and precisions (also `*`).
pub(crate) fn sprintf(format: &str, args: &[Value]) -> String {
    let mut out = String::new();
    let mut next_arg = 0usize;
    let mut chars = format.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let mut flags = Flags::default();
        while let Some(&flag) = chars.peek() {
            match flag {
                '+' => flags.plus = true,
                '-' => flags.minus = true,
                '#' => flags.sharp = true,
                '0' => flags.zero = true,
                ' ' => flags.space = true,
                _ => break,
            }
            chars.next();
        }
        let read_number = |chars: &mut std::iter::Peekable<std::str::Chars<'_>>,
                           next_arg: &mut usize|
         -> Option<usize> {
            if chars.peek() == Some(&'*') {
                chars.next();
                let value = match args.get(*next_arg) {
                    Some(Value::Int(i)) => usize::try_from(*i).ok(),
                    _ => None,
                };
                *next_arg += 1;
                return value;
            }
            let mut number: Option<usize> = None;
            while let Some(digit) = chars.peek().and_then(|d| d.to_digit(10)) {
                number = Some(
                    number
                        .unwrap_or(0)
                        .saturating_mul(10)
                        .saturating_add(digit as usize),
                );
                chars.next();
            }
            number
        };
        let width = read_number(&mut chars, &mut next_arg);
        let precision = if chars.peek() == Some(&'.') {
            chars.next();
            Some(read_number(&mut chars, &mut next_arg).unwrap_or(0))
        } else {
            None
        };
        let Some(verb) = chars.next() else {
            out.push_str("%!(NOVERB)");
            break;
        };
        if verb == '%' {
            out.push('%');
            continue;
        }
        if width.is_some_and(|w| w > MAX_FORMAT_WIDTH)
            || precision.is_some_and(|p| p > MAX_FORMAT_WIDTH)
        {
            out.push_str("%!(BADWIDTH)");
            continue;
        }
        let Some(arg) = args.get(next_arg) else {
            let _ = write!(out, "%!{verb}(MISSING)");
            continue;
        };
        next_arg += 1;
        let (body, numeric) = match format_verb(verb, arg, precision, &flags) {
            Some(formatted) => formatted,
            None => {
                let _ = write!(out, "%!{verb}({}={})", arg.type_name(), arg.to_display());
                continue;
            }
        };
        out.push_str(&pad(body, width, &flags, numeric));
    }
    if next_arg < args.len() {
        out.push_str("%!(EXTRA ");
        for (index, arg) in args[next_arg..].iter().enumerate() {
            if index > 0 {
                out.push_str(", ");
            }
            let _ = write!(out, "{}={}", arg.type_name(), arg.to_display());
        }
        out.push(')');
    }
    out
}

fn pad(body: String, width: Option<usize>, flags: &Flags, numeric: bool) -> String {
    let Some(width) = width else { return body };
    let length = body.chars().count();
    if length >= width {
        return body;
    }
    let fill = width - length;
    if flags.minus {
        return format!("{body}{}", " ".repeat(fill));
    }
    if flags.zero && numeric {
        // Zero padding goes after the sign.
        let (sign, digits) = match body.strip_prefix(['-', '+']) {
            Some(rest) => (&body[..1], rest),
            None => ("", body.as_str()),
        };
        return format!("{sign}{}{digits}", "0".repeat(fill));
    }
    format!("{}{body}", " ".repeat(fill))
}

fn with_sign(text: String, negative: bool, flags: &Flags) -> String {
    if negative {
        text
    } else if flags.plus {
        format!("+{text}")
    } else if flags.space {
        format!(" {text}")
    } else {
        text
    }
}

fn format_int(value: i64, verb: char, flags: &Flags) -> Option<String> {
    let magnitude = value.unsigned_abs();
    let digits = match verb {
        'd' | 'v' => magnitude.to_string(),
        'b' => format!("{magnitude:b}"),
        'o' => format!("{}{magnitude:o}", if flags.sharp { "0" } else { "" }),
        'x' => format!("{}{magnitude:x}", if flags.sharp { "0x" } else { "" }),
        'X' => format!("{}{magnitude:X}", if flags.sharp { "0X" } else { "" }),
        'c' => {
            return u32::try_from(value)
                .ok()
                .and_then(char::from_u32)
                .map(String::from);
        }
        'q' => {
            return u32::try_from(value)
                .ok()
                .and_then(char::from_u32)
                .map(|c| format!("'{}'", quote_inner(&c.to_string(), '\'')));
        }
        'U' => return Some(format!("U+{magnitude:04X}")),
        'e' | 'E' | 'f' | 'F' | 'g' | 'G' => return None,
        _ => return None,
    };
    let signed = if value < 0 {
        format!("-{digits}")
    } else {
        digits
    };
    Some(with_sign(signed, value < 0, flags))
}

/// Formats one argument; None means a bad verb for the type (`%!d(string=x)`). The flag says
/// whether zero padding applies.
fn format_verb(
    verb: char,
    arg: &Value,
    precision: Option<usize>,
    flags: &Flags,
) -> Option<(String, bool)> {
    if verb == 'T' {
        return Some((arg.type_name().to_string(), false));
    }
    match arg {
        Value::Duration(nanos) if verb == 'v' || verb == 's' => {
            Some((timefmt::go_duration_string(*nanos), false))
        }
        Value::Int(i) | Value::Duration(i) => format_int(*i, verb, flags).map(|text| (text, true)),
        Value::Float(f) => {
            let text = match verb {
                'v' | 'g' => format_float_g(*f, precision, false),
                'G' => format_float_g(*f, precision, true),
                'e' => format_float_e(*f, precision.unwrap_or(6), false),
                'E' => format_float_e(*f, precision.unwrap_or(6), true),
                'f' | 'F' => format_float_f(*f, precision.unwrap_or(6)),
                _ => return None,
            };
            let negative = text.starts_with('-');
            Some((with_sign(text, negative, flags), true))
        }
        Value::Bool(b) => match verb {
            't' | 'v' => Some((b.to_string(), false)),
            _ => None,
        },
        Value::Str(_) | Value::SafeHtml(_) | Value::SafeUrl(_) => {
            let text = arg.as_text().unwrap_or_default();
            let truncated: String = match precision {
                Some(p) => text.chars().take(p).collect(),
                None => text.to_string(),
            };
            match verb {
                's' | 'v' => Some((truncated, false)),
                'q' => Some((
                    if flags.sharp && !truncated.contains('`') {
                        format!("`{truncated}`")
                    } else {
                        format!("\"{}\"", quote_inner(&truncated, '"'))
                    },
                    false,
                )),
                'x' => Some((
                    truncated.bytes().map(|b| format!("{b:02x}")).collect(),
                    false,
                )),
                'X' => Some((
                    truncated.bytes().map(|b| format!("{b:02X}")).collect(),
                    false,
                )),
                _ => None,
            }
        }
        Value::List(items) if verb != 'v' && verb != 's' => {
            // Go applies the verb to each element: `%q` of []string is `["a" "b"]`.
            let parts = items
                .iter()
                .map(|item| format_verb(verb, item, precision, flags).map(|(text, _)| text))
                .collect::<Option<Vec<_>>>()?;
            Some((format!("[{}]", parts.join(" ")), false))
        }
        _ => match verb {
            'v' | 's' => {
                let text = if flags.plus {
                    plus_v(arg)
                } else if let Value::Sample(_) = arg {
                    // fmt prints a pointer to a struct as &{…}.
                    format!("&{}", arg.to_display())
                } else {
                    arg.to_display()
                };
                Some((text, false))
            }
            _ => None,
        },
    }
}

/// `%+v` names struct fields.
fn plus_v(value: &Value) -> String {
    match value {
        Value::Pair(pair) => format!("{{Name:{} Value:{}}}", pair.0, pair.1),
        other => other.to_display(),
    }
}

/// The inside of Go's `strconv.Quote`: escapes, with printable characters kept.
fn quote_inner(text: &str, quote: char) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\x07' => out.push_str("\\a"),
            '\x08' => out.push_str("\\b"),
            '\x0c' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\x0b' => out.push_str("\\v"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c == '\x7f' => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if c.is_control() => {
                let code = c as u32;
                if code <= 0xffff {
                    let _ = write!(out, "\\u{code:04x}");
                } else {
                    let _ = write!(out, "\\U{code:08x}");
                }
            }
            c => out.push(c),
        }
    }
    out
}

/// text/template's `html` function (Go's `template.HTMLEscapeString`).
pub(crate) fn html_escape_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '"' => out.push_str("&#34;"),
            '\'' => out.push_str("&#39;"),
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\0' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// html/template's escaper for values interpolated into HTML: it also escapes `+`, so that
/// UTF-7 tricks do not apply.
pub(crate) fn html_escape_value(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '"' => out.push_str("&#34;"),
            '\'' => out.push_str("&#39;"),
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '+' => out.push_str("&#43;"),
            '\0' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// Go's `template.JSEscapeString`.
fn js_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '"' => out.push_str("\\\""),
            '<' => out.push_str("\\u003C"),
            '>' => out.push_str("\\u003E"),
            '&' => out.push_str("\\u0026"),
            '=' => out.push_str("\\u003D"),
            c if (c as u32) < 0x20 || c.is_control() => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

/// Go's `url.QueryEscape`.
pub(crate) fn query_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(byte as char)
            }
            b' ' => out.push('+'),
            other => {
                let _ = write!(out, "%{other:02X}");
            }
        }
    }
    out
}

/// Go's `url.QueryUnescape`.
fn query_unescape(text: &str) -> Result<String, String> {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        match bytes[index] {
            b'%' => {
                let hex = text
                    .get(index + 1..index + 3)
                    .filter(|h| h.bytes().all(|b| b.is_ascii_hexdigit()));
                let Some(byte) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) else {
                    let bad: String = text[index..].chars().take(3).collect();
                    return Err(format!(
                        "error calling urlUnescape: invalid URL escape {bad:?}"
                    ));
                };
                decoded.push(byte);
                index += 3;
            }
            b'+' => {
                decoded.push(b' ');
                index += 1;
            }
            other => {
                decoded.push(other);
                index += 1;
            }
        }
    }
    Ok(String::from_utf8_lossy(&decoded).into_owned())
}

/// `cases.Title(language.AmericanEnglish)`: each word's first letter upper case, the rest
/// lower case (Alertmanager) or left as they are (`lower_rest` false: Prometheus passes
/// `cases.NoLower`). Letters, digits, `_` and `'` keep a word going.
pub(crate) fn title_case(text: &str, lower_rest: bool) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_word = false;
    for c in text.chars() {
        if c.is_alphanumeric() || c == '_' || (c == '\'' && in_word) {
            if in_word && lower_rest {
                out.extend(c.to_lowercase());
            } else if in_word {
                out.push(c);
            } else {
                out.extend(c.to_uppercase());
            }
            in_word = true;
        } else {
            out.push(c);
            in_word = false;
        }
    }
    out
}

/// Prometheus's `humanizeDuration`: `1d 2h 3m 4s`, `1.5s`, `250ms`.
fn humanize_duration(seconds: f64) -> String {
    if seconds.is_nan() || seconds.is_infinite() {
        return format_float_g(seconds, Some(4), false);
    }
    if seconds.abs() >= 1.0 {
        let sign = if seconds < 0.0 { "-" } else { "" };
        let magnitude = seconds.abs();
        let whole = magnitude as i64;
        let (days, hours, minutes, secs) = (
            whole / 86_400,
            whole / 3_600 % 24,
            whole / 60 % 60,
            whole % 60,
        );
        if days != 0 {
            return format!("{sign}{days}d {hours}h {minutes}m {secs}s");
        }
        if hours != 0 {
            return format!("{sign}{hours}h {minutes}m {secs}s");
        }
        if minutes != 0 {
            return format!("{sign}{minutes}m {secs}s");
        }
        return format!("{sign}{}s", format_float_g(magnitude, Some(4), false));
    }
    if seconds == 0.0 {
        return "0s".into();
    }
    let mut value = seconds;
    let mut prefix = "";
    for unit in ["m", "u", "n", "p", "f", "a", "z", "y"] {
        if value.abs() >= 1.0 {
            break;
        }
        prefix = unit;
        value *= 1000.0;
    }
    format!("{}{prefix}s", format_float_g(value, Some(4), false))
}

/// `toJson`: Alertmanager's JSON names for its types.
fn to_json(value: &Value) -> serde_json::Value {
    use serde_json::{Map, Value as Json};
    let kv = |map: &crate::data::KeyValues| {
        Json::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), Json::String(v.clone())))
                .collect(),
        )
    };
    match value {
        Value::Nil => Json::Null,
        Value::Bool(b) => Json::Bool(*b),
        Value::Int(i) | Value::Duration(i) => Json::from(*i),
        Value::Float(f) => serde_json::Number::from_f64(*f).map_or(Json::Null, Json::Number),
        Value::Str(text) | Value::SafeHtml(text) | Value::SafeUrl(text) => {
            Json::String(text.to_string())
        }
        Value::List(items) | Value::Alerts(items) => {
            Json::Array(items.iter().map(to_json).collect())
        }
        Value::Kv(map) => kv(map),
        Value::Pairs(pairs) => Json::Array(
            pairs
                .iter()
                .map(|(n, v)| serde_json::json!({"Name": n, "Value": v}))
                .collect(),
        ),
        Value::Pair(pair) => serde_json::json!({"Name": pair.0, "Value": pair.1}),
        Value::Time(time) => Json::String(timefmt::format_layout(
            time,
            "2006-01-02T15:04:05.999999999Z07:00",
        )),
        Value::Alert(alert) => {
            let mut object = Map::new();
            object.insert("status".into(), Json::String(alert.status.into()));
            object.insert("labels".into(), kv(&alert.labels));
            object.insert("annotations".into(), kv(&alert.annotations));
            object.insert(
                "startsAt".into(),
                to_json(&Value::Time(alert.starts_at.clone())),
            );
            object.insert(
                "endsAt".into(),
                to_json(&Value::Time(alert.ends_at.clone())),
            );
            object.insert(
                "generatorURL".into(),
                Json::String(alert.generator_url.to_string()),
            );
            object.insert(
                "fingerprint".into(),
                Json::String(alert.fingerprint.to_string()),
            );
            Json::Object(object)
        }
        Value::StrMap(pairs) => Json::Object(
            pairs
                .iter()
                .map(|(k, v)| (k.clone(), Json::String(v.clone())))
                .collect(),
        ),
        Value::AnyMap(pairs) => {
            Json::Object(pairs.iter().map(|(k, v)| (k.clone(), to_json(v))).collect())
        }
        Value::Sample(sample) => sample_json(sample),
        Value::Samples(samples) => Json::Array(samples.iter().map(|s| sample_json(s)).collect()),
        Value::RuleData(data) => serde_json::json!({
            "Labels": to_json(&Value::StrMap(data.labels.clone())),
            "ExternalLabels": to_json(&Value::StrMap(data.external_labels.clone())),
            "ExternalURL": data.external_url.to_string(),
            "Value": to_json(&Value::Float(data.value)),
        }),
        Value::Data(data) => {
            let mut object = Map::new();
            object.insert("receiver".into(), Json::String(data.receiver.to_string()));
            object.insert("status".into(), Json::String(data.status.into()));
            object.insert(
                "alerts".into(),
                Json::Array(data.alerts.iter().map(to_json).collect()),
            );
            object.insert("groupLabels".into(), kv(&data.group_labels));
            object.insert("commonLabels".into(), kv(&data.common_labels));
            object.insert("commonAnnotations".into(), kv(&data.common_annotations));
            object.insert(
                "externalURL".into(),
                Json::String(data.external_url.to_string()),
            );
            Json::Object(object)
        }
    }
}

fn sample_json(sample: &super::value::SampleView) -> serde_json::Value {
    serde_json::json!({
        "Labels": to_json(&Value::StrMap(sample.labels.clone())),
        "Value": to_json(&Value::Float(sample.value)),
    })
}

/// A function parameter's Go type, for Go's argument checks (`evalArg`): a literal must suit
/// the type (`expected string; found 1`), a value must be assignable to it (`wrong type for
/// value; expected string; got int`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Param {
    /// `string`.
    Str,
    /// `interface{}`: anything.
    Any,
    /// Another Go type, named as Go prints it; `nilable` for slices, maps and pointers.
    Typed {
        go_type: &'static str,
        nilable: bool,
    },
}

/// A function's Go signature: its fixed parameters, then an optional variadic one.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Signature {
    pub fixed: &'static [Param],
    pub variadic: Option<Param>,
}

const QUERY_RESULT: Param = Param::Typed {
    go_type: "template.queryResult",
    nilable: true,
};
const SAMPLE: Param = Param::Typed {
    go_type: "*template.sample",
    nilable: true,
};
const STRINGS: Param = Param::Typed {
    go_type: "[]string",
    nilable: true,
};
const TIME: Param = Param::Typed {
    go_type: "time.Time",
    nilable: false,
};

const fn fixed(params: &'static [Param]) -> Option<Signature> {
    Some(Signature {
        fixed: params,
        variadic: None,
    })
}

/// The Go signature of a function that is not one of Go's builtins (which check their
/// arguments themselves), or None.
pub(crate) fn signature(name: &str, dialect: Dialect) -> Option<Signature> {
    use Param::{Any, Str};
    let shared = match name {
        "toUpper" | "toLower" | "title" | "safeHtml" => fixed(&[Str]),
        "match" => fixed(&[Str, Str]),
        "reReplaceAll" => fixed(&[Str, Str, Str]),
        "humanizeDuration" => fixed(&[Any]),
        _ => None,
    };
    if shared.is_some() {
        return shared;
    }
    match dialect {
        Dialect::Alertmanager => match name {
            "trimSpace" | "safeUrl" | "urlUnescape" => fixed(&[Str]),
            "join" => fixed(&[Str, STRINGS]),
            "stringSlice" => Some(Signature {
                fixed: &[],
                variadic: Some(Str),
            }),
            "date" | "tz" => fixed(&[Str, TIME]),
            "since" => fixed(&[TIME]),
            "toJson" => fixed(&[Any]),
            _ => None,
        },
        Dialect::Prometheus => match name {
            "query" | "graphLink" | "tableLink" | "stripPort" | "stripDomain" | "parseDuration"
            | "urlQueryEscape" => fixed(&[Str]),
            "first" => fixed(&[QUERY_RESULT]),
            "label" => fixed(&[Str, SAMPLE]),
            "value" | "strvalue" => fixed(&[SAMPLE]),
            "sortByLabel" => fixed(&[Str, QUERY_RESULT]),
            "humanize" | "humanize1024" | "humanizePercentage" | "humanizeTimestamp" | "toTime"
            | "toDuration" => fixed(&[Any]),
            "now" | "pathPrefix" | "externalURL" => fixed(&[]),
            "args" => Some(Signature {
                fixed: &[],
                variadic: Some(Any),
            }),
            _ => None,
        },
    }
}

/// Whether a value of this kind may be passed where Go expects `param`.
pub(crate) fn assignable(value: &Value, param: Param) -> bool {
    match param {
        Param::Any => true,
        Param::Str => matches!(value, Value::Str(_)),
        Param::Typed { go_type, .. } => {
            value.type_name() == go_type
            // A []string Go builds (stringSlice, .Names) and an empty list are both []string.
            || (go_type == "[]string" && matches!(value, Value::List(items) if items.iter().all(|i| matches!(i, Value::Str(_)))))
            || (go_type == "time.Time" && matches!(value, Value::Time(_)))
        }
    }
}

impl Param {
    pub(crate) fn go_type(self) -> &'static str {
        match self {
            Param::Str => "string",
            Param::Any => "interface {}",
            Param::Typed { go_type, .. } => go_type,
        }
    }

    pub(crate) fn nilable(self) -> bool {
        match self {
            Param::Str => false,
            Param::Any => true,
            Param::Typed { nilable, .. } => nilable,
        }
    }
}
