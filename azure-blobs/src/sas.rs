//! Shared Access Signatures (SAS) signed with a storage account key.
//!
//! The `azure_storage_blob` 1.x SDK has no shared-key authentication, so a caller that holds an
//! account key (a connection string with `AccountKey=`, or Azurite's well-known development key)
//! mints a SAS locally and hands the SDK a URL that carries it.
//!
//! This module can:
//!
//! * mint a **blob** service SAS (`sr=b`), a **container** service SAS (`sr=c`) and an
//!   **account** SAS (`ss=b&srt=sco`) from an account name and an [`AccountKey`]
//!   ([`blob_sas`], [`container_sas`], [`account_sas`]);
//! * inspect an existing SAS query string or URL and report its expiry ([`SasInfo::parse`]);
//! * [`redact`] the signature (and any `AccountKey=`) out of text before it is logged.
//!
//! Signatures use HMAC-SHA256 over the string-to-sign defined for service version
//! [`SAS_VERSION`] (the version the SDK sends), percent-encoded into `sig=`.
//!
//! ```
//! use dataprotection_azure_blobs::sas::{self, AccountKey, Permissions, SasWindow};
//! use time::{Duration, OffsetDateTime};
//!
//! let key = AccountKey::from_base64(
//!     "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==",
//! )?;
//! let window = SasWindow::until(OffsetDateTime::now_utc() + Duration::hours(1));
//! let token = sas::blob_sas("devstoreaccount1", &key, "keys", "key-ring.xml",
//!     Permissions::KEY_RING_BLOB, &window)?;
//! let url = token.append_to(&sas::blob_url(
//!     "http://127.0.0.1:10000/devstoreaccount1", "keys", "key-ring.xml"));
//! assert!(url.contains("sr=b&sp=racwd"));
//! assert!(!sas::redact(&url).contains(token.signature_for_tests_only()));
//! # Ok::<(), sas::SasError>(())
//! ```

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, KeyInit, Mac};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use sha2::Sha256;
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{Date, OffsetDateTime, PrimitiveDateTime, UtcOffset};
use zeroize::Zeroizing;

/// The storage service version (`sv`) of every SAS minted here.
///
/// It equals the `x-ms-version` that `azure_storage_blob` 1.1 sends, and is accepted by
/// Azurite 3.37. The string-to-sign format used is the one for versions `>= 2020-12-06`.
pub const SAS_VERSION: &str = "2026-04-06";

/// The text that replaces secrets in [`redact`]'s output.
pub const REDACTED: &str = "REDACTED";

/// Characters left unescaped in query values and path segments: RFC 3986 unreserved.
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Like [`QUERY_VALUE`] but keeps `/`, for blob names with virtual directories.
const PATH: &AsciiSet = &QUERY_VALUE.remove(b'/');

/// Errors from minting a SAS.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum SasError {
    /// The account key is not valid base64 (the key itself is never included).
    #[error("the storage account key is not valid base64")]
    InvalidAccountKey,
    /// The account key decodes to zero bytes.
    #[error("the storage account key is empty")]
    EmptyAccountKey,
    /// The account name is not 3-24 lowercase letters and digits.
    #[error("invalid storage account name {0:?}: expected 3-24 lowercase letters and digits")]
    InvalidAccountName(String),
    /// The container name breaks the Azure naming rules.
    #[error(
        "invalid container name {0:?}: expected 3-63 lowercase letters, digits and single \
         hyphens, starting and ending with a letter or digit (or \"$root\")"
    )]
    InvalidContainerName(String),
    /// The blob name is empty or longer than 1024 characters.
    #[error("invalid blob name: it must be 1-1024 characters")]
    InvalidBlobName,
    /// No permission was requested.
    #[error("a SAS needs at least one permission")]
    NoPermissions,
    /// A permission letter is unknown or repeated.
    #[error("invalid SAS permission letter {0:?} (known: r a c w d l)")]
    InvalidPermission(char),
    /// The start time is not before the expiry time.
    #[error("SAS start {start} is not before its expiry {expiry}")]
    StartNotBeforeExpiry {
        /// Requested start (UTC, RFC 3339).
        start: String,
        /// Requested expiry (UTC, RFC 3339).
        expiry: String,
    },
    /// A time could not be formatted (year outside 0000-9999).
    #[error("SAS time {0} cannot be formatted as YYYY-MM-DDThh:mm:ssZ")]
    TimeOutOfRange(String),
}

/// A decoded storage account key. Its `Debug` output never shows the key.
#[derive(Clone)]
pub struct AccountKey(Zeroizing<Vec<u8>>);

impl AccountKey {
    /// Decodes a base64 account key (as found in `AccountKey=` of a connection string).
    ///
    /// Surrounding whitespace is ignored. Errors never contain the key.
    pub fn from_base64(key: &str) -> Result<Self, SasError> {
        let bytes = Zeroizing::new(
            BASE64
                .decode(key.trim())
                .map_err(|_| SasError::InvalidAccountKey)?,
        );
        if bytes.is_empty() {
            return Err(SasError::EmptyAccountKey);
        }
        Ok(Self(bytes))
    }

