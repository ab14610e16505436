//! The conformance suite every storage backend runs (enable the
//! `conformance` feature in your dev-dependencies).
//!
//! A backend implements [`VersionedRepository`] and a small
//! [`ConformanceTarget`] (open another handle, plant a foreign element, show
//! the stored text), then calls [`run_all`] from a test. The checks prove the
//! guarantees that core's retry loop builds on the primitive: round trips,
//! foreign and malformed content preserved byte for byte, 16 concurrent
//! writers each storing 25 keys exactly once, 8 cold providers agreeing on 1
//! key, idempotence when a write's response is lost, and ordered deletion
//! and in-place replacement.
//!
//! ```no_run
//! # async fn run() {
//! use std::sync::Arc;
//! use dataprotection::repository::conformance::{self, ConformanceTarget};
//! use dataprotection::repository::{InMemoryXmlRepository, VersionedRepository};
//!
//! #[derive(Default)]
//! struct Memory(Arc<InMemoryXmlRepository>);
//!
//! #[async_trait::async_trait]
//! impl ConformanceTarget for Memory {
//!     async fn open(&self) -> Arc<dyn VersionedRepository> {
//!         self.0.clone()
//!     }
//!     async fn plant(&self, _raw: &str) -> bool {
//!         false // elements are not stored as text
//!     }
//!     async fn stored_text(&self) -> Option<String> {
//!         None
//!     }
//! }
//!
//! conformance::run_all(|| async { Memory::default() }).await;
//! # }
//! ```

#![allow(clippy::missing_panics_doc)]

use std::future::Future;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use uuid::Uuid;

use super::versioned::{Snapshot, StorageError, Version, VersionedRepository, WriteCondition};
use super::{DeletionOrder, XmlRepository, delete_where, replace_where};
use crate::DataProtectionProvider;
use crate::crypto::{Algorithm, Secret};
use crate::xml::{
    ClassifiedElement, Element, Format, KeyXml, RepositoryDocument, StoredElement,
    descriptor_element,
};

/// A backend under test, holding one empty storage location (a fresh blob,
/// directory, table...).
#[async_trait]
pub trait ConformanceTarget: Send + Sync {
    /// A new handle on the storage, as another instance or process would
    /// open it (its own caches, its own client).
    async fn open(&self) -> Arc<dyn VersionedRepository>;

    /// Stores `raw`, the text of one top-level element, the way another tool
    /// would (without this library); `false` if the backend keeps no text.
    async fn plant(&self, raw: &str) -> bool;

    /// Everything stored, as text (the blob; each file's content in name
    /// order), to compare bytes; `None` if the backend keeps no text.
    async fn stored_text(&self) -> Option<String>;
}

