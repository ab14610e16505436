//! A directory of XML files, one element per file, as ASP.NET Core's
//! `FileSystemXmlRepository` writes it.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use uuid::Uuid;

use super::regular_file::{MAX_KEY_FILE_LEN, open_lock_file, read_regular_file};
use super::{DeletionChooser, ReplacementChooser, StorePrecondition, XmlRepository};
use crate::error::{Error, Result};
use crate::xml::{Element, Format};

/// Name of the advisory lock file that serializes conditional writes between
/// processes sharing the directory (not `*.xml`, so never read as an element).
const LOCK_FILE: &str = ".dataprotection.lock";

/// Stores each element as `<friendly name>.xml` (UTF-8 with BOM, XML
/// declaration, two-space indentation) in one directory.
///
/// Writes go to a temporary file that is then linked into place, so a reader
/// never sees a half-written key and an existing file is never overwritten.
/// The directory is created owner-only on Unix. A file that cannot be read or
/// parsed is an error naming the file: the ring is never silently shortened.
/// Nothing is ever deleted except through [`XmlRepository::delete_elements`].
#[derive(Debug, Clone)]
pub struct FileSystemXmlRepository {
    dir: Arc<PathBuf>,
}

impl FileSystemXmlRepository {
    /// A repository in `dir` (created on first write if missing).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        FileSystemXmlRepository {
            dir: Arc::new(dir.into()),
        }
    }

    /// The directory.
    pub fn directory(&self) -> &Path {
        &self.dir
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Path) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let dir = self.dir.clone();
        tokio::task::spawn_blocking(move || f(&dir))
            .await
            .map_err(|e| Error::repository("file-system repository task failed", e))?
    }
}

fn io(action: &'static str, path: &Path, source: std::io::Error) -> Error {
    Error::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

/// Every `*.xml` file directly in `dir`, sorted by name, with its element.
fn read_all(dir: &Path) -> Result<Vec<(PathBuf, Element)>> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        // A directory that does not exist yet holds no keys; any other failure is an error.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io("reading directory", dir, e)),
    };
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| io("reading directory", dir, e))?;
        let name = entry.file_name();
        let is_xml = Path::new(&name)
            .extension()
            .is_some_and(|ext| ext.eq_ignore_ascii_case("xml"));
        // Everything named *.xml is read, so a planted FIFO or device is
        // reported (naming it) rather than skipped or waited on.
        if is_xml {
            names.push(name);
        }
    }
    // By file name: the same order as sorting the full paths (one
    // directory), without comparing every path component by component.
    names.sort_unstable();
    names
        .into_iter()
        .map(|name| {
            let path = dir.join(name);
            let bytes = read_regular_file(&path, MAX_KEY_FILE_LEN)?;
            let element = Element::parse_bytes(&bytes).map_err(|e| match e {
                Error::MalformedXml { element, reason } => Error::MalformedXml {
                    element,
                    reason: format!("{reason} (in {})", path.display()),
                },
                other => other,
            })?;
            Ok((path, element))
        })
        .collect()
}

fn create_dir(dir: &Path) -> Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder
        .create(dir)
        .map_err(|e| io("creating directory", dir, e))
}

fn valid_friendly_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

