//! Fault injection: Azurite (persistent mode) stopped and restarted under a provider and under
//! a writer.

#![allow(clippy::unwrap_used)]

mod blob_support;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration as StdDuration, Instant};

use blob_support::*;
use dataprotection::DataProtectionProvider;
use dataprotection::KeySet;
use dataprotection::repository::XmlRepository;
use dataprotection_azure_blobs::{BlobRepositoryOptions, BlobXmlRepository};
use dataprotection_tests::azurite::Azurite;
use uuid::Uuid;

/// How long an operation against a stopped Azurite may take before it counts
/// as hanging: far beyond its few fast retries, so a loaded CI machine never
/// trips it (timings are printed, not asserted).
const HANG: StdDuration = StdDuration::from_secs(120);

async fn key_count(repo: &dyn XmlRepository) -> usize {
    KeySet::from_elements(&repo.get_all_elements().await.unwrap())
        .unwrap()
        .keys
        .len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outage_keeps_the_cached_ring_and_creates_no_key() {
    let mut azurite = Azurite::start_persistent().unwrap();
    let (_, url) = fresh_blob(&azurite, "outage").await;
    let provider = DataProtectionProvider::builder()
        .application_name("outage")
        .repository(shared(repo(&url)))
        .build()
        .await
        .unwrap();
    let protector = provider.create_protector("p");
    let before = protector.protect_str("before the outage").unwrap();
    assert_eq!(key_count(&repo(&url)).await, 1);

    tokio::task::block_in_place(|| azurite.stop()).unwrap();

    // Protect and unprotect keep working from the cached ring.
    let during = protector.protect_str("during the outage").unwrap();
    assert_eq!(
        protector.unprotect_str(&before).unwrap(),
        "before the outage"
    );
    assert_eq!(
        protector.unprotect_str(&during).unwrap(),
        "during the outage"
    );

    // A forced refresh fails (rather than hanging) and keeps the ring.
    let started = Instant::now();
    let err = tokio::time::timeout(HANG, provider.refresh())
        .await
        .expect("a refresh while Azurite is down hangs")
        .unwrap_err();
    eprintln!(
        "refresh while Azurite is down ({:?}): {err}",
        started.elapsed()
    );
    assert_no_secret(&err, &sig_of(&url));
    assert!(provider.key_ring().is_ok());
    assert_eq!(
        protector.unprotect_str(&during).unwrap(),
        "during the outage"
    );

    // A write reports failure rather than hanging.
    let started = Instant::now();
    let err = tokio::time::timeout(
        HANG,
        repo(&url).store_element(&key_element(Uuid::new_v4()), "k"),
    )
    .await
    .expect("a write while Azurite is down hangs")
    .unwrap_err();
    eprintln!(
        "write while Azurite is down ({:?}): {err}",
        started.elapsed()
    );
    assert_no_secret(&err, &sig_of(&url));

    tokio::task::block_in_place(|| azurite.restart()).unwrap();

    // No key was created by the failed refresh; the failed write left nothing.
    let after = repo(&url);
    assert_eq!(key_count(&after).await, 1);
    assert_eq!(key_ids(&after).await.len(), 1);
    provider.refresh().await.unwrap();
    assert_eq!(key_count(&after).await, 1);
    assert_eq!(
        protector.unprotect_str(&during).unwrap(),
        "during the outage"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azurite_stopped_during_writes_loses_and_duplicates_nothing() {
    const WRITES: usize = 60;
    let mut azurite = Azurite::start_persistent().unwrap();
    let (_, url) = fresh_blob(&azurite, "stopwrite").await;
    let seed = Uuid::new_v4();
    repo(&url)
        .store_element(&key_element(seed), "seed")
        .await
        .unwrap();

    let done = Arc::new(AtomicUsize::new(0));
    let finished = Arc::new(AtomicBool::new(false));
    let writer = {
        let (url, done, finished) = (url.clone(), done.clone(), finished.clone());
        tokio::spawn(async move {
            // Retries spread over ~3 s, so some writes straddle the outage and some give up.
            let options = BlobRepositoryOptions {
                max_attempts: 8,
                initial_backoff: StdDuration::from_millis(50),
                max_backoff: StdDuration::from_millis(800),
                ..fast_options()
            };
            let r = BlobXmlRepository::new(url.as_str(), None, Some(options)).unwrap();
            let mut outcomes = Vec::new();
            for _ in 0..WRITES {
                let id = Uuid::new_v4();
                let ok = r.store_element(&key_element(id), "k").await.is_ok();
                outcomes.push((id, ok));
                done.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(StdDuration::from_millis(20)).await;
            }
            finished.store(true, Ordering::SeqCst);
            outcomes
        })
    };

    while done.load(Ordering::SeqCst) < 10 {
        tokio::time::sleep(StdDuration::from_millis(5)).await;
    }
    tokio::task::block_in_place(|| azurite.stop()).unwrap();
    eprintln!(
        "stopped Azurite after {} writes",
        done.load(Ordering::SeqCst)
    );
    tokio::time::sleep(StdDuration::from_millis(500)).await;
    tokio::task::block_in_place(|| azurite.restart()).unwrap();
    eprintln!(
        "restarted Azurite after {} writes (startup {:?})",
        done.load(Ordering::SeqCst),
        azurite.startup_time()
    );
    let outcomes = writer.await.unwrap();
    assert!(finished.load(Ordering::SeqCst));

    let stored = key_ids(&repo(&url)).await;
    let mut counts: HashMap<String, usize> = HashMap::new();
    for id in &stored {
        *counts.entry(id.clone()).or_default() += 1;
    }
    assert!(
        counts.values().all(|&n| n == 1),
        "a key was stored twice: {counts:?}"
    );
    assert_eq!(
        counts.get(&seed.to_string()),
        Some(&1),
        "the earlier key is kept"
    );
    let failed: Vec<_> = outcomes.iter().filter(|(_, ok)| !ok).collect();
    for (id, ok) in &outcomes {
        if *ok {
            assert_eq!(
                counts.get(&id.to_string()),
                Some(&1),
                "acknowledged key {id} lost"
            );
        }
    }
    let failed_but_stored = failed
        .iter()
        .filter(|(id, _)| counts.contains_key(&id.to_string()))
        .count();
    eprintln!(
        "{WRITES} writes: {} acknowledged, {} reported as failed ({failed_but_stored} of which \
         had been applied); {} keys in the blob",
        WRITES - failed.len(),
        failed.len(),
        stored.len()
    );
    assert_eq!(stored.len(), 1 + WRITES - failed.len() + failed_but_stored);
}
