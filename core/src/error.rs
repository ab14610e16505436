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
    /// The random number generator failed (no key, IV or nonce was produced).
    #[error("the random number generator failed: {source}")]
    RandomFailure {
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
    /// The key ring has never been loaded successfully, or could not be
    /// refreshed.
    #[error("the key ring could not be loaded: {reason}")]
    KeyRingUnavailable {
        /// Why.
        reason: String,
        /// The refresh error behind it, if any.
        #[source]
        source: Option<std::sync::Arc<Error>>,
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
    /// A component could not be set up as configured (a storage URL,
    /// connection string, credential or vault key that is malformed or
    /// inconsistent); the typed cause is kept as the source.
    #[error("invalid configuration: {source}")]
    Configuration {
        /// The cause, safe to show (no secrets).
        #[source]
        source: BoxError,
    },
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
            Error::RandomFailure { .. } => "random number generator failure",
            Error::NoDefaultKey { .. } => "no default key",
            Error::KeyRingUnavailable { .. } => "key ring unavailable",
            Error::Io { .. } => "i/o error",
            Error::Repository { .. } => "repository error",
            Error::InvalidArgument(_) | Error::Configuration { .. } => "invalid argument",
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

impl Error {
    /// The same error for a second owner: errors are not `Clone` (their
    /// sources are boxed), so a copy has the same variant and fields, and a
    /// source that shows (and chains to the causes of) the original's source,
    /// shared through the `Arc`. Used where one error is both returned and
    /// kept: the provider keeps the original as its last refresh error.
    pub(crate) fn shared_copy(error: &std::sync::Arc<Error>) -> Error {
        let shared = || -> BoxError { Box::new(SourceOf(error.clone())) };
        match &**error {
            Error::BadMagicHeader => Error::BadMagicHeader,
            Error::UnsupportedVersion { version } => {
                Error::UnsupportedVersion { version: *version }
            }
            Error::KeyNotFound { key_id } => Error::KeyNotFound { key_id: *key_id },
            Error::KeyRevoked { key_id } => Error::KeyRevoked { key_id: *key_id },
            Error::KeyNotReady { key_id } => Error::KeyNotReady { key_id: *key_id },
            Error::DecryptionFailed => Error::DecryptionFailed,
            Error::InvalidEncoding => Error::InvalidEncoding,
            Error::PayloadExpired { expiration } => Error::PayloadExpired {
                expiration: *expiration,
            },
            Error::InvalidUtf8 { what } => Error::InvalidUtf8 { what },
            Error::MalformedXml { element, reason } => Error::MalformedXml {
                element: element.clone(),
                reason: reason.clone(),
            },
            Error::UnsupportedAlgorithm(name) => Error::UnsupportedAlgorithm(name.clone()),
            Error::UnknownDecryptor { type_name } => Error::UnknownDecryptor {
                type_name: type_name.clone(),
            },
            Error::WindowsOnlyProtection { type_name } => Error::WindowsOnlyProtection {
                type_name: type_name.clone(),
            },
            Error::KeyDecryption { what, .. } => Error::KeyDecryption {
                what: what.clone(),
                source: shared(),
            },
            Error::KeyEncryption { .. } => Error::KeyEncryption { source: shared() },
            Error::RandomFailure { .. } => Error::RandomFailure { source: shared() },
            Error::NoDefaultKey { reason } => Error::NoDefaultKey {
                reason: reason.clone(),
            },
            Error::KeyRingUnavailable { reason, source } => Error::KeyRingUnavailable {
                reason: reason.clone(),
                source: source.clone(),
            },
            Error::Io {
                action,
                path,
                source,
            } => Error::Io {
                action,
                path: path.clone(),
                source: std::io::Error::new(source.kind(), SourceOf(error.clone())),
            },
            Error::Repository { message, source } => Error::Repository {
                message: message.clone(),
                source: source.as_ref().map(|_| shared()),
            },
            Error::InvalidArgument(what) => Error::InvalidArgument(what.clone()),
            Error::Configuration { .. } => Error::Configuration { source: shared() },
            Error::NotSupported(what) => Error::NotSupported(what.clone()),
        }
    }
}

/// The source of a shared error, standing in for it in a copy
/// ([`Error::shared_copy`]): shows what the original's source shows, and
/// chains to that source.
struct SourceOf(std::sync::Arc<Error>);

impl SourceOf {
    fn original(&self) -> Option<&(dyn std::error::Error + 'static)> {
        std::error::Error::source(&*self.0)
    }
}

impl std::fmt::Display for SourceOf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.original() {
            Some(source) => std::fmt::Display::fmt(source, f),
            None => Ok(()),
        }
    }
}

impl std::fmt::Debug for SourceOf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.original() {
            Some(source) => std::fmt::Debug::fmt(source, f),
            None => f.write_str("SourceOf"),
        }
    }
}

impl std::error::Error for SourceOf {
    /// The original's source itself, not its source's source: a caller
    /// walking the chain must still find the typed cause (for example the
    /// x509 crate's `CertificateNotConfigured`) with `downcast_ref`. Its
    /// text then appears twice in a walked chain, which printers that skip
    /// text already shown (the CLI's) absorb.
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.original()
    }
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
