//! Key-management policy as pure functions of (keys, now, options): which key
//! is the default, and whether a key must be created (format.md §9, the rules
//! of ASP.NET Core 8+'s `DefaultKeyResolver` and `KeyRingProvider`).
//! Date arithmetic saturates at the ends of the date range: a huge lifetime
//! or a clock at the end of time gives the last instant, never a panic.

use time::{Duration, OffsetDateTime};
use uuid::Uuid;

/// Keys created less than this long ago may not have reached every instance.
pub const KEY_PROPAGATION_WINDOW: Duration = Duration::days(2);
/// Activation dates this far in the future are treated as already active.
pub const MAX_SERVER_CLOCK_SKEW: Duration = Duration::minutes(5);
/// How often a key ring is re-read (before jitter).
pub const KEY_RING_REFRESH_PERIOD: Duration = Duration::hours(24);
/// The default lifetime of a new key.
pub const DEFAULT_KEY_LIFETIME: Duration = Duration::days(90);
/// The shortest key lifetime accepted.
pub const MIN_KEY_LIFETIME: Duration = Duration::days(7);

/// What the policy needs to know about a key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyInfo {
    /// Key id.
    pub id: Uuid,
    /// Creation date.
    pub creation_date: OffsetDateTime,
    /// Activation date.
    pub activation_date: OffsetDateTime,
    /// Expiration date.
    pub expiration_date: OffsetDateTime,
    /// Whether a revocation applies to it.
    pub revoked: bool,
}

impl KeyInfo {
    /// `expirationDate <= now`.
    pub fn is_expired(&self, now: OffsetDateTime) -> bool {
        self.expiration_date <= now
    }
}

/// The outcome of default-key resolution.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Resolution {
    /// The default key, if one is usable.
    pub default_key: Option<Uuid>,
    /// A key to use when there is no default and none may be created.
    pub fallback_key: Option<Uuid>,
}

/// The key that would be preferred as default at `now`, before checking that
/// it is usable: the most recently activated key old enough to have
/// propagated, else the least recently activated one too new to have.
/// Ties are broken by key id, so every instance picks the same key.
pub(crate) fn preferred_key(keys: &[KeyInfo], now: OffsetDateTime) -> Option<&KeyInfo> {
    let cutoff = now.saturating_sub(KEY_PROPAGATION_WINDOW);
    let horizon = now.saturating_add(MAX_SERVER_CLOCK_SKEW);
    let activated = keys.iter().filter(|k| k.activation_date <= horizon);
    let propagated = activated
        .clone()
        .filter(|k| k.creation_date <= cutoff)
        .max_by(|a, b| {
            a.activation_date
                .cmp(&b.activation_date)
                .then_with(|| b.id.cmp(&a.id))
        });
    propagated.or_else(|| {
        activated
            .filter(|k| k.creation_date > cutoff)
            .min_by(|a, b| {
                a.activation_date
                    .cmp(&b.activation_date)
                    .then_with(|| a.id.cmp(&b.id))
            })
    })
}

/// Fallback candidates in order of preference: unrevoked keys other than
/// `exclude`, newest propagated first, then the oldest unpropagated.
pub(crate) fn fallback_candidates(
    keys: &[KeyInfo],
    now: OffsetDateTime,
    exclude: Option<Uuid>,
) -> Vec<&KeyInfo> {
    let cutoff = now.saturating_sub(KEY_PROPAGATION_WINDOW);
    let eligible = keys.iter().filter(|k| !k.revoked && Some(k.id) != exclude);
    let mut old: Vec<_> = eligible
        .clone()
        .filter(|k| k.creation_date <= cutoff)
        .collect();
    old.sort_by(|a, b| {
        b.creation_date
            .cmp(&a.creation_date)
            .then_with(|| a.id.cmp(&b.id))
    });
    let mut new: Vec<_> = eligible.filter(|k| k.creation_date > cutoff).collect();
    new.sort_by(|a, b| {
        a.creation_date
            .cmp(&b.creation_date)
            .then_with(|| a.id.cmp(&b.id))
    });
    old.extend(new);
    old
}

