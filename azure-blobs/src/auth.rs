//! How requests are authorised.
//!
//! A token credential is left to the SDK's own bearer policy. Every SAS — a fixed one from a
//! URL, one minted from an account key, one from an application's [`SasProvider`] — goes
//! through one pipeline policy, [`SasPolicy`]: it appends the current SAS to each request,
//! renews it before it expires, and on a 401/403 that refuses the credential renews it once
//! and resends the request once. That is the only place the renew-once rule lives.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use azure_core::error::ErrorKind;
use azure_core::http::headers::HeaderName;
use azure_core::http::policies::{Policy, PolicyResult};
use azure_core::http::{ClientOptions, Context, Request, Url};
use dataprotection::BoxError;
use dataprotection::clock::Clock;
use time::{Duration, OffsetDateTime};
use tokio::sync::Mutex;
use zeroize::Zeroizing;

use crate::classify::{is_credential_refusal, is_rejected_token};
use crate::options::{BlobRepositoryOptions, renewal_due};
use crate::sas::{self, AccountKey, Permissions, SasInfo, SasWindow};

/// A fixed SAS that is about to expire is reported at most this often.
const EXPIRY_WARNING_INTERVAL: Duration = Duration::hours(1);

/// Validity of the account SAS minted (from an account key) to create a missing container.
pub(crate) const CONTAINER_SAS_VALIDITY: Duration = Duration::minutes(15);

/// Why a [`SasProvider`] is asked for a SAS.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SasRequest {
    /// The repository has no SAS yet.
    Initial,
    /// The current SAS expires within [`BlobRepositoryOptions::sas_renew_before`].
    Expiring,
    /// The service refused the current SAS (HTTP 401/403): return a *new* one, not a cached
    /// copy.
    Rejected,
}

/// Supplies SAS tokens for the key-ring blob, for applications that get them from elsewhere
/// (a secrets store, a token broker, a user-delegation SAS minted with a managed identity...).
///
/// The repository asks for a SAS before its first request, again when the current one has less
/// than [`BlobRepositoryOptions::sas_renew_before`] left (judged from its `se` parameter), and
/// once more, with [`SasRequest::Rejected`], when the service refuses it (401/403); the request
/// is then sent once more with the new SAS.
///
/// ```
/// use dataprotection_azure_blobs::{SasProvider, SasRequest};
/// use dataprotection::BoxError;
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

/// What a SAS minted from an account key gives access to.
#[derive(Debug)]
pub(crate) enum MintScope {
    /// The key-ring blob, `racwd` (a service SAS, `sr=b`).
    Blob { container: String, blob: String },
    /// Creating containers (an account SAS with permission `c`).
    ContainerCreation,
}

/// SAS tokens minted locally from an account key; the key itself is never sent.
pub(crate) struct AccountKeySas {
    pub(crate) account: String,
    pub(crate) key: AccountKey,
    pub(crate) scope: MintScope,
    pub(crate) validity: Duration,
    pub(crate) clock: Arc<dyn Clock>,
}

