//! An Azurite (blob service) process for tests, plus SAS/client helpers.
//!
//! Azurite is the npm package pinned in `tests/package.json` / `tests/package-lock.json`
//! ([`AZURITE_VERSION`]). On first use the harness runs `npm ci` in `tests/` (once, guarded by a
//! lock file so parallel test binaries do not race). Node.js and npm are **required**: if they are
//! missing the harness returns [`HarnessError::NodeMissing`] explaining how to install them; it
//! never skips silently.
//!
//! Every instance listens on `127.0.0.1` on a free port, runs with `--disableTelemetry` and
//! `--skipApiVersionCheck`, and is killed when the [`Azurite`] value is dropped. On Unix it also
//! dies with the test process (even on `SIGKILL`): a small `sh` watchdog kills Azurite when the
//! pipe to the test process closes. That is what makes [`Azurite::shared`] (a `static` that is
//! never dropped) leak-free.
//!
//! ```no_run
//! # async fn demo() -> Result<(), dataprotection_tests::azurite::HarnessError> {
//! use dataprotection_tests::azurite::{self, Azurite};
//! use time::{Duration, OffsetDateTime};
//!
//! let azurite = Azurite::shared()?; // or Azurite::start()? for a private instance
//! let container = azurite::unique_name("keys");
//! azurite.create_container(&container).await?;
//! let url = azurite.blob_sas_url(&container, "key-ring.xml", "racwd",
//!     OffsetDateTime::now_utc() + Duration::hours(1))?;
//! let blob = azurite::blob_client(url)?; // retries disabled
//! # let _ = blob; Ok(()) }
//! ```

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{Read as _, Write as _};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use azure_core::http::policies::{Policy, PolicyResult};
use azure_core::http::{ClientOptions, Context, Method, Request, RetryOptions, Transport, Url};
use azure_storage_blob::{
    BlobClient, BlobClientOptions, BlobContainerClient, BlobContainerClientOptions,
};
use dataprotection_azure_blobs::connection_string::{
    DEVELOPMENT_ACCOUNT_KEY, DEVELOPMENT_ACCOUNT_NAME,
};
use dataprotection_azure_blobs::sas::{
    self, AccountKey, Permissions, SasError, SasToken, SasWindow,
};
use time::OffsetDateTime;

/// The Azurite version pinned in `tests/package.json` (checked by a test).
pub const AZURITE_VERSION: &str = "3.37.0";

/// The emulator's account name.
pub const ACCOUNT_NAME: &str = DEVELOPMENT_ACCOUNT_NAME;

/// The emulator's well-known account key (public; not a secret).
pub const ACCOUNT_KEY: &str = DEVELOPMENT_ACCOUNT_KEY;

/// How long to wait for Azurite to listen.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// How long to wait for Azurite to exit after being asked to stop.
const STOP_TIMEOUT: Duration = Duration::from_secs(20);

/// How many fresh ports to try when the chosen one is taken before Azurite binds it.
const PORT_ATTEMPTS: usize = 5;

/// What stdout says once the server is listening.
const READY_LINE: &str = "successfully listens on";

/// Errors from the harness.
///
/// `Debug` prints the same text as `Display`, so that `.unwrap()` in a test shows a readable
/// message (with real line breaks) rather than an escaped struct dump.
#[derive(thiserror::Error)]
#[non_exhaustive]
pub enum HarnessError {
    /// Node.js or npm is not installed. The message says how to install it.
    #[error("{0}")]
    NodeMissing(String),
    /// `npm ci` failed.
    #[error("installing Azurite with `npm ci` in {dir} failed: {detail}")]
    Install {
        /// The directory `npm ci` ran in.
        dir: String,
        /// What went wrong (exit status and output tail).
        detail: String,
    },
    /// Azurite did not start (or restart, or stop).
    #[error("Azurite: {0}")]
    Process(String),
    /// An I/O error around the process (temp dirs, log files, lock file).
    #[error("Azurite harness I/O error while {context}: {source}")]
    Io {
        /// What the harness was doing.
        context: String,
        /// The error.
        source: std::io::Error,
    },
    /// Minting a SAS failed (bad container/blob name, permissions, times).
    #[error("minting a SAS failed: {0}")]
    Sas(#[from] SasError),
    /// The Azure SDK returned an error. Its text is already redacted.
    #[error("Azure SDK error: {0}")]
    Azure(String),
}

impl fmt::Debug for HarnessError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self {
            Self::NodeMissing(_) => "NodeMissing",
            Self::Install { .. } => "Install",
            Self::Process(_) => "Process",
            Self::Io { .. } => "Io",
            Self::Sas(_) => "Sas",
            Self::Azure(_) => "Azure",
        };
        write!(f, "HarnessError::{kind}: {self}")
    }
}

/// A harness error kept in a `OnceLock` (errors are not `Clone`): its kind
/// as a variant, so that `NodeMissing` stays recognisable without reading
/// its text.
#[derive(Clone, Debug)]
enum CachedError {
    NodeMissing(String),
    Other(String),
}