/// Runs every check, each on a fresh target from `make`.
pub async fn run_all<F, Fut, T>(make: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = T>,
    T: ConformanceTarget,
{
    round_trip(&make().await).await;
    foreign_and_malformed_content_is_preserved(&make().await).await;
    concurrent_writers_store_each_key_once(&make().await).await;
    cold_providers_agree_on_one_key(&make().await).await;
    lost_responses_never_duplicate(&make().await).await;
    deletion_is_ordered_and_replacement_in_place(&make().await).await;
    classified_reads_agree_with_reads(&make().await).await;
    the_change_check_sees_every_change(&make().await).await;
}

/// A `<key>` element whose content does not matter to a repository.
pub fn key_element(id: Uuid) -> Element {
    Element::new("key")
        .with_attr("id", id.to_string())
        .with_attr("version", "1")
        .with_child(Element::new("creationDate").with_text("2030-01-01T00:00:00Z"))
}

fn revocation_of(id: Uuid) -> Element {
    Element::new("revocation")
        .with_attr("version", "1")
        .with_child(Element::new("revocationDate").with_text("2030-01-02T00:00:00Z"))
        .with_child(Element::new("key").with_attr("id", id.to_string()))
}

/// What a classified element says, as text to compare: a key's id, dates
/// and whole descriptor, a revocation, or the error.
fn classified_text(read: &ClassifiedElement) -> String {
    let what = match &read.classified {
        Ok(StoredElement::Key(k)) => format!(
            "key {} {} {} {} {}",
            k.id,
            k.creation_date,
            k.activation_date,
            k.expiration_date,
            k.descriptor.to_xml(Format::Compact)
        ),
        Ok(StoredElement::Revocation(r)) => format!("{r:?}"),
        Ok(StoredElement::Other) => "other".to_owned(),
        Err(e) => format!("error {e}"),
    };
    format!("{} {what}", read.is_revocation)
}

/// A complete `<key>` element (dates and a descriptor), as a ring load reads it.
fn whole_key_element(id: Uuid, days: i64) -> Element {
    let created = time::macros::datetime!(2030-01-01 0:00 UTC) + time::Duration::days(days);
    KeyXml {
        id,
        creation_date: created,
        activation_date: created,
        expiration_date: created + time::Duration::days(90),
        descriptor: descriptor_element(Algorithm::default(), &Secret::new(vec![7; 64])),
    }
    .to_element()
}

/// A ring load's read ([`VersionedRepository::read_classified`], which a
/// backend may override to classify where it parses) gives what classifying
/// a plain read gives, element for element, at the same version; next to a
/// malformed element it fails as a plain read does.
pub async fn classified_reads_agree_with_reads(target: &dyn ConformanceTarget) {
    let repo = xml(target).await;
    let ids: Vec<Uuid> = (0..5).map(|_| Uuid::new_v4()).collect();
    for (i, id) in ids.iter().enumerate() {
        repo.store_element(&whole_key_element(*id, i as i64), &format!("key-{id}"))
            .await
            .expect("store");
    }
    repo.store_element(&revocation_of(ids[1]), "revocation-1")
        .await
        .expect("store");
    // A key that does not read (no dates): classified as an error.
    repo.store_element(&key_element(Uuid::new_v4()), "key-undated")
        .await
        .expect("store");
    let planted = target
        .plant("<f:thing xmlns:f=\"urn:foreign\"><f:n/></f:thing>")
        .await;
    let backend = target.open().await;
    let compare = |backend: Arc<dyn VersionedRepository>| async move {
        let (document, version) = backend
            .read()
            .await
            .expect("read")
            .into_whole()
            .expect("whole");
        let expected: Vec<String> = document
            .into_elements()
            .into_iter()
            .map(|e| classified_text(&ClassifiedElement::of(e)))
            .collect();
        let (classified, classified_version) = backend.read_classified().await.expect("read");
        let read: Vec<String> = classified.iter().map(classified_text).collect();
        assert_eq!(read, expected, "classified where parsed, as after a read");
        assert_eq!(classified_version, version, "at the same version");
        read
    };
    let read = compare(backend.clone()).await;
    assert_eq!(read.len(), 7 + usize::from(planted));
    assert_eq!(read.iter().filter(|r| r.contains(" key ")).count(), 5);
    assert_eq!(
        read.iter().filter(|r| r.starts_with("false error")).count(),
        1
    );
    // Through the retry loop, as the provider reads it.
    let (through, _) = repo.get_all_classified_versioned().await.expect("read");
    assert_eq!(
        through.iter().map(classified_text).collect::<Vec<_>>(),
        read
    );
    // Next to a malformed element, both fail.
    if target.plant("<key id='broken'><unclosed></key>").await {
        assert!(backend.read().await.expect("read").into_whole().is_err());
        assert!(backend.read_classified().await.is_err(), "malformed read");
        assert!(repo.get_all_classified_versioned().await.is_err());
    }
}

/// The change check ([`VersionedRepository::has_changed_since`], which a
/// backend may answer without reading) says "unchanged" for the version
/// just read, from any handle, and "changed" after an append, a replacement,
/// a deletion or an element stored by another tool; it agrees with
/// [`VersionedRepository::read_if_changed`] every time.
pub async fn the_change_check_sees_every_change(target: &dyn ConformanceTarget) {
    let repo = xml(target).await;
    let backend = target.open().await;
    let version = || async {
        let snapshot = target.open().await.read().await.expect("read");
        snapshot.version.expect("a stored document has a version")
    };
    let agree = |backend: Arc<dyn VersionedRepository>, known: Version, expected: bool| async move {
        let changed = backend.has_changed_since(&known).await.expect("check");
        let read = backend.read_if_changed(&known).await.expect("read");
        assert_eq!(changed, expected, "has_changed_since");
        assert_eq!(read.is_some(), expected, "read_if_changed");
    };
    // An empty location may have no version yet (nothing stored).
    let empty = backend.read().await.expect("read").version;
    let (k1, k2) = (Uuid::new_v4(), Uuid::new_v4());
    repo.store_element(&key_element(k1), &format!("key-{k1}"))
        .await
        .expect("store");
    if let Some(empty) = empty {
        agree(backend.clone(), empty, true).await;
    }
    let one = version().await;
    agree(backend.clone(), one.clone(), false).await;
    assert!(!repo.changed_since(&one).await.expect("check"));
    repo.store_element(&key_element(k2), &format!("key-{k2}"))
        .await
        .expect("store");
    agree(backend.clone(), one.clone(), true).await;
    assert!(repo.changed_since(&one).await.expect("check"));
    let two = version().await;
    let replaced = repo
        .replace_elements(&replace_where(|e| {
            (e.attr("id") == Some(&k1.to_string())).then(|| key_element(k1).with_attr("n", "1"))
        }))
        .await
        .expect("replace");
    assert_eq!(replaced, 1);
    agree(backend.clone(), two, true).await;
    let three = version().await;
    let deleted = repo
        .delete_elements(&delete_where(|e| {
            (e.attr("id") == Some(&k2.to_string())).then_some(DeletionOrder::Key)
        }))
        .await
        .expect("delete");
    assert_eq!(deleted, 1);
    agree(backend.clone(), three, true).await;
    let four = version().await;
    agree(backend.clone(), four.clone(), false).await;
    if target.plant("<f:thing xmlns:f=\"urn:foreign\"/>").await {
        agree(backend, four, true).await;
    }
}

/// Shares one backend handle as an [`XmlRepository`] (a trait object of the
/// primitive, behind the retry loop).
#[derive(Debug)]
struct Shared(Arc<dyn VersionedRepository>);

#[async_trait]
impl VersionedRepository for Shared {
    async fn read(&self) -> Result<Snapshot, StorageError> {
        self.0.read().await
    }
    async fn read_if_changed(&self, known: &Version) -> Result<Option<Snapshot>, StorageError> {
        self.0.read_if_changed(known).await
    }
    async fn read_classified(
        &self,
    ) -> Result<(Vec<ClassifiedElement>, Option<Version>), StorageError> {
        self.0.read_classified().await
    }
    async fn has_changed_since(&self, known: &Version) -> Result<bool, StorageError> {
        self.0.has_changed_since(known).await
    }
    async fn write(
        &self,
        document: &RepositoryDocument,
        condition: &WriteCondition,
    ) -> Result<Version, StorageError> {
        self.0.write(document, condition).await
    }
    fn retry_policy(&self) -> super::RetryPolicy {
        self.0.retry_policy()
    }
    fn description(&self) -> String {
        self.0.description()
    }
}

async fn xml(target: &dyn ConformanceTarget) -> Arc<dyn XmlRepository> {
    Arc::new(Shared(target.open().await))
}

fn key_ids(elements: &[Element]) -> Vec<String> {
    elements
        .iter()
        .filter(|e| e.is("key"))
        .filter_map(|e| e.attr("id").map(str::to_owned))
        .collect()
}

/// Stores keys and a revocation, reads them back in order from another
/// handle; storing them again changes nothing.
pub async fn round_trip(target: &dyn ConformanceTarget) {
    let writer = xml(target).await;
    assert!(
        writer.get_all_elements().await.expect("read").is_empty(),
        "a fresh target is empty"
    );
    let (k1, k2) = (Uuid::new_v4(), Uuid::new_v4());
    let elements = vec![key_element(k1), revocation_of(k1), key_element(k2)];
    for (i, e) in elements.iter().enumerate() {
        writer
            .store_element(e, &format!("element-{i}"))
            .await
            .expect("store");
    }
    let reader = xml(target).await;
    let mut read = reader.get_all_elements().await.expect("read back");
    let mut expected = elements.clone();
    // Backends storing elements apart may list them in their own order.
    read.sort_by_key(|e| e.to_xml(crate::xml::Format::Compact));
    expected.sort_by_key(|e| e.to_xml(crate::xml::Format::Compact));
    assert_eq!(read, expected, "round trip");
    for e in &elements {
        writer.store_element(e, "again").await.expect("store again");
    }
    assert_eq!(
        reader.get_all_elements().await.expect("read").len(),
        3,
        "storing the same elements again duplicates nothing"
    );
}

/// A foreign element survives appends, replacements and deletions byte for
/// byte; a malformed one makes reads and writes fail and is never
/// overwritten.
pub async fn foreign_and_malformed_content_is_preserved(target: &dyn ConformanceTarget) {
    let repo = xml(target).await;
    let k1 = Uuid::new_v4();
    repo.store_element(&key_element(k1), "key-1")
        .await
        .expect("store");
    let foreign = "<f:thing xmlns:f=\"urn:foreign\"  a = 'x' >text<!-- kept --><f:n/></f:thing>";
    if !target.plant(foreign).await {
        return;
    }
    let k2 = Uuid::new_v4();
    repo.store_element(&key_element(k2), "key-2")
        .await
        .expect("append next to a foreign element");
    let replaced = repo
        .replace_elements(&replace_where(|e| {
            (e.is("key") && e.attr("id") == Some(&k1.to_string()))
                .then(|| key_element(k1).with_attr("replaced", "1"))
        }))
        .await
        .expect("replace");
    assert_eq!(replaced, 1);
    let deleted = repo
        .delete_elements(&delete_where(|e| {
            (e.is("key") && e.attr("id") == Some(&k2.to_string())).then_some(DeletionOrder::Key)
        }))
        .await
        .expect("delete");
    assert_eq!(deleted, 1);
    let text = target.stored_text().await.expect("stored text");
    assert!(
        text.contains(foreign),
        "the foreign element is kept byte for byte: {text}"
    );
    let elements = xml(target).await.get_all_elements().await.expect("read");
    assert!(elements.iter().any(|e| e.is_ns("urn:foreign", "thing")));

    // A malformed element: reads fail, no decision is taken on a partial view,
    // and the malformed text is never rewritten.
    let malformed = "<key id='broken'><unclosed></key>";
    assert!(target.plant(malformed).await);
    let before = target.stored_text().await;
    let fresh = xml(target).await;
    assert!(fresh.get_all_elements().await.is_err(), "malformed read");
    assert!(
        fresh
            .store_element_if(&key_element(Uuid::new_v4()), "key-3", &|_| true)
            .await
            .is_err(),
        "no conditional write next to malformed content"
    );
    assert!(
        fresh
            .delete_elements(&delete_where(|_| Some(DeletionOrder::Key)))
            .await
            .is_err(),
        "no deletion next to malformed content"
    );
    assert_eq!(
        target.stored_text().await,
        before,
        "malformed content is never rewritten"
    );
    // An unconditional append (an emergency revocation) may go beside it where
    // elements are stored apart, or fail where they share one document; the
    // malformed text is kept either way.
    let _ = fresh.store_element(&revocation_of(k1), "revocation").await;
    let after = target.stored_text().await.expect("stored text");
    assert!(after.contains(malformed), "{after}");
}

/// 16 writers, each on its own handle, each store 25 keys concurrently:
/// every key is stored exactly once.
pub async fn concurrent_writers_store_each_key_once(target: &dyn ConformanceTarget) {
    const WRITERS: usize = 16;
    const KEYS: usize = 25;
    let mut tasks = Vec::new();
    let mut all = Vec::new();
    for _ in 0..WRITERS {
        let repo = xml(target).await;
        let ids: Vec<Uuid> = (0..KEYS).map(|_| Uuid::new_v4()).collect();
        all.extend(ids.iter().map(Uuid::to_string));
        tasks.push(tokio::spawn(async move {
            for id in ids {
                repo.store_element(&key_element(id), &format!("key-{id}"))
                    .await
                    .expect("concurrent store");
            }
        }));
    }
    for task in tasks {
        task.await.expect("writer task");
    }
    let mut stored = key_ids(&xml(target).await.get_all_elements().await.expect("read"));
    stored.sort();
    all.sort();
    assert_eq!(stored, all, "every key exactly once");
}

/// 8 providers start at once on an empty ring: one key is created.
pub async fn cold_providers_agree_on_one_key(target: &dyn ConformanceTarget) {
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let repo = xml(target).await;
        tasks.push(tokio::spawn(async move {
            DataProtectionProvider::builder()
                .repository(repo)
                .build()
                .await
                .expect("provider")
                .key_ring()
                .expect("ring")
                .default_key_id()
        }));
    }
    let mut defaults = Vec::new();
    for task in tasks {
        defaults.push(task.await.expect("provider task"));
    }
    let stored = key_ids(&xml(target).await.get_all_elements().await.expect("read"));
    assert_eq!(stored.len(), 1, "one key for 8 cold providers: {stored:?}");
    assert!(
        defaults
            .iter()
            .all(|d| d.map(|d| d.to_string()) == Some(stored[0].clone())),
        "every provider uses it"
    );
}

