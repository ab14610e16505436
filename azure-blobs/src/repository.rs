//! [`BlobXmlRepository`]: the whole key ring in one block blob.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use azure_core::credentials::TokenCredential;
use azure_core::error::ErrorKind;
use azure_core::http::{Etag, RequestContent, StatusCode, Url};
use azure_storage_blob::models::{BlobClientDownloadOptions, BlobClientUploadOptions};
use azure_storage_blob::{
    BlobClient, BlobClientOptions, BlobContainerClient, BlobContainerClientOptions,
};
use dataprotection::error::BoxError;
use dataprotection::repository::{
    RetryPolicy, Snapshot, StorageError, Version, VersionedRepository, WriteCondition,
};
use dataprotection::xml::RepositoryDocument;
use dataprotection::{Error, Result};
use percent_encoding::percent_decode_str;
use time::OffsetDateTime;
use tokio::sync::Mutex;

use crate::connection_string::{ConnectionString, Credential};
use crate::error::BlobError;
use crate::options::BlobRepositoryOptions;
use crate::sas::{self, AccountKey, Permissions, SasInfo, SasWindow};

/// The `Content-Type` of the uploaded blob, as .NET's repository sets it.
pub const CONTENT_TYPE: &str = "application/xml; charset=utf-8";

/// Validity of the account SAS minted (from an account key) to create a missing container.
const CONTAINER_SAS_VALIDITY: time::Duration = time::Duration::minutes(15);

/// A fixed SAS that is about to expire is reported at most this often.
const EXPIRY_WARNING_INTERVAL: time::Duration = time::Duration::hours(1);

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

/// Why a [`SasProvider`] is asked for a SAS.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SasRequest {
    /// The repository has no SAS yet.
    Initial,
    /// The current SAS expires within [`BlobRepositoryOptions::sas_renew_before`].
    Expiring,
    /// The service refused the current SAS (HTTP 403): return a *new* one, not a cached copy.
    Rejected,
}

/// Supplies SAS tokens for the key-ring blob, for applications that get them from elsewhere
/// (a secrets store, a token broker, a user-delegation SAS minted with a managed identity...).
///
/// The repository asks for a SAS before its first request, again when the current one has less
/// than [`BlobRepositoryOptions::sas_renew_before`] left (judged from its `se` parameter), and
/// once more, with [`SasRequest::Rejected`], when the service answers 403; the request is then
/// retried once with the new SAS.
///
/// ```
/// use dataprotection_azure_blobs::{SasProvider, SasRequest};
/// use dataprotection::error::BoxError;
///
/// #[derive(Debug)]
/// struct FromVault;
///
/// #[async_trait::async_trait]
/// impl SasProvider for FromVault {
///     async fn get_sas(&self, _reason: SasRequest) -> Result<String, BoxError> {
///         // Fetch "sv=...&sr=b&sp=racwd&se=...&sig=..." from wherever it lives.
///         Ok(std::env::var("KEY_RING_SAS")?)
///     }
/// }
/// ```
#[async_trait]
pub trait SasProvider: fmt::Debug + Send + Sync {
    /// Returns a SAS query string for the blob (with or without a leading `?`), for example
    /// `sv=2026-04-06&sr=b&sp=racwd&se=2030-01-01T00:00:00Z&sig=...`. It is a secret: the
    /// repository never logs it. It needs permissions `racwd` on the blob (`r` and `w` at least;
    /// `c` to create the blob), and to create a missing container, an account SAS.
    async fn get_sas(&self, reason: SasRequest) -> std::result::Result<String, BoxError>;
}

/// The blob and its container.
#[derive(Clone)]
struct Target {
    /// The blob URL without a query.
    blob_url: Url,
    /// The container URL without a query.
    container_url: Url,
    /// The container name.
    container: String,
}

/// How requests are authorised.
enum Auth {
    /// A fixed SAS carried in the URL.
    Sas {
        client: Arc<BlobClient>,
        query: String,
        info: Option<SasInfo>,
    },
    /// An Entra ID token credential.
    Token {
        client: Arc<BlobClient>,
        credential: Arc<dyn TokenCredential>,
    },
    /// A client built by the application.
    Client {
        client: Arc<BlobClient>,
        container_client: Option<Arc<BlobContainerClient>>,
    },
    /// SAS tokens minted from an account key.
    AccountKey {
        account: String,
        key: AccountKey,
        blob: String,
    },
    /// SAS tokens from the application.
    Provider(Arc<dyn SasProvider>),
}

impl Auth {
    fn kind(&self) -> &'static str {
        match self {
            Auth::Sas { .. } => "SAS URL",
            Auth::Token { .. } => "token credential",
            Auth::Client { .. } => "application-supplied client",
            Auth::AccountKey { .. } => "account key (short-lived SAS minted locally)",
            Auth::Provider(_) => "SAS provider",
        }
    }

    fn renewable(&self) -> bool {
        matches!(self, Auth::AccountKey { .. } | Auth::Provider(_))
    }
}

