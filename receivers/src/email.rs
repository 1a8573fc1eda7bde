//! The email integration (`email_configs`): renders headers and bodies through the node's
//! template engine and sends one message per notification over SMTP, with Alertmanager's rules
//! for STARTTLS, implicit TLS and AUTH.
//!
//! lettre (on rustls/ring) carries the connection, TLS, the envelope and the message; the AUTH
//! step is ours. Alertmanager takes the first mechanism of the server's own `AUTH` list that its
//! configuration can answer, and speaks CRAM-MD5 and PLAIN with an authorization identity:
//! lettre's mechanisms are a closed set without either, and its parsed server information
//! keeps neither the server's order nor the mechanisms it does not implement.

use crate::data::NotificationData;
use crate::http_client::{SettingsError, TlsSettings, TlsVersion};
use crate::notifier::{Notifier, NotifyError, NotifyFuture, alerts_to_send, reason};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, KeyInit as _, Mac as _};
use lettre::Message;
use lettre::message::header::{self, HeaderName, HeaderValue};
use lettre::message::{Mailbox, Mailboxes, MultiPart, SinglePart};
use lettre::transport::smtp::client::{
    AsyncSmtpConnection, Certificate, CertificateStore, Identity, TlsParameters,
};
use lettre::transport::smtp::commands::Ehlo;
use lettre::transport::smtp::extension::ClientId;
use lettre::transport::smtp::response::{Response, Severity};
use lettre::{Address, address::Envelope};
use md5::Md5;
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
/// The bound on each step of an SMTP session when none is configured (lettre's own default).
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
/// LOGIN needs two challenges and CRAM-MD5 one: a server that keeps asking is cut off.
const MAX_AUTH_CHALLENGES: usize = 4;

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
///
/// AUTH follows Alertmanager: with an `auth_username`, and when the server advertises AUTH, the
/// first mechanism of the server's list that the other fields can answer is used — CRAM-MD5
/// with `auth_secret`, PLAIN (with `auth_identity`) or LOGIN with `auth_password`; if none can,
/// the attempt fails naming what is missing. Without `auth_username`, or when the server offers
/// no AUTH, the message is sent unauthenticated.
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
    /// The user name for every mechanism; AUTH is attempted only when it is set.
    pub auth_username: Option<String>,
    /// The password for PLAIN and LOGIN.
    pub auth_password: Option<String>,
    /// The PLAIN authorization identity (RFC 4616 `authzid`); unset sends an empty one, which
    /// servers read as "the user name".
    pub auth_identity: Option<String>,
    /// The CRAM-MD5 secret (RFC 2195).
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
    /// Bound on each step of the SMTP session (connecting up to the first EHLO, STARTTLS,
    /// EHLO, each AUTH round, sending the message, QUIT); `None` means one minute.
    pub timeout: Option<Duration>,
}

/// How the session is protected.
enum Security {
    /// Alertmanager sends in clear when STARTTLS is not required, even if offered.
    Clear,
    StartTls(TlsParameters),
    Implicit(TlsParameters),
}

