//! The manifest: what a ring directory holds and what every case must decode
//! to, in the shape issue 13 fixes (extra fields are allowed on both sides).

use dataprotection_aspnetcore::{AuthenticationProperties, AuthenticationTicket};
use serde::{Deserialize, Serialize};

/// The manifest format version this crate writes and reads.
pub const MANIFEST_VERSION: u32 = 1;

/// `manifest.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Always [`MANIFEST_VERSION`].
    pub version: u32,
    /// The key rings the cases use.
    pub rings: Vec<Ring>,
    /// What must (or must not) decode.
    pub cases: Vec<Case>,
}

/// How a ring's master keys are protected at rest.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeyEncryption {
    /// Master keys in clear (`NullXmlDecryptor` is not even involved).
    None,
    /// Wrapped as `Azure.Extensions.AspNetCore.DataProtection.Keys` does; the
    /// ring's `test_rsa_private_key` unwraps.
    AzureKeyVault,
    /// Protected with a certificate (`ProtectKeysWithCertificate`); the
    /// ring's `test_rsa_private_key` and `test_certificate` decrypt.
    X509,
}

/// A key ring.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Ring {
    /// Unique name, used by cases.
    pub name: String,
    /// The directory, relative to the manifest.
    pub dir: String,
    /// What .NET passes to `SetApplicationName`.
    pub application_name: String,
    /// How master keys are protected at rest.
    pub key_encryption: KeyEncryption,
    /// The test-only RSA private key (PKCS#8 PEM) that unwraps the ring's
    /// master keys, relative to the manifest (Key Vault and X.509 rings).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_rsa_private_key: Option<String>,
    /// The test-only certificate (PEM), relative to the manifest (X.509 rings).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_certificate: Option<String>,
    /// The Key Vault key identifier the local key resolver must answer for
    /// (extra field, Key Vault rings).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_vault_key_id: Option<String>,
    /// The same ring as one `<repository>` document, what the Azure blob
    /// repositories store (`PersistKeysToAzureBlobStorage`), relative to the
    /// manifest (extra field).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub document: Option<String>,
    /// What the ring holds, revocations applied.
    pub keys: Vec<KeyEntry>,
    /// The key that must be the default at an instant.
    pub default_key: DefaultKey,
    /// Why the ring exists (extra field).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// A key as `IKeyManager.GetAllKeys()` reports it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct KeyEntry {
    /// The key id (a GUID, lower-case, hyphenated).
    pub id: String,
    /// RFC 3339.
    #[serde(rename = "creationDate")]
    pub creation_date: String,
    /// RFC 3339.
    #[serde(rename = "activationDate")]
    pub activation_date: String,
    /// RFC 3339.
    #[serde(rename = "expirationDate")]
    pub expiration_date: String,
    /// Whether a revocation applies.
    pub revoked: bool,
    /// The .NET `EncryptionAlgorithm` name (`AES_256_CBC`, ...).
    pub encryption: String,
    /// The .NET `ValidationAlgorithm` name, `null` for GCM.
    pub validation: Option<String>,
}

/// The default key at an instant.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DefaultKey {
    /// RFC 3339.
    pub at: String,
    /// The key id .NET must resolve as the default key then.
    pub id: String,
}

/// The kind of a case.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CaseKind {
    /// `CreateProtector(purposes…).Unprotect(value)`.
    Payload,
    /// `CreateProtector(purposes…).ToTimeLimitedDataProtector().Unprotect(value, out expiration)`.
    TimeLimited,
    /// A sign-in cookie (`TicketDataFormat`).
    Cookie,
    /// An OpenID Connect `state` (`PropertiesDataFormat`).
    OidcState,
    /// An Identity token (`DataProtectorTokenProvider`).
    IdentityToken,
}

/// Whether a case must decode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Expect {
    /// Decodes to what the case states.
    Ok,
    /// Must be refused.
    Error,
}

/// Why a case must be refused (extra field).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExpectedError {
    /// The payload's key is revoked.
    Revoked,
    /// The time-limited payload has expired.
    Expired,
    /// The payload does not authenticate under these purposes.
    Decryption,
}

/// One value to decode.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Case {
    /// Unique name.
    pub name: String,
    /// The ring's name.
    pub ring: String,
    /// What kind of value this is.
    pub kind: CaseKind,
    /// What .NET passes to `CreateProtector`, after the application name.
    pub purposes: Vec<String>,
    /// The value as transmitted: Base64Url without padding; Identity tokens
    /// in standard Base64.
    pub value: String,
    /// Whether it must decode.
    pub expect: Expect,
    /// Why it must be refused (extra field, `expect: error` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ExpectedError>,
    /// The key the value was protected with (extra field).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    /// The plaintext, hex (payload, time_limited).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plaintext_hex: Option<String>,
    /// The expiration, RFC 3339 (time_limited).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_utc: Option<String>,
    /// The authentication scheme (cookie).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheme: Option<String>,
    /// The ticket, in the JSON shape of `dpkeys cookie decode` (cookie).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ticket: Option<AuthenticationTicket>,
    /// The request cookies of a chunked cookie, in order, whose reassembled
    /// value is `value` (extra field, cookie).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cookies: Option<Vec<RequestCookie>>,
    /// The authentication properties, in order (oidc_state).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub properties: Option<AuthenticationProperties>,
    /// What the token holds (identity_token).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<IdentityTokenEntry>,
    /// What the case shows (extra field).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// One cookie of a request's `Cookie` header.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestCookie {
    /// Its name.
    pub name: String,
    /// Its value.
    pub value: String,
}

/// What an Identity `DataProtectorTokenProvider` token holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdentityTokenEntry {
    /// The user id.
    pub user_id: String,
    /// The token purpose (`ResetPassword`, ...), not a Data Protection purpose.
    pub purpose: String,
    /// The user's security stamp.
    pub security_stamp: String,
    /// When the token was created, RFC 3339 (100 ns precision).
    pub created_utc: String,
}
