//! `<key>`, descriptor and `<revocation>` elements (format.md §5).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use time::OffsetDateTime;
use uuid::Uuid;
use zeroize::Zeroizing;

use super::date::{format_date, parse_date};
use super::dom::{Element, Node};
use crate::crypto::{AesKeySize, Algorithm, Secret, ValidationAlgorithm};
use crate::error::{Error, Result};

/// The Data Protection XML namespace (`requiresEncryption`, `encryptedSecret`).
pub const DATA_PROTECTION_NS: &str = "http://schemas.asp.net/2015/03/dataProtection";

const TYPE_PREFIX: &str =
    "Microsoft.AspNetCore.DataProtection.AuthenticatedEncryption.ConfigurationModel.";
/// [`TYPE_PREFIX`] without the `Microsoft.AspNetCore.DataProtection.` namespace.
const TYPE_SUFFIX_AFTER_NAMESPACE: &str = "AuthenticatedEncryption.ConfigurationModel.";
const ASSEMBLY_SUFFIX: &str = ", Microsoft.AspNetCore.DataProtection, Version=8.0.0.0, Culture=neutral, PublicKeyToken=adb9793829ddae60";

/// The four descriptor deserializers ASP.NET Core writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DescriptorKind {
    /// `AuthenticatedEncryptorDescriptorDeserializer` (what `AddDataProtection()` writes).
    Default,
    /// `ManagedAuthenticatedEncryptorDescriptorDeserializer` (`Aes` + `HMACSHA*`).
    Managed,
    /// `CngCbcAuthenticatedEncryptorDescriptorDeserializer` (Windows CNG CBC).
    CngCbc,
    /// `CngGcmAuthenticatedEncryptorDescriptorDeserializer` (Windows CNG GCM).
    CngGcm,
}

impl DescriptorKind {
    /// The full assembly-qualified type name written in `deserializerType`.
    pub fn deserializer_type(self) -> String {
        let name = match self {
            DescriptorKind::Default => "AuthenticatedEncryptorDescriptorDeserializer",
            DescriptorKind::Managed => "ManagedAuthenticatedEncryptorDescriptorDeserializer",
            DescriptorKind::CngCbc => "CngCbcAuthenticatedEncryptorDescriptorDeserializer",
            DescriptorKind::CngGcm => "CngGcmAuthenticatedEncryptorDescriptorDeserializer",
        };
        format!("{TYPE_PREFIX}{name}{ASSEMBLY_SUFFIX}")
    }

    /// Recognises a `deserializerType`, ignoring assembly, version and token,
    /// and mapping legacy `Microsoft.AspNet.DataProtection` names.
    pub fn from_type_name(type_name: &str) -> Result<Self> {
        // As normalize_type_name, without allocating: this runs for every
        // key of a ring.
        let full = type_name.split(',').next().unwrap_or("").trim();
        let short = full
            .strip_prefix("Microsoft.AspNetCore.DataProtection.")
            .or_else(|| full.strip_prefix("Microsoft.AspNet.DataProtection."))
            .and_then(|rest| rest.strip_prefix(TYPE_SUFFIX_AFTER_NAMESPACE));
        match short {
            Some("AuthenticatedEncryptorDescriptorDeserializer") => Ok(DescriptorKind::Default),
            Some("ManagedAuthenticatedEncryptorDescriptorDeserializer") => {
                Ok(DescriptorKind::Managed)
            }
            Some("CngCbcAuthenticatedEncryptorDescriptorDeserializer") => {
                Ok(DescriptorKind::CngCbc)
            }
            Some("CngGcmAuthenticatedEncryptorDescriptorDeserializer") => {
                Ok(DescriptorKind::CngGcm)
            }
            _ => Err(Error::UnsupportedAlgorithm(format!(
                "descriptor deserializer {:?}",
                normalize_type_name(type_name)
            ))),
        }
    }
}

