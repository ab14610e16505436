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

/// The PRF with everything before the key modifier already absorbed, for
/// payloads that share their AAD (a protector's header and purposes with one
/// key).
///
/// Per payload the PRF's input is `counter || AAD || 0x00 || context header
/// || key modifier || output bits`; only the key modifier varies. So the part
/// before it is hashed once here, and a payload clones the state and hashes
/// its key modifier and the output length. With ASP.NET Core's purpose
/// strings (cookie authentication's is 72 characters) that fixed part passes
/// SHA-512's 128-byte block, which saves one of the three SHA-512
/// compressions a payload costs.
///
/// The states are as secret as the master key (they compute its KDF) and
/// are wiped on drop, as `hmac` with its `zeroize` feature does.
#[derive(Clone)]
pub(crate) struct BoundPrf {
    /// One state per 64-byte block of output (the counter is 1, 2, ...).
    blocks: Vec<Prf>,
    len: usize,
}

impl BoundPrf {
    /// The states for deriving `len` bytes with `label` and a context that
    /// starts with `context_prefix` (the rest, the key modifier, is given per
    /// payload to [`DerivedKeys::derive_bound`]).
    pub(crate) fn new(prf: &Prf, label: &[&[u8]], context_prefix: &[u8], len: usize) -> Self {
        let blocks = (0..len.div_ceil(PRF_OUTPUT_LEN))
            .map(|i| {
                let mut mac = prf.clone();
                mac.update(&(i as u32 + 1).to_be_bytes());
                for part in label {
                    mac.update(part);
                }
                mac.update(&[0u8]);
                mac.update(context_prefix);
                mac
            })
            .collect();
        BoundPrf { blocks, len }
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

    /// Derives the bytes `bound` was made for, with `key_modifier` ending
    /// the context: the same bytes as [`DerivedKeys::derive`] with the whole
    /// label and context.
    #[inline]
    pub(crate) fn derive_bound(bound: &BoundPrf, key_modifier: &[u8]) -> Self {
        let mut keys = DerivedKeys {
            bytes: [0u8; N],
            len: bound.len.min(N),
        };
        let bits = ((keys.len as u64 * 8) as u32).to_be_bytes();
        for (state, chunk) in bound
            .blocks
            .iter()
            .zip(keys.bytes[..keys.len].chunks_mut(PRF_OUTPUT_LEN))
        {
            let mut mac = state.clone();
            mac.update(key_modifier);
            mac.update(&bits);
            let block = mac.finalize().into_bytes();
            chunk.copy_from_slice(&block[..chunk.len()]);
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A bound PRF derives exactly what the whole input derives, for outputs
    /// of one and two PRF blocks and fixed parts shorter and longer than a
    /// SHA-512 block.
    #[test]
    fn bound_derivation_equals_the_whole_derivation() {
        let prf = prf_for(&[0x42; 64]);
        let long_purpose = vec![b'p'; 300];
        for label in [
            &[&b"short"[..]][..],
            &[&[0x09, 0xF0][..], &long_purpose[..]][..],
        ] {
            for context_prefix in [&b""[..], &[7u8; 66][..], &[9u8; 200][..]] {
                for len in [16, 32, 64, 80, 96] {
                    let bound = BoundPrf::new(&prf, label, context_prefix, len);
                    for key_modifier in [[0u8; 16], [0xA5; 16]] {
                        let whole = DerivedKeys::<96>::derive(
                            &prf,
                            label,
                            &[context_prefix, &key_modifier],
                            len,
                        );
                        let from_bound = DerivedKeys::<96>::derive_bound(&bound, &key_modifier);
                        assert_eq!(whole.as_slice(), from_bound.as_slice(), "len {len}");
                        assert_eq!(from_bound.as_slice().len(), len);
                    }
                }
            }
        }
    }
}