/// Applies every write but reports the first `lose` of them as failed with
/// an unknown outcome (a response lost on the way back).
#[derive(Debug)]
struct LosesResponses {
    inner: Arc<dyn VersionedRepository>,
    lose: Mutex<u32>,
}

#[async_trait]
impl VersionedRepository for LosesResponses {
    async fn read(&self) -> Result<Snapshot, StorageError> {
        self.inner.read().await
    }
    async fn write(
        &self,
        document: &RepositoryDocument,
        condition: &WriteCondition,
    ) -> Result<Version, StorageError> {
        let version = self.inner.write(document, condition).await?;
        let mut lose = self.lose.lock().unwrap_or_else(|e| e.into_inner());
        if *lose > 0 {
            *lose -= 1;
            return Err(StorageError::Transient(crate::Error::Repository {
                message: "injected: the response was lost".into(),
                source: None,
            }));
        }
        Ok(version)
    }
    fn retry_policy(&self) -> super::RetryPolicy {
        super::RetryPolicy {
            initial_backoff: std::time::Duration::from_millis(1),
            ..self.inner.retry_policy()
        }
    }
    fn description(&self) -> String {
        self.inner.description()
    }
}

/// A write whose response is lost is not applied twice: appends, deletions
/// and replacements re-read and see their own change.
pub async fn lost_responses_never_duplicate(target: &dyn ConformanceTarget) {
    let lossy = LosesResponses {
        inner: target.open().await,
        lose: Mutex::new(1),
    };
    let k1 = Uuid::new_v4();
    lossy
        .store_element(&key_element(k1), "key-1")
        .await
        .expect("append despite a lost response");
    let revocation = revocation_of(k1);
    *lossy.lose.lock().unwrap_or_else(|e| e.into_inner()) = 1;
    lossy
        .store_element(&revocation, "revocation")
        .await
        .expect("append despite a lost response");
    let k2 = Uuid::new_v4();
    lossy
        .store_element(&key_element(k2), "key-2")
        .await
        .expect("store");
    *lossy.lose.lock().unwrap_or_else(|e| e.into_inner()) = 1;
    let replace = replace_where(|e| {
        (e.is("key") && e.attr("id") == Some(&k2.to_string()) && e.attr("r").is_none())
            .then(|| key_element(k2).with_attr("r", "1"))
    });
    assert_eq!(lossy.replace_elements(&replace).await.expect("replace"), 1);
    *lossy.lose.lock().unwrap_or_else(|e| e.into_inner()) = 1;
    let deleted = lossy
        .delete_elements(&delete_where(|e| {
            e.is("revocation").then_some(DeletionOrder::KeyRevocation)
        }))
        .await
        .expect("delete");
    assert_eq!(deleted, 1, "a deletion whose response was lost counts once");
    let elements = xml(target).await.get_all_elements().await.expect("read");
    assert_eq!(elements.len(), 2, "{elements:?}");
    let mut ids = key_ids(&elements);
    ids.sort();
    let mut expected = vec![k1.to_string(), k2.to_string()];
    expected.sort();
    assert_eq!(ids, expected, "each key once");
    assert!(
        elements
            .iter()
            .any(|e| e.attr("id") == Some(&k2.to_string()) && e.attr("r") == Some("1"))
    );
}

