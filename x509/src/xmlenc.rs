//! `CertificateXmlEncryptor` / `EncryptedXmlDecryptor`: W3C XML Encryption
//! of `<masterKey>` elements as .NET's `EncryptedXml.Encrypt(XmlElement,
//! X509Certificate2)` writes it, and reading what it (or RSA-OAEP key
//! transport) wrote.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use aes::{Aes128, Aes192, Aes256};
use async_trait::async_trait;
use aws_lc_rs::rsa::{
    OAEP_SHA1_MGF1SHA1, OaepPrivateDecryptingKey, Pkcs1PrivateDecryptingKey,
    Pkcs1PublicEncryptingKey,
};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use cbc::cipher::block_padding::NoPadding;
use cbc::cipher::{BlockModeDecrypt, BlockModeEncrypt, KeyIvInit};
use dataprotection::crypto::{OsRandom, RandomSource};
use dataprotection::encryption::{EncryptedXml, XmlDecryptor, XmlEncryptor};
use dataprotection::xml::{Attribute, Element, Format};
use dataprotection::{Error, Result};
use zeroize::Zeroizing;

use crate::certificate::{Certificate, subject_of, thumbprint_of};
use crate::error::X509Error;

/// The `decryptorType` .NET writes for certificate-encrypted keys
/// (`typeof(EncryptedXmlDecryptor).AssemblyQualifiedName`).
pub const ENCRYPTED_XML_DECRYPTOR_TYPE: &str = "Microsoft.AspNetCore.DataProtection.XmlEncryption.EncryptedXmlDecryptor, Microsoft.AspNetCore.DataProtection, Version=8.0.0.0, Culture=neutral, PublicKeyToken=adb9793829ddae60";

/// XML Encryption namespace (`EncryptedXml.XmlEncNamespaceUrl`).
pub const XMLENC_NS: &str = "http://www.w3.org/2001/04/xmlenc#";
/// XML Signature namespace, used by `KeyInfo` (`SignedXml.XmlDsigNamespaceUrl`).
pub const XMLDSIG_NS: &str = "http://www.w3.org/2000/09/xmldsig#";
/// `EncryptedData/@Type` for an encrypted element (`XmlEncElementUrl`).
pub(crate) const XMLENC_ELEMENT_TYPE: &str = "http://www.w3.org/2001/04/xmlenc#Element";
/// AES-256-CBC (`XmlEncAES256Url`), what .NET encrypts with.
pub(crate) const XMLENC_AES256_CBC: &str = "http://www.w3.org/2001/04/xmlenc#aes256-cbc";
const XMLENC_AES192_CBC: &str = "http://www.w3.org/2001/04/xmlenc#aes192-cbc";
const XMLENC_AES128_CBC: &str = "http://www.w3.org/2001/04/xmlenc#aes128-cbc";
/// RSA PKCS#1 v1.5 key transport (`XmlEncRSA15Url`), what .NET wraps with.
pub const XMLENC_RSA_1_5: &str = "http://www.w3.org/2001/04/xmlenc#rsa-1_5";
/// RSA-OAEP (SHA-1, MGF1-SHA-1) key transport (`XmlEncRSAOAEPUrl`), read too.
pub(crate) const XMLENC_RSA_OAEP_MGF1P: &str = "http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p";

const BLOCK: usize = 16;
const AES256_KEY: usize = 32;

/// Encrypts `<masterKey>` elements to one certificate, writing
///
/// ```xml
/// <EncryptedData Type="http://www.w3.org/2001/04/xmlenc#Element" xmlns="http://www.w3.org/2001/04/xmlenc#">
///   <EncryptionMethod Algorithm="http://www.w3.org/2001/04/xmlenc#aes256-cbc" />
///   <KeyInfo xmlns="http://www.w3.org/2000/09/xmldsig#">
///     <EncryptedKey xmlns="http://www.w3.org/2001/04/xmlenc#">
///       <EncryptionMethod Algorithm="http://www.w3.org/2001/04/xmlenc#rsa-1_5" />
///       <KeyInfo xmlns="http://www.w3.org/2000/09/xmldsig#">
///         <X509Data><X509Certificate>{base64 DER}</X509Certificate></X509Data>
///       </KeyInfo>
///       <CipherData><CipherValue>{base64 RSA PKCS#1 v1.5 of the AES key}</CipherValue></CipherData>
///     </EncryptedKey>
///   </KeyInfo>
///   <CipherData><CipherValue>{base64 IV ‖ AES-256-CBC(ISO 10126 padded element)}</CipherValue></CipherData>
/// </EncryptedData>
/// ```
///
/// as .NET's `CertificateXmlEncryptor` does (through `EncryptedXml`), with
/// decryptor type [`ENCRYPTED_XML_DECRYPTOR_TYPE`]. The private key is not
/// needed.
pub struct CertificateXmlEncryptor {
    certificate: Certificate,
    random: Arc<dyn RandomSource>,
}

