//! GraphQL over HTTP (the GraphQL over HTTP specification, draft of 2025), sans IO: read a
//! request from `http` types and bytes, write the response with the right media type and
//! status. No server, no body type: bring yours.
//!
//! ```
//! use graphql_core::{Context, Schema, ResponseFormat, read_http_request, write_http_response};
//!
//! # let schema = Schema::build("type Query { a: Int }").finish().unwrap();
//! let (parts, ()) = http::Request::get("/graphql?query=%7Ba%7D")
//!     .header("accept", "application/graphql-response+json")
//!     .body(())
//!     .unwrap()
//!     .into_parts();
//! let (request, format) = read_http_request(&parts, b"", 100_000).unwrap();
//! assert_eq!(request.query, "{a}");
//! assert_eq!(format, ResponseFormat::GraphQLResponseJson);
//! ```

use http::header::{ACCEPT, ALLOW, CACHE_CONTROL, CONTENT_TYPE};
use http::{HeaderValue, Method, StatusCode, request};
use serde_json::{Map, Value};

use crate::document::Document;
use crate::execution::{IncrementalPayload, Request, Response};
use crate::response::GraphQLError;
use crate::validation::op_of;

/// The media type of a GraphQL response.
pub const GRAPHQL_RESPONSE_JSON: &str = "application/graphql-response+json";

/// The media type of an incrementally delivered response (`@defer`, `@stream`) in the
/// current format ([`IncrementalFormat::GraphQL17`](crate::IncrementalFormat)), boundary
/// `-`; `incrementalSpec=v0.2` is the parameter Apollo Server and Apollo Client 4 use for
/// it.
pub const MULTIPART_MIXED: &str = crate::IncrementalFormat::GraphQL17.content_type();

/// The media type of an incrementally delivered response in the format of 2022-08-24
/// ([`IncrementalFormat::Defer20220824`](crate::IncrementalFormat)), boundary `-`.
pub const MULTIPART_MIXED_DEFER_20220824: &str =
    crate::IncrementalFormat::Defer20220824.content_type();

/// Which media type the response uses; it decides the status codes (spec section 6.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseFormat {
    /// `application/graphql-response+json`: request errors get 4xx statuses.
    GraphQLResponseJson,
    /// `application/json` (legacy clients): 200 for every well-formed GraphQL request.
    Json,
}

impl ResponseFormat {
    fn content_type(self) -> &'static str {
        match self {
            ResponseFormat::GraphQLResponseJson => {
                "application/graphql-response+json; charset=utf-8"
            }
            ResponseFormat::Json => "application/json; charset=utf-8",
        }
    }
}

/// An HTTP request that is not a GraphQL request the server accepts, with the status to
/// answer.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpRejection {
    /// The status code.
    pub status: StatusCode,
    /// Why, as a GraphQL error message.
    pub message: String,
    /// The `Allow` header for 405.
    pub allow: Option<&'static str>,
    /// The media type for the error body.
    pub format: ResponseFormat,
}

impl HttpRejection {
    fn new(status: StatusCode, message: impl Into<String>, format: ResponseFormat) -> Self {
        HttpRejection {
            status,
            message: message.into(),
            allow: None,
            format,
        }
    }

    /// The rejection as an HTTP response with a GraphQL error body.
    pub fn into_response(self) -> http::Response<Vec<u8>> {
        let body = Response::request_error(GraphQLError::new(self.message, vec![]))
            .to_json()
            .into_bytes();
        let mut response = http::Response::new(body);
        *response.status_mut() = self.status;
        response.headers_mut().insert(
            CONTENT_TYPE,
            HeaderValue::from_static(self.format.content_type()),
        );
        if let Some(allow) = self.allow {
            response
                .headers_mut()
                .insert(ALLOW, HeaderValue::from_static(allow));
        }
        response
    }
}

