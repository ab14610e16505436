//! The cached key ring: the current snapshot, when to refresh it, and the
//! hooks that refresh it or decrypt a key in the background.
//!
//! This is all a protector depends on. How a ring is read, decided and built
//! is the [`RingLoader`]'s business (the provider's); the cache only decides
//! *when*: on schedule, when a payload names an unknown key (coalesced and
//! rate-limited), when the repository reports a change, with back-off after a
//! failure. As in rustls' `TicketRotator`, the rotation state sits apart from
//! what it rotates, and the hot path reads it without a lock.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

use arc_swap::{ArcSwap, Guard};
use async_trait::async_trait;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use crate::clock::Clock;
use crate::crypto::AuthenticatedEncryptor;
use crate::error::{Error, Result};
use crate::key::{KeyRing, RingEntry};
use crate::repository::Version;

/// Minimum time between two refreshes triggered by unknown key ids.
const UNKNOWN_KEY_REFRESH_INTERVAL: Duration = Duration::seconds(30);
/// Back-off after a failed refresh: first retry, then doubling up to the cap.
const REFRESH_BACKOFF_START: Duration = Duration::seconds(15);
const REFRESH_BACKOFF_MAX: Duration = Duration::minutes(10);

/// A ring as loaded, when to refresh it, and the repository version it was
/// read at.
pub(crate) struct Loaded {
    pub ring: KeyRing,
    pub refresh_at: OffsetDateTime,
    pub version: Option<Version>,
}

/// Reads, decides and builds rings, and makes keys' encryptors: what the
/// cache calls to refresh. Implemented by the provider.
#[async_trait]
pub(crate) trait RingLoader: Send + Sync {
    /// Loads a ring at `now`. `current` is the snapshot being replaced;
    /// when `reuse_unchanged` is set and the repository reports no change
    /// since `current` was read, the loader may decide again on its keys
    /// instead of reading them.
    async fn load(
        &self,
        now: OffsetDateTime,
        current: &RingState,
        reuse_unchanged: bool,
    ) -> Result<Loaded>;

    /// Whether the stored ring changed since `version`.
    async fn changed_since(&self, version: &Version) -> Result<bool>;

    /// The entry's encryptor, decrypting its master key if needed (at most
    /// once per process). `Ok(None)`: the key is permanently unusable.
    async fn ensure_encryptor(
        &self,
        entry: &RingEntry,
    ) -> Result<Option<Arc<dyn AuthenticatedEncryptor>>>;

    /// The entry's encryptor if it can be had without waiting: made already,
    /// or made now when making it needs no I/O (a key stored unencrypted).
    /// `None`: it needs [`RingLoader::ensure_encryptor`].
    fn encryptor_now(&self, entry: &RingEntry) -> Option<Result<Arc<dyn AuthenticatedEncryptor>>>;

    /// Where the ring comes from, for logs.
    fn describe(&self) -> String;
}

/// A ring snapshot and when to replace it.
pub(crate) struct RingState {
    pub ring: Option<Arc<KeyRing>>,
    pub refresh_at: OffsetDateTime,
    /// `refresh_at` as Unix nanoseconds, for the hot-path check.
    refresh_at_nanos: i128,
    /// The repository version the ring was read at, for the change check.
    pub version: Option<Version>,
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

    /// The ring, or why there is none.
    #[inline]
    pub fn ring(&self) -> Result<&Arc<KeyRing>> {
        self.ring.as_ref().ok_or_else(|| Error::KeyRingUnavailable {
            reason: "the key ring has not been loaded".into(),
            source: None,
        })
    }
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

#[derive(Default)]
struct RefreshBook {
    failures: u32,
    last_error: Option<Arc<Error>>,
    last_unknown_key_refresh: Option<OffsetDateTime>,
}

/// The cached ring and its refresh schedule.
pub(crate) struct RingCache {
    state: ArcSwap<RingState>,
    clock: Arc<dyn Clock>,
    loader: Arc<dyn RingLoader>,
    /// Where background refreshes and decryptions run (none outside Tokio).
    runtime: Option<tokio::runtime::Handle>,
    refresh_lock: tokio::sync::Mutex<RefreshBook>,
    /// Completed refresh attempts; lets waiters tell that someone else refreshed.
    refreshes: AtomicU64,
    background_refresh: AtomicBool,
    /// Keys being decrypted in the background.
    decrypting: Mutex<HashSet<Uuid>>,
}

impl RingCache {
    /// An empty cache; [`RingCache::refresh`] loads the first ring.
    pub fn new(clock: Arc<dyn Clock>, loader: Arc<dyn RingLoader>) -> Arc<Self> {
        let now = clock.now();
        Arc::new(RingCache {
            state: ArcSwap::new(RingState::new(None, now, None)),
            clock,
            loader,
            runtime: tokio::runtime::Handle::try_current().ok(),
            refresh_lock: tokio::sync::Mutex::new(RefreshBook::default()),
            refreshes: AtomicU64::new(0),
            background_refresh: AtomicBool::new(false),
            decrypting: Mutex::new(HashSet::new()),
        })
    }

    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// The current snapshot, starting a background refresh if one is due.
    /// The hot path: one atomic load and one clock check, no lock, no I/O.
    #[inline]
    pub fn snapshot(self: &Arc<Self>) -> Guard<Arc<RingState>> {
        let state = self.state.load();
        if self.clock.has_reached(state.refresh_at_nanos) {
            self.schedule_refresh(RefreshReason::Scheduled);
        }
        state
    }