impl From<HarnessError> for CachedError {
    fn from(e: HarnessError) -> Self {
        match e {
            HarnessError::NodeMissing(message) => CachedError::NodeMissing(message),
            other => CachedError::Other(other.to_string()),
        }
    }
}

impl HarnessError {
    /// Rebuilds a cached error, `NodeMissing` as itself.
    fn from_cached(cached: &CachedError, context: &str) -> Self {
        match cached {
            CachedError::NodeMissing(message) => Self::NodeMissing(message.clone()),
            CachedError::Other(message) => Self::Process(format!("{context}{message}")),
        }
    }

    fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Self {
        let context = context.into();
        move |source| Self::Io { context, source }
    }

    fn azure(err: &azure_core::Error) -> Self {
        Self::Azure(sas::redact(&err.to_string()))
    }
}

/// The error text used when `node` or `npm` cannot be run.
///
/// `what` names the missing program (`"node"` or `"npm"`), `detail` the OS error.
pub fn missing_node_message(what: &str, detail: &str) -> String {
    format!(
        "The Azurite-based tests need Node.js (version 20 or newer) and npm, but `{what}` could \
         not be run ({detail}). Install Node.js and npm, then re-run the tests; the harness runs \
         `npm ci` in tests/ by itself to install Azurite {AZURITE_VERSION}.\n\
         How to install Node.js:\n  \
         - Debian/Ubuntu: sudo apt-get install nodejs npm\n  \
         - Fedora: sudo dnf install nodejs npm\n  \
         - macOS (Homebrew): brew install node\n  \
         - Windows: winget install OpenJS.NodeJS.LTS\n  \
         - or download an installer from https://nodejs.org/en/download\n\
         Make sure `node` and `npm` are on PATH for the process running `cargo test`."
    )
}

/// Whether data lives in memory or in a directory (needed to keep data across a restart).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Persistence {
    InMemory,
    Location,
}

/// A running (or stopped) Azurite blob service on `127.0.0.1:<port>`.
///
/// Dropping it kills the process; with [`Azurite::start_persistent`] the data directory is a
/// temporary directory removed on drop.
pub struct Azurite {
    port: u16,
    persistence: Persistence,
    /// With [`Azurite::start_https_oauth`]: the test CA that signed the server certificate.
    tls: Option<TlsMaterial>,
    workdir: tempfile::TempDir,
    process: Option<Process>,
    last_startup: Duration,
}

struct Process {
    child: Child,
    /// The watchdog's lifeline: closing it makes the watchdog stop Azurite.
    lifeline: Option<ChildStdin>,
}

impl fmt::Debug for Azurite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Azurite")
            .field("port", &self.port)
            .field("persistence", &self.persistence)
            .field("https_oauth", &self.tls.is_some())
            .field("workdir", &self.workdir.path())
            .field("running", &self.process.is_some())
            .field("last_startup", &self.last_startup)
            .finish()
    }
}

impl Azurite {
    /// Starts a private in-memory instance on a free port.
    pub fn start() -> Result<Self, HarnessError> {
        Self::start_mode(Persistence::InMemory)
    }

    /// Starts a private instance that stores its data in a temporary directory
    /// (`--location`), so that [`Azurite::stop`] + [`Azurite::restart`] keep the data.
    pub fn start_persistent() -> Result<Self, HarnessError> {
        Self::start_mode(Persistence::Location)
    }

