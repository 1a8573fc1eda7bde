//! Parser for Prometheus's promqltest files (`load`, `clear`, `eval …`, `expect …`).

use crate::promql::value::{Labels, METRIC_NAME};

/// One point of a `load` or expected series: a float, a staleness marker, a gap, or a native
/// histogram (kept only as a marker: the engine evaluates floats).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PointSpec {
    Float(f64),
    Stale,
    Gap,
    Histogram,
}

#[derive(Debug, Clone)]
pub struct SeriesSpec {
    pub labels: Labels,
    pub points: Vec<PointSpec>,
}

#[derive(Debug, Clone)]
pub enum EvalKind {
    Instant {
        at_ms: i64,
    },
    Range {
        start_ms: i64,
        end_ms: i64,
        step_ms: i64,
    },
}

/// How an expected annotation or error message is matched.
#[derive(Debug, Clone)]
pub enum MessageMatch {
    Any,
    Exact(String),
    Regex(String),
}

#[derive(Debug, Clone, Default)]
pub struct Expectations {
    pub fail: Option<MessageMatch>,
    pub warn: Vec<MessageMatch>,
    pub info: Vec<MessageMatch>,
    pub no_warn: bool,
    pub no_info: bool,
    pub ordered: bool,
    pub string: Option<String>,
    /// `expect range vector from … to … step …` on an instant query.
    pub range_vector: Option<(i64, i64, i64)>,
}

#[derive(Debug, Clone)]
pub struct EvalCommand {
    pub line: usize,
    pub query: String,
    pub kind: EvalKind,
    pub expect: Expectations,
    pub series: Vec<SeriesSpec>,
    /// An expected scalar result (a line holding just a number).
    pub scalar: Option<f64>,
}

#[derive(Debug, Clone)]
pub enum Command {
    Load {
        line: usize,
        step_ms: i64,
        with_nhcb: bool,
        series: Vec<SeriesSpec>,
    },
    Clear,
    Eval(Box<EvalCommand>),
}

/// Parses a Prometheus duration (`1h30m`, `10s53ms`) or a number of seconds.
pub fn parse_duration_ms(s: &str) -> Result<i64, String> {
    let s = s.trim();
    if let Ok(secs) = s.parse::<f64>() {
        return Ok((secs * 1000.0).round() as i64);
    }
    let mut total: i64 = 0;
    let mut rest = s;
    if rest.is_empty() {
        return Err("empty duration".into());
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(format!("bad duration {s:?}"));
        }
        let n: i64 = rest[..digits]
            .parse()
            .map_err(|_| format!("bad duration {s:?}"))?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let mult = match unit {
            "ms" => 1,
            "s" => 1000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "w" => 604_800_000,
            "y" => 31_536_000_000,
            _ => return Err(format!("bad duration unit in {s:?}")),
        };
        total = total.saturating_add(n.saturating_mul(mult));
    }
    Ok(total)
}

/// Unquotes a Go string literal (`"…"`, `'…'` or `` `…` ``).
fn unquote(s: &str) -> Result<String, String> {
    let mut chars = s.chars();
    let quote = chars.next().ok_or("empty string")?;
    let inner: Vec<char> = chars.collect();
    if inner.last() != Some(&quote) {
        return Err(format!("unterminated string {s}"));
    }
    let inner = &inner[..inner.len() - 1];
    if quote == '`' {
        return Ok(inner.iter().collect());
    }
    let mut out = String::new();
    let mut i = 0;
    while i < inner.len() {
        let c = inner[i];
        if c == '\\' && i + 1 < inner.len() {
            i += 1;
            match inner[i] {
                'n' => out.push('\n'),
                't' => out.push('\t'),
                'r' => out.push('\r'),
                '\\' => out.push('\\'),
                '"' => out.push('"'),
                '\'' => out.push('\''),
                other => {
                    out.push('\\');
                    out.push(other);
                }
            }
        } else {
            out.push(c);
        }
        i += 1;
    }
    Ok(out)
}

/// Splits `metric{a="b"} rest` into the series descriptor and the rest of the line.
fn split_descriptor(line: &str) -> (&str, &str) {
    let bytes = line.as_bytes();
    let mut i = 0;
    let mut in_quote: Option<u8> = None;
    let mut depth = 0;
    while i < bytes.len() {
        let c = bytes[i];
        if let Some(q) = in_quote {
            if c == b'\\' {
                i += 2;
                continue;
            }
            if c == q {
                in_quote = None;
            }
        } else if c == b'"' || c == b'\'' || c == b'`' {
            in_quote = Some(c);
        } else if c == b'{' {
            depth += 1;
        } else if c == b'}' {
            depth -= 1;
            if depth == 0 {
                return (&line[..=i], line[i + 1..].trim());
            }
        } else if depth == 0 && c.is_ascii_whitespace() {
            return (&line[..i], line[i..].trim());
        }
        i += 1;
    }
    (line, "")
}

