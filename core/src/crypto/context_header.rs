//! Context headers: a per-algorithm prefix of the KDF context that binds the
//! algorithm choice (and a known-answer self-test) into every derived subkey.

use std::sync::{Arc, Mutex};

use super::algorithm::Algorithm;
use super::kdf::sp800_108_ctr_hmac_sha512;
use super::primitives::{BLOCK, NONCE, TAG, cbc_encrypt, gcm_seal, hmac_into};

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
            for n in [ek, BLOCK, dl, dl] {
                out.extend_from_slice(&(n as u32).to_be_bytes());
            }
            let mut block = [0u8; BLOCK];
            cbc_encrypt(aes, k_e, &[0u8; BLOCK], b"", &mut block);
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

/// Context headers already computed, by algorithm: a header costs two KDF
/// runs and a cipher self-test (~35,000 instructions), and loading a ring
/// builds an encryptor per key, almost always for the same algorithm.
static SHARED: Mutex<Vec<(Algorithm, Arc<[u8]>)>> = Mutex::new(Vec::new());

/// [`context_header`], computed once per algorithm per process and shared.
pub(crate) fn shared_context_header(algorithm: Algorithm) -> Arc<[u8]> {
    let mut shared = SHARED.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, header)) = shared.iter().find(|(a, _)| *a == algorithm) {
        return header.clone();
    }
    let header: Arc<[u8]> = context_header(algorithm).into();
    shared.push((algorithm, header.clone()));
    header
}

#[cfg(test)]
mod tests {
    use super::{context_header, shared_context_header};
    use crate::crypto::{AesKeySize, Algorithm, ValidationAlgorithm};

    #[test]
    fn shared_headers_equal_computed_ones_for_every_algorithm() {
        let sizes = [AesKeySize::Aes128, AesKeySize::Aes192, AesKeySize::Aes256];
        let macs = [
            ValidationAlgorithm::HmacSha1,
            ValidationAlgorithm::HmacSha256,
            ValidationAlgorithm::HmacSha384,
            ValidationAlgorithm::HmacSha512,
        ];
        let mut algorithms: Vec<Algorithm> =
            sizes.iter().map(|&aes| Algorithm::Gcm { aes }).collect();
        for aes in sizes {
            for mac in macs {
                algorithms.push(Algorithm::CbcHmac { aes, mac });
            }
        }
        // Twice: the first call computes, the second reads the shared copy.
        for _ in 0..2 {
            for &algorithm in &algorithms {
                assert_eq!(
                    *shared_context_header(algorithm),
                    *context_header(algorithm),
                    "{algorithm}"
                );
            }
        }
    }
}
