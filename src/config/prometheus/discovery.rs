//! Target discovery Tocsin implements: `static_configs`, `file_sd_configs`, `http_sd_configs`
//! and `dns_sd_configs`. Every other Prometheus mechanism is refused as unsupported.

use super::labels::{LabelSet, NameValidation};
use super::relabel::RelabelConfig;
use crate::config::http_client::with_inline_http_client;
use crate::config::{Invalid, Position, PromDuration, Spanned};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// `<static_config>`: fixed targets and the labels they share. Also the shape of a target group
/// in a `file_sd` file.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StaticConfig {
    #[serde(default)]
    pub targets: Vec<Spanned<String>>,
    #[serde(default, skip_serializing_if = "LabelSet::is_empty")]
    pub labels: LabelSet,
}

impl StaticConfig {
    /// Target label names are checked with UTF-8 rules, as Prometheus does for target groups.
    /// Addresses are checked only when the job has no `relabel_configs`, because relabeling may
    /// turn a URL-looking target into an address (the blackbox exporter pattern).
    pub fn validate(&self, has_relabel_configs: bool) -> Result<(), Invalid> {
        for entry in self.labels.entries() {
            if !NameValidation::Utf8.is_valid_label_name(&entry.name.value) {
                return Err(Invalid::on(
                    &entry.name,
                    format!("labels: {:?} is not a valid label name", entry.name.value),
                ));
            }
        }
        for target in &self.targets {
            check_target_address(target, has_relabel_configs)?;
        }
        Ok(())
    }
}

/// A static target must be a `host` or `host:port`: Prometheus 3 refuses anything with a `/` (a
/// URL pasted as a target) unless relabeling may rewrite it.
fn check_target_address(
    target: &Spanned<String>,
    has_relabel_configs: bool,
) -> Result<(), Invalid> {
    let address = target.value.as_str();
    if address.is_empty() {
        return Err(Invalid::on(
            target,
            "targets: a target address must not be empty",
        ));
    }
    if has_relabel_configs {
        return Ok(());
    }
    let invalid = |why: &str| {
        Invalid::on(
            target,
            format!("targets: {address:?} is not a valid hostname: {why}"),
        )
    };
    if address.contains('/') {
        return Err(invalid(
            "expected host or host:port, not a URL (use scheme and metrics_path for the rest)",
        ));
    }
    if address.chars().any(char::is_whitespace) {
        return Err(invalid("it contains whitespace"));
    }
    let (host, port) =
        split_host_port(address).ok_or_else(|| invalid("expected host or host:port"))?;
    if host.is_empty() {
        return Err(invalid("the host is empty"));
    }
    if let Some(port) = port
        && port.parse::<u16>().is_err()
    {
        return Err(invalid("the port must be a number from 0 to 65535"));
    }
    Ok(())
}

/// `host`, `host:port`, `[v6]`, `[v6]:port`, or a bare IPv6 address.
fn split_host_port(address: &str) -> Option<(&str, Option<&str>)> {
    if let Some(rest) = address.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        return match after {
            "" => Some((host, None)),
            _ => Some((host, Some(after.strip_prefix(':')?))),
        };
    }
    match address.matches(':').count() {
        0 => Some((address, None)),
        1 => address
            .split_once(':')
            .map(|(host, port)| (host, Some(port))),
        // Several colons without brackets: an IPv6 address with no port.
        _ => address
            .parse::<std::net::Ipv6Addr>()
            .ok()
            .map(|_| (address, None)),
    }
}

fn default_file_refresh_interval() -> PromDuration {
    PromDuration::from_secs(5 * 60)
}

/// `<file_sd_config>`: targets read from JSON or YAML files, re-read on change and every
/// `refresh_interval`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FileSdConfig {
    #[serde(default)]
    pub files: Vec<Spanned<String>>,
    #[serde(default = "default_file_refresh_interval")]
    pub refresh_interval: PromDuration,
}

