//! Context headers: a per-algorithm prefix of the KDF context that binds the
//! algorithm choice (and a known-answer self-test) into every derived subkey.

use super::Algorithm;
use super::cbc::{cbc_encrypt, hmac_into};
use super::gcm::{NONCE, TAG, gcm_seal};
use super::kdf::sp800_108_ctr_hmac_sha512;

/// The context header of `algorithm`, as ASP.NET Core computes it.
///
/// CBC: `00 00 || u32(encKeyLen) || u32(16) || u32(macKeyLen) || u32(digestLen)
/// || AES-CBC(K_E0, zero IV, "") || HMAC(K_H0, "")`; GCM: `00 01 || u32(keyLen)
/// || u32(12) || u32(16) || u32(16) || GCM-tag(K0, zero nonce, "")`, where the
/// zero-keys come from the KDF over empty inputs.
///
/// # Example
///
/// ```
/// use dataprotection::crypto::{context_header, Algorithm, AesKeySize};
/// let header = context_header(Algorithm::Gcm { aes: AesKeySize::Aes256 });
/// assert_eq!(header.len(), 34);
/// assert_eq!(header[..2], [0x00, 0x01]);
/// ```
pub fn context_header(algorithm: Algorithm) -> Vec<u8> {
    match algorithm {
        Algorithm::CbcHmac { aes, mac } => {
            let (ek, dl) = (aes.bytes(), mac.digest_len());
            let mut keys = vec![0u8; ek + dl];
            sp800_108_ctr_hmac_sha512(b"", &[], &[], &mut keys);
            let (k_e, k_h) = keys.split_at(ek);
            let mut out = Vec::with_capacity(18 + 16 + dl);
            out.extend_from_slice(&[0, 0]);
            for n in [ek, 16, dl, dl] {
                out.extend_from_slice(&(n as u32).to_be_bytes());
            }
            let mut block = [0u8; 16];
            cbc_encrypt(aes, k_e, &[0u8; 16], b"", &mut block);
            out.extend_from_slice(&block);
            let mut tag = vec![0u8; dl];
            hmac_into(mac, k_h, &[], &mut tag);
            out.extend_from_slice(&tag);
            out
        }
        Algorithm::Gcm { aes } => {
            let mut key = vec![0u8; aes.bytes()];
            sp800_108_ctr_hmac_sha512(b"", &[], &[], &mut key);
            let mut out = Vec::with_capacity(18 + TAG);
            out.extend_from_slice(&[0, 1]);
            for n in [aes.bytes(), NONCE, 16, TAG] {
                out.extend_from_slice(&(n as u32).to_be_bytes());
            }
            out.extend_from_slice(&gcm_seal(aes, &key, &[0u8; NONCE], &mut []));
            out
        }
    }
}
