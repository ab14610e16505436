//! Input an attacker with write access to a ring could plant: every parser
//! and date computation is total, key files are read safely, XML parsing is
//! linear, and a weak master key is never used for new payloads.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use dataprotection::crypto::{Algorithm, Secret};
use dataprotection::payload::{MAGIC_HEADER, additional_authenticated_data, key_id_bytes};
use dataprotection::policy::{self, KeyInfo};
use dataprotection::repository::UnsafeFileError;
use dataprotection::repository::{FileSystemXmlRepository, InMemoryXmlRepository, XmlRepository};
use dataprotection::xml::{
    Element, KeyXml, RepositoryDocument, descriptor_element, format_date, parse_date,
};
use dataprotection::{DataProtectionProvider, Error};
use dataprotection::{KeySet, KeySetProblem};
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

/// A small deterministic generator (xorshift64*), so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Characters that matter to a date parser, plus multi-byte ones.
const ALPHABET: &[char] = &[
    '0', '1', '2', '9', '-', ':', 'T', 't', 'Z', '+', '.', ' ', 'é', '€', '😀', '\u{661}', '\0',
];

fn random_string(rng: &mut Rng, max: usize) -> String {
    let len = rng.below(max + 1);
    (0..len)
        .map(|_| ALPHABET[rng.below(ALPHABET.len())])
        .collect()
}

/// Every way of damaging a valid date by one character, plus random strings:
/// the parser returns Ok or Err, and whatever parses round-trips.
#[test]
fn any_string_is_a_date_or_an_error() {
    let valid = [
        "2030-01-01T00:00:00+01:00",
        "2015-03-19T23:32:02.3949887Z",
        "9999-12-31T23:59:59.9999999Z",
    ];
    let mut inputs: Vec<String> = Vec::new();
    for v in valid {
        for i in 0..=v.len() {
            for c in ['é', '😀', 'x', '9'] {
                let mut s = v.to_string();
                s.insert(i, c);
                inputs.push(s.clone());
                if i < v.len() {
                    s.remove(i + c.len_utf8());
                    inputs.push(s);
                }
            }
        }
    }
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    for _ in 0..20_000 {
        inputs.push(random_string(&mut rng, 40));
    }
    for _ in 0..20_000 {
        let mut s = valid[rng.below(valid.len())].to_string();
        let at = rng.below(s.len());
        if s.is_char_boundary(at) {
            s.replace_range(at..at, &random_string(&mut rng, 3));
        }
        inputs.push(s);
    }
    let mut parsed = 0;
    for input in &inputs {
        if let Ok(date) = parse_date(input) {
            parsed += 1;
            assert_eq!(parse_date(&format_date(date)).unwrap(), date, "{input:?}");
        }
    }
    assert!(
        parsed > 0,
        "no variant parsed: the test would prove nothing"
    );
}

#[test]
fn the_planted_multibyte_date_is_an_error() {
    let e = parse_date("2030-01-01T00:00:00+0\u{e9}00").unwrap_err();
    assert!(matches!(e, Error::MalformedXml { .. }), "{e:?}");
    // Out of .NET's DateTimeOffset range once converted to UTC.
    assert!(parse_date("9999-12-31T23:00:00-14:00").is_err());
    assert!(parse_date("0001-01-01T00:00:00+14:00").is_err());
}

fn key_xml_text(id: Uuid, expiration: &str) -> String {
    format!(
        "<key id=\"{id}\" version=\"1\"><creationDate>2020-01-01T00:00:00Z</creationDate>\
         <activationDate>2020-01-01T00:00:00Z</activationDate>\
         <expirationDate>{expiration}</expirationDate>\
         <descriptor deserializerType=\"Microsoft.AspNetCore.DataProtection.AuthenticatedEncryption.ConfigurationModel.AuthenticatedEncryptorDescriptorDeserializer, Microsoft.AspNetCore.DataProtection, Version=4.0.0.0, Culture=neutral, PublicKeyToken=adb9793829ddae60\">\
         <descriptor><encryption algorithm=\"AES_256_CBC\" /><validation algorithm=\"HMACSHA256\" />\
         <masterKey p4:requiresEncryption=\"true\" xmlns:p4=\"http://schemas.asp.net/2015/03/dataProtection\">\
         <value>AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=</value></masterKey></descriptor></descriptor></key>"
    )
}

