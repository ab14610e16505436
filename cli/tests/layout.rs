//! Files written by dpkeys have the layout of ASP.NET Core's
//! `FileSystemXmlRepository`.

#![allow(clippy::unwrap_used)]

mod common;

use common::*;

const BOM: &[u8] = b"\xEF\xBB\xBF";

/// The element/attribute skeleton of an indented XML document: every
/// attribute value and text content replaced by `*`.
fn skeleton(text: &str) -> Vec<String> {
    text.lines()
        .map(|line| {
            let mut out = String::new();
            let mut in_quotes = false;
            let mut in_text = false;
            for c in line.chars() {
                match c {
                    '"' => {
                        if !in_quotes {
                            out.push_str("\"*");
                        } else {
                            out.push('"');
                        }
                        in_quotes = !in_quotes;
                    }
                    _ if in_quotes => {}
                    '>' => {
                        out.push('>');
                        in_text = true;
                    }
                    '<' => {
                        in_text = false;
                        out.push('<');
                    }
                    _ if in_text => {
                        if !out.ends_with('*') {
                            out.push('*');
                        }
                    }
                    c => out.push(c),
                }
            }
            out
        })
        .collect()
}

fn check_document(bytes: &[u8]) -> String {
    assert!(bytes.starts_with(BOM), "UTF-8 BOM");
    let text = std::str::from_utf8(&bytes[BOM.len()..]).unwrap();
    assert!(
        text.starts_with("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n"),
        "declaration: {text}"
    );
    assert!(!text.contains('\t') && !text.contains('\r'));
    for line in text.lines() {
        let indent = line.len() - line.trim_start().len();
        assert_eq!(indent % 2, 0, "two-space indentation: {line:?}");
    }
    text.to_string()
}

#[test]
fn key_files_match_the_dotnet_layout() {
    let (_tmp, ring) = fresh_ring();
    let id = run_in(&ring, &["keys", "new"], None).ok();
    let id = id.trim();
    assert_eq!(key_files(&ring), vec![format!("key-{id}.xml")]);
    let bytes = std::fs::read(ring.join(format!("key-{id}.xml"))).unwrap();
    let text = check_document(&bytes);

    let reference =
        std::fs::read(vectors().join("xml/key-default-aes256cbc-hmacsha256.xml")).unwrap();
    let reference = check_document(&reference);
    assert_eq!(
        skeleton(&text),
        skeleton(&reference),
        "\n{text}\nvs\n{reference}"
    );

    assert!(
        text.contains(&format!("<key id=\"{id}\" version=\"1\">")),
        "{text}"
    );
    for element in ["creationDate", "activationDate", "expirationDate"] {
        assert!(text.contains(&format!("  <{element}>")), "{element}");
    }
    assert!(text.contains("deserializerType=\"Microsoft.AspNetCore.DataProtection.AuthenticatedEncryption.ConfigurationModel.AuthenticatedEncryptorDescriptorDeserializer, Microsoft.AspNetCore.DataProtection"));
    assert!(text.contains("      <encryption algorithm=\"AES_256_CBC\" />\n"));
    assert!(text.contains("      <validation algorithm=\"HMACSHA256\" />\n"));
    assert!(text.contains(
        "      <masterKey p4:requiresEncryption=\"true\" xmlns:p4=\"http://schemas.asp.net/2015/03/dataProtection\">\n"
    ));
    assert!(text.contains("<!-- Warning: the key below is in an unencrypted form. -->"));

    // The dates are xsd:dateTime and round-trip through keys list.
    let keys = list_keys(&ring);
    let date = keys[0]["expirationDate"].as_str().unwrap();
    assert!(
        text.contains(&format!("<expirationDate>{date}</expirationDate>")),
        "{text}"
    );
}

#[test]
fn revocation_files_match_the_dotnet_layout() {
    let (_tmp, ring) = fresh_ring();
    let id = run_in(&ring, &["keys", "new"], None).ok();
    let id = id.trim();
    run_in(
        &ring,
        &["keys", "revoke", id, "--reason", "Here's some reason text."],
        None,
    )
    .ok();
    let bytes = std::fs::read(ring.join(format!("revocation-{id}.xml"))).unwrap();
    let text = check_document(&bytes);
    let reference = std::fs::read(vectors().join("xml/revocation-single.xml")).unwrap();
    let reference = check_document(&reference);
    assert_eq!(
        skeleton(&text),
        skeleton(&reference),
        "\n{text}\nvs\n{reference}"
    );
    assert!(text.contains(&format!("  <key id=\"{id}\" />")));
}

#[test]
fn skeleton_ignores_values_only() {
    assert_eq!(
        skeleton("  <a b=\"x\">text</a>"),
        vec!["  <a b=\"*\">*</a>".to_string()]
    );
    assert_ne!(skeleton("<a b=\"x\" />"), skeleton("<a c=\"x\" />"));
}
