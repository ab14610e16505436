//! Keys and the key ring: what the stored elements say, revocations applied.

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;

use time::OffsetDateTime;
use uuid::Uuid;

use crate::crypto::{Algorithm, AuthenticatedEncryptor};
use crate::encryption::has_unencrypted_secret;
use crate::error::{Error, Result};
use crate::policy::KeyInfo;
use crate::xml::{
    ClassifiedElement, Element, KeyXml, RevocationTarget, RevocationXml, StoredElement,
    contains_encrypted_secret, read_descriptor_algorithm,
};

/// A key as stored: id, dates, revocation state and its descriptor XML.
///
/// `Debug` shows ids and dates only.
#[derive(Clone, PartialEq, Eq)]
pub struct Key {
    xml: KeyXml,
    revoked: bool,
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Key")
            .field("id", &self.xml.id)
            .field("creation_date", &self.xml.creation_date)
            .field("activation_date", &self.xml.activation_date)
            .field("expiration_date", &self.xml.expiration_date)
            .field("revoked", &self.revoked)
            .finish()
    }
}

impl Key {
    /// Key id.
    pub fn id(&self) -> Uuid {
        self.xml.id
    }
    /// Creation date.
    pub fn creation_date(&self) -> OffsetDateTime {
        self.xml.creation_date
    }
    /// Activation date.
    pub fn activation_date(&self) -> OffsetDateTime {
        self.xml.activation_date
    }
    /// Expiration date.
    pub fn expiration_date(&self) -> OffsetDateTime {
        self.xml.expiration_date
    }
    /// Whether a revocation applies.
    pub fn is_revoked(&self) -> bool {
        self.revoked
    }
    /// `expirationDate <= now`.
    pub fn is_expired(&self, now: OffsetDateTime) -> bool {
        self.xml.expiration_date <= now
    }
    /// Whether the master key is wrapped in an `<encryptedSecret>`.
    pub fn is_encrypted_at_rest(&self) -> bool {
        contains_encrypted_secret(&self.xml.descriptor)
    }
    /// Whether the master key is stored in clear.
    pub fn is_stored_unencrypted(&self) -> bool {
        !self.is_encrypted_at_rest() && has_unencrypted_secret(&self.xml.descriptor)
    }
    /// The key's XML as read.
    pub fn xml(&self) -> &KeyXml {
        &self.xml
    }
    /// What the policy functions need.
    pub fn info(&self) -> KeyInfo {
        KeyInfo {
            id: self.xml.id,
            creation_date: self.xml.creation_date,
            activation_date: self.xml.activation_date,
            expiration_date: self.xml.expiration_date,
            revoked: self.revoked,
        }
    }
}

/// Why a stored element was skipped when a [`KeySet`] was read. Callers match
/// on the variant (never on the text, which is for people).
#[derive(Clone, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeySetProblem {
    /// A second `<key>` element with an id already seen; the first is kept.
    #[error("duplicate <key> element for key {key_id}")]
    DuplicateKey {
        /// The repeated key id.
        key_id: Uuid,
    },
    /// A `<key>` element that could not be read; it is skipped, never deleted.
    #[error("{source}")]
    MalformedKey {
        /// Why it could not be read.
        source: Arc<Error>,
    },
}

/// Every key and revocation in a repository, interpreted as ASP.NET Core does
/// (`XmlKeyManager.ProcessAllElements`).
#[derive(Clone, Debug, Default)]
pub struct KeySet {
    /// The keys, revocations applied, in document order.
    pub keys: Vec<Key>,
    /// Revocations found.
    pub revocations: Vec<RevocationXml>,
    /// Elements that could not be interpreted (skipped, never deleted), with why.
    pub problems: Vec<KeySetProblem>,
    /// How many elements were neither keys nor revocations.
    pub foreign_elements: usize,
}

impl KeySet {
    /// Interprets stored elements. A malformed `<key>` is skipped and reported
    /// in [`KeySet::problems`]; a malformed `<revocation>` is an error, because
    /// ignoring it could make a revoked key usable again. A duplicated key id
    /// keeps the first element and reports the others.
    pub fn from_elements(elements: &[Element]) -> Result<Self> {
        Self::read(
            elements.len(),
            elements
                .iter()
                .map(|e| (e.is("revocation"), StoredElement::classify(e))),
        )
    }

    /// As [`KeySet::from_elements`], taking the elements: each key's
    /// descriptor is moved into its [`Key`] rather than copied. A large ring
    /// is interpreted on a few threads (each element on its own; the
    /// outcome is the same as on one).
    pub fn from_owned_elements(elements: Vec<Element>) -> Result<Self> {
        Self::from_classified(ClassifiedElement::all(elements))
    }

