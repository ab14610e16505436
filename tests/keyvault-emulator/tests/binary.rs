//! The `keyvault-emulator` binary, driven by the official KeyClient + ManagedIdentityCredential.
#![allow(clippy::unwrap_used, missing_docs)]

use std::io::{BufRead as _, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};

use azure_identity::ManagedIdentityCredential;
use azure_security_keyvault_keys::models::{
    CreateKeyParameters, EncryptionAlgorithm, Key, KeyOperationParameters, KeyType,
};
use azure_security_keyvault_keys::{KeyClient, KeyClientOptions, ResourceExt};
use keyvault_emulator::isolated::{self, MsiScheme};

fn params(alg: EncryptionAlgorithm, value: &[u8]) -> KeyOperationParameters {
    KeyOperationParameters {
        algorithm: Some(alg),
        value: Some(value.to_vec()),
        ..Default::default()
    }
}

/// Plain spawn: `--port 0 --ca-cert-out PATH`, first stdout line is the URL, CA file written.
#[test]
fn binary_prints_url_and_writes_ca() {
    let ca = std::env::temp_dir().join(format!("kvemu-bin-ca-{}.pem", std::process::id()));
    let mut child = Command::new(env!("CARGO_BIN_EXE_keyvault-emulator"))
        .args(["--port", "0", "--ca-cert-out"])
        .arg(&ca)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let url = lines.next().unwrap().unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    let port: u16 = url
        .strip_prefix("https://127.0.0.1:")
        .unwrap()
        .parse()
        .unwrap();
    assert_ne!(port, 0);
    let pem = std::fs::read_to_string(&ca).unwrap();
    assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"));
    let _ = std::fs::remove_file(&ca);
}

/// Full run: the child test process spawns the binary on the MSI port it was given, then uses
/// KeyClient with ManagedIdentityCredential against it, then kills it.
#[test]
fn binary_serves_the_official_client() {
    isolated::run(
        "binary_serves_the_official_client",
        MsiScheme::Http,
        || async {
            let endpoint = std::env::var("IDENTITY_ENDPOINT").unwrap();
            let msi_port = endpoint
                .trim_start_matches("http://127.0.0.1:")
                .trim_end_matches("/msi/token")
                .to_owned();
            let ca = PathBuf::from(std::env::var("SSL_CERT_FILE").unwrap());
            let mut child = Command::new(env!("CARGO_BIN_EXE_keyvault-emulator"))
                .args(["--port", "0", "--http-port", &msi_port, "--key", "preset"])
                .args([
                    "--identity-header",
                    &std::env::var("IDENTITY_HEADER").unwrap(),
                ])
                .arg("--ca-cert-out")
                .arg(&ca)
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
                .unwrap();
            let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
            let url = lines.next().unwrap().unwrap();
            let rest: Vec<String> = lines.by_ref().take(4).map(Result::unwrap).collect();
            assert!(url.starts_with("https://127.0.0.1:"), "{url}");
            assert!(
                rest.iter()
                    .any(|l| l.starts_with(&format!("KID={url}/keys/preset/"))),
                "{rest:?}"
            );

            let client = KeyClient::new(
                &url,
                ManagedIdentityCredential::new(None).unwrap(),
                Some(KeyClientOptions {
                    verify_challenge_resource: Some(false),
                    ..Default::default()
                }),
            )
            .unwrap();
            let dek = [0x11u8; 32];
            let wrapped = client
                .wrap_key(
                    "preset",
                    params(EncryptionAlgorithm::RsaOaep256, &dek)
                        .try_into()
                        .unwrap(),
                    None,
                )
                .await
                .unwrap()
                .into_model()
                .unwrap();
            let version = wrapped.resource_id().unwrap().version.unwrap();
            let unwrapped = client
                .unwrap_key(
                    "preset",
                    &version,
                    params(EncryptionAlgorithm::RsaOaep256, &wrapped.result.unwrap())
                        .try_into()
                        .unwrap(),
                    None,
                )
                .await
                .unwrap()
                .into_model()
                .unwrap();
            assert_eq!(unwrapped.result.unwrap(), dek);
            let created: Key = client
                .create_key(
                    "fresh",
                    CreateKeyParameters {
                        kty: Some(KeyType::Rsa),
                        key_size: Some(4096),
                        ..Default::default()
                    }
                    .try_into()
                    .unwrap(),
                    None,
                )
                .await
                .unwrap()
                .into_model()
                .unwrap();
            assert_eq!(created.resource_id().unwrap().vault_url, url);

            child.kill().unwrap();
            child.wait().unwrap();
        },
    );
}
