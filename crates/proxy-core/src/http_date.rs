//! HTTP-date (RFC 9110 section 5.6.7): the three formats a recipient must accept, parsed
//! strictly (one space between fields, two-digit hours, `GMT`), and IMF-fixdate written.
//!
//! ```
//! use std::time::{Duration, UNIX_EPOCH};
//! use proxy_core::{format_http_date, parse_http_date};
//!
//! let t = parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT").unwrap();
//! assert_eq!(t, UNIX_EPOCH + Duration::from_secs(784_111_777));
//! assert_eq!(parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT"), Some(t));
//! assert_eq!(parse_http_date("Sun Nov  6 08:49:37 1994"), Some(t));
//! assert_eq!(parse_http_date("Sun, 06  Nov 1994 08:49:37 GMT"), None);
//! assert_eq!(format_http_date(t), "Sun, 06 Nov 1994 08:49:37 GMT");
//! ```

use std::time::{Duration, SystemTime, UNIX_EPOCH};

const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];
const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
const LONG_DAYS: [&str; 7] = [
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
];

/// Parses an HTTP-date in any of its three formats. Names (day, month, `GMT`) are matched
/// without regard to case; anything else out of place (extra spaces, a one-digit hour, a
/// two-digit year in IMF-fixdate, another zone) makes the date invalid, which a cache
/// reads as "already expired" for `Expires` (RFC 9111 section 5.3).
#[must_use]
pub fn parse_http_date(text: &str) -> Option<SystemTime> {
    let text = text.trim_matches(|c| c == ' ' || c == '\t');
    if !text.is_ascii() {
        return None;
    }
    if let Some((day, rest)) = text.split_once(", ") {
        let day = day.to_ascii_lowercase();
        if DAYS.contains(&day.as_str()) {
            return imf_fixdate(rest);
        }
        if LONG_DAYS.contains(&day.as_str()) {
            return rfc850(rest);
        }
        return None;
    }
    asctime(text)
}

/// `DD Mon YYYY HH:MM:SS GMT`.
fn imf_fixdate(rest: &str) -> Option<SystemTime> {
    let parts: Vec<&str> = rest.split(' ').collect();
    let [day, month, year, time, zone] = parts.as_slice() else {
        return None;
    };
    if !zone.eq_ignore_ascii_case("gmt") || year.len() != 4 || day.len() != 2 {
        return None;
    }
    build(digits(year)?, month_number(month)?, digits(day)?, time)
}

/// `DD-Mon-YY HH:MM:SS GMT` (a two-digit year that looks more than 50 years ahead is in the
/// past century, RFC 9110 section 5.6.7).
fn rfc850(rest: &str) -> Option<SystemTime> {
    let parts: Vec<&str> = rest.split(' ').collect();
    let [date, time, zone] = parts.as_slice() else {
        return None;
    };
    if !zone.eq_ignore_ascii_case("gmt") {
        return None;
    }
    let fields: Vec<&str> = date.split('-').collect();
    let [day, month, year] = fields.as_slice() else {
        return None;
    };
    if year.len() != 2 || day.len() != 2 {
        return None;
    }
    let yy = digits(year)?;
    let now_year = year_of(SystemTime::now());
    let mut full = now_year - now_year % 100 + yy;
    if full > now_year + 50 {
        full -= 100;
    }
    build(full, month_number(month)?, digits(day)?, time)
}

/// `Sun Nov  6 08:49:37 1994` (the day padded with a space).
fn asctime(text: &str) -> Option<SystemTime> {
    let (weekday, rest) = text.split_once(' ')?;
    if !DAYS.contains(&weekday.to_ascii_lowercase().as_str()) {
        return None;
    }
    let (month, rest) = rest.split_once(' ')?;
    let (day, rest) = match rest.strip_prefix(' ') {
        Some(padded) => padded.split_at_checked(1)?,
        None => rest.split_at_checked(2)?,
    };
    let rest = rest.strip_prefix(' ')?;
    let (time, year) = rest.split_once(' ')?;
    if year.len() != 4 {
        return None;
    }
    build(digits(year)?, month_number(month)?, digits(day)?, time)
}

