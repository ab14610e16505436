//! `DataProtectionProvider`, its builder, the cached key ring and its refresh.
//!
//! The hot path (`protect`, and `unprotect` of a payload whose key is loaded)
//! reads an immutable ring snapshot through an atomic pointer: no I/O, no
//! lock, never waiting on a refresh. Refreshes happen on schedule (24 h less
//! up to 20 % jitter, or the default key's expiry if sooner), right after this
//! process changes keys, and once — coalesced and rate-limited — when a
//! payload names an unknown key. A refresh that fails keeps the previous ring
//! and retries with back-off; it never creates a key.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use crate::clock::{Clock, SystemClock};
use crate::crypto::{
    Algorithm, AuthenticatedEncryptor, MIN_MASTER_KEY_LEN, OsRandom, RandomSource,
};
use crate::encryption::{DecryptorRegistry, XmlDecryptor, XmlEncryptor};
use crate::error::{Error, Result};
use crate::key::{DefaultKey, EncryptorSlot, Key, KeyIndex, KeyRing, KeySet, RingEntry};
use crate::manager::{KeyEscrowSink, KeyManager};
use crate::payload::key_id_bytes;
use crate::policy::{self, DEFAULT_KEY_LIFETIME, KeyInfo, MIN_KEY_LIFETIME};
use crate::protector::DataProtector;
use crate::repository::{Version, XmlRepository, default_repository};
use crate::xml::{Element, contains_encrypted_secret, read_descriptor, read_descriptor_algorithm};

/// Minimum time between two refreshes triggered by unknown key ids.
const UNKNOWN_KEY_REFRESH_INTERVAL: Duration = Duration::seconds(30);
/// Back-off after a failed refresh: first retry, then doubling up to the cap.
const REFRESH_BACKOFF_START: Duration = Duration::seconds(15);
const REFRESH_BACKOFF_MAX: Duration = Duration::minutes(10);
/// How many keys [`DataProtectionProvider::decrypt_all_keys`] decrypts at once.
const DECRYPT_ALL_CONCURRENCY: usize = 16;
/// Back-off after a key's master key failed to decrypt (e.g. vault unreachable).
const KEY_DECRYPT_BACKOFF: Duration = Duration::seconds(30);
/// How often, by default, the repository is asked whether the ring changed.
pub const DEFAULT_CHANGE_CHECK_INTERVAL: std::time::Duration = std::time::Duration::from_secs(60);

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
        let now = self.clock.now();
        let inner = Arc::new(Inner {
            application_name: self.application_name.filter(|n| !n.is_empty()),
            key_lifetime: self.key_lifetime,
            auto_generate: self.auto_generate && !self.unprotect_only,
            unprotect_only: self.unprotect_only,
            manager,
            decryptors: self.decryptors,
            clock: self.clock,
            random: self.random,
            state: ArcSwap::new(RingState::new(None, now, None)),
            refresh_lock: tokio::sync::Mutex::new(RefreshBook::default()),
            refreshes: AtomicU64::new(0),
            background_refresh: AtomicBool::new(false),
            runtime: tokio::runtime::Handle::try_current().ok(),
            slots: Mutex::new(HashMap::new()),
            key_errors: Mutex::new(HashMap::new()),
            decrypting: Mutex::new(HashSet::new()),
            _owned_runtime: self.owned_runtime,
        });
        inner.refresh(RefreshReason::Initial).await?;
        if let (Some(interval), Some(runtime)) = (self.change_check_interval, &inner.runtime) {
            runtime.spawn(watch_for_changes(Arc::downgrade(&inner), interval));
        }
        Ok(DataProtectionProvider { inner })
    }
}

/// The root of the protector hierarchy, holding the cached key ring.
/// Cheap to clone; clones share the ring.
#[derive(Clone)]
pub struct DataProtectionProvider {
    pub(crate) inner: Arc<Inner>,
}

