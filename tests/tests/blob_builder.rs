//! `AzureBlobStorageBuilderExt` against a real Azurite: each overload puts
//! the provider's ring in the blob it names.

#![allow(clippy::unwrap_used)]

use dataprotection::DataProtectionProvider;
use dataprotection::repository::XmlRepository;
use dataprotection_azure_blobs::{
    AzureBlobStorageBuilderExt, BlobError, BlobRepositoryOptions, BlobXmlRepository,
};
use dataprotection_tests::azurite::{Azurite, unique_name};
use time::{Duration, OffsetDateTime};

fn options() -> BlobRepositoryOptions {
    BlobRepositoryOptions {
        create_container_if_missing: true,
        ..Default::default()
    }
}

/// The key ids stored in the blob, read with a repository of its own.
async fn stored_keys(azurite: &Azurite, container: &str, blob: &str) -> Vec<String> {
    let reader = BlobXmlRepository::builder()
        .connection_string(&azurite.connection_string(), container, blob)
        .build()
        .unwrap();
    reader
        .get_all_elements()
        .await
        .unwrap()
        .iter()
        .filter(|e| e.is("key"))
        .filter_map(|e| e.attr("id").map(str::to_string))
        .collect()
}

#[tokio::test]
async fn connection_string_and_sas_url_overloads_store_the_ring_in_the_blob() {
    let azurite = Azurite::shared().unwrap();
    let container = unique_name("builder");
    let provider = DataProtectionProvider::builder()
        .application_name("builder-test")
        .persist_keys_to_azure_blob_storage_with_connection_string(
            &azurite.connection_string(),
            &container,
            "keys.xml",
            Some(options()),
        )
        .unwrap()
        .build()
        .await
        .unwrap();
    let key = provider.key_ring().unwrap().default_key_id().unwrap();
    assert_eq!(
        stored_keys(azurite, &container, "keys.xml").await,
        vec![key.to_string()]
    );
    let token = provider.create_protector("p").protect_str("hi").unwrap();

    // A second app on the same blob through a SAS URL reads the same ring.
    let sas_url = azurite
        .blob_sas_url(
            &container,
            "keys.xml",
            "racwd",
            OffsetDateTime::now_utc() + Duration::hours(1),
        )
        .unwrap();
    let reader = DataProtectionProvider::builder()
        .application_name("builder-test")
        .persist_keys_to_azure_blob_storage(sas_url.as_str(), None, Some(options()))
        .unwrap()
        .build()
        .await
        .unwrap();
    assert_eq!(reader.key_ring().unwrap().default_key_id(), Some(key));
    assert_eq!(
        reader.create_protector("p").unprotect_str(&token).unwrap(),
        "hi"
    );
}

#[tokio::test]
async fn token_credential_overload_refuses_plain_http() {
    // Tokens are only sent over https (the HTTPS Azurite case is in blob_token.rs);
    // the overload reports the repository's own error before any request.
    let credential = dataprotection_azure_blobs::credential_from(
        |name| (name == "AZURE_TOKEN_CREDENTIALS").then(|| "AzureCliCredential".to_string()),
        dataprotection_azure_blobs::HostFacts::default(),
    )
    .unwrap()
    .0;
    let err = DataProtectionProvider::builder()
        .persist_keys_to_azure_blob_storage(
            "http://127.0.0.1:1/devstoreaccount1/c/keys.xml",
            Some(credential),
            None,
        )
        .unwrap_err();
    assert!(matches!(err, BlobError::InvalidUrl { .. }), "{err:?}");
}
