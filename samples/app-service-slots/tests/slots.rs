//! The sample as App Service runs it, without an Azure account: two processes
//! ("production" and "staging") on one key ring in a real Azurite blob, keys
//! wrapped by the Key Vault emulator through the real
//! `ManagedIdentityCredential`. A sign-in on one slot is honoured by the
//! other, across a key rotation, a restart and a slot swap; tampered and
//! foreign cookies get a bare 401.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use common::{App, SAMPLE_VARS};

use std::sync::Arc;
use std::time::Duration as StdDuration;

use dataprotection::KeyManager;
use dataprotection::clock::ManualClock;
use dataprotection::payload::{decode_text, read_header};
use dataprotection_azure_blobs::BlobXmlRepository;
use dataprotection_azure_keyvault::{
    KeyVaultOptions, credential_from_environment, key_vault_protection,
};
use dataprotection_tests::azurite::Azurite;
use keyvault_emulator::isolated::{self, MsiScheme};
use keyvault_emulator::{EmulatorOptions, KeyVaultEmulator};
use reqwest::StatusCode;
use time::{Duration, OffsetDateTime};
use tokio::process::Command;

const COOKIE_NAME: &str = ".AspNetCore.Cookies";

/// The `dpkeys` binary next to this sample's (`cargo test --workspace` builds
/// it); built with the running cargo when it is missing.
fn dpkeys() -> std::path::PathBuf {
    let sample = std::path::Path::new(env!("CARGO_BIN_EXE_app-service-slots"));
    let path = sample.with_file_name(format!("dpkeys{}", std::env::consts::EXE_SUFFIX));
    if !path.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
        let status = std::process::Command::new(cargo)
            .args(["build", "--quiet", "-p", "dpkeys"])
            .status()
            .unwrap();
        assert!(status.success(), "cargo build -p dpkeys failed");
    }
    assert!(path.exists(), "dpkeys was not built at {}", path.display());
    path
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(StdDuration::from_secs(60))
        .build()
        .unwrap()
}

/// Signs `user` in on `app`; returns the `name=value` cookie pair.
async fn sign_in(app: &App, user: &str) -> String {
    let response = client()
        .post(format!("{}/signin", app.url))
        .form(&[("user", user)])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(response.headers()["location"], "/");
    let set_cookies: Vec<&str> = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert_eq!(set_cookies.len(), 1, "{set_cookies:?}");
    let set_cookie = set_cookies[0];
    // ASP.NET Core's cookie handler attributes (a persistent sign-in: Expires
    // 8 hours ahead).
    for attribute in ["; expires=", "; path=/; secure; samesite=lax; httponly"] {
        assert!(
            set_cookie.contains(attribute),
            "{attribute} in {set_cookie}"
        );
    }
    let pair = set_cookie.split(';').next().unwrap().to_owned();
    assert!(pair.starts_with(&format!("{COOKIE_NAME}=CfDJ8")), "{pair}");
    pair
}

/// `GET /me` with `cookie`: status, `Set-Cookie` count, body.
async fn me(app: &App, cookie: Option<&str>) -> (StatusCode, usize, String) {
    let mut request = client().get(format!("{}/me", app.url));
    if let Some(cookie) = cookie {
        request = request.header("cookie", cookie);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let set_cookies = response.headers().get_all("set-cookie").iter().count();
    (status, set_cookies, response.text().await.unwrap())
}

/// Asserts that `/me` on `app` answers `user` on slot `slot` for `cookie`.
async fn assert_signed_in(app: &App, cookie: &str, user: &str, slot: &str) {
    let (status, _, body) = me(app, Some(cookie)).await;
    assert_eq!(status, StatusCode::OK, "{body}\n{}", app.stderr());
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json, serde_json::json!({ "user": user, "slot": slot }));
}

/// Asserts a bare 401: the body is `unauthorized`, nothing else, no cookie set.
async fn assert_unauthorized(app: &App, cookie: Option<&str>) {
    let (status, set_cookies, body) = me(app, cookie).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{cookie:?}");
    assert_eq!(body, "unauthorized", "{cookie:?}");
    assert_eq!(set_cookies, 0);
}

/// The id of the key that protected a `name=value` cookie.
fn key_of(cookie: &str) -> String {
    let value = cookie.split_once('=').unwrap().1;
    read_header(&decode_text(value).unwrap())
        .unwrap()
        .to_string()
}

