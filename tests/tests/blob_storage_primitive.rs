//! The blob backend as a storage primitive, against a real Azurite: core's conformance suite,
//! the cheap change check (a 304 costs no parsing), the document size cap and the refusal of
//! documents that are not key rings.

#![allow(clippy::unwrap_used)]

mod blob_support;

use std::sync::Arc;

use async_trait::async_trait;
use azure_core::http::Url;
use blob_support::*;
use dataprotection::repository::conformance::{self, ConformanceTarget};
use dataprotection::repository::{VersionedRepository, XmlRepository};
use dataprotection_azure_blobs::{BlobError, BlobRepositoryOptions, BlobXmlRepository};
use dataprotection_tests::azurite::{Azurite, CountRequests};
use uuid::Uuid;

fn azurite() -> &'static Azurite {
    Azurite::shared().unwrap()
}

/// A fresh blob on Azurite.
struct Blob {
    url: Url,
}

impl Blob {
    async fn new() -> Self {
        let (_, url) = fresh_blob(azurite(), "conformance").await;
        Blob { url }
    }
}

#[async_trait]
impl ConformanceTarget for Blob {
    async fn open(&self) -> Arc<dyn VersionedRepository> {
        // 16 writers appending without pause: a generous attempt budget.
        let options = BlobRepositoryOptions {
            max_attempts: 200,
            ..fast_options()
        };
        Arc::new(BlobXmlRepository::new(self.url.as_str(), None, Some(options)).unwrap())
    }

    async fn plant(&self, raw_element: &str) -> bool {
        let current = raw(&self.url)
            .await
            .map(|b| String::from_utf8(b).unwrap())
            .unwrap_or_else(|| "<repository></repository>".into());
        let end = current.rfind("</repository>").unwrap();
        let planted = format!("{}{raw_element}{}", &current[..end], &current[end..]);
        put_raw(&self.url, planted.as_bytes()).await;
        true
    }

    async fn stored_text(&self) -> Option<String> {
        Some(raw_text(&self.url).await)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn blob_backend_passes_the_conformance_suite() {
    conformance::run_all(Blob::new).await;
}

#[tokio::test]
async fn change_check_is_one_conditional_get_answered_304() {
    let (_, url) = fresh_blob(azurite(), "changed").await;
    let counter = Arc::new(CountRequests::default());
    let options = BlobRepositoryOptions {
        client_options: CountRequests::client_options(&counter),
        ..fast_options()
    };
    let watcher = BlobXmlRepository::new(url.as_str(), None, Some(options)).unwrap();
    let writer = repo(&url);
    writer
        .store_element(&key_element(Uuid::new_v4()), "k")
        .await
        .unwrap();
    let (elements, version) = watcher.get_all_elements_versioned().await.unwrap();
    assert_eq!(elements.len(), 1);
    let version = version.expect("a blob has a version (its ETag)");

    let before = counter.gets();
    assert!(!watcher.changed_since(&version).await.unwrap());
    assert!(!watcher.changed_since(&version).await.unwrap());
    assert_eq!(counter.gets() - before, 2, "one GET per check");
    assert_eq!(counter.others(), 0);

    writer
        .store_element(&key_element(Uuid::new_v4()), "k")
        .await
        .unwrap();
    assert!(watcher.changed_since(&version).await.unwrap());
    assert_eq!(watcher.get_all_elements().await.unwrap().len(), 2);
}

#[tokio::test]
async fn a_blob_larger_than_the_cap_is_refused_and_left_untouched() {
    let (_, url) = fresh_blob(azurite(), "huge").await;
    // A well-formed ring, just over the (lowered) cap.
    let padding = "<!-- padding -->".repeat(4096);
    let document = format!("<repository>{padding}<key id=\"x\"/></repository>");
    put_raw(&url, document.as_bytes()).await;
    let limit = (document.len() - 1) as u64;
    let capped = BlobXmlRepository::new(
        url.as_str(),
        None,
        Some(BlobRepositoryOptions {
            max_document_size: limit,
            ..fast_options()
        }),
    )
    .unwrap();
    let err = capped.get_all_elements().await.unwrap_err();
    match blob_error(&err) {
        BlobError::DocumentTooLarge {
            blob,
            size,
            limit: l,
        } => {
            assert_eq!(*size, document.len() as u64);
            assert_eq!(*l, limit);
            assert!(
                blob.ends_with("keys.xml") && !blob.contains("sig="),
                "{blob}"
            );
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(err.to_string().contains("too large"), "{err}");
    let store = capped
        .store_element(&key_element(Uuid::new_v4()), "k")
        .await;
    assert!(matches!(
        store.as_ref().map_err(blob_error),
        Err(BlobError::DocumentTooLarge { .. })
    ));
    assert_eq!(raw_text(&url).await, document, "left untouched");

    // The default cap (64 MiB) reads it.
    assert_eq!(repo(&url).get_all_elements().await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_blob_that_is_not_a_key_ring_is_refused_and_left_untouched() {
    for document in [
        "<html><body><key id=\"x\"/></body></html>",
        "<?xml version=\"1.0\"?><root><key id=\"y\" version=\"1\"/></root>",
        "<x:repositories xmlns:x=\"urn:x\"/>",
    ] {
        let (_, url) = fresh_blob(azurite(), "notaring").await;
        put_raw(&url, document.as_bytes()).await;
        let r = repo(&url);
        let err = r.get_all_elements().await.unwrap_err();
        assert!(
            matches!(blob_error(&err), BlobError::NotAKeyRing { .. }),
            "{document}: {err:?}"
        );
        assert!(err.to_string().contains("not a key ring"), "{err}");
        let err = r
            .store_element(&key_element(Uuid::new_v4()), "k")
            .await
            .unwrap_err();
        assert!(matches!(blob_error(&err), BlobError::NotAKeyRing { .. }));
        assert_eq!(raw_text(&url).await, document, "left untouched");
    }
}
