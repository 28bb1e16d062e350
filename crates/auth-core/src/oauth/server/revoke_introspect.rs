//! Revocation (RFC 7009) and introspection (RFC 7662): looking a token up as an access or
//! refresh token, and revoking the grant it belongs to.

use std::time::{Duration, SystemTime};

use http::{Response, StatusCode, request::Parts};

use super::requests::form_params;
use super::responses::{error_response, no_store, token_json_response};
use super::token::AccessClaims;
use super::{
    AccessTokenFormat, AuthorizationServer, ClientRegistry, Grant, GrantStore, hash, unix,
};
use crate::oauth::{ErrorCode, OAuthError, parse_scope};
use crate::{Error, JwtVerifier, RefreshStore, Result};

/// What a valid access or refresh token says about itself, for introspection and
/// revocation.
#[derive(Debug)]
pub(super) struct TokenInfo {
    pub(super) grant: Grant,
    pub(super) scope: Vec<String>,
    pub(super) kind: &'static str,
    issued_at: Option<u64>,
    expires_at: u64,
}

impl<C: ClientRegistry, G: GrantStore, R: RefreshStore> AuthorizationServer<C, G, R> {
    pub(super) async fn revoke_grant(&self, grant_id: &str) -> Result<(), OAuthError> {
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
    pub(super) async fn token_info(
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
                scope: parse_scope(&claims.scope).unwrap_or_default(),
                kind: "access_token",
                issued_at: Some(claims.iat),
                expires_at: claims.exp,
            }));
        }
        if token.len() > crate::oauth::MAX_PARAMETER_BYTES {
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
