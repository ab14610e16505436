//! `BlobXmlRepository::new` (Entra ID token credential) against a real Azurite started over
//! HTTPS with `--oauth basic` ([`Azurite::start_https_oauth`]).
//!
//! Azurite checks a bearer token's lifetime, issuer prefix and audience but not its signature,
//! so a fake [`TokenCredential`] hands out unsigned JWTs. The SDK only sends tokens over https;
//! the client trusts the instance's test CA through a custom reqwest 0.13 transport.

#![allow(clippy::unwrap_used)]

mod blob_support;

use std::sync::{Arc, Mutex, OnceLock};

use async_trait::async_trait;
use azure_core::credentials::{AccessToken, TokenCredential, TokenRequestOptions};
use azure_core::http::Url;
use azure_storage_blob::{BlobContainerClient, BlobContainerClientOptions};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use blob_support::{BLOB, blob_error, error_texts, key_element, key_ids};
use dataprotection::DataProtectionProvider;
use dataprotection::repository::XmlRepository;
use dataprotection_azure_blobs::sas;
use dataprotection_azure_blobs::{
    AzureBlobStorageBuilderExt, BlobError, BlobRepositoryOptions, BlobXmlRepository,
};
use dataprotection_tests::azurite::{self, Azurite};
use uuid::Uuid;

/// The scope the storage clients ask for.
const STORAGE_SCOPE: &str = "https://storage.azure.com/.default";

/// One HTTPS + OAuth Azurite for this test binary (it dies with the process).
fn azurite() -> &'static Azurite {
    static AZURITE: OnceLock<Azurite> = OnceLock::new();
    AZURITE.get_or_init(|| {
        let az = Azurite::start_https_oauth().unwrap();
        assert!(az.blob_endpoint().starts_with("https://127.0.0.1:"));
        assert!(az.ca_pem().unwrap().contains("BEGIN CERTIFICATE"));
        az
    })
}

/// Repository options: the transport trusting Azurite's test CA, no SDK retries.
/// `credential` as the optional token credential of `BlobXmlRepository::new`.
fn token(credential: &Arc<FakeCredential>) -> Option<Arc<dyn TokenCredential>> {
    Some(credential.clone())
}

fn options(az: &Azurite) -> BlobRepositoryOptions {
    BlobRepositoryOptions {
        client_options: az.https_client_options().unwrap(),
        ..Default::default()
    }
}

/// What the fake token says.
#[derive(Clone, Copy)]
enum Claims {
    Valid,
    WrongAudience,
    Expired,
}

/// An unsigned JWT (`alg: none`) with the claims Azurite's `--oauth basic` checks.
fn jwt(claims: Claims) -> String {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let (aud, nbf, exp) = match claims {
        Claims::Valid => ("https://storage.azure.com", now - 300, now + 3600),
        Claims::WrongAudience => ("https://vault.azure.net", now - 300, now + 3600),
        Claims::Expired => ("https://storage.azure.com", now - 7200, now - 3600),
    };
    let header = r#"{"alg":"none","typ":"JWT"}"#;
    let payload = format!(
        r#"{{"aud":"{aud}","iss":"https://sts.windows.net/{tid}/","nbf":{nbf},"exp":{exp},"iat":{nbf},"oid":"{oid}","tid":"{tid}","sub":"dataprotection-tests","jti":"{jti}"}}"#,
        tid = Uuid::new_v4(),
        oid = Uuid::new_v4(),
        jti = Uuid::new_v4(),
    );
    format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(payload)
    )
}

/// A `TokenCredential` returning a fixed fake JWT; it records the scopes it is asked for.
struct FakeCredential {
    token: String,
    scopes: Mutex<Vec<String>>,
}

impl FakeCredential {
    fn new(claims: Claims) -> Arc<Self> {
        Arc::new(Self {
            token: jwt(claims),
            scopes: Mutex::new(Vec::new()),
        })
    }

    fn scopes_seen(&self) -> Vec<String> {
        self.scopes.lock().unwrap().clone()
    }
}

impl std::fmt::Debug for FakeCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FakeCredential { token: <redacted> }")
    }
}

