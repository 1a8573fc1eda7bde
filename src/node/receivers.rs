//! Builds the notifiers of the `receivers:` section: converts each `webhook_configs`,
//! `email_configs` and log integration (`log_notifications`) into the settings of `tocsin_receivers` (reading every
//! `*_file`) and keeps the notifier and delivery counters of each integration under the key the
//! pipeline and notification log use for it ([`ReceiverKey`]: receiver name, kind, index within
//! that kind).

use crate::alerting::nflog::ReceiverKey;
use crate::config::Secret;
use crate::config::alertmanager::{AlertmanagerConfig, EmailConfig, WebhookConfig};
use crate::config::http_client::{self as config_http, HttpClientConfig, TlsConfig};
use std::collections::BTreeMap;
use std::fmt;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tocsin_receivers::email::{self, Email, EmailSettings, Renderer};
use tocsin_receivers::http_client::{
    Authorization, HttpSettings, SettingsError, TlsSettings, TlsVersion,
};
use tocsin_receivers::log::{LogNotifier, LogSettings};
use tocsin_receivers::notifier::{DeliveryStats, Notifier};
use tocsin_receivers::template::{self, Templates};
use tocsin_receivers::webhook::{Webhook, WebhookSettings};

/// The most a `*_file` (URL, password, token, PEM) may hold: such files are small, and a wrong
/// path (a log, a device) must not be read whole into memory.
const MAX_FILE_BYTES: u64 = 1024 * 1024;

/// One integration: what sends, and what counts its deliveries.
struct Integration {
    notifier: Arc<dyn Notifier>,
    stats: Arc<DeliveryStats>,
}

/// The notifiers and delivery counters of every integration of every receiver.
#[derive(Default)]
pub struct Integrations {
    by_key: BTreeMap<ReceiverKey, Integration>,
}

impl fmt::Debug for Integrations {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.by_key.keys().map(ToString::to_string))
            .finish()
    }
}

impl Integrations {
    /// Builds every integration of every receiver. Relative `*_file` paths resolve against
    /// `base_dir`, the folder of the file the `alertmanager` section came from. An error names
    /// the receiver and the integration: `receiver "team", webhook 0: cannot read url_file …`.
    ///
    /// `config` has been through `finish`: the `global` defaults are already filled in.
    pub fn build(
        config: &AlertmanagerConfig,
        templates: Arc<Templates>,
        base_dir: &Path,
    ) -> Result<Integrations, String> {
        let files = Files { base_dir };
        let render = renderer(templates);
        let mut by_key = BTreeMap::new();
        for receiver in &config.receivers {
            let receiver = &receiver.value;
            let name = &receiver.name.value;
            let key = |integration: &str, index: usize| ReceiverKey {
                name: name.clone(),
                integration: integration.to_string(),
                index: u32::try_from(index).unwrap_or(u32::MAX),
            };
            for (index, webhook) in receiver.webhook_configs.iter().enumerate() {
                let context = |why: String| format!("receiver {name:?}, webhook {index}: {why}");
                let settings = webhook_settings(&webhook.value, &files).map_err(context)?;
                let notifier = Webhook::new(&settings).map_err(|error| context(describe(error)))?;
                by_key.insert(key("webhook", index), Integration::new(Arc::new(notifier)));
            }
            for (index, email) in receiver.email_configs.iter().enumerate() {
                let context = |why: String| format!("receiver {name:?}, email {index}: {why}");
                let settings = email_settings(&email.value, &files).map_err(context)?;
                let notifier = Email::new(settings, Arc::clone(&render))
                    .map_err(|error| context(describe(error)))?;
                by_key.insert(key("email", index), Integration::new(Arc::new(notifier)));
            }
            for (index, log) in receiver.log_configs.iter().enumerate() {
                let notifier = LogNotifier::new(LogSettings {
                    send_resolved: log.send_resolved,
                });
                by_key.insert(key("log", index), Integration::new(Arc::new(notifier)));
            }
        }
        Ok(Integrations { by_key })
    }

    /// Keeps the counters of `previous` for the integrations that are still configured, so that
    /// a reload does not reset `/metrics` counters of integrations it did not remove.
    pub fn carry_stats_from(&mut self, previous: &Integrations) {
        for (key, integration) in &mut self.by_key {
            if let Some(old) = previous.by_key.get(key) {
                integration.stats = Arc::clone(&old.stats);
            }
        }
    }

    pub fn get(&self, key: &ReceiverKey) -> Option<Arc<dyn Notifier>> {
        self.by_key
            .get(key)
            .map(|integration| Arc::clone(&integration.notifier))
    }

