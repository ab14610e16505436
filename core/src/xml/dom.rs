//! A small namespace-aware XML element tree, read with `quick-xml` and written
//! the way .NET's `XElement.Save` writes.
//!
//! Hand-written on top of `quick-xml` (rather than a DOM crate) because the
//! output must match .NET byte for byte (`<a b="c" />` with a space, two-space
//! indentation, `xmlns=""` fix-ups when an un-namespaced child sits under a
//! default namespace), and because the reader must refuse DTDs and entity
//! declarations outright.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;

use quick_xml::events::attributes::{AttrError, Attributes};
use quick_xml::events::{BytesDecl, BytesStart, Event};
use quick_xml::name::QName;
use quick_xml::{Reader, XmlVersion};

use crate::error::{Error, Result};

/// The namespace of `xmlns` declarations.
const XMLNS_NS: &str = "http://www.w3.org/2000/xmlns/";
/// The namespace bound to the `xml` prefix.
const XML_NS: &str = "http://www.w3.org/XML/1998/namespace";
/// Nesting deeper than this is refused (no legitimate key XML comes close).
pub(crate) const MAX_DEPTH: usize = 128;

/// A node inside an element.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Node {
    /// A child element.
    Element(Element),
    /// Character data (entities already resolved).
    Text(String),
    /// A CDATA section.
    CData(String),
    /// A comment (without `<!--` and `-->`).
    Comment(String),
}

/// An attribute: its qualified name as written, its namespace, its value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attribute {
    /// Qualified name (`id`, `p4:requiresEncryption`, `xmlns:p4`).
    pub name: String,
    /// Namespace URI (`None` for un-prefixed attributes).
    pub namespace: Option<String>,
    /// Unescaped value.
    pub value: String,
}

/// An XML element with its attributes and children.
///
/// Names are kept as written (with their prefix) together with the namespace
/// they resolve to, so an element can be written back as it was read and
/// compared by namespace and local name regardless of prefix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Element {
    name: Name,
    namespace: Option<String>,
    /// Attributes in document order, namespace declarations included.
    pub attributes: Vec<Attribute>,
    /// Child nodes in document order.
    pub children: Vec<Node>,
}

/// How [`Element::to_xml`] lays out its output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Two-space indentation, LF line ends (`XElement.Save` on Linux).
    Indented,
    /// No whitespace added (`SaveOptions.DisableFormatting`).
    Compact,
}

impl Element {
    /// A new element without a namespace.
    pub fn new(name: impl Into<String>) -> Self {
        Element {
            name: Cow::Owned(name.into()),
            namespace: None,
            attributes: Vec::new(),
            children: Vec::new(),
        }
    }

    /// A new element in `namespace`, written with the qualified `name` given
    /// (`enc:encryptedSecret`, or a bare name plus an `xmlns` attribute).
    pub fn new_ns(name: impl Into<String>, namespace: impl Into<String>) -> Self {
        Element {
            name: Cow::Owned(name.into()),
            namespace: Some(namespace.into()),
            attributes: Vec::new(),
            children: Vec::new(),
        }
    }

    /// Qualified name as written.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Local name (without prefix).
    pub fn local_name(&self) -> &str {
        local(&self.name)
    }

    /// Namespace URI, if any.
    pub fn namespace(&self) -> Option<&str> {
        self.namespace.as_deref()
    }

    /// Whether this element has `local` name and no namespace.
    pub fn is(&self, local_name: &str) -> bool {
        self.namespace.is_none() && has_local_name(&self.name, local_name)
    }

    /// Whether this element has `local` name in `namespace`.
    pub fn is_ns(&self, namespace: &str, local_name: &str) -> bool {
        self.namespace.as_deref() == Some(namespace) && has_local_name(&self.name, local_name)
    }

    /// Value of the un-namespaced attribute `name`.
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|a| a.namespace.is_none() && a.name == name)
            .map(|a| a.value.as_str())
    }

    /// Value of the attribute `local_name` in `namespace`.
    pub fn attr_ns(&self, namespace: &str, local_name: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|a| a.namespace.as_deref() == Some(namespace) && local(&a.name) == local_name)
            .map(|a| a.value.as_str())
    }

    /// Adds or replaces an un-namespaced attribute; returns `self` for chaining.
    pub fn with_attr(mut self, name: &str, value: impl Into<String>) -> Self {
        self.set_attr(name, value);
        self
    }

    /// Adds or replaces an un-namespaced attribute.
    pub fn set_attr(&mut self, name: &str, value: impl Into<String>) {
        let value = value.into();
        match self
            .attributes
            .iter_mut()
            .find(|a| a.namespace.is_none() && a.name == name)
        {
            Some(a) => a.value = value,
            None => self.attributes.push(Attribute {
                name: name.to_string(),
                namespace: None,
                value,
            }),
        }
    }

    /// Adds an attribute with an explicit qualified name and namespace
    /// (including `xmlns` declarations, whose namespace is the XMLNS one).
    pub fn push_attr_ns(&mut self, name: &str, namespace: Option<&str>, value: &str) {
        self.attributes.push(Attribute {
            name: name.to_string(),
            namespace: namespace.map(str::to_string),
            value: value.to_string(),
        });
    }

    /// Declares `xmlns:prefix="uri"` (or the default namespace when `prefix` is empty).
    pub fn declare_namespace(&mut self, prefix: &str, uri: &str) {
        let name = if prefix.is_empty() {
            "xmlns".to_string()
        } else {
            format!("xmlns:{prefix}")
        };
        self.push_attr_ns(&name, Some(XMLNS_NS), uri);
    }

    /// Appends a child element; returns `self` for chaining.
    pub fn with_child(mut self, child: Element) -> Self {
        self.children.push(Node::Element(child));
        self
    }

    /// Appends a text node; returns `self` for chaining.
    pub fn with_text(mut self, text: impl Into<String>) -> Self {
        self.children.push(Node::Text(text.into()));
        self
    }

    /// Appends a comment; returns `self` for chaining.
    pub fn with_comment(mut self, text: impl Into<String>) -> Self {
        self.children.push(Node::Comment(text.into()));
        self
    }

    /// Child elements in order.
    pub fn elements(&self) -> impl Iterator<Item = &Element> {
        self.children.iter().filter_map(|n| match n {
            Node::Element(e) => Some(e),
            _ => None,
        })
    }

    /// Mutable child elements in order.
    pub fn elements_mut(&mut self) -> impl Iterator<Item = &mut Element> {
        self.children.iter_mut().filter_map(|n| match n {
            Node::Element(e) => Some(e),
            _ => None,
        })
    }

    /// The first child element with `local_name` and no namespace.
    pub fn child(&self, local_name: &str) -> Option<&Element> {
        self.elements().find(|e| e.is(local_name))
    }

    /// The first child element with `local_name` and no namespace, or a
    /// [`Error::MalformedXml`] naming this element.
    pub fn required_child(&self, local_name: &str) -> Result<&Element> {
        self.child(local_name).ok_or_else(|| {
            Error::malformed(self.local_name(), format!("missing <{local_name}> element"))
        })
    }

    /// The un-namespaced attribute `name`, or a [`Error::MalformedXml`].
    pub fn required_attr(&self, name: &str) -> Result<&str> {
        self.attr(name).ok_or_else(|| {
            Error::malformed(self.local_name(), format!("missing attribute {name:?}"))
        })
    }

    /// The concatenated text of all descendant text and CDATA nodes (comments
    /// ignored), as .NET's `XElement.Value`.
    pub fn text(&self) -> String {
        let mut out = String::new();
        self.collect_text(&mut out);
        out
    }

    /// As [`Element::text`], borrowed when the element holds a single text
    /// or CDATA node (a date, a Base64 value): no allocation in the common case.
    pub(crate) fn text_cow(&self) -> Cow<'_, str> {
        match self.children.as_slice() {
            [] => Cow::Borrowed(""),
            [Node::Text(t) | Node::CData(t)] => Cow::Borrowed(t),
            _ => Cow::Owned(self.text()),
        }
    }

    fn collect_text(&self, out: &mut String) {
        for n in &self.children {
            match n {
                Node::Text(t) | Node::CData(t) => out.push_str(t),
                Node::Element(e) => e.collect_text(out),
                Node::Comment(_) => {}
            }
        }
    }

    /// Parses a document or fragment holding exactly one root element.
    ///
    /// Accepts a UTF-8 BOM, an XML declaration (UTF-8 only), comments and
    /// processing instructions around the root, CRLF line ends, any namespace
    /// prefixes. Refuses DTDs (and so entity declarations), undefined entities,
    /// unbalanced tags, more than one root, and nesting deeper than 128.
    /// Whitespace-only text between elements is dropped, as `XElement.Load` does.
    ///
    /// # Example
    ///
    /// ```
    /// use dataprotection::xml::Element;
    /// let e = Element::parse("\u{feff}<?xml version=\"1.0\"?>\r\n<a x=\"1\"><b>t&amp;u</b></a>").unwrap();
    /// assert_eq!(e.attr("x"), Some("1"));
    /// assert_eq!(e.child("b").unwrap().text(), "t&u");
    /// assert!(Element::parse("<!DOCTYPE a [<!ENTITY x \"y\">]><a>&x;</a>").is_err());
    /// ```
    pub fn parse(text: &str) -> Result<Element> {
        parse_in_scope(text, None)
    }

    /// Parses the UTF-8 bytes of a document (see [`Element::parse`]).
    pub fn parse_bytes(bytes: &[u8]) -> Result<Element> {
        let text = std::str::from_utf8(bytes)
            .map_err(|_| Error::malformed("document", "the XML is not valid UTF-8"))?;
        Element::parse(text)
    }

    /// Serializes this element (no XML declaration).
    pub fn to_xml(&self, format: Format) -> String {
        let mut out = String::new();
        let mut scope = Scope::default();
        write_element(self, format, 0, &mut scope, &mut out);
        out
    }

    /// Serializes as a document: XML declaration, then the element, as
    /// `XElement.Save(Stream)` does (without the BOM; see [`Element::to_document_bytes`]).
    pub fn to_document(&self, format: Format) -> String {
        let mut out = String::from(DECLARATION);
        if format == Format::Indented {
            out.push('\n');
        }
        out.push_str(&self.to_xml(format));
        out
    }

    /// UTF-8 BOM + [`Element::to_document`], byte for byte what .NET writes to a file.
    pub fn to_document_bytes(&self, format: Format) -> Vec<u8> {
        let doc = self.to_document(format);
        let mut out = Vec::with_capacity(3 + doc.len());
        out.extend_from_slice(UTF8_BOM);
        out.extend_from_slice(doc.as_bytes());
        out
    }
}

