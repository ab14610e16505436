//! `dpkeys doctor`: every condition it claims to check, made to happen on a
//! directory, an Azurite blob and the Key Vault emulator.
#![allow(clippy::unwrap_used)]

mod ops_common;

use std::path::Path;

use ops_common::*;
use serde_json::Value;
use time::{Duration, OffsetDateTime};

/// `doctor --json`: exit code and findings.
fn doctor(location: &[&str], envs: &[(String, String)]) -> (i32, Vec<Value>) {
    let out = dpkeys(&args(location, &["doctor", "--json"]), envs, None);
    let findings: Value = serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {} / {}", out.stdout, out.stderr));
    (out.code, findings.as_array().unwrap().clone())
}

/// The findings of `check` as (status, message).
fn of(findings: &[Value], check: &str) -> Vec<(String, String)> {
    findings
        .iter()
        .filter(|f| f["check"] == check)
        .map(|f| {
            (
                f["status"].as_str().unwrap().to_string(),
                f["message"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// Asserts `check` has a finding with `status` whose message contains `text`.
fn has(findings: &[Value], check: &str, status: &str, text: &str) {
    let found = of(findings, check);
    assert!(
        found.iter().any(|(s, m)| s == status && m.contains(text)),
        "{check}: expected {status} containing {text:?}, got {found:?}"
    );
}

fn new_key(loc: &[&str], activation: OffsetDateTime, expiration: OffsetDateTime) -> String {
    dpkeys(
        &args(
            loc,
            &[
                "keys",
                "new",
                "--activation",
                &at(activation),
                "--expiration",
                &at(expiration),
            ],
        ),
        &[],
        None,
    )
    .line()
}

fn xml_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "xml"))
        .collect();
    files.sort();
    files
}

#[test]
fn an_empty_ring_has_no_default_key() {
    let dir = tempfile::tempdir().unwrap();
    let ring = dir.path().join("none");
    let (code, f) = doctor(&dir_arg(&ring), &[]);
    assert_eq!(code, 1);
    has(&f, "ring.default", "error", "no usable default key");
    has(&f, "repository.write", "warning", "does not exist");
    // The text form names the counts.
    let out = dpkeys(&args(&dir_arg(&ring), &["doctor"]), &[], None);
    assert_eq!(out.code, 1);
    assert!(
        out.stdout.contains("ERROR    ring.default"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.ends_with("checks passed\n"), "{}", out.stdout);
}

#[test]
fn a_clear_text_ring_is_only_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let loc = dir_arg(dir.path());
    dpkeys(&args(&loc, &["rotate", "--now"]), &[], None).code(0);
    let (code, f) = doctor(&loc, &[]);
    assert_eq!(code, 4, "{f:?}");
    has(&f, "key.at_rest", "warning", "stored unencrypted");
    has(&f, "repository.write", "ok", "is writable");
    has(&f, "ring.default", "ok", "default key");
    has(&f, "ring.successor", "ok", "no successor is needed yet");
    has(&f, "key.decrypt", "ok", "all 1 keys decrypt");
    has(&f, "clock.skew", "ok", "not measured");
    // The write probe leaves nothing behind.
    assert!(
        std::fs::read_dir(dir.path()).unwrap().all(|e| !e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .ends_with(".probe"))
    );
}

#[test]
fn a_default_key_near_expiry_without_successor_is_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let loc = dir_arg(dir.path());
    let now = OffsetDateTime::now_utc();
    new_key(&loc, now - Duration::days(89), now + Duration::days(1));
    let (_, f) = doctor(&loc, &[]);
    has(&f, "ring.successor", "warning", "rotate --if-needed");
    dpkeys(&args(&loc, &["rotate", "--if-needed"]), &[], None).code(0);
    let (_, f) = doctor(&loc, &[]);
    has(
        &f,
        "ring.successor",
        "ok",
        "takes over when the default key expires",
    );
}

#[test]
fn malformed_and_duplicate_elements() {
    let dir = tempfile::tempdir().unwrap();
    let loc = dir_arg(dir.path());
    dpkeys(&args(&loc, &["rotate", "--now"]), &[], None).code(0);
    std::fs::write(
        dir.path().join("key-broken.xml"),
        "<key id=\"not-a-guid\" version=\"1\"><creationDate>x</creationDate></key>",
    )
    .unwrap();
    let (_, f) = doctor(&loc, &[]);
    has(&f, "ring.elements", "warning", "malformed");
    has(&f, "ring.duplicates", "ok", "no key id appears twice");

    let file = xml_files(dir.path())
        .into_iter()
        .find(|p| !p.ends_with("key-broken.xml"))
        .unwrap();
    let id = file.file_stem().unwrap().to_string_lossy()[4..].to_string();
    std::fs::copy(&file, dir.path().join(format!("key-{id}-copy.xml"))).unwrap();
    let (code, f) = doctor(&loc, &[]);
    assert_eq!(code, 1);
    has(&f, "ring.duplicates", "error", &id);
}

#[test]
fn a_mass_revocation_in_the_future() {
    let dir = tempfile::tempdir().unwrap();
    let loc = dir_arg(dir.path());
    dpkeys(&args(&loc, &["rotate", "--now"]), &[], None).code(0);
    let future = at(OffsetDateTime::now_utc() + Duration::days(3));
    dpkeys(
        &args(&loc, &["keys", "revoke-all", "--before", &future]),
        &[],
        None,
    )
    .code(0);
    let (code, f) = doctor(&loc, &[]);
    assert_eq!(code, 1);
    has(&f, "ring.revocations", "error", "in the future");
    has(&f, "ring.default", "error", "no usable default key");
}

#[test]
fn keys_that_will_never_be_used() {
    let dir = tempfile::tempdir().unwrap();
    let loc = dir_arg(dir.path());
    let now = OffsetDateTime::now_utc();
    // Two keys with the same activation: the larger id never wins.
    let a = new_key(&loc, now - Duration::hours(1), now + Duration::days(80));
    let b = new_key(&loc, now - Duration::hours(1), now + Duration::days(80));
    let loser = a.clone().max(b.clone());
    let (_, f) = doctor(&loc, &[]);
    has(
        &f,
        "key.unused",
        "warning",
        &format!("key {loser} will never be used"),
    );
    // A key created after a later-activated key was already active.
    let late = new_key(&loc, now - Duration::days(5), now + Duration::days(80));
    let (_, f) = doctor(&loc, &[]);
    has(
        &f,
        "key.unused",
        "warning",
        &format!("key {late} will never be used"),
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn blob_sas_expiry_and_permissions_and_clock() {
    let (container, _) = blob_ring().await;
    let url = blob_url(&container, "racwd", Duration::days(30));
    dpkeys(&["--blob-url", &url, "rotate", "--now"], &[], None).code(0);
    let (_, f) = doctor(&["--blob-url", &url], &[]);
    has(&f, "repository.read", "ok", "read 1 elements");
    has(&f, "sas.expiry", "ok", "SAS expires at");
    has(&f, "sas.permissions", "ok", "\"racwd\"");
    has(&f, "clock.skew", "ok", "storage service's");

    let read_only = blob_url(&container, "r", Duration::hours(2));
    let (code, f) = doctor(&["--blob-url", &read_only], &[]);
    assert_eq!(code, 4, "{f:?}");
    has(&f, "sas.permissions", "warning", "read-only");

    let soon = blob_url(&container, "racwd", Duration::days(2));
    let (_, f) = doctor(&["--blob-url", &soon], &[]);
    has(&f, "sas.expiry", "warning", "replace it");

    let expired = blob_url(&container, "racwd", -Duration::hours(1));
    let (code, f) = doctor(&["--blob-url", &expired], &[]);
    assert_eq!(code, 1);
    has(&f, "sas.expiry", "error", "has expired");
    has(&f, "repository.read", "error", "cannot read the key ring");
    assert!(!serde_json::to_string(&f).unwrap().contains("sig="));

    // An account key mints its own SAS.
    let cs = dataprotection_tests::azurite::Azurite::shared()
        .unwrap()
        .connection_string();
    let (_, f) = doctor(
        &[
            "--connection-string",
            &cs,
            "--container",
            &container,
            "--blob",
            "keys.xml",
        ],
        &[],
    );
    has(&f, "repository.write", "ok", "account key");
    has(&f, "clock.skew", "ok", "storage service's");
}

#[tokio::test(flavor = "multi_thread")]
async fn key_vault_permissions_and_undecryptable_keys() {
    let vault = Vault::start("doctor").await;
    let envs = vault.envs();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap().to_string();
    let k = vault.key_url.clone();
    let loc: Vec<String> = ["--dir", d.as_str(), "--keyvault-key", k.as_str()]
        .map(str::to_string)
        .to_vec();
    let run = |loc: Vec<String>, envs: Vec<(String, String)>| {
        blocking(move || {
            let l: Vec<&str> = loc.iter().map(String::as_str).collect();
            doctor(&l, &envs)
        })
    };
    {
        let (loc, envs) = (loc.clone(), envs.clone());
        blocking(move || {
            let l: Vec<&str> = loc.iter().map(String::as_str).collect();
            dpkeys(&args(&l, &["rotate", "--now"]), &envs, None).code(0);
        })
        .await;
    }
    let (code, f) = run(loc.clone(), envs.clone()).await;
    assert_eq!(code, 0, "a healthy ring: {f:?}");
    has(&f, "keyvault.key", "ok", "is enabled and allows");
    has(&f, "keyvault.wrap", "ok", "wrapKey and unwrapKey work");
    has(&f, "key.at_rest", "ok", "encrypted at rest");

    // Without the vault configured, the wrapped key cannot be read.
    let (code, f) = run(vec!["--dir".into(), d.clone()], envs.clone()).await;
    assert_eq!(code, 1);
    has(&f, "key.decrypt", "error", "--keyvault-key");

    // The key no longer allows unwrapKey.
    vault
        .emulator
        .set_key_ops(vault.name(), None, &["wrapKey"])
        .unwrap();
    let (code, f) = run(loc.clone(), envs.clone()).await;
    assert_eq!(code, 1);
    has(&f, "keyvault.key", "error", "does not allow unwrapKey");
    has(&f, "keyvault.wrap", "error", "unwrapKey failed");
    has(&f, "key.decrypt", "error", "cannot be decrypted");
    has(&f, "ring.default", "error", "no usable default key");

    // A disabled key.
    vault
        .emulator
        .set_key_ops(vault.name(), None, &["wrapKey", "unwrapKey"])
        .unwrap();
    vault
        .emulator
        .set_key_enabled(vault.name(), None, false)
        .unwrap();
    let (code, f) = run(loc.clone(), envs.clone()).await;
    assert_eq!(code, 1);
    has(&f, "keyvault.key", "error", "is disabled");
    has(&f, "keyvault.wrap", "error", "wrapKey failed");
}

#[test]
fn a_windows_only_key_and_a_ring_whose_every_key_is_revoked() {
    let dir = tempfile::tempdir().unwrap();
    let loc = dir_arg(dir.path());
    let id = uuid::Uuid::new_v4();
    let now = OffsetDateTime::now_utc();
    // A key as .NET writes it with ProtectKeysWithDpapi().
    std::fs::write(
        dir.path().join(format!("key-{id}.xml")),
        format!(
            "<key id=\"{id}\" version=\"1\"><creationDate>{c}</creationDate>\
             <activationDate>{c}</activationDate><expirationDate>{e}</expirationDate>\
             <descriptor deserializerType=\"Microsoft.AspNetCore.DataProtection.AuthenticatedEncryption.ConfigurationModel.AuthenticatedEncryptorDescriptorDeserializer, Microsoft.AspNetCore.DataProtection, Version=8.0.0.0\">\
             <descriptor><encryption algorithm=\"AES_256_CBC\" /><validation algorithm=\"HMACSHA256\" />\
             <encryptedSecret decryptorType=\"Microsoft.AspNetCore.DataProtection.XmlEncryption.DpapiXmlDecryptor, Microsoft.AspNetCore.DataProtection, Version=8.0.0.0\" xmlns=\"http://schemas.asp.net/2015/03/dataProtection\">\
             <encryptedKey><value>AQAAANCMnd8BFdERjHoAwE</value></encryptedKey></encryptedSecret>\
             </descriptor></descriptor></key>",
            c = at(now - Duration::days(1)),
            e = at(now + Duration::days(80)),
        ),
    )
    .unwrap();
    let (code, f) = doctor(&loc, &[]);
    assert_eq!(code, 1, "{f:?}");
    has(&f, "key.decrypt", "error", "only Windows");
    has(&f, "key.decrypt", "error", "windows-only protection");
    has(&f, "ring.default", "error", "no usable default key");

    // Revoke every key: a warning that says so, besides the missing default.
    dpkeys(
        &args(&loc, &["keys", "revoke-all", "--before", &at(now)]),
        &[],
        None,
    )
    .code(0);
    let (_, f) = doctor(&loc, &[]);
    has(&f, "ring.revocations", "warning", "every key is revoked");
    has(&f, "key.decrypt", "warning", &format!("revoked key {id}"));
}
