//! Tests of the exposition parsers: real expositions, Prometheus's own parser cases, the
//! OpenMetrics spec's examples, every error with its position, and property tests.

use super::*;
use proptest::prelude::*;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/fixtures/exposition");

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!("{FIXTURES}/{name}")).unwrap()
}

fn text(input: &str) -> Vec<Entry<'_>> {
    TextParser::new(input.as_bytes())
        .collect::<Result<_, _>>()
        .unwrap_or_else(|e| panic!("{e}"))
}

fn om(input: &str) -> Vec<Entry<'_>> {
    OpenMetricsParser::new(input.as_bytes())
        .collect::<Result<_, _>>()
        .unwrap_or_else(|e| panic!("{e}"))
}

fn text_error(input: &[u8]) -> String {
    first_error(TextParser::new(input))
}

fn om_error(input: &[u8]) -> String {
    first_error(OpenMetricsParser::new(input))
}

fn first_error<'a>(parser: impl Iterator<Item = Result<Entry<'a>, ParseError>>) -> String {
    for entry in parser {
        if let Err(e) = entry {
            return e.to_string();
        }
    }
    panic!("expected an error")
}

fn samples<'a>(entries: &[Entry<'a>]) -> Vec<Sample<'a>> {
    entries
        .iter()
        .filter_map(|e| match e {
            Entry::Sample(s) => Some(*s),
            _ => None,
        })
        .collect()
}

/// A sample as owned, decoded strings: (name, [(label, value)], value bits, timestamp).
type Flat = (String, Vec<(String, String)>, u64, Option<i64>);

fn flat(sample: &Sample<'_>) -> Flat {
    (
        sample.name.unescape().into_owned(),
        sample
            .labels
            .iter()
            .map(|l| {
                (
                    l.name.unescape().into_owned(),
                    l.value.unescape().into_owned(),
                )
            })
            .collect(),
        sample.value.to_bits(),
        sample.timestamp_ms,
    )
}

fn s(name: &str, labels: &[(&str, &str)], value: f64, ts: Option<i64>) -> Flat {
    (
        name.to_owned(),
        labels
            .iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
            .collect(),
        value.to_bits(),
        ts,
    )
}

// ---------------------------------------------------------------------------------------------
// Real expositions

struct FixtureFacts {
    file: &'static str,
    samples: usize,
    helps: usize,
    types: usize,
    labels: usize,
    nans: usize,
    /// Sum of the non-NaN values in file order (worked out with Python's float, which is f64).
    sum: f64,
}

const FACTS: [FixtureFacts; 3] = [
    FixtureFacts {
        file: "alertmanager-0.25.0.prom.txt",
        samples: 242,
        helps: 75,
        types: 75,
        labels: 251,
        nans: 0,
        sum: 1.844699963103314e+19,
    },
    FixtureFacts {
        file: "node_exporter-1.5.0.prom.txt",
        samples: 507,
        helps: 283,
        types: 283,
        labels: 401,
        nans: 0,
        sum: 1.8446779998083764e+19,
    },
    FixtureFacts {
        file: "prometheus-2.42.0.prom.txt",
        samples: 293,
        helps: 160,
        types: 160,
        labels: 172,
        nans: 26,
        sum: 2.767933948944747e+19,
    },
];

#[test]
fn fixtures_parse_with_the_counts_and_values_worked_out_independently() {
    for facts in &FACTS {
        let input = fixture(facts.file);
        let entries: Vec<_> = TextParser::new(&input)
            .collect::<Result<_, _>>()
            .unwrap_or_else(|e| panic!("{}: {e}", facts.file));
        let samples = samples(&entries);
        let helps = entries
            .iter()
            .filter(|e| matches!(e, Entry::Help { .. }))
            .count();
        let types = entries
            .iter()
            .filter(|e| matches!(e, Entry::Type { .. }))
            .count();
        let labels: usize = samples.iter().map(|s| s.labels.len()).sum();
        let iterated: usize = samples.iter().map(|s| s.labels.iter().count()).sum();
        let nans = samples.iter().filter(|s| s.value.is_nan()).count();
        let sum: f64 = samples
            .iter()
            .filter(|s| !s.value.is_nan())
            .map(|s| s.value)
            .sum();
        assert_eq!(samples.len(), facts.samples, "{}", facts.file);
        assert_eq!((helps, types), (facts.helps, facts.types), "{}", facts.file);
        assert_eq!(
            (labels, iterated),
            (facts.labels, facts.labels),
            "{}",
            facts.file
        );
        assert_eq!(nans, facts.nans, "{}", facts.file);
        assert_eq!(sum, facts.sum, "{}", facts.file);
        assert!(samples.iter().all(|s| s.timestamp_ms.is_none()));
        assert!(
            samples
                .iter()
                .filter(|s| s.value.is_nan())
                .all(|s| s.value.to_bits() == NORMAL_NAN_BITS)
        );
    }
}