/// The XML declaration .NET writes.
pub const DECLARATION: &str = "<?xml version=\"1.0\" encoding=\"utf-8\"?>";
/// What quick-xml reads between `<?` and `?>` in [`DECLARATION`].
const DECLARATION_CONTENT: &[u8] = b"xml version=\"1.0\" encoding=\"utf-8\"";
/// The UTF-8 byte order mark.
pub const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// An element's qualified name as written.
type Name = Cow<'static, str>;

/// `name` as the `'static` name of ASP.NET Core's key XML it is, if it is
/// one (every one a valid XML name): shared rather than allocated, as a
/// ring of 10,000 keys holds about 100,000 elements, each otherwise an
/// allocation to make and later to free.
fn known_name(name: &str) -> Option<&'static str> {
    Some(match name {
        "key" => "key",
        "creationDate" => "creationDate",
        "activationDate" => "activationDate",
        "expirationDate" => "expirationDate",
        "descriptor" => "descriptor",
        "encryption" => "encryption",
        "validation" => "validation",
        "masterKey" => "masterKey",
        "value" => "value",
        "revocation" => "revocation",
        "revocationDate" => "revocationDate",
        "reason" => "reason",
        "encryptedSecret" => "encryptedSecret",
        "encryptedKey" => "encryptedKey",
        _ => return None,
    })
}

fn local(name: &str) -> &str {
    name.rsplit_once(':').map_or(name, |(_, l)| l)
}

/// `local(name) == local_name`, comparing from the end instead of searching
/// `name` for its last colon (this runs for every child looked up by name).
fn has_local_name(name: &str, local_name: &str) -> bool {
    match name.strip_suffix(local_name) {
        Some("") => !local_name.contains(':'),
        Some(prefix) => prefix.ends_with(':') && !local_name.contains(':'),
        None => false,
    }
}

fn prefix(name: &str) -> Option<&str> {
    // A byte loop: names are short, shorter than a `memchr` call is worth.
    let colon = name.bytes().position(|b| b == b':')?;
    name.get(..colon)
}

/// In-scope namespace bindings (`""` is the default namespace). Lookups and
/// declarations are O(1), so an element with many prefixed attributes or
/// declarations is read in linear time: a map from prefix to its stack of
/// bindings, and a log of declarations in order, to undo them when an
/// element closes.
#[derive(Default, Clone)]
pub(crate) struct Scope {
    bindings: HashMap<String, Vec<String>>,
    log: Vec<String>,
}

impl Scope {
    /// A scope with `(prefix, uri)` bindings declared in order.
    pub(crate) fn from_bindings(bindings: impl IntoIterator<Item = (String, String)>) -> Self {
        let mut scope = Scope::default();
        for (prefix, uri) in bindings {
            scope.push(prefix, uri);
        }
        scope
    }

    fn push(&mut self, prefix: String, uri: String) {
        self.bindings.entry(prefix.clone()).or_default().push(uri);
        self.log.push(prefix);
    }

    /// A point to return to with [`Scope::truncate`].
    fn mark(&self) -> usize {
        self.log.len()
    }

    /// Undoes every declaration made after `mark`.
    fn truncate(&mut self, mark: usize) {
        while self.log.len() > mark {
            let Some(prefix) = self.log.pop() else { break };
            if let Some(uris) = self.bindings.get_mut(&prefix) {
                uris.pop();
                if uris.is_empty() {
                    self.bindings.remove(&prefix);
                }
            }
        }
    }

    fn lookup(&self, prefix: &str) -> Option<&str> {
        if prefix == "xml" {
            return Some(XML_NS);
        }
        if self.bindings.is_empty() {
            // Most elements of key XML: nothing declared, nothing to hash.
            return None;
        }
        self.bindings
            .get(prefix)
            .and_then(|uris| uris.last())
            .map(String::as_str)
    }
}

