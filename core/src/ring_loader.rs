//! Loading a key ring, in three steps:
//!
//! 1. **fetch** (async): the repository's elements and version, read and
//!    interpreted into a key table — or, when the repository reports no
//!    change since the current ring was read, that ring's table, reused as is;
//! 2. **decide** (pure, [`policy::decide`]): the default key, and whether a
//!    key must be created; the only I/O it leads to is decrypting the few
//!    keys whose usability the decision depends on;
//! 3. **build**: the ring, with the default key's encryptor made now and
//!    every other key's made on first use.
//!
//! When a key must be created, it is created and the ring fetched and decided
//! once more; that second decision never creates. A storage or vault failure
//! fails the load: it never leads to a key.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::clock::Clock;
use crate::crypto::{AuthenticatedEncryptor, MIN_MASTER_KEY_LEN, RandomSource};
use crate::encryption::DecryptorRegistry;
use crate::error::{Error, Result};
use crate::key::{
    DefaultKey, EncryptorSlot, Key, KeyIndex, KeyRing, KeySet, KeySetProblem, RingEntry,
};
use crate::key_slot::KeyFailure;
use crate::manager::KeyManager;
use crate::payload::{key_id_bytes, payload_header};
use crate::policy::{self, KeyInfo, NewKeyPlan, RingDecision, Usability};
use crate::repository::Version;
use crate::ring_cache::{Loaded, RingLoader, RingState};
use crate::xml::{Element, contains_encrypted_secret, read_descriptor};

/// Back-off after a key's master key failed to decrypt (e.g. vault unreachable).
const KEY_DECRYPT_BACKOFF: time::Duration = time::Duration::seconds(30);

/// What the provider was configured with, and the encryptor slots shared by
/// every ring it loads.
pub(crate) struct KeyRingLoader {
    pub manager: KeyManager,
    pub decryptors: DecryptorRegistry,
    pub clock: Arc<dyn Clock>,
    pub random: Arc<dyn RandomSource>,
    pub key_lifetime: time::Duration,
    /// Whether keys may be created.
    pub auto_generate: bool,
    /// Whether a ring without a default key loads (for unprotecting only).
    pub unprotect_only: bool,
    /// Encryptor slots by key id, for the keys of the last ring read.
    slots: Mutex<HashMap<Uuid, EncryptorSlot>>,
    /// Keeps alive what background work runs on (the provider's own runtime).
    _keep_alive: Option<Arc<dyn std::any::Any + Send + Sync>>,
}

/// The keys a decision is made on: read from the repository, or reused
/// from the current ring when the repository has not changed.
struct KeyTable {
    entries: Arc<[RingEntry]>,
    index: Arc<KeyIndex>,
    problems: Arc<[KeySetProblem]>,
    latest_mass_revocation: Option<OffsetDateTime>,
    infos: Vec<KeyInfo>,
    version: Option<Version>,
}

impl KeyTable {
    fn of_ring(ring: &KeyRing, version: Version) -> Self {
        KeyTable {
            infos: ring.entries.iter().map(|e| e.key.info()).collect(),
            entries: ring.entries.clone(),
            index: ring.index.clone(),
            problems: ring.problems.clone(),
            latest_mass_revocation: ring.latest_mass_revocation,
            version: Some(version),
        }
    }

    fn get(&self, id: Uuid) -> Option<&RingEntry> {
        self.index
            .get(&key_id_bytes(&id))
            .and_then(|i| self.entries.get(i))
    }
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

/// The key a decision says to protect with, if any.
fn chosen_key(decision: RingDecision) -> Option<Uuid> {
    match decision {
        RingDecision::UseDefault(id) | RingDecision::CreateNextKey { default: id, .. } => Some(id),
        RingDecision::CreateKeyNow { fallback, .. } => fallback,
        // Never returned by `KeyRingLoader::decide`, which answers it.
        RingDecision::CheckKey(_) => None,
    }
}

impl KeyRingLoader {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        manager: KeyManager,
        decryptors: DecryptorRegistry,
        clock: Arc<dyn Clock>,
        random: Arc<dyn RandomSource>,
        key_lifetime: time::Duration,
        auto_generate: bool,
        unprotect_only: bool,
        keep_alive: Option<Arc<dyn std::any::Any + Send + Sync>>,
    ) -> Self {
        KeyRingLoader {
            manager,
            decryptors,
            clock,
            random,
            key_lifetime,
            auto_generate: auto_generate && !unprotect_only,
            unprotect_only,
            slots: Mutex::new(HashMap::new()),
            _keep_alive: keep_alive,
        }
    }

