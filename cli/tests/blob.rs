//! `dpkeys` on a key ring in an Azure blob (real Azurite), alone and with
//! keys wrapped by the Key Vault emulator.
#![allow(clippy::unwrap_used)]

use std::process::{Command, Output, Stdio};

use dataprotection_tests::azurite::{self, Azurite};
use keyvault_emulator::{EmulatorOptions, KeyVaultEmulator};
use time::{Duration, OffsetDateTime};

fn dpkeys(args: &[&str], envs: &[(&str, String)], stdin: Option<&str>) -> Output {
    use std::io::Write;
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_dpkeys"));
    cmd.args(args)
        .env_remove("DATAPROTECTION_BLOB_URL")
        .env_remove("DATAPROTECTION_KEYVAULT_KEY_ID")
        .env_remove("DATAPROTECTION_APP_NAME")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(s) = stdin {
        input.write_all(s.as_bytes()).unwrap();
    }
    drop(input);
    child.wait_with_output().unwrap()
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "dpkeys failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

async fn blob_url(az: &Azurite) -> (String, String) {
    let container = azurite::unique_name("dpkeys");
    az.create_container(&container).await.unwrap();
    let url = az
        .blob_sas_url(
            &container,
            "keys.xml",
            "racwd",
            OffsetDateTime::now_utc() + Duration::hours(1),
        )
        .unwrap();
    (container, url.to_string())
}

#[tokio::test(flavor = "multi_thread")]
async fn protect_unprotect_and_list_on_a_blob_sas_url() {
    let az = Azurite::shared().unwrap();
    let (_, url) = blob_url(az).await;
    let base = ["--blob-url", url.as_str(), "--app-name", "blob-app"];
    let payload = ok(&dpkeys(
        &[&base[..], &["protect", "in a blob"]].concat(),
        &[],
        None,
    ));
    let plain = ok(&dpkeys(
        &[&base[..], &["unprotect"]].concat(),
        &[],
        Some(&payload),
    ));
    assert_eq!(plain, "in a blob");
    let listed: serde_json::Value = serde_json::from_str(&ok(&dpkeys(
        &[&base[..], &["keys", "list", "--json"]].concat(),
        &[],
        None,
    )))
    .unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert_eq!(listed[0]["isDefault"], true);

    // The same ring through the environment variable the infra templates set.
    let plain = ok(&dpkeys(
        &["--app-name", "blob-app", "unprotect"],
        &[("DATAPROTECTION_BLOB_URL", url.clone())],
        Some(&payload),
    ));
    assert_eq!(plain, "in a blob");

    // A tampered signature: a clear failure that never prints the signature.
    let sig = url
        .split("sig=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap()
        .to_string();
    let bad = url.replace(&sig, "AAAA");
    let out = dpkeys(&["--blob-url", &bad, "keys", "list"], &[], None);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("403"), "{stderr}");
    assert!(
        !stderr.contains("AAAA") && !stderr.contains(&sig),
        "no signature in: {stderr}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn connection_string_addressing() {
    let az = Azurite::shared().unwrap();
    let container = azurite::unique_name("dpkeys-cs");
    let cs = az.connection_string();
    let base = [
        "--connection-string",
        cs.as_str(),
        "--container",
        container.as_str(),
        "--blob",
        "ring.xml",
    ];
    // Missing container: a clear error, unless asked to create it.
    let out = dpkeys(&[&base[..], &["protect", "x"]].concat(), &[], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not exist"));
    let payload = ok(&dpkeys(
        &[&base[..], &["--create-container", "protect", "x"]].concat(),
        &[],
        None,
    ));
    assert_eq!(
        ok(&dpkeys(
            &[&base[..], &["unprotect"]].concat(),
            &[],
            Some(&payload)
        )),
        "x"
    );
    // --container without --connection-string is a usage error.
    assert_eq!(
        dpkeys(&["--container", "c", "keys", "list"], &[], None)
            .status
            .code(),
        Some(2)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn blob_and_key_vault_end_to_end() {
    let az = Azurite::shared().unwrap();
    let (container, url) = blob_url(az).await;
    let emulator = KeyVaultEmulator::start(EmulatorOptions::default())
        .await
        .unwrap();
    let kid = emulator.create_key("ring", 2048).await.unwrap();
    let key_url = kid.rsplit_once('/').unwrap().0.to_string();
    let ca = tempfile::NamedTempFile::new().unwrap().into_temp_path();
    emulator.write_ca_cert(&ca).unwrap();
    let envs = [
        ("IDENTITY_ENDPOINT", emulator.msi_endpoint_http().unwrap()),
        ("IDENTITY_HEADER", emulator.identity_header().to_string()),
        ("SSL_CERT_FILE", ca.to_string_lossy().into_owned()),
    ];
    let base = [
        "--blob-url",
        url.as_str(),
        "--keyvault-key",
        key_url.as_str(),
        "--app-name",
        "e2e",
    ];
    let payload = ok(&dpkeys(
        &[&base[..], &["protect", "wrapped in a blob"]].concat(),
        &envs,
        None,
    ));
    assert_eq!(
        ok(&dpkeys(
            &[&base[..], &["unprotect"]].concat(),
            &envs,
            Some(&payload)
        )),
        "wrapped in a blob"
    );

    // The blob holds .NET's document with the key wrapped and no master key in clear.
    let text = az.download_text(&container, "keys.xml").await.unwrap();
    assert!(
        text.starts_with("<?xml version=\"1.0\" encoding=\"utf-8\"?><repository><key id="),
        "{text}"
    );
    assert!(text.contains("AzureKeyVaultXmlDecryptor"));
    assert!(!text.contains("<masterKey"), "{text}");

    // Rotating the vault key: the old key stays readable, a new key is wrapped
    // with the new version.
    let new_kid = emulator.create_key("ring", 2048).await.unwrap();
    ok(&dpkeys(
        &[&base[..], &["keys", "new"]].concat(),
        &envs,
        None,
    ));
    let text = az.download_text(&container, "keys.xml").await.unwrap();
    assert!(
        text.contains(&format!("<kid>{kid}</kid>"))
            && text.contains(&format!("<kid>{new_kid}</kid>")),
        "{text}"
    );
    assert_eq!(
        ok(&dpkeys(
            &[&base[..], &["unprotect"]].concat(),
            &envs,
            Some(&payload)
        )),
        "wrapped in a blob"
    );
    let listed: serde_json::Value = serde_json::from_str(&ok(&dpkeys(
        &[&base[..], &["keys", "list", "--json"]].concat(),
        &envs,
        None,
    )))
    .unwrap();
    assert!(
        listed
            .as_array()
            .unwrap()
            .iter()
            .all(|k| k["canDecrypt"] == true)
    );
}
