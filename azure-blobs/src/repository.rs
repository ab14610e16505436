//! [`BlobXmlRepository`]: the whole key ring in one block blob.
//!
//! The repository implements core's storage primitive on an SDK [`BlobClient`]; how requests
//! are authorised (and SAS renewal) is the pipeline policy of [`crate::auth`], how the
//! repository is built is [`crate::repository_builder`].

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use azure_core::credentials::TokenCredential;
use azure_core::http::{Etag, RequestContent, StatusCode, Url};
use azure_storage_blob::models::{BlobClientDownloadOptions, BlobClientUploadOptions};
use azure_storage_blob::{BlobClient, BlobContainerClient};
use dataprotection::repository::{
    RetryPolicy, Snapshot, StorageError, Version, VersionedRepository, WriteCondition,
};
use dataprotection::xml::{ClassifiedElement, RepositoryDocument};
use dataprotection::{Error, Result};
use time::OffsetDateTime;
use tokio::sync::Mutex;

use crate::auth::Authorization;
use crate::classify::{Class, classify};
use crate::error::BlobError;
use crate::options::BlobRepositoryOptions;
use crate::repository_builder::BlobXmlRepositoryBuilder;
use crate::url::Target;

/// The `Content-Type` of the uploaded blob, as .NET's repository sets it.
pub const CONTENT_TYPE: &str = "application/xml; charset=utf-8";

/// What [`BlobXmlRepository::probe`] saw of the blob, for diagnostics.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct BlobProbe {
    /// Whether the blob exists (`false` also when its container does not).
    pub exists: bool,
    /// The blob's ETag (`None` when it does not exist).
    pub etag: Option<String>,
    /// The storage service's clock: its `Date` response header, when it sent one (only
    /// read when the blob exists). It has a one-second resolution.
    pub server_date: Option<OffsetDateTime>,
}

/// What is known of the blob.
enum Cache {
    /// Not read yet (or its state is unknown).
    Unknown,
    /// The blob does not exist (or its container does not, and may be created).
    Absent,
    /// The blob as last read or written.
    Present { etag: Etag, doc: RepositoryDocument },
}

/// Result of one conditional upload.
enum Written {
    /// Stored; the new ETag.
    Stored(Etag),
    /// 409 or 412: someone else wrote first (or our own earlier write did).
    Conflict,
    /// The outcome is unknown (5xx, timeout, connection lost after sending).
    Ambiguous(BlobError),
}

impl Cache {
    /// The ETag of the document held, to ask for it conditionally.
    fn etag(&self) -> Option<Etag> {
        match self {
            Cache::Present { etag, .. } => Some(etag.clone()),
            _ => None,
        }
    }
}

/// What a conditional download found.
enum Fetched {
    /// The blob still has the ETag asked about (304).
    NotModified,
    /// The blob does not exist (or its container does not, and may be created).
    Absent,
    /// The blob, parsed (and its elements classified, when asked for).
    Present {
        etag: Etag,
        doc: RepositoryDocument,
        classified: Option<Vec<ClassifiedElement>>,
    },
}

/// A [`VersionedRepository`] (and so an
/// [`XmlRepository`](dataprotection::repository::XmlRepository)) that keeps the whole key ring
/// in one block blob, in the format of `Azure.Extensions.AspNetCore.DataProtection.Blobs` (a
/// `<repository>` document whose children are the keys and revocations), so that .NET and Rust
/// applications can share it.
///
/// See the [crate documentation](crate) for the format, the concurrency rules and examples.
///
/// Built with [`BlobXmlRepository::new`] (a blob URL, with a SAS or with a token credential)
/// or [`BlobXmlRepository::builder`] (a connection string, a [`crate::SasProvider`], a client
/// built by the application).
///
/// Operations of one instance are serialised; separate instances (processes) coordinate
/// through the ETag.
pub struct BlobXmlRepository {
    target: Target,
    blob: BlobClient,
    /// Creates the container when it is missing and the options ask for it.
    container: BlobContainerClient,
    auth: Authorization,
    options: BlobRepositoryOptions,
    description: String,
    cache: Mutex<Cache>,
}

