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

    /// This encryptor with the additional authenticated data fixed to `aad`,
    /// for a caller that protects and unprotects many payloads with the same
    /// AAD (a protector with its default key), so that the hashing that
    /// depends only on the AAD is done once. `None` when binding gains
    /// nothing, which is the default.
    ///
    /// The bound encryptor's bodies are the same as this encryptor's with
    /// `aad`: either decrypts what the other encrypts.
    ///
    /// # Example
    ///
    /// ```
    /// use dataprotection::crypto::{Algorithm, Secret};
    /// let encryptor = Algorithm::default().encryptor(&Secret::new(vec![7; 64]));
    /// let aad: &[&[u8]] = &[b"header", b"purposes"];
    /// let bound = encryptor.bind(aad).expect("the built-in encryptors bind");
    /// let body = bound.encrypt(b"secret").unwrap();
    /// assert_eq!(encryptor.decrypt(&body, aad).unwrap(), b"secret");
    /// assert!(encryptor.decrypt(&body, &[b"other"]).is_err());
    /// ```
    fn bind(&self, aad: &[&[u8]]) -> Option<Box<dyn BoundEncryptor>> {
        let _ = aad;
        None
    }

    /// Encrypts `plaintext` into a new body.
    fn encrypt(&self, plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity(self.body_len(plaintext.len()));
        self.encrypt_to(plaintext, &[aad], &mut out)?;
        Ok(out)
    }
}

/// An [`AuthenticatedEncryptor`] with its additional authenticated data fixed
/// when it was made ([`AuthenticatedEncryptor::bind`]).
pub trait BoundEncryptor: Debug + Send + Sync {
    /// Encrypts `plaintext`, appending the body to `out`.
    fn encrypt_to(&self, plaintext: &[u8], out: &mut Vec<u8>) -> Result<()>;

    /// Verifies and decrypts a body. Any failure is [`Error::DecryptionFailed`](crate::Error::DecryptionFailed).
    fn decrypt(&self, body: &[u8]) -> Result<Vec<u8>>;

    /// Length of the body for a plaintext of `len` bytes.
    fn body_len(&self, len: usize) -> usize;

    /// Encrypts `plaintext` into a new body.
    fn encrypt(&self, plaintext: &[u8]) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity(self.body_len(plaintext.len()));
        self.encrypt_to(plaintext, &mut out)?;
        Ok(out)
    }
}
