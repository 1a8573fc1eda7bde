//! `tocsin check rules`: `promtool check rules`, with the same verdicts, layout and exit codes.
//!
//! For each file: `Checking FILE`, then either `  SUCCESS: N rules found` (standard output) or
//! `  FAILED:` followed by every error (standard error). Errors use Tocsin's
//! `file:line:column: message` layout (promtool writes `file: line:column: message`), and every
//! error of the file is listed, as promtool does, not only the first.
//!
//! Exit codes are promtool's: 1 when any file has an error, 3 when the only findings are lint
//! findings and `--lint-fatal` is set, 0 otherwise (a duplicate rule alone prints `FAILED` but
//! exits 0, exactly as promtool does). As in Prometheus 3, no file arguments means the rules
//! are read from standard input (`Checking standard input`); Prometheus 2 required files.
//!
//! The duplicate-rule lint is Prometheus 3's: two rules are duplicates when they have the same
//! name (alert or record) and the same labels, the group's labels merged under the rule's own.

use crate::config::prometheus::{NameValidation, Rule, RuleFile, RuleGroup};
use crate::config::{ConfigError, Invalid, MAX_FILE_BYTES, Spanned, parse_document};
use std::collections::{BTreeMap, HashSet};
use std::io::{Read, Write};
use std::path::Path;

/// Exit status when a file is invalid (or unreadable).
pub const EXIT_FAILURE: u8 = 1;
/// Exit status when only lint findings were reported and lint findings are fatal.
pub const EXIT_LINT: u8 = 3;

/// Which lint checks run, from `--lint` (`all`, `duplicate-rules`, `none`, comma-separated)
/// and `--lint-fatal`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LintSettings {
    pub duplicate_rules: bool,
    /// Lint findings make the exit status 3 instead of 0.
    pub fatal: bool,
}

impl Default for LintSettings {
    /// promtool's default: `--lint=duplicate-rules`, not fatal.
    fn default() -> Self {
        LintSettings {
            duplicate_rules: true,
            fatal: false,
        }
    }
}

impl LintSettings {
    /// Parses `--lint`'s value. Unknown names are refused (promtool ignores them silently,
    /// which hides typos such as `duplicate-rule`).
    pub fn parse(value: &str, fatal: bool) -> Result<LintSettings, String> {
        let mut duplicate_rules = false;
        for item in value.split(',').map(str::trim) {
            match item {
                "all" | "duplicate-rules" => duplicate_rules = true,
                "none" => {}
                other => {
                    return Err(format!(
                        "unknown lint check {other:?}: expected all, duplicate-rules or none"
                    ));
                }
            }
        }
        Ok(LintSettings {
            duplicate_rules,
            fatal,
        })
    }
}

/// What checking one rule file found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileVerdict {
    /// Valid, with this many rules over all groups.
    Valid { rules: usize },
    /// Valid, but the lint found something: the message promtool prints.
    Lint { message: String },
    /// Invalid: every error found, each `file:line:column: message`.
    Invalid { errors: Vec<String> },
}

/// Checks one rule file's text; `name` is how errors name the file.
pub fn check_rule_text(text: &str, name: &str, lint: LintSettings) -> FileVerdict {
    match parse_all_errors(text, name) {
        Err(errors) => FileVerdict::Invalid { errors },
        Ok(file) => {
            if lint.duplicate_rules {
                let duplicates = duplicate_rules(&file);
                if !duplicates.is_empty() {
                    return FileVerdict::Lint {
                        message: duplicates_message(&duplicates),
                    };
                }
            }
            let rules = file.groups.iter().map(|g| g.value.rules.len()).sum();
            FileVerdict::Valid { rules }
        }
    }
}

/// Parses and validates a rule file, collecting every validation error rather than the first
/// (each `file:line:column: message`). A YAML or type error stops parsing, so it is reported
/// alone.
pub fn parse_all_errors(text: &str, name: &str) -> Result<RuleFile, Vec<String>> {
    // The same emptiness rule `parse_rule_file` applies: no groups, nothing to check.
    let has_content = text.lines().any(|line| {
        let line = line.trim();
        !line.is_empty() && !line.starts_with('#') && line != "---"
    });
    if !has_content {
        return Ok(RuleFile::default());
    }
    let file: RuleFile = parse_document(text, name).map_err(|error| vec![error.to_string()])?;
    let mut errors = Vec::new();
    let mut seen_groups = HashSet::new();
    for group in &file.groups {
        let group = &group.value;
        let group_name = &group.name.value;
        let repeated = !seen_groups.insert(group_name.as_str());
        if let Err(invalid) = check_group_header(group, repeated) {
            errors.push(invalid.in_file(name).to_string());
        }
        for (index, rule) in group.rules.iter().enumerate() {
            if let Err(invalid) = check_rule(rule, group_name, index) {
                errors.push(invalid.in_file(name).to_string());
            }
        }
    }
    if errors.is_empty() {
        Ok(file)
    } else {
        Err(errors)
    }
}

