//! `DataProtector`: protect and unprotect under a purpose chain, and the
//! time-limited protector.

use std::fmt;
use std::sync::Arc;

use time::OffsetDateTime;
use uuid::Uuid;

use crate::crypto::{AuthenticatedEncryptor, BoundEncryptor};
use crate::error::{Error, Result};
use crate::key::{DefaultKey, KeyRing};
use crate::payload::{HEADER_LEN, PurposeTail, decode_text, encode_text, read_header_id_bytes};
use crate::ring_cache::{RefreshReason, RingCache};
use crate::xml::{from_ticks, to_ticks};

/// The purpose the time-limited protector appends (ASP.NET Core's
/// `TimeLimitedDataProtector`).
pub const TIME_LIMITED_PURPOSE: &str =
    "Microsoft.AspNetCore.DataProtection.TimeLimitedDataProtector.v1";

/// Protects and unprotects data for one purpose chain. Cheap to clone.
///
/// Payloads are byte-compatible with ASP.NET Core's `IDataProtector` for the
/// same keys and purposes.
#[derive(Clone)]
pub struct DataProtector {
    cache: Arc<RingCache>,
    purposes: Arc<Vec<String>>,
    tail: Arc<PurposeTail>,
}

impl fmt::Debug for DataProtector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DataProtector")
            .field("purposes", &self.purposes)
            .finish()
    }
}

/// How [`DataProtector::unprotect_with`] treats a payload.
///
/// ```
/// use dataprotection::{DataProtectionProvider, UnprotectOptions};
/// use dataprotection::repository::InMemoryXmlRepository;
/// use std::sync::Arc;
/// # fn main() -> dataprotection::Result<()> {
/// let provider = DataProtectionProvider::builder()
///     .repository(Arc::new(InMemoryXmlRepository::new()))
///     .build_blocking()?;
/// let protector = provider.create_protector("orders");
/// let payload = protector.protect(b"order 42")?;
///
/// let options = UnprotectOptions::new().ignore_revocation(true);
/// let unprotected = protector.unprotect_with(&payload, &options)?;
/// assert_eq!(unprotected.plaintext, b"order 42");
/// assert!(!unprotected.was_revoked && !unprotected.requires_migration);
/// # Ok(()) }
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct UnprotectOptions {
    /// Accept payloads whose key is revoked (reported in
    /// [`Unprotected::was_revoked`]), as .NET's
    /// `IPersistedDataProtector.DangerousUnprotect` does: for recovering
    /// data, never for ordinary reads. Default `false`.
    pub ignore_revocation: bool,
}

impl UnprotectOptions {
    /// The defaults: revoked keys are refused.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets [`UnprotectOptions::ignore_revocation`].
    pub fn ignore_revocation(mut self, ignore: bool) -> Self {
        self.ignore_revocation = ignore;
        self
    }
}

/// The result of [`DataProtector::unprotect_with`].
#[derive(Clone, PartialEq, Eq)]
pub struct Unprotected {
    /// The original data.
    pub plaintext: Vec<u8>,
    /// The payload should be protected again: its key is no longer the
    /// default key, or it is revoked.
    pub requires_migration: bool,
    /// Its key is revoked (only possible with
    /// [`UnprotectOptions::ignore_revocation`]).
    pub was_revoked: bool,
}

impl fmt::Debug for Unprotected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Unprotected")
            .field("plaintext_len", &self.plaintext.len())
            .field("requires_migration", &self.requires_migration)
            .field("was_revoked", &self.was_revoked)
            .finish()
    }
}

/// The UTF-8 text of an unprotected payload.
fn into_string(bytes: Vec<u8>) -> Result<String> {
    String::from_utf8(bytes).map_err(|_| Error::InvalidUtf8 {
        what: "the unprotected data",
    })
}

/// Why a synchronous unprotect could not complete from the snapshot.
enum Miss {
    Failed(Error),
    UnknownKey(uuid::Uuid),
    NotReady(usize),
}

impl DataProtector {
    pub(crate) fn new(cache: Arc<RingCache>, purposes: Vec<String>) -> Self {
        let tail = PurposeTail::new(&purposes);
        DataProtector {
            cache,
            purposes: Arc::new(purposes),
            tail: Arc::new(tail),
        }
    }

