#![doc = include_str!("../README.md")]
#![cfg_attr(test, allow(clippy::unwrap_used))]

mod classify;
pub mod connection_string;
mod error;
mod options;
mod repository;
pub mod sas;
mod url;

pub use error::BlobError;
pub use options::BlobRepositoryOptions;
pub use repository::{BlobProbe, BlobXmlRepository, CONTENT_TYPE, SasProvider, SasRequest};
