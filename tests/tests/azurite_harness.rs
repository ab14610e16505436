//! Tests of the Azurite harness and of the SAS code against a real Azurite.
//!
//! Most tests share one in-memory Azurite per test binary ([`Azurite::shared`]) and isolate
//! themselves with unique container names; tests that stop or count processes start their own.

#![allow(clippy::unwrap_used)]

use azure_core::error::ErrorKind;
use azure_core::http::{RequestContent, StatusCode, Url};
use azure_storage_blob::models::{BlobClientDownloadOptions, BlobClientUploadOptions};
use dataprotection_azure_blobs::connection_string::{ConnectionString, Credential};
use dataprotection_azure_blobs::sas::{self, SasInfo, SasValidity};
use dataprotection_tests::azurite::{self, Azurite, HarnessError};
use time::{Duration, OffsetDateTime};

fn in_one_hour() -> OffsetDateTime {
    OffsetDateTime::now_utc() + Duration::hours(1)
}

/// The HTTP status and storage error code of an SDK error.
fn status_and_code(err: &azure_core::Error) -> (Option<StatusCode>, Option<String>) {
    let code = match err.kind() {
        ErrorKind::HttpResponse { error_code, .. } => error_code.clone(),
        _ => None,
    };
    (err.http_status(), code)
}

async fn upload_new(url: Url, content: &[u8]) -> azure_core::Result<String> {
    let client = azurite::blob_client(url).unwrap();
    let result = client
        .upload(
            RequestContent::from(content.to_vec()),
            Some(BlobClientUploadOptions::default().if_not_exists()),
        )
        .await?;
    Ok(result.etag.expect("upload returns an ETag").to_string())
}

#[tokio::test]
async fn create_upload_conflict_download_and_not_modified() {
    let azurite = Azurite::shared().unwrap();
    let container = azurite::unique_name("harness");
    azurite.create_container(&container).await.unwrap();

    let url = azurite
        .blob_sas_url(&container, "keys/key-ring.xml", "racwd", in_one_hour())
        .unwrap();
    assert!(
        url.as_str().contains("sr=b&sp=racwd"),
        "{}",
        sas::redact(url.as_str())
    );
    let body = b"<keyring version=\"1\"/>";

    let etag = upload_new(url.clone(), body).await.unwrap();
    assert!(!etag.is_empty());

    // A second create-only upload conflicts.
    let err = upload_new(url.clone(), b"other").await.unwrap_err();
    assert_eq!(
        status_and_code(&err),
        (
            Some(StatusCode::Conflict),
            Some("BlobAlreadyExists".to_owned())
        )
    );

    // Download returns the bytes and the same ETag.
    let client = azurite::blob_client(url.clone()).unwrap();
    let downloaded = client.download(None).await.unwrap();
    assert_eq!(
        downloaded.properties.etag.as_ref().map(ToString::to_string),
        Some(etag.clone())
    );
    let bytes = downloaded.body.collect().await.unwrap();
    assert_eq!(&bytes[..], body);

    // Conditional download with that ETag: 304, surfaced as an error.
    let err = client
        .download(Some(BlobClientDownloadOptions {
            if_none_match: Some(etag.clone().into()),
            ..Default::default()
        }))
        .await
        .unwrap_err();
    assert_eq!(err.http_status(), Some(StatusCode::NotModified), "{err}");

    // A different ETag downloads again.
    let again = client
        .download(Some(BlobClientDownloadOptions {
            if_none_match: Some("\"0x0\"".into()),
            ..Default::default()
        }))
        .await
        .unwrap();
    assert_eq!(&again.body.collect().await.unwrap()[..], body);
}

