//! A typed health check of a key ring: what is wrong with the keys
//! themselves, as data a tool presents (`dpkeys doctor` does) or a program
//! acts on, never as text to parse.
//!
//! [`KeySet::diagnose`] and [`KeySet::diagnose_with`] judge what a repository
//! holds; [`KeyRing::diagnose`] judges the ring a provider has loaded (it
//! knows what the provider tried to decrypt, but not the revocation elements
//! themselves). Both are pure functions of their input and `now`: no I/O, no
//! clock.
//!
//! ```
//! use dataprotection::diagnosis::{Finding, Severity};
//! use dataprotection::KeySet;
//! use time::macros::datetime;
//!
//! // An empty ring: nothing can protect until a key is created.
//! let diagnosis = KeySet::default().diagnose(datetime!(2030-01-01 0:00 UTC));
//! assert_eq!(diagnosis.worst(), Some(Severity::Error));
//! assert!(matches!(
//!     diagnosis.findings[..],
//!     [Finding::NoDefaultKey { fallback_key: None }]
//! ));
//! ```

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use time::OffsetDateTime;
use uuid::Uuid;

use crate::crypto::MIN_MASTER_KEY_LEN;
use crate::encryption::WINDOWS_ONLY_DECRYPTOR_TYPES;
use crate::error::Error;
use crate::key::{Key, KeyRing, KeySet, KeySetProblem};
use crate::key_slot::KeyFailure;
use crate::policy::{self, DEFAULT_KEY_LIFETIME, KeyInfo, MAX_SERVER_CLOCK_SKEW};
use crate::xml::{DATA_PROTECTION_NS, Element, format_date, normalize_type_name};

/// How bad a [`Finding`] is. Ordered: `Info < Warning < Error`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum Severity {
    /// Worth knowing; nothing fails because of it.
    Info,
    /// Something will fail later, or only in some cases, or is unsafe.
    Warning,
    /// Applications fail now (or a key is not what a key manager writes).
    Error,
}

/// What is known about a key's master key when the ring is diagnosed.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum MasterKeyCheck {
    /// Decryption was not attempted: the key is assumed usable, unless its
    /// descriptor is protected with Windows-only DPAPI.
    NotChecked,
    /// The master key was read; `len` is its length in bytes.
    Decrypted {
        /// Length of the master key in bytes.
        len: usize,
    },
    /// The master key could not be read (its decryptor is unknown or
    /// Windows-only, the vault refused, the XML is malformed...).
    Failed(Arc<Error>),
}

/// Where a key is in its life, for judging how much a problem with it matters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyState {
    /// A revocation applies (it only unprotects, and only through
    /// [`UnprotectOptions::ignore_revocation`](crate::UnprotectOptions::ignore_revocation)).
    Revoked,
    /// Past its expiration date: it still unprotects old payloads.
    Expired,
    /// Neither revoked nor expired: it protects, or will.
    Live,
}

impl KeyState {
    fn of(key: &Key, now: OffsetDateTime) -> Self {
        if key.is_revoked() {
            KeyState::Revoked
        } else if key.is_expired(now) {
            KeyState::Expired
        } else {
            KeyState::Live
        }
    }

    /// A problem with a live key is an error; with a revoked or expired one,
    /// a warning (it only matters for old payloads).
    fn severity(self) -> Severity {
        match self {
            KeyState::Live => Severity::Error,
            KeyState::Revoked | KeyState::Expired => Severity::Warning,
        }
    }
}

/// Why a key will never be the default key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum NeverUsedReason {
    /// Its activation date is not before its expiration date.
    ActivationNotBeforeExpiration,
    /// When it was created, another key with a later activation date was
    /// already active, and the most recently activated key wins.
    SupersededAtCreation {
        /// The key that wins.
        by: Uuid,
    },
    /// Another key has the same activation date and a smaller id, which
    /// wins the tie (keys created concurrently).
    LosesTie {
        /// The key that wins.
        to: Uuid,
    },
}

