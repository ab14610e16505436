//! Run with: LOCAL_MODE=1 cargo run -p app-service-slots (Azurite on 127.0.0.1:10000; see README.md)
//!
//! An axum web app whose sign-in cookie keeps working across Azure App
//! Service deployment slots and slot swaps: every slot reads the same key ring
//! (one blob, keys wrapped by one Key Vault key) under the same application
//! name, so a cookie protected by one slot is accepted by the other.
//!
//! - `POST /signin` (form field `user`): signs the user in with ASP.NET Core's
//!   cookie format (an `AuthenticationTicket` in `.AspNetCore.Cookies`, which a
//!   .NET app on the same ring, application name and domain reads), then
//!   redirects to `/me`.
//! - `GET /me`: `{"user": …, "slot": …}`, or `401 unauthorized`.
//! - `POST /signout`: deletes the cookie (every chunk).
//! - `GET /`: a sign-in form; `GET /healthz`: `ok`.
//!
//! Configured only from App Service app settings: `DATAPROTECTION_BLOB_URL`,
//! `DATAPROTECTION_KEYVAULT_KEY_ID` (optional), `DATAPROTECTION_APP_NAME`,
//! `PORT` (default 8080), `BIND_ADDRESS`, `SLOT_NAME` / `WEBSITE_SLOT_NAME`
//! (display only), `LOCAL_MODE`. The first line on stdout is
//! `listening on http://ADDRESS:PORT`.

mod config;

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
use dataprotection::repository::XmlRepository;
use dataprotection_axum::aspnetcore::{AuthenticationProperties, ClaimsIdentity};
use dataprotection_axum::{CookieAuthentication, CookieSecurePolicy, CookieUser};
use dataprotection_azure_blobs::{BlobRepositoryOptions, BlobXmlRepository};
use dataprotection_azure_keyvault::{
    AzureKeyVaultBuilderExt, KeyVaultKeyId, KeyVaultOptions, credential_from_environment,
};
use serde::{Deserialize, Serialize};
use time::Duration;

use crate::config::{Config, KeyRingLocation};

/// How long a sign-in lasts (`ExpireTimeSpan`; renewed past half of it).
const SESSION_LIFETIME: Duration = Duration::hours(8);

/// The cookie authentication scheme, as `AddCookie()` names it by default.
const SCHEME: &str = "Cookies";

/// The longest user name accepted.
const MAX_USER_LEN: usize = 64;

#[derive(Clone, Debug)]
struct AppState {
    auth: CookieAuthentication,
    slot: Arc<str>,
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
        slot: config.slot.as_str().into(),
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
        KeyRingLocation::BlobUrl(url) if url.contains("sig=") => Arc::new(
            BlobXmlRepository::from_sas_url(url, BlobRepositoryOptions::default())
                .map_err(|e| format!("{}: {e}", config::BLOB_URL))?,
        ),
        KeyRingLocation::BlobUrl(url) => {
            let (credential, kind) = credential_from_environment().map_err(|e| e.to_string())?;
            tracing::info!(credential = %kind, "reading the key ring blob with a credential from the environment");
            Arc::new(
                BlobXmlRepository::new(url, credential, BlobRepositoryOptions::default())
                    .map_err(|e| format!("{}: {e}", config::BLOB_URL))?,
            )
        }
        KeyRingLocation::DevelopmentStorage => Arc::new(
            BlobXmlRepository::from_connection_string(
                config::DEVELOPMENT_STORAGE,
                config::LOCAL_CONTAINER,
                config::LOCAL_BLOB,
                BlobRepositoryOptions {
                    create_container_if_missing: true,
                    ..Default::default()
                },
            )
            .map_err(|e| format!("Azurite development storage: {e}"))?,
        ),
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

async fn index(State(state): State<AppState>) -> Html<String> {
    Html(format!(
        "<!doctype html><title>App Service slots</title>\
         <p>Served by slot <b>{}</b>.</p>\
         <form method=post action=/signin><input name=user placeholder=\"user name\" required maxlength={MAX_USER_LEN}> \
         <button>Sign in</button></form>\
         <p><a href=/me>/me</a></p>\
         <form method=post action=/signout><button>Sign out</button></form>",
        escape_html(&state.slot)
    ))
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
            (cookies, Redirect::to("/me")).into_response()
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

fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
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
    fn escapes_html() {
        assert_eq!(
            super::escape_html("<b a=\"1\">&'"),
            "&lt;b a=&quot;1&quot;&gt;&amp;&#39;"
        );
    }
}