/// An email receiver.
pub struct Email {
    settings: EmailSettings,
    host: String,
    port: u16,
    security: Security,
    hello: ClientId,
    timeout: Duration,
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
        let security = if implicit_tls {
            Security::Implicit(tls_parameters(&settings.tls, &host)?)
        } else if settings.require_tls {
            Security::StartTls(tls_parameters(&settings.tls, &host)?)
        } else {
            Security::Clear
        };
        let hello = match settings.hello.as_deref().filter(|hello| !hello.is_empty()) {
            Some(hello) => ClientId::Domain(hello.to_string()),
            None => ClientId::default(),
        };
        if let Some(credentials) = Credentials::from_settings(&settings)
            && credentials.password.is_none()
            && credentials.secret.is_none()
        {
            // Alertmanager accepts this and fails only against servers that offer AUTH; say so
            // once here rather than only in every failed attempt.
            tracing::warn!(
                smarthost = settings.smarthost,
                auth_username = credentials.username,
                "auth_username is set without auth_password or auth_secret: \
                 sending fails whenever the server offers AUTH"
            );
        }
        let timeout = settings.timeout.unwrap_or(DEFAULT_TIMEOUT);
        Ok(Email {
            settings,
            host,
            port,
            security,
            hello,
            timeout,
            render,
        })
    }

    async fn send(&self, data: &NotificationData) -> Result<(), NotifyError> {
        let Some(data) = alerts_to_send(data, self.settings.send_resolved) else {
            return Ok(());
        };
        let message = self.message(&data)?;
        let mut connection = self.connect().await?;
        let result = self.deliver(&mut connection, &message).await;
        // One connection per notification, as lettre's transport does without its pool: QUIT
        // and close whatever happened. The outcome is known by now, so a server that does not
        // answer QUIT in time changes nothing.
        let _ = tokio::time::timeout(self.timeout, connection.abort()).await;
        result
    }

    /// Connects, reads the banner, sends EHLO and, when required, upgrades with STARTTLS (which
    /// lettre refuses when the server does not advertise it, and follows with a new EHLO).
    async fn connect(&self) -> Result<AsyncSmtpConnection, NotifyError> {
        let implicit = match &self.security {
            Security::Implicit(parameters) => Some(parameters.clone()),
            Security::Clear | Security::StartTls(_) => None,
        };
        let mut connection = self
            .step(
                "connect",
                AsyncSmtpConnection::connect_tokio1(
                    (self.host.as_str(), self.port),
                    Some(self.timeout),
                    &self.hello,
                    implicit,
                    None,
                ),
            )
            .await?;
        if let Security::StartTls(parameters) = &self.security {
            self.step(
                "STARTTLS",
                connection.starttls(parameters.clone(), &self.hello),
            )
            .await?;
        }
        Ok(connection)
    }

    async fn deliver(
        &self,
        connection: &mut AsyncSmtpConnection,
        message: &Message,
    ) -> Result<(), NotifyError> {
        self.authenticate(connection).await?;
        self.step(
            "send",
            connection.send(message.envelope(), &message.formatted()),
        )
        .await
        .map(drop)
    }

    /// AUTH as Alertmanager does it: see [`EmailSettings`] and [`choose_mechanism`].
    async fn authenticate(&self, connection: &mut AsyncSmtpConnection) -> Result<(), NotifyError> {
        let Some(credentials) = Credentials::from_settings(&self.settings) else {
            return Ok(());
        };
        // lettre's parsed EHLO reply keeps neither the server's order nor CRAM-MD5, and the
        // choice needs both: ask again. RFC 5321 (4.1.4) allows EHLO at any point; it only
        // resets a mail transaction, and none has begun.
        let ehlo = self
            .step("EHLO", connection.command(Ehlo::new(self.hello.clone())))
            .await?;
        let Some(offered) = advertised_mechanisms(&ehlo) else {
            // No AUTH extension: Alertmanager sends unauthenticated, and the server decides.
            return Ok(());
        };
        let mechanism = choose_mechanism(&offered, &credentials).map_err(|why| {
            // Retried, as by Alertmanager: the server may offer more later (another host behind
            // the same name); `smtp_protocol` keeps it apart from the server's refusals.
            NotifyError::retryable(reason::SMTP_PROTOCOL, format!("AUTH: {why}"))
        })?;
        let label = mechanism.label();
        let mut reply = self
            .step(
                label,
                connection.command(initial_command(mechanism, &credentials)),
            )
            .await?;
        let mut challenges = 0;
        while reply.has_code(334) {
            challenges += 1;
            let answer = (challenges <= MAX_AUTH_CHALLENGES)
                .then(|| decode_challenge(&reply))
                .flatten()
                .and_then(|challenge| answer(mechanism, &credentials, &challenge));
            let Some(answer) = answer else {
                // RFC 4954: "*" cancels the exchange (the server answers 501, ignored).
                let _ = self.step(label, connection.command("*\r\n")).await;
                return Err(NotifyError::retryable(
                    reason::SMTP_PROTOCOL,
                    format!("{label}: unexpected server challenge"),
                ));
            };
            reply = self
                .step(
                    label,
                    connection.command(format!("{}\r\n", BASE64.encode(answer))),
                )
                .await?;
        }
        // lettre turns 4xx and 5xx into errors (a wrong secret is 535: permanent); anything
        // else but 2xx breaks the protocol.
        if reply.code().severity != Severity::PositiveCompletion {
            return Err(NotifyError::retryable(
                reason::SMTP_PROTOCOL,
                format!("{label}: unexpected reply {}", reply.code()),
            ));
        }
        Ok(())
    }

    /// Runs one step of the session within the timeout; errors say which step failed.
    async fn step<T>(
        &self,
        label: &str,
        future: impl Future<Output = Result<T, lettre::transport::smtp::Error>>,
    ) -> Result<T, NotifyError> {
        match tokio::time::timeout(self.timeout, future).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(error)) => {
                let mut error = classify_smtp_error(&error);
                error.message = format!("{label}: {}", error.message);
                Err(error)
            }
            Err(_) => Err(NotifyError::retryable(
                reason::TIMEOUT,
                format!("{label}: no answer within {:?}", self.timeout),
            )),
        }
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
        let envelope = Envelope::new(
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

/// The `auth_*` settings AUTH may use; empty values count as unset, as in Alertmanager. No
/// `Debug`: it holds secrets.
struct Credentials<'a> {
    username: &'a str,
    password: Option<&'a str>,
    secret: Option<&'a str>,
    identity: &'a str,
}

