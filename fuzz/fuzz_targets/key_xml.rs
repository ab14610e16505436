//! The key XML reader: any input must parse or fail with a typed error, and
//! whatever parses must survive a write and re-read unchanged.
#![no_main]

use dataprotection::KeySet;
use dataprotection::xml::{Element, Format, KeyXml, RepositoryDocument, RevocationXml, read_descriptor};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(element) = Element::parse_bytes(data) {
        for format in [Format::Compact, Format::Indented] {
            let written = element.to_xml(format);
            let reread = Element::parse(&written).expect("written XML must parse");
            if format == Format::Compact {
                assert_eq!(reread.to_xml(Format::Compact), written, "write is stable");
            }
        }
        if let Ok(key) = KeyXml::from_element(&element) {
            let _ = read_descriptor(&key.descriptor);
            let again = KeyXml::from_element(&key.to_element()).expect("a written key reads back");
            assert_eq!(again.id, key.id);
        }
        let _ = RevocationXml::from_element(&element);
        let _ = KeySet::from_elements(std::slice::from_ref(&element));
    }
    if let Ok(doc) = RepositoryDocument::parse(data) {
        let bytes = doc.to_bytes();
        let again = RepositoryDocument::parse(&bytes).expect("a written repository reads back");
        assert_eq!(again.children().len(), doc.children().len());
        let _ = KeySet::from_elements(&doc.elements());
    }
});
