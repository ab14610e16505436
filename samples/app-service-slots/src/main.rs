//! Run with: LOCAL_MODE=1 cargo run -p app-service-slots (a directory ring; no Azure, no Azurite; see README.md)
//!
//! An axum web app whose sign-in cookie keeps working across Azure App
//! Service deployment slots and slot swaps: every slot reads the same key ring
//! (one blob, keys wrapped by one Key Vault key) under the same application
//! name, so a cookie protected by one slot is accepted by the other.
//!
//! - `POST /signin` (form field `user`): signs the user in with ASP.NET Core's
//!   cookie format (an `AuthenticationTicket` in `.AspNetCore.Cookies`, which a
//!   .NET app on the same ring, application name and domain reads), then
//!   redirects to `/`.
//! - `GET /`: a page that says who is signed in and their claims, which slot
//!   served it, which key protected the session cookie and when the key ring
//!   was last refreshed; or a sign-in form.
//! - `GET /me`: `{"user": …, "slot": …}`, or `401 unauthorized` (for machines).
//! - `POST /signout`: deletes the cookie (every chunk); `GET /healthz`: `ok`.
//!
//! Configured only from App Service app settings: `DATAPROTECTION_BLOB_URL`,
//! `DATAPROTECTION_KEYVAULT_KEY_ID` (optional), `DATAPROTECTION_APP_NAME`,
//! `PORT` (default 8080), `BIND_ADDRESS`, `SLOT_NAME` / `WEBSITE_SLOT_NAME`
//! (display only), `LOCAL_MODE` (with `DATAPROTECTION_KEY_DIR` or
//! `AZURE_STORAGE_CONNECTION_STRING`). The first line on stdout is
//! `listening on http://ADDRESS:PORT`.

mod config;
mod pages;

use std::io::Write as _;
use std::process::ExitCode;
use std::sync::Arc;

use axum::extract::rejection::FormRejection;
use axum::extract::{FromRef, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use dataprotection::DataProtectionProvider;
use dataprotection::payload::{decode_text, read_header};
use dataprotection::repository::{FileSystemXmlRepository, XmlRepository};
use dataprotection_axum::aspnetcore::{
    AuthenticationProperties, ChunkingCookieManager, ClaimsIdentity, RequestCookies,
};
use dataprotection_axum::{CookieAuthentication, CookieSecurePolicy, CookieUser};
use dataprotection_azure_blobs::{BlobRepositoryOptions, BlobXmlRepository};
use dataprotection_azure_keyvault::{
    AzureKeyVaultBuilderExt, KeyVaultKeyId, KeyVaultOptions, credential_from_environment,
};
use serde::{Deserialize, Serialize};
use time::Duration;

use crate::config::{Config, KeyRingLocation};
use crate::pages::{PageView, RingView, SessionView};

/// How long a sign-in lasts (`ExpireTimeSpan`; renewed past half of it).
const SESSION_LIFETIME: Duration = Duration::hours(8);

/// The cookie authentication scheme, as `AddCookie()` names it by default.
const SCHEME: &str = "Cookies";

/// The longest user name accepted.
const MAX_USER_LEN: usize = 64;

#[derive(Clone, Debug)]
struct AppState {
    auth: CookieAuthentication,
    provider: DataProtectionProvider,
    slot: Arc<str>,
    app_name: Arc<str>,
    key_ring: Arc<str>,
}

impl FromRef<AppState> for CookieAuthentication {
    fn from_ref(state: &AppState) -> Self {
        state.auth.clone()
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("app-service-slots: {e}");
            return ExitCode::from(2);
        }
    };
    match run(config).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("app-service-slots: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(config: Config) -> Result<(), String> {
    tracing::info!(
        slot = %config.slot,
        app_name = %config.app_name,
        key_ring = %config.key_ring,
        key_vault_key = config.key_vault_key_id.as_deref().unwrap_or("none"),
        local_mode = config.local,
        "starting"
    );
    let provider = build_provider(&config).await?;
    // ASP.NET Core's AddCookie() with ExpireTimeSpan = 8 h and
    // Cookie.SecurePolicy = Always (App Service serves HTTPS).
    let auth = CookieAuthentication::for_scheme(&provider, SCHEME)
        .with_expire_time_span(SESSION_LIFETIME)
        .with_secure_policy(CookieSecurePolicy::Always);
    let app = router(AppState {
        auth,
        provider,
        slot: config.slot.as_str().into(),
        app_name: config.app_name.as_str().into(),
        key_ring: config.key_ring.to_string().into(),
    });

    let listener = tokio::net::TcpListener::bind(config.bind)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", config.bind))?;
    let address = listener
        .local_addr()
        .map_err(|e| format!("cannot read the bound address: {e}"))?;
    // The first line on stdout: tests (and people) read the port from it.
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "listening on http://{address}");
    let _ = stdout.flush();
    drop(stdout);
    tracing::info!(%address, slot = %config.slot, "listening");

    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await
        .map_err(|e| format!("server error: {e}"))
}