fn digits(text: &str) -> Option<i64> {
    if text.is_empty() || text.len() > 4 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

fn month_number(name: &str) -> Option<i64> {
    let lower = name.to_ascii_lowercase();
    let index = MONTHS.iter().position(|m| *m == lower)?;
    i64::try_from(index).ok().map(|i| i + 1)
}

fn build(year: i64, month: i64, day: i64, time: &str) -> Option<SystemTime> {
    let fields: Vec<&str> = time.split(':').collect();
    let [h, m, s] = fields.as_slice() else {
        return None;
    };
    if h.len() != 2 || m.len() != 2 || s.len() != 2 {
        return None;
    }
    let (h, m, s) = (digits(h)?, digits(m)?, digits(s)?);
    // 60 seconds: a leap second, read as the next second's start.
    if !(1..=31).contains(&day) || h > 23 || m > 59 || s > 60 {
        return None;
    }
    let days = days_from_civil(year, month, day);
    let secs = days * 86_400 + h * 3600 + m * 60 + s;
    let secs = u64::try_from(secs).ok()?;
    UNIX_EPOCH.checked_add(Duration::from_secs(secs))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The civil date `(year, month, day)` of a day count since 1970-01-01.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

fn year_of(time: SystemTime) -> i64 {
    let secs = time
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(0));
    civil_from_days(secs.div_euclid(86_400)).0
}

/// Writes `time` as an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`); times before 1970
/// are written as the epoch.
#[must_use]
pub fn format_http_date(time: SystemTime) -> String {
    let secs = time
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX / 2));
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    // 1970-01-01 was a Thursday (index 3 from Monday).
    let weekday = DAYS
        .get(usize::try_from((days + 3).rem_euclid(7)).unwrap_or(0))
        .copied()
        .unwrap_or("thu");
    let month_name = MONTHS
        .get(usize::try_from(month - 1).unwrap_or(0))
        .copied()
        .unwrap_or("jan");
    format!(
        "{}, {day:02} {} {year:04} {:02}:{:02}:{:02} GMT",
        capitalize(weekday),
        capitalize(month_name),
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

fn capitalize(name: &str) -> String {
    let mut out = name.to_owned();
    if let Some(first) = out.get_mut(0..1) {
        first.make_ascii_uppercase();
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn formats_and_refusals() {
        let t = parse_http_date("Thu, 18 Aug 2050 02:01:18 GMT").unwrap();
        assert_eq!(format_http_date(t), "Thu, 18 Aug 2050 02:01:18 GMT");
        for same in [
            "THU, 18 AUG 2050 02:01:18 gMT",
            "Thursday, 18-Aug-50 02:01:18 GMT",
            "Thu Aug 18 02:01:18 2050",
        ] {
            assert_eq!(parse_http_date(same), Some(t), "{same}");
        }
        assert!(parse_http_date("Thu Aug  8 02:01:18 2050").is_some());
        for bad in [
            "Thu, 18 Aug 2050 02:01:18 UTC",
            "Thu, 18 Aug 50 02:01:18 GMT",
            "Thu 18 Aug 2050 02:01:18 GMT",
            "Thu, 18  Aug  2050 02:01:18 GMT",
            "Thu, 18-Aug-2050 02:01:18 GMT",
            "Thu, 18 Aug 2050 02.01.18 GMT",
            "Thu, 18 Aug 2050 2:01:18 GMT",
            "",
            "0",
            "Thu, 99 Aug 2050 02:01:18 GMT",
        ] {
            assert_eq!(parse_http_date(bad), None, "{bad}");
        }
        assert_eq!(
            format_http_date(UNIX_EPOCH + Duration::from_secs(951_782_400)),
            "Tue, 29 Feb 2000 00:00:00 GMT"
        );
        let far = parse_http_date("Sun, 21 Nov 2286 04:46:39 GMT").unwrap();
        assert_eq!(format_http_date(far), "Sun, 21 Nov 2286 04:46:39 GMT");
    }
}
