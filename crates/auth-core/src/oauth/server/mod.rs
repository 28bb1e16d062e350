//! An OAuth 2.0 authorization server: the authorization endpoint (validation, then a consent
//! step the application renders), the token endpoint (`authorization_code` with PKCE,
//! `refresh_token` with rotation, `client_credentials`), revocation (RFC 7009),
//! introspection (RFC 7662) and metadata (RFC 8414).
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

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::header::{
    AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE, LOCATION, PRAGMA, WWW_AUTHENTICATE,
};
use http::{HeaderValue, Method, Response, StatusCode, request::Parts};
use serde::{Deserialize, Serialize};

use super::{
    ErrorCode, OAuthError, Params, append_query, challenge_is_valid, check_redirect_uri,
    code_challenge_s256, parse_scope, redirect_uri_matches, verifier_is_valid,
};
use crate::random::{constant_time_eq, random_token};
use crate::{
    Credentials, Error, JwtIssuer, JwtVerifier, RefreshStore, RefreshTokens, Result, TokenHash,
};

/// How long an authorization code lives by default (RFC 6749 section 4.1.2 recommends at
/// most 10 minutes; one is plenty for a redirect).
pub const DEFAULT_CODE_TTL: Duration = Duration::from_secs(60);
/// How long an access token lives by default.
pub const DEFAULT_ACCESS_TOKEN_TTL: Duration = Duration::from_secs(600);

fn unix(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs())
}

fn hash(token: &str) -> TokenHash {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

/// The grant types this server implements. Implicit and password grants are not offered
/// (RFC 9700 sections 2.1.2 and 2.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum GrantType {
    /// `authorization_code` (with PKCE S256, always).
    AuthorizationCode,
    /// `refresh_token`.
    RefreshToken,
    /// `client_credentials` (confidential clients only).
    ClientCredentials,
}

impl GrantType {
    /// The `grant_type` value.
    pub fn as_str(self) -> &'static str {
        match self {
            GrantType::AuthorizationCode => "authorization_code",
            GrantType::RefreshToken => "refresh_token",
            GrantType::ClientCredentials => "client_credentials",
        }
    }
}

/// How a client authenticates at the token, revocation and introspection endpoints
/// (RFC 6749 section 2.3, RFC 7591 section 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ClientAuthMethod {
    /// HTTP Basic with the form-urlencoded id and secret.
    ClientSecretBasic,
    /// `client_id` and `client_secret` in the form body.
    ClientSecretPost,
    /// A public client: only `client_id`.
    None,
}

impl ClientAuthMethod {
    /// The registered name (`client_secret_basic`, `client_secret_post`, `none`).
    pub fn as_str(self) -> &'static str {
        match self {
            ClientAuthMethod::ClientSecretBasic => "client_secret_basic",
            ClientAuthMethod::ClientSecretPost => "client_secret_post",
            ClientAuthMethod::None => "none",
        }
    }
}

/// A registered client.
#[derive(Clone)]
pub struct Client {
    id: String,
    /// SHA-256 of the secret (secrets are generated, high-entropy values; a password hash
    /// would only slow the token endpoint down).
    secret_hash: Option<TokenHash>,
    auth_method: ClientAuthMethod,
    redirect_uris: Vec<String>,
    grants: Vec<GrantType>,
    scopes: Vec<String>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("id", &self.id)
            .field("auth_method", &self.auth_method)
            .field("redirect_uris", &self.redirect_uris)
            .field("grants", &self.grants)
            .field("scopes", &self.scopes)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// A public client (a browser or native app: no secret, `none` authentication). It may
    /// use the authorization code grant by default.
    pub fn public<I, U>(id: impl Into<String>, redirect_uris: I) -> Result<Self>
    where
        I: IntoIterator<Item = U>,
        U: Into<String>,
    {
        Self::build(id.into(), None, ClientAuthMethod::None, redirect_uris)
    }

    /// A confidential client authenticating with `secret` by `method`
    /// (`ClientSecretBasic` or `ClientSecretPost`). Secrets shorter than 16 bytes are
    /// refused.
    pub fn confidential<I, U>(
        id: impl Into<String>,
        secret: &str,
        method: ClientAuthMethod,
        redirect_uris: I,
    ) -> Result<Self>
    where
        I: IntoIterator<Item = U>,
        U: Into<String>,
    {
        if method == ClientAuthMethod::None {
            return Err(Error::OAuthConfig(
                "a confidential client needs a secret-based method".into(),
            ));
        }
        if secret.len() < 16 {
            return Err(Error::OAuthConfig(
                "client secrets need at least 16 bytes".into(),
            ));
        }
        Self::build(id.into(), Some(hash(secret)), method, redirect_uris)
    }

    fn build<I, U>(
        id: String,
        secret_hash: Option<TokenHash>,
        auth_method: ClientAuthMethod,
        redirect_uris: I,
    ) -> Result<Self>
    where
        I: IntoIterator<Item = U>,
        U: Into<String>,
    {
        if id.is_empty() || id.len() > 256 || id.chars().any(char::is_control) {
            return Err(Error::OAuthConfig(
                "client ids are 1 to 256 printable characters".into(),
            ));
        }
        let redirect_uris: Vec<String> = redirect_uris.into_iter().map(Into::into).collect();
        for uri in &redirect_uris {
            check_redirect_uri(uri)?;
        }
        Ok(Self {
            id,
            secret_hash,
            auth_method,
            redirect_uris,
            grants: vec![GrantType::AuthorizationCode],
            scopes: Vec::new(),
        })
    }

    /// The grant types the client may use (replacing the default, `authorization_code`).
    pub fn with_grants(mut self, grants: impl IntoIterator<Item = GrantType>) -> Self {
        self.grants = grants.into_iter().collect();
        self
    }

