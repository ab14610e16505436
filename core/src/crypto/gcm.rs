//! AES-GCM authenticated encryption (ASP.NET Core's `AesGcmAuthenticatedEncryptor`
//! and CNG `CngGcmAuthenticatedEncryptor`): the body format, once the key is
//! derived.

use std::fmt;
use std::sync::Arc;

use super::algorithm::{AesKeySize, Algorithm};
use super::encryptor::KEY_MODIFIER_LEN;
use super::keyed::{BodyFormat, Subkeys};
use super::primitives::{NONCE, TAG, gcm_open, gcm_seal};
use super::random::RandomSource;
use crate::error::{Error, Result};

/// Body: `keyModifier(16) || nonce(12) || ciphertext || tag(16)`. The key is
/// derived per payload from the master key (label = AAD, context = context
/// header || key modifier); GCM's own associated data is empty, as in
/// ASP.NET Core.
#[derive(Clone)]
pub(crate) struct Gcm {
    pub aes: AesKeySize,
    pub random: Arc<dyn RandomSource>,
}

impl fmt::Debug for Gcm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Gcm")
            .field("aes", &self.aes)
            .finish_non_exhaustive()
    }
}

impl BodyFormat for Gcm {
    fn algorithm(&self) -> Algorithm {
        Algorithm::Gcm { aes: self.aes }
    }

    fn subkey_len(&self) -> usize {
        self.aes.bytes()
    }

    fn body_len(&self, len: usize) -> usize {
        KEY_MODIFIER_LEN + NONCE + len + TAG
    }

    #[inline]
    fn seal(
        &self,
        plaintext: &[u8],
        out: &mut Vec<u8>,
        key: impl FnOnce(&[u8]) -> Subkeys,
    ) -> Result<()> {
        let start = out.len();
        out.reserve(self.body_len(plaintext.len()));
        // Only the random part is zero-filled; the plaintext is copied once
        // and encrypted where it lies.
        out.resize(start + KEY_MODIFIER_LEN + NONCE, 0);
        if let Err(e) = self.random.fill(&mut out[start..]) {
            out.truncate(start);
            return Err(e);
        }
        out.extend_from_slice(plaintext);
        let (header, ciphertext) = out[start..].split_at_mut(KEY_MODIFIER_LEN + NONCE);
        let (key_modifier, nonce) = header.split_at(KEY_MODIFIER_LEN);
        let key = key(key_modifier);
        let tag = gcm_seal(self.aes, key.as_slice(), nonce, ciphertext);
        out.extend_from_slice(&tag);
        Ok(())
    }

    #[inline]
    fn open(&self, body: &[u8], key: impl FnOnce(&[u8]) -> Subkeys) -> Result<Vec<u8>> {
        if body.len() < KEY_MODIFIER_LEN + NONCE + TAG {
            tracing::debug!(len = body.len(), "GCM payload body too short");
            return Err(Error::DecryptionFailed);
        }
        let (key_modifier, rest) = body.split_at(KEY_MODIFIER_LEN);
        let (nonce, rest) = rest.split_at(NONCE);
        let (ciphertext, tag) = rest.split_at(rest.len() - TAG);

        let key = key(key_modifier);
        let mut plaintext = ciphertext.to_vec();
        if gcm_open(self.aes, key.as_slice(), nonce, &mut plaintext, tag) {
            Ok(plaintext)
        } else {
            tracing::debug!(
                "payload GCM tag did not verify (tampered, wrong purpose or wrong key)"
            );
            Err(Error::DecryptionFailed)
        }
    }
}
