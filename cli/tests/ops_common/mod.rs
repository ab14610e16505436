//! Helpers of the `ops_*` tests: run `dpkeys` (with an environment), a Key
//! Vault emulator the child processes can reach, Azurite rings, and a live
//! in-process application that keeps protecting and unprotecting while a
//! command runs.
#![allow(dead_code, clippy::unwrap_used)]

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use dataprotection::DataProtectionProvider;
use dataprotection::repository::XmlRepository;
use dataprotection_tests::azurite::Azurite;
use keyvault_emulator::{EmulatorOptions, KeyVaultEmulator};
use time::{Duration, OffsetDateTime};

/// What a run of `dpkeys` produced.
#[derive(Debug)]
pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    /// Asserts the exit code and returns stdout.
    pub fn code(&self, code: i32) -> &str {
        assert_eq!(
            self.code, code,
            "exit {} (expected {code})\nstdout: {}\nstderr: {}",
            self.code, self.stdout, self.stderr
        );
        &self.stdout
    }

    /// Asserts success and returns stdout's one line (an id, a payload), trimmed.
    pub fn line(&self) -> String {
        self.code(0).trim().to_string()
    }

    /// Asserts exit code 1 with `needle` on stderr.
    pub fn fails_naming(&self, needle: &str) {
        self.code(1);
        assert!(self.stderr.contains(needle), "{}", self.stderr);
    }
}

