//! `dpkeys keys ...`: create, revoke, revoke all, delete.

#![allow(clippy::unwrap_used)]

mod common;

use common::*;

/// A payload of the vector ring protected with key c04 (AES-256-CBC, HMAC-SHA256).
fn c04_payload() -> (Vec<String>, String) {
    let vectors = vector_json("protected_payloads.json");
    let case = vectors["positive"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["key_id"] == "ba73c9ce-d322-4e45-af90-341307e11c04")
        .unwrap()
        .clone();
    (
        strings(&case["purposes"]),
        case["protected_base64url"].as_str().unwrap().to_string(),
    )
}

fn key<'a>(keys: &'a [serde_json::Value], id: &str) -> Option<&'a serde_json::Value> {
    keys.iter().find(|k| k["id"] == id)
}

#[test]
fn keys_new_adds_a_key() {
    let ring = vector_ring();
    let id = run_in(ring.path(), &["keys", "new"], None).ok();
    let id = id.trim();
    assert_eq!(id.len(), 36, "{id}");
    let keys = list_keys(ring.path());
    assert_eq!(keys.len(), 10);
    let new = key(&keys, id).unwrap();
    assert_eq!(new["isRevoked"], false);
    assert_eq!(new["canDecrypt"], true);
    assert_eq!(new["encryption"], "AES_256_CBC");
    assert_eq!(new["validation"], "HMACSHA256");
    assert!(key_files(ring.path()).contains(&format!("key-{id}.xml")));

    let id = run_in(
        ring.path(),
        &[
            "keys",
            "new",
            "--activation",
            "2030-01-01T00:00:00Z",
            "--expiration",
            "2030-06-01T12:00:00+02:00",
        ],
        None,
    )
    .ok();
    let keys = list_keys(ring.path());
    let new = key(&keys, id.trim()).unwrap();
    assert_eq!(new["activationDate"], "2030-01-01T00:00:00Z");
    assert_eq!(new["expirationDate"], "2030-06-01T12:00:00+02:00");
    assert_eq!(new["isDefault"], false, "not active yet");

    // Expiration before activation: the operation fails (exit 1), nothing is written.
    let before = key_files(ring.path());
    let out = run_in(
        ring.path(),
        &[
            "keys",
            "new",
            "--activation",
            "2030-01-01T00:00:00Z",
            "--expiration",
            "2029-01-01T00:00:00Z",
        ],
        None,
    );
    out.fails_with("invalid argument");
    assert_eq!(key_files(ring.path()), before);
}

#[test]
fn revoked_key_payloads_fail() {
    let ring = vector_ring();
    let (purposes, payload) = c04_payload();
    let mut args = vec!["--no-auto-generate".to_string(), "unprotect".to_string()];
    args.extend(purpose_args(&purposes));
    args.push(payload);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    assert_eq!(run_in(ring.path(), &args, None).ok(), "Hello");

    let c04 = "ba73c9ce-d322-4e45-af90-341307e11c04";
    let out = run_in(
        ring.path(),
        &["keys", "revoke", c04, "--reason", "compromised"],
        None,
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.is_empty());
    let keys = list_keys(ring.path());
    for k in &keys {
        assert_eq!(k["isRevoked"] == true, k["id"] == c04, "{k}");
    }
    let revocation =
        std::fs::read_to_string(ring.path().join(format!("revocation-{c04}.xml"))).unwrap();
    assert!(
        revocation.contains("<reason>compromised</reason>"),
        "{revocation}"
    );

    let out = run_in(ring.path(), &args, None);
    out.fails_with("key revoked");
    assert!(out.stderr.contains(c04), "{}", out.stderr);

    // Unknown ids are refused and nothing is written.
    let before = file_names(ring.path());
    run_in(
        ring.path(),
        &["keys", "revoke", "00000000-0000-0000-0000-000000000001"],
        None,
    )
    .fails_with("key not found");
    assert_eq!(file_names(ring.path()), before);
}

#[test]
fn revoking_the_only_key_of_a_fresh_ring() {
    let (_tmp, ring) = fresh_ring();
    let payload = protect(&ring, &["--purpose", "p"], "secret");
    let keys = list_keys(&ring);
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0]["isDefault"], true);
    let id = keys[0]["id"].as_str().unwrap().to_string();
    run_in(&ring, &["keys", "revoke", &id], None).ok();
    assert_eq!(list_keys(&ring)[0]["isDefault"], false);
    // unprotect only reads the ring: with or without automatic generation it
    // names the revoked key and creates nothing.
    for extra in [&["--no-auto-generate"][..], &[]] {
        let mut args = extra.to_vec();
        args.extend(["unprotect", "--purpose", "p", &payload]);
        run_in(&ring, &args, None).fails_with("key revoked");
        assert_eq!(list_keys(&ring).len(), 1, "unprotect created a key");
    }
    // protect creates the new default key; the payload stays revoked.
    run_in(&ring, &["protect", "y"], None).ok();
    run_in(&ring, &["unprotect", "--purpose", "p", &payload], None).fails_with("key revoked");
    assert_eq!(list_keys(&ring).len(), 2);
    run_in(&ring, &["--no-auto-generate", "protect", "x"], None).ok();
}

