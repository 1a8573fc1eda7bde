//! `global:`, the defaults the receivers fall back on.

use crate::config::http_client::{HttpClientConfig, TlsConfig};
use crate::config::{Invalid, Position, PromDuration, Secret, Spanned};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

fn default_resolve_timeout() -> PromDuration {
    PromDuration::from_secs(5 * 60)
}

fn default_smtp_hello() -> String {
    "localhost".to_string()
}

fn default_true() -> bool {
    true
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct GlobalConfig {
    /// How long after its last update an alert without an end time counts as resolved.
    #[serde(default = "default_resolve_timeout")]
    pub resolve_timeout: PromDuration,
    /// The HTTP client of every webhook that sets no `http_config` of its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_config: Option<Spanned<HttpClientConfig>>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub smtp_from: String,
    #[serde(default = "default_smtp_hello")]
    pub smtp_hello: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smtp_smarthost: Option<Spanned<HostPort>>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub smtp_auth_username: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smtp_auth_password: Option<Spanned<Secret>>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub smtp_auth_password_file: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub smtp_auth_identity: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smtp_auth_secret: Option<Spanned<Secret>>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub smtp_auth_secret_file: String,
    #[serde(default = "default_true")]
    pub smtp_require_tls: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smtp_tls_config: Option<Spanned<TlsConfig>>,
    /// Unset: implicit TLS on port 465 only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smtp_force_implicit_tls: Option<bool>,
}

impl Default for GlobalConfig {
    fn default() -> Self {
        GlobalConfig {
            resolve_timeout: default_resolve_timeout(),
            http_config: None,
            smtp_from: String::new(),
            smtp_hello: default_smtp_hello(),
            smtp_smarthost: None,
            smtp_auth_username: String::new(),
            smtp_auth_password: None,
            smtp_auth_password_file: String::new(),
            smtp_auth_identity: String::new(),
            smtp_auth_secret: None,
            smtp_auth_secret_file: String::new(),
            smtp_require_tls: true,
            smtp_tls_config: None,
            smtp_force_implicit_tls: None,
        }
    }
}

impl GlobalConfig {
    /// The HTTP client settings receivers inherit.
    pub fn http_client(&self) -> HttpClientConfig {
        self.http_config
            .as_ref()
            .map(|config| config.value.clone())
            .unwrap_or_default()
    }

    pub fn smarthost(&self) -> Option<&HostPort> {
        self.smtp_smarthost
            .as_ref()
            .map(|host| &host.value)
            .filter(|host| !host.is_empty())
    }

    pub(super) fn validate(&self) -> Result<(), Invalid> {
        if let Some(password) = &self.smtp_auth_password
            && !password.value.is_empty()
            && !self.smtp_auth_password_file.is_empty()
        {
            return Err(Invalid::on(
                password,
                "at most one of smtp_auth_password & smtp_auth_password_file must be configured",
            ));
        }
        if let Some(secret) = &self.smtp_auth_secret
            && !secret.value.is_empty()
            && !self.smtp_auth_secret_file.is_empty()
        {
            return Err(Invalid::on(
                secret,
                "at most one of smtp_auth_secret & smtp_auth_secret_file must be configured",
            ));
        }
        if let Some(http) = &self.http_config {
            http.value.validate(Position::of(http))?;
        }
        if let Some(tls) = &self.smtp_tls_config {
            tls.value.validate(Position::of(tls))?;
        }
        Ok(())
    }
}

/// A `host:port` address (an SMTP smarthost), as Go's `net.SplitHostPort` reads it: IPv6 hosts
/// in brackets, the port required. Empty means unset.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HostPort {
    pub host: String,
    pub port: String,
}

impl HostPort {
    pub fn is_empty(&self) -> bool {
        self.host.is_empty() && self.port.is_empty()
    }

    pub fn parse(text: &str) -> Result<HostPort, String> {
        if text.is_empty() {
            return Ok(HostPort::default());
        }
        let missing_port = || format!("address {text}: missing port in address");
        let (host, port) = if let Some(rest) = text.strip_prefix('[') {
            let (host, after) = rest
                .split_once(']')
                .ok_or_else(|| format!("address {text}: missing ']' in address"))?;
            let port = after.strip_prefix(':').ok_or_else(missing_port)?;
            (host, port)
        } else {
            let (host, port) = text.rsplit_once(':').ok_or_else(missing_port)?;
            if host.contains(':') {
                return Err(format!("address {text}: too many colons in address"));
            }
            (host, port)
        };
        if host.contains(['[', ']']) || port.contains(['[', ']']) {
            return Err(format!("address {text}: unexpected bracket in address"));
        }
        if port.is_empty() {
            return Err(format!("address {text:?}: port cannot be empty"));
        }
        Ok(HostPort {
            host: host.to_string(),
            port: port.to_string(),
        })
    }
}

impl fmt::Display for HostPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            Ok(())
        } else if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

impl Serialize for HostPort {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for HostPort {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        HostPort::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn host_port_follows_go() {
        let parsed = HostPort::parse("smtp.example.org:587").unwrap();
        assert_eq!(
            (parsed.host.as_str(), parsed.port.as_str()),
            ("smtp.example.org", "587")
        );
        assert_eq!(HostPort::parse("[::1]:25").unwrap().to_string(), "[::1]:25");
        assert!(HostPort::parse("").unwrap().is_empty());
        assert_eq!(
            HostPort::parse("smtp.example.org").unwrap_err(),
            "address smtp.example.org: missing port in address"
        );
        assert_eq!(
            HostPort::parse("smtp.example.org:").unwrap_err(),
            "address \"smtp.example.org:\": port cannot be empty"
        );
        assert!(HostPort::parse("::1:25").is_err());
    }
}
