//! `tocsin check rules` and `tocsin test rules` against Prometheus's promtool on the same
//! files (tests/rules_tools/): the same verdicts and exit codes, the same rule counts, and, where
//! both word the failure the same way, the same output byte for byte.
//!
//! The fixtures use only what both Prometheus 2.42's promtool (the one installed) and
//! Prometheus 3 accept: every test group sets `interval` (Prometheus 2 defaults it to zero,
//! Prometheus 3 to the evaluation interval), rule groups have no `labels` or `query_offset`
//! (Prometheus 3 keys), and ranges never depend on whether a sample exactly one range ago is
//! included (Prometheus 3 excludes it).

// A failure to run a process or read its output is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const PROMTOOL: &str = "/usr/bin/promtool";

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/rules_tools")
}

#[derive(Debug)]
struct Outcome {
    code: i32,
    stdout: String,
    stderr: String,
}

fn run(program: &str, args: &[&str], dir: &Path, stdin: Option<&str>) -> Outcome {
    let mut command = Command::new(program);
    command
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        });
    let mut child = command
        .spawn()
        .unwrap_or_else(|error| panic!("cannot run {program}: {error}"));
    if let Some(text) = stdin {
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
    }
    let output = child.wait_with_output().unwrap();
    Outcome {
        code: output.status.code().expect("exited, not killed"),
        stdout: String::from_utf8(output.stdout).unwrap(),
        stderr: String::from_utf8(output.stderr).unwrap(),
    }
}

fn promtool(args: &[&str], dir: &Path) -> Outcome {
    assert!(
        Path::new(PROMTOOL).exists(),
        "{PROMTOOL} is needed to compare against (Debian package prometheus)"
    );
    run(PROMTOOL, args, dir, None)
}

fn tocsin(args: &[&str], dir: &Path) -> Outcome {
    run(env!("CARGO_BIN_EXE_tocsin"), args, dir, None)
}

fn success_lines(text: &str) -> Vec<&str> {
    text.lines()
        .filter(|line| line.starts_with("Checking ") || line.contains("SUCCESS"))
        .collect()
}

#[test]
fn check_rules_agrees_with_promtool_file_by_file() {
    let dir = fixtures().join("rules");
    // (file, exit status, rules found when valid, whether a lint finding is printed)
    let cases = [
        ("service.yml", 0, Some(6), false),
        ("keep_firing.yml", 0, Some(1), false),
        ("eval_order.yml", 0, Some(2), false),
        ("dup_output.yml", 0, Some(1), false),
        ("empty.yml", 0, Some(0), false),
        // A duplicate is reported as FAILED but, not being fatal by default, exits 0.
        ("duplicate.yml", 0, None, true),
        ("bad_syntax.yml", 1, None, false),
        ("bad_fields.yml", 1, None, false),
        ("bad_yaml.yml", 1, None, false),
    ];
    for (file, code, rules, lint) in cases {
        let theirs = promtool(&["check", "rules", file], &dir);
        let ours = tocsin(&["check", "rules", file], &dir);
        assert_eq!(theirs.code, code, "promtool on {file}: {theirs:?}");
        assert_eq!(ours.code, code, "tocsin on {file}: {ours:?}");
        assert_eq!(
            success_lines(&ours.stdout),
            success_lines(&theirs.stdout),
            "{file}"
        );
        if let Some(rules) = rules {
            assert!(
                ours.stdout
                    .contains(&format!("  SUCCESS: {rules} rules found\n")),
                "{file}: {ours:?}"
            );
        }
        assert_eq!(
            ours.stderr.contains("  FAILED:"),
            theirs.stderr.contains("  FAILED:"),
            "{file}: {ours:?} {theirs:?}"
        );
        if lint {
            // The lint finding is worded exactly as promtool words it.
            assert_eq!(ours.stderr, theirs.stderr, "{file}");
        }
    }
}

#[test]
fn check_rules_lists_every_error_as_promtool_does() {
    let dir = fixtures().join("rules");
    for file in ["bad_syntax.yml", "bad_fields.yml"] {
        let theirs = promtool(&["check", "rules", file], &dir);
        let ours = tocsin(&["check", "rules", file], &dir);
        let count = |text: &str| text.lines().filter(|l| l.starts_with(file)).count();
        assert_eq!(count(&ours.stderr), 2, "{ours:?}");
        assert_eq!(count(&ours.stderr), count(&theirs.stderr), "{file}");
    }
}

