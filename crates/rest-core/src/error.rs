//! The one error type of the crate and its mapping to HTTP statuses and problem details.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use serde_json::Value;

use crate::ProblemDetails;

/// A `Result` whose error is [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything rest-core rejects, each variant mapped to the HTTP status a client should see
/// ([`Error::status`]) and to an RFC 9457 problem body ([`Error::to_problem`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A route could not be added to the table: a bad template or a conflict with a route
    /// already there (a programming error found when the table is built; 500 if it escapes).
    #[error("route {route:?} cannot be added: {reason}")]
    RouteConflict {
        /// The template that was refused.
        route: String,
        /// Why.
        reason: String,
    },
    /// A configuration value refused at build time (CORS policy, cursor key, ...); 500.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// No route matches the path (404).
    #[error("no resource at this path")]
    NotFound,
    /// The path exists but not for this method (405); `allow` lists the methods it serves.
    #[error("method not allowed; allowed: {}", allow.to_str().unwrap_or(""))]
    MethodNotAllowed {
        /// The `Allow` header value (RFC 9110 section 10.2.1).
        allow: HeaderValue,
    },
    /// A path parameter is not valid UTF-8 after percent-decoding, or not of its type (400).
    #[error("path parameter {name:?} is invalid: {reason}")]
    InvalidPathParam {
        /// The parameter's name, when one parameter is at fault.
        name: String,
        /// Why.
        reason: String,
    },
    /// The query string could not be decoded into the expected type (400).
    #[error("invalid query string: {0}")]
    InvalidQuery(String),
    /// The query string is longer than the configured limit (414).
    #[error("query string of {len} bytes is over the limit of {limit}")]
    QueryTooLong {
        /// Its length in bytes.
        len: usize,
        /// The limit.
        limit: usize,
    },
    /// The body's `Content-Type` is missing or not one this endpoint reads (415).
    #[error("{}; expected {expected}", DescribeContentType(found.as_deref()))]
    UnsupportedMediaType {
        /// The `Content-Type` sent, if any.
        found: Option<String>,
        /// What the endpoint reads.
        expected: &'static str,
    },
    /// The body is larger than the configured limit (413).
    #[error("body is over the limit of {limit} bytes")]
    PayloadTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// The body is not well-formed JSON (400), with the position of the first error.
    #[error("malformed JSON at line {line}, column {column}: {reason}")]
    MalformedJson {
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// The parser's message.
        reason: String,
    },
    /// The JSON nests arrays and objects deeper than the configured limit (400).
    #[error("JSON nesting is deeper than {limit}")]
    JsonTooDeep {
        /// The limit.
        limit: usize,
    },
    /// Well-formed JSON that does not fit the expected type (422); `pointer` names the
    /// failing member as an RFC 6901 JSON pointer.
    #[error("invalid value at {pointer:?}: {reason}")]
    InvalidJson {
        /// RFC 6901 pointer to the failing member (`""` is the whole document).
        pointer: String,
        /// Why.
        reason: String,
    },
    /// None of the representations is acceptable to the client's `Accept` (406).
    #[error("none of the available media types is acceptable: {}", available.join(", "))]
    NotAcceptable {
        /// The media types the resource has.
        available: Vec<String>,
    },
    /// A precondition (`If-Match`, `If-Unmodified-Since`, `If-None-Match`) is false (412).
    #[error("precondition failed")]
    PreconditionFailed,
    /// The write must be conditional and carries no `If-Match` (428, RFC 6585 section 3).
    #[error("this request must be conditional: send If-Match with the current ETag")]
    PreconditionRequired,
    /// A request header is present but malformed (400).
    #[error("invalid {name} header: {reason}")]
    InvalidHeader {
        /// The header's name.
        name: &'static str,
        /// Why.
        reason: String,
    },
    /// A paging cursor is malformed, forged or from another key (400).
    #[error("invalid cursor")]
    InvalidCursor,
    /// A CORS preflight or request from an origin, method or header the policy refuses (403).
    #[error("CORS request refused: {0}")]
    CorsRejected(String),
    /// The `Idempotency-Key` was used before with a different request (422).
    #[error("the Idempotency-Key was already used for a different request")]
    IdempotencyKeyReused,
    /// A request with the same `Idempotency-Key` is still being processed (409).
    #[error("a request with this Idempotency-Key is still being processed")]
    IdempotencyKeyInProgress,
    /// The idempotency store is full of live entries (503).
    #[error("the idempotency store is full")]
    IdempotencyStoreFull,
    /// The idempotency store cannot be reached or answered garbage (503; the client may
    /// retry). The text is for logs, never sent to the client.
    #[error("the idempotency store is unavailable: {0}")]
    IdempotencyStoreUnavailable(String),
}

