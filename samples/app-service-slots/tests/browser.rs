//! The sample in a real browser: headless Chromium, driven through
//! chromedriver (WebDriver), signs in on "production", sees the session on
//! "staging", keeps it across a swap (both processes restarted with their
//! roles exchanged) and signs out, which clears every cookie chunk. A
//! screenshot of the signed-in page is kept under `target/`.
//!
//! Needs Debian's `chromium` and `chromium-driver` (`/usr/bin/chromium`,
//! `/usr/bin/chromedriver`); `scripts/test-all.sh` installs them. Without
//! them this test fails and says how to install them.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration as StdDuration;

use common::App;
use fantoccini::{Client, ClientBuilder, Locator};
use tokio::process::{Child, Command};

/// How long to wait for something a loaded 2-core CI machine makes slow (a
/// browser starting, a page loading): a deadline for a hang, never a timing.
const PATIENCE: StdDuration = StdDuration::from_secs(120);

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const COOKIE_NAME: &str = ".AspNetCore.Cookies";

fn require(path: &str) {
    assert!(
        Path::new(path).exists(),
        "{path} is missing: the browser test needs Debian's chromium and chromium-driver \
         packages (apt-get update && apt-get install -y chromium chromium-driver); \
         `bash scripts/test-all.sh` installs them"
    );
}

/// chromedriver on a free loopback port; killed when dropped.
struct ChromeDriver {
    _child: Child,
    url: String,
}

impl ChromeDriver {
    async fn start() -> ChromeDriver {
        require(CHROMEDRIVER);
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {CHROMEDRIVER}: {e}"));
        // Ready when it accepts connections (bounded by a deadline, not a count
        // of attempts, which a loaded machine makes slower).
        let deadline = std::time::Instant::now() + PATIENCE;
        while std::time::Instant::now() < deadline {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return ChromeDriver {
                    _child: child,
                    url: format!("http://127.0.0.1:{port}"),
                };
            }
            tokio::time::sleep(StdDuration::from_millis(100)).await;
        }
        panic!("chromedriver did not listen on 127.0.0.1:{port}");
    }

    /// A headless Chromium session with a fresh profile in `profile`.
    async fn browser(&self, profile: &Path) -> Client {
        require(CHROMIUM);
        let capabilities = serde_json::json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": [
                    "--headless",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-quic",
                    "--no-first-run",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    "--window-size=1000,900",
                    format!("--user-data-dir={}", profile.display()),
                ],
            },
        });
        let serde_json::Value::Object(capabilities) = capabilities else {
            unreachable!()
        };
        ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(capabilities)
            .connect(&self.url)
            .await
            .unwrap_or_else(|e| panic!("cannot start headless Chromium through chromedriver: {e}"))
    }
}

/// The two roles, each a process of the sample on the shared directory ring.
async fn start_slots(key_dir: &str, production: &str, staging: &str) -> (App, App) {
    let app = |slot| {
        [
            ("LOCAL_MODE", "1"),
            ("DATAPROTECTION_KEY_DIR", key_dir),
            ("DATAPROTECTION_APP_NAME", "browser-test"),
            ("SLOT_NAME", slot),
        ]
    };
    let first = App::start(&app(production)).await;
    let second = App::start(&app(staging)).await;
    (first, second)
}

/// Waits for the page a click navigates to: WebDriver may return from a
/// click before the form's navigation has finished (seen on a loaded CI
/// machine), so an element of the next page is awaited, not looked up once.
async fn wait_for(browser: &Client, id: &str) -> fantoccini::elements::Element {
    browser
        .wait()
        .at_most(PATIENCE)
        .for_element(Locator::Id(id))
        .await
        .unwrap_or_else(|e| panic!("no #{id} on the page after {PATIENCE:?}: {e}"))
}

async fn text(browser: &Client, id: &str) -> String {
    browser
        .find(Locator::Id(id))
        .await
        .unwrap_or_else(|e| panic!("no #{id} on the page: {e}"))
        .text()
        .await
        .unwrap()
}

/// Opens `app`'s home page and asserts who it shows signed in, on which slot.
async fn assert_page(browser: &Client, app: &App, user: &str, slot: &str) {
    browser.goto(&format!("{}/", app.url)).await.unwrap();
    assert_eq!(text(browser, "slot").await, slot);
    assert_eq!(text(browser, "user").await, user, "on {slot}");
}

async fn session_cookies(browser: &Client) -> Vec<String> {
    browser
        .get_all_cookies()
        .await
        .unwrap()
        .iter()
        .map(|c| c.name().to_string())
        .filter(|name| name.starts_with(COOKIE_NAME))
        .collect()
}

fn artifact_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("browser");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[tokio::test]
async fn sign_in_survives_a_swap_and_sign_out_clears_every_chunk() {
    let driver = ChromeDriver::start().await;
    let profile = tempfile::tempdir().unwrap();
    let ring = tempfile::tempdir().unwrap();
    let key_dir = ring.path().to_str().unwrap();
    let browser = driver.browser(profile.path()).await;

    let (production, staging) = start_slots(key_dir, "production", "staging").await;

    // 1. Sign in on production.
    browser.goto(&format!("{}/", production.url)).await.unwrap();
    assert_eq!(text(&browser, "slot").await, "production");
    browser
        .find(Locator::Id("user-name"))
        .await
        .unwrap()
        .send_keys("alice")
        .await
        .unwrap();
    browser
        .find(Locator::Id("signin"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for(&browser, "signout").await;
    assert_eq!(text(&browser, "user").await, "alice");
    assert_eq!(text(&browser, "slot").await, "production");
    let cookie_key = text(&browser, "cookie-key").await;
    assert_eq!(text(&browser, "default-key").await, cookie_key);
    let key_file = ring.path().join(format!("key-{cookie_key}.xml"));
    assert!(
        key_file.exists(),
        "the page names the stored key {cookie_key}"
    );
    let screenshot = artifact_dir().join("signed-in.png");
    std::fs::write(&screenshot, browser.screenshot().await.unwrap()).unwrap();
    assert!(!session_cookies(&browser).await.is_empty());

    // 2. The session is visible on staging.
    assert_page(&browser, &staging, "alice", "staging").await;

    // 3. Swap: both restarted with their roles exchanged.
    drop(production);
    drop(staging);
    let (production, staging) = start_slots(key_dir, "staging", "production").await;

    // 4. Still signed in, on both.
    assert_page(&browser, &production, "alice", "staging").await;
    assert_page(&browser, &staging, "alice", "production").await;
    assert_eq!(text(&browser, "cookie-key").await, cookie_key);

    // 5. Sign out clears every chunk of the session cookie.
    browser
        .find(Locator::Id("signout"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    // After sign-out the page offers sign-in.
    wait_for(&browser, "signin").await;
    assert_eq!(session_cookies(&browser).await, Vec::<String>::new());
    browser.goto(&format!("{}/", production.url)).await.unwrap();
    browser.find(Locator::Id("signin")).await.unwrap();

    browser.close().await.unwrap();
    eprintln!("screenshot of the signed-in page: {}", screenshot.display());
}
