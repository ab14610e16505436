//! An in-memory repository: keys die with the process.

use std::sync::Mutex;

use async_trait::async_trait;

use super::versioned::{Snapshot, StorageError, Version, VersionedRepository, WriteCondition};
use crate::xml::RepositoryDocument;

/// Keeps elements in memory only. Every payload protected with its keys
/// becomes unreadable when the process exits, so creating one logs a warning.
///
/// Its version is a counter bumped by every write.
#[derive(Debug, Default)]
pub struct InMemoryXmlRepository {
    state: Mutex<Stored>,
}

#[derive(Debug, Default)]
struct Stored {
    /// Writes so far: the version.
    generation: u64,
    /// The elements as a read returns them, each serialized once when
    /// written (serializing them on every read made reading a large ring
    /// cost more than interpreting it).
    document: RepositoryDocument,
}

impl InMemoryXmlRepository {
    /// An empty repository (logs a warning that keys are ephemeral).
    pub fn new() -> Self {
        tracing::warn!(
            "using an in-memory key repository: keys will be lost when the process exits, \
             and payloads protected with them will become unreadable"
        );
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Stored> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Stored {
    fn version(&self) -> Version {
        Version::new(self.generation.to_string())
    }

    fn snapshot(&self) -> Snapshot {
        Snapshot::new(
            self.document.clone(),
            (self.generation > 0).then(|| self.version()),
        )
    }
}

#[async_trait]
impl VersionedRepository for InMemoryXmlRepository {
    async fn read(&self) -> Result<Snapshot, StorageError> {
        Ok(self.lock().snapshot())
    }

    async fn read_if_changed(&self, known: &Version) -> Result<Option<Snapshot>, StorageError> {
        let stored = self.lock();
        Ok((&stored.version() != known).then(|| stored.snapshot()))
    }

    async fn write(
        &self,
        document: &RepositoryDocument,
        condition: &WriteCondition,
    ) -> Result<Version, StorageError> {
        let mut stored = self.lock();
        let holds = match condition {
            WriteCondition::Create => stored.generation == 0,
            WriteCondition::Update(version) => &stored.version() == version,
        };
        if !holds {
            return Err(StorageError::PreconditionFailed);
        }
        // Rebuilt rather than cloned: what is stored carries no trace of the
        // write (names of added elements, replacements).
        let mut stored_document = RepositoryDocument::new();
        for child in document.children() {
            stored_document.push(child.element());
        }
        stored.document = stored_document;
        stored.generation += 1;
        Ok(stored.version())
    }

    fn description(&self) -> String {
        "in-memory repository (ephemeral)".into()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::repository::{Replacement, XmlRepository};
    use crate::xml::Element;

    #[tokio::test]
    async fn a_read_returns_what_was_written_without_the_writers_marks() {
        use crate::repository::{VersionedRepository, WriteCondition};
        let repo = InMemoryXmlRepository::default();
        let mut document =
            RepositoryDocument::parse(b"<repository><a x='1' /></repository>").unwrap();
        document.push_named(&Element::new("b"), "key-b");
        assert!(document.replace(0, &Element::new("a").with_attr("x", "2")));
        let version = repo
            .write(&document, &WriteCondition::Create)
            .await
            .unwrap();
        let snapshot = repo.read().await.unwrap();
        assert_eq!(snapshot.version, Some(version));
        assert_eq!(snapshot.document.to_bytes(), document.to_bytes());
        for child in snapshot.document.children() {
            assert_eq!(child.friendly_name(), None);
            assert!(!child.is_replaced());
            assert_eq!(child.location(), None);
        }
        assert!(snapshot.document.removed_locations().is_empty());
        assert_eq!(snapshot.document.elements(), document.elements());
    }

    #[tokio::test]
    async fn replaces_in_place() {
        let repo = InMemoryXmlRepository::default();
        for name in ["a", "b", "c"] {
            repo.store_element(&Element::new(name), name).await.unwrap();
        }
        let choose = |elements: &[Element]| {
            elements
                .iter()
                .enumerate()
                .filter(|(_, e)| e.is("b"))
                .map(|(index, _)| Replacement {
                    index,
                    element: Element::new("b").with_attr("v", "2"),
                })
                .collect()
        };
        assert_eq!(repo.replace_elements(&choose).await.unwrap(), 1);
        let all = repo.get_all_elements().await.unwrap();
        assert_eq!(
            all,
            vec![
                Element::new("a"),
                Element::new("b").with_attr("v", "2"),
                Element::new("c")
            ]
        );
        let none = |_: &[Element]| Vec::new();
        assert_eq!(repo.replace_elements(&none).await.unwrap(), 0);
    }
}