/// The group-level checks of `RuleFile::validate`: the name, and the group's labels.
fn check_group_header(group: &RuleGroup, repeated: bool) -> Result<(), Invalid> {
    if group.name.value.is_empty() {
        return Err(Invalid::on(&group.name, "group name must not be empty"));
    }
    if repeated {
        return Err(Invalid::on(
            &group.name,
            format!(
                "group name {:?} is repeated in the same file",
                group.name.value
            ),
        ));
    }
    let alone = RuleFile {
        groups: vec![Spanned {
            value: RuleGroup {
                rules: Vec::new(),
                ..group.clone()
            },
            referenced: group.name.referenced,
            defined: group.name.defined,
        }],
    };
    alone.validate(NameValidation::Utf8)
}

/// One rule's checks, as `RuleFile::validate` words them, with the rule's real position in
/// its group. The rule is validated alone in a stand-in group so that one bad rule does not
/// hide the next, as promtool lists every rule's error.
fn check_rule(rule: &Spanned<Rule>, group_name: &str, index: usize) -> Result<(), Invalid> {
    const STAND_IN: &str = "g";
    let stand_in_name = Spanned {
        value: STAND_IN.to_string(),
        referenced: rule.referenced,
        defined: rule.defined,
    };
    let alone = RuleFile {
        groups: vec![Spanned {
            value: RuleGroup {
                name: stand_in_name,
                interval: None,
                query_offset: None,
                limit: 0,
                labels: Default::default(),
                rules: vec![rule.clone()],
            },
            referenced: rule.referenced,
            defined: rule.defined,
        }],
    };
    alone.validate(NameValidation::Utf8).map_err(|invalid| {
        let rule_name = rule.value.name();
        let prefix = format!("group {STAND_IN:?}, rule 1, {rule_name:?}: ");
        let reason = invalid
            .message
            .strip_prefix(&prefix)
            .unwrap_or(&invalid.message);
        Invalid {
            at: invalid.at,
            message: format!(
                "group {group_name:?}, rule {}, {rule_name:?}: {reason}",
                index + 1
            ),
        }
    })
}

/// A rule as the duplicate lint compares it: its name and its labels after the group's.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct RuleIdentity {
    name: String,
    labels: BTreeMap<String, String>,
}

/// Rules that share a name and labels with another rule of the file, each listed once.
fn duplicate_rules(file: &RuleFile) -> Vec<RuleIdentity> {
    let mut identities: Vec<RuleIdentity> = Vec::new();
    for group in &file.groups {
        for rule in &group.value.rules {
            let mut labels: BTreeMap<String, String> = group
                .value
                .labels
                .iter()
                .map(|(name, value)| (name.to_string(), value.to_string()))
                .collect();
            for (name, value) in rule.value.labels.iter() {
                labels.insert(name.to_string(), value.to_string());
            }
            identities.push(RuleIdentity {
                name: rule.value.name().to_string(),
                labels,
            });
        }
    }
    identities.sort();
    let mut duplicates: Vec<RuleIdentity> = Vec::new();
    for pair in identities.windows(2) {
        if pair[0] == pair[1] && duplicates.last() != Some(&pair[1]) {
            duplicates.push(pair[1].clone());
        }
    }
    duplicates
}

/// promtool's lint message, line for line.
fn duplicates_message(duplicates: &[RuleIdentity]) -> String {
    let mut message = format!("lint error {} duplicate rule(s) found.\n", duplicates.len());
    for duplicate in duplicates {
        message.push_str(&format!("Metric: {}\nLabel(s):\n", duplicate.name));
        for (name, value) in &duplicate.labels {
            message.push_str(&format!("\t{name}: {value}\n"));
        }
    }
    message.push_str("Might cause inconsistency while recording expressions");
    message
}

/// Reads a rule file, refusing non-files and files above the configuration size limit.
fn read_rule_file(path: &Path) -> Result<String, ConfigError> {
    crate::config::read_bounded(path)
}