/// One thing wrong (or worth knowing) about a key ring. Match on the variant;
/// the `Display` text is for people and may change.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Finding {
    /// A `<key>` element could not be read; it is skipped, never deleted.
    MalformedKey {
        /// Why it could not be read.
        source: Arc<Error>,
    },
    /// A key id is stored more than once. This library uses the first
    /// element; .NET refuses the whole ring.
    DuplicateKey {
        /// The repeated id.
        key_id: Uuid,
    },
    /// A revocation of every key created before `date` is dated in the
    /// future (beyond the clock-skew tolerance): every key created until
    /// then is revoked as soon as it is made.
    FutureMassRevocation {
        /// The revocation date.
        date: OffsetDateTime,
    },
    /// A revocation of every key created before `date` revokes every key in
    /// the ring (after a compromise this is intended; a new key is needed).
    EveryKeyRevoked {
        /// The revocation date.
        date: OffsetDateTime,
    },
    /// A key's master key could not be decrypted.
    UndecryptableKey {
        /// The key.
        key_id: Uuid,
        /// Whether it is live, expired or revoked.
        state: KeyState,
        /// Why (typed: [`Error::UnknownDecryptor`],
        /// [`Error::WindowsOnlyProtection`], [`Error::KeyDecryption`]...).
        source: Arc<Error>,
    },
    /// A key's master key is protected with Windows DPAPI or DPAPI-NG, which
    /// only Windows can decrypt (reported when decryption was not attempted;
    /// an attempt reports [`Finding::UndecryptableKey`] with
    /// [`Error::WindowsOnlyProtection`]).
    WindowsOnlyProtection {
        /// The key.
        key_id: Uuid,
        /// Whether it is live, expired or revoked.
        state: KeyState,
        /// The `decryptorType` (normalized).
        decryptor_type: String,
    },
    /// A master key shorter than 128 bits: never used for new payloads (it
    /// still unprotects), and not made by a Data Protection implementation.
    WeakMasterKey {
        /// The key.
        key_id: Uuid,
        /// The master key's length in bits.
        bits: usize,
    },
    /// A key activated after it expires: never used, never written by a key
    /// manager.
    InvertedDates {
        /// The key.
        key_id: Uuid,
        /// Its activation date.
        activation: OffsetDateTime,
        /// Its expiration date.
        expiration: OffsetDateTime,
    },
    /// No key may protect now.
    NoDefaultKey {
        /// The key applications that may not create keys protect with
        /// instead, if any.
        fallback_key: Option<Uuid>,
    },
    /// The key that would be the default by its dates is revoked, and
    /// nothing replaces it yet.
    RevokedDefault {
        /// The revoked key.
        key_id: Uuid,
    },
    /// The default key expires within the refresh period plus the
    /// propagation window, and no usable key takes over in time (a gap):
    /// applications that may create keys will each create one.
    NoSuccessor {
        /// The default key.
        default_key: Uuid,
        /// When it expires.
        expiration: OffsetDateTime,
    },
    /// A key that is neither revoked nor expired will never be the default.
    NeverUsed {
        /// The key.
        key_id: Uuid,
        /// Why.
        reason: NeverUsedReason,
    },
    /// A key's master key is stored in clear: anyone who can read the
    /// repository can read and forge payloads.
    StoredUnencrypted {
        /// The key.
        key_id: Uuid,
    },
    /// A key activates within the clock-skew tolerance of now: until it is
    /// well past, instances whose clocks differ may disagree on which key is
    /// the default (both decrypt, so this is informational).
    ActivationWithinClockSkew {
        /// The key.
        key_id: Uuid,
        /// Its activation date.
        activation: OffsetDateTime,
    },
}

impl Finding {
    /// How bad it is.
    pub fn severity(&self) -> Severity {
        match self {
            Finding::MalformedKey { .. }
            | Finding::EveryKeyRevoked { .. }
            | Finding::NoSuccessor { .. }
            | Finding::NeverUsed { .. }
            | Finding::StoredUnencrypted { .. } => Severity::Warning,
            Finding::DuplicateKey { .. }
            | Finding::FutureMassRevocation { .. }
            | Finding::WeakMasterKey { .. }
            | Finding::InvertedDates { .. }
            | Finding::NoDefaultKey { .. }
            | Finding::RevokedDefault { .. } => Severity::Error,
            Finding::UndecryptableKey { state, .. }
            | Finding::WindowsOnlyProtection { state, .. } => state.severity(),
            Finding::ActivationWithinClockSkew { .. } => Severity::Info,
        }
    }

