//! Azure Blob Storage support for dataprotection.
//!
//! The official `azure_storage_blob` 1.x SDK authenticates only with Entra ID tokens or a SAS
//! carried in the URL; it has no shared-key authentication and no connection-string parser.
//! This crate fills that gap:
//!
//! * [`connection_string`] parses Azure Storage connection strings (including
//!   `UseDevelopmentStorage=true`) into a blob endpoint and a credential;
//! * [`sas`] mints blob, container and account SAS tokens from an account key, inspects the
//!   expiry of existing SAS tokens, and redacts signatures before anything is logged.

pub mod connection_string;
pub mod sas;
