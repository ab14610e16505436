//! ASP.NET Core cookie authentication in axum: sign-in and sign-out that
//! write the cookies `CookieAuthenticationHandler` writes (a protected
//! `AuthenticationTicket`, chunked by `ChunkingCookieManager`), an extractor
//! that reads them, and the handler's sliding expiration.

use std::convert::Infallible;
use std::fmt;
use std::sync::Arc;

use axum::extract::{FromRef, FromRequestParts, OptionalFromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponseParts, Response, ResponseParts};
use dataprotection::DataProtectionProvider;
use dataprotection::clock::{Clock, SystemClock};
use dataprotection_aspnetcore::{
    AuthenticationProperties, AuthenticationTicket, ChunkSizeTooSmall, ChunkingCookieManager,
    ClaimsIdentity, CookieOptions, FormatError, RequestCookies, SameSite, TicketDataFormat,
    UnprotectError, cookie_name,
};
use time::Duration;

use crate::{DEFAULT_SCHEME, Unauthorized};

/// `CookieAuthenticationOptions.ExpireTimeSpan` default: 14 days.
pub const DEFAULT_EXPIRE_TIME_SPAN: Duration = Duration::days(14);

/// When the cookie gets the `Secure` attribute (`CookieSecurePolicy`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum CookieSecurePolicy {
    /// Secure when the request is HTTPS (the handler's default). The request
    /// counts as HTTPS when its URI says so or its first `X-Forwarded-Proto`
    /// is `https` (App Service and most proxies terminate TLS and set it).
    #[default]
    SameAsRequest,
    /// Always `Secure`.
    Always,
    /// Never `Secure`.
    None,
}

/// ASP.NET Core cookie authentication for one scheme. Cheap to clone; put
/// it in the router state and implement [`FromRef`] so that
/// [`CookieUser`] can find it.
#[derive(Clone)]
pub struct CookieAuthentication {
    inner: Arc<Settings>,
}

#[derive(Clone)]
struct Settings {
    format: TicketDataFormat,
    scheme: String,
    cookie_name: String,
    path: String,
    domain: Option<String>,
    http_only: bool,
    same_site: SameSite,
    secure: CookieSecurePolicy,
    expire_time_span: Duration,
    sliding_expiration: bool,
    chunking: ChunkingCookieManager,
    clock: Arc<dyn Clock>,
}

impl fmt::Debug for CookieAuthentication {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &*self.inner;
        f.debug_struct("CookieAuthentication")
            .field("scheme", &s.scheme)
            .field("cookie_name", &s.cookie_name)
            .field("path", &s.path)
            .field("domain", &s.domain)
            .field("secure", &s.secure)
            .field("expire_time_span", &s.expire_time_span)
            .field("sliding_expiration", &s.sliding_expiration)
            .finish_non_exhaustive()
    }
}

/// Why a sign-in could not write its cookie.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SignInError {
    /// The ticket could not be protected (no usable default key) or is too
    /// large for the format.
    #[error("could not protect the authentication ticket: {0}")]
    Protect(#[from] UnprotectError),
    /// The cookie name and attributes leave no room for data in a chunk.
    #[error(transparent)]
    ChunkSize(#[from] ChunkSizeTooSmall),
    /// The cookie name, path or domain is not valid in a header.
    #[error("the cookie name, path or domain is not a valid header value")]
    InvalidHeader,
}

/// Why a request is not authenticated by the cookie.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthenticateError {
    /// The request carries no such cookie.
    #[error("no authentication cookie")]
    NoCookie,
    /// The cookie could not be unprotected or is not a ticket (tampered,
    /// another application, scheme or key ring, or missing chunks).
    #[error("the authentication cookie is not valid: {0}")]
    Invalid(#[from] UnprotectError),
    /// The ticket's `.expires` has passed.
    #[error("the authentication ticket expired at {0}")]
    Expired(time::OffsetDateTime),
}

/// `Set-Cookie` headers to add to a response (sign-in, sign-out, renewal).
/// Return it from a handler next to the body: `(set_cookies, Redirect::to("/"))`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SetCookies(pub Vec<HeaderValue>);

impl SetCookies {
    fn from_strings(values: Vec<String>) -> Result<Self, SignInError> {
        values
            .into_iter()
            .map(|v| HeaderValue::try_from(v).map_err(|_| SignInError::InvalidHeader))
            .collect::<Result<Vec<_>, _>>()
            .map(SetCookies)
    }

    /// The header values as text.
    pub fn to_strings(&self) -> Vec<String> {
        self.0
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect()
    }
}

impl IntoResponseParts for SetCookies {
    type Error = Infallible;

    fn into_response_parts(self, mut res: ResponseParts) -> Result<ResponseParts, Infallible> {
        for value in self.0 {
            res.headers_mut().append(header::SET_COOKIE, value);
        }
        Ok(res)
    }
}

/// A successful authentication: the ticket and, when sliding expiration
/// renewed it, the renewed ticket to write back.
#[derive(Clone, Debug)]
pub struct Authenticated {
    /// The ticket read from the cookie.
    pub ticket: AuthenticationTicket,
    /// The renewed ticket (issued now, same lifetime), if more than half of
    /// the lifetime had passed.
    pub renewed: Option<AuthenticationTicket>,
}

fn request_is_https(headers: &HeaderMap, uri_scheme: Option<&str>) -> bool {
    if uri_scheme == Some("https") {
        return true;
    }
    headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .is_some_and(|proto| proto.trim().eq_ignore_ascii_case("https"))
}

fn request_cookies(headers: &HeaderMap) -> RequestCookies {
    RequestCookies::parse(
        headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok()),
    )
}

