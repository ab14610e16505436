//! Writes `fixtures/rust/`: rings through our key manager, repositories and
//! encryptors, cases through our protectors, and the manifest describing them.
//!
//! Everything random comes from [`SeededRandom`]s labelled by ring or case,
//! and every date from a manual clock, so regenerating reproduces the files
//! byte for byte unless the code that writes them changed.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use dataprotection::clock::ManualClock;
use dataprotection::crypto::{AesKeySize, Algorithm, ValidationAlgorithm};
use dataprotection::encryption::{DecryptorRegistry, XmlDecryptor, XmlEncryptor};
use dataprotection::payload::{encode_text, read_header};
use dataprotection::repository::{FileSystemXmlRepository, XmlRepository};
use dataprotection::xml::{Element, read_descriptor_algorithm};
use dataprotection::{DataProtectionProvider, DataProtector, KeyManager};
use dataprotection_azure_keyvault::{
    AZURE_KEY_VAULT_XML_DECRYPTOR_TYPE, AzureKeyVaultXmlDecryptor, AzureKeyVaultXmlEncryptor,
    KeyVaultOptions,
};
use time::format_description::well_known::Rfc3339;
use time::macros::datetime;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use crate::document::{DocumentFileRepository, MirroredRepository};
use crate::error::InteropError;
use crate::key_wrap::{LocalRsaKeyWrapClient, generate_test_rsa_pem, mint_test_certificate_pem};
use crate::manifest::{
    Case, CaseKind, DefaultKey, Expect, ExpectedError, IdentityTokenEntry, KeyEncryption, KeyEntry,
    MANIFEST_VERSION, Manifest, Ring,
};
use crate::random::SeededRandom;
use crate::reuse::ReusingXmlEncryptor;
use dataprotection_aspnetcore::{
    DEFAULT_OPENID_CONNECT_SCHEME, IdentityTokenProvider, OPENID_CONNECT_HANDLER_PURPOSE,
    PropertiesDataFormat, STATE_FORMAT_VERSION_PURPOSE, TOKEN_PROVIDER_PURPOSE, TicketDataFormat,
    TokenError, UnprotectError, cookie_purposes,
};
use dataprotection_x509::{
    Certificate, CertificateXmlEncryptor, ENCRYPTED_XML_DECRYPTOR_TYPE, EncryptedXmlDecryptor,
};

mod sign_in;

fn owned(purposes: &[&str]) -> Vec<String> {
    purposes.iter().map(|p| p.to_string()).collect()
}

/// The core error inside a sign-in format error (a format error is reported
/// as an invalid argument: the generator built the value itself).
fn unprotect_error(e: UnprotectError) -> dataprotection::Error {
    match e {
        UnprotectError::Protection(e) => e,
        other => dataprotection::Error::InvalidArgument(other.to_string()),
    }
}

fn token_error(e: TokenError) -> dataprotection::Error {
    match e {
        TokenError::Protection(e) => e,
        other => dataprotection::Error::InvalidArgument(other.to_string()),
    }
}

/// The application name of every ring (`SetApplicationName`).
pub const APPLICATION_NAME: &str = "dp-fixtures";
/// The test-only RSA key that wraps the Key Vault ring, relative to the
/// fixtures directory. Never use it for anything but these fixtures.
pub const TEST_RSA_KEY_FILE: &str = "keys/test-only-rsa-oaep-private-key.pem";
/// The Key Vault key identifier the Key Vault ring names in its `<kid>`.
/// The vault does not exist: a local key resolver answers for it.
pub const TEST_KEY_VAULT_KEY_ID: &str = "https://dp-fixtures-test-only.vault.azure.net/keys/test-only-rsa-oaep/00000000000000000000000000000001";
/// The test-only private key of the X.509 ring's certificate.
pub const TEST_X509_KEY_FILE: &str = "keys/test-only-x509-private-key.pem";
/// The X.509 ring's test-only, self-signed certificate.
pub const TEST_X509_CERTIFICATE_FILE: &str = "keys/test-only-x509-certificate.pem";
/// The manifest's file name.
pub const MANIFEST_FILE: &str = "manifest.json";
/// Where the rings go, relative to the fixtures directory.
const RINGS_DIR: &str = "rings";
/// Where the `<repository>` documents go, relative to the fixtures directory.
const DOCUMENTS_DIR: &str = "documents";

