use super::*;
use crate::data::{AlertData, AlertStatus, KeyValues, NotificationData};
use jiff::Timestamp;
use proptest::prelude::*;

fn kv(pairs: &[(&str, &str)]) -> KeyValues {
    pairs
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect()
}

fn alert(
    status: AlertStatus,
    labels: &[(&str, &str)],
    annotations: &[(&str, &str)],
    start_second: i64,
) -> AlertData {
    AlertData {
        status,
        labels: kv(labels),
        annotations: kv(annotations),
        starts_at: Timestamp::from_second(start_second).unwrap_or(Timestamp::UNIX_EPOCH),
        ends_at: (status == AlertStatus::Resolved)
            .then(|| Timestamp::from_second(start_second + 600).unwrap_or(Timestamp::UNIX_EPOCH)),
        generator_url: format!("http://prometheus:9090/graph?g0.expr=up&start={start_second}"),
        fingerprint: format!("{start_second:016x}"),
    }
}

/// Two firing alerts and one resolved, grouped by alertname, one label value with `<`.
fn sample() -> NotificationData {
    NotificationData::new(
        "team-x.pager".into(),
        vec![
            alert(
                AlertStatus::Firing,
                &[
                    ("alertname", "HighLatency"),
                    ("job", "api"),
                    ("instance", "a:9100"),
                    ("severity", "page"),
                ],
                &[
                    ("summary", "p99 <above> 2s"),
                    ("runbook", "http://wiki/latency"),
                ],
                1_700_000_000,
            ),
            alert(
                AlertStatus::Firing,
                &[
                    ("alertname", "HighLatency"),
                    ("job", "api"),
                    ("instance", "b:9100"),
                    ("severity", "page"),
                ],
                &[("summary", "p99 <above> 2s")],
                1_700_000_060,
            ),
            alert(
                AlertStatus::Resolved,
                &[
                    ("alertname", "HighLatency"),
                    ("job", "api"),
                    ("instance", "c<9100"),
                    ("severity", "page"),
                ],
                &[("summary", "p99 <above> 2s")],
                1_699_999_000,
            ),
        ],
        kv(&[("alertname", "HighLatency")]),
        "http://tocsin.example:9093".into(),
        "{}:{alertname=\"HighLatency\"}".into(),
        "first_notification".into(),
    )
}

fn render(text: &str) -> Result<String, TemplateError> {
    Templates::empty().render(text, &sample(), RenderMode::Text)
}

fn ok(text: &str) -> String {
    match render(text) {
        Ok(out) => out,
        Err(error) => panic!("{text:?} failed: {error}"),
    }
}

fn err(text: &str) -> String {
    match render(text) {
        Ok(out) => panic!("{text:?} should fail, rendered {out:?}"),
        Err(error) => error.to_string(),
    }
}

#[test]
fn template_text_and_fields() {
    assert_eq!(ok("hello"), "hello");
    assert_eq!(ok("{{ .Status }} {{ .Receiver }}"), "firing team-x\\.pager");
    assert_eq!(
        ok("{{ .CommonLabels.alertname }}/{{ .CommonLabels.missing }}/"),
        "HighLatency//"
    );
    assert_eq!(ok("{{ index .CommonLabels \"job\" }}"), "api");
    assert_eq!(ok("{{ (index .Alerts 0).Labels.instance }}"), "a:9100");
    assert_eq!(
        ok("{{ len .Alerts }} {{ .Alerts.Firing | len }} {{ len .Alerts.Resolved }}"),
        "3 2 1"
    );
    assert_eq!(ok("{{ .GroupKey }}"), "{}:{alertname=\"HighLatency\"}");
    assert_eq!(ok("{{ .ExternalURL }}"), "http://tocsin.example:9093");
    assert_eq!(
        ok("{{ range .Alerts }}{{ .Fingerprint }},{{ end }}"),
        "000000006553f100,000000006553f13c,000000006553ed18,"
    );
}