    /// `base64(HMAC-SHA256(key, data))`.
    fn sign(&self, data: &str) -> String {
        let mut mac = match Hmac::<Sha256>::new_from_slice(&self.0) {
            Ok(mac) => mac,
            // HMAC accepts keys of any length; this branch is unreachable.
            Err(_) => unreachable!("HMAC-SHA256 accepts keys of any length"),
        };
        mac.update(data.as_bytes());
        BASE64.encode(mac.finalize().into_bytes())
    }
}

impl fmt::Debug for AccountKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AccountKey(<redacted>)")
    }
}

/// SAS permissions relevant to blob storage.
///
/// The letters are emitted in the canonical order the service requires, which differs
/// between service SAS (`racwdl`) and account SAS (`rwdlac`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Permissions {
    /// `r`: read content, properties and metadata.
    pub read: bool,
    /// `a`: add (append blobs).
    pub add: bool,
    /// `c`: create a new blob (or, in an account SAS, a container).
    pub create: bool,
    /// `w`: write / overwrite.
    pub write: bool,
    /// `d`: delete.
    pub delete: bool,
    /// `l`: list (containers or blobs).
    pub list: bool,
}

impl Permissions {
    /// `racwd`: what a key-ring repository needs on its blob.
    pub const KEY_RING_BLOB: Self = Self {
        read: true,
        add: true,
        create: true,
        write: true,
        delete: true,
        list: false,
    };

    /// `r`: read only.
    pub const READ: Self = Self {
        read: true,
        add: false,
        create: false,
        write: false,
        delete: false,
        list: false,
    };

    /// Every permission known here (`racwdl` / `rwdlac`).
    pub const ALL: Self = Self {
        read: true,
        add: true,
        create: true,
        write: true,
        delete: true,
        list: true,
    };

    fn is_empty(self) -> bool {
        self == Self::default()
    }

    fn letters(self, order: &str) -> String {
        order
            .chars()
            .filter(|c| match c {
                'r' => self.read,
                'a' => self.add,
                'c' => self.create,
                'w' => self.write,
                'd' => self.delete,
                'l' => self.list,
                _ => false,
            })
            .collect()
    }

    /// The `sp` value for a service SAS (`sr=b` / `sr=c`): canonical order `racwdl`.
    pub fn service_sas_letters(self) -> String {
        self.letters("racwdl")
    }

    /// The `sp` value for an account SAS: canonical order `rwdlac`.
    pub fn account_sas_letters(self) -> String {
        self.letters("rwdlac")
    }
}

impl FromStr for Permissions {
    type Err = SasError;

    /// Parses letters from `racwdl` in any order; unknown or repeated letters are errors.
    fn from_str(s: &str) -> Result<Self, SasError> {
        let mut p = Self::default();
        for c in s.chars() {
            let slot = match c {
                'r' => &mut p.read,
                'a' => &mut p.add,
                'c' => &mut p.create,
                'w' => &mut p.write,
                'd' => &mut p.delete,
                'l' => &mut p.list,
                other => return Err(SasError::InvalidPermission(other)),
            };
            if *slot {
                return Err(SasError::InvalidPermission(c));
            }
            *slot = true;
        }
        if p.is_empty() {
            return Err(SasError::NoPermissions);
        }
        Ok(p)
    }
}

/// Which protocols a SAS allows (`spr`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum SasProtocol {
    /// Omit `spr`: the service allows both.
    #[default]
    Any,
    /// `spr=https`.
    HttpsOnly,
    /// `spr=https,http`.
    HttpsAndHttp,
}

impl SasProtocol {
    fn as_str(self) -> &'static str {
        match self {
            Self::Any => "",
            Self::HttpsOnly => "https",
            Self::HttpsAndHttp => "https,http",
        }
    }
}

/// When a SAS is valid, and over which protocols.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SasWindow {
    /// `st`: optional start. Leave it `None` (or a few minutes in the past) to avoid clock skew.
    pub start: Option<OffsetDateTime>,
    /// `se`: expiry.
    pub expiry: OffsetDateTime,
    /// `spr`.
    pub protocol: SasProtocol,
}

impl SasWindow {
    /// Valid from now (no `st`) until `expiry`, over any protocol.
    pub fn until(expiry: OffsetDateTime) -> Self {
        Self {
            start: None,
            expiry,
            protocol: SasProtocol::Any,
        }
    }

    /// Sets the start time.
    #[must_use]
    pub fn starting(mut self, start: OffsetDateTime) -> Self {
        self.start = Some(start);
        self
    }

    /// Sets the protocol restriction.
    #[must_use]
    pub fn protocol(mut self, protocol: SasProtocol) -> Self {
        self.protocol = protocol;
        self
    }

    /// Returns `(st, se)` formatted, after validating them.
    fn formatted(&self) -> Result<(String, String), SasError> {
        let expiry = format_sas_time(self.expiry)?;
        let start = match self.start {
            Some(start) => {
                let s = format_sas_time(start)?;
                // Compare what is actually sent (whole seconds).
                if s >= expiry {
                    return Err(SasError::StartNotBeforeExpiry {
                        start: rfc3339(start),
                        expiry: rfc3339(self.expiry),
                    });
                }
                s
            }
            None => String::new(),
        };
        Ok((start, expiry))
    }
}

/// A minted SAS: the query string (without `?`) and its expiry.
///
/// `Debug` and `Display` redact the signature; use [`SasToken::query`] to get the real value.
#[derive(Clone, PartialEq, Eq)]
pub struct SasToken {
    query: String,
    expiry: OffsetDateTime,
}

