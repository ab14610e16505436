//! The vault abstraction ([`KeyWrapClient`]) and its implementation over the
//! official `azure_security_keyvault_keys::KeyClient`.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use azure_core::credentials::TokenCredential;
use azure_core::error::{ErrorKind, ErrorResponse};
use azure_core::http::ClientOptions;
use azure_security_keyvault_keys::models::{
    EncryptionAlgorithm, KeyClientGetKeyOptions, KeyClientWrapKeyOptions, KeyOperationParameters,
};
use azure_security_keyvault_keys::{KeyClient, KeyClientOptions};

use crate::error::{FailureCause, KeyVaultError, RequestFailure};
use crate::key_id::KeyVaultKeyId;

/// A key-wrap algorithm Key Vault offers for RSA keys.
///
/// ```
/// use dataprotection_azure_keyvault::WrapAlgorithm;
///
/// // What ASP.NET Core's Key Vault encryptor uses, and so the default.
/// assert_eq!(WrapAlgorithm::default(), WrapAlgorithm::RsaOaep);
/// assert_eq!(WrapAlgorithm::RsaOaep.as_str(), "RSA-OAEP");
/// assert_eq!(WrapAlgorithm::RsaOaep256.to_string(), "RSA-OAEP-256");
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum WrapAlgorithm {
    /// `RSA-OAEP`: RSAES-OAEP with SHA-1 and MGF1-SHA-1, what ASP.NET Core's
    /// Key Vault encryptor uses (so every stored key expects it).
    #[default]
    RsaOaep,
    /// `RSA-OAEP-256`: RSAES-OAEP with SHA-256 and MGF1-SHA-256.
    RsaOaep256,
}

impl WrapAlgorithm {
    /// The name Key Vault uses (the JWA `alg`).
    pub const fn as_str(self) -> &'static str {
        match self {
            WrapAlgorithm::RsaOaep => "RSA-OAEP",
            WrapAlgorithm::RsaOaep256 => "RSA-OAEP-256",
        }
    }

    fn sdk(self) -> EncryptionAlgorithm {
        match self {
            WrapAlgorithm::RsaOaep => EncryptionAlgorithm::RsaOaep,
            WrapAlgorithm::RsaOaep256 => EncryptionAlgorithm::RsaOaep256,
        }
    }
}

impl fmt::Display for WrapAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The result of a wrap call.
#[derive(Clone, PartialEq, Eq)]
pub struct WrappedKey {
    /// The identifier of the key that wrapped, as the vault reports it: the
    /// **versioned** `kid`, even when a versionless key was configured.
    pub kid: String,
    /// The wrapped (encrypted) key.
    pub wrapped: Vec<u8>,
}

impl fmt::Debug for WrappedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WrappedKey")
            .field("kid", &self.kid)
            .field("wrapped_len", &self.wrapped.len())
            .finish()
    }
}

/// What the Key Vault encryptor needs from a vault: wrap with the configured
/// key, unwrap with exactly the key (version) a `kid` names.
///
/// [`AzureKeyVaultKeyClient`] implements it over the official SDK; tests
/// implement it with fakes (the known-answer vector uses byte reversal).
#[async_trait]
pub trait KeyWrapClient: fmt::Debug + Send + Sync {
    /// The configured key, for messages and logs (never a secret).
    fn describe(&self) -> String;

    /// Wraps `key` with the configured key using `algorithm`; returns the
    /// versioned `kid` of the key that wrapped it and the wrapped bytes.
    async fn wrap_key(
        &self,
        algorithm: WrapAlgorithm,
        key: &[u8],
    ) -> Result<WrappedKey, KeyVaultError>;

    /// Unwraps `wrapped` with exactly the key version named by `kid`.
    ///
    /// Must return [`KeyVaultError::InvalidKeyId`] when `kid` cannot name a
    /// key (the stored XML is then unusable, not the vault unreachable).
    async fn unwrap_key(
        &self,
        kid: &str,
        algorithm: WrapAlgorithm,
        wrapped: &[u8],
    ) -> Result<Vec<u8>, KeyVaultError>;
}

