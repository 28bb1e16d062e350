//! Proactive content negotiation (RFC 9110 section 12): `Accept`, `Accept-Language` and
//! `Accept-Encoding` parsed into weighted lists, and a choice among what the server has.
//!
//! ```
//! use http::HeaderMap;
//! use rest_core::negotiate_media_type;
//!
//! let mut headers = HeaderMap::new();
//! headers.insert("accept", "text/*;q=0.5, application/json".parse().unwrap());
//! assert_eq!(negotiate_media_type(&headers, &["text/csv", "application/json"])?, "application/json");
//! # Ok::<(), rest_core::Error>(())
//! ```

use http::{HeaderMap, header};

use crate::{Error, Result};

/// Most members read from one weighted list; the rest are ignored (bounded work).
const MAX_MEMBERS: usize = 64;

/// A quality value in thousandths, 0 to 1000 (RFC 9110 section 12.4.2).
pub type Quality = u16;

/// One member of a weighted list: a value, its parameters and its quality.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Weighted {
    /// The value, lowercased (`text/html`, `en-gb`, `gzip`).
    pub value: String,
    /// Parameters other than `q`, names lowercased.
    pub params: Vec<(String, String)>,
    /// The quality in thousandths (1000 when absent).
    pub quality: Quality,
}

/// Parses every value of a header as a weighted list (`a;q=0.5, b`), skipping malformed
/// members and reading at most 64 of them.
#[must_use]
pub fn parse_weighted(headers: &HeaderMap, name: &header::HeaderName) -> Vec<Weighted> {
    let mut members = Vec::new();
    for value in headers.get_all(name) {
        let Ok(value) = value.to_str() else { continue };
        for member in value.split(',') {
            if members.len() == MAX_MEMBERS {
                return members;
            }
            if let Some(parsed) = parse_member(member) {
                members.push(parsed);
            }
        }
    }
    members
}

fn parse_member(member: &str) -> Option<Weighted> {
    let mut parts = member.split(';');
    let value = parts.next()?.trim().to_ascii_lowercase();
    if value.is_empty() {
        return None;
    }
    let mut quality = 1000;
    let mut params = Vec::new();
    for param in parts {
        let (name, raw) = param.split_once('=')?;
        let name = name.trim().to_ascii_lowercase();
        let raw = raw.trim().trim_matches('"');
        if name == "q" {
            quality = parse_quality(raw)?;
        } else {
            params.push((name, raw.to_owned()));
        }
    }
    Some(Weighted {
        value,
        params,
        quality,
    })
}

/// `qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )`
fn parse_quality(raw: &str) -> Option<Quality> {
    let (whole, fraction) = raw.split_once('.').unwrap_or((raw, ""));
    if fraction.len() > 3 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut thousandths: u16 = 0;
    for (i, digit) in fraction.bytes().enumerate() {
        thousandths += u16::from(digit - b'0') * [100, 10, 1].get(i).copied().unwrap_or(0);
    }
    match whole {
        "0" => Some(thousandths),
        "1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

/// Chooses among `available` media types by the request's `Accept` (RFC 9110 section
/// 12.5.1): each type takes the quality of the most specific range that matches it
/// (`type/subtype;param` over `type/subtype` over `type/*` over `*/*`); the highest quality
/// wins, ties going to the earlier entry of `available`. No `Accept` accepts anything.
///
/// # Errors
///
/// [`Error::NotAcceptable`] (406) when every available type has quality 0.
pub fn negotiate_media_type<'a>(headers: &HeaderMap, available: &[&'a str]) -> Result<&'a str> {
    let ranges = parse_weighted(headers, &header::ACCEPT);
    if ranges.is_empty()
        && let Some(first) = available.first()
    {
        return Ok(first);
    }
    let mut best: Option<(&'a str, Quality)> = None;
    for &candidate in available {
        let quality = media_quality(&ranges, candidate);
        if quality > 0 && best.is_none_or(|(_, q)| quality > q) {
            best = Some((candidate, quality));
        }
    }
    best.map(|(chosen, _)| chosen)
        .ok_or_else(|| Error::NotAcceptable {
            available: available.iter().map(|s| (*s).to_owned()).collect(),
        })
}

