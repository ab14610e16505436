//! Protected-payload, AAD and time-limited vectors, unprotected through a
//! provider reading `tests/vectors/keyring/` as a file-system repository.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;

use common::{FixedRandom, b64, hex, load, vector_path};
use dataprotection::crypto::{Algorithm, Secret};
use dataprotection::payload::{
    HEADER_LEN, MAGIC_HEADER, additional_authenticated_data, decode_text, encode_text, key_id_bytes,
};
use dataprotection::repository::FileSystemXmlRepository;
use dataprotection::{DataProtectionProvider, Error, TIME_LIMITED_PURPOSE};
use time::macros::datetime;
use uuid::Uuid;

async fn vector_provider() -> DataProtectionProvider {
    DataProtectionProvider::builder()
        .repository(Arc::new(FileSystemXmlRepository::new(vector_path(
            "keyring",
        ))))
        .auto_generate_keys(false)
        .clock(Arc::new(dataprotection::clock::ManualClock::new(
            datetime!(2026-01-01 0:00 UTC),
        )))
        .build()
        .await
        .unwrap()
}

fn purposes(case: &serde_json::Value, field: &str) -> Vec<String> {
    case[field]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn positive_payloads_unprotect_with_the_keyring_directory() {
    let provider = vector_provider().await;
    let v = load("protected_payloads.json");
    let positive = v["positive"].as_array().unwrap();
    assert!(positive.len() >= 36);
    for case in positive {
        let protector = provider.create_protector_with_purposes(&purposes(case, "purposes"));
        let payload = decode_text(case["protected_base64url"].as_str().unwrap()).unwrap();
        let plaintext = protector.unprotect_async(&payload).await.unwrap();
        assert_eq!(
            plaintext,
            case["plaintext_utf8"].as_str().unwrap().as_bytes(),
            "{case}"
        );
        // The synchronous path agrees once keys are loaded.
        assert_eq!(protector.unprotect(&payload).unwrap(), plaintext);
    }
}

#[test]
fn positive_payloads_are_reproduced_byte_for_byte() {
    let v = load("protected_payloads.json");
    for case in v["positive"].as_array().unwrap() {
        let algorithm = Algorithm::from_names(
            case["encryption"].as_str().unwrap(),
            case["validation"].as_str(),
        )
        .unwrap();
        let master = Secret::new(b64(case["master_key_base64"].as_str().unwrap()));
        let mut random = hex(case["key_modifier_hex"].as_str().unwrap());
        random.extend(hex(case["iv_hex"].as_str().unwrap()));
        let enc = algorithm.encryptor_with_random(&master, Arc::new(FixedRandom::new(random)));
        let id = Uuid::parse_str(case["key_id"].as_str().unwrap()).unwrap();
        let aad = additional_authenticated_data(&id, &purposes(case, "purposes"));
        let mut payload = MAGIC_HEADER.to_vec();
        payload.extend_from_slice(&key_id_bytes(&id));
        payload.extend(
            enc.encrypt(case["plaintext_utf8"].as_str().unwrap().as_bytes(), &aad)
                .unwrap(),
        );
        assert_eq!(
            encode_text(&payload),
            case["protected_base64url"].as_str().unwrap(),
            "{case}"
        );
        assert_eq!(payload.len(), HEADER_LEN + enc.body_len(5));
    }
}

#[tokio::test]
async fn negative_payloads_fail_with_their_error_class() {
    let provider = vector_provider().await;
    let v = load("protected_payloads.json");
    let negative = v["negative"].as_array().unwrap();
    assert!(negative.len() >= 11);
    for case in negative {
        let protector = provider.create_protector_with_purposes(&purposes(case, "purposes"));
        let text = case["protected_base64url"].as_str().unwrap();
        let result = match decode_text(text) {
            Ok(bytes) => protector.unprotect_async(&bytes).await,
            Err(e) => Err(e),
        };
        let err = result.expect_err(case["case"].as_str().unwrap());
        assert_eq!(
            err.class(),
            case["expect"].as_str().unwrap(),
            "{case}: {err}"
        );
        if matches!(err, Error::DecryptionFailed) {
            // Opaque: the message says nothing about MAC, padding or tag.
            assert_eq!(err.to_string(), "the payload could not be decrypted");
        }
    }
}

#[test]
fn aad_vectors() {
    let v = load("additional_authenticated_data.json");
    let cases = v["cases"].as_array().unwrap();
    assert!(cases.len() >= 3);
    for case in cases {
        let id = Uuid::parse_str(case["key_id"].as_str().unwrap()).unwrap();
        let aad = additional_authenticated_data(&id, &purposes(case, "purposes"));
        let expected = match case["expected_base64"].as_str() {
            Some(e) => b64(e),
            None => hex(case["expected_hex"].as_str().unwrap()),
        };
        assert_eq!(aad, expected, "{case}");
    }
}

#[tokio::test]
async fn time_limited_vectors() {
    let provider = vector_provider().await;
    let v = load("time_limited.json");
    for case in v["cases"].as_array().unwrap() {
        let effective = purposes(case, "effective_purposes");
        assert_eq!(effective.last().unwrap(), TIME_LIMITED_PURPOSE);
        let protector = provider
            .create_protector_with_purposes(&purposes(case, "caller_purposes"))
            .to_time_limited();
        let payload = decode_text(case["protected_base64url"].as_str().unwrap()).unwrap();
        let result = protector.unprotect_async(&payload).await;
        let ticks = case["expiration_ticks"].as_u64().unwrap();
        if case["note"].as_str().unwrap().contains("expired") {
            let err = result.unwrap_err();
            assert!(matches!(err, Error::PayloadExpired { .. }), "{err}");
        } else {
            let (plaintext, expiration) = result.unwrap();
            assert_eq!(plaintext, b"Hello");
            assert_eq!(dataprotection::xml::to_ticks(expiration), ticks);
        }
        // The inner plaintext starts with the big-endian ticks.
        let inner = provider
            .create_protector_with_purposes(&effective)
            .unprotect_async(&payload)
            .await
            .unwrap();
        assert_eq!(inner[..8], ticks.to_be_bytes());
    }
}
