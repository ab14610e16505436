//! Checks a fixtures directory against its manifest with the current code:
//! every ring holds the stated keys and default key, every case decodes (or
//! is refused) as stated.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;

use dataprotection::clock::ManualClock;
use dataprotection::payload::decode_text;
use dataprotection::repository::{FileSystemXmlRepository, XmlRepository};
use dataprotection::xml::read_descriptor_algorithm;
use dataprotection::{DataProtectionProvider, DataProtector, Error};
use dataprotection_aspnetcore::{
    AuthenticationProperties, AuthenticationTicket, ChunkingCookieManager, IdentityToken,
    IdentityTokenProvider, PropertiesDataFormat, RequestCookies, TicketDataFormat, TokenError,
    UnprotectError, cookie_name,
};
use dataprotection_azure_keyvault::{
    AzureKeyVaultBuilderExt, AzureKeyVaultXmlDecryptor, KeyVaultOptions,
};
use dataprotection_x509::{Certificate, ENCRYPTED_XML_DECRYPTOR_TYPE, EncryptedXmlDecryptor};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::document::DocumentFileRepository;
use crate::error::{Failure, InteropError};
use crate::key_wrap::LocalRsaKeyWrapClient;
use crate::manifest::{
    Case, CaseKind, Expect, ExpectedError, KeyEncryption, MANIFEST_VERSION, Manifest, Ring,
};

/// Reads `dir/manifest.json`.
///
/// # Errors
/// [`InteropError::Io`] or [`InteropError::Manifest`].
pub fn read_manifest(dir: &Path) -> Result<Manifest, InteropError> {
    let path = dir.join(crate::MANIFEST_FILE);
    let text = std::fs::read_to_string(&path).map_err(|e| InteropError::io("reading", &path, e))?;
    serde_json::from_str(&text).map_err(|source| InteropError::Manifest { path, source })
}

/// What [`verify`] checked.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VerifiedCounts {
    /// Rings whose keys and default key matched.
    pub rings: usize,
    /// Cases that decoded, or were refused, as stated.
    pub cases: usize,
}

/// Verifies the fixtures in `dir` against `dir/manifest.json`.
///
/// # Errors
/// [`InteropError::Verification`] listing every ring and case that does not
/// hold (all are checked, not just up to the first failure); I/O and
/// manifest errors as [`read_manifest`].
pub async fn verify(dir: &Path) -> Result<VerifiedCounts, InteropError> {
    let manifest = read_manifest(dir)?;
    verify_manifest(dir, &manifest).await
}

/// As [`verify`], for a manifest already read.
///
/// # Errors
/// As [`verify`].
pub async fn verify_manifest(
    dir: &Path,
    manifest: &Manifest,
) -> Result<VerifiedCounts, InteropError> {
    let mut failures = Vec::new();
    let mut counts = VerifiedCounts::default();
    if manifest.version != MANIFEST_VERSION {
        failures.push(Failure {
            subject: "manifest".into(),
            problem: format!(
                "version {} (this verifier reads {MANIFEST_VERSION})",
                manifest.version
            ),
        });
    }
    // Per ring, a provider over its directory and, if it has one, over its
    // `<repository>` document; every case is checked against both.
    let mut providers: HashMap<&str, (&Ring, Vec<LoadedForm>)> = HashMap::new();
    for ring in &manifest.rings {
        let subject = format!("ring {}", ring.name);
        if providers.contains_key(ring.name.as_str()) {
            failures.push(Failure {
                subject,
                problem: "the name is used twice".into(),
            });
            continue;
        }
        let mut loaded = Vec::new();
        let mut ok = true;
        for (form, repository) in ring_repositories(dir, ring) {
            let subject = format!("{subject}{form}");
            match repository {
                Ok(repository) => match check_ring(dir, ring, repository).await {
                    Ok(provider) => loaded.push((form, provider)),
                    Err(problem) => {
                        ok = false;
                        failures.push(Failure { subject, problem });
                    }
                },
                Err(problem) => {
                    ok = false;
                    failures.push(Failure { subject, problem });
                }
            }
        }
        if ok {
            counts.rings += 1;
            providers.insert(&ring.name, (ring, loaded));
        }
    }
    let ring_names: HashSet<&str> = manifest.rings.iter().map(|r| r.name.as_str()).collect();
    let mut case_names = HashSet::new();
    for case in &manifest.cases {
        let subject = format!("case {}", case.name);
        if !case_names.insert(case.name.as_str()) {
            failures.push(Failure {
                subject,
                problem: "the name is used twice".into(),
            });
            continue;
        }
        let Some((ring, loaded)) = providers.get(case.ring.as_str()) else {
            let problem = if ring_names.contains(case.ring.as_str()) {
                format!("its ring {:?} did not verify", case.ring)
            } else {
                format!(
                    "names ring {:?}, which the manifest does not list",
                    case.ring
                )
            };
            failures.push(Failure { subject, problem });
            continue;
        };
        let mut ok = true;
        for (form, provider) in loaded {
            if let Err(problem) = check_case(ring, provider, case).await {
                ok = false;
                failures.push(Failure {
                    subject: format!("{subject}{form}"),
                    problem,
                });
            }
        }
        if ok {
            counts.cases += 1;
        }
    }
    if failures.is_empty() {
        Ok(counts)
    } else {
        Err(InteropError::Verification { failures })
    }
}

