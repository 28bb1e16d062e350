//! OpenID Connect on the authorization server (Core 1.0, Discovery 1.0): the user an
//! approval speaks for ([`EndUser`]), ID tokens at the token endpoint, the UserInfo
//! endpoint, and the discovery document.
//!
//! ```
//! use std::time::{Duration, UNIX_EPOCH};
//! use auth_core::oauth::server::{
//!     AccessTokenFormat, AuthorizationServer, Client, EndUser, MemoryClientRegistry,
//!     MemoryGrantStore, ServerConfig,
//! };
//! use auth_core::{Algorithm, Key, KeySet, MemoryRefreshStore, RefreshTokens};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let mut keys = KeySet::new();
//! keys.rotate(Key::generate("id-1", Algorithm::ES256)?)?;
//! let clients = MemoryClientRegistry::new();
//! clients.register(Client::public("spa", ["https://app.example/cb"])?.with_scopes(["profile"]));
//! let server = AuthorizationServer::new(
//!     ServerConfig::new("https://id.example")?.with_scopes_supported(["openid", "profile"]),
//!     clients,
//!     MemoryGrantStore::new(),
//!     RefreshTokens::new(MemoryRefreshStore::new(), Duration::from_secs(86_400)),
//!     AccessTokenFormat::Opaque,
//! )
//! .with_openid(keys);
//! let discovery = server.openid_configuration().expect("OpenID Connect is on");
//! assert_eq!(discovery["issuer"], "https://id.example");
//! assert_eq!(discovery["userinfo_endpoint"], "https://id.example/userinfo");
//! assert_eq!(discovery["id_token_signing_alg_values_supported"][0], "ES256");
//!
//! // At consent, the application says who approved, when they logged in, and their claims.
//! let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
//! let alice = EndUser::new("alice")
//!     .authenticated_at(now)
//!     .with_claim("name", "Alice Liddell")
//!     .with_claim("email", "alice@example.org");
//! # let _ = alice;
//! # Ok(())
//! # }
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(run()).unwrap();
//! ```

use std::time::SystemTime;

use http::header::CONTENT_TYPE;
use http::{Method, Response, StatusCode, request::Parts};

use super::responses::{json_response, no_store};
use super::{AuthorizationServer, Client, ClientRegistry, Grant, GrantStore, OpenIdGrant, unix};
use crate::oauth::{
    ADDRESS_CLAIMS, EMAIL_CLAIMS, ErrorCode, IdTokenClaims, OAuthError, PHONE_CLAIMS,
    PROFILE_CLAIMS, Params, claims_for_scope, token_hash,
};
use crate::{Audience, BearerChallenge, BearerError, RefreshStore, bearer_token};

/// The user an approval speaks for: the subject, when they authenticated and their claims
/// (`name`, `email`, ... of OpenID Connect Core 1.0 section 5.1; only the ones the granted
/// scope releases are kept).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EndUser {
    /// The subject: a stable identifier, never reassigned.
    pub subject: String,
    /// When the user last authenticated, seconds since the Unix epoch.
    pub auth_time: Option<u64>,
    /// The user's standard claims.
    pub claims: serde_json::Map<String, serde_json::Value>,
}

impl EndUser {
    /// The user `subject`, with no claims.
    pub fn new(subject: impl Into<String>) -> Self {
        Self {
            subject: subject.into(),
            ..Self::default()
        }
    }

    /// When the user authenticated (the `auth_time` claim).
    pub fn authenticated_at(mut self, time: SystemTime) -> Self {
        self.auth_time = Some(unix(time));
        self
    }

    /// Adds a claim, such as `name` or `email_verified`.
    pub fn with_claim(
        mut self,
        name: impl Into<String>,
        value: impl Into<serde_json::Value>,
    ) -> Self {
        self.claims.insert(name.into(), value.into());
        self
    }
}

