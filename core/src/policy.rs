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
pub fn preferred_key(keys: &[KeyInfo], now: OffsetDateTime) -> Option<&KeyInfo> {
    let cutoff = now.saturating_sub(KEY_PROPAGATION_WINDOW);
    let activated = keys
        .iter()
        .filter(|k| k.activation_date <= now.saturating_add(MAX_SERVER_CLOCK_SKEW));
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
pub fn fallback_candidates(
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
pub fn recent_replacements(
    keys: &[KeyInfo],
    now: OffsetDateTime,
    exclude: Option<Uuid>,
) -> Vec<&KeyInfo> {
    let cutoff = now.saturating_sub(KEY_PROPAGATION_WINDOW);
    let mut out: Vec<&KeyInfo> = keys
        .iter()
        .filter(|k| {
            Some(k.id) != exclude
                && k.creation_date > cutoff
                && k.activation_date <= now.saturating_add(MAX_SERVER_CLOCK_SKEW)
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

/// The refresh period with up to 20 % jitter taken off, as .NET does, so that
/// instances started together do not refresh together.
pub fn jittered_refresh_period(random_unit: f64) -> Duration {
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
}
