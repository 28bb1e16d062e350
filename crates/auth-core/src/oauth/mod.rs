//! OAuth 2.0 (RFC 6749) as sans-IO primitives: an authorization server ([`server`]) and a
//! client ([`client`]), both following the OAuth 2.0 Security Best Current Practice
//! (RFC 9700): authorization code with PKCE S256 only, exact redirect URI matching, `iss` in
//! authorization responses (RFC 9207), single-use codes, rotating refresh tokens. OpenID
//! Connect sits on top: ID tokens, UserInfo and discovery on the server
//! ([`server::AuthorizationServer::with_openid`]), `nonce`, ID token and UserInfo validation
//! on the client ([`client::OAuthClient::id_token`]), and what both share ([`IdTokenClaims`],
//! [`token_hash`], [`claims_for_scope`]).
//!
//! Nothing here performs IO: the server's methods take the request's parts and body bytes
//! and return ready `http::Response` values; the client builds `http::Request` values for
//! the caller to send and parses what comes back.
//!
//! ```
//! use auth_core::oauth::{code_challenge_s256, verifier_is_valid};
//!
//! // RFC 7636 appendix B.
//! let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
//! assert!(verifier_is_valid(verifier));
//! assert_eq!(code_challenge_s256(verifier), "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
//! ```

pub mod client;
mod id_token;
pub mod server;

pub use id_token::{
    ADDRESS_CLAIMS, EMAIL_CLAIMS, IdTokenClaims, PHONE_CLAIMS, PROFILE_CLAIMS, claims_for_scope,
    token_hash,
};

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::StatusCode;

use crate::random::random_token;

/// The longest value read for any one parameter, in bytes (`state` included). Longer values
/// are refused with `invalid_request`.
pub const MAX_PARAMETER_BYTES: usize = 2048;
/// The longest query string or form body read, in bytes.
pub const MAX_PARAMETERS_BYTES: usize = 16 * 1024;

/// The `error` codes of RFC 6749 sections 4.1.2.1 and 5.2, RFC 7009 section 2.2.1,
/// RFC 9101 section 6.3 and OpenID Connect Core 1.0 section 3.1.2.6.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// A parameter is missing, repeated, malformed or not allowed.
    InvalidRequest,
    /// Client authentication failed.
    InvalidClient,
    /// The code, refresh token or PKCE verifier is invalid, expired, revoked, already used,
    /// or was issued to another client or redirect URI.
    InvalidGrant,
    /// The client may not use this grant type or response type.
    UnauthorizedClient,
    /// The grant type is not supported.
    UnsupportedGrantType,
    /// The response type is not supported (only `code` is).
    UnsupportedResponseType,
    /// The scope is unknown or exceeds what the client or grant allows.
    InvalidScope,
    /// The resource owner or the server denied the request.
    AccessDenied,
    /// The server cannot revoke tokens of this type (RFC 7009).
    UnsupportedTokenType,
    /// `request` objects are not supported (RFC 9101).
    RequestNotSupported,
    /// `request_uri` is not supported (RFC 9101).
    RequestUriNotSupported,
    /// An unexpected condition on the server.
    ServerError,
    /// The server is overloaded or a store is unavailable.
    TemporarilyUnavailable,
    /// `prompt=none`, and the user is not logged in (OpenID Connect Core 1.0 section
    /// 3.1.2.6).
    LoginRequired,
    /// `prompt=none`, and the user has not consented to this client.
    ConsentRequired,
    /// `prompt=none`, and some other page would have to be shown.
    InteractionRequired,
}

