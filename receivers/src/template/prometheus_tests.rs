//! Prometheus's dialect: expected outputs follow Prometheus's `template_test.go` scenarios and
//! the formats of Go's `fmt`, `time` and Prometheus's helpers.

use std::collections::HashMap;

use proptest::prelude::*;

use super::prometheus::{
    NoQuery, PREAMBLE, QuerySample, RuleTemplateData, TemplateQuery, check, expand,
};
use super::{Limits, RenderMode, TemplateError, Templates};

/// Answers queries from a table; an unknown expression is an error, as a bad query would be.
#[derive(Default)]
struct FakeQuery(HashMap<String, Vec<QuerySample>>);

impl FakeQuery {
    fn with(mut self, expr: &str, samples: Vec<QuerySample>) -> FakeQuery {
        self.0.insert(expr.to_string(), samples);
        self
    }
}

impl TemplateQuery for FakeQuery {
    fn query(&self, expr: &str) -> Result<Vec<QuerySample>, String> {
        self.0
            .get(expr)
            .cloned()
            .ok_or_else(|| format!("1:1: parse error: unexpected character in {expr:?}"))
    }
}

fn labels(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect()
}

fn sample(pairs: &[(&str, &str)], value: f64) -> QuerySample {
    QuerySample {
        labels: labels(pairs),
        value,
    }
}

/// The evaluation time the tests run at: 2023-11-14 22:13:20.123 UTC.
const NOW_MS: i64 = 1_700_000_000_123;

struct Case {
    labels: Vec<(String, String)>,
    external_labels: Vec<(String, String)>,
    external_url: String,
    value: f64,
    query: FakeQuery,
    limits: Limits,
}

impl Case {
    fn new() -> Case {
        Case {
            labels: labels(&[
                ("alertname", "HighLatency"),
                ("instance", "a.example.com:9100"),
                ("job", "api"),
            ]),
            external_labels: labels(&[("cluster", "eu1"), ("replica", "0")]),
            external_url: "http://testhost:9090/path/prefix".into(),
            value: 0.5,
            query: FakeQuery::default(),
            limits: Limits::default(),
        }
    }

    fn value(mut self, value: f64) -> Case {
        self.value = value;
        self
    }

    fn query(mut self, expr: &str, samples: Vec<QuerySample>) -> Case {
        self.query = self.query.with(expr, samples);
        self
    }

    fn run(&self, text: &str) -> Result<String, TemplateError> {
        let data = RuleTemplateData {
            labels: &self.labels,
            external_labels: &self.external_labels,
            external_url: &self.external_url,
            value: self.value,
        };
        expand("test", text, &data, &self.query, NOW_MS, &self.limits)
    }

    fn ok(&self, text: &str) -> String {
        match self.run(text) {
            Ok(out) => out,
            Err(error) => panic!("{text:?} failed: {error}"),
        }
    }

    fn err(&self, text: &str) -> String {
        match self.run(text) {
            Ok(out) => panic!("{text:?} should fail, expanded to {out:?}"),
            Err(error) => error.to_string(),
        }
    }
}

fn ok(text: &str) -> String {
    Case::new().ok(text)
}

fn err(text: &str) -> String {
    Case::new().err(text)
}

/// Columns on the first line count Prometheus's preamble, which is prepended to the text.
fn first_line_column(column: usize) -> usize {
    PREAMBLE.len() + column
}

#[test]
fn prometheus_preamble_is_prometheus_s() {
    assert_eq!(
        PREAMBLE,
        "{{$labels := .Labels}}{{$externalLabels := .ExternalLabels}}{{$externalURL := .ExternalURL}}{{$value := .Value}}"
    );
    assert_eq!(PREAMBLE.len(), 112);
}

#[test]
fn prometheus_plain_text_and_literals_are_text_mode() {
    assert_eq!(ok("plain text"), "plain text");
    assert_eq!(ok(""), "");
    assert_eq!(ok("{{ 1 }}"), "1");
    // No HTML escaping in rule templates.
    assert_eq!(ok("{{ \"<b>\" }}"), "<b>");
    assert_eq!(ok("{{ \"<b>\" | safeHtml }}"), "<b>");
}

#[test]
fn prometheus_labels_map_access_forms() {
    let case = Case::new();
    assert_eq!(case.ok("{{ .Labels.job }}"), "api");
    assert_eq!(case.ok("{{ $labels.job }}"), "api");
    assert_eq!(case.ok("{{ index $labels \"job\" }}"), "api");
    assert_eq!(
        case.ok("{{ index .Labels \"instance\" }}"),
        "a.example.com:9100"
    );
    // map[string]string with missingkey=zero: a missing label is "".
    assert_eq!(case.ok("[{{ $labels.nope }}]"), "[]");
    assert_eq!(case.ok("[{{ index $labels \"nope\" }}]"), "[]");
    // Ranging over a map goes in key order.
    assert_eq!(
        case.ok("{{ range $k, $v := $labels }}{{ $k }}={{ $v }};{{ end }}"),
        "alertname=HighLatency;instance=a.example.com:9100;job=api;"
    );
    assert_eq!(
        case.ok("{{ range $labels }}{{ . }},{{ end }}"),
        "HighLatency,a.example.com:9100,api,"
    );
    assert_eq!(case.ok("{{ len $labels }}"), "3");
    assert_eq!(case.ok("{{ if $labels.job }}yes{{ end }}"), "yes");
    // Go prints a map as map[k:v …], keys sorted.
    assert_eq!(
        case.ok("{{ $externalLabels }}"),
        "map[cluster:eu1 replica:0]"
    );
    assert_eq!(case.ok("{{ $externalLabels.cluster }}"), "eu1");
    assert_eq!(case.ok("{{ .ExternalLabels.replica }}"), "0");
    assert_eq!(
        case.ok("{{ $externalURL }}"),
        "http://testhost:9090/path/prefix"
    );
    assert_eq!(
        case.ok("{{ .ExternalURL }}"),
        "http://testhost:9090/path/prefix"
    );
    assert_eq!(
        case.ok("{{ . }}"),
        "{map[alertname:HighLatency instance:a.example.com:9100 job:api] \
         map[cluster:eu1 replica:0] http://testhost:9090/path/prefix 0.5}"
    );
    // Labels sent unsorted still read and range sorted.
    let mut unsorted = Case::new();
    unsorted.labels = labels(&[("zone", "z"), ("app", "a")]);
    assert_eq!(
        unsorted.ok("{{ range $k, $v := .Labels }}{{ $k }}{{ end }} {{ .Labels.app }}"),
        "appzone a"
    );
}

#[test]
fn prometheus_value_prints_as_go_float64() {
    assert_eq!(Case::new().value(0.5).ok("{{ $value }}"), "0.5");
    assert_eq!(Case::new().value(1e6).ok("{{ $value }}"), "1e+06");
    assert_eq!(Case::new().value(123456.0).ok("{{ $value }}"), "123456");
    assert_eq!(Case::new().value(3.0).ok("{{ .Value }}"), "3");
    assert_eq!(Case::new().value(-0.000012).ok("{{ $value }}"), "-1.2e-05");
    assert_eq!(Case::new().value(f64::NAN).ok("{{ $value }}"), "NaN");
    assert_eq!(Case::new().value(f64::INFINITY).ok("{{ $value }}"), "+Inf");
    assert_eq!(
        Case::new()
            .value(2.0 / 3.0)
            .ok("{{ printf \"%.2f\" $value }}"),
        "0.67"
    );
    assert_eq!(
        Case::new()
            .value(0.25)
            .ok("{{ if gt $value 0.2 }}high{{ end }}"),
        "high"
    );
    assert_eq!(
        Case::new().value(1234567.0).ok("{{ $value | humanize }}"),
        "1.235M"
    );
}

