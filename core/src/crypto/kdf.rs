//! SP800-108 key derivation in counter mode with HMAC-SHA512 as the PRF
//! (NIST SP 800-108r1 §4.1), exactly as ASP.NET Core computes it.
//!
//! Written here rather than taken from a KDF crate because the per-payload
//! subkey derivation is on the hot path: the label and context are fed to the
//! PRF as slices (no concatenation buffer), and the PRF keyed with the master
//! key is prepared once per key and cloned per call.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha512;
use zeroize::Zeroize;

/// HMAC-SHA512 already keyed with a key-derivation key.
pub(crate) type Prf = Hmac<Sha512>;

const PRF_OUTPUT_LEN: usize = 64;

/// Prepares the PRF for `kdk` (any length, including empty).
pub(crate) fn prf_for(kdk: &[u8]) -> Prf {
    Prf::new_from_slice(kdk).expect("HMAC accepts keys of any length")
}

/// Derives `out.len()` bytes with SP800-108 CTR HMAC-SHA512.
///
/// `label` and `context` are each the concatenation of their parts. The
/// output length, in bits, is part of every PRF block, so deriving 64 bytes at
/// once differs from deriving 32 + 32.
///
/// # Example
///
/// ```
/// use dataprotection::crypto::sp800_108_ctr_hmac_sha512;
/// let mut out = [0u8; 32];
/// sp800_108_ctr_hmac_sha512(b"", &[], &[], &mut out);
/// assert_eq!(out[..4], [0x22, 0xBC, 0x6F, 0x1B]);
/// ```
pub fn sp800_108_ctr_hmac_sha512(kdk: &[u8], label: &[&[u8]], context: &[&[u8]], out: &mut [u8]) {
    derive(&prf_for(kdk), label, context, out);
}

/// As [`sp800_108_ctr_hmac_sha512`] with a PRF prepared by [`prf_for`].
#[inline]
pub(crate) fn derive(prf: &Prf, label: &[&[u8]], context: &[&[u8]], out: &mut [u8]) {
    let bits = (out.len() as u64 * 8) as u32;
    let bits = bits.to_be_bytes();
    for (i, chunk) in out.chunks_mut(PRF_OUTPUT_LEN).enumerate() {
        let counter = (i as u32 + 1).to_be_bytes();
        let mut mac = prf.clone();
        mac.update(&counter);
        for part in label {
            mac.update(part);
        }
        mac.update(&[0u8]);
        for part in context {
            mac.update(part);
        }
        mac.update(&bits);
        let block = mac.finalize().into_bytes();
        chunk.copy_from_slice(&block[..chunk.len()]);
    }
}

/// Keys derived for one payload, held on the stack and wiped when dropped.
///
/// Not `Zeroizing<[u8; N]>`: zeroize wipes an array one volatile byte store
/// at a time (96 stores for CBC's subkeys, a measurable share of a 64-byte
/// unprotect), and a slice with one fill behind an optimisation barrier,
/// which is what this does.
pub(crate) struct DerivedKeys<const N: usize> {
    bytes: [u8; N],
    len: usize,
}

impl<const N: usize> DerivedKeys<N> {
    /// Derives `len` bytes (at most `N`; the algorithm fixes `len`) as
    /// [`derive`] does.
    #[inline]
    pub(crate) fn derive(prf: &Prf, label: &[&[u8]], context: &[&[u8]], len: usize) -> Self {
        let mut keys = DerivedKeys {
            bytes: [0u8; N],
            len: len.min(N),
        };
        derive(prf, label, context, &mut keys.bytes[..keys.len]);
        keys
    }

    /// The derived bytes.
    pub(crate) fn as_slice(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

impl<const N: usize> Drop for DerivedKeys<N> {
    fn drop(&mut self) {
        self.bytes.as_mut_slice().zeroize();
    }
}
