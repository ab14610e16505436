//! Azure Storage connection strings.
//!
//! Parses the `Key=Value;Key=Value` form used by the Azure portal, the Azure CLI and Azurite,
//! for the blob service:
//!
//! | key | meaning |
//! |---|---|
//! | `DefaultEndpointsProtocol` | `http` or `https` (default `https`) |
//! | `AccountName` | storage account name |
//! | `AccountKey` | base64 account key (kept secret, see below) |
//! | `BlobEndpoint` | explicit blob endpoint, overrides the derived one |
//! | `EndpointSuffix` | default `core.windows.net` |
//! | `SharedAccessSignature` | a SAS query string (kept secret) |
//! | `UseDevelopmentStorage=true` | Azurite / the storage emulator on `http://127.0.0.1:10000/devstoreaccount1` with the well-known key |
//!
//! Keys are case-insensitive; empty segments (such as a trailing `;`) are ignored; values may
//! contain `=`. `QueueEndpoint`, `TableEndpoint`, `FileEndpoint`, `DfsEndpoint` (and their
//! `…SecondaryEndpoint` variants) and `DevelopmentStorageProxyUri` are accepted and ignored.
//! Any other key is an error, so that a typo such as `AcountKey` does not silently drop a
//! credential.
//!
//! Neither errors nor `Debug` output ever contain the account key or the SAS signature.
//!
//! ```
//! use dataprotection_azure_blobs::connection_string::{ConnectionString, Credential};
//!
//! let cs: ConnectionString = "UseDevelopmentStorage=true".parse()?;
//! assert_eq!(cs.blob_endpoint(), "http://127.0.0.1:10000/devstoreaccount1");
//! assert!(matches!(cs.credential(), Credential::AccountKey(_)));
//! assert!(!format!("{cs:?}").contains("Eby8"));
//! # Ok::<(), dataprotection_azure_blobs::connection_string::ConnectionStringError>(())
//! ```

use std::fmt;
use std::str::FromStr;

use crate::sas::{self, AccountKey};

/// The storage emulator's well-known account name.
pub const DEVELOPMENT_ACCOUNT_NAME: &str = "devstoreaccount1";

/// The storage emulator's well-known (public) account key.
pub const DEVELOPMENT_ACCOUNT_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// The storage emulator's default blob endpoint.
pub const DEVELOPMENT_BLOB_ENDPOINT: &str = "http://127.0.0.1:10000/devstoreaccount1";

/// The default `EndpointSuffix` (public Azure cloud).
pub const DEFAULT_ENDPOINT_SUFFIX: &str = "core.windows.net";