/// Records the element count of every document written.
#[derive(Debug)]
struct Recording {
    inner: Arc<dyn VersionedRepository>,
    written: Mutex<Vec<Vec<Element>>>,
}

#[async_trait]
impl VersionedRepository for Recording {
    async fn read(&self) -> Result<Snapshot, StorageError> {
        self.inner.read().await
    }
    async fn write(
        &self,
        document: &RepositoryDocument,
        condition: &WriteCondition,
    ) -> Result<Version, StorageError> {
        let version = self.inner.write(document, condition).await?;
        self.written
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(document.elements());
        Ok(version)
    }
    fn retry_policy(&self) -> super::RetryPolicy {
        self.inner.retry_policy()
    }
    fn description(&self) -> String {
        self.inner.description()
    }
}

/// Deletion writes lower orders first (keys before their revocations), each
/// order once; replacement keeps every other element and the order.
pub async fn deletion_is_ordered_and_replacement_in_place(target: &dyn ConformanceTarget) {
    let repo = Recording {
        inner: target.open().await,
        written: Mutex::new(Vec::new()),
    };
    let ids: Vec<Uuid> = (0..4).map(|_| Uuid::new_v4()).collect();
    for id in &ids {
        repo.store_element(&key_element(*id), &format!("key-{id}"))
            .await
            .expect("store");
    }
    repo.store_element(&revocation_of(ids[1]), "revocation-1")
        .await
        .expect("store");

    // Replace the third key: the others are untouched, in their order.
    let third = ids[2].to_string();
    let replaced = repo
        .replace_elements(&replace_where(|e| {
            (e.attr("id") == Some(&third)).then(|| {
                Element::new("key")
                    .with_attr("id", third.clone())
                    .with_attr("version", "1")
            })
        }))
        .await
        .expect("replace");
    assert_eq!(replaced, 1);
    let after = repo.get_all_elements().await.expect("read");
    assert_eq!(after.len(), 5);
    assert!(
        after
            .iter()
            .any(|e| e.attr("id") == Some(&third) && e.child("creationDate").is_none())
    );

    repo.written
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clear();
    let doomed = ids[1].to_string();
    let deleted = repo
        .delete_elements(&delete_where(|e| {
            if e.is("key") && e.attr("id") == Some(&doomed) {
                Some(DeletionOrder::Key)
            } else if e.is("revocation") {
                Some(DeletionOrder::KeyRevocation)
            } else {
                None
            }
        }))
        .await
        .expect("delete");
    assert_eq!(deleted, 2);
    let written = repo
        .written
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    assert_eq!(written.len(), 2, "one write per deletion order");
    assert!(
        !key_ids(&written[0]).contains(&doomed) && written[0].iter().any(|e| e.is("revocation")),
        "the key goes first, its revocation after"
    );
    assert!(!written[1].iter().any(|e| e.is("revocation")));
    let mut left = key_ids(&repo.get_all_elements().await.expect("read"));
    left.sort();
    let mut expected = vec![ids[0].to_string(), third, ids[3].to_string()];
    expected.sort();
    assert_eq!(left, expected);
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::repository::{FileSystemXmlRepository, InMemoryXmlRepository};

    #[derive(Default)]
    struct Memory(Arc<InMemoryXmlRepository>);

    #[async_trait]
    impl ConformanceTarget for Memory {
        async fn open(&self) -> Arc<dyn VersionedRepository> {
            self.0.clone()
        }
        async fn plant(&self, _raw: &str) -> bool {
            false
        }
        async fn stored_text(&self) -> Option<String> {
            None
        }
    }

    struct Directory {
        _root: tempfile::TempDir,
        dir: PathBuf,
    }

    impl Directory {
        fn new() -> Self {
            let root = tempfile::tempdir().expect("temp dir");
            let dir = root.path().join("keys");
            Directory { _root: root, dir }
        }
    }

    #[async_trait]
    impl ConformanceTarget for Directory {
        async fn open(&self) -> Arc<dyn VersionedRepository> {
            Arc::new(FileSystemXmlRepository::new(&self.dir))
        }
        async fn plant(&self, raw: &str) -> bool {
            std::fs::create_dir_all(&self.dir).expect("create dir");
            let name = format!("planted-{}.xml", Uuid::new_v4());
            std::fs::write(self.dir.join(name), raw).expect("plant");
            true
        }
        async fn stored_text(&self) -> Option<String> {
            let mut names: Vec<PathBuf> = std::fs::read_dir(&self.dir)
                .expect("list")
                .map(|e| e.expect("entry").path())
                .filter(|p| p.extension().is_some_and(|x| x == "xml"))
                .collect();
            names.sort();
            Some(
                names
                    .iter()
                    .map(|p| std::fs::read_to_string(p).expect("read"))
                    .collect::<Vec<_>>()
                    .join("\n"),
            )
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn memory_conforms() {
        run_all(|| async { Memory::default() }).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn file_system_conforms() {
        run_all(|| async { Directory::new() }).await;
    }
}
