//! `BlobXmlRepository` against a real Azurite: format, empty and missing blobs, containers,
//! SAS failures and renewal, connection strings, preservation of foreign elements.

#![allow(clippy::unwrap_used)]

mod blob_support;

use std::sync::{Arc, Mutex};

use azure_core::http::policies::{Policy, PolicyResult};
use azure_core::http::{Context, Request, Url};
use blob_support::*;
use dataprotection::BoxError;
use dataprotection::DataProtectionProvider;
use dataprotection::clock::ManualClock;
use dataprotection::repository::{DeletionOrder, XmlRepository, delete_where};
use dataprotection::xml::{Element, RepositoryDocument};
use dataprotection::{KeySet, KeySetProblem};
use dataprotection_azure_blobs::sas::{self, Permissions, SasInfo, SasWindow};
use dataprotection_azure_blobs::{
    BlobRepositoryOptions, BlobXmlRepository, CONTENT_TYPE, SasProvider, SasRequest,
};
use dataprotection_tests::azurite::{self, ACCOUNT_NAME, Azurite};
use time::macros::datetime;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

const DECLARATION: &str = r#"<?xml version="1.0" encoding="utf-8"?>"#;

fn azurite() -> &'static Azurite {
    Azurite::shared().unwrap()
}

#[tokio::test]
async fn round_trip_format_and_idempotent_store() {
    let (_, url) = fresh_blob(azurite(), "rt").await;
    let writer = repo(&url);
    assert!(writer.get_all_elements().await.unwrap().is_empty());
    assert!(
        raw(&url).await.is_none(),
        "reading does not create the blob"
    );

    let k1 = key_element(Uuid::new_v4());
    let revocation = Element::new("revocation")
        .with_attr("version", "1")
        .with_child(Element::new("revocationDate").with_text("2030-01-01T00:00:00Z"));
    writer.store_element(&k1, "key-1").await.unwrap();
    writer
        .store_element(&revocation, "revocation")
        .await
        .unwrap();
    // Storing the same key (or an identical element) again does not duplicate it.
    writer.store_element(&k1, "key-1").await.unwrap();
    writer
        .store_element(&revocation, "revocation")
        .await
        .unwrap();

    let reader = repo(&url);
    assert_eq!(
        reader.get_all_elements().await.unwrap(),
        vec![k1.clone(), revocation.clone()]
    );

    let text = raw_text(&url).await;
    assert_eq!(
        text,
        format!(
            "{DECLARATION}<repository>{}{}</repository>",
            k1.to_xml(dataprotection::xml::Format::Compact),
            revocation.to_xml(dataprotection::xml::Format::Compact)
        )
    );
    let props = azurite::blob_client(url.clone())
        .unwrap()
        .download(None)
        .await
        .unwrap()
        .properties;
    assert_eq!(props.content_type.as_deref(), Some(CONTENT_TYPE));

    // A second writer appends after the first; the first sees both after a refresh.
    let k2 = key_element(Uuid::new_v4());
    reader.store_element(&k2, "key-2").await.unwrap();
    assert_eq!(writer.get_all_elements().await.unwrap().len(), 3);
    assert!(writer.describe().contains("SAS URL"));
    assert!(!writer.describe().contains(&sig_of(&url)));
}

#[tokio::test]
async fn zero_length_blob_and_bom_are_accepted() {
    let (_, url) = fresh_blob(azurite(), "zero").await;
    put_raw(&url, b"").await;
    let r = repo(&url);
    assert!(r.get_all_elements().await.unwrap().is_empty());
    let k = key_element(Uuid::new_v4());
    r.store_element(&k, "k").await.unwrap();
    let doc = RepositoryDocument::parse(&raw(&url).await.unwrap()).unwrap();
    assert_eq!(doc.elements(), vec![k]);

    // A BOM and a formatted document, as older .NET writers may produce.
    let with_bom = "\u{feff}<?xml version=\"1.0\" encoding=\"utf-8\"?>\r\n<repository>\r\n  <key id=\"6c1b0d8c-a2f5-4a33-9d8b-3b0f1a4f8e21\" version=\"1\" />\r\n</repository>";
    put_raw(&url, with_bom.as_bytes()).await;
    let r = repo(&url);
    assert_eq!(
        key_ids(&r).await,
        vec!["6c1b0d8c-a2f5-4a33-9d8b-3b0f1a4f8e21".to_owned()]
    );
}