impl<'a> Credentials<'a> {
    /// `None` without a user name: no AUTH at all.
    fn from_settings(settings: &'a EmailSettings) -> Option<Credentials<'a>> {
        let set = |value: &'a Option<String>| value.as_deref().filter(|value| !value.is_empty());
        Some(Credentials {
            username: set(&settings.auth_username)?,
            password: set(&settings.auth_password),
            secret: set(&settings.auth_secret),
            identity: set(&settings.auth_identity).unwrap_or_default(),
        })
    }
}

/// The SASL mechanisms Tocsin speaks, Alertmanager's three.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mechanism {
    /// RFC 2195, with `auth_secret`.
    CramMd5,
    /// RFC 4616, with `auth_identity` and `auth_password`.
    Plain,
    /// draft-murchison-sasl-login, with `auth_password`.
    Login,
}

impl Mechanism {
    fn from_name(name: &str) -> Option<Mechanism> {
        // SASL names are upper case (RFC 4422); a server that says otherwise is still clear.
        [Mechanism::CramMd5, Mechanism::Plain, Mechanism::Login]
            .into_iter()
            .find(|mechanism| mechanism.name().eq_ignore_ascii_case(name))
    }

    fn name(self) -> &'static str {
        match self {
            Mechanism::CramMd5 => "CRAM-MD5",
            Mechanism::Plain => "PLAIN",
            Mechanism::Login => "LOGIN",
        }
    }

    /// The step's name in errors.
    fn label(self) -> &'static str {
        match self {
            Mechanism::CramMd5 => "AUTH CRAM-MD5",
            Mechanism::Plain => "AUTH PLAIN",
            Mechanism::Login => "AUTH LOGIN",
        }
    }

    /// The setting the mechanism needs besides the user name, if it is missing.
    fn missing(self, credentials: &Credentials<'_>) -> Option<&'static str> {
        match self {
            Mechanism::CramMd5 => credentials.secret.is_none().then_some("auth_secret"),
            Mechanism::Plain | Mechanism::Login => {
                credentials.password.is_none().then_some("auth_password")
            }
        }
    }
}

/// The mechanisms of the EHLO reply's `AUTH` line, in the server's order; `None` when the
/// server does not advertise AUTH. The first line is the server's name, not an extension.
fn advertised_mechanisms(ehlo: &Response) -> Option<Vec<String>> {
    ehlo.message().skip(1).find_map(|line| {
        let (keyword, mechanisms) = line.split_once(' ').unwrap_or((line, ""));
        keyword
            .eq_ignore_ascii_case("AUTH")
            .then(|| mechanisms.split_whitespace().map(str::to_string).collect())
    })
}

/// Alertmanager's choice: the first mechanism in the server's order that Tocsin speaks and the
/// configuration can answer, so a server offering `LOGIN PLAIN` gets LOGIN. The error names
/// the settings that are missing (never a value), or says that nothing offered is spoken.
fn choose_mechanism(
    offered: &[String],
    credentials: &Credentials<'_>,
) -> Result<Mechanism, String> {
    let mut missing: Vec<String> = Vec::new();
    for mechanism in offered.iter().filter_map(|name| Mechanism::from_name(name)) {
        match mechanism.missing(credentials) {
            None => return Ok(mechanism),
            Some(setting) => {
                let why = format!("{} needs {setting}", mechanism.name());
                if !missing.contains(&why) {
                    missing.push(why);
                }
            }
        }
    }
    if missing.is_empty() {
        Err(format!(
            "the server offers {:?}, none of CRAM-MD5, PLAIN or LOGIN",
            offered.join(" ")
        ))
    } else {
        Err(format!(
            "no mechanism the server offers fits the configuration: {}",
            missing.join("; ")
        ))
    }
}