/// When every ring's default key is stated (after every key's activation).
const DEFAULT_KEY_AT: OffsetDateTime = datetime!(2026-01-01 0:00 UTC);
/// The expiration of keys that must stay current.
const FAR_FUTURE: OffsetDateTime = datetime!(2099-01-01 0:00 UTC);
/// The creation date of most keys.
const BASE: OffsetDateTime = datetime!(2025-01-01 0:00 UTC);
/// A time-limited payload valid until then...
const VALID_UNTIL: OffsetDateTime = datetime!(2099-01-01 0:00 UTC);
/// ... and one that expired then.
const EXPIRED_AT: OffsetDateTime = datetime!(2020-01-01 0:00 UTC);

const PAYLOAD_PURPOSE: &str = "fixtures.payload";
const TIME_LIMITED_PURPOSE: &str = "fixtures.time-limited";
const TEXT: &[u8] = b"Hello from dataprotection-rs";
/// Between two keys of a ring.
const KEY_SPACING: Duration = Duration::days(10);
/// After a key's creation, when its payloads are protected: past the key
/// propagation window, so that the key is the default by then.
const PROTECT_DELAY: Duration = Duration::days(3);

/// Bytes that are not UTF-8: every byte value, after an invalid sequence.
fn binary_plaintext() -> Vec<u8> {
    let mut bytes = vec![0xC3, 0x28, 0xFF, 0xFE, 0x80, 0x00];
    bytes.extend(0..=255u8);
    bytes
}

/// 100 KB of non-text bytes.
fn large_plaintext() -> Vec<u8> {
    (0..102_400u32)
        .map(|i| ((i * 7 + i / 251) % 256) as u8)
        .collect()
}

/// A purpose of more than 127 UTF-8 bytes (a two-byte length prefix in the
/// additional authenticated data), with non-ASCII text.
fn long_purpose() -> String {
    format!("Ünïcødé ✓ {}", "long purpose ".repeat(12))
}

fn rfc3339(t: OffsetDateTime) -> String {
    // A fixed OffsetDateTime in UTC always formats.
    t.format(&Rfc3339).unwrap_or_else(|_| t.to_string())
}

/// Generates every fixture into `out` (normally `interop/fixtures/rust`),
/// replacing its rings and manifest, and returns the manifest.
///
/// The test RSA key in `out` is reused (and created if absent), and RSA-OAEP
/// wraps already in `out` are reused for the same AES keys, so that
/// regenerating changes nothing unless the code did.
///
/// # Errors
/// Any failure to write the files or to create keys and payloads.
pub async fn generate(out: &Path) -> Result<Manifest, InteropError> {
    let rsa_path = out.join(TEST_RSA_KEY_FILE);
    let pem = read_or_create(&rsa_path, || generate_test_rsa_pem(&rsa_path))?;
    let wrap_client = Arc::new(LocalRsaKeyWrapClient::from_pem(
        TEST_KEY_VAULT_KEY_ID,
        &pem,
        &rsa_path,
    )?);
    let x509_key_path = out.join(TEST_X509_KEY_FILE);
    let x509_key = read_or_create(&x509_key_path, || generate_test_rsa_pem(&x509_key_path))?;
    let certificate_path = out.join(TEST_X509_CERTIFICATE_FILE);
    let certificate_pem = read_or_create(&certificate_path, || {
        mint_test_certificate_pem(&x509_key, &x509_key_path)
    })?;
    let certificate =
        Certificate::from_pem(&format!("{certificate_pem}\n{x509_key}")).map_err(|e| {
            InteropError::TestRsaKey {
                path: certificate_path.clone(),
                reason: e.to_string(),
            }
        })?;
    let previous = previous_rings(&out.join(RINGS_DIR)).await?;

    for generated in [RINGS_DIR, DOCUMENTS_DIR] {
        let dir = out.join(generated);
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(InteropError::io("removing", dir, e)),
        }
    }

    let mut g = Generator {
        out: out.to_path_buf(),
        wrap_client,
        certificate,
        previous,
        manifest: Manifest {
            version: MANIFEST_VERSION,
            rings: Vec::new(),
            cases: Vec::new(),
        },
    };
    g.algorithm_rings().await?;
    g.revoked_key_ring().await?;
    g.mass_revocation_ring().await?;
    g.expired_key_ring().await?;
    g.key_vault_ring().await?;
    g.repository_document_ring().await?;
    g.sign_ins_ring().await?;
    g.x509_ring().await?;

    let mut json =
        serde_json::to_string_pretty(&g.manifest).map_err(|source| InteropError::Manifest {
            path: out.join(MANIFEST_FILE),
            source,
        })?;
    json.push('\n');
    write_file(&out.join(MANIFEST_FILE), json.as_bytes())?;
    Ok(g.manifest)
}

