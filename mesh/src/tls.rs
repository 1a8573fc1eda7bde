//! Mutual TLS for the mesh: QUIC server and client configurations built from the cluster CA and
//! this node's certificate, with the ring provider, and the peer's authenticated node name.
// The insecure mode generates a certificate, whose validity reads the wall clock; this is shell
// code, not a sans-IO core.
#![allow(clippy::disallowed_methods)]

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};

use crate::ClusterSettings;
use crate::certs::{CA_CERT_FILE, node_cert_file, node_key_file};

/// The name a node presents as TLS server name when dialling; the real check is the CA chain and
/// the certificate's DNS SAN (see [`ClusterServerVerifier`]).
const DIAL_SERVER_NAME: &str = "tocsin-mesh";
/// How often an idle connection is pinged, so NATs keep the mapping and a dead peer is noticed.
const KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(2);
/// A connection (or a dial) without any packet from the peer for this long is dead.
const IDLE_TIMEOUT: Duration = Duration::from_secs(10);
/// Streams a peer may have open towards us at once: gossip and replication each take one.
const MAX_CONCURRENT_UNI_STREAMS: u32 = 256;

/// A failure loading the mesh's TLS material; names the file and the cause.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{path}: file not found (create it with `tocsin certs`)")]
    Missing { path: PathBuf },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error("TLS configuration: {0}")]
    Config(String),
}

/// The QUIC configurations of one node, and how it learns a peer's name.
pub struct MeshTls {
    pub server: quinn::ServerConfig,
    pub client: quinn::ClientConfig,
    /// No peer verification: names come from the peer's hello and are not authenticated.
    pub insecure: bool,
}

impl fmt::Debug for MeshTls {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("MeshTls")
            .field("insecure", &self.insecure)
            .finish_non_exhaustive()
    }
}

/// The ALPN protocol of a cluster: a node of another cluster fails the handshake.
pub fn alpn_protocol(cluster_name: &str) -> Vec<u8> {
    format!("tocsin-mesh/{cluster_name}").into_bytes()
}

/// The server name to dial peers with (they are verified by CA and SAN, not by this name).
pub fn dial_server_name() -> &'static str {
    DIAL_SERVER_NAME
}

fn provider() -> Arc<CryptoProvider> {
    // Explicitly ring: the process must not depend on whichever provider was installed first.
    Arc::new(rustls::crypto::ring::default_provider())
}

impl MeshTls {
    /// Loads `ca.pem`, `<node>.pem` and `<node>-key.pem` from `settings.tls_dir` and builds
    /// mutual-TLS configurations; with `insecure`, generates a self-signed certificate instead
    /// and verifies nothing.
    pub fn load(settings: &ClusterSettings, insecure: bool) -> Result<MeshTls, TlsError> {
        let alpn = alpn_protocol(&settings.cluster_name);
        let provider = provider();
        let (server_crypto, client_crypto) = if insecure {
            insecure_configs(&settings.node_name, &provider)?
        } else {
            let dir = &settings.tls_dir;
            let ca = read_certificates(&dir.join(CA_CERT_FILE))?;
            let chain = read_certificates(&dir.join(node_cert_file(&settings.node_name)))?;
            let key = read_private_key(&dir.join(node_key_file(&settings.node_name)))?;
            let mut roots = RootCertStore::empty();
            for certificate in ca {
                roots
                    .add(certificate)
                    .map_err(|error| invalid(&dir.join(CA_CERT_FILE), error))?;
            }
            verified_configs(Arc::new(roots), chain, key, &provider)?
        };
        build_quinn_configs(server_crypto, client_crypto, alpn, insecure)
    }
}

type RustlsConfigs = (rustls::ServerConfig, rustls::ClientConfig);

