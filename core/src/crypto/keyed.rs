//! The encryptor for one master key: SP800-108 derives each payload's
//! subkeys from the master key, the AAD and the payload's key modifier, and
//! a body format ([`CbcHmac`](super::cbc::CbcHmac) or [`Gcm`](super::gcm::Gcm))
//! does the rest. Also its AAD-bound form.

use std::fmt;
use std::sync::Arc;

use super::algorithm::Algorithm;
use super::context_header::shared_context_header;
use super::encryptor::{AuthenticatedEncryptor, BoundEncryptor};
use super::kdf::{self, BoundPrf, DerivedKeys, Prf};
use super::secret::Secret;
use crate::error::Result;

/// Largest subkey material a payload needs (AES-256 + HMAC-SHA512).
const MAX_SUBKEYS: usize = 32 + 64;

/// One payload's subkeys, on the stack and wiped on drop.
pub(crate) type Subkeys = DerivedKeys<MAX_SUBKEYS>;

/// What a body format does once a payload's subkeys are known. `seal` and
/// `open` get the subkeys from a closure given the payload's key modifier,
/// so the keyed encryptor and its bound form share one implementation.
pub(crate) trait BodyFormat: fmt::Debug + Clone + Send + Sync + 'static {
    /// The algorithm (which fixes the context header).
    fn algorithm(&self) -> Algorithm;
    /// Bytes of subkey material per payload.
    fn subkey_len(&self) -> usize;
    /// Length of the body for a plaintext of `len` bytes.
    fn body_len(&self, len: usize) -> usize;
    /// Appends the body of `plaintext` to `out`.
    fn seal(
        &self,
        plaintext: &[u8],
        out: &mut Vec<u8>,
        subkeys: impl FnOnce(&[u8]) -> Subkeys,
    ) -> Result<()>;
    /// Verifies and decrypts `body`; any failure is `DecryptionFailed`.
    fn open(&self, body: &[u8], subkeys: impl FnOnce(&[u8]) -> Subkeys) -> Result<Vec<u8>>;
}

/// An authenticated encryptor for one master key and body format.
pub(crate) struct KeyedEncryptor<F> {
    prf: Prf,
    format: F,
    /// Shared by every key of the algorithm.
    context_header: Arc<[u8]>,
    master_key_len: usize,
}

impl<F: BodyFormat> KeyedEncryptor<F> {
    pub(crate) fn new(master_key: &Secret, format: F) -> Self {
        KeyedEncryptor {
            prf: kdf::prf_for(master_key.expose()),
            master_key_len: master_key.expose().len(),
            context_header: shared_context_header(format.algorithm()),
            format,
        }
    }

    /// One payload's subkeys: label = AAD, context = context header || key
    /// modifier.
    #[inline]
    fn derive(&self, aad: &[&[u8]], key_modifier: &[u8]) -> Subkeys {
        DerivedKeys::derive(
            &self.prf,
            aad,
            &[&self.context_header, key_modifier],
            self.format.subkey_len(),
        )
    }
}

impl<F: fmt::Debug> fmt::Debug for KeyedEncryptor<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedEncryptor")
            .field("format", &self.format)
            .finish_non_exhaustive()
    }
}

impl<F: BodyFormat> AuthenticatedEncryptor for KeyedEncryptor<F> {
    fn master_key_len(&self) -> Option<usize> {
        Some(self.master_key_len)
    }

    fn body_len(&self, len: usize) -> usize {
        self.format.body_len(len)
    }

    fn encrypt_to(&self, plaintext: &[u8], aad: &[&[u8]], out: &mut Vec<u8>) -> Result<()> {
        self.format.seal(plaintext, out, |key_modifier| {
            self.derive(aad, key_modifier)
        })
    }

    fn decrypt(&self, body: &[u8], aad: &[&[u8]]) -> Result<Vec<u8>> {
        self.format
            .open(body, |key_modifier| self.derive(aad, key_modifier))
    }

    fn bind(&self, aad: &[&[u8]]) -> Option<Box<dyn BoundEncryptor>> {
        Some(Box::new(Bound {
            prf: BoundPrf::new(
                &self.prf,
                aad,
                &self.context_header,
                self.format.subkey_len(),
            ),
            format: self.format.clone(),
        }))
    }
}

/// A [`KeyedEncryptor`] bound to one AAD: see [`BoundPrf`].
struct Bound<F> {
    prf: BoundPrf,
    format: F,
}

impl<F: fmt::Debug> fmt::Debug for Bound<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bound")
            .field("format", &self.format)
            .finish_non_exhaustive()
    }
}

impl<F: BodyFormat> BoundEncryptor for Bound<F> {
    fn body_len(&self, len: usize) -> usize {
        self.format.body_len(len)
    }

    fn encrypt_to(&self, plaintext: &[u8], out: &mut Vec<u8>) -> Result<()> {
        self.format.seal(plaintext, out, |key_modifier| {
            DerivedKeys::derive_bound(&self.prf, key_modifier)
        })
    }

    fn decrypt(&self, body: &[u8]) -> Result<Vec<u8>> {
        self.format.open(body, |key_modifier| {
            DerivedKeys::derive_bound(&self.prf, key_modifier)
        })
    }
}
