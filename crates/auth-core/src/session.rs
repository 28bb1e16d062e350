//! Server-side sessions: the server keeps the state, the browser keeps only a random id.
//!
//! A [`Session`] has an id of 256 bits from the OS CSPRNG, serde data, the logged-in user,
//! and created and last-seen times. [`Sessions`] loads and saves them through a
//! [`SessionStore`], enforces idle and absolute expiry, rotates the id at login and on
//! privilege change (session fixation defense), and revokes one session or all of a user's.
//!
//! Saving writes only what changed: the keys set or removed during the request, and the
//! last-seen time. Two requests of one session that change different keys at the same time
//! therefore both keep their change, in the memory store and in Redis alike; two requests that
//! change the same key keep the one saved last.
//!
//! A session that is new and was never given data is not saved at all, so anonymous traffic
//! costs no storage.
//!
//! ```
//! use std::time::{Duration, UNIX_EPOCH};
//! use auth_core::{MemoryStore, SessionConfig, Sessions};
//!
//! # async fn run() -> auth_core::Result<()> {
//! let sessions = Sessions::new(MemoryStore::new(), SessionConfig::default());
//! let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
//!
//! // First request: no cookie, a fresh anonymous session.
//! let mut session = sessions.load(None, now).await?;
//! let anonymous_id = session.id().to_string();
//! session.insert("theme", "dark")?;
//! session.login("alice")?; // a new id: fixation defense
//! assert_ne!(session.id().to_string(), anonymous_id);
//! sessions.save(&mut session, now).await?;
//!
//! // Next request presents the new id.
//! let id = session.id().to_string();
//! let again = sessions.load(Some(&id), now + Duration::from_secs(60)).await?;
//! assert_eq!(again.user(), Some("alice"));
//! assert_eq!(again.get::<String>("theme").as_deref(), Some("dark"));
//! // The pre-login id is gone.
//! assert!(sessions.load(Some(&anonymous_id), now).await?.is_new());
//! # Ok(())
//! # }
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(run()).unwrap();
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::random::random_bytes;
use crate::{Error, Result};

/// A session id: 256 bits from the OS CSPRNG, written as 43 base64url characters.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SessionId([u8; 32]);

impl SessionId {
    /// A new random id.
    pub fn generate() -> Result<Self> {
        random_bytes::<32>().map(Self)
    }

    /// Reads an id written by [`SessionId`]'s `Display`; anything else is `None`.
    pub fn parse(text: &str) -> Option<Self> {
        if text.len() != 43 {
            return None;
        }
        let mut bytes = [0u8; 32];
        match URL_SAFE_NO_PAD.decode_slice(text, &mut bytes) {
            Ok(32) => Some(Self(bytes)),
            _ => None,
        }
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&URL_SAFE_NO_PAD.encode(self.0))
    }
}

impl fmt::Debug for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Ids are bearer secrets: show only a prefix.
        let text = self.to_string();
        write!(f, "SessionId({}…)", text.get(..6).unwrap_or(""))
    }
}

/// Session data as stored: cheap to clone (the map and user are shared until changed).
#[derive(Debug, Clone, PartialEq)]
pub struct SessionRecord {
    /// The logged-in user, if any.
    pub user: Option<Arc<str>>,
    /// The application's data by key.
    pub data: Arc<BTreeMap<String, serde_json::Value>>,
    /// Creation time, seconds since the Unix epoch.
    pub created_at: u64,
    /// Last time a request used the session, seconds since the Unix epoch.
    pub last_seen: u64,
}

/// What [`Sessions::save`] asks a store to write.
#[derive(Debug)]
pub struct SessionChange<'a> {
    /// Write the whole record, replacing anything stored under the id (new or rotated
    /// sessions). When false, write only `set` and `removed` and the metadata, and only if
    /// the session still exists in the store (a concurrent revocation wins).
    pub full: bool,
    /// The record after this request's changes.
    pub record: &'a SessionRecord,
    /// Keys set during the request.
    pub set: Vec<&'a str>,
    /// Keys removed during the request.
    pub removed: Vec<&'a str>,
    /// When the store may forget the session, seconds since the Unix epoch.
    pub expires_at: u64,
}

/// Where sessions live. Implementations must map their failures to
/// [`Error::StoreUnavailable`].
pub trait SessionStore: Send + Sync {
    /// The record under `id`, or `None`.
    fn load(&self, id: &SessionId) -> impl Future<Output = Result<Option<SessionRecord>>> + Send;
    /// Writes `change` under `id` (see [`SessionChange::full`]).
    fn save(
        &self,
        id: &SessionId,
        change: &SessionChange<'_>,
    ) -> impl Future<Output = Result<()>> + Send;
    /// Deletes the session `id`.
    fn delete(&self, id: &SessionId) -> impl Future<Output = Result<()>> + Send;
    /// Deletes every session of `user`; returns how many.
    fn delete_user(&self, user: &str) -> impl Future<Output = Result<usize>> + Send;
}