/// Why a connection string was rejected. Never contains the key or a signature.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConnectionStringError {
    /// The string is empty or only separators.
    #[error("the storage connection string is empty")]
    Empty,
    /// A segment has no `=` (segments are numbered from 1; the text is not shown as it may be
    /// part of a secret).
    #[error("segment {0} of the storage connection string is not of the form Key=Value")]
    MalformedSegment(usize),
    /// A key has an empty value.
    #[error("the storage connection string has an empty value for {0}")]
    EmptyValue(&'static str),
    /// A key appears twice.
    #[error("the storage connection string sets {0} more than once")]
    DuplicateKey(&'static str),
    /// A key is not recognised. The key is shown only if it looks like a setting name (ASCII
    /// letters, at most 40): `None` means it was withheld because it might be a stray secret.
    #[error(
        "unknown key {} in the storage connection string (known: DefaultEndpointsProtocol, \
         AccountName, AccountKey, BlobEndpoint, EndpointSuffix, SharedAccessSignature, \
         UseDevelopmentStorage)",
        .0.as_deref().map_or_else(|| "(not shown)".to_owned(), |k| format!("{k:?}"))
    )]
    UnknownKey(Option<String>),
    /// `DefaultEndpointsProtocol` is neither `http` nor `https`.
    #[error("DefaultEndpointsProtocol must be http or https, not {0:?}")]
    InvalidProtocol(String),
    /// `UseDevelopmentStorage` is not `true`.
    #[error("UseDevelopmentStorage must be \"true\" when present, not {0:?}")]
    InvalidDevelopmentStorageFlag(String),
    /// `UseDevelopmentStorage=true` was combined with account settings.
    #[error("UseDevelopmentStorage=true cannot be combined with {0}")]
    DevelopmentStorageConflict(&'static str),
    /// The account name is not valid.
    #[error("invalid AccountName {0:?}: expected 3-24 lowercase letters and digits")]
    InvalidAccountName(String),
    /// `AccountKey` is given without `AccountName`.
    #[error("the storage connection string has an AccountKey but no AccountName")]
    AccountKeyWithoutAccountName,
    /// `AccountKey` is not valid base64.
    #[error("the AccountKey in the storage connection string is not valid base64")]
    InvalidAccountKey,
    /// Both `AccountKey` and `SharedAccessSignature` are present.
    #[error(
        "the storage connection string has both AccountKey and SharedAccessSignature; keep one"
    )]
    ConflictingCredentials,
    /// Neither `BlobEndpoint` nor `AccountName`: no way to derive the endpoint.
    #[error(
        "the storage connection string has neither BlobEndpoint nor AccountName, so the blob \
         endpoint is unknown"
    )]
    MissingBlobEndpoint,
    /// `BlobEndpoint` is not an absolute http(s) URL without query or fragment.
    #[error("BlobEndpoint {0:?} must be an absolute http:// or https:// URL without a query")]
    InvalidBlobEndpoint(String),
    /// `EndpointSuffix` is not a host name suffix.
    #[error("EndpointSuffix {0:?} must be a DNS suffix such as core.windows.net")]
    InvalidEndpointSuffix(String),
    /// `SharedAccessSignature` does not look like a SAS (no `sig=`).
    #[error("SharedAccessSignature in the storage connection string has no sig= parameter")]
    InvalidSharedAccessSignature,
}

/// The credential a connection string carries.
#[derive(Clone)]
pub enum Credential {
    /// `AccountKey` (or the development key): mint SAS tokens with [`crate::sas`].
    AccountKey(AccountKey),
    /// `SharedAccessSignature`: a ready SAS query string (without `?`). A secret.
    SharedAccessSignature(String),
    /// No credential (anonymous / public access).
    None,
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::AccountKey(k) => f.debug_tuple("AccountKey").field(k).finish(),
            Self::SharedAccessSignature(s) => f
                .debug_tuple("SharedAccessSignature")
                .field(&sas::redact(s))
                .finish(),
            Self::None => f.write_str("None"),
        }
    }
}

/// A parsed storage connection string, reduced to what the blob service needs.
#[derive(Clone)]
pub struct ConnectionString {
    account_name: Option<String>,
    blob_endpoint: String,
    credential: Credential,
    development_storage: bool,
}

impl ConnectionString {
    /// Parses a connection string. Equivalent to `s.parse()`.
    pub fn parse(s: &str) -> Result<Self, ConnectionStringError> {
        let mut fields = Fields::default();
        let mut any = false;
        for (index, segment) in s.split(';').enumerate() {
            let segment = segment.trim();
            if segment.is_empty() {
                continue;
            }
            any = true;
            let (key, value) = segment
                .split_once('=')
                .ok_or(ConnectionStringError::MalformedSegment(index + 1))?;
            fields.set(key.trim(), value.trim())?;
        }
        if !any {
            return Err(ConnectionStringError::Empty);
        }
        fields.finish()
    }

    /// The emulator's connection string (`UseDevelopmentStorage=true`).
    pub fn development_storage() -> Self {
        Self {
            account_name: Some(DEVELOPMENT_ACCOUNT_NAME.to_owned()),
            blob_endpoint: DEVELOPMENT_BLOB_ENDPOINT.to_owned(),
            credential: Credential::AccountKey(development_key()),
            development_storage: true,
        }
    }

