//! `dpkeys migrate`: directory -> Azurite blob -> directory, idempotent,
//! verified, optionally re-wrapping with the Key Vault emulator, while an
//! application keeps using the source ring.
#![allow(clippy::unwrap_used)]

mod ops_common;

use std::sync::Arc;

use dataprotection::repository::FileSystemXmlRepository;
use ops_common::*;

fn key_ids(listed: &[serde_json::Value]) -> Vec<String> {
    let mut ids: Vec<String> = listed
        .iter()
        .map(|k| k["id"].as_str().unwrap().to_string())
        .collect();
    ids.sort();
    ids
}

#[tokio::test(flavor = "multi_thread")]
async fn a_directory_ring_moves_to_a_blob_and_back() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    let s = src.to_str().unwrap().to_string();
    let base = ["--dir", s.as_str(), "--app-name", "mig"];
    let payload = dpkeys(&args(&base, &["protect", "moving"]), &[], None).line();
    dpkeys(&args(&base, &["rotate"]), &[], None).code(0);
    let revoked = dpkeys(&args(&base, &["keys", "new"]), &[], None).line();
    dpkeys(&args(&base, &["keys", "revoke", &revoked]), &[], None).code(0);

    let (container, url) = blob_ring().await;
    let live = LiveApp::start(Arc::new(FileSystemXmlRepository::new(src.clone()))).await;
    let (s2, u2) = (s.clone(), url.clone());
    let out =
        blocking(move || dpkeys(&["--dir", &s2, "migrate", "--to-blob-url", &u2], &[], None)).await;
    live.finish().await;
    let line = out.code(0);
    assert!(line.starts_with("copied 4 elements to blob "), "{line}");
    assert!(line.contains("verified 3 keys (3 by master key)"), "{line}");
    assert!(!line.contains("sig="), "no secret in the output: {line}");
    // Revocations are copied before keys.
    let text = blob_text(&container).await;
    assert!(
        text.find("<revocation").unwrap() < text.find("<key ").unwrap(),
        "{text}"
    );

    // The blob ring reads the old payload and knows the revocation.
    let blob = ["--blob-url", url.as_str(), "--app-name", "mig"];
    assert_eq!(
        dpkeys(
            &args(&blob, &["--no-auto-generate", "unprotect"]),
            &[],
            Some(&payload)
        )
        .code(0),
        "moving"
    );
    let listed = list(&blob, &[]);
    assert_eq!(key_ids(&listed), key_ids(&list(&base, &[])));
    assert!(
        listed
            .iter()
            .any(|k| k["id"] == revoked.as_str() && k["isRevoked"] == true)
    );

    // Idempotent.
    let out = dpkeys(&["--dir", &s, "migrate", "--to-blob-url", &url], &[], None);
    assert!(
        out.code(0).starts_with("copied 0 elements"),
        "{}",
        out.stdout
    );
    assert_eq!(blob_text(&container).await, text);

    // And back, through a connection string, into a new directory.
    let back = dir.path().join("back");
    let cs = dataprotection_tests::azurite::Azurite::shared()
        .unwrap()
        .connection_string();
    let out = dpkeys(
        &[
            "--connection-string",
            &cs,
            "--container",
            &container,
            "--blob",
            "keys.xml",
            "migrate",
            "--to-dir",
            back.to_str().unwrap(),
        ],
        &[],
        None,
    );
    assert!(
        out.code(0).starts_with("copied 4 elements"),
        "{}",
        out.stdout
    );
    let back_base = ["--dir", back.to_str().unwrap(), "--app-name", "mig"];
    assert_eq!(
        dpkeys(
            &args(&back_base, &["--no-auto-generate", "unprotect"]),
            &[],
            Some(&payload)
        )
        .code(0),
        "moving"
    );
    let mut names: Vec<String> = std::fs::read_dir(&back)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".xml"))
        .collect();
    names.sort();
    assert_eq!(names.len(), 4);
    assert!(
        names.contains(&format!("revocation-{revoked}.xml")),
        "{names:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn migrating_can_wrap_keys_with_key_vault_on_the_way() {
    let vault = Vault::start("migrate").await;
    let envs = vault.envs();
    let dir = tempfile::tempdir().unwrap();
    let s = dir.path().to_str().unwrap().to_string();
    let payload = dpkeys(&["--dir", &s, "protect", "clear at rest"], &[], None).line();
    let (container, url) = blob_ring().await;
    let (s2, u2, k2, e2) = (s.clone(), url.clone(), vault.key_url.clone(), envs.clone());
    let out = blocking(move || {
        dpkeys(
            &[
                "--dir",
                &s2,
                "migrate",
                "--to-blob-url",
                &u2,
                "--to-keyvault-key",
                &k2,
            ],
            &e2,
            None,
        )
    })
    .await;
    assert!(out.code(0).contains("(1 by master key)"), "{}", out.stdout);
    let text = blob_text(&container).await;
    assert_eq!(kids(&text).len(), 1, "{text}");
    assert!(!text.contains("<masterKey"), "{text}");
    let (u2, k2, e2) = (url.clone(), vault.key_url.clone(), envs.clone());
    let plain = blocking(move || {
        dpkeys(
            &[
                "--blob-url",
                &u2,
                "--keyvault-key",
                &k2,
                "--no-auto-generate",
                "unprotect",
            ],
            &e2,
            Some(&payload),
        )
    })
    .await;
    assert_eq!(plain.code(0), "clear at rest");
}

#[test]
fn a_different_key_with_the_same_id_fails_verification() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    dpkeys(&["--dir", a.to_str().unwrap(), "keys", "new"], &[], None).code(0);
    std::fs::create_dir_all(&b).unwrap();
    // The same key id with another master key in the destination.
    let file = std::fs::read_dir(&a)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "xml"))
        .unwrap();
    let text = std::fs::read_to_string(&file).unwrap();
    let value = text
        .split("<value>")
        .nth(1)
        .unwrap()
        .split("</value>")
        .next()
        .unwrap();
    let other = text.replace(value, &"A".repeat(value.len()));
    std::fs::write(b.join(file.file_name().unwrap()), other).unwrap();
    let out = dpkeys(
        &[
            "--dir",
            a.to_str().unwrap(),
            "migrate",
            "--to-dir",
            b.to_str().unwrap(),
        ],
        &[],
        None,
    );
    out.fails_naming("(verification failure)");
    // A usage error without a destination.
    assert_eq!(
        dpkeys(&["--dir", a.to_str().unwrap(), "migrate"], &[], None).code,
        2
    );
}
