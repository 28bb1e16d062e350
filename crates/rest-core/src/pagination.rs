//! Paging: opaque, tamper-evident cursors, page/offset requests, and RFC 8288 `Link`
//! headers (build and parse).
//!
//! ```
//! use rest_core::{CursorCodec, Link, format_links, parse_links};
//!
//! let codec = CursorCodec::new(b"a secret key of at least 16 bytes")?;
//! let cursor = codec.encode(&42_u64)?;
//! assert_eq!(codec.decode::<u64>(&cursor)?, 42);
//!
//! let header = format_links(&[Link::new("/users?cursor=abc", "next")]);
//! assert_eq!(header, "</users?cursor=abc>; rel=\"next\"");
//! assert_eq!(parse_links(&header)?[0].rel, "next");
//! # Ok::<(), rest_core::Error>(())
//! ```

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde::Serialize;
use serde::de::DeserializeOwned;
use sha2::Sha256;

use crate::{Error, Result};

/// Longest cursor accepted by [`CursorCodec::decode`] (bounded work on forged input).
pub const MAX_CURSOR_LEN: usize = 1024;

/// Signs cursors with HMAC-SHA-256 so that a client can hold them but not forge or edit
/// them. A cursor is `base64url(json) "." base64url(mac)`; it is opaque, not secret (the
/// position can be read by whoever decodes it).
#[derive(Clone)]
pub struct CursorCodec {
    mac: Hmac<Sha256>,
}

impl std::fmt::Debug for CursorCodec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CursorCodec { key: <redacted> }")
    }
}

impl CursorCodec {
    /// A codec keyed with `secret`.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] when the key is shorter than 16 bytes.
    pub fn new(secret: &[u8]) -> Result<Self> {
        if secret.len() < 16 {
            return Err(Error::Config(
                "a cursor key needs at least 16 bytes".to_owned(),
            ));
        }
        let mac = Hmac::<Sha256>::new_from_slice(secret)
            .map_err(|error| Error::Config(error.to_string()))?;
        Ok(Self { mac })
    }

    /// Encodes and signs a position.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] when the position cannot be serialized to JSON.
    pub fn encode<T: Serialize>(&self, position: &T) -> Result<String> {
        let json =
            serde_json::to_vec(position).map_err(|error| Error::Config(error.to_string()))?;
        let mut mac = self.mac.clone();
        mac.update(&json);
        let tag = mac.finalize().into_bytes();
        Ok(format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(&json),
            URL_SAFE_NO_PAD.encode(tag)
        ))
    }

    /// Verifies and decodes a cursor (constant-time comparison of the MAC).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidCursor`] (400) when it is too long, malformed, forged, or signed
    /// with another key.
    pub fn decode<T: DeserializeOwned>(&self, cursor: &str) -> Result<T> {
        if cursor.len() > MAX_CURSOR_LEN {
            return Err(Error::InvalidCursor);
        }
        let (payload, tag) = cursor.split_once('.').ok_or(Error::InvalidCursor)?;
        let json = URL_SAFE_NO_PAD
            .decode(payload)
            .map_err(|_| Error::InvalidCursor)?;
        let tag = URL_SAFE_NO_PAD
            .decode(tag)
            .map_err(|_| Error::InvalidCursor)?;
        let mut mac = self.mac.clone();
        mac.update(&json);
        mac.verify_slice(&tag).map_err(|_| Error::InvalidCursor)?;
        serde_json::from_slice(&json).map_err(|_| Error::InvalidCursor)
    }
}

/// A page/offset request with its size clamped to a maximum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    /// 1-based page number.
    pub page: u64,
    /// Items per page, 1 to the maximum.
    pub per_page: u64,
}

impl PageRequest {
    /// A request for `page` (default 1, at least 1) of `per_page` items (default
    /// `default_size`, clamped to 1..=`max_size`).
    #[must_use]
    pub fn new(page: Option<u64>, per_page: Option<u64>, default_size: u64, max_size: u64) -> Self {
        let max_size = max_size.max(1);
        Self {
            page: page.unwrap_or(1).max(1),
            per_page: per_page.unwrap_or(default_size).clamp(1, max_size),
        }
    }

    /// The number of items before this page (saturating).
    #[must_use]
    pub fn offset(&self) -> u64 {
        (self.page - 1).saturating_mul(self.per_page)
    }

    /// The page count for `total` items.
    #[must_use]
    pub fn page_count(&self, total: u64) -> u64 {
        total.div_ceil(self.per_page)
    }
}

/// One RFC 8288 link: a target URI reference, its relation type and other parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// The target URI reference (written between `<` and `>`).
    pub target: String,
    /// The relation type(s), e.g. `next` (section 3.3).
    pub rel: String,
    /// Other target attributes as (name, value), names lowercased.
    pub params: Vec<(String, String)>,
}

impl Link {
    /// A link with a target and a relation.
    #[must_use]
    pub fn new(target: impl Into<String>, rel: impl Into<String>) -> Self {
        Self {
            target: target.into(),
            rel: rel.into(),
            params: Vec::new(),
        }
    }
}

fn quote(value: &str) -> String {
    let mut quoted = String::with_capacity(value.len() + 2);
    quoted.push('"');
    for c in value.chars() {
        if c == '"' || c == '\\' {
            quoted.push('\\');
        }
        quoted.push(c);
    }
    quoted.push('"');
    quoted
}

