//! Start-up cost against Key Vault: a ring of 100 wrapped keys, 20 ms of injected vault
//! latency, and a fresh provider. Only the default key is unwrapped before the provider can
//! protect; an old key costs one unwrap when a payload first names it, and nothing after.
#![allow(clippy::unwrap_used, missing_docs)]

mod keyvault_common;

use std::sync::Arc;
use std::time::{Duration as StdDuration, Instant};

use dataprotection::repository::{InMemoryXmlRepository, XmlRepository};
use dataprotection_azure_keyvault::KeyVaultOptions;
use keyvault_common::*;
use keyvault_emulator::Operation;
use keyvault_emulator::isolated::{self, MsiScheme};
use time::{Duration, OffsetDateTime};

#[test]
fn keyvault_startup_cost_with_100_wrapped_keys() {
    isolated::run(
        "keyvault_startup_cost_with_100_wrapped_keys",
        MsiScheme::Http,
        || async {
            let vault = start_vault().await;
            let repo: Arc<dyn XmlRepository> = Arc::new(InMemoryXmlRepository::new());
            let now = OffsetDateTime::now_utc();
            let base = now - Duration::days(100);

            // 100 keys, one activated per day, each created 3 days before its activation.
            let keys = DatedKeys::new(&vault, repo.clone());
            let mut ids = Vec::new();
            for i in 0..100 {
                let activation = base + Duration::days(i);
                ids.push(
                    keys.create(activation - Duration::days(3), activation)
                        .await,
                );
            }
            assert_eq!(key_count(repo.as_ref()).await, 100);
            assert_eq!(
                requests(&vault.emu, Operation::WrapKey)
                    .iter()
                    .filter(|r| r.status == 200)
                    .count(),
                100
            );

            // A payload of key #10, protected while it was the default.
            let then = clock_now();
            then.set(base + Duration::days(10) + Duration::hours(12));
            let old = builder(&vault, repo.clone(), KeyVaultOptions::default())
                .clock(dyn_clock(&then))
                .auto_generate_keys(false)
                .build()
                .await
                .unwrap();
            assert_eq!(old.key_ring().unwrap().default_key_id(), Some(ids[10]));
            let old_payload = old.create_protector("startup").protect(b"old").unwrap();
            drop(old);

            // A fresh provider with 20 ms of latency on every vault request.
            vault.emu.clear_requests();
            vault.emu.faults().set_latency(StdDuration::from_millis(20));
            let started = Instant::now();
            let fresh = builder(&vault, repo.clone(), KeyVaultOptions::default())
                .build()
                .await
                .unwrap();
            let ready_after = started.elapsed();
            let protector = fresh.create_protector("startup");
            let p = protector.protect(b"new").unwrap();
            assert_eq!(fresh.key_ring().unwrap().default_key_id(), Some(ids[99]));
            let (all, ok) = unwrap_counts(&vault.emu);
            println!(
                "START-UP: a fresh provider over a ring of 100 Key Vault-wrapped keys \
                 (20 ms injected vault latency) was ready to protect after {ok} unwrap call(s) \
                 ({all} unwrapKey request(s) including the bearer challenge), \
                 {} token request(s), in {ready_after:?}",
                requests(&vault.emu, Operation::GetToken).len()
            );
            assert_eq!(ok, 1, "only the default key is unwrapped at start-up");
            assert_eq!(all, 2, "one unauthenticated challenge + one unwrap");
            assert_eq!(vault_requests(&vault.emu), 2, "no other vault request");
            assert_eq!(protector.unprotect(&p).unwrap(), b"new");
            assert_eq!(
                unwrap_counts(&vault.emu).1,
                1,
                "the hot path never calls the vault"
            );

            // An old key's payload: one more unwrap, then none.
            let started = Instant::now();
            assert_eq!(
                protector.unprotect_async(&old_payload).await.unwrap(),
                b"old"
            );
            let first_old = started.elapsed();
            assert_eq!(unwrap_counts(&vault.emu), (3, 2));
            let started = Instant::now();
            for _ in 0..10 {
                assert_eq!(
                    protector.unprotect_async(&old_payload).await.unwrap(),
                    b"old"
                );
                assert_eq!(protector.unprotect(&old_payload).unwrap(), b"old");
            }
            let repeats = started.elapsed();
            assert_eq!(unwrap_counts(&vault.emu), (3, 2));
            println!(
                "START-UP: first unprotect of an old key's payload: +1 unwrap in {first_old:?}; \
                 20 repeats: +0 unwraps in {repeats:?}"
            );
            assert_eq!(key_count(repo.as_ref()).await, 100, "no key was created");
            vault.emu.faults().clear();
        },
    );
}
