//! Keys protected with Windows DPAPI / DPAPI-NG: reported as Windows-only,
//! preserved, and never a reason to treat the ring as empty or add a key.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use dataprotection::clock::ManualClock;
use dataprotection::payload::key_id_bytes;
use dataprotection::repository::{InMemoryXmlRepository, XmlRepository};
use dataprotection::xml::Element;
use dataprotection::{DataProtectionProvider, Error, KeyManager};
use uuid::Uuid;

const WINDOWS_MESSAGE: &str = "protected with Windows DPAPI: only readable on Windows";

/// A key as .NET writes it with `ProtectKeysWithDpapi` (format.md §6) or
/// `ProtectKeysWithDpapiNG` (same wrapper, DPAPI-NG decryptor type).
fn windows_key(id: Uuid, decryptor: &str, activation: &str) -> Element {
    Element::parse(&format!(
        r#"<key id="{id}" version="1">
  <creationDate>{activation}</creationDate>
  <activationDate>{activation}</activationDate>
  <expirationDate>2124-01-01T00:00:00Z</expirationDate>
  <descriptor deserializerType="Microsoft.AspNetCore.DataProtection.AuthenticatedEncryption.ConfigurationModel.AuthenticatedEncryptorDescriptorDeserializer, Microsoft.AspNetCore.DataProtection, Version=8.0.0.0, Culture=neutral, PublicKeyToken=adb9793829ddae60">
    <descriptor>
      <encryption algorithm="AES_256_CBC" />
      <validation algorithm="HMACSHA256" />
      <encryptedSecret decryptorType="Microsoft.AspNetCore.DataProtection.XmlEncryption.{decryptor}, Microsoft.AspNetCore.DataProtection, Version=8.0.0.0, Culture=neutral, PublicKeyToken=adb9793829ddae60" xmlns="http://schemas.asp.net/2015/03/dataProtection">
        <encryptedKey xmlns="">
          <!-- This key is encrypted with Windows DPAPI. -->
          <value>AQAAANCMnd8BFdERjHoAwE/Cl+sBAAAA</value>
        </encryptedKey>
      </encryptedSecret>
    </descriptor>
  </descriptor>
</key>"#
    ))
    .unwrap()
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

#[tokio::test]
async fn a_ring_of_only_dpapi_keys_is_reported_not_replaced() {
    for decryptor in ["DpapiXmlDecryptor", "DpapiNGXmlDecryptor"] {
        let repo = Arc::new(InMemoryXmlRepository::default());
        let key = windows_key(Uuid::new_v4(), decryptor, "2024-01-01T00:00:00Z");
        repo.store_element(&key, "k").await.unwrap();
        let err = DataProtectionProvider::builder()
            .repository(repo.clone())
            .build()
            .await
            .and_then(|p| p.create_protector("p").protect(b"x").map(|_| ()))
            .unwrap_err();
        let message = chain(&err);
        assert!(message.contains(WINDOWS_MESSAGE), "{decryptor}: {message}");
        // Preserved as it was, and no key added.
        assert_eq!(repo.get_all_elements().await.unwrap(), vec![key]);
    }
}

#[tokio::test]
async fn an_older_dpapi_key_is_kept_while_another_key_serves() {
    let repo = Arc::new(InMemoryXmlRepository::default());
    let dpapi_id = Uuid::new_v4();
    let dpapi = windows_key(dpapi_id, "DpapiXmlDecryptor", "2000-01-01T00:00:00Z");
    repo.store_element(&dpapi, "old").await.unwrap();
    let now = time::OffsetDateTime::now_utc();
    // Created (and so propagated) three days ago.
    let created = now - time::Duration::days(3);
    KeyManager::new(repo.clone(), None)
        .with_clock(Arc::new(ManualClock::new(created)))
        .create_key(created, now + time::Duration::days(90))
        .await
        .unwrap();
    let provider = DataProtectionProvider::builder()
        .repository(repo.clone())
        .build()
        .await
        .unwrap();
    let protector = provider.create_protector("p");
    let mut payload = protector.protect(b"hello").unwrap();
    assert_eq!(protector.unprotect_async(&payload).await.unwrap(), b"hello");

    // The DPAPI key is still stored next to the new one.
    let stored = repo.get_all_elements().await.unwrap();
    assert_eq!(stored.len(), 2);
    assert_eq!(stored[0], dpapi);
    let ring = provider.key_ring().unwrap();
    assert!(ring.keys().iter().any(|k| k.key.id() == dpapi_id));

    // A payload of the DPAPI key says why it cannot be read.
    payload[4..20].copy_from_slice(&key_id_bytes(&dpapi_id));
    let err = protector.unprotect_async(&payload).await.unwrap_err();
    assert!(chain(&err).contains(WINDOWS_MESSAGE), "{}", chain(&err));
    assert!(!matches!(err, Error::KeyNotFound { .. }));
}
