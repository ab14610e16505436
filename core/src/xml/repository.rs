//! The `<repository>` document that holds a whole key ring in one blob
//! (Azure.Extensions.AspNetCore.DataProtection.Blobs, format.md §8).
//!
//! Children are kept as the exact text they were read as: rewriting the
//! document after an append reproduces every existing element byte for byte,
//! including elements this library does not understand or cannot decrypt.

use quick_xml::Reader;
use quick_xml::events::Event;

use super::dom::{
    DECLARATION, Element, Format, MAX_DEPTH, Scope, check_declaration, dtd_refused,
    parse_with_scope,
};
use super::key::ClassifiedElement;
use crate::error::{Error, Result};

/// One top-level element of a repository document.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RepositoryChild {
    raw: String,
    element: Element,
    /// Where a backend that keeps each element apart (a file per key) stores
    /// it; `None` for elements inside one document or not stored yet.
    location: Option<String>,
    /// The name hint of an element added since the document was read.
    friendly_name: Option<String>,
    /// Whether the element was replaced since the document was read.
    replaced: bool,
}

impl RepositoryChild {
    /// Where the element is stored, for backends that keep each element in
    /// its own object (the file name for a directory); `None` for an element
    /// added since the document was read, or stored inside the document.
    pub fn location(&self) -> Option<&str> {
        self.location.as_deref()
    }

    /// The name hint (`key-{id}`) given when the element was added with
    /// [`RepositoryDocument::push_named`].
    pub fn friendly_name(&self) -> Option<&str> {
        self.friendly_name.as_deref()
    }

    /// Whether [`RepositoryDocument::replace`] replaced this element since the
    /// document was read.
    pub fn is_replaced(&self) -> bool {
        self.replaced
    }

    /// The element, parsed.
    pub fn element(&self) -> &Element {
        &self.element
    }

    /// The element's text exactly as stored.
    pub fn raw(&self) -> &str {
        &self.raw
    }
}

/// A parsed `<repository>` document.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RepositoryDocument {
    root_open: String,
    root_name: String,
    children: Vec<RepositoryChild>,
    /// Locations of children removed since the document was read.
    removed: Vec<String>,
}

impl Default for RepositoryDocument {
    fn default() -> Self {
        RepositoryDocument {
            root_open: "<repository>".into(),
            root_name: "repository".into(),
            children: Vec::new(),
            removed: Vec::new(),
        }
    }
}

impl RepositoryDocument {
    /// An empty `<repository>`.
    pub fn new() -> Self {
        Self::default()
    }

    /// Parses a document. Empty input (a zero-length blob) is an empty ring;
    /// a UTF-8 BOM and the XML declaration are optional; the root's name is
    /// not checked (as in .NET). Anything that is not well-formed is an error,
    /// so that a damaged blob is never silently replaced.
    ///
    /// # Example
    ///
    /// ```
    /// use dataprotection::xml::{Element, Format, RepositoryDocument};
    /// let mut doc = RepositoryDocument::parse(b"<repository><x a='1'/></repository>").unwrap();
    /// doc.push(&Element::new("y"));
    /// assert_eq!(
    ///     String::from_utf8(doc.to_bytes()).unwrap(),
    ///     "<?xml version=\"1.0\" encoding=\"utf-8\"?><repository><x a='1'/><y /></repository>"
    /// );
    /// ```
    pub fn parse(bytes: &[u8]) -> Result<Self> {
        Self::parse_then(bytes, |_| ()).map(|(document, _)| document)
    }

    /// As [`RepositoryDocument::parse`], also classifying each element as a
    /// ring load reads it ([`ClassifiedElement::of_borrowed`]), on the
    /// thread that parsed it while it is still in cache: what a backend
    /// that keeps the document it read (a blob) gives a ring load.
    pub fn parse_classified(bytes: &[u8]) -> Result<(Self, Vec<ClassifiedElement>)> {
        Self::parse_then(bytes, ClassifiedElement::of_borrowed)
    }

