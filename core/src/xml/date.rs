//! `xsd:dateTime` as .NET's `XmlConvert` reads and writes `DateTimeOffset`,
//! at 100-nanosecond (tick) resolution.

use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time, UtcOffset};

use crate::error::{Error, Result};

/// Formats like `XmlConvert.ToString(DateTimeOffset)`: `yyyy-MM-ddTHH:mm:ss`,
/// then `.` and up to 7 fraction digits with trailing zeros removed (nothing
/// when the fraction is zero), then `Z` for a zero offset or `±hh:mm`.
///
/// # Example
///
/// ```
/// use dataprotection::xml::format_date;
/// use time::macros::datetime;
/// assert_eq!(format_date(datetime!(2015-03-01 19:13:19.7573854 -8)), "2015-03-01T19:13:19.7573854-08:00");
/// assert_eq!(format_date(datetime!(2015-01-01 0:00 UTC)), "2015-01-01T00:00:00Z");
/// ```
pub fn format_date(t: OffsetDateTime) -> String {
    let mut s = format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    );
    let ticks = t.nanosecond() / 100;
    if ticks != 0 {
        let frac = format!("{ticks:07}");
        s.push('.');
        s.push_str(frac.trim_end_matches('0'));
    }
    let offset = t.offset();
    if offset.is_utc() {
        s.push('Z');
    } else {
        let total = offset.whole_minutes();
        let sign = if total < 0 { '-' } else { '+' };
        let total = total.unsigned_abs();
        s.push_str(&format!("{sign}{:02}:{:02}", total / 60, total % 60));
    }
    s
}

/// Parses an `xsd:dateTime`, keeping its offset. The instant must be within
/// .NET's `DateTimeOffset` range (years 1 to 9999 in UTC). Fractions beyond 7 digits
/// are truncated to ticks; a value without a zone is taken as UTC (.NET would
/// take the machine's local zone, which is never what a shared ring wants).
/// Leading and trailing whitespace is ignored.
pub fn parse_date(text: &str) -> Result<OffsetDateTime> {
    parse_inner(text.trim())
        .ok_or_else(|| Error::malformed("date", format!("{text:?} is not an xsd:dateTime")))
}

fn parse_inner(s: &str) -> Option<OffsetDateTime> {
    // Works on bytes only: every position checked below must hold an ASCII
    // byte, so a multi-byte character anywhere fails the match instead of
    // splitting a `str` inside a character.
    let b = s.as_bytes();
    let digits = |at: usize, len: usize| -> Option<u32> {
        let part = b.get(at..at + len)?;
        part.iter().try_fold(0u32, |n, &c| {
            c.is_ascii_digit().then(|| n * 10 + u32::from(c - b'0'))
        })
    };
    let sep = |at: usize, c: u8| b.get(at) == Some(&c);
    if !(sep(4, b'-') && sep(7, b'-') && sep(10, b'T') && sep(13, b':') && sep(16, b':')) {
        return None;
    }
    let year = i32::try_from(digits(0, 4)?).ok()?;
    let month = Month::try_from(u8::try_from(digits(5, 2)?).ok()?).ok()?;
    let day = u8::try_from(digits(8, 2)?).ok()?;
    let hour = u8::try_from(digits(11, 2)?).ok()?;
    let minute = u8::try_from(digits(14, 2)?).ok()?;
    let second = u8::try_from(digits(17, 2)?).ok()?;
    let mut i = 19;
    let mut nanos = 0u32;
    if sep(i, b'.') {
        i += 1;
        let start = i;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        if i == start {
            return None;
        }
        // The first 7 digits are ticks; further digits are truncated.
        let mut ticks = 0u32;
        for k in 0..7 {
            let d = if start + k < i {
                b[start + k] - b'0'
            } else {
                0
            };
            ticks = ticks * 10 + u32::from(d);
        }
        nanos = ticks * 100;
    }
    let offset = match &b[i..] {
        [] | [b'Z'] => UtcOffset::UTC,
        [sign @ (b'+' | b'-'), _, _, b':', _, _] => {
            let h = i8::try_from(digits(i + 1, 2)?).ok()?;
            let m = i8::try_from(digits(i + 4, 2)?).ok()?;
            if h > 14 || m > 59 {
                return None;
            }
            let (h, m) = if *sign == b'-' { (-h, -m) } else { (h, m) };
            UtcOffset::from_hms(h, m, 0).ok()?
        }
        _ => return None,
    };
    let date = Date::from_calendar_date(year, month, day).ok()?;
    let time = Time::from_hms_nano(hour, minute, second, nanos).ok()?;
    let instant = PrimitiveDateTime::new(date, time).assume_offset(offset);
    // .NET's DateTimeOffset range: the UTC instant is in years 1 to 9999.
    // Refusing the rest here means no date read from a key file can overflow
    // a conversion to UTC later.
    let utc_year = instant.checked_to_offset(UtcOffset::UTC)?.year();
    (1..=9999).contains(&utc_year).then_some(instant)
}

