//! The XML samples: every one parses, and the writer reproduces .NET's bytes.
#![allow(clippy::unwrap_used)]

mod common;

use common::{load, vector_path};
use dataprotection::KeySet;
use dataprotection::crypto::{AesKeySize, Algorithm, Secret, ValidationAlgorithm};
use dataprotection::encryption::{DecryptorRegistry, NullXmlEncryptor, encrypt_if_necessary};
use dataprotection::xml::{
    DescriptorKind, Element, Format, KeyXml, RepositoryDocument, RevocationTarget, RevocationXml,
    descriptor_element, parse_date, read_descriptor,
};
use uuid::Uuid;

fn read(name: &str) -> Vec<u8> {
    std::fs::read(vector_path("xml").join(name)).unwrap()
}

fn master() -> Secret {
    Secret::new((0u8..64).collect())
}

fn key_xml(id: &str, algorithm: Algorithm, dates: [&str; 3]) -> KeyXml {
    KeyXml {
        id: Uuid::parse_str(id).unwrap(),
        creation_date: parse_date(dates[0]).unwrap(),
        activation_date: parse_date(dates[1]).unwrap(),
        expiration_date: parse_date(dates[2]).unwrap(),
        descriptor: descriptor_element(algorithm, &master()),
    }
}

const DATES_2015: [&str; 3] = [
    "2015-03-19T23:32:02.3949887Z",
    "2015-03-19T23:32:02.3839429Z",
    "2015-06-17T23:32:02.3839429Z",
];

#[test]
fn default_key_is_written_byte_for_byte() {
    let xml = key_xml(
        "ba73c9ce-d322-4e45-af90-341307e11c04",
        Algorithm::default(),
        DATES_2015,
    );
    assert_eq!(
        xml.to_element().to_document_bytes(Format::Indented),
        read("key-default-aes256cbc-hmacsha256.xml")
    );
    let parsed = KeyXml::from_element(
        &Element::parse_bytes(&read("key-default-aes256cbc-hmacsha256.xml")).unwrap(),
    )
    .unwrap();
    assert_eq!(parsed, xml);
    let d = read_descriptor(&parsed.descriptor).unwrap();
    assert_eq!(d.kind, DescriptorKind::Default);
    assert_eq!(d.algorithm, Algorithm::default());
    assert_eq!(d.master_key, master());
}

#[test]
fn gcm_key_is_written_byte_for_byte() {
    let alg = Algorithm::Gcm {
        aes: AesKeySize::Aes256,
    };
    let xml = key_xml("ba73c9ce-d322-4e45-af90-341307e11c08", alg, DATES_2015);
    assert_eq!(
        xml.to_element().to_document_bytes(Format::Indented),
        read("key-aes256gcm.xml")
    );
    let parsed = Element::parse_bytes(&read("key-aes256gcm.xml")).unwrap();
    assert_eq!(
        read_descriptor(&KeyXml::from_element(&parsed).unwrap().descriptor)
            .unwrap()
            .algorithm,
        alg
    );
}

#[test]
fn managed_descriptor_is_read() {
    let e = Element::parse_bytes(&read("key-managed-descriptor.xml")).unwrap();
    let key = KeyXml::from_element(&e).unwrap();
    let d = read_descriptor(&key.descriptor).unwrap();
    assert_eq!(d.kind, DescriptorKind::Managed);
    assert_eq!(
        d.algorithm,
        Algorithm::CbcHmac {
            aes: AesKeySize::Aes256,
            mac: ValidationAlgorithm::HmacSha256
        }
    );
}

#[tokio::test]
async fn null_encryptor_is_written_and_read_byte_for_byte() {
    let plain = key_xml(
        "3d6d01fd-c0e7-44ae-82dd-013b996b4093",
        Algorithm::default(),
        [
            "2014-01-01T00:00:00Z",
            "2014-02-01T00:00:00Z",
            "2014-03-01T00:00:00Z",
        ],
    )
    .to_element();
    let encrypted = encrypt_if_necessary(&plain, &NullXmlEncryptor)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        encrypted.to_document_bytes(Format::Indented),
        read("key-null-xml-encryptor.xml")
    );

    let stored = Element::parse_bytes(&read("key-null-xml-encryptor.xml")).unwrap();
    let key = KeyXml::from_element(&stored).unwrap();
    assert!(read_descriptor(&key.descriptor).is_err(), "still encrypted");
    let decrypted = DecryptorRegistry::default()
        .decrypt_element(&key.descriptor)
        .await
        .unwrap();
    assert_eq!(read_descriptor(&decrypted).unwrap().master_key, master());
    assert_eq!(decrypted, KeyXml::from_element(&plain).unwrap().descriptor);
}

#[test]
fn revocations_are_written_byte_for_byte() {
    let single = RevocationXml {
        date: parse_date("2014-01-01T00:00:00Z").unwrap(),
        target: RevocationTarget::Key(
            Uuid::parse_str("a11f35fc-1fed-4bd4-b727-056a63b70932").unwrap(),
        ),
        reason: Some("Here's some reason text.".into()),
    };
    assert_eq!(
        single.to_element().to_document_bytes(Format::Indented),
        read("revocation-single.xml")
    );
    assert_eq!(
        single.friendly_name(),
        "revocation-a11f35fc-1fed-4bd4-b727-056a63b70932"
    );
    let mass = RevocationXml {
        date: parse_date("2015-03-01T19:13:19.7573854-08:00").unwrap(),
        target: RevocationTarget::AllCreatedBefore,
        reason: Some("Here's some reason text.".into()),
    };
    assert_eq!(
        mass.to_element().to_document_bytes(Format::Indented),
        read("revocation-all-before-date.xml")
    );
    assert_eq!(mass.friendly_name(), "revocation-20150302T0313197573854Z");
    for (file, expected) in [
        ("revocation-single.xml", &single),
        ("revocation-all-before-date.xml", &mass),
    ] {
        let e = Element::parse_bytes(&read(file)).unwrap();
        assert_eq!(&RevocationXml::from_element(&e).unwrap(), expected);
    }
    // A null reason is an empty <reason />.
    let no_reason = RevocationXml {
        reason: None,
        ..single
    };
    assert!(
        no_reason
            .to_element()
            .to_xml(Format::Compact)
            .ends_with("<reason /></revocation>")
    );
}