#[test]
fn check_rules_over_many_files_and_lint_flags() {
    let dir = fixtures().join("rules");
    let files = [
        "service.yml",
        "duplicate.yml",
        "bad_syntax.yml",
        "empty.yml",
    ];
    let args: Vec<&str> = ["check", "rules"].iter().chain(&files).copied().collect();
    let theirs = promtool(&args, &dir);
    let ours = tocsin(&args, &dir);
    assert_eq!((ours.code, theirs.code), (1, 1));
    assert_eq!(success_lines(&ours.stdout), success_lines(&theirs.stdout));

    for extra in [
        &["--lint-fatal"][..],
        &["--lint=none"][..],
        &["--lint=all", "--lint-fatal"][..],
    ] {
        let args: Vec<&str> = ["check", "rules"]
            .iter()
            .chain(extra)
            .chain(&["duplicate.yml"])
            .copied()
            .collect();
        let theirs = promtool(&args, &dir);
        let ours = tocsin(&args, &dir);
        assert_eq!(ours.code, theirs.code, "{extra:?}: {ours:?} {theirs:?}");
        assert_eq!(success_lines(&ours.stdout), success_lines(&theirs.stdout));
    }
    assert_eq!(
        tocsin(&["check", "rules", "--lint-fatal", "duplicate.yml"], &dir).code,
        3
    );

    // A missing file stops both before anything is checked.
    let theirs = promtool(&["check", "rules", "service.yml", "missing.yml"], &dir);
    let ours = tocsin(&["check", "rules", "service.yml", "missing.yml"], &dir);
    assert_eq!((ours.code, theirs.code), (1, 1));
    assert_eq!(ours.stdout, theirs.stdout);
}

#[test]
fn check_rules_reads_standard_input_without_files() {
    // Prometheus 3 reads standard input when no file is given (2.42 requires a file), so the
    // file's verdict from promtool is the reference.
    let dir = fixtures().join("rules");
    let text = std::fs::read_to_string(dir.join("service.yml")).unwrap();
    let ours = run(
        env!("CARGO_BIN_EXE_tocsin"),
        &["check", "rules"],
        &dir,
        Some(&text),
    );
    let theirs = promtool(&["check", "rules", "service.yml"], &dir);
    assert_eq!((ours.code, theirs.code), (0, 0));
    assert_eq!(
        ours.stdout,
        theirs
            .stdout
            .replace("Checking service.yml", "Checking standard input")
    );
    let broken = run(
        env!("CARGO_BIN_EXE_tocsin"),
        &["check", "rules"],
        &dir,
        Some("groups:\n  - name: g\n    rules:\n      - alert: A\n"),
    );
    assert_eq!(broken.code, 1, "{broken:?}");
    assert!(
        broken
            .stderr
            .contains("standard input:4:9: group \"g\", rule 1, \"A\": field 'expr' must be set"),
        "{broken:?}"
    );
}

#[test]
fn test_rules_agrees_with_promtool() {
    let dir = fixtures();
    // (file, exit status, whether both print the same output byte for byte)
    let cases = [
        ("pass_service.yml", 0, true),
        ("pass_keep_firing.yml", 0, true),
        ("pass_eval_order.yml", 0, true),
        ("pass_eval_order_reversed.yml", 0, true),
        ("fail_labels.yml", 1, true),
        ("fail_annotation.yml", 1, true),
        ("fail_pending.yml", 1, true),
        ("fail_value.yml", 1, true),
        ("fail_eval_error.yml", 1, true),
        ("fail_missing_alertname.yml", 1, true),
        // Rule file and YAML errors: Tocsin's own messages, with line and column.
        ("fail_bad_rules.yml", 1, false),
        ("fail_unknown_key.yml", 1, false),
    ];
    for (file, code, same_output) in cases {
        let theirs = promtool(&["test", "rules", file], &dir);
        let ours = tocsin(&["test", "rules", file], &dir);
        assert_eq!(theirs.code, code, "promtool on {file}: {theirs:?}");
        assert_eq!(ours.code, code, "tocsin on {file}: {ours:?}");
        if same_output {
            assert_eq!(ours.stdout, theirs.stdout, "{file}");
            assert_eq!(ours.stderr, theirs.stderr, "{file}");
        } else {
            assert!(ours.stderr.starts_with("  FAILED:\n"), "{file}: {ours:?}");
            // promtool prints a blank line on standard output per error: as many errors.
            assert_eq!(ours.stdout, theirs.stdout, "{file}");
        }
    }
}

#[test]
fn test_rules_over_many_files() {
    let dir = fixtures();
    let passing = [
        "test",
        "rules",
        "pass_service.yml",
        "pass_keep_firing.yml",
        "pass_eval_order.yml",
    ];
    let theirs = promtool(&passing, &dir);
    let ours = tocsin(&passing, &dir);
    assert_eq!((ours.code, theirs.code), (0, 0));
    assert_eq!(ours.stdout, theirs.stdout);

    let mixed = ["test", "rules", "fail_value.yml", "pass_service.yml"];
    let theirs = promtool(&mixed, &dir);
    let ours = tocsin(&mixed, &dir);
    assert_eq!((ours.code, theirs.code), (1, 1));
    assert_eq!(ours.stdout, theirs.stdout);
    assert_eq!(ours.stderr, theirs.stderr);
}

#[test]
fn test_rules_run_selects_test_groups_by_name() {
    // Prometheus 3's `--run`: the failing group is skipped when another name is asked for.
    let dir = fixtures();
    assert_eq!(
        tocsin(
            &["test", "rules", "--run", "^service$", "fail_value.yml"],
            &dir
        )
        .code,
        1
    );
    let skipped = tocsin(&["test", "rules", "--run", "other", "fail_value.yml"], &dir);
    assert_eq!(skipped.code, 0, "{skipped:?}");
    assert!(skipped.stdout.contains("  SUCCESS"), "{skipped:?}");
}
