//! The server side of the opening handshake (RFC 6455 section 4.2) on `http` types: checks
//! an upgrade request and answers with a 101 response or a ready rejection.
//!
//! ```
//! use ws_core::{HandshakeConfig, accept};
//! let request = http::Request::get("/ws")
//!     .header("host", "example.com")
//!     .header("upgrade", "websocket")
//!     .header("connection", "Upgrade")
//!     .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
//!     .header("sec-websocket-version", "13")
//!     .body(())
//!     .unwrap();
//! let (parts, ()) = request.into_parts();
//! let accepted = accept(&parts, &HandshakeConfig::default()).unwrap();
//! assert_eq!(accepted.response.status(), 101);
//! assert_eq!(accepted.response.headers()["sec-websocket-accept"], "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
//! ```

use std::fmt;
use std::sync::Arc;

use http::{HeaderMap, HeaderValue, Method, Response, StatusCode, Version, header, request};

use crate::deflate::{DeflateConfig, DeflateParams};
use crate::error::{Error, Result};

/// Decides whether a request may open a WebSocket; `Err` becomes an ordinary 401/403.
pub type AuthHook = Arc<dyn Fn(&request::Parts) -> Result<()> + Send + Sync>;

/// What the server accepts in an opening handshake.
#[derive(Clone, Default)]
pub struct HandshakeConfig {
    allowed_origins: Option<Vec<String>>,
    protocols: Vec<String>,
    require_protocol: bool,
    deflate: Option<DeflateConfig>,
    auth: Option<AuthHook>,
}

impl fmt::Debug for HandshakeConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HandshakeConfig")
            .field("allowed_origins", &self.allowed_origins)
            .field("protocols", &self.protocols)
            .field("require_protocol", &self.require_protocol)
            .field("deflate", &self.deflate)
            .field("auth", &self.auth.is_some())
            .finish()
    }
}

impl HandshakeConfig {
    /// Accepts only these origins (exact, ASCII case-insensitive, e.g.
    /// `https://chat.example`); a request with another `Origin`, or none, gets 403.
    /// Without this call every origin is accepted (fine for non-browser clients only).
    #[must_use]
    pub fn allow_origins<I, S>(mut self, origins: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.allowed_origins = Some(origins.into_iter().map(Into::into).collect());
        self
    }

    /// Subprotocols the server speaks, most preferred first (RFC 6455 section 4.2.2, item 5).
    #[must_use]
    pub fn protocols<I, S>(mut self, protocols: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.protocols = protocols.into_iter().map(Into::into).collect();
        self
    }

    /// Refuses (400) clients that offer none of [`protocols`](Self::protocols).
    #[must_use]
    pub fn require_protocol(mut self, required: bool) -> Self {
        self.require_protocol = required;
        self
    }

    /// Negotiates permessage-deflate (RFC 7692) when the client offers it.
    #[must_use]
    pub fn deflate(mut self, config: DeflateConfig) -> Self {
        self.deflate = Some(config);
        self
    }

    /// Runs `hook` after the protocol checks; its `Err` ([`Error::Unauthorized`] or
    /// [`Error::Forbidden`]) is answered with 401 or 403.
    #[must_use]
    pub fn authorize<F>(mut self, hook: F) -> Self
    where
        F: Fn(&request::Parts) -> Result<()> + Send + Sync + 'static,
    {
        self.auth = Some(Arc::new(hook));
        self
    }
}

/// A successful handshake: the 101 response to send and what was negotiated.
#[derive(Debug)]
pub struct Accepted {
    /// The `101 Switching Protocols` response.
    pub response: Response<()>,
    /// The selected subprotocol, if any.
    pub protocol: Option<String>,
    /// The negotiated permessage-deflate parameters, if any.
    pub deflate: Option<DeflateParams>,
}

/// Checks an upgrade request (RFC 6455 section 4.2.1) and answers it.
///
/// Order of checks: method and HTTP version, `Upgrade`/`Connection`, version (426),
/// key, `Origin` (403), subprotocol, extensions, then the auth hook (401/403).
///
/// # Errors
///
/// A rejection; [`rejection_response`] turns it into the HTTP response to send.
pub fn accept(parts: &request::Parts, config: &HandshakeConfig) -> Result<Accepted> {
    if parts.method != Method::GET {
        return Err(Error::MethodNotGet(parts.method.to_string()));
    }
    if parts.version < Version::HTTP_11 {
        return Err(Error::HttpVersion);
    }
    let headers = &parts.headers;
    if !has_token(headers, &header::UPGRADE, "websocket") {
        return Err(Error::MissingUpgrade);
    }
    if !has_token(headers, &header::CONNECTION, "upgrade") {
        return Err(Error::MissingConnectionUpgrade);
    }
    let version = headers.get(header::SEC_WEBSOCKET_VERSION);
    if version.map(HeaderValue::as_bytes) != Some(b"13") {
        return Err(Error::UnsupportedVersion);
    }
    let key = single(headers, &header::SEC_WEBSOCKET_KEY).ok_or(Error::BadKey)?;
    // The key must decode to exactly 16 bytes (RFC 6455 section 4.2.1, item 5).
    match data_encoding::BASE64.decode(key.as_bytes()) {
        Ok(nonce) if nonce.len() == 16 => {}
        _ => return Err(Error::BadKey),
    }
    if let Some(allowed) = &config.allowed_origins {
        let origin = headers
            .get(header::ORIGIN)
            .and_then(|value| value.to_str().ok())
            .unwrap_or("");
        if !allowed.iter().any(|o| o.eq_ignore_ascii_case(origin)) {
            return Err(Error::OriginNotAllowed(origin.to_owned()));
        }
    }
    let protocol = select_protocol(headers, config)?;
    let deflate = match &config.deflate {
        Some(deflate) => crate::deflate::negotiate(headers, deflate)?,
        None => None,
    };
    if let Some(hook) = &config.auth {
        hook(parts)?;
    }

    let accept_key = tungstenite::handshake::derive_accept_key(key.as_bytes());
    let mut response = Response::new(());
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let out = response.headers_mut();
    out.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    out.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    if let Ok(value) = HeaderValue::from_str(&accept_key) {
        out.insert(header::SEC_WEBSOCKET_ACCEPT, value);
    }
    if let Some(protocol) = &protocol
        && let Ok(value) = HeaderValue::from_str(protocol)
    {
        out.insert(header::SEC_WEBSOCKET_PROTOCOL, value);
    }
    if let Some(params) = &deflate
        && let Ok(value) = HeaderValue::from_str(&params.response_header())
    {
        out.insert(header::SEC_WEBSOCKET_EXTENSIONS, value);
    }
    Ok(Accepted {
        response,
        protocol,
        deflate,
    })
}

