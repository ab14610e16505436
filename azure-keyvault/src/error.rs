//! The error type of Key Vault operations.

use std::fmt;

/// What went wrong talking to (or configuring) Azure Key Vault.
///
/// Messages name the operation, the key and the vault host, and carry the
/// HTTP status, the service's error code and its message. They never contain
/// a bearer token: they are built from the response status and error body
/// only, and anything that looks like a token is redacted.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyVaultError {
    /// A key identifier is not `https://{vault}/keys/{name}[/{version}]`.
    #[error(
        "invalid Azure Key Vault key identifier {input:?}: {reason} \
         (expected https://{{vault-host}}/keys/{{name}} or https://{{vault-host}}/keys/{{name}}/{{version}})"
    )]
    InvalidKeyId {
        /// The identifier given (or read from a stored `<kid>`).
        input: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A Key Vault request failed (after the SDK's retries). Boxed: the
    /// failure carries several strings, and every `Result` would pay for them.
    #[error("{0}")]
    Request(Box<RequestFailure>),
    /// A client or credential could not be constructed.
    #[error("Azure Key Vault configuration error: {0}")]
    Configuration(String),
    /// No credential could be chosen or built from the environment.
    #[error(transparent)]
    Credential(#[from] dataprotection_azure_identity::CredentialError),
}

impl From<RequestFailure> for KeyVaultError {
    fn from(failure: RequestFailure) -> Self {
        KeyVaultError::Request(Box::new(failure))
    }
}

/// Details of a failed Key Vault request.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RequestFailure {
    /// `wrapKey` or `unwrapKey`.
    pub operation: &'static str,
    /// The key identifier used (versioned for unwrap).
    pub key: String,
    /// The vault host (and port, if not 443).
    pub vault_host: String,
    /// The HTTP status, when the vault answered.
    pub status: Option<u16>,
    /// The service error code (`Forbidden`, `Throttled`, …), when known.
    pub error_code: Option<String>,
    /// The service's more specific inner error code (`error.innererror.code`:
    /// `KeyDisabled`, `AccessDenied`, …), when it sent one.
    pub inner_error_code: Option<String>,
    /// The service's message, or the transport/credential error.
    pub message: String,
    /// What kind of failure it was, found from the error's types.
    pub cause: FailureCause,
}

/// The class of a failed Key Vault request, read from the SDK's typed
/// `ErrorKind` and the `source` chain (never from message text), so that
/// callers and `dpkeys doctor` can say what to fix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FailureCause {
    /// The vault answered with an HTTP error status.
    Http,
    /// The vault host name does not resolve.
    Dns,
    /// Nothing listens at the vault's address (connection refused).
    ConnectionRefused,
    /// The TLS handshake failed (e.g. a certificate that is not trusted or
    /// not for this host).
    Tls,
    /// The connection timed out.
    Timeout,
    /// Another connection or I/O failure.
    Connection,
    /// The credential could not get a token (it names itself and why).
    Credential,
    /// The request was refused before or without an HTTP error status (for
    /// example the vault's authentication challenge names another resource
    /// than the vault host).
    Other,
}

impl FailureCause {
    /// A short description, e.g. "connection refused".
    pub fn describe(self) -> &'static str {
        match self {
            FailureCause::Http => "HTTP error",
            FailureCause::Dns => "DNS: the host name does not resolve",
            FailureCause::ConnectionRefused => "connection refused",
            FailureCause::Tls => "TLS handshake failed",
            FailureCause::Timeout => "connection timed out",
            FailureCause::Connection => "connection failed",
            FailureCause::Credential => "the credential could not get a token",
            FailureCause::Other => "request refused",
        }
    }

    /// Whether the vault was never reached (network, DNS, TLS).
    pub fn is_transport(self) -> bool {
        matches!(
            self,
            FailureCause::Dns
                | FailureCause::ConnectionRefused
                | FailureCause::Tls
                | FailureCause::Timeout
                | FailureCause::Connection
        )
    }
}

/// Key Vault's inner error code for an operation on a disabled key.
const KEY_DISABLED: &str = "KeyDisabled";

