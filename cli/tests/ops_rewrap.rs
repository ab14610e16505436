//! `dpkeys rewrap`: re-encrypting the ring under a new Key Vault key version,
//! on a directory and on an Azurite blob, while applications keep reading it;
//! afterwards the old version can be disabled.
#![allow(clippy::unwrap_used)]

mod ops_common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use ops_common::*;

/// Protects `n` payloads with `base` (each run may create or reuse keys).
fn payloads(base: &[String], envs: &[(String, String)], n: usize) -> Vec<String> {
    let b: Vec<&str> = base.iter().map(String::as_str).collect();
    (0..n)
        .map(|i| dpkeys(&args(&b, &["protect", &format!("secret {i}")]), envs, None).line())
        .collect()
}

fn unprotect_all(base: &[String], envs: &[(String, String)], payloads: &[String]) {
    let b: Vec<&str> = base.iter().map(String::as_str).collect();
    for (i, p) in payloads.iter().enumerate() {
        let out = dpkeys(
            &args(&b, &["--no-auto-generate", "unprotect"]),
            envs,
            Some(p),
        );
        assert_eq!(out.code(0), format!("secret {i}"));
    }
}

fn all_files(dir: &std::path::Path) -> Vec<(String, String)> {
    let mut files: Vec<(String, String)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "xml"))
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read_to_string(&p).unwrap(),
            )
        })
        .collect();
    files.sort();
    files
}

