//! Conditional requests (RFC 9110 section 13): entity tags, `Last-Modified`, and the
//! evaluation of preconditions in the RFC's order.
//!
//! ```
//! use http::{HeaderMap, Method};
//! use rest_core::{EntityTag, Precondition, evaluate_preconditions};
//!
//! let current = EntityTag::strong("v2")?;
//! let mut headers = HeaderMap::new();
//! headers.insert("if-none-match", "\"v2\"".parse().unwrap());
//! assert_eq!(
//!     evaluate_preconditions(&Method::GET, &headers, Some(&current), None),
//!     Precondition::NotModified
//! );
//! # Ok::<(), rest_core::Error>(())
//! ```

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{HeaderMap, HeaderValue, Method, header};
use sha2::{Digest, Sha256};

use crate::{Error, Result};

/// An entity tag (RFC 9110 section 8.8.3): an opaque string, strong or weak.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EntityTag {
    weak: bool,
    tag: String,
}

/// `etagc = "!" / %x23-7E / obs-text`
fn is_etagc(byte: u8) -> bool {
    byte == 0x21 || (0x23..=0x7e).contains(&byte) || byte >= 0x80
}

impl EntityTag {
    /// A strong tag.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidHeader`] when `tag` has a character an entity tag cannot hold.
    pub fn strong(tag: impl Into<String>) -> Result<Self> {
        Self::new(false, tag.into())
    }

    /// A weak tag.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidHeader`] when `tag` has a character an entity tag cannot hold.
    pub fn weak(tag: impl Into<String>) -> Result<Self> {
        Self::new(true, tag.into())
    }

    fn new(weak: bool, tag: String) -> Result<Self> {
        if tag.bytes().all(is_etagc) {
            Ok(Self { weak, tag })
        } else {
            Err(Error::InvalidHeader {
                name: "ETag",
                reason: "an entity tag holds no '\"', space or control characters".to_owned(),
            })
        }
    }

    /// A strong tag derived from the representation's bytes (SHA-256, 128 bits, hex).
    #[must_use]
    pub fn from_content(bytes: &[u8]) -> Self {
        let digest = Sha256::digest(bytes);
        let mut tag = String::with_capacity(32);
        for byte in digest.iter().take(16) {
            tag.push_str(&format!("{byte:02x}"));
        }
        Self { weak: false, tag }
    }

    /// Parses `"xyz"` or `W/"xyz"`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidHeader`] when it is not an entity tag.
    pub fn parse(value: &str) -> Result<Self> {
        let invalid = || Error::InvalidHeader {
            name: "ETag",
            reason: format!("{value:?} is not an entity tag"),
        };
        let value = value.trim();
        let (weak, quoted) = match value.strip_prefix("W/") {
            Some(rest) => (true, rest),
            None => (false, value),
        };
        let tag = quoted
            .strip_prefix('"')
            .and_then(|rest| rest.strip_suffix('"'))
            .ok_or_else(invalid)?;
        Self::new(weak, tag.to_owned()).map_err(|_| invalid())
    }

    /// Whether this is a weak tag.
    #[must_use]
    pub fn is_weak(&self) -> bool {
        self.weak
    }

    /// The opaque tag without quotes.
    #[must_use]
    pub fn tag(&self) -> &str {
        &self.tag
    }

    /// Strong comparison (section 8.8.3.2): both strong and the same tag.
    #[must_use]
    pub fn strong_eq(&self, other: &Self) -> bool {
        !self.weak && !other.weak && self.tag == other.tag
    }

    /// Weak comparison: the same tag, weak or not.
    #[must_use]
    pub fn weak_eq(&self, other: &Self) -> bool {
        self.tag == other.tag
    }

    /// The `ETag` header value.
    #[must_use]
    pub fn to_header_value(&self) -> HeaderValue {
        // The tag was checked to be etagc on construction, all valid header bytes.
        HeaderValue::from_str(&self.to_string()).unwrap_or(HeaderValue::from_static("\"\""))
    }
}

impl fmt::Display for EntityTag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.weak {
            write!(f, "W/\"{}\"", self.tag)
        } else {
            write!(f, "\"{}\"", self.tag)
        }
    }
}