impl ErrorCode {
    /// The code as it appears in `error`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidRequest => "invalid_request",
            ErrorCode::InvalidClient => "invalid_client",
            ErrorCode::InvalidGrant => "invalid_grant",
            ErrorCode::UnauthorizedClient => "unauthorized_client",
            ErrorCode::UnsupportedGrantType => "unsupported_grant_type",
            ErrorCode::UnsupportedResponseType => "unsupported_response_type",
            ErrorCode::InvalidScope => "invalid_scope",
            ErrorCode::AccessDenied => "access_denied",
            ErrorCode::UnsupportedTokenType => "unsupported_token_type",
            ErrorCode::RequestNotSupported => "request_not_supported",
            ErrorCode::RequestUriNotSupported => "request_uri_not_supported",
            ErrorCode::ServerError => "server_error",
            ErrorCode::TemporarilyUnavailable => "temporarily_unavailable",
            ErrorCode::LoginRequired => "login_required",
            ErrorCode::ConsentRequired => "consent_required",
            ErrorCode::InteractionRequired => "interaction_required",
        }
    }

    /// The status of a token, revocation or introspection endpoint response carrying this
    /// code (RFC 6749 section 5.2: 400, or 401 for client authentication failures).
    pub fn status(self) -> StatusCode {
        match self {
            ErrorCode::InvalidClient => StatusCode::UNAUTHORIZED,
            ErrorCode::ServerError => StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::TemporarilyUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::BAD_REQUEST,
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An OAuth protocol error: a code and a human-readable description (never containing a
/// secret or a token).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {description}")]
pub struct OAuthError {
    /// The RFC error code.
    pub code: ErrorCode,
    /// What was wrong, for the developer of the client.
    pub description: String,
}

impl OAuthError {
    /// An error with `code` and `description`.
    pub fn new(code: ErrorCode, description: impl Into<String>) -> Self {
        Self {
            code,
            description: description.into(),
        }
    }

    pub(crate) fn request(description: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidRequest, description)
    }

    pub(crate) fn grant(description: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidGrant, description)
    }

    /// A store failure: `temporarily_unavailable` when the store cannot be reached (fail
    /// closed), `server_error` otherwise.
    pub(crate) fn store(error: &crate::Error) -> Self {
        match error {
            crate::Error::StoreUnavailable(_) | crate::Error::StoreFull => {
                Self::new(ErrorCode::TemporarilyUnavailable, "a store is unavailable")
            }
            _ => Self::new(ErrorCode::ServerError, "internal error"),
        }
    }

    /// The JSON body of RFC 6749 section 5.2.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "error": self.code.as_str(),
            "error_description": description_text(&self.description),
        })
    }
}

/// `error_description` may only hold `%x20-21 / %x23-5B / %x5D-7E` (RFC 6749 section 5.2).
fn description_text(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '"' | '\\' => '\'',
            c if (' '..='~').contains(&c) => c,
            _ => '?',
        })
        .collect()
}

/// `BASE64URL(SHA256(ASCII(verifier)))`, the S256 code challenge (RFC 7636 section 4.2).
pub fn code_challenge_s256(verifier: &str) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, verifier.as_bytes());
    URL_SAFE_NO_PAD.encode(digest.as_ref())
}

/// True when `verifier` is 43 to 128 characters of `[A-Za-z0-9-._~]` (RFC 7636 section 4.1).
pub fn verifier_is_valid(verifier: &str) -> bool {
    (43..=128).contains(&verifier.len()) && verifier.bytes().all(is_unreserved)
}

/// True when `challenge` can be an S256 challenge: 43 base64url characters (a SHA-256
/// digest without padding).
pub(crate) fn challenge_is_valid(challenge: &str) -> bool {
    challenge.len() == 43
        && challenge
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// A new random PKCE verifier: 256 bits, 43 characters.
pub fn generate_verifier() -> crate::Result<String> {
    random_token()
}

/// A scope token is `%x21 / %x23-5B / %x5D-7E` (RFC 6749 section 3.3).
fn scope_token_is_valid(token: &str) -> bool {
    !token.is_empty()
        && token
            .bytes()
            .all(|b| b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b))
}

/// Splits a `scope` value into its tokens, refusing malformed ones and duplicates collapse.
pub(crate) fn parse_scope(scope: &str) -> Result<Vec<String>, OAuthError> {
    let mut tokens: Vec<String> = Vec::new();
    for token in scope.split(' ').filter(|token| !token.is_empty()) {
        if !scope_token_is_valid(token) {
            return Err(OAuthError::new(
                ErrorCode::InvalidScope,
                "scope holds a character RFC 6749 section 3.3 does not allow",
            ));
        }
        if !tokens.iter().any(|seen| seen == token) {
            tokens.push(token.to_owned());
        }
    }
    Ok(tokens)
}

/// Request parameters from a query string or a form body, each name at most once
/// (RFC 6749 section 3.1); empty values count as absent.
#[derive(Debug, Default)]
pub(crate) struct Params {
    pairs: Vec<(String, String)>,
}