    /// The scopes the client may ask for.
    pub fn with_scopes<I, S>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.scopes = scopes.into_iter().map(Into::into).collect();
        self
    }

    /// The client id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// True for confidential clients.
    pub fn is_confidential(&self) -> bool {
        self.secret_hash.is_some()
    }

    /// The authentication method the client must use.
    pub fn auth_method(&self) -> ClientAuthMethod {
        self.auth_method
    }

    /// The registered redirect URIs.
    pub fn redirect_uris(&self) -> &[String] {
        &self.redirect_uris
    }

    /// The allowed scopes.
    pub fn scopes(&self) -> &[String] {
        &self.scopes
    }

    /// True when the client may use `grant`.
    pub fn allows(&self, grant: GrantType) -> bool {
        self.grants.contains(&grant)
            && (grant != GrantType::ClientCredentials || self.is_confidential())
    }

    fn secret_matches(&self, secret: &str) -> bool {
        self.secret_hash
            .is_some_and(|stored| constant_time_eq(&stored, &hash(secret)))
    }

    fn check_scope(&self, requested: &[String]) -> Result<(), OAuthError> {
        match requested.iter().find(|scope| !self.scopes.contains(scope)) {
            Some(scope) => Err(OAuthError::new(
                ErrorCode::InvalidScope,
                format!(
                    "scope {:?} is not allowed for this client",
                    scope.chars().take(64).collect::<String>()
                ),
            )),
            None => Ok(()),
        }
    }
}

/// Where clients are registered. Implement it over your database; [`MemoryClientRegistry`]
/// is the in-memory one.
pub trait ClientRegistry: Send + Sync {
    /// The client with `id`, or `None`.
    fn client(&self, id: &str) -> impl Future<Output = Result<Option<Client>>> + Send;
}

/// An in-memory [`ClientRegistry`].
#[derive(Debug, Default)]
pub struct MemoryClientRegistry {
    clients: Mutex<HashMap<String, Client>>,
}

impl MemoryClientRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds or replaces a client.
    pub fn register(&self, client: Client) {
        let mut clients = self
            .clients
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        clients.insert(client.id.clone(), client);
    }
}

impl ClientRegistry for MemoryClientRegistry {
    async fn client(&self, id: &str) -> Result<Option<Client>> {
        let clients = self
            .clients
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        Ok(clients.get(id).cloned())
    }
}

/// What the store keeps for one authorization code (the code itself is kept only as a
/// SHA-256 hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeRecord {
    /// The client the code was issued to.
    pub client_id: String,
    /// The redirect URI of the authorization request.
    pub redirect_uri: String,
    /// The S256 PKCE challenge.
    pub code_challenge: String,
    /// The granted scope.
    pub scope: Vec<String>,
    /// The resource owner.
    pub subject: String,
    /// The grant the code starts; tokens issued from it carry its id.
    pub grant_id: String,
    /// Expiry, seconds since the Unix epoch.
    pub expires_at: u64,
    /// True once the code has been presented.
    pub used: bool,
}

/// One grant: what a resource owner allowed a client, or a client's own
/// `client_credentials` access. Every token issued carries the grant id; revoking the
/// grant revokes them all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// Random id (also the refresh-token family).
    pub id: String,
    /// The client.
    pub client_id: String,
    /// The resource owner; `None` for `client_credentials`.
    pub subject: Option<String>,
    /// The granted scope.
    pub scope: Vec<String>,
    /// When the grant lapses unless a token exchange extends it, seconds since the Unix
    /// epoch: the code's expiry until the code is exchanged, then the latest expiry of the
    /// tokens issued.
    pub expires_at: u64,
}

/// What the store keeps for one opaque access token (as a SHA-256 hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessRecord {
    /// The grant it was issued from.
    pub grant_id: String,
    /// Its scope (a refresh may narrow the grant's).
    pub scope: Vec<String>,
    /// Issued at, seconds since the Unix epoch.
    pub issued_at: u64,
    /// Expiry, seconds since the Unix epoch.
    pub expires_at: u64,
}

/// Where codes, grants and opaque access tokens live. `take_code` must be atomic: of two
/// concurrent calls for one code, exactly one sees `used == false`.
pub trait GrantStore: Send + Sync {
    /// Stores a new code.
    fn insert_code(
        &self,
        hash: TokenHash,
        record: CodeRecord,
    ) -> impl Future<Output = Result<()>> + Send;
    /// Marks the code used and returns it as it was before, or `None`. Used codes are kept
    /// until they expire so that a replay can be recognized.
    fn take_code(
        &self,
        hash: &TokenHash,
    ) -> impl Future<Output = Result<Option<CodeRecord>>> + Send;
    /// Stores a grant.
    fn insert_grant(&self, grant: Grant) -> impl Future<Output = Result<()>> + Send;
    /// Moves the grant's expiry to `expires_at` if the grant still exists (atomically: a
    /// grant revoked concurrently stays revoked) and says whether it did.
    fn extend_grant(&self, id: &str, expires_at: u64) -> impl Future<Output = Result<bool>> + Send;
    /// The grant with `id`, or `None` once revoked.
    fn grant(&self, id: &str) -> impl Future<Output = Result<Option<Grant>>> + Send;
    /// Removes the grant and every opaque access token issued from it.
    fn revoke_grant(&self, id: &str) -> impl Future<Output = Result<()>> + Send;
    /// Stores an opaque access token.
    fn insert_access_token(
        &self,
        hash: TokenHash,
        record: AccessRecord,
    ) -> impl Future<Output = Result<()>> + Send;
    /// The opaque access token's record, or `None`.
    fn access_token(
        &self,
        hash: &TokenHash,
    ) -> impl Future<Output = Result<Option<AccessRecord>>> + Send;
}