    /// The key it is about, if it is about one key.
    pub fn key_id(&self) -> Option<Uuid> {
        match self {
            Finding::DuplicateKey { key_id }
            | Finding::UndecryptableKey { key_id, .. }
            | Finding::WindowsOnlyProtection { key_id, .. }
            | Finding::WeakMasterKey { key_id, .. }
            | Finding::InvertedDates { key_id, .. }
            | Finding::RevokedDefault { key_id }
            | Finding::NeverUsed { key_id, .. }
            | Finding::StoredUnencrypted { key_id }
            | Finding::ActivationWithinClockSkew { key_id, .. } => Some(*key_id),
            Finding::NoSuccessor { default_key, .. } => Some(*default_key),
            Finding::MalformedKey { .. }
            | Finding::FutureMassRevocation { .. }
            | Finding::EveryKeyRevoked { .. }
            | Finding::NoDefaultKey { .. } => None,
        }
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Finding::MalformedKey { source } => {
                write!(f, "a key element is malformed and ignored: {source}")
            }
            Finding::DuplicateKey { key_id } => write!(f, "key {key_id} is stored more than once"),
            Finding::FutureMassRevocation { date } => write!(
                f,
                "every key created before {} (in the future) is revoked",
                format_date(*date)
            ),
            Finding::EveryKeyRevoked { date } => write!(
                f,
                "every key is revoked (all keys created before {} are)",
                format_date(*date)
            ),
            Finding::UndecryptableKey { key_id, source, .. } => {
                write!(f, "key {key_id} cannot be decrypted: {source}")
            }
            Finding::WindowsOnlyProtection {
                key_id,
                decryptor_type,
                ..
            } => write!(
                f,
                "key {key_id} is protected with Windows DPAPI ({decryptor_type}): only Windows can decrypt it"
            ),
            Finding::WeakMasterKey { key_id, bits } => write!(
                f,
                "key {key_id} has a master key of {bits} bits, shorter than 128"
            ),
            Finding::InvertedDates {
                key_id,
                activation,
                expiration,
            } => write!(
                f,
                "key {key_id} is activated at {}, after it expires at {}",
                format_date(*activation),
                format_date(*expiration)
            ),
            Finding::NoDefaultKey { fallback_key } => {
                f.write_str("there is no usable default key")?;
                match fallback_key {
                    Some(id) => write!(f, " (fallback key {id})"),
                    None => Ok(()),
                }
            }
            Finding::RevokedDefault { key_id } => {
                write!(f, "the key that would be the default, {key_id}, is revoked")
            }
            Finding::NoSuccessor {
                default_key,
                expiration,
            } => write!(
                f,
                "the default key {default_key} expires at {} and no usable successor is in place",
                format_date(*expiration)
            ),
            Finding::NeverUsed { key_id, reason } => {
                write!(f, "key {key_id} will never be used: ")?;
                match reason {
                    NeverUsedReason::ActivationNotBeforeExpiration => {
                        f.write_str("its activation date is not before its expiration date")
                    }
                    NeverUsedReason::SupersededAtCreation { by } => write!(
                        f,
                        "key {by} was already active when it was created, with a later activation date"
                    ),
                    NeverUsedReason::LosesTie { to } => {
                        write!(f, "key {to} has the same activation date and wins the tie")
                    }
                }
            }
            Finding::StoredUnencrypted { key_id } => {
                write!(f, "key {key_id} is stored unencrypted")
            }
            Finding::ActivationWithinClockSkew { key_id, activation } => write!(
                f,
                "key {key_id} activates at {}, within the clock-skew tolerance of now",
                format_date(*activation)
            ),
        }
    }
}

/// The result of a diagnosis: findings, and the facts they were judged on.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Diagnosis {
    /// The instant the ring was judged at.
    pub at: OffsetDateTime,
    /// What is wrong or worth knowing, grouped by kind in a stable order.
    pub findings: Vec<Finding>,
    /// The default key at [`Diagnosis::at`], if one is usable.
    pub default_key: Option<KeyInfo>,
    /// The key that takes over when the default key expires, if one is in
    /// place already.
    pub successor: Option<Uuid>,
}

impl Diagnosis {
    /// The worst severity found (`None`: no findings at all).
    pub fn worst(&self) -> Option<Severity> {
        self.findings.iter().map(Finding::severity).max()
    }

    /// Whether nothing is worse than [`Severity::Info`].
    pub fn is_healthy(&self) -> bool {
        self.worst().is_none_or(|s| s <= Severity::Info)
    }
}

/// What a diagnosis is computed from, whichever type holds it.
struct Subject<'a> {
    keys: Vec<&'a Key>,
    problems: &'a [KeySetProblem],
    latest_mass_revocation: Option<OffsetDateTime>,
    /// The default key already chosen (a loaded ring), or `None` to resolve
    /// it from the dates and the master-key checks.
    chosen_default: Option<Option<Uuid>>,
}

impl KeySet {
    /// Judges the stored keys at `now` without decrypting anything: every
    /// master key is assumed usable, except one protected with Windows-only
    /// DPAPI. See [`KeySet::diagnose_with`] to include decryption results.
    pub fn diagnose(&self, now: OffsetDateTime) -> Diagnosis {
        self.diagnose_with(now, &HashMap::new())
    }

    /// Judges the stored keys at `now`, given what decrypting their master
    /// keys gave (keys missing from `master_keys` count as
    /// [`MasterKeyCheck::NotChecked`]). Only a key that decrypted to at least
    /// 128 bits, or was not checked, may be the default.
    pub fn diagnose_with(
        &self,
        now: OffsetDateTime,
        master_keys: &HashMap<Uuid, MasterKeyCheck>,
    ) -> Diagnosis {
        let subject = Subject {
            keys: self.keys.iter().collect(),
            problems: &self.problems,
            latest_mass_revocation: self.latest_mass_revocation(),
            chosen_default: None,
        };
        diagnose(&subject, now, &|id| {
            master_keys
                .get(&id)
                .cloned()
                .unwrap_or(MasterKeyCheck::NotChecked)
        })
    }
}