impl fmt::Debug for CertificateXmlEncryptor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertificateXmlEncryptor")
            .field("certificate", &self.certificate)
            .finish_non_exhaustive()
    }
}

impl CertificateXmlEncryptor {
    /// An encryptor to `certificate`, drawing the AES key, IV and padding
    /// from the OS CSPRNG.
    pub fn new(certificate: Certificate) -> Self {
        CertificateXmlEncryptor {
            certificate,
            random: Arc::new(OsRandom),
        }
    }

    /// Replaces the random source (known-answer tests only). The RSA
    /// PKCS#1 v1.5 padding stays random: it comes from aws-lc.
    #[must_use]
    pub fn with_random(mut self, random: Arc<dyn RandomSource>) -> Self {
        self.random = random;
        self
    }

    /// The certificate new keys are encrypted to.
    pub fn certificate(&self) -> &Certificate {
        &self.certificate
    }

    /// Encrypts synchronously (the work is CPU-only); what
    /// [`XmlEncryptor::encrypt`] returns.
    ///
    /// # Errors
    /// [`Error::KeyEncryption`] if the random source or RSA fails.
    pub fn encrypt_element(&self, plaintext: &Element) -> Result<Element> {
        // Draw in .NET's order: the session key (Aes.Create), then the IV
        // and the padding (EncryptData).
        let mut key = Zeroizing::new([0u8; AES256_KEY]);
        self.random.fill(key.as_mut_slice())?;
        let mut iv = [0u8; BLOCK];
        self.random.fill(&mut iv)?;

        let document = Zeroizing::new(dotnet_outer_xml(plaintext).into_bytes());
        let pad = BLOCK - document.len() % BLOCK;
        let mut padded = Zeroizing::new(Vec::with_capacity(document.len() + pad));
        padded.extend_from_slice(&document);
        // ISO 10126: random filler, the last byte says how many bytes to drop.
        let mut filler = vec![0u8; pad - 1];
        self.random.fill(&mut filler)?;
        padded.extend_from_slice(&filler);
        padded.push(pad as u8);

        let mut cipher_value = vec![0u8; BLOCK + padded.len()];
        cipher_value[..BLOCK].copy_from_slice(&iv);
        cbc::Encryptor::<Aes256>::new_from_slices(key.as_slice(), &iv)
            .map_err(|_| encryption_error("invalid AES key or IV length"))?
            .encrypt_padded_b2b::<NoPadding>(&padded, &mut cipher_value[BLOCK..])
            .map_err(|_| encryption_error("AES-CBC failed"))?;

        let rsa = Pkcs1PublicEncryptingKey::new(self.certificate.public_key().clone())
            .map_err(|_| encryption_error("the certificate's RSA key cannot encrypt"))?;
        let mut wrapped = vec![0u8; rsa.ciphertext_size()];
        let wrapped_len = rsa
            .encrypt(key.as_slice(), &mut wrapped)
            .map_err(|_| encryption_error("RSA PKCS#1 v1.5 encryption failed"))?
            .len();
        wrapped.truncate(wrapped_len);

        Ok(encrypted_data(
            XMLENC_RSA_1_5,
            self.certificate.der(),
            &wrapped,
            &cipher_value,
        ))
    }
}

#[async_trait]
impl XmlEncryptor for CertificateXmlEncryptor {
    async fn encrypt(&self, plaintext: &Element) -> Result<EncryptedXml> {
        let element = self.encrypt_element(plaintext)?;
        tracing::debug!(
            thumbprint = self.certificate.thumbprint(),
            "encrypted a key with an X.509 certificate"
        );
        Ok(EncryptedXml {
            element,
            decryptor_type: ENCRYPTED_XML_DECRYPTOR_TYPE.to_string(),
        })
    }
}