    /// As [`KeySet::from_elements`], from elements already classified (as
    /// [`XmlRepository::get_all_classified_versioned`] reads them, each
    /// where it was parsed).
    ///
    /// [`XmlRepository::get_all_classified_versioned`]: crate::repository::XmlRepository::get_all_classified_versioned
    pub fn from_classified(elements: Vec<ClassifiedElement>) -> Result<Self> {
        Self::read(
            elements.len(),
            elements
                .into_iter()
                .map(|read| (read.is_revocation, read.classified)),
        )
    }

    /// The set of `classified` elements (each with whether it was a
    /// `<revocation>`), in document order.
    fn read(
        count: usize,
        classified: impl Iterator<Item = (bool, Result<StoredElement>)>,
    ) -> Result<Self> {
        let mut set = KeySet::default();
        let mut revoked_ids = HashSet::new();
        // Ids seen so far: a set, so that reading a ring is linear in its size.
        let mut key_ids = HashSet::with_capacity(count);
        for (is_revocation, classified) in classified {
            match classified {
                Ok(StoredElement::Key(k)) => {
                    if !key_ids.insert(k.id) {
                        tracing::warn!(key_id = %k.id, "duplicate key id in the repository; keeping the first");
                        set.problems
                            .push(KeySetProblem::DuplicateKey { key_id: k.id });
                    } else {
                        set.keys.push(Key {
                            xml: k,
                            revoked: false,
                        });
                    }
                }
                Ok(StoredElement::Revocation(r)) => {
                    if let RevocationTarget::Key(id) = r.target {
                        revoked_ids.insert(id);
                    }
                    set.revocations.push(r);
                }
                Ok(StoredElement::Other) => set.foreign_elements += 1,
                Err(err) if is_revocation => return Err(err),
                Err(err) => {
                    tracing::warn!(error = %err, "skipping a key element that could not be read");
                    set.problems.push(KeySetProblem::MalformedKey {
                        source: Arc::new(err),
                    });
                }
            }
        }
        let latest_mass = set.latest_mass_revocation();
        for key in &mut set.keys {
            let mass = latest_mass.is_some_and(|d| key.xml.creation_date < d);
            key.revoked = mass || revoked_ids.contains(&key.xml.id);
        }
        for id in revoked_ids {
            if !key_ids.contains(&id) {
                tracing::debug!(key_id = %id, "revocation names a key that is not in the repository");
            }
        }
        Ok(set)
    }

    /// The date of the latest `<revocation>` of every key created before a
    /// date, if any: the only one that matters, since each revokes every key
    /// created before it.
    pub fn latest_mass_revocation(&self) -> Option<OffsetDateTime> {
        self.revocations
            .iter()
            .filter(|r| r.target == RevocationTarget::AllCreatedBefore)
            .map(|r| r.date)
            .max()
    }

    /// Ids of keys stored more than once (the first element is used).
    pub fn duplicate_key_ids(&self) -> impl Iterator<Item = Uuid> + '_ {
        self.problems.iter().filter_map(|p| match p {
            KeySetProblem::DuplicateKey { key_id } => Some(*key_id),
            KeySetProblem::MalformedKey { .. } => None,
        })
    }

    /// Policy view of the keys.
    pub fn infos(&self) -> Vec<KeyInfo> {
        self.keys.iter().map(Key::info).collect()
    }

    /// The key with `id`.
    pub fn get(&self, id: Uuid) -> Option<&Key> {
        self.keys.iter().find(|k| k.xml.id == id)
    }
}

/// A shared, lazily filled slot for a key's encryptor (its master key
/// decrypted at most once per process), with why it failed if it did.
pub(crate) type EncryptorSlot = Arc<crate::key_slot::KeySlot>;

/// One key of a loaded ring.
#[derive(Clone)]
pub(crate) struct RingEntry {
    pub key: Key,
    pub slot: EncryptorSlot,
}

/// A loaded key ring: every key, and the default key with its encryptor.
/// Immutable; a refresh builds a new one (sharing the keys with the previous
/// one when the repository has not changed).
#[derive(Clone)]
pub struct KeyRing {
    pub(crate) entries: Arc<[RingEntry]>,
    pub(crate) index: Arc<KeyIndex>,
    pub(crate) default: Option<DefaultKey>,
    pub(crate) problems: Arc<[KeySetProblem]>,
    /// [`KeySet::latest_mass_revocation`] of the keys read.
    pub(crate) latest_mass_revocation: Option<OffsetDateTime>,
    pub(crate) loaded_at: OffsetDateTime,
}

/// Ring entries by the key id as a payload carries it (.NET `Guid` byte
/// order): a sorted array searched by binary search, which costs a few
/// comparisons of 16 bytes where a `HashMap<Uuid, _>` spent ~160
/// instructions on SipHash per `unprotect`, and has no hash to flood.
#[derive(Clone, Default)]
pub(crate) struct KeyIndex(Vec<([u8; 16], usize)>);

