//! Settings of an outgoing HTTP client, as Prometheus's and Alertmanager's `http_config` (and the
//! same keys inlined in `scrape_configs`, `remote_write`, `remote_read`, `alertmanagers` and
//! `http_sd_configs`) write them.

use super::{Invalid, Position, Secret, Spanned};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct BasicAuth {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub username: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub username_file: String,
    #[serde(default, skip_serializing_if = "Secret::is_empty")]
    pub password: Secret,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub password_file: String,
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Authorization {
    /// The scheme; `Bearer` when empty.
    #[serde(default, rename = "type", skip_serializing_if = "String::is_empty")]
    pub scheme: String,
    #[serde(default, skip_serializing_if = "Secret::is_empty")]
    pub credentials: Secret,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub credentials_file: String,
}

impl Authorization {
    pub fn scheme(&self) -> &str {
        if self.scheme.is_empty() {
            "Bearer"
        } else {
            &self.scheme
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
pub enum TlsVersion {
    TLS10,
    TLS11,
    TLS12,
    TLS13,
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// The CA certificate in PEM, inline.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub ca: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub ca_file: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub cert: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub cert_file: String,
    #[serde(default, skip_serializing_if = "Secret::is_empty")]
    pub key: Secret,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub key_file: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub server_name: String,
    #[serde(default)]
    pub insecure_skip_verify: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_version: Option<TlsVersion>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_version: Option<TlsVersion>,
}

impl TlsConfig {
    pub fn validate(&self, at: Position) -> Result<(), Invalid> {
        exclusive(
            at,
            "ca",
            !self.ca.is_empty(),
            "ca_file",
            !self.ca_file.is_empty(),
        )?;
        exclusive(
            at,
            "cert",
            !self.cert.is_empty(),
            "cert_file",
            !self.cert_file.is_empty(),
        )?;
        exclusive(
            at,
            "key",
            !self.key.is_empty(),
            "key_file",
            !self.key_file.is_empty(),
        )?;
        let has_cert = !self.cert.is_empty() || !self.cert_file.is_empty();
        let has_key = !self.key.is_empty() || !self.key_file.is_empty();
        if has_cert != has_key {
            return Err(Invalid::at(
                at,
                "a client certificate (cert or cert_file) and its key (key or key_file) must be given together",
            ));
        }
        if let (Some(min), Some(max)) = (self.min_version, self.max_version)
            && (min as u8) > (max as u8)
        {
            return Err(Invalid::at(
                at,
                "tls_config: max_version must not be below min_version",
            ));
        }
        Ok(())
    }
}

fn default_true() -> bool {
    true
}

fn is_true(value: &bool) -> bool {
    *value
}

/// An HTTP client's settings. Validated by [`HttpClientConfig::validate`].
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HttpClientConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub basic_auth: Option<Spanned<BasicAuth>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization: Option<Spanned<Authorization>>,
    /// Deprecated in Prometheus in favour of `authorization`, still accepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bearer_token: Option<Spanned<Secret>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bearer_token_file: Option<Spanned<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_config: Option<Spanned<TlsConfig>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy_url: Option<Spanned<String>>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub no_proxy: String,
    #[serde(default)]
    pub proxy_from_environment: bool,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub proxy_connect_header: BTreeMap<String, Vec<Secret>>,
    #[serde(default = "default_true", skip_serializing_if = "is_true")]
    pub follow_redirects: bool,
    #[serde(default = "default_true", skip_serializing_if = "is_true")]
    pub enable_http2: bool,
}

impl Default for HttpClientConfig {
    fn default() -> Self {
        HttpClientConfig {
            basic_auth: None,
            authorization: None,
            bearer_token: None,
            bearer_token_file: None,
            tls_config: None,
            proxy_url: None,
            no_proxy: String::new(),
            proxy_from_environment: false,
            proxy_connect_header: BTreeMap::new(),
            follow_redirects: true,
            enable_http2: true,
        }
    }
}

fn exclusive(
    at: Position,
    first: &str,
    has_first: bool,
    second: &str,
    has_second: bool,
) -> Result<(), Invalid> {
    if has_first && has_second {
        Err(Invalid::at(
            at,
            format!("at most one of {first} and {second} may be set"),
        ))
    } else {
        Ok(())
    }
}

impl HttpClientConfig {
    /// Checks the rules Prometheus's HTTP client config enforces. `at` is where the settings
    /// begin, for errors that concern the combination of keys.
    pub fn validate(&self, at: Position) -> Result<(), Invalid> {
        let schemes: Vec<&str> = [
            ("basic_auth", self.basic_auth.is_some()),
            ("authorization", self.authorization.is_some()),
            ("bearer_token", self.bearer_token.is_some()),
            ("bearer_token_file", self.bearer_token_file.is_some()),
        ]
        .into_iter()
        .filter_map(|(name, set)| set.then_some(name))
        .collect();
        if schemes.len() > 1 {
            return Err(Invalid::at(
                at,
                format!(
                    "at most one of basic_auth, authorization, bearer_token and bearer_token_file may be set (found {})",
                    schemes.join(", ")
                ),
            ));
        }
        if let Some(basic_auth) = &self.basic_auth {
            let here = Position::of(basic_auth);
            let basic_auth = &basic_auth.value;
            exclusive(
                here,
                "basic_auth.username",
                !basic_auth.username.is_empty(),
                "basic_auth.username_file",
                !basic_auth.username_file.is_empty(),
            )?;
            exclusive(
                here,
                "basic_auth.password",
                !basic_auth.password.is_empty(),
                "basic_auth.password_file",
                !basic_auth.password_file.is_empty(),
            )?;
        }
        if let Some(authorization) = &self.authorization {
            let here = Position::of(authorization);
            let authorization = &authorization.value;
            exclusive(
                here,
                "authorization.credentials",
                !authorization.credentials.is_empty(),
                "authorization.credentials_file",
                !authorization.credentials_file.is_empty(),
            )?;
            if authorization.scheme().eq_ignore_ascii_case("basic") {
                return Err(Invalid::at(
                    here,
                    "authorization type cannot be set to \"Basic\", use \"basic_auth\" instead",
                ));
            }
        }
        if let Some(tls) = &self.tls_config {
            tls.value.validate(Position::of(tls))?;
        }
        if let Some(proxy_url) = &self.proxy_url {
            url::Url::parse(&proxy_url.value).map_err(|error| {
                Invalid::on(
                    proxy_url,
                    format!("invalid proxy_url {:?}: {error}", proxy_url.value),
                )
            })?;
            if self.proxy_from_environment {
                return Err(Invalid::on(
                    proxy_url,
                    "at most one of proxy_url and proxy_from_environment may be set",
                ));
            }
        } else if !self.no_proxy.is_empty() {
            return Err(Invalid::at(at, "no_proxy requires proxy_url"));
        } else if !self.proxy_connect_header.is_empty() && !self.proxy_from_environment {
            return Err(Invalid::at(
                at,
                "proxy_connect_header requires proxy_url or proxy_from_environment",
            ));
        }
        Ok(())
    }
}

/// Declares a config struct whose YAML mapping also carries the keys of [`HttpClientConfig`]
/// inline, as Prometheus's `scrape_configs` and friends do. serde's `flatten` would lose
/// positions and disable `deny_unknown_fields`, so the keys are spelled out here once and
/// gathered back into an `HttpClientConfig` by `http_client()`.
macro_rules! with_inline_http_client {
    (
        $(#[$struct_meta:meta])*
        pub struct $name:ident {
            $( $(#[$field_meta:meta])* pub $field:ident : $type:ty, )*
        }
    ) => {
        $(#[$struct_meta])*
        pub struct $name {
            $( $(#[$field_meta])* pub $field: $type, )*
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub basic_auth: Option<$crate::config::Spanned<$crate::config::http_client::BasicAuth>>,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub authorization: Option<$crate::config::Spanned<$crate::config::http_client::Authorization>>,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub bearer_token: Option<$crate::config::Spanned<$crate::config::Secret>>,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub bearer_token_file: Option<$crate::config::Spanned<String>>,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub tls_config: Option<$crate::config::Spanned<$crate::config::http_client::TlsConfig>>,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub proxy_url: Option<$crate::config::Spanned<String>>,
            #[serde(default, skip_serializing_if = "String::is_empty")]
            pub no_proxy: String,
            #[serde(default)]
            pub proxy_from_environment: bool,
            #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
            pub proxy_connect_header: std::collections::BTreeMap<String, Vec<$crate::config::Secret>>,
            #[serde(default = "crate::config::http_client::default_follow_redirects")]
            pub follow_redirects: bool,
            #[serde(default = "crate::config::http_client::default_enable_http2")]
            pub enable_http2: bool,
        }

        impl $name {
            /// The inline HTTP client keys, gathered.
            pub fn http_client(&self) -> $crate::config::http_client::HttpClientConfig {
                $crate::config::http_client::HttpClientConfig {
                    basic_auth: self.basic_auth.clone(),
                    authorization: self.authorization.clone(),
                    bearer_token: self.bearer_token.clone(),
                    bearer_token_file: self.bearer_token_file.clone(),
                    tls_config: self.tls_config.clone(),
                    proxy_url: self.proxy_url.clone(),
                    no_proxy: self.no_proxy.clone(),
                    proxy_from_environment: self.proxy_from_environment,
                    proxy_connect_header: self.proxy_connect_header.clone(),
                    follow_redirects: self.follow_redirects,
                    enable_http2: self.enable_http2,
                }
            }
        }
    };
}
pub(crate) use with_inline_http_client;

pub(crate) fn default_follow_redirects() -> bool {
    true
}

pub(crate) fn default_enable_http2() -> bool {
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_document;

    fn check(yaml: &str) -> Result<(), String> {
        let config: HttpClientConfig = parse_document(yaml, "t.yml").map_err(|e| e.to_string())?;
        config
            .validate(Position { line: 1, column: 1 })
            .map_err(|e| e.in_file("t.yml").to_string())
    }

    #[test]
    fn accepts_common_settings() {
        check("basic_auth: {username: u, password: p}\ntls_config: {ca_file: ca.pem, insecure_skip_verify: true}\n").unwrap();
        check("authorization: {credentials: tok}\nfollow_redirects: false\n").unwrap();
        check("proxy_url: http://proxy:3128\nno_proxy: localhost\n").unwrap();
    }

    #[test]
    fn rejects_conflicting_settings() {
        assert_eq!(
            check("basic_auth: {username: u}\nbearer_token: x\n").unwrap_err(),
            "t.yml:1:1: at most one of basic_auth, authorization, bearer_token and bearer_token_file may be set (found basic_auth, bearer_token)"
        );
        assert_eq!(
            check("tls_config:\n  cert_file: c.pem\n").unwrap_err(),
            "t.yml:2:3: a client certificate (cert or cert_file) and its key (key or key_file) must be given together"
        );
        assert_eq!(
            check("authorization:\n  type: Basic\n").unwrap_err(),
            "t.yml:2:3: authorization type cannot be set to \"Basic\", use \"basic_auth\" instead"
        );
        assert!(
            check("oauth2: {client_id: x}\n")
                .unwrap_err()
                .contains("`oauth2` is not supported by Tocsin")
        );
        assert!(check("tls_config: {min_version: TLS14}\n").is_err());
        assert!(
            check("no_proxy: x\n")
                .unwrap_err()
                .contains("no_proxy requires proxy_url")
        );
    }

    #[test]
    fn secrets_are_not_printed() {
        let config: HttpClientConfig =
            parse_document("basic_auth: {username: u, password: hunter2}\n", "t.yml").unwrap();
        let printed = crate::config::to_yaml(&config);
        assert!(!printed.contains("hunter2"), "{printed}");
        assert!(printed.contains("<secret>"), "{printed}");
    }
}
