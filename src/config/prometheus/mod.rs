//! The keys of `prometheus.yml`, as Prometheus 3.x documents them, with Prometheus's defaults
//! and checks. Keys for features Tocsin lacks (most service discovery, cloud authentication,
//! native histograms, tracing, OTLP) are refused as "not supported" rather than ignored.

/// Declares a unit enum read from and printed as fixed strings, with an error that quotes the
/// bad value and lists the accepted ones. `$what` names the key for the message.
macro_rules! string_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident { $( $variant:ident => $text:literal ),+ $(,)? } else $what:literal
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name { $( $variant ),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$( $name::$variant ),+];

            pub fn as_str(self) -> &'static str {
                match self { $( $name::$variant => $text ),+ }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = String::deserialize(deserializer)?;
                $name::ALL
                    .iter()
                    .copied()
                    .find(|value| value.as_str() == text)
                    .ok_or_else(|| {
                        let expected: Vec<&str> = $name::ALL.iter().map(|value| value.as_str()).collect();
                        serde::de::Error::custom(format!(
                            "unknown {} {:?} (expected one of {})",
                            $what,
                            text,
                            expected.join(", ")
                        ))
                    })
            }
        }
    };
}

mod alerting;
mod discovery;
mod global;
mod labels;
mod relabel;
mod remote;
mod rule_file;
mod scrape;
mod size;
mod storage;

#[cfg(test)]
mod fixture_tests;

pub use alerting::{AlertingConfig, AlertmanagerApiVersion, AlertmanagerConfig};
pub use discovery::{DnsRecordType, DnsSdConfig, FileSdConfig, HttpSdConfig, StaticConfig};
pub use global::{
    DEFAULT_EVALUATION_INTERVAL, DEFAULT_SCRAPE_INTERVAL, DEFAULT_SCRAPE_TIMEOUT, GlobalConfig,
};
pub use labels::{
    LabelSet, NameValidation, SpannedEntry, SpannedMap, expand_env, is_legacy_label_name,
    is_legacy_metric_name,
};
pub use relabel::{
    DEFAULT_REGEX, DEFAULT_REPLACEMENT, DEFAULT_SEPARATOR, RelabelAction, RelabelConfig,
    RelabelRegex,
};
pub use remote::{
    MetadataConfig, ProtobufMessage, QueueConfig, RemoteReadConfig, RemoteWriteConfig,
};
pub use rule_file::{Rule, RuleFile, RuleGroup, parse_rule_file};
pub use scrape::{DEFAULT_SCRAPE_PROTOCOLS, EscapingScheme, Scheme, ScrapeConfig, ScrapeProtocol};
pub use size::ByteSize;
pub use storage::{ExemplarsConfig, StorageConfig, TsdbConfig};

use super::{Config, Invalid, Position, Spanned};
use std::collections::HashMap;

/// Fills the defaults Prometheus derives from `global` and checks cross-key rules, in the order
/// Prometheus loads a config. External label values have environment variables expanded.
pub(super) fn finish(config: &mut Config) -> Result<(), Invalid> {
    finish_with_env(config, |name| std::env::var(name).ok())
}

/// [`finish`] with the environment given, so tests do not depend on the process's.
pub(super) fn finish_with_env(
    config: &mut Config,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<(), Invalid> {
    for pattern in &config.rule_files {
        check_file_pattern(pattern, "rule file")?;
    }
    for pattern in &config.scrape_config_files {
        check_file_pattern(pattern, "scrape config file")?;
    }
    config.global.finish(lookup)?;
    let names = config.global.name_validation();

    let mut jobs: HashMap<String, Position> = HashMap::new();
    for job in &mut config.scrape_configs {
        let at = Position::of(job);
        job.value.finish(&config.global, at)?;
        let name = &job.value.job_name;
        if let Some(first) = jobs.get(&name.value) {
            return Err(Invalid::on(
                name,
                format!(
                    "found multiple scrape configs with job name {:?} (first at line {})",
                    name.value, first.line
                ),
            ));
        }
        jobs.insert(name.value.clone(), Position::of(name));
    }

    config.alerting.validate(names)?;

    for remote in &config.remote_write {
        remote.value.validate(Position::of(remote), names)?;
    }
    remote::check_unique_names(
        config
            .remote_write
            .iter()
            .filter_map(|r| r.value.name.as_ref()),
        "remote write",
    )?;
    for remote in &config.remote_read {
        remote.value.validate(Position::of(remote))?;
    }
    remote::check_unique_names(
        config
            .remote_read
            .iter()
            .filter_map(|r| r.value.name.as_ref()),
        "remote read",
    )?;
    Ok(())
}

/// Prometheus's rule for `rule_files` and `scrape_config_files` globs: a `*` may appear only in
/// the last path element (`^[^*]*(\*[^/]*)?$`).
fn check_file_pattern(pattern: &Spanned<String>, what: &str) -> Result<(), Invalid> {
    let valid = match pattern.value.find('*') {
        None => true,
        Some(star) => !pattern.value[star + 1..].contains('/'),
    };
    if valid {
        Ok(())
    } else {
        Err(Invalid::on(
            pattern,
            format!(
                "invalid {what} path {:?}: a `*` may only appear in the last path element",
                pattern.value
            ),
        ))
    }
}

/// A file named by `scrape_config_files`: a document with only `scrape_configs`.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ScrapeConfigFile {
    #[serde(default)]
    scrape_configs: Vec<Spanned<ScrapeConfig>>,
}

/// Parses a `scrape_config_files` file and finishes its jobs with the main file's `global`, as
/// Prometheus does. Job names must not repeat any in `known_jobs` (which gains this file's).
pub fn parse_scrape_config_file(
    text: &str,
    file: &str,
    global: &GlobalConfig,
    known_jobs: &mut HashMap<String, String>,
) -> Result<Vec<Spanned<ScrapeConfig>>, super::ConfigError> {
    let mut document: ScrapeConfigFile = super::parse_document(text, file)?;
    for job in &mut document.scrape_configs {
        let at = Position::of(job);
        job.value
            .finish(global, at)
            .map_err(|invalid| invalid.in_file(file))?;
        let name = &job.value.job_name;
        let here = format!("{file}:{}", name.referenced.line());
        if let Some(first) = known_jobs.get(&name.value) {
            return Err(Invalid::on(
                name,
                format!(
                    "found multiple scrape configs with job name {:?} (first at {first})",
                    name.value
                ),
            )
            .in_file(file));
        }
        known_jobs.insert(name.value.clone(), here);
    }
    Ok(document.scrape_configs)
}
