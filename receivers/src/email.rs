//! The email integration (`email_configs`): renders headers and bodies through the node's
//! template engine and sends one message per notification over SMTP (lettre on rustls/ring),
//! with Alertmanager's rules for STARTTLS, implicit TLS and AUTH.

use crate::data::NotificationData;
use crate::http_client::{SettingsError, TlsSettings, TlsVersion};
use crate::notifier::{Notifier, NotifyError, NotifyFuture, alerts_to_send, reason};
use lettre::message::header::{self, HeaderName, HeaderValue};
use lettre::message::{Mailbox, Mailboxes, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{
    Certificate, CertificateStore, Identity, Tls, TlsParameters,
};
use lettre::transport::smtp::extension::ClientId;
use lettre::{Address, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// Alertmanager's default `Subject` header, for configurations that set none.
pub const DEFAULT_SUBJECT: &str = r#"{{ template "email.default.subject" . }}"#;
/// Alertmanager's default `html` body.
pub const DEFAULT_HTML: &str = r#"{{ template "email.default.html" . }}"#;
/// The SMTP port on which Alertmanager speaks TLS from the first byte (SMTPS).
pub const IMPLICIT_TLS_PORT: u16 = 465;
/// The bound on one SMTP session when none is configured (lettre's own default).
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// How a template's output is escaped: as text, or as HTML for the `html` body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RenderMode {
    Text,
    Html,
}

/// Renders one template text against the notification; the node wraps its template engine in
/// this so that the crate does not depend on the engine's type. The error is shown to users.
pub type Renderer =
    Arc<dyn Fn(&str, &NotificationData, RenderMode) -> Result<String, String> + Send + Sync>;

/// `email_configs` entry, after the `global.smtp_*` defaults and with `*_file` contents read.
/// `to`, `from`, header values, `html` and `text` are templates.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EmailSettings {
    /// Recipients (an address list), the envelope's and the default `To` header.
    pub to: String,
    /// Sender address, the envelope's and the default `From` header.
    pub from: String,
    /// `host:port`.
    pub smarthost: String,
    /// The name sent with EHLO; `None` sends the machine's host name.
    pub hello: Option<String>,
    pub auth_username: Option<String>,
    pub auth_password: Option<String>,
    /// The PLAIN authorization identity. lettre sends none, which servers read as "the user
    /// name", so only an identity equal to the user name is honoured exactly.
    pub auth_identity: Option<String>,
    /// The CRAM-MD5 secret. lettre has no CRAM-MD5: a secret without a password is rejected.
    pub auth_secret: Option<String>,
    /// Requires STARTTLS: fails if the server does not offer it.
    pub require_tls: bool,
    pub tls: TlsSettings,
    /// TLS from the first byte; `None` decides as Alertmanager does: on port 465.
    pub implicit_tls: Option<bool>,
    /// Header names to value templates; `To` and `From` default to `to` and `from`, `Subject`
    /// to [`DEFAULT_SUBJECT`].
    pub headers: BTreeMap<String, String>,
    pub html: Option<String>,
    pub text: Option<String>,
    pub send_resolved: bool,
    /// Bound on each SMTP command; `None` means one minute.
    pub timeout: Option<Duration>,
}

/// An email receiver.
pub struct Email {
    settings: EmailSettings,
    host: String,
    port: u16,
    tls: Tls,
    credentials: Option<Credentials>,
    render: Renderer,
}

impl fmt::Debug for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Email")
            .field("smarthost", &self.settings.smarthost)
            .field("to", &self.settings.to)
            .finish_non_exhaustive()
    }
}

impl Email {
    pub fn new(settings: EmailSettings, render: Renderer) -> Result<Email, SettingsError> {
        let (host, port) = split_smarthost(&settings.smarthost)?;
        let implicit_tls = settings.implicit_tls.unwrap_or(port == IMPLICIT_TLS_PORT);
        let tls = if implicit_tls {
            Tls::Wrapper(tls_parameters(&settings.tls, &host)?)
        } else if settings.require_tls {
            Tls::Required(tls_parameters(&settings.tls, &host)?)
        } else {
            // Alertmanager sends in clear when STARTTLS is not required, even if offered.
            Tls::None
        };
        let credentials = credentials(&settings)?;
        Ok(Email {
            settings,
            host,
            port,
            tls,
            credentials,
            render,
        })
    }

    async fn send(&self, data: &NotificationData) -> Result<(), NotifyError> {
        let Some(data) = alerts_to_send(data, self.settings.send_resolved) else {
            return Ok(());
        };
        let message = self.message(&data)?;
        let mut builder =
            AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(self.host.as_str())
                .port(self.port)
                .tls(self.tls.clone())
                .timeout(Some(self.settings.timeout.unwrap_or(DEFAULT_TIMEOUT)));
        if let Some(hello) = self
            .settings
            .hello
            .as_deref()
            .filter(|hello| !hello.is_empty())
        {
            builder = builder.hello_name(ClientId::Domain(hello.to_string()));
        }
        if let Some(credentials) = &self.credentials {
            builder = builder
                .credentials(credentials.clone())
                .authentication(vec![Mechanism::Plain, Mechanism::Login]);
        }
        let transport = builder.build();
        transport
            .send(message)
            .await
            .map(drop)
            .map_err(|error| classify_smtp_error(&error))
    }