/// Picks the response media type from `Accept` (spec 5.2): the GraphQL response type when
/// named, else `application/json` (also for wildcards and a missing `Accept`); an `Accept`
/// that allows neither is refused with 406.
pub(crate) fn negotiate(parts: &request::Parts) -> Result<ResponseFormat, HttpRejection> {
    let Some(accept) = parts.headers.get(ACCEPT) else {
        return Ok(ResponseFormat::Json);
    };
    let accept = accept.to_str().unwrap_or("");
    let mut json = false;
    let mut graphql = false;
    for item in accept.split(',') {
        let mut params = item.split(';');
        let media = params.next().unwrap_or("").trim().to_ascii_lowercase();
        let refused = params.any(|p| {
            let p = p.trim().replace(' ', "");
            p == "q=0" || p == "q=0.0" || p == "q=0.00" || p == "q=0.000"
        });
        if refused {
            continue;
        }
        match media.as_str() {
            GRAPHQL_RESPONSE_JSON => graphql = true,
            // A wildcard gets application/json, which every client reads (the audit's
            // SHOULD; fetch sends `*/*` by default).
            "application/json" | "*/*" | "application/*" => json = true,
            // A client that reads multipart responses also gets a single result as JSON
            // when nothing is deferred.
            "multipart/mixed" => json = true,
            _ => {}
        }
    }
    if graphql {
        Ok(ResponseFormat::GraphQLResponseJson)
    } else if json {
        Ok(ResponseFormat::Json)
    } else {
        Err(HttpRejection::new(
            StatusCode::NOT_ACCEPTABLE,
            format!(
                "None of the accepted media types is supported; use {GRAPHQL_RESPONSE_JSON} or application/json."
            ),
            ResponseFormat::Json,
        ))
    }
}

fn bad_request(message: impl Into<String>, format: ResponseFormat) -> HttpRejection {
    HttpRejection::new(StatusCode::BAD_REQUEST, message, format)
}

/// Reads a GraphQL request from an HTTP request (spec section 5): `GET` with the parameters
/// in the query string, or `POST` with an `application/json` body. `GET` may not run a
/// mutation (405 with `Allow: POST`). A subscription is refused with a request error that
/// points to the WebSocket ([`SUBSCRIPTION_OVER_HTTP`]; 400, or 200 with
/// `application/json`). Bodies over `max_body` bytes get 413.
///
/// # Errors
///
/// An [`HttpRejection`] carrying the status the spec asks for: 405 (method), 406
/// (`Accept`), 413 (size), 415 (`Content-Type`), 400 (malformed parameters, a
/// subscription).
pub fn read_http_request(
    parts: &request::Parts,
    body: &[u8],
    max_body: usize,
) -> Result<(Request, ResponseFormat), HttpRejection> {
    let format = negotiate(parts)?;
    read_request(parts, body, max_body, format, false).map(|request| (request, format))
}

