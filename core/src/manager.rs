//! The key manager: create, revoke, delete and list keys through a repository
//! and an optional key encryptor (ASP.NET Core's `XmlKeyManager`).

use std::fmt;
use std::sync::Arc;

use time::OffsetDateTime;
use uuid::Uuid;

use crate::clock::Clock;
use crate::crypto::{Algorithm, MASTER_KEY_LEN, RandomSource, Secret};
use crate::encryption::{XmlEncryptor, encrypt_if_necessary};
use crate::error::{Error, Result};
use crate::key::{Key, KeySet};
use crate::repository::{Deletion, DeletionOrder, XmlRepository};
use crate::xml::{
    Element, KeyXml, RevocationTarget, RevocationXml, StoredElement, descriptor_element,
};

/// Receives every new key *before* its master key is encrypted at rest
/// (ASP.NET Core's `IKeyEscrowSink`). The element holds the secret in clear:
/// store it somewhere at least as safe as the ring itself.
pub trait KeyEscrowSink: fmt::Debug + Send + Sync {
    /// Called once per new key with its unencrypted `<key>` element.
    fn store(&self, key_id: Uuid, element: &Element);
}

/// Creates, revokes, deletes and lists keys.
#[derive(Clone)]
pub struct KeyManager {
    pub(crate) repository: Arc<dyn XmlRepository>,
    pub(crate) encryptor: Option<Arc<dyn XmlEncryptor>>,
    pub(crate) escrow: Option<Arc<dyn KeyEscrowSink>>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) random: Arc<dyn RandomSource>,
    pub(crate) algorithm: Algorithm,
    /// Told after every change, so a provider can reload its ring at once.
    pub(crate) on_change: Option<Arc<dyn Fn() + Send + Sync>>,
}

impl fmt::Debug for KeyManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyManager")
            .field("repository", &self.repository.describe())
            .field("encrypted_at_rest", &self.encryptor.is_some())
            .field("algorithm", &self.algorithm)
            .finish()
    }
}

impl KeyManager {
    /// Which elements [`KeyManager::delete_keys`] removes, and in which order:
    /// the chosen keys (expired ones only unless `include_unexpired`), then
    /// revocations of keys that are deleted or absent, then superseded mass
    /// revocations (see [`DeletionOrder`]). Exposed so tools can preview a
    /// deletion exactly.
    pub fn deletion_orders(
        elements: &[Element],
        now: OffsetDateTime,
        include_unexpired: bool,
        should_delete: &dyn Fn(&Key) -> bool,
    ) -> Vec<Deletion> {
        let set = KeySet::from_elements(elements).unwrap_or_default();
        let latest_mass = set.latest_mass_revocation();
        let mut deleted_ids = Vec::new();
        let mut orders: Vec<Option<DeletionOrder>> = elements
            .iter()
            .map(|e| match StoredElement::classify(e) {
                Ok(StoredElement::Key(k)) => {
                    let key = set.get(k.id)?;
                    // Only the element that defines the key (not a duplicate).
                    if key.xml() != &k {
                        return None;
                    }
                    if (include_unexpired || key.expiration_date() < now) && should_delete(key) {
                        deleted_ids.push(k.id);
                        Some(DeletionOrder::Key)
                    } else {
                        None
                    }
                }
                Ok(StoredElement::Revocation(r)) => match r.target {
                    RevocationTarget::AllCreatedBefore if Some(r.date) < latest_mass => {
                        Some(DeletionOrder::SupersededMassRevocation)
                    }
                    _ => None,
                },
                _ => None,
            })
            .collect();
        for (i, e) in elements.iter().enumerate() {
            if let Ok(StoredElement::Revocation(RevocationXml {
                target: RevocationTarget::Key(id),
                ..
            })) = StoredElement::classify(e)
                && (deleted_ids.contains(&id) || set.get(id).is_none())
            {
                orders[i] = Some(DeletionOrder::KeyRevocation);
            }
        }
        orders
            .into_iter()
            .enumerate()
            .filter_map(|(index, order)| order.map(|order| Deletion { index, order }))
            .collect()
    }