impl<C: ClientRegistry, G: GrantStore, R: RefreshStore> AuthorizationServer<C, G, R> {
    /// The ID token for a token response (OpenID Connect Core 1.0 sections 2 and 3.1.3.6),
    /// or `None` when OpenID Connect is off or the scope has no `openid`.
    pub(super) fn id_token(
        &self,
        client: &Client,
        grant: &Grant,
        openid: &OpenIdGrant,
        scope: &[String],
        access_token: &str,
        now: SystemTime,
    ) -> Result<Option<String>, OAuthError> {
        let Some(signer) = &self.openid else {
            return Ok(None);
        };
        let (Some(subject), true) = (&grant.subject, scope.iter().any(|s| s == "openid")) else {
            return Ok(None);
        };
        let server_error = || OAuthError::new(ErrorCode::ServerError, "cannot sign");
        let key = signer.keys().signing_key().ok_or_else(server_error)?;
        let issued_at = unix(now);
        let claims = IdTokenClaims {
            iss: self.config.issuer.clone(),
            sub: subject.clone(),
            aud: Audience::One(client.id.clone()),
            exp: issued_at.saturating_add(self.config.id_token_ttl.as_secs()),
            iat: issued_at,
            auth_time: openid.auth_time,
            nonce: openid.nonce.clone(),
            azp: None,
            at_hash: Some(token_hash(access_token, key.alg())),
            extra: claims_for_scope(&openid.claims, scope),
        };
        signer.sign(&claims).map(Some).map_err(|_| server_error())
    }

    /// The UserInfo endpoint (OpenID Connect Core 1.0 section 5.3), `GET` or `POST`: the
    /// access token as `Authorization: Bearer` (or, for `POST`, as the form parameter
    /// `access_token`, RFC 6750 section 2.2). `200` with `sub` and the claims the token's
    /// scope releases; `401` with `WWW-Authenticate: Bearer error="invalid_token"` for an
    /// unknown, expired or revoked token; `403` `insufficient_scope` for a token without
    /// `openid`.
    pub async fn userinfo(&self, parts: &Parts, body: &[u8], now: SystemTime) -> Response<Vec<u8>> {
        match self.userinfo_result(parts, body, now).await {
            Ok(claims) => {
                let mut response = json_response(StatusCode::OK, &claims);
                no_store(&mut response);
                response
            }
            Err(challenge) => {
                let (parts, ()) = challenge.realm("userinfo").response().into_parts();
                let mut response = Response::from_parts(parts, Vec::new());
                no_store(&mut response);
                response
            }
        }
    }

    /// The UserInfo endpoint as a value: the claims, or the challenge to answer with.
    pub async fn userinfo_result(
        &self,
        parts: &Parts,
        body: &[u8],
        now: SystemTime,
    ) -> Result<serde_json::Value, BearerChallenge> {
        let refuse =
            |error: BearerError, description: &str| -> Result<serde_json::Value, BearerChallenge> {
                Err(BearerChallenge::new().error(error, description))
            };
        let from_header = match bearer_token(&parts.headers) {
            Ok(token) => token,
            Err(_) => return refuse(BearerError::InvalidRequest, "malformed Authorization"),
        };
        let from_body = if parts.method == Method::POST && !body.is_empty() {
            let form = parts
                .headers
                .get(CONTENT_TYPE)
                .and_then(|value| value.to_str().ok())
                .is_some_and(|value| value.starts_with("application/x-www-form-urlencoded"));
            if form {
                match Params::parse(body) {
                    Ok(params) => params.get("access_token").map(str::to_owned),
                    Err(_) => return refuse(BearerError::InvalidRequest, "malformed form"),
                }
            } else {
                None
            }
        } else {
            None
        };
        let token = match (from_header, from_body) {
            (Some(_), Some(_)) => {
                return refuse(
                    BearerError::InvalidRequest,
                    "the token is sent in more than one way",
                );
            }
            (Some(token), None) | (None, Some(token)) => token,
            // No credentials: a bare challenge (RFC 6750 section 3.1).
            (None, None) => return Err(BearerChallenge::new()),
        };
        let info = match self.token_info(&token, now).await {
            Ok(Some(info)) if info.kind == "access_token" => info,
            Ok(_) => {
                return refuse(
                    BearerError::InvalidToken,
                    "the access token is unknown, expired or revoked",
                );
            }
            Err(error) => {
                // A store outage: the token may be fine, but nothing can be said now.
                return Err(
                    BearerChallenge::new().error(BearerError::InvalidToken, error.description)
                );
            }
        };
        let openid = match (&info.grant.openid, &info.grant.subject) {
            (Some(openid), Some(subject))
                if self.openid.is_some() && info.scope.iter().any(|s| s == "openid") =>
            {
                (openid, subject)
            }
            _ => {
                return Err(BearerChallenge::new().scope("openid").error(
                    BearerError::InsufficientScope,
                    "the access token was not issued for scope openid",
                ));
            }
        };
        let (openid, subject) = openid;
        let mut claims = claims_for_scope(&openid.claims, &info.scope);
        claims.insert("sub".into(), subject.clone().into());
        Ok(serde_json::Value::Object(claims))
    }

