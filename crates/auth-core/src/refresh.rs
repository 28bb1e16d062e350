//! Refresh tokens: opaque random values, stored only as SHA-256 hashes, rotated on every use.
//!
//! Each login starts a *family*. Using a refresh token returns a new one in the same family
//! and retires the old one. If a retired token is presented again, someone holds a copy
//! (the client or an attacker): the whole family is revoked, so both must log in again
//! (RFC 9700 section 4.14.2, "refresh token rotation").
//!
//! ```
//! use std::time::{Duration, UNIX_EPOCH};
//! use auth_core::{Error, MemoryRefreshStore, RefreshTokens};
//!
//! # async fn run() -> auth_core::Result<()> {
//! let tokens = RefreshTokens::new(MemoryRefreshStore::new(), Duration::from_secs(86_400));
//! let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
//! let first = tokens.issue("user-42", now).await?;
//! let second = tokens.rotate(&first.token, now).await?;
//! assert_eq!(second.subject, "user-42");
//! // Replaying the first token revokes the family: the second one dies with it.
//! assert!(matches!(tokens.rotate(&first.token, now).await, Err(Error::RefreshTokenReused)));
//! assert!(matches!(tokens.rotate(&second.token, now).await, Err(Error::RefreshTokenInvalid)));
//! # Ok(())
//! # }
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(run()).unwrap();
//! ```

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::random::random_token;
use crate::{Error, Result};

/// The longest refresh token read; anything longer cannot be one of ours.
const MAX_TOKEN_BYTES: usize = 256;

/// A SHA-256 hash of a refresh token: what the store keeps instead of the token.
pub type TokenHash = [u8; 32];

fn hash(token: &str) -> TokenHash {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

fn unix(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs())
}

/// A freshly issued refresh token. `token` goes to the client and is never stored.
#[derive(Clone)]
pub struct RefreshToken {
    /// The opaque value for the client (256 random bits, base64url).
    pub token: String,
    /// The family (one per login).
    pub family: String,
    /// Whom the token was issued to.
    pub subject: String,
    /// When it stops working.
    pub expires_at: SystemTime,
}

impl fmt::Debug for RefreshToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RefreshToken")
            .field("token", &"<redacted>")
            .field("family", &self.family)
            .field("subject", &self.subject)
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// What the store keeps for one token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshRecord {
    /// SHA-256 of the token.
    pub hash: TokenHash,
    /// The family the token belongs to.
    pub family: String,
    /// Whom the token was issued to.
    pub subject: String,
    /// Expiry, seconds since the Unix epoch.
    pub expires_at: u64,
    /// True once the token has been exchanged.
    pub used: bool,
}

/// Where refresh-token records live. [`RefreshStore::take`] must be atomic: of two
/// concurrent calls for the same hash, exactly one sees `used == false`.
///
/// A revoked family stays revoked: [`RefreshStore::insert`] must refuse a record of a
/// family revoked before (keep a tombstone at least until the family's last token would
/// have expired). Otherwise a rotation that took its token before a reuse revoked the
/// family, and inserts after it, leaves a live token in a revoked family.
pub trait RefreshStore: Send + Sync {
    /// Stores a new record, atomically refusing it with [`Error::RefreshTokenInvalid`] when
    /// its family was revoked.
    fn insert(&self, record: RefreshRecord) -> impl Future<Output = Result<()>> + Send;
    /// Marks the record used and returns it as it was before, or `None` if unknown.
    fn take(&self, hash: &TokenHash) -> impl Future<Output = Result<Option<RefreshRecord>>> + Send;
    /// Deletes every record of `family`.
    fn revoke_family(&self, family: &str) -> impl Future<Output = Result<()>> + Send;
    /// The record, as it is, without marking it used (for introspection and revocation
    /// checks), or `None` if unknown.
    fn get(&self, hash: &TokenHash) -> impl Future<Output = Result<Option<RefreshRecord>>> + Send;
}