    /// Runs `bound` with the default key's encryptor bound to this
    /// protector's purposes (see `crate::bindings`), or `unbound` with the
    /// encryptor and the AAD when there is no binding, handing either
    /// `input`.
    #[inline]
    fn with_default<I, T>(
        &self,
        default: &DefaultKey,
        input: I,
        bound: impl FnOnce(&dyn BoundEncryptor, I) -> T,
        unbound: impl FnOnce(&dyn AuthenticatedEncryptor, &[&[u8]], I) -> T,
    ) -> T {
        let encryptor = default.encryptor.as_ref();
        let tail = self.tail.as_bytes();
        match default.bindings.bound(encryptor, &default.header, tail) {
            Some(encryptor) => bound(encryptor, input),
            None => unbound(encryptor, &[&default.header, tail], input),
        }
    }

    /// The purpose chain.
    pub fn purposes(&self) -> &[String] {
        &self.purposes
    }

    /// A child protector with `purpose` appended.
    pub fn create_protector(&self, purpose: impl Into<String>) -> DataProtector {
        let mut purposes = (*self.purposes).clone();
        purposes.push(purpose.into());
        DataProtector::new(self.cache.clone(), purposes)
    }

    /// Protects `plaintext` with the current default key. No I/O.
    pub fn protect(&self, plaintext: &[u8]) -> Result<Vec<u8>> {
        let state = self.cache.snapshot();
        let ring = state.ring()?;
        let default = ring.default_or_err()?;
        let mut out = Vec::with_capacity(HEADER_LEN + default.encryptor.body_len(plaintext.len()));
        out.extend_from_slice(&default.header);
        self.with_default(
            default,
            &mut out,
            |bound, out| bound.encrypt_to(plaintext, out),
            |encryptor, aad, out| encryptor.encrypt_to(plaintext, aad, out),
        )?;
        Ok(out)
    }

    /// Protects a string: UTF-8, then Base64Url without padding.
    pub fn protect_str(&self, plaintext: &str) -> Result<String> {
        self.protect(plaintext.as_bytes()).map(|p| encode_text(&p))
    }

    fn try_unprotect(
        &self,
        ring: &KeyRing,
        payload: &[u8],
        options: &UnprotectOptions,
    ) -> Result<Unprotected, Miss> {
        if let Some(plaintext) = self.open_with_default(ring, payload) {
            return Ok(Unprotected {
                plaintext: plaintext.map_err(Miss::Failed)?,
                requires_migration: false,
                was_revoked: false,
            });
        }
        let id_bytes = read_header_id_bytes(payload).map_err(Miss::Failed)?;
        let Some(index) = ring.index.get(id_bytes) else {
            return Err(Miss::UnknownKey(Uuid::from_bytes_le(*id_bytes)));
        };
        let entry = &ring.entries[index];
        let key_id = entry.key.id();
        let was_revoked = entry.key.is_revoked();
        if was_revoked && !options.ignore_revocation {
            tracing::debug!(key_id = %key_id, "payload names a revoked key");
            return Err(Miss::Failed(Error::KeyRevoked { key_id }));
        }
        let Some(encryptor) = entry.slot.get() else {
            return Err(Miss::NotReady(index));
        };
        self.open(ring, &entry.key, encryptor, payload)
            .map_err(Miss::Failed)
    }

    /// Most payloads name the default key, whose encryptor the ring holds
    /// (and which is never revoked: a ring is not built with a revoked
    /// default key). Such a payload starts with the default key's 20 header
    /// bytes, recognised in one comparison; `None` for any other payload.
    #[inline]
    fn open_with_default(&self, ring: &KeyRing, payload: &[u8]) -> Option<Result<Vec<u8>>> {
        let default = ring.default.as_ref()?;
        let (header, body) = payload.split_first_chunk::<HEADER_LEN>()?;
        (*header == default.header).then(|| {
            self.with_default(
                default,
                body,
                |bound, body| bound.decrypt(body),
                |encryptor, aad, body| encryptor.decrypt(body, aad),
            )
        })
    }

    /// Decrypts `payload` (whose header names `key`, not revoked or revocation
    /// accepted) with the key's encryptor.
    fn open(
        &self,
        ring: &KeyRing,
        key: &crate::key::Key,
        encryptor: &Arc<dyn AuthenticatedEncryptor>,
        payload: &[u8],
    ) -> Result<Unprotected> {
        // The AAD starts with the payload's own 20 header bytes (magic with
        // version 0, and the key id), which read_header_id_bytes has validated.
        let plaintext = encryptor.decrypt(
            &payload[HEADER_LEN..],
            &[&payload[..HEADER_LEN], self.tail.as_bytes()],
        )?;
        let was_revoked = key.is_revoked();
        Ok(Unprotected {
            plaintext,
            requires_migration: was_revoked || ring.default_key_id() != Some(key.id()),
            was_revoked,
        })
    }