/// An in-memory [`GrantStore`]. [`MemoryGrantStore::sweep`] drops expired codes and tokens.
#[derive(Debug, Default)]
pub struct MemoryGrantStore {
    inner: Mutex<MemoryGrantState>,
}

#[derive(Debug, Default)]
struct MemoryGrantState {
    codes: HashMap<TokenHash, CodeRecord>,
    grants: HashMap<String, Grant>,
    access: HashMap<TokenHash, AccessRecord>,
}

impl MemoryGrantStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> std::sync::MutexGuard<'_, MemoryGrantState> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Removes codes, grants and access tokens that expired before `now`; returns how many.
    pub fn sweep(&self, now: SystemTime) -> usize {
        let now = unix(now);
        let mut state = self.state();
        let before = state.codes.len() + state.grants.len() + state.access.len();
        state.codes.retain(|_, code| code.expires_at > now);
        state.grants.retain(|_, grant| grant.expires_at > now);
        state.access.retain(|_, token| token.expires_at > now);
        before - state.codes.len() - state.grants.len() - state.access.len()
    }

    /// How many codes, grants and opaque access tokens the store holds.
    pub fn len(&self) -> usize {
        let state = self.state();
        state.codes.len() + state.grants.len() + state.access.len()
    }

    /// True when the store holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl GrantStore for MemoryGrantStore {
    async fn insert_code(&self, hash: TokenHash, record: CodeRecord) -> Result<()> {
        self.state().codes.insert(hash, record);
        Ok(())
    }

    async fn take_code(&self, hash: &TokenHash) -> Result<Option<CodeRecord>> {
        Ok(self.state().codes.get_mut(hash).map(|record| {
            let before = record.clone();
            record.used = true;
            before
        }))
    }

    async fn insert_grant(&self, grant: Grant) -> Result<()> {
        self.state().grants.insert(grant.id.clone(), grant);
        Ok(())
    }

    async fn extend_grant(&self, id: &str, expires_at: u64) -> Result<bool> {
        Ok(match self.state().grants.get_mut(id) {
            Some(grant) => {
                grant.expires_at = grant.expires_at.max(expires_at);
                true
            }
            None => false,
        })
    }

    async fn grant(&self, id: &str) -> Result<Option<Grant>> {
        Ok(self.state().grants.get(id).cloned())
    }

    async fn revoke_grant(&self, id: &str) -> Result<()> {
        let mut state = self.state();
        state.grants.remove(id);
        state.access.retain(|_, token| token.grant_id != id);
        Ok(())
    }

    async fn insert_access_token(&self, hash: TokenHash, record: AccessRecord) -> Result<()> {
        self.state().access.insert(hash, record);
        Ok(())
    }

    async fn access_token(&self, hash: &TokenHash) -> Result<Option<AccessRecord>> {
        Ok(self.state().access.get(hash).cloned())
    }
}

/// How access tokens are made.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum AccessTokenFormat {
    /// Random 256-bit tokens stored (hashed) in the [`GrantStore`]; resource servers ask the
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
    issuer: String,
    authorization_endpoint: String,
    token_endpoint: String,
    revocation_endpoint: String,
    introspection_endpoint: String,
    jwks_uri: Option<String>,
    scopes_supported: Vec<String>,
    code_ttl: Duration,
    access_token_ttl: Duration,
}

impl ServerConfig {
    /// A server identified by `issuer` (an `https` URL without query or fragment, or loopback
    /// `http` for development), with endpoints at `/authorize`, `/token`, `/revoke`,
    /// `/introspect` and `/.well-known/jwks.json` below it.
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
            jwks_uri: Some(format!("{issuer}/.well-known/jwks.json")),
            issuer,
            scopes_supported: Vec::new(),
            code_ttl: DEFAULT_CODE_TTL,
            access_token_ttl: DEFAULT_ACCESS_TOKEN_TTL,
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

    /// Access token lifetime (default [`DEFAULT_ACCESS_TOKEN_TTL`]).
    pub fn with_access_token_ttl(mut self, ttl: Duration) -> Self {
        self.access_token_ttl = ttl;
        self
    }
}

/// A validated authorization request, waiting for the user's consent. Keep it between the
/// consent page and its answer (it is serializable; store it server-side, e.g. in the
/// session, never in a hidden form field the browser could alter).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthorizationRequest {
    /// The client id.
    pub client_id: String,
    /// The redirect URI, as presented (it matched a registered one).
    pub redirect_uri: String,
    /// The requested scope, every token allowed for the client.
    pub scope: Vec<String>,
    /// The client's `state`, passed back unchanged.
    pub state: Option<String>,
    /// The S256 PKCE challenge.
    pub code_challenge: String,
}

/// Why an authorization request was refused: one of exactly two answers (RFC 6749 section
/// 4.1.2.1), so the enum is exhaustive.
#[derive(Debug)]
pub enum AuthorizationRejection {
    /// The client or redirect URI cannot be trusted: tell the user, do not redirect
    /// (RFC 6749 section 4.1.2.1).
    ShowToUser(OAuthError),
    /// A ready `303 See Other` back to the client with `error`, `state` and `iss`.
    Redirect {
        /// The error sent.
        error: OAuthError,
        /// The response to send.
        response: Response<()>,
    },
}

impl AuthorizationRejection {
    /// The error either way.
    pub fn error(&self) -> &OAuthError {
        match self {
            AuthorizationRejection::ShowToUser(error)
            | AuthorizationRejection::Redirect { error, .. } => error,
        }
    }
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
}

/// The private claims of RFC 9068 access tokens, plus the grant id.
#[derive(Debug, Serialize, Deserialize)]
struct AccessClaims {
    iss: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sub: Option<String>,
    aud: crate::Audience,
    exp: u64,
    iat: u64,
    jti: String,
    client_id: String,
    #[serde(default)]
    scope: String,
    /// The grant the token was issued from (so introspection sees revocations).
    gid: String,
}

