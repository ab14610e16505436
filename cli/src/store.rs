//! Replacing stored elements in place (what `rewrap` needs), and direct
//! access to a key-ring blob (its ETag, its raw document, the service's
//! clock).
//!
//! `XmlRepository` can add and delete elements but not replace one, and the
//! blob repository refuses to add a second element with a key id it already
//! holds. So this module writes to the storage itself, with the same
//! concurrency rules as the repositories:
//!
//! * a **directory**: under the repository's advisory lock
//!   (`.dataprotection.lock`), each `key-*.xml` file is replaced by an atomic
//!   rename of a fully written temporary file, so a reader sees either the old
//!   or the new element, never neither and never both;
//! * a **blob**: the whole document is rewritten in one upload with `If-Match`
//!   on the ETag it was read with; a conflict re-reads and re-applies the
//!   replacements (matched by the old elements' content, so nothing is
//!   re-encrypted), every other element is written back byte for byte;
//! * anything else: the new element is stored first, checked, and only then
//!   the old one deleted.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration as StdDuration;

use azure_core::http::{Etag, RequestContent, StatusCode, Url};
use azure_storage_blob::models::{BlobClientDownloadOptions, BlobClientUploadOptions};
use azure_storage_blob::{BlobClient, BlobClientOptions};
use dataprotection::repository::XmlRepository;
use dataprotection::xml::{Element, Format, RepositoryDocument};
use dataprotection_azure_blobs::connection_string::{ConnectionString, Credential};
use dataprotection_azure_blobs::sas::{self, Permissions, SasInfo, SasWindow};
use dataprotection_azure_blobs::{BlobRepositoryOptions, CONTENT_TYPE};
use dataprotection_azure_keyvault::credential_from_environment;
use time::OffsetDateTime;

use crate::error::{CliError, Context as _, Result};
use crate::repository::{Location, setup_error};

/// Name of the directory repository's advisory lock file (as core uses it).
const LOCK_FILE: &str = ".dataprotection.lock";

/// How many times a conditional blob write is attempted.
const MAX_ATTEMPTS: u32 = 10;

/// One element to replace by another.
#[derive(Clone, Debug)]
pub struct Replacement {
    /// The element as stored now (matched by content).
    pub old: Element,
    /// What to store instead.
    pub new: Element,
}

/// What [`replace_elements`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Replaced {
    /// Stored elements that were replaced.
    pub replaced: usize,
}

fn failed(action: &'static str, message: impl Into<String>) -> CliError {
    CliError::Failed {
        action,
        class: "repository error",
        message: message.into(),
    }
}

/// Replaces, in the ring at `location`, every stored element equal to a
/// replacement's `old` element by its `new` one (see the module docs for how
/// each storage keeps the ring readable throughout).
pub async fn replace_elements(
    location: &Location,
    repository: &Arc<dyn XmlRepository>,
    replacements: &[Replacement],
) -> Result<Replaced> {
    if replacements.is_empty() {
        return Ok(Replaced::default());
    }
    match location {
        Location::Dir(dir) => {
            let dir = dir.clone();
            let replacements = replacements.to_vec();
            tokio::task::spawn_blocking(move || replace_in_dir(&dir, &replacements))
                .await
                .map_err(|e| failed("replacing elements", e.to_string()))?
        }
        Location::Memory => replace_generic(repository, replacements).await,
        _ => BlobDocument::open(location)?.replace(replacements).await,
    }
}

fn io_error(action: &'static str, path: &Path, e: std::io::Error) -> CliError {
    CliError::Operation {
        action,
        source: dataprotection::Error::Io {
            action: "accessing",
            path: path.to_path_buf(),
            source: e,
        },
    }
}

/// Holds the directory repository's advisory lock (the one core's
/// `store_element_if` and `delete_elements` take) while it lives.
pub fn lock_dir(dir: &Path) -> Result<std::fs::File> {
    let path = dir.join(LOCK_FILE);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| io_error("locking the key ring directory", &path, e))?;
    file.lock()
        .map_err(|e| io_error("locking the key ring directory", &path, e))?;
    Ok(file)
}

/// `*.xml` files directly in `dir`, sorted by name (as core reads them).
fn xml_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_error("reading the key ring directory", dir, e)),
    };
    let mut paths = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| io_error("reading the key ring directory", dir, e))?;
        let path = entry.path();
        if path
            .extension()
            .is_some_and(|x| x.eq_ignore_ascii_case("xml"))
            && entry.file_type().is_ok_and(|t| t.is_file())
        {
            paths.push(path);
        }
    }
    paths.sort();
    Ok(paths)
}

