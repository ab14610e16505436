//! `BlobXmlRepository::replace_elements` and `probe` against a real Azurite: in-place
//! replacement that keeps every other child byte for byte, and replacements that survive
//! concurrent appends (re-read and re-applied after a conflict).

#![allow(clippy::unwrap_used)]

mod blob_support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use azure_core::http::Url;
use blob_support::*;
use dataprotection::repository::{Replacement, XmlRepository, replace_where};
use dataprotection::xml::{Element, Format};
use dataprotection_tests::azurite::Azurite;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

const DECLARATION: &str = r#"<?xml version="1.0" encoding="utf-8"?>"#;

fn azurite() -> &'static Azurite {
    Azurite::shared().unwrap()
}

/// `key` with a marker child, as a rewrap would produce (same id, new content).
fn rewrapped(key: &Element) -> Element {
    key.clone()
        .with_child(Element::new("rewrapped").with_text("yes"))
}

/// Replaces every element equal to one of `pairs`' old elements by its new one.
fn chooser(pairs: &[(Element, Element)]) -> impl Fn(&[Element]) -> Vec<Replacement> + '_ {
    replace_where(|e| {
        pairs
            .iter()
            .find(|(old, _)| old == e)
            .map(|(_, new)| new.clone())
    })
}

/// A repository on `url` for a writer among many: [`fast_options`] with enough attempts to
/// outlast every other writer's conflicts.
fn patient_repo(url: &Url) -> dataprotection_azure_blobs::BlobXmlRepository {
    let mut options = fast_options();
    options.max_attempts = 50;
    dataprotection_azure_blobs::BlobXmlRepository::new(url.as_str(), None, Some(options)).unwrap()
}

#[tokio::test]
async fn replaces_in_place_and_keeps_everything_else_byte_for_byte() {
    let (_, url) = fresh_blob(azurite(), "replace").await;
    let writer = repo(&url);

    // Nothing to replace in a blob that does not exist; probing it changes nothing.
    let none = |_: &[Element]| Vec::<Replacement>::new();
    assert_eq!(writer.replace_elements(&none).await.unwrap(), 0);
    let probe = writer.probe().await.unwrap();
    assert!(!probe.exists && probe.etag.is_none(), "{probe:?}");
    assert!(raw(&url).await.is_none());

    let k1 = key_element(Uuid::new_v4());
    let k2 = key_element(Uuid::new_v4());
    let foreign = r#"<f:thing xmlns:f="urn:foreign"  a = 'x' >text<!-- kept --></f:thing>"#;
    let before = format!(
        "{DECLARATION}\n<repository a='1'>{}\n  {foreign}{}</repository>",
        k1.to_xml(Format::Compact).replace("<key ", "<key  "),
        k2.to_xml(Format::Compact),
    );
    put_raw(&url, before.as_bytes()).await;

    let new2 = rewrapped(&k2);
    let pairs = [(k2.clone(), new2.clone())];
    let choose = chooser(&pairs);
    assert_eq!(writer.replace_elements(&choose).await.unwrap(), 1);

    let after = raw_text(&url).await;
    assert_eq!(
        after,
        format!(
            "{DECLARATION}<repository a='1'>{}{foreign}{}</repository>",
            k1.to_xml(Format::Compact).replace("<key ", "<key  "),
            new2.to_xml(Format::Compact),
        )
    );
    let elements = repo(&url).get_all_elements().await.unwrap();
    assert_eq!(elements.len(), 3);
    assert_eq!(elements[0], k1);
    assert!(elements[1].is_ns("urn:foreign", "thing"));
    assert_eq!(elements[2], new2);

    // Applying it again finds nothing to replace.
    assert_eq!(writer.replace_elements(&choose).await.unwrap(), 0);
    assert_eq!(raw_text(&url).await, after);

    // The probe: the blob exists, its ETag, the service's clock.
    let probe = repo(&url).probe().await.unwrap();
    assert!(probe.exists);
    assert!(probe.etag.is_some());
    let date = probe.server_date.expect("Azurite sends a Date header");
    assert!((OffsetDateTime::now_utc() - date).abs() < Duration::minutes(5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_append_between_read_and_write_is_kept_and_the_replacement_reapplied() {
    let (_, url) = fresh_blob(azurite(), "replace-race").await;
    let writer = repo(&url);
    let k1 = key_element(Uuid::new_v4());
    writer.store_element(&k1, "key").await.unwrap();
    let new1 = rewrapped(&k1);
    let late = key_element(Uuid::new_v4());

    let calls = AtomicUsize::new(0);
    let pairs = [(k1.clone(), new1.clone())];
    let inner = chooser(&pairs);
    let choose = |stored: &[Element]| {
        if calls.fetch_add(1, Ordering::SeqCst) == 0 {
            // After the read, before the write: another instance appends a key.
            let (url, late) = (url.clone(), late.clone());
            std::thread::spawn(move || {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap()
                    .block_on(async { repo(&url).store_element(&late, "key").await.unwrap() });
            })
            .join()
            .unwrap();
        }
        inner(stored)
    };
    assert_eq!(writer.replace_elements(&choose).await.unwrap(), 1);
    assert!(
        calls.load(Ordering::SeqCst) >= 2,
        "the chooser runs again after the conflict"
    );
    assert_eq!(
        repo(&url).get_all_elements().await.unwrap(),
        vec![new1, late]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replacements_racing_many_appends_lose_nothing() {
    let (_, url) = fresh_blob(azurite(), "replace-many").await;
    let seed: Vec<Element> = (0..4).map(|_| key_element(Uuid::new_v4())).collect();
    let setup = repo(&url);
    for k in &seed {
        setup.store_element(k, "key").await.unwrap();
    }
    let pairs: Arc<Vec<(Element, Element)>> =
        Arc::new(seed.iter().map(|k| (k.clone(), rewrapped(k))).collect());
    let appended: Vec<Element> = (0..8).map(|_| key_element(Uuid::new_v4())).collect();

    let mut tasks = Vec::new();
    for k in appended.clone() {
        let url = url.clone();
        tasks.push(tokio::spawn(async move {
            let r = patient_repo(&url);
            r.store_element(&k, "key").await.unwrap();
            0usize
        }));
    }
    // Each seed key replaced by its own repository instance, concurrently with the appends.
    for i in 0..seed.len() {
        let (url, pairs) = (url.clone(), pairs.clone());
        tasks.push(tokio::spawn(async move {
            let r = patient_repo(&url);
            let one = [pairs[i].clone()];
            r.replace_elements(&chooser(&one)).await.unwrap()
        }));
    }
    let mut replaced = 0;
    for t in tasks {
        replaced += t.await.unwrap();
    }
    assert_eq!(replaced, seed.len());

    let stored = repo(&url).get_all_elements().await.unwrap();
    assert_eq!(stored.len(), seed.len() + appended.len(), "{stored:?}");
    // The seed keys keep their positions, each replaced; every append is there.
    for (i, (_, new)) in pairs.iter().enumerate() {
        assert_eq!(&stored[i], new);
    }
    for k in &appended {
        assert!(stored.contains(k), "lost {k:?}");
    }
}