fn verified_configs(
    roots: Arc<RootCertStore>,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    provider: &Arc<CryptoProvider>,
) -> Result<RustlsConfigs, TlsError> {
    let client_verifier =
        WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone())
            .build()
            .map_err(config_error)?;
    let server = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(config_error)?
        .with_client_cert_verifier(client_verifier)
        .with_single_cert(chain.clone(), key.clone_key())
        .map_err(config_error)?;
    let server_verifier = WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
        .build()
        .map_err(config_error)?;
    let client = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(config_error)?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(ClusterServerVerifier {
            inner: server_verifier,
        }))
        .with_client_auth_cert(chain, key)
        .map_err(config_error)?;
    Ok((server, client))
}

fn insecure_configs(
    node_name: &str,
    provider: &Arc<CryptoProvider>,
) -> Result<RustlsConfigs, TlsError> {
    let generated =
        rcgen::generate_simple_self_signed(vec![node_name.to_string()]).map_err(config_error)?;
    let chain = vec![generated.cert.der().clone()];
    let key = PrivateKeyDer::try_from(generated.signing_key.serialize_der())
        .map_err(|error| TlsError::Config(error.to_string()))?;
    let server = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(config_error)?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(config_error)?;
    let client = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(config_error)?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAnyServer {
            algorithms: provider.signature_verification_algorithms,
        }))
        .with_no_client_auth();
    Ok((server, client))
}

fn build_quinn_configs(
    mut server_crypto: rustls::ServerConfig,
    mut client_crypto: rustls::ClientConfig,
    alpn: Vec<u8>,
    insecure: bool,
) -> Result<MeshTls, TlsError> {
    server_crypto.alpn_protocols = vec![alpn.clone()];
    client_crypto.alpn_protocols = vec![alpn];
    let transport = Arc::new(transport_config()?);
    let server_quic = QuicServerConfig::try_from(server_crypto).map_err(config_error)?;
    let mut server = quinn::ServerConfig::with_crypto(Arc::new(server_quic));
    server.transport_config(transport.clone());
    let client_quic = QuicClientConfig::try_from(client_crypto).map_err(config_error)?;
    let mut client = quinn::ClientConfig::new(Arc::new(client_quic));
    client.transport_config(transport);
    Ok(MeshTls {
        server,
        client,
        insecure,
    })
}

fn transport_config() -> Result<quinn::TransportConfig, TlsError> {
    let mut transport = quinn::TransportConfig::default();
    transport.keep_alive_interval(Some(KEEP_ALIVE_INTERVAL));
    transport.max_idle_timeout(Some(
        quinn::IdleTimeout::try_from(IDLE_TIMEOUT).map_err(config_error)?,
    ));
    transport.max_concurrent_uni_streams(MAX_CONCURRENT_UNI_STREAMS.into());
    // The mesh uses unidirectional streams only.
    transport.max_concurrent_bidi_streams(0u32.into());
    Ok(transport)
}

/// The node name a peer's certificate was issued for: its first DNS subject alternative name.
/// With mutual TLS the chain was verified against the cluster CA during the handshake.
pub fn certificate_node_name(certificate: &CertificateDer<'_>) -> Option<String> {
    let parsed = webpki::EndEntityCert::try_from(certificate).ok()?;
    parsed.valid_dns_names().next().map(str::to_string)
}

/// The authenticated node name of a QUIC connection's peer, from its certificate.
pub fn connection_node_name(connection: &quinn::Connection) -> Option<String> {
    let identity = connection.peer_identity()?;
    let chain = identity.downcast::<Vec<CertificateDer<'static>>>().ok()?;
    certificate_node_name(chain.first()?)
}

/// Verifies a server's chain against the cluster CA without knowing its name beforehand: a node
/// dials peers by address, so the name checked is the one the certificate itself carries, and
/// that name becomes the peer's identity.
#[derive(Debug)]
struct ClusterServerVerifier {
    inner: Arc<WebPkiServerVerifier>,
}

