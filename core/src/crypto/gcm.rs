//! AES-GCM authenticated encryption (ASP.NET Core's `AesGcmAuthenticatedEncryptor`
//! and CNG `CngGcmAuthenticatedEncryptor`).

use std::fmt;
use std::sync::Arc;

use super::algorithm::{AesKeySize, Algorithm};
use super::context_header::shared_context_header;
use super::encryptor::{AuthenticatedEncryptor, BoundEncryptor, KEY_MODIFIER_LEN};
use super::kdf::{self, BoundPrf, DerivedKeys, Prf};
use super::primitives::{NONCE, TAG, gcm_open, gcm_seal};
use super::random::RandomSource;
use super::secret::Secret;
use crate::error::{Error, Result};

/// The AES-GCM encryptor for one master key.
///
/// Body: `keyModifier(16) || nonce(12) || ciphertext || tag(16)`. The key is
/// derived per payload by SP800-108 (label = AAD, context = context header ||
/// key modifier); GCM's own associated data is empty, as in ASP.NET Core.
pub struct GcmEncryptor {
    prf: Prf,
    cipher: Gcm,
    context_header: Arc<[u8]>,
    master_key_len: usize,
}

/// A [`GcmEncryptor`] bound to one AAD (see [`BoundPrf`]).
struct BoundGcm {
    prf: BoundPrf,
    cipher: Gcm,
}

/// The body format once the key is known: what the encryptor and its bound
/// form share, each deriving the key its own way.
#[derive(Clone)]
struct Gcm {
    aes: AesKeySize,
    random: Arc<dyn RandomSource>,
}

impl fmt::Debug for GcmEncryptor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GcmEncryptor")
            .field("aes", &self.cipher.aes)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for BoundGcm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BoundGcm")
            .field("aes", &self.cipher.aes)
            .finish_non_exhaustive()
    }
}

impl GcmEncryptor {
    /// Creates the encryptor (the context header is shared by every key of
    /// the algorithm).
    pub fn new(master_key: &Secret, aes: AesKeySize, random: Arc<dyn RandomSource>) -> Self {
        GcmEncryptor {
            prf: kdf::prf_for(master_key.expose()),
            master_key_len: master_key.expose().len(),
            cipher: Gcm { aes, random },
            context_header: shared_context_header(Algorithm::Gcm { aes }),
        }
    }

    /// The AES key for one payload.
    #[inline]
    fn derive(&self, aad: &[&[u8]], key_modifier: &[u8]) -> DerivedKeys<32> {
        DerivedKeys::derive(
            &self.prf,
            aad,
            &[&self.context_header, key_modifier],
            self.cipher.aes.bytes(),
        )
    }
}

impl Gcm {
    fn body_len(&self, len: usize) -> usize {
        KEY_MODIFIER_LEN + NONCE + len + TAG
    }

    /// Appends the body of `plaintext` to `out`, with the key `key` derives
    /// from the body's key modifier.
    #[inline]
    fn seal(
        &self,
        plaintext: &[u8],
        out: &mut Vec<u8>,
        key: impl FnOnce(&[u8]) -> DerivedKeys<32>,
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

    /// Verifies and decrypts `body`, with the key `key` derives from its key
    /// modifier.
    #[inline]
    fn open(&self, body: &[u8], key: impl FnOnce(&[u8]) -> DerivedKeys<32>) -> Result<Vec<u8>> {
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

impl AuthenticatedEncryptor for GcmEncryptor {
    fn master_key_len(&self) -> Option<usize> {
        Some(self.master_key_len)
    }

    fn body_len(&self, len: usize) -> usize {
        self.cipher.body_len(len)
    }

    fn encrypt_to(&self, plaintext: &[u8], aad: &[&[u8]], out: &mut Vec<u8>) -> Result<()> {
        self.cipher.seal(plaintext, out, |key_modifier| {
            self.derive(aad, key_modifier)
        })
    }

    fn decrypt(&self, body: &[u8], aad: &[&[u8]]) -> Result<Vec<u8>> {
        self.cipher
            .open(body, |key_modifier| self.derive(aad, key_modifier))
    }

    fn bind(&self, aad: &[&[u8]]) -> Option<Box<dyn BoundEncryptor>> {
        Some(Box::new(BoundGcm {
            prf: BoundPrf::new(
                &self.prf,
                aad,
                &self.context_header,
                self.cipher.aes.bytes(),
            ),
            cipher: self.cipher.clone(),
        }))
    }
}

impl BoundEncryptor for BoundGcm {
    fn body_len(&self, len: usize) -> usize {
        self.cipher.body_len(len)
    }

    fn encrypt_to(&self, plaintext: &[u8], out: &mut Vec<u8>) -> Result<()> {
        self.cipher.seal(plaintext, out, |key_modifier| {
            DerivedKeys::derive_bound(&self.prf, key_modifier)
        })
    }

    fn decrypt(&self, body: &[u8]) -> Result<Vec<u8>> {
        self.cipher.open(body, |key_modifier| {
            DerivedKeys::derive_bound(&self.prf, key_modifier)
        })
    }
}
