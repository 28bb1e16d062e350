//! Reading a token, revocation or introspection request: a `POST` with a form body, and
//! client authentication (RFC 6749 section 2.3).

use http::header::{AUTHORIZATION, CONTENT_TYPE};
use http::{Method, request::Parts};

use super::{AuthorizationServer, Client, ClientAuthMethod, ClientRegistry, GrantStore};
use crate::oauth::{ErrorCode, OAuthError, Params};
use crate::{Credentials, RefreshStore, Result};

impl<C: ClientRegistry, G: GrantStore, R: RefreshStore> AuthorizationServer<C, G, R> {
    /// Client authentication (RFC 6749 section 2.3): exactly one method, the one the client
    /// registered.
    pub(super) async fn authenticate(
        &self,
        parts: &Parts,
        params: &Params,
    ) -> Result<Client, OAuthError> {
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
}

/// Reads a token/revocation/introspection request: `POST` with a form body.
pub(super) fn form_params(parts: &Parts, body: &[u8]) -> Result<Params, OAuthError> {
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