/// The provider on the configured key ring, with keys wrapped by Key Vault if
/// a key is configured. Fails if the ring cannot be read.
async fn build_provider(config: &Config) -> Result<DataProtectionProvider, String> {
    let repository: Arc<dyn XmlRepository> = match &config.key_ring {
        KeyRingLocation::BlobUrl(url) if dataprotection_azure_blobs::sas::is_sas_url(url) => {
            Arc::new(
                BlobXmlRepository::new(url, None, None)
                    .map_err(|e| format!("{}: {e}", config::BLOB_URL))?,
            )
        }
        KeyRingLocation::BlobUrl(url) => {
            let (credential, kind) = credential_from_environment().map_err(|e| e.to_string())?;
            tracing::info!(credential = %kind, "reading the key ring blob with a credential from the environment");
            Arc::new(
                BlobXmlRepository::new(url, Some(credential), None)
                    .map_err(|e| format!("{}: {e}", config::BLOB_URL))?,
            )
        }
        KeyRingLocation::ConnectionString(connection_string) => {
            require_local_storage(connection_string).await?;
            Arc::new(
                BlobXmlRepository::builder()
                    .connection_string(
                        connection_string,
                        config::LOCAL_CONTAINER,
                        config::LOCAL_BLOB,
                    )
                    .options(BlobRepositoryOptions {
                        create_container_if_missing: true,
                        ..Default::default()
                    })
                    .build()
                    .map_err(|e| format!("{}: {e}", config::STORAGE_CONNECTION_STRING))?,
            )
        }
        KeyRingLocation::Directory(dir) => {
            tracing::info!(directory = %dir.display(), "using a directory key ring (local mode)");
            Arc::new(FileSystemXmlRepository::new(dir))
        }
    };
    let mut builder = DataProtectionProvider::builder()
        .application_name(config.app_name.clone())
        .repository(repository);
    match &config.key_vault_key_id {
        Some(key_id) => {
            let parsed = KeyVaultKeyId::parse(key_id)
                .map_err(|e| format!("{}: {e}", config::KEYVAULT_KEY_ID))?;
            if parsed.version().is_some() {
                tracing::warn!(
                    "{} names a key version: new keys will not follow a rotation of the vault key; use the versionless URL",
                    config::KEYVAULT_KEY_ID
                );
            }
            let (credential, kind) = credential_from_environment().map_err(|e| e.to_string())?;
            tracing::info!(credential = %kind, "wrapping keys with Key Vault");
            builder = builder
                .protect_keys_with_azure_key_vault(key_id, credential, KeyVaultOptions::default())
                .map_err(|e| format!("{}: {e}", config::KEYVAULT_KEY_ID))?;
        }
        None if !config.local => tracing::warn!(
            "{} is not set: keys are stored unencrypted in the blob",
            config::KEYVAULT_KEY_ID
        ),
        None => {}
    }
    builder
        .build()
        .await
        .map_err(|e| format!("cannot load the key ring: {e}"))
}

/// A connection string naming a loopback endpoint (Azurite) must have
/// something listening there: say "start Azurite" at once instead of
/// failing after the SDK's retries.
async fn require_local_storage(connection_string: &str) -> Result<(), String> {
    use dataprotection_azure_blobs::connection_string::ConnectionString;
    let Ok(parsed) = ConnectionString::parse(connection_string) else {
        return Ok(()); // the repository reports what is wrong with it
    };
    let endpoint = parsed.blob_endpoint().to_string();
    let Some(address) = loopback_address(&endpoint) else {
        return Ok(());
    };
    let connect = tokio::net::TcpStream::connect(address);
    match tokio::time::timeout(std::time::Duration::from_secs(3), connect).await {
        Ok(Ok(_)) => Ok(()),
        _ => Err(format!(
            "nothing is listening on {address} ({endpoint}): start Azurite \
             (cd tests && npx azurite-blob --inMemoryPersistence --disableTelemetry), \
             or unset {} to use a directory key ring",
            config::STORAGE_CONNECTION_STRING
        )),
    }
}

/// `host:port` of an `http://127.0.0.1:PORT/...` or `http://localhost:PORT/...` endpoint.
fn loopback_address(endpoint: &str) -> Option<std::net::SocketAddr> {
    let rest = endpoint
        .strip_prefix("http://")
        .or_else(|| endpoint.strip_prefix("https://"))?;
    let authority = rest.split('/').next()?;
    let (host, port) = authority.rsplit_once(':')?;
    let port: u16 = port.parse().ok()?;
    let ip: std::net::IpAddr = match host {
        "localhost" => std::net::Ipv4Addr::LOCALHOST.into(),
        other => other.trim_matches(['[', ']']).parse().ok()?,
    };
    ip.is_loopback()
        .then_some(std::net::SocketAddr::new(ip, port))
}

fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/healthz", get(|| async { "ok" }))
        .route("/signin", post(sign_in))
        .route("/signout", post(sign_out))
        .route("/me", get(me))
        // Sliding expiration, as the cookie handler: renewed past half its lifetime.
        .layer(axum::middleware::from_fn_with_state(
            state.auth.clone(),
            CookieAuthentication::middleware,
        ))
        .with_state(state)
}

async fn index(
    State(state): State<AppState>,
    headers: HeaderMap,
    user: Option<CookieUser>,
) -> Response {
    let session = user.map(|CookieUser(ticket)| SessionView {
        user: ticket.name().unwrap_or_default().to_string(),
        claims: ticket
            .claims()
            .map(|c| (c.claim_type.clone(), c.value.clone()))
            .collect(),
        key_id: cookie_key_id(&headers, state.auth.cookie_name()),
    });
    let ring = state.provider.key_ring().ok().map(|ring| RingView {
        location: state.key_ring.to_string(),
        loaded_at: ring.loaded_at(),
        next_refresh: state.provider.next_refresh(),
        default_key: ring.default_key_id(),
        keys: ring.keys().len(),
    });
    let html = pages::home(&PageView {
        slot: &state.slot,
        app_name: &state.app_name,
        session,
        ring,
    });
    let mut response = Html(html).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// The key that protected the session cookie: the key id in the header of
/// the protected payload, after the cookie's chunks are put back together.
fn cookie_key_id(headers: &HeaderMap, cookie_name: &str) -> Option<uuid::Uuid> {
    let cookies = RequestCookies::parse(
        headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok()),
    );
    let value = ChunkingCookieManager::default().get_request_cookie(&cookies, cookie_name)?;
    read_header(&decode_text(&value).ok()?).ok()
}

#[derive(Debug, Deserialize)]
struct SignIn {
    user: String,
}

#[derive(Debug, Serialize)]
struct Me<'a> {
    user: &'a str,
    slot: &'a str,
}

async fn sign_in(
    State(auth): State<CookieAuthentication>,
    headers: HeaderMap,
    form: Result<Form<SignIn>, FormRejection>,
) -> Response {
    let Ok(Form(SignIn { user })) = form else {
        return bad_request("expected a form field user");
    };
    let user = user.trim();
    if user.is_empty() || user.chars().count() > MAX_USER_LEN || user.chars().any(char::is_control)
    {
        return bad_request("user must be 1 to 64 printable characters");
    }
    // What `HttpContext.SignInAsync(new ClaimsPrincipal(new ClaimsIdentity(
    // [new Claim(ClaimTypes.Name, user)], "Cookies")), new() { IsPersistent = true })`
    // writes: a persistent cookie (with Expires) holding the ticket.
    let identity = ClaimsIdentity::new(SCHEME).with_name(user);
    let mut properties = AuthenticationProperties::new();
    properties.set_persistent(true);
    match auth.sign_in(&headers, identity, properties) {
        Ok(cookies) => {
            tracing::info!("signed in");
            (cookies, Redirect::to("/")).into_response()
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot protect the session cookie");
            (StatusCode::SERVICE_UNAVAILABLE, "unavailable").into_response()
        }
    }
}

async fn sign_out(
    State(auth): State<CookieAuthentication>,
    headers: HeaderMap,
) -> impl IntoResponse {
    (auth.sign_out(&headers), Redirect::to("/"))
}

async fn me(State(state): State<AppState>, CookieUser(ticket): CookieUser) -> Response {
    let mut response = Json(Me {
        user: ticket.name().unwrap_or_default(),
        slot: &state.slot,
    })
    .into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn bad_request(message: &'static str) -> Response {
    (StatusCode::BAD_REQUEST, message).into_response()
}

/// Ctrl-C, or the SIGTERM App Service sends before stopping or swapping an instance.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
    tracing::info!("shutting down");
}

#[cfg(test)]
mod tests {
    #[test]
    fn loopback_addresses() {
        assert_eq!(
            super::loopback_address("http://127.0.0.1:10000/devstoreaccount1"),
            Some("127.0.0.1:10000".parse().unwrap_or_else(|_| unreachable!()))
        );
        assert!(super::loopback_address("http://localhost:7/a").is_some());
        assert!(super::loopback_address("https://acct.blob.core.windows.net").is_none());
        assert!(super::loopback_address("http://10.0.0.1:80/a").is_none());
    }
}