impl CookieAuthentication {
    /// The default scheme `Cookies` (cookie `.AspNetCore.Cookies`).
    pub fn new(provider: &DataProtectionProvider) -> Self {
        Self::for_scheme(provider, DEFAULT_SCHEME)
    }

    /// The scheme `scheme`: purposes `[CookieAuthenticationMiddleware,
    /// scheme, "v2"]` after the application name, cookie `.AspNetCore.<scheme>`,
    /// and the handler's defaults (path `/`, HttpOnly, SameSite=Lax, Secure
    /// on HTTPS, 14 days, sliding expiration, chunks of 4050 characters).
    pub fn for_scheme(provider: &DataProtectionProvider, scheme: &str) -> Self {
        CookieAuthentication {
            inner: Arc::new(Settings {
                format: TicketDataFormat::for_cookie_scheme(provider, scheme),
                scheme: scheme.to_owned(),
                cookie_name: cookie_name(scheme),
                path: "/".to_owned(),
                domain: None,
                http_only: true,
                same_site: SameSite::Lax,
                secure: CookieSecurePolicy::SameAsRequest,
                expire_time_span: DEFAULT_EXPIRE_TIME_SPAN,
                sliding_expiration: true,
                chunking: ChunkingCookieManager::default(),
                clock: Arc::new(SystemClock),
            }),
        }
    }

    fn update(mut self, change: impl FnOnce(&mut Settings)) -> Self {
        change(Arc::make_mut(&mut self.inner));
        self
    }

    /// `Cookie.Name` (default `.AspNetCore.<scheme>`).
    pub fn with_cookie_name(self, name: impl Into<String>) -> Self {
        let name = name.into();
        self.update(|s| s.cookie_name = name)
    }

    /// `Cookie.Path` (default `/`).
    pub fn with_path(self, path: impl Into<String>) -> Self {
        let path = path.into();
        self.update(|s| s.path = path)
    }

    /// `Cookie.Domain` (default none), e.g. `.example.com` to share the
    /// sign-in with other hosts of the domain.
    pub fn with_domain(self, domain: Option<String>) -> Self {
        self.update(|s| s.domain = domain)
    }

    /// `Cookie.SecurePolicy` (default same as request).
    pub fn with_secure_policy(self, policy: CookieSecurePolicy) -> Self {
        self.update(|s| s.secure = policy)
    }

    /// `Cookie.SameSite` (default Lax).
    pub fn with_same_site(self, same_site: SameSite) -> Self {
        self.update(|s| s.same_site = same_site)
    }

    /// `Cookie.HttpOnly` (default true).
    pub fn with_http_only(self, http_only: bool) -> Self {
        self.update(|s| s.http_only = http_only)
    }

    /// `ExpireTimeSpan` (default 14 days).
    pub fn with_expire_time_span(self, span: Duration) -> Self {
        self.update(|s| s.expire_time_span = span)
    }

    /// `SlidingExpiration` (default true).
    pub fn with_sliding_expiration(self, sliding: bool) -> Self {
        self.update(|s| s.sliding_expiration = sliding)
    }

    /// `ChunkingCookieManager.ChunkSize` (default 4050; `None` never splits).
    pub fn with_chunk_size(self, chunk_size: Option<usize>) -> Self {
        self.update(|s| s.chunking = ChunkingCookieManager { chunk_size })
    }