/// The full type name of a .NET assembly-qualified name: the text before the
/// first comma, with the legacy `Microsoft.AspNet.DataProtection.` namespace
/// mapped to `Microsoft.AspNetCore.DataProtection.`.
pub fn normalize_type_name(type_name: &str) -> String {
    let full = type_name.split(',').next().unwrap_or("").trim();
    match full.strip_prefix("Microsoft.AspNet.DataProtection.") {
        Some(rest) => format!("Microsoft.AspNetCore.DataProtection.{rest}"),
        None => full.to_string(),
    }
}

/// A `<key>` element: id, dates, and the (possibly encrypted) descriptor.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyXml {
    /// Key id.
    pub id: Uuid,
    /// When the key was created.
    pub creation_date: OffsetDateTime,
    /// When the key may start being the default.
    pub activation_date: OffsetDateTime,
    /// When the key stops being usable for protecting.
    pub expiration_date: OffsetDateTime,
    /// The outer `<descriptor deserializerType=…>` element.
    pub descriptor: Element,
}

impl std::fmt::Debug for KeyXml {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyXml")
            .field("id", &self.id)
            .field("creation_date", &self.creation_date)
            .field("activation_date", &self.activation_date)
            .field("expiration_date", &self.expiration_date)
            .finish_non_exhaustive()
    }
}

fn parse_id(element: &Element, text: &str) -> Result<Uuid> {
    Uuid::parse_str(text.trim())
        .map_err(|_| Error::malformed(element.local_name(), format!("{text:?} is not a GUID")))
}

fn date_child(e: &Element, name: &str) -> Result<OffsetDateTime> {
    let child = e.required_child(name)?;
    let text = child.text_cow();
    parse_date(&text)
        .map_err(|_| Error::malformed(name, format!("{text:?} is not an xsd:dateTime")))
}

/// What a `<key>` element says, with where its `<descriptor>` is among its
/// children, so that the caller can clone it or move it out.
struct KeyParts {
    id: Uuid,
    creation_date: OffsetDateTime,
    activation_date: OffsetDateTime,
    expiration_date: OffsetDateTime,
    descriptor_index: usize,
}

impl KeyParts {
    fn read(e: &Element) -> Result<Self> {
        if !e.is("key") {
            return Err(Error::malformed(e.local_name(), "expected a <key> element"));
        }
        let id = parse_id(e, e.required_attr("id")?)?;
        let creation_date = date_child(e, "creationDate")?;
        let activation_date = date_child(e, "activationDate")?;
        let expiration_date = date_child(e, "expirationDate")?;
        let descriptor_index = e
            .children
            .iter()
            .position(|n| matches!(n, Node::Element(c) if c.is("descriptor")))
            .ok_or_else(|| Error::malformed(e.local_name(), "missing <descriptor> element"))?;
        if let Some(Node::Element(descriptor)) = e.children.get(descriptor_index) {
            descriptor.required_attr("deserializerType")?;
        }
        Ok(KeyParts {
            id,
            creation_date,
            activation_date,
            expiration_date,
            descriptor_index,
        })
    }

    fn with_descriptor(self, descriptor: Element) -> KeyXml {
        KeyXml {
            id: self.id,
            creation_date: self.creation_date,
            activation_date: self.activation_date,
            expiration_date: self.expiration_date,
            descriptor,
        }
    }
}

impl KeyXml {
    /// Reads a `<key>` element.
    pub fn from_element(e: &Element) -> Result<Self> {
        let parts = KeyParts::read(e)?;
        match e.children.get(parts.descriptor_index) {
            Some(Node::Element(descriptor)) => Ok(parts.with_descriptor(descriptor.clone())),
            _ => Err(Error::malformed("key", "missing <descriptor> element")),
        }
    }

