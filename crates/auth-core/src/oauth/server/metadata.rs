//! Authorization server metadata (RFC 8414, with the OpenID Connect Discovery 1.0 fields when
//! OpenID Connect is on) and the JWK Set of the access-token and ID token keys.

use http::{Response, StatusCode};

use super::responses::json_response;
use super::{AccessTokenFormat, AuthorizationServer, ClientRegistry, GrantStore};
use crate::RefreshStore;

impl<C: ClientRegistry, G: GrantStore, R: RefreshStore> AuthorizationServer<C, G, R> {
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
            self.openid_metadata(object);
        }
        metadata
    }

    /// The metadata as a ready `200` JSON response.
    pub fn metadata_response(&self) -> Response<Vec<u8>> {
        json_response(StatusCode::OK, &self.metadata())
    }

    /// The JWK Set of the access-token keys (none for opaque tokens) and the ID token keys
    /// (with OpenID Connect), for the `jwks_uri`; a key in both is listed once.
    pub fn jwks(&self) -> serde_json::Value {
        let mut keys: Vec<serde_json::Value> = Vec::new();
        let sets = [
            match &self.access {
                AccessTokenFormat::Jwt { issuer, .. } => Some(issuer.keys().jwks()),
                AccessTokenFormat::Opaque => None,
            },
            self.openid.as_ref().map(|signer| signer.keys().jwks()),
        ];
        for set in sets.into_iter().flatten() {
            if let Some(serde_json::Value::Array(set)) = set.get("keys") {
                for key in set {
                    if !keys.iter().any(|seen| seen.get("kid") == key.get("kid")) {
                        keys.push(key.clone());
                    }
                }
            }
        }
        serde_json::json!({ "keys": keys })
    }
}
