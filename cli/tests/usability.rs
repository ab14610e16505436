//! Global options after the command, quiet logs on an existing ring, and
//! hints after a decryption failure.

#![allow(clippy::unwrap_used)]

mod common;

use common::*;

const SECRET: &str = "secret-plaintext-7c1f";

#[test]
fn global_options_work_after_the_command() {
    let (_tmp, ring) = fresh_ring();
    let dir = ring.to_str().unwrap();
    let protected = run(
        &[
            "protect",
            "--dir",
            dir,
            "--app-name",
            "app",
            "--purpose",
            "p",
            "hello",
        ],
        None,
    )
    .ok();
    let payload = protected.trim_end();
    assert_eq!(key_files(&ring).len(), 1, "the key went to --dir");
    // Before, after, and mixed: all the same options.
    let after = run(
        &[
            "unprotect",
            "--purpose",
            "p",
            "--app-name",
            "app",
            "--dir",
            dir,
            payload,
        ],
        None,
    );
    assert_eq!(after.ok(), "hello");
    let mixed = run(
        &[
            "--app-name",
            "app",
            "unprotect",
            "--dir",
            dir,
            "--purpose",
            "p",
            payload,
        ],
        None,
    );
    assert_eq!(mixed.ok(), "hello");
    let listed = run(&["keys", "list", "--json", "--dir", dir], None).ok();
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&listed)
            .unwrap()
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let flag_after = run(&["keys", "new", "--dir", dir, "--no-auto-generate"], None);
    flag_after.ok();
    assert_eq!(key_files(&ring).len(), 2);
}

#[test]
fn protect_then_unprotect_on_an_existing_ring_prints_no_warning() {
    let (_tmp, ring) = fresh_ring();
    let first = run_in(&ring, &["protect", "first"], None);
    first.ok();
    let warnings: Vec<&str> = first
        .stderr
        .lines()
        .filter(|l| l.contains("WARN"))
        .collect();
    assert_eq!(warnings.len(), 1, "{}", first.stderr);
    assert!(
        warnings[0].contains("without encryption at rest"),
        "{}",
        first.stderr
    );
    let key = key_files(&ring)[0]
        .trim_start_matches("key-")
        .trim_end_matches(".xml")
        .to_string();
    assert!(
        warnings[0].contains(&key),
        "the warning names the stored key: {}",
        first.stderr
    );

    let protected = run_in(&ring, &["protect", "second"], None);
    let payload = protected.ok();
    let back = run_in(&ring, &["unprotect"], Some(payload.as_bytes()));
    assert_eq!(back.ok(), "second");
    assert!(!protected.stderr.contains("WARN"), "{}", protected.stderr);
    assert!(!back.stderr.contains("WARN"), "{}", back.stderr);
}

/// Runs `unprotect` with `args` and returns its `hint:` lines (after
/// checking the failure class and that the plaintext is nowhere).
fn hints(ring: &std::path::Path, args: &[&str], class: &str) -> Vec<String> {
    let mut all = vec!["unprotect"];
    all.extend_from_slice(args);
    let out = run_in(ring, &all, None);
    out.fails_with(class);
    assert!(!out.stderr.contains(SECRET), "{}", out.stderr);
    out.stderr
        .lines()
        .filter_map(|l| l.strip_prefix("hint: "))
        .map(str::to_string)
        .collect()
}

#[test]
fn hints_after_a_decryption_failure_name_the_likely_cause() {
    let (_tmp, ring) = fresh_ring();
    let plain = protect(&ring, &["--purpose", "p"], SECRET);
    let limited = protect(
        &ring,
        &["--purpose", "p", "--expires", "2099-01-01T00:00:00Z"],
        SECRET,
    );
    let named = protect(&ring, &["--app-name", "shop", "--purpose", "p"], SECRET);

    // A time-limited payload read without --time-limited, and the reverse.
    let h = hints(&ring, &["--purpose", "p", &limited], "decryption failure");
    assert_eq!(
        h,
        ["the payload is time-limited: add --time-limited"],
        "{h:?}"
    );
    let h = hints(
        &ring,
        &["--purpose", "p", "--time-limited", &plain],
        "decryption failure",
    );
    assert_eq!(
        h,
        ["the payload is not time-limited: leave out --time-limited"],
        "{h:?}"
    );

    // An application name the payload was not protected with.
    let h = hints(
        &ring,
        &["--app-name", "blog", "--purpose", "p", &plain],
        "decryption failure",
    );
    assert_eq!(h.len(), 1, "{h:?}");
    assert!(h[0].contains("without an application name"), "{h:?}");
    assert!(h[0].contains("\"blog\""), "{h:?}");

    // A wrong purpose (or a wrong application name that no trial can
    // guess): the hint spells out what was used.
    let h = hints(
        &ring,
        &["--app-name", "blog", "--purpose", "p", &named],
        "decryption failure",
    );
    assert!(
        h[0].contains("application name (\"blog\")") && h[0].contains("purposes (\"p\")"),
        "{h:?}"
    );
    assert!(h.iter().any(|l| l.contains("add --time-limited")), "{h:?}");
    let h = hints(&ring, &["--purpose", "q", &plain], "decryption failure");
    assert!(h[0].contains("purposes (\"q\")"), "{h:?}");
    assert!(h.iter().any(|l| l.contains("altered")), "{h:?}");

    // A revoked key.
    let key = list_keys(&ring)[0]["id"].as_str().unwrap().to_string();
    run_in(&ring, &["keys", "revoke", &key], None).ok();
    let h = hints(&ring, &["--purpose", "p", &plain], "key revoked");
    assert_eq!(h.len(), 1, "{h:?}");
    assert!(h[0].contains(&key) && h[0].contains("revoked"), "{h:?}");

    // A payload from another ring.
    let (_other_tmp, other) = fresh_ring();
    let foreign = protect(&other, &["--purpose", "p"], SECRET);
    let h = hints(&ring, &["--purpose", "p", &foreign], "key not found");
    assert_eq!(h.len(), 1, "{h:?}");
    assert!(h[0].contains("is not in the key ring"), "{h:?}");
}