fn tamper(cookie: &str) -> String {
    let mut bytes = cookie.as_bytes().to_vec();
    let i = bytes.len() - 12;
    bytes[i] = if bytes[i] == b'x' { b'y' } else { b'x' };
    String::from_utf8(bytes).unwrap()
}

#[test]
fn two_slots_share_sign_in_across_rotation_restart_and_swap() {
    isolated::run(
        "two_slots_share_sign_in_across_rotation_restart_and_swap",
        MsiScheme::Http,
        || async {
            // The emulator first: it writes the CA the SDK trusts (SSL_CERT_FILE).
            let emulator = KeyVaultEmulator::start(EmulatorOptions::from_identity_env().unwrap())
                .await
                .unwrap();
            let first_kid = emulator.create_key("ring", 2048).await.unwrap();
            let key_url = format!("{}/keys/ring", emulator.base_url());
            let az = Azurite::shared().unwrap();
            let (container, blob_url) = az.fresh_blob("slots", "keys.xml").await.unwrap();
            let blob_url = blob_url.to_string();
            // The app settings both slots share (non-sticky), as the infra sets them.
            let shared = |app_name: &'static str| {
                vec![
                    ("DATAPROTECTION_BLOB_URL", blob_url.clone()),
                    ("DATAPROTECTION_KEYVAULT_KEY_ID", key_url.clone()),
                    ("DATAPROTECTION_APP_NAME", app_name.to_owned()),
                    ("BIND_ADDRESS", "127.0.0.1".to_owned()),
                ]
            };
            let start = |app_name: &'static str, slot_var: &'static str, slot: &'static str| {
                let mut envs = shared(app_name);
                envs.push((slot_var, slot.to_owned()));
                async move {
                    let envs: Vec<(&str, &str)> =
                        envs.iter().map(|(k, v)| (*k, v.as_str())).collect();
                    App::start(&envs).await
                }
            };

            // Both slots start together on an empty ring.
            let (production, staging) = tokio::join!(
                start("slots-e2e", "WEBSITE_SLOT_NAME", "production"),
                start("slots-e2e", "SLOT_NAME", "staging"),
            );
            assert!(production.url.starts_with("http://127.0.0.1:"));
            assert_unauthorized(&staging, None).await;

            // Sign in on production; staging honours the cookie, and vice versa.
            let alice = sign_in(&production, "alice").await;
            assert_signed_in(&staging, &alice, "alice", "staging").await;
            assert_signed_in(&production, &alice, "alice", "production").await;
            let bob0 = sign_in(&staging, "bob").await;
            assert_signed_in(&production, &bob0, "bob", "production").await;

            // Rotate the vault key, then add a data protection key that is the new
            // default (dated so that it has propagated), as `dpkeys keys new` would.
            let second_kid = emulator.create_key("ring", 2048).await.unwrap();
            let (credential, _) = credential_from_environment().unwrap();
            let (encryptor, _) =
                key_vault_protection(&key_url, credential, KeyVaultOptions::default()).unwrap();
            let repository = Arc::new(BlobXmlRepository::new(&blob_url, None, None).unwrap());
            let now = OffsetDateTime::now_utc();
            let new_key = KeyManager::new(repository, Some(encryptor))
                .with_clock(Arc::new(ManualClock::new(now - Duration::days(3))))
                .create_key(now, now + Duration::days(90))
                .await
                .unwrap();
            let new_key_id = new_key.id().to_string();
            assert_ne!(key_of(&alice), new_key_id);

            // Restarting staging reloads the ring: new sign-ins use the new key
            // (wrapped with the new vault key version), old cookies still work,
            // and production (not restarted) loads the new key on demand.
            drop(staging);
            let staging = start("slots-e2e", "SLOT_NAME", "staging").await;
            assert_signed_in(&staging, &alice, "alice", "staging").await;
            let bob = sign_in(&staging, "bob").await;
            assert_eq!(key_of(&bob), new_key_id);
            assert_signed_in(&production, &bob, "bob", "production").await;
            let ring = az.download_text(&container, "keys.xml").await.unwrap();
            assert!(
                ring.contains(&format!("<kid>{first_kid}</kid>"))
                    && ring.contains(&format!("<kid>{second_kid}</kid>")),
                "{ring}"
            );
            assert!(!ring.contains("<masterKey"), "no key in clear: {ring}");

            // Swap: each instance comes back in the other slot, same settings.
            drop(production);
            drop(staging);
            let (production, staging) = tokio::join!(
                start("slots-e2e", "WEBSITE_SLOT_NAME", "staging"),
                start("slots-e2e", "SLOT_NAME", "production"),
            );
            for cookie in [&alice, &bob0, &bob] {
                let user = if cookie == &alice { "alice" } else { "bob" };
                assert_signed_in(&production, cookie, user, "staging").await;
                assert_signed_in(&staging, cookie, user, "production").await;
            }

            // Tampered cookies: a bare 401; the reason only in the debug log.
            for bad in [
                tamper(&alice),
                format!("{COOKIE_NAME}=CfDJ8AAAA"),
                format!("{COOKIE_NAME}="),
                alice.replace(COOKIE_NAME, "other"),
            ] {
                assert_unauthorized(&production, Some(&bad)).await;
                assert_unauthorized(&staging, Some(&bad)).await;
            }
            assert!(
                production.stderr().contains("rejected a protected cookie"),
                "{}",
                production.stderr()
            );

            // Another application on the same ring and vault: its cookies are
            // foreign here, ours are foreign there.
            let other = start("other-app", "SLOT_NAME", "other").await;
            let mallory = sign_in(&other, "mallory").await;
            assert_signed_in(&other, &mallory, "mallory", "other").await;
            assert_unauthorized(&production, Some(&mallory)).await;
            assert_unauthorized(&staging, Some(&mallory)).await;
            assert_unauthorized(&other, Some(&alice)).await;

            // No cookie value, user name or SAS in the logs.
            for app in [&production, &staging, &other] {
                let log = app.stderr();
                let sig = blob_url.split("sig=").nth(1).unwrap();
                for secret in [&alice, &bob, &mallory] {
                    let value = secret.split_once('=').unwrap().1;
                    assert!(!log.contains(value), "cookie in log:\n{log}");
                }
                assert!(!log.contains(sig), "SAS in log:\n{log}");
            }

            // Sign out deletes the cookie.
            let response = client()
                .post(format!("{}/signout", production.url))
                .header("cookie", &alice)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), StatusCode::SEE_OTHER);
            let removal = response.headers()["set-cookie"].to_str().unwrap();
            assert!(
                removal.starts_with(&format!(
                    "{COOKIE_NAME}=; expires=Thu, 01 Jan 1970 00:00:00 GMT"
                )),
                "{removal}"
            );
        },
    );
}