fn write_element(dir: &Path, element: &Element, friendly_name: &str) -> Result<PathBuf> {
    create_dir(dir)?;
    let name = if valid_friendly_name(friendly_name) {
        friendly_name.to_string()
    } else {
        Uuid::new_v4().hyphenated().to_string()
    };
    let bytes = element.to_document_bytes(Format::Indented);
    let temp = dir.join(format!("{}.tmp", Uuid::new_v4().hyphenated()));
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let result = (|| {
        let mut file = options.open(&temp).map_err(|e| io("creating", &temp, e))?;
        file.write_all(&bytes)
            .map_err(|e| io("writing", &temp, e))?;
        file.sync_all().map_err(|e| io("writing", &temp, e))?;
        drop(file);
        // Link into place: atomic, and fails rather than overwriting an existing file.
        let mut target = dir.join(format!("{name}.xml"));
        let mut attempt = 0;
        loop {
            match fs::hard_link(&temp, &target) {
                Ok(()) => break,
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && attempt < 5 => {
                    attempt += 1;
                    target = dir.join(format!("{name}-{}.xml", Uuid::new_v4().simple()));
                }
                Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => {
                    // File systems without hard links: fall back to a rename.
                    if target.exists() {
                        return Err(io("writing", &target, e));
                    }
                    fs::rename(&temp, &target).map_err(|e| io("renaming into", &target, e))?;
                    break;
                }
                Err(e) => return Err(io("writing", &target, e)),
            }
        }
        Ok(target)
    })();
    let _ = fs::remove_file(&temp);
    result
}

/// Writes `element` to a temporary file in `dir` (same format and
/// permissions as [`write_element`]) and renames it over `path`: atomic on
/// POSIX, so a reader sees the old file or the new one, never neither.
fn replace_file(dir: &Path, path: &Path, element: &Element) -> Result<()> {
    let bytes = element.to_document_bytes(Format::Indented);
    let temp = dir.join(format!("{}.tmp", Uuid::new_v4().hyphenated()));
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let result = (|| {
        let mut file = options.open(&temp).map_err(|e| io("creating", &temp, e))?;
        file.write_all(&bytes)
            .map_err(|e| io("writing", &temp, e))?;
        file.sync_all().map_err(|e| io("writing", &temp, e))?;
        drop(file);
        fs::rename(&temp, path).map_err(|e| io("replacing", path, e))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&temp);
    }
    result
}

/// Holds the directory's advisory lock for the duration of a conditional write.
fn lock_dir(dir: &Path) -> Result<File> {
    create_dir(dir)?;
    let path = dir.join(LOCK_FILE);
    let file = open_lock_file(&path)?;
    file.lock().map_err(|e| io("locking", &path, e))?;
    Ok(file)
}

#[async_trait]
impl XmlRepository for FileSystemXmlRepository {
    async fn get_all_elements(&self) -> Result<Vec<Element>> {
        self.blocking(|dir| Ok(read_all(dir)?.into_iter().map(|(_, e)| e).collect()))
            .await
    }

    async fn store_element(&self, element: &Element, friendly_name: &str) -> Result<()> {
        let element = element.clone();
        let name = friendly_name.to_string();
        self.blocking(move |dir| {
            let path = write_element(dir, &element, &name)?;
            tracing::debug!(path = %path.display(), "stored key ring element");
            Ok(())
        })
        .await
    }

    async fn store_element_if(
        &self,
        element: &Element,
        friendly_name: &str,
        still_needed: StorePrecondition<'_>,
    ) -> Result<bool> {
        // The precondition is evaluated under the directory lock, so two
        // processes cannot both decide a key is needed and both add one.
        let dir = self.dir.clone();
        let lock = tokio::task::spawn_blocking(move || lock_dir(&dir))
            .await
            .map_err(|e| Error::repository("file-system repository task failed", e))??;
        let current = self.get_all_elements().await?;
        let stored = if still_needed(&current) {
            self.store_element(element, friendly_name).await?;
            true
        } else {
            false
        };
        drop(lock);
        Ok(stored)
    }

