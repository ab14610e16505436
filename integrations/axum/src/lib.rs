#![doc = include_str!("../README.md")]
#![cfg_attr(test, allow(clippy::unwrap_used))]

use std::convert::Infallible;
use std::fmt;
use std::sync::Arc;

use axum::extract::{FromRef, FromRequestParts, OptionalFromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
pub use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};
use dataprotection::payload::{decode_text, encode_text};
use dataprotection::{DataProtectionProvider, DataProtector};
use time::{Duration, OffsetDateTime};

/// The first purpose of ASP.NET Core's cookie authentication handler
/// (`CookieAuthenticationHandler` / the old `CookieAuthenticationMiddleware`).
pub const COOKIE_AUTHENTICATION_PURPOSE: &str =
    "Microsoft.AspNetCore.Authentication.Cookies.CookieAuthenticationMiddleware";

/// The last purpose of ASP.NET Core's cookie authentication handler.
pub const COOKIE_FORMAT_VERSION: &str = "v2";

/// `CookieAuthenticationDefaults.AuthenticationScheme`.
pub const DEFAULT_SCHEME: &str = "Cookies";

/// `CookieAuthenticationDefaults.CookiePrefix`: the cookie name is this plus the scheme name.
pub const COOKIE_PREFIX: &str = ".AspNetCore.";

/// The body of every 401 this crate produces.
pub const UNAUTHORIZED_BODY: &str = "unauthorized";

/// The purposes ASP.NET Core's cookie authentication uses for `scheme`, after
/// the application name: `[COOKIE_AUTHENTICATION_PURPOSE, scheme, "v2"]`.
///
/// ```
/// assert_eq!(
///     dataprotection_axum::cookie_purposes("Cookies"),
///     [
///         "Microsoft.AspNetCore.Authentication.Cookies.CookieAuthenticationMiddleware",
///         "Cookies",
///         "v2"
///     ]
/// );
/// ```
pub fn cookie_purposes(scheme: &str) -> [&str; 3] {
    [COOKIE_AUTHENTICATION_PURPOSE, scheme, COOKIE_FORMAT_VERSION]
}

/// One protected cookie: its name, the protector of its value and its
/// attributes. Cheap to clone; put it in your router state and implement
/// (or derive) [`FromRef`] so that [`ProtectedCookie`] can find it.
#[derive(Clone)]
pub struct ProtectedCookies {
    inner: Arc<Settings>,
}

#[derive(Clone)]
struct Settings {
    protector: DataProtector,
    name: String,
    path: String,
    domain: Option<String>,
    secure: bool,
    http_only: bool,
    same_site: SameSite,
    lifetime: Option<Duration>,
}

impl fmt::Debug for ProtectedCookies {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &*self.inner;
        f.debug_struct("ProtectedCookies")
            .field("name", &s.name)
            .field("purposes", &s.protector.purposes())
            .field("path", &s.path)
            .field("domain", &s.domain)
            .field("secure", &s.secure)
            .field("http_only", &s.http_only)
            .field("same_site", &s.same_site)
            .field("lifetime", &s.lifetime)
            .finish()
    }
}

impl ProtectedCookies {
    /// The cookie of ASP.NET Core's default cookie scheme: purposes
    /// [`cookie_purposes`]`("Cookies")` after the application name, named
    /// `.AspNetCore.Cookies`.
    pub fn new(provider: &DataProtectionProvider) -> Self {
        Self::for_scheme(provider, DEFAULT_SCHEME)
    }

    /// The cookie of the cookie authentication scheme `scheme`: purposes
    /// [`cookie_purposes`]`(scheme)` after the application name, named
    /// `.AspNetCore.<scheme>`.
    pub fn for_scheme(provider: &DataProtectionProvider, scheme: &str) -> Self {
        let protector = provider
            .create_protector(COOKIE_AUTHENTICATION_PURPOSE)
            .create_protector(scheme)
            .create_protector(COOKIE_FORMAT_VERSION);
        Self::with_protector(protector, format!("{COOKIE_PREFIX}{scheme}"))
    }

    /// A cookie named `name` whose value is protected by `protector` (any
    /// purpose chain).
    pub fn with_protector(protector: DataProtector, name: impl Into<String>) -> Self {
        ProtectedCookies {
            inner: Arc::new(Settings {
                protector,
                name: name.into(),
                path: "/".to_owned(),
                domain: None,
                secure: true,
                http_only: true,
                same_site: SameSite::Lax,
                lifetime: None,
            }),
        }
    }

