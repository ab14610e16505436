//! A local Azure Key Vault (keys) emulator for tests, speaking the real REST API over HTTPS.
//!
//! It serves, on `127.0.0.1` only:
//! - the Key Vault keys REST API (api-versions `7.4`, `7.5`, `7.6`, `2025-07-01`): create, get,
//!   list, update (PATCH), wrapkey/unwrapkey and encrypt/decrypt with `RSA-OAEP`,
//!   `RSA-OAEP-256` and `RSA1_5`, with real RSA so results interoperate with any implementation;
//! - the bearer challenge flow of the real service (401 + `WWW-Authenticate` before the body is
//!   read); only tokens issued by this emulator, for `https://vault.azure.net` and unexpired, pass;
//! - an App Service managed identity token endpoint at `/msi/token` (`IDENTITY_ENDPOINT` /
//!   `IDENTITY_HEADER` protocol), on the HTTPS port and on an optional plain-http port;
//! - an unauthenticated control API under `/_emulator/` (faults, request log, keys, CA);
//! - fault injection (latency, 429 with/without `Retry-After`, 503, 500) and a request log.
//!
//! TLS uses a CA generated at start-up ([`KeyVaultEmulator::ca_cert_pem`]).
//!
//! ```no_run
//! # async fn demo() -> Result<(), keyvault_emulator::Error> {
//! use keyvault_emulator::{EmulatorOptions, KeyVaultEmulator, Operation};
//! let emu = KeyVaultEmulator::start(EmulatorOptions::default()).await?;
//! let kid = emu.create_key("my-key", 2048).await?;
//! println!("{} {kid} {}", emu.base_url(), emu.count(Operation::WrapKey));
//! emu.shutdown().await;
//! # Ok(()) }
//! ```

mod faults;
pub mod isolated;
mod log;
mod server;
mod tls;

pub use tls::{TestCertificate, mint_test_certificate};
mod util;
mod vault;

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

pub use faults::{FaultConfig, FaultHandle, FaultKind, FaultRule};
pub use log::{LoggedRequest, Operation};
pub use server::SUPPORTED_API_VERSIONS;

use server::Shared;
use vault::{KvError, NewKey};

/// Errors of the library API.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Binding or writing failed.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// Certificate generation or TLS configuration failed.
    #[error("TLS setup failed: {0}")]
    Tls(String),
    /// The key or key version does not exist.
    #[error("key not found: {0}")]
    KeyNotFound(String),
    /// Invalid argument (bad name, size, …).
    #[error("bad parameter: {0}")]
    BadParameter(String),
    /// Invalid configuration (e.g. an unusable `IDENTITY_ENDPOINT`).
    #[error("invalid configuration: {0}")]
    Config(String),
}

impl From<KvError> for Error {
    fn from(e: KvError) -> Self {
        match e.code {
            "KeyNotFound" => Self::KeyNotFound(e.message),
            _ => Self::BadParameter(e.message),
        }
    }
}

/// Start-up options. `Default` = free HTTPS port, a free plain-http port, a random identity
/// header secret, no extra DNS names, no keys.
#[derive(Debug, Clone)]
pub struct EmulatorOptions {
    /// HTTPS port on 127.0.0.1; 0 picks a free port.
    pub port: u16,
    /// Plain-http listener on 127.0.0.1 serving only `/msi/token` and `/_emulator/`:
    /// `None` = none, `Some(0)` = a free port.
    pub http_port: Option<u16>,
    /// The `X-IDENTITY-HEADER` secret the token endpoint requires; random when `None`.
    pub identity_header: Option<String>,
    /// Extra DNS names for the server certificate (besides `localhost` and `127.0.0.1`).
    pub extra_dns_names: Vec<String>,
    /// Keys (2048-bit RSA) to create at start-up.
    pub keys: Vec<String>,
    /// Write the CA certificate PEM to this path at start-up.
    pub ca_cert_out: Option<PathBuf>,
    /// Lifetime of issued tokens (default one hour).
    pub token_lifetime: Duration,
}

impl Default for EmulatorOptions {
    fn default() -> Self {
        Self {
            port: 0,
            http_port: Some(0),
            identity_header: None,
            extra_dns_names: Vec::new(),
            keys: Vec::new(),
            ca_cert_out: None,
            token_lifetime: Duration::from_secs(3600),
        }
    }
}

