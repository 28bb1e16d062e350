//! Response compression decisions: `Accept-Encoding` negotiation (RFC 9110 section 12.5.3)
//! and whether a response is worth compressing.
//!
//! ```
//! use proxy_core::{Coding, negotiate_encoding};
//!
//! let supported = [Coding::Brotli, Coding::Zstd, Coding::Gzip];
//! assert_eq!(negotiate_encoding("gzip, br;q=0.9", &supported), Some(Coding::Gzip));
//! assert_eq!(negotiate_encoding("*;q=0.5, gzip;q=0", &supported), Some(Coding::Brotli));
//! assert_eq!(negotiate_encoding("identity", &supported), None);
//! ```

use http::HeaderMap;

/// A content coding the proxy can produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Coding {
    /// `br`.
    Brotli,
    /// `zstd`.
    Zstd,
    /// `gzip`.
    Gzip,
}

impl Coding {
    /// The token in `Content-Encoding`.
    #[must_use]
    pub fn token(self) -> &'static str {
        match self {
            Self::Brotli => "br",
            Self::Zstd => "zstd",
            Self::Gzip => "gzip",
        }
    }
}

/// Parses `Accept-Encoding` into `(coding, qvalue in thousandths)`, lowercased; malformed
/// members are skipped (a client's typo must not disable compression for others).
#[must_use]
pub fn parse_accept_encoding(value: &str) -> Vec<(String, u16)> {
    value
        .split(',')
        .filter_map(|member| {
            let mut params = member.split(';');
            let coding = params.next()?.trim().to_ascii_lowercase();
            if coding.is_empty()
                || !coding
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
            {
                return None;
            }
            let mut q = 1000;
            for p in params {
                let (k, v) = p.split_once('=')?;
                if k.trim().eq_ignore_ascii_case("q") {
                    q = parse_qvalue(v.trim())?;
                }
            }
            Some((coding, q))
        })
        .collect()
}

/// A qvalue (RFC 9110 section 12.4.2) in thousandths.
fn parse_qvalue(v: &str) -> Option<u16> {
    let (int, frac) = v.split_once('.').unwrap_or((v, ""));
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let frac_val: u16 = format!("{frac:0<3}").parse().ok()?;
    match int {
        "0" => Some(frac_val),
        "1" if frac_val == 0 => Some(1000),
        _ => None,
    }
}

/// The best of `supported` (in server preference order) that the client accepts: the
/// highest qvalue wins, ties go to the server's order; `q=0` and `*;q=0` exclude.
#[must_use]
pub fn negotiate_encoding(accept_encoding: &str, supported: &[Coding]) -> Option<Coding> {
    let prefs = parse_accept_encoding(accept_encoding);
    let star = prefs.iter().find(|(c, _)| c == "*").map(|(_, q)| *q);
    let mut best: Option<(Coding, u16)> = None;
    for coding in supported {
        let q = prefs
            .iter()
            .find(|(c, _)| c == coding.token() || (*coding == Coding::Gzip && c == "x-gzip"))
            .map(|(_, q)| *q)
            .or(star)
            .unwrap_or(0);
        if q > 0 && best.is_none_or(|(_, bq)| q > bq) {
            best = Some((*coding, q));
        }
    }
    best.map(|(c, _)| c)
}

/// Whether a response with these headers and (known) length should be compressed: not
/// already encoded, not `no-transform` (RFC 9111 section 5.2.2.6), not a range, a
/// compressible type, and at least `min_len` bytes when the length is known.
#[must_use]
pub fn should_compress(headers: &HeaderMap, known_len: Option<u64>, min_len: u64) -> bool {
    if headers.contains_key(http::header::CONTENT_ENCODING)
        || headers.contains_key(http::header::CONTENT_RANGE)
    {
        return false;
    }
    let no_transform = headers
        .get_all(http::header::CACHE_CONTROL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|d| d.trim().eq_ignore_ascii_case("no-transform"));
    if no_transform || known_len.is_some_and(|n| n < min_len) {
        return false;
    }
    let ct = headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    ct.starts_with("text/")
        || ["json", "javascript", "xml", "svg", "wasm", "csv", "graphql"]
            .iter()
            .any(|t| ct.contains(t))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const ALL: [Coding; 3] = [Coding::Brotli, Coding::Zstd, Coding::Gzip];

    #[test]
    fn negotiation() {
        assert_eq!(
            negotiate_encoding("gzip, deflate, br, zstd", &ALL),
            Some(Coding::Brotli)
        );
        assert_eq!(
            negotiate_encoding("gzip;q=1.0, zstd;q=0.999", &ALL),
            Some(Coding::Gzip)
        );
        assert_eq!(negotiate_encoding("br;q=0, *", &ALL), Some(Coding::Zstd));
        assert_eq!(negotiate_encoding("X-GZIP", &ALL), Some(Coding::Gzip));
        assert_eq!(negotiate_encoding("", &ALL), None);
        assert_eq!(negotiate_encoding("gzip;q=2, br;q=abc", &ALL), None);
        assert_eq!(negotiate_encoding("gzip", &[Coding::Zstd]), None);
    }

    #[test]
    fn parse() {
        assert_eq!(
            parse_accept_encoding("GZip ; q=0.5,br"),
            vec![("gzip".to_owned(), 500), ("br".to_owned(), 1000)]
        );
        assert_eq!(parse_qvalue("0.05"), Some(50));
        assert_eq!(parse_qvalue("1.001"), None);
    }

    #[test]
    fn skip_rules() {
        let mut h = HeaderMap::new();
        h.insert("content-type", "text/html; charset=utf-8".parse().unwrap());
        assert!(should_compress(&h, Some(2000), 256));
        assert!(!should_compress(&h, Some(100), 256));
        assert!(should_compress(&h, None, 256));
        h.insert("cache-control", "public, No-Transform".parse().unwrap());
        assert!(!should_compress(&h, None, 256));
        h.remove("cache-control");
        h.insert("content-encoding", "gzip".parse().unwrap());
        assert!(!should_compress(&h, None, 256));
        h.remove("content-encoding");
        h.insert("content-type", "image/png".parse().unwrap());
        assert!(!should_compress(&h, None, 256));
    }
}
