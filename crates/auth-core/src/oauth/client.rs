//! An OAuth 2.0 client for the authorization code grant with PKCE S256: it builds the
//! authorization URL, checks the callback (`state`, `iss`, errors), and builds the token,
//! refresh and revocation requests as `http::Request` values for the caller to send with
//! any HTTP client. Token responses and server metadata are parsed leniently where real
//! providers deviate (`expires_in` as a string, `token_type: "bearer"`, `scope` as an array).
//!
//! ```
//! use auth_core::oauth::client::{OAuthClient, ServerMetadata, parse_token_response};
//! use http::StatusCode;
//!
//! # fn main() -> auth_core::Result<()> {
//! let metadata = ServerMetadata::parse(
//!     br#"{"issuer":"https://id.example","authorization_endpoint":"https://id.example/authorize",
//!         "token_endpoint":"https://id.example/token","code_challenge_methods_supported":["S256"],
//!         "authorization_response_iss_parameter_supported":true}"#,
//!     "https://id.example",
//! )?;
//! let client = OAuthClient::new(metadata, "app", "https://app.example/cb");
//! let (url, pending) = client.authorization_url(&["profile"])?;
//! assert!(url.starts_with("https://id.example/authorize?response_type=code&client_id=app"));
//! assert!(url.contains("code_challenge_method=S256"));
//!
//! // Keep `pending` in the user's session; the browser comes back to the redirect URI:
//! let callback = format!("code=abc&state={}&iss=https%3A%2F%2Fid.example", pending.state());
//! let code = client.callback(&pending, &callback)?;
//! let request = client.token_request(&code, &pending)?;
//! assert_eq!(request.uri(), "https://id.example/token");
//!
//! // ... send it; then:
//! let tokens = parse_token_response(
//!     StatusCode::OK,
//!     br#"{"access_token":"t","token_type":"bearer","expires_in":"3600"}"#,
//! )?;
//! assert_eq!(tokens.expires_in.map(|d| d.as_secs()), Some(3600));
//! # Ok(())
//! # }
//! ```

use std::fmt;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use http::{HeaderValue, Method, Request, StatusCode};
use serde::{Deserialize, Serialize};

use super::{Params, append_query, code_challenge_s256, generate_verifier};
use crate::random::{constant_time_eq, random_token};
use crate::{Error, Result};

/// The largest token response or metadata document read, in bytes.
pub const MAX_RESPONSE_BYTES: usize = 64 * 1024;
/// The default clock-skew allowance for ID tokens: a minute, as the provider's clock is
/// not this server's.
pub const DEFAULT_ID_TOKEN_LEEWAY: Duration = Duration::from_secs(60);

mod openid;

pub use openid::{UserInfo, parse_userinfo_response};

/// What a client needs to know about an authorization server (RFC 8414 section 2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerMetadata {
    /// The issuer identifier.
    pub issuer: String,
    /// Where the browser goes.
    pub authorization_endpoint: String,
    /// Where codes and refresh tokens are exchanged.
    pub token_endpoint: String,
    /// RFC 7009 revocation, if offered.
    #[serde(default)]
    pub revocation_endpoint: Option<String>,
    /// RFC 7662 introspection, if offered.
    #[serde(default)]
    pub introspection_endpoint: Option<String>,
    /// The JWK Set, if any.
    #[serde(default)]
    pub jwks_uri: Option<String>,
    /// PKCE methods; this client needs `S256`.
    #[serde(default)]
    pub code_challenge_methods_supported: Vec<String>,
    /// Whether the server sends `iss` in authorization responses (RFC 9207); when it does,
    /// a callback without it is refused.
    #[serde(default)]
    pub authorization_response_iss_parameter_supported: bool,
    /// OpenID Connect: the UserInfo endpoint, if offered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub userinfo_endpoint: Option<String>,
    /// The scopes the server lists (`openid` for an OpenID Provider).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scopes_supported: Vec<String>,
    /// OpenID Connect: the algorithms ID tokens are signed with.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub id_token_signing_alg_values_supported: Vec<String>,
}

