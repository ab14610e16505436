//! A directory of XML files, one element per file, as ASP.NET Core's
//! `FileSystemXmlRepository` writes it.

use std::ffi::{OsStr, OsString};
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use sha2::{Digest, Sha256};
use uuid::Uuid;

#[cfg(not(unix))]
use super::regular_file::open_for_reading;
#[cfg(unix)]
use super::regular_file::open_in_directory;
use super::regular_file::{
    MAX_KEY_FILE_LEN, open_lock_file, read_checked_regular_file, read_opened,
};
use super::versioned::{
    RetryPolicy, Snapshot, StorageError, Version, VersionedRepository, WriteCondition,
};
use crate::error::{Error, Result};
use crate::xml::{ClassifiedElement, Element, Format, RepositoryDocument};

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
/// A file another process deletes between the listing and its read (a
/// `dpkeys prune` beside a running application) is not such a failure: the
/// read lists the directory again (bounded: see `MAX_LISTINGS`).
/// Nothing is ever deleted except through
/// [`XmlRepository::delete_elements`](super::XmlRepository::delete_elements).
///
/// Its version is a hash of the directory listing (each `*.xml` file's name,
/// size, modification time and inode), checked under the directory's
/// advisory lock file before every write, so processes sharing the
/// directory coordinate like writers of one blob. A read takes each file's
/// size, time and inode from the handle it reads the file through, so a
/// file changed after it was read changes the version.
///
/// A large directory (hundreds of files) is read, and stat'ed for a change
/// check, on several threads (one per 128 files, up to eight whatever the
/// cores, so that waits on a cold disk or a network share overlap); the
/// elements, the errors and the version are the same as on one.
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

/// What identifies one version of a file: a change to the file, or its
/// replacement by a rename, changes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    len: u64,
    modified_nanos: i128,
    inode: u64,
}

impl Stamp {
    /// The stamp of a listed file whose metadata cannot be read (a dangling
    /// symlink): it is still listed, so reading it fails as a damaged element.
    const UNREADABLE: Stamp = Stamp {
        len: 0,
        modified_nanos: 0,
        inode: 0,
    };

    fn of(meta: &fs::Metadata) -> Stamp {
        let modified_nanos = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| i128::try_from(d.as_nanos()).unwrap_or(i128::MAX));
        #[cfg(unix)]
        let inode = std::os::unix::fs::MetadataExt::ino(meta);
        #[cfg(not(unix))]
        let inode = 0;
        Stamp {
            len: meta.len(),
            modified_nanos,
            inode,
        }
    }
}

/// A `*.xml` name found in the directory.
#[derive(Debug)]
struct Entry {
    name: OsString,
    entry: fs::DirEntry,
    /// The directory said it is a regular file (not a symlink), so it can
    /// be opened, or its metadata read, without looking up the path first.
    regular: bool,
}

impl Entry {
    /// The metadata of the file the entry names, following symlinks (as a
    /// read does). A regular file's comes from the directory handle (no path
    /// lookup), unless it was swapped for a symlink since the listing.
    fn metadata(&self, dir: &Path) -> std::io::Result<fs::Metadata> {
        if self.regular
            && let Ok(meta) = self.entry.metadata()
            && !meta.file_type().is_symlink()
        {
            return Ok(meta);
        }
        fs::metadata(dir.join(&self.name))
    }

    /// The entry's stamp as a listing sees it, or `None` if the file no
    /// longer exists (deleted since the directory was read).
    fn stamp(&self, dir: &Path) -> Option<Stamp> {
        match self.metadata(dir) {
            Ok(meta) => Some(Stamp::of(&meta)),
            Err(_) if vanished(&dir.join(&self.name)) => None,
            Err(_) => Some(Stamp::UNREADABLE),
        }
    }
}

/// Whether `path` no longer exists at all: not even a dangling symlink is
/// left, so a writer deleted it after the directory was listed.
fn vanished(path: &Path) -> bool {
    fs::symlink_metadata(path).is_err_and(|e| e.kind() == std::io::ErrorKind::NotFound)
}

/// Every `*.xml` entry directly in `dir`, sorted by name. Nothing is looked
/// up beyond the directory itself (its entries carry their type).
fn list_entries(dir: &Path) -> Result<Vec<Entry>> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        // A directory that does not exist yet holds no keys; any other failure is an error.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io("reading directory", dir, e)),
    };
    let mut listed = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| io("reading directory", dir, e))?;
        let name = entry.file_name();
        let is_xml = has_xml_extension(&name);
        // Everything named *.xml is read, so a planted FIFO or device is
        // reported (naming it) rather than skipped or waited on.
        if is_xml {
            // The type as the directory reports it (no system call where the
            // file system fills it in); anything but a plain regular file is
            // looked up by path before it is opened.
            let regular = entry.file_type().is_ok_and(|t| t.is_file());
            listed.push(Entry {
                name,
                entry,
                regular,
            });
        }
    }
    // By file name: the same order as sorting the full paths (one
    // directory), without comparing every path component by component.
    listed.sort_unstable_by(|a, b| a.name.cmp(&b.name));
    Ok(listed)
}