impl Params {
    pub(crate) fn parse(input: &[u8]) -> Result<Self, OAuthError> {
        if input.len() > MAX_PARAMETERS_BYTES {
            return Err(OAuthError::request(format!(
                "the parameters are longer than {MAX_PARAMETERS_BYTES} bytes"
            )));
        }
        let mut pairs: Vec<(String, String)> = Vec::new();
        for (name, value) in form_urlencoded::parse(input) {
            if value.is_empty() {
                continue;
            }
            if value.len() > MAX_PARAMETER_BYTES {
                return Err(OAuthError::request(format!(
                    "parameter {} is longer than {MAX_PARAMETER_BYTES} bytes",
                    printable_name(&name)
                )));
            }
            if pairs.iter().any(|(seen, _)| *seen == name) {
                return Err(OAuthError::request(format!(
                    "parameter {} is repeated",
                    printable_name(&name)
                )));
            }
            pairs.push((name.into_owned(), value.into_owned()));
        }
        Ok(Self { pairs })
    }

    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    pub(crate) fn require(&self, name: &str) -> Result<&str, OAuthError> {
        self.get(name)
            .ok_or_else(|| OAuthError::request(format!("parameter {name} is missing")))
    }
}

fn printable_name(name: &str) -> String {
    let mut shown: String = name.chars().take(40).collect();
    shown = description_text(&shown);
    format!("`{shown}`")
}

/// Appends `pairs` to `uri`'s query (which may already have one).
pub(crate) fn append_query(uri: &str, pairs: &[(&str, &str)]) -> String {
    let mut serializer = form_urlencoded::Serializer::new(String::new());
    for (name, value) in pairs {
        serializer.append_pair(name, value);
    }
    let query = serializer.finish();
    let separator = if uri.contains('?') { '&' } else { '?' };
    if query.is_empty() {
        uri.to_owned()
    } else {
        format!("{uri}{separator}{query}")
    }
}

/// How a redirect URI may be used: the checks of RFC 9700 section 2.1 and RFC 8252
/// sections 7 and 8.3 at registration.
pub(crate) fn check_redirect_uri(uri: &str) -> crate::Result<()> {
    let bad = |why: &str| {
        Err(crate::Error::OAuthConfig(format!(
            "redirect URI {uri:?} {why}"
        )))
    };
    if uri.contains('#') {
        return bad("has a fragment (RFC 6749 section 3.1.2)");
    }
    let Ok(parsed) = url::Url::parse(uri) else {
        return bad("is not an absolute URI");
    };
    // The URL parser normalizes; a registered URI must already be in normal form so that the
    // exact string comparison at request time means what it says.
    if parsed.as_str() != uri && format!("{}/", uri) != parsed.as_str() {
        return bad("is not in normal form (write it as the URL parser prints it)");
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return bad("has user information");
    }
    match parsed.scheme() {
        "https" => Ok(()),
        "http" if loopback_literal(uri).is_some() => Ok(()),
        "http" => bad("uses http on a host that is not a loopback IP literal (RFC 9700 2.6)"),
        // Private-use schemes for native apps are reverse domain names (RFC 8252 7.1).
        scheme if scheme.contains('.') => Ok(()),
        _ => bad("uses a scheme other than https, loopback http or a private-use scheme"),
    }
}

/// For `http://127.0.0.1[:port]rest` or `http://[::1][:port]rest`: the parts before and
/// after the port.
pub(crate) fn loopback_literal(uri: &str) -> Option<(&'static str, &str)> {
    for host in ["http://127.0.0.1", "http://[::1]"] {
        if let Some(after) = uri.strip_prefix(host) {
            let rest = match after.strip_prefix(':') {
                Some(port_and_rest) => {
                    let digits = port_and_rest.bytes().take_while(u8::is_ascii_digit).count();
                    let (port, rest) = port_and_rest.split_at(digits);
                    port.parse::<u16>().ok()?;
                    rest
                }
                None => after,
            };
            if rest.is_empty() || rest.starts_with('/') || rest.starts_with('?') {
                return Some((host, rest));
            }
        }
    }
    None
}

