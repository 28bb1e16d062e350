//! A DataLoader: per-request batching and caching of loads by key, so that resolving a
//! relation on every item of a list costs one batch call instead of one call per item.
//!
//! Create one per request (put it in the [`Context`](crate::Context)); loads issued while the
//! executor resolves sibling fields and list items together are gathered into one call of the
//! batch function, and each key's result is cached for the rest of the request. It needs no
//! runtime: a load yields once so that its siblings can join the batch.
//!
//! ```
//! use std::collections::HashMap;
//! use graphql_core::{DataLoader, FieldError};
//!
//! let users = DataLoader::new(|ids: Vec<u32>| async move {
//!     // One query for all the ids, e.g. `SELECT ... WHERE id IN (...)`.
//!     Ok::<_, FieldError>(ids.into_iter().map(|id| (id, format!("user{id}"))).collect::<HashMap<_, _>>())
//! });
//! # let _ = users;
//! ```

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::hash::Hash;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context as TaskContext, Poll};

use futures_util::future::{FutureExt, Shared};

use crate::resolver::FieldError;

type BatchResult<K, V> = Arc<Result<HashMap<K, V>, FieldError>>;
type BatchFuture<K, V> = Shared<Pin<Box<dyn Future<Output = BatchResult<K, V>> + Send>>>;
type BatchFn<K, V> = dyn Fn(Vec<K>) -> Pin<Box<dyn Future<Output = Result<HashMap<K, V>, FieldError>> + Send>>
    + Send
    + Sync;

struct Batch<K, V> {
    keys: Vec<K>,
    future: Option<BatchFuture<K, V>>,
}

struct State<K, V> {
    cache: HashMap<K, Option<V>>,
    /// The batch still gathering keys.
    open: Option<Arc<Mutex<Batch<K, V>>>>,
}

struct Inner<K, V> {
    batch_fn: Box<BatchFn<K, V>>,
    max_batch: usize,
    state: Mutex<State<K, V>>,
    calls: std::sync::atomic::AtomicUsize,
}

/// Batches and caches loads by key for one request. Cloning shares the cache.
pub struct DataLoader<K, V> {
    inner: Arc<Inner<K, V>>,
}

impl<K, V> Clone for DataLoader<K, V> {
    fn clone(&self) -> Self {
        DataLoader {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<K, V> fmt::Debug for DataLoader<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DataLoader")
            .field("max_batch", &self.inner.max_batch)
            .field(
                "batch_calls",
                &self.inner.calls.load(std::sync::atomic::Ordering::Relaxed),
            )
            .finish()
    }
}

/// Yields once: the first poll wakes the task and returns `Pending`.
struct YieldOnce(bool);

impl Future for YieldOnce {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<()> {
        if self.0 {
            Poll::Ready(())
        } else {
            self.0 = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }
}

impl<K, V> DataLoader<K, V>
where
    K: Eq + Hash + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// A loader calling `batch_fn` with the distinct keys gathered; keys missing from the
    /// map it returns load as `None`.
    pub fn new<F, Fut>(batch_fn: F) -> Self
    where
        F: Fn(Vec<K>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<HashMap<K, V>, FieldError>> + Send + 'static,
    {
        DataLoader {
            inner: Arc::new(Inner {
                batch_fn: Box::new(move |keys| Box::pin(batch_fn(keys))),
                max_batch: 1000,
                state: Mutex::new(State {
                    cache: HashMap::new(),
                    open: None,
                }),
                calls: std::sync::atomic::AtomicUsize::new(0),
            }),
        }
    }

    /// Caps the keys per batch call (default 1000); a full batch is sent and a new one
    /// started.
    #[must_use]
    pub fn max_batch(self, max: usize) -> Self {
        match Arc::try_unwrap(self.inner) {
            Ok(mut inner) => {
                inner.max_batch = max.max(1);
                DataLoader {
                    inner: Arc::new(inner),
                }
            }
            Err(inner) => DataLoader { inner },
        }
    }

    /// How many times the batch function was called (for tests and metrics).
    pub fn batch_calls(&self) -> usize {
        self.inner.calls.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Loads one key: from the cache, or with the next batch.
    ///
    /// # Errors
    ///
    /// The batch function's error, for every key of its batch.
    pub async fn load(&self, key: K) -> Result<Option<V>, FieldError> {
        let batch = {
            let mut state = self
                .inner
                .state
                .lock()
                .map_err(|_| FieldError::new("DataLoader state poisoned"))?;
            if let Some(hit) = state.cache.get(&key) {
                return Ok(hit.clone());
            }
            let open = match &state.open {
                Some(b) => b
                    .lock()
                    .is_ok_and(|b| b.future.is_none() && b.keys.len() < self.inner.max_batch)
                    .then(|| Arc::clone(b)),
                None => None,
            };
            let batch = open.unwrap_or_else(|| {
                let b = Arc::new(Mutex::new(Batch {
                    keys: Vec::new(),
                    future: None,
                }));
                state.open = Some(Arc::clone(&b));
                b
            });
            if let Ok(mut b) = batch.lock()
                && !b.keys.contains(&key)
            {
                b.keys.push(key.clone());
            }
            batch
        };
        // Let sibling loads join this batch before it is sent.
        YieldOnce(false).await;
        let future = {
            let mut b = batch
                .lock()
                .map_err(|_| FieldError::new("DataLoader batch poisoned"))?;
            match &b.future {
                Some(f) => f.clone(),
                None => {
                    let keys = std::mem::take(&mut b.keys);
                    let inner = Arc::clone(&self.inner);
                    let f: Pin<Box<dyn Future<Output = BatchResult<K, V>> + Send>> =
                        Box::pin(async move {
                            inner
                                .calls
                                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            let result = (inner.batch_fn)(keys.clone()).await;
                            if let (Ok(map), Ok(mut state)) = (&result, inner.state.lock()) {
                                for k in keys {
                                    let v = map.get(&k).cloned();
                                    state.cache.insert(k, v);
                                }
                            }
                            Arc::new(result)
                        });
                    let shared = f.shared();
                    b.future = Some(shared.clone());
                    shared
                }
            }
        };
        match &*future.await {
            Ok(map) => Ok(map.get(&key).cloned()),
            Err(e) => Err(e.clone()),
        }
    }

    /// Loads several keys (one batch when none is cached), in the order given.
    ///
    /// # Errors
    ///
    /// The first batch error.
    pub async fn load_many(&self, keys: Vec<K>) -> Result<Vec<Option<V>>, FieldError> {
        let loads = keys.into_iter().map(|k| self.load(k));
        futures_util::future::join_all(loads)
            .await
            .into_iter()
            .collect()
    }
}
