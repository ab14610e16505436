//! `DataProtectionProvider`, its builder, the cached key ring and its refresh.
//!
//! The hot path (`protect`, and `unprotect` of a payload whose key is loaded)
//! reads an immutable ring snapshot through an atomic pointer: no I/O, no
//! lock, never waiting on a refresh. Refreshes happen on schedule (24 h less
//! up to 20 % jitter, or the default key's expiry if sooner), right after this
//! process changes keys, and once — coalesced and rate-limited — when a
//! payload names an unknown key. A refresh that fails keeps the previous ring
//! and retries with back-off; it never creates a key.

use std::fmt;
use std::sync::Arc;

use time::{Duration, OffsetDateTime};

use crate::clock::{Clock, SystemClock};
use crate::crypto::{Algorithm, OsRandom, RandomSource};
use crate::encryption::{DecryptorRegistry, XmlDecryptor, XmlEncryptor};
use crate::error::{Error, Result};
use crate::key::KeyRing;
use crate::manager::{KeyEscrowSink, KeyManager};
use crate::policy::{DEFAULT_KEY_LIFETIME, MIN_KEY_LIFETIME};
use crate::protector::DataProtector;
use crate::repository::{XmlRepository, default_repository};
use crate::ring_cache::{RefreshReason, RingCache};
use crate::ring_loader::KeyRingLoader;

/// How many keys [`DataProtectionProvider::decrypt_all_keys`] decrypts at once.
const DECRYPT_ALL_CONCURRENCY: usize = 16;
/// How often, by default, the repository is asked whether the ring changed.
pub(crate) const DEFAULT_CHANGE_CHECK_INTERVAL: std::time::Duration =
    std::time::Duration::from_secs(60);

/// Configures a [`DataProtectionProvider`], in the spirit of `AddDataProtection()`.
///
/// ```no_run
/// # async fn run() -> dataprotection::Result<()> {
/// use std::sync::Arc;
/// use dataprotection::{DataProtectionProvider, repository::FileSystemXmlRepository};
/// let provider = DataProtectionProvider::builder()
///     .application_name("my-app")
///     .repository(Arc::new(FileSystemXmlRepository::new("/var/lib/my-app/keys")))
///     .build()
///     .await?;
/// let protector = provider.create_protector("cookies");
/// let token = protector.protect_str("hello")?;
/// assert_eq!(protector.unprotect_str(&token)?, "hello");
/// # Ok(()) }
/// ```
pub struct DataProtectionProviderBuilder {
    application_name: Option<String>,
    repository: Option<Arc<dyn XmlRepository>>,
    encryptor: Option<Arc<dyn XmlEncryptor>>,
    decryptors: DecryptorRegistry,
    key_lifetime: Duration,
    auto_generate: bool,
    unprotect_only: bool,
    algorithm: Algorithm,
    escrow: Option<Arc<dyn KeyEscrowSink>>,
    clock: Arc<dyn Clock>,
    random: Arc<dyn RandomSource>,
    /// Set by [`DataProtectionProviderBuilder::build_blocking`].
    owned_runtime: Option<Arc<OwnedRuntime>>,
    change_check_interval: Option<std::time::Duration>,
}

/// The Tokio runtime [`DataProtectionProviderBuilder::build_blocking`]
/// creates, kept alive by the provider (its background refreshes run on it).
struct OwnedRuntime(Option<tokio::runtime::Runtime>);