/// Parses with inherited namespace bindings (used for children of a
/// `<repository>` root that declares prefixes). `inherited` is left as it was.
pub(crate) fn parse_with_scope(text: &str, inherited: &Scope) -> Result<Element> {
    // The document's own declarations are kept apart (see `Declarations`),
    // so `inherited` is only read.
    parse_in_scope(text, Some(inherited))
}

fn parse_in_scope(text: &str, inherited: Option<&Scope>) -> Result<Element> {
    let document = text.strip_prefix('\u{feff}').unwrap_or(text);
    if document.starts_with('\u{feff}') {
        return Err(Error::malformed(
            "document",
            "more than one byte order mark",
        ));
    }
    let mut reader = Reader::from_str(document);
    let config = reader.config_mut();
    config.check_end_names = true;
    config.expand_empty_elements = false;
    config.trim_text(false);

    let mut scope = Declarations::new(inherited);
    // The elements open, innermost last (key XML nests five deep: one
    // allocation for the stack).
    let mut stack: Vec<Open> = Vec::with_capacity(8);
    let mut root: Option<Element> = None;
    // The text read since the innermost open element's last other child
    // (text and entity references run together into one text node).
    let mut text = TextRun::default();

    loop {
        let event = reader.read_event().map_err(|e| {
            Error::malformed(
                stack
                    .last()
                    .map_or("document", |open| open.element.local_name()),
                format!("{e} at byte {}", reader.error_position()),
            )
        })?;
        match event {
            // The declaration .NET writes (every key file) names UTF-8.
            Event::Decl(decl) if *decl == *DECLARATION_CONTENT => {}
            Event::Decl(decl) => check_declaration(&decl)?,
            Event::DocType(_) => return Err(dtd_refused()),
            Event::PI(_) => {}
            Event::Start(start) => {
                if root.is_some() {
                    return Err(Error::malformed("document", "more than one root element"));
                }
                if stack.len() >= MAX_DEPTH {
                    return Err(Error::malformed("document", "elements nested too deeply"));
                }
                if let Some(parent) = stack.last_mut() {
                    parent.end_text(&mut text, true);
                }
                let mark = scope.mark();
                let element = open_element(document, &start, &mut scope)?;
                stack.push(Open::new(element, mark));
            }
            Event::Empty(start) => {
                if root.is_some() {
                    return Err(Error::malformed("document", "more than one root element"));
                }
                if let Some(parent) = stack.last_mut() {
                    parent.end_text(&mut text, true);
                }
                let mark = scope.mark();
                let element = open_element(document, &start, &mut scope)?;
                scope.truncate(mark);
                attach(&mut stack, &mut root, element);
            }
            Event::End(_) => {
                let Some(mut open) = stack.pop() else {
                    return Err(Error::malformed("document", "unexpected end tag"));
                };
                open.end_text(&mut text, false);
                scope.truncate(open.mark);
                attach(&mut stack, &mut root, open.close());
            }
            Event::Text(t) if is_ascii_blank(&t) => {
                // Formatting (most text in key XML): its line ends are
                // normalized if it is kept, without decoding.
                if !stack.is_empty() {
                    text.push(Piece::Blank(t.into_inner()));
                }
            }
            Event::Text(t) => {
                let content = match str_in(document, &t) {
                    // No carriage return: nothing for `xml10_content` to
                    // normalize, nor UTF-8 to check again. (A fold, not a
                    // search that stops early: the compiler vectorizes it.)
                    Some(content)
                        if !content.bytes().fold(false, |cr, byte| cr | (byte == b'\r')) =>
                    {
                        Cow::Borrowed(content)
                    }
                    _ => t
                        .xml10_content()
                        .map_err(|e| Error::malformed("document", e.to_string()))?,
                };
                if stack.is_empty() {
                    outside_root(&root, &content)?;
                } else {
                    text.push(Piece::Text(content));
                }
            }
            Event::GeneralRef(r) => {
                let mut utf8 = [0; 4];
                let resolved: &str = if let Some(ch) = r
                    .resolve_char_ref()
                    .map_err(|e| Error::malformed("document", e.to_string()))?
                {
                    ch.encode_utf8(&mut utf8)
                } else {
                    let name = r
                        .decode()
                        .map_err(|e| Error::malformed("document", e.to_string()))?;
                    match &*name {
                        "amp" => "&",
                        "lt" => "<",
                        "gt" => ">",
                        "apos" => "'",
                        "quot" => "\"",
                        other => {
                            return Err(Error::malformed(
                                "document",
                                format!("undefined entity &{other};"),
                            ));
                        }
                    }
                };
                if stack.is_empty() {
                    outside_root(&root, resolved)?;
                } else {
                    text.push_str(resolved);
                }
            }
            Event::CData(c) => {
                let content = c
                    .decode()
                    .map_err(|e| Error::malformed("document", e.to_string()))?
                    .into_owned();
                match stack.last_mut() {
                    Some(parent) => {
                        parent.end_text(&mut text, false);
                        parent.element.children.push(Node::CData(content));
                    }
                    None => return Err(Error::malformed("document", "CDATA outside the root")),
                }
            }
            Event::Comment(c) => {
                let content = c
                    .decode()
                    .map_err(|e| Error::malformed("document", e.to_string()))?
                    .into_owned();
                if let Some(parent) = stack.last_mut() {
                    parent.end_text(&mut text, true);
                    parent.element.children.push(Node::Comment(content));
                }
            }
            Event::Eof => break,
        }
    }
    if let Some(open) = stack.last() {
        return Err(Error::malformed(
            open.element.local_name(),
            "the document ends before this element is closed",
        ));
    }
    root.ok_or_else(|| Error::malformed("document", "no root element"))
}

/// Refuses an XML declaration naming an encoding other than UTF-8.
pub(crate) fn check_declaration(decl: &BytesDecl<'_>) -> Result<()> {
    if let Some(Ok(enc)) = decl.encoding()
        && !enc.eq_ignore_ascii_case(b"utf-8")
        && !enc.eq_ignore_ascii_case(b"utf8")
    {
        let enc = String::from_utf8_lossy(&enc).to_ascii_lowercase();
        return Err(Error::malformed(
            "document",
            format!("unsupported encoding {enc:?} (only UTF-8 is read)"),
        ));
    }
    Ok(())
}

/// Why a document with a DTD is refused.
pub(crate) fn dtd_refused() -> Error {
    Error::malformed(
        "document",
        "a DTD is not allowed in key XML (entity declarations are refused)",
    )
}

/// Up to this many declarations in scope are looked up by a scan; past it,
/// through a map, so that a document with thousands of declarations and
/// prefixed names is still read in linear time.
const SCANNED_DECLARATIONS: usize = 8;

/// The namespace declarations in scope while a document is read, over the
/// bindings inherited from outside it (which are only read).
///
/// Most key XML declares one prefix (`xmlns:p4` on `<masterKey>`) or none,
/// so the common case costs no hashing, no copy and at most one allocation
/// per document: prefixes and URIs are borrowed from the document (a URI
/// is owned only when it had references to resolve).
struct Declarations<'a> {
    inherited: Option<&'a Scope>,
    /// Each declaration in scope, innermost last: prefix, URI.
    declared: Vec<(Cow<'a, str>, Cow<'a, str>)>,
    /// Prefix to the indexes in `declared` of its declarations in scope,
    /// made once more than `SCANNED_DECLARATIONS` are in scope.
    index: Option<HashMap<String, Vec<usize>>>,
}