    /// Reads the repository and interprets what it holds.
    async fn fetch(&self) -> Result<KeyTable> {
        // Classified where the repository parsed them (each key's descriptor
        // moved, not copied).
        let (elements, version) = self
            .manager
            .repository
            .get_all_classified_versioned()
            .await?;
        let set = KeySet::from_classified(elements)?;
        let latest_mass_revocation = set.latest_mass_revocation();
        let infos = set.infos();
        // Slots are kept for the keys still stored (a key decrypted once is
        // never decrypted again) and dropped for the others.
        let mut entries = Vec::with_capacity(set.keys.len());
        let mut index = Vec::with_capacity(set.keys.len());
        {
            let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
            let mut kept = HashMap::with_capacity(set.keys.len());
            for key in set.keys {
                let id = key.id();
                let slot = slots.remove(&id).unwrap_or_default();
                kept.insert(id, slot.clone());
                index.push((key_id_bytes(&id), entries.len()));
                entries.push(RingEntry { key, slot });
            }
            *slots = kept;
        }
        Ok(KeyTable {
            entries: entries.into(),
            index: Arc::new(KeyIndex::new(index)),
            problems: set.problems.into(),
            latest_mass_revocation,
            infos,
            version,
        })
    }

    /// The current ring's keys if the repository reports no change since
    /// they were read; `None` when they must be read.
    async fn unchanged(&self, current: &RingState) -> Option<KeyTable> {
        let (Some(ring), Some(version)) = (&current.ring, &current.version) else {
            return None;
        };
        match self.manager.repository.changed_since(version).await {
            Ok(false) => Some(KeyTable::of_ring(ring, version.clone())),
            Ok(true) => None,
            Err(e) => {
                tracing::debug!(error = %e, "the change check failed; reading the whole ring");
                None
            }
        }
    }

    /// Runs the policy on `table`, decrypting the keys it asks about.
    async fn decide(
        &self,
        table: &KeyTable,
        now: OffsetDateTime,
    ) -> Result<(RingDecision, HashMap<Uuid, Usability>)> {
        let mut known: HashMap<Uuid, Usability> = HashMap::new();
        // Each round answers one key the policy has not seen: at most one
        // round per key, then a decision.
        for _ in 0..=table.infos.len() {
            let decision = policy::decide(&table.infos, now, self.key_lifetime, &|k| {
                known.get(&k.id).copied().unwrap_or(Usability::Unknown)
            });
            let RingDecision::CheckKey(id) = decision else {
                return Ok((decision, known));
            };
            let usable = match table.get(id) {
                Some(entry) => self
                    .ensure_encryptor(entry)
                    .await?
                    .is_some_and(|e| may_protect(id, &e)),
                None => false,
            };
            let answer = if usable {
                Usability::Usable
            } else {
                Usability::Unusable
            };
            if known.insert(id, answer).is_some() {
                break;
            }
        }
        Err(Error::NoDefaultKey {
            reason: "the key policy did not reach a decision".into(),
        })
    }