/// Whether `name` has the extension `xml` in any case, as `Path::extension`
/// has it (`.xml` alone is a hidden file without one), comparing bytes
/// rather than parsing a path for each of thousands of names.
fn has_xml_extension(name: &OsStr) -> bool {
    let bytes = name.as_encoded_bytes();
    // At least one byte before the dot.
    bytes.len() > 4
        && bytes
            .get(bytes.len() - 4..)
            .is_some_and(|ext| ext.eq_ignore_ascii_case(b".xml"))
}

/// Every `*.xml` file directly in `dir`, sorted by name, with its stamp.
fn list(dir: &Path) -> Result<Vec<(Entry, Stamp)>> {
    let entries = list_entries(dir)?;
    let threads = working_threads(entries.len());
    Ok(stamped(dir, entries, threads))
}

/// `entries` with their stamps, looked up on up to `threads` threads (a
/// stat per file is most of the cost of a change check).
fn stamped(dir: &Path, entries: Vec<Entry>, threads: usize) -> Vec<(Entry, Stamp)> {
    let stamps = in_order(&entries, threads, |entry| entry.stamp(dir));
    entries
        .into_iter()
        .zip(stamps)
        // Deleted between reading the directory and this look: it is gone,
        // not unreadable, so it is not part of the ring.
        .filter_map(|(entry, stamp)| Some((entry, stamp?)))
        .collect()
}

/// The version of a listing: a hash of every file's name and stamp, in
/// name order.
fn version_of<'a>(listing: impl IntoIterator<Item = (&'a OsStr, &'a Stamp)>) -> Version {
    let mut hash = Sha256::new();
    for (name, stamp) in listing {
        hash.update(name.as_encoded_bytes());
        hash.update([0]);
        hash.update(stamp.len.to_le_bytes());
        hash.update(stamp.modified_nanos.to_le_bytes());
        hash.update(stamp.inode.to_le_bytes());
    }
    let digest = hash.finalize();
    let mut token = String::with_capacity(32);
    for byte in &digest[..16] {
        token.push_str(&format!("{byte:02x}"));
    }
    Version::new(token)
}

fn listing_version(listing: &[(Entry, Stamp)]) -> Version {
    version_of(listing.iter().map(|(entry, stamp)| (&*entry.name, stamp)))
}

/// How many times, beyond one per file first listed, a read lists the
/// directory again when a listed file was deleted before it could be read.
/// Each stale listing means at least one file was deleted, so a writer that
/// only deletes (a prune) can make a read re-list at most once per file; a
/// directory that keeps changing beyond that ends in the error naming the
/// vanished file.
const MAX_LISTINGS: usize = 16;

/// A stored child as a snapshot keeps it: its file name, text and element.
type StoredChild = (String, String, Element);

/// One listed file, read: what was kept of it, or the error naming it.
struct FileRead<T> {
    /// Its stamp: from the opened handle when it was read (the file whose
    /// bytes these are), else as a listing sees it.
    stamp: Stamp,
    child: Result<T>,
    /// It was deleted after the directory was read.
    vanished: bool,
}

/// The directory a read opens the files of its listing in.
struct Directory<'a> {
    path: &'a Path,
    /// A handle of the directory, which files are opened relative to; `None`
    /// if it does not exist (any file listed in it was deleted since).
    #[cfg(unix)]
    handle: Option<File>,
}

impl<'a> Directory<'a> {
    fn open(path: &'a Path) -> Result<Self> {
        #[cfg(unix)]
        {
            use rustix::fs::{Mode, OFlags};
            // O_DIRECTORY: whatever else was put in its place is refused
            // without being opened (a FIFO would block).
            let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
            let handle = match rustix::fs::open(path, flags, Mode::empty()) {
                Ok(handle) => Some(File::from(handle)),
                Err(rustix::io::Errno::NOENT) => None,
                Err(e) => return Err(io("reading directory", path, e.into())),
            };
            Ok(Directory { path, handle })
        }
        #[cfg(not(unix))]
        Ok(Directory { path })
    }

    /// Opens the file `name` for reading, without blocking on a FIFO.
    fn open_file(&self, name: &OsStr) -> std::io::Result<File> {
        #[cfg(unix)]
        return match &self.handle {
            Some(handle) => open_in_directory(handle, name),
            None => Err(std::io::ErrorKind::NotFound.into()),
        };
        #[cfg(not(unix))]
        open_for_reading(&self.path.join(name))
    }
}

