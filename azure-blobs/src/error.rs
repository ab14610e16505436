//! Errors of this crate.
//!
//! Constructors return [`BlobError`]. Repository operations return
//! [`dataprotection::Error::Repository`], whose message says what failed and what to do about
//! it, and whose `source()` is a [`BlobError`] (downcast it to read the HTTP status and the
//! storage error code). No error text ever contains a SAS signature or an account key: every
//! URL and every SDK message is passed through [`crate::sas::redact`] first.

use crate::connection_string::ConnectionStringError;
use crate::sas::SasError;

/// Errors from building a [`crate::BlobXmlRepository`], and the `source()` of its repository
/// errors.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BlobError {
    /// The blob URL cannot be used (the URL in the message is redacted).
    #[error("invalid blob URL {url}: {reason}")]
    InvalidUrl {
        /// The URL, with any signature redacted.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A blob URL without a SAS was given with no credential: the key ring needs a SAS, a
    /// token credential, a SAS provider or a connection string (anonymous access cannot
    /// write).
    #[error(
        "blob URL {url} carries no SAS (no sig= parameter) and no credential was given: use a \
         SAS URL, a token credential, a SAS provider or a connection string"
    )]
    MissingCredential {
        /// The URL, with any signature redacted.
        url: String,
    },
    /// The [`crate::BlobXmlRepositoryBuilder`] was given a combination that does not name one
    /// blob and one way to authorise requests.
    #[error("invalid blob repository configuration: {0}")]
    Configuration(String),
    /// The connection string could not be parsed.
    #[error(transparent)]
    ConnectionString(#[from] ConnectionStringError),
    /// The connection string cannot be used for a blob repository.
    #[error("unusable storage connection string: {0}")]
    UnsupportedConnectionString(String),
    /// A SAS could not be minted (bad names, bad account key).
    #[error(transparent)]
    Sas(#[from] SasError),
    /// The application's [`crate::SasProvider`] failed.
    #[error("the SAS provider failed: {0}")]
    SasProvider(String),
    /// The Azure SDK refused to build a client (its message is redacted).
    #[error("could not create the Azure blob client: {0}")]
    Client(String),
    /// No credential could be chosen or built from the environment.
    #[error(transparent)]
    Credential(#[from] dataprotection_azure_identity::CredentialError),
    /// The blob is larger than [`crate::BlobRepositoryOptions::max_document_size`]; it was
    /// not downloaded, and is left untouched.
    #[error(
        "blob {blob} holds {size} bytes, more than the {limit} bytes allowed for a key ring \
         document (max_document_size); it is left untouched"
    )]
    DocumentTooLarge {
        /// The blob URL (without a query).
        blob: String,
        /// Its size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// The blob is well-formed XML but not a key ring: its root element is not
    /// `<repository>`. It is left untouched, and nothing is ever appended to it.
    #[error(
        "blob {blob} is not a key ring: its root element is <{root}>, not <repository>; it is \
         left untouched"
    )]
    NotAKeyRing {
        /// The blob URL (without a query).
        blob: String,
        /// The root element's name.
        root: String,
    },
    /// The storage service (or the transport) returned an error.
    #[error("{detail}")]
    Service {
        /// HTTP status, if a response was received.
        status: Option<u16>,
        /// The storage error code (`x-ms-error-code`), e.g. `ContainerNotFound`.
        code: Option<String>,
        /// The SDK's error text, redacted.
        detail: String,
    },
}

impl BlobError {
    /// Wraps an SDK error, keeping its status and error code and redacting its text; a
    /// failure of the application's SAS provider (raised in the SAS policy) is
    /// [`BlobError::SasProvider`].
    pub(crate) fn service(err: &azure_core::Error) -> Self {
        if let Some(unavailable) = err.downcast_ref::<crate::auth::SasUnavailable>() {
            return BlobError::SasProvider(unavailable.to_string());
        }
        let code = match err.kind() {
            azure_core::error::ErrorKind::HttpResponse { error_code, .. } => error_code.clone(),
            _ => None,
        };
        // The SDK's own text is often generic ("failed to execute `reqwest` request"); the
        // causes say what happened (and may embed the request URL, hence the redaction).
        let mut detail = err.to_string();
        if detail.is_empty() {
            detail = err.kind().to_string();
        }
        let mut source = std::error::Error::source(err);
        let mut depth = 0;
        while let Some(cause) = source {
            let text = cause.to_string();
            if !text.is_empty() && !detail.contains(&text) {
                detail.push_str(": ");
                detail.push_str(&text);
            }
            source = cause.source();
            depth += 1;
            if depth >= 8 {
                break;
            }
        }
        let detail = crate::sas::redact(&detail);
        BlobError::Service {
            status: err.http_status().map(u16::from),
            code,
            detail,
        }
    }

    /// The HTTP status, for [`BlobError::Service`].
    pub fn status(&self) -> Option<u16> {
        match self {
            BlobError::Service { status, .. } => *status,
            _ => None,
        }
    }

    /// The storage error code, for [`BlobError::Service`].
    pub fn code(&self) -> Option<&str> {
        match self {
            BlobError::Service { code, .. } => code.as_deref(),
            _ => None,
        }
    }
}

impl From<BlobError> for dataprotection::Error {
    fn from(e: BlobError) -> Self {
        match e {
            BlobError::InvalidUrl { .. }
            | BlobError::MissingCredential { .. }
            | BlobError::Configuration(_)
            | BlobError::ConnectionString(_)
            | BlobError::UnsupportedConnectionString(_)
            | BlobError::Sas(_) => dataprotection::Error::Configuration {
                source: Box::new(e),
            },
            other => dataprotection::Error::Repository {
                message: other.to_string(),
                source: Some(Box::new(other)),
            },
        }
    }
}
