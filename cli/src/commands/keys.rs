//! `dpkeys keys ...`: list, create, revoke and delete keys.
//!
//! These work through a [`dataprotection::KeyManager`] rather than a provider,
//! so they also work on rings without a usable default key (which is when an
//! operator needs them most) and never create a key as a side effect.

use std::collections::HashMap;
use std::fmt::Write as _;

use dataprotection::policy::{DEFAULT_KEY_LIFETIME, resolve_default_key};
use dataprotection::xml::{format_date, read_descriptor_algorithm};
use dataprotection::{Error, Key};
use serde::Serialize;
use time::OffsetDateTime;
use uuid::Uuid;

use super::write_stdout;
use crate::cli::KeysCommand;
use crate::context::Context;
use crate::error::{Context as _, Result};
use crate::ring::master_keys;

/// Runs a `keys` subcommand.
pub async fn run(context: &Context, command: KeysCommand) -> Result<()> {
    match command {
        KeysCommand::List { json } => list(context, json).await,
        KeysCommand::New {
            activation,
            expiration,
        } => new(context, activation, expiration).await,
        KeysCommand::Revoke { id, reason } => revoke(context, id, reason.as_deref()).await,
        KeysCommand::RevokeAll { before, reason } => {
            revoke_all(context, before, reason.as_deref()).await
        }
        KeysCommand::Delete { expired_before } => delete(context, expired_before).await,
    }
}

/// One row of `keys list`; the JSON field names are part of the contract.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct KeyRow {
    #[serde(serialize_with = "serialize_display")]
    id: Uuid,
    creation_date: String,
    activation_date: String,
    expiration_date: String,
    is_revoked: bool,
    is_expired: bool,
    is_default: bool,
    encryption: Option<&'static str>,
    validation: Option<&'static str>,
    can_decrypt: bool,
    encrypted_at_rest: bool,
    problem: Option<String>,
}

fn serialize_display<S: serde::Serializer>(
    value: &impl std::fmt::Display,
    serializer: S,
) -> std::result::Result<S::Ok, S::Error> {
    serializer.collect_str(value)
}

impl KeyRow {
    fn status(&self) -> &'static str {
        if self.is_revoked {
            "revoked"
        } else if self.is_expired {
            "expired"
        } else if self.is_default {
            "default"
        } else if !self.can_decrypt {
            "unusable"
        } else {
            "active"
        }
    }
}

async fn rows(context: &Context) -> Result<Vec<KeyRow>> {
    let set = context
        .key_manager()
        .get_all_keys()
        .await
        .during("listing keys")?;
    let now = OffsetDateTime::now_utc();
    let mut usable = HashMap::new();
    let mut rows = Vec::with_capacity(set.keys.len());
    let algorithms: Vec<_> = set
        .keys
        .iter()
        .map(|key| read_descriptor_algorithm(&key.xml().descriptor).map(|(_, a)| a))
        .collect();
    // Whether each key's master key can be decrypted and used, and if not
    // why: decrypted concurrently (one vault round trip per wrapped key).
    let readable: Vec<_> = set
        .keys
        .iter()
        .zip(&algorithms)
        .filter(|(_, algorithm)| algorithm.is_ok())
        .map(|(key, _)| key.xml())
        .collect();
    let results = master_keys(&context.encryption.registry(), &readable).await;
    let mut decrypted: HashMap<Uuid, Result<(), Error>> = readable
        .iter()
        .zip(results)
        .map(|(key, result)| (key.id, result.map(|_| ())))
        .collect();
    for (key, algorithm) in set.keys.iter().zip(algorithms) {
        let checked = match &algorithm {
            Ok(_) => decrypted.remove(&key.id()).unwrap_or_else(|| {
                Err(Error::KeyDecryption {
                    what: format!("key {}", key.id()),
                    source: "the key was not decrypted".into(),
                })
            }),
            Err(e) => Err(Error::UnsupportedAlgorithm(e.to_string())),
        };
        usable.insert(key.id(), checked.is_ok());
        rows.push(KeyRow {
            id: key.id(),
            creation_date: format_date(key.creation_date()),
            activation_date: format_date(key.activation_date()),
            expiration_date: format_date(key.expiration_date()),
            is_revoked: key.is_revoked(),
            is_expired: key.is_expired(now),
            is_default: false,
            encryption: algorithm.as_ref().ok().map(|a| a.encryption_name()),
            validation: algorithm.as_ref().ok().and_then(|a| a.validation_name()),
            can_decrypt: checked.is_ok(),
            encrypted_at_rest: key.is_encrypted_at_rest(),
            problem: checked.err().map(|e| format!("{} ({})", e, e.class())),
        });
    }
    // The key a provider would protect with now: the policy's default among
    // keys whose master key is usable or, when there is none, the fallback key
    // (which a provider uses whether or not it also creates a new key).
    let resolution = resolve_default_key(&set.infos(), now, &|k| {
        usable.get(&k.id).copied().unwrap_or(false)
    });
    let default = resolution.default_key.or(resolution.fallback_key);
    for row in &mut rows {
        row.is_default = Some(row.id) == default;
    }
    for problem in &set.problems {
        eprintln!("dpkeys: warning: skipped an element of the key ring: {problem}");
    }
    // Oldest first, by the instants themselves (not their text).
    let activation: HashMap<Uuid, OffsetDateTime> = set
        .keys
        .iter()
        .map(|k| (k.id(), k.activation_date()))
        .collect();
    rows.sort_by_key(|r| (activation.get(&r.id).copied(), r.id));
    Ok(rows)
}

