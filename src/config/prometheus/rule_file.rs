//! Rule files (`rule_files:`): groups of recording and alerting rules, checked the way
//! `promtool check rules` checks them.

use super::labels::{LabelSet, NameValidation, SpannedMap};
use crate::config::{ConfigError, Invalid, Position, PromDuration, Spanned, parse_document};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RuleFile {
    #[serde(default)]
    pub groups: Vec<Spanned<RuleGroup>>,
}

fn is_zero(value: &u64) -> bool {
    *value == 0
}

/// Rules evaluated together, in order, every `interval`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RuleGroup {
    pub name: Spanned<String>,
    /// Unset or zero: the global `evaluation_interval`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<PromDuration>,
    /// Unset: the global `rule_query_offset`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query_offset: Option<PromDuration>,
    /// Most series an alerting rule may fire, or a recording rule may produce; zero is no limit.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub limit: u64,
    /// Added to every rule's result; the rule's own labels win.
    #[serde(default, skip_serializing_if = "LabelSet::is_empty")]
    pub labels: LabelSet,
    #[serde(default)]
    pub rules: Vec<Spanned<Rule>>,
}

/// A recording rule (`record`) or an alerting rule (`alert`).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record: Option<Spanned<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alert: Option<Spanned<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expr: Option<Spanned<String>>,
    /// How long an alert is pending before it fires.
    #[serde(default, rename = "for", skip_serializing_if = "Option::is_none")]
    pub for_duration: Option<Spanned<PromDuration>>,
    /// How long an alert keeps firing after its condition clears.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_firing_for: Option<Spanned<PromDuration>>,
    #[serde(default, skip_serializing_if = "LabelSet::is_empty")]
    pub labels: LabelSet,
    #[serde(default, skip_serializing_if = "SpannedMap::is_empty")]
    pub annotations: SpannedMap,
}

fn non_empty(value: &Option<Spanned<String>>) -> Option<&Spanned<String>> {
    value.as_ref().filter(|text| !text.value.is_empty())
}

fn duration_or_zero(value: &Option<Spanned<PromDuration>>) -> PromDuration {
    value.as_ref().map_or(PromDuration::ZERO, |d| d.value)
}

impl Rule {
    /// The alert or recorded metric name.
    pub fn name(&self) -> &str {
        non_empty(&self.alert)
            .or(non_empty(&self.record))
            .map_or("", |name| name.value.as_str())
    }

    pub fn is_alerting(&self) -> bool {
        non_empty(&self.alert).is_some()
    }

    pub fn expr(&self) -> &str {
        self.expr.as_ref().map_or("", |expr| expr.value.as_str())
    }

    pub fn for_duration(&self) -> PromDuration {
        duration_or_zero(&self.for_duration)
    }

    pub fn keep_firing_for(&self) -> PromDuration {
        duration_or_zero(&self.keep_firing_for)
    }

    /// `promtool`'s per-rule checks; the first failure, pointing at the key concerned.
    fn validate(&self, at: Position, names: NameValidation) -> Result<(), Invalid> {
        let record = non_empty(&self.record);
        let alert = non_empty(&self.alert);
        match (record, alert) {
            (Some(_), Some(alert)) => {
                return Err(Invalid::on(
                    alert,
                    "only one of 'record' and 'alert' must be set",
                ));
            }
            (None, None) => {
                return Err(Invalid::at(at, "one of 'record' or 'alert' must be set"));
            }
            _ => {}
        }
        match non_empty(&self.expr) {
            None => {
                let here = self.expr.as_ref().map_or(at, Position::of);
                return Err(Invalid::at(here, "field 'expr' must be set in rule"));
            }
            Some(expr) => {
                promql_parser::parser::parse(&expr.value).map_err(|error| {
                    Invalid::on(expr, format!("could not parse expression: {error}"))
                })?;
            }
        }
        if let Some(record) = record {
            if let Some(first) = self.annotations.entries().first() {
                return Err(Invalid::on(
                    &first.name,
                    "invalid field 'annotations' in recording rule",
                ));
            }
            if let Some(hold) = &self.for_duration
                && !hold.value.is_zero()
            {
                return Err(Invalid::on(hold, "invalid field 'for' in recording rule"));
            }
            if let Some(keep) = &self.keep_firing_for
                && !keep.value.is_zero()
            {
                return Err(Invalid::on(
                    keep,
                    "invalid field 'keep_firing_for' in recording rule",
                ));
            }
            if !names.is_valid_metric_name(&record.value) {
                return Err(Invalid::on(
                    record,
                    format!("invalid recording rule name: {}", record.value),
                ));
            }
            // Valid UTF-8, but almost always a selector pasted into the wrong key.
            if record.value.contains(['{', '}']) {
                return Err(Invalid::on(
                    record,
                    format!(
                        "braces present in the recording rule name; should it be in expr?: {}",
                        record.value
                    ),
                ));
            }
        }
        check_labels(&self.labels, names)?;
        for entry in self.annotations.entries() {
            if !names.is_valid_label_name(&entry.name.value) {
                return Err(Invalid::on(
                    &entry.name,
                    format!("invalid annotation name: {}", entry.name.value),
                ));
            }
        }
        if let Some(alert) = alert {
            let template_name = format!("__alert_{}", alert.value);
            for (kind, map) in [("label", &self.labels), ("annotation", &self.annotations)] {
                for entry in map.entries() {
                    check_template(&entry.value, &template_name).map_err(|error| {
                        Invalid::on(
                            &entry.name,
                            format!("{kind} {:?}: {error}", entry.name.value),
                        )
                    })?;
                }
            }
        }
        Ok(())
    }
}