/// Reads and parses the file `entry` names. A file the directory types as
/// regular is opened at once and checked on the handle; anything else
/// (a symlink, a FIFO, a device) is looked up by path first and only a
/// regular file opened, so opening a device never happens. The file's path
/// is built only for an error. What is kept of the file is what `keep`
/// makes of its name, text and element, on the thread that parsed it.
fn read_entry<T>(
    dir: &Directory<'_>,
    entry: &Entry,
    keep: &impl Fn(&Entry, String, Element) -> T,
) -> FileRead<T> {
    let read = if entry.regular {
        dir.open_file(&entry.name)
            .map_err(|e| io("reading", &dir.path.join(&entry.name), e))
            .and_then(|file| {
                read_opened(&file, MAX_KEY_FILE_LEN)
                    .map_err(|failure| failure.naming(&dir.path.join(&entry.name)))
            })
    } else {
        let path = dir.path.join(&entry.name);
        fs::metadata(&path)
            .map_err(|e| io("reading", &path, e))
            .and_then(|meta| read_checked_regular_file(&path, &meta, MAX_KEY_FILE_LEN))
    };
    let parsed = read.and_then(|(meta, bytes)| {
        parse_file(bytes)
            .map(|parsed| (meta, parsed))
            .map_err(|e| naming_file(e, &dir.path.join(&entry.name)))
    });
    match parsed {
        Ok((meta, (raw, element))) => FileRead {
            stamp: Stamp::of(&meta),
            child: Ok(keep(entry, raw, element)),
            vanished: false,
        },
        Err(e) => {
            let stamp = entry.stamp(dir.path);
            FileRead {
                stamp: stamp.unwrap_or(Stamp::UNREADABLE),
                child: Err(e),
                vanished: stamp.is_none(),
            }
        }
    }
}

/// The text and element of a key file's `bytes`.
fn parse_file(bytes: Vec<u8>) -> Result<(String, Element)> {
    // UTF-8 checked once; the bytes become the stored text uncopied.
    String::from_utf8(bytes)
        .map_err(|_| Error::malformed("document", "the XML is not valid UTF-8"))
        .and_then(|raw| Element::parse(&raw).map(|element| (raw, element)))
}

/// A parse error of the file at `path`, naming it.
fn naming_file(e: Error, path: &Path) -> Error {
    match e {
        Error::MalformedXml { element, reason } => Error::MalformedXml {
            element,
            reason: format!("{reason} (in {})", path.display()),
        },
        other => other,
    }
}

/// Files a thread takes at a time: threads take blocks as they go, so one
/// that is slowed down (preempted) does not hold back the others.
const FILES_PER_BLOCK: usize = 32;

/// Files per thread reading or stat'ing a directory: below twice this, one
/// thread does it all.
const FILES_PER_THREAD: usize = 128;

/// Threads at most reading or stat'ing a directory, whatever the cores.
/// Unlike parsing, a read or stat of a file not in the page cache (after a
/// restart) or on a network share (App Service's `/home` is SMB) waits on
/// the disk or the network, and waits on several threads overlap. Measured
/// on a 2-core VM, 10,000 key files with a cold page cache: 694 ms on 2
/// threads, 353 ms on 8, 279 ms on 16; with a warm cache, 2 and 8 threads
/// are within the machine's noise (59–66 ms).
const MAX_FILE_THREADS: usize = 8;

/// How many threads read or stat `files` files: one for a small ring, else
/// one per [`FILES_PER_THREAD`] files, up to [`MAX_FILE_THREADS`].
fn working_threads(files: usize) -> usize {
    (files / FILES_PER_THREAD).clamp(1, MAX_FILE_THREADS)
}

/// `look` applied to every entry, on up to `threads` threads (this one
/// included), the results in entry order. Looking at a file (a stat, or a
/// read and parse) is independent of every other file, so the outcome is
/// the same as on one thread.
fn in_order<T: Send>(
    entries: &[Entry],
    threads: usize,
    look: impl Fn(&Entry) -> T + Sync,
) -> Vec<T> {
    crate::parallel::map_in_order(entries.iter().collect(), threads, FILES_PER_BLOCK, look)
}

/// What reading the files of a listing found.
struct ListingRead<T> {
    /// What was kept of each file read, in name order.
    kept: Vec<T>,
    /// The errors naming the files that could not be read or parsed.
    damaged: Vec<Error>,
    /// The hash of the entries' names and stamps, as [`list`] gives them
    /// for a directory that did not change.
    version: Version,
    /// A listed file vanished before it was read (another process deleted
    /// it): the listing is stale, not the ring damaged.
    stale: bool,
}

