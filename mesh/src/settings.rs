//! The settings a node needs to join a cluster, validated once at start-up and on reload.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Alertmanager's default; a peer ranked k waits k × this before notifying.
pub const DEFAULT_PEER_TIMEOUT: Duration = Duration::from_secs(15);
pub const DEFAULT_CLUSTER_NAME: &str = "tocsin";
/// A peer list longer than this is a mistake, not a cluster (the design targets 2–10 nodes).
pub const MAX_PEERS: usize = 128;
const MAX_NAME_BYTES: usize = 128;

/// Where and how this node takes part in a cluster. `listen_address: None` means the node runs
/// alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterSettings {
    pub listen_address: Option<SocketAddr>,
    pub advertise_address: Option<SocketAddr>,
    /// `host:port` of peers to join; host names are resolved (and re-resolved) by the mesh.
    pub peers: Vec<String>,
    pub cluster_name: String,
    pub node_name: String,
    /// Holds `ca.pem`, `<node>.pem` and `<node>-key.pem`.
    pub tls_dir: PathBuf,
    pub peer_timeout: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingsError {
    #[error("{field}: invalid address {value:?}: expected host:port with a numeric port")]
    Address { field: &'static str, value: String },
    #[error("{field}: invalid name {value:?}: use 1 to 128 letters, digits, '.', '_' or '-'")]
    Name { field: &'static str, value: String },
    #[error("peer_timeout must be greater than zero")]
    ZeroPeerTimeout,
    #[error("at most {MAX_PEERS} peers may be given, found {0}")]
    TooManyPeers(usize),
    #[error("advertise_address {0} is unspecified (0.0.0.0 or ::): peers could not reach it")]
    UnspecifiedAdvertiseAddress(SocketAddr),
    #[error(
        "peers and advertise_address need listen_address: without it the node does not join a cluster"
    )]
    PeersWithoutListenAddress,
    #[error(
        "listen_address {0} is unspecified (0.0.0.0 or ::): give advertise_address, the address peers reach this node at"
    )]
    UnspecifiedListenWithoutAdvertise(SocketAddr),
}

impl ClusterSettings {
    pub fn new(node_name: String) -> ClusterSettings {
        ClusterSettings {
            listen_address: None,
            advertise_address: None,
            peers: Vec::new(),
            cluster_name: DEFAULT_CLUSTER_NAME.to_string(),
            node_name,
            tls_dir: PathBuf::from("certs"),
            peer_timeout: DEFAULT_PEER_TIMEOUT,
        }
    }

    pub fn is_clustered(&self) -> bool {
        self.listen_address.is_some()
    }

    pub fn validate(&self) -> Result<(), SettingsError> {
        validate_name("cluster.name", &self.cluster_name)?;
        validate_name("cluster.node-name", &self.node_name)?;
        if self.peer_timeout.is_zero() {
            return Err(SettingsError::ZeroPeerTimeout);
        }
        if self.peers.len() > MAX_PEERS {
            return Err(SettingsError::TooManyPeers(self.peers.len()));
        }
        for peer in &self.peers {
            validate_peer_address(peer)?;
        }
        if let Some(address) = self.advertise_address
            && address.ip().is_unspecified()
        {
            return Err(SettingsError::UnspecifiedAdvertiseAddress(address));
        }
        if self.listen_address.is_none()
            && (!self.peers.is_empty() || self.advertise_address.is_some())
        {
            return Err(SettingsError::PeersWithoutListenAddress);
        }
        if let Some(listen) = self.listen_address
            && listen.ip().is_unspecified()
            && self.advertise_address.is_none()
        {
            return Err(SettingsError::UnspecifiedListenWithoutAdvertise(listen));
        }
        Ok(())
    }
}

/// Node and cluster names end up in certificate file names and in certificates, so they are
/// restricted to characters that are safe in both.
fn validate_name(field: &'static str, value: &str) -> Result<(), SettingsError> {
    let valid = !value.is_empty()
        && value.len() <= MAX_NAME_BYTES
        && value
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'.' | b'_' | b'-'));
    if valid {
        Ok(())
    } else {
        Err(SettingsError::Name {
            field,
            value: value.to_string(),
        })
    }
}

/// A peer is `host:port` (or `[v6]:port`); the host may be a name resolved later.
pub fn validate_peer_address(value: &str) -> Result<(), SettingsError> {
    let invalid = || SettingsError::Address {
        field: "cluster.peer",
        value: value.to_string(),
    };
    if value.parse::<SocketAddr>().is_ok() {
        return Ok(());
    }
    let (host, port) = value.rsplit_once(':').ok_or_else(invalid)?;
    port.parse::<u16>().map_err(|_| invalid())?;
    let host_is_name = !host.is_empty()
        && host.len() <= 253
        && host
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'.' | b'-' | b'_'));
    if host_is_name { Ok(()) } else { Err(invalid()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> ClusterSettings {
        let mut settings = ClusterSettings::new("node-1".into());
        settings.listen_address = Some("127.0.0.1:9094".parse().unwrap());
        settings
    }

    #[test]
    fn accepts_a_typical_cluster() {
        let mut cluster = settings();
        cluster.peers = vec![
            "10.0.0.2:9094".into(),
            "node-3.example.org:9094".into(),
            "[::1]:9094".into(),
        ];
        cluster.advertise_address = Some("10.0.0.1:9094".parse().unwrap());
        assert_eq!(cluster.validate(), Ok(()));
        assert_eq!(ClusterSettings::new("solo".into()).validate(), Ok(()));
    }

    #[test]
    fn rejects_bad_settings() {
        let mut cluster = settings();
        cluster.peers = vec!["node-2".into()];
        assert!(matches!(
            cluster.validate(),
            Err(SettingsError::Address { .. })
        ));
        cluster.peers = vec!["node 2:94".into()];
        assert!(matches!(
            cluster.validate(),
            Err(SettingsError::Address { .. })
        ));
        cluster.peers = vec![];
        cluster.node_name = "a/b".into();
        assert!(matches!(
            cluster.validate(),
            Err(SettingsError::Name { .. })
        ));
        cluster.node_name = "a".into();
        cluster.peer_timeout = Duration::ZERO;
        assert_eq!(cluster.validate(), Err(SettingsError::ZeroPeerTimeout));
        cluster.peer_timeout = DEFAULT_PEER_TIMEOUT;
        cluster.advertise_address = Some("0.0.0.0:9094".parse().unwrap());
        assert!(matches!(
            cluster.validate(),
            Err(SettingsError::UnspecifiedAdvertiseAddress(_))
        ));
        let mut everywhere = settings();
        everywhere.listen_address = Some("0.0.0.0:9094".parse().unwrap());
        assert!(matches!(
            everywhere.validate(),
            Err(SettingsError::UnspecifiedListenWithoutAdvertise(_))
        ));
        everywhere.advertise_address = Some("10.0.0.1:9094".parse().unwrap());
        assert_eq!(everywhere.validate(), Ok(()));
        let mut alone = ClusterSettings::new("solo".into());
        alone.peers = vec!["10.0.0.2:9094".into()];
        assert_eq!(
            alone.validate(),
            Err(SettingsError::PeersWithoutListenAddress)
        );
    }
}