impl fmt::Debug for DataProtectionProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.inner.state.load();
        f.debug_struct("DataProtectionProvider")
            .field("application_name", &self.inner.application_name)
            .field("repository", &self.inner.manager.repository.describe())
            .field(
                "default_key",
                &state.ring.as_ref().and_then(|r| r.default_key_id()),
            )
            .field("refresh_at", &state.refresh_at)
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
        let mut purposes: Vec<String> = self.inner.application_name.iter().cloned().collect();
        purposes.push(purpose.into());
        DataProtector::new(self.inner.clone(), purposes)
    }

    /// A protector for an explicit purpose chain (the application name is not added).
    pub fn create_protector_with_purposes<S: AsRef<str>>(&self, purposes: &[S]) -> DataProtector {
        DataProtector::new(
            self.inner.clone(),
            purposes.iter().map(|p| p.as_ref().to_string()).collect(),
        )
    }

    /// The current key ring snapshot.
    pub fn key_ring(&self) -> Result<Arc<KeyRing>> {
        self.inner.ring()
    }

    /// The key manager; changes made through it reload this provider's ring.
    pub fn key_manager(&self) -> KeyManager {
        let mut manager = self.inner.manager.clone();
        let weak = Arc::downgrade(&self.inner);
        manager.on_change = Some(Arc::new(move || {
            if let Some(inner) = weak.upgrade() {
                inner.invalidate();
            }
        }));
        manager
    }

    /// Reloads the ring now (creating keys if the policy says so).
    pub async fn refresh(&self) -> Result<()> {
        self.inner.refresh(RefreshReason::Forced).await
    }

    /// Reloads the ring if its cache period has ended (or a change was made).
    pub async fn refresh_if_due(&self) -> Result<()> {
        if self.inner.clock.now() >= self.inner.state.load().refresh_at {
            self.inner.refresh(RefreshReason::Scheduled).await
        } else {
            Ok(())
        }
    }

    /// When the ring will next be reloaded.
    pub fn next_refresh(&self) -> OffsetDateTime {
        self.inner.state.load().refresh_at
    }

    /// The last refresh error, if the last refresh failed.
    pub fn last_refresh_error(&self) -> Option<String> {
        self.inner
            .refresh_lock
            .try_lock()
            .ok()
            .and_then(|b| b.last_error.clone())
    }

    /// Decrypts the master key of every key in the ring now (normally this
    /// happens lazily, when a payload first names the key).
    ///
    /// Up to 16 keys are decrypted at once (a decryptor may limit its own
    /// calls further: Key Vault's allows 4 unwraps in flight by default); the
    /// first error is returned once every started decryption has finished.
    pub async fn decrypt_all_keys(&self) -> Result<()> {
        let ring = self.inner.ring()?;
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
            let inner = self.inner.clone();
            let (key, slot) = (entry.key.clone(), entry.slot.clone());
            pending.spawn(async move { inner.ensure_encryptor(&key, &slot).await });
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

/// A loaded ring, when to refresh it, and the repository version it was read at.
type Loaded = (KeyRing, OffsetDateTime, Option<Version>);

/// The boxed future of [`Inner::load`] (boxed because it recurses once).
type LoadFuture<'a> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<Loaded>> + Send + 'a>>;

pub(crate) struct RingState {
    pub ring: Option<Arc<KeyRing>>,
    pub refresh_at: OffsetDateTime,
    /// `refresh_at` as Unix nanoseconds, for the hot-path check.
    refresh_at_nanos: i128,
    /// The repository version the ring was read at, for the change check.
    version: Option<Version>,
}

impl RingState {
    fn new(
        ring: Option<Arc<KeyRing>>,
        refresh_at: OffsetDateTime,
        version: Option<Version>,
    ) -> Arc<Self> {
        Arc::new(RingState {
            ring,
            refresh_at,
            refresh_at_nanos: refresh_at.unix_timestamp_nanos(),
            version,
        })
    }
}

/// Asks the repository every `interval` whether the ring changed, and reloads
/// it when it did; stops when the provider is dropped.
async fn watch_for_changes(inner: std::sync::Weak<Inner>, interval: std::time::Duration) {
    loop {
        tokio::time::sleep(interval).await;
        let Some(inner) = inner.upgrade() else { return };
        // A panicking repository must not end the watch.
        if CatchUnwind(Box::pin(inner.check_for_change()))
            .await
            .is_err()
        {
            tracing::warn!("the key ring change check panicked; checking again later");
        }
    }
}

/// Resolves to `Err` instead of unwinding when the inner future panics
/// (what `futures::FutureExt::catch_unwind` does; written here to keep the
/// core crate's dependencies to what it already has).
struct CatchUnwind<F: ?Sized>(std::pin::Pin<Box<F>>);

impl<F: std::future::Future + ?Sized> std::future::Future for CatchUnwind<F> {
    type Output = std::result::Result<F::Output, Box<dyn std::any::Any + Send>>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        let inner = self.0.as_mut();
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| inner.poll(cx))) {
            Ok(std::task::Poll::Pending) => std::task::Poll::Pending,
            Ok(std::task::Poll::Ready(output)) => std::task::Poll::Ready(Ok(output)),
            Err(panic) => std::task::Poll::Ready(Err(panic)),
        }
    }
}