    /// A manager over `repository`; keys are stored unencrypted unless an
    /// encryptor is given.
    pub fn new(
        repository: Arc<dyn XmlRepository>,
        encryptor: Option<Arc<dyn XmlEncryptor>>,
    ) -> Self {
        KeyManager {
            repository,
            encryptor,
            escrow: None,
            clock: Arc::new(crate::clock::SystemClock),
            random: Arc::new(crate::crypto::OsRandom),
            algorithm: Algorithm::default(),
            on_change: None,
        }
    }

    /// Uses `algorithm` for new keys.
    pub fn with_algorithm(mut self, algorithm: Algorithm) -> Self {
        self.algorithm = algorithm;
        self
    }

    /// Uses `clock` for creation and revocation dates.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Draws new keys' ids and master keys from `random` (default: the OS
    /// CSPRNG). A deterministic source makes generated key rings
    /// reproducible (test fixtures); production code keeps the default.
    pub fn with_random(mut self, random: Arc<dyn RandomSource>) -> Self {
        self.random = random;
        self
    }

    fn changed(&self) {
        if let Some(f) = &self.on_change {
            f();
        }
    }

    /// The repository.
    pub fn repository(&self) -> &Arc<dyn XmlRepository> {
        &self.repository
    }

    /// Builds, without storing, the element for a new key: a fresh master
    /// key, creation date from the clock, escrowed, then encrypted at rest
    /// with the configured encryptor. For conditional stores
    /// ([`XmlRepository::store_element_if`]); [`KeyManager::create_key`]
    /// stores at once.
    pub async fn new_key_element(
        &self,
        activation: OffsetDateTime,
        expiration: OffsetDateTime,
    ) -> Result<(KeyXml, Element)> {
        if expiration <= activation {
            return Err(Error::InvalidArgument(
                "a key's expiration date must be after its activation date".into(),
            ));
        }
        let mut master = vec![0u8; MASTER_KEY_LEN];
        self.random.fill(&mut master)?;
        let master = Secret::new(master);
        // The id comes from the same injected source as the master key (a
        // version-4 UUID, as .NET's Guid.NewGuid), so that a deterministic
        // source reproduces a whole ring.
        let mut id = [0u8; 16];
        self.random.fill(&mut id)?;
        let xml = KeyXml {
            id: uuid::Builder::from_random_bytes(id).into_uuid(),
            creation_date: self.clock.now(),
            activation_date: activation,
            expiration_date: expiration,
            descriptor: descriptor_element(self.algorithm, &master),
        };
        let element = xml.to_element();
        if let Some(escrow) = &self.escrow {
            escrow.store(xml.id, &element);
        }
        let stored = match &self.encryptor {
            Some(encryptor) => encrypt_if_necessary(&element, encryptor.as_ref())
                .await?
                .unwrap_or(element),
            None => element,
        };
        Ok((xml, stored))
    }

    /// Logs, once per key and only after the key was stored, that its
    /// master key is in the repository unencrypted (no key encryptor is
    /// configured), as .NET's key manager does. Call it after storing an
    /// element from [`KeyManager::new_key_element`] yourself; a key that was
    /// not stored (another instance won the race) must not be named.
    pub fn warn_if_stored_unencrypted(&self, key_id: Uuid) {
        if self.encryptor.is_none() {
            tracing::warn!(
                key_id = %key_id,
                repository = %self.repository.describe(),
                "keys are persisted without encryption at rest: a new key was stored \
                 unencrypted; anyone who can read the repository can forge and read protected \
                 payloads (configure a key encryptor such as Azure Key Vault)"
            );
        }
    }