#[tokio::test]
async fn missing_blob_is_an_empty_ring() {
    let (_, url) = fresh_blob(azurite(), "missing").await;
    assert!(repo(&url).get_all_elements().await.unwrap().is_empty());
}

#[tokio::test]
async fn malformed_blob_is_an_error_and_never_overwritten() {
    let (_, url) = fresh_blob(azurite(), "malformed").await;
    let garbage = b"<repository><key id=\"1\"></repository>";
    put_raw(&url, garbage).await;
    let r = repo(&url);
    let err = r.get_all_elements().await.unwrap_err();
    assert!(err.to_string().contains("not a well-formed"), "{err}");
    let err = r
        .store_element(&key_element(Uuid::new_v4()), "k")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("left untouched"), "{err}");
    assert_eq!(raw(&url).await.unwrap(), garbage);
}

#[tokio::test]
async fn missing_container_is_a_clear_error_or_created_on_request() {
    let az = azurite();
    let container = azurite::unique_name("nocontainer");
    let url = az
        .blob_sas_url(&container, BLOB, "racwd", in_one_hour())
        .unwrap();
    let r = repo(&url);
    for err in [
        r.get_all_elements().await.unwrap_err(),
        r.store_element(&key_element(Uuid::new_v4()), "k")
            .await
            .unwrap_err(),
    ] {
        let text = err.to_string();
        eprintln!("missing container: {text}");
        assert!(
            text.contains(&format!("container {container} does not exist"))
                && text.contains("create_container_if_missing"),
            "{text}"
        );
        assert_eq!(blob_error(&err).code(), Some("ContainerNotFound"));
        assert_no_secret(&err, &sig_of(&url));
    }

    // Opt-in with a blob-scoped SAS: the service refuses to create the container, clearly.
    let opt_in = BlobRepositoryOptions {
        create_container_if_missing: true,
        ..fast_options()
    };
    let r = BlobXmlRepository::new(url.as_str(), None, Some(opt_in.clone())).unwrap();
    assert!(r.get_all_elements().await.unwrap().is_empty());
    let err = r
        .store_element(&key_element(Uuid::new_v4()), "k")
        .await
        .unwrap_err();
    eprintln!("container creation refused: {err}");
    assert!(
        err.to_string().contains("account SAS") && err.to_string().contains("403"),
        "{err}"
    );

    // Opt-in with an account SAS: created on the first write.
    let account_sas = az.account_sas(in_one_hour()).unwrap();
    let account_url = account_sas.append_to(&sas::blob_url(&az.blob_endpoint(), &container, BLOB));
    let r = BlobXmlRepository::new(&account_url, None, Some(opt_in.clone())).unwrap();
    let k = key_element(Uuid::new_v4());
    r.store_element(&k, "k").await.unwrap();
    assert_eq!(repo(&url).get_all_elements().await.unwrap(), vec![k]);

    // Opt-in with an account key (connection string): created with a minted account SAS.
    let container2 = azurite::unique_name("nocontainer");
    let r = BlobXmlRepository::builder()
        .connection_string(&az.connection_string(), &container2, BLOB)
        .options(opt_in)
        .build()
        .unwrap();
    r.store_element(&key_element(Uuid::new_v4()), "k")
        .await
        .unwrap();
    assert_eq!(key_ids(&r).await.len(), 1);
}

#[tokio::test]
async fn tampered_sas_is_a_clear_403_without_the_signature() {
    let (_, url) = fresh_blob(azurite(), "tampered").await;
    let sig = sig_of(&url);
    let bad_sig = format!("AAAA{}", &sig[4..]);
    let mut bad = url.clone();
    let pairs: Vec<(String, String)> = url
        .query_pairs()
        .map(|(k, v)| {
            let v = if k == "sig" {
                bad_sig.clone()
            } else {
                v.into_owned()
            };
            (k.into_owned(), v)
        })
        .collect();
    bad.query_pairs_mut().clear().extend_pairs(pairs);
    let r = repo(&bad);
    let err = r.get_all_elements().await.unwrap_err();
    let text = err.to_string();
    eprintln!("tampered: {text}\n  debug: {err:?}");
    assert!(text.contains("was refused (HTTP 403"), "{text}");
    assert!(
        text.contains("check its signature and permissions"),
        "{text}"
    );
    assert_eq!(blob_error(&err).status(), Some(403));
    assert_no_secret(&err, &bad_sig);
    assert_no_secret(&err, &sig);
    let err = r
        .store_element(&key_element(Uuid::new_v4()), "k")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("403"), "{err}");
    assert_no_secret(&err, &bad_sig);
}