#[test]
fn revoke_all_then_protect_creates_a_fresh_key() {
    let (_tmp, ring) = fresh_ring();
    let old = protect(&ring, &["--purpose", "p"], "old");
    assert_eq!(list_keys(&ring).len(), 1);
    let out = run_in(
        &ring,
        &["keys", "revoke-all", "--reason", "rotation drill"],
        None,
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let keys = list_keys(&ring);
    assert!(
        keys.iter()
            .all(|k| k["isRevoked"] == true && k["isDefault"] == false),
        "{keys:?}"
    );

    // Without automatic generation nothing can be protected now.
    let out = run_in(&ring, &["--no-auto-generate", "protect", "x"], None);
    out.fails_with("no default key");
    assert_eq!(list_keys(&ring).len(), 1);

    let new = protect(&ring, &["--purpose", "p"], "new");
    let keys = list_keys(&ring);
    assert_eq!(keys.len(), 2);
    let fresh: Vec<_> = keys.iter().filter(|k| k["isRevoked"] == false).collect();
    assert_eq!(fresh.len(), 1);
    assert_eq!(fresh[0]["isDefault"], true);

    run_in(&ring, &["unprotect", "--purpose", "p", &old], None).fails_with("key revoked");
    assert_eq!(
        run_in(&ring, &["unprotect", "--purpose", "p", &new], None).ok(),
        "new"
    );

    // An explicit date in the past revokes nothing created since.
    run_in(
        &ring,
        &["keys", "revoke-all", "--before", "2001-01-01T00:00:00Z"],
        None,
    )
    .ok();
    assert_eq!(
        run_in(&ring, &["unprotect", "--purpose", "p", &new], None).ok(),
        "new"
    );
}

#[test]
fn delete_removes_only_expired_keys_and_their_revocations() {
    let ring = vector_ring();
    let dir = ring.path();
    let old = run_in(
        dir,
        &[
            "keys",
            "new",
            "--activation",
            "2020-01-01T00:00:00Z",
            "--expiration",
            "2020-06-01T00:00:00Z",
        ],
        None,
    )
    .ok();
    let old = old.trim();
    let later = run_in(
        dir,
        &[
            "keys",
            "new",
            "--activation",
            "2021-01-01T00:00:00Z",
            "--expiration",
            "2022-01-01T00:00:00Z",
        ],
        None,
    )
    .ok();
    let later = later.trim();
    run_in(dir, &["keys", "revoke", old], None).ok();
    assert_eq!(list_keys(dir).len(), 11);
    assert!(file_names(dir).contains(&format!("revocation-{old}.xml")));

    // Only `old` expired before 2021; its revocation goes with it.
    let out = run_in(
        dir,
        &["keys", "delete", "--expired-before", "2021-01-01T00:00:00Z"],
        None,
    );
    assert_eq!(out.ok(), "2\n");
    let keys = list_keys(dir);
    assert_eq!(keys.len(), 10);
    assert!(key(&keys, old).is_none());
    assert!(key(&keys, later).is_some());
    assert!(!file_names(dir).iter().any(|n| n.starts_with("revocation-")));

    // Nothing else expired before 2021.
    assert_eq!(
        run_in(
            dir,
            &["keys", "delete", "--expired-before", "2021-01-01T00:00:00Z"],
            None
        )
        .ok(),
        "0\n"
    );
    // Keys that have not expired yet are kept, whatever the date.
    assert_eq!(
        run_in(
            dir,
            &["keys", "delete", "--expired-before", "2200-01-01T00:00:00Z"],
            None
        )
        .ok(),
        "1\n"
    );
    let keys = list_keys(dir);
    assert_eq!(keys.len(), 9);
    assert!(key(&keys, later).is_none());
    assert_eq!(key_files(dir).len(), 9);

    // The vector payloads still unprotect.
    let (purposes, payload) = c04_payload();
    let mut args = vec!["--no-auto-generate".to_string(), "unprotect".to_string()];
    args.extend(purpose_args(&purposes));
    args.push(payload);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    assert_eq!(run_in(dir, &args, None).ok(), "Hello");
}