#[test]
fn template_kv_methods() {
    assert_eq!(
        ok("{{ .CommonLabels }}"),
        "alertname=HighLatency, job=api, severity=page"
    );
    assert_eq!(ok("{{ .CommonLabels.Names }}"), "[alertname job severity]");
    assert_eq!(
        ok("{{ .CommonLabels.SortedPairs.Values | join \",\" }}"),
        "HighLatency,api,page"
    );
    assert_eq!(
        ok("{{ range .CommonLabels.SortedPairs }}{{ .Name }}={{ .Value }};{{ end }}"),
        "alertname=HighLatency;job=api;severity=page;"
    );
    assert_eq!(
        ok("{{ (.CommonLabels.Remove .GroupLabels.Names).Values }}"),
        "[api page]"
    );
    assert_eq!(
        ok("{{ with .CommonLabels.Remove (stringSlice \"job\" \"alertname\") }}{{ . }}{{ end }}"),
        "severity=page"
    );
    assert_eq!(
        ok("{{ range $k, $v := .CommonLabels }}{{ $k }}:{{ $v }} {{ end }}"),
        "alertname:HighLatency job:api severity:page "
    );
    // SortedPairs puts alertname first; range over the map is purely sorted.
    let data = NotificationData::new(
        "r".into(),
        vec![alert(
            AlertStatus::Firing,
            &[("a", "1"), ("alertname", "X")],
            &[],
            0,
        )],
        KeyValues::new(),
        String::new(),
        String::new(),
        String::new(),
    );
    let templates = Templates::empty();
    let out = templates.render(
        "{{ .CommonLabels.Names }} {{ range $k, $v := .CommonLabels }}{{ $k }}{{ end }}",
        &data,
        RenderMode::Text,
    );
    assert_eq!(out.as_deref(), Ok("[alertname a] aalertname"));
}

#[test]
fn template_control_structures() {
    assert_eq!(
        ok("{{ if eq .Status \"firing\" }}F{{ else }}R{{ end }}"),
        "F"
    );
    assert_eq!(
        ok("{{ if eq .Status \"x\" }}1{{ else if eq .Status \"firing\" }}2{{ else }}3{{ end }}"),
        "2"
    );
    assert_eq!(
        ok("{{ with .CommonLabels.nope }}yes{{ else }}no{{ end }}"),
        "no"
    );
    assert_eq!(ok("{{ with .CommonLabels.job }}{{ . }}{{ end }}"), "api");
    assert_eq!(
        ok("{{ with .CommonLabels.nope }}a{{ else with .CommonLabels.job }}{{ . }}{{ end }}"),
        "api"
    );
    assert_eq!(
        ok("{{ range $i, $a := .Alerts }}{{ $i }}{{ $a.Status }} {{ end }}"),
        "0firing 1firing 2resolved "
    );
}

#[test]
fn template_range_else_break_continue_int() {
    assert_eq!(
        ok("{{ range .GroupLabels.Remove .GroupLabels.Names }}x{{ else }}empty{{ end }}"),
        "empty"
    );
    assert_eq!(
        ok("{{ range $i, $a := .Alerts }}{{ if eq $i 1 }}{{ continue }}{{ end }}{{ $i }}{{ end }}"),
        "02"
    );
    assert_eq!(
        ok("{{ range $i, $a := .Alerts }}{{ if eq $i 1 }}{{ break }}{{ end }}{{ $i }}{{ end }}"),
        "0"
    );
    assert_eq!(ok("{{ range $i := 3 }}{{ $i }}{{ end }}"), "012");
    assert_eq!(
        ok("{{ range stringSlice }}x{{ else }}none{{ end }}"),
        "none"
    );
}

