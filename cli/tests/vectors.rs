//! The core crate's known-answer vectors, through the command line, on a copy
//! of the vector key ring without automatic key generation.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;

use common::*;

fn unprotect(ring: &Path, purposes: &[String], extra: &[&str], payload: &str) -> Output {
    let mut args: Vec<String> = vec!["--no-auto-generate".into(), "unprotect".into()];
    args.extend(purpose_args(purposes));
    args.extend(extra.iter().map(|s| s.to_string()));
    args.push(payload.to_string());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    run_in(ring, &args, None)
}

#[test]
fn every_positive_payload_unprotects() {
    let ring = vector_ring();
    let vectors = vector_json("protected_payloads.json");
    let positive = vectors["positive"].as_array().unwrap();
    assert!(positive.len() >= 9);
    for case in positive {
        let purposes = strings(&case["purposes"]);
        let payload = case["protected_base64url"].as_str().unwrap();
        let out = unprotect(ring.path(), &purposes, &[], payload);
        assert_eq!(out.code, 0, "{case}: {}", out.stderr);
        assert_eq!(
            out.text(),
            case["plaintext_utf8"].as_str().unwrap(),
            "{case}"
        );
        assert_eq!(out.text(), "Hello");
    }
    assert_eq!(key_files(ring.path()).len(), 9, "no key was added");
}

#[test]
fn every_negative_payload_fails_with_its_class() {
    let ring = vector_ring();
    let vectors = vector_json("protected_payloads.json");
    let negative = vectors["negative"].as_array().unwrap();
    assert!(!negative.is_empty());
    for case in negative {
        let purposes = strings(&case["purposes"]);
        let payload = case["protected_base64url"].as_str().unwrap();
        let class = case["expect"].as_str().unwrap();
        let out = unprotect(ring.path(), &purposes, &[], payload);
        assert_eq!(out.code, 1, "{case}: {}", out.stderr);
        assert!(
            out.stderr.contains(&format!("unprotect failed ({class})")),
            "{}: stderr does not name {class:?}: {}",
            case["case"],
            out.stderr
        );
        assert!(out.stdout.is_empty());
    }
}

#[test]
fn time_limited_vectors() {
    let ring = vector_ring();
    let vectors = vector_json("time_limited.json");
    let cases = vectors["cases"].as_array().unwrap();
    let mut expired = 0;
    for case in cases {
        let purposes = strings(&case["caller_purposes"]);
        let payload = case["protected_base64url"].as_str().unwrap();
        let out = unprotect(ring.path(), &purposes, &["--time-limited"], payload);
        if case["note"].as_str().unwrap().contains("expired") {
            expired += 1;
            out.fails_with("payload expired");
        } else {
            assert_eq!(out.ok(), case["plaintext_utf8"].as_str().unwrap());
            // The same payload is a plain payload under the effective purposes.
            let effective = strings(&case["effective_purposes"]);
            let raw = unprotect(ring.path(), &effective, &[], payload);
            assert_eq!(raw.code, 0, "{}", raw.stderr);
            assert_eq!(
                &raw.stdout[8..],
                b"Hello",
                "8 bytes of expiration ticks, then the data"
            );
        }
    }
    assert_eq!(expired, 1);
}

#[test]
fn keys_list_json_on_the_vector_ring() {
    let ring = vector_ring();
    let keys = list_keys(ring.path());
    assert_eq!(keys.len(), 9);
    let vectors = vector_json("protected_payloads.json");
    for case in vectors["positive"].as_array().unwrap() {
        let key = keys
            .iter()
            .find(|k| k["id"] == case["key_id"])
            .unwrap_or_else(|| panic!("key {} not listed", case["key_id"]));
        assert_eq!(key["encryption"], case["encryption"], "{key}");
        let validation = &case["validation"];
        if case["encryption"].as_str().unwrap().ends_with("GCM") {
            assert!(key["validation"].is_null(), "{key}");
        } else {
            assert_eq!(&key["validation"], validation, "{key}");
        }
    }
    for key in &keys {
        for field in [
            "id",
            "creationDate",
            "activationDate",
            "expirationDate",
            "encryption",
        ] {
            assert!(key[field].is_string(), "{field} in {key}");
        }
        assert_eq!(key["canDecrypt"], true, "{key}");
        assert_eq!(key["isRevoked"], false, "{key}");
        assert_eq!(key["encryptedAtRest"], false, "{key}");
        assert_eq!(key["expirationDate"], "2125-01-01T10:00:00Z");
        assert!(key["problem"].is_null());
    }
    assert_eq!(keys[0]["id"], "ba73c9ce-d322-4e45-af90-341307e11c00");
    assert_eq!(keys[0]["creationDate"], "2025-01-01T10:00:00.1234567Z");
    assert_eq!(keys[0]["activationDate"], "2025-01-01T09:59:59.991Z");
    let defaults: Vec<_> = keys.iter().filter(|k| k["isDefault"] == true).collect();
    assert_eq!(defaults.len(), 1);
    // The most recently activated key.
    assert_eq!(defaults[0]["id"], "ba73c9ce-d322-4e45-af90-341307e11c08");
    assert_eq!(defaults[0]["encryption"], "AES_256_GCM");
}

#[test]
fn keys_list_table_on_the_vector_ring() {
    let ring = vector_ring();
    let table = run_in(ring.path(), &["keys", "list"], None).ok();
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].starts_with("ID"), "{table}");
    assert_eq!(lines.len(), 10, "{table}");
    let default: Vec<&&str> = lines.iter().filter(|l| l.contains(" default ")).collect();
    assert_eq!(default.len(), 1, "{table}");
    assert!(default[0].starts_with("ba73c9ce-d322-4e45-af90-341307e11c08"));
    assert!(table.contains("AES_128_CBC+HMACSHA512"));
}

#[test]
fn vector_ring_protects_with_its_default_key() {
    let ring = vector_ring();
    let out = run_in(
        ring.path(),
        &["--no-auto-generate", "protect", "--purpose", "x", "via c08"],
        None,
    );
    let payload = out.ok();
    let payload = payload.trim();
    // The default key c08 (AES-256-GCM) was used: its id follows the magic header.
    // (The 27th character holds the id's last nibble, 8, and two body bits.)
    assert!(
        payload.starts_with("CfDJ8M7Jc7oi00VOr5A0EwfhHA"),
        "{payload}"
    );
    assert!("ghij".contains(&payload[26..27]), "{payload}");
    let back = run_in(
        ring.path(),
        &["--no-auto-generate", "unprotect", "--purpose", "x", payload],
        None,
    );
    assert_eq!(back.ok(), "via c08");
    assert_eq!(key_files(ring.path()).len(), 9);
}
