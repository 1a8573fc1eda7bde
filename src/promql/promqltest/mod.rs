//! A runner for Prometheus's promqltest files against this engine and [`MemoryStorage`].
//!
//! Deviations from Prometheus's runner, each deliberate:
//! - annotation positions (`(1:6)`) are not compared: `promql-parser` keeps no positions;
//! - evaluations that need native histograms, or experimental features Tocsin does not
//!   implement, are skipped and counted with their reason (see [`skip_reason`] and
//!   [`SKIPPED_FILES`]); nothing else is skipped.

pub mod parse;

use regex::Regex;

use self::parse::{Command, EvalCommand, EvalKind, MessageMatch, PointSpec};
use crate::promql::engine::{Engine, QueryResult};
use crate::promql::memory::MemoryStorage;
use crate::promql::value::{Labels, METRIC_NAME, Value, format_float, stale_nan};

/// Files made of experimental features Tocsin does not implement, with the reason.
pub const SKIPPED_FILES: &[(&str, &str)] = &[
    ("native_histograms.test", "native histograms"),
    (
        "duration_expression.test",
        "experimental duration expressions",
    ),
    (
        "extended_vectors.test",
        "experimental extended range selectors (anchored/smoothed)",
    ),
    ("fill-modifier.test", "experimental fill modifiers"),
    ("info.test", "experimental info() function"),
    ("start_timestamps.test", "experimental start timestamps"),
    ("type_and_unit.test", "experimental type and unit labels"),
];

/// Query features that make an evaluation skipped, with the reason.
const SKIPPED_FEATURES: &[(&str, &str)] = &[
    (r"\binfo\s*\(", "experimental info() function"),
    (
        r"\bhistogram_quantiles\s*\(",
        "experimental histogram_quantiles()",
    ),
    (r"\bstart_timestamp\s*\(", "experimental start timestamps"),
    (r"\b(max_of|min_of)\s*\(", "experimental max_of/min_of"),
    (
        r"\]\s*(smoothed|anchored)\b",
        "experimental extended range selectors (anchored/smoothed)",
    ),
    (
        r"\b(fill|fill_left|fill_right)\s*\(",
        "experimental fill modifiers",
    ),
];

/// The reason to skip `eval`, if any, judged from its text before running it.
pub fn skip_reason(eval: &EvalCommand) -> Option<&'static str> {
    for (pattern, reason) in SKIPPED_FEATURES {
        if Regex::new(pattern).is_ok_and(|re| re.is_match(&eval.query)) {
            return Some(reason);
        }
    }
    if eval
        .series
        .iter()
        .any(|s| s.points.iter().any(|p| matches!(p, PointSpec::Histogram)))
    {
        return Some("native histograms");
    }
    None
}

#[derive(Debug, Clone)]
pub struct Failure {
    pub line: usize,
    pub query: String,
    pub message: String,
}

