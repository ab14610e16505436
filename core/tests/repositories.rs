//! File-system and in-memory repositories, the key manager's deletion order,
//! key escrow, and reloading after a change.
#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};

use dataprotection::clock::{Clock, ManualClock};
use dataprotection::repository::{FileSystemXmlRepository, InMemoryXmlRepository, XmlRepository};
use dataprotection::xml::{Element, KeyXml, read_descriptor};
use dataprotection::{DataProtectionProvider, Error, KeyEscrowSink, KeyManager};
use time::Duration;
use time::macros::datetime;
use uuid::Uuid;

fn xml_files(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".xml"))
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn file_system_layout_permissions_and_no_overwrite() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("keys");
    let repo = FileSystemXmlRepository::new(&dir);
    assert!(
        repo.get_all_elements().await.unwrap().is_empty(),
        "a missing directory is an empty ring"
    );

    let e = Element::new("thing").with_attr("a", "1");
    let e2 = Element::new("thing").with_attr("a", "2");
    let e3 = Element::new("thing").with_attr("a", "3");
    repo.store_element(&e, "key-1").await.unwrap();
    repo.store_element(&e2, "key-1").await.unwrap(); // same name: a second file, nothing overwritten
    repo.store_element(&e3, "not a valid/name").await.unwrap(); // replaced by a GUID
    repo.store_element(&e, "key-1").await.unwrap(); // already stored: idempotent
    let names = xml_files(&dir);
    assert_eq!(names.len(), 3);
    assert!(names.contains(&"key-1.xml".to_string()));
    assert!(names.iter().any(|n| n.starts_with("key-1-")));
    assert!(
        names
            .iter()
            .any(|n| Uuid::parse_str(n.trim_end_matches(".xml")).is_ok())
    );
    let bytes = std::fs::read(dir.join("key-1.xml")).unwrap();
    assert_eq!(
        bytes,
        b"\xEF\xBB\xBF<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<thing a=\"1\" />"
    );
    assert!(
        std::fs::read_dir(&dir).unwrap().all(|e| !e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .ends_with(".tmp"))
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777,
            0o700
        );
        assert_eq!(
            std::fs::metadata(dir.join("key-1.xml"))
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            0o600
        );
    }
    let mut stored = repo.get_all_elements().await.unwrap();
    stored.sort_by(|a, b| a.attr("a").cmp(&b.attr("a")));
    assert_eq!(stored, vec![e, e2, e3]);

    // An unreadable element is an error naming the file, not a shorter ring.
    std::fs::write(dir.join("zz-broken.xml"), "<key>").unwrap();
    let err = repo.get_all_elements().await.unwrap_err();
    assert!(matches!(err, Error::MalformedXml { .. }));
    assert!(err.to_string().contains("zz-broken.xml"), "{err}");
}

#[derive(Debug, Default)]
struct Escrow(Mutex<Vec<(Uuid, Element)>>);

impl KeyEscrowSink for Escrow {
    fn store(&self, key_id: Uuid, element: &Element) {
        self.0.lock().unwrap().push((key_id, element.clone()));
    }
}

#[tokio::test]
async fn escrow_receives_the_key_before_encryption() {
    let escrow = Arc::new(Escrow::default());
    let repo: Arc<dyn XmlRepository> = Arc::new(InMemoryXmlRepository::new());
    let p = DataProtectionProvider::builder()
        .repository(repo.clone())
        .key_encryptor(Arc::new(dataprotection::encryption::NullXmlEncryptor))
        .key_escrow(escrow.clone())
        .build()
        .await
        .unwrap();
    let escrowed = escrow.0.lock().unwrap().clone();
    assert_eq!(escrowed.len(), 1);
    assert_eq!(Some(escrowed[0].0), p.key_ring().unwrap().default_key_id());
    let key = KeyXml::from_element(&escrowed[0].1).unwrap();
    assert_eq!(
        read_descriptor(&key.descriptor).unwrap().master_key.len(),
        64,
        "escrow sees the clear key"
    );
    let stored = repo.get_all_elements().await.unwrap();
    let stored = KeyXml::from_element(&stored[0]).unwrap();
    assert!(
        read_descriptor(&stored.descriptor).is_err(),
        "the stored key is wrapped"
    );
}

