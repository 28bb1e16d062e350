//! The headers request/reply sets on every backend: a request carries `reply-to` (an
//! address of the backend) and a `correlation-id`; the reply carries the same
//! `correlation-id` back.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::oneshot;

use crate::{Delivery, Envelope, Error, Result};

/// Sets `reply-to` and, unless the caller set one, `correlation-id` (the message id).
pub(crate) fn prepare_request(mut envelope: Envelope, reply_to: &str) -> Result<Envelope> {
    let id = envelope.id().to_string();
    let headers = envelope.headers_mut();
    headers.insert("reply-to", reply_to)?;
    if headers.correlation_id().is_none() {
        headers.insert("correlation-id", id)?;
    }
    Ok(envelope)
}

/// Where the reply to `request` goes, and the response with the request's
/// `correlation-id`.
pub(crate) fn prepare_reply(
    request: &Delivery,
    mut response: Envelope,
) -> Result<(String, Envelope)> {
    let headers = request.envelope.headers();
    let Some(reply_to) = headers.reply_to() else {
        return Err(Error::InvalidHeader {
            name: "reply-to".into(),
            reason: "the request has no reply-to header",
        });
    };
    if let Some(correlation) = headers.correlation_id() {
        response
            .headers_mut()
            .insert("correlation-id", correlation)?;
    }
    Ok((reply_to.to_owned(), response))
}

/// The requests of one broker handle waiting for their replies, by reply token. A
/// backend with one shared reply address (a wildcard subscription, a reply queue) routes
/// each reply it receives here by the token it carries; the backends that address each
/// request on its own use it the same way, so an entry never outlives its request.
pub(crate) struct ReplyWaiters<K, T> {
    waiting: Mutex<Waiting<K, T>>,
}

struct Waiting<K, T> {
    senders: HashMap<K, oneshot::Sender<T>>,
    /// Set by [`ReplyWaiters::close`]: the reply address is gone for good.
    closed: bool,
}

impl<K, T> Default for ReplyWaiters<K, T> {
    fn default() -> Self {
        Self {
            waiting: Mutex::new(Waiting {
                senders: HashMap::new(),
                closed: false,
            }),
        }
    }
}

impl<K, T> std::fmt::Debug for ReplyWaiters<K, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplyWaiters")
            .field(
                "waiting",
                &self
                    .waiting
                    .lock()
                    .map_or(0, |waiting| waiting.senders.len()),
            )
            .finish()
    }
}

impl<K: Hash + Eq + Clone, T> ReplyWaiters<K, T> {
    fn lock(&self) -> MutexGuard<'_, Waiting<K, T>> {
        self.waiting
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Registers a request under `token`; the entry goes when the returned waiter is
    /// dropped (answered, timed out, or its future dropped). After [`close`](Self::close)
    /// nothing is registered and the waiter fails at once.
    pub(crate) fn register(&self, token: K) -> ReplyWaiter<'_, K, T> {
        let (tx, rx) = oneshot::channel();
        {
            let mut waiting = self.lock();
            if !waiting.closed {
                waiting.senders.insert(token.clone(), tx);
            }
        }
        ReplyWaiter {
            waiters: self,
            token,
            rx,
        }
    }

    /// [`register`](Self::register), unless a request already waits under `token`.
    #[cfg_attr(not(feature = "amqp"), allow(dead_code))]
    pub(crate) fn try_register(&self, token: K) -> Option<ReplyWaiter<'_, K, T>> {
        let (tx, rx) = oneshot::channel();
        {
            let mut waiting = self.lock();
            if waiting.senders.contains_key(&token) {
                return None;
            }
            if !waiting.closed {
                waiting.senders.insert(token.clone(), tx);
            }
        }
        Some(ReplyWaiter {
            waiters: self,
            token,
            rx,
        })
    }

    /// Hands `reply` to the request waiting under `token`; false when none waits (it
    /// gave up, or the token is not one of ours) and the reply is dropped.
    pub(crate) fn deliver<Q>(&self, token: &Q, reply: T) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let waiting = self.lock().senders.remove(token);
        waiting.is_some_and(|tx| tx.send(reply).is_ok())
    }

    /// Wakes every waiting request without a reply (its reply address is gone).
    #[cfg_attr(not(feature = "amqp"), allow(dead_code))]
    pub(crate) fn abandon_all(&self) {
        self.lock().senders.clear();
    }

    /// [`abandon_all`](Self::abandon_all) for good: requests registered later fail at
    /// once too. One step under the lock, so a request registers before it (and is
    /// woken) or sees it.
    #[cfg_attr(not(any(feature = "nats", feature = "redis")), allow(dead_code))]
    pub(crate) fn close(&self) {
        let mut waiting = self.lock();
        waiting.closed = true;
        waiting.senders.clear();
    }

    /// Whether [`close`](Self::close) was called.
    #[cfg_attr(not(any(feature = "nats", feature = "redis")), allow(dead_code))]
    pub(crate) fn is_closed(&self) -> bool {
        self.lock().closed
    }

    /// How many requests are waiting.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.lock().senders.len()
    }
}