#[test]
fn template_variables_and_scope() {
    assert_eq!(
        ok("{{ $x := 1 }}{{ if true }}{{ $x = 2 }}{{ $y := 3 }}{{ end }}{{ $x }}"),
        "2"
    );
    assert_eq!(
        ok("{{ range .Alerts }}{{ $.Status }}{{ end }}"),
        "firingfiringfiring"
    );
    assert_eq!(
        ok("{{ $s := .Status }}{{ with .CommonLabels }}{{ $s }}{{ .job }}{{ end }}"),
        "firingapi"
    );
    assert!(
        err("{{ if true }}{{ $y := 3 }}{{ end }}{{ $y }}").contains("undefined variable \"$y\"")
    );
    assert!(err("{{ $z = 1 }}").contains("undefined variable"));
}

#[test]
fn template_trimming_and_comments() {
    assert_eq!(ok("a  \n {{- \"b\" -}} \n  c"), "abc");
    assert_eq!(ok("a {{- /* gone */ -}} b"), "ab");
    assert_eq!(ok("a {{/* gone */}} b"), "a  b");
    assert_eq!(ok("{{-3}}"), "-3");
    assert_eq!(ok("x\n{{- if true }}\n  y\n{{- end }}\n"), "x\n  y\n");
    assert!(err("{{ /* no */ }}").contains("unexpected"));
}

#[test]
fn template_literals_and_printing() {
    assert_eq!(
        ok(
            "{{ \"a\\tb\" }}|{{ `r\\n` }}|{{ 'a' }}|{{ 0x1F }}|{{ 1.5 }}|{{ 1e6 }}|{{ true }}|{{ 1_000 }}"
        ),
        "a\tb|r\\n|97|31|1.5|1e+06|true|1000"
    );
    assert_eq!(ok("{{ print 1 2 \"a\" \"b\" 3 }}"), "1 2ab3");
    assert_eq!(ok("{{ println \"a\" 1 }}"), "a 1\n");
    assert_eq!(ok("{{ stringSlice \"a\" \"b\" }}"), "[a b]");
    assert_eq!(
        ok("{{ (index .Alerts 2).EndsAt }}"),
        "2023-11-14 22:06:40 +0000 UTC"
    );
    assert_eq!(
        ok("{{ (index .Alerts 0).EndsAt }}"),
        "0001-01-01 00:00:00 +0000 UTC"
    );
    assert_eq!(
        ok("{{ if (index .Alerts 0).EndsAt.IsZero }}zero{{ end }}"),
        "zero"
    );
    assert_eq!(
        ok("{{ index (index .Alerts 0).Labels.SortedPairs 0 }}"),
        "{alertname HighLatency}"
    );
}

#[test]
fn template_printf() {
    assert_eq!(
        ok("{{ printf \"%s=%d %v %q\" \"a\" 42 .CommonLabels.job \"q\\\"\" }}"),
        "a=42 api \"q\\\"\""
    );
    assert_eq!(
        ok(
            "{{ printf \"%.2f|%f|%5.1f|%-4d|%04d|%x|%X|%e|%g\" 3.14159 2.5 9.99 7 -7 255 \"hi\" 1234.5 0.0001 }}"
        ),
        "3.14|2.500000| 10.0|7   |-007|ff|6869|1.234500e+03|0.0001"
    );
    assert_eq!(ok("{{ printf \"%d\" \"x\" }}"), "%!d(string=x)");
    assert_eq!(ok("{{ printf \"%s %s\" \"x\" }}"), "x %!s(MISSING)");
    assert_eq!(ok("{{ printf \"%s\" \"x\" 1 }}"), "x%!(EXTRA int=1)");
    assert_eq!(ok("{{ printf \"%t %v %%\" true 1.0 }}"), "true 1 %");
    assert_eq!(
        ok("{{ printf \"%q\" (stringSlice \"a\" \"b\") }}"),
        "[\"a\" \"b\"]"
    );
}

