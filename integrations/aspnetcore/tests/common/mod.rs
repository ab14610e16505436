//! Shared helpers for the vector tests.
#![allow(dead_code, clippy::unwrap_used)]

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use dataprotection::DataProtectionProvider;
use dataprotection::crypto::RandomSource;
use dataprotection::repository::FileSystemXmlRepository;
use time::macros::datetime;

pub const APP: &str = "dp-interop";
pub const KEY_FILE: &str = "key-ba73c9ce-d322-4e45-af90-341307e11c04.xml";

pub fn vectors() -> serde_json::Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/vectors/aspnetcore_auth.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The vector key ring (shared with core's vector tests).
pub fn keyring_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../core/tests/vectors/keyring")
}

/// Returns queued bytes in order, then fails: fixes the key modifier and IV.
#[derive(Debug, Default)]
pub struct FixedRandom(Mutex<Vec<u8>>);

impl RandomSource for FixedRandom {
    fn fill(&self, buf: &mut [u8]) -> dataprotection::Result<()> {
        let mut queue = self.0.lock().unwrap();
        if queue.len() < buf.len() {
            return Err(dataprotection::Error::InvalidArgument(
                "FixedRandom exhausted".into(),
            ));
        }
        let rest = queue.split_off(buf.len());
        buf.copy_from_slice(&queue);
        *queue = rest;
        Ok(())
    }
}

/// The whole vector ring, read-only, at a fixed time.
pub async fn reader(application_name: &str) -> DataProtectionProvider {
    DataProtectionProvider::builder()
        .application_name(application_name)
        .repository(Arc::new(FileSystemXmlRepository::new(keyring_dir())))
        .auto_generate_keys(false)
        .clock(Arc::new(dataprotection::clock::ManualClock::new(
            datetime!(2026-11-30 09:00 UTC),
        )))
        .build()
        .await
        .unwrap()
}

/// A provider whose default key is `…c04` and whose next random bytes are
/// `random` (key modifier then IV), kept alive with its directory.
pub async fn writer(random: Vec<u8>) -> (DataProtectionProvider, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(keyring_dir().join(KEY_FILE), dir.path().join(KEY_FILE)).unwrap();
    let provider = DataProtectionProvider::builder()
        .application_name(APP)
        .repository(Arc::new(FileSystemXmlRepository::new(dir.path())))
        .auto_generate_keys(false)
        .clock(Arc::new(dataprotection::clock::ManualClock::new(
            datetime!(2026-11-30 09:00 UTC),
        )))
        .random(Arc::new(FixedRandom(Mutex::new(random))))
        .build()
        .await
        .unwrap();
    (provider, dir)
}

/// The key modifier and IV of a CBC payload (bytes 20..52).
pub fn modifier_and_iv(payload: &[u8]) -> Vec<u8> {
    payload[20..52].to_vec()
}
