//! `receivers:`: named sets of notification integrations. Tocsin implements webhooks and
//! email (and the node's log, see `log_notifications`); the other integrations are refused as
//! unsupported when the file is read.

use super::global::{GlobalConfig, HostPort};
use crate::config::http_client::{HttpClientConfig, TlsConfig};
use crate::config::{Invalid, Position, PromDuration, Secret, Spanned};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

fn default_true() -> bool {
    true
}

fn is_false(value: &bool) -> bool {
    !*value
}

fn is_zero_u64(value: &u64) -> bool {
    *value == 0
}

fn is_zero_duration(value: &PromDuration) -> bool {
    value.is_zero()
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Receiver {
    pub name: Spanned<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub webhook_configs: Vec<Spanned<WebhookConfig>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub email_configs: Vec<Spanned<EmailConfig>>,
    /// Writing each notification to the node's log: set from the top-level
    /// `log_notifications` (a Tocsin extension), never read from or written to the
    /// Alertmanager document, which stays one that Alertmanager and `amtool` accept.
    #[serde(skip)]
    pub log_configs: Vec<LogConfig>,
}

/// A log integration: nothing to configure but whether resolved alerts are logged too.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogConfig {
    pub send_resolved: bool,
}

impl Receiver {
    /// Checks each integration and fills what it inherits from `global`.
    pub(super) fn finish(&mut self, global: &GlobalConfig) -> Result<(), Invalid> {
        if self.name.value.is_empty() {
            return Err(Invalid::on(&self.name, "missing name in receiver"));
        }
        for webhook in &mut self.webhook_configs {
            let at = Position::of(webhook);
            webhook.value.finish(at, global)?;
        }
        for email in &mut self.email_configs {
            let at = Position::of(email);
            email.value.finish(at, global)?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    #[serde(default = "default_true")]
    pub send_resolved: bool,
    /// The endpoint, a secret: it often carries a token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<Spanned<Secret>>,
    /// A file holding the endpoint, read when sending.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url_file: Option<Spanned<String>>,
    /// After `finish`, always set: the global `http_config` when the file gives none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_config: Option<Spanned<HttpClientConfig>>,
    /// At most this many alerts per request; 0 sends all.
    #[serde(default, skip_serializing_if = "is_zero_u64")]
    pub max_alerts: u64,
    /// 0 means no timeout of its own.
    #[serde(default, skip_serializing_if = "is_zero_duration")]
    pub timeout: PromDuration,
}

impl WebhookConfig {
    fn finish(&mut self, at: Position, global: &GlobalConfig) -> Result<(), Invalid> {
        match (&self.url, &self.url_file) {
            (None, None) => {
                return Err(Invalid::at(at, "one of url or url_file must be configured"));
            }
            (Some(url), Some(_)) => {
                return Err(Invalid::on(
                    url,
                    "at most one of url & url_file must be configured",
                ));
            }
            (Some(url), None) => check_http_url(url.value.expose())
                .map_err(|why| Invalid::on(url, format!("invalid webhook url: {why}")))?,
            (None, Some(file)) if file.value.is_empty() => {
                return Err(Invalid::on(file, "url_file must not be empty"));
            }
            (None, Some(_)) => {}
        }
        match &self.http_config {
            Some(http) => http.value.validate(Position::of(http))?,
            None => {
                self.http_config = global
                    .http_config
                    .clone()
                    .or_else(|| Some(unplaced(HttpClientConfig::default())));
            }
        }
        Ok(())
    }

    /// The HTTP client settings to send with.
    pub fn http_client(&self) -> HttpClientConfig {
        self.http_config
            .as_ref()
            .map(|http| http.value.clone())
            .unwrap_or_default()
    }
}

/// A value filled in by `finish` rather than read from the file.
fn unplaced<T>(value: T) -> Spanned<T> {
    Spanned::new(
        value,
        serde_saphyr::Location::UNKNOWN,
        serde_saphyr::Location::UNKNOWN,
    )
}

/// Alertmanager's URL check: parses, `http` or `https`, has a host. The URL itself is not
/// repeated in the error because it is a secret.
fn check_http_url(text: &str) -> Result<(), String> {
    let url = url::Url::parse(text).map_err(|error| error.to_string())?;
    if url.scheme() != "http" && url.scheme() != "https" {
        return Err(format!("unsupported scheme {:?} for URL", url.scheme()));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("missing host for URL".to_string());
    }
    Ok(())
}

/// Alertmanager's default email body.
pub const DEFAULT_EMAIL_HTML: &str = r#"{{ template "email.default.html" . }}"#;

/// Alertmanager's default subject, used when `headers` sets no `Subject`.
pub const DEFAULT_EMAIL_SUBJECT: &str = r#"{{ template "email.default.subject" . }}"#;

fn default_email_html() -> String {
    DEFAULT_EMAIL_HTML.to_string()
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct EmailConfig {
    #[serde(default, skip_serializing_if = "is_false")]
    pub send_resolved: bool,
    /// Recipients, a template; comma-separated addresses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<Spanned<String>>,
    /// The rest default to the `smtp_*` keys of `global`, filled in by `finish`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub from: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub hello: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smarthost: Option<Spanned<HostPort>>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub auth_username: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_password: Option<Spanned<Secret>>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub auth_password_file: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_secret: Option<Spanned<Secret>>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub auth_secret_file: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub auth_identity: String,
    /// Header name to template, names in canonical case (`Subject`, `X-Team`) after `finish`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    #[serde(default = "default_email_html")]
    pub html: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub text: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub require_tls: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_config: Option<Spanned<TlsConfig>>,
    /// Unset: implicit TLS on port 465 only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub force_implicit_tls: Option<bool>,
}

fn has_secret(secret: &Option<Spanned<Secret>>) -> bool {
    secret
        .as_ref()
        .is_some_and(|secret| !secret.value.is_empty())
}

impl EmailConfig {
    fn finish(&mut self, at: Position, global: &GlobalConfig) -> Result<(), Invalid> {
        match &self.to {
            Some(to) if !to.value.is_empty() => {}
            Some(to) => return Err(Invalid::on(to, "missing to address in email config")),
            None => return Err(Invalid::at(at, "missing to address in email config")),
        }
        if let Some(password) = &self.auth_password
            && !password.value.is_empty()
            && !self.auth_password_file.is_empty()
        {
            return Err(Invalid::on(
                password,
                "at most one of auth_password & auth_password_file must be configured",
            ));
        }
        if let Some(secret) = &self.auth_secret
            && !secret.value.is_empty()
            && !self.auth_secret_file.is_empty()
        {
            return Err(Invalid::on(
                secret,
                "at most one of auth_secret & auth_secret_file must be configured",
            ));
        }
        self.headers = canonical_headers(&self.headers).map_err(|why| Invalid::at(at, why))?;
        if let Some(tls) = &self.tls_config {
            tls.value.validate(Position::of(tls))?;
        }

        // Inherit from `global` in Alertmanager's order and with its rules: a password or
        // secret is inherited only when neither it nor its file is set here.
        if self.tls_config.is_none() {
            self.tls_config = global.smtp_tls_config.clone();
        }
        let has_smarthost = self
            .smarthost
            .as_ref()
            .is_some_and(|host| !host.value.is_empty());
        if !has_smarthost {
            match &global.smtp_smarthost {
                Some(host) if !host.value.is_empty() => self.smarthost = Some(host.clone()),
                _ => return Err(Invalid::at(at, "no global SMTP smarthost set")),
            }
        }
        if self.from.is_empty() {
            if global.smtp_from.is_empty() {
                return Err(Invalid::at(at, "no global SMTP from set"));
            }
            self.from = global.smtp_from.clone();
        }
        if self.hello.is_empty() {
            self.hello = global.smtp_hello.clone();
        }
        if self.auth_username.is_empty() {
            self.auth_username = global.smtp_auth_username.clone();
        }
        if !has_secret(&self.auth_password) && self.auth_password_file.is_empty() {
            self.auth_password = global.smtp_auth_password.clone();
            self.auth_password_file = global.smtp_auth_password_file.clone();
        }
        if !has_secret(&self.auth_secret) && self.auth_secret_file.is_empty() {
            self.auth_secret = global.smtp_auth_secret.clone();
            self.auth_secret_file = global.smtp_auth_secret_file.clone();
        }
        if self.auth_identity.is_empty() {
            self.auth_identity = global.smtp_auth_identity.clone();
        }
        if self.require_tls.is_none() {
            self.require_tls = Some(global.smtp_require_tls);
        }
        if self.force_implicit_tls.is_none() {
            self.force_implicit_tls = global.smtp_force_implicit_tls;
        }
        Ok(())
    }

    /// The recipients template.
    pub fn to(&self) -> &str {
        self.to.as_ref().map_or("", |to| to.value.as_str())
    }

    /// The smarthost; set on every email config once `finish` has run.
    pub fn smarthost(&self) -> Option<&HostPort> {
        self.smarthost.as_ref().map(|host| &host.value)
    }

    pub fn require_tls(&self) -> bool {
        self.require_tls.unwrap_or(true)
    }

    /// The `Subject` header template, or Alertmanager's default.
    pub fn subject(&self) -> &str {
        self.headers
            .get("Subject")
            .map_or(DEFAULT_EMAIL_SUBJECT, String::as_str)
    }
}

/// Header names are case-insensitive: two spellings of one name are an error, and names are
/// kept in MIME canonical form (`x-team` becomes `X-Team`), as Go's `textproto` writes them.
fn canonical_headers(
    headers: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, String> {
    let mut canonical = BTreeMap::new();
    for (name, value) in headers {
        let key = canonical_header_name(name);
        if canonical.insert(key.clone(), value.clone()).is_some() {
            return Err(format!("duplicate header {key:?} in email config"));
        }
    }
    Ok(canonical)
}

/// Go's `CanonicalMIMEHeaderKey`: the first letter and each letter after a hyphen upper case,
/// the rest lower case; names with characters outside a header token are left as they are.
fn canonical_header_name(name: &str) -> String {
    let is_token = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
    if name.is_empty() || !name.chars().all(is_token) {
        return name.to_string();
    }
    let mut upper = true;
    name.chars()
        .map(|c| {
            let out = if upper {
                c.to_ascii_uppercase()
            } else {
                c.to_ascii_lowercase()
            };
            upper = c == '-';
            out
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn header_names_are_canonical() {
        assert_eq!(canonical_header_name("subject"), "Subject");
        assert_eq!(canonical_header_name("x-TEAM-id"), "X-Team-Id");
        assert_eq!(canonical_header_name("bad name"), "bad name");
        let mut headers = BTreeMap::new();
        headers.insert("Subject".to_string(), "a".to_string());
        headers.insert("SUBJECT".to_string(), "b".to_string());
        assert_eq!(
            canonical_headers(&headers).unwrap_err(),
            "duplicate header \"Subject\" in email config"
        );
    }

    #[test]
    fn webhook_urls() {
        assert!(check_http_url("https://hooks.example.org/x?token=1").is_ok());
        assert_eq!(
            check_http_url("ftp://example.org/").unwrap_err(),
            "unsupported scheme \"ftp\" for URL"
        );
        assert!(check_http_url("not a url").is_err());
    }
}
