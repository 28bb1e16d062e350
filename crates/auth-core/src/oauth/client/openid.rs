//! OpenID Connect on the client (Core 1.0 section 3.1.3.7): validating the ID token of a
//! code exchange or a refresh against the provider's JWK Set, and the UserInfo request and
//! response.
//!
//! The order of checks: the JWS header (`typ` must not be another kind of token), the
//! signature with the key the `kid` names (the key decides the algorithm), `iss` exactly
//! the discovered issuer, `aud` containing the client id, `exp` and `iat` with the leeway,
//! `azp` when several audiences are named, the `nonce` sent, and `at_hash` against the
//! access token it came with. Each failure is its own [`Error`] variant.

use std::time::SystemTime;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, WWW_AUTHENTICATE};
use http::{HeaderMap, Request, StatusCode};

use super::{MAX_RESPONSE_BYTES, OAuthClient, PendingAuthorization, TokenResponse};
use crate::oauth::{IdTokenClaims, token_hash};
use crate::random::constant_time_eq;
use crate::{Algorithm, Audience, Error, JwtVerifier, KeySet, Result};

/// The JOSE header members read before verification.
#[derive(serde::Deserialize)]
struct Header {
    alg: String,
    #[serde(default)]
    typ: Option<String>,
}

impl OAuthClient {
    /// Validates the `id_token` of the token response to the code exchange of `pending`
    /// (which must be an OpenID Connect authorization: its scope had `openid`), with the
    /// provider's keys, at `now`. The token must be there, carry the nonce sent, and hash
    /// the access token it came with when it has `at_hash`.
    pub fn id_token(
        &self,
        tokens: &TokenResponse,
        pending: &PendingAuthorization,
        keys: &KeySet,
        now: SystemTime,
    ) -> Result<IdTokenClaims> {
        let Some(nonce) = pending.nonce() else {
            return Err(Error::OAuthConfig(
                "the authorization did not ask for scope openid".into(),
            ));
        };
        let id_token = id_token_of(tokens)?
            .ok_or_else(|| Error::OAuthMalformed("the token response has no id_token".into()))?;
        self.verify_id_token(id_token, Some(&tokens.access_token), Some(nonce), keys, now)
    }

    /// Validates the ID token of a refresh response, if it has one (OpenID Connect Core
    /// 1.0 section 12.2): as at login, without a nonce, and about the same user as
    /// `previous` ([`Error::OpenIdSubjectMismatch`] otherwise).
    pub fn refreshed_id_token(
        &self,
        tokens: &TokenResponse,
        previous: &IdTokenClaims,
        keys: &KeySet,
        now: SystemTime,
    ) -> Result<Option<IdTokenClaims>> {
        let Some(id_token) = id_token_of(tokens)? else {
            return Ok(None);
        };
        let claims = self.verify_id_token(id_token, Some(&tokens.access_token), None, keys, now)?;
        if claims.sub != previous.sub {
            return Err(Error::OpenIdSubjectMismatch);
        }
        Ok(Some(claims))
    }

    /// Validates one ID token: signature, `iss`, `aud`, `azp`, `exp`, `iat`, and `nonce`
    /// and `at_hash` when given.
    pub fn verify_id_token(
        &self,
        id_token: &str,
        access_token: Option<&str>,
        nonce: Option<&str>,
        keys: &KeySet,
        now: SystemTime,
    ) -> Result<IdTokenClaims> {
        let header = id_token
            .split('.')
            .next()
            .and_then(|part| URL_SAFE_NO_PAD.decode(part).ok())
            .and_then(|json| serde_json::from_slice::<Header>(&json).ok())
            .ok_or(Error::MalformedToken(
                "the header is not a JSON object with alg",
            ))?;
        // An access token (`at+jwt`) or a logout token signed with the same keys must not
        // pass for an ID token.
        if let Some(typ) = &header.typ {
            let typ = typ.to_ascii_lowercase();
            if typ != "jwt" && typ != "application/jwt" {
                return Err(Error::WrongTokenType);
            }
        }
        let claims: IdTokenClaims = JwtVerifier::new(keys.clone())
            .with_issuer(&self.metadata.issuer)
            .with_audience(&self.client_id)
            .with_leeway(self.leeway)
            .verify(id_token, now)?;
        let now_secs = now
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |since| since.as_secs());
        if claims.iat > now_secs.saturating_add(self.leeway.as_secs()) {
            return Err(Error::IdTokenIssuedInFuture);
        }
        let several = matches!(&claims.aud, Audience::Many(list) if list.len() > 1);
        match &claims.azp {
            Some(azp) if *azp != self.client_id => {
                return Err(Error::IdTokenAuthorizedPartyMismatch);
            }
            None if several => return Err(Error::IdTokenAuthorizedPartyMismatch),
            _ => {}
        }
        if let Some(expected) = nonce {
            let matches = claims
                .nonce
                .as_deref()
                .is_some_and(|sent| constant_time_eq(sent.as_bytes(), expected.as_bytes()));
            if !matches {
                return Err(Error::IdTokenNonceMismatch);
            }
        }
        if let (Some(access_token), Some(at_hash)) = (access_token, &claims.at_hash) {
            // The verifier checked that `alg` is the key's algorithm.
            let alg = Algorithm::from_name(&header.alg).ok_or(Error::AlgorithmMismatch)?;
            if !constant_time_eq(token_hash(access_token, alg).as_bytes(), at_hash.as_bytes()) {
                return Err(Error::IdTokenAccessTokenHashMismatch);
            }
        }
        Ok(claims)
    }

    /// A `GET` of the UserInfo endpoint with the access token (OpenID Connect Core 1.0
    /// section 5.3.1).
    pub fn userinfo_request(&self, access_token: &str) -> Result<Request<Vec<u8>>> {
        let endpoint = self
            .metadata
            .userinfo_endpoint
            .as_deref()
            .ok_or_else(|| Error::OAuthConfig("the server has no userinfo_endpoint".into()))?;
        Request::get(endpoint)
            .header(ACCEPT, "application/json")
            .header(AUTHORIZATION, format!("Bearer {access_token}"))
            .body(Vec::new())
            .map_err(|error| Error::OAuthConfig(error.to_string()))
    }
}

