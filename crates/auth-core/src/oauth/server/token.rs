//! The token endpoint (RFC 6749 sections 4.1.3, 4.4.2 and 6): the `authorization_code`
//! exchange with PKCE, `refresh_token` with rotation and reuse detection,
//! `client_credentials`, and issuing opaque or RFC 9068 JWT access tokens.

use std::time::SystemTime;

use http::{Response, StatusCode, request::Parts};
use serde::{Deserialize, Serialize};

use super::requests::form_params;
use super::responses::{error_response, token_json_response};
use super::{
    AccessRecord, AccessTokenFormat, AuthorizationServer, Client, ClientRegistry, Grant,
    GrantStore, GrantType, OpenIdGrant, hash, unix,
};
use crate::oauth::{
    ErrorCode, OAuthError, Params, code_challenge_s256, parse_scope, verifier_is_valid,
};
use crate::random::{constant_time_eq, random_token};
use crate::{Error, RefreshStore, Result};

/// The private claims of RFC 9068 access tokens, plus the grant id.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct AccessClaims {
    pub(super) iss: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) sub: Option<String>,
    pub(super) aud: crate::Audience,
    pub(super) exp: u64,
    pub(super) iat: u64,
    pub(super) jti: String,
    pub(super) client_id: String,
    #[serde(default)]
    pub(super) scope: String,
    /// The grant the token was issued from (so introspection sees revocations).
    pub(super) gid: String,
}

impl<C: ClientRegistry, G: GrantStore, R: RefreshStore> AuthorizationServer<C, G, R> {
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
        let openid = record.openid;
        let grant = Grant {
            id: record.grant_id,
            client_id: client.id.clone(),
            subject: Some(record.subject),
            scope: record.scope,
            expires_at: self.grant_expiry(client, true, now),
            openid: openid.clone().map(|openid| OpenIdGrant {
                nonce: None,
                ..openid
            }),
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
        let mut response = self.issue(client, &grant, &scope, true, now).await?;
        // The code's ID token carries the authorization request's nonce.
        if let Some(openid) = &openid {
            self.add_id_token(&mut response, client, &grant, openid, &scope, now)?;
        }
        Ok(response)
    }

    /// Adds `id_token` to a token response when the grant is an OpenID Connect one.
    fn add_id_token(
        &self,
        response: &mut serde_json::Value,
        client: &Client,
        grant: &Grant,
        openid: &OpenIdGrant,
        scope: &[String],
        now: SystemTime,
    ) -> Result<(), OAuthError> {
        let access_token = response
            .get("access_token")
            .and_then(serde_json::Value::as_str)
            .unwrap_or("");
        if let Some(id_token) = self.id_token(client, grant, openid, scope, access_token, now)?
            && let Some(object) = response.as_object_mut()
        {
            object.insert("id_token".into(), id_token.into());
        }
        Ok(())
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
                let scope = parse_scope(scope)?;
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
        // OpenID Connect Core 1.0 section 12.2: a new ID token for the same user and
        // client, with the original auth_time and no nonce.
        if let Some(openid) = &grant.openid {
            self.add_id_token(&mut response, client, &grant, openid, &scope, now)?;
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
            openid: None,
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
}