impl EmulatorOptions {
    /// Options matching the process environment that `azure_identity::ManagedIdentityCredential`
    /// reads: the port of `IDENTITY_ENDPOINT` (`http://127.0.0.1:P/msi/token` binds the plain-http
    /// listener to P, `https://…` the HTTPS listener), the secret from `IDENTITY_HEADER`, and the CA
    /// certificate written to `SSL_CERT_FILE` when that is set. Used by [`isolated`].
    ///
    /// # Errors
    /// [`Error::Config`] when `IDENTITY_ENDPOINT` or `IDENTITY_HEADER` is missing or unusable.
    pub fn from_identity_env() -> Result<Self, Error> {
        let endpoint = std::env::var("IDENTITY_ENDPOINT")
            .map_err(|_| Error::Config("IDENTITY_ENDPOINT is not set".into()))?;
        let secret = std::env::var("IDENTITY_HEADER")
            .map_err(|_| Error::Config("IDENTITY_HEADER is not set".into()))?;
        let (https, rest) = if let Some(r) = endpoint.strip_prefix("https://127.0.0.1:") {
            (true, r)
        } else if let Some(r) = endpoint.strip_prefix("http://127.0.0.1:") {
            (false, r)
        } else {
            return Err(Error::Config(format!(
                "IDENTITY_ENDPOINT must be http(s)://127.0.0.1:PORT/msi/token, got {endpoint}"
            )));
        };
        let port: u16 = rest
            .strip_suffix("/msi/token")
            .and_then(|p| p.parse().ok())
            .ok_or_else(|| Error::Config(format!("bad IDENTITY_ENDPOINT {endpoint}")))?;
        let mut opts = Self {
            identity_header: Some(secret),
            ca_cert_out: std::env::var_os("SSL_CERT_FILE").map(PathBuf::from),
            ..Self::default()
        };
        if https {
            opts.port = port;
        } else {
            opts.http_port = Some(port);
        }
        Ok(opts)
    }
}

/// A running emulator. Stops when dropped or on [`KeyVaultEmulator::shutdown`].
#[derive(Debug)]
pub struct KeyVaultEmulator {
    shared: Arc<Shared>,
    base_url: String,
    http_base_url: Option<String>,
    port: u16,
    tasks: Vec<JoinHandle<()>>,
}

