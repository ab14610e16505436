//! Protect and unprotect through separate processes on a fresh ring.

#![allow(clippy::unwrap_used)]

mod common;

use common::*;

#[test]
fn round_trip_with_purposes_and_app_name() {
    let (_tmp, ring) = fresh_ring();
    let args = [
        "--app-name",
        "my-app",
        "protect",
        "--purpose",
        "p1",
        "--purpose",
        "p2",
        "hello world",
    ];
    let out = run_in(&ring, &args, None);
    let payload = out.ok();
    assert!(payload.ends_with('\n'));
    let payload = payload.trim_end();
    assert!(payload.starts_with("CfDJ8"), "{payload}");
    assert!(
        !payload.contains(['+', '/', '=']),
        "not Base64Url: {payload}"
    );
    assert_eq!(
        key_files(&ring).len(),
        1,
        "the first protect creates one key"
    );
    // The core's warning goes to stderr, never stdout.
    assert!(
        out.stderr.contains("without encryption at rest"),
        "{}",
        out.stderr
    );

    let back = run_in(
        &ring,
        &[
            "--app-name",
            "my-app",
            "unprotect",
            "--purpose",
            "p1",
            "--purpose",
            "p2",
            payload,
        ],
        None,
    );
    assert_eq!(back.ok(), "hello world", "plaintext exactly, nothing added");

    // The application name is the first purpose: spelling it as a purpose is equivalent.
    let same = run_in(
        &ring,
        &[
            "unprotect",
            "--purpose",
            "my-app",
            "--purpose",
            "p1",
            "--purpose",
            "p2",
            payload,
        ],
        None,
    );
    assert_eq!(same.ok(), "hello world");

    for wrong in [
        vec!["unprotect", "--purpose", "p1", "--purpose", "p2", payload],
        vec![
            "--app-name",
            "other",
            "unprotect",
            "--purpose",
            "p1",
            "--purpose",
            "p2",
            payload,
        ],
        vec![
            "--app-name",
            "my-app",
            "unprotect",
            "--purpose",
            "p1",
            payload,
        ],
        vec![
            "--app-name",
            "my-app",
            "unprotect",
            "--purpose",
            "p2",
            "--purpose",
            "p1",
            payload,
        ],
    ] {
        let out = run_in(&ring, &wrong, None);
        out.fails_with("decryption failure");
        assert!(
            out.stderr.contains(
                "dpkeys: unprotect failed (decryption failure): the payload could not be decrypted"
            ),
            "{}",
            out.stderr
        );
    }
    assert_eq!(key_files(&ring).len(), 1, "unprotect never adds keys here");
}

#[test]
fn binary_stdin_round_trips_exactly() {
    let (_tmp, ring) = fresh_ring();
    let data: Vec<u8> = (0..=255u8).chain((0..=255u8).rev()).collect();
    let payload = run_in(&ring, &["protect", "--purpose", "bin"], Some(&data)).ok();
    // Surrounding whitespace (the newline protect printed, and more) is ignored.
    let input = format!("  \n{payload}\n\n");
    let back = run_in(
        &ring,
        &["unprotect", "--purpose", "bin"],
        Some(input.as_bytes()),
    );
    assert_eq!(back.code, 0, "{}", back.stderr);
    assert_eq!(back.stdout, data);
}

#[test]
fn empty_input_round_trips() {
    let (_tmp, ring) = fresh_ring();
    let payload = run_in(&ring, &["protect"], Some(b"")).ok();
    let back = run_in(&ring, &["unprotect", payload.trim()], None);
    assert_eq!(back.code, 0, "{}", back.stderr);
    assert!(back.stdout.is_empty());
}

#[test]
fn standard_base64_is_accepted() {
    let (_tmp, ring) = fresh_ring();
    // Enough payloads that some contain '-' or '_' (which become '+' or '/').
    let mut converted_any = false;
    for i in 0..8 {
        let text = format!("message {i}");
        let payload = protect(&ring, &["--purpose", "std"], &text);
        let mut standard: String = payload
            .chars()
            .map(|c| match c {
                '-' => '+',
                '_' => '/',
                c => c,
            })
            .collect();
        while !standard.len().is_multiple_of(4) {
            standard.push('=');
        }
        converted_any |= standard.contains(['+', '/']);
        let back = run_in(&ring, &["unprotect", "--purpose", "std", &standard], None);
        assert_eq!(back.ok(), text);
    }
    assert!(converted_any);
}