impl KeyIndex {
    /// Indexes `(payload key id bytes, entry index)` pairs; with a
    /// duplicated id, the first pair wins.
    pub fn new(mut pairs: Vec<([u8; 16], usize)>) -> Self {
        // Pairs are distinct (each index once), so an unstable sort gives
        // the one order.
        pairs.sort_unstable_by_key(|p| (p.0, p.1));
        pairs.dedup_by_key(|p| p.0);
        KeyIndex(pairs)
    }

    /// The entry index of the key whose payload id bytes are `id`.
    #[inline]
    pub fn get(&self, id: &[u8; 16]) -> Option<usize> {
        self.0
            .binary_search_by(|p| p.0.cmp(id))
            .ok()
            .map(|i| self.0[i].1)
    }
}

#[derive(Clone)]
pub(crate) struct DefaultKey {
    pub id: Uuid,
    /// The first 20 bytes of every payload this key protects (the version 0
    /// magic header and the key id), so that recognising a payload of the
    /// default key is one comparison.
    pub header: [u8; crate::payload::HEADER_LEN],
    /// The encryptor bound to the purpose chains protectors use with it.
    pub bindings: Arc<crate::bindings::Bindings>,
    pub encryptor: Arc<dyn AuthenticatedEncryptor>,
}

impl fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyRing")
            .field(
                "keys",
                &self.entries.iter().map(|e| &e.key).collect::<Vec<_>>(),
            )
            .field("default_key", &self.default.as_ref().map(|d| d.id))
            .field("loaded_at", &self.loaded_at)
            .finish()
    }
}

/// A key of a loaded ring, with what is known about its usability.
#[derive(Clone, Debug)]
pub struct KeyStatus {
    /// The key.
    pub key: Key,
    /// Whether it is the default key.
    pub is_default: bool,
    /// Its algorithm, once its descriptor has been read.
    pub algorithm: Option<Algorithm>,
    /// `Some(true)` if its master key has been decrypted, `Some(false)` if it
    /// cannot be, `None` if not tried yet.
    pub can_decrypt: Option<bool>,
    /// Why it cannot be used, if it cannot (or, for a failure that may pass,
    /// why it could not be used the last time it was tried).
    pub problem: Option<Arc<Error>>,
}

impl KeyRing {
    /// The default key's id.
    pub fn default_key_id(&self) -> Option<Uuid> {
        self.default.as_ref().map(|d| d.id)
    }

    /// Every key, oldest first, with its status.
    pub fn keys(&self) -> Vec<KeyStatus> {
        let mut out: Vec<KeyStatus> = self
            .entries
            .iter()
            .map(|e| {
                let problem = e.slot.failure().map(|f| f.error().clone());
                KeyStatus {
                    key: e.key.clone(),
                    is_default: self.default_key_id() == Some(e.key.id()),
                    algorithm: read_descriptor_algorithm(&e.key.xml().descriptor)
                        .ok()
                        .map(|(_, a)| a),
                    can_decrypt: if e.slot.get().is_some() {
                        Some(true)
                    } else if problem.is_some() {
                        Some(false)
                    } else {
                        None
                    },
                    problem,
                }
            })
            .collect();
        out.sort_by_key(|s| (s.key.creation_date(), s.key.id()));
        out
    }

    /// Elements that could not be interpreted when the ring was loaded.
    pub fn problems(&self) -> &[KeySetProblem] {
        &self.problems
    }

    /// When this ring was loaded.
    pub fn loaded_at(&self) -> OffsetDateTime {
        self.loaded_at
    }