#[test]
fn prometheus_query_first_label_value() {
    let case = Case::new()
        .query("1.5", vec![sample(&[], 1.5)])
        .query(
            "metric",
            vec![
                sample(&[("__name__", "metric"), ("instance", "b")], 21.0),
                sample(&[("__name__", "metric"), ("instance", "a")], 11.0),
                sample(&[("__name__", "metric"), ("__value__", "up")], 1.0),
            ],
        )
        .query("none", vec![]);
    assert_eq!(case.ok("{{ query \"1.5\" | first | value }}"), "1.5");
    assert_eq!(
        case.ok("{{ query \"metric\" | first | label \"instance\" }}"),
        "b"
    );
    assert_eq!(
        case.ok("[{{ query \"metric\" | first | label \"foo\" }}]"),
        "[]"
    );
    assert_eq!(
        case.ok("[{{ $x := query \"metric\" | first }}{{ $x.Labels.foo }}]"),
        "[]"
    );
    assert_eq!(
        case.ok("{{ with query \"metric\" }}{{ (index . 1).Labels.instance }}{{ end }}"),
        "a"
    );
    assert_eq!(case.ok("{{ (query \"metric\" | first).Value }}"), "21");
    assert_eq!(case.ok("{{ query \"metric\" | len }}"), "3");
    assert_eq!(
        case.ok("{{ range query \"metric\" | sortByLabel \"instance\" }}{{ .Labels.instance }}:{{ .Value }}: {{ end }}"),
        // Stable: the sample without `instance` sorts first.
        ":1: a:11: b:21: "
    );
    assert_eq!(
        case.ok("{{ range query \"metric\" }}{{ strvalue . }};{{ end }}"),
        ";;up;"
    );
    assert_eq!(
        case.ok("{{ with query \"none\" }}some{{ else }}none{{ end }}"),
        "none"
    );
    assert_eq!(case.ok("{{ query \"1.5\" | first }}"), "{map[] 1.5}");
    assert_eq!(
        case.ok("{{ range $i, $s := query \"metric\" }}{{ $i }}{{ end }}"),
        "012"
    );
}

#[test]
fn prometheus_sort_by_label_is_stable() {
    let case = Case::new().query(
        "m",
        vec![
            sample(&[("instance", "b"), ("n", "1")], 1.0),
            sample(&[("instance", "a"), ("n", "2")], 2.0),
            sample(&[("instance", "b"), ("n", "3")], 3.0),
            sample(&[("n", "4")], 4.0),
        ],
    );
    assert_eq!(
        case.ok("{{ range query \"m\" | sortByLabel \"instance\" }}{{ .Labels.n }}{{ end }}"),
        "4213"
    );
}

#[test]
fn prometheus_query_errors_abort_the_expansion() {
    let case = Case::new().query("none", vec![]);
    assert_eq!(
        case.err("{{ query \"missing\" }}"),
        format!(
            "error executing template test: template: test:1:{}: executing \"test\" at <query \"missing\">: \
             error calling query: 1:1: parse error: unexpected character in \"missing\"",
            first_line_column(3)
        )
    );
    assert_eq!(
        case.err("{{ query \"none\" | first }}"),
        format!(
            "error executing template test: template: test:1:{}: executing \"test\" at <first>: \
             error calling first: first() called on vector with no elements",
            first_line_column(18)
        )
    );
    assert!(
        case.err("{{ (query \"none\").banana }}")
            .ends_with("can't evaluate field banana in type template.queryResult"),
    );
    // On a later line, the column is the line's own.
    assert_eq!(
        case.err("line one\n  {{ query \"none\" | first }}"),
        "error executing template test: template: test:2:20: executing \"test\" at <first>: \
         error calling first: first() called on vector with no elements"
    );
    let no_query = Case {
        query: FakeQuery::default(),
        ..Case::new()
    };
    assert!(
        no_query
            .err("{{ query \"up\" }}")
            .contains("error calling query: ")
    );
    let data = RuleTemplateData {
        labels: &[],
        external_labels: &[],
        external_url: "",
        value: 0.0,
    };
    let refused = expand(
        "test",
        "{{ query \"up\" }}",
        &data,
        &NoQuery("queries are off".into()),
        NOW_MS,
        &Limits::default(),
    );
    assert!(matches!(
        refused,
        Err(TemplateError::PrometheusExec { ref message, .. }) if message == "error calling query: queries are off"
    ));
}

#[test]
fn prometheus_exec_errors_locate_like_go() {
    let error = Case::new().run("{{ humanize true }}");
    let Err(TemplateError::PrometheusExec {
        name,
        template,
        line,
        column,
        context,
        message,
    }) = error
    else {
        panic!("expected an evaluation error, got {error:?}");
    };
    assert_eq!(name, "test");
    assert_eq!(template, "test");
    assert_eq!(line, 1);
    assert_eq!(column, first_line_column(3));
    assert_eq!(context, "humanize true");
    assert_eq!(
        message,
        "error calling humanize: can't convert bool to float"
    );
    // Errors inside a defined template name it.
    assert_eq!(
        err("{{ define \"x\" }}{{ humanize .arg0 }}{{ end }}{{ template \"x\" (args \"abc\") }}"),
        format!(
            "error executing template test: template: test:1:{}: executing \"x\" at <humanize .arg0>: \
             error calling humanize: strconv.ParseFloat: parsing \"abc\": invalid syntax",
            first_line_column(19)
        )
    );
    assert!(err("{{ $value.foo }}").ends_with("can't evaluate field foo in type float64"));
    // Go places a field error on a parenthesized pipeline at its last word; spacing and
    // non-ASCII text inside do not throw the location off.
    let spaced = Case::new().query("é", vec![]);
    assert_eq!(
        spaced.err("{{ (  query   \"é\"  ).banana }}"),
        format!(
            "error executing template test: template: test:1:{}: executing \"test\" at <\"é\">: \
             can't evaluate field banana in type template.queryResult",
            first_line_column(14)
        )
    );
    assert!(
        err("{{ .Nope }}")
            .contains("can't evaluate field Nope in type struct { Labels map[string]string;")
    );
}

#[test]
fn prometheus_parse_errors_name_the_line() {
    assert_eq!(
        err("{{ humanize2 1 }}"),
        "error parsing template test: template: test:1: function \"humanize2\" not defined"
    );
    assert_eq!(
        err("ok\n{{ if }}"),
        "error parsing template test: template: test:2: missing value for if"
            .replace("missing value for if", &missing_value_message())
    );
    assert!(err("{{").starts_with("error parsing template test: template: test:1: "));
    assert!(err("{{ end }}").starts_with("error parsing template test: template: test:1: "));
    assert_eq!(
        err("{{ $nope }}"),
        "error parsing template test: template: test:1: undefined variable \"$nope\""
    );
    // check reports the same as expand's parse stage, and accepts what expand accepts.
    assert_eq!(
        check("__alert_X", "{{ humanize2 1 }}").map_err(|e| e.to_string()),
        Err(
            "error parsing template __alert_X: template: __alert_X:1: function \"humanize2\" not defined"
                .to_string()
        )
    );
    assert_eq!(
        check(
            "__alert_X",
            "{{ $labels.job }} {{ $value | humanize }} {{ query \"up\" | len }}"
        ),
        Ok(())
    );
    assert!(matches!(
        check("x", "{{ if }}"),
        Err(TemplateError::PrometheusParse { line: 1, .. })
    ));
}

/// What the parser says of `{{ if }}`, whichever wording it uses.
fn missing_value_message() -> String {
    match check("test", "{{ if }}") {
        Err(TemplateError::PrometheusParse { message, .. }) => message,
        other => panic!("expected a parse error, got {other:?}"),
    }
}

