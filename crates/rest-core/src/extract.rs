//! Typed extraction of query strings and JSON bodies, with precise, status-mapped errors.
//!
//! ```
//! use http::HeaderMap;
//! use rest_core::{JsonLimits, QueryLimits, json_body, query};
//!
//! #[derive(serde::Deserialize)]
//! struct Filter { tag: Vec<String>, limit: Option<u32> }
//! let filter: Filter = query(Some("tag=a&tag=b&limit=5"), &QueryLimits::default())?;
//! assert_eq!(filter.tag, ["a", "b"]);
//!
//! #[derive(serde::Deserialize, Debug)]
//! struct NewUser { name: String }
//! let mut headers = HeaderMap::new();
//! headers.insert("content-type", "application/json".parse().unwrap());
//! let error = json_body::<NewUser>(&headers, br#"{"name": 5}"#, &JsonLimits::default()).unwrap_err();
//! assert_eq!(error.status(), 422);
//! # Ok::<(), rest_core::Error>(())
//! ```

use http::{HeaderMap, header};
use percent_encoding::percent_decode_str;
use serde::de::DeserializeOwned;
use serde_json::error::Category;

use crate::{Error, Result};

/// Bounds on query strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueryLimits {
    /// Longest accepted query string in bytes (default 8 KiB); longer is 414.
    pub max_len: usize,
    /// Most `&`-separated pairs accepted (default 256); more is 400.
    pub max_pairs: usize,
}

impl Default for QueryLimits {
    fn default() -> Self {
        Self {
            max_len: 8 * 1024,
            max_pairs: 256,
        }
    }
}

/// Deserializes a query string (the part after `?`, `None` when absent) with serde.
///
/// Repeated keys fill a `Vec` field (`serde_html_form`). Percent-encoded bytes that do not
/// decode to UTF-8 are refused rather than replaced, so that no two spellings collapse.
///
/// # Errors
///
/// [`Error::QueryTooLong`] (414) over `max_len`; [`Error::InvalidQuery`] (400) for too many
/// pairs, invalid UTF-8, or a value that does not fit its field.
pub fn query<T: DeserializeOwned>(query: Option<&str>, limits: &QueryLimits) -> Result<T> {
    let query = query.unwrap_or("");
    if query.len() > limits.max_len {
        return Err(Error::QueryTooLong {
            len: query.len(),
            limit: limits.max_len,
        });
    }
    if query.split('&').filter(|pair| !pair.is_empty()).count() > limits.max_pairs {
        return Err(Error::InvalidQuery(format!(
            "more than {} parameters",
            limits.max_pairs
        )));
    }
    // `+` is a space in forms; decode it the same way before the UTF-8 check.
    if percent_decode_str(query).decode_utf8().is_err() {
        return Err(Error::InvalidQuery(
            "not UTF-8 once percent-decoded".to_owned(),
        ));
    }
    serde_html_form::from_str(query).map_err(|error| Error::InvalidQuery(error.to_string()))
}

/// Bounds on JSON bodies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JsonLimits {
    /// Largest accepted body in bytes (default 1 MiB); larger is 413.
    pub max_bytes: usize,
    /// Deepest accepted nesting of arrays and objects (default 64); deeper is 400.
    pub max_depth: usize,
}

impl Default for JsonLimits {
    fn default() -> Self {
        Self {
            max_bytes: 1024 * 1024,
            max_depth: 64,
        }
    }
}

/// Checks that `Content-Type` is `application/json` or a `+json` type (RFC 6839 section 3.1).
///
/// # Errors
///
/// [`Error::UnsupportedMediaType`] (415) when it is missing or another type.
pub fn require_json_content_type(headers: &HeaderMap) -> Result<()> {
    let found = headers.get(header::CONTENT_TYPE);
    let essence = found
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .map(|value| value.trim().to_ascii_lowercase());
    let is_json = essence.as_deref().is_some_and(|essence| {
        essence == "application/json"
            || essence
                .strip_prefix("application/")
                .is_some_and(|subtype| subtype.ends_with("+json"))
    });
    if is_json {
        Ok(())
    } else {
        Err(Error::UnsupportedMediaType {
            found: found.map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned()),
            expected: "application/json",
        })
    }
}

/// Refuses a declared `Content-Length` over `limit` before the body is read (413).
///
/// # Errors
///
/// [`Error::PayloadTooLarge`] when the declared length is over the limit.
pub fn check_content_length(headers: &HeaderMap, limit: usize) -> Result<()> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().parse::<u64>().ok());
    match declared {
        Some(length) if length > limit as u64 => Err(Error::PayloadTooLarge { limit }),
        _ => Ok(()),
    }
}

/// Checks the `Content-Type` ([`require_json_content_type`]), then parses the body
/// ([`json_from_slice`]).
///
/// # Errors
///
/// 415, 413, 400 or 422 as described on those functions.
pub fn json_body<T: DeserializeOwned>(
    headers: &HeaderMap,
    body: &[u8],
    limits: &JsonLimits,
) -> Result<T> {
    require_json_content_type(headers)?;
    json_from_slice(body, limits)
}

