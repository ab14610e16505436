//! Runs the quickstart binary: the file-system step alone, then the Azure
//! step against real Azurite and the Key Vault emulator (through the real
//! `ManagedIdentityCredential` of the child process).
#![allow(clippy::unwrap_used, missing_docs)]

use std::path::Path;
use std::process::{Command, Output};

use dataprotection_tests::azurite::Azurite;
use keyvault_emulator::{EmulatorOptions, KeyVaultEmulator};
use time::{Duration, OffsetDateTime};

fn quickstart(dir: &Path, envs: &[(&str, String)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_quickstart"));
    cmd.arg(dir)
        .env_remove("DATAPROTECTION_BLOB_URL")
        .env_remove("DATAPROTECTION_KEYVAULT_KEY_ID");
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

fn ok(output: &Output) -> String {
    assert!(
        output.status.success(),
        "quickstart failed: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone()).unwrap()
}

fn key_files(dir: &Path) -> Vec<String> {
    let mut files: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("key-") && n.ends_with(".xml"))
        .collect();
    files.sort();
    files
}

#[test]
fn file_system_step_and_how_to_run_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let out = ok(&quickstart(dir.path(), &[]));
    assert!(
        out.starts_with("1. File system: the key ring is in "),
        "{out}"
    );
    assert!(out.contains("   protected:   CfDJ8"), "{out}");
    assert!(
        out.contains("   unprotected: Hello, Data Protection\n"),
        "{out}"
    );
    assert!(out.contains("1 key(s)"), "{out}");
    assert!(
        out.contains("set DATAPROTECTION_BLOB_URL")
            && out.contains("DATAPROTECTION_KEYVAULT_KEY_ID"),
        "{out}"
    );
    assert!(!out.contains("2. Azure"), "{out}");
    let files = key_files(dir.path());
    assert_eq!(files.len(), 1, "{files:?}");

    // A second run reuses the key ring.
    let again = ok(&quickstart(dir.path(), &[]));
    assert!(again.contains("1 key(s)"), "{again}");
    assert_eq!(key_files(dir.path()), files);
}

#[tokio::test(flavor = "multi_thread")]
async fn azure_step_against_azurite_and_the_key_vault_emulator() {
    let az = Azurite::shared().unwrap();
    let (container, blob_url) = az.fresh_blob("quickstart", "keys.xml").await.unwrap();
    let blob_url = blob_url.to_string();
    let emulator = KeyVaultEmulator::start(EmulatorOptions::default())
        .await
        .unwrap();
    let kid = emulator.create_key("quickstart", 2048).await.unwrap();
    let key_url = format!("{}/keys/quickstart", emulator.base_url());
    let ca = tempfile::NamedTempFile::new().unwrap().into_temp_path();
    emulator.write_ca_cert(&ca).unwrap();
    let identity = vec![
        ("IDENTITY_ENDPOINT", emulator.msi_endpoint_http().unwrap()),
        ("IDENTITY_HEADER", emulator.identity_header().to_string()),
        ("SSL_CERT_FILE", ca.to_string_lossy().into_owned()),
    ];
    let dir = tempfile::tempdir().unwrap();

    // Blob + vault: the production configuration.
    let mut envs = identity.clone();
    envs.push(("DATAPROTECTION_BLOB_URL", blob_url.clone()));
    envs.push(("DATAPROTECTION_KEYVAULT_KEY_ID", key_url.clone()));
    let run = |envs: Vec<(&'static str, String)>| {
        let dir = dir.path().to_owned();
        tokio::task::spawn_blocking(move || quickstart(&dir, &envs))
    };
    let out = ok(&run(envs.clone()).await.unwrap());
    assert!(out.contains("\n2. Azure\n"), "{out}");
    assert!(
        out.contains("(SAS)") && !out.contains("sig="),
        "no SAS printed: {out}"
    );
    assert!(
        out.contains(&format!("wrapped by the Key Vault key {key_url}")),
        "{out}"
    );
    assert_eq!(
        out.matches("unprotected: Hello, Data Protection").count(),
        2,
        "{out}"
    );
    let ring = download(az, &container).await;
    assert!(ring.contains("AzureKeyVaultXmlDecryptor"), "{ring}");
    assert!(ring.contains(&format!("<kid>{kid}</kid>")), "{ring}");
    assert!(!ring.contains("<masterKey"), "{ring}");
    // Again: the wrapped key is unwrapped and reused.
    let again = ok(&run(envs).await.unwrap());
    assert_eq!(again.matches("1 key(s)").count(), 2, "{again}");
    assert_eq!(download(az, &container).await, ring);

    // The blob alone, in a new blob: keys stored unencrypted.
    let plain_url = az
        .blob_sas_url(
            &container,
            "plain.xml",
            "racwd",
            OffsetDateTime::now_utc() + Duration::hours(1),
        )
        .unwrap()
        .to_string();
    let out = ok(&run(vec![("DATAPROTECTION_BLOB_URL", plain_url)])
        .await
        .unwrap());
    assert!(out.contains("stored unencrypted"), "{out}");
    assert_eq!(
        out.matches("unprotected: Hello, Data Protection").count(),
        2,
        "{out}"
    );

    // The vault alone: keys wrapped, in a directory.
    let mut envs = identity;
    envs.push(("DATAPROTECTION_KEYVAULT_KEY_ID", key_url));
    let out = ok(&run(envs).await.unwrap());
    assert!(
        out.contains("keyvault (set DATAPROTECTION_BLOB_URL"),
        "{out}"
    );
    let wrapped = key_files(&dir.path().join("keyvault"));
    assert_eq!(wrapped.len(), 1);
    let xml = std::fs::read_to_string(dir.path().join("keyvault").join(&wrapped[0])).unwrap();
    assert!(xml.contains("AzureKeyVaultXmlDecryptor"), "{xml}");
}

async fn download(az: &Azurite, container: &str) -> String {
    az.download_text(container, "keys.xml").await.unwrap()
}