    pub fn stats(&self, key: &ReceiverKey) -> Option<Arc<DeliveryStats>> {
        self.by_key
            .get(key)
            .map(|integration| Arc::clone(&integration.stats))
    }

    /// Every integration's counters, ordered by key, for `/metrics`.
    pub fn iter_stats(&self) -> impl Iterator<Item = (&ReceiverKey, &DeliveryStats)> {
        self.by_key
            .iter()
            .map(|(key, integration)| (key, integration.stats.as_ref()))
    }

    pub fn len(&self) -> usize {
        self.by_key.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }
}

impl Integration {
    fn new(notifier: Arc<dyn Notifier>) -> Integration {
        Integration {
            notifier,
            stats: Arc::new(DeliveryStats::new()),
        }
    }
}

/// The email integration renders through the node's template engine.
fn renderer(templates: Arc<Templates>) -> Renderer {
    Arc::new(move |text, data, mode| {
        let mode = match mode {
            email::RenderMode::Text => template::RenderMode::Text,
            email::RenderMode::Html => template::RenderMode::Html,
        };
        templates
            .render(text, data, mode)
            .map_err(|error| error.to_string())
    })
}

/// A settings error, without repeating a webhook URL: it is a secret (it often carries a token).
fn describe(error: SettingsError) -> String {
    match error {
        SettingsError::Url { message, .. } => format!("invalid url: {message}"),
        other => other.to_string(),
    }
}

/// Reads the `*_file`s of the configuration.
struct Files<'a> {
    base_dir: &'a Path,
}

impl Files<'_> {
    fn path(&self, path: &str) -> PathBuf {
        // `join` keeps an absolute path as it is.
        self.base_dir.join(path)
    }

    /// The whole file, as PEM and other texts whose whitespace does not matter.
    fn read(&self, key: &str, path: &str) -> Result<String, String> {
        let full = self.path(path);
        let cannot = |why: String| format!("cannot read {key} {}: {why}", full.display());
        let file = std::fs::File::open(&full).map_err(|error| cannot(error.to_string()))?;
        let mut bytes = Vec::new();
        file.take(MAX_FILE_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(|error| cannot(error.to_string()))?;
        if bytes.len() as u64 > MAX_FILE_BYTES {
            return Err(cannot(format!(
                "larger than the limit of {MAX_FILE_BYTES} bytes"
            )));
        }
        String::from_utf8(bytes).map_err(|_| cannot("not UTF-8 text".to_string()))
    }

    /// A URL, user name, password or token held in a file, without surrounding whitespace (as
    /// Prometheus and Alertmanager read them: editors add a final newline).
    fn read_trimmed(&self, key: &str, path: &str) -> Result<String, String> {
        self.read(key, path).map(|text| text.trim().to_string())
    }

    /// `inline` if set, else the trimmed contents of `file` if set, else `None`.
    fn secret_or_file(
        &self,
        inline: Option<&Secret>,
        file_key: &str,
        file: &str,
    ) -> Result<Option<String>, String> {
        match inline {
            Some(secret) if !secret.is_empty() => Ok(Some(secret.expose().to_string())),
            _ if !file.is_empty() => self.read_trimmed(file_key, file).map(Some),
            _ => Ok(None),
        }
    }
}

fn webhook_settings(webhook: &WebhookConfig, files: &Files) -> Result<WebhookSettings, String> {
    // Alertmanager reads url_file on every send; Tocsin reads it when the configuration is
    // loaded or reloaded, so a changed file takes effect on the next reload (SIGHUP or
    // `POST /-/reload`).
    let url = match (&webhook.url, &webhook.url_file) {
        (Some(url), _) => url.value.expose().to_string(),
        (None, Some(file)) => files.read_trimmed("url_file", &file.value)?,
        (None, None) => return Err("one of url or url_file must be configured".to_string()),
    };
    let mut http = http_settings(&webhook.http_client(), files)?;
    // The webhook's own timeout is applied per request by the integration.
    http.timeout = None;
    Ok(WebhookSettings {
        url,
        http,
        max_alerts: usize::try_from(webhook.max_alerts).unwrap_or(usize::MAX),
        send_resolved: webhook.send_resolved,
        timeout: (!webhook.timeout.is_zero()).then(|| webhook.timeout.as_std()),
    })
}

