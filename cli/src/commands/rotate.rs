//! `dpkeys rotate [--if-needed]`: create the next key, as a scheduled job
//! next to applications that run with automatic key generation disabled.
//!
//! The key is added with `store_element_if`: its precondition is evaluated
//! again against the ring as it is at the moment of writing (under the
//! directory lock, or with the blob's ETag), so concurrent rotators converge
//! on one new key instead of each adding one.

use std::collections::{HashMap, HashSet};

use dataprotection::KeySet;
use dataprotection::policy::{
    KEY_PROPAGATION_WINDOW, KeyInfo, MIN_KEY_LIFETIME, plan_new_key, resolve_default_key,
};
use dataprotection::xml::{Element, format_date};
use dataprotection::{Error, Key};
use time::OffsetDateTime;
use uuid::Uuid;

use super::{EXIT_NOTHING_TO_DO, EXIT_OK, print_line};
use crate::cli::RotateArgs;
use crate::context::Context;
use crate::error::{CliError, Context as _, Result};
use crate::ring::master_key;

const ACTION: &str = "rotate";

/// Decides, on the ring as stored at the moment of writing, whether the new
/// key is still wanted.
type Precondition = Box<dyn Fn(&[Element]) -> bool + Send + Sync>;

/// Whether each key that matters to the policy (unrevoked, unexpired) can be
/// used: its master key decrypts and its algorithm is supported.
pub async fn usability(
    context: &Context,
    set: &KeySet,
    now: OffsetDateTime,
) -> HashMap<Uuid, std::result::Result<(), String>> {
    let registry = context.encryption.registry();
    let mut out = HashMap::new();
    for key in &set.keys {
        let result = if key.is_revoked() || key.is_expired(now) {
            Ok(())
        } else {
            master_key(&registry, key.xml())
                .await
                .map(|_| ())
                .map_err(|e| format!("{e} ({})", e.class()))
        };
        out.insert(key.id(), result);
    }
    out
}

/// `"default key X expires at T, successor Y activates at U"`.
pub fn describe_default(
    keys: &[KeyInfo],
    now: OffsetDateTime,
    usable: &dyn Fn(&KeyInfo) -> bool,
) -> String {
    let Some(default) = resolve_default_key(keys, now, usable)
        .default_key
        .and_then(|id| keys.iter().find(|k| k.id == id))
    else {
        return "there is no usable default key".to_string();
    };
    let mut text = format!(
        "default key {} expires at {}",
        default.id,
        format_date(default.expiration_date)
    );
    if let Some(next) = resolve_default_key(keys, default.expiration_date, usable)
        .default_key
        .filter(|id| *id != default.id)
        .and_then(|id| keys.iter().find(|k| k.id == id))
    {
        text.push_str(&format!(
            ", successor {} takes over then (expires at {})",
            next.id,
            format_date(next.expiration_date)
        ));
    }
    text
}