#[test]
fn fixture_values_checked_by_hand() {
    let input = fixture("node_exporter-1.5.0.prom.txt");
    let entries: Vec<_> = TextParser::new(&input).map(Result::unwrap).collect();
    let all = samples(&entries);
    let find = |name: &str| all.iter().find(|s| s.name.raw() == name).unwrap();
    // Line 93: `node_boot_time_seconds 1.795597612e+09`.
    assert_eq!(find("node_boot_time_seconds").value, 1.795597612e9);
    assert_eq!(
        find("node_boot_time_seconds").metric_type(),
        MetricType::Gauge
    );
    // Line 1019, whose label value holds `#` and `@`.
    let uname = find("node_uname_info");
    assert_eq!(uname.labels.len(), 6);
    assert_eq!(
        uname.labels.get("version").unwrap().raw(),
        "#1 SMP PREEMPT_DYNAMIC @0"
    );
    assert_eq!(uname.labels.get("nodename").unwrap().raw(), "vm");
    // The first sample, of a summary family.
    assert_eq!(
        flat(&all[0]),
        s("go_gc_duration_seconds", &[("quantile", "0")], 0.0, None)
    );
    assert_eq!(all[0].metric_type(), MetricType::Summary);
    // `go_gc_duration_seconds_count` belongs to the summary family too.
    assert_eq!(
        find("go_gc_duration_seconds_count").metric_type(),
        MetricType::Summary
    );
    // The help text of the first family.
    assert_eq!(
        entries[0],
        Entry::Help {
            name: Escaped::new("go_gc_duration_seconds"),
            text: Escaped::help("A summary of the pause duration of garbage collection cycles."),
        }
    );

    let input = fixture("prometheus-2.42.0.prom.txt");
    let entries: Vec<_> = TextParser::new(&input).map(Result::unwrap).collect();
    let all = samples(&entries);
    let build = all
        .iter()
        .find(|s| s.name.raw() == "prometheus_build_info")
        .unwrap();
    assert_eq!(
        flat(build),
        s(
            "prometheus_build_info",
            &[
                ("branch", "debian/sid"),
                ("goarch", "amd64"),
                ("goos", "linux"),
                ("goversion", "go1.19.8"),
                ("revision", "2.42.0+ds-5+deb12u1"),
                ("version", "2.42.0+ds"),
            ],
            1.0,
            None
        )
    );
    assert_eq!(all[0].value, 5.8949e-05);
}

#[test]
fn fixtures_as_openmetrics_parse_to_the_same_samples() {
    for facts in &FACTS {
        let input = String::from_utf8(fixture(facts.file)).unwrap();
        let converted = to_openmetrics(&input);
        let text_samples: Vec<Flat> = samples(&text(&input)).iter().map(flat).collect();
        let om_entries = om(&converted);
        assert_eq!(om_entries.last(), Some(&Entry::Eof));
        let om_samples: Vec<Flat> = samples(&om_entries).iter().map(flat).collect();
        assert_eq!(text_samples, om_samples, "{}", facts.file);
    }
}

/// The text fixtures are valid OpenMetrics once `untyped` is `unknown` and `# EOF` ends them.
fn to_openmetrics(input: &str) -> String {
    let mut out = String::new();
    for line in input.lines() {
        if line.starts_with("# TYPE ") && line.ends_with(" untyped") {
            out.push_str(&line.replace(" untyped", " unknown"));
        } else {
            out.push_str(line);
        }
        out.push('\n');
    }
    out.push_str("# EOF\n");
    out
}

// ---------------------------------------------------------------------------------------------
// Text format: what Prometheus's own tests accept

#[test]
fn the_series_text_spans_the_name_and_the_label_set_as_written() {
    let series = |entries: Vec<Entry<'_>>| -> Vec<String> {
        samples(&entries)
            .iter()
            .map(|sample| String::from_utf8(sample.series.to_vec()).unwrap())
            .collect()
    };
    assert_eq!(
        series(text(
            "up 1\n  a_b{x=\"1\",y=\"2\"}  2 17\nc {x=\"1\" } 3\n{\"d.e\", x=\"a\\nb\"} 4\n"
        )),
        [
            "up",
            "a_b{x=\"1\",y=\"2\"}",
            "c {x=\"1\" }",
            "{\"d.e\", x=\"a\\nb\"}"
        ]
    );
    assert_eq!(
        series(om(
            "up 1\na{x=\"1\"} 2 # {t=\"1\"} 1\n{\"d.e\",x=\"2\"} 3\n# EOF\n"
        )),
        ["up", "a{x=\"1\"}", "{\"d.e\",x=\"2\"}"]
    );
}

#[test]
fn text_accepts_what_promparse_accepts() {
    let input = "# HELP go_gc_duration_seconds A summary of the GC invocation durations.\n\
# \tTYPE go_gc_duration_seconds summary\n\
go_gc_duration_seconds{quantile=\"0\"} 4.9351e-05\n\
go_gc_duration_seconds{quantile=\"0.25\",} 7.424100000000001e-05\n\
go_gc_duration_seconds{quantile=\"0.8\", a=\"b\"} 8.3835e-05\n\
go_gc_duration_seconds{ quantile=\"0.9\", a=\"b\"} 8.3835e-05\n\
# Hrandom comment starting with prefix of HELP\n\
#\n\
wind_speed{A=\"2\",c=\"3\"} 12345\n\
# comment with escaped \\n newline\n\
# HELP nohelp1\n\
# HELP nohelp2 \n\
go_gc_duration_seconds { quantile= \"1.0\", a= \"b\", } 8.3835e-05\n\
go_gc_duration_seconds { quantile = \"2.0\" a = \"b\" } 8.3835e-05\n\
some:aggregate:rate5m{a_b=\"c\"}\t1\n\
go_goroutines 33  \t123123\n\
_metric_starting_with_underscore 1\n\
testmetric{label=\"\\\"bar\\\"\"} 1\n\
\n  \t\n\
# HELP metric foo\x00bar\n\
null_byte_metric{a=\"abc\x00\"} 1";
    let entries = text(input);
    assert_eq!(
        entries[0],
        Entry::Help {
            name: Escaped::new("go_gc_duration_seconds"),
            text: Escaped::help("A summary of the GC invocation durations."),
        }
    );
    assert_eq!(
        entries[1],
        Entry::Type {
            name: Escaped::new("go_gc_duration_seconds"),
            kind: MetricType::Summary,
        }
    );
    let comments: Vec<&[u8]> = entries
        .iter()
        .filter_map(|e| match e {
            Entry::Comment(c) => Some(*c),
            _ => None,
        })
        .collect();
    assert_eq!(
        comments,
        [
            &b"# Hrandom comment starting with prefix of HELP"[..],
            b"#",
            b"# comment with escaped \\n newline"
        ]
    );
    let helps: Vec<(String, String)> = entries
        .iter()
        .filter_map(|e| match e {
            Entry::Help { name, text } => Some((name.raw().to_owned(), text.unescape().into())),
            _ => None,
        })
        .collect();
    assert_eq!(helps[1], ("nohelp1".into(), String::new()));
    assert_eq!(helps[2], ("nohelp2".into(), String::new()));
    assert_eq!(helps[3], ("metric".into(), "foo\0bar".into()));
    let got: Vec<Flat> = samples(&entries).iter().map(flat).collect();
    let qb = |q| vec![("quantile", q), ("a", "b")];
    let expected = vec![
        s(
            "go_gc_duration_seconds",
            &[("quantile", "0")],
            4.9351e-05,
            None,
        ),
        s(
            "go_gc_duration_seconds",
            &[("quantile", "0.25")],
            7.424100000000001e-05,
            None,
        ),
        s("go_gc_duration_seconds", &qb("0.8"), 8.3835e-05, None),
        s("go_gc_duration_seconds", &qb("0.9"), 8.3835e-05, None),
        s("wind_speed", &[("A", "2"), ("c", "3")], 12345.0, None),
        s("go_gc_duration_seconds", &qb("1.0"), 8.3835e-05, None),
        s("go_gc_duration_seconds", &qb("2.0"), 8.3835e-05, None),
        s("some:aggregate:rate5m", &[("a_b", "c")], 1.0, None),
        s("go_goroutines", &[], 33.0, Some(123_123)),
        s("_metric_starting_with_underscore", &[], 1.0, None),
        s("testmetric", &[("label", "\"bar\"")], 1.0, None),
        s("null_byte_metric", &[("a", "abc\0")], 1.0, None),
    ];
    assert_eq!(got, expected);
}