impl SasToken {
    /// The full query string, e.g. `sv=…&sr=b&sp=racwd&se=…&sig=…`, without a leading `?`.
    ///
    /// This is a secret (a bearer credential): never log it; log [`redact`]`(query)` instead.
    pub fn query(&self) -> &str {
        &self.query
    }

    /// The expiry (`se`), truncated to whole seconds.
    pub fn expiry(&self) -> OffsetDateTime {
        self.expiry
    }

    /// Appends this SAS to `url`, using `?` or `&` as needed.
    pub fn append_to(&self, url: &str) -> String {
        let sep = if url.contains('?') {
            if url.ends_with('?') || url.ends_with('&') {
                ""
            } else {
                "&"
            }
        } else {
            "?"
        };
        format!("{url}{sep}{}", self.query)
    }

    /// The percent-encoded `sig` value. For tests that check redaction.
    pub fn signature_for_tests_only(&self) -> &str {
        query_param(&self.query, "sig").unwrap_or("")
    }
}

impl fmt::Debug for SasToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SasToken")
            .field("query", &redact(&self.query))
            .field("expiry", &rfc3339(self.expiry))
            .finish()
    }
}

impl fmt::Display for SasToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&redact(&self.query))
    }
}

/// Mints a blob-scoped service SAS (`sr=b`) for `container/blob`.
///
/// `blob` is the blob name as stored (not percent-encoded); `/` separates virtual directories.
pub fn blob_sas(
    account: &str,
    key: &AccountKey,
    container: &str,
    blob: &str,
    permissions: Permissions,
    window: &SasWindow,
) -> Result<SasToken, SasError> {
    validate_blob_name(blob)?;
    service_sas(account, key, container, Some(blob), permissions, window)
}

/// Mints a container-scoped service SAS (`sr=c`).
///
/// Note: a container SAS cannot create its own container (the service answers 403
/// `AuthorizationPermissionMismatch`); use an [`account_sas`] for that.
pub fn container_sas(
    account: &str,
    key: &AccountKey,
    container: &str,
    permissions: Permissions,
    window: &SasWindow,
) -> Result<SasToken, SasError> {
    service_sas(account, key, container, None, permissions, window)
}

fn service_sas(
    account: &str,
    key: &AccountKey,
    container: &str,
    blob: Option<&str>,
    permissions: Permissions,
    window: &SasWindow,
) -> Result<SasToken, SasError> {
    validate_account_name(account)?;
    validate_container_name(container)?;
    if permissions.is_empty() {
        return Err(SasError::NoPermissions);
    }
    let (st, se) = window.formatted()?;
    let sp = permissions.service_sas_letters();
    let spr = window.protocol.as_str();
    let (sr, resource) = match blob {
        Some(blob) => ("b", format!("/blob/{account}/{container}/{blob}")),
        None => ("c", format!("/blob/{account}/{container}")),
    };
    let string_to_sign = service_string_to_sign(&ServiceFields {
        permissions: &sp,
        start: &st,
        expiry: &se,
        canonical_resource: &resource,
        protocol: spr,
        version: SAS_VERSION,
        resource: sr,
    });
    let sig = key.sign(&string_to_sign);
    let mut pairs = vec![("sv", SAS_VERSION), ("sr", sr), ("sp", &sp)];
    if !st.is_empty() {
        pairs.push(("st", &st));
    }
    pairs.push(("se", &se));
    if !spr.is_empty() {
        pairs.push(("spr", spr));
    }
    pairs.push(("sig", &sig));
    Ok(SasToken {
        query: encode_pairs(&pairs),
        expiry: truncate_to_seconds(window.expiry),
    })
}

/// Mints an account SAS for the blob service (`ss=b`) covering service, container and object
/// resources (`srt=sco`). This is what creating a container needs.
pub fn account_sas(
    account: &str,
    key: &AccountKey,
    permissions: Permissions,
    window: &SasWindow,
) -> Result<SasToken, SasError> {
    validate_account_name(account)?;
    if permissions.is_empty() {
        return Err(SasError::NoPermissions);
    }
    let (st, se) = window.formatted()?;
    let sp = permissions.account_sas_letters();
    let spr = window.protocol.as_str();
    let (ss, srt) = ("b", "sco");
    // account, sp, ss, srt, st, se, sip, spr, sv, ses, then a trailing newline.
    let string_to_sign =
        format!("{account}\n{sp}\n{ss}\n{srt}\n{st}\n{se}\n\n{spr}\n{SAS_VERSION}\n\n");
    let sig = key.sign(&string_to_sign);
    let mut pairs = vec![("sv", SAS_VERSION), ("ss", ss), ("srt", srt), ("sp", &sp)];
    if !st.is_empty() {
        pairs.push(("st", &st));
    }
    pairs.push(("se", &se));
    if !spr.is_empty() {
        pairs.push(("spr", spr));
    }
    pairs.push(("sig", &sig));
    Ok(SasToken {
        query: encode_pairs(&pairs),
        expiry: truncate_to_seconds(window.expiry),
    })
}

struct ServiceFields<'a> {
    permissions: &'a str,
    start: &'a str,
    expiry: &'a str,
    canonical_resource: &'a str,
    protocol: &'a str,
    version: &'a str,
    resource: &'a str,
}