impl fmt::Debug for AccountKeySas {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccountKeySas")
            .field("account", &self.account)
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl SasProvider for AccountKeySas {
    async fn get_sas(&self, reason: SasRequest) -> std::result::Result<String, BoxError> {
        let window = SasWindow::until(self.clock.now() + self.validity);
        let token = match &self.scope {
            MintScope::Blob { container, blob } => sas::blob_sas(
                &self.account,
                &self.key,
                container,
                blob,
                Permissions::KEY_RING_BLOB,
                &window,
            )?,
            MintScope::ContainerCreation => {
                let create = Permissions {
                    create: true,
                    ..Permissions::default()
                };
                sas::account_sas(&self.account, &self.key, create, &window)?
            }
        };
        tracing::debug!(
            account = %self.account,
            scope = ?self.scope,
            ?reason,
            expiry = %token.expiry(),
            "minted a SAS from the account key"
        );
        Ok(token.query().to_owned())
    }
}

/// The [`SasProvider`] failed; the `source` of the SDK error a request then fails with.
#[derive(Debug, thiserror::Error)]
#[error("{detail} (asked because: {reason:?})")]
pub(crate) struct SasUnavailable {
    pub(crate) reason: SasRequest,
    /// The provider's error text, redacted.
    pub(crate) detail: String,
}

/// Where the SAS comes from.
enum SasSource {
    /// Given once (a SAS URL, a connection string's `SharedAccessSignature`): never renewed,
    /// a warning is logged as its expiry nears.
    Fixed,
    /// Asked for again before it expires and after a refusal.
    Renewable(Arc<dyn SasProvider>),
}

/// The SAS in use.
struct CurrentSas {
    query: Zeroizing<String>,
    info: Option<SasInfo>,
}

struct SasState {
    current: Option<CurrentSas>,
    /// Counts renewals, so that requests refused with the same SAS renew it only once.
    generation: u64,
    last_expiry_warning: Option<OffsetDateTime>,
}

/// The pipeline policy that authorises requests with a SAS; installed as a per-call policy
/// (before the SDK's retry policy, so a transient retry reuses the SAS and a renewal resends
/// through the retry policy).
pub(crate) struct SasPolicy {
    source: SasSource,
    renew_before: Duration,
    expiry_warning: Duration,
    clock: Arc<dyn Clock>,
    /// The blob (no query), for logs.
    blob: Url,
    state: Mutex<SasState>,
}

impl fmt::Debug for SasPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SasPolicy")
            .field("blob", &self.blob.as_str())
            .field("renewable", &self.is_renewable())
            .finish_non_exhaustive()
    }
}

impl SasPolicy {
    fn with_source(
        source: SasSource,
        current: Option<CurrentSas>,
        blob: &Url,
        options: &BlobRepositoryOptions,
    ) -> Self {
        SasPolicy {
            source,
            renew_before: options.sas_renew_before,
            expiry_warning: options.sas_expiry_warning,
            clock: options.clock.clone(),
            blob: blob.clone(),
            state: Mutex::new(SasState {
                current,
                generation: 0,
                last_expiry_warning: None,
            }),
        }
    }

    /// A policy sending the fixed SAS `query` (`sv=...&sig=...`).
    pub(crate) fn fixed(query: &str, blob: &Url, options: &BlobRepositoryOptions) -> Self {
        let query = query.trim_start_matches('?');
        let current = CurrentSas {
            info: SasInfo::parse(query).ok(),
            query: Zeroizing::new(query.to_owned()),
        };
        Self::with_source(SasSource::Fixed, Some(current), blob, options)
    }

    /// A policy asking `provider` for SAS tokens.
    pub(crate) fn renewable(
        provider: Arc<dyn SasProvider>,
        blob: &Url,
        options: &BlobRepositoryOptions,
    ) -> Self {
        Self::with_source(SasSource::Renewable(provider), None, blob, options)
    }

    fn is_renewable(&self) -> bool {
        matches!(self.source, SasSource::Renewable(_))
    }

    /// Whether a SAS must be replaced: it has less than `sas_renew_before` left.
    fn needs_renewal(&self, info: &SasInfo, now: OffsetDateTime) -> bool {
        renewal_due(info.expiry, self.renew_before, now)
    }

    /// Adds this policy to `options`, after the application's own per-call policies (so its
    /// per-try policies see the signed request).
    pub(crate) fn install(self: &Arc<Self>, options: &mut ClientOptions) {
        options.per_call_policies.push(self.clone());
    }

    /// What the SAS in use says about itself (`None` before the first request of a renewable
    /// SAS, or when its expiry cannot be read).
    pub(crate) async fn current_info(&self) -> Option<SasInfo> {
        let state = self.state.lock().await;
        state.current.as_ref().and_then(|c| c.info.clone())
    }

