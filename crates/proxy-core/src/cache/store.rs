//! Where stored responses live: the [`CacheStore`] trait and [`MemoryStore`], an
//! in-process store bounded in bytes that evicts the least recently used URI.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};

use super::policy::CacheEntry;

/// A store of responses by cache key (see [`cache_key`](crate::cache_key)), each key
/// holding its variants (one per `Vary` selection), newest first.
///
/// Implementations are shared between requests, hence `Send + Sync` and `&self`.
pub trait CacheStore: Send + Sync {
    /// The variants stored under `key`, newest first (empty when none).
    fn get(&self, key: &str) -> Vec<Arc<CacheEntry>>;
    /// Stores `entry` under `key`, in place of the variant it replaces
    /// ([`CacheEntry::same_variant`]).
    fn put(&self, key: &str, entry: CacheEntry);
    /// Forgets everything under `key`.
    fn remove(&self, key: &str);
    /// Roughly how many bytes are held.
    fn weight(&self) -> u64;
}

/// An in-memory [`CacheStore`] holding at most `max_bytes` (by [`CacheEntry::weight`]) and
/// a few variants per key; the least recently read or written key goes first.
///
/// ```
/// use std::time::SystemTime;
/// use bytes::Bytes;
/// use http::{Request, Response};
/// use proxy_core::{CachePolicy, CacheStore, MemoryStore};
///
/// let store = MemoryStore::new(1 << 20);
/// let (request, ()) = Request::get("/a").body(()).unwrap().into_parts();
/// let (response, ()) = Response::builder()
///     .header("cache-control", "max-age=60")
///     .body(())
///     .unwrap()
///     .into_parts();
/// let now = SystemTime::now();
/// let entry = CachePolicy::default()
///     .entry(&request, &response, Bytes::from_static(b"hi"), now, now)
///     .unwrap();
/// store.put("example.com/a", entry);
/// assert_eq!(store.get("example.com/a").len(), 1);
/// store.remove("example.com/a");
/// assert!(store.get("example.com/a").is_empty());
/// ```
#[derive(Debug)]
pub struct MemoryStore {
    max_bytes: u64,
    max_variants: usize,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    keys: HashMap<Arc<str>, Slot>,
    /// Use order: tick -> key.
    order: BTreeMap<u64, Arc<str>>,
    tick: u64,
    total: u64,
}

#[derive(Debug)]
struct Slot {
    /// The key again, shared with `order`, so that a read reorders without allocating.
    key: Arc<str>,
    variants: Vec<Arc<CacheEntry>>,
    weight: u64,
    tick: u64,
}

impl MemoryStore {
    /// A store holding at most `max_bytes`, and at most 8 variants per key.
    #[must_use]
    pub fn new(max_bytes: u64) -> Self {
        Self {
            max_bytes,
            max_variants: 8,
            inner: Mutex::new(Inner::default()),
        }
    }

    /// Sets how many variants one key keeps (at least one).
    #[must_use]
    pub fn max_variants(mut self, max: usize) -> Self {
        self.max_variants = max.max(1);
        self
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Inner {
    fn touch(&mut self, key: &str) {
        let Some(slot) = self.keys.get_mut(key) else {
            return;
        };
        if slot.tick == self.tick {
            // Already the most recently used key: nothing to reorder.
            return;
        }
        self.tick += 1;
        self.order.remove(&slot.tick);
        slot.tick = self.tick;
        self.order.insert(self.tick, Arc::clone(&slot.key));
    }

    fn take(&mut self, key: &str) -> Option<Slot> {
        let slot = self.keys.remove(key)?;
        self.order.remove(&slot.tick);
        self.total = self.total.saturating_sub(slot.weight);
        Some(slot)
    }
}

impl CacheStore for MemoryStore {
    fn get(&self, key: &str) -> Vec<Arc<CacheEntry>> {
        let mut inner = self.lock();
        inner.touch(key);
        inner
            .keys
            .get(key)
            .map(|slot| slot.variants.clone())
            .unwrap_or_default()
    }

    fn put(&self, key: &str, entry: CacheEntry) {
        let entry_weight = entry.weight() + key.len() as u64;
        if entry_weight > self.max_bytes {
            return;
        }
        let mut inner = self.lock();
        let mut variants = vec![Arc::new(entry)];
        if let Some(old) = inner.take(key) {
            let newest = variants.first().cloned();
            variants.extend(
                old.variants
                    .into_iter()
                    .filter(|o| newest.as_ref().is_none_or(|n| !n.same_variant(o)))
                    .take(self.max_variants - 1),
            );
        }
        let weight: u64 = variants.iter().map(|e| e.weight()).sum::<u64>() + key.len() as u64;
        while inner.total + weight > self.max_bytes {
            let Some((_, oldest)) = inner.order.pop_first() else {
                break;
            };
            if let Some(slot) = inner.keys.remove(&oldest) {
                inner.total = inner.total.saturating_sub(slot.weight);
            }
        }
        inner.tick += 1;
        let tick = inner.tick;
        let key: Arc<str> = Arc::from(key);
        inner.order.insert(tick, Arc::clone(&key));
        inner.total += weight;
        inner.keys.insert(
            Arc::clone(&key),
            Slot {
                key,
                variants,
                weight,
                tick,
            },
        );
    }

    fn remove(&self, key: &str) {
        self.lock().take(key);
    }

    fn weight(&self) -> u64 {
        self.lock().total
    }
}