#[tokio::test]
async fn expired_sas_error_names_the_expiry() {
    let az = azurite();
    let container = azurite::unique_name("expired");
    az.create_container(&container).await.unwrap();
    let expiry = OffsetDateTime::now_utc() - Duration::minutes(90);
    let url = az.blob_sas_url(&container, BLOB, "racwd", expiry).unwrap();
    let r = repo(&url);
    assert_eq!(
        r.sas_expiry().await.map(|e| e.unix_timestamp()),
        Some(expiry.unix_timestamp())
    );
    let err = r.get_all_elements().await.unwrap_err();
    let text = err.to_string();
    eprintln!("expired: {text}");
    let at = expiry
        .replace_nanosecond(0)
        .unwrap()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    assert!(
        text.contains(&format!("SAS has expired (at {at}")) && text.contains("403"),
        "{text}"
    );
    assert!(text.contains("cannot be renewed"), "{text}");
    assert_no_secret(&err, &sig_of(&url));
}

/// A provider that hands out queued answers and records why it was asked.
#[derive(Debug)]
struct QueuedProvider {
    answers: Mutex<Vec<String>>,
    calls: Mutex<Vec<SasRequest>>,
}

impl QueuedProvider {
    fn new(answers: Vec<String>) -> Arc<Self> {
        Arc::new(QueuedProvider {
            answers: Mutex::new(answers.into_iter().rev().collect()),
            calls: Mutex::new(Vec::new()),
        })
    }

    fn calls(&self) -> Vec<SasRequest> {
        self.calls.lock().unwrap().clone()
    }
}

#[async_trait::async_trait]
impl SasProvider for QueuedProvider {
    async fn get_sas(&self, reason: SasRequest) -> Result<String, BoxError> {
        self.calls.lock().unwrap().push(reason);
        self.answers
            .lock()
            .unwrap()
            .pop()
            .ok_or_else(|| "no more SAS tokens".into())
    }
}

/// A repository on `blob_url` authorised by `provider`.
fn provider_repo(
    blob_url: &str,
    provider: Arc<QueuedProvider>,
    options: BlobRepositoryOptions,
) -> BlobXmlRepository {
    BlobXmlRepository::builder()
        .blob_url(blob_url)
        .sas_provider(provider)
        .options(options)
        .build()
        .unwrap()
}

fn blob_sas_query(az: &Azurite, container: &str, expiry: OffsetDateTime) -> String {
    sas::blob_sas(
        ACCOUNT_NAME,
        &az.account_key(),
        container,
        BLOB,
        Permissions::KEY_RING_BLOB,
        &SasWindow::until(expiry),
    )
    .unwrap()
    .query()
    .to_owned()
}