impl fmt::Debug for BlobXmlRepository {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BlobXmlRepository")
            .field("blob_url", &self.target.blob_url.as_str())
            .field("auth", &self.auth.describe())
            .field(
                "create_container_if_missing",
                &self.options.create_container_if_missing,
            )
            .field("max_attempts", &self.options.max_attempts)
            .finish_non_exhaustive()
    }
}

impl BlobXmlRepository {
    /// A repository on the blob at `blob_url`, the Azure SDK way.
    ///
    /// * With a `credential` (an Entra ID token credential: managed identity, workload
    ///   identity, a client secret...): `blob_url` must be `https` and carry no SAS. The
    ///   identity needs a data-plane role on the container, such as Storage Blob Data
    ///   Contributor; the token scope is `https://storage.azure.com/.default`.
    /// * Without one, `blob_url` must carry a SAS
    ///   (`https://acct.blob.core.windows.net/container/blob?sv=...&sig=...`) with permissions
    ///   `racwd` on the blob (`rw` at least, `c` to create it); a URL with neither is refused
    ///   with [`BlobError::MissingCredential`] (anonymous access cannot write a key ring). A
    ///   SAS URL cannot be renewed: when it has less than
    ///   [`BlobRepositoryOptions::sas_expiry_warning`] left a warning is logged, and once it
    ///   has expired every request fails with an error naming the expiry time. For
    ///   long-running applications prefer a token credential, or a connection string with an
    ///   account key or a [`crate::SasProvider`] through [`BlobXmlRepository::builder`].
    ///
    /// `options` default to [`BlobRepositoryOptions::default`]. Sends nothing.
    ///
    /// ```
    /// use dataprotection_azure_blobs::{BlobError, BlobXmlRepository};
    /// let repository = BlobXmlRepository::new(
    ///     "https://myaccount.blob.core.windows.net/dataprotection/keys.xml?sv=2026-04-06&sr=b&sp=racwd&se=2030-01-01T00:00:00Z&sig=c2ln",
    ///     None,
    ///     None,
    /// )?;
    /// assert!(!format!("{repository:?}").contains("sig="));
    ///
    /// let anonymous = BlobXmlRepository::new(
    ///     "https://myaccount.blob.core.windows.net/dataprotection/keys.xml",
    ///     None,
    ///     None,
    /// );
    /// assert!(matches!(anonymous, Err(BlobError::MissingCredential { .. })));
    /// # Ok::<(), BlobError>(())
    /// ```
    ///
    /// # Errors
    /// [`BlobError::InvalidUrl`] (the message is redacted) or
    /// [`BlobError::MissingCredential`].
    pub fn new(
        blob_url: &str,
        credential: Option<Arc<dyn TokenCredential>>,
        options: Option<BlobRepositoryOptions>,
    ) -> std::result::Result<Self, BlobError> {
        let mut builder = Self::builder().blob_url(blob_url);
        if let Some(credential) = credential {
            builder = builder.credential(credential);
        }
        if let Some(options) = options {
            builder = builder.options(options);
        }
        builder.build()
    }

    /// A builder, for a connection string, a [`crate::SasProvider`] or a client built by the
    /// application.
    pub fn builder() -> BlobXmlRepositoryBuilder {
        BlobXmlRepositoryBuilder::default()
    }

    pub(crate) fn assemble(
        target: Target,
        blob: BlobClient,
        container: BlobContainerClient,
        auth: Authorization,
        options: BlobRepositoryOptions,
    ) -> Self {
        let description = format!("Azure blob {} ({})", target.blob_url, auth.describe());
        BlobXmlRepository {
            target,
            blob,
            container,
            auth,
            options,
            description,
            cache: Mutex::new(Cache::Unknown),
        }
    }

    /// The blob URL, without any query (so without a SAS).
    pub fn blob_url(&self) -> &Url {
        &self.target.blob_url
    }

