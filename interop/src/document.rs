//! A `<repository>` document in a file: what the Azure blob repositories
//! store in their one blob, kept on disk for the fixtures.

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use dataprotection::repository::XmlRepository;
use dataprotection::xml::{Element, RepositoryDocument};
use dataprotection::{Error, Result};

/// An [`XmlRepository`] over one file holding a `<repository>` document.
///
/// Appends go through [`RepositoryDocument::push`] and
/// [`RepositoryDocument::to_bytes`], the same code
/// `dataprotection-azure-blobs` uses to build the blob it uploads, so the
/// file holds exactly what that repository would store. Not for concurrent
/// writers (no conditional write); fixtures only.
#[derive(Clone, Debug)]
pub struct DocumentFileRepository {
    path: Arc<PathBuf>,
}

impl DocumentFileRepository {
    /// A repository in the file `path` (created on first write).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        DocumentFileRepository {
            path: Arc::new(path.into()),
        }
    }

    fn read(&self) -> Result<RepositoryDocument> {
        match std::fs::read(self.path.as_path()) {
            Ok(bytes) => RepositoryDocument::parse(&bytes),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(RepositoryDocument::new()),
            Err(source) => Err(Error::Io {
                action: "reading",
                path: self.path.to_path_buf(),
                source,
            }),
        }
    }
}

#[async_trait]
impl XmlRepository for DocumentFileRepository {
    async fn get_all_elements(&self) -> Result<Vec<Element>> {
        Ok(self.read()?.elements())
    }

    async fn store_element(&self, element: &Element, _friendly_name: &str) -> Result<()> {
        let mut doc = self.read()?;
        doc.push(element);
        if let Some(parent) = self.path.parent() {
            std::fs::create_dir_all(parent).map_err(|source| Error::Io {
                action: "creating directory",
                path: parent.to_path_buf(),
                source,
            })?;
        }
        std::fs::write(self.path.as_path(), doc.to_bytes()).map_err(|source| Error::Io {
            action: "writing",
            path: self.path.to_path_buf(),
            source,
        })
    }

    fn describe(&self) -> String {
        format!("<repository> document {}", self.path.display())
    }
}

/// Stores every element in `primary` and, in the same order, in a
/// `<repository>` document; reads from `primary`. The generator writes a
/// ring both ways with it, so that the two hold the same keys.
#[derive(Debug)]
pub(crate) struct MirroredRepository {
    pub(crate) primary: Arc<dyn XmlRepository>,
    pub(crate) mirror: DocumentFileRepository,
}

#[async_trait]
impl XmlRepository for MirroredRepository {
    async fn get_all_elements(&self) -> Result<Vec<Element>> {
        self.primary.get_all_elements().await
    }

    async fn store_element(&self, element: &Element, friendly_name: &str) -> Result<()> {
        self.primary.store_element(element, friendly_name).await?;
        self.mirror.store_element(element, friendly_name).await
    }

    fn describe(&self) -> String {
        format!(
            "{} mirrored to {}",
            self.primary.describe(),
            self.mirror.describe()
        )
    }
}
