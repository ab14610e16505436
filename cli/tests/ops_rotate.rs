//! `dpkeys rotate`: on a directory and on an Azurite blob (with the Key
//! Vault emulator), alone, concurrently with itself and next to a live
//! application.
#![allow(clippy::unwrap_used)]

mod ops_common;

use std::sync::Arc;

use dataprotection::repository::FileSystemXmlRepository;
use dataprotection_azure_blobs::BlobXmlRepository;
use ops_common::*;
use time::{Duration, OffsetDateTime};

fn date(v: &serde_json::Value, field: &str) -> OffsetDateTime {
    dataprotection::xml::parse_date(v[field].as_str().unwrap()).unwrap()
}

#[test]
fn if_needed_creates_a_key_once_then_reports_nothing_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let loc = dir_arg(dir.path());
    let out = dpkeys(&args(&loc, &["rotate", "--if-needed"]), &[], None);
    let line = out.code(0);
    assert!(
        line.starts_with("created key ") && line.lines().count() == 1,
        "{line}"
    );
    let keys = list(&loc, &[]);
    assert_eq!(keys.len(), 1);
    // An empty ring needs a key at once.
    assert!(date(&keys[0], "activationDate") <= OffsetDateTime::now_utc());
    let out = dpkeys(&args(&loc, &["rotate", "--if-needed"]), &[], None);
    assert!(
        out.code(3).starts_with("no key needed: default key "),
        "{}",
        out.stdout
    );
    assert_eq!(list(&loc, &[]).len(), 1);
}

#[test]
fn a_forced_rotation_is_activated_after_the_propagation_window() {
    let dir = tempfile::tempdir().unwrap();
    let loc = dir_arg(dir.path());
    let before = OffsetDateTime::now_utc();
    dpkeys(&args(&loc, &["rotate"]), &[], None).code(0);
    let keys = list(&loc, &[]);
    let activation = date(&keys[0], "activationDate");
    assert!(
        activation >= before + Duration::days(2)
            && activation < before + Duration::days(2) + Duration::minutes(5)
    );
    assert_eq!(
        date(&keys[0], "expirationDate") - activation,
        Duration::days(90)
    );

    dpkeys(
        &args(&loc, &["rotate", "--now", "--lifetime", "30d"]),
        &[],
        None,
    )
    .code(0);
    let t = "2031-01-01T00:00:00Z";
    dpkeys(&args(&loc, &["rotate", "--activation", t]), &[], None).code(0);
    let keys = list(&loc, &[]);
    assert_eq!(keys.len(), 3);
    assert!(keys.iter().any(|k| {
        k["activationDate"]
            .as_str()
            .unwrap()
            .starts_with("2031-01-01")
    }));
    // Usage and argument errors.
    assert_eq!(
        dpkeys(&args(&loc, &["rotate", "--now", "--if-needed"]), &[], None).code,
        2
    );
    let out = dpkeys(&args(&loc, &["rotate", "--lifetime", "2d"]), &[], None);
    out.fails_naming("at least 7 days");
}

#[test]
fn a_mass_revocation_dated_in_the_future_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let loc = dir_arg(dir.path());
    let future = at(OffsetDateTime::now_utc() + Duration::days(10));
    dpkeys(
        &args(&loc, &["keys", "revoke-all", "--before", &future]),
        &[],
        None,
    )
    .code(0);
    for extra in [&["--if-needed"][..], &[]] {
        let out = dpkeys(&args(&loc, &[&["rotate"][..], extra].concat()), &[], None);
        out.fails_naming("(revocation in the future)");
    }
    assert!(list(&loc, &[]).is_empty());
}

/// Starts `n` `rotate --if-needed` processes at once; returns their exit codes.
fn race(location: Vec<String>, n: usize, envs: Vec<(String, String)>) -> Vec<i32> {
    let barrier = Arc::new(std::sync::Barrier::new(n));
    let threads: Vec<_> = (0..n)
        .map(|_| {
            let (location, envs, barrier) = (location.clone(), envs.clone(), barrier.clone());
            std::thread::spawn(move || {
                let loc: Vec<&str> = location.iter().map(String::as_str).collect();
                barrier.wait();
                dpkeys(&args(&loc, &["rotate", "--if-needed"]), &envs, None)
            })
        })
        .collect();
    threads
        .into_iter()
        .map(|t| {
            let out = t.join().unwrap();
            assert!(out.code == 0 || out.code == 3, "{out:?}");
            out.code
        })
        .collect()
}