impl ServerMetadata {
    /// The metadata URL of `issuer`: `/.well-known/oauth-authorization-server` inserted
    /// between the host and the issuer's path (RFC 8414 section 3.1).
    pub fn well_known_uri(issuer: &str) -> Result<String> {
        let parsed = url::Url::parse(issuer)
            .map_err(|_| Error::OAuthConfig(format!("issuer {issuer:?} is not a URL")))?;
        let path = parsed.path().trim_end_matches('/');
        let mut origin = parsed.origin().ascii_serialization();
        origin.push_str("/.well-known/oauth-authorization-server");
        origin.push_str(path);
        Ok(origin)
    }

    /// A `GET` for the metadata of `issuer`.
    pub fn request(issuer: &str) -> Result<Request<Vec<u8>>> {
        get_json(&Self::well_known_uri(issuer)?)
    }

    /// The OpenID Connect discovery URL of `issuer`: `/.well-known/openid-configuration`
    /// appended to the issuer, path included (OpenID Connect Discovery 1.0 section 4).
    pub fn openid_configuration_uri(issuer: &str) -> Result<String> {
        url::Url::parse(issuer)
            .map_err(|_| Error::OAuthConfig(format!("issuer {issuer:?} is not a URL")))?;
        Ok(format!(
            "{}/.well-known/openid-configuration",
            issuer.trim_end_matches('/')
        ))
    }

    /// A `GET` for the OpenID Connect discovery document of `issuer`; read the answer with
    /// [`ServerMetadata::parse`] (the `issuer` must match just the same, Discovery 1.0
    /// section 4.3).
    pub fn openid_request(issuer: &str) -> Result<Request<Vec<u8>>> {
        get_json(&Self::openid_configuration_uri(issuer)?)
    }

    /// A `GET` for the server's JWK Set (read it with [`KeySet::from_jwks`](crate::KeySet::from_jwks)).
    pub fn jwks_request(&self) -> Result<Request<Vec<u8>>> {
        let uri = self
            .jwks_uri
            .as_deref()
            .ok_or_else(|| Error::OAuthConfig("the server has no jwks_uri".into()))?;
        get_json(uri)
    }

    /// True when the server is an OpenID Provider: it has a JWK Set and a UserInfo endpoint,
    /// and lists `openid` among its scopes when it lists scopes.
    pub fn is_openid_provider(&self) -> bool {
        self.jwks_uri.is_some()
            && self.userinfo_endpoint.is_some()
            && (self.scopes_supported.is_empty()
                || self.scopes_supported.iter().any(|scope| scope == "openid"))
    }

    /// Reads a metadata document, requiring its `issuer` to be `expected_issuer` exactly
    /// (RFC 8414 section 3.3; this is what stops a mix-up through forged metadata).
    pub fn parse(body: &[u8], expected_issuer: &str) -> Result<Self> {
        if body.len() > MAX_RESPONSE_BYTES {
            return Err(Error::OAuthMalformed(
                "the metadata document is too large".into(),
            ));
        }
        let metadata: Self = serde_json::from_slice(body)
            .map_err(|error| Error::OAuthMalformed(format!("metadata: {error}")))?;
        if metadata.issuer != expected_issuer {
            return Err(Error::OAuthIssuerMismatch);
        }
        let optional = [&metadata.jwks_uri, &metadata.userinfo_endpoint];
        let endpoints = [&metadata.authorization_endpoint, &metadata.token_endpoint]
            .into_iter()
            .chain(optional.into_iter().flatten());
        for endpoint in endpoints {
            let parsed = url::Url::parse(endpoint).map_err(|_| {
                Error::OAuthMalformed(format!("endpoint {endpoint:?} is not a URL"))
            })?;
            let loopback = matches!(parsed.host(), Some(url::Host::Ipv4(ip)) if ip.is_loopback())
                || matches!(parsed.host(), Some(url::Host::Ipv6(ip)) if ip.is_loopback())
                || parsed.host_str() == Some("localhost");
            if parsed.scheme() != "https" && !(parsed.scheme() == "http" && loopback) {
                return Err(Error::OAuthMalformed(format!(
                    "endpoint {endpoint:?} is not https"
                )));
            }
        }
        Ok(metadata)
    }
}

