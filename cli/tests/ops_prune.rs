//! `dpkeys prune`: retention on a directory and an Azurite blob, with a
//! dry run first and a live application on the ring.
#![allow(clippy::unwrap_used)]

mod ops_common;

use std::sync::Arc;

use dataprotection::repository::{FileSystemXmlRepository, XmlRepository};
use dataprotection_azure_blobs::BlobXmlRepository;
use ops_common::*;
use time::{Duration, OffsetDateTime};

/// An old expired key (revoked), a recently expired key and a current key.
/// Returns (old id, recent id).
fn populate(location: &[&str]) -> (String, String) {
    let now = OffsetDateTime::now_utc();
    let new_key = |act: OffsetDateTime, exp: OffsetDateTime| {
        dpkeys(
            &args(
                location,
                &[
                    "keys",
                    "new",
                    "--activation",
                    &at(act),
                    "--expiration",
                    &at(exp),
                ],
            ),
            &[],
            None,
        )
        .line()
    };
    let old = new_key(now - Duration::days(200), now - Duration::days(110));
    let recent = new_key(now - Duration::days(100), now - Duration::days(10));
    new_key(now - Duration::days(1), now + Duration::days(89));
    dpkeys(&args(location, &["keys", "revoke", &old]), &[], None).code(0);
    (old, recent)
}

async fn prune(location: Vec<String>, repository: Arc<dyn XmlRepository>) {
    let loc: Vec<&str> = location.iter().map(String::as_str).collect();
    let (old, recent) = populate(&loc);
    let live = LiveApp::start(repository).await;

    let l = location.clone();
    let out = blocking(move || {
        let l: Vec<&str> = l.iter().map(String::as_str).collect();
        dpkeys(
            &args(&l, &["prune", "--retain", "30d", "--dry-run"]),
            &[],
            None,
        )
    })
    .await;
    let text = out.code(0).to_string();
    assert!(text.contains(&format!("would delete key {old}")), "{text}");
    assert!(
        text.contains(&format!("would delete revocation of key {old}")),
        "{text}"
    );
    assert!(!text.contains(&recent), "{text}");
    assert!(text.contains("2 elements would be deleted"), "{text}");
    assert_eq!(list(&loc, &[]).len(), 3, "a dry run deletes nothing");

    let l = location.clone();
    let out = blocking(move || {
        let l: Vec<&str> = l.iter().map(String::as_str).collect();
        dpkeys(&args(&l, &["prune", "--retain", "30d"]), &[], None)
    })
    .await;
    let text = out.code(0).to_string();
    // What it deletes is printed first, keys before their revocations.
    let key_line = text.find(&format!("deleting key {old}")).unwrap();
    let revocation_line = text
        .find(&format!("deleting revocation of key {old}"))
        .unwrap();
    assert!(key_line < revocation_line, "{text}");
    assert!(text.ends_with("deleted 2 elements\n"), "{text}");
    live.finish().await;

    let listed = list(&loc, &[]);
    assert_eq!(listed.len(), 2);
    assert!(listed.iter().all(|k| k["id"] != old.as_str()));
    assert!(listed.iter().any(|k| k["isDefault"] == true));

    // A retention of zero removes the recently expired key, never the default.
    let out = dpkeys(&args(&loc, &["prune", "--retain", "0s"]), &[], None);
    assert!(
        out.code(0).contains(&format!("deleting key {recent}")),
        "{}",
        out.stdout
    );
    let listed = list(&loc, &[]);
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["isDefault"], true);
    let out = dpkeys(&args(&loc, &["prune", "--retain", "0s"]), &[], None);
    assert_eq!(out.code(0), "nothing to delete\n");
    assert_eq!(
        dpkeys(&args(&loc, &["prune", "--retain", "soon"]), &[], None).code,
        2
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn prune_a_directory() {
    let dir = tempfile::tempdir().unwrap();
    let location = vec![
        "--dir".to_string(),
        dir.path().to_str().unwrap().to_string(),
    ];
    prune(location, Arc::new(FileSystemXmlRepository::new(dir.path()))).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn prune_a_blob() {
    let (_container, url) = blob_ring().await;
    let repository = Arc::new(BlobXmlRepository::new(&url, None, None).unwrap());
    prune(vec!["--blob-url".to_string(), url], repository).await;
}