#[test]
fn key_set_problems_are_typed_and_the_latest_mass_revocation_is_found_once() {
    let (dup, bad) = (Uuid::new_v4(), Uuid::new_v4());
    let mass = |date: &str| {
        dataprotection::xml::Element::parse(&format!(
            "<revocation version=\"1\"><revocationDate>{date}</revocationDate>\
             <key id=\"*\" /><reason>test</reason></revocation>"
        ))
        .unwrap()
    };
    let elements = vec![
        dataprotection::xml::Element::parse(&key_xml_text(dup, "2030-01-01T00:00:00Z")).unwrap(),
        mass("2019-06-01T00:00:00Z"),
        dataprotection::xml::Element::parse(&key_xml_text(dup, "2031-01-01T00:00:00Z")).unwrap(),
        dataprotection::xml::Element::parse(&key_xml_text(bad, "not a date")).unwrap(),
        mass("2019-07-01T00:00:00Z"),
        mass("2019-05-01T00:00:00Z"),
    ];
    let set = KeySet::from_elements(&elements).unwrap();
    assert_eq!(set.keys.len(), 1);
    assert_eq!(set.duplicate_key_ids().collect::<Vec<_>>(), vec![dup]);
    assert_eq!(set.problems.len(), 2, "{:?}", set.problems);
    assert!(matches!(
        set.problems[0],
        KeySetProblem::DuplicateKey { key_id } if key_id == dup
    ));
    assert!(matches!(
        set.problems[1],
        KeySetProblem::MalformedKey { .. }
    ));
    assert_eq!(
        set.latest_mass_revocation(),
        Some(parse_date("2019-07-01T00:00:00Z").unwrap())
    );
    // The key was created in 2020, after every mass revocation.
    assert!(!set.keys[0].is_revoked());
}

#[tokio::test]
async fn a_key_with_a_multibyte_date_is_reported_never_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let id = Uuid::new_v4();
    std::fs::write(
        dir.path().join(format!("key-{id}.xml")),
        key_xml_text(id, "2030-01-01T00:00:00+0\u{e9}00"),
    )
    .unwrap();
    let repo = FileSystemXmlRepository::new(dir.path());
    let elements = repo.get_all_elements().await.unwrap();
    let set = KeySet::from_elements(&elements).unwrap();
    assert!(set.keys.is_empty());
    assert_eq!(set.problems.len(), 1, "{:?}", set.problems);
    // A provider over it loads (and replaces the unreadable key) without panicking.
    let provider = DataProtectionProvider::builder()
        .repository(Arc::new(repo))
        .build()
        .await
        .unwrap();
    let p = provider.create_protector("p");
    assert_eq!(p.unprotect(&p.protect(b"x").unwrap()).unwrap(), b"x");
}

#[test]
fn policy_arithmetic_saturates_at_the_end_of_time() {
    let end = OffsetDateTime::new_utc(
        time::Date::from_calendar_date(9999, time::Month::December, 31).unwrap(),
        time::Time::MIDNIGHT,
    );
    let key = KeyInfo {
        id: Uuid::from_u128(1),
        creation_date: end,
        activation_date: end,
        expiration_date: end,
        revoked: false,
    };
    let plan = policy::plan_new_key(
        std::slice::from_ref(&key),
        end,
        Duration::days(365 * 20_000),
        &|_| true,
    )
    .unwrap();
    assert!(plan.expiration_date >= end);
    let resolution = policy::resolve_default_key(&[key], OffsetDateTime::UNIX_EPOCH, &|_| true);
    assert!(resolution.default_key.is_none());
}

fn refused(e: &Error) -> Option<&UnsafeFileError> {
    match e {
        Error::Io { source, .. } => source.get_ref()?.downcast_ref::<UnsafeFileError>(),
        _ => None,
    }
}

/// Runs `f` on another thread and fails (instead of hanging the test run) if
/// it does not return: the guard is generous, the property is "does not block".
fn without_hanging<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(std::time::Duration::from_secs(120))
        .expect("the operation blocked")
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap()
}

fn mkfifo(path: &std::path::Path) {
    let status = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .unwrap();
    assert!(status.success(), "mkfifo {}", path.display());
}

