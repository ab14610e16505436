#![doc = include_str!("../README.md")]
#![cfg_attr(test, allow(clippy::unwrap_used))]

mod bindings;
pub mod clock;
pub mod crypto;
pub mod diagnosis;
pub mod encryption;
mod error;
mod key;
mod key_slot;
mod manager;
mod parallel;
pub mod payload;
pub mod policy;
mod protector;
mod provider;
pub mod repository;
mod ring_cache;
mod ring_loader;
pub mod xml;

pub use diagnosis::{Diagnosis, Finding, Severity};
pub use error::{BoxError, Error, Result};
pub use key::{Key, KeyRing, KeySet, KeySetProblem, KeyStatus};
pub use manager::{KeyEscrowSink, KeyManager};
pub use protector::{
    DataProtector, TIME_LIMITED_PURPOSE, TimeLimitedDataProtector, UnprotectOptions, Unprotected,
};
pub use provider::{DataProtectionProvider, DataProtectionProviderBuilder};
