//! A `DataProtectionProvider` whose keys are encrypted at rest with Azure Key Vault (the
//! emulator), authenticated with the real `ManagedIdentityCredential` chosen by
//! `credential_from_environment`: round trip, a fresh provider reading the ring, nothing secret
//! stored in clear, vault key rotation, and disabled key versions.
//!
//! Each test re-runs itself in a child process (`keyvault_emulator::isolated`) so that
//! `IDENTITY_ENDPOINT`, `IDENTITY_HEADER` and `SSL_CERT_FILE` can be set without `unsafe`.
#![allow(clippy::unwrap_used, missing_docs)]

mod keyvault_common;

use std::sync::Arc;

use dataprotection::Error;
use dataprotection::encryption::has_unencrypted_secret;
use dataprotection::repository::{FileSystemXmlRepository, InMemoryXmlRepository, XmlRepository};
use dataprotection_azure_keyvault::{AZURE_KEY_VAULT_XML_DECRYPTOR_TYPE, KeyVaultOptions};
use keyvault_common::*;
use keyvault_emulator::Operation;
use keyvault_emulator::isolated::{self, MsiScheme};
use time::{Duration, OffsetDateTime};

#[test]
fn keyvault_round_trip_fresh_provider_and_nothing_in_clear() {
    isolated::run(
        "keyvault_round_trip_fresh_provider_and_nothing_in_clear",
        MsiScheme::Http,
        || async {
            let vault = start_vault().await;
            let dir = tempfile::tempdir().unwrap();
            let repo: Arc<dyn XmlRepository> = Arc::new(FileSystemXmlRepository::new(dir.path()));
            let escrow = Arc::new(Escrow::default());

            let provider = builder(&vault, repo.clone(), KeyVaultOptions::default())
                .key_escrow(escrow.clone())
                .build()
                .await
                .unwrap();
            let protector = provider.create_protector("round-trip");
            let payload = protector.protect(b"secret data").unwrap();
            assert_eq!(protector.unprotect(&payload).unwrap(), b"secret data");
            let text = protector.protect_str("hello").unwrap();
            assert_eq!(protector.unprotect_str(&text).unwrap(), "hello");
            // One wrap for the new key; its AES key was cached when wrapped, so no unwrap.
            assert_eq!(
                requests(&vault.emu, Operation::WrapKey)
                    .iter()
                    .filter(|r| r.status == 200)
                    .count(),
                1
            );
            assert_eq!(unwrap_counts(&vault.emu).1, 0);

            // What is stored: the encrypted wrapper, the versioned kid, no master key.
            let master_keys = escrow.master_keys();
            assert_eq!(master_keys.len(), 1);
            assert!(master_keys[0].len() >= 80, "{}", master_keys[0]);
            let mut files: Vec<_> = std::fs::read_dir(dir.path())
                .unwrap()
                .map(|e| e.unwrap().path())
                .filter(|p| p.extension().is_some_and(|x| x == "xml"))
                .collect();
            files.sort();
            assert_eq!(files.len(), 1);
            let bytes = std::fs::read(&files[0]).unwrap();
            let stored = String::from_utf8_lossy(&bytes);
            println!("stored key file:\n{stored}");
            assert!(
                stored.contains(&format!(
                    "<encryptedSecret decryptorType=\"{AZURE_KEY_VAULT_XML_DECRYPTOR_TYPE}\""
                )),
                "{stored}"
            );
            assert!(stored.contains("<!-- This key is encrypted with Azure Key Vault. -->"));
            assert!(
                !stored.contains(master_keys[0].as_str()),
                "master key in clear"
            );
            assert!(!stored.contains("masterKey"), "{stored}");
            assert!(!stored.contains("requiresEncryption"), "{stored}");
            let elements = repo.get_all_elements().await.unwrap();
            assert_eq!(elements.len(), 1);
            assert!(!has_unencrypted_secret(&elements[0]));
            assert!(descendants(&elements[0], "masterKey").is_empty());
            // The only <value> is the encrypted one inside <encryptedKey>.
            let values = descendants(&elements[0], "value");
            assert_eq!(values.len(), 1);
            let encrypted_key = descendants(&elements[0], "encryptedKey");
            assert_eq!(encrypted_key.len(), 1);
            assert_eq!(
                encrypted_key[0].child("value").map(|v| v.text()),
                Some(values[0].text())
            );
            // Versioned kid, although the configured URL was versionless.
            assert_eq!(kid_of(&elements[0]), vault.first_kid);
            assert!(vault.key_url.ends_with("/keys/dataprotection"));

            // A fresh provider (new credential, client, caches; same directory).
            drop(provider);
            vault.emu.clear_requests();
            let fresh = builder(&vault, repo.clone(), KeyVaultOptions::default())
                .build()
                .await
                .unwrap();
            let fresh_protector = fresh.create_protector("round-trip");
            assert_eq!(fresh_protector.unprotect(&payload).unwrap(), b"secret data");
            assert_eq!(fresh_protector.unprotect_str(&text).unwrap(), "hello");
            assert_eq!(unwrap_counts(&vault.emu).1, 1);
            let unwrap = requests(&vault.emu, Operation::UnwrapKey)
                .into_iter()
                .find(|r| r.status == 200)
                .unwrap();
            assert_eq!(
                Some(vault.first_kid.rsplit('/').next().unwrap()),
                unwrap.key_version.as_deref()
            );
            assert_eq!(key_count(repo.as_ref()).await, 1, "no key was added");
            // Keys made by the fresh provider's protector round-trip through the first one's payloads.
            let back = fresh_protector.protect(b"from fresh").unwrap();
            assert_eq!(fresh_protector.unprotect(&back).unwrap(), b"from fresh");
        },
    );
}

