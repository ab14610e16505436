//! AES-CBC + HMAC authenticated encryption (ASP.NET Core's
//! `ManagedAuthenticatedEncryptor` and CNG `CbcAuthenticatedEncryptor`, which
//! are byte-compatible).

use std::fmt;
use std::sync::Arc;

use cbc::cipher::block_padding::Pkcs7;
use cbc::cipher::{BlockModeDecrypt, BlockModeEncrypt, KeyIvInit};
use hmac::{Hmac, KeyInit, Mac};
use zeroize::Zeroizing;

use super::kdf::{self, Prf};
use super::{
    AesKeySize, AuthenticatedEncryptor, KEY_MODIFIER_LEN, RandomSource, Secret, ValidationAlgorithm,
};
use crate::error::{Error, Result};

const BLOCK: usize = 16;
/// Largest encryption + validation subkey length (AES-256 + HMAC-SHA512).
const MAX_SUBKEYS: usize = 32 + 64;

/// Runs `$body` with `$C` bound to the AES type of `$size`.
macro_rules! with_aes {
    ($size:expr, $C:ident => $body:expr) => {
        match $size {
            AesKeySize::Aes128 => {
                type $C = aes::Aes128;
                $body
            }
            AesKeySize::Aes192 => {
                type $C = aes::Aes192;
                $body
            }
            AesKeySize::Aes256 => {
                type $C = aes::Aes256;
                $body
            }
        }
    };
}

/// Runs `$body` with `$D` bound to the hash of `$mac`.
macro_rules! with_hash {
    ($mac:expr, $D:ident => $body:expr) => {
        match $mac {
            ValidationAlgorithm::HmacSha1 => {
                type $D = sha1::Sha1;
                $body
            }
            ValidationAlgorithm::HmacSha256 => {
                type $D = sha2::Sha256;
                $body
            }
            ValidationAlgorithm::HmacSha384 => {
                type $D = sha2::Sha384;
                $body
            }
            ValidationAlgorithm::HmacSha512 => {
                type $D = sha2::Sha512;
                $body
            }
        }
    };
}

/// AES-CBC-PKCS#7 encryption of `msg` into `out` (which must be exactly the padded length).
pub(super) fn cbc_encrypt(aes: AesKeySize, key: &[u8], iv: &[u8], msg: &[u8], out: &mut [u8]) {
    with_aes!(aes, C => {
        let enc = cbc::Encryptor::<C>::new_from_slices(key, iv)
            .expect("key and IV lengths are fixed by the algorithm");
        enc.encrypt_padded_b2b::<Pkcs7>(msg, out)
            .expect("output buffer is sized for the padded message");
    })
}

/// AES-CBC-PKCS#7 decryption; `None` on bad padding.
fn cbc_decrypt(aes: AesKeySize, key: &[u8], iv: &[u8], ct: &[u8]) -> Option<Vec<u8>> {
    with_aes!(aes, C => {
        let dec = cbc::Decryptor::<C>::new_from_slices(key, iv).ok()?;
        let mut out = vec![0u8; ct.len()];
        let len = dec.decrypt_padded_b2b::<Pkcs7>(ct, &mut out).ok()?.len();
        out.truncate(len);
        Some(out)
    })
}

/// HMAC of the concatenation of `parts`, written to `out` (digest length).
pub(super) fn hmac_into(mac: ValidationAlgorithm, key: &[u8], parts: &[&[u8]], out: &mut [u8]) {
    with_hash!(mac, D => {
        let mut m = <Hmac<D> as KeyInit>::new_from_slice(key)
            .expect("HMAC accepts keys of any length");
        for p in parts {
            m.update(p);
        }
        out.copy_from_slice(&m.finalize().into_bytes());
    })
}

/// Constant-time HMAC verification.
fn hmac_verify(mac: ValidationAlgorithm, key: &[u8], parts: &[&[u8]], tag: &[u8]) -> bool {
    with_hash!(mac, D => {
        let Ok(mut m) = <Hmac<D> as KeyInit>::new_from_slice(key) else {
            return false;
        };
        for p in parts {
            m.update(p);
        }
        m.verify_slice(tag).is_ok()
    })
}

/// The CBC + HMAC encryptor for one master key.
///
/// Body: `keyModifier(16) || IV(16) || AES-CBC(K_E, IV, PKCS7(plaintext)) || HMAC(K_H, IV || C)`,
/// with `K_E || K_H` derived per payload by SP800-108 from the master key,
/// label = AAD, context = context header || key modifier.
pub struct CbcHmacEncryptor {
    prf: Prf,
    aes: AesKeySize,
    mac: ValidationAlgorithm,
    context_header: Arc<[u8]>,
    random: Arc<dyn RandomSource>,
    master_key_len: usize,
}

impl fmt::Debug for CbcHmacEncryptor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CbcHmacEncryptor")
            .field("aes", &self.aes)
            .field("mac", &self.mac)
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
            aes,
            mac,
            context_header: super::context_header::shared_context_header(
                super::Algorithm::CbcHmac { aes, mac },
            ),
            random,
        }
    }

    fn subkey_len(&self) -> usize {
        self.aes.bytes() + self.mac.digest_len()
    }

    fn derive(&self, aad: &[&[u8]], key_modifier: &[u8], out: &mut [u8]) {
        kdf::derive(&self.prf, aad, &[&self.context_header, key_modifier], out);
    }
}

impl AuthenticatedEncryptor for CbcHmacEncryptor {
    fn master_key_len(&self) -> Option<usize> {
        Some(self.master_key_len)
    }

    fn body_len(&self, len: usize) -> usize {
        KEY_MODIFIER_LEN + BLOCK + (len / BLOCK + 1) * BLOCK + self.mac.digest_len()
    }

    fn encrypt_to(&self, plaintext: &[u8], aad: &[&[u8]], out: &mut Vec<u8>) -> Result<()> {
        let start = out.len();
        let padded = (plaintext.len() / BLOCK + 1) * BLOCK;
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

        let mut subkeys = Zeroizing::new([0u8; MAX_SUBKEYS]);
        let subkeys = &mut subkeys[..self.subkey_len()];
        self.derive(aad, key_modifier, subkeys);
        let (k_e, k_h) = subkeys.split_at(self.aes.bytes());

        cbc_encrypt(self.aes, k_e, iv, plaintext, ciphertext);
        hmac_into(self.mac, k_h, &[iv, ciphertext], tag);
        Ok(())
    }

    fn decrypt(&self, body: &[u8], aad: &[&[u8]]) -> Result<Vec<u8>> {
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

        let mut subkeys = Zeroizing::new([0u8; MAX_SUBKEYS]);
        let subkeys = &mut subkeys[..self.subkey_len()];
        self.derive(aad, key_modifier, subkeys);
        let (k_e, k_h) = subkeys.split_at(self.aes.bytes());

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
