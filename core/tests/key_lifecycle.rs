//! Key ring lifecycle: the format.md §9 scenarios, a simulated year with three
//! providers sharing a directory, failure handling and hot-path concurrency.
#![allow(clippy::unwrap_used)]

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use dataprotection::clock::{Clock, ManualClock};
use dataprotection::encryption::{NullXmlEncryptor, XmlDecryptor};
use dataprotection::repository::{FileSystemXmlRepository, InMemoryXmlRepository, XmlRepository};
use dataprotection::xml::Element;
use dataprotection::{DataProtectionProvider, Error, UnprotectOptions};
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

const START: OffsetDateTime = datetime!(2030-01-01 0:00 UTC);

fn clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new(START))
}

async fn build(
    repo: Arc<dyn XmlRepository>,
    clock: Arc<ManualClock>,
) -> dataprotection::Result<DataProtectionProvider> {
    DataProtectionProvider::builder()
        .application_name("lifecycle")
        .repository(repo)
        .clock(clock)
        .build()
        .await
}

#[tokio::test]
async fn no_keys_creates_an_immediately_active_key() {
    let repo = Arc::new(InMemoryXmlRepository::new());
    let p = build(repo.clone(), clock()).await.unwrap();
    let keys = p.key_ring().unwrap().keys();
    assert_eq!(keys.len(), 1);
    assert!(keys[0].is_default);
    assert_eq!(keys[0].key.activation_date(), START);
    assert_eq!(keys[0].key.expiration_date(), START + Duration::days(90));
    assert_eq!(repo.get_all_elements().await.unwrap().len(), 1);
}

#[tokio::test]
async fn expiring_default_gets_a_successor_that_activates_at_its_expiry() {
    let repo: Arc<dyn XmlRepository> = Arc::new(InMemoryXmlRepository::new());
    let c = clock();
    let first = build(repo.clone(), c.clone()).await.unwrap();
    let first_id = first.key_ring().unwrap().default_key_id().unwrap();
    let protector = first.create_protector("p");
    let old_payload = protector.protect(b"old").unwrap();

    c.advance(Duration::days(88)); // expires in 2 days: inside 24 h + 2 d
    first.refresh().await.unwrap();
    let keys = first.key_ring().unwrap().keys();
    assert_eq!(keys.len(), 2);
    let successor = keys.iter().find(|k| k.key.id() != first_id).unwrap();
    assert_eq!(successor.key.activation_date(), START + Duration::days(90));
    assert_eq!(
        successor.key.expiration_date(),
        c.now() + Duration::days(90)
    );
    // The old key stays default until it expires.
    assert_eq!(first.key_ring().unwrap().default_key_id(), Some(first_id));

    c.advance(Duration::days(2) + Duration::minutes(1));
    first.refresh().await.unwrap();
    assert_eq!(
        first.key_ring().unwrap().default_key_id(),
        Some(successor.key.id())
    );
    assert_eq!(protector.unprotect(&old_payload).unwrap(), b"old");
}

#[tokio::test]
async fn revoked_default_is_replaced_and_its_payloads_fail() {
    let repo: Arc<dyn XmlRepository> = Arc::new(InMemoryXmlRepository::new());
    let c = clock();
    let p = build(repo.clone(), c.clone()).await.unwrap();
    let protector = p.create_protector("p");
    let payload = protector.protect(b"secret").unwrap();
    let old = p.key_ring().unwrap().default_key_id().unwrap();
    c.advance(Duration::hours(1));
    p.key_manager()
        .revoke_key(old, Some("compromised"))
        .await
        .unwrap();
    p.refresh().await.unwrap();
    let ring = p.key_ring().unwrap();
    assert_ne!(ring.default_key_id(), Some(old));
    assert!(
        matches!(protector.unprotect(&payload), Err(Error::KeyRevoked { key_id }) if key_id == old)
    );
    let detail = protector
        .unprotect_with(&payload, &UnprotectOptions::new().ignore_revocation(true))
        .unwrap();
    assert!(detail.was_revoked && detail.requires_migration);
    assert_eq!(detail.plaintext, b"secret");

    // Later processes use the replacement instead of each adding a key
    // (.NET would add one per start until the replacement is two days old).
    let elements = repo.get_all_elements().await.unwrap().len();
    for _ in 0..3 {
        c.advance(Duration::hours(1));
        let later = build(repo.clone(), c.clone()).await.unwrap();
        assert_eq!(
            later.key_ring().unwrap().default_key_id(),
            ring.default_key_id()
        );
    }
    assert_eq!(repo.get_all_elements().await.unwrap().len(), elements);
}