/// Parses `metric{a="b", "c"="d"}`, `{__name__="m"}` or `{}` into labels.
pub fn parse_labels(desc: &str) -> Result<Labels, String> {
    let mut labels = Labels::new();
    let (name, body) = match desc.find('{') {
        Some(i) => (
            &desc[..i],
            Some(
                desc[i + 1..]
                    .strip_suffix('}')
                    .ok_or_else(|| format!("unterminated labels in {desc:?}"))?,
            ),
        ),
        None => (desc, None),
    };
    if !name.is_empty() {
        labels.set(METRIC_NAME, name);
    }
    let Some(body) = body else {
        return Ok(labels);
    };
    let mut rest = body.trim();
    while !rest.is_empty() {
        // A name: bare or quoted.
        let (lname, after) = if rest.starts_with('"') {
            let end = quoted_end(rest)?;
            (unquote(&rest[..end])?, rest[end..].trim_start())
        } else {
            let end = rest
                .find(|c: char| c == '=' || c == ',' || c.is_whitespace())
                .unwrap_or(rest.len());
            (rest[..end].to_string(), rest[end..].trim_start())
        };
        if let Some(after_eq) = after.strip_prefix('=') {
            let after_eq = after_eq.trim_start();
            let end = quoted_end(after_eq)?;
            let value = unquote(&after_eq[..end])?;
            labels.set(&lname, &value);
            rest = after_eq[end..].trim_start();
        } else {
            // A bare quoted string is the metric name.
            labels.set(METRIC_NAME, &lname);
            rest = after;
        }
        rest = rest.strip_prefix(',').unwrap_or(rest).trim_start();
    }
    Ok(labels)
}

fn quoted_end(s: &str) -> Result<usize, String> {
    let bytes = s.as_bytes();
    let q = *bytes.first().ok_or("expected a quoted string")?;
    if q != b'"' && q != b'\'' && q != b'`' {
        return Err(format!("expected a quoted string at {s:?}"));
    }
    let mut i = 1;
    while i < bytes.len() {
        if bytes[i] == b'\\' && q != b'`' {
            i += 2;
            continue;
        }
        if bytes[i] == q {
            return Ok(i + 1);
        }
        i += 1;
    }
    Err(format!("unterminated string in {s:?}"))
}

fn parse_float(s: &str) -> Result<f64, String> {
    match s.to_ascii_lowercase().as_str() {
        "inf" | "+inf" => Ok(f64::INFINITY),
        "-inf" => Ok(f64::NEG_INFINITY),
        "nan" => Ok(f64::NAN),
        _ => s.parse::<f64>().map_err(|_| format!("bad number {s:?}")),
    }
}

/// Splits a values string into tokens, keeping `{{ … }}` histograms together.
fn tokenize_values(s: &str) -> Vec<String> {
    let mut tokens = Vec::new();
    let mut cur = String::new();
    let mut depth = 0;
    let chars: Vec<char> = s.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '{' {
            depth += 1;
        } else if c == '}' {
            depth -= 1;
        }
        if c.is_whitespace() && depth == 0 {
            if !cur.is_empty() {
                tokens.push(std::mem::take(&mut cur));
            }
        } else {
            cur.push(c);
        }
        i += 1;
    }
    if !cur.is_empty() {
        tokens.push(cur);
    }
    tokens
}

