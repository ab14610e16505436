//! AES-CBC + HMAC authenticated encryption (ASP.NET Core's
//! `ManagedAuthenticatedEncryptor` and CNG `CbcAuthenticatedEncryptor`, which
//! are byte-compatible).

use std::fmt;
use std::sync::Arc;

use super::algorithm::{AesKeySize, Algorithm, ValidationAlgorithm};
use super::context_header::shared_context_header;
use super::encryptor::{AuthenticatedEncryptor, BoundEncryptor, KEY_MODIFIER_LEN};
use super::kdf::{self, BoundPrf, DerivedKeys, Prf};
use super::primitives::{BLOCK, cbc_decrypt, cbc_encrypt, cbc_padded_len, hmac_into, hmac_verify};
use super::random::RandomSource;
use super::secret::Secret;
use crate::error::{Error, Result};

/// Largest encryption + validation subkey length (AES-256 + HMAC-SHA512).
const MAX_SUBKEYS: usize = 32 + 64;

/// The CBC + HMAC encryptor for one master key.
///
/// Body: `keyModifier(16) || IV(16) || AES-CBC(K_E, IV, PKCS7(plaintext)) || HMAC(K_H, IV || C)`,
/// with `K_E || K_H` derived per payload by SP800-108 from the master key,
/// label = AAD, context = context header || key modifier.
pub struct CbcHmacEncryptor {
    prf: Prf,
    cipher: CbcHmac,
    context_header: Arc<[u8]>,
    master_key_len: usize,
}

/// A [`CbcHmacEncryptor`] bound to one AAD (see [`BoundPrf`]).
struct BoundCbcHmac {
    prf: BoundPrf,
    cipher: CbcHmac,
}

/// The body format once the subkeys are known: what the encryptor and its
/// bound form share, each deriving the subkeys its own way.
#[derive(Clone)]
struct CbcHmac {
    aes: AesKeySize,
    mac: ValidationAlgorithm,
    random: Arc<dyn RandomSource>,
}

impl fmt::Debug for CbcHmacEncryptor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CbcHmacEncryptor")
            .field("aes", &self.cipher.aes)
            .field("mac", &self.cipher.mac)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for BoundCbcHmac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BoundCbcHmac")
            .field("aes", &self.cipher.aes)
            .field("mac", &self.cipher.mac)
            .finish_non_exhaustive()
    }
}

impl CbcHmacEncryptor {
    /// Creates the encryptor (the context header is shared by every key of
    /// the algorithm).
    pub fn new(
        master_key: &Secret,
        aes: AesKeySize,
        mac: ValidationAlgorithm,
        random: Arc<dyn RandomSource>,
    ) -> Self {
        CbcHmacEncryptor {
            prf: kdf::prf_for(master_key.expose()),
            master_key_len: master_key.expose().len(),
            cipher: CbcHmac { aes, mac, random },
            context_header: shared_context_header(Algorithm::CbcHmac { aes, mac }),
        }
    }

    /// `K_E || K_H` for one payload.
    #[inline]
    fn derive(&self, aad: &[&[u8]], key_modifier: &[u8]) -> DerivedKeys<MAX_SUBKEYS> {
        DerivedKeys::derive(
            &self.prf,
            aad,
            &[&self.context_header, key_modifier],
            self.cipher.subkey_len(),
        )
    }
}

impl CbcHmac {
    fn subkey_len(&self) -> usize {
        self.aes.bytes() + self.mac.digest_len()
    }

    fn body_len(&self, len: usize) -> usize {
        KEY_MODIFIER_LEN + BLOCK + cbc_padded_len(len) + self.mac.digest_len()
    }

    /// Appends the body of `plaintext` to `out`, with the subkeys `subkeys`
    /// derives from the body's key modifier.
    #[inline]
    fn seal(
        &self,
        plaintext: &[u8],
        out: &mut Vec<u8>,
        subkeys: impl FnOnce(&[u8]) -> DerivedKeys<MAX_SUBKEYS>,
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

    /// Verifies and decrypts `body`, with the subkeys `subkeys` derives from
    /// its key modifier.
    #[inline]
    fn open(
        &self,
        body: &[u8],
        subkeys: impl FnOnce(&[u8]) -> DerivedKeys<MAX_SUBKEYS>,
    ) -> Result<Vec<u8>> {
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

impl AuthenticatedEncryptor for CbcHmacEncryptor {
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
        Some(Box::new(BoundCbcHmac {
            prf: BoundPrf::new(
                &self.prf,
                aad,
                &self.context_header,
                self.cipher.subkey_len(),
            ),
            cipher: self.cipher.clone(),
        }))
    }
}

impl BoundEncryptor for BoundCbcHmac {
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