    /// Parses, and makes `then` of each element where it was parsed.
    fn parse_then<T: Send>(
        bytes: &[u8],
        then: impl Fn(&Element) -> T + Sync,
    ) -> Result<(Self, Vec<T>)> {
        let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
        if bytes.iter().all(|b| b.is_ascii_whitespace()) {
            return Ok((Self::new(), Vec::new()));
        }
        let text = std::str::from_utf8(bytes)
            .map_err(|_| Error::malformed("repository", "the document is not valid UTF-8"))?;
        if text.starts_with('\u{feff}') {
            return Err(Error::malformed(
                "repository",
                "more than one byte order mark",
            ));
        }
        // The document is checked as `Element::parse` checks it, without
        // building it whole: what lies outside the children by one scan,
        // each child by parsing it (on several threads for a large ring).
        let outline = outline(text);
        let scope = outline.root.as_ref().map(|root| {
            Scope::from_bindings(root.attributes.iter().filter_map(|a| {
                if a.name == "xmlns" {
                    Some((String::new(), a.value.clone()))
                } else {
                    a.name
                        .strip_prefix("xmlns:")
                        .map(|p| (p.to_string(), a.value.clone()))
                }
            }))
        });
        let raw_children: Vec<&str> = outline
            .children
            .iter()
            .filter_map(|range| text.get(range.clone()))
            .collect();
        let scope = scope.unwrap_or_default();
        let threads = crate::parallel::threads_for(raw_children.len());
        let parsed =
            crate::parallel::map_in_order(raw_children, threads, CHILDREN_PER_BLOCK, |raw| {
                child(raw, &scope).map(|child| {
                    let made = then(&child.element);
                    (child, made)
                })
            });
        // The first error in document order: a child's, or else what the
        // scan met after the children it found.
        let (children, made): (Vec<_>, Vec<_>) = parsed
            .into_iter()
            .collect::<Result<Vec<_>>>()?
            .into_iter()
            .unzip();
        if let Some(failure) = outline.failure {
            return Err(failure);
        }
        let root = outline
            .root
            .ok_or_else(|| Error::malformed("document", "no root element"))?;
        let document = RepositoryDocument {
            root_open: outline.root_open,
            root_name: root.name().to_string(),
            children,
            removed: Vec::new(),
        };
        Ok((document, made))
    }

    /// A document assembled from elements stored apart, each with its
    /// location (a file name) and its stored text. Its root is
    /// `<repository>`.
    pub fn from_stored(children: impl IntoIterator<Item = (String, String, Element)>) -> Self {
        RepositoryDocument {
            children: children
                .into_iter()
                .map(|(location, raw, element)| RepositoryChild {
                    raw,
                    element,
                    location: Some(location),
                    friendly_name: None,
                    replaced: false,
                })
                .collect(),
            ..Self::default()
        }
    }

    /// The root element's name (`repository` for a key ring).
    pub fn root_name(&self) -> &str {
        &self.root_name
    }

    /// The stored elements in document order.
    pub fn children(&self) -> &[RepositoryChild] {
        &self.children
    }

    /// The stored elements, parsed.
    pub fn elements(&self) -> Vec<Element> {
        self.children.iter().map(|c| c.element.clone()).collect()
    }

    /// The stored elements classified as a ring load reads them
    /// ([`ClassifiedElement::of_borrowed`]), in document order, on a few
    /// threads for a large ring, leaving the document as it is (a backend
    /// that keeps the document it read, to answer a refresh with a
    /// conditional request, copies nothing of it but the keys' descriptors).
    pub fn classified(&self) -> Vec<ClassifiedElement> {
        let elements: Vec<&Element> = self.children.iter().map(|c| &c.element).collect();
        let threads = crate::parallel::threads_for(elements.len());
        crate::parallel::map_in_order(
            elements,
            threads,
            CHILDREN_PER_BLOCK,
            ClassifiedElement::of_borrowed,
        )
    }

    /// The stored elements, parsed, moved out of the document: what a read
    /// that only interprets them needs, without copying each element.
    pub fn into_elements(self) -> Vec<Element> {
        self.children.into_iter().map(|c| c.element).collect()
    }

    /// Appends an element (written without formatting, as .NET does).
    pub fn push(&mut self, element: &Element) {
        self.children.push(RepositoryChild {
            raw: element.to_xml(Format::Compact),
            element: element.clone(),
            location: None,
            friendly_name: None,
            replaced: false,
        });
    }

