//! `dpkeys migrate --to-…`: copy a key ring to another repository.
//!
//! * Idempotent: a key whose id the destination already holds, and any other
//!   element the destination holds identically, is skipped; each write is
//!   conditional on that still being true, so concurrent or repeated runs
//!   never duplicate a key.
//! * Revocations (and unknown elements) are copied **before** keys, so an
//!   application reading the destination mid-copy never sees a revoked key
//!   without its revocation.
//! * With `--to-keyvault-key`, keys are decrypted and wrapped with the new
//!   key on the way (keys that cannot be decrypted are copied as they are).
//! * The copy is verified: every source key must be in the destination and,
//!   when both sides can be decrypted, have the same master key; every
//!   revocation must be there.

use std::sync::Arc;

use dataprotection::KeySet;
use dataprotection::encryption::{XmlDecryptor, encrypt_if_necessary};
use dataprotection::repository::XmlRepository;
use dataprotection::xml::{Element, StoredElement};
use dataprotection_azure_keyvault::{
    AZURE_KEY_VAULT_XML_DECRYPTOR_TYPES, KeyVaultOptions, credential_from_environment,
    key_vault_protection,
};

use super::{EXIT_OK, EXIT_WARNINGS, print_line};
use crate::cli::MigrateArgs;
use crate::context::Context;
use crate::error::{CliError, Context as _, Result};
use crate::progress::Progress;
use crate::repository::Location;
use crate::ring::{decrypted_descriptor, element_key_id, master_key, with_descriptor};
use crate::store::friendly_name;

const ACTION: &str = "migrate";

fn destination(args: &MigrateArgs) -> Location {
    if let Some(dir) = &args.to_dir {
        return Location::Dir(dir.clone());
    }
    if let Some(url) = &args.to_blob_url {
        return Location::blob_url(url);
    }
    Location::BlobConnectionString {
        connection_string: args.to_connection_string.clone().unwrap_or_default(),
        container: args.to_container.clone().unwrap_or_default(),
        blob: args.to_blob.clone().unwrap_or_default(),
    }
}

fn verification(message: String) -> CliError {
    CliError::Failed {
        action: ACTION,
        class: "verification failure",
        message,
    }
}

/// Whether `element` is already in `stored`: the same key id for a key,
/// an identical element otherwise.
fn present(stored: &[Element], element: &Element) -> bool {
    match element_key_id(element) {
        Some(id) => stored.iter().any(|e| element_key_id(e) == Some(id)),
        None => stored.contains(element),
    }
}

/// Runs `migrate`.
pub async fn run(context: &Context, args: MigrateArgs) -> Result<u8> {
    let to = destination(&args);
    let target: Arc<dyn XmlRepository> = to.open(args.to_create_container)?;
    let source_registry = context.encryption.registry();
    let mut target_registry = context.encryption.registry();
    let encryptor = match &args.to_keyvault_key {
        Some(key) => {
            let (credential, _) = credential_from_environment().map_err(|e| CliError::Failed {
                action: ACTION,
                class: "key encryption failure",
                message: e.to_string(),
            })?;
            let (encryptor, decryptor) =
                key_vault_protection(key, credential, KeyVaultOptions::default()).map_err(|e| {
                    CliError::Failed {
                        action: ACTION,
                        class: "key encryption failure",
                        message: e.to_string(),
                    }
                })?;
            if !context.encryption.has_key_vault() {
                let decryptor: Arc<dyn XmlDecryptor> = decryptor;
                for type_name in AZURE_KEY_VAULT_XML_DECRYPTOR_TYPES {
                    target_registry.register(type_name, decryptor.clone());
                }
            }
            Some(encryptor)
        }
        None => None,
    };

    let source = context.repository.get_all_elements().await.during(ACTION)?;
    let source_set = KeySet::from_elements(&source).during(ACTION)?;
    let existing = target.get_all_elements().await.during(ACTION)?;

    // Revocations and anything else first, then keys.
    let (keys, others): (Vec<&Element>, Vec<&Element>) = source.iter().partition(|e| e.is("key"));
    let ordered: Vec<&Element> = others.into_iter().chain(keys).collect();
    let mut copied = 0usize;
    let mut skipped = 0usize;
    let mut copied_as_is: Vec<String> = Vec::new();
    let mut progress = Progress::new("migrate", ordered.len());
    for element in ordered {
        progress.step();
        if present(&existing, element) {
            skipped += 1;
            continue;
        }
        let mut to_store = element.clone();
        if let (Some(encryptor), Ok(StoredElement::Key(key))) =
            (&encryptor, StoredElement::classify(element))
        {
            match decrypted_descriptor(&source_registry, &key).await {
                Ok(plain) => {
                    if let Some(wrapped) = encrypt_if_necessary(&plain, encryptor.as_ref())
                        .await
                        .during(ACTION)?
                    {
                        to_store = with_descriptor(element, wrapped);
                    }
                }
                Err(e) => copied_as_is.push(format!("key {} ({e})", key.id)),
            }
        }
        let original = element.clone();
        let still_needed = move |stored: &[Element]| !present(stored, &original);
        if target
            .store_element_if(&to_store, &friendly_name(&to_store), &still_needed)
            .await
            .during(ACTION)?
        {
            copied += 1;
        } else {
            skipped += 1;
        }
    }
    progress.finish();

    // Verify the destination.
    let after = target.get_all_elements().await.during(ACTION)?;
    let after_set = KeySet::from_elements(&after).during(ACTION)?;
    let mut compared = 0usize;
    let mut presence_only: Vec<String> = Vec::new();
    // By id: looking each key up with `KeySet::get` would scan the whole
    // destination per key.
    let copies: std::collections::HashMap<_, _> =
        after_set.keys.iter().map(|k| (k.id(), k)).collect();
    for key in &source_set.keys {
        let Some(copy) = copies.get(&key.id()) else {
            return Err(verification(format!(
                "key {} is not in the destination",
                key.id()
            )));
        };
        let (a, b) = (
            master_key(&source_registry, key.xml()).await,
            master_key(&target_registry, copy.xml()).await,
        );
        match (a, b) {
            (Ok(a), Ok(b)) if a.expose() == b.expose() => compared += 1,
            (Ok(_), Ok(_)) => {
                return Err(verification(format!(
                    "key {} has a different master key in the destination (a different key \
                     with the same id was already there)",
                    key.id()
                )));
            }
            (Ok(_), Err(e)) => {
                return Err(verification(format!(
                    "key {} cannot be decrypted in the destination: {e}",
                    key.id()
                )));
            }
            (Err(e), _) => presence_only.push(format!("key {} ({e})", key.id())),
        }
    }
    for r in &source_set.revocations {
        if !after_set.revocations.contains(r) {
            return Err(verification(format!(
                "a revocation ({:?}) is not in the destination",
                r.target
            )));
        }
    }
    print_line(&format!(
        "copied {copied} elements to {} ({skipped} already there); verified {} keys ({compared} by master key)",
        to.describe(),
        source_set.keys.len()
    ))?;
    for s in &copied_as_is {
        eprintln!("dpkeys: warning: copied without rewrapping (cannot be decrypted): {s}");
    }
    for s in &presence_only {
        eprintln!("dpkeys: warning: only checked for presence (cannot be decrypted): {s}");
    }
    Ok(if presence_only.is_empty() && copied_as_is.is_empty() {
        EXIT_OK
    } else {
        EXIT_WARNINGS
    })
}