fn parse_instant(what: &str, text: &str) -> Result<OffsetDateTime, String> {
    OffsetDateTime::parse(text, &Rfc3339)
        .map_err(|e| format!("{what} {text:?} is not RFC 3339: {e}"))
}

/// One form of a ring (suffix naming it in failures, and its repository or
/// why there is none).
type RingForm = (&'static str, Result<Arc<dyn XmlRepository>, String>);
/// One form of a ring, loaded.
type LoadedForm = (&'static str, DataProtectionProvider);

/// The ring's directory and, if it has one, its `<repository>` document, as
/// repositories, each with the suffix that names it in failures.
fn ring_repositories(dir: &Path, ring: &Ring) -> Vec<RingForm> {
    let ring_dir = dir.join(&ring.dir);
    let mut out: Vec<RingForm> = vec![(
        "",
        if ring_dir.is_dir() {
            Ok(Arc::new(FileSystemXmlRepository::new(&ring_dir)))
        } else {
            Err(format!(
                "its directory {} does not exist",
                ring_dir.display()
            ))
        },
    )];
    if let Some(document) = &ring.document {
        let path = dir.join(document);
        out.push((
            " (document)",
            if path.is_file() {
                Ok(Arc::new(DocumentFileRepository::new(path)))
            } else {
                Err(format!("its document {} does not exist", path.display()))
            },
        ));
    }
    out
}

/// Loads the ring from `repository`, checks its keys and default key
/// against the manifest, and returns a provider over it whose clock stands
/// at `default_key.at`.
async fn check_ring(
    dir: &Path,
    ring: &Ring,
    repository: Arc<dyn XmlRepository>,
) -> Result<DataProtectionProvider, String> {
    let at = parse_instant("default_key.at", &ring.default_key.at)?;
    let mut builder = DataProtectionProvider::builder()
        .application_name(&ring.application_name)
        .repository(repository.clone())
        .clock(Arc::new(ManualClock::new(at)))
        .auto_generate_keys(false);
    match ring.key_encryption {
        KeyEncryption::None => {}
        KeyEncryption::AzureKeyVault => {
            let key_file = ring
                .test_rsa_private_key
                .as_ref()
                .ok_or("an azure-keyvault ring without test_rsa_private_key")?;
            let kid = ring
                .key_vault_key_id
                .as_deref()
                .unwrap_or(crate::TEST_KEY_VAULT_KEY_ID);
            let path = dir.join(key_file);
            let pem = std::fs::read_to_string(&path)
                .map_err(|e| format!("reading {}: {e}", path.display()))?;
            let client =
                LocalRsaKeyWrapClient::from_pem(kid, &pem, &path).map_err(|e| e.to_string())?;
            builder = builder.add_azure_key_vault_decryptor(Arc::new(
                AzureKeyVaultXmlDecryptor::new(Arc::new(client), &KeyVaultOptions::default()),
            ));
        }
        KeyEncryption::X509 => {
            let (Some(certificate), Some(key)) =
                (&ring.test_certificate, &ring.test_rsa_private_key)
            else {
                return Err(
                    "an x509 ring without test_certificate and test_rsa_private_key".into(),
                );
            };
            let certificate = Certificate::from_pem_files(dir.join(certificate), dir.join(key))
                .map_err(|e| format!("the test certificate: {e}"))?;
            builder = builder.add_decryptor(
                ENCRYPTED_XML_DECRYPTOR_TYPE,
                Arc::new(EncryptedXmlDecryptor::new([certificate])),
            );
        }
    }
    let provider = builder
        .build()
        .await
        .map_err(|e| format!("loading the ring: {e}"))?;

    let set = dataprotection::KeyManager::new(repository, None)
        .get_all_keys()
        .await
        .map_err(|e| format!("reading the keys: {e}"))?;
    if !set.problems.is_empty() {
        return Err(format!(
            "unreadable elements: {}",
            set.problems
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ")
        ));
    }
    let mut stated: HashSet<String> = HashSet::new();
    for entry in &ring.keys {
        let id = entry.id.to_ascii_lowercase();
        if !stated.insert(id.clone()) {
            return Err(format!("key {id} is listed twice"));
        }
        let key = set
            .keys
            .iter()
            .find(|k| k.id().hyphenated().to_string() == id)
            .ok_or_else(|| format!("key {id} is listed but not stored"))?;
        let dates = [
            ("creationDate", &entry.creation_date, key.creation_date()),
            (
                "activationDate",
                &entry.activation_date,
                key.activation_date(),
            ),
            (
                "expirationDate",
                &entry.expiration_date,
                key.expiration_date(),
            ),
        ];
        for (what, text, actual) in dates {
            if parse_instant(what, text)? != actual {
                return Err(format!(
                    "key {id}: {what} is {actual}, the manifest says {text}"
                ));
            }
        }
        if entry.revoked != key.is_revoked() {
            return Err(format!(
                "key {id}: revoked is {}, the manifest says {}",
                key.is_revoked(),
                entry.revoked
            ));
        }
        let (_, algorithm) = read_descriptor_algorithm(&key.xml().descriptor)
            .map_err(|e| format!("key {id}: its descriptor: {e}"))?;
        if algorithm.encryption_name() != entry.encryption
            || algorithm.validation_name() != entry.validation.as_deref()
        {
            return Err(format!(
                "key {id}: the algorithm is {algorithm}, the manifest says {} / {:?}",
                entry.encryption, entry.validation
            ));
        }
    }
    if let Some(extra) = set
        .keys
        .iter()
        .map(|k| k.id().hyphenated().to_string())
        .find(|id| !stated.contains(id))
    {
        return Err(format!("key {extra} is stored but not listed"));
    }
    let default = provider
        .key_ring()
        .map_err(|e| format!("loading the ring: {e}"))?
        .default_key_id()
        .map(|id| id.hyphenated().to_string());
    if default.as_deref() != Some(ring.default_key.id.to_ascii_lowercase().as_str()) {
        return Err(format!(
            "the default key at {} is {default:?}, the manifest says {}",
            ring.default_key.at, ring.default_key.id
        ));
    }
    Ok(provider)
}

/// What a case decoded to.
enum Decoded {
    Bytes(Vec<u8>, Option<OffsetDateTime>),
    Ticket(Box<AuthenticationTicket>),
    Properties(AuthenticationProperties),
    Token(IdentityToken),
}

/// Why a case was refused: the core error when the payload itself was
/// refused, or what else went wrong.
enum Refusal {
    Protection(Error),
    Other(String),
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::Protection(e) => write!(f, "{e}"),
            Refusal::Other(reason) => f.write_str(reason),
        }
    }
}