#[tokio::test]
async fn generation_disabled_uses_the_fallback_or_fails_clearly() {
    // Empty ring, generation disabled: a clear error and no key.
    let repo: Arc<dyn XmlRepository> = Arc::new(InMemoryXmlRepository::new());
    let err = DataProtectionProvider::builder()
        .repository(repo.clone())
        .auto_generate_keys(false)
        .clock(clock())
        .build()
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NoDefaultKey { .. }), "{err}");
    assert!(err.to_string().contains("generation is disabled"));
    assert!(repo.get_all_elements().await.unwrap().is_empty());

    // Only an expired key: as in .NET, the preferred key is never its own
    // fallback, so a read-only consumer fails clearly and creates nothing.
    let c = clock();
    let writer = build(repo.clone(), c.clone()).await.unwrap();
    let payload = writer.create_protector("p").protect(b"x").unwrap();
    let read_only = |c: Arc<ManualClock>| {
        DataProtectionProvider::builder()
            .application_name("lifecycle")
            .repository(repo.clone())
            .auto_generate_keys(false)
            .clock(c)
            .build()
    };
    let later = Arc::new(ManualClock::new(START + Duration::days(200)));
    assert!(matches!(
        read_only(later).await,
        Err(Error::NoDefaultKey { .. })
    ));
    assert_eq!(repo.get_all_elements().await.unwrap().len(), 1);

    // A newer key that is revoked: the older key is used as the fallback.
    let newer = writer
        .key_manager()
        .create_key(START + Duration::minutes(1), START + Duration::days(90))
        .await
        .unwrap();
    writer
        .key_manager()
        .revoke_key(newer.id(), None)
        .await
        .unwrap();
    c.advance(Duration::days(3));
    let reader = read_only(c.clone()).await.unwrap();
    assert_eq!(
        repo.get_all_elements().await.unwrap().len(),
        3,
        "nothing created"
    );
    let protector = reader.create_protector("p");
    assert_eq!(protector.unprotect(&payload).unwrap(), b"x");
    let fresh = protector.protect(b"y").unwrap();
    assert_eq!(
        dataprotection::payload::read_header(&fresh).unwrap(),
        dataprotection::payload::read_header(&payload).unwrap()
    );
    assert_eq!(protector.unprotect(&fresh).unwrap(), b"y");
}

#[tokio::test]
async fn future_dated_mass_revocation_is_an_error_and_creates_no_key() {
    let repo: Arc<dyn XmlRepository> = Arc::new(InMemoryXmlRepository::new());
    let c = clock();
    let p = build(repo.clone(), c.clone()).await.unwrap();
    let protector = p.create_protector("p");
    p.key_manager()
        .revoke_all_keys(c.now() + Duration::days(1), Some("skewed clock"))
        .await
        .unwrap();
    let before = repo.get_all_elements().await.unwrap().len();
    let err = p.refresh().await.unwrap_err();
    assert!(matches!(err, Error::NoDefaultKey { .. }), "{err}");
    assert!(err.to_string().contains("future"), "{err}");
    assert_eq!(
        repo.get_all_elements().await.unwrap().len(),
        before,
        "no key was created"
    );
    // Once the date has passed, a fresh key is created and used.
    c.advance(Duration::days(1) + Duration::seconds(1));
    p.refresh().await.unwrap();
    assert_eq!(
        protector
            .unprotect(&protector.protect(b"z").unwrap())
            .unwrap(),
        b"z"
    );
}

/// A repository that can be made to fail, or to block until released.
#[derive(Debug)]
struct Flaky {
    inner: Arc<dyn XmlRepository>,
    fail: AtomicBool,
    gate: tokio::sync::Mutex<()>,
}

#[async_trait]
impl XmlRepository for Flaky {
    async fn get_all_elements(&self) -> dataprotection::Result<Vec<Element>> {
        let _gate = self.gate.lock().await;
        if self.fail.load(Ordering::SeqCst) {
            return Err(Error::repository(
                "injected read failure",
                std::io::Error::other("boom"),
            ));
        }
        self.inner.get_all_elements().await
    }
    async fn store_element(&self, element: &Element, name: &str) -> dataprotection::Result<()> {
        self.inner.store_element(element, name).await
    }
    fn describe(&self) -> String {
        "flaky".into()
    }
}

