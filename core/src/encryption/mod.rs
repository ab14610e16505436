//! Encryption of key material at rest: the `XmlEncryptor`/`XmlDecryptor`
//! traits, the `<encryptedSecret>` wrapper and the registry that maps
//! `decryptorType` names to decryptors (format.md §6).

mod null;

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;

pub use null::{NULL_XML_DECRYPTOR_TYPE, NullXmlDecryptor, NullXmlEncryptor};

use crate::error::{Error, Result};
use crate::xml::{DATA_PROTECTION_NS, Element, Node, normalize_type_name};

/// The result of encrypting an element: the element to store instead, and
/// the .NET type name of the decryptor that reverses it.
#[derive(Clone, Debug)]
pub struct EncryptedXml {
    /// The encrypted element (e.g. `<encryptedKey>…</encryptedKey>`).
    pub element: Element,
    /// Assembly-qualified decryptor type name written as `decryptorType`.
    pub decryptor_type: String,
}

/// Encrypts secret elements before they are stored (`IXmlEncryptor`).
#[async_trait]
pub trait XmlEncryptor: fmt::Debug + Send + Sync {
    /// Encrypts `plaintext` (normally a `<masterKey>` element).
    async fn encrypt(&self, plaintext: &Element) -> Result<EncryptedXml>;
}

/// Decrypts what an [`XmlEncryptor`] produced (`IXmlDecryptor`).
#[async_trait]
pub trait XmlDecryptor: fmt::Debug + Send + Sync {
    /// Decrypts the child of an `<encryptedSecret>` back to the original element.
    async fn decrypt(&self, encrypted: &Element) -> Result<Element>;
}

/// Maps `decryptorType` names to decryptors. Names are matched on the full
/// type name (assembly, version, culture and token ignored).
///
/// [`NullXmlDecryptor`] is registered by default.
#[derive(Clone)]
pub struct DecryptorRegistry {
    map: HashMap<String, Arc<dyn XmlDecryptor>>,
}

impl fmt::Debug for DecryptorRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut names: Vec<_> = self.map.keys().collect();
        names.sort();
        f.debug_struct("DecryptorRegistry")
            .field("types", &names)
            .finish()
    }
}

impl Default for DecryptorRegistry {
    fn default() -> Self {
        let mut r = DecryptorRegistry {
            map: HashMap::new(),
        };
        r.register(NULL_XML_DECRYPTOR_TYPE, Arc::new(NullXmlDecryptor));
        r
    }
}

impl DecryptorRegistry {
    /// A registry holding only [`NullXmlDecryptor`].
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers `decryptor` for a type name (assembly-qualified or not).
    pub fn register(&mut self, type_name: &str, decryptor: Arc<dyn XmlDecryptor>) {
        self.map.insert(normalize_type_name(type_name), decryptor);
    }

    /// The decryptor for a `decryptorType` value.
    pub fn get(&self, type_name: &str) -> Option<&Arc<dyn XmlDecryptor>> {
        self.map.get(&normalize_type_name(type_name))
    }

    /// Replaces every `<encryptedSecret>` below `element` with what its
    /// decryptor returns (`XmlEncryptionExtensions.DecryptElement`).
    pub async fn decrypt_element(&self, element: &Element) -> Result<Element> {
        let mut out = element.clone();
        self.decrypt_in_place(&mut out).await?;
        Ok(out)
    }

    fn decrypt_in_place<'a>(
        &'a self,
        e: &'a mut Element,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<()>> + Send + 'a>> {
        Box::pin(async move {
            for node in e.children.iter_mut() {
                let Node::Element(child) = node else { continue };
                if child.is_ns(DATA_PROTECTION_NS, "encryptedSecret") {
                    let type_name = child.required_attr("decryptorType")?.to_string();
                    let encrypted = {
                        let mut inner = child.elements();
                        match (inner.next(), inner.next()) {
                            (Some(x), None) => x.clone(),
                            _ => {
                                return Err(Error::malformed(
                                    "encryptedSecret",
                                    "must contain exactly one child element",
                                ));
                            }
                        }
                    };
                    let decryptor = self
                        .get(&type_name)
                        .ok_or_else(|| missing_decryptor(&type_name))?;
                    let decrypted = decryptor.decrypt(&encrypted).await?;
                    *child = decrypted;
                } else {
                    self.decrypt_in_place(child).await?;
                }
            }
            Ok(())
        })
    }
}

/// `decryptorType` names of .NET's Windows-only XML encryptors (DPAPI, and
/// DPAPI-NG, which also covers `ProtectKeysWithDpapiNG` with a certificate rule).
pub(crate) const WINDOWS_ONLY_DECRYPTOR_TYPES: [&str; 2] = [
    "Microsoft.AspNetCore.DataProtection.XmlEncryption.DpapiXmlDecryptor",
    "Microsoft.AspNetCore.DataProtection.XmlEncryption.DpapiNGXmlDecryptor",
];

/// The error for a `decryptorType` nothing is registered for: Windows-only
/// protection is named as such, anything else is an unknown decryptor.
fn missing_decryptor(type_name: &str) -> Error {
    let type_name = normalize_type_name(type_name);
    if WINDOWS_ONLY_DECRYPTOR_TYPES.contains(&type_name.as_str()) {
        Error::WindowsOnlyProtection { type_name }
    } else {
        Error::UnknownDecryptor { type_name }
    }
}

/// Encrypts, in a copy of `element`, every element marked
/// `requiresEncryption="true"` and replaces it with
/// `<encryptedSecret decryptorType=…>` (`XmlEncryptionExtensions.EncryptIfNecessary`).
/// Returns `None` when nothing required encryption.
pub async fn encrypt_if_necessary(
    element: &Element,
    encryptor: &dyn XmlEncryptor,
) -> Result<Option<Element>> {
    let mut out = element.clone();
    let found = encrypt_in_place(&mut out, encryptor).await?;
    Ok(found.then_some(out))
}

fn encrypt_in_place<'a>(
    e: &'a mut Element,
    encryptor: &'a dyn XmlEncryptor,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<bool>> + Send + 'a>> {
    Box::pin(async move {
        let mut any = false;
        for node in e.children.iter_mut() {
            let Node::Element(child) = node else { continue };
            if requires_encryption(child) {
                let encrypted = encryptor.encrypt(child).await?;
                *child = encrypted_secret(encrypted);
                any = true;
            } else if encrypt_in_place(child, encryptor).await? {
                any = true;
            }
        }
        Ok(any)
    })
}

fn requires_encryption(e: &Element) -> bool {
    matches!(
        e.attr_ns(DATA_PROTECTION_NS, "requiresEncryption")
            .map(str::trim),
        Some("true") | Some("1")
    )
}

/// Whether any element below `e` is marked `requiresEncryption` — that is,
/// whether a secret is stored in clear.
pub fn has_unencrypted_secret(e: &Element) -> bool {
    e.elements()
        .any(|c| requires_encryption(c) || has_unencrypted_secret(c))
}

/// `<encryptedSecret decryptorType=… xmlns="…dataProtection">child</encryptedSecret>`.
fn encrypted_secret(encrypted: EncryptedXml) -> Element {
    let mut wrapper = Element::new_ns("encryptedSecret", DATA_PROTECTION_NS)
        .with_attr("decryptorType", encrypted.decryptor_type);
    wrapper.declare_namespace("", DATA_PROTECTION_NS);
    wrapper.with_child(encrypted.element)
}
