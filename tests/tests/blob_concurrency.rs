//! Concurrent writers on one blob: no lost or duplicated element, idempotent appends after a
//! lost response, and providers that start together agree on one key.

#![allow(clippy::unwrap_used)]

mod blob_support;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration as StdDuration, Instant};

use async_trait::async_trait;
use azure_core::error::ErrorKind;
use azure_core::http::policies::{Policy, PolicyResult};
use azure_core::http::{ClientOptions, Context, FixedRetryOptions, Method, Request, RetryOptions};
use blob_support::*;
use dataprotection::DataProtectionProvider;
use dataprotection::KeySet;
use dataprotection::repository::XmlRepository;
use dataprotection_azure_blobs::{BlobRepositoryOptions, BlobXmlRepository};
use dataprotection_tests::azurite::Azurite;
use tokio::sync::Barrier;
use uuid::Uuid;

fn azurite() -> &'static Azurite {
    Azurite::shared().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixteen_writers_append_400_keys_exactly_once() {
    const WRITERS: usize = 16;
    const PER_WRITER: usize = 25;
    // 16 writers appending without pause is far more contention than key rings see (there,
    // `store_element_if` makes the losers stop); give each append a generous attempt budget.
    const MAX_ATTEMPTS: u32 = 200;
    let (_, url) = fresh_blob(azurite(), "writers").await;
    let started = Instant::now();
    let barrier = Arc::new(Barrier::new(WRITERS));
    let mut tasks = Vec::new();
    for _ in 0..WRITERS {
        let url = url.clone();
        let barrier = barrier.clone();
        tasks.push(tokio::spawn(async move {
            let options = BlobRepositoryOptions {
                max_attempts: MAX_ATTEMPTS,
                initial_backoff: StdDuration::from_millis(20),
                max_backoff: StdDuration::from_millis(500),
                ..fast_options()
            };
            let r = BlobXmlRepository::new(url.as_str(), None, Some(options)).unwrap();
            let ids: Vec<Uuid> = (0..PER_WRITER).map(|_| Uuid::new_v4()).collect();
            barrier.wait().await;
            for id in &ids {
                r.store_element(&key_element(*id), "key").await.unwrap();
            }
            ids
        }));
    }
    let mut expected = Vec::new();
    for t in tasks {
        expected.extend(t.await.unwrap());
    }
    let elapsed = started.elapsed();

    let stored = key_ids(&repo(&url)).await;
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for id in &stored {
        *counts.entry(id.as_str()).or_default() += 1;
    }
    eprintln!(
        "{WRITERS} writers x {PER_WRITER} keys: {} elements stored in {elapsed:?}",
        stored.len()
    );
    assert_eq!(stored.len(), WRITERS * PER_WRITER);
    for id in &expected {
        assert_eq!(counts.get(id.to_string().as_str()), Some(&1), "key {id}");
    }
}

/// Forwards the first PUT to the service, then throws the response away and reports a
/// connection error, as if the connection dropped after the service applied the write.
#[derive(Debug, Default)]
struct LoseFirstPutResponse {
    fired: AtomicUsize,
}

#[async_trait]
impl Policy for LoseFirstPutResponse {
    async fn send(
        &self,
        ctx: &Context,
        request: &mut Request,
        next: &[Arc<dyn Policy>],
    ) -> PolicyResult {
        let response = next[0].send(ctx, request, &next[1..]).await;
        if request.method() == Method::Put && self.fired.fetch_add(1, Ordering::SeqCst) == 0 {
            let status = response.as_ref().map(|r| r.status());
            eprintln!("dropping the response to the first PUT ({status:?})");
            drop(response);
            return Err(azure_core::Error::with_message(
                ErrorKind::Io,
                "simulated: connection reset after the request was sent",
            ));
        }
        response
    }
}

fn losing_options(sdk_retry: RetryOptions) -> (BlobRepositoryOptions, Arc<LoseFirstPutResponse>) {
    let policy = Arc::new(LoseFirstPutResponse::default());
    let options = BlobRepositoryOptions {
        client_options: ClientOptions {
            retry: sdk_retry,
            per_try_policies: vec![policy.clone()],
            ..Default::default()
        },
        ..fast_options()
    };
    (options, policy)
}

#[tokio::test]
async fn lost_write_response_does_not_duplicate_the_element() {
    // 1. Creating the blob (If-None-Match: *), SDK retries off: the repository sees the
    //    connection error, re-reads, finds its element and stops.
    let (_, url) = fresh_blob(azurite(), "lost").await;
    let (options, policy) = losing_options(RetryOptions::none());
    let r = BlobXmlRepository::new(url.as_str(), None, Some(options)).unwrap();
    let first = Uuid::new_v4();
    r.store_element(&key_element(first), "k").await.unwrap();
    assert_eq!(policy.fired.load(Ordering::SeqCst), 1);
    assert_eq!(key_ids(&repo(&url)).await, vec![first.to_string()]);

    // 2. Appending to the existing blob (If-Match), with the SDK retrying once: its retry of the
    //    applied PUT gets a spurious 412, and the repository's re-read settles it.
    let (options, policy) = losing_options(RetryOptions::fixed(FixedRetryOptions {
        delay: azure_core::time::Duration::milliseconds(10),
        max_retries: 1,
        ..Default::default()
    }));
    let r = BlobXmlRepository::new(url.as_str(), None, Some(options)).unwrap();
    let second = Uuid::new_v4();
    r.store_element(&key_element(second), "k").await.unwrap();
    assert!(
        policy.fired.load(Ordering::SeqCst) >= 2,
        "the SDK retried the PUT"
    );
    assert_eq!(
        key_ids(&repo(&url)).await,
        vec![first.to_string(), second.to_string()]
    );
    assert_eq!(r.get_all_elements().await.unwrap().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn eight_providers_started_together_agree_on_one_key() {
    const PROVIDERS: usize = 8;
    let (_, url) = fresh_blob(azurite(), "eight").await;
    let barrier = Arc::new(Barrier::new(PROVIDERS));
    let mut tasks = Vec::new();
    for _ in 0..PROVIDERS {
        let url = url.clone();
        let barrier = barrier.clone();
        tasks.push(tokio::spawn(async move {
            let repository = repo(&url);
            barrier.wait().await;
            DataProtectionProvider::builder()
                .application_name("eight")
                .repository(Arc::new(repository))
                .build()
                .await
                .unwrap()
        }));
    }
    let mut providers = Vec::new();
    for t in tasks {
        providers.push(t.await.unwrap());
    }
    let defaults: Vec<Uuid> = providers
        .iter()
        .map(|p| p.key_ring().unwrap().default_key_id().unwrap())
        .collect();
    let keys = KeySet::from_elements(&repo(&url).get_all_elements().await.unwrap())
        .unwrap()
        .keys
        .len();
    eprintln!(
        "{PROVIDERS} providers started together: {keys} key(s) in the blob, defaults {defaults:?}"
    );
    assert!(defaults.iter().all(|d| *d == defaults[0]), "{defaults:?}");
    assert_eq!(keys, 1, "exactly one key was created");

    // Payloads are interchangeable.
    let token = providers[0].create_protector("p").protect_str("x").unwrap();
    for p in &providers {
        assert_eq!(p.create_protector("p").unprotect_str(&token).unwrap(), "x");
    }
    // A forced refresh everywhere creates nothing.
    for p in &providers {
        p.refresh().await.unwrap();
    }
    let repository: Arc<dyn XmlRepository> = Arc::new(repo(&url));
    assert_eq!(key_ids(repository.as_ref()).await.len(), 1);
    tokio::time::sleep(StdDuration::from_millis(1)).await;
}