/// Clears the "background refresh in progress" flag when dropped, also when
/// the refresh panicked.
struct BackgroundRefresh<'a>(&'a AtomicBool);

impl Drop for BackgroundRefresh<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

#[derive(Default)]
pub(crate) struct RefreshBook {
    failures: u32,
    last_error: Option<String>,
    last_unknown_key_refresh: Option<OffsetDateTime>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RefreshReason {
    Initial,
    Scheduled,
    Forced,
    UnknownKey,
    /// The repository reported a change.
    Changed,
}

pub(crate) struct Inner {
    pub application_name: Option<String>,
    key_lifetime: Duration,
    auto_generate: bool,
    unprotect_only: bool,
    pub manager: KeyManager,
    decryptors: DecryptorRegistry,
    pub clock: Arc<dyn Clock>,
    random: Arc<dyn RandomSource>,
    pub state: ArcSwap<RingState>,
    refresh_lock: tokio::sync::Mutex<RefreshBook>,
    /// Completed refresh attempts; lets waiters tell that someone else refreshed.
    refreshes: AtomicU64,
    background_refresh: AtomicBool,
    runtime: Option<tokio::runtime::Handle>,
    /// Encryptor slots by key id, shared by every ring snapshot.
    slots: Mutex<HashMap<Uuid, EncryptorSlot>>,
    /// Keys that failed to decrypt: permanent reason, or a retry time.
    key_errors: Mutex<HashMap<Uuid, KeyError>>,
    /// Keys being decrypted in the background.
    decrypting: Mutex<HashSet<Uuid>>,
    /// The runtime `runtime` points into, when the provider owns it.
    _owned_runtime: Option<Arc<OwnedRuntime>>,
}

#[derive(Clone)]
enum KeyError {
    Permanent(String),
    Transient {
        retry_at: OffsetDateTime,
        message: String,
    },
}

/// Whether a key may protect new payloads: a master key shorter than 128
/// bits (planted or damaged) never does, though it still unprotects.
fn may_protect(id: Uuid, encryptor: &Arc<dyn AuthenticatedEncryptor>) -> bool {
    match encryptor.master_key_len() {
        Some(len) if len < MIN_MASTER_KEY_LEN => {
            tracing::warn!(
                key_id = %id,
                bits = len * 8,
                "key has a master key shorter than 128 bits: it is never used for new payloads"
            );
            false
        }
        _ => true,
    }
}

/// Errors that say the key itself is unusable, as opposed to a failure to
/// reach what decrypts it (which must never make a key look absent).
fn is_permanent(e: &Error) -> bool {
    matches!(
        e,
        Error::UnknownDecryptor { .. }
            | Error::MalformedXml { .. }
            | Error::UnsupportedAlgorithm(_)
    )
}

impl Inner {
    pub fn ring(&self) -> Result<Arc<KeyRing>> {
        self.state
            .load()
            .ring
            .clone()
            .ok_or_else(|| Error::KeyRingUnavailable {
                reason: "the key ring has not been loaded".into(),
            })
    }

    /// Marks the ring stale and reloads it in the background.
    fn invalidate(&self) {
        let current = self.state.load_full();
        self.state.store(RingState::new(
            current.ring.clone(),
            OffsetDateTime::UNIX_EPOCH,
            current.version.clone(),
        ));
    }

