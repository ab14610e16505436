//! Loading certificates: PEM, PFX (modern and legacy), App Service's thumbprint directory.
#![allow(clippy::unwrap_used)]

mod common;

use common::{cert_only, cert_with_key, data};
use dataprotection_x509::{
    APP_SERVICE_CERTS_PATH_VAR, Certificate, X509Error, normalize_thumbprint,
};

const PASSWORD: &str = "test-only-password";

#[test]
fn pem_with_and_without_key() {
    let with_key = cert_with_key(1);
    assert!(with_key.has_private_key());
    let only = cert_only(1);
    assert!(!only.has_private_key());
    assert_eq!(with_key.thumbprint(), only.thumbprint());
    assert_eq!(with_key.thumbprint().len(), 40);
    assert!(with_key.subject().contains("test-only certificate 1"));
    assert!(with_key.not_after() > with_key.not_before());
    // Debug names the certificate, never key material.
    let debug = format!("{with_key:?}");
    assert!(debug.contains(with_key.thumbprint()) && debug.contains("has_private_key: true"));
    assert!(!debug.contains("BEGIN"));
}

#[test]
fn pem_key_of_another_certificate_is_refused() {
    let err = Certificate::from_pem_files(data("test-only-cert1.pem"), data("test-only-key2.pem"))
        .unwrap_err();
    assert!(matches!(err, X509Error::KeyMismatch { .. }), "{err:?}");
}

#[test]
fn pkcs1_rsa_private_key_pem_is_read() {
    // "RSA PRIVATE KEY" (PKCS#1), as older tools write it.
    let pem = std::fs::read_to_string(data("test-only-key1-pkcs1.pem")).unwrap();
    assert!(pem.contains("BEGIN RSA PRIVATE KEY"));
    let cert = Certificate::from_pem_files(
        data("test-only-cert1.pem"),
        data("test-only-key1-pkcs1.pem"),
    )
    .unwrap();
    assert!(cert.has_private_key());
}

#[test]
fn modern_and_legacy_pfx() {
    let modern = Certificate::from_pkcs12_file(data("test-only-cert1.pfx"), PASSWORD).unwrap();
    // 3DES key bag, RC2-40 certificate bag, SHA-1 MAC (openssl pkcs12 -export -legacy).
    let legacy =
        Certificate::from_pkcs12_file(data("test-only-cert1-legacy.pfx"), PASSWORD).unwrap();
    assert!(modern.has_private_key() && legacy.has_private_key());
    assert_eq!(modern.thumbprint(), cert_only(1).thumbprint());
    assert_eq!(legacy.thumbprint(), cert_only(1).thumbprint());
}

#[test]
fn non_positive_serial_numbers_are_read() {
    let zero =
        Certificate::from_pkcs12_file(data("test-only-serial0-legacy.pfx"), PASSWORD).unwrap();
    assert!(zero.has_private_key());
    let negative = Certificate::from_pem_files(
        data("test-only-cert-negative-serial.pem"),
        data("test-only-key-negative-serial.pem"),
    )
    .unwrap();
    assert!(negative.has_private_key());
}

#[test]
fn wrong_password_says_so_without_the_password() {
    let err = Certificate::from_pkcs12_file(data("test-only-cert1-legacy.pfx"), "wrong-guess")
        .unwrap_err();
    let message = err.to_string();
    assert!(matches!(err, X509Error::InvalidPkcs12 { .. }), "{err:?}");
    assert!(message.contains("wrong password"), "{message}");
    assert!(!message.contains("wrong-guess"), "{message}");
}

#[test]
fn garbage_is_an_error_not_a_panic() {
    for bytes in [
        &b""[..],
        b"\x30\x03\x02\x01\x03",
        b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    ] {
        assert!(Certificate::from_pkcs12(bytes, "").is_err());
        assert!(Certificate::from_der(bytes).is_err());
        if let Ok(text) = std::str::from_utf8(bytes) {
            assert!(Certificate::from_pem(text).is_err());
        }
    }
}

#[test]
fn from_file_detects_the_format() {
    let pem = Certificate::from_file(data("test-only-cert1.pem"), None).unwrap();
    assert!(!pem.has_private_key());
    let pfx = Certificate::from_file(data("test-only-cert1.pfx"), Some(PASSWORD)).unwrap();
    assert!(pfx.has_private_key());
    let no_password = Certificate::from_file(data("test-only-cert2-nopass.p12"), None).unwrap();
    assert_eq!(no_password.thumbprint(), cert_only(2).thumbprint());
}

#[test]
fn thumbprints_are_normalized_and_checked() {
    let t = cert_only(1).thumbprint().to_string();
    assert_eq!(normalize_thumbprint(&t.to_lowercase()).unwrap(), t);
    let with_colons: Vec<String> = t
        .as_bytes()
        .chunks(2)
        .map(|c| String::from_utf8(c.to_vec()).unwrap())
        .collect();
    assert_eq!(normalize_thumbprint(&with_colons.join(":")).unwrap(), t);
    for bad in ["", "abc", &"G".repeat(40), &"A".repeat(41)] {
        assert!(matches!(
            normalize_thumbprint(bad),
            Err(X509Error::InvalidThumbprint { .. })
        ));
    }
}

/// A `/var/ssl/private`-style directory: `{THUMBPRINT}.p12`, no password.
fn app_service_dir() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let thumbprint = cert_only(2).thumbprint().to_string();
    std::fs::copy(
        data("test-only-cert2-nopass.p12"),
        dir.path().join(format!("{thumbprint}.p12")),
    )
    .unwrap();
    (dir, thumbprint)
}

#[test]
fn app_service_directory_by_thumbprint() {
    let (dir, thumbprint) = app_service_dir();
    let cert =
        Certificate::from_thumbprint_directory(dir.path(), &thumbprint.to_lowercase()).unwrap();
    assert_eq!(cert.thumbprint(), thumbprint);
    assert!(cert.has_private_key());
    let other = cert_only(1).thumbprint().to_string();
    let err = Certificate::from_thumbprint_directory(dir.path(), &other).unwrap_err();
    assert!(
        matches!(&err, X509Error::CertificateNotFound { thumbprint, .. } if *thumbprint == other),
        "{err:?}"
    );
}

/// The environment variable is set for a child process running
/// `app_service_child`, since tests must not change their own environment.
#[test]
fn app_service_directory_from_environment_variable() {
    let (dir, thumbprint) = app_service_dir();
    let output = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "app_service_child", "--ignored", "--nocapture"])
        .env(APP_SERVICE_CERTS_PATH_VAR, dir.path())
        .env("X509_TEST_EXPECTED_THUMBPRINT", &thumbprint)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("1 passed"), "{stdout}");
}

#[test]
#[ignore = "run by app_service_directory_from_environment_variable with the environment set"]
fn app_service_child() {
    let expected = std::env::var("X509_TEST_EXPECTED_THUMBPRINT").unwrap();
    let cert = Certificate::from_app_service(&expected).unwrap();
    assert_eq!(cert.thumbprint(), expected);
    assert!(cert.has_private_key());
}