impl<'a> Declarations<'a> {
    fn new(inherited: Option<&'a Scope>) -> Self {
        Declarations {
            inherited,
            declared: Vec::new(),
            index: None,
        }
    }

    fn declare(&mut self, prefix: Cow<'a, str>, uri: Cow<'a, str>) {
        let position = self.declared.len();
        match &mut self.index {
            Some(index) => index.entry(prefix.to_string()).or_default().push(position),
            None if position >= SCANNED_DECLARATIONS => {
                let mut index: HashMap<String, Vec<usize>> = HashMap::new();
                let prefixes = self.declared.iter().map(|(prefix, _)| prefix);
                for (position, prefix) in prefixes.chain([&prefix]).enumerate() {
                    index.entry(prefix.to_string()).or_default().push(position);
                }
                self.index = Some(index);
            }
            None => {}
        }
        self.declared.push((prefix, uri));
    }

    /// A point to return to with [`Declarations::truncate`].
    fn mark(&self) -> usize {
        self.declared.len()
    }

    /// Undoes every declaration made after `mark`.
    #[inline]
    fn truncate(&mut self, mark: usize) {
        // Most elements declare nothing: nothing to undo (and no call).
        if self.declared.len() > mark {
            self.undo(mark);
        }
    }

    fn undo(&mut self, mark: usize) {
        if let Some(index) = &mut self.index {
            for (prefix, _) in self.declared.get(mark..).unwrap_or_default() {
                if let Some(positions) = index.get_mut(prefix.as_ref()) {
                    positions.pop();
                }
            }
        }
        self.declared.truncate(mark);
    }

    #[inline]
    fn lookup(&self, prefix: &str) -> Option<&str> {
        if self.declared.is_empty() && self.inherited.is_none() && prefix.is_empty() {
            // Most elements of key XML: no default namespace anywhere.
            return None;
        }
        self.look_up(prefix)
    }

    fn look_up(&self, prefix: &str) -> Option<&str> {
        if prefix == "xml" {
            return Some(XML_NS);
        }
        let declared = match &self.index {
            Some(index) => index
                .get(prefix)
                .and_then(|positions| positions.last())
                .and_then(|&position| self.declared.get(position)),
            None => self
                .declared
                .iter()
                .rev()
                .find(|(declared, _)| declared == prefix),
        };
        match declared {
            Some((_, uri)) => Some(uri),
            None => self.inherited.and_then(|scope| scope.lookup(prefix)),
        }
    }
}

/// `text` borrowed from `document` when it is a slice of it, else a copy.
fn in_document<'a>(document: &'a str, text: &str) -> Cow<'a, str> {
    match str_in(document, text.as_bytes()) {
        Some(text) => Cow::Borrowed(text),
        None => Cow::Owned(text.to_string()),
    }
}

/// The text read since the innermost open element's last other child.
///
/// Its first piece is held as read, borrowed from the document: a run of
/// one piece (a date, a Base64 value, the formatting whitespace between
/// elements) is copied once, into its node, or not at all when it is
/// formatting to drop. Longer runs are joined in a buffer reused for the
/// whole document.
#[derive(Default)]
struct TextRun<'a> {
    first: Piece<'a>,
    /// The run, once it has more than one piece (line ends normalized).
    joined: String,
}

#[derive(Default)]
enum Piece<'a> {
    #[default]
    None,
    /// ASCII whitespace as written (line ends not yet normalized).
    Blank(Cow<'a, [u8]>),
    /// Text with its line ends normalized.
    Text(Cow<'a, str>),
}

impl<'a> TextRun<'a> {
    /// Appends a piece of text (inlined: once a text event, in the loop
    /// that reads every event).
    #[inline(always)]
    fn push(&mut self, piece: Piece<'a>) {
        if piece.is_empty() {
            return;
        }
        if self.is_empty() {
            self.first = piece;
        } else {
            self.join_first();
            piece.append_to(&mut self.joined);
        }
    }

    /// Appends text whose line ends are normalized, borrowed for a moment.
    fn push_str(&mut self, text: &str) {
        if !text.is_empty() {
            self.join_first();
            self.joined.push_str(text);
        }
    }

    fn is_empty(&self) -> bool {
        matches!(self.first, Piece::None) && self.joined.is_empty()
    }

    /// Moves the first piece into `joined`, for another to follow it.
    fn join_first(&mut self) {
        std::mem::take(&mut self.first).append_to(&mut self.joined);
    }
}

impl Piece<'_> {
    fn is_empty(&self) -> bool {
        match self {
            Piece::None => true,
            Piece::Blank(blank) => blank.is_empty(),
            Piece::Text(text) => text.is_empty(),
        }
    }

    /// Appends the text, its line ends normalized.
    fn append_to(&self, out: &mut String) {
        match self {
            Piece::None => {}
            Piece::Blank(blank) => push_normalized_blank(out, blank),
            Piece::Text(text) => out.push_str(text),
        }
    }
}

/// An element being read.
///
/// Whitespace-only text in an element that also has element or comment
/// children is formatting, dropped as `XElement.Load` drops it. It is
/// dropped as it is read where that is already known (most of it, in
/// indented XML: no allocation for it), and once the element closes for
/// text read before its first such child.
struct Open {
    element: Element,
    /// The scope's length to restore when the element closes.
    mark: usize,
    /// It has an element or comment child.
    structured: bool,
    /// It holds a whitespace-only text node kept while not `structured`.
    blank_text: bool,
}

impl Open {
    fn new(element: Element, mark: usize) -> Self {
        Open {
            element,
            mark,
            structured: false,
            blank_text: false,
        }
    }

    /// Ends the run of `text` read in this element (leaving it empty),
    /// before another child or the end tag; `structure_follows` when that
    /// child is an element or a comment.
    fn end_text(&mut self, text: &mut TextRun<'_>, structure_follows: bool) {
        let formatting = self.structured || structure_follows;
        self.structured |= structure_follows;
        let run = match std::mem::take(&mut text.first) {
            Piece::None if text.joined.is_empty() => return,
            Piece::None => {
                let blank = is_blank(&text.joined);
                if !(blank && formatting) {
                    self.blank_text |= blank;
                    // A copy of exactly its length; the buffer keeps its
                    // capacity for the next run.
                    self.element
                        .children
                        .push(Node::Text(text.joined.as_str().into()));
                }
                text.joined.clear();
                return;
            }
            Piece::Blank(_) if formatting => return,
            Piece::Blank(blank) => {
                self.blank_text = true;
                let mut run = String::with_capacity(blank.len());
                push_normalized_blank(&mut run, &blank);
                run
            }
            Piece::Text(run) => {
                let blank = is_blank(&run);
                if blank && formatting {
                    return;
                }
                self.blank_text |= blank;
                run.into_owned()
            }
        };
        self.element.children.push(Node::Text(run));
    }

    /// The element, without the formatting whitespace kept before it was
    /// known to be formatting.
    fn close(mut self) -> Element {
        if self.structured && self.blank_text {
            self.element
                .children
                .retain(|n| !matches!(n, Node::Text(t) if is_blank(t)));
        }
        self.element
    }
}

/// Whitespace only (as `char::is_whitespace` has it).
fn is_blank(text: &str) -> bool {
    is_ascii_blank(text.as_bytes()) || text.chars().all(char::is_whitespace)
}