#[test]
fn text_quoted_utf8_names() {
    let input = "# HELP \"go.gc_duration_seconds\" A summary.\n\
# TYPE \"go.gc_duration_seconds\" summary\n\
{\"go.gc_duration_seconds\",quantile=\"0\"} 4.9351e-05\n\
{ \"go.gc_duration_seconds\", quantile = \"1.0\", a = \"b\" } 8.3835e-05\n\
{\"go.gc_duration_seconds_count\"} 99\n\
{\"Heizölrückstoßabdämpfung 10€ metric with \\\"interesting\\\" {character\\nchoices}\",\"strange©™\\n'quoted' \\\"name\\\"\"=\"6\"} 10.0\n";
    let entries = text(input);
    assert_eq!(
        entries[1],
        Entry::Type {
            name: Escaped::new("go.gc_duration_seconds"),
            kind: MetricType::Summary
        }
    );
    let got: Vec<Flat> = samples(&entries).iter().map(flat).collect();
    assert_eq!(
        got,
        vec![
            s(
                "go.gc_duration_seconds",
                &[("quantile", "0")],
                4.9351e-05,
                None
            ),
            s(
                "go.gc_duration_seconds",
                &[("quantile", "1.0"), ("a", "b")],
                8.3835e-05,
                None
            ),
            s("go.gc_duration_seconds_count", &[], 99.0, None),
            s(
                "Heizölrückstoßabdämpfung 10€ metric with \"interesting\" {character\nchoices}",
                &[("strange©™\n'quoted' \"name\"", "6")],
                10.0,
                None
            ),
        ]
    );
    assert_eq!(
        samples(&entries)[2].metric_type(),
        MetricType::Summary,
        "quoted names belong to their family too"
    );
}

#[test]
fn text_label_values_may_hold_raw_newlines_and_positions_follow_them() {
    let entries = text("a{b=\"x\ny\"} 1\nc 2\n");
    assert_eq!(
        flat(&samples(&entries)[0]),
        s("a", &[("b", "x\ny")], 1.0, None)
    );
    assert_eq!(
        text_error(b"a{b=\"x\ny\"} 1\nc 2 x\n"),
        "line 3, column 5: expected a timestamp or the end of the line after the value, found \"x\""
    );
}

#[test]
fn text_ends_at_a_nul_where_a_line_would_start() {
    // Prometheus's lexer returns EOF on a NUL in its initial state; exporters that pad their
    // output with NULs therefore scrape fine.
    let entries = text("a 1\n\0\0garbage\n");
    assert_eq!(samples(&entries).len(), 1);
}

