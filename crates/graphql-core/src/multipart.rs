//! File uploads over HTTP: the GraphQL multipart request specification (v2.1), read with
//! [`multer`]. A `multipart/form-data` POST carries an `operations` part (the request's
//! JSON, with `null` where files go), a `map` part (`{"0": ["variables.file"]}`: which file
//! part goes where) and the file parts, in that order.
//!
//! The body is taken as a stream of chunks and read as it arrives: the operations and the
//! map are parsed before any file, file counts and sizes are refused as soon as they are
//! passed, and files are held in memory up to [`UploadLimits`] (no temporary files).
//! `multer` is runtime-agnostic (a `futures` `Stream` in, no IO of its own), so the crate
//! stays free of a server or runtime; writing a multipart parser of our own would only
//! repeat its boundary and header handling, which is where such parsers go wrong.
//!
//! Cross-site request forgery: a browser sends a `multipart/form-data` POST from any page
//! without a CORS preflight, with the user's cookies. A request must therefore carry one of
//! [`UploadLimits::preflight_headers`] (by default `Apollo-Require-Preflight`,
//! `GraphQL-Require-Preflight` or `X-Apollo-Operation-Name`, as Apollo Server requires)
//! with a non-empty value: a custom header forces a preflight, which the server's CORS
//! policy then decides.

use std::error::Error as StdError;

use bytes::{Bytes, BytesMut};
use futures_util::Stream;
use http::header::CONTENT_TYPE;
use http::{HeaderName, Method, StatusCode, request};
use serde_json::{Map, Value};

use crate::execution::Request;
use crate::over_http::{HttpRejection, ResponseFormat, negotiate, read_http_request};
use crate::upload::{UploadedFile, upload_placeholder};

/// The limits of a multipart request. Each refusal is an [`HttpRejection`]: 413 for a file,
/// a count or a total over its limit, 400 for a malformed body, map or path.
#[derive(Debug, Clone)]
pub struct UploadLimits {
    /// Largest file, in bytes (default 10 MiB).
    pub max_file_size: u64,
    /// Most files in one request (default 10).
    pub max_files: usize,
    /// Largest whole body, in bytes, parts and their headers included (default 50 MiB).
    pub max_total_size: u64,
    /// Largest `operations` or `map` part, in bytes (default 1 MiB).
    pub max_operations_size: u64,
    /// The headers of which one must be present and non-empty (CSRF protection); empty
    /// turns the check off.
    pub preflight_headers: Vec<HeaderName>,
}

impl Default for UploadLimits {
    fn default() -> Self {
        UploadLimits {
            max_file_size: 10 << 20,
            max_files: 10,
            max_total_size: 50 << 20,
            max_operations_size: 1 << 20,
            preflight_headers: vec![
                HeaderName::from_static("apollo-require-preflight"),
                HeaderName::from_static("graphql-require-preflight"),
                HeaderName::from_static("x-apollo-operation-name"),
            ],
        }
    }
}

/// A multipart request, read: the GraphQL request (the `Upload` arguments hold
/// placeholders), the response format, and the files for
/// [`Context::with_uploads`](crate::Context::with_uploads).
#[derive(Debug)]
pub struct MultipartRequest {
    /// The request, as [`read_http_request`] reads a JSON one.
    pub request: Request,
    /// The response media type.
    pub format: ResponseFormat,
    /// The files, in the order their parts came; a placeholder's number is the index here.
    pub uploads: Vec<UploadedFile>,
}

/// Whether the request is `multipart/form-data` (to route it to
/// [`read_multipart_request`]).
pub fn is_multipart(parts: &request::Parts) -> bool {
    parts
        .headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|m| m.trim().eq_ignore_ascii_case("multipart/form-data"))
}

fn rejection(
    status: StatusCode,
    message: impl Into<String>,
    format: ResponseFormat,
) -> HttpRejection {
    HttpRejection {
        status,
        message: message.into(),
        allow: None,
        format,
    }
}