#[test]
fn template_comparisons_and_logic() {
    assert_eq!(
        ok(
            "{{ eq 1 1 }} {{ eq \"a\" \"b\" \"a\" }} {{ ne 1 2 }} {{ lt 1 2 }} {{ le 2 2 }} {{ gt \"b\" \"a\" }} {{ ge 1.5 2.5 }}"
        ),
        "true true true true true true false"
    );
    assert_eq!(
        ok("{{ and 1 0 2 }} {{ or 0 \"\" \"x\" }} {{ not 0 }} {{ and 1 2 }}"),
        "0 x true 2"
    );
    // `and` stops at the first false argument, so the failing call is never made.
    assert_eq!(ok("{{ and false (index .Alerts 99) }}"), "false");
    assert!(err("{{ eq 1 1.0 }}").contains("incompatible types"));
    assert!(err("{{ lt true false }}").contains("invalid type for comparison"));
    assert!(err("{{ eq .Alerts .Alerts }}").contains("non-comparable"));
}

#[test]
fn template_alertmanager_functions() {
    assert_eq!(
        ok(
            "{{ toUpper \"abc\" }} {{ toLower \"ABC\" }} {{ title \"hello wORLD foo_bar\" }} [{{ trimSpace \"  x \" }}]"
        ),
        "ABC abc Hello World Foo_bar [x]"
    );
    assert_eq!(ok("{{ join \", \" (stringSlice \"a\" \"b\") }}"), "a, b");
    assert_eq!(
        ok(
            "{{ match \"^High\" .CommonLabels.alertname }} {{ reReplaceAll \"(\\\\w+):(\\\\d+)\" \"$2@$1\" \"host:80\" }}"
        ),
        "true 80@host"
    );
    assert_eq!(
        ok("{{ urlUnescape \"a%20b+c\" }} {{ \"a b&c\" | urlquery }}"),
        "a b c a+b%26c"
    );
    assert_eq!(
        ok(
            "{{ (index .Alerts 0).StartsAt | date \"2006-01-02T15:04:05Z07:00 Mon Jan _2 3PM .000\" }}"
        ),
        "2023-11-14T22:13:20Z Tue Nov 14 10PM .000"
    );
    assert_eq!(
        ok("{{ (index .Alerts 0).StartsAt | tz \"Europe/Berlin\" | date \"15:04 MST -07:00\" }}"),
        "23:13 CET +01:00"
    );
    assert_eq!(
        ok("{{ (index .Alerts 0).StartsAt | tz \"Europe/Berlin\" }}"),
        "2023-11-14 23:13:20 +0100 CET"
    );
    assert_eq!(
        ok(
            "{{ humanizeDuration 90061 }} {{ humanizeDuration 1.5 }} {{ humanizeDuration 0.25 }} {{ humanizeDuration 0 }} {{ humanizeDuration \"3600\" }}"
        ),
        "1d 1h 1m 1s 1.5s 250ms 0s 1h 0m 0s"
    );
    assert!(ok("{{ since (index .Alerts 0).StartsAt | humanizeDuration }}").contains('d'));
    assert_eq!(
        ok("{{ html \"<a href='x'>&</a>\" }} {{ js \"a'b<\" }}"),
        "&lt;a href=&#39;x&#39;&gt;&amp;&lt;/a&gt; a\\'b\\u003C"
    );
    assert_eq!(
        ok("{{ slice \"abcdef\" 1 3 }} {{ len (slice .Alerts 1) }}"),
        "bc 2"
    );
    assert_eq!(
        ok("{{ toJson .GroupLabels }}"),
        "{\"alertname\":\"HighLatency\"}"
    );
    assert!(err("{{ reReplaceAll \"(\" \"\" \"x\" }}").contains("error parsing regexp"));
    assert!(
        err("{{ tz \"Nowhere/Nothing\" (index .Alerts 0).StartsAt }}")
            .contains("unknown time zone")
    );
    assert!(err("{{ toUpper 1 }}").contains("expected string"));
}