/// Lifetimes of sessions.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// A session unused for this long expires (default 30 minutes).
    pub idle_timeout: Duration,
    /// A session expires this long after creation, however active (default 12 hours).
    pub absolute_timeout: Duration,
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            idle_timeout: Duration::from_secs(30 * 60),
            absolute_timeout: Duration::from_secs(12 * 60 * 60),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lifecycle {
    /// Created by this request; nothing stored yet.
    New,
    /// Loaded from the store.
    Loaded,
    /// Given a new id by this request; the old one is deleted on save.
    Rotated(SessionId),
    /// Logged out: deleted on save.
    Destroyed,
}

/// One session during one request.
#[derive(Clone)]
pub struct Session {
    id: SessionId,
    record: SessionRecord,
    lifecycle: Lifecycle,
    /// The id differs from the one the request presented (new or rotated this request).
    id_changed: bool,
    set: Vec<String>,
    removed: Vec<String>,
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("id", &self.id)
            .field("user", &self.record.user)
            .field("keys", &self.record.data.keys().collect::<Vec<_>>())
            .field("lifecycle", &self.lifecycle)
            .finish()
    }
}

impl Session {
    fn fresh(now: u64) -> Result<Self> {
        Ok(Self {
            id: SessionId::generate()?,
            record: SessionRecord {
                user: None,
                data: Arc::default(),
                created_at: now,
                last_seen: now,
            },
            lifecycle: Lifecycle::New,
            id_changed: true,
            set: Vec::new(),
            removed: Vec::new(),
        })
    }

    /// The id to put in the cookie.
    pub fn id(&self) -> &SessionId {
        &self.id
    }

    /// The logged-in user, if any.
    pub fn user(&self) -> Option<&str> {
        self.record.user.as_deref()
    }

    /// True when this request created the session (no cookie, or an unknown or expired id).
    pub fn is_new(&self) -> bool {
        self.lifecycle == Lifecycle::New
    }

    /// True when the id differs from the one the request presented (the session is new or
    /// was rotated), so the cookie must be set again.
    pub fn id_changed(&self) -> bool {
        self.id_changed
    }

    /// True when the session exists in the store (loaded, or saved by this request).
    pub fn is_stored(&self) -> bool {
        self.lifecycle == Lifecycle::Loaded
    }

    /// True after [`Session::logout`].
    pub fn is_destroyed(&self) -> bool {
        self.lifecycle == Lifecycle::Destroyed
    }

    /// The stored record (data, times, user).
    pub fn record(&self) -> &SessionRecord {
        &self.record
    }

    /// The value under `key`, if present and of type `T`.
    pub fn get<T: DeserializeOwned>(&self, key: &str) -> Option<T> {
        self.record
            .data
            .get(key)
            .and_then(|value| T::deserialize(value).ok())
    }

    /// Sets `key` to `value`.
    pub fn insert<T: Serialize + ?Sized>(&mut self, key: &str, value: &T) -> Result<()> {
        let value = serde_json::to_value(value)
            .map_err(|error| Error::CorruptSession(error.to_string()))?;
        Arc::make_mut(&mut self.record.data).insert(key.to_owned(), value);
        self.removed.retain(|removed| removed != key);
        if !self.set.iter().any(|set| set == key) {
            self.set.push(key.to_owned());
        }
        Ok(())
    }

    /// Removes `key`.
    pub fn remove(&mut self, key: &str) {
        if Arc::make_mut(&mut self.record.data).remove(key).is_some()
            || self.set.iter().any(|set| set == key)
        {
            self.set.retain(|set| set != key);
            if !self.removed.iter().any(|removed| removed == key) {
                self.removed.push(key.to_owned());
            }
        }
    }

    /// Gives the session a new id, keeping its data (on privilege change). The old id is
    /// deleted when the session is saved.
    pub fn rotate_id(&mut self) -> Result<()> {
        let new_id = SessionId::generate()?;
        self.lifecycle = match self.lifecycle {
            Lifecycle::Loaded => Lifecycle::Rotated(self.id),
            other => other,
        };
        self.id = new_id;
        self.id_changed = true;
        Ok(())
    }

    /// Marks `user` as logged in, with a new id (session fixation defense).
    pub fn login(&mut self, user: &str) -> Result<()> {
        self.rotate_id()?;
        self.record.user = Some(Arc::from(user));
        Ok(())
    }

    /// Ends the session: it is deleted when saved, and its cookie removed.
    pub fn logout(&mut self) {
        self.lifecycle = Lifecycle::Destroyed;
    }