/// One waiting request; removes its entry when dropped.
pub(crate) struct ReplyWaiter<'a, K: Hash + Eq + Clone, T> {
    waiters: &'a ReplyWaiters<K, T>,
    token: K,
    rx: oneshot::Receiver<T>,
}

impl<K: Hash + Eq + Clone, T> ReplyWaiter<'_, K, T> {
    /// The reply, or [`Error::Timeout`] when none came within `timeout` or the reply
    /// address went away first.
    pub(crate) async fn wait(mut self, timeout: Duration) -> Result<T> {
        match tokio::time::timeout(timeout, &mut self.rx).await {
            Ok(Ok(reply)) => Ok(reply),
            Ok(Err(_)) | Err(_) => Err(Error::Timeout(timeout)),
        }
    }
}

impl<K: Hash + Eq + Clone, T> Drop for ReplyWaiter<'_, K, T> {
    fn drop(&mut self) {
        self.waiters.lock().senders.remove(&self.token);
    }
}

/// A broker handle's one reply address for all its requests (a NATS `<inbox>.*`
/// subscription, a Redis reply list), made by the first request and again after its
/// routing task ended (which closes the waiters). The task is told to stop when the route
/// is dropped with its handle, or replaced.
#[cfg(any(feature = "nats", feature = "redis"))]
pub(crate) struct ReplyRoute<K, T> {
    current: Mutex<Option<LiveRoute<K, T>>>,
    /// Held while a route is made, so that concurrent first requests make one.
    setup: tokio::sync::Mutex<()>,
}

#[cfg(any(feature = "nats", feature = "redis"))]
struct LiveRoute<K, T> {
    address: std::sync::Arc<str>,
    waiters: std::sync::Arc<ReplyWaiters<K, T>>,
    /// Dropped with the route: the routing task's receiver ends.
    _stop: oneshot::Sender<()>,
}

#[cfg(any(feature = "nats", feature = "redis"))]
impl<K, T> Default for ReplyRoute<K, T> {
    fn default() -> Self {
        Self {
            current: Mutex::new(None),
            setup: tokio::sync::Mutex::new(()),
        }
    }
}

#[cfg(any(feature = "nats", feature = "redis"))]
impl<K: Hash + Eq + Clone, T> ReplyRoute<K, T> {
    fn lock(&self) -> MutexGuard<'_, Option<LiveRoute<K, T>>> {
        self.current
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The live route's address and waiters. Without one, `make` sets it up: it gets the
    /// new waiters and the receiver that ends when the route goes, starts the routing
    /// task, and returns the address.
    pub(crate) async fn get_or_make<F, Fut>(
        &self,
        make: F,
    ) -> Result<(std::sync::Arc<str>, std::sync::Arc<ReplyWaiters<K, T>>)>
    where
        F: FnOnce(std::sync::Arc<ReplyWaiters<K, T>>, oneshot::Receiver<()>) -> Fut,
        Fut: std::future::Future<Output = Result<std::sync::Arc<str>>>,
    {
        let live = || {
            self.lock()
                .as_ref()
                .filter(|route| !route.waiters.is_closed())
                .map(|route| {
                    (
                        std::sync::Arc::clone(&route.address),
                        std::sync::Arc::clone(&route.waiters),
                    )
                })
        };
        if let Some(live) = live() {
            return Ok(live);
        }
        let _setup = self.setup.lock().await;
        if let Some(live) = live() {
            return Ok(live);
        }
        let waiters = std::sync::Arc::new(ReplyWaiters::default());
        let (stop, stopped) = oneshot::channel();
        let address = make(std::sync::Arc::clone(&waiters), stopped).await?;
        *self.lock() = Some(LiveRoute {
            address: std::sync::Arc::clone(&address),
            waiters: std::sync::Arc::clone(&waiters),
            _stop: stop,
        });
        Ok((address, waiters))
    }

