//! What a key's descriptor names: the AES key size, the HMAC and the
//! algorithm, with their .NET names. Plain data, used by every other crypto
//! module.

use std::fmt;

use crate::error::{Error, Result};

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
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.validation_name() {
            Some(v) => write!(f, "{} + {}", self.encryption_name(), v),
            None => f.write_str(self.encryption_name()),
        }
    }
}
