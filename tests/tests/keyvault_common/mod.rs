//! Shared helpers of the `keyvault_*` tests: an emulator started from the child process's
//! identity environment, a credential chosen by `credential_from_environment`, fresh
//! "process state" (encryptor + decryptor), key creation at chosen dates, and log capture.
#![allow(dead_code, clippy::unwrap_used)]

use std::io::Write;
use std::sync::{Arc, Mutex};

use azure_core::credentials::TokenCredential;
use azure_core::http::{ClientOptions, FixedRetryOptions, RetryOptions};
use dataprotection::clock::{Clock, ManualClock};
use dataprotection::repository::XmlRepository;
use dataprotection::xml::Element;
use dataprotection::{DataProtectionProviderBuilder, KeyEscrowSink, KeyManager};
use dataprotection_azure_keyvault::{
    AzureKeyVaultBuilderExt, AzureKeyVaultXmlDecryptor, AzureKeyVaultXmlEncryptor, CredentialKind,
    KeyVaultOptions, credential_from_environment, key_vault_protection,
};
use keyvault_emulator::{EmulatorOptions, KeyVaultEmulator, LoggedRequest, Operation};
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

/// The vault key name used by the tests.
pub const KEY: &str = "dataprotection";

/// A running emulator with one RSA key, and the versionless key URL.
pub struct Vault {
    pub emu: KeyVaultEmulator,
    pub key_url: String,
    pub first_kid: String,
}

/// Starts the emulator (before any client) and creates the vault key.
pub async fn start_vault() -> Vault {
    let emu = KeyVaultEmulator::start(EmulatorOptions::from_identity_env().unwrap())
        .await
        .unwrap();
    let first_kid = emu.create_key(KEY, 2048).await.unwrap();
    let key_url = format!("{}/keys/{KEY}", emu.base_url());
    Vault {
        emu,
        key_url,
        first_kid,
    }
}

/// The credential the (child) environment selects: the real ManagedIdentityCredential.
pub fn credential() -> Arc<dyn TokenCredential> {
    let (credential, kind) = credential_from_environment().unwrap();
    assert_eq!(kind, CredentialKind::AppServiceManagedIdentity);
    credential
}

/// Retries fast enough for tests (3 retries 100 ms apart; `Retry-After` still wins).
pub fn fast_retry_options() -> KeyVaultOptions {
    KeyVaultOptions {
        client_options: ClientOptions {
            retry: RetryOptions::fixed(FixedRetryOptions {
                delay: azure_core::time::Duration::milliseconds(100),
                max_retries: 3,
                max_total_elapsed: azure_core::time::Duration::seconds(20),
            }),
            ..Default::default()
        },
        ..Default::default()
    }
}

/// Fresh process state: a new credential, client, encryptor and decryptor.
pub fn protection(
    vault: &Vault,
    options: KeyVaultOptions,
) -> (
    Arc<AzureKeyVaultXmlEncryptor>,
    Arc<AzureKeyVaultXmlDecryptor>,
) {
    key_vault_protection(&vault.key_url, credential(), options).unwrap()
}

/// A provider builder for `repo` whose keys are protected with the vault key (fresh state).
pub fn builder(
    vault: &Vault,
    repo: Arc<dyn XmlRepository>,
    options: KeyVaultOptions,
) -> DataProtectionProviderBuilder {
    dataprotection::DataProtectionProvider::builder()
        .application_name("keyvault-tests")
        .repository(repo)
        .protect_keys_with_azure_key_vault(&vault.key_url, credential(), options)
        .unwrap()
}

/// A key manager writing keys with chosen creation dates (fresh state).
pub struct DatedKeys {
    pub manager: KeyManager,
    pub clock: Arc<ManualClock>,
}

impl DatedKeys {
    pub fn new(vault: &Vault, repo: Arc<dyn XmlRepository>) -> Self {
        let (encryptor, _) = protection(vault, KeyVaultOptions::default());
        let clock = Arc::new(ManualClock::new(OffsetDateTime::now_utc()));
        let manager = KeyManager::new(repo, Some(encryptor)).with_clock(clock.clone());
        DatedKeys { manager, clock }
    }

