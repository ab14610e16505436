//! Authenticated encryptors, the SP800-108 KDF and secrets: everything that
//! touches key material. No I/O here.
//!
//! The modules form a DAG, from the bottom up: `algorithm` (plain data),
//! `kdf`, `random`, `secret`, `primitives` (bare AES-CBC, HMAC and AES-GCM);
//! `context_header` (uses the KDF and the primitives); `encryptor` (the
//! traits); `keyed` (the encryptor for one master key: the KDF around a body
//! format); `cbc` and `gcm` (the two body formats); and this module, which
//! only re-exports and builds an encryptor for an algorithm.

mod algorithm;
mod cbc;
mod context_header;
mod encryptor;
mod gcm;
mod kdf;
mod keyed;
mod primitives;
mod random;
mod secret;

use std::sync::Arc;

use cbc::CbcHmac;
use gcm::Gcm;
use keyed::KeyedEncryptor;

pub use algorithm::{AesKeySize, Algorithm, ValidationAlgorithm};
pub use context_header::context_header;
pub(crate) use encryptor::MASTER_KEY_LEN;
pub use encryptor::{AuthenticatedEncryptor, BoundEncryptor, MIN_MASTER_KEY_LEN};
pub use kdf::sp800_108_ctr_hmac_sha512;
pub use random::{OsRandom, RandomSource};
pub use secret::Secret;

impl Algorithm {
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
            Algorithm::CbcHmac { aes, mac } => Arc::new(KeyedEncryptor::new(
                master_key,
                CbcHmac { aes, mac, random },
            )),
            Algorithm::Gcm { aes } => {
                Arc::new(KeyedEncryptor::new(master_key, Gcm { aes, random }))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// For every algorithm, a bound encryptor and the encryptor with the same
    /// AAD read each other's bodies, and a body never opens under another AAD
    /// or with a flipped bit. The long AAD passes a SHA-512 block, so the
    /// bound states hold absorbed blocks.
    #[test]
    fn bound_encryptors_agree_with_the_aad_they_were_bound_to() {
        let long_purpose = vec![b'x'; 200];
        let aads: [&[&[u8]]; 3] = [
            &[],
            &[b"\x09\xF0\xC9\xF0 header", b"purposes"],
            &[b"\x09\xF0\xC9\xF0 header", &long_purpose],
        ];
        for algorithm in Algorithm::ALL {
            let encryptor = algorithm.encryptor(&Secret::new(vec![0x5A; 64]));
            for aad in aads {
                let bound = encryptor.bind(aad).expect("the built-in encryptors bind");
                for plaintext in [&b""[..], b"secret", &[7u8; 100]] {
                    let from_bound = bound.encrypt(plaintext).unwrap();
                    assert_eq!(from_bound.len(), bound.body_len(plaintext.len()));
                    assert_eq!(encryptor.decrypt(&from_bound, aad).unwrap(), plaintext);
                    let mut from_whole = Vec::new();
                    encryptor
                        .encrypt_to(plaintext, aad, &mut from_whole)
                        .unwrap();
                    assert_eq!(bound.decrypt(&from_whole).unwrap(), plaintext);

                    let other = encryptor.bind(&[b"other"]).unwrap();
                    assert!(matches!(
                        other.decrypt(&from_whole),
                        Err(crate::Error::DecryptionFailed)
                    ));
                    let mut tampered = from_bound.clone();
                    let last = tampered.len() - 1;
                    tampered[last] ^= 1;
                    assert!(matches!(
                        bound.decrypt(&tampered),
                        Err(crate::Error::DecryptionFailed)
                    ));
                    assert!(matches!(
                        bound.decrypt(&from_bound[..10]),
                        Err(crate::Error::DecryptionFailed)
                    ));
                }
            }
        }
    }

    #[test]
    fn bound_encryptors_show_no_key_material() {
        let encryptor = Algorithm::default().encryptor(&Secret::new(vec![0x5A; 64]));
        let shown = format!("{:?}", encryptor.bind(&[b"aad"]).unwrap());
        assert!(shown.starts_with("Bound { format: CbcHmac"), "{shown}");
        assert!(!shown.contains("prf") && !shown.contains("90"), "{shown}");
    }
}
