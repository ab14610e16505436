//! `AzureKeyVaultXmlEncryptor` / `AzureKeyVaultXmlDecryptor`, byte-compatible
//! with `Azure.Extensions.AspNetCore.DataProtection.Keys` (format.md §7).

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use aes::{Aes128, Aes192, Aes256};
use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use cbc::cipher::block_padding::Pkcs7;
use cbc::cipher::{BlockModeDecrypt, BlockModeEncrypt, KeyIvInit};
use dataprotection::crypto::{OsRandom, RandomSource};
use dataprotection::encryption::{EncryptedXml, XmlDecryptor, XmlEncryptor};
use dataprotection::xml::{Element, Format};
use dataprotection::{Error, Result};
use tokio::sync::{OnceCell, Semaphore};
use zeroize::Zeroizing;

use crate::client::{KeyVaultOptions, KeyWrapClient, WrapAlgorithm};
use crate::error::KeyVaultError;

/// The `decryptorType` written for keys encrypted with Azure Key Vault (the
/// assembly-qualified name .NET's `Azure.Extensions.AspNetCore.DataProtection.Keys`
/// 1.6.4 writes).
pub const AZURE_KEY_VAULT_XML_DECRYPTOR_TYPE: &str = "Azure.Extensions.AspNetCore.DataProtection.Keys.AzureKeyVaultXmlDecryptor, Azure.Extensions.AspNetCore.DataProtection.Keys, Version=1.6.4.0, Culture=neutral, PublicKeyToken=92742159e12e44c8";

/// The `decryptorType` of the older `Microsoft.AspNetCore.DataProtection.AzureKeyVault`
/// package, which .NET forwards to the same decryptor (same `<encryptedKey>` format).
pub const LEGACY_AZURE_KEY_VAULT_XML_DECRYPTOR_TYPE: &str = "Microsoft.AspNetCore.DataProtection.AzureKeyVault.AzureKeyVaultXmlDecryptor, Microsoft.AspNetCore.DataProtection.AzureKeyVault";

/// Every `decryptorType` a key encrypted with Azure Key Vault may name: what a decryptor is
/// registered under (the one place that lists them).
pub const AZURE_KEY_VAULT_XML_DECRYPTOR_TYPES: [&str; 2] = [
    AZURE_KEY_VAULT_XML_DECRYPTOR_TYPE,
    LEGACY_AZURE_KEY_VAULT_XML_DECRYPTOR_TYPE,
];

/// The comment .NET writes as the first child of `<encryptedKey>`.
pub(crate) const ENCRYPTED_KEY_COMMENT: &str = " This key is encrypted with Azure Key Vault. ";

/// AES block (and IV) size; also the AES key size .NET uses (`BlockSize / 8`).
const BLOCK: usize = 16;

type CacheKey = (String, Vec<u8>);
type CacheCell = Arc<OnceCell<Arc<Zeroizing<Vec<u8>>>>>;

/// Unwrapped AES keys by (kid, wrapped bytes), for the life of the process.
/// Concurrent requests for one entry share one vault call.
#[derive(Default)]
struct UnwrapCache {
    map: Mutex<HashMap<CacheKey, CacheCell>>,
}

impl UnwrapCache {
    fn cell(&self, kid: &str, wrapped: &[u8]) -> CacheCell {
        self.map
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry((kid.to_string(), wrapped.to_vec()))
            .or_default()
            .clone()
    }

    fn insert(&self, kid: &str, wrapped: &[u8], key: &[u8]) {
        let cell = self.cell(kid, wrapped);
        let _ = cell.set(Arc::new(Zeroizing::new(key.to_vec())));
    }

    fn len(&self) -> usize {
        self.map
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .filter(|c| c.initialized())
            .count()
    }
}

/// Encrypts `<masterKey>` elements with a random AES-128 key that Azure Key
/// Vault wraps (`RSA-OAEP`), writing
///
/// ```xml
/// <encryptedKey>
///   <!-- This key is encrypted with Azure Key Vault. -->
///   <kid>https://{vault}/keys/{name}/{version}</kid>
///   <key>{base64 wrapped AES key}</key>
///   <iv>{base64 IV}</iv>
///   <value>{base64 AES-128-CBC-PKCS7(BOM + XML declaration + element)}</value>
/// </encryptedKey>
/// ```
///
/// exactly as .NET's `AzureKeyVaultXmlEncryptor` does. The `kid` is the
/// versioned identifier the vault returns from the wrap call.
pub struct AzureKeyVaultXmlEncryptor {
    client: Arc<dyn KeyWrapClient>,
    random: Arc<dyn RandomSource>,
    cache: Option<Arc<UnwrapCache>>,
}

impl fmt::Debug for AzureKeyVaultXmlEncryptor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AzureKeyVaultXmlEncryptor")
            .field("client", &self.client)
            .finish_non_exhaustive()
    }
}

