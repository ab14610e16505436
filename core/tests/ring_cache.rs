//! The provider's ring cache and loader: an unchanged ring is decided again
//! without being read, keys stored unencrypted get their encryptor on first
//! use, and failures keep their typed causes.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use async_trait::async_trait;
use dataprotection::clock::ManualClock;
use dataprotection::repository::{
    InMemoryXmlRepository, StorePrecondition, Version, XmlRepository,
};
use dataprotection::xml::Element;
use dataprotection::{DataProtectionProvider, Error, Result};
use time::{Duration, OffsetDateTime, macros::datetime};
use uuid::Uuid;

const START: OffsetDateTime = datetime!(2030-01-01 0:00 UTC);

/// An in-memory repository that counts whole reads and change checks, and
/// can be made to fail.
#[derive(Debug, Default)]
struct Counting {
    inner: InMemoryXmlRepository,
    reads: AtomicUsize,
    checks: AtomicUsize,
    failing: AtomicBool,
}

impl Counting {
    fn outage(&self) -> Result<()> {
        if self.failing.load(Ordering::SeqCst) {
            return Err(Error::repository(
                "injected outage",
                std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused"),
            ));
        }
        Ok(())
    }
}

#[async_trait]
impl XmlRepository for Counting {
    async fn get_all_elements(&self) -> Result<Vec<Element>> {
        Ok(self.get_all_elements_versioned().await?.0)
    }
    async fn get_all_elements_versioned(&self) -> Result<(Vec<Element>, Option<Version>)> {
        self.outage()?;
        self.reads.fetch_add(1, Ordering::SeqCst);
        self.inner.get_all_elements_versioned().await
    }
    async fn changed_since(&self, version: &Version) -> Result<bool> {
        self.outage()?;
        self.checks.fetch_add(1, Ordering::SeqCst);
        self.inner.changed_since(version).await
    }
    async fn store_element(&self, element: &Element, name: &str) -> Result<()> {
        self.inner.store_element(element, name).await
    }
    async fn store_element_if(
        &self,
        element: &Element,
        name: &str,
        still_needed: StorePrecondition<'_>,
    ) -> Result<bool> {
        self.inner
            .store_element_if(element, name, still_needed)
            .await
    }
    fn describe(&self) -> String {
        "counting".into()
    }
}

async fn provider(
    repo: Arc<Counting>,
    clock: Arc<ManualClock>,
    generate: bool,
) -> DataProtectionProvider {
    DataProtectionProvider::builder()
        .application_name("ring-cache")
        .repository(repo)
        .clock(clock)
        .auto_generate_keys(generate)
        .change_check_interval(None)
        .build()
        .await
        .unwrap()
}

#[tokio::test]
async fn an_unchanged_refresh_reads_nothing_but_decides_again() {
    let repo = Arc::new(Counting::default());
    let clock = Arc::new(ManualClock::new(START));
    let p = provider(repo.clone(), clock.clone(), true).await;
    let first = p.key_ring().unwrap().default_key_id().unwrap();

    // Nothing changed: the refresh asks the change check, reads nothing.
    let reads = repo.reads.load(Ordering::SeqCst);
    let checks = repo.checks.load(Ordering::SeqCst);
    p.refresh().await.unwrap();
    assert_eq!(repo.reads.load(Ordering::SeqCst), reads, "no read");
    assert_eq!(repo.checks.load(Ordering::SeqCst), checks + 1);
    assert_eq!(p.key_ring().unwrap().default_key_id(), Some(first));

    // A successor written now (a change: read once), active in ten days.
    let successor = p
        .key_manager()
        .create_key(START + Duration::days(10), START + Duration::days(100))
        .await
        .unwrap()
        .id();
    p.refresh().await.unwrap();
    let reads = repo.reads.load(Ordering::SeqCst);
    assert_eq!(p.key_ring().unwrap().default_key_id(), Some(first));

    // Time moves past its activation with the repository unchanged: the
    // default key changes without a read.
    clock.set(START + Duration::days(10) + Duration::hours(1));
    p.refresh().await.unwrap();
    assert_eq!(repo.reads.load(Ordering::SeqCst), reads, "no read");
    assert_eq!(p.key_ring().unwrap().default_key_id(), Some(successor));

    // Near the successor's expiry, still unchanged: the decision asks for a
    // key, which is created (and the ring read again after writing it).
    clock.set(START + Duration::days(99));
    let stored = repo.inner.get_all_elements().await.unwrap().len();
    p.refresh().await.unwrap();
    assert_eq!(
        repo.inner.get_all_elements().await.unwrap().len(),
        stored + 1,
        "one key created"
    );
    assert!(repo.reads.load(Ordering::SeqCst) > reads);
    let ring = p.key_ring().unwrap();
    assert_eq!(ring.keys().len(), 3);
    assert_eq!(ring.default_key_id(), Some(successor), "until it expires");
}

