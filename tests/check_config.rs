//! `tocsin check config`: exit status and `file:line:column` messages, per file.
// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

mod common;

use std::process::Command;

fn check(files: &[&std::path::Path]) -> (bool, String, String) {
    let output = Command::new(common::TOCSIN)
        .args(["check", "config"])
        .args(files)
        .output()
        .unwrap();
    (
        output.status.success(),
        String::from_utf8(output.stdout).unwrap(),
        String::from_utf8(output.stderr).unwrap(),
    )
}

#[test]
fn reports_the_first_error_of_each_file_and_fails() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.yml");
    std::fs::write(&good, "global:\n  scrape_interval: 1m\n").unwrap();
    let bad = dir.path().join("bad.yml");
    std::fs::write(
        &bad,
        "global:\n  scrape_interval: 1m\nbogus_key: 1\nother_bogus: 2\n",
    )
    .unwrap();

    let (ok, stdout, stderr) = check(&[&good, &bad]);
    assert!(!ok);
    assert!(
        stdout.contains(&format!("SUCCESS: {} is valid", good.display())),
        "{stdout}"
    );
    let expected = format!("{}:3:1: unknown field `bogus_key`", bad.display());
    assert!(stderr.contains(&expected), "{stderr}");
    assert_eq!(
        stderr.lines().count(),
        1,
        "only the first error of the file: {stderr}"
    );

    let (ok, _, _) = check(&[&good]);
    assert!(ok);
}

#[test]
fn a_missing_file_is_an_error_naming_it() {
    let (ok, _, stderr) = check(&[std::path::Path::new("/nonexistent/tocsin.yml")]);
    assert!(!ok);
    assert!(
        stderr.contains("/nonexistent/tocsin.yml: cannot read"),
        "{stderr}"
    );
}

#[test]
fn follows_the_alertmanager_file_and_rule_files() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("am.yml"),
        "route:\n  receiver: nobody\nreceivers:\n  - name: team\n",
    )
    .unwrap();
    let main = dir.path().join("tocsin.yml");
    std::fs::write(&main, "alertmanager_config_file: am.yml\n").unwrap();
    let (ok, _, stderr) = check(&[&main]);
    assert!(!ok);
    let am = dir.path().join("am.yml");
    assert!(
        stderr.contains(&format!("{}:2:13:", am.display())),
        "{stderr}"
    );
    assert!(stderr.contains("nobody"), "{stderr}");
}

#[test]
fn includes_scrape_config_files_and_refuses_a_repeated_job_name() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("jobs")).unwrap();
    let main = dir.path().join("tocsin.yml");
    std::fs::write(
        &main,
        "scrape_config_files: [jobs/*.yml]\nscrape_configs:\n  - job_name: self\n    static_configs: [{targets: ['localhost:9090']}]\n",
    )
    .unwrap();
    let jobs = dir.path().join("jobs/node.yml");
    std::fs::write(&jobs, "scrape_configs:\n  - job_name: node\n    static_configs: [{targets: ['localhost:9100']}]\n").unwrap();
    let (ok, stdout, stderr) = check(&[&main]);
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("(2 scrape jobs, 0 rule files, 0 templates)"),
        "{stdout}"
    );

    std::fs::write(&jobs, "scrape_configs:\n  - job_name: self\n    static_configs: [{targets: ['localhost:9100']}]\n").unwrap();
    let (ok, _, stderr) = check(&[&main]);
    assert!(!ok);
    let expected = format!(
        "{}:2:15: found multiple scrape configs with job name \"self\" (first at {}:3)",
        jobs.display(),
        main.display()
    );
    assert!(stderr.contains(&expected), "{stderr}\nexpected: {expected}");
}

#[test]
fn template_errors_are_reported_at_their_position() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("good.tmpl"), "{{ define \"my.subject\" }}[{{ .Status | toUpper }}] {{ .CommonLabels.alertname }}{{ end }}\n").unwrap();
    let main = dir.path().join("tocsin.yml");
    std::fs::write(&main, "alertmanager:\n  templates: ['*.tmpl']\n  route:\n    receiver: r\n  receivers:\n    - name: r\n").unwrap();
    let (ok, stdout, stderr) = check(&[&main]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("1 templates"), "{stdout}");

    let bad = dir.path().join("bad.tmpl");
    std::fs::write(
        &bad,
        "{{ define \"x\" }}\n  {{ if .Status }}open{{ end\n{{ end }}\n",
    )
    .unwrap();
    let (ok, _, stderr) = check(&[&main]);
    assert!(!ok);
    let expected = format!("{}:3:1: unexpected '{{' in command", bad.display());
    assert!(stderr.contains(&expected), "{stderr}");
}