/// The text of `path`, written first by `create` if the file is missing
/// (test keys and certificates are made once, then committed).
fn read_or_create(
    path: &Path,
    create: impl FnOnce() -> Result<String, InteropError>,
) -> Result<String, InteropError> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let text = create()?;
            write_file(path, text.as_bytes())?;
            Ok(text)
        }
        Err(e) => Err(InteropError::io("reading", path, e)),
    }
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<(), InteropError> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| InteropError::io("creating directory", parent, e))?;
    }
    std::fs::write(path, bytes).map_err(|e| InteropError::io("writing", path, e))
}

/// The elements of every ring directory below `rings`, by directory name,
/// before regeneration replaces them (their encryptions are reused).
async fn previous_rings(rings: &Path) -> Result<HashMap<String, Vec<Element>>, InteropError> {
    let mut out = HashMap::new();
    let entries = match std::fs::read_dir(rings) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(InteropError::io("reading directory", rings, e)),
    };
    for entry in entries {
        let entry = entry.map_err(|e| InteropError::io("reading directory", rings, e))?;
        if !entry.path().is_dir() {
            continue;
        }
        let name = entry.file_name().to_string_lossy().into_owned();
        let elements = FileSystemXmlRepository::new(entry.path())
            .get_all_elements()
            .await
            .map_err(|e| InteropError::generate(format!("reading the previous ring {name}"), e))?;
        out.insert(name, elements);
    }
    Ok(out)
}

struct Generator {
    out: PathBuf,
    wrap_client: Arc<LocalRsaKeyWrapClient>,
    /// The X.509 ring's certificate, with its private key.
    certificate: Certificate,
    /// What the rings held before, by name.
    previous: HashMap<String, Vec<Element>>,
    manifest: Manifest,
}

/// One ring being written: its repository, a key manager on a manual clock,
/// and what providers over it need.
struct RingWriter {
    name: String,
    repository: Arc<dyn XmlRepository>,
    clock: Arc<ManualClock>,
    manager: KeyManager,
    /// The decryptor of the ring's encryption at rest, with its `decryptorType`.
    decryptor: Option<(&'static str, Arc<dyn XmlDecryptor>)>,
    /// The ring's `<repository>` document, relative to the fixtures.
    document: Option<String>,
    key_encryption: KeyEncryption,
}

impl RingWriter {
    /// Creates a key at `created`.
    async fn key(
        &self,
        created: OffsetDateTime,
        activation: OffsetDateTime,
        expiration: OffsetDateTime,
    ) -> Result<Uuid, InteropError> {
        self.clock.set(created);
        self.manager
            .create_key(activation, expiration)
            .await
            .map(|k| k.id())
            .map_err(|e| InteropError::generate(format!("a key of ring {}", self.name), e))
    }

    /// A provider over the ring whose clock stands at `at` and whose random
    /// source is labelled `label`.
    async fn provider(
        &self,
        at: OffsetDateTime,
        label: &str,
    ) -> Result<DataProtectionProvider, InteropError> {
        let mut builder = DataProtectionProvider::builder()
            .application_name(APPLICATION_NAME)
            .repository(self.repository.clone())
            .clock(Arc::new(ManualClock::new(at)))
            .random(Arc::new(SeededRandom::new(label)))
            .auto_generate_keys(false);
        if let Some((type_name, decryptor)) = &self.decryptor {
            builder = builder.add_decryptor(type_name, decryptor.clone());
        }
        builder
            .build()
            .await
            .map_err(|e| InteropError::generate(format!("a provider over ring {}", self.name), e))
    }

    async fn protector(
        &self,
        at: OffsetDateTime,
        case: &str,
        purposes: &[String],
    ) -> Result<DataProtector, InteropError> {
        let provider = self.provider(at, &format!("case {case}")).await?;
        let mut chain = vec![APPLICATION_NAME.to_string()];
        chain.extend(purposes.iter().cloned());
        Ok(provider.create_protector_with_purposes(&chain))
    }
}

/// What a payload or time-limited case is made of.
struct CaseSpec<'a> {
    name: String,
    at: OffsetDateTime,
    purposes: Vec<String>,
    plaintext: &'a [u8],
    expires: Option<OffsetDateTime>,
    expect: Expect,
    error: Option<ExpectedError>,
    /// Purposes to state in the manifest instead of those protected under
    /// (a payload .NET must refuse under the wrong purposes).
    stated_purposes: Option<Vec<String>>,
    /// The key the payload must be protected with (checked).
    under: Option<Uuid>,
    description: &'a str,
}

impl<'a> CaseSpec<'a> {
    fn payload(
        name: impl Into<String>,
        at: OffsetDateTime,
        purposes: &[&str],
        plaintext: &'a [u8],
    ) -> Self {
        CaseSpec {
            name: name.into(),
            at,
            purposes: purposes.iter().map(|p| p.to_string()).collect(),
            plaintext,
            expires: None,
            expect: Expect::Ok,
            error: None,
            stated_purposes: None,
            under: None,
            description: "",
        }
    }

