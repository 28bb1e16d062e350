//! An OAuth 2.0 authorization server: the authorization endpoint (validation, then a consent
//! step the application renders), the token endpoint (`authorization_code` with PKCE,
//! `refresh_token` with rotation, `client_credentials`), revocation (RFC 7009),
//! introspection (RFC 7662) and metadata (RFC 8414); with
//! [`AuthorizationServer::with_openid`], an OpenID Connect provider too (ID tokens,
//! UserInfo, discovery, `prompt` and `max_age`).
//!
//! The application owns the routes, the login and the consent page. The flow:
//!
//! 1. `GET /authorize`: [`AuthorizationServer::authorization_request`] validates the query.
//!    An [`AuthorizationRejection::ShowToUser`] is rendered as an error page (the client or
//!    redirect URI could not be trusted); [`AuthorizationRejection::Redirect`] is a ready
//!    `303` back to the client with `error`, `state` and `iss`.
//! 2. The application logs the user in and asks for consent, keeping the validated
//!    [`AuthorizationRequest`] (it is `serde`-serializable, e.g. into the session).
//! 3. [`AuthorizationServer::approve`] or [`AuthorizationServer::deny`] give the `303` to
//!    send back to the client.
//! 4. `POST /token`, `/revoke`, `/introspect`: hand the request's parts and body to
//!    [`AuthorizationServer::token`], [`AuthorizationServer::revoke`],
//!    [`AuthorizationServer::introspect`] and send back the response.
//!
//! ```
//! use std::time::{Duration, UNIX_EPOCH};
//! use auth_core::oauth::server::{
//!     AccessTokenFormat, AuthorizationServer, Client, GrantType, MemoryClientRegistry,
//!     MemoryGrantStore, ServerConfig,
//! };
//! use auth_core::oauth::code_challenge_s256;
//! use auth_core::{MemoryRefreshStore, RefreshTokens};
//! use http::{Request, StatusCode};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let clients = MemoryClientRegistry::new();
//! clients.register(
//!     Client::public("spa", ["https://app.example/cb"])?
//!         .with_scopes(["profile"])
//!         .with_grants([GrantType::AuthorizationCode, GrantType::RefreshToken]),
//! );
//! let server = AuthorizationServer::new(
//!     ServerConfig::new("https://id.example")?,
//!     clients,
//!     MemoryGrantStore::new(),
//!     RefreshTokens::new(MemoryRefreshStore::new(), Duration::from_secs(86_400)),
//!     AccessTokenFormat::Opaque,
//! );
//! let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
//! let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
//! let query = format!(
//!     "response_type=code&client_id=spa&redirect_uri=https%3A%2F%2Fapp.example%2Fcb\
//!      &scope=profile&state=xyz&code_challenge={}&code_challenge_method=S256",
//!     code_challenge_s256(verifier)
//! );
//! let request = server.authorization_request(&query).await.expect("valid");
//! // ... the user logs in and consents ...
//! let redirect = server.approve(&request, "alice", now).await?;
//! assert_eq!(redirect.status(), StatusCode::SEE_OTHER);
//! let location = redirect.headers()["location"].to_str()?;
//! assert!(location.contains("state=xyz") && location.contains("iss=https%3A%2F%2Fid.example"));
//! let code = location.split("code=").nth(1).unwrap().split('&').next().unwrap();
//!
//! let body = format!(
//!     "grant_type=authorization_code&code={code}&client_id=spa\
//!      &redirect_uri=https%3A%2F%2Fapp.example%2Fcb&code_verifier={verifier}"
//! );
//! let (parts, ()) = Request::post("/token").body(())?.into_parts();
//! let response = server.token(&parts, body.as_bytes(), now).await;
//! assert_eq!(response.status(), StatusCode::OK);
//! assert_eq!(response.headers()["cache-control"], "no-store");
//! // The same code again is refused, and what it issued is revoked.
//! let again = server.token(&parts, body.as_bytes(), now).await;
//! assert_eq!(again.status(), StatusCode::BAD_REQUEST);
//! # Ok(())
//! # }
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(run()).unwrap();
//! ```

mod authorize;
mod clients;
mod config;
mod grants;
mod metadata;
mod openid;
#[cfg(feature = "redis")]
mod redis_grants;
mod requests;
mod responses;
mod revoke_introspect;
mod token;

use std::time::{SystemTime, UNIX_EPOCH};

use crate::{JwtIssuer, KeySet, RefreshStore, RefreshTokens, TokenHash};

pub use authorize::{AuthorizationRejection, AuthorizationRequest};
pub use clients::{Client, ClientAuthMethod, ClientRegistry, GrantType, MemoryClientRegistry};
pub use config::{
    AccessTokenFormat, DEFAULT_ACCESS_TOKEN_TTL, DEFAULT_CODE_TTL, DEFAULT_ID_TOKEN_TTL,
    ServerConfig,
};
pub use grants::{AccessRecord, CodeRecord, Grant, GrantStore, MemoryGrantStore, OpenIdGrant};
pub use openid::EndUser;
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use redis_grants::RedisGrantStore;

/// Seconds since the Unix epoch (0 for an earlier time).
fn unix(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs())
}

/// SHA-256 of a token: codes, opaque access tokens and client secrets are kept only as this.
fn hash(token: &str) -> TokenHash {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

/// An OAuth 2.0 authorization server over a client registry, a grant store and a refresh
/// token store.
#[derive(Debug)]
pub struct AuthorizationServer<C, G, R> {
    config: ServerConfig,
    clients: C,
    grants: G,
    refresh: RefreshTokens<R>,
    access: AccessTokenFormat,
    /// Signs ID tokens when OpenID Connect is on.
    openid: Option<JwtIssuer>,
}

impl<C: ClientRegistry, G: GrantStore, R: RefreshStore> AuthorizationServer<C, G, R> {
    /// A server. Refresh-token families are the grant ids; the `refresh` store's lifetime
    /// is the refresh token lifetime.
    pub fn new(
        config: ServerConfig,
        clients: C,
        grants: G,
        refresh: RefreshTokens<R>,
        access: AccessTokenFormat,
    ) -> Self {
        Self {
            config,
            clients,
            grants,
            refresh,
            access,
            openid: None,
        }
    }

    /// Turns on OpenID Connect (Core 1.0 and Discovery 1.0): `scope=openid` requests get an
    /// ID token signed with `keys`' active key, the UserInfo endpoint answers
    /// ([`AuthorizationServer::userinfo`]), and [`AuthorizationServer::openid_configuration`]
    /// serves discovery. Every client that may use the authorization code grant may ask for
    /// `openid`; `keys` join the JWK Set ([`AuthorizationServer::jwks`]).
    pub fn with_openid(mut self, keys: KeySet) -> Self {
        self.openid = Some(JwtIssuer::new(keys));
        self
    }

    /// True when OpenID Connect is on.
    pub fn is_openid_provider(&self) -> bool {
        self.openid.is_some()
    }

    /// The configuration.
    pub fn config(&self) -> &ServerConfig {
        &self.config
    }

    /// The client registry.
    pub fn clients(&self) -> &C {
        &self.clients
    }

    /// The grant store.
    pub fn grants(&self) -> &G {
        &self.grants
    }
}
