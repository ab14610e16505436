//! CertificateXmlEncryptor / EncryptedXmlDecryptor: known answers, .NET-shaped
//! documents, round trips, tampering and missing certificates.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use common::{ScriptedRandom, cert_only, cert_with_key, data, vector};
use dataprotection::Error;
use dataprotection::crypto::Secret;
use dataprotection::encryption::{DecryptorRegistry, XmlDecryptor, XmlEncryptor};
use dataprotection::xml::{Element, Format, master_key_element, read_descriptor};
use dataprotection_x509::{
    Certificate, CertificateXmlEncryptor, ENCRYPTED_XML_DECRYPTOR_TYPE, EncryptedXmlDecryptor,
    X509Error, XMLDSIG_NS, XMLENC_NS, XMLENC_RSA_1_5, dotnet_outer_xml, encrypted_data,
};
use serde::Deserialize;

#[derive(Deserialize)]
struct Vectors {
    source: String,
    known_answer: KnownAnswer,
    dotnet_documents: Vec<DotnetDocument>,
}

#[derive(Deserialize)]
struct KnownAnswer {
    certificate: String,
    private_key: String,
    master_key_base64: String,
    plaintext: String,
    aes_key_hex: String,
    iv_hex: String,
    padding_filler_hex: String,
    cipher_value_base64: String,
}

#[derive(Deserialize)]
struct DotnetDocument {
    file: String,
    private_key: String,
    master_key_base64: String,
}

fn vectors() -> Vectors {
    let v: Vectors = serde_json::from_str(
        &std::fs::read_to_string(vector("certificate_xml_encryption.json")).unwrap(),
    )
    .unwrap();
    assert!(!v.source.is_empty());
    v
}

fn master_key(b64: &str) -> Secret {
    Secret::new(STANDARD.decode(b64).unwrap())
}

fn child<'a>(e: &'a Element, ns: &str, name: &str) -> &'a Element {
    e.elements()
        .find(|c| c.is_ns(ns, name))
        .unwrap_or_else(|| panic!("no <{name}> in <{}>", e.name()))
}

#[test]
fn plaintext_is_what_dotnet_serializes() {
    let v = vectors().known_answer;
    let element = master_key_element(&master_key(&v.master_key_base64));
    assert_eq!(dotnet_outer_xml(&element), v.plaintext);
}

#[tokio::test]
async fn known_answer_with_fixed_key_iv_and_padding() {
    let v = vectors().known_answer;
    let cert = Certificate::from_pem_file(data(&v.certificate)).unwrap();
    let random = ScriptedRandom::new(vec![
        hex::decode(&v.aes_key_hex).unwrap(),
        hex::decode(&v.iv_hex).unwrap(),
        hex::decode(&v.padding_filler_hex).unwrap(),
    ]);
    let encryptor = CertificateXmlEncryptor::new(cert.clone()).with_random(Arc::new(random));
    let encrypted = encryptor
        .encrypt(&master_key_element(&master_key(&v.master_key_base64)))
        .await
        .unwrap();
    assert_eq!(encrypted.decryptor_type, ENCRYPTED_XML_DECRYPTOR_TYPE);
    let e = &encrypted.element;
    let content = child(child(e, XMLENC_NS, "CipherData"), XMLENC_NS, "CipherValue").text();
    assert_eq!(content, v.cipher_value_base64);

    // Everything but the RSA ciphertext (randomised inside AWS-LC) is fixed:
    // compare with the expected element, with that ciphertext substituted.
    let key_info = child(e, XMLDSIG_NS, "KeyInfo");
    let encrypted_key = child(key_info, XMLENC_NS, "EncryptedKey");
    let wrapped = child(
        child(encrypted_key, XMLENC_NS, "CipherData"),
        XMLENC_NS,
        "CipherValue",
    )
    .text();
    let cert_b64 = STANDARD.encode(cert.der());
    let expected = format!(
        r#"<EncryptedData Type="http://www.w3.org/2001/04/xmlenc#Element" xmlns="http://www.w3.org/2001/04/xmlenc#"><EncryptionMethod Algorithm="http://www.w3.org/2001/04/xmlenc#aes256-cbc" /><KeyInfo xmlns="http://www.w3.org/2000/09/xmldsig#"><EncryptedKey xmlns="http://www.w3.org/2001/04/xmlenc#"><EncryptionMethod Algorithm="http://www.w3.org/2001/04/xmlenc#rsa-1_5" /><KeyInfo xmlns="http://www.w3.org/2000/09/xmldsig#"><X509Data><X509Certificate>{cert_b64}</X509Certificate></X509Data></KeyInfo><CipherData><CipherValue>{wrapped}</CipherValue></CipherData></EncryptedKey></KeyInfo><CipherData><CipherValue>{}</CipherValue></CipherData></EncryptedData>"#,
        v.cipher_value_base64
    );
    assert_eq!(e.to_xml(Format::Compact), expected);

    // The wrapped key is the fixed AES key under the certificate's RSA key
    // (PKCS#1 v1.5): decrypting the whole element proves it.
    let with_key = Certificate::from_pem_files(data(&v.certificate), data(&v.private_key)).unwrap();
    let decrypted = EncryptedXmlDecryptor::new([with_key])
        .decrypt(e)
        .await
        .unwrap();
    assert_eq!(decrypted.to_xml(Format::Compact), v.plaintext);
}

