//! Helpers shared by the operator commands: reading a key's master key,
//! finding which Key Vault key wraps it, rewriting a key's descriptor.

use dataprotection::Error;
use dataprotection::crypto::Secret;
use dataprotection::encryption::DecryptorRegistry;
use dataprotection::xml::{Element, KeyXml, Node, contains_encrypted_secret, read_descriptor};

/// The key's master key, decrypting its descriptor first when it is
/// encrypted at rest.
pub async fn master_key(registry: &DecryptorRegistry, key: &KeyXml) -> Result<Secret, Error> {
    decrypted_descriptor(registry, key)
        .await
        .and_then(|d| read_descriptor(&d).map(|d| d.master_key))
}

/// How many keys [`master_keys`] decrypts at once. Each decryptor may limit
/// its own calls further (Key Vault: 4 unwraps in flight by default).
const CONCURRENT_DECRYPTIONS: usize = 16;

/// [`master_key`] of every key, in order, decrypting up to
/// [`CONCURRENT_DECRYPTIONS`] at once: a ring wrapped by Key Vault needs one
/// round trip per key, and one at a time they add up (98 took 191 ms).
pub async fn master_keys(
    registry: &DecryptorRegistry,
    keys: &[&KeyXml],
) -> Vec<Result<Secret, Error>> {
    let mut results: Vec<Option<Result<Secret, Error>>> = keys.iter().map(|_| None).collect();
    let mut pending = tokio::task::JoinSet::new();
    let finish = |results: &mut Vec<Option<Result<Secret, Error>>>, joined| match joined {
        Ok((i, result)) => results[i] = Some(result),
        // A panicked or cancelled task: its slot stays None, reported below.
        Err(e) => tracing::debug!(error = %e, "a key decryption task failed"),
    };
    for (i, key) in keys.iter().enumerate() {
        if pending.len() >= CONCURRENT_DECRYPTIONS
            && let Some(joined) = pending.join_next().await
        {
            finish(&mut results, joined);
        }
        let (registry, key) = (registry.clone(), (*key).clone());
        pending.spawn(async move { (i, master_key(&registry, &key).await) });
    }
    while let Some(joined) = pending.join_next().await {
        finish(&mut results, joined);
    }
    results
        .into_iter()
        .zip(keys)
        .map(|(result, key)| {
            result.unwrap_or_else(|| {
                Err(Error::KeyDecryption {
                    what: format!("key {}", key.id),
                    source: "the decryption task did not finish".into(),
                })
            })
        })
        .collect()
}

/// The key's outer `<descriptor>` with every `<encryptedSecret>` decrypted.
pub async fn decrypted_descriptor(
    registry: &DecryptorRegistry,
    key: &KeyXml,
) -> Result<Element, Error> {
    if contains_encrypted_secret(&key.descriptor) {
        registry.decrypt_element(&key.descriptor).await
    } else {
        Ok(key.descriptor.clone())
    }
}

/// The Key Vault `kid` a key's master key is wrapped with, if any.
pub fn wrapping_kid(descriptor: &Element) -> Option<String> {
    fn find(e: &Element) -> Option<String> {
        if e.is("encryptedKey")
            && let Some(kid) = e.child("kid")
        {
            return Some(kid.text().trim().to_string());
        }
        e.elements().find_map(find)
    }
    find(descriptor)
}

/// `key` (a `<key>` element) with its `<descriptor>` child replaced by
/// `descriptor`; every other attribute, child and comment is kept.
pub fn with_descriptor(key: &Element, descriptor: Element) -> Element {
    let mut out = key.clone();
    let mut descriptor = Some(descriptor);
    for node in out.children.iter_mut() {
        if let Node::Element(child) = node
            && child.is("descriptor")
            && let Some(d) = descriptor.take()
        {
            *child = d;
        }
    }
    out
}

/// The key id a `<key>` element names, if it names a well-formed one.
pub fn element_key_id(e: &Element) -> Option<uuid::Uuid> {
    if !e.is("key") {
        return None;
    }
    e.attr("id")
        .and_then(|id| uuid::Uuid::parse_str(id.trim()).ok())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn descriptor_is_replaced_and_the_rest_kept() {
        let key = Element::parse(
            "<key id='00000000-0000-0000-0000-000000000001' version='1'><!-- c --><creationDate>x</creationDate><descriptor a='1'><x/></descriptor></key>",
        )
        .unwrap();
        let out = with_descriptor(&key, Element::new("descriptor").with_attr("b", "2"));
        assert_eq!(out.child("descriptor").unwrap().attr("b"), Some("2"));
        assert_eq!(out.child("creationDate").unwrap().text(), "x");
        assert_eq!(element_key_id(&out), Some(uuid::Uuid::from_u128(1)));
    }

    #[test]
    fn finds_the_kid() {
        let d = Element::parse(
            "<descriptor><descriptor><encryptedSecret><encryptedKey><kid> https://v/keys/k/1 </kid></encryptedKey></encryptedSecret></descriptor></descriptor>",
        )
        .unwrap();
        assert_eq!(wrapping_kid(&d).as_deref(), Some("https://v/keys/k/1"));
        assert_eq!(wrapping_kid(&Element::new("descriptor")), None);
    }
}