/// Runs `rotate`.
pub async fn run(context: &Context, args: RotateArgs) -> Result<u8> {
    if args.lifetime < MIN_KEY_LIFETIME {
        return Err(Error::InvalidArgument(format!(
            "--lifetime must be at least {} days",
            MIN_KEY_LIFETIME.whole_days()
        )))
        .during(ACTION);
    }
    let lifetime = args.lifetime;
    let now = OffsetDateTime::now_utc();
    let set = context.key_manager().get_all_keys().await.during(ACTION)?;
    if let Some(date) = set.latest_mass_revocation()
        && date > now
    {
        return Err(CliError::Failed {
            action: ACTION,
            class: "revocation in the future",
            message: format!(
                "the ring revokes every key created before {} (a date in the future: clock \
                 skew, or a mistaken date); a key created now would be revoked at once, so none \
                 is created. Check the clocks and the revocation, then try again",
                format_date(date)
            ),
        });
    }
    let known: HashSet<Uuid> = set.keys.iter().map(Key::id).collect();
    let infos = set.infos();

    let (activation, expiration, precondition): (_, _, Precondition) = if args.if_needed {
        let usable = usability(context, &set, now).await;
        let is_usable = |k: &KeyInfo| usable.get(&k.id).is_none_or(|r| r.is_ok());
        let optimistic = plan_new_key(&infos, now, lifetime, &|_| true);
        let actual = plan_new_key(&infos, now, lifetime, &is_usable);
        if optimistic != actual {
            // A key the policy relies on cannot be used. That may be an
            // outage (vault, permissions): never answer it with a new key.
            let reasons: Vec<String> = usable
                .iter()
                .filter_map(|(id, r)| r.as_ref().err().map(|e| format!("key {id}: {e}")))
                .collect();
            return Err(CliError::Failed {
                action: ACTION,
                class: "key decryption failure",
                message: format!(
                    "{}; not creating a key, because a Key Vault or storage outage must \
                         never produce one. Fix access to the key, or run `dpkeys rotate` \
                         without --if-needed to create one anyway",
                    reasons.join("; ")
                ),
            });
        }
        let Some(plan) = actual else {
            print_line(&format!(
                "no key needed: {}",
                describe_default(&infos, now, &is_usable)
            ))?;
            return Ok(EXIT_NOTHING_TO_DO);
        };
        let usable_now: HashMap<Uuid, bool> =
            usable.iter().map(|(id, r)| (*id, r.is_ok())).collect();
        (
            plan.activation_date,
            plan.expiration_date,
            Box::new(move |elements: &[Element]| {
                // Evaluated again at the moment of writing: keys added by a
                // concurrent rotator count as usable.
                KeySet::from_elements(elements).is_ok_and(|s| {
                    let infos = s.infos();
                    plan_new_key(&infos, now, lifetime, &|k| {
                        usable_now.get(&k.id).copied().unwrap_or(true)
                    })
                    .is_some()
                })
            }),
        )
    } else {
        let activation = match (args.activation, args.now) {
            (Some(t), _) => t,
            (None, true) => now,
            (None, false) => now.saturating_add(KEY_PROPAGATION_WINDOW),
        };
        let expiration = dpkeys::args::add(
            activation,
            lifetime,
            "the expiration date (activation + --lifetime)",
        )
        .map_err(Error::InvalidArgument)
        .during(ACTION)?;
        (
            activation,
            expiration,
            Box::new(move |elements: &[Element]| {
                // Another writer added a key since we read the ring: that
                // is the rotation; do not add a second one.
                KeySet::from_elements(elements)
                    .is_ok_and(|s| s.keys.iter().all(|k| known.contains(&k.id())))
            }),
        )
    };
    if expiration <= activation {
        return Err(Error::InvalidArgument(
            "the new key would expire before it is activated".into(),
        ))
        .during(ACTION);
    }

    let manager = context.key_manager();
    let (xml, element) = manager
        .new_key_element(activation, expiration)
        .await
        .during(ACTION)?;
    let stored = context
        .repository
        .store_element_if(&element, &xml.friendly_name(), precondition.as_ref())
        .await
        .during(ACTION)?;
    if stored {
        manager.warn_if_stored_unencrypted(xml.id);
        print_line(&format!(
            "created key {} (activation {}, expiration {})",
            xml.id,
            format_date(activation),
            format_date(expiration)
        ))?;
        return Ok(EXIT_OK);
    }
    let set = context.key_manager().get_all_keys().await.during(ACTION)?;
    let added: Vec<String> = set
        .keys
        .iter()
        .filter(|k| !infos.iter().any(|i| i.id == k.id()))
        .map(|k| k.id().to_string())
        .collect();
    print_line(&format!(
        "no key needed: another writer added key {} meanwhile",
        if added.is_empty() {
            "(unknown)".to_string()
        } else {
            added.join(", ")
        }
    ))?;
    Ok(EXIT_NOTHING_TO_DO)
}