    /// As [`KeyXml::from_element`], moving the descriptor out of `e` instead
    /// of copying it (loading a ring reads every key once).
    pub fn from_owned_element(mut e: Element) -> Result<Self> {
        let parts = KeyParts::read(&e)?;
        let slot = e.children.get_mut(parts.descriptor_index);
        match slot.map(|n| std::mem::replace(n, Node::Text(String::new()))) {
            Some(Node::Element(descriptor)) => Ok(parts.with_descriptor(descriptor)),
            _ => Err(Error::malformed("key", "missing <descriptor> element")),
        }
    }

    /// Writes the `<key>` element as `XmlKeyManager.CreateNewKey` does.
    pub fn to_element(&self) -> Element {
        Element::new("key")
            .with_attr("id", self.id.hyphenated().to_string())
            .with_attr("version", "1")
            .with_child(Element::new("creationDate").with_text(format_date(self.creation_date)))
            .with_child(Element::new("activationDate").with_text(format_date(self.activation_date)))
            .with_child(Element::new("expirationDate").with_text(format_date(self.expiration_date)))
            .with_child(self.descriptor.clone())
    }

    /// The file-system friendly name, `key-{id}`.
    pub fn friendly_name(&self) -> String {
        format!("key-{}", self.id.hyphenated())
    }
}

/// Builds the outer `<descriptor>` for a new key in the default descriptor
/// format, with the master key marked `requiresEncryption`.
pub fn descriptor_element(algorithm: Algorithm, master_key: &Secret) -> Element {
    let mut inner = Element::new("descriptor")
        .with_child(Element::new("encryption").with_attr("algorithm", algorithm.encryption_name()));
    match algorithm.validation_name() {
        Some(v) => inner = inner.with_child(Element::new("validation").with_attr("algorithm", v)),
        None => {
            inner = inner.with_comment(
                " AES-GCM includes a 128-bit authentication tag, no extra validation algorithm required. ",
            )
        }
    }
    inner = inner.with_child(master_key_element(master_key));
    Element::new("descriptor")
        .with_attr(
            "deserializerType",
            DescriptorKind::Default.deserializer_type(),
        )
        .with_child(inner)
}

/// `<masterKey p4:requiresEncryption="true" xmlns:p4=…>` with the warning
/// comment and the Base64 value.
pub fn master_key_element(master_key: &Secret) -> Element {
    let mut mk = Element::new("masterKey");
    mk.push_attr_ns("p4:requiresEncryption", Some(DATA_PROTECTION_NS), "true");
    mk.declare_namespace("p4", DATA_PROTECTION_NS);
    mk.with_comment(" Warning: the key below is in an unencrypted form. ")
        .with_child(Element::new("value").with_text(STANDARD.encode(master_key.expose())))
}

/// What a decrypted descriptor says.
#[derive(Clone, PartialEq, Eq)]
pub struct Descriptor {
    /// Which deserializer wrote it.
    pub kind: DescriptorKind,
    /// The algorithm of the key.
    pub algorithm: Algorithm,
    /// The 512-bit (usually) master key.
    pub master_key: Secret,
}

impl std::fmt::Debug for Descriptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Descriptor")
            .field("kind", &self.kind)
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

/// Whether an element (or a descendant) still holds an `<encryptedSecret>`.
pub fn contains_encrypted_secret(e: &Element) -> bool {
    e.is_ns(DATA_PROTECTION_NS, "encryptedSecret") || e.elements().any(contains_encrypted_secret)
}

fn inner_descriptor(outer: &Element) -> Result<&Element> {
    let mut inner_elements = outer.elements();
    match (inner_elements.next(), inner_elements.next()) {
        (Some(inner), None) => Ok(inner),
        _ => Err(Error::malformed(
            "descriptor",
            "must contain exactly one child element",
        )),
    }
}