/// Spaces, tabs and line ends only (XML's whitespace, all of it
/// `char::is_whitespace`).
fn is_ascii_blank(bytes: &[u8]) -> bool {
    bytes
        .iter()
        .all(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
}

/// Appends ASCII whitespace with XML 1.0's line-end normalization (`\r\n`
/// and a lone `\r` read as `\n`), as `xml10_content` would give it.
fn push_normalized_blank(text: &mut String, blank: &[u8]) {
    // Runs between carriage returns are copied whole (ASCII, so valid UTF-8).
    let mut runs = blank.split(|&b| b == b'\r');
    if let Some(run) = runs.next() {
        text.push_str(std::str::from_utf8(run).unwrap_or_default());
    }
    for run in runs {
        // `\r` read as `\n`; a `\n` right after it is the same line end.
        text.push('\n');
        let run = run.strip_prefix(b"\n").unwrap_or(run);
        text.push_str(std::str::from_utf8(run).unwrap_or_default());
    }
}

/// Checks text read outside the root element: only whitespace is allowed.
fn outside_root(root: &Option<Element>, content: &str) -> Result<()> {
    if content.trim().is_empty() {
        Ok(())
    } else if root.is_some() {
        Err(Error::malformed("document", "text after the root element"))
    } else {
        Err(Error::malformed("document", "text before the root element"))
    }
}

fn attach(stack: &mut [Open], root: &mut Option<Element>, element: Element) {
    match stack.last_mut() {
        Some(parent) => {
            parent.structured = true;
            parent.element.children.push(Node::Element(element));
        }
        None => *root = Some(element),
    }
}

/// Whether `name` is a valid (qualified) XML name. quick-xml does not check
/// names, and a name with control characters would not survive a rewrite.
fn is_xml_name(name: &str) -> bool {
    let Some((first, rest)) = name.as_bytes().split_first() else {
        return false;
    };
    // The rules on ASCII, a table look-up per byte (every name in key XML).
    if NAME_BYTES[usize::from(*first)] == NAME_START
        && rest.iter().all(|b| NAME_BYTES[usize::from(*b)] != 0)
    {
        return true;
    }
    !name.is_ascii() && is_xml_name_by_chars(name)
}

/// A byte that may start a name (and continue one).
const NAME_START: u8 = 1;
/// A byte that may continue a name but not start it.
const NAME_REST: u8 = 2;
/// [`is_xml_name_by_chars`]'s rules for each ASCII byte (0: not in a name);
/// every byte past ASCII is 0 here, and such names are judged by `char`.
const NAME_BYTES: [u8; 256] = {
    let mut table = [0; 256];
    let mut byte = 0;
    while byte < 128 {
        let b = byte as u8;
        table[byte] = if b.is_ascii_alphabetic() || b == b'_' {
            NAME_START
        } else if b.is_ascii_digit() || b == b'-' || b == b'.' || b == b':' {
            NAME_REST
        } else {
            0
        };
        byte += 1;
    }
    table
};

/// [`is_xml_name`]'s rules on `char`s, for any name.
fn is_xml_name_by_chars(name: &str) -> bool {
    let mut chars = name.chars();
    let Some(first) = chars.next() else {
        return false;
    };
    let name_char = |c: char| {
        c.is_alphanumeric()
            || matches!(c, '_' | '-' | '.' | ':' | '\u{B7}')
            || (c as u32 >= 0x300 && !c.is_whitespace() && !c.is_control())
    };
    (first.is_alphabetic() || first == '_' || (first as u32 >= 0xC0 && name_char(first)))
        && chars.all(name_char)
}

/// The element of a start tag (`document` is the text the reader reads).
fn open_element<'a>(
    document: &'a str,
    start: &BytesStart<'_>,
    scope: &mut Declarations<'a>,
) -> Result<Element> {
    let qualified = start.name();
    let name = str_or_utf8(document, qualified.as_ref())
        .map_err(|_| Error::malformed("document", "element name is not UTF-8"))?;
    let name: Name = match known_name(name) {
        Some(known) => Cow::Borrowed(known),
        None if is_xml_name(name) => Cow::Owned(name.to_string()),
        None => {
            return Err(Error::malformed(
                "document",
                format!("invalid element name {name:?}"),
            ));
        }
    };
    // Room for the attributes of key XML's elements (at most two) in the
    // first allocation, made only when there may be attributes.
    let mut attributes: Vec<Attribute> = if start.attributes_raw().is_empty() {
        Vec::new()
    } else {
        Vec::with_capacity(4)
    };
    // quick-xml's duplicate check compares each attribute with every earlier
    // one (quadratic); duplicates are found below with a hash set instead.
    for attr in TagAttributes::new(start) {
        let TagAttribute {
            attribute: attr,
            name_checked,
            plain,
        } = attr.map_err(|e| Error::malformed(local(&name), e.to_string()))?;
        let key = str_or_utf8(document, attr.key.as_ref())
            .map_err(|_| Error::malformed(local(&name), "attribute name is not UTF-8"))?;
        if !(name_checked || is_xml_name(key)) {
            return Err(Error::malformed(
                local(&name),
                format!("invalid attribute name {key:?}"),
            ));
        }
        let value = attribute_value(document, &attr, plain)
            .map_err(|e| Error::malformed(local(&name), format!("attribute {key:?}: {e}")))?;
        if key == "xmlns" {
            scope.declare(Cow::Borrowed(""), in_document(document, &value));
        } else if let Some(p) = key.strip_prefix("xmlns:") {
            if value.is_empty() {
                return Err(Error::malformed(
                    local(&name),
                    "a prefix cannot be undeclared",
                ));
            }
            scope.declare(in_document(document, p), in_document(document, &value));
        }
        // Its namespace is resolved below, once every declaration on this
        // element is in scope.
        attributes.push(Attribute {
            name: key.to_string(),
            namespace: None,
            value: value.into_owned(),
        });
    }
    let namespace = resolve_namespaces(&name, &mut attributes, scope)?;
    Ok(Element {
        name,
        namespace,
        attributes,
        children: Vec::new(),
    })
}

/// Where namespace prefixes are looked up while an element is read.
trait Namespaces {
    /// The URI bound to `prefix` (`""`: the default namespace), if any.
    fn namespace_of(&self, prefix: &str) -> Option<&str>;
}

impl Namespaces for Scope {
    fn namespace_of(&self, prefix: &str) -> Option<&str> {
        self.lookup(prefix)
    }
}

impl Namespaces for Declarations<'_> {
    #[inline]
    fn namespace_of(&self, prefix: &str) -> Option<&str> {
        self.lookup(prefix)
    }
}

