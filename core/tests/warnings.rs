//! "Keys are persisted without encryption at rest" is logged like .NET
//! does: once per created key, after the key is stored, naming only keys
//! that reached the repository.

#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use dataprotection::encryption::{NULL_XML_DECRYPTOR_TYPE, NullXmlDecryptor, NullXmlEncryptor};
use dataprotection::repository::{
    DeletionChooser, FileSystemXmlRepository, StorePrecondition, XmlRepository,
};
use dataprotection::xml::Element;
use dataprotection::{DataProtectionProvider, KeyManager};
use time::{Duration, OffsetDateTime};

/// Collects what the tracing subscriber writes.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Capture {
    /// A subscriber for this thread (the tests run on current-thread
    /// runtimes, so every task they start logs here).
    fn install(&self) -> tracing::subscriber::DefaultGuard {
        let sink = self.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::INFO)
            .with_ansi(false)
            .with_writer(move || sink.clone())
            .finish();
        tracing::subscriber::set_default(subscriber)
    }

    fn warnings(&self) -> Vec<String> {
        String::from_utf8_lossy(&self.0.lock().unwrap())
            .lines()
            .filter(|l| l.contains("WARN"))
            .map(str::to_string)
            .collect()
    }
}

#[tokio::test]
async fn one_warning_per_created_key_and_none_on_an_existing_ring() {
    let capture = Capture::default();
    let _guard = capture.install();
    let dir = tempfile::tempdir().unwrap();
    let repository = || Arc::new(FileSystemXmlRepository::new(dir.path()));

    let first = DataProtectionProvider::builder()
        .repository(repository())
        .build()
        .await
        .unwrap();
    let key = first.key_ring().unwrap().default_key_id().unwrap();
    let warnings = capture.warnings();
    assert_eq!(warnings.len(), 1, "{warnings:#?}");
    assert!(
        warnings[0].contains("keys are persisted without encryption at rest"),
        "{warnings:#?}"
    );
    assert!(warnings[0].contains(&key.to_string()), "{warnings:#?}");

    // `protect | unprotect` on the existing ring: two more processes, no warning.
    for _ in 0..2 {
        let provider = DataProtectionProvider::builder()
            .repository(repository())
            .build()
            .await
            .unwrap();
        let protector = provider.create_protector("p");
        let token = protector.protect_str("hello").unwrap();
        assert_eq!(protector.unprotect_str(&token).unwrap(), "hello");
    }
    assert_eq!(capture.warnings().len(), 1, "{:#?}", capture.warnings());

    // An explicitly created key warns once more, naming that key.
    let now = OffsetDateTime::now_utc();
    let created = first
        .key_manager()
        .create_key(now, now + Duration::days(90))
        .await
        .unwrap();
    let warnings = capture.warnings();
    assert_eq!(warnings.len(), 2, "{warnings:#?}");
    assert!(
        warnings[1].contains(&created.id().to_string()),
        "{warnings:#?}"
    );
}

#[tokio::test]
async fn no_warning_when_keys_are_encrypted_at_rest() {
    let capture = Capture::default();
    let _guard = capture.install();
    let dir = tempfile::tempdir().unwrap();
    let provider = DataProtectionProvider::builder()
        .repository(Arc::new(FileSystemXmlRepository::new(dir.path())))
        .key_encryptor(Arc::new(NullXmlEncryptor))
        .add_decryptor(NULL_XML_DECRYPTOR_TYPE, Arc::new(NullXmlDecryptor))
        .build()
        .await
        .unwrap();
    assert!(provider.key_ring().unwrap().default_key_id().is_some());
    assert!(capture.warnings().is_empty(), "{:#?}", capture.warnings());
}

/// A repository where another instance stores its key just before this
/// one's conditional write, so this instance's key is never stored.
#[derive(Debug)]
struct LosesTheRace {
    inner: Arc<FileSystemXmlRepository>,
    rival: Mutex<Option<KeyManager>>,
    rival_key: Mutex<Option<uuid::Uuid>>,
    offered: Mutex<Vec<String>>,
}

#[async_trait]
impl XmlRepository for LosesTheRace {
    async fn get_all_elements(&self) -> dataprotection::Result<Vec<Element>> {
        self.inner.get_all_elements().await
    }
    async fn store_element(&self, element: &Element, name: &str) -> dataprotection::Result<()> {
        self.inner.store_element(element, name).await
    }
    async fn store_element_if(
        &self,
        element: &Element,
        name: &str,
        still_needed: StorePrecondition<'_>,
    ) -> dataprotection::Result<bool> {
        self.offered.lock().unwrap().push(name.to_string());
        let rival = self.rival.lock().unwrap().take();
        if let Some(rival) = rival {
            let now = OffsetDateTime::now_utc();
            let key = rival.create_key(now, now + Duration::days(90)).await?;
            *self.rival_key.lock().unwrap() = Some(key.id());
        }
        self.inner
            .store_element_if(element, name, still_needed)
            .await
    }
    async fn delete_elements(&self, choose: DeletionChooser<'_>) -> dataprotection::Result<usize> {
        self.inner.delete_elements(choose).await
    }
    fn describe(&self) -> String {
        self.inner.describe()
    }
}

#[tokio::test]
async fn a_key_that_lost_the_start_up_race_is_never_named() {
    let capture = Capture::default();
    let _guard = capture.install();
    let dir = tempfile::tempdir().unwrap();
    let inner = Arc::new(FileSystemXmlRepository::new(dir.path()));
    let repository = Arc::new(LosesTheRace {
        inner: inner.clone(),
        rival: Mutex::new(Some(KeyManager::new(inner.clone(), None))),
        rival_key: Mutex::new(None),
        offered: Mutex::new(Vec::new()),
    });
    let provider = DataProtectionProvider::builder()
        .repository(repository.clone())
        .build()
        .await
        .unwrap();

    let rival_key = repository.rival_key.lock().unwrap().unwrap();
    let ring = provider.key_ring().unwrap();
    assert_eq!(ring.default_key_id(), Some(rival_key));
    assert_eq!(ring.keys().len(), 1, "only the rival's key was stored");
    // This instance did offer a key of its own, which was not stored.
    let offered = repository.offered.lock().unwrap().clone();
    assert_eq!(offered.len(), 1, "{offered:?}");
    let lost = offered[0].trim_start_matches("key-").to_string();
    assert_ne!(lost, rival_key.to_string());

    let logs = String::from_utf8_lossy(&capture.0.lock().unwrap()).into_owned();
    assert!(
        !logs.contains(&lost),
        "the lost key is named in the logs:\n{logs}"
    );
    let warnings = capture.warnings();
    // The rival (another instance, same process here) warns for its own key.
    assert_eq!(warnings.len(), 1, "{warnings:#?}");
    assert!(
        warnings[0].contains(&rival_key.to_string()),
        "{warnings:#?}"
    );
}
