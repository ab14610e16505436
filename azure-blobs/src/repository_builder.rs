//! [`BlobXmlRepositoryBuilder`]: the forms [`BlobXmlRepository::new`] does not cover
//! (a connection string, a [`SasProvider`], a client built by the application).

use std::fmt;
use std::sync::Arc;

use azure_core::credentials::TokenCredential;
use azure_core::http::{ClientOptions, Url};
use azure_storage_blob::{
    BlobClient, BlobClientOptions, BlobContainerClient, BlobContainerClientOptions,
};

use crate::auth::{
    AccountKeySas, AuthKind, Authorization, CONTAINER_SAS_VALIDITY, MintScope, SasPolicy,
    SasProvider,
};
use crate::connection_string::{ConnectionString, ConnectionStringError, Credential};
use crate::error::BlobError;
use crate::options::BlobRepositoryOptions;
use crate::repository::BlobXmlRepository;
use crate::sas::{self, Permissions, SasInfo, SasWindow};
use crate::url::{Target, parse_url, target_from_url, with_query, without_query};

/// Where the key ring is.
enum Location {
    Url(String),
    ConnectionString {
        parsed: Result<ConnectionString, ConnectionStringError>,
        container: String,
        blob: String,
    },
    Client(BlobClient),
}

/// Builds a [`BlobXmlRepository`]: give exactly one location — [`blob_url`](Self::blob_url),
/// [`connection_string`](Self::connection_string) or [`client`](Self::client) — and for a blob
/// URL without a SAS, a [`credential`](Self::credential) or a
/// [`sas_provider`](Self::sas_provider).
///
/// ```
/// use dataprotection_azure_blobs::{BlobRepositoryOptions, BlobXmlRepository};
/// let repository = BlobXmlRepository::builder()
///     .connection_string("UseDevelopmentStorage=true", "dataprotection", "keys.xml")
///     .options(BlobRepositoryOptions {
///         create_container_if_missing: true,
///         ..Default::default()
///     })
///     .build()?;
/// assert_eq!(
///     repository.blob_url().as_str(),
///     "http://127.0.0.1:10000/devstoreaccount1/dataprotection/keys.xml"
/// );
/// # Ok::<(), dataprotection_azure_blobs::BlobError>(())
/// ```
#[derive(Default)]
#[must_use]
pub struct BlobXmlRepositoryBuilder {
    locations: Vec<Location>,
    credential: Option<Arc<dyn TokenCredential>>,
    sas_provider: Option<Arc<dyn SasProvider>>,
    container_client: Option<BlobContainerClient>,
    options: Option<BlobRepositoryOptions>,
}

impl fmt::Debug for BlobXmlRepositoryBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let locations: Vec<&str> = self
            .locations
            .iter()
            .map(|l| match l {
                Location::Url(_) => "blob URL",
                Location::ConnectionString { .. } => "connection string",
                Location::Client(_) => "client",
            })
            .collect();
        f.debug_struct("BlobXmlRepositoryBuilder")
            .field("locations", &locations)
            .field("credential", &self.credential.is_some())
            .field("sas_provider", &self.sas_provider.is_some())
            .field("container_client", &self.container_client.is_some())
            .finish_non_exhaustive()
    }
}

impl BlobXmlRepositoryBuilder {
    /// The blob's URL: with a SAS (`https://acct.blob.core.windows.net/container/blob?sv=...&sig=...`),
    /// used as it is; without one, give a [`credential`](Self::credential) or a
    /// [`sas_provider`](Self::sas_provider). Azurite-style URLs
    /// (`http://127.0.0.1:10000/<account>/<container>/<blob>`) work too.
    pub fn blob_url(mut self, blob_url: impl Into<String>) -> Self {
        self.locations.push(Location::Url(blob_url.into()));
        self
    }