    fn refused(mut self, error: ExpectedError) -> Self {
        self.expect = Expect::Error;
        self.error = Some(error);
        self
    }

    fn under(mut self, key: Uuid) -> Self {
        self.under = Some(key);
        self
    }

    fn describe(mut self, description: &'a str) -> Self {
        self.description = description;
        self
    }
}

fn algorithm_ring_name(algorithm: Algorithm) -> String {
    let aes = |a: AesKeySize| match a {
        AesKeySize::Aes128 => "aes128",
        AesKeySize::Aes192 => "aes192",
        AesKeySize::Aes256 => "aes256",
    };
    match algorithm {
        Algorithm::CbcHmac { aes: a, mac } => {
            format!("{}-cbc-{}", aes(a), mac.name().to_ascii_lowercase())
        }
        Algorithm::Gcm { aes: a } => format!("{}-gcm", aes(a)),
    }
}

impl Generator {
    /// A ring directory, also written as a `<repository>` document if
    /// `with_document`.
    async fn ring(
        &self,
        name: &str,
        algorithm: Algorithm,
        with_document: bool,
        key_encryption: KeyEncryption,
    ) -> RingWriter {
        let mut repository: Arc<dyn XmlRepository> = Arc::new(FileSystemXmlRepository::new(
            self.out.join(RINGS_DIR).join(name),
        ));
        let document = with_document.then(|| format!("{DOCUMENTS_DIR}/{name}.xml"));
        if let Some(document) = &document {
            repository = Arc::new(MirroredRepository {
                primary: repository,
                mirror: DocumentFileRepository::new(self.out.join(document)),
            });
        }
        let (encryptor, decryptor): (Option<Arc<dyn XmlEncryptor>>, _) = match key_encryption {
            KeyEncryption::AzureKeyVault => {
                let decryptor = Arc::new(AzureKeyVaultXmlDecryptor::new(
                    self.wrap_client.clone(),
                    &KeyVaultOptions::default(),
                ));
                let encryptor = AzureKeyVaultXmlEncryptor::new(self.wrap_client.clone())
                    .with_random(Arc::new(SeededRandom::new(format!(
                        "ring {name} key encryption"
                    ))));
                let mut decryptors = DecryptorRegistry::new();
                decryptors.register(AZURE_KEY_VAULT_XML_DECRYPTOR_TYPE, decryptor.clone());
                let reusing = ReusingXmlEncryptor::new(Arc::new(encryptor));
                if let Some(previous) = self.previous.get(name) {
                    reusing.learn(previous, &decryptors).await;
                }
                let decryptor: Arc<dyn XmlDecryptor> = decryptor;
                (
                    Some(Arc::new(reusing)),
                    Some((AZURE_KEY_VAULT_XML_DECRYPTOR_TYPE, decryptor)),
                )
            }
            KeyEncryption::X509 => {
                let decryptor: Arc<dyn XmlDecryptor> =
                    Arc::new(EncryptedXmlDecryptor::new([self.certificate.clone()]));
                let encryptor = CertificateXmlEncryptor::new(self.certificate.clone()).with_random(
                    Arc::new(SeededRandom::new(format!("ring {name} key encryption"))),
                );
                let mut decryptors = DecryptorRegistry::new();
                decryptors.register(ENCRYPTED_XML_DECRYPTOR_TYPE, decryptor.clone());
                let reusing = ReusingXmlEncryptor::new(Arc::new(encryptor));
                if let Some(previous) = self.previous.get(name) {
                    reusing.learn(previous, &decryptors).await;
                }
                (
                    Some(Arc::new(reusing)),
                    Some((ENCRYPTED_XML_DECRYPTOR_TYPE, decryptor)),
                )
            }
            KeyEncryption::None => (None, None),
        };
        let clock = Arc::new(ManualClock::new(BASE));
        let manager = KeyManager::new(repository.clone(), encryptor)
            .with_algorithm(algorithm)
            .with_clock(clock.clone())
            .with_random(Arc::new(SeededRandom::new(format!("ring {name} keys"))));
        RingWriter {
            name: name.to_string(),
            repository,
            clock,
            manager,
            decryptor,
            document,
            key_encryption,
        }
    }