/// Keys created within the propagation window that are already active,
/// unrevoked and unexpired (other than `exclude`), oldest activation first:
/// replacements made because the preferred key could not be used.
pub(crate) fn recent_replacements(
    keys: &[KeyInfo],
    now: OffsetDateTime,
    exclude: Option<Uuid>,
) -> Vec<&KeyInfo> {
    let cutoff = now.saturating_sub(KEY_PROPAGATION_WINDOW);
    let horizon = now.saturating_add(MAX_SERVER_CLOCK_SKEW);
    let mut out: Vec<&KeyInfo> = keys
        .iter()
        .filter(|k| {
            Some(k.id) != exclude
                && k.creation_date > cutoff
                && k.activation_date <= horizon
                && !k.revoked
                && !k.is_expired(now)
        })
        .collect();
    out.sort_by(|a, b| {
        a.activation_date
            .cmp(&b.activation_date)
            .then_with(|| a.id.cmp(&b.id))
    });
    out
}

/// Resolves the default key at `now`. `usable` says whether a key's
/// encryptor can be created (its master key decrypts and its algorithm is
/// supported).
pub fn resolve_default_key(
    keys: &[KeyInfo],
    now: OffsetDateTime,
    usable: &dyn Fn(&KeyInfo) -> bool,
) -> Resolution {
    let preferred = preferred_key(keys, now);
    if let Some(p) = preferred
        && !p.revoked
        && !p.is_expired(now)
        && usable(p)
    {
        return Resolution {
            default_key: Some(p.id),
            fallback_key: None,
        };
    }
    // Departure from .NET: when the preferred key is revoked or expired and a
    // replacement was already created (immediately active, not yet
    // propagated), use it instead of asking for yet another key. .NET asks
    // again at every load until the replacement is two days old, so every
    // process start (or CLI run) in that window adds a key.
    let exclude = preferred.map(|p| p.id);
    if let Some(r) = recent_replacements(keys, now, exclude)
        .into_iter()
        .find(|k| usable(k))
    {
        return Resolution {
            default_key: Some(r.id),
            fallback_key: None,
        };
    }
    let fallback = fallback_candidates(keys, now, preferred.map(|p| p.id))
        .into_iter()
        .find(|k| usable(k))
        .map(|k| k.id);
    Resolution {
        default_key: None,
        fallback_key: fallback,
    }
}

/// A key the policy wants created.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NewKeyPlan {
    /// Activation date of the new key.
    pub activation_date: OffsetDateTime,
    /// Expiration date of the new key.
    pub expiration_date: OffsetDateTime,
}

/// Whether a key must be created now, and with which dates: an immediately
/// active key when there is no default; a successor, active when the default
/// expires, when the default expires within the refresh period plus the
/// propagation window and no later key would take over in time.
pub fn plan_new_key(
    keys: &[KeyInfo],
    now: OffsetDateTime,
    key_lifetime: Duration,
    usable: &dyn Fn(&KeyInfo) -> bool,
) -> Option<NewKeyPlan> {
    let resolution = resolve_default_key(keys, now, usable);
    let Some(default_id) = resolution.default_key else {
        return Some(NewKeyPlan {
            activation_date: now,
            expiration_date: now.saturating_add(key_lifetime),
        });
    };
    let default = keys.iter().find(|k| k.id == default_id)?;
    let min_expiration = now.saturating_add(KEY_RING_REFRESH_PERIOD + KEY_PROPAGATION_WINDOW);
    if default.expiration_date >= min_expiration {
        return None;
    }
    let next = resolve_default_key(keys, default.expiration_date, usable)
        .default_key
        .and_then(|id| keys.iter().find(|k| k.id == id));
    match next {
        Some(next) if next.expiration_date >= min_expiration => None,
        _ => Some(NewKeyPlan {
            activation_date: default.expiration_date,
            expiration_date: now.saturating_add(key_lifetime),
        }),
    }
}

/// What is known about whether a key can be used: its master key decrypts,
/// its algorithm is supported and its master key is long enough to protect.
/// Finding out may need I/O (a key vault), so the policy asks for it
/// ([`RingDecision::CheckKey`]) rather than doing it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Usability {
    /// The key's encryptor was built and may protect.
    Usable,
    /// The key cannot be used.
    Unusable,
    /// Not tried yet.
    Unknown,
}

/// What to do with a key set at a given time: the pure decision behind every
/// ring load, made without I/O by [`decide`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RingDecision {
    /// Find out whether this key can be used, then decide again: the
    /// decision depends on it.
    CheckKey(Uuid),
    /// Use this default key; no key needs creating.
    UseDefault(Uuid),
    /// There is no usable default key: create one active now. Until it
    /// exists, `fallback` (if any) is the key to protect with.
    CreateKeyNow {
        /// The key to create.
        plan: NewKeyPlan,
        /// A usable key to fall back on meanwhile.
        fallback: Option<Uuid>,
    },
    /// Use `default`, and create its successor now: `default` expires within
    /// the refresh period plus the propagation window and no later key would
    /// take over in time.
    CreateNextKey {
        /// The current default key.
        default: Uuid,
        /// The successor to create (active when `default` expires).
        plan: NewKeyPlan,
    },
}