#[async_trait]
impl TokenCredential for FakeCredential {
    async fn get_token(
        &self,
        scopes: &[&str],
        _options: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<AccessToken> {
        self.scopes
            .lock()
            .unwrap()
            .extend(scopes.iter().map(|s| (*s).to_owned()));
        // More than 5 minutes away, or the SDK fetches a new token for every request.
        Ok(AccessToken::new(
            self.token.clone(),
            azure_core::time::OffsetDateTime::now_utc() + azure_core::time::Duration::hours(1),
        ))
    }
}

/// `https://127.0.0.1:PORT/devstoreaccount1/{container}/keys.xml`.
fn blob_url(az: &Azurite, container: &str) -> String {
    sas::blob_url(&az.blob_endpoint(), container, BLOB)
}

/// Creates `container` with the token credential (no SAS anywhere).
async fn create_container_with_token(az: &Azurite, container: &str, cred: Arc<FakeCredential>) {
    let url = Url::parse(&sas::container_url(&az.blob_endpoint(), container)).unwrap();
    let client = BlobContainerClient::new(
        url,
        Some(cred),
        Some(BlobContainerClientOptions {
            client_options: az.https_client_options().unwrap(),
            ..Default::default()
        }),
    )
    .unwrap();
    client.create(None).await.unwrap();
}

/// Asserts that neither the error's text, its `Debug` nor its source chain contain the token
/// (whole, or its claims part).
fn assert_no_token(err: &dataprotection::Error, token: &str) {
    let claims = token.split('.').nth(1).unwrap();
    for text in error_texts(err) {
        assert!(!text.contains(token), "the token leaked into: {text}");
        assert!(
            !text.contains(claims),
            "the token claims leaked into: {text}"
        );
    }
}

#[tokio::test]
async fn token_credential_stores_reads_and_backs_a_provider() {
    let az = azurite();
    let cred = FakeCredential::new(Claims::Valid);
    let container = azurite::unique_name("token");
    create_container_with_token(az, &container, cred.clone()).await;

    let url = blob_url(az, &container);
    let repo = BlobXmlRepository::new(&url, token(&cred), Some(options(az))).unwrap();
    assert!(repo.get_all_elements().await.unwrap().is_empty());
    let k1 = key_element(Uuid::new_v4());
    let k2 = key_element(Uuid::new_v4());
    repo.store_element(&k1, "key-1").await.unwrap();
    repo.store_element(&k2, "key-2").await.unwrap();
    repo.store_element(&k1, "key-1").await.unwrap(); // idempotent

    // A second repository (another process, say) reads the same ring.
    let reader = BlobXmlRepository::new(&url, token(&cred), Some(options(az))).unwrap();
    assert_eq!(reader.get_all_elements().await.unwrap(), vec![k1, k2]);

    // A provider on a fresh container: it creates its key through the token repository.
    let container = azurite::unique_name("tokenprov");
    create_container_with_token(az, &container, cred.clone()).await;
    let url = blob_url(az, &container);
    let repo: Arc<dyn XmlRepository> =
        Arc::new(BlobXmlRepository::new(&url, token(&cred), Some(options(az))).unwrap());
    let provider = DataProtectionProvider::builder()
        .application_name("blob-token")
        .repository(repo.clone())
        .build()
        .await
        .unwrap();
    let protector = provider.create_protector("purpose");
    let protected = protector.protect_str("hello over a bearer token").unwrap();
    assert_eq!(
        protector.unprotect_str(&protected).unwrap(),
        "hello over a bearer token"
    );
    let ids = key_ids(repo.as_ref()).await;
    assert_eq!(ids.len(), 1, "{ids:?}");

    // Another provider on the same blob (same application), configured through the
    // builder extension (`PersistKeysToAzureBlobStorage(Uri, TokenCredential)`), unprotects
    // the payload.
    let other = DataProtectionProvider::builder()
        .application_name("blob-token")
        .persist_keys_to_azure_blob_storage(&url, token(&cred), Some(options(az)))
        .unwrap()
        .build()
        .await
        .unwrap();
    assert_eq!(
        other
            .create_protector("purpose")
            .unprotect_str(&protected)
            .unwrap(),
        "hello over a bearer token"
    );

    let scopes = cred.scopes_seen();
    assert!(!scopes.is_empty());
    assert!(scopes.iter().all(|s| s == STORAGE_SCOPE), "{scopes:?}");
}

#[tokio::test]
async fn token_credential_creates_a_missing_container_on_request() {
    let az = azurite();
    let cred = FakeCredential::new(Claims::Valid);
    let container = azurite::unique_name("tokencreate");
    let url = blob_url(az, &container);

    // Without the option: a clear "does not exist" error.
    let repo = BlobXmlRepository::new(&url, token(&cred), Some(options(az))).unwrap();
    let k = key_element(Uuid::new_v4());
    let err = repo.store_element(&k, "k").await.unwrap_err();
    assert!(err.to_string().contains("does not exist"), "{err}");

    let repo = BlobXmlRepository::new(
        &url,
        token(&cred),
        Some(BlobRepositoryOptions {
            create_container_if_missing: true,
            ..options(az)
        }),
    )
    .unwrap();
    repo.store_element(&k, "k").await.unwrap();
    assert_eq!(repo.get_all_elements().await.unwrap(), vec![k]);
}

/// A token Azurite refuses: reads and writes fail with a 401/403 repository error that names
/// the credential kind and never contains the token.
async fn refused_token(claims: Claims, what: &str) {
    let az = azurite();
    let container = azurite::unique_name("tokenbad");
    create_container_with_token(az, &container, FakeCredential::new(Claims::Valid)).await;
    let url = blob_url(az, &container);

    let bad = FakeCredential::new(claims);
    let repo = BlobXmlRepository::new(&url, token(&bad), Some(options(az))).unwrap();
    let err = repo.get_all_elements().await.unwrap_err();
    let text = err.to_string();
    eprintln!("{what}: {text}\n  debug: {err:?}");
    assert!(
        matches!(err, dataprotection::Error::Repository { .. }),
        "{err:?}"
    );
    let status = blob_error(&err).status();
    assert!(matches!(status, Some(401 | 403)), "{status:?}: {err:?}");
    assert!(text.contains("was refused (HTTP 40"), "{text}");
    assert!(text.contains("the token was rejected"), "{text}");
    assert_no_token(&err, &bad.token);

    let err = repo
        .store_element(&key_element(Uuid::new_v4()), "k")
        .await
        .unwrap_err();
    assert!(
        matches!(blob_error(&err).status(), Some(401 | 403)),
        "{err:?}"
    );
    assert_no_token(&err, &bad.token);
    assert!(!bad.scopes_seen().is_empty(), "the credential was used");
}

#[tokio::test]
async fn wrong_audience_token_is_a_clear_refusal_without_the_token() {
    refused_token(Claims::WrongAudience, "wrong audience").await;
}

#[tokio::test]
async fn expired_token_is_a_clear_refusal_without_the_token() {
    refused_token(Claims::Expired, "expired").await;
}

#[test]
fn token_credential_over_plain_http_is_refused() {
    let cred = FakeCredential::new(Claims::Valid);
    let url = "http://127.0.0.1:10000/devstoreaccount1/keys/keys.xml";
    let err = BlobXmlRepository::new(url, token(&cred), None).unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, BlobError::InvalidUrl { .. }), "{err:?}");
    assert!(text.contains("only sent over https"), "{text}");
    assert!(!text.contains(&cred.token) && !format!("{err:?}").contains(&cred.token));
    assert!(cred.scopes_seen().is_empty(), "no token was requested");

    // As a dataprotection::Error it is a configuration error of the
    // invalid-argument class that keeps the typed blob error as its source.
    let err: dataprotection::Error = err.into();
    assert_eq!(err.class(), "invalid argument");
    let source = std::error::Error::source(&err).expect("the blob error is kept");
    assert!(
        matches!(
            source.downcast_ref::<BlobError>(),
            Some(BlobError::InvalidUrl { .. })
        ),
        "{err:?}"
    );
}
