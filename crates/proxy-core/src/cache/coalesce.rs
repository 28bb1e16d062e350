//! Request coalescing: while one request fetches a key from the origin, the others for the
//! same key wait for it and then read the cache. Runtime-agnostic: a waiter is a plain
//! `Future` woken when the leader finishes (or is dropped, e.g. cancelled).

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

/// Most keys remembered at once, in flight or passing; beyond this, old passes are dropped.
const MAX_KEYS: usize = 10_000;

/// Who fetches a key, and who waits (one `Coalescer` per cache).
///
/// It also remembers keys whose last answer could not be stored ("hit-for-miss" in
/// Varnish's words): for [`Coalescer::pass_for`] their requests go to the origin side by
/// side instead of one after another.
///
/// ```
/// use std::time::Instant;
/// use proxy_core::{Coalescer, Joined};
///
/// let coalescer = Coalescer::default();
/// let Joined::Lead(lead) = coalescer.join("example.com/a", Instant::now()) else { panic!() };
/// let Joined::Wait(wait) = coalescer.join("example.com/a", Instant::now()) else { panic!() };
/// drop(lead); // finished: the cache now holds the answer (or not)
/// assert!(wait.is_done());
/// ```
#[derive(Debug)]
pub struct Coalescer {
    inner: Arc<Mutex<Inner>>,
    pass_for: Duration,
}

#[derive(Debug, Default)]
struct Inner {
    inflight: HashMap<String, Arc<Mutex<Slot>>>,
    passes: HashMap<String, Instant>,
}

#[derive(Debug, Default)]
struct Slot {
    done: bool,
    wakers: Vec<Waker>,
}

/// What [`Coalescer::join`] says a request should do.
#[derive(Debug)]
#[non_exhaustive]
pub enum Joined {
    /// Fetch from the origin; the others wait until this is dropped.
    Lead(Lead),
    /// Wait for the request ahead, then look in the cache again.
    Wait(Wait),
    /// The key recently answered with something unstorable: go to the origin now.
    Pass,
}

/// The right to fetch a key; dropping it releases the waiters.
#[derive(Debug)]
pub struct Lead {
    key: String,
    slot: Arc<Mutex<Slot>>,
    inner: Arc<Mutex<Inner>>,
}

/// A `Future` that completes when the request ahead is done.
#[derive(Debug)]
pub struct Wait {
    slot: Arc<Mutex<Slot>>,
}

impl Default for Coalescer {
    fn default() -> Self {
        Self::new(Duration::from_secs(60))
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Coalescer {
    /// A coalescer that lets requests for an unstorable key pass for `pass_for`.
    #[must_use]
    pub fn new(pass_for: Duration) -> Self {
        Self {
            inner: Arc::new(Mutex::new(Inner::default())),
            pass_for,
        }
    }

    /// How long a key whose answer was not storable skips coalescing.
    #[must_use]
    pub fn pass_for(&self) -> Duration {
        self.pass_for
    }

    /// Lead the fetch of `key`, wait for the one leading it, or pass when it is marked.
    #[must_use]
    pub fn join(&self, key: &str, now: Instant) -> Joined {
        let mut inner = lock(&self.inner);
        if let Some(until) = inner.passes.get(key) {
            if *until > now {
                return Joined::Pass;
            }
            inner.passes.remove(key);
        }
        if let Some(slot) = inner.inflight.get(key) {
            return Joined::Wait(Wait { slot: slot.clone() });
        }
        let slot = Arc::new(Mutex::new(Slot::default()));
        inner.inflight.insert(key.to_owned(), slot.clone());
        Joined::Lead(Lead {
            key: key.to_owned(),
            slot,
            inner: self.inner.clone(),
        })
    }

    /// Lead the fetch of `key` only when nobody else does (a background revalidation).
    #[must_use]
    pub fn try_lead(&self, key: &str) -> Option<Lead> {
        let mut inner = lock(&self.inner);
        if inner.inflight.contains_key(key) {
            return None;
        }
        let slot = Arc::new(Mutex::new(Slot::default()));
        inner.inflight.insert(key.to_owned(), slot.clone());
        Some(Lead {
            key: key.to_owned(),
            slot,
            inner: self.inner.clone(),
        })
    }

    /// Records that `key`'s answer could not be stored: its requests stop waiting for each
    /// other until `now + pass_for`.
    pub fn mark_pass(&self, key: &str, now: Instant) {
        let mut inner = lock(&self.inner);
        if inner.passes.len() >= MAX_KEYS {
            inner.passes.retain(|_, until| *until > now);
            if inner.passes.len() >= MAX_KEYS {
                inner.passes.clear();
            }
        }
        inner.passes.insert(key.to_owned(), now + self.pass_for);
    }

    /// Ends a pass (the key's answer was stored after all).
    pub fn end_pass(&self, key: &str) {
        let mut inner = lock(&self.inner);
        if !inner.passes.is_empty() {
            inner.passes.remove(key);
        }
    }

    /// Whether `key` is passing at `now`.
    #[must_use]
    pub fn is_pass(&self, key: &str, now: Instant) -> bool {
        lock(&self.inner).passes.get(key).is_some_and(|u| *u > now)
    }
}

impl Drop for Lead {
    fn drop(&mut self) {
        {
            let mut inner = lock(&self.inner);
            if inner
                .inflight
                .get(&self.key)
                .is_some_and(|s| Arc::ptr_eq(s, &self.slot))
            {
                inner.inflight.remove(&self.key);
            }
        }
        let wakers = {
            let mut slot = lock(&self.slot);
            slot.done = true;
            std::mem::take(&mut slot.wakers)
        };
        for waker in wakers {
            waker.wake();
        }
    }
}

impl Wait {
    /// Whether the request ahead is done.
    #[must_use]
    pub fn is_done(&self) -> bool {
        lock(&self.slot).done
    }
}

impl Future for Wait {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut slot = lock(&self.slot);
        if slot.done {
            return Poll::Ready(());
        }
        if !slot.wakers.iter().any(|w| w.will_wake(cx.waker())) {
            slot.wakers.push(cx.waker().clone());
        }
        Poll::Pending
    }
}

#[cfg(test)]
#[allow(clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn lead_wait_pass() {
        let c = Coalescer::new(Duration::from_secs(5));
        let now = Instant::now();
        let Joined::Lead(lead) = c.join("k", now) else {
            panic!()
        };
        assert!(c.try_lead("k").is_none());
        let Joined::Wait(wait) = c.join("k", now) else {
            panic!()
        };
        assert!(!wait.is_done());
        drop(lead);
        assert!(wait.is_done());
        c.mark_pass("k", now);
        assert!(matches!(c.join("k", now), Joined::Pass));
        assert!(matches!(
            c.join("k", now + Duration::from_secs(6)),
            Joined::Lead(_)
        ));
        c.mark_pass("k", now);
        c.end_pass("k");
        assert!(!c.is_pass("k", now));
    }
}