    /// Creates a key created at `created`, active from `activation`, for 90 days.
    pub async fn create(&self, created: OffsetDateTime, activation: OffsetDateTime) -> Uuid {
        self.clock.set(created);
        self.manager
            .create_key(activation, activation + Duration::days(90))
            .await
            .unwrap()
            .id()
    }
}

/// A manual clock at the real current time.
pub fn clock_now() -> Arc<ManualClock> {
    Arc::new(ManualClock::new(OffsetDateTime::now_utc()))
}

/// A manual clock as `Arc<dyn Clock>`.
pub fn dyn_clock(c: &Arc<ManualClock>) -> Arc<dyn Clock> {
    c.clone()
}

/// Collects escrowed (unencrypted) key elements.
#[derive(Debug, Default)]
pub struct Escrow(pub Mutex<Vec<(Uuid, Element)>>);

impl KeyEscrowSink for Escrow {
    fn store(&self, key_id: Uuid, element: &Element) {
        self.0.lock().unwrap().push((key_id, element.clone()));
    }
}

impl Escrow {
    /// The Base64 master keys escrowed so far.
    pub fn master_keys(&self) -> Vec<String> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .map(|(_, e)| {
                let mk = descendants(e, "masterKey");
                assert_eq!(mk.len(), 1);
                mk[0].child("value").unwrap().text()
            })
            .collect()
    }
}

/// Every descendant element (and `e` itself) with local name `name`.
pub fn descendants<'a>(e: &'a Element, name: &str) -> Vec<&'a Element> {
    let mut out = Vec::new();
    if e.local_name() == name {
        out.push(e);
    }
    for c in e.elements() {
        out.extend(descendants(c, name));
    }
    out
}

/// The `<kid>` text of a stored key element.
pub fn kid_of(e: &Element) -> String {
    let kids = descendants(e, "kid");
    assert_eq!(kids.len(), 1, "one <kid> per key");
    kids[0].text()
}

/// The `<key>` element with id `id`.
pub fn key_element(elements: &[Element], id: Uuid) -> &Element {
    let id = id.to_string();
    elements
        .iter()
        .find(|e| e.is("key") && e.attr("id") == Some(id.as_str()))
        .unwrap()
}

/// How many `<key>` elements are stored.
pub async fn key_count(repo: &dyn XmlRepository) -> usize {
    repo.get_all_elements()
        .await
        .unwrap()
        .iter()
        .filter(|e| e.is("key"))
        .count()
}

/// Requests of one operation.
pub fn requests(emu: &KeyVaultEmulator, op: Operation) -> Vec<LoggedRequest> {
    emu.requests()
        .into_iter()
        .filter(|r| r.operation == op)
        .collect()
}

/// (all unwrap requests including bearer challenges, authorized unwraps that succeeded).
pub fn unwrap_counts(emu: &KeyVaultEmulator) -> (usize, usize) {
    let all = requests(emu, Operation::UnwrapKey);
    let ok = all
        .iter()
        .filter(|r| r.authorized && r.status == 200)
        .count();
    (all.len(), ok)
}

/// Key Vault REST requests (not token requests) logged so far.
pub fn vault_requests(emu: &KeyVaultEmulator) -> usize {
    emu.requests()
        .iter()
        .filter(|r| r.operation.is_key_vault_api())
        .count()
}

/// Captures `tracing` output (INFO and above) of this process into a buffer.
pub fn capture_logs() -> Arc<Mutex<Vec<u8>>> {
    #[derive(Clone)]
    struct Sink(Arc<Mutex<Vec<u8>>>);
    impl Write for Sink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            std::io::stderr().write_all(buf)?;
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let buffer = Arc::new(Mutex::new(Vec::new()));
    let sink = Sink(buffer.clone());
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::INFO)
        .with_ansi(false)
        .with_writer(move || sink.clone())
        .try_init()
        .unwrap();
    buffer
}

/// The captured log text.
pub fn logs(buffer: &Arc<Mutex<Vec<u8>>>) -> String {
    String::from_utf8_lossy(&buffer.lock().unwrap()).into_owned()
}