    /// Asks the repository whether the ring changed since it was loaded, and
    /// reloads it if so.
    async fn check_for_change(&self) {
        let Some(version) = self.state.load().version.clone() else {
            return;
        };
        match self.manager.repository.changed_since(&version).await {
            Ok(false) => {}
            Ok(true) => {
                tracing::debug!("the key ring changed in the repository; reloading it");
                if let Err(e) = self.refresh(RefreshReason::Changed).await {
                    tracing::debug!(error = %e, "reloading the changed key ring failed");
                }
            }
            Err(e) => tracing::debug!(error = %e, "the key ring change check failed"),
        }
    }

    /// Hot-path check: start a background refresh if one is due. Never waits.
    #[inline]
    pub fn maybe_schedule_refresh(self: &Arc<Self>, state: &RingState) {
        if self.clock.has_reached(state.refresh_at_nanos) {
            self.schedule_refresh(RefreshReason::Scheduled);
        }
    }

    pub fn schedule_refresh(self: &Arc<Self>, reason: RefreshReason) {
        let Some(runtime) = &self.runtime else { return };
        if self.background_refresh.swap(true, Ordering::AcqRel) {
            return;
        }
        let inner = self.clone();
        runtime.spawn(async move {
            // Released however the refresh ends, a panic included.
            let _in_progress = BackgroundRefresh(&inner.background_refresh);
            let result = match reason {
                RefreshReason::UnknownKey => inner.refresh_for_unknown_key().await.map(|_| ()),
                _ => {
                    if inner.clock.now() >= inner.state.load().refresh_at {
                        inner.refresh(reason).await
                    } else {
                        Ok(())
                    }
                }
            };
            if let Err(e) = result {
                tracing::debug!(error = %e, "background key ring refresh failed");
            }
        });
    }

