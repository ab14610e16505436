//! Key Vault throttling (429 with and without `Retry-After`) and outages (503): keys already
//! unwrapped keep working without the vault, no key is ever created because of a vault failure,
//! failures are logged, and a payload of a key not yet unwrapped fails clearly while the vault
//! is down and succeeds once it recovers (core's 30 s per-key back-off skipped with a manual clock).
#![allow(clippy::unwrap_used, missing_docs)]

mod keyvault_common;

use std::sync::Arc;
use std::time::{Duration as StdDuration, Instant};

use dataprotection::Error;
use dataprotection::repository::{InMemoryXmlRepository, XmlRepository};
use dataprotection_azure_keyvault::KeyVaultOptions;
use keyvault_common::*;
use keyvault_emulator::isolated::{self, MsiScheme};
use keyvault_emulator::{FaultRule, Operation};
use time::{Duration, OffsetDateTime};

fn statuses(emu: &keyvault_emulator::KeyVaultEmulator, op: Operation) -> Vec<u16> {
    requests(emu, op).iter().map(|r| r.status).collect()
}

#[test]
fn keyvault_throttling_and_outage_never_create_keys() {
    isolated::run(
        "keyvault_throttling_and_outage_never_create_keys",
        MsiScheme::Http,
        || async {
            let logs_buffer = capture_logs();
            let vault = start_vault().await;
            let repo: Arc<dyn XmlRepository> = Arc::new(InMemoryXmlRepository::new());
            let now = OffsetDateTime::now_utc();

            // K1 (old) and K2 (the default now).
            let keys = DatedKeys::new(&vault, repo.clone());
            let k1 = keys
                .create(now - Duration::days(12), now - Duration::days(9))
                .await;
            let k2 = keys
                .create(now - Duration::days(4), now - Duration::days(1))
                .await;

            // A payload of K1, protected while K1 was the default.
            let then = clock_now();
            then.set(now - Duration::days(8));
            let old = builder(&vault, repo.clone(), KeyVaultOptions::default())
                .clock(dyn_clock(&then))
                .auto_generate_keys(false)
                .build()
                .await
                .unwrap();
            assert_eq!(old.key_ring().unwrap().default_key_id(), Some(k1));
            let p1 = old.create_protector("outage").protect(b"k1 data").unwrap();
            drop(old);

            // The provider under test: K2 unwrapped at start-up, K1 not yet.
            let clock = clock_now();
            let provider = builder(&vault, repo.clone(), fast_retry_options())
                .clock(dyn_clock(&clock))
                .build()
                .await
                .unwrap();
            assert_eq!(provider.key_ring().unwrap().default_key_id(), Some(k2));
            let protector = provider.create_protector("outage");
            let p2 = protector.protect(b"k2 data").unwrap();

            // Another instance adds K3, which will be preferred at the next refresh.
            let k3 = keys
                .create(now - Duration::days(3), now - Duration::hours(1))
                .await;
            assert_eq!(key_count(repo.as_ref()).await, 3);

            // --- Throttling and outage: every vault request answers 429 or 503. ---
            vault.emu.clear_requests();
            let faults = vault.emu.faults();
            faults.add(FaultRule::throttle(Some(1)).times(1));
            faults.add(FaultRule::throttle(None).times(1));
            faults.add(FaultRule::unavailable());

            // Keys already unwrapped: protect/unprotect never touch the vault.
            for i in 0..50 {
                let data = format!("item {i}");
                let p = protector.protect(data.as_bytes()).unwrap();
                assert_eq!(protector.unprotect(&p).unwrap(), data.as_bytes());
                assert_eq!(protector.unprotect_async(&p2).await.unwrap(), b"k2 data");
            }
            assert_eq!(vault_requests(&vault.emu), 0);

            // A payload of K1 (not yet unwrapped) fails clearly while the vault is down.
            let started = Instant::now();
            let err = protector.unprotect_async(&p1).await.unwrap_err();
            let msg = err.to_string();
            println!("K1 during the outage ({:?}): {msg}", started.elapsed());
            assert!(matches!(err, Error::KeyDecryption { .. }), "{err:?}");
            assert_ne!(err.class(), "key not found");
            assert!(msg.contains("HTTP 503 (ServiceUnavailable)"), "{msg}");
            assert!(msg.contains("127.0.0.1"), "{msg}");
            assert!(msg.contains("/keys/dataprotection/"), "{msg}");
            // The SDK retried (3 retries): a 429 with Retry-After (honoured: >= 1 s), a 429
            // without, then 503s.
            let unwraps = statuses(&vault.emu, Operation::UnwrapKey);
            println!("unwrapKey statuses during the outage: {unwraps:?}");
            assert!(started.elapsed() >= StdDuration::from_secs(1));
            assert!(
                unwraps.iter().all(|s| [401, 429, 503].contains(s)),
                "{unwraps:?}"
            );
            assert!(unwraps.contains(&429));
            // Within core's back-off the vault is not called again.
            let before = vault_requests(&vault.emu);
            let err = protector.unprotect_async(&p1).await.unwrap_err();
            assert!(matches!(err, Error::KeyDecryption { .. }), "{err:?}");
            assert!(err.to_string().contains("retrying after"), "{err}");
            assert_eq!(vault_requests(&vault.emu), before);
            // The sync API does not block and does not call the vault either.
            assert!(protector.unprotect(&p1).is_err());

            // A refresh that needs the vault (K3 is now preferred) fails and keeps the ring.
            let err = provider.refresh().await.unwrap_err();
            println!("refresh during the outage: {err}");
            assert!(matches!(err, Error::KeyDecryption { .. }), "{err:?}");
            assert_eq!(provider.key_ring().unwrap().default_key_id(), Some(k2));
            assert!(provider.last_refresh_error().is_some());
            let p = protector.protect(b"still fine").unwrap();
            assert_eq!(protector.unprotect(&p).unwrap(), b"still fine");
            assert_eq!(key_count(repo.as_ref()).await, 3, "no key was created");

            // A fresh instance cannot start while its default key cannot be unwrapped, and
            // does not create a key either.
            let err = builder(&vault, repo.clone(), fast_retry_options())
                .build()
                .await
                .unwrap_err();
            assert!(matches!(err, Error::KeyDecryption { .. }), "{err:?}");
            assert_eq!(key_count(repo.as_ref()).await, 3, "no key was created");

            let log = logs(&logs_buffer);
            assert!(log.contains("Key Vault unwrapKey failed"), "{log}");
            assert!(log.contains("key ring refresh failed"), "{log}");
            assert!(log.contains("could not decrypt key"), "{log}");
            assert!(!log.to_lowercase().contains("bearer "), "token leaked?");
            assert!(!log.contains("eyJ"), "token leaked?");

            // --- Recovery, with throttling on the way. ---
            faults.clear();
            // Skip core's 30 s per-key back-off (and the refresh back-off) with the manual clock.
            clock.advance(Duration::seconds(31));
            // 429 without Retry-After on the refresh that unwraps K3.
            vault.emu.clear_requests();
            faults.add(
                FaultRule::throttle(None)
                    .times(2)
                    .only([Operation::UnwrapKey]),
            );
            provider.refresh().await.unwrap();
            assert_eq!(
                statuses(&vault.emu, Operation::UnwrapKey),
                vec![429, 429, 200]
            );
            assert_eq!(provider.key_ring().unwrap().default_key_id(), Some(k3));
            assert!(provider.last_refresh_error().is_none());
            // 429 with Retry-After on K1's unwrap: honoured, then success.
            vault.emu.clear_requests();
            faults.add(
                FaultRule::throttle(Some(1))
                    .times(2)
                    .only([Operation::UnwrapKey]),
            );
            let started = Instant::now();
            assert_eq!(protector.unprotect_async(&p1).await.unwrap(), b"k1 data");
            let elapsed = started.elapsed();
            assert!(elapsed >= StdDuration::from_secs(2), "{elapsed:?}");
            assert_eq!(
                statuses(&vault.emu, Operation::UnwrapKey),
                vec![429, 429, 200]
            );
            assert_eq!(protector.unprotect(&p1).unwrap(), b"k1 data");
            assert_eq!(protector.unprotect(&p2).unwrap(), b"k2 data");
            assert_eq!(key_count(repo.as_ref()).await, 3, "no key was created");
        },
    );
}