/// The namespace of the element `name`, once its `attributes` (every
/// declaration on it in `scope`) are read; sets each attribute's namespace
/// and refuses duplicate attributes.
fn resolve_namespaces(
    name: &str,
    attributes: &mut [Attribute],
    scope: &impl Namespaces,
) -> Result<Option<String>> {
    let namespace = match prefix(name) {
        Some(p) => Some(
            scope
                .namespace_of(p)
                .ok_or_else(|| {
                    Error::malformed(local(name), format!("undeclared namespace prefix {p:?}"))
                })?
                .to_string(),
        ),
        None => scope
            .namespace_of("")
            .filter(|u| !u.is_empty())
            .map(str::to_string),
    };
    // Duplicates: a scan of the attributes so far for the usual handful,
    // a hash set beyond that (so that many attributes stay linear).
    let mut seen: Option<HashSet<String>> =
        (attributes.len() > 8).then(|| HashSet::with_capacity(attributes.len()));
    for index in 0..attributes.len() {
        let (earlier, rest) = attributes.split_at_mut(index);
        let Some(attribute) = rest.first_mut() else {
            break;
        };
        let key = attribute.name.as_str();
        let namespace = if key == "xmlns" || key.starts_with("xmlns:") {
            Some(XMLNS_NS.to_string())
        } else {
            match prefix(key) {
                Some(p) => Some(
                    scope
                        .namespace_of(p)
                        .ok_or_else(|| {
                            Error::malformed(
                                local(name),
                                format!("undeclared namespace prefix {p:?} on attribute {key:?}"),
                            )
                        })?
                        .to_string(),
                ),
                None => None,
            }
        };
        let duplicate = match &mut seen {
            Some(seen) => !seen.insert(key.to_string()),
            None => earlier.iter().any(|a| a.name == key),
        };
        if duplicate {
            return Err(Error::malformed(
                local(name),
                format!("duplicate attribute {key:?}"),
            ));
        }
        attribute.namespace = namespace;
    }
    Ok(namespace)
}

/// The attribute's value normalized as XML 1.0 has it, exactly as quick-xml's
/// `normalized_value` gives it; without its work when there is nothing to
/// normalize (no reference, tab or line end: `AES_256_CBC`, an id, a type
/// name); `plain` when that is already known.
fn attribute_value<'a>(
    document: &'a str,
    attr: &quick_xml::events::attributes::Attribute<'a>,
    plain: bool,
) -> quick_xml::Result<Cow<'a, str>> {
    if let Cow::Borrowed(raw) = attr.value
        && (plain
            || raw
                .iter()
                .all(|&b| BYTE_CLASS[usize::from(b)] & TO_NORMALIZE == 0))
        && let Ok(value) = str_or_utf8(document, raw)
    {
        return Ok(Cow::Borrowed(value));
    }
    attr.normalized_value(XmlVersion::Explicit1_0)
}

/// `bytes` as the `str` they are in `document` when they are a slice of it
/// (as the names and values of events read from it are): that needs no
/// UTF-8 check, which would cost more than the rest of reading a short name.
/// `None` for bytes from elsewhere, or not on `char` boundaries.
fn str_in<'a>(document: &'a str, bytes: &[u8]) -> Option<&'a str> {
    // Same address and length as `bytes`: the very same bytes.
    let offset = bytes
        .as_ptr()
        .addr()
        .checked_sub(document.as_ptr().addr())?;
    document.get(offset..offset.checked_add(bytes.len())?)
}

/// [`str_in`], or else `bytes` checked as UTF-8.
fn str_or_utf8<'a>(
    document: &'a str,
    bytes: &'a [u8],
) -> std::result::Result<&'a str, std::str::Utf8Error> {
    match str_in(document, bytes) {
        Some(text) => Ok(text),
        None => std::str::from_utf8(bytes),
    }
}

/// The attributes of a start tag, exactly as quick-xml's `Attributes`
/// iterator gives them with its duplicate check off.
///
/// That iterator costs about 220 instructions an attribute (a tenth of
/// reading a key file); the plain form `name="value"` (or `'value'`),
/// nearly every attribute there is, is read here directly.
/// Anything else (whitespace around `=`, an unquoted value, a missing
/// quote, ...) hands over to quick-xml's iterator, from the same attribute
/// on, so that what it accepts and the errors it gives stay its own.
struct TagAttributes<'a> {
    start: &'a BytesStart<'a>,
    /// Where the next attribute is looked for (read here).
    position: usize,
    /// How many attributes were given so far.
    given: usize,
    /// quick-xml's iterator, once it took over.
    quick_xml: Option<Attributes<'a>>,
}

impl<'a> TagAttributes<'a> {
    fn new(start: &'a BytesStart<'a>) -> Self {
        TagAttributes {
            start,
            position: start.name().as_ref().len(),
            given: 0,
            quick_xml: None,
        }
    }

    /// The next attribute if it is in the plain form. Follows quick-xml's
    /// `IterState::next`.
    fn next_plain(&mut self) -> Plain<'a> {
        let tag: &'a [u8] = self.start;
        let class = |b: &u8| BYTE_CLASS[usize::from(*b)];
        let rest = tag.get(self.position..).unwrap_or_default();
        let Some(skipped) = rest.iter().position(|b| class(b) & WHITESPACE == 0) else {
            return Plain::End;
        };
        let key_start = self.position + skipped;
        // quick-xml takes the key's first byte as it is, then reads up to
        // `=` or whitespace; a key starting with `=` is left to it.
        if tag.get(key_start) == Some(&b'=') {
            return Plain::Other;
        }
        // Name bytes first (ASCII ones, as `is_xml_name` judges them): in
        // the usual key that is all of it, up to its `=`, and its name
        // needs no other check.
        let rest = tag.get(key_start + 1..).unwrap_or_default();
        let name_length = rest
            .iter()
            .position(|b| NAME_BYTES[usize::from(*b)] == 0)
            .unwrap_or(rest.len());
        let (key_length, name_checked) = if rest.get(name_length) == Some(&b'=') {
            let first = tag
                .get(key_start)
                .map_or(0, |b| NAME_BYTES[usize::from(*b)]);
            (name_length, first == NAME_START)
        } else {
            let Some(more) = rest.get(name_length..).and_then(|more| {
                more.iter()
                    .position(|b| class(b) & (WHITESPACE | EQUALS) != 0)
            }) else {
                return Plain::Other;
            };
            (name_length + more, false)
        };
        let key_end = key_start + 1 + key_length;
        if tag.get(key_end) != Some(&b'=') {
            return Plain::Other;
        }
        let closing = match tag.get(key_end + 1) {
            Some(b'"') => DOUBLE_QUOTE,
            Some(b'\'') => SINGLE_QUOTE,
            _ => return Plain::Other,
        };
        let value_start = key_end + 2;
        let Some((value_length, plain)) = tag
            .get(value_start..)
            .and_then(|rest| scan_value(rest, closing))
        else {
            return Plain::Other;
        };
        let value_end = value_start + value_length;
        match (tag.get(key_start..key_end), tag.get(value_start..value_end)) {
            (Some(key), Some(value)) => {
                self.position = value_end + 1;
                Plain::Attribute {
                    key,
                    name_checked,
                    value,
                    plain,
                }
            }
            _ => Plain::Other,
        }
    }
}