/// What the server does after evaluating preconditions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precondition {
    /// Perform the request.
    Proceed,
    /// Answer 304 Not Modified (GET and HEAD only).
    NotModified,
    /// Answer 412 Precondition Failed.
    Failed,
}

enum TagList {
    Any,
    Tags(Vec<EntityTag>),
}

/// Parses `*` or a comma-separated list of entity tags (commas inside tags are allowed),
/// skipping malformed members; at most 64 members are read.
fn tag_list(headers: &HeaderMap, name: &header::HeaderName) -> Option<TagList> {
    let mut tags = Vec::new();
    let mut present = false;
    for value in headers.get_all(name) {
        present = true;
        let Ok(value) = value.to_str() else { continue };
        if value.trim() == "*" {
            return Some(TagList::Any);
        }
        let mut rest = value;
        while tags.len() < 64 {
            rest = rest.trim_start_matches([' ', '\t', ',']);
            if rest.is_empty() {
                break;
            }
            let start = if rest.starts_with("W/") { 2 } else { 0 };
            let Some(body) = rest.get(start..).and_then(|r| r.strip_prefix('"')) else {
                // Skip to the next comma.
                rest = rest.split_once(',').map_or("", |(_, r)| r);
                continue;
            };
            let Some(end) = body.find('"') else { break };
            let (tag, after) = body.split_at(end);
            if let Ok(parsed) = EntityTag::new(start == 2, tag.to_owned()) {
                tags.push(parsed);
            }
            rest = after.get(1..).unwrap_or("");
        }
    }
    present.then_some(TagList::Tags(tags))
}

fn http_date(headers: &HeaderMap, name: &header::HeaderName) -> Option<SystemTime> {
    // An invalid date is ignored (RFC 9110 sections 13.1.3 and 13.1.4).
    let value = headers.get(name)?.to_str().ok()?;
    httpdate::parse_http_date(value).ok()
}

/// HTTP dates have one-second resolution.
fn whole_seconds(time: SystemTime) -> SystemTime {
    let seconds = time
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    UNIX_EPOCH + Duration::from_secs(seconds)
}

/// Formats a time as an HTTP date for `Last-Modified`.
#[must_use]
pub fn format_http_date(time: SystemTime) -> String {
    httpdate::fmt_http_date(time)
}

/// Evaluates `If-Match`, `If-Unmodified-Since`, `If-None-Match` and `If-Modified-Since` in
/// the order of RFC 9110 section 13.2.2, given the selected representation's current
/// validators (`None` when the resource does not exist or has none).
#[must_use]
pub fn evaluate_preconditions(
    method: &Method,
    headers: &HeaderMap,
    etag: Option<&EntityTag>,
    last_modified: Option<SystemTime>,
) -> Precondition {
    let safe = *method == Method::GET || *method == Method::HEAD;
    let last_modified = last_modified.map(whole_seconds);
    // Step 1: If-Match uses the strong comparison (section 13.1.1).
    if let Some(list) = tag_list(headers, &header::IF_MATCH) {
        let holds = match (list, etag) {
            (TagList::Any, current) => current.is_some(),
            (TagList::Tags(tags), Some(current)) => tags.iter().any(|t| t.strong_eq(current)),
            (TagList::Tags(_), None) => false,
        };
        if !holds {
            return Precondition::Failed;
        }
    } else if let Some(since) = http_date(headers, &header::IF_UNMODIFIED_SINCE) {
        // Step 2 (section 13.1.4): only without If-Match.
        if last_modified.is_none_or(|modified| modified > since) {
            return Precondition::Failed;
        }
    }
    // Step 3: If-None-Match uses the weak comparison (section 13.1.2).
    if let Some(list) = tag_list(headers, &header::IF_NONE_MATCH) {
        let matched = match (list, etag) {
            (TagList::Any, current) => current.is_some(),
            (TagList::Tags(tags), Some(current)) => tags.iter().any(|t| t.weak_eq(current)),
            (TagList::Tags(_), None) => false,
        };
        if matched {
            return if safe {
                Precondition::NotModified
            } else {
                Precondition::Failed
            };
        }
    } else if safe {
        // Step 4 (section 13.1.3): only for GET/HEAD and without If-None-Match.
        if let (Some(since), Some(modified)) = (
            http_date(headers, &header::IF_MODIFIED_SINCE),
            last_modified,
        ) && modified <= since
        {
            return Precondition::NotModified;
        }
    }
    Precondition::Proceed
}

