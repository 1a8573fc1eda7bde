//! `tocsin test rules`: promtool's rule unit tests (`promtool test rules`), run on the rule
//! manager's own groups over an in-memory storage with a virtual clock.
//!
//! For each test group of a test file the runner loads `input_series` into a
//! [`MemoryStorage`], builds the groups of every rule file (with the test group's external
//! labels and URL), and evaluates all of them at 0, `evaluation_interval`, 2 ×
//! `evaluation_interval`, … up to the largest `eval_time` of the group's tests, in
//! `group_eval_order` (listed groups by their rank, unlisted ones ranked like the first, ties in
//! file order). Each rule's output (recording samples, `ALERTS`, `ALERTS_FOR_STATE`, stale
//! markers) goes into the same storage, and input samples are added only up to each evaluation
//! time, as promtool's lazy loader does.
//!
//! An `alert_rule_test` at `eval_time` t is checked after the evaluation at the last multiple of
//! the interval at or before t: the firing alerts of every alerting rule with that name (labels
//! including `alertname`, expanded annotations; external labels are not added) must equal the
//! expected ones, in any order. A `promql_expr_test` is evaluated after all evaluations; its
//! samples must equal the expected ones exactly (or within the last bit of the mantissa with
//! `fuzzy_compare`). A rule that fails to evaluate ends its test group with the error, as
//! promtool does.
//!
//! Output and exit status are promtool's: `Unit Testing:  FILE`, then `  SUCCESS` or
//! `  FAILED:` with each failure in promtool's layout, exit status 1 if any file failed.
//!
//! Where Prometheus 2 and 3 differ, Tocsin follows Prometheus 3: a test group without
//! `interval` spaces its input points by `evaluation_interval` (Prometheus 2 put them all at
//! time zero), and `fuzzy_compare` and `--run` exist.

#![deny(clippy::disallowed_methods)]

pub mod file;
pub mod report;
pub mod series;

use self::file::{AlertTestCase, PromqlTestCase, TestFile, TestGroup, parse_test_file};
use self::report::{
    AlertView, SampleView, alerts_string, go_duration, indent_lines, samples_string,
};
use self::series::InputSamples;
use super::alerting::AlertState;
use super::group::{Clock, EvalContext, Group};
use super::manager::{ManagerOptions, load_groups};
use crate::config::prometheus::RuleFile;
use crate::config::{Spanned, read_bounded};
use crate::promql::memory::MemoryStorage;
use crate::promql::parse::go_quote;
use crate::promql::promqltest::parse::parse_labels;
use crate::promql::{Engine, Labels, Value};
use std::cell::Cell;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Exit status when any test file failed: the same as `check`'s.
pub use super::check::EXIT_FAILURE;

/// Most rule files one test file's globs may name.
pub const MAX_RULE_FILES: usize = 10_000;

/// Most evaluation times one test group may need (its largest `eval_time` divided by the
/// evaluation interval), so that `eval_time: 100y` with a 1s interval is an error, not hours of
/// work.
pub const MAX_EVALUATIONS: i64 = 1_000_000;

/// Prometheus's default `--rules.alert.resend-delay`; only decides which alerts would be sent,
/// which unit tests do not look at.
const RESEND_DELAY_MS: i64 = 60_000;

/// Command-line options of `test rules`.
#[derive(Debug, Clone, Default)]
pub struct TestOptions {
    /// Prometheus 3's `--run`: only test groups whose name matches one of these (unanchored).
    pub run: Vec<regex::Regex>,
}

impl TestOptions {
    fn selects(&self, group: &TestGroup) -> bool {
        self.run.is_empty() || self.run.iter().any(|re| re.is_match(&group.name))
    }
}

