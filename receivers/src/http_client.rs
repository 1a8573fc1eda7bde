//! HTTP client settings as Prometheus's `http_config` describes them (with every `*_file`
//! already read by the node), and the `reqwest` client built from them on rustls with ring.
//!
//! The TLS part ([`TlsSettings`], [`rustls_client_config`]) is shared with the email
//! integration's STARTTLS and implicit TLS.

use reqwest::header::{AUTHORIZATION, HeaderValue};
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use std::sync::Arc;
use std::time::Duration;

/// The `User-Agent` of every request, as Alertmanager sends `Alertmanager/<version>`.
pub const USER_AGENT: &str = concat!("Tocsin/", env!("CARGO_PKG_VERSION"));

/// The process's one rustls crypto provider: ring, which quinn also uses.
pub fn crypto_provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Installs ring as the process-wide default rustls provider, for libraries that look it up
/// (reqwest and lettre do when not handed a configuration). Idempotent; returns whether this call
/// installed it. A different provider installed earlier is left alone, and rustls then keeps
/// that one.
pub fn install_crypto_provider() -> bool {
    rustls::crypto::ring::default_provider()
        .install_default()
        .is_ok()
}

/// An unusable setting, found while building an integration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingsError {
    #[error("tls_config: {0}")]
    Tls(String),
    #[error("proxy_url {url:?}: {message}")]
    Proxy { url: String, message: String },
    #[error("url {url:?}: {message}")]
    Url { url: String, message: String },
    #[error("http_config: {0}")]
    Http(String),
    #[error("smarthost {smarthost:?}: {message}")]
    Smarthost { smarthost: String, message: String },
    #[error("{0}")]
    Unsupported(String),
}

/// The lowest TLS version to accept (`min_version`). rustls speaks only TLS 1.2 and 1.3, so
/// anything below 1.2 means "1.2 and up".
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub enum TlsVersion {
    Tls10,
    Tls11,
    #[default]
    Tls12,
    Tls13,
}

/// `tls_config`, with file contents already read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsSettings {
    /// PEM CA certificates; when set they replace the system's roots, as Go's `RootCAs` does.
    pub ca_pem: Option<String>,
    /// PEM client certificate chain, presented when the server asks.
    pub client_cert_pem: Option<String>,
    /// PEM private key of the client certificate.
    pub client_key_pem: Option<String>,
    /// The name the server's certificate must carry, instead of the host we connect to.
    pub server_name: Option<String>,
    /// Skips all verification of the server's certificate. Only when the user asks.
    pub insecure_skip_verify: bool,
    pub min_version: Option<TlsVersion>,
}

/// `authorization`: a scheme and its credentials, sent as `Authorization: <scheme> <credentials>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorization {
    /// `Bearer` unless configured otherwise.
    pub scheme: String,
    pub credentials: String,
}

impl Authorization {
    pub fn bearer(token: impl Into<String>) -> Authorization {
        Authorization {
            scheme: "Bearer".into(),
            credentials: token.into(),
        }
    }
}

/// `http_config`, with file contents already read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpSettings {
    /// User name and password.
    pub basic_auth: Option<(String, String)>,
    /// `authorization` (or the legacy `bearer_token`, as [`Authorization::bearer`]).
    pub authorization: Option<Authorization>,
    pub tls: TlsSettings,
    pub proxy_url: Option<String>,
    pub follow_redirects: bool,
    /// Bound on each request, connection included; `None` leaves only the caller's deadline.
    pub timeout: Option<Duration>,
}

impl Default for HttpSettings {
    fn default() -> HttpSettings {
        HttpSettings {
            basic_auth: None,
            authorization: None,
            tls: TlsSettings::default(),
            proxy_url: None,
            follow_redirects: true,
            timeout: None,
        }
    }
}