#[tokio::test]
async fn an_unchanged_refresh_during_an_outage_creates_no_key() {
    let repo = Arc::new(Counting::default());
    let clock = Arc::new(ManualClock::new(START));
    let p = provider(repo.clone(), clock.clone(), true).await;
    let stored = repo.inner.get_all_elements().await.unwrap().len();

    // Far past the default key's expiry a key would be due; the repository
    // fails: the refresh fails, keeps its typed cause, and creates nothing.
    repo.failing.store(true, Ordering::SeqCst);
    clock.set(START + Duration::days(200));
    let err = p.refresh().await.unwrap_err();
    assert!(matches!(err, Error::Repository { .. }), "{err:?}");
    let last = p.last_refresh_error().unwrap();
    assert!(matches!(*last, Error::Repository { .. }), "{last:?}");
    assert_eq!(last.to_string(), err.to_string());
    // The kept error is the original, its cause typed; the returned one is
    // a copy of it (errors are not `Clone`) whose cause reads the same.
    let mut cause = std::error::Error::source(&*last);
    let mut found = false;
    while let Some(c) = cause {
        if let Some(io) = c.downcast_ref::<std::io::Error>() {
            found = io.kind() == std::io::ErrorKind::ConnectionRefused;
        }
        cause = c.source();
    }
    assert!(found, "the io::Error is in the source chain of {last:?}");
    let copied = std::error::Error::source(&err).unwrap();
    assert_eq!(copied.to_string(), "refused");
    assert_eq!(repo.inner.get_all_elements().await.unwrap().len(), stored);

    // Back: the next refresh succeeds and clears the error.
    repo.failing.store(false, Ordering::SeqCst);
    p.refresh().await.unwrap();
    assert!(p.last_refresh_error().is_none());
}

#[tokio::test]
async fn keys_stored_unencrypted_get_their_encryptor_on_first_use() {
    let repo = Arc::new(Counting::default());
    let clock = Arc::new(ManualClock::new(START));
    let writer = provider(repo.clone(), clock.clone(), true).await;
    let old = writer.key_ring().unwrap().default_key_id().unwrap();
    let payload = writer.create_protector("p").protect(b"old").unwrap();
    let newer = writer
        .key_manager()
        .create_key(START + Duration::minutes(1), START + Duration::days(90))
        .await
        .unwrap()
        .id();
    clock.advance(Duration::days(3));

    // A fresh reader: only the default key's encryptor is made at load.
    let reader = provider(repo.clone(), clock.clone(), false).await;
    let ring = reader.key_ring().unwrap();
    assert_eq!(ring.default_key_id(), Some(newer));
    let status = |id: Uuid| {
        reader
            .key_ring()
            .unwrap()
            .keys()
            .into_iter()
            .find(|k| k.key.id() == id)
            .unwrap()
    };
    assert_eq!(status(newer).can_decrypt, Some(true));
    assert_eq!(status(old).can_decrypt, None, "not made at load");

    // The first payload under the old key is unprotected synchronously.
    let protector = reader.create_protector("p");
    assert_eq!(protector.unprotect(&payload).unwrap(), b"old");
    assert_eq!(status(old).can_decrypt, Some(true));
    assert_eq!(protector.unprotect(&payload).unwrap(), b"old");
}

fn planted_key(id: Uuid, algorithm: &str) -> Element {
    Element::parse(&format!(
        "<key id=\"{id}\" version=\"1\"><creationDate>2029-06-01T00:00:00Z</creationDate>\
         <activationDate>2029-06-01T00:00:00Z</activationDate>\
         <expirationDate>2029-09-01T00:00:00Z</expirationDate>\
         <descriptor deserializerType=\"Microsoft.AspNetCore.DataProtection.AuthenticatedEncryption.ConfigurationModel.AuthenticatedEncryptorDescriptorDeserializer, Microsoft.AspNetCore.DataProtection, Version=4.0.0.0, Culture=neutral, PublicKeyToken=adb9793829ddae60\">\
         <descriptor><encryption algorithm=\"{algorithm}\" /><validation algorithm=\"HMACSHA256\" />\
         <masterKey p4:requiresEncryption=\"true\" xmlns:p4=\"http://schemas.asp.net/2015/03/dataProtection\">\
         <value>AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=</value></masterKey></descriptor></descriptor></key>"
    ))
    .unwrap()
}

