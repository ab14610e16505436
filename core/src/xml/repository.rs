//! The `<repository>` document that holds a whole key ring in one blob
//! (Azure.Extensions.AspNetCore.DataProtection.Blobs, format.md §8).
//!
//! Children are kept as the exact text they were read as: rewriting the
//! document after an append reproduces every existing element byte for byte,
//! including elements this library does not understand or cannot decrypt.

use quick_xml::Reader;
use quick_xml::events::Event;

use super::dom::{DECLARATION, Element, Format, Scope, parse_with_scope};
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
        let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
        if bytes.iter().all(|b| b.is_ascii_whitespace()) {
            return Ok(Self::new());
        }
        let text = std::str::from_utf8(bytes)
            .map_err(|_| Error::malformed("repository", "the document is not valid UTF-8"))?;
        if text.starts_with('\u{feff}') {
            return Err(Error::malformed(
                "repository",
                "more than one byte order mark",
            ));
        }
        // Validate the whole document (DTD refusal, balance, entities) first.
        let root = Element::parse(text)?;
        let mut scope = Scope::from_bindings(root.attributes.iter().filter_map(|a| {
            if a.name == "xmlns" {
                Some((String::new(), a.value.clone()))
            } else {
                a.name
                    .strip_prefix("xmlns:")
                    .map(|p| (p.to_string(), a.value.clone()))
            }
        }));

        let mut reader = Reader::from_str(text);
        let mut depth = 0usize;
        let mut root_open = None;
        let mut child_start = 0usize;
        let mut children = Vec::new();
        loop {
            let before = reader.buffer_position() as usize;
            let event = reader
                .read_event()
                .map_err(|e| Error::malformed("repository", e.to_string()))?;
            let after = reader.buffer_position() as usize;
            match event {
                Event::Start(_) => {
                    if depth == 0 {
                        root_open = Some(tag_text(&text[before..after]).to_string());
                    } else if depth == 1 {
                        child_start = before;
                    }
                    depth += 1;
                }
                Event::Empty(_) => {
                    if depth == 0 {
                        // `<repository/>`: an empty ring.
                        let open = tag_text(&text[before..after])
                            .trim_end_matches("/>")
                            .trim_end_matches([' ', '\t', '\r', '\n'])
                            .to_string()
                            + ">";
                        root_open = Some(open);
                    } else if depth == 1 {
                        children.push(child(tag_text(&text[before..after]), &mut scope)?);
                    }
                }
                Event::End(_) => {
                    depth = depth.saturating_sub(1);
                    if depth == 1 {
                        children.push(child(tag_text(&text[child_start..after]), &mut scope)?);
                    }
                }
                Event::Eof => break,
                _ => {}
            }
        }
        Ok(RepositoryDocument {
            root_open: root_open.unwrap_or_else(|| "<repository>".into()),
            root_name: root.name().to_string(),
            children,
            removed: Vec::new(),
        })
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
fn tag_text(span: &str) -> &str {
    span.find('<').map_or(span, |i| &span[i..])
}

fn child(raw: &str, scope: &mut Scope) -> Result<RepositoryChild> {
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