#[tokio::test]
async fn sas_provider_is_asked_again_after_a_403() {
    let az = azurite();
    let container = azurite::unique_name("provider");
    az.create_container(&container).await.unwrap();
    let blob_url = sas::blob_url(&az.blob_endpoint(), &container, BLOB);
    let good = blob_sas_query(az, &container, in_one_hour());
    let expired = blob_sas_query(
        az,
        &container,
        OffsetDateTime::now_utc() - Duration::hours(1),
    );
    let tampered = good.replace("&sig=", "&sig=AAAA");

    for first in [expired, tampered] {
        let provider = QueuedProvider::new(vec![first, good.clone()]);
        let r = provider_repo(&blob_url, provider.clone(), fast_options());
        let k = key_element(Uuid::new_v4());
        r.store_element(&k, "k").await.unwrap();
        assert!(r.get_all_elements().await.unwrap().contains(&k));
        assert_eq!(
            provider.calls(),
            vec![SasRequest::Initial, SasRequest::Rejected]
        );
    }

    // A provider that only has bad tokens: the error says the renewed SAS was refused too.
    let bad = blob_sas_query(
        az,
        &container,
        OffsetDateTime::now_utc() - Duration::hours(2),
    );
    let provider = QueuedProvider::new(vec![bad.clone(), bad.clone()]);
    let r = provider_repo(&blob_url, provider.clone(), fast_options());
    let err = r.get_all_elements().await.unwrap_err();
    eprintln!("provider with bad tokens: {err}");
    assert!(
        err.to_string().contains("SAS has expired") && err.to_string().contains("refused too"),
        "{err}"
    );
    assert_no_secret(
        &err,
        &sig_of(&Url::parse(&format!("{blob_url}?{bad}")).unwrap()),
    );
    assert_eq!(provider.calls().len(), 2);

    // A failing provider is reported as such.
    let provider = QueuedProvider::new(vec![]);
    let r = provider_repo(&blob_url, provider, fast_options());
    let err = r.get_all_elements().await.unwrap_err();
    assert!(err.to_string().contains("SAS provider failed"), "{err}");
}

/// The SAS policy signs and renews every request the repository sends, not only reads and
/// writes of the blob: creating a missing container and probing use the provider's SAS too,
/// and a refused SAS is renewed once for all of them.
#[tokio::test]
async fn a_provider_sas_is_renewed_once_for_every_kind_of_request() {
    let az = azurite();
    let container = azurite::unique_name("providerall");
    let blob_url = sas::blob_url(&az.blob_endpoint(), &container, BLOB);
    // An account SAS may create the container; the first answer is refused.
    let good = az.account_sas(in_one_hour()).unwrap().query().to_owned();
    let tampered = good.replace("&sig=", "&sig=AAAA");
    let provider = QueuedProvider::new(vec![tampered, good]);
    let options = BlobRepositoryOptions {
        create_container_if_missing: true,
        ..fast_options()
    };
    let r = provider_repo(&blob_url, provider.clone(), options);

    let probe = r.probe().await.unwrap();
    assert!(!probe.exists, "the container does not exist yet");
    assert_eq!(
        provider.calls(),
        vec![SasRequest::Initial, SasRequest::Rejected]
    );
    let k = key_element(Uuid::new_v4());
    r.store_element(&k, "k").await.unwrap();
    assert!(r.probe().await.unwrap().exists);
    assert_eq!(r.get_all_elements().await.unwrap(), vec![k]);
    assert_eq!(
        provider.calls().len(),
        2,
        "the renewed SAS served every request"
    );
}

#[tokio::test]
async fn sas_provider_is_asked_before_expiry() {
    let az = azurite();
    let container = azurite::unique_name("providerexp");
    az.create_container(&container).await.unwrap();
    let blob_url = sas::blob_url(&az.blob_endpoint(), &container, BLOB);
    let now = OffsetDateTime::now_utc();
    let clock = Arc::new(ManualClock::new(now));
    let provider = QueuedProvider::new(vec![
        blob_sas_query(az, &container, now + Duration::minutes(30)),
        blob_sas_query(az, &container, now + Duration::hours(2)),
    ]);
    let options = BlobRepositoryOptions {
        clock: clock.clone(),
        ..fast_options()
    };
    let r = provider_repo(&blob_url, provider.clone(), options);
    r.get_all_elements().await.unwrap();
    clock.advance(Duration::minutes(19));
    r.get_all_elements().await.unwrap();
    assert_eq!(provider.calls(), vec![SasRequest::Initial]);
    clock.advance(Duration::minutes(2)); // 9 minutes left < 10
    r.get_all_elements().await.unwrap();
    assert_eq!(
        provider.calls(),
        vec![SasRequest::Initial, SasRequest::Expiring]
    );
}