#[tokio::test]
async fn local_mode_against_azurite_without_a_vault() {
    let az = Azurite::shared().unwrap();
    let (_, blob_url) = az.fresh_blob("slots-local", "keys.xml").await.unwrap();
    let blob_url = blob_url.to_string();
    let app = App::start(&[("LOCAL_MODE", "1"), ("DATAPROTECTION_BLOB_URL", &blob_url)]).await;
    // Local mode listens on loopback and defaults the app name and slot.
    assert!(app.url.starts_with("http://127.0.0.1:"), "{}", app.url);
    let cookie = sign_in(&app, "dev").await;
    assert_signed_in(&app, &cookie, "dev", "local").await;

    // The sign-in cookie is ASP.NET Core's: `dpkeys cookie decode` on the same
    // ring and application name prints its ticket.
    let decoded = std::process::Command::new(dpkeys())
        .args([
            "--blob-url",
            &blob_url,
            "--app-name",
            "app-service-slots",
            "--no-auto-generate",
        ])
        .args(["cookie", "decode", &format!("Cookie: theme=dark; {cookie}")])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&decoded.stderr);
    assert!(
        decoded.status.success(),
        "dpkeys cookie decode failed: {stderr}"
    );
    let ticket: serde_json::Value = serde_json::from_slice(&decoded.stdout).unwrap();
    assert_eq!(ticket["scheme"], "Cookies");
    let identity = &ticket["identities"][0];
    assert_eq!(identity["authenticationType"], "Cookies");
    assert_eq!(identity["claims"][0]["type"], identity["nameClaimType"]);
    assert_eq!(identity["claims"][0]["value"], "dev");
    assert_eq!(ticket["properties"][".persistent"], "");
    let issued = ticket["properties"][".issued"].as_str().unwrap();
    let expires = ticket["properties"][".expires"].as_str().unwrap();
    assert!(
        issued.ends_with(" GMT") && expires.ends_with(" GMT"),
        "{ticket}"
    );
    let same_ring = App::start(&[
        ("LOCAL_MODE", "1"),
        ("DATAPROTECTION_BLOB_URL", &blob_url),
        ("DATAPROTECTION_APP_NAME", "app-service-slots"),
    ])
    .await;
    assert_signed_in(&same_ring, &cookie, "dev", "local").await;

    // Health check, index page, bad sign-ins.
    let health = client()
        .get(format!("{}/healthz", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(health.text().await.unwrap(), "ok");
    let index = client().get(&app.url).send().await.unwrap();
    let page = index.text().await.unwrap();
    assert!(page.contains("<b id=slot>local</b>"), "{page}");
    assert!(page.contains("You are not signed in"), "{page}");
    let signed_in = client()
        .get(&app.url)
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        signed_in.contains("Signed in as <span id=user>dev</span>"),
        "{signed_in}"
    );
    assert!(
        signed_in.contains(&format!("<code id=cookie-key>{}</code>", key_of(&cookie))),
        "{signed_in}"
    );
    for form in [
        &[("user", "")][..],
        &[("name", "x")],
        &[("user", &"x".repeat(65))],
    ] {
        let response = client()
            .post(format!("{}/signin", app.url))
            .form(form)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        assert!(response.headers().get("set-cookie").is_none());
    }
}