#[tokio::test]
async fn tampered_signature_is_forbidden() {
    let azurite = Azurite::shared().unwrap();
    let container = azurite::unique_name("tamper");
    azurite.create_container(&container).await.unwrap();
    let url = azurite
        .blob_sas_url(&container, "blob.xml", "racwd", in_one_hour())
        .unwrap();
    upload_new(url.clone(), b"x").await.unwrap();

    // Flip one character of the signature (keeping it valid base64).
    let mut tampered = url.clone();
    let pairs: Vec<(String, String)> = url
        .query_pairs()
        .map(|(k, v)| {
            let v = if k == "sig" {
                let mut chars: Vec<char> = v.chars().collect();
                chars[0] = if chars[0] == 'A' { 'B' } else { 'A' };
                chars.into_iter().collect()
            } else {
                v.into_owned()
            };
            (k.into_owned(), v)
        })
        .collect();
    tampered.query_pairs_mut().clear().extend_pairs(pairs);
    assert_ne!(tampered, url);

    let err = azurite::blob_client(tampered)
        .unwrap()
        .download(None)
        .await
        .unwrap_err();
    assert_eq!(
        status_and_code(&err),
        (
            Some(StatusCode::Forbidden),
            Some("AuthorizationFailure".to_owned())
        ),
        "{err}"
    );
}

#[tokio::test]
async fn expired_sas_is_forbidden_and_reported_as_expired() {
    let azurite = Azurite::shared().unwrap();
    let container = azurite::unique_name("expired");
    azurite.create_container(&container).await.unwrap();
    let good = azurite
        .blob_sas_url(&container, "blob.xml", "racwd", in_one_hour())
        .unwrap();
    upload_new(good, b"x").await.unwrap();

    let expired_at = OffsetDateTime::now_utc() - Duration::minutes(5);
    let url = azurite
        .blob_sas_url(&container, "blob.xml", "r", expired_at)
        .unwrap();
    let info = SasInfo::parse(url.as_str()).unwrap();
    let now = OffsetDateTime::now_utc();
    assert_eq!(info.validity_at(now), SasValidity::Expired);
    assert!(info.describe_at(now).starts_with("SAS has expired"));

    let err = azurite::blob_client(url)
        .unwrap()
        .download(None)
        .await
        .unwrap_err();
    assert_eq!(err.http_status(), Some(StatusCode::Forbidden), "{err}");
}

#[tokio::test]
async fn read_only_sas_cannot_write() {
    let azurite = Azurite::shared().unwrap();
    let container = azurite::unique_name("readonly");
    azurite.create_container(&container).await.unwrap();
    let url = azurite
        .blob_sas_url(&container, "blob.xml", "r", in_one_hour())
        .unwrap();
    let err = upload_new(url, b"x").await.unwrap_err();
    assert_eq!(err.http_status(), Some(StatusCode::Forbidden), "{err}");
}

#[tokio::test]
async fn container_sas_writes_blobs_but_cannot_create_its_container() {
    let azurite = Azurite::shared().unwrap();
    let container = azurite::unique_name("csas");

    // Creating the container with a container SAS is refused, as on real Azure.
    let url = azurite
        .container_sas_url(&container, "racwdl", in_one_hour())
        .unwrap();
    let client = azure_storage_blob::BlobContainerClient::new(
        url.clone(),
        None,
        Some(azurite::container_client_options()),
    )
    .unwrap();
    let err = client.create(None).await.unwrap_err();
    assert_eq!(err.http_status(), Some(StatusCode::Forbidden), "{err}");

    // Once created (with the account SAS), the container SAS can write and read blobs.
    azurite.create_container(&container).await.unwrap();
    let blob = client.blob_client("a/b.xml");
    blob.upload(
        RequestContent::from(b"hello".to_vec()),
        Some(BlobClientUploadOptions::default().if_not_exists()),
    )
    .await
    .unwrap();
    let got = blob
        .download(None)
        .await
        .unwrap()
        .body
        .collect()
        .await
        .unwrap();
    assert_eq!(&got[..], b"hello");
}

#[tokio::test]
async fn creating_an_existing_container_conflicts() {
    let azurite = Azurite::shared().unwrap();
    let container = azurite::unique_name("twice");
    azurite.create_container(&container).await.unwrap();
    match azurite.create_container(&container).await {
        Err(HarnessError::Azure(msg)) => {
            assert!(msg.contains("409") || msg.contains("Exists"), "{msg}");
        }
        Err(other) => panic!("unexpected {other:?}"),
        Ok(_) => panic!("creating {container} twice succeeded"),
    }
}