    async fn delete_elements(&self, choose: DeletionChooser<'_>) -> Result<usize> {
        // Nothing to delete in a directory that does not exist; do not create it.
        if !self.dir.is_dir() {
            return Ok(0);
        }
        let dir = self.dir.clone();
        let lock = tokio::task::spawn_blocking(move || lock_dir(&dir))
            .await
            .map_err(|e| Error::repository("file-system repository task failed", e))??;
        let all = self.blocking(read_all).await?;
        let elements: Vec<Element> = all.iter().map(|(_, e)| e.clone()).collect();
        let orders = choose(&elements);
        let mut doomed: Vec<(u32, PathBuf)> = all
            .into_iter()
            .zip(orders)
            .filter_map(|((path, _), order)| order.map(|o| (o, path)))
            .collect();
        doomed.sort_by_key(|(o, _)| *o);
        let deleted = self
            .blocking(move |_| {
                let mut n = 0;
                for (_, path) in doomed {
                    fs::remove_file(&path).map_err(|e| io("deleting", &path, e))?;
                    tracing::info!(path = %path.display(), "deleted key ring element");
                    n += 1;
                }
                Ok(n)
            })
            .await;
        drop(lock);
        deleted
    }

    /// Under the directory lock (the one [`XmlRepository::store_element_if`]
    /// and [`XmlRepository::delete_elements`] take), each chosen file is
    /// replaced by renaming a fully written temporary file over it; other
    /// files are not touched.
    async fn replace_elements(&self, choose: ReplacementChooser<'_>) -> Result<usize> {
        if !self.dir.is_dir() {
            return Ok(0);
        }
        let dir = self.dir.clone();
        let lock = tokio::task::spawn_blocking(move || lock_dir(&dir))
            .await
            .map_err(|e| Error::repository("file-system repository task failed", e))??;
        let all = self.blocking(read_all).await?;
        let elements: Vec<Element> = all.iter().map(|(_, e)| e.clone()).collect();
        let chosen: Vec<(PathBuf, Element)> = all
            .into_iter()
            .zip(choose(&elements))
            .filter_map(|((path, _), new)| new.map(|new| (path, new)))
            .collect();
        let replaced = self
            .blocking(move |dir| {
                let mut n = 0;
                for (path, element) in chosen {
                    replace_file(dir, &path, &element)?;
                    tracing::info!(path = %path.display(), "replaced key ring element");
                    n += 1;
                }
                if n > 0
                    && let Ok(d) = File::open(dir)
                {
                    let _ = d.sync_all();
                }
                Ok(n)
            })
            .await;
        drop(lock);
        replaced
    }

    fn describe(&self) -> String {
        format!("directory {}", self.dir.display())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[tokio::test]
    async fn replaces_files_in_place_and_leaves_the_others_alone() {
        let dir = tempfile::tempdir().unwrap();
        let repo = FileSystemXmlRepository::new(dir.path());
        repo.store_element(&Element::new("a"), "key-a")
            .await
            .unwrap();
        repo.store_element(&Element::new("b"), "key-b")
            .await
            .unwrap();
        // A file not written by this library: kept byte for byte.
        let foreign = b"<c  x='1'><!-- hand written --></c>";
        fs::write(dir.path().join("key-c.xml"), foreign).unwrap();
        let choose = |elements: &[Element]| {
            elements
                .iter()
                .map(|e| e.is("b").then(|| Element::new("b").with_attr("v", "2")))
                .collect()
        };
        assert_eq!(repo.replace_elements(&choose).await.unwrap(), 1);
        assert_eq!(
            repo.get_all_elements().await.unwrap(),
            vec![
                Element::new("a"),
                Element::new("b").with_attr("v", "2"),
                Element::parse_bytes(foreign).unwrap()
            ]
        );
        assert_eq!(fs::read(dir.path().join("key-c.xml")).unwrap(), foreign);
        let b = fs::read(dir.path().join("key-b.xml")).unwrap();
        assert_eq!(
            b,
            Element::new("b")
                .with_attr("v", "2")
                .to_document_bytes(Format::Indented)
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(dir.path().join("key-b.xml"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        // No temporary file is left behind.
        let names: Vec<String> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| !n.starts_with('.'))
            .collect();
        assert_eq!(names.len(), 3, "{names:?}");

        let missing = FileSystemXmlRepository::new(dir.path().join("missing"));
        assert_eq!(missing.replace_elements(&choose).await.unwrap(), 0);
        assert!(!dir.path().join("missing").exists());
    }
}
