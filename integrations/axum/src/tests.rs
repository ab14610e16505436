use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{FromRef, State};
use axum::http::{Request, StatusCode, header};
use axum::routing::{get, post};
use dataprotection::DataProtectionProvider;
use dataprotection::clock::ManualClock;
use dataprotection::repository::{InMemoryXmlRepository, XmlRepository};
use http_body_util::BodyExt;
use tower::ServiceExt;

use super::*;

async fn provider(app: &str, repo: Arc<dyn XmlRepository>) -> DataProtectionProvider {
    DataProtectionProvider::builder()
        .application_name(app)
        .repository(repo)
        .build()
        .await
        .unwrap()
}

#[derive(Clone)]
struct AppState {
    cookies: ProtectedCookies,
}

impl FromRef<AppState> for ProtectedCookies {
    fn from_ref(state: &AppState) -> Self {
        state.cookies.clone()
    }
}

async fn sign_in(
    State(cookies): State<ProtectedCookies>,
    jar: CookieJar,
    body: String,
) -> Response {
    match cookies.set(jar, &body) {
        Ok(jar) => (jar, "signed in").into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

async fn sign_out(State(cookies): State<ProtectedCookies>, jar: CookieJar) -> CookieJar {
    cookies.remove(jar)
}

async fn me(ProtectedCookie(user): ProtectedCookie) -> String {
    user
}

async fn maybe(user: Option<ProtectedCookie>) -> String {
    user.map_or_else(|| "anonymous".to_owned(), |u| u.0)
}

fn app(cookies: ProtectedCookies) -> Router {
    Router::new()
        .route("/signin", post(sign_in))
        .route("/signout", post(sign_out))
        .route("/me", get(me))
        .route("/maybe", get(maybe))
        .with_state(AppState { cookies })
}

/// Sends a request; returns the status, the `Set-Cookie` headers and the body.
async fn send(
    app: &Router,
    method: &str,
    path: &str,
    cookie: Option<&str>,
    body: &str,
) -> (StatusCode, Vec<String>, String) {
    let mut request = Request::builder().method(method).uri(path);
    if let Some(cookie) = cookie {
        request = request.header(header::COOKIE, cookie);
    }
    let response = app
        .clone()
        .oneshot(request.body(Body::from(body.to_owned())).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let set_cookies = response
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        set_cookies,
        String::from_utf8(body.to_vec()).unwrap(),
    )
}

/// Signs `user` in and returns the `name=value` pair to send back.
async fn sign_in_as(app: &Router, user: &str) -> String {
    let (status, set_cookies, _) = send(app, "POST", "/signin", None, user).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(set_cookies.len(), 1, "{set_cookies:?}");
    set_cookies[0].split(';').next().unwrap().to_owned()
}

#[tokio::test]
async fn defaults_follow_aspnet_core_cookie_authentication() {
    let provider = provider("my-app", Arc::new(InMemoryXmlRepository::new())).await;
    let cookies = ProtectedCookies::new(&provider);
    assert_eq!(cookies.name(), ".AspNetCore.Cookies");
    assert_eq!(
        cookies.protector().purposes(),
        [
            "my-app",
            "Microsoft.AspNetCore.Authentication.Cookies.CookieAuthenticationMiddleware",
            "Cookies",
            "v2"
        ]
    );
    let scheme = ProtectedCookies::for_scheme(&provider, "Identity.Application");
    assert_eq!(scheme.name(), ".AspNetCore.Identity.Application");
    assert_eq!(
        scheme.protector().purposes()[1..],
        cookie_purposes("Identity.Application")
    );

    // The value is an ordinary Data Protection payload under those purposes.
    let cookie = cookies.cookie("alice").unwrap();
    assert!(cookie.value().starts_with("CfDJ8"), "{}", cookie.value());
    let explicit = provider.create_protector_with_purposes(&[
        "my-app",
        COOKIE_AUTHENTICATION_PURPOSE,
        "Cookies",
        "v2",
    ]);
    assert_eq!(explicit.unprotect_str(cookie.value()).unwrap(), "alice");
    let token = explicit.protect_str("bob").unwrap();
    assert_eq!(cookies.unprotect(&token).await.as_deref(), Some("bob"));
}

#[tokio::test]
async fn cookie_attributes_default_to_secure_http_only_lax() {
    let provider = provider("attrs", Arc::new(InMemoryXmlRepository::new())).await;
    let cookies = ProtectedCookies::new(&provider);
    let set_cookie = cookies.cookie("alice").unwrap().to_string();
    for attribute in ["Path=/", "Secure", "HttpOnly", "SameSite=Lax"] {
        assert!(
            set_cookie.contains(attribute),
            "{attribute} in {set_cookie}"
        );
    }
    assert!(!set_cookie.contains("Max-Age"), "{set_cookie}");
    assert!(!set_cookie.contains("Domain"), "{set_cookie}");

    let custom = cookies
        .with_name("session")
        .with_path("/app")
        .with_domain(Some("example.com".to_owned()))
        .with_secure(false)
        .with_http_only(false)
        .with_same_site(SameSite::Strict)
        .with_lifetime(Duration::hours(8));
    let cookie = custom.cookie("alice").unwrap();
    assert_eq!(cookie.name(), "session");
    assert_eq!(cookie.path(), Some("/app"));
    assert_eq!(cookie.domain(), Some("example.com"));
    assert_eq!(cookie.secure(), Some(false));
    assert_eq!(cookie.http_only(), Some(false));
    assert_eq!(cookie.same_site(), Some(SameSite::Strict));
    assert_eq!(cookie.max_age(), Some(Duration::hours(8)));

    let removal = custom.removal_cookie();
    assert_eq!(removal.name(), "session");
    assert_eq!(removal.value(), "");
    assert_eq!(removal.path(), Some("/app"));
    assert_eq!(removal.domain(), Some("example.com"));
    assert_eq!(removal.max_age(), Some(Duration::ZERO));

    let debug = format!("{custom:?}");
    assert!(debug.contains("session") && debug.contains("CookieAuthenticationMiddleware"));
    assert_eq!(
        format!("{:?}", ProtectedCookie("secret".into())),
        "ProtectedCookie(6 bytes)"
    );
}

#[tokio::test]
async fn sign_in_me_sign_out() {
    let app = app(ProtectedCookies::new(
        &provider("web", Arc::new(InMemoryXmlRepository::new())).await,
    ));
    let (status, _, body) = send(&app, "GET", "/me", None, "").await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::UNAUTHORIZED, "unauthorized")
    );
    assert_eq!(send(&app, "GET", "/maybe", None, "").await.2, "anonymous");

    let cookie = sign_in_as(&app, "alice").await;
    assert!(cookie.starts_with(".AspNetCore.Cookies=CfDJ8"), "{cookie}");
    let (status, _, body) = send(&app, "GET", "/me", Some(&cookie), "").await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "alice"));
    assert_eq!(
        send(&app, "GET", "/maybe", Some(&cookie), "").await.2,
        "alice"
    );
    // Among other cookies.
    let several = format!("theme=dark; {cookie}; other=1");
    assert_eq!(
        send(&app, "GET", "/me", Some(&several), "").await.2,
        "alice"
    );

    let (status, set_cookies, _) = send(&app, "POST", "/signout", Some(&cookie), "").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(set_cookies.len(), 1);
    assert!(
        set_cookies[0].starts_with(".AspNetCore.Cookies=;") && set_cookies[0].contains("Max-Age=0"),
        "{set_cookies:?}"
    );
    // Signing out without a cookie still tells the browser to drop it.
    assert_eq!(send(&app, "POST", "/signout", None, "").await.1.len(), 1);
}

