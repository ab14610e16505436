//! ASP.NET Core Data Protection for Rust.
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod crypto;
pub mod error;

pub use error::{Error, Result};