/// Checks that `If-Match` and `If-None-Match`, when present, are `*` or a list of entity
/// tags (RFC 9110 sections 13.1.1 and 13.1.2). [`evaluate_preconditions`] reads them
/// leniently (a malformed member never matches); call this first to answer 400 instead.
///
/// # Errors
///
/// [`Error::InvalidHeader`] naming the malformed header.
pub fn check_precondition_syntax(headers: &HeaderMap) -> Result<()> {
    for (name, label) in [
        (&header::IF_MATCH, "If-Match"),
        (&header::IF_NONE_MATCH, "If-None-Match"),
    ] {
        for value in headers.get_all(name) {
            let valid = value
                .to_str()
                .ok()
                .is_some_and(|text| text.trim() == "*" || is_entity_tag_list(text));
            if !valid {
                return Err(Error::InvalidHeader {
                    name: label,
                    reason: "expected * or a comma-separated list of entity tags like \"v1\""
                        .to_owned(),
                });
            }
        }
    }
    Ok(())
}

/// `1#entity-tag` with optional whitespace around commas (RFC 9110 section 5.6.1).
fn is_entity_tag_list(text: &str) -> bool {
    let mut rest = text.trim_matches([' ', '\t']);
    let mut tags = 0usize;
    loop {
        rest = rest.trim_start_matches([' ', '\t']);
        let body = rest.strip_prefix("W/").unwrap_or(rest);
        let Some(body) = body.strip_prefix('"') else {
            return false;
        };
        let Some(end) = body.find('"') else {
            return false;
        };
        let (tag, after) = body.split_at(end);
        if !tag.bytes().all(is_etagc) {
            return false;
        }
        tags += 1;
        rest = after.get(1..).unwrap_or("").trim_start_matches([' ', '\t']);
        if rest.is_empty() {
            return tags > 0;
        }
        let Some(after_comma) = rest.strip_prefix(',') else {
            return false;
        };
        rest = after_comma;
        if tags >= 64 {
            return false;
        }
    }
}

/// Requires a write to be conditional (RFC 6585 section 3): `If-Match` or
/// `If-Unmodified-Since` must be present.
///
/// # Errors
///
/// [`Error::PreconditionRequired`] (428) when neither is present.
pub fn require_precondition(headers: &HeaderMap) -> Result<()> {
    if headers.contains_key(header::IF_MATCH) || headers.contains_key(header::IF_UNMODIFIED_SINCE) {
        Ok(())
    } else {
        Err(Error::PreconditionRequired)
    }
}

/// A representation's current validators, and the whole conditional-request exchange
/// around them: the headers a response carries, the 304 or 412 a read may get, and the
/// 428/400/412 checks a write must pass.
///
/// ```
/// use http::{HeaderMap, Method, StatusCode};
/// use rest_core::{EntityTag, Validators};
///
/// let current = Validators::new().etag(EntityTag::strong("v2")?);
/// let mut request = HeaderMap::new();
/// request.insert("if-none-match", "\"v2\"".parse().unwrap());
/// // A read of an unchanged representation: 304 with the validators.
/// let not_modified = current.read(&Method::GET, &request)?.expect("304");
/// assert_eq!(not_modified.status(), StatusCode::NOT_MODIFIED);
/// assert_eq!(not_modified.headers()["etag"], "\"v2\"");
/// // A write without If-Match: 428.
/// let refused = current.write(&Method::PUT, &HeaderMap::new()).unwrap_err();
/// assert_eq!(refused.status(), StatusCode::PRECONDITION_REQUIRED);
/// # Ok::<(), rest_core::Error>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Validators {
    etag: Option<EntityTag>,
    last_modified: Option<SystemTime>,
}

impl Validators {
    /// No validators yet.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// The representation's entity tag.
    #[must_use]
    pub fn etag(mut self, etag: EntityTag) -> Self {
        self.etag = Some(etag);
        self
    }

    /// The representation's modification time (sent with one-second resolution).
    #[must_use]
    pub fn last_modified(mut self, time: SystemTime) -> Self {
        self.last_modified = Some(whole_seconds(time));
        self
    }