/// [`json_body`] for a body that must be a JSON object, as resource representations are.
///
/// serde's derived `Deserialize` for a struct also accepts an array of its fields in
/// declaration order (`["Ada", "ada@example.com"]` for `{name, email}`), which a schema of
/// `type: object` does not allow; this refuses any other top-level value first.
///
/// ```
/// use http::HeaderMap;
/// use rest_core::{JsonLimits, json_object_body};
///
/// #[derive(serde::Deserialize, Debug)]
/// struct NewUser { name: String, email: String }
/// let mut headers = HeaderMap::new();
/// headers.insert("content-type", "application/json".parse().unwrap());
/// let limits = JsonLimits::default();
/// let array = br#"["Ada", "ada@example.com"]"#;
/// let error = json_object_body::<NewUser>(&headers, array, &limits).unwrap_err();
/// assert_eq!(error.status(), 422);
/// assert!(error.to_string().contains("expected a JSON object, found an array"));
/// ```
///
/// # Errors
///
/// As [`json_body`]; [`Error::InvalidJson`] (422) at pointer `""` for well-formed JSON
/// that is not an object.
pub fn json_object_body<T: DeserializeOwned>(
    headers: &HeaderMap,
    body: &[u8],
    limits: &JsonLimits,
) -> Result<T> {
    require_json_content_type(headers)?;
    let first = body.iter().find(|byte| !byte.is_ascii_whitespace());
    if first != Some(&b'{') {
        // Broken JSON keeps its 400 with line and column; only a well-formed value of
        // another kind is this 422.
        json_from_slice::<serde::de::IgnoredAny>(body, limits)?;
        let found = match first {
            Some(b'[') => "an array",
            Some(b'"') => "a string",
            Some(b't' | b'f') => "a boolean",
            Some(b'n') => "null",
            _ => "a number",
        };
        return Err(Error::InvalidJson {
            pointer: String::new(),
            reason: format!("expected a JSON object, found {found}"),
        });
    }
    json_from_slice(body, limits)
}

/// Parses a JSON body into `T`.
///
/// # Errors
///
/// [`Error::PayloadTooLarge`] (413) over `max_bytes`; [`Error::JsonTooDeep`] (400) over
/// `max_depth`; [`Error::MalformedJson`] (400) with line and column for broken JSON;
/// [`Error::InvalidJson`] (422) with the JSON pointer of the member that does not fit `T`.
pub fn json_from_slice<T: DeserializeOwned>(body: &[u8], limits: &JsonLimits) -> Result<T> {
    if body.len() > limits.max_bytes {
        return Err(Error::PayloadTooLarge {
            limit: limits.max_bytes,
        });
    }
    check_depth(body, limits.max_depth)?;
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        let pointer = json_pointer(error.path());
        classify(error.into_inner(), pointer)
    })?;
    deserializer
        .end()
        .map_err(|error| classify(error, String::new()))?;
    Ok(value)
}

fn classify(error: serde_json::Error, pointer: String) -> Error {
    match error.classify() {
        Category::Data => {
            let reason = error.to_string();
            // serde reports a missing field at its parent; name the field itself.
            let pointer = match missing_field(&reason) {
                Some(field) => format!("{pointer}/{}", escape_pointer_token(field)),
                None => pointer,
            };
            Error::InvalidJson {
                pointer,
                reason: strip_position(&reason),
            }
        }
        Category::Syntax | Category::Eof | Category::Io => Error::MalformedJson {
            line: error.line(),
            column: error.column(),
            reason: strip_position(&error.to_string()),
        },
    }
}

fn missing_field(message: &str) -> Option<&str> {
    message.strip_prefix("missing field `")?.split('`').next()
}

/// serde_json appends " at line L column C"; the problem carries those as members.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(at) => message.get(..at).unwrap_or(message).to_owned(),
        None => message.to_owned(),
    }
}

/// The RFC 6901 pointer of a serde path.
fn json_pointer(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut pointer = String::new();
    for segment in path.iter() {
        match segment {
            Segment::Seq { index } => {
                pointer.push('/');
                pointer.push_str(&index.to_string());
            }
            Segment::Map { key } => {
                pointer.push('/');
                pointer.push_str(&escape_pointer_token(key));
            }
            Segment::Enum { .. } | Segment::Unknown => {}
        }
    }
    pointer
}