    fn update(mut self, change: impl FnOnce(&mut Settings)) -> Self {
        change(Arc::make_mut(&mut self.inner));
        self
    }

    /// The cookie name (default `.AspNetCore.<scheme>`).
    pub fn with_name(self, name: impl Into<String>) -> Self {
        let name = name.into();
        self.update(|s| s.name = name)
    }

    /// The `Path` attribute (default `/`).
    pub fn with_path(self, path: impl Into<String>) -> Self {
        let path = path.into();
        self.update(|s| s.path = path)
    }

    /// The `Domain` attribute (default none: the host that set it).
    pub fn with_domain(self, domain: Option<String>) -> Self {
        self.update(|s| s.domain = domain)
    }

    /// The `Secure` attribute (default `true`). Browsers accept secure
    /// cookies from `http://localhost`; turn it off only for other plain-http
    /// development hosts.
    pub fn with_secure(self, secure: bool) -> Self {
        self.update(|s| s.secure = secure)
    }

    /// The `HttpOnly` attribute (default `true`).
    pub fn with_http_only(self, http_only: bool) -> Self {
        self.update(|s| s.http_only = http_only)
    }

    /// The `SameSite` attribute (default `Lax`).
    pub fn with_same_site(self, same_site: SameSite) -> Self {
        self.update(|s| s.same_site = same_site)
    }

    /// Makes the cookie expire `lifetime` after it is set: the value carries
    /// its expiry (ASP.NET Core's `ITimeLimitedDataProtector` format, whose
    /// purpose `Microsoft.AspNetCore.DataProtection.TimeLimitedDataProtector.v1`
    /// is appended) and the cookie gets `Max-Age`. Default: a session cookie
    /// whose value never expires.
    pub fn with_lifetime(self, lifetime: Duration) -> Self {
        self.update(|s| s.lifetime = Some(lifetime))
    }

    /// The cookie name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The protector of the value (before the time-limited purpose, if a
    /// lifetime is set).
    pub fn protector(&self) -> &DataProtector {
        &self.inner.protector
    }

    /// The lifetime, if the value expires.
    pub fn lifetime(&self) -> Option<Duration> {
        self.inner.lifetime
    }

    /// Protects `value` into the text stored in the cookie (Base64Url).
    ///
    /// # Errors
    /// The key ring has no usable default key (see [`DataProtector::protect`]).
    pub fn protect(&self, value: &str) -> dataprotection::Result<String> {
        let s = &*self.inner;
        match s.lifetime {
            Some(lifetime) => s
                .protector
                .to_time_limited()
                .protect(value.as_bytes(), OffsetDateTime::now_utc() + lifetime)
                .map(|p| encode_text(&p)),
            None => s.protector.protect_str(value),
        }
    }

    /// Unprotects a cookie value; `None` when it is not authentic, expired,
    /// protected for other purposes or another key ring, or not UTF-8 (the
    /// reason is logged at debug level). Waits for a key ring refresh when the
    /// value names a key this process has not loaded yet.
    pub async fn unprotect(&self, cookie_value: &str) -> Option<String> {
        let s = &*self.inner;
        let result = match decode_text(cookie_value) {
            Err(e) => Err(e),
            Ok(bytes) => match s.lifetime {
                Some(_) => s
                    .protector
                    .to_time_limited()
                    .unprotect_async(&bytes)
                    .await
                    .map(|(data, _)| data),
                None => s.protector.unprotect_async(&bytes).await,
            },
        };
        match result {
            Ok(bytes) => match String::from_utf8(bytes) {
                Ok(value) => Some(value),
                Err(_) => {
                    tracing::debug!(cookie = %s.name, "rejected a protected cookie: not UTF-8");
                    None
                }
            },
            Err(error) => {
                tracing::debug!(cookie = %s.name, %error, "rejected a protected cookie");
                None
            }
        }
    }