/// The `<EncryptedData>` element for a wrapped session key and the
/// encrypted content (exposed for building .NET-shaped test documents).
pub fn encrypted_data(
    key_transport: &str,
    certificate_der: &[u8],
    wrapped_key: &[u8],
    cipher_value: &[u8],
) -> Element {
    let mut key_info_inner = Element::new_ns("KeyInfo", XMLDSIG_NS).with_child(
        Element::new_ns("X509Data", XMLDSIG_NS).with_child(
            Element::new_ns("X509Certificate", XMLDSIG_NS)
                .with_text(STANDARD.encode(certificate_der)),
        ),
    );
    key_info_inner.declare_namespace("", XMLDSIG_NS);
    let mut encrypted_key = Element::new_ns("EncryptedKey", XMLENC_NS);
    encrypted_key.declare_namespace("", XMLENC_NS);
    let encrypted_key = encrypted_key
        .with_child(
            Element::new_ns("EncryptionMethod", XMLENC_NS).with_attr("Algorithm", key_transport),
        )
        .with_child(key_info_inner)
        .with_child(cipher_data(wrapped_key));
    let mut key_info = Element::new_ns("KeyInfo", XMLDSIG_NS);
    key_info.declare_namespace("", XMLDSIG_NS);
    let key_info = key_info.with_child(encrypted_key);

    let mut data =
        Element::new_ns("EncryptedData", XMLENC_NS).with_attr("Type", XMLENC_ELEMENT_TYPE);
    data.declare_namespace("", XMLENC_NS);
    data.with_child(
        Element::new_ns("EncryptionMethod", XMLENC_NS).with_attr("Algorithm", XMLENC_AES256_CBC),
    )
    .with_child(key_info)
    .with_child(cipher_data(cipher_value))
}

fn cipher_data(value: &[u8]) -> Element {
    Element::new_ns("CipherData", XMLENC_NS)
        .with_child(Element::new_ns("CipherValue", XMLENC_NS).with_text(STANDARD.encode(value)))
}

fn encryption_error(message: &str) -> Error {
    Error::KeyEncryption {
        source: message.to_string().into(),
    }
}

/// The element as `XmlElement.OuterXml` writes it after .NET moved the
/// in-memory `XElement` into an `XmlDocument`: no formatting, and the
/// namespace of an attribute that has no declared prefix gets a prefix
/// generated by `XmlTextWriter` (`d1p1`, `d1p2`, …), declared after the
/// element's attributes. The in-memory `<masterKey>` of a new .NET key has no
/// declarations, so what our key XML declares with the `p{n}` prefixes that
/// `XElement.Save` generates is renamed to that form. Hand-written because
/// it reproduces one writer's naming rule, which no XML crate offers.
pub fn dotnet_outer_xml(element: &Element) -> String {
    let mut out = element.clone();
    let is_generated = |prefix: &str| {
        prefix.len() > 1
            && prefix.starts_with('p')
            && prefix[1..].chars().all(|c| c.is_ascii_digit())
    };
    let mut renames: HashMap<String, String> = HashMap::new();
    let mut declarations: Vec<Attribute> = Vec::new();
    let mut kept: Vec<Attribute> = Vec::new();
    for attribute in out.attributes.drain(..) {
        match attribute.name.strip_prefix("xmlns:") {
            Some(prefix) if is_generated(prefix) => {
                let new_prefix = format!("d1p{}", declarations.len() + 1);
                renames.insert(prefix.to_string(), new_prefix.clone());
                declarations.push(Attribute {
                    name: format!("xmlns:{new_prefix}"),
                    ..attribute
                });
            }
            _ => kept.push(attribute),
        }
    }
    for attribute in &mut kept {
        if let Some((prefix, local)) = attribute.name.split_once(':')
            && let Some(new_prefix) = renames.get(prefix)
        {
            attribute.name = format!("{new_prefix}:{local}");
        }
    }
    kept.extend(declarations);
    out.attributes = kept;
    out.to_xml(Format::Compact)
}

