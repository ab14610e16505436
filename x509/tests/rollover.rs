//! Providers with certificates: round trip, rollover with two certificates, and a
//! key whose certificate is missing (clear error, no new key).
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;

use common::{cert_only, cert_with_key};
use dataprotection::clock::{Clock, ManualClock};
use dataprotection::repository::{InMemoryXmlRepository, XmlRepository};
use dataprotection::xml::Format;
use dataprotection::{DataProtectionProvider, Error};
use dataprotection_x509::{CertificateBuilderExt, X509Error};
use time::Duration;
use time::macros::datetime;

async fn stored(repo: &Arc<InMemoryXmlRepository>) -> Vec<String> {
    repo.get_all_elements()
        .await
        .unwrap()
        .iter()
        .map(|e| e.to_xml(Format::Compact))
        .collect()
}

#[tokio::test]
async fn keys_are_stored_encrypted_to_the_certificate_and_read_back() {
    let repo = Arc::new(InMemoryXmlRepository::default());
    let provider = DataProtectionProvider::builder()
        .repository(repo.clone())
        .protect_keys_with_certificate(cert_with_key(1))
        .build()
        .await
        .unwrap();
    let payload = provider.create_protector("p").protect(b"hello").unwrap();
    let xml = stored(&repo).await;
    assert_eq!(xml.len(), 1);
    assert!(
        xml[0].contains("EncryptedXmlDecryptor") && !xml[0].contains("<value>"),
        "{}",
        xml[0]
    );

    // A fresh process with the same certificate reads the stored key.
    let again = DataProtectionProvider::builder()
        .repository(repo.clone())
        .protect_keys_with_certificate(cert_with_key(1))
        .build()
        .await
        .unwrap();
    assert_eq!(
        again
            .create_protector("p")
            .unprotect_async(&payload)
            .await
            .unwrap(),
        b"hello"
    );
    assert_eq!(stored(&repo).await.len(), 1);
}

#[tokio::test]
async fn rollover_with_two_certificates() {
    let repo = Arc::new(InMemoryXmlRepository::default());
    let clock = Arc::new(ManualClock::new(datetime!(2030-01-01 0:00 UTC)));
    let old = DataProtectionProvider::builder()
        .repository(repo.clone())
        .clock(clock.clone())
        .protect_keys_with_certificate(cert_with_key(1))
        .build()
        .await
        .unwrap();
    let old_payload = old.create_protector("p").protect(b"old").unwrap();

    // A day later: new keys go to certificate 2; certificate 1 still decrypts.
    clock.advance(Duration::days(1));
    let new = DataProtectionProvider::builder()
        .repository(repo.clone())
        .clock(clock.clone())
        .protect_keys_with_certificate(cert_only(2))
        .unprotect_keys_with_any_certificate([cert_with_key(2)])
        .unprotect_keys_with_any_certificate([cert_with_key(1)])
        .build()
        .await
        .unwrap();
    assert_eq!(
        new.create_protector("p")
            .unprotect_async(&old_payload)
            .await
            .unwrap(),
        b"old"
    );
    let now = clock.now();
    new.key_manager()
        .create_key(now, now + Duration::days(90))
        .await
        .unwrap();
    let xml = stored(&repo).await;
    assert_eq!(xml.len(), 2);
    let cert2 = base64_der(2);
    assert!(
        xml[1].contains(&cert2),
        "the new key is encrypted to certificate 2"
    );
    assert!(!xml[0].contains(&cert2));

    // Later, only certificate 2 is configured: the new key serves, the old
    // key's payload fails naming certificate 1, and nothing is written.
    clock.advance(Duration::days(3));
    let only2 = DataProtectionProvider::builder()
        .repository(repo.clone())
        .clock(clock.clone())
        .protect_keys_with_certificate(cert_with_key(2))
        .build()
        .await
        .unwrap();
    let protector = only2.create_protector("p");
    let fresh = protector.protect(b"new").unwrap();
    assert_eq!(protector.unprotect_async(&fresh).await.unwrap(), b"new");
    let err = protector.unprotect_async(&old_payload).await.unwrap_err();
    assert_not_configured(&err, 1);
    assert_eq!(stored(&repo).await.len(), 2);
}

#[tokio::test]
async fn missing_certificate_is_a_clear_error_and_creates_no_key() {
    let repo = Arc::new(InMemoryXmlRepository::default());
    DataProtectionProvider::builder()
        .repository(repo.clone())
        .protect_keys_with_certificate(cert_with_key(1))
        .build()
        .await
        .unwrap();
    assert_eq!(stored(&repo).await.len(), 1);

    let err = DataProtectionProvider::builder()
        .repository(repo.clone())
        .protect_keys_with_certificate(cert_with_key(2))
        .build()
        .await
        .and_then(|p| p.create_protector("p").protect(b"x").map(|_| ()))
        .unwrap_err();
    let message = chain(&err);
    assert!(message.contains(cert_only(1).thumbprint()), "{message}");
    assert!(message.contains("test-only certificate 1"), "{message}");
    assert_eq!(stored(&repo).await.len(), 1, "no key may be created");
}

fn base64_der(n: u8) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(cert_only(n).der())
}

fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        out.push_str(": ");
        out.push_str(&s.to_string());
        cur = s.source();
    }
    out
}

fn assert_not_configured(err: &Error, n: u8) {
    let message = chain(err);
    assert!(message.contains(cert_only(n).thumbprint()), "{message}");
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cur {
        if let Some(X509Error::CertificateNotConfigured { thumbprint, .. }) = e.downcast_ref() {
            assert_eq!(thumbprint, cert_only(n).thumbprint());
            return;
        }
        cur = e.source();
    }
    panic!("no CertificateNotConfigured in {message}");
}