    /// The expiry of the SAS currently in use, if requests carry a SAS whose expiry is known
    /// (for minted and provider SAS tokens, `None` until the first request).
    pub async fn sas_expiry(&self) -> Option<OffsetDateTime> {
        self.auth.sas_info().await.map(|info| info.expiry)
    }

    /// Asks the service for the blob's properties (one `HEAD` request, authorised as every
    /// other request, with the same SAS renewal): whether it exists, its ETag and the
    /// service's clock. Reads nothing of the content and changes nothing.
    pub async fn probe(&self) -> Result<BlobProbe> {
        let response = match self.blob.get_properties(None).await {
            Ok(response) => response,
            Err(e) => {
                return match classify(&e) {
                    Class::BlobNotFound | Class::ContainerNotFound => Ok(BlobProbe {
                        exists: false,
                        etag: None,
                        server_date: None,
                    }),
                    _ => Err(self
                        .service_error("reading the blob's properties", &e)
                        .await),
                };
            }
        };
        let headers = response.headers();
        let header = |name: &'static str| {
            headers
                .get_optional_str(&azure_core::http::headers::HeaderName::from_static(name))
                .map(str::to_owned)
        };
        Ok(BlobProbe {
            exists: true,
            etag: header("etag"),
            server_date: header("date").and_then(|d| azure_core::time::parse_rfc7231(&d).ok()),
        })
    }

    /// A repository error whose message names the blob.
    fn error(&self, what: impl fmt::Display, source: BlobError) -> Error {
        Error::Repository {
            message: format!("{}: {what}", self.description),
            source: Some(Box::new(source)),
        }
    }

    /// The repository error for a failed request: a refused credential with what to do about
    /// it, a missing container, or the service's (or the SAS provider's) error.
    async fn service_error(&self, action: &str, e: &azure_core::Error) -> Error {
        let source = BlobError::service(e);
        let status = source
            .status()
            .map_or_else(|| "no response".to_owned(), |s| format!("HTTP {s}"));
        let code = source.code().unwrap_or("").to_owned();
        let what = match classify(e) {
            Class::Forbidden => format!(
                "{action} was refused ({status} {code}): {}",
                self.auth
                    .forbidden_hint(source.code(), self.options.clock.now())
                    .await
            ),
            Class::ContainerNotFound => format!(
                "container {} does not exist; create it or set create_container_if_missing",
                self.target.container
            ),
            _ => format!("{action} failed: {source}"),
        };
        self.error(what, source)
    }

    /// Downloads the blob, conditionally on `if_none_match` (a 304 costs no parsing). A blob
    /// larger than [`BlobRepositoryOptions::max_document_size`] is refused from its announced
    /// size, before its content is read; a blob whose root is not `<repository>` is refused.
    async fn fetch(
        &self,
        if_none_match: Option<Etag>,
        classify_elements: bool,
    ) -> std::result::Result<Fetched, StorageError> {
        let limit = self.options.max_document_size;
        let options = BlobClientDownloadOptions {
            if_none_match: if_none_match.clone(),
            ..Default::default()
        };
        let downloaded = async {
            let response = self.blob.download(Some(options)).await?;
            let etag = response.properties.etag.clone();
            let size = announced_size(&response.headers)
                .or(response.properties.content_length)
                .unwrap_or(0);
            if size > limit {
                return Ok(Err(size));
            }
            let body = response.body.collect().await?;
            if body.len() as u64 > limit {
                return Ok(Err(body.len() as u64));
            }
            Ok(Ok((etag, body)))
        };
        let e = match downloaded.await {
            Ok(Err(size)) => {
                return Err(StorageError::Fatal(self.error(
                    "the blob is too large to be a key ring document",
                    BlobError::DocumentTooLarge {
                        blob: self.target.blob_url.to_string(),
                        size,
                        limit,
                    },
                )));
            }
            Ok(Ok((etag, body))) => {
                let (etag, doc, classified) = self.parse(etag, &body, classify_elements)?;
                return Ok(Fetched::Present {
                    etag,
                    doc,
                    classified,
                });
            }
            Err(e) => e,
        };
        match classify(&e) {
            Class::NotModified if if_none_match.is_some() => Ok(Fetched::NotModified),
            Class::BlobNotFound => Ok(Fetched::Absent),
            // Created on the first write.
            Class::ContainerNotFound if self.options.create_container_if_missing => {
                Ok(Fetched::Absent)
            }
            Class::Transient => Err(StorageError::Transient(
                self.service_error("reading the blob", &e).await,
            )),
            _ => Err(StorageError::Fatal(
                self.service_error("reading the blob", &e).await,
            )),
        }
    }

    /// The downloaded blob as a key ring document (with its elements classified where they
    /// were parsed, when `classify_elements`); anything else is refused, and left untouched.
    fn parse(
        &self,
        etag: Option<Etag>,
        body: &[u8],
        classify_elements: bool,
    ) -> std::result::Result<(Etag, RepositoryDocument, Option<Vec<ClassifiedElement>>), StorageError>
    {
        let parsed = if classify_elements {
            RepositoryDocument::parse_classified(body)
                .map(|(doc, classified)| (doc, Some(classified)))
        } else {
            RepositoryDocument::parse(body).map(|doc| (doc, None))
        };
        let (doc, classified) = parsed.map_err(|err| {
            StorageError::Fatal(Error::Repository {
                message: format!(
                    "{}: the blob is not a well-formed key ring document ({err}); it is left \
                     untouched and nothing will be written to it until it is repaired",
                    self.description
                ),
                source: Some(Box::new(err)),
            })
        })?;
        let root = doc.root_name();
        if root.rsplit(':').next() != Some("repository") {
            return Err(StorageError::Fatal(self.error(
                "the blob is not a key ring document; it is left untouched and nothing will be \
                 written to it",
                BlobError::NotAKeyRing {
                    blob: self.target.blob_url.to_string(),
                    root: root.to_owned(),
                },
            )));
        }
        let etag = etag.ok_or_else(|| {
            StorageError::Fatal(self.error(
                "the service returned no ETag",
                BlobError::Service {
                    status: None,
                    code: None,
                    detail: "missing ETag".into(),
                },
            ))
        })?;
        tracing::debug!(
            blob = %self.target.blob_url,
            bytes = body.len(),
            elements = doc.children().len(),
            "read the key ring blob"
        );
        Ok((etag, doc, classified))
    }

    /// Reads the blob into the cache (conditionally on the cached ETag) and returns it.
    async fn refresh(&self, cache: &mut Cache) -> std::result::Result<Snapshot, StorageError> {
        self.update(cache).await?;
        Ok(snapshot_of(cache))
    }

    /// Reads the blob into the cache, conditionally on the cached ETag.
    async fn update(&self, cache: &mut Cache) -> std::result::Result<(), StorageError> {
        match self.fetch(cache.etag(), false).await? {
            Fetched::NotModified => {}
            Fetched::Absent => *cache = Cache::Absent,
            Fetched::Present { etag, doc, .. } => *cache = Cache::Present { etag, doc },
        }
        Ok(())
    }

    /// One conditional upload; when the container is missing and may be created, creates it
    /// and uploads once more. That second upload is not a retry of a failure (the first one
    /// cannot have been applied), and it is the only request this crate sends again besides
    /// the SAS policy's one renewal: transient failures are the SDK retry policy's, conflicts
    /// and unknown outcomes core's convergence loop's.
    async fn put(&self, bytes: Vec<u8>, condition: &WriteCondition) -> Result<Written> {
        let mut uploaded = self.upload(&bytes, condition).await;
        if let Err(e) = &uploaded
            && classify(e) == Class::ContainerNotFound
            && self.options.create_container_if_missing
        {
            self.create_container().await?;
            uploaded = self.upload(&bytes, condition).await;
        }
        match uploaded {
            Ok(Some(etag)) => Ok(Written::Stored(etag)),
            // Should not happen; re-reading settles it.
            Ok(None) => Ok(Written::Ambiguous(BlobError::Service {
                status: None,
                code: None,
                detail: "the upload response carried no ETag".into(),
            })),
            Err(e) => match classify(&e) {
                Class::Conflict => Ok(Written::Conflict),
                Class::Transient => Ok(Written::Ambiguous(BlobError::service(&e))),
                _ => Err(self.service_error("writing the blob", &e).await),
            },
        }
    }

    /// One upload with `If-Match` (or `If-None-Match: *` to create the blob); the new ETag.
    async fn upload(
        &self,
        bytes: &[u8],
        condition: &WriteCondition,
    ) -> azure_core::Result<Option<Etag>> {
        let mut options = BlobClientUploadOptions {
            blob_content_type: Some(CONTENT_TYPE.to_owned()),
            ..Default::default()
        };
        match condition {
            WriteCondition::Update(version) => {
                options.if_match = Some(Etag::from(version.as_str().to_owned()));
            }
            WriteCondition::Create => options.if_none_match = Some(Etag::from("*")),
        }
        let content = RequestContent::from(bytes.to_vec());
        Ok(self.blob.upload(content, Some(options)).await?.etag)
    }

    /// Creates the container (a 409 from a concurrent creation is fine).
    async fn create_container(&self) -> Result<()> {
        let e = match self.container.create(None).await {
            Ok(_) => {
                tracing::info!(
                    container = %self.target.container,
                    url = %self.target.container_url,
                    "created the key ring container"
                );
                return Ok(());
            }
            Err(e) if e.http_status() == Some(StatusCode::Conflict) => return Ok(()),
            Err(e) => e,
        };
        let source = BlobError::service(&e);
        let what = if classify(&e) == Class::Forbidden {
            format!(
                "container {} does not exist and creating it was refused (HTTP 403 {}): {}; or \
                 create the container beforehand",
                self.target.container,
                source.code().unwrap_or(""),
                self.auth.container_creation_hint()
            )
        } else {
            format!(
                "creating container {} failed: {source}",
                self.target.container
            )
        };
        Err(self.error(what, source))
    }
}