impl Drop for OwnedRuntime {
    fn drop(&mut self) {
        // The last reference may go away on one of the runtime's own worker
        // threads (a background refresh holding the provider), where a
        // blocking shutdown would panic.
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

impl fmt::Debug for DataProtectionProviderBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DataProtectionProviderBuilder")
            .field("application_name", &self.application_name)
            .field(
                "repository",
                &self.repository.as_ref().map(|r| r.describe()),
            )
            .field("encrypted_at_rest", &self.encryptor.is_some())
            .field("key_lifetime", &self.key_lifetime)
            .field("auto_generate", &self.auto_generate)
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

impl Default for DataProtectionProviderBuilder {
    fn default() -> Self {
        DataProtectionProviderBuilder {
            application_name: None,
            repository: None,
            encryptor: None,
            decryptors: DecryptorRegistry::default(),
            key_lifetime: DEFAULT_KEY_LIFETIME,
            auto_generate: true,
            unprotect_only: false,
            algorithm: Algorithm::default(),
            escrow: None,
            clock: Arc::new(SystemClock),
            random: Arc::new(OsRandom),
            owned_runtime: None,
            change_check_interval: Some(DEFAULT_CHANGE_CHECK_INTERVAL),
        }
    }
}

impl DataProtectionProviderBuilder {
    /// The application name: the first purpose of every protector, like
    /// `SetApplicationName`. Apps that share payloads must use the same name.
    pub fn application_name(mut self, name: impl Into<String>) -> Self {
        self.application_name = Some(name.into());
        self
    }

    /// Where keys are stored (default: the zero-configuration location).
    pub fn repository(mut self, repository: Arc<dyn XmlRepository>) -> Self {
        self.repository = Some(repository);
        self
    }

    /// Encrypts new keys at rest.
    pub fn key_encryptor(mut self, encryptor: Arc<dyn XmlEncryptor>) -> Self {
        self.encryptor = Some(encryptor);
        self
    }

    /// Registers a decryptor for a `decryptorType` name.
    pub fn add_decryptor(mut self, type_name: &str, decryptor: Arc<dyn XmlDecryptor>) -> Self {
        self.decryptors.register(type_name, decryptor);
        self
    }

    /// The decryptor registered so far for a `decryptorType` name (lets a
    /// builder extension add to what an earlier call configured).
    pub fn decryptor(&self, type_name: &str) -> Option<Arc<dyn XmlDecryptor>> {
        self.decryptors.get(type_name).cloned()
    }

    /// Lifetime of new keys (default 90 days, at least 7 days).
    pub fn key_lifetime(mut self, lifetime: Duration) -> Self {
        self.key_lifetime = lifetime;
        self
    }

    /// Whether keys are created automatically (default true). Turn it off in
    /// read-only consumers whose keys are rotated by a separate job.
    pub fn auto_generate_keys(mut self, enabled: bool) -> Self {
        self.auto_generate = enabled;
        self
    }

    /// Loads the ring for unprotecting only (default false): no key is ever
    /// created, and a ring without a key usable for new payloads still loads
    /// (protecting then fails with [`Error::NoDefaultKey`]). For read-only
    /// tools, which must neither change the ring nor fail on a payload whose
    /// key is in it.
    pub fn unprotect_only(mut self, enabled: bool) -> Self {
        self.unprotect_only = enabled;
        self
    }

    /// Algorithm for new keys (default AES-256-CBC + HMAC-SHA256).
    pub fn algorithm(mut self, algorithm: Algorithm) -> Self {
        self.algorithm = algorithm;
        self
    }

    /// Receives each new key unencrypted, before it is encrypted at rest.
    pub fn key_escrow(mut self, sink: Arc<dyn KeyEscrowSink>) -> Self {
        self.escrow = Some(sink);
        self
    }

    /// The clock (tests use a manual one).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The random source for keys, key modifiers and IVs (default: the OS CSPRNG).
    pub fn random(mut self, random: Arc<dyn RandomSource>) -> Self {
        self.random = random;
        self
    }

    /// [`DataProtectionProviderBuilder::build`] for programs that are not
    /// async: starts a small Tokio runtime of its own (one worker thread),
    /// which the provider keeps for its background refreshes and key
    /// decryptions, and waits for the ring to load. Use `protect`,
    /// `unprotect` and `unprotect_str` from plain threads afterwards.
    ///
    /// ```no_run
    /// use std::sync::Arc;
    /// use dataprotection::{DataProtectionProvider, repository::FileSystemXmlRepository};
    /// fn main() -> dataprotection::Result<()> {
    ///     let provider = DataProtectionProvider::builder()
    ///         .application_name("my-app")
    ///         .repository(Arc::new(FileSystemXmlRepository::new("/var/lib/my-app/keys")))
    ///         .build_blocking()?;
    ///     let protector = provider.create_protector("cookies");
    ///     let token = protector.protect_str("hello")?;
    ///     assert_eq!(protector.unprotect_str(&token)?, "hello");
    ///     Ok(())
    /// }
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when called inside a Tokio runtime (use
    /// `build().await` there) or when the runtime cannot be started;
    /// otherwise as [`DataProtectionProviderBuilder::build`].
    pub fn build_blocking(mut self) -> Result<DataProtectionProvider> {
        if tokio::runtime::Handle::try_current().is_ok() {
            return Err(Error::InvalidArgument(
                "build_blocking was called inside a Tokio runtime; use build().await there".into(),
            ));
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("dataprotection")
            .enable_all()
            .build()
            .map_err(|e| {
                Error::InvalidArgument(format!(
                    "cannot start a Tokio runtime for the provider: {e}"
                ))
            })?;
        let handle = runtime.handle().clone();
        self.owned_runtime = Some(Arc::new(OwnedRuntime(Some(runtime))));
        handle.block_on(self.build())
    }

    /// How often the repository is asked, in the background, whether the ring
    /// changed (a revocation or a new key written by another instance); a
    /// change reloads the ring at once. Default 60 s; `None` leaves changes to
    /// the scheduled refresh (up to 24 h). The check is cheap: a conditional
    /// GET answered with 304 for a blob, a listing for a directory. Only
    /// repositories that report versions are checked.
    pub fn change_check_interval(mut self, interval: Option<std::time::Duration>) -> Self {
        self.change_check_interval = interval.filter(|i| !i.is_zero());
        self
    }

    /// Builds the provider and loads the key ring (creating the first key if
    /// the ring is empty and generation is enabled). Fails if the ring cannot
    /// be read. Must be called inside a Tokio runtime, which later refreshes
    /// use; programs that are not async call
    /// [`DataProtectionProviderBuilder::build_blocking`] instead.
    pub async fn build(self) -> Result<DataProtectionProvider> {
        if self.key_lifetime < MIN_KEY_LIFETIME {
            return Err(Error::InvalidArgument(format!(
                "the key lifetime must be at least 7 days (got {})",
                self.key_lifetime
            )));
        }
        let repository = self.repository.unwrap_or_else(default_repository);
        let manager = KeyManager {
            repository,
            encryptor: self.encryptor,
            escrow: self.escrow,
            clock: self.clock.clone(),
            random: self.random.clone(),
            algorithm: self.algorithm,
            on_change: None,
        };
        let keep_alive = self
            .owned_runtime
            .map(|r| r as Arc<dyn std::any::Any + Send + Sync>);
        let loader = Arc::new(KeyRingLoader::new(
            manager,
            self.decryptors,
            self.clock.clone(),
            self.random,
            self.key_lifetime,
            self.auto_generate,
            self.unprotect_only,
            keep_alive,
        ));
        let cache = RingCache::new(self.clock, loader.clone());
        cache.refresh(RefreshReason::Initial).await?;
        if let Some(interval) = self.change_check_interval {
            cache.watch_for_changes(interval);
        }
        Ok(DataProtectionProvider {
            cache,
            loader,
            application_name: self
                .application_name
                .filter(|n| !n.is_empty())
                .map(Arc::from),
        })
    }
}

/// The root of the protector hierarchy, holding the cached key ring.
/// Cheap to clone; clones share the ring.
#[derive(Clone)]
pub struct DataProtectionProvider {
    cache: Arc<RingCache>,
    loader: Arc<KeyRingLoader>,
    application_name: Option<Arc<str>>,
}

impl fmt::Debug for DataProtectionProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DataProtectionProvider")
            .field("application_name", &self.application_name)
            .field("repository", &self.loader.manager.repository.describe())
            .field(
                "default_key",
                &self.cache.ring().ok().and_then(|r| r.default_key_id()),
            )
            .field("refresh_at", &self.cache.refresh_at())
            .finish()
    }
}

impl DataProtectionProvider {
    /// A builder with the zero-configuration defaults.
    pub fn builder() -> DataProtectionProviderBuilder {
        DataProtectionProviderBuilder::default()
    }

    /// A protector for `purpose` (after the application name, if any).
    pub fn create_protector(&self, purpose: impl Into<String>) -> DataProtector {
        let mut purposes: Vec<String> = self
            .application_name
            .iter()
            .map(|n| n.to_string())
            .collect();
        purposes.push(purpose.into());
        DataProtector::new(self.cache.clone(), purposes)
    }

    /// A protector for an explicit purpose chain (the application name is not added).
    pub fn create_protector_with_purposes<S: AsRef<str>>(&self, purposes: &[S]) -> DataProtector {
        DataProtector::new(
            self.cache.clone(),
            purposes.iter().map(|p| p.as_ref().to_string()).collect(),
        )
    }

    /// The current key ring snapshot.
    pub fn key_ring(&self) -> Result<Arc<KeyRing>> {
        self.cache.ring()
    }

    /// The key manager; changes made through it reload this provider's ring.
    pub fn key_manager(&self) -> KeyManager {
        let mut manager = self.loader.manager.clone();
        let weak = Arc::downgrade(&self.cache);
        manager.on_change = Some(Arc::new(move || {
            if let Some(cache) = weak.upgrade() {
                cache.invalidate();
            }
        }));
        manager
    }

    /// Reloads the ring now (creating keys if the policy says so). When the
    /// repository reports no change since the ring was read, the keys are not
    /// read again: only the decision (default key, key creation) is made
    /// again, at the current time.
    pub async fn refresh(&self) -> Result<()> {
        self.cache.refresh(RefreshReason::Forced).await
    }

    /// Reloads the ring if its cache period has ended (or a change was made).
    pub async fn refresh_if_due(&self) -> Result<()> {
        if self.cache.clock().now() >= self.cache.refresh_at() {
            self.cache.refresh(RefreshReason::Scheduled).await
        } else {
            Ok(())
        }
    }

    /// When the ring will next be reloaded.
    pub fn next_refresh(&self) -> OffsetDateTime {
        self.cache.refresh_at()
    }

    /// The last refresh error, if the last refresh failed (the previous ring
    /// is kept meanwhile). Its `source` chain is the failure's own.
    pub fn last_refresh_error(&self) -> Option<Arc<Error>> {
        self.cache.last_refresh_error()
    }

    /// Decrypts the master key of every key in the ring now (normally this
    /// happens lazily, when a payload first names the key).
    ///
    /// Up to 16 keys are decrypted at once (a decryptor may limit its own
    /// calls further: Key Vault's allows 4 unwraps in flight by default); the
    /// first error is returned once every started decryption has finished.
    pub async fn decrypt_all_keys(&self) -> Result<()> {
        let ring = self.cache.ring()?;
        let mut pending = tokio::task::JoinSet::new();
        let mut first_error = None;
        let mut record = |joined: std::result::Result<Result<_>, tokio::task::JoinError>| {
            let error = match joined {
                Ok(Ok(_)) => return,
                Ok(Err(e)) => e,
                Err(e) => Error::KeyDecryption {
                    what: "a key of the ring".into(),
                    source: Box::new(e),
                },
            };
            first_error.get_or_insert(error);
        };
        for entry in ring.entries.iter().filter(|e| e.slot.get().is_none()) {
            if pending.len() >= DECRYPT_ALL_CONCURRENCY
                && let Some(joined) = pending.join_next().await
            {
                record(joined);
            }
            let cache = self.cache.clone();
            let entry = entry.clone();
            pending.spawn(async move { cache.ensure_encryptor(&entry).await });
        }
        while let Some(joined) = pending.join_next().await {
            record(joined);
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}