/// Decrypts `<EncryptedData>` elements whose session key was wrapped for
/// one of its certificates (`EncryptedXmlDecryptor` with
/// `XmlKeyDecryptionOptions.KeyDecryptionCertificates`): RSA PKCS#1 v1.5 or
/// RSA-OAEP key transport, AES-128/192/256-CBC content.
///
/// The certificate is chosen by the `X509Certificate` in the encrypted key's
/// `KeyInfo`, matched by thumbprint. An unknown certificate is an
/// [`Error::KeyDecryption`] whose source, [`X509Error::CertificateNotConfigured`],
/// names its thumbprint and subject; like a vault outage, it never makes a
/// key look absent, so no new key is created because of it.
#[derive(Clone)]
pub struct EncryptedXmlDecryptor {
    certificates: HashMap<String, Certificate>,
    /// Asked when none of `certificates` matches (an earlier builder call's decryptor).
    fallback: Option<Arc<dyn XmlDecryptor>>,
}

impl fmt::Debug for EncryptedXmlDecryptor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut thumbprints: Vec<_> = self.certificates.keys().collect();
        thumbprints.sort();
        f.debug_struct("EncryptedXmlDecryptor")
            .field("certificates", &thumbprints)
            .field("fallback", &self.fallback)
            .finish()
    }
}

impl EncryptedXmlDecryptor {
    /// A decryptor with these certificates. Those without a private key
    /// are kept out (they cannot decrypt); see [`Self::certificates`].
    pub fn new(certificates: impl IntoIterator<Item = Certificate>) -> Self {
        let mut decryptor = EncryptedXmlDecryptor {
            certificates: HashMap::new(),
            fallback: None,
        };
        for c in certificates {
            decryptor.add(c);
        }
        decryptor
    }

    /// Adds a certificate (ignored, with a warning, without a private key).
    pub fn add(&mut self, certificate: Certificate) {
        if certificate.has_private_key() {
            self.certificates
                .insert(certificate.thumbprint().to_string(), certificate);
        } else {
            tracing::warn!(
                thumbprint = certificate.thumbprint(),
                subject = certificate.subject(),
                "certificate has no private key: it cannot decrypt keys"
            );
        }
    }

    /// Asks `fallback` for documents none of this decryptor's certificates
    /// can open (how repeated builder calls accumulate certificates).
    #[must_use]
    pub fn or_else(mut self, fallback: Arc<dyn XmlDecryptor>) -> Self {
        self.fallback = Some(fallback);
        self
    }

    /// Whether a configured certificate has this thumbprint.
    pub fn knows(&self, thumbprint: &str) -> bool {
        self.certificates.contains_key(thumbprint)
    }

    /// The certificates that can decrypt, in thumbprint order.
    pub fn certificates(&self) -> Vec<&Certificate> {
        let mut all: Vec<_> = self.certificates.values().collect();
        all.sort_by(|a, b| a.thumbprint().cmp(b.thumbprint()));
        all
    }

    /// Decrypts synchronously (CPU-only); what [`XmlDecryptor::decrypt`] returns.
    ///
    /// # Errors
    /// [`Error::MalformedXml`] for a document of the wrong shape or that does
    /// not decrypt, [`Error::UnsupportedAlgorithm`], or
    /// [`Error::KeyDecryption`] when no configured certificate matches.
    pub fn decrypt_element(&self, encrypted: &Element) -> Result<Element> {
        if !encrypted.is_ns(XMLENC_NS, "EncryptedData") {
            return Err(malformed(
                encrypted.local_name(),
                format!(
                    "expected <EncryptedData xmlns=\"{XMLENC_NS}\">, found <{}>",
                    encrypted.name()
                ),
            ));
        }
        let content_algorithm = algorithm_of(encrypted)?
            .ok_or_else(|| malformed("EncryptedData", "missing <EncryptionMethod Algorithm=…>"))?;
        let key_size = match content_algorithm.as_str() {
            XMLENC_AES256_CBC => 32,
            XMLENC_AES192_CBC => 24,
            XMLENC_AES128_CBC => 16,
            other => {
                return Err(Error::UnsupportedAlgorithm(format!(
                    "XML encryption content algorithm {other}"
                )));
            }
        };
        let cipher_value = cipher_value(encrypted, "EncryptedData")?;
        let encrypted_key = child_ns(encrypted, XMLDSIG_NS, "KeyInfo")
            .and_then(|ki| child_ns(ki, XMLENC_NS, "EncryptedKey"))
            .ok_or_else(|| {
                malformed(
                    "EncryptedData",
                    "missing <KeyInfo><EncryptedKey> (only keys wrapped for a certificate are supported)",
                )
            })?;
        let session_key = self.unwrap_session_key(encrypted_key)?;
        if session_key.len() != key_size {
            return Err(malformed(
                "EncryptedKey",
                format!(
                    "the unwrapped key is {} bytes, but {content_algorithm} needs {key_size}",
                    session_key.len()
                ),
            ));
        }
        let plaintext = cbc_decrypt(&session_key, &cipher_value)?;
        // The parser's message could quote the secret, so it is not passed on.
        Element::parse_bytes(&plaintext).map_err(|_| {
            malformed(
                "EncryptedData",
                "the decrypted content is not a well-formed XML element",
            )
        })
    }