/// Options for the Key Vault key protection, Azure SDK style: public fields
/// and `Default`.
///
/// Retries: `client_options.retry` is the SDK's retry policy. The default
/// here is [`fail_fast_retry_options`] (exponential from 200 ms, at most 4
/// retries within 8 s), not the SDK's 60 s: a vault that cannot be reached
/// (DNS, TLS, refused connection) fails within seconds with the cause instead
/// of after a minute and a half. It retries 408, 429, 500, 502, 503, 504 and
/// transport errors and honours `Retry-After` / `retry-after-ms` /
/// `x-ms-retry-after-ms` on 429 and 503. `client_options.transport` can
/// replace the HTTP client (e.g. one trusting a test CA).
#[derive(Clone, Debug)]
pub struct KeyVaultOptions {
    /// HTTP pipeline options for the `KeyClient`: retry policy, transport,
    /// extra policies, logging.
    pub client_options: ClientOptions,
    /// The Key Vault REST API version; `None` uses the SDK's default.
    pub api_version: Option<String>,
    /// How many unwrap calls may be in flight at once per decryptor
    /// (default 4), so a cold start with many keys does not burst the vault.
    pub max_concurrent_unwraps: usize,
}

impl Default for KeyVaultOptions {
    fn default() -> Self {
        KeyVaultOptions {
            client_options: ClientOptions {
                retry: fail_fast_retry_options(),
                ..Default::default()
            },
            api_version: None,
            max_concurrent_unwraps: 4,
        }
    }
}

/// The retry policy for Key Vault requests (shared with the credentials).
pub use dataprotection_azure_identity::fail_fast_retry_options;

/// [`KeyWrapClient`] over the official `KeyClient` and any
/// `TokenCredential`.
///
/// Wraps with the configured key (versionless = the latest version) and
/// records the versioned `kid` the vault returns; unwraps with the vault,
/// key and version the stored `kid` names. A `kid` on another vault host is
/// accepted (as .NET does) only if that host is not a loopback address,
/// so challenge-resource verification always stays on for it.
pub struct AzureKeyVaultKeyClient {
    key: KeyVaultKeyId,
    credential: Arc<dyn TokenCredential>,
    options: KeyVaultOptions,
    /// One `KeyClient` per vault URL (the configured one is created eagerly).
    clients: Mutex<HashMap<String, Arc<KeyClient>>>,
}

impl fmt::Debug for AzureKeyVaultKeyClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AzureKeyVaultKeyClient")
            .field("key", &self.key.to_string())
            .field("verify_challenge_resource", &!self.key.is_loopback())
            .finish_non_exhaustive()
    }
}

impl AzureKeyVaultKeyClient {
    /// A client for the key `key_id_url` (versionless or versioned).
    ///
    /// # Errors
    /// [`KeyVaultError::InvalidKeyId`] for a malformed identifier,
    /// [`KeyVaultError::Configuration`] if the SDK client cannot be built.
    pub fn new(
        key_id_url: &str,
        credential: Arc<dyn TokenCredential>,
        options: KeyVaultOptions,
    ) -> Result<Self, KeyVaultError> {
        let key = KeyVaultKeyId::parse(key_id_url)?;
        let client = Self {
            key,
            credential,
            options,
            clients: Mutex::new(HashMap::new()),
        };
        client.client_for(&client.key)?;
        Ok(client)
    }

    /// The configured key.
    pub fn key_id(&self) -> &KeyVaultKeyId {
        &self.key
    }