/// Reads an outer `<descriptor>` whose secrets have been decrypted.
pub fn read_descriptor(outer: &Element) -> Result<Descriptor> {
    let (kind, algorithm) = read_descriptor_algorithm(outer)?;
    let inner = inner_descriptor(outer)?;
    if contains_encrypted_secret(inner) {
        return Err(Error::malformed(
            "descriptor",
            "the master key is still encrypted (decrypt it first)",
        ));
    }
    let master_key = read_master_key(inner.required_child("masterKey")?)?;
    Ok(Descriptor {
        kind,
        algorithm,
        master_key,
    })
}

/// Reads which deserializer and algorithm an outer `<descriptor>` names,
/// without touching the (possibly encrypted) master key.
pub fn read_descriptor_algorithm(outer: &Element) -> Result<(DescriptorKind, Algorithm)> {
    let kind = DescriptorKind::from_type_name(outer.required_attr("deserializerType")?)?;
    let inner = inner_descriptor(outer)?;
    let algorithm = match kind {
        DescriptorKind::Default => {
            let enc = inner
                .required_child("encryption")?
                .required_attr("algorithm")?;
            let val = inner
                .child("validation")
                .map(|v| v.required_attr("algorithm"))
                .transpose()?;
            Algorithm::from_names(enc, val)?
        }
        DescriptorKind::Managed => {
            let enc = inner.required_child("encryption")?;
            let alg = enc.attr("algorithm").unwrap_or("Aes");
            if normalize_type_name(alg) != "Aes"
                && !alg.starts_with("System.Security.Cryptography.Aes")
            {
                return Err(Error::UnsupportedAlgorithm(format!(
                    "managed symmetric algorithm {alg:?}"
                )));
            }
            let bits = number_attr(enc, "keyLength", 256)?;
            let mac = match inner.child("validation").and_then(|v| v.attr("algorithm")) {
                None => ValidationAlgorithm::HmacSha256,
                Some(name) => managed_mac(name)?,
            };
            Algorithm::CbcHmac {
                aes: AesKeySize::from_bits(bits)?,
                mac,
            }
        }
        DescriptorKind::CngCbc => {
            let enc = inner.required_child("encryption")?;
            cng_aes(enc)?;
            let bits = number_attr(enc, "keyLength", 256)?;
            let hash = inner
                .child("hash")
                .and_then(|h| h.attr("algorithm"))
                .unwrap_or("SHA256");
            let mac = match hash.trim().to_ascii_uppercase().as_str() {
                "SHA1" => ValidationAlgorithm::HmacSha1,
                "SHA256" => ValidationAlgorithm::HmacSha256,
                "SHA384" => ValidationAlgorithm::HmacSha384,
                "SHA512" => ValidationAlgorithm::HmacSha512,
                other => {
                    return Err(Error::UnsupportedAlgorithm(format!("CNG hash {other:?}")));
                }
            };
            Algorithm::CbcHmac {
                aes: AesKeySize::from_bits(bits)?,
                mac,
            }
        }
        DescriptorKind::CngGcm => {
            let enc = inner.required_child("encryption")?;
            cng_aes(enc)?;
            Algorithm::Gcm {
                aes: AesKeySize::from_bits(number_attr(enc, "keyLength", 256)?)?,
            }
        }
    };
    Ok((kind, algorithm))
}

fn number_attr(e: &Element, name: &str, default: u32) -> Result<u32> {
    match e.attr(name) {
        None => Ok(default),
        Some(v) => v.trim().parse().map_err(|_| {
            Error::malformed(
                e.local_name(),
                format!("attribute {name}={v:?} is not a number"),
            )
        }),
    }
}

fn cng_aes(enc: &Element) -> Result<()> {
    match enc.attr("algorithm").map(str::trim) {
        None | Some("AES") => Ok(()),
        Some(other) => Err(Error::UnsupportedAlgorithm(format!("CNG cipher {other:?}"))),
    }
}

