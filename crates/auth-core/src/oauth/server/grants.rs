//! The grant store: authorization codes, grants and opaque access tokens (each token kept
//! only as a SHA-256 hash), the [`GrantStore`] trait for a shared backend, and the
//! in-memory [`MemoryGrantStore`].

use std::collections::HashMap;
use std::future::Future;
use std::sync::Mutex;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use super::unix;
use crate::{Result, TokenHash};

/// What the store keeps for one authorization code (the code itself is kept only as a
/// SHA-256 hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeRecord {
    /// The client the code was issued to.
    pub client_id: String,
    /// The redirect URI of the authorization request.
    pub redirect_uri: String,
    /// The S256 PKCE challenge.
    pub code_challenge: String,
    /// The granted scope.
    pub scope: Vec<String>,
    /// The resource owner.
    pub subject: String,
    /// The grant the code starts; tokens issued from it carry its id.
    pub grant_id: String,
    /// Expiry, seconds since the Unix epoch.
    pub expires_at: u64,
    /// True once the code has been presented.
    pub used: bool,
    /// What an OpenID Connect request (`scope=openid`) adds: the nonce, when the user
    /// authenticated, and their claims.
    pub openid: Option<OpenIdGrant>,
}

/// What an OpenID Connect authorization keeps for its ID tokens and the UserInfo endpoint:
/// a snapshot taken when the user approved (stored as JSON by shared stores).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenIdGrant {
    /// The authorization request's `nonce`, for the ID token of the code exchange only
    /// (a grant keeps none: refreshed ID tokens carry no nonce).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    /// When the user authenticated, seconds since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_time: Option<u64>,
    /// The user's standard claims that the granted scope releases.
    #[serde(default)]
    pub claims: serde_json::Map<String, serde_json::Value>,
}

/// One grant: what a resource owner allowed a client, or a client's own
/// `client_credentials` access. Every token issued carries the grant id; revoking the
/// grant revokes them all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// Random id (also the refresh-token family).
    pub id: String,
    /// The client.
    pub client_id: String,
    /// The resource owner; `None` for `client_credentials`.
    pub subject: Option<String>,
    /// The granted scope.
    pub scope: Vec<String>,
    /// When the grant lapses unless a token exchange extends it, seconds since the Unix
    /// epoch: the code's expiry until the code is exchanged, then the latest expiry of the
    /// tokens issued.
    pub expires_at: u64,
    /// The OpenID Connect part, for grants whose scope has `openid`.
    pub openid: Option<OpenIdGrant>,
}

/// What the store keeps for one opaque access token (as a SHA-256 hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessRecord {
    /// The grant it was issued from.
    pub grant_id: String,
    /// Its scope (a refresh may narrow the grant's).
    pub scope: Vec<String>,
    /// Issued at, seconds since the Unix epoch.
    pub issued_at: u64,
    /// Expiry, seconds since the Unix epoch.
    pub expires_at: u64,
}

/// Where codes, grants and opaque access tokens live. `take_code` must be atomic: of two
/// concurrent calls for one code, exactly one sees `used == false`.
pub trait GrantStore: Send + Sync {
    /// Stores a new code.
    fn insert_code(
        &self,
        hash: TokenHash,
        record: CodeRecord,
    ) -> impl Future<Output = Result<()>> + Send;
    /// Marks the code used and returns it as it was before, or `None`. Used codes are kept
    /// until they expire so that a replay can be recognized.
    fn take_code(
        &self,
        hash: &TokenHash,
    ) -> impl Future<Output = Result<Option<CodeRecord>>> + Send;
    /// Stores a grant.
    fn insert_grant(&self, grant: Grant) -> impl Future<Output = Result<()>> + Send;
    /// Moves the grant's expiry to `expires_at` if the grant still exists (atomically: a
    /// grant revoked concurrently stays revoked) and says whether it did.
    fn extend_grant(&self, id: &str, expires_at: u64) -> impl Future<Output = Result<bool>> + Send;
    /// The grant with `id`, or `None` once revoked.
    fn grant(&self, id: &str) -> impl Future<Output = Result<Option<Grant>>> + Send;
    /// Removes the grant and every opaque access token issued from it.
    fn revoke_grant(&self, id: &str) -> impl Future<Output = Result<()>> + Send;
    /// Stores an opaque access token.
    fn insert_access_token(
        &self,
        hash: TokenHash,
        record: AccessRecord,
    ) -> impl Future<Output = Result<()>> + Send;
    /// The opaque access token's record, or `None`.
    fn access_token(
        &self,
        hash: &TokenHash,
    ) -> impl Future<Output = Result<Option<AccessRecord>>> + Send;
}

/// An in-memory [`GrantStore`]. [`MemoryGrantStore::sweep`] drops expired codes and tokens.
#[derive(Debug, Default)]
pub struct MemoryGrantStore {
    inner: Mutex<MemoryGrantState>,
}

#[derive(Debug, Default)]
struct MemoryGrantState {
    codes: HashMap<TokenHash, CodeRecord>,
    grants: HashMap<String, Grant>,
    access: HashMap<TokenHash, AccessRecord>,
}

impl MemoryGrantStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> std::sync::MutexGuard<'_, MemoryGrantState> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Removes codes, grants and access tokens that expired before `now`; returns how many.
    pub fn sweep(&self, now: SystemTime) -> usize {
        let now = unix(now);
        let mut state = self.state();
        let before = state.codes.len() + state.grants.len() + state.access.len();
        state.codes.retain(|_, code| code.expires_at > now);
        state.grants.retain(|_, grant| grant.expires_at > now);
        state.access.retain(|_, token| token.expires_at > now);
        before - state.codes.len() - state.grants.len() - state.access.len()
    }

    /// How many codes, grants and opaque access tokens the store holds.
    pub fn len(&self) -> usize {
        let state = self.state();
        state.codes.len() + state.grants.len() + state.access.len()
    }

    /// True when the store holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl GrantStore for MemoryGrantStore {
    async fn insert_code(&self, hash: TokenHash, record: CodeRecord) -> Result<()> {
        self.state().codes.insert(hash, record);
        Ok(())
    }

    async fn take_code(&self, hash: &TokenHash) -> Result<Option<CodeRecord>> {
        Ok(self.state().codes.get_mut(hash).map(|record| {
            let before = record.clone();
            record.used = true;
            before
        }))
    }

    async fn insert_grant(&self, grant: Grant) -> Result<()> {
        self.state().grants.insert(grant.id.clone(), grant);
        Ok(())
    }

    async fn extend_grant(&self, id: &str, expires_at: u64) -> Result<bool> {
        Ok(match self.state().grants.get_mut(id) {
            Some(grant) => {
                grant.expires_at = grant.expires_at.max(expires_at);
                true
            }
            None => false,
        })
    }

    async fn grant(&self, id: &str) -> Result<Option<Grant>> {
        Ok(self.state().grants.get(id).cloned())
    }

    async fn revoke_grant(&self, id: &str) -> Result<()> {
        let mut state = self.state();
        state.grants.remove(id);
        state.access.retain(|_, token| token.grant_id != id);
        Ok(())
    }

    async fn insert_access_token(&self, hash: TokenHash, record: AccessRecord) -> Result<()> {
        self.state().access.insert(hash, record);
        Ok(())
    }

    async fn access_token(&self, hash: &TokenHash) -> Result<Option<AccessRecord>> {
        Ok(self.state().access.get(hash).cloned())
    }
}