/// A SAS obtained from an account key or a provider, and the client that carries it.
struct Current {
    client: Arc<BlobClient>,
    query: String,
    info: Option<SasInfo>,
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

struct State {
    cache: Cache,
    current: Option<Current>,
    last_expiry_warning: Option<OffsetDateTime>,
}

/// How a write is conditioned.
enum Condition {
    /// `If-Match: <etag>`: replace exactly the version that was read.
    IfMatch(Etag),
    /// `If-None-Match: *`: create the blob, only if it does not exist.
    IfNoneMatchAny,
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

/// What a conditional download found.
enum Fetched {
    /// The blob still has the ETag asked about (304).
    NotModified,
    /// The blob does not exist (or its container does not, and may be created).
    Absent,
    /// The blob, parsed.
    Present { etag: Etag, doc: RepositoryDocument },
}

/// How an SDK error is handled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Class {
    NotModified,
    BlobNotFound,
    ContainerNotFound,
    Conflict,
    Forbidden,
    Transient,
    Other,
}

fn classify(e: &azure_core::Error) -> Class {
    let code = match e.kind() {
        ErrorKind::HttpResponse { error_code, .. } => error_code.as_deref(),
        ErrorKind::Io | ErrorKind::Connection => return Class::Transient,
        _ => return Class::Other,
    };
    match e.http_status() {
        Some(StatusCode::NotModified) => Class::NotModified,
        Some(StatusCode::NotFound) if code == Some("ContainerNotFound") => Class::ContainerNotFound,
        Some(StatusCode::NotFound) => Class::BlobNotFound,
        Some(StatusCode::Conflict) | Some(StatusCode::PreconditionFailed) => Class::Conflict,
        Some(StatusCode::Forbidden) | Some(StatusCode::Unauthorized) => Class::Forbidden,
        Some(
            StatusCode::RequestTimeout
            | StatusCode::TooManyRequests
            | StatusCode::InternalServerError
            | StatusCode::BadGateway
            | StatusCode::ServiceUnavailable
            | StatusCode::GatewayTimeout,
        ) => Class::Transient,
        _ => Class::Other,
    }
}

/// Splits a blob URL into the container URL (no query), the container name and the blob name.
///
/// URLs whose host is an IP address, `localhost` or a name without a dot (Azurite, the storage
/// emulator, IP-style endpoints) carry the account as the first path segment.
fn split_blob_url(url: &Url) -> std::result::Result<(Url, String, String), String> {
    let host = url.host_str().ok_or("the URL has no host")?;
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let path_style = bare.parse::<std::net::IpAddr>().is_ok()
        || bare.eq_ignore_ascii_case("localhost")
        || !bare.contains('.');
    let segments: Vec<&str> = url.path().trim_start_matches('/').split('/').collect();
    let skip = usize::from(path_style);
    if segments.len() < skip + 2
        || segments[..skip + 2].iter().any(|s| s.is_empty())
        || segments[skip + 1..].join("/").is_empty()
    {
        return Err(if path_style {
            "expected http(s)://host:port/<account>/<container>/<blob>".into()
        } else {
            "expected https://<account>.blob.core.windows.net/<container>/<blob>".into()
        });
    }
    let mut container_url = url.clone();
    container_url.set_query(None);
    container_url.set_fragment(None);
    container_url.set_path(&format!("/{}", segments[..=skip].join("/")));
    let decode = |s: &str| percent_decode_str(s).decode_utf8_lossy().into_owned();
    Ok((
        container_url,
        decode(segments[skip]),
        decode(&segments[skip + 1..].join("/")),
    ))
}

/// `url` without its query and fragment.
fn without_query(url: &Url) -> Url {
    let mut u = url.clone();
    u.set_query(None);
    u.set_fragment(None);
    u
}

/// `url` with `query` (a SAS) as its query string.
fn with_query(url: &Url, query: &str) -> Url {
    let mut u = without_query(url);
    u.set_query(Some(query.trim_start_matches('?')));
    u
}

fn parse_url(url: &str) -> std::result::Result<Url, BlobError> {
    Url::parse(url.trim()).map_err(|e| BlobError::InvalidUrl {
        url: sas::redact(url),
        reason: e.to_string(),
    })
}

/// An [`XmlRepository`] that keeps the whole key ring in one block blob, in the format of
/// `Azure.Extensions.AspNetCore.DataProtection.Blobs` (a `<repository>` document whose children
/// are the keys and revocations), so that .NET and Rust applications can share it.
///
/// See the [crate documentation](crate) for the format, the concurrency rules and examples.
///
/// Writes are optimistic: the blob's ETag is cached with its content; an append re-reads the
/// blob (a conditional GET, cheap when nothing changed), checks that the element is not already
/// there (so a retried append never duplicates a key), evaluates the caller's precondition,
/// and uploads with `If-Match` (or `If-None-Match: *` when creating the blob). On a conflict
/// (409/412) or an ambiguous failure (5xx, timeout, lost response) it backs off and starts
/// over. Elements already in the blob are always written back byte for byte, including ones
/// this library cannot interpret; a blob that is not well-formed XML is never overwritten.
///
/// Operations of one instance are serialised; separate instances (processes) coordinate
/// through the ETag.
pub struct BlobXmlRepository {
    target: Target,
    auth: Auth,
    options: BlobRepositoryOptions,
    description: String,
    state: Mutex<State>,
}

impl fmt::Debug for BlobXmlRepository {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BlobXmlRepository")
            .field("blob_url", &self.target.blob_url.as_str())
            .field("auth", &self.auth.kind())
            .field(
                "create_container_if_missing",
                &self.options.create_container_if_missing,
            )
            .field("max_attempts", &self.options.max_attempts)
            .finish_non_exhaustive()
    }
}

