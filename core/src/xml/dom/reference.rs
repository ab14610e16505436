//! The parser as it was before it was made cheaper (allocations, the
//! namespace scope), kept verbatim for the differential test in
//! `dom/differential.rs`: the parser must give exactly what this gives,
//! `Ok` element for element and `Err` message for message.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};

use quick_xml::events::{BytesStart, Event};
use quick_xml::{Reader, XmlVersion};

use super::{Attribute, Element, Node};
use crate::error::{Error, Result};

const XMLNS_NS: &str = "http://www.w3.org/2000/xmlns/";
const XML_NS: &str = "http://www.w3.org/XML/1998/namespace";
const MAX_DEPTH: usize = 128;

type Name = Cow<'static, str>;

/// `name`, shared rather than allocated when it is one of the names of
/// ASP.NET Core's key XML: a ring of 10,000 keys holds about 100,000
/// elements, each otherwise an allocation to make and later to free.
fn shared_name(name: &str) -> Name {
    Cow::Borrowed(match name {
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
        _ => return Cow::Owned(name.to_string()),
    })
}

fn local(name: &str) -> &str {
    name.rsplit_once(':').map_or(name, |(_, l)| l)
}

/// `local(name) == local_name`, comparing from the end instead of searching
fn prefix(name: &str) -> Option<&str> {
    name.split_once(':').map(|(p, _)| p)
}

/// In-scope namespace bindings (`""` is the default namespace). Lookups and
/// declarations are O(1), so an element with many prefixed attributes or
/// declarations is read in linear time: a map from prefix to its stack of
/// bindings, and a log of declarations in order, to undo them when an
/// element closes.
#[derive(Default, Clone)]
pub(super) struct Scope {
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