/// [`read_http_request`] after content negotiation; `subscriptions` lets a subscription
/// through (a transport that streams results, such as GraphQL over SSE).
pub(crate) fn read_request(
    parts: &request::Parts,
    body: &[u8],
    max_body: usize,
    format: ResponseFormat,
    subscriptions: bool,
) -> Result<Request, HttpRejection> {
    let params: Map<String, Value> = match parts.method {
        Method::GET => {
            let mut map = Map::new();
            for (k, v) in form_urlencoded::parse(parts.uri.query().unwrap_or("").as_bytes()) {
                let value = match k.as_ref() {
                    "variables" | "extensions" => {
                        serde_json::from_str::<Value>(&v).map_err(|e| {
                            bad_request(format!("The {k} parameter is not JSON: {e}"), format)
                        })?
                    }
                    _ => Value::String(v.into_owned()),
                };
                map.insert(k.into_owned(), value);
            }
            map
        }
        Method::POST => {
            if body.len() > max_body {
                return Err(HttpRejection::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!("The body is larger than {max_body} bytes."),
                    format,
                ));
            }
            let content_type = parts
                .headers
                .get(CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            let mut ct = content_type.split(';');
            let media = ct.next().unwrap_or("").trim().to_ascii_lowercase();
            if media != "application/json" {
                return Err(HttpRejection::new(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "POST requests must have Content-Type: application/json.",
                    format,
                ));
            }
            let charset_ok = ct.all(|p| {
                let p = p.trim().to_ascii_lowercase();
                !p.starts_with("charset=") || p == "charset=utf-8" || p == "charset=\"utf-8\""
            });
            if !charset_ok {
                return Err(HttpRejection::new(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "Only the utf-8 charset is supported.",
                    format,
                ));
            }
            match serde_json::from_slice::<Value>(body) {
                Ok(Value::Object(map)) => map,
                Ok(_) => return Err(bad_request("The body must be a JSON object.", format)),
                Err(e) => {
                    return Err(bad_request(
                        format!("The body is not valid JSON: {e}"),
                        format,
                    ));
                }
            }
        }
        _ => {
            let mut r = HttpRejection::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "GraphQL requests use GET or POST.",
                format,
            );
            r.allow = Some("GET, POST");
            return Err(r);
        }
    };
    let persisted = params
        .get("extensions")
        .is_some_and(|e| e.get("persistedQuery").is_some());
    let query = match params.get("query") {
        Some(Value::String(q)) => q.clone(),
        Some(_) => return Err(bad_request("The query parameter must be a string.", format)),
        // Automatic persisted queries send only a hash at first (see `PersistedQueries`).
        None if persisted => String::new(),
        None => return Err(bad_request("The query parameter is missing.", format)),
    };
    let operation_name = match params.get("operationName") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => {
            return Err(bad_request(
                "The operationName parameter must be a string.",
                format,
            ));
        }
    };
    let variables = match params.get("variables") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(m)) => m.clone(),
        Some(_) => {
            return Err(bad_request(
                "The variables parameter must be a JSON object.",
                format,
            ));
        }
    };
    match params.get("extensions") {
        None | Some(Value::Null | Value::Object(_)) => {}
        Some(_) => {
            return Err(bad_request(
                "The extensions parameter must be a JSON object.",
                format,
            ));
        }
    }
    if parts.method == Method::GET && is_mutation(&query, operation_name.as_deref()) {
        let mut r = HttpRejection::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "Mutations cannot be sent with GET; use POST.",
            format,
        );
        r.allow = Some("POST");
        return Err(r);
    }
    // A subscription is a stream of results, which one HTTP response does not carry here:
    // a request error that says where to go (as graphql-http answers), instead of running
    // it as a query whose root field resolves to null. The cheap test first: only a
    // document that spells the keyword is parsed here.
    if !subscriptions
        && query.contains("subscription")
        && operation_type(&query, operation_name.as_deref()) == Some("subscription")
    {
        // Spec 6.4: a request error is 400 with application/graphql-response+json, 200
        // with application/json.
        let status = match format {
            ResponseFormat::GraphQLResponseJson => StatusCode::BAD_REQUEST,
            ResponseFormat::Json => StatusCode::OK,
        };
        return Err(HttpRejection::new(status, SUBSCRIPTION_OVER_HTTP, format));
    }
    let mut request = Request::new(query);
    request.operation_name = operation_name;
    request.variables = variables;
    request.extensions = params.get("extensions").filter(|e| e.is_object()).cloned();
    Ok(request)
}

/// The error message of a subscription sent over HTTP.
pub const SUBSCRIPTION_OVER_HTTP: &str = "Subscriptions are not run over HTTP GET or POST: \
     open a WebSocket with the graphql-transport-ws subprotocol and send the subscription there.";

/// Whether the operation a GET request would run is a mutation (spec 5.1: GET must not
/// run mutations). Unparsable documents are left to execution to report.
fn is_mutation(query: &str, operation_name: Option<&str>) -> bool {
    operation_type(query, operation_name) == Some("mutation")
}

/// The type (`"query"`, `"mutation"` or `"subscription"`) of the operation a request would
/// run, or `None` when the document does not parse or names no single operation. Transports
/// use it to route subscriptions to [`Schema::subscribe`](crate::Schema::subscribe).
pub fn operation_type(query: &str, operation_name: Option<&str>) -> Option<&'static str> {
    let Ok(doc) = Document::parse(query) else {
        return None;
    };
    let mut ops = doc.ast.definitions.iter().filter_map(|d| match d {
        graphql_parser::query::Definition::Operation(op) => Some(op_of(op)),
        graphql_parser::query::Definition::Fragment(_) => None,
    });
    let op = match operation_name {
        Some(name) => ops.find(|o| o.name == Some(name)),
        None => {
            let first = ops.next();
            if ops.next().is_some() { None } else { first }
        }
    };
    op.map(|o| o.kind.as_str())
}