#[test]
fn template_html_mode_escapes_values_not_text() {
    let templates = Templates::empty();
    let data = sample();
    let out = templates.render(
        "<b>{{ (index .Alerts 2).Labels.instance }}</b>{{ safeHtml \"<i>ok</i>\" }}{{ \"a+b\" }}",
        &data,
        RenderMode::Html,
    );
    assert_eq!(out.as_deref(), Ok("<b>c&lt;9100</b><i>ok</i>a&#43;b"));
    let text = templates.render(
        "{{ (index .Alerts 2).Labels.instance }}",
        &data,
        RenderMode::Text,
    );
    assert_eq!(text.as_deref(), Ok("c<9100"));
}

#[test]
fn template_define_template_block_and_override() {
    let mut templates = Templates::empty();
    let added = templates.add_file("a.tmpl", "{{ define \"greet\" }}hi {{ .Status }}{{ end }}{{ define \"wrap\" }}[{{ template \"greet\" . }}]{{ end }}");
    assert_eq!(added, Ok(()));
    let data = sample();
    assert_eq!(
        templates.render("wrap", &data, RenderMode::Text).as_deref(),
        Ok("[hi firing]")
    );
    assert_eq!(
        templates
            .render("{{ template \"greet\" . }}!", &data, RenderMode::Text)
            .as_deref(),
        Ok("hi firing!")
    );
    // A later file wins; an empty later definition does not replace.
    assert_eq!(
        templates.add_file(
            "b.tmpl",
            "{{ define \"greet\" }}hello{{ end }}{{ define \"wrap\" }}  {{ end }}"
        ),
        Ok(())
    );
    assert_eq!(
        templates.render("wrap", &data, RenderMode::Text).as_deref(),
        Ok("[hello]")
    );
    assert_eq!(
        templates
            .render(
                "{{ block \"b1\" .Status }}<{{ . }}>{{ end }}",
                &data,
                RenderMode::Text
            )
            .as_deref(),
        Ok("<firing>")
    );
    assert_eq!(
        templates
            .render("{{ template \"greet\" }}", &data, RenderMode::Text)
            .as_deref(),
        Ok("hello")
    );
    assert_eq!(
        templates
            .render(
                "{{ define \"greet\" }}inline{{ end }}{{ template \"greet\" }}",
                &data,
                RenderMode::Text
            )
            .as_deref(),
        Ok("inline")
    );
    assert!(
        !templates.is_defined("b1"),
        "definitions in rendered text are not kept"
    );
    let duplicate = templates.add_file(
        "c.tmpl",
        "{{ define \"x\" }}1{{ end }}\n{{ define \"x\" }}2{{ end }}",
    );
    assert!(
        matches!(
            &duplicate,
            Err(TemplateError::Parse {
                line: 2,
                column: 4,
                ..
            })
        ),
        "{duplicate:?}"
    );
    assert!(!templates.is_defined("x"), "a failed file adds nothing");
    assert_eq!(
        templates.render_named("nope", &data, RenderMode::Text),
        Err(TemplateError::NoSuchTemplate("nope".into()))
    );
}

#[test]
fn template_parse_errors_carry_positions() {
    let templates = Templates::empty();
    let cases = [
        ("{{ .Status", 1, 1, "unclosed action"),
        ("ok\n  {{ if .Status }}x", 2, 0, "unexpected EOF"),
        ("{{ end }}", 1, 4, "unexpected {{end}}"),
        (
            "line1\n{{ nosuch 1 }}",
            2,
            4,
            "function \"nosuch\" not defined",
        ),
        ("{{ $x }}", 1, 4, "undefined variable \"$x\""),
        ("{{ break }}", 1, 4, "{{break}} outside {{range}}"),
        ("{{ \"abc }}", 1, 4, "unterminated quoted string"),
        (
            "{{ if true }}{{ define \"x\" }}{{ end }}{{ end }}",
            1,
            17,
            "unexpected <define>",
        ),
        ("{{ 1 | 2 }}", 1, 8, "non executable command"),
        ("{{ template .Status }}", 1, 13, "unexpected field"),
        ("{{ ( .Status }}", 1, 14, "unclosed left paren"),
    ];
    for (text, line, column, message) in cases {
        match templates.check("f.tmpl", text) {
            Err(TemplateError::Parse {
                file,
                line: l,
                column: c,
                message: m,
            }) => {
                assert_eq!(file, "f.tmpl");
                assert_eq!(l, line, "{text:?}: {m}");
                if column > 0 {
                    assert_eq!(c, column, "{text:?}: {m}");
                }
                assert!(m.contains(message), "{text:?}: {m}");
            }
            other => panic!("{text:?}: expected a parse error, got {other:?}"),
        }
    }
}