/// The HTTP response for a handshake rejection: its status, the headers the status needs
/// (`Sec-WebSocket-Version: 13` with 426, `WWW-Authenticate` with 401, `Allow` with 405)
/// and a short plain-text reason.
pub fn rejection_response(error: &Error) -> Response<String> {
    let status = error.status();
    let mut response = Response::new(format!("{error}\n"));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    match error {
        Error::UnsupportedVersion => {
            headers.insert(
                header::SEC_WEBSOCKET_VERSION,
                HeaderValue::from_static("13"),
            );
        }
        Error::MethodNotGet(_) => {
            headers.insert(header::ALLOW, HeaderValue::from_static("GET"));
        }
        Error::Unauthorized {
            challenge: Some(challenge),
        } => {
            if let Ok(value) = HeaderValue::from_str(challenge) {
                headers.insert(header::WWW_AUTHENTICATE, value);
            }
        }
        _ => {}
    }
    response
}

/// Whether a comma-separated header (all its lines) holds `token`, ASCII case-insensitively.
fn has_token(headers: &HeaderMap, name: &header::HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|item| item.trim().eq_ignore_ascii_case(token))
}

/// The header's value when it occurs exactly once and is visible ASCII.
fn single<'a>(headers: &'a HeaderMap, name: &header::HeaderName) -> Option<&'a str> {
    let mut values = headers.get_all(name).iter();
    let first = values.next()?;
    if values.next().is_some() {
        return None;
    }
    first.to_str().ok().map(str::trim)
}

/// The first of the server's protocols the client offered (server preference).
fn select_protocol(headers: &HeaderMap, config: &HandshakeConfig) -> Result<Option<String>> {
    let mut offered = Vec::new();
    for value in headers.get_all(header::SEC_WEBSOCKET_PROTOCOL) {
        let value = value
            .to_str()
            .map_err(|_| Error::MalformedHeader("Sec-WebSocket-Protocol"))?;
        for item in value.split(',') {
            let item = item.trim();
            if item.is_empty() || !item.bytes().all(is_tchar) {
                return Err(Error::MalformedHeader("Sec-WebSocket-Protocol"));
            }
            offered.push(item);
        }
    }
    let chosen = config
        .protocols
        .iter()
        .find(|ours| offered.contains(&ours.as_str()))
        .cloned();
    if chosen.is_none() && config.require_protocol {
        return Err(Error::NoCommonSubprotocol);
    }
    Ok(chosen)
}

/// RFC 9110 section 5.6.2 token characters.
pub(crate) fn is_tchar(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    fn parts(extra: &[(&str, &str)]) -> request::Parts {
        let mut builder = http::Request::get("/ws")
            .header("host", "example.com")
            .header("upgrade", "websocket")
            .header("connection", "keep-alive, Upgrade")
            .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
            .header("sec-websocket-version", "13");
        for (name, value) in extra {
            builder = builder.header(*name, *value);
        }
        builder.body(()).unwrap().into_parts().0
    }

    #[test]
    fn rfc6455_sample_key_gives_the_sample_accept() {
        // RFC 6455 section 1.3's worked example.
        let accepted = accept(&parts(&[]), &HandshakeConfig::default()).unwrap();
        assert_eq!(
            accepted.response.headers()["sec-websocket-accept"],
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn short_key_is_400() {
        let mut p = parts(&[]);
        p.headers.insert(
            header::SEC_WEBSOCKET_KEY,
            HeaderValue::from_static("c2hvcnQ="),
        );
        let error = accept(&p, &HandshakeConfig::default()).unwrap_err();
        assert_eq!(error.status(), StatusCode::BAD_REQUEST);
    }

    #[test]
    fn two_keys_are_400() {
        let p = parts(&[("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")]);
        assert!(matches!(
            accept(&p, &HandshakeConfig::default()),
            Err(Error::BadKey)
        ));
    }
}