/// What the cache holds, as a snapshot.
fn snapshot_of(cache: &Cache) -> Snapshot {
    match cache {
        Cache::Present { etag, doc } => {
            Snapshot::new(doc.clone(), Some(Version::new(etag.to_string())))
        }
        _ => Snapshot::new(RepositoryDocument::new(), None),
    }
}

/// The blob's total size from the `Content-Range` of a (partitioned) download's first
/// response (`bytes 0-4194303/123456789`).
fn announced_size(headers: &azure_core::http::headers::Headers) -> Option<u64> {
    headers
        .get_optional_str(&azure_core::http::headers::HeaderName::from_static(
            "content-range",
        ))
        .and_then(|range| range.rsplit('/').next())
        .and_then(|total| total.trim().parse().ok())
}

/// The primitive; appends, deletions and replacements come from core's retry loop
/// (`XmlRepository` is implemented for every `VersionedRepository`).
///
/// Writes are optimistic: the blob's ETag is cached with its content, so the read before a
/// write is a conditional GET (a 304 when nothing changed); the upload carries `If-Match` (or
/// `If-None-Match: *` when creating the blob), and a 409 or 412 is
/// [`StorageError::PreconditionFailed`]. A 5xx, a timeout or a lost response is
/// [`StorageError::Transient`]: core re-reads before deciding again, so a write whose response
/// was lost is never applied twice.
#[async_trait]
impl VersionedRepository for BlobXmlRepository {
    async fn read(&self) -> std::result::Result<Snapshot, StorageError> {
        let mut cache = self.cache.lock().await;
        self.refresh(&mut cache).await
    }

