//! `dpkeys --certificate` / `--certificate-thumbprint`, `rewrap` between Key
//! Vault and certificates and from one certificate to another, and
//! `doctor`'s certificate checks.
#![allow(clippy::unwrap_used)]

mod ops_common;

use std::path::PathBuf;

use ops_common::*;

const PASSWORD_VAR: &str = "DPKEYS_TEST_PFX_PASSWORD";

/// `x509/tests/data/{name}` (the test-only certificates of dataprotection-x509).
fn cert_file(name: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../x509/tests/data")
        .join(name)
        .to_str()
        .unwrap()
        .to_string()
}

/// `certificate.pem` + key in one file.
fn combined_pem(dir: &std::path::Path, n: u8) -> String {
    let text = std::fs::read_to_string(cert_file(&format!("test-only-cert{n}.pem"))).unwrap()
        + &std::fs::read_to_string(cert_file(&format!("test-only-key{n}.pem"))).unwrap();
    let path = dir.join(format!("combined{n}.pem"));
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_string()
}

fn thumbprint(n: u8) -> String {
    dataprotection_x509::Certificate::from_pem_file(cert_file(&format!("test-only-cert{n}.pem")))
        .unwrap()
        .thumbprint()
        .to_string()
}

fn password_env() -> Vec<(String, String)> {
    vec![(PASSWORD_VAR.to_string(), "test-only-password".to_string())]
}

fn ring_text(dir: &std::path::Path) -> String {
    let mut all = String::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let path = e.unwrap().path();
        if path.extension().is_some_and(|x| x == "xml") {
            all.push_str(&std::fs::read_to_string(path).unwrap());
        }
    }
    all
}

/// A fresh directory ring holding one payload protected with certificate 1
/// (a PEM with its key): the ring, the scratch directory holding the PEM,
/// the PEM's path and the payload.
fn protected_with_certificate_1(
    plaintext: &str,
) -> (tempfile::TempDir, tempfile::TempDir, String, String) {
    let ring = tempfile::tempdir().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let pem1 = combined_pem(tmp.path(), 1);
    let payload = dpkeys(
        &[
            "--dir",
            ring.path().to_str().unwrap(),
            "--certificate",
            &pem1,
            "protect",
            plaintext,
        ],
        &[],
        None,
    )
    .line();
    (ring, tmp, pem1, payload)
}

#[test]
fn protect_with_pem_read_with_pfx_and_name_a_missing_certificate() {
    let (ring, tmp, _, payload) = protected_with_certificate_1("hello");
    let dir = ring.path().to_str().unwrap();
    let text = ring_text(ring.path());
    assert!(
        text.contains("EncryptedXmlDecryptor") && !text.contains("<masterKey"),
        "{text}"
    );

    // The same certificate from a legacy PFX whose password is in a variable.
    let pfx = cert_file("test-only-cert1-legacy.pfx");
    let out = dpkeys(
        &[
            "--dir",
            dir,
            "--certificate",
            &pfx,
            "--certificate-password-env",
            PASSWORD_VAR,
            "--no-auto-generate",
            "unprotect",
        ],
        &password_env(),
        Some(&payload),
    );
    assert_eq!(out.code(0), "hello");

    // Another certificate only: the error names the one needed; no key is added.
    let pem2 = combined_pem(tmp.path(), 2);
    let out = dpkeys(
        &["--dir", dir, "--certificate", &pem2, "unprotect"],
        &[],
        Some(&payload),
    );
    out.fails_naming(&thumbprint(1));
    let keys: Vec<_> = std::fs::read_dir(ring.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".xml"))
        .collect();
    assert_eq!(keys.len(), 1, "{keys:?}");

    // A password variable that is not set is a clear error.
    let out = dpkeys(
        &[
            "--dir",
            dir,
            "--certificate",
            &pfx,
            "--certificate-password-env",
            "DPKEYS_TEST_UNSET_VAR",
            "unprotect",
        ],
        &[],
        Some(&payload),
    );
    out.fails_naming("DPKEYS_TEST_UNSET_VAR");
}