    pub(super) fn lookup(&self, prefix: &str) -> Option<&str> {
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
pub(super) fn parse_with_scope(text: &str, inherited: &mut Scope) -> Result<Element> {
    let mark = inherited.mark();
    let result = parse_in_scope(text, inherited);
    inherited.truncate(mark);
    result
}

fn parse_in_scope(text: &str, scope: &mut Scope) -> Result<Element> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    if text.starts_with('\u{feff}') {
        return Err(Error::malformed(
            "document",
            "more than one byte order mark",
        ));
    }
    let mut reader = Reader::from_str(text);
    let config = reader.config_mut();
    config.check_end_names = true;
    config.expand_empty_elements = false;
    config.trim_text(false);

    // The elements open, innermost last.
    let mut stack: Vec<Open> = Vec::new();
    let mut root: Option<Element> = None;
    // The text read since the innermost open element's last other child
    // (text and entity references run together into one text node).
    let mut text = String::new();

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
            Event::Decl(decl) => {
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
            }
            Event::DocType(_) => {
                return Err(Error::malformed(
                    "document",
                    "a DTD is not allowed in key XML (entity declarations are refused)",
                ));
            }
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
                let element = open_element(&start, scope)?;
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
                let element = open_element(&start, scope)?;
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
                // normalized here, without decoding.
                if !stack.is_empty() {
                    push_normalized_blank(&mut text, &t);
                }
            }
            Event::Text(t) => {
                let content = t
                    .xml10_content()
                    .map_err(|e| Error::malformed("document", e.to_string()))?;
                push_text(&stack, &root, &mut text, &content)?;
            }
            Event::GeneralRef(r) => {
                let resolved: Cow<'_, str> = if let Some(ch) = r
                    .resolve_char_ref()
                    .map_err(|e| Error::malformed("document", e.to_string()))?
                {
                    Cow::Owned(ch.to_string())
                } else {
                    let name = r
                        .decode()
                        .map_err(|e| Error::malformed("document", e.to_string()))?;
                    match &*name {
                        "amp" => "&".into(),
                        "lt" => "<".into(),
                        "gt" => ">".into(),
                        "apos" => "'".into(),
                        "quot" => "\"".into(),
                        other => {
                            return Err(Error::malformed(
                                "document",
                                format!("undefined entity &{other};"),
                            ));
                        }
                    }
                };
                push_text(&stack, &root, &mut text, &resolved)?;
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

    /// Ends the run of `text` read in this element (leaving `text` empty),
    /// before another child or the end tag; `structure_follows` when that
    /// child is an element or a comment.
    fn end_text(&mut self, text: &mut String, structure_follows: bool) {
        if !text.is_empty() {
            let blank = is_blank(text);
            if blank && (self.structured || structure_follows) {
                text.clear();
            } else {
                self.blank_text |= blank;
                // A copy of exactly its length; the buffer keeps its
                // capacity for the next run.
                self.element.children.push(Node::Text(text.as_str().into()));
                text.clear();
            }
        }
        self.structured |= structure_follows;
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
    let mut bytes = blank.iter().peekable();
    while let Some(&byte) = bytes.next() {
        if byte == b'\r' {
            bytes.next_if_eq(&&b'\n');
            text.push('\n');
        } else {
            text.push(char::from(byte));
        }
    }
}

/// Adds `content` to the text run of the innermost open element; outside
/// the root only whitespace is allowed.
fn push_text(
    stack: &[Open],
    root: &Option<Element>,
    text: &mut String,
    content: &str,
) -> Result<()> {
    if !stack.is_empty() {
        text.push_str(content);
        return Ok(());
    }
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

fn open_element(start: &BytesStart<'_>, scope: &mut Scope) -> Result<Element> {
    let qualified = start.name();
    let name = std::str::from_utf8(qualified.as_ref())
        .map_err(|_| Error::malformed("document", "element name is not UTF-8"))?;
    if !is_xml_name(name) {
        return Err(Error::malformed(
            "document",
            format!("invalid element name {name:?}"),
        ));
    }
    let name = shared_name(name);
    let mut attributes: Vec<Attribute> = Vec::new();
    // quick-xml's duplicate check compares each attribute with every earlier
    // one (quadratic); duplicates are found below with a hash set instead.
    for attr in start.attributes().with_checks(false) {
        let attr = attr.map_err(|e| Error::malformed(local(&name), e.to_string()))?;
        let key = std::str::from_utf8(attr.key.as_ref())
            .map_err(|_| Error::malformed(local(&name), "attribute name is not UTF-8"))?;
        if !is_xml_name(key) {
            return Err(Error::malformed(
                local(&name),
                format!("invalid attribute name {key:?}"),
            ));
        }
        let value = attr
            .normalized_value(XmlVersion::Explicit1_0)
            .map_err(|e| Error::malformed(local(&name), format!("attribute {key:?}: {e}")))?
            .into_owned();
        if key == "xmlns" {
            scope.push(String::new(), value.clone());
        } else if let Some(p) = key.strip_prefix("xmlns:") {
            if value.is_empty() {
                return Err(Error::malformed(
                    local(&name),
                    "a prefix cannot be undeclared",
                ));
            }
            scope.push(p.to_string(), value.clone());
        }
        // Its namespace is resolved below, once every declaration on this
        // element is in scope.
        attributes.push(Attribute {
            name: key.to_string(),
            namespace: None,
            value,
        });
    }
    let namespace = match prefix(&name) {
        Some(p) => Some(
            scope
                .lookup(p)
                .ok_or_else(|| {
                    Error::malformed(local(&name), format!("undeclared namespace prefix {p:?}"))
                })?
                .to_string(),
        ),
        None => scope
            .lookup("")
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
                        .lookup(p)
                        .ok_or_else(|| {
                            Error::malformed(
                                local(&name),
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
                local(&name),
                format!("duplicate attribute {key:?}"),
            ));
        }
        attribute.namespace = namespace;
    }
    Ok(Element {
        name,
        namespace,
        attributes,
        children: Vec::new(),
    })
}