    /// The live route's waiters, if any (for `Debug` and tests).
    pub(crate) fn waiters(&self) -> Option<std::sync::Arc<ReplyWaiters<K, T>>> {
        self.lock()
            .as_ref()
            .map(|route| std::sync::Arc::clone(&route.waiters))
    }

    /// Drops the live route, which tells its task to stop.
    #[cfg(test)]
    pub(crate) fn drop_route(&self) {
        drop(self.lock().take());
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn entries_go_on_reply_timeout_and_drop() {
        let waiters: ReplyWaiters<u64, &str> = ReplyWaiters::default();
        let answered = waiters.register(1);
        assert!(waiters.deliver(&1, "one"));
        assert_eq!(answered.wait(Duration::from_secs(1)).await.unwrap(), "one");
        assert_eq!(waiters.len(), 0);

        let unanswered = waiters.register(2);
        assert_eq!(waiters.len(), 1);
        let outcome = unanswered.wait(Duration::from_secs(1)).await;
        assert!(matches!(outcome, Err(Error::Timeout(_))), "{outcome:?}");
        assert_eq!(waiters.len(), 0);
        // A late reply finds nobody and is dropped.
        assert!(!waiters.deliver(&2, "late"));

        let first = waiters.try_register(5).unwrap();
        assert!(waiters.try_register(5).is_none(), "5 is taken");
        drop(first);
        assert!(waiters.try_register(5).is_some(), "5 is free again");
        assert_eq!(waiters.len(), 0);

        let dropped = waiters.register(3);
        let future = dropped.wait(Duration::from_secs(60));
        drop(future);
        assert_eq!(waiters.len(), 0);

        let abandoned = waiters.register(4);
        waiters.abandon_all();
        let outcome = abandoned.wait(Duration::from_secs(60)).await;
        assert!(matches!(outcome, Err(Error::Timeout(_))), "{outcome:?}");
        // abandon_all leaves the address open; close shuts it for later requests too.
        let later = waiters.register(6);
        assert_eq!(waiters.len(), 1);
        assert!(!waiters.is_closed());
        waiters.close();
        assert!(waiters.is_closed());
        assert_eq!(waiters.len(), 0);
        let after_close = waiters.register(7);
        assert_eq!(waiters.len(), 0, "nothing registers after close");
        let tried_after_close = waiters.try_register(8);
        assert!(tried_after_close.is_some());
        assert_eq!(waiters.len(), 0, "try_register honours close too");
        drop(tried_after_close);
        let start = tokio::time::Instant::now();
        for waiter in [later, after_close] {
            let outcome = waiter.wait(Duration::from_secs(60)).await;
            assert!(matches!(outcome, Err(Error::Timeout(_))), "{outcome:?}");
        }
        assert_eq!(start.elapsed(), Duration::ZERO, "both fail at once");
    }

    #[tokio::test]
    async fn each_of_many_gets_its_own_reply() {
        let waiters: std::sync::Arc<ReplyWaiters<u64, u64>> = std::sync::Arc::default();
        let tasks: Vec<_> = (0..200u64)
            .map(|token| {
                let waiters = std::sync::Arc::clone(&waiters);
                tokio::spawn(async move {
                    let waiter = waiters.register(token);
                    waiter.wait(Duration::from_secs(5)).await
                })
            })
            .collect();
        // Answer in reverse order once all are registered.
        while waiters.len() < 200 {
            tokio::task::yield_now().await;
        }
        for token in (0..200u64).rev() {
            assert!(waiters.deliver(&token, token * 10));
        }
        for (token, task) in (0..200u64).zip(tasks) {
            assert_eq!(task.await.unwrap().unwrap(), token * 10);
        }
        assert_eq!(waiters.len(), 0);
    }
}