impl FileSdConfig {
    pub fn validate(&self, at: Position) -> Result<(), Invalid> {
        if self.files.is_empty() {
            return Err(Invalid::at(
                at,
                "file_sd_configs: files must contain at least one path",
            ));
        }
        for file in &self.files {
            if !is_valid_file_sd_path(&file.value) {
                return Err(Invalid::on(
                    file,
                    format!(
                        "file_sd_configs: path {:?} is not valid for file discovery: it must end in .json, .yml or .yaml, with a `*` only in the last path element",
                        file.value
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// Prometheus's `^[^*]*(\*[^/]*)?\.(json|yml|yaml|JSON|YML|YAML)$`.
fn is_valid_file_sd_path(path: &str) -> bool {
    let Some((stem, extension)) = path.rsplit_once('.') else {
        return false;
    };
    if !matches!(extension, "json" | "yml" | "yaml" | "JSON" | "YML" | "YAML") {
        return false;
    }
    match stem.find('*') {
        None => true,
        Some(star) => !stem[star + 1..].contains('/'),
    }
}

fn default_http_refresh_interval() -> PromDuration {
    PromDuration::from_secs(60)
}

with_inline_http_client! {
    /// `<http_sd_config>`: targets fetched as JSON from an HTTP endpoint.
    #[derive(Debug, Clone, Deserialize, Serialize)]
    #[serde(deny_unknown_fields)]
    pub struct HttpSdConfig {
        pub url: Spanned<String>,
        #[serde(default = "default_http_refresh_interval")]
        pub refresh_interval: PromDuration,
    }
}

impl HttpSdConfig {
    pub fn validate(&self, at: Position) -> Result<(), Invalid> {
        check_http_url(&self.url, "http_sd_configs: url")?;
        self.http_client().validate(at)
    }
}

/// A URL that must be absolute `http` or `https` with a host. `key` names it in messages.
pub(super) fn check_http_url(url: &Spanned<String>, key: &str) -> Result<url::Url, Invalid> {
    if url.value.is_empty() {
        return Err(Invalid::on(url, format!("{key} must not be empty")));
    }
    let parsed = url::Url::parse(&url.value).map_err(|error| {
        Invalid::on(url, format!("{key}: invalid URL {:?}: {error}", url.value))
    })?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(Invalid::on(
            url,
            format!(
                "{key}: URL scheme must be 'http' or 'https', not {:?}",
                parsed.scheme()
            ),
        ));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(Invalid::on(url, format!("{key}: host is missing in URL")));
    }
    Ok(parsed)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DnsRecordType {
    #[default]
    Srv,
    A,
    Aaaa,
    Mx,
    Ns,
}

impl DnsRecordType {
    pub fn as_str(self) -> &'static str {
        match self {
            DnsRecordType::Srv => "SRV",
            DnsRecordType::A => "A",
            DnsRecordType::Aaaa => "AAAA",
            DnsRecordType::Mx => "MX",
            DnsRecordType::Ns => "NS",
        }
    }
}

impl Serialize for DnsRecordType {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for DnsRecordType {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        // Prometheus compares the type case-insensitively.
        match text.to_ascii_uppercase().as_str() {
            "SRV" => Ok(DnsRecordType::Srv),
            "A" => Ok(DnsRecordType::A),
            "AAAA" => Ok(DnsRecordType::Aaaa),
            "MX" => Ok(DnsRecordType::Mx),
            "NS" => Ok(DnsRecordType::Ns),
            _ => Err(serde::de::Error::custom(format!(
                "invalid DNS-SD record type {text:?} (expected SRV, A, AAAA, MX or NS)"
            ))),
        }
    }
}

fn default_dns_refresh_interval() -> PromDuration {
    PromDuration::from_secs(30)
}

fn is_zero_port(port: &u16) -> bool {
    *port == 0
}

/// `<dns_sd_config>`: targets from DNS records, re-resolved every `refresh_interval`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DnsSdConfig {
    #[serde(default)]
    pub names: Vec<Spanned<String>>,
    #[serde(default, rename = "type")]
    pub record_type: DnsRecordType,
    /// The port for every address found; SRV records carry their own and ignore it.
    #[serde(default, skip_serializing_if = "is_zero_port")]
    pub port: u16,
    #[serde(default = "default_dns_refresh_interval")]
    pub refresh_interval: PromDuration,
}

impl DnsSdConfig {
    pub fn validate(&self, at: Position) -> Result<(), Invalid> {
        if self.names.is_empty() {
            return Err(Invalid::at(
                at,
                "dns_sd_configs: names must contain at least one DNS name",
            ));
        }
        if let Some(empty) = self.names.iter().find(|name| name.value.is_empty()) {
            return Err(Invalid::on(
                empty,
                "dns_sd_configs: a name must not be empty",
            ));
        }
        if self.record_type != DnsRecordType::Srv && self.port == 0 {
            return Err(Invalid::at(
                at,
                format!(
                    "dns_sd_configs: a port is required for {} records (only SRV records carry their own)",
                    self.record_type.as_str()
                ),
            ));
        }
        Ok(())
    }
}

/// Checks the discovery lists a scrape job or an Alertmanager section carries.
pub(super) fn validate_discovery(
    static_configs: &[Spanned<StaticConfig>],
    file_sd_configs: &[Spanned<FileSdConfig>],
    http_sd_configs: &[Spanned<HttpSdConfig>],
    dns_sd_configs: &[Spanned<DnsSdConfig>],
    relabel_configs: &[Spanned<RelabelConfig>],
) -> Result<(), Invalid> {
    for config in static_configs {
        config.value.validate(!relabel_configs.is_empty())?;
    }
    for config in file_sd_configs {
        config.value.validate(Position::of(config))?;
    }
    for config in http_sd_configs {
        config.value.validate(Position::of(config))?;
    }
    for config in dns_sd_configs {
        config.value.validate(Position::of(config))?;
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::config::parse_document;
    use proptest::prelude::*;

    fn target(address: &str, relabeled: bool) -> Result<(), String> {
        let spanned = Spanned::new(
            address.to_string(),
            serde_saphyr::Location::UNKNOWN,
            serde_saphyr::Location::UNKNOWN,
        );
        check_target_address(&spanned, relabeled).map_err(|invalid| invalid.message)
    }

    #[test]
    fn target_addresses() {
        for good in [
            "localhost:9090",
            "localhost",
            "10.0.0.1:9100",
            "[::1]:9090",
            "::1",
            "[fe80::1]",
            "node-exporter.svc:9100",
        ] {
            target(good, false).unwrap();
        }
        assert_eq!(
            target("http://x:9090/metrics", false).unwrap_err(),
            "targets: \"http://x:9090/metrics\" is not a valid hostname: expected host or host:port, not a URL (use scheme and metrics_path for the rest)"
        );
        target("https://example.com", true).unwrap();
        assert!(target("", true).unwrap_err().contains("must not be empty"));
        assert!(
            target("host:port", false)
                .unwrap_err()
                .contains("port must be a number")
        );
        assert!(
            target(":9090", false)
                .unwrap_err()
                .contains("host is empty")
        );
        assert!(target("a b:1", false).unwrap_err().contains("whitespace"));
        assert!(target("[::1]9090", false).is_err());
    }

    #[test]
    fn file_sd_paths() {
        for good in [
            "targets.json",
            "sd/*.yml",
            "/etc/prometheus/nodes-*.yaml",
            "A.JSON",
            "a*b*.json",
        ] {
            assert!(is_valid_file_sd_path(good), "{good}");
        }
        for bad in ["targets.txt", "targets", "*/x.json", "x.json.bak"] {
            assert!(!is_valid_file_sd_path(bad), "{bad}");
        }
    }

    #[test]
    fn dns_sd_defaults_and_rules() {
        let config: Spanned<DnsSdConfig> =
            parse_document("names: [_prometheus._tcp.example.org]\n", "d.yml").unwrap();
        assert_eq!(config.value.record_type, DnsRecordType::Srv);
        assert_eq!(config.value.refresh_interval, PromDuration::from_secs(30));
        config.value.validate(Position::of(&config)).unwrap();
        let config: Spanned<DnsSdConfig> =
            parse_document("names: [db.example.org]\ntype: aaaa\n", "d.yml").unwrap();
        assert_eq!(
            config
                .value
                .validate(Position::of(&config))
                .unwrap_err()
                .message,
            "dns_sd_configs: a port is required for AAAA records (only SRV records carry their own)"
        );
        let error = parse_document::<DnsSdConfig>("names: [x]\ntype: TXT\n", "d.yml").unwrap_err();
        assert_eq!(
            error.to_string(),
            "d.yml:2:7: invalid DNS-SD record type \"TXT\" (expected SRV, A, AAAA, MX or NS)"
        );
    }

    #[test]
    fn http_sd_url_rules() {
        let check = |yaml: &str| {
            let config: Spanned<HttpSdConfig> = parse_document(yaml, "h.yml").unwrap();
            config
                .value
                .validate(Position::of(&config))
                .map_err(|invalid| invalid.in_file("h.yml").to_string())
        };
        check("url: http://sd.example.org/targets\n").unwrap();
        assert_eq!(
            check("url: ftp://sd.example.org/\n").unwrap_err(),
            "h.yml:1:6: http_sd_configs: url: URL scheme must be 'http' or 'https', not \"ftp\""
        );
        assert!(
            check("url: not a url\n")
                .unwrap_err()
                .starts_with("h.yml:1:6: http_sd_configs: url: invalid URL \"not a url\"")
        );
        let missing =
            parse_document::<HttpSdConfig>("refresh_interval: 1m\n", "h.yml").unwrap_err();
        assert!(
            missing.to_string().contains("missing field `url`"),
            "{missing}"
        );
    }

    proptest! {
        #[test]
        fn host_port_targets_are_accepted(host in "[a-z][a-z0-9.-]{0,20}", port in 0u16..) {
            let address = format!("{host}:{port}");
            prop_assert!(target(&address, false).is_ok());
        }

        #[test]
        fn arbitrary_targets_never_panic(address in "\\PC{0,24}") {
            let _ = target(&address, false);
        }
    }
}