/// Decides, from the keys, the time and what is known of the keys'
/// usability, which key is the default and whether a key must be created.
///
/// Usability is asked for (`CheckKey`) only for the keys that decide the
/// default: the preferred key, then recent replacements, then (when there is
/// no default) fallback candidates, each in order until one is usable. A key
/// never tried counts as usable when judging whether a *later* key would take
/// over in time, as ASP.NET Core does.
///
/// ```
/// use dataprotection::policy::{decide, KeyInfo, RingDecision, Usability, DEFAULT_KEY_LIFETIME};
/// use time::{Duration, macros::datetime};
/// use uuid::Uuid;
/// let now = datetime!(2030-01-01 0:00 UTC);
/// let key = KeyInfo {
///     id: Uuid::from_u128(1),
///     creation_date: now - Duration::days(10),
///     activation_date: now - Duration::days(10),
///     expiration_date: now + Duration::days(80),
///     revoked: false,
/// };
/// let keys = [key];
/// // Usability unknown: the policy asks for it first.
/// assert_eq!(
///     decide(&keys, now, DEFAULT_KEY_LIFETIME, &|_| Usability::Unknown),
///     RingDecision::CheckKey(Uuid::from_u128(1))
/// );
/// assert_eq!(
///     decide(&keys, now, DEFAULT_KEY_LIFETIME, &|_| Usability::Usable),
///     RingDecision::UseDefault(Uuid::from_u128(1))
/// );
/// ```
pub fn decide(
    keys: &[KeyInfo],
    now: OffsetDateTime,
    key_lifetime: Duration,
    usability: &dyn Fn(&KeyInfo) -> Usability,
) -> RingDecision {
    let preferred = preferred_key(keys, now);
    let exclude = preferred.map(|p| p.id);
    let candidates = preferred
        .filter(|p| !p.revoked && !p.is_expired(now))
        .into_iter()
        .chain(recent_replacements(keys, now, exclude));
    for candidate in candidates {
        match usability(candidate) {
            Usability::Unknown => return RingDecision::CheckKey(candidate.id),
            Usability::Usable => break,
            Usability::Unusable => {}
        }
    }
    let usable = |k: &KeyInfo| usability(k) == Usability::Usable;
    let resolution = resolve_default_key(keys, now, &usable);
    let mut fallback = None;
    if resolution.default_key.is_none() {
        for candidate in fallback_candidates(keys, now, exclude) {
            match usability(candidate) {
                Usability::Unknown => return RingDecision::CheckKey(candidate.id),
                Usability::Usable => {
                    fallback = Some(candidate.id);
                    break;
                }
                Usability::Unusable => {}
            }
        }
    }
    let plan = plan_new_key(keys, now, key_lifetime, &|k| {
        usability(k) != Usability::Unusable
    });
    match (resolution.default_key, plan) {
        (Some(default), None) => RingDecision::UseDefault(default),
        (Some(default), Some(plan)) => RingDecision::CreateNextKey { default, plan },
        (None, plan) => RingDecision::CreateKeyNow {
            // Without a default the policy always plans a key active now;
            // the fallback plan keeps this total without a panic.
            plan: plan.unwrap_or(NewKeyPlan {
                activation_date: now,
                expiration_date: now.saturating_add(key_lifetime),
            }),
            fallback,
        },
    }
}