/// What a valid access or refresh token says about itself, for introspection and
/// revocation.
#[derive(Debug)]
struct TokenInfo {
    grant: Grant,
    scope: Vec<String>,
    kind: &'static str,
    issued_at: Option<u64>,
    expires_at: u64,
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
        }
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

    /// The authorization server metadata (RFC 8414 section 2), to serve at
    /// `/.well-known/oauth-authorization-server`.
    pub fn metadata(&self) -> serde_json::Value {
        let config = &self.config;
        let mut metadata = serde_json::json!({
            "issuer": config.issuer,
            "authorization_endpoint": config.authorization_endpoint,
            "token_endpoint": config.token_endpoint,
            "revocation_endpoint": config.revocation_endpoint,
            "introspection_endpoint": config.introspection_endpoint,
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
            "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
            "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "code_challenge_methods_supported": ["S256"],
            "authorization_response_iss_parameter_supported": true,
        });
        if let Some(object) = metadata.as_object_mut() {
            if !config.scopes_supported.is_empty() {
                object.insert(
                    "scopes_supported".into(),
                    serde_json::json!(config.scopes_supported),
                );
            }
            if let (Some(jwks_uri), AccessTokenFormat::Jwt { .. }) =
                (&config.jwks_uri, &self.access)
            {
                object.insert("jwks_uri".into(), serde_json::json!(jwks_uri));
            }
        }
        metadata
    }

    /// The metadata as a ready `200` JSON response.
    pub fn metadata_response(&self) -> Response<Vec<u8>> {
        json_response(StatusCode::OK, &self.metadata())
    }

    /// The JWK Set of the access-token keys (empty for opaque tokens), for the `jwks_uri`.
    pub fn jwks(&self) -> serde_json::Value {
        match &self.access {
            AccessTokenFormat::Jwt { issuer, .. } => issuer.keys().jwks(),
            AccessTokenFormat::Opaque => serde_json::json!({ "keys": [] }),
        }
    }

    /// Validates an authorization request (the query string of `GET /authorize`, without the
    /// `?`), RFC 6749 section 4.1.1 with RFC 7636 and RFC 9700 rules.
    pub async fn authorization_request(
        &self,
        query: &str,
    ) -> Result<AuthorizationRequest, AuthorizationRejection> {
        use AuthorizationRejection::ShowToUser;
        let params = Params::parse(query.as_bytes()).map_err(ShowToUser)?;
        let client_id = params.require("client_id").map_err(ShowToUser)?;
        let client = self
            .clients
            .client(client_id)
            .await
            .map_err(|error| ShowToUser(OAuthError::store(&error)))?
            .ok_or_else(|| {
                ShowToUser(OAuthError::new(ErrorCode::InvalidClient, "unknown client"))
            })?;
        let redirect_uri = params.require("redirect_uri").map_err(ShowToUser)?;
        if !client
            .redirect_uris
            .iter()
            .any(|registered| redirect_uri_matches(registered, redirect_uri))
        {
            return Err(ShowToUser(OAuthError::request(
                "redirect_uri is not registered for this client",
            )));
        }
        // From here on the redirect URI is trusted: errors go back to the client.
        let state = params.get("state");
        let redirect = |error: OAuthError| AuthorizationRejection::Redirect {
            response: self.error_redirect(redirect_uri, state, &error),
            error,
        };
        self.check_authorization_params(&client, &params)
            .map_err(redirect)?;
        let scope = parse_scope(params.get("scope").unwrap_or("")).map_err(redirect)?;
        client.check_scope(&scope).map_err(redirect)?;
        let code_challenge = params.get("code_challenge").unwrap_or("");
        Ok(AuthorizationRequest {
            client_id: client.id,
            redirect_uri: redirect_uri.to_owned(),
            scope,
            state: state.map(str::to_owned),
            code_challenge: code_challenge.to_owned(),
        })
    }

    fn check_authorization_params(
        &self,
        client: &Client,
        params: &Params,
    ) -> Result<(), OAuthError> {
        if params.get("request").is_some() {
            return Err(OAuthError::new(
                ErrorCode::RequestNotSupported,
                "request objects are not supported",
            ));
        }
        if params.get("request_uri").is_some() {
            return Err(OAuthError::new(
                ErrorCode::RequestUriNotSupported,
                "request_uri is not supported",
            ));
        }
        match params.get("response_type") {
            None => return Err(OAuthError::request("parameter response_type is missing")),
            Some("code") => {}
            Some(_) => {
                return Err(OAuthError::new(
                    ErrorCode::UnsupportedResponseType,
                    "only response_type=code is supported",
                ));
            }
        }
        if let Some(mode) = params.get("response_mode")
            && mode != "query"
        {
            return Err(OAuthError::request("only response_mode=query is supported"));
        }
        if !client.allows(GrantType::AuthorizationCode) {
            return Err(OAuthError::new(
                ErrorCode::UnauthorizedClient,
                "this client may not use the authorization code grant",
            ));
        }
        let Some(challenge) = params.get("code_challenge") else {
            return Err(OAuthError::request(
                "code_challenge is required (PKCE, RFC 9700 section 2.1.1)",
            ));
        };
        match params.get("code_challenge_method") {
            Some("S256") => {}
            // RFC 7636 section 4.3 defaults to plain, which this server refuses.
            Some("plain") | None => {
                return Err(OAuthError::request(
                    "code_challenge_method must be S256; plain is refused",
                ));
            }
            Some(_) => {
                return Err(OAuthError::request("code_challenge_method must be S256"));
            }
        }
        if !challenge_is_valid(challenge) {
            return Err(OAuthError::request(
                "code_challenge is not an S256 challenge (43 base64url characters)",
            ));
        }
        Ok(())
    }

    fn error_redirect(
        &self,
        redirect_uri: &str,
        state: Option<&str>,
        error: &OAuthError,
    ) -> Response<()> {
        let description = super::description_text(&error.description);
        let mut pairs = vec![
            ("error", error.code.as_str()),
            ("error_description", description.as_str()),
        ];
        if let Some(state) = state {
            pairs.push(("state", state));
        }
        pairs.push(("iss", &self.config.issuer));
        see_other(&append_query(redirect_uri, &pairs))
    }

    /// The resource owner `subject` approved `request`: a new single-use code, and the
    /// `303` that carries it, `state` and `iss` back to the client (RFC 6749 section 4.1.2,
    /// RFC 9207).
    pub async fn approve(
        &self,
        request: &AuthorizationRequest,
        subject: &str,
        now: SystemTime,
    ) -> Result<Response<()>> {
        let code = random_token()?;
        let grant_id = random_token()?;
        let expires_at = unix(now + self.config.code_ttl);
        // The grant exists from the start, so that a replay racing the first exchange
        // revokes it for good (the exchange only extends a grant that still exists).
        self.grants
            .insert_grant(Grant {
                id: grant_id.clone(),
                client_id: request.client_id.clone(),
                subject: Some(subject.to_owned()),
                scope: request.scope.clone(),
                expires_at,
            })
            .await?;
        self.grants
            .insert_code(
                hash(&code),
                CodeRecord {
                    client_id: request.client_id.clone(),
                    redirect_uri: request.redirect_uri.clone(),
                    code_challenge: request.code_challenge.clone(),
                    scope: request.scope.clone(),
                    subject: subject.to_owned(),
                    grant_id,
                    expires_at,
                    used: false,
                },
            )
            .await?;
        let mut pairs = vec![("code", code.as_str())];
        if let Some(state) = &request.state {
            pairs.push(("state", state));
        }
        pairs.push(("iss", &self.config.issuer));
        Ok(see_other(&append_query(&request.redirect_uri, &pairs)))
    }

    /// The resource owner refused: `access_denied` back to the client.
    pub fn deny(&self, request: &AuthorizationRequest) -> Response<()> {
        self.error_redirect(
            &request.redirect_uri,
            request.state.as_deref(),
            &OAuthError::new(
                ErrorCode::AccessDenied,
                "the resource owner denied the request",
            ),
        )
    }

    /// The token endpoint (RFC 6749 sections 4.1.3, 4.4.2 and 6): a `200` with the tokens
    /// or a section 5.2 error, both JSON with `Cache-Control: no-store`.
    pub async fn token(&self, parts: &Parts, body: &[u8], now: SystemTime) -> Response<Vec<u8>> {
        match self.token_result(parts, body, now).await {
            Ok(tokens) => token_json_response(StatusCode::OK, &tokens),
            Err(error) => error_response(&error),
        }
    }

    /// The token endpoint as a value: the token response JSON, or the error.
    pub async fn token_result(
        &self,
        parts: &Parts,
        body: &[u8],
        now: SystemTime,
    ) -> Result<serde_json::Value, OAuthError> {
        let params = form_params(parts, body)?;
        let grant_type = params.require("grant_type")?;
        let client = self.authenticate(parts, &params).await?;
        match grant_type {
            "authorization_code" => self.exchange_code(&client, &params, now).await,
            "refresh_token" => self.refresh(&client, &params, now).await,
            "client_credentials" => self.client_credentials(&client, &params, now).await,
            _ => Err(OAuthError::new(
                ErrorCode::UnsupportedGrantType,
                "grant_type must be authorization_code, refresh_token or client_credentials",
            )),
        }
    }

    /// Client authentication (RFC 6749 section 2.3): exactly one method, the one the client
    /// registered.
    async fn authenticate(&self, parts: &Parts, params: &Params) -> Result<Client, OAuthError> {
        let invalid = |description: &str| OAuthError::new(ErrorCode::InvalidClient, description);
        let basic = match parts.headers.get(AUTHORIZATION) {
            None => None,
            Some(_) => match crate::credentials(&parts.headers) {
                Ok(Some(Credentials::Basic { username, password })) => {
                    // RFC 6749 section 2.3.1: the id and secret are form-urlencoded first.
                    // A raw `&` (from clients that skip the encoding) must not cut the value.
                    let decode = |text: &str| {
                        form_urlencoded::parse(format!("x={}", text.replace('&', "%26")).as_bytes())
                            .next()
                            .map(|(_, value)| value.into_owned())
                            .unwrap_or_default()
                    };
                    Some((decode(&username), decode(&password)))
                }
                Ok(_) => return Err(invalid("only Basic client authentication is supported")),
                Err(_) => return Err(invalid("malformed Authorization header")),
            },
        };
        let body_secret = params.get("client_secret");
        let (client_id, secret, method) = match (basic, body_secret) {
            (Some(_), Some(_)) => {
                return Err(OAuthError::request(
                    "use one client authentication method, not two",
                ));
            }
            (Some((id, secret)), None) => {
                if params.get("client_id").is_some_and(|body_id| body_id != id) {
                    return Err(OAuthError::request(
                        "client_id in the body differs from the authenticated client",
                    ));
                }
                (id, Some(secret), ClientAuthMethod::ClientSecretBasic)
            }
            (None, Some(secret)) => (
                params.require("client_id")?.to_owned(),
                Some(secret.to_owned()),
                ClientAuthMethod::ClientSecretPost,
            ),
            (None, None) => match params.get("client_id") {
                Some(id) => (id.to_owned(), None, ClientAuthMethod::None),
                None => return Err(invalid("no client authentication")),
            },
        };
        let client = self
            .clients
            .client(&client_id)
            .await
            .map_err(|error| OAuthError::store(&error))?
            .ok_or_else(|| invalid("client authentication failed"))?;
        if client.auth_method != method {
            return Err(invalid("client authentication failed"));
        }
        if let Some(secret) = secret
            && !client.secret_matches(&secret)
        {
            return Err(invalid("client authentication failed"));
        }
        Ok(client)
    }

    async fn exchange_code(
        &self,
        client: &Client,
        params: &Params,
        now: SystemTime,
    ) -> Result<serde_json::Value, OAuthError> {
        if !client.allows(GrantType::AuthorizationCode) {
            return Err(OAuthError::new(
                ErrorCode::UnauthorizedClient,
                "this client may not use the authorization code grant",
            ));
        }
        let code = params.require("code")?;
        let redirect_uri = params.require("redirect_uri")?;
        let verifier = params.require("code_verifier")?;
        if !verifier_is_valid(verifier) {
            return Err(OAuthError::request(
                "code_verifier must be 43 to 128 unreserved characters",
            ));
        }
        let record = self
            .grants
            .take_code(&hash(code))
            .await
            .map_err(|error| OAuthError::store(&error))?
            .ok_or_else(|| OAuthError::grant("unknown authorization code"))?;
        if record.used {
            // A replay: the code leaked or was intercepted. Revoke what it issued
            // (RFC 6749 section 4.1.2, RFC 9700 section 4.5).
            self.revoke_grant(&record.grant_id).await?;
            return Err(OAuthError::grant(
                "the authorization code was already used; its tokens are revoked",
            ));
        }
        if unix(now) >= record.expires_at {
            return Err(OAuthError::grant("the authorization code has expired"));
        }
        if record.client_id != client.id {
            return Err(OAuthError::grant(
                "the authorization code was issued to another client",
            ));
        }
        if record.redirect_uri != redirect_uri {
            return Err(OAuthError::grant(
                "redirect_uri differs from the authorization request",
            ));
        }
        let computed = code_challenge_s256(verifier);
        if !constant_time_eq(computed.as_bytes(), record.code_challenge.as_bytes()) {
            return Err(OAuthError::grant(
                "code_verifier does not match the code_challenge",
            ));
        }
        let grant = Grant {
            id: record.grant_id,
            client_id: client.id.clone(),
            subject: Some(record.subject),
            scope: record.scope,
            expires_at: self.grant_expiry(client, true, now),
        };
        let live = self
            .grants
            .extend_grant(&grant.id, grant.expires_at)
            .await
            .map_err(|error| OAuthError::store(&error))?;
        if !live {
            return Err(OAuthError::grant("the grant was revoked"));
        }
        let scope = grant.scope.clone();
        self.issue(client, &grant, &scope, true, now).await
    }

    async fn refresh(
        &self,
        client: &Client,
        params: &Params,
        now: SystemTime,
    ) -> Result<serde_json::Value, OAuthError> {
        if !client.allows(GrantType::RefreshToken) {
            return Err(OAuthError::new(
                ErrorCode::UnauthorizedClient,
                "this client may not use refresh tokens",
            ));
        }
        let token = params.require("refresh_token")?;
        let record = self
            .refresh
            .lookup(token)
            .await
            .map_err(|error| OAuthError::store(&error))?
            .ok_or_else(|| OAuthError::grant("unknown or revoked refresh token"))?;
        let grant = self
            .grants
            .grant(&record.family)
            .await
            .map_err(|error| OAuthError::store(&error))?
            .ok_or_else(|| OAuthError::grant("unknown or revoked refresh token"))?;
        if grant.client_id != client.id {
            return Err(OAuthError::grant(
                "the refresh token was issued to another client",
            ));
        }
        if grant.expires_at <= unix(now) {
            return Err(OAuthError::grant("the grant has expired"));
        }
        let scope = match params.get("scope") {
            None => grant.scope.clone(),
            Some(scope) => {
                let scope = super::parse_scope(scope)?;
                if let Some(extra) = scope.iter().find(|s| !grant.scope.contains(s)) {
                    return Err(OAuthError::new(
                        ErrorCode::InvalidScope,
                        format!(
                            "scope {:?} exceeds the grant",
                            extra.chars().take(64).collect::<String>()
                        ),
                    ));
                }
                scope
            }
        };
        let rotated = match self.refresh.rotate(token, now).await {
            Ok(rotated) => rotated,
            Err(Error::RefreshTokenReused) => {
                // Rotation with reuse detection (RFC 9700 section 4.14.2): the family is
                // already revoked; the access tokens of the grant go with it.
                self.revoke_grant(&grant.id).await?;
                return Err(OAuthError::grant(
                    "the refresh token was already used; the grant is revoked",
                ));
            }
            Err(Error::RefreshTokenExpired) => {
                return Err(OAuthError::grant("the refresh token has expired"));
            }
            Err(Error::RefreshTokenInvalid) => {
                return Err(OAuthError::grant("unknown or revoked refresh token"));
            }
            Err(error) => return Err(OAuthError::store(&error)),
        };
        let live = self
            .grants
            .extend_grant(&grant.id, self.grant_expiry(client, true, now))
            .await
            .map_err(|error| OAuthError::store(&error))?;
        if !live {
            return Err(OAuthError::grant("the grant was revoked"));
        }
        let mut response = self.issue(client, &grant, &scope, false, now).await?;
        if let Some(object) = response.as_object_mut() {
            object.insert("refresh_token".into(), rotated.token.into());
        }
        Ok(response)
    }

    async fn client_credentials(
        &self,
        client: &Client,
        params: &Params,
        now: SystemTime,
    ) -> Result<serde_json::Value, OAuthError> {
        if !client.allows(GrantType::ClientCredentials) {
            return Err(OAuthError::new(
                ErrorCode::UnauthorizedClient,
                "this client may not use the client credentials grant",
            ));
        }
        let scope = parse_scope(params.get("scope").unwrap_or(""))?;
        client.check_scope(&scope)?;
        let grant = Grant {
            id: random_token().map_err(|error| OAuthError::store(&error))?,
            client_id: client.id.clone(),
            subject: None,
            scope: scope.clone(),
            expires_at: self.grant_expiry(client, false, now),
        };
        self.grants
            .insert_grant(grant.clone())
            .await
            .map_err(|error| OAuthError::store(&error))?;
        // No refresh token: the client can authenticate again (RFC 6749 section 4.4.3).
        self.issue(client, &grant, &scope, false, now).await
    }

    async fn issue(
        &self,
        client: &Client,
        grant: &Grant,
        scope: &[String],
        with_refresh: bool,
        now: SystemTime,
    ) -> Result<serde_json::Value, OAuthError> {
        let ttl = self.config.access_token_ttl;
        let issued_at = unix(now);
        let access_token = match &self.access {
            AccessTokenFormat::Opaque => {
                let token = random_token().map_err(|error| OAuthError::store(&error))?;
                self.grants
                    .insert_access_token(
                        hash(&token),
                        AccessRecord {
                            grant_id: grant.id.clone(),
                            scope: scope.to_vec(),
                            issued_at,
                            expires_at: issued_at.saturating_add(ttl.as_secs()),
                        },
                    )
                    .await
                    .map_err(|error| OAuthError::store(&error))?;
                token
            }
            AccessTokenFormat::Jwt { issuer, audience } => {
                let claims = AccessClaims {
                    iss: self.config.issuer.clone(),
                    // RFC 9068 section 2.2: for client credentials, `sub` is the client.
                    sub: Some(grant.subject.clone().unwrap_or_else(|| client.id.clone())),
                    aud: crate::Audience::One(audience.clone()),
                    exp: issued_at.saturating_add(ttl.as_secs()),
                    iat: issued_at,
                    jti: random_token().map_err(|error| OAuthError::store(&error))?,
                    client_id: client.id.clone(),
                    scope: scope.join(" "),
                    gid: grant.id.clone(),
                };
                issuer
                    .sign_typed(&claims, "at+jwt")
                    .map_err(|_| OAuthError::new(ErrorCode::ServerError, "cannot sign"))?
            }
        };
        let mut response = serde_json::json!({
            "access_token": access_token,
            "token_type": "Bearer",
            "expires_in": ttl.as_secs(),
            "scope": scope.join(" "),
        });
        if with_refresh && client.allows(GrantType::RefreshToken) {
            let subject = grant.subject.as_deref().unwrap_or(&client.id);
            let refresh = self
                .refresh
                .issue_in_family(&grant.id, subject, now)
                .await
                .map_err(|error| OAuthError::store(&error))?;
            if let Some(object) = response.as_object_mut() {
                object.insert("refresh_token".into(), refresh.token.into());
            }
        }
        Ok(response)
    }

    /// How long a grant lives after a token exchange: as long as its longest token.
    fn grant_expiry(&self, client: &Client, with_refresh: bool, now: SystemTime) -> u64 {
        let mut ttl = self.config.access_token_ttl;
        if with_refresh && client.allows(GrantType::RefreshToken) {
            ttl = ttl.max(self.refresh.ttl());
        }
        unix(now).saturating_add(ttl.as_secs())
    }

    async fn revoke_grant(&self, grant_id: &str) -> Result<(), OAuthError> {
        self.refresh
            .revoke_family(grant_id)
            .await
            .map_err(|error| OAuthError::store(&error))?;
        self.grants
            .revoke_grant(grant_id)
            .await
            .map_err(|error| OAuthError::store(&error))
    }

    async fn live_grant(&self, id: &str, now: u64) -> Result<Option<Grant>, OAuthError> {
        let grant = self
            .grants
            .grant(id)
            .await
            .map_err(|error| OAuthError::store(&error))?;
        Ok(grant.filter(|grant| grant.expires_at > now))
    }

    /// Looks a token up as an access token (opaque or JWT) or a refresh token. `None` for
    /// anything unknown, expired or revoked.
    async fn token_info(
        &self,
        token: &str,
        now: SystemTime,
    ) -> Result<Option<TokenInfo>, OAuthError> {
        let store = |error: Error| OAuthError::store(&error);
        let now_secs = unix(now);
        if let AccessTokenFormat::Jwt { issuer, audience } = &self.access
            && token.matches('.').count() == 2
        {
            let verifier = JwtVerifier::new(issuer.keys().clone())
                .with_issuer(&self.config.issuer)
                .with_audience(audience)
                .with_type("at+jwt")
                .with_leeway(Duration::ZERO);
            let Ok(claims) = verifier.verify::<AccessClaims>(token, now) else {
                return Ok(None);
            };
            let Some(grant) = self.live_grant(&claims.gid, now_secs).await? else {
                return Ok(None);
            };
            return Ok(Some(TokenInfo {
                grant,
                scope: super::parse_scope(&claims.scope).unwrap_or_default(),
                kind: "access_token",
                issued_at: Some(claims.iat),
                expires_at: claims.exp,
            }));
        }
        if token.len() > super::MAX_PARAMETER_BYTES {
            return Ok(None);
        }
        if let Some(record) = self
            .grants
            .access_token(&hash(token))
            .await
            .map_err(store)?
        {
            if record.expires_at <= now_secs {
                return Ok(None);
            }
            let Some(grant) = self.live_grant(&record.grant_id, now_secs).await? else {
                return Ok(None);
            };
            return Ok(Some(TokenInfo {
                grant,
                scope: record.scope,
                kind: "access_token",
                issued_at: Some(record.issued_at),
                expires_at: record.expires_at,
            }));
        }
        if let Some(record) = self.refresh.lookup(token).await.map_err(store)? {
            if record.used || record.expires_at <= now_secs {
                return Ok(None);
            }
            let Some(grant) = self.live_grant(&record.family, now_secs).await? else {
                return Ok(None);
            };
            let scope = grant.scope.clone();
            return Ok(Some(TokenInfo {
                grant,
                scope,
                kind: "refresh_token",
                issued_at: None,
                expires_at: record.expires_at,
            }));
        }
        Ok(None)
    }

    /// The revocation endpoint (RFC 7009): revoking any token revokes its grant, so the
    /// refresh token and every access token issued with it stop working (section 2.1 allows
    /// this). Unknown tokens and tokens of other clients get the same `200` (section 2.2),
    /// and nothing is revoked for another client.
    pub async fn revoke(&self, parts: &Parts, body: &[u8], now: SystemTime) -> Response<Vec<u8>> {
        match self.revoke_result(parts, body, now).await {
            Ok(()) => {
                let mut response = Response::new(Vec::new());
                no_store(&mut response);
                response
            }
            Err(error) => error_response(&error),
        }
    }

    /// The revocation endpoint as a value.
    pub async fn revoke_result(
        &self,
        parts: &Parts,
        body: &[u8],
        now: SystemTime,
    ) -> Result<(), OAuthError> {
        let params = form_params(parts, body)?;
        let client = self.authenticate(parts, &params).await?;
        let token = params.require("token")?;
        if let Some(info) = self.token_info(token, now).await?
            && info.grant.client_id == client.id
        {
            self.revoke_grant(&info.grant.id).await?;
        }
        Ok(())
    }

    /// The introspection endpoint (RFC 7662): any confidential client may ask (a resource
    /// server is registered as one). Answers `{"active": false}` for anything unknown,
    /// expired or revoked.
    pub async fn introspect(
        &self,
        parts: &Parts,
        body: &[u8],
        now: SystemTime,
    ) -> Response<Vec<u8>> {
        match self.introspect_result(parts, body, now).await {
            Ok(answer) => token_json_response(StatusCode::OK, &answer),
            Err(error) => error_response(&error),
        }
    }

    /// The introspection endpoint as a value.
    pub async fn introspect_result(
        &self,
        parts: &Parts,
        body: &[u8],
        now: SystemTime,
    ) -> Result<serde_json::Value, OAuthError> {
        let params = form_params(parts, body)?;
        let client = self.authenticate(parts, &params).await?;
        if !client.is_confidential() {
            return Err(OAuthError::new(
                ErrorCode::InvalidClient,
                "introspection needs a confidential client",
            ));
        }
        let token = params.require("token")?;
        let Some(info) = self.token_info(token, now).await? else {
            return Ok(serde_json::json!({ "active": false }));
        };
        let mut answer = serde_json::json!({
            "active": true,
            "scope": info.scope.join(" "),
            "client_id": info.grant.client_id,
            "token_type": if info.kind == "access_token" { "Bearer" } else { "refresh_token" },
            "exp": info.expires_at,
            "iss": self.config.issuer,
        });
        if let Some(object) = answer.as_object_mut() {
            if let Some(subject) = &info.grant.subject {
                object.insert("sub".into(), subject.clone().into());
            }
            if let Some(iat) = info.issued_at {
                object.insert("iat".into(), iat.into());
            }
            if let AccessTokenFormat::Jwt { audience, .. } = &self.access
                && info.kind == "access_token"
            {
                object.insert("aud".into(), audience.clone().into());
            }
        }
        Ok(answer)
    }
}

