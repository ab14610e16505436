//! End-to-end tests of the ASP.NET Core sign-in, extractor, sliding
//! expiration and sign-out through an axum router.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{FromRef, State};
use axum::http::{HeaderMap, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use dataprotection::DataProtectionProvider;
use dataprotection::clock::ManualClock;
use dataprotection::repository::{InMemoryXmlRepository, XmlRepository};
use dataprotection_aspnetcore::{AuthenticationProperties, ClaimsIdentity, TicketDataFormat};
use http_body_util::BodyExt;
use time::macros::datetime;
use time::{Duration, OffsetDateTime};
use tower::ServiceExt;

use super::*;

const T0: OffsetDateTime = datetime!(2026-11-30 08:00 UTC);

async fn provider(repo: Arc<dyn XmlRepository>, clock: Arc<ManualClock>) -> DataProtectionProvider {
    DataProtectionProvider::builder()
        .application_name("signin-tests")
        .repository(repo)
        .clock(clock)
        .build()
        .await
        .unwrap()
}

#[derive(Clone)]
struct AppState {
    auth: CookieAuthentication,
}

impl FromRef<AppState> for CookieAuthentication {
    fn from_ref(state: &AppState) -> Self {
        state.auth.clone()
    }
}

/// Signs in the user named by the query string `?name=…&claims=N&persistent`.
async fn sign_in(
    State(auth): State<CookieAuthentication>,
    headers: HeaderMap,
    query: axum::extract::RawQuery,
) -> Response {
    let query = query.0.unwrap_or_default();
    let mut identity = ClaimsIdentity::new("Cookies");
    let mut properties = AuthenticationProperties::new();
    for pair in query.split('&') {
        match pair.split_once('=') {
            Some(("name", name)) => identity = identity.with_name(name),
            Some(("claims", n)) => {
                for i in 0..n.parse::<usize>().unwrap() {
                    identity = identity.with_claim(
                        format!("claim-{i}"),
                        format!("value-{i}-{}", "x".repeat(40)),
                    );
                }
            }
            Some(("expires", secs)) => properties.set_expires(Some(
                OffsetDateTime::from_unix_timestamp(secs.parse().unwrap()).unwrap(),
            )),
            _ if pair == "persistent" => properties.set_persistent(true),
            _ => {}
        }
    }
    match auth.sign_in(&headers, identity, properties) {
        Ok(cookies) => (cookies, "signed in").into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

async fn sign_out(
    State(auth): State<CookieAuthentication>,
    headers: HeaderMap,
) -> impl IntoResponse {
    (auth.sign_out(&headers), "signed out")
}

async fn me(CookieUser(ticket): CookieUser) -> String {
    ticket.name().unwrap_or_default().to_owned()
}

async fn maybe(user: Option<CookieUser>) -> String {
    user.map_or_else(
        || "anonymous".to_owned(),
        |u| u.0.name().unwrap_or_default().to_owned(),
    )
}

fn app(auth: CookieAuthentication) -> Router {
    Router::new()
        .route("/signin", post(sign_in))
        .route("/signout", post(sign_out))
        .route("/me", get(me))
        .route("/maybe", get(maybe))
        .layer(axum::middleware::from_fn_with_state(
            auth.clone(),
            CookieAuthentication::middleware,
        ))
        .with_state(AppState { auth })
}

struct Reply {
    status: StatusCode,
    set_cookies: Vec<String>,
    body: String,
}

async fn call(app: &Router, method: &str, uri: &str, cookie: Option<&str>, https: bool) -> Reply {
    let mut request = Request::builder().method(method).uri(uri);
    if let Some(cookie) = cookie {
        request = request.header(header::COOKIE, cookie);
    }
    if https {
        request = request.header("x-forwarded-proto", "https");
    }
    let response = app
        .clone()
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let set_cookies = response
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    let body = String::from_utf8(
        response
            .into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec(),
    )
    .unwrap();
    Reply {
        status,
        set_cookies,
        body,
    }
}

/// The `Cookie` header a browser would send back for these `Set-Cookie`s.
fn cookie_header(set_cookies: &[String]) -> String {
    set_cookies
        .iter()
        .map(|c| c.split(';').next().unwrap())
        .collect::<Vec<_>>()
        .join("; ")
}

async fn setup() -> (
    Router,
    CookieAuthentication,
    Arc<ManualClock>,
    DataProtectionProvider,
) {
    let clock = Arc::new(ManualClock::new(T0));
    let provider = provider(Arc::new(InMemoryXmlRepository::new()), clock.clone()).await;
    let auth = CookieAuthentication::new(&provider).with_clock(clock.clone());
    (app(auth.clone()), auth, clock, provider)
}

#[tokio::test]
async fn a_sign_in_cookie_is_read_back_and_is_what_aspnet_core_writes() {
    let (app, _, _, provider) = setup().await;
    let signed_in = call(&app, "POST", "/signin?name=alice", None, false).await;
    assert_eq!(signed_in.status, StatusCode::OK);
    assert_eq!(signed_in.set_cookies.len(), 1);
    let set_cookie = &signed_in.set_cookies[0];
    assert!(
        set_cookie.starts_with(".AspNetCore.Cookies=CfDJ8"),
        "{set_cookie}"
    );
    assert!(
        set_cookie.ends_with("; path=/; samesite=lax; httponly"),
        "{set_cookie}"
    );

    let cookie = cookie_header(&signed_in.set_cookies);
    let me = call(&app, "GET", "/me", Some(&cookie), false).await;
    assert_eq!((me.status, me.body.as_str()), (StatusCode::OK, "alice"));
    assert!(me.set_cookies.is_empty(), "no renewal right after sign-in");

    // The value is a ticket under the cookie handler's purposes, with the
    // handler's .issued/.expires.
    let value = cookie.strip_prefix(".AspNetCore.Cookies=").unwrap();
    let ticket = TicketDataFormat::for_cookie_scheme(&provider, "Cookies")
        .unprotect(value)
        .unwrap();
    assert_eq!(ticket.scheme, "Cookies");
    assert_eq!(ticket.properties.issued(), Some(T0));
    assert_eq!(ticket.properties.expires(), Some(T0 + Duration::days(14)));
    assert!(!ticket.properties.is_persistent());
}

#[tokio::test]
async fn persistent_https_sign_ins_carry_expires_and_secure() {
    let (app, _, _, _) = setup().await;
    let signed_in = call(&app, "POST", "/signin?name=bob&persistent", None, true).await;
    assert_eq!(
        signed_in.set_cookies[0].split_once(';').unwrap().1,
        " expires=Mon, 14 Dec 2026 08:00:00 GMT; path=/; secure; samesite=lax; httponly"
    );
}

#[tokio::test]
async fn a_large_sign_in_is_chunked_read_back_and_fully_signed_out() {
    let (app, _, _, _) = setup().await;
    let signed_in = call(&app, "POST", "/signin?name=erin&claims=120", None, false).await;
    let n = signed_in.set_cookies.len();
    assert!(n >= 3, "expected chunks, got {n}");
    assert!(
        signed_in.set_cookies[0].starts_with(&format!(".AspNetCore.Cookies=chunks-{}; ", n - 1))
    );
    for (i, c) in signed_in.set_cookies.iter().enumerate().skip(1) {
        assert!(c.starts_with(&format!(".AspNetCore.CookiesC{i}=")));
        assert!(c.len() <= 4050);
    }
    let cookie = cookie_header(&signed_in.set_cookies);
    let me = call(&app, "GET", "/me", Some(&cookie), false).await;
    assert_eq!((me.status, me.body.as_str()), (StatusCode::OK, "erin"));

    // Partial chunks: 401.
    let partial = cookie_header(&signed_in.set_cookies[..n - 1]);
    assert_eq!(
        call(&app, "GET", "/me", Some(&partial), false).await.status,
        StatusCode::UNAUTHORIZED
    );

    // Signing in again with a small ticket expires the chunks no longer used.
    let small = call(&app, "POST", "/signin?name=erin", Some(&cookie), false).await;
    assert_eq!(small.set_cookies.len(), n);
    for (i, c) in small.set_cookies[..n - 1].iter().enumerate() {
        assert!(
            c.starts_with(&format!(
                ".AspNetCore.CookiesC{}=; expires=Thu, 01 Jan 1970",
                i + 1
            )),
            "{c}"
        );
    }
    assert!(small.set_cookies[n - 1].starts_with(".AspNetCore.Cookies=CfDJ8"));

    // Sign-out expires the cookie and every chunk.
    let out = call(&app, "POST", "/signout", Some(&cookie), false).await;
    assert_eq!(out.set_cookies.len(), n);
    assert!(
        out.set_cookies[0]
            .starts_with(".AspNetCore.Cookies=; expires=Thu, 01 Jan 1970 00:00:00 GMT; path=/")
    );
    for (i, c) in out.set_cookies.iter().enumerate().skip(1) {
        assert!(c.starts_with(&format!(
            ".AspNetCore.CookiesC{i}=; expires=Thu, 01 Jan 1970"
        )));
    }
}

#[tokio::test]
async fn tampered_expired_and_other_scheme_cookies_are_401() {
    let (app, _, clock, provider) = setup().await;
    let cookie = cookie_header(
        &call(&app, "POST", "/signin?name=alice", None, false)
            .await
            .set_cookies,
    );

    let mut tampered = cookie.clone().into_bytes();
    let at = tampered.len() - 5;
    tampered[at] = if tampered[at] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    let reply = call(&app, "GET", "/me", Some(&tampered), false).await;
    assert_eq!(
        (reply.status, reply.body.as_str()),
        (StatusCode::UNAUTHORIZED, "unauthorized")
    );
    assert_eq!(
        call(&app, "GET", "/maybe", Some(&tampered), false)
            .await
            .body,
        "anonymous"
    );

    // A cookie of another scheme, renamed to this scheme's cookie.
    let other = CookieAuthentication::for_scheme(&provider, "Other").with_clock(clock.clone());
    let other_cookie = cookie_header(
        &call(&app_for(other), "POST", "/signin?name=mallory", None, false)
            .await
            .set_cookies,
    );
    let renamed = other_cookie.replace(".AspNetCore.Other=", ".AspNetCore.Cookies=");
    assert!(renamed.starts_with(".AspNetCore.Cookies=CfDJ8"));
    assert_eq!(
        call(&app, "GET", "/me", Some(&renamed), false).await.status,
        StatusCode::UNAUTHORIZED
    );

    // Expired: past .expires.
    clock.set(T0 + Duration::days(14) + Duration::seconds(1));
    assert_eq!(
        call(&app, "GET", "/me", Some(&cookie), false).await.status,
        StatusCode::UNAUTHORIZED
    );
    // An explicit .expires in the past at sign-in.
    let past = (T0 - Duration::days(1)).unix_timestamp();
    let expired = cookie_header(
        &call(
            &app,
            "POST",
            &format!("/signin?name=x&expires={past}"),
            None,
            false,
        )
        .await
        .set_cookies,
    );
    assert_eq!(
        call(&app, "GET", "/me", Some(&expired), false).await.status,
        StatusCode::UNAUTHORIZED
    );
    // No cookie at all.
    assert_eq!(
        call(&app, "GET", "/me", None, false).await.status,
        StatusCode::UNAUTHORIZED
    );
}

fn app_for(auth: CookieAuthentication) -> Router {
    app(auth)
}

#[tokio::test]
async fn sliding_expiration_renews_after_half_the_lifetime() {
    let (app, auth, clock, _) = setup().await;
    let cookie = cookie_header(
        &call(&app, "POST", "/signin?name=alice", None, false)
            .await
            .set_cookies,
    );

    clock.set(T0 + Duration::days(6));
    let early = call(&app, "GET", "/me", Some(&cookie), false).await;
    assert_eq!(early.status, StatusCode::OK);
    assert!(early.set_cookies.is_empty());

    clock.set(T0 + Duration::days(8));
    let late = call(&app, "GET", "/me", Some(&cookie), false).await;
    assert_eq!(late.status, StatusCode::OK);
    assert_eq!(late.set_cookies.len(), 1);
    let renewed = cookie_header(&late.set_cookies);
    let value = renewed.strip_prefix(".AspNetCore.Cookies=").unwrap();
    let ticket = auth.ticket_format().unprotect(value).unwrap();
    assert_eq!(ticket.properties.issued(), Some(T0 + Duration::days(8)));
    assert_eq!(ticket.properties.expires(), Some(T0 + Duration::days(22)));

    // Without sliding expiration, no renewal.
    let fixed = auth.clone().with_sliding_expiration(false);
    let reply = call(&app_for(fixed), "GET", "/me", Some(&cookie), false).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(reply.set_cookies.is_empty());
}