/// Runs every test file, printing as promtool prints, and returns the exit status. Output
/// errors are ignored: there is nowhere left to report them.
pub fn run(
    files: &[PathBuf],
    options: &TestOptions,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> u8 {
    if super::check::report_missing_path(files, err) {
        return EXIT_FAILURE;
    }
    let mut failed = false;
    for file in files {
        let _ = writeln!(out, "Unit Testing:  {}", file.display());
        let failures = test_file(file, options, err);
        if failures.is_empty() {
            let _ = writeln!(out, "  SUCCESS");
        } else {
            failed = true;
            let _ = writeln!(err, "  FAILED:");
            for failure in &failures {
                let _ = writeln!(err, "{failure}");
                let _ = writeln!(out);
            }
        }
        let _ = writeln!(out);
    }
    if failed { EXIT_FAILURE } else { 0 }
}

/// Runs one test file; the failures in promtool's words (empty: success). Warnings (a rule
/// file pattern matching nothing) go to `err` as they are found.
pub fn test_file(path: &Path, options: &TestOptions, err: &mut dyn Write) -> Vec<String> {
    let name = path.display().to_string();
    let text = match read_bounded(path) {
        Ok(text) => text,
        Err(error) => return vec![error.to_string()],
    };
    let test_file = match parse_test_file(&text, &name) {
        Ok(file) => file,
        Err(error) => return vec![error.to_string()],
    };
    let base_dir = path.parent().unwrap_or(Path::new(""));
    let rule_paths = match resolve_rule_files(base_dir, &test_file.rule_files, err) {
        Ok(paths) => paths,
        Err(error) => return vec![error],
    };
    let mut rank = HashMap::new();
    for (index, group) in test_file.group_eval_order.iter().enumerate() {
        if rank.insert(group.value.clone(), index).is_some() {
            return vec![format!(
                "group name repeated in evaluation order: {}",
                group.value
            )];
        }
    }
    let rules = load_rule_files(&rule_paths);
    let setup = Setup {
        file: &test_file,
        rules: &rules,
        rank: &rank,
        evaluation_interval_ms: millis(test_file.evaluation_interval().as_millis()),
    };
    let mut failures = Vec::new();
    for group in &test_file.tests {
        if options.selects(&group.value) {
            failures.extend(run_test_group(&group.value, &setup));
        }
    }
    failures
}

/// The rule files of `patterns`, relative to the test file's folder unless absolute, each
/// glob's matches sorted. A pattern matching nothing is a warning, as in promtool.
fn resolve_rule_files(
    base_dir: &Path,
    patterns: &[Spanned<String>],
    err: &mut dyn Write,
) -> Result<Vec<PathBuf>, String> {
    let mut paths = Vec::new();
    for pattern in patterns {
        let pattern = &pattern.value;
        let full = if pattern.is_empty() || Path::new(pattern).is_absolute() {
            PathBuf::from(pattern)
        } else {
            base_dir.join(pattern)
        };
        let full = full.to_string_lossy().into_owned();
        let matches =
            glob::glob(&full).map_err(|error| format!("invalid file pattern {full:?}: {error}"))?;
        let mut found = Vec::new();
        for entry in matches {
            let path = entry
                .map_err(|error| format!("cannot read {}: {error}", error.path().display()))?;
            found.push(path);
            if paths.len() + found.len() > MAX_RULE_FILES {
                return Err(format!(
                    "the rule_files patterns match more than {MAX_RULE_FILES} files"
                ));
            }
        }
        if found.is_empty() {
            let _ = writeln!(err, "  WARNING: no file match pattern {full}");
        }
        found.sort();
        paths.extend(found);
    }
    Ok(paths)
}

/// Every rule file parsed and checked, or every error of every file.
fn load_rule_files(paths: &[PathBuf]) -> Result<Vec<(PathBuf, RuleFile)>, Vec<String>> {
    let mut files = Vec::new();
    let mut errors = Vec::new();
    for path in paths {
        let name = path.display().to_string();
        match read_bounded(path) {
            Err(error) => errors.push(error.to_string()),
            Ok(text) => match super::check::parse_all_errors(&text, &name) {
                Ok(file) => files.push((path.clone(), file)),
                Err(file_errors) => errors.extend(file_errors),
            },
        }
    }
    if errors.is_empty() {
        Ok(files)
    } else {
        Err(errors)
    }
}

/// What every test group of a file shares.
struct Setup<'a> {
    file: &'a TestFile,
    /// The rule files, or their errors (reported by every test group, as promtool loads the
    /// rules once per test group).
    rules: &'a Result<Vec<(PathBuf, RuleFile)>, Vec<String>>,
    /// `group_eval_order`: group name to rank.
    rank: &'a HashMap<String, usize>,
    evaluation_interval_ms: i64,
}

