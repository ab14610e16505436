//! Helpers shared by the `blob_*` integration tests.

#![allow(dead_code, clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration as StdDuration;

use azure_core::http::{ClientOptions, RequestContent, RetryOptions, StatusCode, Url};
use azure_storage_blob::models::BlobClientUploadOptions;
use dataprotection::repository::XmlRepository;
use dataprotection::xml::Element;
use dataprotection_azure_blobs::{BlobError, BlobRepositoryOptions, BlobXmlRepository};
use dataprotection_tests::azurite::{self, Azurite};
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

/// The blob name used by most tests.
pub const BLOB: &str = "keys.xml";

pub fn in_one_hour() -> OffsetDateTime {
    OffsetDateTime::now_utc() + Duration::hours(1)
}

/// Repository options for tests: no SDK retries (a stopped Azurite fails at once) and short
/// back-offs.
pub fn fast_options() -> BlobRepositoryOptions {
    BlobRepositoryOptions {
        client_options: ClientOptions {
            retry: RetryOptions::none(),
            ..Default::default()
        },
        initial_backoff: StdDuration::from_millis(10),
        max_backoff: StdDuration::from_millis(200),
        ..Default::default()
    }
}

/// A fresh container on `azurite` and a `racwd` blob SAS URL for [`BLOB`] in it.
pub async fn fresh_blob(azurite: &Azurite, prefix: &str) -> (String, Url) {
    azurite.fresh_blob(prefix, BLOB).await.unwrap()
}

/// A repository on `url` with [`fast_options`].
pub fn repo(url: &Url) -> BlobXmlRepository {
    BlobXmlRepository::new(url.as_str(), None, Some(fast_options())).unwrap()
}

/// The raw bytes of the blob (`None` if it does not exist).
pub async fn raw(url: &Url) -> Option<Vec<u8>> {
    let client = azurite::blob_client(url.clone()).unwrap();
    match client.download(None).await {
        Ok(r) => Some(r.body.collect().await.unwrap().to_vec()),
        Err(e) if e.http_status() == Some(StatusCode::NotFound) => None,
        Err(e) => panic!(
            "download failed: {}",
            dataprotection_azure_blobs::sas::redact(&e.to_string())
        ),
    }
}

/// The raw blob as text.
pub async fn raw_text(url: &Url) -> String {
    String::from_utf8(raw(url).await.expect("the blob exists")).unwrap()
}

/// Overwrites the blob with `bytes`, unconditionally.
pub async fn put_raw(url: &Url, bytes: &[u8]) {
    let client = azurite::blob_client(url.clone()).unwrap();
    client
        .upload(
            RequestContent::from(bytes.to_vec()),
            Some(BlobClientUploadOptions::default()),
        )
        .await
        .unwrap();
}

/// A minimal `<key id="…">` element (its content does not matter to the repository).
pub fn key_element(id: Uuid) -> Element {
    Element::new("key")
        .with_attr("id", id.to_string())
        .with_attr("version", "1")
        .with_child(Element::new("creationDate").with_text("2030-01-01T00:00:00Z"))
}

/// The key ids of every `<key>` child, in document order (duplicates kept).
pub async fn key_ids(repo: &dyn XmlRepository) -> Vec<String> {
    repo.get_all_elements()
        .await
        .unwrap()
        .iter()
        .filter(|e| e.is("key"))
        .filter_map(|e| e.attr("id").map(str::to_owned))
        .collect()
}

/// A repository behind an `Arc`, for providers.
pub fn shared(repo: BlobXmlRepository) -> Arc<dyn XmlRepository> {
    Arc::new(repo)
}

/// The `sig` value of a SAS URL, as it appears in the URL (percent-encoded).
pub fn sig_of(url: &Url) -> String {
    url.query()
        .unwrap()
        .split('&')
        .find_map(|p| p.strip_prefix("sig="))
        .unwrap()
        .to_owned()
}

/// Every text an error shows: its message and `Debug`, and those of each source in its chain.
pub fn error_texts(err: &dataprotection::Error) -> Vec<String> {
    let mut texts = vec![err.to_string(), format!("{err:?}")];
    let mut source = std::error::Error::source(err);
    while let Some(s) = source {
        texts.push(s.to_string());
        texts.push(format!("{s:?}"));
        source = s.source();
    }
    texts
}

/// The [`BlobError`] an error wraps (its direct source); panics naming the error otherwise.
pub fn blob_error(err: &dataprotection::Error) -> &BlobError {
    std::error::Error::source(err)
        .and_then(|s| s.downcast_ref::<BlobError>())
        .unwrap_or_else(|| panic!("no BlobError source in {err:?}"))
}

/// Asserts that neither the error's text, its source chain nor its `Debug` contain `sig`
/// (percent-encoded as in a URL, or decoded).
pub fn assert_no_secret(err: &dataprotection::Error, sig: &str) {
    let decoded = sig
        .replace("%2B", "+")
        .replace("%2F", "/")
        .replace("%3D", "=");
    // Long enough fragments that a match cannot be a coincidence.
    let needles = [&sig[..20.min(sig.len())], &decoded[..20.min(decoded.len())]];
    for t in error_texts(err) {
        for n in needles {
            assert!(!t.contains(n), "secret leaked: {t}");
        }
    }
}
