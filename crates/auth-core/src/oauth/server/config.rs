//! The server's configuration: its issuer, endpoint URLs and lifetimes ([`ServerConfig`]),
//! and how access tokens are made ([`AccessTokenFormat`]).

use std::time::Duration;

use crate::{Error, JwtIssuer, Result};

/// How long an authorization code lives by default (RFC 6749 section 4.1.2 recommends at
/// most 10 minutes; one is plenty for a redirect).
pub const DEFAULT_CODE_TTL: Duration = Duration::from_secs(60);
/// How long an access token lives by default.
pub const DEFAULT_ACCESS_TOKEN_TTL: Duration = Duration::from_secs(600);
/// How long an ID token lives by default (it is checked once, at login).
pub const DEFAULT_ID_TOKEN_TTL: Duration = Duration::from_secs(600);

/// How access tokens are made.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum AccessTokenFormat {
    /// Random 256-bit tokens stored (hashed) in the [`GrantStore`](super::GrantStore); resource servers ask the
    /// introspection endpoint about them. Revocation takes effect at once.
    Opaque,
    /// Signed JWTs in the RFC 9068 profile (`typ: at+jwt`; `iss`, `aud`, `sub`, `client_id`,
    /// `exp`, `iat`, `jti`, `scope`), verifiable by resource servers with the JWKS. The
    /// issuer's `iss` is replaced by the server's issuer. Revocation shows in introspection
    /// at once, and in local verification only when the token expires: keep them short.
    Jwt {
        /// Signs the tokens.
        issuer: JwtIssuer,
        /// The `aud` claim: the resource server's identifier.
        audience: String,
    },
}

/// The server's configuration: its issuer identifier, endpoint URLs and lifetimes.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub(super) issuer: String,
    pub(super) authorization_endpoint: String,
    pub(super) token_endpoint: String,
    pub(super) revocation_endpoint: String,
    pub(super) introspection_endpoint: String,
    pub(super) userinfo_endpoint: String,
    pub(super) jwks_uri: Option<String>,
    pub(super) scopes_supported: Vec<String>,
    pub(super) code_ttl: Duration,
    pub(super) access_token_ttl: Duration,
    pub(super) id_token_ttl: Duration,
}

impl ServerConfig {
    /// A server identified by `issuer` (an `https` URL without query or fragment, or loopback
    /// `http` for development), with endpoints at `/authorize`, `/token`, `/revoke`,
    /// `/introspect`, `/userinfo` (OpenID Connect) and `/.well-known/jwks.json` below it.
    pub fn new(issuer: impl Into<String>) -> Result<Self> {
        let issuer = issuer.into().trim_end_matches('/').to_owned();
        let parsed = url::Url::parse(&issuer)
            .map_err(|_| Error::OAuthConfig(format!("issuer {issuer:?} is not a URL")))?;
        let loopback = matches!(
            parsed.host(),
            Some(url::Host::Ipv4(ip)) if ip.is_loopback()
        ) || matches!(parsed.host(), Some(url::Host::Ipv6(ip)) if ip.is_loopback())
            || parsed.host_str() == Some("localhost");
        if parsed.query().is_some()
            || parsed.fragment().is_some()
            || !(parsed.scheme() == "https" || (parsed.scheme() == "http" && loopback))
        {
            return Err(Error::OAuthConfig(format!(
                "issuer {issuer:?} must be https (http only on loopback) without query or fragment (RFC 8414 section 2)"
            )));
        }
        Ok(Self {
            authorization_endpoint: format!("{issuer}/authorize"),
            token_endpoint: format!("{issuer}/token"),
            revocation_endpoint: format!("{issuer}/revoke"),
            introspection_endpoint: format!("{issuer}/introspect"),
            userinfo_endpoint: format!("{issuer}/userinfo"),
            jwks_uri: Some(format!("{issuer}/.well-known/jwks.json")),
            issuer,
            scopes_supported: Vec::new(),
            code_ttl: DEFAULT_CODE_TTL,
            access_token_ttl: DEFAULT_ACCESS_TOKEN_TTL,
            id_token_ttl: DEFAULT_ID_TOKEN_TTL,
        })
    }

    /// The issuer identifier.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The scopes listed in the metadata.
    pub fn with_scopes_supported<I, S>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.scopes_supported = scopes.into_iter().map(Into::into).collect();
        self
    }

    /// Authorization code lifetime (default [`DEFAULT_CODE_TTL`]).
    pub fn with_code_ttl(mut self, ttl: Duration) -> Self {
        self.code_ttl = ttl;
        self
    }

    /// ID token lifetime (default [`DEFAULT_ID_TOKEN_TTL`]).
    pub fn with_id_token_ttl(mut self, ttl: Duration) -> Self {
        self.id_token_ttl = ttl;
        self
    }

    /// Access token lifetime (default [`DEFAULT_ACCESS_TOKEN_TTL`]).
    pub fn with_access_token_ttl(mut self, ttl: Duration) -> Self {
        self.access_token_ttl = ttl;
        self
    }
}