#[test]
fn a_fifo_key_file_is_refused_without_blocking() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("key-x.xml");
    mkfifo(&fifo);
    let path = dir.path().to_path_buf();
    let e = without_hanging(move || {
        runtime().block_on(FileSystemXmlRepository::new(path).get_all_elements())
    })
    .unwrap_err();
    assert!(
        matches!(refused(&e), Some(UnsafeFileError::NotRegular { .. })),
        "{e:?}"
    );
    assert!(e.to_string().contains("key-x.xml"), "{e}");
    assert!(e.to_string().contains("FIFO"), "{e}");
}

#[test]
fn a_fifo_lock_file_is_refused_without_blocking() {
    let dir = tempfile::tempdir().unwrap();
    mkfifo(&dir.path().join(".dataprotection.lock"));
    let path = dir.path().to_path_buf();
    let e = without_hanging(move || {
        runtime().block_on(async move {
            let repo = FileSystemXmlRepository::new(path);
            repo.store_element_if(&Element::new("x"), "x", &|_| true)
                .await
        })
    })
    .unwrap_err();
    assert!(e.to_string().contains(".dataprotection.lock"), "{e}");
    assert!(
        std::fs::read_dir(dir.path()).unwrap().count() == 1,
        "nothing was written"
    );
}

#[cfg(unix)]
#[tokio::test]
async fn a_symlinked_lock_file_is_never_followed() {
    let dir = tempfile::tempdir().unwrap();
    let victim = dir.path().join("victim");
    std::os::unix::fs::symlink(&victim, dir.path().join(".dataprotection.lock")).unwrap();
    let repo = FileSystemXmlRepository::new(dir.path());
    let e = repo
        .store_element_if(&Element::new("x"), "x", &|_| true)
        .await
        .unwrap_err();
    assert!(e.to_string().contains(".dataprotection.lock"), "{e}");
    assert!(!victim.exists(), "the lock symlink was followed");
}

#[cfg(unix)]
#[tokio::test]
async fn devices_and_huge_files_are_refused_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink("/dev/zero", dir.path().join("key-zero.xml")).unwrap();
    let repo = FileSystemXmlRepository::new(dir.path());
    let e = repo.get_all_elements().await.unwrap_err();
    assert!(
        matches!(refused(&e), Some(UnsafeFileError::NotRegular { .. })),
        "{e:?}"
    );
    assert!(e.to_string().contains("key-zero.xml"), "{e}");

    let dir = tempfile::tempdir().unwrap();
    let mut big = b"<key>".to_vec();
    big.resize(2 * 1024 * 1024, b' ');
    big.extend_from_slice(b"</key>");
    std::fs::write(dir.path().join("key-big.xml"), &big).unwrap();
    let e = FileSystemXmlRepository::new(dir.path())
        .get_all_elements()
        .await
        .unwrap_err();
    assert!(
        matches!(refused(&e), Some(UnsafeFileError::TooLarge { .. })),
        "{e:?}"
    );
    assert!(e.to_string().contains("key-big.xml"), "{e}");
}

#[cfg(unix)]
#[tokio::test]
async fn a_symlinked_key_file_still_loads() {
    // Kubernetes secret and config-map mounts are symlinks to regular files.
    let store = tempfile::tempdir().unwrap();
    let ring = tempfile::tempdir().unwrap();
    let id = Uuid::new_v4();
    let target = store.path().join("..data-key");
    std::fs::write(&target, key_xml_text(id, "2030-01-01T00:00:00Z")).unwrap();
    std::os::unix::fs::symlink(&target, ring.path().join(format!("key-{id}.xml"))).unwrap();
    let elements = FileSystemXmlRepository::new(ring.path())
        .get_all_elements()
        .await
        .unwrap();
    let set = KeySet::from_elements(&elements).unwrap();
    assert_eq!(set.keys.len(), 1);
    assert_eq!(set.keys[0].id(), id);
}

/// 100,000 attributes on one element (the 1.1 MB key file of the report):
/// with quadratic duplicate detection this is 5·10⁹ comparisons.
#[test]
fn many_attributes_parse_in_linear_time() {
    let n = 100_000;
    let mut text = String::from("<key");
    for i in 0..n {
        text.push_str(&format!(" a{i}=\"1\""));
    }
    text.push_str(" />");
    let e = Element::parse(&text).unwrap();
    assert_eq!(e.attributes.len(), n);
    // A duplicate at the very end is still found.
    let dup = text.replace(" />", " a0=\"2\" />");
    assert!(Element::parse(&dup).is_err());

    // As many namespace declarations, each used by an attribute: resolving
    // a prefix must not scan every binding in scope.
    let mut text = String::from("<key");
    for i in 0..n {
        text.push_str(&format!(" xmlns:p{i}=\"urn:{i}\" p{i}:a=\"1\""));
    }
    text.push_str("><child p0:b=\"1\" /></key>");
    let e = Element::parse(&text).unwrap();
    assert_eq!(e.attributes.len(), 2 * n);
    assert_eq!(e.attr_ns(&format!("urn:{}", n - 1), "a"), Some("1"));
}