#[test]
fn concurrent_rotations_on_a_directory_create_one_key() {
    let dir = tempfile::tempdir().unwrap();
    let ring = dir.path().join("ring");
    let loc = vec!["--dir".to_string(), ring.to_str().unwrap().to_string()];
    let codes = race(loc.clone(), 6, vec![]);
    assert_eq!(codes.iter().filter(|c| **c == 0).count(), 1, "{codes:?}");
    let loc: Vec<&str> = loc.iter().map(String::as_str).collect();
    assert_eq!(list(&loc, &[]).len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_rotations_on_a_blob_with_key_vault_create_one_key() {
    let (container, url) = blob_ring().await;
    let vault = Vault::start("rotate").await;
    let loc = vec![
        "--blob-url".to_string(),
        url.clone(),
        "--keyvault-key".to_string(),
        vault.key_url.clone(),
    ];
    let envs = vault.envs();
    let codes = blocking(move || race(loc, 5, envs)).await;
    assert_eq!(codes.iter().filter(|c| **c == 0).count(), 1, "{codes:?}");
    let text = blob_text(&container).await;
    assert_eq!(text.matches("<key ").count(), 1, "{text}");
    assert_eq!(kids(&text).len(), 1, "the key is wrapped: {text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_successor_is_created_near_expiry_while_an_application_runs() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    let loc = dir_arg(&path);
    let now = OffsetDateTime::now_utc();
    dpkeys(
        &args(
            &loc,
            &[
                "keys",
                "new",
                "--activation",
                &at(now - Duration::days(89)),
                "--expiration",
                &at(now + Duration::days(1)),
            ],
        ),
        &[],
        None,
    )
    .code(0);
    let live = LiveApp::start(Arc::new(FileSystemXmlRepository::new(path.clone()))).await;
    let p = path.clone();
    let out =
        blocking(move || dpkeys(&args(&dir_arg(&p), &["rotate", "--if-needed"]), &[], None)).await;
    out.code(0);
    let p = path.clone();
    let out =
        blocking(move || dpkeys(&args(&dir_arg(&p), &["rotate", "--if-needed"]), &[], None)).await;
    assert!(out.code(3).contains("successor"), "{}", out.stdout);
    live.finish().await;
    let keys = list(&loc, &[]);
    assert_eq!(keys.len(), 2);
    // The successor takes over exactly when the current key expires.
    assert_eq!(
        date(&keys[1], "activationDate"),
        date(&keys[0], "expirationDate")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_vault_outage_never_makes_a_key() {
    let (_container, url) = blob_ring().await;
    let vault = Vault::start("outage").await;
    let loc = [
        "--blob-url",
        url.as_str(),
        "--keyvault-key",
        vault.key_url.as_str(),
    ];
    let envs = vault.envs();
    let (l, e) = (loc.map(str::to_string), envs.clone());
    blocking(move || {
        let l: Vec<&str> = l.iter().map(String::as_str).collect();
        dpkeys(&args(&l, &["rotate", "--if-needed"]), &e, None).code(0);
    })
    .await;
    let version = vault.versions().pop().unwrap();
    vault
        .emulator
        .set_key_enabled(vault.name(), Some(&version), false)
        .unwrap();
    let (l, e) = (loc.map(str::to_string), envs.clone());
    let out = blocking(move || {
        let l: Vec<&str> = l.iter().map(String::as_str).collect();
        dpkeys(&args(&l, &["rotate", "--if-needed"]), &e, None)
    })
    .await;
    out.fails_naming("never produce one");
    let repo = BlobXmlRepository::new(&url, None, None).unwrap();
    use dataprotection::repository::XmlRepository as _;
    assert_eq!(
        repo.get_all_elements().await.unwrap().len(),
        1,
        "no key was added"
    );
}
