//! Known-answer tests for the KDF, context headers and encryptors.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;

use common::{FixedRandom, b64, hex, load};
use dataprotection::crypto::{Algorithm, Secret, context_header, sp800_108_ctr_hmac_sha512};

fn algorithm(case: &serde_json::Value) -> Algorithm {
    Algorithm::from_names(
        case["encryption"].as_str().unwrap(),
        case["validation"].as_str(),
    )
    .unwrap()
}

fn bytes_field(case: &serde_json::Value, name: &str) -> Vec<u8> {
    if let Some(s) = case[format!("{name}_utf8")].as_str() {
        return s.as_bytes().to_vec();
    }
    if let Some(s) = case[format!("{name}_hex")].as_str() {
        return hex(s);
    }
    if let Some(s) = case[format!("{name}_base64")].as_str() {
        return b64(s);
    }
    if let Some(pattern) = case[format!("{name}_pattern")].as_str() {
        panic!("unknown pattern {pattern}");
    }
    panic!("no {name} in {case}");
}

#[test]
fn kdf_vectors() {
    let v = load("kdf_sp800_108_ctr_hmacsha512.json");
    let cases = v["cases"].as_array().unwrap();
    assert!(cases.len() >= 8);
    for case in cases {
        let kdk = if let Some(pattern) = case["kdk_pattern"].as_str() {
            // "byte i = i mod 256, for i in 0..N"
            let n: usize = pattern.rsplit("..").next().unwrap().trim().parse().unwrap();
            (0..n).map(|i| i as u8).collect()
        } else {
            bytes_field(case, "kdk")
        };
        let label = bytes_field(case, "label");
        let context = bytes_field(case, "context");
        let mut out = vec![0u8; case["output_bytes"].as_u64().unwrap() as usize];
        sp800_108_ctr_hmac_sha512(&kdk, &[&label], &[&context], &mut out);
        let expected = if let Some(e) = case["expected_base64"].as_str() {
            b64(e)
        } else {
            hex(case["expected_hex"].as_str().unwrap())
        };
        assert_eq!(out, expected, "case {case}");
    }
}

#[test]
fn context_header_vectors() {
    let v = load("context_headers.json");
    let cases = v["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 9);
    for case in cases {
        let header = context_header(algorithm(case));
        assert_eq!(
            header,
            hex(case["context_header_hex"].as_str().unwrap()),
            "{case}"
        );
    }
}

#[test]
fn encryptor_vectors() {
    let v = load("authenticated_encryptors.json");
    let cases = v["cases"].as_array().unwrap();
    assert!(cases.len() >= 38);
    for case in cases {
        let master = Secret::new(bytes_field(case, "master_key"));
        let mut random = hex(case["key_modifier_hex"].as_str().unwrap());
        random.extend(hex(case["iv_hex"].as_str().unwrap()));
        let enc =
            algorithm(case).encryptor_with_random(&master, Arc::new(FixedRandom::new(random)));
        let plaintext = hex(case["plaintext_hex"].as_str().unwrap());
        let aad = hex(case["aad_hex"].as_str().unwrap());
        let body = enc.encrypt(&plaintext, &aad).unwrap();
        let expected = b64(case["expected_base64"].as_str().unwrap());
        assert_eq!(body, expected, "{case}");
        assert_eq!(enc.decrypt(&body, &[&aad]).unwrap(), plaintext);
        assert_eq!(enc.body_len(plaintext.len()), body.len());
    }
}