fn get_json(uri: &str) -> Result<Request<Vec<u8>>> {
    Request::get(uri)
        .header(ACCEPT, "application/json")
        .body(Vec::new())
        .map_err(|error| Error::OAuthConfig(error.to_string()))
}

/// How the client authenticates at the token endpoint.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClientAuth {
    /// A public client: `client_id` in the body.
    None,
    /// `client_secret_basic`.
    Basic(String),
    /// `client_secret_post`.
    Post(String),
}

impl fmt::Debug for ClientAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ClientAuth::None => "None",
            ClientAuth::Basic(_) => "Basic(<redacted>)",
            ClientAuth::Post(_) => "Post(<redacted>)",
        })
    }
}

/// An authorization in progress: what the client must remember between sending the user to
/// the server and the callback. Keep it server-side (in the session) and use it once.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingAuthorization {
    state: String,
    code_verifier: String,
    redirect_uri: String,
    issuer: String,
    /// OpenID Connect: the `nonce` sent (when the scope had `openid`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    nonce: Option<String>,
}

impl fmt::Debug for PendingAuthorization {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PendingAuthorization")
            .field("redirect_uri", &self.redirect_uri)
            .field("issuer", &self.issuer)
            .finish_non_exhaustive()
    }
}

impl PendingAuthorization {
    /// The `state` sent (256 random bits).
    pub fn state(&self) -> &str {
        &self.state
    }

    /// The PKCE verifier (a secret: never send it to the browser).
    pub fn code_verifier(&self) -> &str {
        &self.code_verifier
    }

    /// The OpenID Connect `nonce` sent (256 random bits), when the scope had `openid`; the
    /// ID token must carry it.
    pub fn nonce(&self) -> Option<&str> {
        self.nonce.as_deref()
    }
}

/// A client of one authorization server.
#[derive(Debug, Clone)]
pub struct OAuthClient {
    metadata: ServerMetadata,
    client_id: String,
    auth: ClientAuth,
    redirect_uri: String,
    leeway: Duration,
}

impl OAuthClient {
    /// A public client with `client_id` and `redirect_uri`.
    pub fn new(
        metadata: ServerMetadata,
        client_id: impl Into<String>,
        redirect_uri: impl Into<String>,
    ) -> Self {
        Self {
            metadata,
            client_id: client_id.into(),
            auth: ClientAuth::None,
            redirect_uri: redirect_uri.into(),
            leeway: DEFAULT_ID_TOKEN_LEEWAY,
        }
    }

    /// The clock-skew allowance for ID token `exp` and `iat` (default
    /// [`DEFAULT_ID_TOKEN_LEEWAY`]).
    pub fn with_leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// The client id.
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// How the client authenticates (default [`ClientAuth::None`]).
    pub fn with_auth(mut self, auth: ClientAuth) -> Self {
        self.auth = auth;
        self
    }

    /// The server's metadata.
    pub fn metadata(&self) -> &ServerMetadata {
        &self.metadata
    }