/// The length of an attribute value up to its closing quote (`closing`,
/// the quote's class), and whether it has nothing to normalize; `None`
/// when the quote is missing.
///
/// Eight bytes at a time, as this runs over every byte of every value (a
/// type name of 200 bytes in each key), and a byte loop costs a dozen
/// instructions a byte, `memchr` a hundred a call: every byte it looks for
/// (quotes, `&`, tab, line ends) is below `(`, and a word with no byte
/// below `(` is skipped whole. (The test is the classic "has a byte less
/// than": exact on whether there is one; only the bytes above the first
/// one found may be misjudged, and those are looked at one by one.)
fn scan_value(value: &[u8], closing: u8) -> Option<(usize, bool)> {
    /// `(` in every byte.
    const BELOW: u64 = 0x2828_2828_2828_2828;
    /// The high bit of every byte.
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let mut seen = 0;
    let mut offset = 0;
    let mut chunks = value.chunks_exact(8);
    for chunk in &mut chunks {
        if let Ok(bytes) = <[u8; 8]>::try_from(chunk) {
            let word = u64::from_le_bytes(bytes);
            if word.wrapping_sub(BELOW) & !word & HIGH == 0 {
                offset += 8;
                continue;
            }
        }
        for (index, byte) in chunk.iter().enumerate() {
            let class = BYTE_CLASS[usize::from(*byte)];
            if class & closing != 0 {
                return Some((offset + index, seen & TO_NORMALIZE == 0));
            }
            seen |= class;
        }
        offset += 8;
    }
    for (index, byte) in chunks.remainder().iter().enumerate() {
        let class = BYTE_CLASS[usize::from(*byte)];
        if class & closing != 0 {
            return Some((offset + index, seen & TO_NORMALIZE == 0));
        }
        seen |= class;
    }
    None
}

/// XML whitespace (to quick-xml): space, tab, line ends.
const WHITESPACE: u8 = 1;
/// `=`.
const EQUALS: u8 = 2;
/// `"`.
const DOUBLE_QUOTE: u8 = 4;
/// `'`.
const SINGLE_QUOTE: u8 = 8;
/// What attribute value normalization replaces: references, tab, line ends.
const TO_NORMALIZE: u8 = 16;
/// What each byte is to [`TagAttributes`] and [`attribute_value`].
static BYTE_CLASS: [u8; 256] = {
    let mut table = [0; 256];
    table[b' ' as usize] = WHITESPACE;
    table[b'\t' as usize] = WHITESPACE | TO_NORMALIZE;
    table[b'\n' as usize] = WHITESPACE | TO_NORMALIZE;
    table[b'\r' as usize] = WHITESPACE | TO_NORMALIZE;
    table[b'=' as usize] = EQUALS;
    table[b'"' as usize] = DOUBLE_QUOTE;
    table[b'\'' as usize] = SINGLE_QUOTE;
    table[b'&' as usize] = TO_NORMALIZE;
    table
};

/// What [`TagAttributes::next_plain`] found.
enum Plain<'a> {
    /// An attribute's name and raw value, and whether that has nothing to
    /// normalize.
    Attribute {
        key: &'a [u8],
        /// The key is known to be a valid XML name.
        name_checked: bool,
        value: &'a [u8],
        plain: bool,
    },
    /// Nothing but whitespace to the end of the tag.
    End,
    /// Something for quick-xml to read.
    Other,
}

/// An attribute as [`TagAttributes`] gives it.
struct TagAttribute<'a> {
    attribute: quick_xml::events::attributes::Attribute<'a>,
    /// Its name is known to be a valid XML name.
    name_checked: bool,
    /// Its value is known to have nothing to normalize.
    plain: bool,
}

impl<'a> Iterator for TagAttributes<'a> {
    type Item = std::result::Result<TagAttribute<'a>, AttrError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.quick_xml.is_none() {
            match self.next_plain() {
                Plain::Attribute {
                    key,
                    name_checked,
                    value,
                    plain,
                } => {
                    self.given += 1;
                    let attribute = quick_xml::events::attributes::Attribute {
                        key: QName(key),
                        value: Cow::Borrowed(value),
                    };
                    return Some(Ok(TagAttribute {
                        attribute,
                        name_checked,
                        plain,
                    }));
                }
                Plain::End => return None,
                Plain::Other => {}
            }
            // The end of the tag, or something quick-xml is to judge: its
            // iterator, moved past the attributes already given.
            let mut attributes = self.start.attributes();
            attributes.with_checks(false);
            for _ in 0..self.given {
                attributes.next();
            }
            self.quick_xml = Some(attributes);
        }
        let next = self.quick_xml.as_mut()?.next()?;
        Some(next.map(|attribute| TagAttribute {
            attribute,
            name_checked: false,
            plain: false,
        }))
    }
}

fn write_element(e: &Element, format: Format, depth: usize, scope: &mut Scope, out: &mut String) {
    let mark = scope.mark();
    out.push('<');
    out.push_str(&e.name);
    let mut declared_here = Vec::new();
    for a in &e.attributes {
        if a.name == "xmlns" {
            declared_here.push((String::new(), a.value.clone()));
        } else if let Some(p) = a.name.strip_prefix("xmlns:") {
            declared_here.push((p.to_string(), a.value.clone()));
        }
    }
    for (p, uri) in declared_here {
        scope.push(p, uri);
    }
    // Fix-ups: make sure the element's own namespace is what a reader will
    // resolve, declaring it where needed (as .NET's writer does).
    let wanted = e.namespace.as_deref().unwrap_or("");
    let p = prefix(&e.name).unwrap_or("");
    let mut extra = Vec::new();
    if scope.lookup(p).unwrap_or("") != wanted {
        extra.push((p.to_string(), wanted.to_string()));
        scope.push(p.to_string(), wanted.to_string());
    }
    for a in &e.attributes {
        if let (Some(ap), Some(ns)) = (prefix(&a.name), a.namespace.as_deref())
            && ap != "xmlns"
            && scope.lookup(ap) != Some(ns)
        {
            extra.push((ap.to_string(), ns.to_string()));
            scope.push(ap.to_string(), ns.to_string());
        }
    }
    for a in &e.attributes {
        let _ = write!(out, " {}=\"", a.name);
        escape_attr(&a.value, out);
        out.push('"');
    }
    for (p, uri) in extra {
        if p.is_empty() {
            out.push_str(" xmlns=\"");
        } else {
            let _ = write!(out, " xmlns:{p}=\"");
        }
        escape_attr(&uri, out);
        out.push('"');
    }
    if e.children.is_empty() {
        out.push_str(" />");
        scope.truncate(mark);
        return;
    }
    out.push('>');
    // .NET stops indenting inside an element that has text content.
    let mixed = e
        .children
        .iter()
        .any(|n| matches!(n, Node::Text(_) | Node::CData(_)));
    let indent = format == Format::Indented && !mixed;
    for child in &e.children {
        if indent {
            newline(depth + 1, out);
        }
        match child {
            Node::Element(c) => {
                let child_format = if indent { format } else { Format::Compact };
                write_element(c, child_format, depth + 1, scope, out);
            }
            Node::Text(t) => escape_text(t, out),
            Node::CData(t) => {
                out.push_str("<![CDATA[");
                out.push_str(t);
                out.push_str("]]>");
            }
            Node::Comment(t) => {
                out.push_str("<!--");
                out.push_str(t);
                out.push_str("-->");
            }
        }
    }
    if indent {
        newline(depth, out);
    }
    out.push_str("</");
    out.push_str(&e.name);
    out.push('>');
    scope.truncate(mark);
}

fn newline(depth: usize, out: &mut String) {
    out.push('\n');
    for _ in 0..depth {
        out.push_str("  ");
    }
}

fn escape_text(s: &str, out: &mut String) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\r' => out.push_str("&#xD;"),
            c => out.push(c),
        }
    }
}

