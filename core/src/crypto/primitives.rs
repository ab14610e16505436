//! The bare primitives under both encryptors and the context header:
//! AES-CBC with PKCS#7, HMAC, AES-GCM with a 96-bit nonce, and their sizes.
//!
//! No key derivation, no framing and no state: each function takes its key
//! and writes into a buffer the caller sized. The encryptors (`cbc`, `gcm`)
//! and the context header's self-test both use this module, and it uses
//! neither of them.

use aes_gcm::aead::AeadInOut;
use aes_gcm::aead::consts::U12;
use aes_gcm::{AesGcm, Nonce, Tag};
use cbc::cipher::block_padding::Pkcs7;
use cbc::cipher::{BlockModeDecrypt, BlockModeEncrypt, KeyIvInit};
use hmac::{Hmac, KeyInit, Mac};

use super::algorithm::{AesKeySize, ValidationAlgorithm};

/// AES block size, which is also the CBC IV length.
pub(super) const BLOCK: usize = 16;
/// GCM nonce length.
pub(super) const NONCE: usize = 12;
/// GCM tag length.
pub(super) const TAG: usize = 16;

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

/// Runs `$body` with `$C` bound to AES-GCM of `$size` with a 96-bit nonce.
macro_rules! with_gcm {
    ($size:expr, $C:ident => $body:expr) => {
        match $size {
            AesKeySize::Aes128 => {
                type $C = AesGcm<aes::Aes128, U12>;
                $body
            }
            AesKeySize::Aes192 => {
                type $C = AesGcm<aes::Aes192, U12>;
                $body
            }
            AesKeySize::Aes256 => {
                type $C = AesGcm<aes::Aes256, U12>;
                $body
            }
        }
    };
}

/// Length of `len` bytes once PKCS#7-padded (always at least one byte of padding).
pub(super) fn cbc_padded_len(len: usize) -> usize {
    (len / BLOCK + 1) * BLOCK
}

/// AES-CBC-PKCS#7 encryption of `msg` into `out` (which must be exactly the padded length).
#[inline]
pub(super) fn cbc_encrypt(aes: AesKeySize, key: &[u8], iv: &[u8], msg: &[u8], out: &mut [u8]) {
    with_aes!(aes, C => {
        let enc = cbc::Encryptor::<C>::new_from_slices(key, iv)
            .expect("key and IV lengths are fixed by the algorithm");
        enc.encrypt_padded_b2b::<Pkcs7>(msg, out)
            .expect("output buffer is sized for the padded message");
    })
}

/// AES-CBC-PKCS#7 decryption; `None` on bad padding.
#[inline]
pub(super) fn cbc_decrypt(aes: AesKeySize, key: &[u8], iv: &[u8], ct: &[u8]) -> Option<Vec<u8>> {
    with_aes!(aes, C => {
        let dec = cbc::Decryptor::<C>::new_from_slices(key, iv).ok()?;
        // Copied, then decrypted in place: no zero-fill of the output.
        let mut out = ct.to_vec();
        let len = dec.decrypt_padded::<Pkcs7>(&mut out).ok()?.len();
        out.truncate(len);
        Some(out)
    })
}

/// HMAC of the concatenation of `parts`, written to `out` (digest length).
#[inline]
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
#[inline]
pub(super) fn hmac_verify(
    mac: ValidationAlgorithm,
    key: &[u8],
    parts: &[&[u8]],
    tag: &[u8],
) -> bool {
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

/// Encrypts `buf` in place with empty associated data; returns the tag.
#[inline]
pub(super) fn gcm_seal(aes: AesKeySize, key: &[u8], nonce: &[u8], buf: &mut [u8]) -> [u8; TAG] {
    with_gcm!(aes, C => {
        let cipher = C::new_from_slice(key).expect("key length fixed by the algorithm");
        let nonce = Nonce::<U12>::try_from(nonce).expect("nonce is 12 bytes");
        let tag = cipher
            .encrypt_inout_detached(&nonce, &[], buf.into())
            .expect("plaintext within GCM limits");
        let mut out = [0u8; TAG];
        out.copy_from_slice(&tag);
        out
    })
}

/// Decrypts `buf` in place with empty associated data if `tag` verifies
/// (in constant time); `false` otherwise.
#[inline]
pub(super) fn gcm_open(
    aes: AesKeySize,
    key: &[u8],
    nonce: &[u8],
    buf: &mut [u8],
    tag: &[u8],
) -> bool {
    with_gcm!(aes, C => {
        let Ok(cipher) = C::new_from_slice(key) else { return false };
        let Ok(nonce) = Nonce::<U12>::try_from(nonce) else { return false };
        let Ok(tag) = Tag::try_from(tag) else { return false };
        cipher.decrypt_inout_detached(&nonce, &[], buf.into(), &tag).is_ok()
    })
}