    /// The message for `data`: rendered envelope, headers and bodies.
    pub fn message(&self, data: &NotificationData) -> Result<Message, NotifyError> {
        let render = |field: &str, template: &str, mode: RenderMode| {
            (self.render)(template, data, mode).map_err(|error| {
                NotifyError::permanent(reason::TEMPLATE, format!("{field}: {error}"))
            })
        };
        let to = render("to", &self.settings.to, RenderMode::Text)?;
        let from = render("from", &self.settings.from, RenderMode::Text)?;
        let recipients: Mailboxes = to.parse().map_err(|error| {
            NotifyError::permanent(reason::TEMPLATE, format!("to {to:?}: {error}"))
        })?;
        let sender: Mailbox = from.parse().map_err(|error| {
            NotifyError::permanent(reason::TEMPLATE, format!("from {from:?}: {error}"))
        })?;
        let envelope = lettre::address::Envelope::new(
            Some(sender.email.clone()),
            recipients
                .iter()
                .map(|mailbox| mailbox.email.clone())
                .collect::<Vec<Address>>(),
        )
        .map_err(|error| NotifyError::permanent(reason::TEMPLATE, format!("envelope: {error}")))?;

        let mut headers: BTreeMap<String, (String, String)> = BTreeMap::new();
        for (name, template) in &self.settings.headers {
            let value = render(&format!("headers.{name}"), template, RenderMode::Text)?;
            headers.insert(name.to_ascii_lowercase(), (name.clone(), value));
        }
        let header_from = take_header(&mut headers, "from").unwrap_or(from);
        let header_to = take_header(&mut headers, "to").unwrap_or(to);
        let subject = match take_header(&mut headers, "subject") {
            Some(subject) => subject,
            None => render("headers.Subject", DEFAULT_SUBJECT, RenderMode::Text)?,
        };
        let header_from: Mailboxes = header_from.parse().map_err(|error| {
            NotifyError::permanent(
                reason::TEMPLATE,
                format!("header From {header_from:?}: {error}"),
            )
        })?;
        let header_to: Mailboxes = header_to.parse().map_err(|error| {
            NotifyError::permanent(
                reason::TEMPLATE,
                format!("header To {header_to:?}: {error}"),
            )
        })?;

        let builder = Message::builder()
            .envelope(envelope)
            .mailbox(header::From::from(header_from))
            .mailbox(header::To::from(header_to))
            .subject(subject)
            .date_now()
            .message_id(None);

        let text = match &self.settings.text {
            Some(template) => Some(render("text", template, RenderMode::Text)?),
            None => None,
        };
        let html = match &self.settings.html {
            Some(template) => Some(render("html", template, RenderMode::Html)?),
            None => None,
        };
        let built = match (text, html) {
            (Some(text), Some(html)) => {
                builder.multipart(MultiPart::alternative_plain_html(text, html))
            }
            (None, Some(html)) => builder.singlepart(SinglePart::html(html)),
            (Some(text), None) => builder.singlepart(SinglePart::plain(text)),
            (None, None) => builder.singlepart(SinglePart::plain(String::new())),
        };
        let mut message = built.map_err(|error| {
            NotifyError::permanent(reason::TEMPLATE, format!("message: {error}"))
        })?;
        for (name, value) in headers.into_values() {
            let header_name = HeaderName::new_from_ascii(name.clone()).map_err(|_| {
                NotifyError::permanent(reason::CONFIG, format!("header name {name:?} is not valid"))
            })?;
            message
                .headers_mut()
                .insert_raw(HeaderValue::new(header_name, value));
        }
        Ok(message)
    }
}

impl Notifier for Email {
    fn integration(&self) -> &'static str {
        "email"
    }

    fn notify<'a>(&'a self, data: &'a NotificationData) -> NotifyFuture<'a> {
        Box::pin(self.send(data))
    }
}

fn take_header(
    headers: &mut BTreeMap<String, (String, String)>,
    lowercase: &str,
) -> Option<String> {
    headers.remove(lowercase).map(|(_, value)| value)
}

/// `host:port`, with IPv6 hosts in brackets. Alertmanager requires the port.
fn split_smarthost(smarthost: &str) -> Result<(String, u16), SettingsError> {
    let invalid = |message: &str| SettingsError::Smarthost {
        smarthost: smarthost.to_string(),
        message: message.to_string(),
    };
    let (host, port) = smarthost
        .rsplit_once(':')
        .ok_or_else(|| invalid("missing port"))?;
    let port: u16 = port
        .parse()
        .map_err(|_| invalid("the port must be a number from 1 to 65535"))?;
    let host = host
        .strip_prefix('[')
        .and_then(|host| host.strip_suffix(']'))
        .unwrap_or(host);
    if host.is_empty() {
        return Err(invalid("missing host"));
    }
    if port == 0 {
        return Err(invalid("the port must be a number from 1 to 65535"));
    }
    Ok((host.to_string(), port))
}