#[tokio::test]
async fn connection_string_with_account_key_mints_and_re_mints() {
    let az = azurite();
    let container = azurite::unique_name("connstr");
    az.create_container(&container).await.unwrap();
    let t0 = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap();
    let clock = Arc::new(ManualClock::new(t0));
    let recorder = Arc::new(QueryRecorder::default());
    let mut options = BlobRepositoryOptions {
        clock: clock.clone(),
        ..fast_options()
    };
    options
        .client_options
        .per_try_policies
        .push(recorder.clone());
    let r = BlobXmlRepository::builder()
        .connection_string(&az.connection_string(), &container, BLOB)
        .options(options)
        .build()
        .unwrap();
    let dbg = format!("{r:?} {}", r.describe());
    assert!(
        !dbg.contains(&az.connection_string()[..40]) && !dbg.contains("Eby8"),
        "{dbg}"
    );
    assert_eq!(
        r.sas_expiry().await,
        None,
        "nothing minted before the first request"
    );

    let k = key_element(Uuid::new_v4());
    r.store_element(&k, "k").await.unwrap();
    assert_eq!(r.sas_expiry().await, Some(t0 + Duration::hours(1)));

    // The schedule: the 1-hour SAS is kept for 50 minutes, then re-minted.
    clock.advance(Duration::minutes(49));
    assert_eq!(r.get_all_elements().await.unwrap(), vec![k.clone()]);
    assert_eq!(r.sas_expiry().await, Some(t0 + Duration::hours(1)));
    clock.advance(Duration::minutes(1));
    assert_eq!(r.get_all_elements().await.unwrap(), vec![k.clone()]);
    assert_eq!(
        r.sas_expiry().await,
        Some(t0 + Duration::minutes(50) + Duration::hours(1))
    );
    // Long after the first SAS expired (by the manual clock): a new one, still working.
    clock.advance(Duration::hours(3));
    let k2 = key_element(Uuid::new_v4());
    r.store_element(&k2, "k2").await.unwrap();
    assert_eq!(
        r.sas_expiry().await,
        Some(t0 + Duration::minutes(230) + Duration::hours(1))
    );
    assert_eq!(
        key_ids(&repo(
            &az.blob_sas_url(&container, BLOB, "r", in_one_hour())
                .unwrap()
        ))
        .await
        .len(),
        2
    );

    // What went over the wire: a blob-scoped SAS with racwd, never the account key.
    let seen = recorder.seen.lock().unwrap().clone();
    assert!(!seen.is_empty());
    for query in &seen {
        let info = SasInfo::parse(query).unwrap();
        assert_eq!(
            info.resource.as_deref(),
            Some("b"),
            "{}",
            sas::redact(query)
        );
        assert_eq!(info.permissions.as_deref(), Some("racwd"));
        assert!(info.resource_types.is_none());
    }
    let distinct: std::collections::HashSet<_> = seen
        .iter()
        .map(|q| SasInfo::parse(q).unwrap().expiry)
        .collect();
    assert_eq!(distinct.len(), 3, "three SAS tokens were minted");

    // UseDevelopmentStorage=true addresses the emulator's default endpoint.
    let dev = BlobXmlRepository::builder()
        .connection_string("UseDevelopmentStorage=true", &container, BLOB)
        .options(fast_options())
        .build()
        .unwrap();
    assert_eq!(
        dev.blob_url().as_str(),
        format!("http://127.0.0.1:10000/devstoreaccount1/{container}/{BLOB}")
    );

    // A SharedAccessSignature connection string works like a SAS URL.
    let token = az.account_sas(in_one_hour()).unwrap();
    let cs = format!(
        "BlobEndpoint={};SharedAccessSignature={}",
        az.blob_endpoint(),
        token.query()
    );
    let by_sas = BlobXmlRepository::builder()
        .connection_string(&cs, &container, BLOB)
        .options(fast_options())
        .build()
        .unwrap();
    assert_eq!(key_ids(&by_sas).await.len(), 2);
}

/// Records the query string of every request.
#[derive(Debug, Default)]
struct QueryRecorder {
    seen: Mutex<Vec<String>>,
}

#[async_trait::async_trait]
impl Policy for QueryRecorder {
    async fn send(
        &self,
        ctx: &Context,
        request: &mut Request,
        next: &[Arc<dyn Policy>],
    ) -> PolicyResult {
        let query = request.url().query().unwrap_or("").to_owned();
        self.seen.lock().unwrap().push(query);
        next[0].send(ctx, request, &next[1..]).await
    }
}