/// The 16-field service SAS string-to-sign for `sv >= 2020-12-06`:
/// `sp, st, se, canonical resource, si, sip, spr, sv, sr, snapshot time, ses, rscc, rscd, rsce,
/// rscl, rsct`, joined by `\n` (no trailing newline).
fn service_string_to_sign(f: &ServiceFields<'_>) -> String {
    [
        f.permissions,
        f.start,
        f.expiry,
        f.canonical_resource,
        "", // si (stored access policy)
        "", // sip
        f.protocol,
        f.version,
        f.resource,
        "", // snapshot time
        "", // ses (encryption scope)
        "", // rscc
        "", // rscd
        "", // rsce
        "", // rscl
        "", // rsct
    ]
    .join("\n")
}

fn encode_pairs(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={}", utf8_percent_encode(v, QUERY_VALUE)))
        .collect::<Vec<_>>()
        .join("&")
}

fn truncate_to_seconds(t: OffsetDateTime) -> OffsetDateTime {
    t.replace_nanosecond(0).unwrap_or(t)
}

/// Formats a time as the SAS wants it: UTC, `YYYY-MM-DDThh:mm:ssZ`.
fn format_sas_time(t: OffsetDateTime) -> Result<String, SasError> {
    let utc = t.to_offset(UtcOffset::UTC);
    utc.format(format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second]Z"
    ))
    .ok()
    .filter(|s| s.len() == 20)
    .ok_or_else(|| SasError::TimeOutOfRange(rfc3339(t)))
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_else(|_| format!("{t}"))
}

/// Storage account names: 3-24 characters, lowercase letters and digits.
pub(crate) fn validate_account_name(name: &str) -> Result<(), SasError> {
    let ok = (3..=24).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    if ok {
        Ok(())
    } else {
        Err(SasError::InvalidAccountName(name.to_owned()))
    }
}

/// Container names: 3-63 characters of lowercase letters, digits and non-consecutive hyphens,
/// starting and ending with a letter or digit; or the special `$root`.
fn validate_container_name(name: &str) -> Result<(), SasError> {
    let b = name.as_bytes();
    let ok = name == "$root"
        || ((3..=63).contains(&b.len())
            && b.iter()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
            && b.first().is_some_and(|c| *c != b'-')
            && b.last().is_some_and(|c| *c != b'-')
            && !name.contains("--"));
    if ok {
        Ok(())
    } else {
        Err(SasError::InvalidContainerName(name.to_owned()))
    }
}

fn validate_blob_name(name: &str) -> Result<(), SasError> {
    if name.is_empty() || name.chars().count() > 1024 {
        Err(SasError::InvalidBlobName)
    } else {
        Ok(())
    }
}

/// `{endpoint}/{container}`, with the container percent-encoded. `endpoint` is the blob service
/// endpoint, e.g. `https://acct.blob.core.windows.net` or `http://127.0.0.1:10000/devstoreaccount1`.
pub fn container_url(endpoint: &str, container: &str) -> String {
    format!(
        "{}/{}",
        endpoint.trim_end_matches('/'),
        utf8_percent_encode(container, QUERY_VALUE)
    )
}

/// `{endpoint}/{container}/{blob}`, percent-encoded (a `/` in the blob name is kept).
pub fn blob_url(endpoint: &str, container: &str, blob: &str) -> String {
    format!(
        "{}/{}",
        container_url(endpoint, container),
        utf8_percent_encode(blob, PATH)
    )
}

// ---------------------------------------------------------------------------------------------
// Inspecting and redacting existing SAS strings
// ---------------------------------------------------------------------------------------------

/// Errors from [`SasInfo::parse`]. They never contain the signature.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum SasParseError {
    /// No `se` parameter: this is not a SAS (or an incomplete one).
    #[error("the SAS has no expiry (`se`) parameter")]
    MissingExpiry,
    /// No `sig` parameter.
    #[error("the SAS has no signature (`sig`) parameter")]
    MissingSignature,
    /// `se` or `st` is not an ISO 8601 UTC time.
    #[error("the SAS parameter `{param}` has an unreadable time {value:?}")]
    InvalidTime {
        /// `se` or `st`.
        param: &'static str,
        /// The decoded value.
        value: String,
    },
}

/// What a SAS says about itself (everything except the signature).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SasInfo {
    /// `se`.
    pub expiry: OffsetDateTime,
    /// `st`, if present.
    pub start: Option<OffsetDateTime>,
    /// `sv`, if present.
    pub version: Option<String>,
    /// `sr` (service SAS resource: `b`, `c`, …), if present.
    pub resource: Option<String>,
    /// `srt` (account SAS resource types), if present.
    pub resource_types: Option<String>,
    /// `sp`, if present.
    pub permissions: Option<String>,
}

/// Where a SAS stands relative to a given instant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SasValidity {
    /// `st` is in the future.
    NotYetValid,
    /// Valid now.
    Valid,
    /// `se` is not in the future.
    Expired,
}