/// Formats links as one `Link` header value (RFC 8288 section 3). Characters that cannot
/// sit between `<` and `>` are percent-encoded.
#[must_use]
pub fn format_links(links: &[Link]) -> String {
    links
        .iter()
        .map(|link| {
            let target: String = link
                .target
                .chars()
                .map(|c| match c {
                    '>' => "%3E".to_owned(),
                    '<' => "%3C".to_owned(),
                    c if c.is_control() || c == ' ' => format!("%{:02X}", c as u32 & 0xff),
                    c => c.to_string(),
                })
                .collect();
            let mut out = format!("<{target}>; rel={}", quote(&link.rel));
            for (name, value) in &link.params {
                out.push_str(&format!("; {name}={}", quote(value)));
            }
            out
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Parses a `Link` header value (RFC 8288 section 3): commas and semicolons inside `<...>`
/// and quoted strings are handled. Links without `rel` are skipped; at most 64 are read.
///
/// # Errors
///
/// [`Error::InvalidHeader`] when the value is not a list of links.
pub fn parse_links(value: &str) -> Result<Vec<Link>> {
    let invalid = |reason: &str| Error::InvalidHeader {
        name: "Link",
        reason: reason.to_owned(),
    };
    let mut links = Vec::new();
    let mut rest = value;
    loop {
        rest = rest.trim_start_matches([' ', '\t', ',']);
        if rest.is_empty() || links.len() == 64 {
            return Ok(links);
        }
        let after_open = rest
            .strip_prefix('<')
            .ok_or_else(|| invalid("expected '<'"))?;
        let (target, after) = after_open
            .split_once('>')
            .ok_or_else(|| invalid("unclosed '<'"))?;
        rest = after;
        let mut rel = None;
        let mut params = Vec::new();
        loop {
            rest = rest.trim_start_matches([' ', '\t']);
            let Some(after_semi) = rest.strip_prefix(';') else {
                break;
            };
            let after_semi = after_semi.trim_start_matches([' ', '\t']);
            let name_end = after_semi
                .find(|c: char| c == '=' || c == ';' || c == ',' || c.is_whitespace())
                .unwrap_or(after_semi.len());
            let (name, after_name) = after_semi.split_at(name_end);
            let name = name.to_ascii_lowercase();
            let after_name = after_name.trim_start_matches([' ', '\t']);
            let (param_value, remaining) = match after_name.strip_prefix('=') {
                Some(v) => parse_param_value(v.trim_start_matches([' ', '\t']))
                    .ok_or_else(|| invalid("unclosed quoted string"))?,
                None => (String::new(), after_name),
            };
            rest = remaining;
            if name.is_empty() {
                return Err(invalid("empty parameter name"));
            }
            // Only the first `rel` counts (section 3.3).
            if name == "rel" {
                if rel.is_none() {
                    rel = Some(param_value);
                }
            } else {
                params.push((name, param_value));
            }
        }
        if !(rest.is_empty() || rest.starts_with(',')) {
            return Err(invalid("expected ',' between links"));
        }
        if let Some(rel) = rel {
            links.push(Link {
                target: target.to_owned(),
                rel,
                params,
            });
        }
    }
}

/// A token or a quoted string; returns the value and what follows.
fn parse_param_value(input: &str) -> Option<(String, &str)> {
    if let Some(quoted) = input.strip_prefix('"') {
        let mut value = String::new();
        let mut chars = quoted.char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => value.push(chars.next()?.1),
                '"' => return Some((value, quoted.get(i + 1..).unwrap_or(""))),
                c => value.push(c),
            }
        }
        None
    } else {
        let end = input
            .find(|c: char| c == ';' || c == ',' || c.is_whitespace())
            .unwrap_or(input.len());
        let (token, rest) = input.split_at(end);
        Some((token.to_owned(), rest))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_refuse_tampering() {
        let codec = CursorCodec::new(&[7; 32]).unwrap();
        let cursor = codec.encode(&(10_u64, "x")).unwrap();
        assert_eq!(codec.decode::<(u64, String)>(&cursor).unwrap().0, 10);
        let (payload, tag) = cursor.split_once('.').unwrap();
        let forged_payload = URL_SAFE_NO_PAD.encode(br#"[11,"x"]"#);
        assert!(
            codec
                .decode::<(u64, String)>(&format!("{forged_payload}.{tag}"))
                .is_err()
        );
        let other = CursorCodec::new(&[8; 32]).unwrap();
        assert!(other.decode::<(u64, String)>(&cursor).is_err());
        assert!(codec.decode::<(u64, String)>(payload).is_err());
        assert!(codec.decode::<u64>(&"a".repeat(5000)).is_err());
        assert!(CursorCodec::new(b"short").is_err());
    }

    #[test]
    fn page_requests_clamp() {
        let page = PageRequest::new(Some(3), Some(1000), 20, 100);
        assert_eq!((page.per_page, page.offset()), (100, 200));
        let page = PageRequest::new(Some(0), Some(0), 20, 100);
        assert_eq!((page.page, page.per_page, page.offset()), (1, 1, 0));
        assert_eq!(PageRequest::new(None, None, 20, 100).page_count(41), 3);
    }

    #[test]
    fn links_parse_with_commas_in_targets_and_quoted_values() {
        let header = r#"<https://x/?a=1,2>; rel="next"; title="a, \"b\"", </p;1>;rel=prev;type=text/html, <http://no-rel>"#;
        let links = parse_links(header).unwrap();
        assert_eq!(links.len(), 2);
        assert_eq!(links[0].target, "https://x/?a=1,2");
        assert_eq!(
            links[0].params,
            [("title".to_owned(), "a, \"b\"".to_owned())]
        );
        assert_eq!(links[1].rel, "prev");
        assert_eq!(parse_links(&format_links(&links)).unwrap(), links);
        assert!(parse_links("no-brackets").is_err());
        assert!(parse_links("<a>; title=\"unclosed").is_err());
    }
}
