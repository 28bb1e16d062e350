//! The cookie-date parser of RFC 6265 section 5.1.1 (unchanged in RFC 6265bis).
//!
//! Browsers accept far more than the IMF-fixdate of RFC 9110, so this is the spec's lenient
//! token algorithm, not `time`'s format parsers (which implement only strict formats).
//!
//! ```
//! use cookie_jar::parse_cookie_date;
//!
//! let t = parse_cookie_date(b"Wed, 09-Jun-2021 10:18:14 GMT").unwrap();
//! assert_eq!(t.unix_timestamp(), 1_623_233_894);
//! assert!(parse_cookie_date(b"not a date").is_none());
//! ```

use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time};

/// Most bytes of a date string that are examined; browsers cap attributes at 1024 anyway.
const MAX_DATE_BYTES: usize = 1024;

/// Parses a cookie date (RFC 6265 section 5.1.1); `None` when the algorithm fails.
///
/// Work is linear in the input and capped at 1024 bytes.
#[must_use]
pub fn parse_cookie_date(input: &[u8]) -> Option<OffsetDateTime> {
    let input = input.get(..MAX_DATE_BYTES).unwrap_or(input);
    let mut time: Option<(u8, u8, u8)> = None;
    let mut day: Option<u8> = None;
    let mut month: Option<Month> = None;
    let mut year: Option<u32> = None;
    for token in input.split(|b| is_delimiter(*b)).filter(|t| !t.is_empty()) {
        if time.is_none()
            && let Some(t) = parse_time(token)
        {
            time = Some(t);
            continue;
        }
        if day.is_none()
            && let Some((d, _)) = digits(token, 1, 2)
        {
            day = u8::try_from(d).ok();
            continue;
        }
        if month.is_none()
            && let Some(m) = parse_month(token)
        {
            month = Some(m);
            continue;
        }
        if year.is_none()
            && let Some((y, _)) = digits(token, 2, 4)
        {
            year = Some(y);
            continue;
        }
    }
    let (hour, minute, second) = time?;
    let (day, month, mut year) = (day?, month?, year?);
    if (70..=99).contains(&year) {
        year += 1900;
    } else if year <= 69 {
        year += 2000;
    }
    if !(1..=31).contains(&day) || year < 1601 || hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let date = Date::from_calendar_date(i32::try_from(year).ok()?, month, day).ok()?;
    let time = Time::from_hms(hour, minute, second).ok()?;
    Some(PrimitiveDateTime::new(date, time).assume_utc())
}

/// Formats a date as the IMF-fixdate `Sun, 06 Nov 1994 08:49:37 GMT` (RFC 9110 section 5.6.7).
///
/// rest-core formats `Last-Modified` with the `httpdate` crate; this crate keeps its own
/// formatter because cookie dates reach back to 1601 (RFC 6265 section 5.1.1), before the Unix
/// epoch that `httpdate` starts at.
#[must_use]
pub fn format_http_date(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    let weekday = match t.weekday() {
        time::Weekday::Monday => "Mon",
        time::Weekday::Tuesday => "Tue",
        time::Weekday::Wednesday => "Wed",
        time::Weekday::Thursday => "Thu",
        time::Weekday::Friday => "Fri",
        time::Weekday::Saturday => "Sat",
        time::Weekday::Sunday => "Sun",
    };
    let month = match t.month() {
        Month::January => "Jan",
        Month::February => "Feb",
        Month::March => "Mar",
        Month::April => "Apr",
        Month::May => "May",
        Month::June => "Jun",
        Month::July => "Jul",
        Month::August => "Aug",
        Month::September => "Sep",
        Month::October => "Oct",
        Month::November => "Nov",
        Month::December => "Dec",
    };
    format!(
        "{weekday}, {:02} {month} {:04} {:02}:{:02}:{:02} GMT",
        t.day(),
        t.year(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// `delimiter = %x09 / %x20-2F / %x3B-40 / %x5B-60 / %x7B-7E`
fn is_delimiter(b: u8) -> bool {
    matches!(b, 0x09 | 0x20..=0x2F | 0x3B..=0x40 | 0x5B..=0x60 | 0x7B..=0x7E)
}

/// `min*maxDIGIT ( non-digit *OCTET )`: the number and the rest of the token.
fn digits(token: &[u8], min: usize, max: usize) -> Option<(u32, &[u8])> {
    let n = token.iter().take_while(|b| b.is_ascii_digit()).count();
    if n < min || n > max {
        return None;
    }
    let (num, rest) = token.split_at(n);
    let value = num
        .iter()
        .fold(0u32, |acc, b| acc * 10 + u32::from(b - b'0'));
    Some((value, rest))
}

/// `hms-time = time-field ":" time-field ":" time-field`, `time-field = 1*2DIGIT`, then
/// optionally a non-digit and anything.
fn parse_time(token: &[u8]) -> Option<(u8, u8, u8)> {
    let (h, rest) = digits(token, 1, 2)?;
    let rest = rest.strip_prefix(b":")?;
    let (m, rest) = digits(rest, 1, 2)?;
    let rest = rest.strip_prefix(b":")?;
    let (s, _) = digits(rest, 1, 2)?;
    Some((
        u8::try_from(h).ok()?,
        u8::try_from(m).ok()?,
        u8::try_from(s).ok()?,
    ))
}

/// `month = ( "jan" / ... / "dec" ) *OCTET`, case-insensitive.
fn parse_month(token: &[u8]) -> Option<Month> {
    let three = token.get(..3)?.to_ascii_lowercase();
    Some(match three.as_slice() {
        b"jan" => Month::January,
        b"feb" => Month::February,
        b"mar" => Month::March,
        b"apr" => Month::April,
        b"may" => Month::May,
        b"jun" => Month::June,
        b"jul" => Month::July,
        b"aug" => Month::August,
        b"sep" => Month::September,
        b"oct" => Month::October,
        b"nov" => Month::November,
        b"dec" => Month::December,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn lenient_forms() {
        let f = |s: &str| parse_cookie_date(s.as_bytes()).map(format_http_date);
        assert_eq!(
            f("Mon, 10-Dec-07 20:35:03 GMT").unwrap(),
            "Mon, 10 Dec 2007 20:35:03 GMT"
        );
        assert_eq!(
            f("Thu Jan 1 00:00:00 1970").unwrap(),
            "Thu, 01 Jan 1970 00:00:00 GMT"
        );
        assert_eq!(f("31 Feb 2020 00:00:00"), None);
        assert_eq!(f("01 Jan 1600 00:00:00"), None);
        assert_eq!(f("01 Jan 2000 24:00:00"), None);
        assert_eq!(f(""), None);
    }
}
