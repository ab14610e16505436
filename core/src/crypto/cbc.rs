//! AES-CBC + HMAC authenticated encryption (ASP.NET Core's
//! `ManagedAuthenticatedEncryptor` and CNG `CbcAuthenticatedEncryptor`, which
//! are byte-compatible): the body format, once the subkeys are derived.

use std::fmt;
use std::sync::Arc;

use super::algorithm::{AesKeySize, Algorithm, ValidationAlgorithm};
use super::encryptor::KEY_MODIFIER_LEN;
use super::keyed::{BodyFormat, Subkeys};
use super::primitives::{BLOCK, cbc_decrypt, cbc_encrypt, cbc_padded_len, hmac_into, hmac_verify};
use super::random::RandomSource;
use crate::error::{Error, Result};

/// Body: `keyModifier(16) || IV(16) || AES-CBC(K_E, IV, PKCS7(plaintext)) || HMAC(K_H, IV || C)`,
/// with `K_E || K_H` derived per payload from the master key (label = AAD,
/// context = context header || key modifier).
#[derive(Clone)]
pub(crate) struct CbcHmac {
    pub aes: AesKeySize,
    pub mac: ValidationAlgorithm,
    pub random: Arc<dyn RandomSource>,
}

impl fmt::Debug for CbcHmac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CbcHmac")
            .field("aes", &self.aes)
            .field("mac", &self.mac)
            .finish_non_exhaustive()
    }
}

impl BodyFormat for CbcHmac {
    fn algorithm(&self) -> Algorithm {
        Algorithm::CbcHmac {
            aes: self.aes,
            mac: self.mac,
        }
    }

    fn subkey_len(&self) -> usize {
        self.aes.bytes() + self.mac.digest_len()
    }

    fn body_len(&self, len: usize) -> usize {
        KEY_MODIFIER_LEN + BLOCK + cbc_padded_len(len) + self.mac.digest_len()
    }

    #[inline]
    fn seal(
        &self,
        plaintext: &[u8],
        out: &mut Vec<u8>,
        subkeys: impl FnOnce(&[u8]) -> Subkeys,
    ) -> Result<()> {
        let start = out.len();
        let padded = cbc_padded_len(plaintext.len());
        let digest = self.mac.digest_len();
        out.resize(start + KEY_MODIFIER_LEN + BLOCK + padded + digest, 0);
        let body = &mut out[start..];
        if let Err(e) = self.random.fill(&mut body[..KEY_MODIFIER_LEN + BLOCK]) {
            out.truncate(start);
            return Err(e);
        }
        let (header, rest) = body.split_at_mut(KEY_MODIFIER_LEN + BLOCK);
        let (key_modifier, iv) = header.split_at(KEY_MODIFIER_LEN);
        let (ciphertext, tag) = rest.split_at_mut(padded);

        let subkeys = subkeys(key_modifier);
        let (k_e, k_h) = subkeys.as_slice().split_at(self.aes.bytes());

        cbc_encrypt(self.aes, k_e, iv, plaintext, ciphertext);
        hmac_into(self.mac, k_h, &[iv, ciphertext], tag);
        Ok(())
    }

    #[inline]
    fn open(&self, body: &[u8], subkeys: impl FnOnce(&[u8]) -> Subkeys) -> Result<Vec<u8>> {
        let digest = self.mac.digest_len();
        let overhead = KEY_MODIFIER_LEN + BLOCK + digest;
        if body.len() < overhead + BLOCK || !(body.len() - overhead).is_multiple_of(BLOCK) {
            tracing::debug!(
                len = body.len(),
                "CBC payload body has an impossible length"
            );
            return Err(Error::DecryptionFailed);
        }
        let (key_modifier, rest) = body.split_at(KEY_MODIFIER_LEN);
        let (iv, rest) = rest.split_at(BLOCK);
        let (ciphertext, tag) = rest.split_at(rest.len() - digest);

        let subkeys = subkeys(key_modifier);
        let (k_e, k_h) = subkeys.as_slice().split_at(self.aes.bytes());

        // The MAC is checked, in constant time, before anything is decrypted.
        if !hmac_verify(self.mac, k_h, &[iv, ciphertext], tag) {
            tracing::debug!("payload MAC did not verify (tampered, wrong purpose or wrong key)");
            return Err(Error::DecryptionFailed);
        }
        cbc_decrypt(self.aes, k_e, iv, ciphertext).ok_or_else(|| {
            tracing::debug!("payload padding invalid after a valid MAC");
            Error::DecryptionFailed
        })
    }
}