impl SasInfo {
    /// Parses a SAS from a query string (with or without a leading `?`), a full URL, or a
    /// connection-string `SharedAccessSignature` value.
    pub fn parse(url_or_query: &str) -> Result<Self, SasParseError> {
        let query = query_part(url_or_query);
        if query_param(query, "sig").is_none() {
            return Err(SasParseError::MissingSignature);
        }
        let decoded = |name: &str| {
            query_param(query, name).map(|v| percent_decode_str(v).decode_utf8_lossy().into_owned())
        };
        let expiry_text = decoded("se").ok_or(SasParseError::MissingExpiry)?;
        let expiry = parse_sas_time(&expiry_text).ok_or(SasParseError::InvalidTime {
            param: "se",
            value: expiry_text.clone(),
        })?;
        let start = match decoded("st") {
            Some(text) => Some(parse_sas_time(&text).ok_or(SasParseError::InvalidTime {
                param: "st",
                value: text,
            })?),
            None => None,
        };
        Ok(Self {
            expiry,
            start,
            version: decoded("sv"),
            resource: decoded("sr"),
            resource_types: decoded("srt"),
            permissions: decoded("sp"),
        })
    }

    /// Validity at `now`.
    pub fn validity_at(&self, now: OffsetDateTime) -> SasValidity {
        if self.expiry <= now {
            SasValidity::Expired
        } else if self.start.is_some_and(|s| s > now) {
            SasValidity::NotYetValid
        } else {
            SasValidity::Valid
        }
    }

    /// Whether the SAS has expired at `now`.
    pub fn is_expired_at(&self, now: OffsetDateTime) -> bool {
        self.expiry <= now
    }

    /// A human-readable status for logs and error messages, e.g.
    /// `"SAS expires at 2030-01-01T00:00:00Z (in 3h 2m)"` or
    /// `"SAS has expired (at 2020-01-01T00:00:00Z, 5d 1h ago)"`.
    pub fn describe_at(&self, now: OffsetDateTime) -> String {
        let at = rfc3339(self.expiry.to_offset(UtcOffset::UTC));
        match self.validity_at(now) {
            SasValidity::Expired => {
                format!(
                    "SAS has expired (at {at}, {} ago)",
                    human(now - self.expiry)
                )
            }
            SasValidity::NotYetValid => {
                let start = self
                    .start
                    .map_or_else(String::new, |s| rfc3339(s.to_offset(UtcOffset::UTC)));
                format!("SAS is not valid before {start}; it expires at {at}")
            }
            SasValidity::Valid => format!("SAS expires at {at} (in {})", human(self.expiry - now)),
        }
    }
}

fn human(d: time::Duration) -> String {
    let secs = d.whole_seconds().unsigned_abs();
    let (days, hours, mins) = (secs / 86_400, secs / 3600 % 24, secs / 60 % 60);
    if days > 0 {
        format!("{days}d {hours}h")
    } else if hours > 0 {
        format!("{hours}h {mins}m")
    } else if mins > 0 {
        format!("{mins}m {}s", secs % 60)
    } else {
        format!("{secs}s")
    }
}

/// Accepts the ISO 8601 UTC forms the service accepts: `YYYY-MM-DD`, `YYYY-MM-DDThh:mmZ`,
/// `YYYY-MM-DDThh:mm:ssZ`, and RFC 3339 with fractions or offsets.
fn parse_sas_time(s: &str) -> Option<OffsetDateTime> {
    let s = s.trim();
    if let Ok(t) = OffsetDateTime::parse(s, &Rfc3339) {
        return Some(t);
    }
    if let Some(no_z) = s.strip_suffix('Z')
        && let Ok(t) = PrimitiveDateTime::parse(
            no_z,
            format_description!("[year]-[month]-[day]T[hour]:[minute]"),
        )
    {
        return Some(t.assume_utc());
    }
    Date::parse(s, format_description!("[year]-[month]-[day]"))
        .ok()
        .map(|d| d.midnight().assume_utc())
}

/// The part of `s` after the first `?` (or all of it), without any `#fragment`.
fn query_part(s: &str) -> &str {
    let s = s.trim();
    let q = s.split_once('?').map_or(s, |(_, q)| q);
    q.split_once('#').map_or(q, |(q, _)| q)
}

/// The raw (still percent-encoded) value of the first `name` parameter in `query`.
fn query_param<'a>(query: &'a str, name: &str) -> Option<&'a str> {
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
}

/// Whether `url` carries a SAS: a `sig` parameter in its query (the one place this is
/// decided; a `sig=` elsewhere in the URL, such as in a blob name, does not count).
///
/// ```
/// use dataprotection_azure_blobs::sas::is_sas_url;
/// assert!(is_sas_url("https://a.blob.core.windows.net/c/b?sv=2026-04-06&sig=abc"));
/// assert!(!is_sas_url("https://a.blob.core.windows.net/c/b"));
/// assert!(!is_sas_url("https://a.blob.core.windows.net/c/sig=b"));
/// ```
pub fn is_sas_url(url: &str) -> bool {
    let query = url.split_once('?').map_or("", |(_, q)| q);
    let query = query.split_once('#').map_or(query, |(q, _)| q);
    query.split('&').any(|pair| {
        pair.split_once('=')
            .is_some_and(|(name, value)| name.eq_ignore_ascii_case("sig") && !value.is_empty())
    })
}