/// Reads every file of `entries`, keeping what `keep` makes of each. A file
/// that cannot be read or parsed is a damaged element, its error naming the
/// file.
fn read_files<T: Send>(
    dir: &Directory<'_>,
    entries: &[Entry],
    threads: usize,
    keep: &(impl Fn(&Entry, String, Element) -> T + Sync),
) -> ListingRead<T> {
    let reads = in_order(entries, threads, |entry| read_entry(dir, entry, keep));
    let version = version_of(
        entries
            .iter()
            .zip(&reads)
            .map(|(entry, read)| (&*entry.name, &read.stamp)),
    );
    let mut kept = Vec::with_capacity(entries.len());
    let mut damaged = Vec::new();
    let mut stale = false;
    for read in reads {
        match read.child {
            Ok(child) => kept.push(child),
            Err(e) => {
                stale |= read.vanished;
                damaged.push(e);
            }
        }
    }
    ListingRead {
        kept,
        damaged,
        version,
        stale,
    }
}

/// A stored child as a snapshot keeps it.
fn stored_child(entry: &Entry, raw: String, element: Element) -> StoredChild {
    (entry.name.to_string_lossy().into_owned(), raw, element)
}

/// A snapshot of what was read.
fn snapshot_of(read: ListingRead<StoredChild>) -> Snapshot {
    Snapshot {
        document: RepositoryDocument::from_stored(read.kept),
        version: Some(read.version),
        damaged: read.damaged,
    }
}

/// Reads every file of `entries` into a snapshot, each child with its file
/// name and text; also returns whether the listing was stale.
#[cfg(test)]
fn read_listed(dir: &Directory<'_>, entries: &[Entry], threads: usize) -> (Snapshot, bool) {
    let read = read_files(dir, entries, threads, &stored_child);
    let stale = read.stale;
    (snapshot_of(read), stale)
}

/// Reads every file of `entries`, a fresh listing of `dir`. A file deleted
/// between the listing and its read (a writer pruning the ring meanwhile)
/// makes the listing stale: the directory is listed and read again, so the
/// snapshot is the ring as one listing saw it, rather than a read failure
/// or a silently shorter ring. `after_listing` runs between each listing and
/// its reads (tests delete a file at exactly that moment).
fn read_listing<T: Send>(
    dir: &Path,
    mut entries: Vec<Entry>,
    threads: usize,
    after_listing: &mut dyn FnMut(),
    keep: &(impl Fn(&Entry, String, Element) -> T + Sync),
) -> Result<ListingRead<T>> {
    let most = MAX_LISTINGS.saturating_add(entries.len());
    let mut listings = 1;
    loop {
        after_listing();
        let directory = Directory::open(dir)?;
        let read = read_files(&directory, &entries, threads, keep);
        if !read.stale || listings >= most {
            return Ok(read);
        }
        tracing::debug!(
            directory = %dir.display(),
            listings,
            "a key file was deleted while the directory was read; listing it again"
        );
        entries = list_entries(dir)?;
        listings += 1;
    }
}

/// Reads the whole directory, keeping what `keep` makes of each file.
fn read_directory<T: Send>(
    dir: &Path,
    keep: &(impl Fn(&Entry, String, Element) -> T + Sync),
) -> Result<ListingRead<T>> {
    let entries = list_entries(dir)?;
    let threads = working_threads(entries.len());
    read_listing(dir, entries, threads, &mut || {}, keep)
}

/// What a ring load keeps of a file: its element, classified where it was
/// parsed (the text is dropped there, and nothing else is allocated).
fn classified_child(_: &Entry, _: String, element: Element) -> ClassifiedElement {
    ClassifiedElement::of(element)
}

/// The file of a child whose location is `name`: only a plain file name in
/// `dir` (locations come from this repository's own listing).
fn child_path(dir: &Path, name: &str) -> Result<PathBuf> {
    if Path::new(name).file_name().and_then(|n| n.to_str()) == Some(name) {
        Ok(dir.join(name))
    } else {
        Err(Error::InvalidArgument(format!(
            "{name:?} is not a file name in the key directory"
        )))
    }
}