impl AzureKeyVaultXmlEncryptor {
    /// An encryptor wrapping with `client`, drawing AES keys and IVs from the
    /// OS CSPRNG. (Prefer [`AzureKeyVaultXmlDecryptor::encryptor`], which
    /// also lets the decryptor reuse the keys this process wraps.)
    pub fn new(client: Arc<dyn KeyWrapClient>) -> Self {
        AzureKeyVaultXmlEncryptor {
            client,
            random: Arc::new(OsRandom),
            cache: None,
        }
    }

    /// Replaces the random source (tests of exact output bytes only).
    #[must_use]
    pub fn with_random(mut self, random: Arc<dyn RandomSource>) -> Self {
        self.random = random;
        self
    }
}

#[async_trait]
impl XmlEncryptor for AzureKeyVaultXmlEncryptor {
    async fn encrypt(&self, plaintext: &Element) -> Result<EncryptedXml> {
        // XElement.Save(stream, DisableFormatting): BOM + declaration + element.
        let document = Zeroizing::new(plaintext.to_document_bytes(Format::Compact));
        let mut key = Zeroizing::new([0u8; BLOCK]);
        self.random.fill(key.as_mut_slice())?;
        let mut iv = [0u8; BLOCK];
        self.random.fill(&mut iv)?;

        let mut value = vec![0u8; (document.len() / BLOCK + 1) * BLOCK];
        let written = cbc::Encryptor::<Aes128>::new_from_slices(key.as_slice(), &iv)
            .map_err(|_| encryption_error("invalid AES key or IV length"))?
            .encrypt_padded_b2b::<Pkcs7>(&document, &mut value)
            .map_err(|_| encryption_error("AES-CBC padding failed"))?
            .len();
        value.truncate(written);

        let wrapped = self
            .client
            .wrap_key(WrapAlgorithm::RsaOaep, key.as_slice())
            .await
            .map_err(|e| {
                tracing::warn!(key = %self.client.describe(), error = %e, "Key Vault wrapKey failed");
                Error::KeyEncryption {
                    source: Box::new(e),
                }
            })?;
        tracing::debug!(kid = %wrapped.kid, "wrapped a new key's AES key with Key Vault");
        if let Some(cache) = &self.cache {
            cache.insert(&wrapped.kid, &wrapped.wrapped, key.as_slice());
        }

        let element = Element::new("encryptedKey")
            .with_comment(ENCRYPTED_KEY_COMMENT)
            .with_child(Element::new("kid").with_text(wrapped.kid))
            .with_child(Element::new("key").with_text(STANDARD.encode(&wrapped.wrapped)))
            .with_child(Element::new("iv").with_text(STANDARD.encode(iv)))
            .with_child(Element::new("value").with_text(STANDARD.encode(&value)));
        Ok(EncryptedXml {
            element,
            decryptor_type: AZURE_KEY_VAULT_XML_DECRYPTOR_TYPE.to_string(),
        })
    }
}

fn encryption_error(message: &str) -> Error {
    Error::KeyEncryption {
        source: message.to_string().into(),
    }
}

/// Decrypts `<encryptedKey>` elements written by .NET's (or this crate's)
/// Azure Key Vault encryptor, unwrapping with exactly the key version named
/// by the stored `<kid>`.
///
/// Unwrapped AES keys are cached for the life of the process, keyed by kid
/// and wrapped bytes, so each key costs at most one vault call per process;
/// at most [`KeyVaultOptions::max_concurrent_unwraps`] unwraps run at once.
pub struct AzureKeyVaultXmlDecryptor {
    client: Arc<dyn KeyWrapClient>,
    cache: Arc<UnwrapCache>,
    limiter: Semaphore,
    max_concurrent: usize,
    unwrap_calls: AtomicU64,
}

impl fmt::Debug for AzureKeyVaultXmlDecryptor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AzureKeyVaultXmlDecryptor")
            .field("client", &self.client)
            .field("max_concurrent_unwraps", &self.max_concurrent)
            .field("cached_keys", &self.cache.len())
            .field("unwrap_calls", &self.unwrap_calls())
            .finish()
    }
}

impl AzureKeyVaultXmlDecryptor {
    /// A decryptor unwrapping through `client`, with the concurrency limit
    /// of `options` (at least 1).
    pub fn new(client: Arc<dyn KeyWrapClient>, options: &KeyVaultOptions) -> Self {
        let max_concurrent = options.max_concurrent_unwraps.max(1);
        AzureKeyVaultXmlDecryptor {
            client,
            cache: Arc::default(),
            limiter: Semaphore::new(max_concurrent),
            max_concurrent,
            unwrap_calls: AtomicU64::new(0),
        }
    }

    /// An encryptor wrapping through the same client whose freshly wrapped
    /// keys this decryptor then knows without calling the vault.
    pub fn encryptor(&self) -> AzureKeyVaultXmlEncryptor {
        AzureKeyVaultXmlEncryptor {
            client: self.client.clone(),
            random: Arc::new(OsRandom),
            cache: Some(self.cache.clone()),
        }
    }

    /// How many unwrap calls this decryptor has started (cache misses,
    /// successful or not).
    pub fn unwrap_calls(&self) -> u64 {
        self.unwrap_calls.load(Ordering::Relaxed)
    }