async fn list(context: &Context, json: bool) -> Result<()> {
    let rows = rows(context).await?;
    if json {
        let mut text = serde_json::to_string_pretty(&rows)?;
        text.push('\n');
        return write_stdout(text.as_bytes());
    }
    write_stdout(table(&rows).as_bytes())
}

fn table(rows: &[KeyRow]) -> String {
    let header = [
        "ID",
        "STATUS",
        "ACTIVATION",
        "EXPIRATION",
        "CREATED",
        "ALGORITHM",
        "AT REST",
    ];
    let cells: Vec<[String; 7]> = rows
        .iter()
        .map(|r| {
            let algorithm = match (r.encryption, r.validation) {
                (Some(e), Some(v)) => format!("{e}+{v}"),
                (Some(e), None) => e.to_string(),
                _ => "?".to_string(),
            };
            [
                r.id.to_string(),
                r.status().to_string(),
                short_date(&r.activation_date),
                short_date(&r.expiration_date),
                short_date(&r.creation_date),
                algorithm,
                if r.encrypted_at_rest {
                    "encrypted"
                } else {
                    "plain"
                }
                .to_string(),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &cells {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.len());
        }
    }
    let mut out = String::new();
    let mut line = |cols: &mut dyn Iterator<Item = &str>| {
        let mut text = String::new();
        for (i, c) in cols.enumerate() {
            let _ = write!(text, "{c:<width$}  ", width = widths[i]);
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(&mut header.iter().copied());
    for row in &cells {
        line(&mut row.iter().map(String::as_str));
    }
    if rows.is_empty() {
        out.push_str("(no keys)\n");
    }
    for r in rows.iter().filter(|r| r.problem.is_some()) {
        let _ = writeln!(
            out,
            "{}: cannot be used: {}",
            r.id,
            r.problem.as_deref().unwrap_or_default()
        );
    }
    out
}

/// `2025-01-01T09:59:59.991Z` -> `2025-01-01T09:59:59Z` (table only).
fn short_date(date: &str) -> String {
    match (date.find('.'), date.rfind(['Z', '+', '-'])) {
        (Some(dot), Some(zone)) if zone > dot => format!("{}{}", &date[..dot], &date[zone..]),
        _ => date.to_string(),
    }
}

async fn new(
    context: &Context,
    activation: Option<OffsetDateTime>,
    expiration: Option<OffsetDateTime>,
) -> Result<()> {
    const ACTION: &str = "creating a key";
    let activation = activation.unwrap_or_else(OffsetDateTime::now_utc);
    let expiration = match expiration {
        Some(t) => t,
        None => dpkeys::args::add(
            activation,
            DEFAULT_KEY_LIFETIME,
            "the default expiration date (--activation + 90 days)",
        )
        .map_err(Error::InvalidArgument)
        .during(ACTION)?,
    };
    let manager = context.key_manager();
    // Do not add to a ring that cannot be read: its state is unknown.
    manager.get_all_keys().await.during(ACTION)?;
    let key = manager
        .create_key(activation, expiration)
        .await
        .during(ACTION)?;
    write_stdout(format!("{}\n", key.id()).as_bytes())
}

async fn revoke(context: &Context, id: Uuid, reason: Option<&str>) -> Result<()> {
    const ACTION: &str = "revoking the key";
    let manager = context.key_manager();
    // Refuse ids that are not in the ring (typos), but never let a ring that
    // cannot be read block a revocation: adding one is always safe.
    match manager.get_all_keys().await {
        Ok(set) if set.get(id).is_none() => {
            return Err(Error::KeyNotFound { key_id: id }).during(ACTION);
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(
            error = %e,
            "the key ring could not be read; revoking the key without checking that it exists"
        ),
    }
    manager.revoke_key(id, reason).await.during(ACTION)
}

async fn revoke_all(
    context: &Context,
    before: Option<OffsetDateTime>,
    reason: Option<&str>,
) -> Result<()> {
    let before = before.unwrap_or_else(OffsetDateTime::now_utc);
    context
        .key_manager()
        .revoke_all_keys(before, reason)
        .await
        .during("revoking all keys")
}

async fn delete(context: &Context, expired_before: OffsetDateTime) -> Result<()> {
    if expired_before > OffsetDateTime::now_utc() {
        tracing::warn!(
            "--expired-before is in the future: keys that have not expired yet are kept"
        );
    }
    let deleted = context
        .key_manager()
        .delete_keys(&|k: &Key| k.expiration_date() < expired_before, false)
        .await
        .during("deleting keys")?;
    write_stdout(format!("{deleted}\n").as_bytes())
}

#[cfg(test)]
mod tests {
    use super::short_date;

    #[test]
    fn short_dates() {
        assert_eq!(
            short_date("2025-01-01T09:59:59.991Z"),
            "2025-01-01T09:59:59Z"
        );
        assert_eq!(
            short_date("2025-01-01T09:59:59.1-08:00"),
            "2025-01-01T09:59:59-08:00"
        );
        assert_eq!(short_date("2025-01-01T09:59:59Z"), "2025-01-01T09:59:59Z");
    }
}