    /// Blob `blob` of container `container` of the account a storage connection string names.
    ///
    /// * `AccountKey=` (and `UseDevelopmentStorage=true`): the repository mints a short-lived
    ///   blob-scoped SAS (`sr=b`, `sp=racwd`, valid [`BlobRepositoryOptions::sas_validity`])
    ///   and mints a new one [`BlobRepositoryOptions::sas_renew_before`] before it expires, or
    ///   when the service refuses it; the account key itself is never sent. With
    ///   [`BlobRepositoryOptions::create_container_if_missing`], a missing container is
    ///   created with a 15-minute account SAS.
    /// * `SharedAccessSignature=`: used as a fixed SAS, as a SAS URL is.
    pub fn connection_string(
        mut self,
        connection_string: &str,
        container: &str,
        blob: &str,
    ) -> Self {
        self.locations.push(Location::ConnectionString {
            parsed: ConnectionString::parse(connection_string),
            container: container.to_owned(),
            blob: blob.to_owned(),
        });
        self
    }

    /// A [`BlobClient`] built by the application (custom transport, pipeline policies,
    /// credential...), used as it is: only the repository settings of
    /// [`options`](Self::options) apply, not `client_options`. Creating a missing container
    /// uses [`container_client`](Self::container_client), or else the client's URL (with its
    /// query) and no credential.
    pub fn client(mut self, client: BlobClient) -> Self {
        self.locations.push(Location::Client(client));
        self
    }

    /// The client that creates the container, with [`client`](Self::client).
    pub fn container_client(mut self, container_client: BlobContainerClient) -> Self {
        self.container_client = Some(container_client);
        self
    }

    /// An Entra ID token credential (managed identity, workload identity, a client
    /// secret...) for a [`blob_url`](Self::blob_url) without a SAS; the URL must be `https`.
    /// The identity needs a data-plane role on the container, such as Storage Blob Data
    /// Contributor; the token scope is `https://storage.azure.com/.default`.
    pub fn credential(mut self, credential: Arc<dyn TokenCredential>) -> Self {
        self.credential = Some(credential);
        self
    }

    /// SAS tokens from `provider` (see [`SasProvider`] for when it is asked) for a
    /// [`blob_url`](Self::blob_url) without a query.
    pub fn sas_provider(mut self, provider: Arc<dyn SasProvider>) -> Self {
        self.sas_provider = Some(provider);
        self
    }

    /// The repository's options (default: [`BlobRepositoryOptions::default`]).
    pub fn options(mut self, options: BlobRepositoryOptions) -> Self {
        self.options = Some(options);
        self
    }

    /// Builds the repository. Sends nothing.
    ///
    /// # Errors
    /// [`BlobError::Configuration`] for a combination that does not name one blob and one way
    /// to authorise requests; [`BlobError::MissingCredential`] for a blob URL without a SAS,
    /// a credential or a SAS provider; [`BlobError::InvalidUrl`], [`BlobError::ConnectionString`],
    /// [`BlobError::UnsupportedConnectionString`] or [`BlobError::Sas`] for what they name.
    pub fn build(mut self) -> Result<BlobXmlRepository, BlobError> {
        let options = self.options.take().unwrap_or_default();
        if self.locations.len() != 1 {
            return Err(BlobError::Configuration(
                "give exactly one of blob_url, connection_string and client".into(),
            ));
        }
        let Some(location) = self.locations.pop() else {
            return Err(BlobError::Configuration("no location".into()));
        };
        if self.container_client.is_some() && !matches!(location, Location::Client(_)) {
            return Err(BlobError::Configuration(
                "container_client goes with client".into(),
            ));
        }
        match location {
            Location::Url(url) => match (self.credential, self.sas_provider) {
                (Some(_), Some(_)) => Err(BlobError::Configuration(
                    "give a credential or a SAS provider, not both".into(),
                )),
                (Some(credential), None) => token(&url, credential, options),
                (None, Some(provider)) => sas_provider(&url, provider, options),
                (None, None) => sas_url(&url, options),
            },
            Location::ConnectionString { .. } | Location::Client(_)
                if self.credential.is_some() || self.sas_provider.is_some() =>
            {
                Err(BlobError::Configuration(
                    "a credential or a SAS provider goes with a blob URL".into(),
                ))
            }
            Location::ConnectionString {
                parsed,
                container,
                blob,
            } => connection_string(&parsed?, &container, &blob, options),
            Location::Client(client) => application_client(client, self.container_client, options),
        }
    }
}