    /// Appends an element with a name hint (`key-{id}`, `revocation-…`) that
    /// backends storing elements apart use as a file name.
    pub fn push_named(&mut self, element: &Element, friendly_name: &str) {
        self.push(element);
        if let Some(child) = self.children.last_mut() {
            child.friendly_name = Some(friendly_name.to_owned());
        }
    }

    /// Replaces the child at `index` by `element` (written without
    /// formatting, as [`RepositoryDocument::push`] does); every other child
    /// keeps its raw text. Returns `false` (and changes nothing) when there
    /// is no child at `index`.
    pub fn replace(&mut self, index: usize, element: &Element) -> bool {
        match self.children.get_mut(index) {
            Some(child) => {
                child.raw = element.to_xml(Format::Compact);
                child.element = element.clone();
                child.replaced = true;
                true
            }
            None => false,
        }
    }

    /// Keeps only the children for which `keep` returns true.
    pub fn retain(&mut self, mut keep: impl FnMut(&Element) -> bool) {
        let doomed: Vec<usize> = self
            .children
            .iter()
            .enumerate()
            .filter(|(_, c)| !keep(&c.element))
            .map(|(i, _)| i)
            .collect();
        self.remove_indices(&doomed);
    }

    /// The locations ([`RepositoryChild::location`]) of the children removed
    /// since the document was read: what a backend storing elements apart
    /// deletes.
    pub fn removed_locations(&self) -> &[String] {
        &self.removed
    }

    /// Removes the children at `indices` (indices out of range are ignored);
    /// returns how many were removed.
    pub fn remove_indices(&mut self, indices: &[usize]) -> usize {
        let before = self.children.len();
        // A mask, not `indices.contains` per child: pruning most of a large
        // ring would otherwise be quadratic.
        let mut doomed = vec![false; before];
        for &i in indices {
            if let Some(slot) = doomed.get_mut(i) {
                *slot = true;
            }
        }
        let mut index = 0;
        let mut removed = Vec::new();
        self.children.retain(|c| {
            let keep = !doomed[index];
            index += 1;
            if !keep && let Some(location) = &c.location {
                removed.push(location.clone());
            }
            keep
        });
        self.removed.extend(removed);
        before - self.children.len()
    }

    /// Serializes: XML declaration, the original root start tag, every child
    /// as stored, the end tag. No BOM (what the Azure SDK's tests expect;
    /// .NET reads either).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = String::with_capacity(
            DECLARATION.len() + 32 + self.children.iter().map(|c| c.raw.len()).sum::<usize>(),
        );
        out.push_str(DECLARATION);
        out.push_str(&self.root_open);
        for c in &self.children {
            out.push_str(&c.raw);
        }
        out.push_str("</");
        out.push_str(&self.root_name);
        out.push('>');
        out.into_bytes()
    }
}

/// The span of an event starting at its `<` (the reader may have skipped
/// something before it, such as a stray byte order mark).
/// Children a thread parses at a time.
const CHILDREN_PER_BLOCK: usize = 64;

/// What one scan of a repository document finds outside its children.
struct Outline {
    /// The root's start tag as written (`<repository …>`).
    root_open: String,
    /// The root element, without children (its start tag, parsed).
    root: Option<Element>,
    /// Where each top-level child's text is, in document order.
    children: Vec<std::ops::Range<usize>>,
    /// The first error met, after the children found.
    failure: Option<Error>,
}

/// Scans `text`, checking everything but the children's content as
/// [`Element::parse`] checks it (the same reader settings, the same errors:
/// a DTD, an encoding other than UTF-8, text or CDATA outside the root, a
/// second root, an undefined entity between children, mismatched or
/// missing end tags, nesting past the limit, an invalid root start tag),
/// and finds the children, whose content their own parse checks.
fn outline(text: &str) -> Outline {
    let mut outline = Outline {
        root_open: "<repository>".into(),
        root: None,
        children: Vec::new(),
        failure: None,
    };
    if let Err(e) = scan(text, &mut outline) {
        outline.failure = Some(e);
    }
    outline
}

