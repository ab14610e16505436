//! `dpkeys rewrap --keyvault-key NEW` / `--to-certificate PATH`: re-encrypt
//! every key at rest under another Key Vault key or key version, or an X.509
//! certificate (Key Vault to certificate, certificate to Key Vault, one
//! certificate to another).
//!
//! 1. One wrap with the target key first: it checks access and tells which
//!    versioned `kid` the target is (a versionless URL names the latest).
//! 2. Every `<key>` element not already wrapped with that `kid` is decrypted
//!    (with the global decryptors, or the target's credential) and its
//!    master key encrypted again with the target; the new element differs
//!    from the old one only in its descriptor. Elements that cannot be
//!    decrypted are left as they are and reported.
//! 3. The replacements are written with the repository's
//!    [`XmlRepository::replace_elements`](dataprotection::repository::XmlRepository::replace_elements):
//!    one conditional upload for a blob, an atomic rename per file for a
//!    directory. At no moment is a key missing or present twice. Elements
//!    are matched by content, so a conflict re-applies the same
//!    replacements without encrypting again.
//! 4. The ring is read again and every rewrapped key's master key decrypted
//!    and compared with the original.

use std::collections::HashMap;
use std::sync::Arc;

use dataprotection::KeySet;
use dataprotection::encryption::{
    DecryptorRegistry, XmlDecryptor, XmlEncryptor, encrypt_if_necessary,
};
use dataprotection::repository::replace_where;
use dataprotection::xml::{Element, StoredElement};
use dataprotection_azure_keyvault::{
    AZURE_KEY_VAULT_XML_DECRYPTOR_TYPES, AzureKeyVaultKeyClient, KeyVaultOptions, KeyWrapClient,
    WrapAlgorithm, credential_from_environment, key_vault_protection,
};
use dataprotection_x509::{
    CertificateXmlEncryptor, ENCRYPTED_XML_DECRYPTOR_TYPE, EncryptedXmlDecryptor,
};
use uuid::Uuid;

use super::{EXIT_OK, EXIT_WARNINGS, print_line};
use crate::certificates::CertificateSources;
use crate::cli::RewrapArgs;
use crate::context::Context;
use crate::error::{CliError, Context as _, Result};
use crate::progress::Progress;
use crate::ring::{decrypted_descriptor, master_key, with_descriptor, wrapping_kid};

const ACTION: &str = "rewrap";

fn key_vault_error(e: impl std::fmt::Display) -> CliError {
    CliError::Failed {
        action: ACTION,
        class: "key encryption failure",
        message: e.to_string(),
    }
}

/// What keys are rewrapped to, and how to tell a key already wrapped with it.
struct Target {
    encryptor: Arc<dyn XmlEncryptor>,
    /// The versioned Key Vault `kid`, or the certificate's thumbprint.
    id: String,
    is_certificate: bool,
}

impl Target {
    fn is_current(&self, descriptor: &Element) -> bool {
        let current = if self.is_certificate {
            crate::certificates::encrypted_to(descriptor)
        } else {
            wrapping_kid(descriptor)
        };
        current.as_deref() == Some(self.id.as_str())
    }

    fn describe(&self) -> String {
        if self.is_certificate {
            format!("certificate {}", self.id)
        } else {
            self.id.clone()
        }
    }
}

/// The Key Vault target: one wrap first checks access and tells which
/// versioned `kid` the target is. Stored keys are decrypted with what the
/// global options configure, else with the target's client (it unwraps with
/// whatever kid an element names).
async fn key_vault_target(
    context: &Context,
    key_id: &str,
    registry: &mut DecryptorRegistry,
) -> Result<Target> {
    let (credential, _) = credential_from_environment().map_err(key_vault_error)?;
    let (encryptor, decryptor) =
        key_vault_protection(key_id, credential.clone(), KeyVaultOptions::default())
            .map_err(key_vault_error)?;
    let probe = AzureKeyVaultKeyClient::new(key_id, credential, KeyVaultOptions::default())
        .map_err(key_vault_error)?;
    let target_kid = probe
        .wrap_key(WrapAlgorithm::RsaOaep, &[0u8; 32])
        .await
        .map_err(|e| key_vault_error(format!("wrapping with the target key failed: {e}")))?
        .kid;
    if !context.encryption.has_key_vault() {
        let decryptor: Arc<dyn XmlDecryptor> = decryptor;
        for type_name in AZURE_KEY_VAULT_XML_DECRYPTOR_TYPES {
            registry.register(type_name, decryptor.clone());
        }
    }
    Ok(Target {
        encryptor,
        id: target_kid,
        is_certificate: false,
    })
}