#[test]
fn template_exec_errors_name_template_and_position() {
    let mut templates = Templates::empty();
    assert_eq!(
        templates.add_file("t.tmpl", "\n{{ define \"bad\" }}\n  {{ .Nope }}{{ end }}"),
        Ok(())
    );
    let error = templates.render("x{{ template \"bad\" . }}", &sample(), RenderMode::Text);
    assert_eq!(
        error.map_err(|e| e.to_string()),
        Err(
            "t.tmpl:3:6: executing \"bad\": can't evaluate field Nope in type *template.Data"
                .to_string()
        )
    );
    assert!(err("{{ index .Alerts 5 }}").starts_with(
        "inline:1:4: executing \"inline\": error calling index: index out of range: 5"
    ));
    assert!(err("{{ template \"missing\" }}").contains("template \"missing\" not defined"));
    assert!(err("{{ .Status.Foo }}").contains("can't evaluate field Foo in type string"));
    assert!(err("{{ nil }}").contains("nil is not a command"));
    assert!(err("{{ .Status 1 }}").contains("has arguments"));
}

#[test]
fn template_limits_stop_runaway_templates() {
    let limits = Limits {
        max_output_bytes: 1000,
        max_call_depth: 10,
        max_range_iterations: 50,
        max_steps: 10_000,
        max_source_bytes: 10_000,
    };
    let mut templates = Templates::empty().with_limits(limits);
    assert_eq!(templates.add_file("r.tmpl", "{{ define \"loop\" }}{{ template \"loop\" . }}{{ end }}{{ define \"fan\" }}{{ template \"fan\" . }}{{ template \"fan\" . }}{{ end }}"), Ok(()));
    let data = sample();
    let depth = templates
        .render("loop", &data, RenderMode::Text)
        .map_err(|e| e.to_string());
    assert!(
        depth
            .as_ref()
            .is_err_and(|e| e.contains("maximum template depth")),
        "{depth:?}"
    );
    assert!(templates.render("fan", &data, RenderMode::Text).is_err());
    let iterations = templates
        .render("{{ range $i := 100 }}{{ end }}", &data, RenderMode::Text)
        .map_err(|e| e.to_string());
    assert!(iterations.is_err_and(|e| e.contains("iterations")));
    let output = templates
        .render(
            "{{ range $i := 40 }}0123456789012345678901234567890123456789{{ end }}",
            &data,
            RenderMode::Text,
        )
        .map_err(|e| e.to_string());
    assert!(output.is_err_and(|e| e.contains("output exceeds")));
    let doubling = templates.render("{{ $s := \"xxxxxxxxxx\" }}{{ range $i := 20 }}{{ $s = printf \"%s%s\" $s $s }}{{ end }}", &data, RenderMode::Text).map_err(|e| e.to_string());
    assert!(doubling.is_err_and(|e| e.contains("more than")));
    let large = templates.add_file("big", &"x".repeat(20_000));
    assert!(matches!(large, Err(TemplateError::TooLarge { .. })));
}

