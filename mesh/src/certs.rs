//! `tocsin certs`: a cluster CA and one certificate per node, for the mesh's mutual TLS.
// Certificate validity is computed from the wall clock; this is shell code, not a sans-IO core.
#![allow(clippy::disallowed_methods)]

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};

/// File name of the cluster CA certificate inside the TLS directory.
pub const CA_CERT_FILE: &str = "ca.pem";
/// File name of the cluster CA private key inside the TLS directory.
pub const CA_KEY_FILE: &str = "ca-key.pem";

const CA_COMMON_NAME: &str = "Tocsin cluster CA";
const CA_VALIDITY: Duration = Duration::from_secs(20 * 365 * 24 * 60 * 60);
const NODE_VALIDITY: Duration = Duration::from_secs(10 * 365 * 24 * 60 * 60);
/// Clocks of freshly installed machines disagree; a certificate valid from a day ago is usable
/// at once everywhere.
const BACKDATE: Duration = Duration::from_secs(24 * 60 * 60);

/// A failure creating or loading certificate files; names the file and the cause.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Certificate { path: PathBuf, message: String },
}

/// Certificate file name of a node inside the TLS directory.
pub fn node_cert_file(node_name: &str) -> String {
    format!("{node_name}.pem")
}

/// Private key file name of a node inside the TLS directory.
pub fn node_key_file(node_name: &str) -> String {
    format!("{node_name}-key.pem")
}

/// Creates `dir` if needed, a cluster CA unless `ca.pem` and `ca-key.pem` both exist (then they
/// are reused, so nodes can be added later), and for each name `<name>.pem` and
/// `<name>-key.pem`, signed by the CA and usable as TLS server and client. Returns the paths
/// written. Names must already be valid (`ClusterSettings::validate`).
pub fn create_certs(dir: &Path, node_names: &[String]) -> Result<Vec<PathBuf>, CertError> {
    fs::create_dir_all(dir).map_err(|source| CertError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let ca_cert_path = dir.join(CA_CERT_FILE);
    let ca_key_path = dir.join(CA_KEY_FILE);
    let mut written = Vec::new();

    let issuer = if ca_cert_path.exists() && ca_key_path.exists() {
        load_issuer(&ca_cert_path, &ca_key_path)?
    } else {
        let key = KeyPair::generate().map_err(|error| certificate_error(&ca_key_path, error))?;
        let params = ca_params();
        let cert = params
            .self_signed(&key)
            .map_err(|error| certificate_error(&ca_cert_path, error))?;
        write_private(&ca_key_path, &key.serialize_pem())?;
        write_public(&ca_cert_path, &cert.pem())?;
        written.push(ca_cert_path);
        written.push(ca_key_path);
        Issuer::new(params, key)
    };

    for name in node_names {
        let cert_path = dir.join(node_cert_file(name));
        let key_path = dir.join(node_key_file(name));
        let key = KeyPair::generate().map_err(|error| certificate_error(&key_path, error))?;
        let cert = node_params(name)
            .map_err(|error| certificate_error(&cert_path, error))?
            .signed_by(&key, &issuer)
            .map_err(|error| certificate_error(&cert_path, error))?;
        write_private(&key_path, &key.serialize_pem())?;
        write_public(&cert_path, &cert.pem())?;
        written.push(cert_path);
        written.push(key_path);
    }
    Ok(written)
}

fn ca_params() -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, CA_COMMON_NAME);
    params.distinguished_name = name;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let now = SystemTime::now();
    params.not_before = (now - BACKDATE).into();
    params.not_after = (now + CA_VALIDITY).into();
    params
}

fn node_params(name: &str) -> Result<CertificateParams, rcgen::Error> {
    let mut params = CertificateParams::new(vec![name.to_string()])?;
    let mut distinguished_name = DistinguishedName::new();
    distinguished_name.push(DnType::CommonName, name);
    params.distinguished_name = distinguished_name;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    // Every node both accepts and dials connections.
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    params.use_authority_key_identifier_extension = true;
    let now = SystemTime::now();
    params.not_before = (now - BACKDATE).into();
    params.not_after = (now + NODE_VALIDITY).into();
    Ok(params)
}

fn load_issuer(cert_path: &Path, key_path: &Path) -> Result<Issuer<'static, KeyPair>, CertError> {
    let key_pem = read_to_string(key_path)?;
    let key = KeyPair::from_pem(&key_pem).map_err(|error| certificate_error(key_path, error))?;
    let cert_pem = read_to_string(cert_path)?;
    Issuer::from_ca_cert_pem(&cert_pem, key).map_err(|error| certificate_error(cert_path, error))
}

fn certificate_error(path: &Path, error: rcgen::Error) -> CertError {
    CertError::Certificate {
        path: path.to_path_buf(),
        message: error.to_string(),
    }
}

fn read_to_string(path: &Path) -> Result<String, CertError> {
    fs::read_to_string(path).map_err(|source| CertError::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn write_public(path: &Path, contents: &str) -> Result<(), CertError> {
    fs::write(path, contents).map_err(|source| CertError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Private keys are created readable by the owner only, never briefly world-readable.
fn write_private(path: &Path, contents: &str) -> Result<(), CertError> {
    let io_error = |source| CertError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        options.mode(0o600);
        let mut file = options.open(path).map_err(io_error)?;
        // `mode` applies only when the file is created; an existing key file is tightened too.
        file.set_permissions(fs::Permissions::from_mode(0o600))
            .map_err(io_error)?;
        file.write_all(contents.as_bytes()).map_err(io_error)?;
    }
    #[cfg(not(unix))]
    {
        let mut file = options.open(path).map_err(io_error)?;
        file.write_all(contents.as_bytes()).map_err(io_error)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(names: &[&str]) -> Vec<String> {
        names.iter().map(|name| name.to_string()).collect()
    }

    #[test]
    fn creates_ca_and_node_files() {
        let dir = tempfile::tempdir().unwrap();
        let tls_dir = dir.path().join("certs");
        let written = create_certs(&tls_dir, &names(&["node-1", "node-2"])).unwrap();
        assert_eq!(written.len(), 6);
        for file in [
            "ca.pem",
            "ca-key.pem",
            "node-1.pem",
            "node-1-key.pem",
            "node-2.pem",
            "node-2-key.pem",
        ] {
            assert!(tls_dir.join(file).is_file(), "{file} missing");
        }
    }

    #[cfg(unix)]
    #[test]
    fn private_keys_are_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        create_certs(dir.path(), &names(&["a"])).unwrap();
        for file in ["ca-key.pem", "a-key.pem"] {
            let mode = fs::metadata(dir.path().join(file))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{file}");
        }
    }

    #[test]
    fn reuses_an_existing_ca() {
        let dir = tempfile::tempdir().unwrap();
        create_certs(dir.path(), &names(&["a"])).unwrap();
        let ca_before = fs::read_to_string(dir.path().join("ca.pem")).unwrap();
        let written = create_certs(dir.path(), &names(&["b"])).unwrap();
        assert_eq!(
            written,
            vec![dir.path().join("b.pem"), dir.path().join("b-key.pem")]
        );
        assert_eq!(
            fs::read_to_string(dir.path().join("ca.pem")).unwrap(),
            ca_before
        );
    }

    #[test]
    fn a_bad_ca_key_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        create_certs(dir.path(), &names(&["a"])).unwrap();
        fs::write(dir.path().join("ca-key.pem"), "not a key").unwrap();
        let error = create_certs(dir.path(), &names(&["b"])).unwrap_err();
        assert!(error.to_string().contains("ca-key.pem"), "{error}");
    }
}
