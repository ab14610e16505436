//! The `xsd:dateTime` parser of key files: any string must parse or fail with
//! an error, and whatever parses must format and re-parse to the same instant
//! and offset.
#![no_main]

use dataprotection::xml::{format_date, from_ticks, parse_date, to_ticks};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(date) = parse_date(text) {
        let written = format_date(date);
        let again = parse_date(&written).expect("a formatted date parses");
        assert_eq!(again, date, "{text:?} -> {written:?}");
        assert_eq!(again.offset(), date.offset());
        let ticks = to_ticks(date);
        if let Some(back) = from_ticks(ticks) {
            assert_eq!(back, date, "ticks round trip of {text:?}");
        }
    }
});
