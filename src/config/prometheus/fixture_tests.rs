//! Data-driven tests over the config files in `tests/config/prometheus/`: real-world style
//! configs that must load, and broken ones whose exact message and position are asserted.

#![allow(clippy::unwrap_used)]

use super::*;
use crate::config::{Config, PromDuration, load_file, parse_document, to_yaml};
use std::path::{Path, PathBuf};

fn fixture(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/config/prometheus")
        .join(relative)
}

/// Parses and finishes a config file the way `load_file` does, without reading what it
/// references; errors are rendered with the file's short name.
fn load(relative: &str) -> Result<Config, String> {
    let text = std::fs::read_to_string(fixture(relative)).unwrap();
    let name = Path::new(relative).file_name().unwrap().to_string_lossy();
    let mut config: Config = parse_document(&text, &name).map_err(|error| error.to_string())?;
    finish_with_env(&mut config, |_| None).map_err(|invalid| invalid.in_file(&name).to_string())?;
    Ok(config)
}

fn rule_file(relative: &str) -> Result<RuleFile, String> {
    let text = std::fs::read_to_string(fixture(relative)).unwrap();
    let name = Path::new(relative).file_name().unwrap().to_string_lossy();
    parse_rule_file(&text, &name).map_err(|error| error.to_string())
}

#[test]
fn typical_config_loads_with_prometheus_defaults() {
    let config = load("valid/prometheus.yml").unwrap();
    assert_eq!(config.global.scrape_interval(), PromDuration::from_secs(15));
    assert_eq!(config.global.scrape_timeout(), PromDuration::from_secs(10));
    assert_eq!(
        config.global.evaluation_interval(),
        PromDuration::from_secs(30)
    );
    assert_eq!(config.global.external_labels.get("replica"), Some("0"));

    let jobs: Vec<&str> = config
        .scrape_configs
        .iter()
        .map(|j| j.value.job_name())
        .collect();
    assert_eq!(jobs, ["prometheus", "node", "blackbox-http", "api"]);
    let prometheus = &config.scrape_configs[0].value;
    assert_eq!(prometheus.scrape_interval(), PromDuration::from_secs(15));
    assert_eq!(prometheus.scrape_timeout(), PromDuration::from_secs(10));
    assert_eq!(prometheus.sample_limit, 50_000);
    assert_eq!(prometheus.body_size_limit, ByteSize::from_bytes(50 << 20));
    let node = &config.scrape_configs[1].value;
    assert_eq!(node.scrape_interval(), PromDuration::from_secs(30));
    assert_eq!(node.scrape_timeout(), PromDuration::from_secs(20));
    assert_eq!(
        node.relabel_configs[1].value.action,
        RelabelAction::LabelMap
    );
    assert_eq!(
        node.file_sd_configs[0].value.refresh_interval,
        PromDuration::from_secs(60)
    );
    let blackbox = &config.scrape_configs[2].value;
    assert_eq!(blackbox.params["module"], ["http_2xx"]);
    assert_eq!(
        blackbox.static_configs[0].value.labels.get("team"),
        Some("web")
    );
    let api = &config.scrape_configs[3].value;
    assert_eq!(api.scheme, Scheme::Https);
    assert_eq!(
        api.scrape_protocols(),
        [
            ScrapeProtocol::PrometheusText0_0_4,
            ScrapeProtocol::OpenMetricsText1_0_0
        ]
    );
    assert_eq!(api.dns_sd_configs[1].value.record_type, DnsRecordType::A);
    assert_eq!(
        api.http_sd_configs[0].value.refresh_interval,
        PromDuration::from_secs(120)
    );

    let alertmanager = &config.alerting.alertmanagers[0].value;
    assert_eq!(alertmanager.timeout.value, PromDuration::from_secs(5));
    assert_eq!(alertmanager.path_prefix, "/alertmanager");

    let remote = &config.remote_write[0].value;
    assert_eq!(remote.queue_config.max_shards, 10);
    assert_eq!(remote.queue_config.min_shards, 1);
    assert!(remote.queue_config.retry_on_http_429);
    assert_eq!(
        remote.metadata_config.send_interval,
        PromDuration::from_secs(120)
    );
    assert_eq!(
        config.remote_read[0].value.remote_timeout,
        PromDuration::from_secs(60)
    );
    assert_eq!(
        config.storage.tsdb.out_of_order_time_window,
        PromDuration::from_secs(600)
    );
    assert_eq!(config.storage.exemplars.max_exemplars, 50_000);
}