/// A client configured from [`HttpSettings`]: reqwest plus the credentials it adds to each
/// request.
#[derive(Debug, Clone)]
pub struct HttpClient {
    client: reqwest::Client,
    authorization: Option<HeaderValue>,
    basic_auth: Option<(String, String)>,
}

impl HttpClient {
    pub fn new(settings: &HttpSettings) -> Result<HttpClient, SettingsError> {
        let tls = rustls_client_config(&settings.tls, &[b"http/1.1".to_vec()])?;
        let redirects = if settings.follow_redirects {
            reqwest::redirect::Policy::limited(10)
        } else {
            reqwest::redirect::Policy::none()
        };
        let mut builder = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .user_agent(USER_AGENT)
            .redirect(redirects)
            .http1_only();
        builder = match &settings.proxy_url {
            Some(url) => builder.proxy(reqwest::Proxy::all(url.as_str()).map_err(|error| {
                SettingsError::Proxy {
                    url: url.clone(),
                    message: error.to_string(),
                }
            })?),
            // Like Prometheus's http_config: the environment's proxy only when configured.
            None => builder.no_proxy(),
        };
        if let Some(timeout) = settings.timeout {
            builder = builder.timeout(timeout);
        }
        let client = builder
            .build()
            .map_err(|error| SettingsError::Http(error_chain(&error)))?;
        let authorization = match &settings.authorization {
            Some(authorization) => {
                let mut value = HeaderValue::from_str(&format!(
                    "{} {}",
                    authorization.scheme, authorization.credentials
                ))
                .map_err(|_| {
                    SettingsError::Http("authorization: credentials must be visible ASCII".into())
                })?;
                value.set_sensitive(true);
                Some(value)
            }
            None => None,
        };
        Ok(HttpClient {
            client,
            authorization,
            basic_auth: settings.basic_auth.clone(),
        })
    }

    /// A POST to `url` carrying the configured credentials.
    pub fn post(&self, url: reqwest::Url) -> reqwest::RequestBuilder {
        let mut request = self.client.post(url);
        if let Some((username, password)) = &self.basic_auth {
            request = request.basic_auth(username, Some(password));
        }
        if let Some(authorization) = &self.authorization {
            request = request.header(AUTHORIZATION, authorization.clone());
        }
        request
    }

    pub fn inner(&self) -> &reqwest::Client {
        &self.client
    }
}

/// A rustls client configuration for `settings`, on ring, advertising `alpn`.
pub fn rustls_client_config(
    settings: &TlsSettings,
    alpn: &[Vec<u8>],
) -> Result<ClientConfig, SettingsError> {
    let provider = crypto_provider();
    let versions: &[&rustls::SupportedProtocolVersion] = match settings.min_version {
        Some(TlsVersion::Tls13) => &[&rustls::version::TLS13],
        _ => rustls::ALL_VERSIONS,
    };
    let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(versions)
        .map_err(|error| SettingsError::Tls(error.to_string()))?;

    let verifier: Arc<dyn ServerCertVerifier> = if settings.insecure_skip_verify {
        Arc::new(InsecureVerifier {
            provider: Arc::clone(&provider),
        })
    } else {
        let base: Arc<dyn ServerCertVerifier> = match &settings.ca_pem {
            Some(ca_pem) => {
                let mut roots = RootCertStore::empty();
                for cert in parse_certificates(ca_pem, "ca_file")? {
                    roots
                        .add(cert)
                        .map_err(|error| SettingsError::Tls(format!("ca_file: {error}")))?;
                }
                WebPkiServerVerifier::builder_with_provider(Arc::new(roots), Arc::clone(&provider))
                    .build()
                    .map_err(|error| SettingsError::Tls(format!("ca_file: {error}")))?
            }
            None => Arc::new(
                rustls_platform_verifier::Verifier::new(Arc::clone(&provider))
                    .map_err(|error| SettingsError::Tls(format!("system roots: {error}")))?,
            ),
        };
        match &settings.server_name {
            Some(name) if !name.is_empty() => {
                let server_name = ServerName::try_from(name.clone()).map_err(|_| {
                    SettingsError::Tls(format!("server_name {name:?} is not a valid name"))
                })?;
                Arc::new(ServerNameOverride {
                    inner: base,
                    server_name,
                })
            }
            _ => base,
        }
    };
    let builder = builder
        .dangerous()
        .with_custom_certificate_verifier(verifier);

    let mut config = match (&settings.client_cert_pem, &settings.client_key_pem) {
        (Some(cert_pem), Some(key_pem)) => {
            let chain = parse_certificates(cert_pem, "cert_file")?;
            let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
                .map_err(|error| SettingsError::Tls(format!("key_file: {error}")))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|error| SettingsError::Tls(format!("cert_file and key_file: {error}")))?
        }
        (None, None) => builder.with_no_client_auth(),
        (Some(_), None) => {
            return Err(SettingsError::Tls(
                "cert_file given without key_file".into(),
            ));
        }
        (None, Some(_)) => {
            return Err(SettingsError::Tls(
                "key_file given without cert_file".into(),
            ));
        }
    };
    config.alpn_protocols = alpn.to_vec();
    Ok(config)
}

