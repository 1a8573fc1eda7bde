//! The node's command-line options, as the library sees them.

use anyhow::Context as _;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;
use tocsin_mesh::ClusterSettings;

/// Everything `tocsin` (without a subcommand) was started with.
#[derive(Debug, Clone)]
pub struct NodeOptions {
    pub config_file: Option<PathBuf>,
    pub storage_path: PathBuf,
    pub web_listen_address: String,
    pub web_external_url: Option<String>,
    pub cluster: ClusterFlags,
    /// `--storage.tsdb.retention.time`, milliseconds (`None`: not given).
    pub tsdb_retention_time_ms: Option<i64>,
    /// `--storage.tsdb.retention` (deprecated), milliseconds.
    pub tsdb_deprecated_retention_ms: Option<i64>,
    /// `--storage.tsdb.retention.size`, bytes.
    pub tsdb_retention_size_bytes: Option<u64>,
    /// `--web.enable-admin-api`: the `/api/v1/admin/tsdb/*` endpoints answer.
    pub web_enable_admin_api: bool,
    /// The `--rules.*` flags.
    pub rules: super::rules::RulesFlags,
    /// The `--alertmanager.*` flags: the notifier's queue.
    pub notifier: super::notifier::NotifierSettings,
    /// The `--storage.remote.read-*` flags: limits of `POST /api/v1/read`.
    pub remote_read: crate::api::remote_read::ReadLimits,
    /// The `--query.*` flags, and the slots bounding concurrent API queries.
    pub query: crate::promql::limits::QuerySettings,
    /// Every flag and its value as text, for `/api/v1/status/flags`.
    pub flags: BTreeMap<String, String>,
}

impl NodeOptions {
    /// Options as a test or embedding program wants them: embedded config, given folders.
    pub fn new(storage_path: PathBuf, web_listen_address: String) -> NodeOptions {
        NodeOptions {
            config_file: None,
            storage_path,
            web_listen_address,
            web_external_url: None,
            cluster: ClusterFlags::default(),
            tsdb_retention_time_ms: None,
            tsdb_deprecated_retention_ms: None,
            tsdb_retention_size_bytes: None,
            web_enable_admin_api: false,
            rules: super::rules::RulesFlags::default(),
            notifier: super::notifier::NotifierSettings::default(),
            remote_read: crate::api::remote_read::ReadLimits::default(),
            query: crate::promql::limits::QuerySettings::default(),
            flags: BTreeMap::new(),
        }
    }
}

/// The `--cluster.*` flags; `None` (or empty) means "not given", so the config file decides.
#[derive(Debug, Clone, Default)]
pub struct ClusterFlags {
    pub listen_address: Option<String>,
    pub advertise_address: Option<String>,
    pub peers: Vec<String>,
    pub name: Option<String>,
    pub node_name: Option<String>,
    pub tls_dir: Option<PathBuf>,
    pub peer_timeout: Option<Duration>,
    /// `--cluster.insecure`: no certificates, no authentication.
    pub insecure: bool,
}

impl ClusterFlags {
    /// Writes the flags that were given into `settings`; the message names the bad flag.
    pub fn apply_to(&self, settings: &mut ClusterSettings) -> Result<(), String> {
        let parse = |flag: &str, value: &str| {
            value
                .parse::<SocketAddr>()
                .map_err(|_| format!("--{flag}: invalid address {value:?}: expected ip:port"))
        };
        if let Some(listen) = &self.listen_address {
            settings.listen_address = if listen.is_empty() {
                None
            } else {
                Some(parse("cluster.listen-address", listen)?)
            };
        }
        if let Some(advertise) = &self.advertise_address {
            settings.advertise_address = Some(parse("cluster.advertise-address", advertise)?);
        }
        if !self.peers.is_empty() {
            for peer in &self.peers {
                tocsin_mesh::validate_peer_address(peer).map_err(|error| format!("--{error}"))?;
            }
            settings.peers = self.peers.clone();
        }
        if let Some(name) = &self.name {
            settings.cluster_name = name.clone();
        }
        if let Some(node_name) = &self.node_name {
            settings.node_name = node_name.clone();
        }
        if let Some(tls_dir) = &self.tls_dir {
            settings.tls_dir = tls_dir.clone();
        }
        if let Some(timeout) = self.peer_timeout {
            settings.peer_timeout = timeout;
        }
        Ok(())
    }
}

/// `:9090` (Go's way of saying all interfaces) becomes `0.0.0.0:9090`.
pub fn normalize_listen_address(address: &str) -> String {
    if address.starts_with(':') {
        format!("0.0.0.0{address}")
    } else {
        address.to_string()
    }
}

/// The host name, for the default node name and external URL.
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|name| name.trim().to_string())
        .ok()
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}

/// The URL users reach this node by: the flag if given, else `http://<host name>:<port>/`.
pub fn external_url(flag: Option<&str>, bound: SocketAddr) -> anyhow::Result<url::Url> {
    let text = match flag {
        Some(text) if !text.is_empty() => text.to_string(),
        _ => format!("http://{}:{}/", host_name(), bound.port()),
    };
    let url = url::Url::parse(&text)
        .with_context(|| format!("--web.external-url: invalid URL {text:?}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        anyhow::bail!("--web.external-url: {text:?} must be an http or https URL");
    }
    Ok(url)
}

/// The path prefix every endpoint is served under: the external URL's path without a trailing
/// slash, as Prometheus's `--web.route-prefix` defaults to.
pub fn route_prefix(external_url: &url::Url) -> String {
    external_url.path().trim_end_matches('/').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_address_forms() {
        assert_eq!(normalize_listen_address(":9090"), "0.0.0.0:9090");
        assert_eq!(normalize_listen_address("127.0.0.1:9090"), "127.0.0.1:9090");
    }

    #[test]
    fn external_url_and_prefix() {
        let bound: SocketAddr = "0.0.0.0:9090".parse().unwrap();
        let url = external_url(Some("https://alerts.example.org/tocsin/"), bound).unwrap();
        assert_eq!(route_prefix(&url), "/tocsin");
        let default = external_url(None, bound).unwrap();
        assert_eq!(default.port(), Some(9090));
        assert_eq!(route_prefix(&default), "");
        assert!(external_url(Some("ftp://x/"), bound).is_err());
        assert!(external_url(Some("not a url"), bound).is_err());
    }

    #[test]
    fn flags_override_and_name_the_flag() {
        let mut settings = ClusterSettings::new("n".into());
        let flags = ClusterFlags {
            listen_address: Some("bad".into()),
            ..Default::default()
        };
        assert!(
            flags
                .apply_to(&mut settings)
                .unwrap_err()
                .contains("--cluster.listen-address")
        );
        let flags = ClusterFlags {
            peers: vec!["x".into()],
            ..Default::default()
        };
        assert!(
            flags
                .apply_to(&mut settings)
                .unwrap_err()
                .contains("cluster.peer")
        );
        let flags = ClusterFlags {
            peer_timeout: Some(Duration::from_secs(3)),
            ..Default::default()
        };
        flags.apply_to(&mut settings).unwrap();
        assert_eq!(settings.peer_timeout, Duration::from_secs(3));
    }
}