fn replace_in_dir(dir: &Path, replacements: &[Replacement]) -> Result<Replaced> {
    use std::io::Write;
    if !dir.is_dir() {
        return Ok(Replaced::default());
    }
    let _lock = lock_dir(dir)?;
    let mut replaced = 0;
    for path in xml_files(dir)? {
        let bytes = std::fs::read(&path).map_err(|e| io_error("reading", &path, e))?;
        // Files that do not parse are not ours to touch.
        let Ok(element) = Element::parse_bytes(&bytes) else {
            continue;
        };
        let Some(r) = replacements.iter().find(|r| r.old == element) else {
            continue;
        };
        let temp = dir.join(format!(".{}.tmp", uuid::Uuid::new_v4().simple()));
        let result = (|| {
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                options.mode(0o600);
            }
            let mut file = options
                .open(&temp)
                .map_err(|e| io_error("writing", &temp, e))?;
            file.write_all(&r.new.to_document_bytes(Format::Indented))
                .and_then(|()| file.sync_all())
                .map_err(|e| io_error("writing", &temp, e))?;
            drop(file);
            // Atomic: readers see the old file or the new one.
            std::fs::rename(&temp, &path).map_err(|e| io_error("replacing", &path, e))
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&temp);
        }
        result?;
        tracing::info!(path = %path.display(), "replaced key ring element");
        replaced += 1;
    }
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(Replaced { replaced })
}

/// Store-then-delete, for repositories without an in-place replacement: the
/// new element is stored and read back before the old one is deleted, so the
/// key is never missing. While both exist, the old one comes first in
/// document order, and readers keep using it (a duplicate key id keeps the
/// first element).
async fn replace_generic(
    repository: &Arc<dyn XmlRepository>,
    replacements: &[Replacement],
) -> Result<Replaced> {
    const ACTION: &str = "replacing elements";
    let mut replaced = 0;
    for r in replacements {
        let current = repository.get_all_elements().await.during(ACTION)?;
        if !current.contains(&r.old) {
            continue;
        }
        let name = friendly_name(&r.new);
        repository
            .store_element(&r.new, &name)
            .await
            .during(ACTION)?;
        let current = repository.get_all_elements().await.during(ACTION)?;
        if !current.contains(&r.new) {
            return Err(failed(
                ACTION,
                format!(
                    "{} did not store the new element next to the old one, so it cannot be \
                     replaced safely; nothing was deleted",
                    repository.describe()
                ),
            ));
        }
        let old = r.old.clone();
        let choose = move |elements: &[Element]| {
            let mut done = false;
            elements
                .iter()
                .map(|e| {
                    (!done && *e == old).then(|| {
                        done = true;
                        1
                    })
                })
                .collect()
        };
        repository.delete_elements(&choose).await.during(ACTION)?;
        replaced += 1;
    }
    Ok(Replaced { replaced })
}

/// The file-system friendly name for an element: `key-{id}`, the
/// revocation's name, or `{name}-{uuid}`.
pub fn friendly_name(element: &Element) -> String {
    use dataprotection::xml::StoredElement;
    match StoredElement::classify(element) {
        Ok(StoredElement::Key(k)) => k.friendly_name(),
        Ok(StoredElement::Revocation(r)) => r.friendly_name(),
        _ => {
            let name: String = element
                .local_name()
                .chars()
                .filter(|c| c.is_ascii_alphanumeric())
                .collect();
            let name = if name.is_empty() { "element" } else { &name };
            format!("{name}-{}", uuid::Uuid::new_v4().hyphenated())
        }
    }
}

/// What one read of the key-ring blob returned.
#[derive(Debug)]
pub struct Snapshot {
    /// The ETag (`None`: the blob does not exist).
    pub etag: Option<Etag>,
    /// The document (empty when the blob does not exist).
    pub doc: RepositoryDocument,
    /// The service's `Date` header, if it sent one.
    pub date: Option<OffsetDateTime>,
}

/// A key-ring blob accessed directly (conditional reads and writes of the
/// whole document), authorised as the command line says.
pub struct BlobDocument {
    client: BlobClient,
    description: String,
}

impl std::fmt::Debug for BlobDocument {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobDocument")
            .field("blob", &self.description)
            .finish_non_exhaustive()
    }
}

enum Put {
    Stored,
    /// 409/412: somebody else wrote first.
    Conflict,
    /// 5xx, timeout, lost response: may or may not have been applied.
    Ambiguous(String),
}

fn client_options() -> BlobClientOptions {
    BlobClientOptions {
        client_options: BlobRepositoryOptions::default().client_options,
        ..Default::default()
    }
}

fn azure_error(action: &'static str, e: &azure_core::Error) -> CliError {
    let status = e
        .http_status()
        .map(|s| format!("HTTP {} ", u16::from(s)))
        .unwrap_or_default();
    failed(action, format!("{status}{}", sas::redact(&e.to_string())))
}

