#![doc = include_str!("../README.md")]
#![cfg_attr(test, allow(clippy::unwrap_used))]

mod auth;
mod builder;
mod classify;
pub mod connection_string;
mod error;
mod options;
mod repository;
mod repository_builder;
pub mod sas;
mod url;

pub use auth::{SasProvider, SasRequest};
pub use builder::AzureBlobStorageBuilderExt;
/// The credential helper, re-exported so that a blob-only application needs
/// no other crate to authenticate (the Key Vault crate re-exports the same).
pub use dataprotection_azure_identity::{
    CredentialError, CredentialKind, HostFacts, credential_from, credential_from_environment,
    credential_kind_from,
};
pub use error::BlobError;
pub use options::BlobRepositoryOptions;
pub use repository::{BlobProbe, BlobXmlRepository, CONTENT_TYPE};
pub use repository_builder::BlobXmlRepositoryBuilder;