#[tokio::test]
async fn tampered_and_foreign_cookies_are_unauthorized_without_detail() {
    let repo: Arc<dyn XmlRepository> = Arc::new(InMemoryXmlRepository::new());
    let web = provider("web", repo.clone()).await;
    let app = app(ProtectedCookies::new(&web));
    let cookie = sign_in_as(&app, "alice").await;
    let (name, value) = cookie.split_once('=').unwrap();

    let mut rejected = Vec::new();
    // A flipped character in the ciphertext / MAC.
    let mut bytes = value.as_bytes().to_vec();
    let i = bytes.len() - 10;
    bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
    rejected.push(String::from_utf8(bytes).unwrap());
    // Truncated, empty, garbage, not Base64.
    rejected.push(value[..value.len() / 2].to_owned());
    rejected.push(String::new());
    rejected.push("not a payload".to_owned());
    rejected.push("%%%".to_owned());
    // Same key ring, other application name.
    let other_app = provider("other-app", repo.clone()).await;
    rejected.push(ProtectedCookies::new(&other_app).protect("alice").unwrap());
    // Same key ring and application, other scheme.
    rejected.push(
        ProtectedCookies::for_scheme(&web, "Other")
            .protect("alice")
            .unwrap(),
    );
    // Same purposes, other key ring.
    let other_ring = provider("web", Arc::new(InMemoryXmlRepository::new())).await;
    rejected.push(ProtectedCookies::new(&other_ring).protect("alice").unwrap());
    // Same purposes and ring, but not UTF-8.
    rejected.push(encode_text(
        &ProtectedCookies::new(&web)
            .protector()
            .protect(&[0xff, 0xfe])
            .unwrap(),
    ));

    for value in rejected {
        let cookie = format!("{name}={value}");
        let (status, set_cookies, body) = send(&app, "GET", "/me", Some(&cookie), "").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{cookie}");
        assert_eq!(body, "unauthorized", "{cookie}");
        assert!(set_cookies.is_empty());
        assert_eq!(
            send(&app, "GET", "/maybe", Some(&cookie), "").await.2,
            "anonymous"
        );
    }
    // The cookie under another name is not read.
    let renamed = format!("other={value}");
    assert_eq!(
        send(&app, "GET", "/me", Some(&renamed), "").await.0,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn a_key_created_elsewhere_is_loaded_on_demand() {
    let repo: Arc<dyn XmlRepository> = Arc::new(InMemoryXmlRepository::new());
    let reader = provider("web", repo.clone()).await;
    let app = app(ProtectedCookies::new(&reader));

    // Another instance adds a key and protects with it. (Its clock is two
    // days ahead so that the new key has "propagated" and is its default.)
    let clock = Arc::new(ManualClock::new(OffsetDateTime::now_utc()));
    let writer = DataProtectionProvider::builder()
        .application_name("web")
        .repository(repo.clone())
        .clock(clock.clone())
        .build()
        .await
        .unwrap();
    let now = OffsetDateTime::now_utc() + Duration::seconds(1);
    let key = writer
        .key_manager()
        .create_key(now, now + Duration::days(90))
        .await
        .unwrap();
    clock.set(now + Duration::days(3));
    writer.refresh().await.unwrap();
    assert_eq!(writer.key_ring().unwrap().default_key_id(), Some(key.id()));
    let value = ProtectedCookies::new(&writer).protect("carol").unwrap();
    assert_eq!(
        dataprotection::payload::read_header(&decode_text(&value).unwrap()).unwrap(),
        key.id()
    );
    assert!(
        reader
            .key_ring()
            .unwrap()
            .keys()
            .iter()
            .all(|k| k.key.id() != key.id())
    );

    let cookie = format!(".AspNetCore.Cookies={value}");
    let (status, _, body) = send(&app, "GET", "/me", Some(&cookie), "").await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "carol"));
}