    /// The account name, if the string names one.
    pub fn account_name(&self) -> Option<&str> {
        self.account_name.as_deref()
    }

    /// The blob service endpoint, without a trailing `/`, e.g.
    /// `https://myaccount.blob.core.windows.net` or `http://127.0.0.1:10000/devstoreaccount1`.
    pub fn blob_endpoint(&self) -> &str {
        &self.blob_endpoint
    }

    /// The credential.
    pub fn credential(&self) -> &Credential {
        &self.credential
    }

    /// Whether this is `UseDevelopmentStorage=true`.
    pub fn is_development_storage(&self) -> bool {
        self.development_storage
    }
}

impl FromStr for ConnectionString {
    type Err = ConnectionStringError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Debug for ConnectionString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectionString")
            .field("account_name", &self.account_name)
            .field("blob_endpoint", &self.blob_endpoint)
            .field("credential", &self.credential)
            .field("development_storage", &self.development_storage)
            .finish()
    }
}

fn development_key() -> AccountKey {
    match AccountKey::from_base64(DEVELOPMENT_ACCOUNT_KEY) {
        Ok(key) => key,
        Err(_) => unreachable!("the well-known development key is valid base64"),
    }
}

#[derive(Default)]
struct Fields {
    protocol: Option<String>,
    account_name: Option<String>,
    account_key: Option<AccountKey>,
    blob_endpoint: Option<String>,
    endpoint_suffix: Option<String>,
    sas: Option<String>,
    development: Option<String>,
}

/// Keys accepted and ignored (other services, emulator proxy).
const IGNORED_KEYS: [&str; 9] = [
    "QueueEndpoint",
    "TableEndpoint",
    "FileEndpoint",
    "DfsEndpoint",
    "BlobSecondaryEndpoint",
    "QueueSecondaryEndpoint",
    "TableSecondaryEndpoint",
    "FileSecondaryEndpoint",
    "DevelopmentStorageProxyUri",
];

impl Fields {
    fn set(&mut self, key: &str, value: &str) -> Result<(), ConnectionStringError> {
        use ConnectionStringError as E;

        fn put(
            slot: &mut Option<String>,
            name: &'static str,
            value: &str,
        ) -> Result<(), ConnectionStringError> {
            if slot.is_some() {
                return Err(E::DuplicateKey(name));
            }
            if value.is_empty() {
                return Err(E::EmptyValue(name));
            }
            *slot = Some(value.to_owned());
            Ok(())
        }

        let k = key.to_ascii_lowercase();
        match k.as_str() {
            "defaultendpointsprotocol" => {
                put(&mut self.protocol, "DefaultEndpointsProtocol", value)
            }
            "accountname" => put(&mut self.account_name, "AccountName", value),
            "blobendpoint" => put(&mut self.blob_endpoint, "BlobEndpoint", value),
            "endpointsuffix" => put(&mut self.endpoint_suffix, "EndpointSuffix", value),
            "sharedaccesssignature" => put(&mut self.sas, "SharedAccessSignature", value),
            "usedevelopmentstorage" => put(&mut self.development, "UseDevelopmentStorage", value),
            "accountkey" => {
                if self.account_key.is_some() {
                    return Err(E::DuplicateKey("AccountKey"));
                }
                if value.is_empty() {
                    return Err(E::EmptyValue("AccountKey"));
                }
                self.account_key =
                    Some(AccountKey::from_base64(value).map_err(|_| E::InvalidAccountKey)?);
                Ok(())
            }
            _ if IGNORED_KEYS.iter().any(|i| i.eq_ignore_ascii_case(key)) => Ok(()),
            _ => {
                let looks_like_name =
                    key.len() <= 40 && key.bytes().all(|b| b.is_ascii_alphabetic());
                Err(E::UnknownKey(looks_like_name.then(|| key.to_owned())))
            }
        }
    }