    /// The SAS for the next request (obtained or renewed first when needed), and its
    /// generation.
    async fn sas_for_request(&self) -> azure_core::Result<(Zeroizing<String>, u64)> {
        let mut state = self.state.lock().await;
        let now = self.clock.now();
        match &self.source {
            SasSource::Fixed => self.warn_if_expiring(&mut state, now),
            SasSource::Renewable(provider) => {
                let reason = match &state.current {
                    None => Some(SasRequest::Initial),
                    Some(current) => current
                        .info
                        .as_ref()
                        .filter(|info| self.needs_renewal(info, now))
                        .map(|_| SasRequest::Expiring),
                };
                if let Some(reason) = reason {
                    self.obtain(provider, &mut state, reason, now).await?;
                }
            }
        }
        Ok((current_query(&state)?, state.generation))
    }

    /// A new SAS after the service refused the one of `generation` (unless another request
    /// already renewed it since).
    async fn renew_rejected(&self, generation: u64) -> azure_core::Result<Zeroizing<String>> {
        let mut state = self.state.lock().await;
        if let SasSource::Renewable(provider) = &self.source
            && state.generation == generation
        {
            let now = self.clock.now();
            self.obtain(provider, &mut state, SasRequest::Rejected, now)
                .await?;
        }
        current_query(&state)
    }

    async fn obtain(
        &self,
        provider: &Arc<dyn SasProvider>,
        state: &mut SasState,
        reason: SasRequest,
        now: OffsetDateTime,
    ) -> azure_core::Result<()> {
        let sas = provider.get_sas(reason).await.map_err(|e| {
            azure_core::Error::new(
                ErrorKind::Credential,
                SasUnavailable {
                    reason,
                    detail: sas::redact(&e.to_string()),
                },
            )
        })?;
        let sas = Zeroizing::new(sas);
        let query = Zeroizing::new(sas.trim().trim_start_matches('?').to_owned());
        let info = SasInfo::parse(&query).ok();
        match &info {
            Some(i) if self.needs_renewal(i, now) => tracing::warn!(
                blob = %self.blob,
                ?reason,
                "obtained a SAS that {}",
                i.describe_at(now).trim_start_matches("SAS ")
            ),
            Some(i) => tracing::debug!(
                blob = %self.blob,
                ?reason,
                "obtained a SAS; {}",
                i.describe_at(now)
            ),
            None => tracing::debug!(
                blob = %self.blob,
                ?reason,
                "obtained a SAS without a readable expiry"
            ),
        }
        state.current = Some(CurrentSas { query, info });
        state.generation += 1;
        Ok(())
    }

    /// Logs (at most hourly) that a fixed SAS expires within `sas_expiry_warning`.
    fn warn_if_expiring(&self, state: &mut SasState, now: OffsetDateTime) {
        let Some(info) = state.current.as_ref().and_then(|c| c.info.as_ref()) else {
            return;
        };
        if info.expiry - now < self.expiry_warning
            && state
                .last_expiry_warning
                .is_none_or(|t| now - t >= EXPIRY_WARNING_INTERVAL)
        {
            tracing::warn!(
                blob = %self.blob,
                "the key ring {}; a SAS URL cannot be renewed: replace it, or use a SAS \
                 provider, an account key or a token credential",
                info.describe_at(now)
            );
            state.last_expiry_warning = Some(now);
        }
    }
}

/// The SAS in use (there is one once `sas_for_request` has succeeded).
fn current_query(state: &SasState) -> azure_core::Result<Zeroizing<String>> {
    state
        .current
        .as_ref()
        .map(|c| c.query.clone())
        .ok_or_else(|| {
            azure_core::Error::with_message(ErrorKind::Credential, "no SAS is available")
        })
}

/// `unsigned` (the request's URL as the SDK built it) with `sas` appended to its query.
fn signed_url(unsigned: &Url, sas: &str) -> Url {
    let mut url = unsigned.clone();
    match unsigned.query().filter(|q| !q.is_empty()) {
        Some(query) => url.set_query(Some(&format!("{query}&{sas}"))),
        None => url.set_query(Some(sas)),
    }
    url
}

