#![doc = include_str!("../README.md")]
#![cfg_attr(test, allow(clippy::unwrap_used))]

mod document;
mod error;
mod generate;
mod key_wrap;
pub mod manifest;
mod random;
mod reuse;
mod verify;

pub use document::DocumentFileRepository;
pub use error::{Failure, InteropError};
pub use generate::{
    APPLICATION_NAME, MANIFEST_FILE, TEST_KEY_VAULT_KEY_ID, TEST_RSA_KEY_FILE, generate,
};
pub use key_wrap::{LocalRsaKeyWrapClient, generate_test_rsa_pem, mint_test_certificate_pem};
pub use manifest::Manifest;
pub use random::SeededRandom;
pub use reuse::ReusingXmlEncryptor;
pub use verify::{VerifiedCounts, read_manifest, verify, verify_manifest};

/// `interop/fixtures/rust`: what this crate generates.
pub fn rust_fixtures_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/rust")
}

/// `interop/fixtures/dotnet`: what a .NET program writes for us.
pub fn dotnet_fixtures_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/dotnet")
}