/// Whether the request's `Accept` allows `multipart/mixed` (incremental delivery), with a
/// non-zero quality.
pub fn accepts_multipart(parts: &request::Parts) -> bool {
    parts
        .headers
        .get_all(ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|item| {
            let mut params = item.split(';');
            let media = params.next().unwrap_or("").trim();
            media.eq_ignore_ascii_case("multipart/mixed")
                && !params.any(|p| {
                    let p = p.trim().replace(' ', "");
                    p == "q=0" || p == "q=0.0" || p == "q=0.00" || p == "q=0.000"
                })
        })
}

/// The incremental delivery format the request's `Accept` asks for: a `multipart/mixed`
/// with `deferSpec=20220824` and without `incrementalSpec` (what Apollo Client 3 and Apollo
/// Kotlin send) gets the format of 2022-08-24; every other request the current one.
pub fn incremental_format(parts: &request::Parts) -> crate::IncrementalFormat {
    let mut legacy = false;
    for item in parts
        .headers
        .get_all(ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
    {
        let mut params = item.split(';');
        if !params
            .next()
            .unwrap_or("")
            .trim()
            .eq_ignore_ascii_case("multipart/mixed")
        {
            continue;
        }
        for p in params {
            let p = p.trim().to_ascii_lowercase().replace(' ', "");
            if p.starts_with("incrementalspec=") {
                return crate::IncrementalFormat::GraphQL17;
            }
            if p == "deferspec=20220824" {
                legacy = true;
            }
        }
    }
    if legacy {
        crate::IncrementalFormat::Defer20220824
    } else {
        crate::IncrementalFormat::GraphQL17
    }
}

/// One part of a `multipart/mixed` response ([`MULTIPART_MIXED`]): the opening delimiter
/// before the `first` part, the part's `Content-Type` header and JSON, then the delimiter,
/// or the closing delimiter `-----` after the `last` part. Concatenated, the parts are the
/// body; a server with a streaming body sends each as it comes.
pub fn multipart_part(json: &str, first: bool, last: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(json.len() + 80);
    if first {
        out.extend_from_slice(b"\r\n---\r\n");
    }
    out.extend_from_slice(b"Content-Type: application/json; charset=utf-8\r\n\r\n");
    out.extend_from_slice(json.as_bytes());
    out.extend_from_slice(if last {
        b"\r\n-----\r\n"
    } else {
        b"\r\n---\r\n"
    });
    out
}

/// Writes the payloads of [`Schema::execute_incremental`](crate::Schema::execute_incremental)
/// as one HTTP response: a single complete result as [`write_http_response`] does, several
/// payloads as a `multipart/mixed` body (status 200, the `Content-Type` of their format:
/// [`MULTIPART_MIXED`] or [`MULTIPART_MIXED_DEFER_20220824`]).
pub fn write_http_incremental(
    payloads: &[IncrementalPayload],
    format: ResponseFormat,
) -> http::Response<Vec<u8>> {
    if let [only] = payloads
        && let Some(response) = only.complete_response()
    {
        return write_http_response(response, format);
    }
    let mut body = Vec::new();
    for (i, p) in payloads.iter().enumerate() {
        body.extend(multipart_part(p.to_json(), i == 0, i + 1 == payloads.len()));
    }
    let content_type = payloads
        .first()
        .map_or(MULTIPART_MIXED, |p| p.format().content_type());
    let mut out = http::Response::new(body);
    out.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    out
}

/// Writes a GraphQL response as HTTP (spec 6.4): with `application/graphql-response+json`,
/// a response without `data` (a request error) is 400; everything else is 200. A response
/// with a [`CachePolicy`](crate::CachePolicy) (cache hints on) gets it as `Cache-Control`
/// (`max-age=N, public`, `max-age=N, private` or `no-store`): shared caches store GET
/// responses, and mutations, which GET cannot carry, are never cacheable.
pub fn write_http_response(response: &Response, format: ResponseFormat) -> http::Response<Vec<u8>> {
    let status = match format {
        ResponseFormat::GraphQLResponseJson if !response.has_data() => StatusCode::BAD_REQUEST,
        _ => StatusCode::OK,
    };
    let mut out = http::Response::new(response.to_json().into_bytes());
    *out.status_mut() = status;
    out.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static(format.content_type()),
    );
    if let Some(policy) = &response.cache_policy
        && let Ok(value) = HeaderValue::from_str(&policy.header_value())
    {
        out.headers_mut().insert(CACHE_CONTROL, value);
    }
    out
}
