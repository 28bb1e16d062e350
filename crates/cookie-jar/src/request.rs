//! Reading the cookies a request carries in its `Cookie` header(s).
//!
//! ```
//! use cookie_jar::RequestCookies;
//! use http::{HeaderMap, HeaderValue, header::COOKIE};
//!
//! let mut headers = HeaderMap::new();
//! headers.append(COOKIE, HeaderValue::from_static("theme=dark; lang=en"));
//! headers.append(COOKIE, HeaderValue::from_static("sid=abc"));
//! let cookies = RequestCookies::from_headers(&headers);
//! assert_eq!(cookies.get("lang"), Some("en"));
//! assert_eq!(cookies.get("sid"), Some("abc"));
//! assert_eq!(cookies.len(), 3);
//! ```

use std::ops::Range;

use http::HeaderMap;
use http::header::COOKIE;

/// Most pairs read from one request; the rest are ignored (browsers send far fewer: Chromium
/// keeps at most 180 cookies per domain).
pub const MAX_REQUEST_COOKIES: usize = 512;
/// Most bytes of `Cookie` header(s) read from one request; the rest are ignored.
pub const MAX_REQUEST_COOKIE_BYTES: usize = 64 * 1024;

/// The cookies of one request, parsed leniently and with bounded work.
///
/// Parsing follows the server-side rules of RFC 6265bis section 5.4 in reverse: every
/// `Cookie` header is split on `;`, each pair is trimmed of spaces and tabs and split at its
/// first `=`. Pairs without `=`, with an empty name, or that are not UTF-8 are skipped. At most
/// [`MAX_REQUEST_COOKIES`] pairs and [`MAX_REQUEST_COOKIE_BYTES`] bytes are read; anything
/// beyond is ignored (never an error), so a hostile header costs linear time in the bound.
///
/// Values are returned as sent (no percent-decoding, quotes kept); when a name repeats,
/// [`get`](Self::get) returns the first one, which a browser orders as the most specific
/// (longest path).
#[derive(Clone, Debug, Default)]
pub struct RequestCookies {
    /// All accepted header bytes, `; `-joined, so each pair is two ranges into one buffer.
    buf: String,
    pairs: Vec<(Range<usize>, Range<usize>)>,
    truncated: bool,
}

impl RequestCookies {
    /// Parses every `Cookie` header of `headers`.
    #[must_use]
    pub fn from_headers(headers: &HeaderMap) -> Self {
        let mut out = Self::default();
        for value in headers.get_all(COOKIE) {
            if !out.push_header(value.as_bytes()) {
                break;
            }
        }
        out
    }

    /// Parses one `Cookie` header value given as bytes.
    #[must_use]
    pub fn parse(header: &[u8]) -> Self {
        let mut out = Self::default();
        out.push_header(header);
        out
    }

    /// Adds the pairs of one header value; returns false once a bound is reached.
    fn push_header(&mut self, header: &[u8]) -> bool {
        let room = MAX_REQUEST_COOKIE_BYTES.saturating_sub(self.buf.len());
        let header = match header.get(..room) {
            Some(cut) if cut.len() < header.len() => {
                self.truncated = true;
                cut
            }
            _ => header,
        };
        if self.buf.capacity() == 0 {
            self.buf.reserve(header.len());
        }
        for raw in header.split(|b| *b == b';') {
            if self.pairs.len() >= MAX_REQUEST_COOKIES {
                self.truncated = true;
                return false;
            }
            let pair = trim(raw);
            let Some(eq) = pair.iter().position(|b| *b == b'=') else {
                continue;
            };
            let (name, rest) = pair.split_at(eq);
            let (name, value) = (trim(name), trim(rest.get(1..).unwrap_or_default()));
            if name.is_empty() {
                continue;
            }
            let (Ok(name), Ok(value)) = (std::str::from_utf8(name), std::str::from_utf8(value))
            else {
                continue;
            };
            let start = self.buf.len();
            self.buf.push_str(name);
            let mid = self.buf.len();
            self.buf.push_str(value);
            self.pairs.push((start..mid, mid..self.buf.len()));
        }
        !self.truncated
    }

    fn text(&self, range: &Range<usize>) -> &str {
        self.buf.get(range.clone()).unwrap_or_default()
    }

    /// The value of the first cookie called `name`.
    #[must_use]
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(n, _)| self.text(n) == name)
            .map(|(_, v)| self.text(v))
    }

    /// The first value of `name` parsed as `T` (`None` when absent or unparsable).
    ///
    /// ```
    /// let c = cookie_jar::RequestCookies::parse(b"page=3; theme=dark");
    /// assert_eq!(c.get_as::<u32>("page"), Some(3));
    /// assert_eq!(c.get_as::<u32>("theme"), None);
    /// ```
    #[must_use]
    pub fn get_as<T: std::str::FromStr>(&self, name: &str) -> Option<T> {
        self.get(name).and_then(|v| v.parse().ok())
    }

    /// Every value sent under `name`, in header order.
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.iter().filter(move |(n, _)| *n == name).map(|(_, v)| v)
    }

    /// All `(name, value)` pairs in header order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> + '_ {
        self.pairs.iter().map(|(n, v)| (self.text(n), self.text(v)))
    }

    /// Number of pairs read.
    #[must_use]
    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    /// Whether no pair was read.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    /// Whether a bound ([`MAX_REQUEST_COOKIES`], [`MAX_REQUEST_COOKIE_BYTES`]) cut the input.
    #[must_use]
    pub fn truncated(&self) -> bool {
        self.truncated
    }
}

/// Strips leading and trailing SP and HTAB (RFC 9110 OWS).
fn trim(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    #[test]
    fn lenient_pairs() {
        let c = RequestCookies::parse(b" a=1 ;;b = 2;novalue; =x;c=;d=\"q\"");
        let got: Vec<_> = c.iter().collect();
        assert_eq!(got, [("a", "1"), ("b", "2"), ("c", ""), ("d", "\"q\"")]);
    }

    #[test]
    fn first_duplicate_wins() {
        let c = RequestCookies::parse(b"a=1; a=2");
        assert_eq!(c.get("a"), Some("1"));
        assert_eq!(c.get_all("a").collect::<Vec<_>>(), ["1", "2"]);
    }

    #[test]
    fn non_utf8_pair_skipped() {
        let c = RequestCookies::parse(b"a=\xff\xfe; b=2");
        assert_eq!(c.get("a"), None);
        assert_eq!(c.get("b"), Some("2"));
    }
}