#[test]
fn prometheus_and_alertmanager_function_sets_are_separate() {
    for alertmanager_only in [
        "{{ toJson . }}",
        "{{ date \"2006\" .x }}",
        "{{ join \",\" .x }}",
        "{{ trimSpace \"a\" }}",
        "{{ since .x }}",
        "{{ stringSlice }}",
        "{{ tz \"UTC\" .x }}",
        "{{ safeUrl \"x\" }}",
        "{{ urlUnescape \"x\" }}",
    ] {
        let name = alertmanager_only
            .trim_start_matches("{{ ")
            .split(' ')
            .next()
            .unwrap_or("");
        assert_eq!(
            check("r", alertmanager_only).map_err(|e| e.to_string()),
            Err(format!(
                "error parsing template r: template: r:1: function \"{name}\" not defined"
            )),
            "{alertmanager_only}"
        );
    }
    let alertmanager = Templates::empty();
    for prometheus_only in [
        "humanize",
        "humanize1024",
        "humanizePercentage",
        "humanizeTimestamp",
        "query",
        "first",
        "label",
        "value",
        "strvalue",
        "args",
        "sortByLabel",
        "graphLink",
        "tableLink",
        "pathPrefix",
        "externalURL",
        "stripPort",
        "stripDomain",
        "toTime",
        "toDuration",
        "parseDuration",
        "urlQueryEscape",
        "now",
    ] {
        let text = format!("{{{{ {prometheus_only} 1 }}}}");
        let error = alertmanager.check("n.tmpl", &text);
        assert!(
            matches!(&error, Err(TemplateError::Parse { message, .. })
                if *message == format!("function \"{prometheus_only}\" not defined")),
            "{text}: {error:?}"
        );
    }
    // Shared names still work in Alertmanager, with Alertmanager's semantics.
    let rendered = alertmanager.render_text(
        "{{ \"aa bb CC\" | title }} {{ humanizeDuration 90 }}",
        &crate::data::NotificationData::new(
            "r".into(),
            Vec::new(),
            Default::default(),
            String::new(),
            String::new(),
            String::new(),
        ),
        RenderMode::Text,
    );
    assert_eq!(
        rendered.map_err(|e| e.to_string()),
        Ok("Aa Bb Cc 1m 30s".into())
    );
}

#[test]
fn prometheus_args_and_define() {
    assert_eq!(
        ok("{{define \"x\"}}{{.arg0}} {{.arg1}}{{end}}{{template \"x\" (args 1 \"2\")}}"),
        "1 2"
    );
    // A missing key of map[string]interface{} is the zero interface.
    assert_eq!(ok("{{ (args 1).arg5 }}"), "<no value>");
    assert_eq!(ok("{{ args 1 \"x\" 2.5 }}"), "map[arg0:1 arg1:x arg2:2.5]");
    assert_eq!(ok("{{ index (args \"a\" \"b\") \"arg1\" }}"), "b");
}

#[test]
fn prometheus_regex_and_string_functions() {
    assert_eq!(ok("{{ reReplaceAll \"(a)b\" \"x$1\" \"ab\" }}"), "xa");
    assert_eq!(
        ok("{{ reReplaceAll \"localhost:(.*)\" \"my.domain:$1\" \"localhost:3000\" }}"),
        "my.domain:3000"
    );
    assert_eq!(
        ok("{{ match \"a+\" \"aa\" }} {{ match \"a+\" \"b\" }}"),
        "true false"
    );
    assert!(err("{{ match \"(\" \"a\" }}").contains("error calling match: "));
    assert!(err("{{ reReplaceAll \"(\" \"\" \"a\" }}").contains("error calling reReplaceAll: "));
    // Prometheus's title uses cases.NoLower: the rest of a word keeps its case.
    assert_eq!(ok("{{ \"aa bb CC\" | title }}"), "Aa Bb CC");
    assert_eq!(ok("{{ \"aa bb CC\" | toUpper }}"), "AA BB CC");
    assert_eq!(ok("{{ \"aA bB CC\" | toLower }}"), "aa bb cc");
    assert_eq!(ok("{{ $labels.job | toUpper }}"), "API");
    assert_eq!(ok("{{ graphLink \"up\" }}"), "/graph?g0.expr=up&g0.tab=0");
    assert_eq!(ok("{{ tableLink \"up\" }}"), "/graph?g0.expr=up&g0.tab=1");
    assert_eq!(
        ok("{{ graphLink \"rate(x{a=\\\"b c\\\"}[5m])\" }}"),
        "/graph?g0.expr=rate%28x%7Ba%3D%22b+c%22%7D%5B5m%5D%29&g0.tab=0"
    );
    assert_eq!(
        ok("{{ urlQueryEscape \"a b&c=d/é\" }}"),
        "a+b%26c%3Dd%2F%C3%A9"
    );
    // Go checks arguments against the parameter types: literals and values differently,
    // located at the argument.
    assert!(err("{{ toUpper 1 }}").ends_with("at <1>: expected string; found 1"));
    assert_eq!(
        err("{{ toUpper $value }}"),
        format!(
            "error executing template test: template: test:1:{}: executing \"test\" at <$value>: \
             wrong type for value; expected string; got float64",
            first_line_column(11)
        )
    );
    assert!(err("{{ toUpper nil }}").ends_with("at <nil>: cannot assign nil to string"));
    assert!(
        err("{{ $value | toUpper }}")
            .ends_with("wrong type for value; expected string; got float64")
    );
    assert!(err("{{ first }}").ends_with("wrong number of args for first: want 1 got 0"));
    assert_eq!(ok("{{ args }}"), "map[]");
}

#[test]
fn prometheus_host_functions() {
    assert_eq!(
        ok("{{ stripPort \"foo.example.com:9090\" }}"),
        "foo.example.com"
    );
    assert_eq!(ok("{{ stripPort \"[::1]:9090\" }}"), "::1");
    assert_eq!(ok("{{ stripPort \"::1\" }}"), "::1");
    assert_eq!(ok("{{ stripPort \"foo\" }}"), "foo");
    assert_eq!(ok("{{ $labels.instance | stripPort }}"), "a.example.com");
    assert_eq!(ok("{{ stripDomain \"foo.example.com:9090\" }}"), "foo:9090");
    assert_eq!(ok("{{ stripDomain \"foo.example.com\" }}"), "foo");
    assert_eq!(ok("{{ stripDomain \"foo\" }}"), "foo");
    assert_eq!(
        ok("{{ stripDomain \"192.168.0.1:9090\" }}"),
        "192.168.0.1:9090"
    );
    assert_eq!(
        ok("{{ stripDomain \"[2001:db8::1]:9090\" }}"),
        "[2001:db8::1]:9090"
    );
    assert_eq!(ok("{{ stripDomain \"2001:db8::1\" }}"), "2001:db8::1");
    assert_eq!(ok("{{ pathPrefix }}"), "/path/prefix");
    assert_eq!(ok("{{ externalURL }}"), "http://testhost:9090/path/prefix");
    let mut bare = Case::new();
    bare.external_url = "http://testhost:9090".into();
    assert_eq!(bare.ok("[{{ pathPrefix }}]"), "[]");
}