/// The refresh period with up to 20 % jitter taken off, as .NET does, so that
/// instances started together do not refresh together.
pub(crate) fn jittered_refresh_period(random_unit: f64) -> Duration {
    let factor = 1.0 - random_unit.clamp(0.0, 1.0) / 5.0;
    Duration::seconds_f64(KEY_RING_REFRESH_PERIOD.as_seconds_f64() * factor)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn key(
        n: u128,
        created: OffsetDateTime,
        activation: OffsetDateTime,
        expiration: OffsetDateTime,
    ) -> KeyInfo {
        KeyInfo {
            id: Uuid::from_u128(n),
            creation_date: created,
            activation_date: activation,
            expiration_date: expiration,
            revoked: false,
        }
    }

    const YES: &dyn Fn(&KeyInfo) -> bool = &|_| true;

    #[test]
    fn no_keys_means_immediate_key() {
        let now = datetime!(2030-01-01 0:00 UTC);
        let plan = plan_new_key(&[], now, DEFAULT_KEY_LIFETIME, YES).unwrap();
        assert_eq!(plan.activation_date, now);
        assert_eq!(plan.expiration_date, now + Duration::days(90));
    }

    #[test]
    fn successor_when_default_expires_soon() {
        let now = datetime!(2030-01-01 0:00 UTC);
        let k = key(
            1,
            now - Duration::days(88),
            now - Duration::days(88),
            now + Duration::days(2),
        );
        let plan = plan_new_key(std::slice::from_ref(&k), now, DEFAULT_KEY_LIFETIME, YES).unwrap();
        assert_eq!(plan.activation_date, k.expiration_date);
        // Far from expiry: nothing to do.
        assert!(
            plan_new_key(
                std::slice::from_ref(&k),
                now - Duration::days(10),
                DEFAULT_KEY_LIFETIME,
                YES
            )
            .is_none()
        );
        // With a propagated successor: nothing to do.
        let s = key(
            2,
            now - Duration::days(3),
            k.expiration_date,
            now + Duration::days(87),
        );
        assert!(plan_new_key(&[k, s], now, DEFAULT_KEY_LIFETIME, YES).is_none());
    }

    #[test]
    fn tie_break_by_id_among_new_keys() {
        let now = datetime!(2030-01-01 0:00 UTC);
        let a = key(2, now, now, now + Duration::days(90));
        let b = key(1, now, now, now + Duration::days(90));
        let r = resolve_default_key(&[a, b], now, YES);
        assert_eq!(r.default_key, Some(Uuid::from_u128(1)));
    }

    #[test]
    fn a_recent_replacement_of_a_revoked_key_is_used_without_asking_for_another() {
        let now = datetime!(2030-01-01 0:00 UTC);
        let mut old = key(
            1,
            now - Duration::days(30),
            now - Duration::days(30),
            now + Duration::days(60),
        );
        old.revoked = true;
        let replacement = key(
            2,
            now - Duration::hours(1),
            now - Duration::hours(1),
            now + Duration::days(90),
        );
        let keys = [old, replacement.clone()];
        assert_eq!(
            resolve_default_key(&keys, now, YES).default_key,
            Some(replacement.id)
        );
        assert!(plan_new_key(&keys, now, DEFAULT_KEY_LIFETIME, YES).is_none());
        // Unusable replacement: a key is still needed.
        assert!(
            plan_new_key(&keys, now, DEFAULT_KEY_LIFETIME, &|k| k.id
                != replacement.id)
            .is_some()
        );
    }

    #[test]
    fn revoked_preferred_gives_fallback_and_generation() {
        let now = datetime!(2030-01-01 0:00 UTC);
        let mut a = key(
            1,
            now - Duration::days(10),
            now - Duration::days(10),
            now + Duration::days(80),
        );
        a.revoked = true;
        let b = key(
            2,
            now - Duration::days(20),
            now - Duration::days(20),
            now - Duration::days(1),
        );
        let r = resolve_default_key(&[a.clone(), b.clone()], now, YES);
        assert_eq!(r.default_key, None);
        assert_eq!(r.fallback_key, Some(b.id));
        assert!(plan_new_key(&[a, b], now, DEFAULT_KEY_LIFETIME, YES).is_some());
    }

    fn known(usable: &'static [u128]) -> impl Fn(&KeyInfo) -> Usability {
        move |k: &KeyInfo| {
            if usable.contains(&k.id.as_u128()) {
                Usability::Usable
            } else {
                Usability::Unusable
            }
        }
    }

    #[test]
    fn decide_without_keys_creates_a_key_active_now() {
        let now = datetime!(2030-01-01 0:00 UTC);
        assert_eq!(
            decide(&[], now, DEFAULT_KEY_LIFETIME, &|_| Usability::Unknown),
            RingDecision::CreateKeyNow {
                plan: NewKeyPlan {
                    activation_date: now,
                    expiration_date: datetime!(2030-04-01 0:00 UTC),
                },
                fallback: None,
            }
        );
    }

    #[test]
    fn decide_uses_the_default_far_from_its_expiry() {
        let now = datetime!(2030-01-01 0:00 UTC);
        let k = key(
            1,
            datetime!(2029-12-01 0:00 UTC),
            datetime!(2029-12-01 0:00 UTC),
            datetime!(2030-03-01 0:00 UTC),
        );
        let keys = [k];
        assert_eq!(
            decide(&keys, now, DEFAULT_KEY_LIFETIME, &|_| Usability::Unknown),
            RingDecision::CheckKey(Uuid::from_u128(1))
        );
        assert_eq!(
            decide(&keys, now, DEFAULT_KEY_LIFETIME, &known(&[1])),
            RingDecision::UseDefault(Uuid::from_u128(1))
        );
    }

    #[test]
    fn decide_creates_the_next_key_when_the_default_expires_soon() {
        // Expires in two days: within the refresh period plus the
        // propagation window.
        let now = datetime!(2030-01-01 0:00 UTC);
        let k = key(
            1,
            datetime!(2029-10-04 0:00 UTC),
            datetime!(2029-10-04 0:00 UTC),
            datetime!(2030-01-03 0:00 UTC),
        );
        assert_eq!(
            decide(&[k], now, DEFAULT_KEY_LIFETIME, &known(&[1])),
            RingDecision::CreateNextKey {
                default: Uuid::from_u128(1),
                plan: NewKeyPlan {
                    activation_date: datetime!(2030-01-03 0:00 UTC),
                    expiration_date: datetime!(2030-04-01 0:00 UTC),
                },
            }
        );
        // Four days before expiry the same key needs no successor yet.
        assert_eq!(
            decide(
                &[key(
                    1,
                    datetime!(2029-10-04 0:00 UTC),
                    datetime!(2029-10-04 0:00 UTC),
                    datetime!(2030-01-05 0:00 UTC),
                )],
                now,
                DEFAULT_KEY_LIFETIME,
                &known(&[1])
            ),
            RingDecision::UseDefault(Uuid::from_u128(1))
        );
    }

    #[test]
    fn decide_asks_for_the_next_candidate_and_keeps_a_fallback() {
        let now = datetime!(2030-01-01 0:00 UTC);
        // 1: preferred (propagated); 2: an older key, a fallback candidate.
        let preferred = key(
            1,
            datetime!(2029-12-20 0:00 UTC),
            datetime!(2029-12-20 0:00 UTC),
            datetime!(2030-03-20 0:00 UTC),
        );
        let older = key(
            2,
            datetime!(2029-11-01 0:00 UTC),
            datetime!(2029-11-01 0:00 UTC),
            datetime!(2030-01-30 0:00 UTC),
        );
        let keys = [preferred, older];
        // The preferred key is unusable: the fallback must be checked next.
        let only_1_known = |k: &KeyInfo| {
            if k.id == Uuid::from_u128(1) {
                Usability::Unusable
            } else {
                Usability::Unknown
            }
        };
        assert_eq!(
            decide(&keys, now, DEFAULT_KEY_LIFETIME, &only_1_known),
            RingDecision::CheckKey(Uuid::from_u128(2))
        );
        assert_eq!(
            decide(&keys, now, DEFAULT_KEY_LIFETIME, &known(&[2])),
            RingDecision::CreateKeyNow {
                plan: NewKeyPlan {
                    activation_date: now,
                    expiration_date: datetime!(2030-04-01 0:00 UTC),
                },
                fallback: Some(Uuid::from_u128(2)),
            }
        );
        // Nothing usable at all: no fallback.
        assert_eq!(
            decide(&keys, now, DEFAULT_KEY_LIFETIME, &known(&[])),
            RingDecision::CreateKeyNow {
                plan: NewKeyPlan {
                    activation_date: now,
                    expiration_date: datetime!(2030-04-01 0:00 UTC),
                },
                fallback: None,
            }
        );
    }

    #[test]
    fn decide_uses_a_recent_replacement_of_a_revoked_default() {
        let now = datetime!(2030-01-01 0:00 UTC);
        let mut revoked = key(
            1,
            datetime!(2029-12-01 0:00 UTC),
            datetime!(2029-12-01 0:00 UTC),
            datetime!(2030-03-01 0:00 UTC),
        );
        revoked.revoked = true;
        let replacement = key(
            2,
            datetime!(2029-12-31 23:00 UTC),
            datetime!(2029-12-31 23:00 UTC),
            datetime!(2030-03-31 23:00 UTC),
        );
        let keys = [revoked, replacement];
        // The revoked key is never checked: the replacement is.
        assert_eq!(
            decide(&keys, now, DEFAULT_KEY_LIFETIME, &|_| Usability::Unknown),
            RingDecision::CheckKey(Uuid::from_u128(2))
        );
        assert_eq!(
            decide(&keys, now, DEFAULT_KEY_LIFETIME, &known(&[2])),
            RingDecision::UseDefault(Uuid::from_u128(2))
        );
    }
}