impl BlobDocument {
    /// A client for the blob at `location` (which must be a blob).
    pub fn open(location: &Location) -> Result<Self> {
        let description = location.describe();
        let parse = |url: &str| {
            Url::parse(url.trim()).map_err(|e| setup_error(format!("{}: {e}", sas::redact(url))))
        };
        let client = match location {
            Location::BlobSasUrl(url) => BlobClient::new(parse(url)?, None, Some(client_options())),
            Location::BlobTokenUrl(url) => {
                let (credential, _) =
                    credential_from_environment().map_err(|e| setup_error(e.to_string()))?;
                BlobClient::new(parse(url)?, Some(credential), Some(client_options()))
            }
            Location::BlobConnectionString {
                connection_string,
                container,
                blob,
            } => {
                let cs = ConnectionString::parse(connection_string)
                    .map_err(|e| setup_error(e.to_string()))?;
                let url = sas::blob_url(cs.blob_endpoint(), container, blob);
                let url = match cs.credential() {
                    Credential::AccountKey(key) => {
                        let account = cs.account_name().ok_or_else(|| {
                            setup_error("AccountKey needs AccountName".to_string())
                        })?;
                        let window =
                            SasWindow::until(OffsetDateTime::now_utc() + time::Duration::hours(1));
                        sas::blob_sas(
                            account,
                            key,
                            container,
                            blob,
                            Permissions::KEY_RING_BLOB,
                            &window,
                        )
                        .map_err(|e| setup_error(e.to_string()))?
                        .append_to(&url)
                    }
                    Credential::SharedAccessSignature(query) => format!("{url}?{query}"),
                    Credential::None => {
                        return Err(setup_error(
                            "the connection string carries no credential".to_string(),
                        ));
                    }
                };
                BlobClient::new(parse(&url)?, None, Some(client_options()))
            }
            Location::Dir(_) | Location::Memory => {
                return Err(setup_error(format!("{description} is not a blob")));
            }
        }
        .map_err(|e| setup_error(sas::redact(&e.to_string())))?;
        Ok(BlobDocument {
            client,
            description,
        })
    }

    /// Reads the whole blob.
    pub async fn read(&self) -> Result<Snapshot> {
        const ACTION: &str = "reading the key ring blob";
        let result = self
            .client
            .download(Some(BlobClientDownloadOptions::default()))
            .await;
        let response = match result {
            Ok(r) => r,
            Err(e) if e.http_status() == Some(StatusCode::NotFound) => {
                return Ok(Snapshot {
                    etag: None,
                    doc: RepositoryDocument::new(),
                    date: None,
                });
            }
            Err(e) => return Err(azure_error(ACTION, &e)),
        };
        let date = response
            .headers
            .get_optional_str(&azure_core::http::headers::HeaderName::from_static("date"))
            .and_then(|d| azure_core::time::parse_rfc7231(d).ok());
        let etag = response.properties.etag.clone();
        let body = response
            .body
            .collect()
            .await
            .map_err(|e| azure_error(ACTION, &e))?;
        let doc = RepositoryDocument::parse(&body).during(ACTION)?;
        Ok(Snapshot {
            etag: Some(etag.ok_or_else(|| failed(ACTION, "the service returned no ETag"))?),
            doc,
            date,
        })
    }

    async fn put(&self, bytes: Vec<u8>, etag: &Etag) -> Result<Put> {
        let options = BlobClientUploadOptions {
            blob_content_type: Some(CONTENT_TYPE.to_owned()),
            if_match: Some(etag.clone()),
            ..Default::default()
        };
        match self
            .client
            .upload(RequestContent::from(bytes), Some(options))
            .await
        {
            Ok(_) => Ok(Put::Stored),
            Err(e) => match e.http_status() {
                Some(StatusCode::PreconditionFailed | StatusCode::Conflict) => Ok(Put::Conflict),
                Some(s) if u16::from(s) >= 500 || u16::from(s) == 408 => {
                    Ok(Put::Ambiguous(sas::redact(&e.to_string())))
                }
                None => Ok(Put::Ambiguous(sas::redact(&e.to_string()))),
                Some(_) => Err(azure_error("writing the key ring blob", &e)),
            },
        }
    }