/// Expands `1 2+3x4 _ _x2 stale {{…}}x3` into points.
pub fn parse_points(s: &str) -> Result<Vec<PointSpec>, String> {
    let mut out = Vec::new();
    for tok in tokenize_values(s) {
        if tok.starts_with("{{") {
            // Histogram, possibly `{{…}}x3` or `{{…}}+{{…}}x3`.
            let repeat = match tok.rfind("}}x") {
                Some(i) => {
                    tok[i + 3..]
                        .parse::<usize>()
                        .map_err(|_| format!("bad repeat in {tok}"))?
                        + 1
                }
                None => 1,
            };
            out.extend(std::iter::repeat_n(PointSpec::Histogram, repeat));
            continue;
        }
        if tok == "_" {
            out.push(PointSpec::Gap);
            continue;
        }
        if tok == "stale" {
            out.push(PointSpec::Stale);
            continue;
        }
        if let Some(n) = tok.strip_prefix("_x") {
            let n: usize = n.parse().map_err(|_| format!("bad repeat {tok}"))?;
            out.extend(std::iter::repeat_n(PointSpec::Gap, n));
            continue;
        }
        if let Some(x) = tok.rfind('x') {
            let (base, n) = (&tok[..x], &tok[x + 1..]);
            let n: usize = n.parse().map_err(|_| format!("bad repeat {tok}"))?;
            // base is `a`, `a+b` or `a-b` (a may itself be signed).
            let split = base
                .char_indices()
                .skip(1)
                .find(|&(i, c)| {
                    (c == '+' || c == '-') && !matches!(base.as_bytes()[i - 1], b'e' | b'E')
                })
                .map(|(i, _)| i);
            let (start, inc) = match split {
                Some(i) => {
                    let inc = parse_float(&base[i + 1..])?;
                    (
                        parse_float(&base[..i])?,
                        if &base[i..=i] == "-" { -inc } else { inc },
                    )
                }
                None => (parse_float(base)?, 0.0),
            };
            let mut v = start;
            for k in 0..=n {
                // Computed from the start each time, as Prometheus does, to avoid drift.
                v = if k == 0 {
                    start
                } else {
                    start + inc * k as f64
                };
                out.push(PointSpec::Float(v));
            }
            let _ = v;
            continue;
        }
        out.push(PointSpec::Float(parse_float(&tok)?));
    }
    Ok(out)
}

fn parse_series_line(line: &str) -> Result<SeriesSpec, String> {
    let (desc, rest) = split_descriptor(line);
    Ok(SeriesSpec {
        labels: parse_labels(desc)?,
        points: parse_points(rest)?,
    })
}

fn message_match(rest: &str) -> Result<MessageMatch, String> {
    let rest = rest.trim();
    if rest.is_empty() {
        return Ok(MessageMatch::Any);
    }
    if let Some(m) = rest.strip_prefix("msg:") {
        return Ok(MessageMatch::Exact(m.trim().to_string()));
    }
    if let Some(m) = rest.strip_prefix("regex:") {
        return Ok(MessageMatch::Regex(m.trim().to_string()));
    }
    Err(format!("bad expect line: {rest}"))
}

fn parse_expect(line: &str, e: &mut Expectations) -> Result<(), String> {
    let body = line
        .trim()
        .strip_prefix("expect")
        .unwrap_or("")
        .trim_start();
    let (kind, rest) = body.split_once(char::is_whitespace).unwrap_or((body, ""));
    match kind {
        "fail" => e.fail = Some(message_match(rest)?),
        "warn" => e.warn.push(message_match(rest)?),
        "info" => e.info.push(message_match(rest)?),
        "no_warn" => e.no_warn = true,
        "no_info" => e.no_info = true,
        "ordered" => e.ordered = true,
        "string" => e.string = Some(unquote(rest.trim())?),
        "range" => {
            // range vector from A to B step S
            let words: Vec<&str> = rest.split_whitespace().collect();
            if words.len() != 7
                || words[0] != "vector"
                || words[1] != "from"
                || words[3] != "to"
                || words[5] != "step"
            {
                return Err(format!("bad expect range vector line: {line}"));
            }
            e.range_vector = Some((
                parse_duration_ms(words[2])?,
                parse_duration_ms(words[4])?,
                parse_duration_ms(words[6])?,
            ));
        }
        _ => return Err(format!("unknown expect line: {line}")),
    }
    Ok(())
}

fn parse_eval_header(line_no: usize, line: &str) -> Result<EvalCommand, String> {
    let (cmd, rest) = line
        .split_once(char::is_whitespace)
        .ok_or("bad eval line")?;
    let mut expect = Expectations::default();
    match cmd {
        "eval" => {}
        "eval_fail" => expect.fail = Some(MessageMatch::Any),
        "eval_warn" => expect.warn.push(MessageMatch::Any),
        "eval_info" => expect.info.push(MessageMatch::Any),
        "eval_ordered" => expect.ordered = true,
        _ => return Err(format!("unknown command {cmd}")),
    }
    let rest = rest.trim_start();
    let (kind, query) = if let Some(r) = rest.strip_prefix("instant") {
        let r = r
            .trim_start()
            .strip_prefix("at")
            .ok_or("expected `at`")?
            .trim_start();
        let (t, q) = r.split_once(char::is_whitespace).ok_or("missing query")?;
        (
            EvalKind::Instant {
                at_ms: parse_duration_ms(t)?,
            },
            q,
        )
    } else if let Some(r) = rest.strip_prefix("range") {
        let words: Vec<&str> = r.split_whitespace().collect();
        if words.len() < 7 || words[0] != "from" || words[2] != "to" || words[4] != "step" {
            return Err(format!("bad range eval: {line}"));
        }
        // The query is everything after the step value.
        let after_step = r
            .find(&format!(" step {}", words[5]))
            .map(|i| i + 6 + words[5].len())
            .ok_or("bad range eval")?;
        (
            EvalKind::Range {
                start_ms: parse_duration_ms(words[1])?,
                end_ms: parse_duration_ms(words[3])?,
                step_ms: parse_duration_ms(words[5])?,
            },
            &r[after_step..],
        )
    } else {
        return Err(format!("bad eval: {line}"));
    };
    Ok(EvalCommand {
        line: line_no,
        query: query.trim().to_string(),
        kind,
        expect,
        series: Vec::new(),
        scalar: None,
    })
}