#[async_trait]
impl Policy for SasPolicy {
    async fn send(
        &self,
        ctx: &Context,
        request: &mut Request,
        next: &[Arc<dyn Policy>],
    ) -> PolicyResult {
        let unsigned = request.url().clone();
        let (sas, generation) = self.sas_for_request().await?;
        *request.url_mut() = signed_url(&unsigned, &sas);
        let response = next[0].send(ctx, request, &next[1..]).await?;
        let code = response
            .headers()
            .get_optional_str(&HeaderName::from_static("x-ms-error-code"));
        if !self.is_renewable() || !is_credential_refusal(response.status(), code) {
            return Ok(response);
        }
        tracing::warn!(
            blob = %self.blob,
            method = %request.method(),
            status = %response.status(),
            code = code.unwrap_or(""),
            "the service refused the SAS; renewing it and sending the request once more"
        );
        drop(response);
        let sas = self.renew_rejected(generation).await?;
        request.body_mut().reset().await?;
        *request.url_mut() = signed_url(&unsigned, &sas);
        next[0].send(ctx, request, &next[1..]).await
    }
}

/// How a repository's requests are authorised.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AuthKind {
    /// A fixed SAS (a SAS URL, a connection string's `SharedAccessSignature`).
    FixedSas,
    /// An Entra ID token credential (the SDK's bearer policy).
    Token,
    /// A client built by the application.
    Client,
    /// SAS tokens minted from an account key.
    AccountKey,
    /// SAS tokens from the application's [`SasProvider`].
    Provider,
}

/// How a repository's requests are authorised, for descriptions and for the advice given when
/// the service refuses them.
#[derive(Debug)]
pub(crate) struct Authorization {
    pub(crate) kind: AuthKind,
    /// The policy signing the blob requests, for the SAS kinds.
    pub(crate) sas: Option<Arc<SasPolicy>>,
}

