//! `NullXmlEncryptor`: wraps the secret without encrypting it (ASP.NET Core's
//! `NullXmlEncryptor`, useful only for tests and for reading such rings).

use async_trait::async_trait;

use super::{EncryptedXml, XmlDecryptor, XmlEncryptor};
use crate::error::{Error, Result};
use crate::xml::Element;

/// The `decryptorType` ASP.NET Core writes for [`NullXmlEncryptor`].
pub const NULL_XML_DECRYPTOR_TYPE: &str = "Microsoft.AspNetCore.DataProtection.XmlEncryption.NullXmlDecryptor, Microsoft.AspNetCore.DataProtection, Version=8.0.0.0, Culture=neutral, PublicKeyToken=adb9793829ddae60";

/// Writes `<unencryptedKey><!-- This key is not encrypted. -->…</unencryptedKey>`.
/// It does **not** protect anything; it exists for compatibility.
#[derive(Debug, Clone, Copy, Default)]
pub struct NullXmlEncryptor;

#[async_trait]
impl XmlEncryptor for NullXmlEncryptor {
    async fn encrypt(&self, plaintext: &Element) -> Result<EncryptedXml> {
        Ok(EncryptedXml {
            element: Element::new("unencryptedKey")
                .with_comment(" This key is not encrypted. ")
                .with_child(plaintext.clone()),
            decryptor_type: NULL_XML_DECRYPTOR_TYPE.to_string(),
        })
    }
}

/// Reads `<unencryptedKey>`: returns its single child element.
#[derive(Debug, Clone, Copy, Default)]
pub struct NullXmlDecryptor;

#[async_trait]
impl XmlDecryptor for NullXmlDecryptor {
    async fn decrypt(&self, encrypted: &Element) -> Result<Element> {
        if !encrypted.is("unencryptedKey") {
            return Err(Error::malformed(
                encrypted.local_name(),
                "NullXmlDecryptor expects an <unencryptedKey> element",
            ));
        }
        let mut children = encrypted.elements();
        match (children.next(), children.next()) {
            (Some(e), None) => Ok(e.clone()),
            _ => Err(Error::malformed(
                "unencryptedKey",
                "must contain exactly one child element",
            )),
        }
    }
}