impl KeyRing {
    /// Judges this loaded ring at `now`: its default key as the provider
    /// chose it, its latest mass revocation, and the master keys as far as
    /// the provider has decrypted them (keys not tried yet, or whose
    /// decryptor could not be reached, count as usable).
    pub fn diagnose(&self, now: OffsetDateTime) -> Diagnosis {
        let subject = Subject {
            keys: self.entries.iter().map(|e| &e.key).collect(),
            problems: &self.problems,
            latest_mass_revocation: self.latest_mass_revocation,
            chosen_default: Some(self.default_key_id()),
        };
        let checks: HashMap<Uuid, MasterKeyCheck> = self
            .entries
            .iter()
            .map(|e| {
                let id = e.key.id();
                let check = match (e.slot.get(), e.slot.failure()) {
                    (Some(encryptor), _) => MasterKeyCheck::Decrypted {
                        len: encryptor.master_key_len().unwrap_or(MIN_MASTER_KEY_LEN),
                    },
                    // Only a permanent failure says the key is unusable; a
                    // vault that could not be reached says nothing about it.
                    (None, Some(KeyFailure::Permanent(error))) => MasterKeyCheck::Failed(error),
                    (None, _) => MasterKeyCheck::NotChecked,
                };
                (id, check)
            })
            .collect();
        diagnose(&subject, now, &|id| {
            checks
                .get(&id)
                .cloned()
                .unwrap_or(MasterKeyCheck::NotChecked)
        })
    }
}

/// The `decryptorType` of a Windows-only protection below `e`, if any.
fn windows_only_decryptor(e: &Element) -> Option<String> {
    e.elements().find_map(|child| {
        if child.is_ns(DATA_PROTECTION_NS, "encryptedSecret") {
            child
                .attr("decryptorType")
                .map(normalize_type_name)
                .filter(|t| WINDOWS_ONLY_DECRYPTOR_TYPES.contains(&t.as_str()))
        } else {
            windows_only_decryptor(child)
        }
    })
}

fn diagnose(
    subject: &Subject<'_>,
    now: OffsetDateTime,
    check: &dyn Fn(Uuid) -> MasterKeyCheck,
) -> Diagnosis {
    let mut findings = Vec::new();
    for problem in subject.problems {
        findings.push(match problem {
            KeySetProblem::DuplicateKey { key_id } => Finding::DuplicateKey { key_id: *key_id },
            KeySetProblem::MalformedKey { source } => Finding::MalformedKey {
                source: source.clone(),
            },
        });
    }
    if let Some(date) = subject.latest_mass_revocation {
        if date > now.saturating_add(MAX_SERVER_CLOCK_SKEW) {
            findings.push(Finding::FutureMassRevocation { date });
        } else if !subject.keys.is_empty() && subject.keys.iter().all(|k| k.creation_date() < date)
        {
            findings.push(Finding::EveryKeyRevoked { date });
        }
    }

    // Master keys: which may protect (decrypted to at least 128 bits, or not
    // checked and not Windows-only).
    let mut usable: HashMap<Uuid, bool> = HashMap::with_capacity(subject.keys.len());
    for key in &subject.keys {
        let id = key.id();
        let state = KeyState::of(key, now);
        let ok = match check(id) {
            MasterKeyCheck::Decrypted { len } => {
                if len < MIN_MASTER_KEY_LEN {
                    findings.push(Finding::WeakMasterKey {
                        key_id: id,
                        bits: len * 8,
                    });
                }
                len >= MIN_MASTER_KEY_LEN
            }
            MasterKeyCheck::Failed(source) => {
                findings.push(Finding::UndecryptableKey {
                    key_id: id,
                    state,
                    source,
                });
                false
            }
            MasterKeyCheck::NotChecked => match windows_only_decryptor(&key.xml().descriptor) {
                Some(decryptor_type) => {
                    findings.push(Finding::WindowsOnlyProtection {
                        key_id: id,
                        state,
                        decryptor_type,
                    });
                    false
                }
                None => true,
            },
        };
        usable.insert(id, ok);
    }
    for key in &subject.keys {
        if key.activation_date() > key.expiration_date() {
            findings.push(Finding::InvertedDates {
                key_id: key.id(),
                activation: key.activation_date(),
                expiration: key.expiration_date(),
            });
        }
    }

    // The default key and its successor.
    let infos: Vec<KeyInfo> = subject.keys.iter().map(|k| k.info()).collect();
    let is_usable = |k: &KeyInfo| usable.get(&k.id).copied().unwrap_or(false);
    let resolution = policy::resolve_default_key(&infos, now, &is_usable);
    // A loaded ring's default stands while it is neither revoked nor expired
    // at `now` (a ring judged later than it was loaded may have outlived it).
    let default_id = subject
        .chosen_default
        .flatten()
        .filter(|id| {
            infos
                .iter()
                .any(|k| k.id == *id && !k.revoked && !k.is_expired(now))
        })
        .or(resolution.default_key);
    let default_key = default_id.and_then(|id| infos.iter().find(|k| k.id == id).cloned());
    let mut successor = None;
    match &default_key {
        Some(default) => {
            if policy::plan_new_key(&infos, now, DEFAULT_KEY_LIFETIME, &is_usable).is_some() {
                findings.push(Finding::NoSuccessor {
                    default_key: default.id,
                    expiration: default.expiration_date,
                });
            } else {
                successor =
                    policy::resolve_default_key(&infos, default.expiration_date, &is_usable)
                        .default_key
                        .filter(|id| *id != default.id);
            }
        }
        None => {
            if let Some(preferred) = policy::preferred_key(&infos, now)
                && preferred.revoked
                && !preferred.is_expired(now)
            {
                findings.push(Finding::RevokedDefault {
                    key_id: preferred.id,
                });
            }
            findings.push(Finding::NoDefaultKey {
                fallback_key: resolution.fallback_key,
            });
        }
    }

    never_used(&subject.keys, now, &mut findings);
    for key in &subject.keys {
        if key.is_stored_unencrypted() {
            findings.push(Finding::StoredUnencrypted { key_id: key.id() });
        }
    }
    for key in &subject.keys {
        let activation = key.activation_date();
        if !key.is_revoked()
            && !key.is_expired(now)
            && activation > now.saturating_sub(MAX_SERVER_CLOCK_SKEW)
            && activation <= now.saturating_add(MAX_SERVER_CLOCK_SKEW)
        {
            findings.push(Finding::ActivationWithinClockSkew {
                key_id: key.id(),
                activation,
            });
        }
    }
    Diagnosis {
        at: now,
        findings,
        default_key,
        successor,
    }
}