fn scan(text: &str, outline: &mut Outline) -> Result<()> {
    let mut reader = Reader::from_str(text);
    let config = reader.config_mut();
    config.check_end_names = true;
    config.expand_empty_elements = false;
    config.trim_text(false);
    // The local names of the open elements, innermost last (for errors).
    let mut open: Vec<&[u8]> = Vec::new();
    let innermost = |open: &[&[u8]]| {
        open.last().map_or_else(
            || "document".to_owned(),
            |n| String::from_utf8_lossy(n).into_owned(),
        )
    };
    let mut child_start = 0usize;
    loop {
        let before = usize::try_from(reader.buffer_position()).unwrap_or(usize::MAX);
        let event = reader.read_event().map_err(|e| {
            Error::malformed(
                innermost(&open),
                format!("{e} at byte {}", reader.error_position()),
            )
        })?;
        let after = usize::try_from(reader.buffer_position()).unwrap_or(usize::MAX);
        let span = || text.get(before..after).map(tag_text).unwrap_or_default();
        match event {
            Event::Decl(decl) => check_declaration(&decl)?,
            Event::DocType(_) => return Err(dtd_refused()),
            Event::PI(_) | Event::Comment(_) => {}
            Event::Start(_) => {
                if open.is_empty() && outline.root.is_some() {
                    return Err(Error::malformed("document", "more than one root element"));
                }
                if open.len() >= MAX_DEPTH {
                    return Err(Error::malformed("document", "elements nested too deeply"));
                }
                match open.len() {
                    0 => {
                        let tag = span();
                        outline.root_open = tag.to_string();
                        // The start tag alone, closed at once: its names,
                        // attributes and namespaces checked as a parse of
                        // the whole document checks them.
                        let closed = format!("{}/>", tag.strip_suffix('>').unwrap_or(tag));
                        outline.root = Some(Element::parse(&closed)?);
                    }
                    1 => child_start = before,
                    _ => {}
                }
                open.push(local_name(tag_name(span())));
            }
            Event::Empty(_) => {
                if open.is_empty() && outline.root.is_some() {
                    return Err(Error::malformed("document", "more than one root element"));
                }
                match open.len() {
                    0 => {
                        // `<repository/>`: an empty ring.
                        let tag = span();
                        outline.root = Some(Element::parse(tag)?);
                        outline.root_open = tag
                            .trim_end_matches("/>")
                            .trim_end_matches([' ', '\t', '\r', '\n'])
                            .to_string()
                            + ">";
                    }
                    1 => outline.children.push(before..after),
                    _ => {}
                }
            }
            Event::End(_) => {
                if open.pop().is_none() {
                    return Err(Error::malformed("document", "unexpected end tag"));
                }
                if open.len() == 1 {
                    outline.children.push(child_start..after);
                }
            }
            // Text and references in a child are its parse's to check.
            Event::Text(t) if open.len() <= 1 => {
                let content = t
                    .xml10_content()
                    .map_err(|e| Error::malformed("document", e.to_string()))?;
                outside_children(&open, outline, &content)?;
            }
            Event::GeneralRef(r) if open.len() <= 1 => {
                let resolved = match r
                    .resolve_char_ref()
                    .map_err(|e| Error::malformed("document", e.to_string()))?
                {
                    Some(ch) => ch.to_string(),
                    None => {
                        let name = r
                            .decode()
                            .map_err(|e| Error::malformed("document", e.to_string()))?;
                        match &*name {
                            "amp" | "lt" | "gt" | "apos" | "quot" => "&".to_owned(),
                            other => {
                                return Err(Error::malformed(
                                    "document",
                                    format!("undefined entity &{other};"),
                                ));
                            }
                        }
                    }
                };
                outside_children(&open, outline, &resolved)?;
            }
            Event::CData(_) if open.is_empty() => {
                return Err(Error::malformed("document", "CDATA outside the root"));
            }
            Event::Text(_) | Event::GeneralRef(_) | Event::CData(_) => {}
            Event::Eof => break,
        }
    }
    if let Some(name) = open.last() {
        return Err(Error::malformed(
            String::from_utf8_lossy(name).into_owned(),
            "the document ends before this element is closed",
        ));
    }
    Ok(())
}

