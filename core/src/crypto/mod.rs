//! Authenticated encryptors, the SP800-108 KDF and secrets: everything that
//! touches key material. No I/O here.
//!
//! The modules form a DAG, from the bottom up: `algorithm` (plain data),
//! `kdf`, `random`, `secret`, `primitives` (bare AES-CBC, HMAC and AES-GCM);
//! `context_header` (uses the KDF and the primitives); `encryptor` (the
//! trait); `cbc` and `gcm` (the encryptors); and this module, which only
//! re-exports and builds an encryptor for an algorithm.

mod algorithm;
mod cbc;
mod context_header;
mod encryptor;
mod gcm;
mod kdf;
mod primitives;
mod random;
mod secret;

use std::sync::Arc;

pub use algorithm::{AesKeySize, Algorithm, ValidationAlgorithm};
pub(crate) use cbc::CbcHmacEncryptor;
pub use context_header::context_header;
pub(crate) use encryptor::MASTER_KEY_LEN;
pub use encryptor::{AuthenticatedEncryptor, MIN_MASTER_KEY_LEN};
pub(crate) use gcm::GcmEncryptor;
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
            Algorithm::CbcHmac { aes, mac } => {
                Arc::new(CbcHmacEncryptor::new(master_key, aes, mac, random))
            }
            Algorithm::Gcm { aes } => Arc::new(GcmEncryptor::new(master_key, aes, random)),
        }
    }
}