fn tls_parameters(settings: &TlsSettings, host: &str) -> Result<TlsParameters, SettingsError> {
    let tls_error = |field: &str, error: lettre::transport::smtp::Error| {
        SettingsError::Tls(format!("{field}: {error}"))
    };
    let domain = settings
        .server_name
        .clone()
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| host.to_string());
    let mut builder = TlsParameters::builder(domain);
    if let Some(ca_pem) = &settings.ca_pem {
        // A configured CA replaces the system's roots, as in Go.
        builder = builder
            .certificate_store(CertificateStore::None)
            .add_root_certificate(
                Certificate::from_pem(ca_pem.as_bytes()).map_err(|e| tls_error("ca_file", e))?,
            );
    }
    match (&settings.client_cert_pem, &settings.client_key_pem) {
        (Some(cert), Some(key)) => {
            builder = builder.identify_with(
                Identity::from_pem(cert.as_bytes(), key.as_bytes())
                    .map_err(|e| tls_error("cert_file", e))?,
            );
        }
        (None, None) => {}
        _ => {
            return Err(SettingsError::Tls(
                "cert_file and key_file go together".into(),
            ));
        }
    }
    if settings.min_version == Some(TlsVersion::Tls13) {
        builder = builder.set_min_tls_version(lettre::transport::smtp::client::TlsVersion::Tlsv13);
    }
    builder = builder.dangerous_accept_invalid_certs(settings.insecure_skip_verify);
    builder
        .build_rustls()
        .map_err(|e| tls_error("tls_config", e))
}

fn credentials(settings: &EmailSettings) -> Result<Option<Credentials>, SettingsError> {
    let Some(username) = settings
        .auth_username
        .as_deref()
        .filter(|name| !name.is_empty())
    else {
        return Ok(None);
    };
    let password = settings.auth_password.as_deref().unwrap_or_default();
    if password.is_empty() {
        if settings
            .auth_secret
            .as_deref()
            .is_some_and(|secret| !secret.is_empty())
        {
            return Err(SettingsError::Unsupported(
                "auth_secret: CRAM-MD5 is not supported; set auth_password for PLAIN or LOGIN"
                    .into(),
            ));
        }
        return Err(SettingsError::Unsupported(format!(
            "auth_username {username:?} needs auth_password"
        )));
    }
    if let Some(identity) = settings
        .auth_identity
        .as_deref()
        .filter(|identity| !identity.is_empty())
        && identity != username
    {
        tracing::warn!(
            auth_identity = identity,
            auth_username = username,
            "auth_identity differs from auth_username; PLAIN is sent without an authorization identity"
        );
    }
    Ok(Some(Credentials::new(
        username.to_string(),
        password.to_string(),
    )))
}

/// SMTP 4xx and broken connections may pass later; 5xx will not.
pub fn classify_smtp_error(error: &lettre::transport::smtp::Error) -> NotifyError {
    let message = crate::http_client::error_chain(error);
    if error.is_permanent() {
        NotifyError::permanent(reason::SMTP_5XX, message)
    } else if error.is_transient() {
        NotifyError::retryable(reason::SMTP_4XX, message)
    } else if error.is_timeout() {
        NotifyError::retryable(reason::TIMEOUT, message)
    } else if error.is_tls() {
        NotifyError::retryable(reason::TLS, message)
    } else if error.is_client() || error.is_response() {
        NotifyError::retryable(reason::SMTP_PROTOCOL, message)
    } else {
        NotifyError::retryable(reason::CONNECTION, message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smarthosts() {
        assert_eq!(
            split_smarthost("mail.example.com:25"),
            Ok(("mail.example.com".into(), 25))
        );
        assert_eq!(split_smarthost("[::1]:587"), Ok(("::1".into(), 587)));
        assert!(split_smarthost("mail.example.com").is_err());
        assert!(split_smarthost(":25").is_err());
        assert!(split_smarthost("host:0").is_err());
        assert!(split_smarthost("host:70000").is_err());
    }

    #[test]
    fn credentials_rules() {
        let base = EmailSettings::default();
        assert_eq!(credentials(&base), Ok(None));
        let secret_only = EmailSettings {
            auth_username: Some("u".into()),
            auth_secret: Some("s".into()),
            ..EmailSettings::default()
        };
        assert!(matches!(
            credentials(&secret_only),
            Err(SettingsError::Unsupported(_))
        ));
        let password = EmailSettings {
            auth_username: Some("u".into()),
            auth_password: Some("p".into()),
            ..EmailSettings::default()
        };
        assert!(matches!(credentials(&password), Ok(Some(_))));
    }
}