fn managed_mac(name: &str) -> Result<ValidationAlgorithm> {
    let short = normalize_type_name(name);
    let short = short.rsplit('.').next().unwrap_or("");
    match short {
        "HMACSHA1" => Ok(ValidationAlgorithm::HmacSha1),
        "HMACSHA256" => Ok(ValidationAlgorithm::HmacSha256),
        "HMACSHA384" => Ok(ValidationAlgorithm::HmacSha384),
        "HMACSHA512" => Ok(ValidationAlgorithm::HmacSha512),
        _ => Err(Error::UnsupportedAlgorithm(format!(
            "managed validation algorithm {name:?}"
        ))),
    }
}

/// Reads the Base64 master key from `<masterKey>`: its whole string value
/// (comments ignored, whitespace tolerated), as the .NET deserializers do.
pub fn read_master_key(e: &Element) -> Result<Secret> {
    let text = e.text_cow();
    // The Base64 text is a secret too: gathered into a buffer wiped on drop.
    let mut base64 = Zeroizing::new(Vec::with_capacity(text.len()));
    if text.is_ascii() {
        // `char::is_whitespace` on ASCII, byte by byte.
        base64.extend(
            text.bytes()
                .filter(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\x0B' | b'\x0C' | b'\r')),
        );
    } else {
        let mut utf8 = [0u8; 4];
        for c in text.chars().filter(|c| !c.is_whitespace()) {
            base64.extend_from_slice(c.encode_utf8(&mut utf8).as_bytes());
        }
    }
    let bytes = STANDARD
        .decode(base64.as_slice())
        .map_err(|_| Error::malformed("masterKey", "the value is not valid Base64"))?;
    if bytes.is_empty() {
        return Err(Error::malformed("masterKey", "the master key is empty"));
    }
    Ok(Secret::new(bytes))
}

/// What a `<revocation>` revokes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RevocationTarget {
    /// One key.
    Key(Uuid),
    /// Every key created strictly before the revocation date (`<key id="*" />`).
    AllCreatedBefore,
}

/// A `<revocation>` element.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RevocationXml {
    /// `revocationDate` (its offset is kept).
    pub date: OffsetDateTime,
    /// What is revoked.
    pub target: RevocationTarget,
    /// Free-text reason.
    pub reason: Option<String>,
}

impl RevocationXml {
    /// Reads a `<revocation>` element.
    pub fn from_element(e: &Element) -> Result<Self> {
        if !e.is("revocation") {
            return Err(Error::malformed(
                e.local_name(),
                "expected a <revocation> element",
            ));
        }
        let date = date_child(e, "revocationDate")?;
        let key = e.required_child("key")?;
        let id = key.required_attr("id")?;
        let target = if id.trim() == "*" {
            RevocationTarget::AllCreatedBefore
        } else {
            RevocationTarget::Key(parse_id(key, id)?)
        };
        let reason = e
            .child("reason")
            .map(Element::text)
            .filter(|r| !r.is_empty());
        Ok(RevocationXml {
            date,
            target,
            reason,
        })
    }

    /// Writes the element as `XmlKeyManager` does.
    pub fn to_element(&self) -> Element {
        let mut e = Element::new("revocation")
            .with_attr("version", "1")
            .with_child(Element::new("revocationDate").with_text(format_date(self.date)));
        let id = match self.target {
            RevocationTarget::AllCreatedBefore => {
                e = e.with_comment(" All keys created before the revocation date are revoked. ");
                "*".to_string()
            }
            RevocationTarget::Key(id) => id.hyphenated().to_string(),
        };
        e = e.with_child(Element::new("key").with_attr("id", id));
        let mut reason = Element::new("reason");
        if let Some(r) = &self.reason {
            reason.children.push(Node::Text(r.clone()));
        }
        e.with_child(reason)
    }