    /// Loads a ring: fetch, decide, create a key if needed (then fetch and
    /// decide once more), build.
    async fn load_ring(
        &self,
        now: OffsetDateTime,
        current: &RingState,
        reuse_unchanged: bool,
    ) -> Result<Loaded> {
        let reused = if reuse_unchanged {
            self.unchanged(current).await
        } else {
            None
        };
        let mut table = match reused {
            Some(table) => table,
            None => self.fetch().await?,
        };
        let (decision, known) = self.decide(&table, now).await?;
        let plan = match decision {
            RingDecision::CreateKeyNow { plan, .. } | RingDecision::CreateNextKey { plan, .. } => {
                Some(plan)
            }
            _ => None,
        };
        let chosen = match plan {
            Some(plan) if self.auto_generate => {
                // A mass revocation dated in the future (clock skew, or a
                // mistake) would revoke any key created now: creating one
                // would only add an unusable key at every refresh.
                if let Some(date) = table.latest_mass_revocation.filter(|date| *date > now) {
                    return Err(Error::NoDefaultKey {
                        reason: format!(
                            "a revocation of all keys created before {} is dated in the future, \
                             so a key created now would be revoked at once; check the clocks \
                             (no key was created)",
                            crate::xml::format_date(date)
                        ),
                    });
                }
                let unusable: HashSet<Uuid> = known
                    .iter()
                    .filter(|(_, u)| **u == Usability::Unusable)
                    .map(|(id, _)| *id)
                    .collect();
                let created = self.create_key_if_still_needed(now, plan, unusable).await?;
                table = self.fetch().await?;
                let (decision, _) = self.decide(&table, now).await?;
                // After creating a key, use whatever is usable rather than
                // create again.
                chosen_key(decision).or(created)
            }
            _ => {
                if plan.is_some() {
                    tracing::info!("a new key is due but automatic key generation is disabled");
                }
                let chosen = chosen_key(decision);
                if let (RingDecision::CreateKeyNow { .. }, Some(fallback)) = (decision, chosen) {
                    tracing::warn!(key_id = %fallback, "no default key: using a fallback key");
                }
                chosen
            }
        };
        self.build(table, chosen, now).await
    }

    /// The ring over `table` with `chosen` as default key.
    async fn build(
        &self,
        table: KeyTable,
        chosen: Option<Uuid>,
        now: OffsetDateTime,
    ) -> Result<Loaded> {
        let default = match chosen {
            Some(id) => {
                let entry = table.get(id).ok_or_else(|| Error::NoDefaultKey {
                    reason: format!("key {id} is not in the repository"),
                })?;
                if entry.key.is_revoked() {
                    return Err(Error::NoDefaultKey {
                        reason: format!(
                            "the default key {id} is revoked (a revocation may be dated in the future)"
                        ),
                    });
                }
                let encryptor =
                    self.ensure_encryptor(entry)
                        .await?
                        .ok_or_else(|| Error::NoDefaultKey {
                            reason: format!("the default key {id} cannot be used"),
                        })?;
                Some(DefaultKey {
                    id,
                    header: payload_header(&id),
                    bindings: Arc::new(crate::bindings::Bindings::new()),
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
                    "the key ring has no usable key and automatic key generation is disabled".into()
                },
            });
        }

        let jitter: f64 = rand::random();
        let next = now.saturating_add(policy::jittered_refresh_period(jitter));
        let default_expiration = default
            .as_ref()
            .and_then(|d| table.get(d.id))
            .map(|e| e.key.expiration_date())
            .unwrap_or(next);
        let refresh_at = if default_expiration <= now {
            next
        } else {
            next.min(default_expiration)
        };
        let ring = KeyRing {
            entries: table.entries,
            index: table.index,
            default,
            problems: table.problems,
            latest_mass_revocation: table.latest_mass_revocation,
            loaded_at: now,
        };
        Ok(Loaded {
            ring,
            refresh_at,
            version: table.version,
        })
    }

    /// Writes a new key unless, judged on what is stored at the moment of
    /// writing, it is no longer needed (another instance got there first).
    async fn create_key_if_still_needed(
        &self,
        now: OffsetDateTime,
        plan: NewKeyPlan,
        unusable: HashSet<Uuid>,
    ) -> Result<Option<Uuid>> {
        let (xml, element) = self
            .manager
            .new_key_element(plan.activation_date, plan.expiration_date)
            .await?;
        let lifetime = self.key_lifetime;
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

    /// The encryptor of a key whose master key is stored unencrypted:
    /// parsing the descriptor and keying the algorithm, no I/O.
    fn local_encryptor(&self, key: &Key) -> Result<Arc<dyn AuthenticatedEncryptor>> {
        let d = read_descriptor(&key.xml().descriptor)?;
        Ok(d.algorithm
            .encryptor_with_random(&d.master_key, self.random.clone()))
    }

    async fn decrypt_key(&self, key: &Key) -> Result<Arc<dyn AuthenticatedEncryptor>> {
        let descriptor = &key.xml().descriptor;
        if !contains_encrypted_secret(descriptor) {
            return self.local_encryptor(key);
        }
        let decrypted = self.decryptors.decrypt_element(descriptor).await?;
        let d = read_descriptor(&decrypted)?;
        Ok(d.algorithm
            .encryptor_with_random(&d.master_key, self.random.clone()))
    }
}

/// The error for a key whose encryptor could not be made.
fn key_failed(id: Uuid, failure: &Arc<Error>) -> Error {
    Error::KeyDecryption {
        what: format!("key {id}"),
        source: Box::new(failure.clone()),
    }
}

#[async_trait]
impl RingLoader for KeyRingLoader {
    async fn load(
        &self,
        now: OffsetDateTime,
        current: &RingState,
        reuse_unchanged: bool,
    ) -> Result<Loaded> {
        self.load_ring(now, current, reuse_unchanged).await
    }