/// Live keys that will never be the default: the policy prefers the most
/// recently activated key, ties going to the smaller id.
fn never_used(keys: &[&Key], now: OffsetDateTime, findings: &mut Vec<Finding>) {
    let live: Vec<&Key> = keys.iter().copied().filter(|k| !k.is_revoked()).collect();
    for k in &live {
        if k.is_expired(now) {
            continue;
        }
        let reason = if k.activation_date() >= k.expiration_date() {
            Some(NeverUsedReason::ActivationNotBeforeExpiration)
        } else if let Some(l) = live.iter().find(|l| {
            l.activation_date() > k.activation_date() && l.activation_date() <= k.creation_date()
        }) {
            Some(NeverUsedReason::SupersededAtCreation { by: l.id() })
        } else {
            live.iter()
                .find(|l| {
                    l.id() < k.id()
                        && l.activation_date() == k.activation_date()
                        && !l.is_expired(now)
                })
                .map(|l| NeverUsedReason::LosesTie { to: l.id() })
        };
        if let Some(reason) = reason {
            findings.push(Finding::NeverUsed {
                key_id: k.id(),
                reason,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::{Algorithm, Secret};
    use crate::xml::{KeyXml, RevocationTarget, RevocationXml, descriptor_element};
    use time::Duration;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2030-06-01 12:00 UTC);

    fn id(n: u128) -> Uuid {
        Uuid::from_u128(n)
    }

    /// A `<key>` element with a 256-bit master key in clear.
    fn key(
        n: u128,
        created: OffsetDateTime,
        activates: OffsetDateTime,
        expires: Duration,
    ) -> Element {
        KeyXml {
            id: id(n),
            creation_date: created,
            activation_date: activates,
            expiration_date: activates + expires,
            descriptor: descriptor_element(Algorithm::default(), &Secret::new(vec![7; 32])),
        }
        .to_element()
    }

    /// A key created 10 days ago, active since then, expiring in 80 days.
    fn healthy(n: u128) -> Element {
        let created = NOW - Duration::days(10);
        key(n, created, created, Duration::days(90))
    }

    fn set(elements: &[Element]) -> KeySet {
        KeySet::from_elements(elements).unwrap()
    }

    fn decrypted(set: &KeySet) -> HashMap<Uuid, MasterKeyCheck> {
        set.keys
            .iter()
            .map(|k| (k.id(), MasterKeyCheck::Decrypted { len: 32 }))
            .collect()
    }

    /// Marks every key's master key as encrypted at rest (so that
    /// `StoredUnencrypted` does not drown the finding under test).
    fn encrypted(mut e: Element, decryptor_type: &str) -> Element {
        let descriptor = e.elements_mut().find(|c| c.is("descriptor")).unwrap();
        let mut secret = Element::new_ns("encryptedSecret", DATA_PROTECTION_NS)
            .with_attr("decryptorType", decryptor_type);
        secret.declare_namespace("", DATA_PROTECTION_NS);
        let inner = Element::new("descriptor").with_child(secret.with_child(Element::new("x")));
        descriptor.children = vec![crate::xml::Node::Element(inner)];
        e
    }

    fn kinds(d: &Diagnosis) -> Vec<String> {
        d.findings
            .iter()
            .map(|f| {
                format!("{f:?}")
                    .split([' ', '{'])
                    .next()
                    .unwrap()
                    .to_string()
            })
            .collect()
    }

    #[test]
    fn a_healthy_ring_has_no_findings() {
        let s = set(&[encrypted(healthy(1), "Some.Vault.Decryptor")]);
        let d = s.diagnose_with(NOW, &decrypted(&s));
        assert!(d.findings.is_empty(), "{:?}", d.findings);
        assert!(d.is_healthy());
        assert_eq!(d.worst(), None);
        assert_eq!(d.default_key.unwrap().id, id(1));
        assert_eq!(d.successor, None);
        assert_eq!(d.at, NOW);
    }

    #[test]
    fn an_empty_ring_has_no_default_key() {
        let d = KeySet::default().diagnose(NOW);
        assert!(matches!(
            d.findings[..],
            [Finding::NoDefaultKey { fallback_key: None }]
        ));
        assert_eq!(d.worst(), Some(Severity::Error));
        assert!(!d.is_healthy());
    }

    #[test]
    fn a_default_key_about_to_expire_without_successor_is_a_gap() {
        let created = NOW - Duration::days(89);
        let s = set(&[encrypted(key(1, created, created, Duration::days(90)), "T")]);
        let d = s.diagnose_with(NOW, &decrypted(&s));
        let expiration = created + Duration::days(90);
        assert!(
            matches!(d.findings[..], [Finding::NoSuccessor { default_key, expiration: e }] if default_key == id(1) && e == expiration),
            "{:?}",
            d.findings
        );
        assert_eq!(d.findings[0].severity(), Severity::Warning);
        assert_eq!(d.findings[0].key_id(), Some(id(1)));

        // A successor activating when the default expires closes the gap.
        let s = set(&[
            encrypted(key(1, created, created, Duration::days(90)), "T"),
            encrypted(
                key(2, NOW - Duration::days(3), expiration, Duration::days(90)),
                "T",
            ),
        ]);
        let d = s.diagnose_with(NOW, &decrypted(&s));
        assert!(d.findings.is_empty(), "{:?}", d.findings);
        assert_eq!(d.successor, Some(id(2)));

        // A successor that cannot be decrypted does not.
        let mut checks = decrypted(&s);
        checks.insert(
            id(2),
            MasterKeyCheck::Failed(Arc::new(Error::UnknownDecryptor {
                type_name: "T".into(),
            })),
        );
        let d = s.diagnose_with(NOW, &checks);
        assert_eq!(kinds(&d), ["UndecryptableKey", "NoSuccessor"]);
        assert_eq!(d.findings[0].severity(), Severity::Error);
    }

    #[test]
    fn duplicate_and_malformed_keys() {
        let broken =
            Element::parse("<key id='not-a-guid' version='1'><creationDate>x</creationDate></key>")
                .unwrap();
        let s = set(&[
            encrypted(healthy(1), "T"),
            encrypted(healthy(1), "T"),
            broken,
        ]);
        let d = s.diagnose_with(NOW, &decrypted(&s));
        assert_eq!(kinds(&d), ["DuplicateKey", "MalformedKey"]);
        assert!(matches!(d.findings[0], Finding::DuplicateKey { key_id } if key_id == id(1)));
        assert_eq!(d.findings[0].severity(), Severity::Error);
        assert!(matches!(
            &d.findings[1],
            Finding::MalformedKey { source } if matches!(**source, Error::MalformedXml { .. })
        ));
        assert_eq!(d.findings[1].severity(), Severity::Warning);
        assert_eq!(d.findings[1].key_id(), None);
    }

    fn mass_revocation(date: OffsetDateTime) -> Element {
        RevocationXml {
            date,
            target: RevocationTarget::AllCreatedBefore,
            reason: None,
        }
        .to_element()
    }

    #[test]
    fn a_mass_revocation_in_the_future_revokes_the_default() {
        let future = NOW + Duration::days(3);
        let s = set(&[encrypted(healthy(1), "T"), mass_revocation(future)]);
        let d = s.diagnose_with(NOW, &decrypted(&s));
        assert_eq!(
            kinds(&d),
            ["FutureMassRevocation", "RevokedDefault", "NoDefaultKey"]
        );
        assert!(matches!(d.findings[0], Finding::FutureMassRevocation { date } if date == future));
        assert!(matches!(d.findings[1], Finding::RevokedDefault { key_id } if key_id == id(1)));
        // Within the clock-skew tolerance it is not "in the future".
        let s = set(&[
            encrypted(healthy(1), "T"),
            mass_revocation(NOW + Duration::minutes(4)),
        ]);
        let d = s.diagnose_with(NOW, &decrypted(&s));
        assert_eq!(
            kinds(&d),
            ["EveryKeyRevoked", "RevokedDefault", "NoDefaultKey"]
        );
    }

    #[test]
    fn a_past_mass_revocation_followed_by_a_new_key_is_healthy() {
        let s = set(&[
            encrypted(healthy(1), "T"),
            mass_revocation(NOW - Duration::days(5)),
            encrypted(
                key(
                    2,
                    NOW - Duration::days(4),
                    NOW - Duration::days(4),
                    Duration::days(90),
                ),
                "T",
            ),
        ]);
        let d = s.diagnose_with(NOW, &decrypted(&s));
        assert!(d.findings.is_empty(), "{:?}", d.findings);
        assert_eq!(d.default_key.unwrap().id, id(2));
    }

    #[test]
    fn undecryptable_keys_are_judged_by_their_state() {
        let old = NOW - Duration::days(200);
        let s = set(&[
            encrypted(key(1, old, old, Duration::days(90)), "T"),
            encrypted(healthy(2), "T"),
        ]);
        let failed = MasterKeyCheck::Failed(Arc::new(Error::UnknownDecryptor {
            type_name: "T".into(),
        }));
        let checks: HashMap<_, _> = [(id(1), failed.clone()), (id(2), failed)].into();
        let d = s.diagnose_with(NOW, &checks);
        assert_eq!(
            kinds(&d),
            ["UndecryptableKey", "UndecryptableKey", "NoDefaultKey"]
        );
        assert!(matches!(
            d.findings[0],
            Finding::UndecryptableKey { key_id, state: KeyState::Expired, .. } if key_id == id(1)
        ));
        assert_eq!(d.findings[0].severity(), Severity::Warning);
        assert!(matches!(
            &d.findings[1],
            Finding::UndecryptableKey { key_id, state: KeyState::Live, source }
                if *key_id == id(2) && matches!(**source, Error::UnknownDecryptor { .. })
        ));
        assert_eq!(d.findings[1].severity(), Severity::Error);
    }

    #[test]
    fn windows_only_protection_is_found_without_decrypting() {
        let s = set(&[
            encrypted(
                healthy(1),
                "Microsoft.AspNetCore.DataProtection.XmlEncryption.DpapiXmlDecryptor, Microsoft.AspNetCore.DataProtection, Version=8.0.0.0",
            ),
            encrypted(
                key(
                    2,
                    NOW - Duration::days(10),
                    NOW - Duration::days(9),
                    Duration::days(90),
                ),
                "Some.Other.Decryptor",
            ),
        ]);
        let d = s.diagnose(NOW);
        assert!(
            matches!(
                &d.findings[..],
                [Finding::WindowsOnlyProtection { key_id, state: KeyState::Live, decryptor_type }]
                    if *key_id == id(1) && decryptor_type == "Microsoft.AspNetCore.DataProtection.XmlEncryption.DpapiXmlDecryptor"
            ),
            "{:?}",
            d.findings
        );
        // The other key (unchecked, not Windows-only) becomes the default.
        assert_eq!(d.default_key.unwrap().id, id(2));
    }

    #[test]
    fn a_weak_master_key_is_an_error_and_never_the_default() {
        let s = set(&[encrypted(healthy(1), "T")]);
        let checks: HashMap<_, _> = [(id(1), MasterKeyCheck::Decrypted { len: 8 })].into();
        let d = s.diagnose_with(NOW, &checks);
        assert_eq!(kinds(&d), ["WeakMasterKey", "NoDefaultKey"]);
        assert!(
            matches!(d.findings[0], Finding::WeakMasterKey { key_id, bits: 64 } if key_id == id(1))
        );
        assert_eq!(d.findings[0].severity(), Severity::Error);
    }

    #[test]
    fn inverted_dates_and_keys_that_are_never_used() {
        let created = NOW - Duration::days(10);
        let s = set(&[
            encrypted(healthy(1), "T"),
            // Activated after it expires.
            encrypted(
                key(2, created, NOW + Duration::days(30), -Duration::days(1)),
                "T",
            ),
            // Same activation as key 1, larger id: loses the tie.
            encrypted(healthy(3), "T"),
            // Created after key 1 was active, with an earlier activation.
            encrypted(
                key(
                    4,
                    NOW - Duration::days(1),
                    created - Duration::days(1),
                    Duration::days(90),
                ),
                "T",
            ),
        ]);
        let d = s.diagnose_with(NOW, &decrypted(&s));
        assert_eq!(
            kinds(&d),
            ["InvertedDates", "NeverUsed", "NeverUsed", "NeverUsed"],
            "{:?}",
            d.findings
        );
        assert!(matches!(d.findings[0], Finding::InvertedDates { key_id, .. } if key_id == id(2)));
        assert_eq!(d.findings[0].severity(), Severity::Error);
        let reasons: Vec<_> = d.findings[1..]
            .iter()
            .map(|f| match f {
                Finding::NeverUsed { key_id, reason } => (*key_id, *reason),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(
            reasons,
            [
                (id(2), NeverUsedReason::ActivationNotBeforeExpiration),
                (id(3), NeverUsedReason::LosesTie { to: id(1) }),
                (id(4), NeverUsedReason::SupersededAtCreation { by: id(1) }),
            ]
        );
        assert_eq!(d.findings[1].severity(), Severity::Warning);
    }

    #[test]
    fn keys_stored_in_clear_are_a_warning() {
        let s = set(&[healthy(1)]);
        let d = s.diagnose_with(NOW, &decrypted(&s));
        assert!(
            matches!(d.findings[..], [Finding::StoredUnencrypted { key_id }] if key_id == id(1))
        );
        assert_eq!(d.worst(), Some(Severity::Warning));
    }

    #[test]
    fn an_activation_within_the_clock_skew_is_informational() {
        let s = set(&[
            encrypted(healthy(1), "T"),
            encrypted(
                key(
                    2,
                    NOW - Duration::days(3),
                    NOW + Duration::minutes(2),
                    Duration::days(90),
                ),
                "T",
            ),
        ]);
        let d = s.diagnose_with(NOW, &decrypted(&s));
        assert!(
            matches!(d.findings[..], [Finding::ActivationWithinClockSkew { key_id, .. }] if key_id == id(2)),
            "{:?}",
            d.findings
        );
        assert_eq!(d.worst(), Some(Severity::Info));
        assert!(d.is_healthy());
        // Ten minutes later it is simply the default.
        let d = s.diagnose_with(NOW + Duration::minutes(10), &decrypted(&s));
        assert!(d.findings.is_empty(), "{:?}", d.findings);
        assert_eq!(d.default_key.unwrap().id, id(2));
    }

    #[tokio::test]
    async fn a_loaded_ring_is_diagnosed_with_its_own_default() {
        let provider = crate::DataProtectionProvider::builder()
            .repository(Arc::new(crate::repository::InMemoryXmlRepository::new()))
            .build()
            .await
            .unwrap();
        let ring = provider.key_ring().unwrap();
        let default = ring.default_key_id().unwrap();
        let now = ring.loaded_at();
        // One key, made now, decrypted (in clear: no key encryptor).
        let d = ring.diagnose(now + Duration::minutes(10));
        assert_eq!(d.default_key.as_ref().map(|k| k.id), Some(default));
        assert!(
            matches!(d.findings[..], [Finding::StoredUnencrypted { key_id }] if key_id == default),
            "{:?}",
            d.findings
        );
        // Past its expiration, nothing may protect.
        let d = ring.diagnose(now + Duration::days(365));
        assert!(d.default_key.is_none());
        assert!(
            d.findings
                .iter()
                .any(|f| matches!(f, Finding::NoDefaultKey { .. })),
            "{:?}",
            d.findings
        );
    }

    #[tokio::test]
    async fn a_loaded_ring_knows_its_mass_revocation_in_the_future() {
        let repository = Arc::new(crate::repository::InMemoryXmlRepository::new());
        let writer = crate::DataProtectionProvider::builder()
            .repository(repository.clone())
            .build()
            .await
            .unwrap();
        let now = writer.key_ring().unwrap().loaded_at();
        let future = now + Duration::days(3);
        writer
            .key_manager()
            .revoke_all_keys(future, None)
            .await
            .unwrap();
        // A reader that may not create keys loads the ring as it is.
        let reader = crate::DataProtectionProvider::builder()
            .repository(repository)
            .unprotect_only(true)
            .build()
            .await
            .unwrap();
        let d = reader.key_ring().unwrap().diagnose(now);
        assert!(
            d.findings
                .iter()
                // Stored dates keep 100 ns ticks.
                .any(|f| matches!(f, Finding::FutureMassRevocation { date }
                    if (*date - future).abs() < Duration::microseconds(1))),
            "{:?}",
            d.findings
        );
        assert!(d.default_key.is_none(), "{:?}", d.default_key);
        assert!(
            d.findings
                .iter()
                .any(|f| matches!(f, Finding::RevokedDefault { .. })),
            "{:?}",
            d.findings
        );
    }

    #[test]
    fn a_finding_is_displayed_for_people() {
        let d = set(&[healthy(1)]).diagnose(NOW);
        assert_eq!(
            d.findings[0].to_string(),
            format!("key {} is stored unencrypted", id(1))
        );
    }
}