impl BlobXmlRepository {
    fn build(
        target: Target,
        auth: Auth,
        options: BlobRepositoryOptions,
    ) -> std::result::Result<Self, BlobError> {
        let description = format!("Azure blob {} ({})", target.blob_url, auth.kind());
        Ok(BlobXmlRepository {
            target,
            auth,
            options,
            description,
            state: Mutex::new(State {
                cache: Cache::Unknown,
                current: None,
                last_expiry_warning: None,
            }),
        })
    }

    /// A repository on the blob addressed by `sas_url`, a full blob URL carrying a SAS
    /// (`https://acct.blob.core.windows.net/container/blob?sv=...&sig=...`), used without any
    /// other credential.
    ///
    /// A SAS URL cannot be renewed: when it has less than
    /// [`BlobRepositoryOptions::sas_expiry_warning`] left a warning is logged, and once it has
    /// expired every request fails with an error naming the expiry time. Prefer
    /// [`BlobXmlRepository::with_sas_provider`], a connection string with an account key, or a
    /// token credential for long-running applications. The SAS needs permissions `racwd` on the
    /// blob (`rw` at least, `c` to create it).
    pub fn from_sas_url(
        sas_url: &str,
        options: BlobRepositoryOptions,
    ) -> std::result::Result<Self, BlobError> {
        let url = parse_url(sas_url)?;
        let query = url.query().unwrap_or("").to_owned();
        let info = match SasInfo::parse(&query) {
            Ok(info) => Some(info),
            Err(sas::SasParseError::MissingSignature) => {
                return Err(BlobError::InvalidUrl {
                    url: sas::redact(sas_url),
                    reason:
                        "the URL carries no SAS (no sig= parameter); use BlobXmlRepository::new \
                             with a token credential for URLs without a SAS"
                            .into(),
                });
            }
            // E.g. a SAS bound to a stored access policy carries no `se`.
            Err(_) => None,
        };
        let target = Self::target_from_url(&url, sas_url)?;
        let client = Self::blob_client(&url, None, &options)?;
        let now = options.clock.now();
        if let Some(info) = &info
            && info.is_expired_at(now)
        {
            tracing::warn!(
                blob = %target.blob_url,
                "the key ring {} (a SAS URL cannot be renewed)",
                info.describe_at(now)
            );
        }
        Self::build(
            target,
            Auth::Sas {
                client: Arc::new(client),
                query,
                info,
            },
            options,
        )
    }

    /// A repository on the blob at `blob_url` (an `https` URL without a SAS), authorised with
    /// an Entra ID token credential (managed identity, workload identity, a client secret...).
    ///
    /// The identity needs a data-plane role on the container, such as Storage Blob Data
    /// Contributor; the token scope is `https://storage.azure.com/.default`.
    pub fn new(
        blob_url: &str,
        credential: Arc<dyn TokenCredential>,
        options: BlobRepositoryOptions,
    ) -> std::result::Result<Self, BlobError> {
        let url = parse_url(blob_url)?;
        if url.scheme() != "https" {
            return Err(BlobError::InvalidUrl {
                url: sas::redact(blob_url),
                reason: "a token credential is only sent over https".into(),
            });
        }
        if url.query().is_some_and(|q| SasInfo::parse(q).is_ok()) {
            return Err(BlobError::InvalidUrl {
                url: sas::redact(blob_url),
                reason: "the URL carries a SAS; use BlobXmlRepository::from_sas_url for SAS URLs, \
                         or remove the query to use the token credential"
                    .into(),
            });
        }
        let target = Self::target_from_url(&url, blob_url)?;
        let client = Self::blob_client(&url, Some(credential.clone()), &options)?;
        Self::build(
            target,
            Auth::Token {
                client: Arc::new(client),
                credential,
            },
            options,
        )
    }

    /// A repository on blob `blob` of container `container` of the account a storage
    /// connection string names.
    ///
    /// * `AccountKey=` (and `UseDevelopmentStorage=true`): the repository mints a short-lived
    ///   blob-scoped SAS (`sr=b`, `sp=racwd`, valid [`BlobRepositoryOptions::sas_validity`])
    ///   and mints a new one [`BlobRepositoryOptions::sas_renew_before`] before it expires, or
    ///   when the service refuses it; the account key itself is never sent. With
    ///   [`BlobRepositoryOptions::create_container_if_missing`], a missing container is
    ///   created with a 15-minute account SAS.
    /// * `SharedAccessSignature=`: used as a fixed SAS, as with
    ///   [`BlobXmlRepository::from_sas_url`].
    pub fn from_connection_string(
        connection_string: &str,
        container: &str,
        blob: &str,
        options: BlobRepositoryOptions,
    ) -> std::result::Result<Self, BlobError> {
        let cs = ConnectionString::parse(connection_string)?;
        Self::from_parsed_connection_string(&cs, container, blob, options)
    }