#[tokio::test]
async fn an_unusable_old_key_fails_on_first_use_with_its_typed_cause() {
    let repo = Arc::new(Counting::default());
    let bad = Uuid::new_v4();
    repo.inner
        .store_element(&planted_key(bad, "AES_999_CBC"), "bad")
        .await
        .unwrap();
    let clock = Arc::new(ManualClock::new(START));
    let p = provider(repo.clone(), clock, true).await;
    assert_ne!(p.key_ring().unwrap().default_key_id(), Some(bad));

    // A payload naming the expired, unusable key.
    let mut payload = vec![0x09, 0xF0, 0xC9, 0xF0];
    payload.extend_from_slice(&bad.to_bytes_le());
    payload.extend_from_slice(&[0u8; 64]);
    let protector = p.create_protector("p");
    for attempt in 0..2 {
        let err = protector.unprotect(&payload).unwrap_err();
        assert!(
            matches!(err, Error::KeyDecryption { .. }),
            "attempt {attempt}: {err:?}"
        );
        let source = std::error::Error::source(&err).unwrap();
        let cause = source.downcast_ref::<Arc<Error>>().unwrap();
        assert!(
            matches!(**cause, Error::UnsupportedAlgorithm(_)),
            "{cause:?}"
        );
    }
    let async_err = protector.unprotect_async(&payload).await.unwrap_err();
    assert!(
        matches!(async_err, Error::KeyDecryption { .. }),
        "{async_err:?}"
    );
    let status = p
        .key_ring()
        .unwrap()
        .keys()
        .into_iter()
        .find(|k| k.key.id() == bad)
        .unwrap();
    assert_eq!(status.can_decrypt, Some(false));
    assert!(matches!(
        status.problem.as_deref(),
        Some(Error::UnsupportedAlgorithm(_))
    ));
}

#[tokio::test]
async fn unprotect_options_accept_a_revoked_key_only_when_asked() {
    let repo = Arc::new(Counting::default());
    let clock = Arc::new(ManualClock::new(START));
    let p = provider(repo.clone(), clock.clone(), true).await;
    let protector = p.create_protector("p");
    let payload = protector.protect(b"revoked").unwrap();
    let id = p.key_ring().unwrap().default_key_id().unwrap();
    p.key_manager().revoke_key(id, None).await.unwrap();
    p.refresh().await.unwrap();
    assert_ne!(p.key_ring().unwrap().default_key_id(), Some(id));

    let strict = dataprotection::UnprotectOptions::new();
    assert!(matches!(
        protector.unprotect_with(&payload, &strict),
        Err(Error::KeyRevoked { .. })
    ));
    let lenient = strict.ignore_revocation(true);
    for unprotected in [
        protector.unprotect_with(&payload, &lenient).unwrap(),
        protector
            .unprotect_with_async(&payload, &lenient)
            .await
            .unwrap(),
    ] {
        assert_eq!(unprotected.plaintext, b"revoked");
        assert!(unprotected.was_revoked && unprotected.requires_migration);
    }
}

/// Says it stores every element and stores none: a write whose effect is
/// not visible when the ring is read again.
#[derive(Debug, Default)]
struct Forgetful {
    inner: InMemoryXmlRepository,
    stores: AtomicUsize,
}

#[async_trait]
impl XmlRepository for Forgetful {
    async fn get_all_elements(&self) -> Result<Vec<Element>> {
        self.inner.get_all_elements().await
    }
    async fn store_element(&self, _element: &Element, _name: &str) -> Result<()> {
        self.stores.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
    async fn store_element_if(
        &self,
        _element: &Element,
        _name: &str,
        _still_needed: StorePrecondition<'_>,
    ) -> Result<bool> {
        self.stores.fetch_add(1, Ordering::SeqCst);
        Ok(true)
    }
    fn describe(&self) -> String {
        "forgetful".into()
    }
}

#[tokio::test]
async fn a_load_creates_at_most_one_key_even_when_it_cannot_see_it() {
    let repo = Arc::new(Forgetful::default());
    let err = DataProtectionProvider::builder()
        .repository(repo.clone())
        .clock(Arc::new(ManualClock::new(START)))
        .change_check_interval(None)
        .build()
        .await
        .unwrap_err();
    // Created once, read again, not found: an error, not another key.
    assert!(matches!(err, Error::NoDefaultKey { .. }), "{err:?}");
    assert_eq!(repo.stores.load(Ordering::SeqCst), 1);
}