fn millis(ms: u64) -> i64 {
    i64::try_from(ms).unwrap_or(i64::MAX)
}

/// A clock that reads the evaluation time: unit tests run in virtual time.
struct VirtualClock {
    now_ns: Cell<i64>,
}

impl Clock for VirtualClock {
    fn now_ns(&self) -> i64 {
        self.now_ns.get()
    }
}

/// The rule groups of every rule file, as the rule manager builds them (the test group's
/// interval is the default group interval; no query offset unless a group sets one; every
/// alerting rule counts as restored, as promtool marks them, so `ALERTS` is written from the
/// first evaluation), in evaluation order.
fn build_groups(
    files: &[(PathBuf, RuleFile)],
    default_interval_ms: i64,
    rank: &HashMap<String, usize>,
) -> Result<Vec<Group>, String> {
    let options = ManagerOptions {
        evaluation_interval_ms: default_interval_ms,
        query_offset_ms: 0,
        ..ManagerOptions::default()
    };
    let mut groups = load_groups(files, &options, false)?;
    // Unlisted groups rank like the first listed one, as in promtool; the sort is stable, so
    // ties keep the manager's order (by file, then name).
    groups.sort_by_key(|group| rank.get(group.name()).copied().unwrap_or(0));
    Ok(groups)
}

/// Runs one test group; its failures in promtool's words.
fn run_test_group(test: &TestGroup, setup: &Setup<'_>) -> Vec<String> {
    let evaluation_interval_ms = setup.evaluation_interval_ms;
    let input_interval_ms = match test.interval {
        Some(interval) if !interval.is_zero() => millis(interval.as_millis()),
        _ => evaluation_interval_ms,
    };
    let mut input = match InputSamples::parse(&test.input_series, input_interval_ms) {
        Ok(input) => input,
        Err(error) => return vec![error],
    };
    let rule_files = match setup.rules {
        Ok(files) => files,
        Err(errors) => return errors.clone(),
    };
    let mut groups = match build_groups(rule_files, input_interval_ms, setup.rank) {
        Ok(groups) => groups,
        Err(error) => return vec![error],
    };

    // The alert tests by evaluation time, in time order.
    let mut alert_tests: BTreeMap<i64, Vec<&AlertTestCase>> = BTreeMap::new();
    for case in &test.alert_rule_test {
        let case = &case.value;
        if case.alertname.is_empty() {
            let in_group = if test.name.is_empty() {
                String::new()
            } else {
                format!(" (in TestGroup {})", test.name)
            };
            return vec![format!(
                "an item under alert_rule_test misses required attribute alertname at eval_time {}{in_group}",
                case.eval_time
            )];
        }
        alert_tests
            .entry(millis(case.eval_time.as_millis()))
            .or_default()
            .push(case);
    }
    let last_time = test
        .alert_rule_test
        .iter()
        .map(|case| case.value.eval_time)
        .chain(
            test.promql_expr_test
                .iter()
                .map(|case| case.value.eval_time),
        )
        .max()
        .map_or(0, |time| millis(time.as_millis()));
    if last_time / evaluation_interval_ms > MAX_EVALUATIONS {
        return vec![format!(
            "the largest eval_time, {}, needs more than {MAX_EVALUATIONS} evaluations at the evaluation interval",
            go_duration(last_time)
        )];
    }

    let engine = Engine {
        no_step_subquery_interval_ms: evaluation_interval_ms,
        ..Engine::default()
    };
    let external_labels: Vec<(String, String)> = test
        .external_labels
        .iter()
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect();
    let clock = VirtualClock {
        now_ns: Cell::new(0),
    };
    let ctx = EvalContext {
        engine: &engine,
        external_labels: &external_labels,
        external_url: &test.external_url,
        resend_delay_ms: RESEND_DELAY_MS,
        clock: &clock,
    };
    let mut storage = MemoryStorage::new();
    let mut failures = Vec::new();
    let mut pending_checks = alert_tests.iter().peekable();
    let mut ts = 0;
    while ts <= last_time {
        input.load_until(&mut storage, ts);
        clock.now_ns.set(ts.saturating_mul(1_000_000));
        let mut evaluation_errors = Vec::new();
        for group in &mut groups {
            let outcome = group.eval(&ctx, &mut storage, ts);
            for (rule, result) in group.rules().iter().zip(&outcome.rules) {
                if let Some(error) = &result.error {
                    evaluation_errors.push(format!(
                        "    rule: {}, time: {}, err: {error}",
                        rule.name(),
                        go_duration(ts)
                    ));
                }
            }
        }
        if !evaluation_errors.is_empty() {
            failures.extend(evaluation_errors);
            return failures;
        }
        let next = ts.saturating_add(evaluation_interval_ms);
        while let Some((_, cases)) = pending_checks.next_if(|&(&time, _)| time < next) {
            failures.extend(check_alerts(test, &groups, cases));
        }
        ts = next;
    }
    for case in &test.promql_expr_test {
        if let Some(failure) =
            check_expression(&case.value, &engine, &storage, setup.file.fuzzy_compare)
        {
            failures.push(failure);
        }
    }
    failures
}