#[derive(Debug, Clone, Default)]
pub struct FileReport {
    pub passed: usize,
    pub failed: Vec<Failure>,
    /// (line, reason)
    pub skipped: Vec<(usize, &'static str)>,
}

/// Runs one test file; a file that does not parse is one failure.
pub fn run_file(text: &str) -> FileReport {
    let mut report = FileReport::default();
    let cmds = match parse::parse_file(text) {
        Ok(c) => c,
        Err(e) => {
            report.failed.push(Failure {
                line: 0,
                query: String::new(),
                message: format!("test file does not parse: {e}"),
            });
            return report;
        }
    };
    let engine = Engine::default();
    let mut storage = MemoryStorage::new();
    for cmd in cmds {
        match cmd {
            Command::Clear => storage.clear(),
            Command::Load {
                step_ms,
                with_nhcb,
                series,
                ..
            } => load(&mut storage, step_ms, with_nhcb, &series),
            Command::Eval(eval) => {
                if let Some(reason) = skip_reason(&eval) {
                    report.skipped.push((eval.line, reason));
                    continue;
                }
                storage.take_histograms_touched();
                let outcome = run_eval(&engine, &storage, &eval);
                if storage.take_histograms_touched() {
                    report.skipped.push((eval.line, "native histograms"));
                    continue;
                }
                match outcome {
                    Ok(()) => report.passed += 1,
                    Err(message) => report.failed.push(Failure {
                        line: eval.line,
                        query: eval.query.clone(),
                        message,
                    }),
                }
            }
        }
    }
    report
}

fn load(storage: &mut MemoryStorage, step_ms: i64, with_nhcb: bool, series: &[parse::SeriesSpec]) {
    for s in series {
        for (i, p) in s.points.iter().enumerate() {
            let t = i as i64 * step_ms;
            match p {
                PointSpec::Float(v) => storage.append(&s.labels, t, *v),
                PointSpec::Stale => storage.append(&s.labels, t, stale_nan()),
                PointSpec::Gap => {}
                PointSpec::Histogram => storage.append_histogram_marker(&s.labels, t),
            }
        }
        // `load_with_nhcb` also writes each classic histogram as a native histogram with custom
        // buckets under the base name; we record where those samples would be.
        let name = s.labels.get(METRIC_NAME);
        if with_nhcb && let Some(base) = name.strip_suffix("_bucket") {
            let mut labels = s.labels.clone();
            labels.remove("le");
            labels.set(METRIC_NAME, base);
            for (i, p) in s.points.iter().enumerate() {
                if matches!(p, PointSpec::Float(_) | PointSpec::Histogram) {
                    storage.append_histogram_marker(&labels, i as i64 * step_ms);
                }
            }
        }
    }
}

/// Strips a trailing ` (line:col)` position from an expected message.
fn strip_position(s: &str) -> String {
    match Regex::new(r"\s*\((\d+|\[0-9\]\+):(\d+|\[0-9\]\+)\)$") {
        Ok(re) => re.replace(s, "").to_string(),
        Err(_) => s.to_string(),
    }
}

fn strip_regex_position(s: &str) -> String {
    match Regex::new(r"\s*\\\((\d+|\[0-9\]\+|\\d\+):(\d+|\[0-9\]\+|\\d\+)\\\)\$?$") {
        Ok(re) => re.replace(s, "").to_string(),
        Err(_) => s.to_string(),
    }
}

fn message_matches(m: &MessageMatch, got: &str) -> bool {
    match m {
        MessageMatch::Any => true,
        MessageMatch::Exact(e) => strip_position(e) == got || e == got,
        MessageMatch::Regex(r) => {
            Regex::new(&strip_regex_position(r)).is_ok_and(|re| re.is_match(got))
        }
    }
}

fn check_annotations(
    kind: &str,
    expected: &[MessageMatch],
    none: bool,
    got: &[String],
) -> Result<(), String> {
    if none && !got.is_empty() {
        return Err(format!("expected no {kind} annotations, got {got:?}"));
    }
    if expected.is_empty() {
        return Ok(());
    }
    for e in expected {
        if !got.iter().any(|g| message_matches(e, g)) {
            return Err(format!("expected {kind} annotation {e:?}, got {got:?}"));
        }
    }
    for g in got {
        if !expected.iter().any(|e| message_matches(e, g)) {
            return Err(format!("unexpected {kind} annotation {g:?}"));
        }
    }
    Ok(())
}

fn run_eval(engine: &Engine, storage: &MemoryStorage, eval: &EvalCommand) -> Result<(), String> {
    let result = match eval.kind {
        EvalKind::Instant { at_ms } => engine.instant_query(storage, &eval.query, at_ms),
        EvalKind::Range {
            start_ms,
            end_ms,
            step_ms,
        } => engine.range_query(storage, &eval.query, start_ms, end_ms, step_ms),
    };
    let e = &eval.expect;
    let result: QueryResult = match (result, &e.fail) {
        (Err(err), Some(m)) => {
            let msg = err.to_string();
            return if message_matches(m, &msg) {
                Ok(())
            } else {
                Err(format!("expected error {m:?}, got error {msg:?}"))
            };
        }
        (Err(err), None) => return Err(format!("unexpected error: {err}")),
        (Ok(r), Some(m)) => {
            return Err(format!(
                "expected error {m:?}, got result {}",
                describe(&r.value)
            ));
        }
        (Ok(r), None) => r,
    };
    let warnings: Vec<String> = result.annotations.warnings.iter().cloned().collect();
    let infos: Vec<String> = result.annotations.infos.iter().cloned().collect();
    check_annotations("warn", &e.warn, e.no_warn, &warnings)?;
    check_annotations("info", &e.info, e.no_info, &infos)?;
    compare(eval, &result.value)?;
    // As Prometheus's runner does, an instant vector query must give the same result when run as
    // a range query of one step.
    if let (EvalKind::Instant { at_ms }, Value::Vector(instant)) = (&eval.kind, &result.value) {
        let range = engine
            .range_query(storage, &eval.query, *at_ms, *at_ms, 60_000)
            .map_err(|e| format!("as a one-step range query: unexpected error: {e}"))?;
        let Value::Matrix(m) = range.value else {
            return Err("as a one-step range query: not a matrix".into());
        };
        let mut a: Vec<(String, f64)> = instant
            .iter()
            .map(|s| (s.labels.to_string(), s.v))
            .collect();
        let mut b: Vec<(String, f64)> = m
            .iter()
            .flat_map(|s| s.points.iter().map(|p| (s.labels.to_string(), p.1)))
            .collect();
        a.sort_by(|x, y| x.0.cmp(&y.0));
        b.sort_by(|x, y| x.0.cmp(&y.0));
        let same = a.len() == b.len()
            && a.iter()
                .zip(&b)
                .all(|(x, y)| x.0 == y.0 && almost_equal(x.1, y.1));
        if !same {
            return Err(format!(
                "as a one-step range query: got {b:?}, instant query gave {a:?}"
            ));
        }
    }
    Ok(())
}

fn describe(v: &Value) -> String {
    match v {
        Value::Scalar { v, .. } => format!("scalar {}", format_float(*v)),
        Value::String { v, .. } => format!("string {v:?}"),
        Value::Vector(vec) => {
            let items: Vec<String> = vec
                .iter()
                .map(|s| format!("{} {}", s.labels, format_float(s.v)))
                .collect();
            format!("vector [{}]", items.join(", "))
        }
        Value::Matrix(m) => {
            let items: Vec<String> = m
                .iter()
                .map(|s| {
                    let pts: Vec<String> = s
                        .points
                        .iter()
                        .map(|p| format!("{}@{}", format_float(p.1), p.0))
                        .collect();
                    format!("{} [{}]", s.labels, pts.join(" "))
                })
                .collect();
            format!("matrix [{}]", items.join(", "))
        }
    }
}

/// Float equality as promqltest has it: NaNs are equal, otherwise relative epsilon 1e-6.
pub fn almost_equal(a: f64, b: f64) -> bool {
    const EPSILON: f64 = 1e-6;
    const MIN_NORMAL: f64 = f64::MIN_POSITIVE;
    if a.is_nan() && b.is_nan() {
        return true;
    }
    if a == b {
        return true;
    }
    let abs_sum = a.abs() + b.abs();
    let diff = (a - b).abs();
    if a == 0.0 || b == 0.0 || abs_sum < MIN_NORMAL {
        return diff < EPSILON * MIN_NORMAL;
    }
    diff / abs_sum.min(f64::MAX) < EPSILON
}

fn expected_points(points: &[PointSpec], start: i64, step: i64) -> Vec<(i64, f64)> {
    let mut out = Vec::new();
    for (i, p) in points.iter().enumerate() {
        let t = start + i as i64 * step;
        match p {
            PointSpec::Float(v) => out.push((t, *v)),
            PointSpec::Stale => out.push((t, stale_nan())),
            PointSpec::Gap | PointSpec::Histogram => {}
        }
    }
    out
}

fn compare_matrix(
    eval: &EvalCommand,
    got: &[crate::promql::value::Series],
    start: i64,
    step: i64,
) -> Result<(), String> {
    let got_desc = || describe(&Value::Matrix(got.to_vec()));
    let expected: Vec<(&Labels, Vec<(i64, f64)>)> = eval
        .series
        .iter()
        .map(|s| (&s.labels, expected_points(&s.points, start, step)))
        .filter(|(_, p)| !p.is_empty())
        .collect();
    if expected.len() != got.len() {
        return Err(format!(
            "expected {} series, got {}: {}",
            expected.len(),
            got.len(),
            got_desc()
        ));
    }
    for (labels, points) in &expected {
        let Some(g) = got.iter().find(|g| &&g.labels == labels) else {
            return Err(format!(
                "expected series {labels} not found in {}",
                got_desc()
            ));
        };
        let ok = g.points.len() == points.len()
            && g.points
                .iter()
                .zip(points.iter())
                .all(|(a, b)| a.0 == b.0 && almost_equal(a.1, b.1));
        if !ok {
            let want: Vec<String> = points
                .iter()
                .map(|p| format!("{}@{}", format_float(p.1), p.0))
                .collect();
            let have: Vec<String> = g
                .points
                .iter()
                .map(|p| format!("{}@{}", format_float(p.1), p.0))
                .collect();
            return Err(format!(
                "series {labels}: expected [{}], got [{}]",
                want.join(" "),
                have.join(" ")
            ));
        }
    }
    Ok(())
}

fn compare(eval: &EvalCommand, got: &Value) -> Result<(), String> {
    let e = &eval.expect;
    if let Some(s) = &e.string {
        return match got {
            Value::String { v, .. } if v == s => Ok(()),
            other => Err(format!("expected string {s:?}, got {}", describe(other))),
        };
    }
    match (&eval.kind, got) {
        (
            EvalKind::Range {
                start_ms, step_ms, ..
            },
            Value::Matrix(m),
        ) => compare_matrix(eval, m, *start_ms, *step_ms),
        (EvalKind::Instant { .. }, Value::Matrix(m)) => match e.range_vector {
            Some((start, _end, step)) => compare_matrix(eval, m, start, step),
            None => Err(format!("unexpected range vector result {}", describe(got))),
        },
        (EvalKind::Instant { .. }, Value::Scalar { v, .. }) => match eval.scalar {
            Some(want) if almost_equal(want, *v) => Ok(()),
            _ => Err(format!(
                "expected {:?}, got scalar {}",
                eval.scalar,
                format_float(*v)
            )),
        },
        (EvalKind::Instant { .. }, Value::Vector(vec)) => {
            if eval.scalar.is_some() {
                return Err(format!("expected scalar, got {}", describe(got)));
            }
            let expected: Vec<(&Labels, f64)> = eval
                .series
                .iter()
                .filter_map(|s| match s.points.first() {
                    Some(PointSpec::Float(v)) => Some((&s.labels, *v)),
                    _ => None,
                })
                .collect();
            if expected.len() != vec.len() {
                return Err(format!(
                    "expected {} samples, got {}: {}",
                    expected.len(),
                    vec.len(),
                    describe(got)
                ));
            }
            for (i, (labels, v)) in expected.iter().enumerate() {
                let found = if e.ordered {
                    vec.get(i).filter(|s| &&s.labels == labels)
                } else {
                    vec.iter().find(|s| &&s.labels == labels)
                };
                match found {
                    Some(s) if almost_equal(s.v, *v) => {}
                    Some(s) => {
                        return Err(format!(
                            "sample {labels}: expected {}, got {}",
                            format_float(*v),
                            format_float(s.v)
                        ));
                    }
                    None => {
                        return Err(format!(
                            "expected sample {labels} {}{} not found in {}",
                            format_float(*v),
                            if e.ordered { " (at its position)" } else { "" },
                            describe(got)
                        ));
                    }
                }
            }
            Ok(())
        }
        (_, other) => Err(format!("unexpected result type {}", describe(other))),
    }
}