#[test]
fn template_tocsin_defaults_render() {
    let templates = Templates::new();
    let data = sample();
    for name in [
        "__subject",
        "email.default.subject",
        "email.default.text",
        "email.default.html",
        "__alertmanagerURL",
        "__text_alert_list",
    ] {
        assert!(templates.is_defined(name), "{name}");
    }
    assert_eq!(
        templates
            .render("email.default.subject", &data, RenderMode::Text)
            .as_deref(),
        Ok("[FIRING:2] HighLatency (api page)")
    );
    let text = templates
        .render("email.default.text", &data, RenderMode::Text)
        .unwrap_or_default();
    assert!(text.contains("2 firing, 1 resolved"), "{text}");
    assert!(text.contains("instance: c<9100"), "{text}");
    assert!(
        text.contains("http://tocsin.example:9093/#/alerts?receiver=team-x%5C.pager"),
        "{text}"
    );
    assert!(
        text.contains("Source: http://prometheus:9090/graph?g0.expr=up&start=1700000000"),
        "{text}"
    );
    let html = templates
        .render("email.default.html", &data, RenderMode::Html)
        .unwrap_or_default();
    assert!(
        html.contains("c&lt;9100") && !html.contains("c<9100"),
        "{html}"
    );
    assert!(html.contains("p99 &lt;above&gt; 2s"), "{html}");
    assert!(html.contains("<strong>HighLatency</strong>"), "{html}");
    assert!(
        html.contains("href=\"http://prometheus:9090/graph?g0.expr=up&amp;start=1700000000\""),
        "{html}"
    );
    let resolved = NotificationData::new(
        "r".into(),
        vec![alert(AlertStatus::Resolved, &[("alertname", "A")], &[], 0)],
        kv(&[("alertname", "A")]),
        String::new(),
        String::new(),
        String::new(),
    );
    assert_eq!(
        templates
            .render("__subject", &resolved, RenderMode::Text)
            .as_deref(),
        Ok("[RESOLVED] A")
    );
}

const ALERTMANAGER_TEMPLATES: &str = "/usr/share/prometheus/alertmanager";

fn alertmanager_file(name: &str) -> String {
    let path = format!("{ALERTMANAGER_TEMPLATES}/{name}");
    match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(error) => panic!(
            "cannot read {path} ({error}): install Alertmanager's templates with `apt-get install -y prometheus-alertmanager` (scripts/test does)"
        ),
    }
}