    /// Writes `ETag` and `Last-Modified` into a response's headers.
    pub fn write_headers(&self, headers: &mut HeaderMap) {
        if let Some(etag) = &self.etag {
            headers.insert(header::ETAG, etag.to_header_value());
        }
        if let Some(time) = self.last_modified
            && let Ok(value) = HeaderValue::from_str(&format_http_date(time))
        {
            headers.insert(header::LAST_MODIFIED, value);
        }
    }

    /// Evaluates a read's preconditions (RFC 9110 section 13.2.2): `Ok(None)` to send the
    /// representation (add [`Validators::write_headers`] to it), `Ok(Some(304))` with the
    /// validators and no body when the client's copy is current.
    ///
    /// # Errors
    ///
    /// [`Error::PreconditionFailed`] (412) when `If-Match` or `If-Unmodified-Since` fails.
    pub fn read(&self, method: &Method, headers: &HeaderMap) -> Result<Option<http::Response<()>>> {
        match evaluate_preconditions(method, headers, self.etag.as_ref(), self.last_modified) {
            Precondition::Proceed => Ok(None),
            Precondition::Failed => Err(Error::PreconditionFailed),
            Precondition::NotModified => {
                let mut response = http::Response::new(());
                *response.status_mut() = http::StatusCode::NOT_MODIFIED;
                self.write_headers(response.headers_mut());
                Ok(Some(response))
            }
        }
    }