#[test]
fn keyvault_rotation_keeps_old_keys_readable() {
    isolated::run(
        "keyvault_rotation_keeps_old_keys_readable",
        MsiScheme::Http,
        || async {
            let vault = start_vault().await;
            let repo: Arc<dyn XmlRepository> = Arc::new(InMemoryXmlRepository::new());
            let v1 = vault.first_kid.clone();

            // K1 (wrapped with v1) protects a payload.
            let provider = builder(&vault, repo.clone(), KeyVaultOptions::default())
                .build()
                .await
                .unwrap();
            let k1 = provider.key_ring().unwrap().default_key_id().unwrap();
            let p1 = provider.create_protector("rot").protect(b"before").unwrap();

            // Rotate the vault key: a new version becomes the latest.
            let v2 = vault.emu.create_key(KEY, 2048).await.unwrap();
            assert_ne!(v1, v2);
            assert_eq!(vault.emu.key_versions(KEY).unwrap().len(), 2);

            // K2 is wrapped with v2 (the versionless URL resolves to the latest version).
            let k2 = provider
                .key_manager()
                .create_key(
                    OffsetDateTime::now_utc(),
                    OffsetDateTime::now_utc() + Duration::days(90),
                )
                .await
                .unwrap()
                .id();
            let elements = repo.get_all_elements().await.unwrap();
            assert_eq!(kid_of(key_element(&elements, k1)), v1);
            assert_eq!(kid_of(key_element(&elements, k2)), v2);

            // A fresh provider reads both: K1 with v1, K2 with v2.
            vault.emu.clear_requests();
            let fresh = builder(&vault, repo.clone(), KeyVaultOptions::default())
                .build()
                .await
                .unwrap();
            assert_eq!(
                fresh
                    .create_protector("rot")
                    .unprotect_async(&p1)
                    .await
                    .unwrap(),
                b"before"
            );
            fresh.decrypt_all_keys().await.unwrap();
            let mut versions: Vec<String> = requests(&vault.emu, Operation::UnwrapKey)
                .into_iter()
                .filter(|r| r.status == 200)
                .map(|r| r.key_version.unwrap())
                .collect();
            versions.sort();
            let mut expected = vec![
                v1.rsplit('/').next().unwrap().to_string(),
                v2.rsplit('/').next().unwrap().to_string(),
            ];
            expected.sort();
            assert_eq!(versions, expected);
            assert_eq!(key_count(repo.as_ref()).await, 2);
        },
    );
}