#[test]
fn template_alertmanager_default_templates_render() {
    let mut templates = Templates::empty();
    let mut defined = Vec::new();
    for file in ["default.tmpl", "email.tmpl"] {
        let text = alertmanager_file(file);
        if let Err(error) = templates.add_file(file, &text) {
            panic!("{file}: {error}");
        }
        let mut names: Vec<String> = text
            .match_indices("{{ define \"")
            .map(|(at, _)| {
                text[at + 11..]
                    .split('"')
                    .next()
                    .unwrap_or_default()
                    .to_string()
            })
            .collect();
        defined.append(&mut names);
    }
    assert!(
        defined.len() > 40,
        "found only {} definitions",
        defined.len()
    );
    let data = sample();
    for name in &defined {
        let mode = if name.contains("html") {
            RenderMode::Html
        } else {
            RenderMode::Text
        };
        // These take a list of alerts, as their callers pass it, not the whole data.
        let rendered = if name == "__text_alert_list" || name == "pagerduty.default.instances" {
            templates.render_text(&format!("{{{{ template {name:?} .Alerts }}}}"), &data, mode)
        } else {
            templates.render_named(name, &data, mode)
        };
        if let Err(error) = rendered {
            panic!("{name}: {error}");
        }
    }
    let subject = templates
        .render("__subject", &data, RenderMode::Text)
        .unwrap_or_default();
    assert_eq!(subject, "[FIRING:2] HighLatency (api page)");
    let pagerduty = templates
        .render(
            "{{ template \"pagerduty.default.instances\" .Alerts }}",
            &data,
            RenderMode::Text,
        )
        .unwrap_or_default();
    assert!(pagerduty.contains(" - instance = c<9100"), "{pagerduty}");
    let url = templates
        .render("__alertmanagerURL", &data, RenderMode::Text)
        .unwrap_or_default();
    assert_eq!(
        url,
        "http://tocsin.example:9093/#/alerts?receiver=team-x%5C.pager"
    );
    let html = templates
        .render("email.default.html", &data, RenderMode::Html)
        .unwrap_or_default();
    assert!(html.contains("HighLatency"), "{html}");
    assert!(
        html.contains("c&lt;9100") && !html.contains("c<9100"),
        "labels must be escaped"
    );
    assert!(
        html.contains("2 alerts for alertname=HighLatency")
            || html.contains("alertname=HighLatency"),
        "{html}"
    );
    assert!(
        html.contains("http://prometheus:9090/graph?g0.expr=up&amp;start=1700000000"),
        "{html}"
    );
    let opsgenie = templates
        .render("opsgenie.default.description", &data, RenderMode::Text)
        .unwrap_or_default();
    assert!(
        opsgenie
            .starts_with("p99 <above> 2s\nAlerts Firing:\nLabels:\n - alertname = HighLatency\n"),
        "{opsgenie:?}"
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Arbitrary text, biased towards template syntax, never panics, and output stays bounded.
    #[test]
    fn template_arbitrary_text_never_panics(text in proptest::collection::vec(prop_oneof![
        Just("{{".to_string()), Just("}}".to_string()), Just("{{-".to_string()), Just("-}}".to_string()),
        Just(" ".to_string()), Just("\n".to_string()), Just(".".to_string()), Just("$".to_string()), Just("|".to_string()),
        Just("(".to_string()), Just(")".to_string()), Just("\"".to_string()), Just("`".to_string()), Just("'".to_string()),
        Just("if".to_string()), Just("else".to_string()), Just("end".to_string()), Just("range".to_string()),
        Just("with".to_string()), Just("define".to_string()), Just("template".to_string()), Just("block".to_string()),
        Just("break".to_string()), Just("$x :=".to_string()), Just("$x".to_string()), Just("= ".to_string()),
        Just(".Alerts".to_string()), Just(".Labels".to_string()), Just(".Status".to_string()), Just("/*".to_string()), Just("*/".to_string()),
        Just("printf \"%s%s\" ".to_string()), Just("len".to_string()), Just("index".to_string()), Just("1e9".to_string()), Just("-1".to_string()),
        Just("\"x\"".to_string()), Just("99999".to_string()), Just("humanizeDuration".to_string()), Just("slice".to_string()),
        "[ -~]{0,4}", "\\PC{0,2}",
    ], 0..40)) {
        let text: String = text.concat();
        let limits = Limits { max_output_bytes: 4096, max_steps: 20_000, max_range_iterations: 1000, ..Limits::default() };
        let mut templates = Templates::empty().with_limits(limits);
        let data = sample();
        let _ = templates.check("p.tmpl", &text);
        let _ = templates.add_file("p.tmpl", &text);
        for mode in [RenderMode::Text, RenderMode::Html] {
            if let Ok(out) = templates.render_text(&text, &data, mode) {
                prop_assert!(out.len() <= 4096 + 8);
            }
            if let Ok(out) = templates.render_named("p.tmpl", &data, mode) {
                prop_assert!(out.len() <= 4096 + 8);
            }
        }
    }
}

#[test]
#[ignore = "prints Alertmanager's email for a look by eye"]
fn template_print_alertmanager_email() {
    let mut templates = Templates::empty();
    for file in ["default.tmpl", "email.tmpl"] {
        let _ = templates.add_file(file, &alertmanager_file(file));
    }
    let html = templates.render("email.default.html", &sample(), RenderMode::Html);
    eprintln!("{}", html.unwrap_or_else(|e| e.to_string()));
}