fn escape_attr(s: &str, out: &mut String) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\n' => out.push_str("&#xA;"),
            '\r' => out.push_str("&#xD;"),
            '\t' => out.push_str("&#x9;"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod reference;

#[cfg(test)]
mod differential;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_indented() {
        let text =
            "<key id=\"1\" version=\"1\">\n  <a>x &amp; y</a>\n  <!-- c -->\n  <b />\n</key>";
        let e = Element::parse(text).unwrap();
        assert_eq!(e.to_xml(Format::Indented), text);
    }

    #[test]
    fn namespaces_resolve_with_any_prefix() {
        let e = Element::parse(
            "<m p6:requiresEncryption=\"true\" xmlns:p6=\"http://schemas.asp.net/2015/03/dataProtection\"/>",
        )
        .unwrap();
        assert_eq!(
            e.attr_ns(
                "http://schemas.asp.net/2015/03/dataProtection",
                "requiresEncryption"
            ),
            Some("true")
        );
    }

    #[test]
    fn default_namespace_fixup() {
        let mut parent = Element::new_ns("encryptedSecret", "urn:x");
        parent.declare_namespace("", "urn:x");
        let parent = parent.with_child(Element::new("encryptedKey"));
        let text = parent.to_xml(Format::Compact);
        assert_eq!(
            text,
            "<encryptedSecret xmlns=\"urn:x\"><encryptedKey xmlns=\"\" /></encryptedSecret>"
        );
        let back = Element::parse(&text).unwrap();
        assert!(back.elements().next().unwrap().is("encryptedKey"));
    }

    #[test]
    fn refuses_bad_documents() {
        for bad in [
            "",
            "<a>",
            "<a></b>",
            "<a/><b/>",
            "<a>&foo;</a>",
            "<!DOCTYPE a><a/>",
            "<p:a/>",
            "<a x=\"1\" x=\"2\"/>",
            "text",
        ] {
            assert!(Element::parse(bad).is_err(), "{bad:?} should be refused");
        }
        for bad in ["<cr\u{c}/>", "<1a/>", "<a b\u{7}=\"1\"/>"] {
            assert!(Element::parse(bad).is_err(), "{bad:?} should be refused");
        }
        assert!(Element::parse("<ünï-code_1.x/>").is_ok());
        let deep = "<a>".repeat(200) + &"</a>".repeat(200);
        assert!(Element::parse(&deep).is_err());
    }

    /// Whitespace-only text is formatting, dropped, in an element with
    /// element or comment children, wherever it stands among them; it is
    /// kept in a text-only element, and text made of whitespace and
    /// references runs together before it is judged.
    #[test]
    fn formatting_whitespace_is_dropped_beside_elements_and_comments_only() {
        let children = |xml: &str| Element::parse(xml).unwrap().children;
        let text = |t: &str| Node::Text(t.into());
        let b = || Node::Element(Element::new("b"));
        assert_eq!(children("<r>\n  <b/>\n  <b></b>\n</r>"), [b(), b()]);
        assert_eq!(
            children("<r> <![CDATA[ ]]> <b/> </r>"),
            [Node::CData(" ".into()), b()]
        );
        assert_eq!(
            children("<r> \t<![CDATA[x]]>  </r>"),
            [text(" \t"), Node::CData("x".into()), text("  ")]
        );
        assert_eq!(
            children("<r>  <!--c-->\u{a0}</r>"),
            [Node::Comment("c".into())]
        );
        assert_eq!(children("<r> &#32; </r>"), [text("   ")]);
        assert_eq!(children("<r><b/> &#32; <b/></r>"), [b(), b()]);
        assert_eq!(children("<r><b/> &amp; <b/></r>"), [b(), text(" & "), b()]);
        assert_eq!(
            children("<r>a<?pi?> <b/>c</r>"),
            [text("a "), b(), text("c")]
        );
        assert_eq!(
            children("<r> <b> </b> </r>"),
            [Node::Element(Element::new("b").with_text(" "))]
        );
        assert!(children("<r/>").is_empty());
        // Line ends read as `\n`, in whitespace as in other text.
        assert_eq!(children("<r> \r\n\t\r\r\n </r>"), [text(" \n\t\n\n ")]);
        assert_eq!(children("<r>x\r\n\ry</r>"), [text("x\n\ny")]);
        assert_eq!(children("<r>\r<b/>\u{2028}</r>"), [b()]);
    }

    #[test]
    fn local_names_compare_as_the_part_after_the_last_colon() {
        let names = [
            "", "a", "b", "a:b", "b:a", "p:q:a", ":a", "a:", "xa", "ab", "é:a", "a:é",
        ];
        for name in names {
            for local_name in names {
                assert_eq!(
                    has_local_name(name, local_name),
                    local(name) == local_name,
                    "{name:?} {local_name:?}"
                );
            }
        }
    }

    #[test]
    fn ascii_names_follow_the_same_rules_as_any_name() {
        for first in 0u8..128 {
            for second in 0u8..128 {
                let name: String = [first as char, second as char].iter().collect();
                assert_eq!(is_xml_name(&name), is_xml_name_by_chars(&name), "{name:?}");
                assert_eq!(is_xml_name(&name[..1]), is_xml_name_by_chars(&name[..1]));
            }
        }
        assert!(!is_xml_name(""));
    }

    /// The word-at-a-time scan against a byte loop, on values made of the
    /// bytes it looks for, the bytes next to them, and bytes past ASCII, at
    /// every position in a word.
    #[test]
    fn value_scan_finds_what_a_byte_loop_finds() {
        let alphabet = [
            b'a',
            b' ',
            b'"',
            b'\'',
            b'&',
            b'\t',
            b'\n',
            b'\r',
            b'(',
            b'\'' + 1,
            0,
            0x7f,
            0x80,
            0xa8,
            0xc3,
            0xff,
        ];
        let by_bytes = |value: &[u8], closing: u8| {
            let end = value
                .iter()
                .position(|b| BYTE_CLASS[usize::from(*b)] & closing != 0)?;
            let plain = value[..end]
                .iter()
                .all(|b| !matches!(b, b'&' | b'\t' | b'\n' | b'\r'));
            Some((end, plain))
        };
        let mut state = 1u64;
        for length in 0..40 {
            for _ in 0..300 {
                let value: Vec<u8> = (0..length)
                    .map(|_| {
                        state = state.wrapping_mul(6364136223846793005).wrapping_add(1);
                        // Mostly plain bytes, so that quotes come late too.
                        let pick = (state >> 33) as usize % (alphabet.len() * 4);
                        alphabet.get(pick).copied().unwrap_or(b'x')
                    })
                    .collect();
                for closing in [DOUBLE_QUOTE, SINGLE_QUOTE] {
                    assert_eq!(
                        scan_value(&value, closing),
                        by_bytes(&value, closing),
                        "{value:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn duplicate_attributes_are_refused_among_few_and_among_many() {
        for count in [2, 8, 9, 100] {
            let mut attributes: Vec<String> = (0..count).map(|i| format!("a{i}='{i}'")).collect();
            let element = format!("<e {}/>", attributes.join(" "));
            assert_eq!(Element::parse(&element).unwrap().attributes.len(), count);
            attributes.push("a0='again'".into());
            let element = format!("<e {}/>", attributes.join(" "));
            let error = Element::parse(&element).unwrap_err().to_string();
            assert!(error.contains("duplicate attribute \"a0\""), "{error}");
        }
        // The same local name in two namespaces is not a duplicate.
        assert!(Element::parse("<e a='1' p:a='2' xmlns:p='urn:p'/>").is_ok());
    }
}