/// Text between the root's children is kept out of the document (as
/// `XElement` would keep it, and drop it on a rewrite); outside the root
/// only whitespace is allowed.
fn outside_children(open: &[&[u8]], outline: &Outline, content: &str) -> Result<()> {
    if !open.is_empty() || content.trim().is_empty() {
        Ok(())
    } else if outline.root.is_some() {
        Err(Error::malformed("document", "text after the root element"))
    } else {
        Err(Error::malformed("document", "text before the root element"))
    }
}

/// The name in a start tag's text (`<name attr=…>`).
fn tag_name(tag: &str) -> &[u8] {
    let bytes = tag.as_bytes();
    let name = bytes.get(1..).unwrap_or_default();
    let end = name
        .iter()
        .position(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\n' | b'/' | b'>'))
        .unwrap_or(name.len());
    name.get(..end).unwrap_or_default()
}

/// The local part of a qualified name.
fn local_name(qualified: &[u8]) -> &[u8] {
    qualified
        .iter()
        .rposition(|b| *b == b':')
        .and_then(|colon| qualified.get(colon + 1..))
        .unwrap_or(qualified)
}

fn tag_text(span: &str) -> &str {
    span.find('<').map_or(span, |i| &span[i..])
}

fn child(raw: &str, scope: &Scope) -> Result<RepositoryChild> {
    Ok(RepositoryChild {
        raw: raw.to_string(),
        element: parse_with_scope(raw, scope)?,
        location: None,
        friendly_name: None,
        replaced: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Documents of many shapes, valid and not (prolog, root, children,
    /// text between them, epilog, then random damage): deterministic.
    fn documents() -> Vec<String> {
        let prologs = [
            "",
            "\u{feff}",
            "<?xml version=\"1.0\" encoding=\"utf-8\"?>",
            "<?xml version=\"1.0\" encoding=\"latin1\"?>",
            "<!DOCTYPE repository [<!ENTITY x \"y\">]>",
            "<!-- c --><?pi x?>\n",
            "text",
            "&#32;",
            "&amp;",
            "<![CDATA[x]]>",
        ];
        let roots = [
            ("<repository>", "</repository>"),
            ("<repository xmlns:f=\"urn:f\" a='1'>", "</repository>"),
            ("<r:repository xmlns:r=\"urn:r\">", "</r:repository>"),
            ("<r:repository>", "</r:repository>"),
            ("<repository a='1' a='2'>", "</repository>"),
            ("<repository xmlns=\"urn:d\">", "</repository>"),
            ("<repository xmlns:f=\"\">", "</repository>"),
            ("<repository>", "</other>"),
            ("<repository>", ""),
            ("<1bad>", "</1bad>"),
        ];
        let children = [
            "<key id=\"1\" version=\"1\"><creationDate>2030-01-01T00:00:00Z</creationDate></key>",
            "<f:thing a='x'>t&amp;t<!-- c --><f:n/></f:thing>",
            "<g:thing/>",
            "<x>&undefined;</x>",
            "<x>&#x41;<![CDATA[<>]]></x>",
            "<x a='1' a='2'/>",
            "<x><y></x>",
            "<empty/>",
            "<x xmlns:p='urn:p'><p:y p:a='1'/></x>",
            "<x>\r\n text \r</x>",
        ];
        let between = [
            "",
            "\n  ",
            "text",
            "&amp;",
            "&bad;",
            "&#32;",
            "<![CDATA[c]]>",
            "<!-- c -->",
        ];
        let epilogs = [
            "",
            "\n",
            "<!-- c -->",
            "text",
            "<second/>",
            "&#32;",
            "<![CDATA[x]]>",
        ];
        let mut docs = Vec::new();
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move |n: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            usize::try_from(seed % n.max(1) as u64).unwrap_or(0)
        };
        // The parts of each list that are well-formed in a root declaring
        // the prefix f (the first two roots); a document is built from them
        // alone half of the time.
        let (good_roots, good_children, good_between) = (2, [0, 1, 4, 7, 8, 9], 7);
        for i in 0..6000 {
            let clean = i % 2 == 0;
            let (open, close) = roots[next(if clean { good_roots } else { roots.len() })];
            let mut doc = String::new();
            doc.push_str(if i % 3 == 0 && !clean {
                prologs[next(prologs.len())]
            } else {
                ""
            });
            doc.push_str(open);
            for _ in 0..next(5) {
                doc.push_str(between[next(if clean { good_between } else { between.len() })]);
                doc.push_str(if clean {
                    children[good_children[next(good_children.len())]]
                } else {
                    children[next(children.len())]
                });
            }
            doc.push_str(close);
            if i % 4 == 1 {
                doc.push_str(epilogs[next(epilogs.len())]);
            }
            if i % 5 == 0 {
                // Nested past the depth limit, or just under it.
                let depth = 125 + next(5);
                let nested = "<n>".repeat(depth) + &"</n>".repeat(depth);
                doc = doc.replacen("</repository>", &(nested + "</repository>"), 1);
            }
            if i % 4 == 3 || (clean && i % 8 == 2) {
                // Random damage: a byte range removed, or a character added.
                let bytes = doc.as_bytes();
                let at = next(bytes.len() + 1);
                if next(2) == 0 {
                    let end = (at + next(4)).min(bytes.len());
                    let mut damaged = bytes[..at].to_vec();
                    damaged.extend_from_slice(&bytes[end..]);
                    doc = String::from_utf8_lossy(&damaged).into_owned();
                } else {
                    let c = [
                        '<', '>', '&', ';', '/', '=', '"', '\'', ':', 'a', ' ', '!', '?',
                    ][next(13)];
                    let at = (0..=at)
                        .rev()
                        .find(|i| doc.is_char_boundary(*i))
                        .unwrap_or(0);
                    doc.insert(at, c);
                }
            }
            docs.push(doc);
        }
        docs
    }

    /// A repository document parses exactly when the whole document parses
    /// as one element, to the same root and the same children: checking it
    /// by one scan and a parse of each child (on several threads) neither
    /// accepts nor refuses anything that parsing it whole would not.
    #[test]
    fn parses_as_the_whole_document_parses() {
        let (mut parsed, mut refused) = (0, 0);
        for doc in documents() {
            if doc.trim_start_matches('\u{feff}').trim().is_empty() {
                continue;
            }
            let whole = Element::parse(&doc);
            let repository = RepositoryDocument::parse(doc.as_bytes());
            match (&whole, &repository) {
                (Ok(root), Ok(repository)) => {
                    parsed += 1;
                    assert_eq!(repository.root_name(), root.name(), "{doc}");
                    let children: Vec<&Element> = repository
                        .children()
                        .iter()
                        .map(RepositoryChild::element)
                        .collect();
                    let expected: Vec<&Element> = root.elements().collect();
                    assert_eq!(children, expected, "{doc}");
                }
                (Err(_), Err(_)) => refused += 1,
                _ => panic!("{doc}\nwhole: {whole:?}\nrepository: {repository:?}"),
            }
        }
        assert!(
            parsed > 500 && refused > 500,
            "{parsed} parsed, {refused} refused"
        );
    }

    /// Classifying while parsing gives what classifying the parsed
    /// document gives, element for element (a large ring, on several
    /// threads).
    #[test]
    fn elements_classified_while_parsed_are_those_of_the_document() {
        use crate::crypto::{Algorithm, Secret};
        use crate::xml::{KeyXml, descriptor_element};
        let created = time::macros::datetime!(2030-01-01 0:00 UTC);
        let mut doc = RepositoryDocument::new();
        for i in 0..700u32 {
            let element = match i % 7 {
                0 => Element::new("revocation").with_attr("version", "1"),
                1 => Element::new("key").with_attr("id", "not a guid"),
                2 => Element::new("foreign").with_text("kept"),
                _ => KeyXml {
                    id: uuid::Uuid::from_u128(u128::from(i)),
                    creation_date: created,
                    activation_date: created,
                    expiration_date: created + time::Duration::days(90),
                    descriptor: descriptor_element(
                        Algorithm::default(),
                        &Secret::new(vec![u8::try_from(i % 256).unwrap_or(0); 64]),
                    ),
                }
                .to_element(),
            };
            doc.push(&element);
        }
        let bytes = doc.to_bytes();
        let (parsed, classified) = RepositoryDocument::parse_classified(&bytes).unwrap();
        let expected = RepositoryDocument::parse(&bytes).unwrap();
        assert_eq!(parsed, expected);
        let text = |all: &[ClassifiedElement]| -> Vec<String> {
            all.iter()
                .map(|c| match &c.classified {
                    Ok(crate::xml::StoredElement::Key(k)) => {
                        format!(
                            "{} {k:?} {}",
                            c.is_revocation,
                            k.descriptor.to_xml(Format::Compact)
                        )
                    }
                    other => format!("{} {other:?}", c.is_revocation),
                })
                .collect()
        };
        assert_eq!(text(&classified), text(&expected.classified()));
        assert_eq!(classified.len(), 700);
    }

    #[test]
    fn preserves_children_byte_for_byte() {
        let input = "\u{feff}<?xml version=\"1.0\"?>\n<repository xmlns:f=\"urn:foreign\">\n  <f:thing  a = 'x' >text<!-- c --></f:thing>\n<key id=\"bad\"/></repository>";
        let mut doc = RepositoryDocument::parse(input.as_bytes()).unwrap();
        assert_eq!(doc.children().len(), 2);
        assert_eq!(
            doc.children()[0].raw(),
            "<f:thing  a = 'x' >text<!-- c --></f:thing>"
        );
        assert!(doc.children()[0].element().is_ns("urn:foreign", "thing"));
        doc.push(&Element::new("new"));
        let out = String::from_utf8(doc.to_bytes()).unwrap();
        assert!(
            out.contains("<f:thing  a = 'x' >text<!-- c --></f:thing><key id=\"bad\"/><new />")
        );
        let again = RepositoryDocument::parse(out.as_bytes()).unwrap();
        assert_eq!(again.children().len(), 3);
    }

    #[test]
    fn replace_keeps_the_other_children_byte_for_byte() {
        let mut doc = RepositoryDocument::parse(
            b"<?xml version=\"1.0\"?><repository a='1'><x  b='1'/><y>t</y><z/></repository>",
        )
        .unwrap();
        assert!(doc.replace(1, &Element::new("n")));
        assert!(!doc.replace(3, &Element::new("m")));
        let out = String::from_utf8(doc.to_bytes()).unwrap();
        assert_eq!(
            out,
            "<?xml version=\"1.0\" encoding=\"utf-8\"?><repository a='1'><x  b='1'/><n /><z/></repository>"
        );
        let again = RepositoryDocument::parse(out.as_bytes()).unwrap();
        assert_eq!(again.elements(), doc.elements());
        assert_eq!(again.children()[1].element(), &Element::new("n"));
    }

    #[test]
    fn remove_indices_removes_each_named_child_once_and_ignores_the_rest() {
        let mut doc =
            RepositoryDocument::parse(b"<repository><a/><b/><c/><d/><e/></repository>").unwrap();
        // Duplicates and an index past the end change nothing more.
        assert_eq!(doc.remove_indices(&[3, 1, 3, 99]), 2);
        let names: Vec<_> = doc
            .children()
            .iter()
            .map(|c| c.element().name().to_string())
            .collect();
        assert_eq!(names, ["a", "c", "e"]);
        assert_eq!(doc.remove_indices(&[]), 0);
        assert_eq!(doc.remove_indices(&[0, 1, 2]), 3);
        assert!(doc.children().is_empty());
    }

    #[test]
    fn stray_byte_order_marks_do_not_leak_into_the_output() {
        // Found by the key_xml fuzz target.
        for input in [
            "\u{feff}\u{feff}<repository><a/></repository>",
            "\u{feff}\u{feff}\u{feff}<repository/>",
            "\u{feff}\u{feff}<?xml version=\"1.0\"?><repository/>",
        ] {
            assert!(RepositoryDocument::parse(input.as_bytes()).is_err());
        }
    }

    #[test]
    fn empty_forms() {
        assert!(
            RepositoryDocument::parse(b"")
                .unwrap()
                .children()
                .is_empty()
        );
        let doc = RepositoryDocument::parse(b"<repository/>").unwrap();
        assert!(doc.children().is_empty());
        assert!(
            String::from_utf8(doc.to_bytes())
                .unwrap()
                .ends_with("<repository></repository>")
        );
        assert!(RepositoryDocument::parse(b"<repository><a></repository>").is_err());
    }
}
