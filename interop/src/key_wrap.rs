//! A [`KeyWrapClient`] over a local, test-only RSA key: what Azure Key Vault
//! does with `wrapKey`/`unwrapKey` and `RSA-OAEP` (SHA-1, MGF1-SHA-1), so that
//! a Key Vault-wrapped ring can be written and read without a vault.

use std::fmt;
use std::path::Path;

use async_trait::async_trait;
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::{
    KeySize, OAEP_SHA1_MGF1SHA1, OaepPrivateDecryptingKey, OaepPublicEncryptingKey,
    PrivateDecryptingKey,
};
use dataprotection_azure_keyvault::{
    KeyVaultError, KeyWrapClient, RequestFailure, WrapAlgorithm, WrappedKey,
};

use crate::error::InteropError;

/// The PEM label of a PKCS#8 private key.
const PKCS8_LABEL: &str = "PRIVATE KEY";

/// Generates a new 2048-bit RSA key as PKCS#8 PEM (LF line endings).
///
/// # Errors
/// [`InteropError::TestRsaKey`] if the key cannot be generated.
pub fn generate_test_rsa_pem(path_for_errors: &Path) -> Result<String, InteropError> {
    let failed = |reason: &str| InteropError::TestRsaKey {
        path: path_for_errors.to_path_buf(),
        reason: reason.to_string(),
    };
    let key = PrivateDecryptingKey::generate(KeySize::Rsa2048)
        .map_err(|_| failed("RSA key generation failed"))?;
    let der = key
        .as_der()
        .map_err(|_| failed("the new RSA key cannot be encoded as PKCS#8"))?;
    Ok(pem::encode_config(
        &pem::Pem::new(PKCS8_LABEL, der.as_ref()),
        pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
    ))
}

/// Mints a self-signed, test-only certificate for the PKCS#8 RSA key
/// `key_pem` (valid 2025–2099, fixed serial number), as PEM.
///
/// # Errors
/// [`InteropError::TestRsaKey`] if the key cannot sign a certificate.
pub fn mint_test_certificate_pem(
    key_pem: &str,
    path_for_errors: &Path,
) -> Result<String, InteropError> {
    use rcgen::{
        CertificateParams, DistinguishedName, DnType, KeyPair, KeyUsagePurpose, PKCS_RSA_SHA256,
        SerialNumber,
    };
    let failed = |e: rcgen::Error| InteropError::TestRsaKey {
        path: path_for_errors.to_path_buf(),
        reason: format!("cannot mint the test certificate: {e}"),
    };
    let key = KeyPair::from_pem_and_sign_algo(key_pem, &PKCS_RSA_SHA256).map_err(failed)?;
    let mut params = CertificateParams::default();
    let mut name = DistinguishedName::new();
    name.push(
        DnType::CommonName,
        "dp-fixtures test-only certificate (never trust)",
    );
    params.distinguished_name = name;
    params.not_before = time::macros::datetime!(2025-01-01 0:00 UTC);
    params.not_after = time::macros::datetime!(2099-01-01 0:00 UTC);
    params.serial_number = Some(SerialNumber::from(vec![0x01]));
    params.key_usages = vec![
        KeyUsagePurpose::KeyEncipherment,
        KeyUsagePurpose::DataEncipherment,
    ];
    Ok(params.self_signed(&key).map_err(failed)?.pem())
}

/// Wraps and unwraps with a local RSA key under a fixed Key Vault key id.
///
/// RSA-OAEP encryption is randomized: wrapping the same AES key twice gives
/// different bytes (the generator keeps fixtures stable with
/// [`crate::ReusingXmlEncryptor`]).
pub struct LocalRsaKeyWrapClient {
    kid: String,
    private: OaepPrivateDecryptingKey,
    public: OaepPublicEncryptingKey,
}

impl fmt::Debug for LocalRsaKeyWrapClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalRsaKeyWrapClient")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl LocalRsaKeyWrapClient {
    /// A client for the PKCS#8 PEM `pem` (read from `path`, named in errors)
    /// answering as the Key Vault key `kid`.
    ///
    /// # Errors
    /// [`InteropError::TestRsaKey`] if `pem` is not an RSA private key.
    pub fn from_pem(kid: &str, pem_text: &str, path: &Path) -> Result<Self, InteropError> {
        let failed = |reason: String| InteropError::TestRsaKey {
            path: path.to_path_buf(),
            reason,
        };
        let parsed = pem::parse(pem_text).map_err(|e| failed(format!("not PEM: {e}")))?;
        if parsed.tag() != PKCS8_LABEL {
            return Err(failed(format!(
                "expected a \"{PKCS8_LABEL}\" (PKCS#8) block, found \"{}\"",
                parsed.tag()
            )));
        }
        let key = PrivateDecryptingKey::from_pkcs8(parsed.contents())
            .map_err(|e| failed(format!("not a PKCS#8 RSA private key: {e}")))?;
        let public = OaepPublicEncryptingKey::new(key.public_key())
            .map_err(|_| failed("the public key cannot encrypt with OAEP".into()))?;
        let private = OaepPrivateDecryptingKey::new(key)
            .map_err(|_| failed("the private key cannot decrypt with OAEP".into()))?;
        Ok(LocalRsaKeyWrapClient {
            kid: kid.to_string(),
            private,
            public,
        })
    }

    /// The Key Vault key id this client answers as.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    fn failure(&self, operation: &'static str, status: u16, message: &str) -> KeyVaultError {
        KeyVaultError::from(RequestFailure::new(
            operation,
            self.kid.clone(),
            "local test key",
            Some(status),
            None,
            message,
        ))
    }

    fn unwrap(&self, wrapped: &[u8]) -> Result<Vec<u8>, KeyVaultError> {
        let mut out = vec![0u8; self.private.min_output_size()];
        let len = self
            .private
            .decrypt(&OAEP_SHA1_MGF1SHA1, wrapped, &mut out, None)
            .map_err(|_| self.failure("unwrapKey", 400, "RSA-OAEP decryption failed"))?
            .len();
        out.truncate(len);
        Ok(out)
    }
}

#[async_trait]
impl KeyWrapClient for LocalRsaKeyWrapClient {
    fn describe(&self) -> String {
        format!("local test-only RSA key answering as {}", self.kid)
    }

    async fn wrap_key(
        &self,
        algorithm: WrapAlgorithm,
        key: &[u8],
    ) -> Result<WrappedKey, KeyVaultError> {
        if algorithm != WrapAlgorithm::RsaOaep {
            return Err(self.failure("wrapKey", 400, "only RSA-OAEP is supported"));
        }
        let mut wrapped = vec![0u8; self.public.ciphertext_size()];
        let len = self
            .public
            .encrypt(&OAEP_SHA1_MGF1SHA1, key, &mut wrapped, None)
            .map_err(|_| self.failure("wrapKey", 400, "RSA-OAEP encryption failed"))?
            .len();
        wrapped.truncate(len);
        Ok(WrappedKey {
            kid: self.kid.clone(),
            wrapped,
        })
    }

    async fn unwrap_key(
        &self,
        kid: &str,
        algorithm: WrapAlgorithm,
        wrapped: &[u8],
    ) -> Result<Vec<u8>, KeyVaultError> {
        if kid != self.kid {
            return Err(self.failure(
                "unwrapKey",
                404,
                "this local test key answers only as its own kid",
            ));
        }
        if algorithm != WrapAlgorithm::RsaOaep {
            return Err(self.failure("unwrapKey", 400, "only RSA-OAEP is supported"));
        }
        self.unwrap(wrapped)
    }
}