#[test]
fn minimal_config_gets_every_default() {
    let config = load("valid/minimal.yml").unwrap();
    let job = &config.scrape_configs[0].value;
    assert_eq!(job.scrape_interval(), PromDuration::from_secs(60));
    assert_eq!(job.scrape_timeout(), PromDuration::from_secs(10));
    assert_eq!(job.metrics_path, "/metrics");
    assert!(job.honor_timestamps && job.enable_compression);
    assert_eq!(job.scrape_protocols(), DEFAULT_SCRAPE_PROTOCOLS);
    assert!(config.alerting.is_empty());
    assert_eq!(config.storage.exemplars.max_exemplars, 100_000);
}

#[test]
fn printing_is_readable_and_hides_secrets() {
    let config = load("valid/prometheus.yml").unwrap();
    let printed = to_yaml(&config);
    for expected in [
        "scrape_interval: 15s",
        "evaluation_interval: 30s",
        "body_size_limit: 50MiB",
        "job_name: blackbox-http",
        "regex: (.*)",
        "separator: ;",
        "action: labelmap",
        "out_of_order_time_window: 10m",
        "protobuf_message: prometheus.WriteRequest",
        "- OpenMetricsText1.0.0",
        "password: <secret>",
        "credentials: <secret>",
    ] {
        assert!(
            printed.contains(expected),
            "{expected:?} missing from:\n{printed}"
        );
    }
    assert!(!printed.contains("hunter2"), "{printed}");
    assert!(!printed.contains("s3cr3t-token"), "{printed}");

    // What is printed loads again to the same values.
    let mut reloaded: Config = parse_document(&printed, "printed.yml").unwrap();
    finish_with_env(&mut reloaded, |_| None).unwrap();
    assert_eq!(to_yaml(&reloaded), printed);
}

#[test]
fn load_file_reads_the_rule_files() {
    let loaded = load_file(&fixture("valid/prometheus.yml")).unwrap();
    assert_eq!(loaded.rule_files.len(), 1);
    let (_, rules) = &loaded.rule_files[0];
    let names: Vec<&str> = rules
        .groups
        .iter()
        .map(|g| g.value.name.value.as_str())
        .collect();
    assert_eq!(names, ["node", "disk"]);
    let disk = &rules.groups[1].value;
    assert_eq!(disk.limit, 100);
    assert_eq!(disk.query_offset, Some(PromDuration::from_secs(30)));
    assert_eq!(disk.labels.get("team"), Some("storage"));
}

#[test]
fn load_file_reports_a_bad_rule_file_with_its_position() {
    let errors = load_file(&fixture("invalid_rules/config_with_bad_rules.yml")).unwrap_err();
    let path = fixture("invalid_rules/bad_expr.yml");
    assert_eq!(
        errors.to_string(),
        format!(
            "{}:5:15: group \"api\", rule 1, \"HighErrorRate\": could not parse expression: unclosed left parenthesis",
            path.display()
        )
    );
}

