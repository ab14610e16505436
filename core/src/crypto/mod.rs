//! Authenticated encryptors, the SP800-108 KDF and secrets: everything that
//! touches key material. No I/O here.

mod cbc;
mod context_header;
mod gcm;
mod kdf;
mod random;
mod secret;

use std::fmt::{self, Debug};
use std::sync::Arc;

pub use cbc::CbcHmacEncryptor;
pub use context_header::context_header;
pub use gcm::GcmEncryptor;
pub use kdf::sp800_108_ctr_hmac_sha512;
pub use random::{OsRandom, RandomSource};
pub use secret::Secret;

use crate::error::{Error, Result};

/// Size of the random key modifier at the start of every encryptor body.
pub const KEY_MODIFIER_LEN: usize = 16;
/// Size of a new master key (ASP.NET Core's `KDK_SIZE_IN_BYTES`).
pub const MASTER_KEY_LEN: usize = 64;
/// The shortest master key (128 bits) a key may have to protect new
/// payloads; shorter ones (planted or damaged) still unprotect old payloads.
pub const MIN_MASTER_KEY_LEN: usize = 16;

/// An AES key size.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AesKeySize {
    /// AES-128.
    Aes128,
    /// AES-192.
    Aes192,
    /// AES-256.
    Aes256,
}

impl AesKeySize {
    /// Key length in bytes.
    pub fn bytes(self) -> usize {
        match self {
            AesKeySize::Aes128 => 16,
            AesKeySize::Aes192 => 24,
            AesKeySize::Aes256 => 32,
        }
    }

    /// From a key length in bits (128, 192 or 256).
    pub fn from_bits(bits: u32) -> Result<Self> {
        match bits {
            128 => Ok(AesKeySize::Aes128),
            192 => Ok(AesKeySize::Aes192),
            256 => Ok(AesKeySize::Aes256),
            other => Err(Error::UnsupportedAlgorithm(format!(
                "AES key length of {other} bits"
            ))),
        }
    }
}

/// The HMAC used by a CBC encryptor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ValidationAlgorithm {
    /// HMAC-SHA1 (readable from managed descriptors only; never written).
    HmacSha1,
    /// HMAC-SHA256 (the default).
    HmacSha256,
    /// HMAC-SHA384 (readable from managed descriptors only; never written).
    HmacSha384,
    /// HMAC-SHA512.
    HmacSha512,
}

impl ValidationAlgorithm {
    /// Digest length in bytes, which is also the MAC key length.
    pub fn digest_len(self) -> usize {
        match self {
            ValidationAlgorithm::HmacSha1 => 20,
            ValidationAlgorithm::HmacSha256 => 32,
            ValidationAlgorithm::HmacSha384 => 48,
            ValidationAlgorithm::HmacSha512 => 64,
        }
    }

    /// The .NET name (`HMACSHA256`, ...).
    pub fn name(self) -> &'static str {
        match self {
            ValidationAlgorithm::HmacSha1 => "HMACSHA1",
            ValidationAlgorithm::HmacSha256 => "HMACSHA256",
            ValidationAlgorithm::HmacSha384 => "HMACSHA384",
            ValidationAlgorithm::HmacSha512 => "HMACSHA512",
        }
    }
}

/// The algorithm of a key: what its descriptor says and what its encryptor does.
///
/// The default is AES-256-CBC with HMAC-SHA256, as in ASP.NET Core.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// AES in CBC mode with PKCS#7 padding, authenticated with an HMAC over IV || ciphertext.
    CbcHmac {
        /// The AES key size.
        aes: AesKeySize,
        /// The HMAC.
        mac: ValidationAlgorithm,
    },
    /// AES-GCM with a 96-bit nonce and 128-bit tag.
    Gcm {
        /// The AES key size.
        aes: AesKeySize,
    },
}

impl Default for Algorithm {
    fn default() -> Self {
        Algorithm::CbcHmac {
            aes: AesKeySize::Aes256,
            mac: ValidationAlgorithm::HmacSha256,
        }
    }
}

