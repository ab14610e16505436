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

/// The operating system's CSPRNG (`getrandom`), read on every call: the
/// default random source.
///
/// # Why not a faster user-space generator by default
///
/// Every `protect` draws 32 bytes (key modifier and IV, or key modifier and
/// nonce) — one `getrandom` system call. A thread-local ChaCha generator
/// seeded from the OS (`rand::rng()`) would save most of that call, and the
/// `random/*` and `protect_thread_rng/64` benchmarks in `core/benches/protect.rs`
/// measure by how much. We keep the OS generator anyway:
///
/// * **Fork and snapshot safety.** A user-space generator's state is copied
///   by `fork` and by VM or container snapshot/restore (CRIU, Firecracker,
///   App Service warm-up images); both copies then draw the same key
///   modifiers and nonces. For AES-GCM keys a repeated (key modifier, nonce)
///   under one master key is a repeated GCM nonce under one derived key,
///   which lets an attacker forge payloads. `rand`'s `ThreadRng` documents
///   that it is reseeded neither on fork nor on snapshot. Detecting a fork by
///   comparing process ids needs `getpid()` per call — a system call of its
///   own on glibc — and `pthread_atfork`/`MADV_WIPEONFORK` need `unsafe`,
///   which this crate forbids.
/// * **No panic path.** `ThreadRng` panics when reseeding fails; the OS
///   generator's failure is a typed error here.
/// * **The cost is bounded and falling.** It is one call per `protect` and
///   none per `unprotect`; its share shrinks with payload size. On Linux
///   6.11+ with glibc 2.41+, `getrandom()` is answered from the vDSO in user
///   space, with the kernel handling fork and snapshot; the `getrandom`
///   crate calls glibc's `getrandom`, so this default becomes about as fast
///   as a user-space generator without giving up its safety.
///
/// ASP.NET Core makes the same choice (`RandomNumberGenerator`, i.e. the OS
/// generator, per payload). A deployment that has measured the difference,
/// never forks after creating a provider and never snapshots can pass its own
/// [`RandomSource`] to `DataProtectionProviderBuilder::random`.
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