#[tokio::test]
async fn local_mode_without_azurite_uses_a_directory_ring() {
    let dir = tempfile::tempdir().unwrap();
    let key_dir = dir.path().to_str().unwrap();
    let app = App::start(&[("LOCAL_MODE", "1"), ("DATAPROTECTION_KEY_DIR", key_dir)]).await;
    let cookie = sign_in(&app, "solo").await;
    assert_signed_in(&app, &cookie, "solo", "local").await;
    let keys: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|name| name.starts_with("key-"))
        .collect();
    assert_eq!(keys, [format!("key-{}.xml", key_of(&cookie))]);
    // A second instance on the same directory reads the same ring.
    let other = App::start(&[("LOCAL_MODE", "1"), ("DATAPROTECTION_KEY_DIR", key_dir)]).await;
    assert_signed_in(&other, &cookie, "solo", "local").await;
}

#[tokio::test]
async fn azurite_configured_but_down_says_start_azurite() {
    // A loopback port with nothing listening.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let connection_string = format!(
        "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;\
         AccountKey={};BlobEndpoint=http://127.0.0.1:{port}/devstoreaccount1;",
        dataprotection_azure_blobs::connection_string::DEVELOPMENT_ACCOUNT_KEY
    );
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_app-service-slots"));
    for var in SAMPLE_VARS {
        cmd.env_remove(var);
    }
    let output = cmd
        .env("LOCAL_MODE", "1")
        .env("AZURE_STORAGE_CONNECTION_STRING", &connection_string)
        .env("PORT", "0")
        .output()
        .await
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(output.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("start Azurite"), "{stderr}");
    assert!(stderr.contains(&format!("127.0.0.1:{port}")), "{stderr}");
    assert!(
        !stderr.contains(dataprotection_azure_blobs::connection_string::DEVELOPMENT_ACCOUNT_KEY),
        "{stderr}"
    );
}

#[tokio::test]
async fn without_settings_it_says_what_to_set() {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_app-service-slots"));
    for var in SAMPLE_VARS {
        cmd.env_remove(var);
    }
    let output = cmd.output().await.unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(output.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&output.stderr);
    for hint in [
        "DATAPROTECTION_BLOB_URL",
        "DATAPROTECTION_APP_NAME",
        "DATAPROTECTION_KEYVAULT_KEY_ID",
        "LOCAL_MODE=1",
    ] {
        assert!(stderr.contains(hint), "{hint} in {stderr}");
    }

    // A SAS URL that does not work: a clear failure that never prints the signature.
    let output = Command::new(env!("CARGO_BIN_EXE_app-service-slots"))
        .env(
            "DATAPROTECTION_BLOB_URL",
            "ftp://example/c/b?sv=1&sig=TOPSECRET",
        )
        .env("DATAPROTECTION_APP_NAME", "x")
        .env_remove("DATAPROTECTION_KEYVAULT_KEY_ID")
        .env("PORT", "0")
        .output()
        .await
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("DATAPROTECTION_BLOB_URL"), "{stderr}");
    assert!(!stderr.contains("TOPSECRET"), "{stderr}");
}