    /// After a conditional GET: a document read now is classified where each element was
    /// parsed, one still cached where it is; nothing of it is copied but the keys' descriptors.
    async fn read_classified(
        &self,
    ) -> std::result::Result<(Vec<ClassifiedElement>, Option<Version>), StorageError> {
        let mut cache = self.cache.lock().await;
        match self.fetch(cache.etag(), true).await? {
            Fetched::NotModified => {}
            Fetched::Absent => *cache = Cache::Absent,
            Fetched::Present {
                etag,
                doc,
                classified: Some(classified),
            } => {
                let version = Version::new(etag.to_string());
                *cache = Cache::Present { etag, doc };
                return Ok((classified, Some(version)));
            }
            Fetched::Present { etag, doc, .. } => *cache = Cache::Present { etag, doc },
        }
        Ok(match &*cache {
            Cache::Present { etag, doc } => {
                (doc.classified(), Some(Version::new(etag.to_string())))
            }
            _ => (Vec::new(), None),
        })
    }

    /// One conditional GET with `If-None-Match: <known>`: a 304 (nothing changed) costs one
    /// request and no parsing.
    async fn read_if_changed(
        &self,
        known: &Version,
    ) -> std::result::Result<Option<Snapshot>, StorageError> {
        let mut cache = self.cache.lock().await;
        *cache = match self
            .fetch(Some(Etag::from(known.as_str().to_owned())), false)
            .await?
        {
            Fetched::NotModified => return Ok(None),
            Fetched::Absent => Cache::Absent,
            Fetched::Present { etag, doc, .. } => Cache::Present { etag, doc },
        };
        Ok(Some(snapshot_of(&cache)))
    }

