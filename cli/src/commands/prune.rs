//! `dpkeys prune --retain DURATION [--dry-run]`: delete keys that expired
//! longer ago than DURATION, then the revocations that no longer apply, in
//! the safe order of `KeyManager::delete_keys` (keys, then revocations of
//! keys that are gone, then superseded mass revocations).

use std::collections::HashSet;

use dataprotection::Key;
use dataprotection::key::KeySet;
use dataprotection::policy::{KeyInfo, resolve_default_key};
use dataprotection::xml::{Element, RevocationTarget, StoredElement, format_date};
use time::OffsetDateTime;
use uuid::Uuid;

use super::{EXIT_OK, print_line};
use crate::cli::PruneArgs;
use crate::context::Context;
use crate::error::{Context as _, Result};

const ACTION: &str = "prune";

/// Keys that must never be deleted whatever their dates: the key a provider
/// would use now (the default, or the fallback when there is none) and the
/// one that takes over when the default expires.
pub fn protected_keys(infos: &[KeyInfo], now: OffsetDateTime) -> HashSet<Uuid> {
    let all = |_: &KeyInfo| true;
    let mut out = HashSet::new();
    let resolution = resolve_default_key(infos, now, &all);
    out.extend(resolution.default_key);
    out.extend(resolution.fallback_key);
    if let Some(default) = resolution
        .default_key
        .and_then(|id| infos.iter().find(|k| k.id == id))
    {
        out.extend(resolve_default_key(infos, default.expiration_date, &all).default_key);
    }
    out
}

/// What `delete_keys` with `doomed` keys would remove, as lines for the operator
/// (the same rules as core's deletion order).
fn preview(elements: &[Element], set: &KeySet, doomed: &HashSet<Uuid>) -> Vec<String> {
    let latest_mass = set
        .revocations
        .iter()
        .filter(|r| r.target == RevocationTarget::AllCreatedBefore)
        .map(|r| r.date)
        .max();
    let mut keys = Vec::new();
    let mut revocations = Vec::new();
    let mut mass = Vec::new();
    for e in elements {
        match StoredElement::classify(e) {
            // Only the element that defines the key (a duplicate stays).
            Ok(StoredElement::Key(k))
                if doomed.contains(&k.id) && set.get(k.id).is_some_and(|key| key.xml() == &k) =>
            {
                keys.push(format!(
                    "key {} (expired {})",
                    k.id,
                    format_date(k.expiration_date)
                ));
            }
            Ok(StoredElement::Revocation(r)) => match r.target {
                RevocationTarget::Key(id) if doomed.contains(&id) || set.get(id).is_none() => {
                    revocations.push(format!("revocation of key {id}"));
                }
                RevocationTarget::AllCreatedBefore if Some(r.date) < latest_mass => {
                    mass.push(format!(
                        "superseded revocation of every key created before {}",
                        format_date(r.date)
                    ));
                }
                _ => {}
            },
            _ => {}
        }
    }
    keys.into_iter().chain(revocations).chain(mass).collect()
}

/// Runs `prune`.
pub async fn run(context: &Context, args: PruneArgs) -> Result<u8> {
    let now = OffsetDateTime::now_utc();
    let cutoff = now - args.retain;
    let elements = context.repository.get_all_elements().await.during(ACTION)?;
    let set = KeySet::from_elements(&elements).during(ACTION)?;
    let protected = protected_keys(&set.infos(), now);
    let doomed: HashSet<Uuid> = set
        .keys
        .iter()
        .filter(|k| k.expiration_date() < cutoff && !protected.contains(&k.id()))
        .map(Key::id)
        .collect();
    let lines = preview(&elements, &set, &doomed);
    let verb = if args.dry_run {
        "would delete"
    } else {
        "deleting"
    };
    for line in &lines {
        print_line(&format!("{verb} {line}"))?;
    }
    if args.dry_run {
        print_line(&format!(
            "{} elements would be deleted (keys that expired before {})",
            lines.len(),
            format_date(cutoff)
        ))?;
        return Ok(EXIT_OK);
    }
    if lines.is_empty() {
        print_line("nothing to delete")?;
        return Ok(EXIT_OK);
    }
    // Decided again by the repository on the ring as it is when it deletes.
    let predicate = move |k: &Key| k.expiration_date() < cutoff && !protected.contains(&k.id());
    let deleted = context
        .key_manager()
        .delete_keys(&predicate, false)
        .await
        .during(ACTION)?;
    print_line(&format!("deleted {deleted} elements"))?;
    Ok(EXIT_OK)
}