/// How a 415 message names what was sent: `content type "text/plain"`, or that there was
/// none (never Rust's `Some(..)`/`None`).
struct DescribeContentType<'a>(Option<&'a str>);

impl std::fmt::Display for DescribeContentType<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(found) => write!(f, "unsupported content type \"{}\"", found.escape_debug()),
            None => f.write_str("the request has no Content-Type"),
        }
    }
}

impl Error {
    /// The HTTP status this error maps to.
    #[must_use]
    pub fn status(&self) -> StatusCode {
        match self {
            Self::RouteConflict { .. } | Self::Config(_) => StatusCode::INTERNAL_SERVER_ERROR,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            Self::InvalidPathParam { .. }
            | Self::InvalidQuery(_)
            | Self::MalformedJson { .. }
            | Self::JsonTooDeep { .. }
            | Self::InvalidHeader { .. }
            | Self::InvalidCursor => StatusCode::BAD_REQUEST,
            Self::QueryTooLong { .. } => StatusCode::URI_TOO_LONG,
            Self::UnsupportedMediaType { .. } => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::InvalidJson { .. } | Self::IdempotencyKeyReused => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            Self::NotAcceptable { .. } => StatusCode::NOT_ACCEPTABLE,
            Self::PreconditionFailed => StatusCode::PRECONDITION_FAILED,
            Self::PreconditionRequired => StatusCode::PRECONDITION_REQUIRED,
            Self::CorsRejected(_) => StatusCode::FORBIDDEN,
            Self::IdempotencyKeyInProgress => StatusCode::CONFLICT,
            Self::IdempotencyStoreFull | Self::IdempotencyStoreUnavailable(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
        }
    }

    /// The RFC 9457 problem body for this error, with extension members where the error
    /// carries a location (`line`/`column`, `pointer`, `allow`, `available`).
    #[must_use]
    pub fn to_problem(&self) -> ProblemDetails {
        let status = self.status();
        // Configuration errors are the server's fault: the client learns nothing about them.
        let detail = match self {
            Self::IdempotencyStoreFull => self.to_string(),
            Self::IdempotencyStoreUnavailable(_) => {
                "the idempotency store is unavailable; retry later".to_owned()
            }
            _ if status.is_server_error() => "the server is misconfigured".to_owned(),
            _ => self.to_string(),
        };
        let problem = ProblemDetails::new(status).with_detail(detail);
        match self {
            Self::MalformedJson { line, column, .. } => problem
                .with_extension("line", Value::from(*line))
                .with_extension("column", Value::from(*column)),
            Self::InvalidJson { pointer, .. } => {
                problem.with_extension("pointer", Value::from(pointer.as_str()))
            }
            Self::InvalidPathParam { name, .. } => {
                problem.with_extension("parameter", Value::from(name.as_str()))
            }
            Self::MethodNotAllowed { allow } => {
                problem.with_extension("allow", Value::from(allow.to_str().unwrap_or("")))
            }
            Self::NotAcceptable { available } => problem.with_extension(
                "available",
                Value::from(available.iter().map(String::as_str).collect::<Vec<_>>()),
            ),
            _ => problem,
        }
    }

    /// A complete `application/problem+json` response, with `Allow` on a 405.
    #[must_use]
    pub fn to_response<B: From<Bytes>>(&self) -> Response<B> {
        let mut response = self.to_problem().to_response();
        if let Self::MethodNotAllowed { allow } = self {
            response.headers_mut().insert(header::ALLOW, allow.clone());
        }
        response
    }
}