fn media_quality(ranges: &[Weighted], candidate: &str) -> Quality {
    let mut parts = candidate.split(';');
    let essence = parts.next().unwrap_or("").trim().to_ascii_lowercase();
    let candidate_params: Vec<(String, String)> = parts
        .filter_map(|p| p.split_once('='))
        .map(|(n, v)| {
            (
                n.trim().to_ascii_lowercase(),
                v.trim().trim_matches('"').to_owned(),
            )
        })
        .collect();
    let (ctype, csub) = essence.split_once('/').unwrap_or((essence.as_str(), ""));
    let mut best: Option<(usize, Quality)> = None;
    for range in ranges {
        let (rtype, rsub) = range
            .value
            .split_once('/')
            .unwrap_or((range.value.as_str(), ""));
        let specificity = match (rtype, rsub) {
            ("*", "*") => 1,
            (t, "*") if t == ctype => 2,
            (t, s) if t == ctype && s == csub => {
                let params_match = range.params.iter().all(|(n, v)| {
                    candidate_params
                        .iter()
                        .any(|(cn, cv)| cn == n && cv.eq_ignore_ascii_case(v))
                });
                if !params_match {
                    continue;
                }
                3 + range.params.len()
            }
            _ => continue,
        };
        if best.is_none_or(|(s, _)| specificity > s) {
            best = Some((specificity, range.quality));
        }
    }
    best.map_or(0, |(_, quality)| quality)
}

/// Chooses a language among `available` (language tags) by `Accept-Language`, with the
/// basic filtering of RFC 4647 section 3.3.1 (`en` matches `en-GB`). `None` when the
/// header is present and nothing matches; the first available when it is absent.
#[must_use]
pub fn negotiate_language<'a>(headers: &HeaderMap, available: &[&'a str]) -> Option<&'a str> {
    let ranges = parse_weighted(headers, &header::ACCEPT_LANGUAGE);
    if ranges.is_empty() {
        return available.first().copied();
    }
    let mut best: Option<(&'a str, Quality)> = None;
    for &candidate in available {
        let tag = candidate.to_ascii_lowercase();
        let mut chosen: Option<(usize, Quality)> = None;
        for range in &ranges {
            let matches = range.value == "*"
                || tag == range.value
                || tag
                    .strip_prefix(range.value.as_str())
                    .is_some_and(|rest| rest.starts_with('-'));
            let specificity = if range.value == "*" {
                0
            } else {
                range.value.len()
            };
            if matches && chosen.is_none_or(|(s, _)| specificity > s) {
                chosen = Some((specificity, range.quality));
            }
        }
        let quality = chosen.map_or(0, |(_, q)| q);
        if quality > 0 && best.is_none_or(|(_, q)| quality > q) {
            best = Some((candidate, quality));
        }
    }
    best.map(|(chosen, _)| chosen)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn with(name: header::HeaderName, value: &'static str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(name, HeaderValue::from_static(value));
        headers
    }

    #[test]
    fn accept_specificity_beats_order_and_q0_excludes() {
        // RFC 9110 section 12.5.1 example.
        let headers = with(
            header::ACCEPT,
            "text/*;q=0.3, text/plain;q=0.7, text/plain;format=flowed, */*;q=0.5",
        );
        let ranges = parse_weighted(&headers, &header::ACCEPT);
        assert_eq!(media_quality(&ranges, "text/plain;format=flowed"), 1000);
        assert_eq!(media_quality(&ranges, "text/plain"), 700);
        assert_eq!(media_quality(&ranges, "text/html"), 300);
        assert_eq!(media_quality(&ranges, "image/jpeg"), 500);
        let headers = with(header::ACCEPT, "application/json;q=0, */*");
        assert_eq!(
            negotiate_media_type(&headers, &["application/json", "text/csv"]).unwrap(),
            "text/csv"
        );
        let headers = with(header::ACCEPT, "image/png");
        assert_eq!(
            negotiate_media_type(&headers, &["application/json"])
                .unwrap_err()
                .status(),
            406
        );
    }

    #[test]
    fn malformed_q_values_are_skipped() {
        let headers = with(header::ACCEPT, "a/b;q=2, c/d;q=0.1234, e/f;q=0.25");
        let ranges = parse_weighted(&headers, &header::ACCEPT);
        assert_eq!(ranges.len(), 1);
        assert_eq!(ranges[0].quality, 250);
    }

    #[test]
    fn languages_use_prefix_matching() {
        let headers = with(header::ACCEPT_LANGUAGE, "fr;q=0.4, en, de;q=0");
        assert_eq!(
            negotiate_language(&headers, &["de", "fr-CA", "en-GB"]),
            Some("en-GB")
        );
        assert_eq!(negotiate_language(&headers, &["de"]), None);
    }
}
