//! The embedded [`SessionStore`]: sharded in-memory maps with an expiry sweep and a capacity
//! bound. Nothing to install; sessions are lost on restart and not shared between processes
//! (use the Redis store for that).

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::session::{SessionChange, SessionId, SessionRecord, SessionStore};
use crate::{Error, Result};

const SHARDS: usize = 16;

/// The default number of sessions the memory store holds.
pub const DEFAULT_CAPACITY: usize = 1_000_000;

/// Session ids are uniformly random already: their first eight bytes are a good hash, and
/// skipping SipHash keeps lookups cheap.
#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            if let Some(prefix) = word.get_mut(..chunk.len()) {
                prefix.copy_from_slice(chunk);
            }
            self.0 = self.0.rotate_left(5) ^ u64::from_le_bytes(word);
        }
    }
}

type IdMap<V> = HashMap<SessionId, V, BuildHasherDefault<IdHasher>>;

#[derive(Debug, Clone)]
struct Entry {
    record: SessionRecord,
    expires_at: u64,
}

/// An in-memory [`SessionStore`].
///
/// Concurrency: sessions live in 16 shards, each behind its own mutex, picked by the id's
/// first byte; a request locks one shard for the duration of a map operation, never across
/// an `.await`. Saves merge the keys a request changed into the stored record, so
/// concurrent requests of one session that change different keys both keep their change.
///
/// Capacity: when full, expired sessions are swept first; if the store is still full, new
/// sessions are refused with [`Error::StoreFull`] (503) rather than evicting live ones, so a
/// flood of anonymous sessions cannot log users out.
#[derive(Debug)]
pub struct MemoryStore {
    shards: [Mutex<ShardMap>; SHARDS],
    users: Mutex<HashMap<Arc<str>, HashSet<SessionId>>>,
    capacity: usize,
    len: std::sync::atomic::AtomicUsize,
}

#[derive(Default)]
struct ShardMap(IdMap<Entry>);

impl std::fmt::Debug for ShardMap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shard")
            .field("sessions", &self.0.len())
            .finish()
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::with_capacity(DEFAULT_CAPACITY)
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section leaves the maps consistent, so a poisoned lock is still usable.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl MemoryStore {
    /// A store holding up to [`DEFAULT_CAPACITY`] sessions.
    pub fn new() -> Self {
        Self::default()
    }

    /// A store holding up to `capacity` sessions.
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            shards: std::array::from_fn(|_| Mutex::default()),
            users: Mutex::default(),
            capacity,
            len: Default::default(),
        }
    }

    #[allow(clippy::indexing_slicing)] // the index is reduced modulo the array's length
    fn shard(&self, id: &SessionId) -> MutexGuard<'_, ShardMap> {
        let [first, ..] = *id.as_bytes();
        lock(&self.shards[usize::from(first) % SHARDS])
    }

    /// How many sessions are stored (expired ones included until swept).
    pub fn len(&self) -> usize {
        self.len.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// True when no sessions are stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Removes sessions whose expiry is at or before `now`; returns how many. Call it from a
    /// timer (every minute, say); loads ignore expired sessions either way.
    pub fn sweep(&self, now: SystemTime) -> usize {
        let now = now
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| since.as_secs());
        let mut removed = Vec::new();
        for shard in &self.shards {
            let mut shard = lock(shard);
            shard.0.retain(|id, entry| {
                let keep = entry.expires_at > now;
                if !keep {
                    removed.push((*id, entry.record.user.clone()));
                }
                keep
            });
        }
        self.forget(&removed);
        removed.len()
    }

    fn forget(&self, removed: &[(SessionId, Option<Arc<str>>)]) {
        self.len
            .fetch_sub(removed.len(), std::sync::atomic::Ordering::Relaxed);
        let mut users = lock(&self.users);
        for (id, user) in removed {
            if let Some(user) = user
                && let Some(ids) = users.get_mut(user)
            {
                ids.remove(id);
                if ids.is_empty() {
                    users.remove(user);
                }
            }
        }
    }
}

impl SessionStore for MemoryStore {
    async fn load(&self, id: &SessionId) -> Result<Option<SessionRecord>> {
        // Expiry is judged by `Sessions::load` with the caller's clock.
        Ok(self.shard(id).0.get(id).map(|entry| entry.record.clone()))
    }

    async fn save(&self, id: &SessionId, change: &SessionChange<'_>) -> Result<()> {
        let new_user;
        {
            let mut shard = self.shard(id);
            if change.full {
                if !shard.0.contains_key(id) {
                    if self.len() >= self.capacity {
                        drop(shard);
                        // The caller's clock, as everywhere else: the save happens "now".
                        self.sweep(
                            UNIX_EPOCH + std::time::Duration::from_secs(change.record.last_seen),
                        );
                        if self.len() >= self.capacity {
                            return Err(Error::StoreFull);
                        }
                        shard = self.shard(id);
                    }
                    self.len.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                shard.0.insert(
                    *id,
                    Entry {
                        record: change.record.clone(),
                        expires_at: change.expires_at,
                    },
                );
                new_user = change.record.user.clone();
            } else {
                // Merge: a concurrent revocation (entry gone) wins.
                let Some(entry) = shard.0.get_mut(id) else {
                    return Ok(());
                };
                let data = Arc::make_mut(&mut entry.record.data);
                for key in &change.set {
                    if let Some(value) = change.record.data.get(*key) {
                        data.insert((*key).to_owned(), value.clone());
                    }
                }
                for key in &change.removed {
                    data.remove(*key);
                }
                entry.record.last_seen = entry.record.last_seen.max(change.record.last_seen);
                if change.record.user != entry.record.user {
                    entry.record.user = change.record.user.clone();
                }
                entry.expires_at = change.expires_at;
                new_user = entry.record.user.clone();
            }
        }
        if let Some(user) = new_user {
            lock(&self.users).entry(user).or_default().insert(*id);
        }
        Ok(())
    }

    async fn delete(&self, id: &SessionId) -> Result<()> {
        let removed = self.shard(id).0.remove(id);
        if let Some(entry) = removed {
            self.forget(&[(*id, entry.record.user)]);
        }
        Ok(())
    }

    async fn delete_user(&self, user: &str) -> Result<usize> {
        let ids = lock(&self.users).remove(user).unwrap_or_default();
        let mut count = 0;
        for id in ids {
            if self.shard(&id).0.remove(&id).is_some() {
                self.len.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
                count += 1;
            }
        }
        Ok(count)
    }
}
