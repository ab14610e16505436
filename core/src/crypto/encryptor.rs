//! The authenticated-encryptor trait and the body layout constants shared by
//! the CBC + HMAC and GCM encryptors.

use std::fmt::Debug;

use crate::error::Result;

/// Size of the random key modifier at the start of every encryptor body.
pub const KEY_MODIFIER_LEN: usize = 16;
/// Size of a new master key (ASP.NET Core's `KDK_SIZE_IN_BYTES`).
pub const MASTER_KEY_LEN: usize = 64;
/// The shortest master key (128 bits) a key may have to protect new
/// payloads; shorter ones (planted or damaged) still unprotect old payloads.
pub const MIN_MASTER_KEY_LEN: usize = 16;

/// An authenticated encryptor for one key: ASP.NET Core's `IAuthenticatedEncryptor`.
///
/// The *body* it produces is `keyModifier || IV-or-nonce || ciphertext || MAC-or-tag`;
/// the payload header (magic and key id) is added by the protector. The
/// additional authenticated data is never sent; it selects the per-payload
/// subkeys through the KDF label, so a different AAD fails to decrypt.
///
/// AAD is passed as a list of slices that are logically concatenated, so that
/// callers need not allocate a buffer to join a header and a purpose chain.
pub trait AuthenticatedEncryptor: Debug + Send + Sync {
    /// Encrypts `plaintext`, appending the body to `out`.
    fn encrypt_to(&self, plaintext: &[u8], aad: &[&[u8]], out: &mut Vec<u8>) -> Result<()>;

    /// Verifies and decrypts a body. Any failure is [`Error::DecryptionFailed`](crate::Error::DecryptionFailed).
    fn decrypt(&self, body: &[u8], aad: &[&[u8]]) -> Result<Vec<u8>>;

    /// Length of the body for a plaintext of `len` bytes.
    fn body_len(&self, len: usize) -> usize;

    /// Length in bytes of the master key this encryptor derives from, when
    /// known. A key whose master key is shorter than
    /// [`MIN_MASTER_KEY_LEN`] is never chosen to protect new payloads.
    fn master_key_len(&self) -> Option<usize> {
        None
    }

    /// Encrypts `plaintext` into a new body.
    fn encrypt(&self, plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity(self.body_len(plaintext.len()));
        self.encrypt_to(plaintext, &[aad], &mut out)?;
        Ok(out)
    }
}