    /// [`BlobXmlRepository::from_connection_string`] with an already parsed connection string.
    pub fn from_parsed_connection_string(
        connection_string: &ConnectionString,
        container: &str,
        blob: &str,
        options: BlobRepositoryOptions,
    ) -> std::result::Result<Self, BlobError> {
        let endpoint = connection_string.blob_endpoint();
        match connection_string.credential() {
            Credential::AccountKey(key) => {
                let account = connection_string.account_name().ok_or_else(|| {
                    BlobError::UnsupportedConnectionString("AccountKey needs AccountName".into())
                })?;
                // Validates the names (and the key) up front.
                sas::blob_sas(
                    account,
                    key,
                    container,
                    blob,
                    Permissions::READ,
                    &SasWindow::until(options.clock.now() + time::Duration::minutes(5)),
                )?;
                let blob_url = parse_url(&sas::blob_url(endpoint, container, blob))?;
                let container_url = parse_url(&sas::container_url(endpoint, container))?;
                let target = Target {
                    blob_url,
                    container_url,
                    container: container.to_owned(),
                };
                Self::build(
                    target,
                    Auth::AccountKey {
                        account: account.to_owned(),
                        key: key.clone(),
                        blob: blob.to_owned(),
                    },
                    options,
                )
            }
            Credential::SharedAccessSignature(query) => {
                let url = format!("{}?{query}", sas::blob_url(endpoint, container, blob));
                Self::from_sas_url(&url, options)
            }
            Credential::None => Err(BlobError::UnsupportedConnectionString(
                "it carries no credential (AccountKey or SharedAccessSignature); for managed \
                 identities use BlobXmlRepository::new with a token credential"
                    .into(),
            )),
        }
    }

    /// A repository on the blob at `blob_url` (without a query), authorised with SAS tokens
    /// from `provider` (see [`SasProvider`] for when it is asked).
    pub fn with_sas_provider(
        blob_url: &str,
        provider: Arc<dyn SasProvider>,
        options: BlobRepositoryOptions,
    ) -> std::result::Result<Self, BlobError> {
        let url = parse_url(blob_url)?;
        if url.query().is_some() {
            return Err(BlobError::InvalidUrl {
                url: sas::redact(blob_url),
                reason: "pass the blob URL without a query; the SAS provider supplies the SAS"
                    .into(),
            });
        }
        let target = Self::target_from_url(&url, blob_url)?;
        Self::build(target, Auth::Provider(provider), options)
    }

    /// A repository using a [`BlobClient`] built by the application (custom transport,
    /// pipeline policies, credential...). Only `options`' repository settings apply (not
    /// `client_options`).
    ///
    /// Creating a missing container uses the client's URL (with its query) and no credential,
    /// unless a container client is given with
    /// [`BlobXmlRepository::with_container_client`].
    pub fn with_client(
        client: BlobClient,
        options: BlobRepositoryOptions,
    ) -> std::result::Result<Self, BlobError> {
        let url = client.url().clone();
        let target = Self::target_from_url(&url, url.as_str())?;
        Self::build(
            target,
            Auth::Client {
                client: Arc::new(client),
                container_client: None,
            },
            options,
        )
    }

    /// Sets the client used to create the container (for [`BlobXmlRepository::with_client`];
    /// ignored otherwise).
    #[must_use]
    pub fn with_container_client(mut self, container_client: BlobContainerClient) -> Self {
        if let Auth::Client {
            container_client: slot,
            ..
        } = &mut self.auth
        {
            *slot = Some(Arc::new(container_client));
        }
        self
    }

    /// The blob URL, without any query (so without a SAS).
    pub fn blob_url(&self) -> &Url {
        &self.target.blob_url
    }

    /// The expiry of the SAS currently in use, if requests carry a SAS whose expiry is known
    /// (for minted and provider SAS tokens, `None` until the first request).
    pub async fn sas_expiry(&self) -> Option<OffsetDateTime> {
        match &self.auth {
            Auth::Sas { info, .. } => info.as_ref().map(|i| i.expiry),
            Auth::AccountKey { .. } | Auth::Provider(_) => self
                .state
                .lock()
                .await
                .current
                .as_ref()
                .and_then(|c| c.info.as_ref().map(|i| i.expiry)),
            _ => None,
        }
    }