/// RFC 6901 section 3: `~` is `~0` and `/` is `~1`.
fn escape_pointer_token(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

/// A linear scan that refuses nesting deeper than `max` before any parsing work.
fn check_depth(body: &[u8], max: usize) -> Result<()> {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for &byte in body {
        if in_string {
            match (escaped, byte) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > max {
                    return Err(Error::JsonTooDeep { limit: max });
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct User {
        name: String,
        tags: Vec<Tag>,
    }

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Tag {
        label: String,
    }

    fn json_headers() -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json; charset=utf-8"),
        );
        headers
    }

    #[test]
    fn wrong_data_is_422_with_a_json_pointer() {
        let body = br#"{"name":"a","tags":[{"label":"x"},{"label":3}]}"#;
        match json_body::<User>(&json_headers(), body, &JsonLimits::default()) {
            Err(Error::InvalidJson { pointer, .. }) => assert_eq!(pointer, "/tags/1/label"),
            other => panic!("{other:?}"),
        }
        match json_from_slice::<User>(br#"{"tags":[]}"#, &JsonLimits::default()) {
            Err(Error::InvalidJson { pointer, .. }) => assert_eq!(pointer, "/name"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn broken_json_is_400_with_line_and_column() {
        match json_from_slice::<User>(b"{\n  \"name\": \"a\",,\n}", &JsonLimits::default()) {
            Err(
                error @ Error::MalformedJson {
                    line: 2, column, ..
                },
            ) => {
                assert_eq!(column, 15, "the second comma");
                assert_eq!(error.status(), 400);
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            json_from_slice::<User>(br#"{"name":"a","tags":[]} x"#, &JsonLimits::default()),
            Err(Error::MalformedJson { .. })
        ));
    }

    #[test]
    fn an_object_body_refuses_arrays_and_other_values() {
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct User {
            name: String,
            email: String,
        }
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        let limits = JsonLimits::default();
        // serde alone takes the array as the struct's fields in order.
        assert!(json_from_slice::<User>(br#"["Ada","ada@example.com"]"#, &limits).is_ok());
        for (body, found) in [
            (&br#" ["Ada","ada@example.com"]"#[..], "an array"),
            (br#""Ada""#, "a string"),
            (b"7", "a number"),
            (b"-7", "a number"),
            (b"true", "a boolean"),
            (b"null", "null"),
        ] {
            match json_object_body::<User>(&headers, body, &limits) {
                Err(Error::InvalidJson { pointer, reason }) => {
                    assert_eq!(pointer, "");
                    assert_eq!(reason, format!("expected a JSON object, found {found}"));
                }
                other => panic!("{other:?}"),
            }
        }
        // Broken JSON stays a 400, an empty body too; an object goes through.
        assert!(matches!(
            json_object_body::<User>(&headers, b"[1,", &limits),
            Err(Error::MalformedJson { .. })
        ));
        assert!(matches!(
            json_object_body::<User>(&headers, b"", &limits),
            Err(Error::MalformedJson { .. })
        ));
        let user: User =
            json_object_body(&headers, br#"{"name":"Ada","email":"a@b"}"#, &limits).unwrap();
        assert_eq!(user.name, "Ada");
        // The content type is still checked first.
        assert_eq!(
            json_object_body::<User>(&HeaderMap::new(), b"[]", &limits)
                .unwrap_err()
                .status(),
            415
        );
    }

    #[test]
    fn wrong_content_type_is_415() {
        let mut headers = HeaderMap::new();
        assert_eq!(
            require_json_content_type(&headers).unwrap_err().status(),
            415
        );
        // The message names what was sent, in words (no `Some(..)`/`None`).
        assert_eq!(
            require_json_content_type(&headers).unwrap_err().to_string(),
            "the request has no Content-Type; expected application/json"
        );
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        let error = require_json_content_type(&headers).unwrap_err();
        assert_eq!(error.status(), 415);
        assert_eq!(
            error.to_string(),
            r#"unsupported content type "text/plain"; expected application/json"#
        );

        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/merge-patch+json"),
        );
        assert!(require_json_content_type(&headers).is_ok());
    }

    #[test]
    fn size_and_depth_limits() {
        let limits = JsonLimits {
            max_bytes: 10,
            max_depth: 3,
        };
        assert_eq!(
            json_from_slice::<serde_json::Value>(&[b' '; 11], &limits)
                .unwrap_err()
                .status(),
            413
        );
        assert!(matches!(
            json_from_slice::<serde_json::Value>(b"[[[[]]]]", &limits),
            Err(Error::JsonTooDeep { limit: 3 })
        ));
        // Brackets inside strings do not count.
        assert!(json_from_slice::<serde_json::Value>(br#"["[[[["]"#, &limits).is_ok());
    }

    #[test]
    fn query_repeated_keys_limits_and_utf8() {
        #[derive(Debug, serde::Deserialize)]
        struct Q {
            id: Vec<u32>,
        }
        let q: Q = query(Some("id=1&id=2&id=3"), &QueryLimits::default()).unwrap();
        assert_eq!(q.id, [1, 2, 3]);
        assert_eq!(
            query::<Q>(Some("id=%FF"), &QueryLimits::default())
                .unwrap_err()
                .status(),
            400
        );
        let huge = "id=1&".repeat(3000);
        assert_eq!(
            query::<Q>(Some(&huge), &QueryLimits::default())
                .unwrap_err()
                .status(),
            414
        );
        let many = "id=1&".repeat(300);
        assert_eq!(
            query::<Q>(Some(&many), &QueryLimits::default())
                .unwrap_err()
                .status(),
            400
        );
        assert!(query::<Q>(Some("id=x"), &QueryLimits::default()).is_err());
    }
}
