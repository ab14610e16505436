//! Cold start with Azure Key Vault, process against process: a fresh
//! `dpkeys protect` on a 100-key ring whose master keys are wrapped by the Key
//! Vault emulator (managed-identity token over HTTP, Key Vault over HTTPS,
//! one unwrap for the default key) versus the same command on the same 100
//! keys stored unwrapped. The goal: `key_vault_ring_100` <= 3 x
//! `unwrapped_ring_100`.
//!
//! `key_vault_ring_100_keys_list` is `dpkeys keys list` on the wrapped ring:
//! every master key is unwrapped (100 unwraps, run concurrently up to the
//! decryptor's limit).
//!
//! Every iteration spawns a new process, so this measures what an operator or
//! an application's first request sees: process start, reading the ring, TLS
//! set-up and the vault round trips.
#![allow(missing_docs, clippy::unwrap_used)]

use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::Duration as StdDuration;

use criterion::{Criterion, criterion_group, criterion_main};
use dataprotection::KeyManager;
use dataprotection::repository::FileSystemXmlRepository;
use keyvault_emulator::{EmulatorOptions, KeyVaultEmulator};
use time::{Duration, OffsetDateTime};

const KEYS: usize = 100;
const APP: &str = "cold-start";

fn dpkeys(dir: &Path, vault: Option<(&str, &[(String, String)])>, args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_dpkeys"));
    cmd.arg("--dir").arg(dir).args(["--app-name", APP]);
    // Nothing from the calling environment decides the credential.
    for name in [
        "IDENTITY_ENDPOINT",
        "IDENTITY_HEADER",
        "AZURE_FEDERATED_TOKEN_FILE",
        "AZURE_CLIENT_SECRET",
        "RUST_LOG",
    ] {
        cmd.env_remove(name);
    }
    if let Some((key_url, envs)) = vault {
        cmd.args(["--keyvault-key", key_url]);
        cmd.envs(envs.iter().map(|(k, v)| (k, v)));
    }
    let out = cmd.args(args).output().unwrap();
    assert!(
        out.status.success(),
        "dpkeys {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// `KEYS` keys in `dir`, stored unwrapped: the oldest expired long ago, the
/// newest active now.
async fn write_ring(dir: &Path) {
    let manager = KeyManager::new(Arc::new(FileSystemXmlRepository::new(dir)), None);
    let now = OffsetDateTime::now_utc();
    for i in (0..KEYS).rev() {
        let activation = now - Duration::days(7 * i as i64 + 1);
        manager
            .create_key(activation, activation + Duration::days(90))
            .await
            .unwrap();
    }
}

fn copy_dir(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, to.join(path.file_name().unwrap())).unwrap();
    }
}

fn benches(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let emulator = runtime
        .block_on(KeyVaultEmulator::start(EmulatorOptions::default()))
        .unwrap();
    let kid = runtime
        .block_on(emulator.create_key("cold-start", 2048))
        .unwrap();
    let key_url = kid.rsplit_once('/').unwrap().0.to_string();
    let ca = tempfile::NamedTempFile::new().unwrap().into_temp_path();
    emulator.write_ca_cert(&ca).unwrap();
    let envs = vec![
        (
            "IDENTITY_ENDPOINT".to_string(),
            emulator.msi_endpoint_http().unwrap(),
        ),
        (
            "IDENTITY_HEADER".to_string(),
            emulator.identity_header().to_string(),
        ),
        (
            "SSL_CERT_FILE".to_string(),
            ca.to_string_lossy().into_owned(),
        ),
    ];

    // The same keys, unwrapped in one directory and wrapped in the other.
    let unwrapped = tempfile::tempdir().unwrap();
    let wrapped = tempfile::tempdir().unwrap();
    runtime.block_on(write_ring(unwrapped.path()));
    copy_dir(unwrapped.path(), wrapped.path());
    dpkeys(
        wrapped.path(),
        Some((&key_url, &envs)),
        &["rewrap", "--keyvault-key", &key_url],
    );
    let listed = dpkeys(
        wrapped.path(),
        Some((&key_url, &envs)),
        &["keys", "list", "--json"],
    );
    let listed: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    let keys = listed.as_array().unwrap();
    assert_eq!(keys.len(), KEYS);
    assert!(
        keys.iter()
            .all(|k| k["encryptedAtRest"] == true && k["canDecrypt"] == true),
        "every key wrapped and unwrappable: {listed}"
    );

    let protect = ["--no-auto-generate", "protect", "--purpose", "p", "secret"];
    let mut group = c.benchmark_group("cold_start");
    group.sample_size(10);
    group.warm_up_time(StdDuration::from_secs(1));
    group.measurement_time(StdDuration::from_secs(10));
    group.bench_function("unwrapped_ring_100", |b| {
        b.iter(|| dpkeys(unwrapped.path(), None, &protect))
    });
    group.bench_function("key_vault_ring_100", |b| {
        b.iter(|| dpkeys(wrapped.path(), Some((&key_url, &envs)), &protect))
    });
    group.bench_function("key_vault_ring_100_keys_list", |b| {
        b.iter(|| {
            dpkeys(
                wrapped.path(),
                Some((&key_url, &envs)),
                &["keys", "list", "--json"],
            )
        })
    });
    group.finish();
    drop(emulator);
}

criterion_group!(cold_start_benches, benches);
criterion_main!(cold_start_benches);