impl RequestFailure {
    /// A failure with the given parts; `message` is redacted of anything token-like.
    pub fn new(
        operation: &'static str,
        key: impl Into<String>,
        vault_host: impl Into<String>,
        status: Option<u16>,
        error_code: Option<String>,
        message: impl AsRef<str>,
    ) -> Self {
        RequestFailure {
            operation,
            key: key.into(),
            vault_host: vault_host.into(),
            status,
            error_code,
            inner_error_code: None,
            message: redact(message.as_ref()),
            cause: if status.is_some() {
                FailureCause::Http
            } else {
                FailureCause::Other
            },
        }
    }

    /// The same failure with the service's inner error code.
    pub fn with_inner_error_code(mut self, code: Option<String>) -> Self {
        self.inner_error_code = code;
        self
    }

    /// Whether the vault refused because the key (version) is disabled:
    /// HTTP 403 with the inner error code `KeyDisabled`, as Key Vault
    /// answers any operation on a disabled key (`{"error": {"code":
    /// "Forbidden", "innererror": {"code": "KeyDisabled"}}}`).
    pub fn is_key_disabled(&self) -> bool {
        self.status == Some(403) && self.inner_error_code.as_deref() == Some(KEY_DISABLED)
    }

    /// The same failure with `cause`.
    pub fn with_cause(mut self, cause: FailureCause) -> Self {
        self.cause = cause;
        self
    }

    /// Whether retrying later may help: throttling, server errors, and
    /// failures without an HTTP status (network, credential).
    pub fn is_transient(&self) -> bool {
        match self.status {
            None => true,
            Some(s) => s == 408 || s == 429 || s >= 500,
        }
    }
}

impl fmt::Display for RequestFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Azure Key Vault {} with key {} on vault {} failed: ",
            self.operation, self.key, self.vault_host
        )?;
        match (self.status, &self.error_code) {
            (Some(s), Some(c)) => match &self.inner_error_code {
                Some(inner) => write!(f, "HTTP {s} ({c}, {inner}): ")?,
                None => write!(f, "HTTP {s} ({c}): ")?,
            },
            (Some(s), None) => write!(f, "HTTP {s}: ")?,
            (None, _) => write!(f, "{}: ", self.cause.describe())?,
        }
        f.write_str(&self.message)?;
        match self.status {
            Some(403) if self.is_key_disabled() => {
                f.write_str(" (the key version is disabled: enable it in the vault)")
            }
            Some(401) | Some(403) => f.write_str(
                " (check that the identity may use wrapKey and unwrapKey on the key \
                 and that the key version is enabled)",
            ),
            Some(404) => f.write_str(" (the key or key version does not exist in this vault)"),
            Some(429) => f.write_str(" (throttled by Key Vault; retries were exhausted)"),
            _ => Ok(()),
        }
    }
}

/// Replaces anything that looks like a bearer token or a JWT with `[redacted]`
/// (one implementation, shared with the credential helper).
pub(crate) fn redact(message: &str) -> String {
    dataprotection_azure_identity::redact_tokens(message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_failure_message_names_key_host_status() {
        let e = KeyVaultError::from(RequestFailure::new(
            "unwrapKey",
            "https://v.vault.azure.net/keys/k/0123",
            "v.vault.azure.net",
            Some(403),
            Some("Forbidden".into()),
            "Operation unwrapKey is not allowed on a disabled key",
        ));
        let m = e.to_string();
        assert!(m.contains("unwrapKey"), "{m}");
        assert!(m.contains("https://v.vault.azure.net/keys/k/0123"), "{m}");
        assert!(m.contains("on vault v.vault.azure.net"), "{m}");
        assert!(m.contains("HTTP 403 (Forbidden)"), "{m}");
        assert!(m.contains("disabled"), "{m}");
        // Without the inner code nothing says the key is disabled, whatever
        // the message.
        let KeyVaultError::Request(f) = e else {
            unreachable!()
        };
        assert!(!f.is_key_disabled());
        let disabled = f.with_inner_error_code(Some("KeyDisabled".into()));
        assert!(disabled.is_key_disabled());
        assert!(
            disabled
                .to_string()
                .contains("HTTP 403 (Forbidden, KeyDisabled)"),
            "{disabled}"
        );
        let other = RequestFailure::new("get", "k", "v", Some(403), None, "disabled key")
            .with_inner_error_code(Some("AccessDenied".into()));
        assert!(!other.is_key_disabled());
    }
}