/// Runs `dpkeys args...` with `envs` and `stdin`.
pub fn dpkeys(args: &[&str], envs: &[(String, String)], stdin: Option<&str>) -> Out {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_dpkeys"));
    cmd.args(args)
        .env_remove("DATAPROTECTION_BLOB_URL")
        .env_remove("DATAPROTECTION_KEYVAULT_KEY_ID")
        .env_remove("DATAPROTECTION_APP_NAME")
        .env_remove("DPKEYS_PROGRESS")
        .env("RUST_LOG", "error")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(s) = stdin {
        input.write_all(s.as_bytes()).unwrap();
    }
    drop(input);
    let out = child.wait_with_output().unwrap();
    Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// `a ++ b` as a vector of `&str`.
pub fn args<'a>(a: &[&'a str], b: &[&'a str]) -> Vec<&'a str> {
    a.iter().chain(b).copied().collect()
}

/// The Key Vault emulator with one RSA key, reachable by child processes.
pub struct Vault {
    pub emulator: KeyVaultEmulator,
    /// The versionless key URL.
    pub key_url: String,
    /// The id (with its version) of the key as created.
    pub kid: String,
    pub ca: tempfile::TempPath,
}

impl Vault {
    pub async fn start(name: &str) -> Vault {
        let emulator = KeyVaultEmulator::start(EmulatorOptions::default())
            .await
            .unwrap();
        let kid = emulator.create_key(name, 2048).await.unwrap();
        let key_url = kid.rsplit_once('/').unwrap().0.to_string();
        let ca = tempfile::NamedTempFile::new().unwrap().into_temp_path();
        emulator.write_ca_cert(&ca).unwrap();
        Vault {
            emulator,
            key_url,
            kid,
            ca,
        }
    }

    /// The environment a child process needs to reach the vault.
    pub fn envs(&self) -> Vec<(String, String)> {
        vec![
            (
                "IDENTITY_ENDPOINT".into(),
                self.emulator.msi_endpoint_http().unwrap(),
            ),
            (
                "IDENTITY_HEADER".into(),
                self.emulator.identity_header().to_string(),
            ),
            (
                "SSL_CERT_FILE".into(),
                self.ca.to_string_lossy().into_owned(),
            ),
        ]
    }

    /// The key's name (last path segment of the URL).
    pub fn name(&self) -> &str {
        self.key_url.rsplit('/').next().unwrap()
    }

    /// Versions of the key, oldest first.
    pub fn versions(&self) -> Vec<String> {
        self.emulator.key_versions(self.name()).unwrap()
    }
}

/// A new container in the shared Azurite and a `racwd` SAS URL for `keys.xml` in it.
pub async fn blob_ring() -> (String, String) {
    let (container, url) = Azurite::shared()
        .unwrap()
        .fresh_blob("ops", "keys.xml")
        .await
        .unwrap();
    (container, url.to_string())
}

/// A SAS URL for `keys.xml` in `container` with `permissions`, valid for `valid` (negative: expired).
pub fn blob_url(container: &str, permissions: &str, valid: Duration) -> String {
    Azurite::shared()
        .unwrap()
        .blob_sas_url(
            container,
            "keys.xml",
            permissions,
            OffsetDateTime::now_utc() + valid,
        )
        .unwrap()
        .to_string()
}

/// The raw text of the blob `keys.xml` in `container`.
pub async fn blob_text(container: &str) -> String {
    Azurite::shared()
        .unwrap()
        .download_text(container, "keys.xml")
        .await
        .unwrap()
}

/// The `keys list --json` of a ring (`location` = the location options).
pub fn list(location: &[&str], envs: &[(String, String)]) -> Vec<serde_json::Value> {
    let out = dpkeys(&args(location, &["keys", "list", "--json"]), envs, None);
    serde_json::from_str::<serde_json::Value>(out.code(0))
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

/// `--dir DIR`.
pub fn dir_arg(dir: &Path) -> Vec<&str> {
    vec!["--dir", dir.to_str().unwrap()]
}

/// The `<kid>`s in a text (a blob or key file).
pub fn kids(text: &str) -> Vec<String> {
    text.split("<kid>")
        .skip(1)
        .map(|s| s.split("</kid>").next().unwrap().to_string())
        .collect()
}

/// An application running in this process on the same ring: it keeps
/// reloading the ring, unprotecting what it protected before the command
/// started, and protecting and unprotecting new payloads.
pub struct LiveApp {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<(usize, Vec<String>)>,
}

impl LiveApp {
    /// Starts the loop once the provider has loaded the ring and protected its first payload.
    pub async fn start(repository: Arc<dyn XmlRepository>) -> LiveApp {
        let provider = DataProtectionProvider::builder()
            .repository(repository)
            .application_name("ops-live")
            .auto_generate_keys(false)
            .build()
            .await
            .unwrap();
        let protector = provider.create_protector("live");
        let before = protector.protect(b"before").unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let task = tokio::spawn(async move {
            let mut rounds = 0;
            let mut errors = Vec::new();
            while !flag.load(Ordering::SeqCst) {
                if let Err(e) = provider.refresh().await {
                    errors.push(format!("refresh: {e}"));
                }
                match protector.unprotect_async(&before).await {
                    Ok(p) if p == b"before" => {}
                    other => errors.push(format!("old payload: {other:?}")),
                }
                match protector.protect(b"now") {
                    Ok(p) => {
                        let back = protector.unprotect_async(&p).await.ok();
                        if back.as_deref() != Some(b"now".as_slice()) {
                            errors.push("new payload does not round-trip".into());
                        }
                    }
                    Err(e) => errors.push(format!("protect: {e}")),
                }
                rounds += 1;
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            (rounds, errors)
        });
        LiveApp { stop, task }
    }

    /// Stops the loop and asserts it ran and never failed.
    pub async fn finish(self) {
        self.stop.store(true, Ordering::SeqCst);
        let (rounds, errors) = self.task.await.unwrap();
        assert!(rounds > 0, "the live application never ran");
        assert!(errors.is_empty(), "the live application failed: {errors:?}");
    }
}

/// Runs a blocking closure (a `dpkeys` child process) off the runtime's threads.
pub async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.unwrap()
}

/// Formats an instant as `dpkeys` accepts it.
pub fn at(t: OffsetDateTime) -> String {
    dataprotection::xml::format_date(t)
}