/// Parses a whole test file.
pub fn parse_file(text: &str) -> Result<Vec<Command>, String> {
    let lines: Vec<&str> = text.lines().collect();
    let mut cmds = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let raw = lines[i];
        let line = raw.trim();
        i += 1;
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let err = |e: String| format!("line {}: {e}", i);
        if line == "clear" {
            cmds.push(Command::Clear);
        } else if line.starts_with("load") {
            let (cmd, step) = line
                .split_once(char::is_whitespace)
                .ok_or_else(|| err("bad load".into()))?;
            let with_nhcb = cmd == "load_with_nhcb";
            let step_ms = parse_duration_ms(step).map_err(err)?;
            let start_line = i;
            let mut series = Vec::new();
            while i < lines.len()
                && !lines[i].trim().is_empty()
                && lines[i].starts_with(char::is_whitespace)
            {
                let l = lines[i].trim();
                i += 1;
                if l.starts_with('#') {
                    continue;
                }
                series.push(parse_series_line(l).map_err(|e| format!("line {i}: {e}"))?);
            }
            cmds.push(Command::Load {
                line: start_line,
                step_ms,
                with_nhcb,
                series,
            });
        } else if line.starts_with("eval") {
            let mut ev = parse_eval_header(i, line).map_err(err)?;
            while i < lines.len() {
                let l = lines[i].trim();
                if l.is_empty()
                    || (!lines[i].starts_with(char::is_whitespace) && !l.starts_with("expect"))
                {
                    break;
                }
                i += 1;
                if l.starts_with('#') {
                    continue;
                }
                if l.starts_with("expect ") {
                    parse_expect(l, &mut ev.expect).map_err(|e| format!("line {i}: {e}"))?;
                } else if let Some(m) = l.strip_prefix("expected_fail_message") {
                    ev.expect.fail = Some(MessageMatch::Exact(m.trim().to_string()));
                } else if let Some(m) = l.strip_prefix("expected_fail_regexp") {
                    ev.expect.fail = Some(MessageMatch::Regex(m.trim().to_string()));
                } else if let Ok(v) = parse_float(l) {
                    ev.scalar = Some(v);
                } else {
                    ev.series
                        .push(parse_series_line(l).map_err(|e| format!("line {i}: {e}"))?);
                }
            }
            cmds.push(Command::Eval(Box::new(ev)));
        } else {
            return Err(err(format!("unknown command {line:?}")));
        }
    }
    Ok(cmds)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expands_points() {
        let p = parse_points("0+10x2 _ stale 5 1-1x1 _x2 {{schema:0 sum:1}}x1").unwrap();
        assert_eq!(
            p,
            vec![
                PointSpec::Float(0.0),
                PointSpec::Float(10.0),
                PointSpec::Float(20.0),
                PointSpec::Gap,
                PointSpec::Stale,
                PointSpec::Float(5.0),
                PointSpec::Float(1.0),
                PointSpec::Float(0.0),
                PointSpec::Gap,
                PointSpec::Gap,
                PointSpec::Histogram,
                PointSpec::Histogram,
            ]
        );
    }

    #[test]
    fn parses_labels() {
        let l = parse_labels(r#"foo{a="x y", b="}"}"#).unwrap();
        assert_eq!(l.get("__name__"), "foo");
        assert_eq!(l.get("a"), "x y");
        assert_eq!(l.get("b"), "}");
        assert_eq!(parse_duration_ms("1m30s").unwrap(), 90_000);
        assert_eq!(parse_duration_ms("10s53ms").unwrap(), 10_053);
    }
}