/// `dpkeys unprotect --purpose t --time-limited PAYLOAD` on `ring`.
fn unprotect_time_limited(ring: &std::path::Path, payload: &str) -> Output {
    run_in(
        ring,
        &["unprotect", "--purpose", "t", "--time-limited", payload],
        None,
    )
}

#[test]
fn time_limited_payloads() {
    let (_tmp, ring) = fresh_ring();
    let future = protect(
        &ring,
        &["--purpose", "t", "--expires", "2099-01-01T00:00:00Z"],
        "later",
    );
    let back = unprotect_time_limited(&ring, &future);
    assert_eq!(back.ok(), "later");
    // Without --time-limited the purpose chain differs.
    run_in(&ring, &["unprotect", "--purpose", "t", &future], None).fails_with("decryption failure");
    // A plain payload is not a time-limited one.
    let plain = protect(&ring, &["--purpose", "t"], "plain");
    unprotect_time_limited(&ring, &plain).fails_with("decryption failure");

    let past = protect(
        &ring,
        &["--purpose", "t", "--expires", "2020-01-01T00:00:00+01:00"],
        "gone",
    );
    let out = unprotect_time_limited(&ring, &past);
    out.fails_with("payload expired");
    assert!(
        out.stderr.contains("unprotect failed (payload expired)"),
        "{}",
        out.stderr
    );
}

#[test]
fn garbage_input_is_invalid_encoding() {
    let (_tmp, ring) = fresh_ring();
    for garbage in ["CfDJ8***", "not base64!", "%%%%"] {
        let out = run_in(&ring, &["unprotect", garbage], None);
        out.fails_with("invalid encoding");
        assert!(
            out.stderr
                .starts_with("dpkeys: unprotect failed (invalid encoding)"),
            "{}",
            out.stderr
        );
    }
    run_in(&ring, &["unprotect"], Some(b"@@@\n")).fails_with("invalid encoding");
    run_in(&ring, &["unprotect"], Some(&[0xff, 0xfe, 0x00])).fails_with("invalid encoding");
    // Valid Base64 that is not a payload.
    run_in(
        &ring,
        &["unprotect", "aGVsbG8gd29ybGQgaGVsbG8gd29ybGQ"],
        None,
    )
    .fails_with("bad magic header");
    assert!(
        key_files(&ring).is_empty(),
        "bad input must not create a key"
    );
}

#[test]
fn usage_errors_exit_2() {
    let (_tmp, ring) = fresh_ring();
    let cases: &[&[&str]] = &[
        &["frobnicate"],
        &[],
        &["protect", "--expires", "tomorrow", "x"],
        &["protect", "--expires", "2030-13-01T00:00:00Z", "x"],
        &["protect", "--bogus", "x"],
        &["keys", "revoke", "not-a-guid"],
        &["keys", "revoke"],
        &["keys", "new", "--activation", "yesterday"],
        &["keys", "revoke-all", "--before", "2020-01-32"],
        &["keys", "delete"],
        &["keys", "delete", "--expired-before", "soon"],
        &["keys", "frobnicate"],
        &["unprotect", "--time-limited", "a", "b"],
    ];
    for args in cases {
        let out = run_in(&ring, args, None);
        assert_eq!(out.code, 2, "{args:?}: {}", out.stderr);
        assert!(out.stdout.is_empty(), "{args:?}");
        assert!(!out.stderr.is_empty(), "{args:?}");
    }
    assert!(key_files(&ring).is_empty());
    // Global options after the command are accepted: see usability.rs.
}

#[test]
fn help_and_version_exit_0() {
    let out = run(&["--help"], None);
    let help = out.ok();
    for word in [
        "protect",
        "unprotect",
        "keys",
        "--dir",
        "--app-name",
        "--no-auto-generate",
    ] {
        assert!(help.contains(word), "help lacks {word}: {help}");
    }
    assert!(run(&["--version"], None).ok().starts_with("dpkeys "));
    assert!(run(&["keys", "--help"], None).ok().contains("revoke-all"));
}