    /// The file-system friendly name: `revocation-{id}` or
    /// `revocation-yyyyMMddTHHmmssFFFFFFFZ` (UTC) for a mass revocation.
    pub fn friendly_name(&self) -> String {
        match self.target {
            RevocationTarget::Key(id) => format!("revocation-{}", id.hyphenated()),
            RevocationTarget::AllCreatedBefore => {
                // Dates outside the UTC range keep their own offset rather than panic.
                let u = self
                    .date
                    .checked_to_offset(time::UtcOffset::UTC)
                    .unwrap_or(self.date);
                let ticks = u.nanosecond() / 100;
                let frac = if ticks == 0 {
                    String::new()
                } else {
                    format!("{ticks:07}").trim_end_matches('0').to_string()
                };
                format!(
                    "revocation-{:04}{:02}{:02}T{:02}{:02}{:02}{frac}Z",
                    u.year(),
                    u8::from(u.month()),
                    u.day(),
                    u.hour(),
                    u.minute(),
                    u.second()
                )
            }
        }
    }
}

/// One stored top-level element, classified.
#[derive(Clone, Debug)]
pub enum StoredElement {
    /// A `<key>`.
    Key(KeyXml),
    /// A `<revocation>`.
    Revocation(RevocationXml),
    /// Anything else: kept, never interpreted.
    Other,
}

impl StoredElement {
    /// Classifies an element. A `<key>` or `<revocation>` that does not parse
    /// is an error naming what is wrong.
    pub fn classify(e: &Element) -> Result<Self> {
        if e.is("key") {
            KeyXml::from_element(e).map(StoredElement::Key)
        } else if e.is("revocation") {
            RevocationXml::from_element(e).map(StoredElement::Revocation)
        } else {
            Ok(StoredElement::Other)
        }
    }

    /// As [`StoredElement::classify`], moving a key's descriptor out of `e`.
    pub fn classify_owned(e: Element) -> Result<Self> {
        if e.is("key") {
            KeyXml::from_owned_element(e).map(StoredElement::Key)
        } else {
            Self::classify(&e)
        }
    }
}

/// A stored top-level element as loading a ring reads it: classified,
/// with whether it is a `<revocation>` (one that cannot be read fails the
/// load, since ignoring it could make a revoked key usable again; a `<key>`
/// that cannot be read is skipped and reported).
///
/// ```
/// use dataprotection::xml::{ClassifiedElement, Element, StoredElement};
///
/// let read = ClassifiedElement::of(Element::parse("<revocation version='1'/>").unwrap());
/// assert!(read.is_revocation && read.classified.is_err());
/// let read = ClassifiedElement::of(Element::parse("<custom/>").unwrap());
/// assert!(matches!(read.classified, Ok(StoredElement::Other)));
/// ```
#[derive(Debug)]
pub struct ClassifiedElement {
    /// It is a `<revocation>` element (whether or not it could be read).
    pub is_revocation: bool,
    /// What it was read as, or why it could not be.
    pub classified: Result<StoredElement>,
}

impl ClassifiedElement {
    /// Classifies `element`, moving a key's descriptor out of it.
    pub fn of(element: Element) -> Self {
        ClassifiedElement {
            is_revocation: element.is("revocation"),
            classified: StoredElement::classify_owned(element),
        }
    }