#[test]
fn app_service_thumbprint_from_a_directory_in_the_environment() {
    let ring = tempfile::tempdir().unwrap();
    let certs = tempfile::tempdir().unwrap();
    let t = thumbprint(2);
    std::fs::copy(
        cert_file("test-only-cert2-nopass.p12"),
        certs.path().join(format!("{t}.p12")),
    )
    .unwrap();
    let envs = vec![(
        "WEBSITE_PRIVATE_CERTS_PATH".to_string(),
        certs.path().to_str().unwrap().to_string(),
    )];
    let dir = ring.path().to_str().unwrap();
    let payload = dpkeys(
        &[
            "--dir",
            dir,
            "--certificate-thumbprint",
            &t.to_lowercase(),
            "protect",
            "from app service",
        ],
        &envs,
        None,
    )
    .line();
    assert!(ring_text(ring.path()).contains("EncryptedXmlDecryptor"));
    // Options work after the subcommand too.
    let out = dpkeys(
        &["unprotect", "--dir", dir, "--certificate-thumbprint", &t],
        &envs,
        Some(&payload),
    );
    assert_eq!(out.code(0), "from app service");
    // An unknown thumbprint is a clear error.
    let out = dpkeys(
        &[
            "--dir",
            dir,
            "--certificate-thumbprint",
            &thumbprint(1),
            "unprotect",
        ],
        &envs,
        Some(&payload),
    );
    out.fails_naming("no certificate with thumbprint");
}

#[test]
fn rewrap_from_one_certificate_to_another() {
    let (ring, _tmp, pem1, payload) = protected_with_certificate_1("moved");
    let dir = ring.path().to_str().unwrap();
    let pfx2 = cert_file("test-only-cert1.pfx").replace("cert1.pfx", "cert2-nopass.p12");
    let out = dpkeys(
        &[
            "--dir",
            dir,
            "--certificate",
            &pem1,
            "rewrap",
            "--to-certificate",
            &pfx2,
        ],
        &[],
        None,
    );
    let line = out.code(0).to_string();
    assert!(
        line.starts_with("rewrapped 1 keys with certificate ") && line.contains(&thumbprint(2)),
        "{line}"
    );
    // Only certificate 2 is needed now.
    let out = dpkeys(
        &[
            "--dir",
            dir,
            "--certificate",
            &pfx2,
            "--no-auto-generate",
            "unprotect",
        ],
        &[],
        Some(&payload),
    );
    assert_eq!(out.code(0), "moved");
    // Running again finds nothing to do.
    let out = dpkeys(
        &[
            "--dir",
            dir,
            "--certificate",
            &pem1,
            "rewrap",
            "--to-certificate",
            &pfx2,
        ],
        &[],
        None,
    );
    assert!(out.code(0).contains("1 already wrapped"), "{}", out.stdout);
    // A target without its private key is refused before anything is written.
    let out = dpkeys(
        &[
            "--dir",
            dir,
            "--certificate",
            &pfx2,
            "rewrap",
            "--to-certificate",
            &cert_file("test-only-cert1.pem"),
        ],
        &[],
        None,
    );
    out.fails_naming("no private key");
}