impl Algorithm {
    /// Every algorithm ASP.NET Core's default descriptor can name.
    pub const ALL: [Algorithm; 9] = [
        Algorithm::CbcHmac {
            aes: AesKeySize::Aes128,
            mac: ValidationAlgorithm::HmacSha256,
        },
        Algorithm::CbcHmac {
            aes: AesKeySize::Aes128,
            mac: ValidationAlgorithm::HmacSha512,
        },
        Algorithm::CbcHmac {
            aes: AesKeySize::Aes192,
            mac: ValidationAlgorithm::HmacSha256,
        },
        Algorithm::CbcHmac {
            aes: AesKeySize::Aes192,
            mac: ValidationAlgorithm::HmacSha512,
        },
        Algorithm::CbcHmac {
            aes: AesKeySize::Aes256,
            mac: ValidationAlgorithm::HmacSha256,
        },
        Algorithm::CbcHmac {
            aes: AesKeySize::Aes256,
            mac: ValidationAlgorithm::HmacSha512,
        },
        Algorithm::Gcm {
            aes: AesKeySize::Aes128,
        },
        Algorithm::Gcm {
            aes: AesKeySize::Aes192,
        },
        Algorithm::Gcm {
            aes: AesKeySize::Aes256,
        },
    ];

    /// The .NET `EncryptionAlgorithm` enum name (`AES_256_CBC`, `AES_128_GCM`, ...).
    pub fn encryption_name(self) -> &'static str {
        match self {
            Algorithm::CbcHmac {
                aes: AesKeySize::Aes128,
                ..
            } => "AES_128_CBC",
            Algorithm::CbcHmac {
                aes: AesKeySize::Aes192,
                ..
            } => "AES_192_CBC",
            Algorithm::CbcHmac {
                aes: AesKeySize::Aes256,
                ..
            } => "AES_256_CBC",
            Algorithm::Gcm {
                aes: AesKeySize::Aes128,
            } => "AES_128_GCM",
            Algorithm::Gcm {
                aes: AesKeySize::Aes192,
            } => "AES_192_GCM",
            Algorithm::Gcm {
                aes: AesKeySize::Aes256,
            } => "AES_256_GCM",
        }
    }

    /// The .NET `ValidationAlgorithm` name, or `None` for GCM.
    pub fn validation_name(self) -> Option<&'static str> {
        match self {
            Algorithm::CbcHmac { mac, .. } => Some(mac.name()),
            Algorithm::Gcm { .. } => None,
        }
    }

    /// Parses the .NET enum names used by the default descriptor. `validation`
    /// is ignored for GCM. Numeric enum values are accepted, as `Enum.Parse` does.
    pub fn from_names(encryption: &str, validation: Option<&str>) -> Result<Self> {
        let aes_gcm = match encryption.trim() {
            "AES_128_CBC" | "0" => (AesKeySize::Aes128, false),
            "AES_192_CBC" | "1" => (AesKeySize::Aes192, false),
            "AES_256_CBC" | "2" => (AesKeySize::Aes256, false),
            "AES_128_GCM" | "3" => (AesKeySize::Aes128, true),
            "AES_192_GCM" | "4" => (AesKeySize::Aes192, true),
            "AES_256_GCM" | "5" => (AesKeySize::Aes256, true),
            other => {
                return Err(Error::UnsupportedAlgorithm(format!(
                    "encryption algorithm {other:?}"
                )));
            }
        };
        match aes_gcm {
            (aes, true) => Ok(Algorithm::Gcm { aes }),
            (aes, false) => {
                let mac = match validation.map(str::trim) {
                    Some("HMACSHA256") | Some("0") => ValidationAlgorithm::HmacSha256,
                    Some("HMACSHA512") | Some("1") => ValidationAlgorithm::HmacSha512,
                    None => {
                        return Err(Error::UnsupportedAlgorithm(
                            "a CBC algorithm without a validation algorithm".into(),
                        ));
                    }
                    Some(other) => {
                        return Err(Error::UnsupportedAlgorithm(format!(
                            "validation algorithm {other:?}"
                        )));
                    }
                };
                Ok(Algorithm::CbcHmac { aes, mac })
            }
        }
    }

    /// Builds the encryptor for a master key, using the OS random source.
    pub fn encryptor(self, master_key: &Secret) -> Arc<dyn AuthenticatedEncryptor> {
        self.encryptor_with_random(master_key, Arc::new(OsRandom))
    }

    /// Builds the encryptor for a master key with an explicit random source.
    pub fn encryptor_with_random(
        self,
        master_key: &Secret,
        random: Arc<dyn RandomSource>,
    ) -> Arc<dyn AuthenticatedEncryptor> {
        match self {
            Algorithm::CbcHmac { aes, mac } => {
                Arc::new(CbcHmacEncryptor::new(master_key, aes, mac, random))
            }
            Algorithm::Gcm { aes } => Arc::new(GcmEncryptor::new(master_key, aes, random)),
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.validation_name() {
            Some(v) => write!(f, "{} + {}", self.encryption_name(), v),
            None => f.write_str(self.encryption_name()),
        }
    }
}

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

    /// Verifies and decrypts a body. Any failure is [`Error::DecryptionFailed`].
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