    async fn changed_since(&self, version: &Version) -> Result<bool> {
        self.manager.repository.changed_since(version).await
    }

    /// The key's encryptor, decrypting its master key at most once per
    /// process (concurrent callers share one attempt). `Ok(None)`: the key is
    /// permanently unusable. `Err`: decryption could not be attempted or
    /// failed for a reason that may pass (the caller must not treat the key
    /// as absent).
    async fn ensure_encryptor(
        &self,
        entry: &RingEntry,
    ) -> Result<Option<Arc<dyn AuthenticatedEncryptor>>> {
        let (key, slot) = (&entry.key, &entry.slot);
        if let Some(e) = slot.get() {
            return Ok(Some(e.clone()));
        }
        let id = key.id();
        match slot.failure() {
            Some(KeyFailure::Permanent(_)) => return Ok(None),
            Some(KeyFailure::Transient { retry_at, error }) if self.clock.now() < retry_at => {
                return Err(Error::KeyDecryption {
                    what: format!(
                        "key {id} (retrying after {})",
                        crate::xml::format_date(retry_at)
                    ),
                    source: Box::new(error),
                });
            }
            _ => {}
        }
        match slot.get_or_try_init(|| self.decrypt_key(key)).await {
            Ok(e) => {
                slot.clear_failure();
                Ok(Some(e.clone()))
            }
            Err(e) if is_permanent(&e) => {
                tracing::warn!(key_id = %id, error = %e, "key is unusable");
                slot.set_failure(KeyFailure::Permanent(Arc::new(e)));
                Ok(None)
            }
            Err(e) => {
                tracing::warn!(key_id = %id, error = %e, "could not decrypt key; will retry later");
                let e = Arc::new(e);
                slot.set_failure(KeyFailure::Transient {
                    retry_at: self.clock.now().saturating_add(KEY_DECRYPT_BACKOFF),
                    error: e.clone(),
                });
                // Decryptors describe the material ("a key encrypted with Azure Key
                // Vault"); only the provider knows which key it was.
                let mut copy = Error::shared_copy(&e);
                if let Error::KeyDecryption { what, .. } = &mut copy {
                    *what = format!("key {id} ({what})");
                }
                Err(copy)
            }
        }
    }

    fn encryptor_now(&self, entry: &RingEntry) -> Option<Result<Arc<dyn AuthenticatedEncryptor>>> {
        let (key, slot) = (&entry.key, &entry.slot);
        if let Some(e) = slot.get() {
            return Some(Ok(e.clone()));
        }
        match slot.failure() {
            Some(KeyFailure::Permanent(error)) => return Some(Err(key_failed(key.id(), &error))),
            Some(KeyFailure::Transient { retry_at, error }) if self.clock.now() < retry_at => {
                return Some(Err(key_failed(key.id(), &error)));
            }
            _ => {}
        }
        if key.is_encrypted_at_rest() {
            return None;
        }
        // A key stored unencrypted: making its encryptor is a parse and an
        // HMAC keying, cheap enough to do on the first payload that names it
        // (which is why a ring load leaves it to then).
        Some(match self.local_encryptor(key) {
            Ok(e) => Ok(slot.set(e)),
            Err(e) => {
                tracing::warn!(key_id = %key.id(), error = %e, "key is unusable");
                let e = Arc::new(e);
                slot.set_failure(KeyFailure::Permanent(e.clone()));
                Err(key_failed(key.id(), &e))
            }
        })
    }

    fn describe(&self) -> String {
        self.manager.repository.describe()
    }
}
