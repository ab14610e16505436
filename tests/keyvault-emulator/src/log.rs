//! The request log kept for test assertions.

use std::sync::{Arc, Mutex, MutexGuard};

use serde::{Deserialize, Serialize};

/// What kind of request the emulator saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Operation {
    /// `POST /keys/{name}/create`
    CreateKey,
    /// `GET /keys/{name}[/{version}]`
    GetKey,
    /// `GET /keys`
    ListKeys,
    /// `GET /keys/{name}/versions`
    ListKeyVersions,
    /// `PATCH /keys/{name}/{version}`
    UpdateKey,
    /// `POST /keys/{name}/{version}/wrapkey`
    WrapKey,
    /// `POST /keys/{name}/{version}/unwrapkey`
    UnwrapKey,
    /// `POST /keys/{name}/{version}/encrypt`
    Encrypt,
    /// `POST /keys/{name}/{version}/decrypt`
    Decrypt,
    /// `GET /secrets/{name}[/{version}]`
    GetSecret,
    /// `GET /certificates/{name}[/{version}]`
    GetCertificate,
    /// `GET /msi/token` (managed identity token endpoint)
    GetToken,
    /// Anything else.
    Unknown,
}

impl Operation {
    /// Whether this is a request to the Key Vault REST API (as opposed to the token endpoint).
    pub fn is_key_vault_api(self) -> bool {
        !matches!(self, Self::GetToken)
    }
}

/// One request as the emulator saw and answered it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoggedRequest {
    /// HTTP method, e.g. `POST`.
    pub method: String,
    /// Path and query exactly as received, e.g. `/keys/k//wrapkey?api-version=2025-07-01`.
    pub path: String,
    /// The operation the path was classified as.
    pub operation: Operation,
    /// Key name from the path, when there is one.
    pub key_name: Option<String>,
    /// Key version from the path: `Some("")` for an explicitly empty version, `None` when absent.
    pub key_version: Option<String>,
    /// Whether an `Authorization: Bearer …` header was present.
    pub had_bearer: bool,
    /// Whether the bearer token was one this emulator issued, unexpired, for Key Vault.
    pub authorized: bool,
    /// HTTP status returned.
    pub status: u16,
    /// `error.code` of the response, for error responses.
    pub error_code: Option<String>,
    /// Whether the answer came from an injected fault.
    pub injected_fault: bool,
}

/// Shared, clearable request log.
#[derive(Debug, Clone, Default)]
pub(crate) struct RequestLog {
    inner: Arc<Mutex<Vec<LoggedRequest>>>,
}

impl RequestLog {
    fn lock(&self) -> MutexGuard<'_, Vec<LoggedRequest>> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
    pub fn push(&self, entry: LoggedRequest) {
        self.lock().push(entry);
    }
    pub fn snapshot(&self) -> Vec<LoggedRequest> {
        self.lock().clone()
    }
    pub fn clear(&self) {
        self.lock().clear();
    }
}