/// A blob URL carrying a SAS, used as a fixed SAS.
fn sas_url(original: &str, options: BlobRepositoryOptions) -> Result<BlobXmlRepository, BlobError> {
    let url = parse_url(original)?;
    if !sas::is_sas_url(url.as_str()) {
        return Err(BlobError::MissingCredential {
            url: sas::redact(original),
        });
    }
    let query = url.query().unwrap_or("");
    let target = target_from_url(&url, original)?;
    let policy = Arc::new(SasPolicy::fixed(query, &target.blob_url, &options));
    let now = options.clock.now();
    // E.g. a SAS bound to a stored access policy carries no `se`: nothing to warn about.
    if let Ok(info) = SasInfo::parse(query)
        && info.is_expired_at(now)
    {
        tracing::warn!(
            blob = %target.blob_url,
            "the key ring {} (a SAS URL cannot be renewed)",
            info.describe_at(now)
        );
    }
    signed_by(target, AuthKind::FixedSas, policy, options)
}

/// A blob URL without a SAS and a token credential (the SDK's bearer policy).
fn token(
    original: &str,
    credential: Arc<dyn TokenCredential>,
    options: BlobRepositoryOptions,
) -> Result<BlobXmlRepository, BlobError> {
    let url = parse_url(original)?;
    if url.scheme() != "https" {
        return Err(BlobError::InvalidUrl {
            url: sas::redact(original),
            reason: "a token credential is only sent over https".into(),
        });
    }
    if sas::is_sas_url(url.as_str()) {
        return Err(BlobError::InvalidUrl {
            url: sas::redact(original),
            reason: "the URL carries a SAS: pass no credential to use the SAS, or remove the \
                     query to use the token credential"
                .into(),
        });
    }
    let target = target_from_url(&url, original)?;
    let blob = blob_client(&target.blob_url, Some(credential.clone()), None, &options)?;
    let container = container_client(&target.container_url, Some(credential), None, &options)?;
    let auth = Authorization {
        kind: AuthKind::Token,
        sas: None,
    };
    Ok(BlobXmlRepository::assemble(
        target, blob, container, auth, options,
    ))
}

/// A blob URL without a query and the application's SAS provider.
fn sas_provider(
    original: &str,
    provider: Arc<dyn SasProvider>,
    options: BlobRepositoryOptions,
) -> Result<BlobXmlRepository, BlobError> {
    let url = parse_url(original)?;
    if url.query().is_some() {
        return Err(BlobError::InvalidUrl {
            url: sas::redact(original),
            reason: "pass the blob URL without a query; the SAS provider supplies the SAS".into(),
        });
    }
    let target = target_from_url(&url, original)?;
    let policy = Arc::new(SasPolicy::renewable(provider, &target.blob_url, &options));
    signed_by(target, AuthKind::Provider, policy, options)
}

/// A repository whose blob and container requests are both signed by `policy`.
fn signed_by(
    target: Target,
    kind: AuthKind,
    policy: Arc<SasPolicy>,
    options: BlobRepositoryOptions,
) -> Result<BlobXmlRepository, BlobError> {
    let blob = blob_client(&target.blob_url, None, Some(&policy), &options)?;
    let container = container_client(&target.container_url, None, Some(&policy), &options)?;
    let auth = Authorization {
        kind,
        sas: Some(policy),
    };
    Ok(BlobXmlRepository::assemble(
        target, blob, container, auth, options,
    ))
}