fn http_settings(http: &HttpClientConfig, files: &Files) -> Result<HttpSettings, String> {
    if http.proxy_from_environment {
        return Err("http_config: proxy_from_environment is not supported by Tocsin".into());
    }
    if !http.no_proxy.is_empty() {
        return Err("http_config: no_proxy is not supported by Tocsin".into());
    }
    if !http.proxy_connect_header.is_empty() {
        return Err("http_config: proxy_connect_header is not supported by Tocsin".into());
    }
    // `enable_http2` is a preference: webhooks are sent over HTTP/1.1, which every receiver
    // speaks, so it is not an error to leave it set.
    let basic_auth = match &http.basic_auth {
        Some(basic) => {
            let basic = &basic.value;
            let username = if basic.username_file.is_empty() {
                basic.username.clone()
            } else {
                files.read_trimmed("basic_auth.username_file", &basic.username_file)?
            };
            let password = files
                .secret_or_file(
                    Some(&basic.password),
                    "basic_auth.password_file",
                    &basic.password_file,
                )?
                .unwrap_or_default();
            Some((username, password))
        }
        None => None,
    };
    let authorization = if let Some(authorization) = &http.authorization {
        let authorization = &authorization.value;
        let credentials = files
            .secret_or_file(
                Some(&authorization.credentials),
                "authorization.credentials_file",
                &authorization.credentials_file,
            )?
            .unwrap_or_default();
        Some(Authorization {
            scheme: authorization.scheme().to_string(),
            credentials,
        })
    } else if let Some(token) = &http.bearer_token {
        Some(Authorization::bearer(token.value.expose()))
    } else if let Some(file) = &http.bearer_token_file {
        Some(Authorization::bearer(
            files.read_trimmed("bearer_token_file", &file.value)?,
        ))
    } else {
        None
    };
    let tls = match &http.tls_config {
        Some(tls) => {
            tls_settings(&tls.value, files).map_err(|why| format!("http_config: {why}"))?
        }
        None => TlsSettings::default(),
    };
    Ok(HttpSettings {
        basic_auth,
        authorization,
        tls,
        proxy_url: http.proxy_url.as_ref().map(|url| url.value.clone()),
        follow_redirects: http.follow_redirects,
        timeout: None,
    })
}

fn tls_settings(tls: &TlsConfig, files: &Files) -> Result<TlsSettings, String> {
    let pem = |inline: &str, key: &str, file: &str| -> Result<Option<String>, String> {
        if !inline.is_empty() {
            Ok(Some(inline.to_string()))
        } else if !file.is_empty() {
            files.read(&format!("tls_config.{key}"), file).map(Some)
        } else {
            Ok(None)
        }
    };
    // rustls speaks TLS 1.2 and 1.3 only: a maximum of 1.3 is what it does anyway, anything
    // lower cannot be honoured.
    if let Some(max) = tls.max_version
        && max != config_http::TlsVersion::TLS13
    {
        return Err(format!(
            "tls_config: max_version {max:?} is not supported by Tocsin (only TLS13)"
        ));
    }
    Ok(TlsSettings {
        ca_pem: pem(&tls.ca, "ca_file", &tls.ca_file)?,
        client_cert_pem: pem(&tls.cert, "cert_file", &tls.cert_file)?,
        client_key_pem: pem(tls.key.expose(), "key_file", &tls.key_file)?,
        server_name: Some(tls.server_name.clone()).filter(|name| !name.is_empty()),
        insecure_skip_verify: tls.insecure_skip_verify,
        min_version: tls.min_version.map(|version| match version {
            config_http::TlsVersion::TLS10 => TlsVersion::Tls10,
            config_http::TlsVersion::TLS11 => TlsVersion::Tls11,
            config_http::TlsVersion::TLS12 => TlsVersion::Tls12,
            config_http::TlsVersion::TLS13 => TlsVersion::Tls13,
        }),
    })
}

fn non_empty(text: &str) -> Option<String> {
    Some(text.to_string()).filter(|text| !text.is_empty())
}