    /// Checks a state-changing request against the current validators: it must be
    /// conditional (RFC 6585 section 3), its conditional headers well-formed, and they must
    /// hold (RFC 9110 section 13.2.2), so that a client cannot overwrite a version it has
    /// not seen.
    ///
    /// # Errors
    ///
    /// [`Error::PreconditionRequired`] (428) without `If-Match` or `If-Unmodified-Since`, the
    /// syntax errors of [`check_precondition_syntax`] (400), and
    /// [`Error::PreconditionFailed`] (412) when a precondition does not hold.
    pub fn write(&self, method: &Method, headers: &HeaderMap) -> Result<()> {
        require_precondition(headers)?;
        check_precondition_syntax(headers)?;
        match evaluate_preconditions(method, headers, self.etag.as_ref(), self.last_modified) {
            Precondition::Proceed => Ok(()),
            Precondition::Failed | Precondition::NotModified => Err(Error::PreconditionFailed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn entity_tags_parse_and_compare() {
        let weak = EntityTag::parse("W/\"1\"").unwrap();
        let strong = EntityTag::parse("\"1\"").unwrap();
        assert!(weak.weak_eq(&strong) && !weak.strong_eq(&strong));
        assert!(strong.strong_eq(&EntityTag::strong("1").unwrap()));
        assert!(EntityTag::parse("1").is_err());
        assert!(EntityTag::strong("a\"b").is_err());
        assert_eq!(weak.to_string(), "W/\"1\"");
    }

    #[test]
    fn if_match_is_strong_and_fails_with_412() {
        let current = EntityTag::strong("v1").unwrap();
        let ok = headers(&[("if-match", "\"v0\", \"v1\"")]);
        assert_eq!(
            evaluate_preconditions(&Method::PUT, &ok, Some(&current), None),
            Precondition::Proceed
        );
        let weak = headers(&[("if-match", "W/\"v1\"")]);
        assert_eq!(
            evaluate_preconditions(&Method::PUT, &weak, Some(&current), None),
            Precondition::Failed
        );
        let star = headers(&[("if-match", "*")]);
        assert_eq!(
            evaluate_preconditions(&Method::PUT, &star, None, None),
            Precondition::Failed
        );
    }

    #[test]
    fn if_none_match_gives_304_for_reads_and_412_for_writes() {
        let current = EntityTag::strong("v1").unwrap();
        let h = headers(&[("if-none-match", "W/\"v1\"")]);
        assert_eq!(
            evaluate_preconditions(&Method::GET, &h, Some(&current), None),
            Precondition::NotModified
        );
        let star = headers(&[("if-none-match", "*")]);
        assert_eq!(
            evaluate_preconditions(&Method::PUT, &star, Some(&current), None),
            Precondition::Failed
        );
        assert_eq!(
            evaluate_preconditions(&Method::PUT, &star, None, None),
            Precondition::Proceed
        );
    }

    #[test]
    fn dates_follow_the_rfc_order() {
        let modified = httpdate::parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT").unwrap();
        let later = headers(&[("if-modified-since", "Mon, 07 Nov 1994 08:49:37 GMT")]);
        assert_eq!(
            evaluate_preconditions(&Method::GET, &later, None, Some(modified)),
            Precondition::NotModified
        );
        // If-None-Match present: If-Modified-Since is ignored.
        let both = headers(&[
            ("if-modified-since", "Mon, 07 Nov 1994 08:49:37 GMT"),
            ("if-none-match", "\"other\""),
        ]);
        let current = EntityTag::strong("v1").unwrap();
        assert_eq!(
            evaluate_preconditions(&Method::GET, &both, Some(&current), Some(modified)),
            Precondition::Proceed
        );
        let earlier = headers(&[("if-unmodified-since", "Sat, 05 Nov 1994 08:49:37 GMT")]);
        assert_eq!(
            evaluate_preconditions(&Method::DELETE, &earlier, None, Some(modified)),
            Precondition::Failed
        );
        let garbage = headers(&[("if-unmodified-since", "yesterday")]);
        assert_eq!(
            evaluate_preconditions(&Method::DELETE, &garbage, None, Some(modified)),
            Precondition::Proceed
        );
    }

    #[test]
    fn malformed_conditional_headers_are_400() {
        for good in ["*", "\"a\"", "W/\"a\", \"b\"", " \"a\" ,\"\""] {
            let h = headers(&[("if-match", good)]);
            assert!(check_precondition_syntax(&h).is_ok(), "{good}");
        }
        for bad in ["{}", "a", "\"a", "\"a\" \"b\"", "\"a\",", "W/a", "**", ""] {
            let h = headers(&[("if-none-match", bad)]);
            assert_eq!(
                check_precondition_syntax(&h).unwrap_err().status(),
                400,
                "{bad}"
            );
        }
        assert!(check_precondition_syntax(&HeaderMap::new()).is_ok());
    }

    #[test]
    fn writes_without_preconditions_are_428() {
        assert_eq!(
            require_precondition(&HeaderMap::new())
                .unwrap_err()
                .status(),
            428
        );
        assert!(require_precondition(&headers(&[("if-match", "\"x\"")])).is_ok());
    }

    #[test]
    fn validators_answer_reads_and_guard_writes() {
        let modified = UNIX_EPOCH + Duration::from_secs(784_111_777);
        let current = Validators::new()
            .etag(EntityTag::strong("v2").unwrap())
            .last_modified(modified + Duration::from_millis(400));
        // A fresh read proceeds; the response gets both validators.
        assert!(
            current
                .read(&Method::GET, &HeaderMap::new())
                .unwrap()
                .is_none()
        );
        let mut out = HeaderMap::new();
        current.write_headers(&mut out);
        assert_eq!(out["etag"], "\"v2\"");
        assert_eq!(out["last-modified"], "Sun, 06 Nov 1994 08:49:37 GMT");
        // A current copy: 304 carrying the validators.
        let not_modified = current
            .read(&Method::GET, &headers(&[("if-none-match", "\"v2\"")]))
            .unwrap()
            .unwrap();
        assert_eq!(not_modified.status(), http::StatusCode::NOT_MODIFIED);
        assert_eq!(not_modified.headers()["etag"], "\"v2\"");
        // A failed If-Match on a read: 412.
        assert!(matches!(
            current.read(&Method::GET, &headers(&[("if-match", "\"v1\"")])),
            Err(Error::PreconditionFailed)
        ));
        // Writes: 428 without a precondition, 400 when malformed, 412 when stale.
        assert!(matches!(
            current.write(&Method::PUT, &HeaderMap::new()),
            Err(Error::PreconditionRequired)
        ));
        assert!(
            current
                .write(&Method::PUT, &headers(&[("if-match", "v2")]))
                .is_err_and(|e| e.status() == http::StatusCode::BAD_REQUEST)
        );
        assert!(matches!(
            current.write(&Method::PUT, &headers(&[("if-match", "\"v1\"")])),
            Err(Error::PreconditionFailed)
        ));
        assert!(
            current
                .write(&Method::PUT, &headers(&[("if-match", "\"v2\"")]))
                .is_ok()
        );
    }
}