/// Issues and rotates refresh tokens over a [`RefreshStore`].
#[derive(Debug, Clone)]
pub struct RefreshTokens<S> {
    store: S,
    ttl: Duration,
}

impl<S: RefreshStore> RefreshTokens<S> {
    /// Tokens that live `ttl` each.
    pub fn new(store: S, ttl: Duration) -> Self {
        Self { store, ttl }
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// How long each token lives.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Starts a new family for `subject` (at login).
    pub async fn issue(&self, subject: &str, now: SystemTime) -> Result<RefreshToken> {
        self.issue_in(random_token()?, subject.to_owned(), now)
            .await
    }

    /// Starts a family with a caller-chosen id (the OAuth server uses its grant id, so that
    /// revoking the grant and revoking the family are one act).
    pub async fn issue_in_family(
        &self,
        family: &str,
        subject: &str,
        now: SystemTime,
    ) -> Result<RefreshToken> {
        self.issue_in(family.to_owned(), subject.to_owned(), now)
            .await
    }

    /// The stored record of `token` without using it: `None` when unknown or revoked.
    pub async fn lookup(&self, token: &str) -> Result<Option<RefreshRecord>> {
        if token.len() > MAX_TOKEN_BYTES {
            return Ok(None);
        }
        self.store.get(&hash(token)).await
    }

    /// Revokes every token of `family`.
    pub async fn revoke_family(&self, family: &str) -> Result<()> {
        self.store.revoke_family(family).await
    }

    async fn issue_in(
        &self,
        family: String,
        subject: String,
        now: SystemTime,
    ) -> Result<RefreshToken> {
        let token = random_token()?;
        let expires_at = now + self.ttl;
        self.store
            .insert(RefreshRecord {
                hash: hash(&token),
                family: family.clone(),
                subject: subject.clone(),
                expires_at: unix(expires_at),
                used: false,
            })
            .await?;
        Ok(RefreshToken {
            token,
            family,
            subject,
            expires_at,
        })
    }

    /// Exchanges `token` for a new one in the same family.
    ///
    /// A token used before revokes its family ([`Error::RefreshTokenReused`]); an unknown or
    /// revoked token is [`Error::RefreshTokenInvalid`]; an expired one
    /// [`Error::RefreshTokenExpired`].
    pub async fn rotate(&self, token: &str, now: SystemTime) -> Result<RefreshToken> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(Error::RefreshTokenInvalid);
        }
        let record = self
            .store
            .take(&hash(token))
            .await?
            .ok_or(Error::RefreshTokenInvalid)?;
        if record.used {
            self.store.revoke_family(&record.family).await?;
            return Err(Error::RefreshTokenReused);
        }
        if unix(now) >= record.expires_at {
            return Err(Error::RefreshTokenExpired);
        }
        self.issue_in(record.family, record.subject, now).await
    }

    /// Revokes the family of `token` (at logout). Unknown tokens are ignored.
    pub async fn revoke(&self, token: &str) -> Result<()> {
        if token.len() > MAX_TOKEN_BYTES {
            return Ok(());
        }
        if let Some(record) = self.store.take(&hash(token)).await? {
            self.store.revoke_family(&record.family).await?;
        }
        Ok(())
    }
}

/// An in-memory [`RefreshStore`]. Records are kept until [`MemoryRefreshStore::sweep`]
/// removes expired ones.
#[derive(Debug, Default)]
pub struct MemoryRefreshStore {
    inner: Mutex<MemoryRefreshState>,
}

#[derive(Debug, Default)]
struct MemoryRefreshState {
    by_hash: HashMap<TokenHash, RefreshRecord>,
    families: HashMap<String, Vec<TokenHash>>,
    /// Revoked families, until their last token would have expired (Unix seconds).
    revoked: HashMap<String, u64>,
}