    /// Creates and stores a key with the given dates.
    pub async fn create_key(
        &self,
        activation: OffsetDateTime,
        expiration: OffsetDateTime,
    ) -> Result<Key> {
        let (xml, element) = self.new_key_element(activation, expiration).await?;
        self.repository
            .store_element(&element, &xml.friendly_name())
            .await?;
        tracing::info!(key_id = %xml.id, activation = %crate::xml::format_date(activation), expiration = %crate::xml::format_date(expiration), "created key");
        self.warn_if_stored_unencrypted(xml.id);
        self.changed();
        key_from(&xml)
    }

    /// Revokes one key.
    pub async fn revoke_key(&self, key_id: Uuid, reason: Option<&str>) -> Result<()> {
        let revocation = RevocationXml {
            date: self.clock.now(),
            target: RevocationTarget::Key(key_id),
            reason: reason.map(str::to_string),
        };
        self.repository
            .store_element(&revocation.to_element(), &revocation.friendly_name())
            .await?;
        tracing::info!(key_id = %key_id, "revoked key");
        self.changed();
        Ok(())
    }

    /// Revokes every key created before `before`.
    pub async fn revoke_all_keys(
        &self,
        before: OffsetDateTime,
        reason: Option<&str>,
    ) -> Result<()> {
        let revocation = RevocationXml {
            date: before,
            target: RevocationTarget::AllCreatedBefore,
            reason: reason.map(str::to_string),
        };
        self.repository
            .store_element(&revocation.to_element(), &revocation.friendly_name())
            .await?;
        tracing::info!(before = %crate::xml::format_date(before), "revoked all keys created before the date");
        self.changed();
        Ok(())
    }

    /// Deletes keys chosen by `should_delete` — only expired ones unless
    /// `include_unexpired` — then revocations of keys that no longer exist,
    /// then superseded mass revocations, in that order, stopping at the first
    /// failure (ASP.NET Core 9's `DeleteKeys`). Returns how many elements went.
    pub async fn delete_keys(
        &self,
        should_delete: &(dyn Fn(&Key) -> bool + Send + Sync),
        include_unexpired: bool,
    ) -> Result<usize> {
        let now = self.clock.now();
        let chooser = move |elements: &[Element]| {
            Self::deletion_orders(elements, now, include_unexpired, should_delete)
        };
        let deleted = self.repository.delete_elements(&chooser).await?;
        self.changed();
        Ok(deleted)
    }

    /// Every key in the repository, revocations applied.
    pub async fn get_all_keys(&self) -> Result<KeySet> {
        KeySet::from_elements(&self.repository.get_all_elements().await?)
    }
}

fn key_from(xml: &KeyXml) -> Result<Key> {
    let set = KeySet::from_elements(&[xml.to_element()])?;
    set.keys
        .into_iter()
        .next()
        .ok_or_else(|| Error::malformed("key", "the new key could not be read back"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::repository::InMemoryXmlRepository;
    use time::macros::datetime;

    /// Fills every buffer with `seed, seed+1, …`.
    #[derive(Debug)]
    struct CountingRandom(u8);

    impl RandomSource for CountingRandom {
        fn fill(&self, buf: &mut [u8]) -> Result<()> {
            for (b, i) in buf.iter_mut().zip(0u8..) {
                *b = self.0.wrapping_add(i);
            }
            Ok(())
        }
    }

    async fn new_key_id(seed: u8) -> Uuid {
        let start = datetime!(2030-01-01 0:00 UTC);
        KeyManager::new(Arc::new(InMemoryXmlRepository::new()), None)
            .with_clock(Arc::new(ManualClock::new(start)))
            .with_random(Arc::new(CountingRandom(seed)))
            .create_key(start, start + time::Duration::days(90))
            .await
            .unwrap()
            .id()
    }

    #[tokio::test]
    async fn key_ids_come_from_the_injected_random_source() {
        let id = new_key_id(7).await;
        assert_eq!(id, new_key_id(7).await);
        assert_ne!(id, new_key_id(8).await);
        assert_eq!(id.get_version_num(), 4);
    }
}