fn connection_string(
    cs: &ConnectionString,
    container: &str,
    blob: &str,
    options: BlobRepositoryOptions,
) -> Result<BlobXmlRepository, BlobError> {
    let endpoint = cs.blob_endpoint();
    match cs.credential() {
        Credential::AccountKey(key) => {
            let account = cs.account_name().ok_or_else(|| {
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
            let minter = |scope, validity| AccountKeySas {
                account: account.to_owned(),
                key: key.clone(),
                scope,
                validity,
                clock: options.clock.clone(),
            };
            let blob_scope = MintScope::Blob {
                container: container.to_owned(),
                blob: blob.to_owned(),
            };
            let blob_policy = Arc::new(SasPolicy::renewable(
                Arc::new(minter(blob_scope, options.sas_validity)),
                &target.blob_url,
                &options,
            ));
            let container_policy = Arc::new(SasPolicy::renewable(
                Arc::new(minter(MintScope::ContainerCreation, CONTAINER_SAS_VALIDITY)),
                &target.blob_url,
                &options,
            ));
            let blob = blob_client(&target.blob_url, None, Some(&blob_policy), &options)?;
            let container = container_client(
                &target.container_url,
                None,
                Some(&container_policy),
                &options,
            )?;
            let auth = Authorization {
                kind: AuthKind::AccountKey,
                sas: Some(blob_policy),
            };
            Ok(BlobXmlRepository::assemble(
                target, blob, container, auth, options,
            ))
        }
        Credential::SharedAccessSignature(query) => {
            let url = format!("{}?{query}", sas::blob_url(endpoint, container, blob));
            sas_url(&url, options)
        }
        Credential::None => Err(BlobError::UnsupportedConnectionString(
            "it carries no credential (AccountKey or SharedAccessSignature); for managed \
             identities give the blob URL and a token credential"
                .into(),
        )),
    }
}

fn application_client(
    client: BlobClient,
    container_client_given: Option<BlobContainerClient>,
    options: BlobRepositoryOptions,
) -> Result<BlobXmlRepository, BlobError> {
    let url = client.url().clone();
    let target = target_from_url(&url, url.as_str())?;
    let container = match container_client_given {
        Some(c) => c,
        None => {
            let query = url.query().unwrap_or("");
            let container_url = if query.is_empty() {
                target.container_url.clone()
            } else {
                with_query(&target.container_url, query)
            };
            container_client(&container_url, None, None, &options)?
        }
    };
    let auth = Authorization {
        kind: AuthKind::Client,
        sas: None,
    };
    Ok(BlobXmlRepository::assemble(
        target, client, container, auth, options,
    ))
}

/// The SDK client options: the application's, plus the SAS policy.
fn client_options(options: &BlobRepositoryOptions, sas: Option<&Arc<SasPolicy>>) -> ClientOptions {
    let mut client_options = options.client_options.clone();
    if let Some(policy) = sas {
        policy.install(&mut client_options);
    }
    client_options
}

fn blob_client(
    url: &Url,
    credential: Option<Arc<dyn TokenCredential>>,
    sas: Option<&Arc<SasPolicy>>,
    options: &BlobRepositoryOptions,
) -> Result<BlobClient, BlobError> {
    let mut o = BlobClientOptions {
        client_options: client_options(options, sas),
        ..BlobClientOptions::default()
    };
    if let Some(v) = &options.service_version {
        o.version = v.clone();
    }
    BlobClient::new(without_query(url), credential, Some(o))
        .map_err(|e| BlobError::Client(sas::redact(&e.to_string())))
}

fn container_client(
    url: &Url,
    credential: Option<Arc<dyn TokenCredential>>,
    sas: Option<&Arc<SasPolicy>>,
    options: &BlobRepositoryOptions,
) -> Result<BlobContainerClient, BlobError> {
    let mut o = BlobContainerClientOptions {
        client_options: client_options(options, sas),
        ..BlobContainerClientOptions::default()
    };
    if let Some(v) = &options.service_version {
        o.version = v.clone();
    }
    BlobContainerClient::new(url.clone(), credential, Some(o))
        .map_err(|e| BlobError::Client(sas::redact(&e.to_string())))
}