impl ServerCertVerifier for ClusterServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let name = certificate_node_name(end_entity).ok_or(rustls::Error::InvalidCertificate(
            rustls::CertificateError::NotValidForName,
        ))?;
        let server_name = ServerName::try_from(name).map_err(|_| {
            rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForName)
        })?;
        self.inner
            .verify_server_cert(end_entity, intermediates, &server_name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        certificate: &CertificateDer<'_>,
        signature: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner
            .verify_tls12_signature(message, certificate, signature)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        certificate: &CertificateDer<'_>,
        signature: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner
            .verify_tls13_signature(message, certificate, signature)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// Insecure mode only: any certificate is accepted, but the handshake signature is still checked
/// so the connection is at least encrypted to whoever holds the presented key.
#[derive(Debug)]
struct AcceptAnyServer {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for AcceptAnyServer {
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
        certificate: &CertificateDer<'_>,
        signature: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, certificate, signature, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        certificate: &CertificateDer<'_>,
        signature: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, certificate, signature, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bytes = read_file(path)?;
    let certificates = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| invalid(path, error))?;
    if certificates.is_empty() {
        return Err(TlsError::Invalid {
            path: path.to_path_buf(),
            message: "no PEM certificate found".to_string(),
        });
    }
    Ok(certificates)
}

fn read_private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let bytes = read_file(path)?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|error| invalid(path, error))
}

fn read_file(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|error| {
        if error.kind() == std::io::ErrorKind::NotFound {
            TlsError::Missing {
                path: path.to_path_buf(),
            }
        } else {
            invalid(path, error)
        }
    })
}

fn invalid(path: &Path, error: impl fmt::Display) -> TlsError {
    TlsError::Invalid {
        path: path.to_path_buf(),
        message: error.to_string(),
    }
}

fn config_error(error: impl fmt::Display) -> TlsError {
    TlsError::Config(error.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::certs::create_certs;

    fn settings(dir: &Path, node: &str) -> ClusterSettings {
        let mut settings = ClusterSettings::new(node.to_string());
        settings.tls_dir = dir.to_path_buf();
        settings
    }

    #[test]
    fn loads_certificates_created_by_certs() {
        let dir = tempfile::tempdir().unwrap();
        create_certs(dir.path(), &["node-1".to_string()]).unwrap();
        let tls = MeshTls::load(&settings(dir.path(), "node-1"), false).unwrap();
        assert!(!tls.insecure);
        let certificate = read_certificates(&dir.path().join("node-1.pem")).unwrap();
        assert_eq!(
            certificate_node_name(&certificate[0]).as_deref(),
            Some("node-1")
        );
    }

    #[test]
    fn missing_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let error = MeshTls::load(&settings(dir.path(), "node-1"), false).unwrap_err();
        assert!(matches!(error, TlsError::Missing { .. }));
        assert!(error.to_string().contains("ca.pem"), "{error}");

        create_certs(dir.path(), &["node-1".to_string()]).unwrap();
        let error = MeshTls::load(&settings(dir.path(), "node-2"), false).unwrap_err();
        assert!(error.to_string().contains("node-2.pem"), "{error}");
    }

    #[test]
    fn bad_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        create_certs(dir.path(), &["node-1".to_string()]).unwrap();
        std::fs::write(dir.path().join("node-1-key.pem"), "garbage").unwrap();
        let error = MeshTls::load(&settings(dir.path(), "node-1"), false).unwrap_err();
        assert!(error.to_string().contains("node-1-key.pem"), "{error}");
        std::fs::write(dir.path().join("ca.pem"), "garbage").unwrap();
        let error = MeshTls::load(&settings(dir.path(), "node-1"), false).unwrap_err();
        assert!(error.to_string().contains("ca.pem"), "{error}");
    }

    #[test]
    fn insecure_mode_needs_no_files() {
        let dir = tempfile::tempdir().unwrap();
        let tls = MeshTls::load(&settings(dir.path(), "node-1"), true).unwrap();
        assert!(tls.insecure);
    }
}