#[tokio::test]
async fn changes_through_the_key_manager_reload_the_ring() {
    let clock = Arc::new(ManualClock::new(datetime!(2030-01-01 0:00 UTC)));
    let p = DataProtectionProvider::builder()
        .repository(Arc::new(InMemoryXmlRepository::new()))
        .clock(clock.clone())
        .build()
        .await
        .unwrap();
    assert!(p.next_refresh() > clock.now());
    clock.advance(Duration::seconds(1));
    p.key_manager()
        .revoke_all_keys(clock.now(), None)
        .await
        .unwrap();
    assert!(
        p.next_refresh() <= clock.now(),
        "a change makes the ring due at once"
    );
    p.refresh_if_due().await.unwrap();
    assert_eq!(p.key_ring().unwrap().keys().len(), 2);
}

#[tokio::test]
async fn delete_keys_in_the_safe_order() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(datetime!(2030-01-01 0:00 UTC)));
    let repo: Arc<dyn XmlRepository> = Arc::new(FileSystemXmlRepository::new(dir.path()));
    let manager = KeyManager::new(repo.clone(), None).with_clock(clock.clone());
    let now = clock.now();
    let old = manager
        .create_key(now - Duration::days(200), now - Duration::days(110))
        .await
        .unwrap();
    let recent = manager
        .create_key(now - Duration::days(100), now - Duration::days(10))
        .await
        .unwrap();
    let current = manager
        .create_key(now - Duration::days(10), now + Duration::days(80))
        .await
        .unwrap();
    manager.revoke_key(old.id(), Some("old")).await.unwrap();
    manager
        .revoke_key(Uuid::new_v4(), Some("a key that never existed"))
        .await
        .unwrap();
    manager
        .revoke_all_keys(now - Duration::days(300), None)
        .await
        .unwrap();
    manager
        .revoke_all_keys(now - Duration::days(250), None)
        .await
        .unwrap();
    assert_eq!(xml_files(dir.path()).len(), 7);

    let deleted = manager
        .delete_keys(&|k| k.expiration_date() < now - Duration::days(30), false)
        .await
        .unwrap();
    // The old key, its revocation, the revocation of a missing key, and the
    // superseded mass revocation.
    assert_eq!(deleted, 4);
    let set = manager.get_all_keys().await.unwrap();
    let ids: Vec<Uuid> = set.keys.iter().map(|k| k.id()).collect();
    assert!(ids.contains(&recent.id()) && ids.contains(&current.id()) && !ids.contains(&old.id()));
    assert_eq!(
        set.revocations.len(),
        1,
        "only the latest mass revocation remains"
    );

    // Unexpired keys are never deleted unless asked explicitly.
    assert_eq!(manager.delete_keys(&|_| true, false).await.unwrap(), 1);
    assert_eq!(manager.get_all_keys().await.unwrap().keys.len(), 1);
}

#[tokio::test]
async fn key_lifetime_below_seven_days_is_refused() {
    let err = DataProtectionProvider::builder()
        .repository(Arc::new(InMemoryXmlRepository::new()))
        .key_lifetime(Duration::days(6))
        .build()
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidArgument(_)));
}

#[test]
fn debug_output_never_shows_secrets() {
    let secret = dataprotection::crypto::Secret::new(vec![0xAB; 64]);
    let shown = format!("{secret:?}");
    assert!(
        !shown.contains("171") && !shown.to_lowercase().contains("ab, ab"),
        "{shown}"
    );
    let key = KeyXml {
        id: Uuid::nil(),
        creation_date: datetime!(2030-01-01 0:00 UTC),
        activation_date: datetime!(2030-01-01 0:00 UTC),
        expiration_date: datetime!(2030-01-01 0:00 UTC),
        descriptor: dataprotection::xml::descriptor_element(Default::default(), &secret),
    };
    let shown = format!("{key:?}");
    assert!(
        !shown.contains("q6ur"),
        "no Base64 of the master key: {shown}"
    );
    let enc = dataprotection::crypto::Algorithm::default().encryptor(&secret);
    assert!(!format!("{enc:?}").contains("171"));
}