    async fn write(
        &self,
        document: &RepositoryDocument,
        condition: &WriteCondition,
    ) -> std::result::Result<Version, StorageError> {
        let mut cache = self.cache.lock().await;
        match self
            .put(document.to_bytes(), condition)
            .await
            .map_err(StorageError::Fatal)?
        {
            Written::Stored(etag) => {
                let version = Version::new(etag.to_string());
                *cache = Cache::Present {
                    etag,
                    doc: document.clone(),
                };
                Ok(version)
            }
            Written::Conflict => Err(StorageError::PreconditionFailed),
            Written::Ambiguous(source) => {
                // Whatever is cached may be stale now.
                *cache = Cache::Unknown;
                Err(StorageError::Transient(self.error(
                    format!("the outcome of writing the blob is unknown: {source}"),
                    source,
                )))
            }
        }
    }

    fn retry_policy(&self) -> RetryPolicy {
        RetryPolicy {
            max_attempts: self.options.max_attempts.max(1),
            initial_backoff: self.options.initial_backoff,
            max_backoff: self.options.max_backoff,
        }
    }

    fn description(&self) -> String {
        self.description.clone()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use dataprotection::repository::XmlRepository;

    #[test]
    fn constructors_never_echo_the_signature() {
        let err = BlobXmlRepository::new(
            "https://acct.blob.core.windows.net/keys?sv=1&se=2030-01-01&sig=SECRETSIG",
            None,
            None,
        )
        .unwrap_err();
        let text = err.to_string();
        assert!(
            !text.contains("SECRETSIG") && text.contains("sig=REDACTED"),
            "{text}"
        );

        let err = BlobXmlRepository::new(
            "https://acct.blob.core.windows.net/keys/ring.xml",
            None,
            None,
        )
        .unwrap_err();
        assert!(
            matches!(err, BlobError::MissingCredential { .. })
                && err.to_string().contains("no SAS"),
            "{err}"
        );

        let repo = BlobXmlRepository::new(
            "https://acct.blob.core.windows.net/keys/ring.xml?sv=1&se=2030-01-01&sig=SECRETSIG",
            None,
            None,
        )
        .unwrap();
        let dbg = format!("{repo:?} {}", repo.describe());
        assert!(!dbg.contains("SECRETSIG") && !dbg.contains("sv=1"), "{dbg}");
        assert!(repo.describe().contains("SAS URL"));
        assert_eq!(
            repo.blob_url().as_str(),
            "https://acct.blob.core.windows.net/keys/ring.xml"
        );
        assert_eq!(repo.blob.url().query(), None, "the SAS policy adds the SAS");
    }

    #[derive(Debug)]
    struct NoToken;

    #[async_trait]
    impl TokenCredential for NoToken {
        async fn get_token(
            &self,
            _scopes: &[&str],
            _options: Option<azure_core::credentials::TokenRequestOptions<'_>>,
        ) -> azure_core::Result<azure_core::credentials::AccessToken> {
            Err(azure_core::Error::with_message(
                azure_core::error::ErrorKind::Credential,
                "no token in unit tests",
            ))
        }
    }

    #[test]
    fn token_constructor_checks_the_url() {
        let cred: Arc<dyn TokenCredential> = Arc::new(NoToken);
        let repo = BlobXmlRepository::new(
            "https://acct.blob.core.windows.net/keys/ring.xml",
            Some(cred.clone()),
            None,
        )
        .unwrap();
        assert!(repo.describe().contains("token credential"));
        let err =
            BlobXmlRepository::new("http://127.0.0.1:10000/a/keys/r", Some(cred.clone()), None)
                .unwrap_err();
        assert!(err.to_string().contains("https"), "{err}");
        let err = BlobXmlRepository::new(
            "https://acct.blob.core.windows.net/keys/ring.xml?se=2030-01-01&sig=SECRET",
            Some(cred),
            None,
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("carries a SAS") && !err.to_string().contains("SECRET"),
            "{err}"
        );
    }

    #[derive(Debug)]
    struct NoSas;

    #[async_trait]
    impl crate::SasProvider for NoSas {
        async fn get_sas(
            &self,
            _reason: crate::SasRequest,
        ) -> std::result::Result<String, dataprotection::BoxError> {
            Err("unreachable in unit tests".into())
        }
    }

    #[test]
    fn the_builder_takes_one_location_and_one_way_to_authorise() {
        let url = "https://acct.blob.core.windows.net/keys/ring.xml";
        let cred: Arc<dyn TokenCredential> = Arc::new(NoToken);
        let provider: Arc<dyn crate::SasProvider> = Arc::new(NoSas);
        let configuration = |r: std::result::Result<BlobXmlRepository, BlobError>| {
            matches!(r, Err(BlobError::Configuration(_)))
        };
        assert!(configuration(BlobXmlRepository::builder().build()));
        assert!(configuration(
            BlobXmlRepository::builder()
                .blob_url(url)
                .blob_url(url)
                .build()
        ));
        assert!(configuration(
            BlobXmlRepository::builder()
                .blob_url(url)
                .credential(cred.clone())
                .sas_provider(provider.clone())
                .build()
        ));
        assert!(configuration(
            BlobXmlRepository::builder()
                .connection_string("UseDevelopmentStorage=true", "keys", "ring.xml")
                .credential(cred)
                .build()
        ));
        let by_provider = BlobXmlRepository::builder()
            .blob_url(url)
            .sas_provider(provider.clone())
            .build()
            .unwrap();
        assert!(by_provider.describe().contains("SAS provider"));
        let err = BlobXmlRepository::builder()
            .blob_url(format!("{url}?sv=1&sig=SECRET"))
            .sas_provider(provider)
            .build()
            .unwrap_err();
        assert!(!err.to_string().contains("SECRET"), "{err}");
        let by_key = BlobXmlRepository::builder()
            .connection_string("UseDevelopmentStorage=true", "keys", "ring.xml")
            .build()
            .unwrap();
        let dbg = format!("{by_key:?} {}", by_key.describe());
        assert!(
            dbg.contains("account key") && !dbg.contains("Eby8"),
            "{dbg}"
        );
        let err = BlobXmlRepository::builder()
            .connection_string("AccountName=a;AccountKey=bm90IGEga2V5", "Bad_Name", "r")
            .build()
            .unwrap_err();
        assert!(!err.to_string().contains("bm90IGEga2V5"), "{err}");
    }
}