    /// The URL to send the user to, and what to remember until the callback. A new random
    /// `state` and PKCE verifier each time (RFC 9700 section 2.1.1), and a new `nonce` when
    /// `scope` has `openid` (OpenID Connect Core 1.0 section 3.1.2.1).
    pub fn authorization_url(&self, scope: &[&str]) -> Result<(String, PendingAuthorization)> {
        if !self.metadata.code_challenge_methods_supported.is_empty()
            && !self
                .metadata
                .code_challenge_methods_supported
                .iter()
                .any(|method| method == "S256")
        {
            return Err(Error::OAuthConfig(
                "the server does not list S256 among its PKCE methods".into(),
            ));
        }
        let pending = PendingAuthorization {
            state: random_token()?,
            code_verifier: generate_verifier()?,
            redirect_uri: self.redirect_uri.clone(),
            issuer: self.metadata.issuer.clone(),
            nonce: if scope.contains(&"openid") {
                Some(random_token()?)
            } else {
                None
            },
        };
        let challenge = code_challenge_s256(&pending.code_verifier);
        let scope = scope.join(" ");
        let mut pairs = vec![
            ("response_type", "code"),
            ("client_id", self.client_id.as_str()),
            ("redirect_uri", self.redirect_uri.as_str()),
        ];
        if !scope.is_empty() {
            pairs.push(("scope", &scope));
        }
        pairs.extend([
            ("state", pending.state.as_str()),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
        ]);
        if let Some(nonce) = &pending.nonce {
            pairs.push(("nonce", nonce));
        }
        let url = append_query(&self.metadata.authorization_endpoint, &pairs);
        Ok((url, pending))
    }

    /// Checks the callback's query string (without `?`) against `pending` and returns the
    /// code. In order: `state` must be present and equal ([`Error::OAuthStateMismatch`]
    /// otherwise, before anything else is believed); `iss` must equal the issuer when present,
    /// and be present when the server advertises it ([`Error::OAuthIssuerMismatch`]); an
    /// `error` becomes [`Error::OAuthServer`].
    pub fn callback(&self, pending: &PendingAuthorization, query: &str) -> Result<String> {
        let params = Params::parse(query.as_bytes())
            .map_err(|error| Error::OAuthMalformed(error.description))?;
        let state = params.get("state").ok_or(Error::OAuthStateMismatch)?;
        if !constant_time_eq(state.as_bytes(), pending.state.as_bytes()) {
            return Err(Error::OAuthStateMismatch);
        }
        match params.get("iss") {
            Some(iss) if iss != pending.issuer => return Err(Error::OAuthIssuerMismatch),
            None if self.metadata.authorization_response_iss_parameter_supported => {
                return Err(Error::OAuthIssuerMismatch);
            }
            _ => {}
        }
        if let Some(error) = params.get("error") {
            return Err(Error::OAuthServer {
                error: error.to_owned(),
                description: params.get("error_description").map(str::to_owned),
            });
        }
        params
            .get("code")
            .map(str::to_owned)
            .ok_or_else(|| Error::OAuthMalformed("the callback has no code".into()))
    }

    /// The token request that exchanges `code` (RFC 6749 section 4.1.3 with the verifier).
    pub fn token_request(
        &self,
        code: &str,
        pending: &PendingAuthorization,
    ) -> Result<Request<Vec<u8>>> {
        self.post(
            &self.metadata.token_endpoint,
            &[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", &pending.redirect_uri),
                ("code_verifier", &pending.code_verifier),
            ],
        )
    }

    /// A refresh request (RFC 6749 section 6), optionally narrowing the scope.
    pub fn refresh_request(
        &self,
        refresh_token: &str,
        scope: Option<&[&str]>,
    ) -> Result<Request<Vec<u8>>> {
        let scope = scope.map(|scope| scope.join(" "));
        let mut pairs = vec![
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
        ];
        if let Some(scope) = &scope {
            pairs.push(("scope", scope));
        }
        self.post(&self.metadata.token_endpoint, &pairs)
    }

    /// A client credentials request (RFC 6749 section 4.4.2); confidential clients only.
    pub fn client_credentials_request(&self, scope: &[&str]) -> Result<Request<Vec<u8>>> {
        let scope = scope.join(" ");
        let mut pairs = vec![("grant_type", "client_credentials")];
        if !scope.is_empty() {
            pairs.push(("scope", &scope));
        }
        self.post(&self.metadata.token_endpoint, &pairs)
    }

