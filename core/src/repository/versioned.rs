//! The storage primitive every backend implements: a versioned read and one
//! conditional write (modelled on `object_store`'s `PutMode::Create` /
//! `PutMode::Update` and `Error::Precondition`).
//!
//! Backends implement [`VersionedRepository`] only. Everything that must
//! converge under concurrent writers — idempotent appends, "is a key still
//! needed", ordered deletion, in-place replacement, never overwriting a
//! damaged document — is the one retry loop in
//! [`convergence`](super::convergence), which gives every backend
//! [`XmlRepository`](super::XmlRepository) for free.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;

use crate::error::Error;
use crate::xml::{ClassifiedElement, RepositoryDocument};

/// An opaque version of a stored document: the blob's ETag, a hash of a
/// directory listing, a counter. Two reads return equal versions only if the
/// document did not change in between.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Version(String);

impl Version {
    /// A version from the backend's own token.
    pub fn new(token: impl Into<String>) -> Self {
        Version(token.into())
    }

    /// The backend's token.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A document as read, with the version to condition a write on.
#[derive(Debug)]
pub struct Snapshot {
    /// The stored elements (every child as stored, including ones this
    /// library cannot interpret).
    pub document: RepositoryDocument,
    /// `None`: nothing is stored yet, so a write must create the document.
    pub version: Option<Version>,
    /// Elements stored apart (a file each) that could not be read or parsed.
    /// They are not in `document`, so the snapshot is not the whole ring:
    /// reads fail with the first of these errors, and the only write allowed
    /// is an unconditional append beside them (a revocation in an emergency),
    /// which leaves them untouched. Backends keeping one document never set it
    /// (a damaged document is a [`StorageError::Fatal`] read).
    pub damaged: Vec<Error>,
}

impl Snapshot {
    /// A whole, readable document.
    pub fn new(document: RepositoryDocument, version: Option<Version>) -> Self {
        Snapshot {
            document,
            version,
            damaged: Vec::new(),
        }
    }

    /// The elements, or the first error of a damaged element.
    pub fn into_whole(mut self) -> Result<(RepositoryDocument, Option<Version>), Error> {
        if self.damaged.is_empty() {
            Ok((self.document, self.version))
        } else {
            Err(self.damaged.swap_remove(0))
        }
    }
}

/// The condition of a [`VersionedRepository::write`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WriteCondition {
    /// Store only if nothing is stored yet (`If-None-Match: *`).
    Create,
    /// Store only if the stored version is still this one (`If-Match`).
    Update(Version),
}

/// Why a storage operation did not complete.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The write's condition did not hold: another writer changed the
    /// document since it was read (HTTP 409/412, a changed directory). The
    /// caller re-reads and decides again.
    #[error("the stored document changed since it was read")]
    PreconditionFailed,
    /// A failure that may pass (a timeout, a 5xx, a dropped connection). For
    /// a write, whether it was applied is unknown: re-read before deciding.
    #[error(transparent)]
    Transient(Error),
    /// A failure retrying will not fix (refused credentials, a document that
    /// is not a key ring, an I/O error).
    #[error(transparent)]
    Fatal(Error),
}

impl From<StorageError> for Error {
    fn from(e: StorageError) -> Self {
        match e {
            StorageError::Transient(e) | StorageError::Fatal(e) => e,
            StorageError::PreconditionFailed => Error::Repository {
                message: "the stored document changed since it was read".into(),
                source: None,
            },
        }
    }
}

/// How often, and how patiently, the retry loop tries one change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts per change (read, decide, conditional write), at least 1.
    pub max_attempts: u32,
    /// Back-off before the second attempt; doubled at every further attempt
    /// up to `max_backoff`, each wait randomised to 50–100 % of its value.
    pub initial_backoff: Duration,
    /// Longest back-off.
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 10,
            initial_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_secs(1),
        }
    }
}

impl RetryPolicy {
    /// The wait before attempt `attempt` (1 = the first retry), given a random
    /// number in `[0, 1)`.
    pub fn backoff(&self, attempt: u32, random_unit: f64) -> Duration {
        let doublings = attempt.saturating_sub(1).min(20);
        let base = self
            .initial_backoff
            .saturating_mul(1u32 << doublings)
            .min(self.max_backoff);
        base.mul_f64(0.5 + random_unit.clamp(0.0, 1.0) / 2.0)
    }
}

/// The storage primitive: a versioned read and a conditional write of the
/// whole key-ring document. Implement this (and run
/// `dataprotection::repository::conformance` against it) to add a backend;
/// [`XmlRepository`](super::XmlRepository) then comes from core's retry loop.
///
/// Implementations must:
///
/// * return every stored element, unchanged, including ones they cannot
///   interpret, and fail ([`StorageError::Fatal`]) rather than return a
///   shortened document when something stored cannot be read;
/// * apply a write only if its [`WriteCondition`] holds at the moment of
///   writing, and otherwise report [`StorageError::PreconditionFailed`];
/// * keep untouched elements byte for byte where the storage keeps bytes.
#[async_trait]
pub trait VersionedRepository: fmt::Debug + Send + Sync {
    /// Reads the whole document and its version.
    async fn read(&self) -> Result<Snapshot, StorageError>;

    /// Reads the document only if its version is no longer `known`
    /// (`Ok(None)`: unchanged). Backends make this cheap: a conditional GET
    /// answered with 304, a directory listing, a counter. The default reads
    /// everything and compares versions.
    async fn read_if_changed(&self, known: &Version) -> Result<Option<Snapshot>, StorageError> {
        let snapshot = self.read().await?;
        Ok((snapshot.version.as_ref() != Some(known)).then_some(snapshot))
    }

    /// Whether the stored document is no longer at version `known`: the
    /// change check behind a refresh and fast revocation. The default asks
    /// [`VersionedRepository::read_if_changed`]; a backend that can tell
    /// without reading the document (a directory listing) overrides it, so
    /// that a refresh after a change reads the ring once, not twice.
    async fn has_changed_since(&self, known: &Version) -> Result<bool, StorageError> {
        Ok(self.read_if_changed(known).await?.is_some())
    }

    /// Reads the whole document to load a ring: every element classified
    /// ([`ClassifiedElement::of`]) in document order, with the version. A
    /// damaged element fails the read as it fails [`Snapshot::into_whole`].
    /// The default classifies the elements of [`VersionedRepository::read`];
    /// a backend that parses element by element (a directory of files)
    /// overrides it to classify each where it parsed it, keeping nothing
    /// else of the stored text.
    async fn read_classified(
        &self,
    ) -> Result<(Vec<ClassifiedElement>, Option<Version>), StorageError> {
        let (document, version) = self
            .read()
            .await?
            .into_whole()
            .map_err(StorageError::Fatal)?;
        Ok((ClassifiedElement::all(document.into_elements()), version))
    }

    /// Stores `document` if `condition` holds; returns the new version.
    async fn write(
        &self,
        document: &RepositoryDocument,
        condition: &WriteCondition,
    ) -> Result<Version, StorageError>;

    /// How the retry loop retries changes on this backend.
    fn retry_policy(&self) -> RetryPolicy {
        RetryPolicy::default()
    }

    /// A description for logs and messages (never containing a secret);
    /// also what [`XmlRepository::describe`](super::XmlRepository::describe)
    /// returns.
    fn description(&self) -> String;
}