#[tokio::test]
async fn failed_refresh_keeps_the_cached_ring_and_creates_no_key() {
    let dir = tempfile::tempdir().unwrap();
    let c = clock();
    let p = build(
        Arc::new(FileSystemXmlRepository::new(dir.path())),
        c.clone(),
    )
    .await
    .unwrap();
    let protector = p.create_protector("p");
    let payload = protector.protect(b"cached").unwrap();
    let files = || {
        std::fs::read_dir(dir.path())
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .path()
                    .extension()
                    .is_some_and(|x| x == "xml")
            })
            .count()
    };
    assert_eq!(files(), 1);

    // Make the ring unreadable: a file that is not XML (chmod is no obstacle to root).
    std::fs::write(dir.path().join("broken.xml"), b"\0\0 not xml").unwrap();
    c.advance(Duration::days(100)); // far past expiry: a key would be due
    let err = p.refresh_if_due().await.unwrap_err();
    assert!(
        err.to_string().contains("broken.xml"),
        "the error names the file: {err}"
    );
    assert_eq!(files(), 2, "no key was created");
    assert!(p.last_refresh_error().is_some());
    assert!(p.next_refresh() > c.now(), "retry is backed off");
    // The cached ring still serves.
    assert_eq!(protector.unprotect(&payload).unwrap(), b"cached");
    assert_eq!(
        protector
            .unprotect(&protector.protect(b"again").unwrap())
            .unwrap(),
        b"again"
    );

    std::fs::remove_file(dir.path().join("broken.xml")).unwrap();
    p.refresh().await.unwrap();
    assert_eq!(files(), 2, "a successor key after recovery");
}

/// A decryptor that fails like an unreachable key vault, until allowed.
#[derive(Debug, Default)]
struct UnreachableVault {
    reachable: AtomicBool,
}

#[async_trait]
impl XmlDecryptor for UnreachableVault {
    async fn decrypt(&self, encrypted: &Element) -> dataprotection::Result<Element> {
        if !self.reachable.load(Ordering::SeqCst) {
            return Err(Error::KeyDecryption {
                what: "master key".into(),
                source: "vault unreachable (injected)".into(),
            });
        }
        dataprotection::encryption::NullXmlDecryptor
            .decrypt(encrypted)
            .await
    }
}