/// Replaces every SAS signature (`sig=…`) and every `AccountKey=…` value in `text` with
/// [`REDACTED`].
///
/// `text` may be a URL, a bare query string, a connection string, or any log or error message
/// that embeds them (such as the SDK's `"{url} must use https"`). Parameter names match
/// case-insensitively and only at a boundary (start of text, or after `?`, `&`, `;`, whitespace,
/// a quote or `(`), so `xsig=` is left alone. A value ends at `&`, `;`, `#`, whitespace, a quote,
/// `)`, `>` or the end of the text.
pub fn redact(text: &str) -> String {
    const NAMES: [&str; 2] = ["sig=", "accountkey="];
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    let mut copied = 0;
    while i < bytes.len() {
        let at_boundary = i == 0
            || matches!(
                bytes[i - 1],
                b'?' | b'&' | b';' | b'"' | b'\'' | b'(' | b'<' | b' ' | b'\t' | b'\n' | b'\r'
            );
        if at_boundary
            && let Some(name) = NAMES.iter().find(|n| {
                bytes.len() - i >= n.len()
                    && bytes[i..i + n.len()].eq_ignore_ascii_case(n.as_bytes())
            })
        {
            let value_start = i + name.len();
            let mut end = value_start;
            while end < bytes.len()
                && !matches!(
                    bytes[end],
                    b'&' | b';' | b'#' | b'"' | b'\'' | b')' | b'>' | b' ' | b'\t' | b'\n' | b'\r'
                )
            {
                end += 1;
            }
            // All delimiters are ASCII, so these are char boundaries.
            out.push_str(&text[copied..value_start]);
            out.push_str(REDACTED);
            copied = end;
            i = end;
            continue;
        }
        i += 1;
    }
    out.push_str(&text[copied..]);
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use time::macros::datetime;

    const DEV_KEY: &str =
        "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

    fn key() -> AccountKey {
        AccountKey::from_base64(DEV_KEY).unwrap()
    }

    fn window() -> SasWindow {
        SasWindow::until(datetime!(2030-01-02 03:04:05.678 UTC))
            .starting(datetime!(2029-12-31 23:00:00 UTC))
    }

    // Known-answer vectors computed independently in Python 3:
    //
    //   import hmac, hashlib, base64, urllib.parse
    //   k = base64.b64decode(DEV_KEY)
    //   sts = "\n".join(["racwd", "2029-12-31T23:00:00Z", "2030-01-02T03:04:05Z",
    //       "/blob/devstoreaccount1/keys/dir/key ring.xml", "", "", "", "2026-04-06", "b",
    //       "", "", "", "", "", "", ""])
    //   base64.b64encode(hmac.new(k, sts.encode(), hashlib.sha256).digest())
    //
    // and likewise for the container and account forms below.
    const BLOB_SIG: &str = "Ta0cuAooTWTo5kyGGoQ55S8r4nKUe8+WdqWuDUlZ+eo=";
    const CONTAINER_SIG: &str = "l2oA9UJ2JdRhQ+Axrpp+z09X3xcHpWjZ3Q/a+bXQH+w=";
    const ACCOUNT_SIG: &str = "A9Ocmj7eDOhEqOKBscvUr7X/a26ODXU5MlBPa/4P/oo=";

    fn enc(s: &str) -> String {
        utf8_percent_encode(s, QUERY_VALUE).to_string()
    }

    #[test]
    fn blob_sas_known_answer() {
        let t = blob_sas(
            "devstoreaccount1",
            &key(),
            "keys",
            "dir/key ring.xml",
            Permissions::KEY_RING_BLOB,
            &window(),
        )
        .unwrap();
        assert_eq!(
            t.query(),
            format!(
                "sv=2026-04-06&sr=b&sp=racwd&st=2029-12-31T23%3A00%3A00Z\
                 &se=2030-01-02T03%3A04%3A05Z&sig={}",
                enc(BLOB_SIG)
            )
        );
        // Hand-checked percent-encoding of the base64 signature (+ / = are escaped).
        assert!(
            t.query()
                .ends_with("&sig=Ta0cuAooTWTo5kyGGoQ55S8r4nKUe8%2BWdqWuDUlZ%2Beo%3D")
        );
        assert_eq!(t.expiry(), datetime!(2030-01-02 03:04:05 UTC));
    }

    #[test]
    fn container_sas_known_answer() {
        let t = container_sas(
            "devstoreaccount1",
            &key(),
            "keys",
            "lr".parse().unwrap(),
            &window().protocol(SasProtocol::HttpsAndHttp),
        )
        .unwrap();
        assert_eq!(
            t.query(),
            format!(
                "sv=2026-04-06&sr=c&sp=rl&st=2029-12-31T23%3A00%3A00Z\
                 &se=2030-01-02T03%3A04%3A05Z&spr=https%2Chttp&sig={}",
                enc(CONTAINER_SIG)
            )
        );
    }

    #[test]
    fn account_sas_known_answer() {
        let t = account_sas("devstoreaccount1", &key(), Permissions::ALL, &window()).unwrap();
        assert_eq!(
            t.query(),
            format!(
                "sv=2026-04-06&ss=b&srt=sco&sp=rwdlac&st=2029-12-31T23%3A00%3A00Z\
                 &se=2030-01-02T03%3A04%3A05Z&sig={}",
                enc(ACCOUNT_SIG)
            )
        );
    }

    #[test]
    fn omitted_start_leaves_empty_field() {
        let t = blob_sas(
            "devstoreaccount1",
            &key(),
            "keys",
            "k.xml",
            Permissions::READ,
            &SasWindow::until(datetime!(2030-01-01 00:00 UTC)),
        )
        .unwrap();
        assert!(!t.query().contains("st="));
        let sts = "r\n\n2030-01-01T00:00:00Z\n/blob/devstoreaccount1/keys/k.xml\n\n\n\n\
                   2026-04-06\nb\n\n\n\n\n\n\n";
        assert_eq!(
            t.signature_for_tests_only(),
            enc(&key().sign(sts)),
            "string-to-sign must have 16 fields with empty st"
        );
    }

    #[test]
    fn permissions_parse_and_order() {
        let p: Permissions = "dwcar".parse().unwrap();
        assert_eq!(p, Permissions::KEY_RING_BLOB);
        assert_eq!(p.service_sas_letters(), "racwd");
        assert_eq!(Permissions::ALL.service_sas_letters(), "racwdl");
        assert_eq!(Permissions::ALL.account_sas_letters(), "rwdlac");
        assert_eq!(
            "rx".parse::<Permissions>(),
            Err(SasError::InvalidPermission('x'))
        );
        assert_eq!(
            "rr".parse::<Permissions>(),
            Err(SasError::InvalidPermission('r'))
        );
        assert_eq!("".parse::<Permissions>(), Err(SasError::NoPermissions));
    }

    #[test]
    fn minting_errors() {
        let w = window();
        let k = key();
        assert_eq!(
            blob_sas("Dev", &k, "keys", "b", Permissions::READ, &w),
            Err(SasError::InvalidAccountName("Dev".into()))
        );
        for bad in ["ab", "Keys", "-keys", "keys-", "ke--ys", "ke_ys"] {
            assert_eq!(
                container_sas("devstoreaccount1", &k, bad, Permissions::READ, &w),
                Err(SasError::InvalidContainerName(bad.into()))
            );
        }
        assert!(container_sas("devstoreaccount1", &k, "$root", Permissions::READ, &w).is_ok());
        assert_eq!(
            blob_sas("devstoreaccount1", &k, "keys", "", Permissions::READ, &w),
            Err(SasError::InvalidBlobName)
        );
        assert_eq!(
            account_sas("devstoreaccount1", &k, Permissions::default(), &w),
            Err(SasError::NoPermissions)
        );
        let backwards = SasWindow::until(datetime!(2030-01-01 00:00 UTC))
            .starting(datetime!(2030-01-01 00:00:00.5 UTC));
        assert!(matches!(
            account_sas("devstoreaccount1", &k, Permissions::READ, &backwards),
            Err(SasError::StartNotBeforeExpiry { .. })
        ));
        let far = SasWindow::until(datetime!(-0001-01-01 00:00 UTC));
        assert!(matches!(
            account_sas("devstoreaccount1", &k, Permissions::READ, &far),
            Err(SasError::TimeOutOfRange(_))
        ));
    }

    #[test]
    fn non_utc_times_are_converted() {
        let w = SasWindow::until(datetime!(2030-01-02 05:04:05 +02:00));
        let t = account_sas("devstoreaccount1", &key(), Permissions::READ, &w).unwrap();
        assert!(
            t.query().contains("se=2030-01-02T03%3A04%3A05Z"),
            "{}",
            t.query()
        );
    }

    #[test]
    fn account_key_errors_and_debug() {
        assert_eq!(
            AccountKey::from_base64("not base64!").unwrap_err(),
            SasError::InvalidAccountKey
        );
        assert_eq!(
            AccountKey::from_base64("  ").unwrap_err(),
            SasError::EmptyAccountKey
        );
        let dbg = format!("{:?}", key());
        assert_eq!(dbg, "AccountKey(<redacted>)");
        let err = AccountKey::from_base64("c2VjcmV0!")
            .unwrap_err()
            .to_string();
        assert!(!err.contains("c2VjcmV0"));
    }

    #[test]
    fn token_debug_and_display_redact() {
        let t = account_sas("devstoreaccount1", &key(), Permissions::ALL, &window()).unwrap();
        let sig = t.signature_for_tests_only().to_owned();
        assert!(!sig.is_empty());
        for shown in [format!("{t:?}"), t.to_string()] {
            assert!(!shown.contains(&sig), "{shown}");
            assert!(shown.contains("sig=REDACTED"), "{shown}");
        }
    }

    #[test]
    fn append_to_and_urls() {
        let t = account_sas("devstoreaccount1", &key(), Permissions::READ, &window()).unwrap();
        let q = t.query();
        assert_eq!(t.append_to("http://h/a"), format!("http://h/a?{q}"));
        assert_eq!(t.append_to("http://h/a?x=1"), format!("http://h/a?x=1&{q}"));
        assert_eq!(t.append_to("http://h/a?"), format!("http://h/a?{q}"));
        assert_eq!(
            blob_url(
                "http://127.0.0.1:1/devstoreaccount1/",
                "keys",
                "dir/key ring+1.xml"
            ),
            "http://127.0.0.1:1/devstoreaccount1/keys/dir/key%20ring%2B1.xml"
        );
        assert_eq!(
            container_url("https://a.blob.core.windows.net", "c1"),
            "https://a.blob.core.windows.net/c1"
        );
    }

    #[test]
    fn redact_cases() {
        let cases = [
            ("sv=1&sig=abc%2Bdef%3D&se=x", "sv=1&sig=REDACTED&se=x"),
            ("?sig=abc", "?sig=REDACTED"),
            ("sig=abc", "sig=REDACTED"),
            (
                "http://h/c/b?sv=1&SIG=a+b/c==#frag",
                "http://h/c/b?sv=1&SIG=REDACTED#frag",
            ),
            (
                "error: http://h/c?sig=abc must use https",
                "error: http://h/c?sig=REDACTED must use https",
            ),
            ("xsig=keep&sig=", "xsig=keep&sig=REDACTED"),
            (
                "AccountName=a;AccountKey=k3y==;SharedAccessSignature=sv=1&sig=s1g;X=1",
                "AccountName=a;AccountKey=REDACTED;SharedAccessSignature=sv=1&sig=REDACTED;X=1",
            ),
            ("\"http://h?sig=q\"", "\"http://h?sig=REDACTED\""),
            ("no secrets here, signal=1", "no secrets here, signal=1"),
            ("ünïcode?sig=ü&x=ö", "ünïcode?sig=REDACTED&x=ö"),
            ("", ""),
        ];
        for (input, expected) in cases {
            assert_eq!(redact(input), expected, "input: {input}");
        }
        let t = blob_sas(
            "devstoreaccount1",
            &key(),
            "keys",
            "b",
            Permissions::READ,
            &window(),
        )
        .unwrap();
        let url = t.append_to(&blob_url(
            "http://127.0.0.1:1/devstoreaccount1",
            "keys",
            "b",
        ));
        let red = redact(&url);
        assert!(!red.contains(t.signature_for_tests_only()));
        assert!(red.contains("se=2030-01-02T03%3A04%3A05Z"));
    }

    #[test]
    fn parse_minted_sas() {
        let t = blob_sas(
            "devstoreaccount1",
            &key(),
            "keys",
            "b",
            Permissions::READ,
            &window(),
        )
        .unwrap();
        let url = t.append_to("http://127.0.0.1:1/devstoreaccount1/keys/b");
        let info = SasInfo::parse(&url).unwrap();
        assert_eq!(info.expiry, datetime!(2030-01-02 03:04:05 UTC));
        assert_eq!(info.start, Some(datetime!(2029-12-31 23:00 UTC)));
        assert_eq!(info.version.as_deref(), Some(SAS_VERSION));
        assert_eq!(info.resource.as_deref(), Some("b"));
        assert_eq!(info.permissions.as_deref(), Some("r"));
        assert_eq!(info.resource_types, None);
        assert_eq!(SasInfo::parse(t.query()).unwrap(), info);
        assert_eq!(SasInfo::parse(&format!("?{}", t.query())).unwrap(), info);
    }

    #[test]
    fn parse_time_forms() {
        let cases = [
            (
                "2030-01-02T03%3A04%3A05Z",
                datetime!(2030-01-02 03:04:05 UTC),
            ),
            ("2030-01-02T03:04:05Z", datetime!(2030-01-02 03:04:05 UTC)),
            ("2030-01-02T03:04Z", datetime!(2030-01-02 03:04 UTC)),
            ("2030-01-02", datetime!(2030-01-02 00:00 UTC)),
            (
                "2030-01-02T03:04:05.1234567Z",
                datetime!(2030-01-02 03:04:05.1234567 UTC),
            ),
        ];
        for (se, expected) in cases {
            let info = SasInfo::parse(&format!("sv=x&se={se}&sig=s")).unwrap();
            assert_eq!(info.expiry, expected, "{se}");
        }
    }

    #[test]
    fn parse_errors_never_leak_signature() {
        assert_eq!(
            SasInfo::parse("sv=1&se=2030-01-01"),
            Err(SasParseError::MissingSignature)
        );
        assert_eq!(
            SasInfo::parse("http://h/c?sv=1&sig=SECRET"),
            Err(SasParseError::MissingExpiry)
        );
        let err = SasInfo::parse("se=tomorrow&sig=SECRET").unwrap_err();
        assert_eq!(
            err,
            SasParseError::InvalidTime {
                param: "se",
                value: "tomorrow".into()
            }
        );
        assert!(!err.to_string().contains("SECRET"));
        assert!(matches!(
            SasInfo::parse("se=2030-01-01&st=soon&sig=S"),
            Err(SasParseError::InvalidTime { param: "st", .. })
        ));
    }

    #[test]
    fn validity_and_description() {
        let info = SasInfo::parse("st=2030-01-01T00%3A00%3A00Z&se=2030-01-02T03%3A04%3A05Z&sig=x")
            .unwrap();
        let before = datetime!(2029-12-31 00:00 UTC);
        let during = datetime!(2030-01-02 01:00 UTC);
        let after = datetime!(2030-01-07 04:04:05 UTC);
        assert_eq!(info.validity_at(before), SasValidity::NotYetValid);
        assert_eq!(info.validity_at(during), SasValidity::Valid);
        assert_eq!(info.validity_at(after), SasValidity::Expired);
        assert!(info.is_expired_at(datetime!(2030-01-02 03:04:05 UTC)));
        assert!(!info.is_expired_at(during));
        assert_eq!(
            info.describe_at(during),
            "SAS expires at 2030-01-02T03:04:05Z (in 2h 4m)"
        );
        assert_eq!(
            info.describe_at(after),
            "SAS has expired (at 2030-01-02T03:04:05Z, 5d 1h ago)"
        );
        assert_eq!(
            info.describe_at(before),
            "SAS is not valid before 2030-01-01T00:00:00Z; it expires at 2030-01-02T03:04:05Z"
        );
    }
}
