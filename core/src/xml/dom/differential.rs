//! Differential test: the parser against the reference copy of the parser
//! it replaced (`dom/reference.rs`), on generated documents, well-formed and
//! not. Both must give the same `Result`: equal elements, or errors with the
//! same variant and message.

use super::{Element, Scope, parse_with_scope, reference};

/// A small deterministic generator (SplitMix64), so that a failure is
/// reproduced by its seed.
/// A `noisy` one also makes what is not allowed, now and then.
struct Random {
    state: u64,
    noisy: bool,
}

impl Random {
    fn new(seed: u64) -> Self {
        let mut random = Random {
            state: seed,
            noisy: false,
        };
        random.noisy = random.one_in(2);
        random
    }

    fn next(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number below `n`.
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// True one time in `n`.
    fn one_in(&mut self, n: usize) -> bool {
        self.below(n) == 0
    }

    /// True, in a noisy generator, one time in `n`.
    fn bad(&mut self, n: usize) -> bool {
        self.noisy && self.one_in(n)
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

const PREFIXES: &[&str] = &["p", "p4", "q", "enc", "x", "xml", "xmlns", "é"];
const URIS: &[&str] = &[
    "urn:a",
    "urn:b",
    "http://schemas.asp.net/2015/03/dataProtection",
    "http://www.w3.org/2000/xmlns/",
    "http://www.w3.org/XML/1998/namespace",
    "urn:a&amp;b",
    "urn:\t\r\nx",
];
const LOCAL_NAMES: &[&str] = &[
    "key",
    "creationDate",
    "descriptor",
    "masterKey",
    "value",
    "encryptedSecret",
    "a",
    "b",
    "ünï-code_1.x",
    "id",
    "version",
    "algorithm",
    "requiresEncryption",
    "_x",
];
const BAD_NAMES: &[&str] = &[
    "1a", "a\u{7}", "cr\u{c}", "-x", "a b", ":a", "a:", "p:q:r", "",
];
const ATTRIBUTE_VALUES: &[&str] = &[
    "AES_256_CBC",
    "HMACSHA256",
    "",
    "true",
    "a&amp;b",
    "&lt;&gt;&quot;&apos;",
    "tab\there",
    "line\nend",
    "cr\rlf\r\n",
    "&#x9;&#10;&#xD;",
    "&#65;&#x42;",
    "ü\u{a0}\u{2028}",
    "  spaced  ",
    "a>b",
];
const BAD_ATTRIBUTE_VALUES: &[&str] = &["&#0;", "&#xD800;", "&undefined;", "&amp", "a<b", "&#x;"];
const TEXTS: &[&str] = &[
    "2020-12-07T12:32:19.2696422Z",
    "iB4AAAAAAAAAAAAAAAAAAAAAAAAAAA==",
    "\n  ",
    "\r\n    ",
    " \t",
    "\r",
    "\r\r\n",
    "\u{a0}",
    "\u{2028}",
    "x &amp; y",
    "&#32;",
    "&#x20;&#13;",
    "&lt;&gt;&quot;&apos;",
    "a > b",
    "]]>",
    "ü",
    "text\r\nlines",
];
const BAD_TEXTS: &[&str] = &["&nope;", "&#xFFFFFF;", "&#0;", "&", "a < b", "&#;"];

/// One generated document (see the module documentation).
fn document(random: &mut Random) -> String {
    let mut out = String::new();
    if random.one_in(8) {
        out.push('\u{feff}');
    }
    if random.bad(10) {
        out.push('\u{feff}');
    }
    if random.one_in(2) {
        out.push_str(random.pick(&[
            "<?xml version=\"1.0\" encoding=\"utf-8\"?>",
            "<?xml version=\"1.0\"?>",
            "<?xml version=\"1.0\" encoding=\"UTF8\" standalone=\"yes\"?>",
            "<?xml version=\"1.1\"?>",
            "<?xml version='1.0' encoding='Utf-8'?>",
            "<?xml?>",
        ]));
        if random.bad(10) {
            out.push_str("<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?>");
        }
    }
    misc(random, &mut out, true);
    let depth = if random.one_in(200) {
        126 + random.below(4)
    } else {
        0
    };
    if depth > 0 {
        // Near the nesting limit, on both sides of it.
        for _ in 0..depth {
            out.push_str("<a>");
        }
        element(random, &mut out, 1, &mut Vec::new());
        for _ in 0..depth {
            out.push_str("</a>");
        }
    } else {
        element(random, &mut out, 0, &mut Vec::new());
    }
    misc(random, &mut out, false);
    if random.bad(2) {
        mutate(random, &mut out);
    }
    out
}

/// Whitespace, comments, processing instructions, and now and then what is
/// not allowed outside the root.
fn misc(random: &mut Random, out: &mut String, before_root: bool) {
    for _ in 0..random.below(3) {
        out.push_str(random.pick(&[
            "\n",
            "\r\n",
            " \t ",
            "<!-- a comment -->",
            "<?pi data?>",
            "\u{a0}",
        ]));
    }
    if !random.noisy {
        return;
    }
    match random.below(40) {
        0 => out.push_str("text"),
        1 => out.push_str("<![CDATA[c]]>"),
        2 => out.push_str("&amp;"),
        3 => out.push_str("&#32;"),
        4 if before_root => out.push_str("<!DOCTYPE a [<!ENTITY x \"y\">]>"),
        5 if !before_root => out.push_str("<second/>"),
        6 if !before_root => out.push_str("</extra>"),
        _ => {}
    }
}

fn name(random: &mut Random, declared: &[String]) -> String {
    if random.bad(30) {
        return random.pick(BAD_NAMES).to_string();
    }
    let prefixed: Vec<&String> = declared.iter().filter(|p| !p.is_empty()).collect();
    if random.one_in(3) {
        // A prefix in scope, or (noisy) one that may not be.
        let prefix = if random.bad(6) {
            random.pick(PREFIXES)
        } else if prefixed.is_empty() || random.one_in(8) {
            "xml"
        } else {
            prefixed[random.below(prefixed.len())].as_str()
        };
        format!("{prefix}:{}", random.pick(LOCAL_NAMES))
    } else {
        random.pick(LOCAL_NAMES).to_string()
    }
}

fn element(random: &mut Random, out: &mut String, depth: usize, declared: &mut Vec<String>) {
    let mark = declared.len();
    let mut attributes = Vec::new();
    // Declarations: none on most elements, a few, or (rarely) very many.
    let declarations = match random.below(20) {
        0..=11 => 0,
        12..=18 => 1 + random.below(3),
        _ => 5 + random.below(40),
    };
    for index in 0..declarations {
        let default_declared = attributes.iter().any(|a: &String| a.starts_with("xmlns="));
        let default = (!default_declared || random.bad(4)) && random.one_in(4);
        let uri = if (default || random.bad(4)) && random.one_in(3) {
            ""
        } else {
            random.pick(URIS)
        };
        if default {
            declared.push(String::new());
            attributes.push(format!("xmlns=\"{uri}\""));
        } else {
            let prefix = if random.bad(3) {
                // Perhaps "xml", "xmlns", or a prefix declared twice.
                random.pick(PREFIXES).to_string()
            } else if random.one_in(4) {
                // Redeclared from an outer element, perhaps.
                format!("{}{index}", random.pick(&["p", "q"]))
            } else {
                format!("n{index}")
            };
            attributes.push(format!("xmlns:{prefix}=\"{uri}\""));
            declared.push(prefix);
        }
    }
    let ordinary = match random.below(10) {
        0..=3 => 0,
        4..=8 => 1 + random.below(3),
        _ => 4 + random.below(30),
    };
    for index in 0..ordinary {
        let attribute_name = if random.bad(4) {
            // Perhaps the name of another attribute.
            format!("a{}", random.below(ordinary + 1))
        } else if random.bad(4) {
            name(random, declared)
        } else if random.one_in(3) {
            // A qualified name: its prefix (or "xml") in scope.
            let prefix = name(random, declared);
            match prefix.split_once(':') {
                Some((prefix, _)) => format!("{prefix}:a{index}"),
                None => format!("a{index}"),
            }
        } else {
            format!("a{index}")
        };
        let value = if random.bad(10) {
            random.pick(BAD_ATTRIBUTE_VALUES)
        } else {
            random.pick(ATTRIBUTE_VALUES)
        };
        attributes.push(if random.one_in(4) {
            format!("{attribute_name}='{}'", value.replace('\'', "&apos;"))
        } else {
            format!("{attribute_name}=\"{}\"", value.replace('"', "&quot;"))
        });
    }
    // Declarations after the attributes that use them, now and then.
    let rotate = random.below(attributes.len() + 1);
    attributes.rotate_left(rotate);
    let element_name = name(random, declared);
    out.push('<');
    out.push_str(&element_name);
    for attribute in &attributes {
        out.push_str(random.pick(&[" ", "\n  ", "\t", "\r\n "]));
        out.push_str(attribute);
    }
    if random.one_in(8) {
        out.push(' ');
    }
    let children = if depth > 6 { 0 } else { random.below(5) };
    if children == 0 && random.one_in(2) {
        out.push_str(random.pick(&["/>", " />"]));
    } else {
        out.push('>');
        for _ in 0..children {
            match random.below(10) {
                0..=3 => element(random, out, depth + 1, declared),
                4..=6 if random.bad(6) => out.push_str(random.pick(BAD_TEXTS)),
                4..=6 => out.push_str(random.pick(TEXTS)),
                7 => {
                    out.push_str("<![CDATA[");
                    out.push_str(random.pick(&["", " ", "x", "<a>&amp;", "\r\n"]));
                    out.push_str("]]>");
                }
                8 => {
                    out.push_str("<!--");
                    out.push_str(random.pick(&["", " c ", "ü", "a-b", "\r\n"]));
                    out.push_str("-->");
                }
                _ => out.push_str(random.pick(&["<?pi?>", "<?pi x?>", "\n    "])),
            }
        }
        out.push_str("</");
        if random.bad(40) {
            out.push_str("other");
        } else {
            out.push_str(&element_name);
        }
        if random.one_in(10) {
            out.push(' ');
        }
        out.push('>');
    }
    declared.truncate(mark);
}

/// A few random edits at character boundaries.
fn mutate(random: &mut Random, out: &mut String) {
    for _ in 0..1 + random.below(3) {
        let boundaries: Vec<usize> = (0..=out.len())
            .filter(|&i| out.is_char_boundary(i))
            .collect();
        let at = boundaries[random.below(boundaries.len())];
        match random.below(4) {
            0 => out.truncate(at),
            1 => {
                let end = boundaries.iter().copied().find(|&i| i > at).unwrap_or(at);
                out.replace_range(at..end, "");
            }
            _ => out.insert_str(
                at,
                random.pick(&[
                    "<",
                    ">",
                    "&",
                    "\"",
                    "'",
                    "/",
                    ":",
                    "=",
                    " ",
                    "\r",
                    "]]>",
                    "<!--",
                    "-->",
                    "&#0;",
                    "<a>",
                    "</a>",
                    "xmlns:p='urn:p' ",
                    "p:",
                    "\u{0}",
                    "\u{feff}",
                ]),
            ),
        }
    }
}

fn assert_same(document: &str, seed: u64, inherited: &[(&str, &str)]) {
    let bindings = || {
        inherited
            .iter()
            .map(|(p, u)| (p.to_string(), u.to_string()))
    };
    let scope = Scope::from_bindings(bindings());
    let mut reference_scope = Scope::from_bindings(bindings());
    let actual = parse_with_scope(document, &scope);
    let expected = reference::parse_with_scope(document, &mut reference_scope);
    match (&actual, &expected) {
        (Ok(a), Ok(e)) => assert_eq!(a, e, "seed {seed}: {document:?}"),
        (Err(a), Err(e)) => assert_eq!(
            format!("{a:?}"),
            format!("{e:?}"),
            "seed {seed}: {document:?}"
        ),
        _ => panic!("seed {seed}: {document:?}: {actual:?} but the reference gives {expected:?}"),
    }
    // The inherited bindings are as they were.
    for prefix in PREFIXES.iter().chain(&["", "n0", "n1"]) {
        assert_eq!(
            scope.lookup(prefix),
            reference_scope.lookup(prefix),
            "seed {seed}: prefix {prefix:?} after {document:?}"
        );
    }
}

#[test]
fn parser_gives_what_the_reference_parser_gives_on_generated_documents() {
    let mut oks = 0;
    for seed in 0..20_000u64 {
        let mut random = Random::new(seed);
        let document = document(&mut random);
        let inherited: &[(&str, &str)] = match random.below(8) {
            0 => &[("p", "urn:inherited"), ("", "urn:default")],
            1 => &[("p4", "urn:x"), ("p4", "urn:y"), ("q", "urn:q")],
            _ => &[],
        };
        assert_same(&document, seed, inherited);
        oks += usize::from(Element::parse(&document).is_ok());
    }
    // Both kinds are well represented (a generator that only made broken
    // documents would prove little).
    assert!((6_000..16_000).contains(&oks), "{oks} documents parsed");
}

#[test]
fn parser_gives_what_the_reference_parser_gives_on_key_xml_and_hostile_documents() {
    let vectors = [
        include_str!("../../../tests/vectors/xml/key-aes256gcm.xml"),
        include_str!("../../../tests/vectors/xml/key-default-aes256cbc-hmacsha256.xml"),
        include_str!("../../../tests/vectors/xml/key-managed-descriptor.xml"),
        include_str!("../../../tests/vectors/xml/key-null-xml-encryptor.xml"),
        include_str!("../../../tests/vectors/xml/repository-blob.xml"),
        include_str!("../../../tests/vectors/xml/revocation-all-before-date.xml"),
        include_str!("../../../tests/vectors/xml/revocation-single.xml"),
    ];
    let mut documents = Vec::new();
    for vector in vectors {
        // The vector, with CRLF line ends, and every truncation of it.
        documents.push(vector.to_string());
        documents.push(vector.replace('\n', "\r\n"));
        documents.extend(
            (0..vector.len())
                .filter(|&i| vector.is_char_boundary(i))
                .map(|i| vector[..i].to_string()),
        );
    }
    // Thousands of declarations and prefixed attributes on one element,
    // and declarations spread over nested elements.
    let many = 3_000;
    let declarations: String = (0..many)
        .map(|i| format!(" xmlns:p{i}=\"urn:{i}\""))
        .collect();
    let uses: String = (0..many).map(|i| format!(" p{i}:a=\"{i}\"")).collect();
    documents.push(format!("<r{declarations}{uses}/>"));
    documents.push(format!(
        "<p2999:r{uses}{declarations}><p0:c p1:a='x'/></p2999:r>"
    ));
    documents.push(format!("<r{declarations} p0:a='1' p0:a='2'/>"));
    documents.push(format!("<r{declarations} q:a='1'/>"));
    let nested: String = (0..100)
        .map(|i| format!("<p{}:e xmlns:p{}='urn:{i}' xmlns='urn:d{i}'>", i % 7, i % 7))
        .collect();
    let closing: String = (0..100).rev().map(|i| format!("</p{}:e>", i % 7)).collect();
    documents.push(format!("{nested}<x p3:a='v'/>{closing}"));
    // Attribute syntax, plain and not: each alone, after a plain attribute,
    // and before one.
    let attribute_syntax = [
        "a=\"1\"",
        "a='1'",
        "a=\"\"",
        "a = \"1\"",
        "a= '1'",
        "a =\"1\"",
        "a\t=\r\n\"1\"",
        "a=1",
        "a=",
        "a",
        "a \"1\"",
        "=\"1\"",
        "==\"1\"",
        "a==\"1\"",
        "a=\"1",
        "a='1\"",
        "a=\"1'\"",
        "a=\"1\"b=\"2\"",
        "a='1'b='2'",
        "a=\"x>y\"",
        "a=\"é\"",
        "é=\"1\"",
        "a=\"\t\"",
        "a=\"&amp;\"",
        "a=\"1\" a=\"2\"",
        "xmlns:p=\"urn:p\" p:a=\"1\"",
        "xmlns:p = 'urn:p' p:a='1'",
        "xmlns:p='urn:p'p:a='1'",
        "p:a='1' xmlns:p='urn:p'",
    ];
    for syntax in attribute_syntax {
        for tag in [
            format!("<e {syntax}/>"),
            format!("<e {syntax}></e>"),
            format!("<e b='0' {syntax} />"),
            format!("<e {syntax} c='0'>t</e>"),
            format!("<e\n\t{syntax}\r\n/>"),
            format!("<r><e {syntax}/></r>"),
        ] {
            documents.push(tag);
        }
    }
    for (index, document) in documents.iter().enumerate() {
        assert_same(document, index as u64, &[]);
        assert_same(document, index as u64, &[("p", "urn:p"), ("", "urn:d")]);
    }
}