#[tokio::test]
async fn failed_key_decryption_never_creates_a_key() {
    let repo: Arc<dyn XmlRepository> = Arc::new(InMemoryXmlRepository::new());
    let c = clock();
    // Write a key encrypted at rest (with the Null encryptor, read through a
    // decryptor we control).
    let writer = DataProtectionProvider::builder()
        .application_name("vault")
        .repository(repo.clone())
        .key_encryptor(Arc::new(NullXmlEncryptor))
        .clock(c.clone())
        .build()
        .await
        .unwrap();
    let payload = writer.create_protector("p").protect(b"wrapped").unwrap();

    let vault = Arc::new(UnreachableVault::default());
    let build_reader = || {
        DataProtectionProvider::builder()
            .application_name("vault")
            .repository(repo.clone())
            .add_decryptor(
                dataprotection::encryption::NULL_XML_DECRYPTOR_TYPE,
                vault.clone(),
            )
            .clock(c.clone())
            .build()
    };
    let err = build_reader().await.unwrap_err();
    assert!(matches!(err, Error::KeyDecryption { .. }), "{err}");
    assert_eq!(
        repo.get_all_elements().await.unwrap().len(),
        1,
        "no key was created"
    );

    vault.reachable.store(true, Ordering::SeqCst);
    c.advance(Duration::minutes(1)); // past the per-key back-off
    let reader = build_reader().await.unwrap();
    assert_eq!(
        reader
            .create_protector("p")
            .unprotect_async(&payload)
            .await
            .unwrap(),
        b"wrapped"
    );
    assert_eq!(repo.get_all_elements().await.unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hot_path_never_waits_for_a_refresh() {
    let flaky = Arc::new(Flaky {
        inner: Arc::new(InMemoryXmlRepository::new()),
        fail: AtomicBool::new(false),
        gate: tokio::sync::Mutex::new(()),
    });
    let p = DataProtectionProvider::builder()
        .application_name("hot")
        .repository(flaky.clone())
        .build()
        .await
        .unwrap();
    // Block the repository, start a refresh that will hang inside it.
    let gate = flaky.gate.lock().await;
    let refreshing = {
        let p = p.clone();
        tokio::spawn(async move { p.refresh().await })
    };
    tokio::task::yield_now().await;
    // Many threads protect and unprotect while the refresh is stuck. If the
    // hot path waited on the refresh, this would never finish.
    let protector = p.create_protector("p");
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let protector = protector.clone();
            std::thread::spawn(move || {
                for i in 0..500 {
                    let msg = format!("thread {t} message {i}");
                    let payload = protector.protect(msg.as_bytes()).unwrap();
                    assert_eq!(protector.unprotect(&payload).unwrap(), msg.as_bytes());
                }
            })
        })
        .collect();
    for t in threads {
        tokio::task::spawn_blocking(move || t.join().unwrap())
            .await
            .unwrap();
    }
    assert!(
        !refreshing.is_finished(),
        "the refresh was still blocked throughout"
    );
    drop(gate);
    refreshing.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_protect_during_repeated_refreshes_shows_no_error() {
    let p = build(Arc::new(InMemoryXmlRepository::new()), clock())
        .await
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let refresher = {
        let p = p.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut n = 0;
            while !stop.load(Ordering::SeqCst) {
                p.refresh().await.unwrap();
                n += 1;
                tokio::task::yield_now().await;
            }
            n
        })
    };
    let protector = p.create_protector("p");
    let workers: Vec<_> = (0..8)
        .map(|t| {
            let protector = protector.clone();
            std::thread::spawn(move || {
                for i in 0..300 {
                    let msg = format!("{t}/{i}");
                    let payload = protector.protect(msg.as_bytes()).unwrap();
                    assert_eq!(protector.unprotect(&payload).unwrap(), msg.as_bytes());
                }
            })
        })
        .collect();
    for w in workers {
        tokio::task::spawn_blocking(move || w.join().unwrap())
            .await
            .unwrap();
    }
    stop.store(true, Ordering::SeqCst);
    assert!(refresher.await.unwrap() > 0);
}

#[tokio::test]
async fn unknown_key_triggers_one_coalesced_refresh() {
    let repo: Arc<dyn XmlRepository> = Arc::new(InMemoryXmlRepository::new());
    let c = clock();
    let a = build(repo.clone(), c.clone()).await.unwrap();
    let b = build(repo.clone(), c.clone()).await.unwrap();
    // `a` gets a new key that `b` has not seen.
    let new = a
        .key_manager()
        .create_key(c.now() + Duration::minutes(1), c.now() + Duration::days(90))
        .await
        .unwrap();
    a.refresh().await.unwrap();
    c.advance(Duration::days(3)); // make the new key preferred
    a.refresh().await.unwrap();
    assert_eq!(a.key_ring().unwrap().default_key_id(), Some(new.id()));
    let payload = a.create_protector("p").protect(b"from a").unwrap();
    let pb = b.create_protector("p");
    // Sync path: does not wait; async path: refreshes once and succeeds.
    assert_eq!(pb.unprotect_async(&payload).await.unwrap(), b"from a");
    // A payload naming a key that exists nowhere fails clearly, without a
    // second refresh inside the rate-limit interval.
    let mut bogus = payload.clone();
    bogus[4] ^= 0xFF;
    assert!(matches!(
        pb.unprotect_async(&bogus).await,
        Err(Error::KeyNotFound { .. })
    ));
}

