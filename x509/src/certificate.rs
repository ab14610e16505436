//! An X.509 certificate with its RSA public key and, when loaded with one,
//! its private key; loading from PEM, PKCS#12 (PFX) and App Service's
//! certificate directory.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::{KeyPair, PrivateDecryptingKey, PublicEncryptingKey};
use sha1::{Digest, Sha1};
use time::OffsetDateTime;
use zeroize::Zeroizing;

use crate::error::X509Error;
use crate::pkcs12;

/// The environment variable that overrides App Service's private
/// certificate directory (`/var/ssl/private` on Linux).
pub const APP_SERVICE_CERTS_PATH_VAR: &str = "WEBSITE_PRIVATE_CERTS_PATH";

/// Where App Service on Linux puts the certificates named in
/// `WEBSITE_LOAD_CERTIFICATES`, as `{THUMBPRINT}.p12` files without a password.
pub const APP_SERVICE_CERTS_PATH: &str = "/var/ssl/private";

/// An X.509 certificate with an RSA key: what `ProtectKeysWithCertificate`
/// and `UnprotectKeysWithAnyCertificate` take.
///
/// Cheap to clone. `Debug` shows the thumbprint, subject, validity and
/// whether a private key is present, never the key.
#[derive(Clone)]
pub struct Certificate {
    inner: Arc<Inner>,
}

struct Inner {
    der: Vec<u8>,
    thumbprint: String,
    subject: String,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
    public_key: PublicEncryptingKey,
    private_key: Option<PrivateDecryptingKey>,
}

impl fmt::Debug for Certificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Certificate")
            .field("thumbprint", &self.inner.thumbprint)
            .field("subject", &self.inner.subject)
            .field("not_before", &self.inner.not_before)
            .field("not_after", &self.inner.not_after)
            .field("has_private_key", &self.has_private_key())
            .finish()
    }
}

/// The upper-case hex SHA-1 of a certificate's DER encoding, as .NET's
/// `X509Certificate2.Thumbprint` shows it.
pub fn thumbprint_of(der: &[u8]) -> String {
    hex::encode_upper(Sha1::digest(der))
}

/// The subject of a DER certificate (RFC 4514 style), or `"(unreadable subject)"`.
pub(crate) fn subject_of(der: &[u8]) -> String {
    x509_parser::parse_x509_certificate(der)
        .map(|(_, c)| c.subject().to_string())
        .unwrap_or_else(|_| "(unreadable subject)".to_string())
}

impl Certificate {
    /// A certificate from its DER encoding, without a private key (enough to
    /// encrypt new keys).
    ///
    /// # Errors
    /// Not a certificate, or its key is not RSA (2048 to 8192 bits).
    pub fn from_der(der: &[u8]) -> Result<Self, X509Error> {
        let (rest, parsed) = x509_parser::parse_x509_certificate(der).map_err(|e| {
            X509Error::InvalidCertificate {
                reason: e.to_string(),
            }
        })?;
        if !rest.is_empty() {
            return Err(X509Error::InvalidCertificate {
                reason: format!("{} bytes follow the certificate", rest.len()),
            });
        }
        let thumbprint = thumbprint_of(der);
        let subject = parsed.subject().to_string();
        let public_key = PublicEncryptingKey::from_der(parsed.public_key().raw).map_err(|e| {
            X509Error::UnsupportedKey {
                thumbprint: thumbprint.clone(),
                subject: subject.clone(),
                reason: e.to_string(),
            }
        })?;
        let validity = parsed.validity();
        Ok(Certificate {
            inner: Arc::new(Inner {
                der: der.to_vec(),
                thumbprint,
                subject,
                not_before: validity.not_before.to_datetime(),
                not_after: validity.not_after.to_datetime(),
                public_key,
                private_key: None,
            }),
        })
    }

