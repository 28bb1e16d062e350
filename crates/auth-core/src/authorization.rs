//! The `Authorization` request header (RFC 9110 section 11.6.2) with the Bearer (RFC 6750)
//! and Basic (RFC 7617) schemes, and the `WWW-Authenticate` challenges that answer them.
//!
//! ```
//! use auth_core::{BearerChallenge, BearerError, Credentials, credentials};
//! use http::{HeaderMap, HeaderValue, StatusCode, header::AUTHORIZATION};
//!
//! let mut headers = HeaderMap::new();
//! headers.insert(AUTHORIZATION, HeaderValue::from_static("Basic YWxhZGRpbjpvcGVuc2VzYW1l"));
//! match credentials(&headers).unwrap() {
//!     Some(Credentials::Basic { username, password }) => {
//!         assert_eq!((username.as_str(), password.as_str()), ("aladdin", "opensesame"));
//!     }
//!     other => panic!("{other:?}"),
//! }
//!
//! let response = BearerChallenge::new()
//!     .realm("api")
//!     .error(BearerError::InvalidToken, "the token has expired")
//!     .response();
//! assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
//! assert_eq!(
//!     response.headers()["www-authenticate"],
//!     r#"Bearer realm="api", error="invalid_token", error_description="the token has expired""#
//! );
//! ```

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use http::{HeaderMap, HeaderValue, Response, StatusCode};

use crate::{Error, Result};

/// The largest `Authorization` value read, in bytes.
pub const MAX_AUTHORIZATION_BYTES: usize = 16 * 1024;

/// Credentials carried by an `Authorization` header.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Credentials {
    /// `Bearer <token>` (RFC 6750 section 2.1).
    Bearer(String),
    /// `Basic <base64(user-id ":" password)>` (RFC 7617), decoded as UTF-8.
    Basic {
        /// The user-id (never contains `:`).
        username: String,
        /// The password (may contain `:`).
        password: String,
    },
    /// Any other scheme, lower-cased, with its raw parameters.
    Other {
        /// The scheme name in lower case.
        scheme: String,
        /// Everything after the scheme.
        parameters: String,
    },
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print secrets.
        match self {
            Credentials::Bearer(_) => f.write_str("Bearer(<redacted>)"),
            Credentials::Basic { username, .. } => f
                .debug_struct("Basic")
                .field("username", username)
                .field("password", &"<redacted>")
                .finish(),
            Credentials::Other { scheme, .. } => f
                .debug_struct("Other")
                .field("scheme", scheme)
                .finish_non_exhaustive(),
        }
    }
}

/// Reads the request's credentials: `Ok(None)` when there is no `Authorization` header, an
/// [`Error::InvalidAuthorization`] (400, `invalid_request`) when it is repeated, too long,
/// not visible ASCII, or malformed for its scheme.
pub fn credentials(headers: &HeaderMap) -> Result<Option<Credentials>> {
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(Error::InvalidAuthorization(
            "more than one Authorization header",
        ));
    }
    if value.len() > MAX_AUTHORIZATION_BYTES {
        return Err(Error::InvalidAuthorization(
            "Authorization header is too long",
        ));
    }
    let value = value
        .to_str()
        .map_err(|_| Error::InvalidAuthorization("Authorization header is not visible ASCII"))?;
    let value = value.trim_matches(|c| c == ' ' || c == '\t');
    let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
    let rest = rest.trim_start_matches(' ');
    if scheme.is_empty() || !scheme.bytes().all(is_tchar) {
        return Err(Error::InvalidAuthorization(
            "malformed authentication scheme",
        ));
    }
    if scheme.eq_ignore_ascii_case("bearer") {
        if !is_token68(rest) {
            return Err(Error::InvalidAuthorization(
                "Bearer credentials are not a token68",
            ));
        }
        return Ok(Some(Credentials::Bearer(rest.to_owned())));
    }
    if scheme.eq_ignore_ascii_case("basic") {
        let decoded = STANDARD
            .decode(rest)
            .map_err(|_| Error::InvalidAuthorization("Basic credentials are not base64"))?;
        let decoded = String::from_utf8(decoded)
            .map_err(|_| Error::InvalidAuthorization("Basic credentials are not UTF-8"))?;
        let (username, password) = decoded
            .split_once(':')
            .ok_or(Error::InvalidAuthorization("Basic credentials have no ':'"))?;
        if username
            .chars()
            .chain(password.chars())
            .any(char::is_control)
        {
            return Err(Error::InvalidAuthorization(
                "Basic credentials contain control characters",
            ));
        }
        return Ok(Some(Credentials::Basic {
            username: username.to_owned(),
            password: password.to_owned(),
        }));
    }
    Ok(Some(Credentials::Other {
        scheme: scheme.to_ascii_lowercase(),
        parameters: rest.to_owned(),
    }))
}