    async fn case(&mut self, ring: &RingWriter, spec: CaseSpec<'_>) -> Result<(), InteropError> {
        let protector = ring.protector(spec.at, &spec.name, &spec.purposes).await?;
        let payload = match spec.expires {
            None => protector.protect(spec.plaintext),
            Some(expires) => protector.to_time_limited().protect(spec.plaintext, expires),
        }
        .map_err(|e| InteropError::generate(format!("case {}", spec.name), e))?;
        let key_id = read_header(&payload)
            .map_err(|e| InteropError::generate(format!("case {}", spec.name), e))?;
        if let Some(expected) = spec.under
            && expected != key_id
        {
            return Err(InteropError::generate(
                format!("case {}", spec.name),
                dataprotection::Error::InvalidArgument(format!(
                    "protected under key {key_id}, not the intended {expected}: the timeline of the ring is wrong"
                )),
            ));
        }
        let kind = if spec.expires.is_some() {
            CaseKind::TimeLimited
        } else {
            CaseKind::Payload
        };
        let wrong_purposes = spec.stated_purposes.is_some();
        self.manifest.cases.push(Case {
            name: spec.name,
            ring: ring.name.clone(),
            kind,
            purposes: spec.stated_purposes.unwrap_or(spec.purposes),
            value: encode_text(&payload),
            expect: spec.expect,
            error: spec.error,
            key_id: Some(key_id.hyphenated().to_string()),
            // A payload stated under the wrong purposes has no plaintext to compare.
            plaintext_hex: (!wrong_purposes).then(|| hex::encode(spec.plaintext)),
            expires_utc: spec.expires.map(rfc3339),
            scheme: None,
            ticket: None,
            cookies: None,
            properties: None,
            token: None,
            description: (!spec.description.is_empty()).then(|| spec.description.to_string()),
        });
        Ok(())
    }

    /// Records the ring in the manifest, as stored (revocations applied), with
    /// its default key at [`DEFAULT_KEY_AT`].
    async fn finish(&mut self, ring: RingWriter, description: &str) -> Result<(), InteropError> {
        let what = || format!("ring {}", ring.name);
        let set = ring
            .manager
            .get_all_keys()
            .await
            .map_err(|e| InteropError::generate(what(), e))?;
        let mut keys = Vec::new();
        for key in &set.keys {
            let (_, algorithm) = read_descriptor_algorithm(&key.xml().descriptor)
                .map_err(|e| InteropError::generate(what(), e))?;
            keys.push(KeyEntry {
                id: key.id().hyphenated().to_string(),
                creation_date: rfc3339(key.creation_date()),
                activation_date: rfc3339(key.activation_date()),
                expiration_date: rfc3339(key.expiration_date()),
                revoked: key.is_revoked(),
                encryption: algorithm.encryption_name().to_string(),
                validation: algorithm.validation_name().map(str::to_string),
            });
        }
        keys.sort_by(|a, b| (&a.creation_date, &a.id).cmp(&(&b.creation_date, &b.id)));
        let provider = ring.provider(DEFAULT_KEY_AT, "default key").await?;
        let default_id = provider
            .key_ring()
            .map_err(|e| InteropError::generate(what(), e))?
            .default_key_id()
            .ok_or_else(|| {
                InteropError::generate(
                    what(),
                    dataprotection::Error::NoDefaultKey {
                        reason: format!("no default key at {}", rfc3339(DEFAULT_KEY_AT)),
                    },
                )
            })?;
        let dir = format!("{RINGS_DIR}/{}", ring.name);
        let is_key_vault = ring.key_encryption == KeyEncryption::AzureKeyVault;
        let is_x509 = ring.key_encryption == KeyEncryption::X509;
        self.manifest.rings.push(Ring {
            name: ring.name.clone(),
            document: ring.document.clone(),
            dir,
            application_name: APPLICATION_NAME.to_string(),
            key_encryption: ring.key_encryption,
            test_rsa_private_key: match ring.key_encryption {
                KeyEncryption::AzureKeyVault => Some(TEST_RSA_KEY_FILE.to_string()),
                KeyEncryption::X509 => Some(TEST_X509_KEY_FILE.to_string()),
                KeyEncryption::None => None,
            },
            test_certificate: is_x509.then(|| TEST_X509_CERTIFICATE_FILE.to_string()),
            key_vault_key_id: is_key_vault.then(|| TEST_KEY_VAULT_KEY_ID.to_string()),
            keys,
            default_key: DefaultKey {
                at: rfc3339(DEFAULT_KEY_AT),
                id: default_id.hyphenated().to_string(),
            },
            description: Some(description.to_string()),
        });
        Ok(())
    }