    /// Reads the configured key (Key Vault `get`, the permission .NET's
    /// encryptor also needs): its versioned kid, whether it is enabled, and
    /// the operations it permits. For diagnostics; wrapping never needs it.
    pub async fn key_info(&self) -> Result<VaultKeyInfo, KeyVaultError> {
        const OP: &str = "get";
        let id = &self.key;
        let key_str = id.to_string();
        let options = KeyClientGetKeyOptions {
            key_version: id.version().map(str::to_string),
            ..Default::default()
        };
        let key = self
            .client_for(id)?
            .get_key(id.name(), Some(options))
            .await
            .and_then(|r| r.into_model());
        let key = match key {
            Ok(key) => key,
            Err(e) => return Err(failure_checking_dns(OP, &key_str, id.host(), &e).await),
        };
        let jwk = key.key.unwrap_or_default();
        Ok(VaultKeyInfo {
            kid: jwk.kid.unwrap_or(key_str),
            enabled: key.attributes.and_then(|a| a.enabled),
            operations: jwk.key_ops.unwrap_or_default(),
        })
    }

    fn client_for(&self, id: &KeyVaultKeyId) -> Result<Arc<KeyClient>, KeyVaultError> {
        let mut clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = clients.get(id.vault_url()) {
            return Ok(c.clone());
        }
        let mut kc_options = KeyClientOptions {
            client_options: self.options.client_options.clone(),
            // Relaxed only where no real vault can live (an emulator on loopback).
            verify_challenge_resource: Some(!id.is_loopback()),
            ..Default::default()
        };
        if let Some(v) = &self.options.api_version {
            kc_options.api_version = v.clone();
        }
        if id.is_loopback() {
            tracing::debug!(
                vault = %id.host(),
                "loopback vault host (an emulator): challenge-resource verification is relaxed"
            );
        }
        let client = KeyClient::new(id.vault_url(), self.credential.clone(), Some(kc_options))
            .map_err(|e| {
                KeyVaultError::Configuration(format!(
                    "cannot create a Key Vault client for {}: {}",
                    id.vault_url(),
                    crate::error::redact(&e.to_string())
                ))
            })?;
        let client = Arc::new(client);
        clients.insert(id.vault_url().to_string(), client.clone());
        Ok(client)
    }
}

/// What Key Vault says about a key ([`AzureKeyVaultKeyClient::key_info`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VaultKeyInfo {
    /// The versioned key id.
    pub kid: String,
    /// Whether the key (version) is enabled, if the vault said.
    pub enabled: Option<bool>,
    /// The operations the key permits (`wrapKey`, `unwrapKey`, ...); empty if
    /// the vault did not list them.
    pub operations: Vec<String>,
}

fn failure(operation: &'static str, key: &str, host: &str, e: &azure_core::Error) -> KeyVaultError {
    let (status, code) = match e.kind() {
        ErrorKind::HttpResponse {
            status, error_code, ..
        } => (Some(u16::from(*status)), error_code.clone()),
        _ => (None, None),
    };
    let message = match e.kind() {
        ErrorKind::HttpResponse { .. } => e.to_string(),
        _ => cause_chain(e),
    };
    let failure = RequestFailure::new(operation, key, host, status, code, message)
        .with_inner_error_code(inner_error_code(e));
    let cause = match status {
        Some(_) => FailureCause::Http,
        None => classify(e),
    };
    KeyVaultError::from(failure.with_cause(cause))
}

/// The service's `error.innererror.code` (e.g. `KeyDisabled`), read with
/// the SDK's typed `ErrorResponse` from the response body it kept.
fn inner_error_code(e: &azure_core::Error) -> Option<String> {
    let ErrorKind::HttpResponse {
        raw_response: Some(raw),
        ..
    } = e.kind()
    else {
        return None;
    };
    let response: ErrorResponse = azure_core::json::from_json(raw.body()).ok()?;
    response.error?.inner_error?.code
}

/// [`failure`], telling a host that does not resolve apart from other
/// connection failures by resolving it (the resolver's error has no portable
/// type to recognise).
async fn failure_checking_dns(
    operation: &'static str,
    key: &str,
    host: &str,
    e: &azure_core::Error,
) -> KeyVaultError {
    let mut error = failure(operation, key, host, e);
    if let KeyVaultError::Request(f) = &mut error
        && f.cause == FailureCause::Connection
    {
        let address = if host
            .rsplit_once(':')
            .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
            && !host.ends_with(']')
        {
            host.to_string()
        } else {
            format!("{host}:443")
        };
        if tokio::net::lookup_host(address).await.is_err() {
            f.cause = FailureCause::Dns;
        }
    }
    error
}