impl MemoryRefreshStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> std::sync::MutexGuard<'_, MemoryRefreshState> {
        // A panic while holding the lock cannot leave the maps half-updated in a way that
        // matters more than losing every token, so a poisoned lock is simply taken over.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Removes records that expired before `now`; returns how many.
    pub fn sweep(&self, now: SystemTime) -> usize {
        let now = unix(now);
        let mut state = self.state();
        let before = state.by_hash.len();
        state.by_hash.retain(|_, record| record.expires_at > now);
        state.revoked.retain(|_, until| *until > now);
        let MemoryRefreshState {
            by_hash, families, ..
        } = &mut *state;
        families.retain(|_, hashes| {
            hashes.retain(|hash| by_hash.contains_key(hash));
            !hashes.is_empty()
        });
        before - state.by_hash.len()
    }

    /// How many records the store holds.
    pub fn len(&self) -> usize {
        self.state().by_hash.len()
    }

    /// True when the store holds no records.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl RefreshStore for MemoryRefreshStore {
    async fn insert(&self, record: RefreshRecord) -> Result<()> {
        let mut state = self.state();
        if state.revoked.contains_key(&record.family) {
            return Err(Error::RefreshTokenInvalid);
        }
        state
            .families
            .entry(record.family.clone())
            .or_default()
            .push(record.hash);
        state.by_hash.insert(record.hash, record);
        Ok(())
    }

    async fn take(&self, hash: &TokenHash) -> Result<Option<RefreshRecord>> {
        let mut state = self.state();
        Ok(state.by_hash.get_mut(hash).map(|record| {
            let before = record.clone();
            record.used = true;
            before
        }))
    }

    async fn get(&self, hash: &TokenHash) -> Result<Option<RefreshRecord>> {
        Ok(self.state().by_hash.get(hash).cloned())
    }

    async fn revoke_family(&self, family: &str) -> Result<()> {
        let mut state = self.state();
        if let Some(hashes) = state.families.remove(family) {
            let mut until = 0;
            for hash in hashes {
                if let Some(record) = state.by_hash.remove(&hash) {
                    until = until.max(record.expires_at);
                }
            }
            // Tombstone: a rotation in flight must not add to the family afterwards.
            if until > 0 {
                state.revoked.insert(family.to_owned(), until);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn tokens() -> RefreshTokens<MemoryRefreshStore> {
        RefreshTokens::new(MemoryRefreshStore::new(), Duration::from_secs(100))
    }

    #[tokio::test]
    async fn rotation_chain_and_reuse_revokes_the_family() {
        let tokens = tokens();
        let t1 = tokens.issue("alice", at(1000)).await.unwrap();
        let t2 = tokens.rotate(&t1.token, at(1010)).await.unwrap();
        let t3 = tokens.rotate(&t2.token, at(1020)).await.unwrap();
        assert_eq!(t1.family, t3.family);
        assert_ne!(t2.token, t3.token);
        // An unrelated family survives the revocation.
        let other = tokens.issue("bob", at(1000)).await.unwrap();

        assert!(matches!(
            tokens.rotate(&t2.token, at(1030)).await,
            Err(Error::RefreshTokenReused)
        ));
        assert!(matches!(
            tokens.rotate(&t3.token, at(1030)).await,
            Err(Error::RefreshTokenInvalid)
        ));
        tokens.rotate(&other.token, at(1030)).await.unwrap();
    }

    #[tokio::test]
    async fn only_hashes_are_stored() {
        let tokens = tokens();
        let issued = tokens.issue("alice", at(0)).await.unwrap();
        let state = tokens.store().state();
        let record = state.by_hash.values().next().unwrap();
        assert_eq!(record.hash, hash(&issued.token));
        assert!(!format!("{state:?}").contains(&issued.token));
        assert!(!format!("{issued:?}").contains(&issued.token));
    }

    #[tokio::test]
    async fn expiry_garbage_and_revocation() {
        let tokens = tokens();
        let issued = tokens.issue("alice", at(0)).await.unwrap();
        assert!(matches!(
            tokens.rotate(&issued.token, at(100)).await,
            Err(Error::RefreshTokenExpired)
        ));
        assert!(matches!(
            tokens.rotate("garbage", at(0)).await,
            Err(Error::RefreshTokenInvalid)
        ));
        assert!(matches!(
            tokens.rotate(&"x".repeat(10_000), at(0)).await,
            Err(Error::RefreshTokenInvalid)
        ));

        let live = tokens.issue("bob", at(0)).await.unwrap();
        tokens.revoke(&live.token).await.unwrap();
        assert!(matches!(
            tokens.rotate(&live.token, at(1)).await,
            Err(Error::RefreshTokenInvalid)
        ));
        assert_eq!(tokens.store().sweep(at(1000)), 1);
        assert!(tokens.store().is_empty());
    }

    #[tokio::test]
    async fn concurrent_use_has_one_winner() {
        let tokens = std::sync::Arc::new(tokens());
        let issued = tokens.issue("alice", at(0)).await.unwrap();
        let mut handles = Vec::new();
        for _ in 0..8 {
            let tokens = tokens.clone();
            let token = issued.token.clone();
            handles.push(tokio::spawn(
                async move { tokens.rotate(&token, at(1)).await },
            ));
        }
        let mut wins = 0;
        for handle in handles {
            if handle.await.unwrap().is_ok() {
                wins += 1;
            }
        }
        assert_eq!(wins, 1);
    }

    /// A store whose inserts wait for the test's signal, to interleave a rotation with a
    /// reuse detection deterministically.
    struct GatedStore {
        inner: MemoryRefreshStore,
        gate: tokio::sync::Semaphore,
    }

    impl RefreshStore for &GatedStore {
        async fn insert(&self, record: RefreshRecord) -> Result<()> {
            let permit = self.gate.acquire().await;
            drop(permit);
            self.inner.insert(record).await
        }
        async fn take(&self, hash: &TokenHash) -> Result<Option<RefreshRecord>> {
            self.inner.take(hash).await
        }
        async fn revoke_family(&self, family: &str) -> Result<()> {
            self.inner.revoke_family(family).await
        }
        async fn get(&self, hash: &TokenHash) -> Result<Option<RefreshRecord>> {
            self.inner.get(hash).await
        }
    }

    /// Issue 14, finding 11: rotation A takes the token; reuse B (the same token again)
    /// revokes the family; then A's insert lands. Before, A's new token was live in a
    /// revoked family; now the family's tombstone refuses the insert.
    #[tokio::test]
    async fn a_rotation_racing_reuse_detection_leaves_no_live_token() {
        let store = GatedStore {
            inner: MemoryRefreshStore::new(),
            gate: tokio::sync::Semaphore::new(1),
        };
        let tokens = RefreshTokens::new(&store, Duration::from_secs(3600));
        let first = tokens.issue("ada", at(100)).await.unwrap();
        // Hold the gate: the next insert waits.
        let held = store.gate.acquire().await.unwrap();
        let rotation = tokens.rotate(&first.token, at(101));
        let reuse = async {
            // Let the rotation run up to its insert (it has then taken the token).
            while !store
                .inner
                .get(&hash(&first.token))
                .await
                .unwrap()
                .is_some_and(|record| record.used)
            {
                tokio::task::yield_now().await;
            }
            let reused = tokens.rotate(&first.token, at(102)).await;
            drop(held);
            reused
        };
        let (rotated, reused) = tokio::join!(rotation, reuse);
        assert!(matches!(reused, Err(Error::RefreshTokenReused)));
        match rotated {
            Err(Error::RefreshTokenInvalid) => {}
            Ok(late) => {
                assert!(
                    tokens.lookup(&late.token).await.unwrap().is_none(),
                    "a token was issued in a revoked family"
                );
            }
            Err(other) => panic!("{other:?}"),
        }
        assert!(store.inner.is_empty());
        // The tombstone goes once the family's tokens would have expired.
        assert_eq!(store.inner.sweep(at(100 + 3600)), 0);
        assert!(store.inner.state().revoked.is_empty());
        // A new family for the same user works.
        tokens.issue("ada", at(5000)).await.unwrap();
    }
}
