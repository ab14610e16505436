//! The emulator's own test CA and server certificate.

use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::ServerConfig;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::Error;

/// A freshly minted CA plus a leaf for `localhost`, `127.0.0.1` and extra names.
pub(crate) struct TlsMaterial {
    pub ca_pem: String,
    pub server_config: Arc<ServerConfig>,
}

/// A test CA and a server certificate it signed, for loopback test servers.
pub struct TestCertificate {
    /// The CA certificate (PEM): what a client must trust.
    pub ca_pem: String,
    /// The CA certificate (DER).
    pub ca_der: Vec<u8>,
    /// The server certificate (PEM).
    pub leaf_pem: String,
    /// The server certificate (DER).
    pub leaf_der: Vec<u8>,
    /// The server key (PKCS#8 PEM).
    pub key_pem: String,
    /// The server key (PKCS#8 DER).
    pub key_der: Vec<u8>,
}

impl std::fmt::Debug for TestCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestCertificate").finish_non_exhaustive()
    }
}

/// Mints a CA named `ca_name` and a server certificate for `localhost`,
/// `127.0.0.1` and `extra_dns_names`, signed by it.
pub fn mint_test_certificate(
    ca_name: &str,
    extra_dns_names: &[String],
) -> Result<TestCertificate, Error> {
    let tls = |e: rcgen::Error| Error::Tls(e.to_string());

    let ca_key = KeyPair::generate().map_err(tls)?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(tls)?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, ca_name);
    ca_params
        .distinguished_name
        .push(DnType::OrganizationName, "dataprotection-rs tests");
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca_params.self_signed(&ca_key).map_err(tls)?;
    let issuer = Issuer::new(ca_params, ca_key);

    let mut names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
    names.extend(extra_dns_names.iter().cloned());
    let leaf_key = KeyPair::generate().map_err(tls)?;
    let mut leaf_params = CertificateParams::new(names).map_err(tls)?;
    leaf_params
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    leaf_params.is_ca = IsCa::ExplicitNoCa;
    leaf_params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    leaf_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    leaf_params.use_authority_key_identifier_extension = true;
    let leaf_cert = leaf_params.signed_by(&leaf_key, &issuer).map_err(tls)?;
    Ok(TestCertificate {
        ca_pem: ca_cert.pem(),
        ca_der: ca_cert.der().to_vec(),
        leaf_pem: leaf_cert.pem(),
        leaf_der: leaf_cert.der().to_vec(),
        key_pem: leaf_key.serialize_pem(),
        key_der: leaf_key.serialize_der(),
    })
}

pub(crate) fn generate(extra_dns_names: &[String]) -> Result<TlsMaterial, Error> {
    let cert = mint_test_certificate("keyvault-emulator test CA", extra_dns_names)?;
    let ca_pem = cert.ca_pem.clone();
    let chain: Vec<CertificateDer<'static>> = vec![
        CertificateDer::from(cert.leaf_der),
        CertificateDer::from(cert.ca_der),
    ];
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(cert.key_der));
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| Error::Tls(e.to_string()))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsMaterial {
        ca_pem,
        server_config: Arc::new(config),
    })
}