/// The bearer token of the request, if it has one (other schemes read as `None`).
pub fn bearer_token(headers: &HeaderMap) -> Result<Option<String>> {
    Ok(match credentials(headers)? {
        Some(Credentials::Bearer(token)) => Some(token),
        _ => None,
    })
}

/// RFC 9110 section 5.6.2 `tchar`.
fn is_tchar(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte)
}

/// RFC 6750 section 2.1 `b64token`: `1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`.
fn is_token68(value: &str) -> bool {
    let body = value.trim_end_matches('=');
    !body.is_empty()
        && body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b))
}

/// The error codes of RFC 6750 section 3.1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BearerError {
    /// The request is malformed (400).
    InvalidRequest,
    /// The token is expired, revoked, malformed or otherwise invalid (401).
    InvalidToken,
    /// The token lacks the scope the resource needs (403).
    InsufficientScope,
}

impl BearerError {
    /// The `error` attribute value.
    pub fn code(self) -> &'static str {
        match self {
            BearerError::InvalidRequest => "invalid_request",
            BearerError::InvalidToken => "invalid_token",
            BearerError::InsufficientScope => "insufficient_scope",
        }
    }

    /// The status RFC 6750 section 3.1 gives the error.
    pub fn status(self) -> StatusCode {
        match self {
            BearerError::InvalidRequest => StatusCode::BAD_REQUEST,
            BearerError::InvalidToken => StatusCode::UNAUTHORIZED,
            BearerError::InsufficientScope => StatusCode::FORBIDDEN,
        }
    }

    /// The bearer error for an auth-core error met while authenticating a request, if the
    /// error is the client's (`None` for server-side failures such as a store outage).
    pub fn for_error(error: &Error) -> Option<Self> {
        match error.status() {
            StatusCode::BAD_REQUEST => Some(BearerError::InvalidRequest),
            StatusCode::UNAUTHORIZED => Some(BearerError::InvalidToken),
            StatusCode::FORBIDDEN => Some(BearerError::InsufficientScope),
            _ => None,
        }
    }
}

/// A `WWW-Authenticate: Bearer ...` challenge (RFC 6750 section 3).
#[derive(Debug, Clone, Default)]
pub struct BearerChallenge {
    realm: Option<String>,
    scope: Option<String>,
    error: Option<(BearerError, String)>,
}

impl BearerChallenge {
    /// A challenge with no attributes: "credentials are needed" (401).
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets `realm`.
    pub fn realm(mut self, realm: impl Into<String>) -> Self {
        self.realm = Some(realm.into());
        self
    }

    /// Sets `scope`, the scopes the resource needs (space-separated).
    pub fn scope(mut self, scope: impl Into<String>) -> Self {
        self.scope = Some(scope.into());
        self
    }

    /// Sets `error` and `error_description`. The description is for developers; characters
    /// RFC 6750 does not allow in it (`"`, `\`, non-ASCII, controls) are dropped.
    pub fn error(mut self, error: BearerError, description: impl Into<String>) -> Self {
        self.error = Some((error, description.into()));
        self
    }

    /// The status of the response that carries this challenge.
    pub fn status(&self) -> StatusCode {
        self.error
            .as_ref()
            .map_or(StatusCode::UNAUTHORIZED, |(error, _)| error.status())
    }

    /// The `WWW-Authenticate` value.
    pub fn header_value(&self) -> HeaderValue {
        let mut attributes = Vec::new();
        if let Some(realm) = &self.realm {
            attributes.push(format!("realm=\"{}\"", attribute_text(realm)));
        }
        if let Some(scope) = &self.scope {
            attributes.push(format!("scope=\"{}\"", attribute_text(scope)));
        }
        if let Some((error, description)) = &self.error {
            attributes.push(format!("error=\"{}\"", error.code()));
            if !description.is_empty() {
                attributes.push(format!(
                    "error_description=\"{}\"",
                    attribute_text(description)
                ));
            }
        }
        let value = if attributes.is_empty() {
            "Bearer".to_owned()
        } else {
            format!("Bearer {}", attributes.join(", "))
        };
        // attribute_text keeps only visible ASCII and spaces, so this cannot fail.
        HeaderValue::from_str(&value).unwrap_or_else(|_| HeaderValue::from_static("Bearer"))
    }

    /// An empty response with the status and the `WWW-Authenticate` header.
    pub fn response(&self) -> Response<()> {
        let mut response = Response::new(());
        *response.status_mut() = self.status();
        response
            .headers_mut()
            .insert(WWW_AUTHENTICATE, self.header_value());
        response
    }
}

/// `WWW-Authenticate: Basic realm="...", charset="UTF-8"` (RFC 7617 section 2.1), in a 401.
pub fn basic_challenge(realm: &str) -> Response<()> {
    let mut response = Response::new(());
    *response.status_mut() = StatusCode::UNAUTHORIZED;
    let value = format!(
        "Basic realm=\"{}\", charset=\"UTF-8\"",
        attribute_text(realm)
    );
    if let Ok(value) = HeaderValue::from_str(&value) {
        response.headers_mut().insert(WWW_AUTHENTICATE, value);
    }
    response
}

