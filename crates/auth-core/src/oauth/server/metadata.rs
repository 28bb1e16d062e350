//! Authorization server metadata (RFC 8414) and the JWK Set of the access-token keys.

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
}