    /// This certificate with its private key, given as PKCS#8 DER (or PKCS#1
    /// `RSAPrivateKey` DER). `what` names the source in errors.
    ///
    /// # Errors
    /// Not an RSA key, or not the key of this certificate.
    pub fn with_private_key_der(self, key_der: &[u8], what: &str) -> Result<Self, X509Error> {
        let invalid = |reason: String| X509Error::InvalidPrivateKey {
            what: what.to_string(),
            reason,
        };
        let private_key = match PrivateDecryptingKey::from_pkcs8(key_der) {
            Ok(k) => k,
            Err(pkcs8_error) => {
                // PKCS#1 ("RSA PRIVATE KEY"): re-encode as PKCS#8.
                let pair = KeyPair::from_der(key_der)
                    .map_err(|_| invalid(format!("not an RSA private key ({pkcs8_error})")))?;
                let pkcs8 = pair
                    .as_der()
                    .map_err(|e| invalid(format!("cannot re-encode the key: {e}")))?;
                PrivateDecryptingKey::from_pkcs8(pkcs8.as_ref())
                    .map_err(|e| invalid(e.to_string()))?
            }
        };
        let matches = match (
            private_key.public_key().as_der(),
            self.inner.public_key.as_der(),
        ) {
            (Ok(a), Ok(b)) => a.as_ref() == b.as_ref(),
            _ => false,
        };
        if !matches {
            return Err(X509Error::KeyMismatch {
                what: what.to_string(),
                thumbprint: self.inner.thumbprint.clone(),
                subject: self.inner.subject.clone(),
            });
        }
        let inner = &self.inner;
        Ok(Certificate {
            inner: Arc::new(Inner {
                der: inner.der.clone(),
                thumbprint: inner.thumbprint.clone(),
                subject: inner.subject.clone(),
                not_before: inner.not_before,
                not_after: inner.not_after,
                public_key: inner.public_key.clone(),
                private_key: Some(private_key),
            }),
        })
    }

    /// A certificate from PEM text holding a `CERTIFICATE` block and,
    /// optionally, a `PRIVATE KEY` or `RSA PRIVATE KEY` block (the first
    /// certificate is the one used; others, a chain, are ignored).
    ///
    /// # Errors
    /// No certificate, unreadable PEM, or a key that does not match.
    pub fn from_pem(text: &str) -> Result<Self, X509Error> {
        Self::from_pem_named(text, "PEM text")
    }

    fn from_pem_named(text: &str, what: &str) -> Result<Self, X509Error> {
        let blocks = pem::parse_many(text).map_err(|e| X509Error::InvalidPem {
            what: what.to_string(),
            reason: e.to_string(),
        })?;
        let cert = blocks
            .iter()
            .find(|b| b.tag() == "CERTIFICATE")
            .ok_or_else(|| X509Error::InvalidPem {
                what: what.to_string(),
                reason: "no CERTIFICATE block".into(),
            })?;
        let certificate = Self::from_der(cert.contents())?;
        if blocks.iter().any(|b| b.tag() == "ENCRYPTED PRIVATE KEY") {
            return Err(X509Error::InvalidPrivateKey {
                what: what.to_string(),
                reason: "encrypted PEM private keys are not supported; use a PFX file with a \
                         password instead"
                    .into(),
            });
        }
        match blocks
            .iter()
            .find(|b| b.tag() == "PRIVATE KEY" || b.tag() == "RSA PRIVATE KEY")
        {
            Some(key) => {
                let key_der = Zeroizing::new(key.contents().to_vec());
                certificate.with_private_key_der(&key_der, what)
            }
            None => Ok(certificate),
        }
    }

    /// Reads a PEM file holding the certificate and, optionally, its key.
    ///
    /// # Errors
    /// As [`Certificate::from_pem`], or the file cannot be read.
    pub fn from_pem_file(path: impl AsRef<Path>) -> Result<Self, X509Error> {
        let path = path.as_ref();
        let text = Zeroizing::new(read_to_string(path)?);
        Self::from_pem_named(&text, &path.display().to_string())
    }

    /// Reads a certificate PEM file and a separate private key PEM file.
    ///
    /// # Errors
    /// As [`Certificate::from_pem`], or a file cannot be read.
    pub fn from_pem_files(
        certificate: impl AsRef<Path>,
        private_key: impl AsRef<Path>,
    ) -> Result<Self, X509Error> {
        let mut text = Zeroizing::new(read_to_string(certificate.as_ref())?);
        text.push('\n');
        text.push_str(&read_to_string(private_key.as_ref())?);
        Self::from_pem_named(&text, &private_key.as_ref().display().to_string())
    }

    /// A certificate and private key from PKCS#12 (PFX) bytes. Reads what
    /// Windows and .NET export (3DES key bags, RC2-40 certificate bags, a
    /// SHA-1 MAC) as well as modern AES/PBES2 files. When the file holds
    /// several keys, the first whose certificate is present is used.
    ///
    /// # Errors
    /// Wrong password, a corrupt file, or no RSA key with its certificate.
    pub fn from_pkcs12(bytes: &[u8], password: &str) -> Result<Self, X509Error> {
        pkcs12::read(bytes, password, "PKCS#12 data", None)
    }

    /// Reads a PKCS#12 (`.pfx`/`.p12`) file.
    ///
    /// # Errors
    /// As [`Certificate::from_pkcs12`], or the file cannot be read.
    pub fn from_pkcs12_file(path: impl AsRef<Path>, password: &str) -> Result<Self, X509Error> {
        let path = path.as_ref();
        let bytes = Zeroizing::new(std::fs::read(path).map_err(|source| X509Error::Io {
            path: path.to_path_buf(),
            source,
        })?);
        pkcs12::read(&bytes, password, &path.display().to_string(), None)
    }