    /// A revocation request (RFC 7009 section 2.1) with an optional `token_type_hint`.
    pub fn revocation_request(
        &self,
        token: &str,
        token_type_hint: Option<&str>,
    ) -> Result<Request<Vec<u8>>> {
        let endpoint = self
            .metadata
            .revocation_endpoint
            .as_deref()
            .ok_or_else(|| Error::OAuthConfig("the server has no revocation endpoint".into()))?;
        let mut pairs = vec![("token", token)];
        if let Some(hint) = token_type_hint {
            pairs.push(("token_type_hint", hint));
        }
        self.post(endpoint, &pairs)
    }

    fn post(&self, endpoint: &str, pairs: &[(&str, &str)]) -> Result<Request<Vec<u8>>> {
        let mut form = form_urlencoded::Serializer::new(String::new());
        for (name, value) in pairs {
            form.append_pair(name, value);
        }
        let mut builder = Request::builder()
            .method(Method::POST)
            .uri(endpoint)
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(ACCEPT, "application/json");
        match &self.auth {
            ClientAuth::None => {
                form.append_pair("client_id", &self.client_id);
            }
            ClientAuth::Post(secret) => {
                form.append_pair("client_id", &self.client_id);
                form.append_pair("client_secret", secret);
            }
            ClientAuth::Basic(secret) => {
                // RFC 6749 section 2.3.1: form-urlencode each part, then Basic.
                let encode = |text: &str| {
                    form_urlencoded::byte_serialize(text.as_bytes()).collect::<String>()
                };
                let credentials = format!("{}:{}", encode(&self.client_id), encode(secret));
                let value =
                    HeaderValue::from_str(&format!("Basic {}", STANDARD.encode(credentials)))
                        .map_err(|error| Error::OAuthConfig(error.to_string()))?;
                builder = builder.header(AUTHORIZATION, value);
            }
        }
        builder
            .body(form.finish().into_bytes())
            .map_err(|error| Error::OAuthConfig(error.to_string()))
    }
}