/// Does `presented` match the registered URI? Exact string comparison, except that a
/// loopback `http` URI matches with any port (RFC 8252 section 7.3, RFC 9700 section 2.1).
pub(crate) fn redirect_uri_matches(registered: &str, presented: &str) -> bool {
    if registered == presented {
        return true;
    }
    match (loopback_literal(registered), loopback_literal(presented)) {
        (Some((host_a, rest_a)), Some((host_b, rest_b))) => host_a == host_b && rest_a == rest_b,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc7636_appendix_b() {
        // RFC 7636 appendix B: the verifier from 32 octets, and its S256 challenge.
        let octets: [u8; 32] = [
            116, 24, 223, 180, 151, 153, 224, 37, 79, 250, 96, 125, 216, 173, 187, 186, 22, 212,
            37, 77, 105, 214, 191, 240, 91, 88, 5, 88, 83, 132, 141, 121,
        ];
        let verifier = URL_SAFE_NO_PAD.encode(octets);
        assert_eq!(verifier, "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk");
        assert_eq!(
            code_challenge_s256(&verifier),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
        assert!(challenge_is_valid(&code_challenge_s256(&verifier)));
    }

    #[test]
    fn verifier_rules() {
        assert!(!verifier_is_valid(&"a".repeat(42)));
        assert!(verifier_is_valid(&"a".repeat(43)));
        assert!(verifier_is_valid(&"a".repeat(128)));
        assert!(!verifier_is_valid(&"a".repeat(129)));
        assert!(!verifier_is_valid(&format!("{}+", "a".repeat(43))));
        let generated = generate_verifier().unwrap();
        assert!(verifier_is_valid(&generated));
    }

    #[test]
    fn registration_rules() {
        for good in [
            "https://app.example/cb",
            "https://app.example/cb?x=1",
            "http://127.0.0.1/cb",
            "http://127.0.0.1:8080/cb",
            "http://[::1]:8080/cb",
            "com.example.app:/oauth",
        ] {
            check_redirect_uri(good).unwrap_or_else(|e| panic!("{good}: {e}"));
        }
        for bad in [
            "http://app.example/cb",
            "http://localhost/cb",
            "https://app.example/cb#frag",
            "https://user@app.example/cb",
            "https://app.example/a/../cb",
            "/relative",
            "javascript:alert(1)",
            "data:text/html,hi",
        ] {
            assert!(check_redirect_uri(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn matching_is_exact_except_loopback_ports() {
        let registered = "https://app.example/cb";
        for variant in [
            "https://app.example/cb/",
            "https://app.example/cb/extra",
            "https://app.example/cbx",
            "https://app.example/c",
            "https://evil.app.example/cb",
            "https://app.example.evil/cb",
            "https://user@app.example/cb",
            "https://app.example@evil/cb",
            "https://app.example/cb#x",
            "https://app.example/cb?x=1",
            "https://app.example/cb/%2e%2e/evil",
            "https://APP.example/cb",
            "http://app.example/cb",
            "https://app.example:443/cb",
        ] {
            assert!(!redirect_uri_matches(registered, variant), "{variant}");
        }
        assert!(redirect_uri_matches(registered, registered));
        let loopback = "http://127.0.0.1/cb";
        assert!(redirect_uri_matches(loopback, "http://127.0.0.1:53123/cb"));
        assert!(redirect_uri_matches(
            "http://127.0.0.1:8080/cb",
            "http://127.0.0.1:9/cb"
        ));
        for variant in [
            "http://127.0.0.1:99999/cb",
            "http://127.0.0.1:1/cb/x",
            "http://127.0.0.1:1/c",
            "http://127.0.0.1.evil/cb",
            "http://127.0.0.1:1@evil/cb",
            "http://[::1]:1/cb",
            "http://localhost:1/cb",
            "https://127.0.0.1:1/cb",
        ] {
            assert!(!redirect_uri_matches(loopback, variant), "{variant}");
        }
    }

    #[test]
    fn params_refuse_repeats_and_oversize() {
        let params = Params::parse(b"a=1&b=&c=%20x").unwrap();
        assert_eq!(params.get("a"), Some("1"));
        assert_eq!(params.get("b"), None);
        assert_eq!(params.get("c"), Some(" x"));
        let repeated = Params::parse(b"a=1&a=2").unwrap_err();
        assert_eq!(repeated.code, ErrorCode::InvalidRequest);
        let long = format!("a={}", "x".repeat(MAX_PARAMETER_BYTES + 1));
        assert_eq!(
            Params::parse(long.as_bytes()).unwrap_err().code,
            ErrorCode::InvalidRequest
        );
        let huge = "a".repeat(MAX_PARAMETERS_BYTES + 1);
        assert_eq!(
            Params::parse(huge.as_bytes()).unwrap_err().code,
            ErrorCode::InvalidRequest
        );
    }

    #[test]
    fn scopes() {
        assert_eq!(parse_scope("a  b a").unwrap(), ["a", "b"]);
        assert_eq!(
            parse_scope("a\"b").unwrap_err().code,
            ErrorCode::InvalidScope
        );
        assert_eq!(description_text("a\"b\\c\u{1}é"), "a'b'c??");
    }
}