fn parse_certificates(
    pem: &str,
    field: &str,
) -> Result<Vec<CertificateDer<'static>>, SettingsError> {
    let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| SettingsError::Tls(format!("{field}: {error}")))?;
    if certs.is_empty() {
        return Err(SettingsError::Tls(format!(
            "{field}: no PEM certificate found"
        )));
    }
    Ok(certs)
}

/// Checks the server's certificate against the configured `server_name` rather than the host
/// connected to (the SNI sent is still the host: reqwest takes it from the URL).
#[derive(Debug)]
struct ServerNameOverride {
    inner: Arc<dyn ServerCertVerifier>,
    server_name: ServerName<'static>,
}

impl ServerCertVerifier for ServerNameOverride {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.inner.verify_server_cert(
            end_entity,
            intermediates,
            &self.server_name,
            ocsp_response,
            now,
        )
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }

    fn root_hint_subjects(&self) -> Option<&[rustls::DistinguishedName]> {
        self.inner.root_hint_subjects()
    }
}

/// `insecure_skip_verify`: accepts any certificate, but still checks that the server holds its
/// key, so the handshake itself stays sound.
#[derive(Debug)]
struct InsecureVerifier {
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for InsecureVerifier {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// An error and its causes on one line: reqwest's own message ("error sending request") hides
/// the useful part (refused, certificate unknown) in its sources.
pub(crate) fn error_chain(error: &dyn std::error::Error) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = cause.source();
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_half_a_client_identity_and_bad_pem() {
        let half = TlsSettings {
            client_cert_pem: Some("x".into()),
            ..TlsSettings::default()
        };
        assert!(matches!(
            rustls_client_config(&half, &[]),
            Err(SettingsError::Tls(_))
        ));
        let bad_ca = TlsSettings {
            ca_pem: Some("not pem".into()),
            ..TlsSettings::default()
        };
        assert!(matches!(
            rustls_client_config(&bad_ca, &[]),
            Err(SettingsError::Tls(_))
        ));
    }

    #[test]
    fn builds_with_system_roots_and_insecure() {
        assert!(HttpClient::new(&HttpSettings::default()).is_ok());
        let insecure = HttpSettings {
            tls: TlsSettings {
                insecure_skip_verify: true,
                ..TlsSettings::default()
            },
            ..HttpSettings::default()
        };
        assert!(HttpClient::new(&insecure).is_ok());
    }

    #[test]
    fn rejects_a_bad_proxy_url() {
        let settings = HttpSettings {
            proxy_url: Some("::not a url".into()),
            ..HttpSettings::default()
        };
        assert!(matches!(
            HttpClient::new(&settings),
            Err(SettingsError::Proxy { .. })
        ));
    }
}
