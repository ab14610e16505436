//! A deterministic random source, so that regenerating the fixtures
//! reproduces them byte for byte.

use std::sync::Mutex;

use dataprotection::crypto::RandomSource;
use sha2::{Digest, Sha256};

/// Bytes from SHA-256(label ‖ call number ‖ block number): every fill
/// differs from every other, and the sequence depends only on the label.
///
/// **Fixtures only.** Anyone who knows the label knows every "random" byte,
/// master keys included.
#[derive(Debug)]
pub struct SeededRandom {
    label: String,
    calls: Mutex<u64>,
}

impl SeededRandom {
    /// A source whose whole output is determined by `label`.
    pub fn new(label: impl Into<String>) -> Self {
        SeededRandom {
            label: label.into(),
            calls: Mutex::new(0),
        }
    }
}

impl RandomSource for SeededRandom {
    fn fill(&self, buf: &mut [u8]) -> dataprotection::Result<()> {
        let call = {
            let mut calls = self.calls.lock().unwrap_or_else(|e| e.into_inner());
            *calls += 1;
            *calls
        };
        for (block, chunk) in (0u64..).zip(buf.chunks_mut(32)) {
            let digest = Sha256::new()
                .chain_update(self.label.as_bytes())
                .chain_update([0])
                .chain_update(call.to_be_bytes())
                .chain_update(block.to_be_bytes())
                .finalize();
            chunk.copy_from_slice(&digest[..chunk.len()]);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_label_same_bytes_and_calls_differ() {
        let (a, b) = (SeededRandom::new("x"), SeededRandom::new("x"));
        let mut first = [0u8; 70];
        let mut again = [0u8; 70];
        a.fill(&mut first).expect("fill");
        b.fill(&mut again).expect("fill");
        assert_eq!(first, again);
        a.fill(&mut again).expect("fill");
        assert_ne!(first, again);
        let mut other = [0u8; 70];
        SeededRandom::new("y").fill(&mut other).expect("fill");
        assert_ne!(first, other);
    }
}
