//! The `cluster:` section: the cluster flags written in the config file. Flags win.

use super::{Invalid, Position, PromDuration, Spanned};
use serde::{Deserialize, Serialize};
use tocsin_mesh::ClusterSettings;

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterSection {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listen_address: Option<Spanned<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub advertise_address: Option<Spanned<String>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub peers: Vec<Spanned<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<Spanned<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_name: Option<Spanned<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_dir: Option<Spanned<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer_timeout: Option<Spanned<PromDuration>>,
}

impl ClusterSection {
    /// Checks each key on its own, so an error points at the key; the combination is checked
    /// once flags have been applied.
    pub fn validate(&self, at: Position) -> Result<(), Invalid> {
        let mut settings = ClusterSettings::new("placeholder".to_string());
        self.apply_to(&mut settings)?;
        settings
            .validate()
            .map_err(|error| Invalid::at(at, format!("cluster: {error}")))
    }

    /// Writes the keys this section sets into `settings`.
    pub fn apply_to(&self, settings: &mut ClusterSettings) -> Result<(), Invalid> {
        let socket_address = |value: &Spanned<String>| {
            value.value.parse().map_err(|_| {
                Invalid::on(
                    value,
                    format!("invalid address {:?}: expected ip:port", value.value),
                )
            })
        };
        if let Some(listen) = &self.listen_address {
            // An empty listen address means "no cluster", as with the flag.
            settings.listen_address = if listen.value.is_empty() {
                None
            } else {
                Some(socket_address(listen)?)
            };
        }
        if let Some(advertise) = &self.advertise_address {
            settings.advertise_address = Some(socket_address(advertise)?);
        }
        for peer in &self.peers {
            tocsin_mesh::validate_peer_address(&peer.value)
                .map_err(|error| Invalid::on(peer, error.to_string()))?;
        }
        if !self.peers.is_empty() {
            settings.peers = self.peers.iter().map(|peer| peer.value.clone()).collect();
        }
        if let Some(name) = &self.name {
            settings.cluster_name = name.value.clone();
        }
        if let Some(node_name) = &self.node_name {
            settings.node_name = node_name.value.clone();
        }
        if let Some(tls_dir) = &self.tls_dir {
            settings.tls_dir = tls_dir.value.clone().into();
        }
        if let Some(timeout) = &self.peer_timeout {
            if timeout.value.is_zero() {
                return Err(Invalid::on(
                    timeout,
                    "peer_timeout must be greater than zero",
                ));
            }
            settings.peer_timeout = timeout.value.as_std();
        }
        Ok(())
    }
}