/// The AUTH command. PLAIN carries its answer (RFC 4954's initial response), as Go's client
/// sends it; LOGIN and CRAM-MD5 wait for the server's challenge.
fn initial_command(mechanism: Mechanism, credentials: &Credentials<'_>) -> String {
    match mechanism {
        Mechanism::Plain => {
            let message = format!(
                "{}\0{}\0{}",
                credentials.identity,
                credentials.username,
                credentials.password.unwrap_or_default()
            );
            format!("AUTH PLAIN {}\r\n", BASE64.encode(message))
        }
        Mechanism::Login | Mechanism::CramMd5 => format!("AUTH {}\r\n", mechanism.name()),
    }
}

/// The decoded challenge of a 334 reply; `None` when it is not base64.
fn decode_challenge(reply: &Response) -> Option<Vec<u8>> {
    BASE64
        .decode(reply.first_line().unwrap_or_default().trim())
        .ok()
}

/// The answer to a challenge, before base64; `None` for a challenge the mechanism does not
/// expect (PLAIN has said everything, LOGIN asks only for the user name and the password).
fn answer(mechanism: Mechanism, credentials: &Credentials<'_>, challenge: &[u8]) -> Option<String> {
    match mechanism {
        Mechanism::Plain => None,
        Mechanism::Login => {
            // Servers word the prompts differently ("Username:", aiosmtpd's "User Name\0");
            // Go's client knows only the first, lettre's (which worked here before) all of them.
            let prompt = String::from_utf8_lossy(challenge).to_ascii_lowercase();
            let prompt = prompt.trim_matches(|c: char| c.is_whitespace() || c == '\0' || c == ':');
            match prompt {
                "username" | "user name" => Some(credentials.username.to_string()),
                "password" => credentials.password.map(str::to_string),
                _ => None,
            }
        }
        Mechanism::CramMd5 => {
            let digest = cram_md5_digest(credentials.secret?, challenge)?;
            Some(format!("{} {digest}", credentials.username))
        }
    }
}