/// Under the directory lock: checks `condition` against the listing, then
/// adds a file per new element, replaces the files of replaced elements,
/// and deletes the files whose elements are gone from `document`.
fn write_locked(
    dir: &Path,
    document: &RepositoryDocument,
    condition: &WriteCondition,
) -> std::result::Result<Version, StorageError> {
    let lock = lock_dir(dir).map_err(StorageError::Fatal)?;
    let listing = list(dir).map_err(StorageError::Fatal)?;
    let holds = match condition {
        WriteCondition::Create => listing.is_empty(),
        WriteCondition::Update(version) => &listing_version(&listing) == version,
    };
    if !holds {
        return Err(StorageError::PreconditionFailed);
    }
    let apply = || -> Result<()> {
        let mut changed = false;
        for child in document.children() {
            match child.location() {
                None => {
                    let name = child.friendly_name().unwrap_or_default();
                    let path = write_element(dir, child.element(), name)?;
                    tracing::debug!(path = %path.display(), "stored key ring element");
                }
                Some(name) if child.is_replaced() => {
                    let path = child_path(dir, name)?;
                    replace_file(dir, &path, child.element())?;
                    tracing::info!(path = %path.display(), "replaced key ring element");
                    changed = true;
                }
                Some(_) => {}
            }
        }
        // Only files removed from the document go: never one it did not hold
        // (a file that could not be read).
        for name in document.removed_locations() {
            let path = child_path(dir, name)?;
            fs::remove_file(&path).map_err(|e| io("deleting", &path, e))?;
            tracing::info!(path = %path.display(), "deleted key ring element");
            changed = true;
        }
        if changed && let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    };
    apply().map_err(StorageError::Fatal)?;
    let version = list(dir)
        .map(|l| listing_version(&l))
        .map_err(StorageError::Fatal);
    drop(lock);
    version
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

/// A new temporary file name in `dir` (not `*.xml`, so never read as an element).
fn temp_path(dir: &Path) -> PathBuf {
    dir.join(format!("{}.tmp", Uuid::new_v4().hyphenated()))
}

/// Creates `temp` (owner-only on Unix, never over an existing file) holding
/// `element` as a document, flushed to disk before it is linked or renamed
/// into place.
fn write_temp(temp: &Path, element: &Element) -> Result<()> {
    let bytes = element.to_document_bytes(Format::Indented);
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(temp).map_err(|e| io("creating", temp, e))?;
    file.write_all(&bytes).map_err(|e| io("writing", temp, e))?;
    file.sync_all().map_err(|e| io("writing", temp, e))
}

fn write_element(dir: &Path, element: &Element, friendly_name: &str) -> Result<PathBuf> {
    create_dir(dir)?;
    let name = if valid_friendly_name(friendly_name) {
        friendly_name.to_string()
    } else {
        Uuid::new_v4().hyphenated().to_string()
    };
    let temp = temp_path(dir);
    let result = (|| {
        write_temp(&temp, element)?;
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
    let temp = temp_path(dir);
    let result = (|| {
        write_temp(&temp, element)?;
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
impl VersionedRepository for FileSystemXmlRepository {
    async fn read(&self) -> Result<Snapshot, StorageError> {
        self.blocking(|dir| read_directory(dir, &stored_child).map(snapshot_of))
            .await
            .map_err(StorageError::Fatal)
    }

    /// Classifies each element on the thread that read and parsed its file,
    /// right after parsing it.
    async fn read_classified(
        &self,
    ) -> Result<(Vec<ClassifiedElement>, Option<Version>), StorageError> {
        let read = self
            .blocking(|dir| read_directory(dir, &classified_child))
            .await
            .map_err(StorageError::Fatal)?;
        match read.damaged.into_iter().next() {
            // The first damaged file, as `Snapshot::into_whole` reports it.
            Some(e) => Err(StorageError::Fatal(e)),
            None => Ok((read.kept, Some(read.version))),
        }
    }

    /// Lists the directory (names, sizes, modification times) without
    /// reading any file unless something changed.
    async fn read_if_changed(&self, known: &Version) -> Result<Option<Snapshot>, StorageError> {
        let known = known.clone();
        self.blocking(move |dir| {
            let listing = list(dir)?;
            if listing_version(&listing) == known {
                return Ok(None);
            }
            let entries: Vec<Entry> = listing.into_iter().map(|(entry, _)| entry).collect();
            let threads = working_threads(entries.len());
            read_listing(dir, entries, threads, &mut || {}, &stored_child)
                .map(|read| Some(snapshot_of(read)))
        })
        .await
        .map_err(StorageError::Fatal)
    }

    /// Lists the directory (names, sizes, modification times) and reads
    /// no file.
    async fn has_changed_since(&self, known: &Version) -> Result<bool, StorageError> {
        let known = known.clone();
        self.blocking(move |dir| Ok(listing_version(&list(dir)?) != known))
            .await
            .map_err(StorageError::Fatal)
    }

    async fn write(
        &self,
        document: &RepositoryDocument,
        condition: &WriteCondition,
    ) -> Result<Version, StorageError> {
        let dir = self.dir.clone();
        let document = document.clone();
        let condition = condition.clone();
        tokio::task::spawn_blocking(move || write_locked(&dir, &document, &condition))
            .await
            .map_err(|e| {
                StorageError::Fatal(Error::repository("file-system repository task failed", e))
            })?
    }

    /// Writers on one machine: conflicts are frequent (any file added changes the version)
    /// but cheap to retry, so many quick attempts.
    fn retry_policy(&self) -> RetryPolicy {
        RetryPolicy {
            max_attempts: 100,
            initial_backoff: std::time::Duration::from_millis(2),
            max_backoff: std::time::Duration::from_millis(100),
        }
    }

    fn description(&self) -> String {
        format!("directory {}", self.dir.display())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::repository::{Replacement, XmlRepository};

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
                .enumerate()
                .filter(|(_, e)| e.is("b"))
                .map(|(index, _)| Replacement {
                    index,
                    element: Element::new("b").with_attr("v", "2"),
                })
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

    /// A directory holding `key-0.xml` .. `key-{n-1}.xml`.
    async fn directory_of(n: usize) -> (tempfile::TempDir, FileSystemXmlRepository) {
        let dir = tempfile::tempdir().unwrap();
        let repo = FileSystemXmlRepository::new(dir.path());
        for i in 0..n {
            repo.store_element(
                &Element::new("key").with_attr("n", i.to_string()),
                &format!("key-{i}"),
            )
            .await
            .unwrap();
        }
        (dir, repo)
    }

    /// A directory holding `key-0.xml` .. `key-{n-1}.xml`, written directly
    /// (no fsync per file), as a writer would leave them.
    fn written_directory(n: usize) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for i in 0..n {
            let key = Element::new("key").with_attr("n", i.to_string());
            fs::write(
                dir.path().join(format!("key-{i}.xml")),
                key.to_document_bytes(Format::Indented),
            )
            .unwrap();
        }
        dir
    }

    /// The numbers (`n` attributes) of the elements read, in order.
    fn numbers(snapshot: &Snapshot) -> Vec<String> {
        snapshot
            .document
            .children()
            .iter()
            .map(|c| c.element().attr("n").unwrap().to_string())
            .collect()
    }

    #[cfg(unix)]
    fn mkfifo(path: &Path) {
        let status = std::process::Command::new("mkfifo")
            .arg(path)
            .status()
            .unwrap();
        assert!(status.success(), "mkfifo {}", path.display());
    }

    #[test]
    fn large_directories_are_read_on_more_threads_up_to_a_cap() {
        assert_eq!(working_threads(0), 1);
        assert_eq!(working_threads(2 * FILES_PER_THREAD - 1), 1);
        assert_eq!(working_threads(2 * FILES_PER_THREAD), 2);
        assert_eq!(working_threads(10_000), MAX_FILE_THREADS);
        assert_eq!(working_threads(usize::MAX), MAX_FILE_THREADS);
    }

    /// Whatever the number of reading threads, the elements come in name
    /// order, every bad file is a damaged element naming it, in name order,
    /// and the version is the one a listing of the unchanged directory gives
    /// (so `read_if_changed` answers "unchanged").
    #[tokio::test]
    async fn reads_on_several_threads_keep_the_order_and_name_every_bad_file() {
        const KEYS: usize = 200;
        let dir = written_directory(KEYS);
        let repo = FileSystemXmlRepository::new(dir.path());
        let path = dir.path();
        let target = path.join("elsewhere");
        fs::write(
            &target,
            Element::new("key")
                .with_attr("n", "linked")
                .to_document_bytes(Format::Indented),
        )
        .unwrap();
        let mut bad = vec![
            "key-10-broken.xml".to_string(),
            "key-20-oversized.xml".to_string(),
            "key-130-latin1.xml".to_string(),
        ];
        fs::write(path.join(&bad[0]), b"<key n='broken'>").unwrap();
        let oversized = usize::try_from(MAX_KEY_FILE_LEN).unwrap() + 1;
        fs::write(path.join(&bad[1]), vec![b' '; oversized]).unwrap();
        fs::write(path.join(&bad[2]), b"<key n='\xFC'/>").unwrap();
        #[cfg(unix)]
        {
            // A symlink to a regular file is followed; a FIFO is refused
            // without blocking; so is a directory.
            std::os::unix::fs::symlink(&target, path.join("key-35-link.xml")).unwrap();
            mkfifo(&path.join("key-05-fifo.xml"));
            fs::create_dir(path.join("key-25-dir.xml")).unwrap();
            bad.extend(["key-05-fifo.xml".to_string(), "key-25-dir.xml".to_string()]);
        }
        bad.sort();
        let one_thread = read_listed(
            &Directory::open(path).unwrap(),
            &list_entries(path).unwrap(),
            1,
        )
        .0;
        let expected = numbers(&one_thread);
        assert_eq!(expected.len(), KEYS + usize::from(cfg!(unix)));
        let mut sorted = expected.clone();
        sorted.sort_by_key(|n| {
            let name = if n == "linked" { "35-link" } else { n };
            format!("key-{name}.xml")
        });
        assert_eq!(expected, sorted, "name order");
        #[cfg(unix)]
        assert!(expected.contains(&"linked".to_string()));
        let listed = Some(listing_version(&list(path).unwrap()));
        assert_eq!(one_thread.version, listed);
        const { assert!(KEYS > 3 * FILES_PER_BLOCK, "several blocks per thread") };
        for threads in [2, 3, 7, 64] {
            let snapshot = read_listed(
                &Directory::open(path).unwrap(),
                &list_entries(path).unwrap(),
                threads,
            )
            .0;
            assert_eq!(numbers(&snapshot), expected, "{threads} threads");
            assert_eq!(snapshot.version, listed, "{threads} threads");
            let stamps = stamped(path, list_entries(path).unwrap(), threads);
            assert_eq!(Some(listing_version(&stamps)), listed, "{threads} threads");
            let named: Vec<String> = snapshot
                .damaged
                .iter()
                .map(|e| {
                    let text = e.to_string();
                    bad.iter()
                        .find(|name| text.contains(name.as_str()))
                        .unwrap_or_else(|| panic!("{text} names no bad file"))
                        .clone()
                })
                .collect();
            assert_eq!(named, bad, "{threads} threads");
        }
        // The repository's own read: the same elements and damage.
        let known = one_thread.version.clone().unwrap();
        assert!(repo.read_if_changed(&known).await.unwrap().is_none());
        let snapshot = repo.read().await.unwrap();
        assert_eq!(snapshot.damaged.len(), bad.len());
        assert_eq!(numbers(&snapshot), expected);
    }

    /// The version of a read is the listing's: it changes with any change to
    /// a file, read from its handle or looked up by path.
    #[tokio::test]
    async fn every_change_to_a_file_changes_the_version_of_a_read() {
        let (dir, repo) = directory_of(3).await;
        let path = dir.path();
        let version = || {
            read_listed(
                &Directory::open(path).unwrap(),
                &list_entries(path).unwrap(),
                2,
            )
            .0
            .version
            .unwrap()
        };
        let mut seen = vec![version()];
        let file = path.join("key-1.xml");
        let key = |n: &str| {
            Element::new("key")
                .with_attr("n", n)
                .to_document_bytes(Format::Indented)
        };
        // Same size, new content: the modification time moves.
        std::thread::sleep(std::time::Duration::from_millis(20));
        fs::write(&file, key("9")).unwrap();
        seen.push(version());
        // Replaced by a rename (a new inode).
        fs::write(path.join("new.tmp"), key("8")).unwrap();
        fs::rename(path.join("new.tmp"), &file).unwrap();
        seen.push(version());
        // Another file added.
        fs::write(path.join("key-3.xml"), key("3")).unwrap();
        seen.push(version());
        for (i, v) in seen.iter().enumerate() {
            assert_eq!(seen.iter().filter(|w| *w == v).count(), 1, "version {i}");
        }
        let last = seen.pop().unwrap();
        assert!(repo.read_if_changed(&last).await.unwrap().is_none());
        assert!(repo.read_if_changed(&seen[0]).await.unwrap().is_some());
    }

    #[test]
    fn xml_names_are_those_with_the_extension_xml() {
        for name in [
            "key-1.xml",
            "K.XML",
            "a.Xml",
            "..xml",
            "a.b.xml",
            ".xml",
            "xml",
            "a.xml.tmp",
            "a.xmll",
            "a.xm",
            ".",
            "..",
            "",
            "axml",
            "é.xml",
            "a .xml",
            "a.xml ",
        ] {
            let expected = Path::new(name)
                .extension()
                .is_some_and(|ext| ext.eq_ignore_ascii_case("xml"));
            assert_eq!(has_xml_extension(OsStr::new(name)), expected, "{name:?}");
        }
    }

    #[test]
    fn a_file_deleted_between_listing_and_reading_is_read_as_deleted_not_as_damage() {
        // On one thread, and on three taking several blocks of files each.
        for threads in [1, 3] {
            let dir = written_directory(4 * FILES_PER_BLOCK);
            let deleted = dir.path().join("key-7.xml");
            let mut listings = 0;
            // What `dpkeys prune` does while an application refreshes: the
            // listing still names key-7.xml when it is deleted.
            let snapshot = read_listing(
                dir.path(),
                list_entries(dir.path()).unwrap(),
                threads,
                &mut || {
                    if listings == 0 {
                        fs::remove_file(&deleted).unwrap();
                    }
                    listings += 1;
                },
                &stored_child,
            )
            .map(snapshot_of)
            .unwrap();
            assert_eq!(listings, 2, "the directory is listed again");
            let mut expected: Vec<String> = (0..4 * FILES_PER_BLOCK)
                .filter(|i| *i != 7)
                .map(|i| i.to_string())
                .collect();
            expected.sort_by_key(|n| format!("key-{n}.xml"));
            assert_eq!(numbers(&snapshot), expected);
            let (_, version) = snapshot.into_whole().unwrap();
            // The version is the directory's as read, so a write conditioned on it holds.
            assert_eq!(version, Some(listing_version(&list(dir.path()).unwrap())));
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn reads_beside_a_process_deleting_files_never_fail() {
        const KEYS: usize = 200;
        let (dir, repo) = directory_of(KEYS).await;
        let path = dir.path().to_path_buf();
        // A pruning writer, deleting one file after another.
        let pruner = std::thread::spawn(move || {
            for i in 0..KEYS {
                fs::remove_file(path.join(format!("key-{i}.xml"))).unwrap();
            }
        });
        let mut reads = 0;
        let mut last = KEYS + 1;
        while !pruner.is_finished() || reads == 0 {
            let elements = repo.get_all_elements().await.unwrap();
            // Deletions only: each read sees at most what the previous one saw.
            assert!(elements.len() <= last, "{} after {last}", elements.len());
            last = elements.len();
            reads += 1;
        }
        pruner.join().unwrap();
        assert!(repo.get_all_elements().await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_directory_that_never_settles_is_an_error_naming_a_vanished_file() {
        const KEYS: usize = 4;
        let (dir, _repo) = directory_of(KEYS).await;
        let path = dir.path().to_path_buf();
        // Every listing is stale by the time it is read: a file is deleted
        // and another added, forever.
        let mut added = 0;
        let mut churn = || {
            let first = list_entries(&path).unwrap().remove(0).name;
            fs::remove_file(path.join(first)).unwrap();
            added += 1;
            let element = Element::new("key").with_attr("n", (KEYS + added).to_string());
            write_element(&path, &element, &format!("key-{}", KEYS + added)).unwrap();
        };
        let snapshot = read_listing(
            &path,
            list_entries(&path).unwrap(),
            1,
            &mut churn,
            &stored_child,
        )
        .map(snapshot_of)
        .unwrap();
        assert_eq!(added, MAX_LISTINGS + KEYS, "bounded");
        let err = snapshot.into_whole().unwrap_err();
        assert!(
            matches!(&err, Error::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound),
            "{err}"
        );
        assert!(err.to_string().contains("key-"), "{err}");
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn a_dangling_symlink_fails_reads_but_not_an_emergency_append() {
        let dir = tempfile::tempdir().unwrap();
        let repo = FileSystemXmlRepository::new(dir.path());
        repo.store_element(&Element::new("a"), "key-a")
            .await
            .unwrap();
        std::os::unix::fs::symlink(dir.path().join("gone"), dir.path().join("key-x.xml")).unwrap();
        let err = repo.get_all_elements().await.unwrap_err();
        assert!(err.to_string().contains("key-x.xml"), "{err}");
        let precondition = |_: &[Element]| true;
        assert!(
            repo.store_element_if(&Element::new("b"), "key-b", &precondition)
                .await
                .is_err()
        );
        // A revocation still goes in beside it; the link is left alone.
        repo.store_element(&Element::new("revocation"), "revocation-1")
            .await
            .unwrap();
        assert!(dir.path().join("revocation-1.xml").is_file());
        assert!(fs::symlink_metadata(dir.path().join("key-x.xml")).is_ok());
    }

    #[tokio::test]
    async fn files_are_read_as_their_exact_text_and_bad_ones_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let repo = FileSystemXmlRepository::new(dir.path());
        let text = "\u{feff}<?xml version=\"1.0\"?>\r\n<k  n='ü'>x</k>";
        fs::write(dir.path().join("key-k.xml"), text).unwrap();
        let snapshot = repo.read().await.unwrap();
        assert_eq!(snapshot.document.children()[0].raw(), text);
        assert_eq!(
            snapshot.document.children()[0].element().attr("n"),
            Some("ü")
        );

        for (name, bytes) in [
            ("key-latin1.xml", &b"<k n='\xFC'/>"[..]),
            ("key-broken.xml", &b"<k>"[..]),
        ] {
            fs::write(dir.path().join(name), bytes).unwrap();
            let error = repo.get_all_elements().await.unwrap_err().to_string();
            assert!(error.contains(name), "{error}");
            fs::remove_file(dir.path().join(name)).unwrap();
        }
        let error = {
            fs::write(dir.path().join("key-latin1.xml"), b"<k n='\xFC'/>").unwrap();
            repo.get_all_elements().await.unwrap_err().to_string()
        };
        assert!(error.contains("not valid UTF-8"), "{error}");
    }
}
