//! Stable encryption at rest for regenerated fixtures.
//!
//! Key-encryption schemes are randomized where the API gives no handle on
//! the randomness (RSA-OAEP and RSA PKCS#1 v1.5 padding), so encrypting the
//! same master key twice gives different bytes. [`ReusingXmlEncryptor`]
//! returns, for a plaintext it has seen encrypted in fixtures already
//! written, that same encryption: any valid encryption of a secret is as
//! good as another, and the files stay unchanged.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use dataprotection::Result;
use dataprotection::encryption::{DecryptorRegistry, EncryptedXml, XmlEncryptor};
use dataprotection::xml::{DATA_PROTECTION_NS, Element, Format, Node, read_master_key};

/// An [`XmlEncryptor`] that reuses known encryptions of the same plaintext
/// and otherwise asks `inner`.
pub struct ReusingXmlEncryptor {
    inner: Arc<dyn XmlEncryptor>,
    /// Encryptions by what their plaintext holds ([`plaintext_identity`]).
    known: Mutex<HashMap<Vec<u8>, EncryptedXml>>,
}

impl fmt::Debug for ReusingXmlEncryptor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReusingXmlEncryptor")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl ReusingXmlEncryptor {
    /// Encrypts with `inner` what it has not seen encrypted before.
    pub fn new(inner: Arc<dyn XmlEncryptor>) -> Self {
        ReusingXmlEncryptor {
            inner,
            known: Mutex::new(HashMap::new()),
        }
    }

    /// Learns every `<encryptedSecret>` below `elements` that a decryptor of
    /// `decryptors` can decrypt; returns how many. Secrets that do not
    /// decrypt are skipped: they are only encryptions not to reuse.
    pub async fn learn(&self, elements: &[Element], decryptors: &DecryptorRegistry) -> usize {
        let mut secrets = Vec::new();
        for element in elements {
            collect_encrypted_secrets(element, &mut secrets);
        }
        let mut learned = 0;
        for secret in secrets {
            let Some(type_name) = secret.attr("decryptorType") else {
                continue;
            };
            let (Some(decryptor), Some(encrypted)) =
                (decryptors.get(type_name), secret.elements().next())
            else {
                continue;
            };
            let Ok(plaintext) = decryptor.decrypt(encrypted).await else {
                continue;
            };
            self.known.lock().unwrap_or_else(|e| e.into_inner()).insert(
                plaintext_identity(&plaintext),
                EncryptedXml {
                    element: encrypted.clone(),
                    decryptor_type: type_name.to_string(),
                },
            );
            learned += 1;
        }
        learned
    }
}

/// What identifies a plaintext across an encryption round trip: a
/// `<masterKey>`'s secret (decryptors may give back the element with other
/// namespace declarations or whitespace), else the element's compact XML.
fn plaintext_identity(plaintext: &Element) -> Vec<u8> {
    if plaintext.is("masterKey")
        && let Ok(secret) = read_master_key(plaintext)
    {
        let mut identity = b"masterKey:".to_vec();
        identity.extend_from_slice(secret.expose());
        return identity;
    }
    plaintext.to_xml(Format::Compact).into_bytes()
}

fn collect_encrypted_secrets<'a>(element: &'a Element, out: &mut Vec<&'a Element>) {
    for node in &element.children {
        if let Node::Element(child) = node {
            if child.is_ns(DATA_PROTECTION_NS, "encryptedSecret") {
                out.push(child);
            } else {
                collect_encrypted_secrets(child, out);
            }
        }
    }
}

#[async_trait]
impl XmlEncryptor for ReusingXmlEncryptor {
    async fn encrypt(&self, plaintext: &Element) -> Result<EncryptedXml> {
        let known = self
            .known
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&plaintext_identity(plaintext))
            .cloned();
        match known {
            Some(encrypted) => Ok(encrypted),
            None => self.inner.encrypt(plaintext).await,
        }
    }
}
