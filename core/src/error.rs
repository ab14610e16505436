//! The crate's error type.

use std::path::PathBuf;

use uuid::Uuid;

/// A boxed error from a lower layer (I/O, a storage SDK, a key vault client).
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Everything that can go wrong in this crate.
///
/// Payload failures are split by cause so callers can branch on them, except
/// [`Error::DecryptionFailed`], which deliberately carries no detail: telling
/// a caller *why* a MAC or tag did not verify would hand an attacker an oracle.
/// The detail is logged with `tracing` at debug level instead.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The payload does not start with the Data Protection magic header (or is
    /// shorter than the 20-byte header).
    #[error("the payload is not a Data Protection payload (bad magic header)")]
    BadMagicHeader,
    /// The payload was written by a newer, unsupported version of the format.
    #[error("the payload was written with unsupported format version {version}")]
    UnsupportedVersion {
        /// The version nibble found in the header.
        version: u8,
    },
    /// The payload names a key that is not in the key ring.
    #[error("the key {key_id} was not found in the key ring")]
    KeyNotFound {
        /// The key id read from the payload.
        key_id: Uuid,
    },
    /// The payload names a key that has been revoked.
    #[error("the key {key_id} has been revoked")]
    KeyRevoked {
        /// The revoked key.
        key_id: Uuid,
    },
    /// The payload's key is in the ring but its master key has not been
    /// decrypted yet (it is being decrypted in the background; retry, or use
    /// an `async` unprotect that waits for it).
    #[error("the key {key_id} is not ready yet (its master key is being decrypted)")]
    KeyNotReady {
        /// The key.
        key_id: Uuid,
    },
    /// The payload could not be decrypted: it was tampered with, truncated,
    /// protected with other purposes, or is otherwise not authentic.
    #[error("the payload could not be decrypted")]
    DecryptionFailed,
    /// The text form of a payload is neither Base64Url nor standard Base64.
    #[error("the payload text is not valid Base64Url or Base64")]
    InvalidEncoding,
    /// A time-limited payload has expired.
    #[error("the payload expired at {}", crate::xml::format_date(*.expiration))]
    PayloadExpired {
        /// When it expired.
        expiration: time::OffsetDateTime,
    },
    /// A string that must be UTF-8 without lone surrogates is not.
    #[error("{what} is not valid UTF-8")]
    InvalidUtf8 {
        /// What was being decoded.
        what: &'static str,
    },
    /// An XML document or element could not be parsed or does not have the
    /// expected shape.
    #[error("malformed XML in <{element}>: {reason}")]
    MalformedXml {
        /// The element being read when the problem was found.
        element: String,
        /// What is wrong.
        reason: String,
    },
    /// An algorithm name or size that this library does not implement.
    #[error("unsupported algorithm: {0}")]
    UnsupportedAlgorithm(String),
    /// A key's master secret is encrypted with a decryptor that is not registered.
    #[error("no XML decryptor is registered for type {type_name}")]
    UnknownDecryptor {
        /// The `decryptorType` attribute value.
        type_name: String,
    },
    /// A key's master secret is protected with Windows DPAPI or DPAPI-NG
    /// (including certificate-based DPAPI-NG), which only Windows can
    /// decrypt. The key is kept as it is, and never treated as absent.
    #[error("protected with Windows DPAPI: only readable on Windows ({type_name})")]
    WindowsOnlyProtection {
        /// The `decryptorType` attribute value (normalized).
        type_name: String,
    },
    /// Decrypting a key's master secret at rest failed (e.g. the key vault could
    /// not unwrap it).
    #[error("could not decrypt the key material of {what}: {source}")]
    KeyDecryption {
        /// Which key or element.
        what: String,
        /// The cause.
        #[source]
        source: BoxError,
    },
    /// Encrypting a new key's master secret at rest failed.
    #[error("could not encrypt the key material: {source}")]
    KeyEncryption {
        /// The cause.
        #[source]
        source: BoxError,
    },
    /// There is no usable default key and none may be created.
    #[error("no default key is available: {reason}")]
    NoDefaultKey {
        /// Why.
        reason: String,
    },
    /// The key ring has never been loaded successfully.
    #[error("the key ring could not be loaded: {reason}")]
    KeyRingUnavailable {
        /// Why (the last refresh error).
        reason: String,
    },
    /// A file could not be read or written.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done ("reading", "writing", ...).
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A repository (storage back end) failed.
    #[error("key repository error: {message}")]
    Repository {
        /// What failed, safe to show (no secrets).
        message: String,
        /// The cause, if any.
        #[source]
        source: Option<BoxError>,
    },
    /// An argument is out of range or inconsistent.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The operation is not supported by this repository or configuration.
    #[error("not supported: {0}")]
    NotSupported(String),
}

impl Error {
    /// A [`Error::MalformedXml`] naming the element and what is wrong.
    pub fn malformed(element: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::MalformedXml {
            element: element.into(),
            reason: reason.into(),
        }
    }

    /// A short, stable name for the kind of error, e.g. `"key not found"`.
    ///
    /// Used by tools that report the error class (the names match those in the
    /// project's test vectors).
    pub fn class(&self) -> &'static str {
        match self {
            Error::BadMagicHeader => "bad magic header",
            Error::UnsupportedVersion { .. } => "unsupported version",
            Error::KeyNotFound { .. } => "key not found",
            Error::KeyRevoked { .. } => "key revoked",
            Error::KeyNotReady { .. } => "key not ready",
            Error::DecryptionFailed => "decryption failure",
            Error::InvalidEncoding => "invalid encoding",
            Error::PayloadExpired { .. } => "payload expired",
            Error::InvalidUtf8 { .. } => "invalid utf-8",
            Error::MalformedXml { .. } => "malformed xml",
            Error::UnsupportedAlgorithm(_) => "unsupported algorithm",
            Error::UnknownDecryptor { .. } => "unknown decryptor",
            Error::WindowsOnlyProtection { .. } => "windows-only protection",
            Error::KeyDecryption { .. } => "key decryption failure",
            Error::KeyEncryption { .. } => "key encryption failure",
            Error::NoDefaultKey { .. } => "no default key",
            Error::KeyRingUnavailable { .. } => "key ring unavailable",
            Error::Io { .. } => "i/o error",
            Error::Repository { .. } => "repository error",
            Error::InvalidArgument(_) => "invalid argument",
            Error::NotSupported(_) => "not supported",
        }
    }

    /// Wraps a repository failure.
    pub fn repository(message: impl Into<String>, source: impl Into<BoxError>) -> Self {
        Error::Repository {
            message: message.into(),
            source: Some(source.into()),
        }
    }
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