#[test]
fn keyvault_disabled_key_version_is_a_clear_error_not_a_new_key() {
    isolated::run(
        "keyvault_disabled_key_version_is_a_clear_error_not_a_new_key",
        MsiScheme::Http,
        || async {
            let vault = start_vault().await;
            let repo: Arc<dyn XmlRepository> = Arc::new(InMemoryXmlRepository::new());
            let now = OffsetDateTime::now_utc();
            let v1 = vault.first_kid.clone();

            // K1 wrapped with v1 (old), then K2 wrapped with v2 (the default now).
            let keys = DatedKeys::new(&vault, repo.clone());
            let k1 = keys
                .create(now - Duration::days(12), now - Duration::days(9))
                .await;
            let v2 = vault.emu.create_key(KEY, 2048).await.unwrap();
            let k2 = keys
                .create(now - Duration::days(4), now - Duration::days(1))
                .await;
            let elements = repo.get_all_elements().await.unwrap();
            assert_eq!(kid_of(key_element(&elements, k1)), v1);
            assert_eq!(kid_of(key_element(&elements, k2)), v2);

            // A payload of K1, made while K1 was the default.
            let then = clock_now();
            then.set(now - Duration::days(8));
            let old = builder(&vault, repo.clone(), KeyVaultOptions::default())
                .clock(dyn_clock(&then))
                .auto_generate_keys(false)
                .build()
                .await
                .unwrap();
            assert_eq!(old.key_ring().unwrap().default_key_id(), Some(k1));
            let p1 = old.create_protector("dis").protect(b"old secret").unwrap();

            // Disable v1: K1 cannot be unwrapped any more.
            let v1_version = v1.rsplit('/').next().unwrap().to_string();
            vault
                .emu
                .set_key_enabled(KEY, Some(&v1_version), false)
                .unwrap();
            let fresh = builder(&vault, repo.clone(), fast_retry_options())
                .build()
                .await
                .unwrap();
            assert_eq!(fresh.key_ring().unwrap().default_key_id(), Some(k2));
            let err = fresh
                .create_protector("dis")
                .unprotect_async(&p1)
                .await
                .unwrap_err();
            let msg = err.to_string();
            println!("disabled key version error: {msg}");
            assert!(matches!(err, Error::KeyDecryption { .. }), "{err:?}");
            assert_eq!(err.class(), "key decryption failure");
            assert!(msg.contains(&v1), "{msg}");
            assert!(msg.contains("HTTP 403"), "{msg}");
            assert!(msg.contains("127.0.0.1"), "{msg}");
            assert!(!msg.to_lowercase().contains("bearer"), "{msg}");
            // A 403 is not retried by the SDK.
            let forbidden: Vec<_> = requests(&vault.emu, Operation::UnwrapKey)
                .into_iter()
                .filter(|r| r.status == 403)
                .collect();
            assert_eq!(forbidden.len(), 1);
            // New payloads still work (K2), and no key was created.
            let p = fresh.create_protector("dis").protect(b"new").unwrap();
            assert_eq!(fresh.create_protector("dis").unprotect(&p).unwrap(), b"new");
            fresh.refresh().await.unwrap();
            assert_eq!(key_count(repo.as_ref()).await, 2);

            // Disabling the default key's version too: a fresh provider refuses to start
            // (clearly) rather than create a key.
            let v2_version = v2.rsplit('/').next().unwrap().to_string();
            vault
                .emu
                .set_key_enabled(KEY, Some(&v2_version), false)
                .unwrap();
            let err = builder(&vault, repo.clone(), fast_retry_options())
                .build()
                .await
                .unwrap_err();
            println!("disabled default key error: {err}");
            assert!(matches!(err, Error::KeyDecryption { .. }), "{err:?}");
            assert!(err.to_string().contains(&v2), "{err}");
            assert_eq!(key_count(repo.as_ref()).await, 2, "no key was created");

            // Re-enabled, it works again.
            vault
                .emu
                .set_key_enabled(KEY, Some(&v1_version), true)
                .unwrap();
            vault
                .emu
                .set_key_enabled(KEY, Some(&v2_version), true)
                .unwrap();
            let again = builder(&vault, repo.clone(), KeyVaultOptions::default())
                .build()
                .await
                .unwrap();
            assert_eq!(
                again
                    .create_protector("dis")
                    .unprotect_async(&p1)
                    .await
                    .unwrap(),
                b"old secret"
            );
        },
    );
}