    /// The OpenID Provider metadata (OpenID Connect Discovery 1.0 section 3), to serve at
    /// `{issuer}/.well-known/openid-configuration`; `None` when OpenID Connect is off. It is
    /// the RFC 8414 [`metadata`](AuthorizationServer::metadata) with the OpenID fields.
    pub fn openid_configuration(&self) -> Option<serde_json::Value> {
        self.openid.as_ref().map(|_| self.metadata())
    }

    /// The discovery document as a ready `200` JSON response, or a `404` when OpenID
    /// Connect is off.
    pub fn openid_configuration_response(&self) -> Response<Vec<u8>> {
        match self.openid_configuration() {
            Some(document) => json_response(StatusCode::OK, &document),
            None => {
                let mut response = Response::new(Vec::new());
                *response.status_mut() = StatusCode::NOT_FOUND;
                response
            }
        }
    }

    /// The OpenID fields of the metadata.
    pub(super) fn openid_metadata(&self, object: &mut serde_json::Map<String, serde_json::Value>) {
        let Some(signer) = &self.openid else {
            return;
        };
        let mut algorithms: Vec<&str> = Vec::new();
        if let Some(key) = signer.keys().signing_key() {
            algorithms.push(key.alg().name());
        }
        let mut scopes: Vec<String> = vec!["openid".to_owned()];
        scopes.extend(
            self.config
                .scopes_supported
                .iter()
                .filter(|scope| *scope != "openid")
                .cloned(),
        );
        let mut claims: Vec<&str> = vec![
            "iss",
            "sub",
            "aud",
            "exp",
            "iat",
            "auth_time",
            "nonce",
            "at_hash",
        ];
        for (scope, names) in [
            ("profile", PROFILE_CLAIMS),
            ("email", EMAIL_CLAIMS),
            ("address", ADDRESS_CLAIMS),
            ("phone", PHONE_CLAIMS),
        ] {
            if scopes.iter().any(|s| s == scope) {
                claims.extend(names);
            }
        }
        let fields = serde_json::json!({
            "userinfo_endpoint": self.config.userinfo_endpoint,
            "jwks_uri": self.config.jwks_uri,
            "scopes_supported": scopes,
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": algorithms,
            "claims_supported": claims,
            "prompt_values_supported": ["none", "login", "consent", "select_account"],
            "claims_parameter_supported": false,
            "request_parameter_supported": false,
            // Discovery 1.0 section 3: the default is true, so it must be said.
            "request_uri_parameter_supported": false,
        });
        if let serde_json::Value::Object(fields) = fields {
            object.extend(fields);
        }
    }
}