fn id_token_of(tokens: &TokenResponse) -> Result<Option<&str>> {
    match tokens.extra.get("id_token") {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::String(token)) => Ok(Some(token)),
        Some(_) => Err(Error::OAuthMalformed("id_token is not a string".into())),
    }
}

/// What the UserInfo endpoint said about the user.
#[derive(Debug, Clone, PartialEq)]
pub struct UserInfo {
    /// The subject: the same as the ID token's.
    pub sub: String,
    /// Every claim, `sub` included.
    pub claims: serde_json::Map<String, serde_json::Value>,
}

impl UserInfo {
    /// A string claim, such as `name` or `email`.
    pub fn claim(&self, name: &str) -> Option<&str> {
        self.claims.get(name).and_then(serde_json::Value::as_str)
    }
}

/// Reads a UserInfo response (OpenID Connect Core 1.0 sections 5.3.2 to 5.3.4): the claims
/// on `200`, whose `sub` must be `expected_sub` (the ID token's;
/// [`Error::OpenIdSubjectMismatch`] otherwise, since the response may be about someone
/// else); [`Error::UserInfoRefused`] with the `WWW-Authenticate` error otherwise. Signed or
/// encrypted (`application/jwt`) responses are not supported.
pub fn parse_userinfo_response(
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
    expected_sub: &str,
) -> Result<UserInfo> {
    if !status.is_success() {
        let error = headers
            .get(WWW_AUTHENTICATE)
            .and_then(|value| value.to_str().ok())
            .and_then(challenge_error);
        return Err(Error::UserInfoRefused {
            status: status.as_u16(),
            error,
        });
    }
    let jwt = headers
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.trim_start().starts_with("application/jwt"));
    if jwt {
        return Err(Error::OAuthMalformed(
            "signed UserInfo responses (application/jwt) are not supported".into(),
        ));
    }
    if body.len() > MAX_RESPONSE_BYTES {
        return Err(Error::OAuthMalformed(
            "the UserInfo response is too large".into(),
        ));
    }
    let claims = match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(serde_json::Value::Object(claims)) => claims,
        _ => {
            return Err(Error::OAuthMalformed(
                "the UserInfo response is not a JSON object".into(),
            ));
        }
    };
    let sub = claims
        .get("sub")
        .and_then(serde_json::Value::as_str)
        .ok_or_else(|| Error::OAuthMalformed("the UserInfo response has no sub".into()))?
        .to_owned();
    if sub != expected_sub {
        return Err(Error::OpenIdSubjectMismatch);
    }
    Ok(UserInfo { sub, claims })
}

/// The `error` attribute of a `Bearer` challenge (RFC 6750 section 3), if any.
fn challenge_error(challenge: &str) -> Option<String> {
    let rest = challenge.trim_start();
    let rest = rest
        .get(..6)
        .filter(|scheme| scheme.eq_ignore_ascii_case("bearer"))
        .and_then(|_| rest.get(6..))?;
    for attribute in rest.split(',') {
        let Some((name, value)) = attribute.split_once('=') else {
            continue;
        };
        if name.trim().eq_ignore_ascii_case("error") {
            let value = value.trim().trim_matches('"');
            if !value.is_empty()
                && value
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_')
            {
                return Some(value.to_owned());
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges_give_their_error() {
        assert_eq!(
            challenge_error(r#"Bearer realm="u", error="invalid_token", error_description="x""#)
                .as_deref(),
            Some("invalid_token")
        );
        assert_eq!(
            challenge_error(r#"bearer error=insufficient_scope"#).as_deref(),
            Some("insufficient_scope")
        );
        assert_eq!(challenge_error("Bearer"), None);
        assert_eq!(challenge_error(r#"Basic realm="x""#), None);
        assert_eq!(challenge_error(r#"Bearer error="<script>""#), None);
        assert_eq!(challenge_error("Bé"), None);
    }
}