#[test]
fn broken_configs_say_what_and_where() {
    let cases = [
        (
            "invalid/wrong_type.yml",
            "wrong_type.yml:5:19: sample_limit: expected a whole number, 0 or more, found \"lots\"",
        ),
        (
            "invalid/unknown_key.yml",
            "unknown_key.yml:3:5: unknown field `scrape_intervl`, expected one of job_name, scrape_interval, scrape_timeout, scrape_protocols, fallback_scrape_protocol, metrics_path, honor_labels, honor_timestamps, track_timestamps_staleness, scheme, params, enable_compression, body_size_limit, sample_limit, target_limit, label_limit, label_name_length_limit, label_value_length_limit, keep_dropped_targets, metric_name_validation_scheme, metric_name_escaping_scheme, static_configs, file_sd_configs, http_sd_configs, dns_sd_configs, relabel_configs, metric_relabel_configs, basic_auth, authorization, bearer_token, bearer_token_file, tls_config, proxy_url, no_proxy, proxy_from_environment, proxy_connect_header, follow_redirects, enable_http2",
        ),
        (
            "invalid/unsupported_sd.yml",
            "unsupported_sd.yml:3:5: `kubernetes_sd_configs` is not supported by Tocsin",
        ),
        (
            "invalid/bad_duration.yml",
            "bad_duration.yml:2:20: not a valid duration string: \"1h 30m\" (expected e.g. 30s, 5m, 1h30m; units y w d h m s ms, in that order, whole numbers)",
        ),
        (
            "invalid/bad_regex.yml",
            "bad_regex.yml:7:16: invalid regular expression \"node_(cpu|memory\": unclosed group",
        ),
        (
            "invalid/duplicate_job.yml",
            "duplicate_job.yml:8:15: found multiple scrape configs with job name \"node\" (first at line 2)",
        ),
        (
            "invalid/timeout_above_interval.yml",
            "timeout_above_interval.yml:5:21: scrape_timeout (30s) is greater than scrape_interval (10s) for job \"slow\"",
        ),
        (
            "invalid/replace_without_target.yml",
            "replace_without_target.yml:6:9: relabel configuration for replace action requires 'target_label' value",
        ),
        (
            "invalid/hashmod_without_modulus.yml",
            "hashmod_without_modulus.yml:6:9: relabel configuration for hashmod action requires a non-zero 'modulus'",
        ),
        (
            "invalid/keepequal_with_regex.yml",
            "keepequal_with_regex.yml:4:9: keepequal action requires only 'source_labels' and 'target_label', and no other fields",
        ),
        (
            "invalid/url_as_target.yml",
            "url_as_target.yml:6:13: targets: \"http://web-2:8080/metrics\" is not a valid hostname: expected host or host:port, not a URL (use scheme and metrics_path for the rest)",
        ),
        (
            "invalid/remote_write_url.yml",
            "remote_write_url.yml:2:10: remote_write: url: invalid URL \"metrics.example.org/push\": relative URL without a base",
        ),
        (
            "invalid/duplicate_remote_write_name.yml",
            "duplicate_remote_write_name.yml:5:11: found multiple remote write configs with name \"central\"",
        ),
        (
            "invalid/alertmanager_v1.yml",
            "alertmanager_v1.yml:3:20: api_version v1 is no longer supported (Prometheus 3 removed it); use v2",
        ),
        (
            "invalid/file_sd_extension.yml",
            "file_sd_extension.yml:4:17: file_sd_configs: path \"targets/nodes.txt\" is not valid for file discovery: it must end in .json, .yml or .yaml, with a `*` only in the last path element",
        ),
        (
            "invalid/dns_sd_port.yml",
            "dns_sd_port.yml:4:9: dns_sd_configs: a port is required for A records (only SRV records carry their own)",
        ),
        (
            "invalid/bad_body_size.yml",
            "bad_body_size.yml:2:20: invalid size \"10 megabytes\": unknown unit \" megabytes\" (units B, KB, MB, GB, TB, PB, EB)",
        ),
        (
            "invalid/bad_scrape_protocol.yml",
            "bad_scrape_protocol.yml:3:24: unknown scrape protocol \"OpenMetrics\" (expected one of PrometheusProto, PrometheusText0.0.4, PrometheusText1.0.0, OpenMetricsText0.0.1, OpenMetricsText1.0.0)",
        ),
        (
            "invalid/bad_rule_glob.yml",
            "bad_rule_glob.yml:2:5: invalid rule file path \"rules/*/alerts.yml\": a `*` may only appear in the last path element",
        ),
    ];
    let mut failures = Vec::new();
    for (file, expected) in cases {
        match load(file) {
            Ok(_) => failures.push(format!("{file}: loaded, expected {expected:?}")),
            Err(actual) if actual != expected => failures.push(format!(
                "{file}:\n  expected {expected:?}\n  actual   {actual:?}"
            )),
            Err(_) => {}
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn broken_rule_files_say_what_and_where() {
    let cases = [
        (
            "invalid_rules/bad_expr.yml",
            "bad_expr.yml:5:15: group \"api\", rule 1, \"HighErrorRate\": could not parse expression: unclosed left parenthesis",
        ),
        (
            "invalid_rules/record_and_alert.yml",
            "record_and_alert.yml:5:16: group \"api\", rule 1, \"HighErrors\": only one of 'record' and 'alert' must be set",
        ),
        (
            "invalid_rules/duplicate_group.yml",
            "duplicate_group.yml:4:11: group name \"api\" is repeated in the same file",
        ),
        (
            "invalid_rules/annotations_on_record.yml",
            "annotations_on_record.yml:7:11: group \"api\", rule 1, \"job:errors:rate5m\": invalid field 'annotations' in recording rule",
        ),
        (
            "invalid_rules/bad_rule_duration.yml",
            "bad_rule_duration.yml:6:14: not a valid duration string: \"5 minutes\" (expected e.g. 30s, 5m, 1h30m; units y w d h m s ms, in that order, whole numbers)",
        ),
    ];
    let mut failures = Vec::new();
    for (file, expected) in cases {
        match rule_file(file) {
            Ok(_) => failures.push(format!("{file}: loaded, expected {expected:?}")),
            Err(actual) if actual != expected => failures.push(format!(
                "{file}:\n  expected {expected:?}\n  actual   {actual:?}"
            )),
            Err(_) => {}
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