    /// The clock (tests use a manual one).
    pub fn with_clock(self, clock: Arc<dyn Clock>) -> Self {
        self.update(|s| s.clock = clock)
    }

    /// The scheme name.
    pub fn scheme(&self) -> &str {
        &self.inner.scheme
    }

    /// The cookie name.
    pub fn cookie_name(&self) -> &str {
        &self.inner.cookie_name
    }

    /// The ticket format (to protect or read tickets directly).
    pub fn ticket_format(&self) -> &TicketDataFormat {
        &self.inner.format
    }

    /// `BuildCookieOptions` for a request.
    fn cookie_options(&self, https: bool) -> CookieOptions {
        let s = &*self.inner;
        CookieOptions {
            path: Some(s.path.clone()),
            domain: s.domain.clone(),
            expires: None,
            max_age: None,
            secure: match s.secure {
                CookieSecurePolicy::SameAsRequest => https,
                CookieSecurePolicy::Always => true,
                CookieSecurePolicy::None => false,
            },
            http_only: s.http_only,
            same_site: s.same_site,
        }
    }

    fn write_ticket(
        &self,
        request_headers: &HeaderMap,
        ticket: &AuthenticationTicket,
        https: bool,
    ) -> Result<SetCookies, SignInError> {
        let mut options = self.cookie_options(https);
        if ticket.properties.is_persistent() {
            options.expires = ticket.properties.expires();
        }
        let value = self.inner.format.protect(ticket)?;
        let headers = self.inner.chunking.append_response_cookie(
            &request_cookies(request_headers),
            &self.inner.cookie_name,
            &value,
            &options,
        )?;
        SetCookies::from_strings(headers)
    }

    /// Signs `identity` in, as `HttpContext.SignInAsync(scheme, principal,
    /// properties)`: `.issued` defaults to now and `.expires` to issued +
    /// `ExpireTimeSpan`; a persistent sign-in (`properties.set_persistent(true)`)
    /// gets a cookie with `Expires`. `request_headers` decide `Secure` under
    /// [`CookieSecurePolicy::SameAsRequest`].
    ///
    /// # Errors
    /// [`SignInError`] when the ticket cannot be protected or written.
    pub fn sign_in(
        &self,
        request_headers: &HeaderMap,
        identity: ClaimsIdentity,
        properties: AuthenticationProperties,
    ) -> Result<SetCookies, SignInError> {
        let mut ticket = AuthenticationTicket {
            scheme: self.inner.scheme.clone(),
            identities: vec![identity],
            properties,
        };
        let issued = ticket
            .properties
            .issued()
            .unwrap_or_else(|| self.inner.clock.now());
        ticket.properties.set_issued(Some(issued));
        if ticket.properties.expires().is_none() {
            let expires =
                issued
                    .checked_add(self.inner.expire_time_span)
                    .ok_or(UnprotectError::Format(FormatError::DateOutOfRange {
                        what: ".expires",
                    }))?;
            ticket.properties.set_expires(Some(expires));
        }
        self.write_ticket(
            request_headers,
            &ticket,
            request_is_https(request_headers, None),
        )
    }

    /// Signs out, as `HttpContext.SignOutAsync(scheme)`: expires the cookie
    /// and every chunk the request carries.
    pub fn sign_out(&self, request_headers: &HeaderMap) -> SetCookies {
        let options = self.cookie_options(request_is_https(request_headers, None));
        let headers = self.inner.chunking.delete_cookie(
            &request_cookies(request_headers),
            &self.inner.cookie_name,
            &options,
        );
        // The values are built from the configured name, path and domain;
        // one that is not a valid header value is dropped rather than sent.
        SetCookies(
            headers
                .into_iter()
                .filter_map(|h| HeaderValue::try_from(h).ok())
                .collect(),
        )
    }

    /// Authenticates a request from its cookies, as the handler's
    /// `HandleAuthenticateAsync`: reassembles chunks, unprotects (waiting for a
    /// key ring refresh if the key is unknown), rejects an expired ticket and
    /// renews one past half its lifetime when sliding expiration is on (and
    /// `.refresh` is not `False`).
    ///
    /// # Errors
    /// [`AuthenticateError`] naming why the request is not authenticated.
    pub async fn authenticate(
        &self,
        request_headers: &HeaderMap,
    ) -> Result<Authenticated, AuthenticateError> {
        let s = &*self.inner;
        let cookies = request_cookies(request_headers);
        let value = s
            .chunking
            .get_request_cookie(&cookies, &s.cookie_name)
            .ok_or(AuthenticateError::NoCookie)?;
        let ticket = s.format.unprotect_async(&value).await?;
        let now = s.clock.now();
        if let Some(expires) = ticket.properties.expires()
            && expires < now
        {
            return Err(AuthenticateError::Expired(expires));
        }
        let renewed = self.renewal(&ticket, now);
        Ok(Authenticated { ticket, renewed })
    }

