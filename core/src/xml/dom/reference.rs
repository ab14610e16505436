//! The parser as it was before it was made cheaper (allocations, the
//! namespace scope, attribute reading), kept as it was for the differential
//! test in `dom/differential.rs`: the parser must give exactly what this
//! gives, `Ok` element for element and `Err` message for message. What the
//! change left alone (name rules, blank text, the writer's `Scope`) is
//! shared with `dom.rs`, not copied.

use std::borrow::Cow;

use quick_xml::events::{BytesStart, Event};
use quick_xml::{Reader, XmlVersion};

// Not copied: what the change left as it was.
use super::{
    Attribute, Element, MAX_DEPTH, Name, Node, Scope, check_declaration, dtd_refused,
    is_ascii_blank, is_blank, is_xml_name, known_name, local, resolve_namespaces,
};
use crate::error::{Error, Result};

/// `name`, shared rather than allocated when it is one of the names of
/// ASP.NET Core's key XML: a ring of 10,000 keys holds about 100,000
/// elements, each otherwise an allocation to make and later to free.
fn shared_name(name: &str) -> Name {
    known_name(name).map_or_else(|| Cow::Owned(name.to_string()), Cow::Borrowed)
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
    let namespace = resolve_namespaces(&name, &mut attributes, scope)?;
    Ok(Element {
        name,
        namespace,
        attributes,
        children: Vec::new(),
    })
}
