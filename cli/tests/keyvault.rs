//! `dpkeys --keyvault-key` against the Key Vault emulator over HTTPS, with
//! the real managed-identity credential reading the emulator's token endpoint.
#![allow(clippy::unwrap_used)]

use std::process::{Command, Output};

use keyvault_emulator::{EmulatorOptions, KeyVaultEmulator, Operation};

struct Env {
    emulator: KeyVaultEmulator,
    key_id: String,
    ca: tempfile::TempPath,
    dir: tempfile::TempDir,
}

impl Env {
    async fn start() -> Env {
        let emulator = KeyVaultEmulator::start(EmulatorOptions::default())
            .await
            .unwrap();
        let kid = emulator.create_key("dataprotection", 2048).await.unwrap();
        // The versionless key URL, as an operator would configure it.
        let key_id = kid.rsplit_once('/').unwrap().0.to_string();
        let ca = tempfile::NamedTempFile::new().unwrap().into_temp_path();
        emulator.write_ca_cert(&ca).unwrap();
        Env {
            emulator,
            key_id,
            ca,
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn dpkeys(&self, args: &[&str], stdin: Option<&[u8]>) -> Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_dpkeys"));
        cmd.arg("--dir")
            .arg(self.dir.path())
            .args(["--app-name", "kv-app", "--keyvault-key", &self.key_id])
            .args(args)
            .env(
                "IDENTITY_ENDPOINT",
                self.emulator.msi_endpoint_http().unwrap(),
            )
            .env("IDENTITY_HEADER", self.emulator.identity_header())
            .env("SSL_CERT_FILE", &self.ca)
            .env_remove("AZURE_FEDERATED_TOKEN_FILE")
            .env_remove("AZURE_CLIENT_SECRET");
        match stdin {
            None => cmd.output().unwrap(),
            Some(input) => {
                use std::io::Write;
                let mut child = cmd
                    .stdin(std::process::Stdio::piped())
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .unwrap();
                child.stdin.take().unwrap().write_all(input).unwrap();
                child.wait_with_output().unwrap()
            }
        }
    }
}

fn xml_files(env: &Env) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(env.dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "xml"))
        .collect()
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "dpkeys failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn protect_unprotect_and_list_with_key_vault() {
    let env = Env::start().await;
    let payload = ok(&env.dpkeys(&["protect", "--purpose", "cookies", "vault secret"], None));
    assert!(payload.starts_with("CfDJ8"));
    let plaintext = ok(&env.dpkeys(
        &["unprotect", "--purpose", "cookies"],
        Some(payload.as_bytes()),
    ));
    assert_eq!(plaintext, "vault secret");
    assert!(env.emulator.count(Operation::WrapKey) >= 1);
    assert!(
        env.emulator.count(Operation::UnwrapKey) >= 1,
        "the second process unwrapped the key"
    );

    // The stored key is wrapped: .NET's decryptor type, a versioned kid, and
    // no master key in clear.
    let files = xml_files(&env);
    assert_eq!(files.len(), 1);
    let xml = std::fs::read_to_string(&files[0]).unwrap();
    assert!(xml.contains("decryptorType=\"Azure.Extensions.AspNetCore.DataProtection.Keys.AzureKeyVaultXmlDecryptor, Azure.Extensions.AspNetCore.DataProtection.Keys"), "{xml}");
    assert!(
        xml.contains(&format!("<kid>{}/", env.key_id)),
        "versioned kid: {xml}"
    );
    assert!(!xml.contains("<masterKey"), "no clear master key: {xml}");

    let listed: serde_json::Value =
        serde_json::from_str(&ok(&env.dpkeys(&["keys", "list", "--json"], None))).unwrap();
    let keys = listed.as_array().unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0]["canDecrypt"], true);
    assert_eq!(keys[0]["encryptedAtRest"], true);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_vault_fails_clearly_and_creates_no_key() {
    let env = Env::start().await;
    let payload = ok(&env.dpkeys(&["protect", "x"], None));
    // Disable the vault key: unwrapping fails. A new process must not make a key.
    let version = env
        .emulator
        .key_versions("dataprotection")
        .unwrap()
        .pop()
        .unwrap();
    env.emulator
        .set_key_enabled("dataprotection", Some(&version), false)
        .unwrap();
    let out = env.dpkeys(&["unprotect"], Some(payload.as_bytes()));
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("key decryption failure"), "{stderr}");
    assert!(
        !stderr.to_lowercase().contains("bearer "),
        "no token in messages: {stderr}"
    );
    let out = env.dpkeys(&["protect", "y"], None);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(xml_files(&env).len(), 1, "no key was created");
}

#[test]
fn a_bad_key_id_is_an_operation_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_dpkeys"))
        .args([
            "--keyvault-key",
            "https://example.invalid/secrets/x",
            "keys",
            "list",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("Key Vault"));
}