/// Reads a GraphQL multipart request (spec v2.1) from its head and its body's chunks: the
/// CSRF header, the `operations` and `map` parts, then the files, within `limits`. The
/// operations then go through [`read_http_request`] (same checks as a JSON POST: a
/// subscription or a malformed parameter is refused there). Batched operations (a JSON
/// array) are refused with 400: this crate runs one operation per request.
///
/// # Errors
///
/// An [`HttpRejection`]: 405 (not POST), 400 (no preflight header, no boundary, malformed
/// body, `operations` or `map`, a map path that does not lead to a `null`, a mapped file
/// missing, a batch), 413 (a file, the file count, the `operations`/`map` part or the body
/// over its limit), and what [`read_http_request`] refuses.
pub async fn read_multipart_request<S, O, E>(
    parts: &request::Parts,
    body: S,
    limits: &UploadLimits,
) -> Result<MultipartRequest, HttpRejection>
where
    S: Stream<Item = Result<O, E>> + Send + 'static,
    O: Into<Bytes> + 'static,
    E: Into<Box<dyn StdError + Send + Sync>> + 'static,
{
    let format = negotiate(parts)?;
    let bad = |message: String| rejection(StatusCode::BAD_REQUEST, message, format);
    if parts.method != Method::POST {
        let mut r = rejection(
            StatusCode::METHOD_NOT_ALLOWED,
            "Multipart requests use POST.",
            format,
        );
        r.allow = Some("POST");
        return Err(r);
    }
    let preflighted = limits.preflight_headers.is_empty()
        || limits.preflight_headers.iter().any(|name| {
            parts
                .headers
                .get(name)
                .is_some_and(|v| !v.as_bytes().iter().all(u8::is_ascii_whitespace))
        });
    if !preflighted {
        let names: Vec<&str> = limits
            .preflight_headers
            .iter()
            .map(HeaderName::as_str)
            .collect();
        return Err(bad(format!(
            "This request has been blocked as a potential Cross-Site Request Forgery (CSRF): a multipart request must have a non-empty header of one of: {}.",
            names.join(", ")
        )));
    }
    let content_type = parts
        .headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let boundary = multer::parse_boundary(content_type)
        .map_err(|e| bad(format!("The multipart Content-Type is not usable: {e}.")))?;
    let constraints = multer::Constraints::new().size_limit(
        multer::SizeLimit::new()
            .whole_stream(limits.max_total_size)
            .per_field(limits.max_file_size)
            .for_field("operations", limits.max_operations_size)
            .for_field("map", limits.max_operations_size),
    );
    let mut multipart = multer::Multipart::with_constraints(body, boundary, constraints);
    let multer_error = |e: multer::Error| match e {
        multer::Error::StreamSizeExceeded { limit } => rejection(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("The multipart body is larger than {limit} bytes."),
            format,
        ),
        multer::Error::FieldSizeExceeded { limit, field_name } => rejection(
            StatusCode::PAYLOAD_TOO_LARGE,
            match field_name.as_deref() {
                Some(name @ ("operations" | "map")) => {
                    format!("The \"{name}\" part is larger than {limit} bytes.")
                }
                Some(name) => format!("The file \"{name}\" is larger than {limit} bytes."),
                None => format!("A part is larger than {limit} bytes."),
            },
            format,
        ),
        other => rejection(
            StatusCode::BAD_REQUEST,
            format!("The multipart body is malformed: {other}."),
            format,
        ),
    };

    // 1. `operations`, first.
    let mut operations = match multipart.next_field().await.map_err(multer_error)? {
        Some(field) if field.name() == Some("operations") => {
            let bytes = field.bytes().await.map_err(multer_error)?;
            serde_json::from_slice::<Value>(&bytes)
                .map_err(|e| bad(format!("The \"operations\" part is not JSON: {e}.")))?
        }
        _ => {
            return Err(bad(
                "The first part of a multipart request must be \"operations\".".to_owned(),
            ));
        }
    };
    match operations {
        Value::Object(_) => {}
        Value::Array(_) => {
            return Err(bad(
                "Batched operations are not supported: send one operation per request.".to_owned(),
            ));
        }
        _ => {
            return Err(bad(
                "The \"operations\" part must be a JSON object.".to_owned()
            ));
        }
    }

    // 2. `map`, second: every entry a file part's name and the paths it fills.
    let map = match multipart.next_field().await.map_err(multer_error)? {
        Some(field) if field.name() == Some("map") => {
            let bytes = field.bytes().await.map_err(multer_error)?;
            serde_json::from_slice::<Value>(&bytes)
                .map_err(|e| bad(format!("The \"map\" part is not JSON: {e}.")))?
        }
        _ => {
            return Err(bad(
                "The second part of a multipart request must be \"map\".".to_owned(),
            ));
        }
    };
    let Value::Object(map) = map else {
        return Err(bad("The \"map\" part must be a JSON object.".to_owned()));
    };
    if map.len() > limits.max_files {
        return Err(rejection(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "The request has {} files; at most {} are accepted.",
                map.len(),
                limits.max_files
            ),
            format,
        ));
    }
    let mut wanted: Map<String, Value> = Map::new();
    for (name, paths) in &map {
        let Value::Array(paths) = paths else {
            return Err(bad(format!(
                "The \"map\" entry \"{name}\" must be an array of paths."
            )));
        };
        if paths.is_empty() {
            return Err(bad(format!("The \"map\" entry \"{name}\" has no path.")));
        }
        for path in paths {
            let Some(path) = path.as_str() else {
                return Err(bad(format!(
                    "The \"map\" entry \"{name}\" must hold paths as strings."
                )));
            };
            match slot(&mut operations, path) {
                Some(Value::Null) => {}
                _ => {
                    return Err(bad(format!(
                        "The \"map\" entry \"{name}\" names the path \"{path}\", which is not a null in \"operations\"."
                    )));
                }
            }
        }
        wanted.insert(name.clone(), Value::Array(paths.clone()));
    }

    // 3. The files: each mapped part read within its limit, its placeholder put in place.
    let mut uploads = Vec::new();
    while let Some(mut field) = multipart.next_field().await.map_err(multer_error)? {
        let Some(name) = field.name().map(str::to_owned) else {
            continue;
        };
        let Some(paths) = wanted.remove(&name) else {
            if map.contains_key(&name) {
                return Err(bad(format!("The file part \"{name}\" is sent twice.")));
            }
            // A part the map does not name is skipped (read past, within the limits).
            while field.chunk().await.map_err(multer_error)?.is_some() {}
            continue;
        };
        let filename = field.file_name().map(str::to_owned);
        let content_type = field.content_type().map(ToString::to_string);
        let mut bytes = BytesMut::new();
        while let Some(chunk) = field.chunk().await.map_err(multer_error)? {
            bytes.extend_from_slice(&chunk);
        }
        let placeholder = upload_placeholder(uploads.len());
        for path in paths
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
        {
            if let Some(slot) = slot(&mut operations, path) {
                *slot = placeholder.clone();
            }
        }
        uploads.push(UploadedFile::new(
            name,
            filename,
            content_type,
            bytes.freeze(),
        ));
    }
    if let Some(name) = wanted.keys().next() {
        return Err(bad(format!(
            "The file part \"{name}\" named in \"map\" is missing."
        )));
    }

    // 4. The operations as a JSON POST: the same checks as any other request.
    let json = operations.to_string();
    let mut head = http::Request::post(parts.uri.clone())
        .header(CONTENT_TYPE, "application/json")
        .body(())
        .map_err(|e| bad(format!("The request cannot be read: {e}.")))?;
    for name in [http::header::ACCEPT] {
        for value in parts.headers.get_all(&name) {
            head.headers_mut().append(name.clone(), value.clone());
        }
    }
    let (head, ()) = head.into_parts();
    let (request, format) = read_http_request(&head, json.as_bytes(), json.len())?;
    Ok(MultipartRequest {
        request,
        format,
        uploads,
    })
}

/// The value at an object path of the spec (`variables.file`, `variables.files.1`), if it
/// exists.
fn slot<'v>(root: &'v mut Value, path: &str) -> Option<&'v mut Value> {
    let mut at = root;
    for segment in path.split('.') {
        at = match at {
            Value::Object(map) => map.get_mut(segment)?,
            Value::Array(items) => items.get_mut(segment.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(at)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_reach_objects_and_list_items() {
        let mut v = serde_json::json!({"variables": {"files": [null, null], "one": null}});
        assert!(slot(&mut v, "variables.files.1").is_some_and(|s| s.is_null()));
        assert!(slot(&mut v, "variables.one").is_some());
        assert!(slot(&mut v, "variables.files.2").is_none());
        assert!(slot(&mut v, "variables.files.x").is_none());
        assert!(slot(&mut v, "variables.one.deeper").is_none());
    }
}
