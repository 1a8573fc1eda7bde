//! The configuration a node runs without `--config.file`: `src/config/default.yml` plus the
//! built-in self-monitoring rules of `src/config/default_rules.yml`, both compiled into the
//! binary so that `tocsin` with no arguments needs nothing else.
//!
//! Two things depend on the command line and are applied here: the self-scrape job's target
//! follows `--web.listen-address` (a node told to listen on 9191 must not scrape 9090, where
//! another program may listen), and its metrics path follows the prefix of `--web.external-url`.

use crate::config::prometheus::parse_rule_file;
use crate::config::{self, LoadErrors, LoadedConfig};
use std::path::{Path, PathBuf};

/// The configuration Tocsin runs with when no `--config.file` is given.
pub const EMBEDDED_CONFIG: &str = include_str!("../config/default.yml");
pub const EMBEDDED_CONFIG_NAME: &str = "<embedded default>";

/// The rules every node running the embedded configuration evaluates.
pub const EMBEDDED_RULES: &str = include_str!("../config/default_rules.yml");
/// How the built-in rule file is named in `/api/v1/rules` and in errors.
pub const EMBEDDED_RULES_NAME: &str = "<embedded default>/default_rules.yml";

/// The self-scrape target and metrics path as `default.yml` writes them, replaced by what the
/// command line says.
const DEFAULT_TARGET: &str = "'localhost:9090'";
const DEFAULT_METRICS_PATH: &str = "metrics_path: /metrics";
const SELF_JOB: &str = "tocsin";

/// The embedded configuration with its built-in rules, for a node listening on
/// `listen_address` (as `--web.listen-address` gives it) under `external_url` (the flag, if
/// given).
pub fn load(listen_address: &str, external_url: Option<&str>) -> Result<LoadedConfig, LoadErrors> {
    let self_target = self_scrape_target(listen_address);
    let text = EMBEDDED_CONFIG.replace(
        DEFAULT_TARGET,
        &format!("'{}'", self_target.as_deref().unwrap_or("localhost:9090")),
    );
    let text = text.replace(
        DEFAULT_METRICS_PATH,
        &format!("metrics_path: {}", metrics_path(external_url)),
    );
    let mut loaded = config::load_text(&text, EMBEDDED_CONFIG_NAME, Path::new("."))?;
    if self_target.is_none() {
        loaded
            .config
            .scrape_configs
            .retain(|job| job.value.job_name.value != SELF_JOB);
    }
    let rules = parse_rule_file(EMBEDDED_RULES, EMBEDDED_RULES_NAME)?;
    loaded
        .rule_files
        .push((PathBuf::from(EMBEDDED_RULES_NAME), rules));
    Ok(loaded)
}

/// Where the node's own `/metrics` is reached from the node: the listen address, with an
/// any-interface host (`:9090`, `0.0.0.0`, `[::]`) made `localhost`. `None` for port 0 (the
/// port is chosen when binding, after the configuration is loaded) or an address that does not
/// end in a port.
fn self_scrape_target(listen_address: &str) -> Option<String> {
    let (host, port) = listen_address.rsplit_once(':')?;
    let port: u16 = port.parse().ok()?;
    if port == 0 {
        return None;
    }
    let host = match host {
        "" | "0.0.0.0" | "[::]" => "localhost",
        other => other,
    };
    Some(format!("{host}:{port}"))
}

/// `/metrics` under the route prefix `--web.external-url` sets. An invalid URL is reported by
/// the node when it builds its external URL; here it just leaves the default.
fn metrics_path(external_url: Option<&str>) -> String {
    let prefix = external_url
        .and_then(|text| url::Url::parse(text).ok())
        .map(|url| super::route_prefix(&url))
        .unwrap_or_default();
    format!("{prefix}/metrics")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn self_job(loaded: &LoadedConfig) -> Option<&crate::config::prometheus::ScrapeConfig> {
        loaded
            .config
            .scrape_configs
            .iter()
            .map(|job| &job.value)
            .find(|job| job.job_name.value == SELF_JOB)
    }

    #[test]
    fn targets_follow_the_listen_address() {
        assert_eq!(
            self_scrape_target("0.0.0.0:9090").as_deref(),
            Some("localhost:9090")
        );
        assert_eq!(
            self_scrape_target(":9191").as_deref(),
            Some("localhost:9191")
        );
        assert_eq!(
            self_scrape_target("[::]:9090").as_deref(),
            Some("localhost:9090")
        );
        assert_eq!(
            self_scrape_target("127.0.0.2:9000").as_deref(),
            Some("127.0.0.2:9000")
        );
        assert_eq!(self_scrape_target("127.0.0.1:0"), None);
        assert_eq!(self_scrape_target("no-port"), None);
    }

    #[test]
    fn metrics_path_follows_the_route_prefix() {
        assert_eq!(metrics_path(None), "/metrics");
        assert_eq!(metrics_path(Some("http://example.org/")), "/metrics");
        assert_eq!(
            metrics_path(Some("http://example.org/tocsin/")),
            "/tocsin/metrics"
        );
    }

    #[test]
    fn the_default_scrapes_itself_routes_to_the_log_and_has_the_built_in_rules() {
        let loaded = load("0.0.0.0:9090", None).unwrap();
        let job = self_job(&loaded).expect("the self-scrape job");
        let shown = crate::config::to_yaml(job);
        assert!(shown.contains("localhost:9090"), "{shown}");
        assert!(shown.contains("/metrics"), "{shown}");

        let receiver = &loaded.alertmanager.receivers[0].value;
        let route_receiver = loaded.alertmanager.route.value.receiver.as_ref();
        assert_eq!(route_receiver.map(|r| r.value.as_str()), Some("default"));
        assert_eq!(receiver.log_configs.len(), 1);

        let (path, rules) = loaded.rule_files.last().unwrap();
        assert_eq!(path, Path::new(EMBEDDED_RULES_NAME));
        let names: Vec<&str> = rules
            .groups
            .iter()
            .map(|g| g.value.name.value.as_str())
            .collect();
        assert_eq!(names, ["tocsin-self-monitoring"]);
    }

    #[test]
    fn port_zero_leaves_the_self_scrape_job_out_but_keeps_the_rules() {
        let loaded = load("127.0.0.1:0", None).unwrap();
        assert!(self_job(&loaded).is_none());
        assert_eq!(loaded.rule_files.len(), 1);
    }

    #[test]
    fn another_port_and_a_prefix_are_scraped_there() {
        let loaded = load("127.0.0.1:9191", Some("http://h:9191/tocsin")).unwrap();
        let shown = crate::config::to_yaml(self_job(&loaded).unwrap());
        assert!(shown.contains("127.0.0.1:9191"), "{shown}");
        assert!(shown.contains("/tocsin/metrics"), "{shown}");
    }
}