/// A successful token response (RFC 6749 section 5.1).
#[derive(Clone, PartialEq)]
pub struct TokenResponse {
    /// The access token.
    pub access_token: String,
    /// The token type, lower-cased (`bearer`).
    pub token_type: String,
    /// The lifetime, when the server said.
    pub expires_in: Option<Duration>,
    /// A refresh token, if issued.
    pub refresh_token: Option<String>,
    /// The granted scope, if the server said (RFC 6749 section 3.3: when absent, as
    /// requested).
    pub scope: Option<Vec<String>>,
    /// Every other member (`id_token`, ...).
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl fmt::Debug for TokenResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenResponse")
            .field("access_token", &"<redacted>")
            .field("token_type", &self.token_type)
            .field("expires_in", &self.expires_in)
            .field(
                "refresh_token",
                &self.refresh_token.as_ref().map(|_| "<redacted>"),
            )
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

/// Reads a token endpoint response: the tokens on 2xx, [`Error::OAuthServer`] for an
/// RFC 6749 section 5.2 error, [`Error::OAuthMalformed`] for anything else. JSON is expected;
/// a form-encoded body (some providers' default) is read too. Lenient where providers
/// deviate: `expires_in` as a string or a float, `token_type` in any case or absent (taken
/// as `bearer`), `scope` as an array.
pub fn parse_token_response(status: StatusCode, body: &[u8]) -> Result<TokenResponse> {
    if body.len() > MAX_RESPONSE_BYTES {
        return Err(Error::OAuthMalformed(
            "the token response is too large".into(),
        ));
    }
    let mut object = match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(serde_json::Value::Object(object)) => object,
        Ok(_) => {
            return Err(Error::OAuthMalformed(
                "the token response is not an object".into(),
            ));
        }
        Err(_) => {
            let params = form_urlencoded::parse(body);
            let object: serde_json::Map<String, serde_json::Value> = params
                .map(|(name, value)| (name.into_owned(), value.into_owned().into()))
                .collect();
            if object.is_empty() {
                return Err(Error::OAuthMalformed(format!(
                    "the token response (status {status}) is neither JSON nor a form"
                )));
            }
            object
        }
    };
    let text = |value: serde_json::Value| match value {
        serde_json::Value::String(text) => Some(text),
        _ => None,
    };
    if let Some(error) = object.remove("error").and_then(text) {
        return Err(Error::OAuthServer {
            error,
            description: object.remove("error_description").and_then(text),
        });
    }
    if !status.is_success() {
        return Err(Error::OAuthMalformed(format!(
            "the token endpoint answered {status} without an error code"
        )));
    }
    let access_token = object
        .remove("access_token")
        .and_then(text)
        .filter(|token| !token.is_empty())
        .ok_or_else(|| Error::OAuthMalformed("no access_token".into()))?;
    let token_type = object
        .remove("token_type")
        .and_then(text)
        .unwrap_or_else(|| "bearer".into())
        .to_ascii_lowercase();
    if token_type != "bearer" {
        return Err(Error::OAuthMalformed(format!(
            "token_type {token_type:?} is not supported"
        )));
    }
    let expires_in = match object.remove("expires_in") {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::Number(number)) => number.as_f64(),
        Some(serde_json::Value::String(text)) => text.trim().parse::<f64>().ok(),
        Some(_) => None,
    }
    .filter(|secs| secs.is_finite() && *secs >= 0.0)
    .map(|secs| Duration::from_secs(secs.min(u32::MAX as f64) as u64));
    let refresh_token = object
        .remove("refresh_token")
        .and_then(text)
        .filter(|token| !token.is_empty());
    let scope = match object.remove("scope") {
        Some(serde_json::Value::String(text)) => Some(
            text.split(' ')
                .filter(|token| !token.is_empty())
                .map(str::to_owned)
                .collect(),
        ),
        Some(serde_json::Value::Array(items)) => Some(items.into_iter().filter_map(text).collect()),
        _ => None,
    };
    Ok(TokenResponse {
        access_token,
        token_type,
        expires_in,
        refresh_token,
        scope,
        extra: object,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metadata(iss_supported: bool) -> ServerMetadata {
        ServerMetadata {
            issuer: "https://id.example".into(),
            authorization_endpoint: "https://id.example/authorize".into(),
            token_endpoint: "https://id.example/token".into(),
            revocation_endpoint: Some("https://id.example/revoke".into()),
            introspection_endpoint: None,
            jwks_uri: None,
            code_challenge_methods_supported: vec!["S256".into()],
            authorization_response_iss_parameter_supported: iss_supported,
            userinfo_endpoint: None,
            scopes_supported: Vec::new(),
            id_token_signing_alg_values_supported: Vec::new(),
        }
    }

    fn client() -> OAuthClient {
        OAuthClient::new(metadata(true), "app", "https://app.example/cb")
    }

    fn query_of(url: &str) -> Params {
        Params::parse(url.split_once('?').unwrap().1.as_bytes()).unwrap()
    }

    #[test]
    fn authorization_url_has_state_and_s256() {
        let (url, pending) = client().authorization_url(&["a", "b"]).unwrap();
        let query = query_of(&url);
        assert_eq!(query.get("response_type"), Some("code"));
        assert_eq!(query.get("scope"), Some("a b"));
        assert_eq!(query.get("state"), Some(pending.state()));
        assert_eq!(query.get("code_challenge_method"), Some("S256"));
        assert_eq!(
            query.get("code_challenge"),
            Some(code_challenge_s256(pending.code_verifier()).as_str())
        );
        let (_, other) = client().authorization_url(&[]).unwrap();
        assert_ne!(other.state(), pending.state());
        assert_ne!(other.code_verifier(), pending.code_verifier());
        assert!(!format!("{pending:?}").contains(pending.code_verifier()));
    }

    #[test]
    fn servers_without_s256_are_refused() {
        let mut plain_only = metadata(true);
        plain_only.code_challenge_methods_supported = vec!["plain".into()];
        let client = OAuthClient::new(plain_only, "app", "https://app.example/cb");
        assert!(matches!(
            client.authorization_url(&[]),
            Err(Error::OAuthConfig(_))
        ));
    }

    #[test]
    fn callback_checks_state_first_then_iss_then_error() {
        let client = client();
        let (_, pending) = client.authorization_url(&[]).unwrap();
        let state = pending.state().to_owned();
        let iss = "iss=https%3A%2F%2Fid.example";
        assert_eq!(
            client
                .callback(&pending, &format!("code=c&state={state}&{iss}"))
                .unwrap(),
            "c"
        );
        // Missing state, wrong state, a state from another authorization (reused).
        assert!(matches!(
            client.callback(&pending, &format!("code=c&{iss}")),
            Err(Error::OAuthStateMismatch)
        ));
        assert!(matches!(
            client.callback(&pending, &format!("code=c&state=x{state}&{iss}")),
            Err(Error::OAuthStateMismatch)
        ));
        let (_, next) = client.authorization_url(&[]).unwrap();
        assert!(matches!(
            client.callback(&next, &format!("code=c&state={state}&{iss}")),
            Err(Error::OAuthStateMismatch)
        ));
        // An error with a forged state is a state mismatch, not an error to believe.
        assert!(matches!(
            client.callback(&pending, &format!("error=access_denied&{iss}")),
            Err(Error::OAuthStateMismatch)
        ));
        // Mix-up: another issuer, or none when the server advertises iss.
        assert!(matches!(
            client.callback(
                &pending,
                &format!("code=c&state={state}&iss=https%3A%2F%2Fevil.example")
            ),
            Err(Error::OAuthIssuerMismatch)
        ));
        assert!(matches!(
            client.callback(&pending, &format!("code=c&state={state}")),
            Err(Error::OAuthIssuerMismatch)
        ));
        let lenient = OAuthClient::new(metadata(false), "app", "https://app.example/cb");
        assert_eq!(
            lenient
                .callback(&pending, &format!("code=c&state={state}"))
                .unwrap(),
            "c"
        );
        match client.callback(
            &pending,
            &format!("error=access_denied&error_description=no&state={state}&{iss}"),
        ) {
            Err(Error::OAuthServer { error, description }) => {
                assert_eq!(error, "access_denied");
                assert_eq!(description.as_deref(), Some("no"));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            client.callback(&pending, &format!("state={state}&{iss}")),
            Err(Error::OAuthMalformed(_))
        ));
        assert!(matches!(
            client.callback(&pending, &format!("code=a&code=b&state={state}&{iss}")),
            Err(Error::OAuthMalformed(_))
        ));
    }

    #[test]
    fn requests_carry_client_authentication() {
        let (_, pending) = client().authorization_url(&[]).unwrap();
        let public = client().token_request("the code", &pending).unwrap();
        assert_eq!(public.method(), Method::POST);
        let body = Params::parse(public.body()).unwrap();
        assert_eq!(body.get("grant_type"), Some("authorization_code"));
        assert_eq!(body.get("code"), Some("the code"));
        assert_eq!(body.get("client_id"), Some("app"));
        assert_eq!(body.get("code_verifier"), Some(pending.code_verifier()));
        assert!(public.headers().get(AUTHORIZATION).is_none());

        let basic = OAuthClient::new(metadata(true), "a:b", "https://app.example/cb")
            .with_auth(ClientAuth::Basic("s%cr t".into()));
        let request = basic.refresh_request("rt", Some(&["x"])).unwrap();
        let header = request.headers()[AUTHORIZATION].to_str().unwrap();
        let decoded = STANDARD
            .decode(header.strip_prefix("Basic ").unwrap())
            .unwrap();
        assert_eq!(decoded, b"a%3Ab:s%25cr+t");
        let body = Params::parse(request.body()).unwrap();
        assert_eq!(body.get("client_id"), None);
        assert_eq!(body.get("scope"), Some("x"));

        let post = OAuthClient::new(metadata(true), "app", "https://app.example/cb")
            .with_auth(ClientAuth::Post("secret".into()));
        let request = post.revocation_request("t", Some("refresh_token")).unwrap();
        assert_eq!(request.uri(), "https://id.example/revoke");
        let body = Params::parse(request.body()).unwrap();
        assert_eq!(body.get("client_secret"), Some("secret"));
        assert_eq!(body.get("token_type_hint"), Some("refresh_token"));
    }

    #[test]
    fn lenient_token_responses() {
        let parsed = parse_token_response(
            StatusCode::OK,
            br#"{"access_token":"a","token_type":"Bearer","expires_in":"3600","scope":["x","y"],"id_token":"i"}"#,
        )
        .unwrap();
        assert_eq!(parsed.expires_in, Some(Duration::from_secs(3600)));
        assert_eq!(parsed.scope, Some(vec!["x".to_owned(), "y".to_owned()]));
        assert_eq!(parsed.extra["id_token"], "i");
        let parsed = parse_token_response(
            StatusCode::OK,
            br#"{"access_token":"a","expires_in":59.9,"refresh_token":"r","scope":"x y"}"#,
        )
        .unwrap();
        assert_eq!(parsed.token_type, "bearer");
        assert_eq!(parsed.expires_in, Some(Duration::from_secs(59)));
        assert_eq!(parsed.refresh_token.as_deref(), Some("r"));
        let form = parse_token_response(
            StatusCode::OK,
            b"access_token=a&token_type=bearer&expires_in=10",
        )
        .unwrap();
        assert_eq!(form.expires_in, Some(Duration::from_secs(10)));
        match parse_token_response(
            StatusCode::BAD_REQUEST,
            br#"{"error":"invalid_grant","error_description":"used"}"#,
        ) {
            Err(Error::OAuthServer { error, .. }) => assert_eq!(error, "invalid_grant"),
            other => panic!("{other:?}"),
        }
        for bad in [
            &br#"{"token_type":"bearer"}"#[..],
            br#"{"access_token":"a","token_type":"mac"}"#,
            br#"[1]"#,
            b"",
        ] {
            assert!(matches!(
                parse_token_response(StatusCode::OK, bad),
                Err(Error::OAuthMalformed(_))
            ));
        }
        assert!(matches!(
            parse_token_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                br#"{"access_token":"a"}"#
            ),
            Err(Error::OAuthMalformed(_))
        ));
        let huge = vec![b' '; MAX_RESPONSE_BYTES + 1];
        assert!(parse_token_response(StatusCode::OK, &huge).is_err());
    }

    #[test]
    fn metadata_issuer_must_match() {
        let document = serde_json::to_vec(&metadata(true)).unwrap();
        assert_eq!(
            ServerMetadata::parse(&document, "https://id.example").unwrap(),
            metadata(true)
        );
        assert!(matches!(
            ServerMetadata::parse(&document, "https://other.example"),
            Err(Error::OAuthIssuerMismatch)
        ));
        let mut insecure = metadata(true);
        insecure.token_endpoint = "http://id.example/token".into();
        assert!(matches!(
            ServerMetadata::parse(
                &serde_json::to_vec(&insecure).unwrap(),
                "https://id.example"
            ),
            Err(Error::OAuthMalformed(_))
        ));
        assert_eq!(
            ServerMetadata::well_known_uri("https://id.example/tenant/1").unwrap(),
            "https://id.example/.well-known/oauth-authorization-server/tenant/1"
        );
        assert_eq!(
            ServerMetadata::well_known_uri("http://127.0.0.1:8080").unwrap(),
            "http://127.0.0.1:8080/.well-known/oauth-authorization-server"
        );
    }
}