#[tokio::test]
async fn dotnet_shaped_documents_decrypt_rsa15_and_oaep() {
    let v = vectors();
    assert_eq!(v.dotnet_documents.len(), 2);
    for doc in v.dotnet_documents {
        let text = std::fs::read_to_string(vector(&doc.file)).unwrap();
        let key = Element::parse(&text).unwrap();
        let descriptor = key.child("descriptor").unwrap();
        let with_key =
            Certificate::from_pem_files(data("test-only-cert1.pem"), data(&doc.private_key))
                .unwrap();
        let mut registry = DecryptorRegistry::new();
        registry.register(
            ENCRYPTED_XML_DECRYPTOR_TYPE,
            Arc::new(EncryptedXmlDecryptor::new([with_key])),
        );
        let decrypted = registry.decrypt_element(descriptor).await.unwrap();
        let read = read_descriptor(&decrypted).unwrap();
        assert_eq!(
            STANDARD.encode(read.master_key.expose()),
            doc.master_key_base64,
            "{}",
            doc.file
        );
        // The decrypted <masterKey> keeps .NET's d1p1 prefix.
        assert!(
            decrypted
                .to_xml(Format::Compact)
                .contains("d1p1:requiresEncryption"),
            "{}",
            doc.file
        );
    }
}

#[tokio::test]
async fn round_trip_pem_and_pfx() {
    let plaintext = master_key_element(&Secret::new(vec![7u8; 64]));
    let pfx =
        Certificate::from_pkcs12_file(data("test-only-cert1.pfx"), "test-only-password").unwrap();
    let legacy =
        Certificate::from_pkcs12_file(data("test-only-cert1-legacy.pfx"), "test-only-password")
            .unwrap();
    let pem = cert_with_key(1);
    assert_eq!(pfx.thumbprint(), pem.thumbprint());
    assert_eq!(legacy.thumbprint(), pem.thumbprint());
    // Encrypt with any form (even without the private key), decrypt with any other.
    for encrypt_with in [cert_only(1), pem.clone(), pfx.clone()] {
        let encrypted = CertificateXmlEncryptor::new(encrypt_with)
            .encrypt(&plaintext)
            .await
            .unwrap();
        for decrypt_with in [pem.clone(), pfx.clone(), legacy.clone()] {
            let back = EncryptedXmlDecryptor::new([decrypt_with])
                .decrypt(&encrypted.element)
                .await
                .unwrap();
            assert_eq!(back.to_xml(Format::Compact), dotnet_outer_xml(&plaintext));
            let value = back.child("value").unwrap().text();
            assert_eq!(STANDARD.decode(value).unwrap(), vec![7u8; 64]);
        }
    }
}

#[tokio::test]
async fn every_length_pads_and_unpads() {
    let cert = cert_with_key(2);
    let decryptor = EncryptedXmlDecryptor::new([cert.clone()]);
    let encryptor = CertificateXmlEncryptor::new(cert);
    for n in 1..40 {
        let element = Element::new("v").with_text("x".repeat(n));
        let encrypted = encryptor.encrypt(&element).await.unwrap();
        let back = decryptor.decrypt(&encrypted.element).await.unwrap();
        assert_eq!(
            back.to_xml(Format::Compact),
            element.to_xml(Format::Compact),
            "length {n}"
        );
    }
}