/// Reads a token/revocation/introspection request: `POST` with a form body.
fn form_params(parts: &Parts, body: &[u8]) -> Result<Params, OAuthError> {
    if parts.method != Method::POST {
        return Err(OAuthError::request("use POST"));
    }
    if let Some(content_type) = parts.headers.get(CONTENT_TYPE) {
        let essence = content_type
            .to_str()
            .unwrap_or("")
            .split(';')
            .next()
            .unwrap_or("")
            .trim();
        if !essence.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
            return Err(OAuthError::request(
                "the body must be application/x-www-form-urlencoded",
            ));
        }
    }
    if parts.uri.query().is_some_and(|query| !query.is_empty()) {
        // Credentials in a URL end up in logs (RFC 6749 section 3.2).
        return Err(OAuthError::request(
            "parameters go in the body, not the URL",
        ));
    }
    Params::parse(body)
}

fn see_other(location: &str) -> Response<()> {
    let mut response = Response::new(());
    *response.status_mut() = StatusCode::SEE_OTHER;
    match HeaderValue::from_str(location) {
        Ok(value) => {
            response.headers_mut().insert(LOCATION, value);
        }
        Err(_) => *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR,
    }
    no_store(&mut response);
    response
}

fn no_store<B>(response: &mut Response<B>) {
    response
        .headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
        .headers_mut()
        .insert(PRAGMA, HeaderValue::from_static("no-cache"));
}

fn json_response(status: StatusCode, value: &serde_json::Value) -> Response<Vec<u8>> {
    let mut response = Response::new(value.to_string().into_bytes());
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

fn token_json_response(status: StatusCode, value: &serde_json::Value) -> Response<Vec<u8>> {
    let mut response = json_response(status, value);
    no_store(&mut response);
    response
}

/// An RFC 6749 section 5.2 error response; `invalid_client` carries a Basic challenge.
fn error_response(error: &OAuthError) -> Response<Vec<u8>> {
    let mut response = token_json_response(error.code.status(), &error.to_json());
    if error.code == ErrorCode::InvalidClient {
        response.headers_mut().insert(
            WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"oauth\", charset=\"UTF-8\""),
        );
    }
    response
}