    /// Unprotects from the current snapshot, without waiting for I/O.
    ///
    /// If the payload names a key this process has not loaded, a refresh is
    /// started in the background and [`Error::KeyNotFound`] is returned; if
    /// the key's master key is still encrypted at rest (Key Vault: keys
    /// other than the default key are unwrapped on first use), its
    /// decryption is started and [`Error::KeyNotReady`] is returned — retry
    /// shortly, or call [`DataProtector::unprotect_async`], which waits for
    /// both instead. Without a key encryptor every key is usable at once and
    /// `KeyNotReady` does not occur.
    pub fn unprotect(&self, payload: &[u8]) -> Result<Vec<u8>> {
        // The default key's payloads skip the general path's bookkeeping
        // (the options, and the revocation and migration flags).
        let state = self.cache.snapshot();
        if let Some(plaintext) = self.open_with_default(state.ring()?, payload) {
            return plaintext;
        }
        drop(state);
        self.unprotect_with(payload, &UnprotectOptions::default())
            .map(|u| u.plaintext)
    }

    /// As [`DataProtector::unprotect`], with [`UnprotectOptions`] (accepting
    /// revoked keys), and reporting whether the payload should be protected
    /// again. See [`UnprotectOptions`] for an example.
    pub fn unprotect_with(
        &self,
        payload: &[u8],
        options: &UnprotectOptions,
    ) -> Result<Unprotected> {
        let state = self.cache.snapshot();
        let ring = state.ring()?;
        match self.try_unprotect(ring, payload, options) {
            Ok(u) => Ok(u),
            Err(Miss::Failed(e)) => Err(e),
            Err(Miss::UnknownKey(key_id)) => {
                tracing::debug!(key_id = %key_id, "payload names a key not in the ring");
                self.cache.schedule_refresh(RefreshReason::UnknownKey);
                Err(Error::KeyNotFound { key_id })
            }
            Err(Miss::NotReady(index)) => {
                let entry = &ring.entries[index];
                let key_id = entry.key.id();
                match self.cache.encryptor_now(entry) {
                    // Made now: a key stored unencrypted, on its first use.
                    Some(Ok(encryptor)) => self.open(ring, &entry.key, &encryptor, payload),
                    Some(Err(e)) => {
                        tracing::debug!(key_id = %key_id, error = %e, "payload names an unusable key");
                        Err(e)
                    }
                    None => {
                        self.cache.schedule_key_decryption(entry);
                        Err(Error::KeyNotReady { key_id })
                    }
                }
            }
        }
    }

    /// Unprotects, waiting if needed for one (coalesced, rate-limited)
    /// refresh when the key is unknown, or for the key's master key to be
    /// decrypted.
    pub async fn unprotect_async(&self, payload: &[u8]) -> Result<Vec<u8>> {
        self.unprotect_with_async(payload, &UnprotectOptions::default())
            .await
            .map(|u| u.plaintext)
    }

    /// As [`DataProtector::unprotect_async`] with [`UnprotectOptions`], as
    /// [`DataProtector::unprotect_with`].
    pub async fn unprotect_with_async(
        &self,
        payload: &[u8],
        options: &UnprotectOptions,
    ) -> Result<Unprotected> {
        let mut refreshed = false;
        loop {
            let ring = self.cache.ring()?;
            match self.try_unprotect(&ring, payload, options) {
                Ok(u) => return Ok(u),
                Err(Miss::Failed(e)) => return Err(e),
                Err(Miss::UnknownKey(key_id)) => {
                    if refreshed || !self.cache.refresh_for_unknown_key().await.unwrap_or(false) {
                        return Err(Error::KeyNotFound { key_id });
                    }
                    refreshed = true;
                }
                Err(Miss::NotReady(index)) => {
                    let entry = &ring.entries[index];
                    if self.cache.ensure_encryptor(entry).await?.is_none() {
                        let key_id = entry.key.id();
                        return Err(match entry.slot.failure() {
                            Some(failure) => Error::KeyDecryption {
                                what: format!("key {key_id}"),
                                source: Box::new(failure.error().clone()),
                            },
                            None => Error::KeyDecryption {
                                what: format!("key {key_id}"),
                                source: "the key cannot be used".into(),
                            },
                        });
                    }
                }
            }
        }
    }

    /// Unprotects the text form (Base64Url, or standard Base64) and decodes UTF-8.
    ///
    /// Like [`DataProtector::unprotect`] it never waits: with keys encrypted
    /// at rest (Key Vault), a payload whose key has not been decrypted yet
    /// is [`Error::KeyNotReady`]; [`DataProtector::unprotect_str_async`]
    /// waits instead.
    pub fn unprotect_str(&self, payload: &str) -> Result<String> {
        into_string(self.unprotect(&decode_text(payload)?)?)
    }

