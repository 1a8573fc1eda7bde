//! Whole files through `parse_alertmanager_file`: the fixtures under
//! `tests/config/alertmanager/`, and the meaning `finish` gives them.

#![allow(clippy::unwrap_used)]

use super::*;
use crate::config::{PromDuration, to_yaml};
use std::path::{Path, PathBuf};

fn fixtures(kind: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/config/alertmanager")
        .join(kind);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "yml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no fixtures in {}", dir.display());
    files
}

fn parse(path: &Path) -> Result<AlertmanagerConfig, ConfigError> {
    parse_alertmanager_file(&std::fs::read_to_string(path).unwrap(), "am.yml")
}

#[test]
fn valid_fixtures_parse_and_print_back() {
    for path in fixtures("valid") {
        let config = parse(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display()));
        // What is printed parses again to the same meaning (secrets aside, which print
        // redacted: the webhook URLs are swapped for url_file to keep them out of the check).
        let printed = to_yaml(&config);
        assert!(!printed.contains("hunter2"), "{printed}");
        let reparsable = printed.replace("url: <secret>", "url_file: /redacted");
        let again = parse_alertmanager_file(&reparsable, "printed.yml")
            .unwrap_or_else(|error| panic!("{}: {error}\n{printed}", path.display()));
        assert_eq!(
            to_yaml(&again),
            to_yaml(&config).replace("url: <secret>", "url_file: /redacted")
        );
    }
}

/// Each broken fixture's first line is `# error: <the exact error>`.
#[test]
fn invalid_fixtures_fail_with_their_error() {
    let mut mismatches = Vec::new();
    for path in fixtures("invalid") {
        let text = std::fs::read_to_string(&path).unwrap();
        let expected = text
            .lines()
            .next()
            .and_then(|line| line.strip_prefix("# error: "))
            .unwrap_or_else(|| panic!("{}: no `# error:` line", path.display()));
        let actual = match parse(&path) {
            Ok(_) => "parsed without error".to_string(),
            Err(error) => error.to_string(),
        };
        if actual != expected {
            mismatches.push(format!(
                "{}:\n  expected {expected}\n  actual   {actual}",
                path.display()
            ));
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}

fn production() -> AlertmanagerConfig {
    parse(
        &Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/config/alertmanager/valid/production.yml"),
    )
    .unwrap()
}

fn child<'a>(route: &'a Route, path: &[usize]) -> &'a Route {
    path.iter()
        .fold(route, |route, &index| &route.routes[index].value)
}

#[test]
fn routes_inherit_from_their_parents() {
    let config = production();
    let root = &config.route.value;
    assert_eq!(root.effective.receiver, "team-ops-mails");
    assert_eq!(root.effective.group_wait, PromDuration::from_secs(30));
    assert_eq!(
        root.effective.repeat_interval,
        PromDuration::from_secs(3 * 3600)
    );

    let pager = child(root, &[0, 0]);
    assert_eq!(pager.effective.receiver, "team-x-pager");
    assert_eq!(
        pager.effective.group_by,
        GroupBy::Labels(vec!["alertname".into(), "cluster".into(), "service".into()])
    );
    assert_eq!(
        pager.effective.repeat_interval,
        PromDuration::from_secs(3 * 3600)
    );

    let database = child(root, &[2]);
    assert_eq!(
        database
            .effective
            .matchers
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>(),
        ["env!=\"staging\"", "service=\"database\""]
    );
    assert!(child(root, &[2, 0]).continue_matching);
    assert_eq!(
        child(root, &[2, 0]).effective.group_by,
        GroupBy::Labels(vec![
            "alertname".into(),
            "cluster".into(),
            "database".into()
        ])
    );

    // `match` and `match_re` become matchers too.
    let files = child(root, &[1, 0]);
    let labels = |name: &str| match name {
        "service" => Some("files"),
        "severity" => Some("page"),
        _ => None,
    };
    assert!(all_match(&child(root, &[1]).effective.matchers, labels));
    assert!(all_match(&files.effective.matchers, labels));
    assert!(!all_match(&files.effective.matchers, |_| Some("info")));

    // Classic-only matchers, read by the fallback parser.
    let classic = child(root, &[3]);
    assert!(all_match(&classic.effective.matchers, |name| {
        (name == "path").then_some("/api/v2/users")
    }));

    let watchdog = child(root, &[4]);
    assert_eq!(watchdog.effective.group_by, GroupBy::All);
    assert_eq!(
        watchdog.effective.group_interval,
        PromDuration::from_secs(60)
    );
    assert_eq!(watchdog.effective.group_wait, PromDuration::from_secs(30));
}

