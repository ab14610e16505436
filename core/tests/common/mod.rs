//! Shared helpers for the vector tests.
#![allow(dead_code, clippy::unwrap_used)]

use std::path::PathBuf;
use std::sync::Mutex;

use dataprotection::crypto::RandomSource;

pub fn vector_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/vectors")
        .join(name)
}

pub fn load(name: &str) -> serde_json::Value {
    let text = std::fs::read_to_string(vector_path(name)).unwrap();
    serde_json::from_str(&text).unwrap()
}

pub fn b64(s: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.decode(s).unwrap()
}

pub fn hex(s: &str) -> Vec<u8> {
    hex::decode(s).unwrap()
}

/// Returns queued bytes in order (then fails), like a deterministic RNG in .NET's tests.
#[derive(Debug, Default)]
pub struct FixedRandom(pub Mutex<Vec<u8>>);

impl FixedRandom {
    pub fn new(bytes: Vec<u8>) -> Self {
        FixedRandom(Mutex::new(bytes))
    }
}

impl RandomSource for FixedRandom {
    fn fill(&self, buf: &mut [u8]) -> dataprotection::Result<()> {
        let mut q = self.0.lock().unwrap();
        assert!(q.len() >= buf.len(), "FixedRandom exhausted");
        let rest = q.split_off(buf.len());
        buf.copy_from_slice(&q);
        *q = rest;
        Ok(())
    }
}