/// Reads standard input up to the configuration size limit.
fn read_stdin(stdin: &mut dyn Read) -> Result<String, String> {
    let mut bytes = Vec::new();
    stdin
        .take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|error| format!("cannot read standard input: {error}"))?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(format!(
            "standard input is more than the limit of {MAX_FILE_BYTES} bytes"
        ));
    }
    String::from_utf8(bytes).map_err(|_| "standard input is not valid UTF-8".to_string())
}

/// Totals over the files checked, for the exit status.
#[derive(Debug, Default)]
struct Tally {
    invalid: bool,
    lint: bool,
}

impl Tally {
    fn exit_code(&self, lint: LintSettings) -> u8 {
        if self.invalid {
            EXIT_FAILURE
        } else if self.lint && lint.fatal {
            EXIT_LINT
        } else {
            0
        }
    }
}

/// promtool refuses a whole command, before looking at any file, when a path is missing:
/// reports the first missing one and returns `true`.
pub fn report_missing_path(files: &[std::path::PathBuf], err: &mut dyn Write) -> bool {
    let Some(missing) = files.iter().find(|file| !file.exists()) else {
        return false;
    };
    let _ = writeln!(
        err,
        "tocsin: error: path '{}' does not exist",
        missing.display()
    );
    true
}

/// Runs `check rules` over `files` (standard input when empty), printing as promtool prints,
/// and returns the exit status. Output errors are ignored: there is nowhere left to report them.
pub fn run(
    files: &[std::path::PathBuf],
    lint: LintSettings,
    stdin: &mut dyn Read,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> u8 {
    if report_missing_path(files, err) {
        return EXIT_FAILURE;
    }
    let mut tally = Tally::default();
    if files.is_empty() {
        let _ = writeln!(out, "Checking standard input");
        match read_stdin(stdin) {
            Ok(text) => report(
                &check_rule_text(&text, "standard input", lint),
                &mut tally,
                out,
                err,
            ),
            Err(message) => {
                let _ = writeln!(err, "  FAILED: {message}");
                return EXIT_FAILURE;
            }
        }
    }
    for file in files {
        let _ = writeln!(out, "Checking {}", file.display());
        let verdict = match read_rule_file(file) {
            Ok(text) => check_rule_text(&text, &file.display().to_string(), lint),
            Err(error) => FileVerdict::Invalid {
                errors: vec![error.to_string()],
            },
        };
        report(&verdict, &mut tally, out, err);
    }
    tally.exit_code(lint)
}

fn report(verdict: &FileVerdict, tally: &mut Tally, out: &mut dyn Write, err: &mut dyn Write) {
    match verdict {
        FileVerdict::Valid { rules } => {
            let _ = writeln!(out, "  SUCCESS: {rules} rules found");
            let _ = writeln!(out);
        }
        FileVerdict::Lint { message } => {
            tally.lint = true;
            let _ = writeln!(err, "  FAILED:");
            let _ = writeln!(err, "{message}");
            let _ = writeln!(out);
        }
        // promtool prints no blank line after a file that does not parse.
        FileVerdict::Invalid { errors } => {
            tally.invalid = true;
            let _ = writeln!(err, "  FAILED:");
            for error in errors {
                let _ = writeln!(err, "{error}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verdict(text: &str) -> FileVerdict {
        check_rule_text(text, "r.yml", LintSettings::default())
    }

    #[test]
    fn counts_rules_over_groups() {
        let text = "groups:\n  - name: a\n    rules:\n      - record: x:sum\n        expr: sum(x)\n  - name: b\n    rules:\n      - alert: A\n        expr: up == 0\n      - alert: B\n        expr: up == 0\n";
        assert_eq!(verdict(text), FileVerdict::Valid { rules: 3 });
        assert_eq!(verdict("# empty\n"), FileVerdict::Valid { rules: 0 });
    }

    #[test]
    fn lists_every_rule_error_with_its_index() {
        let text = "groups:\n  - name: g\n    rules:\n      - record: a\n        expr: sum(\n      - alert: B\n        expr: up\n      - alert: C\n";
        let FileVerdict::Invalid { errors } = verdict(text) else {
            panic!("expected errors");
        };
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(
            errors[0].starts_with("r.yml:5:15: group \"g\", rule 1, \"a\": could not parse"),
            "{}",
            errors[0]
        );
        assert_eq!(
            errors[1],
            "r.yml:8:9: group \"g\", rule 3, \"C\": field 'expr' must be set in rule"
        );
    }

    #[test]
    fn group_errors_and_rule_errors_together() {
        let text = "groups:\n  - name: g\n    rules: []\n  - name: g\n    rules:\n      - record: a\n        expr: up\n        for: 1m\n";
        let FileVerdict::Invalid { errors } = verdict(text) else {
            panic!("expected errors");
        };
        assert_eq!(
            errors,
            vec![
                "r.yml:4:11: group name \"g\" is repeated in the same file".to_string(),
                "r.yml:8:14: group \"g\", rule 1, \"a\": invalid field 'for' in recording rule"
                    .to_string(),
            ]
        );
    }

    #[test]
    fn duplicates_are_a_lint_finding_with_promtools_message() {
        let text = "groups:\n  - name: g\n    labels:\n      team: a\n    rules:\n      - record: x:sum\n        expr: sum(x)\n      - record: x:sum\n        expr: sum(y)\n        labels:\n          team: a\n      - record: x:sum\n        expr: sum(z)\n";
        assert_eq!(
            verdict(text),
            FileVerdict::Lint {
                message: "lint error 1 duplicate rule(s) found.\nMetric: x:sum\nLabel(s):\n\tteam: a\nMight cause inconsistency while recording expressions".to_string()
            }
        );
        let no_lint = LintSettings::parse("none", false).unwrap();
        assert_eq!(
            check_rule_text(text, "r.yml", no_lint),
            FileVerdict::Valid { rules: 3 }
        );
        // Different labels are different rules.
        let distinct = "groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: up == 0\n        labels: {severity: page}\n      - alert: A\n        expr: up == 0\n        labels: {severity: ticket}\n";
        assert_eq!(verdict(distinct), FileVerdict::Valid { rules: 2 });
    }

    #[test]
    fn lint_settings() {
        assert_eq!(
            LintSettings::parse("all", true).unwrap(),
            LintSettings {
                duplicate_rules: true,
                fatal: true
            }
        );
        assert!(!LintSettings::parse("none", false).unwrap().duplicate_rules);
        assert!(LintSettings::parse("duplicate-rule", false).is_err());
    }

    #[test]
    fn exit_codes_and_layout() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("good.yml");
        std::fs::write(
            &good,
            "groups:\n  - name: g\n    rules:\n      - record: a\n        expr: up\n",
        )
        .unwrap();
        let dup = dir.path().join("dup.yml");
        std::fs::write(
            &dup,
            "groups:\n  - name: g\n    rules:\n      - record: a\n        expr: up\n      - record: a\n        expr: up\n",
        )
        .unwrap();
        let bad = dir.path().join("bad.yml");
        std::fs::write(&bad, "groups:\n  - name: g\n    rules:\n      - alert: A\n").unwrap();
        let run_on = |files: &[std::path::PathBuf], lint: LintSettings| {
            let (mut out, mut err) = (Vec::new(), Vec::new());
            let code = run(files, lint, &mut std::io::empty(), &mut out, &mut err);
            (
                code,
                String::from_utf8(out).unwrap(),
                String::from_utf8(err).unwrap(),
            )
        };
        let (code, out, err) = run_on(std::slice::from_ref(&good), LintSettings::default());
        assert_eq!(code, 0);
        assert_eq!(
            out,
            format!("Checking {}\n  SUCCESS: 1 rules found\n\n", good.display())
        );
        assert_eq!(err, "");
        let (code, _, err) = run_on(std::slice::from_ref(&dup), LintSettings::default());
        assert_eq!(code, 0);
        assert!(
            err.starts_with("  FAILED:\nlint error 1 duplicate"),
            "{err}"
        );
        let fatal = LintSettings::parse("duplicate-rules", true).unwrap();
        assert_eq!(run_on(std::slice::from_ref(&dup), fatal).0, EXIT_LINT);
        assert_eq!(run_on(&[dup, bad.clone()], fatal).0, EXIT_FAILURE);
        let (code, out, _) = run_on(&[bad, good.clone()], LintSettings::default());
        assert_eq!(code, EXIT_FAILURE);
        assert!(out.contains("SUCCESS: 1 rules found"), "{out}");
        let missing = dir.path().join("missing.yml");
        let (code, out, err) = run_on(&[good, missing], LintSettings::default());
        assert_eq!(code, EXIT_FAILURE);
        assert_eq!(out, "");
        assert!(err.contains("does not exist"), "{err}");
    }

    #[test]
    fn reads_standard_input_without_files() {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let mut input: &[u8] =
            b"groups:\n  - name: g\n    rules:\n      - record: a\n        expr: up\n";
        let code = run(&[], LintSettings::default(), &mut input, &mut out, &mut err);
        assert_eq!(code, 0);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "Checking standard input\n  SUCCESS: 1 rules found\n\n"
        );
    }
}