    /// The current ring, without scheduling anything.
    pub fn ring(&self) -> Result<Arc<KeyRing>> {
        self.state.load().ring().cloned()
    }

    /// When the ring will next be reloaded.
    pub fn refresh_at(&self) -> OffsetDateTime {
        self.state.load().refresh_at
    }

    /// The last refresh error, if the last refresh failed (`None` while a
    /// refresh is running).
    pub fn last_refresh_error(&self) -> Option<Arc<Error>> {
        self.refresh_lock
            .try_lock()
            .ok()
            .and_then(|book| book.last_error.clone())
    }

    /// Marks the ring stale, so the next use reloads it in the background.
    pub fn invalidate(&self) {
        let current = self.state.load_full();
        self.state.store(RingState::new(
            current.ring.clone(),
            OffsetDateTime::UNIX_EPOCH,
            current.version.clone(),
        ));
    }

    /// The entry's encryptor, waiting for its decryption if needed.
    pub async fn ensure_encryptor(
        &self,
        entry: &RingEntry,
    ) -> Result<Option<Arc<dyn AuthenticatedEncryptor>>> {
        self.loader.ensure_encryptor(entry).await
    }

    /// The entry's encryptor if it can be had without I/O.
    pub fn encryptor_now(
        &self,
        entry: &RingEntry,
    ) -> Option<Result<Arc<dyn AuthenticatedEncryptor>>> {
        self.loader.encryptor_now(entry)
    }

    /// Starts a background refresh unless one is running. Never waits.
    pub fn schedule_refresh(self: &Arc<Self>, reason: RefreshReason) {
        let Some(runtime) = &self.runtime else { return };
        if self.background_refresh.swap(true, Ordering::AcqRel) {
            return;
        }
        let cache = self.clone();
        runtime.spawn(async move {
            // Released however the refresh ends, a panic included.
            let _in_progress = BackgroundRefresh(&cache.background_refresh);
            let result = match reason {
                RefreshReason::UnknownKey => cache.refresh_for_unknown_key().await.map(|_| ()),
                _ => {
                    if cache.clock.now() >= cache.state.load().refresh_at {
                        cache.refresh(reason).await
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

    /// Decrypts a key in the background (a synchronous unprotect named a key
    /// whose master key is still encrypted), once at a time per key.
    pub fn schedule_key_decryption(self: &Arc<Self>, entry: &RingEntry) {
        let Some(runtime) = &self.runtime else { return };
        let id = entry.key.id();
        if !self
            .decrypting
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id)
        {
            return;
        }
        let cache = self.clone();
        let entry = entry.clone();
        runtime.spawn(async move {
            if let Err(e) = cache.loader.ensure_encryptor(&entry).await {
                tracing::debug!(key_id = %id, error = %e, "background key decryption failed");
            }
            cache
                .decrypting
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&id);
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
                Some(e) => Err(Error::shared_copy(e)),
            };
        }
        self.refresh_locked(&mut book, reason).await
    }

    async fn refresh_locked(&self, book: &mut RefreshBook, reason: RefreshReason) -> Result<()> {
        let now = self.clock.now();
        let current = self.state.load_full();
        // A ring read after a reported change, or for the first time, is read
        // whole; otherwise the loader may find it unchanged.
        let reuse_unchanged = !matches!(reason, RefreshReason::Initial | RefreshReason::Changed);
        // A panic in a repository or decryptor fails this refresh like any
        // error (back-off, previous ring kept) instead of unwinding through
        // the refresh machinery.
        let result = match CatchUnwind(self.loader.load(now, &current, reuse_unchanged)).await {
            Ok(result) => result,
            Err(_) => Err(Error::Repository {
                message: format!(
                    "loading the key ring from {} panicked",
                    self.loader.describe()
                ),
                source: None,
            }),
        };
        self.refreshes.fetch_add(1, Ordering::AcqRel);
        match result {
            Ok(loaded) => {
                tracing::debug!(
                    ?reason,
                    default_key = ?loaded.ring.default_key_id(),
                    keys = loaded.ring.entries.len(),
                    next_refresh = %loaded.refresh_at,
                    "key ring loaded"
                );
                book.failures = 0;
                book.last_error = None;
                self.state.store(RingState::new(
                    Some(Arc::new(loaded.ring)),
                    loaded.refresh_at,
                    loaded.version,
                ));
                Ok(())
            }
            Err(e) => {
                book.failures += 1;
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
                let e = Arc::new(e);
                book.last_error = Some(e.clone());
                Err(Error::shared_copy(&e))
            }
        }
    }

    /// Asks the repository whether the ring changed since it was loaded, and
    /// reloads it if so.
    async fn check_for_change(&self) {
        let Some(version) = self.state.load().version.clone() else {
            return;
        };
        match self.loader.changed_since(&version).await {
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

    /// Starts the background change check (every `interval`), which ends
    /// when the cache is dropped.
    pub fn watch_for_changes(self: &Arc<Self>, interval: std::time::Duration) {
        if let Some(runtime) = &self.runtime {
            runtime.spawn(watch_for_changes(Arc::downgrade(self), interval));
        }
    }
}

/// Asks the repository every `interval` whether the ring changed, and reloads
/// it when it did; stops when the cache is dropped.
async fn watch_for_changes(cache: Weak<RingCache>, interval: std::time::Duration) {
    loop {
        tokio::time::sleep(interval).await;
        let Some(cache) = cache.upgrade() else { return };
        // A panicking repository must not end the watch.
        if CatchUnwind(Box::pin(cache.check_for_change()))
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