    /// The replacement in one conditional upload, retried on conflicts.
    async fn replace(&self, replacements: &[Replacement]) -> Result<Replaced> {
        const ACTION: &str = "rewriting the key ring blob";
        let mut last = String::new();
        for attempt in 0..MAX_ATTEMPTS {
            if attempt > 0 {
                let jitter = u64::from(uuid::Uuid::new_v4().as_bytes()[0]) % 50;
                let base = 50u64 << attempt.min(4);
                tokio::time::sleep(StdDuration::from_millis(base + jitter)).await;
            }
            let snapshot = self.read().await?;
            let Some(etag) = snapshot.etag else {
                return Ok(Replaced::default());
            };
            let subs: Vec<Option<Element>> = snapshot
                .doc
                .children()
                .iter()
                .map(|c| {
                    replacements
                        .iter()
                        .find(|r| &r.old == c.element())
                        .map(|r| r.new.clone())
                })
                .collect();
            let replaced = subs.iter().filter(|s| s.is_some()).count();
            if replaced == 0 {
                // Already done (an earlier ambiguous attempt was applied), or
                // the elements were removed meanwhile.
                return Ok(Replaced::default());
            }
            let bytes = splice(&snapshot.doc, &subs).during(ACTION)?;
            match self.put(bytes, &etag).await? {
                Put::Stored => return Ok(Replaced { replaced }),
                Put::Conflict => {
                    tracing::debug!(attempt, "the key ring blob changed meanwhile; re-reading");
                    last = "the blob kept changing under concurrent writers (HTTP 409/412)".into();
                }
                Put::Ambiguous(e) => {
                    tracing::warn!(attempt, error = %e, "the outcome of a write is unknown; re-reading");
                    last = e;
                }
            }
        }
        Err(failed(
            ACTION,
            format!(
                "{}: gave up after {MAX_ATTEMPTS} attempts: {last}",
                self.description
            ),
        ))
    }
}

/// The document with the children that have a substitute replaced by it (in
/// place, written compactly as .NET does) and every other child kept byte for
/// byte; checked by parsing the result.
fn splice(doc: &RepositoryDocument, subs: &[Option<Element>]) -> dataprotection::Result<Vec<u8>> {
    let broken = |why: &str| dataprotection::Error::malformed("repository", why.to_string());
    let text = String::from_utf8(doc.to_bytes()).map_err(|_| broken("not UTF-8"))?;
    let children = doc.children();
    let Some(first) = children.first() else {
        return Ok(text.into_bytes());
    };
    // The children follow the root's start tag back to back; no start tag
    // can contain a `<`, so the first occurrence is the first child.
    let start = text
        .find(first.raw())
        .ok_or_else(|| broken("cannot locate the first element"))?;
    let mut out = String::with_capacity(text.len() + 4096);
    out.push_str(&text[..start]);
    let mut pos = start;
    for (child, sub) in children.iter().zip(subs) {
        if !text[pos..].starts_with(child.raw()) {
            return Err(broken("the elements are not where expected"));
        }
        match sub {
            Some(element) => out.push_str(&element.to_xml(Format::Compact)),
            None => out.push_str(child.raw()),
        }
        pos += child.raw().len();
    }
    out.push_str(&text[pos..]);
    // What each new element reads back as (namespace declarations and
    // prefixes as written, not as built).
    let mut expected = Vec::with_capacity(children.len());
    for (c, s) in children.iter().zip(subs) {
        expected.push(match s {
            Some(e) => Element::parse(&e.to_xml(Format::Compact))?,
            None => c.element().clone(),
        });
    }
    let bytes = out.into_bytes();
    if RepositoryDocument::parse(&bytes)?.elements() != expected {
        return Err(broken(
            "the rewritten document does not read back as expected",
        ));
    }
    Ok(bytes)
}

/// What the SAS of a blob location says about itself (`None`: not a SAS, or
/// a SAS minted from an account key, which is always fresh and complete).
pub fn fixed_sas(location: &Location) -> Option<std::result::Result<SasInfo, String>> {
    let query = match location {
        Location::BlobSasUrl(url) => url.clone(),
        Location::BlobConnectionString {
            connection_string, ..
        } => match ConnectionString::parse(connection_string)
            .ok()?
            .credential()
        {
            Credential::SharedAccessSignature(q) => q.clone(),
            _ => return None,
        },
        _ => return None,
    };
    Some(SasInfo::parse(&query).map_err(|e| e.to_string()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn splice_replaces_in_place_and_keeps_the_rest_byte_for_byte() {
        let doc = RepositoryDocument::parse(
            b"<?xml version=\"1.0\"?><repository a='1'><x  b='1'/><y>t</y><z/></repository>",
        )
        .unwrap();
        let bytes = splice(&doc, &[None, Some(Element::new("n")), None]).unwrap();
        assert_eq!(
            String::from_utf8(bytes).unwrap(),
            "<?xml version=\"1.0\" encoding=\"utf-8\"?><repository a='1'><x  b='1'/><n /><z/></repository>"
        );
        let empty = RepositoryDocument::parse(b"<repository/>").unwrap();
        assert!(splice(&empty, &[]).is_ok());
    }

    #[test]
    fn friendly_names() {
        let e = Element::new("weird:thing");
        assert!(
            friendly_name(&e).starts_with("thing-") || friendly_name(&e).starts_with("weirdthing-")
        );
    }
}