#[tokio::test]
async fn connection_string_parses_and_its_key_works() {
    let azurite = Azurite::shared().unwrap();
    let cs = ConnectionString::parse(&azurite.connection_string()).unwrap();
    assert_eq!(cs.blob_endpoint(), azurite.blob_endpoint());
    assert_eq!(cs.account_name(), Some("devstoreaccount1"));
    let Credential::AccountKey(key) = cs.credential() else {
        panic!("expected an account key, got {:?}", cs.credential());
    };

    let container = azurite::unique_name("connstr");
    azurite.create_container(&container).await.unwrap();
    let token = sas::blob_sas(
        "devstoreaccount1",
        key,
        &container,
        "k.xml",
        "racwd".parse().unwrap(),
        &sas::SasWindow::until(in_one_hour()),
    )
    .unwrap();
    let url = token.append_to(&sas::blob_url(cs.blob_endpoint(), &container, "k.xml"));
    upload_new(Url::parse(&url).unwrap(), b"via connection string")
        .await
        .unwrap();
}

#[tokio::test]
async fn stop_and_restart_keeps_port_and_data() {
    let mut azurite = Azurite::start_persistent().unwrap();
    assert!(azurite.location().is_some());
    let port = azurite.port();
    let container = azurite::unique_name("restart");
    azurite.create_container(&container).await.unwrap();
    let url = azurite
        .blob_sas_url(&container, "key-ring.xml", "racwd", in_one_hour())
        .unwrap();
    let etag = upload_new(url.clone(), b"persisted").await.unwrap();

    azurite.stop().unwrap();
    assert!(!azurite.is_running());
    // With retries disabled, a stopped emulator fails instead of retrying
    // (SDK retries would take about a minute; a hang would never end).
    let client = azurite::blob_client(url.clone()).unwrap();
    let err = tokio::time::timeout(std::time::Duration::from_secs(45), client.download(None))
        .await
        .expect("a download from a stopped emulator is retried or hangs")
        .unwrap_err();
    assert!(err.http_status().is_none(), "{err}");

    azurite.restart().unwrap();
    assert!(azurite.is_running());
    assert_eq!(azurite.port(), port);
    let downloaded = azurite::blob_client(url)
        .unwrap()
        .download(None)
        .await
        .unwrap();
    assert_eq!(
        downloaded.properties.etag.as_ref().map(ToString::to_string),
        Some(etag)
    );
    assert_eq!(&downloaded.body.collect().await.unwrap()[..], b"persisted");
}

#[test]
fn private_instances_run_in_parallel_and_die_on_drop() {
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(Azurite::start);
        let b = s.spawn(Azurite::start);
        (a.join().unwrap().unwrap(), b.join().unwrap().unwrap())
    });
    assert_ne!(a.port(), b.port());
    eprintln!(
        "Azurite startup times: {:?}, {:?}",
        a.startup_time(),
        b.startup_time()
    );
    let port = a.port();
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_ok());
    drop(a);
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "Azurite still listens on {port} after drop"
    );
    assert!(std::net::TcpStream::connect(("127.0.0.1", b.port())).is_ok());
}

#[test]
fn urls_and_errors_are_redacted() {
    let azurite = Azurite::shared().unwrap();
    let url = azurite
        .blob_sas_url("redact", "b.xml", "r", in_one_hour())
        .unwrap();
    let sig = url
        .query_pairs()
        .find(|(k, _)| k == "sig")
        .map(|(_, v)| v.into_owned())
        .unwrap();
    let redacted = sas::redact(url.as_str());
    assert!(!redacted.contains(&sig) && redacted.contains("sig=REDACTED"));
    // Harness errors never echo a signature.
    let err = azurite
        .blob_sas_url("Bad_Container", "b.xml", "r", in_one_hour())
        .unwrap_err();
    assert!(matches!(err, HarnessError::Sas(_)), "{err}");
}

#[test]
fn missing_node_error_explains_how_to_install_node() {
    let msg = azurite::missing_node_message("node", "No such file or directory (os error 2)");
    assert!(msg.contains("Install Node.js"), "{msg}");
    assert!(msg.contains("https://nodejs.org"), "{msg}");
    assert!(msg.contains("apt-get install nodejs npm"), "{msg}");
}