    /// How many unwrapped keys are cached.
    pub fn cached_keys(&self) -> usize {
        self.cache.len()
    }

    async fn unwrap(&self, kid: &str, wrapped: &[u8]) -> Result<Arc<Zeroizing<Vec<u8>>>> {
        let cell = self.cache.cell(kid, wrapped);
        let key = cell
            .get_or_try_init(|| async {
                let _permit = self
                    .limiter
                    .acquire()
                    .await
                    .map_err(|_| Error::KeyDecryption {
                        what: "a key encrypted with Azure Key Vault".into(),
                        source: "the unwrap limiter was closed".into(),
                    })?;
                self.unwrap_calls.fetch_add(1, Ordering::Relaxed);
                match self
                    .client
                    .unwrap_key(kid, WrapAlgorithm::RsaOaep, wrapped)
                    .await
                {
                    Ok(key) => {
                        tracing::debug!(kid, "unwrapped a key with Key Vault");
                        Ok(Arc::new(Zeroizing::new(key)))
                    }
                    Err(KeyVaultError::InvalidKeyId { input, reason }) => {
                        Err(Error::MalformedXml {
                            element: "kid".into(),
                            reason: format!(
                                "{input:?} is not a usable Key Vault key identifier: {reason}"
                            ),
                        })
                    }
                    Err(e) => {
                        tracing::warn!(kid, error = %e, "Key Vault unwrapKey failed");
                        Err(Error::KeyDecryption {
                            what: "a key encrypted with Azure Key Vault".into(),
                            source: Box::new(e),
                        })
                    }
                }
            })
            .await?;
        Ok(key.clone())
    }
}

fn malformed(reason: impl Into<String>) -> Error {
    Error::MalformedXml {
        element: "encryptedKey".into(),
        reason: reason.into(),
    }
}

fn base64_child(encrypted: &Element, name: &str) -> Result<Vec<u8>> {
    let child = encrypted
        .child(name)
        .ok_or_else(|| malformed(format!("missing <{name}> element")))?;
    let text: String = child
        .text()
        .chars()
        .filter(|c| !c.is_ascii_whitespace())
        .collect();
    if text.is_empty() {
        return Err(malformed(format!("<{name}> is empty")));
    }
    STANDARD
        .decode(text.as_bytes())
        .map_err(|_| malformed(format!("<{name}> is not valid Base64")))
}

fn cbc_decrypt(key: &[u8], iv: &[u8], value: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
    fn run<C>(key: &[u8], iv: &[u8], value: &[u8]) -> Option<Zeroizing<Vec<u8>>>
    where
        cbc::Decryptor<C>: KeyIvInit + BlockModeDecrypt,
        C: cbc::cipher::BlockCipherDecrypt,
    {
        let dec = cbc::Decryptor::<C>::new_from_slices(key, iv).ok()?;
        let mut out = Zeroizing::new(vec![0u8; value.len()]);
        let len = dec.decrypt_padded_b2b::<Pkcs7>(value, &mut out).ok()?.len();
        out.truncate(len);
        Some(out)
    }
    let out = match key.len() {
        16 => run::<Aes128>(key, iv, value),
        24 => run::<Aes192>(key, iv, value),
        32 => run::<Aes256>(key, iv, value),
        n => {
            return Err(Error::UnsupportedAlgorithm(format!(
                "the unwrapped key is {n} bytes long, not an AES key size"
            )));
        }
    };
    out.ok_or_else(|| {
        malformed(
            "<value> does not decrypt with the unwrapped key (bad padding): the element is corrupt",
        )
    })
}

#[async_trait]
impl XmlDecryptor for AzureKeyVaultXmlDecryptor {
    async fn decrypt(&self, encrypted: &Element) -> Result<Element> {
        if !encrypted.is("encryptedKey") {
            return Err(malformed(format!(
                "expected <encryptedKey>, found <{}>",
                encrypted.name()
            )));
        }
        let kid = encrypted
            .child("kid")
            .ok_or_else(|| malformed("missing <kid> element"))?
            .text();
        let kid = kid.trim();
        if kid.is_empty() {
            return Err(malformed("<kid> is empty"));
        }
        let wrapped = base64_child(encrypted, "key")?;
        let iv = base64_child(encrypted, "iv")?;
        let value = base64_child(encrypted, "value")?;
        if iv.len() != BLOCK {
            return Err(malformed(format!(
                "<iv> must be {BLOCK} bytes, found {}",
                iv.len()
            )));
        }
        if value.len() % BLOCK != 0 {
            return Err(malformed(format!(
                "<value> must be a multiple of {BLOCK} bytes, found {}",
                value.len()
            )));
        }
        let key = self.unwrap(kid, &wrapped).await?;
        let plaintext = cbc_decrypt(&key, &iv, &value)?;
        // XElement.Load: BOM and declaration tolerated. The parser's message
        // could quote the secret, so it is not passed on.
        Element::parse_bytes(&plaintext)
            .map_err(|_| malformed("the decrypted content is not a well-formed XML element"))
    }
}