#[test]
fn prometheus_humanize() {
    assert_eq!(
        ok("{{ range (args 0.0 1.0 1234567.0 0.12) }}{{ humanize . }}:{{ end }}"),
        "0:1:1.235M:120m:"
    );
    assert_eq!(ok("{{ humanize 1234567 }}"), "1.235M");
    assert_eq!(ok("{{ humanize \"1234567\" }}"), "1.235M");
    assert_eq!(ok("{{ humanize -1234567.0 }}"), "-1.235M");
    assert_eq!(ok("{{ humanize 1e30 }}"), "1e+06Y");
    assert_eq!(ok("{{ humanize 0.000001 }}"), "1u");
    assert_eq!(ok("{{ humanize 999.99 }}"), "1000");
    assert_eq!(ok("{{ humanize 1000 }}"), "1k");
    assert_eq!(
        ok("{{ range (args 0.0 1.0 1048576.0 0.12) }}{{ humanize1024 . }}:{{ end }}"),
        "0:1:1Mi:0.12:"
    );
    assert_eq!(ok("{{ humanize1024 1536 }}"), "1.5ki");
    assert_eq!(ok("{{ humanize1024 -2048 }}"), "-2ki");
    assert_eq!(
        ok(
            "{{ -0.22222 | humanizePercentage }}:{{ 0.0 | humanizePercentage }}:{{ 0.1234567 | humanizePercentage }}:{{ 1.23456 | humanizePercentage }}"
        ),
        "-22.22%:0%:12.35%:123.5%"
    );
    assert_eq!(ok("{{ humanizePercentage \"0.5\" }}"), "50%");
    // Inf and NaN, from strings as Go's ParseFloat reads them.
    assert_eq!(
        ok(
            "{{ range (args \"+Inf\" \"-Inf\" \"NaN\") }}{{ humanize . }}:{{ humanize1024 . }}:{{ humanizeDuration . }}:{{ humanizeTimestamp . }}:{{ end }}"
        ),
        "+Inf:+Inf:+Inf:+Inf:-Inf:-Inf:-Inf:-Inf:NaN:NaN:NaN:NaN:"
    );
    assert_eq!(
        Case::new().value(f64::NAN).ok("{{ humanize $value }}"),
        "NaN"
    );
    assert!(
        err("{{ humanize \"abc\" }}").ends_with(
            "error calling humanize: strconv.ParseFloat: parsing \"abc\": invalid syntax"
        )
    );
    assert!(
        err("{{ humanize \"1e400\" }}")
            .ends_with("strconv.ParseFloat: parsing \"1e400\": value out of range")
    );
    assert!(err("{{ humanize \" 1\" }}").ends_with("invalid syntax"));
    assert!(err("{{ humanize $labels }}").ends_with("can't convert map[string]string to float"));
    assert!(err("{{ humanize nil }}").ends_with("can't convert <nil> to float"));
    assert!(err("{{ humanize }}").ends_with("wrong number of args for humanize: want 1 got 0"));
}

#[test]
fn prometheus_humanize_duration() {
    assert_eq!(
        ok(
            "{{ range (args 0 1 60 3600 86400 90000 -187445 899.99) }}{{ humanizeDuration . }}:{{ end }}"
        ),
        "0s:1s:1m 0s:1h 0m 0s:1d 0h 0m 0s:1d 1h 0m 0s:-2d 4h 4m 5s:14m 59s:"
    );
    assert_eq!(
        ok(
            "{{ range (args 0.1 0.0001 0.12345 60.1 60.5 1.2345 12.345) }}{{ humanizeDuration . }}:{{ end }}"
        ),
        "100ms:100us:123.5ms:1m 0s:1m 0s:1.234s:12.35s:"
    );
    assert_eq!(ok("{{ humanizeDuration -0.5 }}"), "-500ms");
    assert_eq!(ok("{{ humanizeDuration \"3600\" }}"), "1h 0m 0s");
    // A time.Duration counts as its seconds.
    assert_eq!(ok("{{ humanizeDuration (toDuration 90) }}"), "1m 30s");
}

#[test]
fn prometheus_time_functions() {
    assert_eq!(
        ok("{{ 1435065584.128 | humanizeTimestamp }}"),
        "2015-06-23 13:19:44.128 +0000 UTC"
    );
    assert_eq!(
        ok("{{ humanizeTimestamp 0 }}"),
        "1970-01-01 00:00:00 +0000 UTC"
    );
    assert_eq!(
        ok("{{ humanizeTimestamp \"1435065584\" }}"),
        "2015-06-23 13:19:44 +0000 UTC"
    );
    // model.Time keeps milliseconds only.
    assert_eq!(
        ok("{{ humanizeTimestamp 1.0019999 }}"),
        "1970-01-01 00:00:01.001 +0000 UTC"
    );
    assert_eq!(
        ok("{{ humanizeTimestamp -1.5 }}"),
        "1969-12-31 23:59:58.5 +0000 UTC"
    );
    assert!(err("{{ humanizeTimestamp 1e10 }}").contains(
        "error calling humanizeTimestamp: 1e+10 cannot be represented as a nanoseconds timestamp since it overflows int64"
    ));
    assert_eq!(
        ok("{{ 1435065584.128 | toTime }}"),
        "2015-06-23 13:19:44.128 +0000 UTC"
    );
    assert_eq!(
        ok("{{ (toTime 1435065584).Format \"2006-01-02T15:04:05Z07:00\" }}"),
        "2015-06-23T13:19:44Z"
    );
    assert_eq!(ok("{{ (toTime 1435065584.5).Unix }}"), "1435065584");
    assert_eq!(ok("{{ (toTime \"60\").Minute }}"), "1");
    assert!(err("{{ toTime \"NaN\" }}").ends_with("error calling toTime: value is NaN or Inf"));
    assert_eq!(ok("{{ toDuration 90 }}"), "1m30s");
    assert_eq!(ok("{{ toDuration 0.0015 }}"), "1.5ms");
    assert_eq!(ok("{{ (toDuration \"7200\").Hours }}"), "2");
    assert!(err("{{ toDuration \"Inf\" }}").ends_with("value is NaN or Inf"));
    assert!(err("{{ toDuration 1e10 }}").contains("overflows int64"));
    // now is the evaluation time in Unix seconds.
    assert_eq!(ok("{{ now }}"), "1.700000000123e+09");
    // Seconds as a float64 times 1e9 lands a hair under .123 s, and model.Time truncates, in
    // Go as here.
    assert_eq!(
        ok("{{ now | humanizeTimestamp }}"),
        "2023-11-14 22:13:20.122 +0000 UTC"
    );
    assert_eq!(
        Case::new()
            .value(1_699_996_400.123)
            .ok("{{ (now | toTime).Sub ($value | toTime) }}"),
        "1h0m0s"
    );
}

#[test]
fn prometheus_parse_duration() {
    assert_eq!(ok("{{ parseDuration \"1h2m10ms\" }}"), "3720.01");
    assert_eq!(ok("{{ parseDuration \"0\" }}"), "0");
    assert_eq!(ok("{{ parseDuration \"1w2d\" }}"), "777600");
    assert_eq!(ok("{{ parseDuration \"1y\" }}"), "3.1536e+07");
    assert_eq!(ok("{{ parseDuration \"500ms\" }}"), "0.5");
    assert!(
        err("{{ parseDuration \"1.5h\" }}")
            .ends_with("error calling parseDuration: unknown unit \".\" in duration \"1.5h\"")
    );
    assert!(err("{{ parseDuration \"1m1h\" }}").ends_with("not a valid duration string: \"1m1h\""));
    assert!(err("{{ parseDuration \"5x\" }}").ends_with("unknown unit \"x\" in duration \"5x\""));
    assert!(err("{{ parseDuration \"\" }}").ends_with("empty duration string"));
    assert!(err("{{ parseDuration \"-1h\" }}").ends_with("not a valid duration string: \"-1h\""));
    assert!(err("{{ parseDuration \"300y\" }}").ends_with("duration out of range"));
}

#[test]
fn prometheus_go_builtins_work() {
    assert_eq!(
        ok("{{ printf \"%s=%q\" \"job\" $labels.job }}"),
        "job=\"api\""
    );
    assert_eq!(
        ok("{{ if eq $labels.job \"api\" }}api{{ else }}other{{ end }}"),
        "api"
    );
    assert_eq!(ok("{{ len .Labels }}"), "3");
    assert_eq!(ok("{{- \"  x  \" -}}"), "  x  ");
    assert_eq!(ok("a {{- /* comment */ -}} b"), "ab");
    assert_eq!(ok("{{ $x := 1 }}{{ $x = 2 }}{{ $x }}"), "2");
    assert_eq!(ok("{{ html \"<b>\" }}"), "&lt;b&gt;");
    assert_eq!(ok("{{ urlquery \"a b\" }}"), "a+b");
    assert_eq!(ok("{{ range $i := 3 }}{{ $i }}{{ end }}"), "012");
}