    /// Asks the service for the blob's properties (one `HEAD` request, authorised as every
    /// other request, with the same SAS renewal on 403): whether it exists, its ETag and the
    /// service's clock. Reads nothing of the content and changes nothing.
    pub async fn probe(&self) -> Result<BlobProbe> {
        let mut st = self.state.lock().await;
        let mut force = None;
        let mut renewed = false;
        loop {
            let client = self.client(&mut st, force.take()).await?;
            let e = match client.get_properties(None).await {
                Ok(response) => {
                    let headers = response.headers();
                    let header = |name: &'static str| {
                        headers
                            .get_optional_str(&azure_core::http::headers::HeaderName::from_static(
                                name,
                            ))
                            .map(str::to_owned)
                    };
                    return Ok(BlobProbe {
                        exists: true,
                        etag: header("etag"),
                        server_date: header("date")
                            .and_then(|d| azure_core::time::parse_rfc7231(&d).ok()),
                    });
                }
                Err(e) => e,
            };
            match classify(&e) {
                Class::BlobNotFound | Class::ContainerNotFound => {
                    return Ok(BlobProbe {
                        exists: false,
                        etag: None,
                        server_date: None,
                    });
                }
                Class::Forbidden if !renewed && self.auth.renewable() => {
                    renewed = true;
                    force = Some(SasRequest::Rejected);
                }
                _ => return Err(self.service_error(&st, "reading the blob's properties", &e)),
            }
        }
    }

    fn target_from_url(url: &Url, original: &str) -> std::result::Result<Target, BlobError> {
        if !matches!(url.scheme(), "http" | "https") {
            return Err(BlobError::InvalidUrl {
                url: sas::redact(original),
                reason: "expected an http or https URL".into(),
            });
        }
        let (container_url, container, _blob) =
            split_blob_url(url).map_err(|reason| BlobError::InvalidUrl {
                url: sas::redact(original),
                reason,
            })?;
        Ok(Target {
            blob_url: without_query(url),
            container_url,
            container,
        })
    }

    fn blob_client_options(options: &BlobRepositoryOptions) -> BlobClientOptions {
        let mut o = BlobClientOptions {
            client_options: options.client_options.clone(),
            ..BlobClientOptions::default()
        };
        if let Some(v) = &options.service_version {
            o.version = v.clone();
        }
        o
    }

    fn blob_client(
        url: &Url,
        credential: Option<Arc<dyn TokenCredential>>,
        options: &BlobRepositoryOptions,
    ) -> std::result::Result<BlobClient, BlobError> {
        BlobClient::new(
            url.clone(),
            credential,
            Some(Self::blob_client_options(options)),
        )
        .map_err(|e| BlobError::Client(sas::redact(&e.to_string())))
    }

    fn container_client(
        &self,
        url: Url,
        credential: Option<Arc<dyn TokenCredential>>,
    ) -> Result<BlobContainerClient> {
        let mut o = BlobContainerClientOptions {
            client_options: self.options.client_options.clone(),
            ..BlobContainerClientOptions::default()
        };
        if let Some(v) = &self.options.service_version {
            o.version = v.clone();
        }
        BlobContainerClient::new(url, credential, Some(o)).map_err(|e| {
            self.error(
                "could not create the container client",
                BlobError::Client(sas::redact(&e.to_string())),
            )
        })
    }

    /// A repository error whose message names the blob.
    fn error(&self, what: impl fmt::Display, source: BlobError) -> Error {
        Error::Repository {
            message: format!("{}: {what}", self.description),
            source: Some(Box::new(source)),
        }
    }

    /// The client to use now, obtaining or renewing the SAS if needed (`force` asks for a new
    /// one regardless).
    async fn client(&self, st: &mut State, force: Option<SasRequest>) -> Result<Arc<BlobClient>> {
        let now = self.options.clock.now();
        match &self.auth {
            Auth::Sas { client, info, .. } => {
                if let Some(info) = info
                    && info.expiry - now < self.options.sas_expiry_warning
                    && st
                        .last_expiry_warning
                        .is_none_or(|t| now - t >= EXPIRY_WARNING_INTERVAL)
                {
                    st.last_expiry_warning = Some(now);
                    tracing::warn!(
                        blob = %self.target.blob_url,
                        "the key ring {}; a SAS URL cannot be renewed: replace it, or use a SAS \
                         provider, an account key or a token credential",
                        info.describe_at(now)
                    );
                }
                Ok(client.clone())
            }
            Auth::Token { client, .. } | Auth::Client { client, .. } => Ok(client.clone()),
            Auth::AccountKey { .. } | Auth::Provider(_) => {
                let reason = match (&st.current, force) {
                    (_, Some(reason)) => Some(reason),
                    (None, None) => Some(SasRequest::Initial),
                    (Some(c), None) => c
                        .info
                        .as_ref()
                        .filter(|i| self.options.sas_needs_renewal(i.expiry, now))
                        .map(|_| SasRequest::Expiring),
                };
                if let Some(reason) = reason {
                    st.current = Some(self.obtain_sas(reason, now).await?);
                }
                match &st.current {
                    Some(c) => Ok(c.client.clone()),
                    None => Err(self.error(
                        "no SAS is available",
                        BlobError::SasProvider("no SAS".into()),
                    )),
                }
            }
        }
    }

    async fn obtain_sas(&self, reason: SasRequest, now: OffsetDateTime) -> Result<Current> {
        let query = match &self.auth {
            Auth::AccountKey { account, key, blob } => {
                let window = SasWindow::until(now + self.options.sas_validity);
                let token = sas::blob_sas(
                    account,
                    key,
                    &self.target.container,
                    blob,
                    Permissions::KEY_RING_BLOB,
                    &window,
                )
                .map_err(|e| self.error("could not mint a SAS", BlobError::Sas(e)))?;
                tracing::debug!(
                    blob = %self.target.blob_url,
                    ?reason,
                    expiry = %token.expiry(),
                    "minted a blob SAS from the account key"
                );
                token.query().to_owned()
            }
            Auth::Provider(provider) => {
                let sas = provider.get_sas(reason).await.map_err(|e| {
                    self.error(
                        format!("the SAS provider failed ({reason:?})"),
                        BlobError::SasProvider(sas::redact(&e.to_string())),
                    )
                })?;
                let sas = sas.trim().trim_start_matches('?').to_owned();
                let info = SasInfo::parse(&sas).ok();
                match &info {
                    Some(i) if self.options.sas_needs_renewal(i.expiry, now) => tracing::warn!(
                        blob = %self.target.blob_url,
                        ?reason,
                        "the SAS provider returned a SAS that {}",
                        i.describe_at(now).trim_start_matches("SAS ")
                    ),
                    Some(i) => tracing::debug!(
                        blob = %self.target.blob_url,
                        ?reason,
                        "obtained a SAS from the provider; {}",
                        i.describe_at(now)
                    ),
                    None => tracing::debug!(
                        blob = %self.target.blob_url,
                        ?reason,
                        "obtained a SAS without a readable expiry from the provider"
                    ),
                }
                sas
            }
            _ => {
                return Err(Error::NotSupported(format!(
                    "{} does not renew credentials",
                    self.description
                )));
            }
        };
        let url = with_query(&self.target.blob_url, &query);
        let client = Self::blob_client(&url, None, &self.options)
            .map_err(|e| self.error("could not create the blob client", e))?;
        Ok(Current {
            client: Arc::new(client),
            info: SasInfo::parse(&query).ok(),
            query,
        })
    }

    /// The explanation of a 401/403.
    fn forbidden_hint(&self, st: &State, code: &str) -> String {
        let now = self.options.clock.now();
        let sas_hint = |info: Option<&SasInfo>, renewable: &str| match info {
            Some(i) if i.is_expired_at(now) => format!("the {}; {renewable}", i.describe_at(now)),
            Some(i) => format!(
                "the {} — check its signature and permissions (the key ring needs racwd on the \
                 blob){renewable_sep}{renewable}",
                i.describe_at(now),
                renewable_sep = if renewable.is_empty() { "" } else { "; " },
            ),
            None => format!(
                "check the SAS signature, expiry and permissions (the key ring needs racwd on \
                 the blob){}{renewable}",
                if renewable.is_empty() { "" } else { "; " }
            ),
        };
        match &self.auth {
            Auth::Sas { info, .. } => sas_hint(
                info.as_ref(),
                "a SAS URL cannot be renewed: replace it (or use a SAS provider, an account key or \
                 a token credential)",
            ),
            Auth::AccountKey { .. } => format!(
                "a freshly minted SAS was refused too: check that the account key is current \
                 (keys may have been rotated) and that shared-key access is allowed on the \
                 account ({})",
                st.current
                    .as_ref()
                    .and_then(|c| c.info.as_ref())
                    .map_or_else(String::new, |i| i.describe_at(now))
            ),
            Auth::Provider(_) => sas_hint(
                st.current.as_ref().and_then(|c| c.info.as_ref()),
                "a new SAS from the SAS provider was refused too",
            ),
            // The token itself was refused (audience, issuer/tenant, expiry), as
            // opposed to a valid identity without a role.
            Auth::Token { .. }
                if code == "AuthenticationFailed" || code == "InvalidAuthenticationInfo" =>
            {
                "the token was rejected: check its audience (https://storage.azure.com), its \
                 issuer and tenant, and its expiry"
                    .into()
            }
            Auth::Token { .. } => "check that the identity has a data-plane role on the \
                                   container, such as Storage Blob Data Contributor"
                .into(),
            Auth::Client { .. } => "check the client's credential".into(),
        }
    }

    fn service_error(&self, st: &State, action: &str, e: &azure_core::Error) -> Error {
        let source = BlobError::service(e);
        let status = source
            .status()
            .map_or_else(|| "no response".to_owned(), |s| format!("HTTP {s}"));
        let code = source.code().unwrap_or("").to_owned();
        let what = match classify(e) {
            Class::Forbidden => format!(
                "{action} was refused ({status} {code}): {}",
                self.forbidden_hint(st, &code)
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
        st: &mut State,
        if_none_match: Option<Etag>,
    ) -> std::result::Result<Fetched, StorageError> {
        let mut force = None;
        let mut renewed = false;
        loop {
            let client = self
                .client(st, force.take())
                .await
                .map_err(StorageError::Fatal)?;
            let options = BlobClientDownloadOptions {
                if_none_match: if_none_match.clone(),
                ..Default::default()
            };
            let limit = self.options.max_document_size;
            let result = async {
                let response = client.download(Some(options)).await?;
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
                Ok::<_, azure_core::Error>(Ok((etag, body)))
            }
            .await;
            let e = match result {
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
                    let doc = RepositoryDocument::parse(&body).map_err(|err| {
                        StorageError::Fatal(Error::Repository {
                            message: format!(
                                "{}: the blob is not a well-formed key ring document ({err}); \
                                 it is left untouched and nothing will be written to it until \
                                 it is repaired",
                                self.description
                            ),
                            source: Some(Box::new(err)),
                        })
                    })?;
                    let root = doc.root_name();
                    if root.rsplit(':').next() != Some("repository") {
                        return Err(StorageError::Fatal(self.error(
                            "the blob is not a key ring document; it is left untouched and \
                             nothing will be written to it",
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
                    return Ok(Fetched::Present { etag, doc });
                }
                Err(e) => e,
            };
            match classify(&e) {
                Class::NotModified if if_none_match.is_some() => return Ok(Fetched::NotModified),
                Class::BlobNotFound => return Ok(Fetched::Absent),
                // Created on the first write.
                Class::ContainerNotFound if self.options.create_container_if_missing => {
                    return Ok(Fetched::Absent);
                }
                Class::Forbidden if !renewed && self.auth.renewable() => {
                    tracing::warn!(
                        blob = %self.target.blob_url,
                        "the service refused the SAS while reading; renewing it and retrying once"
                    );
                    renewed = true;
                    force = Some(SasRequest::Rejected);
                }
                Class::Transient => {
                    return Err(StorageError::Transient(self.service_error(
                        st,
                        "reading the blob",
                        &e,
                    )));
                }
                _ => {
                    return Err(StorageError::Fatal(self.service_error(
                        st,
                        "reading the blob",
                        &e,
                    )));
                }
            }
        }
    }

    /// Reads the blob into the cache (conditionally on the cached ETag) and returns it.
    async fn refresh(&self, st: &mut State) -> std::result::Result<Snapshot, StorageError> {
        let cached = match &st.cache {
            Cache::Present { etag, .. } => Some(etag.clone()),
            _ => None,
        };
        match self.fetch(st, cached).await? {
            Fetched::NotModified => {}
            Fetched::Absent => st.cache = Cache::Absent,
            Fetched::Present { etag, doc } => st.cache = Cache::Present { etag, doc },
        }
        Ok(snapshot_of(&st.cache))
    }

    /// One conditional upload (plus one SAS renewal on 403, and container creation on 404).
    async fn put(&self, st: &mut State, bytes: Vec<u8>, condition: &Condition) -> Result<Written> {
        let mut force = None;
        let mut renewed = false;
        let mut created_container = false;
        loop {
            let client = self.client(st, force.take()).await?;
            let mut options = BlobClientUploadOptions {
                blob_content_type: Some(CONTENT_TYPE.to_owned()),
                ..Default::default()
            };
            match condition {
                Condition::IfMatch(etag) => options.if_match = Some(etag.clone()),
                Condition::IfNoneMatchAny => options.if_none_match = Some(Etag::from("*")),
            }
            let e = match client
                .upload(RequestContent::from(bytes.clone()), Some(options))
                .await
            {
                Ok(result) => {
                    return match result.etag {
                        Some(etag) => Ok(Written::Stored(etag)),
                        // Should not happen; re-reading settles it.
                        None => Ok(Written::Ambiguous(BlobError::Service {
                            status: None,
                            code: None,
                            detail: "the upload response carried no ETag".into(),
                        })),
                    };
                }
                Err(e) => e,
            };
            match classify(&e) {
                Class::Conflict => return Ok(Written::Conflict),
                Class::Transient => return Ok(Written::Ambiguous(BlobError::service(&e))),
                Class::ContainerNotFound
                    if self.options.create_container_if_missing && !created_container =>
                {
                    created_container = true;
                    self.create_container(st).await?;
                }
                Class::Forbidden if !renewed && self.auth.renewable() => {
                    tracing::warn!(
                        blob = %self.target.blob_url,
                        "the service refused the SAS while writing; renewing it and retrying once"
                    );
                    renewed = true;
                    force = Some(SasRequest::Rejected);
                }
                _ => return Err(self.service_error(st, "writing the blob", &e)),
            }
        }
    }

    /// Creates the container (a 409 from a concurrent creation is fine).
    async fn create_container(&self, st: &mut State) -> Result<()> {
        let container_url = &self.target.container_url;
        let client = match &self.auth {
            Auth::Sas { query, .. } => {
                Arc::new(self.container_client(with_query(container_url, query), None)?)
            }
            Auth::Token { credential, .. } => {
                Arc::new(self.container_client(container_url.clone(), Some(credential.clone()))?)
            }
            Auth::Client {
                container_client: Some(c),
                ..
            } => c.clone(),
            Auth::Client { client, .. } => {
                let query = client.url().query().unwrap_or("").to_owned();
                Arc::new(self.container_client(with_query(container_url, &query), None)?)
            }
            Auth::AccountKey { account, key, .. } => {
                let window = SasWindow::until(self.options.clock.now() + CONTAINER_SAS_VALIDITY);
                let create = Permissions {
                    create: true,
                    ..Permissions::default()
                };
                let token = sas::account_sas(account, key, create, &window)
                    .map_err(|e| self.error("could not mint an account SAS", BlobError::Sas(e)))?;
                Arc::new(self.container_client(with_query(container_url, token.query()), None)?)
            }
            Auth::Provider(_) => {
                let query = st
                    .current
                    .as_ref()
                    .map(|c| c.query.clone())
                    .unwrap_or_default();
                Arc::new(self.container_client(with_query(container_url, &query), None)?)
            }
        };
        match client.create(None).await {
            Ok(_) => {
                tracing::info!(container = %self.target.container, url = %container_url, "created the key ring container");
                Ok(())
            }
            Err(e) if e.http_status() == Some(StatusCode::Conflict) => Ok(()),
            Err(e) if classify(&e) == Class::Forbidden => {
                let source = BlobError::service(&e);
                let hint = match &self.auth {
                    Auth::Token { .. } => {
                        "the identity needs a role that may create containers (e.g. Storage Blob \
                         Data Contributor on the account)"
                    }
                    _ => {
                        "creating a container needs an account SAS (srt containing c, permission \
                         c), an account key or a token credential; a blob- or container-scoped \
                         SAS cannot create its container"
                    }
                };
                Err(self.error(
                    format!(
                        "container {} does not exist and creating it was refused (HTTP 403 {}): \
                         {hint}; or create the container beforehand",
                        self.target.container,
                        source.code().unwrap_or("")
                    ),
                    source,
                ))
            }
            Err(e) => {
                let source = BlobError::service(&e);
                Err(self.error(
                    format!(
                        "creating container {} failed: {source}",
                        self.target.container
                    ),
                    source,
                ))
            }
        }
    }
}

/// What the cache holds, as a snapshot.
fn snapshot_of(cache: &Cache) -> Snapshot {
    match cache {
        Cache::Present { etag, doc } => Snapshot {
            document: doc.clone(),
            version: Some(Version::new(etag.to_string())),
        },
        _ => Snapshot {
            document: RepositoryDocument::new(),
            version: None,
        },
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
        let mut st = self.state.lock().await;
        self.refresh(&mut st).await
    }

    /// One conditional GET with `If-None-Match: <known>`: a 304 (nothing changed) costs one
    /// request and no parsing.
    async fn read_if_changed(
        &self,
        known: &Version,
    ) -> std::result::Result<Option<Snapshot>, StorageError> {
        let mut st = self.state.lock().await;
        let fetched = self
            .fetch(&mut st, Some(Etag::from(known.as_str().to_owned())))
            .await?;
        match fetched {
            Fetched::NotModified => Ok(None),
            Fetched::Absent => {
                st.cache = Cache::Absent;
                Ok(Some(snapshot_of(&st.cache)))
            }
            Fetched::Present { etag, doc } => {
                st.cache = Cache::Present { etag, doc };
                Ok(Some(snapshot_of(&st.cache)))
            }
        }
    }

    async fn write(
        &self,
        document: &RepositoryDocument,
        condition: &WriteCondition,
    ) -> std::result::Result<Version, StorageError> {
        let mut st = self.state.lock().await;
        let condition = match condition {
            WriteCondition::Create => Condition::IfNoneMatchAny,
            WriteCondition::Update(version) => {
                Condition::IfMatch(Etag::from(version.as_str().to_owned()))
            }
        };
        match self
            .put(&mut st, document.to_bytes(), &condition)
            .await
            .map_err(StorageError::Fatal)?
        {
            Written::Stored(etag) => {
                let version = Version::new(etag.to_string());
                st.cache = Cache::Present {
                    etag,
                    doc: document.clone(),
                };
                Ok(version)
            }
            Written::Conflict => Err(StorageError::PreconditionFailed),
            Written::Ambiguous(source) => {
                // Whatever is cached may be stale now.
                st.cache = Cache::Unknown;
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

    fn split(url: &str) -> (String, String, String) {
        let (c, container, blob) = split_blob_url(&Url::parse(url).unwrap()).unwrap();
        (c.to_string(), container, blob)
    }

    #[test]
    fn splits_host_and_path_style_urls() {
        assert_eq!(
            split("https://acct.blob.core.windows.net/keys/ring.xml?sv=1&sig=x"),
            (
                "https://acct.blob.core.windows.net/keys".into(),
                "keys".into(),
                "ring.xml".into()
            )
        );
        assert_eq!(
            split("http://127.0.0.1:10000/devstoreaccount1/keys/dir/ring%20a.xml"),
            (
                "http://127.0.0.1:10000/devstoreaccount1/keys".into(),
                "keys".into(),
                "dir/ring a.xml".into()
            )
        );
        assert_eq!(
            split("http://localhost:10000/devstoreaccount1/keys/r").1,
            "keys"
        );
        for bad in [
            "https://acct.blob.core.windows.net/keys",
            "https://acct.blob.core.windows.net/keys/",
            "http://127.0.0.1:10000/devstoreaccount1/keys",
        ] {
            assert!(split_blob_url(&Url::parse(bad).unwrap()).is_err(), "{bad}");
        }
    }

    #[test]
    fn constructors_never_echo_the_signature() {
        let err = BlobXmlRepository::from_sas_url(
            "https://acct.blob.core.windows.net/keys?sv=1&se=2030-01-01&sig=SECRETSIG",
            BlobRepositoryOptions::default(),
        )
        .unwrap_err();
        let text = err.to_string();
        assert!(
            !text.contains("SECRETSIG") && text.contains("sig=REDACTED"),
            "{text}"
        );

        let err = BlobXmlRepository::from_sas_url(
            "https://acct.blob.core.windows.net/keys/ring.xml",
            BlobRepositoryOptions::default(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("no SAS"), "{err}");

        let repo = BlobXmlRepository::from_sas_url(
            "https://acct.blob.core.windows.net/keys/ring.xml?sv=1&se=2030-01-01&sig=SECRETSIG",
            BlobRepositoryOptions::default(),
        )
        .unwrap();
        let dbg = format!("{repo:?} {}", repo.describe());
        assert!(!dbg.contains("SECRETSIG") && !dbg.contains("sv=1"), "{dbg}");
        assert_eq!(
            repo.blob_url().as_str(),
            "https://acct.blob.core.windows.net/keys/ring.xml"
        );
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
                ErrorKind::Credential,
                "no token in unit tests",
            ))
        }
    }

    #[test]
    fn token_constructor_checks_the_url() {
        let cred: Arc<dyn TokenCredential> = Arc::new(NoToken);
        let o = BlobRepositoryOptions::default;
        let repo = BlobXmlRepository::new(
            "https://acct.blob.core.windows.net/keys/ring.xml",
            cred.clone(),
            o(),
        )
        .unwrap();
        assert!(repo.describe().contains("token credential"));
        let err = BlobXmlRepository::new("http://127.0.0.1:10000/a/keys/r", cred.clone(), o())
            .unwrap_err();
        assert!(err.to_string().contains("https"), "{err}");
        let err = BlobXmlRepository::new(
            "https://acct.blob.core.windows.net/keys/ring.xml?se=2030-01-01&sig=SECRET",
            cred,
            o(),
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("from_sas_url") && !err.to_string().contains("SECRET"),
            "{err}"
        );
    }
}
