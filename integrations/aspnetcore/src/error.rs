//! Error types.

/// Bytes that are not a serialized ticket, properties or Identity token
/// (what .NET's readers reject), or a model that .NET could not write.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FormatError {
    /// The data ends inside a field.
    #[error("the data ends while reading {what}")]
    UnexpectedEnd {
        /// The field being read.
        what: &'static str,
    },
    /// The format version is not the one this serializer reads.
    #[error("unsupported {what} format version {found} (expected {expected})")]
    UnsupportedVersion {
        /// Which serializer.
        what: &'static str,
        /// The version in the data.
        found: i32,
        /// The version .NET writes and reads.
        expected: i32,
    },
    /// A string length prefix is not a valid 7-bit encoded `Int32`.
    #[error("the length of {what} is not a valid 7-bit encoded integer")]
    Bad7BitInt {
        /// The field being read.
        what: &'static str,
    },
    /// A string length prefix is negative.
    #[error("the length of {what} is negative")]
    NegativeLength {
        /// The field being read.
        what: &'static str,
    },
    /// A count of items is negative.
    #[error("the number of {what} is negative ({count})")]
    NegativeCount {
        /// What is counted.
        what: &'static str,
        /// The count read.
        count: i32,
    },
    /// A dictionary key occurs twice (.NET's `Dictionary.Add` throws).
    #[error("duplicate key in {what}")]
    DuplicateKey {
        /// Which dictionary.
        what: &'static str,
    },
    /// Actor identities nest deeper than [`crate::MAX_ACTOR_DEPTH`].
    #[error("actor identities nest deeper than {max}")]
    ActorTooDeep {
        /// The limit.
        max: usize,
    },
    /// A string is not UTF-8 where the reader requires it.
    #[error("{what} is not valid UTF-8")]
    InvalidUtf8 {
        /// The field being read.
        what: &'static str,
    },
    /// Data follows the end of a value whose reader rejects trailing data.
    #[error("unexpected data after {what}")]
    TrailingData {
        /// The value read.
        what: &'static str,
    },
    /// A string or collection is too large for the .NET format (2 GiB).
    #[error("{what} is too large for the .NET format")]
    TooLarge {
        /// The field being written.
        what: &'static str,
    },
    /// A timestamp is outside what .NET can represent.
    #[error("{what} is outside the range of .NET dates")]
    DateOutOfRange {
        /// The field.
        what: &'static str,
    },
}

/// Why a protected value (cookie, OpenID Connect state) could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UnprotectError {
    /// Data Protection rejected the payload: tampered with, protected under
    /// another application name, scheme or purpose, unknown or revoked key,
    /// or not Base64Url. Deliberately without detail beyond the core error's
    /// class (no oracle); the detail is logged at debug level.
    #[error("{}", .0)]
    Protection(#[source] dataprotection::Error),
    /// The payload is authentic but its content is not a valid
    /// ticket/properties serialization.
    #[error("the unprotected data is not valid: {0}")]
    Format(#[from] FormatError),
}

impl UnprotectError {
    /// A short, stable name for the kind of error, e.g. `"decryption failure"`
    /// or `"invalid ticket"`.
    pub fn class(&self) -> &'static str {
        match self {
            UnprotectError::Protection(e) => e.class(),
            UnprotectError::Format(_) => "invalid ticket",
        }
    }
}

/// Why an Identity `DataProtectorTokenProvider` token is not valid.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// The token is not standard Base64 or Data Protection rejected it.
    #[error("the token could not be unprotected: {0}")]
    Protection(#[source] dataprotection::Error),
    /// The unprotected token is not the provider's format.
    #[error("the token is malformed: {0}")]
    Format(#[from] FormatError),
    /// The token's lifetime has passed.
    #[error("the token expired at {expired_at}")]
    Expired {
        /// Creation time plus the lifespan.
        expired_at: time::OffsetDateTime,
    },
    /// The token was issued for another user.
    #[error("the token was issued for another user")]
    WrongUser,
    /// The token was issued for another purpose (e.g. `ResetPassword`).
    #[error("the token was issued for another purpose")]
    WrongPurpose,
    /// The user's security stamp changed since the token was issued.
    #[error("the user's security stamp has changed")]
    WrongSecurityStamp,
}