    /// One ring per algorithm, one key each; raw payloads over several
    /// purpose chains and plaintexts, time-limited payloads on two of them.
    async fn algorithm_rings(&mut self) -> Result<(), InteropError> {
        let binary = binary_plaintext();
        let large = large_plaintext();
        let long = long_purpose();
        let at = BASE + PROTECT_DELAY;
        for algorithm in Algorithm::ALL {
            // HMACSHA1/384 are never written, so ALL holds only writable ones.
            let name = algorithm_ring_name(algorithm);
            let ring = self
                .ring(&name, algorithm, false, KeyEncryption::None)
                .await;
            ring.key(BASE, BASE, FAR_FUTURE).await?;
            self.case(
                &ring,
                CaseSpec::payload(format!("{name}/text"), at, &[PAYLOAD_PURPOSE], TEXT),
            )
            .await?;
            self.case(
                &ring,
                CaseSpec::payload(
                    format!("{name}/empty"),
                    at,
                    &[PAYLOAD_PURPOSE, "second level", "third level"],
                    b"",
                )
                .describe("an empty plaintext under a three-purpose chain"),
            )
            .await?;
            self.case(
                &ring,
                CaseSpec::payload(
                    format!("{name}/binary"),
                    at,
                    &[PAYLOAD_PURPOSE, &long],
                    &binary,
                )
                .describe("non-UTF-8 bytes under a non-ASCII purpose longer than 127 bytes"),
            )
            .await?;
            let flagship = matches!(
                algorithm,
                Algorithm::CbcHmac {
                    aes: AesKeySize::Aes256,
                    mac: ValidationAlgorithm::HmacSha256
                } | Algorithm::Gcm {
                    aes: AesKeySize::Aes256
                }
            );
            if flagship {
                self.case(
                    &ring,
                    CaseSpec::payload(format!("{name}/100kb"), at, &[PAYLOAD_PURPOSE], &large)
                        .describe("a 100 KB plaintext"),
                )
                .await?;
                let mut wrong = CaseSpec::payload(format!("{name}/wrong-purpose"), at, &[PAYLOAD_PURPOSE], TEXT)
                    .refused(ExpectedError::Decryption)
                    .describe("protected under [fixtures.payload], stated under another purpose: must not decrypt");
                wrong.stated_purposes =
                    Some(vec![PAYLOAD_PURPOSE.into(), "another purpose".into()]);
                self.case(&ring, wrong).await?;
                for (suffix, expires, description) in [
                    (
                        "valid-until-2099",
                        VALID_UNTIL,
                        "a time-limited payload valid until 2099",
                    ),
                    (
                        "expired",
                        EXPIRED_AT,
                        "a time-limited payload that expired in 2020",
                    ),
                ] {
                    let mut spec = CaseSpec::payload(
                        format!("{name}/time-limited-{suffix}"),
                        at,
                        &[TIME_LIMITED_PURPOSE],
                        TEXT,
                    )
                    .describe(description);
                    spec.expires = Some(expires);
                    if expires < DEFAULT_KEY_AT {
                        spec = spec.refused(ExpectedError::Expired);
                    }
                    self.case(&ring, spec).await?;
                }
            }
            self.finish(ring, &format!("one {algorithm} key")).await?;
        }
        Ok(())
    }

    /// A ring of default-algorithm keys without encryption at rest.
    async fn plain_ring(&self, name: &str, with_document: bool) -> RingWriter {
        self.ring(
            name,
            Algorithm::default(),
            with_document,
            KeyEncryption::None,
        )
        .await
    }

    /// Creates a key (created at `created`, active from `activation`) and,
    /// [`PROTECT_DELAY`] after its activation, protects [`TEXT`] under it
    /// as the case `{ring}/{label}`, refused for `refused` if given.
    async fn key_with_text_case(
        &mut self,
        ring: &RingWriter,
        label: &str,
        (created, activation, expiration): (OffsetDateTime, OffsetDateTime, OffsetDateTime),
        refused: Option<ExpectedError>,
        description: &'static str,
    ) -> Result<Uuid, InteropError> {
        let key = ring.key(created, activation, expiration).await?;
        let mut spec = CaseSpec::payload(
            format!("{}/{label}", ring.name),
            activation + PROTECT_DELAY,
            &[PAYLOAD_PURPOSE],
            TEXT,
        )
        .under(key)
        .describe(description);
        if let Some(error) = refused {
            spec = spec.refused(error);
        }
        self.case(ring, spec).await?;
        Ok(key)
    }

    /// Two keys, the first revoked by a single `<revocation>`.
    async fn revoked_key_ring(&mut self) -> Result<(), InteropError> {
        let ring = self.plain_ring("revoked-key", false).await;
        let revoked = self
            .key_with_text_case(
                &ring,
                "under-revoked-key",
                (BASE, BASE, FAR_FUTURE),
                Some(ExpectedError::Revoked),
                "protected before its key was revoked: must be refused",
            )
            .await?;
        let created = BASE + KEY_SPACING;
        let current = (created, created, FAR_FUTURE);
        self.key_with_text_case(&ring, "under-current-key", current, None, "")
            .await?;
        ring.clock.set(BASE + KEY_SPACING * 2);
        ring.manager
            .revoke_key(revoked, Some("fixture: a single revoked key"))
            .await
            .map_err(|e| InteropError::generate(&ring.name, e))?;
        self.finish(
            ring,
            "a key revoked by a single revocation, and a current key",
        )
        .await
    }