const FOREIGN: &str = r#"<f:thing xmlns:f="urn:foreign"  b = 'single "quoted"'  a="x">text &amp; <!-- c --><f:inner/></f:thing>"#;
const MALFORMED_KEY: &str = r#"<key id="0b0b0b0b-1111-2222-3333-444444444444" version="1"><creationDate>not a date</creationDate><activationDate>2015-01-01T00:00:00Z</activationDate><expirationDate>2099-01-01T00:00:00Z</expirationDate><descriptor deserializerType="X"><descriptor /></descriptor></key>"#;

#[tokio::test]
async fn foreign_and_malformed_elements_survive_every_write_byte_for_byte() {
    let (_, url) = fresh_blob(azurite(), "foreign").await;
    put_raw(
        &url,
        format!("{DECLARATION}\n<repository>\n  {FOREIGN}\n  {MALFORMED_KEY}\n</repository>")
            .as_bytes(),
    )
    .await;
    let check = |text: &str| {
        assert_eq!(text.matches(FOREIGN).count(), 1, "{text}");
        assert_eq!(text.matches(MALFORMED_KEY).count(), 1, "{text}");
    };

    let provider = DataProtectionProvider::builder()
        .application_name("foreign-test")
        .repository(shared(repo(&url)))
        .build()
        .await
        .unwrap();
    let ring = provider.key_ring().unwrap();
    assert!(
        ring.problems()
            .iter()
            .any(|p| matches!(p, KeySetProblem::MalformedKey { .. })
                && p.to_string().to_lowercase().contains("date")),
        "{:?}",
        ring.problems()
    );
    let first_key = ring.default_key_id().unwrap();
    check(&raw_text(&url).await);

    let set = KeySet::from_elements(&repo(&url).get_all_elements().await.unwrap()).unwrap();
    assert_eq!(set.keys.len(), 1);
    assert_eq!(set.problems.len(), 1);
    assert_eq!(set.foreign_elements, 1);

    // Revoke, create, delete: the foreign and malformed elements are kept exactly.
    let manager = provider.key_manager();
    manager.revoke_key(first_key, Some("test")).await.unwrap();
    check(&raw_text(&url).await);
    let now = OffsetDateTime::now_utc();
    let second = manager
        .create_key(now, now + Duration::days(90))
        .await
        .unwrap();
    check(&raw_text(&url).await);
    let deleted = manager
        .delete_keys(&|k| k.id() == second.id(), true)
        .await
        .unwrap();
    assert_eq!(deleted, 1);
    let text = raw_text(&url).await;
    check(&text);
    assert!(!text.contains(&second.id().to_string()));
    assert!(
        text.starts_with(&format!("{DECLARATION}<repository>")),
        "{text}"
    );
}

fn vector_path() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../core/tests/vectors/xml/repository-blob.xml")
}

#[tokio::test]
async fn dotnet_blob_vector_is_read() {
    let (_, url) = fresh_blob(azurite(), "vector").await;
    let bytes = std::fs::read(vector_path()).unwrap();
    put_raw(&url, &bytes).await;
    let r = repo(&url);
    let set = KeySet::from_elements(&r.get_all_elements().await.unwrap()).unwrap();
    assert_eq!(set.keys.len(), 1);
    assert_eq!(set.revocations.len(), 1);
    let id = Uuid::parse_str("ba73c9ce-d322-4e45-af90-341307e11c04").unwrap();
    assert_eq!(set.keys[0].id(), id);

    // The key expired in 2015: load it as of April 2015.
    let provider = DataProtectionProvider::builder()
        .application_name("vector")
        .repository(shared(repo(&url)))
        .auto_generate_keys(false)
        .clock(Arc::new(ManualClock::new(datetime!(2015-04-01 0:00 UTC))))
        .build()
        .await
        .unwrap();
    assert_eq!(provider.key_ring().unwrap().default_key_id(), Some(id));
    let p = provider.create_protector("purpose");
    assert_eq!(
        p.unprotect_str(&p.protect_str("hi").unwrap()).unwrap(),
        "hi"
    );

    // An append keeps the .NET-written children byte for byte.
    r.store_element(&key_element(Uuid::new_v4()), "k")
        .await
        .unwrap();
    let original = String::from_utf8(bytes).unwrap();
    let children = original
        .trim_start_matches('\u{feff}')
        .trim_start_matches(DECLARATION)
        .trim_start_matches("<repository>")
        .trim_end()
        .trim_end_matches("</repository>");
    assert!(raw_text(&url).await.contains(children));
}