    /// The `Set-Cookie` cookie carrying `value`, protected, with the
    /// configured attributes.
    ///
    /// # Errors
    /// As [`ProtectedCookies::protect`].
    pub fn cookie(&self, value: &str) -> dataprotection::Result<Cookie<'static>> {
        let protected = self.protect(value)?;
        let mut cookie = self.base_cookie(protected);
        if let Some(lifetime) = self.inner.lifetime {
            cookie.set_max_age(lifetime);
        }
        Ok(cookie)
    }

    /// A cookie that deletes this cookie in the browser (empty value,
    /// `Max-Age=0`, an expiry in the past, the same path and domain).
    pub fn removal_cookie(&self) -> Cookie<'static> {
        let mut cookie = self.base_cookie(String::new());
        cookie.make_removal();
        cookie
    }

    fn base_cookie(&self, value: String) -> Cookie<'static> {
        let s = &*self.inner;
        let mut cookie = Cookie::build((s.name.clone(), value))
            .path(s.path.clone())
            .secure(s.secure)
            .http_only(s.http_only)
            .same_site(s.same_site)
            .build();
        if let Some(domain) = &s.domain {
            cookie.set_domain(domain.clone());
        }
        cookie
    }

    /// Adds the protected cookie carrying `value` to `jar` (sign in).
    ///
    /// # Errors
    /// As [`ProtectedCookies::protect`].
    pub fn set(&self, jar: CookieJar, value: &str) -> dataprotection::Result<CookieJar> {
        Ok(jar.add(self.cookie(value)?))
    }

    /// Adds the removal of the cookie to `jar` (sign out). The removal is
    /// sent even when the request carried no such cookie.
    pub fn remove(&self, jar: CookieJar) -> CookieJar {
        jar.add(self.removal_cookie())
    }

    /// The unprotected value of the cookie in `jar`, if present and valid.
    pub async fn get(&self, jar: &CookieJar) -> Option<String> {
        let value = jar.get(&self.inner.name)?.value().to_owned();
        self.unprotect(&value).await
    }

    /// The unprotected value of the cookie in the request's `Cookie`
    /// headers, if present and valid.
    pub async fn read(&self, headers: &HeaderMap) -> Option<String> {
        self.get(&CookieJar::from_headers(headers)).await
    }
}

/// Extracts the unprotected value of the [`ProtectedCookies`] cookie found
/// in the state; rejects with a bare `401 unauthorized` ([`Unauthorized`])
/// when it is missing or not valid. Use `Option<ProtectedCookie>` to get
/// `None` instead.
#[derive(Clone, PartialEq, Eq)]
pub struct ProtectedCookie(pub String);

impl fmt::Debug for ProtectedCookie {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The value may be a session identifier: show its size only.
        write!(f, "ProtectedCookie({} bytes)", self.0.len())
    }
}

impl<S> FromRequestParts<S> for ProtectedCookie
where
    S: Send + Sync,
    ProtectedCookies: FromRef<S>,
{
    type Rejection = Unauthorized;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Unauthorized> {
        let cookies = ProtectedCookies::from_ref(state);
        match cookies.read(&parts.headers).await {
            Some(value) => Ok(ProtectedCookie(value)),
            None => Err(Unauthorized),
        }
    }
}

impl<S> OptionalFromRequestParts<S> for ProtectedCookie
where
    S: Send + Sync,
    ProtectedCookies: FromRef<S>,
{
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Option<Self>, Infallible> {
        let cookies = ProtectedCookies::from_ref(state);
        Ok(cookies.read(&parts.headers).await.map(ProtectedCookie))
    }
}

/// The rejection of [`ProtectedCookie`]: `401` with the body `unauthorized`
/// and nothing else, whatever was wrong with the cookie.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Unauthorized;

impl fmt::Display for Unauthorized {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(UNAUTHORIZED_BODY)
    }
}

impl std::error::Error for Unauthorized {}

impl IntoResponse for Unauthorized {
    fn into_response(self) -> Response {
        (
            StatusCode::UNAUTHORIZED,
            [
                (
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/plain; charset=utf-8"),
                ),
                (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
            ],
            UNAUTHORIZED_BODY,
        )
            .into_response()
    }
}

mod signin;
pub use dataprotection_aspnetcore as aspnetcore;
pub use signin::{
    AuthenticateError, Authenticated, CookieAuthentication, CookieSecurePolicy, CookieUser,
    DEFAULT_EXPIRE_TIME_SPAN, SetCookies, SignInError,
};

#[cfg(test)]
mod signin_tests;
#[cfg(test)]
mod tests;