    /// Two keys revoked by a mass revocation, and one created after it.
    async fn mass_revocation_ring(&mut self) -> Result<(), InteropError> {
        let ring = self.plain_ring("mass-revocation", false).await;
        for (i, label) in [
            (0, "under-first-revoked-key"),
            (1, "under-second-revoked-key"),
        ] {
            let created = BASE + KEY_SPACING * i;
            self.key_with_text_case(
                &ring,
                label,
                (created, created, FAR_FUTURE),
                Some(ExpectedError::Revoked),
                "its key was created before the mass revocation date: must be refused",
            )
            .await?;
        }
        let revocation = BASE + KEY_SPACING * 2;
        ring.clock.set(revocation);
        ring.manager
            .revoke_all_keys(revocation, Some("fixture: mass revocation"))
            .await
            .map_err(|e| InteropError::generate(&ring.name, e))?;
        let created = BASE + KEY_SPACING * 3;
        self.key_with_text_case(
            &ring,
            "under-later-key",
            (created, created, FAR_FUTURE),
            None,
            "its key was created after the mass revocation date",
        )
        .await?;
        self.finish(
            ring,
            "keys revoked by a mass revocation, and a key created after it",
        )
        .await
    }

    /// An expired key next to a current one; both still unprotect.
    async fn expired_key_ring(&mut self) -> Result<(), InteropError> {
        let ring = self.plain_ring("expired-key", false).await;
        let old = datetime!(2024-01-01 0:00 UTC);
        let old_expiry = datetime!(2024-04-01 0:00 UTC);
        self.key_with_text_case(
            &ring,
            "under-expired-key",
            (old, old, old_expiry),
            None,
            "an expired key still unprotects",
        )
        .await?;
        let current = (datetime!(2024-03-20 0:00 UTC), old_expiry, FAR_FUTURE);
        self.key_with_text_case(&ring, "under-current-key", current, None, "")
            .await?;
        self.finish(ring, "a key that expired in 2024 next to a current key")
            .await
    }

    /// Master keys wrapped as Azure.Extensions.AspNetCore.DataProtection.Keys
    /// wraps them, by a local test-only RSA key.
    async fn key_vault_ring(&mut self) -> Result<(), InteropError> {
        let ring = self
            .ring(
                "azure-keyvault",
                Algorithm::default(),
                false,
                KeyEncryption::AzureKeyVault,
            )
            .await;
        self.key_with_text_case(&ring, "text", (BASE, BASE, FAR_FUTURE), None, "")
            .await?;
        let mut spec = CaseSpec::payload(
            format!("{}/time-limited-valid-until-2099", ring.name),
            BASE + PROTECT_DELAY,
            &[TIME_LIMITED_PURPOSE],
            TEXT,
        );
        spec.expires = Some(VALID_UNTIL);
        self.case(&ring, spec).await?;
        self.finish(
            ring,
            "master keys wrapped with Azure Key Vault (RSA-OAEP) by the test-only RSA key; \
             resolve the kid locally with test_rsa_private_key",
        )
        .await
    }

    /// Master keys protected with a certificate, as `ProtectKeysWithCertificate`
    /// does (XML Encryption: AES-256-CBC, the AES key RSA-encrypted to the
    /// certificate).
    async fn x509_ring(&mut self) -> Result<(), InteropError> {
        let ring = self
            .ring("x509", Algorithm::default(), false, KeyEncryption::X509)
            .await;
        self.key_with_text_case(&ring, "text", (BASE, BASE, FAR_FUTURE), None, "")
            .await?;
        let created = BASE + KEY_SPACING;
        let second = (created, created, FAR_FUTURE);
        self.key_with_text_case(&ring, "under-second-key", second, None, "")
            .await?;
        self.finish(
            ring,
            "master keys protected with the test-only certificate (ProtectKeysWithCertificate); \
             decrypt with test_certificate and its key test_rsa_private_key",
        )
        .await
    }

    /// A ring also written as the `<repository>` document the Azure blob
    /// repositories store.
    async fn repository_document_ring(&mut self) -> Result<(), InteropError> {
        let ring = self.plain_ring("blob-document", true).await;
        for (i, label) in [(0, "under-first-key"), (1, "under-second-key")] {
            let created = BASE + KEY_SPACING * i;
            self.key_with_text_case(&ring, label, (created, created, FAR_FUTURE), None, "")
                .await?;
        }
        self.finish(
            ring,
            "two keys, also as one <repository> document: the blob of PersistKeysToAzureBlobStorage",
        )
        .await
    }