#[tokio::test]
async fn blob_written_here_has_the_dotnet_shape() {
    let (_, url) = fresh_blob(azurite(), "shape").await;
    let provider = DataProtectionProvider::builder()
        .application_name("shape")
        .repository(shared(repo(&url)))
        .build()
        .await
        .unwrap();
    let id = provider.key_ring().unwrap().default_key_id().unwrap();
    provider
        .key_manager()
        .revoke_key(id, Some("shape test"))
        .await
        .unwrap();

    let bytes = raw(&url).await.unwrap();
    assert!(!bytes.starts_with(b"\xEF\xBB\xBF"));
    let text = String::from_utf8(bytes).unwrap();
    assert!(
        text.starts_with(&format!("{DECLARATION}<repository><key id=\"{id}\"")),
        "{text}"
    );
    assert!(text.ends_with("</revocation></repository>"), "{text}");
    assert!(
        !text.contains('\n') && !text.contains("> <"),
        "unformatted: {text}"
    );

    let root = Element::parse(text.trim_start_matches(DECLARATION)).unwrap();
    assert_eq!(root.name(), "repository");
    let names: Vec<&str> = root.elements().map(Element::name).collect();
    assert_eq!(names, vec!["key", "revocation"]);

    // Same child layout as the .NET vector's key.
    let vector = std::fs::read_to_string(vector_path()).unwrap();
    let vector_root = Element::parse(vector.trim_start_matches(DECLARATION)).unwrap();
    let layout = |r: &Element| -> Vec<String> {
        r.child("key")
            .unwrap()
            .elements()
            .map(|e| e.name().to_owned())
            .collect()
    };
    assert_eq!(layout(&root), layout(&vector_root));
    let key = root.child("key").unwrap();
    assert_eq!(key.attr("version"), Some("1"));
}

#[tokio::test]
async fn delete_elements_is_one_conditional_rewrite() {
    let (_, url) = fresh_blob(azurite(), "delete").await;
    let r = repo(&url);
    let ids: Vec<Uuid> = (0..4).map(|_| Uuid::new_v4()).collect();
    for id in &ids {
        r.store_element(&key_element(*id), "k").await.unwrap();
    }
    let doomed = [ids[1].to_string(), ids[3].to_string()];
    let chooser = delete_where(move |e| {
        e.attr("id")
            .filter(|id| doomed.contains(&id.to_string()))
            .map(|_| DeletionOrder::Key)
    });
    // Another instance changed the blob meanwhile: the rewrite re-reads and still applies.
    let other = repo(&url);
    let extra = Uuid::new_v4();
    r.get_all_elements().await.unwrap();
    other.store_element(&key_element(extra), "k").await.unwrap();
    assert_eq!(r.delete_elements(&chooser).await.unwrap(), 2);
    assert_eq!(
        key_ids(&other).await,
        vec![ids[0].to_string(), ids[2].to_string(), extra.to_string()]
    );
    assert_eq!(r.delete_elements(&chooser).await.unwrap(), 0);
}

#[tokio::test]
async fn injected_client_and_container_client() {
    let az = azurite();
    let container = azurite::unique_name("injected");
    let url = az
        .blob_sas_url(&container, BLOB, "racwd", in_one_hour())
        .unwrap();
    let options = BlobRepositoryOptions {
        create_container_if_missing: true,
        ..fast_options()
    };
    let r = BlobXmlRepository::builder()
        .client(azurite::blob_client(url.clone()).unwrap())
        .container_client(az.container_client(&container).unwrap())
        .options(options)
        .build()
        .unwrap();
    assert!(r.describe().contains("application-supplied client"));
    let k = key_element(Uuid::new_v4());
    r.store_element(&k, "k").await.unwrap();
    assert_eq!(repo(&url).get_all_elements().await.unwrap(), vec![k]);
}