fn check_labels(labels: &LabelSet, names: NameValidation) -> Result<(), Invalid> {
    for entry in labels.entries() {
        if !names.is_valid_label_name(&entry.name.value) || entry.name.value == "__name__" {
            return Err(Invalid::on(
                &entry.name,
                format!("invalid label name: {}", entry.name.value),
            ));
        }
    }
    Ok(())
}

/// Parses a label or annotation template as Prometheus's `promtool check rules` does: with
/// Prometheus's function set, so an unknown function or an unclosed action is an error here
/// rather than at evaluation. The message is the template parser's own
/// (`template: NAME:LINE: what`).
fn check_template(text: &str, name: &str) -> Result<(), String> {
    use tocsin_receivers::template::TemplateError;
    match tocsin_receivers::template::prometheus::check(name, text) {
        Ok(()) => Ok(()),
        Err(TemplateError::PrometheusParse {
            name,
            line,
            message,
        }) => Err(format!("template: {name}:{line}: {message}")),
        Err(other) => Err(other.to_string()),
    }
}

impl RuleFile {
    /// The checks `promtool check rules` applies after parsing: group names present and unique,
    /// valid labels, and each rule's own rules.
    pub fn validate(&self, names: NameValidation) -> Result<(), Invalid> {
        let mut seen = HashSet::new();
        for group in &self.groups {
            let name = &group.value.name;
            if name.value.is_empty() {
                return Err(Invalid::on(name, "group name must not be empty"));
            }
            if !seen.insert(name.value.as_str()) {
                return Err(Invalid::on(
                    name,
                    format!("group name {:?} is repeated in the same file", name.value),
                ));
            }
            check_labels(&group.value.labels, names)?;
            for (index, rule) in group.value.rules.iter().enumerate() {
                rule.value
                    .validate(Position::of(rule), names)
                    .map_err(|invalid| Invalid {
                        at: invalid.at,
                        message: format!(
                            "group {:?}, rule {}, {:?}: {}",
                            name.value,
                            index + 1,
                            rule.value.name(),
                            invalid.message
                        ),
                    })?;
            }
        }
        Ok(())
    }
}