    /// `CheckForRefresh` / `RequestRefresh`.
    fn renewal(
        &self,
        ticket: &AuthenticationTicket,
        now: time::OffsetDateTime,
    ) -> Option<AuthenticationTicket> {
        let props = &ticket.properties;
        let (issued, expires) = (props.issued()?, props.expires()?);
        if !self.inner.sliding_expiration || props.allow_refresh() == Some(false) {
            return None;
        }
        if expires - now >= now - issued {
            return None;
        }
        let mut renewed = ticket.clone();
        renewed.properties.set_issued(Some(now));
        renewed
            .properties
            .set_expires(now.checked_add(expires - issued));
        Some(renewed)
    }

    /// Middleware for `axum::middleware::from_fn_with_state`: authenticates
    /// once per request (the [`CookieUser`] extractor then reuses the
    /// result) and, when sliding expiration renewed the ticket, appends the
    /// renewed cookie to the response.
    pub async fn middleware(
        State(auth): State<CookieAuthentication>,
        mut request: Request,
        next: Next,
    ) -> Response {
        let https = request_is_https(request.headers(), request.uri().scheme_str());
        let request_headers = request.headers().clone();
        let outcome = auth.authenticate(&request_headers).await;
        let renewal = match &outcome {
            Ok(Authenticated {
                renewed: Some(t), ..
            }) => Some(t.clone()),
            _ => None,
        };
        request.extensions_mut().insert(AuthenticationOutcome {
            scheme: auth.inner.scheme.clone(),
            ticket: auth.log_failure(outcome).map(|a| a.ticket),
        });
        let mut response = next.run(request).await;
        if let Some(ticket) = renewal {
            match auth.write_ticket(&request_headers, &ticket, https) {
                Ok(cookies) => {
                    for value in cookies.0 {
                        response.headers_mut().append(header::SET_COOKIE, value);
                    }
                }
                Err(error) => tracing::warn!(%error, "could not renew the authentication cookie"),
            }
        }
        response
    }

    async fn user_of(&self, parts: &Parts) -> Option<AuthenticationTicket> {
        if let Some(outcome) = parts.extensions.get::<AuthenticationOutcome>()
            && outcome.scheme == self.inner.scheme
        {
            return outcome.ticket.clone();
        }
        self.log_failure(self.authenticate(&parts.headers).await)
            .map(|a| a.ticket)
    }

    /// The reason a cookie was rejected goes to the debug log only (never the
    /// cookie value), not to the client.
    fn log_failure(
        &self,
        outcome: Result<Authenticated, AuthenticateError>,
    ) -> Option<Authenticated> {
        match outcome {
            Ok(authenticated) => Some(authenticated),
            Err(AuthenticateError::NoCookie) => None,
            Err(error) => {
                tracing::debug!(scheme = %self.inner.scheme, %error, "rejected a protected cookie");
                None
            }
        }
    }
}

/// What the middleware found, for the extractor.
#[derive(Clone)]
struct AuthenticationOutcome {
    scheme: String,
    ticket: Option<AuthenticationTicket>,
}

/// Extracts the ASP.NET Core principal signed in with the
/// [`CookieAuthentication`] in the state; rejects with a bare `401`
/// ([`Unauthorized`]) when there is no valid, unexpired cookie. Use
/// `Option<CookieUser>` to get `None` instead.
#[derive(Clone, Debug)]
pub struct CookieUser(pub AuthenticationTicket);

impl<S> FromRequestParts<S> for CookieUser
where
    S: Send + Sync,
    CookieAuthentication: FromRef<S>,
{
    type Rejection = Unauthorized;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Unauthorized> {
        let auth = CookieAuthentication::from_ref(state);
        auth.user_of(parts)
            .await
            .map(CookieUser)
            .ok_or(Unauthorized)
    }
}

impl<S> OptionalFromRequestParts<S> for CookieUser
where
    S: Send + Sync,
    CookieAuthentication: FromRef<S>,
{
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Option<Self>, Infallible> {
        let auth = CookieAuthentication::from_ref(state);
        Ok(auth.user_of(parts).await.map(CookieUser))
    }
}