/// The certificate target. Its private key is required: every rewrapped key
/// is decrypted again to verify it.
fn certificate_target(
    context: &Context,
    args: &RewrapArgs,
    registry: &mut DecryptorRegistry,
) -> Result<Target> {
    let paths: Vec<_> = args.to_certificate.iter().cloned().collect();
    let thumbprints: Vec<_> = args.to_certificate_thumbprint.iter().cloned().collect();
    let certificate = crate::certificates::load(CertificateSources {
        paths: &paths,
        password_env: args.to_certificate_password_env.as_deref(),
        thumbprints: &thumbprints,
        key_vault: &[],
    })?
    .into_iter()
    .next()
    .ok_or_else(|| CliError::Failed {
        action: ACTION,
        class: "invalid argument",
        message: "no target certificate".into(),
    })?;
    if !certificate.has_private_key() {
        return Err(CliError::Failed {
            action: ACTION,
            class: "invalid argument",
            message: format!(
                "the target certificate {} has no private key, which is needed to verify the                  rewrapped keys (give the PFX, or the PEM with its PRIVATE KEY)",
                certificate.thumbprint()
            ),
        });
    }
    let decryptor = EncryptedXmlDecryptor::new(
        context
            .encryption
            .certificates
            .iter()
            .cloned()
            .chain([certificate.clone()]),
    );
    registry.register(ENCRYPTED_XML_DECRYPTOR_TYPE, Arc::new(decryptor));
    Ok(Target {
        id: certificate.thumbprint().to_string(),
        encryptor: Arc::new(CertificateXmlEncryptor::new(certificate)),
        is_certificate: true,
    })
}

/// A stored element rewrap left as it was, and why.
struct Skipped {
    /// The key it is, when its id could be read (a key skipped here is not
    /// reported again as "not wrapped with the target").
    key_id: Option<Uuid>,
    /// What it is and why it was left, for people.
    what: String,
}

impl Skipped {
    fn key(key_id: Uuid, why: String) -> Self {
        Skipped {
            key_id: Some(key_id),
            what: format!("key {key_id} ({why})"),
        }
    }
}

