//! A key's encryptor, made at most once per process, and why it cannot be
//! made if it cannot.
//!
//! One slot per key id is shared by every ring snapshot, so a refresh never
//! decrypts a key again, and a failure recorded by one snapshot is seen by
//! the next.

use std::fmt;
use std::sync::{Arc, Mutex};

use time::OffsetDateTime;

use crate::crypto::AuthenticatedEncryptor;
use crate::error::Error;

/// Why a key's encryptor could not be made.
#[derive(Clone)]
pub(crate) enum KeyFailure {
    /// The key itself is unusable (unknown decryptor, malformed descriptor,
    /// unsupported algorithm): trying again cannot help.
    Permanent(Arc<Error>),
    /// What decrypts it failed (a vault unreachable): tried again after
    /// `retry_at`, and never a reason to treat the key as absent.
    Transient {
        retry_at: OffsetDateTime,
        error: Arc<Error>,
    },
}

impl KeyFailure {
    pub fn error(&self) -> &Arc<Error> {
        match self {
            KeyFailure::Permanent(error) | KeyFailure::Transient { error, .. } => error,
        }
    }
}

/// A key's encryptor, filled on first use: at load for the default key and
/// the keys the policy must check, otherwise when a payload first names the
/// key.
#[derive(Default)]
pub(crate) struct KeySlot {
    encryptor: tokio::sync::OnceCell<Arc<dyn AuthenticatedEncryptor>>,
    failure: Mutex<Option<KeyFailure>>,
}

impl fmt::Debug for KeySlot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeySlot")
            .field("ready", &self.encryptor.get().is_some())
            .field("failed", &self.failure().is_some())
            .finish()
    }
}

impl KeySlot {
    /// The encryptor, if it has been made.
    #[inline]
    pub fn get(&self) -> Option<&Arc<dyn AuthenticatedEncryptor>> {
        self.encryptor.get()
    }

    /// Stores an encryptor made synchronously; if another caller stored one
    /// first, that one is kept and returned.
    pub fn set(
        &self,
        encryptor: Arc<dyn AuthenticatedEncryptor>,
    ) -> Arc<dyn AuthenticatedEncryptor> {
        // Fails only when another caller stored one first (keep theirs: both
        // come from the same master key) or is still making one (use ours).
        let _ = self.encryptor.set(encryptor.clone());
        self.encryptor.get().cloned().unwrap_or(encryptor)
    }

    /// Makes the encryptor with `make` unless it exists; concurrent callers
    /// share one attempt.
    pub async fn get_or_try_init<F, Fut>(
        &self,
        make: F,
    ) -> Result<&Arc<dyn AuthenticatedEncryptor>, Error>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Arc<dyn AuthenticatedEncryptor>, Error>>,
    {
        self.encryptor.get_or_try_init(make).await
    }

    /// The last failure, if the encryptor could not be made.
    pub fn failure(&self) -> Option<KeyFailure> {
        self.failure
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn set_failure(&self, failure: KeyFailure) {
        *self.failure.lock().unwrap_or_else(|e| e.into_inner()) = Some(failure);
    }

    pub fn clear_failure(&self) {
        *self.failure.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }
}
