//! Helpers shared by the integration tests: a test PKI made with rcgen and sample data.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use jiff::Timestamp;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use tocsin_receivers::{AlertData, AlertStatus, KeyValues, NotificationData};

/// A CA, a server certificate for `localhost`, 127.0.0.1 and `tocsin.test`, and a client
/// certificate, all PEM.
pub struct TestPki {
    pub ca_pem: String,
    pub server_cert_pem: String,
    pub server_key_pem: String,
    pub client_cert_pem: String,
    pub client_key_pem: String,
    /// A certificate for another name only (`elsewhere.test`), signed by the same CA.
    pub other_cert_pem: String,
    pub other_key_pem: String,
}

impl TestPki {
    pub fn new() -> TestPki {
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "Tocsin test CA");
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();

        let leaf = |names: Vec<String>, purpose: ExtendedKeyUsagePurpose| {
            let mut params = CertificateParams::new(names).unwrap();
            params
                .distinguished_name
                .push(DnType::CommonName, "tocsin test");
            params.extended_key_usages = vec![purpose];
            let key = KeyPair::generate().unwrap();
            let cert = params.signed_by(&key, &ca).unwrap();
            (cert.pem(), key.serialize_pem())
        };
        let (server_cert_pem, server_key_pem) = leaf(
            vec!["localhost".into(), "127.0.0.1".into(), "tocsin.test".into()],
            ExtendedKeyUsagePurpose::ServerAuth,
        );
        let (client_cert_pem, client_key_pem) = leaf(
            vec!["client.tocsin.test".into()],
            ExtendedKeyUsagePurpose::ClientAuth,
        );
        let (other_cert_pem, other_key_pem) = leaf(
            vec!["elsewhere.test".into()],
            ExtendedKeyUsagePurpose::ServerAuth,
        );
        TestPki {
            ca_pem: ca.pem(),
            server_cert_pem,
            server_key_pem,
            client_cert_pem,
            client_key_pem,
            other_cert_pem,
            other_key_pem,
        }
    }
}

fn key_values(pairs: &[(&str, &str)]) -> KeyValues {
    pairs
        .iter()
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .collect()
}

pub fn alert(status: AlertStatus, instance: &str) -> AlertData {
    AlertData {
        status,
        labels: key_values(&[
            ("alertname", "HighLatency"),
            ("instance", instance),
            ("job", "api"),
        ]),
        annotations: key_values(&[
            ("summary", "latency is high"),
            ("runbook", "https://runbooks/latency"),
        ]),
        starts_at: "2024-05-01T10:00:00Z".parse::<Timestamp>().unwrap(),
        ends_at: match status {
            AlertStatus::Firing => None,
            AlertStatus::Resolved => Some("2024-05-01T10:30:00.5Z".parse::<Timestamp>().unwrap()),
        },
        generator_url: format!("http://prometheus/graph?g0.expr=latency&instance={instance}"),
        fingerprint: format!("{:016x}", instance.len() as u64 * 0x1234_5678_9abc),
    }
}

/// Two firing alerts and one resolved, grouped by alertname.
pub fn sample_data() -> NotificationData {
    NotificationData::new(
        "team-api".into(),
        vec![
            alert(AlertStatus::Firing, "a:9090"),
            alert(AlertStatus::Firing, "bb:9090"),
            alert(AlertStatus::Resolved, "ccc:9090"),
        ],
        key_values(&[("alertname", "HighLatency")]),
        "http://tocsin.example:9093".into(),
        "{}:{alertname=\"HighLatency\"}".into(),
        "first_notification".into(),
    )
}