#[tokio::test]
async fn simulated_year_with_three_providers_sharing_a_directory() {
    let dir = tempfile::tempdir().unwrap();
    let c = clock();
    let mut providers = Vec::new();
    for _ in 0..3 {
        providers.push(
            build(
                Arc::new(FileSystemXmlRepository::new(dir.path())),
                c.clone(),
            )
            .await
            .unwrap(),
        );
    }
    let protectors: Vec<_> = providers
        .iter()
        .map(|p| p.create_protector("year"))
        .collect();
    let mut kept: Vec<(Vec<u8>, Vec<u8>, uuid::Uuid)> = Vec::new();
    let mut defaults_seen = HashSet::new();
    for hour in 0..(365 * 24) {
        c.advance(Duration::hours(1));
        let now = c.now();
        for (i, p) in providers.iter().enumerate() {
            p.refresh_if_due().await.unwrap();
            let ring = p.key_ring().unwrap();
            let default_id = ring.default_key_id().unwrap();
            let keys = ring.keys();
            let default = keys.iter().find(|k| k.key.id() == default_id).unwrap();
            assert!(
                !default.key.is_expired(now),
                "hour {hour}: provider {i} default expired"
            );
            if hour > 24 * 7 {
                // Only keys that have had time to propagate become default.
                assert!(
                    default.key.creation_date() <= now - Duration::days(2),
                    "hour {hour}: provider {i} uses an unpropagated default key"
                );
            }
            defaults_seen.insert(default_id);
            let msg = format!("hour {hour} provider {i}");
            let payload = protectors[i].protect(msg.as_bytes()).unwrap();
            for other in &protectors {
                assert_eq!(
                    other.unprotect_async(&payload).await.unwrap(),
                    msg.as_bytes()
                );
            }
            if hour % 24 == 0 {
                kept.push((payload, msg.into_bytes(), default_id));
            }
        }
        if hour % (24 * 7) == 0 {
            // Every payload made so far still unprotects everywhere.
            for (payload, msg, _) in &kept {
                for other in &protectors {
                    assert_eq!(&other.unprotect(payload).unwrap(), msg);
                }
            }
        }
    }
    let set = providers[0].key_manager().get_all_keys().await.unwrap();
    // 365 days of 90-day keys, rolled ~2-3 days early: 5 keys, no duplicates
    // from the three writers.
    assert!((5..=6).contains(&set.keys.len()), "{} keys", set.keys.len());
    assert_eq!(defaults_seen.len(), set.keys.len());
    // Successors were created before the key they replace expired, with time
    // to propagate.
    let mut keys = set.keys.clone();
    keys.sort_by_key(|k| k.activation_date());
    for pair in keys.windows(2) {
        assert_eq!(pair[1].activation_date(), pair[0].expiration_date());
        assert!(pair[1].creation_date() <= pair[0].expiration_date() - Duration::days(2));
    }
}

/// Counts how many decryptions are in flight at once.
#[derive(Debug, Default)]
struct CountingDecryptor {
    in_flight: std::sync::atomic::AtomicUsize,
    most_in_flight: std::sync::atomic::AtomicUsize,
    calls: std::sync::atomic::AtomicUsize,
}

#[async_trait]
impl XmlDecryptor for CountingDecryptor {
    async fn decrypt(&self, encrypted: &Element) -> dataprotection::Result<Element> {
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.most_in_flight.fetch_max(now, Ordering::SeqCst);
        self.calls.fetch_add(1, Ordering::SeqCst);
        // A vault round trip: lets the other decryptions start meanwhile.
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        dataprotection::encryption::NullXmlDecryptor
            .decrypt(encrypted)
            .await
    }
}

#[tokio::test]
async fn decrypt_all_keys_decrypts_concurrently_within_a_bound() {
    let repo: Arc<dyn XmlRepository> = Arc::new(InMemoryXmlRepository::new());
    let c = clock();
    let manager = dataprotection::KeyManager::new(repo.clone(), Some(Arc::new(NullXmlEncryptor)))
        .with_clock(c.clone());
    const KEYS: i64 = 40;
    for i in 0..KEYS {
        let activation = START - Duration::days(KEYS - i);
        manager
            .create_key(activation, activation + Duration::days(90))
            .await
            .unwrap();
    }
    let decryptor = Arc::new(CountingDecryptor::default());
    let provider = DataProtectionProvider::builder()
        .application_name("many")
        .repository(repo)
        .add_decryptor(
            dataprotection::encryption::NULL_XML_DECRYPTOR_TYPE,
            decryptor.clone(),
        )
        .auto_generate_keys(false)
        .clock(c)
        .build()
        .await
        .unwrap();
    let at_start = decryptor.calls.load(Ordering::SeqCst);
    assert!(
        at_start < KEYS as usize,
        "the start decrypts only what it needs"
    );

    provider.decrypt_all_keys().await.unwrap();
    assert_eq!(
        decryptor.calls.load(Ordering::SeqCst),
        KEYS as usize,
        "each key once"
    );
    let most = decryptor.most_in_flight.load(Ordering::SeqCst);
    assert!(most > 1, "decryptions overlap (at most {most} at once)");
    assert!(most <= 16, "at most 16 at once, not {most}");
    let ring = provider.key_ring().unwrap();
    assert!(ring.keys().iter().all(|k| k.can_decrypt == Some(true)));
}