    /// One in-memory instance shared by every test in this test binary, started on first use.
    ///
    /// Use unique container names ([`unique_name`]) to keep tests apart. It cannot be stopped;
    /// it dies with the test process.
    pub fn shared() -> Result<&'static Self, HarnessError> {
        static SHARED: OnceLock<Result<Azurite, CachedError>> = OnceLock::new();
        SHARED
            .get_or_init(|| Self::start().map_err(CachedError::from))
            .as_ref()
            .map_err(|e| HarnessError::from_cached(e, "the shared instance failed to start: "))
    }

    /// Starts a private in-memory instance that speaks **HTTPS only** and accepts Entra ID
    /// bearer tokens (`--cert`, `--key`, `--oauth basic`).
    ///
    /// The server certificate (for `127.0.0.1` and `localhost`) is signed by a test CA minted
    /// for this instance; trust it with [`Azurite::ca_pem`] or use
    /// [`Azurite::https_client_options`]. Azurite checks a token's lifetime (`nbf`/`exp`), its
    /// issuer prefix (`https://sts.windows.net/`) and its audience (`https://storage.azure.com`),
    /// never its signature, so an unsigned JWT works. SAS URLs still work too.
    pub fn start_https_oauth() -> Result<Self, HarnessError> {
        Self::start_with(Persistence::InMemory, true)
    }

    fn start_mode(persistence: Persistence) -> Result<Self, HarnessError> {
        Self::start_with(persistence, false)
    }

    fn start_with(persistence: Persistence, https_oauth: bool) -> Result<Self, HarnessError> {
        let bin = ensure_installed()?;
        let workdir = tempfile::Builder::new()
            .prefix("azurite-")
            .tempdir()
            .map_err(HarnessError::io("creating a temporary directory"))?;
        let tls = if https_oauth {
            Some(TlsMaterial::generate(workdir.path())?)
        } else {
            None
        };
        let mut azurite = Self {
            port: 0,
            persistence,
            tls,
            workdir,
            process: None,
            last_startup: Duration::ZERO,
        };
        let mut last_err = None;
        for _ in 0..PORT_ATTEMPTS {
            azurite.port = free_port()?;
            match azurite.launch(&bin) {
                Ok(()) => return Ok(azurite),
                Err(Launch::PortTaken(e)) => last_err = Some(e),
                Err(Launch::Failed(e)) => return Err(e),
            }
        }
        Err(last_err.unwrap_or_else(|| HarnessError::Process("no free port found".into())))
    }

    /// Stops the process (gracefully: Azurite saves its data on `SIGTERM`). The port and, with
    /// [`Azurite::start_persistent`], the data are kept for [`Azurite::restart`].
    pub fn stop(&mut self) -> Result<(), HarnessError> {
        self.shutdown(true)
    }

    /// Stops Azurite; unless `keep_files`, the watchdog then deletes the work directory.
    fn shutdown(&mut self, keep_files: bool) -> Result<(), HarnessError> {
        let Some(mut process) = self.process.take() else {
            return Ok(());
        };
        process.release(keep_files);
        #[cfg(not(unix))]
        let _ = process.child.kill();
        let deadline = Instant::now() + STOP_TIMEOUT;
        loop {
            match process.child.try_wait() {
                Ok(Some(_)) => return Ok(()),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                Ok(None) => {
                    let _ = process.child.kill();
                    let _ = process.child.wait();
                    return Err(HarnessError::Process(format!(
                        "did not exit within {STOP_TIMEOUT:?} of being stopped; killed"
                    )));
                }
                Err(e) => return Err(HarnessError::io("waiting for Azurite to exit")(e)),
            }
        }
    }

    /// Starts the process again on the same port (and, in persistent mode, with the same data).
    /// Stops it first if it is running. An in-memory instance comes back empty.
    pub fn restart(&mut self) -> Result<(), HarnessError> {
        self.stop()?;
        let bin = ensure_installed()?;
        // The port was ours a moment ago; if something grabbed it meanwhile, wait a little.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match self.launch(&bin) {
                Ok(()) => return Ok(()),
                Err(Launch::PortTaken(e)) if Instant::now() >= deadline => return Err(e),
                Err(Launch::PortTaken(_)) => std::thread::sleep(Duration::from_millis(250)),
                Err(Launch::Failed(e)) => return Err(e),
            }
        }
    }

    /// Whether the process is running (not stopped, not exited).
    pub fn is_running(&mut self) -> bool {
        self.process
            .as_mut()
            .is_some_and(|p| matches!(p.child.try_wait(), Ok(None)))
    }

    /// The TCP port on `127.0.0.1`.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// How long the last start (or restart) took until Azurite accepted connections.
    pub fn startup_time(&self) -> Duration {
        self.last_startup
    }

    /// The data directory of a persistent instance.
    pub fn location(&self) -> Option<PathBuf> {
        (self.persistence == Persistence::Location).then(|| self.data_dir())
    }

    /// `http://127.0.0.1:PORT/devstoreaccount1` (no trailing slash); `https://` for an
    /// instance started with [`Azurite::start_https_oauth`].
    pub fn blob_endpoint(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}/{ACCOUNT_NAME}", self.port)
    }

    /// Whether this instance speaks HTTPS and accepts bearer tokens
    /// ([`Azurite::start_https_oauth`]).
    pub fn is_https(&self) -> bool {
        self.tls.is_some()
    }

    /// The PEM of the test CA that signed the server certificate of an HTTPS instance
    /// ([`Azurite::start_https_oauth`]); `None` for a plain-http instance.
    pub fn ca_pem(&self) -> Option<&str> {
        self.tls.as_ref().map(|t| t.ca_pem.as_str())
    }

    /// [`client_options`] (retries disabled) whose transport trusts only [`Azurite::ca_pem`]
    /// (for a plain-http instance: just [`client_options`]).
    ///
    /// The transport is a reqwest 0.13 client (the SDK's major version) with automatic
    /// decompression off, as the storage clients expect.
    pub fn https_client_options(&self) -> Result<ClientOptions, HarnessError> {
        let mut options = client_options();
        if let Some(ca_pem) = self.ca_pem() {
            options.transport = Some(trusting_transport(ca_pem)?);
        }
        Ok(options)
    }

    /// A connection string for this instance (account key form, blob endpoint only).
    pub fn connection_string(&self) -> String {
        format!(
            "DefaultEndpointsProtocol=http;AccountName={ACCOUNT_NAME};AccountKey={ACCOUNT_KEY};\
             BlobEndpoint={};",
            self.blob_endpoint()
        )
    }

    /// The decoded well-known account key.
    pub fn account_key(&self) -> AccountKey {
        dev_key()
    }

    /// An account SAS (`ss=b&srt=sco&sp=rwdlac`) valid until `expiry`.
    pub fn account_sas(&self, expiry: OffsetDateTime) -> Result<SasToken, HarnessError> {
        Ok(sas::account_sas(
            ACCOUNT_NAME,
            &dev_key(),
            Permissions::ALL,
            &SasWindow::until(expiry),
        )?)
    }

    /// A client for `container`, authorised by a one-hour account SAS (so it can create and
    /// delete the container and list blobs). Retries are disabled.
    pub fn container_client(&self, container: &str) -> Result<BlobContainerClient, HarnessError> {
        let token = self.account_sas(one_hour())?;
        let url =
            parse_url(&token.append_to(&sas::container_url(&self.blob_endpoint(), container)))?;
        let options = BlobContainerClientOptions {
            client_options: self.https_client_options()?,
            ..Default::default()
        };
        BlobContainerClient::new(url, None, Some(options)).map_err(|e| HarnessError::azure(&e))
    }

    /// Creates `container` (with an account SAS) and returns its client.
    pub async fn create_container(
        &self,
        container: &str,
    ) -> Result<BlobContainerClient, HarnessError> {
        let client = self.container_client(container)?;
        client
            .create(None)
            .await
            .map_err(|e| HarnessError::azure(&e))?;
        Ok(client)
    }

    /// Creates a new container named from `prefix` (see [`unique_name`]) and returns its name
    /// with a URL for `blob` in it carrying a `racwd` blob SAS valid for an hour: the empty key
    /// ring most tests start from. The URL is a secret-bearing string.
    pub async fn fresh_blob(
        &self,
        prefix: &str,
        blob: &str,
    ) -> Result<(String, Url), HarnessError> {
        let container = unique_name(prefix);
        self.create_container(&container).await?;
        let expiry = OffsetDateTime::now_utc() + time::Duration::hours(1);
        let url = self.blob_sas_url(&container, blob, "racwd", expiry)?;
        Ok((container, url))
    }

    /// The bytes of `blob` in `container`, read with a short-lived read-only SAS.
    pub async fn download(&self, container: &str, blob: &str) -> Result<Vec<u8>, HarnessError> {
        let url = self.blob_sas_url(
            container,
            blob,
            "r",
            OffsetDateTime::now_utc() + time::Duration::hours(1),
        )?;
        let client = blob_client(url)?;
        let response = client
            .download(None)
            .await
            .map_err(|e| HarnessError::azure(&e))?;
        let bytes = response
            .body
            .collect()
            .await
            .map_err(|e| HarnessError::azure(&e))?;
        Ok(bytes.to_vec())
    }

    /// [`Azurite::download`] as UTF-8 text.
    pub async fn download_text(&self, container: &str, blob: &str) -> Result<String, HarnessError> {
        let bytes = self.download(container, blob).await?;
        String::from_utf8(bytes)
            .map_err(|_| HarnessError::Process(format!("blob {container}/{blob} is not UTF-8")))
    }

    /// A blob URL carrying a blob-scoped service SAS (`sr=b`) with `permissions` (letters from
    /// `racwd`, any order) valid until `expiry`. The blob need not exist.
    ///
    /// The URL is a secret-bearing string: log it through [`sas::redact`].
    pub fn blob_sas_url(
        &self,
        container: &str,
        blob: &str,
        permissions: &str,
        expiry: OffsetDateTime,
    ) -> Result<Url, HarnessError> {
        let token = sas::blob_sas(
            ACCOUNT_NAME,
            &dev_key(),
            container,
            blob,
            permissions.parse()?,
            &SasWindow::until(expiry),
        )?;
        parse_url(&token.append_to(&sas::blob_url(&self.blob_endpoint(), container, blob)))
    }

    /// A container URL carrying a container-scoped service SAS (`sr=c`) with `permissions`
    /// (letters from `racwdl`). Note: it cannot create the container itself.
    pub fn container_sas_url(
        &self,
        container: &str,
        permissions: &str,
        expiry: OffsetDateTime,
    ) -> Result<Url, HarnessError> {
        let token = sas::container_sas(
            ACCOUNT_NAME,
            &dev_key(),
            container,
            permissions.parse()?,
            &SasWindow::until(expiry),
        )?;
        parse_url(&token.append_to(&sas::container_url(&self.blob_endpoint(), container)))
    }

    fn data_dir(&self) -> PathBuf {
        self.workdir.path().join("data")
    }

    fn log_path(&self, stream: &str) -> PathBuf {
        self.workdir.path().join(format!("azurite.{stream}.log"))
    }

    /// Spawns Azurite on `self.port` and waits until it listens.
    fn launch(&mut self, bin: &Path) -> Result<(), Launch> {
        let started = Instant::now();
        let stdout_path = self.log_path("stdout");
        let stderr_path = self.log_path("stderr");
        let stdout = File::create(&stdout_path)
            .map_err(|e| Launch::Failed(HarnessError::io("creating the Azurite log file")(e)))?;
        let stderr = File::create(&stderr_path)
            .map_err(|e| Launch::Failed(HarnessError::io("creating the Azurite log file")(e)))?;

        // Loopback only, and never without --disableTelemetry (Azurite
        // otherwise reports to a public endpoint).
        const ALWAYS: &str =
            "--disableTelemetry --skipApiVersionCheck --silent --blobHost 127.0.0.1";
        let mut args: Vec<String> = ALWAYS.split(' ').map(str::to_string).collect();
        args.extend(["--blobPort".to_string(), self.port.to_string()]); // after ALWAYS: --disableTelemetry
        match self.persistence {
            Persistence::InMemory => args.push("--inMemoryPersistence".into()), // with ALWAYS: --disableTelemetry
            Persistence::Location => {
                let dir = self.data_dir();
                fs::create_dir_all(&dir).map_err(|e| {
                    Launch::Failed(HarnessError::io("creating the Azurite data directory")(e))
                })?;
                args.push("--location".into());
                args.push(dir.display().to_string());
            }
        }
        if let Some(tls) = &self.tls {
            // HTTPS plus bearer tokens; still loopback only, still with ALWAYS (--disableTelemetry).
            args.push("--cert".into());
            args.push(tls.cert_path.display().to_string());
            args.push("--key".into());
            args.push(tls.key_path.display().to_string());
            args.push("--oauth".into());
            args.push("basic".into());
        }

        let mut command = watchdog_command(bin, &args);
        command
            .current_dir(self.workdir.path())
            .env("AZURITE_SKIP_API_VERSION_CHECK", "true")
            // These would replace devstoreaccount1 or the in-memory store.
            .env_remove("AZURITE_ACCOUNTS")
            .env_remove("AZURITE_DB")
            .stdin(Stdio::piped())
            .stdout(stdout)
            .stderr(stderr);
        command.env("AZURITE_HARNESS_DIR", self.workdir.path());
        let mut child = command.spawn().map_err(|e| {
            Launch::Failed(if e.kind() == std::io::ErrorKind::NotFound {
                HarnessError::NodeMissing(missing_node_message("node", &e.to_string()))
            } else {
                HarnessError::io("spawning Azurite")(e)
            })
        })?;
        let lifeline = child.stdin.take();
        self.process = Some(Process { child, lifeline });

        let deadline = started + READY_TIMEOUT;
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, self.port));
        loop {
            let exited = self
                .process
                .as_mut()
                .and_then(|p| p.child.try_wait().ok().flatten());
            if let Some(status) = exited {
                if let Some(mut process) = self.process.take() {
                    process.release(true);
                }
                let output = self.output_tail();
                let err = HarnessError::Process(format!(
                    "exited with {status} before listening on 127.0.0.1:{}. Output:\n{output}",
                    self.port
                ));
                return Err(if output.contains("EADDRINUSE") {
                    Launch::PortTaken(err)
                } else {
                    Launch::Failed(err)
                });
            }
            // Ready when Azurite says so *and* the port accepts: the log line alone could be
            // racing the socket, and the port alone could belong to someone else.
            let said_ready = read_to_string_lossy(&stdout_path).contains(READY_LINE);
            if said_ready && TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_ok() {
                self.last_startup = started.elapsed();
                return Ok(());
            }
            if Instant::now() >= deadline {
                let _ = self.stop();
                return Err(Launch::Failed(HarnessError::Process(format!(
                    "not listening on 127.0.0.1:{} after {READY_TIMEOUT:?}. Output:\n{}",
                    self.port,
                    self.output_tail()
                ))));
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    fn output_tail(&self) -> String {
        let mut text = String::new();
        for stream in ["stdout", "stderr"] {
            let content = read_to_string_lossy(&self.log_path(stream));
            let tail: Vec<&str> = content.lines().rev().take(30).collect();
            text.push_str(&format!("--- {stream} ---\n"));
            for line in tail.iter().rev() {
                text.push_str(line);
                text.push('\n');
            }
        }
        text
    }
}

impl Drop for Azurite {
    fn drop(&mut self) {
        let _ = self.shutdown(false);
    }
}

impl Process {
    /// Closes the lifeline, which makes the watchdog stop Azurite (SIGTERM, then SIGKILL after
    /// 10 s). With `keep_files` it first tells the watchdog to leave the work directory alone;
    /// otherwise (drop, or the test process dying) the watchdog deletes it.
    fn release(&mut self, keep_files: bool) {
        if let Some(mut lifeline) = self.lifeline.take()
            && keep_files
        {
            let _ = lifeline.write_all(b"keep\n");
        }
    }
}

enum Launch {
    /// The port was taken before Azurite could bind it: try another.
    PortTaken(HarnessError),
    Failed(HarnessError),
}

/// The `sh` watchdog. It runs Azurite in the background plus a watcher subshell that blocks
/// reading the lifeline (its stdin, a pipe from the test process). When the pipe closes, because
/// the [`Azurite`] was stopped or dropped or the test process died (even by `SIGKILL` or
/// Ctrl-C), the watcher sends SIGTERM (Azurite then saves its data), waits up to 10 s, sends
/// SIGKILL, and, unless it read `keep` first, deletes `$AZURITE_HARNESS_DIR` (so temp dirs of
/// never-dropped statics and of killed test runs do not pile up). The script exits with
/// Azurite's status.
#[cfg(unix)]
const WATCHDOG: &str = r#"
exec 3<&0
"$@" </dev/null 3<&- &
pid=$!
(
  trap '' INT
  keep=
  if read -r msg <&3 && [ "$msg" = keep ]; then keep=1; fi
  cd /
  kill -TERM "$pid" 2>/dev/null
  i=0
  while kill -0 "$pid" 2>/dev/null && [ "$i" -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
  kill -KILL "$pid" 2>/dev/null
  if [ -z "$keep" ] && [ -n "${AZURITE_HARNESS_DIR:-}" ]; then
    rm -rf -- "$AZURITE_HARNESS_DIR"
  fi
) &
exec 3<&- 0</dev/null
wait "$pid"
"#;

#[cfg(unix)]
fn watchdog_command(bin: &Path, args: &[String]) -> Command {
    let mut command = Command::new("sh");
    command.arg("-c").arg(WATCHDOG).arg("azurite-watchdog");
    command.arg(node_program()).arg(bin).args(args);
    command
}

#[cfg(not(unix))]
fn watchdog_command(bin: &Path, args: &[String]) -> Command {
    let mut command = Command::new(node_program());
    command.arg(bin).args(args);
    command
}

/// `node`, or `$NODE` if set.
fn node_program() -> String {
    std::env::var("NODE").unwrap_or_else(|_| "node".to_owned())
}

fn read_to_string_lossy(path: &Path) -> String {
    let mut bytes = Vec::new();
    if let Ok(mut f) = File::open(path) {
        let _ = f.read_to_end(&mut bytes);
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Binds `127.0.0.1:0` to let the OS pick a free port, then releases it.
fn free_port() -> Result<u16, HarnessError> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .map_err(HarnessError::io("binding 127.0.0.1:0 to find a free port"))?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(HarnessError::io("reading the free port"))
}

/// The TLS files of an HTTPS instance: a test CA and a server certificate it signed.
struct TlsMaterial {
    ca_pem: String,
    cert_path: PathBuf,
    key_path: PathBuf,
}

impl TlsMaterial {
    /// Mints a CA and a leaf for `127.0.0.1` and `localhost`, and writes the leaf (followed by
    /// the CA) and its key as PEM files into `dir`.
    fn generate(dir: &Path) -> Result<Self, HarnessError> {
        let cert =
            keyvault_emulator::mint_test_certificate("dataprotection-tests Azurite test CA", &[])
                .map_err(|e| HarnessError::Process(format!("generating a test TLS cert: {e}")))?;
        let ca_pem = cert.ca_pem;
        let cert_path = dir.join("azurite-cert.pem");
        let key_path = dir.join("azurite-key.pem");
        fs::write(&cert_path, format!("{}{ca_pem}", cert.leaf_pem))
            .map_err(HarnessError::io("writing the Azurite TLS certificate"))?;
        fs::write(&key_path, cert.key_pem)
            .map_err(HarnessError::io("writing the Azurite TLS key"))?;
        Ok(Self {
            ca_pem,
            cert_path,
            key_path,
        })
    }
}

/// A reqwest 0.13 transport that trusts only `ca_pem` (no system roots), with automatic
/// decompression off (reqwest is built without gzip/deflate here).
pub fn trusting_transport(ca_pem: &str) -> Result<Transport, HarnessError> {
    let certs = reqwest::Certificate::from_pem_bundle(ca_pem.as_bytes())
        .map_err(|e| HarnessError::Process(format!("parsing the test CA PEM: {e}")))?;
    if certs.is_empty() {
        return Err(HarnessError::Process(
            "the test CA PEM holds no certificate".into(),
        ));
    }
    let client = reqwest::Client::builder()
        .tls_certs_only(certs)
        .build()
        .map_err(|e| HarnessError::Process(format!("building the reqwest client: {e}")))?;
    Ok(Transport::new(std::sync::Arc::new(client)))
}

fn dev_key() -> AccountKey {
    match AccountKey::from_base64(ACCOUNT_KEY) {
        Ok(key) => key,
        Err(_) => unreachable!("the well-known development key is valid base64"),
    }
}

fn one_hour() -> OffsetDateTime {
    OffsetDateTime::now_utc() + time::Duration::hours(1)
}

fn parse_url(url: &str) -> Result<Url, HarnessError> {
    Url::parse(url).map_err(|e| HarnessError::Process(format!("bad URL {}: {e}", sas::redact(url))))
}

/// Client options for tests: retries disabled, so a failure (or a stopped Azurite) surfaces at
/// once instead of after the default 8 retries / 60 s.
pub fn client_options() -> ClientOptions {
    ClientOptions {
        retry: RetryOptions::none(),
        ..Default::default()
    }
}

/// [`BlobClientOptions`] with [`client_options`].
pub fn blob_client_options() -> BlobClientOptions {
    BlobClientOptions {
        client_options: client_options(),
        ..Default::default()
    }
}

/// [`BlobContainerClientOptions`] with [`client_options`].
pub fn container_client_options() -> BlobContainerClientOptions {
    BlobContainerClientOptions {
        client_options: client_options(),
        ..Default::default()
    }
}

/// `BlobClient::new(url, None, Some(blob_client_options()))`: a client authorised by the SAS in
/// `url`, with retries disabled. Errors are redacted.
pub fn blob_client(url: Url) -> Result<BlobClient, HarnessError> {
    BlobClient::new(url, None, Some(blob_client_options())).map_err(|e| HarnessError::azure(&e))
}

/// A container name unique within this machine run: `{prefix}-{pid}-{counter}-{nanos}` in
/// lowercase hex, cut to 63 characters. `prefix` must be lowercase letters/digits.
pub fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let mut name = format!("{prefix}-{:x}-{n:x}-{nanos:x}", std::process::id());
    name.truncate(63);
    name.trim_end_matches('-').to_owned()
}

// ---------------------------------------------------------------------------------------------
// Installation (npm ci, once)
// ---------------------------------------------------------------------------------------------

/// The `tests/` directory (holds `package.json`).
pub fn tests_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `tests/node_modules/.bin/azurite-blob`.
pub fn azurite_bin() -> PathBuf {
    tests_dir()
        .join("node_modules")
        .join(".bin")
        .join("azurite-blob")
}

/// Makes sure Azurite [`AZURITE_VERSION`] is installed in `tests/node_modules` (running
/// `npm ci` if not) and returns the `azurite-blob` path. Cached per process; serialised across
/// processes with a lock file.
pub fn ensure_installed() -> Result<PathBuf, HarnessError> {
    static INSTALLED: OnceLock<Result<PathBuf, CachedError>> = OnceLock::new();
    INSTALLED
        .get_or_init(|| install().map_err(CachedError::from))
        .clone()
        .map_err(|cached| HarnessError::from_cached(&cached, ""))
}

#[cfg(test)]
const NODE_MISSING_PREFIX: &str = "The Azurite-based tests need Node.js";

/// Whether `tests/node_modules` holds a complete install of the pinned version.
fn is_installed() -> bool {
    let modules = tests_dir().join("node_modules");
    // npm writes node_modules/.package-lock.json at the end of a successful install.
    azurite_bin().exists()
        && modules.join(".package-lock.json").exists()
        && read_to_string_lossy(&modules.join("azurite").join("package.json"))
            .contains(&format!("\"version\": \"{AZURITE_VERSION}\""))
}

fn install() -> Result<PathBuf, HarnessError> {
    // Node is needed to run Azurite even when it is already installed.
    check_program(&node_program(), "node")?;
    let lock = lock_file()?;
    lock.lock_shared()
        .map_err(HarnessError::io("locking the npm install lock file"))?;
    if is_installed() {
        return Ok(azurite_bin());
    }
    lock.unlock()
        .map_err(HarnessError::io("unlocking the npm install lock file"))?;
    lock.lock()
        .map_err(HarnessError::io("locking the npm install lock file"))?;
    if is_installed() {
        return Ok(azurite_bin());
    }
    let npm = std::env::var("NPM").unwrap_or_else(|_| "npm".to_owned());
    check_program(&npm, "npm")?;
    let dir = tests_dir();
    let output = Command::new(&npm)
        .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
        .current_dir(&dir)
        .stdin(Stdio::null())
        .output()
        .map_err(HarnessError::io("running npm ci"))?;
    if !output.status.success() || !is_installed() {
        return Err(HarnessError::Install {
            dir: dir.display().to_string(),
            detail: format!(
                "{}; stdout:\n{}\nstderr:\n{}",
                describe_status(output.status),
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ),
        });
    }
    Ok(azurite_bin())
}

fn describe_status(status: ExitStatus) -> String {
    if status.success() {
        "npm ci succeeded but node_modules/.bin/azurite-blob is still missing".to_owned()
    } else {
        format!("npm ci exited with {status}")
    }
}

fn check_program(program: &str, what: &str) -> Result<(), HarnessError> {
    match Command::new(program)
        .arg("--version")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
    {
        Ok(status) if status.success() => Ok(()),
        Ok(status) => Err(HarnessError::NodeMissing(missing_node_message(
            what,
            &format!("`{program} --version` exited with {status}"),
        ))),
        Err(e) => Err(HarnessError::NodeMissing(missing_node_message(
            what,
            &e.to_string(),
        ))),
    }
}

/// A lock file in the temp dir, named after this checkout, so that parallel test binaries
/// (cargo runs them one after another, but nextest and concurrent `cargo test`s do not) never
/// run `npm ci` at the same time. It cannot live in node_modules, which `npm ci` deletes.
fn lock_file() -> Result<File, HarnessError> {
    let dir = tests_dir();
    let hash = dir
        .to_string_lossy()
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
    let path = std::env::temp_dir().join(format!("dataprotection-tests-npm-{hash:016x}.lock"));
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(HarnessError::io(format!("opening {}", path.display())))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn missing_node_message_says_how_to_install() {
        let msg = missing_node_message("node", "No such file or directory (os error 2)");
        for needle in [
            "Node.js",
            "`node`",
            "No such file or directory",
            "apt-get install nodejs npm",
            "brew install node",
            "winget install",
            "https://nodejs.org",
            "npm ci",
            AZURITE_VERSION,
        ] {
            assert!(msg.contains(needle), "missing {needle:?} in:\n{msg}");
        }
        assert!(msg.starts_with(NODE_MISSING_PREFIX));
    }

    #[test]
    fn missing_node_is_reported_not_skipped() {
        let err = check_program("/nonexistent/definitely-not-node", "node").unwrap_err();
        match &err {
            HarnessError::NodeMissing(msg) => {
                assert!(msg.contains("apt-get install nodejs npm"), "{msg}");
            }
            other => panic!("expected NodeMissing, got {other:?}"),
        }
        assert!(err.to_string().contains("Install Node.js"));
    }

    #[test]
    fn package_json_pins_the_version() {
        let pkg = fs::read_to_string(tests_dir().join("package.json")).unwrap();
        assert!(
            pkg.contains(&format!("\"azurite\": \"{AZURITE_VERSION}\"")),
            "{pkg}"
        );
        let lock = fs::read_to_string(tests_dir().join("package-lock.json")).unwrap();
        assert!(
            lock.contains(&format!(
                "\"node_modules/azurite\": {{\n      \"version\": \"{AZURITE_VERSION}\""
            )),
            "package-lock.json does not pin azurite {AZURITE_VERSION}"
        );
    }

    #[test]
    fn unique_names_are_valid_container_names() {
        let a = unique_name("keys");
        let b = unique_name("keys");
        assert_ne!(a, b);
        for name in [
            a,
            b,
            unique_name("a-very-long-prefix-that-goes-on-and-on-and-on-and-on"),
        ] {
            assert!(name.len() <= 63 && name.len() >= 3, "{name}");
            assert!(
                name.bytes()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-'),
                "{name}"
            );
            assert!(!name.ends_with('-') && !name.contains("--"), "{name}");
        }
    }

    #[test]
    fn tls_material_is_written_as_pem() {
        let dir = tempfile::tempdir().unwrap();
        let tls = TlsMaterial::generate(dir.path()).unwrap();
        let cert = fs::read_to_string(&tls.cert_path).unwrap();
        let key = fs::read_to_string(&tls.key_path).unwrap();
        // The leaf first, then the CA.
        assert_eq!(cert.matches("BEGIN CERTIFICATE").count(), 2, "{cert}");
        assert!(cert.ends_with(&tls.ca_pem));
        assert!(key.contains("BEGIN PRIVATE KEY"));
        assert!(trusting_transport(&tls.ca_pem).is_ok());
        assert!(trusting_transport("not a pem").is_err());
    }

    #[test]
    fn client_options_disable_retries() {
        let dbg = format!("{:?}", client_options().retry);
        assert!(dbg.contains("None"), "{dbg}");
    }
}

/// A pipeline policy counting the requests a client sends, GETs apart from the others.
#[derive(Debug, Default)]
pub struct CountRequests {
    gets: AtomicUsize,
    others: AtomicUsize,
}

impl CountRequests {
    /// Client options without SDK retries (each request counts once) sending every request
    /// through `counter`.
    pub fn client_options(counter: &Arc<CountRequests>) -> ClientOptions {
        ClientOptions {
            retry: RetryOptions::none(),
            per_call_policies: vec![counter.clone()],
            ..Default::default()
        }
    }

    /// GET requests sent so far.
    pub fn gets(&self) -> usize {
        self.gets.load(Ordering::SeqCst)
    }

    /// Requests of any other method sent so far.
    pub fn others(&self) -> usize {
        self.others.load(Ordering::SeqCst)
    }

    /// All requests sent so far.
    pub fn total(&self) -> usize {
        self.gets() + self.others()
    }
}

#[async_trait::async_trait]
impl Policy for CountRequests {
    async fn send(
        &self,
        ctx: &Context,
        request: &mut Request,
        next: &[Arc<dyn Policy>],
    ) -> PolicyResult {
        let count = if request.method() == Method::Get {
            &self.gets
        } else {
            &self.others
        };
        count.fetch_add(1, Ordering::SeqCst);
        next[0].send(ctx, request, &next[1..]).await
    }
}
