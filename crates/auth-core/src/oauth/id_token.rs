//! What both sides of OpenID Connect share: the ID token's claims ([`IdTokenClaims`]), the
//! standard claims each scope releases (OpenID Connect Core 1.0 section 5.4), and the
//! `at_hash` computation (section 3.1.3.6).
//!
//! ```
//! use auth_core::Algorithm;
//! use auth_core::oauth::token_hash;
//!
//! // The left half of SHA-256 of the access token, base64url: 16 bytes, 22 characters.
//! let hash = token_hash("an access token", Algorithm::ES256);
//! assert_eq!(hash.len(), 22);
//! assert_ne!(hash, token_hash("another access token", Algorithm::ES256));
//! ```

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

use crate::{Algorithm, Audience};

/// The claims of an ID token (OpenID Connect Core 1.0 section 2), with the standard claims
/// about the user in [`IdTokenClaims::extra`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IdTokenClaims {
    /// The issuer identifier: exactly the `issuer` of the provider's discovery document.
    pub iss: String,
    /// The subject: the user's stable identifier at the issuer.
    pub sub: String,
    /// The audience: the client id (a list when the provider names several).
    pub aud: Audience,
    /// Expiry, seconds since the Unix epoch.
    pub exp: u64,
    /// Issued at, seconds since the Unix epoch.
    pub iat: u64,
    /// When the user authenticated, seconds since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_time: Option<u64>,
    /// The authorization request's `nonce`, unchanged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    /// The authorized party, when the audience is not just the client.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub azp: Option<String>,
    /// The access token's hash ([`token_hash`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at_hash: Option<String>,
    /// Every other claim: `name`, `email`, `email_verified`, ...
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl IdTokenClaims {
    /// A string claim from [`IdTokenClaims::extra`], such as `name` or `email`.
    pub fn claim(&self, name: &str) -> Option<&str> {
        self.extra.get(name).and_then(serde_json::Value::as_str)
    }
}

/// The claims the `profile` scope releases (OpenID Connect Core 1.0 section 5.4).
pub const PROFILE_CLAIMS: &[&str] = &[
    "name",
    "family_name",
    "given_name",
    "middle_name",
    "nickname",
    "preferred_username",
    "profile",
    "picture",
    "website",
    "gender",
    "birthdate",
    "zoneinfo",
    "locale",
    "updated_at",
];
/// The claims the `email` scope releases.
pub const EMAIL_CLAIMS: &[&str] = &["email", "email_verified"];
/// The claims the `address` scope releases.
pub const ADDRESS_CLAIMS: &[&str] = &["address"];
/// The claims the `phone` scope releases.
pub const PHONE_CLAIMS: &[&str] = &["phone_number", "phone_number_verified"];

/// The standard claims of `claims` that `scope` releases; anything else (custom claims,
/// registered claim names such as `iss` or `sub`) is never released.
pub fn claims_for_scope<S: AsRef<str>>(
    claims: &serde_json::Map<String, serde_json::Value>,
    scope: &[S],
) -> serde_json::Map<String, serde_json::Value> {
    let mut released = serde_json::Map::new();
    for scope in scope {
        let names = match scope.as_ref() {
            "profile" => PROFILE_CLAIMS,
            "email" => EMAIL_CLAIMS,
            "address" => ADDRESS_CLAIMS,
            "phone" => PHONE_CLAIMS,
            _ => continue,
        };
        for name in names {
            if let Some(value) = claims.get(*name) {
                released.insert((*name).to_owned(), value.clone());
            }
        }
    }
    released
}

/// `at_hash` (and `c_hash`): the base64url of the left half of the hash of `token`, with the
/// hash of the ID token's `alg` (SHA-256 for `*256`, SHA-384 for `*384`, SHA-512 for `*512`
/// and for EdDSA with Ed25519), OpenID Connect Core 1.0 section 3.1.3.6.
pub fn token_hash(token: &str, alg: Algorithm) -> String {
    use aws_lc_rs::digest::{SHA256, SHA384, SHA512, digest};
    let hash = match alg {
        Algorithm::HS256 | Algorithm::RS256 | Algorithm::PS256 | Algorithm::ES256 => &SHA256,
        Algorithm::HS384 | Algorithm::RS384 | Algorithm::PS384 | Algorithm::ES384 => &SHA384,
        Algorithm::HS512 | Algorithm::RS512 | Algorithm::PS512 | Algorithm::EdDSA => &SHA512,
    };
    let digest = digest(hash, token.as_bytes());
    let bytes = digest.as_ref();
    URL_SAFE_NO_PAD.encode(bytes.get(..bytes.len() / 2).unwrap_or(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_hash_is_the_left_half_of_the_digest() {
        // Computed by a peer: Authlib 1.9.10's OpenID provider wrote this at_hash (ES256)
        // for this access token.
        assert_eq!(
            token_hash(
                "qZUOp9pMkOOkWrFLfSdUMFiB7NqDPUC9JKg1k1f8KN",
                Algorithm::ES256
            ),
            "S613oB_VVQvD1YS5JXqRBg"
        );
        assert_eq!(token_hash("x", Algorithm::ES384).len(), 32);
        assert_eq!(token_hash("x", Algorithm::EdDSA).len(), 43);
    }

    #[test]
    fn scopes_release_only_their_standard_claims() {
        let claims: serde_json::Map<String, serde_json::Value> = serde_json::from_str(
            r#"{"name":"Alice","email":"a@example.org","email_verified":true,"sub":"evil","role":"admin"}"#,
        )
        .unwrap();
        let profile = claims_for_scope(&claims, &["openid", "profile"]);
        assert_eq!(profile.len(), 1);
        assert_eq!(profile["name"], "Alice");
        let both = claims_for_scope(&claims, &["profile".to_owned(), "email".to_owned()]);
        assert_eq!(both.len(), 3);
        assert!(claims_for_scope(&claims, &["openid"]).is_empty());
    }
}
