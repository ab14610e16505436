//! `dpkeys cookie decode/encode` against the ASP.NET Core authentication
//! vectors (`integrations/aspnetcore/tests/vectors/aspnetcore_auth.json`) on a
//! copy of the vector key ring.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;

use common::*;
use dataprotection_aspnetcore::{AuthenticationTicket, serialize_ticket};

const APP: &str = "dp-interop";

fn auth_vectors() -> serde_json::Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../integrations/aspnetcore/tests/vectors/aspnetcore_auth.json");
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn s(v: &serde_json::Value) -> &str {
    v.as_str().unwrap()
}

fn cookie(ring: &Path, app: &str, args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut all = vec!["--app-name", app, "--no-auto-generate", "cookie"];
    all.extend_from_slice(args);
    run_in(ring, &all, stdin)
}

/// The ticket bytes of decode's JSON output.
fn ticket_bytes(json: &str) -> Vec<u8> {
    serialize_ticket(&AuthenticationTicket::from_json(json).unwrap()).unwrap()
}

/// The `Cookie` header of the chunked vector set, with unrelated cookies around it.
fn chunked_header(cookies: &serde_json::Value) -> String {
    let mut pairs = vec!["theme=dark".to_owned()];
    pairs.extend(
        cookies
            .as_array()
            .unwrap()
            .iter()
            .map(|c| format!("{}={}", s(&c["name"]), s(&c["value"]))),
    );
    pairs.push("other=1".to_owned());
    format!("Cookie: {}", pairs.join("; "))
}

#[test]
fn every_vector_cookie_decodes_to_its_ticket_and_encodes_back() {
    let ring = vector_ring();
    let v = auth_vectors();
    for case in v["cookies"].as_array().unwrap() {
        let scheme = s(&case["scheme"]);
        let ticket = &v["tickets"][case["ticket_index"].as_u64().unwrap() as usize];
        let expected_bytes = hex::decode(s(&ticket["serialized_hex"])).unwrap();

        let json = cookie(
            ring.path(),
            APP,
            &["decode", "--scheme", scheme, s(&case["cookie_value"])],
            None,
        )
        .ok();
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&json).unwrap(),
            ticket["ticket"],
            "{}",
            case["description"]
        );
        assert_eq!(
            ticket_bytes(&json),
            expected_bytes,
            "{}",
            case["description"]
        );

        // Encode prints one line; decoding it gives the same ticket bytes.
        let encoded = cookie(
            ring.path(),
            APP,
            &["encode", "--scheme", scheme, &json],
            None,
        )
        .ok();
        assert!(
            encoded.ends_with('\n') && encoded.lines().count() == 1,
            "{encoded:?}"
        );
        assert!(encoded.starts_with("CfDJ8"));
        let again = cookie(
            ring.path(),
            APP,
            &["decode", "--scheme", scheme, encoded.trim_end()],
            None,
        )
        .ok();
        assert_eq!(
            ticket_bytes(&again),
            expected_bytes,
            "{}",
            case["description"]
        );
    }
    assert_eq!(key_files(ring.path()).len(), 9, "no key was added");
}

#[test]
fn a_whole_cookie_header_is_reassembled_from_its_chunks() {
    let ring = vector_ring();
    let v = auth_vectors();
    let case = &v["chunked_cookie"];
    let header = chunked_header(&case["cookies"]);
    let json = cookie(ring.path(), APP, &["decode", &header], None).ok();
    assert_eq!(
        ticket_bytes(&json),
        hex::decode(s(&case["serialized_hex"])).unwrap()
    );
    // From standard input too, and without the "Cookie:" prefix.
    let bare = header.strip_prefix("Cookie: ").unwrap();
    let json = cookie(ring.path(), APP, &["decode"], Some(bare.as_bytes())).ok();
    assert_eq!(
        ticket_bytes(&json),
        hex::decode(s(&case["serialized_hex"])).unwrap()
    );
}

#[test]
fn encode_reads_standard_input() {
    let ring = vector_ring();
    let v = auth_vectors();
    let ticket = &v["tickets"][0];
    // The JSON as decode prints it (this test's serde_json::Value would sort
    // the properties, whose order is part of the bytes).
    let json = cookie(
        ring.path(),
        APP,
        &["decode", s(&v["cookies"][0]["cookie_value"])],
        None,
    )
    .ok();
    let encoded = cookie(ring.path(), APP, &["encode"], Some(json.as_bytes())).ok();
    let decoded = cookie(ring.path(), APP, &["decode"], Some(encoded.as_bytes())).ok();
    assert_eq!(
        ticket_bytes(&decoded),
        hex::decode(s(&ticket["serialized_hex"])).unwrap()
    );
}

#[test]
fn incomplete_chunks_fail_with_their_class() {
    let ring = vector_ring();
    let v = auth_vectors();
    let partial = chunked_header(&v["chunked_cookie"]["partial"]["cookies"]);
    cookie(ring.path(), APP, &["decode", &partial], None).fails_with("incomplete chunked cookie");
    cookie(ring.path(), APP, &["decode", "chunks-5"], None).fails_with("incomplete chunked cookie");
}

#[test]
fn tampered_other_application_and_other_scheme_fail_with_their_class() {
    let ring = vector_ring();
    let v = auth_vectors();
    let value = s(&v["cookies"][0]["cookie_value"]);

    let mut tampered = value.as_bytes().to_vec();
    let at = tampered.len() - 10;
    tampered[at] = if tampered[at] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    let out = cookie(ring.path(), APP, &["decode", &tampered], None);
    out.fails_with("decryption failure");

    let out = cookie(ring.path(), "another-app", &["decode", value], None);
    out.fails_with("decryption failure");
    assert!(out.stderr.contains("another-app"), "{}", out.stderr);

    let out = cookie(
        ring.path(),
        APP,
        &["decode", "--scheme", "Identity.Application", value],
        None,
    );
    out.fails_with("decryption failure");
    assert!(
        out.stderr.contains("Identity.Application"),
        "{}",
        out.stderr
    );

    cookie(ring.path(), APP, &["decode", "not a cookie!"], None).fails_with("invalid encoding");
    cookie(ring.path(), APP, &["decode", "a=b; c=d"], None).fails_with("cookie not found");
    assert_eq!(key_files(ring.path()).len(), 9, "no key was added");
}

#[test]
fn invalid_ticket_json_fails_with_its_class() {
    let ring = vector_ring();
    cookie(ring.path(), APP, &["encode", "{\"scheme\": 1}"], None)
        .fails_with("invalid ticket json");
    cookie(
        ring.path(),
        APP,
        &[
            "encode",
            "{\"scheme\": \"Cookies\", \"identities\": [], \"extra\": 1}",
        ],
        None,
    )
    .fails_with("invalid ticket json");
}