    /// Reads a certificate file by its content: PKCS#12 when it is not PEM
    /// text, with `password` (empty when `None`).
    ///
    /// # Errors
    /// As the format's own loader.
    pub fn from_file(path: impl AsRef<Path>, password: Option<&str>) -> Result<Self, X509Error> {
        let path = path.as_ref();
        let bytes = Zeroizing::new(std::fs::read(path).map_err(|source| X509Error::Io {
            path: path.to_path_buf(),
            source,
        })?);
        let what = path.display().to_string();
        match std::str::from_utf8(&bytes) {
            Ok(text) if text.contains("-----BEGIN ") => Self::from_pem_named(text, &what),
            _ => pkcs12::read(&bytes, password.unwrap_or(""), &what, None),
        }
    }

    /// The certificate App Service loaded for `WEBSITE_LOAD_CERTIFICATES`:
    /// `{THUMBPRINT}.p12` (no password) in the directory named by
    /// [`APP_SERVICE_CERTS_PATH_VAR`], else [`APP_SERVICE_CERTS_PATH`].
    ///
    /// # Errors
    /// A malformed thumbprint, no such file, or an unreadable file.
    pub fn from_app_service(thumbprint: &str) -> Result<Self, X509Error> {
        let dir = std::env::var_os(APP_SERVICE_CERTS_PATH_VAR)
            .filter(|d| !d.is_empty())
            .map_or_else(|| PathBuf::from(APP_SERVICE_CERTS_PATH), PathBuf::from);
        Self::from_thumbprint_directory(&dir, thumbprint)
    }

    /// As [`Certificate::from_app_service`] with an explicit directory.
    ///
    /// # Errors
    /// As [`Certificate::from_app_service`].
    pub fn from_thumbprint_directory(dir: &Path, thumbprint: &str) -> Result<Self, X509Error> {
        let thumbprint = normalize_thumbprint(thumbprint)?;
        for name in [
            format!("{thumbprint}.p12"),
            format!("{}.p12", thumbprint.to_ascii_lowercase()),
            format!("{thumbprint}.pfx"),
        ] {
            let path = dir.join(&name);
            match std::fs::read(&path) {
                Ok(bytes) => {
                    let bytes = Zeroizing::new(bytes);
                    return pkcs12::read(
                        &bytes,
                        "",
                        &path.display().to_string(),
                        Some(&thumbprint),
                    );
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(source) => return Err(X509Error::Io { path, source }),
            }
        }
        Err(X509Error::CertificateNotFound {
            thumbprint,
            location: format!(
                "{} (App Service loads it there when WEBSITE_LOAD_CERTIFICATES names it)",
                dir.display()
            ),
        })
    }

    /// The DER encoding.
    pub fn der(&self) -> &[u8] {
        &self.inner.der
    }

    /// SHA-1 thumbprint, upper-case hex (as .NET shows it).
    pub fn thumbprint(&self) -> &str {
        &self.inner.thumbprint
    }

    /// Subject distinguished name.
    pub fn subject(&self) -> &str {
        &self.inner.subject
    }

    /// Start of validity.
    pub fn not_before(&self) -> OffsetDateTime {
        self.inner.not_before
    }

    /// End of validity (.NET still encrypts and decrypts with an expired
    /// certificate; so does this crate, and `dpkeys doctor` warns).
    pub fn not_after(&self) -> OffsetDateTime {
        self.inner.not_after
    }

    /// Whether the private key was loaded (needed to decrypt).
    pub fn has_private_key(&self) -> bool {
        self.inner.private_key.is_some()
    }

    pub(crate) fn public_key(&self) -> &PublicEncryptingKey {
        &self.inner.public_key
    }

    pub(crate) fn private_key(&self) -> Option<&PrivateDecryptingKey> {
        self.inner.private_key.as_ref()
    }
}

fn read_to_string(path: &Path) -> Result<String, X509Error> {
    std::fs::read_to_string(path).map_err(|source| X509Error::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Upper-case, without spaces or colons; exactly 40 hex digits.
///
/// # Errors
/// [`X509Error::InvalidThumbprint`].
pub fn normalize_thumbprint(input: &str) -> Result<String, X509Error> {
    let cleaned: String = input
        .chars()
        .filter(|c| !c.is_whitespace() && *c != ':')
        .collect::<String>()
        .to_ascii_uppercase();
    if cleaned.len() == 40 && cleaned.chars().all(|c| c.is_ascii_hexdigit()) {
        Ok(cleaned)
    } else {
        Err(X509Error::InvalidThumbprint {
            input: input.chars().take(80).collect(),
        })
    }
}