    pub(crate) fn default_or_err(&self) -> Result<&DefaultKey> {
        self.default.as_ref().ok_or_else(|| Error::NoDefaultKey {
            reason: "the key ring has no usable default key".into(),
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::{KeyIndex, KeySet};
    use crate::crypto::{Algorithm, Secret};
    use crate::xml::{Element, KeyXml, descriptor_element};

    /// A key with id `n`, its master key derived from `n`.
    fn key(n: u128) -> KeyXml {
        KeyXml {
            id: uuid::Uuid::from_u128(n),
            creation_date: time::macros::datetime!(2024-01-01 0:00 UTC),
            activation_date: time::macros::datetime!(2024-01-01 0:00 UTC),
            expiration_date: time::macros::datetime!(2024-04-01 0:00 UTC),
            descriptor: descriptor_element(Algorithm::default(), &Secret::new(vec![n as u8; 64])),
        }
    }

    #[test]
    fn a_key_set_read_from_owned_elements_is_the_one_read_from_borrowed_ones() {
        let revocation = Element::parse(&format!(
            "<revocation version='1'><revocationDate>2024-02-01T00:00:00Z</revocationDate>\
             <key id='{}'/><reason>test</reason></revocation>",
            uuid::Uuid::from_u128(2)
        ))
        .unwrap();
        let elements = vec![
            key(1).to_element(),
            key(2).to_element(),
            key(1).to_element(),
            Element::new("foreign"),
            Element::parse("<key id='not-a-guid'/>").unwrap(),
            revocation,
            key(3).to_element(),
        ];
        let borrowed = KeySet::from_elements(&elements).unwrap();
        let owned = KeySet::from_owned_elements(elements).unwrap();
        assert_eq!(borrowed.keys, owned.keys);
        assert_eq!(borrowed.revocations, owned.revocations);
        assert_eq!(borrowed.foreign_elements, owned.foreign_elements);
        assert_eq!(
            format!("{:?}", borrowed.problems),
            format!("{:?}", owned.problems)
        );
        let ids: Vec<u128> = owned.keys.iter().map(|k| k.id().as_u128()).collect();
        assert_eq!(ids, [1, 2, 3]);
        let revoked: Vec<bool> = owned.keys.iter().map(|k| k.is_revoked()).collect();
        assert_eq!(revoked, [false, true, false]);
        assert_eq!(owned.keys[0].xml(), &key(1));
        assert_eq!(owned.problems.len(), 2);

        let bad_revocation = vec![key(1).to_element(), Element::new("revocation")];
        assert!(KeySet::from_owned_elements(bad_revocation.clone()).is_err());
        assert!(KeySet::from_elements(&bad_revocation).is_err());
    }

    /// A ring large enough to be interpreted on several threads (where
    /// there are several cores): the same pattern of keys, duplicates,
    /// foreign and malformed elements and revocations, 300 times over, reads
    /// as it does one element at a time.
    #[test]
    fn a_large_ring_reads_the_same_on_several_threads() {
        let mut elements = Vec::new();
        for r in 0..300u128 {
            let base = 10 * r;
            elements.extend([
                key(base + 1).to_element(),
                key(base + 2).to_element(),
                key(base + 1).to_element(),
                Element::new("foreign"),
                Element::parse("<key id='not-a-guid'/>").unwrap(),
                Element::parse(&format!(
                    "<revocation version='1'><revocationDate>2024-02-01T00:00:00Z\
                     </revocationDate><key id='{}'/></revocation>",
                    uuid::Uuid::from_u128(base + 2)
                ))
                .unwrap(),
            ]);
        }
        assert!(elements.len() > 4 * 256, "several blocks of elements");
        let borrowed = KeySet::from_elements(&elements).unwrap();
        let owned = KeySet::from_owned_elements(elements.clone()).unwrap();
        assert_eq!(borrowed.keys, owned.keys);
        assert_eq!(borrowed.revocations, owned.revocations);
        assert_eq!(borrowed.foreign_elements, 300);
        assert_eq!(owned.foreign_elements, 300);
        assert_eq!(
            format!("{:?}", borrowed.problems),
            format!("{:?}", owned.problems)
        );
        assert_eq!(owned.problems.len(), 600);
        let ids: Vec<u128> = owned.keys.iter().map(|k| k.id().as_u128()).collect();
        let expected: Vec<u128> = (0..300).flat_map(|r| [10 * r + 1, 10 * r + 2]).collect();
        assert_eq!(ids, expected);
        assert!(
            owned
                .keys
                .iter()
                .all(|k| k.is_revoked() == (k.id().as_u128() % 10 == 2))
        );

        // A malformed revocation anywhere fails the whole read.
        elements.insert(1000, Element::new("revocation"));
        assert!(KeySet::from_owned_elements(elements.clone()).is_err());
        assert!(KeySet::from_elements(&elements).is_err());
    }

    fn id(n: u8) -> [u8; 16] {
        let mut id = [0u8; 16];
        id[0] = n;
        id[15] = 255 - n;
        id
    }

    #[test]
    fn key_index_finds_every_id_and_nothing_else() {
        let pairs: Vec<_> = [9u8, 3, 200, 0, 77]
            .iter()
            .enumerate()
            .map(|(i, n)| (id(*n), i))
            .collect();
        let index = KeyIndex::new(pairs.clone());
        for (id, entry) in pairs {
            assert_eq!(index.get(&id), Some(entry));
        }
        assert_eq!(index.get(&id(4)), None);
        assert_eq!(index.get(&[0xFF; 16]), None);
        assert_eq!(KeyIndex::default().get(&id(3)), None);
    }

    #[test]
    fn key_index_keeps_the_first_entry_of_a_duplicated_id() {
        let index = KeyIndex::new(vec![(id(5), 2), (id(1), 0), (id(5), 1)]);
        assert_eq!(index.get(&id(5)), Some(1));
        assert_eq!(index.get(&id(1)), Some(0));
    }
}