    /// As [`DataProtector::unprotect_str`], waiting as
    /// [`DataProtector::unprotect_async`] does (never [`Error::KeyNotReady`]).
    pub async fn unprotect_str_async(&self, payload: &str) -> Result<String> {
        into_string(self.unprotect_async(&decode_text(payload)?).await?)
    }

    /// A time-limited protector over this purpose chain.
    pub fn to_time_limited(&self) -> TimeLimitedDataProtector {
        TimeLimitedDataProtector {
            inner: self.create_protector(TIME_LIMITED_PURPOSE),
        }
    }
}

/// Protects data with an expiration time, compatible with ASP.NET Core's
/// `ITimeLimitedDataProtector`: the purpose
/// `Microsoft.AspNetCore.DataProtection.TimeLimitedDataProtector.v1` is
/// appended and the plaintext is prefixed with the expiration as 8
/// big-endian bytes of UTC ticks.
#[derive(Clone, Debug)]
pub struct TimeLimitedDataProtector {
    inner: DataProtector,
}

/// `DateTimeOffset.MaxValue.UtcTicks`: "never expires".
const MAX_TICKS: u64 = 3_155_378_975_999_999_999;

impl TimeLimitedDataProtector {
    /// Protects `plaintext` until `expiration`.
    pub fn protect(&self, plaintext: &[u8], expiration: OffsetDateTime) -> Result<Vec<u8>> {
        self.protect_ticks(plaintext, to_ticks(expiration))
    }

    /// Protects `plaintext` without an expiration (`DateTimeOffset.MaxValue`).
    pub fn protect_without_expiration(&self, plaintext: &[u8]) -> Result<Vec<u8>> {
        self.protect_ticks(plaintext, MAX_TICKS)
    }

    fn protect_ticks(&self, plaintext: &[u8], ticks: u64) -> Result<Vec<u8>> {
        let mut inner = Vec::with_capacity(8 + plaintext.len());
        inner.extend_from_slice(&ticks.to_be_bytes());
        inner.extend_from_slice(plaintext);
        self.inner.protect(&inner)
    }

    /// Unprotects, returning the data and its expiration; an expired payload
    /// is [`Error::PayloadExpired`].
    pub fn unprotect(&self, payload: &[u8]) -> Result<(Vec<u8>, OffsetDateTime)> {
        let inner = self.inner.unprotect(payload)?;
        self.check(inner)
    }

    /// As [`TimeLimitedDataProtector::unprotect`], waiting for refreshes as
    /// [`DataProtector::unprotect_async`] does.
    pub async fn unprotect_async(&self, payload: &[u8]) -> Result<(Vec<u8>, OffsetDateTime)> {
        let inner = self.inner.unprotect_async(payload).await?;
        self.check(inner)
    }

    /// Protects a string until `expiration`: UTF-8, then Base64Url without
    /// padding.
    pub fn protect_str(&self, plaintext: &str, expiration: OffsetDateTime) -> Result<String> {
        self.protect(plaintext.as_bytes(), expiration)
            .map(|p| encode_text(&p))
    }

    /// Unprotects the text form and decodes UTF-8, returning the text and
    /// its expiration. Never waits: see [`DataProtector::unprotect`] for
    /// [`Error::KeyNotReady`].
    pub fn unprotect_str(&self, payload: &str) -> Result<(String, OffsetDateTime)> {
        let (bytes, expiration) = self.unprotect(&decode_text(payload)?)?;
        Ok((into_string(bytes)?, expiration))
    }

    /// As [`TimeLimitedDataProtector::unprotect_str`], waiting as
    /// [`DataProtector::unprotect_async`] does.
    pub async fn unprotect_str_async(&self, payload: &str) -> Result<(String, OffsetDateTime)> {
        let (bytes, expiration) = self.unprotect_async(&decode_text(payload)?).await?;
        Ok((into_string(bytes)?, expiration))
    }

    fn check(&self, mut inner: Vec<u8>) -> Result<(Vec<u8>, OffsetDateTime)> {
        if inner.len() < 8 {
            tracing::debug!("time-limited payload shorter than its 8-byte expiration");
            return Err(Error::DecryptionFailed);
        }
        let mut ticks = [0u8; 8];
        ticks.copy_from_slice(&inner[..8]);
        let ticks = u64::from_be_bytes(ticks);
        let expiration = from_ticks(ticks).unwrap_or(OffsetDateTime::new_utc(
            time::Date::MAX,
            time::Time::MIDNIGHT,
        ));
        if ticks != MAX_TICKS && self.inner.cache.clock().now() > expiration {
            return Err(Error::PayloadExpired { expiration });
        }
        inner.drain(..8);
        Ok((inner, expiration))
    }
}
