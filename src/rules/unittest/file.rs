//! The test file of `promtool test rules` (Prometheus's `configuration/unit_testing_rules.md`),
//! read with the same strictness as promtool: unknown keys are errors.

use crate::config::{ConfigError, PromDuration, Spanned, parse_document};
use serde::{Deserialize, Deserializer};
use std::collections::BTreeMap;

/// Evaluation interval when the file sets none (promtool's default).
pub const DEFAULT_EVALUATION_INTERVAL: PromDuration = PromDuration::from_secs(60);

/// One test file: the rule files under test and the test groups run against them.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestFile {
    /// Paths or globs, relative to the test file unless absolute.
    #[serde(default)]
    pub rule_files: Vec<Spanned<String>>,
    /// How often every group is evaluated; unset or zero: one minute.
    #[serde(default)]
    pub evaluation_interval: Option<PromDuration>,
    /// Groups evaluated first, in this order, at each evaluation time; the others follow.
    #[serde(default)]
    pub group_eval_order: Vec<Spanned<String>>,
    /// Prometheus 3: float comparisons ignore a difference in the last bits of the mantissa.
    #[serde(default)]
    pub fuzzy_compare: bool,
    #[serde(default)]
    pub tests: Vec<Spanned<TestGroup>>,
}

impl TestFile {
    pub fn evaluation_interval(&self) -> PromDuration {
        match self.evaluation_interval {
            Some(interval) if !interval.is_zero() => interval,
            _ => DEFAULT_EVALUATION_INTERVAL,
        }
    }
}

/// Input series and the tests run on them, with the rules evaluated from time zero.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestGroup {
    /// Time between two points of `input_series`; unset or zero: the evaluation interval
    /// (Prometheus 3; Prometheus 2 used zero, putting every point at time zero).
    #[serde(default)]
    pub interval: Option<PromDuration>,
    #[serde(default)]
    pub input_series: Vec<Spanned<InputSeries>>,
    #[serde(default)]
    pub alert_rule_test: Vec<Spanned<AlertTestCase>>,
    #[serde(default)]
    pub promql_expr_test: Vec<Spanned<PromqlTestCase>>,
    /// What `$externalLabels` shows in templates (not added to the alerts' labels).
    #[serde(default)]
    pub external_labels: BTreeMap<String, String>,
    /// What `$externalURL` shows in templates.
    #[serde(default, deserialize_with = "scalar_text")]
    pub external_url: String,
    /// Shown with the group's failures.
    #[serde(default, deserialize_with = "scalar_text")]
    pub name: String,
}

/// One input series: `metric{label="value"}` and its values in the expanding notation.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputSeries {
    #[serde(default, deserialize_with = "scalar_text")]
    pub series: String,
    #[serde(default, deserialize_with = "scalar_text")]
    pub values: String,
}

/// The alerts of one name expected to be firing at one time.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertTestCase {
    #[serde(default)]
    pub eval_time: PromDuration,
    #[serde(default, deserialize_with = "scalar_text")]
    pub alertname: String,
    #[serde(default)]
    pub exp_alerts: Vec<ExpectedAlert>,
}

/// One expected firing alert: its labels (without `alertname`, which the runner adds) and
/// its expanded annotations.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectedAlert {
    #[serde(default)]
    pub exp_labels: BTreeMap<String, String>,
    #[serde(default)]
    pub exp_annotations: BTreeMap<String, String>,
}

/// An expression evaluated at one time after all rule evaluations, and its expected result.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PromqlTestCase {
    #[serde(default, deserialize_with = "scalar_text")]
    pub expr: String,
    #[serde(default)]
    pub eval_time: PromDuration,
    #[serde(default)]
    pub exp_samples: Vec<ExpectedSample>,
}

/// One expected sample: labels in series notation (empty for a scalar result) and a value.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectedSample {
    #[serde(default, deserialize_with = "scalar_text")]
    pub labels: String,
    #[serde(default)]
    pub value: f64,
}

/// A string field that YAML may also write as a bare number or boolean (`values: 1`), which
/// promtool accepts as text.
fn scalar_text<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Scalar {
        Text(String),
        Integer(i64),
        Float(f64),
        Bool(bool),
    }
    Ok(match Scalar::deserialize(deserializer)? {
        Scalar::Text(text) => text,
        Scalar::Integer(number) => number.to_string(),
        Scalar::Float(number) => number.to_string(),
        Scalar::Bool(flag) => flag.to_string(),
    })
}

/// Parses a test file; `file` names it in errors.
pub fn parse_test_file(text: &str, file: &str) -> Result<TestFile, ConfigError> {
    let has_content = text.lines().any(|line| {
        let line = line.trim();
        !line.is_empty() && !line.starts_with('#') && line != "---"
    });
    if !has_content {
        return Ok(TestFile::default());
    }
    parse_document(text, file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_documented_format() {
        let text = r#"
rule_files: [rules.yml, 'more/*.yml']
evaluation_interval: 30s
group_eval_order: [b, a]
tests:
  - interval: 1m
    name: first
    external_labels: {region: eu}
    external_url: http://example.com/
    input_series:
      - series: 'up{job="a"}'
        values: '1+0x10 _ stale'
      - series: x
        values: 1
    alert_rule_test:
      - eval_time: 5m
        alertname: Down
        exp_alerts:
          - exp_labels: {severity: page}
            exp_annotations: {summary: down}
      - eval_time: 6m
        alertname: Down
    promql_expr_test:
      - expr: sum(up)
        eval_time: 2m
        exp_samples:
          - labels: '{}'
            value: 1e3
          - value: .inf
"#;
        let file = parse_test_file(text, "t.yml").unwrap();
        assert_eq!(file.rule_files.len(), 2);
        assert_eq!(file.evaluation_interval(), PromDuration::from_secs(30));
        assert_eq!(file.group_eval_order[0].value, "b");
        let group = &file.tests[0].value;
        assert_eq!(group.interval, Some(PromDuration::from_secs(60)));
        assert_eq!(group.name, "first");
        assert_eq!(group.external_labels["region"], "eu");
        assert_eq!(group.input_series[1].value.values, "1");
        let alert = &group.alert_rule_test[0].value;
        assert_eq!(alert.eval_time, PromDuration::from_secs(300));
        assert_eq!(alert.exp_alerts[0].exp_annotations["summary"], "down");
        assert!(group.alert_rule_test[1].value.exp_alerts.is_empty());
        let samples = &group.promql_expr_test[0].value.exp_samples;
        assert_eq!(samples[0].value, 1000.0);
        assert_eq!(samples[1].labels, "");
        assert_eq!(samples[1].value, f64::INFINITY);
    }

    #[test]
    fn defaults_and_errors() {
        let file = parse_test_file("tests: []\n", "t.yml").unwrap();
        assert_eq!(file.evaluation_interval(), DEFAULT_EVALUATION_INTERVAL);
        assert!(parse_test_file("", "t.yml").unwrap().tests.is_empty());
        let error = parse_test_file("tests:\n  - intervall: 1m\n", "t.yml").unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("t.yml:2:5: unknown field `intervall`"),
            "{error}"
        );
        let error = parse_test_file("evaluation_interval: 1 minute\n", "t.yml").unwrap_err();
        assert!(error.to_string().starts_with("t.yml:1:"), "{error}");
    }
}