impl Authorization {
    pub(crate) fn describe(&self) -> &'static str {
        match self.kind {
            AuthKind::FixedSas => "SAS URL",
            AuthKind::Token => "token credential",
            AuthKind::Client => "application-supplied client",
            AuthKind::AccountKey => "account key (short-lived SAS minted locally)",
            AuthKind::Provider => "SAS provider",
        }
    }

    /// The SAS in use, if requests carry one.
    pub(crate) async fn sas_info(&self) -> Option<SasInfo> {
        match &self.sas {
            Some(policy) => policy.current_info().await,
            None => None,
        }
    }

    /// What to do about a 401/403 with storage error `code`.
    pub(crate) async fn forbidden_hint(&self, code: Option<&str>, now: OffsetDateTime) -> String {
        let info = self.sas_info().await;
        let sas_hint = |renewable: &str| {
            let sep = if renewable.is_empty() { "" } else { "; " };
            match &info {
                Some(i) if i.is_expired_at(now) => {
                    format!("the {}; {renewable}", i.describe_at(now))
                }
                Some(i) => format!(
                    "the {} — check its signature and permissions (the key ring needs racwd on \
                     the blob){sep}{renewable}",
                    i.describe_at(now),
                ),
                None => format!(
                    "check the SAS signature, expiry and permissions (the key ring needs racwd \
                     on the blob){sep}{renewable}"
                ),
            }
        };
        match self.kind {
            AuthKind::FixedSas => sas_hint(
                "a SAS URL cannot be renewed: replace it (or use a SAS provider, an account key \
                 or a token credential)",
            ),
            AuthKind::AccountKey => format!(
                "a freshly minted SAS was refused too: check that the account key is current \
                 (keys may have been rotated) and that shared-key access is allowed on the \
                 account ({})",
                info.map_or_else(String::new, |i| i.describe_at(now))
            ),
            AuthKind::Provider => sas_hint("a new SAS from the SAS provider was refused too"),
            // The token itself was refused (audience, issuer/tenant, expiry), as opposed to a
            // valid identity without a role.
            AuthKind::Token if is_rejected_token(code) => {
                "the token was rejected: check its audience (https://storage.azure.com), its \
                 issuer and tenant, and its expiry"
                    .into()
            }
            AuthKind::Token => "check that the identity has a data-plane role on the \
                                container, such as Storage Blob Data Contributor"
                .into(),
            AuthKind::Client => "check the client's credential".into(),
        }
    }

    /// What to do when creating the container was refused.
    pub(crate) fn container_creation_hint(&self) -> &'static str {
        match self.kind {
            AuthKind::Token => {
                "the identity needs a role that may create containers (e.g. Storage Blob Data \
                 Contributor on the account)"
            }
            _ => {
                "creating a container needs an account SAS (srt containing c, permission c), an \
                 account key or a token credential; a blob- or container-scoped SAS cannot \
                 create its container"
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use azure_core::http::headers::Headers;
    use azure_core::http::{AsyncRawResponse, Method, StatusCode};
    use dataprotection::clock::ManualClock;
    use std::sync::Mutex as StdMutex;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2030-01-01 0:00 UTC);

    fn sas(signature: &str, expiry: &str) -> String {
        format!("sv=2026-04-06&sr=b&sp=racwd&se={expiry}&sig={signature}")
    }

    /// Hands out queued SAS tokens and records why it was asked.
    #[derive(Debug)]
    struct Queued {
        answers: StdMutex<Vec<String>>,
        asked: StdMutex<Vec<SasRequest>>,
    }

    impl Queued {
        fn new(answers: &[String]) -> Arc<Self> {
            Arc::new(Queued {
                answers: StdMutex::new(answers.iter().rev().cloned().collect()),
                asked: StdMutex::new(Vec::new()),
            })
        }
        fn asked(&self) -> Vec<SasRequest> {
            self.asked.lock().unwrap().clone()
        }
    }

    #[async_trait]
    impl SasProvider for Queued {
        async fn get_sas(&self, reason: SasRequest) -> std::result::Result<String, BoxError> {
            self.asked.lock().unwrap().push(reason);
            self.answers
                .lock()
                .unwrap()
                .pop()
                .ok_or_else(|| "no more SAS tokens; sig=LEAKED".into())
        }
    }

    /// The transport: refuses requests signed `sig=bad` with `status` and `code`, accepts the
    /// others; records each request's query and body.
    #[derive(Debug)]
    struct Service {
        status: StatusCode,
        code: Option<&'static str>,
        seen: StdMutex<Vec<(String, Vec<u8>)>>,
    }

    impl Service {
        fn refusing(status: StatusCode, code: Option<&'static str>) -> Arc<Self> {
            Arc::new(Service {
                status,
                code,
                seen: StdMutex::new(Vec::new()),
            })
        }
        fn queries(&self) -> Vec<String> {
            self.seen
                .lock()
                .unwrap()
                .iter()
                .map(|(q, _)| q.clone())
                .collect()
        }
    }

    #[async_trait]
    impl Policy for Service {
        async fn send(
            &self,
            _ctx: &Context,
            request: &mut Request,
            _next: &[Arc<dyn Policy>],
        ) -> PolicyResult {
            let query = request.url().query().unwrap_or("").to_owned();
            let body = match request.body() {
                azure_core::http::Body::Bytes(bytes) => bytes.to_vec(),
                _ => Vec::new(),
            };
            self.seen.lock().unwrap().push((query.clone(), body));
            let mut headers = Headers::new();
            let status = if query.contains("sig=bad") {
                if let Some(code) = self.code {
                    headers.insert("x-ms-error-code", code);
                }
                self.status
            } else {
                StatusCode::Created
            };
            Ok(AsyncRawResponse::from_bytes(status, headers, Vec::new()))
        }
    }

    fn options() -> BlobRepositoryOptions {
        BlobRepositoryOptions {
            clock: Arc::new(ManualClock::new(NOW)),
            ..Default::default()
        }
    }

    fn blob() -> Url {
        Url::parse("https://acct.blob.core.windows.net/keys/ring.xml").unwrap()
    }

    async fn put(policy: &SasPolicy, service: &Arc<Service>) -> PolicyResult {
        let mut request = Request::new(
            Url::parse("https://acct.blob.core.windows.net/keys/ring.xml?timeout=30").unwrap(),
            Method::Put,
        );
        request.set_body(b"<repository/>".to_vec());
        let next: Vec<Arc<dyn Policy>> = vec![service.clone()];
        policy.send(&Context::new(), &mut request, &next).await
    }

    #[tokio::test]
    async fn a_refused_sas_is_renewed_once_and_the_request_sent_once_more() {
        let good = sas("good", "2030-01-01T01:00:00Z");
        for (status, code) in [
            (StatusCode::Forbidden, Some("AuthenticationFailed")),
            (StatusCode::Forbidden, Some("AuthorizationFailure")),
            (StatusCode::Forbidden, None),
            (StatusCode::Unauthorized, Some("InvalidAuthenticationInfo")),
        ] {
            let provider = Queued::new(&[sas("bad", "2030-01-01T01:00:00Z"), good.clone()]);
            let policy = SasPolicy::renewable(provider.clone(), &blob(), &options());
            let service = Service::refusing(status, code);
            let response = put(&policy, &service).await.unwrap();
            assert_eq!(response.status(), StatusCode::Created, "{status} {code:?}");
            assert_eq!(
                provider.asked(),
                [SasRequest::Initial, SasRequest::Rejected]
            );
            let seen = service.seen.lock().unwrap().clone();
            assert_eq!(seen.len(), 2);
            // The SDK's own query is kept, the SAS replaced, and the body sent again.
            assert_eq!(seen[1].0, format!("timeout=30&{good}"));
            assert_eq!(seen[1].1, b"<repository/>");
            assert!(seen[0].0.starts_with("timeout=30&") && seen[0].0.ends_with("sig=bad"));

            // The renewed SAS is kept for the next request.
            put(&policy, &service).await.unwrap();
            assert_eq!(provider.asked().len(), 2);
        }
    }

    #[tokio::test]
    async fn a_sas_refused_again_after_renewal_is_the_answer() {
        let bad = sas("bad", "2030-01-01T01:00:00Z");
        let provider = Queued::new(&[bad.clone(), bad.clone(), bad]);
        let policy = SasPolicy::renewable(provider.clone(), &blob(), &options());
        let service = Service::refusing(StatusCode::Forbidden, Some("AuthenticationFailed"));
        let response = put(&policy, &service).await.unwrap();
        assert_eq!(response.status(), StatusCode::Forbidden);
        assert_eq!(
            provider.asked(),
            [SasRequest::Initial, SasRequest::Rejected]
        );
        assert_eq!(service.queries().len(), 2, "renewed once, sent once more");
    }

    /// Refuses `sig=bad` once both requests have arrived, so that both are refused with the
    /// same SAS.
    #[derive(Debug)]
    struct TwoAtOnce {
        barrier: tokio::sync::Barrier,
        inner: Arc<Service>,
    }

    #[async_trait]
    impl Policy for TwoAtOnce {
        async fn send(
            &self,
            ctx: &Context,
            request: &mut Request,
            next: &[Arc<dyn Policy>],
        ) -> PolicyResult {
            if request.url().query().is_some_and(|q| q.contains("sig=bad")) {
                self.barrier.wait().await;
            }
            self.inner.send(ctx, request, next).await
        }
    }

    #[tokio::test]
    async fn requests_refused_with_the_same_sas_renew_it_once() {
        let good = sas("good", "2030-01-01T01:00:00Z");
        let provider = Queued::new(&[sas("bad", "2030-01-01T01:00:00Z"), good.clone()]);
        let policy = SasPolicy::renewable(provider.clone(), &blob(), &options());
        let service = Service::refusing(StatusCode::Forbidden, Some("AuthenticationFailed"));
        let next: Vec<Arc<dyn Policy>> = vec![Arc::new(TwoAtOnce {
            barrier: tokio::sync::Barrier::new(2),
            inner: service.clone(),
        })];
        let send = || async {
            let mut request = Request::new(blob(), Method::Get);
            policy.send(&Context::new(), &mut request, &next).await
        };
        let (a, b) = tokio::join!(send(), send());
        assert_eq!(a.unwrap().status(), StatusCode::Created);
        assert_eq!(b.unwrap().status(), StatusCode::Created);
        assert_eq!(
            provider.asked(),
            [SasRequest::Initial, SasRequest::Rejected]
        );
        let queries = service.queries();
        assert_eq!(queries.iter().filter(|q| q.ends_with("sig=bad")).count(), 2);
        assert_eq!(queries.iter().filter(|q| **q == good).count(), 2);
    }

    #[tokio::test]
    async fn other_refusals_and_fixed_sas_are_not_renewed() {
        // A 403 that is not about the credential.
        let provider = Queued::new(&[sas("bad", "2030-01-01T01:00:00Z")]);
        let policy = SasPolicy::renewable(provider.clone(), &blob(), &options());
        let service = Service::refusing(StatusCode::Forbidden, Some("AccountIsDisabled"));
        let response = put(&policy, &service).await.unwrap();
        assert_eq!(response.status(), StatusCode::Forbidden);
        assert_eq!(provider.asked(), [SasRequest::Initial]);
        assert_eq!(service.queries().len(), 1);

        // A fixed SAS cannot be renewed: the refusal is the answer.
        let policy = SasPolicy::fixed(&sas("bad", "2030-01-01T01:00:00Z"), &blob(), &options());
        let service = Service::refusing(StatusCode::Forbidden, Some("AuthenticationFailed"));
        let response = put(&policy, &service).await.unwrap();
        assert_eq!(response.status(), StatusCode::Forbidden);
        assert_eq!(service.queries().len(), 1);
    }

    #[tokio::test]
    async fn an_expiring_sas_is_renewed_before_the_request() {
        let clock = Arc::new(ManualClock::new(NOW));
        let options = BlobRepositoryOptions {
            clock: clock.clone(),
            ..Default::default()
        };
        let first = sas("first", "2030-01-01T00:30:00Z");
        let second = sas("second", "2030-01-01T02:00:00Z");
        let provider = Queued::new(&[first.clone(), second.clone()]);
        let policy = SasPolicy::renewable(provider.clone(), &blob(), &options);
        let service = Service::refusing(StatusCode::Forbidden, None);
        put(&policy, &service).await.unwrap();
        clock.advance(Duration::minutes(19)); // 11 minutes left
        put(&policy, &service).await.unwrap();
        clock.advance(Duration::minutes(2)); // 9 minutes left < 10
        put(&policy, &service).await.unwrap();
        assert_eq!(
            provider.asked(),
            [SasRequest::Initial, SasRequest::Expiring]
        );
        let queries = service.queries();
        assert!(queries[1].ends_with("sig=first") && queries[2].ends_with("sig=second"));
        assert_eq!(
            policy.current_info().await.map(|i| i.expiry),
            Some(datetime!(2030-01-01 2:00 UTC))
        );
    }

    #[tokio::test]
    async fn a_failing_provider_is_a_typed_error_without_secrets() {
        let provider = Queued::new(&[]);
        let policy = SasPolicy::renewable(provider, &blob(), &options());
        let service = Service::refusing(StatusCode::Forbidden, None);
        let err = put(&policy, &service).await.unwrap_err();
        let unavailable = err.downcast_ref::<SasUnavailable>().unwrap();
        assert_eq!(unavailable.reason, SasRequest::Initial);
        assert!(!format!("{err} {err:?}").contains("LEAKED"), "{err:?}");
        assert!(service.queries().is_empty(), "nothing was sent");
    }

    #[test]
    fn the_sas_is_appended_to_the_query_the_sdk_built() {
        let sas = "sv=2026-04-06&sr=b&sig=abc%2Bd";
        let bare = Url::parse("https://a.blob.core.windows.net/c/b").unwrap();
        assert_eq!(signed_url(&bare, sas).query(), Some(sas));
        let with_query = Url::parse("https://a.blob.core.windows.net/c/b?comp=list").unwrap();
        assert_eq!(
            signed_url(&with_query, sas).query(),
            Some("comp=list&sv=2026-04-06&sr=b&sig=abc%2Bd")
        );
    }

    #[test]
    fn debug_never_shows_the_sas() {
        let policy = SasPolicy::fixed(&sas("SECRET", "2030-01-01T01:00:00Z"), &blob(), &options());
        assert!(!format!("{policy:?}").contains("SECRET"));
    }
}