/// RFC 2195: the lower-case hex HMAC-MD5 of the challenge, keyed with the secret.
fn cram_md5_digest(secret: &str, challenge: &[u8]) -> Option<String> {
    // HMAC takes keys of any length, so this does not fail; no panic either way.
    let mut mac = Hmac::<Md5>::new_from_slice(secret.as_bytes()).ok()?;
    mac.update(challenge);
    let digest = mac.finalize().into_bytes();
    Some(digest.iter().map(|byte| format!("{byte:02x}")).collect())
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

    fn credentials(
        password: Option<&'static str>,
        secret: Option<&'static str>,
    ) -> Credentials<'static> {
        Credentials {
            username: "alice",
            password,
            secret,
            identity: "",
        }
    }

    fn offered(list: &str) -> Vec<String> {
        list.split(' ').map(str::to_string).collect()
    }

    #[test]
    fn credentials_need_a_user_name_and_ignore_empty_values() {
        assert!(Credentials::from_settings(&EmailSettings::default()).is_none());
        let settings = EmailSettings {
            auth_username: Some("u".into()),
            auth_password: Some(String::new()),
            auth_secret: Some("s".into()),
            auth_identity: Some(String::new()),
            ..EmailSettings::default()
        };
        let credentials = Credentials::from_settings(&settings).unwrap();
        assert_eq!(
            (
                credentials.username,
                credentials.password,
                credentials.secret,
                credentials.identity
            ),
            ("u", None, Some("s"), "")
        );
    }

    #[test]
    fn the_mechanism_is_the_first_usable_one_in_the_servers_order() {
        let both = credentials(Some("p"), Some("s"));
        assert_eq!(
            choose_mechanism(&offered("CRAM-MD5 PLAIN LOGIN"), &both),
            Ok(Mechanism::CramMd5)
        );
        assert_eq!(
            choose_mechanism(&offered("LOGIN PLAIN CRAM-MD5"), &both),
            Ok(Mechanism::Login)
        );
        assert_eq!(
            choose_mechanism(&offered("XOAUTH2 plain"), &both),
            Ok(Mechanism::Plain)
        );
        let password = credentials(Some("p"), None);
        assert_eq!(
            choose_mechanism(&offered("CRAM-MD5 PLAIN LOGIN"), &password),
            Ok(Mechanism::Plain)
        );
        let secret = credentials(None, Some("s"));
        assert_eq!(
            choose_mechanism(&offered("PLAIN LOGIN CRAM-MD5"), &secret),
            Ok(Mechanism::CramMd5)
        );
        assert_eq!(
            choose_mechanism(&offered("PLAIN LOGIN PLAIN"), &secret),
            Err("no mechanism the server offers fits the configuration: \
                 PLAIN needs auth_password; LOGIN needs auth_password"
                .into())
        );
        assert_eq!(
            choose_mechanism(&offered("CRAM-MD5"), &password),
            Err(
                "no mechanism the server offers fits the configuration: CRAM-MD5 needs auth_secret"
                    .into()
            )
        );
        assert_eq!(
            choose_mechanism(&offered("XOAUTH2 OAUTHBEARER"), &both),
            Err(
                "the server offers \"XOAUTH2 OAUTHBEARER\", none of CRAM-MD5, PLAIN or LOGIN"
                    .into()
            )
        );
        assert!(choose_mechanism(&[], &both).is_err());
    }

    #[test]
    fn the_auth_line_of_the_ehlo_reply() {
        let reply: Response =
            "250-smtp.example.org\r\n250-AUTHX Y\r\n250-AUTH LOGIN CRAM-MD5  PLAIN\r\n250 HELP\r\n"
                .parse()
                .unwrap();
        assert_eq!(
            advertised_mechanisms(&reply),
            Some(offered("LOGIN CRAM-MD5 PLAIN"))
        );
        let none: Response = "250-smtp.example.org\r\n250-AUTH=LOGIN\r\n250 STARTTLS\r\n"
            .parse()
            .unwrap();
        assert_eq!(advertised_mechanisms(&none), None);
        // The server's name is not an extension, whatever it is called.
        let named: Response = "250-AUTH\r\n250 HELP\r\n".parse().unwrap();
        assert_eq!(advertised_mechanisms(&named), None);
    }

    #[test]
    fn sasl_messages() {
        let mut plain = credentials(Some("p4ss"), None);
        assert_eq!(
            initial_command(Mechanism::Plain, &plain),
            format!("AUTH PLAIN {}\r\n", BASE64.encode("\0alice\0p4ss"))
        );
        plain.identity = "ops";
        assert_eq!(
            initial_command(Mechanism::Plain, &plain),
            format!("AUTH PLAIN {}\r\n", BASE64.encode("ops\0alice\0p4ss"))
        );
        assert_eq!(answer(Mechanism::Plain, &plain, b""), None);
        assert_eq!(initial_command(Mechanism::Login, &plain), "AUTH LOGIN\r\n");
        assert_eq!(
            answer(Mechanism::Login, &plain, b"Username:").as_deref(),
            Some("alice")
        );
        assert_eq!(
            answer(Mechanism::Login, &plain, b"User Name\0").as_deref(),
            Some("alice")
        );
        assert_eq!(
            answer(Mechanism::Login, &plain, b"password:").as_deref(),
            Some("p4ss")
        );
        assert_eq!(answer(Mechanism::Login, &plain, b"Token:"), None);
        assert_eq!(
            initial_command(Mechanism::CramMd5, &plain),
            "AUTH CRAM-MD5\r\n"
        );
        let reply: Response = "334 VXNlcm5hbWU6\r\n".parse().unwrap();
        assert_eq!(decode_challenge(&reply).as_deref(), Some(&b"Username:"[..]));
        let garbage: Response = "334 not base64!\r\n".parse().unwrap();
        assert_eq!(decode_challenge(&garbage), None);
    }

    #[test]
    fn cram_md5_matches_rfc_2195() {
        let challenge = b"<1896.697170952@postoffice.reston.mci.net>";
        let tim = Credentials {
            username: "tim",
            password: None,
            secret: Some("tanstaaftanstaaf"),
            identity: "",
        };
        assert_eq!(
            answer(Mechanism::CramMd5, &tim, challenge).as_deref(),
            Some("tim b913a602c7eda7a495b4e6e7334d3890")
        );
        assert_eq!(
            answer(Mechanism::CramMd5, &credentials(Some("p"), None), challenge),
            None
        );
    }
}