    /// Decrypts a key in the background (sync unprotect of a key not yet decrypted).
    pub fn schedule_key_decryption(self: &Arc<Self>, entry: &RingEntry) {
        let Some(runtime) = &self.runtime else { return };
        let id = entry.key.id();
        // One background attempt per key at a time, however many callers ask.
        if !self
            .decrypting
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id)
        {
            return;
        }
        let inner = self.clone();
        let key = entry.key.clone();
        let slot = entry.slot.clone();
        runtime.spawn(async move {
            if let Err(e) = inner.ensure_encryptor(&key, &slot).await {
                tracing::debug!(key_id = %key.id(), error = %e, "background key decryption failed");
            }
            inner
                .decrypting
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&key.id());
        });
    }

    /// Refreshes once for an unknown key id, coalesced with concurrent callers
    /// and at most once per interval. Returns whether a refresh happened.
    pub async fn refresh_for_unknown_key(&self) -> Result<bool> {
        let seen = self.refreshes.load(Ordering::Acquire);
        let mut book = self.refresh_lock.lock().await;
        if self.refreshes.load(Ordering::Acquire) != seen {
            return Ok(true); // someone refreshed while we waited
        }
        let now = self.clock.now();
        if book
            .last_unknown_key_refresh
            .is_some_and(|t| now < t.saturating_add(UNKNOWN_KEY_REFRESH_INTERVAL))
        {
            return Ok(false);
        }
        book.last_unknown_key_refresh = Some(now);
        self.refresh_locked(&mut book, RefreshReason::UnknownKey)
            .await?;
        Ok(true)
    }

    pub async fn refresh(&self, reason: RefreshReason) -> Result<()> {
        let seen = self.refreshes.load(Ordering::Acquire);
        let mut book = self.refresh_lock.lock().await;
        if reason == RefreshReason::Scheduled && self.refreshes.load(Ordering::Acquire) != seen {
            // Coalesced: another caller refreshed while we waited.
            return match &book.last_error {
                None => Ok(()),
                Some(e) => Err(Error::KeyRingUnavailable { reason: e.clone() }),
            };
        }
        self.refresh_locked(&mut book, reason).await
    }

    async fn refresh_locked(&self, book: &mut RefreshBook, reason: RefreshReason) -> Result<()> {
        let now = self.clock.now();
        // A panic in a repository or decryptor fails this refresh like any
        // error (back-off, previous ring kept) instead of unwinding through
        // the refresh machinery.
        let result = match CatchUnwind(self.load(now, true, None)).await {
            Ok(result) => result,
            Err(_) => Err(Error::Repository {
                message: format!(
                    "loading the key ring from {} panicked",
                    self.manager.repository.describe()
                ),
                source: None,
            }),
        };
        self.refreshes.fetch_add(1, Ordering::AcqRel);
        match result {
            Ok((ring, refresh_at, version)) => {
                tracing::debug!(
                    ?reason,
                    default_key = ?ring.default_key_id(),
                    keys = ring.entries.len(),
                    next_refresh = %refresh_at,
                    "key ring loaded"
                );
                book.failures = 0;
                book.last_error = None;
                self.state
                    .store(RingState::new(Some(Arc::new(ring)), refresh_at, version));
                Ok(())
            }
            Err(e) => {
                book.failures += 1;
                book.last_error = Some(e.to_string());
                let shift = (book.failures - 1).min(10);
                let backoff = (REFRESH_BACKOFF_START * (1i32 << shift)).min(REFRESH_BACKOFF_MAX);
                let current = self.state.load_full();
                tracing::warn!(
                    ?reason,
                    error = %e,
                    keeping_previous_ring = current.ring.is_some(),
                    retry_in = %backoff,
                    "key ring refresh failed; no key was created"
                );
                self.state.store(RingState::new(
                    current.ring.clone(),
                    now.saturating_add(backoff),
                    current.version.clone(),
                ));
                Err(e)
            }
        }
    }

    fn slot(&self, id: Uuid) -> EncryptorSlot {
        self.slots
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(id)
            .or_default()
            .clone()
    }

    fn key_error(&self, id: Uuid) -> Option<KeyError> {
        self.key_errors
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&id)
            .cloned()
    }

    fn set_key_error(&self, id: Uuid, error: KeyError) {
        self.key_errors
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, error);
    }

    async fn decrypt_key(&self, key: &Key) -> Result<Arc<dyn AuthenticatedEncryptor>> {
        let descriptor = &key.xml().descriptor;
        let decrypted;
        let descriptor = if contains_encrypted_secret(descriptor) {
            decrypted = self.decryptors.decrypt_element(descriptor).await?;
            &decrypted
        } else {
            descriptor
        };
        let d = read_descriptor(descriptor)?;
        Ok(d.algorithm
            .encryptor_with_random(&d.master_key, self.random.clone()))
    }

    /// The key's encryptor, decrypting its master key at most once per
    /// process (concurrent callers share one attempt). `Ok(None)`: the key is
    /// permanently unusable. `Err`: decryption could not be attempted or
    /// failed for a reason that may pass (the caller must not treat the key
    /// as absent).
    pub async fn ensure_encryptor(
        &self,
        key: &Key,
        slot: &EncryptorSlot,
    ) -> Result<Option<Arc<dyn AuthenticatedEncryptor>>> {
        if let Some(e) = slot.get() {
            return Ok(Some(e.clone()));
        }
        let id = key.id();
        match self.key_error(id) {
            Some(KeyError::Permanent(_)) => return Ok(None),
            Some(KeyError::Transient { retry_at, message }) if self.clock.now() < retry_at => {
                return Err(Error::KeyDecryption {
                    what: format!("key {id}"),
                    source: format!(
                        "{message} (retrying after {})",
                        crate::xml::format_date(retry_at)
                    )
                    .into(),
                });
            }
            _ => {}
        }
        match slot.get_or_try_init(|| self.decrypt_key(key)).await {
            Ok(e) => Ok(Some(e.clone())),
            Err(e) if is_permanent(&e) => {
                tracing::warn!(key_id = %id, error = %e, "key is unusable");
                self.set_key_error(id, KeyError::Permanent(e.to_string()));
                Ok(None)
            }
            Err(e) => {
                tracing::warn!(key_id = %id, error = %e, "could not decrypt key; will retry later");
                self.set_key_error(
                    id,
                    KeyError::Transient {
                        retry_at: self.clock.now().saturating_add(KEY_DECRYPT_BACKOFF),
                        message: e.to_string(),
                    },
                );
                // Decryptors describe the material ("a key encrypted with Azure Key
                // Vault"); only the provider knows which key it was.
                Err(match e {
                    Error::KeyDecryption { what, source } => Error::KeyDecryption {
                        what: format!("key {id} ({what})"),
                        source,
                    },
                    other => other,
                })
            }
        }
    }

    /// Reads the repository and builds a ring at `now`, creating a key if the
    /// policy requires it (`allow_create`), then reading again.
    fn load<'a>(
        &'a self,
        now: OffsetDateTime,
        allow_create: bool,
        just_created: Option<Uuid>,
    ) -> LoadFuture<'a> {
        Box::pin(async move {
            let (elements, version) = self.manager.repository.get_all_elements_versioned().await?;
            let set = KeySet::from_owned_elements(elements)?;
            let infos = set.infos();
            let slots: HashMap<Uuid, EncryptorSlot> = set
                .keys
                .iter()
                .map(|k| (k.id(), self.slot(k.id())))
                .collect();

            // Keys stored without encryption at rest are cheap to load: do them all,
            // so every payload they protected can be unprotected without waiting.
            for key in &set.keys {
                if !key.is_encrypted_at_rest() {
                    let _ = self.ensure_encryptor(key, &slots[&key.id()]).await;
                }
            }

            let mut usable: HashMap<Uuid, bool> = HashMap::new();
            let preferred = policy::preferred_key(&infos, now).cloned();
            if let Some(p) = &preferred
                && !p.revoked
                && !p.is_expired(now)
            {
                let key = set.get(p.id).ok_or_else(|| Error::NoDefaultKey {
                    reason: "inconsistent key set".into(),
                })?;
                let ok = self
                    .ensure_encryptor(key, &slots[&p.id])
                    .await?
                    .is_some_and(|e| may_protect(p.id, &e));
                usable.insert(p.id, ok);
            }
            let exclude = preferred.as_ref().map(|p| p.id);
            let replacements = policy::recent_replacements(&infos, now, exclude);
            self.first_usable(&set, &slots, &replacements, &mut usable)
                .await?;
            let checked = |k: &KeyInfo| usable.get(&k.id).copied().unwrap_or(false);
            let resolution = policy::resolve_default_key(&infos, now, &checked);
            let fallback = if resolution.default_key.is_none() {
                let candidates = policy::fallback_candidates(&infos, now, exclude);
                self.first_usable(&set, &slots, &candidates, &mut usable)
                    .await?
            } else {
                None
            };
            let unusable: HashSet<Uuid> = usable
                .iter()
                .filter(|(_, ok)| !**ok)
                .map(|(id, _)| *id)
                .collect();

            let mut chosen = resolution.default_key;
            if just_created.is_some() {
                // After creating a key, use whatever is usable rather than create again.
                chosen = chosen.or(fallback).or(just_created);
            } else if let Some(plan) = policy::plan_new_key(&infos, now, self.key_lifetime, &|k| {
                !unusable.contains(&k.id)
            }) {
                if allow_create && self.auto_generate {
                    // A mass revocation dated in the future (clock skew, or a
                    // mistake) would revoke any key created now: creating one
                    // would only add an unusable key at every refresh.
                    let now_revoking = set.latest_mass_revocation().filter(|date| *date > now);
                    if let Some(date) = now_revoking {
                        return Err(Error::NoDefaultKey {
                            reason: format!(
                                "a revocation of all keys created before {} is dated in the future, \
                                 so a key created now would be revoked at once; check the clocks \
                                 (no key was created)",
                                crate::xml::format_date(date)
                            ),
                        });
                    }
                    let created = self
                        .create_key_if_still_needed(now, plan, &unusable)
                        .await?;
                    return self.load(now, false, created).await;
                }
                if !self.auto_generate {
                    tracing::info!("a new key is due but automatic key generation is disabled");
                }
                if chosen.is_none() {
                    chosen = fallback;
                    if let Some(f) = fallback {
                        tracing::warn!(key_id = %f, "no default key: using a fallback key");
                    }
                }
            }

            let default = match chosen {
                Some(id) => {
                    let key = set.get(id).ok_or_else(|| Error::NoDefaultKey {
                        reason: format!("key {id} is not in the repository"),
                    })?;
                    if key.is_revoked() {
                        return Err(Error::NoDefaultKey {
                            reason: format!(
                                "the default key {id} is revoked (a revocation may be dated in the future)"
                            ),
                        });
                    }
                    let encryptor =
                        self.ensure_encryptor(key, &slots[&id])
                            .await?
                            .ok_or_else(|| Error::NoDefaultKey {
                                reason: format!("the default key {id} cannot be used"),
                            })?;
                    Some(DefaultKey {
                        id,
                        id_bytes: key_id_bytes(&id),
                        encryptor,
                    })
                }
                None => None,
            };
            if default.is_none() && !self.unprotect_only {
                return Err(Error::NoDefaultKey {
                    reason: if self.auto_generate {
                        "the key ring has no usable key".into()
                    } else {
                        "the key ring has no usable key and automatic key generation is disabled"
                            .into()
                    },
                });
            }

            let jitter: f64 = rand::random();
            let next = now.saturating_add(policy::jittered_refresh_period(jitter));
            let default_expiration = default
                .as_ref()
                .and_then(|d| set.get(d.id))
                .map(Key::expiration_date)
                .unwrap_or(next);
            let refresh_at = if default_expiration <= now {
                next
            } else {
                next.min(default_expiration)
            };

            let errors = self
                .key_errors
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone();
            let mut entries = Vec::with_capacity(set.keys.len());
            let mut index = Vec::with_capacity(set.keys.len());
            for key in set.keys {
                let id = key.id();
                let unusable = match errors.get(&id) {
                    Some(KeyError::Permanent(m)) => Some(m.clone()),
                    Some(KeyError::Transient { message, .. }) => Some(message.clone()),
                    None => None,
                };
                let algorithm = read_descriptor_algorithm(&key.xml().descriptor)
                    .ok()
                    .map(|(_, a)| a);
                index.push((key_id_bytes(&id), entries.len()));
                entries.push(RingEntry {
                    slot: slots[&id].clone(),
                    key,
                    unusable,
                    algorithm,
                });
            }
            let ring = KeyRing {
                entries,
                index: KeyIndex::new(index),
                default,
                problems: set.problems,
                loaded_at: now,
            };
            Ok((ring, refresh_at, version))
        })
    }

    /// Checks `candidates` in order (recording each in `usable`) and returns
    /// the first whose encryptor can be created.
    async fn first_usable(
        &self,
        set: &KeySet,
        slots: &HashMap<Uuid, EncryptorSlot>,
        candidates: &[&KeyInfo],
        usable: &mut HashMap<Uuid, bool>,
    ) -> Result<Option<Uuid>> {
        for candidate in candidates {
            if let Some(&known) = usable.get(&candidate.id) {
                if known {
                    return Ok(Some(candidate.id));
                }
                continue;
            }
            let (Some(key), Some(slot)) = (set.get(candidate.id), slots.get(&candidate.id)) else {
                continue;
            };
            let ok = self
                .ensure_encryptor(key, slot)
                .await?
                .is_some_and(|e| may_protect(candidate.id, &e));
            usable.insert(candidate.id, ok);
            if ok {
                return Ok(Some(candidate.id));
            }
        }
        Ok(None)
    }

    /// Writes a new key unless, judged on what is stored at the moment of
    /// writing, it is no longer needed (another instance got there first).
    async fn create_key_if_still_needed(
        &self,
        now: OffsetDateTime,
        plan: policy::NewKeyPlan,
        unusable: &HashSet<Uuid>,
    ) -> Result<Option<Uuid>> {
        let (xml, element) = self
            .manager
            .new_key_element(plan.activation_date, plan.expiration_date)
            .await?;
        let lifetime = self.key_lifetime;
        let unusable = unusable.clone();
        let still_needed = move |elements: &[Element]| -> bool {
            match KeySet::from_elements(elements) {
                Ok(set) => policy::plan_new_key(&set.infos(), now, lifetime, &|k| {
                    !unusable.contains(&k.id)
                })
                .is_some(),
                // If the stored ring cannot be read, do not add to it.
                Err(_) => false,
            }
        };
        let stored = self
            .manager
            .repository
            .store_element_if(&element, &xml.friendly_name(), &still_needed)
            .await?;
        if stored {
            tracing::info!(
                key_id = %xml.id,
                activation = %crate::xml::format_date(plan.activation_date),
                expiration = %crate::xml::format_date(plan.expiration_date),
                "created a new key"
            );
            self.manager.warn_if_stored_unencrypted(xml.id);
            Ok(Some(xml.id))
        } else {
            tracing::info!("another instance created the needed key first; not adding one");
            Ok(None)
        }
    }
}