#[test]
fn text_values_and_timestamps() {
    let value = |v: &str| {
        let input = format!("m {v}\n");
        let entries = TextParser::new(input.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map(|e| samples(&e)[0].value);
        entries.map_err(|e| e.message)
    };
    for (text, expected) in [
        ("0", 0.0),
        ("-0", -0.0),
        ("1", 1.0),
        ("+1.5", 1.5),
        ("1.", 1.0),
        (".5", 0.5),
        ("-.5e-3", -0.0005),
        ("1e5", 1e5),
        ("1E+05", 1e5),
        ("123456789012345678901234567890", 1.2345678901234568e29),
        ("1e-400", 0.0),
        ("Inf", f64::INFINITY),
        ("+Inf", f64::INFINITY),
        ("-Inf", f64::NEG_INFINITY),
        ("inf", f64::INFINITY),
        ("-infinity", f64::NEG_INFINITY),
        ("+INFINITY", f64::INFINITY),
        ("1.7976931348623157e308", f64::MAX),
    ] {
        assert_eq!(
            value(text).map(f64::to_bits),
            Ok(expected.to_bits()),
            "{text}"
        );
    }
    for nan in ["NaN", "nan", "NAN"] {
        assert_eq!(value(nan).map(f64::to_bits), Ok(NORMAL_NAN_BITS), "{nan}");
    }
    for (bad, message) in [
        ("0x10", "invalid number: sample value \"0x10\""),
        (
            "0x1p-3",
            "unsupported character in number: sample value \"0x1p-3\"",
        ),
        (
            "1_2",
            "unsupported character in number: sample value \"1_2\"",
        ),
        ("+NaN", "invalid number: sample value \"+NaN\""),
        ("infin", "invalid number: sample value \"infin\""),
        ("1e400", "number out of range: sample value \"1e400\""),
        ("true", "invalid number: sample value \"true\""),
        (".", "invalid number: sample value \".\""),
        ("1e", "invalid number: sample value \"1e\""),
        ("--1", "invalid number: sample value \"--1\""),
        ("1,5", "invalid number: sample value \"1,5\""),
    ] {
        assert_eq!(value(bad), Err(message.to_owned()), "{bad}");
    }
    let ts = |line: &str| {
        TextParser::new(line.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map(|e| samples(&e)[0].timestamp_ms)
            .map_err(|e| e.to_string())
    };
    assert_eq!(ts("m 1 0"), Ok(Some(0)));
    assert_eq!(ts("m 1 9223372036854775807"), Ok(Some(i64::MAX)));
    assert_eq!(
        ts("m 1 9223372036854775808"),
        Err("line 1, column 5: timestamp \"9223372036854775808\" out of range".into())
    );
    assert_eq!(
        ts("m 1 -5"),
        Err(
            "line 1, column 5: expected a timestamp or the end of the line after the value, \
             found \"-\""
                .into()
        )
    );
    assert_eq!(
        ts("m 1 1.5"),
        Err(
            "line 1, column 6: expected the end of the line after the timestamp, found \".\""
                .into()
        )
    );
}

#[test]
fn text_errors_say_where_and_what() {
    let cases: &[(&[u8], &str)] = &[
        (
            b"a",
            "line 1, column 2: expected a value after the metric, found end of input",
        ),
        (
            b"a{b='c'} 1\n",
            "line 1, column 5: expected a quoted value for label \"b\", found \"'\"",
        ),
        (
            b"a{b=\n",
            "line 1, column 5: expected a quoted value for label \"b\", found end of line",
        ),
        (
            b"a{\xff=\"foo\"} 1\n",
            "line 1, column 3: expected a label name or \"}\", found the invalid UTF-8 byte 0xff",
        ),
        (
            b"a{b=\"\xff\"} 1\n",
            "line 1, column 6: invalid UTF-8 in a label name or value",
        ),
        (
            b"up 1\nnode{job:\"x\"} 1\n",
            "line 2, column 9: expected \"=\" after label name \"job\", found \":\"",
        ),
        (
            b"a true\n",
            "line 1, column 3: invalid number: sample value \"true\"",
        ),
        (
            b"something_weird{problem=\"",
            "line 1, column 25: unterminated value of label \"problem\": no closing quote",
        ),
        (
            b"empty_label_name{=\"\"} 0",
            "line 1, column 18: expected a label name or \"}\", found \"=\"",
        ),
        (
            b"foo 0 1_2\n",
            "line 1, column 8: expected the end of the line after the timestamp, found \"_\"",
        ),
        (
            b"{a=\"ok\"} 1",
            "line 1, column 1: metric name not set: a label set without a name needs it quoted \
             inside, as in {\"name\", label=\"value\"}",
        ),
        (
            b"a{\"b\",\"c\"} 1",
            "line 1, column 3: metric name already set, found a second one: \"b\"",
        ),
        (
            b"{\"a\",\"c\"} 1",
            "line 1, column 6: metric name already set, found a second one: \"c\"",
        ),
        (
            b"# TYPE #\n",
            "line 1, column 8: expected a metric name after TYPE, found \"#\"",
        ),
        (
            b"# HELP #\n",
            "line 1, column 8: expected a metric name after HELP, found \"#\"",
        ),
        (
            b"# TYPE m gaugehistogram\n",
            "line 1, column 10: invalid metric type \"gaugehistogram\" (expected counter, gauge, \
             histogram, summary or untyped)",
        ),
        (
            b"# TYPE m  counter\n",
            "line 1, column 10: invalid metric type \" counter\" (expected counter, gauge, \
             histogram, summary or untyped)",
        ),
        (
            b"# TYPE m\n",
            "line 1, column 9: invalid metric type \"\" (expected counter, gauge, histogram, \
             summary or untyped)",
        ),
        (
            b"# HELP m bad \xc3\x28\n",
            "line 1, column 14: invalid UTF-8 in help text",
        ),
        (
            b"a 1\r\nb 2\r\n",
            "line 1, column 3: sample value \"1\\r\" ends in a carriage return (\\r): lines must \
             end with \\n alone",
        ),
        (
            b"a 1 123\r\n",
            "line 1, column 8: expected the end of the line after the timestamp, found a \
             carriage return (\\r): lines must end with \\n alone",
        ),
        (
            b"a\x00{b=\"ddd\"} 1",
            "line 1, column 2: expected a value after the metric, found a NUL byte",
        ),
        (
            b"a{b=\x00\"ssss\"} 1\n",
            "line 1, column 5: expected a quoted value for label \"b\", found a NUL byte",
        ),
        (
            b"a{b=\"x\\\ny\"} 1\n",
            "line 1, column 7: backslash before the end of the line in value of label \"b\" \
             (write a newline as \\n)",
        ),
        (
            b"ok 1\n= 1\n",
            "line 2, column 1: expected a metric name, \"{\", \"#\" or a blank line, found \"=\"",
        ),
        (
            b"a{,} 1\n",
            "line 1, column 3: expected a label name or \"}\", found \",\"",
        ),
        (
            b"a{b=\"1\",,} 1\n",
            "line 1, column 9: expected a label name or \"}\", found \",\"",
        ),
        (
            b"a 1 # {t=\"x\"} 1\n",
            "line 1, column 5: expected a timestamp or the end of the line after the value, \
             found \"#\"",
        ),
        (
            "m{é=\"1\"} 1\n".as_bytes(),
            "line 1, column 3: expected a label name or \"}\", found \"é\"",
        ),
        (
            "métrique 1\n".as_bytes(),
            "line 1, column 2: invalid number: sample value \"étrique\"",
        ),
    ];
    for (input, expected) in cases {
        assert_eq!(
            text_error(input),
            *expected,
            "input {:?}",
            String::from_utf8_lossy(input)
        );
    }
}

#[test]
fn errors_carry_kind_and_offset() {
    let error = TextParser::new(b"a 1\nb{c=\"\xff\"} 2\n")
        .find_map(Result::err)
        .unwrap();
    assert_eq!(error.kind, ErrorKind::InvalidUtf8);
    assert_eq!((error.line, error.column, error.offset), (2, 6, 9));
    // Columns count characters, not bytes.
    let error = TextParser::new("a{b=\"ééé\"} x\n".as_bytes())
        .find_map(Result::err)
        .unwrap();
    assert_eq!((error.column, error.offset), (12, 14));
    assert_eq!(error.kind, ErrorKind::InvalidValue);
}

#[test]
fn parsers_stop_after_the_first_error() {
    let mut parser = TextParser::new(b"a x\nb 1\n");
    assert!(parser.next().unwrap().is_err());
    assert!(parser.next().is_none());
    let mut parser = OpenMetricsParser::new(b"a x\nb 1\n# EOF\n");
    assert!(parser.next().unwrap().is_err());
    assert!(parser.next().is_none());
}

// ---------------------------------------------------------------------------------------------
// Limits

#[test]
fn lines_longer_than_the_limit_are_errors() {
    let limits = Limits {
        max_line_length: 32,
        max_labels: 4,
    };
    let long_value = format!("a{{b=\"{}\"}} 1\n", "x".repeat(100));
    for openmetrics in [false, true] {
        let input = format!("ok 1\n{long_value}# EOF\n");
        let error = if openmetrics {
            OpenMetricsParser::with_limits(input.as_bytes(), limits)
                .find_map(Result::err)
                .unwrap()
        } else {
            TextParser::with_limits(input.as_bytes(), limits)
                .find_map(Result::err)
                .unwrap()
        };
        assert_eq!(error.kind, ErrorKind::LineTooLong);
        assert_eq!(
            error.to_string(),
            "line 2, column 33: line is longer than the limit of 32 bytes"
        );
    }
    // Every kind of line is bounded: comments, help, blanks, names.
    for input in [
        format!("# {}\n", "c".repeat(100)),
        format!("# HELP m {}\n", "h".repeat(100)),
        format!("{}\n", " ".repeat(100)),
        format!("{} 1\n", "m".repeat(100)),
        format!("m {}\n", "1".repeat(100)),
    ] {
        let error = TextParser::with_limits(input.as_bytes(), limits)
            .find_map(Result::err)
            .unwrap_or_else(|| panic!("{input}"));
        assert_eq!(error.kind, ErrorKind::LineTooLong, "{input}");
    }
    // A line exactly at the limit is fine.
    let exact = format!("{} 1", "m".repeat(30));
    assert_eq!(exact.len(), 32);
    assert!(TextParser::with_limits(exact.as_bytes(), limits).all(|e| e.is_ok()));
}

#[test]
fn label_sets_larger_than_the_limit_are_errors() {
    let limits = Limits {
        max_line_length: 1 << 20,
        max_labels: 3,
    };
    let ok = "m{a=\"1\",b=\"2\",c=\"3\"} 1\n# EOF\n";
    assert!(TextParser::with_limits(ok.as_bytes(), limits).all(|e| e.is_ok()));
    assert!(OpenMetricsParser::with_limits(ok.as_bytes(), limits).all(|e| e.is_ok()));
    let too_many = "m{a=\"1\",b=\"2\",c=\"3\",d=\"4\"} 1\n# EOF\n";
    for error in [
        TextParser::with_limits(too_many.as_bytes(), limits)
            .find_map(Result::err)
            .unwrap(),
        OpenMetricsParser::with_limits(too_many.as_bytes(), limits)
            .find_map(Result::err)
            .unwrap(),
    ] {
        assert_eq!(error.kind, ErrorKind::TooManyLabels);
        assert_eq!(error.to_string(), "line 1, column 21: more than 3 labels");
    }
}

// ---------------------------------------------------------------------------------------------
// OpenMetrics

#[test]
fn openmetrics_spec_examples() {
    let input = r#"# TYPE acme_http_router_request_seconds summary
# UNIT acme_http_router_request_seconds seconds
# HELP acme_http_router_request_seconds Latency though all of ACME's HTTP request router.
acme_http_router_request_seconds_sum{path="/api/v1",method="GET"} 9036.32
acme_http_router_request_seconds_count{path="/api/v1",method="GET"} 807283.0
acme_http_router_request_seconds_created{path="/api/v1",method="GET"} 1605281325.0
# TYPE go_goroutines gauge
# HELP go_goroutines Number of goroutines that currently exist.
go_goroutines 69
# TYPE process_cpu_seconds counter
# UNIT process_cpu_seconds seconds
# HELP process_cpu_seconds Total user and system CPU time spent in seconds.
process_cpu_seconds_total 4.20072246e+06
# TYPE foo counter
foo_total 17.0 1520879607.789 # {trace_id="KOO5S4vxi0o"} 0.67
foo_created 1520430000.123
# TYPE bar histogram
bar_bucket{le="0.01"} 0
bar_bucket{le="0.1"} 8 # {} 0.054
bar_bucket{le="1"} 11 # {trace_id="KOO5S4vxi0o"} 0.67
bar_bucket{le="10"} 17 # {trace_id="oHg5SJYRHA0"} 9.8 1520879607.789
bar_bucket{le="+Inf"} 17
bar_count 17
bar_sum 324789.3
bar_created 1520430000.123
# TYPE gh gaugehistogram
gh_bucket{le="0.01"} 20.0
gh_bucket{le="+Inf"} 28.0
gh_gcount 28.0
gh_gsum 4.0
# TYPE ss stateset
ss{entity="controller",ss="a"} 1.0
ss{entity="controller",ss="bb"} 0.0
# TYPE build info
build_info{entity="controller",name="pretty name",version="8.2.7"} 1.0
# TYPE u unknown
u 1 -1.5
# HELP esc Escaped \"quotes\", \\ and \n newlines.
# EOF
"#;
    let entries = om(input);
    assert_eq!(entries.len(), 39);
    assert_eq!(
        entries[1],
        Entry::Unit {
            name: Escaped::new("acme_http_router_request_seconds"),
            unit: "seconds"
        }
    );
    let Entry::Help { text, .. } = entries[37] else {
        panic!("{:?}", entries[37]);
    };
    assert_eq!(text.unescape(), "Escaped \"quotes\", \\ and \n newlines.");
    assert_eq!(entries[38], Entry::Eof);
    let all = samples(&entries);
    let by_name = |name: &str| *all.iter().find(|s| s.name.raw() == name).unwrap();

    let created = by_name("acme_http_router_request_seconds_created");
    assert!(created.is_created());
    assert_eq!(created.metric_type(), MetricType::Summary);
    assert!(!by_name("acme_http_router_request_seconds_sum").is_created());
    assert_eq!(
        by_name("process_cpu_seconds_total").metric_type(),
        MetricType::Counter
    );

    let foo = by_name("foo_total");
    assert_eq!(foo.timestamp_ms, Some(1_520_879_607_789));
    let exemplar = foo.exemplar.unwrap();
    assert_eq!(exemplar.value, 0.67);
    assert_eq!(exemplar.timestamp_ms, None);
    assert_eq!(
        exemplar.labels.get("trace_id").map(|v| v.raw()),
        Some("KOO5S4vxi0o")
    );
    assert!(by_name("foo_created").is_created());
    assert_eq!(by_name("foo_created").value, 1_520_430_000.123);

    let buckets: Vec<_> = all
        .iter()
        .filter(|s| s.name.raw() == "bar_bucket")
        .collect();
    assert_eq!(buckets.len(), 5);
    assert_eq!(buckets[1].exemplar.unwrap().labels.len(), 0);
    assert_eq!(buckets[1].exemplar.unwrap().value, 0.054);
    assert_eq!(
        buckets[3].exemplar.unwrap().timestamp_ms,
        Some(1_520_879_607_789)
    );
    assert_eq!(buckets[4].labels.get("le").unwrap().raw(), "+Inf");
    assert!(
        all.iter()
            .filter(|s| s.name.raw().starts_with("bar"))
            .all(|s| s.metric_type() == MetricType::Histogram)
    );
    assert!(by_name("bar_created").is_created());

    assert_eq!(by_name("gh_gsum").metric_type(), MetricType::GaugeHistogram);
    assert_eq!(by_name("ss").metric_type(), MetricType::StateSet);
    assert_eq!(by_name("build_info").metric_type(), MetricType::Info);
    assert_eq!(by_name("u").timestamp_ms, Some(-1500));
}

#[test]
fn openmetrics_quoted_names_and_trailing_commas() {
    let entries = om(
        "# TYPE \"my.metric\" gauge\n{\"my.metric\",\"my.label\"=\"v\",} 1\n{\"my.metric\"} 2\n# EOF",
    );
    let all: Vec<Flat> = samples(&entries).iter().map(flat).collect();
    assert_eq!(
        all,
        vec![
            s("my.metric", &[("my.label", "v")], 1.0, None),
            s("my.metric", &[], 2.0, None)
        ]
    );
    assert_eq!(samples(&entries)[0].metric_type(), MetricType::Gauge);
}

#[test]
fn openmetrics_timestamps_are_float_seconds_truncated_to_milliseconds() {
    let ts = |t: &str| {
        let input = format!("m 1 {t}\n# EOF\n");
        OpenMetricsParser::new(input.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map(|e| samples(&e)[0].timestamp_ms)
            .map_err(|e| e.to_string())
    };
    assert_eq!(ts("1520879607.789"), Ok(Some(1_520_879_607_789)));
    assert_eq!(ts("1"), Ok(Some(1000)));
    assert_eq!(ts("0.0019"), Ok(Some(1)));
    assert_eq!(ts("-0.0019"), Ok(Some(-1)));
    assert_eq!(ts("1e3"), Ok(Some(1_000_000)));
    assert_eq!(
        ts("NaN"),
        Err("line 1, column 5: timestamp \"NaN\" is not a finite time in range".into())
    );
    assert_eq!(
        ts("+Inf"),
        Err("line 1, column 5: timestamp \"+Inf\" is not a finite time in range".into())
    );
    assert_eq!(
        ts("1e17"),
        Err("line 1, column 5: timestamp \"1e17\" is not a finite time in range".into())
    );
    assert_eq!(
        ts("abc"),
        Err("line 1, column 5: invalid number: timestamp \"abc\"".into())
    );
}

#[test]
fn openmetrics_errors_say_where_and_what() {
    let cases: &[(&[u8], &str)] = &[
        (
            b"",
            "line 1, column 1: the exposition does not end with \"# EOF\"",
        ),
        (
            b"a 1\n",
            "line 2, column 1: the exposition does not end with \"# EOF\"",
        ),
        (
            b"a 1",
            "line 1, column 4: the exposition does not end with \"# EOF\"",
        ),
        (
            b"# EOF\na 1\n",
            "line 2, column 1: unexpected data after \"# EOF\"",
        ),
        (
            b"# EOF\n\n",
            "line 2, column 1: unexpected data after \"# EOF\"",
        ),
        (
            b"# EOF ",
            "line 1, column 6: unexpected data after \"# EOF\"",
        ),
        (
            b"a 1\n\n# EOF\n",
            "line 2, column 1: blank lines are not allowed in OpenMetrics",
        ),
        (
            b"# a comment\n# EOF\n",
            "line 1, column 3: expected HELP, TYPE, UNIT or EOF after \"# \" (OpenMetrics has \
             no other comments), found \"a\"",
        ),
        (
            b"#\tTYPE a gauge\n# EOF\n",
            "line 1, column 2: expected a space after \"#\" (OpenMetrics only has # HELP, # \
             TYPE, # UNIT and # EOF lines), found \"\\t\"",
        ),
        (
            b"# HELP a\n# EOF\n",
            "line 1, column 9: expected a space and the help text after the metric name, found \
             end of line",
        ),
        (
            b"# TYPE a untyped\n# EOF\n",
            "line 1, column 10: invalid metric type \"untyped\" (expected counter, gauge, \
             histogram, gaugehistogram, summary, info, stateset or unknown)",
        ),
        (
            b"# UNIT a_seconds bytes\n# EOF\n",
            "line 1, column 18: unit \"bytes\" is not a suffix of metric \"a_seconds\" (expected \
             the name to end in \"_bytes\")",
        ),
        (
            b"# UNIT aseconds seconds\n# EOF\n",
            "line 1, column 17: unit \"seconds\" is not a suffix of metric \"aseconds\" (expected \
             the name to end in \"_seconds\")",
        ),
        (
            b" a 1\n# EOF\n",
            "line 1, column 1: expected a metric name, \"{\" or \"#\" at the start of a line, \
             found \" \"",
        ),
        (
            b"a  1\n# EOF\n",
            "line 1, column 3: expected a sample value, found \" \"",
        ),
        (
            b"a\t1\n# EOF\n",
            "line 1, column 2: expected a space and a value after the metric (OpenMetrics takes \
             exactly one space), found \"\\t\"",
        ),
        (
            b"a 1 \n# EOF\n",
            "line 1, column 5: expected a timestamp, found end of line",
        ),
        (
            b"a{b=\"1\" } 1\n# EOF\n",
            "line 1, column 8: expected \",\" or \"}\" after the value of label \"b\", found \" \"",
        ),
        (
            b"a{b=\"1\" c=\"2\"} 1\n# EOF\n",
            "line 1, column 8: expected \",\" or \"}\" after the value of label \"b\", found \" \"",
        ),
        (
            b"a{b = \"1\"} 1\n# EOF\n",
            "line 1, column 4: expected \"=\" after label name \"b\", found \" \"",
        ),
        (
            b"a{b=\"1\n\"} 1\n# EOF\n",
            "line 1, column 7: unterminated value of label \"b\": no closing quote before the end \
             of the line",
        ),
        (
            b"a 1 2 3\n# EOF\n",
            "line 1, column 6: expected an exemplar or the end of the line after the timestamp, \
             found \" \"",
        ),
        (
            b"a 1 # {\"t\"} 1\n# EOF\n",
            "line 1, column 8: expected \"=\" after exemplar label name \"t\", found \"}\"",
        ),
        (
            b"a 1 # {t=\"x\"}\n# EOF\n",
            "line 1, column 14: expected a space and a value after the exemplar labels, found \
             end of line",
        ),
        (
            b"a 1 # {t=\"x\"} 1 2 3\n# EOF\n",
            "line 1, column 18: expected the end of the line after the exemplar, found \" \"",
        ),
        (
            b"a 1 # {t=\"x\"} 1 NaN\n# EOF\n",
            "line 1, column 17: exemplar timestamp \"NaN\" is not a finite time in range",
        ),
        (
            b"a 1 # {t=\"x\"} x\n# EOF\n",
            "line 1, column 15: invalid number: exemplar value \"x\"",
        ),
        (
            b"a 1\r\n# EOF\n",
            "line 1, column 3: sample value \"1\\r\" ends in a carriage return (\\r): lines must \
             end with \\n alone",
        ),
        (
            b"# HELP a x\n# TYPE a gauge\na 1\n# EOF\r\n",
            "line 4, column 6: unexpected data after \"# EOF\"",
        ),
    ];
    for (input, expected) in cases {
        assert_eq!(
            om_error(input),
            *expected,
            "input {:?}",
            String::from_utf8_lossy(input)
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Escapes

#[test]
fn escapes_decode_as_prometheus_replacer_does() {
    let value = Escaped::new(r#"a\\b\"c\nd\te\\n\"#);
    assert_eq!(value.unescape(), "a\\b\"c\nd\\te\\n\\");
    assert!(value.unescaped_eq("a\\b\"c\nd\\te\\n\\"));
    assert!(!value.unescaped_eq("a\\b\"c\nd\\te\\n"));
    assert_eq!(value.to_string(), value.unescape());
    let help = Escaped::help(r#"a\\b\"c\n"#);
    assert_eq!(help.unescape(), "a\\b\\\"c\n");
    let plain = Escaped::new("plain");
    assert!(matches!(plain.unescape(), Cow::Borrowed("plain")));
    assert!(!plain.has_escapes());
    let mut out = String::new();
    value.unescape_into(&mut out);
    assert_eq!(out, value.unescape());
}

// ---------------------------------------------------------------------------------------------
// Properties

/// A metric family as a test writes it out and expects it back.
#[derive(Debug, Clone)]
struct TestSample {
    name: String,
    quoted_name: bool,
    labels: Vec<(String, String)>,
    value: f64,
    timestamp_ms: Option<i64>,
}

fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn format_value(value: f64) -> String {
    if value.is_nan() {
        "NaN".into()
    } else if value == f64::INFINITY {
        "+Inf".into()
    } else if value == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        // Rust's shortest round-trip formatting; `{:?}` keeps `-0.0` and uses exponents.
        format!("{value:?}")
    }
}

fn label_name() -> impl Strategy<Value = String> {
    "[a-zA-Z_][a-zA-Z0-9_]{0,12}"
}

fn label_value() -> impl Strategy<Value = String> {
    // Every escape, plus non-ASCII, NUL and blanks.
    proptest::collection::vec(
        prop_oneof![
            Just("\\".to_owned()),
            Just("\"".to_owned()),
            Just("\n".to_owned()),
            Just("\\n".to_owned()),
            Just(" ".to_owned()),
            Just("\t".to_owned()),
            Just("\0".to_owned()),
            Just("é€".to_owned()),
            Just("}".to_owned()),
            Just(",".to_owned()),
            Just("=".to_owned()),
            "[a-z0-9#]{1,4}",
        ],
        0..6,
    )
    .prop_map(|parts| parts.concat())
}

fn value() -> impl Strategy<Value = f64> {
    prop_oneof![
        Just(f64::NAN),
        Just(f64::INFINITY),
        Just(f64::NEG_INFINITY),
        Just(0.0),
        Just(-0.0),
        (0u64..1_000_000).prop_map(|v| v as f64),
        any::<f64>().prop_filter("finite", |v| v.is_finite()),
    ]
}

fn test_sample() -> impl Strategy<Value = TestSample> {
    (
        prop_oneof![
            "[a-zA-Z_:][a-zA-Z0-9_:]{0,20}".prop_map(|n| (n, false)),
            label_value().prop_map(|n| (n, true)),
        ],
        proptest::collection::vec((label_name(), label_value()), 0..5),
        value(),
        proptest::option::of(any::<i64>()),
    )
        .prop_map(
            |((name, quoted_name), labels, value, timestamp_ms)| TestSample {
                name,
                quoted_name,
                labels,
                value,
                timestamp_ms,
            },
        )
}

fn write_sample(out: &mut String, sample: &TestSample, openmetrics: bool) {
    let labels: Vec<String> = sample
        .labels
        .iter()
        .map(|(n, v)| format!("{n}=\"{}\"", escape(v)))
        .collect();
    if sample.quoted_name {
        out.push_str(&format!("{{\"{}\"", escape(&sample.name)));
        for label in &labels {
            out.push(',');
            out.push_str(label);
        }
        out.push('}');
    } else {
        out.push_str(&sample.name);
        if !labels.is_empty() {
            out.push_str(&format!("{{{}}}", labels.join(",")));
        }
    }
    out.push(' ');
    out.push_str(&format_value(sample.value));
    if let Some(ts) = sample.timestamp_ms {
        if openmetrics {
            out.push_str(&format!(" {}", om_timestamp(ts)));
        } else if ts >= 0 {
            out.push_str(&format!(" {ts}"));
        }
    }
    out.push('\n');
}

/// Milliseconds as OpenMetrics seconds, exact in decimal: seconds and three digits.
fn om_timestamp(ts: i64) -> String {
    let sign = if ts < 0 { "-" } else { "" };
    let abs = ts.unsigned_abs();
    format!("{sign}{}.{:03}", abs / 1000, abs % 1000)
}

fn expected(sample: &TestSample, openmetrics: bool) -> Flat {
    let value = if sample.value.is_nan() {
        f64::from_bits(NORMAL_NAN_BITS)
    } else {
        sample.value
    };
    let timestamp_ms = match sample.timestamp_ms {
        // What Prometheus stores: int64(seconds * 1000), truncated, which can be one
        // millisecond below what was written when the decimal seconds are not exact in binary.
        Some(ts) if openmetrics => {
            let seconds: f64 = om_timestamp(ts).parse().unwrap();
            Some((seconds * 1000.0) as i64)
        }
        Some(ts) if ts >= 0 => Some(ts),
        _ => None,
    };
    (
        sample.name.clone(),
        sample.labels.clone(),
        value.to_bits(),
        timestamp_ms,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn text_round_trips(family in proptest::collection::vec(test_sample(), 1..8),
                        help in label_value()) {
        let mut input = format!("# HELP fam {}\n# TYPE fam gauge\n",
            help.replace('\\', "\\\\").replace('\n', "\\n"));
        for sample in &family {
            write_sample(&mut input, sample, false);
        }
        let entries = TextParser::new(input.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| TestCaseError::fail(format!("{e}\n{input}")))?;
        let Entry::Help { text, .. } = entries[0] else { panic!() };
        // A help text's leading blanks are kept but the first is the separator, and an
        // all-blank one is empty, as in Prometheus.
        let expected_help = if help.chars().all(|c| c == ' ' || c == '\t') { String::new() } else { help.clone() };
        prop_assert_eq!(text.unescape(), expected_help);
        let got: Vec<Flat> = samples(&entries).iter().map(flat).collect();
        let want: Vec<Flat> = family.iter().map(|s| expected(s, false)).collect();
        prop_assert_eq!(got, want);
    }

    #[test]
    fn openmetrics_round_trips(family in proptest::collection::vec(test_sample(), 1..8)) {
        let mut input = String::from("# TYPE fam gauge\n");
        let family: Vec<TestSample> = family.into_iter().map(|mut s| {
            // Keep timestamps where seconds × 1000 stays within an i64.
            s.timestamp_ms = s.timestamp_ms.map(|ts| ts % 4_000_000_000_000_000);
            s
        }).collect();
        for sample in &family {
            write_sample(&mut input, sample, true);
        }
        input.push_str("# EOF\n");
        let entries = OpenMetricsParser::new(input.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| TestCaseError::fail(format!("{e}\n{input}")))?;
        let got: Vec<Flat> = samples(&entries).iter().map(flat).collect();
        let want: Vec<Flat> = family.iter().map(|s| expected(s, true)).collect();
        prop_assert_eq!(got, want);
    }

    #[test]
    fn arbitrary_bytes_never_panic(input in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = exercise(&input, false);
        let _ = exercise(&input, true);
    }

    #[test]
    fn mangled_expositions_never_panic(
        seed in proptest::collection::vec(test_sample(), 1..4),
        cut in any::<prop::sample::Index>(),
        byte in any::<u8>(),
    ) {
        let mut input = String::from("# HELP fam h\n# TYPE fam counter\n");
        for sample in &seed {
            write_sample(&mut input, sample, true);
        }
        input.push_str("# EOF\n");
        let mut bytes = input.into_bytes();
        let at = cut.index(bytes.len());
        // Flip one byte, then also try the prefix ending there.
        bytes[at] = byte;
        for openmetrics in [false, true] {
            let _ = exercise(&bytes, openmetrics);
            let _ = exercise(&bytes[..at], openmetrics);
        }
        // Errors always point inside the input.
        let errors = [TextParser::new(&bytes).find_map(Result::err),
                      OpenMetricsParser::new(&bytes).find_map(Result::err)];
        for error in errors.into_iter().flatten() {
            prop_assert!(error.offset <= bytes.len());
            prop_assert!(error.line >= 1 && error.column >= 1);
        }
    }
}