#[tokio::test(flavor = "multi_thread")]
async fn rewrap_a_directory_then_disable_the_old_key_version() {
    let vault = Vault::start("dir-ring").await;
    let envs = vault.envs();
    let dir = tempfile::tempdir().unwrap();
    let base: Vec<String> = [
        "--dir",
        dir.path().to_str().unwrap(),
        "--keyvault-key",
        &vault.key_url,
        "--app-name",
        "rewrap",
    ]
    .map(str::to_string)
    .to_vec();
    let b: Vec<&str> = base.iter().map(String::as_str).collect();
    let old = blocking({
        let (base, envs) = (base.clone(), envs.clone());
        move || {
            let p = payloads(&base, &envs, 2);
            let b: Vec<&str> = base.iter().map(String::as_str).collect();
            dpkeys(&args(&b, &["rotate"]), &envs, None).code(0);
            p
        }
    })
    .await;
    // One key stored in clear too: rewrap encrypts it.
    dpkeys(
        &["--dir", dir.path().to_str().unwrap(), "keys", "new"],
        &[],
        None,
    )
    .code(0);
    let before = all_files(dir.path());
    assert_eq!(before.len(), 3);
    let old_version = vault.versions().pop().unwrap();

    let new_kid = vault.emulator.create_key(vault.name(), 2048).await.unwrap();
    let (b2, e2, url) = (base.clone(), envs.clone(), vault.key_url.clone());
    let out = blocking(move || {
        let b: Vec<&str> = b2.iter().map(String::as_str).collect();
        dpkeys(&args(&b, &["rewrap", "--keyvault-key", &url]), &e2, None)
    })
    .await;
    let line = out.code(0).to_string();
    assert!(
        line.starts_with("rewrapped 3 keys with ") && line.contains(&new_kid),
        "{line}"
    );
    let after = all_files(dir.path());
    // Same files (replaced in place), every key wrapped with the new version.
    assert_eq!(
        before.iter().map(|f| &f.0).collect::<Vec<_>>(),
        after.iter().map(|f| &f.0).collect::<Vec<_>>()
    );
    for (name, text) in &after {
        assert_eq!(kids(text), vec![new_kid.clone()], "{name}: {text}");
        assert!(!text.contains("<masterKey"), "{text}");
    }

    // The old version can go: a fresh process still reads every payload.
    vault
        .emulator
        .set_key_enabled(vault.name(), Some(&old_version), false)
        .unwrap();
    let (b2, e2) = (base.clone(), envs.clone());
    blocking(move || unprotect_all(&b2, &e2, &old)).await;
    let listed = list(&b, &envs);
    assert!(listed.iter().all(|k| k["canDecrypt"] == true), "{listed:?}");

    // Running it again changes nothing.
    let (b2, e2, url) = (base.clone(), envs.clone(), vault.key_url.clone());
    let out = blocking(move || {
        let b: Vec<&str> = b2.iter().map(String::as_str).collect();
        dpkeys(&args(&b, &["rewrap", "--keyvault-key", &url]), &e2, None)
    })
    .await;
    assert!(
        out.code(0).starts_with("rewrapped 0 keys"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("3 already wrapped"), "{}", out.stdout);
    assert_eq!(all_files(dir.path()), after);
}

#[tokio::test(flavor = "multi_thread")]
async fn rewrap_a_blob_while_applications_keep_reading_it() {
    let vault = Vault::start("blob-ring").await;
    let envs = vault.envs();
    let (container, url) = blob_ring().await;
    let base: Vec<String> = [
        "--blob-url",
        url.as_str(),
        "--keyvault-key",
        &vault.key_url,
        "--app-name",
        "rewrap",
    ]
    .map(str::to_string)
    .to_vec();
    let old = blocking({
        let (base, envs) = (base.clone(), envs.clone());
        move || {
            let p = payloads(&base, &envs, 2);
            let b: Vec<&str> = base.iter().map(String::as_str).collect();
            for _ in 0..3 {
                dpkeys(&args(&b, &["rotate", "--now"]), &envs, None).code(0);
            }
            p
        }
    })
    .await;
    let before = blob_text(&container).await;
    assert_eq!(before.matches("<key ").count(), 4);
    let old_version = vault.versions().pop().unwrap();
    let new_kid = vault.emulator.create_key(vault.name(), 2048).await.unwrap();

    // Readers: fresh processes that each load the ring and unwrap a key.
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let (base, envs, old, stop) = (base.clone(), envs.clone(), old.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut rounds = 0;
            while !stop.load(Ordering::SeqCst) || rounds == 0 {
                unprotect_all(&base, &envs, &old);
                rounds += 1;
            }
            rounds
        })
    };
    let (b2, e2, key) = (base.clone(), envs.clone(), vault.key_url.clone());
    let out = blocking(move || {
        let b: Vec<&str> = b2.iter().map(String::as_str).collect();
        dpkeys(&args(&b, &["rewrap", "--keyvault-key", &key]), &e2, None)
    })
    .await;
    stop.store(true, Ordering::SeqCst);
    assert!(reader.join().unwrap() > 0);
    assert!(
        out.code(0).starts_with("rewrapped 4 keys"),
        "{}",
        out.stdout
    );

    let after = blob_text(&container).await;
    assert_eq!(
        after.matches("<key ").count(),
        4,
        "no key lost or duplicated"
    );
    assert_eq!(kids(&after), vec![new_kid; 4]);
    // Key ids in the same order as before.
    let ids = |t: &str| -> Vec<String> {
        t.split("<key id=\"")
            .skip(1)
            .map(|s| s[..36].to_string())
            .collect()
    };
    assert_eq!(ids(&before), ids(&after));

    vault
        .emulator
        .set_key_enabled(vault.name(), Some(&old_version), false)
        .unwrap();
    let (b2, e2) = (base.clone(), envs.clone());
    blocking(move || unprotect_all(&b2, &e2, &old)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn keys_that_cannot_be_decrypted_are_left_untouched() {
    let vault = Vault::start("partial").await;
    let envs = vault.envs();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap().to_string();
    let key_url = vault.key_url.clone();
    let e2 = envs.clone();
    blocking(move || {
        dpkeys(
            &["--dir", &d, "--keyvault-key", &key_url, "rotate", "--now"],
            &e2,
            None,
        )
        .code(0);
        dpkeys(
            &["--dir", &d, "--keyvault-key", &key_url, "rotate"],
            &e2,
            None,
        )
        .code(0);
    })
    .await;
    // Make one key's decryptor unknown.
    let files = all_files(dir.path());
    let (name, text) = &files[0];
    let broken = text.replace(
        "decryptorType=\"Azure.Extensions.AspNetCore.DataProtection.Keys.AzureKeyVaultXmlDecryptor",
        "decryptorType=\"Contoso.UnknownDecryptor",
    );
    assert_ne!(&broken, text);
    std::fs::write(dir.path().join(name), &broken).unwrap();
    vault.emulator.create_key(vault.name(), 2048).await.unwrap();

    let d = dir.path().to_str().unwrap().to_string();
    let key_url = vault.key_url.clone();
    let out = blocking(move || {
        dpkeys(
            &[
                "--dir",
                &d,
                "--keyvault-key",
                &key_url,
                "rewrap",
                "--keyvault-key",
                &key_url,
            ],
            &envs,
            None,
        )
    })
    .await;
    assert!(
        out.code(4).starts_with("rewrapped 1 keys"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("1 left as they were"), "{}", out.stdout);
    assert!(out.stderr.contains("unknown decryptor"), "{}", out.stderr);
    assert_eq!(
        std::fs::read_to_string(dir.path().join(name)).unwrap(),
        broken
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn progress_is_shown_only_when_asked_or_on_a_terminal() {
    let vault = Vault::start("progress").await;
    let mut envs = vault.envs();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap().to_string();
    let key_url = vault.key_url.clone();
    let out = blocking({
        let envs = envs.clone();
        move || {
            dpkeys(
                &["--dir", &d, "--keyvault-key", &key_url, "rotate", "--now"],
                &envs,
                None,
            )
            .code(0);
            dpkeys(
                &["--dir", &d, "rewrap", "--keyvault-key", &key_url, "--force"],
                &envs,
                None,
            )
        }
    })
    .await;
    out.code(0);
    assert!(
        !out.stderr.contains("rewrap: "),
        "piped: quiet: {}",
        out.stderr
    );
    envs.push(("DPKEYS_PROGRESS".into(), "always".into()));
    let d = dir.path().to_str().unwrap().to_string();
    let key_url = vault.key_url.clone();
    let out = blocking(move || {
        dpkeys(
            &["--dir", &d, "rewrap", "--keyvault-key", &key_url, "--force"],
            &envs,
            None,
        )
    })
    .await;
    out.code(0);
    assert!(out.stderr.contains("\rrewrap: 1/1"), "{:?}", out.stderr);
}
