//! `dpkeys prune --retain DURATION [--dry-run]`: delete keys that expired
//! longer ago than DURATION, then the revocations that no longer apply, in
//! the safe order of `KeyManager::delete_keys` (keys, then revocations of
//! keys that are gone, then superseded mass revocations).

use std::collections::HashSet;

use dataprotection::KeySet;
use dataprotection::policy::{KeyInfo, resolve_default_key};
use dataprotection::xml::{Element, RevocationTarget, StoredElement, format_date};
use dataprotection::{Error, Key, KeyManager};
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

/// What `delete_keys` with `doomed` keys would remove, in its order, as
/// lines for the operator (computed by core's own `KeyManager::deletion_orders`).
fn preview(elements: &[Element], doomed: &HashSet<Uuid>, now: OffsetDateTime) -> Vec<String> {
    let deletions =
        KeyManager::deletion_orders(elements, now, false, &|k: &Key| doomed.contains(&k.id()));
    let mut chosen: Vec<_> = deletions
        .into_iter()
        .filter_map(|deletion| {
            let e = elements.get(deletion.index)?;
            let line = match StoredElement::classify(e) {
                Ok(StoredElement::Key(k)) => {
                    format!("key {} (expired {})", k.id, format_date(k.expiration_date))
                }
                Ok(StoredElement::Revocation(r)) => match r.target {
                    RevocationTarget::Key(id) => format!("revocation of key {id}"),
                    RevocationTarget::AllCreatedBefore => format!(
                        "superseded revocation of every key created before {}",
                        format_date(r.date)
                    ),
                },
                _ => format!("<{}> element", e.local_name()),
            };
            Some((deletion.order, line))
        })
        .collect();
    chosen.sort_by_key(|(o, _)| *o);
    chosen.into_iter().map(|(_, line)| line).collect()
}

/// Runs `prune`.
pub async fn run(context: &Context, args: PruneArgs) -> Result<u8> {
    let now = OffsetDateTime::now_utc();
    let cutoff = dpkeys::args::sub(now, args.retain, "the cutoff (now - --retain)")
        .map_err(Error::InvalidArgument)
        .during(ACTION)?;
    let elements = context.repository.get_all_elements().await.during(ACTION)?;
    let set = KeySet::from_elements(&elements).during(ACTION)?;
    let protected = protected_keys(&set.infos(), now);
    let doomed: HashSet<Uuid> = set
        .keys
        .iter()
        .filter(|k| k.expiration_date() < cutoff && !protected.contains(&k.id()))
        .map(Key::id)
        .collect();
    let lines = preview(&elements, &doomed, now);
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
