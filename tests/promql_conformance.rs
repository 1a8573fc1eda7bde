//! Runs Prometheus's promqltest files in `../shared/conformance/promqltest/` against Tocsin's
//! PromQL engine and prints passed/failed/skipped per file. Set `PROMQL_CONFORMANCE_VERBOSE=1`
//! to print each failing evaluation with what was expected and what came back, and
//! `PROMQL_CONFORMANCE_FILE=name.test` to run one file, `PROMQL_CONFORMANCE_ALL=1` to also run
//! the files on the skip list (their failures are printed but not counted).

#![allow(clippy::print_stdout)]

use std::collections::BTreeMap;
use std::path::PathBuf;

use tocsin::promql::promqltest::{SKIPPED_FILES, run_file};

#[test]
fn promql_conformance() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/conformance/promqltest");
    let mut files: Vec<PathBuf> = match std::fs::read_dir(&dir) {
        Ok(rd) => rd
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "test"))
            .collect(),
        Err(e) => {
            println!(
                "conformance suite not found at {}: {e}; skipping",
                dir.display()
            );
            return;
        }
    };
    files.sort();
    let verbose = std::env::var("PROMQL_CONFORMANCE_VERBOSE").is_ok_and(|v| v == "1");
    let only = std::env::var("PROMQL_CONFORMANCE_FILE").ok();
    // Runs the files on the skip list too, to see what of them already works (not asserted).
    let run_skipped = std::env::var("PROMQL_CONFORMANCE_ALL").is_ok_and(|v| v == "1");
    let (mut passed, mut failed, mut skipped) = (0usize, 0usize, 0usize);
    let mut reasons: BTreeMap<&str, usize> = BTreeMap::new();
    println!(
        "{:<28} {:>7} {:>7} {:>8}",
        "file", "passed", "failed", "skipped"
    );
    for path in files {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("?")
            .to_string();
        if only.as_ref().is_some_and(|o| o != &name) {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let skipped_file = SKIPPED_FILES.iter().find(|(f, _)| *f == name);
        if let (Some((_, reason)), false) = (skipped_file, run_skipped) {
            let evals = text.lines().filter(|l| l.starts_with("eval")).count();
            println!(
                "{name:<28} {:>7} {:>7} {evals:>8}  (whole file: {reason})",
                0, 0
            );
            skipped += evals;
            *reasons.entry(reason).or_default() += evals;
            continue;
        }
        let report = run_file(&text);
        println!(
            "{name:<28} {:>7} {:>7} {:>8}",
            report.passed,
            report.failed.len(),
            report.skipped.len()
        );
        passed += report.passed;
        if skipped_file.is_none() {
            failed += report.failed.len();
        }
        skipped += report.skipped.len();
        for (_, reason) in &report.skipped {
            *reasons.entry(reason).or_default() += 1;
        }
        if verbose {
            for f in &report.failed {
                println!("  FAIL {name}:{} {}\n       {}", f.line, f.query, f.message);
            }
        }
    }
    println!("{:<28} {passed:>7} {failed:>7} {skipped:>8}", "TOTAL");
    println!("skipped by reason:");
    for (reason, n) in &reasons {
        println!("  {n:>5}  {reason}");
    }
    assert_eq!(
        failed, 0,
        "{failed} promqltest evaluations failed (PROMQL_CONFORMANCE_VERBOSE=1 lists them)"
    );
}