    fn finish(self) -> Result<ConnectionString, ConnectionStringError> {
        use ConnectionStringError as E;

        if let Some(flag) = self.development {
            if !flag.eq_ignore_ascii_case("true") {
                return Err(E::InvalidDevelopmentStorageFlag(flag));
            }
            let conflicts = [
                (self.protocol.is_some(), "DefaultEndpointsProtocol"),
                (self.account_name.is_some(), "AccountName"),
                (self.account_key.is_some(), "AccountKey"),
                (self.blob_endpoint.is_some(), "BlobEndpoint"),
                (self.endpoint_suffix.is_some(), "EndpointSuffix"),
                (self.sas.is_some(), "SharedAccessSignature"),
            ];
            if let Some((_, name)) = conflicts.iter().find(|(present, _)| *present) {
                return Err(E::DevelopmentStorageConflict(name));
            }
            return Ok(ConnectionString::development_storage());
        }

        let protocol = match self.protocol.as_deref() {
            None => "https",
            Some(p) if p.eq_ignore_ascii_case("https") => "https",
            Some(p) if p.eq_ignore_ascii_case("http") => "http",
            Some(p) => return Err(E::InvalidProtocol(p.to_owned())),
        };

        if let Some(name) = &self.account_name
            && sas::validate_account_name(name).is_err()
        {
            return Err(E::InvalidAccountName(name.clone()));
        }

        let credential = match (self.account_key, self.sas) {
            (Some(_), Some(_)) => return Err(E::ConflictingCredentials),
            (Some(key), None) => {
                if self.account_name.is_none() {
                    return Err(E::AccountKeyWithoutAccountName);
                }
                Credential::AccountKey(key)
            }
            (None, Some(sas)) => {
                let sas = sas.strip_prefix('?').unwrap_or(&sas).to_owned();
                let has_sig = sas.split('&').any(|p| {
                    p.split_once('=')
                        .is_some_and(|(k, v)| k == "sig" && !v.is_empty())
                });
                if !has_sig {
                    return Err(E::InvalidSharedAccessSignature);
                }
                Credential::SharedAccessSignature(sas)
            }
            (None, None) => Credential::None,
        };

        let blob_endpoint = match (self.blob_endpoint, &self.account_name) {
            (Some(endpoint), _) => validate_endpoint(&endpoint)?,
            (None, Some(account)) => {
                let suffix = self
                    .endpoint_suffix
                    .as_deref()
                    .unwrap_or(DEFAULT_ENDPOINT_SUFFIX)
                    .trim_start_matches('.');
                let valid_suffix = !suffix.is_empty()
                    && suffix.contains('.')
                    && suffix
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
                if !valid_suffix {
                    return Err(E::InvalidEndpointSuffix(
                        self.endpoint_suffix.unwrap_or_default(),
                    ));
                }
                format!("{protocol}://{account}.blob.{suffix}")
            }
            (None, None) => return Err(E::MissingBlobEndpoint),
        };

        Ok(ConnectionString {
            account_name: self.account_name,
            blob_endpoint,
            credential,
            development_storage: false,
        })
    }
}