#[tokio::test]
async fn key_of_an_unconfigured_certificate_names_it() {
    let plaintext = master_key_element(&Secret::new(vec![1u8; 64]));
    let encrypted = CertificateXmlEncryptor::new(cert_only(1))
        .encrypt(&plaintext)
        .await
        .unwrap();
    let err = EncryptedXmlDecryptor::new([cert_with_key(2)])
        .decrypt(&encrypted.element)
        .await
        .unwrap_err();
    let Error::KeyDecryption { source, .. } = &err else {
        panic!("expected KeyDecryption, got {err:?}");
    };
    match source.downcast_ref::<X509Error>() {
        Some(X509Error::CertificateNotConfigured {
            thumbprint,
            subject,
        }) => {
            assert_eq!(thumbprint, cert_only(1).thumbprint());
            assert!(subject.contains("test-only certificate 1"), "{subject}");
        }
        other => panic!("expected CertificateNotConfigured, got {other:?}"),
    }
    let message = format!("{err}: {source}");
    assert!(message.contains(cert_only(1).thumbprint()), "{message}");
}

#[tokio::test]
async fn tampering_never_returns_the_original_and_never_panics() {
    let cert = cert_with_key(1);
    let plaintext = master_key_element(&Secret::new(vec![9u8; 64]));
    let encrypted = CertificateXmlEncryptor::new(cert.clone())
        .encrypt(&plaintext)
        .await
        .unwrap()
        .element;
    let decryptor = EncryptedXmlDecryptor::new([cert.clone()]);
    let expected = decryptor.decrypt(&encrypted).await.unwrap();
    let cipher = child(
        child(&encrypted, XMLENC_NS, "CipherData"),
        XMLENC_NS,
        "CipherValue",
    )
    .text();
    let bytes = STANDARD.decode(cipher).unwrap();
    let key_info = child(&encrypted, XMLDSIG_NS, "KeyInfo");
    let ek = child(key_info, XMLENC_NS, "EncryptedKey");
    let wrapped = STANDARD
        .decode(child(child(ek, XMLENC_NS, "CipherData"), XMLENC_NS, "CipherValue").text())
        .unwrap();
    for i in 0..bytes.len() {
        let mut t = bytes.clone();
        t[i] ^= 0x01;
        let doc = encrypted_data(XMLENC_RSA_1_5, cert.der(), &wrapped, &t);
        if let Ok(back) = decryptor.decrypt(&doc).await {
            assert_ne!(back, expected, "flipping content byte {i} went unnoticed");
        }
    }
    for i in 0..wrapped.len() {
        let mut t = wrapped.clone();
        t[i] ^= 0x80;
        let doc = encrypted_data(XMLENC_RSA_1_5, cert.der(), &t, &bytes);
        assert!(
            decryptor.decrypt(&doc).await.is_err(),
            "wrapped key byte {i}"
        );
    }
    // Truncations and malformed shapes are errors.
    for len in [0, 15, 16, 17, 31, bytes.len() - 1] {
        let doc = encrypted_data(XMLENC_RSA_1_5, cert.der(), &wrapped, &bytes[..len]);
        assert!(decryptor.decrypt(&doc).await.is_err(), "length {len}");
    }
    for bad in [
        "<EncryptedData xmlns='http://www.w3.org/2001/04/xmlenc#' />",
        "<EncryptedData xmlns='urn:other' />",
        "<EncryptedData xmlns='http://www.w3.org/2001/04/xmlenc#'><EncryptionMethod Algorithm='urn:x' /></EncryptedData>",
        "<EncryptedData xmlns='http://www.w3.org/2001/04/xmlenc#'><EncryptionMethod Algorithm='http://www.w3.org/2001/04/xmlenc#aes256-cbc' /><CipherData><CipherValue>AAAA</CipherValue></CipherData></EncryptedData>",
    ] {
        let e = Element::parse(bad).unwrap();
        assert!(decryptor.decrypt(&e).await.is_err(), "{bad}");
    }
}