    /// Classifies every element of `elements`, in order: a large ring on a
    /// few threads (each element on its own, so the outcome is the one
    /// thread's).
    pub(crate) fn all(elements: Vec<Element>) -> Vec<Self> {
        /// Elements a thread takes at a time.
        const ELEMENTS_PER_BLOCK: usize = 256;
        let threads = crate::parallel::threads_for(elements.len());
        crate::parallel::map_in_order(elements, threads, ELEMENTS_PER_BLOCK, Self::of)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::xml::Format;

    const KEY_ID: &str = "ba73c9ce-d322-4e45-af90-341307e11c38";

    fn master() -> Secret {
        Secret::new((0u8..64).collect())
    }

    /// `<key>` elements that read, and ones that do not, each as text.
    fn key_variants() -> Vec<String> {
        let descriptor =
            descriptor_element(Algorithm::default(), &master()).to_xml(Format::Compact);
        let dates = "<creationDate>2015-03-01T19:13:19.7573854-08:00</creationDate>\
                     <activationDate><![CDATA[2015-03-01T19:13:19Z]]></activationDate>\
                     <expirationDate> <!-- a comment -->2015-05-30T19:13:19Z</expirationDate>";
        vec![
            format!("<key id='{KEY_ID}' version='1'>{dates}{descriptor}</key>"),
            // Two descriptors: the first is the key's.
            format!(
                "<key id='{KEY_ID}' version='1'>{dates}{descriptor}\
                 <descriptor deserializerType='other'/></key>"
            ),
            // A foreign element before the descriptor.
            format!("<key id='{KEY_ID}' version='1'>{dates}<x/>{descriptor}</key>"),
            format!("<key id='{KEY_ID}' version='1'>{dates}</key>"),
            format!("<key id='{KEY_ID}' version='1'>{dates}<descriptor/></key>"),
            format!("<key id='not-a-guid' version='1'>{dates}{descriptor}</key>"),
            format!(
                "<key id='{KEY_ID}' version='1'><creationDate>yesterday</creationDate>\
                 <activationDate/><expirationDate/>{descriptor}</key>"
            ),
            format!("<key version='1'>{dates}{descriptor}</key>"),
            format!("<revocation version='1'>{dates}{descriptor}</revocation>"),
        ]
    }

    #[test]
    fn a_key_read_from_an_owned_element_is_the_key_read_from_a_borrowed_one() {
        let mut read = 0;
        for text in key_variants() {
            let element = Element::parse(&text).unwrap();
            let borrowed = KeyXml::from_element(&element);
            let owned = KeyXml::from_owned_element(element.clone());
            match (&borrowed, &owned) {
                (Ok(b), Ok(o)) => {
                    assert_eq!(b, o, "{text}");
                    assert_eq!(b.descriptor, *element.child("descriptor").unwrap());
                    read += 1;
                }
                (Err(b), Err(o)) => assert_eq!(b.to_string(), o.to_string(), "{text}"),
                _ => panic!("{text}: {borrowed:?} vs {owned:?}"),
            }
            let classified = StoredElement::classify(&element).map(|c| format!("{c:?}"));
            let classified_owned = StoredElement::classify_owned(element).map(|c| format!("{c:?}"));
            assert_eq!(
                classified.map_err(|e| e.to_string()),
                classified_owned.map_err(|e| e.to_string())
            );
        }
        assert_eq!(read, 3, "the first three variants are keys");
    }

    #[test]
    fn dates_in_cdata_or_beside_comments_read_as_their_text() {
        let text = &key_variants()[0];
        let key = KeyXml::from_element(&Element::parse(text).unwrap()).unwrap();
        assert_eq!(format_date(key.activation_date), "2015-03-01T19:13:19Z");
        assert_eq!(format_date(key.expiration_date), "2015-05-30T19:13:19Z");
    }

    #[test]
    fn master_key_text_ignores_every_kind_of_whitespace() {
        let encoded = STANDARD.encode(master().expose());
        let (head, tail) = encoded.split_at(10);
        for spaced in [
            format!(" \t\r\n{head}\u{0B}\u{0C} {tail}\n"),
            format!("{head}\u{A0}{tail}\u{2003}"),
            encoded.clone(),
        ] {
            let value =
                Element::new("masterKey").with_child(Element::new("value").with_text(spaced));
            assert_eq!(read_master_key(&value).unwrap().expose(), master().expose());
        }
        for bad in [format!("{head}é{tail}"), String::new(), "!!!!".into()] {
            let value = Element::new("masterKey").with_child(Element::new("value").with_text(bad));
            assert!(read_master_key(&value).is_err());
        }
    }
}