#[test]
fn prometheus_limits_apply() {
    let mut case = Case::new();
    case.limits = Limits {
        max_output_bytes: 64,
        max_range_iterations: 50,
        max_steps: 10_000,
        ..Limits::default()
    };
    assert!(
        case.err("{{ range $i := 40 }}0123456789{{ end }}")
            .contains("output exceeds the limit of 64 bytes")
    );
    assert!(
        case.err("{{ range $i := 60 }}{{ end }}")
            .contains("range exceeds 50 iterations")
    );
    assert!(
        case.err("{{ define \"r\" }}{{ template \"r\" }}{{ end }}{{ template \"r\" }}")
            .contains("exceeded maximum template depth")
    );
    case.limits.max_source_bytes = 10;
    assert!(matches!(
        case.run("{{ 12345678 }}"),
        Err(TemplateError::TooLarge { .. })
    ));
    let big = Case::new().query(
        "big",
        (0..10)
            .map(|i| sample(&[("i", &"x".repeat(100 + i))], 1.0))
            .collect(),
    );
    let mut big = big;
    big.limits.max_output_bytes = 500;
    assert!(
        big.err("{{ query \"big\" }}")
            .contains("query returned more than 500 bytes")
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Arbitrary text, biased towards template syntax and Prometheus's functions, never panics,
    /// and its output stays bounded.
    #[test]
    fn prometheus_expand_never_panics(text in proptest::collection::vec(prop_oneof![
        Just("{{".to_string()), Just("}}".to_string()), Just("{{-".to_string()), Just("-}}".to_string()),
        Just(" ".to_string()), Just("\n".to_string()), Just(".".to_string()), Just("$".to_string()), Just("|".to_string()),
        Just("(".to_string()), Just(")".to_string()), Just("\"".to_string()), Just("'".to_string()),
        Just("if".to_string()), Just("end".to_string()), Just("range".to_string()), Just("define".to_string()),
        Just("template".to_string()), Just("$labels".to_string()), Just("$value".to_string()), Just(".Labels".to_string()),
        Just("$externalLabels".to_string()), Just("query \"up\"".to_string()), Just("first".to_string()),
        Just("humanize".to_string()), Just("humanize1024".to_string()), Just("humanizeDuration".to_string()),
        Just("humanizeTimestamp".to_string()), Just("toTime".to_string()), Just("toDuration".to_string()),
        Just("parseDuration".to_string()), Just("stripDomain".to_string()), Just("stripPort".to_string()),
        Just("sortByLabel \"job\"".to_string()), Just("label \"job\"".to_string()), Just("args".to_string()),
        Just("index".to_string()), Just("1e9".to_string()), Just("-1".to_string()), Just("\"x\"".to_string()),
        Just("\"1h\"".to_string()), Just("\"[::1]:80\"".to_string()), Just("now".to_string()), Just("title".to_string()),
        "[ -~]{0,4}", "\\PC{0,2}",
    ], 0..40)) {
        let text: String = text.concat();
        let mut case = Case::new().query(
            "up",
            vec![sample(&[("job", "a"), ("instance", "x:1")], 1.0), sample(&[("job", "b")], f64::NAN)],
        );
        case.limits = Limits { max_output_bytes: 4096, max_steps: 20_000, max_range_iterations: 1000, ..Limits::default() };
        let _ = check("p", &text);
        if let Ok(out) = case.run(&text) {
            prop_assert!(out.len() <= 4096);
        }
    }
}

/// Templates and what Prometheus expanded them to (run through `promtool test rules`, as
/// alert annotations, with the same labels, external labels, URL and query result). Where
/// Prometheus 3 differs from the promtool at hand (2.42), the expectation is 3's and says so.
const PROMTOOL_CASES: &[(&str, &str)] = &[
    (
        r#"{{ range $k, $v := $labels }}{{ $k }}={{ $v }};{{ end }}"#,
        r#"__name__=m;instance=a.example.com:9100;job=api;"#,
    ),
    (
        r#"{{ . }}"#,
        r#"{map[__name__:m instance:a.example.com:9100 job:api] map[cluster:eu1] http://testhost:9090/path/prefix 0.5}"#,
    ),
    (
        r#"{{ query "m" | first }}"#,
        r#"{map[__name__:m instance:a.example.com:9100 job:api] 0.5}"#,
    ),
    (
        r#"{{ query "nonexistent_metric" | first }}"#,
        r#"<error expanding template: error executing template __alert_HighLatency: template: __alert_HighLatency:1:144: executing "__alert_HighLatency" at <first>: error calling first: first() called on vector with no elements>"#,
    ),
    (
        r#"{{ humanize true }}"#,
        r#"<error expanding template: error executing template __alert_HighLatency: template: __alert_HighLatency:1:115: executing "__alert_HighLatency" at <humanize true>: error calling humanize: can't convert bool to float>"#,
    ),
    (
        r#"{{ (query "m").banana }}"#,
        r#"<error expanding template: error executing template __alert_HighLatency: template: __alert_HighLatency:1:122: executing "__alert_HighLatency" at <"m">: can't evaluate field banana in type template.queryResult>"#,
    ),
    (
        r#"{{ $externalLabels }}|{{ $externalURL }}|{{ .ExternalURL }}"#,
        r#"map[cluster:eu1]|http://testhost:9090/path/prefix|http://testhost:9090/path/prefix"#,
    ),
    (
        r#"{{ "aa bb CC" | title }}|{{ stripDomain "foo.example.com:9090" }}|{{ stripPort "[::1]:80" }}"#,
        r#"Aa Bb CC|foo:9090|::1"#,
    ),
    (
        r#"{{ humanize "abc" }}"#,
        r#"<error expanding template: error executing template __alert_HighLatency: template: __alert_HighLatency:1:115: executing "__alert_HighLatency" at <humanize "abc">: error calling humanize: strconv.ParseFloat: parsing "abc": invalid syntax>"#,
    ),
    (
        r#"{{ parseDuration "1h2m10ms" }}|{{ 1435065584.128 | toTime }}|{{ humanizeTimestamp 1.0019999 }}"#,
        r#"3720.01|2015-06-23 13:19:44.128 +0000 UTC|1970-01-01 00:00:01.001 +0000 UTC"#,
    ),
    (
        r#"{{ (args 1).arg5 }}|{{ args 1 "x" 2.5 }}"#,
        r#"<no value>|map[arg0:1 arg1:x arg2:2.5]"#,
    ),
    (
        r#"line one
  {{ query "nonexistent_metric" | first }}"#,
        r#"<error expanding template: error executing template __alert_HighLatency: template: __alert_HighLatency:2:34: executing "__alert_HighLatency" at <first>: error calling first: first() called on vector with no elements>"#,
    ),
    (
        r#"{{ template "x" }}"#,
        r#"<error expanding template: error executing template __alert_HighLatency: template: __alert_HighLatency:1:124: executing "__alert_HighLatency" at <{{template "x"}}>: template "x" not defined>"#,
    ),
    (
        r#"{{ humanize "1e400" }}|"#,
        r#"<error expanding template: error executing template __alert_HighLatency: template: __alert_HighLatency:1:115: executing "__alert_HighLatency" at <humanize "1e400">: error calling humanize: strconv.ParseFloat: parsing "1e400": value out of range>"#,
    ),
    (
        r#"{{ humanizeDuration -187445 }}|{{ humanize 1e30 }}|{{ humanize1024 1536 }}"#,
        r#"-2d 4h 4m 5s|1e+06Y|1.5ki"#,
    ),
    (
        r#"{{ $value.foo }}"#,
        r#"<error expanding template: error executing template __alert_HighLatency: template: __alert_HighLatency:1:121: executing "__alert_HighLatency" at <$value.foo>: can't evaluate field foo in type float64>"#,
    ),
    (
        r#"{{ .Nope }}"#,
        r#"<error expanding template: error executing template __alert_HighLatency: template: __alert_HighLatency:1:115: executing "__alert_HighLatency" at <.Nope>: can't evaluate field Nope in type struct { Labels map[string]string; ExternalLabels map[string]string; ExternalURL string; Value interface {} }>"#,
    ),
    (
        r#"{{ reReplaceAll "(" "" "a" }}"#,
        r#"<error expanding template: error executing template __alert_HighLatency: template: __alert_HighLatency:1:115: executing "__alert_HighLatency" at <reReplaceAll "(" "" "a">: error calling reReplaceAll: regexp: Compile(`(`): error parsing regexp: missing closing ): `(`>"#,
    ),
    (
        r#"{{ match "(" "a" }}"#,
        r#"<error expanding template: error executing template __alert_HighLatency: template: __alert_HighLatency:1:115: executing "__alert_HighLatency" at <match "(" "a">: error calling match: error parsing regexp: missing closing ): `(`>"#,
    ),
    (
        r#"{{ label "x" nil }}"#,
        r#"<error expanding template: error executing template __alert_HighLatency: template: __alert_HighLatency:1:115: executing "__alert_HighLatency" at <label "x" nil>: error calling label: runtime error: invalid memory address or nil pointer dereference>"#,
    ),
    (
        r#"{{ humanizeTimestamp 1e10 }}"#,
        r#"<error expanding template: error executing template __alert_HighLatency: template: __alert_HighLatency:1:115: executing "__alert_HighLatency" at <humanizeTimestamp 1e10>: error calling humanizeTimestamp: 1e+10 cannot be represented as a nanoseconds timestamp since it overflows int64>"#,
    ),
    (
        r#"{{ toTime "NaN" }}"#,
        r#"<error expanding template: error executing template __alert_HighLatency: template: __alert_HighLatency:1:115: executing "__alert_HighLatency" at <toTime "NaN">: error calling toTime: value is NaN or Inf>"#,
    ),
    (
        r#"{{ define "x" }}{{ humanize .arg0 }}{{ end }}{{ template "x" (args "abc") }}"#,
        r#"<error expanding template: error executing template __alert_HighLatency: template: __alert_HighLatency:1:131: executing "x" at <humanize .arg0>: error calling humanize: strconv.ParseFloat: parsing "abc": invalid syntax>"#,
    ),
    (
        r#"{{ humanize 999.99 }}|{{ humanize 0.00099999 }}|{{ humanize -0.5 }}|{{ humanize 1e-30 }}|{{ humanize 5e-25 }}"#,
        r#"1000|1000u|-500m|1e-06y|0.5y"#,
    ),
    (
        r#"{{ humanize1024 1023.99 }}|{{ humanize1024 -1 }}|{{ humanize1024 0.5 }}|{{ humanize1024 1e30 }}"#,
        r#"1024|-1|0.5|8.272e+05Yi"#,
    ),
    (
        r#"{{ humanizeDuration 1e20 }}|{{ humanizeDuration 59.99999 }}|{{ humanizeDuration 1e-30 }}|{{ humanizeDuration -1e20 }}"#,
        r#"-106751991167300d -15h -30m -8s|60s|1e-06ys|--106751991167300d -15h -30m -8s"#,
    ),
    (
        r#"{{ humanizePercentage 1e-10 }}|{{ humanizePercentage "abc" }}"#,
        r#"<error expanding template: error executing template __alert_HighLatency: template: __alert_HighLatency:1:146: executing "__alert_HighLatency" at <humanizePercentage "abc">: error calling humanizePercentage: strconv.ParseFloat: parsing "abc": invalid syntax>"#,
    ),
    (
        r#"{{ humanizeTimestamp -62135596800 }}|{{ humanizeTimestamp 253402300800 }}|{{ humanizeTimestamp 9.2e9 }}"#,
        r#"<error expanding template: error executing template __alert_HighLatency: template: __alert_HighLatency:1:115: executing "__alert_HighLatency" at <humanizeTimestamp -62135596800>: error calling humanizeTimestamp: -6.21355968e+10 cannot be represented as a nanoseconds timestamp since it overflows int64>"#,
    ),
    (
        r#"{{ stripDomain "foo.bar:" }}|{{ stripDomain ":9090" }}|{{ stripDomain "" }}|{{ stripDomain "[fe80::1%eth0]:80" }}|{{ stripDomain "a.b.c" }}"#,
        r#"foo|:9090||[fe80::1%eth0]:80|a"#,
    ),
    (
        r#"{{ stripPort "foo:" }}|{{ stripPort ":80" }}|{{ stripPort "[::1]" }}|{{ stripPort "a:b:c" }}|{{ stripPort "[a]b:80" }}"#,
        r#"foo||[::1]|a:b:c|[a]b:80"#,
    ),
    (
        r#"{{ graphLink "a b+c/é" }}"#,
        r#"/graph?g0.expr=a+b%2Bc%2F%C3%A9&g0.tab=0"#,
    ),
    (
        r#"{{ humanize "0x10" }}|{{ humanize "1_000" }}|{{ humanize "inf" }}|{{ humanize "-Infinity" }}|{{ humanize ".5" }}|{{ humanize "1e" }}"#,
        r#"<error expanding template: error executing template __alert_HighLatency: template: __alert_HighLatency:1:115: executing "__alert_HighLatency" at <humanize "0x10">: error calling humanize: strconv.ParseFloat: parsing "0x10": invalid syntax>"#,
    ),
    (
        r#"{{ toTime 1.5 }}|{{ toTime -1 }}|{{ (toTime 0).Format "Mon Jan 2 15:04:05 MST 2006" }}"#,
        r#"1970-01-01 00:00:01.5 +0000 UTC|1969-12-31 23:59:59 +0000 UTC|Thu Jan 1 00:00:00 UTC 1970"#,
    ),
    (
        r#"{{ $labels }}|{{ len $labels }}|{{ printf "%v" $labels }}|{{ printf "%q" $labels.job }}"#,
        r#"map[__name__:m instance:a.example.com:9100 job:api]|3|map[__name__:m instance:a.example.com:9100 job:api]|"api""#,
    ),
    (
        r#"{{ query "m" | first | value | printf "%.3f" }}|{{ (query "m" | first).Labels }}"#,
        r#"0.500|map[__name__:m instance:a.example.com:9100 job:api]"#,
    ),
    (
        r#"{{ with query "m" }}{{ . | len }}{{ end }}|{{ range $i, $s := query "m" }}{{ $i }}{{ $s.Value }}{{ end }}"#,
        r#"1|00.5"#,
    ),
    (
        r#"{{ index (query "m") 0 }}"#,
        r#"{map[__name__:m instance:a.example.com:9100 job:api] 0.5}"#,
    ),
    (
        r#"{{ printf "%v" (query "m" | first) }}"#,
        r#"&{map[__name__:m instance:a.example.com:9100 job:api] 0.5}"#,
    ),
    (r#"{{ args }}|{{ len (args 1 2) }}"#, r#"map[]|2"#),
    (
        r#"{{ 1.5 | printf "%T" }}|{{ $value | printf "%T" }}|{{ (query "m") | printf "%T" }}|{{ (query "m" | first) | printf "%T" }}|{{ $labels | printf "%T" }}"#,
        r#"float64|float64|template.queryResult|*template.sample|map[string]string"#,
    ),
    (
        r#"{{ humanize 1 2 }}"#,
        r#"<error expanding template: error executing template __alert_HighLatency: template: __alert_HighLatency:1:115: executing "__alert_HighLatency" at <humanize>: wrong number of args for humanize: want 1 got 2>"#,
    ),
    (
        r#"{{ pathPrefix 1 }}"#,
        r#"<error expanding template: error executing template __alert_HighLatency: template: __alert_HighLatency:1:115: executing "__alert_HighLatency" at <pathPrefix>: wrong number of args for pathPrefix: want 0 got 1>"#,
    ),
    (
        r#"{{ index $labels 1 }}"#,
        r#"<error expanding template: error executing template __alert_HighLatency: template: __alert_HighLatency:1:115: executing "__alert_HighLatency" at <index $labels 1>: error calling index: value has type int; should be string>"#,
    ),
    (
        r#"{{ $labels.job.x }}"#,
        r#"<error expanding template: error executing template __alert_HighLatency: template: __alert_HighLatency:1:122: executing "__alert_HighLatency" at <$labels.job.x>: can't evaluate field x in type string>"#,
    ),
    (
        r#"{{ .Labels.job 1 }}"#,
        r#"<error expanding template: error executing template __alert_HighLatency: template: __alert_HighLatency:1:122: executing "__alert_HighLatency" at <.Labels.job>: job is not a method but has arguments>"#,
    ),
    (
        r#"{{ parseDuration "1y2w3d4h5m6s7ms" }}|{{ parseDuration "0s" }}|{{ parseDuration "100" }}"#,
        r#"<error expanding template: error executing template __alert_HighLatency: template: __alert_HighLatency:1:178: executing "__alert_HighLatency" at <parseDuration "100">: error calling parseDuration: not a valid duration string: "100">"#,
    ),
    (
        r#"{{ toTime true }}"#,
        r#"<error expanding template: error executing template __alert_HighLatency: template: __alert_HighLatency:1:115: executing "__alert_HighLatency" at <toTime true>: error calling toTime: can't convert bool to float>"#,
    ),
    (
        r#"{{ humanizeDuration (query "m") }}"#,
        r#"<error expanding template: error executing template __alert_HighLatency: template: __alert_HighLatency:1:115: executing "__alert_HighLatency" at <humanizeDuration (query "m")>: error calling humanizeDuration: can't convert template.queryResult to float>"#,
    ),
    (
        r#"{{ reReplaceAll "a" "$0$0" "banana" }}|{{ reReplaceAll "(?P<x>a)" "${x}!" "banana" }}|{{ reReplaceAll "a(\\d)" "$1x" "a1a2" }}"#,
        r#"baanaanaa|ba!na!na!|"#,
    ),
    (
        r#"{{ match "^\\d+$" "١٢" }}|{{ match "\\w" "é" }}|{{ match "(?i)ABC" "abc" }}"#,
        r#"false|false|true"#,
    ),
    (
        r#"{{ reReplaceAll "x**" "" "" }}"#,
        r#"<error expanding template: error executing template __alert_HighLatency: template: __alert_HighLatency:1:115: executing "__alert_HighLatency" at <reReplaceAll "x**" "" "">: error calling reReplaceAll: regexp: Compile(`x**`): error parsing regexp: invalid nested repetition operator: `**`>"#,
    ),
    (
        r#"{{ reReplaceAll "[z-a]" "" "" }}"#,
        r#"<error expanding template: error executing template __alert_HighLatency: template: __alert_HighLatency:1:115: executing "__alert_HighLatency" at <reReplaceAll "[z-a]" "" "">: error calling reReplaceAll: regexp: Compile(`[z-a]`): error parsing regexp: invalid character class range: `z-a`>"#,
    ),
    (
        r#"{{ reReplaceAll "a)" "" "" }}"#,
        r#"<error expanding template: error executing template __alert_HighLatency: template: __alert_HighLatency:1:115: executing "__alert_HighLatency" at <reReplaceAll "a)" "" "">: error calling reReplaceAll: regexp: Compile(`a)`): error parsing regexp: unexpected ): `a)`>"#,
    ),
    (
        r#"{{ reReplaceAll "\\q" "" "" }}"#,
        r#"<error expanding template: error executing template __alert_HighLatency: template: __alert_HighLatency:1:115: executing "__alert_HighLatency" at <reReplaceAll "\\q" "" "">: error calling reReplaceAll: regexp: Compile(`\q`): error parsing regexp: invalid escape sequence: `\q`>"#,
    ),
    (
        r#"{{ reReplaceAll "a{2,1}" "" "" }}"#,
        r#"<error expanding template: error executing template __alert_HighLatency: template: __alert_HighLatency:1:115: executing "__alert_HighLatency" at <reReplaceAll "a{2,1}" "" "">: error calling reReplaceAll: regexp: Compile(`a{2,1}`): error parsing regexp: invalid repeat count: `{2,1}`>"#,
    ),
    (
        r#"{{ reReplaceAll "[a" "" "" }}"#,
        r#"<error expanding template: error executing template __alert_HighLatency: template: __alert_HighLatency:1:115: executing "__alert_HighLatency" at <reReplaceAll "[a" "" "">: error calling reReplaceAll: regexp: Compile(`[a`): error parsing regexp: missing closing ]: `[a`>"#,
    ),
    (
        r#"{{ reReplaceAll "*" "" "" }}"#,
        r#"<error expanding template: error executing template __alert_HighLatency: template: __alert_HighLatency:1:115: executing "__alert_HighLatency" at <reReplaceAll "*" "" "">: error calling reReplaceAll: regexp: Compile(`*`): error parsing regexp: missing argument to repetition operator: `*`>"#,
    ),
    (
        r#"{{ reReplaceAll "a\\" "" "" }}"#,
        r#"<error expanding template: error executing template __alert_HighLatency: template: __alert_HighLatency:1:115: executing "__alert_HighLatency" at <reReplaceAll "a\\" "" "">: error calling reReplaceAll: regexp: Compile(`a\`): error parsing regexp: trailing backslash at end of expression: ``>"#,
    ),
    (
        r#"{{ reReplaceAll "(?z)" "" "" }}"#,
        r#"<error expanding template: error executing template __alert_HighLatency: template: __alert_HighLatency:1:115: executing "__alert_HighLatency" at <reReplaceAll "(?z)" "" "">: error calling reReplaceAll: regexp: Compile(`(?z)`): error parsing regexp: invalid or unsupported Perl syntax: `(?z`>"#,
    ),
    (
        r#"{{ reReplaceAll "a{1001}" "" "" }}"#,
        r#"<error expanding template: error executing template __alert_HighLatency: template: __alert_HighLatency:1:115: executing "__alert_HighLatency" at <reReplaceAll "a{1001}" "" "">: error calling reReplaceAll: regexp: Compile(`a{1001}`): error parsing regexp: invalid repeat count: `{1001}`>"#,
    ),
    (
        r#"{{ match "`" "a" }}|{{ reReplaceAll "(`" "" "" }}"#,
        r#"<error expanding template: error executing template __alert_HighLatency: template: __alert_HighLatency:1:135: executing "__alert_HighLatency" at <reReplaceAll "(`" "" "">: error calling reReplaceAll: regexp: Compile("(`"): error parsing regexp: missing closing ): `(``>"#,
    ),
    (
        r#"{{ first 1 }}"#,
        r#"<error expanding template: error executing template __alert_HighLatency: template: __alert_HighLatency:1:121: executing "__alert_HighLatency" at <1>: can't handle 1 for arg of type template.queryResult>"#,
    ),
    (
        r#"{{ label 1 2 }}"#,
        r#"<error expanding template: error executing template __alert_HighLatency: template: __alert_HighLatency:1:121: executing "__alert_HighLatency" at <1>: expected string; found 1>"#,
    ),
    (
        r#"{{ sortByLabel "x" 1 }}"#,
        r#"<error expanding template: error executing template __alert_HighLatency: template: __alert_HighLatency:1:131: executing "__alert_HighLatency" at <1>: can't handle 1 for arg of type template.queryResult>"#,
    ),
    (
        r#"{{ safeHtml 1 }}"#,
        r#"<error expanding template: error executing template __alert_HighLatency: template: __alert_HighLatency:1:124: executing "__alert_HighLatency" at <1>: expected string; found 1>"#,
    ),
    (
        r#"{{ query 1 }}"#,
        r#"<error expanding template: error executing template __alert_HighLatency: template: __alert_HighLatency:1:121: executing "__alert_HighLatency" at <1>: expected string; found 1>"#,
    ),
    // Go's regexp, through match and reReplaceAll: ASCII classes, literal braces,
    // \Q…\E, and the patterns Go refuses where Rust's regex would not.
    (
        r#"{{ match "a{" "a{" }}|{{ match "a{,5}" "xa{,5}" }}|{{ match "x{2}" "xx" }}|{{ match "a{1" "a{1" }}|{{ match "{" "{" }}"#,
        r#"true|true|true|true|true"#,
    ),
    (
        r#"{{ match "\\d" "٣" }}|{{ match "[\\d]" "٣" }}|{{ match "[^\\d]" "x" }}|{{ match "\\D" "٣" }}|{{ match "[\\D]" "5" }}"#,
        r#"false|false|true|true|false"#,
    ),
    (
        r#"{{ match "\\bfoo\\b" "éfoo" }}|{{ match "\\Bfoo" "éfoo" }}|{{ reReplaceAll "\\s+" "_" "a b  c\td" }}|{{ match "\\w+$" "é" }}|{{ match "[\\w-]+" "-" }}"#,
        r#"true|false|a_b_c_d|false|true"#,
    ),
    (
        r#"{{ match "(?i)straße" "STRASSE" }}|{{ match "(?i)k" "K" }}|{{ match "[[:alpha:]]" "é" }}|{{ match "\\pL" "é" }}|{{ match "." "é" }}|{{ match "\\x{e9}" "é" }}"#,
        r#"false|true|false|true|true|true"#,
    ),
    (
        r#"{{ match "(?x) a" "a" }}"#,
        r#"<error expanding template: error executing template __alert_HighLatency: template: __alert_HighLatency:1:115: executing "__alert_HighLatency" at <match "(?x) a" "a">: error calling match: error parsing regexp: invalid or unsupported Perl syntax: `(?x`>"#,
    ),
    (
        r#"{{ match "a++" "a" }}"#,
        r#"<error expanding template: error executing template __alert_HighLatency: template: __alert_HighLatency:1:115: executing "__alert_HighLatency" at <match "a++" "a">: error calling match: error parsing regexp: invalid nested repetition operator: `++`>"#,
    ),
    (
        r#"{{ match "(?U)a+" "a" }}|{{ reReplaceAll "(?U)a+" "x" "aaa" }}|{{ reReplaceAll "(?s)a.b" "x" "a\nb" }}|{{ reReplaceAll "(?m)^b" "x" "a\nb" }}"#,
        r#"true|xxx|x|a
x"#,
    ),
    (r#"{{ match "\\Qa.b\\E" "a.b" }}"#, r#"true"#),
    (
        r#"{{ match "a{1001}" "a" }}"#,
        r#"<error expanding template: error executing template __alert_HighLatency: template: __alert_HighLatency:1:115: executing "__alert_HighLatency" at <match "a{1001}" "a">: error calling match: error parsing regexp: invalid repeat count: `{1001}`>"#,
    ),
    (r#"{{ match "\\<" "a" }}"#, r#"false"#),
    (
        r#"{{ match "(?u)a" "a" }}"#,
        r#"<error expanding template: error executing template __alert_HighLatency: template: __alert_HighLatency:1:115: executing "__alert_HighLatency" at <match "(?u)a" "a">: error calling match: error parsing regexp: invalid or unsupported Perl syntax: `(?u`>"#,
    ),
    (
        r#"{{ match "(a" "a" }}"#,
        r#"<error expanding template: error executing template __alert_HighLatency: template: __alert_HighLatency:1:115: executing "__alert_HighLatency" at <match "(a" "a">: error calling match: error parsing regexp: missing closing ): `(a`>"#,
    ),
    (
        r#"{{ reReplaceAll "(?P<x>a)|(?P<y>b)" "[$x$y]" "ab" }}|{{ reReplaceAll "a" "$$" "a" }}|{{ reReplaceAll "(a)" "${1}x$1x" "a" }}"#,
        r#"[a][b]|$|ax"#,
    ),
    (
        r#"{{ match "\\8" "a" }}"#,
        r#"<error expanding template: error executing template __alert_HighLatency: template: __alert_HighLatency:1:115: executing "__alert_HighLatency" at <match "\\8" "a">: error calling match: error parsing regexp: invalid escape sequence: `\8`>"#,
    ),
    (
        r#"{{ match "[a-\\d]" "a" }}"#,
        r#"<error expanding template: error executing template __alert_HighLatency: template: __alert_HighLatency:1:115: executing "__alert_HighLatency" at <match "[a-\\d]" "a">: error calling match: error parsing regexp: invalid escape sequence: `\d`>"#,
    ),
    (
        r#"{{ match "\\p{Foo}" "a" }}"#,
        r#"<error expanding template: error executing template __alert_HighLatency: template: __alert_HighLatency:1:115: executing "__alert_HighLatency" at <match "\\p{Foo}" "a">: error calling match: error parsing regexp: invalid character class range: `\p{Foo}`>"#,
    ),
    (
        r#"{{ match "(?i" "a" }}"#,
        r#"<error expanding template: error executing template __alert_HighLatency: template: __alert_HighLatency:1:115: executing "__alert_HighLatency" at <match "(?i" "a">: error calling match: error parsing regexp: invalid or unsupported Perl syntax: `(?i`>"#,
    ),
    (
        r#"{{ match "x{1,2}{3}" "a" }}"#,
        r#"<error expanding template: error executing template __alert_HighLatency: template: __alert_HighLatency:1:115: executing "__alert_HighLatency" at <match "x{1,2}{3}" "a">: error calling match: error parsing regexp: invalid nested repetition operator: `{1,2}{3}`>"#,
    ),
    (
        r#"{{ match "a**" "a" }}"#,
        r#"<error expanding template: error executing template __alert_HighLatency: template: __alert_HighLatency:1:115: executing "__alert_HighLatency" at <match "a**" "a">: error calling match: error parsing regexp: invalid nested repetition operator: `**`>"#,
    ),
];

#[test]
fn prometheus_expands_as_promtool_does() {
    let mut case = Case::new()
        .query(
            "m",
            vec![sample(
                &[
                    ("__name__", "m"),
                    ("instance", "a.example.com:9100"),
                    ("job", "api"),
                ],
                0.5,
            )],
        )
        .query("nonexistent_metric", vec![]);
    case.labels = labels(&[
        ("__name__", "m"),
        ("instance", "a.example.com:9100"),
        ("job", "api"),
    ]);
    case.external_labels = labels(&[("cluster", "eu1")]);
    for (text, want) in PROMTOOL_CASES {
        let data = RuleTemplateData {
            labels: &case.labels,
            external_labels: &case.external_labels,
            external_url: &case.external_url,
            value: case.value,
        };
        // Prometheus's rules show a failed expansion this way in the annotation.
        let got = match expand(
            "__alert_HighLatency",
            text,
            &data,
            &case.query,
            NOW_MS,
            &case.limits,
        ) {
            Ok(out) => out,
            Err(error) => format!("<error expanding template: {error}>"),
        };
        assert_eq!(&got, want, "{text}");
    }
}