impl From<UnprotectError> for Refusal {
    fn from(e: UnprotectError) -> Self {
        match e {
            UnprotectError::Protection(e) => Refusal::Protection(e),
            other => Refusal::Other(other.to_string()),
        }
    }
}

impl From<TokenError> for Refusal {
    fn from(e: TokenError) -> Self {
        match e {
            TokenError::Protection(e) => Refusal::Protection(e),
            other => Refusal::Other(other.to_string()),
        }
    }
}

async fn decode(protector: DataProtector, case: &Case) -> Result<Decoded, Refusal> {
    match case.kind {
        CaseKind::Payload | CaseKind::TimeLimited => {
            let payload = decode_text(&case.value).map_err(Refusal::Protection)?;
            if case.kind == CaseKind::Payload {
                let plaintext = protector
                    .unprotect_async(&payload)
                    .await
                    .map_err(Refusal::Protection)?;
                Ok(Decoded::Bytes(plaintext, None))
            } else {
                let (plaintext, expiration) = protector
                    .to_time_limited()
                    .unprotect_async(&payload)
                    .await
                    .map_err(Refusal::Protection)?;
                Ok(Decoded::Bytes(plaintext, Some(expiration)))
            }
        }
        CaseKind::Cookie => {
            if let Some(cookies) = &case.cookies {
                let scheme = case
                    .scheme
                    .as_deref()
                    .ok_or_else(|| Refusal::Other("a chunked cookie case without scheme".into()))?;
                let request = RequestCookies::from_pairs(
                    cookies.iter().map(|c| (c.name.clone(), c.value.clone())),
                );
                let joined = ChunkingCookieManager::default()
                    .reassemble(&request, &cookie_name(scheme))
                    .map_err(|e| Refusal::Other(format!("the chunked cookie: {e}")))?;
                if joined.as_deref() != Some(case.value.as_str()) {
                    return Err(Refusal::Other(
                        "the cookies do not reassemble to the value".into(),
                    ));
                }
            }
            let ticket = TicketDataFormat::new(protector)
                .unprotect_async(&case.value)
                .await?;
            Ok(Decoded::Ticket(Box::new(ticket)))
        }
        CaseKind::OidcState => Ok(Decoded::Properties(
            PropertiesDataFormat::new(protector).unprotect(&case.value)?,
        )),
        CaseKind::IdentityToken => Ok(Decoded::Token(
            IdentityTokenProvider::with_protector(protector).read(&case.value)?,
        )),
    }
}