    fn unwrap_session_key(&self, encrypted_key: &Element) -> Result<Zeroizing<Vec<u8>>> {
        let transport = algorithm_of(encrypted_key)?
            .ok_or_else(|| malformed("EncryptedKey", "missing <EncryptionMethod Algorithm=…>"))?;
        let use_oaep = match transport.as_str() {
            XMLENC_RSA_1_5 => false,
            XMLENC_RSA_OAEP_MGF1P => true,
            other => {
                return Err(Error::UnsupportedAlgorithm(format!(
                    "XML encryption key transport {other}"
                )));
            }
        };
        let wrapped = cipher_value(encrypted_key, "EncryptedKey")?;
        let certificates = x509_certificates(encrypted_key)?;
        if certificates.is_empty() {
            return Err(malformed(
                "EncryptedKey",
                "no <KeyInfo><X509Data><X509Certificate> names the certificate",
            ));
        }
        let Some(certificate) = certificates
            .iter()
            .find_map(|der| self.certificates.get(&thumbprint_of(der)))
        else {
            let der = &certificates[0];
            return Err(Error::KeyDecryption {
                what: "a key encrypted with an X.509 certificate".into(),
                source: Box::new(X509Error::CertificateNotConfigured {
                    thumbprint: thumbprint_of(der),
                    subject: subject_of(der),
                }),
            });
        };
        let private_key = certificate
            .private_key()
            .ok_or_else(|| Error::KeyDecryption {
                what: "a key encrypted with an X.509 certificate".into(),
                source: Box::new(X509Error::MissingPrivateKey {
                    thumbprint: certificate.thumbprint().to_string(),
                    subject: certificate.subject().to_string(),
                }),
            })?;
        let failed = || {
            tracing::debug!(
                thumbprint = certificate.thumbprint(),
                oaep = use_oaep,
                "RSA key transport did not decrypt"
            );
            malformed(
                "EncryptedKey",
                format!(
                    "the session key does not decrypt with certificate {}: the element is corrupt",
                    certificate.thumbprint()
                ),
            )
        };
        let mut out = Zeroizing::new(vec![0u8; private_key.key_size_bytes()]);
        let len = if use_oaep {
            let rsa = OaepPrivateDecryptingKey::new(private_key.clone()).map_err(|_| failed())?;
            rsa.decrypt(&OAEP_SHA1_MGF1SHA1, &wrapped, &mut out, None)
                .map_err(|_| failed())?
                .len()
        } else {
            let rsa = Pkcs1PrivateDecryptingKey::new(private_key.clone()).map_err(|_| failed())?;
            rsa.decrypt(&wrapped, &mut out).map_err(|_| failed())?.len()
        };
        out.truncate(len);
        Ok(out)
    }
}

#[async_trait]
impl XmlDecryptor for EncryptedXmlDecryptor {
    async fn decrypt(&self, encrypted: &Element) -> Result<Element> {
        match (self.decrypt_element(encrypted), &self.fallback) {
            (Err(Error::KeyDecryption { source, .. }), Some(fallback))
                if matches!(
                    source.downcast_ref::<X509Error>(),
                    Some(X509Error::CertificateNotConfigured { .. })
                ) =>
            {
                fallback.decrypt(encrypted).await
            }
            (result, _) => result,
        }
    }
}