/// Runs `rewrap`.
pub async fn run(context: &Context, args: RewrapArgs) -> Result<u8> {
    let mut registry = context.encryption.registry();
    // A certificate target wins: --keyvault-key is a global option too, and
    // then names where stored keys are decrypted.
    let to_certificate = args.to_certificate.is_some() || args.to_certificate_thumbprint.is_some();
    let target = match &args.keyvault_key {
        Some(key_id) if !to_certificate => key_vault_target(context, key_id, &mut registry).await?,
        _ => certificate_target(context, &args, &mut registry)?,
    };
    let encryptor = target.encryptor.clone();

    let elements = context.repository.get_all_elements().await.during(ACTION)?;
    let key_elements: Vec<&Element> = elements.iter().filter(|e| e.is("key")).collect();
    let mut replacements = Vec::new();
    let mut originals = HashMap::new();
    let mut already = 0usize;
    let mut skipped: Vec<Skipped> = Vec::new();
    let mut progress = Progress::new("rewrap", key_elements.len());
    for element in key_elements {
        progress.step();
        let key = match StoredElement::classify(element) {
            Ok(StoredElement::Key(k)) => k,
            Ok(_) => continue,
            Err(e) => {
                skipped.push(Skipped {
                    key_id: None,
                    what: format!("an unreadable <key> element ({e})"),
                });
                continue;
            }
        };
        if !args.force && target.is_current(&key.descriptor) {
            already += 1;
            continue;
        }
        let plain = match decrypted_descriptor(&registry, &key).await {
            Ok(d) => d,
            Err(e) => {
                skipped.push(Skipped::key(key.id, format!("{e}; {}", e.class())));
                continue;
            }
        };
        let master = match master_key(&registry, &key).await {
            Ok(m) => m,
            Err(e) => {
                skipped.push(Skipped::key(key.id, format!("{e}; {}", e.class())));
                continue;
            }
        };
        let Some(wrapped) = encrypt_if_necessary(&plain, encryptor.as_ref())
            .await
            .during(ACTION)?
        else {
            skipped.push(Skipped::key(
                key.id,
                "its descriptor marks nothing as requiring encryption".to_string(),
            ));
            continue;
        };
        originals.insert(key.id, master);
        replacements.push((element.clone(), with_descriptor(element, wrapped)));
    }
    progress.finish();

    // Every stored element equal to a rewrapped one is replaced by its new
    // version (a pure function of the stored elements, as the repository
    // may call it again after a conflict).
    let choose = replace_where(|e| {
        replacements
            .iter()
            .find(|(old, _)| old == e)
            .map(|(_, new)| new.clone())
    });
    let replaced = if replacements.is_empty() {
        0
    } else {
        context
            .repository
            .replace_elements(&choose)
            .await
            .during(ACTION)?
    };

    // Verify: every rewrapped key reads back, wrapped with the target, and
    // decrypts to the same master key.
    let after = context.key_manager().get_all_keys().await.during(ACTION)?;
    let mut verified = 0usize;
    for (id, master) in &originals {
        let Some(key) = after.get(*id) else {
            return Err(CliError::Failed {
                action: ACTION,
                class: "verification failure",
                message: format!("key {id} is no longer in the ring after rewrapping"),
            });
        };
        if !target.is_current(&key.xml().descriptor) {
            // Replaced concurrently (another rewrap) or removed: reported below.
            continue;
        }
        match master_key(&registry, key.xml()).await {
            Ok(m) if m.expose() == master.expose() => verified += 1,
            Ok(_) => {
                return Err(CliError::Failed {
                    action: ACTION,
                    class: "verification failure",
                    message: format!(
                        "key {id} decrypts to a different master key after rewrapping"
                    ),
                });
            }
            Err(e) => {
                return Err(CliError::Failed {
                    action: ACTION,
                    class: "verification failure",
                    message: format!("key {id} cannot be decrypted after rewrapping: {e}"),
                });
            }
        }
    }
    // Keys that appeared while rewrapping (written by applications with the
    // previous configuration) are not wrapped with the target yet.
    let behind: Vec<Uuid> = not_wrapped_with(&after, &target)
        .into_iter()
        .filter(|id| !skipped.iter().any(|s| s.key_id == Some(*id)))
        .collect();
    print_line(&format!(
        "rewrapped {} keys with {} ({verified} verified); {already} already wrapped with it; {} left as they were",
        replaced,
        target.describe(),
        skipped.len()
    ))?;
    for s in &skipped {
        eprintln!("dpkeys: warning: left as it was: {}", s.what);
    }
    if !behind.is_empty() {
        eprintln!(
            "dpkeys: warning: not wrapped with the target key (added or changed while rewrapping; run rewrap again): {}",
            behind
                .iter()
                .map(Uuid::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Ok(if skipped.is_empty() && behind.is_empty() {
        EXIT_OK
    } else {
        EXIT_WARNINGS
    })
}

/// Keys whose master key is not wrapped with exactly the target.
fn not_wrapped_with(set: &KeySet, target: &Target) -> Vec<Uuid> {
    set.keys
        .iter()
        .filter(|k| !target.is_current(&k.xml().descriptor))
        .map(|k| k.id())
        .collect()
}