#[tokio::test]
async fn a_lifetime_expires_the_value() {
    let clock = Arc::new(ManualClock::new(OffsetDateTime::now_utc()));
    let provider = DataProtectionProvider::builder()
        .application_name("expiring")
        .repository(Arc::new(InMemoryXmlRepository::new()))
        .clock(clock.clone())
        .build()
        .await
        .unwrap();
    let cookies = ProtectedCookies::new(&provider).with_lifetime(Duration::hours(1));
    assert_eq!(cookies.lifetime(), Some(Duration::hours(1)));
    let value = cookies.protect("dave").unwrap();
    assert_eq!(cookies.unprotect(&value).await.as_deref(), Some("dave"));
    // It is ASP.NET Core's time-limited format under the cookie purposes.
    let (data, _) = cookies
        .protector()
        .to_time_limited()
        .unprotect(&decode_text(&value).unwrap())
        .unwrap();
    assert_eq!(data, b"dave");
    // Not readable as a session cookie (other purposes), nor after expiry.
    assert_eq!(
        ProtectedCookies::new(&provider).unprotect(&value).await,
        None
    );
    clock.set(OffsetDateTime::now_utc() + Duration::hours(2));
    assert_eq!(cookies.unprotect(&value).await, None);
}

#[test]
fn unauthorized_response_is_bare() {
    let response = Unauthorized.into_response();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        response.headers()[header::CONTENT_TYPE],
        "text/plain; charset=utf-8"
    );
    assert_eq!(Unauthorized.to_string(), "unauthorized");
}