/// .NET ticks (100 ns since 0001-01-01T00:00:00Z) of an instant, as used by
/// time-limited payloads.
pub fn to_ticks(t: OffsetDateTime) -> u64 {
    const UNIX_EPOCH_TICKS: i128 = 621_355_968_000_000_000;
    let ticks = t.unix_timestamp_nanos() / 100 + UNIX_EPOCH_TICKS;
    ticks.clamp(0, u64::MAX as i128) as u64
}

/// The instant of .NET `ticks`, or `None` if it is outside the supported range.
pub fn from_ticks(ticks: u64) -> Option<OffsetDateTime> {
    const UNIX_EPOCH_TICKS: i128 = 621_355_968_000_000_000;
    let nanos = (ticks as i128 - UNIX_EPOCH_TICKS) * 100;
    OffsetDateTime::from_unix_timestamp_nanos(nanos).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn parses_real_forms() {
        assert_eq!(
            parse_date("2015-03-19T23:32:02.3949887Z").unwrap(),
            datetime!(2015-03-19 23:32:02.3949887 UTC)
        );
        assert_eq!(
            parse_date("2025-01-01T09:59:59.991Z").unwrap(),
            datetime!(2025-01-01 09:59:59.991 UTC)
        );
        assert_eq!(
            parse_date(" 2015-01-01T00:00:00 ").unwrap(),
            datetime!(2015-01-01 0:00 UTC)
        );
        let t = parse_date("2015-03-01T19:13:19.7573854-08:00").unwrap();
        assert_eq!(t.offset().whole_hours(), -8);
        assert_eq!(format_date(t), "2015-03-01T19:13:19.7573854-08:00");
        assert!(parse_date("9999-12-31T23:59:59.9999999Z").is_ok());
        assert!(parse_date("0001-01-01T00:00:00-01:00").is_ok());
        assert_eq!(
            parse_date("2015-01-01T00:00:00.123Z").unwrap().nanosecond(),
            123_000_000
        );
        for bad in [
            "",
            "2015-13-01T00:00:00Z",
            "2015-01-01 00:00:00Z",
            "2015-01-01T00:00:00.Z",
            "2015-01-01T00:00:00+5",
            "x015-01-01T00:00:00Z",
            "2015-02-30T00:00:00Z",
            "2030-01-01T00:00:00+0\u{e9}00",
            "2030-01-01T00:00:00+\u{e9}:00",
            "2030-01-01T00:00:0\u{e9}",
            "2030-01-01T00:00:00.1\u{e9}",
            "\u{e9}030-01-01T00:00:00Z",
            "2030-01-01T00:00:00+15:00",
            "0000-01-01T00:00:00Z",
            "0001-01-01T00:00:00+01:00",
            "9999-12-31T23:59:59-00:01",
        ] {
            assert!(parse_date(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn ticks() {
        assert_eq!(
            to_ticks(datetime!(2099-01-01 0:00 UTC)),
            662_065_056_000_000_000
        );
        assert_eq!(
            from_ticks(637_134_336_000_000_000),
            Some(datetime!(2020-01-01 0:00 UTC))
        );
    }
}
