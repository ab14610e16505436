//! Where key modifiers, IVs, nonces and master keys come from.

use std::fmt::Debug;

use crate::error::{Error, Result};

/// A source of cryptographically secure random bytes.
///
/// Production code uses [`OsRandom`]. Tests of the exact output bytes inject a
/// deterministic source, as ASP.NET Core's own tests do.
pub trait RandomSource: Debug + Send + Sync {
    /// Fills `buf` entirely with random bytes.
    fn fill(&self, buf: &mut [u8]) -> Result<()>;
}

/// The operating system's CSPRNG (`getrandom`), read on every call.
#[derive(Debug, Clone, Copy, Default)]
pub struct OsRandom;

impl RandomSource for OsRandom {
    fn fill(&self, buf: &mut [u8]) -> Result<()> {
        use rand::TryRng;
        rand::rngs::SysRng
            .try_fill_bytes(buf)
            .map_err(|e| Error::RandomFailure {
                source: Box::new(e),
            })
    }
}