fn pairs_of(labels: &Labels) -> Vec<(String, String)> {
    labels
        .iter()
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .collect()
}

fn pairs_of_map(map: &BTreeMap<String, String>) -> Vec<(String, String)> {
    map.iter()
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect()
}

/// Compares the firing alerts of each case's alert name with the expected ones.
fn check_alerts(test: &TestGroup, groups: &[Group], cases: &[&AlertTestCase]) -> Vec<String> {
    let names: HashSet<&str> = cases.iter().map(|case| case.alertname.as_str()).collect();
    // The same alert name may be used by several rules, in several groups: their alerts are
    // compared together.
    let mut firing: HashMap<&str, Vec<AlertView>> = HashMap::new();
    for group in groups {
        for rule in group.alerting_rules() {
            if !names.contains(rule.name()) {
                continue;
            }
            let alerts = firing.entry(rule.name()).or_default();
            for alert in rule.active_alerts() {
                if alert.state == AlertState::Firing {
                    alerts.push(AlertView {
                        labels: pairs_of(&alert.labels),
                        // Annotations that expanded to "" are compared too, as promtool does.
                        annotations: alert
                            .annotations
                            .iter()
                            .map(|(name, value)| (name.to_string(), value.to_string()))
                            .collect(),
                    });
                }
            }
        }
    }
    let mut failures = Vec::new();
    for case in cases {
        let mut got = firing
            .get(case.alertname.as_str())
            .cloned()
            .unwrap_or_default();
        let mut expected: Vec<AlertView> = case
            .exp_alerts
            .iter()
            .map(|alert| {
                let mut labels = alert.exp_labels.clone();
                labels.insert("alertname".to_string(), case.alertname.clone());
                AlertView {
                    labels: pairs_of_map(&labels),
                    annotations: pairs_of_map(&alert.exp_annotations),
                }
            })
            .collect();
        got.sort();
        expected.sort();
        if got != expected {
            let name = if test.name.is_empty() {
                String::new()
            } else {
                format!("    name: {},\n", test.name)
            };
            let indent = "            ";
            failures.push(format!(
                "{name}    alertname: {}, time: {}, \n        exp:{}, \n        got:{}",
                case.alertname,
                case.eval_time,
                indent_lines(&alerts_string(&expected), indent),
                indent_lines(&alerts_string(&got), indent)
            ));
        }
    }
    failures
}

