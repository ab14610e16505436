//! `dpkeys`' date and duration argument parsers: any string must give a value
//! or an error, and date arithmetic with what parses must never panic.
#![no_main]

use dpkeys::args::{add, parse_duration, parse_time, sub};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // One input feeds both parsers, split at the first '|' so the fuzzer can
    // combine a date and a duration.
    let (date_text, duration_text) = text.split_once('|').unwrap_or((text, text));
    let date = parse_time(date_text);
    let duration = parse_duration(duration_text);
    if let Err(message) = &date {
        assert!(!message.is_empty());
    }
    if let (Ok(date), Ok(duration)) = (date, duration) {
        assert!(duration >= time::Duration::ZERO, "{duration_text:?}");
        let _ = add(date, duration, "the sum");
        let _ = sub(date, duration, "the difference");
    }
});
