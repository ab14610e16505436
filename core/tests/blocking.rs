//! Programs that are not async: `build_blocking`, and the async twins of
//! the string and time-limited APIs.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use dataprotection::repository::FileSystemXmlRepository;
use dataprotection::{DataProtectionProvider, Error};
use time::{Duration, OffsetDateTime};

#[test]
fn build_blocking_from_a_plain_thread() {
    let dir = tempfile::tempdir().unwrap();
    let provider = DataProtectionProvider::builder()
        .application_name("blocking")
        .repository(Arc::new(FileSystemXmlRepository::new(dir.path())))
        .build_blocking()
        .unwrap();
    let protector = provider.create_protector("p");
    let token = protector.protect_str("hello").unwrap();
    assert_eq!(protector.unprotect_str(&token).unwrap(), "hello");
    // A protector may outlive its provider; the runtime goes with the last one.
    drop(provider);
    assert_eq!(protector.unprotect_str(&token).unwrap(), "hello");
}

#[test]
fn build_blocking_keeps_a_runtime_for_background_refreshes() {
    let dir = tempfile::tempdir().unwrap();
    let repository = || Arc::new(FileSystemXmlRepository::new(dir.path()));
    let reader = DataProtectionProvider::builder()
        .repository(repository())
        .build_blocking()
        .unwrap();
    // Another process adds a key and protects with it.
    let writer = DataProtectionProvider::builder()
        .repository(repository())
        .build_blocking()
        .unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let now = OffsetDateTime::now_utc();
    let new_key = runtime
        .block_on(
            writer
                .key_manager()
                .create_key(now - Duration::minutes(1), now + Duration::days(90)),
        )
        .unwrap();
    runtime.block_on(writer.refresh()).unwrap();
    assert_eq!(
        writer.key_ring().unwrap().default_key_id(),
        Some(new_key.id())
    );
    let token = writer.create_protector("p").protect(b"x").unwrap();

    // The reader has not seen the key: the sync call names it unknown and
    // starts a refresh on the provider's own runtime, which finds it.
    let protector = reader.create_protector("p");
    match protector.unprotect(&token) {
        Err(Error::KeyNotFound { key_id }) => assert_eq!(key_id, new_key.id()),
        other => panic!("expected KeyNotFound, got {other:?}"),
    }
    // A deadline generous enough for a loaded 2-core CI machine: it catches
    // a refresh that never comes, it does not time one.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    let plaintext = loop {
        match protector.unprotect(&token) {
            Ok(p) => break p,
            Err(Error::KeyNotFound { .. }) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            Err(e) => panic!("the background refresh did not find the key: {e}"),
        }
    };
    assert_eq!(plaintext, b"x");
}

#[tokio::test]
async fn build_blocking_inside_a_runtime_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let err = DataProtectionProvider::builder()
        .repository(Arc::new(FileSystemXmlRepository::new(dir.path())))
        .build_blocking()
        .unwrap_err();
    assert!(matches!(err, Error::InvalidArgument(_)), "{err:?}");
    assert!(err.to_string().contains("build().await"), "{err}");
}

#[tokio::test]
async fn string_and_time_limited_async_twins() {
    let dir = tempfile::tempdir().unwrap();
    let provider = DataProtectionProvider::builder()
        .repository(Arc::new(FileSystemXmlRepository::new(dir.path())))
        .build()
        .await
        .unwrap();
    let protector = provider.create_protector("p");
    let token = protector.protect_str("héllo").unwrap();
    assert_eq!(
        protector.unprotect_str_async(&token).await.unwrap(),
        "héllo"
    );
    let not_utf8 = dataprotection::payload::encode_text(&protector.protect(&[0xff, 0xfe]).unwrap());
    assert!(matches!(
        protector.unprotect_str_async(&not_utf8).await,
        Err(Error::InvalidUtf8 { .. })
    ));

    let limited = protector.to_time_limited();
    let until = OffsetDateTime::now_utc() + Duration::hours(1);
    let token = limited.protect_str("soon", until).unwrap();
    let (text, expiration) = limited.unprotect_str(&token).unwrap();
    assert_eq!(text, "soon");
    assert_eq!(expiration.unix_timestamp(), until.unix_timestamp());
    let (text, _) = limited.unprotect_str_async(&token).await.unwrap();
    assert_eq!(text, "soon");
    // A time-limited payload is not a plain one and vice versa.
    assert!(protector.unprotect_str(&token).is_err());
    let expired = limited
        .protect_str("old", OffsetDateTime::now_utc() - Duration::hours(1))
        .unwrap();
    assert!(matches!(
        limited.unprotect_str_async(&expired).await,
        Err(Error::PayloadExpired { .. })
    ));
}