/// A blob-shaped document whose root declares many prefixes and holds many
/// children: each child must not copy the root's bindings.
#[test]
fn a_repository_with_many_declarations_and_children_parses_in_linear_time() {
    let n = 30_000;
    let mut text = String::from("<repository");
    for i in 0..n {
        text.push_str(&format!(" xmlns:p{i}=\"urn:{i}\""));
    }
    text.push('>');
    for i in 0..n {
        text.push_str(&format!("<p{i}:x />"));
    }
    text.push_str("</repository>");
    let doc = RepositoryDocument::parse(text.as_bytes()).unwrap();
    assert_eq!(doc.children().len(), n);
    assert_eq!(
        doc.elements()[n - 1].namespace(),
        Some(&*format!("urn:{}", n - 1))
    );
}

fn weak_key(id: Uuid, master: &[u8], now: OffsetDateTime) -> Element {
    KeyXml {
        id,
        creation_date: now - Duration::days(10),
        activation_date: now - Duration::days(10),
        expiration_date: now + Duration::days(80),
        descriptor: descriptor_element(Algorithm::default(), &Secret::new(master.to_vec())),
    }
    .to_element()
}

/// A payload made with `master` under `id`, as any writer would have made it.
fn payload_under(id: Uuid, master: &[u8], purposes: &[&str], plaintext: &[u8]) -> Vec<u8> {
    let encryptor = Algorithm::default().encryptor(&Secret::new(master.to_vec()));
    let aad = additional_authenticated_data(&id, purposes);
    let mut out = MAGIC_HEADER.to_vec();
    out.extend_from_slice(&key_id_bytes(&id));
    out.extend_from_slice(&encryptor.encrypt(plaintext, &aad).unwrap());
    out
}

#[tokio::test]
async fn a_weak_master_key_is_never_the_default_but_still_unprotects() {
    let now = OffsetDateTime::now_utc();
    let weak = Uuid::new_v4();
    let repo = Arc::new(InMemoryXmlRepository::new());
    repo.store_element(&weak_key(weak, &[7], now), "key-weak")
        .await
        .unwrap();
    let old = payload_under(weak, &[7], &["p"], b"old secret");

    // A read-only consumer loads the ring and unprotects, creating nothing,
    // but refuses to protect with the weak key.
    let reader = DataProtectionProvider::builder()
        .repository(repo.clone())
        .unprotect_only(true)
        .build()
        .await
        .unwrap();
    let p = reader.create_protector("p");
    assert_eq!(p.unprotect(&old).unwrap(), b"old secret");
    assert!(matches!(p.protect(b"x"), Err(Error::NoDefaultKey { .. })));
    assert_eq!(repo.get_all_elements().await.unwrap().len(), 1);

    // A normal provider creates a proper key instead of using the weak one.
    let provider = DataProtectionProvider::builder()
        .repository(repo.clone())
        .build()
        .await
        .unwrap();
    let default = provider.key_ring().unwrap().default_key_id().unwrap();
    assert_ne!(default, weak);
    let p = provider.create_protector("p");
    let fresh = p.protect(b"new").unwrap();
    assert_eq!(
        dataprotection::payload::read_header(&fresh).unwrap(),
        default
    );
    assert_eq!(p.unprotect(&old).unwrap(), b"old secret");

    // Exactly 128 bits is accepted.
    let repo = Arc::new(InMemoryXmlRepository::new());
    let ok = Uuid::new_v4();
    repo.store_element(&weak_key(ok, &[9; 16], now), "key-ok")
        .await
        .unwrap();
    let provider = DataProtectionProvider::builder()
        .repository(repo)
        .auto_generate_keys(false)
        .build()
        .await
        .unwrap();
    assert_eq!(provider.key_ring().unwrap().default_key_id(), Some(ok));
}