    /// Sign-in cookies (several tickets, one chunked), an OpenID Connect
    /// `state` and Identity tokens, through `dataprotection-aspnetcore`.
    async fn sign_ins_ring(&mut self) -> Result<(), InteropError> {
        let name = "sign-ins";
        let ring = self
            .ring(name, Algorithm::default(), false, KeyEncryption::None)
            .await;
        let key = ring.key(BASE, BASE, FAR_FUTURE).await?;
        let at = BASE + PROTECT_DELAY;
        let what = |case: &str| format!("case {case}");

        for (label, ticket, description) in sign_in::tickets(at) {
            let case = format!("{name}/cookie-{label}");
            let provider = ring.provider(at, &what(&case)).await?;
            let scheme = ticket.scheme.clone();
            let value = TicketDataFormat::for_cookie_scheme(&provider, &scheme)
                .protect(&ticket)
                .map_err(|e| InteropError::generate(what(&case), unprotect_error(e)))?;
            let cookies = sign_in::request_cookies(&scheme, &value)
                .map_err(|e| InteropError::generate(what(&case), e))?;
            self.sign_in_case(
                &ring,
                key,
                Case {
                    kind: CaseKind::Cookie,
                    purposes: owned(&cookie_purposes(&scheme)),
                    scheme: Some(scheme),
                    ticket: Some(ticket),
                    // Only a chunked cookie needs its request cookies spelled out.
                    cookies: (cookies.len() > 1).then_some(cookies),
                    description: Some(description.to_string()),
                    ..sign_in::case(case, value)
                },
            )?;
        }

        let case = format!("{name}/oidc-state");
        let provider = ring.provider(at, &what(&case)).await?;
        let properties = sign_in::oidc_state_properties();
        let value =
            PropertiesDataFormat::openid_connect_state(&provider, DEFAULT_OPENID_CONNECT_SCHEME)
                .protect(&properties)
                .map_err(|e| InteropError::generate(what(&case), unprotect_error(e)))?;
        self.sign_in_case(
            &ring,
            key,
            Case {
                kind: CaseKind::OidcState,
                purposes: owned(&[
                    OPENID_CONNECT_HANDLER_PURPOSE,
                    DEFAULT_OPENID_CONNECT_SCHEME,
                    STATE_FORMAT_VERSION_PURPOSE,
                ]),
                properties: Some(properties),
                description: Some(
                    "the state parameter of an OpenID Connect challenge (PropertiesDataFormat)"
                        .into(),
                ),
                ..sign_in::case(case, value)
            },
        )?;

        for (label, user_id, purpose, stamp) in sign_in::IDENTITY_TOKENS {
            let case = format!("{name}/identity-token-{label}");
            let provider = ring.provider(at, &what(&case)).await?;
            let created = at + Duration::nanoseconds(123_456_700);
            let value = IdentityTokenProvider::new(&provider)
                .generate(user_id, purpose, stamp, created)
                .map_err(|e| InteropError::generate(what(&case), token_error(e)))?;
            self.sign_in_case(
                &ring,
                key,
                Case {
                    kind: CaseKind::IdentityToken,
                    purposes: owned(&[TOKEN_PROVIDER_PURPOSE]),
                    token: Some(IdentityTokenEntry {
                        user_id: user_id.to_string(),
                        purpose: purpose.to_string(),
                        security_stamp: stamp.to_string(),
                        created_utc: rfc3339(created),
                    }),
                    description: Some(format!("a DataProtectorTokenProvider token for {purpose}")),
                    ..sign_in::case(case, value)
                },
            )?;
        }
        self.finish(
            ring,
            "one key for sign-in cookies, an OpenID Connect state and Identity tokens",
        )
        .await
    }

    /// Records a sign-in case after checking which key protected it.
    fn sign_in_case(
        &mut self,
        ring: &RingWriter,
        key: Uuid,
        mut case: Case,
    ) -> Result<(), InteropError> {
        let bytes = dataprotection::payload::decode_text(&case.value)
            .and_then(|payload| read_header(&payload))
            .map_err(|e| InteropError::generate(format!("case {}", case.name), e))?;
        if bytes != key {
            return Err(InteropError::generate(
                format!("case {}", case.name),
                dataprotection::Error::InvalidArgument(format!(
                    "protected under {bytes}, not {key}"
                )),
            ));
        }
        case.ring = ring.name.clone();
        case.key_id = Some(key.hyphenated().to_string());
        self.manifest.cases.push(case);
        Ok(())
    }
}