    fn has_changes(&self) -> bool {
        !self.set.is_empty() || !self.removed.is_empty() || self.record.user.is_some()
    }
}

/// Loads, saves, rotates and revokes sessions in a [`SessionStore`].
#[derive(Debug, Clone)]
pub struct Sessions<S> {
    store: S,
    config: SessionConfig,
}

fn unix(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs())
}

impl<S: SessionStore> Sessions<S> {
    /// Sessions in `store` with `config`'s lifetimes.
    pub fn new(store: S, config: SessionConfig) -> Self {
        Self { store, config }
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The lifetimes in force.
    pub fn config(&self) -> &SessionConfig {
        &self.config
    }

    /// The session for the id a request presented (`None` when it had no cookie).
    ///
    /// A missing, malformed, unknown or expired id gives a fresh anonymous session: forged
    /// ids get nothing. A store that fails gives [`Error::StoreUnavailable`] (503), never a
    /// fresh session, so a logged-in user is not silently logged out by an outage.
    pub async fn load(&self, presented: Option<&str>, now: SystemTime) -> Result<Session> {
        let now_secs = unix(now);
        let Some(id) = presented.and_then(SessionId::parse) else {
            return Session::fresh(now_secs);
        };
        let Some(record) = self.store.load(&id).await? else {
            return Session::fresh(now_secs);
        };
        if self.expired(&record, now_secs) {
            // Best effort: the store's own expiry removes it anyway.
            let _ = self.store.delete(&id).await;
            return Session::fresh(now_secs);
        }
        let mut record = record;
        record.last_seen = now_secs;
        Ok(Session {
            id,
            record,
            lifecycle: Lifecycle::Loaded,
            id_changed: false,
            set: Vec::new(),
            removed: Vec::new(),
        })
    }

    fn expired(&self, record: &SessionRecord, now: u64) -> bool {
        now >= record
            .last_seen
            .saturating_add(self.config.idle_timeout.as_secs())
            || now
                >= record
                    .created_at
                    .saturating_add(self.config.absolute_timeout.as_secs())
    }

    fn expires_at(&self, record: &SessionRecord) -> u64 {
        record
            .last_seen
            .saturating_add(self.config.idle_timeout.as_secs())
            .min(
                record
                    .created_at
                    .saturating_add(self.config.absolute_timeout.as_secs()),
            )
    }

    /// Writes the session's changes (or deletes it after [`Session::logout`]). A new
    /// session without data or user is not written.
    pub async fn save(&self, session: &mut Session, now: SystemTime) -> Result<()> {
        session.record.last_seen = session.record.last_seen.max(unix(now));
        match session.lifecycle {
            Lifecycle::Destroyed => return self.store.delete(&session.id).await,
            Lifecycle::New if !session.has_changes() => return Ok(()),
            Lifecycle::Rotated(old) => self.store.delete(&old).await?,
            _ => {}
        }
        let full = session.lifecycle != Lifecycle::Loaded;
        let change = SessionChange {
            full,
            record: &session.record,
            set: session.set.iter().map(String::as_str).collect(),
            removed: session.removed.iter().map(String::as_str).collect(),
            expires_at: self.expires_at(&session.record),
        };
        self.store.save(&session.id, &change).await?;
        session.lifecycle = Lifecycle::Loaded;
        session.set.clear();
        session.removed.clear();
        Ok(())
    }

    /// Deletes one session by id.
    pub async fn revoke(&self, id: &SessionId) -> Result<()> {
        self.store.delete(id).await
    }

    /// Deletes every session of `user` (after a password change, or "log out everywhere").
    pub async fn revoke_user(&self, user: &str) -> Result<usize> {
        self.store.delete_user(user).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_reject_garbage() {
        let id = SessionId::generate().unwrap();
        let text = id.to_string();
        assert_eq!(text.len(), 43);
        assert_eq!(SessionId::parse(&text), Some(id));
        assert_ne!(SessionId::generate().unwrap(), id);
        for bad in [
            "",
            "short",
            &"A".repeat(44),
            &format!("{}=", &text[..42]),
            &"!".repeat(43),
        ] {
            assert_eq!(SessionId::parse(bad), None, "{bad}");
        }
        assert!(!format!("{id:?}").contains(&text));
    }

    #[test]
    fn changes_are_tracked_per_key() {
        let mut session = Session::fresh(0).unwrap();
        assert!(!session.has_changes());
        session.insert("a", &1).unwrap();
        session.insert("b", &2).unwrap();
        session.remove("a");
        session.remove("never-set");
        assert_eq!(session.set, ["b"]);
        assert_eq!(session.removed, ["a"]);
        session.insert("a", &3).unwrap();
        assert!(session.removed.is_empty());
        assert_eq!(session.get::<i32>("a"), Some(3));
        assert_eq!(session.get::<String>("a"), None);
    }
}