fn validate_endpoint(endpoint: &str) -> Result<String, ConnectionStringError> {
    let invalid = || ConnectionStringError::InvalidBlobEndpoint(sas::redact(endpoint));
    let lower = endpoint.to_ascii_lowercase();
    let rest = lower
        .strip_prefix("https://")
        .or_else(|| lower.strip_prefix("http://"))
        .ok_or_else(invalid)?;
    let host = rest.split('/').next().unwrap_or("");
    if host.is_empty() || endpoint.contains(['?', '#', ' ']) {
        return Err(invalid());
    }
    Ok(endpoint.trim_end_matches('/').to_owned())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use ConnectionStringError as E;

    const KEY: &str = "c2VjcmV0LWtleS1ieXRlcw==";

    fn parse(s: &str) -> Result<ConnectionString, E> {
        s.parse()
    }

    #[test]
    fn full_account_key_string() {
        let cs = parse(&format!(
            "DefaultEndpointsProtocol=https;AccountName=myacct;AccountKey={KEY};\
             EndpointSuffix=core.windows.net"
        ))
        .unwrap();
        assert_eq!(cs.account_name(), Some("myacct"));
        assert_eq!(cs.blob_endpoint(), "https://myacct.blob.core.windows.net");
        assert!(matches!(cs.credential(), Credential::AccountKey(_)));
        assert!(!cs.is_development_storage());
    }

    #[test]
    fn defaults_and_suffix_and_case_insensitive_keys() {
        let cs = parse(&format!("accountname=myacct;ACCOUNTKEY={KEY}")).unwrap();
        assert_eq!(cs.blob_endpoint(), "https://myacct.blob.core.windows.net");
        let cs = parse("DEFAULTENDPOINTSPROTOCOL=HTTP;AccountName=myacct;endpointSuffix=core.chinacloudapi.cn;;")
            .unwrap();
        assert_eq!(
            cs.blob_endpoint(),
            "http://myacct.blob.core.chinacloudapi.cn"
        );
        assert!(matches!(cs.credential(), Credential::None));
    }

    #[test]
    fn blob_endpoint_overrides_and_trailing_separators() {
        let cs = parse(&format!(
            " DefaultEndpointsProtocol=http ; AccountName=devstoreaccount1; AccountKey={KEY} ;\
             BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1/;QueueEndpoint=http://x/q;"
        ))
        .unwrap();
        assert_eq!(
            cs.blob_endpoint(),
            "http://127.0.0.1:10000/devstoreaccount1"
        );
    }

    #[test]
    fn sas_values_contain_equals() {
        let cs = parse(
            "BlobEndpoint=https://a.blob.core.windows.net;\
             SharedAccessSignature=?sv=2026-04-06&ss=b&srt=sco&sp=r&se=2030-01-01&sig=ab%2Bc=",
        )
        .unwrap();
        assert_eq!(cs.account_name(), None);
        match cs.credential() {
            Credential::SharedAccessSignature(s) => {
                assert_eq!(
                    s,
                    "sv=2026-04-06&ss=b&srt=sco&sp=r&se=2030-01-01&sig=ab%2Bc="
                );
            }
            other => panic!("unexpected {other:?}"),
        }
        let dbg = format!("{cs:?}");
        assert!(!dbg.contains("ab%2Bc"), "{dbg}");
        assert!(dbg.contains("sig=REDACTED"), "{dbg}");
    }

    #[test]
    fn development_storage() {
        for s in [
            "UseDevelopmentStorage=true",
            "usedevelopmentstorage=TRUE;",
            "UseDevelopmentStorage=true;DevelopmentStorageProxyUri=http://myproxy",
        ] {
            let cs = parse(s).unwrap();
            assert!(cs.is_development_storage());
            assert_eq!(cs.account_name(), Some(DEVELOPMENT_ACCOUNT_NAME));
            assert_eq!(cs.blob_endpoint(), DEVELOPMENT_BLOB_ENDPOINT);
            assert!(matches!(cs.credential(), Credential::AccountKey(_)));
        }
    }

    #[test]
    fn debug_never_shows_key() {
        let cs = parse(&format!("AccountName=myacct;AccountKey={KEY}")).unwrap();
        let dbg = format!("{cs:?}");
        assert!(!dbg.contains(KEY) && !dbg.contains("c2VjcmV0"), "{dbg}");
        assert!(dbg.contains("<redacted>"), "{dbg}");
        let dev = format!("{:?}", ConnectionString::development_storage());
        assert!(!dev.contains("Eby8"), "{dev}");
    }

    #[test]
    fn error_paths() {
        let cases: Vec<(String, E)> = vec![
            (String::new(), E::Empty),
            (" ; ;".into(), E::Empty),
            ("AccountName=a1b;garbage".into(), E::MalformedSegment(2)),
            ("AccountName=".into(), E::EmptyValue("AccountName")),
            ("AccountKey=".into(), E::EmptyValue("AccountKey")),
            (
                "AccountName=abc;accountname=abd".into(),
                E::DuplicateKey("AccountName"),
            ),
            (
                format!("AccountName=abc;AccountKey={KEY};AccountKey={KEY}"),
                E::DuplicateKey("AccountKey"),
            ),
            (
                "AccountName=abc;AcountKey=xyz".into(),
                E::UnknownKey(Some("AcountKey".into())),
            ),
            (
                "DefaultEndpointsProtocol=ftp;AccountName=abc".into(),
                E::InvalidProtocol("ftp".into()),
            ),
            (
                "UseDevelopmentStorage=false".into(),
                E::InvalidDevelopmentStorageFlag("false".into()),
            ),
            (
                "UseDevelopmentStorage=true;AccountName=abc".into(),
                E::DevelopmentStorageConflict("AccountName"),
            ),
            (
                format!("UseDevelopmentStorage=true;AccountKey={KEY}"),
                E::DevelopmentStorageConflict("AccountKey"),
            ),
            (
                "AccountName=My_Acct".into(),
                E::InvalidAccountName("My_Acct".into()),
            ),
            (
                format!("AccountKey={KEY};BlobEndpoint=http://h"),
                E::AccountKeyWithoutAccountName,
            ),
            (
                "AccountName=abc;AccountKey=not*base64".into(),
                E::InvalidAccountKey,
            ),
            (
                format!("AccountName=abc;AccountKey={KEY};SharedAccessSignature=sv=1&sig=x"),
                E::ConflictingCredentials,
            ),
            (
                "DefaultEndpointsProtocol=https".into(),
                E::MissingBlobEndpoint,
            ),
            (
                "BlobEndpoint=ftp://h/x".into(),
                E::InvalidBlobEndpoint("ftp://h/x".into()),
            ),
            (
                "BlobEndpoint=http:///x".into(),
                E::InvalidBlobEndpoint("http:///x".into()),
            ),
            (
                "BlobEndpoint=https://h/?sig=SECRET".into(),
                E::InvalidBlobEndpoint("https://h/?sig=REDACTED".into()),
            ),
            (
                "AccountName=abc;EndpointSuffix=bad/suffix".into(),
                E::InvalidEndpointSuffix("bad/suffix".into()),
            ),
            (
                "BlobEndpoint=https://h;SharedAccessSignature=sv=1&se=2030-01-01".into(),
                E::InvalidSharedAccessSignature,
            ),
        ];
        for (input, expected) in cases {
            let err = parse(&input).unwrap_err();
            assert_eq!(err, expected, "input: {input:?}");
            let msg = err.to_string();
            assert!(!msg.contains(KEY) && !msg.contains("SECRET"), "{msg}");
        }
    }

    #[test]
    fn error_messages_name_the_problem() {
        assert_eq!(
            E::UnknownKey(Some("AcountKey".into())).to_string(),
            "unknown key \"AcountKey\" in the storage connection string (known: \
             DefaultEndpointsProtocol, AccountName, AccountKey, BlobEndpoint, EndpointSuffix, \
             SharedAccessSignature, UseDevelopmentStorage)"
        );
        assert_eq!(
            E::InvalidAccountKey.to_string(),
            "the AccountKey in the storage connection string is not valid base64"
        );
        // A stray piece of a key (base64 with `=` padding) is not echoed as a key name.
        let err = parse(&format!("AccountName=abc;{KEY}")).unwrap_err();
        assert_eq!(err, E::UnknownKey(None));
        assert!(!err.to_string().contains("c2Vj"), "{err}");
        assert!(err.to_string().starts_with("unknown key (not shown) in"));
        let err = parse("AccountName=abc;c2VjcmV0LWtleS1ieXRlcw").unwrap_err();
        assert_eq!(err, E::MalformedSegment(2));
        assert!(!err.to_string().contains("c2Vj"));
    }
}