#[test]
fn blob_repository_document_is_read() {
    let doc = RepositoryDocument::parse(&read("repository-blob.xml")).unwrap();
    assert_eq!(doc.children().len(), 2);
    let set = KeySet::from_elements(&doc.elements()).unwrap();
    assert_eq!(set.keys.len(), 1);
    assert_eq!(set.revocations.len(), 1);
    // Rewriting without changes reproduces the document exactly.
    assert_eq!(doc.to_bytes(), read("repository-blob.xml"));
}

#[test]
fn keyring_directory_keys_all_parse() {
    let dir = vector_path("keyring");
    let mut n = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        assert!(
            bytes.starts_with(b"\xEF\xBB\xBF<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<key ")
        );
        let key = KeyXml::from_element(&Element::parse_bytes(&bytes).unwrap()).unwrap();
        read_descriptor(&key.descriptor).unwrap();
        n += 1;
    }
    assert_eq!(n, 9);
}

#[test]
fn tolerant_reader() {
    // CRLF, another prefix, comments, whitespace inside Base64, 3 fraction
    // digits and an offset, no declaration, no BOM.
    let text = "<!-- hello -->\r\n<key id=\"ba73c9ce-d322-4e45-af90-341307e11c04\" version=\"1\">\r\n\
        <creationDate>2015-03-19T23:32:02.394+01:00</creationDate>\r\n\
        <activationDate>2015-03-19T23:32:02Z</activationDate><expirationDate>2015-06-17T23:32:02.3839429Z</expirationDate>\r\n\
        <descriptor deserializerType=\"Microsoft.AspNet.DataProtection.AuthenticatedEncryption.ConfigurationModel.AuthenticatedEncryptorDescriptorDeserializer, Microsoft.AspNet.DataProtection, Version=1.0.0.0\">\r\n\
        <descriptor><encryption algorithm=\"AES_128_GCM\"/><!-- x --><masterKey p6:requiresEncryption=\"1\" xmlns:p6=\"http://schemas.asp.net/2015/03/dataProtection\">\r\n\
        <value>AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8g\r\n  ISIjJCUmJygpKissLS4vMDEyMzQ1Njc4OTo7PD0+Pw==</value></masterKey></descriptor></descriptor></key>";
    let key = KeyXml::from_element(&Element::parse(text).unwrap()).unwrap();
    assert_eq!(key.creation_date.offset().whole_hours(), 1);
    let d = read_descriptor(&key.descriptor).unwrap();
    assert_eq!(
        d.algorithm,
        Algorithm::Gcm {
            aes: AesKeySize::Aes128
        }
    );
    assert_eq!(d.master_key, master());
}

#[test]
fn malformed_xml_names_the_element() {
    let bad_date = "<key id=\"ba73c9ce-d322-4e45-af90-341307e11c04\"><creationDate>yesterday</creationDate></key>";
    let err = KeyXml::from_element(&Element::parse(bad_date).unwrap()).unwrap_err();
    assert!(err.to_string().contains("<creationDate>"), "{err}");
    let bad_id = "<key id=\"nope\"/>";
    let err = KeyXml::from_element(&Element::parse(bad_id).unwrap()).unwrap_err();
    assert!(
        err.to_string().contains("<key>") && err.to_string().contains("GUID"),
        "{err}"
    );
    let missing = "<revocation><revocationDate>2015-01-01T00:00:00Z</revocationDate></revocation>";
    let err = RevocationXml::from_element(&Element::parse(missing).unwrap()).unwrap_err();
    assert!(err.to_string().contains("missing <key>"), "{err}");
    let dtd = "<!DOCTYPE key [<!ENTITY e SYSTEM \"file:///etc/passwd\">]><key>&e;</key>";
    assert!(Element::parse(dtd).unwrap_err().to_string().contains("DTD"));
}

#[test]
fn revocation_semantics() {
    let v = load("revocation_semantics.json");
    let mut elements = Vec::new();
    for k in v["keys"].as_array().unwrap() {
        let mut xml = key_xml(k["id"].as_str().unwrap(), Algorithm::default(), DATES_2015);
        xml.creation_date = parse_date(k["created"].as_str().unwrap()).unwrap();
        elements.push(xml.to_element());
    }
    for r in v["revocations"].as_array().unwrap() {
        let target = match r["key"].as_str().unwrap() {
            "*" => RevocationTarget::AllCreatedBefore,
            id => RevocationTarget::Key(Uuid::parse_str(id).unwrap()),
        };
        let date = parse_date(r["date"].as_str().unwrap()).unwrap();
        elements.push(
            RevocationXml {
                date,
                target,
                reason: None,
            }
            .to_element(),
        );
    }
    elements.push(Element::new("somethingElse"));
    let set = KeySet::from_elements(&elements).unwrap();
    let mut revoked: Vec<String> = set
        .keys
        .iter()
        .filter(|k| k.is_revoked())
        .map(|k| k.id().to_string())
        .collect();
    revoked.sort();
    let expected: Vec<String> = v["expected_revoked"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap().to_string())
        .collect();
    assert_eq!(revoked, expected);
    assert_eq!(set.foreign_elements, 1);
}
