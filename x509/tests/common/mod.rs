//! Shared helpers for the x509 tests: test-only certificates and a scripted random source.
#![allow(dead_code, clippy::unwrap_used)]

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Mutex;

use dataprotection::crypto::RandomSource;
use dataprotection_x509::Certificate;

/// `x509/tests/data/{name}`.
pub fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

/// `x509/tests/vectors/{name}`.
pub fn vector(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/vectors")
        .join(name)
}

/// Test-only certificate `n` (1 or 2) with its private key.
pub fn cert_with_key(n: u8) -> Certificate {
    Certificate::from_pem_files(
        data(&format!("test-only-cert{n}.pem")),
        data(&format!("test-only-key{n}.pem")),
    )
    .unwrap()
}

/// Test-only certificate `n` without its private key.
pub fn cert_only(n: u8) -> Certificate {
    Certificate::from_pem_file(data(&format!("test-only-cert{n}.pem"))).unwrap()
}

/// Hands out the given byte strings, one per `fill` call, each of exactly
/// the requested length (a length mismatch is an error, so a test notices a
/// changed draw order).
#[derive(Debug)]
pub struct ScriptedRandom(Mutex<VecDeque<Vec<u8>>>);

impl ScriptedRandom {
    pub fn new(draws: Vec<Vec<u8>>) -> Self {
        ScriptedRandom(Mutex::new(draws.into()))
    }
}

impl RandomSource for ScriptedRandom {
    fn fill(&self, buf: &mut [u8]) -> dataprotection::Result<()> {
        let next = self.0.lock().unwrap().pop_front().ok_or_else(|| {
            dataprotection::Error::InvalidArgument("scripted random exhausted".into())
        })?;
        if next.len() != buf.len() {
            return Err(dataprotection::Error::InvalidArgument(format!(
                "scripted random: asked for {} bytes, script has {}",
                buf.len(),
                next.len()
            )));
        }
        buf.copy_from_slice(&next);
        Ok(())
    }
}
