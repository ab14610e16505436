#![doc = include_str!("../README.md")]
#![cfg_attr(test, allow(clippy::unwrap_used))]

mod certificate;
mod error;
mod key_vault;
mod pkcs12;
mod xmlenc;

use std::sync::Arc;

use dataprotection::DataProtectionProviderBuilder;

pub use certificate::{
    APP_SERVICE_CERTS_PATH, APP_SERVICE_CERTS_PATH_VAR, Certificate, normalize_thumbprint,
    thumbprint_of,
};
pub use error::X509Error;
pub use key_vault::KeyVaultCertificateId;
pub use xmlenc::{
    CertificateXmlEncryptor, ENCRYPTED_XML_DECRYPTOR_TYPE, EncryptedXmlDecryptor, XMLDSIG_NS,
    XMLENC_NS, XMLENC_RSA_1_5, dotnet_outer_xml, encrypted_data,
};

/// X.509 certificate configuration for a [`DataProtectionProviderBuilder`],
/// mirroring .NET's `ProtectKeysWithCertificate` and
/// `UnprotectKeysWithAnyCertificate`.
pub trait CertificateBuilderExt: Sized {
    /// Encrypts new keys to `certificate` and decrypts with it (when it has
    /// its private key) and with every certificate given to
    /// [`Self::unprotect_keys_with_any_certificate`].
    fn protect_keys_with_certificate(self, certificate: Certificate) -> Self;

    /// Certificates that can decrypt existing keys (rollover), without
    /// changing how new keys are encrypted. May be called several times.
    fn unprotect_keys_with_any_certificate(
        self,
        certificates: impl IntoIterator<Item = Certificate>,
    ) -> Self;
}

impl CertificateBuilderExt for DataProtectionProviderBuilder {
    fn protect_keys_with_certificate(self, certificate: Certificate) -> Self {
        let builder =
            self.key_encryptor(Arc::new(CertificateXmlEncryptor::new(certificate.clone())));
        register_certificates(builder, [certificate])
    }

    fn unprotect_keys_with_any_certificate(
        self,
        certificates: impl IntoIterator<Item = Certificate>,
    ) -> Self {
        register_certificates(self, certificates)
    }
}

/// Adds `certificates` to the decryptor the builder already has for
/// [`ENCRYPTED_XML_DECRYPTOR_TYPE`] (so calls accumulate, as .NET's
/// options do).
fn register_certificates(
    builder: DataProtectionProviderBuilder,
    certificates: impl IntoIterator<Item = Certificate>,
) -> DataProtectionProviderBuilder {
    let mut decryptor = EncryptedXmlDecryptor::new(certificates);
    if let Some(earlier) = builder.decryptor(ENCRYPTED_XML_DECRYPTOR_TYPE) {
        decryptor = decryptor.or_else(earlier);
    }
    builder.add_decryptor(ENCRYPTED_XML_DECRYPTOR_TYPE, Arc::new(decryptor))
}