/// Evaluates one expression test; its failure, if any.
fn check_expression(
    case: &PromqlTestCase,
    engine: &Engine,
    storage: &MemoryStorage,
    fuzzy: bool,
) -> Option<String> {
    let at = format!(
        "    expr: {}, time: {}",
        go_quote(&case.expr),
        case.eval_time
    );
    let result = match engine.instant_query(storage, &case.expr, millis(case.eval_time.as_millis()))
    {
        Ok(result) => result,
        Err(error) => return Some(format!("{at}, err: {error}")),
    };
    let mut got: Vec<SampleView> = match result.value {
        Value::Vector(samples) => samples
            .iter()
            .map(|sample| SampleView {
                labels: pairs_of(&sample.labels),
                value: sample.v,
            })
            .collect(),
        Value::Scalar { v, .. } => vec![SampleView {
            labels: Vec::new(),
            value: v,
        }],
        _ => return Some(format!("{at}, err: rule result is not a vector or scalar")),
    };
    let mut expected = Vec::with_capacity(case.exp_samples.len());
    for sample in &case.exp_samples {
        match parse_labels(sample.labels.trim()) {
            Ok(labels) => expected.push(SampleView {
                labels: pairs_of(&labels),
                value: sample.value,
            }),
            Err(error) => {
                return Some(format!(
                    "{at}, err: labels {}: {error}",
                    go_quote(&sample.labels)
                ));
            }
        }
    }
    got.sort_by(|a, b| a.labels.cmp(&b.labels));
    expected.sort_by(|a, b| a.labels.cmp(&b.labels));
    let same = got.len() == expected.len()
        && got.iter().zip(&expected).all(|(got, expected)| {
            got.labels == expected.labels && floats_equal(got.value, expected.value, fuzzy)
        });
    if same {
        return None;
    }
    Some(format!(
        "{at},\n        exp: {}\n        got: {}",
        samples_string(&expected),
        samples_string(&got)
    ))
}