fn malformed(element: &str, reason: impl Into<String>) -> Error {
    Error::malformed(element, reason)
}

fn child_ns<'a>(e: &'a Element, namespace: &str, local_name: &str) -> Option<&'a Element> {
    e.elements().find(|c| c.is_ns(namespace, local_name))
}

fn algorithm_of(e: &Element) -> Result<Option<String>> {
    match child_ns(e, XMLENC_NS, "EncryptionMethod") {
        None => Ok(None),
        Some(m) => Ok(Some(
            m.attr("Algorithm")
                .ok_or_else(|| malformed("EncryptionMethod", "missing Algorithm attribute"))?
                .trim()
                .to_string(),
        )),
    }
}

fn base64_text(e: &Element, what: &str) -> Result<Vec<u8>> {
    let text: String = e
        .text()
        .chars()
        .filter(|c| !c.is_ascii_whitespace())
        .collect();
    if text.is_empty() {
        return Err(malformed(what, "empty"));
    }
    STANDARD
        .decode(text.as_bytes())
        .map_err(|_| malformed(what, "not valid Base64"))
}

fn cipher_value(e: &Element, what: &str) -> Result<Vec<u8>> {
    let value = child_ns(e, XMLENC_NS, "CipherData")
        .and_then(|d| child_ns(d, XMLENC_NS, "CipherValue"))
        .ok_or_else(|| {
            malformed(
                what,
                "missing <CipherData><CipherValue> (CipherReference is not supported)",
            )
        })?;
    base64_text(value, "CipherValue")
}

fn x509_certificates(encrypted_key: &Element) -> Result<Vec<Vec<u8>>> {
    let mut out = Vec::new();
    if let Some(key_info) = child_ns(encrypted_key, XMLDSIG_NS, "KeyInfo") {
        for data in key_info
            .elements()
            .filter(|e| e.is_ns(XMLDSIG_NS, "X509Data"))
        {
            for cert in data
                .elements()
                .filter(|e| e.is_ns(XMLDSIG_NS, "X509Certificate"))
            {
                out.push(base64_text(cert, "X509Certificate")?);
            }
        }
    }
    Ok(out)
}

/// IV ‖ ciphertext → plaintext. Padding is read as .NET's ISO 10126 reader
/// does: the last byte (1 to 16) says how many bytes to drop; the filler is
/// not checked (it is random).
fn cbc_decrypt(key: &[u8], cipher_value: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
    if cipher_value.len() < 2 * BLOCK || !cipher_value.len().is_multiple_of(BLOCK) {
        return Err(malformed(
            "CipherValue",
            format!(
                "must be a 16-byte IV and whole 16-byte blocks, found {} bytes",
                cipher_value.len()
            ),
        ));
    }
    let (iv, body) = cipher_value.split_at(BLOCK);
    fn run<C>(key: &[u8], iv: &[u8], body: &[u8], out: &mut [u8]) -> Option<()>
    where
        cbc::Decryptor<C>: KeyIvInit + BlockModeDecrypt,
        C: cbc::cipher::BlockCipherDecrypt,
    {
        cbc::Decryptor::<C>::new_from_slices(key, iv)
            .ok()?
            .decrypt_padded_b2b::<NoPadding>(body, out)
            .ok()
            .map(|_| ())
    }
    let mut out = Zeroizing::new(vec![0u8; body.len()]);
    let ok = match key.len() {
        16 => run::<Aes128>(key, iv, body, &mut out),
        24 => run::<Aes192>(key, iv, body, &mut out),
        32 => run::<Aes256>(key, iv, body, &mut out),
        _ => None,
    };
    let corrupt = || {
        malformed(
            "CipherValue",
            "does not decrypt with the session key: the element is corrupt",
        )
    };
    ok.ok_or_else(corrupt)?;
    let pad = usize::from(*out.last().ok_or_else(corrupt)?);
    if pad == 0 || pad > BLOCK {
        return Err(corrupt());
    }
    let len = out.len() - pad;
    out.truncate(len);
    Ok(out)
}
