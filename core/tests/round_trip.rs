//! Tamper and round-trip tests through real providers, for every algorithm.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use dataprotection::crypto::Algorithm;
use dataprotection::repository::InMemoryXmlRepository;
use dataprotection::{DataProtectionProvider, Error};
use rand::{Rng, RngExt, SeedableRng};

async fn provider(algorithm: Algorithm) -> DataProtectionProvider {
    DataProtectionProvider::builder()
        .application_name("round-trip")
        .algorithm(algorithm)
        .repository(Arc::new(InMemoryXmlRepository::new()))
        .build()
        .await
        .unwrap()
}

#[tokio::test]
async fn every_flipped_or_truncated_byte_is_rejected() {
    for algorithm in Algorithm::ALL {
        let p = provider(algorithm).await;
        let protector = p.create_protector("tamper");
        for plaintext in [
            &b""[..],
            b"x",
            b"sixteen bytes!!!",
            b"a somewhat longer plaintext of 40 bytes.",
        ] {
            if plaintext.is_empty() && matches!(algorithm, Algorithm::Gcm { .. }) {
                // Still must round-trip, but an empty GCM body is 44 bytes; covered below.
            }
            let payload = protector.protect(plaintext).unwrap();
            assert_eq!(protector.unprotect(&payload).unwrap(), plaintext);
            for i in 0..payload.len() {
                for mask in [0x01u8, 0x80, 0xFF] {
                    let mut tampered = payload.clone();
                    tampered[i] ^= mask;
                    let err = protector.unprotect(&tampered).unwrap_err();
                    let expected = match i {
                        0..=3 => matches!(
                            err,
                            Error::BadMagicHeader | Error::UnsupportedVersion { .. }
                        ),
                        4..=19 => matches!(err, Error::KeyNotFound { .. }),
                        _ => matches!(err, Error::DecryptionFailed),
                    };
                    assert!(expected, "{algorithm}: byte {i} ^ {mask:#x} gave {err:?}");
                }
            }
            for len in 0..payload.len() {
                let err = protector.unprotect(&payload[..len]).unwrap_err();
                assert!(
                    matches!(err, Error::BadMagicHeader | Error::DecryptionFailed),
                    "{algorithm}: truncated to {len} gave {err:?}"
                );
            }
            let mut extended = payload.clone();
            extended.push(0);
            assert!(matches!(
                protector.unprotect(&extended),
                Err(Error::DecryptionFailed)
            ));
        }
    }
}

fn random_purpose(rng: &mut impl Rng) -> String {
    match rng.random_range(0..4) {
        0 => String::new(),
        1 => "ünïcødé ✓ 日本語 🚀".repeat(rng.random_range(1..4)),
        2 => "p".repeat(rng.random_range(128..400)),
        _ => format!("purpose-{}", rng.random::<u32>()),
    }
}

#[tokio::test]
async fn random_plaintexts_and_purpose_chains_round_trip() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x5eed);
    let sizes = [
        0usize, 1, 15, 16, 17, 31, 32, 33, 255, 256, 1000, 4096, 65_536, 100_000,
    ];
    for algorithm in Algorithm::ALL {
        let p = provider(algorithm).await;
        for (round, &size) in sizes.iter().enumerate() {
            let size = if round % 3 == 2 {
                rng.random_range(0..=100_000)
            } else {
                size
            };
            let mut plaintext = vec![0u8; size];
            rng.fill_bytes(&mut plaintext);
            let chain: Vec<String> = (0..rng.random_range(0..5))
                .map(|_| random_purpose(&mut rng))
                .collect();
            let protector = p.create_protector_with_purposes(&chain);
            let payload = protector.protect(&plaintext).unwrap();
            assert_eq!(
                protector.unprotect(&payload).unwrap(),
                plaintext,
                "{algorithm} size {size}"
            );

            // A different purpose appended, or the chain reordered, fails.
            let child = protector.create_protector("other");
            assert!(matches!(
                child.unprotect(&payload),
                Err(Error::DecryptionFailed)
            ));
            if chain.len() >= 2 && chain[0] != chain[1] {
                let mut reordered = chain.clone();
                reordered.swap(0, 1);
                let other = p.create_protector_with_purposes(&reordered);
                assert!(matches!(
                    other.unprotect(&payload),
                    Err(Error::DecryptionFailed)
                ));
            }
            // The application name is part of the chain.
            let mut without_app = chain.clone();
            without_app.insert(0, "another-app".into());
            let other_app = p.create_protector_with_purposes(&without_app);
            assert!(matches!(
                other_app.unprotect(&payload),
                Err(Error::DecryptionFailed)
            ));
        }
    }
}

#[tokio::test]
async fn string_forms_accept_base64url_and_standard_base64() {
    use base64::Engine;
    let p = provider(Algorithm::default()).await;
    let protector = p.create_protector("strings");
    for _ in 0..20 {
        let text = protector.protect_str("héllo wörld").unwrap();
        assert!(text.starts_with("CfDJ8"));
        assert!(!text.contains('='));
        assert_eq!(protector.unprotect_str(&text).unwrap(), "héllo wörld");
        let bytes = dataprotection::payload::decode_text(&text).unwrap();
        let standard = base64::engine::general_purpose::STANDARD.encode(&bytes);
        assert_eq!(protector.unprotect_str(&standard).unwrap(), "héllo wörld");
    }
    assert!(matches!(
        protector.unprotect_str("not base64!"),
        Err(Error::InvalidEncoding)
    ));
}
