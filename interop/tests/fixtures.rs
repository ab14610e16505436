//! The committed fixtures still decode as their manifests state, regenerating
//! them changes nothing, and the verifier catches what is wrong.
#![allow(clippy::unwrap_used, missing_docs)]

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use dataprotection_interop::manifest::{CaseKind, Expect, KeyEncryption};
use dataprotection_interop::{
    InteropError, Manifest, dotnet_fixtures_dir, generate, read_manifest, rust_fixtures_dir,
    verify, verify_manifest,
};

fn failed_subjects(
    result: Result<dataprotection_interop::VerifiedCounts, InteropError>,
) -> Vec<String> {
    match result {
        Err(InteropError::Verification { failures }) => {
            failures.into_iter().map(|f| f.subject).collect()
        }
        other => panic!("expected a verification failure, got {other:?}"),
    }
}

#[tokio::test]
async fn committed_rust_fixtures_verify() {
    let dir = rust_fixtures_dir();
    let manifest = read_manifest(&dir).unwrap();
    let counts = match verify(&dir).await {
        Ok(counts) => counts,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(counts.rings, manifest.rings.len());
    assert_eq!(counts.cases, manifest.cases.len());
}

#[test]
fn committed_manifest_covers_what_the_cross_check_needs() {
    let manifest = read_manifest(&rust_fixtures_dir()).unwrap();
    let algorithms: HashSet<(String, Option<String>)> = manifest
        .rings
        .iter()
        .flat_map(|r| {
            r.keys
                .iter()
                .map(|k| (k.encryption.clone(), k.validation.clone()))
        })
        .collect();
    assert!(algorithms.len() >= 9, "every algorithm: {algorithms:?}");
    let kinds: HashSet<CaseKind> = manifest.cases.iter().map(|c| c.kind).collect();
    for kind in [
        CaseKind::Payload,
        CaseKind::TimeLimited,
        CaseKind::Cookie,
        CaseKind::OidcState,
        CaseKind::IdentityToken,
    ] {
        assert!(kinds.contains(&kind), "no {kind:?} case");
    }
    let cookies: Vec<_> = manifest
        .cases
        .iter()
        .filter(|c| c.kind == CaseKind::Cookie)
        .collect();
    assert!(cookies.len() >= 3, "several tickets");
    assert!(
        cookies
            .iter()
            .any(|c| c.cookies.as_ref().is_some_and(|chunks| chunks.len() > 2)),
        "a chunked cookie"
    );
    let key_vault: Vec<_> = manifest
        .rings
        .iter()
        .filter(|r| r.key_encryption == KeyEncryption::AzureKeyVault)
        .collect();
    assert!(!key_vault.is_empty(), "a Key Vault-wrapped ring");
    for ring in key_vault {
        let pem = ring.test_rsa_private_key.as_deref().unwrap();
        assert!(
            pem.starts_with("keys/") && pem.contains("test-only"),
            "{pem}"
        );
        assert!(
            manifest
                .cases
                .iter()
                .any(|c| c.ring == ring.name && c.expect == Expect::Ok)
        );
    }
    assert!(manifest.rings.iter().any(|r| r.document.is_some()));
    assert!(
        manifest
            .rings
            .iter()
            .any(|r| r.keys.iter().any(|k| k.revoked))
    );
    let refused: HashSet<CaseKind> = manifest
        .cases
        .iter()
        .filter(|c| c.expect == Expect::Error)
        .map(|c| c.kind)
        .collect();
    assert!(refused.contains(&CaseKind::Payload) && refused.contains(&CaseKind::TimeLimited));
    let sizes: HashSet<usize> = manifest
        .cases
        .iter()
        .filter_map(|c| c.plaintext_hex.as_ref().map(|h| h.len() / 2))
        .collect();
    assert!(sizes.contains(&0) && sizes.contains(&102_400), "{sizes:?}");
}

fn files_under(root: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            // Hidden files (the file-system repository's lock file) are not
            // fixtures and are not committed.
            if path.file_name().unwrap().to_string_lossy().starts_with('.') {
                continue;
            }
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                let name = path
                    .strip_prefix(root)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                out.insert(name, std::fs::read(&path).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

fn copy_tree(from: &Path, to: &Path) {
    for (name, bytes) in files_under(from) {
        let target = to.join(name);
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::fs::write(target, bytes).unwrap();
    }
}

/// Regenerating over a copy of the committed fixtures reproduces them byte
/// for byte: a change of the files is a change of the code that writes them.
#[tokio::test]
async fn regenerating_reproduces_the_committed_fixtures() {
    let committed = rust_fixtures_dir();
    let temp = tempfile::tempdir().unwrap();
    copy_tree(&committed, temp.path());
    generate(temp.path()).await.unwrap();
    let expected = files_under(&committed);
    let actual = files_under(temp.path());
    let expected_names: Vec<_> = expected.keys().collect();
    let actual_names: Vec<_> = actual.keys().collect();
    assert_eq!(
        actual_names, expected_names,
        "regeneration writes other files"
    );
    for (name, bytes) in &expected {
        assert!(
            actual[name] == *bytes,
            "{name} differs after regeneration: run `cargo run -p dataprotection-interop --bin generate-fixtures` and commit"
        );
    }
}

/// A fresh generation (new RSA key, nothing to reuse) verifies too.
#[tokio::test]
async fn a_fresh_generation_verifies() {
    let temp = tempfile::tempdir().unwrap();
    let manifest = generate(temp.path()).await.unwrap();
    let counts = verify(temp.path()).await.unwrap();
    assert_eq!(counts.cases, manifest.cases.len());
}

/// What .NET writes back: verified when present; until then the directory
/// holds only its README.
#[tokio::test]
async fn dotnet_fixtures_verify_when_present() {
    let dir = dotnet_fixtures_dir();
    if dir.join("manifest.json").exists() {
        let manifest = read_manifest(&dir).unwrap();
        let counts = match verify(&dir).await {
            Ok(counts) => counts,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(counts.cases, manifest.cases.len());
    } else {
        let names: Vec<_> = files_under(&dir).into_keys().collect();
        assert_eq!(
            names,
            ["README.md"],
            "fixtures without a manifest.json in {}",
            dir.display()
        );
    }
}

/// `ring_failure`, then `case <name>` for every case of the ring `ring`:
/// what fails when a ring does not verify.
fn ring_and_its_cases(manifest: &Manifest, ring_failure: String, ring: &str) -> Vec<String> {
    let mut subjects = vec![ring_failure];
    subjects.extend(
        manifest
            .cases
            .iter()
            .filter(|c| c.ring == ring)
            .map(|c| format!("case {}", c.name)),
    );
    subjects
}

fn committed() -> Manifest {
    read_manifest(&rust_fixtures_dir()).unwrap()
}

#[tokio::test]
async fn a_tampered_value_fails() {
    let mut manifest = committed();
    let case = manifest
        .cases
        .iter_mut()
        .find(|c| c.expect == Expect::Ok && c.kind == CaseKind::Payload)
        .unwrap();
    // Flip one character of the body (past the 20-byte header).
    let mut chars: Vec<char> = case.value.chars().collect();
    chars[40] = if chars[40] == 'A' { 'B' } else { 'A' };
    case.value = chars.into_iter().collect();
    let name = format!("case {}", case.name);
    let subjects = failed_subjects(verify_manifest(&rust_fixtures_dir(), &manifest).await);
    assert_eq!(subjects, [name]);
}

#[tokio::test]
async fn a_wrong_plaintext_or_expiration_fails() {
    let mut manifest = committed();
    let payload = manifest
        .cases
        .iter_mut()
        .find(|c| {
            c.expect == Expect::Ok && c.plaintext_hex.as_deref().is_some_and(|h| !h.is_empty())
        })
        .unwrap();
    payload.plaintext_hex = Some("00".into());
    let payload_name = format!("case {}", payload.name);
    let timed = manifest
        .cases
        .iter_mut()
        .find(|c| c.expect == Expect::Ok && c.kind == CaseKind::TimeLimited)
        .unwrap();
    timed.expires_utc = Some("2098-12-31T23:59:59Z".into());
    let timed_name = format!("case {}", timed.name);
    let subjects = failed_subjects(verify_manifest(&rust_fixtures_dir(), &manifest).await);
    assert_eq!(subjects, [payload_name, timed_name]);
}

#[tokio::test]
async fn a_refused_case_that_decodes_fails() {
    let mut manifest = committed();
    let revoked = manifest
        .cases
        .iter_mut()
        .find(|c| c.expect == Expect::Error && c.kind == CaseKind::Payload)
        .unwrap();
    // Stated under the purposes it was protected with, it must still be refused...
    let name = format!("case {}", revoked.name);
    // ... so pretend it should decode: the verifier must disagree.
    revoked.expect = Expect::Ok;
    revoked.plaintext_hex = Some(hex::encode("Hello from dataprotection-rs"));
    let subjects = failed_subjects(verify_manifest(&rust_fixtures_dir(), &manifest).await);
    assert_eq!(subjects, [name]);

    // And a valid payload stated as refused fails as well.
    let mut manifest = committed();
    let ok = manifest
        .cases
        .iter_mut()
        .find(|c| c.expect == Expect::Ok)
        .unwrap();
    ok.expect = Expect::Error;
    let name = format!("case {}", ok.name);
    let subjects = failed_subjects(verify_manifest(&rust_fixtures_dir(), &manifest).await);
    assert_eq!(subjects, [name]);
}

#[tokio::test]
async fn a_case_without_its_ring_fails() {
    let mut manifest = committed();
    let removed = manifest.rings.remove(0);
    let orphans: Vec<String> = manifest
        .cases
        .iter()
        .filter(|c| c.ring == removed.name)
        .map(|c| format!("case {}", c.name))
        .collect();
    assert!(!orphans.is_empty());
    let subjects = failed_subjects(verify_manifest(&rust_fixtures_dir(), &manifest).await);
    assert_eq!(subjects, orphans);
}

#[tokio::test]
async fn a_ring_that_differs_from_its_directory_fails_with_its_cases() {
    let dir = rust_fixtures_dir();
    let base = committed();

    let mut missing_key = base.clone();
    missing_key.rings[0].keys.clear();
    let mut wrong_default = base.clone();
    let other = base.rings[1].keys[0].id.clone();
    wrong_default.rings[0].default_key.id = other;
    let mut wrong_date = base.clone();
    wrong_date.rings[0].keys[0].expiration_date = "2098-01-01T00:00:00Z".into();
    let mut wrong_revoked = base.clone();
    wrong_revoked.rings[0].keys[0].revoked = true;
    let mut wrong_algorithm = base.clone();
    wrong_algorithm.rings[0].keys[0].encryption = "AES_256_GCM".into();
    let mut missing_dir = base.clone();
    missing_dir.rings[0].dir = "rings/does-not-exist".into();

    let name = &base.rings[0].name;
    let expected = ring_and_its_cases(&base, format!("ring {name}"), name);
    for manifest in [
        missing_key,
        wrong_default,
        wrong_date,
        wrong_revoked,
        wrong_algorithm,
        missing_dir,
    ] {
        let subjects = failed_subjects(verify_manifest(&dir, &manifest).await);
        assert_eq!(subjects, expected);
    }
}

#[tokio::test]
async fn a_key_vault_ring_under_another_kid_fails() {
    let mut manifest = committed();
    let ring = manifest
        .rings
        .iter_mut()
        .find(|r| r.key_encryption == KeyEncryption::AzureKeyVault)
        .unwrap();
    ring.key_vault_key_id = Some("https://elsewhere.vault.azure.net/keys/other/1".into());
    let name = ring.name.clone();
    let subjects = failed_subjects(verify_manifest(&rust_fixtures_dir(), &manifest).await);
    let expected = ring_and_its_cases(&manifest, format!("ring {name}"), &name);
    assert_eq!(subjects, expected);
}

#[tokio::test]
async fn a_different_ticket_properties_or_token_fails() {
    let mut manifest = committed();
    let mut expected = Vec::new();
    for case in &mut manifest.cases {
        if let Some(ticket) = &mut case.ticket
            && expected.iter().all(|n: &String| !n.contains("cookie"))
        {
            ticket.identities[0].claims[0].value.push('!');
            expected.push(format!("case {}", case.name));
        } else if let Some(properties) = &mut case.properties {
            properties.set(".redirect", "/elsewhere");
            expected.push(format!("case {}", case.name));
        } else if let Some(token) = &mut case.token
            && expected.iter().all(|n| !n.contains("identity-token"))
        {
            token.created_utc = "2025-01-04T00:00:00Z".into();
            expected.push(format!("case {}", case.name));
        }
    }
    assert_eq!(expected.len(), 3);
    let subjects = failed_subjects(verify_manifest(&rust_fixtures_dir(), &manifest).await);
    assert_eq!(subjects, expected);
}

#[tokio::test]
async fn a_chunked_cookie_missing_a_chunk_fails() {
    let mut manifest = committed();
    let case = manifest
        .cases
        .iter_mut()
        .find(|c| c.cookies.as_ref().is_some_and(|chunks| chunks.len() > 2))
        .unwrap();
    case.cookies.as_mut().unwrap().pop();
    let name = format!("case {}", case.name);
    let subjects = failed_subjects(verify_manifest(&rust_fixtures_dir(), &manifest).await);
    assert_eq!(subjects, [name]);
}

#[tokio::test]
async fn an_x509_ring_with_a_key_that_is_not_its_certificates_fails() {
    let mut manifest = committed();
    let key_vault_pem = manifest
        .rings
        .iter()
        .find(|r| r.key_encryption == KeyEncryption::AzureKeyVault)
        .and_then(|r| r.test_rsa_private_key.clone())
        .unwrap();
    let ring = manifest
        .rings
        .iter_mut()
        .find(|r| r.key_encryption == KeyEncryption::X509)
        .unwrap();
    ring.test_rsa_private_key = Some(key_vault_pem);
    let name = ring.name.clone();
    let expected = ring_and_its_cases(&manifest, format!("ring {name}"), &name);
    let subjects = failed_subjects(verify_manifest(&rust_fixtures_dir(), &manifest).await);
    assert_eq!(subjects, expected);
}

#[tokio::test]
async fn a_ring_whose_document_is_missing_fails_with_its_cases() {
    let mut manifest = committed();
    let ring = manifest
        .rings
        .iter_mut()
        .find(|r| r.document.is_some())
        .unwrap();
    ring.document = Some("documents/does-not-exist.xml".into());
    let name = ring.name.clone();
    let expected = ring_and_its_cases(&manifest, format!("ring {name} (document)"), &name);
    let subjects = failed_subjects(verify_manifest(&rust_fixtures_dir(), &manifest).await);
    assert_eq!(subjects, expected);
}
