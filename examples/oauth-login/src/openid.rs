//! "Log in with" over OpenID Connect, used when the provider publishes
//! `/.well-known/openid-configuration`: the ID token is checked with auth-core's client
//! (signature against the provider's JWK Set, `iss`, `aud`, `exp`/`iat`, the `nonce` sent,
//! `at_hash`), then UserInfo is asked and must speak of the same `sub`.

use auth_core::KeySet;
use auth_core::oauth::IdTokenClaims;
use auth_core::oauth::client::{
    OAuthClient, PendingAuthorization, ServerMetadata, TokenResponse, parse_userinfo_response,
};
use http::StatusCode;
use serde::{Deserialize, Serialize};
use std::time::SystemTime;

use super::send;

/// Who logged in, as the ID token and UserInfo said; kept in the session.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Identity {
    /// The ID token's claims (a refreshed ID token must name the same `sub`).
    pub(super) id_token: IdTokenClaims,
    /// `name`, from UserInfo or else the ID token.
    pub(super) name: Option<String>,
    /// `email`, from UserInfo or else the ID token.
    pub(super) email: Option<String>,
}

/// The provider's OpenID Connect discovery document, if it has one that names it an
/// OpenID Provider; `None` sends the caller to RFC 8414 metadata.
pub(super) async fn discover(issuer: &str) -> Option<ServerMetadata> {
    let request = ServerMetadata::openid_request(issuer).ok()?;
    let (status, body) = send(request).await.ok()?;
    if status != StatusCode::OK {
        return None;
    }
    match ServerMetadata::parse(&body, issuer) {
        Ok(metadata) if metadata.is_openid_provider() => Some(metadata),
        Ok(_) => None,
        Err(error) => {
            tracing::warn!("the OpenID Connect discovery document is refused: {error}");
            None
        }
    }
}

/// The scopes to ask for: `openid`, and `profile` and `email` when the provider lists them
/// (or lists nothing).
pub(super) fn scopes(metadata: &ServerMetadata) -> Vec<&'static str> {
    let listed = |scope: &str| {
        metadata.scopes_supported.is_empty() || metadata.scopes_supported.iter().any(|s| s == scope)
    };
    let mut scopes = vec!["openid"];
    scopes.extend(["profile", "email"].into_iter().filter(|s| listed(s)));
    scopes
}

/// The provider's keys, fetched for each check: an example keeps no cache, so a rotated
/// key is never missed (a busy client caches them and refetches on an unknown `kid`).
async fn keys(client: &OAuthClient) -> Result<KeySet, String> {
    let request = client
        .metadata()
        .jwks_request()
        .map_err(|e| e.to_string())?;
    let (status, body) = send(request).await?;
    if status != StatusCode::OK {
        return Err(format!("the provider's JWK Set answered {status}"));
    }
    KeySet::from_jwks(&body)
        .map(|(keys, _skipped)| keys)
        .map_err(|error| error.to_string())
}

/// Checks the code exchange's ID token, then asks UserInfo about the same user.
pub(super) async fn identify(
    client: &OAuthClient,
    tokens: &TokenResponse,
    pending: &PendingAuthorization,
) -> Result<Identity, (StatusCode, String)> {
    let gateway = |error: String| (StatusCode::BAD_GATEWAY, error);
    let keys = keys(client).await.map_err(gateway)?;
    let id_token = client
        .id_token(tokens, pending, &keys, SystemTime::now())
        .map_err(|error| (error.status(), format!("the ID token is refused: {error}")))?;
    let request = client
        .userinfo_request(&tokens.access_token)
        .map_err(|error| gateway(error.to_string()))?;
    let (status, headers, body) = super::send_with_headers(request).await.map_err(gateway)?;
    let info = parse_userinfo_response(status, &headers, &body, &id_token.sub)
        .map_err(|error| (error.status(), format!("UserInfo is refused: {error}")))?;
    let pick = |name: &str| {
        info.claim(name)
            .or_else(|| id_token.claim(name))
            .map(str::to_owned)
    };
    Ok(Identity {
        name: pick("name"),
        email: pick("email"),
        id_token,
    })
}

/// Checks the ID token of a refresh response, if there is one: same user as before.
pub(super) async fn refreshed(
    client: &OAuthClient,
    tokens: &TokenResponse,
    identity: &mut Identity,
) -> Result<(), (StatusCode, String)> {
    if !tokens.extra.contains_key("id_token") {
        return Ok(());
    }
    let keys = keys(client)
        .await
        .map_err(|error| (StatusCode::BAD_GATEWAY, error))?;
    if let Some(claims) = client
        .refreshed_id_token(tokens, &identity.id_token, &keys, SystemTime::now())
        .map_err(|error| {
            (
                error.status(),
                format!("the refreshed ID token is refused: {error}"),
            )
        })?
    {
        identity.id_token = claims;
    }
    Ok(())
}
