//! Parsers for `dpkeys`' date and duration arguments. Both are total: any
//! string gives a value or an error message naming the string, never a panic.

use time::{Date, Duration, OffsetDateTime, Time};

/// Parses an instant: an RFC 3339 / `xsd:dateTime` date and time (without a
/// zone it is UTC), or a date alone (`2020-01-01`), taken as midnight UTC.
///
/// # Example
///
/// ```
/// use dpkeys::args::parse_time;
/// use time::macros::datetime;
/// assert_eq!(parse_time("2020-01-01"), Ok(datetime!(2020-01-01 0:00 UTC)));
/// assert_eq!(parse_time("2030-01-31T12:00:00+02:00"), Ok(datetime!(2030-01-31 12:00 +2)));
/// assert!(parse_time("2030-01-31T12:00:00+0\u{e9}00").is_err());
/// ```
pub fn parse_time(text: &str) -> Result<OffsetDateTime, String> {
    let trimmed = text.trim();
    if let Some(date) = parse_date_only(trimmed) {
        return Ok(date.with_time(Time::MIDNIGHT).assume_utc());
    }
    dataprotection::xml::parse_date(trimmed).map_err(|_| {
        format!(
            "{text:?} is not an RFC 3339 date and time or a date \
             (e.g. 2030-01-31T12:00:00Z or 2030-01-31)"
        )
    })
}

/// `yyyy-MM-dd`, exactly.
fn parse_date_only(text: &str) -> Option<Date> {
    let b = text.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let number = |range: std::ops::Range<usize>| -> Option<u16> {
        b[range].iter().try_fold(0u16, |n, &c| {
            c.is_ascii_digit().then(|| n * 10 + u16::from(c - b'0'))
        })
    };
    // Years 1 to 9999, as .NET's DateTimeOffset and the XML date parser.
    let year = i32::from(number(0..4)?);
    if year == 0 {
        return None;
    }
    let month = time::Month::try_from(u8::try_from(number(5..7)?).ok()?).ok()?;
    let day = u8::try_from(number(8..10)?).ok()?;
    Date::from_calendar_date(year, month, day).ok()
}

/// Parses a duration: one or more `<number><unit>` parts, unit `w`, `d`,
/// `h`, `m` or `s` (e.g. `30d`, `12h`, `2w`, `1d12h`). A duration longer than
/// the 10,000 years any date can span is refused.
///
/// # Example
///
/// ```
/// use dpkeys::args::parse_duration;
/// use time::Duration;
/// assert_eq!(parse_duration("1d12h"), Ok(Duration::hours(36)));
/// assert!(parse_duration("2000000w").is_err());
/// ```
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let bad = || format!("{text:?} is not a duration (e.g. 30d, 12h, 2w, 1d12h)");
    let too_long = || format!("{text:?} is longer than any date range (10,000 years)");
    let mut total = Duration::ZERO;
    let mut number: Option<i64> = None;
    let mut any = false;
    for c in text.trim().chars() {
        if let Some(d) = c.to_digit(10) {
            number = Some(
                number
                    .unwrap_or(0)
                    .checked_mul(10)
                    .and_then(|n| n.checked_add(i64::from(d)))
                    .ok_or_else(too_long)?,
            );
            continue;
        }
        let n = number.take().ok_or_else(bad)?;
        let unit_seconds: i64 = match c.to_ascii_lowercase() {
            'w' => 7 * 86_400,
            'd' => 86_400,
            'h' => 3_600,
            'm' => 60,
            's' => 1,
            _ => return Err(bad()),
        };
        let seconds = n.checked_mul(unit_seconds).ok_or_else(too_long)?;
        total = total
            .checked_add(Duration::seconds(seconds))
            .ok_or_else(too_long)?;
        any = true;
    }
    if number.is_some() || !any {
        return Err(bad());
    }
    if total > MAX_DURATION {
        return Err(too_long());
    }
    Ok(total)
}

/// Dates span years -9999 to 9999, so no meaningful duration is longer.
const MAX_DURATION: Duration = Duration::days(366 * 20_000);

/// `start + duration`, or an error naming what overflowed (`what`, e.g.
/// "the expiration date (activation + lifetime)").
pub fn add(
    start: OffsetDateTime,
    duration: Duration,
    what: &str,
) -> Result<OffsetDateTime, String> {
    start.checked_add(duration).ok_or_else(|| {
        format!(
            "{what} is out of range: {} + {duration} is after year 9999",
            rfc3339(start)
        )
    })
}

/// `start - duration`, or an error naming what underflowed.
pub fn sub(
    start: OffsetDateTime,
    duration: Duration,
    what: &str,
) -> Result<OffsetDateTime, String> {
    start.checked_sub(duration).ok_or_else(|| {
        format!(
            "{what} is out of range: {} - {duration} is before year -9999",
            rfc3339(start)
        )
    })
}

/// An instant as RFC 3339 (the `xsd:dateTime` form .NET writes in key files),
/// for messages.
pub fn rfc3339(t: OffsetDateTime) -> String {
    dataprotection::xml::format_date(t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn times_parse() {
        assert_eq!(
            parse_time("2030-01-31T12:00:00Z"),
            Ok(datetime!(2030-01-31 12:00 UTC))
        );
        assert!(parse_time("2030-01-31T12:00:00+02:00").is_ok());
        assert_eq!(
            parse_time(" 2020-01-01 "),
            Ok(datetime!(2020-01-01 0:00 UTC))
        );
        for bad in [
            "tomorrow",
            "",
            "2020-1-01",
            "2020-02-30",
            "2020-01-01T",
            "2020-01-0\u{e9}",
            "0000-01-01",
            "2030-01-01T00:00:00+0\u{e9}00",
        ] {
            assert!(parse_time(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("30d"), Ok(Duration::days(30)));
        assert_eq!(parse_duration("2w"), Ok(Duration::weeks(2)));
        assert_eq!(parse_duration("1d12h"), Ok(Duration::hours(36)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        for bad in [
            "",
            "30",
            "d",
            "3x",
            "-1d",
            "1.5d",
            "99999999999d",
            "2000000w",
            "99999999999999999999999s",
            "1d\u{e9}",
            "\u{661}d",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn arithmetic_reports_overflow() {
        let end = datetime!(9999-12-01 0:00 UTC);
        assert!(add(end, Duration::days(90), "the expiration").is_err());
        assert!(sub(datetime!(-9999-01-01 0:00 UTC), Duration::days(1), "x").is_err());
        assert_eq!(
            add(datetime!(2020-01-01 0:00 UTC), Duration::days(1), "x"),
            Ok(datetime!(2020-01-02 0:00 UTC))
        );
    }
}