fn email_settings(config: &EmailConfig, files: &Files) -> Result<EmailSettings, String> {
    let smarthost = config
        .smarthost()
        .filter(|host| !host.is_empty())
        .ok_or_else(|| "no smarthost set".to_string())?
        .to_string();
    let auth_password = files.secret_or_file(
        config.auth_password.as_ref().map(|secret| &secret.value),
        "auth_password_file",
        &config.auth_password_file,
    )?;
    let auth_secret = files.secret_or_file(
        config.auth_secret.as_ref().map(|secret| &secret.value),
        "auth_secret_file",
        &config.auth_secret_file,
    )?;
    let tls = match &config.tls_config {
        Some(tls) => tls_settings(&tls.value, files)?,
        None => TlsSettings::default(),
    };
    // The `html` key defaults to Alertmanager's HTML body when absent (serde fills it in). Set
    // to '' it means "no HTML part", as in Alertmanager, which is how a text-only email is
    // configured; with no `text` either, the default HTML body is sent rather than nothing.
    let html = match (config.html.is_empty(), config.text.is_empty()) {
        (false, _) => Some(config.html.clone()),
        (true, false) => None,
        (true, true) => Some(email::DEFAULT_HTML.to_string()),
    };
    Ok(EmailSettings {
        to: config.to().to_string(),
        from: config.from.clone(),
        smarthost,
        hello: non_empty(&config.hello),
        auth_username: non_empty(&config.auth_username),
        auth_password,
        auth_identity: non_empty(&config.auth_identity),
        auth_secret,
        require_tls: config.require_tls(),
        tls,
        implicit_tls: config.force_implicit_tls,
        headers: config.headers.clone(),
        html,
        text: non_empty(&config.text),
        send_resolved: config.send_resolved,
        timeout: None,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn config(yaml: &str) -> AlertmanagerConfig {
        let mut config: AlertmanagerConfig =
            crate::config::parse_document(yaml, "alertmanager.yml").unwrap();
        config.finish().unwrap();
        config
    }

    fn build(yaml: &str, base_dir: &Path) -> Result<Integrations, String> {
        Integrations::build(&config(yaml), Arc::new(Templates::new()), base_dir)
    }

    fn key(name: &str, integration: &str, index: u32) -> ReceiverKey {
        ReceiverKey {
            name: name.to_string(),
            integration: integration.to_string(),
            index,
        }
    }

    #[test]
    fn keys_follow_the_pipeline() {
        let dir = tempfile::tempdir().unwrap();
        let integrations = build(
            "route: {receiver: team}\n\
             receivers:\n\
             - name: team\n  \
               webhook_configs: [{url: 'http://127.0.0.1:1/a'}, {url: 'http://127.0.0.1:1/b'}]\n  \
               email_configs: [{to: a@example.org, from: t@example.org, smarthost: '127.0.0.1:25'}]\n\
             - name: silent\n",
            dir.path(),
        )
        .unwrap();
        assert_eq!(integrations.len(), 3);
        for key in [
            key("team", "webhook", 0),
            key("team", "webhook", 1),
            key("team", "email", 0),
        ] {
            let notifier = integrations.get(&key).unwrap();
            assert_eq!(notifier.integration(), key.integration);
            assert!(integrations.stats(&key).is_some());
        }
        assert!(integrations.get(&key("team", "email", 1)).is_none());
        let keys: Vec<String> = integrations
            .iter_stats()
            .map(|(key, _)| key.to_string())
            .collect();
        assert_eq!(keys, ["team/email/0", "team/webhook/0", "team/webhook/1"]);
    }

    #[test]
    fn files_resolve_against_the_base_dir_and_are_trimmed() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("url"), "http://127.0.0.1:9/hook\n").unwrap();
        std::fs::write(dir.path().join("password"), " hunter2\n").unwrap();
        std::fs::write(dir.path().join("token"), "tok\n").unwrap();
        let yaml = "route: {receiver: team}\n\
             receivers:\n\
             - name: team\n  \
               webhook_configs:\n  \
               - url_file: url\n    \
                 http_config: {basic_auth: {username: u, password_file: password}}\n  \
               - url: 'http://127.0.0.1:9/x'\n    \
                 http_config: {bearer_token_file: token}\n    \
                 timeout: 5s\n    \
                 max_alerts: 3\n";
        let config = config(yaml);
        let files = Files {
            base_dir: dir.path(),
        };
        let receiver = &config.receivers[0].value;
        let first = webhook_settings(&receiver.webhook_configs[0].value, &files).unwrap();
        assert_eq!(first.url, "http://127.0.0.1:9/hook");
        assert_eq!(
            first.http.basic_auth,
            Some(("u".to_string(), "hunter2".to_string()))
        );
        assert_eq!(first.timeout, None);
        assert_eq!(first.max_alerts, 0);
        let second = webhook_settings(&receiver.webhook_configs[1].value, &files).unwrap();
        assert_eq!(
            second.http.authorization,
            Some(Authorization::bearer("tok"))
        );
        assert_eq!(second.timeout, Some(std::time::Duration::from_secs(5)));
        assert_eq!(second.max_alerts, 3);
        assert!(second.send_resolved);
        assert!(build(yaml, dir.path()).is_ok());
    }

    #[test]
    fn errors_name_the_receiver_and_integration() {
        let dir = tempfile::tempdir().unwrap();
        let error = build(
            "route: {receiver: team}\n\
             receivers:\n\
             - name: team\n  \
               webhook_configs: [{url: 'http://127.0.0.1:1/a'}, {url_file: missing}]\n",
            dir.path(),
        )
        .unwrap_err();
        assert!(
            error.starts_with(&format!(
                "receiver \"team\", webhook 1: cannot read url_file {}: ",
                dir.path().join("missing").display()
            )),
            "{error}"
        );

        // A URL read from a file is checked when the integration is built, without printing it.
        std::fs::write(dir.path().join("url"), "ftp://secret-token@example.org/\n").unwrap();
        let error = build(
            "route: {receiver: team}\n\
             receivers:\n\
             - name: team\n  \
               webhook_configs: [{url_file: url}]\n",
            dir.path(),
        )
        .unwrap_err();
        assert!(
            error.starts_with("receiver \"team\", webhook 0: invalid url: "),
            "{error}"
        );
        assert!(!error.contains("secret-token"), "{error}");

        let error = build(
            "route: {receiver: team}\n\
             receivers:\n\
             - name: team\n  \
               email_configs: [{to: a@example.org, from: t@example.org, smarthost: '127.0.0.1:25', auth_username: u, auth_password_file: /nonexistent/password}]\n",
            dir.path(),
        )
        .unwrap_err();
        assert!(
            error.starts_with(
                "receiver \"team\", email 0: cannot read auth_password_file /nonexistent/password: "
            ),
            "{error}"
        );
    }

    #[test]
    fn email_settings_follow_alertmanager() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ca.pem"), "-----BEGIN CERTIFICATE-----\n").unwrap();
        let config = config(
            "global: {smtp_smarthost: 'mail.example.org:587', smtp_from: alerts@example.org, smtp_auth_username: u, smtp_auth_password: p}\n\
             route: {receiver: team}\n\
             receivers:\n\
             - name: team\n  \
               email_configs:\n  \
               - to: team@example.org\n    \
                 headers: {subject: 'hi'}\n    \
                 tls_config: {ca_file: ca.pem, server_name: mail}\n  \
               - to: other@example.org\n    \
                 smarthost: '[::1]:25'\n    \
                 require_tls: false\n    \
                 html: ''\n    \
                 text: 'plain {{ .Status }}'\n    \
                 send_resolved: true\n",
        );
        let files = Files {
            base_dir: dir.path(),
        };
        let receiver = &config.receivers[0].value;
        let first = email_settings(&receiver.email_configs[0].value, &files).unwrap();
        assert_eq!(first.smarthost, "mail.example.org:587");
        assert_eq!(first.from, "alerts@example.org");
        assert_eq!(first.hello.as_deref(), Some("localhost"));
        assert_eq!(first.auth_username.as_deref(), Some("u"));
        assert_eq!(first.auth_password.as_deref(), Some("p"));
        assert!(first.require_tls);
        assert_eq!(first.headers.get("Subject").map(String::as_str), Some("hi"));
        assert_eq!(first.html.as_deref(), Some(email::DEFAULT_HTML));
        assert_eq!(first.text, None);
        assert!(!first.send_resolved);
        assert_eq!(
            first.tls.ca_pem.as_deref(),
            Some("-----BEGIN CERTIFICATE-----\n")
        );
        assert_eq!(first.tls.server_name.as_deref(), Some("mail"));
        let second = email_settings(&receiver.email_configs[1].value, &files).unwrap();
        assert_eq!(second.smarthost, "[::1]:25");
        assert!(!second.require_tls);
        assert_eq!(second.html, None);
        assert_eq!(second.text.as_deref(), Some("plain {{ .Status }}"));
        assert!(second.send_resolved);
    }

    #[test]
    fn unsupported_http_settings_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let error = build(
            "route: {receiver: team}\n\
             receivers:\n\
             - name: team\n  \
               webhook_configs: [{url: 'http://127.0.0.1:1/a', http_config: {proxy_from_environment: true}}]\n",
            dir.path(),
        )
        .unwrap_err();
        assert_eq!(
            error,
            "receiver \"team\", webhook 0: http_config: proxy_from_environment is not supported by Tocsin"
        );
    }

    #[test]
    fn stats_survive_a_rebuild() {
        let dir = tempfile::tempdir().unwrap();
        let yaml = "route: {receiver: team}\n\
             receivers:\n\
             - name: team\n  \
               webhook_configs: [{url: 'http://127.0.0.1:1/a'}]\n";
        let old = build(yaml, dir.path()).unwrap();
        old.stats(&key("team", "webhook", 0)).unwrap().record_sent();
        let mut new = build(yaml, dir.path()).unwrap();
        new.carry_stats_from(&old);
        let sent = new
            .stats(&key("team", "webhook", 0))
            .unwrap()
            .snapshot()
            .sent;
        assert_eq!(sent, 1);
    }
}