/// Exact equality as promtool compares (so NaN never equals NaN); with `fuzzy`, values one
/// unit in the last place apart are equal too.
fn floats_equal(a: f64, b: f64, fuzzy: bool) -> bool {
    if a == b {
        return true;
    }
    fuzzy
        && a.is_finite()
        && b.is_finite()
        && a.is_sign_negative() == b.is_sign_negative()
        && a.to_bits().abs_diff(b.to_bits()) <= 1
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes `files` into a fresh folder and runs `test.yml` there.
    fn run_in(files: &[(&str, &str)]) -> (u8, String, String) {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in files {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let code = run(
            &[dir.path().join("test.yml")],
            &TestOptions::default(),
            &mut out,
            &mut err,
        );
        (
            code,
            String::from_utf8(out).unwrap(),
            String::from_utf8(err).unwrap(),
        )
    }

    const RULES: &str = "groups:\n  - name: g\n    rules:\n      - record: doubled\n        expr: x * 2\n      - alert: High\n        expr: doubled > 5\n        for: 1m\n";

    #[test]
    fn interval_defaults_to_the_evaluation_interval() {
        // Prometheus 3: without `interval`, points are one evaluation interval apart, so at
        // 2m the value is the third point.
        let test = "rule_files: [rules.yml]\nevaluation_interval: 1m\ntests:\n  - input_series:\n      - series: x\n        values: 1 2 3 4\n    promql_expr_test:\n      - expr: doubled\n        eval_time: 2m\n        exp_samples:\n          - labels: doubled\n            value: 6\n";
        let (code, out, err) = run_in(&[("rules.yml", RULES), ("test.yml", test)]);
        assert_eq!(code, 0, "{out}{err}");
    }

    #[test]
    fn alerts_are_checked_at_the_evaluation_before_eval_time() {
        // `doubled > 5` from 2m (x=3), `for: 1m`: firing at 3m, and still at 3m59s, which
        // sees the 3m evaluation; not yet at 2m59s.
        let firing = "        exp_alerts:\n          - exp_labels: {}\n";
        let test = format!(
            "rule_files: [rules.yml]\ntests:\n  - interval: 1m\n    input_series:\n      - series: x\n        values: 1+1x5\n    alert_rule_test:\n      - eval_time: 2m59s\n        alertname: High\n      - eval_time: 3m\n        alertname: High\n{firing}      - eval_time: 3m59s\n        alertname: High\n{firing}"
        );
        let (code, out, err) = run_in(&[("rules.yml", RULES), ("test.yml", &test)]);
        assert_eq!(code, 0, "{out}{err}");
        // Expecting it at 2m59s fails, in promtool's words.
        let early = test.replacen(
            "      - eval_time: 2m59s\n        alertname: High\n",
            &format!("      - eval_time: 2m59s\n        alertname: High\n{firing}"),
            1,
        );
        let (code, _, err) = run_in(&[("rules.yml", RULES), ("test.yml", &early)]);
        assert_eq!(code, EXIT_FAILURE);
        assert!(
            err.contains("    alertname: High, time: 2m59s, \n        exp:[\n            0:\n              Labels:{alertname=\"High\"}\n              Annotations:{}\n            ], \n        got:[]"),
            "{err}"
        );
    }

    #[test]
    fn annotations_that_expand_to_nothing_are_compared() {
        // As promtool: an annotation that expanded to "" must be expected, with its "".
        let rules = "groups:\n  - name: g\n    rules:\n      - alert: High\n        expr: x > 0\n        annotations:\n          owner: '{{ $labels.owner }}'\n";
        let test = |expected: &str| {
            format!(
                "rule_files: [rules.yml]\ntests:\n  - interval: 1m\n    input_series:\n      - series: x\n        values: 1\n    alert_rule_test:\n      - eval_time: 0m\n        alertname: High\n        exp_alerts:\n          - exp_annotations: {expected}\n"
            )
        };
        let (code, out, err) = run_in(&[("rules.yml", rules), ("test.yml", &test("{owner: ''}"))]);
        assert_eq!(code, 0, "{out}{err}");
        let (code, _, err) = run_in(&[("rules.yml", rules), ("test.yml", &test("{}"))]);
        assert_eq!(code, EXIT_FAILURE);
        assert!(err.contains("Annotations:{owner=\"\"}"), "{err}");
    }

    #[test]
    fn file_level_errors() {
        let (code, _, err) = run_in(&[("test.yml", "group_eval_order: [a, b, a]\ntests: []\n")]);
        assert_eq!(code, EXIT_FAILURE);
        assert!(
            err.contains("group name repeated in evaluation order: a"),
            "{err}"
        );
        let (code, out, err) = run_in(&[("test.yml", "rule_files: [nothing*.yml]\ntests: []\n")]);
        assert_eq!(code, 0, "{out}{err}");
        assert!(err.contains("  WARNING: no file match pattern"), "{err}");
        let huge = "tests:\n  - interval: 1s\n    promql_expr_test:\n      - expr: '1'\n        eval_time: 100y\n";
        let (code, _, err) = run_in(&[("test.yml", huge)]);
        assert_eq!(code, EXIT_FAILURE);
        assert!(err.contains("needs more than"), "{err}");
    }

    #[test]
    fn missing_files_stop_the_command() {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let code = run(
            &[PathBuf::from("/nonexistent/test.yml")],
            &TestOptions::default(),
            &mut out,
            &mut err,
        );
        assert_eq!(code, EXIT_FAILURE);
        assert!(out.is_empty());
    }

    #[test]
    fn groups_follow_the_evaluation_order() {
        let file = crate::config::prometheus::parse_rule_file(
            "groups:\n  - name: a\n    rules: []\n  - name: b\n    rules: []\n  - name: c\n    rules: []\n",
            "r.yml",
        )
        .unwrap();
        let files = vec![(PathBuf::from("r.yml"), file)];
        let rank = HashMap::from([("c".to_string(), 0), ("b".to_string(), 1)]);
        let groups = build_groups(&files, 60_000, &rank).unwrap();
        let names: Vec<&str> = groups.iter().map(Group::name).collect();
        // `a` is unlisted: it ranks like `c`, the first listed, and keeps its place before it.
        assert_eq!(names, ["a", "c", "b"]);
    }

    #[test]
    fn fuzzy_comparison_allows_one_unit_in_the_last_place() {
        let next = f64::from_bits(1.0f64.to_bits() + 1);
        assert!(!floats_equal(1.0, next, false));
        assert!(floats_equal(1.0, next, true));
        assert!(!floats_equal(
            1.0,
            f64::from_bits(1.0f64.to_bits() + 2),
            true
        ));
        assert!(!floats_equal(f64::NAN, f64::NAN, true));
    }
}
