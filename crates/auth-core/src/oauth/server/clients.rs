//! The client registry: registered clients (their authentication method, redirect URIs,
//! grant types and scopes), the [`ClientRegistry`] trait the application implements over
//! its storage, and the in-memory [`MemoryClientRegistry`].

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use super::hash;
use crate::oauth::{ErrorCode, OAuthError, check_redirect_uri};
use crate::random::constant_time_eq;
use crate::{Error, Result, TokenHash};

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
    pub(super) id: String,
    /// SHA-256 of the secret (secrets are generated, high-entropy values; a password hash
    /// would only slow the token endpoint down).
    secret_hash: Option<TokenHash>,
    pub(super) auth_method: ClientAuthMethod,
    pub(super) redirect_uris: Vec<String>,
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

    pub(super) fn secret_matches(&self, secret: &str) -> bool {
        self.secret_hash
            .is_some_and(|stored| constant_time_eq(&stored, &hash(secret)))
    }

    pub(super) fn check_scope(&self, requested: &[String]) -> Result<(), OAuthError> {
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
