//! The `<repository>` document among the interop fixtures
//! (`interop/fixtures/rust/documents/blob-document.xml`, written without a
//! storage account) is byte for byte what `BlobXmlRepository` uploads for the
//! same elements, so .NET's `PersistKeysToAzureBlobStorage` reads in it what
//! it would read from our blob.

#![allow(clippy::unwrap_used)]

mod blob_support;

use std::path::Path;

use blob_support::*;
use dataprotection::repository::XmlRepository;
use dataprotection::xml::RepositoryDocument;
use dataprotection_tests::azurite::Azurite;

#[tokio::test]
async fn the_interop_repository_document_is_what_the_blob_repository_stores() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../interop/fixtures/rust/documents/blob-document.xml");
    let committed = std::fs::read(&path).unwrap();
    let elements = RepositoryDocument::parse(&committed).unwrap().elements();
    assert!(elements.len() >= 2, "the fixture holds its keys");

    let (_, url) = fresh_blob(Azurite::shared().unwrap(), "interop").await;
    let writer = repo(&url);
    for element in &elements {
        writer.store_element(element, "element").await.unwrap();
    }
    assert!(
        raw(&url).await.unwrap() == committed,
        "the blob differs from {}: regenerate the interop fixtures",
        path.display()
    );
    assert_eq!(repo(&url).get_all_elements().await.unwrap(), elements);
}