/// Parses and checks one rule file. Names are checked with Prometheus 3's default UTF-8 rules.
/// An empty file (or one with only comments) has no groups, as in Prometheus.
pub fn parse_rule_file(text: &str, file: &str) -> Result<RuleFile, ConfigError> {
    let has_content = text.lines().any(|line| {
        let line = line.trim();
        !line.is_empty() && !line.starts_with('#') && line != "---"
    });
    if !has_content {
        return Ok(RuleFile::default());
    }
    let rules: RuleFile = parse_document(text, file)?;
    rules
        .validate(NameValidation::Utf8)
        .map_err(|invalid| invalid.in_file(file))?;
    Ok(rules)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn parse(text: &str) -> Result<RuleFile, String> {
        parse_rule_file(text, "rules.yml").map_err(|error| error.to_string())
    }

    #[test]
    fn parses_recording_and_alerting_rules() {
        let file = parse(
            "groups:\n  - name: node\n    interval: 30s\n    limit: 10\n    labels:\n      team: infra\n    rules:\n      - record: job:up:sum\n        expr: sum by (job) (up)\n      - alert: InstanceDown\n        expr: up == 0\n        for: 5m\n        keep_firing_for: 1m\n        labels:\n          severity: page\n        annotations:\n          summary: '{{ $labels.instance }} is down'\n",
        )
        .unwrap();
        let group = &file.groups[0].value;
        assert_eq!(group.name.value, "node");
        assert_eq!(group.interval, Some(PromDuration::from_secs(30)));
        assert_eq!(group.limit, 10);
        let alert = &group.rules[1].value;
        assert!(alert.is_alerting());
        assert_eq!(alert.name(), "InstanceDown");
        assert_eq!(alert.for_duration(), PromDuration::from_secs(300));
        assert_eq!(alert.keep_firing_for(), PromDuration::from_secs(60));
        assert_eq!(
            alert.annotations.get("summary"),
            Some("{{ $labels.instance }} is down")
        );
        assert!(!group.rules[0].value.is_alerting());
    }

    #[test]
    fn empty_files_have_no_groups() {
        assert!(parse("").unwrap().groups.is_empty());
        assert!(parse("# nothing yet\n").unwrap().groups.is_empty());
        assert!(parse("groups: []\n").unwrap().groups.is_empty());
    }

    #[test]
    fn rule_errors_point_at_the_key() {
        assert_eq!(
            parse("groups:\n  - name: g\n    rules:\n      - record: a\n        alert: B\n        expr: up\n").unwrap_err(),
            "rules.yml:5:16: group \"g\", rule 1, \"B\": only one of 'record' and 'alert' must be set"
        );
        assert_eq!(
            parse("groups:\n  - name: g\n    rules:\n      - expr: up\n").unwrap_err(),
            "rules.yml:4:9: group \"g\", rule 1, \"\": one of 'record' or 'alert' must be set"
        );
        assert_eq!(
            parse("groups:\n  - name: g\n    rules:\n      - alert: A\n").unwrap_err(),
            "rules.yml:4:9: group \"g\", rule 1, \"A\": field 'expr' must be set in rule"
        );
        assert_eq!(
            parse("groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: sum(rate(x[5m])\n").unwrap_err(),
            "rules.yml:5:15: group \"g\", rule 1, \"A\": could not parse expression: unclosed left parenthesis"
        );
        assert_eq!(
            parse("groups:\n  - name: g\n    rules:\n      - record: a\n        expr: up\n        for: 5m\n").unwrap_err(),
            "rules.yml:6:14: group \"g\", rule 1, \"a\": invalid field 'for' in recording rule"
        );
        assert_eq!(
            parse("groups:\n  - name: g\n    rules:\n      - record: a\n        expr: up\n        annotations:\n          x: y\n").unwrap_err(),
            "rules.yml:7:11: group \"g\", rule 1, \"a\": invalid field 'annotations' in recording rule"
        );
        assert_eq!(
            parse("groups:\n  - name: g\n    rules:\n      - record: 'up{job=\"a\"}'\n        expr: up\n").unwrap_err(),
            "rules.yml:4:17: group \"g\", rule 1, \"up{job=\\\"a\\\"}\": braces present in the recording rule name; should it be in expr?: up{job=\"a\"}"
        );
        assert_eq!(
            parse("groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: up\n        labels:\n          __name__: x\n").unwrap_err(),
            "rules.yml:7:11: group \"g\", rule 1, \"A\": invalid label name: __name__"
        );
        assert_eq!(
            parse("groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: up\n        annotations:\n          summary: '{{ $value '\n").unwrap_err(),
            "rules.yml:7:11: group \"g\", rule 1, \"A\": annotation \"summary\": template: __alert_A:1: unclosed action"
        );
        assert_eq!(
            parse("groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: up\n        lables: {}\n").unwrap_err(),
            "rules.yml:6:9: unknown field `lables`, expected one of record, alert, expr, for, keep_firing_for, labels, annotations"
        );
    }

    #[test]
    fn group_errors() {
        assert_eq!(
            parse("groups:\n  - name: g\n    rules: []\n  - name: g\n    rules: []\n").unwrap_err(),
            "rules.yml:4:11: group name \"g\" is repeated in the same file"
        );
        assert_eq!(
            parse("groups:\n  - name: ''\n    rules: []\n").unwrap_err(),
            "rules.yml:2:11: group name must not be empty"
        );
        assert!(
            parse("groups:\n  - rules: []\n")
                .unwrap_err()
                .contains("missing field `name`")
        );
    }

    #[test]
    fn templates() {
        let check = |text: &str| check_template(text, "__alert_A");
        for good in [
            "plain",
            "{{ $labels.job }}",
            "{{- $value -}}",
            "{{ \"}}\" }}",
            "{{/* a comment */}}",
            "{{ if gt $value 1.0 }}high{{ else }}low{{ end }}",
            "}} alone",
            "{{ humanize $value }} {{ with query \"up\" }}{{ . | first | value }}{{ end }}",
        ] {
            check(good).unwrap();
        }
        assert_eq!(
            check("a\n{{ x").unwrap_err(),
            "template: __alert_A:2: unclosed action"
        );
        assert_eq!(
            check("{{ }}").unwrap_err(),
            "template: __alert_A:1: missing value for command"
        );
        assert_eq!(
            check("{{/* x").unwrap_err(),
            "template: __alert_A:1: unclosed comment"
        );
        // Alertmanager's functions are not Prometheus's.
        assert_eq!(
            check("{{ since 1 }}").unwrap_err(),
            "template: __alert_A:1: function \"since\" not defined"
        );
    }

    proptest! {
        #[test]
        fn template_check_never_panics(text in "[{}\"'`/*\\\\a -]{0,30}") {
            let _ = check_template(&text, "t");
        }

        #[test]
        fn recording_rule_names_from_the_legacy_set_are_accepted(name in "[a-zA-Z_:][a-zA-Z0-9_:]{0,20}") {
            let text = format!("groups:\n  - name: g\n    rules:\n      - record: '{name}'\n        expr: up\n");
            prop_assert!(parse(&text).is_ok(), "{:?}", parse(&text));
        }
    }
}