#[test]
fn receivers_inherit_from_global() {
    let config = production();
    let ops = &config.receiver("team-ops-mails").unwrap().email_configs[0].value;
    assert_eq!(ops.from, "alertmanager@example.org");
    assert_eq!(ops.smarthost().unwrap().to_string(), "smtp.example.org:587");
    assert_eq!(ops.hello, "localhost");
    assert_eq!(
        ops.auth_password.as_ref().unwrap().value.expose(),
        "hunter2"
    );
    assert!(ops.require_tls());
    assert!(!ops.send_resolved);
    assert_eq!(ops.html, DEFAULT_EMAIL_HTML);
    assert!(ops.subject().starts_with("[{{ .Status"));

    let team_x = &config.receiver("team-x-mails").unwrap().email_configs[0].value;
    assert_eq!(team_x.smarthost().unwrap().port, "25");
    assert!(!team_x.require_tls());
    assert_eq!(team_x.subject(), DEFAULT_EMAIL_SUBJECT);

    let pager = &config.receiver("team-x-pager").unwrap().webhook_configs[0].value;
    assert!(pager.send_resolved);
    assert_eq!(pager.max_alerts, 10);
    assert_eq!(pager.timeout, PromDuration::from_secs(10));
    assert_eq!(
        pager.url.as_ref().unwrap().value.expose(),
        "https://pager.example.org/hooks/x?token=abc"
    );
    assert_eq!(pager.http_client(), config.global.http_client());
    let team_y = &config.receiver("team-y-pager").unwrap().webhook_configs[0].value;
    assert!(team_y.http_client().authorization.is_some());
}

#[test]
fn inhibit_rules_and_time_intervals_are_parsed() {
    let config = production();
    let rule = &config.inhibit_rules[1].value;
    assert_eq!(
        rule.all_source_matchers()[0].to_string(),
        "alertname=\"NodeDown\""
    );
    assert_eq!(
        rule.all_target_matchers()[0].to_string(),
        "alertname=~\"Node.+\""
    );
    assert_eq!(rule.equal_labels().collect::<Vec<_>>(), ["instance"]);

    let offhours = config.time_interval("offhours").unwrap();
    let evenings = &offhours.time_intervals[0];
    assert_eq!(evenings.times[1].value.start_minute(), 18 * 60);
    assert_eq!(evenings.times[1].value.end_minute(), 24 * 60);
    assert_eq!(
        (evenings.weekdays[0].start, evenings.weekdays[0].end),
        (1, 5)
    );
    let dates = &offhours.time_intervals[2];
    assert_eq!(
        (dates.days_of_month[1].start, dates.days_of_month[1].end),
        (-3, -1)
    );
    assert_eq!(
        (dates.days_of_month[2].start, dates.days_of_month[2].end),
        (15, 15)
    );
    assert_eq!((dates.months[2].start, dates.months[2].end), (1, 1));
    assert_eq!((dates.years[0].start, dates.years[0].end), (2024, 2026));
    let office = config.time_interval("business-hours").unwrap();
    assert_eq!(
        office.time_intervals[0]
            .location
            .as_ref()
            .unwrap()
            .zone
            .iana_name(),
        Some("Europe/Berlin")
    );
}

#[test]
fn an_inline_section_is_finished_with_the_rest() {
    let text = "alertmanager:\n  route:\n    receiver: nobody\n  receivers:\n    - name: default\n";
    let mut config: crate::config::Config = crate::config::parse_document(text, "t.yml").unwrap();
    assert_eq!(
        config.finish().unwrap_err().in_file("t.yml").to_string(),
        "t.yml:3:15: undefined receiver \"nobody\" used in route"
    );
}
