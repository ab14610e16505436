//! `dpkeys` on a key ring in an Azure blob (real Azurite), alone and with
//! keys wrapped by the Key Vault emulator.
#![allow(clippy::unwrap_used)]

mod ops_common;

use dataprotection_tests::azurite::{self, Azurite};
use ops_common::{Vault, blob_ring, blob_text, dpkeys};

/// `dpkeys args...` with `envs` and `stdin`; asserts success and returns stdout.
fn ok(args: &[&str], envs: &[(String, String)], stdin: Option<&str>) -> String {
    dpkeys(args, envs, stdin).code(0).to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn protect_unprotect_and_list_on_a_blob_sas_url() {
    let (_, url) = blob_ring().await;
    let base = ["--blob-url", url.as_str(), "--app-name", "blob-app"];
    let payload = ok(&[&base[..], &["protect", "in a blob"]].concat(), &[], None);
    let plain = ok(&[&base[..], &["unprotect"]].concat(), &[], Some(&payload));
    assert_eq!(plain, "in a blob");
    let listed: serde_json::Value = serde_json::from_str(&ok(
        &[&base[..], &["keys", "list", "--json"]].concat(),
        &[],
        None,
    ))
    .unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert_eq!(listed[0]["isDefault"], true);

    // The same ring through the environment variable the infra templates set.
    let plain = ok(
        &["--app-name", "blob-app", "unprotect"],
        &[("DATAPROTECTION_BLOB_URL".into(), url.clone())],
        Some(&payload),
    );
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
    out.code(1);
    let stderr = &out.stderr;
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
    out.fails_naming("does not exist");
    let payload = ok(
        &[&base[..], &["--create-container", "protect", "x"]].concat(),
        &[],
        None,
    );
    assert_eq!(
        ok(&[&base[..], &["unprotect"]].concat(), &[], Some(&payload)),
        "x"
    );
    // --container without --connection-string is a usage error.
    dpkeys(&["--container", "c", "keys", "list"], &[], None).code(2);
}

#[tokio::test(flavor = "multi_thread")]
async fn blob_and_key_vault_end_to_end() {
    let (container, url) = blob_ring().await;
    let vault = Vault::start("ring").await;
    let (envs, key_url) = (vault.envs(), vault.key_url.as_str());
    let base = [
        "--blob-url",
        url.as_str(),
        "--keyvault-key",
        key_url,
        "--app-name",
        "e2e",
    ];
    let payload = ok(
        &[&base[..], &["protect", "wrapped in a blob"]].concat(),
        &envs,
        None,
    );
    assert_eq!(
        ok(&[&base[..], &["unprotect"]].concat(), &envs, Some(&payload)),
        "wrapped in a blob"
    );

    // The blob holds .NET's document with the key wrapped and no master key in clear.
    let text = blob_text(&container).await;
    assert!(
        text.starts_with("<?xml version=\"1.0\" encoding=\"utf-8\"?><repository><key id="),
        "{text}"
    );
    assert!(text.contains("AzureKeyVaultXmlDecryptor"));
    assert!(!text.contains("<masterKey"), "{text}");

    // Rotating the vault key: the old key stays readable, a new key is wrapped
    // with the new version.
    let new_kid = vault.emulator.create_key("ring", 2048).await.unwrap();
    ok(&[&base[..], &["keys", "new"]].concat(), &envs, None);
    let text = blob_text(&container).await;
    assert!(
        text.contains(&format!("<kid>{}</kid>", vault.kid))
            && text.contains(&format!("<kid>{new_kid}</kid>")),
        "{text}"
    );
    assert_eq!(
        ok(&[&base[..], &["unprotect"]].concat(), &envs, Some(&payload)),
        "wrapped in a blob"
    );
    let listed: serde_json::Value = serde_json::from_str(&ok(
        &[&base[..], &["keys", "list", "--json"]].concat(),
        &envs,
        None,
    ))
    .unwrap();
    assert!(
        listed
            .as_array()
            .unwrap()
            .iter()
            .all(|k| k["canDecrypt"] == true)
    );
}