#[tokio::test(flavor = "multi_thread")]
async fn rewrap_between_key_vault_and_a_certificate() {
    let vault = Vault::start("cert-ring").await;
    let envs = vault.envs();
    let ring = tempfile::tempdir().unwrap();
    let dir = ring.path().to_str().unwrap().to_string();
    let url = vault.key_url.clone();
    let pfx1 = cert_file("test-only-cert1.pfx");
    blocking(move || {
        let payload = dpkeys(
            &["--dir", &dir, "--keyvault-key", &url, "protect", "kv"],
            &envs,
            None,
        )
        .line();
        // Key Vault -> certificate.
        let mut e = envs.clone();
        e.extend(password_env());
        let out = dpkeys(
            &[
                "--dir",
                &dir,
                "--keyvault-key",
                &url,
                "rewrap",
                "--to-certificate",
                &pfx1,
                "--to-certificate-password-env",
                PASSWORD_VAR,
            ],
            &e,
            None,
        );
        assert!(
            out.code(0).starts_with("rewrapped 1 keys with certificate"),
            "{}",
            out.stdout
        );
        let out = dpkeys(
            &[
                "--dir",
                &dir,
                "--certificate",
                &pfx1,
                "--certificate-password-env",
                PASSWORD_VAR,
                "unprotect",
            ],
            &e,
            Some(&payload),
        );
        assert_eq!(out.code(0), "kv");
        assert!(kids(&ring_text(std::path::Path::new(&dir))).is_empty());
        // Certificate -> Key Vault.
        let out = dpkeys(
            &[
                "--dir",
                &dir,
                "--certificate",
                &pfx1,
                "--certificate-password-env",
                PASSWORD_VAR,
                "rewrap",
                "--keyvault-key",
                &url,
            ],
            &e,
            None,
        );
        assert!(
            out.code(0).starts_with("rewrapped 1 keys with "),
            "{}",
            out.stdout
        );
        assert_eq!(kids(&ring_text(std::path::Path::new(&dir))).len(), 1);
        let out = dpkeys(
            &["--dir", &dir, "--keyvault-key", &url, "unprotect"],
            &envs,
            Some(&payload),
        );
        assert_eq!(out.code(0), "kv");
    })
    .await;
}

#[test]
fn doctor_reports_a_missing_private_key() {
    let ring = tempfile::tempdir().unwrap();
    let dir = ring.path().to_str().unwrap();
    let cert_only = cert_file("test-only-cert1.pem");
    let out = dpkeys(
        &["--dir", dir, "--certificate", &cert_only, "doctor"],
        &[],
        None,
    );
    assert!(
        out.stdout.contains("has no private key") && out.stdout.contains(&thumbprint(1)),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("valid until"), "{}", out.stdout);
}

#[tokio::test(flavor = "multi_thread")]
async fn key_vault_certificate_through_the_secrets_api() {
    let vault = Vault::start("kv-cert").await;
    let der = dataprotection_x509::Certificate::from_pem_file(cert_file("test-only-cert2.pem"))
        .unwrap()
        .der()
        .to_vec();
    let pfx = std::fs::read(cert_file("test-only-cert2-nopass.p12")).unwrap();
    let cert_id = vault.emulator.import_certificate("dp-cert", &pfx, &der);
    // A PEM secret works too (contentType application/x-pem-file).
    let pem = std::fs::read_to_string(cert_file("test-only-cert2.pem")).unwrap()
        + &std::fs::read_to_string(cert_file("test-only-key2.pem")).unwrap();
    let pem_id = vault
        .emulator
        .set_secret("dp-cert-pem", &pem, Some("application/x-pem-file"));
    let envs = vault.envs();
    let ring = tempfile::tempdir().unwrap();
    let dir = ring.path().to_str().unwrap().to_string();
    let requests_before = vault
        .emulator
        .count(keyvault_emulator::Operation::GetSecret);
    blocking(move || {
        let payload = dpkeys(
            &[
                "--dir",
                &dir,
                "--keyvault-certificate",
                &cert_id,
                "protect",
                "from key vault",
            ],
            &envs,
            None,
        )
        .line();
        let text = ring_text(std::path::Path::new(&dir));
        assert!(text.contains("EncryptedXmlDecryptor"), "{text}");
        // The same certificate from the PEM secret, versionless URL.
        let versionless = pem_id.rsplit_once('/').unwrap().0.to_string();
        let out = dpkeys(
            &[
                "--dir",
                &dir,
                "--keyvault-certificate",
                &versionless,
                "unprotect",
            ],
            &envs,
            Some(&payload),
        );
        assert_eq!(out.code(0), "from key vault");
        // A certificate that does not exist: a clear error, nothing written.
        let missing = cert_id.replace("/certificates/dp-cert/", "/certificates/nope/");
        let out = dpkeys(
            &[
                "--dir",
                &dir,
                "--keyvault-certificate",
                &missing,
                "unprotect",
            ],
            &envs,
            Some(&payload),
        );
        out.fails_naming("nope");
    })
    .await;
    assert!(
        vault
            .emulator
            .count(keyvault_emulator::Operation::GetSecret)
            >= requests_before + 3
    );
}