/// Compares what a case decoded to with what the manifest states.
fn compare(case: &Case, decoded: Decoded) -> Result<(), String> {
    match decoded {
        Decoded::Bytes(plaintext, expiration) => {
            let stated = case
                .plaintext_hex
                .as_deref()
                .ok_or("expect ok without plaintext_hex")?;
            let stated = hex::decode(stated).map_err(|e| format!("plaintext_hex: {e}"))?;
            if plaintext != stated {
                return Err(format!(
                    "decodes to {} bytes that differ from plaintext_hex ({} bytes)",
                    plaintext.len(),
                    stated.len()
                ));
            }
            if let Some(expiration) = expiration {
                let text = case
                    .expires_utc
                    .as_deref()
                    .ok_or("a time_limited case without expires_utc")?;
                if parse_instant("expires_utc", text)? != expiration {
                    return Err(format!("expires at {expiration}, the manifest says {text}"));
                }
            }
        }
        Decoded::Ticket(ticket) => {
            let stated = case.ticket.as_ref().ok_or("a cookie case without ticket")?;
            if *ticket != *stated {
                return Err(format!("decodes to another ticket: {}", ticket.to_json()));
            }
            if case.scheme.as_deref() != Some(ticket.scheme.as_str()) {
                return Err(format!(
                    "the ticket's scheme is {:?}, the case says {:?}",
                    ticket.scheme, case.scheme
                ));
            }
        }
        Decoded::Properties(properties) => {
            let stated = case
                .properties
                .as_ref()
                .ok_or("an oidc_state case without properties")?;
            if properties != *stated {
                return Err(format!(
                    "decodes to other properties: {:?}",
                    properties.items()
                ));
            }
        }
        Decoded::Token(token) => {
            let stated = case
                .token
                .as_ref()
                .ok_or("an identity_token case without token")?;
            let created = parse_instant("token.created_utc", &stated.created_utc)?;
            if token.user_id != stated.user_id
                || token.purpose != stated.purpose
                || token.security_stamp != stated.security_stamp
                || token.created != created
            {
                return Err(format!("decodes to another token: {token:?}"));
            }
        }
    }
    Ok(())
}

async fn check_case(
    ring: &Ring,
    provider: &DataProtectionProvider,
    case: &Case,
) -> Result<(), String> {
    let mut chain = vec![ring.application_name.clone()];
    chain.extend(case.purposes.iter().cloned());
    let protector = provider.create_protector_with_purposes(&chain);
    match (case.expect, decode(protector, case).await) {
        (Expect::Ok, Ok(decoded)) => compare(case, decoded),
        (Expect::Ok, Err(e)) => Err(format!("must decode, but: {e}")),
        (Expect::Error, Ok(_)) => Err("must be refused, but decodes".into()),
        (Expect::Error, Err(refusal)) => {
            let matches = match (case.error, &refusal) {
                (None, _) => true,
                (Some(ExpectedError::Revoked), Refusal::Protection(e)) => {
                    matches!(e, Error::KeyRevoked { .. })
                }
                (Some(ExpectedError::Expired), Refusal::Protection(e)) => {
                    matches!(e, Error::PayloadExpired { .. })
                }
                (Some(ExpectedError::Decryption), Refusal::Protection(e)) => {
                    matches!(e, Error::DecryptionFailed)
                }
                (Some(_), Refusal::Other(_)) => false,
            };
            if matches {
                Ok(())
            } else {
                Err(format!(
                    "refused as expected, but for another reason than {:?}: {refusal}",
                    case.error
                ))
            }
        }
    }
}