/// Calls `visit` on `e` and every error in its `source` chain, including the
/// errors wrapped inside `std::io::Error`s (whose `source` skips them).
fn walk_chain(
    e: &(dyn std::error::Error + 'static),
    visit: &mut dyn FnMut(&(dyn std::error::Error + 'static)),
) {
    let mut current = Some(e);
    let mut depth = 0;
    while let Some(error) = current {
        visit(error);
        if let Some(inner) = error
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            && depth < 32
        {
            walk_chain(inner, visit);
        }
        depth += 1;
        current = if depth < 32 { error.source() } else { None };
    }
}

/// The failure's class, from the SDK's `ErrorKind` and the types in the
/// `source` chain.
fn classify(e: &azure_core::Error) -> FailureCause {
    let mut cause = match e.kind() {
        ErrorKind::Io | ErrorKind::Connection => FailureCause::Connection,
        _ => FailureCause::Other,
    };
    walk_chain(e, &mut |error| {
        if let Some(sdk) = error.downcast_ref::<azure_core::Error>()
            && matches!(sdk.kind(), ErrorKind::Credential)
        {
            cause = FailureCause::Credential;
        }
        if cause == FailureCause::Credential {
            return;
        }
        if error.downcast_ref::<rustls::Error>().is_some() {
            cause = FailureCause::Tls;
        } else if let Some(io) = error.downcast_ref::<std::io::Error>() {
            match io.kind() {
                std::io::ErrorKind::ConnectionRefused => cause = FailureCause::ConnectionRefused,
                std::io::ErrorKind::TimedOut if cause != FailureCause::Tls => {
                    cause = FailureCause::Timeout
                }
                _ => {}
            }
        }
    });
    cause
}

/// Every distinct message in the error's chain, outermost first: the SDK's
/// top-level text ("retry policy expired", "non-transport error") says
/// nothing about the cause, which is further down.
fn cause_chain(e: &azure_core::Error) -> String {
    use std::error::Error as _;
    let mut parts: Vec<String> = Vec::new();
    // The outermost text is the retry policy's verdict ("retry policy
    // expired", "non-transport error"), not the cause: leave it out.
    let start: &(dyn std::error::Error + 'static) = e.source().unwrap_or(e);
    walk_chain(start, &mut |error| {
        let text = error.to_string();
        if !text.is_empty() && !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
    });
    parts.join(": ")
}

fn invalid_response(operation: &'static str, key: &str, host: &str, what: &str) -> KeyVaultError {
    KeyVaultError::from(RequestFailure::new(
        operation,
        key,
        host,
        None,
        None,
        format!("invalid response: {what}"),
    ))
}

fn params(algorithm: WrapAlgorithm, value: &[u8]) -> KeyOperationParameters {
    KeyOperationParameters {
        algorithm: Some(algorithm.sdk()),
        value: Some(value.to_vec()),
        ..Default::default()
    }
}

#[async_trait]
impl KeyWrapClient for AzureKeyVaultKeyClient {
    fn describe(&self) -> String {
        format!("Azure Key Vault key {}", self.key)
    }

    async fn wrap_key(
        &self,
        algorithm: WrapAlgorithm,
        key: &[u8],
    ) -> Result<WrappedKey, KeyVaultError> {
        const OP: &str = "wrapKey";
        let id = &self.key;
        let key_str = id.to_string();
        let client = self.client_for(id)?;
        let body = params(algorithm, key)
            .try_into()
            .map_err(|e| failure(OP, &key_str, id.host(), &e))?;
        let options = KeyClientWrapKeyOptions {
            key_version: id.version().map(str::to_string),
            ..Default::default()
        };
        let result = match client
            .wrap_key(id.name(), body, Some(options))
            .await
            .and_then(|r| r.into_model())
        {
            Ok(result) => result,
            Err(e) => return Err(failure_checking_dns(OP, &key_str, id.host(), &e).await),
        };
        let kid = result
            .kid
            .ok_or_else(|| invalid_response(OP, &key_str, id.host(), "no kid"))?;
        let wrapped = result
            .result
            .ok_or_else(|| invalid_response(OP, &key_str, id.host(), "no value"))?;
        // The vault reports the versioned kid of the key that wrapped.
        let reported = KeyVaultKeyId::parse(&kid).map_err(|_| {
            invalid_response(OP, &key_str, id.host(), &format!("unusable kid {kid:?}"))
        })?;
        if reported.name() != id.name() || reported.version().is_none() {
            return Err(invalid_response(
                OP,
                &key_str,
                id.host(),
                &format!("the kid {kid:?} does not name a version of the configured key"),
            ));
        }
        Ok(WrappedKey { kid, wrapped })
    }

    async fn unwrap_key(
        &self,
        kid: &str,
        algorithm: WrapAlgorithm,
        wrapped: &[u8],
    ) -> Result<Vec<u8>, KeyVaultError> {
        const OP: &str = "unwrapKey";
        let id = KeyVaultKeyId::parse(kid)?;
        if id.host() != self.key.host() && id.is_loopback() {
            return Err(KeyVaultError::InvalidKeyId {
                input: kid.to_string(),
                reason: format!(
                    "it names a loopback vault host while the configured vault is {}; \
                     refusing to send credentials there",
                    self.key.host()
                ),
            });
        }
        if id.version().is_none() {
            tracing::warn!(
                kid,
                "the stored kid has no version; unwrapping with the latest key version"
            );
        }
        let client = self.client_for(&id)?;
        let body = params(algorithm, wrapped)
            .try_into()
            .map_err(|e| failure(OP, kid, id.host(), &e))?;
        let result = match client
            .unwrap_key(id.name(), id.version().unwrap_or(""), body, None)
            .await
            .and_then(|r| r.into_model())
        {
            Ok(result) => result,
            Err(e) => return Err(failure_checking_dns(OP, kid, id.host(), &e).await),
        };
        result
            .result
            .ok_or_else(|| invalid_response(OP, kid, id.host(), "no value"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use azure_core::credentials::{AccessToken, TokenRequestOptions};

    #[derive(Debug)]
    struct NoCredential;

    #[async_trait]
    impl TokenCredential for NoCredential {
        async fn get_token(
            &self,
            _scopes: &[&str],
            _options: Option<TokenRequestOptions<'_>>,
        ) -> azure_core::Result<AccessToken> {
            panic!("no token may be requested in these tests");
        }
    }

    #[tokio::test]
    async fn refuses_unusable_and_loopback_kids_without_network() {
        let client = AzureKeyVaultKeyClient::new(
            "https://myvault.vault.azure.net/keys/k",
            Arc::new(NoCredential),
            KeyVaultOptions::default(),
        )
        .unwrap();
        assert!(format!("{client:?}").contains("verify_challenge_resource: true"));
        for kid in [
            "KeyId",
            "https://127.0.0.1:1/keys/k/v1",
            "https://localhost/keys/k/v1",
        ] {
            match client
                .unwrap_key(kid, WrapAlgorithm::RsaOaep, &[1, 2, 3])
                .await
            {
                Err(KeyVaultError::InvalidKeyId { input, .. }) => assert_eq!(input, kid),
                other => panic!("{kid}: {other:?}"),
            }
        }
        let local = AzureKeyVaultKeyClient::new(
            "https://127.0.0.1:8443/keys/k",
            Arc::new(NoCredential),
            KeyVaultOptions::default(),
        )
        .unwrap();
        assert!(format!("{local:?}").contains("verify_challenge_resource: false"));
        assert!(matches!(
            AzureKeyVaultKeyClient::new(
                "https://myvault.vault.azure.net/secrets/k",
                Arc::new(NoCredential),
                KeyVaultOptions::default(),
            ),
            Err(KeyVaultError::InvalidKeyId { .. })
        ));
    }
}
