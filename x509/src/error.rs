//! The crate's error type.

use std::path::PathBuf;

/// What can go wrong loading certificates or encrypting/decrypting with them.
///
/// Messages name files, thumbprints and subjects; never passwords or key bytes.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum X509Error {
    /// A file could not be read.
    #[error("reading {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// PEM text could not be read, or holds no certificate.
    #[error("invalid PEM in {what}: {reason}")]
    InvalidPem {
        /// What was being read (a path or "PEM text").
        what: String,
        /// What is wrong.
        reason: String,
    },
    /// A DER certificate could not be parsed.
    #[error("invalid X.509 certificate: {reason}")]
    InvalidCertificate {
        /// What is wrong.
        reason: String,
    },
    /// The certificate's public key is not an RSA key this crate can use
    /// (RSA 2048 to 8192 bits).
    #[error("the certificate {thumbprint} ({subject}) has no usable RSA public key: {reason}")]
    UnsupportedKey {
        /// SHA-1 thumbprint, upper-case hex.
        thumbprint: String,
        /// Subject distinguished name.
        subject: String,
        /// Why.
        reason: String,
    },
    /// A private key could not be read or is not an RSA key.
    #[error("invalid private key in {what}: {reason}")]
    InvalidPrivateKey {
        /// Where it came from.
        what: String,
        /// What is wrong.
        reason: String,
    },
    /// The private key does not belong to the certificate.
    #[error("the private key in {what} does not match the certificate {thumbprint} ({subject})")]
    KeyMismatch {
        /// Where the key came from.
        what: String,
        /// SHA-1 thumbprint of the certificate.
        thumbprint: String,
        /// Subject of the certificate.
        subject: String,
    },
    /// A PKCS#12 (PFX) file could not be read: wrong password, corrupt, or an
    /// unsupported algorithm.
    #[error("cannot read the PKCS#12 file {what}: {reason}")]
    InvalidPkcs12 {
        /// Where it came from.
        what: String,
        /// What is wrong (never the password).
        reason: String,
    },
    /// No certificate with this thumbprint was found (App Service directory,
    /// a PFX file).
    #[error("no certificate with thumbprint {thumbprint} in {location}")]
    CertificateNotFound {
        /// The thumbprint looked for.
        thumbprint: String,
        /// Where it was looked for.
        location: String,
    },
    /// A key was encrypted to a certificate that is not configured (neither
    /// the encryption certificate nor one of the decryption certificates).
    #[error(
        "the key was encrypted with certificate {thumbprint} ({subject}), which is not configured \
         with a private key; add it with unprotect_keys_with_any_certificate (or --certificate)"
    )]
    CertificateNotConfigured {
        /// SHA-1 thumbprint named in the encrypted key's `X509Data`.
        thumbprint: String,
        /// Subject of that certificate.
        subject: String,
    },
    /// A certificate without a private key was used where one is needed.
    #[error("the certificate {thumbprint} ({subject}) has no private key")]
    MissingPrivateKey {
        /// SHA-1 thumbprint.
        thumbprint: String,
        /// Subject.
        subject: String,
    },
    /// An environment variable needed to load a certificate is missing or not UTF-8.
    #[error("environment variable {name} is not set (or not UTF-8)")]
    MissingEnvironmentVariable {
        /// The variable.
        name: String,
    },
    /// A thumbprint is not 40 hexadecimal digits.
    #[error("{input:?} is not a certificate thumbprint (40 hexadecimal digits)")]
    InvalidThumbprint {
        /// What was given.
        input: String,
    },
    /// Reading a certificate from Azure Key Vault failed.
    #[error("Key Vault certificate {name}: {reason}")]
    KeyVault {
        /// The certificate (secret) name.
        name: String,
        /// What failed.
        reason: String,
        /// The cause.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
}