/// The default key's encryptor is bound to a protector's purposes and kept
/// between calls: when the default key changes (here by revocation) the
/// very same protector (and its clones) must protect with the new key at
/// once, and open the old key's payloads only as the ring allows. Purposes
/// long enough that the bound key derivation holds a whole hashed block,
/// and short ones.
#[tokio::test]
async fn one_protector_follows_the_default_key_when_it_changes() {
    let long = "Microsoft.AspNetCore.Authentication.Cookies.CookieAuthenticationMiddleware";
    for purposes in [vec!["p"], vec![long, "Cookies", "v2"]] {
        let repo: Arc<dyn XmlRepository> = Arc::new(InMemoryXmlRepository::new());
        let c = clock();
        let p = build(repo.clone(), c.clone()).await.unwrap();
        let mut protector = p.create_protector(purposes[0]);
        for purpose in &purposes[1..] {
            protector = protector.create_protector(*purpose);
        }
        let clone = protector.clone();
        let first = p.key_ring().unwrap().default_key_id().unwrap();
        let before = protector.protect(b"before").unwrap();
        assert_eq!(
            dataprotection::payload::read_header(&before).unwrap(),
            first
        );
        assert_eq!(clone.unprotect(&before).unwrap(), b"before");

        c.advance(Duration::hours(1));
        p.key_manager().revoke_key(first, None).await.unwrap();
        p.refresh().await.unwrap();
        let second = p.key_ring().unwrap().default_key_id().unwrap();
        assert_ne!(second, first);

        for writer in [&protector, &clone] {
            let after = writer.protect(b"after").unwrap();
            assert_eq!(
                dataprotection::payload::read_header(&after).unwrap(),
                second
            );
            assert_eq!(protector.unprotect(&after).unwrap(), b"after");
            assert_eq!(clone.unprotect(&after).unwrap(), b"after");
            // Another protector with other purposes never opens it.
            assert!(p.create_protector("other").unprotect(&after).is_err());
        }
        assert!(matches!(
            protector.unprotect(&before),
            Err(Error::KeyRevoked { key_id }) if key_id == first
        ));
        // A fresh provider over the same ring reads what this one wrote.
        let reader = build(repo.clone(), c.clone()).await.unwrap();
        let mut reading = reader.create_protector(purposes[0]);
        for purpose in &purposes[1..] {
            reading = reading.create_protector(*purpose);
        }
        assert_eq!(
            reading
                .unprotect(&protector.protect(b"shared").unwrap())
                .unwrap(),
            b"shared"
        );
    }
}

/// More purpose chains than the default key keeps bindings for, each used by
/// protectors made afresh per call: every payload still opens with its own
/// purposes only, here and in another process reading the same ring.
#[tokio::test]
async fn many_purpose_chains_and_protectors_made_per_call() {
    let repo: Arc<dyn XmlRepository> = Arc::new(InMemoryXmlRepository::new());
    let c = clock();
    let p = build(repo.clone(), c.clone()).await.unwrap();
    let reader = build(repo.clone(), c.clone()).await.unwrap();
    let purposes: Vec<String> = (0..40)
        .map(|i| format!("purpose {i} {}", "x".repeat(i * 7)))
        .collect();
    let mut payloads = Vec::new();
    for round in 0..3 {
        for purpose in &purposes {
            let payload = p
                .create_protector(purpose.as_str())
                .protect(purpose.as_bytes())
                .unwrap();
            assert_eq!(
                p.create_protector(purpose.as_str())
                    .unprotect(&payload)
                    .unwrap(),
                purpose.as_bytes()
            );
            if round == 0 {
                payloads.push(payload);
            }
        }
    }
    for (i, payload) in payloads.iter().enumerate() {
        let own = reader.create_protector(purposes[i].as_str());
        assert_eq!(own.unprotect(payload).unwrap(), purposes[i].as_bytes());
        let other = reader.create_protector(purposes[(i + 1) % purposes.len()].as_str());
        assert!(matches!(
            other.unprotect(payload),
            Err(Error::DecryptionFailed)
        ));
    }
}