/// RFC 6750 section 3: attribute values are `%x20-21 / %x23-5B / %x5D-7E`.
fn attribute_text(text: &str) -> String {
    text.chars()
        .filter(|&c| c == ' ' || (c.is_ascii_graphic() && c != '"' && c != '\\'))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(values: &[&[u8]]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for value in values {
            map.append(AUTHORIZATION, HeaderValue::from_bytes(value).unwrap());
        }
        map
    }

    fn parse(value: &[u8]) -> Result<Option<Credentials>> {
        credentials(&headers(&[value]))
    }

    #[test]
    fn bearer_tokens() {
        assert_eq!(
            parse(b"Bearer mF_9.B5f-4.1JqM").unwrap(),
            Some(Credentials::Bearer("mF_9.B5f-4.1JqM".into()))
        );
        assert_eq!(
            parse(b"bEaReR abc/+~==").unwrap(),
            Some(Credentials::Bearer("abc/+~==".into()))
        );
        for bad in [
            &b"Bearer"[..],
            b"Bearer ",
            b"Bearer a b",
            b"Bearer =abc",
            b"Bearer a=b",
            b"Bearer \"x\"",
        ] {
            assert!(
                matches!(parse(bad), Err(Error::InvalidAuthorization(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn basic_credentials() {
        // RFC 7617 section 2: Aladdin / open sesame.
        assert_eq!(
            parse(b"Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==").unwrap(),
            Some(Credentials::Basic {
                username: "Aladdin".into(),
                password: "open sesame".into()
            })
        );
        // RFC 7617 section 2.1: UTF-8, "test" / "123£".
        assert_eq!(
            parse(b"Basic dGVzdDoxMjPCow==").unwrap(),
            Some(Credentials::Basic {
                username: "test".into(),
                password: "123\u{a3}".into()
            })
        );
        // Passwords may contain ':'.
        let value = format!("Basic {}", STANDARD.encode("u:p:q"));
        assert!(matches!(
            parse(value.as_bytes()).unwrap(),
            Some(Credentials::Basic { password, .. }) if password == "p:q"
        ));
        for bad in [
            format!("Basic {}", STANDARD.encode("no-colon")),
            format!("Basic {}", STANDARD.encode([0xff, b':', 0xfe])),
            format!("Basic {}", STANDARD.encode("a\u{0}:b")),
            "Basic !!!".into(),
        ] {
            assert!(
                matches!(parse(bad.as_bytes()), Err(Error::InvalidAuthorization(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn other_schemes_missing_repeated_and_garbage() {
        assert_eq!(credentials(&HeaderMap::new()).unwrap(), None);
        assert!(matches!(
            parse(b"Digest username=\"x\"").unwrap(),
            Some(Credentials::Other { scheme, .. }) if scheme == "digest"
        ));
        assert!(matches!(
            credentials(&headers(&[b"Bearer a", b"Bearer b"])),
            Err(Error::InvalidAuthorization(_))
        ));
        assert!(matches!(
            parse(b"Bearer \xff\xfe"),
            Err(Error::InvalidAuthorization(_))
        ));
        assert!(matches!(
            parse(b"(bad) x"),
            Err(Error::InvalidAuthorization(_))
        ));
        let long = format!("Bearer {}", "a".repeat(MAX_AUTHORIZATION_BYTES));
        assert!(matches!(
            parse(long.as_bytes()),
            Err(Error::InvalidAuthorization(_))
        ));
        assert!(!format!("{:?}", parse(b"Bearer secret").unwrap()).contains("secret"));
    }

    #[test]
    fn challenges() {
        assert_eq!(BearerChallenge::new().header_value(), "Bearer");
        let challenge = BearerChallenge::new()
            .realm("example")
            .scope("read write")
            .error(BearerError::InsufficientScope, "needs \"write\"\\");
        assert_eq!(challenge.status(), StatusCode::FORBIDDEN);
        assert_eq!(
            challenge.header_value(),
            r#"Bearer realm="example", scope="read write", error="insufficient_scope", error_description="needs write""#
        );
        let request = BearerChallenge::new().error(BearerError::InvalidRequest, "");
        assert_eq!(request.response().status(), StatusCode::BAD_REQUEST);
        let basic = basic_challenge("staff");
        assert_eq!(basic.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            basic.headers()[WWW_AUTHENTICATE],
            r#"Basic realm="staff", charset="UTF-8""#
        );
        assert_eq!(
            BearerError::for_error(&Error::Expired),
            Some(BearerError::InvalidToken)
        );
        assert_eq!(
            BearerError::for_error(&Error::StoreUnavailable("down".into())),
            None
        );
    }
}