impl KeyVaultEmulator {
    /// Generates the CA, binds the listener(s) on 127.0.0.1 and starts serving on the current
    /// tokio runtime.
    ///
    /// # Errors
    /// Binding, TLS setup, key creation or writing `ca_cert_out` failed.
    pub async fn start(options: EmulatorOptions) -> Result<Self, Error> {
        let tls = tls::generate(&options.extra_dns_names)?;
        if let Some(path) = &options.ca_cert_out {
            std::fs::write(path, &tls.ca_pem)?;
        }
        let shared = Arc::new(Shared {
            vault: Mutex::default(),
            tokens: Mutex::new(HashMap::new()),
            faults: FaultHandle::default(),
            log: log::RequestLog::default(),
            identity_header: options
                .identity_header
                .clone()
                .unwrap_or_else(|| util::hex(&util::random_bytes(16))),
            tenant_id: util::random_guid(),
            ca_pem: tls.ca_pem,
            token_lifetime_secs: i64::try_from(options.token_lifetime.as_secs()).unwrap_or(3600),
        });
        let listener =
            TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, options.port))).await?;
        let port = listener.local_addr()?.port();
        let base_url = format!("https://127.0.0.1:{port}");
        let acceptor = TlsAcceptor::from(tls.server_config);
        let mut tasks = vec![tokio::spawn(server::serve(
            listener,
            Some(acceptor),
            Arc::clone(&shared),
        ))];
        let mut http_base_url = None;
        if let Some(http_port) = options.http_port {
            let listener =
                TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, http_port))).await?;
            http_base_url = Some(format!(
                "http://127.0.0.1:{}",
                listener.local_addr()?.port()
            ));
            tasks.push(tokio::spawn(server::serve(
                listener,
                None,
                Arc::clone(&shared),
            )));
        }
        let emu = Self {
            shared,
            base_url,
            http_base_url,
            port,
            tasks,
        };
        for name in &options.keys {
            emu.create_key(name, 2048).await?;
        }
        tracing::info!(base_url = %emu.base_url, http = ?emu.http_base_url, "Key Vault emulator listening");
        Ok(emu)
    }

    /// `https://127.0.0.1:PORT`: the vault URL to give `KeyClient::new`.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// `https://localhost:PORT` (the certificate covers `localhost` too).
    pub fn localhost_url(&self) -> String {
        format!("https://localhost:{}", self.port)
    }

    /// The HTTPS port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:PORT` of the plain-http listener (token endpoint and control API only).
    pub fn http_base_url(&self) -> Option<&str> {
        self.http_base_url.as_deref()
    }

    /// The token endpoint over HTTPS: a value for `IDENTITY_ENDPOINT`.
    pub fn msi_endpoint(&self) -> String {
        format!("{}/msi/token", self.base_url)
    }

    /// The token endpoint over plain http, when that listener is enabled.
    pub fn msi_endpoint_http(&self) -> Option<String> {
        self.http_base_url
            .as_ref()
            .map(|b| format!("{b}/msi/token"))
    }

    /// The secret the token endpoint expects in `X-IDENTITY-HEADER` (`IDENTITY_HEADER`).
    pub fn identity_header(&self) -> &str {
        &self.shared.identity_header
    }

    /// The tenant GUID named in the bearer challenge.
    pub fn tenant_id(&self) -> &str {
        &self.shared.tenant_id
    }

    /// PEM of the emulator's CA certificate (trust this, e.g. via `SSL_CERT_FILE` or
    /// `reqwest::Certificate::from_pem`).
    pub fn ca_cert_pem(&self) -> &str {
        &self.shared.ca_pem
    }

    /// Writes the CA certificate PEM to `path`.
    ///
    /// # Errors
    /// The file could not be written.
    pub fn write_ca_cert(&self, path: impl AsRef<Path>) -> Result<(), Error> {
        std::fs::write(path, &self.shared.ca_pem)?;
        Ok(())
    }

    /// The fault injection switches.
    pub fn faults(&self) -> FaultHandle {
        self.shared.faults.clone()
    }

    /// All logged requests so far (control API requests are not logged).
    pub fn requests(&self) -> Vec<LoggedRequest> {
        self.shared.log.snapshot()
    }

    /// How many logged requests had operation `op`.
    pub fn count(&self, op: Operation) -> usize {
        self.requests().iter().filter(|r| r.operation == op).count()
    }

    /// Clears the request log.
    pub fn clear_requests(&self) {
        self.shared.log.clear();
    }

    /// Issues a valid bearer token for Key Vault, as the token endpoint would.
    pub fn issue_token(&self) -> String {
        self.shared.issue_token(server::VAULT_RESOURCE).0
    }

    /// Creates an RSA key (or a new version of it) and returns the versioned `kid`
    /// (under [`Self::base_url`]).
    ///
    /// # Errors
    /// Invalid name or size.
    pub async fn create_key(&self, name: &str, bits: usize) -> Result<String, Error> {
        let kv = self.shared.create(name, NewKey::rsa(bits)).await?;
        Ok(vault::kid(&self.base_url, name, &kv.version))
    }

    /// Enables or disables a key version (`None` = latest).
    ///
    /// # Errors
    /// [`Error::KeyNotFound`].
    pub fn set_key_enabled(
        &self,
        name: &str,
        version: Option<&str>,
        enabled: bool,
    ) -> Result<(), Error> {
        let mut vault = self.shared.vault();
        let kv = vault.get_mut(name, version)?;
        kv.enabled = enabled;
        kv.updated = util::now_secs();
        Ok(())
    }

    /// Replaces the allowed operations (`key_ops`) of a key version (`None` = latest).
    ///
    /// # Errors
    /// [`Error::KeyNotFound`], or an unknown operation name.
    pub fn set_key_ops(
        &self,
        name: &str,
        version: Option<&str>,
        ops: &[&str],
    ) -> Result<(), Error> {
        let ops = vault::parse_key_ops(&serde_json::json!(ops))?;
        let mut vault = self.shared.vault();
        let kv = vault.get_mut(name, version)?;
        kv.key_ops = ops;
        kv.updated = util::now_secs();
        Ok(())
    }

    /// Versions of a key, oldest first.
    ///
    /// # Errors
    /// [`Error::KeyNotFound`].
    pub fn key_versions(&self, name: &str) -> Result<Vec<String>, Error> {
        let vault = self.shared.vault();
        Ok(vault
            .versions(name)?
            .iter()
            .map(|v| v.version.clone())
            .collect())
    }

    /// The private key of a version (`None` = latest) as PKCS#8 PEM, for checking results with
    /// an independent RSA implementation. The REST API never exposes it.
    ///
    /// # Errors
    /// [`Error::KeyNotFound`].
    pub fn private_key_pkcs8_pem(
        &self,
        name: &str,
        version: Option<&str>,
    ) -> Result<String, Error> {
        let vault = self.shared.vault();
        Ok(vault::private_pem(&vault.get(name, version)?.private)?)
    }

    /// Stores a secret (a new version of it) and returns its versioned id.
    pub fn set_secret(&self, name: &str, value: &str, content_type: Option<&str>) -> String {
        let sv = self.shared.vault().insert_secret(
            name,
            value.to_owned(),
            content_type.map(str::to_owned),
            None,
        );
        format!("{}/secrets/{name}/{}", self.base_url, sv.version)
    }

    /// Imports a certificate as Key Vault keeps one: a managed secret of the
    /// same name holding the PKCS#12 file (Base64, `application/x-pkcs12`),
    /// and the certificate (`GET /certificates/{name}`, with `cer` = `der`).
    /// Returns the versioned certificate id.
    pub fn import_certificate(&self, name: &str, pfx: &[u8], der: &[u8]) -> String {
        use base64::Engine as _;
        let sv = self.shared.vault().insert_secret(
            name,
            base64::engine::general_purpose::STANDARD.encode(pfx),
            Some("application/x-pkcs12".to_owned()),
            Some(der.to_vec()),
        );
        format!("{}/certificates/{name}/{}", self.base_url, sv.version)
    }

    /// Stops serving and waits for the listener tasks to end.
    pub async fn shutdown(mut self) {
        for task in self.tasks.drain(..) {
            task.abort();
            let _ = task.await;
        }
    }
}

impl Drop for KeyVaultEmulator {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}
